//! The planning core: from the inventory, the policy and `now`, decides what to snapshot and
//! what to delete, and gives a reason for everything it leaves alone. No I/O, no clock.

use crate::model::{
    Instance, Interval, Inventory, Phase, Policy, RunOptions, ScheduleRule, Snapshot, SnapshotState,
};
use crate::settings::RETENTION_DAYS;
use crate::tags::MAX_TAGS_PER_RESOURCE;
use crate::{restore_records, tags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// What one run will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Instances selected by the backup tag (and the event's instance ids) this run.
    pub tagged_instances: usize,
    pub creates: Vec<CreateRequest>,
    pub deletes: Vec<Deletion>,
    pub skips: Vec<Skip>,
    pub warnings: Vec<String>,
    /// Locks on snapshots made earlier that no lock holds ([`catch_up_locks`]); the sets this
    /// run makes are locked as they are created.
    pub locks: Vec<crate::locks::LockRequest>,
    /// Selected instances already backed up by an earlier link of this run (`now` is the
    /// run's start, which their snapshots carry as `created-at`).
    pub done_in_this_run: usize,
}

/// One `CreateSnapshots` call: every included volume of one instance, crash-consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub instance_id: String,
    pub instance_name: Option<String>,
    /// The volumes that will be snapshotted.
    pub volumes: Vec<PlannedVolume>,
    /// Leave the boot volume out (through the call's `ExcludeBootVolume`).
    pub exclude_boot_volume: bool,
    /// Data volumes left out (through the call's `ExcludeDataVolumeIds`).
    pub excluded_data_volume_ids: Vec<String>,
    pub description: String,
    /// Tags applied to every snapshot at creation; the volumes' own tags are copied besides.
    pub tags: Vec<(String, String)>,
    /// How the volumes' own tags reach their snapshots.
    pub volume_tags: VolumeTags,
    pub retention_days: u32,
    /// The snapshots' expiry (their `expires-at` tag).
    pub expires_at: OffsetDateTime,
    /// The schedule's lock: each snapshot is locked until `expires_at` once created.
    pub lock: Option<crate::locks::LockRule>,
    /// The schedule's consistency, when it covers this instance: the set is made inside a
    /// pre and post stage, or by VSS (`consistent_run.rs`), not by a bare `CreateSnapshots`.
    pub consistency: Option<crate::consistency::Rule>,
}

/// How a request's snapshots get their volumes' own tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeTags {
    /// EC2 copies every one at creation (`CopyTagsFromSource=volume`).
    CopiedAtCreation,
    /// A volume has more tags than fit beside SmartVault's own: nothing is copied at creation,
    /// and each snapshot then gets as many of its volume's tags as fit, in key order (by
    /// volume id). The rest are named in a warning.
    Fitted(BTreeMap<String, Vec<(String, String)>>),
}

/// How the volumes' tags can reach the snapshots beside `ours`, with a warning for each volume
/// whose tags do not all fit.
fn volume_tags(
    instance: &Instance,
    volumes: &[PlannedVolume],
    ours: &[(String, String)],
    warnings: &mut Vec<String>,
) -> VolumeTags {
    let room = tags::MAX_TAGS_AT_CREATION.saturating_sub(ours.len());
    let own = |volume: &crate::model::AttachedVolume| -> Vec<(String, String)> {
        volume
            .tags
            .iter()
            .filter(|(k, _)| !tags::is_reserved(k) && !ours.iter().any(|(o, _)| o == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let planned: Vec<&crate::model::AttachedVolume> = instance
        .volumes
        .iter()
        .filter(|v| volumes.iter().any(|p| p.volume_id == v.volume_id))
        .collect();
    if planned.iter().all(|v| own(v).len() <= room) {
        return VolumeTags::CopiedAtCreation;
    }
    let mut fitted = BTreeMap::new();
    for volume in planned {
        let mut copied = own(volume);
        if copied.len() > room {
            let dropped: Vec<String> = copied.split_off(room).into_iter().map(|(k, _)| k).collect();
            warnings.push(format!(
                "{} of {}: its snapshot carries {} of the volume's {} tags (a snapshot takes at \
                 most {MAX_TAGS_PER_RESOURCE}, SmartVault's own take {} and {} are kept for what \
                 is recorded later); not copied: {}",
                volume.volume_id,
                instance.id,
                copied.len(),
                copied.len() + dropped.len(),
                ours.len(),
                tags::RECORDED_LATER.len(),
                dropped.join(", ")
            ));
        }
        fitted.insert(volume.volume_id.clone(), copied);
    }
    VolumeTags::Fitted(fitted)
}

/// A volume a create request covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVolume {
    pub volume_id: String,
    pub device_name: String,
}

/// A snapshot to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deletion {
    pub snapshot_id: String,
    pub volume_id: Option<String>,
    pub instance_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expired_at: OffsetDateTime,
    pub size_gib: i32,
}

/// What a skip is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Subject {
    Instance(String),
    Volume(String),
    Snapshot(String),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Instance(id) => write!(f, "instance {id}"),
            Subject::Volume(id) => write!(f, "volume {id}"),
            Subject::Snapshot(id) => write!(f, "snapshot {id}"),
        }
    }
}

