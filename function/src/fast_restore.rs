//! Fast snapshot restore (issue 33), the rule: a schedule's `fast_restore` (zones, how many
//! newest sets, which instances), what the deployer and the function refuse of it, and what it
//! costs a month. Which snapshots a run enables and disables is `fast_plan.rs`. No I/O.
//!
//! From the EBS user guide ("Amazon EBS fast snapshot restore"): each snapshot and zone pair
//! is one fast snapshot restore, billed per minute it is enabled (one hour at least); a region
//! holds at most 5 snapshots enabled at once by default (Service Quotas, adjustable); a
//! snapshot goes enabling → optimizing → enabled; deleting or archiving it disables it.

use crate::consistency::Selector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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

#[cfg(test)]
mod tests;
