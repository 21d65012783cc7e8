//! Restoring (used by `snapshots` and `restore`): this deployment's restore points in a region,
//! and a volume restore carried out as planned: volumes created from a point's snapshots, tagged
//! at creation, waited for, optionally attached; anything it made is removed again when a step
//! fails, and the error says so.

use crate::aws::{Aws, sdk_error};
use crate::config::{ConfigError, Environment};
use crate::restore::{NewVolume, Target};
use crate::restore_points::{self, RestorePoint};
use crate::snapshots;
use anyhow::{Context, Result, bail};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification, VolumeState, VolumeType};
use std::time::{Duration, Instant};

/// This deployment's restore points in `region`: the environment's own (with the copies each
/// region holds), or one of its copy regions (the copies there). Any other region is refused.
pub async fn points(aws: &Aws, env: &Environment, region: &str) -> Result<Vec<RestorePoint>> {
    let stack = crate::cfn::describe(aws, &env.stack_name).await?;
    let regions = snapshots::copy_regions(env, stack.as_ref());
    if region == env.region {
        let found = snapshots::managed(aws, &env.stack_name).await?;
        let copies =
            snapshots::copies_by_region(aws, regions, &env.stack_name, &env.region).await?;
        return Ok(restore_points::group(&found, region, &copies));
    }
    if !regions.iter().any(|r| r == region) {
        bail!(ConfigError(format!(
            "{region} is not one of {}'s copy regions ({}); use the environment's own region \
             ({}) without --region, or one of those",
            env.name,
            if regions.is_empty() {
                "it has none".to_owned()
            } else {
                regions.join(", ")
            },
            env.region
        )));
    }
    let copies = snapshots::copies(aws, region, &env.stack_name, &env.region).await?;
    Ok(restore_points::group(&copies, region, &[]))
}

/// The instance restored volumes are to be attached to, as `restore::check_attach` needs it.
pub async fn target(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Result<Target> {
    let described = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to read instance {instance_id} (--attach-to)"))?;
    let Some(instance) = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
    else {
        bail!(ConfigError(format!(
            "--attach-to {instance_id}: no such instance in this region"
        )));
    };
    Ok(Target {
        id: instance_id.to_owned(),
        state: instance
            .state()
            .and_then(|s| s.name())
            .map_or_else(|| "unknown".to_owned(), |n| n.as_str().to_owned()),
        availability_zone: instance
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_owned(),
        devices: instance
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.device_name().map(str::to_owned))
            .collect(),
    })
}

/// One volume a restore made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    pub volume_id: String,
    pub snapshot_id: String,
    pub device: Option<String>,
    pub availability_zone: String,
    pub volume_type: Option<String>,
    pub size_gib: i32,
    pub encrypted: bool,
}

/// How long a restore waits for its volumes to be `available` before it gives up (and removes
/// them).
pub const AVAILABLE_WITHIN: Duration = Duration::from_secs(30 * 60);

/// Creates `plan`'s volumes, waits until all are `available`, and attaches them to `attach_to`
/// at their devices when given. On any failure, what was made is detached and deleted, and the
/// error names it.
pub async fn restore_volumes(
    ec2: &aws_sdk_ec2::Client,
    plan: &[NewVolume],
    attach_to: Option<&str>,
    progress: impl Fn(String),
) -> Result<Vec<Restored>> {
    let mut made: Vec<String> = Vec::new();
    let outcome = async {
        for volume in plan {
            let id = create(ec2, volume).await?;
            progress(format!(
                "creating {id} from {} ({})",
                volume.snapshot_id,
                volume.device.as_deref().unwrap_or("no recorded device")
            ));
            made.push(id);
        }
        let restored = wait_available(ec2, &made, plan, AVAILABLE_WITHIN).await?;
        if let Some(instance) = attach_to {
            for volume in &restored {
                let device = volume.device.as_deref().unwrap_or_default();
                ec2.attach_volume()
                    .volume_id(&volume.volume_id)
                    .instance_id(instance)
                    .device(device)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| {
                        format!(
                            "failed to attach {} to {instance} at {device}",
                            volume.volume_id
                        )
                    })?;
                progress(format!(
                    "attached {} to {instance} at {device}",
                    volume.volume_id
                ));
            }
        }
        anyhow::Ok(restored)
    }
    .await;
    match outcome {
        Ok(restored) => Ok(restored),
        Err(error) => {
            let undone = roll_back(ec2, &made).await;
            Err(error.context(undone))
        }
    }
}

