//! Checks on the templates for what the emulator ignores: IAM conditions, the log group, the
//! alarm, the subscriptions, the asynchronous-invoke settings and the function's variables.

use crate::stack::template::{long_form, read_template};
use serde_norway::Value;
use std::collections::BTreeSet;

fn main_template() -> Value {
    serde_norway::from_str(&read_template("smartvault.yaml").unwrap()).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    let resource = &template["Resources"][name];
    assert!(!resource.is_null(), "resource {name} is missing");
    resource
}

/// A value with CloudFormation's short-form tags spelled out, for easy comparison.
fn show(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, show(&tagged.value)),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        other => serde_norway::to_string(other).unwrap().trim().to_owned(),
    }
}

fn statement<'a>(template: &'a Value, sid: &str) -> &'a Value {
    let statements =
        resource(template, "Role")["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap();
    statements
        .iter()
        .find(|s| s["Sid"].as_str() == Some(sid))
        .unwrap_or_else(|| panic!("no statement {sid}"))
}

fn actions(statement: &Value) -> BTreeSet<String> {
    match &statement["Action"] {
        Value::Sequence(items) => items.iter().map(show).collect(),
        single => BTreeSet::from([show(single)]),
    }
}

#[test]
fn the_role_grants_only_what_the_function_does() {
    let t = main_template();
    let all: BTreeSet<String> = [
        "ReadInventory",
        "CreateSnapshots",
        "TagOnlyAtCreation",
        "CopyVolumeTagsToOwnSnapshots",
        "LockOwnSnapshots",
        "DeleteOwnSnapshots",
        "TierOwnSnapshots",
        "RecordTiers",
        "PublishSummary",
        "MarkRunInProgress",
        "ContinueRun",
        "WriteOwnLogs",
    ]
    .iter()
    .flat_map(|sid| actions(statement(&t, sid)))
    .collect();
    let expected: BTreeSet<String> = [
        "ec2:DescribeInstances",
        "ec2:DescribeVolumes",
        "ec2:DescribeSnapshots",
        "ec2:DescribeLockedSnapshots",
        "ec2:DescribeFastSnapshotRestores",
        "ec2:CreateSnapshots",
        "ec2:CreateTags",
        "ec2:LockSnapshot",
        "ec2:DeleteSnapshot",
        "ec2:ModifySnapshotTier",
        "ec2:EnableFastSnapshotRestores",
        "ec2:DisableFastSnapshotRestores",
        "sns:Publish",
        "sns:ListTagsForResource",
        "sns:TagResource",
        "sns:UntagResource",
        "lambda:InvokeFunction",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(all, expected);
    let statements =
        resource(&t, "Role")["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap();
    assert_eq!(
        statements.len(),
        12,
        "no statement beyond the twelve explained in docs/iam-policy.md"
    );
    assert_eq!(
        show(
            &statement(&t, "LockOwnSnapshots")["Condition"]["StringEquals"]["aws:ResourceTag/smartvault:managed-by"]
        ),
        "!Ref DeploymentName",
        "the function locks only this deployment's snapshots"
    );
    assert_eq!(
        show(&statement(&t, "MarkRunInProgress")["Resource"]),
        "!Ref Topic",
        "the run mark is written on this stack's topic only"
    );
    assert!(
        show(&statement(&t, "ContinueRun")["Resource"]).ends_with(":function:${DeploymentName}"),
        "the function may invoke itself and nothing else"
    );
    assert!(
        !all.contains("logs:CreateLogGroup"),
        "the stack owns the log group"
    );
}

#[test]
fn tagging_is_allowed_only_while_creating_snapshots() {
    let t = main_template();
    let tag = statement(&t, "TagOnlyAtCreation");
    assert_eq!(
        show(&tag["Condition"]["StringEquals"]["ec2:CreateAction"]),
        "CreateSnapshots"
    );
    assert!(show(&tag["Resource"]).ends_with("::snapshot/*"));
    // After creation, only this deployment's snapshots, and never SmartVault's own keys.
    let copy = statement(&t, "CopyVolumeTagsToOwnSnapshots");
    assert_eq!(
        show(
            &copy["Condition"]["StringEquals"]
                [&format!("aws:ResourceTag/{}", function::tags::MANAGED_BY)]
        ),
        "!Ref DeploymentName"
    );
    assert_eq!(
        show(&copy["Condition"]["ForAllValues:StringNotLike"]["aws:TagKeys"]),
        format!("{}*", function::tags::SMARTVAULT_PREFIX)
    );
    assert!(show(&copy["Resource"]).ends_with("::snapshot/*"));
}

#[test]
fn deletion_is_allowed_only_on_this_deployments_snapshots() {
    let t = main_template();
    let delete = statement(&t, "DeleteOwnSnapshots");
    assert_eq!(
        show(
            &delete["Condition"]["StringEquals"]
                [&format!("aws:ResourceTag/{}", function::tags::MANAGED_BY)]
        ),
        "!Ref DeploymentName"
    );
    assert!(show(&delete["Resource"]).ends_with("::snapshot/*"));
}

#[test]
fn publishing_and_logging_are_scoped_to_this_stacks_resources() {
    let t = main_template();
    assert_eq!(
        show(&statement(&t, "PublishSummary")["Resource"]),
        "!Ref Topic"
    );
    assert_eq!(
        show(&statement(&t, "WriteOwnLogs")["Resource"]),
        "!Sub arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${DeploymentName}:*"
    );
    let create = statement(&t, "CreateSnapshots");
    let resources = show(&create["Resource"]);
    for kind in ["instance/*", "volume/*", "snapshot/*"] {
        assert!(resources.contains(kind), "{resources}");
    }
}

#[test]
fn the_stack_owns_the_functions_log_group_with_retention() {
    let t = main_template();
    let group = &resource(&t, "LogGroup")["Properties"];
    assert_eq!(
        show(&group["LogGroupName"]),
        "!Sub /aws/lambda/${DeploymentName}"
    );
    assert_eq!(show(&group["RetentionInDays"]), "!Ref LogRetentionDays");
    let function = &resource(&t, "Function")["Properties"];
    assert_eq!(show(&function["FunctionName"]), "!Ref DeploymentName");
    assert_eq!(
        show(&function["LoggingConfig"]["LogGroup"]),
        "!Ref LogGroup"
    );
    assert_eq!(show(&function["LoggingConfig"]["LogFormat"]), "JSON");
}

#[test]
fn the_function_runs_bootstrap_on_provided_al2023() {
    let t = main_template();
    let function = &resource(&t, "Function")["Properties"];
    assert_eq!(show(&function["Runtime"]), "provided.al2023");
    assert_eq!(show(&function["Handler"]), "bootstrap");
    assert_eq!(show(&function["Architectures"]), "[!Ref Architecture]");
}

#[test]
fn the_functions_variables_are_exactly_the_ones_it_reads_and_all_strings() {
    let t = main_template();
    let variables = resource(&t, "Function")["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    let names: BTreeSet<&str> = variables.keys().map(|k| k.as_str().unwrap()).collect();
    let read: BTreeSet<&str> = function::config::VARIABLES.iter().copied().collect();
    assert_eq!(
        names, read,
        "the template and function/src/config/mod.rs drifted apart"
    );
    // Lambda variables are text: each comes from a String parameter or a resource by !Ref.
    // (A Number parameter by !Ref reaches Lambda as a JSON number on some implementations.)
    let parameters = t["Parameters"].as_mapping().unwrap();
    for (name, value) in variables {
        let shown = show(value);
        // The document's name when the stack ships it (a Ref to a document is its name).
        if name.as_str() == Some(function::config::FREEZE_DOCUMENT) {
            assert_eq!(shown, "!If [HasFreezeDocument, !Ref FreezeDocument, ]");
            continue;
        }
        let referenced = shown
            .strip_prefix("!Ref ")
            .unwrap_or_else(|| panic!("{name:?} is {shown}"));
        if let Some(parameter) = parameters.get(referenced) {
            assert_eq!(
                parameter["Type"].as_str(),
                Some("String"),
                "{name:?} takes {referenced}"
            );
        } else {
            assert_eq!(referenced, "Topic", "{name:?} references {referenced}");
        }
    }
}

#[test]
fn every_address_gets_an_email_subscription_to_the_topic() {
    let t = main_template();
    for (i, condition) in [(1, None), (2, Some("HasEmail2")), (3, Some("HasEmail3"))] {
        let sub = resource(&t, &format!("Subscription{i}"));
        assert_eq!(sub["Type"].as_str(), Some("AWS::SNS::Subscription"));
        assert_eq!(show(&sub["Properties"]["Protocol"]), "email");
        assert_eq!(show(&sub["Properties"]["TopicArn"]), "!Ref Topic");
        assert_eq!(
            show(&sub["Properties"]["Endpoint"]),
            format!("!Ref NotificationEmail{i}")
        );
        assert_eq!(sub["Condition"].as_str(), condition);
    }
}

#[test]
fn errors_raise_an_alarm_that_notifies_the_topic() {
    let t = main_template();
    let alarm = &resource(&t, "ErrorsAlarm")["Properties"];
    assert_eq!(show(&alarm["Namespace"]), "AWS/Lambda");
    assert_eq!(show(&alarm["MetricName"]), "Errors");
    assert_eq!(show(&alarm["Dimensions"][0]["Value"]), "!Ref Function");
    assert_eq!(
        show(&alarm["ComparisonOperator"]),
        "GreaterThanOrEqualToThreshold"
    );
    assert_eq!(show(&alarm["AlarmActions"]), "[!Ref Topic]");
}

#[test]
fn failed_asynchronous_invocations_reach_the_topic_without_retries() {
    let t = main_template();
    let config = &resource(&t, "InvokeConfig")["Properties"];
    assert_eq!(show(&config["FunctionName"]), "!Ref Function");
    assert_eq!(show(&config["MaximumRetryAttempts"]), "0");
    assert_eq!(
        show(&config["DestinationConfig"]["OnFailure"]["Destination"]),
        "!Ref Topic"
    );
}

#[test]
fn each_schedule_invokes_the_function_in_its_time_zone_once_with_its_name() {
    let t = main_template();
    assert!(
        t["Resources"]["ScheduleRule"].is_null(),
        "the UTC rule is gone"
    );
    assert_eq!(
        show(&resource(&t, "ScheduleGroup")["Properties"]["Name"]),
        "!Ref DeploymentName",
        "the schedules live in a group the stack owns"
    );
    for n in 1..=4 {
        let schedule = resource(&t, &format!("Schedule{n}"));
        // Slot 1 is always there; the others only when named.
        let condition = show(&schedule["Condition"]);
        if n == 1 {
            assert!(schedule["Condition"].is_null(), "{condition}");
        } else {
            assert_eq!(condition, format!("HasSchedule{n}"));
            assert_eq!(
                show(&t["Conditions"][format!("HasSchedule{n}").as_str()]),
                format!("!Not [!Equals [!Ref Schedule{n}Name, ]]")
            );
        }
        let p = &schedule["Properties"];
        assert_eq!(show(&p["GroupName"]), "!Ref ScheduleGroup");
        assert_eq!(
            show(&p["ScheduleExpression"]),
            format!("!Ref Schedule{n}Expression")
        );
        assert_eq!(
            show(&p["ScheduleExpressionTimezone"]),
            format!("!Ref Schedule{n}Timezone")
        );
        assert_eq!(
            show(&p["FlexibleTimeWindow"]["Mode"]),
            format!("!If [Schedule{n}IsFlexible, FLEXIBLE, OFF]")
        );
        let target = &p["Target"];
        assert_eq!(show(&target["Arn"]), "!GetAtt Function.Arn");
        assert_eq!(show(&target["RoleArn"]), "!GetAtt SchedulerRole.Arn");
        assert_eq!(
            show(&target["Input"]),
            format!("!Sub {{\"action\": \"scheduled\", \"schedule\": \"${{Schedule{n}Name}}\"}}")
        );
        assert_eq!(show(&target["RetryPolicy"]["MaximumRetryAttempts"]), "0");
        assert_eq!(
            show(&target["DeadLetterConfig"]["Arn"]),
            "!GetAtt ScheduleDeadLetters.Arn"
        );
    }
    // The dead-letter queue's name is new with every stack: SQS refuses for 60 seconds the
    // name of a queue just deleted (QueueDeletedRecently), which a fixed name meets on the
    // deploy after a rollback or a destroy. The emulator does not enforce it.
    let queue = show(&resource(&t, "ScheduleDeadLetters")["Properties"]["QueueName"]);
    assert!(
        queue.contains("AWS::StackId") && queue.contains("${DeploymentName}-dead-letters-"),
        "the queue name must be unique to the stack: {queue}"
    );
    // The scheduler role: trusted by EventBridge Scheduler of this account only, bounded, and
    // allowed to invoke this function and to leave dead letters, nothing else.
    let role = resource(&t, "SchedulerRole");
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        show(&trust["Principal"]["Service"]),
        "scheduler.amazonaws.com"
    );
    assert_eq!(
        show(&trust["Condition"]["StringEquals"]["aws:SourceAccount"]),
        "!Ref AWS::AccountId"
    );
    assert!(
        show(&role["Properties"]["PermissionsBoundary"])
            .contains("policy/smartvault-bootstrap-function-boundary-")
    );
    let granted: Vec<(String, String)> = statements(role)
        .iter()
        .map(|s| (show(&s["Action"]), show(&s["Resource"])))
        .collect();
    assert_eq!(
        granted,
        [
            (
                "lambda:InvokeFunction".to_owned(),
                "!GetAtt Function.Arn".to_owned()
            ),
            (
                "sqs:SendMessage".to_owned(),
                "!GetAtt ScheduleDeadLetters.Arn".to_owned()
            ),
        ]
    );
    // A missed schedule mails the topic.
    let alarm = &resource(&t, "ScheduleDeadLettersAlarm")["Properties"];
    assert_eq!(show(&alarm["AlarmActions"]), "[!Ref Topic]");
    assert_eq!(
        show(&alarm["MetricName"]),
        "ApproximateNumberOfMessagesVisible"
    );
    let publishers = show(
        &resource(&t, "TopicPolicy")["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]["ArnLike"]
            ["aws:SourceArn"],
    );
    assert!(
        publishers.contains("${DeploymentName}-missed-schedules"),
        "{publishers}"
    );
    // The boundary allows what the scheduler role does.
    let bootstrap = bootstrap_template();
    let bounded: BTreeSet<String> = statements(resource(&bootstrap, "FunctionBoundary"))
        .iter()
        .flat_map(actions)
        .collect();
    assert!(bounded.contains("sqs:SendMessage") && bounded.contains("lambda:InvokeFunction"));
}

#[test]
fn outputs_reference_no_resource_the_emulator_skips() {
    // A !GetAtt on a skipped type makes the emulator fail the whole call; Ref-only outputs
    // of supported types keep every implementation happy.
    let t = main_template();
    let outputs = show(&t["Outputs"]);
    for skipped in ["Subscription", "ErrorsAlarm", "InvokeConfig"] {
        assert!(!outputs.contains(skipped), "{outputs}");
    }
}

#[test]
fn the_artifact_bucket_is_private_versioned_encrypted_and_tls_only() {
    let t: Value = serde_norway::from_str(&read_template("bootstrap.yaml").unwrap()).unwrap();
    let bucket = &t["Resources"]["ArtifactBucket"]["Properties"];
    assert_eq!(
        show(&bucket["VersioningConfiguration"]["Status"]),
        "Enabled"
    );
    assert_eq!(
        show(
            &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
                ["SSEAlgorithm"]
        ),
        "AES256"
    );
    for key in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            show(&bucket["PublicAccessBlockConfiguration"][key]),
            "true",
            "{key}"
        );
    }
    // No rule expires a current artifact by age: a live stack, its rollback or a promotion
    // may need it. Only superseded versions expire.
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .expect("the bucket has lifecycle rules");
    assert!(!rules.is_empty());
    for rule in rules {
        for current in [
            "ExpirationInDays",
            "ExpirationDate",
            "ExpiredObjectDeleteMarker",
        ] {
            assert!(
                rule[current].is_null(),
                "a rule expires current objects: {rule:?}"
            );
        }
        assert!(rule["Transitions"].is_null(), "{rule:?}");
    }
    assert_eq!(
        show(&rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"]),
        "30"
    );
    let policy =
        &t["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(show(&policy["Effect"]), "Deny");
    assert_eq!(
        show(&policy["Condition"]["Bool"]["aws:SecureTransport"]),
        "false"
    );
}

#[test]
fn docs_iam_policy_json_is_the_templates_policy() {
    let t = main_template();
    let in_template =
        long_form(&resource(&t, "Role")["Properties"]["Policies"][0]["PolicyDocument"]);
    let path = crate::paths::workspace_root()
        .join("docs")
        .join("iam-policy.json");
    let in_docs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        in_docs, in_template,
        "docs/iam-policy.json differs from templates/smartvault.yaml's Role policy"
    );
}

fn bootstrap_template() -> Value {
    serde_norway::from_str(&read_template("bootstrap.yaml").unwrap()).unwrap()
}

/// The statements of a resource's policy: the role's one inline policy or a managed policy's.
fn statements(resource: &Value) -> &[Value] {
    let properties = &resource["Properties"];
    let document = if properties["PolicyDocument"].is_null() {
        &properties["Policies"][0]["PolicyDocument"]
    } else {
        &properties["PolicyDocument"]
    };
    document["Statement"].as_sequence().unwrap()
}

fn by_sid<'a>(statements: &'a [Value], sid: &str) -> &'a Value {
    statements
        .iter()
        .find(|s| s["Sid"].as_str() == Some(sid))
        .unwrap_or_else(|| panic!("no statement {sid}"))
}

