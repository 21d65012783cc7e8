//! The ransomware tripwire's judgement, without I/O: whether a set's changed fraction is far
//! above what its volume's own history makes normal (periodic spikes such as a weekly dump
//! learned from that history), how random a sample of changed blocks looks, and what a trip
//! holds: the tag that suspends an instance's expiry until an operator clears it, the clean set
//! before the spike and the lock that pins it.

use crate::locks::{self, LockMode, LockRequest, LockRule, LockState, SnapshotLock};
use crate::model::{Snapshot, SnapshotState};
use crate::tags;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

#[cfg(test)]
mod tests;

/// How many earlier incremental sets of a volume it takes before its changes are judged at
/// all (two weeks of a daily schedule: a weekly spike is seen twice); a volume with less
/// history is never flagged. A volume's first set is full, not a change, and is no history.
pub const MIN_HISTORY: usize = 14;
/// A set that changes less than this fraction of its volume is never suspicious, whatever the
/// history: a quiet volume's ordinary day is not an attack.
pub const FLOOR: f64 = 0.2;
/// The default sensitivity: how many times the volume's usual peak a set must change.
pub const DEFAULT_MULTIPLIER: f64 = 1.5;
/// Bits per byte above which sampled blocks look encrypted (random data is close to 8).
pub const ENCRYPTED_BITS_PER_BYTE: f64 = 7.5;

/// How long a trip pins the clean set before the spike, by default, in days.
pub const DEFAULT_PIN_DAYS: u32 = 30;

/// The tripwire's settings for an environment: its sensitivity and the pin a trip makes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A set is suspicious when it changes more than this many times the volume's usual peak.
    pub multiplier: f64,
    /// ...and more than this fraction of the volume.
    pub floor: f64,
    /// How many days a trip locks the clean set before the spike.
    #[serde(default = "default_pin_days")]
    pub pin_days: u32,
    /// The lock's mode: governance (an administrator holding `ec2:UnlockSnapshot` can lift it)
    /// or compliance (nobody can, until it ends).
    #[serde(default = "default_pin_mode")]
    pub pin_mode: LockMode,
    /// How many of a suspicious set's changed blocks to read (`GetSnapshotBlock`, 512 KiB
    /// each) to confirm it looks encrypted before flagging it; 0, flagged on its size alone.
    #[serde(default)]
    pub sample_blocks: u32,
}

fn default_pin_days() -> u32 {
    DEFAULT_PIN_DAYS
}

fn default_pin_mode() -> LockMode {
    LockMode::Governance
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            multiplier: DEFAULT_MULTIPLIER,
            floor: FLOOR,
            pin_days: DEFAULT_PIN_DAYS,
            pin_mode: LockMode::Governance,
            sample_blocks: 0,
        }
    }
}

/// Equal as numbers: [`Settings::problem`] refuses a NaN, so equality is total on every value
/// a deployment runs with.
impl Eq for Settings {}

impl Settings {
    /// What is wrong with these settings, with the fix.
    pub fn problem(&self) -> Option<String> {
        if !(1.0..=100.0).contains(&self.multiplier) {
            return Some(format!(
                "tripwire.multiplier {} is not 1 to 100 (how many times a volume's usual peak a \
                 set must change to be suspicious; default {DEFAULT_MULTIPLIER})",
                self.multiplier
            ));
        }
        if !(0.01..=1.0).contains(&self.floor) {
            return Some(format!(
                "tripwire.floor {} is not 0.01 to 1 (the least fraction of a volume a suspicious \
                 set changes; default {FLOOR})",
                self.floor
            ));
        }
        if !(1..=locks::MAX_LOCK_DAYS).contains(&self.pin_days) {
            return Some(format!(
                "tripwire.pin_days {} is not 1 to {} (how many days a trip locks the clean set \
                 before the spike, EC2's lock range; default {DEFAULT_PIN_DAYS})",
                self.pin_days,
                locks::MAX_LOCK_DAYS
            ));
        }
        if self.sample_blocks > MAX_SAMPLE_BLOCKS {
            return Some(format!(
                "tripwire.sample_blocks {} is more than {MAX_SAMPLE_BLOCKS} (how many of a \
                 suspicious set's changed blocks are read to confirm they look encrypted; 0 \
                 reads none)",
                self.sample_blocks
            ));
        }
        None
    }
}

