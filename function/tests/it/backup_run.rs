//! The handler end to end against the moto emulator, reading the SNS summary back.

use crate::common::{Setup, setup};
use aws_sdk_ec2::types::Filter;
use emulator::fleet::{self, FleetInstance, InstanceSpec};
use function::context::{Context, FunctionError};
use function::handler;
use function::pacing::{BucketSize, Pacer};
use function::report::RunReport;
use function::tags;
use serde_json::json;
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

impl Setup {
    /// This deployment's snapshots by volume id.
    async fn managed_snapshots(
        &self,
        deployment: &str,
    ) -> BTreeMap<String, Vec<aws_sdk_ec2::types::Snapshot>> {
        let output = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name(format!("tag:{}", tags::MANAGED_BY))
                    .values(deployment)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut by_volume: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for snapshot in output.snapshots() {
            by_volume
                .entry(snapshot.volume_id().unwrap().to_owned())
                .or_default()
                .push(snapshot.clone());
        }
        by_volume
    }

    async fn snapshot_exists(&self, id: &str) -> bool {
        let all = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap();
        all.snapshots().iter().any(|s| s.snapshot_id() == Some(id))
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn tag<'a>(snapshot: &'a aws_sdk_ec2::types::Snapshot, key: &str) -> Option<&'a str> {
    snapshot
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

async fn run(ctx: &Context, event: serde_json::Value, at: OffsetDateTime) -> RunReport {
    handler::handle(ctx, &event, at)
        .await
        .unwrap_or_else(|e| panic!("the run failed: {e}"))
}

fn all_volumes(fleet: &[FleetInstance]) -> Vec<String> {
    let mut volumes: Vec<String> = fleet.iter().flat_map(|i| i.volume_ids.clone()).collect();
    volumes.sort();
    volumes
}

#[tokio::test]
async fn every_volume_of_every_tagged_instance_is_snapshotted_and_summarised() {
    let s = setup().await;
    let tagged = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("web-1"),
            InstanceSpec::backup("web-2").data_volumes(1),
            InstanceSpec::untagged("db-1")
                .data_volumes(2)
                .tag("Backup", "True"),
            InstanceSpec::backup("batch").data_volumes(1).stopped(),
        ],
    )
    .await
    .unwrap();
    let untagged = fleet::launch(&s.ec2, &InstanceSpec::untagged("scratch").data_volumes(1))
        .await
        .unwrap();
    let ctx = s.context("prod");

    let report = run(&ctx, json!({"action": "manual-trigger"}), now()).await;

    let expected = all_volumes(&tagged);
    let managed = s.managed_snapshots("prod").await;
    assert_eq!(
        managed.keys().cloned().collect::<Vec<_>>(),
        expected,
        "one snapshot per volume of each tagged instance"
    );
    assert!(untagged.volume_ids.iter().all(|v| !managed.contains_key(v)));
    assert_eq!(report.created.len(), expected.len());
    assert_eq!(report.tagged_instances, 4);
    assert!(report.failed.is_empty(), "{:?}", report.failed);

    for instance in &tagged {
        for volume in &instance.volume_ids {
            let snapshot = &managed[volume][0];
            assert_eq!(tag(snapshot, tags::MANAGED_BY), Some("prod"));
            assert_eq!(tag(snapshot, tags::INSTANCE_ID), Some(instance.id.as_str()));
            assert!(tag(snapshot, tags::CREATED_AT).is_some());
            assert!(tag(snapshot, tags::EXPIRES_AT).is_some());
            assert!(
                tag(snapshot, tags::NAME)
                    .unwrap()
                    .starts_with(&instance.name)
            );
        }
    }

    let messages = s.emulator.sns_messages().unwrap();
    assert_eq!(messages.len(), 1, "one summary per run");
    assert_eq!(messages[0].topic_arn, s.topic_arn);
    assert_eq!(
        messages[0].subject.as_deref(),
        Some(
            format!(
                "SmartVault [prod]: {} created, 0 deleted, 0 failed",
                expected.len()
            )
            .as_str()
        )
    );
    for volume in &expected {
        assert!(
            messages[0].message.contains(volume.as_str()),
            "{volume} missing from:\n{}",
            messages[0].message
        );
    }
}

#[tokio::test]
async fn a_second_run_within_the_interval_creates_nothing() {
    let s = setup().await;
    fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("a").data_volumes(1),
            InstanceSpec::backup("b"),
        ],
    )
    .await
    .unwrap();
    let ctx = s.context("prod");
    let first = run(&ctx, json!({"action": "backup"}), now()).await;
    assert_eq!(first.created.len(), 3);

    let second = run(
        &ctx,
        json!({"action": "backup"}),
        now() + Duration::minutes(5),
    )
    .await;
    assert!(second.created.is_empty());
    assert_eq!(second.skipped.len(), 2);
    assert!(
        second
            .skipped
            .iter()
            .all(|s| s.reason.contains("MIN_INTERVAL_MINUTES=60"))
    );
    let total: usize = s
        .managed_snapshots("prod")
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(total, 3, "no duplicates");

    let forced = run(
        &ctx,
        json!({"action": "backup", "force": true}),
        now() + Duration::minutes(5),
    )
    .await;
    assert_eq!(forced.created.len(), 3, "force ignores the interval");
}

