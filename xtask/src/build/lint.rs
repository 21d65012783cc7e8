//! Static checks in `cargo xtask test`: cfn-lint and checkov on every environment's rendered
//! templates, parliament on every IAM policy SmartVault ships, actionlint on the CI workflows.

use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// parliament findings accepted on purpose: (policy, issue, reason), also in
/// docs/static-checks.md.
const ACCEPTED_FINDINGS: &[(&str, &str, &str)] = &[
    (
        "consistency",
        "RESOURCE_MISMATCH",
        "`SendCommand` is authorised against the document and each instance; the consistency \
         policy grants the documents in one statement and the instances in another, whose \
         `ssm:resourceTag/<backup tag>` condition must not apply to a document, and parliament \
         wants the required document resource in each statement. IAM's own action data \
         (parliament's iam_definition.json) lists both resource types for SendCommand",
    ),
    (
        "restore test",
        "RESOURCE_MISMATCH",
        "`CreateVolume` is authorised against the new volume (required) and the source snapshot; \
     the restore-test policy grants them in two statements with different conditions (a \
     request tag on the volume, the managed-by tag on the snapshot), and parliament wants the \
     required volume resource in each statement. IAM's own action data (parliament's \
     iam_definition.json) lists both resource types for CreateVolume",
    ),
];

/// Actions newer than parliament's list of IAM actions (it reports them UNKNOWN_ACTION). Each
/// is declared by a CloudFormation handler in AWS's resource-provider schemas that cfn-lint
/// ships (`schema_checks` reads them), which is the proof it exists; any other unknown action
/// (a typo, say) still fails.
pub const NEWER_THAN_PARLIAMENT: &[&str] = &[
    "s3:GetBucketAbac",
    "lambda:GetFunctionScalingConfig",
    "lambda:AssociateRuntimeAlias",
];

/// Renders every environment of smartvault.yaml as deploy would; returns the folders.
fn render_all() -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for name in crate::config::names(None)? {
        let env = crate::config::load(None, &name)?;
        let location = crate::stack::template::offline_location(None, None)?;
        let rendered = crate::stack::template::render(&env, &location)?;
        dirs.push(crate::stack::template::write_rendered(&env, &rendered)?);
    }
    Ok(dirs)
}

