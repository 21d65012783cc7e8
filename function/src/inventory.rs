//! Reads the inventory through the EC2 API, every page of it: tagged instances, their volumes,
//! this deployment's snapshots, and which of those snapshots' volumes still exist.

use crate::copies::Destination;
use crate::locks::{LockState, SnapshotLock};
use crate::model::Untagged;
use crate::model::{
    AttachedVolume, Instance, InstanceDetails, Inventory, Policy, RunOptions, Snapshot,
    SnapshotState,
};
use crate::report::Failure;
use crate::restore_records::VolumeDetails;
use crate::sdk_errors::failure;
use crate::tags;
use crate::tags::Tags;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, SnapshotState as Ec2SnapshotState, Tag};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// EC2 accepts at most 200 values in one filter.
pub const FILTER_VALUES_MAX: usize = 200;
/// The largest page EC2 returns for these calls; tests use a small one.
pub const DEFAULT_PAGE_SIZE: i32 = 500;

/// Reads what the plan needs for `options`. A failed read fails the whole inventory: the
/// planner must not decide on a partial picture (it could miss the newest snapshot).
pub async fn read(
    ec2: &Client,
    policy: &Policy,
    options: &RunOptions,
    page_size: i32,
) -> Result<Inventory, Failure> {
    let mut inventory = Inventory::default();
    if options.job.backs_up() {
        (inventory.instances, inventory.untagged) =
            instances(ec2, policy, options, page_size).await?;
        let ids: Vec<String> = inventory.instances.iter().map(|i| i.id.clone()).collect();
        let described = volumes(ec2, "attachment.instance-id", &ids, page_size).await?;
        for instance in &mut inventory.instances {
            for volume in &mut instance.volumes {
                if let Some(found) = described.iter().find(|v| v.id == volume.volume_id) {
                    volume.tags = found.tags.clone();
                    volume.details = found.details.clone();
                }
            }
        }
    }
    inventory.snapshots = snapshots(ec2, policy, page_size).await?;
    if policy.schedules.iter().any(|s| s.lock.is_some()) {
        let ours: BTreeSet<&str> = inventory.snapshots.iter().map(|s| s.id.as_str()).collect();
        inventory.locks = locks(ec2, page_size)
            .await?
            .into_iter()
            .filter(|(id, _)| ours.contains(id.as_str()))
            .collect();
    }
    if options.job.cleans_up() {
        let volume_ids: BTreeSet<String> = inventory
            .snapshots
            .iter()
            .filter_map(|s| s.volume_id.clone())
            .collect();
        let ids: Vec<String> = volume_ids.into_iter().collect();
        inventory.existing_volumes = volumes(ec2, "volume-id", &ids, page_size)
            .await?
            .into_iter()
            .map(|v| v.id)
            .collect();
    }
    Ok(inventory)
}

