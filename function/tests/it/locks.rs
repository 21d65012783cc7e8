//! Snapshot locks end to end on the emulator (its lock patch, emulator/fast_moto.py): a locked
//! schedule's sets are locked until their expiry as they are made, nobody in the account can
//! delete them meanwhile, cleanup keeps them with the reason, and deletes them once the lock
//! ends; a lock lost to a failed call is made by the next run.

use crate::common::setup;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::LockState;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use function::report::RunReport;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const SCHEDULES: &str = r#"[{"name":"daily","retention_days":7,"keep_last":0,"lock":{"mode":"compliance","cool_off_hours":1}},{"name":"weekly","retention_days":7,"keep_last":0}]"#;

#[tokio::test]
async fn a_locked_schedules_sets_survive_every_deletion_until_their_lock_ends() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("db").data_volumes(2)])
        .await
        .unwrap();
    let ctx =
        function::context::Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", SCHEDULES)]));
    let run = async |event: serde_json::Value, at: OffsetDateTime| -> RunReport {
        handler::handle(&ctx, &event, at)
            .await
            .unwrap_or_else(|e| panic!("the run failed: {e}"))
    };
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();

    // The daily set is locked as it is made, until its own expiry; the weekly one is not.
    let daily = run(json!({"action": "scheduled", "schedule": "daily"}), start).await;
    assert_eq!(daily.created.len(), 3, "{daily:?}");
    assert_eq!(daily.locked.len(), 3, "{daily:?}");
    let expiry = start + Duration::days(7);
    for locked in &daily.locked {
        assert_eq!(locked.until, expiry);
        assert_eq!(locked.mode, function::locks::LockMode::Compliance);
    }
    let summary = s.emulator.sns_messages().unwrap().remove(0).message;
    assert!(
        summary.contains("Locked 3 snapshots until each one's expiry:")
            && summary.contains(&format!(
                "compliance until {}",
                function::tags::format_time(expiry)
            )),
        "{summary}"
    );
    let weekly = run(
        json!({"action": "backup", "schedule": "weekly", "force": true}),
        start,
    )
    .await;
    assert_eq!(weekly.created.len(), 3);
    assert!(weekly.locked.is_empty(), "{weekly:?}");
    let described = s.ec2.describe_locked_snapshots().send().await.unwrap();
    let mut locked_ids: Vec<&str> = described
        .snapshots()
        .iter()
        .filter_map(|l| l.snapshot_id())
        .collect();
    locked_ids.sort_unstable();
    let mut daily_ids: Vec<&str> = daily
        .created
        .iter()
        .filter_map(|c| c.snapshot_id.as_deref())
        .collect();
    daily_ids.sort_unstable();
    assert_eq!(locked_ids, daily_ids, "exactly the daily set is locked");
    for info in described.snapshots() {
        assert_eq!(
            info.lock_expires_on().map(|t| t.secs()),
            Some(expiry.unix_timestamp()),
            "the lock ends when the snapshot expires"
        );
    }

    // Past the cooling-off, the account's own administrator cannot delete or unlock one.
    s.emulator.set_lock_clock(2 * 3600).unwrap();
    for id in &daily_ids {
        let deleted = s.ec2.delete_snapshot().snapshot_id(*id).send().await;
        assert_eq!(deleted.unwrap_err().code(), Some("SnapshotLocked"), "{id}");
        let unlocked = s.ec2.unlock_snapshot().snapshot_id(*id).send().await;
        assert!(unlocked.is_err(), "{id}: compliance past its cooling-off");
    }

    // Eight days on (the emulator's lock clock six days on: the locks still hold), the expired
    // daily set is kept with the reason and the weekly one is deleted. Nothing fails.
    s.emulator.set_lock_clock(6 * 86_400).unwrap();
    let cleanup = run(json!({"action": "cleanup"}), start + Duration::days(8)).await;
    assert_eq!(
        cleanup.deleted.len(),
        3,
        "the unlocked weekly set goes: {cleanup:?}"
    );
    assert!(cleanup.failed.is_empty(), "{cleanup:?}");
    for id in &daily_ids {
        let kept = cleanup
            .skipped
            .iter()
            .find(|k| k.subject.to_string() == format!("snapshot {id}"))
            .unwrap_or_else(|| panic!("{id} is kept with a reason: {cleanup:?}"));
        assert!(kept.reason.contains("locked"), "{}", kept.reason);
    }

    // Once the locks end, the next cleanup deletes the daily set.
    s.emulator.set_lock_clock(8 * 86_400).unwrap();
    let after = run(json!({"action": "cleanup"}), start + Duration::days(9)).await;
    let mut deleted: Vec<&str> = after
        .deleted
        .iter()
        .map(|d| d.snapshot_id.as_str())
        .collect();
    deleted.sort_unstable();
    assert_eq!(deleted, daily_ids, "{after:?}");
    assert!(after.failed.is_empty(), "{after:?}");
}

