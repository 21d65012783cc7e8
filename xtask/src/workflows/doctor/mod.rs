//! `cargo xtask doctor`'s questions to AWS itself, read-only: the account, the bootstrap, the
//! execution role's trust, the deployer's and the execution role's permissions (IAM's own
//! policy simulator, with the real resource ARNs), Lambda's unreserved concurrency, the EBS
//! snapshot quota (Service Quotas), the volumes' KMS keys and their key policies. `deploy`
//! asks the fast part ([`before_deploy`]) first.

pub mod verdicts;

use crate::aws::Aws;
use crate::config::Environment;
use crate::stack::template::BOOTSTRAP_STACK;
use verdicts::{Check, Target};

/// Every check, in the order a deploy depends on them.
pub async fn all(aws: &Aws, env: &Environment) -> Vec<Check> {
    let mut checks = Vec::new();
    let caller = match crate::aws::caller(aws).await {
        Ok(identity) => identity,
        Err(why) => {
            checks.push(Check::fail(
                "credentials",
                format!("sts:GetCallerIdentity failed: {why}"),
                "give credentials for the environment's account (--profile, or role_arn or \
                 profile in smartvault.yaml)",
            ));
            return checks;
        }
    };
    let account = caller.account.clone();
    checks.push(match env.account_id.as_deref() {
        Some(expected) if expected != account => Check::fail(
            "account",
            format!("these credentials are for account {account}, not {expected}"),
            "switch credentials, or fix account_id in smartvault.yaml",
        ),
        _ => Check::pass("account", format!("{account} as {}", caller.arn)),
    });
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    // An organization's environment deploys a stack set from this account: no bootstrap, no
    // change set; what it needs from the organization is asked instead.
    if let Some(targets) = &env.targets {
        let orgs = aws_sdk_organizations::Client::new(&aws.sdk);
        checks.extend(organization(&orgs, &iam, targets, &account).await);
        return checks;
    }
    let bootstrap = match crate::aws::cfn::describe(aws, BOOTSTRAP_STACK).await {
        Ok(view) => crate::workflows::bootstrap::usable(view.as_ref()).ok(),
        Err(error) => {
            checks.push(Check::unknown(
                "bootstrap",
                format!("could not read stack {BOOTSTRAP_STACK}: {error:#}"),
                "grant cloudformation:DescribeStacks (docs/deployer-policy.json, ReadStacks)",
            ));
            None
        }
    };
    match &bootstrap {
        Some(found) => checks.push(Check::pass(
            "bootstrap",
            format!(
                "{BOOTSTRAP_STACK} at version {} or later, bucket {}",
                crate::workflows::bootstrap::REQUIRED_VERSION,
                found.bucket
            ),
        )),
        None if checks.iter().all(|c| c.name != "bootstrap") => checks.push(Check::fail(
            "bootstrap",
            format!(
                "{BOOTSTRAP_STACK} in {} is missing or older than version {}",
                aws.region,
                crate::workflows::bootstrap::REQUIRED_VERSION
            ),
            format!(
                "an administrator runs `cargo xtask bootstrap --region {}` \
                 (docs/bootstrap-policy.json)",
                aws.region
            ),
        )),
        None => {}
    }
    if let Some(found) = &bootstrap {
        checks.push(execution_role_trust(&iam, &found.execution_role).await);
        let target = target(aws, env, found, &account);
        checks.push(deployer_permissions(&iam, &caller.arn, &target).await);
        checks.push(execution_role_permissions(&iam, found, &target).await);
    }
    checks.push(concurrency(aws, env).await);
    // One read of the backed-up volumes serves the quota and the keys.
    let quotas = aws_sdk_servicequotas::Client::new(&aws.sdk);
    let volumes = crate::aws::fleet::backed_up_volumes(aws, env).await;
    checks.push(match &volumes {
        Ok(volumes) => snapshot_quota(&quotas, &aws.ec2, volumes.len()).await,
        Err(why) => Check::unknown(
            "snapshot-quota",
            why.clone(),
            "grant ec2:DescribeInstances (docs/deployer-policy.json, ReadInventory)",
        ),
    });
    let encrypted = match &volumes {
        Ok(owner) => crate::aws::fleet::encrypted_volumes(aws, owner).await,
        Err(why) => Err(why.clone()),
    };
    let notes = match &encrypted {
        Ok(encrypted) => crate::stack::keys::notes(encrypted, &env.source_kms_keys),
        Err(why) => vec![format!("note: could not check the volumes' keys: {why}")],
    };
    checks.push(if notes.is_empty() {
        Check::pass(
            "volume-keys",
            "no backed-up volume is encrypted with a key source_kms_keys lacks",
        )
    } else {
        Check::unknown(
            "volume-keys",
            notes.join("; "),
            "list customer managed keys in source_kms_keys (docs/deployer.md)",
        )
    });
    checks.extend(vault_keys(env, &encrypted));
    checks.push(match &encrypted {
        Ok(encrypted) => key_policies(aws, env, &account, &keys_to_check(env, encrypted)).await,
        Err(why) => Check::unknown(
            KEY_POLICIES,
            why.clone(),
            "grant ec2:DescribeInstances and ec2:DescribeVolumes (docs/deployer-policy.json, \
             ReadInventory)",
        ),
    });
    checks
}

