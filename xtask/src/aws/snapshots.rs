//! The EC2 edge: this deployment's snapshots, read every page, and their deletion through the
//! function's own bounded, paced, per-item deletion.

use crate::aws::Aws;
use anyhow::{Context, Result};
use function::execute::{self, Mode, Writes};
use function::model::Snapshot;
use function::pacing::{BucketSize, Pacer};
use function::plan::Deletion;

/// This deployment's snapshots (the managed-by tag names the stack), every page; copies made
/// into this region by a deployment of the same name elsewhere are not among them.
pub async fn managed(aws: &Aws, stack: &str) -> Result<Vec<Snapshot>> {
    let all = tagged(&aws.ec2, stack)
        .await
        .context("failed to list this deployment's snapshots")?;
    Ok(all
        .into_iter()
        .filter(|s| s.tag(function::tags::SOURCE_REGION).is_none())
        .collect())
}

/// The regions an environment's copies may be in: those configured now and those its deployed
/// stack records (a region removed from the configuration still holds copies).
pub fn copy_regions(
    env: &crate::config::Environment,
    stack: Option<&crate::aws::cfn::StackView>,
) -> Vec<String> {
    let mut regions: Vec<String> = env.copies.iter().map(|c| c.region.clone()).collect();
    if let Some(view) = stack {
        regions.extend(view.parameters.copy_regions());
    }
    regions.sort();
    regions.dedup();
    regions.retain(|r| *r != env.region);
    regions
}

/// This deployment's copies in each of `regions`.
pub async fn copies_by_region(
    aws: &Aws,
    regions: Vec<String>,
    stack: &str,
    home: &str,
) -> Result<Vec<(String, Vec<Snapshot>)>> {
    let mut found = Vec::new();
    for region in regions {
        let copies = copies(aws, &region, stack, home).await?;
        found.push((region, copies));
    }
    Ok(found)
}

/// A client for EC2 in `region`, with `aws`'s credentials.
pub fn ec2_in(aws: &Aws, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&aws.sdk)
            .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
            .build(),
    )
}

/// This deployment's copies in `region`: its managed-by tag, copied from `home` (the
/// environment's own region), every page.
pub async fn copies(aws: &Aws, region: &str, stack: &str, home: &str) -> Result<Vec<Snapshot>> {
    let all = tagged(&ec2_in(aws, region), stack)
        .await
        .with_context(|| format!("failed to list this deployment's copies in {region}"))?;
    Ok(all
        .into_iter()
        .filter(|s| s.tag(function::tags::SOURCE_REGION) == Some(home))
        .collect())
}

/// A vault deployment's copies (in its own region, `aws`'s) of `workload`'s sets: the vault
/// stack's snapshots carrying that source account.
pub async fn vault_copies(aws: &Aws, vault_stack: &str, workload: &str) -> Result<Vec<Snapshot>> {
    let all = tagged(&aws.ec2, vault_stack)
        .await
        .with_context(|| format!("failed to list {vault_stack}'s vault copies"))?;
    Ok(all
        .into_iter()
        .filter(|s| s.tag(function::vault::SOURCE_ACCOUNT) == Some(workload))
        .collect())
}

/// The snapshots `ec2`'s region holds with `stack`'s managed-by tag, every page, read as the
/// function reads them.
async fn tagged(ec2: &aws_sdk_ec2::Client, stack: &str) -> Result<Vec<Snapshot>> {
    function::inventory::deployment_snapshots(ec2, stack, function::inventory::DEFAULT_PAGE_SIZE)
        .await
        .map_err(|failure| anyhow::anyhow!("{}: {}", failure.code, failure.message))
}

/// How hard a deletion may push EC2: the environment's `max_concurrency`, `ec2_rate_share`
/// and `ec2_refill_per_second`, as its function uses them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub concurrency: usize,
    pub rate_share_percent: f64,
    pub refill_per_second: f64,
}

/// What deleting a set of snapshots came to: each one deleted, kept with the reason, or failed
/// with EC2's answer. One failure never stops the others.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deletions {
    pub deleted: Vec<String>,
    /// Snapshot id and why it was kept (in use by an AMI, already gone).
    pub kept: Vec<(String, String)>,
    /// Snapshot id and the error.
    pub failed: Vec<(String, String)>,
}

