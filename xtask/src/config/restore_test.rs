//! An environment's `restore_test:` setting (its schedule, time zone, sample size and wait),
//! validated before any AWS call, and the function's `RESTORE_TEST` variable made of it.

use crate::config::schedules::{MAX_SCHEDULE_NAME_CHARS, Schedule, fire_times_in};
use function::restore_test::{SAMPLE_RANGE, Settings};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The restore test's schedule is `<stack name>` followed by this, beside the backup schedules.
pub const NAME_SUFFIX: &str = "-restore-test";
/// The restore test's own name: no backup schedule may take it.
const RESERVED_NAME: &str = "restore-test";
/// How long a test may wait for its volumes, in minutes: within the function's limit of 840 s.
const WAIT_MINUTES_RANGE: std::ops::RangeInclusive<u32> = 1..=14;
/// The longest wait a test gets when `max_wait_minutes` is left out and the timeout allows.
const DEFAULT_WAIT_MINUTES: u32 = 10;
/// The time a test needs besides the wait, to read, create, delete and publish: the function's
/// timeout must leave at least this much.
const WORK_SECONDS: u32 = 60;

/// `restore_test:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestoreTest {
    pub schedule: String,
    pub timezone: Option<String>,
    pub sample: Option<u32>,
    pub max_wait_minutes: Option<u32>,
}

/// A validated restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreTest {
    /// An EventBridge Scheduler expression.
    pub expression: String,
    /// An IANA time zone name; `UTC` by default.
    pub timezone: String,
    /// Instances per test (default 1).
    pub sample: u32,
    /// The longest wait for the volumes to become available (default 10 minutes).
    pub max_wait_minutes: u32,
}

impl RestoreTest {
    /// What the function needs of it.
    pub fn settings(&self) -> Settings {
        Settings {
            sample: self.sample,
            max_wait_seconds: self.max_wait_minutes * 60,
        }
    }
}

/// The function's `RESTORE_TEST` variable: the settings as JSON, or empty for none.
pub fn function_variable(test: Option<&RestoreTest>) -> String {
    test.and_then(|t| serde_json::to_string(&t.settings()).ok())
        .unwrap_or_default()
}

/// The restore test's next three fire times, as `render` and `deploy` show the schedules'.
pub fn preview(test: Option<&RestoreTest>, now: OffsetDateTime) -> String {
    let Some(test) = test else {
        return String::new();
    };
    format!(
        "restore test ({} in {}; {} instance(s) each time, waiting up to {} minutes):\n{}",
        test.expression,
        test.timezone,
        test.sample,
        test.max_wait_minutes,
        crate::config::schedules::fire_lines(&test.expression, &test.timezone, now, 3)
    )
}

/// What the rest of the environment says that the restore test must fit.
pub struct Around<'a> {
    pub stack_name: &'a str,
    pub timeout_seconds: u32,
    pub schedules: &'a [Schedule],
}

