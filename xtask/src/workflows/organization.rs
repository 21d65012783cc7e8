//! An environment with `targets:`: one stack set across accounts and regions. Deploy publishes
//! the artifact to a bucket per target region in the administrator account and creates or
//! updates the stack set and its instances; status reads every instance; destroy deletes the
//! instances, removes what each member's function made with the member role, then the stack
//! set and the buckets.

use super::destroy::{self, Snapshots};
use crate::aws::Aws;
use crate::aws::artifact_store;
use crate::aws::cfn;
use crate::aws::stacksets::{self, Definition, InstanceView, Operation};
use crate::build::package::Artifact;
use crate::config::Environment;
use crate::config::targets::{self, Targets};
use crate::output::{Output, confirm};
use crate::stack::Outcome;
use crate::stack::parameters::{ArtifactLocation, StackParameters};
use crate::stack::template;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

/// What an organization deploy did, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct DeployResult {
    pub environment: String,
    pub stack_set: String,
    /// The administrator account and region.
    pub account: String,
    pub region: String,
    pub result: Outcome,
    pub artifact_sha256: String,
    /// Each target region's artifact, as `s3://bucket/key`, and whether it was uploaded now.
    pub artifacts: Vec<(String, bool)>,
    /// The organization's central topic, when configured.
    pub central_topic: Option<String>,
    pub operations: Vec<Operation>,
    pub instances: Vec<InstanceView>,
    /// Stack instances outside the targets now configured: left running until
    /// `cargo xtask destroy --untargeted` removes them.
    pub untargeted: Vec<String>,
}

impl DeployResult {
    pub fn print(&self) {
        println!(
            "stack set {} {} (artifact {}), {} stack instance(s):",
            self.stack_set,
            self.result,
            &self.artifact_sha256[..12],
            self.instances.len()
        );
        for i in &self.instances {
            println!("  {:<12} {:<16} {}", i.account, i.region, i.status);
        }
        if !self.untargeted.is_empty() {
            println!(
                "no longer targeted, still running: {}; remove them with `cargo xtask destroy \
                 --untargeted`",
                self.untargeted.join(", ")
            );
        }
    }
}

/// The artifact's location in one target region.
fn location(bucket: &str, artifact: &Artifact) -> ArtifactLocation {
    ArtifactLocation {
        bucket: bucket.to_owned(),
        key: artifact.key(),
        sha256: artifact.sha256.clone(),
    }
}

/// Deploys `artifact` to every target of `env`.
pub async fn deploy(
    aws: &Aws,
    env: &Environment,
    targets: &Targets,
    artifact: &Artifact,
    yes: bool,
    output: Output,
) -> Result<DeployResult> {
    let account = aws.check_account(env.account_id.as_deref()).await?;
    let name = env.stack_name.as_str();
    output.progress(format!(
        "deploying {} from account {account}, region {}",
        targets.describe(name),
        aws.region
    ));
    let prefix = targets::bucket_prefix(name, &account);
    let mut artifacts = Vec::new();
    let mut buckets: Vec<(String, String)> = Vec::new();
    for region in &targets.regions {
        let regional = aws.in_region(region);
        let bucket = require_artifact_bucket(&regional, env, targets, &prefix, yes, output).await?;
        buckets.push((region.clone(), bucket.clone()));
        let location = location(&bucket, artifact);
        let uploaded =
            artifact_store::upload_once(&regional, artifact, &location, template::VERSION).await?;
        artifact_store::verify(&regional, &location).await?;
        let url = format!("s3://{}/{}", location.bucket, location.key);
        output.progress(if uploaded {
            format!("uploaded {url}")
        } else {
            format!("{url} is already there; not uploading")
        });
        artifacts.push((url, uploaded));
    }
    let central = require_central_topic(aws, env, targets, yes, output).await?;
    let mut rendered = template::render(env, &location(&prefix, artifact))?;
    if let Some(arn) = &central {
        rendered
            .parameters
            .insert("CentralTopicArn".to_owned(), arn.clone());
    }
    let dir = template::write_rendered(env, &rendered)?;
    output.progress(format!(
        "rendered template and parameters in {}",
        dir.display()
    ));
    output.progress(
        env.schedule_preview(time::OffsetDateTime::now_utc())
            .trim_end(),
    );
    // By URL (1 MB, where a body in the request may hold only 51,200 bytes), from the artifact
    // bucket of the administrator's region when it is a target region, else of the first one;
    // content-addressed, and removed with the bucket.
    let (template_region, template_bucket) = buckets
        .iter()
        .find(|(region, _)| *region == aws.region)
        .or(buckets.first())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{name} targets no region"))?;
    let template_url = artifact_store::put_template(
        &aws.in_region(&template_region),
        &template_bucket,
        &artifact_store::template_key(
            name,
            &crate::build::package::sha256_hex(rendered.body.as_bytes()),
        ),
        &rendered.body,
    )
    .await?;
    let definition = Definition {
        name,
        template_url: &template_url,
        parameters: &rendered.parameters,
        tags: &rendered.tags,
        description: format!(
            "SmartVault {} artifact {}",
            template::VERSION,
            &artifact.sha256[..12]
        ),
        targets,
        administration_role_arn: match &targets.deployment {
            targets::Deployment::Accounts { .. } => Some(format!(
                "arn:{}:iam::{account}:role/{}",
                partition(&env.region),
                targets::ADMINISTRATION_ROLE
            )),
            targets::Deployment::OrganizationalUnits { .. } => None,
        },
    };
    let existing = stacksets::describe(aws, name, targets).await?;
    let wanted = StackParameters::from_cfn(
        rendered
            .parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut result = DeployResult {
        environment: env.name.clone(),
        stack_set: name.to_owned(),
        account,
        region: aws.region.clone(),
        result: Outcome::Unchanged,
        artifact_sha256: artifact.sha256.clone(),
        artifacts,
        central_topic: central,
        operations: Vec::new(),
        instances: Vec::new(),
        untargeted: Vec::new(),
    };
    let instances = match &existing {
        Some(_) => stacksets::instances(aws, name, targets).await?,
        None => Vec::new(),
    };
    let plan = deploy_plan(
        name,
        &aws.region,
        targets,
        existing.as_ref(),
        &instances,
        &wanted,
        &rendered.body,
    );
    if plan.is_empty() {
        output.progress(format!("stack set {name} is up to date: nothing to change"));
        result.instances = instances;
        result.untargeted = untargeted(targets, &result.instances);
        return Ok(result);
    }
    output.progress(format!("changes:\n  {}", plan.describe().join("\n  ")));
    if !confirm(
        yes,
        &format!("deploy these changes to {name} ({})?", env.name),
    )? {
        bail!(
            "deploy cancelled; the stack set was not changed (the artifacts uploaded stay for \
             the next deploy)"
        );
    }
    if plan.create_set {
        stacksets::create(aws, &definition).await?;
        result.result = Outcome::Created;
    } else if plan.update {
        output.progress(format!(
            "updating stack set {name}; each account and region:"
        ));
        let id = stacksets::update(aws, &definition).await?;
        let operation = stacksets::wait(aws, name, targets, &id, output).await?;
        let failed = !operation.succeeded();
        result.operations.push(operation);
        if failed {
            return Err(operation_failed(name, &result.operations));
        }
        result.result = Outcome::Updated;
    }
    if let Some((accounts, regions)) = &plan.create_instances {
        output.progress(format!(
            "creating stack instances of {name}; each account and region:"
        ));
        let id = stacksets::create_instances(aws, name, targets, accounts, regions).await?;
        let operation = stacksets::wait(aws, name, targets, &id, output).await?;
        let failed = !operation.succeeded();
        result.operations.push(operation);
        if failed {
            return Err(operation_failed(name, &result.operations));
        }
        if result.result == Outcome::Unchanged {
            result.result = Outcome::Updated;
        }
    }
    result.instances = stacksets::instances(aws, name, targets).await?;
    result.untargeted = untargeted(targets, &result.instances);
    Ok(result)
}

/// What an organization's deploy changes, decided from what exists (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    pub name: String,
    pub home_region: String,
    /// No stack set yet: create it.
    pub create_set: bool,
    /// The stack set exists with another template or other parameters: update it and its
    /// instances.
    pub update: bool,
    /// How many instances an update reaches.
    pub instances: usize,
    /// Stack instances to create: (accounts, regions); no accounts for organizational units,
    /// whose accounts AWS resolves.
    pub create_instances: Option<(Vec<String>, Vec<String>)>,
}

