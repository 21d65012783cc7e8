//! Proves docs/deployer-policy.json grants every AWS call the deployer's CI commands make:
//! the calls are read from the source of deploy, promote, destroy, status and invoke.

use std::collections::BTreeSet;

/// The modules whose AWS calls a CI role runs (the demo and tests are not part of CI's role).
const CI_MODULES: &[&str] = &[
    "aws/mod.rs",
    "aws/cfn.rs",
    "aws/snapshots.rs",
    "aws/artifact_store.rs",
    "aws/lambda.rs",
    "workflows/bootstrap.rs",
    "workflows/deploy/mod.rs",
    "workflows/destroy/mod.rs",
    "aws/fleet.rs",
    "aws/topic.rs",
    "aws/volumes.rs",
    "aws/iam.rs",
    "aws/kms.rs",
    "aws/organizations.rs",
    "commands/bootstrap.rs",
    "commands/deploy.rs",
    "commands/destroy.rs",
    "commands/invoke.rs",
    "commands/promote.rs",
    "commands/status.rs",
    "commands/coverage.rs",
    "commands/logs.rs",
    "aws/logs.rs",
    "commands/drift.rs",
    "aws/drift.rs",
    "aws/stacksets.rs",
    // Assumes each member account's role for an organization's destroy.
    "workflows/organization.rs",
];

/// Calls a CI command makes that the deployer policy leaves out on purpose, because the
/// command says `unknown` and goes on when AWS refuses them: (IAM action, why).
const OPTIONAL: &[(&str, &str)] = &[(
    "iam:SimulatePrincipalPolicy",
    "doctor's and deploy's permission check; the deployer's role name is the user's, and the \
     action reads any principal's permissions (docs/iam-policy.md)",
)];

/// The modules whose AWS calls `cargo xtask bootstrap` makes as the administrator (its own
/// modules call AWS only through these).
const BOOTSTRAP_MODULES: &[&str] = &["aws/mod.rs", "aws/cfn.rs", "aws/artifact_store.rs"];

/// Modules that call AWS but never under a CI role, and why.
const NOT_CI: &[(&str, &str)] = &[
    ("commands/demo.rs", "runs only against its own emulator"),
    ("bench/mod.rs", "runs only against its own emulator"),
    ("bench/fleet.rs", "runs only against its own emulator"),
    (
        "aws/inbox.rs",
        "the demo's and bench's stand-in for an email inbox",
    ),
    (
        "aws/restore.rs",
        "restore is an operator's command, run with the operator's credentials (docs/restore.md)",
    ),
    (
        "commands/restore.rs",
        "restore's read of fast snapshot restores, with the operator's credentials \
         (docs/restore.md)",
    ),
    (
        "aws/recycle_bin.rs",
        "snapshots --deleted and --restore-deleted: an operator's restore tasks, with their own \
         credentials (docs/restore.md)",
    ),
    (
        "aws/unlock.rs",
        "destroy --unlock-governance: an operator's explicit choice with their own credentials; \
         no shipped policy may grant ec2:UnlockSnapshot",
    ),
    (
        "aws/trips.rs",
        "tripwire --clear: an operator's decision after an incident, with their own credentials \
         (docs/function.md)",
    ),
    ("checks/chains.rs", "a test"),
    ("workflows/destroy/apply_tests.rs", "a test"),
    ("checks/policies.rs", "this scan"),
];

/// Calls a CI module makes through the function's code rather than its own clients: (the
/// call in the module's source, the IAM actions it needs).
const THROUGH_THE_FUNCTION: &[(&str, &[&str])] = &[
    // Paced, bounded deletion (function/src/execute.rs), which destroy reuses.
    ("execute::delete_snapshots(", &["ec2:DeleteSnapshot"]),
    // An organization's destroy assumes the member role in each target account.
    (".assume(", &["sts:AssumeRole"]),
    // The function's fast snapshot restore reader and switch, which destroy uses to disable
    // them on the snapshots it keeps.
    (
        "ec2_query::fast_restores(",
        &["ec2:DescribeFastSnapshotRestores"],
    ),
    (
        "ec2_query::fast_restore(",
        &["ec2:DisableFastSnapshotRestores"],
    ),
    // The function's reader of snapshot locks, which destroy's survey uses.
    ("inventory::locks(", &["ec2:DescribeLockedSnapshots"]),
    // The function's inventory, which `coverage` reads as a backup run does.
    (
        "inventory::read(",
        &[
            "ec2:DescribeInstances",
            "ec2:DescribeVolumes",
            "ec2:DescribeSnapshots",
        ],
    ),
];

