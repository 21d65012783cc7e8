//! `cargo xtask deploy`: bootstrap bucket, artifact upload, change set, confirmation, progress.

use crate::aws::{Aws, sdk_error};
use crate::config::Environment;
use crate::output::{Output, confirm};
use crate::package::Artifact;
use crate::stack::{self, ChangeRow, ChangeSetOutcome, StackAction};
use crate::template::{self, ArtifactLocation, BOOTSTRAP_STACK};
use anyhow::{Context, Result, bail};
use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter, Tag};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long CloudFormation may take before deploy gives up waiting.
const MAX_WAIT: Duration = Duration::from_secs(60 * 60);

/// What a deploy did, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct DeployResult {
    pub environment: String,
    pub stack: String,
    pub region: String,
    pub account: String,
    /// `created`, `updated` or `unchanged`.
    pub result: String,
    pub artifact_sha256: String,
    pub artifact_uploaded: bool,
    pub changes: Vec<ChangeRow>,
    pub outputs: BTreeMap<String, String>,
}

/// Deploys `artifact` to `env`. `yes` skips the confirmation.
pub async fn deploy(
    aws: &Aws,
    env: &Environment,
    artifact: &Artifact,
    yes: bool,
    output: Output,
) -> Result<DeployResult> {
    let account = aws.check_account(env.account_id.as_deref()).await?;
    output.progress(format!(
        "deploying {} to account {account}, region {}",
        env.stack_name, aws.region
    ));
    let bootstrap = ensure_bootstrap(aws, output).await?;
    let location = ArtifactLocation {
        bucket: bootstrap.bucket.clone(),
        key: artifact.key(),
        sha256: artifact.sha256.clone(),
    };
    let uploaded = upload(aws, artifact, &location, output).await?;
    let made = Made {
        bootstrap: bootstrap.created,
        artifact: uploaded.then(|| format!("s3://{}/{}", location.bucket, location.key)),
    };
    let rendered = template::render(env, &location)?;
    let dir = template::write_rendered(env, &rendered)?;
    output.progress(format!(
        "rendered template and parameters in {}",
        dir.display()
    ));

    let status = stack_status(aws, &env.stack_name).await?;
    remove_stale_change_sets(aws, &env.stack_name, status.as_deref(), output).await?;
    let action = stack::action_for(&env.stack_name, status.as_deref());
    let change_set_type = match action {
        StackAction::Create => ChangeSetType::Create,
        StackAction::Update => ChangeSetType::Update,
        StackAction::RecreateAfterFailedCreate => {
            output.progress(format!(
                "stack {} is in ROLLBACK_COMPLETE after a failed first create; deleting it to create it again",
                env.stack_name
            ));
            delete_stack_and_wait(aws, &env.stack_name).await?;
            ChangeSetType::Create
        }
        StackAction::Busy(message) | StackAction::Stuck(message) => bail!(message),
    };

    // Milliseconds: two deploys within one second must not reuse a name.
    let change_set_name = format!(
        "{}{}",
        stack::CHANGE_SET_PREFIX,
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
    );
    aws.cloudformation
        .create_change_set()
        .stack_name(&env.stack_name)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .template_body(&rendered.body)
        .set_parameters(Some(
            rendered
                .parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build()
                })
                .collect(),
        ))
        .set_tags(Some(
            rendered
                .tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .capabilities(Capability::CapabilityIam)
        .description(format!(
            "SmartVault {} artifact {}",
            template::VERSION,
            &artifact.sha256[..12]
        ))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to create a change set for stack {}", env.stack_name))?;
    // The waiter's failure is read from the change set itself just below.
    let _ = aws
        .cloudformation
        .wait_until_change_set_create_complete()
        .stack_name(&env.stack_name)
        .change_set_name(&change_set_name)
        .wait(MAX_WAIT)
        .await;
    let described = aws
        .cloudformation
        .describe_change_set()
        .stack_name(&env.stack_name)
        .change_set_name(&change_set_name)
        .send()
        .await
        .map_err(sdk_error)
        .context("failed to read the change set back")?;
    let status = described
        .status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let mut result = DeployResult {
        environment: env.name.clone(),
        stack: env.stack_name.clone(),
        region: aws.region.clone(),
        account,
        result: String::new(),
        artifact_sha256: artifact.sha256.clone(),
        artifact_uploaded: uploaded,
        changes: change_rows(&described),
        outputs: BTreeMap::new(),
    };
    match stack::classify_change_set(&status, described.status_reason()) {
        ChangeSetOutcome::NoChanges => {
            discard_change_set(aws, &env.stack_name, &change_set_name).await;
            output.progress(format!(
                "stack {} is up to date: nothing to change",
                env.stack_name
            ));
            set_termination_protection(aws, env, output).await?;
            result.result = "unchanged".into();
            result.outputs = stack_outputs(aws, &env.stack_name).await?;
            return Ok(result);
        }
        ChangeSetOutcome::Failed(reason) => {
            discard_change_set(aws, &env.stack_name, &change_set_name).await;
            bail!(
                "CloudFormation refused the change set for stack {}: {reason}",
                env.stack_name
            );
        }
        ChangeSetOutcome::Ready => {}
    }

    output.progress(format!(
        "changes to stack {}:\n{}",
        env.stack_name,
        stack::change_table(&result.changes)
    ));
    let question = format!("deploy these changes to {} ({})?", env.stack_name, env.name);
    match confirm(yes, &question) {
        Ok(true) => {}
        Ok(false) => {
            discard_change_set(aws, &env.stack_name, &change_set_name).await;
            bail!(
                "deploy cancelled; {}",
                made.describe(&env.stack_name, &env.name)
            );
        }
        Err(error) => {
            discard_change_set(aws, &env.stack_name, &change_set_name).await;
            return Err(error.context(format!(
                "deploy stopped before the change; {}",
                made.describe(&env.stack_name, &env.name)
            )));
        }
    }
    aws.cloudformation
        .execute_change_set()
        .stack_name(&env.stack_name)
        .change_set_name(&change_set_name)
        .send()
        .await
        .map_err(sdk_error)
        .context("failed to execute the change set")?;
    let creating = change_set_type == ChangeSetType::Create;
    wait_with_progress(aws, &env.stack_name, creating, output).await?;
    set_termination_protection(aws, env, output).await?;
    result.result = if creating { "created" } else { "updated" }.into();
    result.outputs = stack_outputs(aws, &env.stack_name).await?;
    Ok(result)
}

/// Prints a deploy result for people: outputs and the subscription reminder.
pub fn print_summary(result: &DeployResult, env: &Environment) {
    println!(
        "stack {} {} (artifact {})",
        result.stack,
        result.result,
        &result.artifact_sha256[..12]
    );
    for (key, value) in &result.outputs {
        println!("  {key}: {value}");
    }
    if result.result == "created" {
        println!(
            "remember: each address in notification_emails ({}) gets a confirmation email from AWS \
             and receives nothing until it confirms",
            env.notification_emails.join(", ")
        );
    }
}

async fn stack_status(aws: &Aws, stack: &str) -> Result<Option<String>> {
    match aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(output) => Ok(output
            .stacks()
            .first()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_owned())),
        Err(error) if is_missing_stack(&error) => Ok(None),
        Err(error) => {
            Err(sdk_error(error)).with_context(|| format!("failed to describe stack {stack}"))
        }
    }
}

