//! One invocation end to end: validate the event, read the inventory, plan, carry out, report.

use crate::config::Config;
use crate::copy_run;
use crate::event::{self, EventError, EventKind, Link, Payload, Request};
use crate::execute::{self, Mode};
use crate::inventory;
use crate::model::{Job, Phase};
use crate::pacing::Pacer;
use crate::plan;
use crate::report::{Failure, MAX_CARRIED, RunReport};
use crate::restore_test;
use crate::restore_test_run;
use crate::run_mark::{self, RunMark};
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

/// How a run goes on in a new invocation of this function when one invocation's time runs out:
/// an asynchronous invocation of itself with a continuation event.
#[derive(Debug)]
pub struct Chain {
    pub lambda: aws_sdk_lambda::Client,
    /// This function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
}

/// What an invocation needs, built once at cold start.
#[derive(Debug)]
pub struct Context {
    pub ec2: aws_sdk_ec2::Client,
    pub sns: aws_sdk_sns::Client,
    pub config: Config,
    /// Page size of the describe calls; tests make it small to prove pagination.
    pub page_size: i32,
    /// How long to wait, after a `CreateSnapshots` got no answer, before looking for the
    /// snapshots it may have made (EC2's reads catch up with its writes within seconds).
    pub settle: std::time::Duration,
    /// The EC2 write buckets, shared by every invocation this instance serves.
    pub pacer: Pacer,
    /// How to hand a run on; without it (tests), a run that runs out of time fails what is left.
    pub chain: Option<Chain>,
    /// The function's region and a client for each copy region.
    pub regions: copy_run::Regions,
    /// How often a restore test looks at its volumes while it waits for them.
    pub poll: std::time::Duration,
    /// A client in the region of the organization's central topic, when there is one: SNS's
    /// `Publish` reaches only topics in the client's own region.
    pub central_sns: Option<aws_sdk_sns::Client>,
}

impl Context {
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        Context {
            ec2: aws_sdk_ec2::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            pacer: Pacer::new(config.ec2_bucket),
            chain: None,
            regions: copy_run::Regions::new(sdk, &config.policy),
            central_sns: config
                .central_topic_arn
                .as_deref()
                .and_then(|arn| central_client(sdk, arn)),
            config,
            page_size: inventory::DEFAULT_PAGE_SIZE,
            settle: std::time::Duration::from_secs(2),
            poll: std::time::Duration::from_secs(2),
        }
    }
}

/// The region and account of a topic ARN (`arn:aws:sns:<region>:<account>:<name>`); empty
/// where the ARN has no such field.
fn region_and_account(topic_arn: &str) -> (&str, &str) {
    let mut fields = topic_arn.split(':').skip(3);
    (
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    )
}

/// An SNS client in the region of `topic_arn`, from the function's own SDK configuration;
/// `None` when the ARN names no region.
pub fn central_client(sdk: &aws_config::SdkConfig, topic_arn: &str) -> Option<aws_sdk_sns::Client> {
    let region = Some(region_and_account(topic_arn).0).filter(|r| !r.is_empty())?;
    let config = aws_sdk_sns::config::Builder::from(sdk)
        .region(aws_sdk_sns::config::Region::new(region.to_owned()))
        .build();
    Some(aws_sdk_sns::Client::from_conf(config))
}

/// Why an invocation returned an error. The `error_type` is stable for alarms and scripts.
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

/// The runtime logs a handler's error with `Debug`: the error type and the readable message,
/// never the whole report as a struct dump (its failures are in the message, its sets in the
/// summary).
impl fmt::Debug for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {self}", self.error_type())
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

/// Handles one event at `now`, with no deadline: the run is done in this one invocation.
/// Publishes the summary whatever happened after the event was accepted, then returns an error
/// if anything failed.
pub async fn handle(
    ctx: &Context,
    event: impl Into<Payload>,
    now: OffsetDateTime,
) -> Result<RunReport, FunctionError> {
    handle_until(ctx, event, now, None).await
}

