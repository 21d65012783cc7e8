//! Each setting of a deployment, once: its key in smartvault.yaml, the function's variable
//! that carries it, its default and its range. The function reads the variables with these
//! defaults and ranges; the deployer validates the keys and writes the variables with the same.

use std::ops::RangeInclusive;

/// A whole-number setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// Its key in smartvault.yaml (an environment's, or a schedule's and a copy rule's).
    pub key: &'static str,
    /// The function's variable; empty for a field inside a JSON variable (a schedule's).
    pub variable: &'static str,
    pub default: u32,
    pub range: RangeInclusive<u32>,
    /// What the number counts, for messages.
    pub unit: &'static str,
}

impl Number {
    /// `value`, or the default when it is not given, if it is in range; `Err` names the range.
    pub fn check(&self, value: Option<u32>) -> Result<u32, String> {
        let value = value.unwrap_or(self.default);
        if self.range.contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "{value} is out of range; use a whole number of {} from {} to {} (default {})",
                self.unit,
                self.range.start(),
                self.range.end(),
                self.default
            ))
        }
    }
}

/// A text setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub key: &'static str,
    pub variable: &'static str,
    pub default: &'static str,
}

/// A `true`/`false` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub key: &'static str,
    pub variable: &'static str,
    pub default: bool,
}

/// The gap a run keeps between two sets of one volume, in minutes (up to a week).
pub const MIN_INTERVAL: Number = Number {
    key: "min_interval_minutes",
    variable: "MIN_INTERVAL_MINUTES",
    default: 60,
    range: 0..=10_080,
    unit: "minutes",
};
/// Write calls in flight at once.
pub const MAX_CONCURRENCY: Number = Number {
    key: "max_concurrency",
    variable: "MAX_CONCURRENCY",
    default: 8,
    range: 1..=64,
    unit: "requests in flight",
};
/// The share of the account's EC2 token bucket a run may use, in percent.
pub const EC2_RATE_SHARE: Number = Number {
    key: "ec2_rate_share",
    variable: "EC2_RATE_SHARE",
    default: 80,
    range: 1..=100,
    unit: "percent",
};
/// The account's EC2 bucket refill (EC2 documents 5 per second; AWS raises it on request).
pub const EC2_REFILL_PER_SECOND: Number = Number {
    key: "ec2_refill_per_second",
    variable: "EC2_REFILL_PER_SECOND",
    default: 5,
    range: 1..=1000,
    unit: "calls per second",
};
/// The invocations one run may take.
pub const MAX_LINKS: Number = Number {
    key: "max_links",
    variable: "MAX_LINKS",
    default: 20,
    range: 1..=100,
    unit: "invocations",
};
/// How long a schedule's sets are kept (and the per-instance override tag's range).
pub const RETENTION_DAYS: Number = Number {
    key: "retention_days",
    variable: "",
    default: 7,
    range: 1..=3650,
    unit: "days",
};
/// How many of a volume's newest sets of a schedule are kept whatever their age.
pub const KEEP_LAST: Number = Number {
    key: "keep_last",
    variable: "",
    default: 1,
    range: 0..=1000,
    unit: "sets",
};

/// The tag key that selects an instance.
pub const BACKUP_TAG_KEY: Text = Text {
    key: "backup_tag_key",
    variable: "BACKUP_TAG_KEY",
    default: "Backup",
};
/// The value of that tag that selects it.
pub const BACKUP_TAG_VALUE: Text = Text {
    key: "backup_tag_value",
    variable: "BACKUP_TAG_VALUE",
    default: "true",
};

/// Leave every instance's boot volume out.
pub const EXCLUDE_BOOT_VOLUME: Flag = Flag {
    key: "exclude_boot_volume",
    variable: "EXCLUDE_BOOT_VOLUME",
    default: false,
};
/// Plan and report, but make no write call.
pub const DRY_RUN: Flag = Flag {
    key: "dry_run",
    variable: "DRY_RUN",
    default: false,
};

/// Parses a boolean the way every SmartVault setting spells it.
pub fn parse_flag(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_takes_its_default_and_names_its_range() {
        assert_eq!(MAX_CONCURRENCY.check(None), Ok(8));
        assert_eq!(MAX_CONCURRENCY.check(Some(64)), Ok(64));
        assert_eq!(
            MAX_CONCURRENCY.check(Some(65)),
            Err(
                "65 is out of range; use a whole number of requests in flight from 1 to 64 \
                 (default 8)"
                    .to_owned()
            )
        );
        assert_eq!(KEEP_LAST.check(Some(0)), Ok(0));
        assert!(RETENTION_DAYS.check(Some(0)).is_err());
    }

    #[test]
    fn flags_are_true_or_false_in_any_case() {
        assert_eq!(parse_flag("TRUE"), Some(true));
        assert_eq!(parse_flag("false"), Some(false));
        assert_eq!(parse_flag("yes"), None);
    }
}