/// A `ValidationError ... does not exist` means the stack is not there.
pub fn is_missing_stack<E, R>(error: &aws_sdk_cloudformation::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
    error.code() == Some("ValidationError")
        && error
            .message()
            .is_some_and(|m| m.contains("does not exist"))
}

/// The stack's outputs by key; empty when there is no stack.
pub async fn stack_outputs(aws: &Aws, stack: &str) -> Result<BTreeMap<String, String>> {
    let described = match aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(described) => described,
        Err(error) if is_missing_stack(&error) => return Ok(BTreeMap::new()),
        Err(error) => return Err(sdk_error(error)).context("failed to read the stack's outputs"),
    };
    Ok(described
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// What a deploy made before it reached the stack's change, so that a deploy stopped at the
/// confirmation says exactly what now exists.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Made {
    /// This deploy created the bootstrap stack.
    bootstrap: bool,
    /// The artifact this deploy uploaded, as an S3 URL.
    artifact: Option<String>,
}

impl Made {
    /// The sentence that tells what a stopped deploy left, and how to remove it.
    fn describe(&self, stack: &str, env: &str) -> String {
        let mut made = Vec::new();
        if self.bootstrap {
            made.push(format!(
                "created the bootstrap stack {BOOTSTRAP_STACK} (the artifact bucket)"
            ));
        }
        if let Some(artifact) = &self.artifact {
            made.push(format!("uploaded {artifact}"));
        }
        if made.is_empty() {
            return format!("stack {stack} was not changed and nothing else was made");
        }
        format!(
            "stack {stack} was not changed, but this deploy {}; they stay for the next deploy, \
             and `cargo xtask destroy --env {env}` removes them when no environment uses them",
            made.join(" and ")
        )
    }
}

