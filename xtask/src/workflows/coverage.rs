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
    let topic = match crate::aws::cfn::describe(aws, &env.stack_name).await {
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

/// The notes of [`crate::workflows::deploy::keys::notes`] for the volumes of the instances this environment
/// backs up; a read that fails is a note too (deploy goes on: this is advice, not a
/// precondition).
pub(crate) async fn key_notes(aws: &Aws, env: &Environment) -> Vec<String> {
    let encrypted = match backed_up_volumes(aws, env).await {
        Ok(owner) => encrypted_volumes(aws, &owner).await,
        Err(why) => Err(why),
    };
    match encrypted {
        Ok(encrypted) => crate::workflows::deploy::keys::notes(&encrypted, &env.source_kms_keys),
        Err(why) => vec![format!("note: could not check the volumes' keys: {why}")],
    }
}

/// The encrypted ones of volumes already read (volume id → instance id), with their keys;
/// `Err` says why they could not be read.
pub(crate) async fn encrypted_volumes(
    aws: &Aws,
    owner: &BTreeMap<String, String>,
) -> std::result::Result<Vec<crate::workflows::deploy::keys::EncryptedVolume>, String> {
    let ids: Vec<String> = owner.keys().cloned().collect();
    let mut encrypted = Vec::new();
    for chunk in ids.chunks(200) {
        let described = aws
            .ec2
            .describe_volumes()
            .set_volume_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|error| {
                format!(
                    "could not read the backed-up volumes to check their keys: {}",
                    aws_sdk_ec2::error::DisplayErrorContext(&error)
                )
            })?;
        for volume in described.volumes() {
            if let (Some(true), Some(key), Some(id)) =
                (volume.encrypted(), volume.kms_key_id(), volume.volume_id())
            {
                encrypted.push(crate::workflows::deploy::keys::EncryptedVolume {
                    volume_id: id.to_owned(),
                    instance_id: owner.get(id).cloned().unwrap_or_default(),
                    kms_key_id: key.to_owned(),
                });
            }
        }
    }
    Ok(encrypted)
}

/// The volumes of the instances this environment backs up, each with its instance, read as a
/// backup run reads them; `Err` says why they could not be read.
pub(crate) async fn backed_up_volumes(
    aws: &Aws,
    env: &Environment,
) -> std::result::Result<BTreeMap<String, String>, String> {
    let inventory = read_fleet(aws, env)
        .await
        .map_err(|error| format!("{error:#}"))?;
    Ok(inventory
        .instances
        .iter()
        .flat_map(|i| {
            i.volumes
                .iter()
                .map(|v| (v.volume_id.clone(), i.id.clone()))
        })
        .collect())
}
