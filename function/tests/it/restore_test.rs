//! Restore testing end to end against the emulator: a backed-up fleet's newest sets are restored
//! to volumes in their zones, as they were, and deleted; the sample goes round the fleet; a
//! refused `CreateVolume` (injected) fails the test in the summary and the metrics.

use crate::common::{Setup, setup};
use aws_sdk_ec2::types::{Filter, Volume};
use emulator::fleet::{self, InstanceSpec};
use emulator::proxy::{FaultProxy, Faults};
use function::config::Config;
use function::context::{Context, FunctionError};
use function::handler;
use function::report::{RunReport, TestStatus};
use function::{restore_records, restore_test, tags};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

const SETTINGS: &str = r#"{"sample": 2, "max_wait_seconds": 60}"#;

impl Setup {
    /// The configuration of deployment `prod`, with `restore_test` settings when given.
    fn restore_test_config(&self, restore_test: Option<&str>) -> Config {
        match restore_test {
            Some(settings) => self.config("prod", &[("RESTORE_TEST", settings)]),
            None => self.config("prod", &[]),
        }
    }

    fn context_with(&self, sdk: &aws_config::SdkConfig) -> Context {
        let mut ctx = Context::new(sdk, self.restore_test_config(Some(SETTINGS)));
        ctx.poll = std::time::Duration::from_millis(50);
        ctx
    }

    /// Every volume in the account carrying the restore-test tag, in any state.
    async fn test_volumes(&self) -> Vec<Volume> {
        self.ec2
            .describe_volumes()
            .filters(
                Filter::builder()
                    .name(format!("tag:{}", restore_test::TAG))
                    .values("prod")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .volumes()
            .to_vec()
    }
}

/// Three instances of three volumes each (root, two data), backed up once.
async fn backed_up_fleet(s: &Setup) -> Vec<String> {
    let launched = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("web-1").data_volumes(2),
            InstanceSpec::backup("web-2").data_volumes(2),
            InstanceSpec::backup("db-1").data_volumes(2),
        ],
    )
    .await
    .unwrap();
    let ctx = s.context_with(&s.sdk);
    let made = handler::handle(
        &ctx,
        &json!({"action": "backup"}),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(made.created.len(), 9);
    let mut ids: Vec<String> = launched.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids
}

fn tested(report: &RunReport) -> Vec<&str> {
    report
        .restore_tests
        .iter()
        .map(|t| t.instance_id.as_str())
        .collect()
}

