//! `cargo xtask bootstrap` against the emulator: it creates the bootstrap stack (artifact
//! bucket, execution role, boundary), leaves a current one alone, brings one made from an older
//! template (version 1: the bucket only) up to the current one, as a deploy to such a region
//! does first with --yes, and deletes it.

use crate::common::{assert_fields, fake_artifact, json, scratch, xtask};
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

/// An emulator whose region was bootstrapped by SmartVault 0.1, and a client of it.
async fn bootstrapped_by_version_1() -> (Emulator, aws_sdk_cloudformation::Client) {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let cloudformation = aws_sdk_cloudformation::Client::new(&emulator.sdk_config().await);
    cloudformation
        .create_stack()
        .stack_name("smartvault-bootstrap")
        .template_body(OLDER_TEMPLATE)
        .send()
        .await
        .unwrap();
    (emulator, cloudformation)
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
        &[
            "stack",
            "region",
            "account",
            "result",
            "changes",
            "bucket",
            "execution_role",
            "version",
        ],
    );
    assert_eq!(created["result"], "created");
    assert_eq!(created["version"], 11);
    assert_eq!(
        created["execution_role"],
        format!(
            "arn:aws:iam::{}:role/smartvault-bootstrap-cfn-exec-{}",
            emulator::ACCOUNT_ID,
            emulator::REGION
        )
    );
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
    let (older, cloudformation) = bootstrapped_by_version_1().await;
    let updated = bootstrap(&older);
    assert_eq!(updated["result"], "updated");
    assert!(
        updated["execution_role"]
            .as_str()
            .unwrap()
            .contains(":role/smartvault-bootstrap-cfn-exec-"),
        "{updated}"
    );
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

    // A deploy to a region bootstrapped by an older SmartVault (version 1, no execution role)
    // says so and, with --yes, brings the bootstrap up to date before deploying with the role.
    let (upgraded, cloudformation) = bootstrapped_by_version_1().await;
    let artifact = fake_artifact(&scratch("bootstrap-upgrade"));
    let deployed = xtask(
        &upgraded,
        &[
            "deploy",
            "--env",
            "local",
            "--artifact",
            artifact.to_str().unwrap(),
            "--yes",
        ],
    );
    let message = String::from_utf8_lossy(&deployed.stderr);
    assert!(deployed.status.success(), "{message}");
    assert!(
        message.contains("stack smartvault-bootstrap in us-east-1 is bootstrap version 1"),
        "{message}"
    );
    let stacks = cloudformation.describe_stacks().send().await.unwrap();
    let role = |name: &str| {
        stacks
            .stacks()
            .iter()
            .find(|s| s.stack_name() == Some(name))
            .and_then(|s| s.role_arn())
            .map(str::to_owned)
    };
    assert_eq!(
        role("smartvault-local").as_deref(),
        Some(
            format!(
                "arn:aws:iam::{}:role/smartvault-bootstrap-cfn-exec-us-east-1",
                emulator::ACCOUNT_ID
            )
            .as_str()
        )
    );
    assert_eq!(
        role("smartvault-bootstrap"),
        None,
        "made with the caller's own"
    );

    // --delete empties the bucket and removes the stack; a second one finds nothing.
    let delete = [
        "bootstrap",
        "--region",
        emulator::REGION,
        "--delete",
        "--yes",
        "--output",
        "json",
    ];
    let deleted = json(&xtask(&emulator, &delete));
    assert_fields(&deleted, &["stack", "region", "existed", "objects_deleted"]);
    assert_eq!(deleted["existed"], true);
    assert_eq!(json(&xtask(&emulator, &delete))["existed"], false);
}

/// The check `name` of doctor's JSON report.
fn doctor_check(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
        .clone()
}

#[test]
fn doctor_says_what_the_account_lacks_before_a_deploy_and_what_it_cannot_know() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let doctor = |output: &str| xtask(&emulator, &["doctor", "--env", "local", "--output", output]);
    // Not bootstrapped: a failure that names the command that fixes it; exit 1, nothing made.
    let before = doctor("json");
    assert_eq!(before.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_fields(&report, &["environment", "region", "checks"]);
    let verdict = doctor_check;
    assert_eq!(verdict(&report, "account")["verdict"], "pass");
    let bootstrap_check = verdict(&report, "bootstrap");
    assert_eq!(bootstrap_check["verdict"], "fail");
    assert!(
        bootstrap_check["fix"]
            .as_str()
            .unwrap()
            .contains("cargo xtask bootstrap --region us-east-1"),
        "{bootstrap_check}"
    );
    assert_eq!(verdict(&report, "lambda-concurrency")["verdict"], "pass");

    // Bootstrapped: the execution role's trust passes (read back from IAM); the emulator has
    // no policy simulator, which doctor says rather than guess.
    bootstrap(&emulator);
    let after = doctor("json");
    assert_eq!(
        after.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    let report = json(&after);
    assert_eq!(verdict(&report, "bootstrap")["verdict"], "pass");
    assert_eq!(verdict(&report, "execution-role-trust")["verdict"], "pass");
    // The emulator has no policy simulator (and names its default caller
    // arn:aws:sts::...:user/moto, which no IAM API takes): unknown, with what to do, never a
    // pass it could not prove.
    let simulated = verdict(&report, "deployer-permissions");
    assert_eq!(simulated["verdict"], "unknown", "{simulated}");
    assert!(
        !simulated["fix"].as_str().unwrap().is_empty(),
        "{simulated}"
    );
    // Nor can it simulate the execution role: unknown too, with what to grant.
    let execution = verdict(&report, "execution-permissions");
    assert_eq!(execution["verdict"], "unknown", "{execution}");
    assert!(
        execution["fix"]
            .as_str()
            .unwrap()
            .contains("iam:SimulatePrincipalPolicy"),
        "{execution}"
    );
    // No encrypted volume, no copy key: nothing to read.
    assert_eq!(verdict(&report, "kms-key-policies")["verdict"], "pass");
    // Service Quotas is not in the emulator either: unknown, said in one line, no dump.
    let quota = verdict(&report, "snapshot-quota");
    assert_eq!(quota["verdict"], "unknown", "{quota}");
    let detail = quota["detail"].as_str().unwrap();
    assert!(
        detail.contains("does not implement it") && !detail.contains("<!doctype"),
        "{quota}"
    );
    let text = doctor("text");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("pass     execution-role-trust"), "{text}");
}

