//! The README's first command, end to end: `cargo xtask demo` on a fresh emulator.

use std::process::{Command, Stdio};

#[test]
fn the_demo_runs_the_whole_lifecycle_and_leaves_nothing_behind() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--output", "json"])
        .env(
            emulator::MOTO_SERVER_VAR,
            emulator::moto_server_path().unwrap_or_else(|e| panic!("{e}")),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed:\n{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    // Three tagged instances with 1, 2 and 3 volumes; the emulator ignores the exclusion
    // option of CreateSnapshots, so the excluded volume may be snapshotted there.
    assert_eq!(summary["tagged_volumes"], 6);
    let created = summary["first_run_created"].as_u64().unwrap();
    assert!((5..=6).contains(&created), "{summary}");
    assert_eq!(
        summary["first_run_subject"],
        format!("SmartVault [smartvault-local]: {created} created, 0 deleted, 0 failed")
    );
    assert_eq!(summary["second_run_created"], 0, "nothing duplicated");
    assert_eq!(
        summary["second_run_deleted"], 1,
        "the expired snapshot is cleaned up"
    );
    assert_eq!(
        summary["second_run_subject"],
        "SmartVault [smartvault-local]: 0 created, 1 deleted, 0 failed"
    );
    assert_eq!(summary["destroyed_snapshots"], created);
    // db-1's two backed-up volumes come back at their recorded devices. (The emulator also
    // snapshots the volume tagged BackupExclude, which AWS leaves out; that snapshot has no
    // restore record and comes back without a device.)
    let restored = summary["restored_volumes"].as_array().unwrap();
    let at_devices = restored
        .iter()
        .filter(|v| v[0].as_str().unwrap().starts_with("/dev/"))
        .count();
    assert_eq!(at_devices, 2, "{restored:?}");
    assert_eq!(
        summary["restore_test_subject"],
        "SmartVault [smartvault-local] restore test: 2 passed, 0 failed",
        "two of the three instances' sets restored, as the local environment's sample says"
    );
    assert_eq!(summary["leftovers"], serde_json::json!([]));
    assert_eq!(summary["unmanaged_snapshot_kept"], true);
    for line in summary["report_lines"].as_array().unwrap() {
        let line = line.as_str().unwrap();
        assert!(
            line.starts_with("REPORT RequestId: ")
                && line.contains("Init Duration: ")
                && line.contains("Max Memory Used: "),
            "{line}"
        );
    }
    for step in [
        "Deploy the `local` environment",
        "Run a backup through the local Lambda Runtime API",
        "Restore db-1's volumes from its newest restore point",
        "Rehearse restores: the restore test",
        "Destroy the environment",
        "nothing left",
    ] {
        assert!(stderr.contains(step), "the tour does not show {step:?}");
    }
}