#[tokio::test]
async fn expired_snapshots_are_deleted_and_nobody_elses_are_touched() {
    let s = setup().await;
    let fleet = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("a").data_volumes(1),
            InstanceSpec::backup("b"),
        ],
    )
    .await
    .unwrap();
    let by_hand = fleet::snapshot_by_hand(
        &s.ec2,
        &fleet[0].volume_ids[0],
        &[("CreatedOn", "2020-01-01")],
    )
    .await
    .unwrap();
    // Another backup tool's snapshot, even one carrying SmartVault's instance-id tag.
    let other_tool = fleet::snapshot_by_hand(
        &s.ec2,
        &fleet[1].volume_ids[0],
        &[
            ("dlm:managed", "true"),
            ("Name", "nightly"),
            (tags::INSTANCE_ID, &fleet[1].id),
        ],
    )
    .await
    .unwrap();
    let prod = s.context("prod");
    let other = s.context("staging");
    let start = now();
    run(&prod, json!({"action": "backup"}), start).await;
    run(&prod, json!({"action": "backup", "force": true}), start).await;
    run(&other, json!({"action": "backup"}), start).await;
    let before = s.managed_snapshots("prod").await;
    assert!(before.values().all(|snapshots| snapshots.len() == 2));

    // Thirty days on, every prod snapshot has expired; the newest of each volume is kept.
    let later = run(
        &prod,
        json!({"action": "cleanup"}),
        start + Duration::days(30),
    )
    .await;
    assert!(later.failed.is_empty(), "{:?}", later.failed);
    assert_eq!(later.deleted.len(), 3, "{later:#?}");
    let after = s.managed_snapshots("prod").await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(
        after.values().all(|snapshots| snapshots.len() == 1),
        "keep-last 1 per volume"
    );
    assert!(
        s.snapshot_exists(&by_hand).await,
        "the hand-made CreatedOn snapshot survives"
    );
    let staging: usize = s
        .managed_snapshots("staging")
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(staging, 3, "another deployment's snapshots are untouched");

    // Once the volumes are gone, their snapshots expire by age alone.
    for instance in &fleet {
        s.ec2
            .terminate_instances()
            .instance_ids(&instance.id)
            .send()
            .await
            .unwrap();
        for volume in &instance.volume_ids {
            // Detached volumes can be left behind by the emulator; delete them as AWS would.
            let _ = s.ec2.delete_volume().volume_id(volume).send().await;
        }
    }
    let gone = run(
        &prod,
        json!({"action": "cleanup"}),
        start + Duration::days(30),
    )
    .await;
    assert_eq!(gone.deleted.len(), 3, "{gone:#?}");
    assert!(s.managed_snapshots("prod").await.is_empty());
    assert!(s.snapshot_exists(&by_hand).await);
    assert!(
        s.snapshot_exists(&other_tool).await,
        "another tool's snapshot survives"
    );
    let subjects: Vec<_> = s
        .emulator
        .sns_messages()
        .unwrap()
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    assert_eq!(
        subjects.last().unwrap(),
        "SmartVault [prod]: 0 created, 3 deleted, 0 failed"
    );
}

#[tokio::test]
async fn more_instances_than_one_page_are_all_backed_up() {
    let s = setup().await;
    let specs: Vec<InstanceSpec> = (0..12)
        .map(|n| InstanceSpec::backup(&format!("node-{n}")))
        .collect();
    let fleet = fleet::launch_all(&s.ec2, &specs).await.unwrap();
    let mut ctx = s.context("prod");
    ctx.page_size = 5;
    s.emulator.start_recording().unwrap();
    let report = run(&ctx, json!({"action": "backup"}), now()).await;
    let actions = s.emulator.stop_recording().unwrap();
    assert_eq!(report.created.len(), 12);
    assert_eq!(s.managed_snapshots("prod").await.len(), fleet.len());
    let describes = actions.iter().filter(|a| *a == "DescribeInstances").count();
    assert_eq!(describes, 3, "12 instances in pages of 5: {actions:?}");
    let writes = actions.iter().filter(|a| *a == "CreateSnapshots").count();
    assert_eq!(writes, 12, "one CreateSnapshots per instance: {actions:?}");
    assert!(
        !actions
            .iter()
            .any(|a| a == "CreateTags" || a == "CreateSnapshot"),
        "no separate tagging call: {actions:?}"
    );
}

