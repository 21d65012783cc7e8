//! Tables for coverage: protected, overdue, never backed up, opted out and unprotected
//! instances, schedules of different periods, stopped instances and excluded volumes.

use super::*;
use crate::model::{AttachedVolume, InstanceDetails, ScheduleRule};
use crate::restore_records::VolumeDetails;
use crate::tags::Tags;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

fn policy() -> Policy {
    let rule = |name: &str, hours| ScheduleRule {
        overdue_after_hours: Some(hours),
        ..ScheduleRule::new(name, 7, 1)
    };
    Policy {
        deployment: "prod".into(),
        backup_tag_key: "Backup".into(),
        backup_tag_value: "true".into(),
        // A daily schedule overdue after 26 hours, a weekly one after 170.
        schedules: vec![rule("daily", 26), rule("weekly", 170)],
        exclude_boot_volume: false,
        min_interval: Duration::ZERO,
        copies: Vec::new(),
    }
}

fn instance(id: &str, state: &str, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: id.into(),
        state: state.into(),
        root_device_name: Some("/dev/xvda".into()),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        volumes: vec![AttachedVolume {
            volume_id: format!("vol-{id}"),
            device_name: "/dev/xvda".into(),
            tags: Tags::new(),
            details: VolumeDetails::default(),
        }],
        details: InstanceDetails::default(),
    }
}

fn tagged(id: &str) -> Instance {
    instance(id, "running", &[("Backup", "true"), ("Name", id)])
}

/// A snapshot of `instance`'s set of `schedule`, made `hours_ago` before `NOW`.
fn set(instance: &str, schedule: &str, hours_ago: i64, state: SnapshotState) -> Snapshot {
    let at = NOW - Duration::hours(hours_ago);
    Snapshot {
        tier: Default::default(),
        id: format!("snap-{instance}-{schedule}-{hours_ago}"),
        volume_id: Some(format!("vol-{instance}")),
        start_time: at,
        state,
        size_gib: 8,
        encrypted: false,
        kms_key: None,
        tags: Tags::from([
            (tags::INSTANCE_ID.to_owned(), instance.to_owned()),
            (tags::SCHEDULE.to_owned(), schedule.to_owned()),
            (tags::CREATED_AT.to_owned(), crate::tags::format_time(at)),
        ]),
    }
}

fn status_of(coverage: &Coverage) -> Vec<(&str, Status)> {
    coverage
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.status))
        .collect()
}

#[test]
fn each_instance_is_protected_overdue_never_backed_up_opted_out_or_unprotected() {
    use SnapshotState::{Completed, Pending};
    let instances = vec![
        tagged("i-fresh"),
        tagged("i-late"),
        tagged("i-new"),
        tagged("i-pending"),
        instance("i-stopped", "stopped", &[("Backup", "TRUE")]),
        instance("i-off", "running", &[("Backup", "false")]),
        instance("i-gone", "terminated", &[("Backup", "true")]),
        instance("i-typo", "running", &[("backup", "true")]),
    ];
    let untagged = vec![
        Untagged {
            id: "i-web".into(),
            name: Some("web".into()),
            state: "running".into(),
        },
        Untagged {
            id: "i-dying".into(),
            name: None,
            state: "shutting-down".into(),
        },
    ];
    let snapshots = vec![
        set("i-fresh", "daily", 20, Completed),
        set("i-fresh", "weekly", 100, Completed),
        // Daily 30 hours ago: 4 hours past its 26.
        set("i-late", "daily", 30, Completed),
        set("i-late", "weekly", 30, Completed),
        // Its only set is still pending: nothing to restore yet.
        set("i-pending", "daily", 1, Pending),
        // A stopped instance is backed up and judged like a running one.
        set("i-stopped", "daily", 2, Completed),
    ];
    let coverage = assess(
        &instances,
        &untagged,
        &snapshots,
        &policy(),
        &BTreeMap::new(),
        NOW,
    );
    assert_eq!(
        status_of(&coverage),
        [
            ("i-fresh", Status::Protected),
            ("i-late", Status::Overdue),
            ("i-new", Status::NoBackupYet),
            ("i-off", Status::OptedOut),
            ("i-pending", Status::NoBackupYet),
            ("i-stopped", Status::Protected),
            ("i-typo", Status::Unprotected),
            ("i-web", Status::Unprotected),
        ],
        "terminated and shutting-down instances need no backup"
    );
    let late = &coverage.instances[1];
    assert_eq!(
        late.newest[0].overdue_since,
        Some(NOW - Duration::hours(4)),
        "overdue since its set's start plus 26 hours"
    );
    assert_eq!(
        late.newest[1].overdue_since, None,
        "weekly is within 170 hours"
    );
    assert_eq!(
        coverage.oldest_newest_hours,
        BTreeMap::from([("daily".to_owned(), 30), ("weekly".to_owned(), 100)])
    );
    assert_eq!(coverage.oldest_hours(), 100);
    let summary = coverage.summary();
    assert_eq!(
        (
            summary.protected,
            summary.overdue,
            summary.no_backup_yet,
            summary.opted_out,
            summary.unprotected
        ),
        (2, 1, 2, 1, 2)
    );
    assert_eq!(summary.overdue_ids, ["i-late"]);
    assert_eq!(summary.unprotected_ids, ["i-typo", "i-web"]);
}