/// The most changed blocks a suspicious set has read (each 512 KiB, $0.003 per 1,000).
pub const MAX_SAMPLE_BLOCKS: u32 = 32;

/// Up to `count` of `items`, spread evenly over them.
pub fn spread<T>(items: &[T], count: usize) -> Vec<&T> {
    if count == 0 || items.is_empty() {
        return Vec::new();
    }
    let stride = items.len().div_ceil(count).max(1);
    items.iter().step_by(stride).take(count).collect()
}

/// The mean of `values`, `None` for none.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// What the tripwire makes of one set of one volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Too little history to judge: never flagged.
    Learning { history: usize },
    /// Within what the volume's history makes normal.
    Normal { threshold: f64 },
    /// Far above it: the set changed `fraction`; the volume's usual peak is `usual_peak` and
    /// its median `median`.
    Suspicious {
        fraction: f64,
        usual_peak: f64,
        median: f64,
        threshold: f64,
    },
}

impl Verdict {
    pub fn is_suspicious(&self) -> bool {
        matches!(self, Verdict::Suspicious { .. })
    }
}

/// Judges a set that changed `fraction` (0-1) of its volume, given the fractions of the
/// volume's earlier sets (`history`, any order). The usual peak is the history's largest
/// change once its single largest is set aside (one odd day does not raise the bar), which
/// learns a periodic spike such as a weekly full dump as normal while it recurs.
pub fn judge(history: &[f64], fraction: f64, sensitivity: Settings) -> Verdict {
    let mut sorted: Vec<f64> = history
        .iter()
        .copied()
        .filter(|f| f.is_finite())
        .map(|f| f.clamp(0.0, 1.0))
        .collect();
    if sorted.len() < MIN_HISTORY {
        return Verdict::Learning {
            history: sorted.len(),
        };
    }
    sorted.sort_by(f64::total_cmp);
    let usual_peak = sorted[sorted.len() - 2];
    let median = sorted[sorted.len() / 2];
    let threshold = (usual_peak * sensitivity.multiplier).max(sensitivity.floor);
    if fraction > threshold {
        Verdict::Suspicious {
            fraction,
            usual_peak,
            median,
            threshold,
        }
    } else {
        Verdict::Normal { threshold }
    }
}

/// Shannon entropy of `data` in bits per byte (0 for no data).
pub fn bits_per_byte(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for byte in data {
        counts[usize::from(*byte)] += 1;
    }
    let total = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Whether sampled blocks look encrypted: most of them above [`ENCRYPTED_BITS_PER_BYTE`].
pub fn looks_encrypted(samples: &[f64]) -> bool {
    !samples.is_empty()
        && samples
            .iter()
            .filter(|bits| **bits >= ENCRYPTED_BITS_PER_BYTE)
            .count()
            * 2
            > samples.len()
}

/// The value of [`tags::TRIPWIRE`] on a suspicious snapshot until an operator clears the trip.
const TRIPPED: &str = "tripped";
/// ...and once cleared: expiry resumes, the pin runs out.
const CLEARED: &str = "cleared";

/// [`tags::TRIPWIRE`]'s value on a snapshot flagged at `at`.
pub fn tripped(at: OffsetDateTime) -> String {
    format!("{TRIPPED} {}", tags::format_time(at))
}

/// [`tags::TRIPWIRE`]'s value once an operator cleared the trip at `at`.
pub fn cleared(at: OffsetDateTime) -> String {
    format!("{CLEARED} {}", tags::format_time(at))
}

/// When the snapshot's trip was raised, while it is not cleared. A value that is neither
/// `tripped <time>` nor `cleared <time>` (written by hand) counts as tripped: only the
/// operator's clear resumes expiry.
pub fn tripped_at(snapshot: &Snapshot) -> Option<OffsetDateTime> {
    let value = snapshot.tag(tags::TRIPWIRE)?;
    if value.starts_with(CLEARED) {
        return None;
    }
    Some(
        value
            .strip_prefix(TRIPPED)
            .and_then(|at| tags::parse_time(at.trim()).ok())
            .unwrap_or(snapshot.start_time),
    )
}

/// The command that restores `instance`'s clean set made at `at` (RFC 3339), in `env`.
pub fn restore_command(env: &str, instance: &str, at: &str) -> String {
    format!("cargo xtask restore --env {env} --instance {instance} --at {at}")
}

/// The command an operator runs once the incident is handled.
pub fn clear_command(env: &str, instance: &str) -> String {
    format!("cargo xtask tripwire --env {env} --clear --instance {instance}")
}

/// An instance whose expiry a trip suspends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// Its suspicious snapshots (one per volume that spiked), by id.
    pub snapshots: Vec<String>,
    /// The first of them to trip.
    pub since: OffsetDateTime,
    /// When the suspicious set was made: the clean set is the newest before it.
    pub set_at: OffsetDateTime,
}

