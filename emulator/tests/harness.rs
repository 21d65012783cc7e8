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

/// The snapshot-lock patch (fast_moto.py) behaves as AWS documents LockSnapshot,
/// UnlockSnapshot, DescribeLockedSnapshots and a locked snapshot's DeleteSnapshot.
#[tokio::test]
async fn snapshot_locks_behave_as_aws_documents_them() {
    use aws_sdk_ec2::primitives::DateTime;
    use aws_sdk_ec2::types::{LockMode, LockState};
    let emulator = start();
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let volume = fleet::detached_volume(&ec2).await.unwrap();
    let snapshot = || fleet::snapshot_by_hand(&ec2, &volume, &[("Name", "locked")]);
    let (governed, complied, cooling, plain) = (
        snapshot().await.unwrap(),
        snapshot().await.unwrap(),
        snapshot().await.unwrap(),
        snapshot().await.unwrap(),
    );
    let day = 86_400;
    let lock = |id: &str, mode: LockMode| ec2.lock_snapshot().snapshot_id(id).lock_mode(mode);

    // Governance for 2 days; compliance until a date, past a 1-hour cooling-off, and one still
    // cooling off.
    let governance = lock(&governed, LockMode::Governance)
        .lock_duration(2)
        .send()
        .await
        .unwrap();
    assert_eq!(governance.lock_state(), Some(&LockState::Governance));
    assert_eq!(governance.lock_duration(), Some(2));
    let until = DateTime::from_secs(time_now() + 10 * day);
    lock(&complied, LockMode::Compliance)
        .cool_off_period(1)
        .expiration_date(until)
        .send()
        .await
        .unwrap();
    lock(&cooling, LockMode::Compliance)
        .cool_off_period(72)
        .lock_duration(5)
        .send()
        .await
        .unwrap();
    emulator.set_lock_clock(2 * 3600).unwrap();

    // The states AWS names, by id and by the lock-state filter; unlocked snapshots are absent.
    let described = ec2.describe_locked_snapshots().send().await.unwrap();
    let state_of = |id: &str| {
        described
            .snapshots()
            .iter()
            .find(|s| s.snapshot_id() == Some(id))
            .and_then(|s| s.lock_state().cloned())
    };
    assert_eq!(state_of(&governed), Some(LockState::Governance));
    assert_eq!(state_of(&complied), Some(LockState::Compliance));
    assert_eq!(state_of(&cooling), Some(LockState::ComplianceCooloff));
    assert_eq!(state_of(&plain), None);
    let compliance_only = ec2
        .describe_locked_snapshots()
        .filters(
            Filter::builder()
                .name("lock-state")
                .values("compliance")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(compliance_only.snapshots().len(), 1);
    let complied_info = &compliance_only.snapshots()[0];
    assert_eq!(
        complied_info.lock_expires_on().map(|d| d.secs()),
        Some(until.secs())
    );
    assert_eq!(complied_info.cool_off_period(), Some(1));

    // A locked snapshot refuses deletion, whatever its mode; an unlocked one goes.
    for id in [&governed, &complied, &cooling] {
        let refused = ec2
            .delete_snapshot()
            .snapshot_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&refused).as_deref(), Some("SnapshotLocked"), "{id}");
    }
    ec2.delete_snapshot()
        .snapshot_id(&plain)
        .send()
        .await
        .unwrap();

    // Compliance past its cooling-off: no unlock, no shortening, no change of mode; it can be
    // extended.
    let refused = ec2
        .unlock_snapshot()
        .snapshot_id(&complied)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused).as_deref(), Some("SnapshotLocked"));
    let shorter = lock(&complied, LockMode::Compliance)
        .lock_duration(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&shorter).as_deref(), Some("SnapshotLocked"));
    let weaker = lock(&complied, LockMode::Governance)
        .lock_duration(30)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&weaker).as_deref(), Some("SnapshotLocked"));
    lock(&complied, LockMode::Compliance)
        .lock_duration(30)
        .send()
        .await
        .unwrap();

    // Governance and compliance still cooling off: unlocked, then deletable.
    for id in [&governed, &cooling] {
        ec2.unlock_snapshot().snapshot_id(id).send().await.unwrap();
    }
    ec2.delete_snapshot()
        .snapshot_id(&cooling)
        .send()
        .await
        .unwrap();

    // Bad requests, as AWS refuses them.
    let governance_cool_off = lock(&governed, LockMode::Governance)
        .cool_off_period(1)
        .lock_duration(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&governance_cool_off).as_deref(),
        Some("InvalidParameterCombination")
    );
    for (cool_off, duration) in [(73, 1), (1, 0), (1, 36_501)] {
        let refused = lock(&governed, LockMode::Compliance)
            .cool_off_period(cool_off)
            .lock_duration(duration)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(&refused).as_deref(),
            Some("InvalidParameterValue"),
            "{cool_off} {duration}"
        );
    }

    // Once the lock's end passes on the lock clock, the lock is expired and deletion works.
    lock(&governed, LockMode::Governance)
        .lock_duration(1)
        .send()
        .await
        .unwrap();
    emulator.set_lock_clock(2 * 3600 + 2 * day).unwrap();
    let expired = ec2
        .describe_locked_snapshots()
        .snapshot_ids(&governed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        expired.snapshots()[0].lock_state(),
        Some(&LockState::Expired)
    );
    ec2.delete_snapshot()
        .snapshot_id(&governed)
        .send()
        .await
        .unwrap();
}

