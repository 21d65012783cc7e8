//! The tripwire under IAM enforcement: the function runs as a user holding exactly its role's
//! policy and the role policy `tripwire`, resolved from templates/smartvault.yaml as the stack
//! holds them. Sixteen days of runs read every set's changed blocks (`ebs:ListChangedBlocks`)
//! and record them (`ec2:CreateTags`); an encrypted volume is flagged once a sample of its
//! changed blocks is read (`ebs:GetSnapshotBlock`), its trip recorded and its clean set pinned
//! (`ec2:LockSnapshot`), and no call is denied. Without `tripwire`, the
//! read is denied and reported by name. (The emulator does not evaluate conditions: the tag
//! keys and the ownership condition are checked on the template, `checks/templates.rs`.) And
//! the emulator patch this rests on: `iam_moto.py` authorizes the EBS reads and `CreateTags`
//! against the snapshots named.

use crate::vault_iam::{context, policies, strings, topic, user};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const STACK: &str = "smartvault-prod";
const BLOCKS: u64 = 16_384; // the fleet's 8 GiB data volume in 512 KiB blocks

#[tokio::test]
async fn the_tripwire_reads_records_and_pins_with_exactly_its_policies() {
    let emulator = Emulator::start_with_iam().unwrap_or_else(|e| panic!("{e}"));
    let admin = emulator.sdk_config().await;
    let topic = topic(&admin, STACK).await;
    let ec2 = aws_sdk_ec2::Client::new(&admin);
    let fleet = fleet::launch_all(&ec2, &[InstanceSpec::backup("files").data_volumes(1)])
        .await
        .unwrap();
    let data = fleet[0].volume_ids[1].clone();
    let write = |blocks: Vec<(u64, &'static str, u64)>| {
        emulator
            .write_volume_blocks(emulator::ACCOUNT_ID, emulator::REGION, &data, &blocks)
            .unwrap();
    };
    write((0..4_000).map(|i| (i, "text", i)).collect());

    let values = strings(&[
        ("AWS::Partition", "aws"),
        ("AWS::Region", emulator::REGION),
        ("AWS::AccountId", emulator::ACCOUNT_ID),
        ("DeploymentName", STACK),
        ("Topic", &topic),
    ]);
    let held = policies(
        &["Role", "TripwirePolicy"],
        &values,
        &["HasTripwire", "HasTripwireSamples"],
    );
    let iam = aws_sdk_iam::Client::new(&admin);
    let function_sdk = user(&emulator, &iam, "function", &held, emulator::REGION).await;
    let without_sdk = user(
        &emulator,
        &iam,
        "without-tripwire",
        &held[..1],
        emulator::REGION,
    )
    .await;
    let allow_all: serde_json::Value = serde_json::from_str(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .unwrap();
    let admin_sdk = user(
        &emulator,
        &iam,
        "administrator",
        &[allow_all],
        emulator::REGION,
    )
    .await;
    emulator.enforce_iam().unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&admin_sdk);
    let vars = [
        (
            "SCHEDULES",
            r#"[{"name":"default","retention_days":40,"keep_last":1}]"#.to_owned(),
        ),
        (
            "TRIPWIRE",
            r#"{"multiplier":1.5,"floor":0.2,"pin_days":14,"sample_blocks":4}"#.to_owned(),
        ),
        ("ENVIRONMENT", "prod".to_owned()),
    ];
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let run = async |sdk: &aws_config::SdkConfig, day: i64| {
        let ctx = context(sdk, &topic, STACK, &vars).await;
        match handler::handle(
            &ctx,
            &json!({"action": "manual-trigger"}),
            start + Duration::days(day),
        )
        .await
        {
            Ok(report) => report,
            Err(function::context::FunctionError::RunFailed(report)) => *report,
            Err(other) => panic!("day {day}: {other}"),
        }
    };

    // Without the tripwire's policy the read is denied, by name, and nothing else fails.
    run(&without_sdk, 0).await;
    let denied = run(&without_sdk, 1).await;
    assert!(
        !denied.failed.is_empty()
            && denied
                .failed
                .iter()
                .all(|f| f.operation == "ListChangedBlocks"
                    && f.code.contains("AccessDenied")
                    && f.message.contains("ebs:ListChangedBlocks")),
        "{denied:#?}"
    );

    // With it: sixteen quiet days (1-4% a day), then 60% rewritten with random bytes.
    for day in 2..18 {
        let count = BLOCKS * (1 + day as u64 % 4) / 100;
        write(
            (0..count)
                .map(|i| {
                    (
                        (i * 11 + day as u64) % BLOCKS,
                        "text",
                        1_000 * day as u64 + i,
                    )
                })
                .collect(),
        );
        let report = run(&function_sdk, day).await;
        assert!(report.failed.is_empty(), "day {day}: {:?}", report.failed);
        assert!(report.tripwire.unwrap().alerts.is_empty(), "day {day}");
    }
    write(
        (0..BLOCKS * 60 / 100)
            .map(|i| (i, "random", 500_000 + i))
            .collect(),
    );
    let made = run(&function_sdk, 18).await;
    assert!(made.failed.is_empty(), "{:?}", made.failed);
    let flagged = run(&function_sdk, 19).await;
    assert!(flagged.failed.is_empty(), "{:?}", flagged.failed);
    let tripwire = flagged.tripwire.unwrap();
    assert_eq!(tripwire.alerts.len(), 1, "{tripwire:?}");
    assert!(
        tripwire.alerts[0].sampled_millibits.is_some(),
        "its blocks were read (ebs:GetSnapshotBlock): {tripwire:?}"
    );
    assert_eq!(tripwire.trips.len(), 1);
    assert!(
        tripwire.trips[0]
            .pinned
            .as_deref()
            .is_some_and(|lock| lock.starts_with("governance until")),
        "{tripwire:?}"
    );
    // The pin is EC2's lock on both snapshots of the day-17 set, and the trip is recorded.
    let locked = ec2.describe_locked_snapshots().send().await.unwrap();
    assert_eq!(locked.snapshots().len(), 2, "{locked:?}");
    let trip = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag-key")
                .values(function::tags::TRIPWIRE)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(trip.snapshots().len(), 1, "{trip:?}");
    assert_eq!(trip.snapshots()[0].volume_id(), Some(data.as_str()));
}

