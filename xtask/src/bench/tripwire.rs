//! The tripwire part of `cargo xtask bench`: the same fleet backed up daily with and without
//! the tripwire, side by side, each set's completion event handled as EC2 sends it: the extra
//! requests and time reading what each set changed adds to a scheduled run and to each
//! completion event, and the monthly request cost per 1,000 volumes at AWS's list price.

use crate::aws::Aws;
use anyhow::{Result, bail};
use emulator::Emulator;
use function::context::{Context, FunctionError};
use function::handler;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Instant;
use time::{Duration, OffsetDateTime};

/// EBS direct `ListChangedBlocks`' list price, US dollars per request ($0.0006 per 1,000; the
/// EBS user guide's "Pricing for EBS direct APIs").
pub const LIST_PRICE_PER_REQUEST: f64 = 0.0006 / 1000.0;
/// The targets: at most this much longer a run, and this many dollars a month per 1,000
/// volumes backed up daily.
pub const TARGET_EXTRA_TIME: f64 = 0.10;
pub const TARGET_MONTHLY_USD: f64 = 1.0;
/// Each volume's data (blocks of 512 KiB) and its daily change.
const DATA_BLOCKS: u64 = 2_000;
const DAILY_CHANGE_BLOCKS: u64 = 160;
/// The runs measured, after the two that make and measure each volume's first sets.
const MEASURED_RUNS: i64 = 2;

/// One mode's steady-state day: its scheduled run, then every set's completion event.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DailyRun {
    /// Mean wall time of the measured scheduled runs.
    pub wall_ms: f64,
    /// Calls per scheduled run, by action (the EBS direct API's included).
    pub calls: BTreeMap<String, f64>,
    /// Mean wall time of one completion event's run.
    pub event_ms: f64,
    /// Calls per completion event, by action.
    pub event_calls: BTreeMap<String, f64>,
}

/// The tripwire section's figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TripwireReport {
    pub instances: usize,
    pub volumes: usize,
    pub without: DailyRun,
    pub with: DailyRun,
}

impl TripwireReport {
    fn calls(run: &DailyRun) -> f64 {
        run.calls.values().sum()
    }

    /// Calls the tripwire adds to a run.
    pub fn extra_calls(&self) -> f64 {
        Self::calls(&self.with) - Self::calls(&self.without)
    }

    /// How much longer a run with the tripwire takes.
    pub fn extra_time(&self) -> f64 {
        self.with.wall_ms / self.without.wall_ms.max(f64::MIN_POSITIVE) - 1.0
    }

    /// `ListChangedBlocks` requests per volume per day: the scheduled run's and its sets'
    /// completion events'.
    pub fn reads_per_volume(&self) -> f64 {
        let reads =
            |calls: &BTreeMap<String, f64>| calls.get("ListChangedBlocks").copied().unwrap_or(0.0);
        (reads(&self.with.calls) + reads(&self.with.event_calls) * self.instances as f64)
            / self.volumes.max(1) as f64
    }

    /// Calls the tripwire adds to each completion event.
    pub fn extra_event_calls(&self) -> f64 {
        let calls = |run: &DailyRun| run.event_calls.values().sum::<f64>();
        calls(&self.with) - calls(&self.without)
    }

    /// The monthly request cost per 1,000 volumes backed up daily (30 runs).
    pub fn monthly_usd_per_1000_volumes(&self) -> f64 {
        self.reads_per_volume() * 30.0 * 1000.0 * LIST_PRICE_PER_REQUEST
    }
}

async fn run_event(
    ctx: &Context,
    event: &serde_json::Value,
    at: OffsetDateTime,
) -> Result<function::report::RunReport> {
    match handler::handle(ctx, event, at).await {
        Ok(report) => Ok(report),
        Err(FunctionError::RunFailed(report)) => {
            bail!("the run reported failures: {:?}", report.failed)
        }
        Err(other) => bail!("the run failed: {other}"),
    }
}

