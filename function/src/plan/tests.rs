//! Table-driven tests of the planning core, all at one fixed `now`.

use super::*;
use crate::model::{AttachedVolume, InstanceDetails, Job, Phase, ScheduleRule};
use crate::restore_records;
use crate::restore_records::VolumeDetails;
use crate::tags::{
    MAX_DESCRIPTION_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS_PER_RESOURCE, Tags, fit, format_time,
};
use std::collections::BTreeSet;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-26 01:00 UTC);
const DEPLOYMENT: &str = "prod";

fn policy() -> Policy {
    Policy {
        deployment: DEPLOYMENT.into(),
        backup_tag_key: "Backup".into(),
        backup_tag_value: "true".into(),
        schedules: Policy::single_schedule(7, 1),
        exclude_boot_volume: false,
        min_interval: Duration::minutes(60),
        copies: Vec::new(),
    }
}

fn options(job: Job) -> RunOptions {
    RunOptions::whole_fleet(job, Phase::FirstLink)
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A running instance tagged Backup=true with a root volume `<id>-root` on /dev/xvda and
/// `data` data volumes `<id>-d0`, `<id>-d1`, ...
fn instance(id: &str, data: usize) -> Instance {
    let mut volumes = vec![AttachedVolume {
        volume_id: format!("{id}-root"),
        device_name: "/dev/xvda".into(),
        tags: Tags::new(),
        details: VolumeDetails {
            volume_type: Some("gp3".into()),
            iops: Some(3000),
            throughput: Some(125),
        },
    }];
    for n in 0..data {
        volumes.push(AttachedVolume {
            volume_id: format!("{id}-d{n}"),
            device_name: format!("/dev/sd{}", (b'f' + n as u8) as char),
            tags: Tags::new(),
            details: VolumeDetails {
                volume_type: Some("io2".into()),
                iops: Some(8000),
                throughput: None,
            },
        });
    }
    Instance {
        id: id.into(),
        state: "running".into(),
        root_device_name: Some("/dev/xvda".into()),
        tags: tags(&[("Backup", "true"), ("Name", id)]),
        volumes,
        details: InstanceDetails {
            instance_type: Some("m7g.large".into()),
            architecture: Some("arm64".into()),
            availability_zone: Some("eu-west-1a".into()),
            platform: Default::default(),
        },
    }
}

/// A completed managed snapshot of `volume`, taken `age` ago, expiring `expires_in` from now.
fn snapshot(
    id: &str,
    volume: &str,
    instance: &str,
    age: Duration,
    expires_in: Duration,
) -> Snapshot {
    Snapshot {
        tier: Default::default(),
        id: id.into(),
        volume_id: Some(volume.into()),
        start_time: NOW - age,
        state: SnapshotState::Completed,
        size_gib: 8,
        encrypted: false,
        kms_key: None,
        tags: tags(&[
            (tags::MANAGED_BY, DEPLOYMENT),
            (tags::INSTANCE_ID, instance),
            (tags::EXPIRES_AT, &format_time(NOW + expires_in)),
        ]),
    }
}

fn inventory(instances: Vec<Instance>, snapshots: Vec<Snapshot>, existing: &[&str]) -> Inventory {
    Inventory {
        instances,
        snapshots,
        existing_volumes: existing.iter().map(|v| v.to_string()).collect(),
        untagged: Vec::new(),
        locks: Default::default(),
    }
}

/// What a plan comes to, in a form a table can spell out.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// (instance, volumes snapshotted, boot excluded, data volumes excluded)
    creates: Vec<(String, Vec<String>, bool, Vec<String>)>,
    deletes: Vec<String>,
    skips: Vec<String>,
    warnings: usize,
}

fn outcome(plan: &Plan) -> Outcome {
    Outcome {
        creates: plan
            .creates
            .iter()
            .map(|c| {
                (
                    c.instance_id.clone(),
                    c.volumes.iter().map(|v| v.volume_id.clone()).collect(),
                    c.exclude_boot_volume,
                    c.excluded_data_volume_ids.clone(),
                )
            })
            .collect(),
        deletes: plan.deletes.iter().map(|d| d.snapshot_id.clone()).collect(),
        skips: plan.skips.iter().map(|s| s.subject.to_string()).collect(),
        warnings: plan.warnings.len(),
    }
}

