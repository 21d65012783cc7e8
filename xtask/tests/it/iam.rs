//! Least privilege under IAM enforcement: an administrator holding exactly
//! docs/bootstrap-policy.json bootstraps the region; the deployer's CI commands (deploy, promote,
//! status, invoke, destroy) run as a user holding exactly docs/deployer-policy.json, passing the
//! execution role to CloudFormation; the function runs as a user holding exactly the role policy
//! the stack created. No call is denied; a user missing one statement is denied, by name.

use crate::common::{fake_artifact, json, scratch, xtask_with};
use aws_sdk_ec2::config::Credentials;
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use emulator::story::Story;
use function::config::Config;
use function::context::{Context, FunctionError};
use function::handler;
use function::report::RunReport;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

/// The environment the function runs in (CI promotes it to `staging`), and its region.
const STACK: &str = "smartvault-dev";
const REGION: &str = "eu-west-1";
/// The second account, where prod lives.
const ACCOUNT_B: &str = "222222222222";
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// An IAM user's access key.
struct Key {
    id: String,
    secret: String,
}

impl Key {
    fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", self.id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.as_str()),
        ]
    }

    async fn sdk_config(&self, emulator: &Emulator) -> aws_config::SdkConfig {
        let credentials = Credentials::new(&self.id, &self.secret, None, None, "iam-user");
        emulator
            .loader(emulator.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(credentials)
            .load()
            .await
    }
}

/// Creates `name` with `policy` as its only (inline) policy and returns its access key.
async fn user(iam: &aws_sdk_iam::Client, name: &str, policy: &str) -> Key {
    iam.create_user().user_name(name).send().await.unwrap();
    iam.put_user_policy()
        .user_name(name)
        .policy_name(name)
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    Key {
        id: key.access_key_id().to_owned(),
        secret: key.secret_access_key().to_owned(),
    }
}

/// IAM hands policy documents back URL-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The inline policy the stack attached to the function's role, as IAM stored it.
async fn function_role_policy(sdk: &aws_config::SdkConfig) -> serde_json::Value {
    let resources = aws_sdk_cloudformation::Client::new(sdk)
        .list_stack_resources()
        .stack_name(STACK)
        .send()
        .await
        .unwrap();
    let role = resources
        .stack_resource_summaries()
        .iter()
        .find(|r| r.logical_resource_id() == Some("Role"))
        .and_then(|r| r.physical_resource_id())
        .unwrap()
        .to_owned();
    let iam = aws_sdk_iam::Client::new(sdk);
    let names = iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(names.policy_names().len(), 1, "{names:?}");
    let policy = iam
        .get_role_policy()
        .role_name(&role)
        .policy_name(&names.policy_names()[0])
        .send()
        .await
        .unwrap();
    policy_json(&percent_decode(policy.policy_document()))
}

/// A policy document as JSON. moto hands back a policy that came from a template as a Python
/// literal (`{'Version': '2012-10-17', ...}`); with no quote or backslash inside a value, that
/// becomes JSON by swapping the quote marks.
fn policy_json(document: &str) -> serde_json::Value {
    serde_json::from_str(document).unwrap_or_else(|_| {
        assert!(
            !document.contains(['"', '\\']),
            "not JSON and not a plain Python literal: {document}"
        );
        serde_json::from_str(&document.replace('\'', "\"")).unwrap()
    })
}

