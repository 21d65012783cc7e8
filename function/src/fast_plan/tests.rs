//! Fast snapshot restore's plan tables: which snapshots a run enables and disables so that
//! only each covered instance's newest sets are ready.

use super::*;
use crate::consistency::Selector;
use crate::fast_restore::Rule;
use crate::model::{ScheduleRule, SnapshotState};
use crate::tags;
use time::Duration;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2027-06-01 00:00 UTC);

fn rule(zones: &[&str], count: u32) -> Rule {
    Rule {
        zones: zones.iter().map(|z| (*z).to_owned()).collect(),
        count,
        tag: None,
    }
}

fn snapshot(instance: &str, volume: &str, hours_ago: i64, schedule: &str) -> Snapshot {
    let made = NOW - Duration::hours(hours_ago);
    let mut s = Snapshot::tagged(
        &format!("snap-{instance}-{volume}-{hours_ago}"),
        SnapshotState::Completed,
        &[
            (tags::MANAGED_BY, "prod"),
            (tags::INSTANCE_ID, instance),
            (tags::SCHEDULE, schedule),
            (tags::CREATED_AT, &tags::format_time(made)),
        ],
    );
    s.volume_id = Some(format!("vol-{instance}-{volume}"));
    s.start_time = made;
    s
}

fn instance(id: &str, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: id.to_owned(),
        state: "running".into(),
        root_device_name: None,
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        volumes: Vec::new(),
        details: Default::default(),
    }
}

fn policy(daily: Option<Rule>) -> Policy {
    Policy::of_schedules(vec![
        ScheduleRule {
            fast_restore: daily,
            ..ScheduleRule::new("daily", 7, 0)
        },
        ScheduleRule::new("weekly", 35, 0),
    ])
}

fn ids(changes: &[Change]) -> Vec<(&str, Vec<&str>)> {
    changes
        .iter()
        .map(|c| {
            (
                c.snapshot_id.as_str(),
                c.zones.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

#[test]
fn each_instances_newest_sets_are_enabled_and_the_ones_they_replace_disabled() {
    // Two instances, two volumes each, daily sets 1, 25 and 49 hours old, one weekly set.
    let mut snapshots = Vec::new();
    for i in ["i-a", "i-b"] {
        for v in ["root", "data"] {
            for hours in [1, 25, 49] {
                snapshots.push(snapshot(i, v, hours, "daily"));
            }
            snapshots.push(snapshot(i, v, 2, "weekly"));
        }
    }
    let instances = [instance("i-a", &[]), instance("i-b", &[])];
    let p = policy(Some(rule(&["us-east-1a", "us-east-1b"], 1)));
    // Yesterday's set of i-a is enabled in both zones; a weekly one in one zone (a rule of
    // another schedule, since removed); i-b has none yet.
    let pair = |id: &str, zone: &str| (id.to_owned(), zone.to_owned());
    let enabled = vec![
        pair("snap-i-a-root-25", "us-east-1a"),
        pair("snap-i-a-root-25", "us-east-1b"),
        pair("snap-i-a-data-25", "us-east-1a"),
        pair("snap-i-a-data-25", "us-east-1b"),
        pair("snap-i-b-root-2", "us-east-1c"),
    ];
    let plan = plan(&snapshots, &instances, &p, &enabled, NOW);
    assert_eq!(
        ids(&plan.disable),
        [
            ("snap-i-a-data-25", vec!["us-east-1a", "us-east-1b"]),
            ("snap-i-a-root-25", vec!["us-east-1a", "us-east-1b"]),
            ("snap-i-b-root-2", vec!["us-east-1c"]),
        ]
    );
    assert_eq!(
        ids(&plan.enable),
        [
            ("snap-i-a-data-1", vec!["us-east-1a", "us-east-1b"]),
            ("snap-i-a-root-1", vec!["us-east-1a", "us-east-1b"]),
            ("snap-i-b-data-1", vec!["us-east-1a", "us-east-1b"]),
            ("snap-i-b-root-1", vec!["us-east-1a", "us-east-1b"]),
        ]
    );
    // Once done, the next run changes nothing.
    // (every wanted snapshot in both zones: what the enables above made)
    assert_eq!(plan.wanted.len(), 4);
    let now_enabled: Vec<Pair> = plan
        .wanted
        .iter()
        .flat_map(|id| [pair(id, "us-east-1a"), pair(id, "us-east-1b")])
        .collect();
    let again = super::plan(&snapshots, &instances, &p, &now_enabled, NOW);
    assert!(
        again.enable.is_empty() && again.disable.is_empty(),
        "{again:?}"
    );
    // A zone added to the rule is enabled on what is already ready, nothing disabled.
    let wider = policy(Some(rule(&["us-east-1a", "us-east-1b", "us-east-1c"], 1)));
    let widened = super::plan(&snapshots, &instances, &wider, &now_enabled, NOW);
    assert!(widened.disable.is_empty());
    assert!(widened.enable.iter().all(|c| c.zones == ["us-east-1c"]));
    assert_eq!(widened.enable.len(), 4);
    // The rule removed: everything it enabled is disabled.
    let removed = super::plan(&snapshots, &instances, &policy(None), &now_enabled, NOW);
    assert!(removed.enable.is_empty());
    assert_eq!(removed.disable.len(), 4);
}

#[test]
fn only_whole_completed_standard_sets_of_covered_instances_count_and_count_is_per_instance() {
    let mut snapshots = vec![
        snapshot("i-a", "root", 1, "daily"),
        snapshot("i-a", "data", 1, "daily"),
        snapshot("i-a", "root", 25, "daily"),
        snapshot("i-a", "data", 25, "daily"),
        snapshot("i-a", "root", 49, "daily"),
        snapshot("i-a", "data", 49, "daily"),
        snapshot("i-b", "root", 1, "daily"),
        snapshot("i-gone", "root", 1, "daily"),
    ];
    // The newest set of i-a is not whole yet: one snapshot still pending.
    snapshots[1].state = SnapshotState::Pending;
    // i-a's 25-hour set has one snapshot archived.
    snapshots[3].tier = Tier::Archive;
    let instances = [
        instance("i-a", &[("Tier", "gold")]),
        instance("i-b", &[("Tier", "bronze")]),
    ];
    let tagged = Rule {
        tag: Some(Selector {
            key: "Tier".into(),
            value: "gold".into(),
        }),
        ..rule(&["us-east-1a"], 2)
    };
    let plan = plan(&snapshots, &instances, &policy(Some(tagged)), &[], NOW);
    // Only i-a (gold): its two newest whole, completed, standard sets are the one of 49 hours
    // only (the newest is pending, the next has an archived snapshot). i-b is bronze, and the
    // instance gone cannot show the tag.
    assert_eq!(
        ids(&plan.enable),
        [
            ("snap-i-a-data-49", vec!["us-east-1a"]),
            ("snap-i-a-root-49", vec!["us-east-1a"]),
        ]
    );
    // Without a tag, a gone instance's newest set is kept ready too; count 1 per instance.
    let untagged = plan_for(&snapshots, &instances, rule(&["us-east-1a"], 1));
    assert_eq!(
        ids(&untagged.enable),
        [
            ("snap-i-b-root-1", vec!["us-east-1a"]),
            ("snap-i-gone-root-1", vec!["us-east-1a"]),
            ("snap-i-a-data-49", vec!["us-east-1a"]),
            ("snap-i-a-root-49", vec!["us-east-1a"]),
        ]
    );
}

fn plan_for(snapshots: &[Snapshot], instances: &[Instance], r: Rule) -> Plan {
    plan(snapshots, instances, &policy(Some(r)), &[], NOW)
}
