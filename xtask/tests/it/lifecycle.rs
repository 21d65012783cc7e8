//! The deployer end to end against the emulator, through the real `xtask` binary: deploy,
//! redeploy with no change, change a setting, status, invoke, destroy, and nothing left.

use crate::common::{assert_fields, fake_artifact, json, scratch, xtask};
use emulator::Emulator;
use emulator::story::Story;
use std::path::{Path, PathBuf};

const STACK: &str = "smartvault-local";

/// Fails unless the emulator holds no stack at all.
fn assert_no_stacks(emulator: &Emulator, why: &str) {
    let stacks = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sdk = emulator.sdk_config().await;
        aws_sdk_cloudformation::Client::new(&sdk)
            .describe_stacks()
            .send()
            .await
            .unwrap()
    });
    assert!(stacks.stacks().is_empty(), "{why}: {:?}", stacks.stacks());
}

/// The shipped config with the `local` environment's retention changed.
fn config_with_retention(dir: &Path, days: u32) -> PathBuf {
    let shipped =
        std::fs::read_to_string(emulator::workspace_root().join("smartvault.yaml")).unwrap();
    let changed = shipped.replacen(
        "    retention_days: 7\n",
        &format!("    retention_days: {days}\n"),
        1,
    );
    assert_ne!(
        shipped, changed,
        "the local environment sets retention_days: 7"
    );
    let path = dir.join("smartvault.yaml");
    std::fs::write(&path, changed).unwrap();
    path
}

