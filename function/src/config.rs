//! The function's configuration, read from environment variables once at cold start.

use crate::model::{CopyRule, Policy, ScheduleRule};
use crate::settings;
use std::fmt;
use time::Duration;

/// Every environment variable the function reads. The deployer's template must set exactly
/// these (a test compares them).
pub const VARIABLES: &[&str] = &[
    SNS_TOPIC_ARN,
    CENTRAL_TOPIC_ARN,
    DEPLOYMENT,
    BACKUP_TAG_KEY,
    BACKUP_TAG_VALUE,
    SCHEDULES,
    COPIES,
    RESTORE_TEST,
    EXCLUDE_BOOT_VOLUME,
    MIN_INTERVAL_MINUTES,
    MAX_CONCURRENCY,
    DRY_RUN,
    EC2_RATE_SHARE,
    EC2_REFILL_PER_SECOND,
    MAX_LINKS,
    VAULT,
    VAULT_FOR,
    TRIPWIRE,
    ENVIRONMENT,
    FREEZE_DOCUMENT,
];

pub const SNS_TOPIC_ARN: &str = "SNS_TOPIC_ARN";
/// An organization's central topic (in its administrator account), which receives every
/// member's summary too, its subject naming the member's account and region; unset or empty,
/// none.
pub const CENTRAL_TOPIC_ARN: &str = "CENTRAL_TOPIC_ARN";
pub const DEPLOYMENT: &str = "DEPLOYMENT";
pub const BACKUP_TAG_KEY: &str = settings::BACKUP_TAG_KEY.variable;
pub const BACKUP_TAG_VALUE: &str = settings::BACKUP_TAG_VALUE.variable;
/// The schedules and their retention, as JSON: `[{"name": "daily", "retention_days": 7,
/// "keep_last": 7}, ...]`.
pub const SCHEDULES: &str = "SCHEDULES";
/// The regions every set is copied to, as JSON: `[{"region": "us-west-2", "retention_days":
/// 30, "keep_last": 3, "kms_key": "alias/dr", "schedules": ["daily"]}]`; unset or `[]`, none.
pub const COPIES: &str = "COPIES";
/// The restore test's settings, as JSON: `{"sample": 2, "max_wait_seconds": 600}`; unset or
/// empty, the deployment has no restore test (and refuses the `restore-test` action).
pub const RESTORE_TEST: &str = "RESTORE_TEST";
/// A workload deployment's vault account, as JSON: `{"account": "222222222222", "region":
/// "us-west-2", "reader_role": "arn:aws:iam::222222222222:role/...", "max_lag_hours": 36,
/// "shareable_keys": ["arn:aws:kms:..."]}`; unset or empty, none.
pub const VAULT: &str = "VAULT";
/// A vault deployment's settings, as JSON: `{"sources": [{"account": "123456789012", "region":
/// "us-east-1"}], "retention_days": 90, "kms_key": "arn:aws:kms:...", "cool_off_hours": 24}`;
/// unset or empty, this deployment keeps no one's copies.
pub const VAULT_FOR: &str = "VAULT_FOR";
/// The ransomware tripwire's sensitivity, as JSON: `{"multiplier": 1.5, "floor": 0.2}`; unset
/// or empty, no set's changed blocks are read.
pub const TRIPWIRE: &str = "TRIPWIRE";
/// The environment's name in `smartvault.yaml`, for the `cargo xtask` commands a summary gives
/// (the tripwire's restore and clear); unset or empty, they say `<env>`.
pub const ENVIRONMENT: &str = "ENVIRONMENT";
/// The name of the Linux freeze document the stack ships (an `AWS::SSM::Document`), which a
/// schedule's `consistency` of mode `script` without a `document` sends.
pub const FREEZE_DOCUMENT: &str = "FREEZE_DOCUMENT";
/// The most schedules one deployment has (as AWS Data Lifecycle Manager's policies).
pub const MAX_SCHEDULES: usize = 4;
pub const EXCLUDE_BOOT_VOLUME: &str = settings::EXCLUDE_BOOT_VOLUME.variable;
pub const MIN_INTERVAL_MINUTES: &str = settings::MIN_INTERVAL.variable;
pub const MAX_CONCURRENCY: &str = settings::MAX_CONCURRENCY.variable;
pub const DRY_RUN: &str = settings::DRY_RUN.variable;
pub const EC2_RATE_SHARE: &str = settings::EC2_RATE_SHARE.variable;
pub const EC2_REFILL_PER_SECOND: &str = settings::EC2_REFILL_PER_SECOND.variable;
pub const MAX_LINKS: &str = settings::MAX_LINKS.variable;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub sns_topic_arn: String,
    /// An organization's central topic, which gets every summary as well.
    pub central_topic_arn: Option<String>,
    pub policy: Policy,
    pub max_concurrency: usize,
    pub dry_run: bool,
    /// The client-side bucket each EC2 write action is paced through.
    pub ec2_bucket: crate::pacing::BucketSize,
    /// The most invocations one run may take before it stops with what is left.
    pub max_links: u32,
    /// The restore test's settings, when the deployment has one.
    pub restore_test: Option<crate::restore_test::Settings>,
    /// The vault account this deployment's sets are pulled into, when it has one.
    pub vault: Option<crate::vault::VaultTarget>,
    /// The workload accounts whose sets this deployment keeps, when it is a vault.
    pub vault_for: Option<crate::vault::VaultKeeper>,
    /// The tripwire's sensitivity, when each set's changed blocks are read and judged.
    pub tripwire: Option<crate::tripwire::Settings>,
    /// The environment's name, for the commands a summary gives.
    pub environment: Option<String>,
    /// The stack's Linux freeze document (`FREEZE_DOCUMENT`), when it ships one.
    pub freeze_document: Option<String>,
}

