//! Promotion across AWS accounts on the emulator: dev and staging in account A, prod in account
//! B reached by `role_arn`. The same-account promotion copies nothing; the cross-account one
//! copies the exact bytes into B's own bootstrap bucket and deploys there only; a tampered copy,
//! a missing source artifact and A's credentials for B's environment are refused.

use crate::common::{fake_artifact, json, scratch, xtask};
use emulator::Emulator;
use std::path::Path;

const ACCOUNT_B: &str = "222222222222";
const ROLE_B: &str = "arn:aws:iam::222222222222:role/smartvault-deployer";

const CONFIG: &str = r#"environments:
  dev:
    region: us-east-1
    notification_emails: [dev@example.com]
  staging:
    region: us-east-1
    notification_emails: [ops@example.com]
  prod:
    region: us-east-1
    account_id: "222222222222"
    role_arn: arn:aws:iam::222222222222:role/smartvault-deployer
    external_id: smartvault-prod
    notification_emails: [ops@example.com]
"#;

/// The SDK configuration of account B, by assuming its role as xtask does.
async fn account_b(emulator: &Emulator) -> aws_config::SdkConfig {
    crate::common::assumed(emulator, ROLE_B, emulator::REGION).await
}

fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

async fn stack_names(sdk: &aws_config::SdkConfig) -> Vec<String> {
    let stacks = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .send()
        .await
        .unwrap();
    let mut names: Vec<String> = stacks
        .stacks()
        .iter()
        .filter(|s| s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE"))
        .filter_map(|s| s.stack_name().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn write_config(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn promotion_copies_the_exact_bytes_into_the_other_account_and_refuses_tampering() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("accounts");
    let config = write_config(&dir, "smartvault.yaml", CONFIG);
    let artifact = fake_artifact(&dir);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", config.as_str()]);
        xtask(&emulator, &all)
    };
    let deployed = json(&run(&[
        "deploy",
        "--env",
        "dev",
        "--artifact",
        artifact.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(deployed["account"], emulator::ACCOUNT_ID);
    let sha = deployed["artifact_sha256"].as_str().unwrap().to_owned();

    // Same account: nothing is copied.
    let staging = json(&run(&[
        "promote", "--from", "dev", "--to", "staging", "--yes", "--output", "json",
    ]));
    assert_eq!(staging["deploy"]["artifact_uploaded"], false);
    assert_eq!(staging["deploy"]["account"], emulator::ACCOUNT_ID);

    // Another account: prod's role is assumed, B is bootstrapped, and the bytes are copied
    // into B's own bucket.
    let prod = json(&run(&[
        "promote", "--from", "staging", "--to", "prod", "--yes", "--output", "json",
    ]));
    assert_eq!(prod["artifact_sha256"], sha.as_str());
    assert_eq!(prod["deploy"]["account"], ACCOUNT_B);
    assert_eq!(prod["deploy"]["artifact_uploaded"], true);
    assert_eq!(prod["deploy"]["result"], "created");

    let a = emulator.sdk_config().await;
    let b = account_b(&emulator).await;
    assert_eq!(
        stack_names(&a).await,
        [
            "smartvault-bootstrap",
            "smartvault-dev",
            "smartvault-staging"
        ],
        "nothing of prod in account A"
    );
    assert_eq!(
        stack_names(&b).await,
        ["smartvault-bootstrap", "smartvault-prod"],
        "prod and its bootstrap in account B only"
    );
    let parameters = aws_sdk_cloudformation::Client::new(&b)
        .describe_stacks()
        .stack_name("smartvault-prod")
        .send()
        .await
        .unwrap();
    let parameter = |key: &str| {
        parameters.stacks()[0]
            .parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.parameter_value())
            .unwrap()
            .to_owned()
    };
    let (bucket_b, key) = (parameter("ArtifactBucket"), parameter("ArtifactKey"));
    assert_eq!(parameter("ArtifactSha256"), sha);
    let buckets_a = s3(&a).list_buckets().send().await.unwrap();
    assert!(
        buckets_a
            .buckets()
            .iter()
            .all(|x| x.name() != Some(bucket_b.as_str())),
        "prod's artifact is in B's own bucket"
    );
    let copy = s3(&b)
        .get_object()
        .bucket(&bucket_b)
        .key(&key)
        .send()
        .await
        .unwrap();
    let bytes = copy.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), std::fs::read(&artifact).unwrap().as_slice());

    // A tampered object in B's bucket under the artifact's name is found and refused.
    s3(&b)
        .put_object()
        .bucket(&bucket_b)
        .key(&key)
        .body(b"tampered".to_vec().into())
        .send()
        .await
        .unwrap();
    let refused = run(&["promote", "--from", "staging", "--to", "prod", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains(&format!("s3://{bucket_b}/{key} holds bytes with sha256"))
            && message.contains("changed after it was uploaded; nothing was deployed"),
        "{message}"
    );

    // prod's account guard refuses account A's credentials.
    let without_role = CONFIG.replace(
        "    role_arn: arn:aws:iam::222222222222:role/smartvault-deployer\n    external_id: smartvault-prod\n",
        "",
    );
    let guard = write_config(&dir, "without-role.yaml", &without_role);
    let refused = xtask(
        &emulator,
        &[
            "status", "--env", "prod", "--config", &guard, "--output", "json",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains(&format!(
            "these credentials are for account {}, but the environment expects account {ACCOUNT_B}",
            emulator::ACCOUNT_ID
        )) && message.contains("role_arn/profile"),
        "{message}"
    );

    // A source whose artifact is gone changes nothing in the target.
    let dev_stack = aws_sdk_cloudformation::Client::new(&a)
        .describe_stacks()
        .stack_name("smartvault-dev")
        .send()
        .await
        .unwrap();
    let dev_bucket = dev_stack.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("ArtifactBucket"))
        .and_then(|p| p.parameter_value())
        .unwrap()
        .to_owned();
    let versions = s3(&a)
        .list_object_versions()
        .bucket(&dev_bucket)
        .send()
        .await
        .unwrap();
    for version in versions.versions() {
        s3(&a)
            .delete_object()
            .bucket(&dev_bucket)
            .key(version.key().unwrap())
            .set_version_id(version.version_id().map(str::to_owned))
            .send()
            .await
            .unwrap();
    }
    let before = stack_names(&b).await;
    let refused = run(&["promote", "--from", "dev", "--to", "prod", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains(
            "cannot be read (was it deleted from the bucket?); redeploy dev and promote again"
        ),
        "{message}"
    );
    assert_eq!(stack_names(&b).await, before);
}
