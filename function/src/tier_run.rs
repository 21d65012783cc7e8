//! The storage half of a run's end (issue 33): restores from the archive an operator started
//! that are ready (mailed once), sets moved to the archive tier when it pays, and fast
//! snapshot restore enabled on each schedule's newest sets and disabled on those they replace
//! (the disables first); and, on EC2's completion event of a set, its instance's fast snapshot
//! restores at once. Plans with `archive.rs` and `fast_plan.rs`; calls EC2 through
//! `ec2_query.rs`, paced, none started past the cutoff.

use crate::context::Context;
use crate::ec2_query;
use crate::execute::{self, Deadline, Mode};
use crate::locks::SnapshotLock;
use crate::model::{Instance, Snapshot, Tier};
use crate::pacing::{Action, Throttled};
use crate::plan::Subject;
use crate::report::{Failure, RestoreReady, TierArchived, Tiering};
use crate::signed::CallError;
use crate::tags;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// What the sweep did, and what failed.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    pub tiering: Tiering,
    pub failed: Vec<Failure>,
}

/// One change the sweep makes: an archival, or a snapshot's fast snapshot restores switched
/// on (`true`) or off.
enum Job {
    Archive(crate::archive::Archival),
    Fast(crate::fast_plan::Change, bool),
}

/// Sends `job`'s call paced (a throttled answer waits and goes again); `None` when the cutoff
/// came first. `Ok` holds the zones EC2 refused of a fast snapshot restore change.
async fn send(
    ctx: &Context,
    cutoff: Option<std::time::Instant>,
    job: &Job,
) -> Option<Result<Vec<(String, CallError)>, CallError>> {
    let action = match job {
        Job::Archive(_) => Action::ModifySnapshotTier,
        Job::Fast(..) => Action::FastSnapshotRestores,
    };
    let mut throttled = 0;
    loop {
        if !ctx.pacer.ready(action, None, cutoff).await {
            return None;
        }
        let sent = match job {
            Job::Archive(a) => ec2_query::archive(&ctx.sdk, &a.snapshot_id)
                .await
                .map(|()| Vec::new()),
            Job::Fast(change, on) => {
                ec2_query::fast_restore(&ctx.sdk, &change.snapshot_id, &change.zones, *on).await
            }
        };
        let verdict = match &sent {
            Err(e) if e.throttled() => Throttled::Yes,
            _ => Throttled::No,
        };
        ctx.pacer.record(action, None, verdict);
        match sent {
            Err(e) if e.throttled() && throttled < 20 => throttled += 1,
            other => return Some(other),
        }
    }
}

fn failure(snapshot_id: Option<&str>, operation: &str, e: CallError) -> Failure {
    tracing::error!(snapshot_id, operation, code = %e.code, message = %e.message, "storage change failed; the next run tries again");
    Failure {
        subject: snapshot_id.map(|id| Subject::Snapshot(id.to_owned())),
        operation: operation.to_owned(),
        code: e.code,
        message: e.message,
    }
}

