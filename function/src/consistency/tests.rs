//! The consistency rule's tables: what a rule refuses (each naming its fix), which instances
//! it covers, what a stage's status means, the fallback, the VSS tags parameter and the time
//! a batch needs.

use super::*;
use std::time::Duration;

fn rule(mode: Mode) -> Rule {
    Rule::new(mode)
}

#[test]
fn a_rule_is_refused_with_its_fix() {
    let cases: Vec<(Rule, u32, Option<&str>)> = vec![
        (rule(Mode::Script), 900, None),
        (rule(Mode::Vss), 900, None),
        (
            Rule {
                document: Some("arn:aws:ssm:eu-west-1:123456789012:document/db-freeze".into()),
                ..rule(Mode::Script)
            },
            900,
            None,
        ),
        (
            Rule {
                document: Some("My_Freeze.v2".into()),
                ..rule(Mode::Script)
            },
            900,
            None,
        ),
        (
            Rule {
                document: Some("db freeze".into()),
                ..rule(Mode::Script)
            },
            900,
            Some("is not a Systems Manager document name"),
        ),
        (
            Rule {
                document: Some("ab".into()),
                ..rule(Mode::Script)
            },
            900,
            Some("3 to 128 letters"),
        ),
        (
            Rule {
                document: Some("arn:aws:ssm:eu-west-1:1234:document/x".into()),
                ..rule(Mode::Script)
            },
            900,
            Some("is not a document ARN; write arn:aws:ssm:<region>:<12-digit account>"),
        ),
        (
            Rule {
                document: Some("arn:aws:s3:::bucket".into()),
                ..rule(Mode::Script)
            },
            900,
            Some("is not a document ARN"),
        ),
        (
            Rule {
                document: Some("MyDoc".into()),
                ..rule(Mode::Vss)
            },
            900,
            Some("applies to mode script only"),
        ),
        (
            Rule {
                timeout_seconds: 5,
                ..rule(Mode::Script)
            },
            900,
            Some("timeout_seconds 5 is outside 10-120"),
        ),
        (
            Rule {
                timeout_seconds: 121,
                ..rule(Mode::Script)
            },
            900,
            Some("timeout_seconds 121 is outside 10-120"),
        ),
        // The wait and the 30 s after it must fit in the function's timeout.
        (rule(Mode::Script), 90, None),
        (
            rule(Mode::Script),
            89,
            Some("longer than the function's timeout_seconds 89; lower it to at most 59"),
        ),
        (
            Rule {
                retries: 4,
                ..rule(Mode::Script)
            },
            900,
            Some("retries 4 is outside 0-3"),
        ),
        (
            Rule {
                tag: Some(Selector {
                    key: String::new(),
                    value: "x".into(),
                }),
                ..rule(Mode::Script)
            },
            900,
            Some("is not a tag EC2 takes"),
        ),
    ];
    for (rule, timeout, expected) in cases {
        let problem = rule.problem(timeout);
        match expected {
            None => assert_eq!(problem, None, "{rule:?}"),
            Some(text) => assert!(
                problem.as_deref().is_some_and(|p| p.contains(text)),
                "{rule:?}: {problem:?} lacks {text:?}"
            ),
        }
    }
}