async fn create(ec2: &aws_sdk_ec2::Client, volume: &NewVolume) -> Result<String> {
    let tags = volume
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build());
    let created = ec2
        .create_volume()
        .snapshot_id(&volume.snapshot_id)
        .availability_zone(&volume.availability_zone)
        .set_volume_type(volume.volume_type.as_deref().map(VolumeType::from))
        .set_iops(volume.iops)
        .set_throughput(volume.throughput)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .set_tags(Some(tags.collect()))
                .build(),
        )
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to create a volume from {}", volume.snapshot_id))?;
    created
        .volume_id()
        .map(str::to_owned)
        .context("CreateVolume answered without a volume id")
}

async fn wait_available(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
    plan: &[NewVolume],
    within: Duration,
) -> Result<Vec<Restored>> {
    let started = Instant::now();
    loop {
        let described = ec2
            .describe_volumes()
            .filters(
                Filter::builder()
                    .name("volume-id")
                    .set_values(Some(ids.to_vec()))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk_error)
            .context("failed to read the restored volumes")?;
        let volumes = described.volumes();
        if let Some(broken) = volumes
            .iter()
            .find(|v| v.state() == Some(&VolumeState::Error))
        {
            bail!(
                "volume {} ended in state error",
                broken.volume_id().unwrap_or_default()
            );
        }
        let ready = volumes.len() == ids.len()
            && volumes
                .iter()
                .all(|v| v.state() == Some(&VolumeState::Available));
        if ready {
            return Ok(ids
                .iter()
                .zip(plan)
                .map(|(id, planned)| {
                    let volume = volumes.iter().find(|v| v.volume_id() == Some(id.as_str()));
                    Restored {
                        volume_id: id.clone(),
                        snapshot_id: planned.snapshot_id.clone(),
                        device: planned.device.clone(),
                        availability_zone: planned.availability_zone.clone(),
                        volume_type: volume
                            .and_then(|v| v.volume_type())
                            .map(|t| t.as_str().to_owned()),
                        size_gib: volume.and_then(|v| v.size()).unwrap_or(planned.size_gib),
                        encrypted: volume.and_then(|v| v.encrypted()).unwrap_or(false),
                    }
                })
                .collect());
        }
        if started.elapsed() > within {
            bail!(
                "the restored volumes were not all available within {} minutes",
                within.as_secs() / 60
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Detaches and deletes what a failed restore made; says what was removed and what was not.
async fn roll_back(ec2: &aws_sdk_ec2::Client, made: &[String]) -> String {
    if made.is_empty() {
        return "nothing was created".to_owned();
    }
    let mut removed = Vec::new();
    let mut left = Vec::new();
    for id in made {
        let _ = ec2.detach_volume().volume_id(id).force(true).send().await;
        let mut deleted = false;
        for _ in 0..30 {
            if ec2.delete_volume().volume_id(id).send().await.is_ok() {
                deleted = true;
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if deleted {
            removed.push(id.as_str());
        } else {
            left.push(id.as_str());
        }
    }
    let mut text = format!(
        "the restore was rolled back: deleted {}",
        removed.join(", ")
    );
    if !left.is_empty() {
        text.push_str(&format!(
            "; could not delete {}, delete them by hand (aws ec2 delete-volume)",
            left.join(", ")
        ));
    }
    text
}
