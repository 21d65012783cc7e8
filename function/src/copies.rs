//! The copy planner (pure): which of this deployment's completed sets go to which other region
//! now, within EC2's limit of copies in flight, and which copies there have expired.

use crate::model::{
    CopyRule, Inventory, Policy, RunOptions, ScheduleRule, Snapshot, SnapshotState,
};
use crate::plan::{self, Deletion, Skip};
use crate::settings::{KEEP_LAST, RETENTION_DAYS};
use crate::tags;
use crate::tags::fit;
use crate::tags::format_time;
use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime};

/// The most copy regions one deployment has (as AWS Data Lifecycle Manager's cross-region
/// copy rules).
pub const MAX_COPY_RULES: usize = 3;
/// EC2 runs at most 20 concurrent snapshot copies per destination region (per account); a
/// copy beyond it is refused with `ResourceLimitExceeded`.
pub const MAX_CONCURRENT_COPIES: usize = 20;

/// Why a list of copy rules is not acceptable beside `schedules`, or `None`: the rule's index
/// and field at fault, and the problem. The source region is checked where it is known (the
/// deployer, and the planner skips such a rule).
pub fn copies_problem(
    copies: &[CopyRule],
    schedules: &[ScheduleRule],
) -> Option<(usize, &'static str, String)> {
    if copies.len() > MAX_COPY_RULES {
        return Some((
            MAX_COPY_RULES,
            "region",
            format!(
                "at most {MAX_COPY_RULES} copy regions, not {}",
                copies.len()
            ),
        ));
    }
    for (index, rule) in copies.iter().enumerate() {
        let region = &rule.region;
        if !is_region_name(region) {
            return Some((
                index,
                "region",
                format!("copy region {region:?} is not an AWS region name such as eu-west-1"),
            ));
        }
        if copies[..index].iter().any(|r| &r.region == region) {
            return Some((
                index,
                "region",
                format!("copy region {region} is given twice; give each region once"),
            ));
        }
        if let Some(days) = rule.retention_days
            && !RETENTION_DAYS.range.contains(&days)
        {
            return Some((
                index,
                "retention_days",
                format!(
                    "copies to {region}: retention_days {days} is outside {}-{}",
                    RETENTION_DAYS.range.start(),
                    RETENTION_DAYS.range.end()
                ),
            ));
        }
        if let Some(keep) = rule.keep_last
            && !KEEP_LAST.range.contains(&keep)
        {
            return Some((
                index,
                "keep_last",
                format!(
                    "copies to {region}: keep_last {keep} is outside {}-{}",
                    KEEP_LAST.range.start(),
                    KEEP_LAST.range.end()
                ),
            ));
        }
        if let Some(lock) = rule.lock
            && let Some(problem) = schedules
                .iter()
                .filter(|s| rule.copies_schedule(&s.name))
                .find_map(|s| lock.problem(rule.retention_days.unwrap_or(s.retention_days)))
        {
            return Some((index, "lock", format!("copies to {region}: {problem}")));
        }
        if let Some(key) = &rule.kms_key
            && let Some(problem) = kms_key_problem(key, region)
        {
            return Some((index, "kms_key", format!("copies to {region}: {problem}")));
        }
        if let Some(names) = &rule.schedules {
            if names.is_empty() {
                return Some((
                    index,
                    "schedules",
                    format!(
                        "copies to {region}: `schedules` is empty; leave it out to copy every \
                         schedule's sets"
                    ),
                ));
            }
            if let Some(unknown) = names
                .iter()
                .find(|n| !schedules.iter().any(|s| &s.name == *n))
            {
                let known: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
                return Some((
                    index,
                    "schedules",
                    format!(
                        "copies to {region}: schedule {unknown:?} is not one of this \
                         deployment's ({})",
                        known.join(", ")
                    ),
                ));
            }
            if let Some(twice) = names
                .iter()
                .enumerate()
                .find_map(|(i, n)| names[..i].contains(n).then_some(n))
            {
                return Some((
                    index,
                    "schedules",
                    format!(
                        "copies to {region}: schedule {twice:?} is listed twice; name each \
                         schedule once"
                    ),
                ));
            }
        }
    }
    None
}