/// Something left alone on purpose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    pub subject: Subject,
    pub reason: String,
}

impl Skip {
    pub fn new(subject: Subject, reason: impl Into<String>) -> Self {
        Skip {
            subject,
            reason: reason.into(),
        }
    }
}

/// Plans one run.
pub fn plan(
    inventory: &Inventory,
    policy: &Policy,
    options: &RunOptions,
    now: OffsetDateTime,
) -> Plan {
    let mut plan = Plan::default();
    if options.job.backs_up() {
        plan_backups(inventory, policy, options, now, &mut plan);
    }
    if options.job.cleans_up() {
        plan_cleanup(inventory, policy, options, now, &mut plan);
    }
    if options.job.backs_up() || options.job.cleans_up() {
        let requested: Vec<Snapshot> = inventory
            .snapshots
            .iter()
            .filter(|s| {
                options.instance_ids.is_none()
                    || s.tag(tags::INSTANCE_ID)
                        .is_some_and(|id| is_requested(options, id))
            })
            .cloned()
            .collect();
        let (locks, skips) = catch_up_locks(&requested, &inventory.locks, policy, now);
        plan.locks = locks;
        plan.skips.extend(skips);
    }
    plan
}

fn is_selected(policy: &Policy, instance: &Instance) -> bool {
    instance
        .tags
        .get(&policy.backup_tag_key)
        .is_some_and(|value| value.eq_ignore_ascii_case(&policy.backup_tag_value))
}

fn is_requested(options: &RunOptions, id: &str) -> bool {
    options
        .instance_ids
        .as_ref()
        .is_none_or(|ids| ids.contains(id))
}