/// The deployed function's settings, read from its environment as Lambda would pass them.
async fn function_config(sdk: &aws_config::SdkConfig) -> Config {
    let function = aws_sdk_lambda::Client::new(sdk)
        .get_function_configuration()
        .function_name(STACK)
        .send()
        .await
        .unwrap();
    let vars: HashMap<String, String> = function
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap();
    Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

/// One scheduled run, with the event the EventBridge rule sends.
async fn run(ctx: &Context, at: OffsetDateTime) -> Result<RunReport, FunctionError> {
    let event = serde_json::json!({
        "version": "0", "id": "iam", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": emulator::ACCOUNT_ID, "time": "2026-11-26T00:00:00Z", "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{}:rule/{STACK}", emulator::ACCOUNT_ID)],
        "detail": {}
    });
    handler::handle(ctx, &event, at).await
}

#[tokio::test]
async fn the_deployer_and_the_function_hold_every_permission_they_use_and_no_more() {
    let emulator = Emulator::start_with_iam().unwrap_or_else(|e| panic!("{e}"));
    // Lambda invocations in the emulator echo the event instead of needing Docker.
    emulator
        .set_config(&serde_json::json!({"lambda": {"use_docker": false}}))
        .unwrap();
    let setup = emulator.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&setup);
    let deployer_policy =
        std::fs::read_to_string(emulator::workspace_root().join("docs/deployer-policy.json"))
            .unwrap();
    let deployer = user(&iam, "ci-deployer", &deployer_policy).await;
    let bootstrap_policy =
        std::fs::read_to_string(emulator::workspace_root().join("docs/bootstrap-policy.json"))
            .unwrap();
    let administrator = user(&iam, "bootstrap-administrator", &bootstrap_policy).await;
    // The test's own eyes, to inspect what the commands made.
    let admin = user(&iam, "test-inspector", ALLOW_ALL).await;
    let blind = user(
        &iam,
        "ci-deployer-without-read",
        &without(&deployer_policy, "s3:GetObject"),
    )
    .await;
    let unpassing = user(
        &iam,
        "ci-deployer-without-pass-role",
        &without(&deployer_policy, "iam:PassRole"),
    )
    .await;
    let specs = [
        InstanceSpec::backup("web").data_volumes(1),
        InstanceSpec::backup("db").data_volumes(2),
        InstanceSpec::untagged("scratch"),
    ];
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&setup)
            .region(aws_config::Region::new(REGION))
            .build(),
    );
    let fleet = fleet::launch_all(&ec2, &specs).await.unwrap();
    let volumes: usize = fleet[..2].iter().map(|i| i.volume_ids.len()).sum();

    // Account B, where prod lives: its own CI deployer and administrator, each with exactly
    // the documented policy; and in account A, the read-only identity prod's promotion reads
    // staging with.
    let iam_b = aws_sdk_iam::Client::new(&account_b(&emulator).await);
    let prod_deployer = user(&iam_b, "ci-deployer", &deployer_policy).await;
    let prod_administrator = user(&iam_b, "bootstrap-administrator", &bootstrap_policy).await;
    let source_policy = std::fs::read_to_string(
        emulator::workspace_root().join("docs/promotion-source-policy.json"),
    )
    .unwrap();
    let source_reader = user(&iam, "promotion-source", &source_policy).await;

    let mut story = Story::new("the deployer and the function hold every permission they use");
    emulator.enforce_iam().unwrap();
    let as_administrator = |args: &[&str]| xtask_with(&emulator, &administrator.env(), args);
    let as_deployer = |args: &[&str]| xtask_with(&emulator, &deployer.env(), args);
    let dir = scratch("iam");
    let artifact = fake_artifact(&dir);
    let deploy_dev = [
        "deploy",
        "--env",
        "dev",
        "--artifact",
        artifact.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ];
    let delete_bootstrap = [
        "bootstrap",
        "--region",
        REGION,
        "--delete",
        "--yes",
        "--output",
        "json",
    ];
    let admin_sdk = admin.sdk_config(&emulator).await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&admin_sdk);
    let admin_iam = aws_sdk_iam::Client::new(&admin_sdk);
    story
        .stage(
            "once IAM is enforced, the emulator's own credentials are refused",
            async {
                let refused = ec2.describe_instances().send().await.expect_err(
                    "the emulator's dummy credentials are refused once IAM is enforced",
                );
                assert_eq!(
                    aws_sdk_ec2::error::ProvideErrorMetadata::code(&refused),
                    Some("AuthFailure")
                );
            },
        )
        .await;
    let Some(execution_role) = story
        .stage("the administrator bootstraps the region", async {
            let bootstrapped = json(&as_administrator(&[
                "bootstrap",
                "--region",
                REGION,
                "--yes",
                "--output",
                "json",
            ]));
            assert_eq!(bootstrapped["result"], "created");
            let execution_role = bootstrapped["execution_role"].as_str().unwrap().to_owned();
            assert_eq!(
                execution_role,
                format!(
                    "arn:aws:iam::{}:role/smartvault-bootstrap-cfn-exec-{REGION}",
                    emulator::ACCOUNT_ID
                )
            );
            execution_role
        })
        .await
    else {
        return story.end();
    };
    story
        .stage(
            "without iam:PassRole a deploy names what it lacks and makes no stack",
            async {
                // The deployer's control: without iam:PassRole, CloudFormation is not handed the execution
                // role, the deploy says which permission it lacks, and no stack is made.
                let refused = xtask_with(&emulator, &unpassing.env(), &deploy_dev);
                assert!(!refused.status.success());
                let message = String::from_utf8_lossy(&refused.stderr);
                assert!(
                    message.contains("iam:PassRole") && message.contains(&execution_role),
                    "{message}"
                );
                let dev_stack = cloudformation.describe_stacks().stack_name(STACK);
                assert!(dev_stack.send().await.is_err(), "no dev stack");
            },
        )
        .await;
    let dev_sha = story
        .stage(
            "the CI deployer deploys dev, and CloudFormation acts with the execution role",
            async {
                // The deployer's CI commands, as the CI role: no call is denied.
                let deployed = json(&as_deployer(&deploy_dev));
                assert_eq!(deployed["result"], "created");
                let dev_stack = cloudformation.describe_stacks().stack_name(STACK);
                let described = dev_stack.send().await.unwrap();
                assert_eq!(
                    described.stacks()[0].role_arn(),
                    Some(execution_role.as_str()),
                    "CloudFormation acts with the execution role"
                );
                deployed["artifact_sha256"].clone()
            },
        )
        .await;
    story
        .stage(
            "without s3:GetObject promotion is denied, says why and deploys nothing",
            async {
                // The deployer's control: without s3:GetObject, promotion is denied reading the artifact,
                // says so, and deploys nothing.
                let refused = xtask_with(
                    &emulator,
                    &blind.env(),
                    &["promote", "--from", "dev", "--to", "staging", "--yes"],
                );
                assert!(!refused.status.success());
                let message = String::from_utf8_lossy(&refused.stderr);
                assert!(
                    message.contains("access denied") && message.contains("s3:GetObject"),
                    "{message}"
                );
                let staging = cloudformation
                    .describe_stacks()
                    .stack_name("smartvault-staging");
                assert!(staging.send().await.is_err(), "no staging stack yet");
            },
        )
        .await;
    story
        .stage(
            "the CI deployer promotes, and reads status, invoke, coverage and logs",
            async {
                let promoted = json(&as_deployer(&[
                    "promote", "--from", "dev", "--to", "staging", "--yes", "--output", "json",
                ]));
                assert_eq!(promoted["deploy"]["result"], "created");
                let status = json(&as_deployer(&[
                    "status", "--env", "staging", "--output", "json",
                ]));
                assert_eq!(status["stack"], "smartvault-staging");
                json(&as_deployer(&[
                    "invoke", "--env", "staging", "--output", "json",
                ]));
                // The operations commands a cron job or CI runs: coverage reads the instances, volumes and
                // snapshots; logs the function's log group.
                let coverage = json(&as_deployer(&[
                    "coverage", "--env", "staging", "--output", "json",
                ]));
                assert_eq!(coverage["stack"], "smartvault-staging");
                let logs = as_deployer(&["logs", "--env", "staging", "--output", "json"]);
                assert!(
                    logs.status.success(),
                    "{}",
                    String::from_utf8_lossy(&logs.stderr)
                );
            },
        )
        .await;
    if let Some(dev_sha) = &dev_sha {
        story
            .stage(
                "across accounts, B's deployer promotes staging to prod reading A read-only",
                async {
                    // Across accounts: B's administrator bootstraps B; B's CI deployer promotes staging (A) to
                    // prod (B), reading A with the read-only profile, as the workflow's prod job does.
                    let profiles = scratch("iam-profiles").join("credentials");
                    std::fs::write(
                        &profiles,
                        format!(
                            "[source]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                            source_reader.id, source_reader.secret
                        ),
                    )
                    .unwrap();
                    let profiles = profiles.to_str().unwrap();
                    // staging as shipped; prod in account B, without termination protection so the test
                    // can destroy it.
                    let accounts = scratch("iam-accounts").join("smartvault.yaml");
                    std::fs::write(
                        &accounts,
                        format!(
                            "environments:\n  staging:\n    region: {REGION}\n    \
                             notification_emails: [ops@example.com]\n  prod:\n    region: {REGION}\n    \
                             account_id: \"{ACCOUNT_B}\"\n    termination_protection: false\n    \
                             notification_emails: [ops@example.com]\n"
                        ),
                    )
                    .unwrap();
                    let accounts = accounts.to_str().unwrap();
                    let in_b = |key: &Key, args: &[&str]| {
                        let mut env = key.env().to_vec();
                        env.push(("AWS_SHARED_CREDENTIALS_FILE", profiles));
                        let mut args = args.to_vec();
                        if args[0] != "bootstrap" {
                            args.extend(["--config", accounts]);
                        }
                        xtask_with(&emulator, &env, &args)
                    };
                    let bootstrap_b = ["bootstrap", "--region", REGION, "--yes", "--output", "json"];
                    let bootstrapped_b = json(&in_b(&prod_administrator, &bootstrap_b));
                    assert_eq!(bootstrapped_b["account"], ACCOUNT_B);
                    let prod = json(&in_b(
                        &prod_deployer,
                        &[
                            "promote",
                            "--from",
                            "staging",
                            "--to",
                            "prod",
                            "--from-profile",
                            "source",
                            "--yes",
                            "--output",
                            "json",
                        ],
                    ));
                    assert_eq!(prod["deploy"]["account"], ACCOUNT_B);
                    assert_eq!(prod["deploy"]["result"], "created");
                    assert_eq!(prod["deploy"]["artifact_uploaded"], true);
                    assert_eq!(&prod["artifact_sha256"], dev_sha);
                    // The control: the CI deployer of A cannot assume a role it was not granted; the message
                    // names the role, the environment and what to grant.
                    let dir_b = scratch("iam-role");
                    let with_role = dir_b.join("smartvault.yaml");
                    std::fs::write(
                        &with_role,
                        format!(
                            "environments:\n  prod:\n    region: {REGION}\n    account_id: \"{ACCOUNT_B}\"\n    \
                             role_arn: arn:aws:iam::{ACCOUNT_B}:role/smartvault-deployer\n    \
                             notification_emails: [ops@example.com]\n"
                        ),
                    )
                    .unwrap();
                    let refused = as_deployer(&[
                        "status",
                        "--env",
                        "prod",
                        "--config",
                        with_role.to_str().unwrap(),
                    ]);
                    assert!(!refused.status.success());
                    let message = String::from_utf8_lossy(&refused.stderr);
                    assert!(
                        message.contains(&format!(
                            "could not assume arn:aws:iam::{ACCOUNT_B}:role/smartvault-deployer for environment prod"
                        )) && message.contains("sts:AssumeRole"),
                        "{message}"
                    );
                    json(&in_b(
                        &prod_deployer,
                        &["destroy", "--env", "prod", "--yes", "--output", "json"],
                    ));
                    let mut delete_b = bootstrap_b.to_vec();
                    delete_b.insert(3, "--delete");
                    assert_eq!(json(&in_b(&prod_administrator, &delete_b))["existed"], true);
                },
            )
            .await;
    }
    let Some((role_policy, config, start)) = story
        .stage(
            "the function, with exactly its role's policy, backs up and expires over three months",
            async {
                // The function, as a user holding exactly the policy the stack gave its role.
                let role_policy = function_role_policy(&admin_sdk).await;
                let config = function_config(&admin_sdk).await;
                let function = user(&admin_iam, "function", &role_policy.to_string()).await;
                let ctx = Context::new(&function.sdk_config(&emulator).await, config.clone());
                // Runs a month apart: the third finds the first run's snapshots expired, and not the
                // newest of their volumes, and deletes them.
                let start = OffsetDateTime::now_utc();
                for month in 0..3 {
                    let report = run(&ctx, start + Duration::days(30 * month)).await.unwrap();
                    assert_eq!(report.created.len(), volumes, "{report:?}");
                    let deleted = if month == 2 { volumes } else { 0 };
                    assert_eq!(report.deleted.len(), deleted, "{report:?}");
                }
                (role_policy, config, start)
            },
        )
        .await
    else {
        return story.end();
    };
    story
        .stage(
            "scoped to another region, the same policy is denied exactly the deletions",
            async {
                // The control: with its DeleteOwnSnapshots statement scoped to another region's snapshots,
                // the same policy is denied the deletions, and only them: the emulator judges resources.
                let mut narrowed = role_policy.clone();
                let statements = narrowed["Statement"].as_array_mut().unwrap();
                let delete = statements
                    .iter_mut()
                    .find(|s| s["Sid"] == "DeleteOwnSnapshots")
                    .expect("the role policy has a DeleteOwnSnapshots statement");
                let scoped = format!("arn:aws:ec2:{REGION}::snapshot/*");
                assert_eq!(delete["Resource"], scoped.as_str());
                delete["Resource"] = scoped.replace(REGION, emulator::REGION).into();
                let narrow = user(&admin_iam, "function-elsewhere", &narrowed.to_string()).await;
                let ctx = Context::new(&narrow.sdk_config(&emulator).await, config);
                let Err(FunctionError::RunFailed(denied)) =
                    run(&ctx, start + Duration::days(90)).await
                else {
                    panic!("deleting snapshots outside the policy's resources must fail");
                };
                assert_eq!(denied.created.len(), volumes, "{denied:?}");
                assert!(denied.deleted.is_empty(), "{denied:?}");
                assert_eq!(denied.failed.len(), volumes, "{denied:?}");
                for failure in &denied.failed {
                    assert_eq!(failure.operation, "DeleteSnapshot", "{failure:?}");
                    assert!(
                        ["AccessDenied", "UnauthorizedOperation"].contains(&failure.code.as_str()),
                        "{failure:?}"
                    );
                }
            },
        )
        .await;
    story
        .stage(
            "the bootstrap stack cannot go while environments deploy from it",
            async {
                // The bootstrap stack cannot go while environments deploy from it.
                let refused = as_administrator(&delete_bootstrap);
                assert!(!refused.status.success());
                let message = String::from_utf8_lossy(&refused.stderr);
                assert!(
                    message.contains("still serves smartvault-dev, smartvault-staging"),
                    "{message}"
                );
            },
        )
        .await;
    story
        .stage(
            "destroy as the CI role removes both environments and their snapshots",
            async {
                // Destroy, snapshots included, as the CI role, with the execution role passed.
                let staging = json(&as_deployer(&[
                    "destroy", "--env", "staging", "--yes", "--output", "json",
                ]));
                assert_eq!(staging["stack_existed"], true);
                assert_eq!(staging["failures"], serde_json::json!([]));
                let dev = json(&as_deployer(&[
                    "destroy", "--env", "dev", "--yes", "--output", "json",
                ]));
                assert_eq!(dev["stack_existed"], true);
                assert_eq!(
                    dev["snapshots_deleted"].as_array().unwrap().len(),
                    3 * volumes,
                    "the three newest runs' snapshots"
                );
                assert_eq!(dev["failures"], serde_json::json!([]));
            },
        )
        .await;
    story
        .stage(
            "the administrator removes the bootstrap, and no stack is left",
            async {
                // Then the administrator removes the bootstrap stack.
                let removed = json(&as_administrator(&delete_bootstrap));
                assert_eq!(removed["existed"], true);
                let left = cloudformation.describe_stacks().send().await.unwrap();
                assert!(
                    left.stacks()
                        .iter()
                        .all(|s| s.stack_status().map(|s| s.as_str()) == Some("DELETE_COMPLETE")),
                    "{left:?}"
                );
            },
        )
        .await;
    story.end();
}