/// `emulator/iam_moto.py` itself: the EBS direct reads are authorized against the snapshots
/// read (both of a comparison) and `CreateTags` against each resource tagged, so a policy
/// scoped to one snapshot allows it and denies another, by name.
#[tokio::test]
async fn the_emulator_authorizes_ebs_reads_and_tags_against_the_snapshots_named() {
    let emulator = Emulator::start_with_iam().unwrap_or_else(|e| panic!("{e}"));
    let admin = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&admin);
    let volume = fleet::detached_volume(&ec2).await.unwrap();
    emulator
        .write_volume_blocks(
            emulator::ACCOUNT_ID,
            emulator::REGION,
            &volume,
            &[(0, "text", 1), (1, "text", 2)],
        )
        .unwrap();
    let allowed = fleet::snapshot_by_hand(&ec2, &volume, &[("Name", "allowed")])
        .await
        .unwrap();
    let other = fleet::snapshot_by_hand(&ec2, &volume, &[("Name", "other")])
        .await
        .unwrap();
    let arn = |id: &str| format!("arn:aws:ec2:{}::snapshot/{id}", emulator::REGION);
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["ebs:ListChangedBlocks", "ebs:GetSnapshotBlock", "ec2:CreateTags"],
        "Resource": arn(&allowed),
    }]});
    let iam = aws_sdk_iam::Client::new(&admin);
    let scoped = user(&emulator, &iam, "scoped", &[policy], emulator::REGION).await;
    emulator.enforce_iam().unwrap();

    let (_, samples) = function::ebs_direct::changed_blocks(&scoped, None, &allowed)
        .await
        .expect("reading the snapshot the policy names");
    function::ebs_direct::block(&scoped, &allowed, &samples[0])
        .await
        .expect("reading a block of it");
    // Either snapshot of a comparison outside the policy is refused: the second, or the first.
    for (first, second) in [
        (None, other.as_str()),
        (Some(allowed.as_str()), other.as_str()),
        (Some(other.as_str()), allowed.as_str()),
    ] {
        let denied = function::ebs_direct::changed_blocks(&scoped, first, second)
            .await
            .unwrap_err();
        assert!(
            denied.code.contains("AccessDenied")
                && denied.message.contains("ebs:ListChangedBlocks"),
            "{denied}"
        );
    }
    let scoped_ec2 = aws_sdk_ec2::Client::new(&scoped);
    let tag = |id: String| {
        scoped_ec2
            .create_tags()
            .resources(id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("k")
                    .value("v")
                    .build(),
            )
            .send()
    };
    tag(allowed.clone())
        .await
        .expect("tagging the snapshot the policy names");
    let refused = tag(other.clone()).await.unwrap_err();
    assert!(
        format!("{}", aws_sdk_ec2::error::DisplayErrorContext(&refused)).contains("ec2:CreateTags"),
        "{refused:?}"
    );
}
