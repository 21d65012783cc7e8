//! The lock rules and the catch-up planner, table by table.

use super::*;
use crate::model::{Policy, ScheduleRule, Snapshot, SnapshotState};
use crate::plan::catch_up_locks as catch_up;
use std::collections::BTreeMap;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2027-01-10 12:00 UTC);

fn governance() -> LockRule {
    LockRule {
        mode: LockMode::Governance,
        cool_off_hours: None,
    }
}

fn compliance(cool_off_hours: Option<u32>) -> LockRule {
    LockRule {
        mode: LockMode::Compliance,
        cool_off_hours,
    }
}

fn policy(lock: Option<LockRule>) -> Policy {
    Policy::of_schedules(vec![
        ScheduleRule {
            lock,
            ..ScheduleRule::new("daily", 7, 1)
        },
        ScheduleRule::new("weekly", 35, 1),
    ])
}

fn snapshot(id: &str, schedule: &str, expires: &str, state: SnapshotState) -> Snapshot {
    Snapshot::tagged(
        id,
        state,
        &[
            (tags::MANAGED_BY, "prod"),
            (tags::SCHEDULE, schedule),
            (tags::EXPIRES_AT, expires),
        ],
    )
}

#[test]
fn a_lock_is_refused_where_ec2_would_refuse_it() {
    let cases: [(LockRule, u32, Option<&str>); 10] = [
        (
            governance(),
            1,
            Some("retention_days 1 is too short to lock"),
        ),
        (governance(), 2, None),
        (
            compliance(Some(72)),
            3,
            Some("lock.cool_off_hours 72 outlasts the schedule's retention (3 days)"),
        ),
        (governance(), 7, None),
        (compliance(None), 7, None),
        (compliance(Some(1)), 36_500, None),
        (compliance(Some(72)), 30, None),
        (
            compliance(Some(73)),
            30,
            Some("lock.cool_off_hours 73 is outside EC2's 1-72 hours"),
        ),
        (
            LockRule {
                mode: LockMode::Governance,
                cool_off_hours: Some(24),
            },
            30,
            Some("lock.cool_off_hours applies to compliance mode only"),
        ),
        (
            governance(),
            36_501,
            Some("retention_days 36501 is longer than EC2's longest snapshot lock (36500 days)"),
        ),
    ];
    for (rule, retention_days, expected) in cases {
        let problem = rule.problem(retention_days);
        match expected {
            None => assert_eq!(problem, None, "{rule:?} {retention_days}"),
            Some(text) => assert!(
                problem.as_deref().is_some_and(|p| p.contains(text)),
                "{rule:?} {retention_days}: {problem:?}"
            ),
        }
    }
    // The schedule list the function reads refuses it too, naming the schedule.
    let mut rules = policy(Some(compliance(Some(0)))).schedules;
    rules[0].retention_days = 7;
    let problem = crate::config::schedules_problem(&rules).unwrap();
    assert!(
        problem.starts_with("schedule daily: lock.cool_off_hours 0"),
        "{problem}"
    );
    // A copy rule's lock is judged by the copies' own retention (theirs, or each copied
    // schedule's).
    let copy = |retention_days, lock| crate::model::CopyRule {
        region: "us-west-2".into(),
        retention_days,
        keep_last: None,
        kms_key: None,
        schedules: None,
        lock: Some(lock),
    };
    let schedules = policy(None).schedules;
    let refused = crate::copies::copies_problem(&[copy(Some(2), compliance(Some(72)))], &schedules);
    assert_eq!(
        refused.map(|(index, field, problem)| {
            (index, field, problem.starts_with(
            "copies to us-west-2: lock.cool_off_hours 72 outlasts the schedule's retention (2 days)"
        ))
        }),
        Some((0, "lock", true))
    );
    // Without its own retention, the daily schedule's 7 days: 72 hours fit.
    assert_eq!(
        crate::copies::copies_problem(&[copy(None, compliance(Some(72)))], &schedules),
        None
    );
}

