//! Carries the plan out through the EC2 API with bounded concurrency; one failure never stops
//! the others, and a lost answer never makes a second set of snapshots. Dry runs make no EC2
//! write call at all.

use crate::copies::CopyRequest;
use crate::inventory;
use crate::locks::{LockMode, LockRequest};
use crate::pacing::{Action, Pacer, Throttled};
use crate::plan::{CreateRequest, Deletion, Skip, Subject, VolumeTags};
use crate::report::{Created, Deleted, Failure, Locked};
use crate::sdk_errors::failure;
use crate::tags;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::interceptors::InterceptorContext;
use aws_sdk_ec2::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::copy_snapshot::{CopySnapshotError, CopySnapshotOutput};
use aws_sdk_ec2::operation::create_snapshots::{CreateSnapshotsError, CreateSnapshotsOutput};
use aws_sdk_ec2::operation::delete_snapshot::{DeleteSnapshotError, DeleteSnapshotOutput};
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsError;
use aws_sdk_ec2::types::{
    CopyTagsFromSource, InstanceSpecification, ResourceType, Snapshot, Tag, TagSpecification,
};
use aws_smithy_runtime_api::client::retries::classifiers::{RetryClassifierPriority, RetryReason};
use aws_smithy_types::retry::ErrorKind;
use futures_util::stream::{self, StreamExt};
use std::future::Future;
use std::time::{Duration, Instant};

/// How many times one instance's `CreateSnapshots` is sent when answers are lost, each time
/// after finding that the previous one made nothing.
pub const MAX_CREATE_SENDS: u32 = 8;

/// How many throttled answers one call may get before it fails, when the invocation has no
/// deadline to stop it (with one, a call is left for the next invocation instead).
const MAX_THROTTLED_SENDS: u32 = 100;
/// EC2's error codes for a throttled call: EC2 did nothing, and the call may be sent again.
const THROTTLED: &[&str] = &["RequestLimitExceeded", "Throttling"];
/// EC2's error codes for snapshots that must wait for others to complete: at most five
/// pending snapshots per volume, and an account-wide limit of pending snapshots.
const PENDING_LIMITS: &[&str] = &[
    "SnapshotCreationPerVolumeRateExceeded",
    "PendingSnapshotLimitExceeded",
];

/// What carrying out part of a plan produced.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub created: Vec<Created>,
    pub deleted: Vec<Deleted>,
    pub skipped: Vec<Skip>,
    pub failed: Vec<Failure>,
    pub locked: Vec<Locked>,
    /// Calls not started because the invocation's time ran out: left for the next one.
    pub carried: usize,
}

impl Outcomes {
    /// Adds what other writes produced.
    pub fn absorb_from(&mut self, other: Outcomes) {
        self.absorb(other);
    }
}

/// What the writes of one kind produced, gathered from each write's own.
trait Absorb: Default {
    fn absorb(&mut self, other: Self);
}

impl Absorb for Outcomes {
    fn absorb(&mut self, other: Outcomes) {
        self.locked.extend(other.locked);
        self.created.extend(other.created);
        self.deleted.extend(other.deleted);
        self.skipped.extend(other.skipped);
        self.failed.extend(other.failed);
        self.carried += other.carried;
    }
}

/// The least time kept back before an invocation's deadline: for the calls in flight to be
/// answered and for the summary or the hand-on to the next link.
pub const SAFETY_FLOOR: Duration = Duration::from_secs(5);
/// The margin is also at least this many times the slowest write seen in this invocation.
const SLOWEST_CALLS_KEPT: u32 = 4;

/// An invocation's deadline, and the slowest EC2 write seen so far, from which the margin
/// before it is derived.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    slowest: std::sync::Mutex<Duration>,
}

impl Deadline {
    pub fn new(at: Instant) -> Self {
        Deadline {
            at,
            slowest: std::sync::Mutex::new(Duration::ZERO),
        }
    }

    /// The last moment a write may start: the deadline less the safety margin.
    pub fn cutoff(&self) -> Instant {
        let slowest = *self
            .slowest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let margin = SAFETY_FLOOR.max(slowest * SLOWEST_CALLS_KEPT);
        self.at.checked_sub(margin).unwrap_or(self.at)
    }

    /// The time left before the cutoff.
    pub fn left(&self) -> Duration {
        self.cutoff().saturating_duration_since(Instant::now())
    }

