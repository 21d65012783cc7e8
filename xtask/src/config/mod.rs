//! `smartvault.yaml`: named environments, parsed strictly and validated before any AWS call.

pub mod access;
pub mod expression;
pub mod names;
pub mod regions;
pub mod restore_test;
pub mod schedules;
pub mod targets;
pub mod vault;
pub mod zone;

use crate::build::architecture::Architecture;
use crate::config::access::Access;
use crate::user_error::UserError;
use anyhow::Result;
use function::config as fconfig;
use function::copies::{MAX_COPY_RULES, copies_problem};
use function::model::{self as fmodel, CopyRule};
use function::{settings, tags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The config file's name at the repository root.
pub const FILE_NAME: &str = "smartvault.yaml";

/// CloudWatch Logs accepts only these retention periods.
const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
const MAX_EMAILS: usize = 3;
/// Hours of grace before a schedule's newest set is overdue.
const OVERDUE_GRACE_RANGE: std::ops::RangeInclusive<u32> = 1..=72;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    environments: UniqueMap<RawEnvironment>,
}

/// A mapping that refuses a key given twice; serde's own maps silently keep the last.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UniqueMap<V>(BTreeMap<String, V>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        UniqueMap(BTreeMap::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Unique<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut found = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if found.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "`{key}` is given twice; keep one of them"
                        )));
                    }
                    let value = map.next_value()?;
                    found.insert(key, value);
                }
                Ok(UniqueMap(found))
            }
        }
        deserializer.deserialize_map(Unique(std::marker::PhantomData))
    }
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
    schedules: Option<Vec<crate::config::schedules::RawSchedule>>,
    copies: Option<Vec<RawCopy>>,
    source_kms_keys: Option<Vec<String>>,
    recycle_bin: Option<RawRecycleBin>,
    vault: Option<crate::config::vault::RawVault>,
    vault_for: Option<crate::config::vault::RawVaultFor>,
    tripwire: Option<function::tripwire::Settings>,
    restore_test: Option<crate::config::restore_test::RawRestoreTest>,
    targets: Option<crate::config::targets::RawTargets>,
    overdue_grace_hours: Option<u32>,
    backup_tag_key: Option<String>,
    backup_tag_value: Option<String>,
    exclude_boot_volume: Option<bool>,
    min_interval_minutes: Option<u32>,
    max_concurrency: Option<u32>,
    ec2_rate_share: Option<u32>,
    ec2_refill_per_second: Option<u32>,
    max_links: Option<u32>,
    memory_mb: Option<u32>,
    timeout_seconds: Option<u32>,
    log_retention_days: Option<u32>,
    reserved_concurrency: Option<u32>,
    architecture: Option<Architecture>,
    account_id: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
    profile: Option<String>,
    termination_protection: Option<bool>,
    dry_run: Option<bool>,
    #[serde(default)]
    tags: UniqueMap<String>,
}

/// `recycle_bin:`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecycleBin {
    retention_days: u32,
    /// An explicit choice: a locked rule for every EBS snapshot of the region, any tool's.
    region_wide: Option<RawRegionWide>,
}

/// `recycle_bin.region_wide:`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegionWide {
    unlock_delay_days: u32,
}

/// How long a locked Recycle Bin rule stays in force after it is unlocked, in days
/// (AWS::Rbin::Rule's `UnlockDelayValue`; `checks/schemas.rs` reads it there).
pub const UNLOCK_DELAY_DAYS: std::ops::RangeInclusive<u32> = 7..=30;

/// How long AWS::Rbin::Rule keeps a resource, in days (its schema's `RetentionPeriodValue`;
/// `checks/schemas.rs` reads it there).
pub const RECYCLE_BIN_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;

/// One entry of `copies:`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCopy {
    region: String,
    retention_days: Option<u32>,
    keep_last: Option<u32>,
    kms_key: Option<String>,
    schedules: Option<Vec<String>>,
    lock: Option<function::locks::LockRule>,
}

/// The suffix of the EventBridge rule that sends EC2's snapshot completion events to the
/// function of an environment with copies: `<stack_name>-copies`.
pub const COPY_RULE_SUFFIX: &str = "-copies";
/// EventBridge's limit on a rule's name (the `Name` of `AWS::Events::Rule`'s schema).
pub const MAX_RULE_NAME_CHARS: usize = 64;

/// One validated environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub name: String,
    pub region: String,
    pub stack_name: String,
    pub notification_emails: Vec<String>,
    /// One to four; the one-schedule keys make one named `default`.
    pub schedules: Vec<crate::config::schedules::Schedule>,
    /// Up to three other regions every set is copied to.
    pub copies: Vec<CopyRule>,
    /// Customer managed KMS keys of the backed-up volumes that the function's role may use
    /// through EC2 (to copy their snapshots and to restore-test them), as key ARNs.
    pub source_kms_keys: Vec<String>,
    /// Days a deleted snapshot of this deployment stays in the Recycle Bin; `None`: no rule.
    pub recycle_bin_days: Option<u32>,
    /// With a region-wide, locked Recycle Bin rule: its unlock delay in days.
    pub recycle_bin_unlock_delay_days: Option<u32>,
    /// The vault environment, in another account, that keeps copies of this one's sets.
    pub vault: Option<crate::config::vault::Vault>,
    /// The workload environments whose sets this one keeps, when it is a vault.
    pub vault_for: Option<crate::config::vault::VaultFor>,
    /// The ransomware tripwire's sensitivity, when each set's changed blocks are read.
    pub tripwire: Option<function::tripwire::Settings>,
    /// The scheduled restore test, when there is one.
    pub restore_test: Option<crate::config::restore_test::RestoreTest>,
    /// One stack set across accounts or organizational units and regions, administered from
    /// this environment's account and region; `None` deploys one stack.
    pub targets: Option<crate::config::targets::Targets>,
    /// Hours past a schedule's longest gap (and flexible window) before its newest set counts
    /// as overdue and its alarm fires.
    pub overdue_grace_hours: u32,
    pub backup_tag_key: String,
    pub backup_tag_value: String,
    pub exclude_boot_volume: bool,
    pub min_interval_minutes: u32,
    pub max_concurrency: u32,
    pub ec2_rate_share: u32,
    pub ec2_refill_per_second: u32,
    pub max_links: u32,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub log_retention_days: u32,
    pub reserved_concurrency: Option<u32>,
    pub architecture: Architecture,
    pub account_id: Option<String>,
    /// How this environment's account is reached.
    pub access: Access,
    pub termination_protection: bool,
    pub dry_run: bool,
    pub tags: BTreeMap<String, String>,
}

impl Environment {
    /// The function's policy for this environment, as its variables give it (the deployer's
    /// `coverage` judges instances as the function does).
    pub fn policy(&self) -> Result<fmodel::Policy, UserError> {
        self.function_config()
            .map(|config| config.policy)
            .map_err(|e| UserError(format!("environments.{}: {e}", self.name)))
    }

    /// The function's configuration as its variables give it (with a placeholder topic).
    fn function_config(&self) -> Result<fconfig::Config, fconfig::ConfigError> {
        let vars = function_environment(self, "arn:aws:sns:us-east-1:123456789012:placeholder");
        fconfig::Config::from_lookup(|var| vars.get(var).cloned())
    }

