//! Local validation of EventBridge schedule expressions before any AWS call, and their fire
//! times in an IANA time zone (config/zone.rs).
//!
//! The string checked is exactly the string deployed: nothing is trimmed or normalised, so an
//! expression EventBridge would refuse (or read differently) never passes here.

use crate::config::zone::{Local, Zone};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Checks an EventBridge `rate(...)` or `cron(...)` expression; the error says what is wrong
/// and shows a valid example.
pub fn validate(expression: &str) -> Result<(), String> {
    let trimmed = expression.trim();
    if trimmed != expression {
        return Err(format!(
            "{expression:?} has spaces around it; write {trimmed:?}"
        ));
    }
    if let Some(inner) = expression
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
    {
        validate_rate(inner)
    } else if let Some(inner) = expression
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
    {
        validate_cron(inner)
    } else {
        Err(format!(
            "{expression:?} is not a schedule expression; write `rate(1 day)` or `cron(0 1 * * ? *)` (six fields: minutes hours day-of-month month day-of-week year)"
        ))
    }
}

/// The parts of `inner` separated by single spaces; anything else (a tab, two spaces, a
/// space at either end) is refused, since EventBridge would not read it as written.
fn words<'a>(kind: &str, inner: &'a str) -> Result<Vec<&'a str>, String> {
    let parts: Vec<&str> = inner.split(' ').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.chars().any(char::is_whitespace))
    {
        let tidy = inner.split_whitespace().collect::<Vec<_>>().join(" ");
        return Err(format!(
            "{kind}({inner}) must separate its parts with single spaces (no tabs, no doubled or \
             surrounding spaces); write {kind}({tidy})"
        ));
    }
    Ok(parts)
}

/// A whole number written with digits only (no sign, no spaces).
fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn validate_rate(inner: &str) -> Result<(), String> {
    let parts = words("rate", inner)?;
    let [value, unit] = parts.as_slice() else {
        return Err(format!(
            "rate({inner}) needs a number and a unit, e.g. rate(1 day) or rate(12 hours)"
        ));
    };
    let value = digits(value)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("rate({inner}): {value:?} is not a positive whole number"))?;
    let singular = ["minute", "hour", "day"];
    let plural = ["minutes", "hours", "days"];
    match (value, *unit) {
        (1, u) if singular.contains(&u) => Ok(()),
        (1, u) if plural.contains(&u) => Err(format!(
            "rate({inner}): a value of 1 takes the singular unit, e.g. rate(1 {})",
            u.trim_end_matches('s')
        )),
        (_, u) if plural.contains(&u) => Ok(()),
        (_, u) if singular.contains(&u) => Err(format!(
            "rate({inner}): a value above 1 takes the plural unit, e.g. rate({value} {u}s)"
        )),
        (_, u) => Err(format!(
            "rate({inner}): {u:?} is not a unit; use minute(s), hour(s) or day(s)"
        )),
    }
}

struct Field {
    name: &'static str,
    range: (u32, u32),
    names: &'static [&'static str],
    /// The special characters this field takes besides `*`, `,` and `-`.
    extra: &'static [char],
}

const FIELDS: [Field; 6] = [
    Field {
        name: "minutes",
        range: (0, 59),
        names: &[],
        extra: &['/'],
    },
    Field {
        name: "hours",
        range: (0, 23),
        names: &[],
        extra: &['/'],
    },
    Field {
        name: "day-of-month",
        range: (1, 31),
        names: &[],
        extra: &['?', 'L', 'W', '/'],
    },
    Field {
        name: "month",
        range: (1, 12),
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
        extra: &['/'],
    },
    Field {
        name: "day-of-week",
        range: (1, 7),
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        extra: &['?', 'L', '#'],
    },
    Field {
        name: "year",
        range: (1970, 2199),
        names: &[],
        extra: &['/'],
    },
];

fn validate_cron(inner: &str) -> Result<(), String> {
    let fields = words("cron", inner)?;
    if fields.len() != 6 {
        return Err(format!(
            "cron({inner}) has {} fields; EventBridge cron has six (minutes hours day-of-month month day-of-week year), e.g. cron(0 1 * * ? *)",
            fields.len()
        ));
    }
    for (value, field) in fields.iter().zip(FIELDS.iter()) {
        for item in value.split(',') {
            validate_item(item, field)
                .map_err(|why| format!("cron({inner}): {} field {value:?} {why}", field.name))?;
        }
    }
    let (dom, dow) = (fields[2], fields[4]);
    match (dom == "?", dow == "?") {
        (true, true) => Err(format!(
            "cron({inner}): only one of day-of-month and day-of-week may be `?`"
        )),
        (false, false) => Err(format!(
            "cron({inner}): one of day-of-month and day-of-week must be `?`, e.g. cron({} {} {dom} {} ? {})",
            fields[0], fields[1], fields[3], fields[5]
        )),
        _ => Ok(()),
    }
}

