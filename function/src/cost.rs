//! What this deployment's sets store and cost, without I/O, from what the tripwire records on
//! each snapshot (`smartvault:written-bytes` on the oldest kept, `smartvault:changed-bytes` on
//! each later one): per instance and schedule, the bytes stored, the monthly price at a per-GB
//! rate, what deleting each set would free, and the same under other retention values.
//!
//! EBS bills the standard tier for the blocks it stores: a volume's oldest snapshot holds its
//! whole written data, each later one the blocks changed since the one before. So a volume
//! stores the bytes its oldest kept snapshot holds plus each later kept snapshot's changed
//! bytes: exact, at EBS's 512 KiB block size, when every kept snapshot was measured against the
//! one kept before it.

use crate::changes;
use crate::model::{Policy, Snapshot};
use crate::tags;
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[cfg(test)]
mod tests;

/// The standard tier's list price, in US dollars per GB-month (GB of 2^30 bytes), in US East
/// (N. Virginia); other regions differ: a command takes the user's rate.
pub const STANDARD_PRICE_PER_GB_MONTH: f64 = 0.05;
/// Where [`STANDARD_PRICE_PER_GB_MONTH`] is published.
pub const PRICE_SOURCE: &str = "the EBS user guide's \"Pricing and billing for archiving Amazon \
    EBS snapshots\" (standard rate $0.05 per GB-month, US East); every region's on \
    https://aws.amazon.com/ebs/pricing/";
const GIB: f64 = (1u64 << 30) as f64;

/// The monthly price of `bytes` at `price_per_gb_month`.
pub fn monthly(bytes: u64, price_per_gb_month: f64) -> f64 {
    bytes as f64 / GIB * price_per_gb_month
}

/// The archive tier's rate as a share of the standard tier's ($0.0125 against $0.05 a
/// GB-month, the same guide).
pub const ARCHIVE_SHARE: f64 = 0.25;

/// What archiving each measured snapshot would free in the standard tier: its blocks that no
/// later kept snapshot of its volume holds (an upper bound, as [`SetCost::frees_up_to`]), by
/// snapshot id (sorted).
pub fn frees_by_snapshot(
    snapshots: &[Snapshot],
    deployment: &str,
    now: OffsetDateTime,
) -> Vec<(String, u64)> {
    let mut frees = Vec::new();
    for chain in changes::by_volume(snapshots, deployment, now).values() {
        let parts = parts(chain);
        for (index, part) in parts.iter().enumerate() {
            // Known only when it and the snapshot after it were measured.
            let next_measured = parts.get(index + 1).is_none_or(|next| next.measured);
            if part.measured && next_measured {
                frees.push((part.snapshot.id.clone(), freed(&parts, index)));
            }
        }
    }
    frees.sort_unstable();
    frees
}

/// One set of an instance (its snapshots of one run), as the cost of keeping it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetCost {
    #[serde(with = "time::serde::rfc3339")]
    pub made_at: OffsetDateTime,
    /// Its `expires-at`, when readable.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The bytes it adds to what its volumes store.
    pub bytes: u64,
    /// At most what deleting it would free: its blocks that no other kept snapshot holds.
    pub frees_up_to: u64,
}

/// What an instance's sets of one schedule store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceCost {
    pub instance_id: String,
    pub schedule: String,
    pub volumes: usize,
    /// In the standard tier.
    pub bytes: u64,
    /// In the archive tier: its archived snapshots' full size, billed at a quarter of the
    /// standard rate.
    pub archived_bytes: u64,
    pub monthly_usd: f64,
    /// False when some snapshot is not measured yet, or was measured against one no longer
    /// kept: `bytes` is then a lower bound.
    pub exact: bool,
    /// Snapshots whose changed blocks are not read yet.
    pub unmeasured: usize,
    pub sets: Vec<SetCost>,
}

/// What the whole deployment stores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub price_per_gb_month: f64,
    pub bytes: u64,
    pub archived_bytes: u64,
    pub monthly_usd: f64,
    pub exact: bool,
    pub unmeasured: usize,
    pub instances: Vec<InstanceCost>,
}

/// One snapshot's part of its volume's storage.
struct Part<'a> {
    snapshot: &'a Snapshot,
    bytes: u64,
    changed: Option<u64>,
    exact: bool,
    measured: bool,
}

