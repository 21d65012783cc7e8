//! One invocation end to end: validate the event, read the inventory, plan, carry out, report.

use crate::config::Config;
use crate::event::{self, EventError, Payload};
use crate::execute::{self, Mode};
use crate::inventory;
use crate::model::Job;
use crate::plan;
use crate::report::RunReport;
use std::fmt;
use std::time::Instant;
use time::OffsetDateTime;

/// SNS accepts messages up to 256 KiB; the body is cut below that, the log keeps it all.
const MAX_MESSAGE_BYTES: usize = 250 * 1024;

/// The SDK retry settings for EC2 and SNS. EC2 throttles each action with a token bucket
/// (`RequestLimitExceeded`); ten attempts with jittered exponential backoff ride out a
/// throttling storm instead of failing the instance.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(std::time::Duration::from_millis(250))
        .with_max_backoff(std::time::Duration::from_secs(20))
}

/// What an invocation needs, built once at cold start.
#[derive(Debug, Clone)]
pub struct Context {
    pub ec2: aws_sdk_ec2::Client,
    pub sns: aws_sdk_sns::Client,
    pub config: Config,
    /// Page size of the describe calls; tests make it small to prove pagination.
    pub page_size: i32,
    /// How long to wait, after a `CreateSnapshots` got no answer, before looking for the
    /// snapshots it may have made (EC2's reads catch up with its writes within seconds).
    pub settle: std::time::Duration,
}

impl Context {
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        Context {
            ec2: aws_sdk_ec2::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            config,
            page_size: inventory::DEFAULT_PAGE_SIZE,
            settle: std::time::Duration::from_secs(2),
        }
    }
}

/// Why an invocation returned an error. The `error_type` is stable for alarms and scripts.
#[derive(Debug)]
pub enum FunctionError {
    /// The event was refused before anything was done.
    InvalidEvent(EventError),
    /// Something failed; the summary was published first. Carries the whole report.
    RunFailed(Box<RunReport>),
    /// The summary could not be published.
    PublishFailed(String),
    /// The result could not be encoded.
    Internal(String),
}

