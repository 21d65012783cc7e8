//! What `cargo xtask coverage` reads: the region's instances, their volumes and this
//! deployment's snapshots, through the function's own inventory, judged by its coverage.

use crate::aws::Aws;
use crate::config::Environment;
use anyhow::{Context, Result};
use function::coverage::{self, Coverage};
use function::model::{Interval, Job, Phase, RunOptions};
use time::OffsetDateTime;

/// The environment's coverage at `now`, as a backup run would report it.
pub async fn assess(aws: &Aws, env: &Environment, now: OffsetDateTime) -> Result<Coverage> {
    let policy = env.policy()?;
    // What a backup run of the whole fleet reads: every instance, the tagged ones' volumes,
    // this deployment's snapshots.
    let options = RunOptions {
        job: Job::Backup,
        interval: Interval::Respect,
        instance_ids: None,
        schedule: None,
        snapshot_ids: None,
        phase: Phase::FirstLink,
    };
    let inventory = function::inventory::read(
        &aws.ec2,
        &policy,
        &options,
        function::inventory::DEFAULT_PAGE_SIZE,
    )
    .await
    .map_err(|failure| {
        anyhow::anyhow!(
            "{}: {}: {}",
            failure.operation,
            failure.code,
            failure.message
        )
    })
    .with_context(|| {
        format!(
            "failed to read the instances and snapshots of {}",
            env.region
        )
    })?;
    Ok(coverage::assess(
        &inventory.instances,
        &inventory.untagged,
        &inventory.snapshots,
        &policy,
        now,
    ))
}
