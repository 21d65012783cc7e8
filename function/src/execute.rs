//! Carries the plan out through the EC2 API with bounded concurrency; one failure never stops
//! the others. Dry runs make no EC2 write call at all.

use crate::plan::{CreateRequest, Deletion, Skip, Subject};
use crate::report::{Created, Deleted, Failure};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    CopyTagsFromSource, InstanceSpecification, ResourceType, Tag, TagSpecification,
};
use futures_util::stream::{self, StreamExt};
use std::future::Future;

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

/// Makes one `CreateSnapshots` call per request.
pub async fn create_snapshots(
    ec2: &Client,
    requests: Vec<CreateRequest>,
    limit: usize,
    mode: Mode,
) -> Outcomes {
    bounded(requests, limit, |request| create_one(ec2, request, mode)).await
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

async fn create_one(ec2: &Client, request: CreateRequest, mode: Mode) -> Outcomes {
    let mut outcomes = Outcomes::default();
    if mode == Mode::DryRun {
        outcomes.created = planned_as_created(&request);
        return outcomes;
    }
    let tags = request
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build());
    let result = ec2
        .create_snapshots()
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
        .send()
        .await;
    match result {
        Ok(output) => {
            for snapshot in output.snapshots() {
                let volume_id = snapshot.volume_id().unwrap_or_default().to_owned();
                let device_name = request
                    .volumes
                    .iter()
                    .find(|v| v.volume_id == volume_id)
                    .map(|v| v.device_name.clone())
                    .unwrap_or_default();
                let snapshot_id = snapshot.snapshot_id().unwrap_or_default().to_owned();
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
        Err(error) => {
            let failed = failure(
                Some(Subject::Instance(request.instance_id.clone())),
                "CreateSnapshots",
                &error,
            );
            tracing::error!(
                instance_id = %request.instance_id,
                code = %failed.code,
                message = %failed.message,
                "snapshot failed"
            );
            outcomes.failed.push(failed);
        }
    }
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
                    "expired, and already deleted by someone else",
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
