//! Plain data the planning core works on: instances, volumes, snapshots and the policy.

use crate::restore_records::VolumeDetails;
use crate::tags::{DEFAULT_SCHEDULE, Tags};
use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime};

/// An EC2 instance carrying the backup tag key (whatever its value), or a key that differs
/// from it only in case or surrounding spaces (a near miss the planner warns about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// The EC2 state name: `running`, `stopped`, `pending`, ...
    pub state: String,
    pub root_device_name: Option<String>,
    pub tags: Tags,
    pub volumes: Vec<AttachedVolume>,
    /// What a restore needs besides the snapshots (recorded on them as tags).
    pub details: InstanceDetails,
}

/// An instance's type, architecture and zone, as a restore needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceDetails {
    pub instance_type: Option<String>,
    pub architecture: Option<String>,
    pub availability_zone: Option<String>,
    /// Boot mode, TPM, IMDSv2 and platform details.
    pub platform: crate::restore_records::Platform,
}

impl Instance {
    /// The `Name` tag, when there is one.
    pub fn name(&self) -> Option<&str> {
        self.tags.get(crate::tags::NAME).map(String::as_str)
    }
}

/// An EBS volume attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedVolume {
    pub volume_id: String,
    pub device_name: String,
    pub tags: Tags,
    pub details: VolumeDetails,
}

/// The lifecycle state of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
    Other,
}

impl SnapshotState {
    /// EC2's word for it (`other` for a state SmartVault does not tell apart).
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Error => "error",
            SnapshotState::Other => "other",
        }
    }
}

/// How far a set's `created-at` may lie after the clock of the run reading it and still be a
/// run's start (two hosts' clocks).
pub const CREATED_AT_SKEW: time::Duration = time::Duration::minutes(5);

/// SmartVault's sets: snapshots grouped by instance and run start ([`Snapshot::made_at`]),
/// each instance's oldest first. A snapshot without an instance id or a `created-at` tag was
/// not made by a run, and is left out.
pub fn sets(snapshots: &[Snapshot]) -> BTreeMap<(&str, OffsetDateTime), Vec<&Snapshot>> {
    let mut sets: BTreeMap<(&str, OffsetDateTime), Vec<&Snapshot>> = BTreeMap::new();
    for snapshot in snapshots {
        let Some(instance) = snapshot.tag(crate::tags::INSTANCE_ID) else {
            continue;
        };
        if snapshot.tag(crate::tags::CREATED_AT).is_none() {
            continue;
        }
        sets.entry((instance, snapshot.made_at()))
            .or_default()
            .push(snapshot);
    }
    sets
}

/// A snapshot that carries this deployment's managed-by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub volume_id: Option<String>,
    pub start_time: OffsetDateTime,
    pub state: SnapshotState,
    pub size_gib: i32,
    pub encrypted: bool,
    /// The KMS key an encrypted snapshot is encrypted with (a key ARN).
    pub kms_key: Option<String>,
    pub tags: Tags,
    /// Its storage tier, as EC2 reports it.
    pub tier: Tier,
}

/// Where a snapshot is stored (EC2's `StorageTier`, and `RestoreExpiryTime` of a temporary
/// restore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tier {
    /// The standard tier: usable, incremental.
    #[default]
    Standard,
    /// The archive tier: a full snapshot that must be restored before use.
    Archive,
    /// Back from the archive until this time, then archived again.
    Restored { until: OffsetDateTime },
}

impl Snapshot {
    /// A snapshot `id` in `state` carrying `tags`, started at the epoch, 8 GiB, unencrypted:
    /// what a test or an example needs, the rest set by field.
    pub fn tagged(id: &str, state: SnapshotState, tags: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            id: id.to_owned(),
            volume_id: None,
            start_time: OffsetDateTime::UNIX_EPOCH,
            state,
            size_gib: 8,
            encrypted: false,
            kms_key: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            tier: Tier::Standard,
        }
    }

    /// The value of tag `key`, when the snapshot carries it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// EC2 reports it `completed` (not `pending` or `error`).
    pub fn completed(&self) -> bool {
        self.state == SnapshotState::Completed
    }

    /// When the set this snapshot belongs to was made: its `created-at` tag (the run's start,
    /// shared by the whole set), else its own start time.
    pub fn made_at(&self) -> OffsetDateTime {
        self.tags
            .get(crate::tags::CREATED_AT)
            .and_then(|value| {
                OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(self.start_time)
    }

    /// [`Snapshot::made_at`] as a run at `now` may believe it: a `created-at` later than now
    /// (beyond clock skew) is no run's start and is read as unreadable, the snapshot's own
    /// start time standing in. A set dated in the future (a forged continuation's, or a
    /// hand-edited tag) so never ranks as the newest to `keep_last`, nor keeps an instance
    /// "protected" forever.
    pub fn made_at_by(&self, now: OffsetDateTime) -> OffsetDateTime {
        Some(self.made_at())
            .filter(|made| *made <= now + CREATED_AT_SKEW)
            .unwrap_or(self.start_time)
    }
}

/// Everything the planner needs to know about the account, read once per run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Instances carrying the backup tag key, in any state.
    pub instances: Vec<Instance>,
    /// This deployment's snapshots.
    pub snapshots: Vec<Snapshot>,
    /// Ids of the volumes that exist now, among those the snapshots were taken from.
    pub existing_volumes: BTreeSet<String>,
    /// The region's instances without the backup tag key, for coverage (read with the tagged
    /// ones, when a run backs up the whole fleet).
    pub untagged: Vec<Untagged>,
    /// The locks on this deployment's snapshots, by snapshot id; read only when a schedule
    /// locks its snapshots.
    pub locks: BTreeMap<String, crate::locks::SnapshotLock>,
}

