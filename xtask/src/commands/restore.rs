//! `cargo xtask restore`: brings an instance's volumes back from a restore point, as they were,
//! optionally attached to a stopped instance; the plan is shown first and confirmed.

use super::EnvArgs;
use crate::aws::restore::{self as ec2_restore, Launched, ReplacedRoot, Restored};
use crate::aws::{Connection, with_aws};
use crate::output::{Output, confirm};
use crate::restore::plan::{self, At};
use crate::workflows::restore;
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
    #[arg(long, conflicts_with_all = ["new_instance", "replace_root"])]
    attach_to: Option<String>,
    /// Replace the instance's root volume in place with the point's root snapshot (EC2's
    /// replace-root-volume task: the instance restarts, keeps its id, addresses and data
    /// volumes; the old root is kept, detached).
    #[arg(long, conflicts_with_all = ["new_instance", "az"])]
    replace_root: bool,
    /// Launch a new instance from the restore point instead: an image registered from its
    /// snapshots (deregistered once the instance is launched), with the original instance's
    /// type, subnet and security groups while it exists, else the recorded type.
    #[arg(long)]
    new_instance: bool,
    /// With --new-instance: the instance type (default: the original's, else the recorded one).
    #[arg(long, requires = "new_instance")]
    instance_type: Option<String>,
    /// With --new-instance: the subnet (default: the original instance's).
    #[arg(long, requires = "new_instance")]
    subnet: Option<String>,
    /// With --new-instance: the security groups (default: the original instance's).
    #[arg(long, requires = "new_instance", value_delimiter = ',')]
    security_groups: Vec<String>,
    /// Restore from the environment's vault account instead (clean-room recovery): the vault's
    /// copy of the restore point becomes volumes in the vault account and region, with the vault
    /// environment's credentials; --attach-to names an instance there.
    #[arg(long, conflicts_with_all = ["replace_root", "region", "new_instance"])]
    from_vault: bool,
    /// When the restore point is in the archive tier: bring it back for this many days (1 to
    /// 180) before it goes back to the archive.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i32).range(1..=180))]
    archive_days: i32,
    /// When the restore point is in the archive tier: bring it back for good (it is then
    /// billed in the standard tier; within the archive's 90 days, their rest is billed too).
    #[arg(long, conflicts_with = "archive_days")]
    permanent: bool,
    /// Finish a restore whose point is coming back from the archive tier (the summary mails
    /// when it is ready): restores it if it is back, never starts another restore from the
    /// archive.
    #[arg(long)]
    resume: bool,
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
    /// The vault account a `--from-vault` restore made its volumes or instance in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault_account: Option<String>,
    pub volumes: Vec<Restored>,
    pub attached_to: Option<String>,
    /// The instance a `--new-instance` restore launched.
    pub new_instance: Option<Launched>,
    /// The task a `--replace-root` restore ran.
    pub replaced_root: Option<ReplacedRoot>,
    /// The zone whose fast snapshot restore the volumes were made with, when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_restore_zone: Option<String>,
    /// The restore from the archive tier this command started (nothing else was restored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_restore: Option<ArchiveRestore>,
}

/// A restore point brought back from the archive tier.
#[derive(Debug, serde::Serialize)]
pub struct ArchiveRestore {
    pub snapshots: Vec<String>,
    /// `None`: permanently.
    pub days: Option<i32>,
    /// EBS's longest time for it: 72 hours from now.
    pub ready_by: String,
    /// What to run once the summary says it is ready.
    pub resume: String,
}

