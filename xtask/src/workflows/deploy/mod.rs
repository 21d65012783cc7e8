//! Deploying an environment: bootstrap stack, artifact upload, change set made and executed by
//! the CloudFormation execution role, confirmation, progress, termination protection. `deploy`,
//! `promote` and the demo all deploy through here.

use crate::aws::Aws;
use crate::aws::artifact_store;
use crate::aws::cfn::{self, NewChangeSet};
use crate::build::package::Artifact;
use crate::config::Environment;
use crate::output::{Output, confirm};
use crate::stack::parameters::ArtifactLocation;
use crate::stack::template::{self, BOOTSTRAP_STACK};
use crate::stack::{self, ChangeRow, ChangeSetOutcome, Outcome, StackAction};
use anyhow::{Result, bail};
use std::collections::BTreeMap;

/// What a deploy did, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct DeployResult {
    pub environment: String,
    pub stack: String,
    pub region: String,
    pub account: String,
    pub result: Outcome,
    pub artifact_sha256: String,
    pub artifact_uploaded: bool,
    pub changes: Vec<ChangeRow>,
    pub outputs: BTreeMap<String, String>,
    /// Fast snapshot restores this deploy ended because it removed the last schedule's
    /// `fast_restore` (each `<snapshot id> in <zones>`); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fast_restores_disabled: Vec<String>,
}

impl DeployResult {
    /// The result for people: outputs, and the subscription reminder after a first create.
    pub fn print(&self, env: &Environment) {
        println!(
            "stack {} {} (artifact {})",
            self.stack,
            self.result,
            &self.artifact_sha256[..12]
        );
        for (key, value) in &self.outputs {
            println!("  {key}: {value}");
        }
        if self.result == Outcome::Created {
            println!(
                "remember: each address in notification_emails ({}) gets a confirmation email \
                 from AWS and receives nothing until it confirms",
                env.notification_emails.join(", ")
            );
        }
    }
}

