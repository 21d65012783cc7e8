//! Application-consistent snapshots (issue 32), the pure half: a schedule's `consistency` rule
//! (a script's pre and post stages through Systems Manager, or Windows VSS), which instances it
//! covers, what a stage's status means, what happens when it fails, and the VSS document's
//! parameters. `consistent_run.rs` carries it out.

use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// AWS's document that takes VSS snapshots on Windows (the instance makes them).
pub const VSS_DOCUMENT: &str = "AWSEC2-CreateVssSnapshot";
/// `SendCommand` takes at most this many instance ids (its `InstanceIds`, service model).
pub const MAX_INSTANCES_PER_COMMAND: usize = 50;
/// Data Lifecycle Manager's stage values, which a script document's `command` parameter takes
/// (so a document written for DLM serves SmartVault unchanged).
pub const PRE_STAGE: &str = "pre-script";
pub const POST_STAGE: &str = "post-script";
/// How long the function waits for a stage, in seconds (DLM's `ExecutionTimeout`: 10-120).
pub const TIMEOUT_SECONDS: RangeInclusive<u32> = 10..=120;
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 60;
/// How many times a failed pre stage is sent again (DLM's `MaximumRetryCount`: 0-3).
pub const RETRIES: RangeInclusive<u32> = 0..=3;
/// What a link keeps for the snapshots and the post stage besides the pre stage's wait: a
/// stage's wait plus this must fit in the function's timeout, and a batch starts only when it
/// fits before the link's cutoff.
pub const AFTER_PRE_SECONDS: u32 = 30;
/// Lambda's longest timeout: the function, which does not know its own, checks a rule
/// against it (the deployer against the configured one).
pub const LAMBDA_MAX_TIMEOUT_SECONDS: u32 = 900;

/// How a schedule's snapshots are made consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A command document's pre stage before `CreateSnapshots` and its post stage after.
    Script,
    /// AWS's `AWSEC2-CreateVssSnapshot`: the instance takes the snapshots inside a VSS freeze.
    Vss,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Script => "script",
            Mode::Vss => "vss",
        }
    }
}

/// What happens to an instance whose stage failed, timed out or could not be sent (or that
/// Systems Manager does not manage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Snapshot it crash-consistent anyway (DLM's `ExecuteOperationOnScriptFailure: true`).
    #[default]
    Crash,
    /// Make no set of it in this run.
    Skip,
}

/// Only the instances carrying this tag get the consistent mode; the rest of the schedule's
/// are crash-consistent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    pub key: String,
    pub value: String,
}

/// A schedule's `consistency` (absent: crash-consistent, today's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub mode: Mode,
    /// `script` only: the command document, by name or ARN; `None` is the Linux document the
    /// stack ships (`LINUX_FREEZE_DOCUMENT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// Only instances carrying this tag; all of the schedule's when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Selector>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}

impl Rule {
    pub fn new(mode: Mode) -> Rule {
        Rule {
            mode,
            document: None,
            tag: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            retries: 0,
            on_failure: OnFailure::Crash,
        }
    }

    /// Why this rule cannot be carried out by a function whose timeout is
    /// `function_timeout_seconds`, or `None`. Each message names the fix.
    pub fn problem(&self, function_timeout_seconds: u32) -> Option<String> {
        if let Some(document) = &self.document {
            if self.mode == Mode::Vss {
                return Some(format!(
                    "consistency.document applies to mode script only: vss always runs AWS's \
                     {VSS_DOCUMENT}; remove document"
                ));
            }
            if let Some(why) = document_problem(document) {
                return Some(format!("consistency.document {document:?} {why}"));
            }
        }
        if let Some(tag) = &self.tag
            && (tag.key.is_empty()
                || tag.key.chars().count() > crate::tags::MAX_TAG_KEY_CHARS
                || tag.value.chars().count() > crate::tags::MAX_TAG_VALUE_CHARS)
        {
            return Some(format!(
                "consistency.tag {:?}={:?} is not a tag EC2 takes: the key 1 to {} characters, \
                 the value at most {}",
                tag.key,
                tag.value,
                crate::tags::MAX_TAG_KEY_CHARS,
                crate::tags::MAX_TAG_VALUE_CHARS
            ));
        }
        if !TIMEOUT_SECONDS.contains(&self.timeout_seconds) {
            return Some(format!(
                "consistency.timeout_seconds {} is outside {}-{}; use a whole number of seconds \
                 in that range",
                self.timeout_seconds,
                TIMEOUT_SECONDS.start(),
                TIMEOUT_SECONDS.end()
            ));
        }
        if self.timeout_seconds + AFTER_PRE_SECONDS > function_timeout_seconds {
            return Some(format!(
                "consistency.timeout_seconds {} and the {AFTER_PRE_SECONDS} s the snapshots and \
                 the post stage need are longer than the function's timeout_seconds {}; lower \
                 it to at most {} or raise timeout_seconds",
                self.timeout_seconds,
                function_timeout_seconds,
                function_timeout_seconds.saturating_sub(AFTER_PRE_SECONDS)
            ));
        }
        if !RETRIES.contains(&self.retries) {
            return Some(format!(
                "consistency.retries {} is outside {}-{}",
                self.retries,
                RETRIES.start(),
                RETRIES.end()
            ));
        }
        None
    }

