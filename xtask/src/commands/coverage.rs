//! `cargo xtask coverage`: is every instance protected, and when was each last backed up?
//! Instance by instance, with an exit code a cron job or CI can act on.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use anyhow::Result;
use function::coverage::{InstanceCoverage, Status};
use function::tags::format_time;
use std::process::ExitCode;
use time::OffsetDateTime;

/// What makes the command exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// A tagged instance whose newest set of a schedule is overdue, or that has none yet.
    Overdue,
    /// An instance without the backup tag.
    Unprotected,
}

/// Show every instance of the environment's region: protected and when, overdue and since
/// when, never backed up, opted out, unprotected, and excluded volumes.
#[derive(Debug, clap::Args)]
pub struct CoverageCmd {
    #[command(flatten)]
    env: EnvArgs,
    /// Exit 1 when any instance is overdue (or has no backup yet), or unprotected; give it
    /// twice (or comma-separated) for both.
    #[arg(long, value_enum, value_delimiter = ',')]
    fail_on: Vec<FailOn>,
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// What the command prints with `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub environment: String,
    pub stack: String,
    pub region: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub protected: usize,
    pub overdue: usize,
    pub no_backup_yet: usize,
    pub opted_out: usize,
    pub unprotected: usize,
    pub instances: Vec<InstanceCoverage>,
    /// What `--fail-on` found, each with the instances (empty: exit 0).
    pub failed_on: Vec<String>,
}

impl CoverageCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load_stack("coverage")?;
        let at = OffsetDateTime::now_utc();
        let coverage = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            aws.check_account(env.account_id.as_deref()).await?;
            crate::workflows::coverage::assess(aws, &env, at).await
        })?;
        let mut failed_on = Vec::new();
        let ids = |statuses: &[Status]| -> Vec<String> {
            coverage
                .instances
                .iter()
                .filter(|i| statuses.contains(&i.status))
                .map(|i| i.id.clone())
                .collect()
        };
        for fail_on in &self.fail_on {
            let found = match fail_on {
                FailOn::Overdue => ids(&[Status::Overdue, Status::NoBackupYet]),
                FailOn::Unprotected => ids(&[Status::Unprotected]),
            };
            if !found.is_empty() {
                let what = match fail_on {
                    FailOn::Overdue => "overdue or never backed up",
                    FailOn::Unprotected => "unprotected",
                };
                failed_on.push(format!("{what}: {}", found.join(", ")));
            }
        }
        let report = Report {
            environment: env.name.clone(),
            stack: env.stack_name.clone(),
            region: env.region,
            at,
            protected: coverage.count(Status::Protected),
            overdue: coverage.count(Status::Overdue),
            no_backup_yet: coverage.count(Status::NoBackupYet),
            opted_out: coverage.count(Status::OptedOut),
            unprotected: coverage.count(Status::Unprotected),
            instances: coverage.instances,
            failed_on,
        };
        self.output.result(&report, print)?;
        if report.failed_on.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            for failure in &report.failed_on {
                eprintln!("coverage: {failure}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn hours_ago(at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (now - at).whole_hours().max(0)
}

fn print(report: &Report) {
    println!(
        "coverage of {} ({}) in {} at {}: {} protected, {} overdue, {} without a backup yet, \
         {} unprotected, {} opted out",
        report.stack,
        report.environment,
        report.region,
        format_time(report.at),
        report.protected,
        report.overdue,
        report.no_backup_yet,
        report.unprotected,
        report.opted_out
    );
    for instance in &report.instances {
        let status = match instance.status {
            Status::Protected => "protected",
            Status::Overdue => "OVERDUE",
            Status::NoBackupYet => "NO BACKUP YET",
            Status::OptedOut => "opted out",
            Status::Unprotected => "UNPROTECTED",
        };
        let detail = match instance.status {
            Status::Unprotected => "no backup tag: tag it to protect it".to_owned(),
            Status::OptedOut => "its backup tag has another value".to_owned(),
            Status::NoBackupYet => "tagged, no completed set yet".to_owned(),
            Status::Protected | Status::Overdue => instance
                .newest
                .iter()
                .map(|n| {
                    let locked = n
                        .lock
                        .map(|lock| format!(", locked {}", lock.describe()))
                        .unwrap_or_default();
                    match (n.at, n.overdue_since) {
                        (Some(at), Some(since)) => format!(
                            "{}: {} ({} h ago, overdue since {}{locked})",
                            n.schedule,
                            format_time(at),
                            hours_ago(at, report.at),
                            format_time(since)
                        ),
                        (Some(at), None) => format!(
                            "{}: {} ({} h ago{locked})",
                            n.schedule,
                            format_time(at),
                            hours_ago(at, report.at)
                        ),
                        (None, _) => format!("{}: none yet", n.schedule),
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        println!(
            "  {:<21} {:<20} {:<8} {:<13} {detail}",
            instance.id,
            instance.name.as_deref().unwrap_or("-"),
            instance.state,
            status
        );
        if !instance.tiers.is_empty() {
            let tiers: Vec<String> = instance
                .tiers
                .iter()
                .map(|(tier, n)| format!("{n} {tier}"))
                .collect();
            println!(
                "  {:<21} snapshots outside the standard tier: {}",
                "",
                tiers.join(", ")
            );
        }
        if !instance.excluded_volumes.is_empty() {
            println!(
                "  {:<21} excluded volumes (BackupExclude=true): {}",
                "",
                instance.excluded_volumes.join(", ")
            );
        }
    }
}