/// The partition a region belongs to, by AWS's naming: `cn-` regions are `aws-cn`,
/// `us-gov-` `aws-us-gov`, `eusc-` `aws-eusc`, the isolated `us-iso-`/`us-isob-`/`eu-isoe-`
/// regions theirs, every other `aws`. An ARN of another partition never works in the region.
pub fn partition_of_region(region: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// Why `key` cannot encrypt copies in `region`, or `None`: a key ARN or alias ARN must be in
/// that region (KMS keys are regional) and its partition, and an alias is `alias/<name>`.
pub fn kms_key_problem(key: &str, region: &str) -> Option<String> {
    let example = format!(
        "give a key ARN (arn:aws:kms:{region}:<account>:key/<id>), an alias ARN or \
         alias/<name> of a key in {region}"
    );
    if let Some(name) = key.strip_prefix("alias/") {
        let valid = !name.is_empty()
            && name.len() <= 250
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
        return (!valid).then(|| format!("kms_key {key:?} is not a valid alias; {example}"));
    }
    let parts: Vec<&str> = key.splitn(6, ':').collect();
    let resource = parts.get(5).copied().unwrap_or("");
    let arn = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kms"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && (resource
            .strip_prefix("key/")
            .is_some_and(|id| !id.is_empty())
            || resource
                .strip_prefix("alias/")
                .is_some_and(|n| !n.is_empty()));
    if !arn {
        return Some(format!("kms_key {key:?} is not a KMS key; {example}"));
    }
    if parts[3] != region {
        return Some(format!(
            "kms_key {key:?} is in {}, not in {region} where the copies are made (a KMS key \
             is used only in its own region); {example}",
            parts[3]
        ));
    }
    let partition = partition_of_region(region);
    if parts[1] != partition {
        return Some(format!(
            "kms_key {key:?} is an ARN of the {} partition, but {region} is in the {partition} \
             partition; write arn:{partition}:kms:{region}:<account>:key/<id>",
            parts[1]
        ));
    }
    None
}

/// The shape of an AWS region name: `eu-west-1`, `us-gov-west-1`, `ap-southeast-5` (a
/// two-letter area, three or four parts, a number last). The one check of a region's shape for
/// the function and the deployer, which also checks a copy region against the regions AWS
/// publishes.
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// What was read in one destination region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destination {
    pub region: String,
    /// This deployment's copies there (its managed-by tag), of any state.
    pub copies: Vec<Snapshot>,
    /// Snapshots of the account pending there, whoever made them: each may be a copy in
    /// flight, so each takes one of the region's concurrent copies.
    pub pending: usize,
}

/// One `CopySnapshot` call, sent to the destination region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub region: String,
    pub source_region: String,
    pub source_snapshot_id: String,
    pub instance_id: Option<String>,
    pub volume_id: Option<String>,
    pub description: String,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    /// Applied at creation (`TagSpecifications`): no separate tag call.
    pub tags: Vec<(String, String)>,
}

/// What the copy half of a run will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyPlan {
    pub copies: Vec<CopyRequest>,
    /// Copies to delete, by region: expired by their rule, or failed (`error`).
    pub deletes: Vec<(String, Deletion)>,
    pub skips: Vec<Skip>,
    pub warnings: Vec<String>,
    /// Per region: snapshots whose copy waits for the next sweep (the region's copies in
    /// flight are at EC2's limit).
    pub waiting: BTreeMap<String, usize>,
    /// Per region: this deployment's copies there now, completed and in flight.
    pub completed: BTreeMap<String, usize>,
    pub in_flight: BTreeMap<String, usize>,
}

/// Whether a copy in `destination` was made by this deployment from this region.
fn is_ours(copy: &Snapshot, policy: &Policy, home_region: &str) -> bool {
    copy.tags.get(tags::MANAGED_BY) == Some(&policy.deployment)
        && copy.tags.get(tags::SOURCE_REGION).map(String::as_str) == Some(home_region)
}

