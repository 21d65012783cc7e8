//! Faults injected between the function and the emulator (throttling token buckets, 5xx
//! answers, delays, connection resets, answers lost after EC2 acted) over fleets of 120 and,
//! for the buckets, 300 instances: every instance ends snapshotted or reported failed with its
//! reason, none lost, none duplicated, and none failed for throttling.

use emulator::Emulator;
use emulator::fleet;
use emulator::proxy::{FaultProxy, Faults};
use function::config::Config;
use function::context::{Context, FunctionError};
use function::handler;
use function::pacing::{BucketSize, EC2_REFILL_PER_SECOND, Pacer};
use function::plan::Subject;
use function::report::RunReport;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const INSTANCES: usize = 120;

struct Outcome {
    report: RunReport,
    failed_run: bool,
    elapsed: Duration,
    snapshots_per_instance: BTreeMap<String, usize>,
    instance_ids: Vec<String>,
    proxy: emulator::proxy::Counts,
}

/// An emulator with a topic and `instances` tagged instances (two volumes each), and the
/// function's configuration for deployment `deployment`.
struct Fleet {
    emulator: Emulator,
    ec2: aws_sdk_ec2::Client,
    direct: aws_config::SdkConfig,
    instance_ids: Vec<String>,
    config: Config,
}

async fn fleet(instances: usize, deployment: &str) -> Fleet {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let direct = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&direct);
    let topic = aws_sdk_sns::Client::new(&direct)
        .create_topic()
        .name(deployment)
        .send()
        .await
        .unwrap();
    let launched = fleet::launch_all(&ec2, &fleet::two_volume_fleet(instances))
        .await
        .unwrap();
    let vars = HashMap::from([
        ("SNS_TOPIC_ARN", topic.topic_arn().unwrap().to_owned()),
        ("DEPLOYMENT", deployment.to_owned()),
    ]);
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    Fleet {
        emulator,
        ec2,
        direct,
        instance_ids: launched.into_iter().map(|i| i.id).collect(),
        config,
    }
}

/// The function's pacing for a proxy with `faults`: the whole of EC2's bucket at the proxy's
/// time scale, or, where the proxy does not throttle, a bucket that never makes a call wait.
fn pacing_for(faults: &Faults) -> BucketSize {
    match faults.throttle_time_scale {
        Some(scale) => BucketSize::share_of_ec2(EC2_REFILL_PER_SECOND * scale, 1.0),
        None => BucketSize {
            burst: 10_000.0,
            refill_per_second: 10_000.0,
        },
    }
}

impl Fleet {
    /// A handler context whose clients go through `proxy` with the function's retry settings.
    async fn context_via(&self, proxy: &FaultProxy) -> Context {
        let via_proxy = self
            .emulator
            .loader(&proxy.endpoint())
            .retry_config(function::context::retry_config())
            .load()
            .await;
        let mut ctx = Context::new(&via_proxy, self.config.clone());
        // The emulator's reads see its writes at once; no need to wait seconds as on AWS.
        ctx.settle = Duration::from_millis(20);
        ctx.pacer = Pacer::new(pacing_for(proxy.faults()));
        ctx
    }
}

/// Launches the fleet directly, then runs the function through a proxy injecting `faults`.
async fn run_through(faults: Faults) -> Outcome {
    run_fleet_through(INSTANCES, faults).await
}

async fn run_fleet_through(instances: usize, faults: Faults) -> Outcome {
    let setup = fleet(instances, "faults").await;
    let proxy = FaultProxy::start(setup.emulator.port(), faults).unwrap();
    let ctx = setup.context_via(&proxy).await;
    let ec2 = &setup.ec2;
    let started = Instant::now();
    let result = handler::handle(
        &ctx,
        &json!({"action": "backup"}),
        time::OffsetDateTime::now_utc(),
    )
    .await;
    let elapsed = started.elapsed();
    let (report, failed_run) = match result {
        Ok(report) => (report, false),
        // Failures are reported after publishing; the error carries the whole report.
        Err(FunctionError::RunFailed(report)) => (*report, true),
        Err(other) => panic!("the run did not complete: {other}"),
    };

    let snapshots = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    let mut per_instance = BTreeMap::new();
    for snapshot in snapshots.snapshots() {
        let instance = snapshot
            .tags()
            .iter()
            .find(|t| t.key() == Some(function::tags::INSTANCE_ID))
            .and_then(|t| t.value())
            .unwrap()
            .to_owned();
        *per_instance.entry(instance).or_insert(0) += 1;
    }
    Outcome {
        report,
        failed_run,
        elapsed,
        snapshots_per_instance: per_instance,
        instance_ids: setup.instance_ids.clone(),
        proxy: proxy.counts(),
    }
}