impl RestoreCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load_stack("restore")?;
        let at = At::parse(&self.at)?;
        // --from-vault acts in the vault environment's account and region, with its access.
        let vault = if self.from_vault {
            Some(self.env.load_vault(&env)?)
        } else {
            None
        };
        let workload = env.account_id.clone().unwrap_or_default();
        let acting = vault.as_ref().unwrap_or(&env);
        let region = self
            .connection
            .region
            .clone()
            .unwrap_or_else(|| acting.region.clone());
        let home = Connection {
            region: None,
            ..self.connection.clone()
        };
        let output = self.output;
        let vault_account = vault.as_ref().and_then(|v| v.account_id.clone());
        let result = with_aws(&home, &acting.region, &acting.access, async |aws| {
            aws.check_account(acting.account_id.as_deref()).await?;
            let points = match &vault {
                None => restore::points(aws, &env, &region).await?,
                Some(vault) => restore::vault_points(aws, vault, &workload).await?,
            };
            let point = plan::select(&points, &self.instance, &at)?;
            // What every result says; each kind of restore fills in what it did.
            let base = |point: &crate::restore::points::RestorePoint| RestoreResult {
                environment: env.name.clone(),
                instance_id: point.instance_id.clone(),
                restore_point: point.created_at.clone(),
                region: region.clone(),
                vault_account: vault_account.clone(),
                volumes: Vec::new(),
                attached_to: None,
                new_instance: None,
                replaced_root: None,
                fast_restore_zone: None,
                archive_restore: None,
            };
            let ec2 = crate::aws::snapshots::ec2_in(aws, &region);
            let archived = point.archived();
            let resume = format!(
                "cargo xtask restore --env {} --instance {} --at {} --resume",
                env.name, point.instance_id, point.created_at
            );
            let requested = archived.iter().filter(|v| v.restore_requested).count();
            if self.resume && archived.is_empty() {
                output.progress(format!(
                    "restore point {} of {} is out of the archive tier: restoring it",
                    point.created_at, point.instance_id
                ));
            } else if self.resume && requested == 0 {
                anyhow::bail!(crate::user_error::UserError(format!(
                    "nothing to resume: {} of the restore point {} of {} are in the archive \
                     tier and no restore from it was started; run the same command without \
                     --resume to start one",
                    archived.len(),
                    point.created_at,
                    point.instance_id
                )));
            } else if !archived.is_empty() && (self.resume || requested == archived.len()) {
                anyhow::bail!(
                    "{} of the {} snapshots of {}'s restore point {} are still coming back from \
                     the archive tier ({}); EBS takes up to 72 hours, and the run after they \
                     are back mails it; then run `{resume}`",
                    archived.len(),
                    point.volumes.len(),
                    point.instance_id,
                    point.created_at,
                    archived[0].tier
                );
            } else if !archived.is_empty() {
                let days = (!self.permanent).then_some(self.archive_days);
                let now = time::OffsetDateTime::now_utc();
                output.progress(format!(
                    "{} of the {} snapshots of {}'s restore point {} ({}) are in the archive \
                     tier: bring them back {} (up to 72 hours, until {}), then restore with \
                     `{resume}`",
                    archived.len(),
                    point.volumes.len(),
                    point.instance_id,
                    point.created_at,
                    point.schedule,
                    days.map_or_else(
                        || "permanently (billed in the standard tier from then on)".to_owned(),
                        |d| format!("for {d} days")
                    ),
                    function::tags::format_time(now + time::Duration::hours(72))
                ));
                if !confirm(self.yes, "restore them from the archive tier?")? {
                    anyhow::bail!("restore cancelled; nothing was changed");
                }
                let mut started = Vec::new();
                for volume in archived.iter().filter(|v| !v.restore_requested) {
                    ec2_restore::restore_tier(&ec2, &volume.snapshot_id, days, now).await?;
                    started.push(volume.snapshot_id.clone());
                }
                return Ok(RestoreResult {
                    archive_restore: Some(ArchiveRestore {
                        snapshots: started,
                        days,
                        ready_by: function::tags::format_time(now + time::Duration::hours(72)),
                        resume: resume.clone(),
                    }),
                    ..base(point)
                });
            }
            if self.replace_root {
                if region != env.region {
                    anyhow::bail!(crate::user_error::UserError(format!(
                        "--replace-root works on the instance in {}, from its own snapshots; \
                         from the copy region {region}, restore with --new-instance, or its \
                         volumes (the default)",
                        env.region
                    )));
                }
                let state = ec2_restore::instance_state(&ec2, &point.instance_id).await?;
                let task = plan::replace_root(point, state.as_deref())?;
                output.progress(format!(
                    "replace the root volume of {} in place with {} from its restore point {} \
                     ({}): the instance restarts; its previous root volume is kept, detached",
                    point.instance_id, task.snapshot_id, point.created_at, point.schedule
                ));
                if !confirm(self.yes, "replace the root volume?")? {
                    anyhow::bail!("restore cancelled; nothing was changed");
                }
                let done = ec2_restore::replace_root(
                    &ec2,
                    &task,
                    std::time::Duration::from_secs(10),
                    |m| output.progress(m),
                )
                .await?;
                return Ok(RestoreResult {
                    replaced_root: Some(done),
                    ..base(point)
                });
            }
            if self.new_instance {
                let flags = plan::Placement {
                    instance_type: self.instance_type.clone(),
                    subnet_id: self.subnet.clone(),
                    security_group_ids: self.security_groups.clone(),
                };
                let original = ec2_restore::original_placement(&ec2, &point.instance_id).await?;
                let new = plan::new_instance(point, &flags, original.as_ref())?;
                if new.subnet_id.is_none() {
                    ec2_restore::check_default_vpc(&ec2, &region).await?;
                }
                output.progress(format!(
                    "restore {} from its restore point {} ({}) in {} as a new {} instance{}{}:",
                    point.instance_id,
                    point.created_at,
                    point.schedule,
                    region,
                    new.instance_type,
                    new.subnet_id
                        .as_ref()
                        .map(|s| format!(" in {s}"))
                        .unwrap_or_default(),
                    if new.security_group_ids.is_empty() {
                        String::new()
                    } else {
                        format!(" with {}", new.security_group_ids.join(", "))
                    }
                ));
                for device in &new.devices {
                    output.progress(format!(
                        "  {} from {}{}",
                        device.device,
                        device.snapshot_id,
                        if device.delete_on_termination {
                            " (deleted with the instance)"
                        } else {
                            " (kept when the instance is terminated)"
                        }
                    ));
                }
                for warning in &new.warnings {
                    output.progress(format!("warning: {warning}"));
                }
                if let Some(boot) = &new.platform.boot_mode {
                    output.progress(format!(
                        "  the image boots {boot}{}{}, as the original did",
                        new.platform
                            .tpm
                            .as_ref()
                            .map(|t| format!(", with NitroTPM {t}"))
                            .unwrap_or_default(),
                        if new.platform.imds_tokens.as_deref() == Some("required") {
                            ", requiring IMDSv2"
                        } else {
                            ""
                        }
                    ));
                }
                if !confirm(self.yes, "register the image and launch the instance?")? {
                    anyhow::bail!("restore cancelled; nothing was created");
                }
                let launched = ec2_restore::launch(&ec2, &new, |m| output.progress(m)).await?;
                return Ok(RestoreResult {
                    new_instance: Some(launched),
                    ..base(point)
                });
            }
            // A point ready in the zone (fast snapshot restore) gives volumes their full
            // performance at once; `--at latest` prefers one within a day of the newest.
            let zone = self
                .az
                .clone()
                .or_else(|| point.availability_zone.clone())
                .unwrap_or_default();
            let ready = if region == env.region && vault.is_none() && !zone.is_empty() {
                function::ec2_query::fast_restores(&aws.sdk)
                    .await
                    .unwrap_or_else(|e| {
                        output.progress(format!(
                            "note: could not read fast snapshot restores ({e}); restoring \
                             without them"
                        ));
                        Default::default()
                    })
            } else {
                Default::default()
            };
            let fast = plan::prefer_fast(&points, point, &at, &zone, &ready);
            let point = fast.point;
            if let Some(newer) = fast.passed_over {
                output.progress(format!(
                    "using the restore point {} of {}: fast snapshot restore is enabled for it \
                     in {zone}, so its volumes have their full performance at once; the newer \
                     {} is not ready there (pass --at {} to restore that one)",
                    point.created_at, point.instance_id, newer.created_at, newer.created_at
                ));
            } else if fast.ready {
                output.progress(format!(
                    "fast snapshot restore is enabled for this restore point in {zone}: its \
                     volumes have their full performance at once"
                ));
            }
            let volumes = plan::volumes(point, self.az.as_deref())?;
            if let Some(zone) = &self.az {
                ec2_restore::check_zone(&ec2, &region, zone).await?;
            }
            if let Some(target) = &self.attach_to {
                plan::check_attach(&ec2_restore::target(&ec2, target).await?, &volumes)?;
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
                    volume
                        .details
                        .volume_type
                        .as_deref()
                        .unwrap_or("default type"),
                    volume
                        .details
                        .iops
                        .map(|i| format!(", {i} IOPS"))
                        .unwrap_or_default()
                ));
            }
            if !confirm(self.yes, "create these volumes?")? {
                anyhow::bail!("restore cancelled; nothing was created");
            }
            let restored = ec2_restore::restore_volumes(
                &ec2,
                &volumes,
                self.attach_to.as_deref(),
                |message| output.progress(message),
            )
            .await?;
            Ok(RestoreResult {
                volumes: restored,
                attached_to: self.attach_to.clone(),
                fast_restore_zone: fast.ready.then(|| zone.clone()),
                ..base(point)
            })
        })?;
        output.result(&result, print)?;
        // Running is not booted: a new instance whose status checks did not pass is not a
        // restore that worked.
        Ok(match &result.new_instance {
            Some(launched) if launched.status_checks != "passed" => ExitCode::FAILURE,
            _ => ExitCode::SUCCESS,
        })
    }
}

