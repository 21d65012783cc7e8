//! `cargo xtask deploy`: builds (or takes) the artifact and deploys it to an environment: its
//! stack, or with `targets:` its stack set across accounts and regions.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use crate::workflows::deploy::deploy;
use crate::workflows::organization;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Create or update an environment's stack through a change set.
#[derive(Debug, clap::Args)]
pub struct Deploy {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    connection: Connection,
    /// Deploy this zip instead of building one.
    #[arg(long)]
    artifact: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Deploy {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        let artifact = match &self.artifact {
            Some(path) => {
                let artifact = crate::build::package::open(path)?;
                crate::build::package::check_architecture(&artifact.path, env.architecture)?;
                artifact
            }
            None => crate::build::package::package(
                &crate::build::build(env.architecture)?,
                crate::build::package::Compression::Smallest,
            )?,
        };
        if let Some(targets) = &env.targets {
            let result = with_aws(&self.connection, &env.region, &env.access, async |aws| {
                organization::deploy(aws, &env, targets, &artifact, self.yes, self.output).await
            })?;
            self.output
                .result(&result, organization::DeployResult::print)?;
            return Ok(ExitCode::SUCCESS);
        }
        let result = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            deploy(aws, &env, &artifact, self.yes, self.output).await
        })?;
        self.output.result(&result, |r| r.print(&env))?;
        Ok(ExitCode::SUCCESS)
    }
}
