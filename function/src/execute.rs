//! Carries the plan out through the EC2 API with bounded concurrency; one failure never stops
//! the others, and a lost answer never makes a second set of snapshots. Dry runs make no EC2
//! write call at all.

use crate::inventory;
use crate::plan::{CreateRequest, Deletion, Skip, Subject};
use crate::report::{Created, Deleted, Failure};
use crate::tags;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::interceptors::InterceptorContext;
use aws_sdk_ec2::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::create_snapshots::{CreateSnapshotsError, CreateSnapshotsOutput};
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsError;
use aws_sdk_ec2::types::{
    CopyTagsFromSource, InstanceSpecification, ResourceType, Snapshot, Tag, TagSpecification,
};
use aws_smithy_runtime_api::client::retries::classifiers::{RetryClassifierPriority, RetryReason};
use aws_smithy_types::retry::ErrorKind;
use futures_util::stream::{self, StreamExt};
use std::future::Future;
use std::time::Duration;

/// How many times one instance's `CreateSnapshots` is sent when answers are lost, each time
/// after finding that the previous one made nothing.
pub const MAX_CREATE_SENDS: u32 = 8;

/// What carrying out part of a plan produced.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub created: Vec<Created>,
    pub deleted: Vec<Deleted>,
    pub skipped: Vec<Skip>,
    pub failed: Vec<Failure>,
}

impl Outcomes {
    fn absorb(&mut self, other: Outcomes) {
        self.created.extend(other.created);
        self.deleted.extend(other.deleted);
        self.skipped.extend(other.skipped);
        self.failed.extend(other.failed);
    }
}

/// Whether write calls are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
}

/// Turns an SDK error into a reported failure with the AWS error code and message.
pub fn failure<E, R>(subject: Option<Subject>, operation: &str, error: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = match error.code() {
        Some(code) => (
            code.to_owned(),
            error.message().unwrap_or_default().to_owned(),
        ),
        // Timeouts, connection and response errors have no AWS code: name the kind instead.
        None => (
            match error {
                SdkError::TimeoutError(_) => "Timeout",
                SdkError::DispatchFailure(_) => "DispatchFailure",
                SdkError::ResponseError(_) => "ResponseError",
                SdkError::ConstructionFailure(_) => "ConstructionFailure",
                _ => "Unknown",
            }
            .to_owned(),
            DisplayErrorContext(error).to_string(),
        ),
    };
    Failure {
        subject,
        operation: operation.to_owned(),
        code,
        message,
    }
}

/// Runs `task` on every item with at most `limit` in flight, results in input order.
async fn bounded<T, F, Fut>(items: Vec<T>, limit: usize, task: F) -> Outcomes
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Outcomes>,
{
    let results: Vec<Outcomes> = stream::iter(items.into_iter().map(task))
        .buffered(limit.max(1))
        .collect()
        .await;
    let mut all = Outcomes::default();
    for result in results {
        all.absorb(result);
    }
    all
}

/// Makes one `CreateSnapshots` call per request. When a call's answer is lost (a 5xx, a timeout,
/// a dropped connection), EC2 may have made the snapshots anyway: after `settle` (times the
/// sends so far), the request's snapshots are looked up by their tags, and the call is sent
/// again only if there are none.
pub async fn create_snapshots(
    ec2: &Client,
    requests: Vec<CreateRequest>,
    limit: usize,
    mode: Mode,
    settle: Duration,
) -> Outcomes {
    bounded(requests, limit, |request| {
        create_one(ec2, request, mode, settle)
    })
    .await
}

fn planned_as_created(request: &CreateRequest) -> Vec<Created> {
    request
        .volumes
        .iter()
        .map(|v| Created {
            instance_id: request.instance_id.clone(),
            instance_name: request.instance_name.clone(),
            volume_id: v.volume_id.clone(),
            device_name: v.device_name.clone(),
            snapshot_id: None,
        })
        .collect()
}

/// Lets the SDK retry a `CreateSnapshots` only when EC2 certainly made nothing: it was
/// throttled. Any other retryable failure may come after EC2 acted, so [`create_one`] looks
/// for the snapshots before it sends the call again.
#[derive(Debug)]
struct RetryOnlyWhenThrottled;