fn print(result: &RestoreResult) {
    if let Some(archive) = &result.archive_restore {
        println!(
            "bringing {} snapshots of {}'s restore point {} back from the archive tier {}; \
             ready by {} at the latest (the summary mails it); then run `{}`",
            archive.snapshots.len(),
            result.instance_id,
            result.restore_point,
            archive
                .days
                .map_or_else(|| "permanently".to_owned(), |d| format!("for {d} days")),
            archive.ready_by,
            archive.resume
        );
        return;
    }
    if let Some(task) = &result.replaced_root {
        println!(
            "replaced the root volume of {} with {} from {} (task {}); the previous root is kept, detached",
            result.instance_id, task.snapshot_id, result.restore_point, task.task_id
        );
        return;
    }
    if let Some(launched) = &result.new_instance {
        println!(
            "restored {} from {} in {} as {} ({}); its temporary image {} is deregistered",
            result.instance_id,
            result.restore_point,
            result.region,
            launched.instance_id,
            launched.instance_type,
            launched.image_id
        );
        println!("  status checks: {}", launched.status_checks);
        return;
    }
    println!(
        "restored {} volumes of {} from {} in {}{}{}",
        result.volumes.len(),
        result.instance_id,
        result.restore_point,
        result.region,
        result
            .vault_account
            .as_ref()
            .map(|a| format!(" of the vault account {a}"))
            .unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag that restore's messages and docs tell a user to type is one the command
    /// takes (a volumes flag that never existed sent users to an error).
    #[test]
    fn every_flag_restore_names_is_one_it_takes() {
        use clap::Args;
        let command = RestoreCmd::augment_args(clap::Command::new("restore"));
        let known: std::collections::BTreeSet<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .chain(["help".to_owned()])
            .collect();
        let root = crate::paths::workspace_root();
        let mut named = std::collections::BTreeSet::new();
        for file in [
            "xtask/src/restore/plan.rs",
            "xtask/src/commands/restore.rs",
            "xtask/src/aws/restore.rs",
            "docs/restore.md",
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            // Flags as written in messages and commands: `--` then lowercase words.
            for (at, _) in text.match_indices("--") {
                let flag: String = text[at + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                let before = text[..at].chars().next_back();
                if !flag.is_empty() && before.is_none_or(|c| c == ' ' || c == '`' || c == '(') {
                    named.insert((flag.trim_end_matches('-').to_owned(), file));
                }
            }
        }
        // Flags of other commands that restore's docs and messages name on purpose.
        let elsewhere = [
            "env",
            "region",
            "output",
            // The AWS CLI's, in commands the docs and messages quote.
            "instance-ids",
            "image-id",
            "filters",
            // `cargo xtask invoke --event`.
            "event",
            // `cargo xtask snapshots --deleted` and `--restore-deleted` (the Recycle Bin).
            "deleted",
            "restore-deleted",
        ];
        let unknown: Vec<_> = named
            .iter()
            .filter(|(flag, _)| !known.contains(flag) && !elsewhere.contains(&flag.as_str()))
            .collect();
        assert!(
            named.iter().any(|(f, _)| f == "new-instance"),
            "the scan finds flags"
        );
        assert!(
            unknown.is_empty(),
            "flags restore does not take: {unknown:?}"
        );
    }
}
