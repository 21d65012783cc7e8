//! The tripwire end to end on the emulator (its EBS direct patch, emulator/fast_moto.py): a
//! fleet changes 1-5% of its data volumes a day, one volume also dumps 30% weekly; 90 days of
//! daily runs (40 days' retention, so sets expire as usual) measure and record every set and
//! raise nothing; then one instance's volume is "encrypted" (60% of its blocks rewritten with
//! random bytes) and EC2's completion event of its next set flags exactly it, mailed at once: the summary names the volume, its changed
//! share against the normal range, the clean restore point and the restore command; its clean
//! set is locked; its expiry is suspended, so the clean set outlives its retention, until the
//! trip is cleared, after which it expires once the pin has run out.

use crate::common::setup;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const BLOCKS: u64 = 16_384; // an 8 GiB volume in 512 KiB blocks
const QUIET_DAYS: i64 = 90;
const RETENTION_DAYS: i64 = 40;

#[tokio::test]
async fn ninety_quiet_days_raise_nothing_and_an_encrypted_instance_is_flagged_and_its_clean_set_kept()
 {
    let s = setup().await;
    let fleet = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("web").data_volumes(1),
            InstanceSpec::backup("db").data_volumes(1),
            InstanceSpec::backup("files").data_volumes(1),
        ],
    )
    .await
    .unwrap();
    let data: Vec<String> = fleet.iter().map(|f| f.volume_ids[1].clone()).collect();
    let write = |volume: &str, blocks: Vec<(u64, &'static str, u64)>| {
        s.emulator
            .write_volume_blocks(emulator::ACCOUNT_ID, emulator::REGION, volume, &blocks)
            .unwrap();
    };
    for volume in &data {
        write(volume, (0..4_000).map(|i| (i, "text", i)).collect());
    }
    let config = s.config(
        "prod",
        &[
            (
                "SCHEDULES",
                r#"[{"name":"daily","retention_days":40,"keep_last":1}]"#,
            ),
            (
                "TRIPWIRE",
                r#"{"multiplier":1.5,"floor":0.2,"sample_blocks":4}"#,
            ),
            ("ENVIRONMENT", "prod"),
        ],
    );
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    // A day's run is a fresh invocation (its own pacer, whose buckets a day refills): 90 days
    // run in minutes here, and one shared pacer would make every later run wait for tokens.
    let run = async |day: i64| {
        let ctx = function::context::Context::new(&s.sdk, config.clone());
        handler::handle(
            &ctx,
            &json!({"action": "scheduled", "schedule": "daily"}),
            start + Duration::days(day),
        )
        .await
        .unwrap_or_else(|e| panic!("day {day}: {e}"))
    };
    let mut seed = 1_000_000;
    let mut measured = 0;
    for day in 0..QUIET_DAYS {
        // Each volume changes 1-5% of its blocks; the db volume also dumps 30% every 7th day.
        for (n, volume) in data.iter().enumerate() {
            let share = 1 + (day as u64 + n as u64) % 5;
            let mut count = BLOCKS * share / 100;
            if n == 1 && day % 7 == 6 {
                count = BLOCKS * 30 / 100;
            }
            seed += 1;
            write(
                volume,
                (0..count)
                    .map(|i| ((i * 13 + day as u64) % BLOCKS, "text", seed + i))
                    .collect(),
            );
        }
        let report = run(day).await;
        let tripwire = report
            .tripwire
            .clone()
            .expect("the tripwire reports every run");
        assert!(
            tripwire.alerts.is_empty(),
            "day {day}: {:?}",
            tripwire.alerts
        );
        measured += tripwire.measured;
    }
    // Every set but the last one made is measured (it is measured by the next run).
    assert_eq!(
        measured,
        (QUIET_DAYS as usize - 1) * 6,
        "two volumes per instance, three instances, a set a day"
    );

    // The files instance is "encrypted": 60% of its data volume rewritten with random bytes.
    write(
        &data[2],
        (0..BLOCKS * 60 / 100)
            .map(|i| (i, "random", 7_000_000 + i))
            .collect(),
    );
    // The same day the web instance's data volume gets a large legitimate rewrite (a migration
    // of text): as big a change, but its blocks do not look encrypted.
    write(
        &data[0],
        (0..BLOCKS * 60 / 100)
            .map(|i| (i, "text", 9_000_000 + i))
            .collect(),
    );
    let attacked = QUIET_DAYS;
    let made = run(attacked).await;
    assert!(
        made.tripwire.unwrap().alerts.is_empty(),
        "the set is not complete yet when its own run ends"
    );
    // EC2's completion event of the files instance's set: the tripwire reads it at once.
    let set: Vec<String> = made
        .created
        .iter()
        .filter(|c| c.instance_id == fleet[2].id)
        .filter_map(|c| c.snapshot_id.clone())
        .collect();
    assert_eq!(set.len(), 2);
    let event = emulator::events::snapshots_completed(emulator::ACCOUNT_ID, emulator::REGION, &set);
    let ctx = function::context::Context::new(&s.sdk, config.clone());
    let messages_before = s.emulator.sns_messages().unwrap().len();
    let flagged = match handler::handle(&ctx, &event, start + Duration::days(attacked)).await {
        Ok(report) => report,
        Err(e) => panic!("the completion event's run: {e}"),
    };
    let tripwire = flagged.tripwire.clone().unwrap();
    assert!(tripwire.partial, "an event's run sees its instance only");
    assert_eq!(tripwire.measured, 2, "the event's set, both volumes");
    let alerts = tripwire.alerts;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].instance_id, fleet[2].id);
    assert_eq!(alerts[0].volume_id, data[2]);
    assert!(alerts[0].changed_permille >= 600, "{alerts:?}");
    assert!(alerts[0].threshold_permille <= 200, "{alerts:?}");
    assert!(
        alerts[0].sampled_millibits.is_some_and(|m| m > 7_900),
        "confirmed by its sampled blocks: {alerts:?}"
    );
    assert!(
        alerts[0].median_permille <= alerts[0].usual_peak_permille
            && alerts[0].usual_peak_permille <= 50,
        "{alerts:?}"
    );
    assert_eq!(flagged.metrics(0)["TripwireAlerts"], 1);
    assert_eq!(flagged.metrics(0)["TrippedInstances"], 1);

    // The clean set: the files instance's set of the day before, both volumes, pinned.
    let clean_at = function::tags::format_time(start + Duration::days(attacked - 1));
    let clean = snapshots_of(&s.ec2, &fleet[2].id, &clean_at).await;
    assert_eq!(clean.len(), 2, "root and data volume: {clean:?}");
    assert_eq!(tripwire.trips.len(), 1);
    let trip = &tripwire.trips[0];
    assert_eq!(
        (
            trip.instance_id.as_str(),
            trip.new,
            trip.clean_point.as_deref()
        ),
        (fleet[2].id.as_str(), true, Some(clean_at.as_str()))
    );
    let pin_end = start + Duration::days(attacked + 30);
    let locks = s
        .ec2
        .describe_locked_snapshots()
        .set_snapshot_ids(Some(clean.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(locks.snapshots().len(), 2, "{locks:?}");
    for lock in locks.snapshots() {
        assert_eq!(
            lock.lock_state(),
            Some(&aws_sdk_ec2::types::LockState::Governance)
        );
        assert_eq!(
            lock.lock_expires_on().map(|t| t.secs()),
            Some(pin_end.unix_timestamp())
        );
    }
    let messages = s.emulator.sns_messages().unwrap();
    assert_eq!(
        messages.len(),
        messages_before + 1,
        "a trip is mailed at once, not only by the next scheduled run"
    );
    let summary = messages.last().unwrap().message.clone();
    let restore = format!(
        "cargo xtask restore --env prod --instance {} --at {clean_at}",
        fleet[2].id
    );
    let clear = format!(
        "cargo xtask tripwire --env prod --clear --instance {}",
        fleet[2].id
    );
    assert!(
        summary.contains("TRIPWIRE")
            && summary.contains(&data[2])
            && summary.contains(&restore)
            && summary.contains(&clear)
            && summary.contains("governance until"),
        "{summary}"
    );
    // What a set changed is recorded on it, and the suspicious one carries its trip.
    let recorded = s
        .ec2
        .describe_snapshots()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:smartvault:changed-bytes")
                .values(((BLOCKS * 60 / 100) * 524_288).to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        recorded.snapshots().len(),
        1,
        "the encrypted set's changed bytes, exactly"
    );
    assert!(
        recorded.snapshots()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("smartvault:tripwire")
                && t.value().is_some_and(|v| v.starts_with("tripped"))),
        "{recorded:?}"
    );

    // The next scheduled run finds the set measured: no second alert, the trip still held.
    let next = run(attacked + 1).await;
    let held = next.tripwire.clone().unwrap();
    assert!(held.alerts.is_empty() && held.trips.len() == 1, "{held:?}");
    // The web instance's rewrite, measured by this run: as large, but not random, so not
    // flagged, and the summary says why.
    assert!(
        next.warnings.iter().any(|w| w.contains(&data[0])
            && w.contains("bits per byte")
            && w.ends_with("not flagged")),
        "{:?}",
        next.warnings
    );
    assert_eq!(next.metrics(0)["TrippedInstances"], 1);

    // Past the clean set's retention, and past its pin (the emulator's lock clock moved on):
    // the other instances' sets of that day expire; the flagged instance's stay, saying why.
    let past = attacked - 1 + RETENTION_DAYS + 1;
    s.emulator
        .set_lock_clock(Duration::days(past).whole_seconds())
        .unwrap();
    let kept = run(past).await;
    assert_eq!(snapshots_of(&s.ec2, &fleet[2].id, &clean_at).await, clean);
    assert!(
        snapshots_of(&s.ec2, &fleet[0].id, &clean_at)
            .await
            .is_empty(),
        "the other instances' sets of that day expired"
    );
    for id in &clean {
        let why = kept
            .skipped
            .iter()
            .find(|skip| skip.subject.to_string().contains(id.as_str()))
            .unwrap_or_else(|| panic!("{id} is reported kept: {:?}", kept.skipped));
        assert!(why.reason.contains("tripwire flagged"), "{}", why.reason);
    }
    assert_eq!(kept.metrics(0)["TrippedInstances"], 1, "the alarm holds");

    // The operator clears the trip (what `cargo xtask tripwire --clear` writes): the next run
    // expires the clean set, its pin having run out.
    let suspicious: Vec<String> = recorded
        .snapshots()
        .iter()
        .filter_map(|snap| snap.snapshot_id().map(str::to_owned))
        .collect();
    s.ec2
        .create_tags()
        .set_resources(Some(suspicious))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("smartvault:tripwire")
                .value(function::tripwire::cleared(start + Duration::days(past)))
                .build(),
        )
        .send()
        .await
        .unwrap();
    s.emulator
        .set_lock_clock(Duration::days(past + 1).whole_seconds())
        .unwrap();
    let resumed = run(past + 1).await;
    assert_eq!(resumed.metrics(0)["TrippedInstances"], 0);
    assert!(
        snapshots_of(&s.ec2, &fleet[2].id, &clean_at)
            .await
            .is_empty(),
        "{:?}",
        resumed.skipped
    );
}

