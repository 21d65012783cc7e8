//! Application-consistent sets (issue 32), the edge: which instances Systems Manager manages,
//! the pre stage in batches of 50 (waited for, within the link's time), `CreateSnapshots` for
//! each instance as soon as its pre stage succeeds, the post stage for every instance the pre
//! stage may have reached (also when it failed, its answer was lost or the link's time ran
//! out), retries, the fallback; and Windows VSS, whose snapshots the instance makes with every
//! SmartVault tag.

use crate::consistency::{
    self, Fallback, MAX_INSTANCES_PER_COMMAND, Mode, POST_STAGE, PRE_STAGE, Rule, Stage,
};
use crate::execute::{self, Outcomes, Writes};
use crate::pacing::{Action, Throttled};
use crate::plan::{CreateRequest, Skip, Subject};
use crate::report::Failure;
use crate::signed::CallError;
use crate::ssm;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How soon a command's invocations are first read.
const FIRST_READ: Duration = Duration::from_millis(250);

/// What consistent sets produced: the writes' outcomes and each instance's consistency.
#[derive(Debug, Default)]
pub struct Consistent {
    pub outcomes: Outcomes,
    pub consistency: Vec<consistency::Outcome>,
}

impl Consistent {
    fn absorb(&mut self, other: Consistent) {
        let Consistent {
            outcomes,
            consistency,
        } = other;
        self.outcomes.absorb_from(outcomes);
        self.consistency.extend(consistency);
    }

    fn note(&mut self, instance_id: &str, mode: Mode, achieved: bool, detail: String) {
        tracing::info!(instance_id, mode = mode.as_str(), achieved, detail = %detail, "consistency");
        self.consistency.push(consistency::Outcome {
            instance_id: instance_id.to_owned(),
            mode,
            achieved,
            detail,
        });
    }
}

/// What the stages need besides the writes.
#[derive(Clone, Copy)]
pub struct Setup<'a> {
    pub sdk: &'a aws_config::SdkConfig,
    pub writes: Writes<'a>,
    pub settle: Duration,
    /// How often a command's invocations are read while waiting.
    pub poll: Duration,
    /// The stack's Linux document, for `script` without a document of its own.
    pub shipped: &'a str,
    /// The run this is part of (its start), given to the document as `executionId`.
    pub execution_id: &'a str,
    pub deployment: &'a str,
}

/// Makes the sets of `requests` (each with its schedule's consistency) as their rule says.
pub async fn create(setup: Setup<'_>, requests: Vec<CreateRequest>) -> Consistent {
    let mut done = Consistent::default();
    let Some(rule) = requests.first().and_then(|r| r.consistency.clone()) else {
        return done;
    };
    if setup.writes.mode == execute::Mode::DryRun {
        for request in &requests {
            done.note(
                &request.instance_id,
                rule.mode,
                false,
                "dry run: no stage sent".into(),
            );
        }
        done.outcomes = execute::create_snapshots(setup.writes, requests, setup.settle).await;
        return done;
    }
    let ids: Vec<String> = requests.iter().map(|r| r.instance_id.clone()).collect();
    let managed = ssm::managed(setup.sdk, &ids).await;
    let mut eligible = Vec::new();
    let mut crash = Vec::new();
    for request in requests {
        let why = match &managed {
            Err(error) => Some(format!(
                "which instances Systems Manager manages could not be read ({error})"
            )),
            Ok(managed) => match managed.get(&request.instance_id) {
                None => Some(
                    "not managed by Systems Manager (no SSM Agent online, or no instance \
                     profile allowing it)"
                        .to_owned(),
                ),
                Some(platform) if rule.mode == Mode::Vss && platform != "Windows" => Some(format!(
                    "VSS needs Windows, and Systems Manager reports {platform:?}"
                )),
                Some(_)
                    if rule.mode == Mode::Vss && !request.excluded_data_volume_ids.is_empty() =>
                {
                    Some("VSS snapshots every data volume and cannot leave some out".to_owned())
                }
                Some(_) => None,
            },
        };
        match why {
            None => eligible.push(request),
            Some(why) => fall_back(&mut done, &rule, request, &why, &mut crash),
        }
    }
    let limit = setup.writes.limit.max(1);
    let batches: Vec<Vec<CreateRequest>> = match rule.mode {
        Mode::Script => eligible
            .chunks(MAX_INSTANCES_PER_COMMAND)
            .map(<[_]>::to_vec)
            .collect(),
        // VSS tags each instance's snapshots with its own tags: one command each.
        Mode::Vss => eligible.into_iter().map(|r| vec![r]).collect(),
    };
    // A batch of 50 waits on its slowest instance; a few batches at once keep a fleet moving.
    let concurrent = match rule.mode {
        Mode::Script => limit.div_ceil(MAX_INSTANCES_PER_COMMAND).clamp(1, 4),
        Mode::Vss => limit,
    };
    let results: Vec<(Consistent, Fallen, Posted)> = stream::iter(batches)
        .map(|batch| {
            let rule = &rule;
            async move {
                match rule.mode {
                    Mode::Script => script_batch(setup, rule, batch).await,
                    Mode::Vss => {
                        let (done, crash) = vss_one(setup, rule, batch).await;
                        (done, crash, Posted::default())
                    }
                }
            }
        })
        .buffer_unordered(concurrent)
        .collect()
        .await;
    let mut posts = Vec::new();
    for (batch, fallen, posted) in results {
        done.absorb(batch);
        crash.extend(fallen);
        posts.push(posted);
    }
    settle_posts(setup, &rule, &mut done, posts).await;
    if !crash.is_empty() {
        let made = crash_sets(setup, &rule, crash).await;
        done.absorb(made);
    }
    done
}

