//! The archive rules' tables: each reason a snapshot stays, when archiving pays by measured
//! bytes or by the schedule's gap, the early-deletion bill, and `archive_after_days`' limits.

use super::*;
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