/// Handles one event at `clock` (the time now), starting no EC2 write after `deadline` less a
/// safety margin. What is left is handed on to the next link of the run (see [`Chain`]); the
/// link that finishes the run publishes the whole run's summary.
pub async fn handle_until(
    ctx: &Context,
    event: impl Into<Payload>,
    clock: OffsetDateTime,
    deadline: Option<Instant>,
) -> Result<RunReport, FunctionError> {
    let request = event::parse(&event.into()).map_err(FunctionError::InvalidEvent)?;
    let started = Instant::now();
    let policy = &ctx.config.policy;
    if let Some(name) = &request.options.schedule
        && policy.rule(name).is_none()
    {
        let configured: Vec<String> = policy.schedules.iter().map(|s| s.name.clone()).collect();
        return Err(FunctionError::InvalidEvent(
            event::EventError::unknown_schedule(name, &configured),
        ));
    }
    let schedule = policy.rule_of_run(request.options.schedule.as_deref()).name;
    let dry_run = ctx.config.dry_run || request.dry_run;
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    // A continuation sets the clock the run plans, tags and expires with: only the link this
    // function handed on (its run mark names it) is accepted, never one made up by whoever
    // may invoke the function.
    if let EventKind::Continuation(link) = &request.kind {
        if link.number > ctx.config.max_links {
            let problem = format!(
                "`continuation.number` is {}, above this deployment's MAX_LINKS={}; the \
                 function never hands on past it",
                link.number, ctx.config.max_links
            );
            return Err(FunctionError::InvalidEvent(EventError::continuation(
                &problem,
            )));
        }
        let mark = match dry_run {
            true => None,
            false => run_mark(ctx, &schedule).await,
        };
        run_mark::admit_continuation(
            mark.as_ref(),
            link.run_started_at,
            link.number,
            dry_run,
            clock,
        )
        .map_err(|problem| FunctionError::InvalidEvent(EventError::continuation(&problem)))?;
    }
    // Every link plans and tags with the run's start, so that what an earlier link made is
    // recognised by its `created-at` tag.
    let (now, mut report) = match &request.kind {
        EventKind::Continuation(link) => {
            let mut so_far = link.so_far.clone();
            so_far.links = link.number;
            so_far.handed_on = false;
            (link.run_started_at, so_far)
        }
        EventKind::Scheduled | EventKind::Action | EventKind::SnapshotsCompleted => (
            clock,
            RunReport::new(
                &policy.deployment,
                dry_run,
                request.options.job,
                format!("{}={}", policy.backup_tag_key, policy.backup_tag_value),
                clock,
            ),
        ),
    };
    report.schedule = schedule.clone();
    if request.kind == EventKind::SnapshotsCompleted {
        // EC2 sends a region's completion events to that region's rule in that account: an
        // event of another region or account is not this deployment's to act on.
        if let Some(origin) = &request.origin {
            let account = region_and_account(&ctx.config.sns_topic_arn).1;
            let home = ctx.regions.home.as_str();
            if (!home.is_empty() && origin.region != home) || origin.account != account {
                return Err(FunctionError::InvalidEvent(EventError::foreign(
                    origin, home, account,
                )));
            }
        }
        return copy_run(ctx, &request, report, mode, clock, started).await;
    }
    if request.options.job == Job::RestoreTest {
        let deadline = deadline.map(execute::Deadline::new);
        let run = (mode, clock, started);
        return restore_test_run(ctx, &request, report, run, deadline.as_ref()).await;
    }
    let first_link = request.options.phase == Phase::FirstLink;
    // A run going on over several invocations marks the topic; a new run does not start a
    // second pass beside it. A dry run writes nothing and may go ahead.
    if first_link
        && !dry_run
        && let Some(mark) = run_mark(ctx, &schedule).await
        && mark.blocks(clock)
    {
        tracing::warn!(
            mark = %mark.value(),
            schedule = %schedule,
            "another run of this schedule is going on over several invocations; not starting a second pass"
        );
        report.deferred_to = Some(mark.value());
        return Ok(report);
    }
    let mut carried = 0;
    // What this invocation did with EC2 writes: a link that did nothing must not hand on.
    let mut progress = 0;
    let deadline = deadline.map(execute::Deadline::new);
    let read = inventory::read(&ctx.ec2, policy, &request.options, ctx.page_size);
    // The inventory must be read before the cutoff too: a link that outlasts its deadline
    // would end with no summary and no hand-on.
    let inventory = match &deadline {
        None => read.await,
        Some(deadline) => tokio::time::timeout_at(deadline.cutoff().into(), read)
            .await
            .unwrap_or_else(|_| {
                Err(Failure {
                    subject: None,
                    operation: "ReadInventory".to_owned(),
                    code: "SmartVault.OutOfTime".to_owned(),
                    message: format!(
                        "reading the inventory did not finish {} ms into the invocation, \
                         before its deadline less the safety margin; raise the function's \
                         timeout",
                        started.elapsed().as_millis()
                    ),
                })
            }),
    };
    let inventory_ms = started.elapsed().as_millis();
    match inventory {
        Err(failure) => {
            tracing::error!(operation = %failure.operation, code = %failure.code, message = %failure.message, "inventory failed");
            report.failed.push(failure);
        }
        Ok(inventory) => {
            let plan = plan::plan(&inventory, policy, &request.options, now);
            tracing::info!(
                link = report.links,
                inventory_ms,
                instances = plan.tagged_instances,
                creates = plan.creates.len(),
                deletes = plan.deletes.len(),
                skips = plan.skips.len(),
                done_in_earlier_links = plan.done_in_this_run,
                dry_run,
                "plan ready"
            );
            report.tagged_instances = plan.tagged_instances;
            // The plan's skips and warnings cover the whole fleet; the first link reports them,
            // and the region's coverage when it looks at the whole fleet.
            if first_link
                && request.options.job.backs_up()
                && request.options.instance_ids.is_none()
            {
                let since = schedules_since(ctx, dry_run, now).await;
                let coverage = crate::coverage::assess(
                    &inventory.instances,
                    &inventory.untagged,
                    &inventory.snapshots,
                    policy,
                    &since,
                    now,
                );
                tracing::info!(
                    protected = coverage.count(crate::coverage::Status::Protected),
                    overdue = coverage.count(crate::coverage::Status::Overdue),
                    unprotected = coverage.count(crate::coverage::Status::Unprotected),
                    "coverage"
                );
                report.coverage = Some(coverage.summary());
            }
            if first_link {
                for skip in &plan.skips {
                    tracing::info!(subject = %skip.subject, reason = %skip.reason, "skipped");
                }
                report.skipped = plan.skips;
                report.warnings = plan.warnings;
            }
            let writes = execute::Writes {
                ec2: &ctx.ec2,
                pacer: &ctx.pacer,
                deadline: deadline.as_ref(),
                limit: ctx.config.max_concurrency,
                mode,
                region: None,
            };
            let created = execute::create_snapshots(writes, plan.creates, ctx.settle).await;
            let deleted = execute::delete_snapshots(writes, plan.deletes).await;
            let gone: std::collections::BTreeSet<&str> = deleted
                .deleted
                .iter()
                .map(|d| d.snapshot_id.as_str())
                .collect();
            // The link that ends the run sweeps the copy regions: every completed set without
            // its copies is copied (the completion events normally did it already), and
            // copies past their rule expire.
            if created.carried + deleted.carried == 0 && request.options.job.copies() {
                let sources: Vec<_> = inventory
                    .snapshots
                    .iter()
                    .filter(|s| !gone.contains(s.id.as_str()))
                    .cloned()
                    .collect();
                let setup = copy_setup(ctx, mode, deadline.as_ref());
                let copied = copy_run::run(setup, Some(&sources), &request.options, now).await;
                merge(&mut report, copied);
            }
            for outcomes in [created, deleted] {
                progress += outcomes.created.len()
                    + outcomes.deleted.len()
                    + outcomes.skipped.len()
                    + outcomes.failed.len();
                report.created.extend(outcomes.created);
                report.deleted.extend(outcomes.deleted);
                report.skipped.extend(outcomes.skipped);
                report.failed.extend(outcomes.failed);
                carried += outcomes.carried;
            }
        }
    }
    let since_start = u64::try_from((clock - now).whole_milliseconds().max(0)).unwrap_or(0);
    report.duration_ms = since_start
        .saturating_add(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));

    if carried > 0 && !dry_run {
        let mark = RunMark {
            run_started_at: now,
            next_link: report.links + 1,
            written_at: clock,
        };
        set_run_mark(ctx, &schedule, Some(&mark)).await;
    }
    if carried > 0 {
        let left = Left {
            calls: carried,
            progress,
            inventory_ms,
        };
        match hand_on(ctx, &request, now, &report, &left).await {
            Ok(next) => {
                tracing::info!(
                    link = report.links,
                    next_link = next,
                    left = carried,
                    inventory_ms,
                    created = report.totals().created,
                    deleted = report.totals().deleted,
                    failed = report.totals().failed,
                    "time is up for this invocation; the run goes on in the next"
                );
                report.handed_on = true;
                return Ok(report.bounded(MAX_CARRIED));
            }
            Err(failure) => {
                tracing::error!(code = %failure.code, message = %failure.message, "the run cannot go on");
                report.failed.push(failure);
            }
        }
    }

    // The run ends here: its mark goes (a run that went on, or one that could not).
    if (!first_link || carried > 0)
        && run_mark(ctx, &schedule)
            .await
            .is_some_and(|mark| mark.is_of(now))
    {
        set_run_mark(ctx, &schedule, None).await;
    }
    let json = serde_json::to_string(&report).unwrap_or_default();
    let totals = report.totals();
    tracing::info!(
        created = totals.created,
        deleted = totals.deleted,
        skipped = totals.skipped,
        failed = totals.failed,
        links = report.links,
        dry_run,
        report = %json,
        "run summary"
    );
    if !dry_run {
        // Embedded-metric-format lines must reach stdout as they are, not through the logger.
        let timestamp_ms =
            (now.unix_timestamp_nanos() / 1_000_000) as i64 + report.duration_ms as i64;
        for line in report.metric_lines(timestamp_ms) {
            println!("{line}");
        }
    }

    publish(ctx, &report).await?;
    if totals.failed == 0 {
        Ok(report)
    } else {
        Err(FunctionError::RunFailed(Box::new(report)))
    }
}

