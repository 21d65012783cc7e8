//! The CloudFormation edge: one typed view of a stack, its resources, events and change sets,
//! and the waits; every command reads and changes stacks through here.

use crate::aws::{Aws, sdk_error};
use crate::output::Output;
use crate::stack::parameters::StackParameters;
use crate::stack::{ChangeRow, ChangeSetSummary};
use anyhow::{Context, Result};
use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter, Stack, Tag};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// How long CloudFormation may take before a wait gives up.
const MAX_WAIT: Duration = Duration::from_secs(60 * 60);
/// How often a wait looks for new stack events to print.
const EVENT_POLL: Duration = Duration::from_secs(3);

/// A stack as `DescribeStacks` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackView {
    pub name: String,
    pub status: String,
    pub parameters: StackParameters,
    pub outputs: BTreeMap<String, String>,
    pub termination_protection: bool,
}

impl StackView {
    fn from_sdk(stack: &Stack) -> Self {
        StackView {
            name: stack.stack_name().unwrap_or_default().to_owned(),
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            parameters: StackParameters::from_cfn(
                stack
                    .parameters()
                    .iter()
                    .filter_map(|p| Some((p.parameter_key()?, p.parameter_value()?))),
            ),
            outputs: stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
            termination_protection: stack.enable_termination_protection().unwrap_or(false),
        }
    }
}

/// A `ValidationError ... does not exist` means the stack is not there.
fn is_missing_stack<E, R>(error: &aws_sdk_cloudformation::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
    error.code() == Some("ValidationError")
        && error
            .message()
            .is_some_and(|m| m.contains("does not exist"))
}

/// The stack named `stack`, or `None` when there is no such stack.
pub async fn describe(aws: &Aws, stack: &str) -> Result<Option<StackView>> {
    Ok(describe_with_parameters(aws, stack)
        .await?
        .map(|(view, _)| view))
}

/// The stack named `stack` with its parameters exactly as CloudFormation holds them (any
/// template's, not only the main one's), or `None` when there is no such stack.
pub async fn describe_with_parameters(
    aws: &Aws,
    stack: &str,
) -> Result<Option<(StackView, BTreeMap<String, String>)>> {
    match aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(output) => Ok(output.stacks().first().map(|found| {
            let parameters = found
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_owned(),
                        p.parameter_value()?.to_owned(),
                    ))
                })
                .collect();
            (StackView::from_sdk(found), parameters)
        })),
        Err(error) if is_missing_stack(&error) => Ok(None),
        Err(error) => {
            Err(sdk_error(error)).with_context(|| format!("failed to describe stack {stack}"))
        }
    }
}

/// Every live stack in the region, every page.
pub async fn describe_all(aws: &Aws) -> Result<Vec<StackView>> {
    let mut pages = aws.cloudformation.describe_stacks().into_paginator().send();
    let mut stacks = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .context("failed to list the stacks")?;
        stacks.extend(page.stacks().iter().map(StackView::from_sdk));
    }
    Ok(stacks)
}

/// One resource of a stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resource {
    pub resource_type: String,
    pub logical_id: String,
    pub physical_id: String,
}

/// Every resource of a stack, every page.
pub async fn resources(aws: &Aws, stack: &str) -> Result<Vec<Resource>> {
    let mut pages = aws
        .cloudformation
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("failed to list the resources of stack {stack}"))?;
        found.extend(page.stack_resource_summaries().iter().map(|r| Resource {
            resource_type: r.resource_type().unwrap_or_default().to_owned(),
            logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
            physical_id: r.physical_resource_id().unwrap_or_default().to_owned(),
        }));
    }
    Ok(found)
}

/// Creates a stack from a template (no change set: the bootstrap stack, which names its IAM
/// role and policy, and is created with the caller's own permissions).
pub async fn create_stack(
    aws: &Aws,
    stack: &str,
    body: &str,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    create_stack_with(aws, stack, body, &BTreeMap::new(), tags).await
}

/// Creates a stack with parameters, with the caller's own permissions (no change set).
pub async fn create_stack_with(
    aws: &Aws,
    stack: &str,
    body: &str,
    parameters: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    crate::stack::limits::check_template_size(
        stack,
        body.len(),
        crate::stack::limits::TemplateVia::Request,
    )?;
    aws.cloudformation
        .create_stack()
        .stack_name(stack)
        .template_body(body)
        .set_parameters(Some(cfn_parameters(parameters)))
        .capabilities(Capability::CapabilityNamedIam)
        .set_tags(Some(cfn_tags(tags)))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to create stack {stack}"))?;
    Ok(())
}

