//! The bootstrap stack (the artifact bucket, the CloudFormation execution role and the
//! permissions boundary every environment of an account and region shares): created or updated
//! by `cargo xtask bootstrap`, offered by deploy when missing, removed by `bootstrap --delete`.

use crate::aws::Aws;
use crate::aws::artifact_store;
use crate::aws::cfn::{self, NewChangeSet, StackView};
use crate::output::{Output, confirm};
use crate::stack::template::{self, BOOTSTRAP_STACK};
use crate::stack::{self, ChangeRow, ChangeSetOutcome, Outcome};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

/// The output that names the artifact bucket.
const BUCKET_OUTPUT: &str = "ArtifactBucketName";
/// The output that names the role CloudFormation acts with for environment stacks.
const ROLE_OUTPUT: &str = "ExecutionRoleArn";
const VERSION_OUTPUT: &str = "BootstrapVersion";
/// The output that names the permissions boundary every role of an environment carries.
const BOUNDARY_OUTPUT: &str = "FunctionBoundaryArn";
/// The bootstrap version this deploy needs: 2 added the execution role and the boundary, 3
/// the permissions for EventBridge Scheduler schedules and their dead-letter queue, 4 the
/// boundary's for copies in other regions, 5 its for restore tests' volumes, 6 the execution
/// role's trust without a condition on a key CloudFormation does not send, 7 the boundary's
/// for snapshot locks, 8 its for the vault account, 9 its for the tripwire's block reads, 10
/// its and the execution role's for consistent sets (Systems Manager), 11 its for the archive
/// tier and fast snapshot restore.
pub const REQUIRED_VERSION: u32 = 11;

/// What deploy and destroy use from the bootstrap stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub bucket: String,
    pub execution_role: String,
    /// The boundary the execution role must put on every role it creates.
    pub boundary: Option<String>,
    /// This call created or updated the bootstrap stack.
    pub changed: bool,
}

/// Why the bootstrap stack cannot serve a deploy yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Absent,
    /// Made by an older SmartVault: no execution role, or another missing output.
    Outdated {
        version: u32,
    },
}

/// Reads what deploy needs from the bootstrap stack's outputs; `Err(Missing)` when the stack is
/// absent or older than this version of SmartVault needs.
pub fn usable(view: Option<&StackView>) -> std::result::Result<Bootstrap, Missing> {
    let view = view.ok_or(Missing::Absent)?;
    let version = view
        .outputs
        .get(VERSION_OUTPUT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    match (
        view.outputs.get(BUCKET_OUTPUT),
        view.outputs.get(ROLE_OUTPUT),
    ) {
        (Some(bucket), Some(role)) if version >= REQUIRED_VERSION => Ok(Bootstrap {
            bucket: bucket.clone(),
            execution_role: role.clone(),
            boundary: view.outputs.get(BOUNDARY_OUTPUT).cloned(),
            changed: false,
        }),
        _ => Err(Missing::Outdated { version }),
    }
}

/// The sentence that says why deploy cannot go on, and the fix.
pub fn missing_message(missing: &Missing, region: &str) -> String {
    let what = match missing {
        Missing::Absent => {
            format!("region {region} is not bootstrapped: stack {BOOTSTRAP_STACK} does not exist")
        }
        Missing::Outdated { version } => format!(
            "stack {BOOTSTRAP_STACK} in {region} is bootstrap version {version}; this SmartVault \
             needs version {REQUIRED_VERSION} (2 added the CloudFormation execution role, 3 \
             its permissions for schedules, 4 the boundary's for copies in other regions, 5 \
             its for restore tests, 6 a trust policy CloudFormation can assume, 7 the \
             boundary's for snapshot locks, 8 its for the vault account, 9 its for the \
             tripwire's sampled blocks, 10 its and the execution role's for consistent \
             sets, 11 its for the archive tier and fast snapshot restore)"
        ),
    };
    format!(
        "{what}. An administrator runs `cargo xtask bootstrap --region {region}` once per \
         account and region (docs/bootstrap-policy.json is the policy it needs), or pass --yes \
         to deploy to run it now with your credentials"
    )
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([("smartvault:role".to_owned(), "bootstrap".to_owned())])
}

/// The bootstrap stack for a deploy: as it is when usable; otherwise bootstrapped now when the
/// user agrees (or passed `yes`), else an error that names the fix.
pub async fn require(aws: &Aws, yes: bool, output: Output) -> Result<Bootstrap> {
    let view = cfn::describe(aws, BOOTSTRAP_STACK).await?;
    let missing = match usable(view.as_ref()) {
        Ok(bootstrap) => return Ok(bootstrap),
        Err(missing) => missing,
    };
    let message = missing_message(&missing, &aws.region);
    output.progress(&message);
    let question = format!("bootstrap {} now with these credentials?", aws.region);
    match confirm(yes, &question) {
        Ok(true) => {}
        Ok(false) => bail!("deploy cancelled; nothing was changed. {message}"),
        Err(error) => return Err(error.context(message)),
    }
    apply(aws, true, output).await.with_context(|| {
        format!(
            "bootstrapping {region} failed; an administrator runs `cargo xtask bootstrap \
             --region {region}` with docs/bootstrap-policy.json, then deploy again",
            region = aws.region
        )
    })?;
    let mut bootstrap = usable(cfn::describe(aws, BOOTSTRAP_STACK).await?.as_ref())
        .map_err(|missing| anyhow::anyhow!(missing_message(&missing, &aws.region)))?;
    bootstrap.changed = true;
    Ok(bootstrap)
}

/// What `cargo xtask bootstrap` did, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct BootstrapResult {
    pub stack: String,
    pub region: String,
    pub account: String,
    pub result: Outcome,
    pub changes: Vec<ChangeRow>,
    pub bucket: String,
    pub execution_role: String,
    pub version: u32,
}