/// Warns about tags that look meant for SmartVault but do not count: a key that differs from
/// the backup key only in case or surrounding spaces, a backup value that differs only in
/// surrounding spaces, an exclusion value that is neither `true` nor `false`. What is selected
/// does not change; the summary says what to fix.
fn near_misses(inventory: &Inventory, policy: &Policy, options: &RunOptions, plan: &mut Plan) {
    let key = policy.backup_tag_key.as_str();
    let looks_like = |candidate: &str, wanted: &str| {
        candidate != wanted && candidate.trim().eq_ignore_ascii_case(wanted)
    };
    for instance in inventory
        .instances
        .iter()
        .filter(|i| is_requested(options, &i.id))
    {
        for (tag, value) in &instance.tags {
            if looks_like(tag, key) && !instance.tags.contains_key(key) {
                plan.warnings.push(format!(
                    "instance {}: tag {tag:?}={value:?} is not the backup tag {key:?} (tag keys \
                     are case-sensitive); the instance is not backed up; rename the key to {key:?}",
                    instance.id
                ));
            }
        }
        if let Some(value) = instance.tags.get(key)
            && !is_selected(policy, instance)
            && value.trim().eq_ignore_ascii_case(&policy.backup_tag_value)
        {
            plan.warnings.push(format!(
                "instance {}: {key}={value:?} has spaces around {:?}; the instance is not \
                 backed up; set the value to exactly {:?}",
                instance.id, policy.backup_tag_value, policy.backup_tag_value
            ));
        }
        if !is_selected(policy, instance) {
            continue;
        }
        for volume in &instance.volumes {
            for (tag, value) in &volume.tags {
                let exclusion = tag == tags::VOLUME_EXCLUDE;
                if looks_like(tag, tags::VOLUME_EXCLUDE) {
                    plan.warnings.push(format!(
                        "volume {} of {}: tag {tag:?}={value:?} is not {:?} (tag keys are \
                         case-sensitive); it changes nothing; rename the key to {:?}",
                        volume.volume_id,
                        instance.id,
                        tags::VOLUME_EXCLUDE,
                        tags::VOLUME_EXCLUDE
                    ));
                } else if exclusion && crate::settings::parse_flag(value).is_none() {
                    plan.warnings.push(format!(
                        "volume {} of {}: {}={value:?} is neither `true` nor `false`; the \
                         volume is backed up; write {}=true to leave it out",
                        volume.volume_id,
                        instance.id,
                        tags::VOLUME_EXCLUDE,
                        tags::VOLUME_EXCLUDE
                    ));
                }
            }
        }
    }
}

