//! Table tests: which snapshots are read against which, the recorded tags, and the history.

use super::*;
use time::Duration;

const DEPLOYMENT: &str = "prod";

fn at(hours: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::hours(hours)
}

fn snapshot(id: &str, volume: &str, hours: i64, extra: &[(&str, &str)]) -> Snapshot {
    let made = tags::format_time(at(hours));
    let mut all = vec![
        (tags::MANAGED_BY, DEPLOYMENT),
        (tags::INSTANCE_ID, "i-1"),
        (tags::CREATED_AT, made.as_str()),
    ];
    all.extend_from_slice(extra);
    let mut s = Snapshot::tagged(id, SnapshotState::Completed, &all);
    s.volume_id = Some(volume.to_owned());
    s.start_time = at(hours);
    s
}

#[test]
fn each_unmeasured_snapshot_is_read_against_the_one_before_it_on_its_volume() {
    let mut pending = snapshot("pending", "vol-a", 30, &[]);
    pending.state = SnapshotState::Pending;
    let mut other = snapshot("other", "vol-a", 5, &[]);
    other.tags.insert(tags::MANAGED_BY.into(), "staging".into());
    let copy = snapshot("copy", "vol-a", 6, &[(tags::SOURCE_REGION, "us-west-2")]);
    let fleet = [
        snapshot("a2", "vol-a", 24, &[]),
        snapshot(
            "a1",
            "vol-a",
            0,
            &[(CHANGED_BYTES, "8589934592"), (CHANGED_FROM, FULL)],
        ),
        snapshot("a3", "vol-a", 48, &[]),
        snapshot("b1", "vol-b", 12, &[]),
        pending,
        other,
        copy,
    ];
    let measures = to_measure(&fleet, DEPLOYMENT, 10, at(50));
    let pairs: Vec<(&str, Option<&str>)> = measures
        .iter()
        .map(|m| (m.snapshot_id.as_str(), m.previous.as_deref()))
        .collect();
    assert_eq!(
        pairs,
        vec![("b1", None), ("a2", Some("a1")), ("a3", Some("a2"))],
        "oldest first; only this deployment's own completed snapshots"
    );
    assert_eq!(
        to_measure(&fleet, DEPLOYMENT, 2, at(50)).len(),
        2,
        "at most the limit"
    );
}

#[test]
fn a_read_is_recorded_in_bytes_against_its_previous_or_as_full() {
    let incremental = Measure {
        snapshot_id: "a2".into(),
        volume_id: "vol-a".into(),
        previous: Some("a1".into()),
        previous_written: None,
    };
    assert_eq!(
        record(&incremental, 3, None),
        vec![
            (CHANGED_BYTES.to_owned(), "1572864".to_owned()),
            (CHANGED_FROM.to_owned(), "a1".to_owned())
        ]
    );
    assert_eq!(
        record(&incremental, 3, Some(7))[2],
        (WRITTEN_BYTES.to_owned(), "7".to_owned())
    );
    let first = Measure {
        previous: None,
        ..incremental
    };
    assert_eq!(record(&first, 0, None)[1].1, FULL);
    let tags: Vec<(String, String)> = record(&first, 16_384, Some(u64::MAX));
    assert!(
        tags.iter()
            .all(|(k, v)| k.len() <= 128 && v.len() <= tags::MAX_TAG_VALUE_CHARS)
    );
}

#[test]
fn what_a_snapshot_holds_follows_its_full_read_then_each_change() {
    let first = Measure {
        snapshot_id: "a1".into(),
        volume_id: "vol-a".into(),
        previous: None,
        previous_written: None,
    };
    let full = Changed {
        blocks: 100,
        new: 100,
        freed: 0,
    };
    assert_eq!(written(&first, full, None), Some(100 * BLOCK_BYTES));
    let next = Measure {
        snapshot_id: "a2".into(),
        previous: Some("a1".into()),
        ..first
    };
    // 30 blocks differ: 10 newly written, 5 freed, 15 rewritten.
    let change = Changed {
        blocks: 30,
        new: 10,
        freed: 5,
    };
    assert_eq!(
        written(&next, change, Some(100 * BLOCK_BYTES)),
        Some(105 * BLOCK_BYTES)
    );
    assert_eq!(
        written(&next, change, None),
        None,
        "unknown before, unknown now"
    );
    // The previous one's tag comes with the measure.
    let fleet = [
        snapshot(
            "a1",
            "vol-a",
            0,
            &[
                (CHANGED_BYTES, "52428800"),
                (CHANGED_FROM, FULL),
                (WRITTEN_BYTES, "52428800"),
            ],
        ),
        snapshot("a2", "vol-a", 24, &[]),
    ];
    let measures = to_measure(&fleet, DEPLOYMENT, 10, at(50));
    assert_eq!(measures[0].previous_written, Some(52_428_800));
}

#[test]
fn a_volumes_history_is_its_incremental_fractions_oldest_first() {
    let gib = (1u64 << 30).to_string();
    let half = (4u64 << 30).to_string();
    let fleet = [
        snapshot(
            "a1",
            "vol-a",
            0,
            &[(CHANGED_BYTES, "8589934592"), (CHANGED_FROM, FULL)],
        ),
        snapshot(
            "a3",
            "vol-a",
            48,
            &[(CHANGED_BYTES, half.as_str()), (CHANGED_FROM, "a2")],
        ),
        snapshot(
            "a2",
            "vol-a",
            24,
            &[(CHANGED_BYTES, gib.as_str()), (CHANGED_FROM, "a1")],
        ),
        snapshot("a4", "vol-a", 72, &[]),
        snapshot(
            "a5",
            "vol-a",
            96,
            &[(CHANGED_BYTES, "not a number"), (CHANGED_FROM, "a4")],
        ),
    ];
    // 8 GiB volumes: 1 GiB is 1/8, 4 GiB a half; the full first set, the unmeasured and the
    // unreadable are not history.
    assert_eq!(
        history(&fleet, DEPLOYMENT, "vol-a", at(100)),
        vec![("a2".to_owned(), 0.125), ("a3".to_owned(), 0.5)]
    );
    assert!(history(&fleet, DEPLOYMENT, "vol-x", at(100)).is_empty());
}
