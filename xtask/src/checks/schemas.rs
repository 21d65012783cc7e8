//! Proves from AWS's own resource-provider schemas (which cfn-lint ships) that CloudFormation
//! can manage every resource of SmartVault's templates with the permissions it acts with: the
//! execution role's (templates/bootstrap.yaml) for an environment's stack, the administrator's
//! (docs/bootstrap-policy.json) for the bootstrap stack. Each handler permission is granted, or
//! listed in docs/cloudformation-permissions.md with the reason it cannot apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The handlers CloudFormation runs for a stack's create, update, delete and rollback.
const HANDLERS: &[&str] = &["create", "read", "update", "delete"];
const EXCEPTIONS_DOC: &str = "docs/cloudformation-permissions.md";

/// Who CloudFormation acts as for a template's stack, and where its exceptions are listed.
#[derive(Debug, Clone, Copy)]
struct Principal {
    template: &'static str,
    /// The policy's name in messages.
    policy: &'static str,
    /// The heading of its table in the exceptions doc.
    section: &'static str,
    granted: fn() -> BTreeSet<String>,
    /// Its table lists permissions (a check that the table was read); some need none.
    has_exceptions: bool,
}

const PRINCIPALS: [Principal; 5] = [
    Principal {
        template: "smartvault.yaml",
        policy: "the execution role's policy in templates/bootstrap.yaml",
        section: "## The execution role",
        granted: crate::checks::policies::execution_role_actions,
        has_exceptions: true,
    },
    Principal {
        template: "bootstrap.yaml",
        policy: "docs/bootstrap-policy.json",
        section: "## The bootstrap administrator",
        granted: bootstrap_policy_actions,
        has_exceptions: true,
    },
    // A stack set's instance in an account of `targets.accounts`, made by the execution role
    // of templates/stackset-roles.yaml.
    Principal {
        template: "smartvault.yaml",
        policy: "the StackSet execution role's policy in templates/stackset-roles.yaml",
        section: "## The StackSet execution role",
        granted: crate::checks::policies::stackset_execution_role_actions,
        has_exceptions: true,
    },
    // An organization's artifact bucket in each target region, made by deploy.
    Principal {
        template: "organization.yaml",
        policy: "docs/deployer-policy.json",
        section: "## The deployer: an organization's artifact buckets",
        granted: deployer_policy_actions,
        has_exceptions: true,
    },
    // An organization's central topic in the administrator account, made by deploy.
    Principal {
        template: "central-topic.yaml",
        policy: "docs/deployer-policy.json",
        section: "## The deployer: an organization's central topic",
        granted: deployer_policy_actions,
        has_exceptions: false,
    },
];

fn deployer_policy_actions() -> BTreeSet<String> {
    crate::checks::policies::allowed_actions("deployer-policy.json")
}

fn bootstrap_policy_actions() -> BTreeSet<String> {
    crate::checks::policies::allowed_actions("bootstrap-policy.json")
}

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
    let body = crate::stack::template::read_template(template).unwrap();
    let value: serde_norway::Value = serde_norway::from_str(&body).unwrap();
    value["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|r| r["Type"].as_str().unwrap().to_owned())
        .collect()
}

