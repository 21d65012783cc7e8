//! Invoking an environment's function: the event checked by the function's own parser, a
//! remote invocation (`aws::lambda::invoke`), or the real `bootstrap` run here under the local
//! runtime.

use crate::aws::Aws;
use crate::config::Environment;
use crate::user_error::UserError;
use anyhow::{Context, Result};
use function::event::{EventKind, Payload};
use std::path::Path;

/// The seed's console test event: back up, then clean up.
pub const DEFAULT_EVENT: &str = r#"{"action": "manual-trigger"}"#;

/// The event to send: the file's JSON, or the default, with `dry_run` added when asked.
/// It is checked with the function's own parser first, so an event the function would refuse,
/// or one that `--dry-run` cannot apply to, is refused here (exit 2) before any AWS call.
pub fn event(file: Option<&Path>, dry_run: bool) -> Result<serde_json::Value> {
    let (text, name) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                UserError(format!("cannot read the event `{}`: {e}", path.display()))
            })?,
            format!("the event `{}`", path.display()),
        ),
        None => (DEFAULT_EVENT.to_owned(), "the default event".to_owned()),
    };
    let payload =
        Payload::from_json(&text).map_err(|e| UserError(format!("{name} is not JSON: {e}")))?;
    let request =
        function::event::parse(&payload).map_err(|e| UserError(format!("{name}: {e}")))?;
    if matches!(request.kind, EventKind::Continuation(_)) {
        return Err(UserError(format!(
            "{name} is a continuation, which only the function sends to itself to go on with a \
             run it started (and the function refuses any other); start a run with an action \
             event instead, e.g. {{\"action\": \"backup\"}}"
        ))
        .into());
    }
    let mut event = payload.value().clone();
    if dry_run {
        if matches!(
            request.kind,
            EventKind::Scheduled | EventKind::SnapshotsCompleted
        ) {
            let kind = if request.kind == EventKind::Scheduled {
                "a scheduled event"
            } else {
                "EC2's snapshot completion event"
            };
            return Err(UserError(format!(
                "--dry-run cannot apply to {name}: it is {kind}, which carries no \
                 options; send an action event instead, e.g. {{\"action\": \"manual-trigger\"}} \
                 (the default), and --dry-run adds \"dry_run\": true to it"
            ))
            .into());
        }
        if let Some(object) = event.as_object_mut() {
            object.insert("dry_run".into(), serde_json::Value::Bool(true));
        }
    }
    Ok(event)
}

/// The deployed stack's topic ARN, from its resources (outputs are not always reported).
pub async fn topic_arn(aws: &Aws, stack: &str) -> Result<String> {
    let resources = crate::aws::cfn::resources(aws, stack)
        .await
        .with_context(|| {
            format!(
                "stack {stack} is not deployed here; run `cargo xtask deploy --env <env>` first"
            )
        })?;
    resources
        .into_iter()
        .find(|r| r.logical_id == "Topic")
        .map(|r| r.physical_id)
        .with_context(|| format!("stack {stack} has no Topic resource"))
}

/// Builds the host `bootstrap` for local runs with the workspace's feature set, so it reuses
/// the compile that `cargo xtask` itself needed.
pub fn host_bootstrap() -> Result<std::path::PathBuf> {
    let root = crate::paths::workspace_root();
    let status =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(&root)
            .status()
            .context("failed to run cargo build")?;
    anyhow::ensure!(
        status.success(),
        "building the host bootstrap failed ({status})"
    );
    Ok(root.join("target").join("debug").join("bootstrap"))
}

/// The AWS settings a local run passes on: endpoint, credentials, profile.
pub fn aws_passthrough(endpoint_url: Option<&str>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_ENDPOINT_URL")
                || matches!(
                    k.as_str(),
                    "AWS_ACCESS_KEY_ID"
                        | "AWS_SECRET_ACCESS_KEY"
                        | "AWS_SESSION_TOKEN"
                        | "AWS_PROFILE"
                        | "AWS_CONFIG_FILE"
                        | "AWS_SHARED_CREDENTIALS_FILE"
                        | "AWS_EC2_METADATA_DISABLED"
                        | "HOME"
                )
        })
        .collect();
    if let Some(endpoint) = endpoint_url {
        vars.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        vars.push(("AWS_ENDPOINT_URL".into(), endpoint.to_owned()));
        vars.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    }
    vars
}

