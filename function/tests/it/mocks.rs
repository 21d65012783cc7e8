//! What the emulator cannot produce, through SDK mocks: throttling, unanswered creates,
//! snapshots in use by an AMI, one instance failing among others, and the exact shape of the
//! write calls.

use aws_sdk_ec2::Client as Ec2;
use aws_sdk_ec2::operation::create_snapshots::CreateSnapshotsOutput;
use aws_sdk_ec2::operation::delete_snapshot::DeleteSnapshotOutput;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
use aws_sdk_ec2::types::{
    CopyTagsFromSource, EbsInstanceBlockDevice, Instance, InstanceBlockDeviceMapping,
    InstanceState, InstanceStateName, Reservation, Snapshot, SnapshotInfo, SnapshotState, Tag,
    Volume,
};
use aws_sdk_sns::Client as Sns;
use aws_sdk_sns::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use function::config::Config;
use function::context::{Context, FunctionError};
use function::handler;
use function::pacing::{BucketSize, Pacer};
use function::plan::Subject;
use function::tags;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-26 01:00 UTC);
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:smartvault";

fn ec2_error(status: u16, code: &str, message: &str) -> (u16, String) {
    (
        status,
        format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
        ),
    )
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// A running instance tagged for backup, with a root volume and two data volumes.
fn instance(id: &str) -> Instance {
    let mapping = |device: &str, volume: String| {
        InstanceBlockDeviceMapping::builder()
            .device_name(device)
            .ebs(EbsInstanceBlockDevice::builder().volume_id(volume).build())
            .build()
    };
    Instance::builder()
        .instance_id(id)
        .state(
            InstanceState::builder()
                .name(InstanceStateName::Running)
                .build(),
        )
        .root_device_name("/dev/xvda")
        .tags(tag("Backup", "true"))
        .tags(tag("Name", id))
        .block_device_mappings(mapping("/dev/xvda", format!("{id}-root")))
        .block_device_mappings(mapping("/dev/sdf", format!("{id}-data")))
        .block_device_mappings(mapping("/dev/sdg", format!("{id}-logs")))
        .build()
}

fn describe_instances(ids: &[&str]) -> Rule {
    let reservations: Vec<Reservation> = ids
        .iter()
        .map(|id| Reservation::builder().instances(instance(id)).build())
        .collect();
    mock!(Ec2::describe_instances).then_output(move || {
        DescribeInstancesOutput::builder()
            .set_reservations(Some(reservations.clone()))
            .build()
    })
}

/// Volumes answer with a `BackupExclude` tag on every `-data` volume when `exclude_data`.
fn describe_volumes(exclude_data: bool) -> Rule {
    mock!(Ec2::describe_volumes).then_compute_output(move |request| {
        let values: Vec<String> = request
            .filters()
            .iter()
            .flat_map(|f| f.values().iter().cloned())
            .collect();
        let mut output = DescribeVolumesOutput::builder();
        for value in values {
            // Attachment filters carry instance ids: their volumes exist. Volume-id filters
            // ask about the snapshots' volumes, which are all gone.
            let volumes = if value.starts_with("i-") {
                vec![
                    format!("{value}-root"),
                    format!("{value}-data"),
                    format!("{value}-logs"),
                ]
            } else {
                vec![]
            };
            for volume in volumes {
                let mut builder = Volume::builder().volume_id(&volume);
                if exclude_data && volume.ends_with("-data") {
                    builder = builder.tags(tag(tags::VOLUME_EXCLUDE, "true"));
                }
                output = output.volumes(builder.build());
            }
        }
        output.build()
    })
}

/// One expired managed snapshot of a volume that no longer exists.
fn describe_snapshots(ids: &[&str]) -> Rule {
    let snapshots: Vec<Snapshot> = ids
        .iter()
        .map(|id| {
            Snapshot::builder()
                .snapshot_id(*id)
                .volume_id(format!("vol-gone-{id}"))
                .state(SnapshotState::Completed)
                .volume_size(8)
                .start_time(aws_smithy_types::DateTime::from_secs(1_700_000_000))
                .tags(tag(tags::MANAGED_BY, "prod"))
                .tags(tag(tags::INSTANCE_ID, "i-0000000a"))
                .tags(tag(tags::EXPIRES_AT, "2026-01-01T00:00:00Z"))
                .build()
        })
        .collect();
    mock!(Ec2::describe_snapshots).then_output(move || {
        DescribeSnapshotsOutput::builder()
            .set_snapshots(Some(snapshots.clone()))
            .build()
    })
}

fn snapshots_for(instance: &str) -> CreateSnapshotsOutput {
    let mut output = CreateSnapshotsOutput::builder();
    for volume in ["root", "data", "logs"] {
        output = output.snapshots(
            SnapshotInfo::builder()
                .snapshot_id(format!("snap-{instance}-{volume}"))
                .volume_id(format!("{instance}-{volume}"))
                .build(),
        );
    }
    output.build()
}

