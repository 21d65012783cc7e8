//! Restore testing (pure): which instances' newest completed sets a test restores, the volume
//! each snapshot becomes (in its recorded zone, as it was), and what the results add up to.
//! `restore_test_run.rs` carries it out against EC2.

use crate::model::{Inventory, Snapshot, SnapshotState};
use crate::plan::Subject;
use crate::report::{Failure, RestoreTest, TestStatus};
use crate::restore_records::{self, VolumeRecord};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// On every volume a restore test creates, from `CreateVolume` on: the deployment's name. The
/// function may delete only volumes carrying it (IAM says so too).
pub const TAG: &str = "smartvault:restore-test";
/// On the topic: the last instance a scheduled test sampled, so that the next one goes on
/// with the instances after it and every instance is tested in turn.
pub const CURSOR_TAG: &str = "smartvault:restore-test-cursor";

/// How many instances one test samples.
pub const SAMPLE_RANGE: std::ops::RangeInclusive<u32> = 1..=20;
/// How long a test waits for its volumes to become `available`, in seconds: at least 30, at
/// most 14 minutes (Lambda's 15-minute limit, less time to clean up and report).
pub const WAIT_RANGE: std::ops::RangeInclusive<u32> = 30..=840;

/// The `restore_test` settings: how many instances each test samples, and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub sample: u32,
    pub max_wait_seconds: u32,
}

impl Settings {
    /// Why these settings are not acceptable, or `None`.
    pub fn problem(&self) -> Option<String> {
        if !SAMPLE_RANGE.contains(&self.sample) {
            return Some(format!(
                "sample {} is outside {}-{} instances per test",
                self.sample,
                SAMPLE_RANGE.start(),
                SAMPLE_RANGE.end()
            ));
        }
        if !WAIT_RANGE.contains(&self.max_wait_seconds) {
            return Some(format!(
                "max_wait_seconds {} is outside {}-{}",
                self.max_wait_seconds,
                WAIT_RANGE.start(),
                WAIT_RANGE.end()
            ));
        }
        None
    }
}

/// One instance's set that a test restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSet {
    pub instance_id: String,
    /// When its run started (`created-at`).
    pub created_at: OffsetDateTime,
    pub volumes: Vec<TestVolume>,
}

/// One volume a test creates from a snapshot of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestVolume {
    pub snapshot_id: String,
    /// The volume the snapshot was taken of.
    pub source_volume_id: Option<String>,
    pub device: Option<String>,
    pub availability_zone: String,
    pub details: crate::restore_records::VolumeDetails,
    pub size_gib: i32,
}

/// What one test restores, and what it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub sets: Vec<TestSet>,
    /// Instances asked for that cannot be tested (no completed set, no recorded zone).
    pub failed: Vec<Failure>,
    /// The cursor after this test: the last instance sampled.
    pub cursor: Option<String>,
    /// How many instances have a completed set to test.
    pub candidates: usize,
}

/// Each instance's newest set whose snapshots are all completed, by instance id.
fn newest_completed_sets(
    snapshots: &[Snapshot],
) -> BTreeMap<&str, (OffsetDateTime, Vec<&Snapshot>)> {
    let sets = crate::model::sets(snapshots);
    let mut newest: BTreeMap<&str, (OffsetDateTime, Vec<&Snapshot>)> = BTreeMap::new();
    // Oldest first, so a newer completed set replaces an older one.
    for ((instance, made), set) in sets {
        if set.iter().all(|s| s.state == SnapshotState::Completed) {
            newest.insert(instance, (made, set));
        }
    }
    newest
}

