//! An environment's schedules (up to four, each with its own expression, IANA time zone and
//! retention), validated before any AWS call, and the preview of their next fire times.

use super::expression;
use crate::config::zone::{self, Zone};
use function::config as fconfig;
use function::consistency::Rule as ConsistencyRule;
use function::locks::LockRule;
use function::model::ScheduleRule;
use function::settings;
use function::tags::DEFAULT_SCHEDULE;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The expression of the one-schedule configuration when `schedule` is not given.
pub const DEFAULT_EXPRESSION: &str = "cron(0 1 * * ? *)";
/// EventBridge Scheduler's flexible time window, in minutes.
const WINDOW_RANGE: std::ops::RangeInclusive<u32> = 1..=1440;

/// EventBridge Scheduler's longest schedule name (its resource-provider schema's `maxLength`).
pub const MAX_SCHEDULE_NAME_CHARS: usize = 64;
/// SQS's longest queue name (CreateQueue's documentation in the service model).
pub const MAX_QUEUE_NAME_CHARS: usize = 80;
/// The dead-letter queue is `<stack name>` followed by this and [`DEAD_LETTER_QUEUE_UNIQUE`]
/// characters of the stack id (new with every stack, so that a deploy after a rollback or a
/// destroy never asks for the name of a queue deleted in the last 60 seconds).
pub const DEAD_LETTER_QUEUE_SUFFIX: &str = "-dead-letters-";
/// How many characters of the stack id end the dead-letter queue's name: the first group of
/// its UUID.
pub const DEAD_LETTER_QUEUE_UNIQUE: usize = 8;

/// Refuses what AWS would refuse only mid-deploy: a schedule named `<stack>-<schedule>` or the
/// queue named `<stack>-dead-letters-<8 characters>` longer than AWS takes. The emulator
/// takes any.
pub fn check_names(stack: &str, schedules: &[Schedule]) -> Result<(), (String, String)> {
    let suffix = DEAD_LETTER_QUEUE_SUFFIX.len() + DEAD_LETTER_QUEUE_UNIQUE;
    let queue = stack.len() + suffix;
    if queue > MAX_QUEUE_NAME_CHARS {
        return Err((
            "stack_name".to_owned(),
            format!(
                "{stack:?} is {} characters; the schedules' dead-letter queue \
                 {stack}{DEAD_LETTER_QUEUE_SUFFIX}<{DEAD_LETTER_QUEUE_UNIQUE} characters of the \
                 stack id> would be {queue}, over SQS's {MAX_QUEUE_NAME_CHARS}; use a stack name \
                 of at most {}",
                stack.len(),
                MAX_QUEUE_NAME_CHARS - suffix
            ),
        ));
    }
    for (index, schedule) in schedules.iter().enumerate() {
        let length = stack.len() + 1 + schedule.name.len();
        if length > MAX_SCHEDULE_NAME_CHARS {
            return Err((
                format!("schedules[{index}].name"),
                format!(
                    "the schedule would be named {stack}-{}, {length} characters, over \
                     EventBridge Scheduler's {MAX_SCHEDULE_NAME_CHARS}; shorten the schedule's \
                     name to at most {} or the stack name",
                    schedule.name,
                    MAX_SCHEDULE_NAME_CHARS.saturating_sub(stack.len() + 1)
                ),
            ));
        }
    }
    Ok(())
}

/// One entry of `schedules:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub name: String,
    pub expression: String,
    pub timezone: Option<String>,
    pub retention_days: Option<u32>,
    pub keep_last: Option<u32>,
    pub flexible_window_minutes: Option<u32>,
    pub lock: Option<LockRule>,
    pub consistency: Option<RawConsistency>,
    pub archive_after_days: Option<u32>,
    pub fast_restore: Option<function::fast_restore::Rule>,
}

/// A schedule's `consistency:` as written: `mode` is `crash` (the default), `script` or `vss`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsistency {
    pub mode: String,
    pub document: Option<String>,
    pub tag: Option<function::consistency::Selector>,
    pub timeout_seconds: Option<u32>,
    pub retries: Option<u32>,
    pub on_failure: Option<String>,
}

impl RawConsistency {
    /// The rule (`None` for `crash`), or the key and message of the mistake, with its fix.
    /// The wait is checked against the function's timeout by the environment.
    pub fn rule(&self) -> Result<Option<ConsistencyRule>, (String, String)> {
        use function::consistency::{Mode, OnFailure};
        let mode = match self.mode.as_str() {
            "crash" => {
                let extra = self.document.is_some()
                    || self.tag.is_some()
                    || self.timeout_seconds.is_some()
                    || self.retries.is_some()
                    || self.on_failure.is_some();
                if extra {
                    return Err((
                        "consistency".to_owned(),
                        "mode crash takes no other key: it snapshots as today; remove the \
                         others, or choose mode script or vss"
                            .to_owned(),
                    ));
                }
                return Ok(None);
            }
            "script" => Mode::Script,
            "vss" => Mode::Vss,
            other => {
                return Err((
                    "consistency.mode".to_owned(),
                    format!("{other:?} is not a consistency mode; use crash, script or vss"),
                ));
            }
        };
        let on_failure = match self.on_failure.as_deref() {
            None | Some("crash") => OnFailure::Crash,
            Some("skip") => OnFailure::Skip,
            Some(other) => {
                return Err((
                    "consistency.on_failure".to_owned(),
                    format!("{other:?} is not a fallback; use crash (snapshot anyway) or skip"),
                ));
            }
        };
        Ok(Some(ConsistencyRule {
            document: self.document.clone(),
            tag: self.tag.clone(),
            timeout_seconds: self
                .timeout_seconds
                .unwrap_or(function::consistency::DEFAULT_TIMEOUT_SECONDS),
            retries: self.retries.unwrap_or(0),
            on_failure,
            ..ConsistencyRule::new(mode)
        }))
    }
}

/// Whether a schedule's consistency sends SmartVault's Linux document (mode script without a
/// document of its own): the stack then ships it.
pub fn ships_freeze_document(schedules: &[Schedule]) -> bool {
    schedules.iter().any(|s| {
        s.consistency
            .as_ref()
            .is_some_and(|c| c.mode == function::consistency::Mode::Script && c.document.is_none())
    })
}