fn plan_backups(
    inventory: &Inventory,
    policy: &Policy,
    options: &RunOptions,
    now: OffsetDateTime,
    plan: &mut Plan,
) {
    near_misses(inventory, policy, options, plan);
    let mut instances: Vec<&Instance> = inventory
        .instances
        .iter()
        .filter(|i| is_selected(policy, i) && is_requested(options, &i.id))
        .collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    plan.tagged_instances = instances.len();
    let rule = policy.rule_of_run(options.schedule.as_deref());
    let newest = newest_snapshot_by_instance(&inventory.snapshots, &rule.name, now);

    if let Some(requested) = &options.instance_ids {
        for id in requested {
            if !instances.iter().any(|i| &i.id == id) {
                plan.skips.push(Skip::new(
                    Subject::Instance(id.clone()),
                    format!(
                        "requested, but no instance with this id is tagged {}={}",
                        policy.backup_tag_key, policy.backup_tag_value
                    ),
                ));
            }
        }
    }

    for instance in instances {
        let subject = Subject::Instance(instance.id.clone());
        if instance.state != "running" && instance.state != "stopped" {
            plan.skips.push(Skip::new(
                subject,
                format!(
                    "instance is {}; only running or stopped instances are backed up",
                    instance.state
                ),
            ));
            continue;
        }
        let retention_days = retention_for(instance, &rule, &mut plan.warnings);

        let mut volumes = Vec::new();
        let mut exclude_boot_volume = false;
        let mut excluded_data_volume_ids = Vec::new();
        for volume in &instance.volumes {
            let is_boot = instance.root_device_name.as_deref() == Some(volume.device_name.as_str());
            let tagged_out = volume
                .tags
                .get(tags::VOLUME_EXCLUDE)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let reason = if tagged_out {
                Some(format!("tagged {}=true", tags::VOLUME_EXCLUDE))
            } else if is_boot && policy.exclude_boot_volume {
                Some("boot volume, excluded by EXCLUDE_BOOT_VOLUME".to_owned())
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    plan.skips.push(Skip::new(
                        Subject::Volume(volume.volume_id.clone()),
                        format!("{reason} ({} of {})", volume.device_name, instance.id),
                    ));
                    if is_boot {
                        exclude_boot_volume = true;
                    } else {
                        excluded_data_volume_ids.push(volume.volume_id.clone());
                    }
                }
                None => volumes.push(PlannedVolume {
                    volume_id: volume.volume_id.clone(),
                    device_name: volume.device_name.clone(),
                }),
            }
        }
        if volumes.is_empty() {
            let reason = if instance.volumes.is_empty() {
                "no EBS volume is attached"
            } else {
                "every attached volume is excluded"
            };
            plan.skips.push(Skip::new(subject, reason));
            continue;
        }

        // Made by an earlier link of this run, which tagged it with the run's start: done.
        if options.phase == Phase::LaterLink
            && newest
                .get(instance.id.as_str())
                .and_then(|last| last.tags.get(tags::CREATED_AT))
                .is_some_and(|created| *created == tags::format_time(now))
        {
            plan.done_in_this_run += 1;
            continue;
        }
        if options.interval == Interval::Respect
            && policy.min_interval > Duration::ZERO
            && let Some(last) = newest.get(instance.id.as_str())
        {
            let age = now - last.start_time;
            if age < policy.min_interval {
                plan.skips.push(Skip::new(
                    subject,
                    format!(
                        "last backed up by schedule {} {} minutes ago ({}), within \
                         MIN_INTERVAL_MINUTES={}; send \"force\": true to back up anyway",
                        rule.name,
                        age.whole_minutes().max(0),
                        last.id,
                        policy.min_interval.whole_minutes()
                    ),
                ));
                continue;
            }
        }

        let instance_name = instance.name().map(str::to_owned);
        let label = instance_name.clone().unwrap_or_else(|| instance.id.clone());
        let expires_at = now + Duration::days(i64::from(retention_days));
        let mut snapshot_tags = vec![
            (tags::MANAGED_BY.to_owned(), policy.deployment.clone()),
            (tags::INSTANCE_ID.to_owned(), instance.id.clone()),
            (tags::CREATED_AT.to_owned(), tags::format_time(now)),
            (tags::EXPIRES_AT.to_owned(), tags::format_time(expires_at)),
            (tags::SCHEDULE.to_owned(), rule.name.clone()),
        ];
        // The volumes' own tags are copied at creation; where a volume has its own Name, that
        // one is kept, since one key cannot come from both the copy and the request.
        let volumes_have_names = instance.volumes.iter().any(|v| {
            volumes.iter().any(|p| p.volume_id == v.volume_id) && v.tags.contains_key(tags::NAME)
        });
        if !volumes_have_names {
            let suffix = format!(" backup {}", now.date());
            let room = tags::MAX_TAG_VALUE_CHARS - suffix.chars().count();
            snapshot_tags.push((tags::NAME.to_owned(), tags::fit(&label, room) + &suffix));
        }
        record_for_restore(instance, &volumes, &mut snapshot_tags, &mut plan.warnings);
        let volume_tags = volume_tags(instance, &volumes, &snapshot_tags, &mut plan.warnings);
        plan.creates.push(CreateRequest {
            instance_id: instance.id.clone(),
            instance_name,
            volume_tags,
            volumes,
            exclude_boot_volume,
            excluded_data_volume_ids,
            description: description(&label, &instance.id, &policy.deployment),
            tags: snapshot_tags,
            retention_days,
            expires_at,
            lock: rule.lock,
            consistency: rule
                .consistency
                .as_ref()
                .filter(|c| c.covers(&instance.tags))
                .cloned(),
        });
    }
}

