//! The tripwire's half of a run, at the edges: reads what each new set changed (EBS direct
//! `ListChangedBlocks`, against the snapshot before it on its volume), records it on the
//! snapshot, and judges each volume's new sets against its own history with the pure rule.

use crate::changes::{self, Measure};
use crate::context::Context;
use crate::execute::{self, Deadline, Mode, Writes};
use crate::model::Snapshot;
use crate::report::{Failure, Tripwire, TripwireAlert};
use crate::tags;
use crate::tripwire::{self, Verdict};
use futures_util::{StreamExt, stream};
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
    now: OffsetDateTime,
) -> Measured {
    let mut done = Measured::default();
    let Some(sensitivity) = ctx.config.tripwire else {
        return done;
    };
    let deployment = &ctx.config.policy.deployment;
    let measures = changes::to_measure(own, deployment, MAX_MEASURES_PER_RUN, now);
    let cutoff = deadline.map(Deadline::cutoff);
    let reads: Vec<(Measure, Result<u64, Failure>)> =
        stream::iter(measures.into_iter().map(|measure| async move {
            if cutoff.is_some_and(|at| std::time::Instant::now() >= at) {
                return (measure, Err(out_of_time()));
            }
            let read = crate::ebs_direct::changed_blocks(
                &ctx.sdk,
                measure.previous.as_deref(),
                &measure.snapshot_id,
            )
            .await
            .map_err(|e| Failure {
                subject: Some(crate::plan::Subject::Snapshot(measure.snapshot_id.clone())),
                operation: "ListChangedBlocks".into(),
                code: e.code,
                message: e.message,
            });
            (measure, read)
        }))
        .buffered(ctx.config.max_concurrency.max(1))
        .collect()
        .await;
    let mut recorded: Vec<(Measure, Vec<(String, String)>)> = Vec::new();
    let mut left = 0;
    for (measure, read) in reads {
        match read {
            Ok(blocks) => {
                let record = changes::record(&measure, blocks);
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
    let writes = Writes {
        ec2: &ctx.ec2,
        pacer: &ctx.pacer,
        deadline,
        limit: ctx.config.max_concurrency,
        mode,
        region: None,
    };
    let tagged = execute::tag_snapshots(
        writes,
        recorded
            .iter()
            .map(|(m, tags)| (m.snapshot_id.clone(), tags.clone()))
            .collect(),
    )
    .await;
    done.failed.extend(tagged.failed);
    // Judged with what was just read, as if already recorded (a failed tag is read again).
    let records: std::collections::BTreeMap<&str, &Vec<(String, String)>> = recorded
        .iter()
        .map(|(m, record)| (m.snapshot_id.as_str(), record))
        .collect();
    let mut seen: Vec<Snapshot> = own.to_vec();
    for snapshot in &mut seen {
        if let Some(record) = records.get(snapshot.id.as_str()) {
            snapshot.tags.extend(record.iter().cloned());
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
            threshold,
            ..
        } = tripwire::judge(&before, fraction, sensitivity)
        {
            let instance_id = seen
                .iter()
                .find(|s| s.id == measure.snapshot_id)
                .and_then(|s| s.tag(tags::INSTANCE_ID))
                .unwrap_or_default()
                .to_owned();
            tracing::warn!(instance_id = %instance_id, volume_id = %measure.volume_id, snapshot_id = %measure.snapshot_id, fraction, "tripwire");
            alerts.push(TripwireAlert {
                instance_id,
                volume_id: measure.volume_id.clone(),
                snapshot_id: measure.snapshot_id.clone(),
                changed_permille: permille(fraction),
                usual_peak_permille: permille(usual_peak),
                threshold_permille: permille(threshold),
            });
        }
    }
    if !alerts.is_empty() {
        done.warnings.push(format!(
            "TRIPWIRE: {} set(s) changed far more of their volume than its history makes normal; \
             see the tripwire section",
            alerts.len()
        ));
    }
    done.tripwire = Some(Tripwire {
        measured: tagged.done.len(),
        alerts,
    });
    done
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