fn number(snapshot: &Snapshot, key: &str) -> Option<u64> {
    snapshot.tag(key)?.parse().ok()
}

/// Each kept snapshot's part of its volume's storage: the oldest holds its written bytes (its
/// full read's, or as carried along), each later one its changed bytes.
fn parts<'a>(chain: &[&'a Snapshot]) -> Vec<Part<'a>> {
    chain
        .iter()
        .enumerate()
        .map(|(index, snapshot)| {
            let changed = number(snapshot, changes::CHANGED_BYTES);
            let from = snapshot.tag(changes::CHANGED_FROM);
            if index == 0 {
                let written = number(snapshot, changes::WRITTEN_BYTES)
                    .or(changed.filter(|_| from == Some(changes::FULL)));
                return Part {
                    snapshot,
                    bytes: written.or(changed).unwrap_or(0),
                    changed,
                    exact: written.is_some(),
                    measured: changed.is_some(),
                };
            }
            let previous = chain[index - 1].id.as_str();
            Part {
                snapshot,
                bytes: changed.unwrap_or(0),
                changed,
                exact: changed.is_some() && from == Some(previous),
                measured: changed.is_some(),
            }
        })
        .collect()
}

/// What deleting (or archiving) the snapshot of `parts[index]` frees in the standard tier: its
/// own blocks that the next kept snapshot replaced; the newest's are held by no other.
fn freed(parts: &[Part<'_>], index: usize) -> u64 {
    let part = &parts[index];
    match parts.get(index + 1) {
        Some(next) => part.bytes.min(next.changed.unwrap_or(0)),
        None => part.bytes,
    }
}

/// Whose a snapshot's storage is: its instance (`-` when untagged) and its schedule.
fn owner_of(snapshot: &Snapshot) -> (String, String) {
    (
        snapshot.tag(tags::INSTANCE_ID).unwrap_or("-").to_owned(),
        tags::schedule_of(&snapshot.tags).to_owned(),
    )
}

/// What this deployment's kept snapshots store, per instance and schedule, at
/// `price_per_gb_month`.
pub fn estimate(
    snapshots: &[Snapshot],
    deployment: &str,
    price_per_gb_month: f64,
    now: OffsetDateTime,
) -> Estimate {
    let mut by_owner: BTreeMap<(String, String), InstanceCost> = BTreeMap::new();
    let mut sets: BTreeMap<(String, String, OffsetDateTime), SetCost> = BTreeMap::new();
    for chain in changes::by_volume(snapshots, deployment, now).values() {
        let parts = parts(chain);
        // A volume counts once for each instance and schedule it has sets of.
        let mut owners = std::collections::BTreeSet::new();
        for (index, part) in parts.iter().enumerate() {
            let snapshot = part.snapshot;
            let (instance, schedule) = owner_of(snapshot);
            owners.insert((instance.clone(), schedule.clone()));
            let frees = freed(&parts, index);
            let owner = by_owner
                .entry((instance.clone(), schedule.clone()))
                .or_insert_with(|| InstanceCost {
                    instance_id: instance.clone(),
                    schedule: schedule.clone(),
                    volumes: 0,
                    bytes: 0,
                    archived_bytes: 0,
                    monthly_usd: 0.0,
                    exact: true,
                    unmeasured: 0,
                    sets: Vec::new(),
                });
            // An archived snapshot is whole in the archive; of its blocks, only those later
            // snapshots still hold stay in the standard tier.
            if snapshot.tier == crate::model::Tier::Archive {
                owner.archived_bytes +=
                    number(snapshot, changes::WRITTEN_BYTES).unwrap_or(part.bytes);
                owner.bytes += part.bytes - frees;
            } else {
                owner.bytes += part.bytes;
            }
            owner.exact &= part.exact;
            owner.unmeasured += usize::from(!part.measured);
            let made_at = snapshot.made_at_by(now);
            let set = sets
                .entry((instance, schedule, made_at))
                .or_insert_with(|| SetCost {
                    made_at,
                    expires_at: snapshot
                        .tag(tags::EXPIRES_AT)
                        .and_then(|at| tags::parse_time(at).ok()),
                    bytes: 0,
                    frees_up_to: 0,
                });
            set.bytes += part.bytes;
            set.frees_up_to += frees;
        }
        for key in owners {
            if let Some(owner) = by_owner.get_mut(&key) {
                owner.volumes += 1;
            }
        }
    }
    for ((instance, schedule, _), set) in sets {
        if let Some(owner) = by_owner.get_mut(&(instance, schedule)) {
            owner.sets.push(set);
        }
    }
    let mut instances: Vec<InstanceCost> = by_owner.into_values().collect();
    let archive_price = price_per_gb_month * ARCHIVE_SHARE;
    for owner in &mut instances {
        owner.monthly_usd =
            monthly(owner.bytes, price_per_gb_month) + monthly(owner.archived_bytes, archive_price);
    }
    let bytes = instances.iter().map(|i| i.bytes).sum();
    let archived_bytes = instances.iter().map(|i| i.archived_bytes).sum();
    Estimate {
        price_per_gb_month,
        bytes,
        archived_bytes,
        monthly_usd: monthly(bytes, price_per_gb_month) + monthly(archived_bytes, archive_price),
        exact: instances.iter().all(|i| i.exact),
        unmeasured: instances.iter().map(|i| i.unmeasured).sum(),
        instances,
    }
}

/// What an instance's schedule would store kept by other retention values, in the steady
/// state: its volumes' data plus, for each further kept set, what its sets changed on average.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    pub instance_id: String,
    pub schedule: String,
    pub retention_days: u32,
    pub keep_last: u32,
    /// The sets that would be kept per volume.
    pub sets_kept: u32,
    pub bytes: u64,
    pub monthly_usd: f64,
}

