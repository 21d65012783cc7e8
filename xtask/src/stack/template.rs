//! The CloudFormation templates in templates/ and the parameters deploy supplies to them.

use crate::config::Environment;
pub use crate::stack::parameters::ArtifactLocation;
use crate::stack::parameters::StackParameters;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The bootstrap stack every environment of an account and region shares.
pub const BOOTSTRAP_STACK: &str = "smartvault-bootstrap";
/// The templates an environment with `targets:` adds to the rendered folder.
pub const ORGANIZATION_TEMPLATES: [&str; 3] = [
    "organization.yaml",
    "stackset-roles.yaml",
    "central-topic.yaml",
];
/// The version recorded in every stack.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A template with the parameters to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

pub fn templates_dir() -> PathBuf {
    crate::paths::templates()
}

pub fn read_template(name: &str) -> Result<String> {
    let path = templates_dir().join(name);
    std::fs::read_to_string(&path).with_context(|| format!("failed to read `{}`", path.display()))
}

/// The one inline policy of role `role` in template `name`, in long form (intrinsic functions
/// as `{"Fn::Sub": ...}`, `{"Ref": ...}`).
pub fn inline_policy(name: &str, role: &str) -> Result<serde_json::Value> {
    let body = read_template(name)?;
    let value: serde_norway::Value =
        serde_norway::from_str(&body).with_context(|| format!("templates/{name} is not YAML"))?;
    let policies = value["Resources"][role]["Properties"]["Policies"]
        .as_sequence()
        .filter(|p| p.len() == 1)
        .with_context(|| format!("templates/{name}: {role} has not exactly one inline policy"))?;
    Ok(long_form(&policies[0]["PolicyDocument"]))
}

/// The main template's consistency policy as IAM would hold it: its `!Sub` text (a string, so
/// the backup tag's key can name a condition key) with `values` (name → value) and the
/// documents' ARNs in `${Documents}`.
pub fn consistency_policy(
    values: &[(&str, &str)],
    documents: &[String],
) -> Result<serde_json::Value> {
    let body = read_template("smartvault.yaml")?;
    let template: serde_norway::Value = serde_norway::from_str(&body)?;
    let document = &template["Resources"]["ConsistencyPolicy"]["Properties"]["PolicyDocument"];
    let serde_norway::Value::Tagged(sub) = document else {
        bail!("ConsistencyPolicy's PolicyDocument is not a !Sub");
    };
    let mut text = sub.value[0]
        .as_str()
        .context("ConsistencyPolicy's !Sub has no text")?
        .to_owned();
    text = text.replace("${Documents}", &documents.join("\", \""));
    for (name, value) in values {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    serde_json::from_str(&text).with_context(|| format!("ConsistencyPolicy is not JSON: {text}"))
}

/// A template value (a policy, say) with its CloudFormation expressions (`Fn::Sub` with
/// `${name}` variables, `Ref`) resolved from `values` (name → value), as the deployed stack
/// would hold it. A `Ref` to an unknown name becomes `unresolved-<name>`, an unknown `${name}`
/// stays as written.
pub fn resolve(value: &serde_json::Value, values: &[(&str, &str)]) -> serde_json::Value {
    let lookup = |name: &str| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| format!("unresolved-{name}"), |(_, v)| (*v).to_owned())
    };
    match value {
        serde_json::Value::Object(map) if map.contains_key("Fn::Sub") => {
            let mut text = map["Fn::Sub"].as_str().unwrap_or_default().to_owned();
            for (name, resolved) in values {
                text = text.replace(&format!("${{{name}}}"), resolved);
            }
            text.into()
        }
        serde_json::Value::Object(map) if map.contains_key("Ref") => {
            lookup(map["Ref"].as_str().unwrap_or_default()).into()
        }
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), resolve(v, values)))
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(|v| resolve(v, values)).collect(),
        other => other.clone(),
    }
}