/// The restore test, or the key and message of the first mistake (with its fix).
pub fn resolve(
    raw: Option<&RawRestoreTest>,
    around: &Around<'_>,
    now: OffsetDateTime,
) -> Result<Option<RestoreTest>, (String, String)> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let key = |field: &str| format!("restore_test.{field}");
    crate::config::expression::validate(&raw.schedule).map_err(|why| (key("schedule"), why))?;
    let timezone = raw.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
    crate::config::schedules::check_timezone(&timezone).map_err(|why| (key("timezone"), why))?;
    if fire_times_in(&raw.schedule, &timezone, now, 1).is_empty() {
        return Err((
            key("schedule"),
            format!(
                "{} never fires (no such date, or none left); check the day, month and year \
                 fields",
                raw.schedule
            ),
        ));
    }
    let sample = raw.sample.unwrap_or(1);
    if !SAMPLE_RANGE.contains(&sample) {
        return Err((
            key("sample"),
            format!(
                "{sample} is out of range; test from {} to {} instances each time (every \
                 instance comes round in turn)",
                SAMPLE_RANGE.start(),
                SAMPLE_RANGE.end()
            ),
        ));
    }
    // Left out, the wait is the longest the function's timeout holds (at most 10 minutes), so
    // that `restore_test:` with only a schedule works with the default 300-s timeout.
    let max_wait_minutes = raw.max_wait_minutes.unwrap_or_else(|| {
        (around.timeout_seconds.saturating_sub(WORK_SECONDS) / 60).clamp(1, DEFAULT_WAIT_MINUTES)
    });
    if !WAIT_MINUTES_RANGE.contains(&max_wait_minutes) {
        return Err((
            key("max_wait_minutes"),
            format!(
                "{max_wait_minutes} is out of range; use a whole number from {} to {} (a test \
                 runs in one invocation of at most 15 minutes)",
                WAIT_MINUTES_RANGE.start(),
                WAIT_MINUTES_RANGE.end()
            ),
        ));
    }
    let needed = max_wait_minutes * 60 + WORK_SECONDS;
    if around.timeout_seconds < needed {
        return Err((
            key("max_wait_minutes"),
            format!(
                "a test waits up to {max_wait_minutes} minutes and needs {WORK_SECONDS} s more, \
                 {needed} s in all, but timeout_seconds is {}; raise timeout_seconds to at least \
                 {needed}, or lower max_wait_minutes to {}",
                around.timeout_seconds,
                around.timeout_seconds.saturating_sub(WORK_SECONDS) / 60
            ),
        ));
    }
    if let Some(index) = around
        .schedules
        .iter()
        .position(|s| s.name == RESERVED_NAME)
    {
        return Err((
            format!("schedules[{index}].name"),
            format!("{RESERVED_NAME:?} is the restore test's schedule name; rename this schedule"),
        ));
    }
    let name = around.stack_name.len() + NAME_SUFFIX.len();
    if name > MAX_SCHEDULE_NAME_CHARS {
        return Err((
            "restore_test".to_owned(),
            format!(
                "the restore test's schedule would be named {}{NAME_SUFFIX}, {name} characters, \
                 over EventBridge Scheduler's {MAX_SCHEDULE_NAME_CHARS}; shorten stack_name to \
                 at most {}",
                around.stack_name,
                MAX_SCHEDULE_NAME_CHARS - NAME_SUFFIX.len()
            ),
        ));
    }
    Ok(Some(RestoreTest {
        expression: raw.schedule.clone(),
        timezone,
        sample,
        max_wait_minutes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(schedule: &str) -> RawRestoreTest {
        RawRestoreTest {
            schedule: schedule.to_owned(),
            timezone: None,
            sample: None,
            max_wait_minutes: None,
        }
    }

    fn around(timeout_seconds: u32) -> Around<'static> {
        Around {
            stack_name: "smartvault-prod",
            timeout_seconds,
            schedules: &[],
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-27 00:00 UTC)
    }

    #[test]
    fn a_test_with_only_its_schedule_fits_the_default_timeout() {
        // The environment's default timeout is 300 s: the default wait is what fits in it.
        let test = resolve(Some(&raw("cron(0 6 ? * MON *)")), &around(300), now())
            .unwrap()
            .unwrap();
        assert_eq!(
            test.max_wait_minutes, 4,
            "4 minutes and 60 s of work fit 300 s"
        );
        let short = resolve(Some(&raw("cron(0 6 ? * MON *)")), &around(100), now()).unwrap_err();
        assert!(
            short.1.contains("raise timeout_seconds to at least 120"),
            "{}",
            short.1
        );
    }

    #[test]
    fn defaults_fill_a_test_with_only_its_schedule_and_the_variable_carries_them() {
        let test = resolve(Some(&raw("cron(0 6 ? * MON *)")), &around(900), now())
            .unwrap()
            .unwrap();
        assert_eq!(
            test,
            RestoreTest {
                expression: "cron(0 6 ? * MON *)".into(),
                timezone: "UTC".into(),
                sample: 1,
                max_wait_minutes: 10,
            }
        );
        assert_eq!(
            function_variable(Some(&test)),
            r#"{"sample":1,"max_wait_seconds":600}"#
        );
        assert_eq!(function_variable(None), "");
        assert_eq!(
            preview(Some(&test), now()),
            "restore test (cron(0 6 ? * MON *) in UTC; 1 instance(s) each time, waiting up to \
             10 minutes):\n  2026-11-30 06:00 UTC = 06:00 UTC\n  2026-12-07 06:00 UTC = 06:00 \
             UTC\n  2026-12-14 06:00 UTC = 06:00 UTC\n"
        );
        assert_eq!(preview(None, now()), "");
        assert_eq!(resolve(None, &around(900), now()), Ok(None));
    }

    #[test]
    fn every_mistake_names_its_key_and_the_fix() {
        let with = |f: fn(&mut RawRestoreTest)| {
            let mut r = raw("cron(0 6 ? * MON *)");
            f(&mut r);
            r
        };
        let daily = [Schedule {
            archive_after_days: None,
            fast_restore: None,
            name: "restore-test".into(),
            expression: "rate(1 day)".into(),
            timezone: "UTC".into(),
            retention_days: 7,
            keep_last: 1,
            flexible_window_minutes: None,
            lock: None,
            consistency: None,
        }];
        let cases: Vec<(RawRestoreTest, Around<'_>, &str, &str)> = vec![
            (
                raw("weekly"),
                around(900),
                "restore_test.schedule",
                "is not a schedule expression",
            ),
            (
                raw("cron(0 6 30 2 ? *)"),
                around(900),
                "restore_test.schedule",
                "never fires",
            ),
            (
                with(|r| r.timezone = Some("Berlin".into())),
                around(900),
                "restore_test.timezone",
                "is not an IANA time zone",
            ),
            (
                with(|r| r.sample = Some(0)),
                around(900),
                "restore_test.sample",
                "0 is out of range; test from 1 to 20 instances",
            ),
            (
                with(|r| r.max_wait_minutes = Some(15)),
                around(900),
                "restore_test.max_wait_minutes",
                "15 is out of range; use a whole number from 1 to 14",
            ),
            (
                with(|r| r.max_wait_minutes = Some(10)),
                around(300),
                "restore_test.max_wait_minutes",
                "660 s in all, but timeout_seconds is 300; raise timeout_seconds to at least 660, \
                 or lower max_wait_minutes to 4",
            ),
            (
                raw("rate(7 days)"),
                Around {
                    schedules: &daily,
                    ..around(900)
                },
                "schedules[0].name",
                "is the restore test's schedule name",
            ),
            (
                raw("rate(7 days)"),
                Around {
                    stack_name: "smartvault-a-very-long-environment-name-for-tests-xy",
                    ..around(900)
                },
                "restore_test",
                "shorten stack_name to at most 51",
            ),
        ];
        for (raw, around, key, expected) in cases {
            let (got_key, message) = resolve(Some(&raw), &around, now()).unwrap_err();
            assert_eq!(got_key, key, "{message}");
            assert!(message.contains(expected), "{key}: {message}");
        }
    }
}
