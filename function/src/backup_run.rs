//! A backup run (and a cleanup run), the job most events ask for: the run mark, the inventory
//! within the deadline, the plan, coverage, the paced writes, the copy sweep of the link that
//! ends the run, the hand-on when time is up, and the summary.

use crate::consistent_run;
use crate::context::{Context, FunctionError};
use crate::copy_run;
use crate::event::Request;
use crate::execute::{self, Mode};
use crate::inventory;
use crate::links::{self, Left};
use crate::model::Phase;
use crate::plan;
use crate::report::{Failure, MAX_CARRIED, RunReport};
use crate::run_mark::RunMark;
use crate::topic;
use crate::vault_run;
use std::time::Instant;
use time::OffsetDateTime;

/// What the dispatcher settled before the run: its schedule, whether it writes, the time it
/// plans with (`now`, the run's start) and the time it is (`clock`), and its deadline.
pub(crate) struct Run {
    pub schedule: String,
    pub dry_run: bool,
    pub mode: Mode,
    pub now: OffsetDateTime,
    pub clock: OffsetDateTime,
    pub started: Instant,
    pub deadline: Option<Instant>,
}

/// Carries out one link of a backup or cleanup run, and ends the run when nothing is left.
pub(crate) async fn run(
    ctx: &Context,
    request: &Request,
    mut report: RunReport,
    run: Run,
) -> Result<RunReport, FunctionError> {
    let Run {
        schedule,
        dry_run,
        mode,
        now,
        clock,
        started,
        deadline,
    } = run;
    let policy = &ctx.config.policy;
    let first_link = request.options.phase == Phase::FirstLink;
    // A run going on over several invocations marks the topic; a new run does not start a
    // second pass beside it. A dry run writes nothing and may go ahead.
    if first_link
        && !dry_run
        && let Some(mark) = topic::run_mark(ctx, &schedule).await
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
                let since = topic::schedules_since(ctx, dry_run, now).await;
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
            let writes = ctx.writes(mode, deadline.as_ref());
            // Each new set is locked until its expiry as soon as it exists (EC2 locks pending
            // snapshots), before any deletion; older ones no lock holds are locked again.
            let lock_after: std::collections::BTreeMap<String, _> = plan
                .creates
                .iter()
                .filter_map(|c| {
                    c.lock
                        .map(|rule| (c.instance_id.clone(), (rule, c.expires_at)))
                })
                .collect();
            // Sets a schedule's consistency covers go through their stages, after the rest,
            // made crash-consistent at once.
            let (consistent, plain): (Vec<_>, Vec<_>) = plan
                .creates
                .into_iter()
                .partition(|c| c.consistency.is_some());
            let execution_id = crate::tags::format_time(now);
            let setup = consistent_run::Setup {
                sdk: &ctx.sdk,
                writes,
                settle: ctx.settle,
                poll: ctx.poll,
                shipped: ctx.config.freeze_document.as_deref().unwrap_or_default(),
                execution_id: &execution_id,
                deployment: &policy.deployment,
            };
            let mut created = execute::create_snapshots(writes, plain, ctx.settle).await;
            let consistent = consistent_run::create(setup, consistent).await;
            created.absorb_from(consistent.outcomes);
            if !consistent.consistency.is_empty() {
                report
                    .consistency
                    .get_or_insert_with(Default::default)
                    .add(consistent.consistency);
            }
            let mut lock_requests = plan.locks;
            for made in &created.created {
                if let (Some(id), Some((rule, until))) =
                    (&made.snapshot_id, lock_after.get(&made.instance_id))
                {
                    match crate::locks::request(id, *rule, *until, now) {
                        Ok(request) => lock_requests.push(request),
                        Err(why) => report
                            .skipped
                            .push(plan::Skip::new(plan::Subject::Snapshot(id.clone()), why)),
                    }
                }
            }
            let locked = execute::lock_snapshots(writes, lock_requests).await;
            let deleted = execute::delete_snapshots(writes, plan.deletes).await;
            let gone: std::collections::BTreeSet<&str> = deleted
                .deleted
                .iter()
                .map(|d| d.snapshot_id.as_str())
                .collect();
            // The link that ends the run sweeps the copy regions: every completed set without
            // its copies is copied (the completion events normally did it already), and
            // copies past their rule expire.
            if created.carried + locked.carried + deleted.carried == 0
                && request.options.job.copies()
            {
                let sources: Vec<_> = inventory
                    .snapshots
                    .iter()
                    .filter(|s| !gone.contains(s.id.as_str()))
                    .cloned()
                    .collect();
                let setup = copy_run::setup(ctx, mode, deadline.as_ref());
                let copied = copy_run::run(setup, Some(&sources), &request.options, now).await;
                copy_run::merge(&mut report, copied);
                // ...and the vault: sets shared with it, or pulled into it.
                if request.options.instance_ids.is_none() {
                    let vaulted =
                        vault_run::sweep(ctx, mode, deadline.as_ref(), &sources, now).await;
                    vault_run::merge(&mut report, vaulted);
                    // ...and the tripwire: what each new set changed, judged.
                    let measured = crate::measure_run::sweep(
                        ctx,
                        mode,
                        deadline.as_ref(),
                        &sources,
                        &inventory.locks,
                        now,
                    )
                    .await;
                    crate::measure_run::merge(&mut report, measured);
                    // ...and the storage tiers: the archive and fast snapshot restore.
                    let swept = crate::tier_run::sweep(
                        ctx,
                        mode,
                        deadline.as_ref(),
                        &sources,
                        &inventory.instances,
                        &inventory.locks,
                        now,
                    )
                    .await;
                    crate::tier_run::merge(&mut report, swept);
                }
            }
            for outcomes in [created, locked, deleted] {
                progress += outcomes.created.len()
                    + outcomes.locked.len()
                    + outcomes.deleted.len()
                    + outcomes.skipped.len()
                    + outcomes.failed.len();
                report.created.extend(outcomes.created);
                report.locked.extend(outcomes.locked);
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
        topic::set_run_mark(ctx, &schedule, Some(&mark)).await;
    }
    if carried > 0 {
        let left = Left {
            calls: carried,
            progress,
            inventory_ms,
        };
        match links::hand_on(ctx, request, now, &report, &left).await {
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
        && topic::run_mark(ctx, &schedule)
            .await
            .is_some_and(|mark| mark.is_of(now))
    {
        topic::set_run_mark(ctx, &schedule, None).await;
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

    topic::publish(ctx, &report).await?;
    if totals.failed == 0 {
        Ok(report)
    } else {
        Err(FunctionError::RunFailed(Box::new(report)))
    }
}
