//! A small run of `cargo xtask bench` (10 instances, once), so the benchmark cannot rot.

use std::process::{Command, Stdio};

#[test]
fn a_small_benchmark_runs_and_reports_every_row() {
    let dir = crate::common::scratch("bench");
    let report = dir.join("benchmarks.md");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--instances", "10", "--repeat", "1"])
        // A small large fleet: past the burst, through buckets ten times as fast, in short
        // invocations; the report's rows are what this test checks, not the figures.
        .args(["--fleet-instances", "150", "--time-scale", "10"])
        .args(["--link-seconds", "7", "--copy-instances", "30"])
        .args([
            "--tripwire-instances",
            "20",
            "--consistency-instances",
            "60",
        ])
        // The host's debug build: the rows are the same, without a release compile (about
        // five minutes of CI); `cargo xtask reproduce` and `cargo xtask bench` build the release.
        .arg("--host-build")
        .arg("--report")
        .arg(&report)
        .env(
            emulator::MOTO_SERVER_VAR,
            emulator::moto_server_path().unwrap_or_else(|e| panic!("{e}")),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&report).unwrap();
    // The seed snapshots one volume of each instance in two calls; SmartVault every volume in one.
    for row in [
        "| volumes snapshotted | 10 | 20 | 0.50 |",
        "| EC2 write calls | 20 | 10 | 2.00 |",
        "| EC2 write calls per volume snapshotted | 2.00 | 0.50 | 4.00 |",
        "| API calls: CreateSnapshots | 0 | 10 | |",
        "| API calls: CreateTags | 10 | 0 | |",
        "| at most 0.5 EC2 write calls per volume snapshotted | 0.50 | met |",
    ] {
        assert!(text.contains(row), "missing {row:?} in:\n{text}");
    }
    for section in [
        "the host's debug build (`--host-build`)",
        "| release zip | not measured",
        "## Cold start",
        "| first response |",
        "| peak memory |",
        "no-op redeploy, `cargo xtask deploy`",
        "`aws cloudformation deploy`",
        "## Large fleet: 150 instances (300 volumes) through EC2's token buckets",
        "time-scaled by 10 (1 is EC2's own rate)",
        "| volumes protected | ",
        "of 300 | 300 of 300 |",
        "| volumes snapshotted more than once | ",
        "| summaries published | ",
        "SmartVault's run time over that minimum",
        "## Copies to other regions: 30 instances (60 snapshots) to 2 regions",
        "| copies one sweep starts in us-west-2, none copied yet | 20 of 60 |",
        "| copies in eu-west-1 after every set's completion event | 60 of 60 | all, once |",
        "| CopySnapshot calls per copy | 1.00 | 1.00 |",
        "| CreateTags calls for copies | 0 |",
        "| a sweep with nothing missing: EC2 write calls | 0 | 0 |",
        "## Ransomware tripwire: 20 instances (40 volumes), a daily run with and without it",
        // The completion events read what each set changed: one page a volume, one CreateTags
        // to record it; the scheduled run finds nothing left to read.
        "| ListChangedBlocks calls per completion event | 0.00 | 2.00 |",
        "| ListChangedBlocks requests per volume a day | 1.00 | | |",
        "| extra requests per scheduled run | 0 | | |",
        "| request cost per 1,000 volumes a month (daily, $0.0006 per 1,000 ListChangedBlocks) | $0.0180 | under $1.00 | met |",
        "| extra scheduled run time |",
        "## Application-consistent sets: 60 instances, a scheduled run crash-consistent and with the Linux document's stages",
        "| snapshots made | 120 | 120 |",
        "| instances application-consistent | 0 | 60 of 60 |",
        // Two batches of 50 and 10: a pre and a post command each.
        "| SendCommand calls | 0 | 4 |",
        "| DescribeInstanceInformation calls | 0 | 2 |",
        "| extra run time |",
    ] {
        assert!(text.contains(section), "missing {section:?}");
    }
    assert!(!text.contains("NaN"), "every figure was measured:\n{text}");
}
