//! What each set changed, planned without I/O: which of this deployment's snapshots still need
//! their changed blocks read (and against which earlier snapshot of the same volume), the tag
//! that records the answer on the snapshot, and each volume's history of changed fractions the
//! tripwire judges.

use crate::model::{Snapshot, SnapshotState};
use crate::tags;
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[cfg(test)]
mod tests;

pub use crate::tags::{CHANGED_BYTES, CHANGED_FROM, WRITTEN_BYTES};
/// The value of [`CHANGED_FROM`] for a volume's first snapshot.
pub const FULL: &str = "full";
/// The EBS direct APIs' block size.
pub const BLOCK_BYTES: u64 = 524_288;

/// What `ListChangedBlocks` found between two snapshots of a volume, in blocks: every block
/// that differs, those of them the first snapshot did not have (written since) and those the
/// second no longer has (freed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    pub blocks: u64,
    pub new: u64,
    pub freed: u64,
}

/// One read to make: what `snapshot_id` changed against `previous` (its volume's previous
/// completed snapshot of this deployment), or every block it holds when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    pub snapshot_id: String,
    pub volume_id: String,
    pub previous: Option<String>,
    /// The bytes of data `previous` holds, as recorded on it ([`WRITTEN_BYTES`]).
    pub previous_written: Option<u64>,
}

/// A snapshot's volume: its source's for a copy, else its own.
fn volume_of(snapshot: &Snapshot) -> Option<&str> {
    snapshot
        .tag(tags::SOURCE_VOLUME)
        .or(snapshot.volume_id.as_deref())
}

/// This deployment's own completed snapshots (not copies), by volume, oldest first.
pub fn by_volume<'a>(
    snapshots: &'a [Snapshot],
    deployment: &str,
    now: OffsetDateTime,
) -> BTreeMap<&'a str, Vec<&'a Snapshot>> {
    let mut found: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for snapshot in snapshots {
        if snapshot.tag(tags::MANAGED_BY) != Some(deployment)
            || snapshot.tags.contains_key(tags::SOURCE_REGION)
            || snapshot.state != SnapshotState::Completed
        {
            continue;
        }
        if let Some(volume) = volume_of(snapshot) {
            found.entry(volume).or_default().push(snapshot);
        }
    }
    for list in found.values_mut() {
        list.sort_by(|a, b| {
            a.made_at_by(now)
                .cmp(&b.made_at_by(now))
                .then_with(|| a.id.cmp(&b.id))
        });
    }
    found
}

/// The snapshots still to measure, oldest first, at most `limit`: each without
/// [`CHANGED_BYTES`], against the snapshot before it on its volume (none for the first).
pub fn to_measure(
    snapshots: &[Snapshot],
    deployment: &str,
    limit: usize,
    now: OffsetDateTime,
) -> Vec<Measure> {
    let mut found = Vec::new();
    for (volume, list) in by_volume(snapshots, deployment, now) {
        for (index, snapshot) in list.iter().enumerate() {
            if snapshot.tags.contains_key(CHANGED_BYTES) {
                continue;
            }
            found.push((
                snapshot.made_at_by(now),
                Measure {
                    snapshot_id: snapshot.id.clone(),
                    volume_id: volume.to_owned(),
                    previous: index.checked_sub(1).map(|i| list[i].id.clone()),
                    previous_written: index
                        .checked_sub(1)
                        .and_then(|i| list[i].tag(WRITTEN_BYTES)?.parse().ok()),
                },
            ));
        }
    }
    found.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.snapshot_id.cmp(&b.1.snapshot_id))
    });
    found.into_iter().take(limit).map(|(_, m)| m).collect()
}

/// The bytes of data a snapshot holds after a read found `changed` against its previous one
/// (which held `previous_written`), or after a full read; `None` when the previous one's is
/// unknown.
pub fn written(measure: &Measure, changed: Changed, previous_written: Option<u64>) -> Option<u64> {
    let blocks = |n: u64| n.saturating_mul(BLOCK_BYTES);
    match &measure.previous {
        None => Some(blocks(changed.blocks)),
        Some(_) => Some(
            previous_written?
                .saturating_add(blocks(changed.new))
                .saturating_sub(blocks(changed.freed)),
        ),
    }
}

/// The tags that record a read: the bytes changed (blocks times the block size), against what,
/// and the bytes of data the snapshot holds when known.
pub fn record(
    measure: &Measure,
    changed_blocks: u64,
    written: Option<u64>,
) -> Vec<(String, String)> {
    let mut tags = vec![
        (
            CHANGED_BYTES.to_owned(),
            changed_blocks.saturating_mul(BLOCK_BYTES).to_string(),
        ),
        (
            CHANGED_FROM.to_owned(),
            measure.previous.clone().unwrap_or_else(|| FULL.to_owned()),
        ),
    ];
    if let Some(bytes) = written {
        tags.push((WRITTEN_BYTES.to_owned(), bytes.to_string()));
    }
    tags
}

/// A volume's changed fractions (changed bytes over the volume's size), oldest first, from the
/// recorded tags of its incremental snapshots (not its full first one), with the snapshot each
/// belongs to.
pub fn history(
    snapshots: &[Snapshot],
    deployment: &str,
    volume: &str,
    now: OffsetDateTime,
) -> Vec<(String, f64)> {
    histories(snapshots, deployment, now)
        .remove(volume)
        .unwrap_or_default()
}

/// Every volume's [`history`], read in one pass over the snapshots.
pub fn histories(
    snapshots: &[Snapshot],
    deployment: &str,
    now: OffsetDateTime,
) -> BTreeMap<String, Vec<(String, f64)>> {
    by_volume(snapshots, deployment, now)
        .into_iter()
        .map(|(volume, list)| {
            let fractions = list
                .iter()
                .filter(|s| s.tag(CHANGED_FROM).is_some_and(|from| from != FULL))
                .filter_map(|s| {
                    let bytes: u64 = s.tag(CHANGED_BYTES)?.parse().ok()?;
                    let size = u64::try_from(s.size_gib).ok().filter(|g| *g > 0)? << 30;
                    Some((s.id.clone(), (bytes as f64 / size as f64).min(1.0)))
                })
                .collect();
            (volume.to_owned(), fractions)
        })
        .collect()
}