fn config(vars: &[(&str, &str)]) -> Config {
    let mut map: HashMap<&str, String> = HashMap::from([
        ("SNS_TOPIC_ARN", TOPIC.to_owned()),
        ("DEPLOYMENT", "prod".to_owned()),
    ]);
    for (k, v) in vars {
        map.insert(k, (*v).to_owned());
    }
    Config::from_lookup(|name| map.get(name).cloned()).unwrap()
}

/// The read side of the account (instances, volumes, snapshots) and a topic that records what
/// is published; each test adds its own write rules.
struct Account {
    reads: [Rule; 3],
    publish: Rule,
    /// The topic's tags: none, so no run is marked as in progress.
    topic_tags: Rule,
    /// The tags a run writes on its topic (since when each schedule runs).
    tag_topic: Rule,
    sent: Arc<Mutex<Vec<(String, String)>>>,
}

impl Account {
    fn new(instance_ids: &[&str], exclude_data: bool, snapshot_ids: &[&str]) -> Self {
        let sent: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let record = Arc::clone(&sent);
        let publish = mock!(Sns::publish).then_compute_output(move |request| {
            record.lock().unwrap().push((
                request.subject().unwrap_or_default().to_owned(),
                request.message().unwrap_or_default().to_owned(),
            ));
            PublishOutput::builder().message_id("m-1").build()
        });
        Account {
            reads: [
                describe_instances(instance_ids),
                describe_volumes(exclude_data),
                describe_snapshots(snapshot_ids),
            ],
            publish,
            topic_tags: mock!(Sns::list_tags_for_resource)
                .then_output(|| ListTagsForResourceOutput::builder().build()),
            tag_topic: mock!(Sns::tag_resource).then_output(|| {
                aws_sdk_sns::operation::tag_resource::TagResourceOutput::builder().build()
            }),
            sent,
        }
    }

    /// A context whose EC2 client retries as the function's does, with a fast backoff.
    fn context(&self, writes: &[&Rule], config: Config) -> Context {
        let retry = function::context::retry_config()
            .with_initial_backoff(std::time::Duration::from_millis(1))
            .with_max_backoff(std::time::Duration::from_millis(5));
        // A test's own rules come first, so one can answer a narrower read than the account's.
        let ec2_rules: Vec<&Rule> = writes.iter().copied().chain(self.reads.iter()).collect();
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &ec2_rules, |c| c
            .retry_config(retry.clone()));
        let sns = mock_client!(
            aws_sdk_sns,
            RuleMode::MatchAny,
            [&self.publish, &self.topic_tags, &self.tag_topic]
        );
        Context {
            ec2,
            sns,
            // A fast bucket: these tests count calls, not seconds.
            pacer: Pacer::new(BucketSize {
                burst: 100.0,
                refill_per_second: 1000.0,
            }),
            chain: None,
            regions: Default::default(),
            config,
            page_size: 500,
            settle: std::time::Duration::from_millis(1),
            poll: std::time::Duration::from_millis(20),
            central_sns: None,
            // No vault here: nothing assumes a role with it.
            sdk: aws_config::SdkConfig::builder().build(),
        }
    }

    /// Every (subject, message) published so far.
    fn sent(&self) -> Vec<(String, String)> {
        self.sent.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn throttling_is_retried_until_the_snapshot_is_made() {
    let (status, body) = ec2_error(503, "RequestLimitExceeded", "Request limit exceeded.");
    let create = mock!(Ec2::create_snapshots)
        .sequence()
        .http_status(status, Some(body))
        .times(3)
        .output(|| snapshots_for("i-0000000a"))
        .build();
    let account = Account::new(&["i-0000000a"], false, &[]);
    let ctx = account.context(&[&create], config(&[]));

    let report = handler::handle(&ctx, &json!({"action": "backup"}), NOW)
        .await
        .unwrap();

    assert_eq!(
        create.num_calls(),
        4,
        "three throttled attempts, each sent again by the pacer, then success"
    );
    assert_eq!(report.created.len(), 3);
    assert!(report.failed.is_empty());
    assert_eq!(
        account.sent()[0].0,
        "SmartVault [prod]: 3 created, 0 deleted, 0 failed"
    );
}

#[tokio::test]
async fn pending_snapshot_limits_leave_the_instance_for_a_later_run_without_failing() {
    for code in [
        "SnapshotCreationPerVolumeRateExceeded",
        "PendingSnapshotLimitExceeded",
    ] {
        let (status, body) = ec2_error(400, code, "Too many pending snapshots.");
        let create = mock!(Ec2::create_snapshots)
            .match_requests(|r| {
                r.instance_specification().and_then(|s| s.instance_id()) == Some("i-0000000a")
            })
            .sequence()
            .http_status(status, Some(body))
            .build();
        let fine = mock!(Ec2::create_snapshots)
            .match_requests(|r| {
                r.instance_specification().and_then(|s| s.instance_id()) == Some("i-0000000b")
            })
            .then_output(|| snapshots_for("i-0000000b"));
        let account = Account::new(&["i-0000000a", "i-0000000b"], false, &[]);
        let ctx = account.context(&[&create, &fine], config(&[]));

        let report = handler::handle(&ctx, &json!({"action": "backup"}), NOW)
            .await
            .unwrap_or_else(|e| panic!("{code} must not fail the run: {e}"));

        assert_eq!(create.num_calls(), 1, "not sent again in this run");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.created.len(), 3, "the other instance is backed up");
        let skip = report
            .skipped
            .iter()
            .find(|s| s.subject == Subject::Instance("i-0000000a".into()))
            .unwrap();
        assert!(
            skip.reason.contains(code) && skip.reason.contains("a later run backs it up"),
            "{}",
            skip.reason
        );
    }
}

