//! Table tests of the copy planner: what is copied where, the limit of copies in flight, and
//! the copies' own retention.

use super::*;
use crate::model::{Interval, Job, Phase, ScheduleRule};
use crate::tags::Tags;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-26 01:00 UTC);
const HOME: &str = "us-east-1";

fn policy(copies: Vec<CopyRule>) -> Policy {
    Policy {
        deployment: "prod".into(),
        backup_tag_key: "Backup".into(),
        backup_tag_value: "true".into(),
        schedules: vec![
            ScheduleRule::new("daily", 7, 7),
            ScheduleRule::new("monthly", 365, 12),
        ],
        exclude_boot_volume: false,
        min_interval: Duration::minutes(60),
        copies,
    }
}

fn to(region: &str) -> CopyRule {
    CopyRule {
        region: region.into(),
        retention_days: None,
        keep_last: None,
        kms_key: None,
        schedules: None,
        lock: None,
    }
}

fn options() -> RunOptions {
    RunOptions {
        job: Job::BackupAndCleanup,
        interval: Interval::Respect,
        instance_ids: None,
        schedule: None,
        snapshot_ids: None,
        phase: Phase::FirstLink,
    }
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A completed source snapshot of `volume` from instance `instance`'s set made `age` ago.
fn source(id: &str, instance: &str, volume: &str, schedule: &str, age: Duration) -> Snapshot {
    Snapshot {
        tier: Default::default(),
        id: id.into(),
        volume_id: Some(volume.into()),
        start_time: NOW - age,
        state: SnapshotState::Completed,
        size_gib: 8,
        encrypted: false,
        kms_key: None,
        tags: tags(&[
            (tags::MANAGED_BY, "prod"),
            (tags::INSTANCE_ID, instance),
            (tags::CREATED_AT, &format_time(NOW - age)),
            (tags::SCHEDULE, schedule),
        ]),
    }
}

/// A copy in a destination made by `deployment` from `from` of `source`.
fn copy(id: &str, of: &Snapshot, expires_in: Duration, deployment: &str, from: &str) -> Snapshot {
    let mut tags = of.tags.clone();
    tags.insert(tags::MANAGED_BY.into(), deployment.into());
    tags.insert(tags::SOURCE_SNAPSHOT.into(), of.id.clone());
    tags.insert(tags::SOURCE_REGION.into(), from.into());
    tags.insert(
        tags::SOURCE_VOLUME.into(),
        of.volume_id.clone().unwrap_or_default(),
    );
    tags.insert(tags::EXPIRES_AT.into(), format_time(NOW + expires_in));
    Snapshot {
        id: id.into(),
        volume_id: Some("vol-ffffffff".into()),
        tags,
        ..of.clone()
    }
}

fn destination(region: &str, copies: Vec<Snapshot>, pending: usize) -> Destination {
    Destination {
        region: region.into(),
        copies,
        pending,
    }
}

fn run(
    sources: &[Snapshot],
    destinations: &[Destination],
    policy: &Policy,
    existing: &[&str],
) -> CopyPlan {
    let existing = existing.iter().map(|v| v.to_string()).collect();
    plan_copies(
        sources,
        destinations,
        policy,
        &options(),
        Scope {
            home_region: HOME,
            existing_volumes: &existing,
            expire: true,
        },
        NOW,
    )
}

fn copied(plan: &CopyPlan) -> Vec<(String, String)> {
    plan.copies
        .iter()
        .map(|c| (c.region.clone(), c.source_snapshot_id.clone()))
        .collect()
}

#[test]
fn every_completed_snapshot_goes_to_every_region_once_with_its_tags() {
    let h = Duration::hours;
    let sources = vec![
        source("snap-a1", "i-a", "vol-a1", "daily", h(2)),
        source("snap-a2", "i-a", "vol-a2", "daily", h(2)),
        source("snap-b1", "i-b", "vol-b1", "daily", h(2)),
    ];
    let policy = policy(vec![
        CopyRule {
            retention_days: Some(30),
            kms_key: Some("alias/dr".into()),
            ..to("us-west-2")
        },
        to("eu-west-1"),
    ]);
    // eu-west-1 already has snap-a1's copy.
    let done = copy("snap-c1", &sources[0], h(100), "prod", HOME);
    let plan = run(
        &sources,
        &[
            destination("us-west-2", vec![], 0),
            destination("eu-west-1", vec![done], 0),
        ],
        &policy,
        &[],
    );
    let mut got = copied(&plan);
    got.sort();
    assert_eq!(
        got,
        [
            ("eu-west-1".into(), "snap-a2".into()),
            ("eu-west-1".into(), "snap-b1".into()),
            ("us-west-2".into(), "snap-a1".into()),
            ("us-west-2".into(), "snap-a2".into()),
            ("us-west-2".into(), "snap-b1".into()),
        ]
    );
    let west = plan
        .copies
        .iter()
        .find(|c| c.region == "us-west-2" && c.source_snapshot_id == "snap-a1")
        .unwrap();
    let tag = |key: &str| {
        west.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(tag(tags::MANAGED_BY), Some("prod"));
    assert_eq!(tag(tags::SOURCE_SNAPSHOT), Some("snap-a1"));
    assert_eq!(tag(tags::SOURCE_REGION), Some(HOME));
    assert_eq!(tag(tags::SOURCE_VOLUME), Some("vol-a1"));
    assert_eq!(tag(tags::INSTANCE_ID), Some("i-a"));
    assert_eq!(tag(tags::SCHEDULE), Some("daily"));
    assert_eq!(
        tag(tags::CREATED_AT),
        Some(format_time(NOW - h(2)).as_str())
    );
    // The copy rule's 30 days, from when the set was made.
    assert_eq!(
        tag(tags::EXPIRES_AT),
        Some(format_time(NOW - h(2) + Duration::days(30)).as_str())
    );
    // An unencrypted source is encrypted with the rule's key; without a key it stays as it is.
    assert!(west.encrypted);
    assert_eq!(west.kms_key.as_deref(), Some("alias/dr"));
    let eu = plan
        .copies
        .iter()
        .find(|c| c.region == "eu-west-1")
        .unwrap();
    assert!(!eu.encrypted && eu.kms_key.is_none());
    assert!(west.description.contains("snap-a1 from us-east-1 (i-a)"));
    // The restore records travel with the copy: the set's, and this snapshot's volume's only.
    let mut recorded = sources[0].clone();
    recorded.tags.extend([
        (
            crate::restore_records::INSTANCE_TYPE.to_owned(),
            "m7g.large".to_owned(),
        ),
        (
            crate::restore_records::VolumeRecord::key("vol-a1"),
            "device=/dev/xvda".to_owned(),
        ),
        (
            crate::restore_records::VolumeRecord::key("vol-a2"),
            "device=/dev/sdf".to_owned(),
        ),
    ]);
    let plan = run(
        &[recorded],
        &[destination("us-west-2", vec![], 0)],
        &policy,
        &[],
    );
    let tags = &plan.copies[0].tags;
    assert!(tags.contains(&(
        crate::restore_records::INSTANCE_TYPE.to_owned(),
        "m7g.large".to_owned()
    )));
    assert!(tags.contains(&(
        crate::restore_records::VolumeRecord::key("vol-a1"),
        "device=/dev/xvda".to_owned()
    )));
    assert!(
        !tags
            .iter()
            .any(|(k, _)| *k == crate::restore_records::VolumeRecord::key("vol-a2"))
    );
}

#[test]
fn an_encrypted_source_is_copied_encrypted_and_sets_go_only_when_whole() {
    let h = Duration::hours;
    let mut encrypted = source("snap-a1", "i-a", "vol-a1", "daily", h(2));
    encrypted.encrypted = true;
    let mut pending = source("snap-b2", "i-b", "vol-b2", "daily", h(1));
    pending.state = SnapshotState::Pending;
    let sources = vec![
        encrypted,
        source("snap-b1", "i-b", "vol-b1", "daily", h(1)),
        pending,
    ];
    let plan = run(
        &sources,
        &[destination("us-west-2", vec![], 0)],
        &policy(vec![to("us-west-2")]),
        &[],
    );
    // i-b's set still has a pending snapshot: none of it goes yet.
    assert_eq!(copied(&plan), [("us-west-2".into(), "snap-a1".into())]);
    assert!(plan.copies[0].encrypted);
    assert_eq!(plan.copies[0].kms_key, None);
}

#[test]
fn copies_in_flight_stay_under_ec2s_limit_of_twenty_per_region_newest_sets_first() {
    let h = Duration::hours;
    // 12 sets of 3 volumes, an hour apart.
    let sources: Vec<Snapshot> = (0..12)
        .flat_map(|set| {
            (0..3).map(move |v| {
                source(
                    &format!("snap-{set:02}-{v}"),
                    &format!("i-{set:02}"),
                    &format!("vol-{set:02}-{v}"),
                    "daily",
                    h(set + 1),
                )
            })
        })
        .collect();
    let policy = policy(vec![to("us-west-2"), to("eu-west-1")]);
    // 5 snapshots pending in us-west-2 (any of them may be a copy): 15 slots, 5 whole sets.
    let plan = run(
        &sources,
        &[
            destination("us-west-2", vec![], 5),
            destination("eu-west-1", vec![], 20),
        ],
        &policy,
        &[],
    );
    let west: Vec<&str> = plan
        .copies
        .iter()
        .filter(|c| c.region == "us-west-2")
        .map(|c| c.source_snapshot_id.as_str())
        .collect();
    assert_eq!(west.len(), 15);
    assert!(
        west.iter()
            .all(|id| id.as_bytes()[5] == b'0' && id.as_bytes()[6] < b'5'),
        "the newest five sets: {west:?}"
    );
    assert_eq!(plan.waiting["us-west-2"], 36 - 15);
    // eu-west-1 is full: nothing starts, everything waits for the next sweep.
    assert!(plan.copies.iter().all(|c| c.region != "eu-west-1"));
    assert_eq!(plan.waiting["eu-west-1"], 36);
}

#[test]
fn a_set_larger_than_the_limit_goes_in_parts_when_nothing_is_in_flight() {
    let sources: Vec<Snapshot> = (0..25)
        .map(|v| {
            source(
                &format!("snap-{v:02}"),
                "i-big",
                &format!("vol-{v:02}"),
                "daily",
                Duration::hours(1),
            )
        })
        .collect();
    let plan = run(
        &sources,
        &[destination("us-west-2", vec![], 0)],
        &policy(vec![to("us-west-2")]),
        &[],
    );
    assert_eq!(plan.copies.len(), MAX_CONCURRENT_COPIES);
    assert_eq!(plan.waiting["us-west-2"], 5);
}

#[test]
fn only_the_rules_schedules_are_copied_and_never_a_copy_that_would_expire_at_once() {
    let d = Duration::days;
    let sources = vec![
        source("snap-d", "i-a", "vol-a", "daily", d(1)),
        source("snap-m", "i-a", "vol-a", "monthly", d(1)),
        // Made 40 days ago: a 30-day copy of it would be expired already.
        source("snap-old", "i-a", "vol-a", "monthly", d(40)),
    ];
    let rule = CopyRule {
        schedules: Some(vec!["monthly".into()]),
        retention_days: Some(30),
        ..to("us-west-2")
    };
    let plan = run(
        &sources,
        &[destination("us-west-2", vec![], 0)],
        &policy(vec![rule]),
        &[],
    );
    assert_eq!(copied(&plan), [("us-west-2".into(), "snap-m".into())]);
}

#[test]
fn copies_expire_by_their_rule_keep_last_counts_per_volume_and_others_copies_survive() {
    let d = Duration::days;
    let mut sources: Vec<Snapshot> = (1..=4)
        .map(|n| source(&format!("snap-{n}"), "i-a", "vol-a", "daily", d(n)))
        .collect();
    let retried = source("snap-6", "i-a", "vol-a", "daily", Duration::hours(12));
    // Four expired copies of vol-a (keep_last 2 keeps the newest two while vol-a exists), one
    // not yet expired, and copies that are not this deployment's from this region.
    let mine: Vec<Snapshot> = sources
        .iter()
        .enumerate()
        .map(|(n, s)| {
            copy(
                &format!("snap-c{}", n + 1),
                s,
                -Duration::hours(1),
                "prod",
                HOME,
            )
        })
        .collect();
    let fresh = copy(
        "snap-fresh",
        &source("snap-5", "i-a", "vol-a", "daily", Duration::hours(3)),
        d(1),
        "prod",
        HOME,
    );
    let other_deployment = copy("snap-x", &sources[3], -d(1), "staging", HOME);
    let other_region = copy("snap-y", &sources[3], -d(1), "prod", "eu-central-1");
    let mut failed = copy("snap-err", &retried, d(10), "prod", HOME);
    failed.state = SnapshotState::Error;
    sources.push(retried);
    let rule = CopyRule {
        keep_last: Some(2),
        ..to("us-west-2")
    };
    let mut all = mine;
    all.extend([fresh, other_deployment, other_region, failed]);
    let plan = run(
        &sources,
        &[destination("us-west-2", all.clone(), 0)],
        &policy(vec![rule.clone()]),
        &["vol-a"],
    );
    let mut deleted: Vec<&str> = plan
        .deletes
        .iter()
        .map(|(_, d)| d.snapshot_id.as_str())
        .collect();
    deleted.sort();
    // keep_last 2 of vol-a's completed copies: snap-fresh and snap-c1 (the newest).
    assert_eq!(deleted, ["snap-c2", "snap-c3", "snap-c4", "snap-err"]);
    assert!(plan.deletes.iter().all(|(region, _)| region == "us-west-2"));
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("snap-err") && w.contains("KMS"))
    );
    // The failed copy's source is copied again.
    assert_eq!(copied(&plan), [("us-west-2".into(), "snap-6".into())]);
    // Once vol-a is gone, keep_last no longer holds expired copies.
    let gone = run(
        &sources,
        &[destination("us-west-2", all, 0)],
        &policy(vec![rule]),
        &[],
    );
    assert_eq!(gone.deletes.len(), 5);
    assert_eq!(
        gone.completed["us-west-2"], 5,
        "this deployment's, from here"
    );
}