/// Deletes `snapshots` with the function's own deletion: paced to EC2's DeleteSnapshot bucket,
/// `limits.concurrency` at once within `limits.rate_share` of it (the environment's own
/// settings), a throttled answer sent again, and every snapshot's outcome reported.
/// `region` is the region `ec2` calls, `None` for the environment's own (each has its buckets).
pub async fn delete(
    ec2: &aws_sdk_ec2::Client,
    region: Option<&str>,
    snapshots: &[Snapshot],
    limits: Limits,
) -> Deletions {
    let pacer = Pacer::new(BucketSize::share_of_ec2(
        limits.refill_per_second,
        limits.rate_share_percent / 100.0,
    ));
    let writes = Writes {
        ec2,
        pacer: &pacer,
        deadline: None,
        limit: limits.concurrency,
        mode: Mode::Apply,
        region,
    };
    let deletions = snapshots
        .iter()
        .map(|s| Deletion {
            snapshot_id: s.id.clone(),
            volume_id: s.volume_id.clone(),
            instance_id: None,
            expired_at: time::OffsetDateTime::now_utc(),
            size_gib: s.size_gib,
        })
        .collect();
    let outcomes = execute::delete_snapshots(writes, deletions).await;
    Deletions {
        deleted: outcomes
            .deleted
            .into_iter()
            .map(|d| d.snapshot_id)
            .collect(),
        kept: outcomes
            .skipped
            .into_iter()
            .map(|s| (s.subject.to_string(), s.reason))
            .collect(),
        failed: outcomes
            .failed
            .into_iter()
            .map(|f| {
                (
                    f.subject.map(|s| s.to_string()).unwrap_or_default(),
                    format!("{}: {}", f.code, f.message),
                )
            })
            .collect(),
    }
}

/// How many snapshots the account owns in `ec2`'s region; the error in one line.
pub async fn count_owned(ec2: &aws_sdk_ec2::Client) -> std::result::Result<usize, String> {
    let mut used = 0;
    let mut pages = ec2
        .describe_snapshots()
        .owner_ids("self")
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        used += page
            .map_err(|error| crate::aws::said(&error))?
            .snapshots()
            .len();
    }
    Ok(used)
}

/// The snapshot locks of this region, by snapshot id, through the function's own reader
/// (ec2:DescribeLockedSnapshots). None when they cannot be read (a deployer policy from before
/// locks): EC2 still refuses each locked deletion, which destroy then reports as kept.
pub async fn locks(aws: &Aws) -> std::collections::BTreeMap<String, function::locks::SnapshotLock> {
    locks_in(aws, &aws.region).await
}

/// [`locks`] of another region.
pub async fn locks_in(
    aws: &Aws,
    region: &str,
) -> std::collections::BTreeMap<String, function::locks::SnapshotLock> {
    match function::inventory::locks(&ec2_in(aws, region), 1000).await {
        Ok(found) => found,
        Err(failure) => {
            eprintln!(
                "note: could not read the snapshot locks ({}: {}); a locked snapshot is reported \
                 kept when EC2 refuses to delete it",
                failure.code, failure.message
            );
            Default::default()
        }
    }
}

/// Disables every fast snapshot restore of `ids` (this region's): what no function will stop
/// billing any more (destroy's kept snapshots, a deploy that removed the last `fast_restore`).
/// Returns what it disabled (`<snapshot id> in <zones>`) and each failure, with the fix.
pub async fn end_fast_restores(
    aws: &Aws,
    ids: &[&str],
    output: crate::output::Output,
) -> (Vec<String>, Vec<String>) {
    let (mut disabled, mut failures) = (Vec::new(), Vec::new());
    if ids.is_empty() {
        return (disabled, failures);
    }
    let enabled = match function::ec2_query::fast_restores(&aws.sdk).await {
        Ok(enabled) => enabled,
        Err(error) => {
            failures.push(format!(
                "reading fast snapshot restores failed ({error}); disable them on this \
                 deployment's snapshots with `aws ec2 disable-fast-snapshot-restores`"
            ));
            return (disabled, failures);
        }
    };
    for id in ids {
        let zones: Vec<String> = enabled
            .iter()
            .filter(|(snapshot, _)| snapshot == id)
            .map(|(_, zone)| zone.clone())
            .collect();
        if zones.is_empty() {
            continue;
        }
        match function::ec2_query::fast_restore(&aws.sdk, id, &zones, false).await {
            Ok(refused) if refused.is_empty() => {
                output.progress(format!(
                    "disabled fast snapshot restore of {id} in {}",
                    zones.join(", ")
                ));
                disabled.push(format!("{id} in {}", zones.join(", ")));
            }
            Ok(refused) => failures.extend(refused.into_iter().map(|(zone, e)| {
                format!("disabling fast snapshot restore of {id} in {zone} failed: {e}")
            })),
            Err(e) => failures.push(format!(
                "disabling fast snapshot restore of {id} failed: {e}"
            )),
        }
    }
    (disabled, failures)
}
