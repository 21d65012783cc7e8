//! An environment's `vault:` (the vault environment, in another account, that keeps copies of
//! its sets) and a vault environment's `vault_for:` (the workload environments it keeps),
//! validated against each other before any AWS call, and the function variables they become.

use function::vault::{VaultKeeper, VaultSource, VaultTarget};
use serde::{Deserialize, Serialize};

/// `vault:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// The vault environment, in this file.
    pub environment: String,
    pub max_lag_hours: Option<u32>,
}

/// `vault_for:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVaultFor {
    /// The workload environments, in this file, whose sets this vault keeps.
    pub environments: Vec<String>,
    pub retention_days: u32,
    /// The vault's customer managed key (a key ARN in the vault's region and account).
    pub kms_key: String,
    pub cool_off_hours: Option<u32>,
}

/// What one environment's vault settings need to know of an environment of the file.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub name: &'a str,
    pub region: &'a str,
    pub account_id: Option<&'a str>,
    pub stack_name: &'a str,
    pub vault: Option<&'a RawVault>,
    pub vault_for: Option<&'a RawVaultFor>,
    pub source_kms_keys: &'a [String],
}

/// A workload environment's vault, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vault {
    pub environment: String,
    pub stack_name: String,
    pub target: VaultTarget,
}

/// A vault environment's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultFor {
    pub environments: Vec<String>,
    pub keeper: VaultKeeper,
    /// The workload environments' customer managed keys: the vault's role uses them, through
    /// EC2, to read what it copies (their key policies must admit the vault account).
    pub source_kms_keys: Vec<String>,
}

/// The role in a vault account through which its workloads see its copies (read only).
pub fn reader_role_name(vault_stack: &str) -> String {
    format!("{vault_stack}{READER_SUFFIX}")
}

pub const READER_SUFFIX: &str = "-reader";
/// IAM's longest role name.
pub const MAX_ROLE_NAME_CHARS: usize = 64;

type Problem = (String, String);

fn problem(key: &str, message: impl Into<String>) -> Problem {
    (key.to_owned(), message.into())
}

/// `vault:` of environment `me`, with `find` giving any other environment of the file.
pub fn resolve_vault<'a>(
    raw: &RawVault,
    me: &Peer<'a>,
    find: impl Fn(&str) -> Option<Peer<'a>>,
    names: &[&str],
) -> Result<Vault, Problem> {
    let key = "vault.environment";
    if raw.environment == me.name {
        return Err(problem(
            key,
            "names this environment itself; name the vault environment, deployed in another \
             account",
        ));
    }
    let Some(vault) = find(&raw.environment) else {
        return Err(problem(
            key,
            format!(
                "{:?} is not an environment of this file; the environments are: {}",
                raw.environment,
                names.join(", ")
            ),
        ));
    };
    let Some(mine) = me.account_id else {
        return Err(problem(
            "account_id",
            "an environment with a vault needs its account_id (quoted, 12 digits): the vault \
             pulls from that account, and SmartVault refuses a vault in the same one",
        ));
    };
    let Some(theirs) = vault.account_id else {
        return Err(problem(
            key,
            format!(
                "environment {} has no account_id; give it the vault account's (quoted, 12 \
                 digits)",
                vault.name
            ),
        ));
    };
    if mine == theirs {
        return Err(problem(
            key,
            format!(
                "environment {} is in this environment's own account {mine}: a vault there \
                 protects nothing from that account's administrators; deploy the vault \
                 environment in another account",
                vault.name
            ),
        ));
    }
    let keeps_me = vault
        .vault_for
        .is_some_and(|v| v.environments.iter().any(|e| e == me.name));
    if !keeps_me {
        return Err(problem(
            key,
            format!(
                "environment {} does not keep this one: add `{}` to its vault_for.environments",
                vault.name, me.name
            ),
        ));
    }
    let max_lag_hours = raw
        .max_lag_hours
        .unwrap_or(function::vault::DEFAULT_MAX_LAG_HOURS);
    let partition = function::copies::partition_of_region(vault.region);
    let target = VaultTarget {
        account: theirs.to_owned(),
        region: vault.region.to_owned(),
        reader_role: format!(
            "arn:{partition}:iam::{theirs}:role/{}",
            reader_role_name(vault.stack_name)
        ),
        max_lag_hours,
        shareable_keys: me.source_kms_keys.to_vec(),
        vault_retention_days: vault.vault_for.map(|v| v.retention_days),
    };
    if let Some(why) = target.problem() {
        return Err(problem("vault", why));
    }
    Ok(Vault {
        environment: vault.name.to_owned(),
        stack_name: vault.stack_name.to_owned(),
        target,
    })
}