impl Field {
    /// A value of this field: a number in range or, where the field has them, a name.
    fn value(&self, text: &str) -> Result<u32, String> {
        if let Some(index) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(self.range.0 + index as u32);
        }
        let n = digits(text).ok_or_else(|| format!("has {text:?}, which is not a number"))?;
        if n < self.range.0 || n > self.range.1 {
            return Err(format!(
                "has {n}, outside {}-{}",
                self.range.0, self.range.1
            ));
        }
        Ok(n)
    }

    fn allows(&self, special: char) -> bool {
        self.extra.contains(&special)
    }
}

/// One comma-separated item: `*`, `?`, a value, a range `a-b`, a step `a/n` or `a-b/n`, or
/// one of the special forms `L`, `LW`, `nW` (day of month) and `L`, `nL`, `n#k` (day of week).
fn validate_item(item: &str, field: &Field) -> Result<(), String> {
    match item {
        "" => return Err("has an empty item between commas".to_owned()),
        "*" => return Ok(()),
        "?" if field.allows('?') => return Ok(()),
        "L" if field.allows('L') => return Ok(()),
        "LW" if field.allows('W') => return Ok(()),
        _ => {}
    }
    if field.allows('W')
        && let Some(day) = item.strip_suffix('W')
    {
        return field.value(day).map(drop);
    }
    if field.allows('#') {
        if let Some(day) = item.strip_suffix('L') {
            return field.value(day).map(drop);
        }
        if let Some((day, nth)) = item.split_once('#') {
            field.value(day)?;
            return match digits(nth) {
                Some(1..=5) => Ok(()),
                _ => Err(format!(
                    "has {item:?}: the week after `#` must be 1 to 5 (a month has at most five of a weekday)"
                )),
            };
        }
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        if !field.allows('/') {
            return Err(format!("has {item:?}, but this field takes no steps (`/`)"));
        }
        digits(step)
            .filter(|s| *s > 0)
            .ok_or_else(|| format!("has a bad step {step:?}"))?;
    }
    if range == "*" {
        return Ok(());
    }
    match range.split_once('-') {
        Some((a, b)) => {
            let (low, high) = (field.value(a)?, field.value(b)?);
            if low > high {
                return Err(format!(
                    "has the reversed range {range:?}; write it low to high, e.g. {b}-{a}"
                ));
            }
        }
        None => {
            field.value(range)?;
        }
    }
    Ok(())
}

/// The next `count` times `expression` (already validated) fires after `after`, in `zone`,
/// by EventBridge Scheduler's documented rule for daylight saving: a local time that the
/// spring change skips does not fire at all that day (a daily 02:30 in Europe/Berlin has no
/// run on the last Sunday of March), and one that the autumn change repeats fires once, at
/// the first; a `rate(...)` counts from `after`, as a schedule created then would.
pub fn fire_times(
    expression: &str,
    zone: &Zone,
    after: OffsetDateTime,
    count: usize,
) -> Vec<OffsetDateTime> {
    fire_times_until(expression, zone, after, None, count)
}

