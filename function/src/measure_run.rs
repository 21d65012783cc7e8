//! The tripwire's half of a run, at the edges: reads what each new set changed (EBS direct
//! `ListChangedBlocks`, against the snapshot before it on its volume), judges each volume's
//! new sets against its own history with the pure rule, records both on the snapshot, and pins
//! the clean set before every trip in force.

use crate::changes::{self, Measure};
use crate::context::Context;
use crate::ebs_direct::Sample;
use crate::execute::{self, Deadline, Mode};
use crate::locks::{self, LockMode, LockState, SnapshotLock};
use crate::model::Snapshot;
use crate::report::{Failure, TripHeld, Tripwire, TripwireAlert};
use crate::tags;
use crate::tripwire::{self, Verdict};
use futures_util::{StreamExt, stream};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The most snapshots one run measures; the rest are measured by the next runs.
pub const MAX_MEASURES_PER_RUN: usize = 500;

/// What the tripwire did this run.
#[derive(Debug, Default)]
pub struct Measured {
    pub tripwire: Option<Tripwire>,
    pub failed: Vec<Failure>,
    pub warnings: Vec<String>,
}

/// Measures this deployment's unmeasured completed snapshots among `own` and judges them; does
/// nothing without the tripwire configured.
pub(crate) async fn sweep(
    ctx: &Context,
    mode: Mode,
    deadline: Option<&Deadline>,
    own: &[Snapshot],
    locks: &BTreeMap<String, SnapshotLock>,
    now: OffsetDateTime,
) -> Measured {
    let mut done = Measured::default();
    let Some(settings) = ctx.config.tripwire else {
        return done;
    };
    let deployment = &ctx.config.policy.deployment;
    let measures = changes::to_measure(own, deployment, MAX_MEASURES_PER_RUN, now);
    let cutoff = deadline.map(Deadline::cutoff);
    // A snapshot whose previous one records no written bytes, and is not read in this batch
    // (measured before they were recorded, or its chain broken by a failed read), is also
    // read whole once, so what it holds is known again.
    let batch: std::collections::BTreeSet<String> =
        measures.iter().map(|m| m.snapshot_id.clone()).collect();
    type Read = Result<(crate::ebs_direct::Changed, Vec<Sample>, Option<u64>), Failure>;
    let reads: Vec<(Measure, Read)> = stream::iter(measures.into_iter().map(|measure| {
        let batch = &batch;
        async move {
            if cutoff.is_some_and(|at| std::time::Instant::now() >= at) {
                return (measure, Err(out_of_time()));
            }
            let failed = |e: crate::ebs_direct::EbsError| Failure {
                subject: Some(crate::plan::Subject::Snapshot(measure.snapshot_id.clone())),
                operation: "ListChangedBlocks".into(),
                code: e.code,
                message: e.message,
            };
            let read = crate::ebs_direct::changed_blocks(
                &ctx.sdk,
                measure.previous.as_deref(),
                &measure.snapshot_id,
            )
            .await
            .map_err(failed);
            let orphan = measure.previous_written.is_none()
                && measure
                    .previous
                    .as_ref()
                    .is_some_and(|p| !batch.contains(p));
            let read = match read {
                Ok((changed, samples)) if orphan => {
                    crate::ebs_direct::changed_blocks(&ctx.sdk, None, &measure.snapshot_id)
                        .await
                        .map(|(whole, _)| (changed, samples, Some(whole.blocks)))
                        .map_err(failed)
                }
                Ok((changed, samples)) => Ok((changed, samples, None)),
                Err(failure) => Err(failure),
            };
            (measure, read)
        }
    }))
    .buffered(ctx.config.max_concurrency.max(1))
    .collect()
    .await;
    let mut recorded: Vec<(Measure, Vec<(String, String)>)> = Vec::new();
    let mut left = 0;
    // Oldest first: a snapshot's written bytes follow from its previous one's, read in this run
    // or recorded before.
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for (measure, read) in reads {
        match read {
            Ok((changed, sampled, whole)) => {
                samples.insert(measure.snapshot_id.clone(), sampled);
                let before = measure.previous_written.or_else(|| {
                    written
                        .get(measure.previous.as_deref().unwrap_or_default())
                        .copied()
                });
                let holds = changes::written(&measure, changed, before)
                    .or(whole.map(|blocks| blocks.saturating_mul(changes::BLOCK_BYTES)));
                if let Some(bytes) = holds {
                    written.insert(measure.snapshot_id.clone(), bytes);
                }
                let record = changes::record(&measure, changed.blocks, holds);
                recorded.push((measure, record));
            }
            Err(failure) if failure.code == OUT_OF_TIME => left += 1,
            Err(failure) => done.failed.push(failure),
        }
    }
    if left > 0 {
        done.warnings.push(format!(
            "{left} snapshots' changed blocks were left for the next run: the invocation's time \
             ran out"
        ));
    }
    // Judged with what was just read, as if already recorded, before anything is written: a
    // suspicious set's trip tag goes in the same CreateTags call as its changed bytes, so a
    // set is recorded and flagged together or read again by the next run.
    let mut seen: Vec<Snapshot> = own.to_vec();
    {
        let records: BTreeMap<&str, &Vec<(String, String)>> = recorded
            .iter()
            .map(|(m, record)| (m.snapshot_id.as_str(), record))
            .collect();
        for snapshot in &mut seen {
            if let Some(record) = records.get(snapshot.id.as_str()) {
                snapshot.tags.extend(record.iter().cloned());
            }
        }
    }
    let histories = changes::histories(&seen, deployment, now);
    let mut alerts = Vec::new();
    for (measure, _) in recorded.iter().filter(|(m, _)| m.previous.is_some()) {
        let Some(history) = histories.get(&measure.volume_id) else {
            continue;
        };
        let Some(at) = history
            .iter()
            .position(|(id, _)| *id == measure.snapshot_id)
        else {
            continue;
        };
        let before: Vec<f64> = history[..at].iter().map(|(_, f)| *f).collect();
        let fraction = history[at].1;
        if let Verdict::Suspicious {
            usual_peak,
            median,
            threshold,
            ..
        } = tripwire::judge(&before, fraction, settings)
        {
            let instance_id = seen
                .iter()
                .find(|s| s.id == measure.snapshot_id)
                .and_then(|s| s.tag(tags::INSTANCE_ID))
                .unwrap_or_default()
                .to_owned();
            alerts.push(TripwireAlert {
                instance_id,
                volume_id: measure.volume_id.clone(),
                snapshot_id: measure.snapshot_id.clone(),
                changed_permille: permille(fraction),
                median_permille: permille(median),
                usual_peak_permille: permille(usual_peak),
                threshold_permille: permille(threshold),
                sampled_millibits: None,
            });
        }
    }
    // With sampling, a suspicious set is flagged only when its changed blocks look encrypted.
    if settings.sample_blocks > 0 && !alerts.is_empty() {
        let judged = confirm(ctx, &samples, alerts, settings.sample_blocks, cutoff).await;
        alerts = judged.0;
        done.warnings.extend(judged.1);
    }
    for alert in &alerts {
        tracing::warn!(instance_id = %alert.instance_id, volume_id = %alert.volume_id, snapshot_id = %alert.snapshot_id, changed_permille = alert.changed_permille, "tripwire");
        if let Some((_, record)) = recorded
            .iter_mut()
            .find(|(m, _)| m.snapshot_id == alert.snapshot_id)
        {
            record.push((tags::TRIPWIRE.to_owned(), tripwire::tripped(now)));
        }
    }
    let writes = ctx.writes(mode, deadline);
    let tagged = execute::tag_snapshots(
        writes,
        recorded
            .iter()
            .map(|(m, tags)| (m.snapshot_id.clone(), tags.clone()))
            .collect(),
    )
    .await;
    done.failed.extend(tagged.failed);
    let flagged: BTreeMap<&str, &Vec<(String, String)>> = recorded
        .iter()
        .filter(|(m, _)| alerts.iter().any(|a| a.snapshot_id == m.snapshot_id))
        .map(|(m, record)| (m.snapshot_id.as_str(), record))
        .collect();
    for snapshot in &mut seen {
        if let Some(record) = flagged.get(snapshot.id.as_str()) {
            snapshot.tags.extend(record.iter().cloned());
        }
    }

    // Every trip in force: its clean set pinned (again when a pin call failed or a newer spike
    // came), its expiry suspended by the planner until an operator clears it.
    let trips = tripwire::trips(&seen, deployment, now);
    let mut pins = Vec::new();
    let mut clean_sets = BTreeMap::new();
    for (instance, trip) in &trips {
        if let Some((at, set)) = tripwire::clean_set(&seen, deployment, instance, trip.set_at, now)
        {
            pins.extend(tripwire::pins(&set, locks, settings, trip.since, now));
            let ids: Vec<String> = set.iter().map(|s| s.id.clone()).collect();
            clean_sets.insert(instance.clone(), (at, ids));
        }
    }
    let locked = execute::lock_snapshots(writes, pins).await;
    done.failed.extend(locked.failed);
    let mut now_locked = locks.clone();
    for lock in &locked.locked {
        now_locked.insert(
            lock.snapshot_id.clone(),
            SnapshotLock {
                state: match lock.mode {
                    LockMode::Governance => LockState::Governance,
                    LockMode::Compliance => LockState::Compliance,
                },
                expires_on: Some(lock.until),
            },
        );
    }
    let held = trips
        .iter()
        .map(|(instance, trip)| {
            let clean = clean_sets.get(instance);
            TripHeld {
                instance_id: instance.clone(),
                since: tags::format_time(trip.since),
                suspicious_set: tags::format_time(trip.set_at),
                snapshots: trip.snapshots.clone(),
                new: trip
                    .snapshots
                    .iter()
                    .any(|id| flagged.contains_key(id.as_str())),
                clean_point: clean.map(|(at, _)| tags::format_time(*at)),
                pinned: clean
                    .and_then(|(_, ids)| {
                        locks::holding_all(&now_locked, ids.iter().map(String::as_str))
                    })
                    .map(|lock| lock.describe()),
            }
        })
        .collect::<Vec<_>>();
    if !alerts.is_empty() {
        done.warnings.push(format!(
            "TRIPWIRE: {} set(s) changed far more of their volume than its history makes normal; \
             see the tripwire section",
            alerts.len()
        ));
    }
    let stored = crate::cost::estimate(
        &seen,
        deployment,
        crate::cost::STANDARD_PRICE_PER_GB_MONTH,
        now,
    );
    done.tripwire = Some(Tripwire {
        measured: tagged.done.len(),
        alerts,
        trips: held,
        environment: ctx.config.environment.clone(),
        stored_bytes: stored.bytes,
        stored_exact: stored.exact,
        unmeasured: stored.unmeasured,
        partial: false,
    });
    done
}

