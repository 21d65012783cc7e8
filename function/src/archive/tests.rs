//! The archive rules' tables: each reason a snapshot stays, when archiving pays by measured
//! bytes or by the schedule's gap, the early-deletion bill, and `archive_after_days`' limits.

use super::*;
use crate::model::Policy;
use time::macros::datetime;

const GIB: u64 = 1 << 30;
const NOW: OffsetDateTime = datetime!(2027-06-01 00:00 UTC);

fn monthly_set() -> Candidate {
    Candidate {
        made_at: NOW - Duration::days(40),
        expires_at: Some(NOW + Duration::days(325)),
        written_bytes: Some(100 * GIB),
        frees_bytes: Some(40 * GIB),
        newest_of_volume: false,
        pinned: false,
        schedule_gap_hours: Some(31 * 24 + 3),
    }
}

#[test]
fn a_set_stays_for_each_reason_and_goes_when_it_pays() {
    let stay = |c: Candidate, why: &str| match verdict(&c, 30, NOW) {
        Verdict::Stay(reason) => assert!(reason.contains(why), "{reason:?} lacks {why:?}"),
        other => panic!("{c:?} was {other:?}, expected to stay ({why})"),
    };
    stay(
        Candidate {
            made_at: NOW - Duration::days(29),
            ..monthly_set()
        },
        "younger than archive_after_days (30)",
    );
    stay(
        Candidate {
            newest_of_volume: true,
            ..monthly_set()
        },
        "the newest snapshot of its volume",
    );
    stay(
        Candidate {
            pinned: true,
            ..monthly_set()
        },
        "locked or pinned",
    );
    stay(
        Candidate {
            expires_at: Some(NOW + Duration::days(89)),
            ..monthly_set()
        },
        "expires in 89 days, under the archive's 90-day minimum",
    );
    // 100 GiB archived costs $1.25 a month; freeing 20 GiB saves only $1.00.
    stay(
        Candidate {
            frees_bytes: Some(20 * GIB),
            ..monthly_set()
        },
        "costs more than",
    );
    stay(
        Candidate {
            written_bytes: None,
            schedule_gap_hours: Some(24 + 3),
            ..monthly_set()
        },
        "runs more often than monthly",
    );
    // Measured: 40 GiB freed ($2.00) against 100 GiB archived ($1.25) saves $0.75.
    match verdict(&monthly_set(), 30, NOW) {
        Verdict::Archive {
            saves_monthly_usd: Some(saves),
        } => assert!((saves - 0.75).abs() < 1e-9, "{saves}"),
        other => panic!("{other:?}"),
    }
    // Unmeasured, from a monthly schedule: archived, its saving unknown.
    assert_eq!(
        verdict(
            &Candidate {
                frees_bytes: None,
                ..monthly_set()
            },
            30,
            NOW
        ),
        Verdict::Archive {
            saves_monthly_usd: None
        }
    );
    // Exactly 90 days left is enough.
    assert!(matches!(
        verdict(
            &Candidate {
                expires_at: Some(NOW + Duration::days(90)),
                ..monthly_set()
            },
            30,
            NOW
        ),
        Verdict::Archive { .. }
    ));
}

#[test]
fn an_early_deletion_bills_the_rest_of_the_ninety_days() {
    let archived = NOW - Duration::days(30);
    // 60 days left of 100 GiB at $0.0125: $1.25 a month, two months.
    let bill = early_deletion_usd(100 * GIB, archived, NOW);
    assert!((bill - 2.5).abs() < 1e-9, "{bill}");
    assert_eq!(
        early_deletion_usd(100 * GIB, NOW - Duration::days(90), NOW),
        0.0
    );
    assert_eq!(
        early_deletion_usd(100 * GIB, NOW - Duration::days(400), NOW),
        0.0
    );
}