#[tokio::test]
async fn a_volume_with_more_tags_than_a_snapshot_takes_is_backed_up_with_those_that_fit() {
    let s = setup().await;
    let fleet = fleet::launch_all(&s.ec2, &[InstanceSpec::backup("db-1").data_volumes(1)])
        .await
        .unwrap();
    let crowded = &fleet[0].volume_ids[1];
    // A volume takes 50 tags at most, as a snapshot does; beside SmartVault's own six, the
    // seven restore records (five of the instance, its platform among them, one per volume)
    // and the four kept for what the tripwire records later, 33 fit.
    let many: Vec<aws_sdk_ec2::types::Tag> = (0..50)
        .map(|n| {
            aws_sdk_ec2::types::Tag::builder()
                .key(format!("k{n:02}"))
                .value("v")
                .build()
        })
        .collect();
    s.ec2
        .create_tags()
        .resources(crowded)
        .set_tags(Some(many))
        .send()
        .await
        .unwrap();
    s.emulator.start_recording().unwrap();
    let report = run(&s.context("prod"), json!({"action": "backup"}), now()).await;
    let actions = s.emulator.stop_recording().unwrap();

    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        report.created.len(),
        2,
        "the instance is backed up, not failed"
    );
    let dropped: Vec<String> = (31..50).map(|n| format!("k{n:02}")).collect();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains(crowded.as_str()) && w.ends_with(&dropped.join(", "))),
        "{:?}",
        report.warnings
    );
    let snapshots = s.managed_snapshots("prod").await;
    let snapshot = &snapshots[crowded.as_str()][0];
    let own: Vec<&str> = snapshot
        .tags()
        .iter()
        .filter_map(|t| t.key())
        .filter(|k| !k.starts_with("aws:"))
        .collect();
    assert_eq!(own.len(), function::tags::MAX_TAGS_AT_CREATION, "{own:?}");
    assert_eq!(tag(snapshot, function::tags::MANAGED_BY), Some("prod"));
    assert_eq!(tag(snapshot, function::tags::SCHEDULE), Some("default"));
    assert_eq!(tag(snapshot, "k30"), Some("v"));
    assert_eq!(tag(snapshot, "k31"), None);
    assert!(
        tag(snapshot, function::restore_records::PLATFORM).is_some(),
        "the platform is recorded: {own:?}"
    );
    // One CreateSnapshots for the instance; the tags that fit follow for the crowded volume's
    // snapshot only (the root volume has none of its own).
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();
    assert_eq!(
        (count("CreateSnapshots"), count("CreateTags")),
        (1, 1),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_says_so() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("a").data_volumes(2)])
        .await
        .unwrap();
    let ctx = s.context("prod");
    let report = run(
        &ctx,
        json!({"action": "manual-trigger", "dry_run": true}),
        now(),
    )
    .await;
    assert!(report.dry_run);
    assert_eq!(report.created.len(), 3);
    assert!(report.created.iter().all(|c| c.snapshot_id.is_none()));
    assert!(s.managed_snapshots("prod").await.is_empty());
    let message = &s.emulator.sns_messages().unwrap()[0];
    assert_eq!(
        message.subject.as_deref(),
        Some("SmartVault [prod] dry run: 3 to create, 0 to delete, 0 failed")
    );
    assert!(message.message.contains("DRY RUN"));
}

#[tokio::test]
async fn with_no_tagged_instance_the_summary_says_so() {
    let s = setup().await;
    fleet::launch(&s.ec2, &InstanceSpec::untagged("scratch"))
        .await
        .unwrap();
    let report = run(
        &s.context("prod"),
        json!({"action": "manual-trigger"}),
        now(),
    )
    .await;
    assert_eq!(report.tagged_instances, 0);
    let message = &s.emulator.sns_messages().unwrap()[0];
    assert!(
        message
            .message
            .contains("No instance is tagged Backup=true"),
        "{}",
        message.message
    );
}

#[tokio::test]
async fn instance_ids_limit_the_run_to_those_instances() {
    let s = setup().await;
    let fleet = fleet::launch_all(
        &s.ec2,
        &[InstanceSpec::backup("a"), InstanceSpec::backup("b")],
    )
    .await
    .unwrap();
    let ctx = s.context("prod");
    let report = run(
        &ctx,
        json!({"action": "backup", "instance_ids": [fleet[1].id]}),
        now(),
    )
    .await;
    assert_eq!(report.created.len(), 1);
    assert_eq!(report.created[0].instance_id, fleet[1].id);
}