/// What the copy half needs from the context.
fn copy_setup<'a>(
    ctx: &'a Context,
    mode: Mode,
    deadline: Option<&'a execute::Deadline>,
) -> copy_run::Setup<'a> {
    copy_run::Setup {
        home_ec2: &ctx.ec2,
        regions: &ctx.regions,
        policy: &ctx.config.policy,
        pacer: &ctx.pacer,
        deadline,
        limit: ctx.config.max_concurrency,
        mode,
        page_size: ctx.page_size,
        settle: ctx.settle,
    }
}

fn merge(report: &mut RunReport, copied: copy_run::Copied) {
    report.copies = copied.regions;
    report.failed.extend(copied.failed);
    report.skipped.extend(copied.skipped);
    report.warnings.extend(copied.warnings);
}

/// A copy run, on EC2's completion event of one `CreateSnapshots`: the event's snapshots that
/// are this deployment's go to every copy region now. Its summary is published only when
/// something failed (a fleet's completion events would otherwise mail one per instance); the
/// log and the metrics have every run, and the next scheduled summary counts the copies.
async fn copy_run(
    ctx: &Context,
    request: &Request,
    mut report: RunReport,
    mode: Mode,
    clock: OffsetDateTime,
    started: Instant,
) -> Result<RunReport, FunctionError> {
    let copied = copy_run::run(copy_setup(ctx, mode, None), None, &request.options, clock).await;
    merge(&mut report, copied);
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    finish(ctx, report, clock, Publish::OnFailure).await
}

