//! `cargo xtask status`: the stack's state, the artifact it runs, and its snapshots.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::cfn::StackView;
use crate::config::Environment;
use crate::output::Output;
use crate::snapshots::{self, ManagedSnapshot};
use anyhow::Result;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Show an environment's stack state, artifact, schedule and snapshots.
#[derive(Debug, clap::Args)]
pub struct StatusCmd {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl StatusCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        let status = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            // Another account's answer would read as "not deployed".
            aws.check_account(env.account_id.as_deref()).await?;
            let stack = crate::cfn::describe(aws, &env.stack_name).await?;
            let snapshots = snapshots::managed(aws, &env.stack_name).await?;
            Ok(Status::new(&env, &aws.region, stack, &snapshots))
        })?;
        self.output.result(&status, print)?;
        Ok(ExitCode::SUCCESS)
    }
}

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
    /// Each schedule the stack runs, its next fire time and its snapshots.
    pub schedules: Vec<ScheduleStatus>,
    pub termination_protection: bool,
    pub snapshots: usize,
    pub snapshots_gib: i64,
    pub oldest_snapshot: Option<String>,
    pub newest_snapshot: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

/// One schedule in `status`.
#[derive(Debug, serde::Serialize)]
pub struct ScheduleStatus {
    pub name: String,
    pub expression: String,
    pub timezone: String,
    /// In the schedule's zone and in UTC, e.g. `2026-11-27 02:00 Europe/Berlin (01:00 UTC)`.
    pub next_fire_time: Option<String>,
    /// This deployment's snapshots made by the schedule (`default` for those without the tag).
    pub snapshots: usize,
}

/// The deployed schedules (from the stack's parameters), their next fire time after `now`,
/// and how many snapshots each made.
fn schedule_status(
    parameters: &crate::parameters::StackParameters,
    snapshots: &[ManagedSnapshot],
    now: jiff::Timestamp,
) -> Vec<ScheduleStatus> {
    let schedule_of = |s: &ManagedSnapshot| {
        let prefix = format!("{}=", function::tags::SCHEDULE);
        s.tags
            .iter()
            .find_map(|t| t.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| function::model::DEFAULT_SCHEDULE.to_owned())
    };
    parameters
        .schedule_slots()
        .into_iter()
        .map(|(name, expression, timezone)| {
            let next_fire_time = crate::schedules::fire_times_in(&expression, &timezone, now, 1)
                .first()
                .map(|at| {
                    format!(
                        "{} {timezone} ({} UTC)",
                        at.strftime("%Y-%m-%d %H:%M"),
                        at.with_time_zone(jiff::tz::TimeZone::UTC)
                            .strftime("%Y-%m-%d %H:%M")
                    )
                });
            ScheduleStatus {
                snapshots: snapshots.iter().filter(|s| schedule_of(s) == name).count(),
                name,
                expression,
                timezone,
                next_fire_time,
            }
        })
        .collect()
}

impl Status {
    /// What status shows, from the stack (if any) and this deployment's snapshots.
    fn new(
        env: &Environment,
        region: &str,
        stack: Option<StackView>,
        snapshots: &[ManagedSnapshot],
    ) -> Self {
        let times: Vec<i64> = snapshots.iter().filter_map(|s| s.start_time).collect();
        let format = |secs: Option<&i64>| {
            secs.and_then(|s| time::OffsetDateTime::from_unix_timestamp(*s).ok())
                .map(function::plan::format_time)
        };
        let (stack_status, parameters, protection, outputs) = match stack {
            Some(view) => (
                Some(view.status),
                view.parameters,
                view.termination_protection,
                view.outputs,
            ),
            None => (None, Default::default(), false, BTreeMap::new()),
        };
        let schedules = schedule_status(&parameters, snapshots, jiff::Timestamp::now());
        Status {
            environment: env.name.clone(),
            stack: env.stack_name.clone(),
            region: region.to_owned(),
            stack_status,
            artifact_sha256: parameters.artifact_sha256,
            smartvault_version: parameters.smartvault_version,
            schedules,
            termination_protection: protection,
            snapshots: snapshots.len(),
            snapshots_gib: snapshots.iter().map(|s| i64::from(s.size_gib)).sum(),
            oldest_snapshot: format(times.iter().min()),
            newest_snapshot: format(times.iter().max()),
            outputs,
        }
    }
}

fn print(status: &Status) {
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
    for schedule in &status.schedules {
        println!(
            "schedule     {} {} in {}: next {}, {} snapshots",
            schedule.name,
            schedule.expression,
            schedule.timezone,
            or_none(&schedule.next_fire_time),
            schedule.snapshots
        );
    }
    if status.schedules.is_empty() {
        println!("schedule     -");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parameters::StackParameters;

    fn env() -> Environment {
        crate::config::example("dev")
    }

    #[test]
    fn status_reads_the_stack_and_the_snapshots() {
        let view = StackView {
            name: "smartvault-dev".into(),
            status: "UPDATE_COMPLETE".into(),
            parameters: StackParameters {
                artifact_sha256: Some("ab".into()),
                schedule_1_name: Some("daily".into()),
                schedule_1_expression: Some("cron(0 1 * * ? *)".into()),
                schedule_1_timezone: Some("UTC".into()),
                schedule_2_name: Some("monthly".into()),
                schedule_2_expression: Some("cron(0 3 1 * ? *)".into()),
                schedule_2_timezone: Some("Europe/Berlin".into()),
                schedule_3_name: Some(String::new()),
                ..StackParameters::default()
            },
            outputs: BTreeMap::from([("TopicArn".to_owned(), "arn:t".to_owned())]),
            termination_protection: true,
        };
        let snapshot = |id: &str, gib: i32, at: i64| ManagedSnapshot {
            id: id.into(),
            volume_id: None,
            size_gib: gib,
            start_time: Some(at),
            tags: vec![format!("{}=monthly", function::tags::SCHEDULE)],
        };
        let status = Status::new(
            &env(),
            "eu-west-1",
            Some(view),
            &[
                snapshot("snap-1", 8, 1_795_000_000),
                snapshot("snap-2", 20, 1_795_086_400),
            ],
        );
        assert_eq!(status.stack_status.as_deref(), Some("UPDATE_COMPLETE"));
        assert_eq!(status.artifact_sha256.as_deref(), Some("ab"));
        let schedules: Vec<(&str, &str, usize)> = status
            .schedules
            .iter()
            .map(|s| (s.name.as_str(), s.timezone.as_str(), s.snapshots))
            .collect();
        assert_eq!(
            schedules,
            [("daily", "UTC", 0), ("monthly", "Europe/Berlin", 2)]
        );
        assert!(
            status.schedules[0]
                .next_fire_time
                .as_deref()
                .is_some_and(|t| t.contains(" 01:00 UTC (")),
            "{:?}",
            status.schedules[0]
        );
        assert!(status.termination_protection);
        assert_eq!((status.snapshots, status.snapshots_gib), (2, 28));
        assert!(status.oldest_snapshot < status.newest_snapshot);
        assert_eq!(status.outputs["TopicArn"], "arn:t");

        let absent = Status::new(&env(), "eu-west-1", None, &[]);
        assert_eq!(absent.stack_status, None);
        assert_eq!((absent.snapshots, absent.oldest_snapshot), (0, None));
    }
}