/// Creates the bootstrap stack, or updates it to the current template through a change set
/// (shown, and confirmed unless `yes`). Acts with the caller's own permissions: the execution
/// role is what this stack makes.
pub async fn apply(aws: &Aws, yes: bool, output: Output) -> Result<BootstrapResult> {
    let account = aws.check_account(None).await?;
    let existing = cfn::describe(aws, BOOTSTRAP_STACK).await?;
    let mut result = BootstrapResult {
        stack: BOOTSTRAP_STACK.to_owned(),
        region: aws.region.clone(),
        account,
        result: Outcome::Unchanged,
        changes: Vec::new(),
        bucket: String::new(),
        execution_role: String::new(),
        version: REQUIRED_VERSION,
    };
    let body = template::read_template("bootstrap.yaml")?;
    match existing.map(|s| s.status) {
        None => {
            output.progress(format!(
                "creating stack {BOOTSTRAP_STACK} (artifact bucket, CloudFormation execution \
                 role, permissions boundary) in {}",
                aws.region
            ));
            cfn::create_stack(aws, BOOTSTRAP_STACK, &body, &tags()).await?;
            cfn::wait_with_progress(aws, BOOTSTRAP_STACK, true, output).await?;
            result.result = Outcome::Created;
        }
        Some(status) if !stack::is_healthy(&status) && status != "UPDATE_ROLLBACK_COMPLETE" => {
            bail!(
                "stack {BOOTSTRAP_STACK} is in {status}; wait for it or fix it in the \
                 CloudFormation console, then run `cargo xtask bootstrap` again"
            );
        }
        Some(_) => {
            if update(aws, &body, yes, &mut result.changes, output).await? {
                result.result = Outcome::Updated;
            }
        }
    }
    let bootstrap = usable(cfn::describe(aws, BOOTSTRAP_STACK).await?.as_ref())
        .map_err(|missing| anyhow::anyhow!(missing_message(&missing, &aws.region)))?;
    result.bucket = bootstrap.bucket;
    result.execution_role = bootstrap.execution_role;
    Ok(result)
}

