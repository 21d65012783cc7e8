//! Destroy's apply step on the emulator, with one snapshot's deletion refused by the fault proxy.

use super::*;
use crate::aws::Aws;
use crate::aws::snapshots;
use crate::output::Output;
use emulator::Emulator;
use emulator::proxy::{FaultProxy, Faults};

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_snapshot_deletion_is_reported_while_the_rest_goes_on() {
    let env = crate::config::example("local");
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let direct = Aws::from_sdk(&emulator.sdk_config().await, emulator::REGION.into());
    let volume = emulator::fleet::detached_volume(&direct.ec2).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            emulator::fleet::snapshot_by_hand(
                &direct.ec2,
                &volume,
                &[(function::tags::MANAGED_BY, env.stack_name.as_str())],
            )
            .await
            .unwrap(),
        );
    }
    direct
        .logs
        .create_log_group()
        .log_group_name(log_group(&env.stack_name))
        .send()
        .await
        .unwrap();

    let proxy = FaultProxy::start(
        emulator.port(),
        Faults {
            failing_snapshot: Some(ids[1].clone()),
            ..Faults::default()
        },
    )
    .unwrap();
    let aws = Aws::from_sdk(
        &emulator.loader(&proxy.endpoint()).load().await,
        emulator::REGION.into(),
    );
    let survey = survey(&aws, &env).await.unwrap();
    let plan = plan(&env, &survey, Snapshots::Delete).unwrap();
    assert_eq!(plan.steps.len(), 2, "snapshots, log group: {plan:?}");
    let result = apply(&aws, &env, &plan, &survey, Output::Text).await;

    let mut deleted = result.snapshots_deleted.clone();
    deleted.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(deleted, expected, "the others are deleted");
    assert_eq!(result.failures.len(), 1, "{:?}", result.failures);
    assert!(
        result.failures[0].contains(&ids[1])
            && result.failures[0].contains("UnauthorizedOperation"),
        "{:?}",
        result.failures
    );
    assert!(result.log_group_deleted, "the steps after it still run");
    let left = snapshots::managed(&direct, &env.stack_name).await.unwrap();
    assert_eq!(
        left.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![ids[1].as_str()],
        "only the refused snapshot is left"
    );
}

/// Locked snapshots on the emulator: destroy deletes what no lock holds and keeps the rest,
/// saying until when; with --unlock-governance it removes governance locks first and deletes
/// those too, and a compliance lock is never touched.
#[tokio::test(flavor = "multi_thread")]
async fn destroy_keeps_what_a_lock_holds_and_unlocks_only_governance_when_asked() {
    use aws_sdk_ec2::types::LockMode;
    let env = crate::config::example("local");
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let aws = Aws::from_sdk(&emulator.sdk_config().await, emulator::REGION.into());
    let volume = emulator::fleet::detached_volume(&aws.ec2).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            emulator::fleet::snapshot_by_hand(
                &aws.ec2,
                &volume,
                &[(function::tags::MANAGED_BY, env.stack_name.as_str())],
            )
            .await
            .unwrap(),
        );
    }
    let (free, governed, complied) = (&ids[0], &ids[1], &ids[2]);
    aws.ec2
        .lock_snapshot()
        .snapshot_id(governed)
        .lock_mode(LockMode::Governance)
        .lock_duration(30)
        .send()
        .await
        .unwrap();
    aws.ec2
        .lock_snapshot()
        .snapshot_id(complied)
        .lock_mode(LockMode::Compliance)
        .lock_duration(30)
        .send()
        .await
        .unwrap();

    // Without --unlock-governance: only the unlocked one goes; both locked ones stay, named.
    let found = survey(&aws, &env).await.unwrap();
    let kept_plan = plan(&env, &found, Snapshots::Delete).unwrap();
    let kept = kept_plan
        .kept
        .iter()
        .find(|k| k.what.starts_with("2 snapshots locked"))
        .unwrap_or_else(|| panic!("{:?}", kept_plan.kept));
    assert!(
        kept.what.contains(governed) && kept.what.contains(complied),
        "{kept:?}"
    );
    let result = apply(&aws, &env, &kept_plan, &found, Output::Text).await;
    assert_eq!(result.snapshots_deleted, std::slice::from_ref(free));
    assert!(result.failures.is_empty(), "{:?}", result.failures);

    // With it: the governance lock goes first, then that snapshot; the compliance one stays.
    let found = survey(&aws, &env).await.unwrap();
    let unlocking = plan(&env, &found, Snapshots::DeleteUnlockingGovernance).unwrap();
    assert!(
        unlocking
            .describe()
            .contains("the governance locks of 1 snapshots"),
        "{}",
        unlocking.describe()
    );
    let result = apply(&aws, &env, &unlocking, &found, Output::Text).await;
    assert_eq!(result.snapshots_deleted, std::slice::from_ref(governed));
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    let left = snapshots::managed(&aws, &env.stack_name).await.unwrap();
    assert_eq!(
        left.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [complied.as_str()],
        "a compliance lock is never touched"
    );
}
