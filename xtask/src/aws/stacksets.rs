//! The CloudFormation StackSets edge: one stack set, its stack instances and its operations,
//! read and changed as the administrator (or a delegated administrator) with every page read;
//! and the administrator account's own regional stacks beside it, read and updated in place.

use crate::aws::cfn;
use crate::aws::{Aws, sdk_error};
use crate::config::targets::{Deployment, RegionConcurrency, Targets};
use crate::output::Output;
use crate::stack::parameters::StackParameters;
use anyhow::{Context, Result, bail};
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    AutoDeployment, CallAs, Capability, DeploymentTargets, PermissionModels, RegionConcurrencyType,
    StackSetOperationPreferences,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How often an operation's progress is read.
const POLL: Duration = Duration::from_secs(2);
/// StackSets allows 2,160 minutes (36 hours) for an operation; deploy waits as long.
const MAX_WAIT: Duration = Duration::from_secs(36 * 3600);

/// A stack set as deploy and status use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StackSetView {
    pub name: String,
    pub id: String,
    pub status: String,
    pub permission_model: String,
    pub parameters: StackParameters,
    #[serde(skip)]
    pub template_body: String,
}

/// One stack instance: an account and region the stack set deploys to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstanceView {
    pub account: String,
    pub region: String,
    /// `CURRENT`, `OUTDATED` or `INOPERABLE`.
    pub status: String,
    /// `SUCCEEDED`, `FAILED`, `PENDING`, `RUNNING`, `CANCELLED`, ...
    pub detailed_status: String,
    pub reason: Option<String>,
    /// `IN_SYNC`, `DRIFTED`, `NOT_CHECKED` or `UNKNOWN`; `None` when never reported.
    pub drift: Option<String>,
    pub organizational_unit: Option<String>,
    pub stack_id: Option<String>,
}

/// One account and region's part in an operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OperationResult {
    pub account: String,
    pub region: String,
    pub status: String,
    pub reason: Option<String>,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    pub id: String,
    pub action: String,
    pub status: String,
    pub reason: Option<String>,
    pub results: Vec<OperationResult>,
}

impl Operation {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// The accounts and regions that failed, each with CloudFormation's reason.
    pub fn failures(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.status != "SUCCEEDED")
            .map(|r| {
                format!(
                    "{}/{}: {}: {}",
                    r.account,
                    r.region,
                    r.status,
                    r.reason.as_deref().unwrap_or("no reason given")
                )
            })
            .collect()
    }
}

/// What a create or update of the stack set sends.
pub struct Definition<'a> {
    pub name: &'a str,
    /// The template's S3 URL (`TemplateURL`: 1 MB, where a body in the request may hold only
    /// 51,200 bytes).
    pub template_url: &'a str,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    pub description: String,
    pub targets: &'a Targets,
    /// The administrator account's administration role, for self-managed stack sets.
    pub administration_role_arn: Option<String>,
}

fn call_as(targets: &Targets) -> CallAs {
    if targets.delegated_admin() {
        CallAs::DelegatedAdmin
    } else {
        CallAs::SelfValue
    }
}

/// The rollout settings every operation is sent with.
pub fn preferences(targets: &Targets) -> StackSetOperationPreferences {
    StackSetOperationPreferences::builder()
        .set_region_order(Some(targets.regions.clone()))
        .region_concurrency_type(match targets.region_concurrency {
            RegionConcurrency::Sequential => RegionConcurrencyType::Sequential,
            RegionConcurrency::Parallel => RegionConcurrencyType::Parallel,
        })
        .max_concurrent_count(i32::try_from(targets.max_concurrent_accounts).unwrap_or(i32::MAX))
        .failure_tolerance_count(i32::try_from(targets.failure_tolerance).unwrap_or(i32::MAX))
        .build()
}

/// The accounts of an instance operation of a self-managed stack set (`Accounts`, which
/// AWS takes for self-managed stack sets as it takes `DeploymentTargets.Accounts`).
fn self_managed(targets: &Targets, accounts: &[String]) -> Option<Vec<String>> {
    (!targets.service_managed()).then(|| accounts.to_vec())
}

/// The organizational units of an instance operation of a service-managed stack set.
fn service_managed(targets: &Targets) -> Option<DeploymentTargets> {
    match &targets.deployment {
        Deployment::Accounts { .. } => None,
        Deployment::OrganizationalUnits { units, .. } => Some(
            DeploymentTargets::builder()
                .set_organizational_unit_ids(Some(units.clone()))
                .build(),
        ),
    }
}