/// A restore test: a sample of instances' newest completed sets (or the event's instances')
/// restored to volumes, waited for and deleted. Its summary is always published: it is the
/// proof that restores work, or the alarm that they do not.
async fn restore_test_run(
    ctx: &Context,
    request: &Request,
    mut report: RunReport,
    (mode, clock, started): (Mode, OffsetDateTime, Instant),
    deadline: Option<&execute::Deadline>,
) -> Result<RunReport, FunctionError> {
    // Refused before any AWS call, like any other event the deployment cannot serve.
    let Some(settings) = ctx.config.restore_test else {
        return Err(FunctionError::InvalidEvent(EventError::no_restore_test()));
    };
    let policy = &ctx.config.policy;
    match inventory::read(&ctx.ec2, policy, &request.options, ctx.page_size).await {
        Err(failure) => report.failed.push(failure),
        Ok(inventory) => {
            let chosen = request.options.instance_ids.as_ref();
            // The cursor moves only with scheduled samples, never in a dry run.
            let cursor = match chosen {
                None => topic_tag(ctx, restore_test::CURSOR_TAG).await,
                Some(_) => None,
            };
            let sample =
                restore_test::sample(&inventory, settings.sample, chosen, cursor.as_deref());
            tracing::info!(
                candidates = sample.candidates,
                sampled = sample.sets.len(),
                after = cursor.as_deref().unwrap_or(""),
                "restore test sample"
            );
            report.tagged_instances = sample.candidates;
            report.failed.extend(sample.failed);
            let drill = restore_test_run::Drill {
                ec2: &ctx.ec2,
                deployment: &policy.deployment,
                limit: ctx.config.max_concurrency,
                poll: ctx.poll,
                max_wait: std::time::Duration::from_secs(u64::from(settings.max_wait_seconds)),
                deadline,
                mode,
                run_started_at: clock,
            };
            let drilled = restore_test_run::run(drill, &sample.sets).await;
            report.restore_tests = drilled.tests;
            report.failed.extend(drilled.failed);
            report.warnings.extend(drilled.warnings);
            if mode == Mode::Apply
                && let Some(next) = sample.cursor
            {
                set_topic_tag(ctx, restore_test::CURSOR_TAG, Some(&next)).await;
            }
        }
    }
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    finish(ctx, report, clock, Publish::Always).await
}