/// A variable that is missing or holds a value outside what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    /// `None` when the variable is not set.
    pub value: Option<String>,
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(f, "{} is not set: {}", self.variable, self.allowed),
            Some(value) => write!(
                f,
                "{} has an invalid value {value:?}: {}",
                self.variable, self.allowed
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let reader = Reader { lookup: &lookup };
        let sns_topic_arn = reader.required(
            SNS_TOPIC_ARN,
            "set it to the ARN of the SNS topic that receives each run's summary, \
             e.g. arn:aws:sns:us-east-1:123456789012:smartvault",
        )?;
        if !is_sns_topic_arn(&sns_topic_arn) {
            return Err(reader.invalid(
                SNS_TOPIC_ARN,
                &sns_topic_arn,
                "expected an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:smartvault",
            ));
        }
        let central_topic_arn = (reader.lookup)(CENTRAL_TOPIC_ARN).filter(|v| !v.is_empty());
        if let Some(arn) = &central_topic_arn
            && !is_sns_topic_arn(arn)
        {
            return Err(reader.invalid(
                CENTRAL_TOPIC_ARN,
                arn,
                "expected the organization's central SNS topic ARN, such as \
                 arn:aws:sns:us-east-1:123456789012:smartvault-org-central, or empty for none",
            ));
        }
        let deployment = reader.required(
            DEPLOYMENT,
            "set it to this deployment's name (the stack name), written into the managed-by tag",
        )?;
        if deployment.chars().count() > 128 || deployment.trim() != deployment {
            return Err(reader.invalid(
                DEPLOYMENT,
                &deployment,
                "expected a name of 1 to 128 characters without surrounding spaces",
            ));
        }
        let backup_tag_key = reader.text(&settings::BACKUP_TAG_KEY)?;
        if backup_tag_key.chars().count() > 128 || crate::tags::is_reserved(&backup_tag_key) {
            return Err(reader.invalid(
                BACKUP_TAG_KEY,
                &backup_tag_key,
                "expected a tag key of 1 to 128 characters that does not start with `aws:`",
            ));
        }
        let backup_tag_value = reader.text(&settings::BACKUP_TAG_VALUE)?;
        if backup_tag_value.chars().count() > 256 {
            return Err(reader.invalid(
                BACKUP_TAG_VALUE,
                &backup_tag_value,
                "expected a tag value of at most 256 characters",
            ));
        }
        let schedules = reader.schedules()?;
        let copies = reader.copies(&schedules)?;
        let exclude_boot_volume = reader.flag(&settings::EXCLUDE_BOOT_VOLUME)?;
        let min_interval = reader.number(&settings::MIN_INTERVAL)?;
        let max_concurrency = reader.number(&settings::MAX_CONCURRENCY)?;
        let dry_run = reader.flag(&settings::DRY_RUN)?;
        let share = reader.number(&settings::EC2_RATE_SHARE)?;
        let refill = reader.number(&settings::EC2_REFILL_PER_SECOND)?;
        let max_links = reader.number(&settings::MAX_LINKS)?;
        let restore_test = reader.restore_test()?;
        let vault = reader.json::<crate::vault::VaultTarget>(
            VAULT,
            r#"e.g. {"account": "222222222222", "region": "us-west-2", "reader_role": "arn:aws:iam::222222222222:role/smartvault-vault-reader"}, or empty for none"#,
            crate::vault::VaultTarget::problem,
        )?;
        let vault_for = reader.json::<crate::vault::VaultKeeper>(
            VAULT_FOR,
            r#"e.g. {"sources": [{"account": "123456789012", "region": "us-east-1"}], "retention_days": 90, "kms_key": "arn:aws:kms:us-east-1:222222222222:key/..."}, or empty for none"#,
            crate::vault::VaultKeeper::problem,
        )?;
        let tripwire = reader.json::<crate::tripwire::Settings>(
            TRIPWIRE,
            r#"e.g. {"multiplier": 1.5, "floor": 0.2}, or empty for none"#,
            crate::tripwire::Settings::problem,
        )?;
        let environment = (reader.lookup)(ENVIRONMENT).filter(|name| !name.trim().is_empty());
        let freeze_document = (reader.lookup)(FREEZE_DOCUMENT).filter(|name| !name.is_empty());
        let needs_shipped = schedules.iter().any(|s| {
            s.consistency
                .as_ref()
                .is_some_and(|c| c.mode == crate::consistency::Mode::Script && c.document.is_none())
        });
        if needs_shipped && freeze_document.is_none() {
            return Err(reader.invalid(
                FREEZE_DOCUMENT,
                "",
                "a schedule's consistency (mode script) sends the stack's Linux document; set \
                 it to that document's name, or give the schedule a consistency.document",
            ));
        }
        Ok(Config {
            sns_topic_arn,
            central_topic_arn,
            policy: Policy {
                deployment,
                backup_tag_key,
                backup_tag_value,
                schedules,
                exclude_boot_volume,
                min_interval: Duration::minutes(i64::from(min_interval)),
                copies,
            },
            max_concurrency: max_concurrency as usize,
            dry_run,
            ec2_bucket: crate::pacing::BucketSize::share_of_ec2(
                f64::from(refill),
                f64::from(share) / 100.0,
            ),
            max_links,
            restore_test,
            vault,
            vault_for,
            tripwire,
            environment,
            freeze_document,
        })
    }
}