/// The check on the key policies of the volumes' and the copies' keys.
const KEY_POLICIES: &str = "kms-key-policies";

/// One KMS key the function has EC2 use on its behalf: where, which, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub region: String,
    /// A key ARN, or for a copy rule what the user wrote (an alias too).
    pub key: String,
    pub actions: &'static [&'static str],
    pub purpose: String,
}

/// Every key of the backed-up volumes (home region), and every copy rule's key (its region).
pub fn keys_to_check(
    env: &Environment,
    encrypted: &[crate::stack::keys::EncryptedVolume],
) -> Vec<KeyUse> {
    let mut keys: Vec<KeyUse> = Vec::new();
    for volume in encrypted {
        if !keys.iter().any(|k| k.key == volume.kms_key_id) {
            keys.push(KeyUse {
                region: env.region.clone(),
                key: volume.kms_key_id.clone(),
                actions: verdicts::SOURCE_KEY_ACTIONS,
                purpose: format!("the key of {}", volume.volume_id),
            });
        }
    }
    for copy in &env.copies {
        if let Some(key) = &copy.kms_key {
            keys.push(KeyUse {
                region: copy.region.clone(),
                key: key.clone(),
                actions: verdicts::COPY_KEY_ACTIONS,
                purpose: format!("the key of copies to {}", copy.region),
            });
        }
    }
    keys
}

/// Whether each customer managed key's policy lets the function's role use it through IAM, as
/// KMS requires before it honours the role's grant (AWS managed keys admit every principal of
/// the account through EC2 and are not read).
pub async fn key_policies(aws: &Aws, env: &Environment, account: &str, keys: &[KeyUse]) -> Check {
    let partition = function::copies::partition_of_region(&aws.region);
    let (mut lacking, mut unknown, mut admitted) = (Vec::new(), Vec::new(), 0);
    for key in keys {
        let (arn, document) = match crate::aws::kms::key(aws, &key.region, &key.key).await {
            Ok(crate::aws::kms::Key::AwsManaged) => {
                admitted += 1;
                continue;
            }
            Ok(crate::aws::kms::Key::Customer { arn, policy }) => (arn, policy),
            Err(why) => {
                unknown.push(format!("{} ({}): {why}", key.key, key.purpose));
                continue;
            }
        };
        let Some(document) = document else {
            unknown.push(format!(
                "{arn} ({}): the key policy is not readable JSON",
                key.purpose
            ));
            continue;
        };
        match verdicts::key_admits(&document, partition, account, &env.stack_name, key.actions) {
            verdicts::KeyAdmits::Yes => admitted += 1,
            verdicts::KeyAdmits::No(actions) => lacking.push(format!(
                "{arn} ({}) does not let the account's IAM policies use it for {}",
                key.purpose,
                actions.join(", ")
            )),
            verdicts::KeyAdmits::Conditionally(actions) => unknown.push(format!(
                "{arn} ({}) allows {} only under a condition",
                key.purpose,
                actions.join(", ")
            )),
        }
    }
    if !lacking.is_empty() {
        Check::fail(
            KEY_POLICIES,
            lacking.join("; "),
            "add AWS's \"Enable IAM User Permissions\" statement to the key policy (principal \
             the account root, kms:*), or a statement allowing those actions to this \
             environment's roles (docs/deployer.md, \"Encrypted volumes\")",
        )
    } else if !unknown.is_empty() {
        Check::unknown(
            KEY_POLICIES,
            unknown.join("; "),
            "grant kms:DescribeKey and kms:GetKeyPolicy (docs/deployer-policy.json, \
             ReadKeyPolicies), or check these key policies by hand",
        )
    } else {
        Check::pass(
            KEY_POLICIES,
            format!(
                "{admitted} key(s) of the backed-up volumes and the copies admit the function's role"
            ),
        )
    }
}

