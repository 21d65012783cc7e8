//! The vault account, planned without I/O: on the workload side, which completed sets are
//! shared with the vault, when a share ends and how far each instance's vault copies lag; on
//! the vault side, which shared snapshots it copies with its own key, locks and expires.

use crate::copies::{CopyRequest, MAX_CONCURRENT_COPIES};
use crate::locks::{LockMode, LockRequest, LockRule, SnapshotLock};
use crate::model::{Snapshot, SnapshotState};
use crate::plan::{Deletion, Skip, Subject};
use crate::tags;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime};

#[cfg(test)]
mod tests;

/// Tag on a vault copy: the account its source snapshot belongs to.
pub use crate::tags::SOURCE_ACCOUNT;
/// The default bound of vault lag before its alarm fires.
pub const DEFAULT_MAX_LAG_HOURS: u32 = 36;

/// A workload deployment's vault: the account (and region) that pulls copies of its sets,
/// and the read-only role there through which the workload sees which sets arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultTarget {
    pub account: String,
    pub region: String,
    /// A role in the vault account that may only describe snapshots.
    pub reader_role: String,
    #[serde(default = "default_max_lag")]
    pub max_lag_hours: u32,
    /// The customer managed keys of the backed-up volumes (the deployment's
    /// `source_kms_keys`): a snapshot encrypted with any other key is not shared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shareable_keys: Vec<String>,
    /// The vault's `retention_days`: a set older than the vault would keep (and lock for a day)
    /// is not shared, and its share ends. Left out, every set is offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_retention_days: Option<u32>,
}

impl VaultTarget {
    /// What is wrong with these settings, with the fix.
    pub fn problem(&self) -> Option<String> {
        if !is_account(&self.account) {
            return Some(format!(
                "vault.account {:?} is not a 12-digit AWS account id",
                self.account
            ));
        }
        if !crate::copies::is_region_name(&self.region) {
            return Some(format!(
                "vault.region {:?} is not an AWS region name",
                self.region
            ));
        }
        let role_prefix = format!("arn:aws:iam::{}:role/", self.account);
        if !self.reader_role.starts_with(&role_prefix) {
            return Some(format!(
                "vault.reader_role {:?} is not a role ARN in the vault account ({role_prefix}...)",
                self.reader_role
            ));
        }
        if self.vault_retention_days == Some(0) {
            return Some("vault.vault_retention_days 0 would share nothing".into());
        }
        if !(1..=MAX_LAG_HOURS).contains(&self.max_lag_hours) {
            return Some(format!(
                "vault.max_lag_hours {} is not 1 to {MAX_LAG_HOURS}",
                self.max_lag_hours
            ));
        }
        None
    }
}

/// The longest vault lag bound: a year.
pub const MAX_LAG_HOURS: u32 = 8_760;

fn is_account(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

fn default_max_lag() -> u32 {
    DEFAULT_MAX_LAG_HOURS
}

/// One workload account and region a vault pulls from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSource {
    pub account: String,
    pub region: String,
}

/// A vault deployment: whose sets it pulls, with which key, kept and locked how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultKeeper {
    pub sources: Vec<VaultSource>,
    pub retention_days: u32,
    /// The vault's customer managed key (key ARN) every copy is encrypted with.
    pub kms_key: String,
    /// Compliance lock's cooling-off; none locks in compliance mode at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_off_hours: Option<u32>,
}

impl VaultKeeper {
    /// The lock every vault copy gets: compliance mode, until its vault expiry.
    pub fn lock(&self) -> LockRule {
        LockRule {
            mode: LockMode::Compliance,
            cool_off_hours: self.cool_off_hours,
        }
    }

    /// What EC2 or the vault itself refuses of these settings, with the fix.
    pub fn problem(&self) -> Option<String> {
        if let Some(bad) = self
            .sources
            .iter()
            .find(|s| !is_account(&s.account) || !crate::copies::is_region_name(&s.region))
        {
            return Some(format!(
                "vault_for source {:?} in {:?} is not a 12-digit account id and a region name",
                bad.account, bad.region
            ));
        }
        if self.sources.is_empty() {
            return Some("vault_for.accounts is empty: name the workload accounts whose sets this vault keeps".into());
        }
        if let Some(why) = self.lock().problem(self.retention_days) {
            return Some(format!("vault_for: {why}"));
        }
        if !is_key_arn(&self.kms_key) {
            return Some(format!(
                "vault_for.kms_key {:?} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>): \
                 the workload accounts' snapshots are copied with it, so name the key itself",
                self.kms_key
            ));
        }
        None
    }
}

