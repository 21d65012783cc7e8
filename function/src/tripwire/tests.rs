//! Table tests of the tripwire's rule: learning, normal days, learned periodic spikes, attacks,
//! sensitivity, and the entropy of sampled blocks.

use super::*;

/// A daily volume's history: `days` sets changing 1-5% (a fixed pattern), and every 7th day
/// `weekly` when given.
fn daily(days: usize, weekly: Option<f64>) -> Vec<f64> {
    (0..days)
        .map(|day| match weekly {
            Some(dump) if day % 7 == 6 => dump,
            _ => 0.01 + 0.01 * (day % 5) as f64,
        })
        .collect()
}

#[test]
fn a_volume_without_enough_history_is_never_flagged() {
    for days in 0..MIN_HISTORY {
        let verdict = judge(&daily(days, None), 1.0, Settings::default());
        assert_eq!(verdict, Verdict::Learning { history: days });
    }
    assert!(judge(&daily(MIN_HISTORY, None), 1.0, Settings::default()).is_suspicious());
}

#[test]
fn ninety_days_of_ordinary_changes_and_weekly_dumps_raise_nothing() {
    let sensitivity = Settings::default();
    for weekly in [None, Some(0.3)] {
        let all = daily(90, weekly);
        for day in 0..all.len() {
            let verdict = judge(&all[..day], all[day], sensitivity);
            assert!(
                !verdict.is_suspicious(),
                "day {day} ({weekly:?}): {verdict:?}"
            );
        }
    }
}

#[test]
fn a_rewrite_far_above_the_volumes_own_peak_is_suspicious() {
    let cases = [
        // (history, fraction, suspicious)
        (daily(30, None), 0.6, true),
        (daily(30, None), 0.19, false), // under the floor, however unusual
        (daily(30, None), 0.21, true),  // above the floor and 1.5 x the 5% peak
        (daily(30, Some(0.3)), 0.6, true),
        (daily(30, Some(0.3)), 0.44, false), // within 1.5 x the learned weekly dump
        (daily(30, Some(0.3)), 0.46, true),
    ];
    for (history, fraction, suspicious) in cases {
        let verdict = judge(&history, fraction, Settings::default());
        assert_eq!(
            verdict.is_suspicious(),
            suspicious,
            "{fraction}: {verdict:?}"
        );
    }
    let Verdict::Suspicious {
        usual_peak,
        median,
        threshold,
        ..
    } = judge(&daily(30, Some(0.3)), 0.6, Settings::default())
    else {
        panic!("suspicious");
    };
    assert_eq!((usual_peak, median), (0.3, 0.04));
    assert!((threshold - 0.45).abs() < 1e-9);
}

#[test]
fn one_odd_day_does_not_raise_the_bar_and_bad_numbers_are_ignored() {
    let mut history = daily(30, None);
    history.push(0.9); // last week's incident, one set
    history.push(f64::NAN);
    history.push(-3.0); // clamped to nothing changed
    let verdict = judge(&history, 0.6, Settings::default());
    assert!(verdict.is_suspicious(), "{verdict:?}");
}

#[test]
fn sensitivity_moves_the_threshold_and_refuses_nonsense() {
    let strict = Settings {
        multiplier: 1.0,
        floor: 0.05,
        ..Settings::default()
    };
    assert!(judge(&daily(30, None), 0.06, strict).is_suspicious());
    assert!(!judge(&daily(30, None), 0.06, Settings::default()).is_suspicious());
    assert_eq!(Settings::default().problem(), None);
    for bad in [
        Settings {
            multiplier: 0.5,
            floor: 0.2,
            ..Settings::default()
        },
        Settings {
            multiplier: f64::NAN,
            floor: 0.2,
            ..Settings::default()
        },
        Settings {
            multiplier: 1.5,
            floor: 0.0,
            ..Settings::default()
        },
        Settings {
            multiplier: 1.5,
            floor: 1.5,
            ..Settings::default()
        },
        Settings {
            pin_days: 0,
            ..Settings::default()
        },
        Settings {
            pin_days: locks::MAX_LOCK_DAYS + 1,
            ..Settings::default()
        },
        Settings {
            sample_blocks: MAX_SAMPLE_BLOCKS + 1,
            ..Settings::default()
        },
    ] {
        assert!(bad.problem().is_some(), "{bad:?}");
    }
}