/// What `deploy` asks before it changes anything, once the bootstrap exists: whether
/// CloudFormation can assume the execution role, and whether the deployer may do what deploy
/// and destroy do. Unknown verdicts (IAM's simulator refused or absent) do not stop it.
pub async fn before_deploy(
    aws: &Aws,
    env: &Environment,
    bootstrap: &crate::workflows::bootstrap::Bootstrap,
    account: &str,
) -> Vec<Check> {
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let caller = crate::aws::caller(aws)
        .await
        .map(|identity| identity.arn)
        .unwrap_or_default();
    let target = target(aws, env, bootstrap, account);
    let mut checks = vec![
        execution_role_trust(&iam, &bootstrap.execution_role).await,
        deployer_permissions(&iam, &caller, &target).await,
        execution_role_permissions(&iam, bootstrap, &target).await,
    ];
    if env.vault.is_some() {
        let encrypted = match crate::aws::fleet::backed_up_volumes(aws, env).await {
            Ok(owner) => crate::aws::fleet::encrypted_volumes(aws, &owner).await,
            Err(why) => Err(why),
        };
        checks.extend(vault_keys(env, &encrypted));
    }
    checks
}

/// With a vault: whether every backed-up volume's snapshots can be shared with it (a failure
/// refuses deploy); `None` without a vault.
fn vault_keys(
    env: &Environment,
    encrypted: &Result<Vec<crate::stack::keys::EncryptedVolume>, String>,
) -> Option<Check> {
    const NAME: &str = "vault-keys";
    let vault = env.vault.as_ref()?;
    Some(match encrypted {
        Ok(encrypted) => match crate::stack::keys::vault_refusal(
            encrypted,
            &env.source_kms_keys,
            &vault.target.account,
        ) {
            None => Check::pass(
                NAME,
                "every backed-up volume's snapshots can be shared with the vault",
            ),
            Some(why) => Check::fail(
                NAME,
                why,
                "re-encrypt those volumes with a listed customer managed key, or exclude them \
                 (docs/deployer.md, \"Vault account\")",
            ),
        },
        Err(why) => Check::unknown(
            NAME,
            why.clone(),
            "grant ec2:DescribeInstances and ec2:DescribeVolumes (docs/deployer-policy.json, \
             ReadInventory)",
        ),
    })
}

/// Where deploy and destroy act for `env`, with `bootstrap`'s bucket and execution role.
fn target<'a>(
    aws: &'a Aws,
    env: &'a Environment,
    bootstrap: &'a crate::workflows::bootstrap::Bootstrap,
    account: &'a str,
) -> Target<'a> {
    Target {
        partition: function::copies::partition_of_region(&aws.region),
        region: &aws.region,
        account,
        stack: &env.stack_name,
        bucket: &bootstrap.bucket,
        execution_role: &bootstrap.execution_role,
    }
}

/// Whether CloudFormation can assume the execution role, from its trust policy.
pub async fn execution_role_trust(iam: &aws_sdk_iam::Client, role_arn: &str) -> Check {
    const NAME: &str = "execution-role-trust";
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let document = match crate::aws::iam::trust_policy(iam, role_name).await {
        Ok(document) => document,
        Err(why) => {
            return Check::unknown(
                NAME,
                format!("could not read role {role_name}: {why}"),
                "grant iam:GetRole on it (docs/deployer-policy.json, ReadStackRolesForDrift)",
            );
        }
    };
    let document = document.as_deref().and_then(verdicts::policy_document);
    match document.map(|d| verdicts::trusts(&d, "cloudformation.amazonaws.com")) {
        Some(Ok(())) => Check::pass(NAME, format!("{role_name} trusts CloudFormation")),
        Some(Err(why)) => Check::fail(
            NAME,
            format!("{role_name}: {why}"),
            "run `cargo xtask bootstrap` to update it to this version's trust policy",
        ),
        None => Check::unknown(
            NAME,
            format!("{role_name} has no readable trust policy"),
            "read it with `aws iam get-role`",
        ),
    }
}

