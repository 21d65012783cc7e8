//! `doctor`'s verdicts (pure): what AWS itself can say, before a deploy, about the
//! prerequisites the emulator cannot judge, each as pass, fail or unknown with its fix.

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// AWS could not be asked (the call was refused or is not implemented, as on the local
    /// emulator): nothing is proven either way.
    Unknown,
}

/// One prerequisite, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do, for a failure or an unknown.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn unknown(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Unknown,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Whether any check failed.
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.verdict == Verdict::Fail)
}

/// The checks as lines: `pass  name  detail`, with the fix under a failure or an unknown.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let verdict = match check.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "unknown",
        };
        out.push_str(&format!(
            "{verdict:<8} {:<22} {}\n",
            check.name, check.detail
        ));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("{:<8} {:<22} fix: {fix}\n", "", ""));
        }
    }
    out
}

/// The condition keys a service is not documented to send when it assumes a role: a trust
/// condition on one of them denies the service.
const UNSENT_KEYS: &[&str] = &["aws:SourceAccount", "aws:SourceArn"];

/// Whether a role's trust policy lets `service` assume it: an `Allow` of `sts:AssumeRole` to
/// the service, with no condition on a key it does not send. `Err` says what is wrong.
pub fn trusts(document: &serde_json::Value, service: &str) -> Result<(), String> {
    let statements = statements(document);
    if statements.is_empty() {
        return Err("the trust policy has no statement".into());
    }
    let listed =
        |value: &serde_json::Value, wanted: &str| strings(value).iter().any(|s| s == wanted);
    for statement in statements {
        if statement["Effect"] != "Allow"
            || !listed(&statement["Action"], "sts:AssumeRole")
            || !listed(&statement["Principal"]["Service"], service)
        {
            continue;
        }
        let condition = statement["Condition"].to_string();
        if let Some(key) = UNSENT_KEYS.iter().find(|k| condition.contains(*k)) {
            return Err(format!(
                "it trusts {service} only with a condition on {key}, a key {service} is not \
                 documented to send: every assume would be denied"
            ));
        }
        return Ok(());
    }
    Err(format!("it does not trust {service}"))
}

/// The IAM principal an STS caller ARN stands for, as `SimulatePrincipalPolicy` takes it:
/// a user as it is, an assumed role as its role (at the root path: a role with a path is not
/// found, and the check says unknown).
pub fn principal_of(caller: &str) -> Option<String> {
    let fields: Vec<&str> = caller.splitn(6, ':').collect();
    if fields.len() != 6 || fields[0] != "arn" {
        return None;
    }
    let (partition, account, resource) = (fields[1], fields[4], fields[5]);
    match fields[2] {
        "iam" if resource.starts_with("user/") || resource.starts_with("role/") => {
            Some(caller.to_owned())
        }
        "sts" => {
            let role = resource.strip_prefix("assumed-role/")?.split('/').next()?;
            Some(format!("arn:{partition}:iam::{account}:role/{role}"))
        }
        _ => None,
    }
}

/// Where deploy and destroy act, for [`deployer_needs`].
pub struct Target<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub stack: &'a str,
    pub bucket: &'a str,
    pub execution_role: &'a str,
}