#[test]
fn random_blocks_look_encrypted_and_text_does_not() {
    let random: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let text = "the quick brown fox jumps over the lazy dog\n".repeat(1000);
    let (noise, prose) = (bits_per_byte(&random), bits_per_byte(text.as_bytes()));
    assert!(noise > 7.9, "{noise}");
    assert!(prose < 5.0, "{prose}");
    assert_eq!(bits_per_byte(&[]), 0.0);
    assert_eq!(bits_per_byte(&[7; 100]), 0.0);
    assert!(looks_encrypted(&[noise, noise, prose]));
    assert!(!looks_encrypted(&[noise, prose]));
    assert!(!looks_encrypted(&[]));
}

fn at(day: i64) -> OffsetDateTime {
    time::macros::datetime!(2026-09-01 03:00 UTC) + Duration::days(day)
}

/// Snapshot `id` of `instance`'s volume `volume`, made on `day` by deployment `sv`.
fn snap(id: &str, instance: &str, volume: &str, day: i64) -> Snapshot {
    let made = tags::format_time(at(day));
    let mut s = Snapshot::tagged(
        id,
        SnapshotState::Completed,
        &[
            (tags::MANAGED_BY, "sv"),
            (tags::INSTANCE_ID, instance),
            (tags::CREATED_AT, made.as_str()),
        ],
    );
    s.volume_id = Some(volume.to_owned());
    s.start_time = at(day);
    s
}

#[test]
fn a_trip_holds_its_instance_until_cleared_and_a_hand_written_value_still_holds() {
    let mut flagged = snap("snap-b", "i-1", "vol-1", 5);
    flagged.tags.insert(tags::TRIPWIRE.into(), tripped(at(6)));
    let mut second = snap("snap-c", "i-1", "vol-2", 5);
    second
        .tags
        .insert(tags::TRIPWIRE.into(), "suspicious".into());
    let mut other = snap("snap-x", "i-2", "vol-3", 5);
    other.tags.insert(tags::TRIPWIRE.into(), cleared(at(7)));
    let mut foreign = snap("snap-y", "i-3", "vol-4", 5);
    foreign.tags.insert(tags::MANAGED_BY.into(), "other".into());
    foreign.tags.insert(tags::TRIPWIRE.into(), tripped(at(6)));
    let all = [
        snap("snap-a", "i-1", "vol-1", 4),
        flagged,
        second,
        other,
        foreign,
    ];
    let found = trips(&all, "sv", at(8));
    assert_eq!(found.keys().collect::<Vec<_>>(), ["i-1"]);
    let trip = &found["i-1"];
    assert_eq!(trip.snapshots, ["snap-b", "snap-c"]);
    // The hand-written value counts from its snapshot's start, the earlier of the two.
    assert_eq!((trip.since, trip.set_at), (at(5), at(5)));
}

#[test]
fn the_clean_set_is_the_newest_whole_set_before_the_spike_never_a_copy_or_a_pending_one() {
    let mut copy = snap("snap-copy", "i-1", "vol-1", 4);
    copy.tags
        .insert(tags::SOURCE_REGION.into(), "us-east-1".into());
    let mut pending = snap("snap-p", "i-1", "vol-1", 4);
    pending.state = SnapshotState::Pending;
    pending.tags.insert(
        tags::CREATED_AT.into(),
        tags::format_time(at(4) + Duration::hours(1)),
    );
    let all = [
        snap("snap-old", "i-1", "vol-1", 2),
        snap("snap-a1", "i-1", "vol-1", 3),
        snap("snap-a2", "i-1", "vol-2", 3),
        copy,
        pending,
        snap("snap-other", "i-2", "vol-3", 4),
        snap("snap-bad", "i-1", "vol-1", 5),
    ];
    let (when, set) = clean_set(&all, "sv", "i-1", at(5), at(6)).unwrap();
    assert_eq!(when, at(3));
    let ids: Vec<&str> = set.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["snap-a1", "snap-a2"]);
    assert_eq!(clean_set(&all, "sv", "i-1", at(2), at(6)), None);
}