impl ClassifyRetry for RetryOnlyWhenThrottled {
    fn classify_retry(&self, _: &InterceptorContext) -> RetryAction {
        RetryAction::NoActionIndicated
    }

    fn classify_retry_v2(&self, _: &InterceptorContext, previous: &RetryAction) -> RetryAction {
        match previous {
            RetryAction::RetryIndicated(RetryReason::RetryableError {
                kind: ErrorKind::ThrottlingError,
                ..
            }) => RetryAction::NoActionIndicated,
            RetryAction::RetryIndicated(_) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "retry CreateSnapshots only when throttled"
    }

    fn priority(&self) -> RetryClassifierPriority {
        // After every SDK classifier, so it sees (and may veto) their verdict.
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Whether EC2 may have acted on a call that failed this way: it answered 5xx without being
/// throttled, or no answer came. A 4xx answer and a throttle are refusals.
fn may_have_acted<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    const THROTTLED: &[&str] = &["RequestLimitExceeded", "Throttling"];
    match error {
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                && !error.code().is_some_and(|code| THROTTLED.contains(&code))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

/// The tags that single out one request's snapshots: this deployment, this instance, this run.
fn identity_tags(request: &CreateRequest) -> Vec<(String, String)> {
    request
        .tags
        .iter()
        .filter(|(key, _)| {
            [tags::MANAGED_BY, tags::INSTANCE_ID, tags::CREATED_AT].contains(&key.as_str())
        })
        .cloned()
        .collect()
}

/// The snapshots a lost `CreateSnapshots` for `request` made, found by their identity tags.
async fn made_by(
    ec2: &Client,
    request: &CreateRequest,
) -> Result<Vec<Snapshot>, SdkError<DescribeSnapshotsError, HttpResponse>> {
    let filters = identity_tags(request)
        .into_iter()
        .map(|(key, value)| inventory::filter(&format!("tag:{key}"), [value]));
    let mut pages = ec2
        .describe_snapshots()
        .owner_ids("self")
        .set_filters(Some(filters.collect()))
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        found.extend(page?.snapshots().iter().cloned());
    }
    Ok(found)
}

async fn send_create(
    ec2: &Client,
    request: &CreateRequest,
) -> Result<CreateSnapshotsOutput, SdkError<CreateSnapshotsError, HttpResponse>> {
    let tags = request
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build());
    ec2.create_snapshots()
        .instance_specification(
            InstanceSpecification::builder()
                .instance_id(&request.instance_id)
                .exclude_boot_volume(request.exclude_boot_volume)
                .set_exclude_data_volume_ids(
                    (!request.excluded_data_volume_ids.is_empty())
                        .then(|| request.excluded_data_volume_ids.clone()),
                )
                .build(),
        )
        .description(&request.description)
        .copy_tags_from_source(CopyTagsFromSource::Volume)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .set_tags(Some(tags.collect()))
                .build(),
        )
        .customize()
        .config_override(
            aws_sdk_ec2::config::Builder::default().retry_classifier(RetryOnlyWhenThrottled),
        )
        .send()
        .await
}

/// Records each made snapshot, given as (volume id, snapshot id).
fn record_created<'a>(
    outcomes: &mut Outcomes,
    request: &CreateRequest,
    snapshots: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
) {
    for (volume_id, snapshot_id) in snapshots {
        let volume_id = volume_id.unwrap_or_default().to_owned();
        let device_name = request
            .volumes
            .iter()
            .find(|v| v.volume_id == volume_id)
            .map(|v| v.device_name.clone())
            .unwrap_or_default();
        let snapshot_id = snapshot_id.unwrap_or_default().to_owned();
        tracing::info!(
            instance_id = %request.instance_id,
            volume_id = %volume_id,
            snapshot_id = %snapshot_id,
            "snapshot created"
        );
        outcomes.created.push(Created {
            instance_id: request.instance_id.clone(),
            instance_name: request.instance_name.clone(),
            volume_id,
            device_name,
            snapshot_id: Some(snapshot_id),
        });
    }
}

