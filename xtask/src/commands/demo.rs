//! `cargo xtask demo`: the whole lifecycle on a local AWS emulator, explained step by step.

use crate::aws::inbox::Inbox;
use crate::aws::{Aws, sdk_error};
use crate::build::local_runtime::{self, Ending, Logs};
use crate::config::{self, Environment};
use crate::output::Output;
use crate::workflows::destroy::{Snapshots, destroy};
use crate::workflows::{deploy::deploy, invoke};
use crate::{aws::cfn, aws::snapshots};
use anyhow::{Context, Result};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use std::process::ExitCode;
use std::time::Instant;

/// The whole lifecycle on a local AWS emulator: deploy, back up a fleet, clean up, destroy.
#[derive(Debug, clap::Args)]
pub struct Demo {
    /// `json` prints the summary as one document and the function's log lines raw.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Demo {
    pub fn run(self) -> Result<ExitCode> {
        let summary = run(self.output)?;
        self.output.result(&summary, |_| {})?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What the tour showed, for `--output json` and the end-to-end test.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub build_seconds: f64,
    pub total_seconds: f64,
    pub tagged_volumes: usize,
    pub first_run_created: usize,
    pub first_run_subject: String,
    pub second_run_created: usize,
    pub second_run_deleted: usize,
    pub second_run_subject: String,
    pub unmanaged_snapshot_kept: bool,
    pub destroyed_snapshots: usize,
    /// Volumes the restore step brought back (db-1's, at their recorded devices).
    pub restored_volumes: Vec<(String, String)>,
    /// The restore test's summary subject.
    pub restore_test_subject: String,
    /// Anything still in the emulator after destroy besides the hand-made snapshot.
    pub leftovers: Vec<String>,
    pub report_lines: Vec<String>,
}

struct Tour {
    step: usize,
}

impl Tour {
    fn step(&mut self, title: &str, why: &str) {
        self.step += 1;
        eprintln!("\n== {}. {title}\n   {why}", self.step);
    }
}

fn run(output: Output) -> Result<Summary> {
    let started = Instant::now();
    let mut tour = Tour { step: 0 };
    let mut summary = Summary::default();
    crate::build::tools::ensure()?;

    tour.step(
        "Build the function",
        "A host build of the real `bootstrap` binary (`cargo xtask build` makes the Lambda one).",
    );
    let build_started = Instant::now();
    let binary = invoke::host_bootstrap()?;
    summary.build_seconds = build_started.elapsed().as_secs_f64();
    eprintln!(
        "   built {} in {:.0} s",
        binary.display(),
        summary.build_seconds
    );

    tour.step(
        "Start a local AWS emulator",
        "moto on a free loopback port: EC2, SNS, CloudFormation, Lambda, S3, IAM, all in memory.",
    );
    let emulator = Emulator::start().context("failed to start the AWS emulator")?;
    // Functions are stored but never run by the emulator; the local Runtime API runs them.
    emulator.set_config(&serde_json::json!({"lambda": {"use_docker": false}}))?;
    eprintln!("   listening on {}", emulator.endpoint());
    let env = config::load(None, "local")?;

    let runtime = crate::aws::runtime()?;
    runtime.block_on(tour_in_emulator(
        &mut tour,
        &emulator,
        &env,
        &binary,
        output,
        &mut summary,
    ))?;

    tour.step(
        "Stop the emulator",
        "Killed by its PID; nothing keeps running.",
    );
    drop(emulator);
    summary.total_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "\nDone in {:.0} s: deployed, backed up, cleaned up and destroyed without an AWS account.",
        summary.total_seconds
    );
    anyhow::ensure!(
        summary.leftovers.is_empty(),
        "destroy left {:?} behind",
        summary.leftovers
    );
    Ok(summary)
}