/// Decides what deploy changes: the stack set created or updated when it differs from what is
/// wanted, and the stack instances that are missing. With organizational units and
/// auto-deployment, StackSets deploys to accounts as they join: instances are created only in
/// regions without one yet. Without it, every deploy asks for every region, so that accounts
/// that joined since are reached (StackSets leaves the existing instances as they are).
pub fn deploy_plan(
    name: &str,
    home_region: &str,
    targets: &Targets,
    existing: Option<&stacksets::StackSetView>,
    instances: &[InstanceView],
    wanted: &StackParameters,
    body: &str,
) -> DeployPlan {
    let update = existing.is_some_and(|set| set.parameters != *wanted || set.template_body != body);
    let create_instances = match &targets.deployment {
        targets::Deployment::Accounts { accounts, .. } => {
            stacksets::missing(accounts, &targets.regions, instances)
        }
        targets::Deployment::OrganizationalUnits {
            auto_deployment, ..
        } => {
            let regions: Vec<String> = targets
                .regions
                .iter()
                .filter(|r| !auto_deployment || !instances.iter().any(|i| &i.region == *r))
                .cloned()
                .collect();
            (!regions.is_empty()).then(|| (Vec::new(), regions))
        }
    };
    DeployPlan {
        name: name.to_owned(),
        home_region: home_region.to_owned(),
        create_set: existing.is_none(),
        update,
        instances: instances.len(),
        create_instances,
    }
}

impl DeployPlan {
    /// Nothing to create or update.
    pub fn is_empty(&self) -> bool {
        !self.create_set && !self.update && self.create_instances.is_none()
    }

    /// The changes, one line each, as printed before the confirmation.
    pub fn describe(&self) -> Vec<String> {
        let name = &self.name;
        let mut lines = Vec::new();
        if self.create_set {
            lines.push(format!("create stack set {name} in {}", self.home_region));
        } else if self.update {
            lines.push(format!(
                "update the template and parameters of stack set {name} and its {} stack \
                 instance(s)",
                self.instances
            ));
        }
        if let Some((accounts, regions)) = &self.create_instances {
            lines.push(format!(
                "create stack instances in {} x {}",
                if accounts.is_empty() {
                    "the organizational units' accounts".to_owned()
                } else {
                    accounts.join(", ")
                },
                regions.join(", ")
            ));
        }
        lines
    }
}

fn untargeted(targets: &Targets, instances: &[InstanceView]) -> Vec<String> {
    stacksets::untargeted(targets, instances)
        .iter()
        .map(|i| format!("{}/{}", i.account, i.region))
        .collect()
}