/// The instances to snapshot crash-consistent as the fallback, each with why.
type Fallen = Vec<(CreateRequest, String)>;

/// Records the fallback for `request`: into `crash` to be snapshotted anyway (with why), or
/// skipped.
fn fall_back(
    done: &mut Consistent,
    rule: &Rule,
    request: CreateRequest,
    why: &str,
    crash: &mut Fallen,
) {
    match rule.fallback(why) {
        Fallback::Crash { reason } => crash.push((request, reason)),
        Fallback::Skip { reason } => {
            done.note(&request.instance_id, rule.mode, false, reason.clone());
            done.outcomes
                .skipped
                .push(Skip::new(Subject::Instance(request.instance_id), reason));
        }
    }
}

/// Makes the fallback's crash-consistent sets, and notes each instance they were made (or
/// failed) for; one left for the next link is noted there, once.
async fn crash_sets(setup: Setup<'_>, rule: &Rule, crash: Fallen) -> Consistent {
    let mut done = Consistent::default();
    let (requests, reasons): (Vec<CreateRequest>, Vec<String>) = crash.into_iter().unzip();
    let ids: Vec<String> = requests.iter().map(|r| r.instance_id.clone()).collect();
    done.outcomes = execute::create_snapshots(setup.writes, requests, setup.settle).await;
    for (id, reason) in ids.iter().zip(reasons) {
        let subject = Subject::Instance(id.clone());
        let handled = done.outcomes.created.iter().any(|c| c.instance_id == *id)
            || done
                .outcomes
                .failed
                .iter()
                .any(|f| f.subject.as_ref() == Some(&subject))
            || done.outcomes.skipped.iter().any(|k| k.subject == subject);
        if handled {
            done.note(id, rule.mode, false, reason);
        }
    }
    done
}

