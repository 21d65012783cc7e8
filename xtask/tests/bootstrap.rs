//! `cargo xtask bootstrap` against the emulator: it creates the artifact bucket's stack, leaves
//! a current one alone, and brings one made from an older template up to the current one.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_fields, json, xtask};
use emulator::Emulator;

/// The bootstrap template as SmartVault 0.1 shipped it: current artifacts expired by age.
const OLDER_TEMPLATE: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Description: SmartVault bootstrap (an older version)
Parameters:
  ArtifactExpirationDays:
    Type: Number
    Default: 365
Resources:
  ArtifactBucket:
    Type: AWS::S3::Bucket
    Properties:
      VersioningConfiguration:
        Status: Enabled
      LifecycleConfiguration:
        Rules:
          - Id: expire-old-artifacts
            Status: Enabled
            Prefix: artifacts/
            ExpirationInDays: !Ref ArtifactExpirationDays
Outputs:
  ArtifactBucketName:
    Value: !Ref ArtifactBucket
"#;

fn bootstrap(emulator: &Emulator) -> serde_json::Value {
    json(&xtask(
        emulator,
        &[
            "bootstrap",
            "--region",
            emulator::REGION,
            "--yes",
            "--output",
            "json",
        ],
    ))
}

#[tokio::test]
async fn bootstrap_creates_then_leaves_alone_then_updates_an_older_stack() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let refused = xtask(&emulator, &["bootstrap", "--yes"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --region"));

    let created = bootstrap(&emulator);
    assert_fields(
        &created,
        &["stack", "region", "account", "result", "changes", "bucket"],
    );
    assert_eq!(created["result"], "created");
    assert!(
        created["bucket"]
            .as_str()
            .unwrap()
            .starts_with("smartvault-bootstrap-")
    );
    let again = bootstrap(&emulator);
    assert_eq!(again["result"], "unchanged");
    assert_eq!(again["bucket"], created["bucket"]);

    // A stack made from an older template is brought up to the current one.
    let older = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let cloudformation = aws_sdk_cloudformation::Client::new(&older.sdk_config().await);
    cloudformation
        .create_stack()
        .stack_name("smartvault-bootstrap")
        .template_body(OLDER_TEMPLATE)
        .send()
        .await
        .unwrap();
    let updated = bootstrap(&older);
    assert_eq!(updated["result"], "updated");
    let body = cloudformation
        .get_template()
        .stack_name("smartvault-bootstrap")
        .send()
        .await
        .unwrap();
    let current =
        std::fs::read_to_string(emulator::workspace_root().join("templates/bootstrap.yaml"))
            .unwrap();
    assert_eq!(body.template_body().unwrap(), current);
    assert_eq!(bootstrap(&older)["result"], "unchanged");
}