#[test]
fn a_rule_reads_with_its_defaults_and_refuses_unknown_keys_and_modes() {
    let read: Rule = serde_json::from_str(r#"{"mode": "script"}"#).unwrap();
    assert_eq!(read, rule(Mode::Script));
    assert_eq!(read.on_failure, OnFailure::Crash);
    assert_eq!(read.timeout_seconds, 60);
    assert!(serde_json::from_str::<Rule>(r#"{"mode": "freeze"}"#).is_err());
    assert!(serde_json::from_str::<Rule>(r#"{"mode": "vss", "wait": 3}"#).is_err());
    let skip: Rule = serde_json::from_str(
        r#"{"mode": "vss", "on_failure": "skip", "tag": {"key": "app", "value": "sql"}}"#,
    )
    .unwrap();
    assert_eq!(skip.on_failure, OnFailure::Skip);
    assert_eq!(serde_json::to_value(&skip).unwrap()["mode"], "vss");
}

#[test]
fn a_rule_covers_every_instance_or_those_with_its_tag() {
    let tags = |pairs: &[(&str, &str)]| -> crate::tags::Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert!(rule(Mode::Script).covers(&tags(&[])));
    let tagged = Rule {
        tag: Some(Selector {
            key: "app".into(),
            value: "postgres".into(),
        }),
        ..rule(Mode::Script)
    };
    assert!(tagged.covers(&tags(&[("app", "postgres")])));
    assert!(!tagged.covers(&tags(&[("app", "nginx")])));
    assert!(!tagged.covers(&tags(&[])));
}

#[test]
fn the_document_sent_is_the_rules_awss_vss_one_or_the_stacks() {
    assert_eq!(rule(Mode::Script).document_name("stack-doc"), "stack-doc");
    assert_eq!(rule(Mode::Vss).document_name("stack-doc"), VSS_DOCUMENT);
    let own = Rule {
        document: Some("MyDoc".into()),
        ..rule(Mode::Script)
    };
    assert_eq!(own.document_name("stack-doc"), "MyDoc");
}

#[test]
fn a_stage_is_running_succeeded_or_failed_with_its_status() {
    for status in ["Pending", "InProgress", "Delayed", "Cancelling"] {
        assert_eq!(Stage::of(status, ""), Stage::Running, "{status}");
    }
    assert_eq!(Stage::of("Success", "Success"), Stage::Succeeded);
    assert_eq!(
        Stage::of("Failed", "Failed"),
        Stage::Failed("Failed".into())
    );
    assert_eq!(
        Stage::of("TimedOut", "DeliveryTimedOut"),
        Stage::Failed("TimedOut (DeliveryTimedOut)".into())
    );
    for status in [
        "Cancelled",
        "Undeliverable",
        "Terminated",
        "InvalidPlatform",
        "AccessDenied",
    ] {
        assert!(
            matches!(Stage::of(status, ""), Stage::Failed(_)),
            "{status}"
        );
    }
}

#[test]
fn the_fallback_says_what_was_done() {
    assert_eq!(
        rule(Mode::Script).fallback("the pre stage ended Failed"),
        Fallback::Crash {
            reason: "the pre stage ended Failed; snapshotted crash-consistent (on_failure: crash)"
                .into()
        }
    );
    let skip = Rule {
        on_failure: OnFailure::Skip,
        ..rule(Mode::Script)
    };
    assert!(matches!(
        skip.fallback("x"),
        Fallback::Skip { reason } if reason.contains("not snapshotted in this run (on_failure: skip)")
    ));
}

#[test]
fn vss_carries_the_tags_its_parameter_can_and_leaves_the_rest_for_create_tags() {
    let tags: Vec<(String, String)> = [
        ("smartvault:managed-by", "prod"),
        ("smartvault:created-at", "2026-12-06T01:00:00Z"),
        ("Name", "db, primary"),
        ("smartvault:platform", "boot=uefi os=Windows"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (parameter, rest) = vss_tags(&tags);
    assert_eq!(
        parameter,
        "Key=smartvault:managed-by,Value=prod;Key=smartvault:created-at,Value=2026-12-06T01:00:00Z"
    );
    assert_eq!(
        rest,
        vec![
            ("Name".to_owned(), "db, primary".to_owned()),
            (
                "smartvault:platform".to_owned(),
                "boot=uefi os=Windows".to_owned()
            )
        ]
    );
}

#[test]
fn a_batch_starts_only_when_its_wait_and_what_follows_fit() {
    assert!(fits(Duration::from_secs(90), 60));
    assert!(!fits(Duration::from_secs(89), 60));
    assert!(fits(Duration::from_secs(40), 10));
}