/// cfn-lint and checkov on every rendered template; returns how many templates were checked.
pub fn templates() -> Result<usize> {
    let dirs = render_all()?;
    let templates: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| {
            let mut files = vec![d.join("template.yaml"), d.join("bootstrap.yaml")];
            files.extend(
                crate::stack::template::ORGANIZATION_TEMPLATES
                    .iter()
                    .map(|name| d.join(name))
                    .filter(|path| path.exists()),
            );
            files
        })
        .collect();
    let status = Command::new(crate::build::tools::bin("cfn-lint"))
        .args(&templates)
        .status()
        .context("failed to run cfn-lint from the tool environment")?;
    ensure!(
        status.success(),
        "cfn-lint found problems ({status}); its findings are above"
    );
    let checkov = crate::build::tools::CHECKOV.ensure()?;
    for dir in &dirs {
        // Scanned from inside the folder: checkov 3 runs its secret scan (CKV_AWS_45) over the
        // file path it records in each Lambda's variables, so an absolute path such as
        // `/work/ci-check/target/...` reads as a hard-coded secret. `.` keeps the result
        // independent of where the repository is cloned.
        let output = Command::new(checkov.join("bin").join("checkov"))
            .args([
                "--skip-download",
                "--quiet",
                "--compact",
                "--framework",
                "cloudformation",
                "--directory",
                ".",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("failed to run checkov from its tool environment")?;
        ensure!(
            output.status.success(),
            "checkov found problems in {}: fix them, or skip each with a reason in the template's Metadata:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(templates.len())
}

/// actionlint on every workflow in .github/workflows; returns how many it checked.
pub fn workflows() -> Result<usize> {
    let dir = crate::paths::workspace_root()
        .join(".github")
        .join("workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("failed to read `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no workflow in `{}`", dir.display());
    let status = Command::new(crate::build::tools::bin("actionlint"))
        .args(&files)
        .stdin(Stdio::null())
        .status()
        .context("failed to run actionlint from the tool environment")?;
    ensure!(
        status.success(),
        "actionlint found problems ({status}); its findings are above"
    );
    Ok(files.len())
}

/// Values that stand in for a stack's CloudFormation expressions in its policy.
pub struct PolicyValues<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub deployment: &'a str,
    pub topic_arn: &'a str,
}

/// The function's policy (docs/iam-policy.json) with its CloudFormation expressions resolved,
/// as IAM would hold it for a stack with `values`.
pub fn resolved_function_policy(values: &PolicyValues<'_>) -> Result<serde_json::Value> {
    let path = crate::paths::workspace_root()
        .join("docs")
        .join("iam-policy.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok(crate::stack::template::resolve(
        &serde_json::from_str(&text)?,
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", values.region),
            ("AWS::AccountId", values.account),
            ("DeploymentName", values.deployment),
            ("Topic", values.topic_arn),
        ],
    ))
}

/// A role's one inline policy in a template, resolved with `values`.
fn resolved_inline_policy(
    template: &str,
    role: &str,
    values: &[(&str, &str)],
) -> Result<serde_json::Value> {
    let document = crate::stack::template::inline_policy(template, role)?;
    Ok(crate::stack::template::resolve(&document, values))
}

/// The bootstrap template's execution role policy, resolved for one account and region.
fn resolved_execution_role_policy() -> Result<serde_json::Value> {
    resolved_inline_policy(
        "bootstrap.yaml",
        "ExecutionRole",
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
            (
                "ArtifactBucket.Arn",
                "arn:aws:s3:::smartvault-bootstrap-artifactbucket-abc123",
            ),
            (
                "FunctionBoundary",
                "arn:aws:iam::123456789012:policy/smartvault-bootstrap-function-boundary-eu-west-1",
            ),
        ],
    )
}

/// The StackSet roles' policies (execution, administration), resolved for a target account.
fn resolved_stackset_policies() -> Result<[serde_json::Value; 2]> {
    let values = [
        ("AWS::Partition", "aws"),
        ("AWS::AccountId", "111111111111"),
        ("AdministratorAccount", "123456789012"),
    ];
    Ok([
        resolved_inline_policy("stackset-roles.yaml", "ExecutionRole", &values)?,
        resolved_inline_policy("stackset-roles.yaml", "AdministrationRole", &values)?,
    ])
}

fn read_doc(file: &str) -> Result<String> {
    let path = crate::paths::workspace_root().join("docs").join(file);
    std::fs::read_to_string(&path).with_context(|| format!("failed to read `{}`", path.display()))
}

fn parliament(policy: &str) -> Result<Vec<serde_json::Value>> {
    // parliament refuses --string when standard input is not a terminal unless it is closed.
    let output = Command::new(crate::build::tools::bin("parliament"))
        .args(["--json", "--string", policy])
        .stdin(Stdio::null())
        .output()
        .context("failed to run parliament from the tool environment")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("parliament printed {l:?}")))
        .collect()
}

/// The main template's restore-test role policy, resolved for one account, region and stack.
fn resolved_restore_test_policy() -> Result<serde_json::Value> {
    let body = crate::stack::template::read_template("smartvault.yaml")?;
    let template: serde_norway::Value = serde_norway::from_str(&body)?;
    let document = crate::stack::template::long_form(
        &template["Resources"]["RestoreTestPolicy"]["Properties"]["PolicyDocument"],
    );
    Ok(crate::stack::template::resolve(
        &document,
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
            ("DeploymentName", "smartvault-prod"),
        ],
    ))
}

/// The main template's consistency policy, resolved for one account, region and stack, sending
/// the stack's Linux document, a user's and AWS's VSS document.
fn resolved_consistency_policy() -> Result<serde_json::Value> {
    crate::stack::template::consistency_policy(
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
            ("DeploymentName", "smartvault-prod"),
            ("BackupTagKey", "Backup"),
            ("BackupTagValue", "true"),
        ],
        &[
            "arn:aws:ssm:eu-west-1:123456789012:document/smartvault-prod-linux-freeze".into(),
            "arn:aws:ssm:eu-west-1:123456789012:document/db-freeze".into(),
            "arn:aws:ssm:eu-west-1::document/AWSEC2-CreateVssSnapshot".into(),
        ],
    )
}

/// parliament on the nine policies (the function's, its restore-test and consistency policies, the CI
/// deployer's, the execution role's, the bootstrap administrator's, the promotion source's,
/// the StackSet execution and administration roles');
/// every finding must be one of the accepted ones.
pub fn policies() -> Result<usize> {
    let function = serde_json::to_string(&resolved_function_policy(&PolicyValues {
        region: "eu-west-1",
        account: "123456789012",
        deployment: "smartvault-prod",
        topic_arn: "arn:aws:sns:eu-west-1:123456789012:smartvault-prod",
    })?)?;
    let execution = serde_json::to_string(&resolved_execution_role_policy()?)?;
    ensure!(
        !execution.contains("unresolved-"),
        "the execution role's policy refers to a value build/lint.rs does not resolve: {execution}"
    );
    let restore_test = serde_json::to_string(&resolved_restore_test_policy()?)?;
    ensure!(
        !restore_test.contains("unresolved-") && restore_test.contains("ec2:CreateVolume"),
        "the restore-test policy did not resolve: {restore_test}"
    );
    let [stackset_execution, stackset_administration] = resolved_stackset_policies()?;
    let stackset_execution = serde_json::to_string(&stackset_execution)?;
    let stackset_administration = serde_json::to_string(&stackset_administration)?;
    ensure!(
        !stackset_execution.contains("unresolved-")
            && !stackset_administration.contains("unresolved-"),
        "a StackSet role's policy refers to a value build/lint.rs does not resolve"
    );
    let consistency = serde_json::to_string(&resolved_consistency_policy()?)?;
    ensure!(
        !consistency.contains("${"),
        "the consistency policy refers to a value build/lint.rs does not resolve: {consistency}"
    );
    let deployer = read_doc("deployer-policy.json")?;
    let administrator = read_doc("bootstrap-policy.json")?;
    let source = read_doc("promotion-source-policy.json")?;
    let policies = [
        ("function", function.as_str()),
        ("restore test", restore_test.as_str()),
        ("consistency", consistency.as_str()),
        ("deployer", deployer.as_str()),
        ("execution", execution.as_str()),
        ("administrator", administrator.as_str()),
        ("promotion source", source.as_str()),
        ("stackset execution", stackset_execution.as_str()),
        ("stackset administration", stackset_administration.as_str()),
    ];
    let mut unexpected = Vec::new();
    for (name, policy) in policies {
        for finding in parliament(policy)? {
            let issue = finding["issue"].as_str().unwrap_or_default();
            let newer = issue == "UNKNOWN_ACTION"
                && NEWER_THAN_PARLIAMENT.iter().any(|action| {
                    finding["detail"].as_str() == Some(format!("Unknown action {action}").as_str())
                });
            if !newer
                && !ACCEPTED_FINDINGS
                    .iter()
                    .any(|(who, accepted, _)| *who == name && *accepted == issue)
            {
                unexpected.push(format!("{name} policy: {issue}: {}", finding["detail"]));
            }
        }
    }
    ensure!(
        unexpected.is_empty(),
        "parliament found problems; fix the policy or justify the finding in xtask/src/build/lint.rs and docs/static-checks.md:\n{}",
        unexpected.join("\n")
    );
    Ok(policies.len())
}