/// Sends one stage of `document` to `instance_ids`, paced; `Err` says whether it may have
/// reached them. A post stage may be sent up to the deadline itself, a pre stage only before
/// the cutoff.
async fn send(
    setup: Setup<'_>,
    document: &str,
    instance_ids: &[String],
    parameters: serde_json::Value,
    stage: &str,
    timeout_seconds: u32,
) -> Result<String, CallError> {
    let writes = setup.writes;
    let within = writes.deadline.map(|d| {
        if stage == POST_STAGE {
            d.at()
        } else {
            d.cutoff()
        }
    });
    let mut throttled = 0;
    loop {
        if !writes.pacer.ready(Action::SendCommand, None, within).await {
            return Err(CallError {
                code: "SmartVault.OutOfTime".into(),
                message: "the invocation's time ran out before it could be sent".into(),
                status: 0,
            });
        }
        let command = ssm::Command {
            document,
            instance_ids,
            parameters: parameters.clone(),
            comment: format!(
                "SmartVault {} {stage} {}",
                setup.deployment, setup.execution_id
            ),
            timeout_seconds,
        };
        let sent = ssm::send_command(setup.sdk, &command).await;
        let verdict = match &sent {
            Err(error) if error.throttled() => Throttled::Yes,
            _ => Throttled::No,
        };
        writes.pacer.record(Action::SendCommand, None, verdict);
        match sent {
            Err(error) if error.throttled() && throttled < 20 => throttled += 1,
            other => return other,
        }
    }
}

/// The parameters of a script document's stage: Data Lifecycle Manager's contract.
fn script_parameters(stage: &str, execution_id: &str) -> serde_json::Value {
    json!({"command": [stage], "executionId": [execution_id]})
}

/// Waiting for one command: its instances' last stages, read every so often until each has
/// ended or the wait is over.
struct Waiting<'a> {
    setup: Setup<'a>,
    command_id: &'a str,
    started: Instant,
    wait: Duration,
    interval: Duration,
    stages: Vec<(String, Stage)>,
}

impl<'a> Waiting<'a> {
    fn new(setup: Setup<'a>, command_id: &'a str, instance_ids: &[String], wait: Duration) -> Self {
        Waiting {
            setup,
            command_id,
            started: Instant::now(),
            wait,
            // The first read soon (a stage often ends within a second: an instance frozen
            // waits for it), then less often, up to `poll`.
            interval: setup.poll.min(FIRST_READ),
            stages: instance_ids
                .iter()
                .map(|id| (id.clone(), Stage::Running))
                .collect(),
        }
    }