    /// The next fire times of every schedule and of the restore test, as render and deploy
    /// print them.
    pub fn schedule_preview(&self, now: time::OffsetDateTime) -> String {
        let alarms = match crate::config::schedules::alarm_window_hours(
            &self.schedules,
            self.overdue_grace_hours,
        ) {
            Some(hours) => format!(
                "overdue alarms: each schedule's, when its newest backup is older than its \
                 longest gap plus {} h grace, or no run reported for {hours} h\n",
                self.overdue_grace_hours
            ),
            None => format!(
                "no overdue alarm: the most frequent schedule runs less often than CloudWatch \
                 can look back ({} h); run `cargo xtask coverage --env {} --fail-on overdue` \
                 from a cron job instead\n",
                crate::config::schedules::MAX_ALARM_WINDOW_HOURS,
                self.name
            ),
        };
        let region_wide = match (self.recycle_bin_days, self.recycle_bin_unlock_delay_days) {
            (Some(days), Some(delay)) => format!(
                "recycle bin, region-wide and locked: every EBS snapshot of this account in {}, \
                 whoever made it, stays {days} days in the bin after any deletion; the rule is \
                 locked, so removing it takes an unlock and then {delay} days, and destroy \
                 leaves it in place (docs/vault.md)\n",
                self.region
            ),
            _ => String::new(),
        };
        let bin = self.recycle_bin_days.map_or_else(String::new, |days| {
            format!(
                "recycle bin: a deleted snapshot of {} (by its expiry or by anyone) stays {days} \
                 days in the Recycle Bin, restorable, and billed as a snapshot until then\n",
                self.stack_name
            )
        });
        crate::config::schedules::preview(&self.schedules, now)
            + &crate::config::restore_test::preview(self.restore_test.as_ref(), now)
            + &alarms
            + &bin
            + &region_wide
            + &self.tripwire.map_or_else(String::new, |t| {
                format!(
                    "tripwire: each set's changed blocks are read as it completes (EBS \
                     ListChangedBlocks) and recorded; a set changing more than {}x its volume's \
                     usual peak and over {:.0}% of it{} trips: its instance's clean set is locked \
                     ({} mode, {} days), its expiry suspended until `cargo xtask tripwire \
                     --clear`, the alarm raised and the restore command mailed\n",
                    t.multiplier,
                    t.floor * 100.0,
                    if t.sample_blocks > 0 {
                        format!(
                            ", with {} of its changed blocks looking encrypted,",
                            t.sample_blocks
                        )
                    } else {
                        String::new()
                    },
                    t.pin_mode.as_str(),
                    t.pin_days
                )
            })
            + &crate::config::vault::preview(self.vault.as_ref(), self.vault_for.as_ref())
    }
}

/// The config file's path when `--config` is not given: the workspace root's.
pub fn default_path() -> PathBuf {
    crate::paths::workspace_root().join(FILE_NAME)
}

/// Reads the config file (`given` by `--config`, or the default) and returns environment
/// `name`. Every mistake, the file's own included, is a `UserError` (exit 2).
pub fn load(given: Option<&Path>, name: &str) -> Result<Environment> {
    let (text, file) = read(given)?;
    Ok(parse(&text, &file, name)?)
}

/// The names of the environments in the config file.
pub fn names(given: Option<&Path>) -> Result<Vec<String>> {
    let (text, file) = read(given)?;
    Ok(raw_file(&text, &file)?.environments.0.into_keys().collect())
}

/// The largest config file read; a real one is a few kilobytes.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The deepest nesting of `[` and `{` accepted; a real file needs two or three levels.
const MAX_FLOW_DEPTH: usize = 32;

/// The file's text and the name to show for it.
fn read(given: Option<&Path>) -> Result<(String, String), UserError> {
    let path = given.map_or_else(default_path, Path::to_path_buf);
    let file = path.display().to_string();
    let fix = if given.is_some() {
        "check the path given with --config".to_owned()
    } else {
        "create it (docs/deployer.md lists every key) or pass --config <file>".to_owned()
    };
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UserError(format!("`{file}` does not exist; {fix}")));
        }
        Err(e) => return Err(UserError(format!("cannot read `{file}`: {e}; {fix}"))),
    };
    if metadata.is_dir() {
        return Err(UserError(format!(
            "`{file}` is a folder, not a file; {fix}, naming the YAML file itself"
        )));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(UserError(format!(
            "`{file}` is {} bytes, more than a configuration file needs ({MAX_FILE_BYTES} at \
             most); {fix}",
            metadata.len()
        )));
    }
    let bytes =
        std::fs::read(&path).map_err(|e| UserError(format!("cannot read `{file}`: {e}; {fix}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        UserError(format!(
            "`{file}` is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok((text, file))
}

/// Parses the whole file strictly: unknown keys, duplicate keys and excessive nesting are
/// refused before any environment is looked at.
fn raw_file(text: &str, file: &str) -> Result<RawFile, UserError> {
    if let Some(line) = too_deep(text) {
        return Err(UserError(format!(
            "{file}: line {line}: brackets nest more than {MAX_FLOW_DEPTH} levels deep; a \
             SmartVault configuration needs a few (docs/deployer.md lists every key)"
        )));
    }
    serde_norway::from_str(text).map_err(|e| {
        UserError(format!(
            "{file}: {e}; fix the key or value (docs/deployer.md lists every key)"
        ))
    })
}

/// The line where flow collections (`[`, `{`) first nest deeper than `MAX_FLOW_DEPTH`,
/// found in one pass before the YAML parser, which would take seconds on thousands of levels.
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (number, line) in text.lines().enumerate() {
        for c in line.chars() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_FLOW_DEPTH {
                return Some(number + 1);
            }
        }
    }
    None
}

/// Parses the file's text and validates environment `name`.
/// An environment of the shipped smartvault.yaml, for tests.
#[cfg(test)]
pub fn example(name: &str) -> Environment {
    parse(
        include_str!("../../../smartvault.yaml"),
        "smartvault.yaml",
        name,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn parse(text: &str, file: &str, name: &str) -> Result<Environment, UserError> {
    let raw = raw_file(text, file)?;
    let environments = &raw.environments.0;
    if environments.is_empty() {
        return Err(UserError(format!(
            "{file} defines no environments; add one under `environments:`, e.g. \
             `dev: {{region: eu-west-1, notification_emails: [ops@example.com]}}` \
             (docs/deployer.md lists every key)"
        )));
    }
    let Some(env) = environments.get(name) else {
        let names: Vec<&str> = environments.keys().map(String::as_str).collect();
        return Err(UserError(format!(
            "{file} has no environment `{name}`; the environments are: {}",
            names.join(", ")
        )));
    };
    if !is_environment_name(name) {
        return Err(UserError(format!(
            "{file}: environments.{name:?}: the environment name is not usable; use 1 to 50 \
             letters, digits and hyphens, starting with a letter (it names the stack \
             smartvault-<name>)"
        )));
    }
    validate(file, name, env, environments)
}

/// An environment's stack name: `stack_name`, or smartvault-<name>.
fn stack_name_of(name: &str, raw: &RawEnvironment) -> String {
    raw.stack_name
        .clone()
        .unwrap_or_else(|| format!("smartvault-{name}"))
}

/// Environment `name` of the file as the vault settings of another see it.
fn peer<'a>(
    name: &'a str,
    raw: &'a RawEnvironment,
    stack_name: &'a str,
) -> crate::config::vault::Peer<'a> {
    crate::config::vault::Peer {
        name,
        region: &raw.region,
        account_id: raw.account_id.as_deref(),
        stack_name,
        vault: raw.vault.as_ref(),
        vault_for: raw.vault_for.as_ref(),
        source_kms_keys: raw.source_kms_keys.as_deref().unwrap_or_default(),
    }
}