async fn create_one(
    ec2: &Client,
    request: CreateRequest,
    mode: Mode,
    settle: Duration,
) -> Outcomes {
    let mut outcomes = Outcomes::default();
    if mode == Mode::DryRun {
        outcomes.created = planned_as_created(&request);
        return outcomes;
    }
    let subject = || Some(Subject::Instance(request.instance_id.clone()));
    let mut sends: u32 = 0;
    let failed = loop {
        sends += 1;
        let error = match send_create(ec2, &request).await {
            Ok(output) => {
                let made = output.snapshots().iter();
                record_created(
                    &mut outcomes,
                    &request,
                    made.map(|s| (s.volume_id(), s.snapshot_id())),
                );
                return outcomes;
            }
            Err(error) => error,
        };
        if !may_have_acted(&error) {
            break failure(subject(), "CreateSnapshots", &error);
        }
        tracing::warn!(
            instance_id = %request.instance_id,
            error = %DisplayErrorContext(&error),
            "CreateSnapshots got no answer; looking for its snapshots before sending it again"
        );
        tokio::time::sleep(settle * sends).await;
        match made_by(ec2, &request).await {
            Ok(found) if !found.is_empty() => {
                let made = found.iter().map(|s| (s.volume_id(), s.snapshot_id()));
                record_created(&mut outcomes, &request, made);
                return outcomes;
            }
            Ok(_) if sends < MAX_CREATE_SENDS => continue,
            Ok(_) => break failure(subject(), "CreateSnapshots", &error),
            // Sending again without knowing could make a second set; the next run finds out.
            Err(lookup) => {
                let mut failed = failure(subject(), "CreateSnapshots", &error);
                failed.message = format!(
                    "{}; whether snapshots were made is unknown ({}), the next run will see them",
                    failed.message,
                    DisplayErrorContext(&lookup)
                );
                break failed;
            }
        }
    };
    tracing::error!(
        instance_id = %request.instance_id,
        code = %failed.code,
        message = %failed.message,
        "snapshot failed"
    );
    outcomes.failed.push(failed);
    outcomes
}

/// Deletes every planned snapshot; one in use by an AMI is skipped with that reason.
pub async fn delete_snapshots(
    ec2: &Client,
    deletions: Vec<Deletion>,
    limit: usize,
    mode: Mode,
) -> Outcomes {
    bounded(deletions, limit, |deletion| delete_one(ec2, deletion, mode)).await
}

async fn delete_one(ec2: &Client, deletion: Deletion, mode: Mode) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let deleted = Deleted {
        snapshot_id: deletion.snapshot_id.clone(),
        volume_id: deletion.volume_id.clone(),
        instance_id: deletion.instance_id.clone(),
        size_gib: deletion.size_gib,
    };
    if mode == Mode::DryRun {
        outcomes.deleted.push(deleted);
        return outcomes;
    }
    let subject = Subject::Snapshot(deletion.snapshot_id.clone());
    match ec2
        .delete_snapshot()
        .snapshot_id(&deletion.snapshot_id)
        .send()
        .await
    {
        Ok(_) => {
            tracing::info!(snapshot_id = %deletion.snapshot_id, "expired snapshot deleted");
            outcomes.deleted.push(deleted);
        }
        Err(error) => match error.code() {
            Some("InvalidSnapshot.InUse") => {
                tracing::warn!(snapshot_id = %deletion.snapshot_id, "expired snapshot in use, kept");
                outcomes.skipped.push(Skip::new(
                    subject,
                    format!(
                        "expired, but in use by an AMI; deregister the image to let it go ({})",
                        error.message().unwrap_or_default()
                    ),
                ));
            }
            Some("InvalidSnapshot.NotFound") => {
                outcomes.skipped.push(Skip::new(
                    subject,
                    "expired, and already gone (deleted by a retried call whose answer was lost, or by someone else)",
                ));
            }
            _ => {
                let failed = failure(Some(subject), "DeleteSnapshot", &error);
                tracing::error!(
                    snapshot_id = %deletion.snapshot_id,
                    code = %failed.code,
                    message = %failed.message,
                    "snapshot deletion failed"
                );
                outcomes.failed.push(failed);
            }
        },
    }
    outcomes
}
