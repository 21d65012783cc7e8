//! `cargo xtask invoke`: runs the deployed function once (or the real `bootstrap` here, with
//! `--local`) and shows its result; exits 1 when the function failed.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::build::local_runtime::{self, Ending};
use crate::output::Output;
use crate::workflows::invoke;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Invoke the deployed function once (or, with --local, run the real bootstrap here).
#[derive(Debug, clap::Args)]
pub struct Invoke {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    connection: Connection,
    /// A JSON event file (default: {"action": "manual-trigger"}).
    #[arg(long)]
    event: Option<PathBuf>,
    /// Ask the function for a dry run.
    #[arg(long)]
    dry_run: bool,
    /// Run the real bootstrap binary on this machine under a local Lambda Runtime API,
    /// against the deployed environment's resources.
    #[arg(long)]
    local: bool,
    /// `json` prints the result as one document and the function's log lines raw.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Invoke {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load_stack("invoke")?;
        let event = invoke::event(self.event.as_deref(), self.dry_run)?;
        if self.local {
            return self.run_local(&env, &event);
        }
        let result = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            crate::aws::lambda::invoke(aws, &env, &event).await
        })?;
        self.output.result(&result, |r| {
            eprintln!("{}", r.log_tail);
            println!("{}", pretty(&r.payload));
        })?;
        if let Some(error) = &result.function_error {
            eprintln!("error: the function failed ({error})");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }

    fn run_local(
        &self,
        env: &crate::config::Environment,
        event: &serde_json::Value,
    ) -> Result<ExitCode> {
        let binary = invoke::host_bootstrap()?;
        let vars = invoke::aws_passthrough(self.connection.endpoint_url.as_deref());
        let logs = local_runtime::Logs::for_output(self.output);
        let result = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            invoke::local(aws, env, &binary, event, vars, logs).await
        })?;
        self.output.result(&result, |r| {
            println!(
                "{}",
                match &r.ending {
                    Ending::Response(body)
                    | Ending::Error(body)
                    | Ending::InitError(body)
                    | Ending::Exited(body) => pretty(body),
                    Ending::Timeout => "timed out".to_owned(),
                }
            );
        })?;
        eprintln!("{}", result.report_line());
        if let Err(error) = local_runtime::ensure_success(&result) {
            eprintln!("error: {error:#}");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