#[test]
fn the_function_role_is_bounded_by_the_bootstrap_boundary_which_covers_what_it_does() {
    let t = main_template();
    let role = resource(&t, "Role");
    let bootstrap = bootstrap_template();
    let boundary = resource(&bootstrap, "FunctionBoundary");
    // The boundary's name in the bootstrap is the one the function role refers to.
    let name = show(&boundary["Properties"]["ManagedPolicyName"]);
    assert_eq!(
        name,
        "!Sub smartvault-bootstrap-function-boundary-${AWS::Region}"
    );
    // Every role the stack makes carries it, except in a stack set's instance, whose account
    // has no bootstrap stack (the StackSet execution role makes those roles).
    let bounded_by = format!(
        "!If [HasBootstrapBoundary, !Sub arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/{}, !Ref AWS::NoValue]",
        name.trim_start_matches("!Sub ")
    );
    for logical in ["Role", "SchedulerRole"] {
        assert_eq!(
            show(&resource(&t, logical)["Properties"]["PermissionsBoundary"]),
            bounded_by,
            "{logical}"
        );
    }
    assert_eq!(
        show(&t["Conditions"]["HasBootstrapBoundary"]),
        "!Equals [!Ref UseBootstrapBoundary, true]"
    );
    // Whatever the function's policy allows, the boundary allows too, or the function would
    // be refused on AWS (the emulator evaluates no boundary).
    let bounded: BTreeSet<String> = statements(boundary)
        .iter()
        .filter(|s| show(&s["Effect"]) == "Allow")
        .flat_map(actions)
        .collect();
    let copies: Vec<Value> = (1..=3).flat_map(|n| copy_statements(&t, n)).collect();
    let restore_tests = statements(resource(&t, "RestoreTestPolicy"));
    for statement in statements(role).iter().chain(&copies).chain(restore_tests) {
        for action in actions(statement) {
            assert!(
                bounded.contains(&action),
                "{action} of the function's statement {} is outside the boundary",
                show(&statement["Sid"])
            );
        }
    }
}

