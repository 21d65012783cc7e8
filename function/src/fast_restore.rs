//! Fast snapshot restore (issue 33), the pure rules: a schedule's `fast_restore` (zones, how
//! many newest sets, which instances), what the deployer and the function refuse of it, what
//! it costs a month, and which snapshots to enable and disable so that no more than the
//! configured sets are billed. No I/O.
//!
//! From the EBS user guide ("Amazon EBS fast snapshot restore"): each snapshot and zone pair
//! is one fast snapshot restore, billed per minute it is enabled (one hour at least); a region
//! holds at most 5 snapshots enabled at once by default (Service Quotas, adjustable); a
//! snapshot goes enabling → optimizing → enabled; deleting or archiving it disables it.

use crate::consistency::Selector;
use crate::model::{Instance, Policy, Snapshot, Tier};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// The list price of one fast snapshot restore (one snapshot in one zone), US dollars per
/// hour, US East: Amazon EBS pricing's "Fast Snapshot Restore" ($0.75 per DSU-hour).
pub const PRICE_PER_HOUR: f64 = 0.75;
/// Hours in a billing month, as AWS's pricing examples count them.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// The snapshots a region may have enabled at once by default (Service Quotas, "Fast snapshot
/// restore", adjustable).
pub const DEFAULT_REGION_QUOTA: u32 = 5;
/// The most zones and sets a rule may name: Data Lifecycle Manager's `FastRestoreRule`
/// (`AvailabilityZones` 1-10, `Count` 1-1000).
pub const MAX_ZONES: usize = 10;
pub const MAX_COUNT: u32 = 1000;

/// A schedule's `fast_restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The zones each kept set is ready in.
    pub zones: Vec<String>,
    /// How many of an instance's newest sets of the schedule.
    #[serde(default = "one")]
    pub count: u32,
    /// Only instances carrying this tag; all of the schedule's when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Selector>,
}

fn one() -> u32 {
    1
}

/// Whether `zone` is written as a zone name (`us-east-1a`, `us-gov-west-1b`): Data Lifecycle
/// Manager's pattern `([a-z]+-){2,3}\d[a-z]`.
fn is_zone_name(zone: &str) -> bool {
    let Some((head, last)) = zone.rsplit_once('-') else {
        return false;
    };
    let parts: Vec<&str> = head.split('-').collect();
    let mut tail = last.chars();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && tail.next().is_some_and(|c| c.is_ascii_digit())
        && tail.next().is_some_and(|c| c.is_ascii_lowercase())
        && tail.next().is_none()
}

impl Rule {
    /// Why the rule cannot work in `region` (empty: any), with the fix; `None` when it can.
    pub fn problem(&self, region: &str) -> Option<String> {
        if self.zones.is_empty() || self.zones.len() > MAX_ZONES {
            return Some(format!(
                "fast_restore.zones lists {} zones; list 1 to {MAX_ZONES} of {region}'s, e.g. \
                 [{region}a]",
                self.zones.len()
            ));
        }
        if let Some(zone) = self.zones.iter().find(|z| !is_zone_name(z)) {
            return Some(format!(
                "fast_restore.zones: {zone:?} is not a zone name; write zones as {region}a"
            ));
        }
        // `region` empty: not known here (the function checks the names; the deployer the
        // region).
        if let Some(zone) = self
            .zones
            .iter()
            .find(|z| !region.is_empty() && z.get(..z.len() - 1) != Some(region))
        {
            return Some(format!(
                "fast_restore.zones: {zone} is not a zone of {region}, where the sets are; \
                 name {region}'s zones, e.g. {region}a"
            ));
        }
        let distinct: BTreeSet<&String> = self.zones.iter().collect();
        if distinct.len() != self.zones.len() {
            return Some("fast_restore.zones names a zone twice; list each once".to_owned());
        }
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Some(format!(
                "fast_restore.count {} is outside 1-{MAX_COUNT}: how many of an instance's \
                 newest sets are kept ready",
                self.count
            ));
        }
        if let Some(tag) = &self.tag
            && (tag.key.is_empty() || crate::tags::is_reserved(&tag.key))
        {
            return Some(format!(
                "fast_restore.tag.key {:?} cannot select instances; name one of your tags",
                tag.key
            ));
        }
        None
    }

    pub fn covers(&self, tags: &crate::tags::Tags) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| tags.get(&t.key) == Some(&t.value))
    }

    /// What the rule bills a month for each volume it covers, at the list price: one fast
    /// snapshot restore per set kept ready and zone, all month.
    pub fn monthly_usd_per_volume(&self) -> f64 {
        f64::from(self.count) * self.zones.len() as f64 * PRICE_PER_HOUR * HOURS_PER_MONTH
    }
}

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
    let mut by_owner: BTreeMap<(&str, &str), Vec<(OffsetDateTime, Vec<&Snapshot>)>> =
        BTreeMap::new();
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
        sets.sort_by(|a, b| b.0.cmp(&a.0));
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