/// The error of a failed operation: every failed account and region with its reason.
fn operation_failed(name: &str, operations: &[Operation]) -> anyhow::Error {
    let mut message = String::new();
    for operation in operations.iter().filter(|o| !o.succeeded()) {
        message.push_str(&format!(
            "stack set {name}: operation {} ({}) ended {}{}",
            operation.id,
            operation.action,
            operation.status,
            operation
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
        for failure in operation.failures() {
            message.push_str(&format!("\n  {failure}"));
        }
    }
    anyhow::anyhow!(
        "{message}\nthe accounts and regions that succeeded run the new template; fix the \
         failures and deploy again (`cargo xtask status` shows each instance)"
    )
}

fn partition(region: &str) -> &'static str {
    crate::config::regions::partition_of(region).unwrap_or("aws")
}

/// The parameters of the artifact stack in one region.
pub(crate) fn artifact_parameters(targets: &Targets, prefix: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("BucketPrefix".to_owned(), prefix.to_owned()),
        (
            "OrganizationId".to_owned(),
            targets.organization_id.clone().unwrap_or_default(),
        ),
        ("ReaderAccounts".to_owned(), readers(targets)),
    ])
}

/// A stack of the administrator account that an organization's environment needs besides
/// the stack set: an artifact bucket per target region, the central topic.
struct Supporting<'a> {
    stack: String,
    template: &'a str,
    parameters: BTreeMap<String, String>,
    role: &'a str,
    /// What creating it makes, for the question.
    what: String,
}

/// The supporting stack as it should be: created when the user agrees, or updated when its
/// template or parameters changed; its outputs.
async fn require(
    regional: &Aws,
    env: &Environment,
    supporting: Supporting<'_>,
    yes: bool,
    output: Output,
) -> Result<BTreeMap<String, String>> {
    let Supporting {
        stack,
        template,
        parameters,
        role,
        what,
    } = supporting;
    let body = template::read_template(template)?;
    let tags = BTreeMap::from([
        ("smartvault:environment".to_owned(), env.name.clone()),
        ("smartvault:role".to_owned(), role.to_owned()),
    ]);
    match cfn::describe_with_parameters(regional, &stack).await? {
        Some((view, current_parameters))
            if view.status.ends_with("_COMPLETE") && !view.status.contains("ROLLBACK") =>
        {
            if current_parameters == parameters
                && stacksets::current_template(regional, &stack).await? == body
            {
                return Ok(view.outputs);
            }
            output.progress(format!(
                "{stack} in {} changes (template or parameters); updating it",
                regional.region
            ));
            stacksets::update_stack(regional, &stack, &body, &parameters).await?;
            cfn::wait_with_progress(regional, &stack, false, output).await?;
        }
        Some((view, _)) => bail!(
            "stack {stack} in {} is {}; fix or delete it, then deploy again",
            regional.region,
            view.status
        ),
        None => {
            let question = format!("create {what} (stack {stack} in {})?", regional.region);
            if !confirm(yes, &question)? {
                bail!(
                    "deploy cancelled; nothing was changed in {}",
                    regional.region
                );
            }
            cfn::create_stack_with(regional, &stack, &body, &parameters, &tags).await?;
            cfn::wait_with_progress(regional, &stack, true, output).await?;
        }
    }
    Ok(cfn::describe(regional, &stack)
        .await?
        .with_context(|| format!("stack {stack} vanished in {}", regional.region))?
        .outputs)
}

/// Who may read an organization's artifacts or publish to its central topic.
fn readers(targets: &Targets) -> String {
    match (&targets.organization_id, &targets.deployment) {
        (None, targets::Deployment::Accounts { accounts, .. }) => accounts.join(","),
        _ => String::new(),
    }
}

fn whom(targets: &Targets) -> String {
    match &targets.organization_id {
        Some(org) => format!("organization {org}"),
        None => format!("accounts {}", targets.accounts().join(", ")),
    }
}

/// The artifact bucket of one target region, made (or updated) when the user agrees; its name.
async fn require_artifact_bucket(
    regional: &Aws,
    env: &Environment,
    targets: &Targets,
    prefix: &str,
    yes: bool,
    output: Output,
) -> Result<String> {
    let stack = targets::artifacts_stack(&env.stack_name);
    let supporting = Supporting {
        what: format!(
            "the artifact bucket {prefix}-{}, readable by {}",
            regional.region,
            whom(targets)
        ),
        parameters: artifact_parameters(targets, prefix),
        template: "organization.yaml",
        role: "organization-artifacts",
        stack: stack.clone(),
    };
    let outputs = require(regional, env, supporting, yes, output).await?;
    outputs
        .get("ArtifactBucketName")
        .cloned()
        .with_context(|| format!("stack {stack} has no ArtifactBucketName output"))
}

/// The parameters of the central topic's stack.
pub(crate) fn central_parameters(env: &Environment, targets: &Targets) -> BTreeMap<String, String> {
    let email = |i: usize| targets.central_emails.get(i).cloned().unwrap_or_default();
    BTreeMap::from([
        (
            "TopicName".to_owned(),
            targets::central_stack(&env.stack_name),
        ),
        (
            "OrganizationId".to_owned(),
            targets.organization_id.clone().unwrap_or_default(),
        ),
        ("PublisherAccounts".to_owned(), readers(targets)),
        ("NotificationEmail1".to_owned(), email(0)),
        ("NotificationEmail2".to_owned(), email(1)),
        ("NotificationEmail3".to_owned(), email(2)),
    ])
}