#[tokio::test]
async fn doctor_fails_another_account_and_a_greedy_reservation_and_names_unlisted_keys() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let kms = aws_sdk_kms::Client::new(&sdk);
    // A backed-up instance with a volume encrypted by a customer managed key that
    // source_kms_keys does not list, and whose policy admits only its administrators: KMS
    // would ignore any IAM grant to the function's role.
    let db = emulator::fleet::launch(&ec2, &emulator::fleet::InstanceSpec::backup("db"))
        .await
        .unwrap();
    let admins_only = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Admins","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/KeyAdmins"},"Action":"kms:*","Resource":"*"}]}"#;
    let created = kms.create_key().policy(admins_only).send().await.unwrap();
    let key = created.key_metadata().unwrap().arn().unwrap().to_owned();
    let key = key.as_str();
    let volume = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(8)
        .encrypted(true)
        .kms_key_id(key)
        .send()
        .await
        .unwrap();
    ec2.attach_volume()
        .instance_id(&db.id)
        .volume_id(volume.volume_id().unwrap())
        .device("/dev/sdh")
        .send()
        .await
        .unwrap();
    let dir = scratch("doctor-fails");
    let file = dir.join("smartvault.yaml");
    std::fs::write(
        &file,
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    \
         account_id: \"999999999999\"\n    reserved_concurrency: 950\n    restore_test:\n      \
         schedule: cron(0 6 ? * MON *)\n",
    )
    .unwrap();
    let doctor = || {
        xtask(
            &emulator,
            &[
                "doctor",
                "--env",
                "local",
                "--config",
                file.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
    };
    let output = doctor();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let check = |name: &str| doctor_check(&report, name);
    let account = check("account");
    assert_eq!(account["verdict"], "fail", "{account}");
    assert!(
        account["detail"]
            .as_str()
            .unwrap()
            .contains("for account 123456789012, not 999999999999"),
        "{account}"
    );
    let concurrency = check("lambda-concurrency");
    assert_eq!(concurrency["verdict"], "fail", "{concurrency}");
    assert!(
        concurrency["detail"]
            .as_str()
            .unwrap()
            .contains("reserved_concurrency: 950 would leave 50"),
        "{concurrency}"
    );
    let keys = check("volume-keys");
    assert_eq!(keys["verdict"], "unknown", "{keys}");
    assert!(
        keys["detail"].as_str().unwrap().contains(key)
            && keys["detail"]
                .as_str()
                .unwrap()
                .contains(volume.volume_id().unwrap()),
        "{keys}"
    );
    // The key policy, read from KMS: it does not delegate to the account's IAM.
    let policies = check("kms-key-policies");
    assert_eq!(policies["verdict"], "fail", "{policies}");
    let detail = policies["detail"].as_str().unwrap();
    assert!(
        detail.contains(key)
            && detail.contains(volume.volume_id().unwrap())
            && detail.contains("kms:CreateGrant"),
        "{policies}"
    );
    assert!(
        policies["fix"]
            .as_str()
            .unwrap()
            .contains("Enable IAM User Permissions"),
        "{policies}"
    );

    // AWS's default key policy delegates to IAM: the key passes, once listed it is granted.
    let delegating = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}"#;
    kms.put_key_policy()
        .key_id(key)
        .policy_name("default")
        .policy(delegating)
        .send()
        .await
        .unwrap();
    std::fs::write(
        &file,
        format!(
            "environments:\n  local:\n    region: us-east-1\n    notification_emails: \
             [a@b.io]\n    source_kms_keys: [\"{key}\"]\n"
        ),
    )
    .unwrap();
    let output = doctor();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let policies = doctor_check(&report, "kms-key-policies");
    assert_eq!(policies["verdict"], "pass", "{policies}");
    assert!(
        policies["detail"].as_str().unwrap().starts_with("1 key(s)"),
        "{policies}"
    );
    assert_eq!(doctor_check(&report, "volume-keys")["verdict"], "pass");
}
