//! Property tests of the planning core: for any inventory, ownership, keep-last and exclusions hold.

use super::*;
use crate::model::Phase;
use crate::model::{AttachedVolume, Job};
use crate::tags::{Tags, format_time};
use proptest::prelude::*;
use std::collections::BTreeSet;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-26 01:00 UTC);
const DEPLOYMENT: &str = "prod";

fn volume_strategy(instance: usize, index: usize) -> impl Strategy<Value = AttachedVolume> {
    any::<bool>().prop_map(move |excluded| AttachedVolume {
        volume_id: format!("vol-{instance}-{index}"),
        device_name: if index == 0 {
            "/dev/xvda".into()
        } else {
            format!("/dev/sd{}", (b'e' + index as u8) as char)
        },
        tags: if excluded {
            Tags::from([(tags::VOLUME_EXCLUDE.to_owned(), "true".to_owned())])
        } else {
            Tags::new()
        },
        details: Default::default(),
    })
}

fn instance_strategy(n: usize) -> impl Strategy<Value = Instance> {
    (
        prop::sample::select(vec![
            "running",
            "stopped",
            "pending",
            "stopping",
            "terminated",
        ]),
        prop::sample::select(vec!["true", "True", "false"]),
        0usize..4,
    )
        .prop_flat_map(move |(state, value, volumes)| {
            let volumes: Vec<_> = (0..volumes).map(|k| volume_strategy(n, k)).collect();
            (Just(state), Just(value), volumes)
        })
        .prop_map(move |(state, value, volumes)| Instance {
            id: format!("i-{n}"),
            state: state.to_owned(),
            root_device_name: Some("/dev/xvda".into()),
            tags: Tags::from([("Backup".to_owned(), value.to_owned())]),
            volumes,
            details: Default::default(),
        })
}

fn snapshot_strategy(j: usize) -> impl Strategy<Value = Snapshot> {
    (
        prop::sample::select(vec![
            "vol-0-0",
            "vol-0-1",
            "vol-1-0",
            "vol-2-1",
            "vol-gone-a",
            "vol-gone-b",
        ]),
        0i64..(60 * 24 * 60),
        prop::sample::select(vec![Some(DEPLOYMENT), Some("staging"), None]),
        prop::sample::select(vec!["i-0", "i-1", "i-2", "i-9"]),
        prop::option::of(-30i64..30),
        prop::sample::select(vec![
            SnapshotState::Completed,
            SnapshotState::Completed,
            SnapshotState::Pending,
            SnapshotState::Error,
        ]),
    )
        .prop_map(
            move |(volume, age_minutes, owner, instance, expires_in_days, state)| {
                let mut tags = Tags::from([(tags::INSTANCE_ID.to_owned(), instance.to_owned())]);
                if let Some(owner) = owner {
                    tags.insert(tags::MANAGED_BY.to_owned(), owner.to_owned());
                }
                if let Some(days) = expires_in_days {
                    tags.insert(
                        tags::EXPIRES_AT.to_owned(),
                        format_time(NOW + Duration::days(days)),
                    );
                }
                Snapshot {
                    tier: Default::default(),
                    id: format!("snap-{j:02}"),
                    volume_id: Some(volume.to_owned()),
                    start_time: NOW - Duration::minutes(age_minutes),
                    state,
                    size_gib: 8,
                    encrypted: false,
                    kms_key: None,
                    tags,
                }
            },
        )
}

fn inventory_strategy() -> impl Strategy<Value = Inventory> {
    (0usize..4, 0usize..16)
        .prop_flat_map(|(instances, snapshots)| {
            (
                (0..instances).map(instance_strategy).collect::<Vec<_>>(),
                (0..snapshots).map(snapshot_strategy).collect::<Vec<_>>(),
                any::<bool>(),
            )
        })
        .prop_map(|(instances, snapshots, gone_a_exists)| {
            let mut existing: BTreeSet<String> = instances
                .iter()
                .flat_map(|i| i.volumes.iter().map(|v| v.volume_id.clone()))
                .collect();
            if gone_a_exists {
                existing.insert("vol-gone-a".into());
            }
            Inventory {
                instances,
                snapshots,
                existing_volumes: existing,
                untagged: Vec::new(),
                locks: Default::default(),
            }
        })
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (1u32..30, 0u32..4, any::<bool>(), 0i64..120).prop_map(
        |(retention_days, keep_last, exclude_boot_volume, minutes)| Policy {
            deployment: DEPLOYMENT.into(),
            backup_tag_key: "Backup".into(),
            backup_tag_value: "true".into(),
            schedules: Policy::single_schedule(retention_days, keep_last),
            exclude_boot_volume,
            min_interval: Duration::minutes(minutes),
            copies: Vec::new(),
        },
    )
}