/// The organization's central topic in the administrator account's region, when configured;
/// its ARN.
async fn require_central_topic(
    aws: &Aws,
    env: &Environment,
    targets: &Targets,
    yes: bool,
    output: Output,
) -> Result<Option<String>> {
    if targets.central_emails.is_empty() {
        return Ok(None);
    }
    let stack = targets::central_stack(&env.stack_name);
    let supporting = Supporting {
        what: format!(
            "the central topic {stack} for {}, to which {} may publish",
            targets.central_emails.join(", "),
            whom(targets)
        ),
        parameters: central_parameters(env, targets),
        template: "central-topic.yaml",
        role: "organization-central-topic",
        stack: stack.clone(),
    };
    let outputs = require(aws, env, supporting, yes, output).await?;
    outputs
        .get("TopicArn")
        .cloned()
        .map(Some)
        .with_context(|| format!("stack {stack} has no TopicArn output"))
}

/// One stack instance as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub instance: InstanceView,
    /// The artifact it runs: the stack set's when the instance is `CURRENT`; unknown (an
    /// earlier one) when `OUTDATED`.
    pub artifact_sha256: Option<String>,
}

/// What `status` shows of an organization's environment.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub environment: String,
    pub stack_set: String,
    pub exists: bool,
    pub permission_model: String,
    pub artifact_sha256: Option<String>,
    pub smartvault_version: Option<String>,
    pub instances: Vec<InstanceStatus>,
    pub untargeted: Vec<String>,
    /// Configured accounts (self-managed) and regions without a stack instance.
    pub missing: Vec<String>,
    /// The organization's central topic the instances publish to, when there is one.
    pub central_topic: Option<String>,
}

pub async fn status(aws: &Aws, env: &Environment, targets: &Targets) -> Result<Status> {
    let name = env.stack_name.as_str();
    let set = stacksets::describe(aws, name, targets).await?;
    let instances = match &set {
        Some(_) => stacksets::instances(aws, name, targets).await?,
        None => Vec::new(),
    };
    Ok(status_of(&env.name, name, targets, set, instances))
}

/// The status of a stack set from what was read (pure): each instance with the artifact it
/// runs when current, the accounts and regions targeted without an instance, the instances no
/// target names any more.
pub fn status_of(
    environment: &str,
    name: &str,
    targets: &Targets,
    set: Option<stacksets::StackSetView>,
    instances: Vec<InstanceView>,
) -> Status {
    let sha = set
        .as_ref()
        .and_then(|s| s.parameters.artifact_sha256.clone());
    let central_topic = set
        .as_ref()
        .and_then(|s| s.parameters.central_topic_arn.clone())
        .filter(|arn| !arn.is_empty());
    let missing = match stacksets::missing(targets.accounts(), &targets.regions, &instances) {
        Some(_) => targets
            .accounts()
            .iter()
            .flat_map(|a| targets.regions.iter().map(move |r| (a, r)))
            .filter(|(a, r)| {
                !instances
                    .iter()
                    .any(|i| &i.account == *a && &i.region == *r)
            })
            .map(|(a, r)| format!("{a}/{r}"))
            .collect(),
        None => Vec::new(),
    };
    Status {
        environment: environment.to_owned(),
        stack_set: name.to_owned(),
        exists: set.is_some(),
        permission_model: set
            .as_ref()
            .map(|s| s.permission_model.clone())
            .unwrap_or_default(),
        artifact_sha256: sha.clone(),
        smartvault_version: set.and_then(|s| s.parameters.smartvault_version),
        untargeted: untargeted(targets, &instances),
        instances: instances
            .into_iter()
            .map(|instance| InstanceStatus {
                artifact_sha256: (instance.status == "CURRENT")
                    .then(|| sha.clone())
                    .flatten(),
                instance,
            })
            .collect(),
        missing,
        central_topic,
    }
}

impl Status {
    pub fn print(&self) {
        if !self.exists {
            println!(
                "stack set {} ({}) does not exist; `cargo xtask deploy --env {}` creates it",
                self.stack_set, self.environment, self.environment
            );
            return;
        }
        println!(
            "stack set {} ({}, {}), artifact {}, SmartVault {}",
            self.stack_set,
            self.environment,
            self.permission_model,
            self.artifact_sha256
                .as_deref()
                .map_or("?", |s| &s[..s.len().min(12)]),
            self.smartvault_version.as_deref().unwrap_or("?")
        );
        println!(
            "  {:<12} {:<16} {:<11} {:<10} {:<10} artifact",
            "account", "region", "status", "detail", "drift"
        );
        for row in &self.instances {
            let i = &row.instance;
            println!(
                "  {:<12} {:<16} {:<11} {:<10} {:<10} {}{}",
                i.account,
                i.region,
                i.status,
                i.detailed_status,
                i.drift.as_deref().unwrap_or("-"),
                row.artifact_sha256
                    .as_deref()
                    .map_or("an earlier one (outdated)", |s| &s[..s.len().min(12)]),
                i.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        if !self.missing.is_empty() {
            println!("  not deployed yet: {}", self.missing.join(", "));
        }
        if let Some(topic) = &self.central_topic {
            println!("  every instance also publishes its summaries to {topic}");
        }
        if !self.untargeted.is_empty() {
            println!("  no longer targeted: {}", self.untargeted.join(", "));
        }
    }
}

/// Which stack instances destroy removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every instance, then the stack set and the artifact buckets.
    All,
    /// Only the instances outside the configured targets; the stack set stays.
    Untargeted,
}

/// What an organization destroy did, for `--output json`.
#[derive(Debug, Default, serde::Serialize)]
pub struct DestroyResult {
    pub environment: String,
    pub stack_set: String,
    pub instances_deleted: Vec<String>,
    pub operations: Vec<Operation>,
    /// What destroy removed in each member account and region, as `<account>/<region>`.
    pub members: BTreeMap<String, destroy::DestroyResult>,
    pub stack_set_deleted: bool,
    pub supporting_stacks_deleted: Vec<String>,
    pub failures: Vec<String>,
}

/// What an organization's destroy finds before it decides: the stack set, its instances, and
/// which supporting stacks exist (the artifact stack per region, the central topic's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgSurvey {
    pub account: String,
    pub stack_set: bool,
    pub instances: Vec<InstanceView>,
    /// Regions (targeted now, or holding an instance) with an artifact stack of this set.
    pub artifact_regions: Vec<String>,
    pub central_topic: bool,
}

