//! `smartvault.yaml`: named environments, parsed strictly and validated before any AWS call.

use anyhow::{Context, Result};
use function::config as fconfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The config file's name at the repository root.
pub const FILE_NAME: &str = "smartvault.yaml";

/// CloudWatch Logs accepts only these retention periods.
const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
const MAX_EMAILS: usize = 3;

/// A configuration mistake: exit code 2, with the file, the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The Lambda architectures SmartVault builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Architecture {
    /// The name Lambda uses.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn rust_target(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64-unknown-linux-gnu",
            Architecture::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    environments: BTreeMap<String, RawEnvironment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    region: String,
    stack_name: Option<String>,
    notification_emails: Vec<String>,
    schedule: Option<String>,
    retention_days: Option<u32>,
    keep_last: Option<u32>,
    backup_tag_key: Option<String>,
    backup_tag_value: Option<String>,
    exclude_boot_volume: Option<bool>,
    min_interval_minutes: Option<u32>,
    max_concurrency: Option<u32>,
    memory_mb: Option<u32>,
    timeout_seconds: Option<u32>,
    log_retention_days: Option<u32>,
    reserved_concurrency: Option<u32>,
    architecture: Option<Architecture>,
    account_id: Option<String>,
    termination_protection: Option<bool>,
    dry_run: Option<bool>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// One validated environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub name: String,
    pub region: String,
    pub stack_name: String,
    pub notification_emails: Vec<String>,
    pub schedule: String,
    pub retention_days: u32,
    pub keep_last: u32,
    pub backup_tag_key: String,
    pub backup_tag_value: String,
    pub exclude_boot_volume: bool,
    pub min_interval_minutes: u32,
    pub max_concurrency: u32,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub log_retention_days: u32,
    pub reserved_concurrency: Option<u32>,
    pub architecture: Architecture,
    pub account_id: Option<String>,
    pub termination_protection: bool,
    pub dry_run: bool,
    pub tags: BTreeMap<String, String>,
}

/// Reads `path` and returns environment `name`.
pub fn load(path: &Path, name: &str) -> Result<Environment> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "failed to read `{}`; create it (see docs/deployer.md) or pass --config",
            path.display()
        )
    })?;
    Ok(parse(&text, &path.display().to_string(), name)?)
}

/// The names of the environments in the file at `path`.
pub fn names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let raw: RawFile = serde_norway::from_str(&text)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    Ok(raw.environments.into_keys().collect())
}

/// Parses the file's text and validates environment `name`.
pub fn parse(text: &str, file: &str, name: &str) -> Result<Environment, ConfigError> {
    let raw: RawFile = serde_norway::from_str(text).map_err(|e| {
        ConfigError(format!(
            "{file}: {e}; fix the key or value (docs/deployer.md lists every key)"
        ))
    })?;
    let names: Vec<&str> = raw.environments.keys().map(String::as_str).collect();
    let Some(env) = raw.environments.get(name) else {
        return Err(ConfigError(format!(
            "{file} has no environment `{name}`; the environments are: {}",
            names.join(", ")
        )));
    };
    validate(file, name, env)
}

