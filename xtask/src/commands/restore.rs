//! `cargo xtask restore`: brings an instance's volumes back from a restore point, as they were,
//! optionally attached to a stopped instance; the plan is shown first and confirmed.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::lifecycle::restore::{self, Restored};
use crate::output::{Output, confirm};
use crate::restore::{self as plan, At};
use anyhow::Result;
use std::process::ExitCode;

/// Restore an instance's volumes from a restore point (the newest by default).
#[derive(Debug, clap::Args)]
pub struct RestoreCmd {
    #[command(flatten)]
    env: EnvArgs,
    /// The instance whose restore point to use.
    #[arg(long)]
    instance: String,
    /// `latest`, or the newest restore point made at or before this time (RFC 3339).
    #[arg(long, default_value = "latest")]
    at: String,
    /// Create the volumes in this availability zone instead of the recorded one.
    #[arg(long)]
    az: Option<String>,
    /// Attach the volumes at their recorded device names to this stopped instance.
    #[arg(long)]
    attach_to: Option<String>,
    /// Proceed without asking (for scripts).
    #[arg(long)]
    yes: bool,
    /// The environment's connection; its --region restores from one of its copy regions.
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// What the command prints with `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct RestoreResult {
    pub environment: String,
    pub instance_id: String,
    pub restore_point: String,
    pub region: String,
    pub volumes: Vec<Restored>,
    pub attached_to: Option<String>,
}

impl RestoreCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        let at = At::parse(&self.at)?;
        let region = self
            .connection
            .region
            .clone()
            .unwrap_or_else(|| env.region.clone());
        let home = Connection {
            region: None,
            ..self.connection.clone()
        };
        let output = self.output;
        let result = with_aws(&home, &env.region, &env.access, async |aws| {
            aws.check_account(env.account_id.as_deref()).await?;
            let points = restore::points(aws, &env, &region).await?;
            let point = plan::select(&points, &self.instance, &at)?;
            let volumes = plan::volumes(point, self.az.as_deref())?;
            let ec2 = crate::snapshots::ec2_in(aws, &region);
            if let Some(target) = &self.attach_to {
                plan::check_attach(&restore::target(&ec2, target).await?, &volumes)?;
            }
            output.progress(format!(
                "restore {} from its restore point {} ({}) in {}: {} new volumes{}",
                point.instance_id,
                point.created_at,
                point.schedule,
                region,
                volumes.len(),
                self.attach_to
                    .as_ref()
                    .map(|t| format!(", attached to {t}"))
                    .unwrap_or_default()
            ));
            for volume in &volumes {
                output.progress(format!(
                    "  {} from {} in {}: {} GiB {}{}",
                    volume.device.as_deref().unwrap_or("(no recorded device)"),
                    volume.snapshot_id,
                    volume.availability_zone,
                    volume.size_gib,
                    volume.volume_type.as_deref().unwrap_or("default type"),
                    volume
                        .iops
                        .map(|i| format!(", {i} IOPS"))
                        .unwrap_or_default()
                ));
            }
            if !confirm(self.yes, "create these volumes?")? {
                anyhow::bail!("restore cancelled; nothing was created");
            }
            let restored =
                restore::restore_volumes(&ec2, &volumes, self.attach_to.as_deref(), |message| {
                    output.progress(message)
                })
                .await?;
            Ok(RestoreResult {
                environment: env.name.clone(),
                instance_id: point.instance_id.clone(),
                restore_point: point.created_at.clone(),
                region: region.clone(),
                volumes: restored,
                attached_to: self.attach_to.clone(),
            })
        })?;
        output.result(&result, print)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn print(result: &RestoreResult) {
    println!(
        "restored {} volumes of {} from {} in {}{}",
        result.volumes.len(),
        result.instance_id,
        result.restore_point,
        result.region,
        result
            .attached_to
            .as_ref()
            .map(|t| format!(", attached to {t}"))
            .unwrap_or_default()
    );
    for volume in &result.volumes {
        println!(
            "  {} {} ({} GiB {}, {}, from {})",
            volume.device.as_deref().unwrap_or("-"),
            volume.volume_id,
            volume.size_gib,
            volume.volume_type.as_deref().unwrap_or("-"),
            if volume.encrypted {
                "encrypted"
            } else {
                "unencrypted"
            },
            volume.snapshot_id
        );
    }
}