/// Where a copy plan is made and what it may do.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The function's own region, where `sources` are.
    pub home_region: &'a str,
    /// The source volumes that still exist: keep_last holds only their copies, as at home.
    pub existing_volumes: &'a BTreeSet<String>,
    /// Whether copies are also expired (runs that clean up).
    pub expire: bool,
}

/// Plans the copies of `sources` (this deployment's snapshots in `home_region`) to every
/// destination, and, when the scope says so, the deletion of expired or failed copies there.
pub fn plan_copies(
    sources: &[Snapshot],
    destinations: &[Destination],
    policy: &Policy,
    options: &RunOptions,
    scope: Scope<'_>,
    now: OffsetDateTime,
) -> CopyPlan {
    let Scope {
        home_region,
        existing_volumes,
        expire,
    } = scope;
    let mut plan = CopyPlan::default();
    for rule in &policy.copies {
        if rule.region == home_region {
            plan.warnings.push(format!(
                "copies to {home_region} are skipped: it is this deployment's own region; \
                 name another region in `copies`"
            ));
            continue;
        }
        let Some(destination) = destinations.iter().find(|d| d.region == rule.region) else {
            continue;
        };
        let ours: Vec<&Snapshot> = destination
            .copies
            .iter()
            .filter(|c| is_ours(c, policy, home_region))
            .collect();
        let count = |state: SnapshotState| ours.iter().filter(|c| c.state == state).count();
        plan.completed
            .insert(rule.region.clone(), count(SnapshotState::Completed));
        plan.in_flight
            .insert(rule.region.clone(), count(SnapshotState::Pending));
        plan_region(
            sources,
            rule,
            &ours,
            destination.pending,
            policy,
            home_region,
            options,
            now,
            &mut plan,
        );
        if expire {
            expire_region(
                rule,
                &ours,
                policy,
                options,
                existing_volumes,
                now,
                &mut plan,
            );
        }
    }
    plan
}

#[allow(clippy::too_many_arguments)]
fn plan_region(
    sources: &[Snapshot],
    rule: &CopyRule,
    ours: &[&Snapshot],
    pending: usize,
    policy: &Policy,
    home_region: &str,
    options: &RunOptions,
    now: OffsetDateTime,
    plan: &mut CopyPlan,
) {
    // A source counts as copied while a copy of it is completed or in flight; a failed copy
    // is deleted (below) and made again.
    let copied: BTreeSet<&str> = ours
        .iter()
        .filter(|c| c.state != SnapshotState::Error)
        .filter_map(|c| c.tags.get(tags::SOURCE_SNAPSHOT).map(String::as_str))
        .collect();
    // Sets by (instance, created-at): copied whole, newest first, once every snapshot of the
    // set is completed.
    let mut sets: BTreeMap<(OffsetDateTime, String), Vec<&Snapshot>> = BTreeMap::new();
    let mut incomplete: BTreeSet<(OffsetDateTime, String)> = BTreeSet::new();
    for source in sources {
        if source.tags.get(tags::MANAGED_BY) != Some(&policy.deployment) {
            continue;
        }
        let schedule = tags::schedule_of(&source.tags);
        let instance = source
            .tags
            .get(tags::INSTANCE_ID)
            .cloned()
            .unwrap_or_default();
        if !rule.copies_schedule(schedule)
            || options
                .instance_ids
                .as_ref()
                .is_some_and(|ids| !ids.contains(&instance))
        {
            continue;
        }
        let key = (source.made_at_by(now), instance);
        match source.state {
            SnapshotState::Completed => {}
            SnapshotState::Pending => {
                incomplete.insert(key);
                continue;
            }
            SnapshotState::Error | SnapshotState::Other => continue,
        }
        if copied.contains(source.id.as_str()) {
            continue;
        }
        // A copy that would expire at once is not worth its transfer.
        let keep = rule.rule_for(policy, schedule);
        if source.made_at_by(now) + Duration::days(i64::from(keep.retention_days)) <= now {
            continue;
        }
        sets.entry(key).or_default().push(source);
    }
    let mut room = MAX_CONCURRENT_COPIES.saturating_sub(pending);
    let mut waiting = 0;
    for (key, set) in sets.into_iter().rev() {
        if incomplete.contains(&key) {
            continue;
        }
        // A set larger than the limit goes in parts when nothing else is in flight.
        let take = if set.len() <= room {
            set.len()
        } else if room == MAX_CONCURRENT_COPIES {
            room
        } else {
            0
        };
        if take == 0 || waiting > 0 {
            waiting += set.len();
            continue;
        }
        room -= take;
        waiting += set.len() - take;
        for source in &set[..take] {
            plan.copies.push(request(source, rule, policy, home_region));
        }
    }
    if waiting > 0 {
        plan.waiting.insert(rule.region.clone(), waiting);
    }
}