/// Whether the caller may make every call deploy and destroy make, by IAM's own simulator.
pub async fn deployer_permissions(
    iam: &aws_sdk_iam::Client,
    caller: &str,
    target: &Target<'_>,
) -> Check {
    const NAME: &str = "deployer-permissions";
    let Some(principal) = verdicts::principal_of(caller) else {
        return Check::unknown(
            NAME,
            format!("{caller:?} is not a user or role IAM can simulate (the root user?)"),
            "deploy with an IAM user or role holding docs/deployer-policy.json",
        );
    };
    simulate(
        iam,
        NAME,
        &principal,
        &verdicts::deployer_questions(target),
        "deploy and destroy make",
        "grant the statements of docs/deployer-policy.json (docs/iam-policy.md explains each)",
    )
    .await
}

/// Whether the execution role may do what CloudFormation does with it for this environment,
/// by IAM's own simulator (so a service control policy, a changed role or a boundary that
/// takes something away shows before the stack does).
pub async fn execution_role_permissions(
    iam: &aws_sdk_iam::Client,
    bootstrap: &crate::workflows::bootstrap::Bootstrap,
    target: &Target<'_>,
) -> Check {
    const NAME: &str = "execution-permissions";
    let mut refs = std::collections::BTreeMap::new();
    refs.insert(
        "ArtifactBucket.Arn",
        format!("arn:{}:s3:::{}", target.partition, target.bucket),
    );
    if let Some(boundary) = &bootstrap.boundary {
        refs.insert("FunctionBoundary", boundary.clone());
    }
    let needs = crate::stack::template::inline_policy("bootstrap.yaml", "ExecutionRole")
        .map_err(|e| format!("{e:#}"))
        .and_then(|policy| verdicts::execution_needs(&policy, target, &refs));
    match needs {
        Ok(needs) => {
            simulate(
                iam,
                NAME,
                &bootstrap.execution_role,
                &needs,
                "CloudFormation makes for this environment",
                "run `cargo xtask bootstrap` to restore the role's policy; if a service control \
                 policy or a boundary denies it, an administrator must allow it",
            )
            .await
        }
        Err(why) => Check::unknown(
            NAME,
            format!("could not read what the execution role needs: {why}"),
            "run `cargo xtask bootstrap` (its outputs name the boundary)",
        ),
    }
}

/// Asks IAM's simulator every question of `needs` about `principal`: pass when every action is
/// allowed, fail naming each denied one, unknown when the simulator does not answer.
async fn simulate(
    iam: &aws_sdk_iam::Client,
    name: &'static str,
    principal: &str,
    needs: &[verdicts::Need],
    what: &str,
    fix: &str,
) -> Check {
    let mut denied = Vec::new();
    let mut actions = 0;
    for need in needs {
        let question = crate::aws::iam::Question {
            principal,
            actions: &need.actions,
            resource: &need.resource,
            context: &need.context,
        };
        match crate::aws::iam::not_allowed(iam, &question).await {
            Ok(refused) => {
                actions += need.actions.len();
                for (action, decision) in refused {
                    denied.push(format!("{action} on {} ({decision})", need.resource));
                }
            }
            Err(why) => {
                return Check::unknown(
                    name,
                    format!("IAM's policy simulator did not answer: {why}"),
                    "grant iam:SimulatePrincipalPolicy on your own principal and on the \
                     bootstrap's execution role to let doctor check, or compare the policies \
                     with docs/deployer-policy.json and templates/bootstrap.yaml",
                );
            }
        }
    }
    if denied.is_empty() {
        Check::pass(
            name,
            format!("{principal} may make the {actions} calls {what}"),
        )
    } else {
        Check::fail(
            name,
            format!("{principal} is denied: {}", denied.join("; ")),
            fix,
        )
    }
}