#[tokio::test]
async fn an_invalid_event_is_refused_before_anything_is_done() {
    let s = setup().await;
    fleet::launch(&s.ec2, &InstanceSpec::backup("a"))
        .await
        .unwrap();
    let ctx = s.context("prod");
    let scheduled_with_options = r#"{"version": "0", "id": "1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-26T01:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {},
        "dry_run": true, "action": "cleanup", "instance_ids": ["i-12345678"]}"#;
    let refused = [
        (r#"{"action": "restore"}"#, "unknown variant `restore`"),
        (scheduled_with_options, "the scheduled event carries"),
        (
            r#"{"action": "backup", "dry_run": true, "dry_run": false}"#,
            "the key `dry_run` appears twice",
        ),
        (
            r#"{"action": "backup", "instance_ids": null}"#,
            "`instance_ids` is null",
        ),
        (r#"{"action": {"backup": null}}"#, "invalid type: map"),
        (
            r#"{"action": "scheduled", "schedule": "hourly"}"#,
            "`schedule` is \"hourly\", but this deployment's schedules are default",
        ),
    ];
    for (text, expected) in refused {
        let payload = function::event::Payload::from_json(text).unwrap();
        let error = handler::handle(&ctx, payload, now()).await.unwrap_err();
        assert!(matches!(error, FunctionError::InvalidEvent(_)), "{error}");
        assert_eq!(error.error_type(), "SmartVault.InvalidEvent");
        assert!(error.to_string().contains(expected), "{text}: {error}");
    }
    assert!(s.managed_snapshots("prod").await.is_empty());
    assert!(
        s.emulator.sns_messages().unwrap().is_empty(),
        "nothing is published for a refused event"
    );
}

#[tokio::test]
async fn near_misses_are_reported_and_change_nothing() {
    let s = setup().await;
    let fleet = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::untagged("lowercase").tag("backup", "true"),
            InstanceSpec::untagged("spaced").tag("Backup", "TRUE "),
            InstanceSpec::backup("yes-excluded")
                .data_volumes(1)
                .volume_tag(1, tags::VOLUME_EXCLUDE, "yes"),
        ],
    )
    .await
    .unwrap();
    let ctx = s.context("prod");
    let report = run(&ctx, json!({"action": "backup"}), now()).await;
    assert_eq!(
        s.managed_snapshots("prod")
            .await
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        all_volumes(&fleet[2..]),
        "only the correctly tagged instance is backed up, all its volumes"
    );
    assert_eq!(report.warnings.len(), 3, "{:#?}", report.warnings);
    let body = &s.emulator.sns_messages().unwrap()[0].message;
    for (instance, expected) in [
        (&fleet[0], "is not the backup tag \"Backup\""),
        (&fleet[1], "has spaces around \"true\""),
    ] {
        assert!(
            body.contains(&format!("instance {}: ", instance.id)) && body.contains(expected),
            "{expected}: {body}"
        );
    }
    assert!(
        body.contains("BackupExclude=\"yes\" is neither `true` nor `false`"),
        "{body}"
    );
}

/// The daily schedule's mark of a run going on, written at `written_at` (as a link that
/// hands on writes it), on the deployment's topic.
async fn mark_daily_run(s: &Setup, mark: &function::run_mark::RunMark) {
    aws_sdk_sns::Client::new(&s.sdk)
        .tag_resource()
        .resource_arn(&s.topic_arn)
        .tags(
            aws_sdk_sns::types::Tag::builder()
                .key(function::run_mark::tag("daily"))
                .value(mark.value())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

const DAILY_AND_WEEKLY: &str = r#"[
    {"name": "daily", "retention_days": 7, "keep_last": 1},
    {"name": "weekly", "retention_days": 35, "keep_last": 1}
]"#;

#[tokio::test]
async fn a_run_in_progress_keeps_only_its_own_schedule_from_starting_a_second_pass() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("a")])
        .await
        .unwrap();
    let mark = |written_at: OffsetDateTime| function::run_mark::RunMark {
        run_started_at: written_at - Duration::minutes(14),
        next_link: 2,
        written_at,
    };
    let ctx = Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", DAILY_AND_WEEKLY)]));
    let scheduled = |name: &str| json!({"action": "scheduled", "schedule": name});

    // A daily chain wrote its mark a minute ago: a daily run does not start beside it.
    let fresh = mark(now() - Duration::minutes(1));
    mark_daily_run(&s, &fresh).await;
    let deferred = run(&ctx, scheduled("daily"), now()).await;
    assert_eq!(
        deferred.deferred_to.as_deref(),
        Some(fresh.value().as_str())
    );
    assert!(deferred.created.is_empty());
    assert!(s.managed_snapshots("prod").await.is_empty());
    assert!(s.emulator.sns_messages().unwrap().is_empty());
    // The weekly run that fires meanwhile makes its own set: a week's set is never skipped
    // because a daily run is still going on.
    let weekly = run(&ctx, scheduled("weekly"), now()).await;
    assert_eq!(weekly.deferred_to, None);
    assert_eq!(weekly.schedule, "weekly");
    assert_eq!(weekly.created.len(), 1);
    let made = s.managed_snapshots("prod").await;
    let snapshot = made.values().next().unwrap().first().unwrap();
    assert_eq!(tag(snapshot, tags::SCHEDULE), Some("weekly"));
    assert_eq!(s.emulator.sns_messages().unwrap().len(), 1, "its summary");
    // A dry run writes nothing and may go ahead.
    let dry = run(
        &ctx,
        json!({"action": "backup", "schedule": "daily", "dry_run": true, "force": true}),
        now(),
    )
    .await;
    assert_eq!(dry.deferred_to, None);
    assert_eq!(dry.created.len(), 1);

    // A mark not renewed for thirty minutes is a chain that died: the next run goes ahead.
    mark_daily_run(&s, &mark(now() - function::run_mark::STALE_AFTER)).await;
    let report = run(&ctx, scheduled("daily"), now()).await;
    assert_eq!(report.deferred_to, None);
    assert_eq!(report.created.len(), 1);
}