#[tokio::test]
async fn a_snapshot_left_unlocked_is_locked_by_the_next_run_once() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("web")])
        .await
        .unwrap();
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    // A set made before the schedule had a lock.
    let unlocked = function::context::Context::new(
        &s.sdk,
        s.config(
            "prod",
            &[(
                "SCHEDULES",
                r#"[{"name":"daily","retention_days":7,"keep_last":0}]"#,
            )],
        ),
    );
    let first = handler::handle(&unlocked, &json!({"action": "backup"}), start)
        .await
        .unwrap();
    let id = first.created[0].snapshot_id.clone().unwrap();
    assert!(first.locked.is_empty());
    // The schedule gains a governance lock: the next run, even a cleanup, locks the set.
    let locked = function::context::Context::new(
        &s.sdk,
        s.config(
            "prod",
            &[(
                "SCHEDULES",
                r#"[{"name":"daily","retention_days":7,"keep_last":0,"lock":{"mode":"governance"}}]"#,
            )],
        ),
    );
    let next = handler::handle(
        &locked,
        &json!({"action": "cleanup"}),
        start + Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(
        next.locked
            .iter()
            .map(|l| l.snapshot_id.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(next.locked[0].until, start + Duration::days(7));
    let state = s
        .ec2
        .describe_locked_snapshots()
        .snapshot_ids(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state.snapshots()[0].lock_state(),
        Some(&LockState::Governance)
    );
    // A run with the lock already in place locks nothing again.
    let again = handler::handle(
        &locked,
        &json!({"action": "cleanup"}),
        start + Duration::hours(2),
    )
    .await
    .unwrap();
    assert!(again.locked.is_empty(), "{again:?}");
}

/// A copy rule's lock: each copy is locked in its region until its own expiry, as it is
/// started; a copy left unlocked there is locked by the next sweep; the other region's copies,
/// whose rule has no lock, are not.
#[tokio::test]
async fn a_copy_rules_lock_holds_each_copy_in_its_region_until_it_expires() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("db").data_volumes(1)])
        .await
        .unwrap();
    let copies = r#"[{"region": "us-west-2", "retention_days": 30, "lock": {"mode": "governance"}}, {"region": "eu-west-1"}]"#;
    let mut ctx = function::context::Context::new(
        &s.sdk,
        s.config(
            "prod",
            &[
                (
                    "SCHEDULES",
                    r#"[{"name":"daily","retention_days":7,"keep_last":1}]"#,
                ),
                ("COPIES", copies),
            ],
        ),
    );
    ctx.settle = std::time::Duration::from_millis(20);
    let in_region = |region: &str| {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&s.sdk)
                .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
                .build(),
        )
    };
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let made = handler::handle(&ctx, &json!({"action": "manual-trigger"}), start)
        .await
        .unwrap();
    assert_eq!(made.created.len(), 2);
    // The next run's sweep copies the completed set (EC2's completion event would too).
    let report = handler::handle(&ctx, &json!({"action": "cleanup"}), start)
        .await
        .unwrap();
    assert_eq!(report.copies[0].started, 2, "{report:?}");
    let west: Vec<_> = report
        .locked
        .iter()
        .filter(|l| l.region.as_deref() == Some("us-west-2"))
        .collect();
    assert_eq!(
        west.len(),
        2,
        "both copies to us-west-2 are locked: {report:?}"
    );
    assert!(
        report
            .locked
            .iter()
            .all(|l| l.region.as_deref() == Some("us-west-2")),
        "eu-west-1's rule has no lock, and neither has the schedule: {report:?}"
    );
    for locked in &west {
        assert_eq!(
            locked.until,
            start + Duration::days(30),
            "the copy's own expiry"
        );
        assert_eq!(locked.mode, function::locks::LockMode::Governance);
    }
    let west_client = in_region("us-west-2");
    let described = west_client
        .describe_locked_snapshots()
        .send()
        .await
        .unwrap();
    assert_eq!(described.snapshots().len(), 2);
    assert_eq!(
        described.snapshots()[0].lock_state(),
        Some(&LockState::Governance)
    );
    assert!(
        in_region("eu-west-1")
            .describe_locked_snapshots()
            .send()
            .await
            .unwrap()
            .snapshots()
            .is_empty()
    );
    // Someone with UnlockSnapshot unlocks one: the next sweep locks it again.
    let unlocked = west[0].snapshot_id.clone();
    west_client
        .unlock_snapshot()
        .snapshot_id(&unlocked)
        .send()
        .await
        .unwrap();
    let deleted = west_client
        .delete_snapshot()
        .snapshot_id(&west[1].snapshot_id)
        .send()
        .await;
    assert_eq!(deleted.unwrap_err().code(), Some("SnapshotLocked"));
    let sweep = handler::handle(
        &ctx,
        &json!({"action": "cleanup"}),
        start + Duration::hours(1),
    )
    .await
    .unwrap();
    let relocked: Vec<&str> = sweep
        .locked
        .iter()
        .map(|l| l.snapshot_id.as_str())
        .collect();
    assert_eq!(relocked, [unlocked.as_str()], "{sweep:?}");
    assert!(sweep.failed.is_empty(), "{sweep:?}");
}
