//! Proves the emulator harness is real: the Rust SDK creates, snapshots, filters and publishes.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used)]

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};

fn start() -> Emulator {
    Emulator::start().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn fleet_volumes_snapshots_and_tag_filters_round_trip() {
    let emulator = start();
    let config = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);

    let specs = [
        InstanceSpec::backup("web-1")
            .data_volumes(2)
            .volume_tag(1, "Team", "web"),
        InstanceSpec::backup("db-1").data_volumes(1),
        InstanceSpec::untagged("scratch"),
    ];
    let fleet = fleet::launch_all(&ec2, &specs).await.unwrap();
    assert_eq!(
        fleet.iter().map(|i| i.volume_ids.len()).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );

    let tagged = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:Backup").values("true").build())
        .send()
        .await
        .unwrap();
    let mut tagged_ids: Vec<_> = tagged
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id())
        .collect();
    tagged_ids.sort_unstable();
    let mut expected = vec![fleet[0].id.as_str(), fleet[1].id.as_str()];
    expected.sort_unstable();
    assert_eq!(tagged_ids, expected);

    let created = ec2
        .create_snapshots()
        .instance_specification(
            aws_sdk_ec2::types::InstanceSpecification::builder()
                .instance_id(&fleet[0].id)
                .build(),
        )
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(Tag::builder().key("harness").value("yes").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.snapshots().len(), 3);
    fleet::snapshot_by_hand(
        &ec2,
        &fleet[1].volume_ids[0],
        &[("CreatedOn", "2020-01-01")],
    )
    .await
    .unwrap();

    let described = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name("tag:harness").values("yes").build())
        .send()
        .await
        .unwrap();
    let mut volumes: Vec<_> = described
        .snapshots()
        .iter()
        .filter_map(|s| s.volume_id())
        .collect();
    volumes.sort_unstable();
    let mut expected: Vec<_> = fleet[0].volume_ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(
        volumes, expected,
        "only the tagged snapshots match the filter"
    );
}

#[tokio::test]
async fn published_sns_messages_are_read_back() {
    let emulator = start();
    let sns = aws_sdk_sns::Client::new(&emulator.sdk_config().await);
    let topic = sns.create_topic().name("harness").send().await.unwrap();
    let arn = topic.topic_arn().unwrap();
    sns.publish()
        .topic_arn(arn)
        .subject("hello")
        .message("from the harness")
        .send()
        .await
        .unwrap();
    let messages = emulator.sns_messages().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].topic_arn, arn);
    assert_eq!(messages[0].subject.as_deref(), Some("hello"));
    assert_eq!(messages[0].message, "from the harness");
}

#[tokio::test]
async fn requests_are_recorded_by_action_and_reset_clears_state() {
    let emulator = start();
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    emulator.start_recording().unwrap();
    fleet::launch(&ec2, &InstanceSpec::backup("a"))
        .await
        .unwrap();
    ec2.describe_instances().send().await.unwrap();
    let actions = emulator.stop_recording().unwrap();
    assert_eq!(actions, vec!["RunInstances", "DescribeInstances"]);

    emulator.reset().unwrap();
    let after = ec2.describe_instances().send().await.unwrap();
    assert!(after.reservations().is_empty(), "reset leaves no instance");
}

#[test]
fn dropping_the_emulator_stops_its_process() {
    let emulator = start();
    let pid = emulator.pid();
    let proc_dir = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_dir).exists());
    drop(emulator);
    assert!(
        !std::path::Path::new(&proc_dir).exists(),
        "moto_server {pid} is still running after drop"
    );
}