#[tokio::test]
async fn only_the_continuation_the_function_handed_on_is_accepted() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("a")])
        .await
        .unwrap();
    let ctx = Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", DAILY_AND_WEEKLY)]));
    // Two real daily sets: keep_last 1 keeps the newest, the older one expires in 7 days.
    let first = run(
        &ctx,
        json!({"action": "backup", "schedule": "daily"}),
        now(),
    )
    .await;
    assert_eq!(first.created.len(), 1);
    let second = run(
        &ctx,
        json!({"action": "backup", "schedule": "daily", "force": true}),
        now(),
    )
    .await;
    assert_eq!(second.created.len(), 1);
    let before = s.managed_snapshots("prod").await;
    assert_eq!(before.values().map(Vec::len).sum::<usize>(), 2);
    let published = s.emulator.sns_messages().unwrap().len();

    let started = now() - Duration::minutes(14);
    let continuation = |job: &str, run_started_at: OffsetDateTime, number: u32, schedule: &str| {
        let link = function::event::Link {
            run_started_at,
            number,
            options: serde_json::from_value(json!({
                "job": job, "interval": "respect", "instance_ids": null, "schedule": schedule
            }))
            .unwrap(),
            dry_run: false,
            so_far: RunReport::new(
                "prod",
                false,
                function::model::Job::Backup,
                "Backup=true".into(),
                run_started_at,
            ),
        };
        link.event()
    };
    let refused = |result: Result<RunReport, FunctionError>| match result {
        Err(FunctionError::InvalidEvent(problem)) => problem.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let in_2099 = time::macros::datetime!(2099-01-01 00:00 UTC);
    // No run is going on: every continuation is forged, whatever it claims.
    for (event, expected) in [
        (
            continuation("cleanup", in_2099, 2, "daily"),
            "cannot go on before it started",
        ),
        (
            continuation("backup", in_2099, 2, "daily"),
            "cannot go on before it started",
        ),
        (
            continuation("cleanup", started, 2, "daily"),
            "no run of this schedule is going on",
        ),
        (
            continuation("backup", started, 21, "daily"),
            "above this deployment's MAX_LINKS=20",
        ),
    ] {
        let message = refused(handler::handle(&ctx, &event, now()).await);
        assert!(message.contains(expected), "{message}");
    }
    // A daily run is going on, waiting for link 3: only that link is accepted, and not as
    // a weekly one.
    let mark = function::run_mark::RunMark {
        run_started_at: started,
        next_link: 3,
        written_at: now() - Duration::minutes(1),
    };
    mark_daily_run(&s, &mark).await;
    for (event, expected) in [
        (continuation("cleanup", started, 2, "daily"), "names link 2"),
        (
            continuation("cleanup", started - Duration::days(8), 3, "daily"),
            "the run going on is",
        ),
        (
            continuation("cleanup", started, 3, "weekly"),
            "no run of this schedule is going on",
        ),
    ] {
        let message = refused(handler::handle(&ctx, &event, now()).await);
        assert!(message.contains(expected), "{message}");
    }
    // Nothing was deleted, nothing made, nothing published by any of them.
    assert_eq!(s.managed_snapshots("prod").await, before);
    assert_eq!(
        s.emulator.sns_messages().unwrap().len(),
        published,
        "refusals publish nothing"
    );
    // The link the function handed on goes on, and its end removes the mark.
    let last = run(&ctx, continuation("backup", started, 3, "daily"), now()).await;
    assert_eq!(last.links, 3);
    assert!(last.failed.is_empty(), "{:?}", last.failed);
    let tags = aws_sdk_sns::Client::new(&s.sdk)
        .list_tags_for_resource()
        .resource_arn(&s.topic_arn)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .all(|t| !t.key().starts_with(function::run_mark::TAG_PREFIX)),
        "{:?}",
        tags.tags()
    );
}