/// A schedule name: 1 to 32 lowercase letters, digits and hyphens, starting with a letter. It
/// goes into tags, summaries and the EventBridge Scheduler schedule's name.
pub fn is_schedule_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why a list of schedule rules is not acceptable, or `None`.
pub fn schedules_problem(schedules: &[ScheduleRule]) -> Option<String> {
    if schedules.is_empty() || schedules.len() > MAX_SCHEDULES {
        return Some(format!(
            "expected 1 to {MAX_SCHEDULES} schedules, not {}",
            schedules.len()
        ));
    }
    for (index, rule) in schedules.iter().enumerate() {
        if !is_schedule_name(&rule.name) {
            return Some(format!(
                "schedule name {:?} is not 1 to 32 lowercase letters, digits and hyphens \
                 starting with a letter",
                rule.name
            ));
        }
        if schedules[..index].iter().any(|r| r.name == rule.name) {
            return Some(format!("the schedule name {:?} is given twice", rule.name));
        }
        if !settings::RETENTION_DAYS
            .range
            .contains(&rule.retention_days)
        {
            return Some(format!(
                "schedule {}: retention_days {} is outside {}-{}",
                rule.name,
                rule.retention_days,
                settings::RETENTION_DAYS.range.start(),
                settings::RETENTION_DAYS.range.end()
            ));
        }
        if let Some(problem) = rule.lock.and_then(|lock| lock.problem(rule.retention_days)) {
            return Some(format!("schedule {}: {problem}", rule.name));
        }
        // The deployer checks the wait against the function's own timeout; here, Lambda's
        // longest.
        if let Some(problem) = rule
            .consistency
            .as_ref()
            .and_then(|c| c.problem(crate::consistency::LAMBDA_MAX_TIMEOUT_SECONDS))
        {
            return Some(format!("schedule {}: {problem}", rule.name));
        }
        if let Some(problem) = rule
            .archive_after_days
            .and_then(|days| crate::archive::archive_after_problem(days, rule.retention_days))
        {
            return Some(format!("schedule {}: {problem}", rule.name));
        }
        if let Some(problem) = rule.fast_restore.as_ref().and_then(|f| f.problem("")) {
            return Some(format!("schedule {}: {problem}", rule.name));
        }
        if !settings::KEEP_LAST.range.contains(&rule.keep_last) {
            return Some(format!(
                "schedule {}: keep_last {} is outside {}-{}",
                rule.name,
                rule.keep_last,
                settings::KEEP_LAST.range.start(),
                settings::KEEP_LAST.range.end()
            ));
        }
    }
    None
}