    /// The deadline itself, which only what must follow a write (a post stage) may approach.
    pub fn at(&self) -> Instant {
        self.at
    }

    fn observe(&self, took: Duration) {
        let mut slowest = self
            .slowest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slowest = (*slowest).max(took);
    }
}

/// How EC2 writes are carried out: paced through shared buckets, and none started after the
/// deadline's cutoff.
#[derive(Debug, Clone, Copy)]
pub struct Writes<'a> {
    pub ec2: &'a Client,
    pub pacer: &'a Pacer,
    pub deadline: Option<&'a Deadline>,
    pub limit: usize,
    pub mode: Mode,
    /// The region `ec2` calls, for the pacer: `None` for the function's own.
    pub region: Option<&'a str>,
}

impl Writes<'_> {
    /// Waits for `action`'s token; `false` when it would come after the cutoff.
    async fn ready(&self, action: Action) -> bool {
        self.pacer
            .ready(action, self.region, self.deadline.map(Deadline::cutoff))
            .await
    }

    /// Times one call for the deadline's margin and tells the pacer how it went.
    async fn timed<T, E: ProvideErrorMetadata>(
        &self,
        action: Action,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        if let Some(deadline) = self.deadline {
            deadline.observe(started.elapsed());
        }
        let throttled = match &result {
            Err(error) if is_throttled(error) => Throttled::Yes,
            _ => Throttled::No,
        };
        self.pacer.record(action, self.region, throttled);
        result
    }
}

fn is_throttled<E: ProvideErrorMetadata>(error: &E) -> bool {
    error.code().is_some_and(|code| THROTTLED.contains(&code))
}

/// Whether write calls are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
}