/// Deploys `artifact` to `env`. `yes` skips the confirmation.
pub async fn deploy(
    aws: &Aws,
    env: &Environment,
    artifact: &Artifact,
    yes: bool,
    output: Output,
) -> Result<DeployResult> {
    let account = aws.check_account(env.account_id.as_deref()).await?;
    let stack_name = env.stack_name.as_str();
    // Lambda would refuse it only mid-deploy, after the stack began to change.
    if let Some(requested) = env.reserved_concurrency {
        let current = crate::aws::lambda::reservation(aws, stack_name).await?;
        let account = crate::aws::lambda::account_concurrency(aws).await?;
        crate::stack::limits::check_reservation(&env.name, requested, account, current)?;
    }
    output.progress(format!(
        "deploying {stack_name} to account {account}, region {}",
        aws.region
    ));
    let bootstrap = super::bootstrap::require(aws, yes, output).await?;
    // What AWS itself can say before anything changes (`cargo xtask doctor` asks the rest): a
    // failure stops the deploy as a configuration mistake; an unknown is said and passed.
    let checks = super::doctor::before_deploy(aws, env, &bootstrap, &account).await;
    for check in checks
        .iter()
        .filter(|c| c.verdict == crate::workflows::doctor::verdicts::Verdict::Unknown)
    {
        output.progress(format!("note: {}: {}", check.name, check.detail));
    }
    if crate::workflows::doctor::verdicts::failed(&checks) {
        bail!(crate::user_error::UserError(format!(
            "deploy refused before any change; `cargo xtask doctor --env {}` says:\n{}",
            env.name,
            crate::workflows::doctor::verdicts::render(&checks).trim_end()
        )));
    }
    let role = Some(bootstrap.execution_role.as_str());
    let location = ArtifactLocation {
        bucket: bootstrap.bucket.clone(),
        key: artifact.key(),
        sha256: artifact.sha256.clone(),
    };
    let uploaded = artifact_store::upload_once(aws, artifact, &location, template::VERSION).await?;
    // Whether just uploaded or already there under its hash: the bytes CloudFormation will
    // hand Lambda must be the artifact's.
    artifact_store::verify(aws, &location).await?;
    if uploaded {
        output.progress(format!(
            "uploaded {} ({} KiB) to s3://{}/{}",
            artifact.path.display(),
            artifact.size / 1024,
            location.bucket,
            location.key
        ));
    } else {
        output.progress(format!(
            "artifact {} is already in s3://{}; not uploading",
            &artifact.sha256[..12],
            location.bucket
        ));
    }
    let made = Made {
        bootstrap: bootstrap.changed,
        artifact: uploaded.then(|| format!("s3://{}/{}", location.bucket, location.key)),
    };
    let rendered = template::render(env, &location)?;
    let dir = template::write_rendered(env, &rendered)?;
    output.progress(format!(
        "rendered template and parameters in {}",
        dir.display()
    ));
    output.progress(
        env.schedule_preview(time::OffsetDateTime::now_utc())
            .trim_end(),
    );
    // Copies and restore tests use each volume's KMS key through EC2: name the keys the
    // function's role is not granted, before they fail there.
    if !env.copies.is_empty() || env.restore_test.is_some() {
        for note in super::coverage::key_notes(aws, env).await {
            output.progress(note);
        }
    }

    let deployed = cfn::describe(aws, stack_name).await?;
    // The deployed schedules kept sets ready: if none does any more, the deploy ends those
    // fast snapshot restores (the function no longer reads them).
    let fast_restore_removed = deployed.as_ref().is_some_and(|view| {
        view.parameters.schedules.as_deref().is_some_and(|json| {
            serde_json::from_str::<Vec<function::model::ScheduleRule>>(json)
                .is_ok_and(|rules| rules.iter().any(|r| r.fast_restore.is_some()))
        })
    }) && env.schedules.iter().all(|s| s.fast_restore.is_none());
    let status = deployed.map(|s| s.status);
    remove_stale_change_sets(aws, stack_name, status.as_deref(), role, output).await?;
    let create = match stack::action_for(stack_name, status.as_deref()) {
        StackAction::Create => true,
        StackAction::Update => false,
        StackAction::RecreateAfterFailedCreate => {
            output.progress(format!(
                "stack {stack_name} is in ROLLBACK_COMPLETE after a failed first create; deleting it to create it again"
            ));
            cfn::delete_and_wait(aws, stack_name, role).await?;
            true
        }
        StackAction::Busy(message) | StackAction::Stuck(message) => bail!(message),
    };

    let change_set = stack::change_set_name(time::OffsetDateTime::now_utc());
    // By URL: a template sent in the request may hold only 51,200 bytes, and an environment's
    // grows with each feature; one read from S3 may hold 1 MB.
    let template_key = artifact_store::template_key(stack_name, &change_set);
    let template_url =
        artifact_store::put_template(aws, &bootstrap.bucket, &template_key, &rendered.body).await?;
    let described = cfn::create_change_set(
        aws,
        &NewChangeSet {
            stack: stack_name,
            name: &change_set,
            create,
            template: cfn::Template::Url(&template_url),
            parameters: &rendered.parameters,
            tags: &rendered.tags,
            description: format!(
                "SmartVault {} artifact {}",
                template::VERSION,
                &artifact.sha256[..12]
            ),
            // Every create, update and rollback of the stack from now on: a stack deployed
            // before the execution role existed switches to it with this change.
            role,
            named_iam: false,
        },
    )
    .await;
    // CloudFormation read the template while it made the change set: its copy goes, whatever
    // happened, so nothing is left behind in the bucket.
    if let Err(error) =
        artifact_store::delete_versions(aws, &bootstrap.bucket, Some(&template_key)).await
    {
        output.progress(format!(
            "note: could not remove the template's copy s3://{}/{template_key}: {error:#}",
            bootstrap.bucket
        ));
    }
    let described = described?;
    let mut result = DeployResult {
        environment: env.name.clone(),
        stack: env.stack_name.clone(),
        region: aws.region.clone(),
        account,
        result: Outcome::Unchanged,
        artifact_sha256: artifact.sha256.clone(),
        artifact_uploaded: uploaded,
        changes: described.changes.clone(),
        outputs: BTreeMap::new(),
        fast_restores_disabled: Vec::new(),
    };
    match stack::classify_change_set(&described.status, described.reason.as_deref()) {
        ChangeSetOutcome::NoChanges => {
            cfn::discard_change_set(aws, stack_name, &change_set).await;
            output.progress(format!(
                "stack {stack_name} is up to date: nothing to change"
            ));
            set_termination_protection(aws, env, output).await?;
            result.outputs = outputs(aws, stack_name).await?;
            return Ok(result);
        }
        ChangeSetOutcome::Failed(reason) => {
            cfn::discard_change_set(aws, stack_name, &change_set).await;
            bail!("CloudFormation refused the change set for stack {stack_name}: {reason}");
        }
        ChangeSetOutcome::Ready => {}
    }

    output.progress(format!(
        "changes to stack {stack_name}:\n{}",
        stack::change_table(&result.changes)
    ));
    let question = format!("deploy these changes to {stack_name} ({})?", env.name);
    match confirm(yes, &question) {
        Ok(true) => {}
        Ok(false) => {
            cfn::discard_change_set(aws, stack_name, &change_set).await;
            bail!("deploy cancelled; {}", made.describe(stack_name));
        }
        Err(error) => {
            cfn::discard_change_set(aws, stack_name, &change_set).await;
            return Err(error.context(format!(
                "deploy stopped before the change; {}",
                made.describe(stack_name)
            )));
        }
    }
    cfn::execute_change_set(aws, stack_name, &change_set).await?;
    cfn::wait_with_progress(aws, stack_name, create, output).await?;
    set_termination_protection(aws, env, output).await?;
    result.result = if create {
        Outcome::Created
    } else {
        Outcome::Updated
    };
    result.outputs = outputs(aws, stack_name).await?;
    if fast_restore_removed {
        let own = crate::aws::snapshots::managed(aws, stack_name).await?;
        let ids: Vec<&str> = own.iter().map(|s| s.id.as_str()).collect();
        let (disabled, failures) =
            crate::aws::snapshots::end_fast_restores(aws, &ids, output).await;
        if !failures.is_empty() {
            bail!(
                "stack {stack_name} is deployed, but ending the fast snapshot restores no \
                 schedule keeps any more failed: {}",
                failures.join("; ")
            );
        }
        result.fast_restores_disabled = disabled;
    }
    Ok(result)
}