fn options_strategy() -> impl Strategy<Value = RunOptions> {
    (
        prop::sample::select(vec![Job::BackupAndCleanup, Job::Backup, Job::Cleanup]),
        any::<bool>(),
        prop::option::of(prop::collection::btree_set(
            prop::sample::select(vec!["i-0", "i-1", "i-2", "i-9"]),
            1..3,
        )),
    )
        .prop_map(|(job, force, ids)| RunOptions {
            job,
            interval: if force {
                Interval::Ignore
            } else {
                Interval::Respect
            },
            instance_ids: ids.map(|ids| ids.into_iter().map(str::to_owned).collect()),
            schedule: None,
            snapshot_ids: None,
            phase: Phase::FirstLink,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn only_this_deployments_snapshots_are_ever_deleted(
        inventory in inventory_strategy(), policy in policy_strategy(), options in options_strategy()
    ) {
        let plan = plan(&inventory, &policy, &options, NOW);
        for deletion in &plan.deletes {
            let snapshot = inventory.snapshots.iter().find(|s| s.id == deletion.snapshot_id).unwrap();
            prop_assert_eq!(snapshot.tags.get(tags::MANAGED_BY).map(String::as_str), Some(DEPLOYMENT));
        }
    }

    #[test]
    fn the_newest_keep_last_of_an_existing_volume_are_never_deleted(
        inventory in inventory_strategy(), policy in policy_strategy(), options in options_strategy()
    ) {
        let plan = plan(&inventory, &policy, &options, NOW);
        let deleted: BTreeSet<&str> = plan.deletes.iter().map(|d| d.snapshot_id.as_str()).collect();
        for volume in &inventory.existing_volumes {
            let mut ours: Vec<&Snapshot> = inventory
                .snapshots
                .iter()
                .filter(|s| s.volume_id.as_ref() == Some(volume))
                .filter(|s| s.state == SnapshotState::Completed)
                .filter(|s| s.tags.get(tags::MANAGED_BY).map(String::as_str) == Some(DEPLOYMENT))
                .collect();
            ours.sort_by(|a, b| a.start_time.cmp(&b.start_time).then(a.id.cmp(&b.id)));
            let keep_last = policy.default_rule().keep_last;
            for newest in ours.iter().rev().take(keep_last as usize) {
                prop_assert!(!deleted.contains(newest.id.as_str()), "{} is among the newest {} of {}", newest.id, keep_last, volume);
            }
        }
    }

    #[test]
    fn an_excluded_volume_is_never_snapshotted(
        inventory in inventory_strategy(), policy in policy_strategy(), options in options_strategy()
    ) {
        let plan = plan(&inventory, &policy, &options, NOW);
        let mut planned_instances = BTreeSet::new();
        for request in &plan.creates {
            prop_assert!(planned_instances.insert(request.instance_id.clone()), "one request per instance");
            let instance = inventory.instances.iter().find(|i| i.id == request.instance_id).unwrap();
            prop_assert!(instance.state == "running" || instance.state == "stopped");
            for volume in &instance.volumes {
                let tagged = volume.tags.get(tags::VOLUME_EXCLUDE).is_some_and(|v| v.eq_ignore_ascii_case("true"));
                let boot = volume.device_name == "/dev/xvda";
                let excluded = tagged || (boot && policy.exclude_boot_volume);
                let planned = request.volumes.iter().any(|p| p.volume_id == volume.volume_id);
                prop_assert_eq!(planned, !excluded, "volume {} excluded={}", volume.volume_id, excluded);
                if excluded {
                    // The exclusion travels in the call itself, so EC2 leaves the volume out.
                    let in_call = if boot { request.exclude_boot_volume } else { request.excluded_data_volume_ids.contains(&volume.volume_id) };
                    prop_assert!(in_call, "volume {} is excluded in the call", volume.volume_id);
                }
            }
        }
    }
}
