//! `cargo xtask bootstrap`: creates or updates the stack an account and region share (artifact
//! bucket, CloudFormation execution role, permissions boundary), or with `--delete` removes it.

use crate::aws::{Connection, with_aws};
use crate::config::access::Access;
use crate::output::Output;
use crate::user_error::UserError;
use crate::workflows::bootstrap::{apply, delete};
use anyhow::Result;
use std::process::ExitCode;

/// Create or update the bootstrap stack in one account and region (an administrator's task).
#[derive(Debug, clap::Args)]
pub struct Bootstrap {
    #[command(flatten)]
    connection: Connection,
    /// Remove the bootstrap stack and its artifacts instead; refused while an environment
    /// still deploys from it.
    #[arg(long)]
    delete: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Bootstrap {
    pub fn run(self) -> Result<ExitCode> {
        let Some(region) = self.connection.region.clone() else {
            return Err(UserError(
                "bootstrap needs the region to work in: pass --region (e.g. --region eu-west-1)"
                    .into(),
            )
            .into());
        };
        if self.delete {
            let result = with_aws(&self.connection, &region, &Access::Ambient, async |aws| {
                delete(aws, self.yes, self.output).await
            })?;
            self.output.result(&result, |r| {
                if r.existed {
                    println!(
                        "stack {} deleted in {} ({} artifact versions removed)",
                        r.stack, r.region, r.objects_deleted
                    );
                } else {
                    println!("stack {} does not exist in {}", r.stack, r.region);
                }
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        let result = with_aws(&self.connection, &region, &Access::Ambient, async |aws| {
            apply(aws, self.yes, self.output).await
        })?;
        self.output.result(&result, |r| {
            println!(
                "stack {} {} in {} (account {}): artifact bucket {}, execution role {}",
                r.stack, r.result, r.region, r.account, r.bucket, r.execution_role
            );
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
