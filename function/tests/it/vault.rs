//! The vault account end to end, two accounts on one emulator (its sharing and lock patches,
//! emulator/fast_moto.py): the workload shares its sets, the vault copies them with its own
//! key and locks them in compliance mode, the workload ends the shares and reports vault lag;
//! then the workload account's administrator, with every EC2 permission there, the vault's
//! read-only role and any event the workload's function accepts, tries to delete, unlock or
//! shorten every vault copy: all survive, and expire only by the vault's own rule.

use crate::common::setup;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{LockMode, LockState};
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use function::report::RunReport;
use serde_json::json;
use std::collections::BTreeSet;
use time::{Duration, OffsetDateTime};

const VAULT: &str = "222222222222";
const VAULT_REGION: &str = "us-west-2";
const READER: &str = "arn:aws:iam::222222222222:role/smartvault-vault-reader";
const VAULT_KEY: &str = "arn:aws:kms:us-west-2:222222222222:key/vault";
/// The workload's own sets: kept 7 days, locked in compliance mode (1 hour cooling-off).
const SCHEDULES: &str = r#"[{"name":"daily","retention_days":7,"keep_last":0,"lock":{"mode":"compliance","cool_off_hours":1}}]"#;

async fn run(
    ctx: &function::context::Context,
    event: serde_json::Value,
    at: OffsetDateTime,
) -> RunReport {
    handler::handle(ctx, &event, at)
        .await
        .unwrap_or_else(|e| panic!("the run failed: {e}"))
}

