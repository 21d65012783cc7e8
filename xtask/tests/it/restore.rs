//! Restore points end to end: the function backs a fleet up and copies it to another region,
//! and `cargo xtask snapshots` lists one point per instance and run, with each volume's device
//! and type as recorded, the copies, and the points in the copy region.

use crate::common::{assert_fields, json, scratch, xtask, xtask_with};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use emulator::proxy::{FaultProxy, Faults};
use function::handler;
use serde_json::json as value;
use std::collections::BTreeMap;

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
    let ctx =
        crate::common::function_context(&sdk, STACK, &[("COPIES", r#"[{"region": "us-west-2"}]"#)])
            .await;
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
            "platform",
            "volumes",
            "copies",
        ],
    );
    // The platform as EC2 reported the instance's, for the image a new-instance restore
    // registers (the emulator reports only the metadata options; boot mode, TPM and platform
    // details are proven on the planner's tests and the image's request on SDK mocks).
    assert_eq!(point["platform"], "imds=optional", "{point}");
    assert_eq!(point["created_at"], function::tags::format_time(now));
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
            function::tags::format_time(now)
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

/// Backs up a three-volume instance (and copies it to us-west-2) with the function, and
/// writes the `local` environment with that copy region; returns the instance and the file.
async fn backed_up(
    emulator: &Emulator,
    dir: &std::path::Path,
) -> (fleet::FleetInstance, std::path::PathBuf) {
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let launched = fleet::launch_all(&ec2, &[InstanceSpec::backup("db-1").data_volumes(2)])
        .await
        .unwrap();
    let ctx =
        crate::common::function_context(&sdk, STACK, &[("COPIES", r#"[{"region": "us-west-2"}]"#)])
            .await;
    let now = time::OffsetDateTime::now_utc();
    for event in [value!({"action": "backup"}), value!({"action": "cleanup"})] {
        handler::handle(&ctx, &event, now).await.unwrap();
    }
    let file = dir.join("smartvault.yaml");
    std::fs::write(
        &file,
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    copies: [{region: us-west-2}]\n",
    )
    .unwrap();
    (launched.into_iter().next().unwrap(), file)
}

/// Each volume of `instance` in `ec2`'s region: (device, type, size).
async fn block_devices(
    ec2: &aws_sdk_ec2::Client,
    instance: &str,
) -> BTreeMap<String, (String, i32)> {
    let described = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    let mut devices = BTreeMap::new();
    for mapping in described.reservations()[0].instances()[0].block_device_mappings() {
        let id = mapping.ebs().unwrap().volume_id().unwrap();
        let volume = ec2.describe_volumes().volume_ids(id).send().await.unwrap();
        let volume = &volume.volumes()[0];
        devices.insert(
            mapping.device_name().unwrap().to_owned(),
            (
                volume.volume_type().unwrap().as_str().to_owned(),
                volume.size().unwrap(),
            ),
        );
    }
    devices
}

#[tokio::test]
async fn a_volume_restore_brings_every_volume_back_as_it_was_and_refuses_what_cannot_work() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("restore-volumes");
    let (db, file) = backed_up(&emulator, &dir).await;
    let config = file.to_str().unwrap();
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let original = block_devices(&ec2, &db.id).await;
    assert_eq!(original.len(), 3);
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore", "--env", "local", "--config", config, "--yes", "--output", "json",
        ];
        args.extend(extra);
        xtask(&emulator, &args)
    };
    let volume_count = || async { ec2.describe_volumes().send().await.unwrap().volumes().len() };
    // What cannot work is refused, exit 2, before anything is created.
    let spare = fleet::launch(&ec2, &InstanceSpec::untagged("spare").stopped())
        .await
        .unwrap();
    let running = fleet::launch(&ec2, &InstanceSpec::untagged("busy"))
        .await
        .unwrap();
    let before = volume_count().await;
    for (extra, expected) in [
        (
            vec!["--instance", "i-0123456789abcdef0"],
            "no restore point of i-0123456789abcdef0 in us-east-1; the instances with restore points are",
        ),
        (
            vec!["--instance", db.id.as_str(), "--at", "2020-01-01T00:00:00Z"],
            "no complete restore point of",
        ),
        (
            vec![
                "--instance",
                db.id.as_str(),
                "--attach-to",
                running.id.as_str(),
            ],
            "is running; attach restored volumes only to a stopped instance",
        ),
        (
            vec![
                "--instance",
                db.id.as_str(),
                "--attach-to",
                spare.id.as_str(),
            ],
            "already has a volume at /dev/",
        ),
        (
            vec!["--instance", db.id.as_str(), "--az", "us-west-2a"],
            "--az us-west-2a is not in us-east-1",
        ),
        (
            vec!["--instance", db.id.as_str(), "--az", "us-east-1z"],
            "--az us-east-1z is not an availability zone of us-east-1; its zones are us-east-1a",
        ),
        (
            vec![
                "--instance",
                db.id.as_str(),
                "--attach-to",
                "i-0fedcba9876543210",
            ],
            "--attach-to i-0fedcba9876543210: no such instance in this region",
        ),
        (
            vec!["--instance", db.id.as_str(), "--attach-to", ""],
            "--attach-to : no such instance in this region",
        ),
        (
            vec!["--instance", db.id.as_str(), "--region", "us-west-2"],
            "a copy region, and its instance was in",
        ),
        (
            vec![
                "--instance",
                db.id.as_str(),
                "--replace-root",
                "--region",
                "us-west-2",
            ],
            "--replace-root works on the instance in us-east-1",
        ),
    ] {
        let refused = restore(&extra);
        assert_eq!(refused.status.code(), Some(2), "{extra:?}");
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(message.contains(expected), "{extra:?}: {message}");
    }
    assert_eq!(volume_count().await, before, "nothing was created");

    // The restore: one volume per snapshot, as the instance had them.
    let restored = json(&restore(&["--instance", db.id.as_str()]));
    assert_fields(
        &restored,
        &[
            "environment",
            "instance_id",
            "restore_point",
            "region",
            "volumes",
            "attached_to",
            "new_instance",
            "replaced_root",
        ],
    );
    let volumes = restored["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 3);
    let mut made = BTreeMap::new();
    for volume in volumes {
        let id = volume["volume_id"].as_str().unwrap();
        let described = ec2.describe_volumes().volume_ids(id).send().await.unwrap();
        let described = &described.volumes()[0];
        assert_eq!(described.state().unwrap().as_str(), "available");
        let tag = |key: &str| {
            described
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .map(str::to_owned)
        };
        assert_eq!(
            tag("smartvault:restored-instance").as_deref(),
            Some(db.id.as_str())
        );
        assert_eq!(
            tag("smartvault:restored-from").as_deref(),
            volume["snapshot_id"].as_str()
        );
        made.insert(
            volume["device"].as_str().unwrap().to_owned(),
            (
                described.volume_type().unwrap().as_str().to_owned(),
                described.size().unwrap(),
            ),
        );
    }
    assert_eq!(made, original, "each device back with its type and size");

    // Attached to a stopped instance whose devices are free: at the recorded names.
    let spare_root = spare.volume_ids[0].clone();
    ec2.detach_volume()
        .volume_id(&spare_root)
        .instance_id(&spare.id)
        .send()
        .await
        .unwrap();
    let attached = json(&restore(&[
        "--instance",
        db.id.as_str(),
        "--attach-to",
        spare.id.as_str(),
    ]));
    assert_eq!(attached["attached_to"], spare.id.as_str());
    assert_eq!(block_devices(&ec2, &spare.id).await, original);

    // From the copy region, in a zone of it.
    let west = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk)
            .region(aws_sdk_ec2::config::Region::new("us-west-2"))
            .build(),
    );
    let there = json(&restore(&[
        "--instance",
        db.id.as_str(),
        "--region",
        "us-west-2",
        "--az",
        "us-west-2a",
    ]));
    assert_eq!(there["region"], "us-west-2");
    for volume in there["volumes"].as_array().unwrap() {
        let id = volume["volume_id"].as_str().unwrap();
        let described = west.describe_volumes().volume_ids(id).send().await.unwrap();
        assert_eq!(
            described.volumes()[0].availability_zone(),
            Some("us-west-2a")
        );
    }
}

