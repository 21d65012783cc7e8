//! `cargo xtask doctor`: asks AWS itself, read-only, whether an environment's prerequisites
//! hold before its first deploy, and prints pass, fail or unknown with the fix for each.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use crate::workflows::doctor::verdicts::{self, Check};
use anyhow::Result;
use std::process::ExitCode;

/// Check an environment's account before a deploy: credentials and account, the bootstrap,
/// the execution role's trust, the deployer's permissions (IAM's policy simulator), Lambda's
/// concurrency, the volumes' KMS keys. Exit 1 when a check fails.
#[derive(Debug, clap::Args)]
pub struct DoctorCmd {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// What the command prints with `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub environment: String,
    pub region: String,
    pub checks: Vec<Check>,
}

impl DoctorCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        let checks = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            Ok(crate::workflows::doctor::all(aws, &env).await)
        })?;
        let failed = verdicts::failed(&checks);
        let report = Report {
            environment: env.name,
            region: env.region,
            checks,
        };
        self.output
            .result(&report, |r| print!("{}", verdicts::render(&r.checks)))?;
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}
