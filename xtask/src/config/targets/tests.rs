//! Table tests of `targets:`: every refusal names its key and fix; defaults and derived names.

use super::*;

fn raw(yaml: &str) -> RawTargets {
    serde_norway::from_str(yaml).unwrap()
}

fn around() -> Around<'static> {
    Around {
        stack_name: "smartvault-org",
        region: "us-east-1",
        copy_regions: vec![],
        termination_protection: false,
        reserved_concurrency: None,
    }
}

fn refusal(yaml: &str) -> (String, String) {
    example(yaml).unwrap_err()
}

#[test]
fn accounts_are_self_managed_with_smartvaults_roles_and_a_careful_rollout_by_default() {
    let targets = resolve(
        &raw("accounts: ['111111111111', '222222222222']\nregions: [us-east-1, eu-west-1]"),
        &around(),
    )
    .unwrap();
    assert_eq!(
        targets.deployment,
        Deployment::Accounts {
            accounts: vec!["111111111111".into(), "222222222222".into()],
            execution_role: EXECUTION_ROLE.into(),
        }
    );
    assert_eq!(targets.regions, ["us-east-1", "eu-west-1"], "order kept");
    assert_eq!(targets.region_concurrency, RegionConcurrency::Sequential);
    assert_eq!(
        (targets.max_concurrent_accounts, targets.failure_tolerance),
        (1, 0)
    );
    assert_eq!(targets.member_role, EXECUTION_ROLE);
    assert_eq!(targets.organization_id, None);
    assert!(!targets.service_managed());
    assert_eq!(targets.accounts(), ["111111111111", "222222222222"]);
}

#[test]
fn units_are_service_managed_and_deploy_to_joining_accounts_by_default() {
    let targets = resolve(
        &raw(
            "organizational_units: [ou-ab12-cdef3456, r-ab12]\norganization_id: o-a1b2c3d4e5\n\
             member_role: OrganizationAccountAccessRole\nregions: [eu-west-1]\n\
             region_concurrency: parallel\nmax_concurrent_accounts: 5\nfailure_tolerance: 4",
        ),
        &around(),
    )
    .unwrap();
    assert_eq!(
        targets.deployment,
        Deployment::OrganizationalUnits {
            units: vec!["ou-ab12-cdef3456".into(), "r-ab12".into()],
            auto_deployment: true,
            retain_stacks_on_account_removal: false,
            delegated_admin: false,
        }
    );
    assert!(targets.service_managed());
    assert!(targets.accounts().is_empty());
    assert_eq!(targets.region_concurrency, RegionConcurrency::Parallel);
    assert_eq!(targets.member_role, "OrganizationAccountAccessRole");
    let text = targets.describe("smartvault-org");
    assert!(
        text.contains("organizational units ou-ab12-cdef3456, r-ab12 (accounts that join are deployed to automatically)")
            && text.contains("at most 5 account(s) at a time, 4 failure(s)"),
        "{text}"
    );
}