/// The (action, resource) pairs deploy and destroy ask of the deployer's own credentials,
/// with the real resource ARNs (what CloudFormation does with the execution role is the
/// template checks' to prove).
pub fn deployer_needs(t: &Target<'_>) -> Vec<(&'static str, String)> {
    let stack = format!(
        "arn:{}:cloudformation:{}:{}:stack/{}/*",
        t.partition, t.region, t.account, t.stack
    );
    // A change set's ARN is `changeSet/<name>/<id>`, named as deploy names them.
    let change_set = format!(
        "arn:{}:cloudformation:{}:{}:changeSet/{}/*",
        t.partition,
        t.region,
        t.account,
        crate::stack::change_set_name(time::OffsetDateTime::UNIX_EPOCH)
    );
    let object = format!("arn:{}:s3:::{}/artifacts/probe", t.partition, t.bucket);
    let function = format!(
        "arn:{}:lambda:{}:{}:function:{}",
        t.partition, t.region, t.account, t.stack
    );
    let log_group = format!(
        "arn:{}:logs:{}:{}:log-group:/aws/lambda/{}",
        t.partition, t.region, t.account, t.stack
    );
    vec![
        ("cloudformation:DescribeStacks", stack.clone()),
        ("cloudformation:CreateChangeSet", stack.clone()),
        ("cloudformation:DescribeChangeSet", change_set.clone()),
        ("cloudformation:ExecuteChangeSet", change_set),
        ("cloudformation:DescribeStackEvents", stack.clone()),
        ("cloudformation:DeleteStack", stack),
        ("iam:PassRole", t.execution_role.to_owned()),
        ("s3:GetObject", object.clone()),
        ("s3:PutObject", object.clone()),
        ("s3:DeleteObject", object),
        ("lambda:InvokeFunction", function),
        ("ec2:DescribeSnapshots", "*".to_owned()),
        ("ec2:DescribeInstances", "*".to_owned()),
        ("logs:DeleteLogGroup", log_group),
    ]
}

/// One question for IAM's policy simulator: may the principal make these actions on this
/// resource, with these condition keys set as the real request sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub actions: Vec<String>,
    pub resource: String,
    /// (condition key, value) pairs the request carries.
    pub context: Vec<(String, String)>,
}

/// [`deployer_needs`] as questions: deploy passes the execution role to CloudFormation.
pub fn deployer_questions(t: &Target<'_>) -> Vec<Need> {
    deployer_needs(t)
        .into_iter()
        .map(|(action, resource)| Need {
            actions: vec![action.to_owned()],
            resource,
            context: vec![(
                "iam:PassedToService".to_owned(),
                "cloudformation.amazonaws.com".to_owned(),
            )],
        })
        .collect()
}

/// The prefix every SmartVault name carries, as the execution role's policy scopes it.
const SCOPED_NAMES: &str = "smartvault-*";

/// What CloudFormation will do with the execution role for this environment: every `Allow`
/// statement of the role's shipped policy (templates/bootstrap.yaml, `policy` in long form;
/// the schema checks prove it covers every handler permission of the environment's resources),
/// asked of this environment's own names (`smartvault-*` becomes `<stack>*`), with the
/// condition keys the statement requires set as CloudFormation sets them. `refs` resolves the
/// template's references to the bootstrap's own resources (`ArtifactBucket.Arn`,
/// `FunctionBoundary`). `Err` names what could not be resolved.
pub fn execution_needs(
    policy: &serde_json::Value,
    t: &Target<'_>,
    refs: &std::collections::BTreeMap<&str, String>,
) -> Result<Vec<Need>, String> {
    let mut values: Vec<(&str, &str)> = vec![
        ("AWS::Partition", t.partition),
        ("AWS::Region", t.region),
        ("AWS::AccountId", t.account),
    ];
    values.extend(refs.iter().map(|(k, v)| (*k, v.as_str())));
    let policy = crate::stack::template::resolve(policy, &values);
    // What doctor does not know stays an expression: no guess is asked of IAM.
    let known = |text: String| {
        if text.contains("unresolved-") || text.contains("${") {
            Err(format!("{text} names an expression doctor cannot resolve"))
        } else {
            Ok(text)
        }
    };
    let statements = policy["Statement"]
        .as_array()
        .ok_or("the execution role's policy has no statements")?;
    let mut needs = Vec::new();
    for statement in statements.iter().filter(|s| s["Effect"] == "Allow") {
        let actions = strings(&statement["Action"]);
        let mut context = Vec::new();
        if let Some(operators) = statement["Condition"].as_object() {
            for keys in operators.values() {
                for (key, value) in keys.as_object().into_iter().flatten() {
                    let first = strings(value).into_iter().next();
                    context.push((
                        key.clone(),
                        known(first.ok_or(format!("{key} has no value"))?)?,
                    ));
                }
            }
        }
        for resource in strings(&statement["Resource"]) {
            needs.push(Need {
                actions: actions.clone(),
                resource: known(resource)?.replace(SCOPED_NAMES, &format!("{}*", t.stack)),
                context: context.clone(),
            });
        }
    }
    Ok(needs)
}

