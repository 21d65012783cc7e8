//! Table tests of the cost estimate: a measured chain is exact, what an unmeasured, unanchored
//! or gapped chain makes a lower bound, what deleting each set frees, the split by schedule,
//! and the steady state under other retention values.

use super::*;
use crate::model::{ScheduleRule, SnapshotState};
use crate::tags;
use time::{Duration, macros::datetime};

const DEPLOYMENT: &str = "prod";
const BLOCK: u64 = changes::BLOCK_BYTES;

fn at(day: i64) -> OffsetDateTime {
    datetime!(2026-10-01 03:00 UTC) + Duration::days(day)
}

/// A completed snapshot of `volume` (instance i-1, schedule daily) made on `day`, with the
/// tripwire's records: `changed` blocks against `from` (`full`, or an id) and `written`.
fn snap(
    id: &str,
    volume: &str,
    day: i64,
    changed: Option<u64>,
    from: &str,
    written: Option<u64>,
) -> Snapshot {
    let made = tags::format_time(at(day));
    let expires = tags::format_time(at(day + 7));
    let mut s = Snapshot::tagged(
        id,
        SnapshotState::Completed,
        &[
            (tags::MANAGED_BY, DEPLOYMENT),
            (tags::INSTANCE_ID, "i-1"),
            (tags::CREATED_AT, made.as_str()),
            (tags::EXPIRES_AT, expires.as_str()),
            (tags::SCHEDULE, "daily"),
        ],
    );
    s.volume_id = Some(volume.to_owned());
    s.start_time = at(day);
    if let Some(blocks) = changed {
        s.tags
            .insert(changes::CHANGED_BYTES.into(), (blocks * BLOCK).to_string());
        s.tags.insert(changes::CHANGED_FROM.into(), from.into());
    }
    if let Some(blocks) = written {
        s.tags
            .insert(changes::WRITTEN_BYTES.into(), (blocks * BLOCK).to_string());
    }
    s
}

fn only(estimate: &Estimate) -> &InstanceCost {
    assert_eq!(estimate.instances.len(), 1, "{estimate:#?}");
    &estimate.instances[0]
}

#[test]
fn a_measured_chain_stores_its_full_read_and_each_change_exactly() {
    let chain = [
        snap("a1", "vol-a", 0, Some(100), "full", Some(100)),
        snap("a2", "vol-a", 1, Some(10), "a1", Some(104)),
        snap("a3", "vol-a", 2, Some(5), "a2", Some(104)),
        snap("b1", "vol-b", 0, Some(40), "full", Some(40)),
    ];
    let estimate = estimate(&chain, DEPLOYMENT, 0.05, at(3));
    let cost = only(&estimate);
    assert_eq!(cost.bytes, (100 + 10 + 5 + 40) * BLOCK);
    assert!(cost.exact && cost.unmeasured == 0);
    assert_eq!(cost.volumes, 2);
    let frees: Vec<(OffsetDateTime, u64, u64)> = cost
        .sets
        .iter()
        .map(|s| (s.made_at, s.bytes, s.frees_up_to))
        .collect();
    // Day 0: a1 frees what a2 replaced (10), b1 is its volume's only set (40).
    assert_eq!(
        frees,
        [
            (at(0), 140 * BLOCK, 50 * BLOCK),
            (at(1), 10 * BLOCK, 5 * BLOCK),
            (at(2), 5 * BLOCK, 5 * BLOCK)
        ]
    );
    assert_eq!(cost.sets[0].expires_at, Some(at(7)));
    let gib = (155 * BLOCK) as f64 / (1u64 << 30) as f64;
    assert!((estimate.monthly_usd - gib * 0.05).abs() < 1e-12);
}

#[test]
fn an_oldest_kept_snapshot_holds_its_written_bytes_after_the_full_one_expired() {
    // a1 expired: a2, the oldest kept, holds the volume's 104 blocks of data.
    let chain = [
        snap("a2", "vol-a", 1, Some(10), "a1", Some(104)),
        snap("a3", "vol-a", 2, Some(5), "a2", Some(104)),
    ];
    let cost = estimate(&chain, DEPLOYMENT, 0.05, at(3));
    assert_eq!(only(&cost).bytes, (104 + 5) * BLOCK);
    assert!(cost.exact);
}

#[test]
fn what_cannot_be_known_makes_a_lower_bound_and_says_so() {
    let cases: [(&str, Vec<Snapshot>, u64, usize); 3] = [
        (
            "oldest kept without its written bytes (measured before they were recorded)",
            vec![
                snap("a2", "vol-a", 1, Some(10), "a1", None),
                snap("a3", "vol-a", 2, Some(5), "a2", None),
            ],
            15,
            0,
        ),
        (
            "a gap: a3 was measured against a2, which is no longer kept",
            vec![
                snap("a1", "vol-a", 0, Some(100), "full", Some(100)),
                snap("a3", "vol-a", 2, Some(5), "a2", Some(100)),
            ],
            105,
            0,
        ),
        (
            "a snapshot not measured yet",
            vec![
                snap("a1", "vol-a", 0, Some(100), "full", Some(100)),
                snap("a2", "vol-a", 1, None, "", None),
            ],
            100,
            1,
        ),
    ];
    for (name, chain, blocks, unmeasured) in cases {
        let estimate = estimate(&chain, DEPLOYMENT, 0.05, at(3));
        let cost = only(&estimate);
        assert_eq!(
            (cost.bytes, cost.exact, cost.unmeasured),
            (blocks * BLOCK, false, unmeasured),
            "{name}"
        );
        assert!(!estimate.exact, "{name}");
    }
}