/// Reads up to `count` sampled changed blocks of each suspicious set and keeps the alerts whose
/// blocks look encrypted; the others become warnings. A set whose blocks cannot be read (an
/// encrypted snapshot without `kms:Decrypt` through EBS, say) is flagged on its size alone,
/// and says so.
async fn confirm(
    ctx: &Context,
    samples: &BTreeMap<String, Vec<Sample>>,
    alerts: Vec<TripwireAlert>,
    count: u32,
    cutoff: Option<std::time::Instant>,
) -> (Vec<TripwireAlert>, Vec<String>) {
    let judged: Vec<(TripwireAlert, Result<Vec<f64>, String>)> =
        stream::iter(alerts.into_iter().map(|alert| async move {
            let picked = tripwire::spread(
                samples
                    .get(&alert.snapshot_id)
                    .map_or(&[][..], Vec::as_slice),
                count as usize,
            );
            let mut bits = Vec::new();
            if cutoff.is_some_and(|at| std::time::Instant::now() >= at) {
                return (alert, Err("the invocation's time ran out".to_owned()));
            }
            for sample in picked {
                match crate::ebs_direct::block(&ctx.sdk, &alert.snapshot_id, sample).await {
                    Ok(data) => bits.push(tripwire::bits_per_byte(&data)),
                    Err(e) => return (alert, Err(e.to_string())),
                }
            }
            (alert, Ok(bits))
        }))
        .buffered(ctx.config.max_concurrency.max(1))
        .collect()
        .await;
    let mut kept = Vec::new();
    let mut warnings = Vec::new();
    for (mut alert, bits) in judged {
        match bits {
            Ok(bits) if bits.is_empty() || tripwire::looks_encrypted(&bits) => {
                alert.sampled_millibits =
                    tripwire::mean(&bits).map(|b| (b * 1000.0).round() as u32);
                kept.push(alert);
            }
            Ok(bits) => warnings.push(format!(
                "{} volume {}: {} changed {:.1}% of the volume, but its {} sampled blocks \
                 average {:.2} bits per byte, not the near 8 of encrypted data: not flagged",
                alert.instance_id,
                alert.volume_id,
                alert.snapshot_id,
                f64::from(alert.changed_permille) / 10.0,
                bits.len(),
                tripwire::mean(&bits).unwrap_or_default()
            )),
            Err(why) => {
                warnings.push(format!(
                    "{}: its changed blocks could not be sampled ({why}); flagged on its size \
                     alone",
                    alert.snapshot_id
                ));
                kept.push(alert);
            }
        }
    }
    (kept, warnings)
}