/// The name of the Linux freeze document a stack ships (its `FreezeDocument`).
pub fn freeze_document_name(stack_name: &str) -> String {
    format!("{stack_name}-linux-freeze")
}

/// The ARNs of the other documents the schedules' consistency sends, each once: a document
/// given by ARN as it is, one by name in the environment's region and account (any account
/// when `account_id` is not configured: a name sends this account's document or one shared
/// with it), and AWS's VSS document.
pub fn consistency_documents(
    schedules: &[Schedule],
    region: &str,
    account_id: Option<&str>,
) -> Vec<String> {
    let partition = crate::config::regions::partition_of(region).unwrap_or("aws");
    let mut arns: Vec<String> = Vec::new();
    for rule in schedules.iter().filter_map(|s| s.consistency.as_ref()) {
        let arn = match (rule.mode, &rule.document) {
            (function::consistency::Mode::Vss, _) => format!(
                "arn:{partition}:ssm:{region}::document/{}",
                function::consistency::VSS_DOCUMENT
            ),
            (_, Some(document)) if document.starts_with("arn:") => document.clone(),
            (_, Some(name)) => format!(
                "arn:{partition}:ssm:{region}:{}:document/{name}",
                account_id.unwrap_or("*")
            ),
            (_, None) => continue,
        };
        if !arns.contains(&arn) {
            arns.push(arn);
        }
    }
    arns
}

/// A validated schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub name: String,
    pub expression: String,
    /// An IANA time zone name; `UTC` by default.
    pub timezone: String,
    pub retention_days: u32,
    pub keep_last: u32,
    /// EventBridge Scheduler may start the run up to this many minutes late; `None` is exact.
    pub flexible_window_minutes: Option<u32>,
    /// Each snapshot of this schedule is locked until its expiry (function/src/locks.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockRule>,
    /// Each set of this schedule is made application-consistent (function/src/consistency.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<ConsistencyRule>,
    /// Its sets move to the archive tier this many days after they are made, when it pays
    /// (function/src/archive.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_after_days: Option<u32>,
    /// Its newest sets are kept ready to restore at full performance
    /// (function/src/fast_restore.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_restore: Option<function::fast_restore::Rule>,
}

/// The longest run a schedule's runs are looked at over, to find its longest gap.
const GAP_HORIZON_DAYS: i64 = 366;
/// ...and the most fire times computed for it (a 5-minute rate reaches it in 69 days).
const GAP_HORIZON_FIRES: usize = 20_000;

impl Schedule {
    /// What the function needs of it: its retention, and after how many hours its newest set
    /// is overdue (its longest gap between runs, its flexible window, and `grace_hours`).
    pub fn rule(&self, grace_hours: u32) -> ScheduleRule {
        ScheduleRule {
            overdue_after_hours: Some(self.overdue_after_hours(grace_hours)),
            lock: self.lock,
            consistency: self.consistency.clone(),
            archive_after_days: self.archive_after_days,
            fast_restore: self.fast_restore.clone(),
            ..ScheduleRule::new(&self.name, self.retention_days, self.keep_last)
        }
    }

    /// The hours after which this schedule's newest set is overdue: its longest gap between
    /// two runs within the next year (a weekday schedule's weekend, a monthly one's 31 days, a
    /// daylight-saving night's extra hour), plus its flexible window, plus `grace_hours`,
    /// rounded up to whole hours.
    pub fn overdue_after_hours(&self, grace_hours: u32) -> u32 {
        let now = OffsetDateTime::now_utc();
        let until = now
            .checked_add(time::Duration::hours(GAP_HORIZON_DAYS * 24))
            .unwrap_or(now);
        let times: Vec<OffsetDateTime> = match Zone::named(&self.timezone) {
            Some(zone) => expression::fire_times_until(
                &self.expression,
                &zone,
                now,
                Some(until),
                GAP_HORIZON_FIRES,
            ),
            None => Vec::new(),
        };
        let longest = times
            .windows(2)
            .map(|pair| pair[1].unix_timestamp() - pair[0].unix_timestamp())
            .max()
            .unwrap_or(GAP_HORIZON_DAYS * 86_400);
        let window = i64::from(self.flexible_window_minutes.unwrap_or(0)) * 60;
        let seconds = longest + window + i64::from(grace_hours) * 3600;
        u32::try_from((seconds + 3599) / 3600).unwrap_or(u32::MAX)
    }

    /// The next `count` fire times after `after`.
    pub fn fire_times(&self, after: OffsetDateTime, count: usize) -> Vec<OffsetDateTime> {
        fire_times_in(&self.expression, &self.timezone, after, count)
    }
}

/// Checks a time zone as EventBridge Scheduler takes it: an IANA name written exactly as the
/// database writes it: AWS matches names exactly, `europe/berlin` is refused.
pub fn check_timezone(timezone: &str) -> Result<(), String> {
    match zone::canonical_name(timezone) {
        Some(name) if name == timezone => Ok(()),
        Some(name) => Err(format!(
            "{timezone:?} is not written as the IANA time-zone database writes it; write \
             {name:?}"
        )),
        None => Err(format!(
            "{timezone:?} is not an IANA time zone; write e.g. Europe/Berlin, America/New_York \
             or UTC"
        )),
    }
}

/// The next `count` fire times of `expression` in the zone named `timezone`; none when the
/// zone is unknown.
pub fn fire_times_in(
    expression: &str,
    timezone: &str,
    after: OffsetDateTime,
    count: usize,
) -> Vec<OffsetDateTime> {
    match Zone::named(timezone) {
        Some(zone) => expression::fire_times(expression, &zone, after, count),
        None => Vec::new(),
    }
}

/// What the environment's keys say about schedules: the list, or the one-schedule keys.
pub struct Requested<'a> {
    pub schedules: Option<&'a [RawSchedule]>,
    pub schedule: Option<&'a str>,
    pub retention_days: Option<u32>,
    pub keep_last: Option<u32>,
}

