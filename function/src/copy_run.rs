//! The copy half of a run: reads each copy region, plans with the pure copy planner, copies
//! and expires there through the paced writes, and reports per region. One region's failure
//! never hides the others.

use crate::context::{Context, Regions};
use crate::copies::{self, CopyPlan, Destination};
use crate::execute::{self, Deadline, Mode, Writes};
use crate::inventory;
use crate::model::{Policy, RunOptions, Snapshot};
use crate::pacing::Pacer;
use crate::report::{Failure, RegionCopies, RunReport};
use crate::tags;
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// What the copy half did.
#[derive(Debug, Default)]
pub struct Copied {
    pub regions: Vec<RegionCopies>,
    /// Copies locked (copy rules with a `lock`), each with its region.
    pub locked: Vec<crate::report::Locked>,
    pub failed: Vec<Failure>,
    pub skipped: Vec<crate::plan::Skip>,
    pub warnings: Vec<String>,
}

/// How the copy half runs: the home region's client and what the writes share.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub home_ec2: &'a aws_sdk_ec2::Client,
    pub regions: &'a Regions,
    pub policy: &'a Policy,
    pub pacer: &'a Pacer,
    pub deadline: Option<&'a Deadline>,
    pub limit: usize,
    pub mode: Mode,
    pub page_size: i32,
    pub settle: std::time::Duration,
}

/// Copies `sources` (or, for a copy run, the event's snapshots read now) to every copy region,
/// and expires copies there when the run cleans up.
pub async fn run(
    setup: Setup<'_>,
    sources: Option<&[Snapshot]>,
    options: &RunOptions,
    now: OffsetDateTime,
) -> Copied {
    let mut done = Copied::default();
    if setup.policy.copies.is_empty() {
        return done;
    }
    let expire = options.job.cleans_up();
    let read;
    let sources = match (sources, &options.snapshot_ids) {
        (Some(sources), _) => sources,
        (None, Some(ids)) => {
            match inventory::snapshots_by_id(setup.home_ec2, setup.policy, ids, setup.page_size)
                .await
            {
                Ok(found) => {
                    read = found;
                    &read[..]
                }
                Err(failure) => {
                    done.failed.push(failure);
                    return done;
                }
            }
        }
        (None, None) => &[],
    };
    // A copy run for snapshots that are not this deployment's (another tool's CreateSnapshots
    // reaches the function too) has nothing to read in the copy regions.
    if !expire && sources.is_empty() {
        return done;
    }
    // A copy run looks in each region for copies of its own snapshots only.
    let only: Option<BTreeSet<String>> = options
        .snapshot_ids
        .as_ref()
        .map(|_| sources.iter().map(|s| s.id.clone()).collect());
    let mut destinations = Vec::new();
    let mut unreadable = BTreeSet::new();
    for rule in &setup.policy.copies {
        let Some(client) = setup.regions.clients.get(&rule.region) else {
            continue;
        };
        if rule.region == setup.regions.home {
            destinations.push(Destination {
                region: rule.region.clone(),
                ..Destination::default()
            });
            continue;
        }
        let read = inventory::destination(
            client,
            &rule.region,
            &setup.policy.deployment,
            only.as_ref(),
            setup.page_size,
        )
        .await;
        match read {
            Ok(destination) => destinations.push(destination),
            Err(failure) => {
                tracing::error!(region = %rule.region, code = %failure.code, message = %failure.message, "copy region unreadable");
                unreadable.insert(rule.region.clone());
                done.failed.push(failure);
            }
        }
    }
    // keep_last holds a copy only while its source volume exists, as at home.
    let mut existing = BTreeSet::new();
    if expire {
        let volumes: BTreeSet<String> = destinations
            .iter()
            .flat_map(|d| &d.copies)
            .filter_map(|c| c.tags.get(tags::SOURCE_VOLUME).cloned())
            .collect();
        match inventory::existing_volumes(setup.home_ec2, &volumes, setup.page_size).await {
            Ok(found) => existing = found,
            Err(failure) => {
                // Without it, keep_last cannot be honoured: expire nothing this time.
                done.failed.push(failure);
                return copy_only(setup, sources, destinations, options, now, done).await;
            }
        }
    }
    let plan = copies::plan_copies(
        sources,
        &destinations,
        setup.policy,
        options,
        copies::Scope {
            home_region: &setup.regions.home,
            existing_volumes: &existing,
            expire,
        },
        now,
    );
    let mut done = carry_out(setup, plan, &destinations, now, done).await;
    for region in unreadable {
        done.regions.push(RegionCopies {
            region,
            failed: 1,
            ..RegionCopies::default()
        });
    }
    done
}

async fn copy_only(
    setup: Setup<'_>,
    sources: &[Snapshot],
    destinations: Vec<Destination>,
    options: &RunOptions,
    now: OffsetDateTime,
    done: Copied,
) -> Copied {
    let plan = copies::plan_copies(
        sources,
        &destinations,
        setup.policy,
        options,
        copies::Scope {
            home_region: &setup.regions.home,
            existing_volumes: &BTreeSet::new(),
            expire: false,
        },
        now,
    );
    carry_out(setup, plan, &destinations, now, done).await
}

