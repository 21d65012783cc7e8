//! The events the function accepts, validated before anything is done.
//!
//! Two kinds are accepted, and nothing in between: the scheduled event exactly as EventBridge
//! (or EventBridge Scheduler) sends it, which always means "back up, then clean up", and an
//! action event (`{"action": ...}`) that carries every option. A scheduled event that also
//! carries an option is refused rather than run without it.

use crate::model::{Interval, Job, Phase, RunOptions};
use crate::report::RunReport;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use time::OffsetDateTime;

/// The most instances one event may name: EC2 takes at most 200 values in one filter, and a
/// bounded list keeps the invocation's result bounded too.
pub const MAX_INSTANCE_IDS: usize = 200;

/// The EventBridge sources whose `Scheduled Event` starts a run.
const SCHEDULED_SOURCES: &[&str] = &["aws.events", "aws.scheduler"];
const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
/// The fields of an EventBridge event; a scheduled event carries exactly these.
const ENVELOPE_FIELDS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
];
const ACTIONS: &[&str] = &[
    "scheduled",
    "manual-trigger",
    "backup",
    "cleanup",
    "restore-test",
];
/// EC2's event when the snapshots of one `CreateSnapshots` call are done.
pub const COMPLETION_SOURCE: &str = "aws.ec2";
/// See [`COMPLETION_SOURCE`].
pub const COMPLETION_DETAIL_TYPE: &str = "EBS Multi-Volume Snapshots Completion Status";

/// A validated request: what to do, and whether to only pretend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: EventKind,
    pub options: RunOptions,
    /// The event asked for a dry run (the configuration may ask for one too).
    pub dry_run: bool,
    /// Where an EC2 event comes from (its envelope's region and account); `None` for the
    /// events the function's own schedules and people send.
    pub origin: Option<Origin>,
}

/// The region and account an EventBridge event names in its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub region: String,
    pub account: String,
}

/// Which of the accepted kinds an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// EventBridge's scheduled event: always the whole job, with no options.
    Scheduled,
    /// `{"action": ...}`, with its options.
    Action,
    /// `{"continuation": ...}`: the next link of a run that an earlier invocation handed on.
    Continuation(Box<Link>),
    /// EC2's event that the snapshots of one `CreateSnapshots` are completed: they are copied
    /// to the copy regions now (a copy run).
    SnapshotsCompleted,
}

/// What one invocation of a run hands to the next: the run's identity and options, and the
/// report so far (bounded). Sent by the function to itself, never written by people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// When the run started: every link plans and tags with this time, so a snapshot set made
    /// by an earlier link is recognised by its `created-at` tag.
    #[serde(with = "time::serde::rfc3339")]
    pub run_started_at: OffsetDateTime,
    /// This link's number: 2 for the first continuation.
    pub number: u32,
    pub options: RunOptions,
    pub dry_run: bool,
    /// The report of the links before this one.
    pub so_far: RunReport,
}

impl Link {
    /// The continuation event that starts this link.
    pub fn event(&self) -> serde_json::Value {
        serde_json::json!({ "continuation": self })
    }
}

/// An event the function refuses, with what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError(String);

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid event: {}; expected an EventBridge scheduled event, \
             {{\"action\": \"scheduled\", \"schedule\": \"<name>\"}} (as EventBridge Scheduler \
             sends it), or an object such as {{\"action\": \"backup\"}} with action one of \
             `manual-trigger`, `backup`, `cleanup`, `restore-test` and optional `schedule` (a configured \
             schedule's name), `dry_run` (bool), `force` (bool), `instance_ids` (list of 1 to \
             {MAX_INSTANCE_IDS} instance ids)",
            self.0
        )
    }
}

impl std::error::Error for EventError {}

impl EventError {
    /// A `restore-test` event to a deployment without a restore test.
    pub fn no_restore_test() -> Self {
        EventError(
            "`restore-test` asks for a restore test, but this deployment has none (its \
             RESTORE_TEST variable is empty); add `restore_test:` to its environment in \
             smartvault.yaml and deploy, which also grants the function the rights a test needs"
                .into(),
        )
    }

    /// An EC2 event from another region or account than the function's own.
    pub fn foreign(origin: &Origin, region: &str, account: &str) -> Self {
        EventError(format!(
            "the EC2 event is from account {} in {}, but this function runs in account {account} \
             in {region}; it acts only on its own region's snapshots",
            origin.account, origin.region
        ))
    }

    /// A continuation refused for `problem` (it was not handed on by the function).
    pub fn continuation(problem: &str) -> Self {
        EventError(format!("a continuation event refused: {problem}"))
    }