/// What an organization's destroy will do, decided from a survey alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgPlan {
    pub name: String,
    pub instances: Vec<InstanceView>,
    pub delete_stack_set: bool,
    /// (region, stack) of each supporting stack to remove with what it holds.
    pub supporting_stacks: Vec<(String, String)>,
    pub snapshots: Snapshots,
}

/// Reads what destroy could remove: every instance, and the supporting stacks of every region
/// targeted now or holding an instance.
pub async fn survey(aws: &Aws, env: &Environment, targets: &Targets) -> Result<OrgSurvey> {
    let account = aws.check_account(env.account_id.as_deref()).await?;
    let name = env.stack_name.as_str();
    let stack_set = stacksets::describe(aws, name, targets).await?.is_some();
    let instances = if stack_set {
        stacksets::instances(aws, name, targets).await?
    } else {
        Vec::new()
    };
    let mut regions = targets.regions.clone();
    for i in &instances {
        if !regions.contains(&i.region) {
            regions.push(i.region.clone());
        }
    }
    let artifacts = targets::artifacts_stack(name);
    let mut artifact_regions = Vec::new();
    for region in regions {
        if cfn::describe(&aws.in_region(&region), &artifacts)
            .await?
            .is_some()
        {
            artifact_regions.push(region);
        }
    }
    let central_topic = cfn::describe(aws, &targets::central_stack(name))
        .await?
        .is_some();
    Ok(OrgSurvey {
        account,
        stack_set,
        instances,
        artifact_regions,
        central_topic,
    })
}

/// Decides what destroy removes (pure): the chosen instances; with `Scope::All` the stack set,
/// every artifact stack and the central topic's; with `Scope::Untargeted` only the artifact
/// stacks of the regions no target names any more.
pub fn plan(
    name: &str,
    home_region: &str,
    targets: &Targets,
    survey: &OrgSurvey,
    scope: Scope,
    snapshots: Snapshots,
) -> OrgPlan {
    let instances: Vec<InstanceView> = match scope {
        Scope::All => survey.instances.clone(),
        Scope::Untargeted => stacksets::untargeted(targets, &survey.instances)
            .into_iter()
            .cloned()
            .collect(),
    };
    // The artifact buckets no stack instance will read any more: with everything, those of
    // every region targeted now or holding an instance; with the untargeted instances, those
    // of the regions no longer targeted at all.
    let mut regions: Vec<&String> = match scope {
        Scope::All => targets.regions.iter().collect(),
        Scope::Untargeted => Vec::new(),
    };
    for i in &instances {
        if !regions.contains(&&i.region)
            && (scope == Scope::All || !targets.regions.contains(&i.region))
        {
            regions.push(&i.region);
        }
    }
    let artifacts = targets::artifacts_stack(name);
    let mut supporting_stacks: Vec<(String, String)> = regions
        .into_iter()
        .filter(|r| survey.artifact_regions.contains(r))
        .map(|r| (r.clone(), artifacts.clone()))
        .collect();
    if scope == Scope::All && survey.central_topic {
        supporting_stacks.push((home_region.to_owned(), targets::central_stack(name)));
    }
    OrgPlan {
        name: name.to_owned(),
        instances,
        delete_stack_set: scope == Scope::All && survey.stack_set,
        supporting_stacks,
        snapshots,
    }
}

impl OrgPlan {
    /// What destroy will remove, as printed before the confirmation.
    pub fn describe(
        &self,
        env: &str,
        home_region: &str,
        account: &str,
        targets: &Targets,
    ) -> String {
        let name = &self.name;
        let mut text = format!("destroy {name} ({env}) will remove:\n");
        for i in &self.instances {
            text.push_str(&format!(
                "  stack instance {}/{} and its stack\n",
                i.account, i.region
            ));
        }
        if !self.instances.is_empty() {
            text.push_str(&format!(
                "  then, in each of those accounts and regions as role {}: {}the function's log \
                 group if left, and the volumes a restore test left\n",
                targets.member_role,
                match self.snapshots {
                    Snapshots::Delete | Snapshots::DeleteUnlockingGovernance => {
                        "this deployment's snapshots and copies, "
                    }
                    Snapshots::Keep => "",
                }
            ));
        }
        if self.delete_stack_set {
            text.push_str(&format!("  stack set {name} in {home_region}\n"));
        }
        for (region, stack) in &self.supporting_stacks {
            text.push_str(&if stack.ends_with(targets::CENTRAL_SUFFIX) {
                format!("  the central topic and its stack {stack} in {region}\n")
            } else {
                format!(
                    "  artifact bucket {}-{region} and its stack {stack} in {region}\n",
                    targets::bucket_prefix(name, account)
                )
            });
        }
        if self.instances.is_empty() && self.supporting_stacks.is_empty() && !self.delete_stack_set
        {
            text.push_str(
                "  nothing: no stack instance, stack set or artifact bucket of it exists\n",
            );
        }
        if self.snapshots == Snapshots::Keep {
            text.push_str("keeping the snapshots in every member account (--keep-snapshots)\n");
        }
        text
    }
}

