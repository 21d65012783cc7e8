//! Table tests of the vault planners: what is shared, unshared and refused, vault lag, and
//! what the vault copies, locks and expires.

use super::*;
use crate::locks::LockState;

const DEPLOYMENT: &str = "prod";
const VAULT: &str = "222222222222";
const WORKLOAD: &str = "123456789012";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/cmk";

fn at(hours: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::hours(hours)
}

fn target() -> VaultTarget {
    VaultTarget {
        account: VAULT.into(),
        region: "us-west-2".into(),
        reader_role: format!("arn:aws:iam::{VAULT}:role/reader"),
        max_lag_hours: 36,
        shareable_keys: vec![KEY.to_owned()],
        vault_retention_days: None,
    }
}

/// One of this deployment's snapshots of `instance`, made at hour `made`.
fn own(id: &str, instance: &str, made: i64, state: SnapshotState) -> Snapshot {
    let mut snapshot = Snapshot::tagged(
        id,
        state,
        &[
            (tags::MANAGED_BY, DEPLOYMENT),
            (tags::INSTANCE_ID, instance),
            (tags::CREATED_AT, &tags::format_time(at(made))),
        ],
    );
    snapshot.start_time = at(made);
    snapshot.volume_id = Some(format!("vol-{id}"));
    snapshot
}

fn shares(
    own: &[Snapshot],
    shared: &[&str],
    vaulted: &[(&str, SnapshotState)],
    now: i64,
) -> SharePlan {
    plan_shares(
        own,
        &shared.iter().map(|s| (*s).to_owned()).collect(),
        &vaulted
            .iter()
            .map(|(id, state)| ((*id).to_owned(), *state))
            .collect(),
        &target(),
        DEPLOYMENT,
        at(now),
    )
}

#[test]
fn completed_sets_are_shared_until_the_vault_has_its_copy_then_unshared() {
    use SnapshotState::*;
    let fleet = [
        own("new", "i-1", 10, Completed),
        own("pending", "i-1", 11, Pending),
        own("shared", "i-1", 9, Completed),
        own("copying", "i-1", 8, Completed),
        own("arrived", "i-1", 7, Completed),
        own("done", "i-1", 6, Completed),
        own("failed-copy", "i-1", 5, Completed),
    ];
    let plan = shares(
        &fleet,
        &["shared", "copying", "arrived", "failed-copy"],
        &[
            ("copying", Pending),
            ("arrived", Completed),
            ("done", Completed),
            ("failed-copy", Error),
        ],
        12,
    );
    // A pending snapshot waits; one shared and not yet copied stays shared; a failed vault copy
    // leaves the share for the next try.
    assert_eq!(plan.share, vec!["new".to_owned()]);
    assert_eq!(plan.unshare, vec!["arrived".to_owned()]);
    assert!(plan.skips.is_empty());
}

#[test]
fn only_this_deployments_own_completed_sets_are_shared() {
    let mut other = own("other", "i-1", 1, SnapshotState::Completed);
    other.tags.insert(tags::MANAGED_BY.into(), "staging".into());
    let mut copy = own("copy", "i-1", 1, SnapshotState::Completed);
    copy.tags
        .insert(tags::SOURCE_REGION.into(), "us-west-2".into());
    let plan = shares(&[other, copy], &[], &[], 2);
    assert_eq!(plan, SharePlan::default());
}

#[test]
fn a_snapshot_under_a_key_the_vault_cannot_be_given_is_refused_with_the_fix() {
    let cases = [
        // (encrypted, key, shared?)
        (false, None, true),
        (true, Some(KEY), true),
        (
            true,
            Some("arn:aws:kms:us-east-1:123456789012:key/aws-ebs-default"),
            false,
        ),
        (true, None, false),
    ];
    for (encrypted, key, expected) in cases {
        let mut snapshot = own("s", "i-1", 1, SnapshotState::Completed);
        snapshot.encrypted = encrypted;
        snapshot.kms_key = key.map(str::to_owned);
        let plan = shares(&[snapshot], &[], &[], 2);
        assert_eq!(plan.share.len() == 1, expected, "{encrypted} {key:?}");
        if !expected {
            let reason = &plan.skips[0].reason;
            assert!(
                reason.contains("aws/ebs")
                    && reason.contains(VAULT)
                    && reason.contains("source_kms_keys"),
                "{reason}"
            );
        }
    }
}

