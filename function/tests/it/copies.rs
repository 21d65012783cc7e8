//! Copies in other regions end to end against the emulator: EC2's completion events and the
//! sweep copy every snapshot once to each region, tagged at creation; lost answers duplicate
//! nothing; copies expire by their own rule; another deployment's copies are never touched.

use crate::common::{Setup, setup};
use aws_sdk_ec2::types::{Filter, Snapshot, Tag, TagSpecification};
use emulator::fleet::{self, InstanceSpec};
use emulator::proxy::{FaultProxy, Faults};
use function::config::Config;
use function::context::Context;
use function::handler;
use function::report::{RegionCopies, RunReport};
use function::tags;
use serde_json::json;
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

const HOME: &str = emulator::REGION;
const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";
/// Copies to us-west-2 are kept 30 days (the newest 2 of each volume), encrypted with a key
/// there; copies to eu-west-1 keep the daily schedule's own rule (7 days, the newest 1).
const COPIES: &str = r#"[
    {"region": "us-west-2", "retention_days": 30, "keep_last": 2, "kms_key": "alias/smartvault-dr"},
    {"region": "eu-west-1"}
]"#;
const SCHEDULES: &str = r#"[{"name": "daily", "retention_days": 7, "keep_last": 1}]"#;

impl Setup {
    /// The configuration of a deployment with this file's schedule and copy rules.
    fn copies_config(&self, deployment: &str) -> Config {
        self.config(deployment, &[("SCHEDULES", SCHEDULES), ("COPIES", COPIES)])
    }

    fn copies_context(&self, deployment: &str) -> Context {
        let mut ctx = Context::new(&self.sdk, self.copies_config(deployment));
        ctx.settle = std::time::Duration::from_millis(20);
        ctx
    }

    fn in_region(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.sdk)
                .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
                .build(),
        )
    }

    /// Every snapshot in `region` carrying `deployment`'s managed-by tag.
    async fn managed_in(&self, region: &str, deployment: &str) -> Vec<Snapshot> {
        self.in_region(region)
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
            .unwrap()
            .snapshots()
            .to_vec()
    }
}

fn tag<'a>(snapshot: &'a Snapshot, key: &str) -> Option<&'a str> {
    snapshot
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// EC2's completion event for one instance's set, as EventBridge delivers it.
fn completion_event(snapshot_ids: &[String]) -> serde_json::Value {
    emulator::events::snapshots_completed(emulator::ACCOUNT_ID, HOME, snapshot_ids)
}

async fn run(ctx: &Context, event: serde_json::Value, at: OffsetDateTime) -> RunReport {
    handler::handle(ctx, &event, at)
        .await
        .unwrap_or_else(|e| panic!("the run failed: {e}"))
}

/// Backs the fleet up at `at` and sends each set's completion event; returns the snapshots
/// made, by instance.
async fn back_up_and_complete(ctx: &Context, at: OffsetDateTime) -> BTreeMap<String, Vec<String>> {
    let report = run(ctx, json!({"action": "backup", "force": true}), at).await;
    let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for created in &report.created {
        sets.entry(created.instance_id.clone())
            .or_default()
            .push(created.snapshot_id.clone().unwrap());
    }
    for ids in sets.values() {
        let copied = run(ctx, completion_event(ids), at).await;
        assert!(copied.failed.is_empty(), "{:?}", copied.failed);
    }
    sets
}

fn region<'a>(report: &'a RunReport, name: &str) -> &'a RegionCopies {
    report
        .copies
        .iter()
        .find(|c| c.region == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", report.copies))
}