fn validate(
    file: &str,
    name: &str,
    raw: &RawEnvironment,
    environments: &BTreeMap<String, RawEnvironment>,
) -> Result<Environment, UserError> {
    let key_error = |key: &str, problem: String| {
        UserError(format!("{file}: environments.{name}.{key}: {problem}"))
    };
    // The function's settings: their defaults and ranges are the function's own.
    let setting = |setting: &settings::Number, value: Option<u32>| {
        setting
            .check(value)
            .map_err(|problem| key_error(setting.key, problem))
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

    if !function::copies::is_region_name(&raw.region) {
        return Err(key_error(
            "region",
            format!(
                "{:?} is not an AWS region name; write e.g. eu-west-1",
                raw.region
            ),
        ));
    }
    let stack_name = stack_name_of(name, raw);
    if !is_stack_name(&stack_name) {
        return Err(key_error(
            "stack_name",
            format!(
                "{stack_name:?} is not usable as a stack and function name; use 1 to 64 letters, digits and hyphens, starting with a letter"
            ),
        ));
    }
    // The execution role and the CI policy manage SmartVault's names only, and the bootstrap
    // stack's are its own.
    if !stack_name.starts_with(STACK_PREFIX) || stack_name.starts_with(BOOTSTRAP_PREFIX) {
        return Err(key_error(
            "stack_name",
            format!(
                "{stack_name:?} must start with {STACK_PREFIX:?} and not with \
                 {BOOTSTRAP_PREFIX:?}: the CloudFormation execution role and the deployer policy \
                 manage only SmartVault's names, and smartvault-bootstrap is the account's shared \
                 stack; use e.g. \"smartvault-{name}-2\" (or rename the environment)"
            ),
        ));
    }
    // An organization's environment adds <stack>-artifacts and <stack>-central stacks.
    if let Some(suffix) = [
        crate::config::targets::ARTIFACTS_SUFFIX,
        crate::config::targets::CENTRAL_SUFFIX,
    ]
    .into_iter()
    .find(|suffix| stack_name.ends_with(suffix))
    {
        return Err(key_error(
            "stack_name",
            format!(
                "{stack_name:?} ends with {suffix:?}, which names the stacks an organization's \
                 environment adds beside its stack set (<stack>{suffix}); choose another name"
            ),
        ));
    }
    if raw.notification_emails.is_empty() || raw.notification_emails.len() > MAX_EMAILS {
        return Err(key_error(
            "notification_emails",
            format!("list 1 to {MAX_EMAILS} addresses, e.g. [ops@example.com]"),
        ));
    }
    if let Some(bad) = raw
        .notification_emails
        .iter()
        .find(|e| !crate::config::names::is_email(e))
    {
        return Err(key_error(
            "notification_emails",
            format!("{bad:?} is not an email address; write e.g. ops@example.com"),
        ));
    }
    let schedules = crate::config::schedules::resolve(
        &crate::config::schedules::Requested {
            schedules: raw.schedules.as_deref(),
            schedule: raw.schedule.as_deref(),
            retention_days: raw.retention_days,
            keep_last: raw.keep_last,
        },
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|(key, problem)| key_error(&key, problem))?;
    crate::config::schedules::check_names(&stack_name, &schedules)
        .map_err(|(key, problem)| key_error(&key, problem))?;
    let copies =
        copies(raw, &stack_name, &schedules).map_err(|(key, problem)| key_error(&key, problem))?;

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
    let access = crate::config::access::resolve(&crate::config::access::Requested {
        environment: name,
        role_arn: raw.role_arn.as_deref(),
        external_id: raw.external_id.as_deref(),
        profile: raw.profile.as_deref(),
        account_id: raw.account_id.as_deref(),
        region: Some(&raw.region),
    })
    .map_err(|(key, message)| key_error(key, message))?;
    if raw.tags.0.len() > 40 {
        return Err(key_error(
            "tags",
            "at most 40 tags; CloudFormation adds its own".into(),
        ));
    }
    for (key, value) in &raw.tags.0 {
        let chars = key.chars().count();
        if chars == 0 || chars > 128 || value.chars().count() > 256 || tags::is_reserved(key) {
            return Err(key_error(
                "tags",
                format!(
                    "{key:?}: tag keys are 1 to 128 characters not starting with `aws:` (in \
                     any case), values at most 256 characters"
                ),
            ));
        }
        if tags::has_prefix(key, tags::SMARTVAULT_PREFIX) {
            return Err(key_error(
                "tags",
                format!(
                    "{key:?}: keys starting with `smartvault:` are SmartVault's own (it sets \
                     smartvault:environment itself); choose another key"
                ),
            ));
        }
    }
    let mut env = Environment {
        name: name.to_owned(),
        region: raw.region.clone(),
        stack_name,
        notification_emails: raw.notification_emails.clone(),
        schedules,
        copies,
        source_kms_keys: source_kms_keys(
            raw.source_kms_keys.as_deref().unwrap_or_default(),
            &raw.region,
            raw.account_id.as_deref(),
        )
        .map_err(|problem| key_error("source_kms_keys", problem))?,
        recycle_bin_days: match &raw.recycle_bin {
            None => None,
            Some(bin) => Some(in_range(
                "recycle_bin.retention_days",
                Some(bin.retention_days),
                bin.retention_days,
                RECYCLE_BIN_DAYS,
            )?),
        },
        vault: None,
        vault_for: None,
        tripwire: match &raw.tripwire {
            None => None,
            Some(sensitivity) => match sensitivity.problem() {
                Some(why) => return Err(key_error("tripwire", why)),
                None => Some(*sensitivity),
            },
        },
        recycle_bin_unlock_delay_days: match raw
            .recycle_bin
            .as_ref()
            .and_then(|b| b.region_wide.as_ref())
        {
            None => None,
            Some(wide) => Some(in_range(
                "recycle_bin.region_wide.unlock_delay_days",
                Some(wide.unlock_delay_days),
                wide.unlock_delay_days,
                UNLOCK_DELAY_DAYS,
            )?),
        },
        restore_test: None,
        targets: None,
        overdue_grace_hours: in_range(
            "overdue_grace_hours",
            raw.overdue_grace_hours,
            3,
            OVERDUE_GRACE_RANGE,
        )?,
        backup_tag_key: raw
            .backup_tag_key
            .clone()
            .unwrap_or_else(|| settings::BACKUP_TAG_KEY.default.to_owned()),
        backup_tag_value: raw
            .backup_tag_value
            .clone()
            .unwrap_or_else(|| settings::BACKUP_TAG_VALUE.default.to_owned()),
        exclude_boot_volume: raw
            .exclude_boot_volume
            .unwrap_or(settings::EXCLUDE_BOOT_VOLUME.default),
        min_interval_minutes: setting(&settings::MIN_INTERVAL, raw.min_interval_minutes)?,
        max_concurrency: setting(&settings::MAX_CONCURRENCY, raw.max_concurrency)?,
        ec2_rate_share: setting(&settings::EC2_RATE_SHARE, raw.ec2_rate_share)?,
        ec2_refill_per_second: setting(
            &settings::EC2_REFILL_PER_SECOND,
            raw.ec2_refill_per_second,
        )?,
        max_links: setting(&settings::MAX_LINKS, raw.max_links)?,
        memory_mb: in_range("memory_mb", raw.memory_mb, 256, 128..=10_240)?,
        timeout_seconds: in_range("timeout_seconds", raw.timeout_seconds, 300, 1..=900)?,
        log_retention_days,
        reserved_concurrency: match raw.reserved_concurrency {
            None => None,
            Some(n) => Some(in_range("reserved_concurrency", Some(n), 1, 1..=1000)?),
        },
        architecture: raw.architecture.unwrap_or(Architecture::X86_64),
        account_id: raw.account_id.clone(),
        access,
        termination_protection: raw.termination_protection.unwrap_or(false),
        dry_run: raw.dry_run.unwrap_or(settings::DRY_RUN.default),
        tags: raw.tags.0.clone(),
    };
    env.restore_test = crate::config::restore_test::resolve(
        raw.restore_test.as_ref(),
        &crate::config::restore_test::Around {
            stack_name: &env.stack_name,
            timeout_seconds: env.timeout_seconds,
            schedules: &env.schedules,
        },
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|(key, problem)| key_error(&key, problem))?;
    // A consistent schedule's wait and what follows it must fit in one invocation.
    for (index, schedule) in env.schedules.iter().enumerate() {
        if let Some(problem) = schedule
            .consistency
            .as_ref()
            .and_then(|c| c.problem(env.timeout_seconds))
        {
            let field = problem.split_whitespace().next().unwrap_or("consistency");
            return Err(key_error(&format!("schedules[{index}].{field}"), problem));
        }
        // Fast snapshot restore's zones are the environment's region's.
        if let Some(problem) = schedule
            .fast_restore
            .as_ref()
            .and_then(|f| f.problem(&env.region))
        {
            let field = problem.split_whitespace().next().unwrap_or("fast_restore");
            let field = field.trim_end_matches(':');
            return Err(key_error(&format!("schedules[{index}].{field}"), problem));
        }
    }
    if let Some(raw_targets) = &raw.targets {
        env.targets = Some(
            crate::config::targets::resolve(
                raw_targets,
                &crate::config::targets::Around {
                    stack_name: &env.stack_name,
                    region: &env.region,
                    copy_regions: env.copies.iter().map(|c| c.region.as_str()).collect(),
                    termination_protection: env.termination_protection,
                    reserved_concurrency: env.reserved_concurrency,
                },
            )
            .map_err(|(key, problem)| key_error(&key, problem))?,
        );
    }
    let stack_names: BTreeMap<&str, String> = environments
        .iter()
        .map(|(other, raw)| (other.as_str(), stack_name_of(other, raw)))
        .collect();
    let find = |other: &str| {
        let (key, raw) = environments.get_key_value(other)?;
        Some(peer(key, raw, stack_names.get(other)?))
    };
    let names: Vec<&str> = environments.keys().map(String::as_str).collect();
    let me = peer(name, raw, &env.stack_name);
    if let Some(vault) = &raw.vault {
        if raw.targets.is_some() {
            return Err(key_error(
                "vault",
                "a stack set environment (`targets:`) cannot have a vault yet; give each account \
                 its own environment with `vault:`"
                    .into(),
            ));
        }
        env.vault = Some(
            crate::config::vault::resolve_vault(vault, &me, find, &names)
                .map_err(|(key, problem)| key_error(&key, problem))?,
        );
    }
    if let Some(vault_for) = &raw.vault_for {
        env.vault_for = Some(
            crate::config::vault::resolve_vault_for(vault_for, &me, find, &names)
                .map_err(|(key, problem)| key_error(&key, problem))?,
        );
    }
    // The function validates its variables again at cold start; refusing here what it would
    // refuse there keeps a bad value from ever being deployed.
    env.function_config()
        .map_err(|e| UserError(format!("{file}: environments.{name}: {e}")))?;
    Ok(env)
}

/// The function's environment variables for `env`, as the template sets them.
pub fn function_environment(env: &Environment, topic_arn: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (fconfig::SNS_TOPIC_ARN, topic_arn.to_owned()),
        // The central topic is known to a deployed stack set only (CentralTopicArn).
        (fconfig::CENTRAL_TOPIC_ARN, String::new()),
        (fconfig::DEPLOYMENT, env.stack_name.clone()),
        (fconfig::ENVIRONMENT, env.name.clone()),
        (
            fconfig::FREEZE_DOCUMENT,
            if crate::config::schedules::ships_freeze_document(&env.schedules) {
                crate::config::schedules::freeze_document_name(&env.stack_name)
            } else {
                String::new()
            },
        ),
        (fconfig::BACKUP_TAG_KEY, env.backup_tag_key.clone()),
        (fconfig::BACKUP_TAG_VALUE, env.backup_tag_value.clone()),
        (
            fconfig::SCHEDULES,
            crate::config::schedules::function_variable(&env.schedules, env.overdue_grace_hours),
        ),
        (fconfig::COPIES, copies_variable(&env.copies)),
        (
            fconfig::RESTORE_TEST,
            crate::config::restore_test::function_variable(env.restore_test.as_ref()),
        ),
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
        (fconfig::EC2_RATE_SHARE, env.ec2_rate_share.to_string()),
        (
            fconfig::EC2_REFILL_PER_SECOND,
            env.ec2_refill_per_second.to_string(),
        ),
        (fconfig::MAX_LINKS, env.max_links.to_string()),
        (
            fconfig::VAULT,
            env.vault
                .as_ref()
                .and_then(|v| serde_json::to_string(&v.target).ok())
                .unwrap_or_default(),
        ),
        (
            fconfig::TRIPWIRE,
            env.tripwire
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok())
                .unwrap_or_default(),
        ),
        (
            fconfig::VAULT_FOR,
            env.vault_for
                .as_ref()
                .and_then(|v| serde_json::to_string(&v.keeper).ok())
                .unwrap_or_default(),
        ),
    ])
}

