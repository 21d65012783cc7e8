//! The large-fleet part of `cargo xtask bench`: a fleet far past EC2's burst, through EC2's
//! token buckets (time-scaled by the fault proxy), SmartVault's chain of invocations with a
//! short per-invocation deadline against the seed with the same (scaled) 15-minute budget.

use crate::aws::inbox::Inbox;
use crate::aws::{Aws, sdk_error};
use crate::build::local_runtime::{self, Ending};
use anyhow::{Context, Result};
use emulator::Emulator;
use emulator::fleet;
use emulator::proxy::{FaultProxy, Faults};
use function::pacing::{BucketSize, EC2_REFILL_PER_SECOND};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Lambda's longest invocation: the seed's whole budget, time-scaled like the buckets.
const LAMBDA_BUDGET: Duration = Duration::from_secs(15 * 60);
/// The target: the chain's total time within this factor of the bucket's theoretical minimum.
pub const TARGET_RATIO: f64 = 1.15;

/// The large-fleet settings of a benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetOptions {
    /// Instances in the large fleet (two volumes each); 0 leaves the section out.
    #[arg(long, default_value_t = 2000)]
    pub fleet_instances: usize,
    /// How many times faster than EC2's the proxy's buckets refill (and the budgets shrink).
    /// What does not scale (the safety margin, reading the inventory, a cold start) weighs more
    /// the higher this is.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// SmartVault's deadline per invocation, in seconds: short, so the run takes several links.
    #[arg(long, default_value_t = 90)]
    pub link_seconds: u64,
}

/// What one contender did with the large fleet.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FleetContender {
    pub volumes_protected: usize,
    pub seconds: f64,
    pub invocations: usize,
    pub summaries: usize,
    /// Calls EC2 answered with a throttle.
    pub throttled: u64,
    /// Volumes snapshotted more than once.
    pub duplicated: usize,
    /// How the run ended.
    pub ending: String,
}

/// The large-fleet section's figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FleetReport {
    pub instances: usize,
    pub volumes: usize,
    pub time_scale: f64,
    pub link_seconds: u64,
    pub seed_budget_seconds: f64,
    pub minimum_seconds: f64,
    pub seed: FleetContender,
    pub smartvault: FleetContender,
    /// How long one read of the whole inventory took from the emulator after the run (what
    /// each late link pays before it can start a write).
    pub inventory_seconds: f64,
}

impl FleetReport {
    pub fn ratio_to_minimum(&self) -> f64 {
        self.smartvault.seconds / self.minimum_seconds
    }

    /// Volumes protected per second of bucket time (wall time times the time scale).
    pub fn per_bucket_second(&self, contender: &FleetContender) -> f64 {
        contender.volumes_protected as f64 / (contender.seconds * self.time_scale)
    }
}

/// Snapshots per volume id, split by whether SmartVault's managed-by tag is on them.
#[derive(Debug, Default)]
struct PerVolume {
    smartvault: BTreeMap<String, usize>,
    others: BTreeMap<String, usize>,
}

async fn snapshots_per_volume(aws: &Aws) -> Result<PerVolume> {
    let mut pages = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .into_paginator()
        .send();
    let mut counted = PerVolume::default();
    while let Some(page) = pages.next().await {
        for snapshot in page.map_err(sdk_error)?.snapshots() {
            let managed = snapshot
                .tags()
                .iter()
                .any(|t| t.key() == Some(function::tags::MANAGED_BY));
            let volume = snapshot.volume_id().unwrap_or_default().to_owned();
            *if managed {
                &mut counted.smartvault
            } else {
                &mut counted.others
            }
            .entry(volume)
            .or_insert(0) += 1;
        }
    }
    Ok(counted)
}

fn throttled(proxy: &FaultProxy) -> u64 {
    proxy.counts().throttled.values().sum()
}

