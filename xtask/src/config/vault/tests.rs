//! The vault settings of smartvault.yaml: read both ways, turned into the function's variables,
//! previewed, and every mistake refused with the key and the fix.

use crate::config::{function_environment, parse};

const FILE: &str = "smartvault.yaml";
const KEY: &str = "arn:aws:kms:us-west-2:222222222222:key/vault";
const SOURCE_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/cmk";

/// A workload `prod` in account 1234... and a vault `vault` in 2222..., with `prod_extra` and
/// `vault_extra` added to each.
fn file(prod_extra: &str, vault_extra: &str) -> String {
    format!(
        "environments:\n  prod:\n    region: eu-west-1\n    account_id: \"123456789012\"\n    \
         notification_emails: [ops@example.com]\n    source_kms_keys: [\"{SOURCE_KEY}\"]\n{prod_extra}  \
         vault:\n    region: us-west-2\n    account_id: \"222222222222\"\n    \
         notification_emails: [security@example.com]\n{vault_extra}"
    )
}

const PROD_VAULT: &str = "    vault:\n      environment: vault\n";
fn vault_for(extra: &str) -> String {
    format!(
        "    vault_for:\n      environments: [prod]\n      retention_days: 90\n      kms_key: \"{KEY}\"\n{extra}"
    )
}

#[test]
fn a_workload_and_its_vault_resolve_each_other_into_the_functions_variables() {
    let text = file(PROD_VAULT, &vault_for("      cool_off_hours: 24\n"));
    let prod = parse(&text, FILE, "prod").unwrap();
    let vault = prod.vault.as_ref().unwrap();
    assert_eq!(vault.target.account, "222222222222");
    assert_eq!(vault.target.region, "us-west-2");
    assert_eq!(
        vault.target.reader_role,
        "arn:aws:iam::222222222222:role/smartvault-vault-reader"
    );
    assert_eq!(vault.target.max_lag_hours, 36);
    assert_eq!(vault.target.shareable_keys, [SOURCE_KEY]);
    assert_eq!(
        vault.target.vault_retention_days,
        Some(90),
        "older sets the vault would not keep are not offered"
    );
    let vars = function_environment(&prod, "arn:aws:sns:eu-west-1:123456789012:t");
    let read: function::vault::VaultTarget =
        serde_json::from_str(&vars[function::config::VAULT]).unwrap();
    assert_eq!(
        read, vault.target,
        "the function reads back what was validated"
    );
    assert_eq!(vars[function::config::VAULT_FOR], "");

    let keeper = parse(&text, FILE, "vault").unwrap();
    let kept = keeper.vault_for.as_ref().unwrap();
    assert_eq!(kept.keeper.sources.len(), 1);
    assert_eq!(kept.keeper.sources[0].account, "123456789012");
    assert_eq!(kept.keeper.sources[0].region, "eu-west-1");
    assert_eq!(kept.keeper.cool_off_hours, Some(24));
    assert_eq!(kept.source_kms_keys, [SOURCE_KEY]);
    let vars = function_environment(&keeper, "arn:aws:sns:us-west-2:222222222222:t");
    let read: function::vault::VaultKeeper =
        serde_json::from_str(&vars[function::config::VAULT_FOR]).unwrap();
    assert_eq!(read, kept.keeper);

    let now = time::OffsetDateTime::now_utc();
    let preview = prod.schedule_preview(now);
    assert!(
        preview.contains("vault: each completed set is shared with environment vault (account 222222222222, us-west-2)")
            && preview.contains("more than 36 h"),
        "{preview}"
    );
    let preview = keeper.schedule_preview(now);
    assert!(
        preview.contains("vault for prod (123456789012 in eu-west-1): copies kept 90 days")
            && preview.contains("compliance mode after a 24-hour cooling-off"),
        "{preview}"
    );
}