/// The retention and selection rules, from the function's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub deployment: String,
    pub backup_tag_key: String,
    pub backup_tag_value: String,
    /// One to four, with distinct names; each run belongs to one.
    pub schedules: Vec<ScheduleRule>,
    pub exclude_boot_volume: bool,
    /// Between two sets of one instance from one schedule.
    pub min_interval: Duration,
    /// Up to three other regions every set is copied to, each with its own retention.
    pub copies: Vec<CopyRule>,
}

/// Copies of this deployment's sets in another region. `retention_days` and `keep_last`
/// apply to the copies of each copied schedule apart (keep_last counts per source volume and
/// schedule, as at home); left out, a copy keeps its schedule's own rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRule {
    /// The destination region.
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// A KMS key in the destination region (key ARN, alias ARN or `alias/<name>`): copies are
    /// encrypted with it, an unencrypted source's too. Left out, an encrypted source's copy is
    /// encrypted with the region's default EBS key, an unencrypted one stays unencrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    /// Only these schedules' sets are copied; left out, every schedule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<Vec<String>>,
    /// Each copy is locked in its region until its own expiry, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::locks::LockRule>,
}

impl CopyRule {
    /// Whether sets of `schedule` are copied by this rule.
    pub fn copies_schedule(&self, schedule: &str) -> bool {
        self.schedules
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == schedule))
    }

    /// The rule the copies of `schedule`'s sets are kept by.
    pub fn rule_for(&self, policy: &Policy, schedule: &str) -> ScheduleRule {
        let own = policy.rule_for_snapshots(schedule);
        ScheduleRule {
            name: own.name,
            retention_days: self.retention_days.unwrap_or(own.retention_days),
            keep_last: self.keep_last.unwrap_or(own.keep_last),
            overdue_after_hours: None,
            lock: None,
            consistency: None,
            archive_after_days: None,
            fast_restore: None,
        }
    }
}

/// One schedule's retention: its sets expire after `retention_days`, and the newest
/// `keep_last` of each volume from this schedule are kept whatever their age.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRule {
    pub name: String,
    pub retention_days: u32,
    pub keep_last: u32,
    /// An instance whose newest set of this schedule is older than this many hours is
    /// overdue: the schedule's longest gap between runs plus a grace, set by the deployer from
    /// its expression. `None` (a configuration from before): never overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue_after_hours: Option<u32>,
    /// Every snapshot of this schedule is locked until its expiry, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::locks::LockRule>,
    /// Each set of this schedule is made application-consistent, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<crate::consistency::Rule>,
    /// Its sets move to the archive tier this many days after they are made, when it pays
    /// (function/src/archive.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_after_days: Option<u32>,
    /// Its newest sets are kept ready to restore at full performance in these zones
    /// (function/src/fast_restore.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_restore: Option<crate::fast_restore::Rule>,
}

impl ScheduleRule {
    pub fn new(name: &str, retention_days: u32, keep_last: u32) -> Self {
        ScheduleRule {
            name: name.to_owned(),
            retention_days,
            keep_last,
            overdue_after_hours: None,
            lock: None,
            consistency: None,
            archive_after_days: None,
            fast_restore: None,
        }
    }
}

impl Policy {
    /// The schedule called `name`, when configured.
    pub fn rule(&self, name: &str) -> Option<&ScheduleRule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    /// The schedule of a run that names none (a manual event): `default` when there is one,
    /// else the first listed.
    pub fn default_rule(&self) -> &ScheduleRule {
        self.rule(DEFAULT_SCHEDULE)
            .or(self.schedules.first())
            .expect("a policy has at least one schedule (checked when the configuration is read)")
    }

