//! Fast snapshot restore's plan (issue 33), pure: which of this deployment's snapshots a
//! schedule's `fast_restore` keeps ready in which zones (each covered instance's newest whole,
//! completed, standard-tier sets), and what a run enables and disables to get there, the
//! disables first so that no more than the configured sets are billed at once.

use crate::model::{Instance, Policy, Snapshot, Tier};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// One snapshot's fast snapshot restores to enable or disable, in `zones`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub snapshot_id: String,
    pub zones: Vec<String>,
}

/// What a run changes: the disables go first, so that no more than the configured sets are
/// ever enabled (and billed) at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub disable: Vec<Change>,
    /// Newest first: when the region's quota runs out, the newest sets have theirs.
    pub enable: Vec<Change>,
    /// Each wanted snapshot's zones: archiving leaves them alone.
    pub wanted: BTreeMap<String, BTreeSet<String>>,
}

/// A set and when it was made.
type Dated<'a> = (OffsetDateTime, Vec<&'a Snapshot>);

/// Which of this deployment's `snapshots` should be ready in which zones, and what changes
/// from `enabled` (snapshot id → zones enabling, optimizing or enabled now) to get there.
/// `instances` are the live ones, for the rule's tag; an instance gone keeps only what a rule
/// without a tag keeps.
pub fn plan(
    snapshots: &[Snapshot],
    instances: &[Instance],
    policy: &Policy,
    enabled: &BTreeMap<String, BTreeSet<String>>,
    now: OffsetDateTime,
) -> Plan {
    let tags_of: BTreeMap<&str, &crate::tags::Tags> =
        instances.iter().map(|i| (i.id.as_str(), &i.tags)).collect();
    // Each instance's whole, usable sets by schedule, newest first.
    let mut by_owner: BTreeMap<(&str, &str), Vec<Dated<'_>>> = BTreeMap::new();
    for ((instance, made_at), set) in crate::model::sets(snapshots) {
        let usable = set.iter().all(|s| {
            s.completed() && s.tier == Tier::Standard && s.tag(crate::tags::SOURCE_REGION).is_none()
        });
        if !usable || made_at > now + crate::model::CREATED_AT_SKEW {
            continue;
        }
        let schedule = crate::tags::schedule_of(&set[0].tags);
        by_owner
            .entry((instance, schedule))
            .or_default()
            .push((made_at, set));
    }
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut order: Vec<(OffsetDateTime, &str)> = Vec::new();
    for ((instance, schedule), mut sets) in by_owner {
        let Some(rule) = policy.rule(schedule).and_then(|r| r.fast_restore.as_ref()) else {
            continue;
        };
        let covered = match (&rule.tag, tags_of.get(instance)) {
            (None, _) => true,
            (Some(_), Some(tags)) => rule.covers(tags),
            (Some(_), None) => false,
        };
        if !covered {
            continue;
        }
        sets.sort_by_key(|set| std::cmp::Reverse(set.0));
        for (made_at, set) in sets.into_iter().take(rule.count as usize) {
            for snapshot in set {
                wanted
                    .entry(snapshot.id.clone())
                    .or_default()
                    .extend(rule.zones.iter().cloned());
                order.push((made_at, snapshot.id.as_str()));
            }
        }
    }
    let mut disable = Vec::new();
    for (id, zones) in enabled {
        let keep = wanted.get(id);
        let off: Vec<String> = zones
            .iter()
            .filter(|z| keep.is_none_or(|k| !k.contains(*z)))
            .cloned()
            .collect();
        if !off.is_empty() {
            disable.push(Change {
                snapshot_id: id.clone(),
                zones: off,
            });
        }
    }
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    order.dedup_by(|a, b| a.1 == b.1);
    let mut enable = Vec::new();
    for (_, id) in order {
        let on = enabled.get(id);
        let zones: Vec<String> = wanted[id]
            .iter()
            .filter(|z| on.is_none_or(|o| !o.contains(*z)))
            .cloned()
            .collect();
        if !zones.is_empty() {
            enable.push(Change {
                snapshot_id: id.to_owned(),
                zones,
            });
        }
    }
    Plan {
        disable,
        enable,
        wanted,
    }
}

#[cfg(test)]
mod tests;