    /// An event naming a schedule the deployment does not have.
    pub fn unknown_schedule(name: &str, configured: &[String]) -> Self {
        EventError(format!(
            "`schedule` is {name:?}, but this deployment's schedules are {}; name one of them, \
             or leave `schedule` out of a manual event for the default one",
            configured.join(", ")
        ))
    }
}

/// An invocation's payload as it arrived: the JSON, and the first key that appeared twice in
/// one object. A parsed `serde_json::Value` keeps only the last of two equal keys, so a
/// duplicate (`{"dry_run": true, "dry_run": false}`) is caught while the bytes are read.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    value: serde_json::Value,
    duplicate: Option<String>,
}

impl Payload {
    /// Reads a payload from JSON text, noting any duplicate key.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let payload = Payload::deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(payload)
    }

    /// The JSON as parsed (for a duplicate key, the last value).
    pub fn value(&self) -> &serde_json::Value {
        &self.value
    }

    /// The path of the first key given twice in one object, e.g. `detail.action`.
    pub fn duplicate(&self) -> Option<&str> {
        self.duplicate.as_deref()
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        Payload {
            value,
            duplicate: None,
        }
    }
}

impl From<&serde_json::Value> for Payload {
    fn from(value: &serde_json::Value) -> Self {
        value.clone().into()
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let duplicate = RefCell::new(None);
        let value = Strict {
            duplicate: &duplicate,
            path: String::new(),
        }
        .deserialize(deserializer)?;
        Ok(Payload {
            value,
            duplicate: duplicate.into_inner(),
        })
    }
}

/// Builds a `serde_json::Value` like its own `Deserialize`, recording the first duplicate key.
struct Strict<'a> {
    duplicate: &'a RefCell<Option<String>>,
    path: String,
}

impl Strict<'_> {
    fn child(&self, key: &str) -> Self {
        Strict {
            duplicate: self.duplicate,
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child(&format!("[{}]", items.len())))? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if object.contains_key(&key) && self.duplicate.borrow().is_none() {
                *self.duplicate.borrow_mut() = Some(child.path.clone());
            }
            let value = map.next_value_seed(child)?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionEvent {
    action: Action,
    #[serde(default)]
    dry_run: bool,
    /// `None` when the event leaves it out: a `restore-test` refuses `force` even as `false`.
    force: Option<bool>,
    instance_ids: Option<Vec<String>>,
    schedule: Option<String>,
}

enum Action {
    Scheduled,
    ManualTrigger,
    Backup,
    Cleanup,
    RestoreTest,
}

// Written by hand: a derived enum would also take serde's map form, `{"backup": null}`.
impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "scheduled" => Ok(Action::Scheduled),
            "manual-trigger" => Ok(Action::ManualTrigger),
            "backup" => Ok(Action::Backup),
            "cleanup" => Ok(Action::Cleanup),
            "restore-test" => Ok(Action::RestoreTest),
            other => Err(de::Error::unknown_variant(other, ACTIONS)),
        }
    }
}

/// Parses and validates an invocation event.
pub fn parse(payload: &Payload) -> Result<Request, EventError> {
    if let Some(key) = payload.duplicate() {
        return Err(EventError(format!(
            "the key `{key}` appears twice; give each key once"
        )));
    }
    let event = payload.value();
    let Some(object) = event.as_object() else {
        return Err(EventError(format!(
            "the event is {event}, not a JSON object"
        )));
    };
    if object.get("source").and_then(|v| v.as_str()) == Some(COMPLETION_SOURCE) {
        return completion(object);
    }
    if object.contains_key("source") || object.contains_key("detail-type") {
        return scheduled(object);
    }
    if let Some(link) = object.get("continuation") {
        return continuation(object, link);
    }
    if object.get("instance_ids").is_some_and(|v| v.is_null()) {
        return Err(EventError(
            "`instance_ids` is null; leave it out to back up every tagged instance, or list \
             the instance ids"
                .into(),
        ));
    }
    let action = ActionEvent::deserialize(event).map_err(|e| EventError(e.to_string()))?;
    if let Some(name) = &action.schedule
        && !crate::config::is_schedule_name(name)
    {
        return Err(EventError(format!(
            "`schedule` is {name:?}, which is not a schedule name (1 to 32 lowercase letters, \
             digits and hyphens)"
        )));
    }
    if matches!(action.action, Action::Scheduled) {
        if action.schedule.is_none() {
            return Err(EventError(
                "a `scheduled` event names its schedule: {\"action\": \"scheduled\", \
                 \"schedule\": \"daily\"}"
                    .into(),
            ));
        }
        if action.dry_run || action.force.is_some() || action.instance_ids.is_some() {
            return Err(EventError(
                "a `scheduled` event carries only `schedule`: it always backs up and cleans \
                 up the whole fleet; to ask for options, send {\"action\": \"manual-trigger\", \
                 \"schedule\": ..., ...} instead"
                    .into(),
            ));
        }
    }
    if matches!(action.action, Action::RestoreTest)
        && (action.force.is_some() || action.schedule.is_some())
    {
        return Err(EventError(
            "a `restore-test` event takes only `dry_run` and `instance_ids`: it restores the \
             newest completed set of a sample of instances (or of the instances named), \
             whatever the schedule; leave `force` and `schedule` out"
                .into(),
        ));
    }
    let instance_ids = match action.instance_ids {
        None => None,
        Some(ids) => Some(instance_ids(ids)?),
    };
    Ok(Request {
        kind: EventKind::Action,
        options: RunOptions {
            job: match action.action {
                Action::Scheduled | Action::ManualTrigger => Job::BackupAndCleanup,
                Action::Backup => Job::Backup,
                Action::Cleanup => Job::Cleanup,
                Action::RestoreTest => Job::RestoreTest,
            },
            schedule: action.schedule,
            snapshot_ids: None,
            interval: if action.force == Some(true) {
                Interval::Ignore
            } else {
                Interval::Respect
            },
            instance_ids,
            phase: Phase::FirstLink,
        },
        dry_run: action.dry_run,
        origin: None,
    })
}