fn is_sns_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && !parts[5].is_empty()
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn invalid(&self, variable: &'static str, value: &str, allowed: &str) -> ConfigError {
        ConfigError {
            variable,
            value: Some(value.to_owned()),
            allowed: allowed.to_owned(),
        }
    }

    fn required(&self, variable: &'static str, hint: &str) -> Result<String, ConfigError> {
        match (self.lookup)(variable) {
            None => Err(ConfigError {
                variable,
                value: None,
                allowed: hint.to_owned(),
            }),
            Some(value) if value.is_empty() => Err(self.invalid(variable, &value, hint)),
            Some(value) => Ok(value),
        }
    }

    fn text(&self, setting: &settings::Text) -> Result<String, ConfigError> {
        let (variable, default) = (setting.variable, setting.default);
        match (self.lookup)(variable) {
            None => Ok(default.to_owned()),
            Some(value) if value.is_empty() => Err(self.invalid(
                variable,
                &value,
                &format!("expected a non-empty value, or leave it unset for {default:?}"),
            )),
            Some(value) => Ok(value),
        }
    }

    fn number(&self, setting: &settings::Number) -> Result<u32, ConfigError> {
        let (variable, default, range, unit) = (
            setting.variable,
            setting.default,
            &setting.range,
            setting.unit,
        );
        let Some(value) = (self.lookup)(variable) else {
            return Ok(default);
        };
        match value.trim().parse::<u32>() {
            Ok(number) if range.contains(&number) => Ok(number),
            _ => Err(self.invalid(
                variable,
                &value,
                &format!(
                    "expected a whole number of {unit} from {} to {} (default {default})",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// `SCHEDULES`, or one schedule `default` (7 days, the newest 1 kept) when unset.
    fn schedules(&self) -> Result<Vec<ScheduleRule>, ConfigError> {
        let Some(value) = (self.lookup)(SCHEDULES) else {
            return Ok(Policy::single_schedule(
                settings::RETENTION_DAYS.default,
                settings::KEEP_LAST.default,
            ));
        };
        let example = r#"e.g. [{"name": "daily", "retention_days": 7, "keep_last": 7}]"#;
        let schedules: Vec<ScheduleRule> = serde_json::from_str(&value).map_err(|e| {
            self.invalid(
                SCHEDULES,
                &value,
                &format!("expected a JSON list of schedules ({e}), {example}"),
            )
        })?;
        match schedules_problem(&schedules) {
            Some(problem) => Err(self.invalid(SCHEDULES, &value, &format!("{problem}; {example}"))),
            None => Ok(schedules),
        }
    }

    /// `COPIES`, or none when unset.
    fn copies(&self, schedules: &[ScheduleRule]) -> Result<Vec<CopyRule>, ConfigError> {
        let Some(value) = (self.lookup)(COPIES) else {
            return Ok(Vec::new());
        };
        let example = r#"e.g. [{"region": "us-west-2", "retention_days": 30, "keep_last": 3}]"#;
        let copies: Vec<CopyRule> = serde_json::from_str(&value).map_err(|e| {
            self.invalid(
                COPIES,
                &value,
                &format!("expected a JSON list of copy rules ({e}), {example}"),
            )
        })?;
        match crate::copies::copies_problem(&copies, schedules) {
            Some((_, _, problem)) => {
                Err(self.invalid(COPIES, &value, &format!("{problem}; {example}")))
            }
            None => Ok(copies),
        }
    }

    /// A JSON variable, or none when unset or empty; refused with `problem`'s reason.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        variable: &'static str,
        example: &str,
        problem: impl Fn(&T) -> Option<String>,
    ) -> Result<Option<T>, ConfigError> {
        let value = (self.lookup)(variable).unwrap_or_default();
        if value.trim().is_empty() {
            return Ok(None);
        }
        let parsed: T = serde_json::from_str(&value).map_err(|e| {
            self.invalid(variable, &value, &format!("expected JSON ({e}), {example}"))
        })?;
        match problem(&parsed) {
            Some(why) => Err(self.invalid(variable, &value, &format!("{why}; {example}"))),
            None => Ok(Some(parsed)),
        }
    }

    /// `RESTORE_TEST`, or none when unset or empty.
    fn restore_test(&self) -> Result<Option<crate::restore_test::Settings>, ConfigError> {
        let value = (self.lookup)(RESTORE_TEST).unwrap_or_default();
        if value.trim().is_empty() {
            return Ok(None);
        }
        let example =
            r#"e.g. {"sample": 2, "max_wait_seconds": 600}, or empty for no restore test"#;
        let settings: crate::restore_test::Settings =
            serde_json::from_str(&value).map_err(|e| {
                self.invalid(
                    RESTORE_TEST,
                    &value,
                    &format!("expected the restore test's settings as JSON ({e}), {example}"),
                )
            })?;
        match settings.problem() {
            Some(problem) => {
                Err(self.invalid(RESTORE_TEST, &value, &format!("{problem}; {example}")))
            }
            None => Ok(Some(settings)),
        }
    }

    fn flag(&self, setting: &settings::Flag) -> Result<bool, ConfigError> {
        let (variable, default) = (setting.variable, setting.default);
        let Some(value) = (self.lookup)(variable) else {
            return Ok(default);
        };
        settings::parse_flag(&value).ok_or_else(|| {
            self.invalid(
                variable,
                &value,
                &format!("expected `true` or `false` (default {default})"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:smartvault";

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = [(SNS_TOPIC_ARN, TOPIC), (DEPLOYMENT, "prod")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_required_variables_are_set() {
        let config = load(&[]).unwrap();
        assert_eq!(config.sns_topic_arn, TOPIC);
        assert_eq!(config.policy.deployment, "prod");
        assert_eq!(config.policy.backup_tag_key, "Backup");
        assert_eq!(config.policy.backup_tag_value, "true");
        assert_eq!(config.policy.schedules, Policy::single_schedule(7, 1));
        assert!(!config.policy.exclude_boot_volume);
        assert_eq!(config.policy.min_interval, Duration::minutes(60));
        assert_eq!(config.max_concurrency, 8);
        assert!(!config.dry_run);
        assert_eq!(config.ec2_bucket.burst, 80.0, "80% of EC2's burst of 100");
        assert_eq!(
            config.ec2_bucket.refill_per_second, 4.0,
            "80% of 5 per second"
        );
        assert_eq!(config.max_links, 20);
        assert_eq!(config.restore_test, None);
        assert_eq!(load(&[(RESTORE_TEST, "")]).unwrap().restore_test, None);
        assert_eq!(config.central_topic_arn, None);
        assert_eq!(
            load(&[(CENTRAL_TOPIC_ARN, "")]).unwrap().central_topic_arn,
            None
        );
        let central = "arn:aws:sns:us-east-1:123456789012:smartvault-org-central";
        assert_eq!(
            load(&[(CENTRAL_TOPIC_ARN, central)])
                .unwrap()
                .central_topic_arn
                .as_deref(),
            Some(central)
        );
    }

    #[test]
    fn every_setting_is_read() {
        let config = load(&[
            (BACKUP_TAG_KEY, "snap"),
            (BACKUP_TAG_VALUE, "Yes"),
            (
                SCHEDULES,
                r#"[{"name": "daily", "retention_days": 30, "keep_last": 3},
                    {"name": "monthly", "retention_days": 365, "keep_last": 12}]"#,
            ),
            (EXCLUDE_BOOT_VOLUME, "TRUE"),
            (MIN_INTERVAL_MINUTES, "0"),
            (MAX_CONCURRENCY, "2"),
            (DRY_RUN, "true"),
            (EC2_RATE_SHARE, "100"),
            (EC2_REFILL_PER_SECOND, "50"),
            (RESTORE_TEST, r#"{"sample": 3, "max_wait_seconds": 300}"#),
        ])
        .unwrap();
        assert_eq!(
            config.restore_test,
            Some(crate::restore_test::Settings {
                sample: 3,
                max_wait_seconds: 300
            })
        );
        assert_eq!(config.policy.backup_tag_key, "snap");
        assert_eq!(config.policy.backup_tag_value, "Yes");
        assert_eq!(
            config.policy.schedules,
            [
                ScheduleRule::new("daily", 30, 3),
                ScheduleRule::new("monthly", 365, 12)
            ]
        );
        assert!(config.policy.exclude_boot_volume);
        assert_eq!(config.policy.min_interval, Duration::ZERO);
        assert_eq!(config.max_concurrency, 2);
        assert!(config.dry_run);
        assert_eq!(config.ec2_bucket.burst, 100.0);
        assert_eq!(config.ec2_bucket.refill_per_second, 50.0);
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_what_is_allowed() {
        let cases: &[(&str, &str, &str)] = &[
            (
                CENTRAL_TOPIC_ARN,
                "smartvault-org-central",
                "expected the organization's central SNS topic ARN",
            ),
            (
                SCHEDULES,
                r#"[{"name": "daily", "retention_days": 0, "keep_last": 1}]"#,
                "retention_days 0 is outside 1-3650",
            ),
            (
                COPIES,
                r#"[{"region": "us-west-2"}, {"region": "us-west-2"}]"#,
                "copy region us-west-2 is given twice",
            ),
            (
                COPIES,
                r#"[{"region": "us-west-2", "schedules": ["hourly"]}]"#,
                "schedule \"hourly\" is not one of this deployment's (default)",
            ),
            (
                COPIES,
                r#"[{"region": "us-west-2", "kms_key": "arn:aws:kms:us-east-1:123456789012:key/k"}]"#,
                "is in us-east-1, not in us-west-2",
            ),
            (
                COPIES,
                r#"{"region": "us-west-2"}"#,
                "expected a JSON list of copy rules",
            ),
            (
                SCHEDULES,
                r#"[{"name": "daily", "retention_days": 7, "keep_last": 1001}]"#,
                "keep_last 1001 is outside 0-1000",
            ),
            (SCHEDULES, "[]", "expected 1 to 4 schedules, not 0"),
            (SCHEDULES, "daily", "expected a JSON list of schedules"),
            (
                SCHEDULES,
                r#"[{"name": "Daily", "retention_days": 7, "keep_last": 1}]"#,
                "is not 1 to 32 lowercase letters",
            ),
            (
                SCHEDULES,
                r#"[{"name": "d", "retention_days": 7, "keep_last": 1},
                    {"name": "d", "retention_days": 9, "keep_last": 1}]"#,
                "given twice",
            ),
            (
                SCHEDULES,
                r#"[{"name": "d", "retention_days": 7, "keep_last": 1, "kept": 2}]"#,
                "unknown field `kept`",
            ),
            (
                RESTORE_TEST,
                r#"{"sample": 0, "max_wait_seconds": 600}"#,
                "sample 0 is outside 1-20 instances per test",
            ),
            (
                RESTORE_TEST,
                r#"{"sample": 2, "max_wait_seconds": 900}"#,
                "max_wait_seconds 900 is outside 30-840",
            ),
            (
                RESTORE_TEST,
                r#"{"sample": 2}"#,
                "missing field `max_wait_seconds`",
            ),
            (
                RESTORE_TEST,
                "weekly",
                "expected the restore test's settings as JSON",
            ),
            (MIN_INTERVAL_MINUTES, "1.5", "whole number of minutes"),
            (MAX_CONCURRENCY, "0", "from 1 to 64"),
            (MAX_CONCURRENCY, "65", "from 1 to 64"),
            (EXCLUDE_BOOT_VOLUME, "yes", "`true` or `false`"),
            (DRY_RUN, "1", "`true` or `false`"),
            (EC2_RATE_SHARE, "0", "from 1 to 100"),
            (EC2_RATE_SHARE, "101", "whole number of percent"),
            (EC2_REFILL_PER_SECOND, "0", "from 1 to 1000"),
            (MAX_LINKS, "0", "from 1 to 100"),
            (BACKUP_TAG_KEY, "aws:backup", "does not start with `aws:`"),
            (BACKUP_TAG_KEY, "AWS:Backup", "does not start with `aws:`"),
            (BACKUP_TAG_KEY, "", "non-empty"),
            (BACKUP_TAG_VALUE, "", "non-empty"),
            (SNS_TOPIC_ARN, "my-topic", "SNS topic ARN"),
            (
                SNS_TOPIC_ARN,
                "arn:aws:sqs:us-east-1:123456789012:q",
                "SNS topic ARN",
            ),
            (DEPLOYMENT, "", "name"),
            (DEPLOYMENT, " prod", "without surrounding spaces"),
        ];
        for (variable, value, allowed) in cases {
            let error = load(&[(variable, value)]).expect_err(&format!("{variable}={value:?}"));
            assert_eq!(error.variable, *variable);
            let message = error.to_string();
            assert!(message.starts_with(variable), "{message}");
            assert!(message.contains(&format!("{value:?}")), "{message}");
            assert!(message.contains(allowed), "{variable}={value:?}: {message}");
        }
    }

    #[test]
    fn archive_and_fast_restore_settings_are_checked_at_cold_start() {
        let ok = r#"[{"name":"monthly","retention_days":365,"keep_last":1,"archive_after_days":30,"fast_restore":{"zones":["us-east-1a"],"count":1}}]"#;
        let config = load(&[(SCHEDULES, ok)]).unwrap();
        assert_eq!(config.policy.schedules[0].archive_after_days, Some(30));
        assert_eq!(
            config.policy.schedules[0]
                .fast_restore
                .as_ref()
                .unwrap()
                .zones,
            ["us-east-1a"]
        );
        for (schedules, why) in [
            (
                r#"[{"name":"monthly","retention_days":100,"keep_last":1,"archive_after_days":30}]"#,
                "leaves 70 days",
            ),
            (
                r#"[{"name":"monthly","retention_days":365,"keep_last":1,"fast_restore":{"zones":["use1-az1"]}}]"#,
                "is not a zone name",
            ),
            (
                r#"[{"name":"monthly","retention_days":365,"keep_last":1,"fast_restore":{"zones":["us-east-1a"],"count":0}}]"#,
                "count 0 is outside",
            ),
        ] {
            let error = load(&[(SCHEDULES, schedules)]).unwrap_err();
            assert!(error.to_string().contains(why), "{error}");
        }
    }

    #[test]
    fn a_script_schedule_without_a_document_needs_the_stacks() {
        let script = r#"[{"name":"daily","retention_days":7,"keep_last":1,"consistency":{"mode":"script"}}]"#;
        let error = load(&[(SCHEDULES, script)]).unwrap_err();
        assert_eq!(error.variable, FREEZE_DOCUMENT);
        assert!(
            error.allowed.contains("set it to that document's name"),
            "{error}"
        );
        let config = load(&[
            (SCHEDULES, script),
            (FREEZE_DOCUMENT, "smartvault-prod-linux-freeze"),
        ])
        .unwrap();
        assert_eq!(
            config.freeze_document.as_deref(),
            Some("smartvault-prod-linux-freeze")
        );
        // A schedule with its own document, or VSS, needs none.
        for consistency in [
            r#"{"mode":"script","document":"db-freeze"}"#,
            r#"{"mode":"vss"}"#,
        ] {
            let schedules = format!(
                r#"[{{"name":"daily","retention_days":7,"keep_last":1,"consistency":{consistency}}}]"#
            );
            assert!(load(&[(SCHEDULES, &schedules)]).is_ok(), "{consistency}");
        }
        // The rule is checked as the deployer checks it.
        let bad = r#"[{"name":"daily","retention_days":7,"keep_last":1,"consistency":{"mode":"script","document":"a b"}}]"#;
        let error = load(&[(SCHEDULES, bad), (FREEZE_DOCUMENT, "d")]).unwrap_err();
        assert!(
            error.allowed.contains("schedule daily: consistency.document \"a b\" is not a Systems Manager document name"),
            "{error}"
        );
    }

    #[test]
    fn missing_required_variables_say_what_to_set() {
        for variable in [SNS_TOPIC_ARN, DEPLOYMENT] {
            let error = Config::from_lookup(|name| {
                // Every other variable set, except the optional central topic.
                (name != variable && name != CENTRAL_TOPIC_ARN).then(|| match name {
                    SNS_TOPIC_ARN => TOPIC.to_owned(),
                    _ => "prod".to_owned(),
                })
            })
            .unwrap_err();
            assert_eq!(error.variable, variable);
            assert_eq!(error.value, None);
            assert!(
                error.to_string().contains("is not set: set it to"),
                "{error}"
            );
        }
    }

    #[test]
    fn the_variable_list_names_every_variable_read() {
        let read = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(|name| {
            read.borrow_mut().push(name.to_owned());
            match name {
                SNS_TOPIC_ARN => Some(TOPIC.to_owned()),
                DEPLOYMENT => Some("prod".to_owned()),
                _ => None,
            }
        })
        .unwrap();
        let mut read = read.into_inner();
        read.sort();
        let mut listed: Vec<_> = VARIABLES.iter().map(|v| v.to_string()).collect();
        listed.sort();
        assert_eq!(read, listed);
    }
}