/// When a copy run or a restore test publishes its summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    Always,
    OnFailure,
}

/// Ends a copy run or a restore test: logs the summary, prints its metrics (not in a dry run),
/// publishes it as `publish` says, and returns an error when anything failed.
async fn finish(
    ctx: &Context,
    report: RunReport,
    clock: OffsetDateTime,
    publish_when: Publish,
) -> Result<RunReport, FunctionError> {
    let totals = report.totals();
    let json = serde_json::to_string(&report).unwrap_or_default();
    tracing::info!(job = %report.job, failed = totals.failed, report = %json, "run summary");
    if !report.dry_run {
        let timestamp_ms = (clock.unix_timestamp_nanos() / 1_000_000) as i64;
        for line in report.metric_lines(timestamp_ms) {
            println!("{line}");
        }
    }
    if publish_when == Publish::Always || totals.failed > 0 {
        publish(ctx, &report).await?;
    }
    if totals.failed == 0 {
        Ok(report)
    } else {
        Err(FunctionError::RunFailed(Box::new(report)))
    }
}

/// Publishes the run's summary to the topic.
async fn publish(ctx: &Context, report: &RunReport) -> Result<(), FunctionError> {
    let subject = report.subject();
    let published = ctx
        .sns
        .publish()
        .topic_arn(&ctx.config.sns_topic_arn)
        .subject(&subject)
        .message(truncate(report.body(), MAX_MESSAGE_BYTES))
        .send()
        .await;
    // The organization's inbox, whatever happened to the deployment's own topic.
    let central = publish_centrally(ctx, report).await;
    if let Err(error) = published {
        let failure = crate::sdk_errors::failure(None, "Publish", &error);
        return Err(FunctionError::PublishFailed(format!(
            "{subject}; and the summary could not be published to {}: {}: {}",
            ctx.config.sns_topic_arn, failure.code, failure.message
        )));
    }
    central
}