fn create(instance: &str, volumes: &[&str]) -> (String, Vec<String>, bool, Vec<String>) {
    (
        instance.into(),
        volumes.iter().map(|v| v.to_string()).collect(),
        false,
        vec![],
    )
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Plans `inventory` and compares the outcome; `name` says which row failed.
fn check(
    name: &str,
    inventory: &Inventory,
    policy: &Policy,
    options: &RunOptions,
    expected: &Outcome,
) -> Plan {
    let plan = plan(inventory, policy, options, NOW);
    assert_eq!(&outcome(&plan), expected, "case: {name}\nplan: {plan:#?}");
    plan
}

#[test]
fn backup_selection_table() {
    let days = Duration::days;
    let mut excluded_data = instance("i-excl", 2);
    excluded_data.volumes[2].tags = tags(&[("BackupExclude", "TRUE")]);
    let mut excluded_root_tag = instance("i-exroot", 1);
    excluded_root_tag.volumes[0].tags = tags(&[("BackupExclude", "true")]);
    let mut all_excluded = instance("i-allx", 0);
    all_excluded.volumes[0].tags = tags(&[("BackupExclude", "true")]);
    let mut no_volumes = instance("i-novol", 0);
    no_volumes.volumes.clear();
    let mut capital_true = instance("i-cap", 0);
    capital_true.tags.insert("Backup".into(), "True".into());
    let mut other_value = instance("i-no", 0);
    other_value.tags.insert("Backup".into(), "false".into());
    let mut stopped = instance("i-stopped", 0);
    stopped.state = "stopped".into();
    let states: Vec<Instance> = ["pending", "stopping", "shutting-down", "terminated"]
        .iter()
        .map(|state| {
            let mut i = instance(&format!("i-{state}"), 0);
            i.state = state.to_string();
            i
        })
        .collect();

    let boot_excluded = Policy {
        exclude_boot_volume: true,
        ..policy()
    };
    let backup = options(Job::Backup);
    let cases: Vec<(&str, Inventory, Policy, RunOptions, Outcome)> = vec![
        (
            "every volume of a multi-volume instance, in one request",
            inventory(vec![instance("i-a", 2)], vec![], &[]),
            policy(),
            backup.clone(),
            Outcome {
                creates: vec![create("i-a", &["i-a-root", "i-a-d0", "i-a-d1"])],
                ..Outcome::default()
            },
        ),
        (
            "a data volume tagged BackupExclude is left out by id",
            inventory(vec![excluded_data], vec![], &[]),
            policy(),
            backup.clone(),
            Outcome {
                creates: vec![(
                    "i-excl".into(),
                    strings(&["i-excl-root", "i-excl-d0"]),
                    false,
                    strings(&["i-excl-d1"]),
                )],
                skips: strings(&["volume i-excl-d1"]),
                ..Outcome::default()
            },
        ),
        (
            "EXCLUDE_BOOT_VOLUME leaves the root volume out through the boot flag",
            inventory(vec![instance("i-b", 1)], vec![], &[]),
            boot_excluded,
            backup.clone(),
            Outcome {
                creates: vec![("i-b".into(), strings(&["i-b-d0"]), true, vec![])],
                skips: strings(&["volume i-b-root"]),
                ..Outcome::default()
            },
        ),
        (
            "a boot volume tagged BackupExclude uses the boot flag, not the data list",
            inventory(vec![excluded_root_tag], vec![], &[]),
            policy(),
            backup.clone(),
            Outcome {
                creates: vec![("i-exroot".into(), strings(&["i-exroot-d0"]), true, vec![])],
                skips: strings(&["volume i-exroot-root"]),
                ..Outcome::default()
            },
        ),
        (
            "an instance with every volume excluded, or none attached, is skipped",
            inventory(vec![all_excluded, no_volumes], vec![], &[]),
            policy(),
            backup.clone(),
            Outcome {
                skips: strings(&["volume i-allx-root", "instance i-allx", "instance i-novol"]),
                ..Outcome::default()
            },
        ),
        (
            "the tag value matches case-insensitively; other values are not selected",
            inventory(vec![capital_true, other_value], vec![], &[]),
            policy(),
            backup.clone(),
            Outcome {
                creates: vec![create("i-cap", &["i-cap-root"])],
                ..Outcome::default()
            },
        ),
        (
            "only running and stopped instances are backed up; the others are skipped",
            inventory(states.into_iter().chain([stopped]).collect(), vec![], &[]),
            policy(),
            backup.clone(),
            Outcome {
                creates: vec![create("i-stopped", &["i-stopped-root"])],
                skips: strings(&[
                    "instance i-pending",
                    "instance i-shutting-down",
                    "instance i-stopping",
                    "instance i-terminated",
                ]),
                ..Outcome::default()
            },
        ),
        (
            "a snapshot younger than the minimum interval skips the instance",
            inventory(
                vec![instance("i-recent", 0), instance("i-old", 0)],
                vec![
                    snapshot(
                        "snap-r",
                        "i-recent-root",
                        "i-recent",
                        Duration::minutes(30),
                        days(7),
                    ),
                    snapshot(
                        "snap-o",
                        "i-old-root",
                        "i-old",
                        Duration::minutes(61),
                        days(7),
                    ),
                ],
                &[],
            ),
            policy(),
            backup.clone(),
            Outcome {
                creates: vec![create("i-old", &["i-old-root"])],
                skips: strings(&["instance i-recent"]),
                ..Outcome::default()
            },
        ),
        (
            "force ignores the minimum interval",
            inventory(
                vec![instance("i-recent", 0)],
                vec![snapshot(
                    "snap-r",
                    "i-recent-root",
                    "i-recent",
                    Duration::minutes(1),
                    days(7),
                )],
                &[],
            ),
            policy(),
            RunOptions {
                interval: Interval::Ignore,
                ..backup.clone()
            },
            Outcome {
                creates: vec![create("i-recent", &["i-recent-root"])],
                ..Outcome::default()
            },
        ),
        (
            "a failed snapshot does not count for the minimum interval",
            inventory(
                vec![instance("i-failed", 0)],
                vec![Snapshot {
                    state: SnapshotState::Error,
                    ..snapshot(
                        "snap-e",
                        "i-failed-root",
                        "i-failed",
                        Duration::minutes(5),
                        days(7),
                    )
                }],
                &[],
            ),
            policy(),
            backup.clone(),
            Outcome {
                creates: vec![create("i-failed", &["i-failed-root"])],
                ..Outcome::default()
            },
        ),
        (
            "instance_ids limits the run and names requested ids that are not tagged",
            inventory(vec![instance("i-a", 0), instance("i-b", 0)], vec![], &[]),
            policy(),
            RunOptions {
                instance_ids: Some(BTreeSet::from(["i-b".to_string(), "i-missing".to_string()])),
                ..backup
            },
            Outcome {
                creates: vec![create("i-b", &["i-b-root"])],
                skips: strings(&["instance i-missing"]),
                ..Outcome::default()
            },
        ),
    ];
    for (name, inventory, policy, options, expected) in cases {
        check(name, &inventory, &policy, &options, &expected);
    }
}

#[test]
fn created_snapshots_carry_ownership_times_and_a_name() {
    let plan = check(
        "tags",
        &inventory(vec![instance("i-a", 1)], vec![], &[]),
        &policy(),
        &options(Job::Backup),
        &Outcome {
            creates: vec![create("i-a", &["i-a-root", "i-a-d0"])],
            ..Outcome::default()
        },
    );
    let request = &plan.creates[0];
    assert_eq!(
        request.tags,
        vec![
            (tags::MANAGED_BY.into(), "prod".into()),
            (tags::INSTANCE_ID.into(), "i-a".into()),
            (tags::CREATED_AT.into(), "2026-11-26T01:00:00Z".into()),
            (tags::EXPIRES_AT.into(), "2026-12-03T01:00:00Z".into()),
            (tags::SCHEDULE.into(), "default".into()),
            (tags::NAME.into(), "i-a backup 2026-11-26".into()),
            // What a restore needs that a snapshot does not keep.
            (restore_records::INSTANCE_TYPE.into(), "m7g.large".into()),
            (restore_records::ARCHITECTURE.into(), "arm64".into()),
            (
                restore_records::AVAILABILITY_ZONE.into(),
                "eu-west-1a".into()
            ),
            (restore_records::ROOT_DEVICE.into(), "/dev/xvda".into()),
            (
                "smartvault:volume:i-a-root".into(),
                "device=/dev/xvda type=gp3 iops=3000 throughput=125".into()
            ),
            (
                "smartvault:volume:i-a-d0".into(),
                "device=/dev/sdf type=io2 iops=8000".into()
            ),
        ]
    );
    assert_eq!(request.retention_days, 7);
    assert_eq!(
        request.description,
        "SmartVault backup of i-a (i-a) by prod"
    );

    // A UEFI instance with NitroTPM that requires IMDSv2 records it, for the image a restore
    // registers: a legacy-BIOS image of it would never boot.
    let mut uefi = instance("i-b", 0);
    uefi.details.platform = restore_records::Platform {
        boot_mode: Some("uefi".into()),
        tpm: Some("v2.0".into()),
        imds_tokens: Some("required".into()),
        details: Some("Windows".into()),
    };
    let planned = super::plan(
        &inventory(vec![uefi], vec![], &[]),
        &policy(),
        &options(Job::Backup),
        NOW,
    );
    let recorded = planned.creates[0]
        .tags
        .iter()
        .find(|(k, _)| k == restore_records::PLATFORM)
        .map(|(_, v)| v.as_str());
    assert_eq!(
        recorded,
        Some("boot=uefi tpm=v2.0 imds=required os=Windows")
    );
}

#[test]
fn long_names_are_cut_to_what_aws_accepts() {
    // AWS counts characters: 255 four-byte emoji would be 1,020 bytes.
    let long = "🙂".repeat(255);
    let mut named = instance("i-0123456789abcdef0", 0);
    named.tags.insert(tags::NAME.into(), long);
    let long_policy = Policy {
        deployment: "d".repeat(128),
        ..policy()
    };
    let plan = plan(
        &inventory(vec![named], vec![], &[]),
        &long_policy,
        &options(Job::Backup),
        NOW,
    );
    let request = &plan.creates[0];
    let name = &request
        .tags
        .iter()
        .find(|(k, _)| k == tags::NAME)
        .unwrap()
        .1;
    assert_eq!(name.chars().count(), MAX_TAG_VALUE_CHARS, "{name}");
    assert!(name.ends_with("… backup 2026-11-26"), "{name}");
    assert!(name.starts_with("🙂🙂"), "{name}");
    let description = &request.description;
    assert!(
        description.chars().count() <= MAX_DESCRIPTION_CHARS,
        "{description}"
    );
    assert!(
        description.ends_with(&format!("… (i-0123456789abcdef0) by {}", "d".repeat(128))),
        "the instance id and deployment survive: {description}"
    );
    for (_, value) in &request.tags {
        assert!(value.chars().count() <= MAX_TAG_VALUE_CHARS);
    }
    assert_eq!(fit("short", 10), "short");
    assert_eq!(fit("ééééé", 5), "ééééé");
    assert_eq!(fit("éééééé", 5), "éééé…");
}

#[test]
fn near_misses_warn_without_changing_what_is_selected() {
    let with_tags = |id: &str, pairs: &[(&str, &str)]| Instance {
        tags: tags(pairs),
        ..instance(id, 0)
    };
    let mut excluded_yes = instance("i-vol", 2);
    excluded_yes.volumes[1].tags = tags(&[(tags::VOLUME_EXCLUDE, "yes")]);
    excluded_yes.volumes[2].tags = tags(&[("backupexclude", "true")]);
    let mut excluded_true = instance("i-ok", 1);
    excluded_true.volumes[1].tags = tags(&[(tags::VOLUME_EXCLUDE, "TRUE")]);
    let instances = vec![
        with_tags("i-spaces", &[("Backup", "TRUE ")]),
        with_tags("i-case", &[("backup", "true")]),
        with_tags("i-padded", &[(" Backup", "true")]),
        with_tags("i-both", &[("Backup", "true"), ("BACKUP", "true")]),
        with_tags("i-off", &[("Backup", "false")]),
        excluded_yes,
        excluded_true,
    ];
    let plan = plan(
        &inventory(instances, vec![], &[]),
        &policy(),
        &options(Job::Backup),
        NOW,
    );
    let created: Vec<(&str, usize)> = plan
        .creates
        .iter()
        .map(|c| (c.instance_id.as_str(), c.volumes.len()))
        .collect();
    assert_eq!(created, vec![("i-both", 1), ("i-ok", 1), ("i-vol", 3)]);
    let expected = [
        "instance i-spaces: Backup=\"TRUE \" has spaces around \"true\"; the instance is not backed up",
        "instance i-case: tag \"backup\"=\"true\" is not the backup tag \"Backup\" (tag keys are case-sensitive)",
        "instance i-padded: tag \" Backup\"=\"true\" is not the backup tag",
        "volume i-vol-d0 of i-vol: BackupExclude=\"yes\" is neither `true` nor `false`; the volume is backed up",
        "volume i-vol-d1 of i-vol: tag \"backupexclude\"=\"true\" is not \"BackupExclude\"",
    ];
    for warning in expected {
        assert!(
            plan.warnings.iter().any(|w| w.starts_with(warning)),
            "missing {warning:?} in {:#?}",
            plan.warnings
        );
    }
    assert_eq!(plan.warnings.len(), expected.len(), "{:#?}", plan.warnings);
    let near_miss = inventory(
        vec![with_tags("i-case", &[("backup", "true")])],
        vec![],
        &[],
    );
    let cleanup = super::plan(&near_miss, &policy(), &options(Job::Cleanup), NOW);
    assert!(
        cleanup.warnings.is_empty(),
        "a cleanup looks at no instance"
    );
}

/// A snapshot of i-a's root volume whose `created-at` is `NOW`, the run's start.
fn this_run_again() -> Snapshot {
    let mut made = snapshot(
        "s-now",
        "i-a-root",
        "i-a",
        Duration::seconds(-30),
        Duration::days(7),
    );
    made.tags.insert(tags::CREATED_AT.into(), format_time(NOW));
    made
}

#[test]
fn an_instance_done_by_an_earlier_link_of_this_run_is_not_done_again() {
    // Made by this run (created-at is the run's start), and by the run a minute before.
    let this_run = this_run_again();
    let mut before = snapshot(
        "s-before",
        "i-b-root",
        "i-b",
        Duration::minutes(1),
        Duration::days(7),
    );
    before.tags.insert(
        tags::CREATED_AT.into(),
        format_time(NOW - Duration::minutes(1)),
    );
    let no_interval = Policy {
        min_interval: Duration::ZERO,
        ..policy()
    };
    let plan = check(
        "done in this run",
        &inventory(
            vec![instance("i-a", 0), instance("i-b", 0)],
            vec![this_run, before],
            &["i-a-root", "i-b-root"],
        ),
        &no_interval,
        &RunOptions {
            phase: Phase::LaterLink,
            ..options(Job::Backup)
        },
        &Outcome {
            creates: vec![create("i-b", &["i-b-root"])],
            ..Outcome::default()
        },
    );
    assert_eq!(plan.done_in_this_run, 1, "counted, not reported as a skip");
    // A run's first link made nothing yet: a snapshot from another run that started in the
    // same second is no reason to skip (two runs, `force`).
    let first = super::plan(
        &inventory(
            vec![instance("i-a", 0)],
            vec![this_run_again()],
            &["i-a-root"],
        ),
        &no_interval,
        &options(Job::Backup),
        NOW,
    );
    assert_eq!(first.creates.len(), 1);
    assert_eq!(first.done_in_this_run, 0);
}

#[test]
fn a_volume_name_is_copied_instead_of_set() {
    let mut named = instance("i-a", 1);
    named.volumes[1].tags = tags(&[("Name", "data")]);
    let plan = plan(
        &inventory(vec![named], vec![], &[]),
        &policy(),
        &options(Job::Backup),
        NOW,
    );
    assert!(plan.creates[0].tags.iter().all(|(k, _)| k != tags::NAME));
}

/// `count` tags `k00`, `k01`, ... on a volume.
fn many_tags(count: usize) -> Tags {
    (0..count)
        .map(|n| (format!("k{n:02}"), format!("v{n}")))
        .collect()
}

#[test]
fn volume_tags_are_copied_at_creation_while_they_fit_beside_ours() {
    // SmartVault's own six tags (ownership, instance, times, schedule, Name), six restore
    // records (four of the instance, one per volume) and the six recorded later (the tripwire's,
    // the archive's) leave room for 32.
    let mut fits = instance("i-a", 1);
    fits.volumes[1].tags = many_tags(32);
    fits.volumes[1]
        .tags
        .insert("aws:cloudformation:stack-name".into(), "s".into());
    let plan = plan(
        &inventory(vec![fits], vec![], &[]),
        &policy(),
        &options(Job::Backup),
        NOW,
    );
    assert_eq!(plan.creates[0].tags.len(), 12);
    assert_eq!(plan.creates[0].volume_tags, VolumeTags::CopiedAtCreation);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn a_volume_with_more_tags_than_fit_keeps_ours_and_the_first_that_fit() {
    let mut crowded = instance("i-a", 1);
    // A volume takes at most 50 tags, like a snapshot.
    crowded.volumes[1].tags = many_tags(48);
    crowded.volumes[1]
        .tags
        .insert("aws:reserved".into(), "x".into());
    crowded.volumes[0].tags = tags(&[("team", "db")]);
    let plan = plan(
        &inventory(vec![crowded], vec![], &[]),
        &policy(),
        &options(Job::Backup),
        NOW,
    );
    let request = &plan.creates[0];
    assert_eq!(
        request.tags.len(),
        12,
        "SmartVault's own tags and the restore records are all kept"
    );
    let VolumeTags::Fitted(fitted) = &request.volume_tags else {
        panic!("{:?}", request.volume_tags);
    };
    // Every volume of the call is tagged after creation, since the copy is all or nothing.
    assert_eq!(
        fitted["i-a-root"],
        vec![("team".to_owned(), "db".to_owned())]
    );
    let data = &fitted["i-a-d0"];
    assert_eq!(
        data.len(),
        MAX_TAGS_PER_RESOURCE - 12 - tags::RECORDED_LATER.len()
    );
    assert_eq!(data[0].0, "k00", "in key order");
    assert_eq!(data[31].0, "k31");
    assert!(data.iter().all(|(k, _)| !k.starts_with("aws:")));
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert_eq!(
        plan.warnings[0],
        "i-a-d0 of i-a: its snapshot carries 32 of the volume's 48 tags (a snapshot takes at \
         most 50, SmartVault's own take 12 and 6 are kept for what is recorded later); not \
         copied: k32, k33, k34, k35, k36, k37, k38, k39, k40, k41, k42, k43, k44, k45, k46, k47"
    );
    // The instance is still backed up: nothing fails for its tags.
    assert_eq!(outcome(&plan).creates.len(), 1);
}

#[test]
fn restore_records_beyond_the_tag_budget_are_left_out_with_a_warning() {
    // 44 volumes: the 10 tags of SmartVault and of the instance, and the 6 recorded later
    // (the tripwire's, the archive's), leave room for 34 records.
    let plan = plan(
        &inventory(vec![instance("i-big", 43)], vec![], &[]),
        &policy(),
        &options(Job::Backup),
        NOW,
    );
    let request = &plan.creates[0];
    assert_eq!(request.tags.len(), tags::MAX_TAGS_AT_CREATION);
    assert!(
        plan.warnings[0].starts_with(
            "i-big: the restore records of 10 of its 44 volumes do not fit in a snapshot's 50 tags \
             (less 6 kept for what is recorded later)"
        ),
        "{:?}",
        plan.warnings
    );
    assert_eq!(outcome(&plan).creates.len(), 1, "backed up all the same");
}

#[test]
fn retention_override_applies_per_instance_and_bad_values_warn() {
    let mut custom = instance("i-custom", 0);
    custom
        .tags
        .insert(tags::RETENTION_OVERRIDE.into(), "30".into());
    let mut bad = instance("i-bad", 0);
    bad.tags
        .insert(tags::RETENTION_OVERRIDE.into(), "forever".into());
    let mut zero = instance("i-zero", 0);
    zero.tags
        .insert(tags::RETENTION_OVERRIDE.into(), "0".into());
    let plan = plan(
        &inventory(vec![custom, bad, zero], vec![], &[]),
        &policy(),
        &options(Job::Backup),
        NOW,
    );
    let days: Vec<(&str, u32)> = plan
        .creates
        .iter()
        .map(|c| (c.instance_id.as_str(), c.retention_days))
        .collect();
    assert_eq!(days, vec![("i-bad", 7), ("i-custom", 30), ("i-zero", 7)]);
    let custom = plan
        .creates
        .iter()
        .find(|c| c.instance_id == "i-custom")
        .unwrap();
    assert!(
        custom
            .tags
            .contains(&(tags::EXPIRES_AT.into(), "2026-12-26T01:00:00Z".into()))
    );
    assert_eq!(plan.warnings.len(), 2);
    assert!(
        plan.warnings[0].contains("i-bad") && plan.warnings[0].contains("\"forever\""),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn retention_table() {
    let days = Duration::days;
    let other_deployment = Snapshot {
        tags: tags(&[
            (tags::MANAGED_BY, "staging"),
            (tags::INSTANCE_ID, "i-a"),
            (tags::EXPIRES_AT, "2020-01-01T00:00:00Z"),
        ]),
        ..snapshot("snap-other", "vol-a", "i-a", days(400), days(-300))
    };
    let unmanaged = Snapshot {
        tags: tags(&[("CreatedOn", "2020-01-01")]),
        ..snapshot("snap-hand", "vol-a", "i-a", days(400), days(-300))
    };
    let no_expiry_tag = Snapshot {
        tags: tags(&[(tags::MANAGED_BY, DEPLOYMENT), (tags::INSTANCE_ID, "i-a")]),
        ..snapshot("snap-noexp", "vol-gone", "i-a", days(10), days(0))
    };
    let keep3 = Policy {
        schedules: Policy::single_schedule(7, 3),
        ..policy()
    };
    let keep0 = Policy {
        schedules: Policy::single_schedule(7, 0),
        ..policy()
    };
    let cleanup = options(Job::Cleanup);
    let cases: Vec<(&str, Inventory, Policy, RunOptions, Outcome)> = vec![
        (
            "expired snapshots go, unexpired ones stay; the newest of a live volume is kept",
            inventory(
                vec![],
                vec![
                    snapshot("snap-1", "vol-a", "i-a", days(10), days(-3)),
                    snapshot("snap-2", "vol-a", "i-a", days(9), days(-2)),
                    snapshot("snap-3", "vol-a", "i-a", days(8), days(-1)),
                    snapshot("snap-4", "vol-a", "i-a", days(1), days(6)),
                ],
                &["vol-a"],
            ),
            policy(),
            cleanup.clone(),
            Outcome {
                deletes: strings(&["snap-1", "snap-2", "snap-3"]),
                ..Outcome::default()
            },
        ),
        (
            "keep-last protects the newest even when every snapshot has expired",
            inventory(
                vec![],
                vec![
                    snapshot("snap-1", "vol-a", "i-a", days(10), days(-3)),
                    snapshot("snap-2", "vol-a", "i-a", days(9), days(-2)),
                ],
                &["vol-a"],
            ),
            policy(),
            cleanup.clone(),
            Outcome {
                deletes: strings(&["snap-1"]),
                skips: strings(&["snapshot snap-2"]),
                ..Outcome::default()
            },
        ),
        (
            "keep-last counts per volume, and keeps N",
            inventory(
                vec![],
                vec![
                    snapshot("a-1", "vol-a", "i-a", days(14), days(-7)),
                    snapshot("a-2", "vol-a", "i-a", days(13), days(-6)),
                    snapshot("a-3", "vol-a", "i-a", days(12), days(-5)),
                    snapshot("a-4", "vol-a", "i-a", days(11), days(-4)),
                    snapshot("b-1", "vol-b", "i-a", days(14), days(-7)),
                ],
                &["vol-a", "vol-b"],
            ),
            keep3,
            cleanup.clone(),
            Outcome {
                deletes: strings(&["a-1"]),
                skips: strings(&[
                    "snapshot b-1",
                    "snapshot a-2",
                    "snapshot a-3",
                    "snapshot a-4",
                ]),
                ..Outcome::default()
            },
        ),
        (
            "snapshots of a volume that no longer exists expire by age alone",
            inventory(
                vec![],
                vec![
                    snapshot("snap-1", "vol-gone", "i-a", days(10), days(-3)),
                    snapshot("snap-2", "vol-gone", "i-a", days(9), days(-2)),
                ],
                &[],
            ),
            policy(),
            cleanup.clone(),
            Outcome {
                deletes: strings(&["snap-1", "snap-2"]),
                ..Outcome::default()
            },
        ),
        (
            "keep-last 0 keeps nothing back",
            inventory(
                vec![],
                vec![snapshot("snap-1", "vol-a", "i-a", days(10), days(-3))],
                &["vol-a"],
            ),
            keep0,
            cleanup.clone(),
            Outcome {
                deletes: strings(&["snap-1"]),
                ..Outcome::default()
            },
        ),
        (
            "unmanaged and other deployments' snapshots are never planned for deletion",
            inventory(vec![], vec![other_deployment, unmanaged], &[]),
            policy(),
            cleanup.clone(),
            Outcome::default(),
        ),
        (
            "an expired pending snapshot waits; a failed one does not count for keep-last",
            inventory(
                vec![],
                vec![
                    snapshot("snap-ok", "vol-a", "i-a", days(10), days(-3)),
                    Snapshot {
                        state: SnapshotState::Error,
                        ..snapshot("snap-err", "vol-a", "i-a", days(9), days(-2))
                    },
                    Snapshot {
                        state: SnapshotState::Pending,
                        ..snapshot("snap-pend", "vol-b", "i-a", days(9), days(-2))
                    },
                ],
                &["vol-a"],
            ),
            policy(),
            cleanup.clone(),
            Outcome {
                deletes: strings(&["snap-err"]),
                skips: strings(&["snapshot snap-ok", "snapshot snap-pend"]),
                ..Outcome::default()
            },
        ),
        (
            "a missing expiry tag falls back to start time plus retention, with a warning",
            inventory(vec![], vec![no_expiry_tag], &[]),
            policy(),
            cleanup.clone(),
            Outcome {
                deletes: strings(&["snap-noexp"]),
                warnings: 1,
                ..Outcome::default()
            },
        ),
        (
            "instance_ids limits the cleanup to those instances' snapshots",
            inventory(
                vec![],
                vec![
                    snapshot("snap-a", "vol-a", "i-a", days(10), days(-3)),
                    snapshot("snap-b", "vol-b", "i-b", days(10), days(-3)),
                ],
                &[],
            ),
            policy(),
            RunOptions {
                instance_ids: Some(BTreeSet::from(["i-b".to_string()])),
                ..cleanup
            },
            Outcome {
                deletes: strings(&["snap-b"]),
                ..Outcome::default()
            },
        ),
    ];
    for (name, inventory, policy, options, expected) in cases {
        check(name, &inventory, &policy, &options, &expected);
    }
}

#[test]
fn jobs_do_only_their_half() {
    let inv = inventory(
        vec![instance("i-a", 0)],
        vec![snapshot(
            "snap-1",
            "vol-gone",
            "i-a",
            Duration::days(10),
            Duration::days(-3),
        )],
        &[],
    );
    let both = Outcome {
        creates: vec![create("i-a", &["i-a-root"])],
        deletes: strings(&["snap-1"]),
        ..Outcome::default()
    };
    check(
        "both",
        &inv,
        &policy(),
        &options(Job::BackupAndCleanup),
        &both,
    );
    check(
        "backup",
        &inv,
        &policy(),
        &options(Job::Backup),
        &Outcome {
            creates: vec![create("i-a", &["i-a-root"])],
            ..Outcome::default()
        },
    );
    check(
        "cleanup",
        &inv,
        &policy(),
        &options(Job::Cleanup),
        &Outcome {
            deletes: strings(&["snap-1"]),
            ..Outcome::default()
        },
    );
}

#[test]
fn times_are_whole_seconds_in_utc() {
    let t = datetime!(2026-11-26 01:02:03.456 +02:00);
    assert_eq!(format_time(t), "2026-11-25T23:02:03Z");
}

/// `snapshot`, made by `schedule`.
fn from_schedule(snapshot: Snapshot, schedule: &str) -> Snapshot {
    let mut snapshot = snapshot;
    snapshot.tags.insert(tags::SCHEDULE.into(), schedule.into());
    snapshot
}

fn three_schedules() -> Policy {
    Policy {
        schedules: vec![
            ScheduleRule::new("daily", 7, 2),
            ScheduleRule::new("weekly", 35, 1),
            ScheduleRule::new("monthly", 365, 1),
        ],
        ..policy()
    }
}

#[test]
fn each_schedule_keeps_its_own_newest_sets_whatever_the_others_made() {
    let h = Duration::hours;
    // Volume a: three expired daily sets, one expired weekly set older than all of them, and
    // an expired set of a schedule since removed. A snapshot from before schedules (no tag) is
    // the default schedule's, which this policy no longer has.
    let snapshots = vec![
        from_schedule(snapshot("d1", "vol-a", "i-a", h(72), h(-1)), "daily"),
        from_schedule(snapshot("d2", "vol-a", "i-a", h(48), h(-1)), "daily"),
        from_schedule(snapshot("d3", "vol-a", "i-a", h(24), h(-1)), "daily"),
        from_schedule(snapshot("w1", "vol-a", "i-a", h(500), h(-1)), "weekly"),
        from_schedule(snapshot("q1", "vol-a", "i-a", h(900), h(-1)), "quarterly"),
        snapshot("old", "vol-a", "i-a", h(1000), h(-1)),
    ];
    let plan = plan(
        &inventory(vec![], snapshots, &["vol-a"]),
        &three_schedules(),
        &options(Job::Cleanup),
        NOW,
    );
    // Daily keeps its newest 2 (d2, d3); weekly its newest 1 (w1), though older than every
    // daily set; a schedule no longer configured keeps by the most generous rule (365 days,
    // the newest 2), so q1 and the untagged one stay too.
    assert_eq!(outcome(&plan).deletes, ["d1"]);
    let kept: Vec<&str> = plan
        .skips
        .iter()
        .map(|s| s.reason.as_str())
        .filter(|r| r.contains("kept as one of the newest"))
        .collect();
    assert!(
        kept.iter()
            .any(|r| r.contains("newest 1 of volume vol-a from schedule weekly")),
        "{kept:?}"
    );
}

#[test]
fn the_minimum_interval_and_the_retention_are_the_runs_schedules() {
    let h = Duration::hours;
    let mut tagged = instance("i-a", 0);
    tagged.tags.insert("Backup".into(), "true".into());
    // A daily set an hour old does not hold back the weekly run; a weekly one would.
    let inventory = inventory(
        vec![tagged],
        vec![from_schedule(
            snapshot(
                "d1",
                "i-a-root",
                "i-a",
                h(1) - Duration::minutes(30),
                h(100),
            ),
            "daily",
        )],
        &["i-a-root"],
    );
    let weekly = RunOptions {
        schedule: Some("weekly".into()),
        ..options(Job::Backup)
    };
    let plan = plan(&inventory, &three_schedules(), &weekly, NOW);
    assert_eq!(plan.creates.len(), 1, "{:?}", plan.skips);
    let request = &plan.creates[0];
    assert_eq!(request.retention_days, 35);
    assert!(
        request
            .tags
            .contains(&(tags::SCHEDULE.to_owned(), "weekly".to_owned()))
    );
    let daily = RunOptions {
        schedule: Some("daily".into()),
        ..options(Job::Backup)
    };
    let plan = plan_for(&inventory, &daily);
    assert!(plan.creates.is_empty());
    assert!(
        plan.skips[0]
            .reason
            .contains("last backed up by schedule daily 30 minutes ago"),
        "{:?}",
        plan.skips
    );
    // A manual run that names no schedule is the first listed one's when there is no
    // `default`.
    let manual = plan_for(&inventory, &options(Job::Backup));
    assert!(manual.creates.is_empty(), "daily, within the interval");
}

fn plan_for(inventory: &Inventory, options: &RunOptions) -> Plan {
    plan(inventory, &three_schedules(), options, NOW)
}

#[test]
fn snapshots_started_within_one_second_are_ordered_by_the_run_that_made_them() {
    // Two expired sets with the same start time (some EC2 front ends give whole seconds); keep_last
    // 1 keeps the one of the later run, whatever their ids say.
    let h = Duration::hours;
    let made_by = |mut s: Snapshot, run: OffsetDateTime| {
        s.tags.insert(tags::CREATED_AT.into(), format_time(run));
        s
    };
    for (older, newer) in [("snap-b", "snap-a"), ("snap-a", "snap-b")] {
        let snapshots = vec![
            made_by(snapshot(newer, "vol-a", "i-a", h(2), h(-1)), NOW - h(1)),
            made_by(snapshot(older, "vol-a", "i-a", h(2), h(-1)), NOW - h(30)),
        ];
        let plan = plan(
            &inventory(vec![], snapshots, &["vol-a"]),
            &policy(),
            &options(Job::Cleanup),
            NOW,
        );
        assert_eq!(outcome(&plan).deletes, [older]);
    }
}

#[test]
fn a_set_dated_in_the_future_never_ranks_as_the_newest() {
    // A forged continuation made a set three days ago dated 2099 (it never expires by its
    // tag); two real sets followed, both expired. keep_last 1 keeps the newest real one: the
    // future date is read as unreadable and the set ranks by its own start time.
    let d = Duration::days;
    let dated = |mut s: Snapshot, run: OffsetDateTime| {
        s.tags.insert(tags::CREATED_AT.into(), format_time(run));
        s
    };
    let in_2099 = time::macros::datetime!(2099-01-01 00:00 UTC);
    let snapshots = vec![
        dated(
            snapshot("snap-forged", "vol-a", "i-a", d(3), d(27_000)),
            in_2099,
        ),
        dated(
            snapshot("snap-older", "vol-a", "i-a", d(2), -d(1)),
            NOW - d(2),
        ),
        dated(
            snapshot("snap-newer", "vol-a", "i-a", d(1), -d(1)),
            NOW - d(1),
        ),
    ];
    let plan = plan(
        &inventory(vec![], snapshots, &["vol-a"]),
        &policy(),
        &options(Job::Cleanup),
        NOW,
    );
    assert_eq!(outcome(&plan).deletes, ["snap-older"]);
}

#[test]
fn a_tripped_instance_keeps_every_set_until_the_trip_is_cleared_and_others_expire_as_usual() {
    let expired = |id: &str, volume: &str, instance: &str| {
        snapshot(id, volume, instance, Duration::days(9), -Duration::days(2))
    };
    let mut flagged = snapshot(
        "snap-spike",
        "i-1-root",
        "i-1",
        Duration::hours(2),
        Duration::days(7),
    );
    flagged.tags.insert(
        tags::TRIPWIRE.into(),
        crate::tripwire::tripped(NOW - Duration::hours(1)),
    );
    let snapshots = vec![
        expired("snap-old-1", "i-1-root", "i-1"),
        expired("snap-old-2", "i-2-root", "i-2"),
        snapshot(
            "snap-new-2",
            "i-2-root",
            "i-2",
            Duration::days(1),
            Duration::days(6),
        ),
        flagged.clone(),
    ];
    let existing = ["i-1-root", "i-2-root"];
    let inv = inventory(Vec::new(), snapshots, &existing);
    let planned = super::plan(&inv, &policy(), &options(Job::Cleanup), NOW);
    assert_eq!(strings(&["snap-old-2"]), outcome(&planned).deletes);
    let kept = planned
        .skips
        .iter()
        .find(|s| s.subject == Subject::Snapshot("snap-old-1".into()))
        .expect("the tripped instance's expired set is reported kept");
    assert!(
        kept.reason.contains("tripwire flagged i-1")
            && kept.reason.contains("snap-spike")
            && kept
                .reason
                .contains("cargo xtask tripwire --clear --instance i-1"),
        "{}",
        kept.reason
    );
    // Cleared: expiry resumes.
    let mut cleared = flagged;
    cleared
        .tags
        .insert(tags::TRIPWIRE.into(), crate::tripwire::cleared(NOW));
    let inv = inventory(
        Vec::new(),
        vec![
            expired("snap-old-1", "i-1-root", "i-1"),
            expired("snap-old-2", "i-2-root", "i-2"),
            snapshot(
                "snap-new-2",
                "i-2-root",
                "i-2",
                Duration::days(1),
                Duration::days(6),
            ),
            cleared,
        ],
        &existing,
    );
    let planned = super::plan(&inv, &policy(), &options(Job::Cleanup), NOW);
    assert_eq!(
        strings(&["snap-old-1", "snap-old-2"]),
        outcome(&planned).deletes
    );
}
