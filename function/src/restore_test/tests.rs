//! Tables for the restore test's sampling, volumes and results.

use super::*;
use crate::tags::{self, Tags};
use time::macros::datetime;

const ZONE: &str = "us-east-1b";

/// A snapshot of `instance`'s set made at `made` (hours after a fixed time), of `volume` at
/// `device` as a gp3 volume with 4000 IOPS and 250 MB/s.
fn snapshot(
    instance: &str,
    made: i64,
    volume: &str,
    device: &str,
    state: SnapshotState,
) -> Snapshot {
    let at = datetime!(2026-11-20 01:00 UTC) + time::Duration::hours(made);
    let mut tags = Tags::from([
        (tags::INSTANCE_ID.to_owned(), instance.to_owned()),
        (tags::CREATED_AT.to_owned(), crate::tags::format_time(at)),
        (
            restore_records::AVAILABILITY_ZONE.to_owned(),
            ZONE.to_owned(),
        ),
    ]);
    let record = VolumeRecord {
        device: device.to_owned(),
        details: crate::restore_records::VolumeDetails {
            volume_type: Some("gp3".to_owned()),
            iops: Some(4000),
            throughput: Some(250),
        },
    };
    tags.insert(VolumeRecord::key(volume), record.value());
    Snapshot {
        tier: Default::default(),
        id: format!("snap-{instance}-{made}-{volume}"),
        volume_id: Some(volume.to_owned()),
        start_time: at,
        state,
        size_gib: 8,
        encrypted: false,
        kms_key: None,
        tags,
    }
}

fn inventory(snapshots: Vec<Snapshot>) -> Inventory {
    Inventory {
        snapshots,
        ..Inventory::default()
    }
}

fn fleet(instances: &[&str]) -> Inventory {
    inventory(
        instances
            .iter()
            .map(|i| {
                snapshot(
                    i,
                    0,
                    &format!("vol-{i}"),
                    "/dev/xvda",
                    SnapshotState::Completed,
                )
            })
            .collect(),
    )
}

fn sampled(sample: &Sample) -> Vec<&str> {
    sample.sets.iter().map(|s| s.instance_id.as_str()).collect()
}

#[test]
fn samples_go_round_the_fleet_so_every_instance_is_tested_in_turn() {
    let fleet = fleet(&["i-5", "i-1", "i-3", "i-2", "i-4"]);
    let first = super::sample(&fleet, 2, None, None);
    assert_eq!(first.candidates, 5);
    assert_eq!(sampled(&first), ["i-1", "i-2"]);
    assert_eq!(first.cursor.as_deref(), Some("i-2"));
    let second = super::sample(&fleet, 2, None, first.cursor.as_deref());
    assert_eq!(sampled(&second), ["i-3", "i-4"]);
    let third = super::sample(&fleet, 2, None, second.cursor.as_deref());
    assert_eq!(sampled(&third), ["i-5", "i-1"], "wraps around");
    // A cursor whose instance is gone goes on with the next id after it.
    let gone = super::sample(&fleet, 1, None, Some("i-25"));
    assert_eq!(sampled(&gone), ["i-3"]);
    // A sample larger than the fleet tests each instance once.
    let all = super::sample(&fleet, 20, None, Some("i-3"));
    assert_eq!(sampled(&all), ["i-4", "i-5", "i-1", "i-2", "i-3"]);
    let none = super::sample(&inventory(Vec::new()), 3, None, Some("i-1"));
    assert!(none.sets.is_empty() && none.failed.is_empty());
    assert_eq!((none.candidates, none.cursor), (0, None));
}

#[test]
fn the_newest_set_whose_snapshots_are_all_completed_is_the_one_tested() {
    let snapshots = vec![
        snapshot("i-1", 0, "vol-a", "/dev/xvda", SnapshotState::Completed),
        snapshot("i-1", 0, "vol-b", "/dev/sdf", SnapshotState::Completed),
        snapshot("i-1", 24, "vol-a", "/dev/xvda", SnapshotState::Completed),
        snapshot("i-1", 24, "vol-b", "/dev/sdf", SnapshotState::Completed),
        // The newest set is not completed yet: one of its snapshots is still pending.
        snapshot("i-1", 48, "vol-a", "/dev/xvda", SnapshotState::Completed),
        snapshot("i-1", 48, "vol-b", "/dev/sdf", SnapshotState::Pending),
        // An instance whose only set failed has nothing to test.
        snapshot("i-2", 48, "vol-c", "/dev/xvda", SnapshotState::Error),
    ];
    let sample = super::sample(&inventory(snapshots), 5, None, None);
    assert_eq!(sample.candidates, 1);
    assert_eq!(sampled(&sample), ["i-1"]);
    let set = &sample.sets[0];
    assert_eq!(set.created_at, datetime!(2026-11-21 01:00 UTC));
    let volumes: Vec<(&str, Option<&str>)> = set
        .volumes
        .iter()
        .map(|v| (v.snapshot_id.as_str(), v.device.as_deref()))
        .collect();
    assert_eq!(
        volumes,
        [
            ("snap-i-1-24-vol-b", Some("/dev/sdf")),
            ("snap-i-1-24-vol-a", Some("/dev/xvda"))
        ]
    );
    let volume = &set.volumes[0];
    assert_eq!(volume.availability_zone, ZONE);
    assert_eq!(
        (
            volume.details.volume_type.as_deref(),
            volume.details.iops,
            volume.details.throughput,
            volume.size_gib
        ),
        (Some("gp3"), Some(4000), Some(250), 8),
        "restored as it was backed up"
    );
}