/// Runs the real `bootstrap` locally under the local Runtime API, against the environment's
/// deployed topic, with the variables the template would set.
pub async fn local(
    aws: &Aws,
    env: &Environment,
    binary: &Path,
    event: &serde_json::Value,
    aws_vars: Vec<(String, String)>,
    logs: crate::build::local_runtime::Logs,
) -> Result<crate::build::local_runtime::Invocation> {
    let account_id = aws.check_account(env.account_id.as_deref()).await?;
    let topic = topic_arn(aws, &env.stack_name).await?;
    let mut vars: Vec<(String, String)> = crate::config::function_environment(env, &topic)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    vars.extend(aws_vars);
    let run = crate::build::local_runtime::Run {
        binary,
        function_name: &env.stack_name,
        account_id: &account_id,
        memory_mb: env.memory_mb,
        timeout: std::time::Duration::from_secs(u64::from(env.timeout_seconds)),
        region: &aws.region,
        env: vars,
        event,
        logs,
    };
    tokio::task::block_in_place(|| crate::build::local_runtime::invoke(&run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = crate::paths::test_scratch("invoke-events");
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Exit 2 (a `UserError`) with `expected` in the message.
    fn refused(path: &Path, dry_run: bool, expected: &str) {
        let error = event(Some(path), dry_run).expect_err(expected);
        assert!(error.is::<UserError>(), "{error:#}");
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{message}");
    }

    #[test]
    fn an_event_the_function_would_refuse_or_that_dry_run_cannot_apply_to_is_refused_here() {
        let scheduled = event_file(
            "scheduled.json",
            r#"{"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "123456789012", "time": "2026-11-26T01:00:00Z", "region": "eu-west-1",
                "resources": [], "detail": {}}"#,
        );
        assert_eq!(
            event(Some(&scheduled), false).unwrap()["source"],
            "aws.events"
        );
        refused(&scheduled, true, "--dry-run cannot apply to the event");
        refused(&scheduled, true, "send an action event instead");
        let completed = event_file(
            "completed.json",
            r#"{"source": "aws.ec2", "detail-type": "EBS Multi-Volume Snapshots Completion Status",
                "region": "eu-west-1", "account": "123456789012",
                "detail": {"event": "createSnapshots", "result": "succeeded", "snapshots": [
                    {"snapshot_id": "arn:aws:ec2::eu-west-1:snapshot/snap-01234567", "status": "completed"}]}}"#,
        );
        assert_eq!(event(Some(&completed), false).unwrap()["source"], "aws.ec2");
        refused(
            &completed,
            true,
            "it is EC2's snapshot completion event, which carries no options",
        );
        let twice = event_file(
            "twice.json",
            r#"{"action": "backup", "dry_run": true, "dry_run": false}"#,
        );
        refused(&twice, false, "the key `dry_run` appears twice");
        let continuation = event_file(
            "continuation.json",
            &serde_json::json!({"continuation": function::event::Link {
                run_started_at: time::macros::datetime!(2026-11-26 01:00 UTC),
                number: 2,
                options: serde_json::from_value(serde_json::json!(
                    {"job": "cleanup", "interval": "respect", "instance_ids": null}
                ))
                .unwrap(),
                dry_run: false,
                so_far: function::report::RunReport::new(
                    "prod",
                    false,
                    function::model::Job::Cleanup,
                    "Backup=true".into(),
                    time::macros::datetime!(2026-11-26 01:00 UTC),
                ),
            }})
            .to_string(),
        );
        refused(
            &continuation,
            false,
            "is a continuation, which only the function sends",
        );
        let restore = event_file("restore.json", r#"{"action": "restore"}"#);
        refused(&restore, false, "unknown variant `restore`");
        let broken = event_file("broken.json", "{");
        refused(&broken, false, "is not JSON");
        refused(
            &broken.with_file_name("missing.json"),
            false,
            "cannot read the event",
        );
        let narrowed = event_file(
            "narrowed.json",
            r#"{"action": "backup", "instance_ids": ["i-12345678"]}"#,
        );
        let sent = event(Some(&narrowed), true).unwrap();
        assert_eq!(sent["dry_run"], true);
        assert_eq!(sent["instance_ids"][0], "i-12345678");
    }

    #[test]
    fn the_default_event_is_the_seed_test_event_and_dry_run_is_added() {
        assert_eq!(
            event(None, false).unwrap(),
            serde_json::json!({"action": "manual-trigger"})
        );
        assert_eq!(
            event(None, true).unwrap(),
            serde_json::json!({"action": "manual-trigger", "dry_run": true})
        );
    }
}