fn ids(found: &[aws_sdk_ec2::types::Snapshot]) -> BTreeSet<String> {
    found
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn nothing_in_the_workload_account_can_delete_unlock_or_shorten_a_vault_copy() {
    let s = setup().await;
    // The workload: two instances backed up, one more whose data volume is encrypted with the
    // account's aws/ebs key, which cannot be shared.
    let fleet = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("web").data_volumes(1),
            InstanceSpec::backup("db"),
            InstanceSpec::backup("legacy"),
        ],
    )
    .await
    .unwrap();
    let encrypted = s
        .ec2
        .create_volume()
        .availability_zone(format!("{}a", emulator::REGION))
        .size(8)
        .encrypted(true)
        .send()
        .await
        .unwrap();
    let encrypted = encrypted.volume_id().unwrap().to_owned();
    s.ec2
        .attach_volume()
        .volume_id(&encrypted)
        .instance_id(&fleet[2].id)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    let vault_target = json!({
        "account": VAULT, "region": VAULT_REGION, "reader_role": READER, "max_lag_hours": 36
    })
    .to_string();
    let workload = function::context::Context::new(
        &s.sdk,
        s.config(
            "prod",
            &[("SCHEDULES", SCHEDULES), ("VAULT", &vault_target)],
        ),
    );

    // The vault: its own account, region and topic.
    let vault_sdk = s
        .emulator
        .assumed(
            "arn:aws:iam::222222222222:role/smartvault-vault",
            VAULT_REGION,
        )
        .await
        .unwrap();
    let vault_topic = aws_sdk_sns::Client::new(&vault_sdk)
        .create_topic()
        .name("vault")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let keeper = json!({
        "sources": [{"account": emulator::ACCOUNT_ID, "region": emulator::REGION}],
        "retention_days": 30, "kms_key": VAULT_KEY
    })
    .to_string();
    let vault_config = function::config::Config::from_lookup(|name| match name {
        "SNS_TOPIC_ARN" => Some(vault_topic.clone()),
        "DEPLOYMENT" => Some("vault".into()),
        "VAULT_FOR" => Some(keeper.clone()),
        _ => None,
    })
    .unwrap();
    let vault = function::context::Context::new(&vault_sdk, vault_config);
    let vault_ec2 = aws_sdk_ec2::Client::new(&vault_sdk);
    let vault_copies = || async {
        vault_ec2
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap()
            .snapshots()
            .to_vec()
    };

    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let daily = json!({"action": "scheduled", "schedule": "daily"});
    // The vault's own schedule (it backs up its own instances too, none here).
    let pull = json!({"action": "scheduled", "schedule": "default"});

    // 1. The workload's run makes its sets; EC2's completion event for them (a copy run) shares
    //    every one it can with the vault at once.
    let first = run(&workload, daily.clone(), start).await;
    assert_eq!(first.created.len(), 5, "{first:?}");
    let own: Vec<String> = first
        .created
        .iter()
        .filter_map(|c| c.snapshot_id.clone())
        .collect();
    let completed = run(
        &workload,
        emulator::events::snapshots_completed(emulator::ACCOUNT_ID, emulator::REGION, &own),
        start,
    )
    .await;
    let shares = completed
        .vault
        .clone()
        .expect("a workload with a vault reports it");
    assert_eq!(shares.shared, 4, "{completed:?}");
    let refused: Vec<&str> = completed
        .skipped
        .iter()
        .filter(|skip| skip.reason.contains("not sent to the vault"))
        .map(|skip| skip.reason.as_str())
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "the aws/ebs-encrypted snapshot: {:?}",
        completed.skipped
    );
    assert!(refused[0].contains("aws/ebs") && refused[0].contains("source_kms_keys"));
    let sharing = s
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .restorable_by_user_ids(VAULT)
        .send()
        .await
        .unwrap();
    assert_eq!(sharing.snapshots().len(), 4);

    // 2. The vault does not pull for 40 hours: the workload's next run says so, past its bound.
    let late = run(
        &workload,
        json!({"action": "cleanup"}),
        start + Duration::hours(40),
    )
    .await;
    let lag = late.vault.clone().unwrap();
    assert_eq!((lag.shared, lag.lag_hours), (0, Some(40)), "{lag:?}");
    assert_eq!(lag.behind.len(), 3, "every instance: {lag:?}");
    assert!(
        late.warnings
            .iter()
            .any(|w| w.contains("vault.max_lag_hours=36")),
        "{:?}",
        late.warnings
    );
    let metrics = late.metrics(0);
    assert_eq!(metrics["VaultLagHours"], 40);

    // 3. The vault pulls: each shared snapshot copied with its key, tagged, locked in compliance
    //    mode until its vault expiry; a second run copies nothing twice.
    let pulled = run(&vault, pull.clone(), start + Duration::hours(40)).await;
    let copies = pulled
        .vault_copies
        .clone()
        .expect("a vault reports its copies");
    assert_eq!(copies.started, 4, "{pulled:?}");
    assert_eq!(pulled.locked.len(), 4, "{pulled:?}");
    assert!(pulled.failed.is_empty(), "{:?}", pulled.failed);
    let copied = vault_copies().await;
    assert_eq!(copied.len(), 4);
    let vault_ids = ids(&copied);
    for copy in &copied {
        assert_eq!(copy.kms_key_id(), Some(VAULT_KEY));
        let tag = |key: &str| {
            copy.tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .map(str::to_owned)
        };
        assert_eq!(
            tag("smartvault:source-account").as_deref(),
            Some(emulator::ACCOUNT_ID)
        );
        assert_eq!(tag("smartvault:managed-by").as_deref(), Some("vault"));
        assert!(tag("smartvault:instance-id").is_some_and(|i| fleet.iter().any(|f| f.id == i)));
    }
    let vault_locks = vault_ec2.describe_locked_snapshots().send().await.unwrap();
    assert_eq!(vault_locks.snapshots().len(), 4);
    for lock in vault_locks.snapshots() {
        assert_eq!(lock.lock_state(), Some(&LockState::Compliance));
    }
    let again = run(&vault, pull.clone(), start + Duration::hours(41)).await;
    assert_eq!(again.vault_copies.unwrap().started, 0);
    assert_eq!(vault_copies().await.len(), 4);

    // 4. The workload sees the copies through the reader role and ends every share. legacy's
    //    set lacks its aws/ebs-encrypted snapshot: it never reaches the vault whole, so its lag
    //    keeps counting, and the alarm says so.
    let caught_up = run(
        &workload,
        json!({"action": "cleanup"}),
        start + Duration::hours(42),
    )
    .await;
    let shares = caught_up.vault.unwrap();
    assert_eq!(
        (shares.unshared, shares.lag_hours),
        (4, Some(42)),
        "{shares:?}"
    );
    assert_eq!(shares.behind.len(), 1, "{shares:?}");
    assert!(shares.behind[0].starts_with(&fleet[2].id), "{shares:?}");
    let sharing = s
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .restorable_by_user_ids(VAULT)
        .send()
        .await
        .unwrap();
    assert!(
        sharing.snapshots().is_empty(),
        "every share is removed once copied"
    );
    let visible = vault_ec2
        .describe_snapshots()
        .owner_ids(emulator::ACCOUNT_ID)
        .restorable_by_user_ids("self")
        .send()
        .await
        .unwrap();
    assert!(visible.snapshots().is_empty());

    // 5. The attacker: the workload account's administrator.
    s.emulator.set_lock_clock(2 * 3600).unwrap();
    let admin_there = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&s.sdk)
            .region(aws_sdk_ec2::config::Region::new(VAULT_REGION))
            .build(),
    );
    let through_reader =
        aws_sdk_ec2::Client::new(&s.emulator.assumed(READER, VAULT_REGION).await.unwrap());
    for copy in &vault_ids {
        for (who, ec2) in [
            ("workload admin", &admin_there),
            ("vault reader role", &through_reader),
        ] {
            let deleted = ec2.delete_snapshot().snapshot_id(copy).send().await;
            assert!(deleted.is_err(), "{who} deleted {copy}");
            let unlocked = ec2.unlock_snapshot().snapshot_id(copy).send().await;
            assert!(unlocked.is_err(), "{who} unlocked {copy}");
            let shortened = ec2
                .lock_snapshot()
                .snapshot_id(copy)
                .lock_mode(LockMode::Governance)
                .lock_duration(1)
                .send()
                .await;
            assert!(shortened.is_err(), "{who} shortened the lock of {copy}");
        }
        // The reader role reaches the vault account; only the compliance lock stops it there
        // (on AWS its policy allows nothing but reads, checks/templates.rs).
        let refused = through_reader
            .delete_snapshot()
            .snapshot_id(copy)
            .send()
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some("SnapshotLocked"));
    }
    // Any event the workload's function accepts, far in the future, and the workload's own
    // sets deleted by the admin once their locks end: the vault's copies are untouched.
    let far = start + Duration::days(400);
    let copy_ids: Vec<String> = vault_ids.iter().cloned().collect();
    for event in [
        json!({"action": "cleanup"}),
        json!({"action": "backup", "force": true}),
        json!({"action": "scheduled", "schedule": "daily"}),
        json!({"action": "restore-test"}),
        json!({"action": "backup", "instance_ids": [fleet[0].id.clone()], "force": true}),
        emulator::events::snapshots_completed(emulator::ACCOUNT_ID, emulator::REGION, &copy_ids),
        emulator::events::snapshots_completed(emulator::ACCOUNT_ID, VAULT_REGION, &copy_ids),
    ] {
        let _ = handler::handle(&workload, &event, far).await;
    }
    // The workload's own locked sets survive their admin until their lock ends...
    for id in &own {
        let refused = s.ec2.delete_snapshot().snapshot_id(id).send().await;
        assert_eq!(
            refused.unwrap_err().code(),
            Some("SnapshotLocked"),
            "the workload's own set {id} is locked until its expiry"
        );
    }
    // ...then the admin deletes every one of them.
    s.emulator.set_lock_clock(8 * 86_400).unwrap();
    for id in &own {
        let _ = s.ec2.delete_snapshot().snapshot_id(id).send().await;
    }
    assert_eq!(
        ids(&vault_copies().await),
        vault_ids,
        "every vault copy survives"
    );

    // 6. The vault's own rule: every copy still kept two days before its retention ends (the
    //    sets the attacker's backup events made are pulled now too), all deleted after it.
    s.emulator.set_lock_clock(28 * 86_400).unwrap();
    let kept = run(&vault, pull.clone(), start + Duration::days(28)).await;
    assert_eq!(kept.vault_copies.unwrap().deleted, 0);
    let present = ids(&vault_copies().await);
    assert!(present.is_superset(&vault_ids), "{present:?}");
    s.emulator.set_lock_clock(31 * 86_400).unwrap();
    let expired = run(&vault, pull, start + Duration::days(31)).await;
    assert_eq!(
        expired.vault_copies.unwrap().deleted,
        present.len(),
        "{:?}",
        expired.failed
    );
    assert!(vault_copies().await.is_empty());
}