/// The artifact bucket, and whether this call created the bootstrap stack that holds it.
pub struct Bootstrap {
    pub bucket: String,
    pub created: bool,
}

/// The artifact bucket, creating the bootstrap stack on first use.
pub async fn ensure_bootstrap(aws: &Aws, output: Output) -> Result<Bootstrap> {
    if let Some(bucket) = stack_outputs(aws, BOOTSTRAP_STACK)
        .await?
        .remove("ArtifactBucketName")
    {
        return Ok(Bootstrap {
            bucket,
            created: false,
        });
    }
    if stack_status(aws, BOOTSTRAP_STACK).await?.is_some() {
        bail!(
            "stack {BOOTSTRAP_STACK} exists but reports no ArtifactBucketName output; inspect it, or delete it and deploy again"
        );
    }
    output.progress(format!(
        "creating stack {BOOTSTRAP_STACK} (the artifact bucket for this account and region)"
    ));
    aws.cloudformation
        .create_stack()
        .stack_name(BOOTSTRAP_STACK)
        .template_body(template::read_template("bootstrap.yaml")?)
        .tags(
            Tag::builder()
                .key("smartvault:role")
                .value("bootstrap")
                .build(),
        )
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to create stack {BOOTSTRAP_STACK}"))?;
    wait_with_progress(aws, BOOTSTRAP_STACK, true, output).await?;
    let bucket = stack_outputs(aws, BOOTSTRAP_STACK)
        .await?
        .remove("ArtifactBucketName")
        .with_context(|| {
            format!("stack {BOOTSTRAP_STACK} was created without an ArtifactBucketName output")
        })?;
    Ok(Bootstrap {
        bucket,
        created: true,
    })
}

/// Removes what an interrupted deploy left: its change sets that were never executed and,
/// for a stack never created (`REVIEW_IN_PROGRESS`), the empty stack itself, saying so.
/// Without this, the next deploy would stack a new change set on the stale one.
async fn remove_stale_change_sets(
    aws: &Aws,
    stack: &str,
    status: Option<&str>,
    output: Output,
) -> Result<()> {
    if status.is_none() {
        return Ok(());
    }
    let mut pages = aws
        .cloudformation
        .list_change_sets()
        .stack_name(stack)
        .into_paginator()
        .send();
    let mut summaries = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("failed to list the change sets of stack {stack}"))?;
        summaries.extend(page.summaries().iter().map(|c| {
            stack::ChangeSetSummary {
                name: c.change_set_name().unwrap_or_default().to_owned(),
                execution_status: c
                    .execution_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            }
        }));
    }
    for name in stack::stale_change_sets(&summaries) {
        output.progress(format!(
            "removing change set {name} of stack {stack}, left unexecuted by an interrupted deploy"
        ));
        aws.cloudformation
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(&name)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to remove the stale change set {name} of {stack}"))?;
    }
    // Deleting a review stack's last change set may remove the stack too; look again.
    if status == Some("REVIEW_IN_PROGRESS")
        && stack_status(aws, stack).await?.as_deref() == Some("REVIEW_IN_PROGRESS")
    {
        output.progress(format!(
            "stack {stack} is REVIEW_IN_PROGRESS: an earlier deploy stopped before creating it; \
             removing the empty stack to create it afresh"
        ));
        delete_stack_and_wait(aws, stack).await?;
    }
    Ok(())
}