#[test]
fn copies_pending_sets_and_other_deployments_cost_nothing_here() {
    let mut copy = snap("c1", "vol-a", 0, Some(100), "full", Some(100));
    copy.tags
        .insert(tags::SOURCE_REGION.into(), "us-east-1".into());
    let mut pending = snap("p1", "vol-a", 1, None, "", None);
    pending.state = SnapshotState::Pending;
    let mut other = snap("o1", "vol-a", 0, Some(100), "full", Some(100));
    other.tags.insert(tags::MANAGED_BY.into(), "staging".into());
    let estimate = estimate(&[copy, pending, other], DEPLOYMENT, 0.05, at(3));
    assert_eq!((estimate.bytes, estimate.instances.len()), (0, 0));
}

#[test]
fn each_schedule_is_charged_for_its_own_sets() {
    let mut weekly = snap("a3", "vol-a", 2, Some(20), "a2", Some(100));
    weekly.tags.insert(tags::SCHEDULE.into(), "weekly".into());
    let chain = [
        snap("a1", "vol-a", 0, Some(100), "full", Some(100)),
        snap("a2", "vol-a", 1, Some(10), "a1", Some(100)),
        weekly,
    ];
    let estimate = estimate(&chain, DEPLOYMENT, 0.05, at(3));
    let by: Vec<(&str, u64, usize)> = estimate
        .instances
        .iter()
        .map(|i| (i.schedule.as_str(), i.bytes / BLOCK, i.volumes))
        .collect();
    assert_eq!(by, [("daily", 110, 1), ("weekly", 20, 1)]);
    assert_eq!(estimate.bytes, 130 * BLOCK);
}

#[test]
fn what_if_keeps_the_data_plus_an_average_change_per_further_set() {
    // Ten daily sets of two volumes: 100 and 50 blocks of data, changing 10 and 4 a day.
    let mut chain = vec![
        snap("a0", "vol-a", 0, Some(100), "full", Some(100)),
        snap("b0", "vol-b", 0, Some(50), "full", Some(50)),
    ];
    for day in 1..10 {
        chain.push(snap(
            &format!("a{day}"),
            "vol-a",
            day,
            Some(10),
            &format!("a{}", day - 1),
            Some(100),
        ));
        chain.push(snap(
            &format!("b{day}"),
            "vol-b",
            day,
            Some(4),
            &format!("b{}", day - 1),
            Some(50),
        ));
    }
    let policy = Policy {
        deployment: DEPLOYMENT.into(),
        backup_tag_key: "Backup".into(),
        backup_tag_value: "true".into(),
        schedules: vec![ScheduleRule::new("daily", 10, 1)],
        exclude_boot_volume: false,
        min_interval: Duration::minutes(60),
        copies: Vec::new(),
    };
    let rows = |days, last| what_if(&chain, &policy, days, last, 0.05, at(10));
    let now = rows(None, None);
    assert_eq!(now.len(), 1);
    assert_eq!(
        (now[0].retention_days, now[0].keep_last, now[0].sets_kept),
        (10, 1, 10)
    );
    // The current rule matches what is stored: data plus nine days of changes.
    assert_eq!(now[0].bytes, (150 + 9 * 14) * BLOCK);
    assert_eq!(
        now[0].bytes,
        estimate(&chain, DEPLOYMENT, 0.05, at(10)).bytes
    );
    let week = rows(Some(7), None);
    assert_eq!(
        (week[0].sets_kept, week[0].bytes),
        (7, (150 + 6 * 14) * BLOCK)
    );
    let kept = rows(Some(7), Some(30));
    assert_eq!(
        (kept[0].sets_kept, kept[0].bytes),
        (30, (150 + 29 * 14) * BLOCK)
    );
    assert!(kept[0].monthly_usd > now[0].monthly_usd);
}

#[test]
fn an_archived_snapshot_costs_its_full_size_at_the_archive_rate_and_frees_its_own_blocks() {
    // a1 (100 blocks, full) then a2 changed 10 of them: archiving a1 frees those 10 in the
    // standard tier; the 90 a2 still holds stay there. a2 frees its 10 (none newer).
    let mut chain = [
        snap("a1", "vol-a", 0, Some(100), "full", Some(100)),
        snap("a2", "vol-a", 1, Some(10), "a1", Some(100)),
    ];
    assert_eq!(
        frees_by_snapshot(&chain, DEPLOYMENT, at(3)),
        [("a1".to_owned(), 10 * BLOCK), ("a2".to_owned(), 10 * BLOCK)]
    );
    chain[0].tier = crate::model::Tier::Archive;
    let estimate = estimate(&chain, DEPLOYMENT, 0.05, at(3));
    let cost = only(&estimate);
    assert_eq!(
        cost.bytes,
        (90 + 10) * BLOCK,
        "standard: what a2 still holds, and a2's own"
    );
    assert_eq!(cost.archived_bytes, 100 * BLOCK, "archive: a1's full size");
    assert_eq!(estimate.archived_bytes, 100 * BLOCK);
    let gib = |blocks: u64| (blocks * BLOCK) as f64 / (1u64 << 30) as f64;
    let expected = gib(100) * 0.05 + gib(100) * 0.0125;
    assert!(
        (estimate.monthly_usd - expected).abs() < 1e-12,
        "{}",
        estimate.monthly_usd
    );
    // Unmeasured snapshots free nothing known.
    let bare = [snap("c1", "vol-c", 0, None, "full", None)];
    assert!(frees_by_snapshot(&bare, DEPLOYMENT, at(3)).is_empty());
}