/// One EC2 describe filter.
pub(crate) fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn tag_map(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The instances carrying the backup key (or a near miss of it), and the others.
async fn instances(
    ec2: &Client,
    policy: &Policy,
    options: &RunOptions,
    page_size: i32,
) -> Result<(Vec<Instance>, Vec<Untagged>), Failure> {
    // Not filtered by tag: EC2 compares tag keys case-sensitively, and the planner warns about
    // a key that differs from the backup key only in case or spaces. Only instances carrying
    // such a key are kept; the value is compared by the planner.
    let mut request = ec2.describe_instances().max_results(page_size);
    if let Some(ids) = &options.instance_ids {
        request = request.filters(filter("instance-id", ids.iter().cloned()));
    }
    let key = policy.backup_tag_key.trim();
    let mut pages = request.into_paginator().send();
    let mut found = Vec::new();
    let mut untagged = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failure(None, "DescribeInstances", &e))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            let candidate = instance
                .tags()
                .iter()
                .any(|t| t.key().is_some_and(|k| k.trim().eq_ignore_ascii_case(key)));
            let state = instance
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
                .unwrap_or_else(|| "unknown".to_owned());
            if !candidate {
                untagged.push(Untagged {
                    id: instance.instance_id().unwrap_or_default().to_owned(),
                    name: instance
                        .tags()
                        .iter()
                        .find(|t| t.key() == Some(tags::NAME))
                        .and_then(|t| t.value())
                        .map(str::to_owned),
                    state,
                });
                continue;
            }
            let volumes = instance
                .block_device_mappings()
                .iter()
                .filter_map(|m| {
                    Some(AttachedVolume {
                        volume_id: m.ebs()?.volume_id()?.to_owned(),
                        device_name: m.device_name().unwrap_or_default().to_owned(),
                        tags: Tags::new(),
                        details: VolumeDetails::default(),
                    })
                })
                .collect();
            found.push(Instance {
                id: instance.instance_id().unwrap_or_default().to_owned(),
                state,
                root_device_name: instance.root_device_name().map(str::to_owned),
                tags: tag_map(instance.tags()),
                volumes,
                details: InstanceDetails {
                    instance_type: instance.instance_type().map(|t| t.as_str().to_owned()),
                    architecture: instance.architecture().map(|a| a.as_str().to_owned()),
                    availability_zone: instance
                        .placement()
                        .and_then(|p| p.availability_zone())
                        .map(str::to_owned),
                    platform: platform_of(instance),
                },
            });
        }
    }
    Ok((found, untagged))
}

/// One described volume.
struct Described {
    id: String,
    tags: Tags,
    details: VolumeDetails,
}

/// Volumes matching `filter_name` in any of `values`, in batches the filter allows.
async fn volumes(
    ec2: &Client,
    filter_name: &str,
    values: &[String],
    page_size: i32,
) -> Result<Vec<Described>, Failure> {
    let mut found = Vec::new();
    for batch in values.chunks(FILTER_VALUES_MAX) {
        let mut pages = ec2
            .describe_volumes()
            .filters(filter(filter_name, batch.iter().cloned()))
            .max_results(page_size.max(5))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failure(None, "DescribeVolumes", &e))?;
            for volume in page.volumes() {
                if let Some(id) = volume.volume_id() {
                    found.push(Described {
                        id: id.to_owned(),
                        tags: tag_map(volume.tags()),
                        details: VolumeDetails {
                            volume_type: volume.volume_type().map(|t| t.as_str().to_owned()),
                            iops: volume.iops(),
                            throughput: volume.throughput(),
                        },
                    });
                }
            }
        }
    }
    Ok(found)
}

/// This deployment's snapshots here; copies made into this region by a deployment of the same
/// name in another region carry their source region and are not among them.
async fn snapshots(
    ec2: &Client,
    policy: &Policy,
    page_size: i32,
) -> Result<Vec<Snapshot>, Failure> {
    let all = managed_snapshots(ec2, &policy.deployment, Vec::new(), page_size).await?;
    Ok(all
        .into_iter()
        .filter(|s| !s.tags.contains_key(tags::SOURCE_REGION))
        .collect())
}

/// Every snapshot of `deployment` (its managed-by tag) in `ec2`'s region, copies made into
/// it included, every page: what the deployer lists, restores from and destroys.
pub async fn deployment_snapshots(
    ec2: &Client,
    deployment: &str,
    page_size: i32,
) -> Result<Vec<Snapshot>, Failure> {
    let found = managed_snapshots(ec2, deployment, Vec::new(), page_size).await?;
    // Checked again here: only snapshots this deployment made are ever deleted.
    Ok(found
        .into_iter()
        .filter(|s| s.tag(tags::MANAGED_BY) == Some(deployment))
        .collect())
}