/// Uploads the zip unless an object with its key (its hash) is already there.
async fn upload(
    aws: &Aws,
    artifact: &Artifact,
    location: &ArtifactLocation,
    output: Output,
) -> Result<bool> {
    let existing = aws
        .s3
        .head_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .send()
        .await;
    if existing.is_ok() {
        output.progress(format!(
            "artifact {} is already in s3://{}; not uploading",
            &artifact.sha256[..12],
            location.bucket
        ));
        return Ok(false);
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&artifact.path)
        .await
        .with_context(|| format!("failed to read `{}`", artifact.path.display()))?;
    aws.s3
        .put_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .body(body)
        .metadata("sha256", &artifact.sha256)
        .metadata("smartvault-version", template::VERSION)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!(
                "failed to upload the artifact to s3://{}/{}",
                location.bucket, location.key
            )
        })?;
    output.progress(format!(
        "uploaded {} ({} KiB) to s3://{}/{}",
        artifact.path.display(),
        artifact.size / 1024,
        location.bucket,
        location.key
    ));
    Ok(true)
}

fn change_rows(
    described: &aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput,
) -> Vec<ChangeRow> {
    described
        .changes()
        .iter()
        .filter_map(|c| c.resource_change())
        .map(|r| ChangeRow {
            action: r
                .action()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
            resource_type: r.resource_type().unwrap_or_default().to_owned(),
            replacement: r
                .replacement()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
        })
        .collect()
}

async fn discard_change_set(aws: &Aws, stack: &str, change_set: &str) {
    let _ = aws
        .cloudformation
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .send()
        .await;
    // A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS; remove that too.
    if let Ok(Some(status)) = stack_status(aws, stack).await
        && status == "REVIEW_IN_PROGRESS"
    {
        let _ = aws
            .cloudformation
            .delete_stack()
            .stack_name(stack)
            .send()
            .await;
    }
}

async fn set_termination_protection(aws: &Aws, env: &Environment, output: Output) -> Result<()> {
    let described = aws
        .cloudformation
        .describe_stacks()
        .stack_name(&env.stack_name)
        .send()
        .await
        .map_err(sdk_error)?;
    let current = described
        .stacks()
        .first()
        .and_then(|s| s.enable_termination_protection())
        .unwrap_or(false);
    if current != env.termination_protection {
        aws.cloudformation
            .update_termination_protection()
            .stack_name(&env.stack_name)
            .enable_termination_protection(env.termination_protection)
            .send()
            .await
            .map_err(sdk_error)
            .context("failed to set termination protection")?;
        output.progress(format!(
            "termination protection {} for {}",
            if env.termination_protection {
                "enabled"
            } else {
                "disabled"
            },
            env.stack_name
        ));
    }
    Ok(())
}

/// Deletes a stack and waits until it is gone.
pub async fn delete_stack_and_wait(aws: &Aws, stack: &str) -> Result<()> {
    aws.cloudformation
        .delete_stack()
        .stack_name(stack)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to delete stack {stack}"))?;
    aws.cloudformation
        .wait_until_stack_delete_complete()
        .stack_name(stack)
        .wait(MAX_WAIT)
        .await
        .map_err(sdk_error)
        .with_context(|| format!("stack {stack} did not finish deleting"))?;
    Ok(())
}