/// The statements of copy slot `n`'s policy, a statement under `!If` taken as its true case.
fn copy_statements(t: &Value, n: usize) -> Vec<Value> {
    resource(t, &format!("Copy{n}Policy"))["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| match s {
            Value::Tagged(tagged) if tagged.tag == "!If" => tagged.value[1].clone(),
            plain => plain.clone(),
        })
        .collect()
}

#[test]
fn each_schedule_has_a_dead_mans_switch_on_the_age_the_function_reports() {
    let t = main_template();
    assert_eq!(
        show(&t["Conditions"]["HasOverdueAlarms"]),
        "!Not [!Equals [!Ref OverdueAlarmHours, 0]]"
    );
    // What a run emits: one document per schedule under Deployment and Schedule.
    let mut report = function::report::RunReport::new(
        "d",
        false,
        function::model::Job::BackupAndCleanup,
        String::new(),
        time::OffsetDateTime::UNIX_EPOCH,
    );
    report.coverage = Some(function::coverage::Summary {
        oldest_newest_hours: [("daily".to_owned(), 30)].into_iter().collect(),
        ..Default::default()
    });
    let emitted = &report.schedule_metrics(0)[0];
    let emf = &emitted["_aws"]["CloudWatchMetrics"][0];
    for n in 1..=4 {
        let alarm = resource(&t, &format!("Schedule{n}OverdueAlarm"));
        let condition = show(&alarm["Condition"]);
        if n == 1 {
            assert_eq!(condition, "HasOverdueAlarms");
        } else {
            assert_eq!(condition, format!("Schedule{n}HasOverdueAlarm"));
            assert_eq!(
                show(&t["Conditions"][condition.as_str()]),
                format!("!And [!Condition HasSchedule{n}, !Condition HasOverdueAlarms]")
            );
        }
        let a = &alarm["Properties"];
        assert_eq!(show(&a["Namespace"]), emf["Namespace"].as_str().unwrap());
        assert_eq!(
            show(&a["MetricName"]),
            emf["Metrics"][0]["Name"].as_str().unwrap()
        );
        let dimensions: Vec<(String, String)> = a["Dimensions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| (show(&d["Name"]), show(&d["Value"])))
            .collect();
        assert_eq!(
            dimensions,
            [
                ("Deployment".to_owned(), "!Ref DeploymentName".to_owned()),
                ("Schedule".to_owned(), format!("!Ref Schedule{n}Name")),
            ]
        );
        assert_eq!(
            emf["Dimensions"],
            serde_json::json!([["Deployment", "Schedule"]])
        );
        assert_eq!(show(&a["Statistic"]), "Maximum");
        assert_eq!(show(&a["Period"]), "3600");
        assert_eq!(show(&a["EvaluationPeriods"]), "!Ref OverdueAlarmHours");
        assert_eq!(show(&a["DatapointsToAlarm"]), "!Ref OverdueAlarmHours");
        assert_eq!(
            show(&a["Threshold"]),
            format!("!Ref Schedule{n}OverdueHours")
        );
        assert_eq!(show(&a["ComparisonOperator"]), "GreaterThanThreshold");
        assert_eq!(
            show(&a["TreatMissingData"]),
            "breaching",
            "a function that stops reporting is the failure this alarm exists for"
        );
        assert_eq!(show(&a["AlarmActions"]), "[!Ref Topic]");
        assert_eq!(show(&a["OKActions"]), "[!Ref Topic]");
        assert_eq!(
            show(&a["AlarmName"]),
            format!("!Sub ${{DeploymentName}}-overdue-${{Schedule{n}Name}}")
        );
    }
    let publishers = show(
        &resource(&t, "TopicPolicy")["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]["ArnLike"]
            ["aws:SourceArn"],
    );
    assert!(
        publishers.contains(":alarm:${DeploymentName}-overdue-*"),
        "{publishers}"
    );
}

#[test]
fn restore_tests_make_only_tagged_volumes_from_own_snapshots_delete_only_those_and_alarm() {
    let t = main_template();
    assert_eq!(
        show(&t["Conditions"]["HasRestoreTest"]),
        "!Not [!Equals [!Ref RestoreTestExpression, ]]"
    );
    let policy = resource(&t, "RestoreTestPolicy");
    assert_eq!(show(&policy["Type"]), "AWS::IAM::RolePolicy");
    assert_eq!(show(&policy["Condition"]), "HasRestoreTest");
    assert_eq!(show(&policy["Properties"]["RoleName"]), "!Ref Role");
    let all = statements(policy);
    let volume = "!Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*";
    let snapshot = "!Sub arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*";
    let tag = format!("aws:RequestTag/{}", function::restore_test::TAG);
    let granted: Vec<(String, String, String, String)> = all
        .iter()
        .map(|s| {
            assert_eq!(show(&s["Effect"]), "Allow");
            let condition = s["Condition"]["StringEquals"].as_mapping().unwrap();
            assert_eq!(condition.len(), 1, "one condition per statement");
            let (key, value) = condition.iter().next().unwrap();
            (
                show(&s["Action"]),
                show(&s["Resource"]),
                show(key),
                show(value),
            )
        })
        .collect();
    let row = |a: &str, r: &str, k: &str, v: &str| {
        (a.to_owned(), r.to_owned(), k.to_owned(), v.to_owned())
    };
    assert_eq!(
        granted,
        [
            row("ec2:CreateVolume", volume, &tag, "!Ref DeploymentName"),
            row(
                "ec2:CreateVolume",
                snapshot,
                &format!("aws:ResourceTag/{}", function::tags::MANAGED_BY),
                "!Ref DeploymentName"
            ),
            row("ec2:CreateTags", volume, "ec2:CreateAction", "CreateVolume"),
            row(
                "ec2:DeleteVolume",
                volume,
                &format!("aws:ResourceTag/{}", function::restore_test::TAG),
                "!Ref DeploymentName"
            ),
        ]
    );

    // The schedule sends the event the function reads as a restore test, once, in its zone.
    let schedule = resource(&t, "RestoreTestSchedule");
    assert_eq!(show(&schedule["Condition"]), "HasRestoreTest");
    let p = &schedule["Properties"];
    assert_eq!(
        show(&p["Name"]),
        format!(
            "!Sub ${{DeploymentName}}{}",
            crate::config::restore_test::NAME_SUFFIX
        )
    );
    assert_eq!(show(&p["GroupName"]), "!Ref ScheduleGroup");
    assert_eq!(show(&p["ScheduleExpression"]), "!Ref RestoreTestExpression");
    assert_eq!(
        show(&p["ScheduleExpressionTimezone"]),
        "!Ref RestoreTestTimezone"
    );
    let target = &p["Target"];
    assert_eq!(show(&target["Arn"]), "!GetAtt Function.Arn");
    assert_eq!(show(&target["RetryPolicy"]["MaximumRetryAttempts"]), "0");
    assert_eq!(
        show(&target["DeadLetterConfig"]["Arn"]),
        "!GetAtt ScheduleDeadLetters.Arn"
    );
    let input: serde_json::Value = serde_json::from_str(target["Input"].as_str().unwrap()).unwrap();
    let request = function::event::parse(&input.into()).unwrap();
    assert_eq!(request.options.job, function::model::Job::RestoreTest);

    // The alarm watches the metric a failed test emits, under the dimension it carries, and
    // may publish to the topic.
    let alarm = resource(&t, "RestoreTestAlarm");
    assert_eq!(show(&alarm["Condition"]), "HasRestoreTest");
    let a = &alarm["Properties"];
    let mut failed = function::report::RunReport::new(
        "d",
        false,
        function::model::Job::RestoreTest,
        String::new(),
        time::OffsetDateTime::UNIX_EPOCH,
    );
    failed.failed.push(function::report::Failure {
        subject: Some(function::plan::Subject::Instance("i-1".into())),
        operation: "RestoreTest".into(),
        code: "SmartVault.NoCompletedSet".into(),
        message: String::new(),
    });
    let metrics = failed.metrics(0);
    let emf = &metrics["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(show(&a["Namespace"]), emf["Namespace"].as_str().unwrap());
    assert_eq!(show(&a["MetricName"]), "RestoreTestsFailed");
    assert_eq!(
        metrics["RestoreTestsFailed"], 1,
        "a failed test is a datapoint of 1"
    );
    assert_eq!(emf["Dimensions"], serde_json::json!([["Deployment"]]));
    assert_eq!(show(&a["Dimensions"][0]["Name"]), "Deployment");
    assert_eq!(show(&a["Dimensions"][0]["Value"]), "!Ref DeploymentName");
    assert_eq!(show(&a["Threshold"]), "1");
    assert_eq!(
        show(&a["ComparisonOperator"]),
        "GreaterThanOrEqualToThreshold"
    );
    assert_eq!(
        show(&a["TreatMissingData"]),
        "notBreaching",
        "weeks without a test are not failures"
    );
    assert_eq!(show(&a["AlarmActions"]), "[!Ref Topic]");
    let publishers = show(
        &resource(&t, "TopicPolicy")["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]["ArnLike"]
            ["aws:SourceArn"],
    );
    assert!(
        publishers.contains("${DeploymentName}-restore-test-failed"),
        "{publishers}"
    );
    assert_eq!(
        show(&a["AlarmName"]),
        "!Sub ${DeploymentName}-restore-test-failed"
    );
}

#[test]
fn source_keys_are_used_only_through_ec2_and_granted_only_to_aws_resources() {
    let t = main_template();
    let policy = resource(&t, "SourceKeysPolicy");
    assert_eq!(show(&policy["Type"]), "AWS::IAM::RolePolicy");
    assert_eq!(show(&policy["Condition"]), "HasSourceKeys");
    // On the role by reference: the grant follows the role through a replacement, where a key
    // policy naming the role's generated name would go stale.
    assert_eq!(show(&policy["Properties"]["RoleName"]), "!Ref Role");
    let all = statements(policy);
    assert_eq!(all.len(), 2);
    for statement in all {
        assert_eq!(show(&statement["Resource"]), "!Ref SourceKmsKeyArns");
        assert_eq!(
            show(&statement["Condition"]["StringLike"]["kms:ViaService"]),
            "ec2.*.amazonaws.com",
            "only through EC2"
        );
    }
    let use_keys = by_sid(all, "UseSourceKeysThroughEc2");
    assert_eq!(
        actions(use_keys),
        [
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:ReEncrypt*"
        ]
        .iter()
        .map(|a| a.to_string())
        .collect::<BTreeSet<_>>()
    );
    let grant = by_sid(all, "GrantSourceKeysToEc2");
    assert_eq!(
        actions(grant),
        BTreeSet::from(["kms:CreateGrant".to_owned()])
    );
    assert_eq!(
        show(&grant["Condition"]["Bool"]["kms:GrantIsForAWSResource"]),
        "true",
        "grants only for AWS resources (EC2's volumes), never to a person"
    );
    assert_eq!(
        show(&t["Conditions"]["HasSourceKeys"]),
        "!Not [!Equals [!Join [, !Ref SourceKmsKeyArns], ]]"
    );
}

#[test]
fn copies_are_made_tagged_and_deleted_only_in_their_region_and_keys_used_only_through_ec2() {
    let t = main_template();
    for n in 1..=3 {
        let policy = resource(&t, &format!("Copy{n}Policy"));
        assert_eq!(show(&policy["Type"]), "AWS::IAM::RolePolicy");
        assert_eq!(show(&policy["Condition"]), format!("HasCopy{n}"));
        assert_eq!(show(&policy["Properties"]["RoleName"]), "!Ref Role");
        let all = copy_statements(&t, n);
        let sids: Vec<String> = all.iter().map(|s| show(&s["Sid"])).collect();
        assert_eq!(
            sids,
            [
                "CopySnapshots",
                "TagCopiesAtCreation",
                "LockOwnCopies",
                "DeleteOwnCopies",
                "EncryptCopiesThroughEc2"
            ]
        );
        let region = format!("${{Copy{n}Region}}");
        let copy = by_sid(&all, "CopySnapshots");
        assert_eq!(
            actions(copy),
            BTreeSet::from(["ec2:CopySnapshot".to_owned()])
        );
        assert_eq!(
            show(&copy["Resource"]),
            format!(
                "[!Sub arn:${{AWS::Partition}}:ec2:${{AWS::Region}}::snapshot/*, !Sub \
                 arn:${{AWS::Partition}}:ec2:{region}::snapshot/*]"
            ),
            "the source snapshot here, the copy there"
        );
        let tag = by_sid(&all, "TagCopiesAtCreation");
        assert_eq!(actions(tag), BTreeSet::from(["ec2:CreateTags".to_owned()]));
        assert_eq!(
            show(&tag["Condition"]["StringEquals"]["ec2:CreateAction"]),
            "CopySnapshot"
        );
        assert!(show(&tag["Resource"]).contains(&format!("ec2:{region}::snapshot/*")));
        let lock = by_sid(&all, "LockOwnCopies");
        assert_eq!(
            actions(lock),
            BTreeSet::from(["ec2:LockSnapshot".to_owned()])
        );
        assert!(show(&lock["Resource"]).contains(&format!("ec2:{region}::snapshot/*")));
        assert_eq!(
            show(
                &lock["Condition"]["StringEquals"]
                    [&format!("aws:ResourceTag/{}", function::tags::MANAGED_BY)]
            ),
            "!Ref DeploymentName",
            "only this deployment's copies are locked"
        );
        let delete = by_sid(&all, "DeleteOwnCopies");
        assert_eq!(
            actions(delete),
            BTreeSet::from(["ec2:DeleteSnapshot".to_owned()])
        );
        assert_eq!(
            show(
                &delete["Condition"]["StringEquals"]
                    [&format!("aws:ResourceTag/{}", function::tags::MANAGED_BY)]
            ),
            "!Ref DeploymentName"
        );
        // The key statement exists only with a key, names it (or the region's keys carrying
        // its alias), and only through EC2 in that region.
        let raw = &resource(&t, &format!("Copy{n}Policy"))["Properties"]["PolicyDocument"]["Statement"]
            [4];
        assert!(
            show(raw).starts_with(&format!("!If [Copy{n}HasKey, ")),
            "{}",
            show(raw)
        );
        assert!(show(raw).ends_with("!Ref AWS::NoValue]"));
        let key = by_sid(&all, "EncryptCopiesThroughEc2");
        assert_eq!(
            actions(key),
            [
                "kms:CreateGrant",
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey"
            ]
            .iter()
            .map(|a| a.to_string())
            .collect()
        );
        assert_eq!(
            show(&key["Resource"]),
            format!(
                "!If [Copy{n}HasKeyArn, !Ref Copy{n}KmsKeyArn, !Sub \
                 arn:${{AWS::Partition}}:kms:{region}:${{AWS::AccountId}}:key/*]"
            )
        );
        let via = format!("!Sub ec2.{region}.amazonaws.com");
        let Value::Tagged(condition) = &key["Condition"] else {
            panic!("the key's condition depends on how the key is given");
        };
        let (by_arn, by_alias) = (&condition.value[1], &condition.value[2]);
        assert_eq!(show(&by_arn["StringEquals"]["kms:ViaService"]), via);
        assert_eq!(show(&by_alias["StringEquals"]["kms:ViaService"]), via);
        assert_eq!(
            show(&by_alias["ForAnyValue:StringEquals"]["kms:ResourceAliases"]),
            format!("!Ref Copy{n}KmsAlias")
        );
    }
}

#[test]
fn ec2s_completion_events_reach_the_function_only_with_copies_a_vault_the_tripwire_or_fast_restore()
{
    let t = main_template();
    let rule = resource(&t, "SnapshotsCompletedRule");
    assert_eq!(show(&rule["Condition"]), "HasCompletionEvents");
    assert_eq!(
        show(&t["Conditions"]["HasCompletionEvents"]),
        "!Or [!Condition HasCopy1, !Condition HasVault, !Condition HasTripwire, !Condition HasFastRestore]"
    );
    assert_eq!(
        show(&t["Conditions"]["HasFastRestore"]),
        "!Equals [!Ref FastRestore, true]"
    );
    assert_eq!(
        show(&rule["Properties"]["Name"]),
        format!(
            "!Sub ${{DeploymentName}}{}",
            crate::config::COPY_RULE_SUFFIX
        )
    );
    let pattern = &rule["Properties"]["EventPattern"];
    assert_eq!(
        show(&pattern["source"]),
        format!("[{}]", function::event::COMPLETION_SOURCE)
    );
    assert_eq!(
        show(&pattern["detail-type"]),
        format!("[{}]", function::event::COMPLETION_DETAIL_TYPE)
    );
    assert_eq!(show(&pattern["detail"]["event"]), "[createSnapshots]");
    assert_eq!(show(&pattern["detail"]["result"]), "[succeeded]");
    let targets = rule["Properties"]["Targets"].as_sequence().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(show(&targets[0]["Arn"]), "!GetAtt Function.Arn");
    let permission = resource(&t, "SnapshotsCompletedPermission");
    assert_eq!(show(&permission["Condition"]), "HasCompletionEvents");
    let p = &permission["Properties"];
    assert_eq!(show(&p["Principal"]), "events.amazonaws.com");
    assert_eq!(show(&p["Action"]), "lambda:InvokeFunction");
    assert_eq!(show(&p["SourceArn"]), "!GetAtt SnapshotsCompletedRule.Arn");
    assert_eq!(show(&p["SourceAccount"]), "!Ref AWS::AccountId");
    // The slots fill in order: the first one decides whether there are copies at all.
    assert_eq!(
        show(&t["Conditions"]["HasCopy1"]),
        "!Not [!Equals [!Ref Copy1Region, ]]"
    );
}

#[test]
fn the_execution_role_serves_cloudformation_only_and_creates_only_bounded_roles() {
    let t = bootstrap_template();
    let role = resource(&t, "ExecutionRole");
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(trust.as_sequence().unwrap().len(), 1);
    assert_eq!(
        show(&trust[0]["Principal"]["Service"]),
        "cloudformation.amazonaws.com"
    );
    // No condition: CloudFormation is not documented to send aws:SourceAccount when it
    // assumes a service role, and a condition on a key it does not send denies the role (SAM
    // CLI added exactly this condition and removed it within days). iam:PassRole protects it.
    assert!(
        trust[0]["Condition"].is_null(),
        "the execution role's trust must carry no condition: {:?}",
        trust[0]["Condition"]
    );
    let all = statements(role);
    // Whatever writes a role's permissions requires the SmartVault boundary on that role.
    let bounded = by_sid(all, "CreateBoundedRoles");
    assert_eq!(
        show(&bounded["Condition"]["ArnEquals"]["iam:PermissionsBoundary"]),
        "!Ref FunctionBoundary"
    );
    for statement in all.iter().filter(|s| show(&s["Effect"]) == "Allow") {
        let sid = show(&statement["Sid"]);
        for action in actions(statement) {
            if [
                "iam:CreateRole",
                "iam:PutRolePolicy",
                "iam:PutRolePermissionsBoundary",
            ]
            .contains(&action.as_str())
            {
                assert_eq!(sid, "CreateBoundedRoles", "{action} outside the boundary");
            }
            assert!(
                ![
                    "iam:AttachRolePolicy",
                    "iam:DeleteRolePermissionsBoundary",
                    "iam:CreatePolicy",
                    "iam:CreateUser",
                    "iam:CreateAccessKey"
                ]
                .contains(&action.as_str()),
                "{sid} grants {action}"
            );
        }
        // Every write is on this account's and region's SmartVault names (IAM has no region).
        let resources = show(&statement["Resource"]);
        assert!(
            resources == "*"
                || resources.contains("smartvault-")
                || resources.contains("${ArtifactBucket.Arn}/artifacts/*")
                // A Recycle Bin rule's ARN ends in an id AWS assigns: this account's and
                // region's rules.
                || (sid == "RecycleBinRules"
                    && resources
                        .ends_with(":rbin:${AWS::Region}:${AWS::AccountId}:rule/*")),
            "{sid}: {resources}"
        );
    }
    let pass = by_sid(all, "PassRolesToFunctionsAndSchedules");
    assert_eq!(
        show(&pass["Condition"]["StringEquals"]["iam:PassedToService"]),
        "[lambda.amazonaws.com, scheduler.amazonaws.com]"
    );
    let deny = by_sid(all, "NotTheBootstrap");
    assert_eq!(show(&deny["Effect"]), "Deny");
    assert_eq!(show(&deny["Action"]), "iam:*");
    let denied = show(&deny["Resource"]);
    assert!(
        denied.contains("role/smartvault-bootstrap-*")
            && denied.contains("policy/smartvault-bootstrap-*"),
        "{denied}"
    );
    // Only "*" where IAM authorizes on "*".
    for statement in all.iter().filter(|s| show(&s["Resource"]) == "*") {
        assert!(
            ["FindLogGroups", "Subscriptions", "FindRecycleBinRules"]
                .contains(&show(&statement["Sid"]).as_str()),
            "{}",
            show(statement)
        );
    }
    let outputs = &t["Outputs"];
    assert_eq!(
        show(&outputs["ExecutionRoleArn"]["Value"]),
        "!GetAtt ExecutionRole.Arn"
    );
    assert_eq!(
        show(&outputs["BootstrapVersion"]["Value"]),
        crate::workflows::bootstrap::REQUIRED_VERSION.to_string()
    );
}

#[test]
fn the_deployer_may_pass_only_the_execution_role_and_only_to_cloudformation() {
    let path = crate::paths::workspace_root().join("docs/deployer-policy.json");
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let iam: Vec<&serde_json::Value> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.to_string().contains("\"iam:"))
        .collect();
    // Besides passing the execution role, only reading SmartVault's roles (drift detection
    // reads each resource of the stack with the deployer's permissions).
    let reads: Vec<&&serde_json::Value> = iam
        .iter()
        .filter(|s| s["Sid"] == "ReadStackRolesForDrift")
        .collect();
    assert_eq!(reads.len(), 1, "{iam:?}");
    assert_eq!(reads[0]["Resource"], "arn:aws:iam::*:role/smartvault-*");
    for action in reads[0]["Action"].as_array().unwrap() {
        let action = action.as_str().unwrap();
        assert!(
            action.starts_with("iam:Get") || action.starts_with("iam:List"),
            "{action} only reads"
        );
    }
    let iam: Vec<&serde_json::Value> = iam
        .into_iter()
        .filter(|s| s["Sid"] != "ReadStackRolesForDrift")
        .collect();
    // Passing the execution role, and a stack set's administration role, only to
    // CloudFormation.
    assert_eq!(iam.len(), 2, "{iam:?}");
    let passed: Vec<&serde_json::Value> = iam.iter().map(|s| &s["Resource"]).collect();
    assert_eq!(
        passed,
        [
            "arn:aws:iam::*:role/smartvault-bootstrap-cfn-exec-*",
            "arn:aws:iam::*:role/smartvault-stackset-administration"
        ]
    );
    for statement in &iam {
        assert_eq!(statement["Action"], serde_json::json!(["iam:PassRole"]));
        assert_eq!(
            statement["Condition"]["StringEquals"]["iam:PassedToService"],
            "cloudformation.amazonaws.com"
        );
    }
    let roles = crate::stack::template::read_template("stackset-roles.yaml").unwrap();
    let roles: Value = serde_norway::from_str(&roles).unwrap();
    assert_eq!(
        show(&resource(&roles, "AdministrationRole")["Properties"]["RoleName"]),
        crate::config::targets::ADMINISTRATION_ROLE
    );
    // The role the bootstrap makes is the one that pattern names.
    let t = bootstrap_template();
    assert_eq!(
        show(&resource(&t, "ExecutionRole")["Properties"]["RoleName"]),
        "!Sub smartvault-bootstrap-cfn-exec-${AWS::Region}"
    );
    // Nothing the stack's resources need beyond what deploy itself calls: CloudFormation acts
    // with the execution role.
    for create in ["iam:CreateRole", "lambda:CreateFunction"] {
        assert!(
            !crate::checks::policies::allowed_actions("deployer-policy.json").contains(create),
            "{create}"
        );
    }
    // The one topic the deployer makes is an organization's central topic.
    let topics: Vec<&serde_json::Value> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.to_string().contains("\"sns:CreateTopic\""))
        .collect();
    assert_eq!(topics.len(), 1);
    assert_eq!(
        topics[0]["Resource"],
        "arn:aws:sns:*:*:smartvault-*-central"
    );
    // The one bucket the deployer makes is an organization's artifact bucket
    // (<stack>-<12-digit account>-<region>), never the bootstrap's or anyone else's.
    let buckets: Vec<&serde_json::Value> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.to_string().contains("\"s3:CreateBucket\""))
        .collect();
    assert_eq!(buckets.len(), 1);
    let pattern = buckets[0]["Resource"].as_str().unwrap();
    assert_eq!(pattern, "arn:aws:s3:::smartvault-*-????????????-*");
    let bucket = |name: &str| iam_matches(pattern, &format!("arn:aws:s3:::{name}"));
    assert!(bucket("smartvault-org-123456789012-eu-west-1"));
    assert!(bucket("smartvault-org-prod-123456789012-ap-southeast-2"));
    for other in [
        "smartvault-bootstrap-artifactbucket-1x2y3z4w5v6u",
        "smartvault-bootstrap-artifactbucket-1x2y3z4w5v6u7",
        "smartvault-data",
        "other-org-123456789012-eu-west-1",
    ] {
        assert!(!bucket(other), "{other}");
    }
}

/// IAM's ARN matching: `*` any run of characters, `?` any one.
fn iam_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // matched[j]: the pattern so far matches the first j characters of the text.
    let mut matched = vec![false; t.len() + 1];
    matched[0] = true;
    for c in p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match c {
                '*' => matched[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matched[j - 1],
                c => j > 0 && matched[j - 1] && t[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[t.len()]
}

#[test]
fn iam_matching_is_a_glob_of_star_and_question_mark() {
    assert!(iam_matches("a*c", "abbbc") && iam_matches("a*c", "ac"));
    assert!(iam_matches("a?c", "abc") && !iam_matches("a?c", "ac"));
    assert!(!iam_matches("a*", "ba") && iam_matches("*", ""));
}

fn organization_template() -> Value {
    serde_norway::from_str(&read_template("organization.yaml").unwrap()).unwrap()
}

fn targets(yaml: &str) -> crate::config::targets::Targets {
    crate::config::targets::example(yaml).unwrap()
}

/// moto's CloudFormation skips `AWS::S3::BucketPolicy`, so who may read an organization's
/// artifacts is proven here: the organization (aws:PrincipalOrgID) or the listed accounts,
/// read-only, the artifacts only, over TLS.
#[test]
fn the_organization_artifacts_are_readable_by_the_targets_only() {
    let t = organization_template();
    let policy = &resource(&t, "ArtifactBucketPolicy")["Properties"]["PolicyDocument"];
    let statements = policy["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 2);
    let tls = &statements[0];
    assert_eq!(show(&tls["Effect"]), "Deny");
    assert_eq!(
        show(&tls["Condition"]["Bool"]["aws:SecureTransport"]),
        "false"
    );
    let read = &statements[1];
    assert_eq!(show(&read["Sid"]), "TargetsReadArtifacts");
    assert_eq!(show(&read["Effect"]), "Allow");
    assert_eq!(
        actions(read),
        BTreeSet::from(["s3:GetObject".to_owned(), "s3:GetObjectVersion".to_owned()])
    );
    assert_eq!(
        show(&read["Resource"]),
        "!Sub ${ArtifactBucket.Arn}/artifacts/*"
    );
    // With an organization: anyone in it, and only in it; without: the listed accounts.
    assert_eq!(
        show(&read["Principal"]),
        "!If [ReadByOrganization, *, AWS: !Ref ReaderAccounts]"
    );
    assert_eq!(
        show(&read["Condition"]),
        "!If [ReadByOrganization, StringEquals:\n  aws:PrincipalOrgID: !Ref OrganizationId, !Ref AWS::NoValue]"
    );
    assert_eq!(
        show(&t["Conditions"]["ReadByOrganization"]),
        "!Not [!Equals [!Ref OrganizationId, ]]"
    );
    // What deploy passes: the organization for units; the accounts without one.
    let units = targets(
        "organizational_units: [ou-ab12-cdef3456]\norganization_id: o-a1b2c3d4e5\n\
         member_role: OrganizationAccountAccessRole\nregions: [us-east-1]",
    );
    let parameters = crate::workflows::organization::artifact_parameters(&units, "p");
    assert_eq!(parameters["OrganizationId"], "o-a1b2c3d4e5");
    assert_eq!(parameters["ReaderAccounts"], "");
    let accounts = targets("accounts: ['111111111111', '222222222222']\nregions: [us-east-1]");
    let parameters = crate::workflows::organization::artifact_parameters(&accounts, "p");
    assert_eq!(parameters["OrganizationId"], "");
    assert_eq!(parameters["ReaderAccounts"], "111111111111,222222222222");
    // The bucket is found in every region by the name the main template derives.
    let bucket = resource(&t, "ArtifactBucket");
    assert_eq!(
        show(&bucket["Properties"]["BucketName"]),
        "!Sub ${BucketPrefix}-${AWS::Region}"
    );
    let main = main_template();
    assert_eq!(
        show(&resource(&main, "Function")["Properties"]["Code"]["S3Bucket"]),
        "!If [ArtifactsPerRegion, !Sub ${ArtifactBucket}-${AWS::Region}, !Ref ArtifactBucket]"
    );
    for (key, value) in [
        ("PublicAccessBlockConfiguration", "BlockPublicPolicy"),
        ("PublicAccessBlockConfiguration", "RestrictPublicBuckets"),
    ] {
        assert_eq!(show(&bucket["Properties"][key][value]), "true");
    }
}

/// The StackSet roles: CloudFormation in the administrator account assumes only the
/// execution role; the execution role trusts only the administrator account, and the
/// deployer's destroy may assume it (the default member role).
#[test]
fn the_stackset_roles_are_trusted_as_aws_documents_them() {
    let t: Value = serde_norway::from_str(&read_template("stackset-roles.yaml").unwrap()).unwrap();
    let admin = resource(&t, "AdministrationRole");
    assert_eq!(show(&admin["Condition"]), "IsAdministrator");
    let trust = &admin["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        show(&trust["Principal"]["Service"]),
        "cloudformation.amazonaws.com"
    );
    // As in AWS's own AWSCloudFormationStackSetAdministrationRole template: no condition on
    // a key StackSets is not documented to send.
    assert!(
        trust["Condition"].is_null(),
        "the administration role's trust must carry no condition: {:?}",
        trust["Condition"]
    );
    let assumes = statements(admin);
    assert_eq!(assumes.len(), 1);
    assert_eq!(
        show(&assumes[0]["Resource"]),
        format!(
            "!Sub arn:${{AWS::Partition}}:iam::*:role/{}",
            crate::config::targets::EXECUTION_ROLE
        )
    );
    let execution = resource(&t, "ExecutionRole");
    assert_eq!(
        show(&execution["Properties"]["RoleName"]),
        crate::config::targets::EXECUTION_ROLE
    );
    let trust = &execution["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(trust.as_sequence().unwrap().len(), 1);
    assert_eq!(
        show(&trust[0]["Principal"]["AWS"]),
        "!Sub arn:${AWS::Partition}:iam::${AdministratorAccount}:root"
    );
    // Deleting only what SmartVault made, by its tags.
    let all = statements(execution);
    let by_sid = |sid: &str| {
        all.iter()
            .find(|s| show(&s["Sid"]) == sid)
            .unwrap_or_else(|| panic!("no {sid}"))
    };
    assert_eq!(
        show(
            &by_sid("DeleteSmartVaultSnapshots")["Condition"]["StringLike"]["aws:ResourceTag/smartvault:managed-by"]
        ),
        "smartvault-*"
    );
    assert_eq!(
        show(
            &by_sid("DeleteRestoreTestVolumes")["Condition"]["StringLike"]["aws:ResourceTag/smartvault:restore-test"]
        ),
        "smartvault-*"
    );
    // The stack instances' roles are named after their stacks (StackSet-<stack set>-...).
    assert_eq!(
        show(&by_sid("ManageRoles")["Resource"]),
        "!Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:role/StackSet-smartvault-*"
    );
}

/// The central topic: the members publish, only the organization's (or listed) accounts, and
/// only to it; each member function may publish there and nowhere else beyond its own topic.
#[test]
fn the_central_topic_takes_summaries_from_the_targets_only() {
    let t: Value = serde_norway::from_str(&read_template("central-topic.yaml").unwrap()).unwrap();
    let policy = &resource(&t, "TopicPolicy")["Properties"]["PolicyDocument"];
    let statements = policy["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    let publish = &statements[0];
    assert_eq!(show(&publish["Action"]), "sns:Publish");
    assert_eq!(show(&publish["Resource"]), "!Ref Topic");
    assert_eq!(
        show(&publish["Principal"]),
        "!If [PublishedByOrganization, *, AWS: !Ref PublisherAccounts]"
    );
    assert_eq!(
        show(&publish["Condition"]),
        "!If [PublishedByOrganization, StringEquals:\n  aws:PrincipalOrgID: !Ref OrganizationId, !Ref AWS::NoValue]"
    );
    // The member's side: its role may publish to the central topic, and the function is told.
    let main = main_template();
    let member = resource(&main, "CentralTopicPolicy");
    assert_eq!(show(&member["Condition"]), "HasCentralTopic");
    let allowed = statements_of(member);
    assert_eq!(allowed.len(), 1);
    assert_eq!(show(&allowed[0]["Action"]), "sns:Publish");
    assert_eq!(show(&allowed[0]["Resource"]), "!Ref CentralTopicArn");
    assert_eq!(
        show(
            &resource(&main, "Function")["Properties"]["Environment"]["Variables"]["CENTRAL_TOPIC_ARN"]
        ),
        "!Ref CentralTopicArn"
    );
    // What deploy passes for units and for accounts.
    let units = targets(
        "organizational_units: [ou-ab12-cdef3456]\norganization_id: o-a1b2c3d4e5\n\
         member_role: OrganizationAccountAccessRole\nregions: [us-east-1]\n\
         central_topic: {notification_emails: [a@example.com, b@example.com]}",
    );
    let mut env = crate::config::example("org");
    env.stack_name = "smartvault-org".into();
    let parameters = crate::workflows::organization::central_parameters(&env, &units);
    assert_eq!(parameters["TopicName"], "smartvault-org-central");
    assert_eq!(parameters["OrganizationId"], "o-a1b2c3d4e5");
    assert_eq!(parameters["PublisherAccounts"], "");
    assert_eq!(
        (
            parameters["NotificationEmail1"].as_str(),
            parameters["NotificationEmail2"].as_str(),
            parameters["NotificationEmail3"].as_str()
        ),
        ("a@example.com", "b@example.com", "")
    );
    let accounts = targets(
        "accounts: ['111111111111', '222222222222']\nregions: [us-east-1]\n\
         central_topic: {notification_emails: [a@example.com]}",
    );
    let parameters = crate::workflows::organization::central_parameters(&env, &accounts);
    assert_eq!(parameters["OrganizationId"], "");
    assert_eq!(parameters["PublisherAccounts"], "111111111111,222222222222");
}

/// A stand-alone policy resource's statements.
fn statements_of(resource: &Value) -> &[Value] {
    resource["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
}

/// Nobody SmartVault sets up may unlock a snapshot: no template, policy or boundary it ships
/// grants `ec2:UnlockSnapshot` (nor `ec2:*` or `ec2:Unlock*`), so a lock holds against the
/// function, the deployer and CloudFormation's execution role alike.
#[test]
fn no_shipped_policy_can_unlock_a_snapshot() {
    let root = crate::paths::workspace_root();
    let mut read = 0;
    for folder in ["templates", "docs"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().to_string();
            if !(name.ends_with(".yaml") || name.ends_with(".json")) {
                continue;
            }
            read += 1;
            // What a policy says, its comments left out.
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .map(|line| line.split(" #").next().unwrap_or_default().to_owned() + "\n")
                .collect();
            for granted in [
                "ec2:UnlockSnapshot",
                "\"ec2:*\"",
                "ec2:Unlock*",
                "- ec2:*\n",
            ] {
                assert!(
                    !text.contains(granted),
                    "{name} grants {granted}: a snapshot lock must hold against every role \
                     SmartVault sets up"
                );
            }
        }
    }
    assert!(read >= 8, "only {read} templates and policies read");
}

/// The Recycle Bin rule keeps only this deployment's snapshots (its managed-by tag), for the
/// configured days, and exists only when asked for.
#[test]
fn the_recycle_bin_rule_retains_only_this_deployments_snapshots() {
    let t = main_template();
    let rule = resource(&t, "RecycleBinRule");
    assert_eq!(show(&rule["Type"]), "AWS::Rbin::Rule");
    assert_eq!(show(&rule["Condition"]), "HasRecycleBin");
    assert_eq!(
        show(&t["Conditions"]["HasRecycleBin"]),
        "!Not [!Equals [!Ref RecycleBinDays, 0]]"
    );
    let properties = &rule["Properties"];
    assert_eq!(show(&properties["ResourceType"]), "EBS_SNAPSHOT");
    let tags = properties["ResourceTags"].as_sequence().unwrap();
    assert_eq!(
        tags.len(),
        1,
        "one tag: the managed-by tag, with this deployment's name"
    );
    assert_eq!(show(&tags[0]["ResourceTagKey"]), function::tags::MANAGED_BY);
    assert_eq!(show(&tags[0]["ResourceTagValue"]), "!Ref DeploymentName");
    let period = &properties["RetentionPeriod"];
    assert_eq!(show(&period["RetentionPeriodValue"]), "!Ref RecycleBinDays");
    assert_eq!(show(&period["RetentionPeriodUnit"]), "DAYS");
    assert!(
        properties.get("LockConfiguration").is_none(),
        "a rule lock is an explicit choice, not a default"
    );
}

/// The vault's resources (docs/vault.md): the workload may share its own snapshots and assume
/// the vault's reader role, nothing more in the vault account; that role reads snapshots and
/// their locks only, assumable by the workload accounts; the vault copies into its own region
/// with its key; the lag alarm watches the metric the function writes.
#[test]
fn the_vault_grants_sharing_reading_and_copying_only() {
    let t = main_template();
    let actions = |statement: &Value| -> Vec<String> {
        match &statement["Action"] {
            Value::Sequence(list) => list.iter().map(show).collect(),
            one => vec![show(one)],
        }
    };
    let statements = |resource_name: &str| -> Vec<Value> {
        let r = resource(&t, resource_name);
        // A statement under `!If [condition, statement, AWS::NoValue]` counts as granted.
        r["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|statement| match statement {
                Value::Tagged(tagged) if tagged.tag == "!If" => tagged.value[1].clone(),
                plain => plain.clone(),
            })
            .collect()
    };

    // The workload's side.
    let share = resource(&t, "VaultSharePolicy");
    assert_eq!(show(&share["Condition"]), "HasVault");
    assert_eq!(show(&share["Properties"]["RoleName"]), "!Ref Role");
    let shares = statements("VaultSharePolicy");
    assert_eq!(shares.len(), 2);
    assert_eq!(actions(&shares[0]), ["ec2:ModifySnapshotAttribute"]);
    assert_eq!(
        show(&shares[0]["Condition"]["StringEquals"]["aws:ResourceTag/smartvault:managed-by"]),
        "!Ref DeploymentName",
        "only this deployment's own snapshots are shared"
    );
    assert_eq!(actions(&shares[1]), ["sts:AssumeRole"]);
    assert_eq!(show(&shares[1]["Resource"]), "!Ref VaultReaderRoleArn");
    assert_eq!(
        show(&t["Conditions"]["HasVault"]),
        "!Not [!Equals [!Ref VaultReaderRoleArn, ]]"
    );

    // The vault's reader role: reads, for the workload accounts only.
    let reader = resource(&t, "VaultReaderRole");
    assert_eq!(show(&reader["Condition"]), "IsVault");
    let p = &reader["Properties"];
    assert_eq!(
        show(&p["RoleName"]),
        format!(
            "!Sub ${{DeploymentName}}{}",
            crate::config::vault::READER_SUFFIX
        )
    );
    assert_eq!(
        show(&p["PermissionsBoundary"]),
        show(&resource(&t, "Role")["Properties"]["PermissionsBoundary"]),
        "the bootstrap's boundary, as the function's role"
    );
    let trust = p["AssumeRolePolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(trust.len(), 1);
    assert_eq!(
        show(&trust[0]["Principal"]["AWS"]),
        "!Ref VaultReaderPrincipals"
    );
    let policies = p["Policies"].as_sequence().unwrap();
    assert_eq!(policies.len(), 1);
    let granted: Vec<String> = policies[0]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(actions)
        .collect();
    assert_eq!(
        granted,
        ["ec2:DescribeSnapshots", "ec2:DescribeLockedSnapshots"],
        "whoever assumes the reader can only read"
    );

    // The vault's side: copy into its own region with its key; lock and delete are the role's
    // own statements on this deployment's snapshots.
    let pull = resource(&t, "VaultPullPolicy");
    assert_eq!(show(&pull["Condition"]), "IsVault");
    let pulls = statements("VaultPullPolicy");
    let all: Vec<String> = pulls.iter().flat_map(actions).collect();
    for action in &all {
        assert!(
            action == "ec2:CopySnapshot"
                || action == "ec2:CreateTags"
                || action.starts_with("kms:"),
            "{action} is not the vault's to do"
        );
    }
    let copy = pulls
        .iter()
        .find(|s| actions(s) == ["ec2:CopySnapshot"])
        .unwrap();
    assert_eq!(show(&copy["Resource"]), "!Ref VaultSourceSnapshots");
    let tag = pulls
        .iter()
        .find(|s| actions(s) == ["ec2:CreateTags"])
        .unwrap();
    assert_eq!(
        show(&tag["Condition"]["StringEquals"]["ec2:CreateAction"]),
        "CopySnapshot"
    );
    let encrypt = pulls
        .iter()
        .find(|s| show(&s["Sid"]) == "EncryptVaultCopiesThroughEc2")
        .unwrap();
    assert_eq!(show(&encrypt["Resource"]), "!Ref VaultKmsKeyArn");

    // The lag alarm reads the metric the function writes.
    let alarm = resource(&t, "VaultLagAlarm");
    assert_eq!(show(&alarm["Condition"]), "HasVault");
    let a = &alarm["Properties"];
    assert_eq!(show(&a["MetricName"]), "VaultLagHours");
    assert_eq!(show(&a["Threshold"]), "!Ref VaultMaxLagHours");
    assert_eq!(show(&a["ComparisonOperator"]), "GreaterThanThreshold");
    let report = function::report::RunReport {
        vault: Some(function::report::VaultShares {
            lag_hours: Some(3),
            ..function::report::VaultShares::default()
        }),
        ..function::report::RunReport::new(
            "d",
            false,
            function::model::Job::Cleanup,
            "k=v".into(),
            time::OffsetDateTime::UNIX_EPOCH,
        )
    };
    assert!(report.metrics(0).get("VaultLagHours").is_some());

    // The function gets both variables.
    let variables = &resource(&t, "Function")["Properties"]["Environment"]["Variables"];
    assert_eq!(show(&variables[function::config::VAULT]), "!Ref Vault");
    assert_eq!(
        show(&variables[function::config::VAULT_FOR]),
        "!Ref VaultFor"
    );
}

/// The region-wide rule is an explicit choice: every EBS snapshot of the region (no resource
/// tags), locked with the configured unlock delay, and kept when the stack goes.
#[test]
fn the_region_wide_recycle_bin_rule_is_locked_and_outlives_the_stack() {
    let t = main_template();
    let rule = resource(&t, "RegionWideRecycleBinRule");
    assert_eq!(show(&rule["Type"]), "AWS::Rbin::Rule");
    assert_eq!(show(&rule["Condition"]), "HasRegionWideBin");
    assert_eq!(
        show(&t["Conditions"]["HasRegionWideBin"]),
        "!And [!Condition HasRecycleBin, !Not [!Equals [!Ref RecycleBinUnlockDelayDays, 0]]]"
    );
    assert_eq!(show(&rule["DeletionPolicy"]), "Retain");
    assert_eq!(show(&rule["UpdateReplacePolicy"]), "Retain");
    let p = &rule["Properties"];
    assert!(
        p.get("ResourceTags").is_none(),
        "region-wide: every snapshot"
    );
    assert_eq!(show(&p["ResourceType"]), "EBS_SNAPSHOT");
    assert_eq!(
        show(&p["RetentionPeriod"]["RetentionPeriodValue"]),
        "!Ref RecycleBinDays"
    );
    assert_eq!(
        show(&p["LockConfiguration"]["UnlockDelayValue"]),
        "!Ref RecycleBinUnlockDelayDays"
    );
    assert_eq!(show(&p["LockConfiguration"]["UnlockDelayUnit"]), "DAYS");
}

/// The tripwire reads block lists and records four tags (the changed bytes, against what, the
/// bytes the snapshot holds, and a trip) on this deployment's snapshots, nothing more, and only when configured; its alarm
/// holds while a trip is in force.
#[test]
fn the_tripwire_reads_block_lists_and_records_its_four_tags_on_own_snapshots_only() {
    let t = main_template();
    let policy = resource(&t, "TripwirePolicy");
    assert_eq!(show(&policy["Condition"]), "HasTripwire");
    assert_eq!(
        show(&t["Conditions"]["HasTripwire"]),
        "!Not [!Equals [!Ref Tripwire, ]]"
    );
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(statements.len(), 3);
    assert_eq!(show(&statements[0]["Action"]), "ebs:ListChangedBlocks");
    assert!(show(&statements[0]["Resource"]).ends_with("::snapshot/*"));
    // Block data only with sampling, on the region's snapshots.
    let sampling = show(&statements[1]);
    assert!(
        sampling.starts_with("!If [HasTripwireSamples,")
            && sampling.contains("Action: ebs:GetSnapshotBlock")
            && sampling.contains("::snapshot/*")
            && sampling.ends_with("!Ref AWS::NoValue]"),
        "{sampling}"
    );
    let statements = &statements[1..];
    assert_eq!(
        show(&t["Conditions"]["HasTripwireSamples"]),
        "!Not [!Equals [!Ref TripwireSampleBlocks, 0]]"
    );
    assert_eq!(show(&statements[1]["Action"]), "ec2:CreateTags");
    assert_eq!(
        show(&statements[1]["Condition"]["StringEquals"]["aws:ResourceTag/smartvault:managed-by"]),
        "!Ref DeploymentName"
    );
    assert_eq!(
        show(&statements[1]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]),
        format!("[{}]", function::tags::RECORDED_LATER[..4].join(", "))
    );
    // The other two keys recorded later are the archive tier's, granted by RecordTiers.
    assert_eq!(
        show(
            &statement(&t, "RecordTiers")["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
        ),
        format!("[{}]", function::tags::RECORDED_LATER[4..].join(", "))
    );
    let variables = &resource(&t, "Function")["Properties"]["Environment"]["Variables"];
    assert_eq!(
        show(&variables[function::config::TRIPWIRE]),
        "!Ref Tripwire"
    );
    assert_eq!(
        show(&variables[function::config::ENVIRONMENT]),
        "!Ref EnvironmentName"
    );
    // The alarm reads the metric the function writes, and keeps its state between runs.
    let alarm = &resource(&t, "TripwireAlarm");
    assert_eq!(show(&alarm["Condition"]), "HasTripwire");
    let properties = &alarm["Properties"];
    assert_eq!(show(&properties["MetricName"]), "TrippedInstances");
    assert_eq!(show(&properties["Statistic"]), "Maximum");
    assert_eq!(
        show(&properties["ComparisonOperator"]),
        "GreaterThanThreshold"
    );
    assert_eq!(show(&properties["Threshold"]), "0");
    assert_eq!(show(&properties["TreatMissingData"]), "ignore");
    let mut report = function::report::RunReport::new(
        "smartvault-prod",
        false,
        function::model::Job::BackupAndCleanup,
        String::new(),
        time::OffsetDateTime::UNIX_EPOCH,
    );
    report.tripwire = Some(function::report::Tripwire {
        trips: vec![function::report::TripHeld {
            instance_id: "i-1".into(),
            since: "2026-01-02T00:00:00Z".into(),
            suspicious_set: "2026-01-02T00:00:00Z".into(),
            snapshots: vec!["snap-1".into()],
            new: true,
            clean_point: None,
            pinned: None,
        }],
        ..Default::default()
    });
    let metrics = report.metrics(0);
    assert_eq!(metrics["TrippedInstances"], 1, "{metrics}");
    assert!(
        metrics
            .to_string()
            .contains("\"Name\":\"TrippedInstances\""),
        "{metrics}"
    );
}