#[test]
fn named_instances_are_tested_and_those_without_a_set_or_a_zone_fail_with_the_fix() {
    let mut old = snapshot("i-3", 0, "vol-3", "/dev/xvda", SnapshotState::Completed);
    old.tags.remove(restore_records::AVAILABILITY_ZONE);
    let mut snapshots = fleet(&["i-1", "i-2"]).snapshots;
    snapshots.push(old);
    let chosen = BTreeSet::from(["i-2".to_owned(), "i-3".to_owned(), "i-9".to_owned()]);
    let sample = super::sample(&inventory(snapshots), 1, Some(&chosen), Some("i-1"));
    assert_eq!(
        sampled(&sample),
        ["i-2"],
        "named instances, whatever the sample size"
    );
    assert_eq!(
        sample.cursor, None,
        "naming instances does not move the cursor"
    );
    let failed: Vec<(String, &str)> = sample
        .failed
        .iter()
        .map(|f| (f.subject.as_ref().unwrap().to_string(), f.code.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            ("instance i-9".to_owned(), "SmartVault.NoCompletedSet"),
            ("instance i-3".to_owned(), "SmartVault.NoRecordedZone"),
        ]
    );
    assert!(sample.failed[0].message.contains("back it up first"));
    assert!(
        sample.failed[1]
            .message
            .contains("the next backup records it")
    );
}

#[test]
fn a_set_passes_only_when_every_volume_became_available() {
    let set = super::sample(
        &inventory(vec![
            snapshot("i-1", 0, "vol-a", "/dev/xvda", SnapshotState::Completed),
            snapshot("i-1", 0, "vol-b", "/dev/sdf", SnapshotState::Completed),
        ]),
        1,
        None,
        None,
    )
    .sets
    .remove(0);
    let available = |ms| VolumeOutcome::Available {
        volume_id: "vol-new".into(),
        ms,
    };
    let refused = VolumeOutcome::Failed(Failure {
        subject: Some(Subject::Snapshot("snap-x".into())),
        operation: "CreateVolume".into(),
        code: "UnauthorizedOperation".into(),
        message: "no".into(),
    });
    let (passed, failures) = result(&set, &[available(1200), available(3400)]);
    assert_eq!(passed.status, TestStatus::Passed);
    assert_eq!(passed.slowest_ms, Some(3400));
    assert_eq!((passed.volumes, passed.size_gib), (2, 16));
    assert_eq!(passed.availability_zone, ZONE);
    assert!(failures.is_empty());
    let (failed, failures) = result(&set, &[available(1200), refused]);
    assert_eq!(failed.status, TestStatus::Failed);
    assert_eq!(failures.len(), 1);
    let (short, _) = result(&set, &[available(1200)]);
    assert_eq!(
        short.status,
        TestStatus::Failed,
        "a volume with no outcome is no pass"
    );
    let (planned, _) = result(&set, &[VolumeOutcome::Planned, VolumeOutcome::Planned]);
    assert_eq!(
        (planned.status, planned.slowest_ms),
        (TestStatus::Planned, None)
    );
}

#[test]
fn settings_are_checked_against_their_ranges() {
    let ok = Settings {
        sample: 2,
        max_wait_seconds: 600,
    };
    assert_eq!(ok.problem(), None);
    for (bad, expected) in [
        (Settings { sample: 0, ..ok }, "sample 0 is outside 1-20"),
        (Settings { sample: 21, ..ok }, "sample 21 is outside 1-20"),
        (
            Settings {
                max_wait_seconds: 29,
                ..ok
            },
            "max_wait_seconds 29 is outside 30-840",
        ),
    ] {
        assert!(bad.problem().unwrap().contains(expected), "{bad:?}");
    }
}