/// Adds what a restore needs that a snapshot does not keep (`restore_records.rs`): the instance's
/// type, architecture, zone, root device and platform, and each snapshotted volume's device, type, IOPS
/// and throughput. These come after SmartVault's own tags and before the volumes' own in the
/// 50-tag budget; a volume whose record does not fit is named in a warning.
fn record_for_restore(
    instance: &Instance,
    volumes: &[PlannedVolume],
    tags: &mut Vec<(String, String)>,
    warnings: &mut Vec<String>,
) {
    let details = &instance.details;
    for (key, value) in [
        (restore_records::INSTANCE_TYPE, &details.instance_type),
        (restore_records::ARCHITECTURE, &details.architecture),
        (
            restore_records::AVAILABILITY_ZONE,
            &details.availability_zone,
        ),
        (restore_records::ROOT_DEVICE, &instance.root_device_name),
    ] {
        if let Some(value) = value {
            tags.push((key.to_owned(), value.clone()));
        }
    }
    if let Some(platform) = details.platform.value() {
        tags.push((restore_records::PLATFORM.to_owned(), platform));
    }
    let mut left_out = Vec::new();
    for planned in volumes {
        if tags.len() >= tags::MAX_TAGS_AT_CREATION {
            left_out.push(planned.volume_id.clone());
            continue;
        }
        let attached = instance
            .volumes
            .iter()
            .find(|v| v.volume_id == planned.volume_id);
        let record = restore_records::VolumeRecord {
            device: planned.device_name.clone(),
            details: attached.map(|v| v.details.clone()).unwrap_or_default(),
        };
        tags.push((
            restore_records::VolumeRecord::key(&planned.volume_id),
            record.value(),
        ));
    }
    if !left_out.is_empty() {
        warnings.push(format!(
            "{}: the restore records of {} of its {} volumes do not fit in a snapshot's \
             {MAX_TAGS_PER_RESOURCE} tags (less {} kept for what is recorded later) and are \
             not kept ({}); a restore reads their device and type from the volumes while they \
             exist",
            instance.id,
            left_out.len(),
            volumes.len(),
            tags::RECORDED_LATER.len(),
            left_out.join(", ")
        ));
    }
}

/// The snapshots' description; the instance's name gives way when it is too long.
fn description(label: &str, instance_id: &str, deployment: &str) -> String {
    let rest = format!(" ({instance_id}) by {deployment}");
    let fixed = "SmartVault backup of ".chars().count() + rest.chars().count();
    let room = tags::MAX_DESCRIPTION_CHARS.saturating_sub(fixed);
    tags::fit(
        &format!("SmartVault backup of {}{rest}", tags::fit(label, room)),
        tags::MAX_DESCRIPTION_CHARS,
    )
}

fn retention_for(instance: &Instance, rule: &ScheduleRule, warnings: &mut Vec<String>) -> u32 {
    let Some(value) = instance.tags.get(tags::RETENTION_OVERRIDE) else {
        return rule.retention_days;
    };
    match value.trim().parse::<u32>() {
        Ok(days) if RETENTION_DAYS.range.contains(&days) => days,
        _ => {
            warnings.push(format!(
                "instance {}: {}={value:?} is not a whole number of days from {} to {}; \
                 using schedule {}'s retention_days={}",
                instance.id,
                tags::RETENTION_OVERRIDE,
                RETENTION_DAYS.range.start(),
                RETENTION_DAYS.range.end(),
                rule.name,
                rule.retention_days
            ));
            rule.retention_days
        }
    }
}

/// The newest non-failed managed snapshot of each instance from `schedule`, for the minimum
/// interval: a weekly set does not make a daily run skip.
fn newest_snapshot_by_instance<'a>(
    snapshots: &'a [Snapshot],
    schedule: &str,
    now: OffsetDateTime,
) -> BTreeMap<&'a str, &'a Snapshot> {
    let mut newest: BTreeMap<&str, &Snapshot> = BTreeMap::new();
    for snapshot in snapshots
        .iter()
        .filter(|s| s.state != SnapshotState::Error && tags::schedule_of(&s.tags) == schedule)
    {
        if let Some(instance) = snapshot.tags.get(tags::INSTANCE_ID) {
            let entry = newest.entry(instance.as_str()).or_insert(snapshot);
            if oldest_first(snapshot, entry, now).is_gt() {
                *entry = snapshot;
            }
        }
    }
    newest
}

/// The order of a volume's snapshots, oldest first: by the set they belong to (`made_at`, the
/// run's start; a copy carries its source set's, so copies made out of order, newest set
/// first or redone later, still rank by the set they hold), then by start time (two runs can
/// start within one second, the precision some EC2 front ends give `StartTime`), then by id
/// so that the order is total.
fn oldest_first(a: &Snapshot, b: &Snapshot, now: OffsetDateTime) -> std::cmp::Ordering {
    a.made_at_by(now)
        .cmp(&b.made_at_by(now))
        .then_with(|| a.start_time.cmp(&b.start_time))
        .then_with(|| a.id.cmp(&b.id))
}

