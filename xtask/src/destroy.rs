//! `cargo xtask destroy`: list everything first, ask, then remove the stack, this deployment's
//! snapshots, a leftover log group and the artifacts.

use crate::aws::{Aws, sdk_error};
use crate::config::Environment;
use crate::deploy::{delete_stack_and_wait, is_missing_stack, stack_outputs};
use crate::output::{Output, confirm};
use crate::template::BOOTSTRAP_STACK;
use anyhow::{Context, Result, bail};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use std::collections::BTreeMap;

/// Snapshot handling on destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshots {
    Delete,
    Keep,
}

/// What destroy found and did, for `--output json`.
#[derive(Debug, Default, serde::Serialize)]
pub struct DestroyResult {
    pub environment: String,
    pub stack: String,
    pub stack_existed: bool,
    pub resources: Vec<String>,
    pub snapshots_found: usize,
    pub snapshots_gib: i64,
    pub snapshots_deleted: Vec<String>,
    /// Snapshot id and why it was kept.
    pub snapshots_kept: Vec<(String, String)>,
    pub log_group_deleted: bool,
    pub artifacts_deleted: Vec<String>,
    pub bootstrap_deleted: bool,
}

/// One managed snapshot of this deployment.
pub struct ManagedSnapshot {
    pub id: String,
    pub volume_id: Option<String>,
    pub size_gib: i32,
    pub start_time: Option<i64>,
    /// Every tag, as `key=value`.
    pub tags: Vec<String>,
}

/// This deployment's snapshots (the managed-by tag names the stack), every page.
pub async fn managed_snapshots(aws: &Aws, stack: &str) -> Result<Vec<ManagedSnapshot>> {
    let mut pages = aws
        .ec2
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
        let page = page
            .map_err(sdk_error)
            .context("failed to list this deployment's snapshots")?;
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

/// A stack's parameters by key.
pub async fn stack_parameters(
    aws: &Aws,
    stack: &str,
) -> Result<Option<(String, BTreeMap<String, String>, bool)>> {
    match aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(output) => Ok(output.stacks().first().map(|s| {
            (
                s.stack_status()
                    .map(|x| x.as_str().to_owned())
                    .unwrap_or_default(),
                s.parameters()
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.parameter_key()?.to_owned(),
                            p.parameter_value()?.to_owned(),
                        ))
                    })
                    .collect(),
                s.enable_termination_protection().unwrap_or(false),
            )
        })),
        Err(error) if is_missing_stack(&error) => Ok(None),
        Err(error) => {
            Err(sdk_error(error)).with_context(|| format!("failed to describe stack {stack}"))
        }
    }
}

/// Every resource of a stack, every page.
pub async fn stack_resources(
    aws: &Aws,
    stack: &str,
) -> Result<Vec<aws_sdk_cloudformation::types::StackResourceSummary>> {
    let mut pages = aws
        .cloudformation
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("failed to list the resources of stack {stack}"))?;
        found.extend(page.stack_resource_summaries().iter().cloned());
    }
    Ok(found)
}

/// The artifact buckets and keys every other SmartVault stack in this region uses.
async fn other_stacks_artifacts(aws: &Aws, except: &str) -> Result<Vec<(String, String)>> {
    let mut pages = aws.cloudformation.describe_stacks().into_paginator().send();
    let mut used = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .context("failed to list the stacks")?;
        for stack in page.stacks() {
            if stack.stack_name() == Some(except) {
                continue;
            }
            let param = |key: &str| {
                stack
                    .parameters()
                    .iter()
                    .find(|p| p.parameter_key() == Some(key))
                    .and_then(|p| p.parameter_value())
                    .map(str::to_owned)
            };
            if let (Some(bucket), Some(key)) = (param("ArtifactBucket"), param("ArtifactKey")) {
                used.push((bucket, key));
            }
        }
    }
    Ok(used)
}