/// Runs the seed, then SmartVault, on one fleet, each through fresh time-scaled buckets.
pub async fn run(
    emulator: &Emulator,
    aws: &Aws,
    bootstrap: &Path,
    seed: &Path,
    options: &FleetOptions,
) -> Result<FleetReport> {
    let scale = options.time_scale;
    anyhow::ensure!(scale >= 1.0, "--time-scale must be at least 1");
    emulator.reset()?;
    eprintln!(
        "large fleet: launching {} instances with two volumes each",
        options.fleet_instances
    );
    fleet::launch_all(&aws.ec2, &fleet::two_volume_fleet(options.fleet_instances))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let topic = aws_sdk_sns::Client::new(&aws.sdk)
        .create_topic()
        .name("smartvault-fleet")
        .send()
        .await
        .map_err(sdk_error)?
        .topic_arn()
        .unwrap_or_default()
        .to_owned();
    // With a fleet this size the emulator's own record of messages is too slow to read.
    let inbox = Inbox::subscribe(aws, "smartvault-fleet-inbox", &topic).await?;
    let faults = Faults {
        throttle_time_scale: Some(scale),
        ..Faults::default()
    };
    let bucket = BucketSize::share_of_ec2(EC2_REFILL_PER_SECOND * scale, 1.0);
    let mut report = FleetReport {
        instances: options.fleet_instances,
        volumes: 2 * options.fleet_instances,
        time_scale: scale,
        link_seconds: options.link_seconds,
        seed_budget_seconds: LAMBDA_BUDGET.as_secs_f64() / scale,
        minimum_seconds: bucket.minimum_time(options.fleet_instances).as_secs_f64(),
        ..FleetReport::default()
    };

    // The seed: one invocation with the whole (scaled) 15 minutes.
    eprintln!(
        "large fleet: the seed, {:.0} s budget",
        report.seed_budget_seconds
    );
    let proxy = FaultProxy::start(emulator.port(), faults.clone())?;
    let started = Instant::now();
    let mut child =
        crate::bench::common::seed_command(seed, &topic, &emulator.env_through(&proxy.endpoint()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("failed to run the seed under python")?;
    let budget = Duration::from_secs_f64(report.seed_budget_seconds);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > budget {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    report.seed.seconds = started.elapsed().as_secs_f64();
    report.seed.invocations = 1;
    report.seed.throttled = throttled(&proxy);
    report.seed.ending = match status {
        Some(s) if s.success() => "returned".into(),
        Some(_) => "raised an error".into(),
        None => "stopped at its deadline".into(),
    };
    drop(proxy);
    let seeds = snapshots_per_volume(aws).await?.others;
    report.seed.volumes_protected = seeds.len();
    report.seed.duplicated = seeds.values().filter(|n| **n > 1).count();
    report.seed.summaries = inbox.drain().await?.len();

    // SmartVault: links of `link_seconds` each, through fresh buckets.
    eprintln!(
        "large fleet: SmartVault, {} s per invocation",
        options.link_seconds
    );
    let proxy = FaultProxy::start(emulator.port(), faults)?;
    let mut env = emulator.env_through(&proxy.endpoint());
    let refill = (EC2_REFILL_PER_SECOND * scale).to_string();
    env.extend(
        [
            ("SNS_TOPIC_ARN", topic.as_str()),
            ("DEPLOYMENT", "smartvault-fleet"),
            ("EC2_RATE_SHARE", "100"),
            ("EC2_REFILL_PER_SECOND", refill.as_str()),
            ("MIN_INTERVAL_MINUTES", "0"),
            ("AWS_LAMBDA_LOG_LEVEL", "warn"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let started = Instant::now();
    let last = tokio::task::block_in_place(|| {
        local_runtime::invoke(&local_runtime::Run {
            binary: bootstrap,
            function_name: "smartvault-fleet",
            memory_mb: 256,
            timeout: Duration::from_secs(options.link_seconds),
            region: emulator::REGION,
            account_id: emulator::ACCOUNT_ID,
            env,
            event: &serde_json::json!({"action": "backup"}),
            logs: local_runtime::Logs::Raw,
        })
    })?;
    report.smartvault.seconds = started.elapsed().as_secs_f64();
    report.smartvault.invocations = last.links;
    report.smartvault.throttled = throttled(&proxy);
    // However the run ended, what it protected is counted and reported.
    report.smartvault.ending = match &last.ending {
        Ending::Response(_) => "succeeded".into(),
        Ending::Error(e) => format!("failed: {}", e["errorType"].as_str().unwrap_or("?")),
        Ending::Timeout => format!(
            "invocation {} timed out (the emulator's inventory read outlasted it)",
            last.links
        ),
        Ending::InitError(e) | Ending::Exited(e) => format!("did not start: {e}"),
    };
    let ours = snapshots_per_volume(aws).await?.smartvault;
    report.smartvault.volumes_protected = ours.len();
    report.smartvault.duplicated = ours.values().filter(|n| **n > 1).count();
    report.smartvault.summaries = inbox.drain().await?.len();
    inbox.remove().await?;
    report.inventory_seconds = inventory_time(aws).await?;
    Ok(report)
}

/// One read of the whole inventory as a link does it, straight from the emulator.
async fn inventory_time(aws: &Aws) -> Result<f64> {
    let policy = function::model::Policy {
        deployment: "smartvault-fleet".into(),
        backup_tag_key: "Backup".into(),
        backup_tag_value: "true".into(),
        schedules: function::model::Policy::single_schedule(7, 1),
        exclude_boot_volume: false,
        min_interval: time::Duration::ZERO,
        copies: Vec::new(),
    };
    let options = function::model::RunOptions::whole_fleet(
        function::model::Job::Backup,
        function::model::Phase::LaterLink,
    );
    let started = Instant::now();
    function::inventory::read(
        &aws.ec2,
        &policy,
        &options,
        function::inventory::DEFAULT_PAGE_SIZE,
    )
    .await
    .map_err(|f| anyhow::anyhow!("reading the inventory failed: {f}"))?;
    Ok(started.elapsed().as_secs_f64())
}

/// The section as Markdown.
pub fn render(r: &FleetReport) -> String {
    let mut out = String::new();
    let (seed, ours) = (&r.seed, &r.smartvault);
    let _ = writeln!(
        out,
        "\n## Large fleet: {} instances ({} volumes) through EC2's token buckets\n",
        r.instances, r.volumes
    );
    let _ = writeln!(
        out,
        "The fault proxy enforces EC2's documented buckets (CreateSnapshots and DeleteSnapshot: \
         100 at once, then 5 per second), time-scaled by {} (1 is EC2's own rate), and every \
         budget is scaled the same way: the seed gets Lambda's 15 minutes as {:.0} s; SmartVault \
         paces itself to the whole bucket and gets {} s per invocation, so it must hand its run \
         on. Bucket time is wall time times {}.\n",
        r.time_scale, r.seed_budget_seconds, r.link_seconds, r.time_scale
    );
    let _ = writeln!(out, "| | seed | SmartVault |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| volumes protected | {} of {} | {} of {} |",
        seed.volumes_protected, r.volumes, ours.volumes_protected, r.volumes
    );
    let _ = writeln!(
        out,
        "| volumes snapshotted more than once | {} | {} |",
        seed.duplicated, ours.duplicated
    );
    let _ = writeln!(
        out,
        "| invocations | {} | {} |",
        seed.invocations, ours.invocations
    );
    let _ = writeln!(
        out,
        "| summaries published | {} | {} |",
        seed.summaries, ours.summaries
    );
    let _ = writeln!(
        out,
        "| throttled answers | {} | {} |",
        seed.throttled, ours.throttled
    );
    let _ = writeln!(out, "| how it ended | {} | {} |", seed.ending, ours.ending);
    let _ = writeln!(
        out,
        "| run time | {:.1} s | {:.1} s |",
        seed.seconds, ours.seconds
    );
    let _ = writeln!(
        out,
        "| volumes protected per second of bucket time | {:.2} | {:.2} |",
        r.per_bucket_second(seed),
        r.per_bucket_second(ours)
    );
    let _ = writeln!(
        out,
        "| the bucket's theoretical minimum for the fleet | | {:.1} s |",
        r.minimum_seconds
    );
    let _ = writeln!(
        out,
        "| SmartVault's run time over that minimum (target at most {TARGET_RATIO}) | | {:.2} ({}) |",
        r.ratio_to_minimum(),
        crate::bench::common::verdict(r.ratio_to_minimum() <= TARGET_RATIO)
    );
    let _ = writeln!(
        out,
        "| one read of the whole inventory from the emulator, after the run (paid by every link) | | {:.1} s |",
        r.inventory_seconds
    );
    if seed.throttled == 0 && seed.volumes_protected < r.volumes {
        let _ = writeln!(
            out,
            "\nThe seed was never throttled and still protected {} of {} volumes: it reads one \
             page of `DescribeInstances` (it never paginates) and snapshots only the first volume \
             of each instance it sees, so it stopped early; its rate per second is that of a run \
             that did a fraction of the work.",
            seed.volumes_protected, r.volumes
        );
    }
    let _ = writeln!(
        out,
        "\nBetween links no write is made and EC2's bucket refills (up to its burst of 100, \
         {:.0} s of refill), so a link's cold start and inventory read (about {:.0} s for the whole \
         fleet on this emulator) cost the run little; what remains over the minimum is mostly \
         the safety margin each link keeps before its deadline.",
        100.0 / (EC2_REFILL_PER_SECOND * r.time_scale),
        r.inventory_seconds
    );
    out
}