/// The function's `COPIES` variable: the copy rules as JSON.
pub fn copies_variable(copies: &[CopyRule]) -> String {
    serde_json::to_string(copies).unwrap_or_else(|_| "[]".to_owned())
}

/// The most `source_kms_keys` one environment lists (each is a resource of one IAM statement,
/// within the role's 10,240-character inline policy budget).
pub const MAX_SOURCE_KMS_KEYS: usize = 10;

/// `source_kms_keys:`, validated: key ARNs (an IAM statement cannot name an alias) of the
/// environment's region and partition, and of its account when `account_id` is given (the
/// bootstrap's boundary lets the function use its own account's keys only), each once.
fn source_kms_keys(
    keys: &[String],
    region: &str,
    account_id: Option<&str>,
) -> Result<Vec<String>, String> {
    if keys.len() > MAX_SOURCE_KMS_KEYS {
        return Err(format!(
            "{} keys are listed; at most {MAX_SOURCE_KMS_KEYS}",
            keys.len()
        ));
    }
    let partition = function::copies::partition_of_region(region);
    for (index, key) in keys.iter().enumerate() {
        let fields: Vec<&str> = key.splitn(6, ':').collect();
        let is_key_arn = fields.len() == 6
            && fields[0] == "arn"
            && fields[2] == "kms"
            && fields[4].len() == 12
            && fields[4].bytes().all(|b| b.is_ascii_digit())
            && fields[5]
                .strip_prefix("key/")
                .is_some_and(|id| !id.is_empty() && !id.contains(['*', '?']));
        if !is_key_arn {
            return Err(format!(
                "{key:?} is not a KMS key ARN; write arn:{partition}:kms:{region}:<account>:key/<id> \
                 (an alias cannot be granted in an IAM policy; `aws kms describe-key --key-id \
                 alias/<name>` shows its key's ARN)"
            ));
        }
        if fields[1] != partition || fields[3] != region {
            return Err(format!(
                "{key:?} is not a key of {region}: the volumes backed up are in {region}, and a \
                 KMS key serves only its own region and partition"
            ));
        }
        if let Some(account) = account_id
            && fields[4] != account
        {
            return Err(format!(
                "{key:?} is a key of account {}, not of the environment's account {account}; the \
                 bootstrap's boundary lets the function use only its own account's keys",
                fields[4]
            ));
        }
        if keys[..index].contains(key) {
            return Err(format!("{key:?} is listed twice; list each key once"));
        }
    }
    Ok(keys.to_vec())
}