#[test]
fn a_pin_locks_for_its_days_keeps_longer_locks_and_never_asks_compliance_to_become_governance() {
    let set = [
        snap("snap-free", "i-1", "vol-1", 3),
        snap("snap-long", "i-1", "vol-2", 3),
        snap("snap-short-compliance", "i-1", "vol-3", 3),
        snap("snap-short-governance", "i-1", "vol-4", 3),
        snap("snap-expired", "i-1", "vol-5", 3),
    ];
    let now = at(4);
    let lock = |state, days| SnapshotLock {
        state,
        expires_on: Some(now + Duration::days(days)),
    };
    let locks: BTreeMap<String, SnapshotLock> = [
        ("snap-long", lock(LockState::Governance, 90)),
        ("snap-short-compliance", lock(LockState::Compliance, 3)),
        ("snap-short-governance", lock(LockState::Governance, 3)),
        ("snap-expired", lock(LockState::Expired, -1)),
    ]
    .into_iter()
    .map(|(id, l)| (id.to_owned(), l))
    .collect();
    let refs: Vec<&Snapshot> = set.iter().collect();
    let asked = pins(&refs, &locks, Settings::default(), now, now);
    let got: Vec<(&str, LockMode)> = asked
        .iter()
        .map(|r| (r.snapshot_id.as_str(), r.rule.mode))
        .collect();
    assert_eq!(
        got,
        [
            ("snap-free", LockMode::Governance),
            ("snap-short-compliance", LockMode::Compliance),
            ("snap-short-governance", LockMode::Governance),
            ("snap-expired", LockMode::Governance),
        ]
    );
    assert!(
        asked
            .iter()
            .all(|r| r.until == now + Duration::days(30) && r.rule.cool_off_hours.is_none())
    );
    let compliance = Settings {
        pin_mode: LockMode::Compliance,
        pin_days: 7,
        ..Settings::default()
    };
    let asked = pins(&refs, &locks, compliance, now, now);
    assert!(
        asked
            .iter()
            .all(|r| r.rule.mode == LockMode::Compliance && r.until == now + Duration::days(7))
    );
    // snap-long's 90 days outlast a 7-day pin.
    assert_eq!(asked.len(), 4);
    // The pin counts from the trip: a later run asks the same end, and nothing once it is
    // less than EC2's shortest lock away.
    let later = pins(
        &refs,
        &BTreeMap::new(),
        compliance,
        now,
        now + Duration::days(3),
    );
    assert!(later.len() == 5 && later.iter().all(|r| r.until == now + Duration::days(7)));
    let late = now + Duration::hours(150);
    assert!(pins(&refs, &BTreeMap::new(), compliance, now, late).is_empty());
}

#[test]
fn samples_are_spread_over_the_changed_blocks_and_averaged() {
    let items: Vec<u32> = (0..100).collect();
    assert_eq!(spread(&items, 4), [&0, &25, &50, &75]);
    assert_eq!(spread(&items, 3), [&0, &34, &68]);
    assert_eq!(spread(&items[..2], 4), [&0, &1], "no more than there are");
    assert!(spread(&items, 0).is_empty() && spread::<u32>(&[], 4).is_empty());
    assert_eq!(mean(&[7.0, 8.0]), Some(7.5));
    assert_eq!(mean(&[]), None);
}