/// The schedules, or the key and message of the first mistake (with its fix).
pub fn resolve(
    requested: &Requested<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Schedule>, (String, String)> {
    let Some(list) = requested.schedules else {
        let expression = requested.schedule.unwrap_or(DEFAULT_EXPRESSION).to_owned();
        expression::validate(&expression).map_err(|why| ("schedule".to_owned(), why))?;
        let only = Schedule {
            name: DEFAULT_SCHEDULE.to_owned(),
            expression,
            timezone: "UTC".to_owned(),
            retention_days: requested
                .retention_days
                .unwrap_or(settings::RETENTION_DAYS.default),
            keep_last: requested.keep_last.unwrap_or(settings::KEEP_LAST.default),
            flexible_window_minutes: None,
            lock: None,
            consistency: None,
            archive_after_days: None,
            fast_restore: None,
        };
        check_ranges("", &only)?;
        never_fires("schedule", &only, now)?;
        return Ok(vec![only]);
    };
    if requested.schedule.is_some()
        || requested.retention_days.is_some()
        || requested.keep_last.is_some()
    {
        return Err((
            "schedules".to_owned(),
            "give either `schedules:` or the one-schedule keys `schedule`, `retention_days` and \
             `keep_last`, not both; move them into an entry of `schedules:`"
                .to_owned(),
        ));
    }
    if list.is_empty() || list.len() > fconfig::MAX_SCHEDULES {
        return Err((
            "schedules".to_owned(),
            format!(
                "list 1 to {} schedules (as AWS Data Lifecycle Manager allows), not {}",
                fconfig::MAX_SCHEDULES,
                list.len()
            ),
        ));
    }
    let mut schedules: Vec<Schedule> = Vec::new();
    for (index, raw) in list.iter().enumerate() {
        let key = |field: &str| format!("schedules[{index}].{field}");
        if !fconfig::is_schedule_name(&raw.name) {
            return Err((
                key("name"),
                format!(
                    "{:?} is not a schedule name; use 1 to 32 lowercase letters, digits and \
                     hyphens starting with a letter, e.g. daily",
                    raw.name
                ),
            ));
        }
        if schedules.iter().any(|s| s.name == raw.name) {
            return Err((
                key("name"),
                format!("{:?} names two schedules; give each its own name", raw.name),
            ));
        }
        expression::validate(&raw.expression).map_err(|why| (key("expression"), why))?;
        let timezone = raw.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
        check_timezone(&timezone).map_err(|why| (key("timezone"), why))?;
        let schedule = Schedule {
            name: raw.name.clone(),
            expression: raw.expression.clone(),
            timezone,
            retention_days: raw
                .retention_days
                .unwrap_or(settings::RETENTION_DAYS.default),
            keep_last: raw.keep_last.unwrap_or(settings::KEEP_LAST.default),
            flexible_window_minutes: raw.flexible_window_minutes,
            lock: raw.lock,
            consistency: match &raw.consistency {
                None => None,
                Some(consistency) => consistency
                    .rule()
                    .map_err(|(field, why)| (key(&field), why))?,
            },
            archive_after_days: raw.archive_after_days,
            fast_restore: raw.fast_restore.clone(),
        };
        if let Some(why) = schedule.archive_after_days.and_then(|days| {
            function::archive::archive_after_problem(days, schedule.retention_days)
        }) {
            return Err((key("archive_after_days"), why));
        }
        check_ranges(&format!("schedules[{index}]."), &schedule)?;
        // Equal in effect, however written (`UTC` and `Etc/UTC`, `rate(1 day)` and
        // `rate(24 hours)`): the same next fire times.
        let instants = |s: &Schedule| s.fire_times(now, SAME_EFFECT_FIRES);
        let ours = instants(&schedule);
        if let Some(twin) = schedules.iter().find(|s| {
            (s.expression == schedule.expression && s.timezone == schedule.timezone)
                || (!ours.is_empty() && instants(s) == ours)
        }) {
            return Err((
                key("expression"),
                format!(
                    "{} in {} is also schedule {}'s ({} in {}): two schedules would make \
                     two sets at the same moment; merge them, or change one",
                    schedule.expression,
                    schedule.timezone,
                    twin.name,
                    twin.expression,
                    twin.timezone
                ),
            ));
        }
        never_fires(&key("expression"), &schedule, now)?;
        schedules.push(schedule);
    }
    Ok(schedules)
}

/// How many next fire times two schedules must share to be the same in effect.
const SAME_EFFECT_FIRES: usize = 50;

fn check_ranges(prefix: &str, schedule: &Schedule) -> Result<(), (String, String)> {
    let out = |key: &str, value: u32, range: &std::ops::RangeInclusive<u32>| {
        (
            format!("{prefix}{key}"),
            format!(
                "{value} is out of range; use a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )
    };
    for (setting, value) in [
        (&settings::RETENTION_DAYS, schedule.retention_days),
        (&settings::KEEP_LAST, schedule.keep_last),
    ] {
        if !setting.range.contains(&value) {
            return Err(out(setting.key, value, &setting.range));
        }
    }
    if let Some(window) = schedule.flexible_window_minutes
        && !WINDOW_RANGE.contains(&window)
    {
        return Err(out("flexible_window_minutes", window, &WINDOW_RANGE));
    }
    if let Some(problem) = schedule
        .lock
        .and_then(|lock| lock.problem(schedule.retention_days))
    {
        return Err((format!("{prefix}lock"), problem));
    }
    Ok(())
}

/// Refuses an expression with no fire time left (the 30th of February, a year gone by).
fn never_fires(
    key: &str,
    schedule: &Schedule,
    now: OffsetDateTime,
) -> Result<(), (String, String)> {
    if schedule.fire_times(now, 1).is_empty() {
        return Err((
            key.to_owned(),
            format!(
                "{} never fires (no such date, or none left); check the day, month and year \
                 fields",
                schedule.expression
            ),
        ));
    }
    Ok(())
}

/// The function's `SCHEDULES` variable for these schedules, each overdue after its longest
/// gap plus `grace_hours`.
pub fn function_variable(schedules: &[Schedule], grace_hours: u32) -> String {
    let rules: Vec<ScheduleRule> = schedules.iter().map(|s| s.rule(grace_hours)).collect();
    serde_json::to_string(&rules).unwrap_or_default()
}

/// CloudWatch evaluates an alarm over at most seven days (`Period` times `EvaluationPeriods`,
/// from `PutMetricAlarm`'s documentation in the CloudWatch service model), in hours.
pub const MAX_ALARM_WINDOW_HOURS: u32 = 168;

/// How many hourly periods the overdue alarms look back for a report: the shortest schedule's
/// overdue hours (every run reports every schedule's age, so some run reports within it).
/// `None` when even that is longer than CloudWatch can look back (only weekly or rarer
/// schedules): the stack then has no overdue alarms, and `cargo xtask coverage --fail-on
/// overdue` from a cron job watches instead.
pub fn alarm_window_hours(schedules: &[Schedule], grace_hours: u32) -> Option<u32> {
    schedules
        .iter()
        .map(|s| s.overdue_after_hours(grace_hours))
        .min()
        .filter(|hours| *hours <= MAX_ALARM_WINDOW_HOURS)
}

/// Each schedule's next five fire times, in its own zone and in UTC, e.g.
/// `2027-01-04 02:00 Europe/Berlin = 01:00 UTC`.
pub fn preview(schedules: &[Schedule], now: OffsetDateTime) -> String {
    let mut text = String::new();
    for schedule in schedules {
        text.push_str(&format!(
            "schedule {} ({} in {}; kept {} days, the newest {} always):\n",
            schedule.name,
            schedule.expression,
            schedule.timezone,
            schedule.retention_days,
            schedule.keep_last
        ));
        text.push_str(&fire_lines(
            &schedule.expression,
            &schedule.timezone,
            now,
            5,
        ));
        if let Some(lock) = schedule.lock {
            text.push_str(&format!("  {}\n", lock_line(lock, schedule.retention_days)));
        }
        text.push_str(&format!(
            "  {}\n",
            consistency_line(schedule.consistency.as_ref())
        ));
        if let Some(line) = archive_line(schedule) {
            text.push_str(&format!("  {line}\n"));
        }
        if let Some(rule) = &schedule.fast_restore {
            text.push_str(&format!("  {}\n", fast_restore_line(rule)));
        }
        for note in notes(schedule) {
            text.push_str(&format!("  note: {note}\n"));
        }
    }
    text
}

/// A schedule's archive tier setting and what it costs, in one line.
fn archive_line(schedule: &Schedule) -> Option<String> {
    use function::archive::{ARCHIVE_PRICE_PER_GB_MONTH, MIN_ARCHIVE_DAYS};
    let days = schedule.archive_after_days?;
    Some(format!(
        "archive: sets move to the archive tier {days} days after they are made when it pays \
         (${ARCHIVE_PRICE_PER_GB_MONTH} a GB-month on their full size against ${} on the \
         blocks they free; billed {MIN_ARCHIVE_DAYS} days at least; a restore from it takes up \
         to 72 hours); never a volume's newest set",
        function::cost::STANDARD_PRICE_PER_GB_MONTH
    ))
}

/// A schedule's fast snapshot restore and its monthly cost, in one line.
fn fast_restore_line(rule: &function::fast_restore::Rule) -> String {
    use function::fast_restore::{DEFAULT_REGION_QUOTA, HOURS_PER_MONTH, PRICE_PER_HOUR};
    format!(
        "fast restore: the newest {} of each {} ready in {}: ${:.2} a month per volume \
         (${PRICE_PER_HOUR} an hour per snapshot and zone, {HOURS_PER_MONTH} hours); a region \
         enables {DEFAULT_REGION_QUOTA} snapshots at most unless its quota is raised",
        if rule.count == 1 {
            "set".to_owned()
        } else {
            format!("{} sets", rule.count)
        },
        rule.tag.as_ref().map_or_else(
            || "instance".to_owned(),
            |t| format!("instance tagged {}={}", t.key, t.value)
        ),
        rule.zones.join(", "),
        rule.monthly_usd_per_volume()
    )
}

/// A schedule's consistency mode, in one line.
fn consistency_line(rule: Option<&ConsistencyRule>) -> String {
    use function::consistency::{Mode, OnFailure};
    let Some(rule) = rule else {
        return "consistency: crash (every volume of an instance at one instant, no stage run)"
            .to_owned();
    };
    let how = match (rule.mode, &rule.document) {
        (Mode::Script, None) => "script: SmartVault's Linux freeze document".to_owned(),
        (Mode::Script, Some(document)) => format!("script: document {document}"),
        (Mode::Vss, _) => format!("vss: {}", function::consistency::VSS_DOCUMENT),
    };
    let which = rule.tag.as_ref().map_or_else(
        || "every instance of the schedule".to_owned(),
        |t| format!("instances tagged {}={}", t.key, t.value),
    );
    let fallback = match rule.on_failure {
        OnFailure::Crash => "snapshotted crash-consistent",
        OnFailure::Skip => "skipped",
    };
    let retried = match rule.retries {
        0 => "not retried".to_owned(),
        1 => "retried once".to_owned(),
        n => format!("retried {n} times"),
    };
    format!(
        "consistency: {how}, on {which}; a stage waited for {} s, {retried}, then {fallback}",
        rule.timeout_seconds
    )
}

/// What a schedule's lock means, in one line.
fn lock_line(lock: LockRule, retention_days: u32) -> String {
    use function::locks::LockMode;
    match (lock.mode, lock.cool_off_hours) {
        (LockMode::Governance, _) => format!(
            "locked (governance) for its {retention_days} days: deleting one first needs \
             ec2:UnlockSnapshot, which no SmartVault role holds"
        ),
        (LockMode::Compliance, cool_off) => format!(
            "locked (compliance) for its {retention_days} days{}: then nobody, the account \
             root included, can delete or shorten it before it expires",
            cool_off.map_or_else(
                || ", at once".to_owned(),
                |hours| format!(", after a {hours}-hour cooling-off")
            )
        ),
    }
}

/// What a schedule's expression means that its text does not say.
fn notes(schedule: &Schedule) -> Vec<String> {
    let mut notes = Vec::new();
    if schedule.expression.starts_with("rate(") && schedule.timezone != "UTC" {
        notes.push(format!(
            "a rate() counts from when the schedule is created, whatever the zone: \
             {} changes nothing; use a cron() to run at a time of day there",
            schedule.timezone
        ));
    }
    let year = schedule
        .expression
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|inner| inner.split(' ').nth(5));
    if year.is_some_and(|y| y != "*") {
        notes.push(format!(
            "this cron names years ({}): after its last run no set is made, and the schedule's \
             overdue alarm fires until the schedule is removed or changed",
            year.unwrap_or_default()
        ));
    }
    notes
}

/// The next `count` fire times of `expression` in `timezone`, one indented line each, in the
/// zone and in UTC.
pub fn fire_lines(expression: &str, timezone: &str, now: OffsetDateTime, count: usize) -> String {
    let mut text = String::new();
    for at in fire_times_in(expression, timezone, now, count) {
        let utc = at.to_offset(time::UtcOffset::UTC);
        text.push_str(&format!(
            "  {} {} = {}{} UTC\n",
            zone::minutes(at),
            timezone,
            if utc.date() == at.date() {
                String::new()
            } else {
                format!("{} ", zone::day(utc))
            },
            zone::clock(utc)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_says_each_schedules_consistency() {
        use function::consistency::{Mode, OnFailure, Rule, Selector};
        assert_eq!(
            consistency_line(None),
            "consistency: crash (every volume of an instance at one instant, no stage run)"
        );
        let rule = Rule {
            tag: Some(Selector {
                key: "app".into(),
                value: "postgres".into(),
            }),
            retries: 1,
            ..Rule::new(Mode::Script)
        };
        assert_eq!(
            consistency_line(Some(&rule)),
            "consistency: script: SmartVault's Linux freeze document, on instances tagged \
             app=postgres; a stage waited for 60 s, retried once, then snapshotted \
             crash-consistent"
        );
        let vss = Rule {
            on_failure: OnFailure::Skip,
            timeout_seconds: 120,
            ..Rule::new(Mode::Vss)
        };
        assert_eq!(
            consistency_line(Some(&vss)),
            "consistency: vss: AWSEC2-CreateVssSnapshot, on every instance of the schedule; a \
             stage waited for 120 s, not retried, then skipped"
        );
    }

    #[test]
    fn the_preview_says_each_schedules_archive_and_fast_restore_with_their_cost() {
        use function::consistency::Selector;
        use function::fast_restore::Rule;
        let two_zones = Rule {
            zones: vec!["us-east-1a".into(), "us-east-1b".into()],
            count: 2,
            tag: Some(Selector {
                key: "tier".into(),
                value: "gold".into(),
            }),
        };
        assert_eq!(
            fast_restore_line(&two_zones),
            "fast restore: the newest 2 sets of each instance tagged tier=gold ready in \
             us-east-1a, us-east-1b: $2190.00 a month per volume ($0.75 an hour per snapshot and \
             zone, 730 hours); a region enables 5 snapshots at most unless its quota is raised"
        );
        let one = Rule {
            zones: vec!["us-east-1a".into()],
            count: 1,
            tag: None,
        };
        assert!(
            fast_restore_line(&one).starts_with(
                "fast restore: the newest set of each instance ready in us-east-1a: $547.50 a month"
            ),
            "{}",
            fast_restore_line(&one)
        );
        let monthly = Schedule {
            name: "monthly".into(),
            expression: "cron(0 3 1 * ? *)".into(),
            timezone: "UTC".into(),
            retention_days: 400,
            keep_last: 0,
            flexible_window_minutes: None,
            lock: None,
            consistency: None,
            archive_after_days: Some(30),
            fast_restore: Some(one),
        };
        assert_eq!(
            archive_line(&monthly).unwrap(),
            "archive: sets move to the archive tier 30 days after they are made when it pays \
             ($0.0125 a GB-month on their full size against $0.05 on the blocks they free; \
             billed 90 days at least; a restore from it takes up to 72 hours); never a volume's \
             newest set"
        );
        let text = preview(&[monthly], at("2027-01-01T00:00:00Z"));
        assert!(
            text.contains("  archive: sets move")
                && text.contains("  fast restore: the newest set"),
            "{text}"
        );
    }

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    }

    fn times(expression: &str, zone: &str, after: &str, count: usize) -> Vec<String> {
        let schedule = Schedule {
            archive_after_days: None,
            fast_restore: None,
            name: "s".into(),
            expression: expression.into(),
            timezone: zone.into(),
            retention_days: 7,
            keep_last: 1,
            flexible_window_minutes: None,
            lock: None,
            consistency: None,
        };
        schedule
            .fire_times(at(after), count)
            .iter()
            .map(|z| {
                format!(
                    "{} {} = {} UTC",
                    zone::minutes(*z),
                    z.format(time::macros::format_description!(
                        "[offset_hour sign:mandatory]:[offset_minute]"
                    ))
                    .unwrap(),
                    zone::clock(z.to_offset(time::UtcOffset::UTC))
                )
            })
            .collect()
    }

    #[test]
    fn fire_times_follow_daylight_saving_in_both_hemispheres() {
        // Berlin springs forward on 2027-03-28: 02:00 local is 01:00 UTC in winter, 00:00 UTC
        // in summer; 02:00 does not exist that night, and EventBridge Scheduler skips it.
        assert_eq!(
            times(
                "cron(0 2 * * ? *)",
                "Europe/Berlin",
                "2027-03-26T12:00:00Z",
                4
            ),
            [
                "2027-03-27 02:00 +01:00 = 01:00 UTC",
                "2027-03-29 02:00 +02:00 = 00:00 UTC",
                "2027-03-30 02:00 +02:00 = 00:00 UTC",
                "2027-03-31 02:00 +02:00 = 00:00 UTC",
            ]
        );
        // The expression `render` showed firing at 03:30 on 28 March: it does not fire then.
        assert_eq!(
            times(
                "cron(30 2 27-31 3 ? 2027)",
                "Europe/Berlin",
                "2027-03-26T00:00:00Z",
                5
            ),
            [
                "2027-03-27 02:30 +01:00 = 01:30 UTC",
                "2027-03-29 02:30 +02:00 = 00:30 UTC",
                "2027-03-30 02:30 +02:00 = 00:30 UTC",
                "2027-03-31 02:30 +02:00 = 00:30 UTC",
            ]
        );
        // New York springs forward on 2027-03-14 (02:00 to 03:00): no 02:30 that day.
        assert_eq!(
            times(
                "cron(30 2 * * ? *)",
                "America/New_York",
                "2027-03-13T00:00:00Z",
                2
            ),
            [
                "2027-03-13 02:30 -05:00 = 07:30 UTC",
                "2027-03-15 02:30 -04:00 = 06:30 UTC",
            ]
        );
        // Lord Howe Island moves by half an hour (02:00 to 02:30 on 2026-10-04): 02:15 is
        // skipped, 02:45 is not.
        assert_eq!(
            times(
                "cron(15,45 2 * * ? *)",
                "Australia/Lord_Howe",
                "2026-10-02T12:00:00Z",
                4
            ),
            [
                "2026-10-03 02:15 +10:30 = 15:45 UTC",
                "2026-10-03 02:45 +10:30 = 16:15 UTC",
                "2026-10-04 02:45 +11:00 = 15:45 UTC",
                "2026-10-05 02:15 +11:00 = 15:15 UTC",
            ]
        );
        // ...and falls back on 2026-10-25: 02:30 happens twice and runs once, at the first.
        assert_eq!(
            times(
                "cron(30 2 * * ? *)",
                "Europe/Berlin",
                "2026-10-24T12:00:00Z",
                2
            ),
            [
                "2026-10-25 02:30 +02:00 = 00:30 UTC",
                "2026-10-26 02:30 +01:00 = 01:30 UTC",
            ]
        );
        // Sydney falls back on 2027-04-04 and springs forward on 2026-10-04 (southern
        // hemisphere: summer time spans the new year).
        assert_eq!(
            times(
                "cron(0 2 * * ? *)",
                "Australia/Sydney",
                "2027-04-02T12:00:00Z",
                3
            ),
            [
                "2027-04-03 02:00 +11:00 = 15:00 UTC",
                "2027-04-04 02:00 +11:00 = 15:00 UTC",
                "2027-04-05 02:00 +10:00 = 16:00 UTC",
            ]
        );
        assert_eq!(
            times(
                "cron(0 2 * * ? *)",
                "Australia/Sydney",
                "2026-10-02T12:00:00Z",
                3
            ),
            [
                "2026-10-03 02:00 +10:00 = 16:00 UTC",
                "2026-10-05 02:00 +11:00 = 15:00 UTC",
                "2026-10-06 02:00 +11:00 = 15:00 UTC",
            ]
        );
    }

    #[test]
    fn fire_times_honour_every_cron_form() {
        let utc = |e: &str, after: &str, n: usize| -> Vec<String> {
            times(e, "UTC", after, n)
                .into_iter()
                .map(|t| t[..16].to_owned())
                .collect()
        };
        // Weekly on Sunday (1), monthly on the 1st, the last day, the last Friday, the second
        // Monday, the nearest weekday to the 15th, every 15 minutes.
        assert_eq!(
            utc("cron(0 3 ? * 1 *)", "2026-11-26T00:00:00Z", 2),
            ["2026-11-29 03:00", "2026-12-06 03:00"]
        );
        assert_eq!(
            utc("cron(0 4 1 * ? *)", "2026-11-26T00:00:00Z", 2),
            ["2026-12-01 04:00", "2027-01-01 04:00"]
        );
        assert_eq!(
            utc("cron(0 5 L * ? *)", "2027-01-31T06:00:00Z", 2),
            ["2027-02-28 05:00", "2027-03-31 05:00"]
        );
        assert_eq!(
            utc("cron(0 6 ? * 6L *)", "2026-11-01T00:00:00Z", 2),
            ["2026-11-27 06:00", "2026-12-25 06:00"]
        );
        assert_eq!(
            utc("cron(0 7 ? * MON#2 *)", "2026-11-01T00:00:00Z", 2),
            ["2026-11-09 07:00", "2026-12-14 07:00"]
        );
        // 2026-11-15 is a Sunday: Monday the 16th; 2027-05-15 a Saturday: Friday the 14th.
        assert_eq!(
            utc("cron(0 8 15W * ? *)", "2026-11-01T00:00:00Z", 1),
            ["2026-11-16 08:00"]
        );
        assert_eq!(
            utc("cron(0 8 15W * ? *)", "2027-05-01T00:00:00Z", 1),
            ["2027-05-14 08:00"]
        );
        assert_eq!(
            utc("cron(0/15 9 * * ? *)", "2026-11-26T00:00:00Z", 3),
            ["2026-11-26 09:00", "2026-11-26 09:15", "2026-11-26 09:30"]
        );
        assert_eq!(
            utc("rate(12 hours)", "2026-11-26T00:00:00Z", 2),
            ["2026-11-26 12:00", "2026-11-27 00:00"]
        );
        assert!(utc("cron(0 0 30 2 ? *)", "2026-11-26T00:00:00Z", 1).is_empty());
        assert_eq!(
            utc("cron(0 0 29 2 ? *)", "2026-11-26T00:00:00Z", 1),
            ["2028-02-29 00:00"]
        );
    }

    fn raw(name: &str, expression: &str) -> RawSchedule {
        RawSchedule {
            archive_after_days: None,
            fast_restore: None,
            name: name.into(),
            expression: expression.into(),
            timezone: None,
            retention_days: Some(7),
            keep_last: Some(1),
            flexible_window_minutes: None,
            lock: None,
            consistency: None,
        }
    }

    fn list(schedules: &[RawSchedule]) -> Result<Vec<Schedule>, (String, String)> {
        resolve(
            &Requested {
                schedules: Some(schedules),
                schedule: None,
                retention_days: None,
                keep_last: None,
            },
            at("2026-11-26T00:00:00Z"),
        )
    }

    #[test]
    fn the_one_schedule_keys_stay_one_schedule_named_default() {
        let one = resolve(
            &Requested {
                schedules: None,
                schedule: Some("cron(0 2 * * ? *)"),
                retention_days: Some(30),
                keep_last: Some(3),
            },
            at("2026-11-26T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            one,
            [Schedule {
                archive_after_days: None,
                fast_restore: None,
                name: "default".into(),
                expression: "cron(0 2 * * ? *)".into(),
                timezone: "UTC".into(),
                retention_days: 30,
                keep_last: 3,
                flexible_window_minutes: None,
                lock: None,
                consistency: None,
            }]
        );
        assert_eq!(
            function_variable(&one, 3),
            r#"[{"name":"default","retention_days":30,"keep_last":3,"overdue_after_hours":27}]"#
        );
    }

    #[test]
    fn a_schedule_is_overdue_after_its_longest_gap_its_window_and_the_grace() {
        let schedule = |expression: &str, timezone: &str, window: Option<u32>| Schedule {
            archive_after_days: None,
            fast_restore: None,
            name: "s".into(),
            expression: expression.into(),
            timezone: timezone.into(),
            retention_days: 7,
            keep_last: 1,
            flexible_window_minutes: window,
            lock: None,
            consistency: None,
        };
        for (expression, timezone, window, hours) in [
            ("rate(1 hour)", "UTC", None, 4),
            ("cron(0 2 * * ? *)", "UTC", None, 27),
            // The spring change skips 02:00 (EventBridge Scheduler does not run a local time
            // that does not exist): 47 hours pass between two runs once a year.
            ("cron(0 2 * * ? *)", "Europe/Berlin", None, 50),
            ("cron(30 2 * * ? *)", "America/New_York", None, 50),
            // A daily 03:00 is never skipped; the autumn night is 25 hours long.
            ("cron(0 3 * * ? *)", "Europe/Berlin", None, 28),
            // Half an hour skipped on Lord Howe Island: 47.5 hours, rounded up.
            ("cron(15 2 * * ? *)", "Australia/Lord_Howe", None, 51),
            // Half an hour of flexible window, rounded up to the hour.
            ("cron(0 2 * * ? *)", "UTC", Some(30), 28),
            // Friday to Monday.
            ("cron(0 2 ? * MON-FRI *)", "UTC", None, 75),
            ("cron(0 3 ? * SUN *)", "UTC", None, 171),
            // The 1st of each month: 31 days at the longest.
            ("cron(0 4 1 * ? *)", "UTC", None, 747),
        ] {
            assert_eq!(
                schedule(expression, timezone, window).overdue_after_hours(3),
                hours,
                "{expression} in {timezone}"
            );
        }
        let daily = schedule("cron(0 2 * * ? *)", "UTC", None);
        let weekly = schedule("cron(0 3 ? * SUN *)", "UTC", None);
        assert_eq!(
            alarm_window_hours(&[weekly.clone(), daily], 3),
            Some(27),
            "every run reports every schedule: the most frequent one sets the window"
        );
        assert_eq!(
            alarm_window_hours(std::slice::from_ref(&weekly), 3),
            None,
            "171 hours is past CloudWatch's 7 days"
        );
        assert_eq!(alarm_window_hours(&[weekly], 0), Some(168));
        // The look ahead stops at its end, not after `count` fires decades away.
        let now = at("2026-11-27T00:00:00Z");
        let until = now.checked_add(time::Duration::hours(240)).unwrap();
        let utc = Zone::named("UTC").unwrap();
        for expression in ["cron(0 2 * * ? *)", "rate(1 day)"] {
            let ten = expression::fire_times_until(expression, &utc, now, Some(until), 20_000);
            assert_eq!(ten.len(), 10, "{expression}");
        }
    }

    #[test]
    fn the_preview_says_what_each_lock_means() {
        let locked = |mode, cool_off_hours| Schedule {
            archive_after_days: None,
            fast_restore: None,
            name: "monthly".into(),
            expression: "cron(0 4 1 * ? *)".into(),
            timezone: "UTC".into(),
            retention_days: 365,
            keep_last: 12,
            flexible_window_minutes: None,
            lock: Some(LockRule {
                mode,
                cool_off_hours,
            }),
            consistency: None,
        };
        use function::locks::LockMode;
        let now = at("2026-11-27T00:00:00Z");
        let compliance = preview(&[locked(LockMode::Compliance, Some(24))], now);
        assert!(
            compliance.contains(
                "  locked (compliance) for its 365 days, after a 24-hour cooling-off: then \
                 nobody, the account root included, can delete or shorten it before it expires"
            ),
            "{compliance}"
        );
        let governance = preview(&[locked(LockMode::Governance, None)], now);
        assert!(
            governance.contains(
                "locked (governance) for its 365 days: deleting one first needs ec2:UnlockSnapshot"
            ),
            "{governance}"
        );
        let plain = preview(
            &[Schedule {
                lock: None,
                ..locked(LockMode::Governance, None)
            }],
            now,
        );
        assert!(!plain.contains("locked"), "{plain}");
    }

    #[test]
    fn every_mistake_is_refused_with_its_key_and_fix() {
        let berlin = |mut r: RawSchedule| {
            r.timezone = Some("Europe/Berlin".into());
            r
        };
        let cases: Vec<(Vec<RawSchedule>, &str, &str)> = vec![
            (vec![], "schedules", "list 1 to 4 schedules"),
            (
                (0..5)
                    .map(|i| raw(&format!("s{i}"), &format!("cron({i} 1 * * ? *)")))
                    .collect(),
                "schedules",
                "not 5",
            ),
            (
                vec![
                    raw("daily", "cron(0 1 * * ? *)"),
                    raw("daily", "cron(0 2 * * ? *)"),
                ],
                "schedules[1].name",
                "names two schedules",
            ),
            (
                vec![raw("Daily", "cron(0 1 * * ? *)")],
                "schedules[0].name",
                "not a schedule name",
            ),
            (
                vec![raw("daily", "cron(0 1 * * *)")],
                "schedules[0].expression",
                "has 5 fields",
            ),
            (
                vec![raw("leap", "cron(0 0 30 2 ? *)")],
                "schedules[0].expression",
                "never fires",
            ),
            (
                vec![RawSchedule {
                    timezone: Some("Mars/Olympus_Mons".into()),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].timezone",
                "is not an IANA time zone",
            ),
            (
                vec![RawSchedule {
                    timezone: Some("europe/berlin".into()),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].timezone",
                "\"europe/berlin\" is not written as the IANA time-zone database writes it; write \"Europe/Berlin\"",
            ),
            (
                vec![
                    raw("a", "rate(1 day)"),
                    RawSchedule {
                        timezone: Some("Etc/UTC".into()),
                        ..raw("b", "rate(24 hours)")
                    },
                ],
                "schedules[1].expression",
                "rate(24 hours) in Etc/UTC is also schedule a's (rate(1 day) in UTC)",
            ),
            (
                vec![
                    raw("a", "cron(0 1 * * ? *)"),
                    RawSchedule {
                        timezone: Some("Etc/UTC".into()),
                        ..raw("b", "cron(0 1 ? * * *)")
                    },
                ],
                "schedules[1].expression",
                "is also schedule a's",
            ),
            (
                vec![
                    berlin(raw("a", "cron(0 1 * * ? *)")),
                    berlin(raw("b", "cron(0 1 * * ? *)")),
                ],
                "schedules[1].expression",
                "is also schedule a's",
            ),
            (
                vec![RawSchedule {
                    retention_days: Some(0),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].retention_days",
                "0 is out of range; use a whole number from 1 to 3650",
            ),
            (
                vec![RawSchedule {
                    lock: Some(LockRule {
                        mode: function::locks::LockMode::Compliance,
                        cool_off_hours: Some(73),
                    }),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].lock",
                "lock.cool_off_hours 73 is outside EC2's 1-72 hours",
            ),
            (
                vec![RawSchedule {
                    retention_days: Some(2),
                    lock: Some(LockRule {
                        mode: function::locks::LockMode::Compliance,
                        cool_off_hours: Some(48),
                    }),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].lock",
                "outlasts the schedule's retention (2 days)",
            ),
            (
                vec![RawSchedule {
                    lock: Some(LockRule {
                        mode: function::locks::LockMode::Governance,
                        cool_off_hours: Some(24),
                    }),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].lock",
                "lock.cool_off_hours applies to compliance mode only",
            ),
            (
                vec![RawSchedule {
                    keep_last: Some(1001),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].keep_last",
                "1001 is out of range",
            ),
            (
                vec![RawSchedule {
                    flexible_window_minutes: Some(1441),
                    ..raw("daily", "cron(0 1 * * ? *)")
                }],
                "schedules[0].flexible_window_minutes",
                "use a whole number from 1 to 1440",
            ),
        ];
        for (schedules, key, expected) in cases {
            let (refused, message) = list(&schedules).unwrap_err();
            assert_eq!(refused, key, "{message}");
            assert!(message.contains(expected), "{key}: {message}");
        }
        // The same expression in two zones is two moments: allowed.
        let two_zones = vec![
            raw("utc", "cron(0 1 * * ? *)"),
            berlin(raw("berlin", "cron(0 1 * * ? *)")),
        ];
        assert_eq!(list(&two_zones).unwrap().len(), 2);
        let mixed = resolve(
            &Requested {
                schedules: Some(&two_zones),
                schedule: None,
                retention_days: Some(7),
                keep_last: None,
            },
            at("2026-11-26T00:00:00Z"),
        )
        .unwrap_err();
        assert_eq!(mixed.0, "schedules");
        assert!(mixed.1.contains("not both"), "{}", mixed.1);
    }

    #[test]
    fn names_aws_would_refuse_for_length_are_refused_first() {
        let schedules = list(&[raw("monthly", "cron(0 4 1 * ? *)")]).unwrap();
        assert_eq!(check_names("smartvault-prod", &schedules), Ok(()));
        let long_stack = format!("smartvault-{}", "p".repeat(48));
        let (key, message) = check_names(&long_stack, &schedules).unwrap_err();
        assert_eq!(key, "stack_name");
        assert!(
            message.contains("would be 81, over SQS's 80; use a stack name of at most 58")
                && message.contains("-dead-letters-<8 characters of the stack id>"),
            "{message}"
        );
        let stack = format!("smartvault-{}", "p".repeat(47));
        let (key, message) = check_names(&stack, &schedules).unwrap_err();
        assert_eq!(key, "schedules[0].name");
        assert!(
            message.contains(
                "66 characters, over EventBridge Scheduler's 64; shorten the \
                              schedule's name to at most 5"
            ),
            "{message}"
        );
    }

    #[test]
    fn the_preview_shows_each_fire_time_in_its_zone_and_in_utc() {
        let schedules = list(&[RawSchedule {
            timezone: Some("Europe/Berlin".into()),
            ..raw("nightly", "cron(0 2 * * ? *)")
        }])
        .unwrap();
        let text = preview(&schedules, at("2027-03-26T12:00:00Z"));
        assert!(
            text.starts_with(
                "schedule nightly (cron(0 2 * * ? *) in Europe/Berlin; kept 7 days, the newest 1 always):\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  2027-03-27 02:00 Europe/Berlin = 01:00 UTC\n"),
            "{text}"
        );
        assert!(
            text.contains("  2027-03-29 02:00 Europe/Berlin = 00:00 UTC\n"),
            "{text}"
        );
        assert!(
            !text.contains("2027-03-28"),
            "02:00 does not exist in Berlin on 28 March, and Scheduler skips it: {text}"
        );
        // What an expression means that its text does not say.
        let said = |expression: &str, zone: &str| {
            let schedules = list(&[RawSchedule {
                timezone: Some(zone.into()),
                ..raw("s", expression)
            }])
            .unwrap();
            preview(&schedules, at("2026-12-01T00:00:00Z"))
        };
        assert!(
            said("rate(1 day)", "Europe/Berlin").contains("note: a rate() counts from when"),
            "a zone changes nothing for a rate"
        );
        assert!(!said("rate(1 day)", "UTC").contains("note:"));
        assert!(
            said("cron(0 2 * * ? 2027)", "UTC").contains("note: this cron names years (2027)"),
            "its overdue alarm fires once the years are over"
        );
        assert!(!said("cron(0 2 * * ? *)", "UTC").contains("note:"));
        assert_eq!(text.lines().count(), 7);
        // A fire time on another UTC date says which.
        let sydney = list(&[RawSchedule {
            timezone: Some("Australia/Sydney".into()),
            ..raw("nightly", "cron(0 2 * * ? *)")
        }])
        .unwrap();
        let text = preview(&sydney, at("2027-04-02T12:00:00Z"));
        assert!(
            text.contains("  2027-04-03 02:00 Australia/Sydney = 2027-04-02 15:00 UTC\n"),
            "{text}"
        );
    }
}