/// A policy's statements: its `Statement` list, or the one statement it holds.
fn statements(document: &serde_json::Value) -> Vec<&serde_json::Value> {
    match &document["Statement"] {
        serde_json::Value::Array(list) => list.iter().collect(),
        single @ serde_json::Value::Object(_) => vec![single],
        _ => Vec::new(),
    }
}

/// A policy element that is one string or a list of them.
fn strings(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// IAM's pattern matching (policy actions and ARNs): `*` any run of characters, `?` any one;
/// actions compare without case.
pub fn iam_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// What EC2 does with a source volume's key on the function's behalf (copies and restore
/// tests), as templates/smartvault.yaml's `SourceKeysPolicy` grants it.
pub const SOURCE_KEY_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// What EC2 does with a copy rule's key in its region, as the `CopyNPolicy` statements grant it.
pub const COPY_KEY_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// How a key policy treats the function's role, which SmartVault grants the key through IAM
/// (the role's name is CloudFormation's and changes on replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAdmits {
    /// Every action is allowed to the account's IAM (or to this stack's roles), unconditionally.
    Yes,
    /// These actions no statement allows, or a statement denies.
    No(Vec<String>),
    /// These actions are allowed only under a condition doctor cannot evaluate.
    Conditionally(Vec<String>),
}

/// Whether a key policy lets `account`'s IAM policies (or roles named `<stack>-...`) use the key
/// for `actions`: KMS honours an IAM grant only when the key policy delegates to the account
/// (AWS's default key policy does, "Enable IAM User Permissions").
pub fn key_admits(
    policy: &serde_json::Value,
    partition: &str,
    account: &str,
    stack: &str,
    actions: &[&str],
) -> KeyAdmits {
    let statements = statements(policy);
    let root = format!("arn:{partition}:iam::{account}:root");
    let own_roles = format!("arn:{partition}:iam::{account}:role/{stack}-*");
    let names_us = |statement: &serde_json::Value| match &statement["Principal"] {
        serde_json::Value::String(s) => s == "*",
        principal => strings(&principal["AWS"])
            .iter()
            .any(|p| p == "*" || *p == root || p == account || iam_match(&own_roles, p)),
    };
    let covers = |statement: &serde_json::Value, action: &str| {
        strings(&statement["Action"])
            .iter()
            .any(|pattern| iam_match(&pattern.to_lowercase(), &action.to_lowercase()))
    };
    let conditional = |statement: &serde_json::Value| {
        statement["Condition"]
            .as_object()
            .is_some_and(|c| !c.is_empty())
    };
    let (mut lacking, mut conditionally) = (Vec::new(), Vec::new());
    for action in actions {
        let applying: Vec<&serde_json::Value> = statements
            .iter()
            .copied()
            .filter(|s| names_us(s) && covers(s, action))
            .collect();
        let denied = applying
            .iter()
            .any(|s| s["Effect"] == "Deny" && !conditional(s));
        let allowed = applying
            .iter()
            .any(|s| s["Effect"] == "Allow" && !conditional(s));
        // A conditional deny may take away what is allowed; a conditional allow may give
        // what nothing else does: either way only the condition decides.
        let maybe_denied = applying
            .iter()
            .any(|s| s["Effect"] == "Deny" && conditional(s));
        let maybe_allowed = applying
            .iter()
            .any(|s| s["Effect"] == "Allow" && conditional(s));
        if denied || (!allowed && !maybe_allowed) {
            lacking.push((*action).to_owned());
        } else if maybe_denied || !allowed {
            conditionally.push((*action).to_owned());
        }
    }
    if !lacking.is_empty() {
        KeyAdmits::No(lacking)
    } else if !conditionally.is_empty() {
        KeyAdmits::Conditionally(conditionally)
    } else {
        KeyAdmits::Yes
    }
}