/// A `CreateSnapshots` for `instance` whose first answer is a 500, then a normal one.
fn create_answering_500_first(instance: &'static str) -> Rule {
    let (status, body) = ec2_error(500, "InternalError", "An internal error has occurred.");
    mock!(Ec2::create_snapshots)
        .sequence()
        .http_status(status, Some(body))
        .output(move || snapshots_for(instance))
        .build()
}

/// The filters a look-up was asked with: (name, values).
type Asked = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// Answers only the look-up of one request's snapshots (by its identity tags) with `found`,
/// recording the filters it was asked with.
fn lookup(found: Vec<Snapshot>, asked: Asked) -> Rule {
    mock!(Ec2::describe_snapshots)
        .match_requests(|request| {
            request
                .filters()
                .iter()
                .any(|f| f.name() == Some(&format!("tag:{}", tags::CREATED_AT)))
        })
        .then_compute_output(move |request| {
            for filter in request.filters() {
                asked.lock().unwrap().push((
                    filter.name().unwrap_or_default().to_owned(),
                    filter.values().to_vec(),
                ));
            }
            DescribeSnapshotsOutput::builder()
                .set_snapshots(Some(found.clone()))
                .build()
        })
}

#[tokio::test]
async fn an_unanswered_create_is_not_sent_again_when_its_snapshots_exist() {
    let create = create_answering_500_first("i-0000000a");
    let made: Vec<Snapshot> = ["root", "data", "logs"]
        .iter()
        .map(|volume| {
            Snapshot::builder()
                .snapshot_id(format!("snap-made-{volume}"))
                .volume_id(format!("i-0000000a-{volume}"))
                .state(SnapshotState::Pending)
                .build()
        })
        .collect();
    let asked: Asked = Arc::default();
    let found = lookup(made, Arc::clone(&asked));
    let account = Account::new(&["i-0000000a"], false, &[]);
    let ctx = account.context(&[&create, &found], config(&[]));

    let report = handler::handle(&ctx, &json!({"action": "backup"}), NOW)
        .await
        .unwrap();

    assert_eq!(create.num_calls(), 1, "the snapshots exist: no second call");
    assert_eq!(found.num_calls(), 1);
    let mut ids: Vec<&str> = report
        .created
        .iter()
        .filter_map(|c| c.snapshot_id.as_deref())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["snap-made-data", "snap-made-logs", "snap-made-root"]);
    assert!(report.failed.is_empty());
    let mut asked = asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(
        asked,
        [
            (
                format!("tag:{}", tags::CREATED_AT),
                vec!["2026-11-26T01:00:00Z".to_owned()]
            ),
            (
                format!("tag:{}", tags::INSTANCE_ID),
                vec!["i-0000000a".to_owned()]
            ),
            (format!("tag:{}", tags::MANAGED_BY), vec!["prod".to_owned()]),
        ],
        "the look-up singles out this run's snapshots of this instance"
    );
}

#[tokio::test]
async fn an_unanswered_create_is_sent_again_when_nothing_was_made() {
    let create = create_answering_500_first("i-0000000a");
    let none = lookup(Vec::new(), Arc::default());
    let account = Account::new(&["i-0000000a"], false, &[]);
    let ctx = account.context(&[&create, &none], config(&[]));

    let report = handler::handle(&ctx, &json!({"action": "backup"}), NOW)
        .await
        .unwrap();

    assert_eq!(create.num_calls(), 2, "nothing was made: sent again");
    assert_eq!(none.num_calls(), 1);
    assert_eq!(report.created.len(), 3);
    assert!(report.failed.is_empty());
}

#[tokio::test]
async fn a_snapshot_in_use_by_an_ami_is_skipped_not_failed() {
    let (status, body) = ec2_error(
        400,
        "InvalidSnapshot.InUse",
        "The snapshot snap-used is currently in use by ami-1",
    );
    let delete = mock!(Ec2::delete_snapshot).then_compute_response(move |request| {
        if request.snapshot_id() == Some("snap-used") {
            aws_smithy_mocks::MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
                aws_smithy_types::body::SdkBody::from(body.clone()),
            ))
        } else {
            aws_smithy_mocks::MockResponse::Output(DeleteSnapshotOutput::builder().build())
        }
    });
    let account = Account::new(&[], false, &["snap-used", "snap-free"]);
    let ctx = account.context(&[&delete], config(&[]));

    let report = handler::handle(&ctx, &json!({"action": "cleanup"}), NOW)
        .await
        .expect("an AMI-backed snapshot does not fail the run");

    assert_eq!(delete.num_calls(), 2);
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(report.deleted[0].snapshot_id, "snap-free");
    assert!(report.failed.is_empty());
    let skip = report
        .skipped
        .iter()
        .find(|s| s.subject.to_string() == "snapshot snap-used")
        .expect("the in-use snapshot is reported as skipped");
    assert!(skip.reason.contains("in use by an AMI"), "{}", skip.reason);
    assert!(account.sent()[0].1.contains("in use by an AMI"));
}