    /// The schedule of a run: the one its event named (checked against the configuration
    /// when the event was read), else the default one.
    pub fn rule_of_run(&self, named: Option<&str>) -> ScheduleRule {
        match named {
            Some(name) => self.rule_for_snapshots(name),
            None => self.default_rule().clone(),
        }
    }

    /// The retention rule for snapshots of `schedule`. A schedule no longer configured keeps
    /// its snapshots by the most generous rule there is, so removing a schedule never makes
    /// its sets go sooner than any schedule would keep them.
    pub fn rule_for_snapshots(&self, schedule: &str) -> ScheduleRule {
        self.rule(schedule)
            .cloned()
            .unwrap_or_else(|| ScheduleRule {
                name: schedule.to_owned(),
                retention_days: self
                    .schedules
                    .iter()
                    .map(|s| s.retention_days)
                    .max()
                    .unwrap_or(1),
                keep_last: self
                    .schedules
                    .iter()
                    .map(|s| s.keep_last)
                    .max()
                    .unwrap_or(0),
                overdue_after_hours: None,
                lock: None,
                consistency: None,
                archive_after_days: None,
                fast_restore: None,
            })
    }

    /// Deployment `prod` backing up `Backup=true`, sets an hour apart at least, no copies:
    /// what the planners' tests share, with their own `schedules`.
    #[cfg(test)]
    pub(crate) fn of_schedules(schedules: Vec<ScheduleRule>) -> Policy {
        Policy {
            deployment: "prod".into(),
            backup_tag_key: "Backup".into(),
            backup_tag_value: "true".into(),
            schedules,
            exclude_boot_volume: false,
            min_interval: Duration::hours(1),
            copies: Vec::new(),
        }
    }

    /// The one-schedule policy most tests use.
    pub fn single_schedule(retention_days: u32, keep_last: u32) -> Vec<ScheduleRule> {
        vec![ScheduleRule::new(
            DEFAULT_SCHEDULE,
            retention_days,
            keep_last,
        )]
    }
}

/// Which halves of the job to do; what the event asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    BackupAndCleanup,
    Backup,
    Cleanup,
    /// Only copy the named completed snapshots to the copy regions (an EC2 completion event).
    Copy,
    /// Restore a sample of instances' newest completed sets to volumes, wait for them to be
    /// `available`, and delete them.
    RestoreTest,
}

/// As a summary says it: `backup`, `cleanup` or `backup and cleanup`.
impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::BackupAndCleanup => "backup and cleanup",
            Job::Backup => "backup",
            Job::Cleanup => "cleanup",
            Job::Copy => "copy",
            Job::RestoreTest => "restore test",
        })
    }
}

impl Job {
    pub fn backs_up(self) -> bool {
        matches!(self, Job::BackupAndCleanup | Job::Backup)
    }

    pub fn cleans_up(self) -> bool {
        matches!(self, Job::BackupAndCleanup | Job::Cleanup)
    }

    /// Whether the run sweeps for sets without copies and expires copies (every run that
    /// cleans up), or copies the event's snapshots (a copy run).
    pub fn copies(self) -> bool {
        matches!(self, Job::BackupAndCleanup | Job::Cleanup | Job::Copy)
    }
}

/// How the minimum interval between backups applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interval {
    Respect,
    Ignore,
}

/// One run's options, from the event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    pub job: Job,
    pub interval: Interval,
    /// When set, only these instances (still required to carry the backup tag).
    pub instance_ids: Option<BTreeSet<String>>,
    /// The schedule this run belongs to; `None` for the default one (a manual event that
    /// names none). Checked against the configuration before the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// A copy run's snapshots (from EC2's completion event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_ids: Option<BTreeSet<String>>,
    /// Whether earlier invocations of this run may have made snapshots already. Not carried
    /// in a continuation event: its reader sets it.
    #[serde(skip)]
    pub phase: Phase,
}

impl RunOptions {
    /// A run of `job` over the whole fleet, respecting the minimum interval: what a scheduled
    /// run reads (the deployer's coverage and key checks, the bench).
    pub fn whole_fleet(job: Job, phase: Phase) -> Self {
        RunOptions {
            job,
            interval: Interval::Respect,
            instance_ids: None,
            schedule: None,
            snapshot_ids: None,
            phase,
        }
    }
}

/// Where in its run an invocation is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    /// The run's first invocation: nothing was made by this run yet.
    #[default]
    FirstLink,
    /// A continuation: instances whose snapshots carry the run's start as `created-at` were
    /// backed up by an earlier link.
    LaterLink,
}

/// An instance without the backup tag key: not selected, and never asked about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Untagged {
    pub id: String,
    pub name: Option<String>,
    pub state: String,
}
