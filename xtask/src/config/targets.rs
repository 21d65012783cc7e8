//! An environment's `targets:` (one stack set across accounts or organizational units and
//! regions, with its rollout), validated before any AWS call, and the names derived from it.

use serde::{Deserialize, Serialize};

/// The role self-managed stack sets act as in each target account, unless `execution_role`
/// names another: what templates/stackset-roles.yaml makes.
pub const EXECUTION_ROLE: &str = "smartvault-stackset-execution";
/// The role the administrator account's CloudFormation assumes the execution roles with.
pub const ADMINISTRATION_ROLE: &str = "smartvault-stackset-administration";
/// S3's limit on a bucket name.
pub const MAX_BUCKET_CHARS: usize = 63;
/// The suffix of the stack, in the administrator account and each target region, that holds
/// the artifact bucket the targets read (templates/organization.yaml).
pub const ARTIFACTS_SUFFIX: &str = "-artifacts";

/// `targets:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargets {
    pub accounts: Option<Vec<String>>,
    pub organizational_units: Option<Vec<String>>,
    pub organization_id: Option<String>,
    pub auto_deployment: Option<bool>,
    pub retain_stacks_on_account_removal: Option<bool>,
    pub regions: Vec<String>,
    pub region_concurrency: Option<RegionConcurrency>,
    pub max_concurrent_accounts: Option<u32>,
    pub failure_tolerance: Option<u32>,
    pub execution_role: Option<String>,
    pub member_role: Option<String>,
    pub delegated_admin: Option<bool>,
    pub central_topic: Option<RawCentralTopic>,
}

/// `targets.central_topic:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCentralTopic {
    pub notification_emails: Vec<String>,
}

/// The most addresses a topic's template subscribes.
const MAX_EMAILS: usize = 3;
/// The central topic's stack, and topic, in the administrator account: `<stack>-central`.
pub const CENTRAL_SUFFIX: &str = "-central";

/// Where the stack set deploys: accounts (self-managed permissions) or organizational units
/// (service-managed, through AWS Organizations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "permission_model", rename_all = "snake_case")]
pub enum Deployment {
    /// `SELF_MANAGED`: the administrator account's administration role assumes
    /// `execution_role` in each account.
    Accounts {
        accounts: Vec<String>,
        execution_role: String,
    },
    /// `SERVICE_MANAGED`: every account in the units (and their children), now and, with
    /// auto-deployment, as accounts join.
    OrganizationalUnits {
        units: Vec<String>,
        auto_deployment: bool,
        retain_stacks_on_account_removal: bool,
        /// The deployer runs in a delegated administrator account, not the management
        /// account: every StackSets call says so (`CallAs: DELEGATED_ADMIN`).
        delegated_admin: bool,
    },
}

/// How regions are rolled out: one after another in `regions`' order, or all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionConcurrency {
    Sequential,
    Parallel,
}

/// A validated `targets:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Targets {
    pub deployment: Deployment,
    /// The organization the artifact buckets are readable by (`aws:PrincipalOrgID`); with
    /// accounts and no organization, by those accounts only.
    pub organization_id: Option<String>,
    /// In rollout order.
    pub regions: Vec<String>,
    pub region_concurrency: RegionConcurrency,
    pub max_concurrent_accounts: u32,
    pub failure_tolerance: u32,
    /// The role destroy assumes in each target account to remove what the stack instance's
    /// function made there (its snapshots, copies and restore-test volumes).
    pub member_role: String,
    /// The addresses of the organization's central topic, which every member function also
    /// publishes its summaries to; empty for no central topic.
    pub central_emails: Vec<String>,
}

impl Targets {
    /// The accounts named, or none for organizational units (resolved by AWS).
    pub fn accounts(&self) -> &[String] {
        match &self.deployment {
            Deployment::Accounts { accounts, .. } => accounts,
            Deployment::OrganizationalUnits { .. } => &[],
        }
    }

    pub fn service_managed(&self) -> bool {
        matches!(self.deployment, Deployment::OrganizationalUnits { .. })
    }

    /// The deployer acts as a delegated administrator of the organization.
    pub fn delegated_admin(&self) -> bool {
        matches!(
            self.deployment,
            Deployment::OrganizationalUnits {
                delegated_admin: true,
                ..
            }
        )
    }