#[test]
fn a_schedule_that_never_made_a_set_is_overdue_once_its_window_has_passed() {
    use SnapshotState::Completed;
    let since = |pairs: &[(&str, i64)]| -> BTreeMap<String, OffsetDateTime> {
        pairs
            .iter()
            .map(|(name, hours)| ((*name).to_owned(), NOW - Duration::hours(*hours)))
            .collect()
    };
    // (daily sets of i-1 by age, since when each schedule is configured) → i-1's status, its
    // weekly overdue_since, the weekly age metric.
    type Row = (
        &'static str,
        Vec<i64>,
        Vec<(&'static str, i64)>,
        Status,
        Option<i64>,
        i64,
    );
    let rows: Vec<Row> = vec![
        (
            "weekly added three hours ago: not overdue yet, its age counts from then",
            vec![3, 400],
            vec![("daily", 500), ("weekly", 3)],
            Status::Protected,
            None,
            3,
        ),
        (
            "weekly configured 200 hours ago and never run: overdue 30 hours past its 170",
            vec![3, 400],
            vec![("daily", 500), ("weekly", 200)],
            Status::Overdue,
            Some(30),
            200,
        ),
        (
            "an instance first protected 100 hours ago: weekly counts from then",
            vec![3, 100],
            vec![("daily", 500), ("weekly", 400)],
            Status::Protected,
            None,
            100,
        ),
        (
            "since unknown (a run has not recorded it yet): never overdue for a missing set",
            vec![3, 400],
            vec![],
            Status::Protected,
            None,
            0,
        ),
    ];
    for (what, daily, configured, status, overdue_hours, weekly_age) in rows {
        let snapshots: Vec<Snapshot> = daily
            .iter()
            .map(|h| set("i-1", "daily", *h, Completed))
            .collect();
        let coverage = assess(
            &[tagged("i-1")],
            &[],
            &snapshots,
            &policy(),
            &since(&configured),
            NOW,
        );
        let entry = &coverage.instances[0];
        assert_eq!(entry.status, status, "{what}");
        assert_eq!(entry.newest[1].at, None, "{what}");
        assert_eq!(
            entry.newest[1].overdue_since,
            overdue_hours.map(|h| NOW - Duration::hours(h)),
            "{what}"
        );
        assert_eq!(coverage.oldest_newest_hours["weekly"], weekly_age, "{what}");
    }

    // A fleet whose every backup fails: no set at all, so no instance is judged overdue one
    // by one (each is "no backup yet"), but each schedule's age is the time since it was
    // configured, and the dead man's switch fires on it.
    let coverage = assess(
        &[tagged("i-1"), tagged("i-2")],
        &[],
        &[],
        &policy(),
        &since(&[("daily", 50), ("weekly", 50)]),
        NOW,
    );
    assert_eq!(coverage.count(Status::NoBackupYet), 2);
    assert_eq!(coverage.oldest_newest_hours["daily"], 50, "past its 26");
    assert_eq!(coverage.oldest_newest_hours["weekly"], 50, "within its 170");
    // No tagged instance at all: nothing to be late for.
    let empty = assess(&[], &[], &[], &policy(), &since(&[("daily", 50)]), NOW);
    assert_eq!(empty.oldest_newest_hours["daily"], 0);
}

#[test]
fn the_schedule_since_tags_round_trip() {
    let key = since_tag("weekly");
    assert_eq!(key, "smartvault:schedule-since:weekly");
    let read = since_from_tags([
        (key.as_str(), "2026-11-01T00:00:00Z"),
        ("smartvault:schedule-since:daily", "yesterday"),
        ("smartvault:run-in-progress:daily", "2026-11-01T00:00:00Z"),
    ]);
    assert_eq!(
        read,
        BTreeMap::from([("weekly".to_owned(), datetime!(2026-11-01 00:00 UTC))])
    );
}

#[test]
fn a_schedule_without_a_period_is_never_overdue() {
    // Without `overdue_after_hours` (a configuration from before), nothing is ever overdue.
    let mut old = policy();
    for schedule in &mut old.schedules {
        schedule.overdue_after_hours = None;
    }
    let ancient = vec![set("i-1", "daily", 2000, SnapshotState::Completed)];
    let coverage = assess(&[tagged("i-1")], &[], &ancient, &old, &BTreeMap::new(), NOW);
    assert_eq!(coverage.instances[0].status, Status::Protected);
    assert_eq!(coverage.oldest_newest_hours["daily"], 2000);
}

#[test]
fn the_newest_completed_set_counts_even_when_a_newer_one_is_pending_and_exclusions_are_listed() {
    let mut with_excluded = tagged("i-1");
    with_excluded.volumes.push(AttachedVolume {
        volume_id: "vol-scratch".into(),
        device_name: "/dev/sdf".into(),
        tags: Tags::from([(tags::VOLUME_EXCLUDE.to_owned(), "true".to_owned())]),
        details: VolumeDetails::default(),
    });
    let snapshots = vec![
        set("i-1", "daily", 40, SnapshotState::Completed),
        set("i-1", "daily", 1, SnapshotState::Pending),
    ];
    let coverage = assess(
        &[with_excluded],
        &[],
        &snapshots,
        &policy(),
        &BTreeMap::new(),
        NOW,
    );
    let entry = &coverage.instances[0];
    assert_eq!(
        entry.status,
        Status::Overdue,
        "the pending set is no backup yet"
    );
    assert_eq!(entry.newest[0].at, Some(NOW - Duration::hours(40)));
    assert_eq!(entry.excluded_volumes, ["vol-scratch"]);
}

#[test]
fn the_summary_names_at_most_ten_of_each_kind_with_whole_counts() {
    let untagged: Vec<Untagged> = (0..25)
        .map(|n| Untagged {
            id: format!("i-{n:02}"),
            name: None,
            state: "stopped".into(),
        })
        .collect();
    let summary = assess(&[], &untagged, &[], &policy(), &BTreeMap::new(), NOW).summary();
    assert_eq!(summary.unprotected, 25);
    assert_eq!(summary.unprotected_ids.len(), MAX_NAMED);
    assert_eq!(summary.unprotected_ids[0], "i-00");
}

#[test]
fn a_set_dated_in_the_future_does_not_keep_an_instance_protected() {
    // A forged run tagged its set 2099; it was really made 1,000 hours ago. The instance is
    // overdue by its real age, not protected until 2099.
    let mut forged = set("i-1", "daily", 1000, SnapshotState::Completed);
    forged.tags.insert(
        tags::CREATED_AT.to_owned(),
        "2099-01-01T00:00:00Z".to_owned(),
    );
    let coverage = assess(
        &[tagged("i-1")],
        &[],
        &[forged],
        &policy(),
        &BTreeMap::new(),
        NOW,
    );
    assert_eq!(coverage.instances[0].status, Status::Overdue);
    assert_eq!(
        coverage.instances[0].newest[0].at,
        Some(NOW - Duration::hours(1000))
    );
    assert_eq!(coverage.oldest_newest_hours["daily"], 1000);
}

/// The newest set of each schedule shows the lock holding every snapshot of it; a set with an
/// unlocked or expired snapshot shows none.
#[test]
fn each_newest_set_shows_the_lock_that_holds_it() {
    use crate::locks::{LockState, SnapshotLock};
    use SnapshotState::Completed;
    let snapshots = vec![
        set("i-a", "daily", 2, Completed),
        set("i-a", "weekly", 30, Completed),
        set("i-b", "daily", 3, Completed),
    ];
    let lock = |state, day: i64| SnapshotLock {
        state,
        expires_on: Some(NOW + Duration::days(day)),
    };
    let locks: BTreeMap<String, SnapshotLock> = [
        ("snap-i-a-daily-2", lock(LockState::Compliance, 7)),
        ("snap-i-a-weekly-30", lock(LockState::Expired, 1)),
    ]
    .into_iter()
    .map(|(id, l)| (id.to_owned(), l))
    .collect();
    let mut coverage = assess(
        &[tagged("i-a"), tagged("i-b")],
        &[],
        &snapshots,
        &policy(),
        &BTreeMap::new(),
        NOW,
    );
    with_locks(&mut coverage, &snapshots, &locks);
    let shown: Vec<(&str, &str, Option<LockState>)> = coverage
        .instances
        .iter()
        .flat_map(|i| {
            i.newest
                .iter()
                .map(move |n| (i.id.as_str(), n.schedule.as_str(), n.lock.map(|l| l.state)))
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("i-a", "daily", Some(LockState::Compliance)),
            ("i-a", "weekly", None),
            ("i-b", "daily", None),
            ("i-b", "weekly", None),
        ]
    );
}
