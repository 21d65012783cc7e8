//! The tripwire end to end on the emulator (its EBS direct patch, emulator/fast_moto.py): a
//! fleet changes 1-5% of its data volumes a day, one volume also dumps 30% weekly; three weeks
//! of daily runs measure and record every set and raise nothing; then one instance's volume is
//! "encrypted" (60% of its blocks rewritten with random bytes) and the next run flags exactly
//! it, with the volume, the changed share against the usual peak, in the summary and metrics.

use crate::common::setup;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const BLOCKS: u64 = 16_384; // an 8 GiB volume in 512 KiB blocks

#[tokio::test]
async fn three_quiet_weeks_raise_nothing_and_one_encrypted_volume_is_flagged() {
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
    let ctx = function::context::Context::new(
        &s.sdk,
        s.config(
            "prod",
            &[
                (
                    "SCHEDULES",
                    r#"[{"name":"daily","retention_days":40,"keep_last":1}]"#,
                ),
                ("TRIPWIRE", r#"{"multiplier":1.5,"floor":0.2}"#),
            ],
        ),
    );
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let run = async |day: i64| {
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
    for day in 0..23 {
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
        22 * 6,
        "two volumes per instance, three instances, 22 sets"
    );

    // The files instance is "encrypted": 60% of its data volume rewritten with random bytes.
    write(
        &data[2],
        (0..BLOCKS * 60 / 100)
            .map(|i| (i, "random", 7_000_000 + i))
            .collect(),
    );
    let made = run(23).await;
    assert!(
        made.tripwire.unwrap().alerts.is_empty(),
        "the set is measured by the next run"
    );
    let flagged = run(24).await;
    let alerts = flagged.tripwire.clone().unwrap().alerts;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].instance_id, fleet[2].id);
    assert_eq!(alerts[0].volume_id, data[2]);
    assert!(alerts[0].changed_permille >= 600, "{alerts:?}");
    assert!(alerts[0].threshold_permille <= 200, "{alerts:?}");
    assert_eq!(flagged.metrics(0)["TripwireAlerts"], 1);
    let summary = s.emulator.sns_messages().unwrap().pop().unwrap().message;
    assert!(
        summary.contains("TRIPWIRE")
            && summary.contains(&fleet[2].id)
            && summary.contains(&data[2]),
        "{summary}"
    );
    // What a set changed is recorded on it.
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
}