/// Automatic deployment to accounts that join the units (service-managed only).
fn auto_deployment(targets: &Targets) -> Option<AutoDeployment> {
    match &targets.deployment {
        Deployment::Accounts { .. } => None,
        Deployment::OrganizationalUnits {
            auto_deployment,
            retain_stacks_on_account_removal,
            ..
        } => Some(
            AutoDeployment::builder()
                .enabled(*auto_deployment)
                .set_retain_stacks_on_account_removal(
                    auto_deployment.then_some(*retain_stacks_on_account_removal),
                )
                .build(),
        ),
    }
}

/// The stack set, or `None` when it does not exist (or was deleted).
pub async fn describe(aws: &Aws, name: &str, targets: &Targets) -> Result<Option<StackSetView>> {
    match aws
        .cloudformation
        .describe_stack_set()
        .stack_set_name(name)
        .call_as(call_as(targets))
        .send()
        .await
    {
        Ok(out) => {
            let Some(set) = out.stack_set() else {
                return Ok(None);
            };
            let status = set
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            if status == "DELETED" {
                return Ok(None);
            }
            Ok(Some(StackSetView {
                name: name.to_owned(),
                id: set.stack_set_id().unwrap_or_default().to_owned(),
                status,
                permission_model: set
                    .permission_model()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                template_body: set.template_body().unwrap_or_default().to_owned(),
                parameters: StackParameters::from_cfn(set.parameters().iter().map(|p| {
                    (
                        p.parameter_key().unwrap_or_default(),
                        p.parameter_value().unwrap_or_default(),
                    )
                })),
            }))
        }
        Err(error) if error.code() == Some("StackSetNotFoundException") => Ok(None),
        Err(error) => {
            Err(sdk_error(error)).with_context(|| format!("failed to read stack set {name}"))
        }
    }
}

/// Creates the stack set (no instances yet).
pub async fn create(aws: &Aws, definition: &Definition<'_>) -> Result<()> {
    let targets = definition.targets;
    let mut request = aws
        .cloudformation
        .create_stack_set()
        .stack_set_name(definition.name)
        .description(&definition.description)
        .template_url(definition.template_url)
        .set_parameters(Some(cfn::cfn_parameters(definition.parameters)))
        .set_tags(Some(cfn::cfn_tags(definition.tags)))
        .capabilities(Capability::CapabilityIam)
        .call_as(call_as(targets));
    request = match &targets.deployment {
        Deployment::Accounts { execution_role, .. } => request
            .permission_model(PermissionModels::SelfManaged)
            .set_administration_role_arn(definition.administration_role_arn.clone())
            .execution_role_name(execution_role),
        Deployment::OrganizationalUnits { .. } => request
            .permission_model(PermissionModels::ServiceManaged)
            .set_auto_deployment(auto_deployment(targets)),
    };
    request
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to create stack set {}", definition.name))?;
    Ok(())
}

/// Updates the template, parameters and tags of the stack set and of every stack instance;
/// returns the operation's id.
pub async fn update(aws: &Aws, definition: &Definition<'_>) -> Result<String> {
    let targets = definition.targets;
    let mut request = aws
        .cloudformation
        .update_stack_set()
        .stack_set_name(definition.name)
        .description(&definition.description)
        .template_url(definition.template_url)
        .set_parameters(Some(cfn::cfn_parameters(definition.parameters)))
        .set_tags(Some(cfn::cfn_tags(definition.tags)))
        .capabilities(Capability::CapabilityIam)
        .operation_preferences(preferences(targets))
        .call_as(call_as(targets));
    request = match &targets.deployment {
        Deployment::Accounts { execution_role, .. } => request
            .permission_model(PermissionModels::SelfManaged)
            .set_administration_role_arn(definition.administration_role_arn.clone())
            .execution_role_name(execution_role),
        Deployment::OrganizationalUnits { .. } => {
            request.set_auto_deployment(auto_deployment(targets))
        }
    };
    let out = request
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to update stack set {}", definition.name))?;
    Ok(out.operation_id().unwrap_or_default().to_owned())
}