/// Waits for a create or update with the SDK's waiter while printing the stack's new events;
/// on failure, lists each failed resource with its reason.
pub async fn wait_with_progress(
    aws: &Aws,
    stack: &str,
    creating: bool,
    output: Output,
) -> Result<()> {
    let started = aws_smithy_types_now();
    let waiter = async {
        if creating {
            aws.cloudformation
                .wait_until_stack_create_complete()
                .stack_name(stack)
                .wait(MAX_WAIT)
                .await
                .map(drop)
                .map_err(sdk_error)
        } else {
            aws.cloudformation
                .wait_until_stack_update_complete()
                .stack_name(stack)
                .wait(MAX_WAIT)
                .await
                .map(drop)
                .map_err(sdk_error)
        }
    };
    let mut seen = std::collections::HashSet::new();
    tokio::pin!(waiter);
    let outcome = loop {
        tokio::select! {
            outcome = &mut waiter => break outcome,
            () = tokio::time::sleep(Duration::from_secs(3)) => {
                print_new_events(aws, stack, started, &mut seen, output).await;
            }
        }
    };
    print_new_events(aws, stack, started, &mut seen, output).await;
    if let Err(error) = outcome {
        let failures = failed_events(aws, stack, started).await;
        let mut message = format!("stack {stack} did not reach a complete state");
        for (resource, reason) in failures {
            message.push_str(&format!("\n  {resource}: {reason}"));
        }
        return Err(error.context(message));
    }
    Ok(())
}

fn aws_smithy_types_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() - 1
}

async fn print_new_events(
    aws: &Aws,
    stack: &str,
    since: i64,
    seen: &mut std::collections::HashSet<String>,
    output: Output,
) {
    let Ok(events) = aws
        .cloudformation
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
    else {
        return;
    };
    let mut fresh: Vec<_> = events
        .stack_events()
        .iter()
        .filter(|e| e.timestamp().is_some_and(|t| t.secs() >= since))
        .filter(|e| seen.insert(e.event_id().unwrap_or_default().to_owned()))
        .collect();
    fresh.reverse();
    for event in fresh {
        output.progress(format!(
            "  {:<28} {:<32} {}",
            event
                .resource_status()
                .map(|s| s.as_str())
                .unwrap_or_default(),
            event.logical_resource_id().unwrap_or_default(),
            event.resource_status_reason().unwrap_or_default()
        ));
    }
}

async fn failed_events(aws: &Aws, stack: &str, since: i64) -> Vec<(String, String)> {
    let Ok(events) = aws
        .cloudformation
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
    else {
        return Vec::new();
    };
    events
        .stack_events()
        .iter()
        .filter(|e| e.timestamp().is_some_and(|t| t.secs() >= since))
        .filter(|e| {
            e.resource_status()
                .is_some_and(|s| s.as_str().ends_with("_FAILED"))
        })
        .map(|e| {
            (
                format!(
                    "{} ({})",
                    e.logical_resource_id().unwrap_or_default(),
                    e.resource_type().unwrap_or_default()
                ),
                e.resource_status_reason()
                    .unwrap_or("no reason given")
                    .to_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_deploy_says_exactly_what_it_made() {
        let both = Made {
            bootstrap: true,
            artifact: Some("s3://bucket/artifacts/abc.zip".into()),
        };
        assert_eq!(
            both.describe("smartvault-dev", "dev"),
            "stack smartvault-dev was not changed, but this deploy created the bootstrap stack \
             smartvault-bootstrap (the artifact bucket) and uploaded s3://bucket/artifacts/abc.zip; \
             they stay for the next deploy, and `cargo xtask destroy --env dev` removes them when \
             no environment uses them"
        );
        let upload_only = Made {
            bootstrap: false,
            artifact: Some("s3://b/k".into()),
        };
        let message = upload_only.describe("smartvault-dev", "dev");
        assert!(
            message.contains("this deploy uploaded s3://b/k;"),
            "{message}"
        );
        assert!(!message.contains("bootstrap stack"), "{message}");
        let nothing = Made {
            bootstrap: false,
            artifact: None,
        };
        assert_eq!(
            nothing.describe("smartvault-dev", "dev"),
            "stack smartvault-dev was not changed and nothing else was made"
        );
    }
}