pub async fn destroy(
    aws: &Aws,
    env: &Environment,
    yes: bool,
    snapshots: Snapshots,
    output: Output,
) -> Result<DestroyResult> {
    aws.check_account(env.account_id.as_deref()).await?;
    let stack = &env.stack_name;
    let mut result = DestroyResult {
        environment: env.name.clone(),
        stack: stack.clone(),
        ..DestroyResult::default()
    };
    let described = stack_parameters(aws, stack).await?;
    if let Some((_, _, true)) = &described {
        bail!(
            "stack {stack} has termination protection on; set `termination_protection: false` for {} in \
             smartvault.yaml and deploy, or run `aws cloudformation update-termination-protection \
             --no-enable-termination-protection --stack-name {stack}`, then destroy again",
            env.name
        );
    }
    let parameters = described
        .as_ref()
        .map(|(_, p, _)| p.clone())
        .unwrap_or_default();
    result.stack_existed = described.is_some();
    if result.stack_existed {
        let resources = stack_resources(aws, stack).await?;
        result.resources = resources
            .iter()
            .filter(|r| r.resource_type().is_some_and(|t| !t.is_empty()))
            .map(|r| {
                format!(
                    "{} {} ({})",
                    r.resource_type().unwrap_or_default(),
                    r.logical_resource_id().unwrap_or_default(),
                    r.physical_resource_id().unwrap_or_default()
                )
            })
            .collect();
    }
    let managed = managed_snapshots(aws, stack).await?;
    result.snapshots_found = managed.len();
    result.snapshots_gib = managed.iter().map(|s| i64::from(s.size_gib)).sum();
    let artifact = parameters
        .get("ArtifactBucket")
        .zip(parameters.get("ArtifactKey"))
        .map(|(b, k)| (b.clone(), k.clone()));
    let others = other_stacks_artifacts(aws, stack).await?;
    // Decided once, for the preview and the action alike, and whatever this stack's own
    // parameters say: a first deploy stopped before its stack existed leaves the bootstrap
    // stack and bucket behind, and they go when no other environment uses them.
    let bootstrap_bucket = stack_outputs(aws, BOOTSTRAP_STACK)
        .await?
        .remove("ArtifactBucketName")
        .filter(|bucket| !others.iter().any(|(b, _)| b == bucket));

    output.progress(format!("destroy {} ({}) will remove:", stack, env.name));
    if result.stack_existed {
        output.progress(format!(
            "  stack {stack} and its {} resources:",
            result.resources.len()
        ));
        for resource in &result.resources {
            output.progress(format!("    {resource}"));
        }
    } else {
        output.progress(format!("  (no stack {stack})"));
    }
    match snapshots {
        Snapshots::Delete => output.progress(format!(
            "  {} snapshots made by this deployment ({} GiB)",
            managed.len(),
            result.snapshots_gib
        )),
        Snapshots::Keep => output.progress(format!(
            "  (keeping its {} snapshots, {} GiB, as asked)",
            managed.len(),
            result.snapshots_gib
        )),
    }
    output.progress(format!(
        "  the log group /aws/lambda/{stack} if it is left behind"
    ));
    if let Some((bucket, key)) = &artifact {
        output.progress(format!(
            "  the artifact s3://{bucket}/{key} unless another environment uses it"
        ));
    }
    if let Some(bucket) = &bootstrap_bucket {
        output.progress(format!(
            "  the bootstrap stack {BOOTSTRAP_STACK} and its bucket {bucket} (no other environment uses them)"
        ));
    }
    if !confirm(yes, &format!("destroy {stack}?"))? {
        bail!("destroy cancelled; nothing was removed");
    }

    if result.stack_existed {
        output.progress(format!("deleting stack {stack}"));
        delete_stack_and_wait(aws, stack).await?;
    }
    if snapshots == Snapshots::Delete {
        for snapshot in &managed {
            match aws
                .ec2
                .delete_snapshot()
                .snapshot_id(&snapshot.id)
                .send()
                .await
            {
                Ok(_) => result.snapshots_deleted.push(snapshot.id.clone()),
                Err(error) if error.code() == Some("InvalidSnapshot.InUse") => {
                    let reason = format!(
                        "in use by an AMI ({}); deregister the image, then delete it",
                        error.message().unwrap_or_default()
                    );
                    output.progress(format!("  kept {}: {reason}", snapshot.id));
                    result.snapshots_kept.push((snapshot.id.clone(), reason));
                }
                Err(error) => {
                    return Err(sdk_error(error))
                        .with_context(|| format!("failed to delete snapshot {}", snapshot.id));
                }
            }
        }
        output.progress(format!(
            "deleted {} snapshots",
            result.snapshots_deleted.len()
        ));
    }
    let log_group = format!("/aws/lambda/{stack}");
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&log_group)
        .send()
        .await
        .map_err(sdk_error)
        .context("failed to look for the function's log group")?;
    if groups
        .log_groups()
        .iter()
        .any(|g| g.log_group_name() == Some(log_group.as_str()))
    {
        aws.logs
            .delete_log_group()
            .log_group_name(&log_group)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to delete log group {log_group}"))?;
        output.progress(format!(
            "deleted log group {log_group}, left outside the stack"
        ));
        result.log_group_deleted = true;
    }
    if let Some((bucket, key)) = artifact
        && !others.iter().any(|(b, k)| *b == bucket && *k == key)
    {
        delete_object_versions(aws, &bucket, Some(&key)).await?;
        result
            .artifacts_deleted
            .push(format!("s3://{bucket}/{key}"));
    }
    if let Some(bucket) = bootstrap_bucket {
        // CloudFormation cannot delete a bucket that still holds objects: empty it first.
        delete_object_versions(aws, &bucket, None).await?;
        output.progress(format!(
            "deleting stack {BOOTSTRAP_STACK}, no environment uses it"
        ));
        delete_stack_and_wait(aws, BOOTSTRAP_STACK).await?;
        result.bootstrap_deleted = true;
    }
    Ok(result)
}

/// Deletes every version and delete marker of `key` (or of every key) in `bucket`.
async fn delete_object_versions(aws: &Aws, bucket: &str, key: Option<&str>) -> Result<()> {
    // ListObjectVersions has no paginator in the SDK: follow its markers by hand.
    let mut doomed = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = aws
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(key.map(str::to_owned))
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to list s3://{bucket}"))?;
        for version in page.versions() {
            doomed.push((
                version.key().unwrap_or_default().to_owned(),
                version.version_id().map(str::to_owned),
            ));
        }
        for marker in page.delete_markers() {
            doomed.push((
                marker.key().unwrap_or_default().to_owned(),
                marker.version_id().map(str::to_owned),
            ));
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
    for (object, version) in doomed {
        if key.is_some_and(|k| k != object) {
            continue;
        }
        aws.s3
            .delete_object()
            .bucket(bucket)
            .key(&object)
            .set_version_id(version)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to delete s3://{bucket}/{object}"))?;
    }
    Ok(())
}
