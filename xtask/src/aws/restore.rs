//! The EC2 side of a restore, as `restore::plan` decided it: volumes created from a
//! point's snapshots, tagged at creation, waited for, optionally attached; anything a step made
//! is removed again when a later one fails, and the error says so. Also the instance launches
//! and root-volume replacements of `restore --new-instance` and `--replace-root`.

use crate::aws::sdk_error;
use crate::restore::plan::{NewVolume, Target};
use crate::user_error::UserError;
use anyhow::{Context, Result, bail};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification, VolumeState, VolumeType};
use function::volumes;
use std::time::{Duration, Instant};

/// The instance restored volumes are to be attached to, as `restore::check_attach` needs it.
pub async fn target(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Result<Target> {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let no_such = || {
        UserError(format!(
            "--attach-to {instance_id}: no such instance in this region; name a stopped \
             instance of the region the restore point is in"
        ))
    };
    if !function::event::is_instance_id(instance_id) {
        bail!(no_such());
    }
    let described = match ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
    {
        Ok(described) => described,
        Err(error)
            if matches!(
                error.code(),
                Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
            ) =>
        {
            bail!(no_such());
        }
        Err(error) => {
            return Err(sdk_error(error))
                .with_context(|| format!("failed to read instance {instance_id} (--attach-to)"));
        }
    };
    let Some(instance) = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
    else {
        bail!(UserError(format!(
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

/// `tags` on the `resource` a call creates, applied at creation.
fn tagged(resource: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

async fn create(ec2: &aws_sdk_ec2::Client, volume: &NewVolume) -> Result<String> {
    volumes::create(
        ec2,
        &volumes::AsRecorded {
            snapshot_id: &volume.snapshot_id,
            availability_zone: &volume.availability_zone,
            details: &volume.details,
            tags: &volume.tags,
            client_token: None,
        },
    )
    .await
    .map_err(sdk_error)
    .with_context(|| format!("failed to create a volume from {}", volume.snapshot_id))
}

async fn wait_available(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
    plan: &[NewVolume],
    within: Duration,
) -> Result<Vec<Restored>> {
    let started = Instant::now();
    loop {
        let ids_ref: Vec<&str> = ids.iter().map(String::as_str).collect();
        let found = volumes::by_id(ec2, &ids_ref)
            .await
            .map_err(sdk_error)
            .context("failed to read the restored volumes")?;
        let volumes: Vec<&aws_sdk_ec2::types::Volume> = found.values().collect();
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

/// Refuses (exit 2) an availability zone the region does not have, before any volume is made.
pub async fn check_zone(ec2: &aws_sdk_ec2::Client, region: &str, zone: &str) -> Result<()> {
    let zones = ec2
        .describe_availability_zones()
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to read the availability zones of {region}"))?;
    let names: Vec<&str> = zones
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name())
        .collect();
    if names.contains(&zone) {
        return Ok(());
    }
    bail!(UserError(format!(
        "--az {zone} is not an availability zone of {region}; its zones are {}",
        names.join(", ")
    )))
}

/// Refuses (exit 2) a new instance with no subnet in a region without a default VPC, where
/// EC2 would refuse the launch only after the image was registered.
pub async fn check_default_vpc(ec2: &aws_sdk_ec2::Client, region: &str) -> Result<()> {
    let vpcs = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("is-default")
                .values("true")
                .build(),
        )
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to read the default VPC of {region}"))?;
    if vpcs.vpcs().is_empty() {
        bail!(UserError(format!(
            "the original instance is gone and {region} has no default VPC to launch into; \
             pass --subnet (and --security-groups)"
        )));
    }
    Ok(())
}

/// Where the original instance runs now, when it still exists (not terminated).
pub async fn original_placement(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<Option<crate::restore::plan::Placement>> {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let described = match ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
    {
        Ok(described) => described,
        // Gone for good: the records place the new instance.
        Err(error) if error.code() == Some("InvalidInstanceID.NotFound") => return Ok(None),
        Err(error) => {
            return Err(sdk_error(error))
                .with_context(|| format!("failed to read instance {instance_id}"));
        }
    };
    Ok(described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| {
            i.state().and_then(|s| s.name())
                != Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
        })
        .map(|i| crate::restore::plan::Placement {
            instance_type: i.instance_type().map(|t| t.as_str().to_owned()),
            subnet_id: i.subnet_id().map(str::to_owned),
            security_group_ids: i
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned))
                .collect(),
        }))
}

/// The instance a `--new-instance` restore launched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Launched {
    pub instance_id: String,
    pub instance_type: String,
    /// The temporary image, deregistered once the instance was launched.
    pub image_id: String,
    /// EC2's status checks of the new instance: `passed` (it booted and answers), or what
    /// they said instead. `running` alone only means the hypervisor started it.
    pub status_checks: String,
}

/// How long a new instance's status checks may take to pass (EC2 runs them every minute; a
/// large Windows instance takes several).
pub const CHECKS_WITHIN: Duration = Duration::from_secs(20 * 60);

/// Waits until EC2's status checks of `instance_id` pass, or one is impaired, or `within`
/// ends: `passed`, or what they said.
pub async fn status_checks(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    within: Duration,
    poll: Duration,
) -> Result<String> {
    use aws_sdk_ec2::types::SummaryStatus;
    let started = Instant::now();
    loop {
        let described = ec2
            .describe_instance_status()
            .instance_ids(instance_id)
            .include_all_instances(true)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to read the status checks of {instance_id}"))?;
        let status = described.instance_statuses().first();
        let instance = status
            .and_then(|s| s.instance_status())
            .and_then(|s| s.status());
        let system = status
            .and_then(|s| s.system_status())
            .and_then(|s| s.status());
        match (instance, system) {
            (Some(SummaryStatus::Ok), Some(SummaryStatus::Ok)) => return Ok("passed".into()),
            (Some(SummaryStatus::Impaired), _) => {
                return Ok(
                    "instance check impaired: the operating system did not come up (a boot \
                     mode, driver or file-system problem); read its console output"
                        .into(),
                );
            }
            (_, Some(SummaryStatus::Impaired)) => {
                return Ok(
                    "system check impaired: AWS's host has a problem; stop and start it".into(),
                );
            }
            _ => {}
        }
        if started.elapsed() > within {
            return Ok(format!(
                "not passed within {} minutes (instance {}, system {}): it runs, but nothing \
                 proves it booted",
                within.as_secs() / 60,
                instance.map_or("unknown", |s| s.as_str()),
                system.map_or("unknown", |s| s.as_str())
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Registers `plan`'s image, launches one instance from it, waits until it is running, and
/// deregisters the image (so that retention can delete the snapshots later). On failure the
/// instance, if launched, is terminated and the image deregistered, and the error says so.
pub async fn launch(
    ec2: &aws_sdk_ec2::Client,
    plan: &crate::restore::plan::NewInstance,
    progress: impl Fn(String),
) -> Result<Launched> {
    use aws_sdk_ec2::types::{
        ArchitectureValues, BlockDeviceMapping, EbsBlockDevice, InstanceStateName, InstanceType,
    };
    let mappings = plan.devices.iter().map(|d| {
        BlockDeviceMapping::builder()
            .device_name(&d.device)
            .ebs(
                EbsBlockDevice::builder()
                    .snapshot_id(&d.snapshot_id)
                    .set_volume_type(d.details.volume_type.as_deref().map(VolumeType::from))
                    .set_iops(d.details.iops)
                    .set_throughput(d.details.throughput)
                    .delete_on_termination(d.delete_on_termination)
                    .build(),
            )
            .build()
    });
    let image = ec2
        .register_image()
        .name(&plan.image_name)
        .description("SmartVault restore; deregistered once the instance is launched")
        .architecture(ArchitectureValues::from(plan.architecture.as_str()))
        .root_device_name(&plan.root_device)
        .virtualization_type("hvm")
        .ena_support(true)
        // As the original booted: an instance that booted UEFI never boots from an image that
        // says legacy BIOS (EC2's default for x86), nor one with NitroTPM without it.
        .set_boot_mode(
            plan.platform
                .boot_mode
                .as_deref()
                .map(aws_sdk_ec2::types::BootModeValues::from),
        )
        .set_tpm_support(
            plan.platform
                .tpm
                .as_deref()
                .map(aws_sdk_ec2::types::TpmSupportValues::from),
        )
        .set_imds_support(
            (plan.platform.imds_tokens.as_deref() == Some("required"))
                .then_some(aws_sdk_ec2::types::ImdsSupportValues::V20),
        )
        .set_block_device_mappings(Some(mappings.collect()))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to register image {}", plan.image_name))?;
    let image_id = image
        .image_id()
        .context("RegisterImage answered without an image id")?
        .to_owned();
    progress(format!("registered {image_id} ({})", plan.image_name));
    let mut launched: Option<String> = None;
    let outcome = async {
        let run = ec2
            .run_instances()
            .image_id(&image_id)
            .instance_type(InstanceType::from(plan.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .set_subnet_id(plan.subnet_id.clone())
            .set_security_group_ids(
                (!plan.security_group_ids.is_empty()).then(|| plan.security_group_ids.clone()),
            )
            .tag_specifications(tagged(ResourceType::Instance, &plan.tags))
            .send()
            .await
            .map_err(sdk_error)
            .context("failed to launch the restored instance")?;
        let id = run
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .context("RunInstances answered without an instance")?
            .to_owned();
        launched = Some(id.clone());
        progress(format!("launched {id}; waiting until it runs"));
        let started = Instant::now();
        loop {
            let described = ec2
                .describe_instances()
                .instance_ids(&id)
                .send()
                .await
                .map_err(sdk_error)?;
            let state = described
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find_map(|i| i.state().and_then(|s| s.name()).cloned());
            match state {
                Some(InstanceStateName::Running) => break,
                Some(InstanceStateName::Pending) | None => {}
                Some(other) => bail!("instance {id} is {} instead of running", other.as_str()),
            }
            if started.elapsed() > AVAILABLE_WITHIN {
                bail!("instance {id} was not running within 30 minutes");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        anyhow::Ok(id)
    }
    .await;
    let deregistered = ec2
        .deregister_image()
        .image_id(&image_id)
        .send()
        .await
        .map_err(sdk_error);
    match (outcome, deregistered) {
        (Ok(instance_id), Ok(_)) => {
            progress(format!("deregistered {image_id}"));
            progress(format!(
                "{instance_id} is running; waiting for EC2's status checks to show it booted"
            ));
            let status_checks =
                status_checks(ec2, &instance_id, CHECKS_WITHIN, Duration::from_secs(15)).await?;
            Ok(Launched {
                instance_id,
                instance_type: plan.instance_type.clone(),
                image_id,
                status_checks,
            })
        }
        (Ok(instance_id), Err(error)) => Err(error.context(format!(
            "instance {instance_id} runs, but its temporary image {image_id} could not be \
             deregistered: deregister it (aws ec2 deregister-image --image-id {image_id}), or \
             its snapshots cannot expire"
        ))),
        (Err(error), deregistered) => {
            let mut undone = Vec::new();
            if let Some(id) = &launched {
                match ec2.terminate_instances().instance_ids(id).send().await {
                    Ok(_) => undone.push(format!("terminated {id}")),
                    Err(_) => {
                        undone.push(format!("could not terminate {id}: terminate it by hand"))
                    }
                }
            }
            undone.push(match deregistered {
                Ok(_) => format!("deregistered {image_id}"),
                Err(_) => format!("could not deregister {image_id}: deregister it by hand"),
            });
            Err(error.context(format!(
                "the restore was rolled back: {}",
                undone.join(", ")
            )))
        }
    }
}

/// The state of an instance, `None` when it does not exist.
pub async fn instance_state(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<Option<String>> {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    match ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
    {
        Ok(described) => Ok(described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| {
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
            })),
        Err(error) if error.code() == Some("InvalidInstanceID.NotFound") => Ok(None),
        Err(error) => {
            Err(sdk_error(error)).with_context(|| format!("failed to read instance {instance_id}"))
        }
    }
}

/// A finished replace-root task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplacedRoot {
    pub task_id: String,
    pub snapshot_id: String,
    /// The instance's previous root volume, detached and kept by EC2.
    pub replaced_root_kept: bool,
}

/// Starts EC2's replace-root-volume task (the old root is kept, detached), and polls it every
/// `poll` until it succeeds or fails (at most 30 minutes).
pub async fn replace_root(
    ec2: &aws_sdk_ec2::Client,
    task: &crate::restore::plan::ReplaceRoot,
    poll: Duration,
    progress: impl Fn(String),
) -> Result<ReplacedRoot> {
    use aws_sdk_ec2::types::ReplaceRootVolumeTaskState as State;
    let created = ec2
        .create_replace_root_volume_task()
        .instance_id(&task.instance_id)
        .snapshot_id(&task.snapshot_id)
        .delete_replaced_root_volume(false)
        .client_token(&task.client_token)
        .tag_specifications(tagged(
            ResourceType::ReplaceRootVolumeTask,
            &[(
                crate::restore::plan::RESTORED_FROM.to_owned(),
                task.snapshot_id.clone(),
            )],
        ))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!(
                "failed to start replacing the root volume of {} with {}",
                task.instance_id, task.snapshot_id
            )
        })?;
    let id = created
        .replace_root_volume_task()
        .and_then(|t| t.replace_root_volume_task_id())
        .context("CreateReplaceRootVolumeTask answered without a task id")?
        .to_owned();
    progress(format!(
        "replacing the root volume of {} ({id})",
        task.instance_id
    ));
    let started = Instant::now();
    loop {
        let described = ec2
            .describe_replace_root_volume_tasks()
            .replace_root_volume_task_ids(&id)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to read task {id}"))?;
        let state = described
            .replace_root_volume_tasks()
            .first()
            .and_then(|t| t.task_state())
            .cloned();
        match state {
            Some(State::Succeeded) => {
                return Ok(ReplacedRoot {
                    task_id: id,
                    snapshot_id: task.snapshot_id.clone(),
                    replaced_root_kept: true,
                });
            }
            Some(failed @ (State::Failed | State::FailedDetached | State::Failing)) => bail!(
                "EC2's task {id} to replace the root volume of {} is {}; the instance keeps \
                 its previous root volume (failed-detached: the old root is detached, reattach \
                 it as the root device)",
                task.instance_id,
                failed.as_str()
            ),
            _ => {}
        }
        if started.elapsed() > AVAILABLE_WITHIN {
            bail!(
                "task {id} did not finish within 30 minutes; follow it with aws ec2 describe-replace-root-volume-tasks"
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// Brings `snapshot_id` back from the archive tier (`RestoreSnapshotTier`), for `days` or
/// permanently (`None`), and marks it `smartvault:tier-restore = requested <now>`, so that the
/// function's summary says when it is back.
pub async fn restore_tier(
    ec2: &aws_sdk_ec2::Client,
    snapshot_id: &str,
    days: Option<i32>,
    now: time::OffsetDateTime,
) -> Result<()> {
    ec2.restore_snapshot_tier()
        .snapshot_id(snapshot_id)
        .set_temporary_restore_days(days)
        .set_permanent_restore(days.is_none().then_some(true))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("restoring {snapshot_id} from the archive tier"))?;
    ec2.create_tags()
        .resources(snapshot_id)
        .tags(
            Tag::builder()
                .key(function::tags::TIER_RESTORE)
                .value(function::archive::requested_at(now))
                .build(),
        )
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("marking {snapshot_id}'s restore from the archive"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::plan::{ImageDevice, NewInstance};
    use aws_sdk_ec2::Client as Ec2;
    use aws_sdk_ec2::operation::deregister_image::DeregisterImageOutput;
    use aws_sdk_ec2::operation::describe_instance_status::DescribeInstanceStatusOutput;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::operation::register_image::{RegisterImageInput, RegisterImageOutput};
    use aws_sdk_ec2::operation::run_instances::{RunInstancesInput, RunInstancesOutput};
    use aws_sdk_ec2::types::{
        Instance, InstanceState, InstanceStateName, InstanceStatus, InstanceStatusSummary,
        Reservation, SummaryStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::sync::{Arc, Mutex};

    fn plan() -> NewInstance {
        let device = |name: &str, snapshot: &str, kind: &str, root: bool| ImageDevice {
            device: name.into(),
            snapshot_id: snapshot.into(),
            details: function::restore_records::VolumeDetails {
                volume_type: Some(kind.into()),
                iops: (kind == "io2").then_some(8000),
                throughput: None,
            },
            delete_on_termination: root,
        };
        NewInstance {
            image_name: "smartvault-restore-i-a-20261125T010000Z".into(),
            architecture: "arm64".into(),
            root_device: "/dev/xvda".into(),
            devices: vec![
                device("/dev/xvda", "snap-root", "gp3", true),
                device("/dev/sdf", "snap-data", "io2", false),
            ],
            instance_type: "m7g.large".into(),
            subnet_id: Some("subnet-1".into()),
            security_group_ids: vec!["sg-1".into(), "sg-2".into()],
            tags: vec![("smartvault:restored-instance".into(), "i-a".into())],
            platform: function::restore_records::Platform {
                boot_mode: Some("uefi".into()),
                tpm: Some("v2.0".into()),
                imds_tokens: Some("required".into()),
                details: Some("Linux/UNIX".into()),
            },
            warnings: Vec::new(),
        }
    }

    fn checks(instance: SummaryStatus, system: SummaryStatus) -> aws_smithy_mocks::Rule {
        mock!(Ec2::describe_instance_status).then_output(move || {
            DescribeInstanceStatusOutput::builder()
                .instance_statuses(
                    InstanceStatus::builder()
                        .instance_id("i-new")
                        .instance_status(
                            InstanceStatusSummary::builder()
                                .status(instance.clone())
                                .build(),
                        )
                        .system_status(
                            InstanceStatusSummary::builder()
                                .status(system.clone())
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    #[tokio::test]
    async fn status_checks_say_whether_the_instance_booted() {
        for (instance, system, expected) in [
            (SummaryStatus::Ok, SummaryStatus::Ok, "passed"),
            (
                SummaryStatus::Impaired,
                SummaryStatus::Ok,
                "instance check impaired",
            ),
            (
                SummaryStatus::Ok,
                SummaryStatus::Impaired,
                "system check impaired",
            ),
            (
                SummaryStatus::Initializing,
                SummaryStatus::Ok,
                "not passed within 0 minutes",
            ),
        ] {
            let rule = checks(instance, system);
            let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule]);
            let said = status_checks(&ec2, "i-new", Duration::ZERO, Duration::from_millis(1))
                .await
                .unwrap();
            assert!(said.starts_with(expected), "{said}");
        }
    }

    #[tokio::test]
    async fn the_image_holds_every_device_as_recorded_and_is_deregistered_after_the_launch() {
        let registered: Arc<Mutex<Option<RegisterImageInput>>> = Arc::default();
        let launched: Arc<Mutex<Option<RunInstancesInput>>> = Arc::default();
        let (r, l) = (Arc::clone(&registered), Arc::clone(&launched));
        let register = mock!(Ec2::register_image).then_compute_output(move |input| {
            *r.lock().unwrap() = Some(input.clone());
            RegisterImageOutput::builder().image_id("ami-1").build()
        });
        let run = mock!(Ec2::run_instances).then_compute_output(move |input| {
            *l.lock().unwrap() = Some(input.clone());
            RunInstancesOutput::builder()
                .instances(Instance::builder().instance_id("i-new").build())
                .build()
        });
        let running = mock!(Ec2::describe_instances).then_output(|| {
            DescribeInstancesOutput::builder()
                .reservations(
                    Reservation::builder()
                        .instances(
                            Instance::builder()
                                .instance_id("i-new")
                                .state(
                                    InstanceState::builder()
                                        .name(InstanceStateName::Running)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let deregister = mock!(Ec2::deregister_image)
            .match_requests(|r| r.image_id() == Some("ami-1"))
            .then_output(|| DeregisterImageOutput::builder().build());
        let booted = checks(SummaryStatus::Ok, SummaryStatus::Ok);
        let ec2 = mock_client!(
            aws_sdk_ec2,
            RuleMode::MatchAny,
            [&register, &run, &running, &deregister, &booted]
        );

        let done = launch(&ec2, &plan(), |_| {}).await.unwrap();
        assert_eq!(done.instance_id, "i-new");
        assert_eq!(done.status_checks, "passed", "status checks, not `running`");
        assert_eq!(deregister.num_calls(), 1, "no image is left behind");
        let image = registered.lock().unwrap().clone().unwrap();
        assert_eq!(image.root_device_name(), Some("/dev/xvda"));
        // As the original booted: UEFI, NitroTPM, IMDSv2 required.
        assert_eq!(image.boot_mode().map(|m| m.as_str()), Some("uefi"));
        assert_eq!(image.tpm_support().map(|t| t.as_str()), Some("v2.0"));
        assert_eq!(image.imds_support().map(|t| t.as_str()), Some("v2.0"));
        assert_eq!(image.architecture().map(|a| a.as_str()), Some("arm64"));
        let devices: Vec<(&str, &str, &str, Option<i32>, bool)> = image
            .block_device_mappings()
            .iter()
            .map(|m| {
                let ebs = m.ebs().unwrap();
                (
                    m.device_name().unwrap(),
                    ebs.snapshot_id().unwrap(),
                    ebs.volume_type().unwrap().as_str(),
                    ebs.iops(),
                    ebs.delete_on_termination().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            devices,
            [
                ("/dev/xvda", "snap-root", "gp3", None, true),
                ("/dev/sdf", "snap-data", "io2", Some(8000), false)
            ]
        );
        let instance = launched.lock().unwrap().clone().unwrap();
        assert_eq!(instance.image_id(), Some("ami-1"));
        assert_eq!(
            instance.instance_type().map(|t| t.as_str()),
            Some("m7g.large")
        );
        assert_eq!(instance.subnet_id(), Some("subnet-1"));
        assert_eq!(instance.security_group_ids(), ["sg-1", "sg-2"]);
    }

    fn task_state(state: &str) -> aws_sdk_ec2::operation::describe_replace_root_volume_tasks::DescribeReplaceRootVolumeTasksOutput{
        aws_sdk_ec2::operation::describe_replace_root_volume_tasks::DescribeReplaceRootVolumeTasksOutput::builder()
            .replace_root_volume_tasks(
                aws_sdk_ec2::types::ReplaceRootVolumeTask::builder()
                    .replace_root_volume_task_id("replacevol-1")
                    .task_state(aws_sdk_ec2::types::ReplaceRootVolumeTaskState::from(state))
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_root_is_replaced_with_the_points_root_snapshot_keeping_the_old_one() {
        use aws_sdk_ec2::operation::create_replace_root_volume_task::{
            CreateReplaceRootVolumeTaskInput, CreateReplaceRootVolumeTaskOutput,
        };
        let asked: Arc<Mutex<Option<CreateReplaceRootVolumeTaskInput>>> = Arc::default();
        let record = Arc::clone(&asked);
        let create =
            mock!(Ec2::create_replace_root_volume_task).then_compute_output(move |input| {
                *record.lock().unwrap() = Some(input.clone());
                CreateReplaceRootVolumeTaskOutput::builder()
                    .replace_root_volume_task(
                        aws_sdk_ec2::types::ReplaceRootVolumeTask::builder()
                            .replace_root_volume_task_id("replacevol-1")
                            .build(),
                    )
                    .build()
            });
        let poll = mock!(Ec2::describe_replace_root_volume_tasks)
            .sequence()
            .output(|| task_state("pending"))
            .output(|| task_state("in-progress"))
            .output(|| task_state("succeeded"))
            .build();
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&create, &poll]);
        let task = crate::restore::plan::ReplaceRoot {
            instance_id: "i-a".into(),
            snapshot_id: "snap-root".into(),
            client_token: "smartvault-i-a-snap-root".into(),
        };
        let done = replace_root(&ec2, &task, Duration::from_millis(1), |_| {})
            .await
            .unwrap();
        assert_eq!(done.task_id, "replacevol-1");
        assert_eq!(poll.num_calls(), 3);
        let input = asked.lock().unwrap().clone().unwrap();
        assert_eq!(input.instance_id(), Some("i-a"));
        assert_eq!(input.snapshot_id(), Some("snap-root"));
        assert_eq!(
            input.delete_replaced_root_volume(),
            Some(false),
            "the old root is kept"
        );
        assert_eq!(input.client_token(), Some("smartvault-i-a-snap-root"));

        let failing =
            mock!(Ec2::describe_replace_root_volume_tasks).then_output(|| task_state("failed"));
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&create, &failing]);
        let error = replace_root(&ec2, &task, Duration::from_millis(1), |_| {})
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("is failed; the instance keeps its previous root volume")
        );
    }

    #[tokio::test]
    async fn a_launch_that_fails_deregisters_the_image_and_says_so() {
        let register = mock!(Ec2::register_image)
            .then_output(|| RegisterImageOutput::builder().image_id("ami-1").build());
        let refused = mock!(Ec2::run_instances).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code><Message>none left</Message></Error></Errors></Response>",
                ),
            )
        });
        let deregister =
            mock!(Ec2::deregister_image).then_output(|| DeregisterImageOutput::builder().build());
        let ec2 = mock_client!(
            aws_sdk_ec2,
            RuleMode::MatchAny,
            [&register, &refused, &deregister]
        );
        let error = launch(&ec2, &plan(), |_| {}).await.unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message
                .starts_with("the restore was rolled back: deregistered ami-1: failed to launch"),
            "{message}"
        );
        assert_eq!(deregister.num_calls(), 1);
    }
}