/// Updates the bootstrap stack through a change set; `true` when it changed.
async fn update(
    aws: &Aws,
    body: &str,
    yes: bool,
    changes: &mut Vec<ChangeRow>,
    output: Output,
) -> Result<bool> {
    let change_set = stack::change_set_name(time::OffsetDateTime::now_utc());
    let described = cfn::create_change_set(
        aws,
        &NewChangeSet {
            stack: BOOTSTRAP_STACK,
            name: &change_set,
            create: false,
            template: cfn::Template::Body(body),
            parameters: &BTreeMap::new(),
            tags: &tags(),
            description: format!("SmartVault {} bootstrap", template::VERSION),
            role: None,
            named_iam: true,
        },
    )
    .await?;
    changes.clone_from(&described.changes);
    match stack::classify_change_set(&described.status, described.reason.as_deref()) {
        ChangeSetOutcome::NoChanges => {
            cfn::discard_change_set(aws, BOOTSTRAP_STACK, &change_set).await;
            output.progress(format!("stack {BOOTSTRAP_STACK} is up to date"));
            Ok(false)
        }
        ChangeSetOutcome::Failed(reason) => {
            cfn::discard_change_set(aws, BOOTSTRAP_STACK, &change_set).await;
            bail!("CloudFormation refused the change set for stack {BOOTSTRAP_STACK}: {reason}");
        }
        ChangeSetOutcome::Ready => {
            output.progress(format!(
                "changes to stack {BOOTSTRAP_STACK}:\n{}",
                stack::change_table(changes)
            ));
            let question = format!("update {BOOTSTRAP_STACK} in {}?", aws.region);
            let confirmed = confirm(yes, &question);
            if !matches!(confirmed, Ok(true)) {
                // Nothing changed yet; the change set goes with the refusal.
                cfn::discard_change_set(aws, BOOTSTRAP_STACK, &change_set).await;
                confirmed?;
                bail!("bootstrap cancelled; stack {BOOTSTRAP_STACK} was not changed");
            }
            cfn::execute_change_set(aws, BOOTSTRAP_STACK, &change_set).await?;
            cfn::wait_with_progress(aws, BOOTSTRAP_STACK, false, output).await?;
            Ok(true)
        }
    }
}

/// The environment stacks that still depend on the bootstrap stack: those deployed from its
/// bucket. Pure, so the refusal is tested without AWS.
pub fn dependents(stacks: &[StackView], bucket: &str) -> Vec<String> {
    stacks
        .iter()
        .filter(|s| s.name != BOOTSTRAP_STACK)
        .filter(|s| {
            s.parameters
                .artifact_object()
                .is_some_and(|(b, _)| b == bucket)
        })
        .map(|s| s.name.clone())
        .collect()
}

/// What `cargo xtask bootstrap --delete` did, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct DeleteResult {
    pub stack: String,
    pub region: String,
    pub existed: bool,
    /// Object versions removed from the bucket before the stack's deletion.
    pub objects_deleted: usize,
}