/// Every region an example environment deploys to, an organization's target regions too.
fn regions() -> BTreeSet<String> {
    ["local", "dev", "staging", "prod", "org"]
        .iter()
        .map(|name| crate::config::example(name))
        .flat_map(|env| {
            let mut regions = vec![env.region];
            regions.extend(env.targets.into_iter().flat_map(|t| t.regions));
            regions
        })
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

/// One table of the doc (under `section`): (resource type, permission) pairs that cannot apply.
fn exceptions(section: &str) -> BTreeSet<(String, String)> {
    let path = crate::paths::workspace_root().join(EXCEPTIONS_DOC);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find(&format!("\n{section}\n"))
        .unwrap_or_else(|| panic!("{EXCEPTIONS_DOC} has no section {section:?}"));
    let rest = &text[start + section.len() + 2..];
    let table = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut listed = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let resource_type = super::ticked(cells[1]).pop().unwrap();
        for permission in super::ticked(cells[0]) {
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

/// Every type of a template with its handler permissions, in every region used.
fn required(template: &str) -> Vec<(String, BTreeMap<String, BTreeSet<String>>)> {
    let types = resource_types(template);
    regions()
        .into_iter()
        .map(|region| {
            let permissions = handler_permissions(&region, &types);
            (region, permissions)
        })
        .collect()
}

#[test]
fn cloudformation_can_manage_every_resource_with_the_permissions_it_acts_with() {
    for principal in PRINCIPALS {
        let granted = (principal.granted)();
        let cannot_apply = exceptions(principal.section);
        for (region, required) in required(principal.template) {
            assert!(
                required.len() >= 2,
                "{} was read: {:?}",
                principal.template,
                required.keys()
            );
            let missing = unaccounted(&required, &granted, &cannot_apply);
            assert!(
                missing.is_empty(),
                "in {region}, CloudFormation's handlers for templates/{} need permissions {} \
                 does not grant; grant them, or list them under {:?} in {EXCEPTIONS_DOC} with \
                 the reason they cannot apply: {missing:#?}",
                principal.template,
                principal.policy,
                principal.section
            );
        }
    }
}

#[test]
fn every_listed_exception_is_a_handler_permission_that_is_not_granted() {
    for principal in PRINCIPALS {
        let all: BTreeSet<(String, String)> = required(principal.template)
            .into_iter()
            .flat_map(|(_, required)| {
                required
                    .into_iter()
                    .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            })
            .collect();
        let listed = exceptions(principal.section);
        assert!(
            listed.len() > 5 || !principal.has_exceptions,
            "the table was read: {listed:?}"
        );
        let stale: Vec<_> = listed.difference(&all).collect();
        assert!(
            stale.is_empty(),
            "{EXCEPTIONS_DOC} {:?} lists permissions no handler of templates/{} declares: \
             {stale:?}",
            principal.section,
            principal.template
        );
        let granted = (principal.granted)();
        let both: Vec<_> = listed.iter().filter(|(_, p)| granted.contains(p)).collect();
        assert!(
            both.is_empty(),
            "listed as not applying, yet granted by {}: {both:?}",
            principal.policy
        );
    }
}

#[test]
fn the_check_fails_on_a_removed_permission_or_a_new_resource_type() {
    let [execution, administrator, ..] = PRINCIPALS;
    let granted = (execution.granted)();
    let cannot_apply = exceptions(execution.section);
    let (region, required) = required(execution.template).remove(0);
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
    let table: BTreeSet<String> = ["AWS::DynamoDB::Table".to_owned()].into();
    let mut with_table = required;
    with_table.extend(handler_permissions(&region, &table));
    let missing = unaccounted(&with_table, &granted, &cannot_apply);
    assert!(
        missing
            .iter()
            .any(|(t, p)| t == "AWS::DynamoDB::Table" && p == "dynamodb:CreateTable"),
        "{missing:?}"
    );
    // The administrator's policy, likewise: without s3:PutBucketPolicy the bucket's TLS-only
    // policy cannot be made.
    let granted = (administrator.granted)();
    let cannot_apply = exceptions(administrator.section);
    let (_, bootstrap) = self::required(administrator.template).remove(0);
    let mut without = granted;
    assert!(without.remove("s3:PutBucketPolicy"));
    let missing = unaccounted(&bootstrap, &without, &cannot_apply);
    assert!(
        missing
            .iter()
            .any(|(t, p)| t == "AWS::S3::BucketPolicy" && p == "s3:PutBucketPolicy"),
        "{missing:?}"
    );
}

#[test]
fn actions_parliament_does_not_know_are_declared_by_aws_schemas() {
    let declared: BTreeSet<String> = PRINCIPALS
        .iter()
        .flat_map(|p| required(p.template))
        .flat_map(|(_, required)| required.into_values().flatten())
        .collect();
    for action in crate::build::lint::NEWER_THAN_PARLIAMENT {
        assert!(
            declared.contains(*action),
            "{action} is in no handler's permissions"
        );
    }
}

#[test]
fn the_name_limits_checked_before_deploy_are_aws_own() {
    let dir = schemas();
    let provider = read_json(&dir.join("providers").join("eu-west-1.json"));
    let schema = |t: &str| {
        read_json(
            &dir.join("resources")
                .join(format!("{}.json", provider[t].as_str().unwrap())),
        )
    };
    assert_eq!(
        schema("AWS::Scheduler::Schedule")["properties"]["Name"]["maxLength"],
        crate::config::schedules::MAX_SCHEDULE_NAME_CHARS
    );
    assert_eq!(
        schema("AWS::Events::Rule")["properties"]["Name"]["maxLength"],
        crate::config::MAX_RULE_NAME_CHARS
    );
    // recycle_bin.retention_days is refused outside what the rule takes.
    let period = &schema("AWS::Rbin::Rule")["definitions"]["RetentionPeriod"]["properties"];
    assert_eq!(
        (
            period["RetentionPeriodValue"]["minimum"].as_u64(),
            period["RetentionPeriodValue"]["maximum"].as_u64()
        ),
        (
            Some(u64::from(*crate::config::RECYCLE_BIN_DAYS.start())),
            Some(u64::from(*crate::config::RECYCLE_BIN_DAYS.end()))
        )
    );
    // A locked rule's unlock delay (recycle_bin.region_wide.unlock_delay_days).
    let delay = &schema("AWS::Rbin::Rule")["definitions"]["UnlockDelay"]["properties"];
    assert_eq!(
        (
            delay["UnlockDelayValue"]["minimum"].as_u64(),
            delay["UnlockDelayValue"]["maximum"].as_u64()
        ),
        (
            Some(u64::from(*crate::config::UNLOCK_DELAY_DAYS.start())),
            Some(u64::from(*crate::config::UNLOCK_DELAY_DAYS.end()))
        )
    );
    // SQS's schema states no length; CreateQueue's documentation in the service model does.
    let documentation = model_documentation("sqs", "CreateQueueRequest", "QueueName");
    assert!(
        documentation.contains(&format!(
            "up to {} characters",
            crate::config::schedules::MAX_QUEUE_NAME_CHARS
        )),
        "{documentation}"
    );
    // And the template names them as the check assumes.
    let body = crate::stack::template::read_template("smartvault.yaml").unwrap();
    assert!(body.contains(&format!(
        "- ${{DeploymentName}}{}${{Unique}}\n        - Unique: !Select [0, !Split [\"-\", \
         !Select [2, !Split [\"/\", !Ref AWS::StackId]]]]",
        crate::config::schedules::DEAD_LETTER_QUEUE_SUFFIX
    )));
    assert_eq!(
        "5e8e2d50-c4a7-11ee-a7b2-0e8a7a8f1f3b"
            .split('-')
            .next()
            .map(str::len),
        Some(crate::config::schedules::DEAD_LETTER_QUEUE_UNIQUE),
        "the first group of a stack id's UUID"
    );
    assert!(body.contains("Name: !Sub ${DeploymentName}-${Schedule1Name}"));
}

/// Read-handler permissions drift detection does not need from the deployer, and why.
const NOT_FOR_DRIFT: &[(&str, &str)] = &[
    (
        "iam:PassRole",
        "the events rule's read handler asks for it for targets with a role; the rule's only \
         target is the function, with no role",
    ),
    (
        "kms:Decrypt",
        "the function's read handler asks for it for variables encrypted with a customer \
         managed key; SmartVault's use Lambda's AWS managed key",
    ),
];

/// `cargo xtask drift` runs DetectStackDrift with the deployer's credentials, and CloudFormation
/// reads each resource with the caller's permissions: the deployer policy grants every read
/// handler's permission of every resource type the main template declares, in every region an
/// example environment uses, or says above why one does not apply.
#[test]
fn drift_detection_can_read_every_resource_of_the_stack_with_the_deployer_policy() {
    let granted = crate::checks::policies::allowed_actions("deployer-policy.json");
    let types = resource_types("smartvault.yaml");
    let dir = schemas();
    let mut missing = BTreeSet::new();
    for region in regions() {
        let provider = read_json(&dir.join("providers").join(format!("{region}.json")));
        for t in &types {
            let file = provider[t].as_str().unwrap();
            let schema = read_json(&dir.join("resources").join(format!("{file}.json")));
            for permission in schema["handlers"]["read"]["permissions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p.as_str().unwrap())
            {
                if !granted.contains(permission)
                    && !NOT_FOR_DRIFT
                        .iter()
                        .any(|(action, _)| *action == permission)
                {
                    missing.insert(format!("{permission} (read handler of {t} in {region})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/deployer-policy.json lacks what drift detection reads: {missing:?}"
    );
    for action in [
        "cloudformation:DetectStackDrift",
        "cloudformation:DescribeStackDriftDetectionStatus",
        "cloudformation:DescribeStackResourceDrifts",
    ] {
        assert!(granted.contains(action), "{action}");
    }
}

/// The documentation of one member of a shape in botocore's model of `service`.
fn model_documentation(service: &str, shape: &str, member: &str) -> String {
    let site_packages = schemas().ancestors().nth(3).unwrap().to_owned();
    let models = site_packages.join("botocore/data").join(service);
    let version = std::fs::read_dir(&models)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .max()
        .unwrap();
    let python = crate::paths::tools().join("venv/bin/python");
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import gzip, json, sys; m = json.load(gzip.open(sys.argv[1])); \
             print(m['shapes'][sys.argv[2]]['members'][sys.argv[3]]['documentation'])",
        ])
        .arg(version.join("service-2.json.gz"))
        .args([shape, member])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_overdue_alarms_look_back_no_further_than_cloudwatch_allows() {
    // PutMetricAlarm's documentation of `Period` in CloudWatch's service model.
    let documentation = model_documentation("cloudwatch", "PutMetricAlarmInput", "Period")
        .replace("<code>", "")
        .replace("</code>", "");
    let seconds = crate::config::schedules::MAX_ALARM_WINDOW_HOURS * 3600;
    assert_eq!(seconds, 604_800);
    assert!(
        documentation
            .contains("Period multiplied by EvaluationPeriods can't be more than 604,800 seconds")
            && documentation.contains("For alarms with a period of less than one hour"),
        "{documentation}"
    );
    // The alarms' period is one hour, so the seven days apply, not the one day of shorter ones.
    let body = crate::stack::template::read_template("smartvault.yaml").unwrap();
    let template: serde_norway::Value = serde_norway::from_str(&body).unwrap();
    for n in 1..=4 {
        let alarm = &template["Resources"][format!("Schedule{n}OverdueAlarm").as_str()];
        assert_eq!(alarm["Properties"]["Period"].as_u64(), Some(3600));
    }
    assert_eq!(
        template["Parameters"]["OverdueAlarmHours"]["MaxValue"].as_u64(),
        Some(u64::from(crate::config::schedules::MAX_ALARM_WINDOW_HOURS))
    );
}

#[test]
fn the_regions_a_copy_may_go_to_are_those_aws_publishes() {
    // The SDK's endpoint data, as botocore ships it beside cfn-lint.
    let site_packages = schemas().ancestors().nth(3).unwrap().to_owned();
    let endpoints = read_json(&site_packages.join("botocore/data/endpoints.json"));
    let published: Vec<(String, Vec<String>)> = endpoints["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut regions: Vec<String> =
                p["regions"].as_object().unwrap().keys().cloned().collect();
            regions.sort();
            (p["partition"].as_str().unwrap().to_owned(), regions)
        })
        .collect();
    let ours: Vec<(String, Vec<String>)> = crate::config::regions::PARTITIONS
        .iter()
        .map(|(partition, regions)| {
            let mut regions: Vec<String> = regions.iter().map(|r| (*r).to_owned()).collect();
            regions.sort();
            ((*partition).to_owned(), regions)
        })
        .collect();
    let sorted = |mut list: Vec<(String, Vec<String>)>| {
        list.sort();
        list
    };
    assert_eq!(sorted(ours), sorted(published));
}

/// `targets.max_concurrent_accounts` is refused above `failure_tolerance + 1`: the rule
/// CloudFormation documents for `StackSetOperationPreferences` in its service model (strict
/// failure tolerance, the default SmartVault sends).
#[test]
fn the_rollout_limit_is_cloudformations_own() {
    let documented = model_documentation(
        "cloudformation",
        "StackSetOperationPreferences",
        "MaxConcurrentCount",
    );
    assert!(
        documented.contains("is at most one more than the <code>FailureToleranceCount</code>"),
        "{documented}"
    );
    let with = |max: u32, tolerance: u32| {
        crate::config::targets::example(&format!(
            "accounts: ['111111111111']\nregions: [us-east-1]\n\
             max_concurrent_accounts: {max}\nfailure_tolerance: {tolerance}"
        ))
    };
    assert!(with(5, 4).is_ok());
    assert!(with(6, 4).is_err());
}

/// The deployer manages a stack set with the same API CloudFormation's own
/// `AWS::CloudFormation::StackSet` handlers call: every permission those handlers declare is
/// granted by docs/deployer-policy.json, except the three below, which deploy never needs.
#[test]
fn the_deployer_can_manage_a_stack_set_as_cloudformations_handlers_do() {
    let not_needed: BTreeMap<&str, &str> = BTreeMap::from([
        (
            "cloudformation:GetTemplateSummary",
            "deploy renders and checks the template's parameters itself (template::check_parameters)",
        ),
        (
            "cloudformation:UpdateStackInstances",
            "deploy sends no per-instance parameter overrides: every instance gets the stack set's parameters",
        ),
        (
            "cloudformation:DescribeStackInstance",
            "status lists every instance at once (ListStackInstances)",
        ),
    ]);
    let granted = deployer_policy_actions();
    let types: BTreeSet<String> = ["AWS::CloudFormation::StackSet".to_owned()].into();
    for region in regions() {
        let required = handler_permissions(&region, &types);
        let permissions = &required["AWS::CloudFormation::StackSet"];
        assert!(permissions.contains("cloudformation:CreateStackInstances"));
        let missing: Vec<&String> = permissions
            .iter()
            .filter(|p| !granted.contains(*p) && !not_needed.contains_key(p.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "in {region}, the stack set's handlers need {missing:?}, which \
             docs/deployer-policy.json does not grant"
        );
        for permission in not_needed.keys() {
            assert!(
                permissions.contains(*permission) && !granted.contains(*permission),
                "{permission} is listed as not needed: a handler permission the deployer lacks"
            );
        }
    }
    // The deployer's own calls are granted too (the AWS-call scan, policy_checks).
    for call in [
        "cloudformation:CreateStackSet",
        "cloudformation:UpdateStackSet",
        "cloudformation:DeleteStackSet",
        "cloudformation:DeleteStackInstances",
        "cloudformation:ListStackInstances",
    ] {
        assert!(granted.contains(call), "{call}");
    }
}

/// A resource type's schema, as cfn-lint ships it for `region`.
fn resource_schema(region: &str, resource_type: &str) -> serde_json::Value {
    let dir = schemas();
    let provider = read_json(&dir.join("providers").join(format!("{region}.json")));
    let file = provider[resource_type].as_str().unwrap();
    read_json(&dir.join("resources").join(format!("{file}.json")))
}

/// Whether each text fully matches `pattern`, by Python's `re` (the schemas' patterns are
/// Python-compatible regular expressions).
fn full_matches(pattern: &str, texts: &[&str]) -> Vec<bool> {
    let python = crate::paths::tools().join("venv/bin/python");
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import re, sys; p = re.compile(sys.argv[1]); \
             print(' '.join(str(bool(p.fullmatch(t))) for t in sys.argv[2:]))",
            pattern,
        ])
        .args(texts)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(|w| w == "True")
        .collect()
}

/// `targets:` accepts exactly the account and organizational-unit ids AWS::CloudFormation::
/// StackSet's schema allows, and the artifact buckets' names fit AWS::S3::Bucket's.
#[test]
fn targets_follow_the_stack_set_and_bucket_schemas() {
    let stack_set = resource_schema("us-east-1", "AWS::CloudFormation::StackSet");
    let definitions = &stack_set["definitions"];
    let units = [
        "ou-ab12-cdef3456",
        "r-ab12",
        "ou-ab1-cdef3456",
        "ou-ab12-cdef345",
        "ou-AB12-cdef3456",
        "r-ab1",
        "ou-ab12",
        "ou-abcdefghijklmnopqrstuvwxyz0123456-cdef3456",
        "r-abcdefghijklmnopqrstuvwxyz012345",
    ];
    assert_eq!(
        full_matches(
            definitions["OrganizationalUnitId"]["pattern"]
                .as_str()
                .unwrap(),
            &units
        ),
        units
            .iter()
            .map(|u| crate::config::targets::is_unit(u))
            .collect::<Vec<_>>(),
        "{units:?}"
    );
    let accounts = [
        "111111111111",
        "11111111111",
        "1111111111111",
        "11111111111a",
    ];
    assert_eq!(
        full_matches(
            definitions["Account"]["pattern"].as_str().unwrap(),
            &accounts
        ),
        accounts
            .iter()
            .map(|a| crate::config::targets::is_account(a))
            .collect::<Vec<_>>()
    );
    let bucket = &resource_schema("us-east-1", "AWS::S3::Bucket")["properties"]["BucketName"];
    assert_eq!(
        bucket["maxLength"].as_u64(),
        Some(crate::config::targets::MAX_BUCKET_CHARS as u64)
    );
    // The longest stack name the check admits, in the longest region AWS publishes.
    let longest_region = crate::config::regions::PARTITIONS
        .iter()
        .flat_map(|(_, regions)| regions.iter())
        .max_by_key(|r| r.len())
        .unwrap();
    let stack = "smartvault-".to_owned() + &"o".repeat(40);
    let fitting =
        (crate::config::targets::MAX_BUCKET_CHARS - 14 - longest_region.len()).min(stack.len());
    let name = format!(
        "{}-{longest_region}",
        crate::config::targets::bucket_prefix(&stack[..fitting], "123456789012")
    );
    assert_eq!(name.len(), crate::config::targets::MAX_BUCKET_CHARS);
    assert_eq!(
        full_matches(
            bucket["pattern"].as_str().unwrap(),
            &[&name, "smartvault-Org-1"]
        ),
        [true, false]
    );
}

/// IAM's own action data (parliament's `iam_definition.json`): each resource type `action`
/// (`service:Name`) is authorized against, and its condition keys.
fn iam_resource_types(action: &str) -> Vec<(String, Vec<String>)> {
    let (prefix, name) = action.split_once(':').unwrap();
    let site_packages = schemas().ancestors().nth(3).unwrap().to_owned();
    let definition = read_json(&site_packages.join("parliament/iam_definition.json"));
    let service = definition
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["prefix"] == prefix)
        .unwrap_or_else(|| panic!("no service {prefix} in IAM's definitions"));
    let privilege = service["privileges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["privilege"] == name)
        .unwrap_or_else(|| panic!("no action {action} in IAM's definitions"));
    privilege["resource_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resource_type"].as_str().unwrap().to_owned(),
                r["condition_keys"]
                    .as_array()
                    .map(|keys| {
                        keys.iter()
                            .map(|k| k.as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Consistent sets (issue 32): the function sends only the configured documents (the stack's
/// Linux document, the user's, AWS's VSS document), only to instances carrying the backup tag,
/// and reads only what IAM cannot narrow; IAM's own action data says those are the resources
/// and condition keys each action is authorized by, and the bootstrap boundary covers them.
/// The Linux document's name fits AWS::SSM::Document's schema for the longest stack name.
#[test]
fn consistent_sets_send_only_the_configured_documents_to_backed_up_instances() {
    let documents = [
        "arn:aws:ssm:eu-west-1:123456789012:document/smartvault-prod-linux-freeze".to_owned(),
        "arn:aws:ssm:eu-west-1::document/AWSEC2-CreateVssSnapshot".to_owned(),
    ];
    let policy = crate::stack::template::consistency_policy(
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
            ("BackupTagKey", "Backup"),
            ("BackupTagValue", "true"),
        ],
        &documents,
    )
    .unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 3);
    assert_eq!(statements[0]["Action"], "ssm:SendCommand");
    assert_eq!(statements[0]["Resource"], serde_json::json!(documents));
    assert_eq!(statements[1]["Action"], "ssm:SendCommand");
    assert_eq!(
        statements[1]["Resource"],
        "arn:aws:ec2:eu-west-1:123456789012:instance/*"
    );
    assert_eq!(
        statements[1]["Condition"]["StringEquals"]["ssm:resourceTag/Backup"],
        "true"
    );
    assert_eq!(
        statements[2]["Action"],
        serde_json::json!([
            "ssm:DescribeInstanceInformation",
            "ssm:ListCommandInvocations"
        ])
    );
    assert_eq!(statements[2]["Resource"], "*");
    // IAM authorizes SendCommand against the document and each instance, with the instance's
    // tags as ssm:resourceTag; the two reads against "*" only (no resource type).
    let send = iam_resource_types("ssm:SendCommand");
    for needed in ["document*", "instance"] {
        assert!(send.iter().any(|(t, _)| t == needed), "{send:?}");
    }
    assert!(
        send.iter()
            .any(|(_, keys)| keys.iter().any(|k| k == "ssm:resourceTag/${TagKey}")),
        "{send:?}"
    );
    for read in [
        "ssm:DescribeInstanceInformation",
        "ssm:ListCommandInvocations",
    ] {
        let types = iam_resource_types(read);
        assert!(
            types.iter().all(|(t, _)| t.is_empty()),
            "{read} has resource types {types:?}: scope it"
        );
    }
    // The stack's document and its policy are there only when a schedule needs them.
    let template: serde_norway::Value =
        serde_norway::from_str(&crate::stack::template::read_template("smartvault.yaml").unwrap())
            .unwrap();
    let resources = &template["Resources"];
    assert_eq!(
        resources["ConsistencyPolicy"]["Condition"].as_str(),
        Some("HasConsistency")
    );
    assert_eq!(
        resources["FreezeDocument"]["Condition"].as_str(),
        Some("HasFreezeDocument")
    );
    // The boundary allows every action of the policy on those resources.
    let bootstrap: serde_norway::Value =
        serde_norway::from_str(&crate::stack::template::read_template("bootstrap.yaml").unwrap())
            .unwrap();
    let boundary = crate::stack::template::long_form(
        &bootstrap["Resources"]["FunctionBoundary"]["Properties"]["PolicyDocument"],
    );
    let boundary = crate::stack::template::resolve(
        &boundary,
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
        ],
    );
    let allows = |action: &str, resource: &str| boundary_allows(&boundary, action, resource);
    for statement in statements {
        let actions: Vec<&str> = match &statement["Action"] {
            serde_json::Value::Array(items) => items.iter().filter_map(|i| i.as_str()).collect(),
            one => one.as_str().into_iter().collect(),
        };
        let resources: Vec<&str> = match &statement["Resource"] {
            serde_json::Value::Array(items) => items.iter().filter_map(|i| i.as_str()).collect(),
            one => one.as_str().into_iter().collect(),
        };
        for action in &actions {
            for resource in &resources {
                assert!(
                    allows(action, resource),
                    "the boundary does not allow {action} on {resource}"
                );
            }
        }
    }
    // The Linux document's name, for the longest stack name deploy accepts, fits the schema.
    let schema = resource_schema("us-east-1", "AWS::SSM::Document");
    let pattern = schema["properties"]["Name"]["pattern"].as_str().unwrap();
    let longest = format!(
        "smartvault-{}",
        "a".repeat(
            crate::config::schedules::MAX_QUEUE_NAME_CHARS
                - crate::config::schedules::DEAD_LETTER_QUEUE_SUFFIX.len()
                - crate::config::schedules::DEAD_LETTER_QUEUE_UNIQUE
                - "smartvault-".len()
        )
    );
    let names = [
        crate::config::schedules::freeze_document_name(&longest),
        crate::config::schedules::freeze_document_name("smartvault-prod"),
    ];
    assert_eq!(
        full_matches(pattern, &[names[0].as_str(), names[1].as_str()]),
        [true, true],
        "{names:?} against {pattern}"
    );
    assert_eq!(
        resources["FreezeDocument"]["Properties"]["Name"],
        serde_norway::Value::Tagged(Box::new(serde_norway::value::TaggedValue {
            tag: serde_norway::value::Tag::new("Sub"),
            value: format!(
                "${{DeploymentName}}{}",
                crate::config::schedules::freeze_document_name("")
            )
            .into(),
        }))
    );
    // A document given by name is this region's document (any account when the environment
    // has no account_id); one given by ARN is as given; VSS is AWS's.
    use crate::config::schedules::consistency_documents;
    let schedule = |rule: function::consistency::Rule| crate::config::schedules::Schedule {
        archive_after_days: None,
        fast_restore: None,
        name: "daily".into(),
        expression: "rate(1 day)".into(),
        timezone: "UTC".into(),
        retention_days: 7,
        keep_last: 1,
        flexible_window_minutes: None,
        lock: None,
        consistency: Some(rule),
    };
    let named = |document: &str| function::consistency::Rule {
        document: Some(document.into()),
        ..function::consistency::Rule::new(function::consistency::Mode::Script)
    };
    let arn = "arn:aws:ssm:us-east-1:210987654321:document/shared-freeze";
    let schedules = [
        schedule(named("db-freeze")),
        schedule(named(arn)),
        schedule(function::consistency::Rule::new(
            function::consistency::Mode::Vss,
        )),
        schedule(function::consistency::Rule::new(
            function::consistency::Mode::Script,
        )),
    ];
    assert_eq!(
        consistency_documents(&schedules, "cn-north-1", Some("123456789012")),
        [
            "arn:aws-cn:ssm:cn-north-1:123456789012:document/db-freeze",
            arn,
            "arn:aws-cn:ssm:cn-north-1::document/AWSEC2-CreateVssSnapshot",
        ]
    );
    assert_eq!(
        consistency_documents(&schedules[..1], "eu-west-1", None),
        ["arn:aws:ssm:eu-west-1:*:document/db-freeze"]
    );
    assert!(crate::config::schedules::ships_freeze_document(&schedules));
    assert!(!crate::config::schedules::ships_freeze_document(
        &schedules[..3]
    ));
}

/// Whether the bootstrap boundary `boundary` (resolved) allows `action` on `resource`.
fn boundary_allows(boundary: &serde_json::Value, action: &str, resource: &str) -> bool {
    boundary["Statement"].as_array().unwrap().iter().any(|s| {
        let listed = |v: &serde_json::Value| match v {
            serde_json::Value::Array(items) => items.iter().any(|i| i == action),
            one => one == action,
        };
        // IAM's wildcard: `*` matches any run of characters.
        let covers = |pattern: &str| {
            let mut parts = pattern.split('*');
            let first = parts.next().unwrap_or_default();
            let Some(mut rest) = resource.strip_prefix(first) else {
                return false;
            };
            let parts: Vec<&str> = parts.collect();
            for (i, part) in parts.iter().enumerate() {
                if i + 1 == parts.len() {
                    return rest.ends_with(part);
                }
                match rest.find(part) {
                    Some(at) => rest = &rest[at + part.len()..],
                    None => return false,
                }
            }
            rest.is_empty()
        };
        let resources = match &s["Resource"] {
            serde_json::Value::Array(items) => {
                items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>()
            }
            one => one.as_str().into_iter().collect(),
        };
        s["Effect"] == "Allow" && listed(&s["Action"]) && resources.into_iter().any(covers)
    })
}

/// The bootstrap boundary, resolved for eu-west-1.
fn resolved_boundary() -> serde_json::Value {
    let bootstrap: serde_norway::Value =
        serde_norway::from_str(&crate::stack::template::read_template("bootstrap.yaml").unwrap())
            .unwrap();
    let boundary = crate::stack::template::long_form(
        &bootstrap["Resources"]["FunctionBoundary"]["Properties"]["PolicyDocument"],
    );
    crate::stack::template::resolve(
        &boundary,
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
        ],
    )
}

#[test]
fn the_archive_tier_and_fast_restore_act_only_on_own_snapshots_and_the_boundary_allows_them() {
    let template: serde_norway::Value =
        serde_norway::from_str(&crate::stack::template::read_template("smartvault.yaml").unwrap())
            .unwrap();
    let policy = crate::stack::template::long_form(
        &template["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"],
    );
    let policy = crate::stack::template::resolve(
        &policy,
        &[
            ("AWS::Partition", "aws"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
            ("DeploymentName", "smartvault-prod"),
        ],
    );
    let statement = |sid: &str| {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
            .clone()
    };
    let tier = statement("TierOwnSnapshots");
    let writes = [
        "ec2:ModifySnapshotTier",
        "ec2:EnableFastSnapshotRestores",
        "ec2:DisableFastSnapshotRestores",
    ];
    assert_eq!(tier["Action"], serde_json::json!(writes));
    assert_eq!(tier["Resource"], "arn:aws:ec2:eu-west-1::snapshot/*");
    assert_eq!(
        tier["Condition"]["StringEquals"]["aws:ResourceTag/smartvault:managed-by"],
        "smartvault-prod"
    );
    // IAM authorizes each against the snapshot, with its tags as aws:ResourceTag: the
    // condition limits them to this deployment's snapshots.
    for action in writes {
        let types = iam_resource_types(action);
        let snapshot = types
            .iter()
            .find(|(t, _)| t == "snapshot*")
            .unwrap_or_else(|| panic!("{action}: {types:?}"));
        assert!(
            snapshot.1.iter().any(|k| k == "aws:ResourceTag/${TagKey}"),
            "{action}: {types:?}"
        );
        assert!(
            boundary_allows(
                &resolved_boundary(),
                action,
                "arn:aws:ec2:eu-west-1::snapshot/*"
            ),
            "{action}"
        );
    }
    // The tags it records are the two the archive tier writes, on own snapshots.
    let record = statement("RecordTiers");
    assert_eq!(record["Action"], "ec2:CreateTags");
    assert_eq!(
        record["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
        serde_json::json!([function::tags::ARCHIVED_AT, function::tags::TIER_RESTORE])
    );
    // The read has no resource type: "*" is all IAM takes.
    let read = "ec2:DescribeFastSnapshotRestores";
    assert!(iam_resource_types(read).iter().all(|(t, _)| t.is_empty()));
    assert!(
        statement("ReadInventory")["Action"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == read)
    );
    assert!(boundary_allows(&resolved_boundary(), read, "*"));
    // RestoreSnapshotTier is the operator's (restore), never the function's or the boundary's.
    let text = serde_json::to_string(&policy).unwrap();
    assert!(!text.contains("RestoreSnapshotTier"), "{text}");
    assert!(
        !serde_json::to_string(&resolved_boundary())
            .unwrap()
            .contains("RestoreSnapshotTier")
    );
}