#[tokio::test]
async fn a_restore_that_fails_halfway_removes_what_it_made_and_says_so() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("restore-rollback");
    let (db, file) = backed_up(&emulator, &dir).await;
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let spare = fleet::launch(&ec2, &InstanceSpec::untagged("spare").stopped())
        .await
        .unwrap();
    ec2.detach_volume()
        .volume_id(&spare.volume_ids[0])
        .instance_id(&spare.id)
        .send()
        .await
        .unwrap();
    let volumes = || async { ec2.describe_volumes().send().await.unwrap().volumes().len() };
    let before = volumes().await;
    // Attaching is refused (as by a policy): the volumes were made, then must go again.
    let failed = restore_refusing(
        &emulator,
        "AttachVolume",
        &file,
        &[
            "--instance",
            db.id.as_str(),
            "--attach-to",
            spare.id.as_str(),
        ],
    );
    assert_eq!(failed.status.code(), Some(1));
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(
        message.contains("the restore was rolled back: deleted vol-")
            && message.contains("UnauthorizedOperation"),
        "{message}"
    );
    assert_eq!(volumes().await, before, "nothing of the restore is left");
}

#[tokio::test]
async fn a_new_instance_restore_launches_the_recorded_machine_and_leaves_no_image() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("restore-new-instance");
    let (db, file) = backed_up(&emulator, &dir).await;
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let original = block_devices(&ec2, &db.id).await;
    let restored = json(&xtask(
        &emulator,
        &[
            "restore",
            "--env",
            "local",
            "--config",
            file.to_str().unwrap(),
            "--instance",
            db.id.as_str(),
            "--new-instance",
            "--yes",
            "--output",
            "json",
        ],
    ));
    let launched = &restored["new_instance"];
    assert_fields(
        launched,
        &["instance_id", "instance_type", "image_id", "status_checks"],
    );
    assert_eq!(
        launched["status_checks"], "passed",
        "success means EC2's status checks passed, not only `running`"
    );
    let id = launched["instance_id"].as_str().unwrap();
    assert_ne!(id, db.id);
    // The same machine: the original's instance type (it still exists) and its root device
    // back from its snapshot. The emulator launches only an image's root volume; the image's
    // other devices are checked below on the image itself.
    let root = db_root(&ec2, &db.id).await;
    let launched_devices = block_devices(&ec2, id).await;
    assert_eq!(launched_devices.get(&root), original.get(&root));
    let described = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    let before = ec2
        .describe_instances()
        .instance_ids(&db.id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        instance.instance_type(),
        before.reservations()[0].instances()[0].instance_type()
    );
    assert!(instance.tags().iter().any(|t| {
        t.key() == Some("smartvault:restored-instance") && t.value() == Some(db.id.as_str())
    }));
    // No image left behind: the snapshots can expire.
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    assert!(
        images.images().iter().all(|i| !i
            .name()
            .unwrap_or_default()
            .starts_with("smartvault-restore-")),
        "{:?}",
        images.images()
    );

    // When the image cannot be deregistered (a policy refuses it), the restore says what to
    // do, and the image is there to deregister. (The emulator registers only an image's root
    // device; the whole RegisterImage request is asserted in lifecycle/restore.rs's tests.)
    let refused = restore_refusing(
        &emulator,
        "DeregisterImage",
        &file,
        &["--instance", db.id.as_str(), "--new-instance"],
    );
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("could not be deregistered: deregister it (aws ec2 deregister-image"),
        "{message}"
    );
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    let image = images
        .images()
        .iter()
        .find(|i| {
            i.name()
                .unwrap_or_default()
                .starts_with("smartvault-restore-")
        })
        .unwrap();
    assert_eq!(image.root_device_name(), Some(root.as_str()));
    assert!(message.contains(image.image_id().unwrap()), "{message}");
}

/// The root device name of `instance`.
async fn db_root(ec2: &aws_sdk_ec2::Client, instance: &str) -> String {
    let described = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    described.reservations()[0].instances()[0]
        .root_device_name()
        .unwrap()
        .to_owned()
}

/// `restore --yes` of the `local` environment in `file` with `args`, through a proxy that
/// refuses every call of `action` (as a policy would).
fn restore_refusing(
    emulator: &Emulator,
    action: &str,
    file: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let proxy = FaultProxy::start(
        emulator.port(),
        Faults {
            refused_action: Some(action.into()),
            ..Faults::default()
        },
    )
    .unwrap();
    let mut all = vec![
        "restore",
        "--env",
        "local",
        "--config",
        file.to_str().unwrap(),
        "--yes",
    ];
    all.extend(args);
    xtask_with(
        emulator,
        &[("AWS_ENDPOINT_URL", proxy.endpoint().as_str())],
        &all,
    )
}