/// The parameters of the main template for `env`.
pub fn parameters(env: &Environment, artifact: &ArtifactLocation) -> StackParameters {
    let email = |i: usize| Some(env.notification_emails.get(i).cloned().unwrap_or_default());
    let text = |value: &dyn ToString| Some(value.to_string());
    // An unused slot has an empty name, and the template's conditions leave its resources
    // out; its other values are the template's placeholders. A window of 0 is exact.
    let unused = crate::config::schedules::Schedule {
        archive_after_days: None,
        fast_restore: None,
        name: String::new(),
        expression: "rate(1 day)".to_owned(),
        timezone: "UTC".to_owned(),
        retention_days: 1,
        keep_last: 0,
        flexible_window_minutes: None,
        lock: None,
        consistency: None,
    };
    let slot = |index: usize, field: fn(&crate::config::schedules::Schedule) -> String| {
        Some(field(env.schedules.get(index).unwrap_or(&unused)))
    };
    let window =
        |s: &crate::config::schedules::Schedule| s.flexible_window_minutes.unwrap_or(0).to_string();
    // An unused slot's alarm is left out with it; its threshold is a placeholder.
    let overdue = |index: usize| {
        Some(
            env.schedules
                .get(index)
                .map_or(1, |s| s.overdue_after_hours(env.overdue_grace_hours))
                .to_string(),
        )
    };
    StackParameters {
        deployment_name: text(&env.stack_name),
        artifact_bucket: text(&artifact.bucket),
        // A stack set's instances read `<bucket>-<their region>` and, in accounts without a
        // bootstrap stack, create their roles without its boundary.
        artifact_bucket_per_region: text(&env.targets.is_some()),
        use_bootstrap_boundary: text(&env.targets.is_none()),
        // Known once the central topic's stack exists: an organization's deploy sets it.
        central_topic_arn: text(&""),
        artifact_key: text(&artifact.key),
        artifact_sha256: text(&artifact.sha256),
        smartvault_version: text(&VERSION),
        architecture: text(&env.architecture.lambda_name()),
        memory_size: text(&env.memory_mb),
        timeout: text(&env.timeout_seconds),
        log_retention_days: text(&env.log_retention_days),
        reserved_concurrency: text(&env.reserved_concurrency.unwrap_or(0)),
        notification_email_1: email(0),
        notification_email_2: email(1),
        notification_email_3: email(2),
        backup_tag_key: text(&env.backup_tag_key),
        backup_tag_value: text(&env.backup_tag_value),
        schedules: text(&crate::config::schedules::function_variable(
            &env.schedules,
            env.overdue_grace_hours,
        )),
        overdue_alarm_hours: text(
            &crate::config::schedules::alarm_window_hours(&env.schedules, env.overdue_grace_hours)
                .unwrap_or(0),
        ),
        schedule_1_name: slot(0, |s| s.name.clone()),
        schedule_1_expression: slot(0, |s| s.expression.clone()),
        schedule_1_timezone: slot(0, |s| s.timezone.clone()),
        schedule_1_window: slot(0, window),
        schedule_1_overdue_hours: overdue(0),
        schedule_2_name: slot(1, |s| s.name.clone()),
        schedule_2_expression: slot(1, |s| s.expression.clone()),
        schedule_2_timezone: slot(1, |s| s.timezone.clone()),
        schedule_2_window: slot(1, window),
        schedule_2_overdue_hours: overdue(1),
        schedule_3_name: slot(2, |s| s.name.clone()),
        schedule_3_expression: slot(2, |s| s.expression.clone()),
        schedule_3_timezone: slot(2, |s| s.timezone.clone()),
        schedule_3_window: slot(2, window),
        schedule_3_overdue_hours: overdue(2),
        schedule_4_name: slot(3, |s| s.name.clone()),
        schedule_4_expression: slot(3, |s| s.expression.clone()),
        schedule_4_timezone: slot(3, |s| s.timezone.clone()),
        schedule_4_window: slot(3, window),
        schedule_4_overdue_hours: overdue(3),
        recycle_bin_days: text(&env.recycle_bin_days.unwrap_or(0)),
        recycle_bin_unlock_delay_days: text(&env.recycle_bin_unlock_delay_days.unwrap_or(0)),
        copies: text(&crate::config::copies_variable(&env.copies)),
        source_kms_key_arns: text(&env.source_kms_keys.join(",")),
        copy_1_region: copy_slot(env, 0, |c| c.region.clone()),
        copy_1_kms_key_arn: copy_slot(env, 0, kms_key_arn),
        copy_1_kms_alias: copy_slot(env, 0, kms_alias),
        copy_2_region: copy_slot(env, 1, |c| c.region.clone()),
        copy_2_kms_key_arn: copy_slot(env, 1, kms_key_arn),
        copy_2_kms_alias: copy_slot(env, 1, kms_alias),
        copy_3_region: copy_slot(env, 2, |c| c.region.clone()),
        copy_3_kms_key_arn: copy_slot(env, 2, kms_key_arn),
        copy_3_kms_alias: copy_slot(env, 2, kms_alias),
        vault: text(&vars_of(env, function::config::VAULT)),
        vault_reader_role_arn: text(
            &env.vault
                .as_ref()
                .map(|v| v.target.reader_role.clone())
                .unwrap_or_default(),
        ),
        vault_max_lag_hours: text(
            &env.vault
                .as_ref()
                .map_or(function::vault::DEFAULT_MAX_LAG_HOURS, |v| {
                    v.target.max_lag_hours
                }),
        ),
        vault_for: text(&vars_of(env, function::config::VAULT_FOR)),
        tripwire: text(&vars_of(env, function::config::TRIPWIRE)),
        tripwire_sample_blocks: text(&env.tripwire.map_or(0, |t| t.sample_blocks)),
        environment_name: text(&env.name),
        fast_restore: text(&env.schedules.iter().any(|s| s.fast_restore.is_some())),
        ship_freeze_document: text(&crate::config::schedules::ships_freeze_document(
            &env.schedules,
        )),
        consistency_documents: text(
            &crate::config::schedules::consistency_documents(
                &env.schedules,
                &env.region,
                env.account_id.as_deref(),
            )
            .join(","),
        ),
        vault_kms_key_arn: text(
            &env.vault_for
                .as_ref()
                .map(|v| v.keeper.kms_key.clone())
                .unwrap_or_default(),
        ),
        vault_source_snapshots: text(&vault_copy_resources(env)),
        vault_reader_principals: text(&vault_sources(env, |partition, source| {
            format!("arn:{partition}:iam::{}:root", source.account)
        })),
        vault_source_kms_key_arns: text(
            &env.vault_for
                .as_ref()
                .map(|v| v.source_kms_keys.join(","))
                .unwrap_or_default(),
        ),
        restore_test: text(&crate::config::restore_test::function_variable(
            env.restore_test.as_ref(),
        )),
        restore_test_expression: Some(
            env.restore_test
                .as_ref()
                .map(|t| t.expression.clone())
                .unwrap_or_default(),
        ),
        restore_test_timezone: Some(
            env.restore_test
                .as_ref()
                .map_or_else(|| "UTC".to_owned(), |t| t.timezone.clone()),
        ),
        exclude_boot_volume: text(&env.exclude_boot_volume),
        min_interval_minutes: text(&env.min_interval_minutes),
        max_concurrency: text(&env.max_concurrency),
        dry_run: text(&env.dry_run),
        ec2_rate_share: text(&env.ec2_rate_share),
        ec2_refill_per_second: text(&env.ec2_refill_per_second),
        max_links: text(&env.max_links),
    }
}

