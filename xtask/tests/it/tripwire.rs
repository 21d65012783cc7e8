//! `cargo xtask cost` and `cargo xtask tripwire` end to end: the function backs up a fleet
//! whose volumes a fixture writes known blocks to, with the tripwire reading and recording what
//! each set changed; `cost` then reports exactly the bytes the fixture wrote, per instance, with
//! what deleting each set frees and a what-if; `tripwire` lists a flagged instance with its clean
//! restore point and restore command, and `--clear` resumes its expiry.

use crate::common::{assert_fields, scratch, xtask};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use serde_json::json as value;
use time::{Duration, OffsetDateTime};

const STACK: &str = "smartvault-local";
const BLOCK: u64 = 524_288;

#[tokio::test]
async fn cost_reports_exactly_the_bytes_written_and_a_trip_is_listed_and_cleared() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let fleet = fleet::launch_all(
        &ec2,
        &[
            InstanceSpec::backup("app").data_volumes(1),
            InstanceSpec::backup("db").data_volumes(2),
        ],
    )
    .await
    .unwrap();
    let write = |volume: &str, from: u64, count: u64, seed: u64| {
        let blocks: Vec<(u64, &str, u64)> =
            (0..count).map(|i| (from + i, "text", seed + i)).collect();
        emulator
            .write_volume_blocks(emulator::ACCOUNT_ID, emulator::REGION, volume, &blocks)
            .unwrap();
    };
    // Known blocks: app's root 300 and data 1,000; db's root 200, data 2,000 and 500.
    let written = [
        (&fleet[0].volume_ids[0], 300),
        (&fleet[0].volume_ids[1], 1_000),
        (&fleet[1].volume_ids[0], 200),
        (&fleet[1].volume_ids[1], 2_000),
        (&fleet[1].volume_ids[2], 500),
    ];
    for (volume, count) in written {
        write(volume, 0, count, 0);
    }
    let ctx = crate::common::function_context(
        &sdk,
        STACK,
        &[
            ("TRIPWIRE", r#"{"multiplier":1.5,"floor":0.2}"#),
            ("ENVIRONMENT", "local"),
        ],
    )
    .await;
    // Runs on the last three days: the command reads at the real time, and a set dated after
    // it is no set (created-at in the future is ignored).
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(3);
    let run = async |day: i64, action: &str| {
        handler::handle(
            &ctx,
            // Forced: the minimum interval counts from the snapshots' real start times, which
            // are later than these back-dated runs.
            &value!({"action": action, "force": true}),
            start + Duration::days(day),
        )
        .await
        .unwrap_or_else(|e| panic!("day {day}: {e}"))
    };
    run(0, "backup").await;
    // Day 1: app's data rewrites 100 blocks and writes 30 new ones; db's first data volume
    // rewrites 250.
    write(&fleet[0].volume_ids[1], 0, 100, 10_000);
    write(&fleet[0].volume_ids[1], 5_000, 30, 20_000);
    write(&fleet[1].volume_ids[1], 1_000, 250, 30_000);
    let second = run(1, "backup").await;
    assert_eq!(second.created.len(), 5, "{:?}", second.skipped);
    // A run that only cleans up measures the last set too.
    let last = run(2, "cleanup").await;
    let tripwire = last.tripwire.expect("the tripwire ran");
    assert!(tripwire.stored_exact, "{tripwire:?}");

    let dir = scratch("tripwire");
    let file = dir.join("smartvault.yaml");
    std::fs::write(
        &file,
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    \
         schedule: rate(1 day)\n    retention_days: 7\n    tripwire: {multiplier: 1.5, floor: 0.2}\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let command = |name: &str, extra: &[&str]| {
        let mut args = vec![name, "--env", "local", "--config", config];
        args.extend(extra);
        xtask(&emulator, &args)
    };

    let output = command("cost", &["--output", "json", "--retention-days", "14"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_fields(
        &report,
        &[
            "environment",
            "stack",
            "region",
            "at",
            "price_source",
            "estimate",
            "current",
            "what_if",
        ],
    );
    let estimate = &report["estimate"];
    let app = (300 + 1_000 + 130) * BLOCK;
    let db = (200 + 2_000 + 500 + 250) * BLOCK;
    assert_eq!(estimate["bytes"], app + db, "{estimate}");
    assert_eq!(estimate["exact"], true);
    assert_eq!(estimate["unmeasured"], 0);
    assert_eq!(estimate["price_per_gb_month"], 0.05);
    let instance = |n: usize| {
        estimate["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == fleet[n].id.as_str())
            .unwrap_or_else(|| panic!("{estimate}"))
            .clone()
    };
    assert_eq!(instance(0)["bytes"], app);
    assert_eq!(instance(1)["bytes"], db);
    assert_eq!(instance(1)["volumes"], 3);
    let sets = instance(0)["sets"].as_array().unwrap().clone();
    assert_eq!(sets.len(), 2, "{sets:?}");
    // The first set holds 1,300 blocks; deleting it frees what the second replaced (100 of the
    // 130 it changed were in the first).
    assert_eq!(sets[0]["bytes"], 1_300 * BLOCK);
    assert_eq!(sets[0]["frees_up_to"], 130 * BLOCK);
    assert_eq!(sets[1]["bytes"], 130 * BLOCK);
    assert_eq!(
        sets[1]["frees_up_to"],
        130 * BLOCK,
        "the newest set's blocks are its own"
    );
    assert_eq!(report["what_if"][0]["retention_days"], 14);
    assert!(report["what_if"][0]["bytes"].as_u64() >= report["current"][0]["bytes"].as_u64());
    let text = command("cost", &[]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&fleet[0].id) && text.contains("deleting it frees at most"),
        "{text}"
    );
    let refused = command("cost", &["--price-per-gb=-1"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--price-per-gb -1 is not a price"));

    // No trip yet.
    let listed = command("tripwire", &["--output", "json"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["trips"], value!([]));
    // The db instance's day-1 data snapshot is flagged (as the function tags it).
    let flagged = snapshot_of(&ec2, &fleet[1].volume_ids[1], start + Duration::days(1)).await;
    ec2.create_tags()
        .resources(&flagged)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(function::tags::TRIPWIRE)
                .value(function::tripwire::tripped(start + Duration::days(2)))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let listed = command("tripwire", &["--output", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let trip = &listed["trips"][0];
    let clean_at = function::tags::format_time(start);
    assert_eq!(trip["instance_id"], fleet[1].id.as_str());
    assert_eq!(trip["snapshots"], value!([flagged]));
    assert_eq!(trip["clean_point"], clean_at.as_str());
    assert_eq!(
        trip["restore"],
        format!(
            "cargo xtask restore --env local --instance {} --at {clean_at}",
            fleet[1].id
        )
    );
    let clear = |instance: &str| command("tripwire", &["--clear", "--instance", instance]);
    let wrong = clear(&fleet[0].id);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("has no trip in force"),
        "{wrong:?}"
    );
    assert_eq!(clear("vol-1").status.code(), Some(2));
    assert_eq!(
        command("tripwire", &["--clear"]).status.code(),
        Some(2),
        "--clear names the instance"
    );
    let cleared = clear(&fleet[1].id);
    assert!(cleared.status.success(), "{cleared:?}");
    assert!(String::from_utf8_lossy(&cleared.stdout).contains("Cleared the trip"));
    let listed = command("tripwire", &["--output", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["trips"], value!([]));
    let tags = ec2
        .describe_tags()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("resource-id")
                .values(&flagged)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == Some(function::tags::TRIPWIRE)
                && t.value().is_some_and(|v| v.starts_with("cleared"))),
        "{tags:?}"
    );
}

/// The id of this deployment's snapshot of `volume` in the set made at `at`.
async fn snapshot_of(ec2: &aws_sdk_ec2::Client, volume: &str, at: OffsetDateTime) -> String {
    let found = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("volume-id")
                .values(volume)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:smartvault:created-at")
                .values(function::tags::format_time(at))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(found.snapshots().len(), 1, "{found:?}");
    found.snapshots()[0].snapshot_id().unwrap().to_owned()
}