/// Permissions AWS checks on the caller's own credentials beyond the call it makes: (what in
/// a module's source asks for it, the IAM actions, AWS's reason).
const CHECKED_BY_AWS: &[(&str, &[&str], &str)] = &[(
    // CloudFormation verifies a delegated administrator by listing the organization's
    // delegated administrators as the caller; without the right it answers "Account used is
    // not a delegated administrator" (reported by the Terraform AWS provider, PR #37069).
    "CallAs::DelegatedAdmin",
    &["organizations:ListDelegatedAdministrators"],
    "StackSets' CallAs: DELEGATED_ADMIN",
)];

/// Client field in `Aws` → IAM service prefix.
const CLIENTS: &[(&str, &str)] = &[
    ("cloudformation", "cloudformation"),
    ("s3", "s3"),
    ("lambda", "lambda"),
    ("sts", "sts"),
    ("ec2", "ec2"),
    ("logs", "logs"),
    ("iam", "iam"),
    ("quotas", "servicequotas"),
    ("orgs", "organizations"),
    ("kms", "kms"),
];

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The IAM actions one SDK call needs.
fn actions_for(prefix: &str, operation: &str) -> Vec<String> {
    let named = |action: &str| vec![format!("{prefix}:{action}")];
    match (prefix, operation) {
        ("cloudformation", "wait_until_change_set_create_complete") => named("DescribeChangeSet"),
        ("cloudformation", op) if op.starts_with("wait_until_stack") => named("DescribeStacks"),
        ("s3", "head_object") => named("GetObject"),
        ("s3", "list_object_versions") => named("ListBucketVersions"),
        // Deleting a specific version needs its own action besides DeleteObject.
        ("s3", "delete_object") => vec!["s3:DeleteObject".into(), "s3:DeleteObjectVersion".into()],
        ("lambda", "invoke") => named("InvokeFunction"),
        (_, op) => named(&pascal(op)),
    }
}

/// Every (IAM action, call site) the modules make through the `Aws` clients.
fn calls(modules: &[&str]) -> BTreeSet<(String, String)> {
    let src = crate::paths::workspace_root().join("xtask").join("src");
    let mut found = BTreeSet::new();
    for module in modules {
        let text = std::fs::read_to_string(src.join(module)).unwrap();
        found.extend(calls_in(module, &text));
    }
    found
}

/// The (IAM action, call site) pairs in one module's source.
fn calls_in(module: &str, text: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for (call, actions) in THROUGH_THE_FUNCTION {
        if compact.contains(call) {
            for action in *actions {
                found.insert(((*action).to_owned(), format!("{module}: {call}")));
            }
        }
    }
    for (asks, actions, reason) in CHECKED_BY_AWS {
        if compact.contains(asks) {
            for action in *actions {
                found.insert(((*action).to_owned(), format!("{module}: {reason}")));
            }
        }
    }
    for (client, prefix) in CLIENTS {
        // `aws.ec2.describe_x(`, and in a module that takes a client as a parameter or makes
        // one in a variable of the same name (`cloudformation: &Client`, `let kms = ...`),
        // `cloudformation.detect_stack_drift(`.
        let as_parameter = compact.contains(&format!("{client}:&"))
            || compact.contains(&format!("let{client}=aws_sdk_"));
        let needle = format!("{client}.");
        let mut rest = compact.as_str();
        while let Some(at) = rest.find(&needle) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + needle.len()..];
            let counts = match before {
                Some('.') => true,
                Some(c) => as_parameter && !(c.is_alphanumeric() || c == '_'),
                None => as_parameter,
            };
            if !counts {
                continue;
            }
            let operation: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if rest[operation.len()..].starts_with('(') && !operation.is_empty() {
                for action in actions_for(prefix, &operation) {
                    found.insert((action, format!("{module}: {client}.{operation}")));
                }
            }
        }
    }
    found
}

/// The actions the execution role's inline policy allows, read from the bootstrap template.
pub(crate) fn execution_role_actions() -> BTreeSet<String> {
    inline_policy_actions("bootstrap.yaml", "ExecutionRole")
}

/// The actions the StackSet execution role's inline policy allows.
pub(crate) fn stackset_execution_role_actions() -> BTreeSet<String> {
    inline_policy_actions("stackset-roles.yaml", "ExecutionRole")
}

/// The actions a role's one inline policy allows, read from a template.
fn inline_policy_actions(template: &str, role: &str) -> BTreeSet<String> {
    allowed_in(&crate::stack::template::inline_policy(template, role).unwrap())
}

