//! The vault under IAM enforcement, two accounts: the workload's function runs as a user
//! holding exactly its role's policy and `vault-shares`, the vault's as a user holding exactly
//! its role's policy and `vault-copies`, each resolved from templates/smartvault.yaml as the
//! stacks would hold them; no call either makes is denied. The workload account's
//! administrator, holding every permission there, assumes the vault's reader role and is denied
//! every deletion, unlock and lock change of a vault copy; without `vault-shares` the workload
//! cannot share.

use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use function::context::Context;
use function::handler;
use serde_json::{Value, json};
use std::collections::HashMap;

const VAULT: &str = "222222222222";
const HOME: &str = "us-east-1";
const VAULT_REGION: &str = "us-west-2";
const WORKLOAD_STACK: &str = "smartvault-prod";
const VAULT_STACK: &str = "smartvault-vault";
const READER: &str = "arn:aws:iam::222222222222:role/smartvault-vault-reader";
const VAULT_KEY: &str = "arn:aws:kms:us-west-2:222222222222:key/vault";
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// A template value with `!Sub`, `!Ref` and `!If` resolved: `values` for names, `true_conditions`
/// for the conditions that hold.
pub(crate) fn resolve(
    value: &serde_norway::Value,
    values: &HashMap<&str, Value>,
    true_conditions: &[&str],
) -> Option<Value> {
    use serde_norway::Value as Y;
    Some(match value {
        Y::Tagged(tagged) if tagged.tag == "Sub" => {
            let mut text = tagged.value.as_str().unwrap().to_owned();
            for (name, resolved) in values {
                if let Some(s) = resolved.as_str() {
                    text = text.replace(&format!("${{{name}}}"), s);
                }
            }
            assert!(!text.contains("${"), "unresolved: {text}");
            Value::String(text)
        }
        Y::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str().unwrap();
            if name == "AWS::NoValue" {
                return None;
            }
            values
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("no value for !Ref {name}"))
        }
        Y::Tagged(tagged) if tagged.tag == "If" => {
            let items = tagged.value.as_sequence().unwrap();
            let chosen = if true_conditions.contains(&items[0].as_str().unwrap()) {
                &items[1]
            } else {
                &items[2]
            };
            return resolve(chosen, values, true_conditions);
        }
        Y::Mapping(map) => map
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().unwrap().to_owned(),
                    resolve(v, values, true_conditions)?,
                ))
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Y::Sequence(items) => items
            .iter()
            .filter_map(|v| resolve(v, values, true_conditions))
            .collect(),
        Y::String(text) => Value::String(text.clone()),
        other => panic!("unexpected {other:?} in a policy"),
    })
}

/// The policy documents a role of the stack holds: the role's own inline policy and the role
/// policies named, resolved.
pub(crate) fn policies(
    resources: &[&str],
    values: &HashMap<&str, Value>,
    conditions: &[&str],
) -> Vec<Value> {
    let text =
        std::fs::read_to_string(emulator::workspace_root().join("templates/smartvault.yaml"))
            .unwrap();
    let template: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    resources
        .iter()
        .map(|name| {
            let properties = &template["Resources"][*name]["Properties"];
            let document = if properties.get("Policies").is_some() {
                &properties["Policies"][0]["PolicyDocument"]
            } else {
                &properties["PolicyDocument"]
            };
            resolve(document, values, conditions).unwrap()
        })
        .collect()
}

/// A user of `iam`'s account holding exactly `documents`, and an SDK configuration with its key.
pub(crate) async fn user(
    emulator: &Emulator,
    iam: &aws_sdk_iam::Client,
    name: &str,
    documents: &[Value],
    region: &str,
) -> aws_config::SdkConfig {
    iam.create_user().user_name(name).send().await.unwrap();
    for (n, document) in documents.iter().enumerate() {
        iam.put_user_policy()
            .user_name(name)
            .policy_name(format!("{name}-{n}"))
            .policy_document(document.to_string())
            .send()
            .await
            .unwrap();
    }
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    emulator
        .loader(emulator.endpoint())
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            key.access_key_id(),
            key.secret_access_key(),
            None,
            None,
            "iam-user",
        ))
        .load()
        .await
}

/// The deployment's topic `name` in `sdk`'s account, its ARN.
pub(crate) async fn topic(sdk: &aws_config::SdkConfig, name: &str) -> String {
    aws_sdk_sns::Client::new(sdk)
        .create_topic()
        .name(name)
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned()
}