/// The sweep over this deployment's `own` snapshots (read by this run, less those it deleted)
/// and the region's backed-up `instances`.
pub(crate) async fn sweep(
    ctx: &Context,
    mode: Mode,
    deadline: Option<&Deadline>,
    own: &[Snapshot],
    instances: &[Instance],
    locks: &BTreeMap<String, SnapshotLock>,
    now: OffsetDateTime,
) -> Swept {
    let mut swept = Swept::default();
    let policy = &ctx.config.policy;
    let cutoff = deadline.map(Deadline::cutoff);
    let writes = ctx.writes(mode, deadline);
    let dry = mode == Mode::DryRun;
    let mut tags_to_write: Vec<(String, Vec<(String, String)>)> = Vec::new();

    // Restores an operator started, back now: mailed once.
    for s in own {
        if crate::archive::restore_requested(s) && s.tier != Tier::Archive {
            swept.tiering.restores_ready.push(RestoreReady {
                snapshot_id: s.id.clone(),
                instance_id: s.tag(tags::INSTANCE_ID).map(str::to_owned),
                until: match s.tier {
                    Tier::Restored { until } => Some(tags::format_time(until)),
                    _ => None,
                },
            });
            tags_to_write.push((
                s.id.clone(),
                vec![(
                    tags::TIER_RESTORE.to_owned(),
                    format!("ready {}", tags::format_time(now)),
                )],
            ));
        }
    }

    let (fast_plan, fast_read) = fast_plan(ctx, own, instances, now, &mut swept).await;

    // The archive: what pays, never a set held ready, locked or pinned.
    let mut jobs: Vec<Job> = Vec::new();
    if policy
        .schedules
        .iter()
        .any(|s| s.archive_after_days.is_some())
    {
        let mut held: BTreeSet<String> = fast_plan.wanted.iter().cloned().collect();
        held.extend(
            locks
                .iter()
                .filter(|(_, lock)| lock.holds(now))
                .map(|(id, _)| id.clone()),
        );
        let frees = crate::cost::frees_by_snapshot(own, &policy.deployment, now);
        let plan = crate::archive::plan(own, policy, &held, &frees, now);
        swept.tiering.held_back = plan.held_back.len();
        jobs.extend(plan.archive.into_iter().map(Job::Archive));
    }
    // Then fast snapshot restore, the disables first, so that never more than the configured
    // sets are billed at once.
    if fast_read {
        jobs.extend(fast_plan.disable.into_iter().map(|c| Job::Fast(c, false)));
        jobs.extend(fast_plan.enable.into_iter().map(|c| Job::Fast(c, true)));
    }
    run_jobs(ctx, cutoff, dry, jobs, now, &mut swept, &mut tags_to_write).await;

    let tagged = execute::tag_snapshots(writes, tags_to_write).await;
    swept.failed.extend(tagged.failed);
    swept
}

/// What fast snapshot restore should change among `own` (this deployment's snapshots, all or
/// some instances'), from what EC2 says is enabled, read only while a schedule keeps sets
/// ready; `false` when the read failed (then nothing is changed, and the failure reported).
async fn fast_plan(
    ctx: &Context,
    own: &[Snapshot],
    instances: &[Instance],
    now: OffsetDateTime,
    swept: &mut Swept,
) -> (crate::fast_plan::Plan, bool) {
    let policy = &ctx.config.policy;
    let ids: BTreeSet<&str> = own.iter().map(|s| s.id.as_str()).collect();
    let read = if policy.schedules.iter().any(|s| s.fast_restore.is_some()) {
        ec2_query::fast_restores(&ctx.sdk).await
    } else {
        Ok(Vec::new())
    };
    let fast_read = read.is_ok();
    let enabled: Vec<crate::fast_plan::Pair> = match read {
        Ok(all) => all
            .into_iter()
            .filter(|(id, _)| ids.contains(id.as_str()))
            .collect(),
        Err(e) => {
            swept
                .failed
                .push(failure(None, "DescribeFastSnapshotRestores", e));
            Vec::new()
        }
    };
    (
        crate::fast_plan::plan(own, instances, policy, &enabled, now),
        fast_read,
    )
}

