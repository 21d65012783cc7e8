//! Coverage (pure): which of the region's instances are protected and how recently, which are
//! overdue by their schedules' periods plus a grace, and which carry no backup tag at all.
//! The function reports it in every backup run; `cargo xtask coverage` shows it per instance.

use crate::model::{Instance, Policy, Snapshot, SnapshotState, Untagged};
use crate::tags;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

/// The prefix of the topic tags that say since when each schedule is configured: the
/// function writes `smartvault:schedule-since:<name>` with the time of the first backup run
/// that saw the schedule (once; it never moves). A schedule that never produced a set is
/// overdue once its window has passed since then, so a schedule whose runs never happen, or a
/// fleet whose backups all fail, trips the dead man's switch instead of reading as protected.
pub const SINCE_TAG_PREFIX: &str = "smartvault:schedule-since:";

/// The topic tag that records since when `schedule` is configured.
pub fn since_tag(schedule: &str) -> String {
    format!("{SINCE_TAG_PREFIX}{schedule}")
}

/// Since when each schedule is configured, from the topic's tags (key, value); a value that is
/// not RFC 3339 is left out (unknown, as if never recorded).
pub fn since_from_tags<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, OffsetDateTime> {
    tags.into_iter()
        .filter_map(|(key, value)| {
            let schedule = key.strip_prefix(SINCE_TAG_PREFIX)?;
            let at = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
                .ok()?;
            Some((schedule.to_owned(), at))
        })
        .collect()
}

/// The instance states that count: an instance being terminated needs no backup.
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];
/// The summary names at most this many instances of each kind; the counts stay whole.
pub const MAX_NAMED: usize = 10;

/// Where one instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every schedule's newest set is within its period plus the grace.
    Protected,
    /// A schedule's newest set is older than its period plus the grace.
    Overdue,
    /// Tagged, but no completed set yet (just tagged, or every backup failed).
    NoBackupYet,
    /// Carries the backup tag key with another value (e.g. `Backup=false`): left out on purpose.
    OptedOut,
    /// Carries no backup tag key.
    Unprotected,
}

/// One schedule's newest completed set of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Newest {
    pub schedule: String,
    /// When its run started (`created-at`); `None` when the instance has no set of it yet.
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// When it became overdue, if it is.
    #[serde(with = "time::serde::rfc3339::option")]
    pub overdue_since: Option<OffsetDateTime>,
    /// The lock that holds every snapshot of the set (the one ending first), when one does
    /// ([`with_locks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::locks::SnapshotLock>,
}

/// One instance's coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCoverage {
    pub id: String,
    pub name: Option<String>,
    pub state: String,
    pub status: Status,
    /// Per configured schedule, for a tagged instance.
    pub newest: Vec<Newest>,
    /// Volumes left out by `BackupExclude=true` (or all but the root with the boot volume
    /// excluded, which is the configuration's, not the volume's: only tagged ones are listed).
    pub excluded_volumes: Vec<String>,
    /// Its snapshots outside the standard tier, by state (`archive`, `archiving`, `archive,
    /// restore requested`, `restored from the archive`), with [`with_tiers`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, usize>,
}

/// The region's coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Live instances, tagged ones first, each kind in id order.
    pub instances: Vec<InstanceCoverage>,
    /// Per schedule, the age in whole hours of the oldest "newest completed set" among the
    /// tagged instances that have one; 0 when none has a set of it yet.
    pub oldest_newest_hours: BTreeMap<String, i64>,
}

impl Coverage {
    /// How many instances stand at `status`.
    pub fn count(&self, status: Status) -> usize {
        self.instances.iter().filter(|i| i.status == status).count()
    }

    /// The first `MAX_NAMED` instances at `status`.
    pub fn named(&self, status: Status) -> Vec<&InstanceCoverage> {
        self.instances
            .iter()
            .filter(|i| i.status == status)
            .take(MAX_NAMED)
            .collect()
    }