    /// Whether an instance with `tags` gets this mode.
    pub fn covers(&self, tags: &crate::tags::Tags) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| tags.get(&t.key) == Some(&t.value))
    }

    /// The document sent: the rule's, AWS's VSS document, or the stack's Linux one.
    pub fn document_name<'a>(&'a self, shipped: &'a str) -> &'a str {
        match (self.mode, &self.document) {
            (Mode::Vss, _) => VSS_DOCUMENT,
            (Mode::Script, Some(document)) => document,
            (Mode::Script, None) => shipped,
        }
    }
}

/// Why `document` is neither a Systems Manager document name (3 to 128 letters, digits and
/// `_-.`) nor a document ARN, or `None`.
pub fn document_problem(document: &str) -> Option<String> {
    let is_name = |name: &str| {
        (3..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if let Some(rest) = document.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let valid = parts.len() == 5
            && parts[0].starts_with("aws")
            && parts[1] == "ssm"
            && !parts[2].is_empty()
            && parts[3].len() == 12
            && parts[3].chars().all(|c| c.is_ascii_digit())
            && parts[4].strip_prefix("document/").is_some_and(is_name);
        return (!valid).then(|| {
            "is not a document ARN; write arn:aws:ssm:<region>:<12-digit account>:document/<name>"
                .to_owned()
        });
    }
    (!is_name(document)).then(|| {
        "is not a Systems Manager document name: 3 to 128 letters, digits, `_`, `-` and `.`; or \
         give its ARN"
            .to_owned()
    })
}

/// Where a command's invocation on one instance stands, from Systems Manager's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Pending, in progress, delayed: not over yet.
    Running,
    Succeeded,
    /// It ended otherwise: the status (and its details when they say more).
    Failed(String),
}

impl Stage {
    /// `Status` and `StatusDetails` of a `ListCommandInvocations` entry.
    pub fn of(status: &str, details: &str) -> Stage {
        match status {
            "Pending" | "InProgress" | "Delayed" | "Cancelling" => Stage::Running,
            "Success" => Stage::Succeeded,
            _ if details.is_empty() || details == status => Stage::Failed(status.to_owned()),
            _ => Stage::Failed(format!("{status} ({details})")),
        }
    }
}

/// What becomes of an instance whose consistent stage did not succeed: snapshot it anyway, or
/// skip it; `reason` says why, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    Crash { reason: String },
    Skip { reason: String },
}

impl Rule {
    pub fn fallback(&self, why: &str) -> Fallback {
        match self.on_failure {
            OnFailure::Crash => Fallback::Crash {
                reason: format!("{why}; snapshotted crash-consistent (on_failure: crash)"),
            },
            OnFailure::Skip => Fallback::Skip {
                reason: format!(
                    "{why}; not snapshotted in this run (on_failure: skip), the next run tries \
                     again"
                ),
            },
        }
    }
}

/// The VSS document's `tags` parameter (`Key=k,Value=v;Key=...`), which tags its snapshots at
/// creation, and the tags it cannot carry (a key or value holding `;`, `,` or `=`), which are
/// added with `CreateTags` once the snapshots are found. The identity tags a lost answer is
/// looked up by never hold those characters.
pub fn vss_tags(tags: &[(String, String)]) -> (String, Vec<(String, String)>) {
    let plain = |text: &str| !text.contains([';', ',', '=']);
    let (carried, rest): (Vec<_>, Vec<_>) = tags
        .iter()
        .cloned()
        .partition(|(key, value)| plain(key) && plain(value));
    let parameter = carried
        .iter()
        .map(|(key, value)| format!("Key={key},Value={value}"))
        .collect::<Vec<_>>()
        .join(";");
    (parameter, rest)
}

/// Whether a batch whose pre stage may take `timeout_seconds` can start with `left` before the
/// link's cutoff: the wait, the snapshots and the post stage must all fit.
pub fn fits(left: std::time::Duration, timeout_seconds: u32) -> bool {
    left >= std::time::Duration::from_secs(u64::from(timeout_seconds + AFTER_PRE_SECONDS))
}

/// One instance's consistency in a run: the summary's, the JSON result's and the metric's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub instance_id: String,
    pub mode: Mode,
    /// Its set was made inside a successful pre stage (or by VSS).
    pub achieved: bool,
    /// Why not, and what was done instead (snapshotted crash-consistent, skipped, left for the
    /// next link); empty when achieved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[cfg(test)]
mod tests;
