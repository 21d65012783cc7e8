//! A workload and its vault account deployed and destroyed by the real `xtask` on the emulator:
//! render previews locks, the bin and the vault; deploy refuses a workload whose backed-up
//! volume cannot be shared (exit 2, naming it); the vault (account B, another region) gets its
//! read-only role and its variables, the workload its variables and lag alarm; destroy removes
//! both.

use crate::common::{fake_artifact, scratch, xtask};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};

const ROLE_B: &str = "arn:aws:iam::222222222222:role/smartvault-deployer";

const CONFIG: &str = r#"environments:
  prod:
    region: us-east-1
    account_id: "123456789012"
    notification_emails: [ops@example.com]
    schedules:
      - {name: daily, expression: "cron(0 1 * * ? *)", retention_days: 14, lock: {mode: governance}}
    recycle_bin: {retention_days: 7}
    vault: {environment: vault, max_lag_hours: 30}
  vault:
    region: us-west-2
    account_id: "222222222222"
    role_arn: arn:aws:iam::222222222222:role/smartvault-deployer
    notification_emails: [security@example.com]
    vault_for:
      environments: [prod]
      retention_days: 90
      kms_key: arn:aws:kms:us-west-2:222222222222:key/vault
      cool_off_hours: 24
"#;

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_workload_and_its_vault_deploy_preview_refuse_what_cannot_be_shared_and_go() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("vault");
    let config = dir.join("smartvault.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let artifact = fake_artifact(&dir);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", config.as_str()]);
        xtask(&emulator, &all)
    };

    // render shows the lock, the bin and the vault, on both sides.
    let prod = run(&["render", "--env", "prod"]);
    assert!(prod.status.success(), "{}", text(&prod));
    let shown = text(&prod);
    for expected in [
        "locked (governance) for its 14 days",
        "recycle bin: a deleted snapshot of smartvault-prod",
        "vault: each completed set is shared with environment vault (account 222222222222, us-west-2)",
        "more than 30 h",
    ] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }
    let vault = run(&["render", "--env", "vault"]);
    assert!(
        text(&vault).contains("vault for prod (123456789012 in us-east-1): copies kept 90 days"),
        "{}",
        text(&vault)
    );

    // A backed-up volume under the account's aws/ebs key cannot reach the vault: refused.
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let fleet = fleet::launch_all(&ec2, &[InstanceSpec::backup("legacy")])
        .await
        .unwrap();
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{}a", emulator::REGION))
        .size(8)
        .encrypted(true)
        .send()
        .await
        .unwrap();
    ec2.attach_volume()
        .volume_id(volume.volume_id().unwrap())
        .instance_id(&fleet[0].id)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    let artifact = artifact.to_str().unwrap();
    let refused = run(&["deploy", "--env", "prod", "--artifact", artifact, "--yes"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let message = text(&refused);
    assert!(
        message.contains("vault-keys")
            && message.contains(volume.volume_id().unwrap())
            && message.contains("aws/ebs")
            && message.contains("admits account 222222222222"),
        "{message}"
    );
    ec2.terminate_instances()
        .instance_ids(&fleet[0].id)
        .send()
        .await
        .unwrap();

    // The vault first (its reader role must exist), in account B; then the workload.
    let deployed = run(&["deploy", "--env", "vault", "--artifact", artifact, "--yes"]);
    assert!(deployed.status.success(), "{}", text(&deployed));
    let b = emulator.assumed(ROLE_B, "us-west-2").await.unwrap();
    let reader = aws_sdk_iam::Client::new(&b)
        .get_role()
        .role_name("smartvault-vault-reader")
        .send()
        .await
        .unwrap();
    let trust = urlencoding_decode(
        reader
            .role()
            .unwrap()
            .assume_role_policy_document()
            .unwrap(),
    );
    assert!(
        trust.contains("arn:aws:iam::123456789012:root"),
        "the workload account may assume it: {trust}"
    );
    let variables = |sdk: aws_config::SdkConfig, name: &'static str| async move {
        aws_sdk_lambda::Client::new(&sdk)
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap()
            .environment()
            .unwrap()
            .variables()
            .unwrap()
            .clone()
    };
    let vault_vars = variables(b.clone(), "smartvault-vault").await;
    let keeper: function::vault::VaultKeeper =
        serde_json::from_str(&vault_vars["VAULT_FOR"]).unwrap();
    assert_eq!(keeper.sources[0].account, "123456789012");
    assert_eq!(keeper.cool_off_hours, Some(24));
    assert_eq!(vault_vars["VAULT"], "");

    let deployed = run(&["deploy", "--env", "prod", "--artifact", artifact, "--yes"]);
    assert!(deployed.status.success(), "{}", text(&deployed));
    let a = emulator.sdk_config().await;
    let prod_vars = variables(a.clone(), "smartvault-prod").await;
    let target: function::vault::VaultTarget = serde_json::from_str(&prod_vars["VAULT"]).unwrap();
    assert_eq!(
        target.reader_role,
        "arn:aws:iam::222222222222:role/smartvault-vault-reader"
    );
    assert_eq!(target.max_lag_hours, 30);
    // The emulator's CloudFormation skips role policies and alarms (their statements and the
    // lag alarm are proven on the template, checks/templates.rs); the completion-event rule
    // comes with the vault alone (this workload has no copies).
    let resources = stack_resources(&a, "smartvault-prod").await;
    assert!(
        resources.iter().any(|r| r == "SnapshotsCompletedRule"),
        "{resources:?}"
    );
    assert!(
        !resources.iter().any(|r| r == "VaultReaderRole"),
        "a workload is no vault: {resources:?}"
    );
    let vault_resources = stack_resources(&b, "smartvault-vault").await;
    assert!(
        vault_resources.iter().any(|r| r == "VaultReaderRole"),
        "{vault_resources:?}"
    );

    // The deployed configurations at work: the workload's set is made and, on EC2's completion
    // event, shared; the vault copies it. Then restore --from-vault brings it back as volumes
    // in the vault account (clean-room recovery).
    let web = fleet::launch_all(&ec2, &[InstanceSpec::backup("web").data_volumes(1)])
        .await
        .unwrap();
    let workload = crate::common::function_context(
        &a,
        "smartvault-prod",
        &[
            ("SCHEDULES", &prod_vars["SCHEDULES"]),
            ("VAULT", &prod_vars["VAULT"]),
        ],
    )
    .await;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let made = function::handler::handle(
        &workload,
        &serde_json::json!({"action": "scheduled", "schedule": "daily"}),
        now,
    )
    .await
    .unwrap();
    let ids: Vec<String> = made
        .created
        .iter()
        .filter_map(|c| c.snapshot_id.clone())
        .collect();
    assert_eq!(ids.len(), 2, "{made:?}");
    let completed =
        emulator::events::snapshots_completed(emulator::ACCOUNT_ID, emulator::REGION, &ids);
    let shared = function::handler::handle(&workload, &completed, now)
        .await
        .unwrap();
    assert_eq!(shared.vault.unwrap().shared, 2);
    let keeper = crate::common::function_context(
        &b,
        "smartvault-vault",
        &[
            ("SCHEDULES", &vault_vars["SCHEDULES"]),
            ("VAULT_FOR", &vault_vars["VAULT_FOR"]),
        ],
    )
    .await;
    let pulled = function::handler::handle(
        &keeper,
        &serde_json::json!({"action": "scheduled", "schedule": "default"}),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        pulled.vault_copies.unwrap().started,
        2,
        "{:?}",
        pulled.failed
    );

    let refused = run(&[
        "restore",
        "--env",
        "vault",
        "--from-vault",
        "--instance",
        &web[0].id,
        "--yes",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("environment vault has no vault"),
        "{}",
        text(&refused)
    );
    let restored = run(&[
        "restore",
        "--env",
        "prod",
        "--from-vault",
        "--instance",
        &web[0].id,
        "--az",
        "us-west-2a",
        "--yes",
        "--output",
        "json",
    ]);
    assert!(restored.status.success(), "{}", text(&restored));
    let result: serde_json::Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(result["vault_account"], "222222222222");
    assert_eq!(result["region"], "us-west-2");
    let volumes = result["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2, "{result}");
    let in_vault = aws_sdk_ec2::Client::new(&b);
    for volume in volumes {
        let id = volume["volume_id"].as_str().unwrap();
        let found = in_vault
            .describe_volumes()
            .volume_ids(id)
            .send()
            .await
            .unwrap();
        assert_eq!(
            found.volumes()[0].availability_zone(),
            Some("us-west-2a"),
            "the volume is in the vault account's zone"
        );
    }
    assert!(
        ec2.describe_volumes()
            .volume_ids(volumes[0]["volume_id"].as_str().unwrap())
            .send()
            .await
            .is_err(),
        "nothing is restored into the workload account"
    );

    // Both go with destroy.
    let destroyed = run(&["destroy", "--env", "prod", "--yes"]);
    assert!(destroyed.status.success(), "{}", text(&destroyed));
    let kept = in_vault
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.snapshots().len(),
        2,
        "destroying the workload leaves the vault's copies"
    );
    let destroyed = run(&["destroy", "--env", "vault", "--yes"]);
    assert!(destroyed.status.success(), "{}", text(&destroyed));
    assert!(
        aws_sdk_iam::Client::new(&b)
            .get_role()
            .role_name("smartvault-vault-reader")
            .send()
            .await
            .is_err(),
        "the reader role goes with the vault's stack"
    );
}

/// IAM returns a role's trust policy URL-encoded.
fn urlencoding_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The logical ids of a stack's resources (moto lists the ones a condition left out without a
/// name).
async fn stack_resources(sdk: &aws_config::SdkConfig, stack: &str) -> Vec<String> {
    aws_sdk_cloudformation::Client::new(sdk)
        .list_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .stack_resource_summaries()
        .iter()
        .filter_map(|r| {
            r.logical_resource_id()
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
        })
        .collect()
}