/// As [`fire_times`], stopping at `until` too (a year of a daily cron is 366 times, not the
/// decades `count` alone would walk).
pub fn fire_times_until(
    expression: &str,
    zone: &Zone,
    after: OffsetDateTime,
    until: Option<OffsetDateTime>,
    count: usize,
) -> Vec<OffsetDateTime> {
    let within = |at: &OffsetDateTime| until.is_none_or(|until| *at <= until);
    if let Some(inner) = expression
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let mut parts = inner.split(' ');
        let value = parts.next().and_then(digits).unwrap_or(1);
        let seconds = match parts.next().unwrap_or("day").trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3600,
            _ => 86_400,
        };
        return (1..=count as i64)
            .filter_map(|k| {
                let offset = time::Duration::seconds(k * i64::from(value) * seconds);
                after.checked_add(offset)
            })
            .take_while(within)
            .map(|at| zone.at(at))
            .collect();
    }
    let Some(fields) = expression
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
        .map(|inner| inner.split(' ').collect::<Vec<_>>())
        .filter(|f| f.len() == 6)
    else {
        return Vec::new();
    };
    let set = |index: usize| values(fields[index], &FIELDS[index]);
    let (minutes, hours, months, years) = (set(0), set(1), set(3), set(5));
    let start = zone.at(after);
    let last_date = until.map(|u| zone.at(u).date());
    let mut found: Vec<OffsetDateTime> = Vec::new();
    let mut seen: std::collections::BTreeSet<OffsetDateTime> = std::collections::BTreeSet::new();
    for year in years
        .iter()
        .copied()
        .filter(|y| i64::from(*y) >= i64::from(start.year()))
    {
        for month in months.iter().copied() {
            let Ok(month) = Month::try_from(month as u8) else {
                continue;
            };
            let Ok(first) = Date::from_calendar_date(year as i32, month, 1) else {
                continue;
            };
            if last_of_month(first) < start.date() {
                continue;
            }
            for day in 1..=month.length(year as i32) {
                let Ok(date) = Date::from_calendar_date(year as i32, month, day) else {
                    continue;
                };
                if last_date.is_some_and(|last| date > last) {
                    found.sort();
                    found.retain(|f| within(f));
                    return found;
                }
                if date < start.date() || !day_matches(fields[2], fields[4], date) {
                    continue;
                }
                for hour in &hours {
                    for minute in &minutes {
                        let Ok(clock) = Time::from_hms(*hour as u8, *minute as u8, 0) else {
                            continue;
                        };
                        // EventBridge Scheduler skips a local time that a daylight-saving
                        // change skips, and runs a repeated one once, at the first.
                        let zoned = match zone.resolve(PrimitiveDateTime::new(date, clock)) {
                            Local::One(at) | Local::Repeated(at) => at,
                            Local::Skipped => continue,
                        };
                        if zoned > after && seen.insert(zoned) {
                            found.push(zoned);
                        }
                    }
                }
                if found.len() >= count {
                    found.sort();
                    found.truncate(count);
                    return found;
                }
            }
        }
    }
    found.sort();
    found.retain(|f| within(f));
    found
}

/// The last day of `date`'s month.
fn last_of_month(date: Date) -> Date {
    date.replace_day(date.month().length(date.year()))
        .unwrap_or(date)
}

/// The numbers one field of a validated cron allows, in order.
fn values(value: &str, field: &Field) -> Vec<u32> {
    let mut all = std::collections::BTreeSet::new();
    for item in value.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, digits(step).unwrap_or(1).max(1)),
            None => (item, 1),
        };
        let (low, high) = match range {
            "*" | "?" => field.range,
            _ => match range.split_once('-') {
                Some((a, b)) => (
                    field.value(a).unwrap_or(field.range.0),
                    field.value(b).unwrap_or(field.range.1),
                ),
                None => {
                    let start = field.value(range).unwrap_or(field.range.0);
                    // `a/n` runs from a to the end of the range.
                    (
                        start,
                        if item.contains('/') {
                            field.range.1
                        } else {
                            start
                        },
                    )
                }
            },
        };
        all.extend((low..=high).step_by(step as usize));
    }
    all.into_iter().collect()
}

/// Whether `date` matches the day-of-month and day-of-week fields (one of them is `?`).
fn day_matches(dom: &str, dow: &str, date: Date) -> bool {
    if dom == "?" {
        dow.split(',').any(|item| weekday_matches(item, date))
    } else {
        dom.split(',').any(|item| month_day_matches(item, date))
    }
}

/// Day of week as EventBridge numbers it: 1 is Sunday, 7 is Saturday.
fn weekday_number(date: Date) -> u32 {
    u32::from(date.weekday().number_from_sunday())
}

fn weekday_matches(item: &str, date: Date) -> bool {
    let field = &FIELDS[4];
    let weekday = weekday_number(date);
    let last = last_of_month(date);
    match item {
        "*" => true,
        "L" => weekday == 7,
        _ => {
            if let Some(day) = item.strip_suffix('L') {
                return field.value(day).is_ok_and(|d| d == weekday) && date.day() + 7 > last.day();
            }
            if let Some((day, nth)) = item.split_once('#') {
                return field.value(day).is_ok_and(|d| d == weekday)
                    && digits(nth).is_some_and(|n| (date.day() as u32 - 1) / 7 + 1 == n);
            }
            values(item, field).contains(&weekday)
        }
    }
}