    /// The oldest newest-set age over every schedule, in hours.
    pub fn oldest_hours(&self) -> i64 {
        self.oldest_newest_hours
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// The bounded summary a run reports.
    pub fn summary(&self) -> Summary {
        let ids = |status| {
            self.named(status)
                .iter()
                .map(|i| i.id.clone())
                .collect::<Vec<_>>()
        };
        Summary {
            protected: self.count(Status::Protected),
            overdue: self.count(Status::Overdue),
            no_backup_yet: self.count(Status::NoBackupYet),
            opted_out: self.count(Status::OptedOut),
            unprotected: self.count(Status::Unprotected),
            overdue_ids: ids(Status::Overdue),
            no_backup_yet_ids: ids(Status::NoBackupYet),
            unprotected_ids: ids(Status::Unprotected),
            oldest_newest_hours: self.oldest_newest_hours.clone(),
        }
    }
}

/// What a run's summary says about coverage: the counts, and the first few of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub protected: usize,
    pub overdue: usize,
    pub no_backup_yet: usize,
    pub opted_out: usize,
    pub unprotected: usize,
    pub overdue_ids: Vec<String>,
    pub no_backup_yet_ids: Vec<String>,
    pub unprotected_ids: Vec<String>,
    pub oldest_newest_hours: BTreeMap<String, i64>,
}

/// Each instance's newest completed set per schedule: (instance, schedule) → its start.
fn newest_sets(
    snapshots: &[Snapshot],
    now: OffsetDateTime,
) -> BTreeMap<(&str, &str), OffsetDateTime> {
    // A set is completed when all its snapshots are.
    let mut sets: BTreeMap<(&str, &str, OffsetDateTime), bool> = BTreeMap::new();
    for snapshot in snapshots {
        let Some(instance) = snapshot.tags.get(tags::INSTANCE_ID) else {
            continue;
        };
        let key = (
            instance.as_str(),
            tags::schedule_of(&snapshot.tags),
            snapshot.made_at_by(now),
        );
        let completed = snapshot.state == SnapshotState::Completed;
        sets.entry(key)
            .and_modify(|all| *all &= completed)
            .or_insert(completed);
    }
    let mut newest = BTreeMap::new();
    for ((instance, schedule, at), completed) in sets {
        if completed {
            // Sets come oldest first: a newer completed one replaces an older.
            newest.insert((instance, schedule), at);
        }
    }
    newest
}

