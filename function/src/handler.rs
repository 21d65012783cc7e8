//! One invocation: the event validated (a continuation admitted only as its run mark names
//! it), then handed to its run: a backup run (`backup_run`), a copy run on EC2's completion
//! event (`copy_run`) or a restore test (`restore_test_run`).

use crate::backup_run;
use crate::context::{Context, FunctionError, region_and_account};
use crate::copy_run;
use crate::event::{self, EventError, EventKind, Payload, Request};
use crate::execute::{self, Mode};
use crate::inventory;
use crate::model::Job;
use crate::report::RunReport;
use crate::restore_test;
use crate::restore_test_run;
use crate::run_mark;
use crate::topic;
use std::time::Instant;
use time::OffsetDateTime;

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
            false => topic::run_mark(ctx, &schedule).await,
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
    let run = backup_run::Run {
        schedule,
        dry_run,
        mode,
        now,
        clock,
        started,
        deadline,
    };
    backup_run::run(ctx, &request, report, run).await
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
    // The event's snapshots, read once when the vault or the tripwire needs them too.
    let fast = ctx
        .config
        .policy
        .schedules
        .iter()
        .any(|s| s.fast_restore.is_some());
    let needs_read = ctx.config.vault.is_some() || ctx.config.tripwire.is_some() || fast;
    let read = match (needs_read, &request.options.snapshot_ids) {
        (true, Some(ids)) => {
            match inventory::snapshots_by_id(&ctx.ec2, &ctx.config.policy, ids, ctx.page_size).await
            {
                Ok(found) => Some(found),
                Err(failure) => {
                    report.failed.push(failure);
                    Some(Vec::new())
                }
            }
        }
        _ => None,
    };
    let copied = copy_run::run(
        copy_run::setup(ctx, mode, None),
        read.as_deref(),
        &request.options,
        clock,
    )
    .await;
    copy_run::merge(&mut report, copied);
    if let Some(completed) = &read {
        let shared = crate::vault_run::share_completed(ctx, mode, completed, clock).await;
        crate::vault_run::merge(&mut report, shared);
        // ...and the tripwire reads what the set changed now, off the scheduled run.
        let measured = crate::measure_run::completed(ctx, mode, completed, clock).await;
        crate::measure_run::merge(&mut report, measured);
        // ...and the set just completed is made ready at once where fast restore keeps it.
        let ready = crate::tier_run::fast_on_completion(ctx, mode, completed, clock).await;
        crate::tier_run::merge(&mut report, ready);
    }
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // A trip is mailed at once, as a failure is.
    let tripped = report
        .tripwire
        .as_ref()
        .is_some_and(|t| !t.alerts.is_empty());
    let publish = if tripped {
        Publish::Always
    } else {
        Publish::OnFailure
    };
    finish(ctx, report, clock, publish).await
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
                None => topic::topic_tag(ctx, restore_test::CURSOR_TAG).await,
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
                topic::set_topic_tag(ctx, restore_test::CURSOR_TAG, Some(&next)).await;
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
        topic::publish(ctx, &report).await?;
    }
    if totals.failed == 0 {
        Ok(report)
    } else {
        Err(FunctionError::RunFailed(Box::new(report)))
    }
}