/// A backup run whose deadline is `deadline`, which must end with `SmartVault.RunFailed`.
async fn stopped(ctx: &Context, deadline: std::time::Instant) -> RunReport {
    let error = handler::handle_until(ctx, &json!({"action": "backup"}), now(), Some(deadline))
        .await
        .unwrap_err();
    match error {
        FunctionError::RunFailed(report) => *report,
        other => panic!("expected RunFailed, got {other}"),
    }
}

#[tokio::test]
async fn a_run_that_cannot_go_on_says_why_in_its_summary() {
    let s = setup().await;
    fleet::launch_all(
        &s.ec2,
        &[InstanceSpec::backup("a"), InstanceSpec::backup("b")],
    )
    .await
    .unwrap();
    // A minute left, but a bucket that gives no token within it: the inventory is read, and
    // no write may start; everything is left for a next link.
    let later = || std::time::Instant::now() + std::time::Duration::from_secs(60);
    let starving = || {
        Pacer::new(BucketSize {
            burst: 0.0,
            refill_per_second: 0.001,
        })
    };

    // No way to hand on (as in these tests): the run fails what is left, and says so.
    let mut ctx = s.context("prod");
    ctx.pacer = starving();
    let report = stopped(&ctx, later()).await;
    assert!(report.created.is_empty());
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].code, "SmartVault.OutOfTime");
    assert!(
        report.failed[0]
            .message
            .starts_with("2 calls were not started"),
        "{}",
        report.failed[0].message
    );

    // The inventory cannot be read before the cutoff: the run ends with a summary that says
    // so, instead of outliving its invocation.
    let barely = std::time::Instant::now() + function::execute::SAFETY_FLOOR;
    let report = stopped(&s.context("prod"), barely).await;
    assert_eq!(report.failed[0].operation, "ReadInventory");
    assert_eq!(report.failed[0].code, "SmartVault.OutOfTime");
    assert!(
        report.failed[0]
            .message
            .contains("raise the function's timeout"),
        "{}",
        report.failed[0].message
    );

    // The maximum of links reached: the summary names the setting to raise.
    let mut ctx = Context::new(&s.sdk, s.config("prod", &[("MAX_LINKS", "1")]));
    ctx.pacer = starving();
    ctx.chain = Some(function::context::Chain {
        endpoint: None,
        function_name: "prod".into(),
    });
    let report = stopped(&ctx, later()).await;
    assert_eq!(report.failed[0].code, "SmartVault.MaxLinks");
    assert!(
        report.failed[0]
            .message
            .contains("reached MAX_LINKS=1 invocations with 2 calls left"),
        "{}",
        report.failed[0].message
    );
    // A link that started nothing does not hand on to another that would do the same.
    ctx.config = s.config("prod", &[]);
    let report = stopped(&ctx, later()).await;
    assert_eq!(report.failed[0].code, "SmartVault.NoProgress");
    assert!(
        report.failed[0]
            .message
            .contains("started none of the 2 calls left")
            && report.failed[0]
                .message
                .contains("raise the function's timeout"),
        "{}",
        report.failed[0].message
    );
    let messages = s.emulator.sns_messages().unwrap();
    assert_eq!(messages.len(), 4, "each stopped run published its summary");
    assert!(
        messages[2].message.contains("SmartVault.MaxLinks"),
        "{}",
        messages[2].message
    );
    assert!(s.managed_snapshots("prod").await.is_empty());
}

