//! The archive tier and fast snapshot restore from the operator's side, end to end on the
//! emulator: `snapshots` and `coverage` show a set archived by the function; `restore` of it
//! starts a restore from the archive and says when it is ready, `--resume` refuses while it is
//! coming back, the function's next summary mails it ready, and `--resume` then restores it;
//! `restore --at latest` prefers the set fast snapshot restore keeps ready in the zone; `destroy
//! --keep-snapshots` ends every fast snapshot restore, and `destroy` deletes the rest, archived
//! sets included; a deploy that removes the last `fast_restore` ends what it kept ready.

use crate::common::{json, scratch, xtask};
use emulator::Emulator;
use emulator::fleet::{self, InstanceSpec};
use function::handler;
use serde_json::json as value;
use time::{Duration, OffsetDateTime};

const STACK: &str = "smartvault-local";
const SCHEDULES: &str = r#"[{"name":"daily","retention_days":14,"keep_last":0,"overdue_after_hours":27,"fast_restore":{"zones":["us-east-1a"],"count":1}},{"name":"monthly","retention_days":365,"keep_last":0,"overdue_after_hours":747,"archive_after_days":30}]"#;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn an_archived_set_is_brought_back_mailed_ready_and_restored_and_fast_restore_is_preferred_then_ended()
 {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let launched = fleet::launch_all(&ec2, &[InstanceSpec::backup("db-1").data_volumes(1)])
        .await
        .unwrap();
    let instance = launched[0].id.clone();
    let ctx = crate::common::function_context(&sdk, STACK, &[("SCHEDULES", SCHEDULES)]).await;
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let run = async |schedule: &str, days: i64| {
        emulator.set_lock_clock(days * 86_400).unwrap();
        let event = value!({"action": "scheduled", "schedule": schedule});
        handler::handle(&ctx, &event, t0 + Duration::days(days))
            .await
            .unwrap_or_else(|e| panic!("{schedule} on day {days}: {e}"))
    };
    // A monthly set, then daily ones 40 to 42 days on: the monthly set is archived by the run
    // that first sees a newer set; each daily run makes the previous daily set ready.
    run("monthly", 0).await;
    run("daily", 40).await;
    let archiving = run("daily", 41).await;
    let archived: Vec<String> = archiving
        .tiering
        .as_ref()
        .unwrap()
        .archived
        .iter()
        .map(|a| a.snapshot_id.clone())
        .collect();
    assert_eq!(archived.len(), 2, "{archiving:?}");
    run("daily", 42).await;
    emulator.set_lock_clock(42 * 86_400 + 7_200).unwrap();

    let dir = scratch("tiers");
    let file = dir.join("smartvault.yaml");
    std::fs::write(
        &file,
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let cmd = |command: &str, extra: &[&str]| {
        let mut args = vec![command, "--env", "local", "--config", config];
        args.extend_from_slice(extra);
        xtask(&emulator, &args)
    };
    let monthly_at = function::tags::format_time(t0);

    // `snapshots` and `coverage` show the monthly set in the archive tier.
    let listing = json(&cmd("snapshots", &["--output", "json"]));
    let points = listing["restore_points"].as_array().unwrap();
    let monthly = points
        .iter()
        .find(|p| p["created_at"] == monthly_at.as_str())
        .unwrap();
    for volume in monthly["volumes"].as_array().unwrap() {
        assert_eq!(volume["tier"], "archive", "{volume}");
        assert_eq!(volume["archived"], true);
    }
    let coverage = cmd("coverage", &[]);
    assert!(
        stdout(&coverage).contains("snapshots outside the standard tier: 2 archive"),
        "{}",
        stdout(&coverage)
    );

    // `restore` of it starts a temporary restore from the archive and says when it is ready.
    let restore = |extra: &[&str]| {
        let mut a = vec!["--instance", instance.as_str(), "--yes"];
        a.extend_from_slice(extra);
        cmd("restore", &a)
    };
    let started = json(&restore(&[
        "--at",
        &monthly_at,
        "--archive-days",
        "3",
        "--output",
        "json",
    ]));
    assert_eq!(
        started["archive_restore"]["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(started["archive_restore"]["days"], 3);
    assert!(started["volumes"].as_array().unwrap().is_empty());
    assert!(
        started["archive_restore"]["resume"]
            .as_str()
            .unwrap()
            .ends_with("--resume")
    );
    let listing = json(&cmd("snapshots", &["--output", "json"]));
    let monthly = listing["restore_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["created_at"] == monthly_at.as_str())
        .unwrap()
        .clone();
    assert!(
        monthly["volumes"][0]["tier"]
            .as_str()
            .unwrap()
            .starts_with("archive, restore requested"),
        "{monthly}"
    );
    // While it comes back, --resume refuses (exit 1) and starts nothing.
    let early = restore(&["--at", &monthly_at, "--resume"]);
    assert_eq!(early.status.code(), Some(1));
    assert!(
        stderr(&early).contains("still coming back from the archive tier"),
        "{}",
        stderr(&early)
    );

    // Six hours on (the emulator's restore time) the next run mails it ready, once.
    emulator
        .set_lock_clock(42 * 86_400 + 7_200 + 7 * 3_600)
        .unwrap();
    let cleanup = value!({"action": "cleanup"});
    let swept = handler::handle(&ctx, &cleanup, t0 + Duration::days(42))
        .await
        .unwrap();
    assert_eq!(swept.tiering.as_ref().unwrap().restores_ready.len(), 2);
    let mail = emulator.sns_messages().unwrap().pop().unwrap().message;
    assert!(
        mail.contains("Back from the archive tier, ready to restore (2 snapshots"),
        "{mail}"
    );
    let again = handler::handle(&ctx, &cleanup, t0 + Duration::days(42))
        .await
        .unwrap();
    assert!(again.tiering.is_none_or(|t| t.restores_ready.is_empty()));
    // --resume now restores its volumes.
    let resumed = json(&restore(&[
        "--at",
        &monthly_at,
        "--resume",
        "--output",
        "json",
    ]));
    assert_eq!(resumed["restore_point"], monthly_at.as_str());
    assert_eq!(resumed["volumes"].as_array().unwrap().len(), 2);

    // Day 43's run makes day 42's set ready. `--at latest`: the newest daily set (day 43) is
    // not ready yet; day 42's is, in the instance's zone, a day older: restore prefers it and
    // says so.
    run("daily", 43).await;
    let fast = restore(&["--output", "json"]);
    let fast_result = json(&fast);
    assert_eq!(
        fast_result["restore_point"],
        function::tags::format_time(t0 + Duration::days(42)).as_str()
    );
    assert_eq!(fast_result["fast_restore_zone"], "us-east-1a");
    assert!(
        stderr(&fast).contains("fast snapshot restore is enabled for it in us-east-1a"),
        "{}",
        stderr(&fast)
    );

    // destroy --keep-snapshots keeps them and ends their fast snapshot restores.
    let destroyed = json(&cmd(
        "destroy",
        &["--keep-snapshots", "--yes", "--output", "json"],
    ));
    assert_eq!(
        destroyed["fast_restores_disabled"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{destroyed}"
    );
    let left = ec2.describe_fast_snapshot_restores().send().await.unwrap();
    assert!(left.fast_snapshot_restores().is_empty());

    // Four days on, the monthly set's temporary restore (3 days) has gone back to the
    // archive; destroy deletes every snapshot of the deployment, archived ones included.
    emulator
        .set_lock_clock(42 * 86_400 + 7_200 + 7 * 3_600 + 4 * 86_400)
        .unwrap();
    let archived_again = ec2
        .describe_snapshots()
        .snapshot_ids(&archived[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        archived_again.snapshots()[0].storage_tier(),
        Some(&aws_sdk_ec2::types::StorageTier::Archive)
    );
    let removed = json(&cmd("destroy", &["--yes", "--output", "json"]));
    let deleted: Vec<&str> = removed["snapshots_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for id in &archived {
        assert!(deleted.contains(&id.as_str()), "{id} deleted: {removed}");
    }
    let own = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{}", function::tags::MANAGED_BY))
                .values(STACK)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        own.snapshots().is_empty(),
        "nothing of the deployment is left"
    );
}

#[tokio::test]
async fn a_deploy_that_removes_the_last_fast_restore_ends_what_it_kept_ready() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let dir = scratch("tiers-deploy");
    let artifact = crate::common::fake_artifact(&dir);
    let file = dir.join("smartvault.yaml");
    let write = |fast: &str| {
        std::fs::write(
            &file,
            format!(
                "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n    schedules:\n      - name: daily\n        expression: cron(0 2 * * ? *)\n{fast}"
            ),
        )
        .unwrap();
    };
    let deploy = || {
        json(&xtask(
            &emulator,
            &[
                "deploy",
                "--env",
                "local",
                "--config",
                file.to_str().unwrap(),
                "--artifact",
                artifact.to_str().unwrap(),
                "--yes",
                "--output",
                "json",
            ],
        ))
    };
    write("        fast_restore: {zones: [us-east-1a]}\n");
    let first = deploy();
    assert!(first.get("fast_restores_disabled").is_none(), "{first}");
    // A snapshot of the deployment, kept ready (as its function would), and another
    // deployment's, ready too.
    let launched = fleet::launch_all(&ec2, &[InstanceSpec::backup("db-1")])
        .await
        .unwrap();
    let volume = &launched[0].volume_ids[0];
    let ours = crate::recycle_bin::snapshot(&ec2, volume, STACK).await;
    let theirs = crate::recycle_bin::snapshot(&ec2, volume, "smartvault-other").await;
    ec2.enable_fast_snapshot_restores()
        .availability_zones("us-east-1a")
        .source_snapshot_ids(&ours)
        .source_snapshot_ids(&theirs)
        .send()
        .await
        .unwrap();
    // The last fast_restore removed: the deploy ends ours, not the other deployment's.
    write("");
    let second = deploy();
    assert_eq!(
        second["fast_restores_disabled"],
        value!([format!("{ours} in us-east-1a")]),
        "{second}"
    );
    let left = ec2.describe_fast_snapshot_restores().send().await.unwrap();
    let left: Vec<&str> = left
        .fast_snapshot_restores()
        .iter()
        .filter_map(|f| f.snapshot_id())
        .collect();
    assert_eq!(left, [theirs.as_str()]);
}
