//! Proves from AWS's own resource-provider schemas (which cfn-lint ships) that CloudFormation
//! can manage every resource of SmartVault's templates with `docs/deployer-policy.json`: each
//! handler permission is granted, or listed in docs/cloudformation-permissions.md with the
//! reason it cannot apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The handlers CloudFormation runs for a stack's create, update, delete and rollback.
const HANDLERS: &[&str] = &["create", "read", "update", "delete"];
const TEMPLATES: &[&str] = &["smartvault.yaml", "bootstrap.yaml"];
const EXCEPTIONS_DOC: &str = "docs/cloudformation-permissions.md";

/// cfn-lint's schema folder in the tool environment.
fn schemas() -> PathBuf {
    let lib = crate::paths::tools().join("venv").join("lib");
    let python = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask tools`", lib.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python"))
        })
        .unwrap_or_else(|| panic!("no python folder in {}", lib.display()));
    python.join("site-packages/cfnlint/data/schemas")
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask tools`", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The resource types a template declares.
fn resource_types(template: &str) -> BTreeSet<String> {
    let body = crate::template::read_template(template).unwrap();
    let value: serde_norway::Value = serde_norway::from_str(&body).unwrap();
    value["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|r| r["Type"].as_str().unwrap().to_owned())
        .collect()
}

/// Every region an example environment deploys to.
fn regions() -> BTreeSet<String> {
    ["local", "dev", "staging", "prod"]
        .iter()
        .map(|name| crate::config::example(name).region)
        .collect()
}

/// The permissions each type's handlers declare in `region`.
fn handler_permissions(
    region: &str,
    types: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let dir = schemas();
    let provider = read_json(&dir.join("providers").join(format!("{region}.json")));
    types
        .iter()
        .map(|t| {
            let file = provider[t]
                .as_str()
                .unwrap_or_else(|| panic!("{t} is not a resource type in {region}"));
            let schema = read_json(&dir.join("resources").join(format!("{file}.json")));
            let permissions = HANDLERS
                .iter()
                .filter_map(|h| schema["handlers"][h]["permissions"].as_array())
                .flatten()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect();
            (t.clone(), permissions)
        })
        .collect()
}

/// The doc's table: (resource type, permission) pairs that cannot apply.
fn exceptions() -> BTreeSet<(String, String)> {
    let path = crate::paths::workspace_root().join(EXCEPTIONS_DOC);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut listed = BTreeSet::new();
    for row in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        let resource_type = ticked(cells[1]).pop().unwrap();
        for permission in ticked(cells[0]) {
            listed.insert((resource_type.clone(), permission));
        }
    }
    listed
}

/// The handler permissions neither granted nor listed as not applying.
fn unaccounted(
    required: &BTreeMap<String, BTreeSet<String>>,
    granted: &BTreeSet<String>,
    cannot_apply: &BTreeSet<(String, String)>,
) -> Vec<(String, String)> {
    required
        .iter()
        .flat_map(|(t, permissions)| permissions.iter().map(move |p| (t.clone(), p.clone())))
        .filter(|(t, p)| !granted.contains(p) && !cannot_apply.contains(&(t.clone(), p.clone())))
        .collect()
}

/// Every type of both templates with its handler permissions, in every region used.
fn required() -> Vec<(String, BTreeMap<String, BTreeSet<String>>)> {
    let types: BTreeSet<String> = TEMPLATES.iter().flat_map(|t| resource_types(t)).collect();
    regions()
        .into_iter()
        .map(|region| {
            let permissions = handler_permissions(&region, &types);
            (region, permissions)
        })
        .collect()
}

#[test]
fn cloudformation_can_manage_every_resource_with_the_deployer_policy() {
    let granted = crate::policy_checks::allowed_actions();
    let cannot_apply = exceptions();
    for (region, required) in required() {
        assert!(
            required.contains_key("AWS::IAM::Role") && required.contains_key("AWS::S3::Bucket"),
            "both templates were read: {:?}",
            required.keys()
        );
        let missing = unaccounted(&required, &granted, &cannot_apply);
        assert!(
            missing.is_empty(),
            "in {region}, CloudFormation's handlers need permissions docs/deployer-policy.json \
             does not grant; grant them, or list them in {EXCEPTIONS_DOC} with the reason they \
             cannot apply: {missing:#?}"
        );
    }
}

#[test]
fn every_listed_exception_is_still_a_handler_permission() {
    let all: BTreeSet<(String, String)> = required()
        .into_iter()
        .flat_map(|(_, required)| {
            required
                .into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
        })
        .collect();
    let listed = exceptions();
    assert!(listed.len() > 20, "the table was read: {listed:?}");
    let stale: Vec<_> = listed.difference(&all).collect();
    assert!(
        stale.is_empty(),
        "{EXCEPTIONS_DOC} lists permissions no handler declares: {stale:?}"
    );
    let granted = crate::policy_checks::allowed_actions();
    let both: Vec<_> = listed.iter().filter(|(_, p)| granted.contains(p)).collect();
    assert!(
        both.is_empty(),
        "listed as not applying, yet granted: {both:?}"
    );
}

#[test]
fn the_check_fails_on_a_removed_permission_or_a_new_resource_type() {
    let granted = crate::policy_checks::allowed_actions();
    let cannot_apply = exceptions();
    let (region, required) = required().remove(0);
    assert!(unaccounted(&required, &granted, &cannot_apply).is_empty());
    // The role's delete handler lists its inline policies: without that, destroy would fail.
    let mut without = granted.clone();
    assert!(without.remove("iam:ListRolePolicies"));
    assert_eq!(
        unaccounted(&required, &without, &cannot_apply),
        [(
            "AWS::IAM::Role".to_owned(),
            "iam:ListRolePolicies".to_owned()
        )]
    );
    // A resource type added to a template without its permissions.
    let queue: BTreeSet<String> = ["AWS::SQS::Queue".to_owned()].into();
    let mut with_queue = required;
    with_queue.extend(handler_permissions(&region, &queue));
    let missing = unaccounted(&with_queue, &granted, &cannot_apply);
    assert!(
        missing
            .iter()
            .any(|(t, p)| t == "AWS::SQS::Queue" && p == "sqs:CreateQueue"),
        "{missing:?}"
    );
}

#[test]
fn actions_parliament_does_not_know_are_declared_by_aws_schemas() {
    let declared: BTreeSet<String> = required()
        .into_iter()
        .flat_map(|(_, required)| required.into_values().flatten())
        .collect();
    for action in crate::lint::NEWER_THAN_PARLIAMENT {
        assert!(
            declared.contains(*action),
            "{action} is in no handler's permissions"
        );
    }
}