/// Each instance's first set of any schedule: when it was first protected.
fn first_sets(snapshots: &[Snapshot], now: OffsetDateTime) -> BTreeMap<&str, OffsetDateTime> {
    let mut first: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
    for snapshot in snapshots {
        if let Some(instance) = snapshot.tags.get(tags::INSTANCE_ID) {
            let at = snapshot.made_at_by(now);
            first
                .entry(instance.as_str())
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    first
}

/// The region's coverage at `now`: `instances` carry the backup tag key (as the inventory
/// reads them), `untagged` do not; `snapshots` are this deployment's in the region; `since`
/// says since when each schedule is configured (see [`SINCE_TAG_PREFIX`]). A schedule
/// without `overdue_after_hours` is never overdue. A schedule without a set of an instance is
/// overdue once its window has passed since the later of the instance's first set and the
/// schedule's `since`; when no instance has a set of it at all, its age is counted from its
/// `since`, so the age metric is real and the alarm can fire.
pub fn assess(
    instances: &[Instance],
    untagged: &[Untagged],
    snapshots: &[Snapshot],
    policy: &Policy,
    since: &BTreeMap<String, OffsetDateTime>,
    now: OffsetDateTime,
) -> Coverage {
    let newest = newest_sets(snapshots, now);
    let first = first_sets(snapshots, now);
    // Schedules whose age some selected instance gave (from a set, or from its first set).
    let mut counted: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut selected_any = false;
    let mut coverage = Coverage::default();
    for schedule in &policy.schedules {
        coverage
            .oldest_newest_hours
            .insert(schedule.name.clone(), 0);
    }
    let mut tagged: Vec<&Instance> = instances
        .iter()
        .filter(|i| LIVE_STATES.contains(&i.state.as_str()))
        .collect();
    tagged.sort_by(|a, b| a.id.cmp(&b.id));
    for instance in tagged {
        let selected = instance
            .tags
            .get(&policy.backup_tag_key)
            .is_some_and(|v| v.eq_ignore_ascii_case(&policy.backup_tag_value));
        let base = InstanceCoverage {
            id: instance.id.clone(),
            name: instance.name().map(str::to_owned),
            state: instance.state.clone(),
            status: Status::OptedOut,
            newest: Vec::new(),
            tiers: BTreeMap::new(),
            excluded_volumes: instance
                .volumes
                .iter()
                .filter(|v| {
                    v.tags
                        .get(tags::VOLUME_EXCLUDE)
                        .is_some_and(|x| x.eq_ignore_ascii_case("true"))
                })
                .map(|v| v.volume_id.clone())
                .collect(),
        };
        if !selected {
            // A near miss of the key (`backup`) is no backup tag at all.
            let status = if instance.tags.contains_key(&policy.backup_tag_key) {
                Status::OptedOut
            } else {
                Status::Unprotected
            };
            coverage.instances.push(InstanceCoverage { status, ..base });
            continue;
        }
        selected_any = true;
        let mut entry = base;
        let first_set = first.get(instance.id.as_str()).copied();
        for schedule in &policy.schedules {
            let at = newest
                .get(&(instance.id.as_str(), schedule.name.as_str()))
                .copied();
            // What the schedule's age counts from: its newest set; without one, since the
            // instance was first protected by another schedule and this one was configured.
            let counted_from = match (at, first_set, since.get(&schedule.name)) {
                (Some(at), _, _) => Some(at),
                (None, Some(first), Some(since)) => Some(first.max(*since)),
                _ => None,
            };
            let overdue_since = match (counted_from, schedule.overdue_after_hours) {
                (Some(from), Some(hours)) => {
                    let due = from + Duration::hours(i64::from(hours));
                    (due < now).then_some(due)
                }
                _ => None,
            };
            if let Some(from) = counted_from {
                counted.insert(schedule.name.as_str());
                let hours = (now - from).whole_hours().max(0);
                let oldest = coverage
                    .oldest_newest_hours
                    .entry(schedule.name.clone())
                    .or_insert(0);
                *oldest = (*oldest).max(hours);
            }
            entry.newest.push(Newest {
                schedule: schedule.name.clone(),
                at,
                overdue_since,
                lock: None,
            });
        }
        entry.status = if entry.newest.iter().all(|n| n.at.is_none()) {
            Status::NoBackupYet
        } else if entry.newest.iter().any(|n| n.overdue_since.is_some()) {
            Status::Overdue
        } else {
            Status::Protected
        };
        coverage.instances.push(entry);
    }
    // A schedule no selected instance could give an age for (none has any set: every backup
    // fails, or the fleet was just tagged): its age is the time since it was configured.
    if selected_any {
        for schedule in &policy.schedules {
            if let (false, Some(since)) = (
                counted.contains(schedule.name.as_str()),
                since.get(&schedule.name),
            ) {
                let hours = (now - *since).whole_hours().max(0);
                let oldest = coverage
                    .oldest_newest_hours
                    .entry(schedule.name.clone())
                    .or_insert(0);
                *oldest = (*oldest).max(hours);
            }
        }
    }
    let mut others: Vec<&Untagged> = untagged
        .iter()
        .filter(|i| LIVE_STATES.contains(&i.state.as_str()))
        .collect();
    others.sort_by(|a, b| a.id.cmp(&b.id));
    for other in others {
        coverage.instances.push(InstanceCoverage {
            id: other.id.clone(),
            name: other.name.clone(),
            state: other.state.clone(),
            status: Status::Unprotected,
            newest: Vec::new(),
            excluded_volumes: Vec::new(),
            tiers: BTreeMap::new(),
        });
    }
    coverage
}

/// Sets each newest set's lock from `locks` (by snapshot id): the lock holding every snapshot
/// of the set, the one ending first; none when any snapshot of it is unlocked or its lock
/// expired. `snapshots` are the ones coverage was assessed from.
pub fn with_locks(
    coverage: &mut Coverage,
    snapshots: &[Snapshot],
    locks: &BTreeMap<String, crate::locks::SnapshotLock>,
) {
    for instance in &mut coverage.instances {
        for newest in &mut instance.newest {
            let Some(at) = newest.at else { continue };
            let set: Vec<&Snapshot> = snapshots
                .iter()
                .filter(|s| {
                    s.tag(tags::INSTANCE_ID) == Some(instance.id.as_str())
                        && tags::schedule_of(&s.tags) == newest.schedule
                        && s.tag(tags::CREATED_AT)
                            .and_then(|t| tags::parse_time(t).ok())
                            == Some(at)
                })
                .collect();
            newest.lock = crate::locks::holding_all(locks, set.iter().map(|s| s.id.as_str()));
        }
    }
}

/// Counts each instance's snapshots outside the standard tier by their state
/// (`archive::tier_kind`): what `cargo xtask coverage` shows beside each
/// instance's newest sets.
pub fn with_tiers(coverage: &mut Coverage, snapshots: &[Snapshot]) {
    for instance in &mut coverage.instances {
        for s in snapshots
            .iter()
            .filter(|s| s.tag(tags::INSTANCE_ID) == Some(instance.id.as_str()))
        {
            let state = crate::archive::tier_kind(s);
            if state != "standard" {
                *instance.tiers.entry(state.to_owned()).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