/// Grandfather-father-son over 400 simulated days: a daily schedule (kept 7 days, the newest 7),
/// a weekly one on Sundays (35 days, the newest 4) and a monthly one on the 1st (365 days, the
/// newest 12), each run sent as EventBridge Scheduler sends it. Every run makes its set (a
/// weekly run is not held back by the daily set made an hour before), and what remains is
/// exactly each schedule's due.
#[tokio::test]
async fn daily_weekly_and_monthly_schedules_keep_exactly_their_sets_over_400_days() {
    let s = setup().await;
    let fleet = fleet::launch_all(&s.ec2, &[InstanceSpec::backup("db-1")])
        .await
        .unwrap();
    let volume = fleet[0].volume_ids[0].clone();
    let schedules = r#"[
        {"name": "daily", "retention_days": 7, "keep_last": 7},
        {"name": "weekly", "retention_days": 35, "keep_last": 4},
        {"name": "monthly", "retention_days": 365, "keep_last": 12}
    ]"#;
    let ctx = Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", schedules)]));
    // The emulator stamps snapshots with the real time, so the simulated days run ahead of it.
    let today = now().date();
    let first = today.replace_day(1).unwrap() + Duration::days(40);
    let start = first.replace_day(1).unwrap().midnight().assume_utc();
    let (mut runs, mut last) = (0, start);
    // 400 days, and on to the next day that is neither a Sunday nor a 1st, so that the last
    // run is a plain daily one.
    let ordinary = |day: i64| {
        let date = start + Duration::days(day);
        date.weekday() != time::Weekday::Sunday && date.day() != 1
    };
    let days = (400..).find(|d| ordinary(*d - 1)).unwrap_or(400);
    for day in 0..days {
        let date = start + Duration::days(day);
        let mut due = vec![("daily", 1)];
        if date.weekday() == time::Weekday::Sunday {
            due.push(("weekly", 2));
        }
        if date.day() == 1 {
            due.push(("monthly", 3));
        }
        for (schedule, hour) in due {
            let at = date + Duration::hours(hour);
            let report = run(
                &ctx,
                json!({"action": "scheduled", "schedule": schedule}),
                at,
            )
            .await;
            assert!(report.failed.is_empty(), "{at}: {:?}", report.failed);
            assert_eq!(report.schedule, schedule);
            assert_eq!(
                report.created.len(),
                1,
                "{schedule} at {at}: {:?}",
                report.skipped
            );
            runs += 1;
            last = at;
        }
    }
    let kept = s.managed_snapshots("prod").await;
    let mut by_schedule: BTreeMap<String, usize> = BTreeMap::new();
    for snapshot in &kept[volume.as_str()] {
        *by_schedule
            .entry(tag(snapshot, tags::SCHEDULE).unwrap().to_owned())
            .or_default() += 1;
    }
    // After the last (daily) run: the 8 newest daily sets (the 7 kept plus the one made by
    // this run, which cleanup never sees); the weekly sets of the last five Sundays (35 days);
    // the monthly sets of the last twelve 1sts (the 13th expired and was no longer among the
    // newest 12 once this month's set existed).
    assert_eq!(
        by_schedule,
        BTreeMap::from([
            ("daily".to_owned(), 8),
            ("monthly".to_owned(), 12),
            ("weekly".to_owned(), 5),
        ]),
        "after {runs} runs, the last at {last}"
    );
    // 400 days hold at least 57 Sundays and 13 firsts of a month.
    assert!(runs >= 400 + 57 + 13, "{runs} runs");
}

/// What a restore needs that a snapshot does not keep is on every snapshot of the set: the
/// instance's type, architecture, zone and root device, and each volume's device and type,
/// as EC2 describes them.
#[tokio::test]
async fn every_snapshot_records_what_a_restore_needs() {
    use function::restore_records::{self, VolumeRecord};
    let s = setup().await;
    let fleet = fleet::launch_all(&s.ec2, &[InstanceSpec::backup("db-1").data_volumes(2)])
        .await
        .unwrap();
    let instance_id = fleet[0].id.clone();
    let report = run(&s.context("prod"), json!({"action": "backup"}), now()).await;
    assert_eq!(report.created.len(), 3);
    let described = s
        .ec2
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    let volumes = s
        .ec2
        .describe_volumes()
        .volume_ids(fleet[0].volume_ids[0].clone())
        .volume_ids(fleet[0].volume_ids[1].clone())
        .volume_ids(fleet[0].volume_ids[2].clone())
        .send()
        .await
        .unwrap();
    let snapshots = s.managed_snapshots("prod").await;
    for mapping in instance.block_device_mappings() {
        let volume_id = mapping.ebs().unwrap().volume_id().unwrap();
        let volume = volumes
            .volumes()
            .iter()
            .find(|v| v.volume_id() == Some(volume_id))
            .unwrap();
        let snapshot = &snapshots[volume_id][0];
        let set_tag = |key: &str| tag(snapshot, key).map(str::to_owned);
        assert_eq!(
            set_tag(restore_records::INSTANCE_TYPE).as_deref(),
            instance.instance_type().map(|t| t.as_str())
        );
        assert_eq!(
            set_tag(restore_records::ARCHITECTURE).as_deref(),
            instance.architecture().map(|a| a.as_str())
        );
        assert_eq!(
            set_tag(restore_records::AVAILABILITY_ZONE).as_deref(),
            instance.placement().and_then(|p| p.availability_zone())
        );
        assert_eq!(
            set_tag(restore_records::ROOT_DEVICE).as_deref(),
            instance.root_device_name()
        );
        // Every snapshot of the set holds every volume's record; each finds its own.
        let own =
            VolumeRecord::parse(tag(snapshot, &VolumeRecord::key(volume_id)).unwrap()).unwrap();
        assert_eq!(Some(own.device.as_str()), mapping.device_name());
        assert_eq!(
            own.details.volume_type.as_deref(),
            volume.volume_type().map(|t| t.as_str())
        );
        assert_eq!(own.details.iops, volume.iops());
        let records = snapshot
            .tags()
            .iter()
            .filter(|t| t.key().unwrap().starts_with(restore_records::VOLUME_PREFIX))
            .count();
        assert_eq!(records, 3);
    }
}

