//! The consistency part of `cargo xtask bench`: the same fleet's scheduled backup run
//! crash-consistent and application-consistent (the stack's Linux document's pre and post
//! stages through Systems Manager, in batches of 50), side by side: the extra time and the
//! extra requests a consistent run costs, and whether every instance got its stages in order.

use crate::aws::Aws;
use anyhow::{Result, bail, ensure};
use emulator::Emulator;
use function::context::{Context, FunctionError};
use function::handler;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Instant;
use time::OffsetDateTime;

/// The runs measured of each mode (a fresh fleet and invocation each).
const MEASURED_RUNS: usize = 2;
/// The document the consistent runs send, as a stack named `smartvault-bench` ships it.
const DOCUMENT: &str = "smartvault-bench-linux-freeze";

/// One mode's scheduled run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModeRun {
    /// Mean wall time of the measured runs.
    pub wall_ms: f64,
    /// Calls per run, by action.
    pub calls: BTreeMap<String, f64>,
    /// Instances whose set was made application-consistent, per run.
    pub achieved: f64,
    pub volumes_snapshotted: f64,
}

/// The consistency section's figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConsistencyReport {
    pub instances: usize,
    /// How often the function reads a command's invocations while it waits (Lambda's).
    pub poll_ms: u128,
    pub crash: ModeRun,
    pub script: ModeRun,
}

impl ConsistencyReport {
    /// How much longer a consistent run takes.
    pub fn extra_time(&self) -> f64 {
        self.script.wall_ms / self.crash.wall_ms.max(f64::MIN_POSITIVE) - 1.0
    }

    pub fn extra_ms(&self) -> f64 {
        self.script.wall_ms - self.crash.wall_ms
    }

    pub fn extra_calls(&self) -> f64 {
        self.script.calls.values().sum::<f64>() - self.crash.calls.values().sum::<f64>()
    }
}

/// One mode: a fresh fleet of `instances` two-volume instances and one scheduled run, measured
/// `MEASURED_RUNS` times.
async fn mode(
    emulator: &Emulator,
    aws: &Aws,
    instances: usize,
    consistent: bool,
) -> Result<(ModeRun, u128)> {
    let mut run = ModeRun::default();
    let mut poll_ms = 0;
    for _ in 0..MEASURED_RUNS {
        let (topic, _) = crate::bench::common::fresh_fleet(
            emulator,
            aws,
            "smartvault-consistency-bench",
            instances,
        )
        .await?;
        emulator.create_stage_document(emulator::ACCOUNT_ID, emulator::REGION, DOCUMENT)?;
        let rule = if consistent {
            r#","consistency":{"mode":"script","timeout_seconds":30}"#
        } else {
            ""
        };
        let vars = HashMap::from([
            ("SNS_TOPIC_ARN", topic.clone()),
            ("DEPLOYMENT", "smartvault-bench".to_owned()),
            (
                "SCHEDULES",
                format!(r#"[{{"name":"daily","retention_days":7,"keep_last":1{rule}}}]"#),
            ),
            ("FREEZE_DOCUMENT", DOCUMENT.to_owned()),
            // The emulator has no token buckets: pace to a bucket that never makes a call wait.
            ("EC2_RATE_SHARE", "100".to_owned()),
            ("EC2_REFILL_PER_SECOND", "1000".to_owned()),
        ]);
        let config = function::config::Config::from_lookup(|name| vars.get(name).cloned())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // A fresh invocation, with Lambda's own poll interval.
        let ctx = Context::new(&aws.sdk, config);
        poll_ms = ctx.poll.as_millis();
        emulator.start_recording()?;
        let started = Instant::now();
        let event = serde_json::json!({"action": "scheduled", "schedule": "daily"});
        let report = match handler::handle(&ctx, &event, OffsetDateTime::now_utc()).await {
            Ok(report) => report,
            Err(FunctionError::RunFailed(report)) => {
                bail!("the run reported failures: {:?}", report.failed)
            }
            Err(other) => bail!("the run failed: {other}"),
        };
        run.wall_ms += started.elapsed().as_secs_f64() * 1000.0 / MEASURED_RUNS as f64;
        for action in emulator.stop_recording()? {
            *run.calls.entry(action).or_insert(0.0) += 1.0 / MEASURED_RUNS as f64;
        }
        run.volumes_snapshotted += report.created.len() as f64 / MEASURED_RUNS as f64;
        if let Some(consistency) = &report.consistency {
            run.achieved += consistency.achieved as f64 / MEASURED_RUNS as f64;
        }
    }
    Ok((run, poll_ms))
}

/// The same fleet's scheduled run crash-consistent, then application-consistent.
pub async fn run(emulator: &Emulator, aws: &Aws, instances: usize) -> Result<ConsistencyReport> {
    let (crash, _) = mode(emulator, aws, instances, false).await?;
    let (script, poll_ms) = mode(emulator, aws, instances, true).await?;
    ensure!(
        script.volumes_snapshotted == crash.volumes_snapshotted,
        "the consistent run made {} snapshots, the crash-consistent one {}",
        script.volumes_snapshotted,
        crash.volumes_snapshotted
    );
    Ok(ConsistencyReport {
        instances,
        poll_ms,
        crash,
        script,
    })
}

/// The section of the benchmark report.
pub fn render(r: &ConsistencyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Application-consistent sets: {} instances, a scheduled run crash-consistent and with the Linux document's stages\n",
        r.instances
    );
    let _ = writeln!(
        out,
        "Two volumes each; the mean of {MEASURED_RUNS} runs of each mode, a fresh fleet and \
         invocation each, on the emulator, whose Systems Manager ends every stage at once: the \
         extra time is the function's own (batches of 50, one at a time, each command read \
         after 250 ms and then less often up to every {} ms as in Lambda, its sets made, its \
         post stage sent), not a script's.\n",
        r.poll_ms
    );
    let _ = writeln!(out, "| | crash | script |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| run time | {:.0} ms | {:.0} ms |",
        r.crash.wall_ms, r.script.wall_ms
    );
    let _ = writeln!(
        out,
        "| snapshots made | {:.0} | {:.0} |",
        r.crash.volumes_snapshotted, r.script.volumes_snapshotted
    );
    let _ = writeln!(
        out,
        "| instances application-consistent | 0 | {:.0} of {} |",
        r.script.achieved, r.instances
    );
    let mut actions: Vec<&String> = r.crash.calls.keys().chain(r.script.calls.keys()).collect();
    actions.sort();
    actions.dedup();
    for action in actions {
        let get = |run: &ModeRun| run.calls.get(action).copied().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "| {action} calls | {:.0} | {:.0} |",
            get(&r.crash),
            get(&r.script)
        );
    }
    let _ = writeln!(out, "\n| measure | figure |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(
        out,
        "| extra run time | {:+.0} ms ({:+.1}%) |",
        r.extra_ms(),
        r.extra_time() * 100.0
    );
    let _ = writeln!(
        out,
        "| extra time per instance | {:.1} ms |",
        r.extra_ms() / r.instances.max(1) as f64
    );
    let _ = writeln!(out, "| extra requests per run | {:.0} |", r.extra_calls());
    out
}