#[tokio::test]
async fn sampled_sets_are_restored_in_their_zone_as_they_were_then_deleted_and_the_sample_goes_round()
 {
    let s = setup().await;
    let ids = backed_up_fleet(&s).await;
    // Every call through a proxy that only counts, so the volumes made can be counted.
    let proxy = FaultProxy::start(s.emulator.port(), Faults::default()).unwrap();
    let via_proxy = s.emulator.loader(&proxy.endpoint()).load().await;
    let ctx = s.context_with(&via_proxy);

    let first = handler::handle(
        &ctx,
        &json!({"action": "restore-test"}),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(tested(&first), [ids[0].as_str(), ids[1].as_str()]);
    for test in &first.restore_tests {
        assert_eq!(test.status, TestStatus::Passed, "{test:?}");
        assert_eq!(test.volumes, 3);
        assert!(
            test.availability_zone.starts_with(emulator::REGION),
            "{test:?}"
        );
        assert!(test.slowest_ms.is_some());
    }
    let counts = proxy.counts();
    assert_eq!(
        counts.forwarded.get("CreateVolume"),
        Some(&6),
        "one per snapshot"
    );
    assert_eq!(
        counts.forwarded.get("DeleteVolume"),
        Some(&6),
        "and each deleted"
    );
    assert!(s.test_volumes().await.is_empty(), "no test volume is left");

    // The next test goes on with the instance after the last one sampled, and wraps around:
    // two tests cover the fleet.
    let second = handler::handle(
        &ctx,
        &json!({"action": "restore-test"}),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(tested(&second), [ids[2].as_str(), ids[0].as_str()]);
    let all: BTreeSet<&str> = tested(&first).into_iter().chain(tested(&second)).collect();
    assert_eq!(all.len(), 3, "every instance tested within two tests");

    // Named instances are tested whatever the sample, and the summary says so.
    let named = handler::handle(
        &ctx,
        &json!({"action": "restore-test", "instance_ids": [ids[1]]}),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(tested(&named), [ids[1].as_str()]);
    let messages = s.emulator.sns_messages().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(
        last.subject.as_deref(),
        Some("SmartVault [prod] restore test: 1 passed, 0 failed")
    );
    assert!(
        last.message.contains(&format!("  {}: set of ", ids[1]))
            && last.message.contains("PASSED, available in"),
        "{}",
        last.message
    );
}

#[tokio::test]
async fn a_test_volume_is_made_from_the_snapshot_with_the_recorded_settings_and_tagged_at_creation()
{
    let s = setup().await;
    let ids = backed_up_fleet(&s).await;
    // Keep the volumes: delete is refused, so what CreateVolume made can be read back.
    let proxy = FaultProxy::start(
        s.emulator.port(),
        Faults {
            refused_action: Some("DeleteVolume".into()),
            ..Faults::default()
        },
    )
    .unwrap();
    let ctx = s.context_with(&s.emulator.loader(&proxy.endpoint()).load().await);
    let Err(FunctionError::RunFailed(report)) = handler::handle(
        &ctx,
        &json!({"action": "restore-test", "instance_ids": [ids[0]]}),
        OffsetDateTime::now_utc(),
    )
    .await
    else {
        panic!("a refused delete is a failure of the run");
    };
    assert_eq!(
        report.restore_tests[0].status,
        TestStatus::Passed,
        "the restore worked"
    );
    assert_eq!(report.failed.len(), 3, "{:?}", report.failed);
    assert!(
        report.failed.iter().all(
            |f| f.operation == "DeleteVolume" && f.message.contains("the next test deletes it")
        )
    );

    // Each volume is its snapshot's: zone, size and the volume record's type.
    let snapshots = s
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    let by_id: BTreeMap<&str, &aws_sdk_ec2::types::Snapshot> = snapshots
        .snapshots()
        .iter()
        .map(|snap| (snap.snapshot_id().unwrap(), snap))
        .collect();
    let volumes = s.test_volumes().await;
    assert_eq!(volumes.len(), 3);
    for volume in &volumes {
        let tag = |key: &str| {
            volume
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(tag(tags::INSTANCE_ID), ids[0]);
        let snapshot = by_id[volume.snapshot_id().unwrap()];
        assert_eq!(tag(tags::RESTORED_FROM), snapshot.snapshot_id().unwrap());
        let snap_tag = |key: &str| {
            snapshot
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            volume.availability_zone().unwrap(),
            snap_tag(restore_records::AVAILABILITY_ZONE)
        );
        assert_eq!(volume.size(), snapshot.volume_size());
        let record = restore_records::VolumeRecord::parse(&snap_tag(
            &restore_records::VolumeRecord::key(snapshot.volume_id().unwrap()),
        ))
        .unwrap();
        assert_eq!(
            volume.volume_type().map(|t| t.as_str()),
            record.details.volume_type.as_deref()
        );
    }

    // The next test deletes what this one left, and says so.
    let direct = s.context_with(&s.sdk);
    let next = handler::handle(
        &direct,
        &json!({"action": "restore-test", "instance_ids": [ids[1]]}),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(
        next.warnings
            .iter()
            .any(|w| w.starts_with("deleted 3 restore test volume(s) an earlier test left")),
        "{:?}",
        next.warnings
    );
    assert!(s.test_volumes().await.is_empty());
}

#[tokio::test]
async fn a_refused_restore_fails_the_test_in_the_summary_and_the_metrics_and_leaves_nothing() {
    let s = setup().await;
    backed_up_fleet(&s).await;
    let proxy = FaultProxy::start(
        s.emulator.port(),
        Faults {
            refused_action: Some("CreateVolume".into()),
            ..Faults::default()
        },
    )
    .unwrap();
    let ctx = s.context_with(&s.emulator.loader(&proxy.endpoint()).load().await);
    let Err(FunctionError::RunFailed(report)) = handler::handle(
        &ctx,
        &json!({"action": "restore-test"}),
        OffsetDateTime::now_utc(),
    )
    .await
    else {
        panic!("a refused restore is a failed run");
    };
    assert_eq!(report.restore_tests.len(), 2);
    assert!(
        report
            .restore_tests
            .iter()
            .all(|t| t.status == TestStatus::Failed && t.slowest_ms.is_none())
    );
    assert_eq!(
        report.failed.len(),
        6,
        "one per snapshot: {:?}",
        report.failed
    );
    for failure in &report.failed {
        assert_eq!(failure.operation, "CreateVolume");
        assert!(
            failure.message.contains("restoring this snapshot in"),
            "{failure:?}"
        );
    }
    let metrics = report.metrics(0);
    assert_eq!(metrics["RestoreTestsFailed"], 2);
    assert_eq!(metrics["RestoreTestsPassed"], 0);
    let messages = s.emulator.sns_messages().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(
        last.subject.as_deref(),
        Some("SmartVault [prod] restore test: 0 passed, 6 failed")
    );
    assert!(last.message.contains("FAILED (see the failures below)"));
    assert!(last.message.contains("FAILED 6:"), "{}", last.message);
    assert!(s.test_volumes().await.is_empty());
}

#[tokio::test]
async fn a_dry_run_restores_nothing_and_a_deployment_without_a_restore_test_refuses_the_action() {
    let s = setup().await;
    backed_up_fleet(&s).await;
    let proxy = FaultProxy::start(s.emulator.port(), Faults::default()).unwrap();
    let ctx = s.context_with(&s.emulator.loader(&proxy.endpoint()).load().await);
    let dry = handler::handle(
        &ctx,
        &json!({"action": "restore-test", "dry_run": true}),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(dry.restore_tests.len(), 2);
    assert!(
        dry.restore_tests
            .iter()
            .all(|t| t.status == TestStatus::Planned)
    );
    let counts = proxy.counts();
    assert_eq!(counts.forwarded.get("CreateVolume"), None);
    assert_eq!(
        counts.forwarded.get("TagResource"),
        None,
        "the cursor stays"
    );

    let without = Context::new(&s.sdk, s.restore_test_config(None));
    let Err(FunctionError::InvalidEvent(refused)) = handler::handle(
        &without,
        &json!({"action": "restore-test"}),
        OffsetDateTime::now_utc(),
    )
    .await
    else {
        panic!("no restore test is configured");
    };
    assert!(
        refused
            .to_string()
            .contains("add `restore_test:` to its environment"),
        "{refused}"
    );
}