#[tokio::test]
async fn a_delete_whose_first_answer_was_lost_is_not_a_failure() {
    // The first attempt's answer is lost (a 500); the retry finds the snapshot gone.
    let (error_status, error_body) = ec2_error(500, "InternalError", "An internal error.");
    let (gone_status, gone_body) = ec2_error(
        400,
        "InvalidSnapshot.NotFound",
        "The snapshot 'snap-old' does not exist.",
    );
    let delete = mock!(Ec2::delete_snapshot)
        .sequence()
        .http_status(error_status, Some(error_body))
        .http_status(gone_status, Some(gone_body))
        .build();
    let account = Account::new(&[], false, &["snap-old"]);
    let ctx = account.context(&[&delete], config(&[]));

    let report = handler::handle(&ctx, &json!({"action": "cleanup"}), NOW)
        .await
        .expect("a snapshot already gone does not fail the run");

    assert_eq!(delete.num_calls(), 2);
    assert!(report.failed.is_empty());
    let skip = report
        .skipped
        .iter()
        .find(|s| s.subject.to_string() == "snapshot snap-old")
        .expect("the vanished snapshot is reported");
    assert!(skip.reason.contains("already gone"), "{}", skip.reason);
}

#[tokio::test]
async fn one_failing_instance_does_not_stop_the_others_and_the_run_errors_after_publishing() {
    let (status, body) = ec2_error(
        400,
        "IncorrectState",
        "The instance 'i-0000000b' is not in a state from which it can be snapshotted.",
    );
    let create = mock!(Ec2::create_snapshots).then_compute_response(move |request| {
        let id = request
            .instance_specification()
            .and_then(|s| s.instance_id())
            .unwrap_or_default()
            .to_owned();
        if id == "i-0000000b" {
            aws_smithy_mocks::MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
                aws_smithy_types::body::SdkBody::from(body.clone()),
            ))
        } else {
            aws_smithy_mocks::MockResponse::Output(snapshots_for(&id))
        }
    });
    let account = Account::new(&["i-0000000a", "i-0000000b", "i-0000000c"], false, &[]);
    let ctx = account.context(&[&create], config(&[]));

    let error = handler::handle(&ctx, &json!({"action": "backup"}), NOW)
        .await
        .unwrap_err();

    assert_eq!(create.num_calls(), 3, "every instance was attempted");
    assert!(matches!(error, FunctionError::RunFailed(_)), "{error}");
    assert_eq!(error.error_type(), "SmartVault.RunFailed");
    assert!(error.to_string().contains("i-0000000b"), "{error}");
    let sent = account.sent();
    assert_eq!(sent.len(), 1, "the summary is published before the error");
    assert_eq!(
        sent[0].0,
        "SmartVault [prod]: 6 created, 0 deleted, 1 failed"
    );
    assert!(
        sent[0]
            .1
            .contains("instance i-0000000b: CreateSnapshots failed: IncorrectState:"),
        "{}",
        sent[0].1
    );
}

#[tokio::test]
async fn a_dry_run_makes_no_write_call() {
    let create = mock!(Ec2::create_snapshots).then_output(|| snapshots_for("x"));
    let delete =
        mock!(Ec2::delete_snapshot).then_output(|| DeleteSnapshotOutput::builder().build());
    let create_tags = mock!(Ec2::create_tags)
        .then_output(|| aws_sdk_ec2::operation::create_tags::CreateTagsOutput::builder().build());
    let account = Account::new(&["i-0000000a"], false, &["snap-old"]);
    let ctx = account.context(
        &[&create, &delete, &create_tags],
        config(&[("DRY_RUN", "true")]),
    );

    let report = handler::handle(&ctx, &json!({"action": "manual-trigger"}), NOW)
        .await
        .unwrap();

    assert_eq!(
        create.num_calls() + delete.num_calls() + create_tags.num_calls(),
        0
    );
    assert!(report.dry_run);
    assert_eq!((report.created.len(), report.deleted.len()), (3, 1));
    assert_eq!(
        account.sent()[0].0,
        "SmartVault [prod] dry run: 3 to create, 1 to delete, 0 failed"
    );
}

