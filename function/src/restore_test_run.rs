//! Carries a restore test out against EC2: deletes what an earlier test left, creates a volume
//! from each sampled snapshot (tagged at creation), waits until each is `available` (bounded),
//! and deletes them. A failing volume never hides the others.

use crate::execute::{Deadline, Mode};
use crate::inventory::filter;
use crate::plan::Subject;
use crate::report::{Failure, RestoreTest};
use crate::restore_test::{self, TestSet, TestVolume, VolumeOutcome};
use crate::sdk_errors::failure;
use crate::tags;
use crate::volumes;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::VolumeState;
use futures_util::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The time kept back from the invocation's cutoff for deleting the test's volumes.
const DELETE_ALLOWANCE: Duration = Duration::from_secs(5);

/// How a restore test runs.
#[derive(Debug, Clone, Copy)]
pub struct Drill<'a> {
    pub ec2: &'a Client,
    pub deployment: &'a str,
    /// Calls in flight at most.
    pub limit: usize,
    /// Between two looks at the volumes' states.
    pub poll: Duration,
    /// The longest wait for the volumes to become `available`.
    pub max_wait: Duration,
    pub deadline: Option<&'a Deadline>,
    pub mode: Mode,
    /// The run's start: with a snapshot id, each volume's idempotency token.
    pub run_started_at: OffsetDateTime,
}

/// What a restore test did.
#[derive(Debug, Default)]
pub struct Drilled {
    pub tests: Vec<RestoreTest>,
    pub failed: Vec<Failure>,
    pub warnings: Vec<String>,
}

/// A volume created for the test, and where its result goes.
struct Made<'s> {
    set: usize,
    volume: &'s TestVolume,
    volume_id: String,
    sent_at: Instant,
}