/// Every snapshot lock of the account in this region (expired ones too), by snapshot id, every
/// page.
pub async fn locks(
    ec2: &Client,
    page_size: i32,
) -> Result<std::collections::BTreeMap<String, SnapshotLock>, Failure> {
    let mut found = std::collections::BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .describe_locked_snapshots()
            .max_results(page_size.clamp(5, 1000))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| failure(None, "DescribeLockedSnapshots", &e))?;
        for info in page.snapshots() {
            if let Some(id) = info.snapshot_id() {
                found.insert(id.to_owned(), lock_of(info));
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(found),
        }
    }
}

/// Which of this deployment's snapshots are shared with `account` now (a vault's workload
/// side), every page.
pub async fn shared_with(
    ec2: &Client,
    deployment: &str,
    account: &str,
    page_size: i32,
) -> Result<std::collections::BTreeSet<String>, Failure> {
    let mut pages = ec2
        .describe_snapshots()
        .owner_ids("self")
        .restorable_by_user_ids(account)
        .filters(filter(
            &format!("tag:{}", tags::MANAGED_BY),
            [deployment.to_owned()],
        ))
        .max_results(page_size.max(5))
        .into_paginator()
        .send();
    let mut found = std::collections::BTreeSet::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| failure(None, "DescribeSnapshots (shared with the vault)", &e))?;
        found.extend(
            page.snapshots()
                .iter()
                .filter_map(|s| s.snapshot_id().map(str::to_owned)),
        );
    }
    Ok(found)
}

/// The vault's copies of `source_account`'s snapshots, read in the vault account (through
/// its reader role): each source snapshot with its copy's state, a completed copy first.
pub async fn vault_copies_of(
    vault: &Client,
    source_account: &str,
    page_size: i32,
) -> Result<std::collections::BTreeMap<String, SnapshotState>, Failure> {
    let mut pages = vault
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter(
            &format!("tag:{}", crate::vault::SOURCE_ACCOUNT),
            [source_account.to_owned()],
        ))
        .max_results(page_size.max(5))
        .into_paginator()
        .send();
    let mut found = std::collections::BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failure(None, "DescribeSnapshots in the vault account", &e))?;
        for copy in page.snapshots().iter().filter_map(snapshot) {
            let Some(source) = copy.tag(tags::SOURCE_SNAPSHOT) else {
                continue;
            };
            let state = found.entry(source.to_owned()).or_insert(copy.state);
            if copy.state == SnapshotState::Completed {
                *state = SnapshotState::Completed;
            }
        }
    }
    Ok(found)
}

/// The snapshots `owners` share with this account in `region` (a vault's side), every page:
/// no tags (another account's are invisible), their owner and description.
pub async fn shared_from(
    ec2: &Client,
    owners: &[String],
    region: &str,
    page_size: i32,
) -> Result<Vec<crate::vault::SharedSnapshot>, Failure> {
    let mut pages = ec2
        .describe_snapshots()
        .set_owner_ids(Some(owners.to_vec()))
        .restorable_by_user_ids("self")
        .max_results(page_size.max(5))
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| failure(None, &format!("DescribeSnapshots shared in {region}"), &e))?;
        for described in page.snapshots() {
            let (Some(owner), Some(shared)) = (described.owner_id(), snapshot(described)) else {
                continue;
            };
            found.push(crate::vault::SharedSnapshot {
                snapshot: shared,
                owner: owner.to_owned(),
                region: region.to_owned(),
                description: described.description().unwrap_or_default().to_owned(),
            });
        }
    }
    Ok(found)
}

/// This deployment's snapshots (its managed-by tag) that also match `filters`, every page.
async fn managed_snapshots(
    ec2: &Client,
    deployment: &str,
    filters: Vec<Filter>,
    page_size: i32,
) -> Result<Vec<Snapshot>, Failure> {
    let mut pages = ec2
        .describe_snapshots()
        .owner_ids("self")
        .set_filters(Some(
            std::iter::once(filter(
                &format!("tag:{}", tags::MANAGED_BY),
                [deployment.to_owned()],
            ))
            .chain(filters)
            .collect(),
        ))
        .max_results(page_size.max(5))
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failure(None, "DescribeSnapshots", &e))?;
        found.extend(page.snapshots().iter().filter_map(snapshot));
    }
    Ok(found)
}

