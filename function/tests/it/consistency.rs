//! Application-consistent sets end to end on the emulator (its Systems Manager patch,
//! emulator/fast_moto.py, scripted per instance): the patch itself against what AWS
//! documents; pre → snapshot → post for every instance from the request recorder, the post
//! stage in every failure case, retries, each fallback; a 300-instance fleet in batches of 50
//! over several links with nothing done twice; and VSS sets that carry every SmartVault tag.

use crate::common::{Setup, setup};
use emulator::fleet::{self, InstanceSpec};
use function::consistency::{Stage, VSS_DOCUMENT};
use function::context::Context;
use function::handler;
use function::report::RunReport;
use function::ssm;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

const ACCOUNT: &str = "123456789012";
const DOCUMENT: &str = "smartvault-prod-freeze";

/// A document taking the parameters SmartVault's Linux document declares.
fn create_document(s: &Setup, name: &str) {
    s.emulator
        .create_stage_document(ACCOUNT, &region(s), name)
        .unwrap();
}

fn region(s: &Setup) -> String {
    s.sdk.region().unwrap().to_string()
}

fn script(s: &Setup, scripts: &[(&str, Value)]) {
    let scripts: Vec<(String, Value)> = scripts
        .iter()
        .map(|(id, v)| ((*id).to_owned(), v.clone()))
        .collect();
    s.emulator
        .script_ssm(ACCOUNT, &region(s), &scripts)
        .unwrap();
}

fn schedules(consistency: &Value) -> String {
    json!([{"name": "daily", "retention_days": 7, "keep_last": 0, "consistency": consistency}])
        .to_string()
}

fn context(s: &Setup, consistency: &Value) -> Context {
    let schedules = schedules(consistency);
    let mut ctx = Context::new(
        &s.sdk,
        s.config(
            "prod",
            &[("SCHEDULES", &schedules), ("FREEZE_DOCUMENT", DOCUMENT)],
        ),
    );
    ctx.poll = Duration::from_millis(200);
    ctx.settle = Duration::from_millis(50);
    ctx
}

/// What one request did, read from the recorder: a stage sent to instances, or a
/// `CreateSnapshots` of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Stage(String, Vec<String>),
    Snapshot(String),
}

fn steps(bodies: &[String]) -> Vec<Step> {
    bodies
        .iter()
        .filter_map(|body| {
            if let Ok(json) = serde_json::from_str::<Value>(body)
                && let Some(document) = json["DocumentName"].as_str()
            {
                let stage = if document == VSS_DOCUMENT {
                    "vss".to_owned()
                } else {
                    json["Parameters"]["command"][0]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                };
                let ids = json["InstanceIds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                return Some(Step::Stage(stage, ids));
            }
            if body.contains("Action=CreateSnapshots") {
                let id = body
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("InstanceSpecification.InstanceId="))?;
                return Some(Step::Snapshot(id.to_owned()));
            }
            None
        })
        .collect()
}

/// Each instance's steps, in order: `pre`, `snap`, `post`, `vss`.
fn per_instance(steps: &[Step]) -> BTreeMap<String, Vec<&'static str>> {
    let mut by: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for step in steps {
        match step {
            Step::Stage(stage, ids) => {
                let name = match stage.as_str() {
                    "pre-script" => "pre",
                    "post-script" => "post",
                    _ => "vss",
                };
                for id in ids {
                    by.entry(id.clone()).or_default().push(name);
                }
            }
            Step::Snapshot(id) => by.entry(id.clone()).or_default().push("snap"),
        }
    }
    by
}

