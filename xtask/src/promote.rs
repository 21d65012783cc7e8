//! `cargo xtask promote`: the exact artifact a healthy source environment runs, deployed to the
//! target with the target's own settings. No build happens.

use crate::aws::{Aws, sdk_error};
use crate::config::Environment;
use crate::deploy::DeployResult;
use crate::destroy::stack_parameters;
use crate::output::Output;
use crate::package::{Artifact, sha256_hex};
use anyhow::{Context, Result, bail};
use aws_sdk_s3::error::ProvideErrorMetadata;

/// What a promotion did, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct PromoteResult {
    pub from: String,
    pub to: String,
    pub source_stack: String,
    pub source_status: String,
    pub artifact_sha256: String,
    pub deploy: DeployResult,
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
pub fn source_artifact(
    stack: &str,
    described: Option<(String, std::collections::BTreeMap<String, String>)>,
) -> Result<SourceArtifact> {
    let Some((status, parameters)) = described else {
        bail!(
            "source stack {stack} does not exist; deploy that environment first, then promote it"
        );
    };
    if !crate::stack::is_healthy(&status) {
        bail!(
            "source stack {stack} is in {status}; promote only from a stack in CREATE_COMPLETE or \
             UPDATE_COMPLETE (fix or redeploy the source first)"
        );
    }
    let get = |key: &str| {
        parameters.get(key).cloned().with_context(|| {
            format!(
                "source stack {stack} records no {key}; it was not deployed by `cargo xtask deploy`"
            )
        })
    };
    Ok(SourceArtifact {
        status,
        bucket: get("ArtifactBucket")?,
        key: get("ArtifactKey")?,
        sha256: get("ArtifactSha256")?,
    })
}

pub async fn promote(
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
    // Both guards before anything changes.
    source_aws.check_account(from.account_id.as_deref()).await?;
    target_aws.check_account(to.account_id.as_deref()).await?;
    let described = stack_parameters(source_aws, &from.stack_name)
        .await?
        .map(|(status, parameters, _)| (status, parameters));
    let source = source_artifact(&from.stack_name, described)?;
    output.progress(format!(
        "promoting artifact {} from {} ({}, {}) to {}",
        &source.sha256[..12.min(source.sha256.len())],
        from.name,
        from.stack_name,
        source.status,
        to.name
    ));
    let object = source_aws
        .s3
        .get_object()
        .bucket(&source.bucket)
        .key(&source.key)
        .send()
        .await
        .map_err(|error| {
            let denied = error.code() == Some("AccessDenied");
            let artifact = format!("s3://{}/{}", source.bucket, source.key);
            let problem = if denied {
                format!(
                    "the artifact {artifact} of {} cannot be read: access denied; grant \
                     s3:GetObject on it to the promoting role (docs/deployer-policy.json)",
                    from.stack_name
                )
            } else {
                format!(
                    "the artifact {artifact} of {} cannot be read (expired by the bucket's \
                     lifecycle?); redeploy {} and promote again",
                    from.stack_name, from.name
                )
            };
            sdk_error(error).context(problem)
        })?;
    let bytes = object
        .body
        .collect()
        .await
        .context("failed to download the artifact")?
        .into_bytes();
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
    let dir = emulator::workspace_root()
        .join("target")
        .join("smartvault")
        .join(&to.name);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let path = dir.join(format!("promoted-{sha256}.zip"));
    std::fs::write(&path, &bytes)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    let artifact = Artifact {
        path,
        size: bytes.len() as u64,
        sha256,
    };
    // Deploy copies the artifact into the target's bucket when it is not already there.
    let deploy = crate::deploy::deploy(target_aws, to, &artifact, yes, output).await?;
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
    use std::collections::BTreeMap;

    fn parameters() -> BTreeMap<String, String> {
        [
            ("ArtifactBucket", "b"),
            ("ArtifactKey", "artifacts/x.zip"),
            ("ArtifactSha256", "ab"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_healthy_stack_gives_its_artifact() {
        let source = source_artifact("s", Some(("UPDATE_COMPLETE".into(), parameters()))).unwrap();
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
            let refused = source_artifact("s", Some((status.into(), parameters())))
                .unwrap_err()
                .to_string();
            assert!(
                refused.contains(status) && refused.contains("promote only from"),
                "{refused}"
            );
        }
        let mut foreign = parameters();
        foreign.remove("ArtifactSha256");
        let refused = source_artifact("s", Some(("CREATE_COMPLETE".into(), foreign)))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("records no ArtifactSha256"), "{refused}");
    }
}