#[tokio::test]
async fn excluded_volumes_and_tags_travel_in_the_create_call_itself() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let create = mock!(Ec2::create_snapshots).then_compute_output(move |request| {
        record.lock().unwrap().push(request.clone());
        snapshots_for("i-0000000a")
    });
    let account = Account::new(&["i-0000000a"], true, &[]);
    let ctx = account.context(
        &[&create],
        config(&[
            ("EXCLUDE_BOOT_VOLUME", "true"),
            (
                "SCHEDULES",
                r#"[{"name": "default", "retention_days": 14, "keep_last": 1}]"#,
            ),
        ]),
    );

    let report = handler::handle(&ctx, &json!({"action": "backup"}), NOW)
        .await
        .unwrap();

    let skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|s| s.subject.to_string())
        .collect();
    assert_eq!(
        skipped,
        ["volume i-0000000a-root", "volume i-0000000a-data"]
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let spec = seen[0].instance_specification().unwrap();
    assert_eq!(spec.instance_id(), Some("i-0000000a"));
    assert_eq!(spec.exclude_boot_volume(), Some(true));
    assert_eq!(spec.exclude_data_volume_ids(), ["i-0000000a-data"]);
    assert_eq!(
        seen[0].copy_tags_from_source(),
        Some(&CopyTagsFromSource::Volume)
    );
    let tags: HashMap<&str, &str> = seen[0]
        .tag_specifications()
        .iter()
        .flat_map(|t| t.tags())
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags[tags::MANAGED_BY], "prod");
    assert_eq!(tags[tags::INSTANCE_ID], "i-0000000a");
    assert_eq!(tags[tags::CREATED_AT], "2026-11-26T01:00:00Z");
    assert_eq!(tags[tags::EXPIRES_AT], "2026-12-10T01:00:00Z");
    assert_eq!(tags[tags::SCHEDULE], "default");
    assert_eq!(tags[tags::NAME], "i-0000000a backup 2026-11-26");
}

/// A completed snapshot of this deployment at home: one of instance `instance`'s set made at
/// `made_at`, not expiring before 2027.
fn home_snapshot(id: &str, instance: &str, made_at: &str) -> Snapshot {
    Snapshot::builder()
        .snapshot_id(id)
        .volume_id(format!("vol-{id}"))
        .state(SnapshotState::Completed)
        .volume_size(8)
        .start_time(aws_smithy_types::DateTime::from_secs(1_790_000_000))
        .tags(tag(tags::MANAGED_BY, "prod"))
        .tags(tag(tags::INSTANCE_ID, instance))
        .tags(tag(tags::CREATED_AT, made_at))
        .tags(tag(tags::EXPIRES_AT, "2027-06-01T00:00:00Z"))
        .tags(tag(tags::SCHEDULE, "default"))
        .build()
}

/// The copy region as the function sees it: `pending` snapshots in flight there (the account's,
/// not this deployment's), no copy yet, and `CopySnapshot` answered by `copy`.
fn copy_region(pending: usize, copy: &Rule) -> aws_sdk_ec2::Client {
    let in_flight = mock!(Ec2::describe_snapshots)
        .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("status")))
        .then_output(move || {
            DescribeSnapshotsOutput::builder()
                .set_snapshots(Some(
                    (0..pending)
                        .map(|n| {
                            Snapshot::builder()
                                .snapshot_id(format!("snap-other-{n}"))
                                .state(SnapshotState::Pending)
                                .build()
                        })
                        .collect(),
                ))
                .build()
        });
    let no_copies =
        mock!(Ec2::describe_snapshots).then_output(|| DescribeSnapshotsOutput::builder().build());
    mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        [&in_flight, &no_copies, copy]
    )
}