#[test]
fn vault_lag_counts_from_the_oldest_set_after_the_newest_one_the_vault_has_whole() {
    use SnapshotState::*;
    let fleet = [
        // i-1: sets at 0 and 24 in the vault, 48 and 72 not: behind since 48.
        own("a0", "i-1", 0, Completed),
        own("a24", "i-1", 24, Completed),
        own("a48", "i-1", 48, Completed),
        own("a72", "i-1", 72, Completed),
        // i-2: its newest set whole in the vault: up to date, an older one missing is history.
        own("b0", "i-2", 0, Completed),
        own("b24", "i-2", 24, Completed),
        // i-3: a set of two volumes with one copy still pending is not whole; nothing ever
        // arrived: behind since its first set.
        own("c10", "i-3", 10, Completed),
        own("c10b", "i-3", 10, Completed),
    ];
    let plan = shares(
        &fleet,
        &[],
        &[
            ("a0", Completed),
            ("a24", Completed),
            ("b24", Completed),
            ("c10", Completed),
            ("c10b", Pending),
        ],
        80,
    );
    let lag: Vec<(&str, Option<OffsetDateTime>, u32)> = plan
        .lag
        .iter()
        .map(|l| (l.instance_id.as_str(), l.behind_since, l.hours))
        .collect();
    assert_eq!(
        lag,
        vec![
            ("i-1", Some(at(48)), 32),
            ("i-2", None, 0),
            ("i-3", Some(at(10)), 70)
        ]
    );
}

fn keeper() -> VaultKeeper {
    VaultKeeper {
        sources: vec![VaultSource {
            account: WORKLOAD.into(),
            region: "us-east-1".into(),
        }],
        retention_days: 30,
        kms_key: format!("arn:aws:kms:us-west-2:{VAULT}:key/vault"),
        cool_off_hours: None,
    }
}

fn shared(id: &str, made: i64, owner: &str, description: &str) -> SharedSnapshot {
    let mut snapshot = Snapshot::tagged(id, SnapshotState::Completed, &[]);
    snapshot.start_time = at(made);
    snapshot.volume_id = Some(format!("vol-{id}"));
    SharedSnapshot {
        snapshot,
        owner: owner.into(),
        region: "us-east-1".into(),
        description: description.into(),
    }
}

const OURS: &str = "SmartVault backup of web (i-1) by prod";

fn vault_copy(id: &str, source: &str, expires: i64, state: SnapshotState) -> Snapshot {
    Snapshot::tagged(
        id,
        state,
        &[
            (tags::MANAGED_BY, "vault"),
            (tags::SOURCE_SNAPSHOT, source),
            (SOURCE_ACCOUNT, WORKLOAD),
            (tags::EXPIRES_AT, &tags::format_time(at(expires))),
        ],
    )
}

fn pull(
    shared: &[SharedSnapshot],
    copies: &[Snapshot],
    locks: &[(&str, SnapshotLock)],
    pending: usize,
    now: i64,
) -> PullPlan {
    plan_pull(
        shared,
        copies,
        &locks.iter().map(|(id, l)| ((*id).to_owned(), *l)).collect(),
        pending,
        &keeper(),
        "vault",
        "us-west-2",
        at(now),
    )
}

#[test]
fn descriptions_say_whose_set_it_is() {
    assert_eq!(described(OURS), Some(("i-1".into(), "prod".into())));
    assert_eq!(
        described("SmartVault backup of a (b) c (i-9) by team (x)"),
        Some(("i-9".into(), "team (x)".into()))
    );
    assert_eq!(described("made by hand"), None);
    assert_eq!(described("SmartVault backup of web (vol-1) by prod"), None);
    assert_eq!(described("SmartVault backup of web (i-1) by "), None);
}

#[test]
fn the_vault_copies_its_sources_sets_with_its_key_tagged_with_its_own_expiry_newest_first() {
    let plan = pull(
        &[
            shared("old", 0, WORKLOAD, OURS),
            shared("new", 10, WORKLOAD, OURS),
            shared("have", 5, WORKLOAD, OURS),
            shared("stranger", 10, "999999999999", OURS),
            shared("by-hand", 10, WORKLOAD, "made by hand"),
        ],
        &[vault_copy("vc", "have", 30 * 24, SnapshotState::Completed)],
        &[(
            "vc",
            SnapshotLock {
                state: LockState::Compliance,
                expires_on: Some(at(30 * 24)),
            },
        )],
        0,
        11,
    );
    let sources: Vec<&str> = plan
        .copies
        .iter()
        .map(|c| c.source_snapshot_id.as_str())
        .collect();
    assert_eq!(
        sources,
        vec!["new", "old"],
        "newest first, never twice, only its sources'"
    );
    let copy = &plan.copies[0];
    assert_eq!(copy.kms_key.as_deref(), Some(keeper().kms_key.as_str()));
    assert!(copy.encrypted);
    assert_eq!(copy.source_region, "us-east-1");
    let tag = |key: &str| {
        copy.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        tag(tags::EXPIRES_AT),
        Some(tags::format_time(at(10) + Duration::days(30)).as_str())
    );
    assert_eq!(tag(tags::INSTANCE_ID), Some("i-1"));
    assert_eq!(tag(SOURCE_ACCOUNT), Some(WORKLOAD));
    assert_eq!(tag(tags::MANAGED_BY), Some("vault"));
    assert_eq!(plan.skips.len(), 1, "{:?}", plan.skips);
    assert!(plan.skips[0].reason.contains("not a SmartVault set"));
    assert!(plan.locks.is_empty() && plan.deletes.is_empty());
    assert_eq!((plan.completed, plan.in_flight), (1, 0));
}

