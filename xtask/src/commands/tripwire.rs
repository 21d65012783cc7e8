//! `cargo xtask tripwire`: the instances the ransomware tripwire flagged, each with its clean
//! restore point, its pin and the restore command; `--clear` resumes an instance's expiry once
//! the operator has handled it.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use crate::workflows::tripwire::{self, TripView};
use anyhow::Result;
use std::process::ExitCode;
use time::OffsetDateTime;

/// List the trips in force, or clear one (`--clear --instance i-...`).
#[derive(Debug, clap::Args)]
pub struct TripwireCmd {
    #[command(flatten)]
    env: EnvArgs,
    /// Clear the trip of the instance given by --instance: its sets expire again from the next
    /// run; the lock that pins its clean set runs out by itself.
    #[arg(long, requires = "instance")]
    clear: bool,
    /// The instance whose trip to clear.
    #[arg(long, requires = "clear")]
    instance: Option<String>,
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// What the command prints with `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Trips {
    pub environment: String,
    pub stack: String,
    /// The trips in force (after a clear, those left).
    pub trips: Vec<TripView>,
    /// With --clear: the instance cleared and the snapshots whose trip tag now says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared: Option<Cleared>,
}

#[derive(Debug, serde::Serialize)]
pub struct Cleared {
    pub instance_id: String,
    pub snapshots: Vec<String>,
}

impl TripwireCmd {
    pub fn run(self) -> Result<ExitCode> {
        if let Some(id) = &self.instance
            && !function::event::is_instance_id(id)
        {
            return Err(crate::user_error::UserError(format!(
                "--instance {id:?} is not an instance id like i-0123456789abcdef0; `cargo xtask \
                 tripwire --env {}` lists the flagged instances",
                self.env.name
            ))
            .into());
        }
        let env = self.env.load_stack("tripwire")?;
        let now = OffsetDateTime::now_utc();
        let instance = self.instance.clone();
        let (trips, cleared) = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            aws.check_account(env.account_id.as_deref()).await?;
            let cleared = match &instance {
                Some(id) if self.clear => Some(Cleared {
                    instance_id: id.clone(),
                    snapshots: tripwire::clear(aws, &env, id, now).await?,
                }),
                _ => None,
            };
            Ok((tripwire::trips(aws, &env, now).await?, cleared))
        })?;
        let result = Trips {
            environment: env.name.clone(),
            stack: env.stack_name,
            trips,
            cleared,
        };
        self.output.result(&result, |r| print!("{}", text(r)))?;
        Ok(ExitCode::SUCCESS)
    }
}

fn text(result: &Trips) -> String {
    let mut out = String::new();
    if let Some(cleared) = &result.cleared {
        out.push_str(&format!(
            "Cleared the trip of {} ({}): its sets expire again from the next run; the pin on \
             its clean set runs out by itself.\n",
            cleared.instance_id,
            cleared.snapshots.join(", ")
        ));
    }
    if result.trips.is_empty() {
        out.push_str(&format!(
            "No trip in force in {} ({}).\n",
            result.environment, result.stack
        ));
        return out;
    }
    out.push_str(&format!(
        "Trips in force in {} ({}): these instances' sets do not expire until cleared.\n",
        result.environment, result.stack
    ));
    for trip in &result.trips {
        out.push_str(&format!(
            "  {}: flagged {} (set of {}: {})\n",
            trip.instance_id,
            trip.since,
            trip.suspicious_set,
            trip.snapshots.join(", ")
        ));
        match (&trip.clean_point, &trip.restore) {
            (Some(at), Some(restore)) => out.push_str(&format!(
                "    clean restore point {at}, pinned: {}\n    restore: {restore}\n",
                trip.pinned.as_deref().unwrap_or("no lock holds it")
            )),
            _ => out.push_str("    no set before the spike to restore\n"),
        }
        out.push_str(&format!(
            "    clear once handled: {}\n",
            function::tripwire::clear_command(&result.environment, &trip.instance_id)
        ));
    }
    out
}