#[tokio::test]
async fn deploy_redeploy_change_status_invoke_destroy() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    // Lambda invocations in the emulator echo the event instead of needing Docker.
    emulator
        .set_config(&serde_json::json!({"lambda": {"use_docker": false}}))
        .unwrap();
    let sdk = emulator.sdk_config().await;
    let dir = scratch("lifecycle");
    let artifact = fake_artifact(&dir);
    let artifact = artifact.to_str().unwrap();
    let shipped = emulator::workspace_root().join("smartvault.yaml");
    let shipped = shipped.to_str().unwrap();
    let changed = config_with_retention(&dir, 14);
    let changed = changed.to_str().unwrap();
    let deploy = |config: &str| {
        xtask(
            &emulator,
            &[
                "deploy",
                "--env",
                "local",
                "--config",
                config,
                "--artifact",
                artifact,
                "--yes",
                "--output",
                "json",
            ],
        )
    };

    let mut story = Story::new("deploy, redeploy, change, status, invoke, destroy");
    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let sha = story
        .stage(
            "the first deploy creates everything, its template sent by S3 URL",
            async {
                // First deploy creates everything.
                emulator.start_recording().unwrap();
                let created = json(&deploy(shipped));
                // The environment's template goes by S3 URL (1 MB), never inline in the request (51,200
                // bytes, which the main template nears; the emulator enforces neither), and its copy in
                // the bucket is gone once the change set is made.
                let bodies = emulator.stop_recording_bodies().unwrap();
                let change_sets: Vec<&String> = bodies
                    .iter()
                    .filter(|b| {
                        b.starts_with("Action=CreateChangeSet&") && b.contains("smartvault-local")
                    })
                    .collect();
                assert_eq!(change_sets.len(), 1, "{bodies:?}");
                assert!(
                    change_sets[0].contains("TemplateURL=https%3A%2F%2Fsmartvault-bootstrap-")
                        && !change_sets[0].contains("TemplateBody="),
                    "{}",
                    change_sets[0]
                );
                for bucket in s3.list_buckets().send().await.unwrap().buckets() {
                    let left = s3
                        .list_object_versions()
                        .bucket(bucket.name().unwrap())
                        .prefix("artifacts/templates/")
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        left.versions().is_empty() && left.delete_markers().is_empty(),
                        "the template's copy is removed: {left:?}"
                    );
                }
                assert_fields(
                    &created,
                    &[
                        "environment",
                        "stack",
                        "region",
                        "account",
                        "result",
                        "artifact_sha256",
                        "artifact_uploaded",
                        "changes",
                        "outputs",
                    ],
                );
                assert_eq!(created["result"], "created");
                assert_eq!(created["artifact_uploaded"], true);
                created["artifact_sha256"].as_str().unwrap().to_owned()
            },
        )
        .await;
    story
        .stage(
            "CloudFormation acts with the bootstrap's execution role",
            async {
                // The first deploy bootstrapped the region (--yes), and CloudFormation acts for the stack
                // with the bootstrap's execution role, not with the deployer's permissions.
                let stack_of = async |name: &str| {
                    cloudformation
                        .describe_stacks()
                        .stack_name(name)
                        .send()
                        .await
                        .unwrap()
                        .stacks()[0]
                        .clone()
                };
                let bootstrap = stack_of("smartvault-bootstrap").await;
                let execution_role = bootstrap
                    .outputs()
                    .iter()
                    .find(|o| o.output_key() == Some("ExecutionRoleArn"))
                    .and_then(|o| o.output_value())
                    .unwrap()
                    .to_owned();
                assert!(
                    execution_role.ends_with(":role/smartvault-bootstrap-cfn-exec-us-east-1"),
                    "{execution_role}"
                );
                assert_eq!(
                    stack_of(STACK).await.role_arn(),
                    Some(execution_role.as_str())
                );
            },
        )
        .await;
    let topic_arn = story
        .stage("the function runs as the environment says", async {
            let function = lambda
                .get_function_configuration()
                .function_name(STACK)
                .send()
                .await
                .unwrap();
            assert_eq!(
                function.runtime().map(|r| r.as_str()),
                Some("provided.al2023")
            );
            assert_eq!(function.handler(), Some("bootstrap"));
            assert_eq!(function.memory_size(), Some(256));
            assert_eq!(function.timeout(), Some(300));
            let vars = function.environment().unwrap().variables().unwrap().clone();
            let mut names: Vec<&str> = vars.keys().map(String::as_str).collect();
            names.sort_unstable();
            let mut read = function::config::VARIABLES.to_vec();
            read.sort_unstable();
            assert_eq!(names, read);
            assert_eq!(vars["DEPLOYMENT"], STACK);
            assert_eq!(
                vars["SCHEDULES"],
                r#"[{"name":"default","retention_days":7,"keep_last":1,"overdue_after_hours":27,"consistency":{"mode":"script","timeout_seconds":30,"retries":0,"on_failure":"crash"}}]"#
            );
            assert!(vars["SNS_TOPIC_ARN"].ends_with(&format!(":{STACK}")));
            assert_eq!(
                vars["RESTORE_TEST"], r#"{"sample":2,"max_wait_seconds":120}"#,
                "the local environment's restore test reaches the function"
            );
            vars["SNS_TOPIC_ARN"].clone()
        })
        .await;
    let topic_arn = topic_arn.unwrap_or_default();
    story
        .stage(
            "the topic and the log group exist, and no EventBridge rule",
            async {
                let topics = sns.list_topics().send().await.unwrap();
                assert!(
                    topics
                        .topics()
                        .iter()
                        .any(|t| t.topic_arn() == Some(topic_arn.as_str()))
                );
                // The schedules are EventBridge Scheduler's, which the emulator's CloudFormation skips
                // (template_checks proves them); there is no EventBridge rule any more.
                assert_eq!(aws_sdk_eventbridge_rule(&sdk).await, None);
                let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
                let groups = logs
                    .describe_log_groups()
                    .log_group_name_prefix(format!("/aws/lambda/{STACK}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(groups.log_groups().len(), 1);
                assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));
            },
        )
        .await;
    story
        .stage("deploying the same thing again changes nothing", async {
            // Deploying the same thing again changes nothing and still succeeds.
            let again = json(&deploy(shipped));
            assert_eq!(again["result"], "unchanged");
            assert_eq!(again["artifact_uploaded"], false);
        })
        .await;
    story
        .stage("a changed setting reaches the function", async {
            // A changed setting reaches the function's configuration.
            let updated = json(&deploy(changed));
            assert_eq!(updated["result"], "updated");
            let function = lambda
                .get_function_configuration()
                .function_name(STACK)
                .send()
                .await
                .unwrap();
            assert!(
                function.environment().unwrap().variables().unwrap()["SCHEDULES"]
                    .contains(r#""retention_days":14"#)
            );
        })
        .await;
    if let Some(sha) = &sha {
        story
            .stage(
                "status shows the stack, its artifact and its schedule",
                async {
                    let status = json(&xtask(
                        &emulator,
                        &["status", "--env", "local", "--output", "json"],
                    ));
                    assert_fields(
                        &status,
                        &[
                            "environment",
                            "stack",
                            "region",
                            "stack_status",
                            "artifact_sha256",
                            "smartvault_version",
                            "schedules",
                            "termination_protection",
                            "snapshots",
                            "snapshots_gib",
                            "oldest_snapshot",
                            "newest_snapshot",
                            "copies",
                            "outputs",
                        ],
                    );
                    assert_eq!(status["artifact_sha256"], sha.as_str());
                    assert_eq!(status["schedules"][0]["name"], "default");
                    assert_eq!(status["schedules"][0]["expression"], "rate(1 day)");
                    assert_eq!(status["schedules"][0]["timezone"], "UTC");
                    assert!(status["schedules"][0]["next_fire_time"].is_string());
                    assert!(
                        status["stack_status"]
                            .as_str()
                            .unwrap()
                            .ends_with("_COMPLETE")
                    );
                },
            )
            .await;
    }
    story
        .stage("invoke returns the function's answer", async {
            let invoked = json(&xtask(
                &emulator,
                &["invoke", "--env", "local", "--output", "json"],
            ));
            assert_fields(
                &invoked,
                &[
                    "function",
                    "status_code",
                    "function_error",
                    "payload",
                    "log_tail",
                ],
            );
            assert_eq!(invoked["function"], STACK);
            assert_eq!(invoked["function_error"], serde_json::Value::Null);
        })
        .await;
    let Some((ours, by_hand, other_tool, theirs, left_by_test, others_test)) = story
        .stage(
            "snapshots and test volumes: ours, by hand, another tool's, another deployment's",
            async {
                // Snapshots: one of this deployment's, one by hand, one of another deployment.
                let volume = &emulator::fleet::detached_volume(&ec2).await.unwrap();
                let ours = emulator::fleet::snapshot_by_hand(
                    &ec2,
                    volume,
                    &[(function::tags::MANAGED_BY, STACK)],
                )
                .await
                .unwrap();
                let by_hand =
                    emulator::fleet::snapshot_by_hand(&ec2, volume, &[("CreatedOn", "2020-01-01")])
                        .await
                        .unwrap();
                let other_tool = emulator::fleet::snapshot_by_hand(
                    &ec2,
                    volume,
                    &[
                        ("dlm:managed", "true"),
                        (function::tags::INSTANCE_ID, "i-0123456789abcdef0"),
                    ],
                )
                .await
                .unwrap();
                let theirs = emulator::fleet::snapshot_by_hand(
                    &ec2,
                    volume,
                    &[(function::tags::MANAGED_BY, "smartvault-other")],
                )
                .await
                .unwrap();

                // A volume a restore test of this deployment left, and one of another deployment's.
                let test_volume = |deployment: &'static str| {
                    let ec2 = ec2.clone();
                    async move {
                        let tags = aws_sdk_ec2::types::TagSpecification::builder()
                            .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                            .tags(
                                aws_sdk_ec2::types::Tag::builder()
                                    .key(function::restore_test::TAG)
                                    .value(deployment)
                                    .build(),
                            )
                            .build();
                        ec2.create_volume()
                            .availability_zone("us-east-1a")
                            .size(1)
                            .tag_specifications(tags)
                            .send()
                            .await
                            .unwrap()
                            .volume_id()
                            .unwrap()
                            .to_owned()
                    }
                };
                let left_by_test = test_volume(STACK).await;
                let others_test = test_volume("smartvault-other").await;
                (ours, by_hand, other_tool, theirs, left_by_test, others_test)
            },
        )
        .await
    else {
        return story.end();
    };
    story
        .stage(
            "destroy without a terminal or --yes refuses and removes nothing",
            async {
                // Without a terminal and without --yes, destroy refuses and removes nothing.
                let refused = xtask(&emulator, &["destroy", "--env", "local"]);
                assert_eq!(
                    refused.status.code(),
                    Some(2),
                    "a missing --yes is a usage mistake"
                );
                assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --yes"));
            },
        )
        .await;
    story
        .stage(
            "destroy removes this deployment's snapshots and test volumes, keeps the bootstrap",
            async {
                let destroyed = json(&xtask(
                    &emulator,
                    &["destroy", "--env", "local", "--yes", "--output", "json"],
                ));
                assert_fields(
                    &destroyed,
                    &[
                        "environment",
                        "stack",
                        "stack_existed",
                        "resources",
                        "snapshots_found",
                        "snapshots_gib",
                        "snapshots_deleted",
                        "snapshots_kept",
                        "copies_found",
                        "copies_deleted",
                        "test_volumes_deleted",
                        "log_group_deleted",
                        "artifacts_deleted",
                        "kept",
                        "fast_restores_disabled",
                        "failures",
                    ],
                );
                assert_eq!(destroyed["failures"], serde_json::json!([]));
                assert_eq!(destroyed["fast_restores_disabled"], serde_json::json!([]));
                assert_eq!(destroyed["snapshots_deleted"], serde_json::json!([ours]));
                assert_eq!(
                    destroyed["test_volumes_deleted"],
                    serde_json::json!([left_by_test])
                );
                let volumes = ec2.describe_volumes().send().await.unwrap();
                let ids: Vec<&str> = volumes
                    .volumes()
                    .iter()
                    .filter_map(|v| v.volume_id())
                    .collect();
                assert!(!ids.contains(&left_by_test.as_str()), "{ids:?}");
                assert!(
                    ids.contains(&others_test.as_str()),
                    "another deployment's test volume stays"
                );
                // The bootstrap stack stays: it is the account's and region's, and the plan says how an
                // administrator removes it.
                assert!(
                    destroyed["kept"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["what"]
                            .as_str()
                            .unwrap()
                            .starts_with("the bootstrap stack smartvault-bootstrap")
                            && k["why"].as_str().unwrap().contains("--delete")),
                    "{destroyed}"
                );
            },
        )
        .await;
    story
        .stage("bootstrap --delete removes the bootstrap", async {
            let removed = json(&xtask(
                &emulator,
                &[
                    "bootstrap",
                    "--region",
                    "us-east-1",
                    "--delete",
                    "--yes",
                    "--output",
                    "json",
                ],
            ));
            assert_eq!(removed["existed"], true);
        })
        .await;
    story
        .stage(
            "nothing of the deployment is left, and nobody else's snapshots are touched",
            async {
                // Nothing on the seed's cleanup list is left: function, rule, topic, log group, role, snapshots.
                let stacks = cloudformation
                    .describe_stacks()
                    .stack_name(STACK)
                    .send()
                    .await;
                assert!(stacks.is_err(), "the stack is gone (by name)");
                assert!(
                    lambda
                        .get_function()
                        .function_name(STACK)
                        .send()
                        .await
                        .is_err(),
                    "function gone"
                );
                assert!(aws_sdk_eventbridge_rule(&sdk).await.is_none(), "rule gone");
                let topics = sns.list_topics().send().await.unwrap();
                assert!(topics.topics().is_empty(), "topic gone: {topics:?}");
                let groups = logs.describe_log_groups().send().await.unwrap();
                assert!(groups.log_groups().is_empty(), "log group gone");
                let iam = aws_sdk_iam::Client::new(&sdk);
                let roles = iam.list_roles().send().await.unwrap();
                assert!(
                    roles
                        .roles()
                        .iter()
                        .all(|r| !r.role_name().starts_with("smartvault-")),
                    "the function's and the execution role gone: {:?}",
                    roles.roles()
                );
                let buckets = s3.list_buckets().send().await.unwrap();
                assert!(buckets.buckets().is_empty(), "artifact bucket gone");
                let remaining: Vec<String> = ec2
                    .describe_snapshots()
                    .owner_ids("self")
                    .send()
                    .await
                    .unwrap()
                    .snapshots()
                    .iter()
                    .filter_map(|s| s.snapshot_id().map(str::to_owned))
                    .collect();
                assert!(!remaining.contains(&ours));
                assert!(
                    remaining.contains(&by_hand),
                    "a hand-made snapshot survives destroy"
                );
                assert!(
                    remaining.contains(&other_tool),
                    "another tool's snapshot survives destroy"
                );
                assert!(
                    remaining.contains(&theirs),
                    "another deployment's snapshot survives destroy"
                );
            },
        )
        .await;
    story.end();
}