/// One described snapshot as the planners see it.
fn snapshot(snapshot: &aws_sdk_ec2::types::Snapshot) -> Option<Snapshot> {
    let start_time = snapshot
        .start_time()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Some(Snapshot {
        id: snapshot.snapshot_id()?.to_owned(),
        volume_id: snapshot.volume_id().map(str::to_owned),
        start_time,
        state: match snapshot.state() {
            Some(Ec2SnapshotState::Completed) => SnapshotState::Completed,
            Some(Ec2SnapshotState::Pending) => SnapshotState::Pending,
            Some(Ec2SnapshotState::Error) => SnapshotState::Error,
            _ => SnapshotState::Other,
        },
        size_gib: snapshot.volume_size().unwrap_or_default(),
        encrypted: snapshot.encrypted().unwrap_or(false),
        kms_key: snapshot.kms_key_id().map(str::to_owned),
        tags: tag_map(snapshot.tags()),
        tier: match (snapshot.storage_tier(), snapshot.restore_expiry_time()) {
            (_, Some(until)) => OffsetDateTime::from_unix_timestamp(until.secs())
                .map_or(crate::model::Tier::Standard, |until| {
                    crate::model::Tier::Restored { until }
                }),
            (Some(aws_sdk_ec2::types::StorageTier::Archive), None) => crate::model::Tier::Archive,
            _ => crate::model::Tier::Standard,
        },
    })
}

/// This deployment's snapshots among `ids` (a copy run's, from EC2's completion event).
pub async fn snapshots_by_id(
    ec2: &Client,
    policy: &Policy,
    ids: &BTreeSet<String>,
    page_size: i32,
) -> Result<Vec<Snapshot>, Failure> {
    managed_where(ec2, policy, "snapshot-id", ids, page_size).await
}

/// This deployment's snapshots of `instances` (their instance-id tag), every page: a
/// completion event's history for the tripwire.
pub async fn instances_snapshots(
    ec2: &Client,
    policy: &Policy,
    instances: &BTreeSet<String>,
    page_size: i32,
) -> Result<Vec<Snapshot>, Failure> {
    let key = format!("tag:{}", tags::INSTANCE_ID);
    managed_where(ec2, policy, &key, instances, page_size).await
}

/// The instances among `ids` that carry the backup tag key (or a near miss), with their tags:
/// what a completion event's fast snapshot restore needs of them.
pub async fn instances_by_id(
    ec2: &Client,
    policy: &Policy,
    ids: &BTreeSet<String>,
    page_size: i32,
) -> Result<Vec<Instance>, Failure> {
    let options = RunOptions {
        instance_ids: Some(ids.clone()),
        ..RunOptions::whole_fleet(crate::model::Job::Backup, crate::model::Phase::FirstLink)
    };
    instances(ec2, policy, &options, page_size)
        .await
        .map(|(found, _)| found)
}

/// This deployment's snapshots whose filter `name` takes one of `values`, in batches of
/// EC2's most values per filter.
async fn managed_where(
    ec2: &Client,
    policy: &Policy,
    name: &str,
    values: &BTreeSet<String>,
    page_size: i32,
) -> Result<Vec<Snapshot>, Failure> {
    let values: Vec<String> = values.iter().cloned().collect();
    let mut found = Vec::new();
    for batch in values.chunks(FILTER_VALUES_MAX) {
        let by = vec![filter(name, batch.iter().cloned())];
        found.extend(managed_snapshots(ec2, &policy.deployment, by, page_size).await?);
    }
    Ok(found)
}