/// The stack's outputs; empty when there is no stack.
async fn outputs(aws: &Aws, stack: &str) -> Result<BTreeMap<String, String>> {
    Ok(cfn::describe(aws, stack)
        .await?
        .map(|s| s.outputs)
        .unwrap_or_default())
}

async fn set_termination_protection(aws: &Aws, env: &Environment, output: Output) -> Result<()> {
    let enabled = env.termination_protection;
    if cfn::set_termination_protection(aws, &env.stack_name, enabled).await? {
        output.progress(format!(
            "termination protection {} for {}",
            if enabled { "enabled" } else { "disabled" },
            env.stack_name
        ));
    }
    Ok(())
}

/// What a deploy made before it reached the stack's change, so that a deploy stopped at the
/// confirmation says exactly what now exists.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Made {
    /// This deploy created or updated the bootstrap stack.
    bootstrap: bool,
    /// The artifact this deploy uploaded, as an S3 URL.
    artifact: Option<String>,
}

impl Made {
    /// The sentence that tells what a stopped deploy left, and how to remove it.
    fn describe(&self, stack: &str) -> String {
        let mut made = Vec::new();
        if self.bootstrap {
            made.push(format!("bootstrapped the region (stack {BOOTSTRAP_STACK}), which stays for every environment"));
        }
        if let Some(artifact) = &self.artifact {
            made.push(format!(
                "uploaded {artifact}, which stays for the next deploy to reuse"
            ));
        }
        if made.is_empty() {
            return format!("stack {stack} was not changed and nothing else was made");
        }
        format!(
            "stack {stack} was not changed, but this deploy {}",
            made.join(", and ")
        )
    }
}

/// Removes what an interrupted deploy left: its change sets that were never executed and,
/// for a stack never created (`REVIEW_IN_PROGRESS`), the empty stack itself, saying so.
/// Without this, the next deploy would stack a new change set on the stale one.
async fn remove_stale_change_sets(
    aws: &Aws,
    stack: &str,
    status: Option<&str>,
    role: Option<&str>,
    output: Output,
) -> Result<()> {
    if status.is_none() {
        return Ok(());
    }
    for name in stack::stale_change_sets(&cfn::change_sets(aws, stack).await?) {
        output.progress(format!(
            "removing change set {name} of stack {stack}, left unexecuted by an interrupted deploy"
        ));
        cfn::delete_change_set(aws, stack, &name).await?;
    }
    // Deleting a review stack's last change set may remove the stack too; look again.
    if status == Some("REVIEW_IN_PROGRESS")
        && cfn::describe(aws, stack)
            .await?
            .map(|s| s.status)
            .as_deref()
            == Some("REVIEW_IN_PROGRESS")
    {
        output.progress(format!(
            "stack {stack} is REVIEW_IN_PROGRESS: an earlier deploy stopped before creating it; \
             removing the empty stack to create it afresh"
        ));
        cfn::delete_and_wait(aws, stack, role).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_deploy_says_exactly_what_it_made() {
        let both = Made {
            bootstrap: true,
            artifact: Some("s3://bucket/artifacts/abc.zip".into()),
        };
        assert_eq!(
            both.describe("smartvault-dev"),
            "stack smartvault-dev was not changed, but this deploy bootstrapped the region \
             (stack smartvault-bootstrap), which stays for every environment, and uploaded \
             s3://bucket/artifacts/abc.zip, which stays for the next deploy to reuse"
        );
        let upload_only = Made {
            bootstrap: false,
            artifact: Some("s3://b/k".into()),
        };
        let message = upload_only.describe("smartvault-dev");
        assert!(
            message.contains("this deploy uploaded s3://b/k, which stays"),
            "{message}"
        );
        assert!(!message.contains("bootstrap"), "{message}");
        let nothing = Made {
            bootstrap: false,
            artifact: None,
        };
        assert_eq!(
            nothing.describe("smartvault-dev"),
            "stack smartvault-dev was not changed and nothing else was made"
        );
    }

    #[test]
    fn the_outcome_reads_as_before_in_json() {
        assert_eq!(serde_json::to_value(Outcome::Created).unwrap(), "created");
        assert_eq!(
            serde_json::to_value(Outcome::Unchanged).unwrap(),
            "unchanged"
        );
        assert_eq!(Outcome::Updated.to_string(), "updated");
    }
}
