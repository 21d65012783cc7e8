//! `cargo xtask bench`: SmartVault against the seed's Python Lambda, side by side on one
//! emulator: backup run, cold start, package, and no-op redeploy. Prints a table and writes it.

pub mod common;
pub mod consistency;
pub mod copy;
pub mod fleet;
pub mod tripwire;

use crate::aws::Aws;
use crate::build::local_runtime::{self, Ending};
use anyhow::{Context, Result, bail};
use common::{seed_command, verdict};
use emulator::Emulator;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Options of one benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Instances in the backup fleet (two volumes each).
    #[arg(long, default_value_t = 300)]
    pub instances: usize,
    /// Repetitions of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Where to write the report.
    #[arg(long, default_value_os_t = emulator::workspace_root().join("docs").join("benchmarks.md"))]
    pub report: PathBuf,
    #[command(flatten)]
    pub fleet: fleet::FleetOptions,
    /// Instances (two volumes each) whose snapshots are copied to two other regions; 0 leaves
    /// the section out.
    #[arg(long, default_value_t = 300)]
    pub copy_instances: usize,
    /// Instances (two volumes each) backed up daily with and without the ransomware tripwire;
    /// 0 leaves the section out.
    #[arg(long, default_value_t = 300)]
    pub tripwire_instances: usize,
    /// Instances (two volumes each) backed up crash-consistent and with the Linux document's
    /// pre and post stages; 0 leaves the section out.
    #[arg(long, default_value_t = 300)]
    pub consistency_instances: usize,
    /// Measure the host's debug build of `bootstrap` instead of the Lambda build: quick (no
    /// release compile), for the test that keeps the benchmark from rotting; its cold-start
    /// and memory figures are not the product's, and the release zip is not measured.
    #[arg(long)]
    pub host_build: bool,
}

/// One contender's backup run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackupRun {
    pub wall_ms: f64,
    /// The process's peak resident memory during the run.
    pub peak_mib: f64,
    pub volumes_snapshotted: usize,
    pub calls: BTreeMap<String, usize>,
}

impl BackupRun {
    const WRITES: &'static [&'static str] = &[
        "CreateSnapshot",
        "CreateSnapshots",
        "CreateTags",
        "DeleteSnapshot",
    ];

    pub fn writes(&self) -> usize {
        Self::WRITES
            .iter()
            .map(|w| self.calls.get(*w).copied().unwrap_or(0))
            .sum()
    }

    pub fn writes_per_volume(&self) -> f64 {
        self.writes() as f64 / self.volumes_snapshotted.max(1) as f64
    }

    pub fn ms_per_volume(&self) -> f64 {
        self.wall_ms / self.volumes_snapshotted.max(1) as f64
    }
}

/// A cold start: process start to first response, and peak memory.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ColdStart {
    pub first_response_ms: f64,
    pub init_ms: f64,
    pub peak_mib: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_run(runs: Vec<BackupRun>) -> BackupRun {
    let mut runs = runs;
    runs.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
    runs.get(runs.len() / 2).cloned().unwrap_or_default()
}

fn median_cold(starts: &[ColdStart]) -> ColdStart {
    ColdStart {
        first_response_ms: median(starts.iter().map(|s| s.first_response_ms).collect()),
        init_ms: median(starts.iter().map(|s| s.init_ms).collect()),
        peak_mib: median(starts.iter().map(|s| s.peak_mib).collect()),
    }
}

fn seed_path() -> Result<PathBuf> {
    let path = emulator::workspace_root()
        .join("..")
        .join("shared")
        .join("seed")
        .join("lambda_function.py");
    anyhow::ensure!(
        path.is_file(),
        "the seed's Lambda is not at `{}`; the benchmark reads it from ../shared/seed beside the repository",
        path.display()
    );
    Ok(path)
}

/// Everything one benchmark needs, around one emulator.
struct Bench {
    emulator: Emulator,
    aws: Aws,
    bootstrap: PathBuf,
    bootstrap_kind: &'static str,
    seed: PathBuf,
}