#[test]
fn catch_up_locks_exactly_the_unlocked_snapshots_of_locked_schedules() {
    let lock = |state, expires_on| SnapshotLock {
        state,
        expires_on: Some(expires_on),
    };
    let later = "2027-01-15T12:00:00Z";
    let snapshots = vec![
        // Locked schedule, no lock: locked until its own expiry.
        snapshot("snap-new", "daily", later, SnapshotState::Completed),
        // Pending snapshots can be locked too (EC2 starts the duration at completion).
        snapshot("snap-pending", "daily", later, SnapshotState::Pending),
        // Held by a lock already, or its lock expired early (an operator shortened it).
        snapshot("snap-held", "daily", later, SnapshotState::Completed),
        snapshot("snap-lapsed", "daily", later, SnapshotState::Completed),
        // Another schedule without a lock, another deployment, a failed snapshot.
        snapshot("snap-weekly", "weekly", later, SnapshotState::Completed),
        Snapshot::tagged(
            "snap-theirs",
            SnapshotState::Completed,
            &[
                (tags::MANAGED_BY, "other"),
                (tags::SCHEDULE, "daily"),
                (tags::EXPIRES_AT, later),
            ],
        ),
        snapshot("snap-error", "daily", later, SnapshotState::Error),
        // Already expired (cleanup's), expiring within EC2's shortest lock, no readable expiry.
        snapshot(
            "snap-expired",
            "daily",
            "2027-01-10T11:00:00Z",
            SnapshotState::Completed,
        ),
        snapshot(
            "snap-soon",
            "daily",
            "2027-01-11T06:00:00Z",
            SnapshotState::Completed,
        ),
        snapshot(
            "snap-unreadable",
            "daily",
            "next week",
            SnapshotState::Completed,
        ),
    ];
    let locks: BTreeMap<String, SnapshotLock> = [
        (
            "snap-held".to_owned(),
            lock(LockState::Governance, datetime!(2027-01-15 12:00 UTC)),
        ),
        (
            "snap-lapsed".to_owned(),
            lock(LockState::Expired, datetime!(2027-01-10 00:00 UTC)),
        ),
    ]
    .into_iter()
    .collect();
    let (requests, skips) = catch_up(&snapshots, &locks, &policy(Some(governance())), NOW);
    let ids: Vec<&str> = requests.iter().map(|r| r.snapshot_id.as_str()).collect();
    assert_eq!(ids, ["snap-new", "snap-pending", "snap-lapsed"]);
    for request in &requests {
        assert_eq!(request.until, datetime!(2027-01-15 12:00 UTC));
        assert_eq!(request.rule, governance());
    }
    let skipped: Vec<(String, &str)> = skips
        .iter()
        .map(|s| (s.subject.to_string(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "snapshot snap-soon");
    assert!(
        skipped[0].1.contains("sooner than EC2's shortest lock"),
        "{skipped:?}"
    );
    assert_eq!(skipped[1].0, "snapshot snap-unreadable");
    // Without a lock in the configuration, nothing is locked.
    let (none, _) = catch_up(&snapshots, &locks, &policy(None), NOW);
    assert!(none.is_empty());
}

#[test]
fn a_lock_holds_until_it_ends_and_says_so() {
    let end = datetime!(2027-01-15 12:00 UTC);
    let held = SnapshotLock {
        state: LockState::Compliance,
        expires_on: Some(end),
    };
    assert!(held.holds(NOW));
    assert!(!held.holds(end));
    assert_eq!(held.describe(), "compliance until 2027-01-15T12:00:00Z");
    let pending = SnapshotLock {
        state: LockState::Governance,
        expires_on: None,
    };
    assert!(pending.holds(NOW), "a lock on a pending snapshot holds");
    let expired = SnapshotLock {
        state: LockState::Expired,
        expires_on: Some(end),
    };
    assert!(
        !expired.holds(NOW),
        "an expired lock holds nothing, whatever its date"
    );
    // The rule travels in the function's SCHEDULES variable as smartvault.yaml writes it.
    let rule: ScheduleRule = serde_json::from_str(
        r#"{"name":"daily","retention_days":7,"keep_last":1,"lock":{"mode":"compliance","cool_off_hours":24}}"#,
    )
    .unwrap();
    assert_eq!(rule.lock, Some(compliance(Some(24))));
    assert!(
        serde_json::from_str::<ScheduleRule>(
            r#"{"name":"daily","retention_days":7,"keep_last":1,"lock":{"mode":"legal-hold"}}"#
        )
        .is_err()
    );
}

#[test]
fn a_set_is_held_by_its_earliest_lock_only_when_every_snapshot_has_one_in_force() {
    let lock = |state, day: i64| SnapshotLock {
        state,
        expires_on: Some(NOW + Duration::days(day)),
    };
    let locks: BTreeMap<String, SnapshotLock> = [
        ("a", lock(LockState::Compliance, 3)),
        ("b", lock(LockState::Governance, 2)),
        ("c", lock(LockState::Expired, 9)),
    ]
    .into_iter()
    .map(|(id, l)| (id.to_owned(), l))
    .collect();
    assert_eq!(
        holding_all(&locks, ["a", "b"]),
        Some(lock(LockState::Governance, 2))
    );
    assert_eq!(
        holding_all(&locks, ["a", "c"]),
        None,
        "an expired lock holds nothing"
    );
    assert_eq!(
        holding_all(&locks, ["a", "x"]),
        None,
        "an unlocked snapshot"
    );
    assert_eq!(holding_all(&locks, []), None, "an empty set");
    assert_eq!(in_force(&locks, "c"), None);
    assert_eq!(in_force(&locks, "a"), Some(lock(LockState::Compliance, 3)));
}