pub fn cfn_parameters(
    parameters: &BTreeMap<String, String>,
) -> Vec<aws_sdk_cloudformation::types::Parameter> {
    parameters
        .iter()
        .map(|(k, v)| {
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect()
}

pub fn cfn_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Turns termination protection on or off; `true` when it changed.
pub async fn set_termination_protection(aws: &Aws, stack: &str, enabled: bool) -> Result<bool> {
    let current = describe(aws, stack)
        .await?
        .with_context(|| format!("stack {stack} is gone; cannot set its termination protection"))?
        .termination_protection;
    if current == enabled {
        return Ok(false);
    }
    aws.cloudformation
        .update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(enabled)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to set termination protection on {stack}"))?;
    Ok(true)
}

/// Deletes a stack and waits until it is gone. With `role`, CloudFormation deletes the
/// resources as that role (the execution role) rather than with the caller's permissions.
pub async fn delete_and_wait(aws: &Aws, stack: &str, role: Option<&str>) -> Result<()> {
    aws.cloudformation
        .delete_stack()
        .stack_name(stack)
        .set_role_arn(role.map(str::to_owned))
        .send()
        .await
        .map_err(|e| pass_role_context(sdk_error(e), role))
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

/// Names the fix when CloudFormation refused a call because the caller may not pass `role`.
fn pass_role_context(error: anyhow::Error, role: Option<&str>) -> anyhow::Error {
    match role {
        Some(role) if format!("{error:#}").contains("iam:PassRole") => error.context(format!(
            "access denied: these credentials may not pass the CloudFormation execution role \
             {role} (iam:PassRole); grant the PassExecutionRole statement of \
             docs/deployer-policy.json"
        )),
        _ => error,
    }
}

/// Where CloudFormation reads a template from.
#[derive(Debug, Clone, Copy)]
pub enum Template<'a> {
    /// Inline in the request (`TemplateBody`, at most 51,200 bytes): the small supporting
    /// stacks, which deploy before any bucket exists.
    Body(&'a str),
    /// An S3 URL (`TemplateURL`, at most 1 MB): an environment's stack.
    Url(&'a str),
}

/// A change set to make, with everything deploy sends.
pub struct NewChangeSet<'a> {
    pub stack: &'a str,
    pub name: &'a str,
    pub create: bool,
    pub template: Template<'a>,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    pub description: String,
    /// The role CloudFormation acts with for this change and every later one, rollbacks and
    /// deletion included; `None` acts with the caller's permissions.
    pub role: Option<&'a str>,
    /// `CAPABILITY_NAMED_IAM` for a template that names its IAM resources.
    pub named_iam: bool,
}

/// A change set as `DescribeChangeSet` reports it, once CloudFormation finished making it.
#[derive(Debug, Clone)]
pub struct ChangeSetView {
    pub status: String,
    pub reason: Option<String>,
    pub changes: Vec<ChangeRow>,
}

/// Creates a change set and waits until CloudFormation has made it (or failed to).
pub async fn create_change_set(aws: &Aws, new: &NewChangeSet<'_>) -> Result<ChangeSetView> {
    let request = aws.cloudformation.create_change_set();
    let request = match new.template {
        Template::Body(body) => {
            crate::stack::limits::check_template_size(
                new.stack,
                body.len(),
                crate::stack::limits::TemplateVia::Request,
            )?;
            request.template_body(body)
        }
        Template::Url(url) => request.template_url(url),
    };
    request
        .stack_name(new.stack)
        .change_set_name(new.name)
        .change_set_type(if new.create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        })
        .set_parameters(Some(
            new.parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build()
                })
                .collect(),
        ))
        .set_tags(Some(cfn_tags(new.tags)))
        .capabilities(if new.named_iam {
            Capability::CapabilityNamedIam
        } else {
            Capability::CapabilityIam
        })
        .set_role_arn(new.role.map(str::to_owned))
        .description(&new.description)
        .send()
        .await
        .map_err(|e| pass_role_context(sdk_error(e), new.role))
        .with_context(|| format!("failed to create a change set for stack {}", new.stack))?;
    // The waiter's failure is read from the change set itself just below.
    let _ = aws
        .cloudformation
        .wait_until_change_set_create_complete()
        .stack_name(new.stack)
        .change_set_name(new.name)
        .wait(MAX_WAIT)
        .await;
    let described = aws
        .cloudformation
        .describe_change_set()
        .stack_name(new.stack)
        .change_set_name(new.name)
        .send()
        .await
        .map_err(sdk_error)
        .context("failed to read the change set back")?;
    Ok(ChangeSetView {
        status: described
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        reason: described.status_reason().map(str::to_owned),
        changes: described
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
            .collect(),
    })
}