#[tokio::test]
async fn both_regions_get_one_tagged_copy_per_snapshot_and_a_sweep_adds_none() {
    let s = setup().await;
    fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("web-1"),
            InstanceSpec::backup("db-1").data_volumes(2),
            InstanceSpec::untagged("scratch"),
        ],
    )
    .await
    .unwrap();
    let ctx = s.copies_context("prod");
    let at = OffsetDateTime::now_utc();
    let sets = back_up_and_complete(&ctx, at).await;
    let made: Vec<&String> = sets.values().flatten().collect();
    assert_eq!(made.len(), 4, "web-1's volume and db-1's three");

    for (region, expires_in_days) in [(WEST, 30), (EU, 7)] {
        let copies = s.managed_in(region, "prod").await;
        let mut sources: Vec<&str> = copies
            .iter()
            .map(|c| tag(c, tags::SOURCE_SNAPSHOT).unwrap())
            .collect();
        sources.sort();
        let mut expected: Vec<&str> = made.iter().map(|id| id.as_str()).collect();
        expected.sort();
        assert_eq!(sources, expected, "one copy per snapshot in {region}");
        for copy in &copies {
            let source = tag(copy, tags::SOURCE_SNAPSHOT).unwrap();
            let instance = sets
                .iter()
                .find(|(_, ids)| ids.iter().any(|id| id == source))
                .map(|(instance, _)| instance.as_str());
            assert_eq!(tag(copy, tags::INSTANCE_ID), instance);
            assert_eq!(tag(copy, tags::SOURCE_REGION), Some(HOME));
            assert_eq!(tag(copy, tags::SCHEDULE), Some("daily"));
            assert!(tag(copy, tags::SOURCE_VOLUME).unwrap().starts_with("vol-"));
            let created = tag(copy, tags::CREATED_AT).unwrap();
            assert_eq!(created, function::tags::format_time(at));
            assert_eq!(
                tag(copy, tags::EXPIRES_AT).unwrap(),
                function::tags::format_time(at + Duration::days(expires_in_days))
            );
            // Encrypted with the region's key where the rule names one; as the source
            // (unencrypted) elsewhere.
            if region == WEST {
                assert_eq!(copy.encrypted(), Some(true));
                assert_eq!(copy.kms_key_id(), Some("alias/smartvault-dr"));
            } else {
                assert_eq!(copy.encrypted(), Some(false));
            }
        }
    }
    // A scheduled run sweeps: nothing is missing, nothing is copied again.
    let sweep = run(
        &ctx,
        json!({"action": "scheduled", "schedule": "daily"}),
        at + Duration::hours(2),
    )
    .await;
    for name in [WEST, EU] {
        let counts = region(&sweep, name);
        assert_eq!(counts.started, 0, "{counts:?}");
        assert_eq!(counts.completed, 4, "{counts:?}");
        assert_eq!(counts.failed, 0);
    }
    assert!(sweep.body().contains("Copies in other regions:"));
    // The sweep's own new sets (made in this run, pending at its start on AWS) are copied by
    // their completion events or the next sweep; the next sweep copies them here.
    let next = run(&ctx, json!({"action": "cleanup"}), at + Duration::hours(3)).await;
    assert_eq!(region(&next, WEST).started, 4, "{:?}", next.copies);
    assert_eq!(s.managed_in(WEST, "prod").await.len(), 8);
    assert_eq!(s.managed_in(EU, "prod").await.len(), 8);
}

