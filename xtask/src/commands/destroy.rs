//! `cargo xtask destroy`: shows what an environment leaves behind, asks, removes it, and
//! exits 1 when any part failed.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::lifecycle::destroy::{Snapshots, destroy};
use crate::output::Output;
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
    #[arg(long)]
    keep_snapshots: bool,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Destroy {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        let snapshots = if self.keep_snapshots {
            Snapshots::Keep
        } else {
            Snapshots::Delete
        };
        let result = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            destroy(aws, &env, self.yes, snapshots, self.output).await
        })?;
        self.output.result(&result, |r| {
            println!(
                "{} {}: {} snapshots deleted, {} kept, artifacts removed: {}",
                if r.failures.is_empty() {
                    "destroyed"
                } else {
                    "partly destroyed"
                },
                r.stack,
                r.snapshots_deleted.len(),
                r.snapshots_kept.len(),
                r.artifacts_deleted.len()
            );
        })?;
        if result.failures.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "error: destroy of {} did not finish; {} failure(s):",
            result.stack,
            result.failures.len()
        );
        for failure in &result.failures {
            eprintln!("  {failure}");
        }
        Ok(ExitCode::FAILURE)
    }
}