/// The locks a copy rule asks for in its region: each copy started now, until its own expiry,
/// and the rule's earlier copies there that no lock holds. The region's locks are read only
/// for a rule with a lock.
async fn copy_locks(
    setup: Setup<'_>,
    client: &aws_sdk_ec2::Client,
    rule: &crate::model::CopyRule,
    destination: Option<&Destination>,
    started: &[(crate::copies::CopyRequest, String)],
    now: OffsetDateTime,
    done: &mut Copied,
) -> Vec<crate::locks::LockRequest> {
    let Some(lock) = rule.lock else {
        return Vec::new();
    };
    let region = rule.region.as_str();
    let (mut requests, refused) = crate::copies::locks_for_started(started, lock, now);
    done.skipped.extend(refused.into_iter().map(|(copy, why)| {
        crate::plan::Skip::new(
            crate::plan::Subject::Snapshot(copy),
            format!("copy in {region}: {why}"),
        )
    }));
    let Some(destination) = destination else {
        return requests;
    };
    match inventory::locks(client, setup.page_size).await {
        Ok(held) => {
            let (earlier, skips) = crate::plan::catch_up_locks_by(
                &destination.copies,
                &held,
                &setup.policy.deployment,
                |_| Some(lock),
                now,
            );
            requests.extend(earlier);
            done.skipped.extend(skips.into_iter().map(|skip| {
                crate::plan::Skip::new(skip.subject, format!("copy in {region}: {}", skip.reason))
            }));
        }
        Err(mut failure) => {
            failure.operation = format!("{} in {region}", failure.operation);
            done.failed.push(failure);
        }
    }
    requests
}

async fn carry_out(
    setup: Setup<'_>,
    plan: CopyPlan,
    destinations: &[Destination],
    now: OffsetDateTime,
    mut done: Copied,
) -> Copied {
    done.skipped.extend(plan.skips);
    done.warnings.extend(plan.warnings);
    for rule in &setup.policy.copies {
        let region = rule.region.as_str();
        let (Some(client), Some(completed)) = (
            setup.regions.clients.get(region),
            plan.completed.get(region),
        ) else {
            continue;
        };
        let writes = Writes {
            ec2: client,
            pacer: setup.pacer,
            deadline: setup.deadline,
            limit: setup.limit,
            mode: setup.mode,
            region: Some(region),
        };
        let requests: Vec<_> = plan
            .copies
            .iter()
            .filter(|c| c.region == region)
            .cloned()
            .collect();
        let by_source: std::collections::BTreeMap<String, crate::copies::CopyRequest> = requests
            .iter()
            .map(|r| (r.source_snapshot_id.clone(), r.clone()))
            .collect();
        let copied = execute::copy_snapshots(writes, requests, setup.settle).await;
        let started: Vec<(crate::copies::CopyRequest, String)> = copied
            .started
            .iter()
            .filter_map(|(source, copy)| Some((by_source.get(source)?.clone(), copy.clone()?)))
            .collect();
        let destination = destinations
            .iter()
            .find(|d| d.region == region && region != setup.regions.home);
        let lock_requests =
            copy_locks(setup, client, rule, destination, &started, now, &mut done).await;
        let locked = execute::lock_snapshots(writes, lock_requests).await;
        done.locked.extend(locked.locked);
        let deletions: Vec<_> = plan
            .deletes
            .iter()
            .filter(|(r, _)| r == region)
            .map(|(_, d)| d.clone())
            .collect();
        let deleted = execute::delete_snapshots(writes, deletions).await;
        let mut failed = copied.failed;
        for mut failure in locked.failed {
            failure.operation = format!("LockSnapshot in {region}");
            failed.push(failure);
        }
        for mut failure in deleted.failed {
            failure.operation = format!("DeleteSnapshot in {region}");
            failed.push(failure);
        }
        for skip in deleted.skipped {
            done.skipped.push(crate::plan::Skip::new(
                skip.subject,
                format!("copy in {region}: {}", skip.reason),
            ));
        }
        done.regions.push(RegionCopies {
            region: region.to_owned(),
            started: copied.started.len(),
            completed: *completed,
            in_flight: plan.in_flight.get(region).copied().unwrap_or(0),
            waiting: plan.waiting.get(region).copied().unwrap_or(0) + copied.waiting,
            deleted: deleted.deleted.len(),
            failed: failed.len(),
        });
        done.failed.extend(failed);
    }
    done
}

/// What the copy half needs from the context.
/// The copy half's setup from the invocation's context.
pub(crate) fn setup<'a>(
    ctx: &'a Context,
    mode: Mode,
    deadline: Option<&'a execute::Deadline>,
) -> Setup<'a> {
    Setup {
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

/// What the copy half did, into the run's report.
pub(crate) fn merge(report: &mut RunReport, copied: Copied) {
    report.copies = copied.regions;
    report.locked.extend(copied.locked);
    report.failed.extend(copied.failed);
    report.skipped.extend(copied.skipped);
    report.warnings.extend(copied.warnings);
}