#[test]
fn archive_after_days_must_leave_ninety_days_of_retention() {
    assert_eq!(archive_after_problem(30, 365), None);
    assert_eq!(archive_after_problem(275, 365), None);
    let problem = archive_after_problem(300, 365).unwrap();
    assert!(
        problem.contains("leaves 65 days") && problem.contains("use at most 275"),
        "{problem}"
    );
    assert!(
        archive_after_problem(0, 365)
            .unwrap()
            .contains("use 1 or more")
    );
    assert!(
        archive_after_problem(1, 30)
            .unwrap()
            .contains("keep the schedule's sets at least 91 days")
    );
}

fn own(id: &str, volume: &str, days_ago: i64, schedule: &str, keep_days: i64) -> Snapshot {
    let made = NOW - Duration::days(days_ago);
    let mut s = Snapshot::tagged(
        id,
        crate::model::SnapshotState::Completed,
        &[
            (tags::MANAGED_BY, "prod"),
            (tags::INSTANCE_ID, "i-a"),
            (tags::SCHEDULE, schedule),
            (tags::CREATED_AT, &tags::format_time(made)),
            (
                tags::EXPIRES_AT,
                &tags::format_time(made + Duration::days(keep_days)),
            ),
        ],
    );
    s.volume_id = Some(volume.to_owned());
    s.start_time = made;
    s
}

fn gfs_policy() -> Policy {
    use crate::model::ScheduleRule;
    Policy::of_schedules(vec![
        ScheduleRule {
            overdue_after_hours: Some(27),
            ..ScheduleRule::new("daily", 7, 0)
        },
        ScheduleRule {
            overdue_after_hours: Some(31 * 24 + 3),
            archive_after_days: Some(30),
            ..ScheduleRule::new("monthly", 365, 0)
        },
    ])
}

fn archived_ids(plan: &Plan) -> Vec<&str> {
    plan.archive
        .iter()
        .map(|a| a.snapshot_id.as_str())
        .collect()
}

#[test]
fn a_run_archives_the_monthly_sets_that_pay_oldest_first_and_never_the_newest_or_a_held_one() {
    let mut snapshots = vec![
        own("snap-m100", "vol-1", 100, "monthly", 365),
        own("snap-m70", "vol-1", 70, "monthly", 365),
        own("snap-m40", "vol-1", 40, "monthly", 365),
        // Too young.
        own("snap-m10", "vol-1", 10, "monthly", 365),
        // Expires in 50 days.
        own("snap-m315", "vol-1", 315, "monthly", 365),
        // A daily set is never archived (no archive_after_days).
        own("snap-d1", "vol-1", 1, "daily", 7),
        // The only set of vol-2: the newest of its volume.
        own("snap-m50-v2", "vol-2", 50, "monthly", 365),
        // Pending, or already archived, or in progress, or a copy: not candidates.
        own("snap-pending", "vol-3", 60, "monthly", 365),
        own("snap-archived", "vol-3", 90, "monthly", 365),
        own("snap-going", "vol-3", 80, "monthly", 365),
        own("snap-copy", "vol-3", 85, "monthly", 365),
        own("snap-v3-new", "vol-3", 1, "daily", 7),
    ];
    snapshots[7].state = crate::model::SnapshotState::Pending;
    snapshots[8].tier = Tier::Archive;
    snapshots[9]
        .tags
        .insert(tags::ARCHIVED_AT.into(), tags::format_time(NOW));
    snapshots[10]
        .tags
        .insert(tags::SOURCE_REGION.into(), "us-west-2".into());
    let held = BTreeSet::from(["snap-m70".to_owned()]);
    let plan = plan(&snapshots, &gfs_policy(), &held, &[], NOW);
    assert_eq!(archived_ids(&plan), ["snap-m100", "snap-m40"]);
    assert!(plan.held_back.is_empty());
    assert!(plan.archive.iter().all(|a| a.saves_monthly_usd.is_none()));
    assert!(archiving(&snapshots[9]) && !archiving(&snapshots[8]) && !archiving(&snapshots[0]));

    // Measured: a set whose full size costs more archived than the blocks it frees stays.
    let frees = vec![
        ("snap-m100".to_owned(), 10 * GIB),
        ("snap-m40".to_owned(), 90 * GIB),
    ];
    for s in &mut snapshots {
        s.tags
            .insert(tags::WRITTEN_BYTES.into(), (100 * GIB).to_string());
    }
    let measured = super::plan(&snapshots, &gfs_policy(), &held, &frees, NOW);
    // m100 frees $0.50 against $1.25 archived: stays. m40 frees $4.50: saves $3.25. The rest
    // are unmeasured, from a monthly schedule.
    assert_eq!(archived_ids(&measured), ["snap-m40"]);
    let saves = measured.archive[0].saves_monthly_usd.unwrap();
    assert!((saves - 3.25).abs() < 1e-9, "{saves}");
}

