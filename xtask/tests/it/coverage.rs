//! `cargo xtask coverage` end to end: the function backs up part of a fleet, and the command
//! shows each instance as protected, overdue, never backed up, opted out or unprotected, with
//! the exit code `--fail-on` asks for.

use crate::common::{assert_fields, scratch, xtask};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use serde_json::json as value;
use time::{Duration, OffsetDateTime};

const STACK: &str = "smartvault-local";

#[tokio::test]
async fn coverage_shows_every_instance_and_fails_on_what_it_is_asked_to() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let fleet = fleet::launch_all(
        &ec2,
        &[
            InstanceSpec::backup("web-1")
                .data_volumes(1)
                .volume_tag(1, "BackupExclude", "true"),
            InstanceSpec::backup("db-1"),
            InstanceSpec::backup("new-1").stopped(),
            InstanceSpec::untagged("off-1").tag("Backup", "false"),
            InstanceSpec::untagged("scratch"),
        ],
    )
    .await
    .unwrap();
    let id = |n: usize| fleet[n].id.clone();
    let ctx = crate::common::function_context(&sdk, STACK, &[]).await;
    // db-1 was last backed up 40 hours ago, web-1 two hours ago; new-1 never.
    let now = OffsetDateTime::now_utc();
    for (instance, hours) in [(id(1), 40), (id(0), 2)] {
        handler::handle(
            &ctx,
            &value!({"action": "backup", "instance_ids": [instance]}),
            now - Duration::hours(hours),
        )
        .await
        .unwrap();
    }

    // A daily schedule: overdue after 24 hours plus the default grace of 3.
    let dir = scratch("coverage");
    let file = dir.join("smartvault.yaml");
    std::fs::write(
        &file,
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    schedule: rate(1 day)\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let coverage = |extra: &[&str]| {
        let mut args = vec!["coverage", "--env", "local", "--config", config];
        args.extend(extra);
        xtask(&emulator, &args)
    };
    let output = coverage(&["--output", "json"]);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_fields(
        &report,
        &[
            "environment",
            "stack",
            "region",
            "at",
            "protected",
            "overdue",
            "no_backup_yet",
            "opted_out",
            "unprotected",
            "instances",
            "failed_on",
        ],
    );
    let counts = |key: &str| report[key].as_u64().unwrap();
    assert_eq!(
        [
            counts("protected"),
            counts("overdue"),
            counts("no_backup_yet"),
            counts("opted_out"),
            counts("unprotected")
        ],
        [1, 1, 1, 1, 1],
        "{report}"
    );
    let instance = |n: usize| {
        report["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id(n).as_str())
            .unwrap()
            .clone()
    };
    assert_eq!(instance(0)["status"], "protected");
    assert_eq!(
        instance(0)["excluded_volumes"],
        value!([fleet[0].volume_ids[1]])
    );
    let db = instance(1);
    assert_eq!(db["status"], "overdue");
    assert_eq!(db["newest"][0]["schedule"], "default");
    let since = OffsetDateTime::parse(
        db["newest"][0]["overdue_since"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expected = now - Duration::hours(40) + Duration::hours(27);
    assert!(
        (since - expected).abs() <= Duration::seconds(1),
        "overdue since its set plus 27 hours: {since}"
    );
    assert_eq!(instance(2)["status"], "no-backup-yet");
    assert_eq!(instance(2)["state"], "stopped");
    assert_eq!(instance(3)["status"], "opted-out");
    assert_eq!(instance(4)["status"], "unprotected");
    assert_eq!(report["failed_on"], value!([]));

    // The table, and the exit codes a cron job acts on.
    let text = coverage(&[]);
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(
        table
            .contains("1 protected, 1 overdue, 1 without a backup yet, 1 unprotected, 1 opted out")
            && table.contains("OVERDUE")
            && table.contains("overdue since")
            && table.contains("excluded volumes (BackupExclude=true)"),
        "{table}"
    );
    let overdue = coverage(&["--fail-on", "overdue"]);
    assert_eq!(overdue.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&overdue.stderr);
    assert!(
        stderr.contains(&format!("overdue or never backed up: {}, {}", id(1), id(2)))
            || stderr.contains(&format!("overdue or never backed up: {}, {}", id(2), id(1))),
        "{stderr}"
    );
    let unprotected = coverage(&["--fail-on", "unprotected"]);
    assert_eq!(unprotected.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unprotected.stderr).contains(&id(4)));

    // Once every tagged instance is backed up and the untagged one tagged, both pass.
    ec2.create_tags()
        .resources(id(4))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Backup")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // (`force`: the emulator stamps every snapshot with the real time, so db-1's set made
    // "40 hours ago" looks a second old to the minimum interval.)
    handler::handle(&ctx, &value!({"action": "backup", "force": true}), now)
        .await
        .unwrap();
    let clean = coverage(&["--fail-on", "overdue,unprotected"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
}