/// Whether Lambda would take the environment's reserved concurrency.
async fn concurrency(aws: &Aws, env: &Environment) -> Check {
    const NAME: &str = "lambda-concurrency";
    let account = match crate::aws::lambda::account_concurrency(aws).await {
        Ok(account) => account,
        Err(error) => {
            return Check::unknown(
                NAME,
                format!("{error:#}"),
                "grant lambda:GetAccountSettings (docs/deployer-policy.json, LambdaQuota)",
            );
        }
    };
    let Some(requested) = env.reserved_concurrency else {
        return Check::pass(
            NAME,
            format!(
                "no reservation asked; {} of {} executions unreserved",
                account.unreserved, account.limit
            ),
        );
    };
    let current = crate::aws::lambda::reservation(aws, &env.stack_name)
        .await
        .unwrap_or(None);
    match crate::stack::limits::check_reservation(&env.name, requested, account, current) {
        Ok(()) => Check::pass(
            NAME,
            format!(
                "reserving {requested} leaves at least 100 of {} unreserved",
                account.limit
            ),
        ),
        Err(error) => Check::fail(
            NAME,
            error.0,
            "lower reserved_concurrency, or ask AWS for a higher concurrency quota",
        ),
    }
}

/// The region's snapshots against the account's EBS quota, from Service Quotas.
pub async fn snapshot_quota(
    quotas: &aws_sdk_servicequotas::Client,
    ec2: &aws_sdk_ec2::Client,
    per_run: usize,
) -> Check {
    const NAME: &str = "snapshot-quota";
    let quota =
        match crate::aws::organizations::quota(quotas, "ebs", verdicts::SNAPSHOTS_QUOTA_NAME).await
        {
            Ok(quota) => quota,
            Err(why) => {
                return Check::unknown(
                    NAME,
                    format!("Service Quotas did not answer: {why}"),
                    "grant servicequotas:ListServiceQuotas, or read EBS's \"Snapshots per \
                     Region\" in the Service Quotas console",
                );
            }
        };
    let Some(quota) = quota else {
        return Check::unknown(
            NAME,
            format!(
                "Service Quotas lists no EBS quota \"{}\"",
                verdicts::SNAPSHOTS_QUOTA_NAME
            ),
            "read EBS's quotas in the Service Quotas console",
        );
    };
    let used = match crate::aws::snapshots::count_owned(ec2).await {
        Ok(used) => used,
        Err(why) => {
            return Check::unknown(
                NAME,
                format!("could not count the region's snapshots: {why}"),
                "grant ec2:DescribeSnapshots (docs/deployer-policy.json, ListSnapshots)",
            );
        }
    };
    verdicts::snapshot_room(quota, used, per_run)
}