/// Every change set of a stack, every page.
pub async fn change_sets(aws: &Aws, stack: &str) -> Result<Vec<ChangeSetSummary>> {
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
            ChangeSetSummary {
                name: c.change_set_name().unwrap_or_default().to_owned(),
                execution_status: c
                    .execution_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            }
        }));
    }
    Ok(summaries)
}

pub async fn delete_change_set(aws: &Aws, stack: &str, change_set: &str) -> Result<()> {
    aws.cloudformation
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to remove the change set {change_set} of {stack}"))?;
    Ok(())
}

/// Removes a change set that will not be executed, and the empty `REVIEW_IN_PROGRESS` stack a
/// CREATE change set leaves; best effort, since it only tidies up after a decision not to go on.
pub async fn discard_change_set(aws: &Aws, stack: &str, change_set: &str) {
    let _ = delete_change_set(aws, stack, change_set).await;
    if let Ok(Some(view)) = describe(aws, stack).await
        && view.status == "REVIEW_IN_PROGRESS"
    {
        let _ = aws
            .cloudformation
            .delete_stack()
            .stack_name(stack)
            .send()
            .await;
    }
}

pub async fn execute_change_set(aws: &Aws, stack: &str, change_set: &str) -> Result<()> {
    aws.cloudformation
        .execute_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to execute the change set {change_set} of {stack}"))?;
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
    // A second back: the first event of this operation may carry the current second.
    let started = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
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
    let mut seen = HashSet::new();
    tokio::pin!(waiter);
    let outcome = loop {
        tokio::select! {
            outcome = &mut waiter => break outcome,
            () = tokio::time::sleep(EVENT_POLL) => {
                print_new_events(aws, stack, started, &mut seen, output).await;
            }
        }
    };
    print_new_events(aws, stack, started, &mut seen, output).await;
    if let Err(error) = outcome {
        let mut message = format!("stack {stack} did not reach a complete state");
        for event in events_since(aws, stack, started).await {
            if event.status.ends_with("_FAILED") {
                message.push_str(&format!(
                    "\n  {} ({}): {}",
                    event.logical_id,
                    event.resource_type,
                    event.reason.as_deref().unwrap_or("no reason given")
                ));
            }
        }
        return Err(error.context(message));
    }
    Ok(())
}

/// One stack event.
struct Event {
    id: String,
    status: String,
    logical_id: String,
    resource_type: String,
    reason: Option<String>,
}

/// The stack's events at or after `since` (Unix seconds), oldest first; none when they cannot
/// be read (progress is best effort, the waiter decides the outcome).
async fn events_since(aws: &Aws, stack: &str, since: i64) -> Vec<Event> {
    let Ok(events) = aws
        .cloudformation
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
    else {
        return Vec::new();
    };
    let mut fresh: Vec<Event> = events
        .stack_events()
        .iter()
        .filter(|e| e.timestamp().is_some_and(|t| t.secs() >= since))
        .map(|e| Event {
            id: e.event_id().unwrap_or_default().to_owned(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
            resource_type: e.resource_type().unwrap_or_default().to_owned(),
            reason: e.resource_status_reason().map(str::to_owned),
        })
        .collect();
    fresh.reverse();
    fresh
}

async fn print_new_events(
    aws: &Aws,
    stack: &str,
    since: i64,
    seen: &mut HashSet<String>,
    output: Output,
) {
    for event in events_since(aws, stack, since).await {
        if seen.insert(event.id.clone()) {
            output.progress(format!(
                "  {:<28} {:<32} {}",
                event.status,
                event.logical_id,
                event.reason.unwrap_or_default()
            ));
        }
    }
}