/// `vault_for:` of vault environment `me`.
pub fn resolve_vault_for<'a>(
    raw: &RawVaultFor,
    me: &Peer<'a>,
    find: impl Fn(&str) -> Option<Peer<'a>>,
    names: &[&str],
) -> Result<VaultFor, Problem> {
    let key = "vault_for.environments";
    let Some(mine) = me.account_id else {
        return Err(problem(
            "account_id",
            "a vault environment needs its account_id (quoted, 12 digits): its workloads share \
             their sets with that account",
        ));
    };
    if me.vault.is_some() {
        return Err(problem(
            "vault",
            "a vault environment cannot have a vault of its own; remove `vault:` here",
        ));
    }
    let reader = reader_role_name(me.stack_name);
    if reader.chars().count() > MAX_ROLE_NAME_CHARS {
        return Err(problem(
            "stack_name",
            format!(
                "the vault's reader role {reader:?} would be longer than IAM's \
                 {MAX_ROLE_NAME_CHARS} characters; choose a stack name of at most {} characters",
                MAX_ROLE_NAME_CHARS - READER_SUFFIX.len()
            ),
        ));
    }
    if raw.environments.is_empty() {
        return Err(problem(
            key,
            "is empty; name the workload environments this vault keeps",
        ));
    }
    let mut sources = Vec::new();
    let mut source_kms_keys = Vec::new();
    for name in &raw.environments {
        let Some(workload) = find(name).filter(|_| name != me.name) else {
            return Err(problem(
                key,
                format!(
                    "{name:?} is not another environment of this file; the environments are: {}",
                    names.join(", ")
                ),
            ));
        };
        let Some(account) = workload.account_id else {
            return Err(problem(
                key,
                format!(
                    "environment {name} has no account_id; give it its account's (quoted, 12 digits)"
                ),
            ));
        };
        if account == mine {
            return Err(problem(
                key,
                format!(
                    "environment {name} is in this vault's own account {mine}: a vault there \
                     protects nothing from that account's administrators; keep only other \
                     accounts' environments"
                ),
            ));
        }
        if workload.vault.is_none_or(|v| v.environment != me.name) {
            return Err(problem(
                key,
                format!(
                    "environment {name} does not name this vault: add `vault: {{environment: {}}}` \
                     to it",
                    me.name
                ),
            ));
        }
        let source = VaultSource {
            account: account.to_owned(),
            region: workload.region.to_owned(),
        };
        if !sources.contains(&source) {
            sources.push(source);
        }
        for key in workload.source_kms_keys {
            if !source_kms_keys.contains(key) {
                source_kms_keys.push(key.clone());
            }
        }
    }
    let partition = function::copies::partition_of_region(me.region);
    let prefix = format!("arn:{partition}:kms:{}:{mine}:key/", me.region);
    if !raw.kms_key.starts_with(&prefix) || raw.kms_key.len() == prefix.len() {
        return Err(problem(
            "vault_for.kms_key",
            format!(
                "{:?} is not a KMS key ARN of this vault's region and account ({prefix}<key id>): \
                 every copy is encrypted with it; create a customer managed key there and name it \
                 by its ARN",
                raw.kms_key
            ),
        ));
    }
    let keeper = VaultKeeper {
        sources,
        retention_days: raw.retention_days,
        kms_key: raw.kms_key.clone(),
        cool_off_hours: raw.cool_off_hours,
    };
    if let Some(why) = keeper.problem() {
        return Err(problem("vault_for", why));
    }
    Ok(VaultFor {
        environments: raw.environments.clone(),
        keeper,
        source_kms_keys,
    })
}

/// The lines `render` and `deploy` print for an environment's vault settings.
pub fn preview(vault: Option<&Vault>, vault_for: Option<&VaultFor>) -> String {
    let mut out = String::new();
    if let Some(vault) = vault {
        out.push_str(&format!(
            "vault: each completed set is shared with environment {} (account {}, {}), which \
             copies it with its own key and locks it; the share ends once it has; alarm when an \
             instance's sets wait more than {} h\n",
            vault.environment,
            vault.target.account,
            vault.target.region,
            vault.target.max_lag_hours
        ));
    }
    if let Some(keeper) = vault_for {
        let lock = match keeper.keeper.cool_off_hours {
            Some(hours) => format!("compliance mode after a {hours}-hour cooling-off"),
            None => "compliance mode at once".to_owned(),
        };
        let sources: Vec<String> = keeper
            .keeper
            .sources
            .iter()
            .map(|s| format!("{} in {}", s.account, s.region))
            .collect();
        out.push_str(&format!(
            "vault for {} ({}): copies kept {} days with {}, locked in {lock} until they \
             expire; nobody in those accounts can delete, unlock or shorten them\n",
            keeper.environments.join(", "),
            sources.join(", "),
            keeper.keeper.retention_days,
            keeper.keeper.kms_key
        ));
    }
    out
}

#[cfg(test)]
mod tests;