fn validate(file: &str, name: &str, raw: &RawEnvironment) -> Result<Environment, ConfigError> {
    let key_error = |key: &str, problem: String| {
        ConfigError(format!("{file}: environments.{name}.{key}: {problem}"))
    };
    let in_range =
        |key: &str, value: Option<u32>, default: u32, range: std::ops::RangeInclusive<u32>| {
            let value = value.unwrap_or(default);
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(key_error(
                    key,
                    format!(
                        "{value} is out of range; use a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        };

    if !is_region(&raw.region) {
        return Err(key_error(
            "region",
            format!(
                "{:?} is not an AWS region name; write e.g. eu-west-1",
                raw.region
            ),
        ));
    }
    let stack_name = raw
        .stack_name
        .clone()
        .unwrap_or_else(|| format!("smartvault-{name}"));
    if !is_stack_name(&stack_name) {
        return Err(key_error(
            "stack_name",
            format!(
                "{stack_name:?} is not usable as a stack and function name; use 1 to 64 letters, digits and hyphens, starting with a letter"
            ),
        ));
    }
    if raw.notification_emails.is_empty() || raw.notification_emails.len() > MAX_EMAILS {
        return Err(key_error(
            "notification_emails",
            format!("list 1 to {MAX_EMAILS} addresses, e.g. [ops@example.com]"),
        ));
    }
    if let Some(bad) = raw.notification_emails.iter().find(|e| !is_email(e)) {
        return Err(key_error(
            "notification_emails",
            format!("{bad:?} is not an email address; write e.g. ops@example.com"),
        ));
    }
    let schedule = raw
        .schedule
        .clone()
        .unwrap_or_else(|| "cron(0 1 * * ? *)".to_owned());
    crate::schedule::validate(&schedule).map_err(|why| key_error("schedule", why))?;

    let log_retention_days = raw.log_retention_days.unwrap_or(30);
    if !LOG_RETENTION_DAYS.contains(&log_retention_days) {
        return Err(key_error(
            "log_retention_days",
            format!(
                "{log_retention_days} is not a CloudWatch Logs retention; use one of {LOG_RETENTION_DAYS:?}"
            ),
        ));
    }
    if let Some(account) = &raw.account_id
        && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(key_error(
            "account_id",
            format!(
                "{account:?} is not a 12-digit AWS account id; write it in quotes, e.g. \"123456789012\""
            ),
        ));
    }
    if raw.tags.len() > 40 {
        return Err(key_error(
            "tags",
            "at most 40 tags; CloudFormation adds its own".into(),
        ));
    }
    for (key, value) in &raw.tags {
        if key.is_empty() || key.len() > 128 || key.starts_with("aws:") || value.len() > 256 {
            return Err(key_error(
                "tags",
                format!(
                    "{key:?}: tag keys are 1 to 128 characters not starting with `aws:`, values at most 256"
                ),
            ));
        }
    }
    let env = Environment {
        name: name.to_owned(),
        region: raw.region.clone(),
        stack_name,
        notification_emails: raw.notification_emails.clone(),
        schedule,
        retention_days: in_range(
            "retention_days",
            raw.retention_days,
            7,
            fconfig::RETENTION_RANGE,
        )?,
        keep_last: in_range("keep_last", raw.keep_last, 1, fconfig::KEEP_LAST_RANGE)?,
        backup_tag_key: raw
            .backup_tag_key
            .clone()
            .unwrap_or_else(|| "Backup".to_owned()),
        backup_tag_value: raw
            .backup_tag_value
            .clone()
            .unwrap_or_else(|| "true".to_owned()),
        exclude_boot_volume: raw.exclude_boot_volume.unwrap_or(false),
        min_interval_minutes: in_range(
            "min_interval_minutes",
            raw.min_interval_minutes,
            60,
            fconfig::MIN_INTERVAL_RANGE,
        )?,
        max_concurrency: in_range(
            "max_concurrency",
            raw.max_concurrency,
            8,
            fconfig::CONCURRENCY_RANGE,
        )?,
        memory_mb: in_range("memory_mb", raw.memory_mb, 256, 128..=10_240)?,
        timeout_seconds: in_range("timeout_seconds", raw.timeout_seconds, 300, 1..=900)?,
        log_retention_days,
        reserved_concurrency: match raw.reserved_concurrency {
            None => None,
            Some(n) => Some(in_range("reserved_concurrency", Some(n), 1, 1..=1000)?),
        },
        architecture: raw.architecture.unwrap_or(Architecture::X86_64),
        account_id: raw.account_id.clone(),
        termination_protection: raw.termination_protection.unwrap_or(false),
        dry_run: raw.dry_run.unwrap_or(false),
        tags: raw.tags.clone(),
    };
    // The function validates its variables again at cold start; refusing here what it would
    // refuse there keeps a bad value from ever being deployed.
    let vars = function_environment(&env, "arn:aws:sns:us-east-1:123456789012:placeholder");
    fconfig::Config::from_lookup(|var| vars.get(var).cloned())
        .map_err(|e| ConfigError(format!("{file}: environments.{name}: {e}")))?;
    Ok(env)
}

/// The function's environment variables for `env`, as the template sets them.
pub fn function_environment(env: &Environment, topic_arn: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (fconfig::SNS_TOPIC_ARN, topic_arn.to_owned()),
        (fconfig::DEPLOYMENT, env.stack_name.clone()),
        (fconfig::BACKUP_TAG_KEY, env.backup_tag_key.clone()),
        (fconfig::BACKUP_TAG_VALUE, env.backup_tag_value.clone()),
        (fconfig::RETENTION_DAYS, env.retention_days.to_string()),
        (fconfig::KEEP_LAST, env.keep_last.to_string()),
        (
            fconfig::EXCLUDE_BOOT_VOLUME,
            env.exclude_boot_volume.to_string(),
        ),
        (
            fconfig::MIN_INTERVAL_MINUTES,
            env.min_interval_minutes.to_string(),
        ),
        (fconfig::MAX_CONCURRENCY, env.max_concurrency.to_string()),
        (fconfig::DRY_RUN, env.dry_run.to_string()),
    ])
}

fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_stack_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !address.chars().any(|c| c.is_whitespace() || c == ',')
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "smartvault.yaml";

    fn env_yaml(extra: &str) -> String {
        format!(
            "environments:\n  dev:\n    region: eu-west-1\n    notification_emails: [ops@example.com]\n{extra}"
        )
    }

    #[test]
    fn defaults_fill_an_environment_with_only_the_required_keys() {
        let env = parse(&env_yaml(""), FILE, "dev").unwrap();
        assert_eq!(env.stack_name, "smartvault-dev");
        assert_eq!(env.schedule, "cron(0 1 * * ? *)");
        assert_eq!((env.retention_days, env.keep_last), (7, 1));
        assert_eq!(
            (env.memory_mb, env.timeout_seconds, env.log_retention_days),
            (256, 300, 30)
        );
        assert_eq!(env.architecture, Architecture::X86_64);
        assert_eq!(env.reserved_concurrency, None);
        assert!(!env.termination_protection && !env.dry_run);
    }

    #[test]
    fn the_shipped_file_has_every_example_environment() {
        let text = include_str!("../../smartvault.yaml");
        for name in ["local", "dev", "staging", "prod"] {
            let env = parse(text, FILE, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(env.stack_name, format!("smartvault-{name}"));
        }
        assert!(parse(text, FILE, "prod").unwrap().termination_protection);
    }

    #[test]
    fn mistakes_name_the_file_the_key_and_the_fix() {
        let cases = [
            ("    retension_days: 7\n", "unknown field `retension_days`"),
            (
                "    retention_days: 0\n",
                "environments.dev.retention_days: 0 is out of range; use a whole number from 1 to 3650",
            ),
            (
                "    retention_days: 3651\n",
                "retention_days: 3651 is out of range",
            ),
            ("    retention_days: seven\n", "invalid type"),
            (
                "    keep_last: -1\n",
                "keep_last: invalid type: integer `-1`",
            ),
            (
                "    schedule: cron(0 1 * * *)\n",
                "environments.dev.schedule: cron(0 1 * * *) has 5 fields",
            ),
            ("    schedule: rate(1 days)\n", "singular unit"),
            ("    memory_mb: 64\n", "memory_mb: 64 is out of range"),
            (
                "    timeout_seconds: 901\n",
                "timeout_seconds: 901 is out of range",
            ),
            (
                "    log_retention_days: 10\n",
                "log_retention_days: 10 is not a CloudWatch Logs retention",
            ),
            (
                "    reserved_concurrency: 0\n",
                "reserved_concurrency: 0 is out of range",
            ),
            ("    architecture: arm\n", "unknown variant `arm`"),
            (
                "    account_id: \"12345\"\n",
                "account_id: \"12345\" is not a 12-digit AWS account id",
            ),
            (
                "    stack_name: 9lives\n",
                "stack_name: \"9lives\" is not usable",
            ),
            ("    backup_tag_key: \"aws:backup\"\n", "BACKUP_TAG_KEY"),
            ("    exclude_boot_volume: maybe\n", "invalid type"),
            (
                "    tags:\n      \"aws:owner\": me\n",
                "tags: \"aws:owner\"",
            ),
        ];
        for (extra, expected) in cases {
            let error = parse(&env_yaml(extra), FILE, "dev")
                .expect_err(extra)
                .to_string();
            assert!(error.starts_with(FILE), "{error}");
            assert!(error.contains(expected), "{extra:?}: {error}");
        }
    }

    #[test]
    fn bad_emails_and_regions_are_refused() {
        let bad_email = "environments:\n  dev:\n    region: eu-west-1\n    notification_emails: [ops.example.com]\n";
        let error = parse(bad_email, FILE, "dev").unwrap_err().to_string();
        assert!(
            error.contains("notification_emails: \"ops.example.com\" is not an email address"),
            "{error}"
        );
        let none = "environments:\n  dev:\n    region: eu-west-1\n    notification_emails: []\n";
        assert!(
            parse(none, FILE, "dev")
                .unwrap_err()
                .to_string()
                .contains("list 1 to 3 addresses")
        );
        let region =
            "environments:\n  dev:\n    region: Ireland\n    notification_emails: [a@b.io]\n";
        assert!(
            parse(region, FILE, "dev")
                .unwrap_err()
                .to_string()
                .contains("region: \"Ireland\" is not an AWS region")
        );
        let missing = "environments:\n  dev:\n    region: eu-west-1\n";
        assert!(
            parse(missing, FILE, "dev")
                .unwrap_err()
                .to_string()
                .contains("missing field `notification_emails`")
        );
    }

    #[test]
    fn an_account_id_keeps_its_digits_quoted_or_not() {
        let plain = parse(&env_yaml("    account_id: 012345678901\n"), FILE, "dev").unwrap();
        assert_eq!(plain.account_id.as_deref(), Some("012345678901"));
    }

    #[test]
    fn an_unknown_environment_lists_the_known_ones() {
        let error = parse(&env_yaml(""), FILE, "prd").unwrap_err().to_string();
        assert_eq!(
            error,
            "smartvault.yaml has no environment `prd`; the environments are: dev"
        );
    }

    #[test]
    fn the_function_environment_sets_every_variable_the_function_reads() {
        let env = parse(&env_yaml(""), FILE, "dev").unwrap();
        let vars = function_environment(&env, "arn:aws:sns:eu-west-1:123456789012:t");
        let mut names: Vec<&str> = vars.keys().copied().collect();
        let mut expected = fconfig::VARIABLES.to_vec();
        names.sort_unstable();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }
}
