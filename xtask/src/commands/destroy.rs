//! `cargo xtask destroy`: shows what an environment leaves behind, asks, removes it, and
//! exits 1 when any part failed.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use crate::workflows::destroy::{Snapshots, destroy};
use crate::workflows::organization;
use anyhow::Result;
use std::process::ExitCode;

/// Remove an environment: stack, snapshots, leftover log group, artifacts.
#[derive(Debug, clap::Args)]
pub struct Destroy {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    connection: Connection,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Keep the snapshots this deployment made.
    #[arg(long, conflicts_with = "unlock_governance")]
    keep_snapshots: bool,
    /// Remove the governance locks of this deployment's snapshots first, then delete them
    /// (with your own credentials: it needs ec2:UnlockSnapshot, which no SmartVault policy
    /// grants). Compliance locks are never touched.
    #[arg(long)]
    unlock_governance: bool,
    /// An organization's environment: remove only the stack instances no longer in
    /// `targets:` (and what their functions made), keeping the stack set.
    #[arg(long)]
    untargeted: bool,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Destroy {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        let snapshots = if self.keep_snapshots {
            Snapshots::Keep
        } else if self.unlock_governance {
            Snapshots::DeleteUnlockingGovernance
        } else {
            Snapshots::Delete
        };
        if let Some(targets) = &env.targets {
            return self.run_organization(&env, targets, snapshots);
        }
        if self.untargeted {
            return Err(crate::user_error::UserError(format!(
                "--untargeted applies to an environment with `targets:`; {} deploys one stack, \
                 so destroy it without --untargeted",
                env.name
            ))
            .into());
        }
        let result = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            destroy(aws, &env, self.yes, snapshots, self.output).await
        })?;
        self.output.result(&result, |r| {
            println!(
                "{} {}: {} snapshots deleted, {} kept, artifacts removed: {}",
                done(&r.failures),
                r.stack,
                r.snapshots_deleted.len(),
                r.snapshots_kept.len(),
                r.artifacts_deleted.len()
            );
        })?;
        Ok(outcome(&result.stack, &result.failures))
    }

    fn run_organization(
        &self,
        env: &crate::config::Environment,
        targets: &crate::config::targets::Targets,
        snapshots: Snapshots,
    ) -> Result<ExitCode> {
        let scope = if self.untargeted {
            organization::Scope::Untargeted
        } else {
            organization::Scope::All
        };
        let result = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            organization::destroy(aws, env, targets, self.yes, snapshots, scope, self.output).await
        })?;
        self.output.result(&result, |r| {
            let deleted: usize = r.members.values().map(|m| m.snapshots_deleted.len()).sum();
            let copies: usize = r.members.values().map(|m| m.copies_deleted.len()).sum();
            println!(
                "{} {}: {} stack instance(s) deleted, {deleted} snapshots and {copies} copies \
                 deleted in the member accounts, stack set {}, {} supporting stack(s) (artifact buckets, central topic) removed",
                done(&r.failures),
                r.stack_set,
                r.instances_deleted.len(),
                if r.stack_set_deleted {
                    "deleted"
                } else {
                    "kept"
                },
                r.supporting_stacks_deleted.len()
            );
        })?;
        Ok(outcome(&result.stack_set, &result.failures))
    }
}

/// "destroyed", or "partly destroyed" when something failed.
fn done(failures: &[String]) -> &'static str {
    if failures.is_empty() {
        "destroyed"
    } else {
        "partly destroyed"
    }
}

/// Exit 0 when destroy did all it planned; else every failure on stderr and exit 1.
fn outcome(name: &str, failures: &[String]) -> ExitCode {
    if failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "error: destroy of {name} did not finish; {} failure(s):",
        failures.len()
    );
    for failure in failures {
        eprintln!("  {failure}");
    }
    ExitCode::FAILURE
}