/// Every action a policy document in docs/ allows.
pub(crate) fn allowed_actions(file: &str) -> BTreeSet<String> {
    let path = crate::paths::workspace_root().join("docs").join(file);
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow", "{file} only allows");
    }
    allowed_in(&policy)
}

/// The actions a policy document's `Allow` statements name.
pub(crate) fn allowed_in(policy: &serde_json::Value) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        if statement["Effect"] != "Allow" {
            continue;
        }
        match &statement["Action"] {
            serde_json::Value::String(action) => {
                allowed.insert(action.clone());
            }
            serde_json::Value::Array(actions) => {
                allowed.extend(actions.iter().map(|a| a.as_str().unwrap().to_owned()));
            }
            other => panic!("unexpected Action {other}"),
        }
    }
    allowed
}

#[test]
fn the_deployer_policy_grants_every_call_the_ci_commands_make() {
    let calls = calls(CI_MODULES);
    // The scan must find the calls it is meant to check, or it proves nothing.
    for expected in [
        "cloudformation:CreateChangeSet",
        "s3:PutObject",
        "ec2:DeleteSnapshot",
        "lambda:InvokeFunction",
        "sts:GetCallerIdentity",
        "organizations:ListDelegatedAdministrators",
        "iam:GetRole",
        "iam:SimulatePrincipalPolicy",
        "servicequotas:ListServiceQuotas",
    ] {
        assert!(
            calls.iter().any(|(action, _)| action == expected),
            "the scan missed {expected}: {calls:?}"
        );
    }
    assert_granted(&calls, "deployer-policy.json");
}

/// Fails naming every call (and where it is made) that the policy in docs/`file` lacks.
fn assert_granted(calls: &BTreeSet<(String, String)>, file: &str) {
    let allowed = allowed_actions(file);
    let missing: Vec<&(String, String)> = calls
        .iter()
        // IAM matches action names case-insensitively (ListAWSService... is ListAwsService...).
        .filter(|(action, _)| !allowed.iter().any(|a| a.eq_ignore_ascii_case(action)))
        .filter(|(action, _)| !OPTIONAL.iter().any(|(optional, _)| optional == action))
        .collect();
    assert!(missing.is_empty(), "docs/{file} lacks: {missing:#?}");
}

#[test]
fn the_promotion_source_policy_only_reads_and_only_what_the_deployer_may() {
    let source = allowed_actions("promotion-source-policy.json");
    assert_eq!(
        source,
        [
            "cloudformation:DescribeStacks",
            "s3:GetObject",
            "sts:GetCallerIdentity"
        ]
        .map(str::to_owned)
        .into(),
        "the source side of a promotion reads the stack's record and the artifact, nothing else"
    );
    let deployer = allowed_actions("deployer-policy.json");
    assert!(source.is_subset(&deployer));
}

#[test]
fn the_bootstrap_policy_grants_every_call_bootstrap_makes() {
    let calls = calls(BOOTSTRAP_MODULES);
    assert!(
        calls
            .iter()
            .any(|(action, _)| action == "cloudformation:CreateStack"),
        "{calls:?}"
    );
    assert_granted(&calls, "bootstrap-policy.json");
}

/// Every `.rs` file under `dir`, as a path relative to `root`.
pub(crate) fn sources(root: &std::path::Path, dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(root, &path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap();
            found.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    found
}

#[test]
fn every_module_that_calls_aws_is_scanned_or_said_to_be_outside_ci() {
    let src = crate::paths::workspace_root().join("xtask").join("src");
    let mut callers = Vec::new();
    for module in sources(&src, &src) {
        let text = std::fs::read_to_string(src.join(&module)).unwrap();
        if !calls_in(&module, &text).is_empty() {
            callers.push(module);
        }
    }
    assert!(callers.iter().any(|m| m == "aws/cfn.rs"), "{callers:?}");
    for module in &callers {
        assert!(
            CI_MODULES.contains(&module.as_str()) || NOT_CI.iter().any(|(m, _)| m == module),
            "{module} calls AWS: add it to CI_MODULES (and the deployer policy) or to NOT_CI \
             with the reason"
        );
    }
}

#[test]
fn the_deployer_policy_uses_no_wildcard_actions() {
    for file in [
        "deployer-policy.json",
        "bootstrap-policy.json",
        "promotion-source-policy.json",
    ] {
        for action in allowed_actions(file) {
            assert!(!action.contains('*'), "{file}: {action}");
        }
    }
    for action in execution_role_actions() {
        assert!(!action.contains('*'), "the execution role: {action}");
    }
}

#[test]
fn snake_case_operations_map_to_iam_actions() {
    assert_eq!(
        actions_for("cloudformation", "create_change_set"),
        ["cloudformation:CreateChangeSet"]
    );
    assert_eq!(
        actions_for("cloudformation", "wait_until_stack_delete_complete"),
        ["cloudformation:DescribeStacks"]
    );
    assert_eq!(actions_for("s3", "head_object"), ["s3:GetObject"]);
    assert_eq!(
        actions_for("logs", "describe_log_groups"),
        ["logs:DescribeLogGroups"]
    );
}

#[test]
fn calls_through_a_client_parameter_are_found_and_longer_names_are_not() {
    let found = calls_in(
        "m.rs",
        "fn f(cloudformation: &Client) { let s = cloudformation\n    .detect_stack_drift()\n    \
         .send(); }\n\
         aws.logs.filter_log_events();\n\
         let x = my_ec2.describe_things();\n\
         let _ = ec2.join();\n\
         crate::aws::logs::read(aws);",
    );
    let actions: Vec<&str> = found.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["cloudformation:DetectStackDrift", "logs:FilterLogEvents"]
    );
}