/// Picks the sets a test restores. With `chosen` (an event naming instances), those
/// instances' newest completed sets; otherwise `sample` instances in turn, starting after the
/// `cursor` left by the last test (in instance-id order, wrapping around), so that every
/// instance with a set is tested once every `candidates / sample` tests.
pub fn sample(
    inventory: &Inventory,
    sample: u32,
    chosen: Option<&BTreeSet<String>>,
    cursor: Option<&str>,
) -> Sample {
    let sets = newest_completed_sets(&inventory.snapshots);
    let ids: Vec<&str> = sets.keys().copied().collect();
    let mut out = Sample {
        candidates: ids.len(),
        ..Sample::default()
    };
    let picked: Vec<&str> = match chosen {
        Some(chosen) => {
            for id in chosen.iter().filter(|id| !sets.contains_key(id.as_str())) {
                out.failed.push(problem(
                    id,
                    "SmartVault.NoCompletedSet",
                    "has no completed set of this deployment in this region to test; back it \
                     up first (and wait for its snapshots to complete), or name another \
                     instance",
                ));
            }
            chosen
                .iter()
                .filter_map(|id| sets.get_key_value(id.as_str()).map(|(k, _)| *k))
                .collect()
        }
        None => {
            let start = cursor.map_or(0, |after| ids.partition_point(|id| *id <= after));
            let take = (sample as usize).min(ids.len());
            let picked: Vec<&str> = ids.iter().cycle().skip(start).take(take).copied().collect();
            out.cursor = picked.last().map(|id| (*id).to_owned());
            picked
        }
    };
    for instance in picked {
        let Some((made, snapshots)) = sets.get(instance) else {
            continue;
        };
        match test_set(instance, *made, snapshots) {
            Ok(set) => out.sets.push(set),
            Err(failure) => out.failed.push(failure),
        }
    }
    out
}

fn problem(instance: &str, code: &str, message: &str) -> Failure {
    Failure {
        subject: Some(Subject::Instance(instance.to_owned())),
        operation: "RestoreTest".to_owned(),
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

fn test_set(
    instance: &str,
    made: OffsetDateTime,
    snapshots: &[&Snapshot],
) -> Result<TestSet, Failure> {
    let zone = snapshots
        .iter()
        .find_map(|s| s.tags.get(restore_records::AVAILABILITY_ZONE))
        .ok_or_else(|| {
            problem(
                instance,
                "SmartVault.NoRecordedZone",
                "its newest completed set has no recorded availability zone (it was made \
                 before SmartVault recorded one); the next backup records it",
            )
        })?;
    let mut volumes: Vec<TestVolume> = snapshots
        .iter()
        .map(|snapshot| {
            let record = snapshot
                .volume_id
                .as_deref()
                .and_then(|volume| VolumeRecord::of(&snapshot.tags, volume))
                .unwrap_or_default();
            TestVolume {
                snapshot_id: snapshot.id.clone(),
                source_volume_id: snapshot.volume_id.clone(),
                device: (!record.device.is_empty()).then(|| record.device.clone()),
                availability_zone: zone.clone(),
                details: record.details.settable(),
                size_gib: snapshot.size_gib,
            }
        })
        .collect();
    volumes.sort_by(|a, b| (&a.device, &a.snapshot_id).cmp(&(&b.device, &b.snapshot_id)));
    Ok(TestSet {
        instance_id: instance.to_owned(),
        created_at: made,
        volumes,
    })
}

/// What became of one test volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeOutcome {
    /// It became `available` this many milliseconds after `CreateVolume` was sent.
    Available { volume_id: String, ms: u64 },
    /// `CreateVolume` was refused, or the volume went to `error`, or it was not `available`
    /// within the wait.
    Failed(Failure),
    /// A dry run: nothing was created.
    Planned,
}

/// One set's result from its volumes' outcomes (in the set's volume order): passed when every
/// volume became `available`; the failures are the run's.
pub fn result(set: &TestSet, outcomes: &[VolumeOutcome]) -> (RestoreTest, Vec<Failure>) {
    let failed: Vec<Failure> = outcomes
        .iter()
        .filter_map(|o| match o {
            VolumeOutcome::Failed(failure) => Some(failure.clone()),
            _ => None,
        })
        .collect();
    let status = if outcomes.iter().all(|o| *o == VolumeOutcome::Planned) {
        TestStatus::Planned
    } else if failed.is_empty() && outcomes.len() == set.volumes.len() {
        TestStatus::Passed
    } else {
        TestStatus::Failed
    };
    let slowest = outcomes
        .iter()
        .filter_map(|o| match o {
            VolumeOutcome::Available { ms, .. } => Some(*ms),
            _ => None,
        })
        .max();
    let test = RestoreTest {
        instance_id: set.instance_id.clone(),
        set_created_at: crate::tags::format_time(set.created_at),
        availability_zone: set
            .volumes
            .first()
            .map(|v| v.availability_zone.clone())
            .unwrap_or_default(),
        volumes: set.volumes.len(),
        size_gib: set.volumes.iter().map(|v| i64::from(v.size_gib)).sum(),
        status,
        slowest_ms: slowest,
    };
    (test, failed)
}

#[cfg(test)]
mod tests;
