//! Promotion against the emulator: dev's exact artifact reaches staging with staging's own
//! settings, and promotion from a missing or unhealthy stack refuses.

use crate::common::{assert_fields, fake_artifact, json, scratch, xtask};
use emulator::Emulator;

#[tokio::test]
async fn dev_promoted_to_staging_runs_the_same_artifact_with_its_own_settings() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("promote");
    let artifact = fake_artifact(&dir);
    let deployed = json(&xtask(
        &emulator,
        &[
            "deploy",
            "--env",
            "dev",
            "--artifact",
            artifact.to_str().unwrap(),
            "--yes",
            "--output",
            "json",
        ],
    ));
    let sha = deployed["artifact_sha256"].as_str().unwrap().to_owned();

    // Rebuilding is impossible here: the artifact zip is deleted before promoting.
    std::fs::remove_file(&artifact).unwrap();
    let promoted = json(&xtask(
        &emulator,
        &[
            "promote", "--from", "dev", "--to", "staging", "--yes", "--output", "json",
        ],
    ));
    assert_fields(
        &promoted,
        &[
            "from",
            "to",
            "source_stack",
            "source_status",
            "artifact_sha256",
            "deploy",
        ],
    );
    assert_eq!(promoted["from"], "dev");
    assert_eq!(promoted["to"], "staging");
    assert_eq!(promoted["source_stack"], "smartvault-dev");
    assert_eq!(promoted["artifact_sha256"], sha.as_str());
    assert_eq!(promoted["deploy"]["result"], "created");
    assert_eq!(promoted["deploy"]["stack"], "smartvault-staging");

    let status = json(&xtask(
        &emulator,
        &["status", "--env", "staging", "--output", "json"],
    ));
    assert_eq!(
        status["artifact_sha256"],
        sha.as_str(),
        "staging runs dev's artifact"
    );
    assert_eq!(status["smartvault_version"], env!("CARGO_PKG_VERSION"));

    // Staging keeps its own settings (the shipped config: dev retains 3 days, staging 7).
    let sdk = emulator.sdk_config().await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .region(aws_sdk_lambda::config::Region::new("eu-west-1"))
            .build(),
    );
    let retention = |name: &'static str| {
        let lambda = lambda.clone();
        async move {
            let function = lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .unwrap();
            let schedules: serde_json::Value = serde_json::from_str(
                &function.environment().unwrap().variables().unwrap()["SCHEDULES"],
            )
            .unwrap();
            schedules[0]["retention_days"].to_string()
        }
    };
    assert_eq!(retention("smartvault-dev").await, "3");
    assert_eq!(retention("smartvault-staging").await, "7");

    // Promoting again is a no-op deploy that still exits 0.
    let again = json(&xtask(
        &emulator,
        &[
            "promote", "--from", "dev", "--to", "staging", "--yes", "--output", "json",
        ],
    ));
    assert_eq!(again["deploy"]["result"], "unchanged");
}

#[tokio::test]
async fn promotion_refuses_a_missing_or_unhealthy_source() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let missing = xtask(
        &emulator,
        &["promote", "--from", "prod", "--to", "staging", "--yes"],
    );
    assert_eq!(missing.status.code(), Some(1));
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(
        message.contains("source stack smartvault-prod does not exist"),
        "{message}"
    );

    // A stack whose first change set was never executed sits in REVIEW_IN_PROGRESS.
    let sdk = emulator.sdk_config().await;
    let cloudformation = aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(&sdk)
            .region(aws_sdk_cloudformation::config::Region::new("eu-west-1"))
            .build(),
    );
    cloudformation
        .create_change_set()
        .stack_name("smartvault-prod")
        .change_set_name("never-executed")
        .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Create)
        .template_body("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n")
        .send()
        .await
        .unwrap();
    let unhealthy = xtask(
        &emulator,
        &["promote", "--from", "prod", "--to", "staging", "--yes"],
    );
    assert_eq!(unhealthy.status.code(), Some(1));
    let message = String::from_utf8_lossy(&unhealthy.stderr);
    assert!(
        message.contains("is in REVIEW_IN_PROGRESS; promote only from"),
        "{message}"
    );
    let staging = json(&xtask(
        &emulator,
        &["status", "--env", "staging", "--output", "json"],
    ));
    assert_eq!(
        staging["stack_status"],
        serde_json::Value::Null,
        "nothing was deployed"
    );
}