/// `copies:`, validated: up to three regions AWS publishes, in the environment's partition,
/// other than its own, each once, with a KMS key in that region and values in range.
fn copies(
    raw: &RawEnvironment,
    stack_name: &str,
    schedules: &[crate::config::schedules::Schedule],
) -> Result<Vec<CopyRule>, (String, String)> {
    let Some(listed) = &raw.copies else {
        return Ok(Vec::new());
    };
    if listed.len() > MAX_COPY_RULES {
        return Err((
            "copies".into(),
            format!(
                "{} copy regions are listed; at most {MAX_COPY_RULES} (as AWS Data Lifecycle \
                 Manager's cross-region copies); remove {}",
                listed.len(),
                listed.len() - MAX_COPY_RULES
            ),
        ));
    }
    let mut rules = Vec::new();
    for (index, copy) in listed.iter().enumerate() {
        let key = |field: &str| format!("copies[{index}].{field}");
        let region = copy.region.as_str();
        if region == raw.region {
            return Err((
                key("region"),
                format!(
                    "{region} is this environment's own region; copies go to another region \
                     (e.g. {})",
                    crate::config::regions::others_in_partition(region)
                        .first()
                        .copied()
                        .unwrap_or("another region")
                ),
            ));
        }
        match crate::config::regions::partition_of(region) {
            None => {
                return Err((
                    key("region"),
                    format!(
                        "{region:?} is not an AWS region; write one of {}",
                        crate::config::regions::others_in_partition(&raw.region).join(", ")
                    ),
                ));
            }
            Some(partition)
                if Some(partition) != crate::config::regions::partition_of(&raw.region) =>
            {
                return Err((
                    key("region"),
                    format!(
                        "{region} is in the {partition} partition and {} is not; snapshots are \
                         copied only within one partition",
                        raw.region
                    ),
                ));
            }
            Some(_) => {}
        }
        rules.push(CopyRule {
            region: region.to_owned(),
            retention_days: copy.retention_days,
            keep_last: copy.keep_last,
            kms_key: copy.kms_key.clone(),
            schedules: copy.schedules.clone(),
            lock: copy.lock,
        });
        let rule_schedules: Vec<fmodel::ScheduleRule> = schedules
            .iter()
            .map(|s| fmodel::ScheduleRule::new(&s.name, s.retention_days, s.keep_last))
            .collect();
        if let Some((_, field, problem)) = copies_problem(&rules, &rule_schedules) {
            return Err((key(field), problem));
        }
    }
    let rule_name = stack_name.len() + COPY_RULE_SUFFIX.len();
    if rule_name > MAX_RULE_NAME_CHARS {
        return Err((
            "copies".into(),
            format!(
                "with copies, the stack's EventBridge rule is named {stack_name}{COPY_RULE_SUFFIX}, \
                 {rule_name} characters, over EventBridge's {MAX_RULE_NAME_CHARS}; shorten \
                 stack_name to at most {} characters",
                MAX_RULE_NAME_CHARS - COPY_RULE_SUFFIX.len()
            ),
        ));
    }
    Ok(rules)
}

fn is_environment_name(name: &str) -> bool {
    // `smartvault-` and the name make a stack name of at most 64 characters.
    name.len() <= 50 && is_stack_name(name)
}

/// Every environment's stack, function, role, topic, rule, log group and alarm starts so.
const STACK_PREFIX: &str = "smartvault-";
const BOOTSTRAP_PREFIX: &str = "smartvault-bootstrap";

