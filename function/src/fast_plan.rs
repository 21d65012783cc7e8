//! Fast snapshot restore's plan (issue 33), pure: which of this deployment's snapshots a
//! schedule's `fast_restore` keeps ready in which zones (each covered instance's newest whole,
//! completed, standard-tier sets), and what a run enables and disables to get there, the
//! disables first so that no more than the configured sets are billed at once.

use crate::model::{Instance, Policy, Snapshot, Tier};
use serde::Serialize;
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
    /// The snapshots kept ready (sorted): archiving leaves them alone.
    pub wanted: Vec<String>,
}

/// One fast snapshot restore: a snapshot id and a zone.
pub type Pair = (String, String);

/// Groups `(snapshot, zone)` pairs, each snapshot's together, into changes (in order).
fn changes(pairs: Vec<(&str, &str)>) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for (id, zone) in pairs {
        match out.last_mut() {
            Some(last) if last.snapshot_id == id => last.zones.push(zone.to_owned()),
            _ => out.push(Change {
                snapshot_id: id.to_owned(),
                zones: vec![zone.to_owned()],
            }),
        }
    }
    out
}

/// Which of this deployment's `snapshots` should be ready in which zones, and what changes
/// from `enabled` (snapshot and zone pairs enabling, optimizing or enabled now, this
/// deployment's) to get there. `instances` are the live ones, for the rule's tag; an instance
/// gone keeps only what a rule without a tag keeps.
pub fn plan(
    snapshots: &[Snapshot],
    instances: &[Instance],
    policy: &Policy,
    enabled: &[Pair],
    now: OffsetDateTime,
) -> Plan {
    // Each instance's whole, usable sets, by instance and schedule, newest first.
    let mut sets: Vec<(&str, &str, OffsetDateTime, Vec<&Snapshot>)> = Vec::new();
    for ((instance, made_at), set) in crate::model::sets(snapshots) {
        let usable = set.iter().all(|s| {
            s.completed() && s.tier == Tier::Standard && s.tag(crate::tags::SOURCE_REGION).is_none()
        });
        if usable && made_at <= now + crate::model::CREATED_AT_SKEW {
            let schedule = crate::tags::schedule_of(&set[0].tags);
            sets.push((instance, schedule, made_at, set));
        }
    }
    sets.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(b.2.cmp(&a.2)));
    // (made, snapshot, zone) of every wanted fast snapshot restore.
    let mut wanted: Vec<(OffsetDateTime, &str, &str)> = Vec::new();
    let mut taken = 0;
    let mut owner: Option<(&str, &str)> = None;
    for (instance, schedule, made_at, set) in &sets {
        if owner != Some((instance, schedule)) {
            owner = Some((instance, schedule));
            taken = 0;
        }
        let Some(rule) = policy.rule(schedule).and_then(|r| r.fast_restore.as_ref()) else {
            continue;
        };
        let covered = rule.tag.is_none()
            || instances
                .iter()
                .find(|i| i.id == *instance)
                .is_some_and(|i| rule.covers(&i.tags));
        if !covered || taken >= rule.count {
            continue;
        }
        taken += 1;
        for snapshot in set {
            for zone in &rule.zones {
                wanted.push((*made_at, &snapshot.id, zone));
            }
        }
    }
    wanted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)).then(a.2.cmp(b.2)));
    wanted.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
    let mut on: Vec<(&str, &str)> = enabled
        .iter()
        .map(|(id, zone)| (id.as_str(), zone.as_str()))
        .collect();
    on.sort_unstable();
    let disable = on
        .iter()
        .filter(|(id, zone)| !wanted.iter().any(|w| w.1 == *id && w.2 == *zone))
        .copied()
        .collect();
    let enable = wanted
        .iter()
        .filter(|w| !on.contains(&(w.1, w.2)))
        .map(|w| (w.1, w.2))
        .collect();
    let mut kept: Vec<String> = wanted.iter().map(|w| w.1.to_owned()).collect();
    kept.sort_unstable();
    kept.dedup();
    Plan {
        disable: changes(disable),
        enable: changes(enable),
        wanted: kept,
    }
}

#[cfg(test)]
mod tests;