/// What an organization's stack set needs: for organizational units, trusted access for
/// StackSets (and this account as a delegated administrator, when it acts as one); for
/// accounts, the administration role CloudFormation assumes.
pub async fn organization(
    orgs: &aws_sdk_organizations::Client,
    iam: &aws_sdk_iam::Client,
    targets: &crate::config::targets::Targets,
    account: &str,
) -> Vec<Check> {
    if !targets.service_managed() {
        let role = format!(
            "arn:aws:iam::{account}:role/{}",
            crate::config::targets::ADMINISTRATION_ROLE
        );
        let mut check = execution_role_trust(iam, &role).await;
        check.name = "stacksets-administration-role";
        if check.verdict == verdicts::Verdict::Unknown {
            check.fix = Some(
                "deploy templates/stackset-roles.yaml in this account (docs/deployer.md, \
                 Organizations)"
                    .into(),
            );
        }
        return vec![check];
    }
    let mut checks = Vec::new();
    checks.push(
        match crate::aws::organizations::trusted_services(orgs).await {
            Ok(enabled) => verdicts::trusted_access(&enabled),
            Err(why) => Check::unknown(
                "stacksets-trusted-access",
                format!("Organizations did not answer: {why}"),
                "check in the management account that trusted access for CloudFormation StackSets \
             is on",
            ),
        },
    );
    if targets.delegated_admin() {
        let admins = crate::aws::organizations::delegated_administrators(
            orgs,
            verdicts::STACKSETS_PRINCIPAL,
        )
        .await;
        checks.push(match admins {
            Ok(admins) => verdicts::delegated(account, &admins),
            Err(why) => Check::unknown(
                "stacksets-delegated-admin",
                format!("Organizations did not answer: {why}"),
                "grant organizations:ListDelegatedAdministrators (docs/deployer-policy.json); \
                 CloudFormation needs it too",
            ),
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::Client;
    use aws_sdk_iam::operation::get_role::GetRoleOutput;
    use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
    use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType, Role};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn role(trust: &'static str) -> aws_smithy_mocks::Rule {
        mock!(Client::get_role).then_output(move || {
            GetRoleOutput::builder()
                .role(
                    Role::builder()
                        .path("/")
                        .role_name("smartvault-bootstrap-cfn-exec-eu-west-1")
                        .role_id("AROA")
                        .arn("arn:aws:iam::123456789012:role/smartvault-bootstrap-cfn-exec-eu-west-1")
                        .create_date(aws_smithy_types::DateTime::from_secs(0))
                        .assume_role_policy_document(trust)
                        .build()
                        .unwrap(),
                )
                .build()
        })
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/smartvault-bootstrap-cfn-exec-eu-west-1";

    #[tokio::test]
    async fn the_execution_roles_trust_passes_or_fails_as_iam_returns_it() {
        // IAM returns the document URL-encoded.
        let plain = role(
            "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22cloudformation.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D",
        );
        let client = mock_client!(aws_sdk_iam, [&plain]);
        assert_eq!(
            execution_role_trust(&client, ROLE).await.verdict,
            verdicts::Verdict::Pass
        );
        let conditioned = role(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"cloudformation.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":"123456789012"}}}]}"#,
        );
        let client = mock_client!(aws_sdk_iam, [&conditioned]);
        let check = execution_role_trust(&client, ROLE).await;
        assert_eq!(check.verdict, verdicts::Verdict::Fail, "{check:?}");
        assert!(check.detail.contains("aws:SourceAccount"), "{check:?}");
        assert!(check.fix.unwrap().contains("cargo xtask bootstrap"));
    }

    fn simulation(denied_action: Option<&'static str>) -> aws_smithy_mocks::Rule {
        mock!(Client::simulate_principal_policy).then_compute_output(move |input| {
            let results = input.action_names().iter().map(|action| {
                let decision = if Some(action.as_str()) == denied_action {
                    PolicyEvaluationDecisionType::ImplicitDeny
                } else {
                    PolicyEvaluationDecisionType::Allowed
                };
                EvaluationResult::builder()
                    .eval_action_name(action)
                    .eval_decision(decision)
                    .build()
                    .unwrap()
            });
            SimulatePrincipalPolicyOutput::builder()
                .set_evaluation_results(Some(results.collect()))
                .build()
        })
    }

    const TARGET: Target<'static> = Target {
        partition: "aws",
        region: "eu-west-1",
        account: "123456789012",
        stack: "smartvault-prod",
        bucket: "b",
        execution_role: ROLE,
    };

    #[tokio::test]
    async fn the_deployers_permissions_are_simulated_with_the_real_resources() {
        let needs = verdicts::deployer_needs(&TARGET);
        let caller = "arn:aws:sts::123456789012:assumed-role/smartvault-deployer/ci";
        let allowed = simulation(None);
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&allowed]);
        let check = deployer_permissions(&client, caller, &TARGET).await;
        assert_eq!(check.verdict, verdicts::Verdict::Pass, "{check:?}");
        assert_eq!(allowed.num_calls(), needs.len());

        let no_pass_role = simulation(Some("iam:PassRole"));
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&no_pass_role]);
        let check = deployer_permissions(&client, caller, &TARGET).await;
        assert_eq!(check.verdict, verdicts::Verdict::Fail, "{check:?}");
        assert!(
            check.detail.starts_with(
                "arn:aws:iam::123456789012:role/smartvault-deployer is denied: iam:PassRole on \
                 arn:aws:iam::123456789012:role/smartvault-bootstrap-cfn-exec-eu-west-1 \
                 (implicitDeny)"
            ),
            "{}",
            check.detail
        );

        // The root user, or no simulator: nothing proven either way.
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&allowed]);
        let root = deployer_permissions(&client, "arn:aws:iam::123456789012:root", &TARGET).await;
        assert_eq!(root.verdict, verdicts::Verdict::Unknown);
    }

    fn bootstrap_with(boundary: Option<&str>) -> crate::workflows::bootstrap::Bootstrap {
        crate::workflows::bootstrap::Bootstrap {
            bucket: "b".into(),
            execution_role: ROLE.into(),
            boundary: boundary.map(str::to_owned),
            changed: false,
        }
    }

    const BOUNDARY: &str =
        "arn:aws:iam::123456789012:policy/smartvault-bootstrap-function-boundary-eu-west-1";

    #[tokio::test]
    async fn the_execution_roles_permissions_are_simulated_as_cloudformation_uses_them() {
        // The role creates roles only with the boundary set: the simulator must be told the
        // boundary, or a correct role would read as denied.
        let allowed = simulation(None);
        let bounded = mock!(Client::simulate_principal_policy)
            .match_requests(|r| r.action_names().iter().any(|a| a == "iam:CreateRole"))
            .then_compute_output(|input| {
                let boundary = input.context_entries().iter().find(|c| {
                    c.context_key_name() == Some("iam:PermissionsBoundary")
                        && c.context_key_values() == [BOUNDARY]
                });
                let decision = if boundary.is_some() && input.policy_source_arn() == Some(ROLE) {
                    PolicyEvaluationDecisionType::Allowed
                } else {
                    PolicyEvaluationDecisionType::ImplicitDeny
                };
                SimulatePrincipalPolicyOutput::builder()
                    .set_evaluation_results(Some(
                        input
                            .action_names()
                            .iter()
                            .map(|a| {
                                EvaluationResult::builder()
                                    .eval_action_name(a)
                                    .eval_decision(decision.clone())
                                    .build()
                                    .unwrap()
                            })
                            .collect(),
                    ))
                    .build()
            });
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&bounded, &allowed]);
        let check =
            execution_role_permissions(&client, &bootstrap_with(Some(BOUNDARY)), &TARGET).await;
        assert_eq!(check.verdict, verdicts::Verdict::Pass, "{check:?}");
        assert_eq!(bounded.num_calls(), 1);
        // One question per allowing statement and resource of the shipped policy.
        let policy =
            crate::stack::template::inline_policy("bootstrap.yaml", "ExecutionRole").unwrap();
        let mut refs = std::collections::BTreeMap::new();
        refs.insert("ArtifactBucket.Arn", "arn:aws:s3:::b".to_owned());
        refs.insert("FunctionBoundary", BOUNDARY.to_owned());
        let needs = verdicts::execution_needs(&policy, &TARGET, &refs).unwrap();
        assert_eq!(allowed.num_calls() + bounded.num_calls(), needs.len());

        // A service control policy that denies creating functions shows, with the resource.
        let no_functions = simulation(Some("lambda:CreateFunction"));
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&no_functions]);
        let check =
            execution_role_permissions(&client, &bootstrap_with(Some(BOUNDARY)), &TARGET).await;
        assert_eq!(check.verdict, verdicts::Verdict::Fail, "{check:?}");
        assert!(
            check.detail.contains(
                "lambda:CreateFunction on arn:aws:lambda:eu-west-1:123456789012:function:\
                 smartvault-prod* (implicitDeny)"
            ),
            "{}",
            check.detail
        );
        // A bootstrap whose outputs do not name the boundary: unknown, never a guess.
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&allowed]);
        let check = execution_role_permissions(&client, &bootstrap_with(None), &TARGET).await;
        assert_eq!(check.verdict, verdicts::Verdict::Unknown, "{check:?}");
        assert!(check.detail.contains("FunctionBoundary"), "{check:?}");
    }

    #[tokio::test]
    async fn the_snapshot_quota_is_read_by_its_name_and_counted_against_a_run() {
        use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
        use aws_sdk_servicequotas::operation::list_service_quotas::ListServiceQuotasOutput;
        use aws_sdk_servicequotas::types::ServiceQuota;
        let quota = |value: f64| {
            mock!(aws_sdk_servicequotas::Client::list_service_quotas).then_output(move || {
                ListServiceQuotasOutput::builder()
                    .quotas(
                        ServiceQuota::builder()
                            .quota_name("Snapshots per Region")
                            .value(value)
                            .build(),
                    )
                    .quotas(
                        ServiceQuota::builder()
                            .quota_name("Storage for gp3 volumes, in TiB")
                            .value(50.0)
                            .build(),
                    )
                    .build()
            })
        };
        let two = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
            DescribeSnapshotsOutput::builder()
                .snapshots(
                    aws_sdk_ec2::types::Snapshot::builder()
                        .snapshot_id("a")
                        .build(),
                )
                .snapshots(
                    aws_sdk_ec2::types::Snapshot::builder()
                        .snapshot_id("b")
                        .build(),
                )
                .build()
        });
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&two]);
        let roomy = quota(100_000.0);
        let quotas = mock_client!(aws_sdk_servicequotas, RuleMode::MatchAny, [&roomy]);
        let check = snapshot_quota(&quotas, &ec2, 600).await;
        assert_eq!(check.verdict, verdicts::Verdict::Pass, "{check:?}");
        assert!(
            check.detail.starts_with("2 of 100000 snapshots"),
            "{check:?}"
        );
        let tight = quota(500.0);
        let quotas = mock_client!(aws_sdk_servicequotas, RuleMode::MatchAny, [&tight]);
        let check = snapshot_quota(&quotas, &ec2, 600).await;
        assert_eq!(check.verdict, verdicts::Verdict::Fail, "{check:?}");
        // Service Quotas not answering (refused, or the emulator): unknown, never a pass.
        let refused =
            mock!(aws_sdk_servicequotas::Client::list_service_quotas).then_http_response(|| {
                aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                    aws_smithy_types::body::SdkBody::from(
                        r#"{"__type":"AccessDeniedException","message":"denied"}"#,
                    ),
                )
            });
        let quotas = mock_client!(aws_sdk_servicequotas, RuleMode::MatchAny, [&refused]);
        let check = snapshot_quota(&quotas, &ec2, 600).await;
        assert_eq!(check.verdict, verdicts::Verdict::Unknown, "{check:?}");
    }

    #[tokio::test]
    async fn an_organizations_trusted_access_and_delegated_administrator_are_asked() {
        use aws_sdk_organizations::operation::list_aws_service_access_for_organization::ListAwsServiceAccessForOrganizationOutput;
        use aws_sdk_organizations::operation::list_delegated_administrators::ListDelegatedAdministratorsOutput;
        use aws_sdk_organizations::types::{DelegatedAdministrator, EnabledServicePrincipal};
        let targets = crate::config::targets::resolve(
            &serde_norway::from_str(
                "organizational_units: [ou-ab12-cdef3456]\norganization_id: o-a1b2c3d4e5\n\
                 regions: [eu-west-1]\ndelegated_admin: true\nmember_role: \
                 OrganizationAccountAccessRole\n",
            )
            .unwrap(),
            &crate::config::targets::Around {
                stack_name: "smartvault-org",
                region: "eu-west-1",
                copy_regions: Vec::new(),
                termination_protection: false,
                reserved_concurrency: None,
            },
        )
        .unwrap();
        let access = |principal: &'static str| {
            mock!(aws_sdk_organizations::Client::list_aws_service_access_for_organization)
                .then_output(move || {
                    ListAwsServiceAccessForOrganizationOutput::builder()
                        .enabled_service_principals(
                            EnabledServicePrincipal::builder()
                                .service_principal(principal)
                                .build(),
                        )
                        .build()
                })
        };
        let admins = mock!(aws_sdk_organizations::Client::list_delegated_administrators)
            .match_requests(|r| r.service_principal() == Some(verdicts::STACKSETS_PRINCIPAL))
            .then_output(|| {
                ListDelegatedAdministratorsOutput::builder()
                    .delegated_administrators(
                        DelegatedAdministrator::builder().id("111111111111").build(),
                    )
                    .build()
            });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&role("{}")]);
        let on = access(verdicts::STACKSETS_PRINCIPAL);
        let orgs = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&on, &admins]);
        let checks = organization(&orgs, &iam, &targets, "111111111111").await;
        let verdicts: Vec<(&str, verdicts::Verdict)> =
            checks.iter().map(|c| (c.name, c.verdict)).collect();
        assert_eq!(
            verdicts,
            [
                ("stacksets-trusted-access", verdicts::Verdict::Pass),
                ("stacksets-delegated-admin", verdicts::Verdict::Pass)
            ]
        );
        let off = access("sso.amazonaws.com");
        let orgs = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&off, &admins]);
        let checks = organization(&orgs, &iam, &targets, "222222222222").await;
        assert!(
            checks.iter().all(|c| c.verdict == verdicts::Verdict::Fail),
            "{checks:?}"
        );
    }
}
