//! What `cargo xtask coverage` reads: the region's instances, their volumes and this
//! deployment's snapshots, through the function's own inventory, judged by its coverage.

use crate::aws::Aws;
use crate::config::Environment;
use anyhow::{Context, Result};
use function::coverage::{self, Coverage};
use function::model::{Interval, Job, Phase, RunOptions};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What a backup run of the whole fleet reads, read with the caller's credentials: every
/// instance, the tagged ones' volumes, this deployment's snapshots. Coverage and deploy's
/// check of the volumes' keys read it so.
pub async fn read_fleet(aws: &Aws, env: &Environment) -> Result<function::model::Inventory> {
    let policy = env.policy()?;
    let options = RunOptions {
        job: Job::Backup,
        interval: Interval::Respect,
        instance_ids: None,
        schedule: None,
        snapshot_ids: None,
        phase: Phase::FirstLink,
    };
    function::inventory::read(
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
    })
}

/// The environment's coverage at `now`, as a backup run would report it.
pub async fn assess(aws: &Aws, env: &Environment, now: OffsetDateTime) -> Result<Coverage> {
    let policy = env.policy()?;
    let inventory = read_fleet(aws, env).await?;
    let since = schedules_since(aws, env).await;
    Ok(coverage::assess(
        &inventory.instances,
        &inventory.untagged,
        &inventory.snapshots,
        &policy,
        &since,
        now,
    ))
}

/// Since when each schedule is configured, as the function recorded it on the stack's topic
/// (read-only here: only the function writes it). Unknown, and so never overdue for a missing
/// set, when the stack, its topic or the tags cannot be read; the reason is printed.
async fn schedules_since(aws: &Aws, env: &Environment) -> BTreeMap<String, OffsetDateTime> {
    let topic = match crate::cfn::describe(aws, &env.stack_name).await {
        Ok(Some(view)) => view.outputs.get("TopicArn").cloned(),
        Ok(None) => None,
        Err(error) => {
            eprintln!("note: could not read stack {}: {error:#}", env.stack_name);
            None
        }
    };
    let Some(topic) = topic else {
        return BTreeMap::new();
    };
    match aws_sdk_sns::Client::new(&aws.sdk)
        .list_tags_for_resource()
        .resource_arn(&topic)
        .send()
        .await
    {
        Ok(listed) => coverage::since_from_tags(listed.tags().iter().map(|t| (t.key(), t.value()))),
        Err(error) => {
            eprintln!(
                "note: could not read the tags of {topic} (since when each schedule runs): {}; \
                 a schedule without a set is not judged overdue",
                aws_sdk_sns::error::DisplayErrorContext(&error)
            );
            BTreeMap::new()
        }
    }
}