impl Bench {
    fn emulator_env(&self) -> Vec<(String, String)> {
        self.emulator
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// Fresh state, a topic, and `instances` tagged instances with two volumes each.
    async fn fresh_fleet(&self, instances: usize) -> Result<String> {
        let (topic, _) = crate::bench::common::fresh_fleet(
            &self.emulator,
            &self.aws,
            "smartvault-bench",
            instances,
        )
        .await?;
        Ok(topic)
    }

    async fn snapshot_count(&self) -> Result<usize> {
        let snapshots = self
            .aws
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .map_err(crate::aws::sdk_error)?;
        Ok(snapshots.snapshots().len())
    }

    fn run_smartvault(&self, topic: &str) -> Result<(local_runtime::Invocation, f64)> {
        let mut env = self.emulator_env();
        env.push(("SNS_TOPIC_ARN".into(), topic.to_owned()));
        env.push(("DEPLOYMENT".into(), "smartvault-bench".into()));
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        // The emulator has no token buckets here: pace to a bucket that never makes a call
        // wait. The large-fleet section measures pacing through EC2's buckets.
        env.push(("EC2_RATE_SHARE".into(), "100".into()));
        env.push(("EC2_REFILL_PER_SECOND".into(), "1000".into()));
        let event = serde_json::json!({"action": "manual-trigger"});
        let started = Instant::now();
        let invocation = local_runtime::invoke(&local_runtime::Run {
            binary: &self.bootstrap,
            function_name: "smartvault-bench",
            memory_mb: 256,
            timeout: Duration::from_secs(900),
            region: emulator::REGION,
            account_id: emulator::ACCOUNT_ID,
            env,
            event: &event,
            logs: crate::build::local_runtime::Logs::Raw,
        })?;
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        match &invocation.ending {
            // Failures are part of the result; the run itself must have answered.
            Ending::Response(_) | Ending::Error(_) => Ok((invocation, wall)),
            other => bail!("SmartVault did not answer: {other:?}"),
        }
    }

    fn run_seed(&self, topic: &str) -> Result<(serde_json::Value, f64)> {
        let started = Instant::now();
        let output = seed_command(&self.seed, topic, &self.emulator_env())
            .output()
            .context("failed to run the seed under python")?;
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        if !output.status.success() {
            bail!(
                "the seed failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let report: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or("{}"))
            .context("the seed's runner printed no JSON")?;
        Ok((report, wall))
    }

    async fn backup_run(&self, contender: Contender, instances: usize) -> Result<BackupRun> {
        let topic = self.fresh_fleet(instances).await?;
        self.emulator.start_recording()?;
        let (wall_ms, peak_mib) = match contender {
            Contender::Seed => {
                let (report, _) = self.run_seed(&topic)?;
                (
                    report["handler_ms"].as_f64().unwrap_or(f64::NAN),
                    report["max_rss_mib"].as_f64().unwrap_or(f64::NAN),
                )
            }
            Contender::SmartVault => {
                let (invocation, _) = self.run_smartvault(&topic)?;
                (
                    invocation.duration_ms.unwrap_or(f64::NAN),
                    invocation.max_memory_mib.unwrap_or(f64::NAN),
                )
            }
        };
        let actions = self.emulator.stop_recording()?;
        let mut calls = BTreeMap::new();
        for action in actions {
            *calls.entry(action).or_insert(0) += 1;
        }
        Ok(BackupRun {
            wall_ms,
            peak_mib,
            volumes_snapshotted: self.snapshot_count().await?,
            calls,
        })
    }

    async fn cold_start(&self, contender: Contender) -> Result<ColdStart> {
        let topic = self.fresh_fleet(0).await?;
        Ok(match contender {
            Contender::Seed => {
                let (report, wall) = self.run_seed(&topic)?;
                ColdStart {
                    first_response_ms: wall,
                    init_ms: report["import_ms"].as_f64().unwrap_or(f64::NAN),
                    peak_mib: report["max_rss_mib"].as_f64().unwrap_or(f64::NAN),
                }
            }
            Contender::SmartVault => {
                let (invocation, _) = self.run_smartvault(&topic)?;
                ColdStart {
                    first_response_ms: invocation.total_ms,
                    init_ms: invocation.init_ms.unwrap_or(f64::NAN),
                    peak_mib: invocation.max_memory_mib.unwrap_or(f64::NAN),
                }
            }
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Contender {
    Seed,
    SmartVault,
}

/// The whole report.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub instances: usize,
    pub repeat: usize,
    pub bootstrap: String,
    pub seed_backup: BackupRun,
    pub smartvault_backup: BackupRun,
    pub seed_cold: ColdStart,
    pub smartvault_cold: ColdStart,
    pub zip_bytes: Option<u64>,
    pub glibc: Option<String>,
    pub redeploy_ms: f64,
    pub cli_redeploy_ms: f64,
    pub fleet: Option<fleet::FleetReport>,
    pub copies: Option<crate::bench::copy::CopyReport>,
    pub tripwire: Option<crate::bench::tripwire::TripwireReport>,
    pub consistency: Option<crate::bench::consistency::ConsistencyReport>,
}

pub fn run(options: &Options) -> Result<Report> {
    anyhow::ensure!(
        options.repeat >= 1 && options.instances >= 1,
        "--instances and --repeat must be at least 1"
    );
    crate::build::tools::ensure()?;
    let seed = seed_path()?;
    // Always the current code: the Lambda build is brought up to date (incremental, so a
    // no-op when nothing changed); a stale binary would measure an older function.
    let (bootstrap, bootstrap_kind) = if options.host_build {
        (
            crate::workflows::invoke::host_bootstrap()?,
            "the host's debug build (`--host-build`): the figures are not the product's",
        )
    } else {
        (
            crate::build::build(crate::build::architecture::Architecture::X86_64)?,
            "the Lambda build (`cargo xtask build`), rebuilt from the current code",
        )
    };
    let emulator = Emulator::start()?;
    emulator.set_config(&serde_json::json!({"lambda": {"use_docker": false}}))?;
    let runtime = crate::aws::runtime()?;
    let sdk = runtime.block_on(emulator.sdk_config());
    let bench = Bench {
        aws: Aws::from_sdk(&sdk, emulator::REGION.to_owned()),
        emulator,
        bootstrap,
        bootstrap_kind,
        seed,
    };
    let mut report = Report {
        instances: options.instances,
        repeat: options.repeat,
        bootstrap: bench.bootstrap_kind.to_owned(),
        ..Report::default()
    };
    runtime.block_on(async {
        let (mut seed_runs, mut ours, mut seed_cold, mut our_cold) =
            (vec![], vec![], vec![], vec![]);
        for round in 0..options.repeat {
            eprintln!(
                "round {}/{}: backup of {} instances, then cold starts",
                round + 1,
                options.repeat,
                options.instances
            );
            seed_runs.push(bench.backup_run(Contender::Seed, options.instances).await?);
            ours.push(
                bench
                    .backup_run(Contender::SmartVault, options.instances)
                    .await?,
            );
            seed_cold.push(bench.cold_start(Contender::Seed).await?);
            our_cold.push(bench.cold_start(Contender::SmartVault).await?);
        }
        report.seed_backup = median_run(seed_runs);
        report.smartvault_backup = median_run(ours);
        report.seed_cold = median_cold(&seed_cold);
        report.smartvault_cold = median_cold(&our_cold);
        let (ours, cli) = redeploy(&bench, options.repeat).await?;
        report.redeploy_ms = ours;
        report.cli_redeploy_ms = cli;
        if options.fleet.fleet_instances > 0 {
            report.fleet = Some(
                fleet::run(
                    &bench.emulator,
                    &bench.aws,
                    &bench.bootstrap,
                    &bench.seed,
                    &options.fleet,
                )
                .await?,
            );
        }
        if options.copy_instances > 0 {
            eprintln!(
                "copies: {} instances to two other regions",
                options.copy_instances
            );
            report.copies = Some(
                crate::bench::copy::run(&bench.emulator, &bench.aws, options.copy_instances)
                    .await?,
            );
        }
        if options.tripwire_instances > 0 {
            eprintln!(
                "tripwire: {} instances, daily runs with and without it",
                options.tripwire_instances
            );
            report.tripwire = Some(
                crate::bench::tripwire::run(
                    &bench.emulator,
                    &bench.aws,
                    options.tripwire_instances,
                )
                .await?,
            );
        }
        if options.consistency_instances > 0 {
            eprintln!(
                "consistency: {} instances, a run crash-consistent and one with stages",
                options.consistency_instances
            );
            report.consistency = Some(
                crate::bench::consistency::run(
                    &bench.emulator,
                    &bench.aws,
                    options.consistency_instances,
                )
                .await?,
            );
        }
        anyhow::Ok(())
    })?;
    let zip = crate::build::output_path(crate::build::architecture::Architecture::X86_64)
        .with_file_name("bootstrap.zip");
    if zip.is_file() && !options.host_build {
        report.zip_bytes = Some(std::fs::metadata(&zip)?.len());
        let binary = std::fs::read(crate::build::output_path(
            crate::build::architecture::Architecture::X86_64,
        ))?;
        report.glibc = crate::build::glibc_versions(&binary)
            .last()
            .map(|(major, minor)| format!("GLIBC_{major}.{minor}"));
    }
    let markdown = render(&report, &machine());
    println!("{markdown}");
    if let Some(parent) = options.report.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    std::fs::write(&options.report, &markdown)
        .with_context(|| format!("failed to write `{}`", options.report.display()))?;
    eprintln!("wrote {}", options.report.display());
    Ok(report)
}

/// A no-op `cargo xtask deploy` next to `aws cloudformation deploy` of the same template.
async fn redeploy(bench: &Bench, repeat: usize) -> Result<(f64, f64)> {
    bench.emulator.reset()?;
    let env = crate::config::load(None, "local")?;
    let dir = emulator::workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let zip = dir.join("bootstrap.zip");
    std::fs::write(
        &zip,
        crate::build::package::zip_bootstrap(b"bench", crate::build::package::Compression::Fast)?,
    )?;
    let artifact = crate::build::package::open(&zip)?;
    crate::workflows::deploy::deploy(
        &bench.aws,
        &env,
        &artifact,
        true,
        crate::output::Output::Json,
    )
    .await?;
    let rendered = emulator::workspace_root()
        .join("target")
        .join("smartvault")
        .join("local");
    let parameters: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(rendered.join("parameters.json"))?)?;
    let overrides: Vec<String> = parameters
        .iter()
        .map(|p| {
            format!(
                "{}={}",
                p["ParameterKey"].as_str().unwrap_or_default(),
                p["ParameterValue"].as_str().unwrap_or_default()
            )
        })
        .collect();
    // The template is over the 51,200 bytes a request may carry: the CLI uploads it to the
    // artifact bucket and sends its URL, as deploy does.
    let bucket = parameters
        .iter()
        .find(|p| p["ParameterKey"] == "ArtifactBucket")
        .and_then(|p| p["ParameterValue"].as_str())
        .unwrap_or_default()
        .to_owned();
    let (mut ours, mut cli) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let started = Instant::now();
        let result = crate::workflows::deploy::deploy(
            &bench.aws,
            &env,
            &artifact,
            true,
            crate::output::Output::Json,
        )
        .await?;
        anyhow::ensure!(
            result.result == crate::stack::Outcome::Unchanged,
            "the redeploy was not a no-op: {}",
            result.result
        );
        ours.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        let status = Command::new(crate::build::tools::bin("aws"))
            .args([
                "cloudformation",
                "deploy",
                "--stack-name",
                &env.stack_name,
                "--capabilities",
                "CAPABILITY_IAM",
                "--no-fail-on-empty-changeset",
                "--s3-bucket",
                &bucket,
            ])
            .arg("--template-file")
            .arg(rendered.join("template.yaml"))
            .arg("--parameter-overrides")
            .args(&overrides)
            .envs(bench.emulator_env())
            // The emulator finds the template the CLI uploaded by its URL's path only when
            // the host is `localhost` (it reads 127.0.0.1's first label as the bucket).
            .env(
                "AWS_ENDPOINT_URL_S3",
                bench.emulator.endpoint().replace("127.0.0.1", "localhost"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("failed to run the AWS CLI from the tool environment")?;
        anyhow::ensure!(
            status.status.success(),
            "aws cloudformation deploy failed ({}): {}",
            status.status,
            String::from_utf8_lossy(&status.stderr).trim()
        );
        cli.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((median(ours), median(cli)))
}

fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    let version = |program: &Path, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores, {memory}; {}; {}; moto 5.2.5",
        version(Path::new("rustc"), "--version"),
        version(&crate::build::tools::bin("python"), "--version")
    )
}

/// The report as Markdown.
pub fn render(r: &Report, machine: &str) -> String {
    let (seed, ours) = (&r.seed_backup, &r.smartvault_backup);
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks: SmartVault against the seed\n");
    let _ = writeln!(
        out,
        "Measured by `cargo xtask bench --instances {} --repeat {}` on {machine}.",
        r.instances, r.repeat
    );
    let _ = writeln!(
        out,
        "Both contenders ran against the same local emulator, with fresh state for each run; each figure is the \
         median of {} runs. SmartVault ran as {}; the seed is `../shared/seed/lambda_function.py`, unmodified, \
         under the project's Python with boto3. Absolute times on an emulator are noisy and slower than AWS; \
         compare the ratios.\n",
        r.repeat, r.bootstrap
    );
    let _ = writeln!(
        out,
        "## Backup run: {} instances, 2 volumes each\n",
        r.instances
    );
    let _ = writeln!(out, "| | seed | SmartVault | ratio (seed / SmartVault) |");
    let _ = writeln!(out, "|---|---|---|---|");
    let _ = writeln!(
        out,
        "| wall time of the run | {:.0} ms | {:.0} ms | {:.2} |",
        seed.wall_ms,
        ours.wall_ms,
        seed.wall_ms / ours.wall_ms
    );
    let _ = writeln!(
        out,
        "| volumes snapshotted | {} | {} | {:.2} |",
        seed.volumes_snapshotted,
        ours.volumes_snapshotted,
        seed.volumes_snapshotted as f64 / ours.volumes_snapshotted.max(1) as f64
    );
    let _ = writeln!(
        out,
        "| wall time per volume snapshotted | {:.2} ms | {:.2} ms | {:.2} |",
        seed.ms_per_volume(),
        ours.ms_per_volume(),
        seed.ms_per_volume() / ours.ms_per_volume()
    );
    let _ = writeln!(
        out,
        "| EC2 write calls | {} | {} | {:.2} |",
        seed.writes(),
        ours.writes(),
        seed.writes() as f64 / ours.writes().max(1) as f64
    );
    let _ = writeln!(
        out,
        "| EC2 write calls per volume snapshotted | {:.2} | {:.2} | {:.2} |",
        seed.writes_per_volume(),
        ours.writes_per_volume(),
        seed.writes_per_volume() / ours.writes_per_volume()
    );
    let _ = writeln!(
        out,
        "| peak memory of the process | {:.1} MiB | {:.1} MiB | {:.2} |",
        seed.peak_mib,
        ours.peak_mib,
        seed.peak_mib / ours.peak_mib
    );
    let actions: std::collections::BTreeSet<&String> =
        seed.calls.keys().chain(ours.calls.keys()).collect();
    for action in actions {
        let count = |run: &BackupRun| run.calls.get(action).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "| API calls: {action} | {} | {} | |",
            count(seed),
            count(ours)
        );
    }
    let _ = writeln!(
        out,
        "\n## Cold start: process start to first response (no instance tagged)\n"
    );
    let _ = writeln!(out, "| | seed | SmartVault | ratio |");
    let _ = writeln!(out, "|---|---|---|---|");
    let (sc, oc) = (&r.seed_cold, &r.smartvault_cold);
    let _ = writeln!(
        out,
        "| first response | {:.0} ms | {:.0} ms | {:.1} |",
        sc.first_response_ms,
        oc.first_response_ms,
        sc.first_response_ms / oc.first_response_ms
    );
    let _ = writeln!(
        out,
        "| init (seed: importing boto3 and making clients) | {:.0} ms | {:.1} ms | {:.1} |",
        sc.init_ms,
        oc.init_ms,
        sc.init_ms / oc.init_ms
    );
    let _ = writeln!(
        out,
        "| peak memory | {:.1} MiB | {:.1} MiB | {:.1} |",
        sc.peak_mib,
        oc.peak_mib,
        sc.peak_mib / oc.peak_mib
    );
    let _ = writeln!(out, "\n## Package and redeploy\n");
    let _ = writeln!(out, "| | value |");
    let _ = writeln!(out, "|---|---|");
    match (r.zip_bytes, &r.glibc) {
        (Some(bytes), Some(glibc)) => {
            let _ = writeln!(
                out,
                "| release zip | {bytes} bytes ({:.2} MB) |",
                bytes as f64 / 1e6
            );
            let _ = writeln!(out, "| highest glibc symbol version required | {glibc} |");
        }
        _ => {
            let _ = writeln!(
                out,
                "| release zip | not measured: run `cargo xtask bench` without `--host-build` |"
            );
        }
    }
    let _ = writeln!(
        out,
        "| no-op redeploy, `cargo xtask deploy` | {:.0} ms |",
        r.redeploy_ms
    );
    let _ = writeln!(
        out,
        "| no-op redeploy, `aws cloudformation deploy` of the same template | {:.0} ms |",
        r.cli_redeploy_ms
    );
    let _ = writeln!(out, "\n## Targets\n");
    let _ = writeln!(out, "| target | figure | |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| at most 0.5 EC2 write calls per volume snapshotted | {:.2} | {} |",
        ours.writes_per_volume(),
        verdict(ours.writes_per_volume() <= 0.5)
    );
    let speedup = seed.ms_per_volume() / ours.ms_per_volume();
    let _ = writeln!(
        out,
        "| wall time per volume at most a third of the seed's | {:.2}x faster | {} |",
        speedup,
        verdict(speedup >= 3.0)
    );
    let init_ratio = sc.init_ms / oc.init_ms;
    let _ = writeln!(
        out,
        "| init at least 10 times faster than the seed's | {init_ratio:.1}x | {} |",
        verdict(init_ratio >= 10.0)
    );
    let peak = oc.peak_mib.max(ours.peak_mib);
    let _ = writeln!(
        out,
        "| peak memory under 30 MB (cold start and backup run) | {peak:.1} MiB | {} |",
        verdict(peak < 30.0)
    );
    match r.zip_bytes {
        Some(bytes) => {
            let _ = writeln!(
                out,
                "| zip under 3 MB | {:.2} MB | {} |",
                bytes as f64 / 1e6,
                verdict(bytes < 3_000_000)
            );
        }
        None => {
            let _ = writeln!(out, "| zip under 3 MB | not built | not measured |");
        }
    }
    let _ = writeln!(
        out,
        "| no-op redeploy under 3 s | {:.0} ms | {} |",
        r.redeploy_ms,
        verdict(r.redeploy_ms < 3000.0)
    );
    if let Some(fleet) = &r.fleet {
        let ratio = fleet.ratio_to_minimum();
        let _ = writeln!(
            out,
            "| large fleet: every volume once, within {} of the bucket's minimum | {} of {} volumes, {ratio:.2}x | {} |",
            fleet::TARGET_RATIO,
            fleet.smartvault.volumes_protected,
            fleet.volumes,
            verdict(
                fleet.smartvault.volumes_protected == fleet.volumes
                    && fleet.smartvault.duplicated == 0
                    && ratio <= fleet::TARGET_RATIO
            )
        );
        out.push_str(&fleet::render(fleet));
    }
    if let Some(copies) = &r.copies {
        out.push_str(&crate::bench::copy::render(copies));
    }
    if let Some(tripwire) = &r.tripwire {
        out.push_str(&crate::bench::tripwire::render(tripwire));
    }
    if let Some(consistency) = &r.consistency {
        out.push_str(&crate::bench::consistency::render(consistency));
    }
    out
}