fn instance_ids(ids: Vec<String>) -> Result<BTreeSet<String>, EventError> {
    if ids.is_empty() {
        return Err(EventError(
            "`instance_ids` is empty; leave it out to back up every tagged instance".into(),
        ));
    }
    if ids.len() > MAX_INSTANCE_IDS {
        return Err(EventError(format!(
            "`instance_ids` lists {} instances, more than {MAX_INSTANCE_IDS}; split them over \
             several invocations, or tag them and leave `instance_ids` out",
            ids.len()
        )));
    }
    if let Some(bad) = ids.iter().find(|id| !is_instance_id(id)) {
        return Err(EventError(format!(
            "`instance_ids` holds {bad:?}, which is not an instance id like i-0123456789abcdef0"
        )));
    }
    Ok(ids.into_iter().collect())
}

/// An EventBridge event: accepted only as a scheduled event with EventBridge's own fields.
fn scheduled(object: &serde_json::Map<String, serde_json::Value>) -> Result<Request, EventError> {
    let text = |key: &str| object.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let (source, detail_type) = (text("source"), text("detail-type"));
    if !SCHEDULED_SOURCES.contains(&source) || detail_type != SCHEDULED_DETAIL_TYPE {
        return Err(EventError(format!(
            "an EventBridge event with source {} and detail-type {} is not one SmartVault \
             runs on; it accepts only detail-type {SCHEDULED_DETAIL_TYPE:?} from source {}",
            object.get("source").unwrap_or(&serde_json::Value::Null),
            object
                .get("detail-type")
                .unwrap_or(&serde_json::Value::Null),
            SCHEDULED_SOURCES
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    let options_hint = "a scheduled event always backs up and cleans up the whole fleet; to \
                        ask for options, send an action event instead, e.g. \
                        {\"action\": \"manual-trigger\", \"dry_run\": true}";
    if let Some(extra) = object
        .keys()
        .find(|key| !ENVELOPE_FIELDS.contains(&key.as_str()))
    {
        return Err(EventError(format!(
            "the scheduled event carries `{extra}`, which is not an EventBridge field; \
             {options_hint}"
        )));
    }
    match object.get("detail") {
        None => {}
        Some(serde_json::Value::Object(detail)) if detail.is_empty() => {}
        Some(detail) => {
            return Err(EventError(format!(
                "the scheduled event's `detail` is {detail}, where EventBridge sends {{}}; \
                 {options_hint}"
            )));
        }
    }
    Ok(Request {
        kind: EventKind::Scheduled,
        options: RunOptions {
            job: Job::BackupAndCleanup,
            interval: Interval::Respect,
            instance_ids: None,
            schedule: None,
            snapshot_ids: None,
            phase: Phase::FirstLink,
        },
        dry_run: false,
        origin: None,
    })
}

/// EC2's completion event of a `CreateSnapshots` call: its envelope, `detail.event`
/// `createSnapshots`, `detail.result` `succeeded` (the rule asks only for those), and the
/// completed snapshots' ARNs. EC2's other detail fields are not needed and not checked.
fn completion(object: &serde_json::Map<String, serde_json::Value>) -> Result<Request, EventError> {
    let expected = format!(
        "EC2's {COMPLETION_DETAIL_TYPE:?} event with detail.event \"createSnapshots\", \
         detail.result \"succeeded\" and detail.snapshots [{{\"snapshot_id\": \
         \"arn:aws:ec2::<region>:snapshot/snap-...\", \"status\": \"completed\"}}, ...]"
    );
    let refuse = |problem: String| {
        Err(EventError(format!(
            "{problem}; SmartVault accepts {expected}"
        )))
    };
    if let Some(extra) = object
        .keys()
        .find(|key| !ENVELOPE_FIELDS.contains(&key.as_str()))
    {
        return refuse(format!(
            "the EC2 event carries `{extra}`, which is not an EventBridge field"
        ));
    }
    let detail_type = object.get("detail-type").and_then(|v| v.as_str());
    if detail_type != Some(COMPLETION_DETAIL_TYPE) {
        return refuse(format!(
            "an EC2 event with detail-type {} is not one SmartVault acts on",
            object
                .get("detail-type")
                .unwrap_or(&serde_json::Value::Null)
        ));
    }
    let Some(detail) = object.get("detail").and_then(|v| v.as_object()) else {
        return refuse("the EC2 event has no `detail` object".into());
    };
    let text = |key: &str| detail.get(key).and_then(|v| v.as_str());
    if text("event") != Some("createSnapshots") || text("result") != Some("succeeded") {
        return refuse(format!(
            "the EC2 event's detail.event is {} and detail.result {}",
            detail.get("event").unwrap_or(&serde_json::Value::Null),
            detail.get("result").unwrap_or(&serde_json::Value::Null)
        ));
    }
    let Some(snapshots) = detail.get("snapshots").and_then(|v| v.as_array()) else {
        return refuse("the EC2 event's detail.snapshots is not a list".into());
    };
    if snapshots.is_empty() || snapshots.len() > MAX_INSTANCE_IDS {
        return refuse(format!(
            "the EC2 event lists {} snapshots, where one CreateSnapshots makes 1 to \
             {MAX_INSTANCE_IDS}",
            snapshots.len()
        ));
    }
    let envelope = |key: &str| object.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let origin = Origin {
        region: envelope("region").to_owned(),
        account: envelope("account").to_owned(),
    };
    if !crate::copies::is_region_name(&origin.region)
        || origin.account.len() != 12
        || !origin.account.bytes().all(|b| b.is_ascii_digit())
    {
        return refuse(format!(
            "the EC2 event's region {:?} and account {:?} are not a region and a 12-digit \
             account",
            origin.region, origin.account
        ));
    }
    let mut ids = BTreeSet::new();
    for entry in snapshots {
        let arn = entry.get("snapshot_id").and_then(|v| v.as_str());
        let Some(id) = arn.and_then(snapshot_id_of) else {
            return refuse(format!(
                "the EC2 event's snapshot entry {entry} has no snapshot ARN ending in \
                 snapshot/snap-<hex>"
            ));
        };
        // EC2 writes the region in these ARNs (`arn:aws:ec2::<region>:snapshot/...`): a
        // snapshot of another region than the event's is not this event's.
        let arn_fields: Vec<&str> = arn.unwrap_or_default().split(':').collect();
        if !arn_fields[3..arn_fields.len().min(5)].contains(&origin.region.as_str()) {
            return refuse(format!(
                "the EC2 event is from {} but names the snapshot {}, which is not in that region",
                origin.region,
                arn.unwrap_or_default()
            ));
        }
        if entry.get("status").and_then(|v| v.as_str()) == Some("completed") {
            ids.insert(id.to_owned());
        }
    }
    Ok(Request {
        kind: EventKind::SnapshotsCompleted,
        options: RunOptions {
            job: Job::Copy,
            interval: Interval::Respect,
            instance_ids: None,
            schedule: None,
            snapshot_ids: Some(ids),
            phase: Phase::FirstLink,
        },
        dry_run: false,
        origin: Some(origin),
    })
}

/// The snapshot id at the end of an ARN such as `arn:aws:ec2::us-east-1:snapshot/snap-0123`.
fn snapshot_id_of(arn: &str) -> Option<&str> {
    let id = arn.strip_prefix("arn:")?.rsplit_once(":snapshot/")?.1;
    is_ec2_id(id, "snap-").then_some(id)
}

/// A continuation: exactly `{"continuation": <Link>}`.
fn continuation(
    object: &serde_json::Map<String, serde_json::Value>,
    link: &serde_json::Value,
) -> Result<Request, EventError> {
    if object.len() != 1 {
        return Err(EventError(
            "a continuation event carries `continuation` alone; the function sends it to \
             itself to go on with a run"
                .into(),
        ));
    }
    let link = Link::deserialize(link)
        .map_err(|e| EventError(format!("`continuation` is malformed: {e}")))?;
    if link.number < 2 || link.number > *crate::settings::MAX_LINKS.range.end() {
        return Err(EventError(format!(
            "`continuation.number` is {}; a continuation is link 2 to {} (MAX_LINKS's range)",
            link.number,
            crate::settings::MAX_LINKS.range.end()
        )));
    }
    if let Some(ids) = &link.options.instance_ids {
        instance_ids(ids.iter().cloned().collect())?;
    }
    // The rules an action event is held to hold for the links of its run too: only backup and
    // cleanup runs go on over several invocations.
    let options = &link.options;
    if !matches!(
        options.job,
        Job::Backup | Job::Cleanup | Job::BackupAndCleanup
    ) || options.snapshot_ids.is_some()
    {
        return Err(EventError(format!(
            "`continuation` carries job `{}`{}; only backup and cleanup runs go on over \
             several invocations (a restore test and a copy run never hand on)",
            options.job,
            if options.snapshot_ids.is_some() {
                " with snapshot ids"
            } else {
                ""
            }
        )));
    }
    if let Some(name) = &options.schedule
        && !crate::config::is_schedule_name(name)
    {
        return Err(EventError(format!(
            "`continuation.options.schedule` is {name:?}, which is not a schedule name"
        )));
    }
    Ok(Request {
        options: RunOptions {
            phase: Phase::LaterLink,
            ..link.options.clone()
        },
        dry_run: link.dry_run,
        kind: EventKind::Continuation(Box::new(link)),
        origin: None,
    })
}

/// Whether `id` is an EC2 instance id: `i-` and 8 or 17 hex digits.
pub fn is_instance_id(id: &str) -> bool {
    is_ec2_id(id, "i-")
}

/// Whether `id` is an EC2 id of the kind `prefix` names (`i-`, `snap-`, `subnet-`, `sg-`,
/// ...): the prefix and 8 or 17 hex digits.
pub fn is_ec2_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(event: &serde_json::Value) -> Request {
        parse(&event.into()).unwrap_or_else(|e| panic!("{event}: {e}"))
    }

    /// EC2's completion event of one `CreateSnapshots`, as the EBS user guide shows it.
    fn completion_event() -> serde_json::Value {
        json!({
            "version": "0", "id": "01234567-0123-0123-0123-012345678901",
            "detail-type": "EBS Multi-Volume Snapshots Completion Status", "source": "aws.ec2",
            "account": "123456789012", "time": "2026-11-26T01:05:00Z", "region": "us-east-1",
            "resources": [
                "arn:aws:ec2::us-east-1:snapshot/snap-01234567",
                "arn:aws:ec2::us-east-1:snapshot/snap-0123456789abcdef0"
            ],
            "detail": {
                "event": "createSnapshots", "result": "succeeded", "cause": "",
                "request-id": "", "startTime": "2026-11-26T01:00:00Z",
                "endTime": "2026-11-26T01:05:00Z",
                "snapshots": [
                    {"snapshot_id": "arn:aws:ec2::us-east-1:snapshot/snap-01234567",
                     "source": "arn:aws:ec2::us-east-1:volume/vol-01234567", "status": "completed"},
                    {"snapshot_id": "arn:aws:ec2::us-east-1:snapshot/snap-0123456789abcdef0",
                     "source": "arn:aws:ec2::us-east-1:volume/vol-012345678", "status": "completed"}
                ]
            }
        })
    }

    #[test]
    fn ec2s_completion_event_is_a_copy_run_of_its_snapshots() {
        let request = ok(&completion_event());
        assert_eq!(request.kind, EventKind::SnapshotsCompleted);
        assert_eq!(request.options.job, Job::Copy);
        assert_eq!(
            request.options.snapshot_ids,
            Some(BTreeSet::from([
                "snap-01234567".to_owned(),
                "snap-0123456789abcdef0".to_owned()
            ]))
        );
        let refused_with = |change: &dyn Fn(&mut serde_json::Value), expected: &str| {
            let mut event = completion_event();
            change(&mut event);
            let message = parse(&(&event).into()).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("detail.result \"succeeded\""), "{message}");
        };
        refused_with(
            &|e| e["detail"]["result"] = json!("failed"),
            "detail.event is \"createSnapshots\" and detail.result \"failed\"",
        );
        refused_with(
            &|e| e["detail"]["snapshots"][1]["snapshot_id"] = json!("snap-1"),
            "has no snapshot ARN",
        );
        refused_with(
            &|e| e["detail"]["snapshots"] = json!([]),
            "lists 0 snapshots",
        );
        refused_with(&|e| e["extra"] = json!(1), "carries `extra`");
        refused_with(&|e| e["detail"] = json!("x"), "no `detail` object");
        refused_with(
            &|e| e["region"] = json!("eu-west-1"),
            "is from eu-west-1 but names the snapshot arn:aws:ec2::us-east-1:snapshot/snap-01234567",
        );
        refused_with(
            &|e| e["account"] = json!("me"),
            "the EC2 event's region \"us-east-1\" and account \"me\"",
        );
        assert_eq!(
            request.origin,
            Some(Origin {
                region: "us-east-1".into(),
                account: "123456789012".into()
            })
        );
    }

    fn scheduled_event() -> serde_json::Value {
        json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-26T01:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/smartvault"], "detail": {}
        })
    }

    #[test]
    fn accepted_events_map_to_jobs() {
        let mut from_scheduler = scheduled_event();
        from_scheduler["source"] = json!("aws.scheduler");
        let cases = [
            (
                scheduled_event(),
                Job::BackupAndCleanup,
                Interval::Respect,
                false,
            ),
            (
                from_scheduler,
                Job::BackupAndCleanup,
                Interval::Respect,
                false,
            ),
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
            (
                json!({"action": "restore-test"}),
                Job::RestoreTest,
                Interval::Respect,
                false,
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
    fn the_scheduler_names_the_schedule_and_a_manual_event_may() {
        let scheduled =
            parse(&json!({"action": "scheduled", "schedule": "weekly"}).into()).unwrap();
        assert_eq!(scheduled.options.job, Job::BackupAndCleanup);
        assert_eq!(scheduled.options.schedule.as_deref(), Some("weekly"));
        assert_eq!(scheduled.options.interval, Interval::Respect);
        let manual =
            parse(&json!({"action": "backup", "schedule": "monthly", "force": true}).into())
                .unwrap();
        assert_eq!(manual.options.schedule.as_deref(), Some("monthly"));
        let unnamed = parse(&json!({"action": "backup"}).into()).unwrap();
        assert_eq!(unnamed.options.schedule, None);
        let refused = EventError::unknown_schedule("hourly", &["daily".into(), "weekly".into()]);
        assert!(
            refused.to_string().contains(
                "`schedule` is \"hourly\", but this deployment's schedules are daily, weekly"
            ),
            "{refused}"
        );
    }

    #[test]
    fn a_restore_test_may_name_its_instances_and_be_a_dry_run() {
        let request = ok(
            &json!({"action": "restore-test", "dry_run": true, "instance_ids": ["i-0123456789abcdef0"]}),
        );
        assert_eq!(request.options.job, Job::RestoreTest);
        assert!(request.dry_run);
        assert_eq!(request.options.instance_ids.unwrap().len(), 1);
        assert!(!Job::RestoreTest.backs_up() && !Job::RestoreTest.cleans_up());
        assert!(!Job::RestoreTest.copies(), "a restore test copies nothing");
    }

    #[test]
    fn instance_ids_limit_the_run() {
        let request =
            ok(&json!({"action": "backup", "instance_ids": ["i-0123456789abcdef0", "i-12345678"]}));
        let ids: Vec<_> = request.options.instance_ids.unwrap().into_iter().collect();
        assert_eq!(ids, vec!["i-0123456789abcdef0", "i-12345678"]);
        let most: Vec<String> = (0..MAX_INSTANCE_IDS)
            .map(|n| format!("i-{n:08x}"))
            .collect();
        let request = ok(&json!({"action": "backup", "instance_ids": most}));
        assert_eq!(
            request.options.instance_ids.unwrap().len(),
            MAX_INSTANCE_IDS
        );
    }

    fn refused(event: &serde_json::Value) -> String {
        parse(&event.into())
            .expect_err(&event.to_string())
            .to_string()
    }

    #[test]
    fn bad_events_are_refused_with_the_reason() {
        let too_many: Vec<String> = (0..=MAX_INSTANCE_IDS)
            .map(|n| format!("i-{n:08x}"))
            .collect();
        let cases = [
            (
                json!({"action": "scheduled"}),
                "a `scheduled` event names its schedule",
            ),
            (
                json!({"action": "scheduled", "schedule": "daily", "dry_run": true}),
                "a `scheduled` event carries only `schedule`",
            ),
            (
                json!({"action": "backup", "schedule": "Daily"}),
                "is not a schedule name",
            ),
            (json!({"action": "restore"}), "unknown variant `restore`"),
            (
                json!({"action": "restore-test", "force": true}),
                "a `restore-test` event takes only `dry_run` and `instance_ids`",
            ),
            (
                json!({"action": "restore-test", "force": false}),
                "a `restore-test` event takes only `dry_run` and `instance_ids`",
            ),
            (
                json!({"action": "restore-test", "schedule": "daily"}),
                "leave `force` and `schedule` out",
            ),
            (json!({"action": {"backup": null}}), "invalid type: map"),
            (json!({"action": ["backup"]}), "invalid type: sequence"),
            (json!({}), "missing field `action`"),
            (
                json!({"action": "backup", "dryrun": true}),
                "unknown field `dryrun`",
            ),
            (
                json!({"action": "backup", "dry_run": "yes"}),
                "invalid type",
            ),
            (json!({"action": "backup", "dry_run": null}), "invalid type"),
            (
                json!({"action": "backup", "instance_ids": []}),
                "`instance_ids` is empty",
            ),
            (
                json!({"action": "backup", "instance_ids": null}),
                "`instance_ids` is null; leave it out",
            ),
            (
                json!({"action": "backup", "instance_ids": too_many}),
                "`instance_ids` lists 201 instances, more than 200",
            ),
            (
                json!({"action": "backup", "instance_ids": ["web-1"]}),
                "\"web-1\"",
            ),
            (json!("backup"), "not a JSON object"),
            (json!(null), "not a JSON object"),
            (
                json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}),
                "an EC2 event with detail-type \"EC2 Instance State-change Notification\" is not \
                 one SmartVault acts on; SmartVault accepts EC2's \"EBS Multi-Volume Snapshots \
                 Completion Status\" event",
            ),
            (
                json!({"source": "aws.events", "detail-type": COMPLETION_DETAIL_TYPE}),
                "it accepts only detail-type \"Scheduled Event\"",
            ),
            (
                json!({"source": "aws.events"}),
                "source \"aws.events\" and detail-type null",
            ),
        ];
        for (event, expected) in cases {
            let message = refused(&event);
            assert!(message.starts_with("invalid event: "), "{message}");
            assert!(message.contains(expected), "{event}: {message}");
            assert!(
                message.contains("manual-trigger"),
                "the message shows what is accepted"
            );
        }
    }

    #[test]
    fn a_scheduled_event_carrying_options_is_refused_not_run_without_them() {
        let with = |key: &str, value: serde_json::Value| {
            let mut event = scheduled_event();
            event[key] = value;
            event
        };
        let cases = [
            (with("dry_run", json!(true)), "carries `dry_run`"),
            (with("action", json!("cleanup")), "carries `action`"),
            (
                with("instance_ids", json!(["i-12345678"])),
                "carries `instance_ids`",
            ),
            (with("force", json!(true)), "carries `force`"),
            (
                with("detail", json!({"dry_run": true})),
                "`detail` is {\"dry_run\":true}",
            ),
        ];
        for (event, expected) in cases {
            let message = refused(&event);
            assert!(message.contains(expected), "{event}: {message}");
            assert!(
                message.contains("send an action event instead"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_continuation_round_trips_and_is_checked() {
        let run_started_at = time::macros::datetime!(2026-11-26 01:00 UTC);
        let options = RunOptions {
            job: Job::Backup,
            interval: Interval::Ignore,
            instance_ids: None,
            schedule: Some("daily".into()),
            snapshot_ids: None,
            phase: Phase::FirstLink,
        };
        let link = Link {
            run_started_at,
            number: 3,
            options: options.clone(),
            dry_run: false,
            so_far: RunReport::new(
                "prod",
                false,
                crate::model::Job::Backup,
                "Backup=true".into(),
                run_started_at,
            ),
        };
        let request = ok(&link.event());
        assert_eq!(request.options.phase, Phase::LaterLink);
        assert_eq!(
            request.options,
            RunOptions {
                phase: Phase::LaterLink,
                ..options
            }
        );
        assert_eq!(
            request.kind,
            EventKind::Continuation(Box::new(link.clone()))
        );

        let mut first = link.event();
        first["continuation"]["number"] = json!(1);
        assert!(refused(&first).contains("link 2 to 100"));
        let mut endless = link.event();
        endless["continuation"]["number"] = json!(4294967295u32);
        assert!(refused(&endless).contains("link 2 to 100"));
        // The action rules hold for continuations: restore tests and copy runs never hand on.
        for (job, extra, expected) in [
            ("restore-test", None, "job `restore test`"),
            ("copy", None, "job `copy`"),
            (
                "backup",
                Some(("snapshot_ids", json!(["snap-01234567"]))),
                "with snapshot ids",
            ),
            (
                "backup",
                Some(("schedule", json!("Daily!"))),
                "not a schedule name",
            ),
        ] {
            let mut forged = link.event();
            forged["continuation"]["options"]["job"] = json!(job);
            if let Some((key, value)) = extra {
                forged["continuation"]["options"][key] = value;
            }
            let message = refused(&forged);
            assert!(message.contains(expected), "{job}: {message}");
        }
        let mut extra = link.event();
        extra["dry_run"] = json!(true);
        assert!(refused(&extra).contains("carries `continuation` alone"));
        let mut unknown = link.event();
        unknown["continuation"]["links"] = json!(3);
        assert!(refused(&unknown).contains("unknown field `links`"));
    }

    #[test]
    fn the_largest_continuation_fits_an_asynchronous_invocation() {
        use crate::plan::{Skip, Subject};
        use crate::report::{Created, Deleted, Failure, MAX_CARRIED};
        // Lambda takes asynchronous payloads of up to 256 KB. Every list full, every text as
        // long as AWS lets it be (names of 256 characters, long error messages).
        let long = |n: usize| "é".repeat(n);
        let run_started_at = time::macros::datetime!(2026-11-26 01:00 UTC);
        let mut so_far = RunReport::new(
            &"d".repeat(128),
            false,
            crate::model::Job::BackupAndCleanup,
            format!("{}={}", long(128), long(256)),
            run_started_at,
        );
        let n = 10 * MAX_CARRIED;
        so_far.created = vec![
            Created {
                instance_id: "i-0123456789abcdef0".into(),
                instance_name: Some(long(256)),
                volume_id: "vol-0123456789abcdef0".into(),
                device_name: "/dev/xvdba".into(),
                snapshot_id: Some("snap-0123456789abcdef0".into()),
            };
            n
        ];
        so_far.deleted = vec![
            Deleted {
                snapshot_id: "snap-0123456789abcdef0".into(),
                volume_id: Some("vol-0123456789abcdef0".into()),
                instance_id: Some("i-0123456789abcdef0".into()),
                size_gib: 16384,
            };
            n
        ];
        so_far.skipped =
            vec![Skip::new(Subject::Instance("i-0123456789abcdef0".into()), long(4000)); n];
        so_far.failed = vec![
            Failure {
                subject: Some(Subject::Snapshot("snap-0123456789abcdef0".into())),
                operation: "DeleteSnapshot".into(),
                code: "InvalidSnapshot.InUse".into(),
                message: long(4000),
            };
            n
        ];
        so_far.warnings = vec![long(4000); n];
        let link = Link {
            run_started_at,
            number: 100,
            options: RunOptions {
                job: Job::BackupAndCleanup,
                interval: Interval::Ignore,
                instance_ids: Some(
                    (0..MAX_INSTANCE_IDS)
                        .map(|i| format!("i-{i:017x}"))
                        .collect(),
                ),
                schedule: None,
                snapshot_ids: None,
                phase: Phase::LaterLink,
            },
            dry_run: false,
            so_far: so_far.bounded(MAX_CARRIED),
        };
        let bytes = serde_json::to_vec(&link.event()).unwrap().len();
        assert!(bytes < 256 * 1024, "{bytes} bytes");
        eprintln!("the largest continuation: {bytes} bytes");
        let back = parse(&link.event().into()).unwrap();
        let EventKind::Continuation(parsed) = back.kind else {
            panic!("not a continuation");
        };
        assert_eq!(parsed.so_far.totals().created, n, "the counts stay whole");
    }

    #[test]
    fn a_key_given_twice_is_refused_wherever_it_is() {
        let cases = [
            (
                r#"{"action": "backup", "dry_run": true, "dry_run": false}"#,
                "`dry_run`",
            ),
            (r#"{"action": "backup", "action": "cleanup"}"#, "`action`"),
            (
                r#"{"source": "aws.events", "detail-type": "Scheduled Event", "detail": {"a": 1, "a": 2}}"#,
                "`detail.a`",
            ),
            (r#"[{"x": 1, "x": 1}]"#, "`[0].x`"),
        ];
        for (text, key) in cases {
            let payload = Payload::from_json(text).unwrap();
            let message = parse(&payload).expect_err(text).to_string();
            assert!(
                message.contains(&format!("the key {key} appears twice")),
                "{text}: {message}"
            );
        }
        let fine = Payload::from_json(r#"{"action": "backup", "nested": {"action": 1}}"#).unwrap();
        assert_eq!(fine.duplicate(), None);
        assert_eq!(fine.value()["nested"]["action"], 1);
    }

    #[test]
    fn a_payload_reads_every_json_value_as_serde_json_does() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": []}], "c": 18446744073709551615}"#;
        let payload = Payload::from_json(text).unwrap();
        let plain: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(payload.value(), &plain);
        assert!(Payload::from_json("{\"a\": 1} trailing").is_err());
    }
}