#[test]
fn the_vault_stays_within_ec2s_copies_in_flight_and_skips_what_it_could_not_lock() {
    let many: Vec<SharedSnapshot> = (0..25)
        .map(|i| shared(&format!("s{i}"), 100 + i, WORKLOAD, OURS))
        .collect();
    let plan = pull(&many, &[], &[], 3, 200);
    assert_eq!(plan.copies.len(), MAX_CONCURRENT_COPIES - 3);
    assert_eq!(plan.waiting, 25 - (MAX_CONCURRENT_COPIES - 3));
    // Made 30 days less a few hours ago: its vault copy could not be locked for a day.
    let late = pull(
        &[shared("late", 0, WORKLOAD, OURS)],
        &[],
        &[],
        0,
        30 * 24 - 5,
    );
    assert!(late.copies.is_empty());
    assert!(late.skips[0].reason.contains("retention_days=30"));
}

#[test]
fn vault_copies_are_locked_in_compliance_mode_and_expire_only_by_the_vaults_rule_when_no_lock_holds()
 {
    use SnapshotState::*;
    let copies = [
        vault_copy("unlocked", "a", 40 * 24, Completed),
        vault_copy("expired", "b", 10, Completed),
        vault_copy("expired-locked", "c", 10, Completed),
        vault_copy("expired-pending", "d", 10, Pending),
        vault_copy("live", "e", 40 * 24, Completed),
    ];
    let holds = SnapshotLock {
        state: LockState::Compliance,
        expires_on: Some(at(100)),
    };
    let plan = pull(
        &[],
        &copies,
        &[("expired-locked", holds), ("live", holds)],
        0,
        20,
    );
    let locked: Vec<(&str, LockMode)> = plan
        .locks
        .iter()
        .map(|l| (l.snapshot_id.as_str(), l.rule.mode))
        .collect();
    assert_eq!(locked, vec![("unlocked", LockMode::Compliance)]);
    assert_eq!(plan.locks[0].until, at(40 * 24));
    let deleted: Vec<&str> = plan
        .deletes
        .iter()
        .map(|d| d.snapshot_id.as_str())
        .collect();
    assert_eq!(deleted, vec!["expired"]);
    assert!(plan.skips.iter().any(|s| s.reason.contains("locked")));
    // Another deployment's snapshots in the vault account are never touched.
    let mut stranger = vault_copy("stranger", "z", 10, Completed);
    stranger
        .tags
        .insert(tags::MANAGED_BY.into(), "other".into());
    assert_eq!(pull(&[], &[stranger], &[], 0, 20), PullPlan::default());
}

#[test]
fn a_vault_keeper_names_what_ec2_refuses() {
    let mut bad_key = keeper();
    bad_key.kms_key = "alias/vault".into();
    assert!(bad_key.problem().unwrap().contains("not a KMS key ARN"));
    let mut short = keeper();
    short.retention_days = 1;
    assert!(short.problem().unwrap().contains("vault_for"));
    let mut cool = keeper();
    cool.cool_off_hours = Some(100);
    assert!(cool.problem().is_some());
    let mut none = keeper();
    none.sources.clear();
    assert!(none.problem().unwrap().contains("accounts"));
    assert_eq!(keeper().problem(), None);
}

#[test]
fn a_set_older_than_the_vault_would_keep_is_not_offered_and_its_share_ends() {
    use SnapshotState::*;
    let mut keeping = target();
    keeping.vault_retention_days = Some(10);
    // Hour 0 and 100 sets; now is hour 24 * 9 + 1: the first is 9 days old (would keep under a
    // day more: not lockable), the second fine.
    let fleet = [
        own("old-shared", "i-1", 0, Completed),
        own("old", "i-2", 0, Completed),
        own("young", "i-1", 100, Completed),
    ];
    let plan = plan_shares(
        &fleet,
        &["old-shared".to_owned()].into_iter().collect(),
        &BTreeMap::new(),
        &keeping,
        DEPLOYMENT,
        at(24 * 9 + 1),
    );
    assert_eq!(plan.share, vec!["young".to_owned()]);
    assert_eq!(plan.unshare, vec!["old-shared".to_owned()]);
    // Lag counts only what the vault could still get: i-1 waits since hour 100, i-2 not at all.
    let lag: Vec<(&str, Option<OffsetDateTime>)> = plan
        .lag
        .iter()
        .map(|l| (l.instance_id.as_str(), l.behind_since))
        .collect();
    assert_eq!(lag, vec![("i-1", Some(at(100)))]);
    let mut zero = target();
    zero.vault_retention_days = Some(0);
    assert!(zero.problem().is_some());
}