/// Every instance is snapshotted exactly once (both volumes) or reported as failed.
fn assert_none_lost_or_duplicated(outcome: &Outcome) {
    let failed: Vec<String> = outcome
        .report
        .failed
        .iter()
        .filter_map(|f| match &f.subject {
            Some(Subject::Instance(id)) => Some(id.clone()),
            _ => None,
        })
        .collect();
    for id in &outcome.instance_ids {
        let snapshots = outcome.snapshots_per_instance.get(id).copied().unwrap_or(0);
        if failed.contains(id) {
            assert_eq!(snapshots, 0, "{id} is reported failed but has snapshots");
        } else {
            assert_eq!(
                snapshots, 2,
                "{id}: expected one snapshot per volume, found {snapshots}"
            );
        }
    }
    assert_eq!(
        outcome.report.created.len() + 2 * failed.len(),
        2 * outcome.instance_ids.len(),
        "every instance is accounted for"
    );
    assert_eq!(
        outcome.failed_run,
        !failed.is_empty(),
        "the run errors exactly when something failed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_token_buckets_are_paced_and_no_instance_fails_for_throttling() {
    // 300 instances, three times EC2's burst, through EC2's buckets with refills three times
    // as fast (CreateSnapshots: 100 at once, then 15/s); the function paces to the same.
    let (instances, scale) = (300, 3.0);
    let faults = Faults {
        throttle_time_scale: Some(scale),
        ..Faults::default()
    };
    let minimum = pacing_for(&faults).minimum_time(instances).as_secs_f64();
    let outcome = run_fleet_through(instances, faults).await;
    assert_none_lost_or_duplicated(&outcome);
    assert!(
        outcome.report.failed.is_empty(),
        "no instance fails for throttling: {:?}",
        outcome.report.failed
    );
    assert_eq!(outcome.report.created.len(), 2 * instances);
    let throttled: u64 = outcome.proxy.throttled.values().sum();
    eprintln!(
        "token buckets: {instances} CreateSnapshots, {throttled} throttled answers; run took {:.2} s, \
         the bucket's theoretical minimum is {minimum:.2} s ({:.2}x)",
        outcome.elapsed.as_secs_f64(),
        outcome.elapsed.as_secs_f64() / minimum
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_of_500_and_503_answers_is_retried() {
    let outcome = run_through(Faults {
        error_share: 0.2,
        ..Faults::default()
    })
    .await;
    assert_none_lost_or_duplicated(&outcome);
    assert!(outcome.proxy.errored > 20, "{:?}", outcome.proxy);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_responses_still_complete() {
    let outcome = run_through(Faults {
        delay: Duration::from_millis(40),
        ..Faults::default()
    })
    .await;
    assert_none_lost_or_duplicated(&outcome);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_connections_are_retried() {
    let outcome = run_through(Faults {
        reset_share: 0.15,
        ..Faults::default()
    })
    .await;
    assert_none_lost_or_duplicated(&outcome);
    assert!(outcome.proxy.reset > 10, "{:?}", outcome.proxy);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_lost_after_ec2_acted_make_no_second_set() {
    let outcome = run_through(Faults {
        lost_answer_share: 0.15,
        ..Faults::default()
    })
    .await;
    assert_none_lost_or_duplicated(&outcome);
    assert!(
        outcome.report.failed.is_empty(),
        "{:?}",
        outcome.report.failed
    );
    let lost = outcome
        .proxy
        .lost
        .get("CreateSnapshots")
        .copied()
        .unwrap_or(0);
    assert!(lost > 10, "{:?}", outcome.proxy);
    let sent = outcome
        .proxy
        .forwarded
        .get("CreateSnapshots")
        .copied()
        .unwrap_or(0);
    eprintln!(
        "lost answers: {lost} of {sent} CreateSnapshots answers lost after the emulator acted; \
         {} snapshots reported, none duplicated",
        outcome.report.created.len()
    );
    // Every created snapshot is reported with its id, found again when its answer was lost.
    assert!(
        outcome
            .report
            .created
            .iter()
            .all(|c| c.snapshot_id.is_some()),
        "{:?}",
        outcome.report.created
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_instance_is_reported_and_a_retry_creates_no_duplicates() {
    let setup = fleet(10, "partial").await;
    let doomed = setup.instance_ids[3].clone();

    // First run: the instance fails as if terminated mid-run.
    let proxy = FaultProxy::start(
        setup.emulator.port(),
        Faults {
            failing_instance: Some(doomed.clone()),
            ..Faults::default()
        },
    )
    .unwrap();
    let ctx = setup.context_via(&proxy).await;
    let now = time::OffsetDateTime::now_utc();
    let error = handler::handle(&ctx, &json!({"action": "backup"}), now)
        .await
        .unwrap_err();
    let FunctionError::RunFailed(report) = &error else {
        panic!("expected RunFailed, got {error}");
    };
    assert_eq!(report.created.len(), 18, "the nine others are done");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(
        report.failed[0].subject,
        Some(Subject::Instance(doomed.clone()))
    );
    assert_eq!(report.failed[0].code, "IncorrectState");
    let messages = setup.emulator.sns_messages().unwrap();
    assert_eq!(
        messages.len(),
        1,
        "the summary was published before the error"
    );
    assert_eq!(
        messages[0].subject.as_deref(),
        Some("SmartVault [partial]: 18 created, 0 deleted, 1 failed")
    );
    assert!(messages[0].message.contains(&format!(
        "instance {doomed}: CreateSnapshots failed: IncorrectState"
    )));

    // The retry (the cause fixed): only the failed instance is backed up, nobody twice.
    let ctx = Context::new(&setup.direct, setup.config.clone());
    let retried = handler::handle(
        &ctx,
        &json!({"action": "backup"}),
        now + time::Duration::minutes(2),
    )
    .await
    .unwrap();
    assert_eq!(retried.created.len(), 2);
    assert!(retried.created.iter().all(|c| c.instance_id == doomed));
    let snapshots = setup
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert_eq!(
        snapshots.snapshots().len(),
        20,
        "one snapshot per volume, no duplicates"
    );
}