impl FunctionError {
    pub fn error_type(&self) -> &'static str {
        match self {
            FunctionError::InvalidEvent(_) => "SmartVault.InvalidEvent",
            FunctionError::RunFailed(_) => "SmartVault.RunFailed",
            FunctionError::PublishFailed(_) => "SmartVault.PublishFailed",
            FunctionError::Internal(_) => "SmartVault.Internal",
        }
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FunctionError::InvalidEvent(e) => write!(f, "{e}"),
            FunctionError::RunFailed(report) => {
                let first: Vec<String> = report
                    .failed
                    .iter()
                    .take(3)
                    .map(ToString::to_string)
                    .collect();
                write!(
                    f,
                    "{} (summary published); first failures: {}",
                    report.subject(),
                    first.join("; ")
                )
            }
            FunctionError::PublishFailed(message) | FunctionError::Internal(message) => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for FunctionError {}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(error: FunctionError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

fn job_name(job: Job) -> &'static str {
    match job {
        Job::BackupAndCleanup => "backup and cleanup",
        Job::Backup => "backup",
        Job::Cleanup => "cleanup",
    }
}

/// Handles one event at `now`. Publishes the summary whatever happened after the event was
/// accepted, then returns an error if anything failed.
pub async fn handle(
    ctx: &Context,
    event: impl Into<Payload>,
    now: OffsetDateTime,
) -> Result<RunReport, FunctionError> {
    let request = event::parse(&event.into()).map_err(FunctionError::InvalidEvent)?;
    let started = Instant::now();
    let policy = &ctx.config.policy;
    let dry_run = ctx.config.dry_run || request.dry_run;
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let mut report = RunReport {
        deployment: policy.deployment.clone(),
        dry_run,
        job: job_name(request.options.job).to_owned(),
        selector: format!("{}={}", policy.backup_tag_key, policy.backup_tag_value),
        started_at: now,
        duration_ms: 0,
        tagged_instances: 0,
        created: Vec::new(),
        deleted: Vec::new(),
        skipped: Vec::new(),
        failed: Vec::new(),
        warnings: Vec::new(),
    };
    match inventory::read(&ctx.ec2, policy, &request.options, ctx.page_size).await {
        Err(failure) => {
            tracing::error!(operation = %failure.operation, code = %failure.code, message = %failure.message, "inventory failed");
            report.failed.push(failure);
        }
        Ok(inventory) => {
            let plan = plan::plan(&inventory, policy, &request.options, now);
            tracing::info!(
                instances = plan.tagged_instances,
                creates = plan.creates.len(),
                deletes = plan.deletes.len(),
                skips = plan.skips.len(),
                dry_run,
                "plan ready"
            );
            for skip in &plan.skips {
                tracing::info!(subject = %skip.subject, reason = %skip.reason, "skipped");
            }
            report.tagged_instances = plan.tagged_instances;
            report.skipped = plan.skips;
            report.warnings = plan.warnings;
            let limit = ctx.config.max_concurrency;
            let created =
                execute::create_snapshots(&ctx.ec2, plan.creates, limit, mode, ctx.settle).await;
            let deleted = execute::delete_snapshots(&ctx.ec2, plan.deletes, limit, mode).await;
            for outcomes in [created, deleted] {
                report.created.extend(outcomes.created);
                report.deleted.extend(outcomes.deleted);
                report.skipped.extend(outcomes.skipped);
                report.failed.extend(outcomes.failed);
            }
        }
    }
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    let json = serde_json::to_string(&report).unwrap_or_default();
    tracing::info!(
        created = report.created.len(),
        deleted = report.deleted.len(),
        skipped = report.skipped.len(),
        failed = report.failed.len(),
        dry_run,
        report = %json,
        "run summary"
    );
    if !dry_run {
        // Embedded-metric-format lines must reach stdout as they are, not through the logger.
        let timestamp_ms =
            (now.unix_timestamp_nanos() / 1_000_000) as i64 + report.duration_ms as i64;
        println!("{}", report.metrics(timestamp_ms));
    }

    let subject = report.subject();
    let published = ctx
        .sns
        .publish()
        .topic_arn(&ctx.config.sns_topic_arn)
        .subject(&subject)
        .message(truncate(report.body(), MAX_MESSAGE_BYTES))
        .send()
        .await;
    if let Err(error) = published {
        let failure = execute::failure(None, "Publish", &error);
        return Err(FunctionError::PublishFailed(format!(
            "{subject}; and the summary could not be published to {}: {}: {}",
            ctx.config.sns_topic_arn, failure.code, failure.message
        )));
    }
    if report.failed.is_empty() {
        Ok(report)
    } else {
        Err(FunctionError::RunFailed(Box::new(report)))
    }
}

fn truncate(mut body: String, max_bytes: usize) -> String {
    const NOTE: &str = "\n[... cut to fit SNS; the function's log holds the full report]\n";
    if body.len() <= max_bytes {
        return body;
    }
    let mut cut = max_bytes - NOTE.len();
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body.truncate(cut);
    body.push_str(NOTE);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_with_a_note_within_the_limit() {
        let body = "é".repeat(200);
        let cut = truncate(body, 150);
        assert!(cut.len() <= 150, "{}", cut.len());
        assert!(cut.ends_with("full report]\n"));
        assert_eq!(truncate("short".into(), 150), "short");
    }

    #[test]
    fn error_types_are_stable() {
        let diagnostic: lambda_runtime::Diagnostic =
            FunctionError::PublishFailed("x".into()).into();
        assert_eq!(diagnostic.error_type, "SmartVault.PublishFailed");
        assert_eq!(diagnostic.error_message, "x");
    }
}