fn is_managed_here(snapshot: &Snapshot, policy: &Policy) -> bool {
    snapshot.tags.get(tags::MANAGED_BY) == Some(&policy.deployment)
}

pub(crate) fn plan_cleanup(
    inventory: &Inventory,
    policy: &Policy,
    options: &RunOptions,
    now: OffsetDateTime,
    plan: &mut Plan,
) {
    // Ownership is checked here again, whatever the inventory's filter did: a snapshot
    // without this deployment's managed-by tag is never planned for deletion.
    let mut candidates: Vec<&Snapshot> = inventory
        .snapshots
        .iter()
        .filter(|s| is_managed_here(s, policy))
        .filter(|s| {
            options.instance_ids.is_none()
                || s.tags
                    .get(tags::INSTANCE_ID)
                    .is_some_and(|id| is_requested(options, id))
        })
        .collect();
    candidates.sort_by(|a, b| oldest_first(a, b, now));

    // The newest `keep_last` completed snapshots of each volume that still exists, from each
    // schedule, are kept: the weekly sets are never deleted to keep a daily one.
    let mut by_volume: BTreeMap<(&str, &str), Vec<&Snapshot>> = BTreeMap::new();
    for snapshot in &candidates {
        if let Some(volume) = &snapshot.volume_id
            && snapshot.state == SnapshotState::Completed
        {
            let schedule = tags::schedule_of(&snapshot.tags);
            by_volume
                .entry((volume.as_str(), schedule))
                .or_default()
                .push(snapshot);
        }
    }
    let mut protected: BTreeMap<&str, (&str, ScheduleRule)> = BTreeMap::new();
    for ((volume, schedule), snapshots) in &by_volume {
        if inventory.existing_volumes.contains(*volume) {
            let rule = policy.rule_for_snapshots(schedule);
            for snapshot in snapshots.iter().rev().take(rule.keep_last as usize) {
                protected.insert(snapshot.id.as_str(), (volume, rule.clone()));
            }
        }
    }

    // An instance the tripwire flagged keeps every set until an operator clears the trip.
    let trips = crate::tripwire::trips(&inventory.snapshots, &policy.deployment, now);

    for snapshot in candidates {
        let expires_at = match expiry_of(snapshot, policy) {
            Ok(at) => at,
            Err(fallback) => {
                plan.warnings.push(format!(
                    "snapshot {}: its {} tag is missing or not RFC 3339; treating it as \
                     expiring {} (start time + schedule {}'s retention_days={})",
                    snapshot.id,
                    tags::EXPIRES_AT,
                    tags::format_time(fallback),
                    tags::schedule_of(&snapshot.tags),
                    policy
                        .rule_for_snapshots(tags::schedule_of(&snapshot.tags))
                        .retention_days
                ));
                fallback
            }
        };
        if expires_at > now {
            continue;
        }
        let subject = Subject::Snapshot(snapshot.id.clone());
        if snapshot.state == SnapshotState::Pending {
            plan.skips.push(Skip::new(
                subject,
                "expired, but still pending; it is deleted on a later run",
            ));
            continue;
        }
        if let Some((instance, trip)) = snapshot
            .tag(tags::INSTANCE_ID)
            .and_then(|id| trips.get_key_value(id))
        {
            plan.skips.push(Skip::new(
                subject,
                format!(
                    "expired, but kept: the tripwire flagged {instance}'s set of {} ({}) on {}; \
                     its sets do not expire until an operator runs `cargo xtask tripwire \
                     --clear --instance {instance}`",
                    tags::format_time(trip.set_at),
                    trip.snapshots.join(", "),
                    tags::format_time(trip.since),
                ),
            ));
            continue;
        }
        if let Some(lock) = inventory.locks.get(&snapshot.id)
            && lock.holds(now)
        {
            plan.skips.push(Skip::new(
                subject,
                format!("expired, but locked: {}", lock.describe()),
            ));
            continue;
        }
        if let Some((volume, rule)) = protected.get(snapshot.id.as_str()) {
            plan.skips.push(Skip::new(
                subject,
                format!(
                    "expired, but kept as one of the newest {} of volume {volume} from schedule \
                     {} (keep_last)",
                    rule.keep_last, rule.name
                ),
            ));
            continue;
        }
        // Retention asks for it: an archived snapshot goes too, and the summary says what
        // its early deletion bills.
        if let Some(usd) = crate::archive::early_deletion(snapshot, now) {
            plan.warnings.push(format!(
                "snapshot {}: deleted as its retention asks while still within the archive \
                 tier's {}-day minimum; EBS bills the rest of it, about ${usd:.2}",
                snapshot.id,
                crate::archive::MIN_ARCHIVE_DAYS
            ));
        }
        plan.deletes.push(Deletion {
            snapshot_id: snapshot.id.clone(),
            volume_id: snapshot.volume_id.clone(),
            instance_id: snapshot.tags.get(tags::INSTANCE_ID).cloned(),
            expired_at: expires_at,
            size_gib: snapshot.size_gib,
        });
    }
}