#[test]
fn every_vault_mistake_is_refused_with_its_key_and_fix() {
    let same_account = file(PROD_VAULT, &vault_for("")).replace(
        "account_id: \"222222222222\"",
        "account_id: \"123456789012\"",
    );
    let cases: Vec<(String, &str, &str)> = vec![
        (
            same_account.replace(
                &format!("kms_key: \"{KEY}\""),
                "kms_key: \"arn:aws:kms:us-west-2:123456789012:key/vault\"",
            ),
            "prod",
            "environments.prod.vault.environment: environment vault is in this environment's own account 123456789012: a vault there protects nothing",
        ),
        (
            file("    vault:\n      environment: prod\n", &vault_for("")),
            "prod",
            "vault.environment: names this environment itself",
        ),
        (
            file("    vault:\n      environment: nowhere\n", &vault_for("")),
            "prod",
            "vault.environment: \"nowhere\" is not an environment of this file; the environments are: prod, vault",
        ),
        (
            file(PROD_VAULT, ""),
            "prod",
            "environment vault does not keep this one: add `prod` to its vault_for.environments",
        ),
        (
            file(PROD_VAULT, &vault_for("")).replace("    account_id: \"123456789012\"\n", ""),
            "prod",
            "environments.prod.account_id: an environment with a vault needs its account_id",
        ),
        (
            file("", &vault_for("")),
            "vault",
            "environment prod does not name this vault: add `vault: {environment: vault}` to it",
        ),
        (
            file(PROD_VAULT, &vault_for("")).replace(&format!("\"{KEY}\""), "alias/vault"),
            "vault",
            "vault_for.kms_key: \"alias/vault\" is not a KMS key ARN of this vault's region and account (arn:aws:kms:us-west-2:222222222222:key/<key id>)",
        ),
        (
            file(PROD_VAULT, &vault_for("")).replace("retention_days: 90", "retention_days: 1"),
            "vault",
            "environments.vault.vault_for: vault_for: ",
        ),
        (
            file(PROD_VAULT, &vault_for("      cool_off_hours: 73\n")),
            "vault",
            "environments.vault.vault_for: vault_for: ",
        ),
        (
            file(PROD_VAULT, &vault_for(""))
                .replace("environments: [prod]", "environments: [vault]"),
            "vault",
            "vault_for.environments: \"vault\" is not another environment of this file",
        ),
        (
            file(
                "    vault:\n      environment: vault\n      max_lag_hours: 0\n",
                &vault_for(""),
            ),
            "prod",
            "environments.prod.vault: vault.max_lag_hours 0 is not 1 to 8760",
        ),
        (
            file(
                "    vault:\n      environment: vault\n      lag: 3\n",
                &vault_for(""),
            ),
            "prod",
            "unknown field `lag`",
        ),
    ];
    for (text, env, expected) in cases {
        let error = parse(&text, FILE, env).unwrap_err().to_string();
        assert!(
            error.contains(expected),
            "expected {expected:?} in: {error}"
        );
    }
}

#[test]
fn the_stack_parameters_name_the_vaults_sources_readers_and_keys() {
    let text = file(PROD_VAULT, &vault_for(""));
    let location = crate::stack::parameters::ArtifactLocation {
        bucket: "b".into(),
        key: "k".into(),
        sha256: "s".into(),
    };
    let vault =
        crate::stack::template::parameters(&parse(&text, FILE, "vault").unwrap(), &location);
    assert_eq!(
        vault.vault_source_snapshots.as_deref(),
        Some("arn:aws:ec2:eu-west-1::snapshot/*,arn:aws:ec2:us-west-2::snapshot/*"),
        "each source region's snapshots and the vault's own region's"
    );
    assert_eq!(
        vault.vault_reader_principals.as_deref(),
        Some("arn:aws:iam::123456789012:root")
    );
    assert_eq!(vault.vault_kms_key_arn.as_deref(), Some(KEY));
    assert_eq!(vault.vault_source_kms_key_arns.as_deref(), Some(SOURCE_KEY));
    assert_eq!(
        vault.vault_reader_role_arn.as_deref(),
        Some(""),
        "a vault has no vault"
    );
    let prod = crate::stack::template::parameters(&parse(&text, FILE, "prod").unwrap(), &location);
    assert_eq!(
        prod.vault_reader_role_arn.as_deref(),
        Some("arn:aws:iam::222222222222:role/smartvault-vault-reader")
    );
    assert_eq!(prod.vault_max_lag_hours.as_deref(), Some("36"));
    assert_eq!(prod.vault_source_snapshots.as_deref(), Some(""));
    assert_eq!(
        prod.vault_kms_key_arn.as_deref(),
        Some(""),
        "a workload is no vault"
    );
}