/// The schedule of the stack's EventBridge rule, `None` when there is no such rule.
async fn aws_sdk_eventbridge_rule(sdk: &aws_config::SdkConfig) -> Option<String> {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let rule = events.describe_rule().name(STACK).send().await.ok()?;
    rule.schedule_expression().map(str::to_owned)
}

#[test]
fn configuration_mistakes_exit_2_and_change_nothing() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let unknown = xtask(&emulator, &["deploy", "--env", "prd", "--yes"]);
    assert_eq!(unknown.status.code(), Some(2));
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains(
            "has no environment `prd`; the environments are: dev, local, org, prod, staging"
        ),
        "{message}"
    );
    let dir = scratch("bad-config");
    let bad = dir.join("smartvault.yaml");
    std::fs::write(&bad, "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    schedule: cron(0 1 * * *)\n").unwrap();
    let output = xtask(
        &emulator,
        &[
            "deploy",
            "--env",
            "local",
            "--config",
            bad.to_str().unwrap(),
            "--yes",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("environments.local.schedule"));
    // A schedule's consistency: an unknown mode, a document neither a name nor an ARN, a wait
    // longer than the function's timeout allows; `render` refuses each as `deploy` does.
    for (consistency, expected) in [
        (
            "{mode: freeze}",
            "schedules[0].consistency.mode: \"freeze\" is not a consistency mode; use crash, script or vss",
        ),
        (
            "{mode: script, document: \"db freeze!\"}",
            "is not a Systems Manager document name: 3 to 128 letters, digits, `_`, `-` and `.`; or give its ARN",
        ),
        (
            "{mode: script, timeout_seconds: 100}\n    timeout_seconds: 120",
            "lower it to at most 90 or raise timeout_seconds",
        ),
    ] {
        let (consistency, after) = consistency.split_once('\n').unwrap_or((consistency, ""));
        std::fs::write(
            &bad,
            format!(
                "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    schedules:\n      - name: daily\n        expression: rate(1 day)\n        consistency: {consistency}\n{after}\n"
            ),
        )
        .unwrap();
        for command in [&["render"][..], &["deploy", "--yes"][..]] {
            let mut args = command.to_vec();
            args.extend(["--env", "local", "--config", bad.to_str().unwrap()]);
            let output = xtask(&emulator, &args);
            let command = command[0];
            assert_eq!(output.status.code(), Some(2), "{command} {consistency}");
            let message = String::from_utf8_lossy(&output.stderr);
            assert!(message.contains(expected), "{command}: {message}");
        }
    }
    // The config file itself: missing where --config points, or a folder; exit 2, and the
    // fix does not tell to pass --config when it was passed.
    let missing = dir.join("missing.yaml");
    for (path, expected) in [
        (
            missing.to_str().unwrap(),
            "does not exist; check the path given with --config",
        ),
        (dir.to_str().unwrap(), "is a folder, not a file"),
    ] {
        let output = xtask(
            &emulator,
            &["deploy", "--env", "local", "--config", path, "--yes"],
        );
        assert_eq!(output.status.code(), Some(2), "{path}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("or pass --config"), "{message}");
    }
    // An artifact built for another architecture than the environment's.
    let arm = crate::common::fake_artifact_for(&dir, "arm64.zip", 183);
    let output = xtask(
        &emulator,
        &[
            "deploy",
            "--env",
            "local",
            "--artifact",
            arm.to_str().unwrap(),
            "--yes",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("is built for arm64, but the environment's architecture is x86_64"),
        "{message}"
    );
    // A reservation Lambda would refuse (the emulator's quota is 1,000, so 950 leaves 50).
    let output = deploy_local_with(&emulator, &dir, "greedy.yaml", "reserved_concurrency: 950");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("reserved_concurrency: 950 would leave 50 of this account's 1000")
            && message.contains("at most 900 can be reserved here"),
        "{message}"
    );
    // An event that --dry-run cannot apply to is refused before the function is reached.
    let scheduled = dir.join("scheduled.json");
    std::fs::write(
        &scheduled,
        r#"{"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-26T01:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {}}"#,
    )
    .unwrap();
    let output = xtask(
        &emulator,
        &[
            "invoke",
            "--env",
            "local",
            "--local",
            "--event",
            scheduled.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--dry-run cannot apply to the event"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let usage = xtask(&emulator, &["deploy"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "clap reports bad usage with 2"
    );
    // Flags with values AWS would never match, refused before any AWS call.
    for (args, expected) in [
        (
            &["snapshots", "--env", "local", "--instance", ""][..],
            "--instance \"\" is not an instance id",
        ),
        (
            &["logs", "--env", "local", "--since", "99999999d"][..],
            "reaches back more than 3653 days",
        ),
        (
            &["logs", "--env", "local", "--since", "+1h"][..],
            "is neither a duration",
        ),
        (
            &["logs", "--env", "local", "--request", "\"abc\""][..],
            "is not a Lambda request id",
        ),
    ] {
        let output = xtask(&emulator, args);
        let message = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    assert_no_stacks(&emulator, "a configuration mistake changes nothing");
}

#[test]
fn the_account_guard_refuses_another_account_before_any_change() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("account-guard");
    let output = deploy_local_with(
        &emulator,
        &dir,
        "smartvault.yaml",
        "account_id: \"999999999999\"",
    );
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("account 123456789012") && message.contains("account 999999999999"),
        "{message}"
    );
    assert_no_stacks(&emulator, "nothing was created");
}

/// `deploy --env local --yes` of a fake artifact, from a config file `file` in `dir` whose one
/// environment, `local`, has `setting` (one YAML line) besides its region and email.
fn deploy_local_with(
    emulator: &Emulator,
    dir: &Path,
    file: &str,
    setting: &str,
) -> std::process::Output {
    let config = dir.join(file);
    let text = format!(
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    {setting}\n"
    );
    std::fs::write(&config, text).unwrap();
    xtask(
        emulator,
        &[
            "deploy",
            "--env",
            "local",
            "--config",
            config.to_str().unwrap(),
            "--artifact",
            fake_artifact(dir).to_str().unwrap(),
            "--yes",
        ],
    )
}

/// The shipped `prod` environment has three schedules in Europe/Berlin (grandfather-father-son):
/// it deploys on the emulator, its function gets each schedule's retention, its stack each
/// schedule's slot, and `status` shows each schedule's next run in its zone and in UTC.
#[tokio::test]
async fn a_three_schedule_environment_deploys_and_shows_its_schedules() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("three-schedules");
    let artifact = fake_artifact(&dir);
    let deployed = json(&xtask(
        &emulator,
        &[
            "deploy",
            "--env",
            "prod",
            "--artifact",
            artifact.to_str().unwrap(),
            "--yes",
            "--output",
            "json",
        ],
    ));
    assert_eq!(deployed["result"], "created");
    let sdk = emulator
        .loader(emulator.endpoint())
        .region(aws_config::Region::new("eu-west-1"))
        .load()
        .await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let function = lambda
        .get_function_configuration()
        .function_name("smartvault-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        function.environment().unwrap().variables().unwrap()["SCHEDULES"],
        // The daily run at 02:00 in Europe/Berlin does not run on the spring change (EventBridge
        // Scheduler skips a local time that does not exist): 47 hours, a window, the grace.
        r#"[{"name":"daily","retention_days":14,"keep_last":7,"overdue_after_hours":51,"consistency":{"mode":"script","tag":{"key":"consistency","value":"freeze"},"timeout_seconds":60,"retries":1,"on_failure":"crash"}},{"name":"weekly","retention_days":90,"keep_last":8,"overdue_after_hours":172},{"name":"monthly","retention_days":365,"keep_last":12,"overdue_after_hours":748,"lock":{"mode":"compliance","cool_off_hours":24}}]"#
    );
    let status = json(&xtask(
        &emulator,
        &["status", "--env", "prod", "--output", "json"],
    ));
    let schedules = status["schedules"].as_array().unwrap();
    let names: Vec<&str> = schedules
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["daily", "weekly", "monthly"]);
    for schedule in schedules {
        assert_eq!(schedule["timezone"], "Europe/Berlin");
        let next = schedule["next_fire_time"].as_str().unwrap();
        assert!(
            next.contains(" Europe/Berlin (") && next.ends_with(" UTC)"),
            "{next}"
        );
    }
    // 02:00 Berlin, or 03:00 on the one night a year the clocks skip 02:00.
    let daily = schedules[0]["next_fire_time"].as_str().unwrap();
    assert!(
        daily.contains(" 02:00 Europe/Berlin") || daily.contains(" 03:00 Europe/Berlin"),
        "{daily}"
    );
}