fn request(source: &Snapshot, rule: &CopyRule, policy: &Policy, home_region: &str) -> CopyRequest {
    let schedule = tags::schedule_of(&source.tags).to_owned();
    let keep = rule.rule_for(policy, &schedule);
    let made = source.made_at();
    let instance_id = source.tags.get(tags::INSTANCE_ID).cloned();
    let mut copy_tags = vec![
        (tags::MANAGED_BY.to_owned(), policy.deployment.clone()),
        (tags::SOURCE_SNAPSHOT.to_owned(), source.id.clone()),
        (tags::SOURCE_REGION.to_owned(), home_region.to_owned()),
        (tags::CREATED_AT.to_owned(), format_time(made)),
        (
            tags::EXPIRES_AT.to_owned(),
            format_time(made + Duration::days(i64::from(keep.retention_days))),
        ),
        (tags::SCHEDULE.to_owned(), schedule),
    ];
    if let Some(instance) = &instance_id {
        copy_tags.push((tags::INSTANCE_ID.to_owned(), instance.clone()));
    }
    if let Some(volume) = &source.volume_id {
        copy_tags.push((tags::SOURCE_VOLUME.to_owned(), volume.clone()));
    }
    if let Some(name) = source.tags.get(tags::NAME) {
        copy_tags.push((tags::NAME.to_owned(), name.clone()));
    }
    // What a restore from this region needs: the set's instance and this snapshot's volume.
    let own_record = source
        .volume_id
        .as_deref()
        .map(crate::restore_records::VolumeRecord::key);
    for (key, value) in &source.tags {
        let set_level = [
            crate::restore_records::INSTANCE_TYPE,
            crate::restore_records::ARCHITECTURE,
            crate::restore_records::AVAILABILITY_ZONE,
            crate::restore_records::ROOT_DEVICE,
            crate::restore_records::PLATFORM,
        ]
        .contains(&key.as_str());
        if set_level || own_record.as_ref() == Some(key) {
            copy_tags.push((key.clone(), value.clone()));
        }
    }
    let description = fit(
        &format!(
            "SmartVault copy of {} from {home_region} ({}) by {}",
            source.id,
            instance_id.as_deref().unwrap_or("unknown instance"),
            policy.deployment
        ),
        crate::tags::MAX_DESCRIPTION_CHARS,
    );
    CopyRequest {
        region: rule.region.clone(),
        source_region: home_region.to_owned(),
        source_snapshot_id: source.id.clone(),
        instance_id,
        volume_id: source.volume_id.clone(),
        description,
        encrypted: source.encrypted || rule.kms_key.is_some(),
        kms_key: rule.kms_key.clone(),
        tags: copy_tags,
    }
}

