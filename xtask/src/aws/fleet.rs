//! The region's fleet as a backup run reads it, read with the caller's credentials through the
//! function's own inventory: every instance, the tagged ones' volumes, this deployment's
//! snapshots (`coverage`, and deploy's and doctor's checks of the volumes' keys).

use crate::aws::Aws;
use crate::config::Environment;
use anyhow::{Context, Result};
use function::model::{Job, Phase, RunOptions};
use std::collections::BTreeMap;

/// What a backup run of the whole fleet reads, read with the caller's credentials: every
/// instance, the tagged ones' volumes, this deployment's snapshots. Coverage and deploy's
/// check of the volumes' keys read it so.
pub async fn read(aws: &Aws, env: &Environment) -> Result<function::model::Inventory> {
    let policy = env.policy()?;
    let options = RunOptions::whole_fleet(Job::Backup, Phase::FirstLink);
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

/// The encrypted ones of volumes already read (volume id → instance id), with their keys;
/// `Err` says why they could not be read.
pub(crate) async fn encrypted_volumes(
    aws: &Aws,
    owner: &BTreeMap<String, String>,
) -> std::result::Result<Vec<crate::stack::keys::EncryptedVolume>, String> {
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
                encrypted.push(crate::stack::keys::EncryptedVolume {
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
    let inventory = read(aws, env).await.map_err(|error| format!("{error:#}"))?;
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