fn is_key_arn(key: &str) -> bool {
    let parts: Vec<&str> = key.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "kms"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("key/")
}

/// What the workload side does this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharePlan {
    /// Snapshots to share with the vault account.
    pub share: Vec<String>,
    /// Shares to remove: the vault has its completed copy.
    pub unshare: Vec<String>,
    pub skips: Vec<Skip>,
    /// Per instance with sets: how long its sets have waited for the vault.
    pub lag: Vec<VaultLag>,
}

/// How far one instance's vault copies are behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultLag {
    pub instance_id: String,
    /// The oldest set made after the newest set the vault has whole; `None`: up to date.
    #[serde(with = "time::serde::rfc3339::option")]
    pub behind_since: Option<OffsetDateTime>,
    pub hours: u32,
}

/// Why a snapshot cannot go to the vault, when it cannot: EBS shares no snapshot encrypted
/// with the AWS managed key `aws/ebs`, and a key not among `shareable_keys` (the customer
/// managed keys the deployment names, whose policy must admit the vault) may be that key.
pub fn unshareable(snapshot: &Snapshot, shareable_keys: &[String], vault: &str) -> Option<String> {
    if !snapshot.encrypted {
        return None;
    }
    match &snapshot.kms_key {
        Some(key) if shareable_keys.iter().any(|k| k == key) => None,
        key => Some(format!(
            "not sent to the vault: encrypted with {}, which is not a customer managed key in \
             source_kms_keys (EBS cannot share snapshots under the AWS managed key aws/ebs); \
             re-encrypt the volume with a customer managed key whose key policy admits account \
             {vault}, and list it in source_kms_keys",
            key.as_deref().unwrap_or("an unknown key")
        )),
    }
}

/// The workload side: `own` is this deployment's snapshots in its region, `shared` those
/// shared with the vault now, `vaulted` the vault's copies by source snapshot (their state).
pub fn plan_shares(
    own: &[Snapshot],
    shared: &BTreeSet<String>,
    vaulted: &BTreeMap<String, SnapshotState>,
    target: &VaultTarget,
    deployment: &str,
    now: OffsetDateTime,
) -> SharePlan {
    let shareable_keys = &target.shareable_keys[..];
    let mut plan = SharePlan::default();
    // Sets by instance, then by when they were made: whole in the vault or not.
    let mut sets: BTreeMap<String, BTreeMap<OffsetDateTime, bool>> = BTreeMap::new();
    for snapshot in own {
        if snapshot.tag(tags::MANAGED_BY) != Some(deployment)
            || snapshot.tags.contains_key(tags::SOURCE_REGION)
            || snapshot.state != SnapshotState::Completed
        {
            continue;
        }
        let copy = vaulted.get(&snapshot.id);
        let arrived = copy == Some(&SnapshotState::Completed);
        // A set the vault would no longer keep is neither offered nor waited for.
        let too_old = target.vault_retention_days.is_some_and(|days| {
            snapshot.made_at_by(now) + Duration::days(i64::from(days))
                <= now + crate::locks::MIN_LOCK
        });
        if too_old && !arrived {
            if shared.contains(&snapshot.id) {
                plan.unshare.push(snapshot.id.clone());
            }
            continue;
        }
        if let Some(instance) = snapshot.tag(tags::INSTANCE_ID) {
            let whole = sets
                .entry(instance.to_owned())
                .or_default()
                .entry(snapshot.made_at_by(now))
                .or_insert(true);
            *whole &= arrived;
        }
        let is_shared = shared.contains(&snapshot.id);
        match copy {
            Some(SnapshotState::Completed) if is_shared => plan.unshare.push(snapshot.id.clone()),
            Some(SnapshotState::Completed | SnapshotState::Pending) => {}
            _ if is_shared => {}
            _ => match unshareable(snapshot, shareable_keys, &target.account) {
                Some(why) => plan
                    .skips
                    .push(Skip::new(Subject::Snapshot(snapshot.id.clone()), why)),
                None => plan.share.push(snapshot.id.clone()),
            },
        }
    }
    for (instance_id, by_time) in sets {
        let newest_whole = by_time
            .iter()
            .rev()
            .find(|(_, whole)| **whole)
            .map(|(at, _)| *at);
        let behind_since = by_time
            .iter()
            .find(|(at, whole)| !**whole && newest_whole.is_none_or(|newest| **at > newest))
            .map(|(at, _)| *at);
        let hours = behind_since
            .map(|since| u32::try_from((now - since).whole_hours().max(0)).unwrap_or(u32::MAX))
            .unwrap_or(0);
        plan.lag.push(VaultLag {
            instance_id,
            behind_since,
            hours,
        });
    }
    plan
}

