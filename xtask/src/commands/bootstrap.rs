//! `cargo xtask bootstrap`: creates the artifact bucket's stack in an account and region, or
//! updates it to the current template.

use crate::aws::{Connection, with_aws};
use crate::config::ConfigError;
use crate::lifecycle::bootstrap::apply;
use crate::output::Output;
use anyhow::Result;
use std::process::ExitCode;

/// Create or update the bootstrap stack (the shared artifact bucket) in one account and region.
#[derive(Debug, clap::Args)]
pub struct Bootstrap {
    #[command(flatten)]
    connection: Connection,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Bootstrap {
    pub fn run(self) -> Result<ExitCode> {
        let Some(region) = self.connection.region.clone() else {
            return Err(ConfigError(
                "bootstrap needs the region to work in: pass --region (e.g. --region eu-west-1)"
                    .into(),
            )
            .into());
        };
        let result = with_aws(&self.connection, &region, async |aws| {
            apply(aws, self.yes, self.output).await
        })?;
        self.output.result(&result, |r| {
            println!(
                "stack {} {} in {} (account {}), artifact bucket {}",
                r.stack, r.result, r.region, r.account, r.bucket
            );
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
