//! Local validation of EventBridge schedule expressions, before any AWS call.

/// Checks an EventBridge `rate(...)` or `cron(...)` expression; the error says what is wrong
/// and shows a valid example.
pub fn validate(expression: &str) -> Result<(), String> {
    let expression = expression.trim();
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

fn validate_rate(inner: &str) -> Result<(), String> {
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts.as_slice() else {
        return Err(format!(
            "rate({inner}) needs a number and a unit, e.g. rate(1 day) or rate(12 hours)"
        ));
    };
    let value: u64 = value
        .parse()
        .ok()
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
    extra: &'static [char],
}

const FIELDS: [Field; 6] = [
    Field {
        name: "minutes",
        range: (0, 59),
        names: &[],
        extra: &[],
    },
    Field {
        name: "hours",
        range: (0, 23),
        names: &[],
        extra: &[],
    },
    Field {
        name: "day-of-month",
        range: (1, 31),
        names: &[],
        extra: &['?', 'L', 'W'],
    },
    Field {
        name: "month",
        range: (1, 12),
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
        extra: &[],
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
        extra: &[],
    },
];

fn validate_cron(inner: &str) -> Result<(), String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron({inner}) has {} fields; EventBridge cron has six (minutes hours day-of-month month day-of-week year), e.g. cron(0 1 * * ? *)",
            fields.len()
        ));
    }
    for (value, field) in fields.iter().zip(FIELDS.iter()) {
        validate_field(value, field)
            .map_err(|why| format!("cron({inner}): {} field {value:?} {why}", field.name))?;
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

fn validate_field(value: &str, field: &Field) -> Result<(), String> {
    let number = |text: &str| -> Result<u32, String> {
        if let Some(index) = field
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
        {
            return Ok(field.range.0 + index as u32);
        }
        let n: u32 = text
            .parse()
            .map_err(|_| format!("has {text:?}, which is not a number"))?;
        if n < field.range.0 || n > field.range.1 {
            return Err(format!(
                "has {n}, outside {}-{}",
                field.range.0, field.range.1
            ));
        }
        Ok(n)
    };
    for item in value.split(',') {
        if item == "*" || (item.len() == 1 && item.chars().all(|c| field.extra.contains(&c))) {
            continue;
        }
        // Special forms: L, LW, nL, nW, n#k, which only some fields allow.
        if item.chars().any(|c| field.extra.contains(&c) && c != '?') {
            let digits: String = item.chars().filter(|c| c.is_ascii_digit()).collect();
            if item.chars().all(|c| c.is_ascii_alphanumeric() || c == '#')
                && (digits.is_empty() || digits.parse::<u32>().is_ok())
            {
                continue;
            }
            return Err(format!("has a malformed {item:?}"));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            step.parse::<u32>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("has a bad step {step:?}"))?;
        }
        if range == "*" {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                number(a)?;
                number(b)?;
            }
            None => {
                number(range)?;
            }
        }
    }
    Ok(())
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
        ];
        for (expression, expected) in cases {
            let error = validate(expression).expect_err(expression);
            assert!(error.contains(expected), "{expression}: {error}");
        }
    }
}