/// A snapshot another account shares with the vault, as the vault sees it: no tags, its
/// owner and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSnapshot {
    pub snapshot: Snapshot,
    pub owner: String,
    pub region: String,
    pub description: String,
}

/// What a SmartVault description says of a set: the instance, and the deployment that made
/// it (`SmartVault backup of <name> (<instance>) by <deployment>`); `None` for anyone else's.
pub fn described(description: &str) -> Option<(String, String)> {
    let rest = description.strip_prefix("SmartVault backup of ")?;
    let (before, deployment) = rest.rsplit_once(") by ")?;
    let (_, instance) = before.rsplit_once(" (")?;
    (instance.starts_with("i-") && !deployment.is_empty())
        .then(|| (instance.to_owned(), deployment.to_owned()))
}

/// What the vault does this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullPlan {
    pub copies: Vec<CopyRequest>,
    pub locks: Vec<LockRequest>,
    pub deletes: Vec<Deletion>,
    pub skips: Vec<Skip>,
    /// Shared sets left for the next run: the vault region's copies in flight are at EC2's limit.
    pub waiting: usize,
    /// The vault's copies now, completed and in flight.
    pub completed: usize,
    pub in_flight: usize,
}

/// The vault side: `shared` is what the sources share now, `copies` the vault's own copies
/// (its managed-by tag), `locks` the vault region's locks, `pending` the account's pending
/// snapshots there (each may be a copy in flight).
#[allow(clippy::too_many_arguments)]
pub fn plan_pull(
    shared: &[SharedSnapshot],
    copies: &[Snapshot],
    locks: &BTreeMap<String, SnapshotLock>,
    pending: usize,
    keeper: &VaultKeeper,
    deployment: &str,
    vault_region: &str,
    now: OffsetDateTime,
) -> PullPlan {
    let mut plan = PullPlan::default();
    let ours: Vec<&Snapshot> = copies
        .iter()
        .filter(|c| {
            c.tag(tags::MANAGED_BY) == Some(deployment) && c.tags.contains_key(SOURCE_ACCOUNT)
        })
        .collect();
    plan.completed = ours
        .iter()
        .filter(|c| c.state == SnapshotState::Completed)
        .count();
    plan.in_flight = ours
        .iter()
        .filter(|c| c.state == SnapshotState::Pending)
        .count();
    let have: BTreeSet<&str> = ours
        .iter()
        .filter(|c| c.state != SnapshotState::Error)
        .filter_map(|c| c.tag(tags::SOURCE_SNAPSHOT))
        .collect();
    let sources: BTreeSet<(&str, &str)> = keeper
        .sources
        .iter()
        .map(|s| (s.account.as_str(), s.region.as_str()))
        .collect();
    let retention = Duration::days(i64::from(keeper.retention_days));
    // Newest first: a vault behind catches up on what matters most.
    let mut wanted: Vec<&SharedSnapshot> = shared
        .iter()
        .filter(|s| sources.contains(&(s.owner.as_str(), s.region.as_str())))
        .filter(|s| s.snapshot.state == SnapshotState::Completed)
        .filter(|s| !have.contains(s.snapshot.id.as_str()))
        .collect();
    wanted.sort_by(|a, b| {
        b.snapshot
            .start_time
            .cmp(&a.snapshot.start_time)
            .then(a.snapshot.id.cmp(&b.snapshot.id))
    });
    let mut room = MAX_CONCURRENT_COPIES.saturating_sub(pending);
    for source in wanted {
        let Some((instance, workload)) = described(&source.description) else {
            plan.skips.push(Skip::new(
                Subject::Snapshot(source.snapshot.id.clone()),
                format!(
                    "shared by {} but not a SmartVault set (its description is {:?}); not copied",
                    source.owner, source.description
                ),
            ));
            continue;
        };
        let made = source.snapshot.start_time;
        let expires = made + retention;
        if expires <= now + crate::locks::MIN_LOCK {
            plan.skips.push(Skip::new(
                Subject::Snapshot(source.snapshot.id.clone()),
                format!(
                    "shared by {} but older than the vault's retention_days={} allows to lock; not copied",
                    source.owner, keeper.retention_days
                ),
            ));
            continue;
        }
        if room == 0 {
            plan.waiting += 1;
            continue;
        }
        room -= 1;
        let mut copy_tags = vec![
            (tags::MANAGED_BY.to_owned(), deployment.to_owned()),
            (tags::SOURCE_SNAPSHOT.to_owned(), source.snapshot.id.clone()),
            (tags::SOURCE_REGION.to_owned(), source.region.clone()),
            (SOURCE_ACCOUNT.to_owned(), source.owner.clone()),
            (tags::INSTANCE_ID.to_owned(), instance.clone()),
            (tags::CREATED_AT.to_owned(), tags::format_time(made)),
            (tags::EXPIRES_AT.to_owned(), tags::format_time(expires)),
        ];
        if let Some(volume) = &source.snapshot.volume_id {
            copy_tags.push((tags::SOURCE_VOLUME.to_owned(), volume.clone()));
        }
        plan.copies.push(CopyRequest {
            region: vault_region.to_owned(),
            source_region: source.region.clone(),
            source_snapshot_id: source.snapshot.id.clone(),
            instance_id: Some(instance.clone()),
            volume_id: source.snapshot.volume_id.clone(),
            description: tags::fit(
                &format!(
                    "SmartVault vault copy of {} from account {} ({instance}, by {workload})",
                    source.snapshot.id, source.owner
                ),
                tags::MAX_DESCRIPTION_CHARS,
            ),
            encrypted: true,
            kms_key: Some(keeper.kms_key.clone()),
            tags: copy_tags,
        });
    }
    // Earlier copies no lock holds (a lost or failed lock call) are locked again.
    let owned: Vec<Snapshot> = ours.iter().map(|c| (*c).clone()).collect();
    let (requests, skips) =
        crate::plan::catch_up_locks_by(&owned, locks, deployment, |_| Some(keeper.lock()), now);
    plan.locks = requests;
    plan.skips.extend(skips);
    // Expiry by the vault's own rule only: a copy past its expires-at that no lock holds.
    for copy in ours {
        let Some(expires) = copy
            .tag(tags::EXPIRES_AT)
            .and_then(|v| tags::parse_time(v).ok())
        else {
            plan.skips.push(Skip::new(
                Subject::Snapshot(copy.id.clone()),
                format!(
                    "vault copy kept: its {} tag is missing or unreadable",
                    tags::EXPIRES_AT
                ),
            ));
            continue;
        };
        if expires > now || copy.state == SnapshotState::Pending {
            continue;
        }
        if let Some(lock) = locks.get(&copy.id)
            && lock.holds(now)
        {
            plan.skips.push(Skip::new(
                Subject::Snapshot(copy.id.clone()),
                format!("vault copy expired, but locked: {}", lock.describe()),
            ));
            continue;
        }
        plan.deletes.push(Deletion {
            snapshot_id: copy.id.clone(),
            volume_id: copy.tag(tags::SOURCE_VOLUME).map(str::to_owned),
            instance_id: copy.tag(tags::INSTANCE_ID).map(str::to_owned),
            expired_at: expires,
            size_gib: copy.size_gib,
        });
    }
    plan
}

/// The lock each copy started now gets: compliance mode, until its vault expiry.
pub fn locks_for_started(
    started: &[(CopyRequest, String)],
    keeper: &VaultKeeper,
    now: OffsetDateTime,
) -> (Vec<LockRequest>, Vec<Skip>) {
    let (requests, refused) = crate::copies::locks_for_started(started, keeper.lock(), now);
    let skips = refused
        .into_iter()
        .map(|(copy, why)| Skip::new(Subject::Snapshot(copy), why))
        .collect();
    (requests, skips)
}