/// The tripwire on EC2's completion event of a set: reads what the event's snapshots (and any
/// other unmeasured set of their instances) changed, with their instances' snapshots and locks
/// as history, so the scheduled run finds them measured. Its report covers those instances
/// only (`Tripwire::partial`).
pub(crate) async fn completed(
    ctx: &Context,
    mode: Mode,
    completed: &[Snapshot],
    now: OffsetDateTime,
) -> Measured {
    if ctx.config.tripwire.is_none() || completed.is_empty() {
        return Measured::default();
    }
    let instances: std::collections::BTreeSet<String> = completed
        .iter()
        .filter_map(|s| s.tag(tags::INSTANCE_ID).map(str::to_owned))
        .collect();
    let read = async {
        let own = crate::inventory::instances_snapshots(
            &ctx.ec2,
            &ctx.config.policy,
            &instances,
            ctx.page_size,
        )
        .await?;
        let ids: Vec<String> = own.iter().map(|s| s.id.clone()).collect();
        let locks = crate::inventory::locks_of(&ctx.ec2, &ids).await?;
        Ok::<_, Failure>((own, locks))
    };
    match read.await {
        Ok((own, locks)) => {
            let mut done = sweep(ctx, mode, None, &own, &locks, now).await;
            if let Some(tripwire) = &mut done.tripwire {
                tripwire.partial = true;
            }
            done
        }
        Err(failure) => Measured {
            failed: vec![failure],
            ..Measured::default()
        },
    }
}

const OUT_OF_TIME: &str = "SmartVault.OutOfTime";

fn out_of_time() -> Failure {
    Failure {
        subject: None,
        operation: "ListChangedBlocks".into(),
        code: OUT_OF_TIME.into(),
        message: "the invocation's time ran out".into(),
    }
}

fn permille(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 1000.0).round() as u32
}

/// What the tripwire half did, into the run's report.
pub(crate) fn merge(report: &mut crate::report::RunReport, measured: Measured) {
    report.tripwire = measured.tripwire;
    report.failed.extend(measured.failed);
    report.warnings.extend(measured.warnings);
}