pub(crate) fn strings(values: &[(&'static str, &str)]) -> HashMap<&'static str, Value> {
    values
        .iter()
        .map(|(k, v)| (*k, Value::String((*v).to_owned())))
        .collect()
}

pub(crate) async fn context(
    sdk: &aws_config::SdkConfig,
    topic: &str,
    deployment: &str,
    extra: &[(&str, String)],
) -> Context {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("SNS_TOPIC_ARN", topic.to_owned()),
        ("DEPLOYMENT", deployment.to_owned()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let config = function::config::Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
    Context::new(sdk, config)
}

#[tokio::test]
async fn the_vault_policies_hold_every_call_and_the_reader_role_denies_every_change() {
    let emulator = Emulator::start_with_iam().unwrap_or_else(|e| panic!("{e}"));
    let a = emulator.sdk_config().await;
    let b = emulator
        .assumed(
            &format!("arn:aws:iam::{VAULT}:role/administrator"),
            VAULT_REGION,
        )
        .await
        .unwrap();
    let workload_topic = topic(&a, WORKLOAD_STACK).await;
    let vault_topic = topic(&b, VAULT_STACK).await;
    let ec2 = aws_sdk_ec2::Client::new(&a);
    let fleet = fleet::launch_all(&ec2, &[InstanceSpec::backup("web").data_volumes(1)])
        .await
        .unwrap();
    assert_eq!(fleet.len(), 1);

    // The workload's function: the role's policy and vault-shares, for account A.
    let mut workload_values = strings(&[
        ("AWS::Partition", "aws"),
        ("AWS::Region", HOME),
        ("AWS::AccountId", emulator::ACCOUNT_ID),
        ("DeploymentName", WORKLOAD_STACK),
        ("Topic", &workload_topic),
        ("VaultReaderRoleArn", READER),
    ]);
    workload_values.insert("VaultSourceSnapshots", json!([]));
    let workload_policies = policies(
        &["Role", "VaultSharePolicy"],
        &workload_values,
        &["HasVault"],
    );
    let a_iam = aws_sdk_iam::Client::new(&a);
    let workload_sdk = user(
        &emulator,
        &a_iam,
        "workload-function",
        &workload_policies,
        HOME,
    )
    .await;
    let unshared_sdk = user(
        &emulator,
        &a_iam,
        "workload-without-vault-shares",
        &workload_policies[..1],
        HOME,
    )
    .await;
    let attacker_sdk = user(
        &emulator,
        &a_iam,
        "workload-administrator",
        &[serde_json::from_str(ALLOW_ALL).unwrap()],
        VAULT_REGION,
    )
    .await;

    // The vault's function: the role's policy and vault-copies, for account B; and its reader
    // role, trusted by account A, with exactly the template's policy.
    let vault_values = {
        let mut v = strings(&[
            ("AWS::Partition", "aws"),
            ("AWS::Region", VAULT_REGION),
            ("AWS::AccountId", VAULT),
            ("DeploymentName", VAULT_STACK),
            ("Topic", &vault_topic),
            ("VaultKmsKeyArn", VAULT_KEY),
        ]);
        v.insert(
            "VaultSourceSnapshots",
            json!([
                format!("arn:aws:ec2:{HOME}::snapshot/*"),
                format!("arn:aws:ec2:{VAULT_REGION}::snapshot/*")
            ]),
        );
        v
    };
    let vault_policies = policies(
        &["Role", "VaultPullPolicy"],
        &vault_values,
        &["IsVault", "HasVaultSources"],
    );
    let b_iam = aws_sdk_iam::Client::new(&b);
    let vault_sdk = user(
        &emulator,
        &b_iam,
        "vault-function",
        &vault_policies,
        VAULT_REGION,
    )
    .await;
    let reader_policy = policies(&["VaultReaderRole"], &vault_values, &[]).remove(0);
    b_iam
        .create_role()
        .role_name("smartvault-vault-reader")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": format!("arn:aws:iam::{}:root", emulator::ACCOUNT_ID)}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    b_iam
        .put_role_policy()
        .role_name("smartvault-vault-reader")
        .policy_name("read-vault-copies")
        .policy_document(reader_policy.to_string())
        .send()
        .await
        .unwrap();
    emulator.enforce_iam().unwrap();

    let target =
        json!({"account": VAULT, "region": VAULT_REGION, "reader_role": READER}).to_string();
    let workload = context(
        &workload_sdk,
        &workload_topic,
        WORKLOAD_STACK,
        &[("VAULT", target.clone())],
    )
    .await;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let made = handler::handle(&workload, &json!({"action": "backup"}), now)
        .await
        .unwrap();
    let ids: Vec<String> = made
        .created
        .iter()
        .filter_map(|c| c.snapshot_id.clone())
        .collect();
    assert_eq!(ids.len(), 2, "{made:?}");

    // Without vault-shares the share is denied, by name; with it, nothing is.
    let denied = context(
        &unshared_sdk,
        &workload_topic,
        WORKLOAD_STACK,
        &[("VAULT", target.clone())],
    )
    .await;
    let refused = handler::handle(
        &denied,
        &emulator::events::snapshots_completed(emulator::ACCOUNT_ID, HOME, &ids),
        now,
    )
    .await;
    let refused = match refused {
        Ok(report) => report,
        Err(function::context::FunctionError::RunFailed(report)) => *report,
        Err(other) => panic!("{other}"),
    };
    assert!(
        refused
            .failed
            .iter()
            .any(|f| f.operation == "ModifySnapshotAttribute" && f.code.contains("AccessDenied")),
        "{:?}",
        refused.failed
    );
    let shared = handler::handle(
        &workload,
        &emulator::events::snapshots_completed(emulator::ACCOUNT_ID, HOME, &ids),
        now,
    )
    .await
    .unwrap();
    assert_eq!(shared.vault.unwrap().shared, 2);
    // The EBS direct read (issue 31) signs its GETs itself: IAM checks the signature first, so
    // a denial of the action, not of the signature, proves it signs as AWS verifies; this role
    // has no ebs: permission yet.
    let unread = function::ebs_direct::changed_blocks(&workload_sdk, None, &ids[0])
        .await
        .unwrap_err();
    assert!(
        unread.code.contains("AccessDenied") && unread.message.contains("ebs:ListChangedBlocks"),
        "{unread}"
    );

    // The vault pulls, copies and locks as the vault-function user, denied nothing.
    let keeper = json!({"sources": [{"account": emulator::ACCOUNT_ID, "region": HOME}], "retention_days": 30, "kms_key": VAULT_KEY}).to_string();
    let vault = context(
        &vault_sdk,
        &vault_topic,
        VAULT_STACK,
        &[("VAULT_FOR", keeper)],
    )
    .await;
    let pulled = handler::handle(&vault, &json!({"action": "cleanup"}), now)
        .await
        .unwrap();
    assert!(pulled.failed.is_empty(), "{:?}", pulled.failed);
    assert_eq!(pulled.vault_copies.unwrap().started, 2);
    assert_eq!(pulled.locked.len(), 2);

    // The workload reads the vault through the reader role and ends the shares, denied nothing.
    let caught_up = handler::handle(&workload, &json!({"action": "cleanup"}), now)
        .await
        .unwrap();
    assert!(caught_up.failed.is_empty(), "{:?}", caught_up.failed);
    assert_eq!(caught_up.vault.unwrap().unshared, 2);

    // Without vault-shares the vault's reader role cannot be assumed either: the read fails,
    // named, and nothing is unshared.
    let unread = match handler::handle(&denied, &json!({"action": "cleanup"}), now).await {
        Ok(report) => report,
        Err(function::context::FunctionError::RunFailed(report)) => *report,
        Err(other) => panic!("{other}"),
    };
    assert!(
        unread
            .failed
            .iter()
            .any(|f| f.message.contains(READER) && f.message.contains("AccessDenied")),
        "{:?}",
        unread.failed
    );
    let unmeasured = unread.vault.unwrap();
    assert_eq!(
        (unmeasured.shared, unmeasured.unshared, unmeasured.lag_hours),
        (0, 0, None),
        "blind, nothing is shared, unshared or measured"
    );

    // The workload's administrator, every permission in account A, through the reader role.
    let sts = aws_sdk_sts::Client::new(&attacker_sdk);
    let assumed = sts
        .assume_role()
        .role_arn(READER)
        .role_session_name("attacker")
        .send()
        .await
        .unwrap();
    let keys = assumed.credentials().unwrap();
    let reader_sdk = emulator
        .loader(emulator.endpoint())
        .region(aws_config::Region::new(VAULT_REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            keys.access_key_id(),
            keys.secret_access_key(),
            Some(keys.session_token().to_owned()),
            None,
            "assumed",
        ))
        .load()
        .await;
    let reader = aws_sdk_ec2::Client::new(&reader_sdk);
    let copies = reader
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert_eq!(copies.snapshots().len(), 2, "the reader may read");
    let denied = |result: Result<(), String>| result.unwrap_err();
    for copy in copies.snapshots() {
        let id = copy.snapshot_id().unwrap();
        for (action, result) in [
            (
                "DeleteSnapshot",
                reader
                    .delete_snapshot()
                    .snapshot_id(id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| format!("{}", aws_sdk_ec2::error::DisplayErrorContext(&e))),
            ),
            (
                "UnlockSnapshot",
                reader
                    .unlock_snapshot()
                    .snapshot_id(id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| format!("{}", aws_sdk_ec2::error::DisplayErrorContext(&e))),
            ),
            (
                "LockSnapshot",
                reader
                    .lock_snapshot()
                    .snapshot_id(id)
                    .lock_mode(aws_sdk_ec2::types::LockMode::Governance)
                    .lock_duration(1)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| format!("{}", aws_sdk_ec2::error::DisplayErrorContext(&e))),
            ),
            (
                "ModifySnapshotAttribute",
                reader
                    .modify_snapshot_attribute()
                    .snapshot_id(id)
                    .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
                    .operation_type(aws_sdk_ec2::types::OperationType::Add)
                    .user_ids(emulator::ACCOUNT_ID)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| format!("{}", aws_sdk_ec2::error::DisplayErrorContext(&e))),
            ),
        ] {
            let error = denied(result);
            assert!(
                error.contains("AccessDenied") || error.contains("UnauthorizedOperation"),
                "{action} through the reader role must be denied by IAM: {error}"
            );
        }
    }
}