    /// What the preview and `render` print about the rollout.
    pub fn describe(&self, stack: &str) -> String {
        let whom = match &self.deployment {
            Deployment::Accounts { accounts, .. } => format!("accounts {}", accounts.join(", ")),
            Deployment::OrganizationalUnits {
                units,
                auto_deployment,
                ..
            } => format!(
                "organizational units {} ({})",
                units.join(", "),
                if *auto_deployment {
                    "accounts that join are deployed to automatically"
                } else {
                    "no automatic deployment"
                }
            ),
        };
        format!(
            "stack set {stack} to {whom} in {} ({}; at most {} account(s) at a time, {} \
             failure(s) tolerated per region)",
            self.regions.join(", "),
            match self.region_concurrency {
                RegionConcurrency::Sequential => "regions one after another",
                RegionConcurrency::Parallel => "regions in parallel",
            },
            self.max_concurrent_accounts,
            self.failure_tolerance
        )
    }
}

/// The artifact bucket of `region` in `admin_account`: `<stack>-<account>-<region>`, named so
/// that one stack set parameter (`<stack>-<account>`) finds it in every region.
pub fn bucket_prefix(stack: &str, admin_account: &str) -> String {
    format!("{stack}-{admin_account}")
}

/// The stack in the administrator account and `region` that holds that region's bucket.
pub fn artifacts_stack(stack: &str) -> String {
    format!("{stack}{ARTIFACTS_SUFFIX}")
}

/// The central topic's stack and topic in the administrator account.
pub fn central_stack(stack: &str) -> String {
    format!("{stack}{CENTRAL_SUFFIX}")
}

/// What else of the environment `targets:` must fit.
pub struct Around<'a> {
    pub stack_name: &'a str,
    /// The environment's region: where the stack set is administered.
    pub region: &'a str,
    pub copy_regions: Vec<&'a str>,
    pub termination_protection: bool,
    pub reserved_concurrency: Option<u32>,
}