/// Publishes the summary to the organization's central topic too, when there is one, with
/// the account and region (read from the deployment's own topic ARN) in its subject.
async fn publish_centrally(ctx: &Context, report: &RunReport) -> Result<(), FunctionError> {
    let Some(central) = &ctx.config.central_topic_arn else {
        return Ok(());
    };
    let (region, account) = region_and_account(&ctx.config.sns_topic_arn);
    let subject = report.central_subject(account, region);
    // The central topic is usually in another region (the administrator's): publish through
    // a client of its own region, never the function's.
    let published = ctx
        .central_sns
        .as_ref()
        .unwrap_or(&ctx.sns)
        .publish()
        .topic_arn(central)
        .subject(&subject)
        .message(truncate(report.body(), MAX_MESSAGE_BYTES))
        .send()
        .await;
    if let Err(error) = published {
        let failure = crate::sdk_errors::failure(None, "Publish", &error);
        return Err(FunctionError::PublishFailed(format!(
            "{subject}; published to {}, but not to the organization's central topic {central}: \
             {}: {} (its topic policy must allow this account: `cargo xtask deploy` sets it)",
            ctx.config.sns_topic_arn, failure.code, failure.message
        )));
    }
    Ok(())
}

/// The topic's mark of a run of `schedule` going on over several invocations, if any.
async fn run_mark(ctx: &Context, schedule: &str) -> Option<RunMark> {
    topic_tag(ctx, &run_mark::tag(schedule))
        .await
        .and_then(|value| RunMark::parse(&value))
}

/// Writes the topic's run mark of `schedule`, or removes it (`None`).
async fn set_run_mark(ctx: &Context, schedule: &str, mark: Option<&RunMark>) {
    set_topic_tag(
        ctx,
        &run_mark::tag(schedule),
        mark.map(RunMark::value).as_deref(),
    )
    .await;
}

/// Since when each configured schedule is known to this deployment (coverage's
/// `SINCE_TAG_PREFIX` tags on the topic). A schedule seen for the first time is recorded with
/// `now`, except in a dry run; when the tags cannot be read nothing is written, so that a
/// failed read never moves a schedule's start.
async fn schedules_since(
    ctx: &Context,
    dry_run: bool,
    now: OffsetDateTime,
) -> std::collections::BTreeMap<String, OffsetDateTime> {
    let Some(tags) = topic_tags(ctx).await else {
        return Default::default();
    };
    let mut since =
        crate::coverage::since_from_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for schedule in &ctx.config.policy.schedules {
        if !dry_run && !since.contains_key(&schedule.name) {
            let key = crate::coverage::since_tag(&schedule.name);
            set_topic_tag(ctx, &key, Some(&crate::tags::format_time(now))).await;
            since.insert(schedule.name.clone(), now);
        }
    }
    since
}

/// Every tag on the function's topic; `None` (logged) when they cannot be read.
async fn topic_tags(ctx: &Context) -> Option<Vec<(String, String)>> {
    let listed = ctx
        .sns
        .list_tags_for_resource()
        .resource_arn(&ctx.config.sns_topic_arn)
        .send()
        .await;
    match listed {
        Ok(listed) => Some(
            listed
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(error = %aws_sdk_sns::error::DisplayErrorContext(&error), "could not read the topic's tags");
            None
        }
    }
}

/// The value of one of the function's tags on its topic (the run mark, the restore test's
/// cursor). Best effort: a tag that cannot be read is logged and taken as absent.
async fn topic_tag(ctx: &Context, key: &str) -> Option<String> {
    topic_tags(ctx)
        .await?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| value)
}

/// Writes one of the function's tags on its topic, or removes it (`None`). Best effort, logged
/// on failure.
async fn set_topic_tag(ctx: &Context, key: &str, value: Option<&str>) {
    let topic = &ctx.config.sns_topic_arn;
    let result = match value {
        Some(value) => {
            let tag = aws_sdk_sns::types::Tag::builder()
                .key(key)
                .value(value)
                .build();
            match tag {
                Ok(tag) => ctx
                    .sns
                    .tag_resource()
                    .resource_arn(topic)
                    .tags(tag)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string()),
                Err(error) => Err(error.to_string()),
            }
        }
        None => ctx
            .sns
            .untag_resource()
            .resource_arn(topic)
            .tag_keys(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string()),
    };
    if let Err(error) = result {
        tracing::warn!(key, %error, "could not update a tag on the topic");
    }
}