#[test]
fn every_bad_target_is_refused_with_its_key_and_fix() {
    let base = "regions: [eu-west-1]\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "",
            "targets.accounts",
            "names no account and no unit; give `accounts`",
        ),
        (
            "accounts: ['111111111111']\norganizational_units: [r-ab12]\norganization_id: o-a1b2c3d4e5",
            "targets.accounts",
            "not both",
        ),
        ("accounts: []", "targets.accounts", "at least one"),
        (
            "accounts: [12345]",
            "targets.accounts",
            "\"12345\" is not a 12-digit",
        ),
        (
            "accounts: ['111111111111', '111111111111']",
            "targets.accounts",
            "111111111111 is listed twice",
        ),
        (
            "accounts: ['111111111111']\nauto_deployment: true",
            "targets.auto_deployment",
            "organizational units only",
        ),
        (
            "accounts: ['111111111111']\nexecution_role: 'bad role'",
            "targets.execution_role",
            "not an IAM role name",
        ),
        (
            "organizational_units: [ou-AB-1]\norganization_id: o-a1b2c3d4e5\nmember_role: R",
            "targets.organizational_units",
            "ou-ab12-cdef3456",
        ),
        (
            "organizational_units: [r-ab12]\nmember_role: R",
            "targets.organization_id",
            "need the organization's id",
        ),
        (
            "organizational_units: [r-ab12]\norganization_id: org-1\nmember_role: R",
            "targets.organization_id",
            "o-a1b2c3d4e5",
        ),
        (
            "organizational_units: [r-ab12]\norganization_id: o-a1b2c3d4e5",
            "targets.member_role",
            "OrganizationAccountAccessRole",
        ),
        (
            "organizational_units: [r-ab12]\norganization_id: o-a1b2c3d4e5\nmember_role: R\nexecution_role: X",
            "targets.execution_role",
            "roles AWS Organizations creates",
        ),
        (
            "organizational_units: [r-ab12]\norganization_id: o-a1b2c3d4e5\nmember_role: R\nauto_deployment: false\nretain_stacks_on_account_removal: true",
            "targets.retain_stacks_on_account_removal",
            "only with `auto_deployment: true`",
        ),
        (
            "accounts: ['111111111111']\nmax_concurrent_accounts: 3\nfailure_tolerance: 1",
            "targets.max_concurrent_accounts",
            "failure_tolerance` of at least 2",
        ),
        (
            "accounts: ['111111111111']\nmax_concurrent_accounts: 0",
            "targets.max_concurrent_accounts",
            "at least 1",
        ),
        (
            "accounts: ['111111111111']\ncentral_topic: {notification_emails: []}",
            "targets.central_topic.notification_emails",
            "list 1 to 3 addresses",
        ),
        (
            "accounts: ['111111111111']\ncentral_topic: {notification_emails: [team]}",
            "targets.central_topic.notification_emails",
            "\"team\" is not an email address",
        ),
    ];
    for (yaml, key, says) in cases {
        let (found_key, problem) = refusal(&format!("{base}{yaml}"));
        assert_eq!(found_key, *key, "{yaml}: {problem}");
        assert!(problem.contains(says), "{yaml}: {problem}");
    }
    let regions: &[(&str, &str)] = &[
        ("regions: []", "at least one region"),
        ("regions: [eu-west-9]", "\"eu-west-9\" is not an AWS region"),
        ("regions: [cn-north-1]", "environment's partition (aws)"),
        (
            "regions: [eu-west-1, eu-west-1]",
            "eu-west-1 is listed twice",
        ),
    ];
    for (yaml, says) in regions {
        let (key, problem) = refusal(&format!("accounts: ['111111111111']\n{yaml}"));
        assert_eq!(key, "targets.regions", "{yaml}");
        assert!(problem.contains(says), "{yaml}: {problem}");
    }
}

#[test]
fn the_rest_of_the_environment_must_fit_a_stack_set() {
    let targets = raw("accounts: ['111111111111']\nregions: [eu-west-1, ap-southeast-2]");
    let with = |change: &dyn Fn(&mut Around<'static>)| {
        let mut around = around();
        change(&mut around);
        resolve(&targets, &around).unwrap_err()
    };
    let (key, problem) = with(&|a| a.copy_regions = vec!["ap-southeast-2"]);
    assert_eq!(key, "targets.regions");
    assert!(problem.contains("ap-southeast-2 is both a target region and a copy region"));
    let (key, problem) = with(&|a| a.stack_name = "smartvault-Org");
    assert_eq!(key, "stack_name");
    assert!(
        problem.contains("S3 bucket names are lowercase"),
        "{problem}"
    );
    let (key, _) = with(&|a| a.termination_protection = true);
    assert_eq!(key, "termination_protection");
    let (key, problem) = with(&|a| a.reserved_concurrency = Some(5));
    assert_eq!(key, "reserved_concurrency");
    assert!(problem.contains("each target account's Lambda quota"));
    // <stack>-<account>-<region> within S3's 63 characters: 35 + 1 + 12 + 1 + 14 = 63 fits,
    // one more does not.
    let too_long = "smartvault-org-abcdefghijklmnopqrstu";
    assert_eq!(too_long.len(), 36);
    let (key, problem) = with(&|a| a.stack_name = too_long);
    assert_eq!(key, "stack_name");
    assert!(
        problem.contains("at most 63 characters") && problem.contains("at most 35 characters"),
        "{problem}"
    );
    let mut around = around();
    around.stack_name = &too_long[..35];
    assert!(resolve(&targets, &around).is_ok());
}

#[test]
fn ids_follow_the_patterns_of_aws_schemas() {
    assert!(is_unit("ou-ab12-cdef3456") && is_unit("r-ab12"));
    for bad in [
        "ou-ab1-cdef3456",
        "ou-ab12-cdef345",
        "ou-AB12-cdef3456",
        "r-ab1",
        "ou-ab12",
    ] {
        assert!(!is_unit(bad), "{bad}");
    }
    assert!(is_organization("o-a1b2c3d4e5") && !is_organization("o-a1b2c3d4e"));
    assert!(is_account("123456789012") && !is_account("12345678901a"));
    assert_eq!(
        bucket_prefix("smartvault-org", "123456789012"),
        "smartvault-org-123456789012"
    );
    assert_eq!(
        artifacts_stack("smartvault-org"),
        "smartvault-org-artifacts"
    );
}