/// A function variable as the template sets it.
fn vars_of(env: &Environment, variable: &str) -> String {
    crate::config::function_environment(env, "")
        .remove(variable)
        .unwrap_or_default()
}

/// What a vault's `CopySnapshot` acts on: the snapshots of each source region and of its own.
fn vault_copy_resources(env: &Environment) -> String {
    if env.vault_for.is_none() {
        return String::new();
    }
    let partition = function::copies::partition_of_region(&env.region);
    let own = format!("arn:{partition}:ec2:{}::snapshot/*", env.region);
    let sources = vault_sources(env, |partition, source| {
        format!("arn:{partition}:ec2:{}::snapshot/*", source.region)
    });
    if sources.split(',').any(|s| s == own) {
        sources
    } else {
        format!("{sources},{own}")
    }
}

/// One entry per distinct value `entry` makes of a vault's sources, comma-separated (empty when
/// this is no vault).
fn vault_sources(
    env: &Environment,
    entry: impl Fn(&str, &function::vault::VaultSource) -> String,
) -> String {
    let Some(vault_for) = &env.vault_for else {
        return String::new();
    };
    let partition = function::copies::partition_of_region(&env.region);
    let mut entries: Vec<String> = Vec::new();
    for source in &vault_for.keeper.sources {
        let made = entry(partition, source);
        if !entries.contains(&made) {
            entries.push(made);
        }
    }
    entries.join(",")
}