/// Carries out `jobs` in order, paced, none started past `cutoff`; what they did goes to
/// `swept`, and the archived-at tags to write to `tags_to_write`.
async fn run_jobs(
    ctx: &Context,
    cutoff: Option<std::time::Instant>,
    dry: bool,
    jobs: Vec<Job>,
    now: OffsetDateTime,
    swept: &mut Swept,
    tags_to_write: &mut Vec<(String, Vec<(String, String)>)>,
) {
    for job in jobs {
        let sent = if dry {
            Some(Ok(Vec::new()))
        } else {
            send(ctx, cutoff, &job).await
        };
        match (job, sent) {
            (Job::Archive(_), None) => swept.tiering.held_back += 1,
            (Job::Fast(..), None) => {}
            (Job::Archive(a), Some(Err(e))) => {
                swept
                    .failed
                    .push(failure(Some(&a.snapshot_id), "ModifySnapshotTier", e))
            }
            (Job::Archive(archival), Some(Ok(_))) => {
                tracing::info!(snapshot_id = %archival.snapshot_id, "archiving");
                tags_to_write.push((
                    archival.snapshot_id.clone(),
                    vec![(tags::ARCHIVED_AT.to_owned(), tags::format_time(now))],
                ));
                swept.tiering.archived.push(TierArchived {
                    saves_monthly_cents: archival
                        .saves_monthly_usd
                        .map(|usd| (usd * 100.0).round() as u64),
                    snapshot_id: archival.snapshot_id,
                    instance_id: archival.instance_id,
                    schedule: archival.schedule,
                });
            }
            (Job::Fast(change, on), Some(result)) => {
                let operation = if on {
                    "EnableFastSnapshotRestores"
                } else {
                    "DisableFastSnapshotRestores"
                };
                let refused = match result {
                    Err(e) => {
                        swept
                            .failed
                            .push(failure(Some(&change.snapshot_id), operation, e));
                        continue;
                    }
                    Ok(refused) => refused,
                };
                let zones: Vec<String> = change
                    .zones
                    .iter()
                    .filter(|z| !refused.iter().any(|(r, _)| r == *z))
                    .cloned()
                    .collect();
                for (zone, e) in refused {
                    let mut failed = failure(Some(&change.snapshot_id), operation, e);
                    failed.message = format!("in {zone}: {}", failed.message);
                    swept.failed.push(failed);
                }
                if zones.is_empty() {
                    continue;
                }
                let done = crate::fast_plan::Change {
                    snapshot_id: change.snapshot_id,
                    zones,
                };
                if on {
                    swept.tiering.fast_restore_enabled.push(done);
                } else {
                    swept.tiering.fast_restore_disabled.push(done);
                }
            }
        }
    }
}

/// Fast snapshot restore on EC2's completion event of a set: the event's instances' sets, the
/// one just completed among them, made ready now instead of by the next scheduled run.
pub(crate) async fn fast_on_completion(
    ctx: &Context,
    mode: Mode,
    completed: &[Snapshot],
    now: OffsetDateTime,
) -> Swept {
    let mut swept = Swept::default();
    let policy = &ctx.config.policy;
    let rules: Vec<&crate::fast_restore::Rule> = policy
        .schedules
        .iter()
        .filter_map(|s| s.fast_restore.as_ref())
        .collect();
    let instance_ids: BTreeSet<String> = completed
        .iter()
        .filter_map(|s| s.tag(tags::INSTANCE_ID).map(str::to_owned))
        .collect();
    if rules.is_empty() || instance_ids.is_empty() {
        return swept;
    }
    let own =
        match crate::inventory::instances_snapshots(&ctx.ec2, policy, &instance_ids, ctx.page_size)
            .await
        {
            Ok(own) => own,
            Err(failed) => {
                swept.failed.push(failed);
                return swept;
            }
        };
    // Their tags, only when a rule selects instances by one.
    let instances = if rules.iter().any(|r| r.tag.is_some()) {
        match crate::inventory::instances_by_id(&ctx.ec2, policy, &instance_ids, ctx.page_size)
            .await
        {
            Ok(found) => found,
            Err(failed) => {
                swept.failed.push(failed);
                return swept;
            }
        }
    } else {
        Vec::new()
    };
    let (plan, read) = fast_plan(ctx, &own, &instances, now, &mut swept).await;
    if !read {
        return swept;
    }
    let mut jobs: Vec<Job> = plan
        .disable
        .into_iter()
        .map(|c| Job::Fast(c, false))
        .collect();
    jobs.extend(plan.enable.into_iter().map(|c| Job::Fast(c, true)));
    let mut no_tags = Vec::new();
    run_jobs(
        ctx,
        None,
        mode == Mode::DryRun,
        jobs,
        now,
        &mut swept,
        &mut no_tags,
    )
    .await;
    swept
}

pub(crate) fn merge(report: &mut crate::report::RunReport, swept: Swept) {
    if !swept.tiering.is_empty() {
        report.tiering = Some(swept.tiering);
    }
    report.failed.extend(swept.failed);
}