/// The locks a run makes on snapshots it did not just create: this deployment's pending or
/// completed snapshots of a schedule with a lock, that no lock holds now (made before the lock
/// was configured, or whose lock call failed or was lost). Those too near their expiry are
/// skipped with the reason.
pub fn catch_up_locks(
    snapshots: &[Snapshot],
    locks: &BTreeMap<String, crate::locks::SnapshotLock>,
    policy: &Policy,
    now: OffsetDateTime,
) -> (Vec<crate::locks::LockRequest>, Vec<Skip>) {
    let rule_of = |snapshot: &Snapshot| {
        policy
            .rule(tags::schedule_of(&snapshot.tags))
            .and_then(|r| r.lock)
    };
    catch_up_locks_by(snapshots, locks, &policy.deployment, rule_of, now)
}

/// As [`catch_up_locks`], each snapshot's lock rule from `rule_of` (a copy rule's, for the
/// copies in its region).
pub fn catch_up_locks_by(
    snapshots: &[Snapshot],
    locks: &BTreeMap<String, crate::locks::SnapshotLock>,
    deployment: &str,
    rule_of: impl Fn(&Snapshot) -> Option<crate::locks::LockRule>,
    now: OffsetDateTime,
) -> (Vec<crate::locks::LockRequest>, Vec<Skip>) {
    let mut requests = Vec::new();
    let mut skips = Vec::new();
    for snapshot in snapshots {
        if snapshot.tag(tags::MANAGED_BY) != Some(deployment)
            || snapshot.state == SnapshotState::Error
        {
            continue;
        }
        let Some(rule) = rule_of(snapshot) else {
            continue;
        };
        if locks.get(&snapshot.id).is_some_and(|lock| lock.holds(now)) {
            continue;
        }
        let Some(until) = snapshot
            .tag(tags::EXPIRES_AT)
            .and_then(|value| tags::parse_time(value).ok())
        else {
            skips.push(Skip::new(
                Subject::Snapshot(snapshot.id.clone()),
                format!(
                    "not locked: its {} tag is missing or unreadable",
                    tags::EXPIRES_AT
                ),
            ));
            continue;
        };
        if until <= now {
            continue;
        }
        match crate::locks::request(&snapshot.id, rule, until, now) {
            Ok(lock) => requests.push(lock),
            Err(why) => skips.push(Skip::new(Subject::Snapshot(snapshot.id.clone()), why)),
        }
    }
    (requests, skips)
}

/// The snapshot's expiry from its tag, or the fallback (start + retention) when the tag is unusable.
fn expiry_of(snapshot: &Snapshot, policy: &Policy) -> Result<OffsetDateTime, OffsetDateTime> {
    snapshot
        .tags
        .get(tags::EXPIRES_AT)
        .and_then(|value| OffsetDateTime::parse(value, &Rfc3339).ok())
        .ok_or_else(|| {
            let rule = policy.rule_for_snapshots(tags::schedule_of(&snapshot.tags));
            snapshot.start_time + Duration::days(i64::from(rule.retention_days))
        })
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