    /// Reads the invocations once more: the instances that succeeded since the last read, or
    /// `None` when every one has ended or the wait is over (`stages` then says how each
    /// stands, `Running` for one still running or not listed).
    async fn next(&mut self) -> Option<Vec<String>> {
        let left = self.wait.saturating_sub(self.started.elapsed());
        if left.is_zero() || self.stages.iter().all(|(_, s)| *s != Stage::Running) {
            return None;
        }
        tokio::time::sleep(self.interval.min(left)).await;
        self.interval = (self.interval * 2).min(self.setup.poll);
        let mut succeeded = Vec::new();
        match ssm::invocations(self.setup.sdk, self.command_id).await {
            Ok(stages) => {
                for (id, stage) in stages {
                    if let Some((_, seen)) = self.stages.iter_mut().find(|(i, _)| *i == id)
                        && *seen == Stage::Running
                    {
                        if stage == Stage::Succeeded {
                            succeeded.push(id.clone());
                        }
                        *seen = stage;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(command_id = self.command_id, error = %error, "reading the command's invocations failed; reading again");
            }
        }
        Some(succeeded)
    }

    /// Waits to the end, and says how each instance stands.
    async fn until_ended(mut self) -> Vec<(String, Stage)> {
        while self.next().await.is_some() {}
        self.stages
    }
}

/// One batch of a `script` schedule: pre stage (retried for the instances it failed on),
/// each instance's set as soon as its pre stage succeeds, then the post stage to every
/// instance the pre stage may have reached. Returns what it did and the instances to snapshot
/// crash-consistent as the fallback.
async fn script_batch(
    setup: Setup<'_>,
    rule: &Rule,
    batch: Vec<CreateRequest>,
) -> (Consistent, Fallen, Posted) {
    let mut done = Consistent::default();
    let mut crash = Vec::new();
    let left = |setup: &Setup<'_>| setup.writes.deadline.map(execute::Deadline::left);
    if left(&setup).is_some_and(|left| !consistency::fits(left, rule.timeout_seconds)) {
        done.outcomes.carried += batch.len();
        return (done, crash, Posted::default());
    }
    let document = rule.document_name(setup.shipped);
    let wait = Duration::from_secs(u64::from(rule.timeout_seconds));
    let mut requests = batch;
    // The instances the pre stage may have reached: each gets the post stage.
    let mut reached: BTreeSet<String> = BTreeSet::new();
    let mut posted: BTreeSet<String> = BTreeSet::new();
    let mut post_commands: Vec<(String, Vec<String>)> = Vec::new();
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    let mut achieved: BTreeSet<String> = BTreeSet::new();
    let mut to_send: Vec<String> = requests.iter().map(|r| r.instance_id.clone()).collect();
    for attempt in 0..=rule.retries {
        if to_send.is_empty() {
            break;
        }
        if attempt > 0 && left(&setup).is_some_and(|l| !consistency::fits(l, rule.timeout_seconds))
        {
            break;
        }
        let parameters = script_parameters(PRE_STAGE, setup.execution_id);
        let sent = send(
            setup,
            document,
            &to_send,
            parameters,
            PRE_STAGE,
            rule.timeout_seconds,
        )
        .await;
        let command_id = match sent {
            Err(error) => {
                if error.may_have_acted() {
                    // It may have frozen them: thawed at once, before any other pre stage.
                    reached.extend(to_send.iter().cloned());
                    match post(setup, document, &to_send).await {
                        Ok(command_id) => post_commands.push((command_id, to_send.clone())),
                        Err(failure) => {
                            for id in &to_send {
                                done.outcomes.failed.push(post_failure(id, &failure));
                            }
                        }
                    }
                }
                for id in &to_send {
                    why.insert(
                        id.clone(),
                        format!("the pre stage could not be sent ({error})"),
                    );
                }
                continue;
            }
            Ok(command_id) => command_id,
        };
        reached.extend(to_send.iter().cloned());
        let mut made = Consistent::default();
        let mut posts = Vec::new();
        let mut waiting = Waiting::new(setup, &command_id, &to_send, wait);
        while let Some(succeeded) = waiting.next().await {
            if succeeded.is_empty() {
                continue;
            }
            let ready: Vec<CreateRequest> = succeeded
                .iter()
                .filter_map(|id| requests.iter().find(|r| r.instance_id == *id).cloned())
                .collect();
            // Frozen now: snapshot at once, then thaw them.
            let outcomes = execute::create_snapshots(setup.writes, ready, setup.settle).await;
            made.outcomes.absorb_from(outcomes);
            let sent = post(setup, document, &succeeded).await;
            posts.push((succeeded, sent));
        }
        let stages = waiting.stages;
        for (ids, post) in posts {
            posted.extend(ids.iter().cloned());
            match post {
                Ok(command_id) => post_commands.push((command_id, ids)),
                Err(failure) => {
                    for id in &ids {
                        done.outcomes.failed.push(post_failure(id, &failure));
                    }
                }
            }
        }
        let created: BTreeSet<&str> = made
            .outcomes
            .created
            .iter()
            .map(|c| c.instance_id.as_str())
            .collect();
        achieved.extend(created.iter().map(|id| (*id).to_owned()));
        done.absorb(made);
        let mut again = Vec::new();
        for (id, stage) in stages {
            match stage {
                Stage::Succeeded => {
                    why.remove(&id);
                }
                Stage::Failed(status) => {
                    why.insert(id.clone(), format!("the pre stage ended {status}"));
                    again.push(id);
                }
                // Never sent again while it may still run: two pre stages must not overlap.
                Stage::Running => {
                    why.insert(
                        id.clone(),
                        format!(
                            "the pre stage had not ended after {} s",
                            rule.timeout_seconds
                        ),
                    );
                }
            }
        }
        to_send = again;
    }
    // The fallback for every instance whose pre stage never succeeded, its set made before
    // its post stage as any other...
    for (id, reason) in &why {
        if let Some(at) = requests.iter().position(|r| r.instance_id == *id) {
            fall_back(&mut done, rule, requests.remove(at), reason, &mut crash);
        }
    }
    let made = crash_sets(setup, rule, std::mem::take(&mut crash)).await;
    done.absorb(made);
    // ...and the post stage for each the pre stage may have reached and that has none yet.
    let unposted: Vec<String> = reached.difference(&posted).cloned().collect();
    if !unposted.is_empty() {
        match post(setup, document, &unposted).await {
            Ok(command_id) => post_commands.push((command_id, unposted)),
            Err(failure) => {
                for id in &unposted {
                    done.outcomes.failed.push(post_failure(id, &failure));
                }
            }
        }
    }
    // The post stages' results are waited for with every batch's (`settle_posts`), so that
    // the next batch need not wait for them.
    let posted = Posted {
        commands: post_commands,
        achieved,
        snapshotted: requests
            .iter()
            .map(|r| r.instance_id.clone())
            .filter(|id| done.outcomes.created.iter().any(|c| c.instance_id == *id))
            .collect(),
    };
    (done, crash, posted)
}

/// A batch's post stages, still to be waited for: the commands and their instances, the
/// instances whose set was made inside a successful pre stage, and every instance snapshotted
/// after a pre stage (the fallback's included).
#[derive(Debug, Default)]
struct Posted {
    commands: Vec<(String, Vec<String>)>,
    achieved: BTreeSet<String>,
    snapshotted: Vec<String>,
}

/// Waits for every batch's post stages (as long as the link allows); a failed one
/// is reported, and its instance's set not called consistent. Then each snapshotted
/// instance's consistency is noted.
async fn settle_posts(setup: Setup<'_>, rule: &Rule, done: &mut Consistent, batches: Vec<Posted>) {
    let wait = Duration::from_secs(u64::from(rule.timeout_seconds));
    let until = setup.writes.deadline.map_or(wait, |d| {
        d.at()
            .saturating_duration_since(Instant::now())
            .saturating_sub(execute::SAFETY_FLOOR)
            .min(wait)
    });
    // Every post stage was sent before any is waited for: waited for one after the other,
    // all within the same time.
    let stop = Instant::now() + until;
    let mut results = Vec::new();
    for (command_id, ids) in batches.iter().flat_map(|b| &b.commands) {
        let left = stop.saturating_duration_since(Instant::now());
        let stages = Waiting::new(setup, command_id, ids, left)
            .until_ended()
            .await;
        results.push((command_id, stages));
    }
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for (command_id, stages) in results {
        for (id, stage) in stages {
            match stage {
                Stage::Succeeded => {}
                Stage::Failed(status) => {
                    done.outcomes
                        .failed
                        .push(post_failure(&id, &format!("the post stage ended {status}")));
                    failed.insert(id);
                }
                Stage::Running => {
                    tracing::warn!(instance_id = %id, command_id, "the post stage had not ended when the link stopped waiting");
                }
            }
        }
    }
    for batch in batches {
        for id in &batch.snapshotted {
            if batch.achieved.contains(id) && !failed.contains(id) {
                done.note(id, rule.mode, true, String::new());
            } else if batch.achieved.contains(id) {
                done.note(
                    id,
                    rule.mode,
                    false,
                    "the post stage failed: the set may not be consistent".into(),
                );
            }
            // A fallback's instance was noted when it fell back.
        }
    }
}

/// Sends the post stage to `ids`, up to three times when it is not answered; `Err` says why.
async fn post(setup: Setup<'_>, document: &str, ids: &[String]) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let parameters = script_parameters(POST_STAGE, setup.execution_id);
        match send(setup, document, ids, parameters, POST_STAGE, 30).await {
            Ok(command_id) => return Ok(command_id),
            Err(error) => last = error.to_string(),
        }
    }
    Err(format!("the post stage could not be sent ({last})"))
}

fn post_failure(instance_id: &str, why: &str) -> Failure {
    Failure {
        subject: Some(Subject::Instance(instance_id.to_owned())),
        operation: "SendCommand".into(),
        code: "SmartVault.PostStageFailed".into(),
        message: format!(
            "{why}; SmartVault's Linux document thaws its file systems by its own watchdog \
             anyway; check the instance's post hooks"
        ),
    }
}

/// One instance of a `vss` schedule: AWS's document makes the snapshots, tagged with this
/// run's tags; they are then found by their identity tags like a lost `CreateSnapshots`.
async fn vss_one(
    setup: Setup<'_>,
    rule: &Rule,
    mut batch: Vec<CreateRequest>,
) -> (Consistent, Fallen) {
    let mut done = Consistent::default();
    let mut crash = Vec::new();
    let Some(request) = batch.pop() else {
        return (done, crash);
    };
    if setup
        .writes
        .deadline
        .is_some_and(|d| !consistency::fits(d.left(), rule.timeout_seconds))
    {
        done.outcomes.carried += 1;
        return (done, crash);
    }
    let (tags, rest) = consistency::vss_tags(&request.tags);
    let flag = |on: bool| if on { "True" } else { "False" };
    let parameters = json!({
        "ExcludeBootVolume": [flag(request.exclude_boot_volume)],
        "NoWriters": ["False"],
        "CopyOnly": ["False"],
        "CreateAmi": ["False"],
        "description": [request.description],
        "tags": [tags],
    });
    let ids = [request.instance_id.clone()];
    let wait = Duration::from_secs(u64::from(rule.timeout_seconds));
    let mut outcome = String::new();
    let mut succeeded = false;
    for _ in 0..=rule.retries {
        match send(
            setup,
            consistency::VSS_DOCUMENT,
            &ids,
            parameters.clone(),
            "vss",
            rule.timeout_seconds,
        )
        .await
        {
            Err(error) if error.may_have_acted() => {
                // It may be making the set: never send it again; look after the wait.
                tokio::time::sleep(wait).await;
                outcome = format!("the VSS command's answer was lost ({error})");
                break;
            }
            Err(error) => outcome = format!("the VSS command could not be sent ({error})"),
            Ok(command_id) => {
                let stages = Waiting::new(setup, &command_id, &ids, wait)
                    .until_ended()
                    .await;
                match stages.into_iter().next().map_or(Stage::Running, |(_, s)| s) {
                    Stage::Succeeded => {
                        succeeded = true;
                        break;
                    }
                    Stage::Failed(status) => outcome = format!("the VSS command ended {status}"),
                    Stage::Running => {
                        outcome = format!(
                            "the VSS command had not ended after {} s",
                            rule.timeout_seconds
                        );
                        break;
                    }
                }
            }
        }
    }
    // What it made, wherever it ended: a set made is kept like any other.
    let found = match execute::made_by(setup.writes.ec2, &request).await {
        Ok(found) => found,
        Err(error) => {
            done.outcomes.failed.push(crate::sdk_errors::failure(
                Some(Subject::Instance(request.instance_id.clone())),
                "DescribeSnapshots",
                &error,
            ));
            return (done, crash);
        }
    };
    if found.is_empty() {
        let why = if succeeded {
            "the VSS command succeeded but no snapshot carries this run's tags".to_owned()
        } else {
            outcome
        };
        fall_back(&mut done, rule, request, &why, &mut crash);
        return (done, crash);
    }
    execute::record_created(
        &mut done.outcomes,
        &request,
        found.iter().map(|s| (s.volume_id(), s.snapshot_id())),
    );
    if !rest.is_empty() {
        let snapshots: Vec<String> = found
            .iter()
            .filter_map(|s| s.snapshot_id().map(str::to_owned))
            .collect();
        let tags = rest
            .iter()
            .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
        if let Err(error) = setup
            .writes
            .ec2
            .create_tags()
            .set_resources(Some(snapshots))
            .set_tags(Some(tags.collect()))
            .send()
            .await
        {
            done.outcomes.failed.push(crate::sdk_errors::failure(
                Some(Subject::Instance(request.instance_id.clone())),
                "CreateTags",
                &error,
            ));
        }
    }
    // AWS's `AppConsistent` tag takes one of the 50 places the volume's tags were fitted to.
    let mut request = request;
    if let crate::plan::VolumeTags::Fitted(fitted) = &mut request.volume_tags {
        for tags in fitted.values_mut() {
            tags.pop();
        }
    }
    execute::tag_fitted(setup.writes.ec2, &request, &mut done.outcomes).await;
    let detail = if succeeded {
        String::new()
    } else {
        format!("{outcome}, after making snapshots: kept, but they may not be consistent")
    };
    done.note(&request.instance_id, rule.mode, succeeded, detail);
    (done, crash)
}