/// Deletes the stack instances (all, or those no longer targeted), removes what each one's
/// function made in its account and region as the member role, and with `Scope::All` the
/// stack set and the artifact buckets: survey, pure plan, confirmation, apply.
pub async fn destroy(
    aws: &Aws,
    env: &Environment,
    targets: &Targets,
    yes: bool,
    snapshots: Snapshots,
    scope: Scope,
    output: Output,
) -> Result<DestroyResult> {
    let survey = survey(aws, env, targets).await?;
    let plan = plan(
        &env.stack_name,
        &aws.region,
        targets,
        &survey,
        scope,
        snapshots,
    );
    output.progress(
        plan.describe(&env.name, &aws.region, &survey.account, targets)
            .trim_end(),
    );
    let name = env.stack_name.as_str();
    if !confirm(yes, &format!("destroy {name}?"))? {
        bail!("destroy cancelled; nothing was removed");
    }
    Ok(apply(aws, env, targets, &plan, output).await)
}

/// Carries out exactly `plan`, recording every failure; a failed instance deletion stops it
/// before anything the instances still need is removed.
pub async fn apply(
    aws: &Aws,
    env: &Environment,
    targets: &Targets,
    plan: &OrgPlan,
    output: Output,
) -> DestroyResult {
    let name = plan.name.as_str();
    let chosen = &plan.instances;
    let mut result = DestroyResult {
        environment: env.name.clone(),
        stack_set: name.to_owned(),
        ..DestroyResult::default()
    };
    if !chosen.is_empty() {
        let mut regions: Vec<String> = Vec::new();
        for i in chosen {
            if !regions.contains(&i.region) {
                regions.push(i.region.clone());
            }
        }
        let mut accounts: Vec<String> = chosen.iter().map(|i| i.account.clone()).collect();
        accounts.sort();
        accounts.dedup();
        output.progress(format!(
            "deleting the stack instances of {name}; each account and region:"
        ));
        let deleted = async {
            let id = stacksets::delete_instances(aws, name, targets, &accounts, &regions).await?;
            stacksets::wait(aws, name, targets, &id, output).await
        }
        .await;
        match deleted {
            Ok(operation) => {
                let ok = operation.succeeded();
                result.failures.extend(operation.failures());
                result.operations.push(operation);
                if !ok {
                    result.failures.push(format!(
                        "nothing else was removed: stack instances of {name} still stand, and \
                         their functions need their snapshots; fix the failures and destroy again"
                    ));
                    return result;
                }
            }
            Err(error) => {
                result.failures.push(format!("{error:#}"));
                return result;
            }
        }
        result.instances_deleted = chosen
            .iter()
            .map(|i| format!("{}/{}", i.account, i.region))
            .collect();
        for i in chosen {
            let key = format!("{}/{}", i.account, i.region);
            match clean_member(aws, env, targets, i, plan.snapshots, output).await {
                Ok(member) => {
                    result
                        .failures
                        .extend(member.failures.iter().map(|f| format!("{key}: {f}")));
                    result.members.insert(key, member);
                }
                Err(error) => result.failures.push(format!("{key}: {error:#}")),
            }
        }
    }
    if plan.delete_stack_set {
        match stacksets::delete(aws, name, targets).await {
            Ok(()) => {
                output.progress(format!("deleted stack set {name}"));
                result.stack_set_deleted = true;
            }
            Err(error) => {
                result.failures.push(format!("{error:#}"));
                return result;
            }
        }
    }
    for (region, stack) in &plan.supporting_stacks {
        let regional = aws.in_region(region);
        let removed = async {
            if let Some(view) = cfn::describe(&regional, stack).await?
                && let Some(bucket) = view.outputs.get("ArtifactBucketName")
            {
                artifact_store::delete_versions(&regional, bucket, None).await?;
            }
            cfn::delete_and_wait(&regional, stack, None).await
        }
        .await;
        match removed {
            Ok(()) => {
                output.progress(format!("deleted {stack} in {region}"));
                result
                    .supporting_stacks_deleted
                    .push(format!("{region}/{stack}"));
            }
            Err(error) => result
                .failures
                .push(format!("{region}: removing {stack}: {error:#}")),
        }
    }
    result
}

