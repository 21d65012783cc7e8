//! `cargo xtask promote`: the exact artifact a healthy source environment runs, deployed to the
//! target with the target's own settings. No build happens.

use crate::aws::artifact_store::{self, DownloadError};
use crate::aws::cfn::{self, StackView};
use crate::aws::{Aws, Connection};
use crate::build::package::{Artifact, sha256_hex};
use crate::config::access::Access;
use crate::config::{self, Environment};
use crate::output::Output;
use crate::workflows::deploy::{DeployResult, deploy};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::ExitCode;

/// Deploy the artifact a healthy source environment runs to a target environment; no build.
#[derive(Debug, clap::Args)]
pub struct Promote {
    /// The source environment.
    #[arg(long)]
    from: String,
    /// The target environment.
    #[arg(long)]
    to: String,
    /// The config file (default: smartvault.yaml at the workspace root).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
    /// A profile for the source's account (overrides the source environment's role_arn or
    /// profile in smartvault.yaml).
    #[arg(long)]
    from_profile: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Promote {
    pub fn run(self) -> Result<ExitCode> {
        let source = config::load(self.config.as_deref(), &self.from)?;
        let target = config::load(self.config.as_deref(), &self.to)?;
        // The source is read with its own credentials: --from-profile, else what its
        // environment names, else the same as the target's.
        let source_connection = Connection {
            profile: self.from_profile.clone().or_else(|| {
                (source.access == Access::Ambient)
                    .then(|| self.connection.profile.clone())
                    .flatten()
            }),
            region: None,
            endpoint_url: self.connection.endpoint_url.clone(),
        };
        let result = crate::aws::runtime()?.block_on(async {
            let source_aws =
                Aws::connect(&source_connection, &source.region, &source.access).await?;
            let target_aws = Aws::connect(&self.connection, &target.region, &target.access).await?;
            promote(
                &source_aws,
                &target_aws,
                &source,
                &target,
                self.yes,
                self.output,
            )
            .await
        })?;
        self.output.result(&result, |r| match &r.deploy {
            Deployed::Stack(deployed) => deployed.print(&target),
            Deployed::StackSet(deployed) => deployed.print(),
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What a promotion did, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct PromoteResult {
    pub from: String,
    pub to: String,
    pub source_stack: String,
    pub source_status: String,
    pub artifact_sha256: String,
    pub deploy: Deployed,
}

/// The target's deploy: its stack, or its stack set for an environment with `targets:`.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Deployed {
    Stack(DeployResult),
    StackSet(crate::workflows::organization::DeployResult),
}

/// The artifact a source stack runs, from its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceArtifact {
    pub status: String,
    pub bucket: String,
    pub key: String,
    pub sha256: String,
}

/// Decides whether a stack can be promoted from; pure, so every refusal is unit-tested.
pub fn source_artifact(stack: &str, described: Option<&StackView>) -> Result<SourceArtifact> {
    let Some(view) = described else {
        bail!(
            "source stack {stack} does not exist; deploy that environment first, then promote it"
        );
    };
    let status = &view.status;
    if !crate::stack::is_healthy(status) {
        bail!(
            "source stack {stack} is in {status}; promote only from a stack in CREATE_COMPLETE or \
             UPDATE_COMPLETE (fix or redeploy the source first)"
        );
    }
    let artifact = view.parameters.artifact().map_err(|missing| {
        anyhow::anyhow!(
            "source stack {stack} records no {missing}; it was not deployed by `cargo xtask deploy`"
        )
    })?;
    Ok(SourceArtifact {
        status: status.clone(),
        bucket: artifact.bucket,
        key: artifact.key,
        sha256: artifact.sha256,
    })
}

async fn promote(
    source_aws: &Aws,
    target_aws: &Aws,
    from: &Environment,
    to: &Environment,
    yes: bool,
    output: Output,
) -> Result<PromoteResult> {
    if from.architecture != to.architecture {
        bail!(
            "{} runs {} and {} runs {}: one artifact cannot serve both; align `architecture` in smartvault.yaml",
            from.name,
            from.architecture.lambda_name(),
            to.name,
            to.architecture.lambda_name()
        );
    }
    if from.targets.is_some() {
        bail!(
            "{} is an organization's environment (`targets:`); promote from the single-account \
             environment its artifact came from, e.g. `cargo xtask promote --from staging --to {}`",
            from.name,
            from.name
        );
    }
    // Both guards before anything changes.
    source_aws.check_account(from.account_id.as_deref()).await?;
    target_aws.check_account(to.account_id.as_deref()).await?;
    let described = cfn::describe(source_aws, &from.stack_name).await?;
    let source = source_artifact(&from.stack_name, described.as_ref())?;
    output.progress(format!(
        "promoting artifact {} from {} ({}, {}) to {}",
        &source.sha256[..12.min(source.sha256.len())],
        from.name,
        from.stack_name,
        source.status,
        to.name
    ));
    let artifact = format!("s3://{}/{}", source.bucket, source.key);
    let bytes = artifact_store::download(source_aws, &source.bucket, &source.key)
        .await
        .map_err(|error| match error {
            DownloadError::AccessDenied(error) => error.context(format!(
                "the artifact {artifact} of {} cannot be read: access denied; grant \
                 s3:GetObject on it to the credentials that read the source (the deployer \
                 policy, or docs/promotion-source-policy.json for another account)",
                from.stack_name
            )),
            DownloadError::Other(error) => error.context(format!(
                "the artifact {artifact} of {} cannot be read (was it deleted from the \
                 bucket?); redeploy {} and promote again",
                from.stack_name, from.name
            )),
        })?;
    let sha256 = sha256_hex(&bytes);
    if sha256 != source.sha256 {
        bail!(
            "the artifact s3://{}/{} has sha256 {sha256}, but {} records {}; refusing to promote bytes that were never deployed",
            source.bucket,
            source.key,
            from.stack_name,
            source.sha256
        );
    }
    let dir = crate::paths::environment(&to.name);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let path = dir.join(format!("promoted-{sha256}.zip"));
    std::fs::write(&path, &bytes)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    // The bytes the source runs must also run on the target.
    crate::build::package::check_architecture(&path, to.architecture)?;
    let artifact = Artifact {
        path,
        size: bytes.len() as u64,
        sha256,
    };
    // Deploy copies the artifact into the target's bucket when it is not already there (another
    // account or region), with the target's credentials, and verifies the bytes there.
    let deploy = match &to.targets {
        Some(targets) => Deployed::StackSet(
            crate::workflows::organization::deploy(target_aws, to, targets, &artifact, yes, output)
                .await?,
        ),
        None => Deployed::Stack(deploy(target_aws, to, &artifact, yes, output).await?),
    };
    Ok(PromoteResult {
        from: from.name.clone(),
        to: to.name.clone(),
        source_stack: from.stack_name.clone(),
        source_status: source.status,
        artifact_sha256: artifact.sha256,
        deploy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::parameters::StackParameters;

    fn stack(status: &str) -> StackView {
        StackView {
            name: "s".into(),
            status: status.into(),
            parameters: StackParameters {
                artifact_bucket: Some("b".into()),
                artifact_key: Some("artifacts/x.zip".into()),
                artifact_sha256: Some("ab".into()),
                ..StackParameters::default()
            },
            outputs: Default::default(),
            termination_protection: false,
        }
    }

    #[test]
    fn a_healthy_stack_gives_its_artifact() {
        let source = source_artifact("s", Some(&stack("UPDATE_COMPLETE"))).unwrap();
        assert_eq!(
            (
                source.bucket.as_str(),
                source.key.as_str(),
                source.sha256.as_str()
            ),
            ("b", "artifacts/x.zip", "ab")
        );
    }

    #[test]
    fn missing_unhealthy_and_foreign_stacks_are_refused_with_the_reason() {
        let missing = source_artifact("s", None).unwrap_err().to_string();
        assert!(
            missing.contains("does not exist; deploy that environment first"),
            "{missing}"
        );
        for status in [
            "UPDATE_ROLLBACK_COMPLETE",
            "ROLLBACK_COMPLETE",
            "UPDATE_IN_PROGRESS",
            "REVIEW_IN_PROGRESS",
        ] {
            let refused = source_artifact("s", Some(&stack(status)))
                .unwrap_err()
                .to_string();
            assert!(
                refused.contains(status) && refused.contains("promote only from"),
                "{refused}"
            );
        }
        let mut foreign = stack("CREATE_COMPLETE");
        foreign.parameters.artifact_sha256 = None;
        let refused = source_artifact("s", Some(&foreign))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("records no ArtifactSha256"), "{refused}");
    }
}
