//! Snapshot locks (EC2 `LockSnapshot`): the lock a schedule asks for, a snapshot's lock as EC2
//! reports it, and the lock request for one snapshot. Pure: no I/O, no clock. Which snapshots a
//! run locks is the planner's (`plan::catch_up_locks`).
//!
//! A schedule's snapshots are locked until their own expiry (the `expires-at` tag), so the lock
//! and retention end together. EC2 locks a snapshot that is `pending` or `completed` (the lock
//! duration starts at completion); the function locks, it never unlocks.

use crate::tags;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use time::{Duration, OffsetDateTime};

/// EC2's lock modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Anyone holding `ec2:UnlockSnapshot` can unlock it or shorten it.
    Governance,
    /// After the cooling-off period nobody can unlock it, shorten it or delete the snapshot,
    /// the account root included, until it ends.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

/// The lock a schedule (or a copy rule) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRule {
    pub mode: LockMode,
    /// Compliance mode only: the hours during which the lock can still be removed (EC2: 1 to
    /// 72); none locks in compliance mode at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_off_hours: Option<u32>,
}

/// EC2's cooling-off period, in hours.
pub const COOL_OFF_HOURS: RangeInclusive<u32> = 1..=72;
/// EC2's longest lock, in days.
pub const MAX_LOCK_DAYS: u32 = 36_500;
/// EC2's shortest lock: a snapshot whose expiry is nearer than this is not locked.
pub const MIN_LOCK: Duration = Duration::days(1);

impl LockRule {
    /// Why this lock cannot hold a schedule's snapshots for `retention_days`, or `None`.
    pub fn problem(&self, retention_days: u32) -> Option<String> {
        match (self.mode, self.cool_off_hours) {
            (LockMode::Governance, Some(_)) => {
                return Some(
                    "lock.cool_off_hours applies to compliance mode only; remove it, or set \
                     lock.mode: compliance"
                        .to_owned(),
                );
            }
            (LockMode::Compliance, Some(hours)) if !COOL_OFF_HOURS.contains(&hours) => {
                return Some(format!(
                    "lock.cool_off_hours {hours} is outside EC2's {}-{} hours",
                    COOL_OFF_HOURS.start(),
                    COOL_OFF_HOURS.end()
                ));
            }
            _ => {}
        }
        if retention_days < 2 {
            return Some(format!(
                "retention_days {retention_days} is too short to lock: EC2's shortest lock is a \
                 day, and a snapshot is locked up to a run's length after its set's time; keep \
                 locked schedules at least 2 days"
            ));
        }
        if let Some(hours) = self.cool_off_hours
            && u64::from(hours) >= u64::from(retention_days) * 24
        {
            return Some(format!(
                "lock.cool_off_hours {hours} outlasts the schedule's retention ({retention_days} \
                 days): the snapshots would expire before the compliance lock takes hold; \
                 shorten the cooling-off or keep the snapshots longer"
            ));
        }
        if retention_days > MAX_LOCK_DAYS {
            return Some(format!(
                "retention_days {retention_days} is longer than EC2's longest snapshot lock \
                 ({MAX_LOCK_DAYS} days); lower retention_days or remove the lock"
            ));
        }
        None
    }
}

/// A lock as `DescribeLockedSnapshots` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockState {
    Governance,
    Compliance,
    ComplianceCooloff,
    Expired,
}

/// A snapshot's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLock {
    pub state: LockState,
    /// Unknown while a snapshot locked when pending has not completed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_on: Option<OffsetDateTime>,
}

impl SnapshotLock {
    /// Whether the lock still keeps the snapshot from deletion at `at`.
    pub fn holds(&self, at: OffsetDateTime) -> bool {
        self.state != LockState::Expired && self.expires_on.is_none_or(|end| end > at)
    }

    /// `compliance until 2027-01-05T03:00:00Z`, for summaries and tables.
    pub fn describe(&self) -> String {
        let state = match self.state {
            LockState::Governance => "governance",
            LockState::Compliance => "compliance",
            LockState::ComplianceCooloff => "compliance (cooling off)",
            LockState::Expired => "expired",
        };
        match self.expires_on {
            Some(end) => format!("{state} until {}", tags::format_time(end)),
            None => format!("{state} (starts when the snapshot completes)"),
        }
    }
}

/// The lock in force on snapshot `id` among `locks` (by snapshot id): an expired one holds
/// nothing.
pub fn in_force(locks: &BTreeMap<String, SnapshotLock>, id: &str) -> Option<SnapshotLock> {
    locks
        .get(id)
        .copied()
        .filter(|lock| lock.state != LockState::Expired)
}

/// The lock that holds every one of `ids` (a set's snapshots): the one ending first; `None`
/// when any of them has no lock in force, or there are none.
pub fn holding_all<'a>(
    locks: &BTreeMap<String, SnapshotLock>,
    ids: impl IntoIterator<Item = &'a str>,
) -> Option<SnapshotLock> {
    let mut first: Option<SnapshotLock> = None;
    for id in ids {
        let lock = in_force(locks, id)?;
        first = match first {
            Some(earlier) if earlier.expires_on <= lock.expires_on => Some(earlier),
            _ => Some(lock),
        };
    }
    first
}

/// One `LockSnapshot` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    pub snapshot_id: String,
    pub rule: LockRule,
    /// The snapshot's own expiry: the lock's expiration date.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// The lock for a snapshot that expires at `until`, by `rule`, decided at `now`; `Err` says why
/// it is not locked.
pub fn request(
    snapshot_id: &str,
    rule: LockRule,
    until: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<LockRequest, String> {
    if until - now < MIN_LOCK {
        return Err(format!(
            "not locked: it expires {}, sooner than EC2's shortest lock (1 day)",
            tags::format_time(until)
        ));
    }
    Ok(LockRequest {
        snapshot_id: snapshot_id.to_owned(),
        rule,
        until,
    })
}

#[cfg(test)]
mod tests;