/// One copy slot's value, or empty when the environment has fewer copy regions (the
/// template's conditions leave the slot's resources out).
fn copy_slot(
    env: &Environment,
    index: usize,
    field: fn(&function::model::CopyRule) -> String,
) -> Option<String> {
    Some(env.copies.get(index).map(field).unwrap_or_default())
}

/// A copy rule's key when given as a key ARN; the IAM policy names it as the resource.
fn kms_key_arn(rule: &function::model::CopyRule) -> String {
    rule.kms_key
        .clone()
        .filter(|key| key.contains(":key/"))
        .unwrap_or_default()
}

/// A copy rule's key when given as an alias (`alias/<name>`, or an alias ARN): IAM cannot name
/// an alias as a resource, so the policy allows the region's keys that carry it
/// (`kms:ResourceAliases`).
fn kms_alias(rule: &function::model::CopyRule) -> String {
    rule.kms_key
        .as_deref()
        .and_then(|key| key.find("alias/").map(|at| key[at..].to_owned()))
        .unwrap_or_default()
}

/// Stack tags: CloudFormation copies them onto every resource that takes tags.
pub fn stack_tags(env: &Environment) -> BTreeMap<String, String> {
    let mut tags = env.tags.clone();
    tags.insert("smartvault:environment".into(), env.name.clone());
    tags
}

/// Renders the main template for `env`, checking the parameters against the declarations.
pub fn render(env: &Environment, artifact: &ArtifactLocation) -> Result<Rendered> {
    let body = read_template("smartvault.yaml")?;
    let parameters = parameters(env, artifact).to_cfn();
    check_parameters(&body, &parameters).context("templates/smartvault.yaml")?;
    Ok(Rendered {
        body,
        parameters,
        tags: stack_tags(env),
    })
}

/// The declared parameters of a template, with whether each has a default.
pub fn declared_parameters(body: &str) -> Result<BTreeMap<String, bool>> {
    let value: serde_norway::Value =
        serde_norway::from_str(body).context("the template is not valid YAML")?;
    let mut declared = BTreeMap::new();
    if let Some(parameters) = value.get("Parameters").and_then(|p| p.as_mapping()) {
        for (name, spec) in parameters {
            let name = name.as_str().unwrap_or_default().to_owned();
            declared.insert(name, spec.get("Default").is_some());
        }
    }
    Ok(declared)
}

/// Fails when a supplied parameter is not declared, or a declared one without a default is not
/// supplied: the two must never drift apart.
pub fn check_parameters(body: &str, supplied: &BTreeMap<String, String>) -> Result<()> {
    let declared = declared_parameters(body)?;
    let unknown: BTreeSet<&String> = supplied
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .collect();
    let missing: BTreeSet<&String> = declared
        .iter()
        .filter(|(name, has_default)| !**has_default && !supplied.contains_key(*name))
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the template needs parameter(s) {missing:?} that deploy does not supply; add them to \
             `StackParameters` in xtask/src/stack/parameters.rs and set them in `template::parameters`"
        );
    }
    if !unknown.is_empty() {
        bail!(
            "deploy supplies parameter(s) {unknown:?} that the template does not declare; declare them \
             under Parameters in templates/ or stop supplying them"
        );
    }
    Ok(())
}

/// Writes what deploy sends to `target/smartvault/<env>/`, and returns that folder.
pub fn write_rendered(env: &Environment, rendered: &Rendered) -> Result<PathBuf> {
    let dir = crate::paths::environment(&env.name);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let write = |name: &str, text: &str| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))
    };
    write("template.yaml", &rendered.body)?;
    write("bootstrap.yaml", &read_template("bootstrap.yaml")?)?;
    // An organization's environment: its artifact buckets and, for accounts, the StackSet roles.
    for name in ORGANIZATION_TEMPLATES {
        let path = dir.join(name);
        if env.targets.is_some() {
            write(name, &read_template(name)?)?;
        } else if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("failed to remove `{}`", path.display()))?;
        }
    }
    let as_cli = |map: &BTreeMap<String, String>, k: &str, v: &str| -> serde_json::Value {
        map.iter()
            .map(|(key, value)| serde_json::json!({ k: key, v: value }))
            .collect()
    };
    write(
        "parameters.json",
        &serde_json::to_string_pretty(&as_cli(
            &rendered.parameters,
            "ParameterKey",
            "ParameterValue",
        ))?,
    )?;
    write(
        "tags.json",
        &serde_json::to_string_pretty(&as_cli(&rendered.tags, "Key", "Value"))?,
    )?;
    Ok(dir)
}

