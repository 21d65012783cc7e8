//! The EC2 edge: this deployment's snapshots, read every page, and their deletion through the
//! function's own bounded, paced, per-item deletion.

use crate::aws::{Aws, sdk_error};
use anyhow::{Context, Result};
use function::execute::{self, Mode, Writes};
use function::pacing::{BucketSize, Pacer};
use function::plan::Deletion;

/// One snapshot this deployment made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManagedSnapshot {
    pub id: String,
    pub volume_id: Option<String>,
    pub size_gib: i32,
    pub start_time: Option<i64>,
    /// EC2 reports it `completed` (not `pending` or `error`).
    pub completed: bool,
    /// EC2's state: `pending`, `completed`, `error`, ...
    pub state: String,
    /// Every tag, as `key=value`.
    pub tags: Vec<String>,
}

/// This deployment's snapshots (the managed-by tag names the stack), every page; copies made
/// into this region by a deployment of the same name elsewhere are not among them.
pub async fn managed(aws: &Aws, stack: &str) -> Result<Vec<ManagedSnapshot>> {
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
) -> Result<Vec<(String, Vec<ManagedSnapshot>)>> {
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
pub async fn copies(
    aws: &Aws,
    region: &str,
    stack: &str,
    home: &str,
) -> Result<Vec<ManagedSnapshot>> {
    let all = tagged(&ec2_in(aws, region), stack)
        .await
        .with_context(|| format!("failed to list this deployment's copies in {region}"))?;
    Ok(all
        .into_iter()
        .filter(|s| s.tag(function::tags::SOURCE_REGION) == Some(home))
        .collect())
}

impl ManagedSnapshot {
    /// The value of tag `key`, when the snapshot carries it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }
}

/// The snapshots `ec2`'s region holds with `stack`'s managed-by tag, every page.
async fn tagged(ec2: &aws_sdk_ec2::Client, stack: &str) -> Result<Vec<ManagedSnapshot>> {
    let mut pages = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{}", function::tags::MANAGED_BY))
                .values(stack)
                .build(),
        )
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(sdk_error)?;
        for snapshot in page.snapshots() {
            // Checked again here: only snapshots this deployment made are ever deleted.
            let owned = snapshot
                .tags()
                .iter()
                .any(|t| t.key() == Some(function::tags::MANAGED_BY) && t.value() == Some(stack));
            if owned {
                found.push(ManagedSnapshot {
                    id: snapshot.snapshot_id().unwrap_or_default().to_owned(),
                    volume_id: snapshot.volume_id().map(str::to_owned),
                    size_gib: snapshot.volume_size().unwrap_or_default(),
                    start_time: snapshot.start_time().map(|t| t.secs()),
                    completed: snapshot.state()
                        == Some(&aws_sdk_ec2::types::SnapshotState::Completed),
                    state: snapshot
                        .state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    tags: snapshot
                        .tags()
                        .iter()
                        .map(|t| {
                            format!(
                                "{}={}",
                                t.key().unwrap_or_default(),
                                t.value().unwrap_or_default()
                            )
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(found)
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
    snapshots: &[ManagedSnapshot],
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