/// Creates stack instances for `accounts` (self-managed) or the units (service-managed) in
/// `regions`; returns the operation's id.
pub async fn create_instances(
    aws: &Aws,
    name: &str,
    targets: &Targets,
    accounts: &[String],
    regions: &[String],
) -> Result<String> {
    let out = aws
        .cloudformation
        .create_stack_instances()
        .stack_set_name(name)
        .set_accounts(self_managed(targets, accounts))
        .set_deployment_targets(service_managed(targets))
        .set_regions(Some(regions.to_vec()))
        .operation_preferences(preferences(targets))
        .call_as(call_as(targets))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to create stack instances of {name}"))?;
    Ok(out.operation_id().unwrap_or_default().to_owned())
}

/// Deletes the stack instances (and their stacks) of `accounts` or the units in `regions`;
/// returns the operation's id.
pub async fn delete_instances(
    aws: &Aws,
    name: &str,
    targets: &Targets,
    accounts: &[String],
    regions: &[String],
) -> Result<String> {
    let out = aws
        .cloudformation
        .delete_stack_instances()
        .stack_set_name(name)
        .set_accounts(self_managed(targets, accounts))
        .set_deployment_targets(service_managed(targets))
        .set_regions(Some(regions.to_vec()))
        .retain_stacks(false)
        .operation_preferences(preferences(targets))
        .call_as(call_as(targets))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to delete stack instances of {name}"))?;
    Ok(out.operation_id().unwrap_or_default().to_owned())
}

/// Every stack instance, every page.
pub async fn instances(aws: &Aws, name: &str, targets: &Targets) -> Result<Vec<InstanceView>> {
    let mut found = Vec::new();
    let mut pages = aws
        .cloudformation
        .list_stack_instances()
        .stack_set_name(name)
        .call_as(call_as(targets))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("failed to list the stack instances of {name}"))?;
        for i in page.summaries() {
            found.push(InstanceView {
                account: i.account().unwrap_or_default().to_owned(),
                region: i.region().unwrap_or_default().to_owned(),
                status: i
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                detailed_status: i
                    .stack_instance_status()
                    .and_then(|s| s.detailed_status())
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: i.status_reason().map(str::to_owned),
                drift: i.drift_status().map(|s| s.as_str().to_owned()),
                organizational_unit: i.organizational_unit_id().map(str::to_owned),
                stack_id: i.stack_id().map(str::to_owned),
            });
        }
    }
    found.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
    Ok(found)
}

/// Waits for an operation to end, printing each account and region as its status changes;
/// returns how it ended with every account's and region's result.
pub async fn wait(
    aws: &Aws,
    name: &str,
    targets: &Targets,
    operation_id: &str,
    output: Output,
) -> Result<Operation> {
    let started = std::time::Instant::now();
    let mut shown: BTreeMap<(String, String), String> = BTreeMap::new();
    loop {
        let described = aws
            .cloudformation
            .describe_stack_set_operation()
            .stack_set_name(name)
            .operation_id(operation_id)
            .call_as(call_as(targets))
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to read operation {operation_id} of {name}"))?;
        let Some(operation) = described.stack_set_operation() else {
            bail!("stack set {name} has no operation {operation_id}");
        };
        let status = operation
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let results = results(aws, name, targets, operation_id).await?;
        for result in &results {
            let key = (result.account.clone(), result.region.clone());
            if shown.get(&key) != Some(&result.status) {
                output.progress(format!(
                    "  {:<12} {:<16} {:<10} {}",
                    result.account,
                    result.region,
                    result.status,
                    result.reason.as_deref().unwrap_or_default()
                ));
                shown.insert(key, result.status.clone());
            }
        }
        if !matches!(status.as_str(), "RUNNING" | "QUEUED" | "STOPPING") {
            return Ok(Operation {
                id: operation_id.to_owned(),
                action: operation
                    .action()
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default(),
                status,
                reason: operation.status_reason().map(str::to_owned),
                results,
            });
        }
        if started.elapsed() > MAX_WAIT {
            bail!(
                "operation {operation_id} of stack set {name} is still {status} after 36 hours; \
                 `cargo xtask status` shows where it is"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every account's and region's result of an operation, every page.
async fn results(
    aws: &Aws,
    name: &str,
    targets: &Targets,
    operation_id: &str,
) -> Result<Vec<OperationResult>> {
    let mut found = Vec::new();
    let mut pages = aws
        .cloudformation
        .list_stack_set_operation_results()
        .stack_set_name(name)
        .operation_id(operation_id)
        .call_as(call_as(targets))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("failed to read the results of operation {operation_id}"))?;
        for r in page.summaries() {
            found.push(OperationResult {
                account: r.account().unwrap_or_default().to_owned(),
                region: r.region().unwrap_or_default().to_owned(),
                status: r
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: r.status_reason().map(str::to_owned),
            });
        }
    }
    Ok(found)
}

/// Deletes the (empty) stack set.
pub async fn delete(aws: &Aws, name: &str, targets: &Targets) -> Result<()> {
    aws.cloudformation
        .delete_stack_set()
        .stack_set_name(name)
        .call_as(call_as(targets))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to delete stack set {name}"))?;
    Ok(())
}

/// The pairs of `accounts` × `regions` that have no stack instance yet, as the accounts and
/// regions to create them in (one call covers them; existing pairs are left alone by AWS).
pub fn missing(
    accounts: &[String],
    regions: &[String],
    existing: &[InstanceView],
) -> Option<(Vec<String>, Vec<String>)> {
    let have: BTreeSet<(&str, &str)> = existing
        .iter()
        .map(|i| (i.account.as_str(), i.region.as_str()))
        .collect();
    let mut missing_accounts = Vec::new();
    let mut missing_regions = Vec::new();
    for account in accounts {
        for region in regions {
            if !have.contains(&(account.as_str(), region.as_str())) {
                if !missing_accounts.contains(account) {
                    missing_accounts.push(account.clone());
                }
                if !missing_regions.contains(region) {
                    missing_regions.push(region.clone());
                }
            }
        }
    }
    (!missing_accounts.is_empty()).then(|| {
        // Keep the rollout's region order.
        missing_regions.sort_by_key(|r| regions.iter().position(|x| x == r));
        (missing_accounts, missing_regions)
    })
}

/// The stack instances outside `accounts` × `regions` (self-managed) or outside `regions`
/// (service-managed, where AWS resolves the accounts).
pub fn untargeted<'a>(targets: &Targets, existing: &'a [InstanceView]) -> Vec<&'a InstanceView> {
    existing
        .iter()
        .filter(|i| {
            !targets.regions.contains(&i.region)
                || (!targets.service_managed() && !targets.accounts().contains(&i.account))
        })
        .collect()
}