fn is_stack_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
        assert_eq!(env.schedules.len(), 1);
        assert_eq!(env.schedules[0].name, "default");
        assert_eq!(env.schedules[0].expression, "cron(0 1 * * ? *)");
        assert_eq!(
            (env.schedules[0].retention_days, env.schedules[0].keep_last),
            (7, 1)
        );
        assert_eq!(
            (env.memory_mb, env.timeout_seconds, env.log_retention_days),
            (256, 300, 30)
        );
        assert_eq!(env.architecture, Architecture::X86_64);
        assert_eq!(env.reserved_concurrency, None);
        assert!(!env.termination_protection && !env.dry_run);
    }

    #[test]
    fn a_bad_target_is_refused_naming_its_key_before_any_aws_call() {
        let error = parse(
            &env_yaml("    targets:\n      accounts: [12345]\n      regions: [eu-west-1]\n"),
            FILE,
            "dev",
        )
        .unwrap_err();
        assert!(
            error.0.starts_with(
                "smartvault.yaml: environments.dev.targets.accounts: \"12345\" is not a 12-digit"
            ),
            "{error}"
        );
        let error = parse(
            &env_yaml(
                "    termination_protection: true\n    targets:\n      accounts: ['111111111111']\n      regions: [eu-west-1]\n",
            ),
            FILE,
            "dev",
        )
        .unwrap_err();
        assert!(
            error.0.starts_with(
                "smartvault.yaml: environments.dev.termination_protection: stack sets"
            ),
            "{error}"
        );
        let env = parse(
            &env_yaml(
                "    targets:\n      accounts: ['111111111111']\n      regions: [eu-west-1]\n",
            ),
            FILE,
            "dev",
        )
        .unwrap();
        assert_eq!(env.targets.unwrap().accounts(), ["111111111111"]);
        let error = parse(
            &env_yaml("    stack_name: smartvault-org-central\n"),
            FILE,
            "dev",
        )
        .unwrap_err();
        assert!(
            error
                .0
                .contains("ends with \"-central\", which names the stacks"),
            "{error}"
        );
    }

    #[test]
    fn the_shipped_file_has_every_example_environment() {
        let text = include_str!("../../../smartvault.yaml");
        for name in ["local", "dev", "staging", "prod", "org"] {
            let env = parse(text, FILE, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(env.stack_name, format!("smartvault-{name}"));
        }
        // The organization's example: units of one organization, in two regions.
        let org = parse(text, FILE, "org").unwrap();
        let targets = org.targets.unwrap();
        assert!(targets.service_managed());
        assert_eq!(targets.regions, ["eu-west-1", "eu-central-1"]);
        assert_eq!(targets.organization_id.as_deref(), Some("o-a1b2c3d4e5"));
        let prod = parse(text, FILE, "prod").unwrap();
        assert!(prod.termination_protection);
        // The example's restore test fits its timeout, and reaches the function's variable.
        let test = prod.restore_test.clone().unwrap();
        assert_eq!((test.sample, test.max_wait_minutes), (2, 5));
        assert_eq!(
            function_environment(&prod, "arn:aws:sns:eu-west-1:123456789012:t")
                [fconfig::RESTORE_TEST],
            r#"{"sample":2,"max_wait_seconds":300}"#
        );
        let dev = parse(text, FILE, "dev").unwrap();
        assert_eq!(dev.restore_test, None);
        assert_eq!(
            function_environment(&dev, "arn:aws:sns:eu-west-1:123456789012:t")
                [fconfig::RESTORE_TEST],
            "",
            "no restore test: the variable is empty"
        );
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
            (
                "    stack_name: backups-dev\n",
                "stack_name: \"backups-dev\" must start with \"smartvault-\"",
            ),
            (
                "    stack_name: smartvault-bootstrap-dev\n",
                "and not with \"smartvault-bootstrap\"",
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
    fn archive_and_fast_restore_are_read_per_schedule_and_every_mistake_is_refused_with_the_fix() {
        let with = |monthly: &str| {
            format!(
                "    schedules:\n      - name: daily\n        expression: cron(0 1 * * ? *)\n      - name: monthly\n        expression: cron(0 2 1 * ? *)\n        retention_days: 365\n{monthly}"
            )
        };
        let env = parse(
            &env_yaml(&with(
                "        archive_after_days: 30\n        fast_restore: {zones: [eu-west-1a, eu-west-1b], count: 2, tag: {key: tier, value: gold}}\n",
            )),
            FILE,
            "dev",
        )
        .unwrap();
        let monthly = &env.schedules[1];
        assert_eq!(monthly.archive_after_days, Some(30));
        let fast = monthly.fast_restore.clone().unwrap();
        assert_eq!((fast.zones.len(), fast.count), (2, 2));
        assert_eq!(env.schedules[0].archive_after_days, None);
        // Both reach the function's SCHEDULES.
        let vars = function_environment(&env, "arn:aws:sns:eu-west-1:123456789012:t");
        let rules: Vec<function::model::ScheduleRule> =
            serde_json::from_str(&vars[fconfig::SCHEDULES]).unwrap();
        assert_eq!(rules[1].archive_after_days, Some(30));
        assert_eq!(rules[1].fast_restore, Some(fast));
        let cases = [
            (
                "        archive_after_days: 300\n",
                "schedules[1].archive_after_days: archive_after_days 300 leaves 65 days of retention_days 365 in the archive, under its 90-day minimum",
            ),
            ("        archive_after_days: 0\n", "use 1 or more"),
            (
                "        fast_restore: {zones: [us-east-1a]}\n",
                "schedules[1].fast_restore.zones: fast_restore.zones: us-east-1a is not a zone of eu-west-1, where the sets are",
            ),
            (
                "        fast_restore: {zones: []}\n",
                "fast_restore.zones lists 0 zones",
            ),
            (
                "        fast_restore: {zones: [eu-west-1a], count: 0}\n",
                "schedules[1].fast_restore.count: fast_restore.count 0 is outside 1-1000",
            ),
            (
                "        fast_restore: {zones: [eu-west-1a], sets: 2}\n",
                "unknown field `sets`",
            ),
        ];
        for (monthly, expected) in cases {
            let error = parse(&env_yaml(&with(monthly)), FILE, "dev")
                .expect_err(monthly)
                .to_string();
            assert!(error.starts_with(FILE), "{error}");
            assert!(error.contains(expected), "{monthly:?}: {error}");
        }
    }

    #[test]
    fn consistency_is_read_per_schedule_and_every_mistake_is_refused_with_the_fix() {
        let with = |consistency: &str| {
            format!(
                "    schedules:\n      - name: daily\n        expression: cron(0 1 * * ? *)\n        consistency: {consistency}\n      - name: weekly\n        expression: cron(0 2 ? * SUN *)\n"
            )
        };
        let env = parse(
            &env_yaml(&with(
                "{mode: script, document: db-freeze, tag: {key: app, value: postgres}, timeout_seconds: 90, retries: 2, on_failure: skip}",
            )),
            FILE,
            "dev",
        )
        .unwrap();
        let rule = env.schedules[0].consistency.clone().unwrap();
        assert_eq!(rule.mode, function::consistency::Mode::Script);
        assert_eq!(rule.document.as_deref(), Some("db-freeze"));
        assert_eq!((rule.timeout_seconds, rule.retries), (90, 2));
        assert_eq!(rule.on_failure, function::consistency::OnFailure::Skip);
        assert_eq!(
            env.schedules[1].consistency, None,
            "the other schedule stays crash"
        );
        // It reaches the function's SCHEDULES, and the function reads it back the same.
        let vars = function_environment(&env, "arn:aws:sns:eu-west-1:123456789012:t");
        let rules: Vec<function::model::ScheduleRule> =
            serde_json::from_str(&vars[fconfig::SCHEDULES]).unwrap();
        assert_eq!(rules[0].consistency, Some(rule));
        assert_eq!(
            vars[fconfig::FREEZE_DOCUMENT],
            "",
            "the user's document: none shipped"
        );
        // `crash` is today's behaviour; `script` without a document ships the Linux one.
        let crash = parse(&env_yaml(&with("{mode: crash}")), FILE, "dev").unwrap();
        assert_eq!(crash.schedules[0].consistency, None);
        let shipped = parse(&env_yaml(&with("{mode: script}")), FILE, "dev").unwrap();
        assert_eq!(
            function_environment(&shipped, "t")[fconfig::FREEZE_DOCUMENT],
            "smartvault-dev-linux-freeze"
        );
        let cases = [
            (
                "{mode: freeze}",
                "schedules[0].consistency.mode: \"freeze\" is not a consistency mode; use crash, script or vss",
            ),
            (
                "{mode: script, document: \"db freeze\"}",
                "schedules[0].consistency.document: consistency.document \"db freeze\" is not a Systems Manager document name",
            ),
            (
                "{mode: script, document: \"arn:aws:ssm:eu-west-1:12:document/x\"}",
                "is not a document ARN; write arn:aws:ssm:<region>:<12-digit account>:document/<name>",
            ),
            (
                "{mode: vss, document: MyDoc}",
                "consistency.document applies to mode script only",
            ),
            (
                "{mode: script, timeout_seconds: 120}\n    timeout_seconds: 120\n",
                "schedules[0].consistency.timeout_seconds: consistency.timeout_seconds 120 and the 30 s the snapshots and the post stage need are longer than the function's timeout_seconds 120; lower it to at most 90 or raise timeout_seconds",
            ),
            ("{mode: script, timeout_seconds: 5}", "is outside 10-120"),
            (
                "{mode: script, retries: 9}",
                "consistency.retries 9 is outside 0-3",
            ),
            (
                "{mode: script, on_failure: retry}",
                "consistency.on_failure: \"retry\" is not a fallback; use crash (snapshot anyway) or skip",
            ),
            ("{mode: crash, retries: 1}", "mode crash takes no other key"),
            ("{mode: script, wait: 3}", "unknown field `wait`"),
        ];
        for (consistency, expected) in cases {
            // An environment key after the schedules goes after their list.
            let (consistency, after) = consistency.split_once('\n').unwrap_or((consistency, ""));
            let yaml = env_yaml(&format!("{}{after}", with(consistency)));
            let error = parse(&yaml, FILE, "dev")
                .expect_err(consistency)
                .to_string();
            assert!(error.starts_with(FILE), "{error}");
            assert!(error.contains(expected), "{consistency:?}: {error}");
        }
    }

    #[test]
    fn copies_are_read_and_every_mistake_is_refused_with_the_fix() {
        let good = "    copies:\n      - {region: us-west-2, retention_days: 30, keep_last: 3, kms_key: alias/dr}\n      - region: eu-central-1\n        kms_key: arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n        schedules: [default]\n";
        let env = parse(&env_yaml(good), FILE, "dev").unwrap();
        assert_eq!(env.copies.len(), 2);
        assert_eq!(env.copies[0].region, "us-west-2");
        assert_eq!(env.copies[0].retention_days, Some(30));
        assert_eq!(
            env.copies[1].keep_last, None,
            "the schedule's own, unless given"
        );
        let vars = function_environment(&env, "arn:aws:sns:eu-west-1:123456789012:t");
        let rules: Vec<CopyRule> = serde_json::from_str(&vars[fconfig::COPIES]).unwrap();
        assert_eq!(
            rules, env.copies,
            "the function reads back what was validated"
        );

        let copy = |fields: &str| format!("    copies:\n      - {{{fields}}}\n");
        let cases = [
            (
                copy("region: eu-west-1"),
                "copies[0].region: eu-west-1 is this environment's own region",
            ),
            (copy("region: eu-west-9"), "copies[0].region: \"eu-west-9\" is not an AWS region; write one of"),
            (
                copy("region: cn-north-1"),
                "cn-north-1 is in the aws-cn partition and eu-west-1 is not",
            ),
            (
                "    copies:\n      - {region: us-west-2}\n      - {region: us-west-2}\n".to_owned(),
                "copies[1].region: copy region us-west-2 is given twice",
            ),
            (
                "    copies: [{region: us-west-2}, {region: us-east-1}, {region: us-east-2}, {region: eu-north-1}]\n".to_owned(),
                "4 copy regions are listed; at most 3",
            ),
            (
                copy("region: us-west-2, kms_key: \"arn:aws:kms:eu-west-1:123456789012:key/abc\""),
                "copies[0].kms_key: copies to us-west-2: kms_key \"arn:aws:kms:eu-west-1:123456789012:key/abc\" is in eu-west-1, not in us-west-2",
            ),
            (
                copy("region: us-west-2, kms_key: \"arn:aws-cn:kms:us-west-2:123456789012:key/abc\""),
                "kms_key \"arn:aws-cn:kms:us-west-2:123456789012:key/abc\" is an ARN of the aws-cn partition, but us-west-2 is in the aws partition",
            ),
            (
                copy("region: us-west-2, kms_key: my-key"),
                "kms_key \"my-key\" is not a KMS key; give a key ARN",
            ),
            (
                copy("region: us-west-2, retention_days: 0"),
                "copies[0].retention_days: copies to us-west-2: retention_days 0 is outside 1-3650",
            ),
            (
                copy("region: us-west-2, keep_last: 1001"),
                "copies[0].keep_last: copies to us-west-2: keep_last 1001 is outside 0-1000",
            ),
            (
                copy("region: us-west-2, schedules: [default, default]"),
                "copies[0].schedules: copies to us-west-2: schedule \"default\" is listed twice; name each schedule once",
            ),
            (
                copy("region: us-west-2, schedules: [weekly]"),
                "copies[0].schedules: copies to us-west-2: schedule \"weekly\" is not one of this deployment's (default)",
            ),
            (copy("region: us-west-2, retention: 3"), "unknown field `retention`"),
            (
                format!(
                    "    stack_name: smartvault-{}\n    schedules: [{{name: d, expression: \"rate(1 day)\"}}]\n{}",
                    "x".repeat(47),
                    copy("region: us-west-2")
                ),
                "over EventBridge's 64; shorten stack_name to at most 57 characters",
            ),
        ];
        for (extra, expected) in cases {
            let error = parse(&env_yaml(&extra), FILE, "dev")
                .expect_err(&extra)
                .to_string();
            assert!(error.contains(expected), "{extra:?}: {error}");
            assert!(
                error.starts_with(&format!("{FILE}: environments.dev.")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_recycle_bin_is_read_previewed_and_refused_out_of_range() {
        let artifact = crate::stack::parameters::ArtifactLocation {
            bucket: "b".into(),
            key: "artifacts/x.zip".into(),
            sha256: "a".repeat(64),
        };
        let env = parse(
            &env_yaml("    recycle_bin:\n      retention_days: 14\n"),
            FILE,
            "dev",
        )
        .unwrap();
        assert_eq!(env.recycle_bin_days, Some(14));
        let rendered = crate::stack::template::parameters(&env, &artifact);
        assert_eq!(rendered.recycle_bin_days.as_deref(), Some("14"));
        let preview = env.schedule_preview(time::OffsetDateTime::now_utc());
        assert!(
            preview.contains("stays 14 days in the Recycle Bin, restorable, and billed"),
            "{preview}"
        );
        // Without it: no rule (the template's condition is 0), nothing previewed.
        let plain = parse(&env_yaml(""), FILE, "dev").unwrap();
        assert_eq!(
            crate::stack::template::parameters(&plain, &artifact)
                .recycle_bin_days
                .as_deref(),
            Some("0")
        );
        assert!(
            !plain
                .schedule_preview(time::OffsetDateTime::now_utc())
                .contains("Recycle Bin")
        );
        for (yaml, expected) in [
            (
                "    recycle_bin:\n      retention_days: 0\n",
                "recycle_bin.retention_days: 0 is out of range; use a whole number from 1 to 3650",
            ),
            (
                "    recycle_bin:\n      retention_days: 3651\n",
                "3651 is out of range",
            ),
            ("    recycle_bin:\n      days: 14\n", "days"),
        ] {
            let error = parse(&env_yaml(yaml), FILE, "dev").unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn a_region_wide_locked_bin_is_an_explicit_choice_previewed_and_refused_out_of_range() {
        let artifact = crate::stack::parameters::ArtifactLocation {
            bucket: "b".into(),
            key: "artifacts/x.zip".into(),
            sha256: "a".repeat(64),
        };
        let wide = parse(
            &env_yaml(
                "    recycle_bin:\n      retention_days: 14\n      region_wide: {unlock_delay_days: 7}\n",
            ),
            FILE,
            "dev",
        )
        .unwrap();
        assert_eq!(wide.recycle_bin_unlock_delay_days, Some(7));
        let rendered = crate::stack::template::parameters(&wide, &artifact);
        assert_eq!(rendered.recycle_bin_unlock_delay_days.as_deref(), Some("7"));
        let preview = wide.schedule_preview(time::OffsetDateTime::now_utc());
        assert!(
            preview.contains("recycle bin, region-wide and locked: every EBS snapshot of this account in eu-west-1, whoever made it, stays 14 days")
                && preview.contains("takes an unlock and then 7 days, and destroy leaves it in place"),
            "{preview}"
        );
        // Only when asked for.
        let tagged = parse(
            &env_yaml("    recycle_bin:\n      retention_days: 14\n"),
            FILE,
            "dev",
        )
        .unwrap();
        assert_eq!(tagged.recycle_bin_unlock_delay_days, None);
        assert_eq!(
            crate::stack::template::parameters(&tagged, &artifact)
                .recycle_bin_unlock_delay_days
                .as_deref(),
            Some("0")
        );
        for (delay, expected) in [
            (
                "6",
                "recycle_bin.region_wide.unlock_delay_days: 6 is out of range; use a whole number from 7 to 30",
            ),
            ("31", "31 is out of range"),
        ] {
            let yaml = format!(
                "    recycle_bin:\n      retention_days: 14\n      region_wide: {{unlock_delay_days: {delay}}}\n"
            );
            let error = parse(&env_yaml(&yaml), FILE, "dev")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{delay}: {error}");
        }
        let unknown = parse(
            &env_yaml(
                "    recycle_bin:\n      retention_days: 14\n      region_wide: {lock: true}\n",
            ),
            FILE,
            "dev",
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("lock"), "{unknown}");
    }

    #[test]
    fn a_tripwire_is_read_previewed_passed_to_the_function_and_refused_out_of_range() {
        let env = parse(
            &env_yaml("    tripwire: {multiplier: 2, floor: 0.25}\n"),
            FILE,
            "dev",
        )
        .unwrap();
        let vars = function_environment(&env, "arn:aws:sns:eu-west-1:123456789012:t");
        let read: function::tripwire::Settings =
            serde_json::from_str(&vars[fconfig::TRIPWIRE]).unwrap();
        assert_eq!(Some(read), env.tripwire);
        let preview = env.schedule_preview(time::OffsetDateTime::now_utc());
        assert!(
            preview.contains("more than 2x its volume's usual peak and over 25% of it"),
            "{preview}"
        );
        let plain = parse(&env_yaml(""), FILE, "dev").unwrap();
        assert_eq!(function_environment(&plain, "t")[fconfig::TRIPWIRE], "");
        for (yaml, expected) in [
            (
                "    tripwire: {multiplier: 0.5, floor: 0.2}\n",
                "tripwire: tripwire.multiplier 0.5 is not 1 to 100",
            ),
            (
                "    tripwire: {multiplier: 1.5, floor: 2}\n",
                "tripwire.floor 2 is not 0.01 to 1",
            ),
            ("    tripwire: {multiplier: 1.5}\n", "floor"),
        ] {
            let error = parse(&env_yaml(yaml), FILE, "dev").unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn source_kms_keys_are_key_arns_of_the_environments_region_and_account() {
        let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let env = parse(
            &env_yaml(&format!(
                "    account_id: \"123456789012\"\n    source_kms_keys: [\"{key}\"]\n"
            )),
            FILE,
            "dev",
        )
        .unwrap();
        assert_eq!(env.source_kms_keys, [key]);
        let rendered = crate::stack::template::parameters(
            &env,
            &crate::stack::parameters::ArtifactLocation {
                bucket: "b".into(),
                key: "artifacts/x.zip".into(),
                sha256: "a".repeat(64),
            },
        );
        assert_eq!(rendered.source_kms_key_arns.as_deref(), Some(key));
        assert_eq!(
            parse(&env_yaml(""), FILE, "dev").unwrap().source_kms_keys,
            Vec::<String>::new()
        );
        for (keys, expected) in [
            (
                "[alias/ebs]".to_owned(),
                "source_kms_keys: \"alias/ebs\" is not a KMS key ARN",
            ),
            (
                "[\"arn:aws:kms:us-east-1:123456789012:key/k\"]".to_owned(),
                "is not a key of eu-west-1",
            ),
            (
                "[\"arn:aws-cn:kms:eu-west-1:123456789012:key/k\"]".to_owned(),
                "is not a key of eu-west-1",
            ),
            (
                "[\"arn:aws:kms:eu-west-1:210987654321:key/k\"]".to_owned(),
                "is a key of account 210987654321, not of the environment's account",
            ),
            (
                "[\"arn:aws:kms:eu-west-1:123456789012:key/*\"]".to_owned(),
                "is not a KMS key ARN",
            ),
            (format!("[\"{key}\", \"{key}\"]"), "is listed twice"),
            (
                format!("[{}]", vec![format!("\"{key}\""); 11].join(", ")),
                "11 keys are listed; at most 10",
            ),
        ] {
            let error = parse(
                &env_yaml(&format!(
                    "    account_id: \"123456789012\"\n    source_kms_keys: {keys}\n"
                )),
                FILE,
                "dev",
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains(expected), "{keys}: {error}");
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
    fn a_key_given_twice_is_refused_naming_it() {
        let twice_env = "environments:\n  dev:\n    region: eu-west-1\n    notification_emails: [a@b.io]\n  dev:\n    region: us-east-1\n    notification_emails: [a@b.io]\n";
        let twice_tag = env_yaml("    tags:\n      team: a\n      team: b\n");
        let twice_field = env_yaml("    retention_days: 7\n    retention_days: 30\n");
        let twice_top = format!("{}environments: {{}}\n", env_yaml(""));
        for (text, expected) in [
            (twice_env.to_owned(), "`dev` is given twice"),
            (twice_tag, "`team` is given twice"),
            (twice_field, "duplicate field `retention_days`"),
            (twice_top, "duplicate field `environments`"),
        ] {
            let error = parse(&text, FILE, "dev").expect_err(&text).to_string();
            assert!(error.starts_with(FILE), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn tags_are_measured_in_characters_and_reserved_prefixes_in_any_case() {
        let emoji = "🙂".repeat(100);
        let env = parse(
            &env_yaml(&format!("    tags:\n      mood: \"{emoji}\"\n")),
            FILE,
            "dev",
        )
        .expect("100 emoji are 100 characters, within 256");
        assert_eq!(env.tags["mood"], emoji);
        let too_long = "é".repeat(257);
        for (tags, expected) in [
            (
                format!("      note: \"{too_long}\"\n"),
                "values at most 256 characters",
            ),
            (
                "      \"AWS:owner\": me\n".to_owned(),
                "not starting with `aws:` (in any case)",
            ),
            (
                "      \"Aws:x\": me\n".to_owned(),
                "not starting with `aws:`",
            ),
            (
                "      \"smartvault:environment\": x\n".to_owned(),
                "are SmartVault's own",
            ),
            (
                "      \"SmartVault:Team\": x\n".to_owned(),
                "are SmartVault's own",
            ),
        ] {
            let error = parse(&env_yaml(&format!("    tags:\n{tags}")), FILE, "dev")
                .expect_err(&tags)
                .to_string();
            assert!(error.contains("environments.dev.tags"), "{error}");
            assert!(error.contains(expected), "{tags}: {error}");
        }
        let error = parse(
            &env_yaml("    backup_tag_key: \"AWS:Backup\"\n"),
            FILE,
            "dev",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("does not start with `aws:`"), "{error}");
    }

    #[test]
    fn an_empty_file_a_bad_name_and_deep_nesting_are_refused_with_the_fix() {
        let error = parse("environments: {}\n", FILE, "dev")
            .unwrap_err()
            .to_string();
        assert!(
            error
                .contains("smartvault.yaml defines no environments; add one under `environments:`"),
            "{error}"
        );
        let spaced =
            "environments:\n  my env:\n    region: eu-west-1\n    notification_emails: [a@b.io]\n";
        let error = parse(spaced, FILE, "my env").unwrap_err().to_string();
        assert!(
            error.contains("environments.\"my env\": the environment name is not usable"),
            "{error}"
        );
        assert!(!error.contains("stack_name"), "{error}");
        let deep = format!(
            "environments: {}{}\n",
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        let error = parse(&deep, FILE, "dev").unwrap_err().to_string();
        assert!(
            error.contains("line 1: brackets nest more than 32 levels deep"),
            "{error}"
        );
        let nested_map = format!("environments: {}\n", "{a: ".repeat(40));
        assert!(
            parse(&nested_map, FILE, "dev")
                .unwrap_err()
                .to_string()
                .contains("nest more than")
        );
    }

    #[test]
    fn an_unreadable_config_file_is_a_configuration_mistake_with_the_right_fix() {
        let dir = crate::paths::test_scratch("config-files");
        let missing = dir.join("missing.yaml");
        let _ = std::fs::remove_file(&missing);
        let latin1 = dir.join("latin1.yaml");
        std::fs::write(&latin1, b"environments:\n  d\xe9v: {}\n").unwrap();
        let cases = [
            (
                missing.clone(),
                "does not exist; check the path given with --config",
            ),
            (dir, "is a folder, not a file"),
            (
                latin1,
                "is not UTF-8 text (invalid byte at offset 17); save it as UTF-8",
            ),
        ];
        for (path, expected) in cases {
            let error = load(Some(&path), "dev").expect_err(expected);
            assert!(error.is::<UserError>(), "exit 2: {error:#}");
            assert!(error.to_string().contains(expected), "{error}");
            assert!(!error.to_string().contains("or pass --config"), "{error}");
        }
        let names = names(Some(&missing)).unwrap_err();
        assert!(names.is::<UserError>(), "{names:#}");
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