async fn tour_in_emulator(
    tour: &mut Tour,
    emulator: &Emulator,
    env: &Environment,
    binary: &std::path::Path,
    output: Output,
    summary: &mut Summary,
) -> Result<()> {
    let aws = Aws::from_sdk(&emulator.sdk_config().await, emulator::REGION.to_owned());
    let aws_vars: Vec<(String, String)> = emulator
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

    tour.step(
        "Deploy the `local` environment",
        "The same deploy as for AWS: bootstrap (bucket, execution role), artifact upload, change set, function, role, topic, schedule.",
    );
    let artifact =
        crate::build::package::package(binary, crate::build::package::Compression::Fast)?;
    let deployed = deploy(&aws, env, &artifact, true, output).await?;
    eprintln!("   stack {} {}", deployed.stack, deployed.result);
    let inbox = Inbox::subscribe(
        &aws,
        "smartvault-demo-inbox",
        &invoke::topic_arn(&aws, &env.stack_name).await?,
    )
    .await?;
    eprintln!("   (an SQS queue subscribed to the topic stands in for the email inbox)");

    tour.step(
        "Create a small fleet",
        "Three instances tagged Backup=true with 1 to 3 volumes (one volume tagged BackupExclude=true), \
         one untagged instance, and one snapshot made by hand with a CreatedOn tag.",
    );
    let specs = [
        InstanceSpec::backup("web-1"),
        InstanceSpec::backup("web-2").data_volumes(1),
        InstanceSpec::backup("db-1")
            .data_volumes(2)
            .volume_tag(2, "BackupExclude", "true"),
        InstanceSpec::untagged("scratch").data_volumes(1),
    ];
    let fleet = fleet::launch_all(&aws.ec2, &specs)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    for instance in &fleet {
        eprintln!(
            "   {} {:<8} volumes {}",
            instance.id,
            instance.name,
            instance.volume_ids.join(", ")
        );
    }
    let by_hand = fleet::snapshot_by_hand(
        &aws.ec2,
        &fleet[3].volume_ids[0],
        &[("CreatedOn", "2020-01-01")],
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    eprintln!("   {by_hand}: made by hand, tagged CreatedOn (the seed would have deleted it)");
    summary.tagged_volumes = fleet[..3].iter().map(|i| i.volume_ids.len()).sum::<usize>();

    tour.step(
        "Run a backup through the local Lambda Runtime API",
        "The real bootstrap binary, started as Lambda starts it, gets the seed's test event {\"action\": \"manual-trigger\"}.",
    );
    let event = serde_json::json!({"action": "manual-trigger"});
    eprintln!(
        "   (The emulator ignores CreateSnapshots' exclusion options, so it snapshots the excluded volume\n    \
         anyway; AWS honours them. The plan and the summary show the volume skipped.)"
    );
    let logs = Logs::for_output(output);
    let first = invoke::local(&aws, env, binary, &event, aws_vars.clone(), logs).await?;
    local_runtime::ensure_success(&first)?;
    eprintln!("   {}", first.report_line());
    summary.report_lines.push(first.report_line());
    if let Ending::Response(body) = &first.ending {
        summary.first_run_created = body["created"].as_array().map_or(0, Vec::len);
    }
    let delivered = inbox.next().await?;
    summary.first_run_subject = delivered.subject;
    eprintln!(
        "\n   The summary SNS delivered:\n   Subject: {}\n{}",
        summary.first_run_subject,
        indent(&delivered.message)
    );
    show_snapshots(&aws, &env.stack_name).await?;

    tour.step(
        "Run again, with one expired snapshot waiting",
        "A snapshot this deployment made long ago, of a volume since deleted, has expired. The second run \
         creates nothing (the minimum interval protects against duplicates) and deletes only that one.",
    );
    let old_volume = fleet::detached_volume(&aws.ec2)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let expired = fleet::snapshot_by_hand(
        &aws.ec2,
        &old_volume,
        &[
            (function::tags::MANAGED_BY, env.stack_name.as_str()),
            (function::tags::INSTANCE_ID, "i-0decommissioned0"),
            (function::tags::CREATED_AT, "2026-01-01T01:00:00Z"),
            (function::tags::EXPIRES_AT, "2026-01-08T01:00:00Z"),
        ],
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    aws.ec2
        .delete_volume()
        .volume_id(&old_volume)
        .send()
        .await
        .map_err(sdk_error)?;
    eprintln!("   {expired}: expired 2026-01-08, its volume is gone");
    let second = invoke::local(&aws, env, binary, &event, aws_vars.clone(), logs).await?;
    local_runtime::ensure_success(&second)?;
    eprintln!("   {}", second.report_line());
    summary.report_lines.push(second.report_line());
    if let Ending::Response(body) = &second.ending {
        summary.second_run_created = body["created"].as_array().map_or(0, Vec::len);
        summary.second_run_deleted = body["deleted"].as_array().map_or(0, Vec::len);
    }
    let delivered = inbox.next().await?;
    summary.second_run_subject = delivered.subject;
    eprintln!(
        "\n   Subject: {}\n{}",
        summary.second_run_subject,
        indent(&delivered.message)
    );

    tour.step(
        "Restore db-1's volumes from its newest restore point",
        "What `cargo xtask restore --env local --instance <id>` does: one new volume per snapshot of \
         the set, with the device, type and zone the backup recorded, tagged with where it came from.",
    );
    let points = crate::workflows::restore::points(&aws, env, &env.region).await?;
    let point =
        crate::restore::plan::select(&points, &fleet[2].id, &crate::restore::plan::At::Latest)?;
    let planned = crate::restore::plan::volumes(point, None)?;
    let restored = crate::aws::restore::restore_volumes(&aws.ec2, &planned, None, |m| {
        eprintln!("   {m}");
    })
    .await?;
    for volume in &restored {
        let device = volume.device.clone().unwrap_or_default();
        eprintln!(
            "   {} at {device}: {} GiB {} from {}",
            volume.volume_id,
            volume.size_gib,
            volume.volume_type.as_deref().unwrap_or("-"),
            volume.snapshot_id
        );
        summary
            .restored_volumes
            .push((device, volume.volume_id.clone()));
        // Restored volumes are the operator's, not the stack's: the demo removes its own.
        aws.ec2
            .delete_volume()
            .volume_id(&volume.volume_id)
            .send()
            .await
            .map_err(sdk_error)?;
    }

    tour.step(
        "Rehearse restores: the restore test",
        "What the environment's `restore_test:` schedule sends each week: {\"action\": \"restore-test\"}. \
         The function restores two instances' newest sets to volumes, waits until they are available, \
         deletes them, and mails the result.",
    );
    let event = serde_json::json!({"action": "restore-test"});
    let tested = invoke::local(&aws, env, binary, &event, aws_vars, logs).await?;
    local_runtime::ensure_success(&tested)?;
    eprintln!("   {}", tested.report_line());
    summary.report_lines.push(tested.report_line());
    let delivered = inbox.next().await?;
    summary.restore_test_subject = delivered.subject;
    eprintln!(
        "\n   Subject: {}\n{}",
        summary.restore_test_subject,
        indent(&delivered.message)
    );

    tour.step(
        "Destroy the environment",
        "Stack, this deployment's snapshots, log group and artifact; nothing else.",
    );
    inbox.remove().await?;
    let destroyed = destroy(&aws, env, true, Snapshots::Delete, output).await?;
    anyhow::ensure!(
        destroyed.failures.is_empty(),
        "destroy failed: {:?}",
        destroyed.failures
    );
    summary.destroyed_snapshots = destroyed.snapshots_deleted.len();

    tour.step(
        "Remove the bootstrap stack",
        "What an administrator runs once no environment is left in the region: \
         `cargo xtask bootstrap --region R --delete` (artifact bucket, execution role, boundary).",
    );
    crate::workflows::bootstrap::delete(&aws, true, output).await?;

    tour.step(
        "Check that nothing is left",
        "Every service the stack used, enumerated.",
    );
    summary.leftovers = leftovers(&aws, &env.stack_name).await?;
    let remaining = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .map_err(sdk_error)?;
    summary.unmanaged_snapshot_kept = remaining
        .snapshots()
        .iter()
        .any(|s| s.snapshot_id() == Some(by_hand.as_str()));
    if summary.leftovers.is_empty() {
        eprintln!(
            "   nothing left: no stack, function, rule, topic, log group, role, bucket or SmartVault snapshot"
        );
    }
    for leftover in &summary.leftovers {
        eprintln!("   LEFT BEHIND: {leftover}");
    }
    if summary.unmanaged_snapshot_kept {
        eprintln!(
            "   {by_hand} (made by hand) is still there: SmartVault never touches what it did not make"
        );
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   | {l}\n")).collect()
}

async fn show_snapshots(aws: &Aws, stack: &str) -> Result<()> {
    eprintln!("   The snapshots and their tags:");
    for snapshot in snapshots::managed(aws, stack).await? {
        eprintln!(
            "   {} of {}: {}",
            snapshot.id,
            snapshot.volume_id.as_deref().unwrap_or("?"),
            snapshot
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// What remains of the deployment in every service it used.
async fn leftovers(aws: &Aws, stack: &str) -> Result<Vec<String>> {
    let mut left = Vec::new();
    left.extend(
        cfn::describe_all(aws)
            .await?
            .into_iter()
            .map(|s| format!("stack {}", s.name)),
    );
    let functions = aws
        .lambda
        .list_functions()
        .send()
        .await
        .map_err(sdk_error)?;
    left.extend(
        functions
            .functions()
            .iter()
            .filter_map(|f| f.function_name())
            .map(|f| format!("function {f}")),
    );
    let sns = aws_sdk_sns::Client::new(&aws.sdk);
    let topics = sns.list_topics().send().await.map_err(sdk_error)?;
    left.extend(
        topics
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .map(|t| format!("topic {t}")),
    );
    let events = aws_sdk_eventbridge::Client::new(&aws.sdk);
    let rules = events.list_rules().send().await.map_err(sdk_error)?;
    left.extend(
        rules
            .rules()
            .iter()
            .filter_map(|r| r.name())
            .map(|r| format!("rule {r}")),
    );
    let groups = aws
        .logs
        .describe_log_groups()
        .send()
        .await
        .map_err(sdk_error)?;
    left.extend(
        groups
            .log_groups()
            .iter()
            .filter_map(|g| g.log_group_name())
            .map(|g| format!("log group {g}")),
    );
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let roles = iam.list_roles().send().await.map_err(sdk_error)?;
    left.extend(
        roles
            .roles()
            .iter()
            .map(|r| r.role_name())
            .filter(|name| name.contains(stack))
            .map(|name| format!("role {name}")),
    );
    let buckets = aws.s3.list_buckets().send().await.map_err(sdk_error)?;
    left.extend(
        buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .map(|b| format!("bucket {b}")),
    );
    let snapshots = snapshots::managed(aws, stack).await?;
    left.extend(snapshots.iter().map(|s| format!("snapshot {}", s.id)));
    Ok(left)
}