/// An environment with copies in two other regions deploys with a policy per copy region and
/// the rule for EC2's completion events; `status` shows each region's copies and the oldest
/// set without one; `destroy` removes this deployment's copies there and nobody else's.
#[tokio::test]
async fn copies_deploy_show_in_status_and_go_with_destroy() {
    use function::tags;
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("copies");
    let deployed = deploy_local_with(
        &emulator,
        &dir,
        "smartvault.yaml",
        "copies: [{region: us-west-2, retention_days: 30, kms_key: alias/smartvault-dr}, {region: eu-west-1}]",
    );
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let sdk = emulator.sdk_config().await;
    let in_region = |region: &str| {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&sdk)
                .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
                .build(),
        )
    };
    let function = aws_sdk_lambda::Client::new(&sdk)
        .get_function_configuration()
        .function_name(STACK)
        .send()
        .await
        .unwrap();
    assert_eq!(
        function.environment().unwrap().variables().unwrap()["COPIES"],
        r#"[{"region":"us-west-2","retention_days":30,"kms_key":"alias/smartvault-dr"},{"region":"eu-west-1"}]"#
    );
    // The copy regions' role policies (AWS::IAM::RolePolicy) are skipped by the emulator's
    // CloudFormation; template_checks.rs proves their statements on the template instead.
    let rule = aws_sdk_eventbridge::Client::new(&sdk)
        .describe_rule()
        .name(format!("{STACK}-copies"))
        .send()
        .await
        .unwrap();
    assert!(
        rule.event_pattern()
            .unwrap()
            .contains(function::event::COMPLETION_DETAIL_TYPE)
    );

    // A set of two at home, one of its snapshots copied to us-west-2; a copy of another
    // deployment there; nothing yet in eu-west-1.
    let home = in_region("us-east-1");
    let volume = emulator::fleet::detached_volume(&home).await.unwrap();
    let set = "2026-11-26T01:00:00Z";
    let mut ours = Vec::new();
    for _ in 0..2 {
        ours.push(
            emulator::fleet::snapshot_by_hand(
                &home,
                &volume,
                &[(tags::MANAGED_BY, STACK), (tags::CREATED_AT, set)],
            )
            .await
            .unwrap(),
        );
    }
    let west = in_region("us-west-2");
    let west_volume = emulator::fleet::detached_volume(&west).await.unwrap();
    let copy = emulator::fleet::snapshot_by_hand(
        &west,
        &west_volume,
        &[
            (tags::MANAGED_BY, STACK),
            (tags::SOURCE_REGION, "us-east-1"),
            (tags::SOURCE_SNAPSHOT, ours[0].as_str()),
            (tags::CREATED_AT, set),
        ],
    )
    .await
    .unwrap();
    let theirs = emulator::fleet::snapshot_by_hand(
        &west,
        &west_volume,
        &[
            (tags::MANAGED_BY, "smartvault-other"),
            (tags::SOURCE_REGION, "us-east-1"),
        ],
    )
    .await
    .unwrap();

    let status = json(&xtask(
        &emulator,
        &[
            "status",
            "--env",
            "local",
            "--config",
            dir.join("smartvault.yaml").to_str().unwrap(),
            "--output",
            "json",
        ],
    ));
    let copies = status["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{copies:?}");
    let by_region = |name: &str| copies.iter().find(|c| c["region"] == name).unwrap().clone();
    let west_status = by_region("us-west-2");
    assert_fields(
        &west_status,
        &[
            "region",
            "copies",
            "in_flight",
            "gib",
            "newest_copy",
            "newest_copy_age_hours",
            "oldest_set_without_copy",
        ],
    );
    assert_eq!(west_status["copies"], 1, "this deployment's only");
    assert_eq!(west_status["newest_copy"], set);
    assert_eq!(
        west_status["oldest_set_without_copy"], set,
        "one of the set is not copied"
    );
    assert_eq!(by_region("eu-west-1")["copies"], 0);

    let destroyed = json(&xtask(
        &emulator,
        &[
            "destroy",
            "--env",
            "local",
            "--config",
            dir.join("smartvault.yaml").to_str().unwrap(),
            "--yes",
            "--output",
            "json",
        ],
    ));
    assert_eq!(destroyed["failures"], serde_json::json!([]));
    assert_eq!(destroyed["copies_found"], 1);
    assert_eq!(
        destroyed["copies_deleted"],
        serde_json::json!([format!("us-west-2/{copy}")])
    );
    let left: Vec<String> = west
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    assert_eq!(
        left,
        [theirs],
        "only the other deployment's copy is left in us-west-2"
    );
}

