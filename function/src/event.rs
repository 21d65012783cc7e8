//! The events the function accepts, validated before anything is done.

use crate::model::{Interval, Job, RunOptions};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;

/// A validated request: what to do, and whether to only pretend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub options: RunOptions,
    /// The event asked for a dry run (the configuration may ask for one too).
    pub dry_run: bool,
}

/// An event the function refuses, with what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError(String);

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid event: {}; expected an EventBridge scheduled event or an object such as \
             {{\"action\": \"backup\"}} with action one of `manual-trigger`, `backup`, `cleanup` \
             and optional `dry_run` (bool), `force` (bool), `instance_ids` (list of instance ids)",
            self.0
        )
    }
}

impl std::error::Error for EventError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualEvent {
    action: Action,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
    instance_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Action {
    ManualTrigger,
    Backup,
    Cleanup,
}

/// Parses and validates an invocation event.
pub fn parse(event: &serde_json::Value) -> Result<Request, EventError> {
    if is_scheduled_event(event) {
        return Ok(Request {
            options: RunOptions {
                job: Job::BackupAndCleanup,
                interval: Interval::Respect,
                instance_ids: None,
            },
            dry_run: false,
        });
    }
    if !event.is_object() {
        return Err(EventError(format!(
            "the event is {event}, not a JSON object"
        )));
    }
    let manual = ManualEvent::deserialize(event).map_err(|e| EventError(e.to_string()))?;
    let instance_ids = match manual.instance_ids {
        None => None,
        Some(ids) if ids.is_empty() => {
            return Err(EventError(
                "`instance_ids` is empty; leave it out to back up every tagged instance".into(),
            ));
        }
        Some(ids) => {
            if let Some(bad) = ids.iter().find(|id| !is_instance_id(id)) {
                return Err(EventError(format!(
                    "`instance_ids` holds {bad:?}, which is not an instance id like i-0123456789abcdef0"
                )));
            }
            Some(ids.into_iter().collect::<BTreeSet<_>>())
        }
    };
    Ok(Request {
        options: RunOptions {
            job: match manual.action {
                Action::ManualTrigger => Job::BackupAndCleanup,
                Action::Backup => Job::Backup,
                Action::Cleanup => Job::Cleanup,
            },
            interval: if manual.force {
                Interval::Ignore
            } else {
                Interval::Respect
            },
            instance_ids,
        },
        dry_run: manual.dry_run,
    })
}

fn is_scheduled_event(event: &serde_json::Value) -> bool {
    event["source"] == "aws.events" && event["detail-type"] == "Scheduled Event"
}

fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(event: &serde_json::Value) -> Request {
        parse(event).unwrap_or_else(|e| panic!("{event}: {e}"))
    }

    #[test]
    fn accepted_events_map_to_jobs() {
        let scheduled = json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-26T01:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/smartvault"], "detail": {}
        });
        let cases = [
            (scheduled, Job::BackupAndCleanup, Interval::Respect, false),
            (
                json!({"action": "manual-trigger"}),
                Job::BackupAndCleanup,
                Interval::Respect,
                false,
            ),
            (
                json!({"action": "backup", "force": true}),
                Job::Backup,
                Interval::Ignore,
                false,
            ),
            (
                json!({"action": "cleanup", "dry_run": true}),
                Job::Cleanup,
                Interval::Respect,
                true,
            ),
        ];
        for (event, job, interval, dry_run) in cases {
            let request = ok(&event);
            assert_eq!(request.options.job, job);
            assert_eq!(request.options.interval, interval);
            assert_eq!(request.dry_run, dry_run);
            assert_eq!(request.options.instance_ids, None);
        }
    }

    #[test]
    fn instance_ids_limit_the_run() {
        let request =
            ok(&json!({"action": "backup", "instance_ids": ["i-0123456789abcdef0", "i-12345678"]}));
        let ids: Vec<_> = request.options.instance_ids.unwrap().into_iter().collect();
        assert_eq!(ids, vec!["i-0123456789abcdef0", "i-12345678"]);
    }

    #[test]
    fn bad_events_are_refused_with_the_reason() {
        let cases = [
            (json!({"action": "restore"}), "unknown variant `restore`"),
            (json!({}), "missing field `action`"),
            (
                json!({"action": "backup", "dryrun": true}),
                "unknown field `dryrun`",
            ),
            (
                json!({"action": "backup", "dry_run": "yes"}),
                "invalid type",
            ),
            (
                json!({"action": "backup", "instance_ids": []}),
                "`instance_ids` is empty",
            ),
            (
                json!({"action": "backup", "instance_ids": ["web-1"]}),
                "\"web-1\"",
            ),
            (json!("backup"), "not a JSON object"),
            (json!(null), "not a JSON object"),
            (
                json!({"source": "aws.events", "detail-type": "EC2 Instance State-change Notification"}),
                "unknown field `source`",
            ),
        ];
        for (event, expected) in cases {
            let message = parse(&event).expect_err(&event.to_string()).to_string();
            assert!(message.starts_with("invalid event: "), "{message}");
            assert!(message.contains(expected), "{event}: {message}");
            assert!(
                message.contains("manual-trigger"),
                "the message shows what is accepted"
            );
        }
    }
}