fn achieved(report: &RunReport) -> BTreeMap<String, (bool, String)> {
    report
        .consistency
        .as_ref()
        .map(|c| {
            c.instances
                .iter()
                .map(|o| (o.instance_id.clone(), (o.achieved, o.detail.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// A scheduled run of `daily` at `at`, its report whether or not something failed.
async fn scheduled(ctx: &Context, at: OffsetDateTime) -> RunReport {
    match handler::handle(
        ctx,
        &json!({"action": "scheduled", "schedule": "daily"}),
        at,
    )
    .await
    {
        Ok(report) => report,
        Err(function::context::FunctionError::RunFailed(report)) => *report,
        Err(other) => panic!("{other}"),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

#[tokio::test]
async fn the_emulator_runs_commands_as_systems_manager_documents_them() {
    let s = setup().await;
    let fleet = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("a"),
            InstanceSpec::backup("b"),
            InstanceSpec::backup("c").data_volumes(1),
        ],
    )
    .await
    .unwrap();
    let ids: Vec<String> = fleet.iter().map(|f| f.id.clone()).collect();
    create_document(&s, DOCUMENT);
    script(
        &s,
        &[
            (
                &ids[0],
                json!({"pre-script": "failed", "lose": ["post-script"]}),
            ),
            (&ids[1], json!({"managed": false})),
            (&ids[2], json!({"platform": "Windows", "vss": "delay:1"})),
        ],
    );
    // Managed instances only, Online, with their platform.
    let managed = ssm::managed(&s.sdk, &ids).await.unwrap();
    assert_eq!(
        managed,
        BTreeMap::from([
            (ids[0].clone(), "Linux".to_owned()),
            (ids[2].clone(), "Windows".to_owned())
        ])
    );
    fn command(ids: &[String], parameters: Value) -> ssm::Command<'_> {
        ssm::Command {
            document: DOCUMENT,
            instance_ids: ids,
            parameters,
            comment: "test".into(),
            timeout_seconds: 30,
        }
    }
    let pre = json!({"command": ["pre-script"], "executionId": ["x"]});
    // Refused as AWS refuses: an unmanaged instance, more than 50, an unknown document, a
    // parameter the document does not declare or a value it does not allow.
    let refused = |result: Result<String, function::signed::CallError>| result.unwrap_err().code;
    assert_eq!(
        refused(ssm::send_command(&s.sdk, &command(&ids, pre.clone())).await),
        "InvalidInstanceId"
    );
    let many: Vec<String> = (0..51).map(|_| ids[0].clone()).collect();
    assert_eq!(
        refused(ssm::send_command(&s.sdk, &command(&many, pre.clone())).await),
        "ValidationException"
    );
    let unknown = ssm::Command {
        document: "no-such-document",
        ..command(&ids[..1], pre.clone())
    };
    assert_eq!(
        refused(ssm::send_command(&s.sdk, &unknown).await),
        "InvalidDocument"
    );
    for parameters in [json!({"stage": ["pre"]}), json!({"command": ["freeze"]})] {
        assert_eq!(
            refused(ssm::send_command(&s.sdk, &command(&ids[..1], parameters)).await),
            "InvalidParameters"
        );
    }
    // Each invocation ends as scripted.
    let both = [ids[0].clone(), ids[2].clone()];
    let id = ssm::send_command(&s.sdk, &command(&both, pre.clone()))
        .await
        .unwrap();
    let stages: BTreeMap<String, Stage> = ssm::invocations(&s.sdk, &id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stages[&ids[0]], Stage::Failed("Failed".into()));
    assert_eq!(stages[&ids[2]], Stage::Succeeded);
    // A lost answer: a 500 with the command carried out.
    let post = json!({"command": ["post-script"], "executionId": ["x"]});
    let lost = ssm::send_command(&s.sdk, &command(&ids[..1], post.clone()))
        .await
        .unwrap_err();
    assert!(lost.may_have_acted(), "{lost:?}");
    assert!(
        ssm::send_command(&s.sdk, &command(&ids[..1], post))
            .await
            .is_ok()
    );
    // VSS: in progress for its delay, then its snapshots, tagged as asked and AppConsistent.
    let vss = ssm::Command {
        document: VSS_DOCUMENT,
        instance_ids: &ids[2..],
        parameters: json!({"ExcludeBootVolume": ["True"], "description": ["d"], "tags": ["Key=a,Value=1;Key=b,Value=2"]}),
        comment: "test".into(),
        timeout_seconds: 30,
    };
    let id = ssm::send_command(&s.sdk, &vss).await.unwrap();
    assert_eq!(
        ssm::invocations(&s.sdk, &id).await.unwrap(),
        [(ids[2].clone(), Stage::Running)]
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        ssm::invocations(&s.sdk, &id).await.unwrap(),
        [(ids[2].clone(), Stage::Succeeded)]
    );
    let snapshots = s
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    let made: Vec<_> = snapshots.snapshots().iter().collect();
    assert_eq!(made.len(), 1, "the data volume only: {made:?}");
    assert_eq!(made[0].volume_id(), Some(fleet[2].volume_ids[1].as_str()));
    let tags: BTreeMap<&str, &str> = made[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([("AppConsistent", "true"), ("a", "1"), ("b", "2")])
    );
}

/// Seven instances, each failing its own way, then a lost answer. Every instance the pre stage may have reached
/// gets the post stage after its set, whatever happened; an instance whose pre stage failed
/// is snapshotted crash-consistent anyway (`on_failure: crash`) or not at all (`skip`), and
/// the summary, the JSON result and the metric say which.
#[tokio::test]
async fn each_set_is_made_between_its_pre_and_post_stage_and_every_failure_falls_back() {
    let s = setup().await;
    let names = [
        "ok",
        "failed",
        "timed-out",
        "hangs",
        "unmanaged",
        "flaky",
        "post-fails",
    ];
    let specs: Vec<InstanceSpec> = names
        .iter()
        .map(|n| InstanceSpec::backup(n).data_volumes(1))
        .collect();
    let fleet = fleet::launch_all(&s.ec2, &specs).await.unwrap();
    let id: BTreeMap<&str, String> = names
        .iter()
        .zip(&fleet)
        .map(|(n, f)| (*n, f.id.clone()))
        .collect();
    create_document(&s, DOCUMENT);
    script(
        &s,
        &[
            (&id["failed"], json!({"pre-script": "failed"})),
            (&id["timed-out"], json!({"pre-script": "timed_out"})),
            (&id["hangs"], json!({"pre-script": "in_progress"})),
            (&id["unmanaged"], json!({"managed": false})),
            (&id["flaky"], json!({"pre-script": "fail_once"})),
            (&id["post-fails"], json!({"post-script": "failed"})),
        ],
    );
    let rule = json!({"mode": "script", "timeout_seconds": 10, "retries": 1});
    let ctx = context(&s, &rule);
    s.emulator.start_recording().unwrap();
    let at = now();
    let report = scheduled(&ctx, at).await;
    let recorded = steps(&s.emulator.stop_recording_bodies().unwrap());
    let by = per_instance(&recorded);
    let seq = |name: &str| by.get(&id[name]).cloned().unwrap_or_default();
    // Succeeded first time: pre, its set, post.
    assert_eq!(seq("ok"), ["pre", "snap", "post"]);
    assert_eq!(seq("post-fails"), ["pre", "snap", "post"]);
    // Failed (sent again once, as `retries: 1` asks), timed out, or never ended in time: the
    // fallback's set, then post.
    assert_eq!(seq("failed"), ["pre", "pre", "snap", "post"]);
    assert_eq!(seq("timed-out"), ["pre", "pre", "snap", "post"]);
    assert_eq!(
        seq("hangs"),
        ["pre", "snap", "post"],
        "a stage still running is never sent again"
    );
    // Failed once, then succeeded on the retry.
    assert_eq!(seq("flaky"), ["pre", "pre", "snap", "post"]);
    // Never reached: no stage at all, snapshotted crash-consistent.
    assert_eq!(seq("unmanaged"), ["snap"]);
    // One command per stage and batch, never more than 50 instances.
    for step in &recorded {
        if let Step::Stage(_, ids) = step {
            assert!(ids.len() <= 50);
        }
    }
    let outcome = achieved(&report);
    for name in ["ok", "flaky"] {
        assert!(outcome[&id[name]].0, "{name}: {:?}", outcome[&id[name]]);
    }
    for (name, why) in [
        (
            "failed",
            "the pre stage ended Failed; snapshotted crash-consistent (on_failure: crash)",
        ),
        (
            "timed-out",
            "the pre stage ended TimedOut (ExecutionTimedOut)",
        ),
        ("hangs", "the pre stage had not ended after 10 s"),
        ("unmanaged", "not managed by Systems Manager"),
        ("post-fails", "the post stage failed"),
    ] {
        let (ok, detail) = &outcome[&id[name]];
        assert!(!ok && detail.contains(why), "{name}: {detail}");
    }
    let consistency = report.consistency.as_ref().unwrap();
    assert_eq!((consistency.achieved, consistency.missed), (2, 5));
    // Every instance has its set (two volumes each), and only the post stage's failure fails
    // the run.
    assert_eq!(report.created.len(), 14, "{:?}", report.created);
    let failed: Vec<(&str, &str)> = report
        .failed
        .iter()
        .map(|f| (f.code.as_str(), f.operation.as_str()))
        .collect();
    assert_eq!(failed, [("SmartVault.PostStageFailed", "SendCommand")]);
    let summary = s.emulator.sns_messages().unwrap().pop().unwrap().message;
    assert!(
        summary.contains("Consistency (script): 2 of 7 instances application-consistent"),
        "{summary}"
    );
    let metrics = report.metrics(0);
    assert_eq!(
        (
            metrics["ConsistentInstances"].as_u64(),
            metrics["InconsistentInstances"].as_u64()
        ),
        (Some(2), Some(5))
    );
    let response = report.response();
    assert_eq!(
        response["consistency"]["instances"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    // With `on_failure: skip`, the same failures make no set, and still get the post stage.
    let skip = json!({"mode": "script", "timeout_seconds": 10, "on_failure": "skip"});
    let ctx = context(&s, &skip);
    s.emulator.start_recording().unwrap();
    let later = at + time::Duration::days(1);
    let report = scheduled(&ctx, later).await;
    let by = per_instance(&steps(&s.emulator.stop_recording_bodies().unwrap()));
    let seq = |name: &str| by.get(&id[name]).cloned().unwrap_or_default();
    assert_eq!(seq("failed"), ["pre", "post"]);
    assert_eq!(seq("hangs"), ["pre", "post"]);
    assert_eq!(seq("unmanaged"), Vec::<&str>::new());
    assert_eq!(seq("ok"), ["pre", "snap", "post"]);
    let made: BTreeSet<&str> = report
        .created
        .iter()
        .map(|c| c.instance_id.as_str())
        .collect();
    assert!(!made.contains(id["failed"].as_str()) && !made.contains(id["unmanaged"].as_str()));
    let skipped: Vec<String> = report.skipped.iter().map(|k| k.reason.clone()).collect();
    assert!(
        skipped
            .iter()
            .any(|r| r.contains("not snapshotted in this run (on_failure: skip)")),
        "{skipped:?}"
    );

    // A pre stage whose answer is lost may have frozen the whole batch: the post stage goes
    // to all of it at once, then the retry, each set, and the post stage again.
    let clean: Vec<(&str, Value)> = names
        .iter()
        .filter(|n| **n != "unmanaged")
        .map(|n| (id[n].as_str(), json!({})))
        .collect();
    script(&s, &clean);
    script(&s, &[(&id["ok"], json!({"lose": ["pre-script"]}))]);
    let ctx = context(
        &s,
        &json!({"mode": "script", "timeout_seconds": 10, "retries": 1}),
    );
    s.emulator.start_recording().unwrap();
    let report = scheduled(&ctx, at + time::Duration::days(2)).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let by = per_instance(&steps(&s.emulator.stop_recording_bodies().unwrap()));
    for name in names.iter().filter(|n| **n != "unmanaged") {
        assert_eq!(
            by[&id[*name]],
            ["pre", "post", "pre", "snap", "post"],
            "{name}"
        );
    }
    let consistency = report.consistency.as_ref().unwrap();
    assert_eq!((consistency.achieved, consistency.missed), (6, 1));
}

/// 300 instances whose pre stage takes a second (every tenth not managed by Systems Manager),
/// with links of a few batches each: every instance gets exactly one set and one pre and post
/// stage in the whole run (the unmanaged ones a crash-consistent set), each counted once in the
/// summary, no command names more than 50 instances, each link stops before its deadline, and
/// the run goes on over several links.
#[tokio::test]
async fn a_fleet_of_300_goes_in_batches_of_50_over_links_and_nothing_is_done_twice() {
    let s = setup().await;
    let fleet = fleet::launch_all(&s.ec2, &fleet::two_volume_fleet(300))
        .await
        .unwrap();
    create_document(&s, DOCUMENT);
    // Every tenth instance is not managed: snapshotted crash-consistent, and counted once.
    let slow: Vec<(String, Value)> = fleet
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let script = if i % 10 == 0 {
                json!({"managed": false})
            } else {
                json!({"pre-script": "delay:1"})
            };
            (f.id.clone(), script)
        })
        .collect();
    s.emulator.script_ssm(ACCOUNT, &region(&s), &slow).unwrap();
    // The next link's Invoke lands here; the test sends it on as Lambda would.
    let invoked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&invoked);
    let server = emulator::loopback::Server::start(move |stream| {
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        if let Ok(Some(message)) =
            emulator::loopback::Message::read(&mut reader, emulator::loopback::Reading::Request)
        {
            sink.lock()
                .unwrap()
                .push(serde_json::from_slice(&message.body).unwrap());
            let mut stream = stream;
            let _ = emulator::loopback::Message::response("202 Accepted", &[], b"")
                .write_to(&mut stream);
        }
    })
    .unwrap();
    let mut ctx = context(&s, &json!({"mode": "script", "timeout_seconds": 10}));
    ctx.chain = Some(function::context::Chain {
        endpoint: Some(format!("http://{}", server.address())),
        function_name: "prod".into(),
    });
    s.emulator.start_recording().unwrap();
    let at = now();
    let mut event = json!({"action": "scheduled", "schedule": "daily"});
    let mut links = 0;
    let report = loop {
        links += 1;
        assert!(links <= 20, "the run does not end");
        // Long enough for one batch's wait and its 30 s for snapshots and post, and a little.
        let deadline = std::time::Instant::now() + Duration::from_secs(50);
        let report = handler::handle_until(&ctx, &event, at, Some(deadline))
            .await
            .unwrap_or_else(|e| panic!("link {links}: {e}"));
        assert!(
            std::time::Instant::now() < deadline,
            "link {links} outlived its deadline"
        );
        if !report.handed_on {
            break report;
        }
        event = invoked
            .lock()
            .unwrap()
            .pop()
            .expect("a handed-on link invoked the next");
    };
    assert!(links >= 2, "one link did it all: the test shows no hand-on");
    let steps = steps(&s.emulator.stop_recording_bodies().unwrap());
    for step in &steps {
        if let Step::Stage(_, ids) = step {
            assert!(ids.len() <= 50, "a command to {} instances", ids.len());
        }
    }
    let by = per_instance(&steps);
    assert_eq!(by.len(), 300);
    for (i, f) in fleet.iter().enumerate() {
        let expected: &[&str] = if i % 10 == 0 {
            &["snap"]
        } else {
            &["pre", "snap", "post"]
        };
        assert_eq!(by[&f.id], expected, "{}", f.id);
    }
    let consistency = report.consistency.as_ref().unwrap();
    assert_eq!((consistency.achieved, consistency.missed), (270, 30));
    assert_eq!(report.totals().created, 600);
    assert_eq!(report.links, links);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
}

/// VSS on Windows: the instance makes the set inside its VSS freeze, with every SmartVault
/// tag, so the function finds it as its own and retention treats it like any other; a
/// Linux instance falls back, and a failed VSS command is snapshotted crash-consistent.
#[tokio::test]
async fn vss_sets_carry_every_smartvault_tag_and_are_kept_and_expired_like_any_other() {
    let s = setup().await;
    let fleet = fleet::launch_all(
        &s.ec2,
        &[
            InstanceSpec::backup("win").data_volumes(2),
            InstanceSpec::backup("win-broken").data_volumes(1),
            InstanceSpec::backup("linux").data_volumes(1),
            InstanceSpec::backup("win-crash"),
        ],
    )
    .await
    .unwrap();
    let ids: Vec<String> = fleet.iter().map(|f| f.id.clone()).collect();
    script(
        &s,
        &[
            (&ids[0], json!({"platform": "Windows"})),
            (&ids[1], json!({"platform": "Windows", "vss": "failed"})),
            (&ids[2], json!({"platform": "Linux"})),
            (&ids[3], json!({"platform": "Windows"})),
        ],
    );
    // Only instances tagged for it get VSS: `win-crash` stays crash-consistent.
    fleet::tag_resource(&s.ec2, &ids[0], "vss", "yes")
        .await
        .unwrap();
    fleet::tag_resource(&s.ec2, &ids[1], "vss", "yes")
        .await
        .unwrap();
    fleet::tag_resource(&s.ec2, &ids[2], "vss", "yes")
        .await
        .unwrap();
    let ctx = context(
        &s,
        &json!({"mode": "vss", "timeout_seconds": 10, "tag": {"key": "vss", "value": "yes"}}),
    );
    s.emulator.start_recording().unwrap();
    let at = now();
    let report = scheduled(&ctx, at).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let by = per_instance(&steps(&s.emulator.stop_recording_bodies().unwrap()));
    assert_eq!(by[&ids[0]], ["vss"], "the instance made its own set");
    assert_eq!(by[&ids[1]], ["vss", "snap"]);
    assert_eq!(by[&ids[2]], ["snap"]);
    assert_eq!(by[&ids[3]], ["snap"]);
    let outcome = achieved(&report);
    assert!(outcome[&ids[0]].0);
    assert!(
        outcome[&ids[1]].1.contains("the VSS command ended Failed"),
        "{:?}",
        outcome[&ids[1]]
    );
    assert!(
        outcome[&ids[2]].1.contains("VSS needs Windows"),
        "{:?}",
        outcome[&ids[2]]
    );
    assert!(!outcome.contains_key(&ids[3]), "not tagged for VSS");
    assert_eq!(report.created.len(), 3 + 2 + 2 + 1, "{:?}", report.created);
    // The VSS set carries every tag a CreateSnapshots set of the run carries.
    let snapshots = s
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    // Each volume's record is keyed by its volume id: compared as one key.
    let keys = |instance: &str| -> BTreeSet<String> {
        snapshots
            .snapshots()
            .iter()
            .filter(|s| s.tags().iter().any(|t| t.value() == Some(instance)))
            .flat_map(|s| s.tags().iter().map(|t| t.key().unwrap().to_owned()))
            .map(|key| {
                if key.starts_with(function::restore_records::VOLUME_PREFIX) {
                    "volume record".to_owned()
                } else {
                    key
                }
            })
            .collect()
    };
    let vss = keys(&ids[0]);
    let plain = keys(&ids[2]);
    let smartvault: BTreeSet<&String> = plain
        .iter()
        .filter(|k| k.starts_with("smartvault:") || *k == "volume record")
        .collect();
    assert!(!smartvault.is_empty());
    for key in smartvault {
        assert!(vss.contains(key), "the VSS set lacks {key}: {vss:?}");
    }
    assert!(vss.contains("AppConsistent"));
    // Found as this deployment's set: the same run does not make it again, and past its
    // retention cleanup deletes it like any other.
    let again = scheduled(&ctx, at).await;
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert!(again.created.is_empty(), "{:?}", again.created);
    let expired = at + time::Duration::days(8);
    let cleanup = handler::handle(
        &ctx,
        &json!({"action": "cleanup", "schedule": "daily"}),
        expired,
    )
    .await
    .unwrap();
    assert_eq!(cleanup.deleted.len(), 8, "{:?}", cleanup.deleted);
}