/// The placeholder location `render` uses before anything is deployed.
pub fn offline_location(
    artifact_zip: Option<&Path>,
    bucket: Option<&str>,
) -> Result<ArtifactLocation> {
    let sha256 = match artifact_zip {
        Some(path) => crate::build::package::open(path)?.sha256,
        None => "0".repeat(64),
    };
    Ok(ArtifactLocation {
        bucket: bucket
            .unwrap_or("smartvault-bootstrap-artifact-bucket")
            .to_owned(),
        key: crate::build::package::artifact_key(&sha256),
        sha256,
    })
}

/// A template value in CloudFormation's JSON long form (`!Ref X` becomes `{"Ref": "X"}`);
/// a non-string key or an unrepresentable scalar (never in SmartVault's templates) reads as empty.
pub fn long_form(value: &serde_norway::Value) -> serde_json::Value {
    match value {
        serde_norway::Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = long_form(&tagged.value);
            match (tag, inner) {
                ("Ref", inner) => serde_json::json!({ "Ref": inner }),
                ("GetAtt", serde_json::Value::String(s)) => {
                    let parts: Vec<&str> = s.splitn(2, '.').collect();
                    serde_json::json!({ "Fn::GetAtt": parts })
                }
                (other, inner) => serde_json::json!({ format!("Fn::{other}"): inner }),
            }
        }
        serde_norway::Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), long_form(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_norway::Value::Sequence(items) => items.iter().map(long_form).collect(),
        other => serde_json::to_value(other).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        crate::config::example("prod")
    }

    fn location() -> ArtifactLocation {
        ArtifactLocation {
            bucket: "b".into(),
            key: "artifacts/x.zip".into(),
            sha256: "a".repeat(64),
        }
    }

    #[test]
    fn the_supplied_parameters_are_exactly_the_declared_ones() {
        let body = read_template("smartvault.yaml").unwrap();
        let declared: BTreeSet<String> = declared_parameters(&body).unwrap().into_keys().collect();
        let supplied: BTreeSet<String> = parameters(&env(), &location())
            .to_cfn()
            .into_keys()
            .collect();
        assert_eq!(declared, supplied);
        let every: BTreeSet<String> = StackParameters::NAMES
            .iter()
            .map(|n| (*n).to_owned())
            .collect();
        assert_eq!(
            supplied, every,
            "deploy sets every parameter the type knows"
        );
        render(&env(), &location()).unwrap();
    }

    #[test]
    fn drift_either_way_is_an_error_naming_the_parameter() {
        let body = "Parameters:\n  A:\n    Type: String\n  B:\n    Type: String\n    Default: x\n";
        let supplied = |keys: &[&str]| {
            keys.iter()
                .map(|k| (k.to_string(), String::new()))
                .collect()
        };
        check_parameters(body, &supplied(&["A"])).unwrap();
        check_parameters(body, &supplied(&["A", "B"])).unwrap();
        let missing = check_parameters(body, &supplied(&["B"]))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("{\"A\"}") && missing.contains("does not supply"),
            "{missing}"
        );
        let unknown = check_parameters(body, &supplied(&["A", "C"]))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("{\"C\"}") && unknown.contains("does not declare"),
            "{unknown}"
        );
    }

    #[test]
    fn emails_fill_the_numbered_parameters() {
        let p = parameters(&env(), &location()).to_cfn();
        assert_eq!(p["NotificationEmail1"], "ops@example.com");
        assert_eq!(p["NotificationEmail2"], "oncall@example.com");
        assert_eq!(p["NotificationEmail3"], "");
        assert_eq!(
            p["ReservedConcurrency"], "0",
            "no reservation: a new account cannot make one"
        );
        assert_eq!(p["DeploymentName"], "smartvault-prod");
    }
}
