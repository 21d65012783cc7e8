//! `cargo xtask status`: the stack's state, the artifact it runs, and its snapshots.

use crate::aws::Aws;
use crate::config::Environment;
use crate::deploy::stack_outputs;
use crate::destroy::{managed_snapshots, stack_parameters};
use anyhow::Result;
use std::collections::BTreeMap;

/// What status reports, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub environment: String,
    pub stack: String,
    pub region: String,
    /// `null` when the stack does not exist.
    pub stack_status: Option<String>,
    pub artifact_sha256: Option<String>,
    pub smartvault_version: Option<String>,
    pub schedule: Option<String>,
    pub termination_protection: bool,
    pub snapshots: usize,
    pub snapshots_gib: i64,
    pub oldest_snapshot: Option<String>,
    pub newest_snapshot: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

pub async fn status(aws: &Aws, env: &Environment) -> Result<Status> {
    let described = stack_parameters(aws, &env.stack_name).await?;
    let (stack_status, parameters, protection) = match described {
        Some((status, parameters, protection)) => (Some(status), parameters, protection),
        None => (None, BTreeMap::new(), false),
    };
    let snapshots = managed_snapshots(aws, &env.stack_name).await?;
    let times: Vec<i64> = snapshots.iter().filter_map(|s| s.start_time).collect();
    let format = |secs: Option<&i64>| {
        secs.and_then(|s| time::OffsetDateTime::from_unix_timestamp(*s).ok())
            .map(function::plan::format_time)
    };
    Ok(Status {
        environment: env.name.clone(),
        stack: env.stack_name.clone(),
        region: aws.region.clone(),
        stack_status,
        artifact_sha256: parameters.get("ArtifactSha256").cloned(),
        smartvault_version: parameters.get("SmartVaultVersion").cloned(),
        schedule: parameters.get("Schedule").cloned(),
        termination_protection: protection,
        snapshots: snapshots.len(),
        snapshots_gib: snapshots.iter().map(|s| i64::from(s.size_gib)).sum(),
        oldest_snapshot: format(times.iter().min()),
        newest_snapshot: format(times.iter().max()),
        outputs: stack_outputs(aws, &env.stack_name).await?,
    })
}

pub fn print(status: &Status) {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    println!(
        "environment  {} (stack {}, {})",
        status.environment, status.stack, status.region
    );
    println!(
        "state        {}",
        status
            .stack_status
            .clone()
            .unwrap_or_else(|| "not deployed".into())
    );
    println!(
        "artifact     {} (SmartVault {})",
        or_none(&status.artifact_sha256),
        or_none(&status.smartvault_version)
    );
    println!("schedule     {}", or_none(&status.schedule));
    println!(
        "protection   {}",
        if status.termination_protection {
            "on"
        } else {
            "off"
        }
    );
    println!(
        "snapshots    {} ({} GiB), oldest {}, newest {}",
        status.snapshots,
        status.snapshots_gib,
        or_none(&status.oldest_snapshot),
        or_none(&status.newest_snapshot)
    );
}
