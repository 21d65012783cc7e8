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
        let verdict = judge(&daily(days, None), 1.0, Sensitivity::default());
        assert_eq!(verdict, Verdict::Learning { history: days });
    }
    assert!(judge(&daily(MIN_HISTORY, None), 1.0, Sensitivity::default()).is_suspicious());
}

#[test]
fn ninety_days_of_ordinary_changes_and_weekly_dumps_raise_nothing() {
    let sensitivity = Sensitivity::default();
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
        let verdict = judge(&history, fraction, Sensitivity::default());
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
    } = judge(&daily(30, Some(0.3)), 0.6, Sensitivity::default())
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
    let verdict = judge(&history, 0.6, Sensitivity::default());
    assert!(verdict.is_suspicious(), "{verdict:?}");
}

#[test]
fn sensitivity_moves_the_threshold_and_refuses_nonsense() {
    let strict = Sensitivity {
        multiplier: 1.0,
        floor: 0.05,
    };
    assert!(judge(&daily(30, None), 0.06, strict).is_suspicious());
    assert!(!judge(&daily(30, None), 0.06, Sensitivity::default()).is_suspicious());
    assert_eq!(Sensitivity::default().problem(), None);
    for bad in [
        Sensitivity {
            multiplier: 0.5,
            floor: 0.2,
        },
        Sensitivity {
            multiplier: f64::NAN,
            floor: 0.2,
        },
        Sensitivity {
            multiplier: 1.5,
            floor: 0.0,
        },
        Sensitivity {
            multiplier: 1.5,
            floor: 1.5,
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