/// Decodes a trust policy as IAM returns it: URL-encoded JSON (the emulator sends it plain).
pub fn policy_document(text: &str) -> Option<serde_json::Value> {
    serde_json::from_str(text)
        .ok()
        .or_else(|| serde_json::from_str(&percent_decode(text)?).ok())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The name Service Quotas gives the EBS quota on snapshots a region holds (service code
/// `ebs`; 100,000 by default).
pub const SNAPSHOTS_QUOTA_NAME: &str = "Snapshots per Region";

/// Whether the region's snapshots leave room for a run: `used` snapshots now, `per_run` more
/// each run makes (one per backed-up volume), against the account's `quota`.
pub fn snapshot_room(quota: f64, used: usize, per_run: usize) -> Check {
    const NAME: &str = "snapshot-quota";
    let quota_count = quota.max(0.0) as usize;
    let after = used + per_run;
    let detail = format!(
        "{used} of {quota_count} snapshots in the region (EBS \"{SNAPSHOTS_QUOTA_NAME}\"); a run \
         makes {per_run} more"
    );
    if after > quota_count {
        Check::fail(
            NAME,
            detail,
            "ask for a higher \"Snapshots per Region\" in Service Quotas, or shorten retention",
        )
    } else {
        Check::pass(NAME, detail)
    }
}

/// The service principal StackSets works through in an organization.
pub const STACKSETS_PRINCIPAL: &str = "member.org.stacksets.cloudformation.amazonaws.com";

/// Whether trusted access for StackSets is on, from the organization's enabled principals.
pub fn trusted_access(enabled: &[String]) -> Check {
    const NAME: &str = "stacksets-trusted-access";
    if enabled.iter().any(|p| p == STACKSETS_PRINCIPAL) {
        Check::pass(NAME, "trusted access for CloudFormation StackSets is on")
    } else {
        Check::fail(
            NAME,
            "trusted access for CloudFormation StackSets is off: service-managed stack sets \
             cannot reach the organization's accounts",
            "in the management account: aws organizations enable-aws-service-access \
             --service-principal member.org.stacksets.cloudformation.amazonaws.com (or \
             StackSets' console: Enable trusted access)",
        )
    }
}

/// Whether `account` is a delegated administrator for StackSets, from the organization's list.
pub fn delegated(account: &str, admins: &[String]) -> Check {
    const NAME: &str = "stacksets-delegated-admin";
    if admins.iter().any(|a| a == account) {
        Check::pass(
            NAME,
            format!("{account} is a delegated administrator for StackSets"),
        )
    } else {
        Check::fail(
            NAME,
            format!(
                "{account} is not a delegated administrator for StackSets, and \
                 delegated_admin is true: CloudFormation would answer \"Account used is not a \
                 delegated administrator\""
            ),
            format!(
                "in the management account: aws organizations register-delegated-administrator \
                 --service-principal {STACKSETS_PRINCIPAL} --account-id {account}"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trust_with_a_condition_the_service_does_not_send_fails() {
        let cfn = "cloudformation.amazonaws.com";
        let plain = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": cfn}, "Action": "sts:AssumeRole"}]});
        assert_eq!(trusts(&plain, cfn), Ok(()));
        let listed = json!({"Statement": {"Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", cfn]}, "Action": ["sts:AssumeRole"]}});
        assert_eq!(trusts(&listed, cfn), Ok(()));
        let conditioned = json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": cfn}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}]});
        assert!(
            trusts(&conditioned, cfn)
                .unwrap_err()
                .contains("aws:SourceAccount")
        );
        let other = json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        assert!(trusts(&other, cfn).unwrap_err().contains("does not trust"));
        assert!(trusts(&json!({}), cfn).is_err());
    }

    #[test]
    fn a_caller_is_simulated_as_its_user_or_role() {
        assert_eq!(
            principal_of("arn:aws:sts::123456789012:assumed-role/smartvault-deployer/ci-42"),
            Some("arn:aws:iam::123456789012:role/smartvault-deployer".into())
        );
        assert_eq!(
            principal_of("arn:aws-us-gov:iam::123456789012:user/ops/alice"),
            Some("arn:aws-us-gov:iam::123456789012:user/ops/alice".into())
        );
        assert_eq!(principal_of("arn:aws:iam::123456789012:root"), None);
        assert_eq!(principal_of("nonsense"), None);
    }

    #[test]
    fn the_needs_name_the_real_resources() {
        let needs = deployer_needs(&PROD);
        assert!(needs.contains(&(
            "cloudformation:CreateChangeSet",
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/smartvault-prod/*".into()
        )));
        assert!(needs.contains(&(
            "iam:PassRole",
            "arn:aws:iam::123456789012:role/smartvault-bootstrap-cfn-exec-eu-west-1".into()
        )));
        // The deployer policy grants every pair, resource patterns matched as IAM matches them:
        // what IAM's simulator will be asked must be what the shipped policy allows, or a
        // correct deployer would be refused.
        let policy: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                crate::paths::workspace_root().join("docs/deployer-policy.json"),
            )
            .unwrap(),
        )
        .unwrap();
        for (action, resource) in &needs {
            let allowed = policy["Statement"].as_array().unwrap().iter().any(|st| {
                strings(&st["Action"]).iter().any(|a| a == action)
                    && strings(&st["Resource"])
                        .iter()
                        .any(|pattern| iam_match(pattern, resource))
            });
            assert!(
                allowed,
                "the deployer policy does not allow {action} on {resource}"
            );
        }
    }

    const PROD: Target<'static> = Target {
        partition: "aws",
        region: "eu-west-1",
        account: "123456789012",
        stack: "smartvault-prod",
        bucket: "smartvault-bootstrap-artifactbucket-abc",
        execution_role: "arn:aws:iam::123456789012:role/smartvault-bootstrap-cfn-exec-eu-west-1",
    };

    const BOUNDARY: &str =
        "arn:aws:iam::123456789012:policy/smartvault-bootstrap-function-boundary-eu-west-1";

    fn shipped_execution_policy() -> serde_json::Value {
        crate::stack::template::inline_policy("bootstrap.yaml", "ExecutionRole").unwrap()
    }

    fn bootstrap_refs() -> std::collections::BTreeMap<&'static str, String> {
        let mut refs = std::collections::BTreeMap::new();
        refs.insert(
            "ArtifactBucket.Arn",
            "arn:aws:s3:::smartvault-bootstrap-artifactbucket-abc".to_owned(),
        );
        refs.insert("FunctionBoundary", BOUNDARY.to_owned());
        refs
    }

    #[test]
    fn the_execution_role_is_asked_every_action_it_holds_on_this_environments_names() {
        let policy = shipped_execution_policy();
        let needs = execution_needs(&policy, &PROD, &bootstrap_refs()).unwrap();
        // Every allowed action of the shipped role is asked: what the schema checks prove
        // CloudFormation needs is what IAM is asked.
        let asked: std::collections::BTreeSet<String> =
            needs.iter().flat_map(|n| n.actions.clone()).collect();
        assert_eq!(asked, crate::checks::policies::execution_role_actions());
        for need in &needs {
            assert!(
                need.resource == "*"
                    || need.resource.contains(":123456789012:")
                    || need.resource.starts_with("arn:aws:s3:::"),
                "{need:?}"
            );
            assert!(!need.resource.contains("${"), "{need:?}");
            // Every name is this environment's, never the bootstrap's own.
            assert!(!need.resource.contains("smartvault-*"), "{need:?}");
            assert!(
                !need.resource.contains("role/smartvault-bootstrap"),
                "{need:?}"
            );
        }
        let create_role = needs
            .iter()
            .find(|n| n.actions.iter().any(|a| a == "iam:CreateRole"))
            .unwrap();
        assert_eq!(
            create_role.resource,
            "arn:aws:iam::123456789012:role/smartvault-prod*"
        );
        assert_eq!(
            create_role.context,
            [("iam:PermissionsBoundary".to_owned(), BOUNDARY.to_owned())]
        );
        let pass_role = needs
            .iter()
            .find(|n| n.actions == ["iam:PassRole"])
            .unwrap();
        assert_eq!(
            pass_role.context,
            [(
                "iam:PassedToService".to_owned(),
                "lambda.amazonaws.com".to_owned()
            )]
        );
        assert!(needs.iter().any(|n| n.resource
            == "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/smartvault-prod*"));
        assert!(
            needs.iter().any(|n| n.resource
                == "arn:aws:s3:::smartvault-bootstrap-artifactbucket-abc/artifacts/*")
        );
        // Without the boundary (an output doctor could not read), no guess.
        let mut refs = bootstrap_refs();
        refs.remove("FunctionBoundary");
        let error = execution_needs(&policy, &PROD, &refs).unwrap_err();
        assert!(error.contains("FunctionBoundary"), "{error}");
    }

    #[test]
    fn a_key_policy_admits_the_role_only_through_the_account_or_its_own_roles() {
        let default_policy = json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "Enable IAM User Permissions", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*", "Resource": "*"}]});
        let admits = |policy: &serde_json::Value, actions: &[&str]| {
            key_admits(policy, "aws", "123456789012", "smartvault-prod", actions)
        };
        assert_eq!(admits(&default_policy, SOURCE_KEY_ACTIONS), KeyAdmits::Yes);
        assert_eq!(admits(&default_policy, COPY_KEY_ACTIONS), KeyAdmits::Yes);
        // The account id as the principal is the same delegation.
        let by_id = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "123456789012"},
            "Action": ["kms:Decrypt", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey",
                       "kms:GenerateDataKey*"], "Resource": "*"}});
        assert_eq!(admits(&by_id, SOURCE_KEY_ACTIONS), KeyAdmits::Yes);
        assert_eq!(
            admits(&by_id, COPY_KEY_ACTIONS),
            KeyAdmits::No(vec!["kms:Encrypt".into()])
        );
        // A key only its administrators may use: every action is missing.
        let admins_only = json!({"Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/KeyAdmins"},
            "Action": "kms:*", "Resource": "*"}]});
        assert_eq!(
            admits(&admins_only, SOURCE_KEY_ACTIONS),
            KeyAdmits::No(SOURCE_KEY_ACTIONS.iter().map(|a| a.to_string()).collect())
        );
        // A statement naming this stack's roles admits them.
        let named = json!({"Statement": [{"Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::123456789012:role/smartvault-prod-Role-1A2B"]},
            "Action": "kms:*", "Resource": "*"}]});
        assert_eq!(admits(&named, SOURCE_KEY_ACTIONS), KeyAdmits::Yes);
        // A deny takes away what the delegation gives.
        let mut denying = default_policy.clone();
        denying["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Deny",
            "Principal": "*", "Action": "kms:CreateGrant", "Resource": "*"}));
        assert_eq!(
            admits(&denying, SOURCE_KEY_ACTIONS),
            KeyAdmits::No(vec!["kms:CreateGrant".into()])
        );
        // A condition doctor cannot evaluate: neither a pass nor a failure.
        let conditioned = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
            "Action": "kms:*", "Resource": "*",
            "Condition": {"StringEquals": {"kms:CallerAccount": "123456789012"}}}]});
        assert!(matches!(
            admits(&conditioned, SOURCE_KEY_ACTIONS),
            KeyAdmits::Conditionally(_)
        ));
        let mut conditional_deny = default_policy;
        conditional_deny["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Deny",
            "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}));
        assert_eq!(
            admits(&conditional_deny, SOURCE_KEY_ACTIONS),
            KeyAdmits::Conditionally(vec!["kms:Decrypt".into()])
        );
        assert_eq!(
            admits(&json!({}), &["kms:Decrypt"]),
            KeyAdmits::No(vec!["kms:Decrypt".into()])
        );
    }

    /// The actions an allowing statement of a template role policy grants: plain, or inside
    /// an `Fn::If` (its true branch).
    fn template_kms_actions(resource: &str, sid: &str) -> Vec<String> {
        let body = crate::stack::template::read_template("smartvault.yaml").unwrap();
        let value: serde_norway::Value = serde_norway::from_str(&body).unwrap();
        let policy = crate::stack::template::long_form(
            &value["Resources"][resource]["Properties"]["PolicyDocument"],
        );
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| match s.get("Fn::If") {
                Some(branches) => branches[1].clone(),
                None => s.clone(),
            })
            .find(|s| s["Sid"] == sid)
            .map(|s| strings(&s["Action"]))
            .unwrap_or_else(|| panic!("{resource} has no statement {sid}"))
    }

    #[test]
    fn the_key_actions_asked_are_those_the_function_is_granted() {
        let source: Vec<String> = ["UseSourceKeysThroughEc2", "GrantSourceKeysToEc2"]
            .iter()
            .flat_map(|sid| template_kms_actions("SourceKeysPolicy", sid))
            .collect();
        let copies = template_kms_actions("Copy1Policy", "EncryptCopiesThroughEc2");
        for (granted, asked) in [(source, SOURCE_KEY_ACTIONS), (copies, COPY_KEY_ACTIONS)] {
            // Every asked action is granted, and every granted pattern is asked about.
            for action in asked {
                assert!(
                    granted.iter().any(|g| iam_match(g, action)),
                    "{action} is asked but not granted by {granted:?}"
                );
            }
            for pattern in &granted {
                assert!(
                    asked.iter().any(|a| iam_match(pattern, a)),
                    "{pattern} is granted but never asked"
                );
            }
        }
    }

    #[test]
    fn iam_patterns_match_as_iam_matches_them() {
        assert!(iam_match(
            "arn:aws:s3:::b-*/artifacts/*",
            "arn:aws:s3:::b-1/artifacts/x"
        ));
        assert!(iam_match("a?c", "abc"));
        assert!(!iam_match("changeSet/smartvault-*/*", "changeSet/*/*"));
    }

    #[test]
    fn a_trust_policy_is_read_url_encoded_or_plain() {
        let encoded = "%7B%22Statement%22%3A%5B%5D%7D";
        assert_eq!(policy_document(encoded), Some(json!({"Statement": []})));
        assert_eq!(
            policy_document("{\"Statement\": []}"),
            Some(json!({"Statement": []}))
        );
        assert_eq!(policy_document("%ZZ"), None);
    }

    #[test]
    fn the_report_gives_each_verdict_and_its_fix() {
        let checks = vec![
            Check::pass("account", "123456789012"),
            Check::fail(
                "bootstrap",
                "missing",
                "cargo xtask bootstrap --region eu-west-1",
            ),
            Check::unknown("deployer-permissions", "not implemented", "run against AWS"),
        ];
        let text = render(&checks);
        assert!(text.contains("pass     account"), "{text}");
        assert!(text.contains("FAIL     bootstrap"), "{text}");
        assert!(
            text.contains("fix: cargo xtask bootstrap --region eu-west-1"),
            "{text}"
        );
        assert!(failed(&checks));
        assert!(!failed(&checks[..1]));
    }

    #[test]
    fn a_run_that_would_pass_the_snapshot_quota_fails_the_check() {
        assert_eq!(snapshot_room(100_000.0, 25_000, 600).verdict, Verdict::Pass);
        let full = snapshot_room(100_000.0, 99_800, 600);
        assert_eq!(full.verdict, Verdict::Fail);
        assert!(
            full.detail
                .starts_with("99800 of 100000 snapshots in the region"),
            "{}",
            full.detail
        );
        assert!(full.fix.unwrap().contains("Service Quotas"));
    }

    #[test]
    fn an_organization_needs_trusted_access_and_the_delegated_administrator() {
        assert_eq!(
            trusted_access(&[STACKSETS_PRINCIPAL.to_owned()]).verdict,
            Verdict::Pass
        );
        let off = trusted_access(&["sso.amazonaws.com".to_owned()]);
        assert_eq!(off.verdict, Verdict::Fail);
        assert!(off.fix.unwrap().contains("enable-aws-service-access"));
        assert_eq!(
            delegated("111111111111", &["111111111111".to_owned()]).verdict,
            Verdict::Pass
        );
        let not = delegated("111111111111", &[]);
        assert_eq!(not.verdict, Verdict::Fail);
        assert!(
            not.detail
                .contains("Account used is not a delegated administrator")
        );
        assert!(not.fix.unwrap().contains("--account-id 111111111111"));
    }
}