/// Runs `task` on every item with at most `limit` in flight, results in input order.
async fn bounded<T, O, F, Fut>(items: Vec<T>, limit: usize, task: F) -> O
where
    O: Absorb,
    F: Fn(T) -> Fut,
    Fut: Future<Output = O>,
{
    let results: Vec<O> = stream::iter(items.into_iter().map(task))
        .buffered(limit.max(1))
        .collect()
        .await;
    let mut all = O::default();
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
    writes: Writes<'_>,
    requests: Vec<CreateRequest>,
    settle: Duration,
) -> Outcomes {
    bounded(requests, writes.limit, |request| {
        create_one(writes, request, settle)
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

/// Keeps the SDK from retrying a throttled write: the pacer slows down and sends it again
/// itself, instead of spending the SDK's retries (and its retry quota) on a full bucket. Other
/// retryable failures keep the SDK's verdict.
#[derive(Debug)]
struct NoRetryWhenThrottled;

impl ClassifyRetry for NoRetryWhenThrottled {
    fn classify_retry(&self, _: &InterceptorContext) -> RetryAction {
        RetryAction::NoActionIndicated
    }

    fn classify_retry_v2(&self, _: &InterceptorContext, previous: &RetryAction) -> RetryAction {
        match previous {
            RetryAction::RetryIndicated(RetryReason::RetryableError {
                kind: ErrorKind::ThrottlingError,
                ..
            }) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "no SDK retry of a throttled write"
    }

    fn priority(&self) -> RetryClassifierPriority {
        // After every SDK classifier, so it sees (and may veto) their verdict.
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Whether EC2 may have acted on a call that failed this way: it answered 5xx without being
/// throttled, or no answer came. A 4xx answer and a throttle are refusals.
fn may_have_acted<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
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
pub(crate) async fn made_by(
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
        .set_copy_tags_from_source(
            (request.volume_tags == VolumeTags::CopiedAtCreation)
                .then_some(CopyTagsFromSource::Volume),
        )
        .tag_specifications(snapshot_tags(&request.tags))
        .customize()
        // Never retried by the SDK: a throttled call is paced and sent again by `create_one`,
        // and any other failure may come after EC2 acted (it takes no idempotency token), so
        // the snapshots are looked up before the call is sent again.
        .config_override(sent_once())
        .send()
        .await
}

/// SmartVault's tags on the snapshots a call makes, applied at creation.
fn snapshot_tags(tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::Snapshot)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// A call the SDK sends once: the caller paces a throttled one and looks up what an unanswered
/// one may have made before sending it again.
fn sent_once() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default()
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(1))
}

/// Records each made snapshot, given as (volume id, snapshot id).
pub(crate) fn record_created<'a>(
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

async fn create_one(writes: Writes<'_>, request: CreateRequest, settle: Duration) -> Outcomes {
    let mut outcomes = Outcomes::default();
    if writes.mode == Mode::DryRun {
        outcomes.created = planned_as_created(&request);
        return outcomes;
    }
    let ec2 = writes.ec2;
    let once = Once {
        action: Action::CreateSnapshots,
        operation: "CreateSnapshots",
        subject: Subject::Instance(request.instance_id.clone()),
        later: PENDING_LIMITS,
        unknown: "whether snapshots were made is unknown, the next run will see them",
    };
    let sent = send_once(
        writes,
        &once,
        settle,
        || async {
            send_create(ec2, &request).await.map(|output| {
                output
                    .snapshots()
                    .iter()
                    .map(|s| {
                        (
                            s.volume_id().map(str::to_owned),
                            s.snapshot_id().map(str::to_owned),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        },
        || async {
            match made_by(ec2, &request).await {
                Ok(found) if !found.is_empty() => Ok(Some(
                    found
                        .iter()
                        .map(|s| {
                            (
                                s.volume_id().map(str::to_owned),
                                s.snapshot_id().map(str::to_owned),
                            )
                        })
                        .collect(),
                )),
                Ok(_) => Ok(None),
                Err(error) => Err(DisplayErrorContext(&error).to_string()),
            }
        },
    )
    .await;
    match sent {
        Sent::Done(made) => {
            record_created(
                &mut outcomes,
                &request,
                made.iter().map(|(v, s)| (v.as_deref(), s.as_deref())),
            );
            tag_fitted(ec2, &request, &mut outcomes).await;
        }
        Sent::OutOfTime => {
            tracing::debug!(instance_id = %request.instance_id, "left for the next invocation: this one's time is up");
            outcomes.carried += 1;
        }
        Sent::Later { code, message } => {
            tracing::warn!(instance_id = %request.instance_id, code, "snapshots pending; left for a later run");
            outcomes.skipped.push(Skip::new(
                Subject::Instance(request.instance_id.clone()),
                format!(
                    "EC2 refused more snapshots until pending ones complete ({code}: {message}); \
                     a later run backs it up"
                ),
            ));
        }
        Sent::Failed(failed) => {
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

/// A write that EC2 may carry out without its answer arriving (`CreateSnapshots`,
/// `CopySnapshot`): what to call it, what it is about, the error codes that mean "not now"
/// and what to say when whether it acted cannot be found out.
struct Once<'a> {
    action: Action,
    operation: &'static str,
    subject: Subject,
    later: &'a [&'a str],
    unknown: &'a str,
}

/// How such a write ended.
enum Sent<T> {
    /// EC2 answered, or the lookup found what an unanswered send made.
    Done(T),
    /// Not sent: the invocation's time is up.
    OutOfTime,
    /// EC2 refused it for now with one of `later`'s codes.
    Later {
        code: String,
        message: String,
    },
    Failed(Failure),
}

/// Sends a write once; when EC2 throttles it, sends it again as the pacer allows (it made
/// nothing); when the answer is lost, looks for what it may have made (waiting a little
/// longer each time for EC2's reads to catch up) before sending it again, at most
/// `MAX_CREATE_SENDS` times, so that one lost answer never makes a second set or copy.
async fn send_once<T, E, Send, SendFut, Look, LookFut>(
    writes: Writes<'_>,
    once: &Once<'_>,
    settle: Duration,
    send: Send,
    look_up: Look,
) -> Sent<T>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    Send: Fn() -> SendFut,
    SendFut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    Look: Fn() -> LookFut,
    LookFut: Future<Output = Result<Option<T>, String>>,
{
    let failed = |error: &SdkError<E, HttpResponse>| {
        failure(Some(once.subject.clone()), once.operation, error)
    };
    let mut sends: u32 = 0;
    let mut throttled: u32 = 0;
    loop {
        if !writes.ready(once.action).await {
            return Sent::OutOfTime;
        }
        let error = match writes.timed(once.action, send()).await {
            Ok(done) => return Sent::Done(done),
            Err(error) => error,
        };
        if is_throttled(&error) {
            // EC2 made nothing: the pacer has slowed down; send it again when it allows.
            throttled += 1;
            if writes.deadline.is_some() || throttled < MAX_THROTTLED_SENDS {
                continue;
            }
            return Sent::Failed(failed(&error));
        }
        if let Some(code) = error.code().filter(|code| once.later.contains(code)) {
            return Sent::Later {
                code: code.to_owned(),
                message: error.message().unwrap_or_default().to_owned(),
            };
        }
        sends += 1;
        if !may_have_acted(&error) {
            return Sent::Failed(failed(&error));
        }
        tracing::warn!(
            operation = once.operation,
            subject = %once.subject,
            region = writes.region.unwrap_or_default(),
            error = %DisplayErrorContext(&error),
            "no answer; looking for what it made before sending it again"
        );
        tokio::time::sleep(settle * sends).await;
        match look_up().await {
            Ok(Some(found)) => return Sent::Done(found),
            Ok(None) if sends < MAX_CREATE_SENDS => continue,
            Ok(None) => return Sent::Failed(failed(&error)),
            // Sending again without knowing could make a second one; the next run finds out.
            Err(lookup) => {
                let mut failure = failed(&error);
                failure.message = format!("{}; {} ({lookup})", failure.message, once.unknown);
                return Sent::Failed(failure);
            }
        }
    }
}

/// Gives each snapshot just made the volume tags that fit, when they could not all be copied
/// at creation (`VolumeTags::Fitted`). The snapshot already carries SmartVault's own tags; a
/// failure here is reported for that snapshot and leaves the others alone.
pub(crate) async fn tag_fitted(ec2: &Client, request: &CreateRequest, outcomes: &mut Outcomes) {
    let VolumeTags::Fitted(fitted) = &request.volume_tags else {
        return;
    };
    let made: Vec<(String, String)> = outcomes
        .created
        .iter()
        .filter(|c| c.instance_id == request.instance_id)
        .filter_map(|c| Some((c.volume_id.clone(), c.snapshot_id.clone()?)))
        .collect();
    for (volume_id, snapshot_id) in made {
        let Some(copied) = fitted.get(&volume_id).filter(|t| !t.is_empty()) else {
            continue;
        };
        let tags = copied
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build());
        let sent = ec2
            .create_tags()
            .resources(&snapshot_id)
            .set_tags(Some(tags.collect()))
            .send()
            .await;
        if let Err(error) = sent {
            let failed = failure(
                Some(Subject::Snapshot(snapshot_id.clone())),
                "CreateTags",
                &error,
            );
            tracing::error!(snapshot_id = %snapshot_id, code = %failed.code, "copying the volume's tags failed");
            outcomes.failed.push(failed);
        }
    }
}

/// Deletes every planned snapshot; one in use by an AMI is skipped with that reason.
pub async fn delete_snapshots(writes: Writes<'_>, deletions: Vec<Deletion>) -> Outcomes {
    bounded(deletions, writes.limit, |deletion| {
        delete_one(writes, deletion)
    })
    .await
}

/// Sends one write through `action`'s bucket until it is answered: a throttled answer is sent
/// again (at most [`MAX_THROTTLED_SENDS`] times without a deadline); `None` when the deadline
/// came before it could be sent (the next link or run sends it).
async fn send_paced<T, E, Fut>(
    writes: Writes<'_>,
    action: Action,
    send: impl Fn() -> Fut,
) -> Option<Result<T, SdkError<E, HttpResponse>>>
where
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata,
{
    let mut throttled: u32 = 0;
    loop {
        if !writes.ready(action).await {
            return None;
        }
        match writes.timed(action, send()).await {
            Err(error) if is_throttled(&error) => {
                throttled += 1;
                if writes.deadline.is_none() && throttled >= MAX_THROTTLED_SENDS {
                    return Some(Err(error));
                }
            }
            other => return Some(other),
        }
    }
}

/// Sends one `DeleteSnapshot` through the pacer.
async fn send_delete(
    writes: Writes<'_>,
    snapshot_id: &str,
) -> Option<Result<DeleteSnapshotOutput, SdkError<DeleteSnapshotError, HttpResponse>>> {
    send_paced(writes, Action::DeleteSnapshot, || {
        writes
            .ec2
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .customize()
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_classifier(NoRetryWhenThrottled),
            )
            .send()
    })
    .await
}

async fn delete_one(writes: Writes<'_>, deletion: Deletion) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let deleted = Deleted {
        snapshot_id: deletion.snapshot_id.clone(),
        volume_id: deletion.volume_id.clone(),
        instance_id: deletion.instance_id.clone(),
        size_gib: deletion.size_gib,
    };
    if writes.mode == Mode::DryRun {
        outcomes.deleted.push(deleted);
        return outcomes;
    }
    let subject = Subject::Snapshot(deletion.snapshot_id.clone());
    let Some(sent) = send_delete(writes, &deletion.snapshot_id).await else {
        outcomes.carried += 1;
        return outcomes;
    };
    match sent {
        Ok(_) => {
            tracing::info!(snapshot_id = %deletion.snapshot_id, "expired snapshot deleted");
            outcomes.deleted.push(deleted);
        }
        Err(error) => match error.code() {
            // Locked after the plan was made, or by an operator: kept, never a failure.
            Some(SNAPSHOT_LOCKED) => {
                tracing::warn!(snapshot_id = %deletion.snapshot_id, "expired snapshot locked, kept");
                outcomes.skipped.push(Skip::new(
                    subject,
                    format!(
                        "expired, but locked; it is deleted on a run after the lock ends ({})",
                        error.message().unwrap_or_default()
                    ),
                ));
            }
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

/// EC2's error code for deleting a snapshot a lock protects (the EBS user guide's "Lock
/// snapshots"; the code is not in EC2's published error list, docs/vault.md).
pub const SNAPSHOT_LOCKED: &str = "SnapshotLocked";

/// Locks each snapshot until its expiry, paced; a throttled answer is sent again, a failure is
/// reported and the next run locks the snapshot again (`locks::catch_up`).
pub async fn lock_snapshots(writes: Writes<'_>, requests: Vec<LockRequest>) -> Outcomes {
    bounded(requests, writes.limit, |request| lock_one(writes, request)).await
}

async fn lock_one(writes: Writes<'_>, request: LockRequest) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let locked = Locked {
        snapshot_id: request.snapshot_id.clone(),
        region: writes.region.map(str::to_owned),
        mode: request.rule.mode,
        until: request.until,
    };
    if writes.mode == Mode::DryRun {
        outcomes.locked.push(locked);
        return outcomes;
    }
    let mode = match request.rule.mode {
        LockMode::Governance => aws_sdk_ec2::types::LockMode::Governance,
        LockMode::Compliance => aws_sdk_ec2::types::LockMode::Compliance,
    };
    let sent = send_paced(writes, Action::LockSnapshot, || {
        writes
            .ec2
            .lock_snapshot()
            .snapshot_id(&request.snapshot_id)
            .lock_mode(mode.clone())
            .set_cool_off_period(
                request
                    .rule
                    .cool_off_hours
                    .and_then(|h| i32::try_from(h).ok()),
            )
            .expiration_date(aws_sdk_ec2::primitives::DateTime::from_secs(
                request.until.unix_timestamp(),
            ))
            .customize()
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_classifier(NoRetryWhenThrottled),
            )
            .send()
    })
    .await;
    match sent {
        None => outcomes.carried += 1,
        Some(Ok(_)) => {
            tracing::info!(snapshot_id = %request.snapshot_id, mode = request.rule.mode.as_str(), "snapshot locked");
            outcomes.locked.push(locked);
        }
        Some(Err(error)) => outcomes.failed.push(lock_failure(&request, &error)),
    }
    outcomes
}

fn lock_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    request: &LockRequest,
    error: &SdkError<E, HttpResponse>,
) -> Failure {
    let failed = failure(
        Some(Subject::Snapshot(request.snapshot_id.clone())),
        "LockSnapshot",
        error,
    );
    tracing::error!(snapshot_id = %request.snapshot_id, code = %failed.code, message = %failed.message, "snapshot lock failed; the next run locks it again");
    failed
}

/// What one write per snapshot produced (a share, the end of one, a tag).
#[derive(Debug, Default)]
pub struct SnapshotOutcomes {
    /// Snapshots whose share was added (or removed).
    pub done: Vec<String>,
    pub failed: Vec<Failure>,
    /// Calls not started because the invocation's time ran out: the next run does them.
    pub carried: usize,
}

impl Absorb for SnapshotOutcomes {
    fn absorb(&mut self, other: SnapshotOutcomes) {
        self.done.extend(other.done);
        self.failed.extend(other.failed);
        self.carried += other.carried;
    }
}

/// Adds (`share`) or removes the permission of `account` to create volumes from each
/// snapshot, paced; both are idempotent, so a lost answer is simply sent again next run.
pub async fn share_snapshots(
    writes: Writes<'_>,
    snapshot_ids: Vec<String>,
    account: &str,
    share: bool,
) -> SnapshotOutcomes {
    bounded(snapshot_ids, writes.limit, |id| {
        share_one(writes, id, account, share)
    })
    .await
}

async fn share_one(
    writes: Writes<'_>,
    snapshot_id: String,
    account: &str,
    share: bool,
) -> SnapshotOutcomes {
    let mut outcomes = SnapshotOutcomes::default();
    if writes.mode == Mode::DryRun {
        outcomes.done.push(snapshot_id);
        return outcomes;
    }
    let operation = if share {
        aws_sdk_ec2::types::OperationType::Add
    } else {
        aws_sdk_ec2::types::OperationType::Remove
    };
    let sent = send_paced(writes, Action::ModifySnapshotAttribute, || {
        writes
            .ec2
            .modify_snapshot_attribute()
            .snapshot_id(&snapshot_id)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .operation_type(operation.clone())
            .user_ids(account)
            .customize()
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_classifier(NoRetryWhenThrottled),
            )
            .send()
    })
    .await;
    match sent {
        None => outcomes.carried += 1,
        Some(Ok(_)) => {
            tracing::info!(snapshot_id = %snapshot_id, account, share, "vault share changed");
            outcomes.done.push(snapshot_id);
        }
        Some(Err(error)) => outcomes
            .failed
            .push(share_failure(&snapshot_id, share, &error)),
    }
    outcomes
}

fn share_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    snapshot_id: &str,
    share: bool,
    error: &SdkError<E, HttpResponse>,
) -> Failure {
    let mut failed = failure(
        Some(Subject::Snapshot(snapshot_id.to_owned())),
        "ModifySnapshotAttribute",
        error,
    );
    failed.message = format!(
        "{} the vault: {}",
        if share {
            "sharing with"
        } else {
            "ending the share with"
        },
        failed.message
    );
    tracing::error!(snapshot_id, code = %failed.code, message = %failed.message, "vault share failed; the next run tries again");
    failed
}

/// Tags each snapshot with its tags (`requests`: snapshot id and tags), paced; a throttled
/// answer is sent again, a failure is reported and the next run tags it again.
pub async fn tag_snapshots(
    writes: Writes<'_>,
    requests: Vec<(String, Vec<(String, String)>)>,
) -> SnapshotOutcomes {
    bounded(requests, writes.limit, |(id, tags)| {
        tag_one(writes, id, tags)
    })
    .await
}

async fn tag_one(
    writes: Writes<'_>,
    snapshot_id: String,
    tags: Vec<(String, String)>,
) -> SnapshotOutcomes {
    let mut outcomes = SnapshotOutcomes::default();
    if writes.mode == Mode::DryRun {
        outcomes.done.push(snapshot_id);
        return outcomes;
    }
    let sent = send_paced(writes, Action::CreateTags, || {
        writes
            .ec2
            .create_tags()
            .resources(&snapshot_id)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .customize()
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_classifier(NoRetryWhenThrottled),
            )
            .send()
    })
    .await;
    match sent {
        None => outcomes.carried += 1,
        Some(Ok(_)) => outcomes.done.push(snapshot_id),
        Some(Err(error)) => outcomes.failed.push(failure(
            Some(Subject::Snapshot(snapshot_id.clone())),
            "CreateTags",
            &error,
        )),
    }
    outcomes
}

/// What copying to one region produced.
#[derive(Debug, Default)]
pub struct CopyOutcomes {
    /// (source snapshot, copy) for each copy started; the copy is `None` in a dry run.
    pub started: Vec<(String, Option<String>)>,
    /// Copies not started: EC2's limit of copies in flight was reached, or time ran out.
    pub waiting: usize,
    pub failed: Vec<Failure>,
}

impl Absorb for CopyOutcomes {
    fn absorb(&mut self, other: CopyOutcomes) {
        self.started.extend(other.started);
        self.waiting += other.waiting;
        self.failed.extend(other.failed);
    }
}

/// EC2's error code for a copy beyond the region's concurrent copies.
const COPY_LIMIT: &str = "ResourceLimitExceeded";

/// Sends one `CopySnapshot` per request to the destination region `writes.ec2` calls, tagged
/// at creation. `CopySnapshot` takes no idempotency token: when an answer is lost, the copy is
/// looked up by its tags before the call is sent again.
pub async fn copy_snapshots(
    writes: Writes<'_>,
    requests: Vec<CopyRequest>,
    settle: Duration,
) -> CopyOutcomes {
    bounded(requests, writes.limit, |request| {
        copy_one(writes, request, settle)
    })
    .await
}

async fn send_copy(
    ec2: &Client,
    request: &CopyRequest,
) -> Result<CopySnapshotOutput, SdkError<CopySnapshotError, HttpResponse>> {
    ec2.copy_snapshot()
        .source_region(&request.source_region)
        .source_snapshot_id(&request.source_snapshot_id)
        .description(&request.description)
        .set_encrypted(request.encrypted.then_some(true))
        .set_kms_key_id(request.kms_key.clone())
        .tag_specifications(snapshot_tags(&request.tags))
        .customize()
        // As `CreateSnapshots`: a throttled call is paced and sent again by `copy_one`, any
        // other failure may come after EC2 acted, so the copy is looked up first.
        .config_override(sent_once())
        .send()
        .await
}

/// The copy of `request`'s source that a lost `CopySnapshot` may have made, by its tags.
async fn copy_made(
    ec2: &Client,
    request: &CopyRequest,
) -> Result<Option<String>, SdkError<DescribeSnapshotsError, HttpResponse>> {
    let filters = request
        .tags
        .iter()
        .filter(|(key, _)| {
            [tags::MANAGED_BY, tags::SOURCE_SNAPSHOT, tags::SOURCE_REGION].contains(&key.as_str())
        })
        .map(|(key, value)| inventory::filter(&format!("tag:{key}"), [value.clone()]));
    let found = ec2
        .describe_snapshots()
        .owner_ids("self")
        .set_filters(Some(filters.collect()))
        .send()
        .await?;
    Ok(found
        .snapshots()
        .iter()
        .find_map(|s| s.snapshot_id().map(str::to_owned)))
}

async fn copy_one(writes: Writes<'_>, request: CopyRequest, settle: Duration) -> CopyOutcomes {
    let mut outcomes = CopyOutcomes::default();
    if writes.mode == Mode::DryRun {
        outcomes.started.push((request.source_snapshot_id, None));
        return outcomes;
    }
    let region = writes.region.unwrap_or_default();
    let once = Once {
        action: Action::CopySnapshot,
        operation: "CopySnapshot",
        subject: Subject::Snapshot(request.source_snapshot_id.clone()),
        later: &[COPY_LIMIT],
        unknown: "whether the copy was made is unknown, the next sweep will see it",
    };
    let sent = send_once(
        writes,
        &once,
        settle,
        || async {
            send_copy(writes.ec2, &request)
                .await
                .map(|output| output.snapshot_id().map(str::to_owned))
        },
        || async {
            match copy_made(writes.ec2, &request).await {
                Ok(Some(copy)) => Ok(Some(Some(copy))),
                Ok(None) => Ok(None),
                Err(error) => Err(DisplayErrorContext(&error).to_string()),
            }
        },
    )
    .await;
    match sent {
        Sent::Done(copy) => {
            tracing::info!(source = %request.source_snapshot_id, region, copy = ?copy, "copy started");
            outcomes.started.push((request.source_snapshot_id, copy));
        }
        Sent::OutOfTime => outcomes.waiting += 1,
        Sent::Later { .. } => {
            tracing::warn!(source = %request.source_snapshot_id, region, "the region's concurrent copies are at EC2's limit; left for the next sweep");
            outcomes.waiting += 1;
        }
        Sent::Failed(mut failed) => {
            failed.message = format!("to {region}: {}", failed.message);
            tracing::error!(source = %request.source_snapshot_id, region, code = %failed.code, message = %failed.message, "copy failed");
            outcomes.failed.push(failed);
        }
    }
    outcomes
}