/// Restores every set of `sets` to volumes, waits, deletes them, and reports each set.
pub async fn run(drill: Drill<'_>, sets: &[TestSet]) -> Drilled {
    let mut out = Drilled::default();
    if drill.mode == Mode::DryRun {
        for set in sets {
            let planned = vec![VolumeOutcome::Planned; set.volumes.len()];
            out.tests.push(restore_test::result(set, &planned).0);
        }
        return out;
    }
    sweep(drill, &mut out).await;

    // Every volume of every set, created at once (bounded).
    let wanted: Vec<(usize, &TestVolume)> = sets
        .iter()
        .enumerate()
        .flat_map(|(index, set)| set.volumes.iter().map(move |v| (index, v)))
        .collect();
    let created: Vec<(usize, &TestVolume, Result<Made<'_>, Failure>)> =
        stream::iter(wanted.into_iter().map(|(index, volume)| async move {
            let instance = &sets[index].instance_id;
            (index, volume, create(drill, instance, index, volume).await)
        }))
        .buffered(drill.limit.max(1))
        .collect()
        .await;
    let mut outcomes: BTreeMap<(usize, String), VolumeOutcome> = BTreeMap::new();
    let mut made: Vec<Made<'_>> = Vec::new();
    for (index, volume, result) in created {
        match result {
            Ok(m) => made.push(m),
            Err(failure) => {
                outcomes.insert(
                    (index, volume.snapshot_id.clone()),
                    VolumeOutcome::Failed(failure),
                );
            }
        }
    }

    let states = wait(drill, &made).await;
    let mut to_delete = Vec::new();
    for m in &made {
        let key = (m.set, m.volume.snapshot_id.clone());
        let subject = Some(Subject::Snapshot(m.volume.snapshot_id.clone()));
        let instance = &sets[m.set].instance_id;
        let outcome = match states.get(&m.volume_id) {
            Some(Seen::Available(ms)) => {
                to_delete.push(m.volume_id.clone());
                VolumeOutcome::Available {
                    volume_id: m.volume_id.clone(),
                    ms: *ms,
                }
            }
            Some(Seen::Error) => {
                to_delete.push(m.volume_id.clone());
                VolumeOutcome::Failed(Failure {
                    subject,
                    operation: "RestoreTest".to_owned(),
                    code: "SmartVault.VolumeError".to_owned(),
                    message: format!(
                        "instance {instance}: volume {} from this snapshot went to `error`: EBS \
                         could not restore it (for an encrypted snapshot, check that its KMS key \
                         may be used by the function's role); the volume is deleted",
                        m.volume_id
                    ),
                })
            }
            Some(Seen::Other(state)) => VolumeOutcome::Failed(Failure {
                subject,
                operation: "RestoreTest".to_owned(),
                code: "SmartVault.VolumeUnexpectedState".to_owned(),
                message: format!(
                    "instance {instance}: volume {} from this snapshot became `{state}`, which a \
                     restore test volume never is (attached or deleted by someone else?); it is \
                     left alone",
                    m.volume_id
                ),
            }),
            Some(Seen::Still(state)) => VolumeOutcome::Failed(Failure {
                subject,
                operation: "RestoreTest".to_owned(),
                code: "SmartVault.RestoreTestTimedOut".to_owned(),
                message: format!(
                    "instance {instance}: volume {} from this snapshot was still `{state}` after \
                     {} s (max_wait_seconds, or the invocation's time); it keeps its {} tag and \
                     the next restore test deletes it",
                    m.volume_id,
                    m.sent_at.elapsed().as_secs(),
                    restore_test::TAG
                ),
            }),
            None => VolumeOutcome::Failed(Failure {
                subject,
                operation: "RestoreTest".to_owned(),
                code: "SmartVault.VolumeNotFound".to_owned(),
                message: format!(
                    "instance {instance}: volume {} from this snapshot was made but never seen by \
                     DescribeVolumes within the wait",
                    m.volume_id
                ),
            }),
        };
        outcomes.insert(key, outcome);
    }
    out.failed.extend(delete_all(drill, &to_delete).await);

    for (index, set) in sets.iter().enumerate() {
        let of_set: Vec<VolumeOutcome> = set
            .volumes
            .iter()
            .filter_map(|v| outcomes.remove(&(index, v.snapshot_id.clone())))
            .collect();
        let (test, failed) = restore_test::result(set, &of_set);
        tracing::info!(
            instance = %test.instance_id,
            set = %test.set_created_at,
            volumes = test.volumes,
            status = ?test.status,
            slowest_ms = ?test.slowest_ms,
            "restore test"
        );
        out.tests.push(test);
        out.failed.extend(failed);
    }
    out
}

/// Deletes the volumes an earlier test left (still `creating` when it stopped waiting, or not
/// deleted); one still `creating` now is left for the next test.
async fn sweep(drill: Drill<'_>, out: &mut Drilled) {
    let listed = drill
        .ec2
        .describe_volumes()
        .filters(filter(
            &format!("tag:{}", restore_test::TAG),
            [drill.deployment],
        ))
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut leftovers = Vec::new();
    for volume in listed {
        match volume {
            Ok(volume) => {
                let id = volume.volume_id().unwrap_or_default().to_owned();
                match volume.state() {
                    Some(VolumeState::Available | VolumeState::Error) => leftovers.push(id),
                    state => out.warnings.push(format!(
                        "restore test volume {id} from an earlier test is {}; the next test \
                         deletes it once it is available",
                        state.map_or("in an unknown state", VolumeState::as_str)
                    )),
                }
            }
            Err(error) => {
                out.failed.push(failure(None, "DescribeVolumes", &error));
                return;
            }
        }
    }
    if !leftovers.is_empty() {
        out.warnings.push(format!(
            "deleted {} restore test volume(s) an earlier test left: {}",
            leftovers.len(),
            leftovers.join(", ")
        ));
    }
    out.failed.extend(delete_all(drill, &leftovers).await);
}

/// Creates one test volume, tagged at creation; the idempotency token makes a resend after a
/// lost answer return the same volume.
async fn create<'s>(
    drill: Drill<'_>,
    instance: &str,
    set: usize,
    volume: &'s TestVolume,
) -> Result<Made<'s>, Failure> {
    let tags = [
        (restore_test::TAG, drill.deployment.to_owned()),
        (tags::RESTORED_FROM, volume.snapshot_id.clone()),
        (tags::INSTANCE_ID, instance.to_owned()),
        (
            tags::NAME,
            format!(
                "SmartVault restore test of {instance} {}",
                volume.device.as_deref().unwrap_or("volume")
            ),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let token = format!(
        "smartvault-rt-{}-{}",
        drill.run_started_at.unix_timestamp(),
        volume.snapshot_id
    );
    let sent_at = Instant::now();
    let answer = volumes::create(
        drill.ec2,
        &volumes::AsRecorded {
            snapshot_id: &volume.snapshot_id,
            availability_zone: &volume.availability_zone,
            details: &volume.details,
            tags: &tags,
            client_token: Some(&token),
        },
    )
    .await;
    match answer {
        Ok(volume_id) => Ok(Made {
            set,
            volume,
            volume_id,
            sent_at,
        }),
        Err(error) => {
            let mut failure = failure(
                Some(Subject::Snapshot(volume.snapshot_id.clone())),
                "CreateVolume",
                &error,
            );
            failure.message = format!(
                "instance {instance}: restoring this snapshot in {} failed: {}",
                volume.availability_zone, failure.message
            );
            Err(failure)
        }
    }
}

/// What the last look saw of a volume.
enum Seen {
    /// `available`, this many milliseconds after `CreateVolume` was sent (to the poll).
    Available(u64),
    Error,
    /// Still `creating` when the wait ended.
    Still(String),
    /// Some other state (`in-use`, `deleting`): not what a test volume ever is.
    Other(String),
}

/// Looks at the volumes every `poll` until each is `available` or `error`, the wait is over, or
/// the invocation's cutoff (less time to delete) comes.
async fn wait(drill: Drill<'_>, made: &[Made<'_>]) -> BTreeMap<String, Seen> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let started: BTreeMap<&str, Instant> = made
        .iter()
        .map(|m| (m.volume_id.as_str(), m.sent_at))
        .collect();
    let mut until = Instant::now() + drill.max_wait;
    if let Some(deadline) = drill.deadline {
        until = until.min(
            deadline
                .cutoff()
                .checked_sub(DELETE_ALLOWANCE)
                .unwrap_or_else(Instant::now),
        );
    }
    loop {
        let open: Vec<&str> = started
            .keys()
            .filter(|id| !settled(seen.get(**id)))
            .copied()
            .collect();
        if open.is_empty() {
            break;
        }
        match volumes::by_id(drill.ec2, &open).await {
            // A failed look is retried at the next poll; the last one is reported.
            Err(error) => tracing::warn!(
                code = error.code().unwrap_or("none"),
                "DescribeVolumes failed while waiting for restore test volumes"
            ),
            Ok(found) => {
                for (id, volume) in found {
                    let Some(sent_at) = started.get(id.as_str()) else {
                        continue;
                    };
                    let state = volume.state().map_or("unknown", VolumeState::as_str);
                    let now = match volume.state() {
                        Some(VolumeState::Available) => Seen::Available(
                            u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX),
                        ),
                        Some(VolumeState::Error) => Seen::Error,
                        Some(VolumeState::Creating) => Seen::Still(state.to_owned()),
                        _ => Seen::Other(state.to_owned()),
                    };
                    seen.insert(id, now);
                }
            }
        }
        if started.keys().all(|id| settled(seen.get(*id))) || Instant::now() + drill.poll > until {
            break;
        }
        tokio::time::sleep(drill.poll).await;
    }
    seen
}

/// Whether a volume seen so is done with: it will not change by waiting.
fn settled(seen: Option<&Seen>) -> bool {
    matches!(
        seen,
        Some(Seen::Available(_) | Seen::Error | Seen::Other(_))
    )
}

/// Deletes volumes (bounded); a volume already gone counts as deleted.
async fn delete_all(drill: Drill<'_>, volume_ids: &[String]) -> Vec<Failure> {
    let results: Vec<Option<Failure>> = stream::iter(volume_ids.iter().map(|id| async move {
        match drill.ec2.delete_volume().volume_id(id).send().await {
            Ok(_) => None,
            Err(error) if error.code() == Some("InvalidVolume.NotFound") => None,
            Err(error) => {
                let mut failure =
                    failure(Some(Subject::Volume(id.clone())), "DeleteVolume", &error);
                failure.message = format!(
                    "{}; the restore test volume keeps its {} tag and the next test deletes it",
                    failure.message,
                    restore_test::TAG
                );
                Some(failure)
            }
        }
    }))
    .buffered(drill.limit.max(1))
    .collect()
    .await;
    results.into_iter().flatten().collect()
}