#[tokio::test]
async fn a_copy_whose_answer_is_lost_is_found_by_its_tags_and_not_made_twice() {
    let s = setup().await;
    fleet::launch_all(
        &s.ec2,
        &(0..6)
            .map(|n| InstanceSpec::backup(&format!("app-{n}")).data_volumes(1))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let direct = s.copies_context("prod");
    let at = OffsetDateTime::now_utc();
    let made = run(&direct, json!({"action": "backup"}), at).await;
    assert_eq!(made.created.len(), 12);
    // Every CopySnapshot's answer is lost after the emulator made the copy.
    let proxy = FaultProxy::start(
        s.emulator.port(),
        Faults {
            lost_answer_share: 1.0,
            lost_answer_action: Some("CopySnapshot".into()),
            ..Faults::default()
        },
    )
    .unwrap();
    let via_proxy = s.emulator.loader(&proxy.endpoint()).load().await;
    let mut ctx = Context::new(&via_proxy, s.copies_config("prod"));
    ctx.settle = std::time::Duration::from_millis(20);
    let sweep = run(&ctx, json!({"action": "cleanup"}), at + Duration::hours(1)).await;
    assert!(sweep.failed.is_empty(), "{:?}", sweep.failed);
    assert_eq!(proxy.counts().lost.get("CopySnapshot"), Some(&24));
    for name in [WEST, EU] {
        assert_eq!(region(&sweep, name).started, 12, "{:?}", sweep.copies);
        let copies = s.managed_in(name, "prod").await;
        let mut sources: Vec<&str> = copies
            .iter()
            .map(|c| tag(c, tags::SOURCE_SNAPSHOT).unwrap())
            .collect();
        sources.sort();
        sources.dedup();
        assert_eq!(copies.len(), 12, "no duplicate in {name}");
        assert_eq!(sources.len(), 12);
    }
    // The same completion event again (EventBridge delivers at least once): nothing new.
    let ids: Vec<String> = made
        .created
        .iter()
        .take(2)
        .map(|c| c.snapshot_id.clone().unwrap())
        .collect();
    let again = run(&direct, completion_event(&ids), at + Duration::hours(2)).await;
    assert_eq!(region(&again, WEST).started, 0);
    assert_eq!(s.managed_in(WEST, "prod").await.len(), 12);
}

#[tokio::test]
async fn copies_expire_by_their_own_rule_and_others_copies_survive() {
    let s = setup().await;
    fleet::launch_all(&s.ec2, &[InstanceSpec::backup("db-1").data_volumes(1)])
        .await
        .unwrap();
    let ctx = s.copies_context("prod");
    // The emulator stamps snapshots with the real time: the simulated days run ahead of it.
    let start = OffsetDateTime::now_utc() + Duration::days(1);
    for day in 0..3 {
        back_up_and_complete(&ctx, start + Duration::days(day)).await;
    }
    assert_eq!(s.managed_in(WEST, "prod").await.len(), 6);
    // Another deployment's expired copy from this region, and this deployment's name copied
    // from another region: neither is this deployment's here.
    let west = s.in_region(WEST);
    let volume = west
        .create_volume()
        .availability_zone(format!("{WEST}a"))
        .size(1)
        .send()
        .await
        .unwrap();
    let long_ago = function::tags::format_time(start - Duration::days(400));
    let mut foreign = Vec::new();
    for (deployment, from) in [("staging", HOME), ("prod", "eu-central-1")] {
        let tags = [
            (tags::MANAGED_BY, deployment),
            (tags::SOURCE_REGION, from),
            (tags::SOURCE_SNAPSHOT, "snap-0123456789abcdef0"),
            (tags::CREATED_AT, long_ago.as_str()),
            (tags::EXPIRES_AT, long_ago.as_str()),
        ];
        let made = west
            .create_snapshot()
            .volume_id(volume.volume_id().unwrap())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Snapshot)
                    .set_tags(Some(
                        tags.iter()
                            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                            .collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        foreign.push(made.snapshot_id().unwrap().to_owned());
    }

    // 31 days after the last set: every copy in us-west-2 is past its 30 days, and the newest
    // 2 of each volume stay (keep_last 2); in eu-west-1 (the schedule's 7 days, keep_last 1)
    // the newest 1 of each stays.
    let later = start + Duration::days(2 + 31);
    let report = run(&ctx, json!({"action": "cleanup"}), later).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(region(&report, WEST).deleted, 2, "{:?}", report.copies);
    assert_eq!(region(&report, EU).deleted, 4, "{:?}", report.copies);
    let kept_days = |copies: Vec<Snapshot>| {
        let mut days: Vec<String> = copies
            .iter()
            .filter(|c| tag(c, tags::SOURCE_REGION) == Some(HOME))
            .map(|c| tag(c, tags::CREATED_AT).unwrap().to_owned())
            .collect();
        days.sort();
        days.dedup();
        days
    };
    let day = |n: i64| function::tags::format_time(start + Duration::days(n));
    assert_eq!(
        kept_days(s.managed_in(WEST, "prod").await),
        [day(1), day(2)]
    );
    assert_eq!(kept_days(s.managed_in(EU, "prod").await), [day(2)]);
    let all: Vec<String> = west
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    for id in &foreign {
        assert!(all.contains(id), "{id} is not this deployment's and stays");
    }
}
