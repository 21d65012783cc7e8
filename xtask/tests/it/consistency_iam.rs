//! Consistent sets under IAM enforcement: the function runs as a user holding exactly its
//! role's policy and the role policy `consistency`, resolved from templates/smartvault.yaml as
//! the stack holds it (its `!Sub` text with the stack's Linux document); its pre and post
//! stages go through and no call is denied. Without `consistency` the read of which instances
//! Systems Manager manages is denied, and with a policy for another document the stage is:
//! each is reported by name and the instances are snapshotted crash-consistent, as configured.
//! (The emulator evaluates no condition: the backup-tag condition on instances is checked on
//! the template, `checks/schemas.rs`.) The emulator patch this rests on: `iam_moto.py`
//! authorizes SendCommand against its document and each instance.

use crate::vault_iam::{context, policies, strings, topic, user};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

const STACK: &str = "smartvault-prod";

/// The `consistency` role policy as the stack holds it: the template's `!Sub` text with the
/// stack's values and `documents` as `${Documents}`.
fn consistency_policy(values: &[(&str, &str)], documents: &[String]) -> Value {
    let text =
        std::fs::read_to_string(emulator::workspace_root().join("templates/smartvault.yaml"))
            .unwrap();
    let template: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let serde_norway::Value::Tagged(sub) =
        &template["Resources"]["ConsistencyPolicy"]["Properties"]["PolicyDocument"]
    else {
        panic!("the consistency policy is not a !Sub");
    };
    let mut text = sub.value[0]
        .as_str()
        .unwrap()
        .replace("${Documents}", &documents.join("\", \""));
    for (name, value) in values {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    assert!(!text.contains("${"), "unresolved: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn consistent_sets_go_through_with_exactly_their_policies_and_fall_back_when_denied() {
    let emulator = Emulator::start_with_iam().unwrap_or_else(|e| panic!("{e}"));
    let admin = emulator.sdk_config().await;
    let topic = topic(&admin, STACK).await;
    let ec2 = aws_sdk_ec2::Client::new(&admin);
    fleet::launch_all(
        &ec2,
        &[
            InstanceSpec::backup("db-1").data_volumes(1),
            InstanceSpec::backup("db-2"),
        ],
    )
    .await
    .unwrap();
    let document = format!("{STACK}-linux-freeze");
    emulator
        .create_stage_document(emulator::ACCOUNT_ID, emulator::REGION, &document)
        .unwrap();

    let values = [
        ("AWS::Partition", "aws"),
        ("AWS::Region", emulator::REGION),
        ("AWS::AccountId", emulator::ACCOUNT_ID),
        ("DeploymentName", STACK),
        ("Topic", topic.as_str()),
        ("BackupTagKey", "Backup"),
        ("BackupTagValue", "true"),
    ];
    let role = policies(&["Role"], &strings(&values), &[]).remove(0);
    let arn = |name: &str| {
        format!(
            "arn:aws:ssm:{}:{}:document/{name}",
            emulator::REGION,
            emulator::ACCOUNT_ID
        )
    };
    let held = consistency_policy(&values, &[arn(&document)]);
    let elsewhere = consistency_policy(&values, &[arn("another-document")]);
    let iam = aws_sdk_iam::Client::new(&admin);
    let function_sdk = user(
        &emulator,
        &iam,
        "function",
        &[role.clone(), held],
        emulator::REGION,
    )
    .await;
    let without_sdk = user(
        &emulator,
        &iam,
        "without-consistency",
        std::slice::from_ref(&role),
        emulator::REGION,
    )
    .await;
    let other_sdk = user(
        &emulator,
        &iam,
        "other-document",
        &[role, elsewhere],
        emulator::REGION,
    )
    .await;
    emulator.enforce_iam().unwrap();

    let vars = [
        (
            "SCHEDULES",
            r#"[{"name":"default","retention_days":7,"keep_last":1,"consistency":{"mode":"script","timeout_seconds":10}}]"#
                .to_owned(),
        ),
        ("FREEZE_DOCUMENT", document.clone()),
    ];
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let run = async |sdk: &aws_config::SdkConfig, day: i64| {
        let mut ctx = context(sdk, &topic, STACK, &vars).await;
        ctx.poll = std::time::Duration::from_millis(200);
        match handler::handle(
            &ctx,
            &json!({"action": "manual-trigger"}),
            start + Duration::days(day),
        )
        .await
        {
            Ok(report) => report,
            Err(function::context::FunctionError::RunFailed(report)) => *report,
            Err(other) => panic!("day {day}: {other}"),
        }
    };

    // Exactly the role's policy and `consistency`: every stage goes through.
    let report = run(&function_sdk, 0).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let consistency = report.consistency.as_ref().unwrap();
    assert_eq!((consistency.achieved, consistency.missed), (2, 0));
    assert_eq!(report.created.len(), 3);

    // Without it: which instances are managed cannot be read; both are snapshotted anyway,
    // and the summary names the denied call.
    let report = run(&without_sdk, 1).await;
    let consistency = report.consistency.as_ref().unwrap();
    assert_eq!((consistency.achieved, consistency.missed), (0, 2));
    for outcome in &consistency.instances {
        assert!(
            outcome.detail.contains("could not be read")
                && outcome.detail.contains("ssm:DescribeInstanceInformation"),
            "{outcome:?}"
        );
    }
    assert_eq!(
        report.created.len(),
        3,
        "the fallback: crash-consistent sets"
    );

    // A policy for another document: the stage is denied by name, and nothing is frozen.
    let report = run(&other_sdk, 2).await;
    let consistency = report.consistency.as_ref().unwrap();
    assert_eq!((consistency.achieved, consistency.missed), (0, 2));
    for outcome in &consistency.instances {
        assert!(
            outcome.detail.contains("the pre stage could not be sent")
                && outcome.detail.contains("ssm:SendCommand"),
            "{outcome:?}"
        );
    }
    assert_eq!(report.created.len(), 3);
}