/// The template a stack runs now.
pub async fn current_template(aws: &Aws, stack: &str) -> Result<String> {
    let out = aws
        .cloudformation
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to read the template of stack {stack}"))?;
    Ok(out.template_body().unwrap_or_default().to_owned())
}

/// Updates a stack's template and parameters with the caller's own permissions.
pub async fn update_stack(
    aws: &Aws,
    stack: &str,
    body: &str,
    parameters: &BTreeMap<String, String>,
) -> Result<()> {
    aws.cloudformation
        .update_stack()
        .stack_name(stack)
        .template_body(body)
        .set_parameters(Some(cfn::cfn_parameters(parameters)))
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to update stack {stack}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(account: &str, region: &str) -> InstanceView {
        InstanceView {
            account: account.into(),
            region: region.into(),
            ..InstanceView::default()
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_the_missing_accounts_and_regions_are_created_in_rollout_order() {
        let accounts = strings(&["111111111111", "222222222222"]);
        let regions = strings(&["us-east-1", "eu-west-1"]);
        assert_eq!(
            missing(&accounts, &regions, &[]),
            Some((accounts.clone(), regions.clone()))
        );
        let all: Vec<InstanceView> = accounts
            .iter()
            .flat_map(|a| regions.iter().map(move |r| instance(a, r)))
            .collect();
        assert_eq!(missing(&accounts, &regions, &all), None);
        let one_left = &all[..3];
        assert_eq!(
            missing(&accounts, &regions, one_left),
            Some((strings(&["222222222222"]), strings(&["eu-west-1"])))
        );
        let regions_reversed = strings(&["eu-west-1", "us-east-1"]);
        assert_eq!(
            missing(&accounts, &regions_reversed, &[]).map(|(_, r)| r),
            Some(regions_reversed.clone())
        );
    }

    #[test]
    fn instances_no_longer_targeted_are_found() {
        let targets =
            crate::config::targets::example("accounts: ['111111111111']\nregions: [us-east-1]")
                .unwrap();
        let existing = [
            instance("111111111111", "us-east-1"),
            instance("111111111111", "eu-west-1"),
            instance("222222222222", "us-east-1"),
        ];
        let gone: Vec<(&str, &str)> = untargeted(&targets, &existing)
            .iter()
            .map(|i| (i.account.as_str(), i.region.as_str()))
            .collect();
        assert_eq!(
            gone,
            [("111111111111", "eu-west-1"), ("222222222222", "us-east-1")]
        );
    }

    #[test]
    fn an_operation_lists_each_failed_account_and_region_with_its_reason() {
        let operation = Operation {
            id: "op".into(),
            action: "CREATE".into(),
            status: "FAILED".into(),
            reason: None,
            results: vec![
                OperationResult {
                    account: "111111111111".into(),
                    region: "us-east-1".into(),
                    status: "SUCCEEDED".into(),
                    reason: None,
                },
                OperationResult {
                    account: "222222222222".into(),
                    region: "eu-west-1".into(),
                    status: "FAILED".into(),
                    reason: Some("ResourceLogicalId:Function, ResourceType:AWS::Lambda::Function, ResourceStatusReason:Access Denied".into()),
                },
            ],
        };
        assert!(!operation.succeeded());
        assert_eq!(
            operation.failures(),
            [
                "222222222222/eu-west-1: FAILED: ResourceLogicalId:Function, ResourceType:AWS::Lambda::Function, ResourceStatusReason:Access Denied"
            ]
        );
    }

    /// Organizational units: what the emulator accepts but does not deploy, proven on the
    /// requests the SDK sends.
    mod service_managed {
        use super::*;
        use aws_sdk_cloudformation::Client;
        use aws_sdk_cloudformation::operation::create_stack_instances::{
            CreateStackInstancesInput, CreateStackInstancesOutput,
        };
        use aws_sdk_cloudformation::operation::create_stack_set::{
            CreateStackSetInput, CreateStackSetOutput,
        };
        use aws_sdk_cloudformation::operation::delete_stack_instances::{
            DeleteStackInstancesInput, DeleteStackInstancesOutput,
        };
        use aws_sdk_cloudformation::operation::update_stack_set::{
            UpdateStackSetInput, UpdateStackSetOutput,
        };
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        use std::sync::{Arc, Mutex};

        fn units(delegated: bool) -> Targets {
            crate::config::targets::example(&format!(
                "organizational_units: [ou-ab12-cdef3456, ou-ab12-ghij7890]\n\
                     organization_id: o-a1b2c3d4e5\nmember_role: OrganizationAccountAccessRole\n\
                     regions: [eu-west-1, eu-central-1]\nregion_concurrency: parallel\n\
                     max_concurrent_accounts: 10\nfailure_tolerance: 9\n\
                     retain_stacks_on_account_removal: true\ndelegated_admin: {delegated}"
            ))
            .unwrap()
        }

        fn aws(client: Client) -> Aws {
            let sdk = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build();
            let mut aws = Aws::from_sdk(&sdk, "us-east-1".into());
            aws.cloudformation = client;
            aws
        }

        fn check_preferences(preferences: Option<&StackSetOperationPreferences>) {
            let preferences = preferences.unwrap();
            assert_eq!(preferences.region_order(), ["eu-west-1", "eu-central-1"]);
            assert_eq!(
                preferences.region_concurrency_type(),
                Some(&RegionConcurrencyType::Parallel)
            );
            assert_eq!(preferences.max_concurrent_count(), Some(10));
            assert_eq!(preferences.failure_tolerance_count(), Some(9));
        }

        #[tokio::test]
        async fn units_are_sent_as_service_managed_targets_with_auto_deployment() {
            for delegated in [false, true] {
                let targets = units(delegated);
                let expected_call_as = if delegated {
                    CallAs::DelegatedAdmin
                } else {
                    CallAs::SelfValue
                };
                let created: Arc<Mutex<Vec<CreateStackSetInput>>> = Arc::default();
                let updated: Arc<Mutex<Vec<UpdateStackSetInput>>> = Arc::default();
                let instances: Arc<Mutex<Vec<CreateStackInstancesInput>>> = Arc::default();
                let deleted: Arc<Mutex<Vec<DeleteStackInstancesInput>>> = Arc::default();
                let (c, u, i, d) = (
                    Arc::clone(&created),
                    Arc::clone(&updated),
                    Arc::clone(&instances),
                    Arc::clone(&deleted),
                );
                let create_rule = mock!(Client::create_stack_set).then_compute_output(move |r| {
                    c.lock().unwrap().push(r.clone());
                    CreateStackSetOutput::builder().stack_set_id("id").build()
                });
                let update_rule = mock!(Client::update_stack_set).then_compute_output(move |r| {
                    u.lock().unwrap().push(r.clone());
                    UpdateStackSetOutput::builder().operation_id("op-u").build()
                });
                let instances_rule =
                    mock!(Client::create_stack_instances).then_compute_output(move |r| {
                        i.lock().unwrap().push(r.clone());
                        CreateStackInstancesOutput::builder()
                            .operation_id("op-c")
                            .build()
                    });
                let delete_rule =
                    mock!(Client::delete_stack_instances).then_compute_output(move |r| {
                        d.lock().unwrap().push(r.clone());
                        DeleteStackInstancesOutput::builder()
                            .operation_id("op-d")
                            .build()
                    });
                let aws = aws(mock_client!(
                    aws_sdk_cloudformation,
                    RuleMode::MatchAny,
                    [&create_rule, &update_rule, &instances_rule, &delete_rule]
                ));
                let parameters = BTreeMap::from([("DeploymentName".to_owned(), "x".to_owned())]);
                let tags = BTreeMap::new();
                let definition = Definition {
                    name: "smartvault-org",
                    template_url: "https://b.s3.eu-west-1.amazonaws.com/artifacts/templates/t.yaml",
                    parameters: &parameters,
                    tags: &tags,
                    description: "d".into(),
                    targets: &targets,
                    administration_role_arn: None,
                };
                create(&aws, &definition).await.unwrap();
                assert_eq!(update(&aws, &definition).await.unwrap(), "op-u");
                let op = create_instances(&aws, "smartvault-org", &targets, &[], &targets.regions)
                    .await
                    .unwrap();
                assert_eq!(op, "op-c");
                delete_instances(&aws, "smartvault-org", &targets, &[], &targets.regions)
                    .await
                    .unwrap();

                let created = created.lock().unwrap();
                let set = &created[0];
                assert_eq!(
                    set.permission_model(),
                    Some(&PermissionModels::ServiceManaged)
                );
                let auto = set.auto_deployment().unwrap();
                assert_eq!(auto.enabled(), Some(true));
                assert_eq!(auto.retain_stacks_on_account_removal(), Some(true));
                assert_eq!(set.call_as(), Some(&expected_call_as));
                // By URL, never inline: a template in the request may hold only 51,200 bytes.
                assert_eq!(
                    set.template_url(),
                    Some("https://b.s3.eu-west-1.amazonaws.com/artifacts/templates/t.yaml")
                );
                assert_eq!(set.template_body(), None);
                assert_eq!(
                    updated.lock().unwrap()[0].template_url().map(str::to_owned),
                    Some("https://b.s3.eu-west-1.amazonaws.com/artifacts/templates/t.yaml".into())
                );
                assert_eq!(set.capabilities(), [Capability::CapabilityIam]);
                assert_eq!(set.administration_role_arn(), None);
                assert_eq!(set.execution_role_name(), None);
                let updated = updated.lock().unwrap();
                assert_eq!(updated[0].call_as(), Some(&expected_call_as));
                assert_eq!(updated[0].auto_deployment().unwrap().enabled(), Some(true));
                // Every instance, since neither targets nor regions are named.
                assert!(updated[0].deployment_targets().is_none());
                assert!(updated[0].regions().is_empty());
                check_preferences(updated[0].operation_preferences());
                let instances = instances.lock().unwrap();
                let request = &instances[0];
                assert!(request.accounts().is_empty(), "units, not accounts");
                assert_eq!(
                    request
                        .deployment_targets()
                        .unwrap()
                        .organizational_unit_ids(),
                    ["ou-ab12-cdef3456", "ou-ab12-ghij7890"]
                );
                assert_eq!(request.regions(), ["eu-west-1", "eu-central-1"]);
                assert_eq!(request.call_as(), Some(&expected_call_as));
                check_preferences(request.operation_preferences());
                let deleted = deleted.lock().unwrap();
                assert_eq!(
                    deleted[0]
                        .deployment_targets()
                        .unwrap()
                        .organizational_unit_ids(),
                    ["ou-ab12-cdef3456", "ou-ab12-ghij7890"]
                );
                assert_eq!(deleted[0].retain_stacks(), Some(false));
                assert_eq!(deleted[0].call_as(), Some(&expected_call_as));
            }
        }

        #[test]
        fn accounts_are_sent_as_self_managed_accounts() {
            let targets =
                crate::config::targets::example("accounts: ['111111111111']\nregions: [us-east-1]")
                    .unwrap();
            let accounts = vec!["111111111111".to_owned()];
            assert_eq!(self_managed(&targets, &accounts), Some(accounts));
            assert!(service_managed(&targets).is_none());
            assert_eq!(call_as(&targets), CallAs::SelfValue);
        }
    }
}
