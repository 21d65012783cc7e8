//! Proves docs/deployer-policy.json grants every AWS call the deployer's CI commands make:
//! the calls are read from the source of deploy, promote, destroy, status and invoke.

use std::collections::BTreeSet;

/// The modules whose AWS calls a CI role runs (the demo and tests are not part of CI's role).
const CI_MODULES: &[&str] = &[
    "aws.rs",
    "cfn.rs",
    "snapshots.rs",
    "artifact_store.rs",
    "lambda.rs",
    "lifecycle/bootstrap.rs",
    "lifecycle/deploy.rs",
    "lifecycle/destroy.rs",
    "lifecycle/invoke.rs",
    "commands/bootstrap.rs",
    "commands/deploy.rs",
    "commands/destroy.rs",
    "commands/invoke.rs",
    "commands/promote.rs",
    "commands/status.rs",
];

/// The modules whose AWS calls `cargo xtask bootstrap` makes as the administrator (its own
/// modules call AWS only through these).
const BOOTSTRAP_MODULES: &[&str] = &["aws.rs", "cfn.rs", "artifact_store.rs"];

/// Modules that call AWS but never under a CI role, and why.
const NOT_CI: &[(&str, &str)] = &[
    ("commands/demo.rs", "runs only against its own emulator"),
    ("bench.rs", "runs only against its own emulator"),
    ("fleet_bench.rs", "runs only against its own emulator"),
    (
        "inbox.rs",
        "the demo's and bench's stand-in for an email inbox",
    ),
    ("chain_tests.rs", "a test"),
    ("lifecycle/destroy_tests.rs", "a test"),
    ("policy_checks.rs", "this scan"),
];

/// Calls a CI module makes through the function's code rather than its own clients: (the
/// call in the module's source, the IAM actions it needs).
const THROUGH_THE_FUNCTION: &[(&str, &[&str])] = &[
    // Paced, bounded deletion (function/src/execute.rs), which destroy reuses.
    ("execute::delete_snapshots(", &["ec2:DeleteSnapshot"]),
];

/// Client field in `Aws` → IAM service prefix.
const CLIENTS: &[(&str, &str)] = &[
    ("cloudformation", "cloudformation"),
    ("s3", "s3"),
    ("lambda", "lambda"),
    ("sts", "sts"),
    ("ec2", "ec2"),
    ("logs", "logs"),
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
    for (client, prefix) in CLIENTS {
        let needle = format!(".{client}.");
        let mut rest = compact.as_str();
        while let Some(at) = rest.find(&needle) {
            rest = &rest[at + needle.len()..];
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
        .filter(|(action, _)| !allowed.contains(action))
        .collect();
    assert!(missing.is_empty(), "docs/{file} lacks: {missing:#?}");
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
fn sources(root: &std::path::Path, dir: &std::path::Path) -> Vec<String> {
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
    assert!(callers.iter().any(|m| m == "cfn.rs"), "{callers:?}");
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
    for file in ["deployer-policy.json", "bootstrap-policy.json"] {
        for action in allowed_actions(file) {
            assert!(!action.contains('*'), "{file}: {action}");
        }
    }
    for action in crate::schema_checks::execution_role_actions() {
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