fn code<E: aws_sdk_ec2::error::ProvideErrorMetadata>(error: &E) -> Option<String> {
    error.code().map(str::to_owned)
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The Recycle Bin patch (fast_moto.py): an AWS::Rbin::Rule made by CloudFormation keeps a
/// deleted snapshot whose tags match for its retention, and nothing else; a snapshot comes back
/// with its tags; the bin lets go after the retention; without the rule a deletion is final.
#[tokio::test]
async fn the_recycle_bin_keeps_what_its_rule_matches_for_its_retention() {
    let emulator = start();
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let stacks = aws_sdk_cloudformation::Client::new(&sdk);
    let rule = serde_json::json!({"Resources": {"Bin": {"Type": "AWS::Rbin::Rule", "Properties": {
        "ResourceType": "EBS_SNAPSHOT",
        "ResourceTags": [{"ResourceTagKey": "smartvault:managed-by", "ResourceTagValue": "prod"}],
        "RetentionPeriod": {"RetentionPeriodValue": 7, "RetentionPeriodUnit": "DAYS"}}}}});
    stacks
        .create_stack()
        .stack_name("bin")
        .template_body(rule.to_string())
        .send()
        .await
        .unwrap();
    let volume = fleet::detached_volume(&ec2).await.unwrap();
    let kept = fleet::snapshot_by_hand(&ec2, &volume, &[("smartvault:managed-by", "prod")])
        .await
        .unwrap();
    let other = fleet::snapshot_by_hand(&ec2, &volume, &[("smartvault:managed-by", "dev")])
        .await
        .unwrap();
    for id in [&kept, &other] {
        ec2.delete_snapshot().snapshot_id(id).send().await.unwrap();
    }
    let binned = |listed: &aws_sdk_ec2::operation::list_snapshots_in_recycle_bin::ListSnapshotsInRecycleBinOutput| {
        listed
            .snapshots()
            .iter()
            .filter_map(|s| s.snapshot_id().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let listed = ec2.list_snapshots_in_recycle_bin().send().await.unwrap();
    assert_eq!(binned(&listed), std::slice::from_ref(&kept));
    let entry = &listed.snapshots()[0];
    assert_eq!(
        entry.recycle_bin_exit_time().unwrap().secs()
            - entry.recycle_bin_enter_time().unwrap().secs(),
        7 * 86_400
    );
    // Back, with its tags; the other deployment's is gone for good.
    ec2.restore_snapshot_from_recycle_bin()
        .snapshot_id(&kept)
        .send()
        .await
        .unwrap();
    let back = ec2
        .describe_snapshots()
        .snapshot_ids(&kept)
        .send()
        .await
        .unwrap();
    assert_eq!(back.snapshots()[0].tags()[0].value(), Some("prod"));
    let gone = ec2
        .restore_snapshot_from_recycle_bin()
        .snapshot_id(&other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&gone).as_deref(), Some("InvalidSnapshot.NotFound"));
    // The bin lets it go after its retention.
    ec2.delete_snapshot()
        .snapshot_id(&kept)
        .send()
        .await
        .unwrap();
    emulator.set_lock_clock(8 * 86_400).unwrap();
    let after = ec2.list_snapshots_in_recycle_bin().send().await.unwrap();
    assert!(binned(&after).is_empty());
    // Without the rule, a deletion is final.
    emulator.set_lock_clock(0).unwrap();
    stacks
        .delete_stack()
        .stack_name("bin")
        .send()
        .await
        .unwrap();
    let last = fleet::snapshot_by_hand(&ec2, &volume, &[("smartvault:managed-by", "prod")])
        .await
        .unwrap();
    ec2.delete_snapshot()
        .snapshot_id(&last)
        .send()
        .await
        .unwrap();
    let none = ec2.list_snapshots_in_recycle_bin().send().await.unwrap();
    assert!(binned(&none).is_empty());
}

/// The sharing patch (fast_moto.py), as the EC2 API reference documents DescribeSnapshots and
/// CopySnapshot: a snapshot shared with another account (createVolumePermission) is listed
/// there by OwnerIds and RestorableByUserIds=self without its tags, copied there into a
/// snapshot of that account, and gone from that account's view once the share is removed;
/// the owner lists what it shares with RestorableByUserIds=<account>; nothing else of the
/// owner's is visible, and the other account can neither delete nor lock the owner's snapshot.
#[tokio::test]
async fn a_shared_snapshot_is_visible_and_copyable_in_the_account_it_is_shared_with_its_tags_not() {
    use aws_sdk_ec2::types::LockMode;
    const VAULT: &str = "222222222222";
    let emulator = start();
    let owner = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let vault_sdk = emulator
        .assumed(&format!("arn:aws:iam::{VAULT}:role/vault"), "us-west-2")
        .await
        .unwrap();
    let vault_here = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&vault_sdk)
            .region(aws_sdk_ec2::config::Region::new(emulator::REGION))
            .build(),
    );
    let vault_there = aws_sdk_ec2::Client::new(&vault_sdk);
    let volume = fleet::detached_volume(&owner).await.unwrap();
    let shared = fleet::snapshot_by_hand(&owner, &volume, &[("secret", "tag")])
        .await
        .unwrap();
    let kept = fleet::snapshot_by_hand(&owner, &volume, &[("secret", "tag")])
        .await
        .unwrap();
    // `UserIds` with `OperationType`, the form SmartVault sends (moto reads only that one).
    let share = |op: aws_sdk_ec2::types::OperationType| {
        owner
            .modify_snapshot_attribute()
            .snapshot_id(&shared)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .operation_type(op)
            .user_ids(VAULT)
            .send()
    };
    let visible_to_vault = || async {
        vault_here
            .describe_snapshots()
            .owner_ids(emulator::ACCOUNT_ID)
            .restorable_by_user_ids("self")
            .send()
            .await
            .unwrap()
            .snapshots()
            .to_vec()
    };
    assert!(visible_to_vault().await.is_empty(), "nothing is shared yet");
    share(aws_sdk_ec2::types::OperationType::Add).await.unwrap();

    // The owner sees what it shares with the vault; the vault sees it, without tags.
    let sharing = owner
        .describe_snapshots()
        .owner_ids("self")
        .restorable_by_user_ids(VAULT)
        .send()
        .await
        .unwrap();
    let ids = |found: &[aws_sdk_ec2::types::Snapshot]| {
        found
            .iter()
            .filter_map(|s| s.snapshot_id().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(sharing.snapshots()), vec![shared.clone()]);
    let seen = visible_to_vault().await;
    assert_eq!(ids(&seen), vec![shared.clone()]);
    assert!(
        seen[0].tags().is_empty(),
        "tags are the owner's only: {:?}",
        seen[0].tags()
    );
    assert_eq!(seen[0].owner_id(), Some(emulator::ACCOUNT_ID));
    assert_eq!(seen[0].description(), Some("made by hand"));
    // The vault's own listing (OwnerIds=self) does not include it; the unshared one is nowhere.
    let own = vault_here
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert!(own.snapshots().is_empty());
    let by_id = vault_here
        .describe_snapshots()
        .snapshot_ids(&kept)
        .send()
        .await;
    assert!(
        by_id.is_err(),
        "an unshared snapshot is not the vault's to see"
    );

    // The vault copies it across regions into its own account, with its own tags and key.
    let copy = vault_there
        .copy_snapshot()
        .source_region(emulator::REGION)
        .source_snapshot_id(&shared)
        .encrypted(true)
        .kms_key_id("arn:aws:kms:us-west-2:222222222222:key/vault")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(Tag::builder().key("copy").value("vault").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let copy_id = copy.snapshot_id().unwrap().to_owned();
    let mine = vault_there
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert_eq!(ids(mine.snapshots()), vec![copy_id.clone()]);
    assert_eq!(mine.snapshots()[0].owner_id(), Some(VAULT));
    assert_eq!(mine.snapshots()[0].tags().len(), 1);
    // The owner cannot see, delete or lock the vault's copy; the vault cannot delete or lock
    // the owner's snapshot.
    let owner_there = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&emulator.sdk_config().await)
            .region(aws_sdk_ec2::config::Region::new("us-west-2"))
            .build(),
    );
    assert!(
        owner_there
            .delete_snapshot()
            .snapshot_id(&copy_id)
            .send()
            .await
            .is_err()
    );
    assert!(
        owner_there
            .lock_snapshot()
            .snapshot_id(&copy_id)
            .lock_mode(LockMode::Governance)
            .lock_duration(1)
            .send()
            .await
            .is_err()
    );
    assert!(
        vault_here
            .delete_snapshot()
            .snapshot_id(&shared)
            .send()
            .await
            .is_err()
    );
    assert!(
        owner
            .describe_snapshots()
            .snapshot_ids(&shared)
            .send()
            .await
            .is_ok()
    );

    // A copy of an unshared snapshot is refused; once the share is removed, the vault sees
    // nothing and copies nothing.
    let unshared = vault_there
        .copy_snapshot()
        .source_region(emulator::REGION)
        .source_snapshot_id(&kept)
        .send()
        .await;
    assert_eq!(
        code(&unshared.unwrap_err()).as_deref(),
        Some("InvalidSnapshot.NotFound")
    );
    share(aws_sdk_ec2::types::OperationType::Remove)
        .await
        .unwrap();
    assert!(visible_to_vault().await.is_empty());
    let owner_sharing = owner
        .describe_snapshots()
        .owner_ids("self")
        .restorable_by_user_ids(VAULT)
        .send()
        .await
        .unwrap();
    assert!(owner_sharing.snapshots().is_empty());
}

