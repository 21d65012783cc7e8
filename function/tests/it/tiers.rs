//! The archive tier and fast snapshot restore end to end on the emulator (its tier and fast
//! snapshot restore patch, emulator/fast_moto.py): 400 days of weekly and monthly runs archive
//! exactly the sets that pay and never a volume's newest; fast snapshot restore follows each
//! instance's newest sets, disabling before enabling, never more than configured, within the
//! region's quota, and follows a narrower rule.

use crate::common::setup;
use aws_sdk_ec2::types::StorageTier;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use function::report::RunReport;
use function::tags;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime};

/// Weekly sets kept 200 days with `archive_after_days` 60 (a weekly set does not pay in the
/// archive unmeasured), monthly ones kept 365 days archived after 30 (they pay).
const GFS: &str = r#"[{"name":"weekly","retention_days":200,"keep_last":0,"overdue_after_hours":171,"archive_after_days":60},{"name":"monthly","retention_days":365,"keep_last":0,"overdue_after_hours":747,"archive_after_days":30}]"#;

/// Every snapshot of the deployment: id → (volume, schedule, made at, tier).
async fn own(
    ec2: &aws_sdk_ec2::Client,
) -> BTreeMap<String, (String, String, OffsetDateTime, Option<StorageTier>)> {
    let described = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    described
        .snapshots()
        .iter()
        .map(|s| {
            let tag = |key: &str| {
                s.tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                s.snapshot_id().unwrap().to_owned(),
                (
                    s.volume_id().unwrap_or_default().to_owned(),
                    tag(tags::SCHEDULE),
                    tags::parse_time(&tag(tags::CREATED_AT)).unwrap(),
                    s.storage_tier().cloned(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn four_hundred_days_of_gfs_archive_exactly_the_sets_that_pay_and_never_the_newest() {
    let s = setup().await;
    fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("db").data_volumes(1),
            InstanceSpec::backup("web").data_volumes(1),
            InstanceSpec::backup("app").data_volumes(1),
        ],
    )
    .await
    .unwrap();
    let ctx = function::context::Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", GFS)]));
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut archived_by_run: Vec<usize> = Vec::new();
    let mut every_archived: BTreeSet<String> = BTreeSet::new();
    for day in 0..=400i64 {
        let monthly = day % 30 == 0;
        let weekly = day % 7 == 0;
        for (schedule, fires, hour) in [("weekly", weekly, 0), ("monthly", monthly, 1)] {
            if !fires {
                continue;
            }
            let at = start + Duration::days(day) + Duration::hours(hour);
            // The emulator's tier clock follows the runs: an archival started a week ago is
            // complete.
            s.emulator
                .set_lock_clock((at - start).whole_seconds())
                .unwrap();
            let before = own(&s.ec2).await;
            let report: RunReport = handler::handle(
                &ctx,
                &json!({"action": "scheduled", "schedule": schedule}),
                at,
            )
            .await
            .unwrap_or_else(|e| panic!("day {day} {schedule}: {e}"));
            assert!(report.failed.is_empty(), "day {day}: {:?}", report.failed);
            let archived: Vec<String> = report
                .tiering
                .as_ref()
                .map(|t| t.archived.iter().map(|a| a.snapshot_id.clone()).collect())
                .unwrap_or_default();
            // What this run should archive, worked out from the snapshots it saw: monthly,
            // standard, at least 30 days old, with 90 days left, not its volume's newest.
            let mut newest: BTreeMap<&str, (OffsetDateTime, &str)> = BTreeMap::new();
            for (id, (volume, _, made, _)) in &before {
                if newest
                    .get(volume.as_str())
                    .is_none_or(|n| (*made, id.as_str()) > *n)
                {
                    newest.insert(volume, (*made, id));
                }
            }
            let mut expected: Vec<String> = before
                .iter()
                .filter(|(id, (volume, schedule, made, tier))| {
                    schedule == "monthly"
                        && tier.as_ref() != Some(&StorageTier::Archive)
                        && !every_archived.contains(*id)
                        && at - *made >= Duration::days(30)
                        && *made + Duration::days(365) - at >= Duration::days(90)
                        && newest[volume.as_str()].1 != id.as_str()
                })
                .map(|(id, _)| id.clone())
                .collect();
            expected.sort();
            let mut got = archived.clone();
            got.sort();
            assert_eq!(got, expected, "day {day} {schedule}");
            for id in &archived {
                let (volume, ..) = &before[id];
                assert_ne!(
                    newest[volume.as_str()].1,
                    id,
                    "the newest is never archived"
                );
            }
            archived_by_run.push(archived.len());
            every_archived.extend(archived);
        }
    }
    // Monthly sets 30 days old or more are archived, six volumes a month; weekly never.
    s.emulator.set_lock_clock(400 * 86_400 + 2 * 3_600).unwrap();
    let end = own(&s.ec2).await;
    let now = start + Duration::days(400) + Duration::hours(2);
    assert!(every_archived.len() >= 6 * 11, "{}", every_archived.len());
    for (id, (_, schedule, made, tier)) in &end {
        let in_archive = tier.as_ref() == Some(&StorageTier::Archive);
        match schedule.as_str() {
            "weekly" => assert!(!in_archive, "{id}: a weekly set does not pay archived"),
            _ if now - *made >= Duration::days(30) => {
                assert!(in_archive, "{id} made {made} is in the archive")
            }
            _ => assert!(!in_archive, "{id} made {made} is too young"),
        }
    }
    // Retention deleted the monthly sets past 365 days, archived ones included.
    assert!(
        end.values()
            .all(|(_, _, made, _)| now - *made <= Duration::days(366)),
        "nothing older than retention is left"
    );
    assert!(
        every_archived.iter().any(|id| !end.contains_key(id)),
        "archived sets past their retention were deleted"
    );
    let mails = s.emulator.sns_messages().unwrap();
    assert!(
        mails
            .iter()
            .any(|m| m.message.contains("Moved 6 snapshots to the archive tier")),
        "the summary says what moved"
    );
}

/// The deployment's fast snapshot restores: snapshot id → zones (any state but disabled).
async fn fast(ec2: &aws_sdk_ec2::Client) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in ec2
        .describe_fast_snapshot_restores()
        .send()
        .await
        .unwrap()
        .fast_snapshot_restores()
    {
        found
            .entry(f.snapshot_id().unwrap().to_owned())
            .or_default()
            .insert(f.availability_zone().unwrap().to_owned());
    }
    found
}

/// The two newest of `sets`, each snapshot ready in both of the test's zones.
fn newest_two(sets: &[Vec<String>]) -> BTreeMap<String, BTreeSet<String>> {
    let zones = BTreeSet::from(["us-east-1a".to_owned(), "us-east-1b".to_owned()]);
    sets.iter()
        .rev()
        .take(2)
        .flatten()
        .map(|id| (id.clone(), zones.clone()))
        .collect()
}

/// Every disable a run sent came before its first enable.
fn disables_first(actions: &[String]) {
    let last_disable = actions
        .iter()
        .rposition(|a| a == "DisableFastSnapshotRestores");
    let first_enable = actions
        .iter()
        .position(|a| a == "EnableFastSnapshotRestores");
    if let (Some(disable), Some(enable)) = (last_disable, first_enable) {
        assert!(disable < enable, "{actions:?}");
    }
}

#[tokio::test]
async fn fast_restore_keeps_each_instances_newest_sets_ready_and_never_more() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("db").data_volumes(1)])
        .await
        .unwrap();
    let schedules = |count: u32| {
        format!(
            r#"[{{"name":"daily","retention_days":30,"keep_last":0,"fast_restore":{{"zones":["us-east-1a","us-east-1b"],"count":{count}}}}}]"#
        )
    };
    let ctx =
        function::context::Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", &schedules(2))]));
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut sets: Vec<Vec<String>> = Vec::new();
    for day in 0..5 {
        let at = start + Duration::days(day);
        s.emulator.start_recording().unwrap();
        let report = handler::handle(
            &ctx,
            &json!({"action": "scheduled", "schedule": "daily"}),
            at,
        )
        .await
        .unwrap();
        let actions = s.emulator.stop_recording().unwrap();
        assert!(report.failed.is_empty(), "day {day}: {:?}", report.failed);
        let mut made: Vec<String> = report
            .created
            .iter()
            .filter_map(|c| c.snapshot_id.clone())
            .collect();
        made.sort();
        // Exactly the two newest sets (two volumes each) the run found completed are ready,
        // in both zones: the set a run makes is made ready by the next.
        assert_eq!(fast(&s.ec2).await, newest_two(&sets), "day {day}");
        sets.push(made);
        // Disabled before enabled: never more than two sets at once.
        disables_first(&actions);
        if day >= 3 {
            let tiering = report.tiering.as_ref().unwrap();
            assert_eq!(tiering.fast_restore_disabled.len(), 2, "the set replaced");
            assert_eq!(tiering.fast_restore_enabled.len(), 2, "the new set");
        }
    }
    let summary = s.emulator.sns_messages().unwrap().pop().unwrap().message;
    assert!(
        summary.contains("Fast snapshot restore enabled on 2 snapshots:")
            && summary.contains("Fast snapshot restore disabled on 2 snapshots:"),
        "{summary}"
    );

    // EC2's completion event of the set the last run made: it is made ready at once, and the
    // oldest of the two ready ones is disabled first, never three sets at once.
    let newest = sets.last().unwrap().clone();
    s.emulator.start_recording().unwrap();
    let completed = handler::handle(
        &ctx,
        &emulator::events::snapshots_completed(emulator::ACCOUNT_ID, emulator::REGION, &newest),
        start + Duration::days(4),
    )
    .await
    .unwrap();
    let actions = s.emulator.stop_recording().unwrap();
    let tiering = completed.tiering.as_ref().unwrap();
    assert_eq!(tiering.fast_restore_enabled.len(), 2, "{tiering:?}");
    assert_eq!(tiering.fast_restore_disabled.len(), 2, "{tiering:?}");
    assert!(
        actions.iter().any(|a| a == "DisableFastSnapshotRestores"),
        "{actions:?}"
    );
    disables_first(&actions);
    assert_eq!(
        fast(&s.ec2).await,
        newest_two(&sets),
        "the two newest, the one just completed among them"
    );

    // Three sets of two volumes would take six snapshots: the region's quota is five. The
    // newest sets get theirs; the refusal is reported, nothing else stops.
    let wider =
        function::context::Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", &schedules(3))]));
    let report = handler::handle(
        &wider,
        &json!({"action": "scheduled", "schedule": "daily"}),
        start + Duration::days(5),
    )
    .await;
    let report = match report {
        Err(function::context::FunctionError::RunFailed(report)) => *report,
        other => panic!("the quota's refusal is a reported failure: {other:?}"),
    };
    assert_eq!(report.created.len(), 2, "the backup itself is made");
    let refused: Vec<_> = report
        .failed
        .iter()
        .filter(|f| f.code == "FastSnapshotRestoreLimitExceeded")
        .collect();
    assert!(!refused.is_empty(), "{:?}", report.failed);
    assert_eq!(
        fast(&s.ec2).await.len(),
        5,
        "the quota is full, not exceeded"
    );

    // One set fewer: the older ready set is disabled, the newest stays.
    let narrower =
        function::context::Context::new(&s.sdk, s.config("prod", &[("SCHEDULES", &schedules(1))]));
    handler::handle(
        &narrower,
        &json!({"action": "cleanup"}),
        start + Duration::days(5),
    )
    .await
    .unwrap();
    let ready = fast(&s.ec2).await;
    assert_eq!(ready.len(), 2, "{ready:?}");
    assert!(
        ready
            .keys()
            .all(|id| !sets[..sets.len() - 1].iter().flatten().any(|old| old == id)),
        "only the newest set stays ready: {ready:?}"
    );
}
