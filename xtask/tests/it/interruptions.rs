//! Deploy and destroy around interruptions, through the real `xtask` binary on the emulator:
//! a deploy refused before bootstrapping makes nothing, one stopped at its confirmation says what
//! it made; a stack left in REVIEW_IN_PROGRESS and a change set left unexecuted are cleaned up
//! by the next deploy.

use crate::common::{fake_artifact, scratch, xtask};
use emulator::Emulator;

const STACK: &str = "smartvault-local";
const BOOTSTRAP: &str = "smartvault-bootstrap";

async fn stack_names(cfn: &aws_sdk_cloudformation::Client) -> Vec<String> {
    let mut names: Vec<String> = cfn
        .describe_stacks()
        .send()
        .await
        .unwrap()
        .stacks()
        .iter()
        .filter(|s| {
            s.stack_status()
                .is_none_or(|s| s.as_str() != "DELETE_COMPLETE")
        })
        .filter_map(|s| s.stack_name().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The environment's stack status.
async fn status(cfn: &aws_sdk_cloudformation::Client) -> String {
    let described = cfn
        .describe_stacks()
        .stack_name(STACK)
        .send()
        .await
        .unwrap();
    described.stacks()[0]
        .stack_status()
        .unwrap()
        .as_str()
        .to_owned()
}

/// The stack's change sets that were never executed. (The emulator keeps executed change
/// sets listed, where CloudFormation removes a stack's change sets once one is executed.)
async fn unexecuted_change_sets(cfn: &aws_sdk_cloudformation::Client) -> Vec<String> {
    cfn.list_change_sets()
        .stack_name(STACK)
        .send()
        .await
        .unwrap()
        .summaries()
        .iter()
        .filter(|c| {
            c.execution_status()
                .is_none_or(|s| s.as_str() != "EXECUTE_COMPLETE")
        })
        .filter_map(|c| c.change_set_name().map(str::to_owned))
        .collect()
}

/// A change set as an interrupted deploy leaves it: made, never executed.
async fn leave_change_set(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
    kind: aws_sdk_cloudformation::types::ChangeSetType,
) {
    cfn.create_change_set()
        .stack_name(STACK)
        .change_set_name(name)
        .change_set_type(kind)
        .template_body(
            "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: left-behind\n",
        )
        .send()
        .await
        .unwrap();
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_deploys_are_reported_and_cleaned_up() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let dir = scratch("interruptions");
    let artifact = fake_artifact(&dir);
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "--env",
            "local",
            "--artifact",
            artifact.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        xtask(&emulator, &args)
    };

    // A deploy to a region never bootstrapped, with no terminal and no --yes, makes nothing and
    // names the fix.
    let refused = deploy(&[]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a missing --yes is a usage mistake"
    );
    let message = stderr(&refused);
    assert!(
        message.contains("region us-east-1 is not bootstrapped")
            && message.contains("cargo xtask bootstrap --region us-east-1")
            && message.contains("pass --yes"),
        "{message}"
    );
    assert!(stack_names(&cfn).await.is_empty(), "nothing was made");

    // Once bootstrapped, a first deploy stopped at its confirmation names what it made.
    let bootstrapped = xtask(&emulator, &["bootstrap", "--region", "us-east-1", "--yes"]);
    assert!(bootstrapped.status.success(), "{}", stderr(&bootstrapped));
    let stopped = deploy(&[]);
    assert_eq!(stopped.status.code(), Some(2));
    let message = stderr(&stopped);
    assert!(
        message.contains(&format!(
            "stack {STACK} was not changed, but this deploy uploaded s3://"
        )) && message.contains("which stays for the next deploy to reuse")
            && message.contains("pass --yes to proceed"),
        "{message}"
    );
    assert!(!message.contains("bootstrapped the region"), "{message}");
    assert_eq!(stack_names(&cfn).await, vec![BOOTSTRAP.to_owned()]);

    // Destroy finds no stack of the environment, and leaves the bootstrap stack, saying so.
    let destroyed = xtask(&emulator, &["destroy", "--env", "local", "--yes"]);
    let message = stderr(&destroyed);
    assert!(destroyed.status.success(), "{message}");
    assert!(
        message.contains("keeping the bootstrap stack smartvault-bootstrap"),
        "{message}"
    );
    assert_eq!(stack_names(&cfn).await, vec![BOOTSTRAP.to_owned()]);

    // A stack left REVIEW_IN_PROGRESS by a deploy interrupted after its change set was made.
    leave_change_set(
        &cfn,
        "smartvault-1764118800",
        aws_sdk_cloudformation::types::ChangeSetType::Create,
    )
    .await;
    assert_eq!(status(&cfn).await, "REVIEW_IN_PROGRESS");
    let created = deploy(&["--yes"]);
    let message = stderr(&created);
    assert!(created.status.success(), "{message}");
    assert!(
        message.contains("removing change set smartvault-1764118800")
            && message.contains("left unexecuted by an interrupted deploy"),
        "{message}"
    );
    assert_eq!(status(&cfn).await, "CREATE_COMPLETE");

    // A change set left AVAILABLE by an interrupted update is removed by the next deploy;
    // another tool's change set is left alone.
    let update = aws_sdk_cloudformation::types::ChangeSetType::Update;
    leave_change_set(&cfn, "smartvault-1764118900", update.clone()).await;
    leave_change_set(&cfn, "someone-elses-review", update).await;
    let redeployed = deploy(&["--yes"]);
    let message = stderr(&redeployed);
    assert!(redeployed.status.success(), "{message}");
    assert!(
        message.contains("removing change set smartvault-1764118900"),
        "{message}"
    );
    assert_eq!(
        unexecuted_change_sets(&cfn).await,
        vec!["someone-elses-review".to_owned()]
    );
}