/// Validates `targets:`; `Err((key, problem))` names the key under `targets` and the fix.
pub fn resolve(raw: &RawTargets, around: &Around<'_>) -> Result<Targets, (String, String)> {
    let fail = |key: &str, problem: String| Err((format!("targets.{key}"), problem));
    let kinds = "`accounts` (a list of 12-digit account ids; self-managed permissions) or \
                 `organizational_units` (OU or root ids such as ou-ab12-cdef3456; \
                 service-managed through AWS Organizations)";
    let deployment = match (&raw.accounts, &raw.organizational_units) {
        (Some(_), Some(_)) => {
            return fail("accounts", format!("give either {kinds}, not both"));
        }
        (None, None) => {
            return fail(
                "accounts",
                format!("targets: names no account and no unit; give {kinds}"),
            );
        }
        (Some(accounts), None) => {
            if accounts.is_empty() {
                return fail("accounts", "list at least one account id".into());
            }
            if let Some(bad) = accounts.iter().find(|a| !is_account(a)) {
                return fail(
                    "accounts",
                    format!(
                        "{bad:?} is not a 12-digit AWS account id; write it in quotes, e.g. \
                         \"111111111111\""
                    ),
                );
            }
            if let Some(twice) = first_repeat(accounts) {
                return fail("accounts", format!("{twice} is listed twice; keep one"));
            }
            for key in [
                ("auto_deployment", raw.auto_deployment.is_some()),
                ("delegated_admin", raw.delegated_admin.is_some()),
                (
                    "retain_stacks_on_account_removal",
                    raw.retain_stacks_on_account_removal.is_some(),
                ),
            ] {
                if key.1 {
                    return fail(
                        key.0,
                        "applies to organizational units only (accounts joining a unit); \
                         remove it, or target `organizational_units`"
                            .into(),
                    );
                }
            }
            let execution_role = raw
                .execution_role
                .clone()
                .unwrap_or_else(|| EXECUTION_ROLE.to_owned());
            if !is_role_name(&execution_role) {
                return fail(
                    "execution_role",
                    format!(
                        "{execution_role:?} is not an IAM role name (1 to 64 of letters, digits \
                         and +=,.@_-)"
                    ),
                );
            }
            Deployment::Accounts {
                accounts: accounts.clone(),
                execution_role,
            }
        }
        (None, Some(units)) => {
            if units.is_empty() {
                return fail(
                    "organizational_units",
                    "list at least one OU or root id".into(),
                );
            }
            if let Some(bad) = units.iter().find(|u| !is_unit(u)) {
                return fail(
                    "organizational_units",
                    format!(
                        "{bad:?} is not an organizational unit or root id; write e.g. \
                         ou-ab12-cdef3456 or r-ab12 (AWS Organizations shows them)"
                    ),
                );
            }
            if let Some(twice) = first_repeat(units) {
                return fail(
                    "organizational_units",
                    format!("{twice} is listed twice; keep one"),
                );
            }
            if raw.execution_role.is_some() {
                return fail(
                    "execution_role",
                    "service-managed stack sets act through the roles AWS Organizations \
                     creates; remove it (it applies to `accounts`)"
                        .into(),
                );
            }
            let auto_deployment = raw.auto_deployment.unwrap_or(true);
            if !auto_deployment && raw.retain_stacks_on_account_removal.is_some() {
                return fail(
                    "retain_stacks_on_account_removal",
                    "applies only with `auto_deployment: true`; remove it".into(),
                );
            }
            Deployment::OrganizationalUnits {
                units: units.clone(),
                auto_deployment,
                retain_stacks_on_account_removal: raw
                    .retain_stacks_on_account_removal
                    .unwrap_or(false),
                delegated_admin: raw.delegated_admin.unwrap_or(false),
            }
        }
    };
    let organization_id = raw.organization_id.clone();
    match &organization_id {
        Some(id) if !is_organization(id) => {
            return fail(
                "organization_id",
                format!(
                    "{id:?} is not an organization id; write e.g. o-a1b2c3d4e5 (`aws \
                     organizations describe-organization` shows it)"
                ),
            );
        }
        None if matches!(deployment, Deployment::OrganizationalUnits { .. }) => {
            return fail(
                "organization_id",
                "organizational units need the organization's id (e.g. o-a1b2c3d4e5): the \
                 artifact buckets are readable by that organization only"
                    .into(),
            );
        }
        _ => {}
    }

    if raw.regions.is_empty() {
        return fail(
            "regions",
            "list at least one region, e.g. [eu-west-1]".into(),
        );
    }
    let partition = crate::config::regions::partition_of(around.region);
    for region in &raw.regions {
        if crate::config::regions::partition_of(region).is_none()
            || crate::config::regions::partition_of(region) != partition
        {
            return fail(
                "regions",
                format!(
                    "{region:?} is not an AWS region of the environment's partition ({}); use \
                     one of {}",
                    partition.unwrap_or("unknown"),
                    crate::config::regions::others_in_partition(around.region).join(", ")
                ),
            );
        }
    }
    if let Some(twice) = first_repeat(&raw.regions) {
        return fail("regions", format!("{twice} is listed twice; keep one"));
    }
    if let Some(region) = around
        .copy_regions
        .iter()
        .find(|r| raw.regions.iter().any(|t| t == *r))
    {
        return fail(
            "regions",
            format!(
                "{region} is both a target region and a copy region (`copies`): each stack \
                 instance would copy into a region where another instance backs up under the \
                 same name; copy to a region that is not a target"
            ),
        );
    }
    // Every region's bucket is `<stack>-<12-digit account>-<region>`, and S3 takes lowercase.
    if around.stack_name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err((
            "stack_name".into(),
            format!(
                "{:?} names the organization's artifact buckets (<stack>-<account>-<region>), \
                 and S3 bucket names are lowercase; use a lowercase stack name",
                around.stack_name
            ),
        ));
    }
    let longest = raw.regions.iter().map(String::len).max().unwrap_or(0);
    let bucket = around.stack_name.len() + 1 + 12 + 1 + longest;
    if bucket > MAX_BUCKET_CHARS {
        return Err((
            "stack_name".into(),
            format!(
                "{:?} is too long for an organization's artifact buckets \
                 (<stack>-<account>-<region>, at most {MAX_BUCKET_CHARS} characters for S3; \
                 {bucket} with {}); use a stack name of at most {} characters",
                around.stack_name,
                raw.regions
                    .iter()
                    .max_by_key(|r| r.len())
                    .map(String::as_str)
                    .unwrap_or_default(),
                MAX_BUCKET_CHARS - 14 - longest
            ),
        ));
    }

    let failure_tolerance = raw.failure_tolerance.unwrap_or(0);
    let max_concurrent_accounts = raw.max_concurrent_accounts.unwrap_or(1);
    if max_concurrent_accounts == 0 {
        return fail("max_concurrent_accounts", "must be at least 1".into());
    }
    // StackSetOperationPreferences: "MaxConcurrentCount is at most one more than the
    // FailureToleranceCount" (checked against botocore's model in a test).
    if max_concurrent_accounts > failure_tolerance + 1 {
        return fail(
            "max_concurrent_accounts",
            format!(
                "{max_concurrent_accounts} accounts at a time needs `failure_tolerance` of at \
                 least {} (CloudFormation allows at most one more account at a time than \
                 failures tolerated); raise failure_tolerance or lower max_concurrent_accounts \
                 to {}",
                max_concurrent_accounts - 1,
                failure_tolerance + 1
            ),
        );
    }
    if around.termination_protection {
        return Err((
            "termination_protection".into(),
            "stack sets have no termination protection; remove it (deleting an organization's \
             environment always asks, and `destroy` lists every stack instance first)"
                .into(),
        ));
    }
    if around.reserved_concurrency.is_some() {
        return Err((
            "reserved_concurrency".into(),
            "cannot be checked against each target account's Lambda quota before the rollout, \
             and an account without room fails its stack instance mid-deploy; remove it for \
             an organization's environment"
                .into(),
        ));
    }
    let member_role = match (&raw.member_role, &deployment) {
        (Some(role), _) => role.clone(),
        (None, Deployment::Accounts { execution_role, .. }) => execution_role.clone(),
        (None, Deployment::OrganizationalUnits { .. }) => {
            return fail(
                "member_role",
                "name the role destroy assumes in each member account to remove the snapshots \
                 its stack instance made (e.g. OrganizationAccountAccessRole, or \
                 AWSControlTowerExecution); service-managed stack sets give the administrator \
                 no role there"
                    .into(),
            );
        }
    };
    if !is_role_name(&member_role) {
        return fail(
            "member_role",
            format!(
                "{member_role:?} is not an IAM role name (1 to 64 of letters, digits and +=,.@_-)"
            ),
        );
    }
    let central_emails = match &raw.central_topic {
        None => Vec::new(),
        Some(central) => {
            let emails = &central.notification_emails;
            if emails.is_empty() || emails.len() > MAX_EMAILS {
                return fail(
                    "central_topic.notification_emails",
                    format!("list 1 to {MAX_EMAILS} addresses, e.g. [backup-team@example.com]"),
                );
            }
            if let Some(bad) = emails.iter().find(|e| !crate::config::names::is_email(e)) {
                return fail(
                    "central_topic.notification_emails",
                    format!("{bad:?} is not an email address; write e.g. backup-team@example.com"),
                );
            }
            emails.clone()
        }
    };
    Ok(Targets {
        deployment,
        central_emails,
        organization_id,
        regions: raw.regions.clone(),
        region_concurrency: raw
            .region_concurrency
            .unwrap_or(RegionConcurrency::Sequential),
        max_concurrent_accounts,
        failure_tolerance,
        member_role,
    })
}

