//! `cargo xtask drift`: CloudFormation drift detection on an environment's stack (someone
//! edited the function, disabled a schedule or an alarm by hand), as a table; exit 1 when drifted.

use super::EnvArgs;
use crate::aws::drift::{self, Drift};
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use anyhow::Result;
use std::process::ExitCode;

/// Detect drift on the environment's stack and show each drifted resource and property.
#[derive(Debug, clap::Args)]
pub struct DriftCmd {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl DriftCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load_stack("drift")?;
        let found = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            aws.check_account(env.account_id.as_deref()).await?;
            drift::detect(
                &aws.cloudformation,
                &env.stack_name,
                std::time::Duration::from_secs(3),
            )
            .await
        })?;
        self.output.result(&found, print)?;
        Ok(if found.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

fn print(drift: &Drift) {
    let reason = drift
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    println!(
        "stack {}: {}{reason}",
        drift.stack,
        match drift.status.as_str() {
            "IN_SYNC" => "in sync: every resource is as the template says",
            "DRIFTED" => "DRIFTED: resources were changed outside CloudFormation",
            _ => "drift UNKNOWN: detection did not finish",
        }
    );
    for resource in &drift.drifted {
        println!(
            "  {:<28} {:<28} {:<9} {}",
            resource.logical_id,
            resource.resource_type,
            resource.status,
            resource.physical_id.as_deref().unwrap_or("-")
        );
        for difference in &resource.differences {
            println!(
                "    {} {}: expected {}, actual {}",
                difference.kind,
                difference.path,
                difference.expected.as_deref().unwrap_or("(none)"),
                difference.actual.as_deref().unwrap_or("(none)")
            );
        }
    }
    if !drift.drifted.is_empty() {
        println!(
            "  (deploy again to put the template's settings back, or change smartvault.yaml to \
             keep the new ones)"
        );
    }
}
