//! The bootstrap stack (the artifact bucket every environment of an account and region shares):
//! created by the first deploy, and brought up to the current template by `cargo xtask bootstrap`.

use super::deploy::{Outcome, outputs};
use crate::aws::Aws;
use crate::cfn::{self, NewChangeSet};
use crate::output::{Output, confirm};
use crate::stack::{self, ChangeRow, ChangeSetOutcome};
use crate::template::{self, BOOTSTRAP_STACK};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

/// The output that names the artifact bucket.
const BUCKET_OUTPUT: &str = "ArtifactBucketName";

/// The artifact bucket, and whether this call created the bootstrap stack that holds it.
pub struct Bootstrap {
    pub bucket: String,
    pub created: bool,
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([("smartvault:role".to_owned(), "bootstrap".to_owned())])
}

/// The artifact bucket, creating the bootstrap stack on first use.
pub async fn ensure(aws: &Aws, output: Output) -> Result<Bootstrap> {
    if let Some(view) = cfn::describe(aws, BOOTSTRAP_STACK).await? {
        let bucket = view.outputs.get(BUCKET_OUTPUT).cloned().with_context(|| {
            format!(
                "stack {BOOTSTRAP_STACK} exists but reports no {BUCKET_OUTPUT} output; inspect \
                 it, or delete it and deploy again"
            )
        })?;
        return Ok(Bootstrap {
            bucket,
            created: false,
        });
    }
    output.progress(format!(
        "creating stack {BOOTSTRAP_STACK} (the artifact bucket for this account and region)"
    ));
    cfn::create_stack(
        aws,
        BOOTSTRAP_STACK,
        &template::read_template("bootstrap.yaml")?,
        &tags(),
    )
    .await?;
    cfn::wait_with_progress(aws, BOOTSTRAP_STACK, true, output).await?;
    let bucket = outputs(aws, BOOTSTRAP_STACK)
        .await?
        .remove(BUCKET_OUTPUT)
        .with_context(|| {
            format!("stack {BOOTSTRAP_STACK} was created without an {BUCKET_OUTPUT} output")
        })?;
    Ok(Bootstrap {
        bucket,
        created: true,
    })
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
}

/// Creates the bootstrap stack, or updates it to the current template through a change set
/// (shown, and confirmed unless `yes`).
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
    };
    match existing.map(|s| s.status) {
        None => {
            result.bucket = ensure(aws, output).await?.bucket;
            result.result = Outcome::Created;
            return Ok(result);
        }
        Some(status) if !stack::is_healthy(&status) && status != "UPDATE_ROLLBACK_COMPLETE" => {
            bail!(
                "stack {BOOTSTRAP_STACK} is in {status}; wait for it or fix it in the \
                 CloudFormation console, then run `cargo xtask bootstrap` again"
            );
        }
        Some(_) => {}
    }
    let change_set = stack::change_set_name(time::OffsetDateTime::now_utc());
    let described = cfn::create_change_set(
        aws,
        &NewChangeSet {
            stack: BOOTSTRAP_STACK,
            name: &change_set,
            create: false,
            body: &template::read_template("bootstrap.yaml")?,
            parameters: &BTreeMap::new(),
            tags: &tags(),
            description: format!("SmartVault {} bootstrap", template::VERSION),
        },
    )
    .await?;
    result.changes = described.changes.clone();
    match stack::classify_change_set(&described.status, described.reason.as_deref()) {
        ChangeSetOutcome::NoChanges => {
            cfn::discard_change_set(aws, BOOTSTRAP_STACK, &change_set).await;
            output.progress(format!("stack {BOOTSTRAP_STACK} is up to date"));
        }
        ChangeSetOutcome::Failed(reason) => {
            cfn::discard_change_set(aws, BOOTSTRAP_STACK, &change_set).await;
            bail!("CloudFormation refused the change set for stack {BOOTSTRAP_STACK}: {reason}");
        }
        ChangeSetOutcome::Ready => {
            output.progress(format!(
                "changes to stack {BOOTSTRAP_STACK}:\n{}",
                stack::change_table(&result.changes)
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
            result.result = Outcome::Updated;
        }
    }
    result.bucket = ensure(aws, output).await?.bucket;
    Ok(result)
}