fn first_repeat(items: &[String]) -> Option<&str> {
    items
        .iter()
        .enumerate()
        .find(|(i, item)| items[..*i].contains(item))
        .map(|(_, item)| item.as_str())
}

/// `^[0-9]{12}$`, the `Account` pattern of AWS::CloudFormation::StackSet's schema.
pub fn is_account(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// `^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$`, the `OrganizationalUnitId`
/// pattern of AWS::CloudFormation::StackSet's schema.
pub fn is_unit(id: &str) -> bool {
    let lower = |s: &str, range: std::ops::RangeInclusive<usize>| {
        range.contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(rest) = id.strip_prefix("ou-") {
        return rest
            .split_once('-')
            .is_some_and(|(root, unit)| lower(root, 4..=32) && lower(unit, 8..=32));
    }
    id.strip_prefix("r-")
        .is_some_and(|root| lower(root, 4..=32))
}

/// `^o-[a-z0-9]{10,32}$`, AWS Organizations' organization id.
pub fn is_organization(id: &str) -> bool {
    id.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// IAM's role name: 1 to 64 of `[\w+=,.@-]`.
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// `targets:` from YAML for an environment `smartvault-org` administered from us-east-1, for
/// tests.
#[cfg(test)]
pub fn example(yaml: &str) -> Result<Targets, (String, String)> {
    resolve(
        &serde_norway::from_str(yaml).expect("targets YAML"),
        &Around {
            stack_name: "smartvault-org",
            region: "us-east-1",
            copy_regions: vec![],
            termination_protection: false,
            reserved_concurrency: None,
        },
    )
}

#[cfg(test)]
mod tests;
