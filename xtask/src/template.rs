//! The CloudFormation templates in templates/ and the parameters deploy supplies to them.

use crate::config::Environment;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The bootstrap stack every environment of an account and region shares.
pub const BOOTSTRAP_STACK: &str = "smartvault-bootstrap";
/// The version recorded in every stack.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the deployed zip lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLocation {
    pub bucket: String,
    pub key: String,
    pub sha256: String,
}

/// A template with the parameters to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

pub fn templates_dir() -> PathBuf {
    emulator::workspace_root().join("templates")
}

pub fn read_template(name: &str) -> Result<String> {
    let path = templates_dir().join(name);
    std::fs::read_to_string(&path).with_context(|| format!("failed to read `{}`", path.display()))
}

/// The parameters of the main template for `env`.
pub fn parameters(env: &Environment, artifact: &ArtifactLocation) -> BTreeMap<String, String> {
    let email = |i: usize| env.notification_emails.get(i).cloned().unwrap_or_default();
    let pairs = [
        ("DeploymentName", env.stack_name.clone()),
        ("ArtifactBucket", artifact.bucket.clone()),
        ("ArtifactKey", artifact.key.clone()),
        ("ArtifactSha256", artifact.sha256.clone()),
        ("SmartVaultVersion", VERSION.to_owned()),
        ("Architecture", env.architecture.lambda_name().to_owned()),
        ("MemorySize", env.memory_mb.to_string()),
        ("Timeout", env.timeout_seconds.to_string()),
        ("LogRetentionDays", env.log_retention_days.to_string()),
        (
            "ReservedConcurrency",
            env.reserved_concurrency.unwrap_or(0).to_string(),
        ),
        ("Schedule", env.schedule.clone()),
        ("NotificationEmail1", email(0)),
        ("NotificationEmail2", email(1)),
        ("NotificationEmail3", email(2)),
        ("BackupTagKey", env.backup_tag_key.clone()),
        ("BackupTagValue", env.backup_tag_value.clone()),
        ("RetentionDays", env.retention_days.to_string()),
        ("KeepLast", env.keep_last.to_string()),
        ("ExcludeBootVolume", env.exclude_boot_volume.to_string()),
        ("MinIntervalMinutes", env.min_interval_minutes.to_string()),
        ("MaxConcurrency", env.max_concurrency.to_string()),
        ("DryRun", env.dry_run.to_string()),
        ("Ec2RateShare", env.ec2_rate_share.to_string()),
        ("Ec2RefillPerSecond", env.ec2_refill_per_second.to_string()),
        ("MaxLinks", env.max_links.to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
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
    let parameters = parameters(env, artifact);
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
             `template::parameters` in xtask/src/template.rs"
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
    let dir = emulator::workspace_root()
        .join("target")
        .join("smartvault")
        .join(&env.name);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let write = |name: &str, text: &str| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))
    };
    write("template.yaml", &rendered.body)?;
    write("bootstrap.yaml", &read_template("bootstrap.yaml")?)?;
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
        Some(path) => crate::package::open(path)?.sha256,
        None => "0".repeat(64),
    };
    Ok(ArtifactLocation {
        bucket: bucket
            .unwrap_or("smartvault-bootstrap-artifact-bucket")
            .to_owned(),
        key: crate::package::artifact_key(&sha256),
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        crate::config::parse(
            include_str!("../../smartvault.yaml"),
            "smartvault.yaml",
            "prod",
        )
        .unwrap()
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
        let supplied: BTreeSet<String> = parameters(&env(), &location()).into_keys().collect();
        assert_eq!(declared, supplied);
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
        let p = parameters(&env(), &location());
        assert_eq!(p["NotificationEmail1"], "ops@example.com");
        assert_eq!(p["NotificationEmail2"], "oncall@example.com");
        assert_eq!(p["NotificationEmail3"], "");
        assert_eq!(p["ReservedConcurrency"], "1");
        assert_eq!(p["DeploymentName"], "smartvault-prod");
    }
}