/// [`WhatIf`] for every instance and schedule of `estimate`, by `retention_days` and
/// `keep_last` (each schedule's own where `None`), from `snapshots` (how often the schedule
/// makes sets and what they change).
pub fn what_if(
    snapshots: &[Snapshot],
    policy: &Policy,
    retention_days: Option<u32>,
    keep_last: Option<u32>,
    price_per_gb_month: f64,
    now: OffsetDateTime,
) -> Vec<WhatIf> {
    // Per instance and schedule: its volumes' data, the sum of each volume's average change
    // per set, and when its sets were made.
    let mut found: BTreeMap<(String, String), (u64, u64, Vec<OffsetDateTime>)> = BTreeMap::new();
    for chain in changes::by_volume(snapshots, &policy.deployment, now).values() {
        let parts = parts(chain);
        let data = chain
            .iter()
            .rev()
            .find_map(|s| number(s, changes::WRITTEN_BYTES))
            .unwrap_or_else(|| parts.first().map_or(0, |p| p.bytes));
        // Each part with its place in the chain: the oldest holds the data, not a change.
        let mut by_key: BTreeMap<(String, String), Vec<(usize, &Part)>> = BTreeMap::new();
        for (index, part) in parts.iter().enumerate() {
            by_key
                .entry(owner_of(part.snapshot))
                .or_default()
                .push((index, part));
        }
        for (key, mine) in by_key {
            let changes: Vec<u64> = mine
                .iter()
                .filter(|(index, _)| *index > 0)
                .filter_map(|(_, p)| p.changed)
                .collect();
            let average = if changes.is_empty() {
                0
            } else {
                changes.iter().sum::<u64>() / changes.len() as u64
            };
            let entry = found.entry(key).or_default();
            entry.0 += data;
            entry.1 += average;
            entry
                .2
                .extend(mine.iter().map(|(_, p)| p.snapshot.made_at_by(now)));
        }
    }
    found
        .into_iter()
        .map(|((instance, schedule), (data, average, mut times))| {
            let rule = policy.rule_for_snapshots(&schedule);
            let days = retention_days.unwrap_or(rule.retention_days);
            let last = keep_last.unwrap_or(rule.keep_last);
            times.sort();
            times.dedup();
            // Sets a day, from the schedule's own spacing (one a day when it cannot tell).
            let per_day = match (times.first(), times.last()) {
                (Some(first), Some(last)) if times.len() > 1 && last > first => {
                    (times.len() - 1) as f64 / ((*last - *first).as_seconds_f64() / 86_400.0)
                }
                _ => 1.0,
            };
            let by_days = (f64::from(days) * per_day).ceil() as u32;
            let sets_kept = by_days.max(last).max(1);
            let bytes = data + u64::from(sets_kept - 1) * average;
            WhatIf {
                instance_id: instance,
                schedule,
                retention_days: days,
                keep_last: last,
                sets_kept,
                bytes,
                monthly_usd: monthly(bytes, price_per_gb_month),
            }
        })
        .collect()
}
