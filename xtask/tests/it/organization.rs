//! An organization's environment on the emulator: one self-managed stack set deployed from
//! the administrator account (123456789012) to accounts 111111111111 and 222222222222 in
//! us-east-1 and eu-west-1 with one command; an update that reaches every instance; status
//! per instance; promotion of the same artifact from a single-account environment; a region
//! leaving the targets, removed with `destroy --untargeted`; and a destroy that leaves nothing:
//! no stack, function, snapshot of the deployment, stack set or artifact bucket, while another
//! deployment's snapshot stays.

use crate::common::{assert_fields, fake_artifact, json, scratch, xtask};
use emulator::Emulator;
use emulator::story::Story;

const ACCOUNTS: [&str; 2] = ["111111111111", "222222222222"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const STACK_SET: &str = "smartvault-org";

fn config(memory_mb: u32) -> String {
    config_in(memory_mb, "[us-east-1, eu-west-1]")
}

fn config_in(memory_mb: u32, regions: &str) -> String {
    format!(
        r#"environments:
  dev:
    region: us-east-1
    notification_emails: [dev@example.com]
  org:
    region: us-east-1
    notification_emails: [ops@example.com]
    memory_mb: {memory_mb}
    targets:
      accounts: ["111111111111", "222222222222"]
      regions: {regions}
      max_concurrent_accounts: 2
      failure_tolerance: 1
      central_topic:
        notification_emails: [backup-team@example.com]
"#
    )
}

/// Clients of `account` in `region`, as the test reaches a member account.
async fn member(emulator: &Emulator, account: &str, region: &str) -> aws_config::SdkConfig {
    crate::common::assumed(
        emulator,
        &format!("arn:aws:iam::{account}:role/test"),
        region,
    )
    .await
}

/// The live stacks of an account and region.
async fn stacks(sdk: &aws_config::SdkConfig) -> Vec<(String, String)> {
    let out = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .send()
        .await
        .unwrap();
    out.stacks()
        .iter()
        .filter(|s| s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE"))
        .map(|s| {
            (
                s.stack_name().unwrap_or_default().to_owned(),
                s.stack_status().unwrap().as_str().to_owned(),
            )
        })
        .collect()
}

/// The function's memory in an account and region, or `None` when it does not exist.
async fn function_memory(sdk: &aws_config::SdkConfig) -> Option<i32> {
    aws_sdk_lambda::Client::new(sdk)
        .get_function_configuration()
        .function_name(STACK_SET)
        .send()
        .await
        .ok()
        .and_then(|f| f.memory_size())
}

/// A completed snapshot in an account and region, tagged as made by `deployment`.
async fn snapshot(sdk: &aws_config::SdkConfig, zone: &str, deployment: &str) -> String {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let volume = ec2
        .create_volume()
        .availability_zone(zone)
        .size(8)
        .send()
        .await
        .unwrap();
    let tag = aws_sdk_ec2::types::Tag::builder()
        .key(function::tags::MANAGED_BY)
        .value(deployment)
        .build();
    ec2.create_snapshot()
        .volume_id(volume.volume_id().unwrap())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Snapshot)
                .tags(tag)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_owned()
}

async fn snapshot_ids(sdk: &aws_config::SdkConfig) -> Vec<String> {
    let out = aws_sdk_ec2::Client::new(sdk)
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    out.snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect()
}

fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

#[tokio::test]
async fn an_organization_deploys_updates_reports_and_is_destroyed_with_nothing_left() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("organization");
    let first = dir.join("smartvault.yaml");
    std::fs::write(&first, config(256)).unwrap();
    let artifact = fake_artifact(&dir);
    let run = |config: &std::path::Path, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        xtask(&emulator, &all)
    };

    let mut story = Story::new("an organization deploys, updates, reports and is destroyed");
    let admin = emulator.sdk_config().await;
    let buckets: Vec<String> = REGIONS
        .iter()
        .map(|r| format!("{STACK_SET}-{}-{r}", emulator::ACCOUNT_ID))
        .collect();
    let central = format!(
        "arn:aws:sns:us-east-1:{}:{STACK_SET}-central",
        emulator::ACCOUNT_ID
    );
    let second = dir.join("bigger.yaml");
    let shrunk = dir.join("shrunk.yaml");
    let b_west = member(&emulator, ACCOUNTS[1], "eu-west-1").await;
    let a_east = member(&emulator, ACCOUNTS[0], "us-east-1").await;
    let sha = story
        .stage(
            "one deploy makes the artifact buckets, the stack set, four instances and the central topic",
            async {
                // One command: the artifact in a bucket per target region, the stack set, four instances.
                let deployed = json(&run(
                    &first,
                    &[
                        "deploy",
                        "--env",
                        "org",
                        "--artifact",
                        artifact.to_str().unwrap(),
                        "--yes",
                        "--output",
                        "json",
                    ],
                ));
                assert_fields(
                    &deployed,
                    &[
                        "environment",
                        "stack_set",
                        "account",
                        "region",
                        "result",
                        "artifact_sha256",
                        "artifacts",
                        "central_topic",
                        "operations",
                        "instances",
                        "untargeted",
                    ],
                );
                assert_eq!(deployed["result"], "created");
                assert_eq!(deployed["account"], emulator::ACCOUNT_ID);
                let sha = deployed["artifact_sha256"].as_str().unwrap().to_owned();
                let artifacts: Vec<&str> = deployed["artifacts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a[0].as_str().unwrap())
                    .collect();
                assert_eq!(artifacts.len(), 2);
                for (url, bucket) in artifacts.iter().zip(&buckets) {
                    assert_eq!(
                        *url,
                        format!("s3://{bucket}/artifacts/{sha}.zip"),
                        "content-addressed, one bucket per region"
                    );
                }
                let operation = &deployed["operations"][0];
                assert_eq!(operation["action"], "CREATE");
                assert_eq!(operation["status"], "SUCCEEDED");
                assert_eq!(operation["results"].as_array().unwrap().len(), 4);
                assert_eq!(deployed["instances"].as_array().unwrap().len(), 4);

                // The central topic is the administrator account's, and every member function publishes
                // to it (who may is its topic policy's, proven on the template).
                assert_eq!(
                    deployed["central_topic"],
                    central.as_str()
                );
                sha
            },
        )
        .await;
    story
        .stage("the artifact buckets hold the exact bytes", async {
            // The artifact buckets are in the administrator account and hold the exact bytes (who
            // may read them is the bucket policy's, which moto's CloudFormation skips: it is proven
            // on the rendered template, template_checks::the_organization_artifacts_are_readable_by_the_targets_only).
            for bucket in &buckets {
                let object = s3(&admin)
                    .get_object()
                    .bucket(bucket)
                    .key(format!(
                        "artifacts/{}.zip",
                        sha.as_deref().unwrap_or_default()
                    ))
                    .send()
                    .await
                    .unwrap();
                let bytes = object.body.collect().await.unwrap().into_bytes();
                assert_eq!(bytes.as_ref(), std::fs::read(&artifact).unwrap().as_slice());
            }
        })
        .await;
    story
        .stage(
            "each member account and region runs the stack, the administrator none",
            async {
                // Each account and region has the stack and the function, and the administrator account
                // has neither.
                for account in ACCOUNTS {
                    for region in REGIONS {
                        let sdk = member(&emulator, account, region).await;
                        let found = stacks(&sdk).await;
                        assert_eq!(found.len(), 1, "{account}/{region}: {found:?}");
                        assert!(found[0].1.ends_with("_COMPLETE"), "{found:?}");
                        assert_eq!(function_memory(&sdk).await, Some(256), "{account}/{region}");
                        let variables = aws_sdk_lambda::Client::new(&sdk)
                            .get_function_configuration()
                            .function_name(STACK_SET)
                            .send()
                            .await
                            .unwrap()
                            .environment()
                            .unwrap()
                            .variables()
                            .unwrap()
                            .clone();
                        assert_eq!(
                            variables["CENTRAL_TOPIC_ARN"], central,
                            "{account}/{region}"
                        );
                        assert!(
                            variables["SNS_TOPIC_ARN"].contains(&format!(":{region}:{account}:")),
                            "its own topic too: {variables:?}"
                        );
                    }
                }
                assert_eq!(function_memory(&admin).await, None);
            },
        )
        .await;
    story
        .stage(
            "status shows every instance current, with its artifact",
            async {
                // status: every instance, current, with the artifact it runs.
                let status = json(&run(
                    &first,
                    &["status", "--env", "org", "--output", "json"],
                ));
                assert_fields(
                    &status,
                    &[
                        "environment",
                        "stack_set",
                        "exists",
                        "permission_model",
                        "artifact_sha256",
                        "smartvault_version",
                        "instances",
                        "untargeted",
                        "missing",
                        "central_topic",
                    ],
                );
                assert_eq!(status["central_topic"], central.as_str());
                let rows = status["instances"].as_array().unwrap();
                assert_eq!(rows.len(), 4);
                for row in rows {
                    assert_eq!(row["status"], "CURRENT", "{row}");
                    assert_eq!(
                        row["artifact_sha256"],
                        sha.as_deref().unwrap_or_default(),
                        "{row}"
                    );
                }
                let pairs: Vec<(String, String)> = rows
                    .iter()
                    .map(|r| {
                        (
                            r["account"].as_str().unwrap().to_owned(),
                            r["region"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                for account in ACCOUNTS {
                    for region in REGIONS {
                        assert!(
                            pairs.contains(&(account.into(), region.into())),
                            "{pairs:?}"
                        );
                    }
                }
            },
        )
        .await;
    story
        .stage(
            "single-stack commands say what to do instead, exit 2",
            async {
                // A command that works on one stack says what to do instead, exit 2, before any call.
                for command in ["invoke", "coverage", "logs"] {
                    let refused = run(&first, &[command, "--env", "org"]);
                    assert_eq!(refused.status.code(), Some(2), "{command}");
                    let message = String::from_utf8_lossy(&refused.stderr);
                    assert!(
                        message.contains(&format!(
                            "`cargo xtask {command}` works on one stack, and org is an organization's stack set"
                        )) && message.contains("cargo xtask status --env org"),
                        "{message}"
                    );
                }
            },
        )
        .await;
    story
        .stage("a deploy with nothing changed does nothing", async {
            // Nothing changed: nothing is done.
            let again = json(&run(
                &first,
                &[
                    "deploy",
                    "--env",
                    "org",
                    "--artifact",
                    artifact.to_str().unwrap(),
                    "--yes",
                    "--output",
                    "json",
                ],
            ));
            assert_eq!(again["result"], "unchanged");
            assert!(again["operations"].as_array().unwrap().is_empty());
        })
        .await;
    story
        .stage("a parameter change reaches every instance", async {
            // An update: a parameter change reaches every instance.
            std::fs::write(&second, config(512)).unwrap();
            let updated = json(&run(
                &second,
                &[
                    "deploy",
                    "--env",
                    "org",
                    "--artifact",
                    artifact.to_str().unwrap(),
                    "--yes",
                    "--output",
                    "json",
                ],
            ));
            assert_eq!(updated["result"], "updated");
            assert_eq!(updated["operations"][0]["action"], "UPDATE");
            for account in ACCOUNTS {
                for region in REGIONS {
                    let sdk = member(&emulator, account, region).await;
                    assert_eq!(function_memory(&sdk).await, Some(512), "{account}/{region}");
                }
            }
        })
        .await;
    if let Some(sha) = &sha {
        story
            .stage(
                "promotion sends dev's artifact to the organization by its hash",
                async {
                    // Promotion: dev's artifact goes to the organization, by its hash.
                    json(&run(
                        &second,
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
                    let promoted = json(&run(
                        &second,
                        &[
                            "promote", "--from", "dev", "--to", "org", "--yes", "--output", "json",
                        ],
                    ));
                    assert_eq!(promoted["artifact_sha256"], sha.as_str());
                },
            )
            .await;
    }
    let Some((ours, theirs)) = story
        .stage(
            "the members' functions made snapshots, and another deployment did",
            async {
                // What the members' functions made: this deployment's snapshots in two of the four
                // places, and another deployment's, which destroy must leave.
                let ours = [
                    snapshot(&b_west, "eu-west-1a", STACK_SET).await,
                    snapshot(&a_east, "us-east-1a", STACK_SET).await,
                ];
                let theirs = snapshot(&b_west, "eu-west-1a", "smartvault-other").await;
                (ours, theirs)
            },
        )
        .await
    else {
        return story.end();
    };
    story
        .stage(
            "a region that leaves the targets goes with destroy --untargeted, the rest stays",
            async {
                // eu-west-1 leaves the targets: deploy changes nothing and lists its instances, and
                // `destroy --untargeted` removes them, what their functions made and that region's bucket,
                // and keeps the rest.
                std::fs::write(&shrunk, config_in(512, "[us-east-1]")).unwrap();
                let narrowed = json(&run(
                    &shrunk,
                    &[
                        "deploy",
                        "--env",
                        "org",
                        "--artifact",
                        artifact.to_str().unwrap(),
                        "--yes",
                        "--output",
                        "json",
                    ],
                ));
                assert_eq!(narrowed["result"], "unchanged");
                assert_eq!(
                    narrowed["untargeted"],
                    serde_json::json!(["111111111111/eu-west-1", "222222222222/eu-west-1"])
                );
                let untargeted = json(&run(
                    &shrunk,
                    &[
                        "destroy",
                        "--env",
                        "org",
                        "--untargeted",
                        "--yes",
                        "--output",
                        "json",
                    ],
                ));
                assert!(untargeted["failures"].as_array().unwrap().is_empty());
                assert_eq!(
                    untargeted["instances_deleted"],
                    serde_json::json!(["111111111111/eu-west-1", "222222222222/eu-west-1"])
                );
                assert_eq!(untargeted["stack_set_deleted"], false);
                assert_eq!(
                    untargeted["supporting_stacks_deleted"],
                    serde_json::json!(["eu-west-1/smartvault-org-artifacts"])
                );
                assert_eq!(
                    untargeted["members"]["222222222222/eu-west-1"]["snapshots_deleted"],
                    serde_json::json!([ours[0]])
                );
                for account in ACCOUNTS {
                    let west = member(&emulator, account, "eu-west-1").await;
                    assert!(stacks(&west).await.is_empty(), "{account}/eu-west-1");
                    let east = member(&emulator, account, "us-east-1").await;
                    assert_eq!(
                        function_memory(&east).await,
                        Some(512),
                        "{account}/us-east-1 stays"
                    );
                }
            },
        )
        .await;
    story
        .stage(
            "destroy removes the instances, the stack set, the supporting stacks and our snapshots",
            async {
                let destroyed = json(&run(
                    &shrunk,
                    &["destroy", "--env", "org", "--yes", "--output", "json"],
                ));
                assert_fields(
                    &destroyed,
                    &[
                        "environment",
                        "stack_set",
                        "instances_deleted",
                        "operations",
                        "members",
                        "stack_set_deleted",
                        "supporting_stacks_deleted",
                        "failures",
                    ],
                );
                assert!(destroyed["failures"].as_array().unwrap().is_empty());
                assert_eq!(
                    destroyed["instances_deleted"],
                    serde_json::json!(["111111111111/us-east-1", "222222222222/us-east-1"])
                );
                assert_eq!(destroyed["stack_set_deleted"], true);
                assert_eq!(
                    destroyed["supporting_stacks_deleted"],
                    serde_json::json!([
                        "us-east-1/smartvault-org-artifacts",
                        "us-east-1/smartvault-org-central"
                    ])
                );
                assert_eq!(
                    destroyed["members"]["111111111111/us-east-1"]["snapshots_deleted"],
                    serde_json::json!([ours[1]])
                );
            },
        )
        .await;
    story
        .stage("nothing is left but another deployment's snapshot", async {
            // Nothing is left: no stack or function in any member, no stack set, no bucket.
            for account in ACCOUNTS {
                for region in REGIONS {
                    let sdk = member(&emulator, account, region).await;
                    assert!(stacks(&sdk).await.is_empty(), "{account}/{region}");
                    assert_eq!(function_memory(&sdk).await, None, "{account}/{region}");
                }
            }
            assert_eq!(snapshot_ids(&b_west).await, [theirs]);
            assert!(snapshot_ids(&a_east).await.is_empty());
            let gone = aws_sdk_cloudformation::Client::new(&admin)
                .describe_stack_set()
                .stack_set_name(STACK_SET)
                .send()
                .await;
            assert!(gone.is_err(), "the stack set is gone");
            let names: Vec<String> = s3(&admin)
                .list_buckets()
                .send()
                .await
                .unwrap()
                .buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_owned))
                .collect();
            for bucket in &buckets {
                assert!(!names.contains(bucket), "{bucket} removed: {names:?}");
            }
            let topics = aws_sdk_sns::Client::new(&admin)
                .list_topics()
                .send()
                .await
                .unwrap();
            assert!(
                topics
                    .topics()
                    .iter()
                    .all(|t| t.topic_arn() != Some(central.as_str())),
                "the central topic is gone"
            );
            let status = json(&run(
                &second,
                &["status", "--env", "org", "--output", "json"],
            ));
            assert_eq!(status["exists"], false);
        })
        .await;
    story.end();
}
