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