/// A trust policy in docs/trust/, its placeholders filled.
fn trust(file: &str) -> serde_json::Value {
    let path = crate::paths::workspace_root().join("docs/trust").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("<ACCOUNT_ID>", "222222222222")
        .replace("<CALLER_ACCOUNT_ID>", "111111111111")
        .replace("<CALLER_ROLE>", "ci")
        .replace("<OWNER>/<REPOSITORY>", "example/backups")
        .replace("<NEXT_ENVIRONMENT>", "prod")
        .replace("<ENVIRONMENT>", "staging")
        .replace("<EXTERNAL_ID>", "smartvault-staging");
    assert!(!text.contains('<'), "{file}: a placeholder left: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn each_trust_policy_trusts_exactly_one_caller() {
    for (file, environment) in [
        ("github-oidc-deployer.json", "staging"),
        ("github-oidc-promotion-source.json", "prod"),
    ] {
        let policy = trust(file);
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1, "{file}");
        let only = &statements[0];
        assert_eq!(only["Action"], "sts:AssumeRoleWithWebIdentity", "{file}");
        assert_eq!(
            only["Principal"]["Federated"],
            "arn:aws:iam::222222222222:oidc-provider/token.actions.githubusercontent.com"
        );
        // Exact matches: a wildcard in `sub` would let any branch or environment in.
        let exact = &only["Condition"]["StringEquals"];
        assert_eq!(
            exact["token.actions.githubusercontent.com:aud"],
            "sts.amazonaws.com"
        );
        assert_eq!(
            exact["token.actions.githubusercontent.com:sub"],
            format!("repo:example/backups:environment:{environment}").as_str(),
            "{file}"
        );
        assert_eq!(only["Condition"].as_object().unwrap().len(), 1, "{file}");
    }
    let role = trust("role-arn-deployer.json");
    let only = &role["Statement"][0];
    assert_eq!(only["Action"], "sts:AssumeRole");
    assert_eq!(
        only["Principal"]["AWS"],
        "arn:aws:iam::111111111111:role/ci"
    );
    assert_eq!(
        only["Condition"]["StringEquals"]["sts:ExternalId"],
        "smartvault-staging"
    );
}

#[test]
fn the_workflow_promotes_with_a_read_only_source_profile_and_the_targets_own_role() {
    let path = crate::paths::workspace_root().join(".github/workflows/smartvault.yml");
    let workflow: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (job, source, target) in [("staging", "DEV", "STAGING"), ("prod", "STAGING", "PROD")] {
        let steps = workflow["jobs"][job]["steps"].as_sequence().unwrap();
        let roles: Vec<&str> = steps
            .iter()
            .filter_map(|s| s["with"]["role-to-assume"].as_str())
            .collect();
        assert_eq!(
            roles,
            [
                format!("${{{{ vars.SMARTVAULT_{source}_SOURCE_ROLE_ARN }}}}"),
                format!("${{{{ vars.SMARTVAULT_{target}_ROLE_ARN }}}}"),
            ],
            "{job}: first the source's read-only role, then the target's own"
        );
        let promote = steps
            .iter()
            .filter_map(|s| s["run"].as_str())
            .find(|r| r.contains("cargo xtask promote"))
            .unwrap();
        assert!(
            promote.contains("--from-profile smartvault-source"),
            "{job}: {promote}"
        );
        assert_eq!(workflow["jobs"][job]["environment"].as_str(), Some(job));
    }
}