/// The SDK configuration of account B, reached by assuming a role there (before IAM is
/// enforced, with the emulator's own credentials).
async fn account_b(emulator: &Emulator) -> aws_config::SdkConfig {
    let role = format!("arn:aws:iam::{ACCOUNT_B}:role/setup");
    crate::common::assumed(emulator, &role, REGION).await
}

/// `policy` without `action`, which must have been in it (and without a statement it empties).
fn without(policy: &str, action: &str) -> String {
    let mut policy: serde_json::Value = serde_json::from_str(policy).unwrap();
    let mut removed = false;
    for statement in policy["Statement"].as_array_mut().unwrap() {
        if let Some(actions) = statement["Action"].as_array_mut() {
            let before = actions.len();
            actions.retain(|a| a != action);
            removed |= actions.len() < before;
        }
    }
    assert!(removed, "{action} was in the policy");
    // IAM refuses a statement left without actions.
    policy["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Action"].as_array().is_none_or(|a| !a.is_empty()));
    policy.to_string()
}

/// An organization's environment under IAM enforcement: the deployer, holding exactly
/// docs/deployer-policy.json in the administrator account, deploys the stack set to two
/// accounts in two regions, reads its status and destroys it; destroy's cleanup in each member
/// runs as `smartvault-stackset-execution`, made in each member from
/// templates/stackset-roles.yaml, holding exactly that policy. No call is denied.
#[tokio::test]
async fn the_deployer_and_the_member_role_run_an_organization_with_their_policies_only() {
    let emulator = Emulator::start_with_iam().unwrap_or_else(|e| panic!("{e}"));
    emulator
        .set_config(&serde_json::json!({"lambda": {"use_docker": false}}))
        .unwrap();
    let setup = emulator.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&setup);
    let deployer_policy =
        std::fs::read_to_string(emulator::workspace_root().join("docs/deployer-policy.json"))
            .unwrap();
    let deployer = user(&iam, "ci-deployer", &deployer_policy).await;
    let roles =
        std::fs::read_to_string(emulator::workspace_root().join("templates/stackset-roles.yaml"))
            .unwrap();
    let members = ["111111111111", "222222222222"];
    let mut ours = Vec::new();
    for account in members {
        // Each member's administrator makes the StackSet execution role of
        // templates/stackset-roles.yaml (through IAM: moto cannot evaluate a policy of a role
        // its CloudFormation made), with exactly the template's policy.
        let sdk = crate::common::assumed(
            &emulator,
            &format!("arn:aws:iam::{account}:role/administrator"),
            REGION,
        )
        .await;
        let member_iam = aws_sdk_iam::Client::new(&sdk);
        member_iam
            .create_role()
            .role_name("smartvault-stackset-execution")
            .assume_role_policy_document(
                serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"AWS": format!("arn:aws:iam::{}:root", emulator::ACCOUNT_ID)}}]
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        member_iam
            .put_role_policy()
            .role_name("smartvault-stackset-execution")
            .policy_name("smartvault-stackset-execution")
            .policy_document(execution_policy(&roles, account).to_string())
            .send()
            .await
            .unwrap();
        // What the member's function made: one of this deployment's snapshots.
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let volume = emulator::fleet::detached_volume(&ec2).await.unwrap();
        ours.push(
            emulator::fleet::snapshot_by_hand(
                &ec2,
                &volume,
                &[(function::tags::MANAGED_BY, "smartvault-org")],
            )
            .await
            .unwrap(),
        );
    }
    let dir = scratch("iam-organization");
    let config = dir.join("smartvault.yaml");
    std::fs::write(
        &config,
        format!(
            "environments:\n  org:\n    region: {REGION}\n    notification_emails: [ops@example.com]\n    \
             targets:\n      accounts: [\"111111111111\", \"222222222222\"]\n      \
             regions: [{REGION}, us-east-1]\n      central_topic:\n        \
             notification_emails: [backup-team@example.com]\n"
        ),
    )
    .unwrap();
    let artifact = fake_artifact(&dir);

    emulator.enforce_iam().unwrap();
    let as_deployer = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        xtask_with(&emulator, &deployer.env(), &all)
    };
    let deployed = json(&as_deployer(&[
        "deploy",
        "--env",
        "org",
        "--artifact",
        artifact.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(deployed["result"], "created");
    assert_eq!(deployed["instances"].as_array().unwrap().len(), 4);
    let status = json(&as_deployer(&[
        "status", "--env", "org", "--output", "json",
    ]));
    assert_eq!(status["instances"].as_array().unwrap().len(), 4);
    let destroyed = json(&as_deployer(&[
        "destroy", "--env", "org", "--yes", "--output", "json",
    ]));
    assert!(destroyed["failures"].as_array().unwrap().is_empty());
    assert_eq!(destroyed["stack_set_deleted"], true);
    for (account, snapshot) in members.iter().zip(&ours) {
        assert_eq!(
            destroyed["members"][format!("{account}/{REGION}")]["snapshots_deleted"],
            serde_json::json!([snapshot]),
            "removed as the member role"
        );
    }
}

/// The StackSet execution role's policy in templates/stackset-roles.yaml, its `!Sub`
/// expressions resolved for `account`, as IAM would hold it.
fn execution_policy(template: &str, account: &str) -> serde_json::Value {
    fn resolve(value: &serde_norway::Value, account: &str) -> serde_json::Value {
        use serde_norway::Value;
        match value {
            Value::Tagged(tagged) if tagged.tag == "Sub" => serde_json::Value::String(
                tagged
                    .value
                    .as_str()
                    .unwrap()
                    .replace("${AWS::Partition}", "aws")
                    .replace("${AWS::AccountId}", account)
                    .replace("${AdministratorAccount}", emulator::ACCOUNT_ID),
            ),
            Value::Mapping(map) => map
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), resolve(v, account)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Value::Sequence(items) => items.iter().map(|v| resolve(v, account)).collect(),
            Value::String(text) => serde_json::Value::String(text.clone()),
            other => panic!("unexpected {other:?} in the policy"),
        }
    }
    let template: serde_norway::Value = serde_norway::from_str(template).unwrap();
    let document =
        &template["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    let policy = resolve(document, account);
    assert!(!policy.to_string().contains("${"), "{policy}");
    policy
}