/// The `!Condition` patch (fast_moto.py): a YAML template's `!Or [!Condition A, !Condition B]`
/// and `!And [...]` are evaluated as CloudFormation evaluates them.
#[tokio::test]
async fn yaml_short_form_conditions_combine_as_in_cloudformation() {
    let emulator = start();
    let sdk = emulator.sdk_config().await;
    let template = r#"
Parameters:
  A: {Type: String, Default: ""}
  B: {Type: String, Default: ""}
Conditions:
  HasA: !Not [!Equals [!Ref A, ""]]
  HasB: !Not [!Equals [!Ref B, ""]]
  Either: !Or [!Condition HasA, !Condition HasB]
  Both: !And [!Condition HasA, !Condition HasB]
Resources:
  EitherTopic: {Type: AWS::SNS::Topic, Condition: Either}
  BothTopic: {Type: AWS::SNS::Topic, Condition: Both}
"#;
    let stacks = aws_sdk_cloudformation::Client::new(&sdk);
    let made = async |name: &str, a: &str, b: &str| -> Vec<String> {
        stacks
            .create_stack()
            .stack_name(name)
            .template_body(template)
            .parameters(
                aws_sdk_cloudformation::types::Parameter::builder()
                    .parameter_key("A")
                    .parameter_value(a)
                    .build(),
            )
            .parameters(
                aws_sdk_cloudformation::types::Parameter::builder()
                    .parameter_key("B")
                    .parameter_value(b)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut ids: Vec<String> = stacks
            .list_stack_resources()
            .stack_name(name)
            .send()
            .await
            .unwrap()
            .stack_resource_summaries()
            .iter()
            // moto lists a resource its condition left out as an entry without a name.
            .filter_map(|r| {
                r.logical_resource_id()
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(made("none", "", "").await, Vec::<String>::new());
    assert_eq!(made("one", "x", "").await, ["EitherTopic"]);
    assert_eq!(made("two", "x", "y").await, ["BothTopic", "EitherTopic"]);
}

/// The Recycle Bin patch, region-level: a rule without resource tags keeps every deleted EBS
/// snapshot of its account and region, whatever its tags, and only those of its account.
#[tokio::test]
async fn a_region_level_rule_keeps_every_deleted_snapshot_of_its_account() {
    let emulator = start();
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let rule = serde_json::json!({"Resources": {"Bin": {"Type": "AWS::Rbin::Rule", "Properties": {
        "ResourceType": "EBS_SNAPSHOT",
        "RetentionPeriod": {"RetentionPeriodValue": 3, "RetentionPeriodUnit": "DAYS"},
        "LockConfiguration": {"UnlockDelayValue": 7, "UnlockDelayUnit": "DAYS"}}}}});
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name("region-bin")
        .template_body(rule.to_string())
        .send()
        .await
        .unwrap();
    let volume = fleet::detached_volume(&ec2).await.unwrap();
    let named = fleet::snapshot_by_hand(&ec2, &volume, &[("Name", "anyone")])
        .await
        .unwrap();
    let tagged = fleet::snapshot_by_hand(&ec2, &volume, &[("team", "db")])
        .await
        .unwrap();
    for id in [&named, &tagged] {
        ec2.delete_snapshot().snapshot_id(id).send().await.unwrap();
    }
    let mut binned: Vec<String> = ec2
        .list_snapshots_in_recycle_bin()
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    binned.sort();
    let mut expected = vec![named, tagged];
    expected.sort();
    assert_eq!(binned, expected);

    // Another account's deletion is not this rule's.
    let other = emulator
        .assumed("arn:aws:iam::222222222222:role/any", emulator::REGION)
        .await
        .unwrap();
    let other_ec2 = aws_sdk_ec2::Client::new(&other);
    let volume = fleet::detached_volume(&other_ec2).await.unwrap();
    let theirs = fleet::snapshot_by_hand(&other_ec2, &volume, &[("Name", "theirs")])
        .await
        .unwrap();
    other_ec2
        .delete_snapshot()
        .snapshot_id(&theirs)
        .send()
        .await
        .unwrap();
    let theirs_binned = other_ec2
        .list_snapshots_in_recycle_bin()
        .send()
        .await
        .unwrap();
    assert!(theirs_binned.snapshots().is_empty());
}

/// The EBS direct patch (fast_moto.py), as the EBS direct API reference documents it: a
/// snapshot made by CreateSnapshot captures the blocks written to its volume; ListSnapshotBlocks
/// pages by MaxResults and NextToken in 524,288-byte blocks; ListChangedBlocks lists the blocks
/// that differ between two snapshots of one volume (also one only the first or only the second
/// holds), every block of the second without a first, and refuses snapshots of two volumes;
/// GetSnapshotBlock returns a block's bytes with its SHA-256 for its token only; reset forgets.
#[tokio::test]
async fn ebs_direct_apis_read_the_blocks_a_snapshot_captured() {
    let emulator = start();
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ebs = aws_sdk_ebs::Client::new(&sdk);
    let volume = fleet::detached_volume(&ec2).await.unwrap();
    let write = |blocks: Vec<(u64, &'static str, u64)>| {
        emulator.write_volume_blocks(emulator::ACCOUNT_ID, emulator::REGION, &volume, &blocks)
    };
    write((0..150).map(|i| (i, "text", i)).collect()).unwrap();
    let first = fleet::snapshot_by_hand(&ec2, &volume, &[("Name", "first")])
        .await
        .unwrap();
    let mut second_writes: Vec<(u64, &str, u64)> =
        (0..10).map(|i| (i, "random", 1000 + i)).collect();
    second_writes.push((200, "text", 200));
    second_writes.push((149, "zero", 0));
    write(second_writes).unwrap();
    let second = fleet::snapshot_by_hand(&ec2, &volume, &[("Name", "second")])
        .await
        .unwrap();

    // Every block of the first snapshot, in pages of 100.
    let page = ebs
        .list_snapshot_blocks()
        .snapshot_id(&first)
        .max_results(100)
        .send()
        .await
        .unwrap();
    assert_eq!(page.blocks().len(), 100);
    assert_eq!(page.block_size(), Some(524_288));
    assert_eq!(page.volume_size(), Some(8));
    let rest = ebs
        .list_snapshot_blocks()
        .snapshot_id(&first)
        .max_results(100)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.blocks().len(), 50);
    assert_eq!(rest.blocks()[0].block_index(), Some(100));
    assert!(rest.next_token().is_none());
    let from = ebs
        .list_snapshot_blocks()
        .snapshot_id(&first)
        .starting_block_index(140)
        .send()
        .await
        .unwrap();
    assert_eq!(from.blocks().len(), 10);

    // What changed: 10 rewritten, one freed (first only), one new (second only).
    let changed = ebs
        .list_changed_blocks()
        .first_snapshot_id(&first)
        .second_snapshot_id(&second)
        .send()
        .await
        .unwrap();
    let indexes: Vec<i32> = changed
        .changed_blocks()
        .iter()
        .filter_map(|b| b.block_index())
        .collect();
    let mut expected: Vec<i32> = (0..10).collect();
    expected.extend([149, 200]);
    assert_eq!(indexes, expected);
    let freed = &changed.changed_blocks()[10];
    assert!(freed.first_block_token().is_some() && freed.second_block_token().is_none());
    let new = &changed.changed_blocks()[11];
    assert!(new.first_block_token().is_none() && new.second_block_token().is_some());
    let all = ebs
        .list_changed_blocks()
        .second_snapshot_id(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(
        all.changed_blocks().len(),
        150,
        "149 blocks kept or rewritten, one new"
    );

    // A block's bytes: random for a rewritten one, with its checksum; a wrong token is refused.
    let token = changed.changed_blocks()[0].second_block_token().unwrap();
    let block = ebs
        .get_snapshot_block()
        .snapshot_id(&second)
        .block_index(0)
        .block_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(block.data_length(), Some(524_288));
    let checksum = block.checksum().unwrap().to_owned();
    let data = block.block_data.collect().await.unwrap().into_bytes();
    assert_eq!(data.len(), 524_288);
    let distinct: std::collections::BTreeSet<u8> = data.iter().copied().collect();
    assert!(distinct.len() > 250, "random bytes");
    assert!(!checksum.is_empty());
    let wrong = ebs
        .get_snapshot_block()
        .snapshot_id(&second)
        .block_index(0)
        .block_token(changed.changed_blocks()[0].first_block_token().unwrap())
        .send()
        .await;
    assert!(
        wrong.is_err(),
        "the first snapshot's token is not the second's"
    );

    // Two volumes have no lineage in common.
    let other = fleet::detached_volume(&ec2).await.unwrap();
    let unrelated = fleet::snapshot_by_hand(&ec2, &other, &[("Name", "other")])
        .await
        .unwrap();
    let refused = ebs
        .list_changed_blocks()
        .first_snapshot_id(&first)
        .second_snapshot_id(&unrelated)
        .send()
        .await;
    assert!(
        format!("{:?}", refused.unwrap_err()).contains("ValidationException"),
        "snapshots of two volumes are refused"
    );
    emulator.reset().unwrap();
    let forgotten = ebs.list_snapshot_blocks().snapshot_id(&first).send().await;
    assert!(forgotten.is_err(), "reset forgets the captured blocks");
}

/// The archive tier and fast snapshot restore patch (fast_moto.py), on the lock clock: archiving
/// takes its time and the snapshot stays usable until it completes, an archived snapshot makes
/// no volume until restored, a temporary restore expires back to the archive, a permanent one
/// brings it back to the standard tier; fast snapshot restore goes enabling, optimizing,
/// enabled, refuses archived snapshots, other regions' zones and a sixth snapshot, and ends
/// with the snapshot's archival or deletion.
#[tokio::test]
async fn the_archive_tier_and_fast_snapshot_restore_behave_as_aws_documents_them() {
    use aws_sdk_ec2::types::{Filter, StorageTier, TieringOperationStatus};
    let emulator = start();
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    let volume = fleet::detached_volume(&ec2).await.unwrap();
    let mut snapshots = Vec::new();
    for _ in 0..8 {
        snapshots.push(
            fleet::snapshot_by_hand(&ec2, &volume, &[("Name", "tier")])
                .await
                .unwrap(),
        );
    }
    let zone = format!("{}a", emulator::REGION);
    let status = async |id: &str| {
        let statuses = ec2
            .describe_snapshot_tier_status()
            .filters(Filter::builder().name("snapshot-id").values(id).build())
            .send()
            .await
            .unwrap();
        let status = statuses.snapshot_tier_statuses()[0].clone();
        (
            status.storage_tier().cloned(),
            status.last_tiering_operation_status().cloned(),
        )
    };
    let make_volume = async |id: &str| {
        ec2.create_volume()
            .snapshot_id(id)
            .availability_zone(&zone)
            .send()
            .await
    };
    let archived = &snapshots[0];
    ec2.modify_snapshot_tier()
        .snapshot_id(archived)
        .storage_tier(aws_sdk_ec2::types::TargetStorageTier::Archive)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status(archived).await,
        (
            Some(StorageTier::Standard),
            Some(TieringOperationStatus::ArchivalInProgress)
        )
    );
    assert!(
        make_volume(archived).await.is_ok(),
        "usable while archiving"
    );
    let again = ec2
        .modify_snapshot_tier()
        .snapshot_id(archived)
        .storage_tier(aws_sdk_ec2::types::TargetStorageTier::Archive)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again).as_deref(), Some("IncorrectState"));
    emulator.set_lock_clock(3_601).unwrap();
    assert_eq!(
        status(archived).await,
        (
            Some(StorageTier::Archive),
            Some(TieringOperationStatus::ArchivalCompleted)
        )
    );
    let refused = make_volume(archived).await.unwrap_err();
    assert_eq!(code(&refused).as_deref(), Some("IncorrectState"));
    // A temporary restore: in progress for its hours, then usable until it expires.
    let restored = ec2
        .restore_snapshot_tier()
        .snapshot_id(archived)
        .temporary_restore_days(2)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.is_permanent_restore(), Some(false));
    assert_eq!(
        status(archived).await.1,
        Some(TieringOperationStatus::TemporaryRestoreInProgress)
    );
    assert!(
        make_volume(archived).await.is_err(),
        "not until the restore completes"
    );
    emulator.set_lock_clock(3_601 + 6 * 3_600).unwrap();
    assert_eq!(
        status(archived).await,
        (
            Some(StorageTier::Standard),
            Some(TieringOperationStatus::TemporaryRestoreCompleted)
        ),
        "a temporarily restored snapshot is usable: in the standard tier until it expires"
    );
    let described = ec2
        .describe_snapshots()
        .snapshot_ids(archived)
        .send()
        .await
        .unwrap();
    assert!(
        described.snapshots()[0].restore_expiry_time().is_some(),
        "DescribeSnapshots gives its expiry"
    );
    assert!(make_volume(archived).await.is_ok());
    emulator
        .set_lock_clock(3_601 + 6 * 3_600 + 2 * 86_400)
        .unwrap();
    assert_eq!(
        status(archived).await,
        (
            Some(StorageTier::Archive),
            Some(TieringOperationStatus::ArchivalCompleted)
        ),
        "the temporary copy expired"
    );
    // A permanent restore brings it back to the standard tier.
    ec2.restore_snapshot_tier()
        .snapshot_id(archived)
        .permanent_restore(true)
        .send()
        .await
        .unwrap();
    emulator
        .set_lock_clock(3_601 + 12 * 3_600 + 2 * 86_400)
        .unwrap();
    assert_eq!(
        status(archived).await,
        (
            Some(StorageTier::Standard),
            Some(TieringOperationStatus::PermanentRestoreCompleted)
        )
    );
    let never = ec2
        .restore_snapshot_tier()
        .snapshot_id(&snapshots[7])
        .temporary_restore_days(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&never).as_deref(),
        Some("IncorrectState"),
        "never archived"
    );

    // Fast snapshot restore: at most five snapshots, this region's zones only.
    let enabled = ec2
        .enable_fast_snapshot_restores()
        .availability_zones(&zone)
        .set_source_snapshot_ids(Some(snapshots[1..7].to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.successful().len(), 5);
    let errors: Vec<String> = enabled
        .unsuccessful()
        .iter()
        .flat_map(|u| u.fast_snapshot_restore_state_errors())
        .filter_map(|e| e.error().and_then(|e| e.code()).map(str::to_owned))
        .collect();
    assert_eq!(errors, ["FastSnapshotRestoreLimitExceeded"]);
    let elsewhere = ec2
        .enable_fast_snapshot_restores()
        .availability_zones("eu-west-1a")
        .source_snapshot_ids(&snapshots[1])
        .send()
        .await
        .unwrap();
    assert!(elsewhere.successful().is_empty());
    let states = async || -> Vec<String> {
        ec2.describe_fast_snapshot_restores()
            .send()
            .await
            .unwrap()
            .fast_snapshot_restores()
            .iter()
            .map(|f| f.state().unwrap().as_str().to_owned())
            .collect()
    };
    assert!(states().await.iter().all(|s| s == "enabling"));
    let base = 3_601 + 12 * 3_600 + 2 * 86_400;
    emulator.set_lock_clock(base + 60).unwrap();
    assert!(states().await.iter().all(|s| s == "optimizing"));
    emulator.set_lock_clock(base + 3_601).unwrap();
    assert_eq!(states().await, vec!["enabled"; 5]);
    // Disabled, deleted or archived: no longer enabled.
    ec2.disable_fast_snapshot_restores()
        .availability_zones(&zone)
        .source_snapshot_ids(&snapshots[1])
        .send()
        .await
        .unwrap();
    ec2.delete_snapshot()
        .snapshot_id(&snapshots[2])
        .send()
        .await
        .unwrap();
    ec2.modify_snapshot_tier()
        .snapshot_id(&snapshots[3])
        .storage_tier(aws_sdk_ec2::types::TargetStorageTier::Archive)
        .send()
        .await
        .unwrap();
    assert_eq!(states().await.len(), 2);
    // An archived snapshot cannot be enabled.
    emulator.set_lock_clock(base + 2 * 3_601).unwrap();
    let archived_fsr = ec2
        .enable_fast_snapshot_restores()
        .availability_zones(&zone)
        .source_snapshot_ids(&snapshots[3])
        .send()
        .await
        .unwrap();
    assert!(archived_fsr.successful().is_empty());
}