/// Removes the bootstrap stack once no environment deploys from it: empties the bucket (which
/// CloudFormation cannot delete while it holds objects), then deletes the stack. Refuses while
/// an environment stack still uses it, naming them.
pub async fn delete(aws: &Aws, yes: bool, output: Output) -> Result<DeleteResult> {
    aws.check_account(None).await?;
    let mut result = DeleteResult {
        stack: BOOTSTRAP_STACK.to_owned(),
        region: aws.region.clone(),
        existed: false,
        objects_deleted: 0,
    };
    let Some(view) = cfn::describe(aws, BOOTSTRAP_STACK).await? else {
        output.progress(format!(
            "stack {BOOTSTRAP_STACK} does not exist in {}",
            aws.region
        ));
        return Ok(result);
    };
    result.existed = true;
    let bucket = view.outputs.get(BUCKET_OUTPUT).cloned();
    if let Some(bucket) = &bucket {
        let users = dependents(&cfn::describe_all(aws).await?, bucket);
        if !users.is_empty() {
            bail!(
                "stack {BOOTSTRAP_STACK} still serves {}: destroy them first (`cargo xtask \
                 destroy --env <name>`), then delete the bootstrap stack",
                users.join(", ")
            );
        }
    }
    let question = format!(
        "delete {BOOTSTRAP_STACK} in {} (the artifact bucket and its artifacts, the execution \
         role, the boundary)?",
        aws.region
    );
    if !confirm(yes, &question)? {
        bail!("bootstrap --delete cancelled; nothing was removed");
    }
    if let Some(bucket) = &bucket {
        result.objects_deleted = artifact_store::delete_versions(aws, bucket, None).await?;
    }
    output.progress(format!("deleting stack {BOOTSTRAP_STACK}"));
    cfn::delete_and_wait(aws, BOOTSTRAP_STACK, None).await?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::parameters::StackParameters;

    fn view(outputs: &[(&str, &str)]) -> StackView {
        StackView {
            name: BOOTSTRAP_STACK.into(),
            status: "CREATE_COMPLETE".into(),
            parameters: StackParameters::default(),
            outputs: outputs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            termination_protection: false,
        }
    }

    #[test]
    fn deploy_uses_only_a_bootstrap_with_the_execution_role() {
        assert_eq!(usable(None), Err(Missing::Absent));
        // Version 1: the bucket only.
        assert_eq!(
            usable(Some(&view(&[(BUCKET_OUTPUT, "b")]))),
            Err(Missing::Outdated { version: 1 })
        );
        let current = view(&[
            (BUCKET_OUTPUT, "b"),
            (ROLE_OUTPUT, "arn:aws:iam::1:role/r"),
            (VERSION_OUTPUT, "11"),
            (BOUNDARY_OUTPUT, "arn:aws:iam::1:policy/b"),
        ]);
        assert_eq!(
            usable(Some(&current)),
            Ok(Bootstrap {
                bucket: "b".into(),
                execution_role: "arn:aws:iam::1:role/r".into(),
                boundary: Some("arn:aws:iam::1:policy/b".into()),
                changed: false,
            })
        );
        let version_2 = view(&[
            (BUCKET_OUTPUT, "b"),
            (ROLE_OUTPUT, "arn:aws:iam::1:role/r"),
            (VERSION_OUTPUT, "2"),
        ]);
        assert_eq!(
            usable(Some(&version_2)),
            Err(Missing::Outdated { version: 2 })
        );
        // Version 3: the boundary has no room for copies in other regions yet.
        let version_3 = view(&[
            (BUCKET_OUTPUT, "b"),
            (ROLE_OUTPUT, "arn:aws:iam::1:role/r"),
            (VERSION_OUTPUT, "3"),
        ]);
        assert_eq!(
            usable(Some(&version_3)),
            Err(Missing::Outdated { version: 3 })
        );
        let message = missing_message(&Missing::Outdated { version: 1 }, "eu-west-1");
        assert!(
            message.contains("bootstrap version 1")
                && message.contains("needs version 11")
                && message.contains("cargo xtask bootstrap --region eu-west-1")
                && message.contains("docs/bootstrap-policy.json"),
            "{message}"
        );
        assert!(
            missing_message(&Missing::Absent, "eu-west-1")
                .starts_with("region eu-west-1 is not bootstrapped")
        );
    }

    #[test]
    fn the_bootstrap_stays_while_an_environment_deploys_from_its_bucket() {
        let env = |name: &str, bucket: &str| StackView {
            name: name.into(),
            parameters: StackParameters {
                artifact_bucket: Some(bucket.into()),
                artifact_key: Some("artifacts/a.zip".into()),
                artifact_sha256: Some("ab".into()),
                ..StackParameters::default()
            },
            ..view(&[])
        };
        let stacks = [
            view(&[]),
            env("smartvault-dev", "bucket"),
            env("other-tool", "elsewhere"),
        ];
        assert_eq!(dependents(&stacks, "bucket"), ["smartvault-dev"]);
        assert!(dependents(&stacks[..1], "bucket").is_empty());
    }
}