#[tokio::test]
async fn copies_in_flight_stay_under_twenty_per_region_and_are_encrypted_with_the_rules_key() {
    const KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    // Two sets of three at home; 17 snapshots pending in us-west-2 leave room for 3 copies.
    let mut home = Vec::new();
    for (instance, made_at) in [
        ("i-old", "2026-11-25T01:00:00Z"),
        ("i-new", "2026-11-26T00:00:00Z"),
    ] {
        for volume in 0..3 {
            home.push(home_snapshot(
                &format!("snap-{instance}-{volume}"),
                instance,
                made_at,
            ));
        }
    }
    let home_snapshots = mock!(Ec2::describe_snapshots).then_output(move || {
        DescribeSnapshotsOutput::builder()
            .set_snapshots(Some(home.clone()))
            .build()
    });
    let requests: Arc<Mutex<Vec<aws_sdk_ec2::operation::copy_snapshot::CopySnapshotInput>>> =
        Arc::default();
    let record = Arc::clone(&requests);
    let copy = mock!(Ec2::copy_snapshot).then_compute_output(move |request| {
        record.lock().unwrap().push(request.clone());
        aws_sdk_ec2::operation::copy_snapshot::CopySnapshotOutput::builder()
            .snapshot_id(format!(
                "snap-copy-{}",
                request.source_snapshot_id().unwrap()
            ))
            .build()
    });
    let rules = format!(r#"[{{"region": "us-west-2", "kms_key": "{KEY}", "retention_days": 30}}]"#);
    let account = Account::new(&[], false, &[]);
    let mut ctx = account.context(&[&home_snapshots], config(&[("COPIES", &rules)]));
    ctx.regions = function::context::Regions {
        home: "us-east-1".into(),
        clients: [("us-west-2".to_owned(), copy_region(17, &copy))].into(),
    };

    let report = handler::handle(&ctx, &json!({"action": "cleanup"}), NOW)
        .await
        .unwrap();

    let sent = requests.lock().unwrap().clone();
    let mut sources: Vec<&str> = sent
        .iter()
        .map(|r| r.source_snapshot_id().unwrap())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        ["snap-i-new-0", "snap-i-new-1", "snap-i-new-2"],
        "the newest set, whole"
    );
    for request in &sent {
        assert_eq!(request.source_region(), Some("us-east-1"));
        assert_eq!(
            request.encrypted(),
            Some(true),
            "an unencrypted source, copied with the key"
        );
        assert_eq!(request.kms_key_id(), Some(KEY));
        let specification = &request.tag_specifications()[0];
        assert_eq!(
            specification.resource_type(),
            Some(&aws_sdk_ec2::types::ResourceType::Snapshot)
        );
        let tagged = |key: &str| {
            specification
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
        };
        assert_eq!(tagged(tags::MANAGED_BY), Some("prod"));
        assert_eq!(tagged(tags::SOURCE_SNAPSHOT), request.source_snapshot_id());
        assert_eq!(tagged(tags::EXPIRES_AT), Some("2026-12-26T00:00:00Z"));
    }
    let west = &report.copies[0];
    assert_eq!(
        (west.started, west.waiting, west.failed),
        (3, 3, 0),
        "{west:?}"
    );
    assert!(
        account.sent()[0]
            .1
            .contains("3 started, 0 completed, 0 in flight, 3 waiting")
    );

    // EC2 refusing a copy for its limit (another tool started copies meanwhile): it waits for
    // the next sweep, and nothing fails.
    let (status, body) = ec2_error(
        400,
        "ResourceLimitExceeded",
        "Too many snapshot copies in progress.",
    );
    let refused = mock!(Ec2::copy_snapshot).then_http_response(move || {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
            aws_smithy_types::body::SdkBody::from(body.clone()),
        )
    });
    ctx.regions.clients = [("us-west-2".to_owned(), copy_region(0, &refused))].into();
    let report = handler::handle(&ctx, &json!({"action": "cleanup"}), NOW)
        .await
        .unwrap();
    let west = &report.copies[0];
    assert_eq!(
        (west.started, west.waiting, west.failed),
        (0, 6, 0),
        "{west:?}"
    );
    assert_eq!(refused.num_calls(), 6);
}

#[tokio::test]
async fn another_tools_completion_event_reads_nothing_in_the_copy_regions() {
    // The rule cannot select by tag: every CreateSnapshots of the account reaches the function.
    let none_of_ours =
        mock!(Ec2::describe_snapshots).then_output(|| DescribeSnapshotsOutput::builder().build());
    let there =
        mock!(Ec2::describe_snapshots).then_output(|| DescribeSnapshotsOutput::builder().build());
    let account = Account::new(&[], false, &[]);
    let mut ctx = account.context(
        &[&none_of_ours],
        config(&[("COPIES", r#"[{"region": "us-west-2"}]"#)]),
    );
    ctx.regions = function::context::Regions {
        home: "us-east-1".into(),
        clients: [(
            "us-west-2".to_owned(),
            mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&there]),
        )]
        .into(),
    };
    let event = json!({
        "version": "0", "id": "x", "detail-type": "EBS Multi-Volume Snapshots Completion Status",
        "source": "aws.ec2", "account": "123456789012", "time": "2026-11-26T01:05:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"event": "createSnapshots", "result": "succeeded", "snapshots": [
            {"snapshot_id": "arn:aws:ec2::us-east-1:snapshot/snap-0123456789abcdef0", "status": "completed"}
        ]}
    });
    let report = handler::handle(&ctx, &event, NOW).await.unwrap();
    assert_eq!(
        none_of_ours.num_calls(),
        1,
        "one read of the event's snapshots"
    );
    assert_eq!(there.num_calls(), 0, "nothing read in the copy region");
    assert!(report.copies.is_empty());
    assert!(
        account.sent().is_empty(),
        "nothing published for another tool's snapshots"
    );
}

/// `instance`'s completed set of one snapshot per volume, made a day before `NOW`, with the
/// restore records (zone `us-east-1c`, gp3 at 4000 IOPS and 250 MB/s).
fn recorded_set(instance: &str, volumes: &[&str]) -> Vec<Snapshot> {
    volumes
        .iter()
        .map(|volume| {
            Snapshot::builder()
                .snapshot_id(format!("snap-{volume}"))
                .volume_id(*volume)
                .state(SnapshotState::Completed)
                .volume_size(8)
                .start_time(aws_smithy_types::DateTime::from_secs(1_764_032_400))
                .tags(tag(tags::MANAGED_BY, "prod"))
                .tags(tag(tags::INSTANCE_ID, instance))
                .tags(tag(tags::CREATED_AT, "2026-11-25T01:00:00Z"))
                .tags(tag(
                    function::restore_records::AVAILABILITY_ZONE,
                    "us-east-1c",
                ))
                .tags(tag(
                    &function::restore_records::VolumeRecord::key(volume),
                    "device=/dev/sdf type=gp3 iops=4000 throughput=250",
                ))
                .build()
        })
        .collect()
}