/// Coverage in a backup run: a fleet with a late instance, one never backed up, one opted
/// out and one untagged gets the summary section and the metrics a dead man's switch watches.
#[tokio::test]
async fn a_backup_run_reports_which_instances_are_protected_overdue_and_unprotected() {
    let s = setup().await;
    let fleet = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("late"),
            InstanceSpec::backup("new").stopped(),
            InstanceSpec::untagged("opted-out").tag("Backup", "false"),
            InstanceSpec::untagged("scratch"),
        ],
    )
    .await
    .unwrap();
    let (late, new, scratch) = (&fleet[0].id, &fleet[1].id, &fleet[3].id);
    // The daily schedule is overdue 26 hours after its newest set.
    let schedules =
        r#"[{"name": "daily", "retention_days": 7, "keep_last": 1, "overdue_after_hours": 26}]"#;
    let ctx = Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", schedules)]));
    // `late` was backed up 40 hours ago, and nothing since.
    let then = now() - Duration::hours(40);
    run(
        &ctx,
        json!({"action": "backup", "instance_ids": [late]}),
        then,
    )
    .await;
    // A run that only cleans up looks at no instance; a backup run of the whole fleet
    // assesses coverage (a dry run too: it reads the same inventory).
    let cleanup = run(&ctx, json!({"action": "cleanup"}), now()).await;
    assert_eq!(cleanup.coverage, None, "a cleanup looks at no instance");
    let report = run(&ctx, json!({"action": "backup", "dry_run": true}), now()).await;
    let coverage = report
        .coverage
        .clone()
        .expect("a backup run assesses coverage");
    assert_eq!(
        (
            coverage.protected,
            coverage.overdue,
            coverage.no_backup_yet,
            coverage.opted_out,
            coverage.unprotected
        ),
        (0, 1, 1, 1, 1),
        "{coverage:?}"
    );
    assert_eq!(coverage.overdue_ids, [late.as_str()]);
    assert_eq!(coverage.no_backup_yet_ids, [new.as_str()]);
    assert_eq!(coverage.unprotected_ids, [scratch.as_str()]);
    assert_eq!(coverage.oldest_newest_hours["daily"], 40);
    let body = report.body();
    assert!(
        body.contains(
            "Coverage: 0 protected, 1 overdue, 1 without a backup yet, 1 unprotected (no \
             backup tag), 1 opted out"
        ) && body.contains(&format!("  OVERDUE: {late}")),
        "{body}"
    );
    let metrics = report.metrics(0);
    assert_eq!(metrics["OverdueInstances"], 1);
    assert_eq!(metrics["UnprotectedInstances"], 1);
    assert_eq!(metrics["OldestBackupAgeHours"], 40);
    assert_eq!(report.schedule_metrics(0)[0]["OldestBackupAgeHours"], 40);
}

/// An organization's member publishes its summary to its own topic and to the central one,
/// whose subject names the member's account and region; a central topic it cannot reach fails
/// the run, naming it, after the own topic got the summary.
#[tokio::test]
async fn a_member_also_publishes_to_the_organizations_central_topic() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("a").data_volumes(1)])
        .await
        .unwrap();
    let sns = aws_sdk_sns::Client::new(&s.sdk);
    let central = sns
        .create_topic()
        .name("smartvault-org-central")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let ctx = Context::new(
        &s.sdk,
        s.config("smartvault-org", &[("CENTRAL_TOPIC_ARN", &central)]),
    );
    let report = run(
        &ctx,
        json!({"action": "manual-trigger", "dry_run": true}),
        now(),
    )
    .await;
    let messages = s.emulator.sns_messages().unwrap();
    let own: Vec<_> = messages
        .iter()
        .filter(|m| m.topic_arn == s.topic_arn)
        .collect();
    let theirs: Vec<_> = messages.iter().filter(|m| m.topic_arn == central).collect();
    assert_eq!((own.len(), theirs.len()), (1, 1), "{messages:?}");
    assert_eq!(own[0].subject.as_deref(), Some(report.subject().as_str()));
    assert_eq!(
        theirs[0].subject.as_deref(),
        Some(
            "SmartVault [smartvault-org 123456789012/us-east-1] dry run: 2 to create, 0 to \
             delete, 0 failed"
        )
    );
    assert_eq!(theirs[0].message, own[0].message);

    let gone = "arn:aws:sns:us-east-1:123456789012:smartvault-gone-central";
    let ctx = Context::new(
        &s.sdk,
        s.config("smartvault-org", &[("CENTRAL_TOPIC_ARN", gone)]),
    );
    let error = handler::handle(
        &ctx,
        &json!({"action": "manual-trigger", "dry_run": true}),
        now(),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "published to {}, but not to the organization's central topic {gone}",
            s.topic_arn
        )),
        "{text}"
    );
    let own = s
        .emulator
        .sns_messages()
        .unwrap()
        .into_iter()
        .filter(|m| m.topic_arn == s.topic_arn)
        .count();
    assert_eq!(own, 2, "the own topic got both summaries");
}