/// The instances of this deployment with a trip not cleared, by instance id.
pub fn trips(
    snapshots: &[Snapshot],
    deployment: &str,
    now: OffsetDateTime,
) -> BTreeMap<String, Trip> {
    let mut found: BTreeMap<String, Trip> = BTreeMap::new();
    for snapshot in snapshots {
        if snapshot.tag(tags::MANAGED_BY) != Some(deployment) {
            continue;
        }
        let (Some(at), Some(instance)) = (tripped_at(snapshot), snapshot.tag(tags::INSTANCE_ID))
        else {
            continue;
        };
        let made = snapshot.made_at_by(now);
        let trip = found.entry(instance.to_owned()).or_insert_with(|| Trip {
            snapshots: Vec::new(),
            since: at,
            set_at: made,
        });
        trip.snapshots.push(snapshot.id.clone());
        trip.since = trip.since.min(at);
        trip.set_at = trip.set_at.min(made);
    }
    found
}

/// The clean set of `instance`: this deployment's completed snapshots (not copies) of the
/// newest set made before `suspicious_at`, with that set's time; `None` when it has none.
pub fn clean_set<'a>(
    snapshots: &'a [Snapshot],
    deployment: &str,
    instance: &str,
    suspicious_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<(OffsetDateTime, Vec<&'a Snapshot>)> {
    let earlier: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| {
            s.tag(tags::MANAGED_BY) == Some(deployment)
                && s.tag(tags::INSTANCE_ID) == Some(instance)
                && !s.tags.contains_key(tags::SOURCE_REGION)
                && s.state == SnapshotState::Completed
                && s.made_at_by(now) < suspicious_at
        })
        .collect();
    let at = earlier.iter().map(|s| s.made_at_by(now)).max()?;
    let set = earlier
        .into_iter()
        .filter(|s| s.made_at_by(now) == at)
        .collect();
    Some((at, set))
}

/// The locks that pin `clean` (a set's snapshots) for the settings' `pin_days` from the trip
/// (`since`): asked again by each run until they hold (a failed or lost call), never renewed
/// past that, and none once less than EC2's shortest lock is left. A snapshot already locked
/// at least that long is left as it is; one under a compliance lock is extended in compliance
/// mode (EC2 never turns compliance into governance).
pub fn pins(
    clean: &[&Snapshot],
    locks: &BTreeMap<String, SnapshotLock>,
    settings: Settings,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Vec<LockRequest> {
    let until = since + Duration::days(i64::from(settings.pin_days));
    if until - now < locks::MIN_LOCK {
        return Vec::new();
    }
    clean
        .iter()
        .filter_map(|snapshot| {
            let lock = locks::in_force(locks, &snapshot.id);
            if lock.is_some_and(|l| l.expires_on.is_some_and(|end| end >= until)) {
                return None;
            }
            let compliance = matches!(
                lock.map(|l| l.state),
                Some(LockState::Compliance | LockState::ComplianceCooloff)
            );
            let mode = if compliance {
                LockMode::Compliance
            } else {
                settings.pin_mode
            };
            Some(LockRequest {
                snapshot_id: snapshot.id.clone(),
                rule: LockRule {
                    mode,
                    cool_off_hours: None,
                },
                until,
            })
        })
        .collect()
}