/// The template SmartVault shipped before schedules (an EventBridge rule in UTC, one retention).
const BEFORE_SCHEDULES: &str = include_str!("../fixtures/smartvault-before-schedules.yaml");

/// A stack made by the version before schedules updates to EventBridge Scheduler: the rule
/// goes, the function gets its schedules, and the snapshots made before (no schedule tag) stay
/// and count as the `default` schedule's.
#[tokio::test]
async fn a_stack_from_before_schedules_updates_without_losing_anything() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let dir = scratch("before-schedules");
    let artifact = fake_artifact(&dir);
    let deploy = || {
        json(&xtask(
            &emulator,
            &[
                "deploy",
                "--env",
                "local",
                "--artifact",
                artifact.to_str().unwrap(),
                "--yes",
                "--output",
                "json",
            ],
        ))
    };
    assert_eq!(deploy()["result"], "created");
    // Make it the stack the previous version left: its template and its parameters.
    let old_template: serde_norway::Value = serde_norway::from_str(BEFORE_SCHEDULES).unwrap();
    let declared_before: Vec<&str> = old_template["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
    let described = cloudformation
        .describe_stacks()
        .stack_name(STACK)
        .send()
        .await
        .unwrap();
    let mut parameters: Vec<aws_sdk_cloudformation::types::Parameter> = described.stacks()[0]
        .parameters()
        .iter()
        // Only those the old template declares.
        .filter(|p| {
            p.parameter_key()
                .is_some_and(|k| declared_before.contains(&k))
        })
        .cloned()
        .collect();
    for (key, value) in [
        ("Schedule", "rate(1 day)"),
        ("RetentionDays", "7"),
        ("KeepLast", "1"),
    ] {
        parameters.push(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key(key)
                .parameter_value(value)
                .build(),
        );
    }
    cloudformation
        .update_stack()
        .stack_name(STACK)
        .template_body(BEFORE_SCHEDULES)
        .set_parameters(Some(parameters))
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .unwrap();
    assert_eq!(
        aws_sdk_eventbridge_rule(&sdk).await.as_deref(),
        Some("rate(1 day)"),
        "the old stack runs on an EventBridge rule"
    );
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let volume = emulator::fleet::detached_volume(&ec2).await.unwrap();
    let old =
        emulator::fleet::snapshot_by_hand(&ec2, &volume, &[(function::tags::MANAGED_BY, STACK)])
            .await
            .unwrap();

    let updated = deploy();
    assert_eq!(updated["result"], "updated");
    assert_eq!(
        aws_sdk_eventbridge_rule(&sdk).await,
        None,
        "the rule is gone"
    );
    let function = aws_sdk_lambda::Client::new(&sdk)
        .get_function_configuration()
        .function_name(STACK)
        .send()
        .await
        .unwrap();
    let vars = function.environment().unwrap().variables().unwrap();
    assert!(!vars.contains_key("RETENTION_DAYS"), "{vars:?}");
    assert_eq!(
        vars["SCHEDULES"],
        r#"[{"name":"default","retention_days":7,"keep_last":1,"overdue_after_hours":27,"consistency":{"mode":"script","timeout_seconds":30,"retries":0,"on_failure":"crash"}}]"#
    );
    let snapshots = ec2
        .describe_snapshots()
        .snapshot_ids(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(snapshots.snapshots().len(), 1, "the old snapshot stays");
    let status = json(&xtask(
        &emulator,
        &["status", "--env", "local", "--output", "json"],
    ));
    assert_eq!(status["schedules"][0]["name"], "default");
    assert_eq!(status["schedules"][0]["snapshots"], 1);
}