#[test]
fn the_archive_quotas_hold_back_what_would_exceed_them() {
    // 30 volumes with one old monthly set each and a newer daily: 30 would pay, 25 may be in
    // progress at once; 3 already are.
    let mut snapshots = Vec::new();
    for v in 0..30 {
        snapshots.push(own(
            &format!("snap-{v:02}"),
            &format!("vol-{v:02}"),
            60,
            "monthly",
            365,
        ));
        snapshots.push(own(
            &format!("snap-new-{v:02}"),
            &format!("vol-{v:02}"),
            1,
            "daily",
            7,
        ));
    }
    for v in 30..33 {
        let mut going = own(
            &format!("snap-{v:02}"),
            &format!("vol-{v:02}"),
            60,
            "monthly",
            365,
        );
        going
            .tags
            .insert(tags::ARCHIVED_AT.into(), tags::format_time(NOW));
        snapshots.push(going);
    }
    let plan = plan(&snapshots, &gfs_policy(), &BTreeSet::new(), &[], NOW);
    assert_eq!(plan.archive.len(), MAX_ARCHIVALS_IN_PROGRESS - 3);
    assert_eq!(plan.held_back.len(), 30 - 22);
    assert!(plan.held_back[0].1.contains("25 archivals are in progress"));

    // One volume with 25 archived sets takes no 26th.
    let mut full = Vec::new();
    for n in 0..25 {
        let mut a = own(&format!("snap-a{n:02}"), "vol-x", 200 + n, "monthly", 1000);
        a.tier = Tier::Archive;
        full.push(a);
    }
    full.push(own("snap-next", "vol-x", 60, "monthly", 365));
    full.push(own("snap-newest", "vol-x", 1, "daily", 7));
    let plan = super::plan(&full, &gfs_policy(), &BTreeSet::new(), &[], NOW);
    assert!(plan.archive.is_empty());
    assert_eq!(plan.held_back.len(), 1);
    assert!(plan.held_back[0].1.contains("25 archived snapshots"));
}

#[test]
fn deleting_an_archived_snapshot_early_names_its_bill() {
    let mut s = own("snap-1", "vol-1", 200, "monthly", 365);
    assert_eq!(early_deletion(&s, NOW), None, "never archived");
    s.tags.insert(
        tags::ARCHIVED_AT.into(),
        tags::format_time(NOW - Duration::days(30)),
    );
    s.tags
        .insert(tags::WRITTEN_BYTES.into(), (100 * GIB).to_string());
    let bill = early_deletion(&s, NOW).unwrap();
    assert!((bill - 2.5).abs() < 1e-9, "{bill}");
    // Unmeasured: the volume's size (8 GiB here) bounds it.
    s.tags.remove(tags::WRITTEN_BYTES);
    let bound = early_deletion(&s, NOW).unwrap();
    assert!((bound - 0.2).abs() < 1e-9, "{bound}");
    // Brought back for good: the permanent restore billed the rest already.
    s.tags.insert(
        tags::TIER_RESTORE.into(),
        "ready 2027-05-20T00:00:00Z".into(),
    );
    assert_eq!(early_deletion(&s, NOW), None, "permanently restored");
    // Temporarily restored: the archived snapshot is still there, and so is its bill.
    s.tier = Tier::Restored {
        until: NOW + Duration::days(3),
    };
    assert!(early_deletion(&s, NOW).is_some());
    s.tags.insert(
        tags::ARCHIVED_AT.into(),
        tags::format_time(NOW - Duration::days(91)),
    );
    assert_eq!(early_deletion(&s, NOW), None, "past the minimum");
}