/// What an invocation leaves when its time is up.
struct Left {
    /// EC2 calls not started.
    calls: usize,
    /// Calls this invocation carried out (made, deleted, skipped or failed).
    progress: usize,
    /// How long reading the inventory took.
    inventory_ms: u128,
}

/// Starts the next link of the run with what is left, returning its number; or says why the
/// run cannot go on (no way to invoke itself, the maximum of links reached, no progress in
/// this link, Invoke refused).
async fn hand_on(
    ctx: &Context,
    request: &Request,
    now: OffsetDateTime,
    report: &RunReport,
    left: &Left,
) -> Result<u32, Failure> {
    let carried = left.calls;
    let stop = |code: &str, message: String| Failure {
        subject: None,
        operation: "Continue".to_owned(),
        code: code.to_owned(),
        message,
    };
    let Some(chain) = &ctx.chain else {
        return Err(stop(
            "SmartVault.OutOfTime",
            format!(
                "{carried} calls were not started before the invocation's deadline, and this \
                 invocation cannot hand the run on; the next run backs them up"
            ),
        ));
    };
    if report.links >= ctx.config.max_links {
        return Err(stop(
            "SmartVault.MaxLinks",
            format!(
                "the run reached MAX_LINKS={} invocations with {carried} calls left; the next \
                 run goes on with them (raise MAX_LINKS, or the timeout, for a fleet this size)",
                ctx.config.max_links
            ),
        ));
    }
    if left.progress == 0 {
        // Handing on would only repeat this invocation: say what to change instead.
        return Err(stop(
            "SmartVault.NoProgress",
            format!(
                "this invocation started none of the {carried} calls left: reading the \
                 inventory took {} ms, leaving less than the safety margin before the \
                 deadline; raise the function's timeout",
                left.inventory_ms
            ),
        ));
    }
    let link = Link {
        run_started_at: now,
        number: report.links + 1,
        options: request.options.clone(),
        dry_run: request.dry_run,
        so_far: report.clone().bounded(MAX_CARRIED),
    };
    let payload = serde_json::to_vec(&link.event()).unwrap_or_default();
    chain
        .lambda
        .invoke()
        .function_name(&chain.function_name)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload))
        .send()
        .await
        .map_err(|error| {
            use aws_sdk_lambda::error::ProvideErrorMetadata;
            stop(
                error.code().unwrap_or("InvokeFailed"),
                format!(
                    "could not start link {} of the run ({carried} calls left): {}",
                    link.number,
                    aws_sdk_lambda::error::DisplayErrorContext(&error)
                ),
            )
        })?;
    Ok(link.number)
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
    fn an_error_is_logged_readable_not_as_a_struct_dump() {
        let mut report = RunReport::new(
            "prod",
            false,
            Job::Backup,
            "Backup=true".into(),
            time::macros::datetime!(2026-11-26 01:00 UTC),
        );
        report.failed.push(Failure {
            subject: None,
            operation: "CreateSnapshots".into(),
            code: "IncorrectState".into(),
            message: "not now".into(),
        });
        let logged = format!("{:?}", FunctionError::RunFailed(Box::new(report)));
        assert!(
            logged.starts_with("SmartVault.RunFailed: SmartVault [prod]"),
            "{logged}"
        );
        assert!(logged.contains("IncorrectState"), "{logged}");
        assert!(!logged.contains("RunReport {"), "{logged}");
    }

    #[test]
    fn error_types_are_stable() {
        let diagnostic: lambda_runtime::Diagnostic =
            FunctionError::PublishFailed("x".into()).into();
        assert_eq!(diagnostic.error_type, "SmartVault.PublishFailed");
        assert_eq!(diagnostic.error_message, "x");
    }
}
