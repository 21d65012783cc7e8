//! The copies part of `cargo xtask bench`: a fleet backed up, then copied to two other regions
//! by a sweep and by EC2's completion events, with every API call counted; and the cost of a
//! sweep that finds nothing missing.

use crate::aws::Aws;
use anyhow::{Result, bail};
use emulator::Emulator;
use function::context::{Context, FunctionError};
use function::handler;
use function::report::RunReport;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

/// The EC2 actions that change anything, of those SmartVault calls.
const EC2_WRITES: [&str; 4] = [
    "CreateSnapshots",
    "CopySnapshot",
    "CreateTags",
    "DeleteSnapshot",
];

/// The copy regions of the benchmark.
const REGIONS: [&str; 2] = ["us-west-2", "eu-west-1"];

/// The copies section's figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    pub instances: usize,
    /// Snapshots the backup made (each to be copied to every region).
    pub snapshots: usize,
    /// Copies one sweep started per region when nothing had been copied yet.
    pub sweep_started: BTreeMap<String, usize>,
    /// Copies per region once every set's completion event was handled.
    pub copies_after_events: BTreeMap<String, usize>,
    /// API calls of the sweep and the completion events together, by action.
    pub copy_calls: BTreeMap<String, usize>,
    /// How long handling every set's completion event took, in milliseconds per event.
    pub ms_per_event: f64,
    /// API calls of a sweep that finds every copy in place, by action.
    pub idle_sweep_calls: BTreeMap<String, usize>,
}

impl CopyReport {
    fn copies(&self) -> usize {
        self.copies_after_events.values().sum()
    }

    /// `CopySnapshot` calls per copy made.
    pub fn copy_calls_per_copy(&self) -> f64 {
        calls(&self.copy_calls, "CopySnapshot") as f64 / self.copies().max(1) as f64
    }

    /// EC2 write calls of the idle sweep.
    pub fn idle_sweep_writes(&self) -> usize {
        EC2_WRITES
            .iter()
            .map(|action| calls(&self.idle_sweep_calls, action))
            .sum()
    }
}

fn calls(counts: &BTreeMap<String, usize>, action: &str) -> usize {
    counts.get(action).copied().unwrap_or(0)
}

fn count(actions: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for action in actions {
        *counts.entry(action).or_insert(0) += 1;
    }
    counts
}

async fn run_event(ctx: &Context, event: serde_json::Value) -> Result<RunReport> {
    match handler::handle(ctx, &event, time::OffsetDateTime::now_utc()).await {
        Ok(report) => Ok(report),
        Err(FunctionError::RunFailed(report)) => {
            bail!("the run reported failures: {:?}", report.failed)
        }
        Err(other) => bail!("the run failed: {other}"),
    }
}

/// Backs up `instances` two-volume instances, then copies them to two regions: one sweep, then
/// each set's completion event, then a sweep with nothing left to copy.
pub async fn run(emulator: &Emulator, aws: &Aws, instances: usize) -> Result<CopyReport> {
    let (topic, _) =
        crate::bench::common::fresh_fleet(emulator, aws, "smartvault-copy-bench", instances)
            .await?;
    let copies = serde_json::to_string(
        &REGIONS
            .iter()
            .map(|r| serde_json::json!({"region": r}))
            .collect::<Vec<_>>(),
    )?;
    let vars = HashMap::from([
        ("SNS_TOPIC_ARN", topic.clone()),
        ("DEPLOYMENT", "smartvault-bench".to_owned()),
        ("COPIES", copies),
        // The emulator has no token buckets: pace to a bucket that never makes a call wait.
        ("EC2_RATE_SHARE", "100".to_owned()),
        ("EC2_REFILL_PER_SECOND", "1000".to_owned()),
    ]);
    let config = function::config::Config::from_lookup(|name| vars.get(name).cloned())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = Context::new(&aws.sdk, config);
    let backup = run_event(&ctx, serde_json::json!({"action": "backup"})).await?;
    let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for created in &backup.created {
        sets.entry(created.instance_id.clone())
            .or_default()
            .push(created.snapshot_id.clone().unwrap_or_default());
    }

    emulator.start_recording()?;
    let sweep = run_event(&ctx, serde_json::json!({"action": "cleanup"})).await?;
    let started = Instant::now();
    for ids in sets.values() {
        run_event(&ctx, completion_event(ids)).await?;
    }
    let ms_per_event = started.elapsed().as_secs_f64() * 1000.0 / sets.len().max(1) as f64;
    let copy_calls = count(emulator.stop_recording()?);

    emulator.start_recording()?;
    run_event(&ctx, serde_json::json!({"action": "cleanup"})).await?;
    let idle_sweep_calls = count(emulator.stop_recording()?);

    let mut copies_after_events = BTreeMap::new();
    for region in REGIONS {
        let copies =
            crate::aws::snapshots::copies(aws, region, "smartvault-bench", emulator::REGION)
                .await?;
        copies_after_events.insert(region.to_owned(), copies.len());
    }
    Ok(CopyReport {
        instances,
        snapshots: backup.created.len(),
        sweep_started: sweep
            .copies
            .iter()
            .map(|c| (c.region.clone(), c.started))
            .collect(),
        copies_after_events,
        copy_calls,
        ms_per_event,
        idle_sweep_calls,
    })
}

