//! Pure decisions about CloudFormation stacks and change sets, unit-tested without AWS.

pub mod keys;
pub mod limits;
pub mod parameters;
pub mod template;

/// What deploy does with a stack, from its current status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackAction {
    /// No stack (or one only reviewed, never created): create it.
    Create,
    /// A healthy stack: update it.
    Update,
    /// A first create failed and rolled back; the stack is an empty shell that can only be
    /// deleted. Delete it, then create it again.
    RecreateAfterFailedCreate,
    /// Another operation is running; wait for it.
    Busy(String),
    /// A failed state that needs a person.
    Stuck(String),
}

/// Decides what deploy does with a stack in `status` (`None`: no such stack).
pub fn action_for(stack: &str, status: Option<&str>) -> StackAction {
    match status {
        None | Some("REVIEW_IN_PROGRESS") | Some("DELETE_COMPLETE") => StackAction::Create,
        Some("ROLLBACK_COMPLETE") => StackAction::RecreateAfterFailedCreate,
        Some(
            "CREATE_COMPLETE"
            | "UPDATE_COMPLETE"
            | "UPDATE_ROLLBACK_COMPLETE"
            | "IMPORT_COMPLETE"
            | "IMPORT_ROLLBACK_COMPLETE",
        ) => StackAction::Update,
        Some(busy) if busy.ends_with("_IN_PROGRESS") => StackAction::Busy(format!(
            "stack {stack} is busy ({busy}); wait for that operation to finish (`cargo xtask status`) and deploy again"
        )),
        Some("UPDATE_ROLLBACK_FAILED") => StackAction::Stuck(format!(
            "stack {stack} is in UPDATE_ROLLBACK_FAILED; fix the resource that blocked the rollback, then run \
             `aws cloudformation continue-update-rollback --stack-name {stack}` and deploy again"
        )),
        Some(other) => StackAction::Stuck(format!(
            "stack {stack} is in {other}; inspect it in the CloudFormation console, or remove it with \
             `cargo xtask destroy` and deploy again"
        )),
    }
}

/// Whether a stack in `status` is healthy and complete: a source that may be promoted.
pub fn is_healthy(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// What a change set came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSetOutcome {
    /// Ready to execute. Its list of changes may be empty: a change of parameters alone can
    /// report none, yet still change the stack, so an empty list never means "nothing to do".
    Ready,
    /// CloudFormation found nothing to change.
    NoChanges,
    /// It failed for another reason.
    Failed(String),
}

/// Classifies a change set from its status and status reason.
pub fn classify_change_set(status: &str, reason: Option<&str>) -> ChangeSetOutcome {
    let reason = reason.unwrap_or_default();
    match status {
        "CREATE_COMPLETE" => ChangeSetOutcome::Ready,
        "FAILED"
            if reason.contains("didn't contain changes")
                || reason.contains("No updates are to be performed") =>
        {
            ChangeSetOutcome::NoChanges
        }
        "FAILED" => ChangeSetOutcome::Failed(reason.to_owned()),
        other => ChangeSetOutcome::Failed(format!("the change set ended in {other}: {reason}")),
    }
}

/// A change set as `ListChangeSets` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetSummary {
    pub name: String,
    /// `AVAILABLE`, `UNAVAILABLE`, `EXECUTE_IN_PROGRESS`, ...
    pub execution_status: String,
}

/// The change sets a deploy made (`smartvault-<time>`) and never executed: left by a deploy
/// that was interrupted. Another tool's change sets, and one being executed, are left alone.
pub fn stale_change_sets(summaries: &[ChangeSetSummary]) -> Vec<String> {
    summaries
        .iter()
        .filter(|c| {
            c.name
                .strip_prefix(CHANGE_SET_PREFIX)
                .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|c| matches!(c.execution_status.as_str(), "AVAILABLE" | "UNAVAILABLE"))
        .map(|c| c.name.clone())
        .collect()
}

/// What every change set a deploy makes is called, followed by the Unix time in milliseconds.
pub const CHANGE_SET_PREFIX: &str = "smartvault-";

/// The name of a change set made at `now`: milliseconds, so two deploys within one second
/// never reuse a name, and [`stale_change_sets`] recognises it as this tool's.
pub fn change_set_name(now: time::OffsetDateTime) -> String {
    format!(
        "{CHANGE_SET_PREFIX}{}",
        now.unix_timestamp_nanos() / 1_000_000
    )
}

/// One planned resource change, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeRow {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    pub replacement: String,
}

/// Renders changes as an aligned table.
pub fn change_table(rows: &[ChangeRow]) -> String {
    if rows.is_empty() {
        return "  (CloudFormation listed no resource changes; parameters or outputs change)\n"
            .to_owned();
    }
    let header = ChangeRow {
        action: "ACTION".into(),
        logical_id: "RESOURCE".into(),
        resource_type: "TYPE".into(),
        replacement: "REPLACEMENT".into(),
    };
    let all: Vec<&ChangeRow> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&ChangeRow) -> &str| all.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let (a, l, t) = (
        width(|r| &r.action),
        width(|r| &r.logical_id),
        width(|r| &r.resource_type),
    );
    all.iter()
        .map(|r| {
            format!(
                "  {:a$}  {:l$}  {:t$}  {}\n",
                r.action, r.logical_id, r.resource_type, r.replacement
            )
        })
        .collect()
}

