//! A run that outlasts one invocation, end to end: the real `bootstrap` under the local runtime,
//! which answers its Invoke calls to itself, through the fault proxy's time-scaled EC2 buckets.
//! Correctness only (figures are for `cargo xtask bench`): every instance backed up exactly
//! once over several links, none failed for throttling, one summary, the chain ended.

use crate::build::local_runtime::{self, Ending, Run};
use emulator::Emulator;
use emulator::fleet;
use emulator::proxy::{FaultProxy, Faults};
use std::collections::BTreeMap;
use std::time::Duration;

const FUNCTION: &str = "smartvault-chain";

/// The environment of a function that reaches EC2 and SNS through `proxy`.
fn function_env(
    emulator: &Emulator,
    proxy: &FaultProxy,
    topic: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = emulator.env_through(&proxy.endpoint());
    env.push(("SNS_TOPIC_ARN".into(), topic.to_owned()));
    env.push(("DEPLOYMENT".into(), FUNCTION.into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// A fleet to back up through EC2's buckets, time-scaled: the emulator with `instances`
/// two-volume instances tagged for backup and the function's topic, and a fault proxy whose
/// buckets refill `scale` times as fast as EC2's. The proxy goes first, then the emulator.
struct Scene {
    proxy: FaultProxy,
    runtime: tokio::runtime::Runtime,
    ec2: aws_sdk_ec2::Client,
    sns: aws_sdk_sns::Client,
    topic: String,
    emulator: Emulator,
}

fn scene(instances: usize, scale: f64) -> Scene {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (ec2, sns, topic) = runtime.block_on(async {
        let sdk = emulator.sdk_config().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        fleet::launch_all(&ec2, &fleet::two_volume_fleet(instances))
            .await
            .unwrap();
        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic = sns.create_topic().name(FUNCTION).send().await.unwrap();
        (ec2, sns, topic.topic_arn().unwrap().to_owned())
    });
    let proxy = FaultProxy::start(
        emulator.port(),
        Faults {
            throttle_time_scale: Some(scale),
            ..Faults::default()
        },
    )
    .unwrap();
    Scene {
        proxy,
        runtime,
        ec2,
        sns,
        topic,
        emulator,
    }
}

/// Runs `event` on the real `bootstrap` under the local runtime, each link `timeout` long,
/// until the run's last link.
fn invoke(
    binary: &std::path::Path,
    env: &[(String, String)],
    event: &serde_json::Value,
    timeout: Duration,
) -> local_runtime::Invocation {
    local_runtime::invoke(&Run {
        binary,
        function_name: FUNCTION,
        memory_mb: 256,
        timeout,
        region: emulator::REGION,
        account_id: emulator::ACCOUNT_ID,
        env: env.to_vec(),
        event,
        logs: local_runtime::Logs::Raw,
    })
    .unwrap()
}

/// How many of the account's snapshots there are of each key `of` gives (a volume, a volume
/// and schedule, ...).
fn count_snapshots(
    runtime: &tokio::runtime::Runtime,
    ec2: &aws_sdk_ec2::Client,
    of: impl Fn(&aws_sdk_ec2::types::Snapshot) -> String,
) -> BTreeMap<String, usize> {
    runtime.block_on(async {
        let mut pages = ec2
            .describe_snapshots()
            .owner_ids("self")
            .into_paginator()
            .send();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            for snapshot in page.unwrap().snapshots() {
                *counts.entry(of(snapshot)).or_default() += 1;
            }
        }
        counts
    })
}

#[test]
fn a_fleet_past_the_burst_is_backed_up_once_over_several_links() {
    // 300 instances with two volumes: the burst of 100 covers a third. Buckets refill three
    // times as fast as EC2's (15 per second); each invocation has 12 seconds, of which reading
    // the inventory takes a few on this emulator and the safety margin five.
    let (instances, scale) = (300, 3.0);
    let Scene {
        proxy,
        runtime,
        ec2,
        sns,
        topic,
        emulator,
    } = scene(instances, scale);
    let refill = (5.0 * scale).to_string();
    let env = function_env(
        &emulator,
        &proxy,
        &topic,
        &[
            ("EC2_RATE_SHARE", "100"),
            ("EC2_REFILL_PER_SECOND", &refill),
            ("MIN_INTERVAL_MINUTES", "0"),
        ],
    );
    let binary = crate::workflows::invoke::host_bootstrap().unwrap();
    let last = invoke(
        &binary,
        &env,
        &serde_json::json!({"action": "backup"}),
        Duration::from_secs(12),
    );

    // The chain ended with a successful last link that speaks for the whole run.
    let Ending::Response(result) = &last.ending else {
        panic!("the last link did not succeed: {:?}", last.ending);
    };
    assert!(last.links >= 3, "several links: {}", last.links);
    assert_eq!(result["links"], last.links);
    assert_eq!(result["handed_on"], false);
    assert_eq!(result["counts"]["created"], 2 * instances);
    assert_eq!(result["counts"]["failed"], 0, "none failed: {result}");

    // Every volume exactly once.
    let per_volume = count_snapshots(&runtime, &ec2, |s| s.volume_id().unwrap().to_owned());
    assert_eq!(per_volume.len(), 2 * instances, "every volume is backed up");
    assert!(
        per_volume.values().all(|n| *n == 1),
        "none twice: {:?}",
        per_volume
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );

    // One summary, from the last link, for the whole run.
    let messages = emulator.sns_messages().unwrap();
    assert_eq!(messages.len(), 1, "intermediate links publish nothing");
    assert_eq!(
        messages[0].subject.as_deref(),
        Some("SmartVault [smartvault-chain]: 600 created, 0 deleted, 0 failed")
    );
    assert!(
        messages[0]
            .message
            .contains(&format!("over {} invocations", last.links)),
        "{}",
        messages[0].message
    );
    // The mark that kept other runs from starting meanwhile is gone with the run.
    let tags = runtime.block_on(async {
        sns.list_tags_for_resource()
            .resource_arn(&topic)
            .send()
            .await
            .unwrap()
    });
    assert!(
        tags.tags()
            .iter()
            .all(|t| !t.key().starts_with(function::run_mark::TAG_PREFIX)),
        "{:?}",
        tags.tags()
    );
    eprintln!(
        "chain: {instances} instances in {} links; throttled answers: {}",
        last.links,
        proxy.counts().throttled.values().sum::<u64>()
    );
}

#[test]
fn a_weekly_run_while_a_daily_run_spans_links_makes_its_own_set() {
    // A daily run over several links (a small share of a time-scaled bucket), and the weekly
    // run EventBridge Scheduler fires while it goes on: the weekly run is not deferred to the
    // daily one's mark, and both schedules' sets exist, every volume once each.
    let (instances, scale) = (30, 3.0);
    let Scene {
        proxy,
        runtime,
        ec2,
        sns,
        topic,
        emulator,
    } = scene(instances, scale);
    // EC2's rate, time-scaled like the proxy's buckets, of which the function takes a tenth:
    // a burst of 10 and 1.5 calls a second, so 30 instances take several 10-second links.
    let refill = (5.0 * scale).to_string();
    let env = function_env(
        &emulator,
        &proxy,
        &topic,
        &[
            ("EC2_RATE_SHARE", "10"),
            ("EC2_REFILL_PER_SECOND", &refill),
            ("MIN_INTERVAL_MINUTES", "0"),
            (
                "SCHEDULES",
                r#"[{"name": "daily", "retention_days": 7, "keep_last": 7},
                    {"name": "weekly", "retention_days": 35, "keep_last": 4}]"#,
            ),
        ],
    );
    let binary = crate::workflows::invoke::host_bootstrap().unwrap();
    let run = |schedule: &str| {
        let event = serde_json::json!({"action": "scheduled", "schedule": schedule});
        invoke(&binary, &env, &event, Duration::from_secs(10))
    };
    let daily_mark = || {
        runtime.block_on(async {
            sns.list_tags_for_resource()
                .resource_arn(&topic)
                .send()
                .await
                .unwrap()
                .tags()
                .iter()
                .any(|t| t.key() == function::run_mark::tag("daily"))
        })
    };
    let (daily, weekly) = std::thread::scope(|scope| {
        let daily = scope.spawn(|| run("daily"));
        // The weekly run fires once the daily run has handed on (its mark is on the topic).
        let started = std::time::Instant::now();
        while !daily_mark() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the daily run never handed on"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let weekly = run("weekly");
        (daily.join().unwrap(), weekly)
    });
    for (name, last) in [("daily", &daily), ("weekly", &weekly)] {
        let Ending::Response(result) = &last.ending else {
            panic!("the {name} run did not succeed: {:?}", last.ending);
        };
        assert_eq!(
            result["deferred_to"],
            serde_json::Value::Null,
            "{name}: {result}"
        );
        assert_eq!(
            result["counts"]["created"],
            2 * instances,
            "{name}: {result}"
        );
        assert_eq!(result["counts"]["failed"], 0, "{name}: {result}");
    }
    assert!(
        daily.links >= 2,
        "the daily run spanned links: {}",
        daily.links
    );

    // Each volume once per schedule.
    let per_schedule = count_snapshots(&runtime, &ec2, |snapshot| {
        let schedule = snapshot
            .tags()
            .iter()
            .find(|t| t.key() == Some(function::tags::SCHEDULE))
            .and_then(|t| t.value())
            .unwrap_or_default();
        format!("{} {schedule}", snapshot.volume_id().unwrap())
    });
    assert_eq!(per_schedule.len(), 2 * 2 * instances, "{per_schedule:?}");
    assert!(per_schedule.values().all(|n| *n == 1), "{per_schedule:?}");
    // Two summaries, one per schedule's run; no mark left.
    assert_eq!(emulator.sns_messages().unwrap().len(), 2);
    assert!(!daily_mark());
}