/// EC2's completion event of one set.
fn completion_event(ids: &[String]) -> serde_json::Value {
    let arn = |id: &str| format!("arn:aws:ec2::{}:snapshot/{id}", emulator::REGION);
    serde_json::json!({
        "version": "0", "id": "bench", "source": function::event::COMPLETION_SOURCE,
        "detail-type": function::event::COMPLETION_DETAIL_TYPE,
        "account": emulator::ACCOUNT_ID, "time": "2026-11-26T01:00:00Z",
        "region": emulator::REGION, "resources": ids.iter().map(|id| arn(id)).collect::<Vec<_>>(),
        "detail": {
            "event": "createSnapshots", "result": "succeeded",
            "snapshots": ids.iter().map(|id| serde_json::json!({
                "snapshot_id": arn(id), "status": "completed"
            })).collect::<Vec<_>>()
        }
    })
}

/// The section of the benchmark report.
pub fn render(r: &CopyReport) -> String {
    let mut out = String::new();
    let regions = r.copies_after_events.len();
    let _ = writeln!(
        out,
        "\n## Copies to other regions: {} instances ({} snapshots) to {regions} regions\n",
        r.instances, r.snapshots
    );
    let _ = writeln!(
        out,
        "On the emulator, whose copies complete at once; on AWS a copy takes minutes to hours, \
         and EC2 runs at most 20 per destination region.\n"
    );
    let _ = writeln!(out, "| measure | figure | target |");
    let _ = writeln!(out, "|---|---|---|");
    for (region, started) in &r.sweep_started {
        let _ = writeln!(
            out,
            "| copies one sweep starts in {region}, none copied yet | {started} of {} | at most {} (EC2's concurrent copies) |",
            r.snapshots,
            function::copies::MAX_CONCURRENT_COPIES
        );
    }
    for (region, copies) in &r.copies_after_events {
        let _ = writeln!(
            out,
            "| copies in {region} after every set's completion event | {copies} of {} | all, once |",
            r.snapshots
        );
    }
    let _ = writeln!(
        out,
        "| CopySnapshot calls per copy | {:.2} | 1.00 |",
        r.copy_calls_per_copy()
    );
    let _ = writeln!(
        out,
        "| CreateTags calls for copies | {} | 0 (tagged at creation) |",
        calls(&r.copy_calls, "CreateTags")
    );
    let _ = writeln!(
        out,
        "| time per completion event (copy run) | {:.0} ms | |",
        r.ms_per_event
    );
    let reads: Vec<String> = r
        .idle_sweep_calls
        .iter()
        .map(|(action, n)| format!("{action} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "| a sweep with nothing missing: every call (the summary's Publish and the run-mark read included) | {} | EC2 reads only |",
        reads.join(", ")
    );
    let _ = writeln!(
        out,
        "| a sweep with nothing missing: EC2 write calls | {} | 0 |",
        r.idle_sweep_writes()
    );
    out
}