fn month_day_matches(item: &str, date: Date) -> bool {
    let last = last_of_month(date).day();
    let nearest_weekday = |target: u8| {
        let target = date.replace_day(target.min(last));
        let Ok(target) = target else { return false };
        // Saturday moves to Friday (or Monday at the 1st), Sunday to Monday (or Friday at the
        // month's end), never into another month.
        let moved = match weekday_number(target) {
            7 if target.day() == 1 => target.day() + 2,
            7 => target.day() - 1,
            1 if target.day() == last => target.day() - 2,
            1 => target.day() + 1,
            _ => target.day(),
        };
        date.day() == moved
    };
    match item {
        "*" => true,
        "L" => date.day() == last,
        "LW" => nearest_weekday(last),
        _ => match item.strip_suffix('W') {
            Some(day) => digits(day).is_some_and(|d| nearest_weekday(d as u8)),
            None => values(item, &FIELDS[2]).contains(&(date.day() as u32)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn valid_expressions_pass() {
        for expression in [
            "rate(1 day)",
            "rate(5 minutes)",
            "rate(12 hours)",
            "cron(0 1 * * ? *)",
            "cron(0/15 * * * ? *)",
            "cron(30 2 ? * MON-FRI *)",
            "cron(0 3 L * ? *)",
            "cron(0 4 ? * 6#3 *)",
            "cron(0 5 1,15 JAN,JUL ? 2027)",
            "cron(0 6 LW * ? *)",
            "cron(0 6 15W * ? *)",
            "cron(0 6 ? * 5L *)",
            "cron(0 6 ? * MON#2 *)",
            "cron(0-30/10 8-17 ? * * 2026-2030)",
        ] {
            assert_eq!(validate(expression), Ok(()), "{expression}");
        }
    }

    #[test]
    fn invalid_expressions_say_why() {
        let cases = [
            ("every day", "not a schedule expression"),
            ("rate(0 days)", "not a positive whole number"),
            ("rate(1 days)", "singular unit"),
            ("rate(2 day)", "plural unit"),
            ("rate(2 weeks)", "not a unit"),
            ("cron(0 1 * * *)", "has 5 fields"),
            ("cron(0 1 * * * *)", "must be `?`"),
            ("cron(0 1 ? * ? *)", "only one of"),
            (
                "cron(60 1 * * ? *)",
                "minutes field \"60\" has 60, outside 0-59",
            ),
            ("cron(0 24 * * ? *)", "hours field"),
            ("cron(0 1 * FOO ? *)", "month field"),
            ("cron(0 1 * * ? 1969)", "year field"),
            ("cron(0/0 1 * * ? *)", "bad step"),
            (
                " rate(1 day)",
                "has spaces around it; write \"rate(1 day)\"",
            ),
            ("rate(1 day) ", "has spaces around it"),
            ("rate(1\tday)", "single spaces"),
            ("rate(1  day)", "write rate(1 day)"),
            ("cron(0 1  * * ? *)", "write cron(0 1 * * ? *)"),
            ("cron(0\t1 * * ? *)", "single spaces"),
            ("rate(+1 day)", "\"+1\" is not a positive whole number"),
            ("cron(+5 1 * * ? *)", "\"+5\", which is not a number"),
            ("cron(0 1 ? * MON#6 *)", "must be 1 to 5"),
            ("cron(0 1 ? * 2#0 *)", "must be 1 to 5"),
            ("cron(0 1 ? * 8#1 *)", "has 8, outside 1-7"),
            (
                "cron(0 1 ? * 5-1 *)",
                "reversed range \"5-1\"; write it low to high, e.g. 1-5",
            ),
            ("cron(0 1 ? * FRI-MON *)", "reversed range"),
            ("cron(0 1 1,,2 * ? *)", "empty item"),
            ("cron(0 1 32W * ? *)", "has 32, outside 1-31"),
            ("cron(0 1 ? * 3W *)", "\"3W\", which is not a number"),
            ("cron(0 1 L5 * ? *)", "\"L5\", which is not a number"),
            ("cron(? 1 * * ? *)", "minutes field"),
            ("cron(0 1 ? * MON-FRI/2 *)", "takes no steps"),
        ];
        for (expression, expected) in cases {
            let error = validate(expression).expect_err(expression);
            assert!(error.contains(expected), "{expression}: {error}");
        }
    }
}