mod made_out_of_order {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Copies are often made out of order: newest sets first under the 20-copy limit, a copy
        /// region added later, a failed copy redone. Whatever order they were made in, `keep_last`
        /// keeps the copies of the newest sets, never a newer-made copy of an older set.
        #[test]
        fn copy_keep_last_keeps_the_newest_sets_whatever_order_the_copies_were_made_in(
            made_order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
            keep in 1u32..=5,
        ) {
            let d = Duration::days;
            // Six daily sets of vol-a, set n made n+10 days ago; each copy made at its own time,
            // in the shuffled order, all after the newest set, all expired by their tag.
            let sources: Vec<Snapshot> = (0..6)
                .map(|n| source(&format!("snap-{n}"), "i-a", "vol-a", "daily", d(n as i64 + 10)))
                .collect();
            let copies: Vec<Snapshot> = made_order
                .iter()
                .enumerate()
                .map(|(when, &n)| {
                    let mut c = copy(&format!("snap-c{n}"), &sources[n], -d(1), "prod", HOME);
                    c.start_time = NOW - d(9) + Duration::hours(when as i64);
                    c
                })
                .collect();
            let rule = CopyRule {
                keep_last: Some(keep),
                ..to("us-west-2")
            };
            let plan = run(
                &sources,
                &[destination("us-west-2", copies, 0)],
                &policy(vec![rule]),
                &["vol-a"],
            );
            let deleted: BTreeSet<String> =
                plan.deletes.iter().map(|(_, d)| d.snapshot_id.clone()).collect();
            let expected: BTreeSet<String> =
                (keep as usize..6).map(|n| format!("snap-c{n}")).collect();
            prop_assert_eq!(deleted, expected, "made in order {:?}", made_order);
        }
    }
}

#[test]
fn each_region_has_its_partition() {
    for (region, partition) in [
        ("us-east-1", "aws"),
        ("eu-central-1", "aws"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ] {
        assert_eq!(partition_of_region(region), partition, "{region}");
    }
    assert!(
        kms_key_problem("arn:aws-cn:kms:cn-north-1:123456789012:key/k", "cn-north-1").is_none()
    );
    let problem = kms_key_problem(
        "arn:aws-us-gov:kms:us-east-1:123456789012:key/k",
        "us-east-1",
    )
    .unwrap();
    assert!(problem.contains("aws-us-gov partition"), "{problem}");
}