/// The locks of the snapshots `ids` (expired ones too), by snapshot id.
pub async fn locks_of(
    ec2: &Client,
    ids: &[String],
) -> Result<std::collections::BTreeMap<String, SnapshotLock>, Failure> {
    let mut found = std::collections::BTreeMap::new();
    for batch in ids.chunks(FILTER_VALUES_MAX) {
        let page = ec2
            .describe_locked_snapshots()
            .set_snapshot_ids(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| failure(None, "DescribeLockedSnapshots", &e))?;
        for info in page.snapshots() {
            if let Some(id) = info.snapshot_id() {
                found.insert(id.to_owned(), lock_of(info));
            }
        }
    }
    Ok(found)
}

/// A lock as EC2 describes it.
fn lock_of(info: &aws_sdk_ec2::types::LockedSnapshotsInfo) -> SnapshotLock {
    let state = match info.lock_state() {
        Some(aws_sdk_ec2::types::LockState::Governance) => LockState::Governance,
        Some(aws_sdk_ec2::types::LockState::Compliance) => LockState::Compliance,
        Some(aws_sdk_ec2::types::LockState::ComplianceCooloff) => LockState::ComplianceCooloff,
        _ => LockState::Expired,
    };
    let expires_on = info
        .lock_expires_on()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
    SnapshotLock { state, expires_on }
}

/// The ids among `volume_ids` of volumes that exist now.
pub async fn existing_volumes(
    ec2: &Client,
    volume_ids: &BTreeSet<String>,
    page_size: i32,
) -> Result<BTreeSet<String>, Failure> {
    let ids: Vec<String> = volume_ids.iter().cloned().collect();
    Ok(volumes(ec2, "volume-id", &ids, page_size)
        .await?
        .into_iter()
        .map(|v| v.id)
        .collect())
}

/// What a copy region holds: this deployment's copies (all of them, or those of `sources`
/// only), and how many of the account's snapshots are pending there.
pub async fn destination(
    ec2: &Client,
    region: &str,
    deployment: &str,
    sources: Option<&BTreeSet<String>>,
    page_size: i32,
) -> Result<Destination, Failure> {
    let in_region = |mut failure: Failure| {
        failure.message = format!("in {region}: {}", failure.message);
        failure
    };
    let copies = match sources {
        None => managed_snapshots(ec2, deployment, Vec::new(), page_size).await,
        Some(ids) => {
            let ids: Vec<String> = ids.iter().cloned().collect();
            let mut found = Vec::new();
            for batch in ids.chunks(FILTER_VALUES_MAX) {
                let of = vec![filter(
                    &format!("tag:{}", tags::SOURCE_SNAPSHOT),
                    batch.iter().cloned(),
                )];
                match managed_snapshots(ec2, deployment, of, page_size).await {
                    Ok(copies) => found.extend(copies),
                    Err(failure) => return Err(in_region(failure)),
                }
            }
            Ok(found)
        }
    }
    .map_err(in_region)?;
    let mut pages = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter("status", ["pending"]))
        .max_results(page_size.max(5))
        .into_paginator()
        .send();
    let mut pending = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| in_region(failure(None, "DescribeSnapshots", &e)))?;
        pending += page.snapshots().len();
    }
    Ok(Destination {
        region: region.to_owned(),
        copies,
        pending,
    })
}

/// The boot mode the instance runs with (its current one; else the one it asked for, unless
/// that is only a preference), TPM, IMDSv2 and platform details.
fn platform_of(instance: &aws_sdk_ec2::types::Instance) -> crate::restore_records::Platform {
    let boot_mode = instance
        .current_instance_boot_mode()
        .map(|m| m.as_str().to_owned())
        .or_else(|| {
            instance
                .boot_mode()
                .map(|m| m.as_str().to_owned())
                .filter(|m| m == "legacy-bios" || m == "uefi")
        });
    crate::restore_records::Platform {
        boot_mode,
        tpm: instance.tpm_support().map(str::to_owned),
        imds_tokens: instance
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str().to_owned()),
        details: instance.platform_details().map(str::to_owned),
    }
}
