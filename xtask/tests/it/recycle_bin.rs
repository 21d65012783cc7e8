//! The Recycle Bin end to end on the emulator (its bin patch, emulator/fast_moto.py): a deployed
//! `recycle_bin:` keeps this deployment's deleted snapshots, whoever deleted them, and nobody
//! else's; `snapshots --deleted` lists them and `--restore-deleted` puts one back with its tags.

use crate::common::{fake_artifact, json, scratch, xtask};
use emulator::Emulator;

const STACK: &str = "smartvault-local";

/// A snapshot of `volume` carrying `deployment`'s managed-by tag, as its function makes them
/// (the fast-restore deploy test uses it too).
pub async fn snapshot(ec2: &aws_sdk_ec2::Client, volume: &str, deployment: &str) -> String {
    ec2.create_snapshot()
        .volume_id(volume)
        .description(format!(
            "SmartVault backup of web (i-0123456789abcdef0) by {deployment}"
        ))
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Snapshot)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(function::tags::MANAGED_BY)
                        .value(deployment)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_owned()
}

/// Writes a config file in `dir` whose `local` environment adds `bin` (its `recycle_bin:`
/// lines), deploys it, and returns the file's path.
fn deploy_local(emulator: &Emulator, dir: &std::path::Path, bin: &str) -> String {
    let config = dir.join("smartvault.yaml");
    std::fs::write(
        &config,
        format!(
            "environments:\n  local:\n    region: {}\n    notification_emails: [ops@example.com]\n    {bin}",
            emulator::REGION
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let artifact = fake_artifact(dir);
    let deployed = json(&xtask(
        emulator,
        &[
            "deploy",
            "--env",
            "local",
            "--config",
            &config,
            "--artifact",
            artifact.to_str().unwrap(),
            "--yes",
            "--output",
            "json",
        ],
    ));
    assert_eq!(deployed["result"], "created");
    config
}

#[tokio::test]
async fn a_deleted_snapshot_of_this_deployment_is_listed_and_restored_from_the_bin() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    emulator
        .set_config(&serde_json::json!({"lambda": {"use_docker": false}}))
        .unwrap();
    let dir = scratch("recycle-bin");
    let config = deploy_local(&emulator, &dir, "recycle_bin:\n      retention_days: 7\n");
    let config = config.as_str();

    // Someone deletes one of this deployment's snapshots and one of another deployment's.
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let volume = emulator::fleet::detached_volume(&ec2).await.unwrap();
    let ours = snapshot(&ec2, &volume, STACK).await;
    let theirs = snapshot(&ec2, &volume, "smartvault-other").await;
    for id in [&ours, &theirs] {
        ec2.delete_snapshot().snapshot_id(id).send().await.unwrap();
    }

    // `cargo xtask snapshots` for this environment, with `extra`.
    let snapshots = |extra: &[&str]| {
        let mut args = vec!["snapshots", "--env", "local", "--config", config];
        args.extend_from_slice(extra);
        xtask(&emulator, &args)
    };
    let listed = json(&snapshots(&["--deleted", "--output", "json"]));
    let ids: Vec<&str> = listed["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["snapshot_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [ours.as_str()],
        "only this deployment's, kept by its rule: {listed}"
    );
    assert!(listed["deleted"][0]["leaves"].is_string());

    // Another deployment's snapshot is refused (exit 2) and ours comes back with its tags.
    let refused = snapshots(&["--restore-deleted", &theirs]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is not one of smartvault-local's"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let restored = json(&snapshots(&[
        "--restore-deleted",
        &ours,
        "--output",
        "json",
    ]));
    assert_eq!(restored["restored"], ours.as_str());
    assert_eq!(restored["deleted"], serde_json::json!([]));
    let back = ec2
        .describe_snapshots()
        .snapshot_ids(&ours)
        .send()
        .await
        .unwrap();
    assert_eq!(
        back.snapshots()[0]
            .tags()
            .iter()
            .find(|t| t.key() == Some(function::tags::MANAGED_BY))
            .and_then(|t| t.value()),
        Some(STACK)
    );
}

/// The region-wide rule, an explicit choice: deployed, it keeps any deleted EBS snapshot of the
/// region, whoever made it (the emulator does not model the rule's lock: its unlock delay and
/// retention are proven on the template and against AWS::Rbin::Rule's schema); destroy says the
/// rule stays and how an administrator removes it.
#[tokio::test]
async fn a_region_wide_rule_keeps_every_deleted_snapshot_and_destroy_leaves_it() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("recycle-bin-region");
    let config = deploy_local(
        &emulator,
        &dir,
        "recycle_bin:\n      retention_days: 7\n      region_wide: {unlock_delay_days: 10}\n",
    );
    let config = config.as_str();

    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let volume = emulator::fleet::detached_volume(&ec2).await.unwrap();
    let by_hand = emulator::fleet::snapshot_by_hand(&ec2, &volume, &[("team", "db")])
        .await
        .unwrap();
    ec2.delete_snapshot()
        .snapshot_id(&by_hand)
        .send()
        .await
        .unwrap();
    let binned = ec2.list_snapshots_in_recycle_bin().send().await.unwrap();
    assert!(
        binned
            .snapshots()
            .iter()
            .any(|s| s.snapshot_id() == Some(by_hand.as_str())),
        "another tool's snapshot is kept by the region-wide rule"
    );

    let destroyed = xtask(
        &emulator,
        &["destroy", "--env", "local", "--config", config, "--yes"],
    );
    assert!(
        destroyed.status.success(),
        "{}",
        String::from_utf8_lossy(&destroyed.stderr)
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&destroyed.stdout),
        String::from_utf8_lossy(&destroyed.stderr)
    );
    assert!(
        said.contains("keeping the region-wide, locked Recycle Bin rule of smartvault-local")
            && said.contains("may delete it 10 days later"),
        "{said}"
    );
}
