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
    let statements = match &document["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        single @ serde_json::Value::Object(_) => vec![single.clone()],
        _ => return Err("the trust policy has no statement".into()),
    };
    let listed = |value: &serde_json::Value, wanted: &str| match value {
        serde_json::Value::String(s) => s == wanted,
        serde_json::Value::Array(items) => items.iter().any(|i| i == wanted),
        _ => false,
    };
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
        let needs = deployer_needs(&Target {
            partition: "aws",
            region: "eu-west-1",
            account: "123456789012",
            stack: "smartvault-prod",
            bucket: "smartvault-bootstrap-artifactbucket-abc",
            execution_role: "arn:aws:iam::123456789012:role/smartvault-bootstrap-cfn-exec-eu-west-1",
        });
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
        let list = |v: &serde_json::Value| -> Vec<String> {
            match v {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().unwrap().to_owned())
                    .collect(),
                _ => Vec::new(),
            }
        };
        for (action, resource) in &needs {
            let allowed = policy["Statement"].as_array().unwrap().iter().any(|st| {
                list(&st["Action"]).iter().any(|a| a == action)
                    && list(&st["Resource"])
                        .iter()
                        .any(|pattern| iam_match(pattern, resource))
            });
            assert!(
                allowed,
                "the deployer policy does not allow {action} on {resource}"
            );
        }
    }

    /// IAM's ARN matching: `*` any run of characters, `?` any one.
    fn iam_match(pattern: &str, text: &str) -> bool {
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