/// Removes what a deleted stack instance's function made in its account and region, as the
/// member role: the single-account destroy's survey, plan and apply, without a stack.
async fn clean_member(
    aws: &Aws,
    env: &Environment,
    targets: &Targets,
    instance: &InstanceView,
    snapshots: Snapshots,
    output: Output,
) -> Result<destroy::DestroyResult> {
    let role = format!(
        "arn:{}:iam::{}:role/{}",
        partition(&instance.region),
        instance.account,
        targets.member_role
    );
    let member = aws
        .assume(
            &role,
            &crate::config::access::session_name(&env.name),
            &instance.region,
        )
        .await;
    // The instance's function ran in its own region: that is its home for copies.
    let mut local = env.clone();
    local.region = instance.region.clone();
    local.targets = None;
    local.account_id = Some(instance.account.clone());
    member.check_account(Some(&instance.account)).await?;
    let mut survey = destroy::survey(&member, &local).await?;
    // The instance's stack went with the stack set's operation; a stack of the same name in
    // that account is another deployment's and is not destroy's to remove.
    survey.stack = None;
    survey.resources.clear();
    let plan = destroy::plan(&local, &survey, snapshots)?;
    output.progress(format!(
        "{}/{} as {}: {}",
        instance.account,
        instance.region,
        targets.member_role,
        plan.describe().trim_end().replace('\n', "\n  ")
    ));
    Ok(destroy::apply(&member, &local, &plan, &survey, output).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::describe_stack_set_operation::DescribeStackSetOperationOutput;
    use aws_sdk_cloudformation::operation::list_stack_set_operation_results::ListStackSetOperationResultsOutput;
    use aws_sdk_cloudformation::types::{
        StackSetOperation, StackSetOperationAction, StackSetOperationResultStatus,
        StackSetOperationResultSummary, StackSetOperationStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn view(account: &str, region: &str) -> InstanceView {
        InstanceView {
            account: account.into(),
            region: region.into(),
            status: "CURRENT".into(),
            detailed_status: "SUCCEEDED".into(),
            reason: None,
            drift: None,
            organizational_unit: None,
            stack_id: None,
        }
    }

    #[test]
    fn deploy_plans_the_stack_set_and_only_the_missing_instances() {
        let accounts = crate::config::targets::example(
            "accounts: ['111111111111', '222222222222']\nregions: [eu-west-1, us-east-1]\n",
        )
        .unwrap();
        let wanted = StackParameters::default();
        let set = |body: &str| stacksets::StackSetView {
            name: "smartvault-org".into(),
            id: "id".into(),
            status: "ACTIVE".into(),
            permission_model: "SELF_MANAGED".into(),
            parameters: StackParameters::default(),
            template_body: body.into(),
        };
        let plan = |targets: &Targets,
                    existing: Option<&stacksets::StackSetView>,
                    have: &[InstanceView]| {
            deploy_plan(
                "smartvault-org",
                "us-east-1",
                targets,
                existing,
                have,
                &wanted,
                "body",
            )
        };
        // Nothing yet: the set, and an instance per account and region.
        let first = plan(&accounts, None, &[]);
        assert!(first.create_set && !first.update);
        assert_eq!(
            first.create_instances,
            Some((
                vec!["111111111111".into(), "222222222222".into()],
                vec!["eu-west-1".into(), "us-east-1".into()]
            ))
        );
        assert_eq!(
            first.describe()[0],
            "create stack set smartvault-org in us-east-1"
        );
        // Everything there and the same: nothing.
        let all = [
            view("111111111111", "eu-west-1"),
            view("111111111111", "us-east-1"),
            view("222222222222", "eu-west-1"),
            view("222222222222", "us-east-1"),
        ];
        let same = set("body");
        let nothing = plan(&accounts, Some(&same), &all);
        assert!(nothing.is_empty(), "{nothing:?}");
        assert!(nothing.describe().is_empty());
        // A changed template: an update reaching every instance; a missing instance: only it.
        let changed = set("older body");
        let update = plan(&accounts, Some(&changed), &all[..3]);
        assert!(update.update && !update.create_set);
        assert_eq!(
            update.describe(),
            [
                "update the template and parameters of stack set smartvault-org and its 3 \
                 stack instance(s)"
                    .to_owned(),
                "create stack instances in 222222222222 x us-east-1".to_owned()
            ]
        );
        // Organizational units: with auto-deployment, only the regions without an instance;
        // without it, every region every time (accounts that joined since are reached).
        let units = |auto: bool| {
            crate::config::targets::example(&format!(
                "organizational_units: [ou-ab12-cdef3456]\norganization_id: o-a1b2c3d4e5\n\
                 regions: [eu-west-1, us-east-1]\nmember_role: OrganizationAccountAccessRole\n\
                 auto_deployment: {auto}\n"
            ))
            .unwrap()
        };
        let one = [view("333333333333", "eu-west-1")];
        assert_eq!(
            plan(&units(true), Some(&same), &one).create_instances,
            Some((Vec::new(), vec!["us-east-1".into()]))
        );
        let every = plan(&units(false), Some(&same), &one);
        assert_eq!(
            every.create_instances,
            Some((Vec::new(), vec!["eu-west-1".into(), "us-east-1".into()]))
        );
        assert_eq!(
            every.describe(),
            ["create stack instances in the organizational units' accounts x eu-west-1, us-east-1"]
        );
    }

    #[test]
    fn status_shows_each_instance_what_is_missing_and_what_no_target_names() {
        let targets = crate::config::targets::example(
            "accounts: ['111111111111', '222222222222']\nregions: [eu-west-1]\n",
        )
        .unwrap();
        let mut parameters = StackParameters {
            artifact_sha256: Some("abc".into()),
            ..StackParameters::default()
        };
        parameters.central_topic_arn = Some(String::new());
        let set = stacksets::StackSetView {
            name: "smartvault-org".into(),
            id: "id".into(),
            status: "ACTIVE".into(),
            permission_model: "SELF_MANAGED".into(),
            parameters,
            template_body: String::new(),
        };
        let mut outdated = view("111111111111", "eu-west-1");
        outdated.status = "OUTDATED".into();
        let status = status_of(
            "org",
            "smartvault-org",
            &targets,
            Some(set),
            vec![outdated, view("333333333333", "eu-west-1")],
        );
        assert!(status.exists);
        assert_eq!(status.permission_model, "SELF_MANAGED");
        assert_eq!(status.missing, ["222222222222/eu-west-1"]);
        assert_eq!(status.untargeted, ["333333333333/eu-west-1"]);
        // Only a current instance is known to run the set's artifact.
        let runs: Vec<Option<&str>> = status
            .instances
            .iter()
            .map(|i| i.artifact_sha256.as_deref())
            .collect();
        assert_eq!(runs, [None, Some("abc")]);
        assert_eq!(status.central_topic, None, "an empty ARN is no topic");

        let none = status_of("org", "smartvault-org", &targets, None, Vec::new());
        assert!(!none.exists && none.instances.is_empty());
        assert_eq!(
            none.missing,
            ["111111111111/eu-west-1", "222222222222/eu-west-1"]
        );
    }

    #[test]
    fn destroy_plans_everything_or_only_what_no_target_names() {
        let targets = crate::config::targets::example(
            "accounts: ['111111111111', '222222222222']\nregions: [eu-west-1, us-east-1]\n",
        )
        .unwrap();
        let name = "smartvault-org";
        let artifacts = targets::artifacts_stack(name);
        let survey = OrgSurvey {
            account: "999999999999".into(),
            stack_set: true,
            instances: vec![
                view("111111111111", "eu-west-1"),
                view("222222222222", "us-east-1"),
                // A region and an account that no target names any more.
                view("111111111111", "ap-south-1"),
                view("333333333333", "eu-west-1"),
            ],
            artifact_regions: vec!["eu-west-1".into(), "us-east-1".into(), "ap-south-1".into()],
            central_topic: true,
        };
        let all = plan(
            name,
            "us-east-1",
            &targets,
            &survey,
            Scope::All,
            Snapshots::Delete,
        );
        assert_eq!(all.instances, survey.instances);
        assert!(all.delete_stack_set);
        let stacks = |p: &OrgPlan| -> Vec<String> {
            p.supporting_stacks
                .iter()
                .map(|(r, s)| format!("{r}/{s}"))
                .collect()
        };
        assert_eq!(
            stacks(&all),
            [
                format!("eu-west-1/{artifacts}"),
                format!("us-east-1/{artifacts}"),
                format!("ap-south-1/{artifacts}"),
                format!("us-east-1/{}", targets::central_stack(name)),
            ]
        );
        let text = all.describe("org", "us-east-1", "999999999999", &targets);
        assert!(
            text.contains("stack instance 333333333333/eu-west-1 and its stack")
                && text.contains("stack set smartvault-org in us-east-1")
                && text.contains("this deployment's snapshots and copies")
                && text.contains("the central topic and its stack"),
            "{text}"
        );

        // Only what no target names: the stack set, the central topic and the buckets of
        // regions still targeted stay.
        let untargeted = plan(
            name,
            "us-east-1",
            &targets,
            &survey,
            Scope::Untargeted,
            Snapshots::Keep,
        );
        assert_eq!(
            untargeted.instances,
            [
                view("111111111111", "ap-south-1"),
                view("333333333333", "eu-west-1")
            ]
        );
        assert!(!untargeted.delete_stack_set);
        assert_eq!(stacks(&untargeted), [format!("ap-south-1/{artifacts}")]);
        let text = untargeted.describe("org", "us-east-1", "999999999999", &targets);
        assert!(
            !text.contains("stack set smartvault-org") && text.contains("--keep-snapshots"),
            "{text}"
        );

        // Nothing there: said, and nothing planned.
        let empty = plan(
            name,
            "us-east-1",
            &targets,
            &OrgSurvey::default(),
            Scope::All,
            Snapshots::Delete,
        );
        assert!(empty.instances.is_empty() && !empty.delete_stack_set);
        assert!(empty.supporting_stacks.is_empty());
        assert!(
            empty
                .describe("org", "us-east-1", "999999999999", &targets)
                .contains("nothing: no stack instance")
        );
    }

    /// A failed rollout (which the emulator never produces): the operation is followed while
    /// it runs, and deploy's error names each failed account and region with CloudFormation's
    /// reason, and what succeeded.
    #[tokio::test]
    async fn a_failed_rollout_names_each_failed_account_and_region_with_its_reason() {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&polls);
        let operation = mock!(Client::describe_stack_set_operation).then_compute_output(move |r| {
            assert_eq!(r.operation_id(), Some("op-1"));
            let status = if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                StackSetOperationStatus::Running
            } else {
                StackSetOperationStatus::Failed
            };
            DescribeStackSetOperationOutput::builder()
                .stack_set_operation(
                    StackSetOperation::builder()
                        .operation_id("op-1")
                        .action(StackSetOperationAction::Update)
                        .status(status)
                        .status_reason("Failure tolerance exceeded")
                        .build(),
                )
                .build()
        });
        let result = |account: &str, status, reason: Option<&str>| {
            StackSetOperationResultSummary::builder()
                .account(account)
                .region("eu-west-1")
                .status(status)
                .set_status_reason(reason.map(str::to_owned))
                .build()
        };
        let results = mock!(Client::list_stack_set_operation_results).then_compute_output(move |_| {
            ListStackSetOperationResultsOutput::builder()
                .summaries(result("111111111111", StackSetOperationResultStatus::Succeeded, None))
                .summaries(result(
                    "222222222222",
                    StackSetOperationResultStatus::Failed,
                    Some("ResourceLogicalId:Function, ResourceType:AWS::Lambda::Function, ResourceStatusReason:Your access has been denied by S3"),
                ))
                .build()
        });
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let mut aws = Aws::from_sdk(&sdk, "us-east-1".into());
        aws.cloudformation = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&operation, &results]
        );
        let targets = crate::config::targets::example(
            "accounts: ['111111111111', '222222222222']\nregions: [eu-west-1]\n\
                 max_concurrent_accounts: 2\nfailure_tolerance: 1",
        )
        .unwrap();
        let ended = stacksets::wait(&aws, "smartvault-org", &targets, "op-1", Output::Json)
            .await
            .unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 2, "followed while running");
        assert!(!ended.succeeded());
        let message = format!("{:#}", operation_failed("smartvault-org", &[ended]));
        assert!(
            message.starts_with(
                "stack set smartvault-org: operation op-1 (UPDATE) ended FAILED: Failure \
                 tolerance exceeded\n  222222222222/eu-west-1: FAILED: ResourceLogicalId:Function"
            ) && message.contains("denied by S3")
                && !message.contains("111111111111/eu-west-1")
                && message.contains("the accounts and regions that succeeded run the new template"),
            "{message}"
        );
    }
}
