//! `cargo xtask snapshots`: this deployment's restore points, one per instance per run, in the
//! environment's region or in one of its copy regions; with `--deleted`, its snapshots in the
//! Recycle Bin, and `--restore-deleted` puts one back.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use crate::restore::points::RestorePoint;
use anyhow::Result;
use std::process::ExitCode;

/// List the restore points: each instance's sets, their volumes, copies and expiry.
#[derive(Debug, clap::Args)]
pub struct SnapshotsCmd {
    #[command(flatten)]
    env: EnvArgs,
    /// Only this instance's restore points.
    #[arg(long)]
    instance: Option<String>,
    /// List this deployment's snapshots in the Recycle Bin instead (`recycle_bin:`).
    #[arg(long, conflicts_with = "instance")]
    deleted: bool,
    /// Put this snapshot of the deployment back from the Recycle Bin.
    #[arg(long, value_name = "SNAPSHOT_ID", conflicts_with_all = ["instance", "deleted"])]
    restore_deleted: Option<String>,
    /// List the vault account's copies of this environment's sets instead (what `restore
    /// --from-vault` restores from), with the vault environment's credentials.
    #[arg(long, conflicts_with_all = ["deleted", "restore_deleted", "region"])]
    from_vault: bool,
    /// The environment's connection; its --region names the region to list (the environment's
    /// own by default, or one of its copy regions).
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// What the command prints with `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Listing {
    pub environment: String,
    pub stack: String,
    pub region: String,
    pub restore_points: Vec<RestorePoint>,
}

impl SnapshotsCmd {
    pub fn run(self) -> Result<ExitCode> {
        if let Some(id) = &self.instance
            && !function::event::is_instance_id(id)
        {
            return Err(crate::user_error::UserError(format!(
                "--instance {id:?} is not an instance id like i-0123456789abcdef0; leave \
                 --instance out to list every instance's restore points"
            ))
            .into());
        }
        let env = self.env.load_stack("snapshots")?;
        let region = self
            .connection
            .region
            .clone()
            .unwrap_or_else(|| env.region.clone());
        if self.deleted || self.restore_deleted.is_some() {
            return self.recycle_bin(&env, &region);
        }
        // Connected to the environment's own region; a copy region is read from there. The
        // vault's copies are read in the vault's account and region.
        let home = Connection {
            region: None,
            ..self.connection.clone()
        };
        let vault = if self.from_vault {
            Some(self.env.load_vault(&env)?)
        } else {
            None
        };
        let workload = env.account_id.clone().unwrap_or_default();
        let acting = vault.as_ref().unwrap_or(&env);
        let stack = acting.stack_name.clone();
        let region = if vault.is_some() {
            acting.region.clone()
        } else {
            region
        };
        let points = with_aws(&home, &acting.region, &acting.access, async |aws| {
            aws.check_account(acting.account_id.as_deref()).await?;
            match &vault {
                None => crate::workflows::restore::points(aws, &env, &region).await,
                Some(vault) => crate::workflows::restore::vault_points(aws, vault, &workload).await,
            }
        })?;
        let restore_points: Vec<RestorePoint> = points
            .into_iter()
            .filter(|p| self.instance.as_ref().is_none_or(|id| *id == p.instance_id))
            .collect();
        let listing = Listing {
            environment: env.name,
            stack,
            region,
            restore_points,
        };
        self.output.result(&listing, print)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What `--deleted` and `--restore-deleted` print with `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Bin {
    pub environment: String,
    pub stack: String,
    pub region: String,
    /// This deployment's snapshots in the bin (after a restore, what is left there).
    pub deleted: Vec<crate::aws::recycle_bin::Binned>,
    /// The snapshot put back, with `--restore-deleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
}

impl SnapshotsCmd {
    fn recycle_bin(&self, env: &crate::config::Environment, region: &str) -> Result<ExitCode> {
        let home = Connection {
            region: None,
            ..self.connection.clone()
        };
        let restore = self.restore_deleted.clone();
        let bin = with_aws(&home, &env.region, &env.access, async |aws| {
            aws.check_account(env.account_id.as_deref()).await?;
            let ec2 = crate::aws::snapshots::ec2_in(aws, region);
            let mut deleted = crate::aws::recycle_bin::list(&ec2, &env.stack_name).await?;
            if let Some(id) = &restore {
                if !deleted.iter().any(|b| &b.snapshot_id == id) {
                    anyhow::bail!(crate::user_error::UserError(format!(
                        "{id} is not one of {}'s snapshots in the Recycle Bin of {region}; \
                         list them with `cargo xtask snapshots --env {} --deleted`",
                        env.stack_name, env.name
                    )));
                }
                crate::aws::recycle_bin::restore(&ec2, id).await?;
                deleted.retain(|b| &b.snapshot_id != id);
            }
            Ok(Bin {
                environment: env.name.clone(),
                stack: env.stack_name.clone(),
                region: region.to_owned(),
                deleted,
                restored: restore.clone(),
            })
        })?;
        self.output.result(&bin, |bin| {
            if let Some(id) = &bin.restored {
                println!(
                    "restored {id} from the Recycle Bin of {}, with its tags",
                    bin.region
                );
            }
            if bin.deleted.is_empty() {
                println!(
                    "no snapshot of {} in the Recycle Bin of {}",
                    bin.stack, bin.region
                );
            }
            for b in &bin.deleted {
                println!(
                    "{} ({}) deleted {}, kept until {}: {}",
                    b.snapshot_id,
                    b.volume_id.as_deref().unwrap_or("-"),
                    b.entered.as_deref().unwrap_or("-"),
                    b.leaves.as_deref().unwrap_or("-"),
                    b.description
                );
            }
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

fn print(listing: &Listing) {
    if listing.restore_points.is_empty() {
        println!(
            "no restore point of {} in {}",
            listing.stack, listing.region
        );
        return;
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    for point in &listing.restore_points {
        let copies: Vec<String> = point
            .copies
            .iter()
            .map(|(region, n)| format!("{region} {n}/{}", point.volumes.len()))
            .collect();
        println!(
            "{} {} ({}) in {}: {} {} {}, expires {}{}{}{}",
            point.instance_id,
            point.created_at,
            point.schedule,
            point.region,
            or_dash(&point.instance_type),
            or_dash(&point.architecture),
            or_dash(&point.availability_zone),
            or_dash(&point.expires_at),
            if copies.is_empty() {
                String::new()
            } else {
                format!(", copies {}", copies.join(", "))
            },
            if point.is_complete() {
                ""
            } else {
                ", not yet complete"
            },
            point
                .lock
                .map(|lock| format!(", locked {}", lock.describe()))
                .unwrap_or_default()
        );
        for volume in &point.volumes {
            println!(
                "  {:<12} {} {} GiB {} {} ({}), {} tier",
                volume.device.as_deref().unwrap_or("(no record)"),
                volume.snapshot_id,
                volume.size_gib,
                volume.details.volume_type.as_deref().unwrap_or("-"),
                volume.state,
                volume.volume_id.as_deref().unwrap_or("-"),
                volume.tier
            );
        }
    }
}