/// Expires this deployment's copies in one region by the copy rule, keeping the newest
/// `keep_last` of each source volume and schedule while that volume exists; a failed copy
/// (`error`) is deleted so that the sweep makes it again.
fn expire_region(
    rule: &CopyRule,
    ours: &[&Snapshot],
    policy: &Policy,
    options: &RunOptions,
    existing_volumes: &BTreeSet<String>,
    now: OffsetDateTime,
    plan: &mut CopyPlan,
) {
    // Two copies of one source (an event's copy run and a sweep that crossed): the oldest
    // stays, the others go once completed.
    let mut first_copy: BTreeSet<&str> = BTreeSet::new();
    let mut extra: BTreeSet<&str> = BTreeSet::new();
    let mut live: Vec<&&Snapshot> = ours
        .iter()
        .filter(|c| c.state != SnapshotState::Error)
        .collect();
    live.sort_by(|a, b| a.start_time.cmp(&b.start_time).then(a.id.cmp(&b.id)));
    for copy in live {
        if let Some(source) = copy.tags.get(tags::SOURCE_SNAPSHOT)
            && !first_copy.insert(source.as_str())
            && copy.state == SnapshotState::Completed
        {
            extra.insert(copy.id.as_str());
        }
    }
    // The home planner's cleanup, on the copies seen as snapshots of their source volumes and
    // kept by the copy rule of each schedule.
    let schedules: BTreeSet<&str> = ours.iter().map(|c| tags::schedule_of(&c.tags)).collect();
    let copy_policy = Policy {
        schedules: schedules
            .iter()
            .map(|name| rule.rule_for(policy, name))
            .collect(),
        ..policy.clone()
    };
    let inventory = Inventory {
        instances: Vec::new(),
        untagged: Vec::new(),
        locks: Default::default(),
        snapshots: ours
            .iter()
            .filter(|c| c.state != SnapshotState::Error && !extra.contains(c.id.as_str()))
            .map(|c| Snapshot {
                volume_id: c.tags.get(tags::SOURCE_VOLUME).cloned(),
                ..(*c).clone()
            })
            .collect(),
        existing_volumes: existing_volumes.clone(),
    };
    let mut cleanup = plan::Plan::default();
    plan::plan_cleanup(&inventory, &copy_policy, options, now, &mut cleanup);
    for deletion in cleanup.deletes {
        plan.deletes.push((rule.region.clone(), deletion));
    }
    for skip in cleanup.skips {
        plan.skips.push(Skip::new(
            skip.subject,
            format!("copy in {}: {}", rule.region, skip.reason),
        ));
    }
    for warning in cleanup.warnings {
        plan.warnings
            .push(format!("copy in {}: {warning}", rule.region));
    }
    for duplicate in ours.iter().filter(|c| extra.contains(c.id.as_str())) {
        plan.deletes.push((
            rule.region.clone(),
            Deletion {
                snapshot_id: duplicate.id.clone(),
                volume_id: duplicate.tags.get(tags::SOURCE_VOLUME).cloned(),
                instance_id: duplicate.tags.get(tags::INSTANCE_ID).cloned(),
                expired_at: now,
                size_gib: duplicate.size_gib,
            },
        ));
    }
    for failed in ours.iter().filter(|c| c.state == SnapshotState::Error) {
        plan.warnings.push(format!(
            "copy {} in {} of {} failed (state error; with a KMS key, check that its key \
             policy lets this function's role use it through EC2); it is deleted and made again",
            failed.id,
            rule.region,
            failed
                .tags
                .get(tags::SOURCE_SNAPSHOT)
                .map_or("an unknown snapshot", String::as_str)
        ));
        plan.deletes.push((
            rule.region.clone(),
            Deletion {
                snapshot_id: failed.id.clone(),
                volume_id: failed.tags.get(tags::SOURCE_VOLUME).cloned(),
                instance_id: failed.tags.get(tags::INSTANCE_ID).cloned(),
                expired_at: now,
                size_gib: failed.size_gib,
            },
        ));
    }
}

#[cfg(test)]
mod tests;

/// The lock `rule` puts on each copy just started (`started`: its request and the copy's id),
/// until the copy's own expiry (its `expires-at` tag); the copies EC2 would refuse to lock are
/// returned with the reason.
pub fn locks_for_started(
    started: &[(CopyRequest, String)],
    rule: crate::locks::LockRule,
    now: OffsetDateTime,
) -> (Vec<crate::locks::LockRequest>, Vec<(String, String)>) {
    let mut requests = Vec::new();
    let mut refused = Vec::new();
    for (request, copy_id) in started {
        let until = request
            .tags
            .iter()
            .find(|(key, _)| key == tags::EXPIRES_AT)
            .and_then(|(_, value)| tags::parse_time(value).ok());
        match until.map(|until| crate::locks::request(copy_id, rule, until, now)) {
            Some(Ok(lock)) => requests.push(lock),
            Some(Err(why)) => refused.push((copy_id.clone(), why)),
            None => {}
        }
    }
    (requests, refused)
}