/// What a deploy did to the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_states_map_to_actions() {
        let cases = [
            (None, "create"),
            (Some("REVIEW_IN_PROGRESS"), "create"),
            (Some("ROLLBACK_COMPLETE"), "recreate"),
            (Some("CREATE_COMPLETE"), "update"),
            (Some("UPDATE_COMPLETE"), "update"),
            (Some("UPDATE_ROLLBACK_COMPLETE"), "update"),
            (Some("UPDATE_IN_PROGRESS"), "busy"),
            (Some("DELETE_IN_PROGRESS"), "busy"),
            (Some("UPDATE_ROLLBACK_FAILED"), "stuck"),
            (Some("DELETE_FAILED"), "stuck"),
            (Some("CREATE_FAILED"), "stuck"),
        ];
        for (status, expected) in cases {
            let got = match action_for("s", status) {
                StackAction::Create => "create",
                StackAction::Update => "update",
                StackAction::RecreateAfterFailedCreate => "recreate",
                StackAction::Busy(m) => {
                    assert!(m.contains("busy") && m.contains("wait"), "{m}");
                    "busy"
                }
                StackAction::Stuck(m) => {
                    assert!(m.contains(status.unwrap()), "{m}");
                    "stuck"
                }
            };
            assert_eq!(got, expected, "{status:?}");
        }
    }

    #[test]
    fn change_sets_are_classified_by_status_and_reason_not_by_their_changes() {
        assert_eq!(
            classify_change_set("CREATE_COMPLETE", None),
            ChangeSetOutcome::Ready
        );
        assert_eq!(
            classify_change_set(
                "FAILED",
                Some(
                    "The submitted information didn't contain changes. Submit different information to create a change set."
                )
            ),
            ChangeSetOutcome::NoChanges
        );
        assert_eq!(
            classify_change_set("FAILED", Some("No updates are to be performed.")),
            ChangeSetOutcome::NoChanges
        );
        assert_eq!(
            classify_change_set("FAILED", Some("Template format error")),
            ChangeSetOutcome::Failed("Template format error".into())
        );
        assert!(matches!(
            classify_change_set("DELETE_COMPLETE", None),
            ChangeSetOutcome::Failed(_)
        ));
    }

    #[test]
    fn only_this_tools_unexecuted_change_sets_are_stale() {
        let summary = |name: &str, execution_status: &str| ChangeSetSummary {
            name: name.into(),
            execution_status: execution_status.into(),
        };
        let listed = [
            summary("smartvault-1764118800", "AVAILABLE"),
            summary("smartvault-1764118801", "UNAVAILABLE"),
            summary("smartvault-1764118802", "EXECUTE_IN_PROGRESS"),
            summary("smartvault-1764118803", "EXECUTE_COMPLETE"),
            summary("smartvault-review", "AVAILABLE"),
            summary("smartvault-", "AVAILABLE"),
            summary("someone-elses", "AVAILABLE"),
        ];
        assert_eq!(
            stale_change_sets(&listed),
            vec!["smartvault-1764118800", "smartvault-1764118801"]
        );
        assert!(stale_change_sets(&[]).is_empty());
    }

    #[test]
    fn a_change_set_name_is_in_milliseconds_and_recognised_as_ours() {
        let now = time::macros::datetime!(2026-11-26 01:00:00.123 UTC);
        let name = change_set_name(now);
        assert_eq!(name, "smartvault-1795654800123");
        let summary = ChangeSetSummary {
            name,
            execution_status: "AVAILABLE".into(),
        };
        assert_eq!(
            stale_change_sets(std::slice::from_ref(&summary)),
            vec![summary.name]
        );
    }

    #[test]
    fn healthy_means_complete_and_not_rolled_back() {
        assert!(is_healthy("CREATE_COMPLETE") && is_healthy("UPDATE_COMPLETE"));
        for status in [
            "UPDATE_ROLLBACK_COMPLETE",
            "ROLLBACK_COMPLETE",
            "REVIEW_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
        ] {
            assert!(!is_healthy(status), "{status}");
        }
    }

    #[test]
    fn the_change_table_aligns_columns() {
        let rows = [
            ChangeRow {
                action: "Add".into(),
                logical_id: "Function".into(),
                resource_type: "AWS::Lambda::Function".into(),
                replacement: "".into(),
            },
            ChangeRow {
                action: "Modify".into(),
                logical_id: "Role".into(),
                resource_type: "AWS::IAM::Role".into(),
                replacement: "False".into(),
            },
        ];
        let table = change_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "  ACTION  RESOURCE  TYPE                   REPLACEMENT"
        );
        assert_eq!(lines[2], "  Modify  Role      AWS::IAM::Role         False");
        assert!(change_table(&[]).contains("no resource changes"));
    }
}