#[tokio::test]
async fn a_restore_test_fails_a_volume_in_error_or_still_creating_and_deletes_only_what_it_can() {
    // i-0000000a's two volumes become available; i-0000000b's goes to `error`; i-0000000c's is still creating when
    // the invocation's time is up.
    let mut snapshots = recorded_set("i-0000000a", &["vol-a1", "vol-a2"]);
    snapshots.extend(recorded_set("i-0000000b", &["vol-b1"]));
    snapshots.extend(recorded_set("i-0000000c", &["vol-c1"]));
    let describe = mock!(Ec2::describe_snapshots).then_output(move || {
        DescribeSnapshotsOutput::builder()
            .set_snapshots(Some(snapshots.clone()))
            .build()
    });
    let created: Arc<Mutex<Vec<aws_sdk_ec2::operation::create_volume::CreateVolumeInput>>> =
        Arc::default();
    let record = Arc::clone(&created);
    let create = mock!(Ec2::create_volume).then_compute_output(move |request| {
        record.lock().unwrap().push(request.clone());
        aws_sdk_ec2::operation::create_volume::CreateVolumeOutput::builder()
            .volume_id(format!("new-{}", request.snapshot_id().unwrap_or_default()))
            .build()
    });
    let states = mock!(Ec2::describe_volumes).then_compute_output(|request| {
        let mut output = DescribeVolumesOutput::builder();
        for filter in request.filters() {
            // The sweep for volumes an earlier test left finds none.
            if filter.name() != Some("volume-id") {
                continue;
            }
            for id in filter.values() {
                let state = match id.as_str() {
                    "new-snap-vol-b1" => aws_sdk_ec2::types::VolumeState::Error,
                    "new-snap-vol-c1" => aws_sdk_ec2::types::VolumeState::Creating,
                    _ => aws_sdk_ec2::types::VolumeState::Available,
                };
                output = output.volumes(Volume::builder().volume_id(id).state(state).build());
            }
        }
        output.build()
    });
    let deleted: Arc<Mutex<Vec<String>>> = Arc::default();
    let gone = Arc::clone(&deleted);
    let delete = mock!(Ec2::delete_volume).then_compute_output(move |request| {
        gone.lock()
            .unwrap()
            .push(request.volume_id().unwrap_or_default().to_owned());
        aws_sdk_ec2::operation::delete_volume::DeleteVolumeOutput::builder().build()
    });
    let account = Account::new(&[], false, &[]);
    let settings = r#"{"sample": 3, "max_wait_seconds": 600}"#;
    let ctx = account.context(
        &[&describe, &create, &states, &delete],
        config(&[("RESTORE_TEST", settings)]),
    );
    // The deadline, not the 600 s wait, ends the wait: two seconds after its margins.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
    let event = json!({"action": "restore-test", "instance_ids": ["i-0000000a", "i-0000000b", "i-0000000c"]});
    let Err(FunctionError::RunFailed(report)) =
        handler::handle_until(&ctx, &event, NOW, Some(deadline)).await
    else {
        panic!("failed restores fail the run");
    };
    assert!(
        std::time::Instant::now() < deadline,
        "the test ended before the invocation's deadline"
    );
    let statuses: Vec<(&str, function::report::TestStatus)> = report
        .restore_tests
        .iter()
        .map(|t| (t.instance_id.as_str(), t.status))
        .collect();
    use function::report::TestStatus::{Failed, Passed};
    assert_eq!(
        statuses,
        [
            ("i-0000000a", Passed),
            ("i-0000000b", Failed),
            ("i-0000000c", Failed)
        ]
    );
    let codes: Vec<(String, &str)> = report
        .failed
        .iter()
        .map(|f| (f.subject.as_ref().unwrap().to_string(), f.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            ("snapshot snap-vol-b1".to_owned(), "SmartVault.VolumeError"),
            (
                "snapshot snap-vol-c1".to_owned(),
                "SmartVault.RestoreTestTimedOut"
            ),
        ]
    );
    assert!(report.failed[1].message.contains("still `creating`"));
    // The volume in error is deleted with the available ones; the one still creating cannot
    // be, and keeps its tag for the next test.
    let mut deleted = deleted.lock().unwrap().clone();
    deleted.sort();
    assert_eq!(
        deleted,
        ["new-snap-vol-a1", "new-snap-vol-a2", "new-snap-vol-b1"]
    );
    // Each volume as it was, in its zone, tagged at creation, with an idempotency token.
    let created = created.lock().unwrap().clone();
    assert_eq!(created.len(), 4);
    for request in &created {
        assert_eq!(request.availability_zone(), Some("us-east-1c"));
        assert_eq!(
            request.volume_type(),
            Some(&aws_sdk_ec2::types::VolumeType::Gp3)
        );
        assert_eq!(
            (request.iops(), request.throughput()),
            (Some(4000), Some(250))
        );
        let spec = &request.tag_specifications()[0];
        assert_eq!(
            spec.resource_type(),
            Some(&aws_sdk_ec2::types::ResourceType::Volume)
        );
        assert!(
            spec.tags()
                .iter()
                .any(|t| t.key() == Some(function::restore_test::TAG) && t.value() == Some("prod"))
        );
        assert!(
            request
                .client_token()
                .unwrap()
                .ends_with(request.snapshot_id().unwrap())
        );
        assert!(request.client_token().unwrap().len() <= 64, "EC2's limit");
    }
    let sent = account.sent();
    assert_eq!(
        sent[0].0,
        "SmartVault [prod] restore test: 1 passed, 2 failed"
    );
}

