//! Restore points end to end: the function backs a fleet up and copies it to another region,
//! and `cargo xtask snapshots` lists one point per instance and run, with each volume's device
//! and type as recorded, the copies, and the points in the copy region.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_fields, json, scratch, xtask};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use function::handler::{self, Context};
use serde_json::json as value;
use std::collections::{BTreeMap, HashMap};

const STACK: &str = "smartvault-local";

#[tokio::test]
async fn restore_points_list_each_set_with_its_devices_types_and_copies() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let launched = fleet::launch_all(
        &ec2,
        &[
            InstanceSpec::backup("db-1").data_volumes(2),
            InstanceSpec::backup("web-1"),
        ],
    )
    .await
    .unwrap();
    let topic = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name(STACK)
        .send()
        .await
        .unwrap();
    let vars = HashMap::from([
        ("SNS_TOPIC_ARN", topic.topic_arn().unwrap().to_owned()),
        ("DEPLOYMENT", STACK.to_owned()),
        ("COPIES", r#"[{"region": "us-west-2"}]"#.to_owned()),
    ]);
    let config = function::config::Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
    let ctx = Context::new(&sdk, config);
    let now = time::OffsetDateTime::now_utc();
    let made = handler::handle(&ctx, &value!({"action": "backup"}), now)
        .await
        .unwrap();
    assert_eq!(made.created.len(), 4);
    // The next sweep copies every completed set.
    let swept = handler::handle(&ctx, &value!({"action": "cleanup"}), now)
        .await
        .unwrap();
    assert_eq!(swept.copies[0].started, 4);

    let dir = scratch("restore-points");
    let file = dir.join("smartvault.yaml");
    std::fs::write(
        &file,
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    copies: [{region: us-west-2}]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let list = |extra: &[&str]| {
        let mut args = vec![
            "snapshots",
            "--env",
            "local",
            "--config",
            config,
            "--output",
            "json",
        ];
        args.extend(extra);
        xtask(&emulator, &args)
    };
    let listing = json(&list(&[]));
    assert_fields(
        &listing,
        &["environment", "stack", "region", "restore_points"],
    );
    let points = listing["restore_points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "one per instance and run");
    let db = &launched[0];
    let point = points
        .iter()
        .find(|p| p["instance_id"] == db.id.as_str())
        .unwrap();
    assert_fields(
        point,
        &[
            "instance_id",
            "created_at",
            "schedule",
            "expires_at",
            "region",
            "instance_type",
            "architecture",
            "availability_zone",
            "root_device",
            "volumes",
            "copies",
        ],
    );
    assert_eq!(point["created_at"], function::plan::format_time(now));
    assert_eq!(point["schedule"], "default");
    assert_eq!(
        point["copies"]["us-west-2"], 3,
        "every snapshot of the set is copied"
    );
    // Each volume's device and type, as the instance and EC2 had them.
    let described = ec2
        .describe_instances()
        .instance_ids(&db.id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(
        point["instance_type"],
        instance.instance_type().unwrap().as_str()
    );
    assert_eq!(point["root_device"], instance.root_device_name().unwrap());
    let expected: BTreeMap<String, String> = instance
        .block_device_mappings()
        .iter()
        .map(|m| {
            (
                m.ebs().unwrap().volume_id().unwrap().to_owned(),
                m.device_name().unwrap().to_owned(),
            )
        })
        .collect();
    let listed: BTreeMap<String, String> = point["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert!(v["volume_type"].is_string(), "{v}");
            assert_eq!(v["state"], "completed");
            (
                v["volume_id"].as_str().unwrap().to_owned(),
                v["device"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, expected);

    // As people read it: the point's line, then one line per volume with its device.
    let text = xtask(
        &emulator,
        &["snapshots", "--env", "local", "--config", config],
    );
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "{} {} (default) in us-east-1: ",
            db.id,
            function::plan::format_time(now)
        )),
        "{text}"
    );
    assert!(text.contains("copies us-west-2 3/3"), "{text}");
    for device in expected.values() {
        assert!(text.contains(&format!("  {device}")), "{device} in {text}");
    }
    // One instance only.
    let one = json(&list(&["--instance", db.id.as_str()]));
    assert_eq!(one["restore_points"].as_array().unwrap().len(), 1);
    // The copy region holds the same points, named by their source volumes.
    let there = json(&list(&[
        "--region",
        "us-west-2",
        "--instance",
        db.id.as_str(),
    ]));
    assert_eq!(there["region"], "us-west-2");
    let copied = &there["restore_points"][0];
    assert_eq!(copied["region"], "us-west-2");
    let copied_devices: BTreeMap<String, String> = copied["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["volume_id"].as_str().unwrap().to_owned(),
                v["device"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(copied_devices, expected);
    // A region that is not a copy region is refused with the ones that are.
    let refused = list(&["--region", "eu-central-1"]);
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("eu-central-1 is not one of local's copy regions (us-west-2)"),
        "{message}"
    );
}