/// Writes `count` blocks from `first` to every volume (text, `seed` apart per day).
fn write_all(
    emulator: &Emulator,
    volumes: &[String],
    first: u64,
    count: u64,
    seed: u64,
) -> Result<()> {
    let writes: Vec<serde_json::Value> = volumes
        .iter()
        .map(|volume| {
            serde_json::json!({
                "account": emulator::ACCOUNT_ID, "region": emulator::REGION, "volume_id": volume,
                "blocks": (0..count).map(|i| serde_json::json!([(first + i) % 16_384, "text", seed + i])).collect::<Vec<_>>(),
            })
        })
        .collect();
    emulator
        .set_config(&serde_json::json!({"smartvault": {"volume_writes": writes}}))
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// One mode: a fresh fleet of `instances` two-volume instances backed up daily, its data
/// changing 160 of 2,000 blocks a day; the runs after the first two are measured.
async fn daily(
    emulator: &Emulator,
    aws: &Aws,
    instances: usize,
    tripwire: bool,
) -> Result<(DailyRun, usize)> {
    let (topic, fleet) =
        crate::bench::common::fresh_fleet(emulator, aws, "smartvault-tripwire-bench", instances)
            .await?;
    let volumes: Vec<String> = fleet.iter().flat_map(|f| f.volume_ids.clone()).collect();
    write_all(emulator, &volumes, 0, DATA_BLOCKS, 0)?;
    let mut vars = HashMap::from([
        ("SNS_TOPIC_ARN", topic.clone()),
        ("DEPLOYMENT", "smartvault-bench".to_owned()),
        // The emulator has no token buckets: pace to a bucket that never makes a call wait.
        ("EC2_RATE_SHARE", "100".to_owned()),
        ("EC2_REFILL_PER_SECOND", "1000".to_owned()),
    ]);
    if tripwire {
        vars.insert("TRIPWIRE", r#"{"multiplier":1.5,"floor":0.2}"#.to_owned());
    }
    let config = function::config::Config::from_lookup(|name| vars.get(name).cloned())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = OffsetDateTime::now_utc();
    let mut run = DailyRun::default();
    for day in 0..2 + MEASURED_RUNS {
        write_all(
            emulator,
            &volumes,
            day as u64 * DAILY_CHANGE_BLOCKS,
            DAILY_CHANGE_BLOCKS,
            1_000_000 * (day as u64 + 1),
        )?;
        // A fresh invocation each day, as Lambda's daily runs are.
        let ctx = Context::new(&aws.sdk, config.clone());
        let measured = day >= 2;
        if measured {
            emulator.start_recording()?;
        }
        let at = start + Duration::days(day);
        let started = Instant::now();
        let report = run_event(&ctx, &serde_json::json!({"action": "manual-trigger"}), at).await?;
        if measured {
            run.wall_ms += started.elapsed().as_secs_f64() * 1000.0 / MEASURED_RUNS as f64;
            for action in emulator.stop_recording()? {
                *run.calls.entry(action).or_insert(0.0) += 1.0 / MEASURED_RUNS as f64;
            }
        }
        // Each set's completion event, as EC2 sends it once the set is complete.
        let mut sets: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for created in &report.created {
            if let Some(id) = &created.snapshot_id {
                sets.entry(&created.instance_id)
                    .or_default()
                    .push(id.clone());
            }
        }
        let events = sets.len().max(1) as f64 * MEASURED_RUNS as f64;
        if measured {
            emulator.start_recording()?;
        }
        let started = Instant::now();
        for ids in sets.values() {
            let event =
                emulator::events::snapshots_completed(emulator::ACCOUNT_ID, emulator::REGION, ids);
            run_event(&ctx, &event, at).await?;
        }
        if measured {
            run.event_ms += started.elapsed().as_secs_f64() * 1000.0 / events;
            for action in emulator.stop_recording()? {
                *run.event_calls.entry(action).or_insert(0.0) += 1.0 / events;
            }
        }
    }
    Ok((run, volumes.len()))
}

/// The same fleet's daily run without the tripwire, then with it.
pub async fn run(emulator: &Emulator, aws: &Aws, instances: usize) -> Result<TripwireReport> {
    let (without, volumes) = daily(emulator, aws, instances, false).await?;
    let (with, _) = daily(emulator, aws, instances, true).await?;
    Ok(TripwireReport {
        instances,
        volumes,
        without,
        with,
    })
}

/// The section of the benchmark report.
pub fn render(r: &TripwireReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Ransomware tripwire: {} instances ({} volumes), a daily run with and without it\n",
        r.instances, r.volumes
    );
    let _ = writeln!(
        out,
        "Each volume holds {DATA_BLOCKS} blocks of 512 KiB and changes {DAILY_CHANGE_BLOCKS} a \
         day; the mean of {MEASURED_RUNS} steady-state daily runs (after the two that make and \
         measure the first sets), each a fresh invocation, on the emulator.\n"
    );
    let _ = writeln!(out, "| | without | with the tripwire |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| scheduled run time | {:.0} ms | {:.0} ms |",
        r.without.wall_ms, r.with.wall_ms
    );
    let table = |out: &mut String, what: &str, pick: fn(&DailyRun) -> &BTreeMap<String, f64>| {
        let mut actions: Vec<&String> = pick(&r.without)
            .keys()
            .chain(pick(&r.with).keys())
            .collect();
        actions.sort();
        actions.dedup();
        for action in actions {
            let get = |run: &DailyRun| pick(run).get(action).copied().unwrap_or(0.0);
            let _ = writeln!(
                out,
                "| {action} calls {what} | {:.2} | {:.2} |",
                get(&r.without),
                get(&r.with)
            );
        }
    };
    table(&mut out, "per scheduled run", |run| &run.calls);
    let _ = writeln!(
        out,
        "| time per completion event | {:.1} ms | {:.1} ms |",
        r.without.event_ms, r.with.event_ms
    );
    table(&mut out, "per completion event", |run| &run.event_calls);
    let _ = writeln!(out, "\n| measure | figure | target | |");
    let _ = writeln!(out, "|---|---|---|---|");
    let _ = writeln!(
        out,
        "| extra requests per scheduled run | {:.0} | | |",
        r.extra_calls()
    );
    let _ = writeln!(
        out,
        "| extra requests per completion event (a set of 2 volumes) | {:.2} | | |",
        r.extra_event_calls()
    );
    let _ = writeln!(
        out,
        "| ListChangedBlocks requests per volume a day | {:.2} | | |",
        r.reads_per_volume()
    );
    let extra = r.extra_time();
    let _ = writeln!(
        out,
        "| extra scheduled run time | {:+.1}% | under {:.0}% | {} |",
        extra * 100.0,
        TARGET_EXTRA_TIME * 100.0,
        crate::bench::common::verdict(extra < TARGET_EXTRA_TIME)
    );
    let monthly = r.monthly_usd_per_1000_volumes();
    let _ = writeln!(
        out,
        "| request cost per 1,000 volumes a month (daily, $0.0006 per 1,000 ListChangedBlocks) | ${monthly:.4} | under ${TARGET_MONTHLY_USD:.2} | {} |",
        crate::bench::common::verdict(monthly < TARGET_MONTHLY_USD)
    );
    out
}