#[tokio::test]
async fn the_central_topic_is_published_to_through_a_client_of_its_own_region() {
    // A member in us-east-1 whose organization's central topic lives in eu-central-1: SNS's
    // Publish reaches only topics in the client's region, so the request must go there.
    const CENTRAL: &str = "arn:aws:sns:eu-central-1:210987654321:smartvault-org-central";
    let home = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::SharedCredentialsProvider::new(
            aws_sdk_sns::config::Credentials::for_tests(),
        ))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let response = http::Response::builder()
        .status(200)
        .body(aws_smithy_types::body::SdkBody::from(
            "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult>\
             <MessageId>m-2</MessageId></PublishResult><ResponseMetadata><RequestId>r-2\
             </RequestId></ResponseMetadata></PublishResponse>",
        ))
        .unwrap();
    let (http_client, request) = aws_smithy_http_client::test_util::capture_request(Some(response));
    let captured = home.to_builder().http_client(http_client).build();
    let account = Account::new(&[], false, &[]);
    let mut ctx = account.context(&[], config(&[("CENTRAL_TOPIC_ARN", CENTRAL)]));
    ctx.central_sns = function::context::central_client(&captured, CENTRAL);

    let report = handler::handle(&ctx, &json!({"action": "backup"}), NOW)
        .await
        .unwrap();

    assert_eq!(report.totals().failed, 0);
    assert_eq!(account.sent().len(), 1, "the home topic got its summary");
    let sent = request.expect_request();
    assert_eq!(
        sent.uri(),
        "https://sns.eu-central-1.amazonaws.com/",
        "published in the central topic's region"
    );
    let body = std::str::from_utf8(sent.body().bytes().unwrap()).unwrap();
    assert!(body.contains("Action=Publish"), "{body}");
    assert!(
        body.contains("smartvault-org-central"),
        "to the central topic: {body}"
    );
    assert!(
        sent.headers()
            .get("authorization")
            .is_some_and(|v| v.contains("/eu-central-1/sns/")),
        "signed for the central topic's region"
    );
    // The client the function builds at cold start is the same: the topic ARN's region.
    let built = function::context::Context::new(&home, config(&[("CENTRAL_TOPIC_ARN", CENTRAL)]));
    let region = built.central_sns.unwrap().config().region().cloned();
    assert_eq!(region.as_ref().map(|r| r.as_ref()), Some("eu-central-1"));
    assert!(
        function::context::Context::new(&home, config(&[]))
            .central_sns
            .is_none()
    );
}

#[tokio::test]
async fn a_completion_event_of_another_region_or_account_is_refused_before_any_read() {
    let reads =
        mock!(Ec2::describe_snapshots).then_output(|| DescribeSnapshotsOutput::builder().build());
    let account = Account::new(&[], false, &[]);
    let mut ctx = account.context(&[&reads], config(&[]));
    ctx.regions.home = "us-east-1".into();
    let event = |region: &str, account: &str| {
        json!({
            "version": "0", "id": "x", "detail-type": "EBS Multi-Volume Snapshots Completion Status",
            "source": "aws.ec2", "account": account, "time": "2026-11-26T01:05:00Z",
            "region": region, "resources": [],
            "detail": {"event": "createSnapshots", "result": "succeeded", "snapshots": [
                {"snapshot_id": format!("arn:aws:ec2::{region}:snapshot/snap-0123456789abcdef0"),
                 "status": "completed"}
            ]}
        })
    };
    for (region, other, expected) in [
        (
            "eu-west-1",
            "123456789012",
            "is from account 123456789012 in eu-west-1",
        ),
        (
            "us-east-1",
            "210987654321",
            "is from account 210987654321 in us-east-1",
        ),
    ] {
        let error = handler::handle(&ctx, &event(region, other), NOW)
            .await
            .unwrap_err();
        assert!(matches!(error, FunctionError::InvalidEvent(_)), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert_eq!(reads.num_calls(), 0, "nothing read for a foreign event");
    assert!(account.sent().is_empty(), "nothing published");
    // Its own region's event goes ahead.
    let report = handler::handle(&ctx, &event("us-east-1", "123456789012"), NOW)
        .await
        .unwrap();
    assert_eq!(report.job, function::model::Job::Copy);
}