/// The ids of `instance`'s snapshots of the set made at `at`, sorted.
async fn snapshots_of(ec2: &aws_sdk_ec2::Client, instance: &str, at: &str) -> Vec<String> {
    let found = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:smartvault:instance-id")
                .values(instance)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:smartvault:created-at")
                .values(at)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = found
        .snapshots()
        .iter()
        .filter_map(|snap| snap.snapshot_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// A volume whose previous snapshot records no written bytes (measured before they were
/// recorded) gets them back: its next snapshot is also read whole once, and the chain goes on.
#[tokio::test]
async fn a_chain_without_written_bytes_is_read_whole_once_and_goes_on() {
    let s = setup().await;
    let fleet = fleet::launch_all(&s.ec2, &[InstanceSpec::backup("app").data_volumes(1)])
        .await
        .unwrap();
    let data = fleet[0].volume_ids[1].clone();
    let write = |blocks: Vec<(u64, &'static str, u64)>| {
        s.emulator
            .write_volume_blocks(emulator::ACCOUNT_ID, emulator::REGION, &data, &blocks)
            .unwrap();
    };
    write((0..1_000).map(|i| (i, "text", i)).collect());
    let config = s.config("prod", &[("TRIPWIRE", r#"{"multiplier":1.5,"floor":0.2}"#)]);
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let run = async |day: i64| {
        let ctx = function::context::Context::new(&s.sdk, config.clone());
        handler::handle(
            &ctx,
            &json!({"action": "manual-trigger"}),
            start + Duration::days(day),
        )
        .await
        .unwrap_or_else(|e| panic!("day {day}: {e}"))
    };
    let first = run(0).await;
    // 30 blocks written for the first time, 20 rewritten.
    write((0..30).map(|i| (5_000 + i, "text", i)).collect());
    write((0..20).map(|i| (i, "text", 100 + i)).collect());
    let second = run(1).await;
    let id_of = |report: &function::report::RunReport| {
        report
            .created
            .iter()
            .find(|c| c.volume_id == data)
            .and_then(|c| c.snapshot_id.clone())
            .unwrap()
    };
    let (first, second) = (id_of(&first), id_of(&second));
    // The first snapshot's written bytes are forgotten, as on a set measured before they were.
    s.ec2
        .delete_tags()
        .resources(&first)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(function::tags::WRITTEN_BYTES)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s.emulator.start_recording().unwrap();
    run(2).await;
    let reads = s
        .emulator
        .stop_recording()
        .unwrap()
        .iter()
        .filter(|a| *a == "ListChangedBlocks")
        .count();
    let tags = s
        .ec2
        .describe_tags()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("resource-id")
                .values(&second)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tag = |key: &str| {
        tags.tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    assert_eq!(
        tag(function::tags::CHANGED_BYTES),
        Some((50 * 524_288).to_string())
    );
    assert_eq!(
        tag(function::tags::WRITTEN_BYTES),
        Some((1_030 * 524_288).to_string()),
        "read whole: the 1,000 blocks and the 30 new ones"
    );
    // Each volume's change, and one whole read for the data volume only: the root volume's
    // first snapshot still records what it holds (nothing).
    assert_eq!(reads, 3);
}
