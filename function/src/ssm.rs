//! Systems Manager's Run Command, the three calls consistent snapshots need (`SendCommand`,
//! `ListCommandInvocations`, `DescribeInstanceInformation`), as signed JSON requests through
//! `signed.rs` (an SSM client would cost the zip its size; docs/function.md, "Zip size").

use crate::consistency::{MAX_INSTANCES_PER_COMMAND, Stage};
use crate::signed::{self, Call, CallError};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `ListCommandInvocations` and `DescribeInstanceInformation` take at most this many results
/// a page (their `MaxResults`, service model).
const PAGE: usize = 50;

async fn call(
    sdk: &aws_config::SdkConfig,
    operation: &'static str,
    body: &Value,
) -> Result<Value, CallError> {
    let target = format!("AmazonSSM.{operation}");
    let answer = signed::send(
        sdk,
        Call {
            service: "ssm",
            operation,
            endpoint: None,
            method: "POST",
            path: "/".to_owned(),
            headers: &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", &target),
            ],
            body: body.to_string().into_bytes(),
        },
    )
    .await?;
    Ok(serde_json::from_slice(&answer).unwrap_or_default())
}

/// Of `instance_ids`, those Systems Manager manages and can reach now (ping status `Online`),
/// with their platform (`Linux`, `Windows`, `MacOS`).
pub async fn managed(
    sdk: &aws_config::SdkConfig,
    instance_ids: &[String],
) -> Result<BTreeMap<String, String>, CallError> {
    let mut found = BTreeMap::new();
    for chunk in instance_ids.chunks(MAX_INSTANCES_PER_COMMAND) {
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "Filters": [{"Key": "InstanceIds", "Values": chunk}],
                "MaxResults": PAGE,
            });
            if let Some(token) = &token {
                body["NextToken"] = json!(token);
            }
            let page = call(sdk, "DescribeInstanceInformation", &body).await?;
            for info in page["InstanceInformationList"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if info["PingStatus"] == "Online"
                    && let Some(id) = info["InstanceId"].as_str()
                {
                    found.insert(
                        id.to_owned(),
                        info["PlatformType"].as_str().unwrap_or_default().to_owned(),
                    );
                }
            }
            token = page["NextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(found)
}

/// One command to send.
pub struct Command<'a> {
    pub document: &'a str,
    pub instance_ids: &'a [String],
    pub parameters: Value,
    /// Shown in Systems Manager's console and listings (at most 100 characters).
    pub comment: String,
    pub timeout_seconds: u32,
}

/// Sends `command` and returns its id.
pub async fn send_command(
    sdk: &aws_config::SdkConfig,
    command: &Command<'_>,
) -> Result<String, CallError> {
    let body = json!({
        "DocumentName": command.document,
        "InstanceIds": command.instance_ids,
        "Parameters": command.parameters,
        "Comment": command.comment.chars().take(100).collect::<String>(),
        // How long Systems Manager tries to deliver it; at least 30 (service model).
        "TimeoutSeconds": command.timeout_seconds.max(30),
    });
    let answer = call(sdk, "SendCommand", &body).await?;
    answer["Command"]["CommandId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| CallError {
            code: "SmartVault.NoCommandId".into(),
            message: "SendCommand answered without a command id".into(),
            status: 200,
        })
}

/// Each instance's stage of command `command_id`, every page.
pub async fn invocations(
    sdk: &aws_config::SdkConfig,
    command_id: &str,
) -> Result<Vec<(String, Stage)>, CallError> {
    let mut stages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"CommandId": command_id, "MaxResults": PAGE});
        if let Some(token) = &token {
            body["NextToken"] = json!(token);
        }
        let page = call(sdk, "ListCommandInvocations", &body).await?;
        for invocation in page["CommandInvocations"].as_array().into_iter().flatten() {
            if let Some(id) = invocation["InstanceId"].as_str() {
                stages.push((
                    id.to_owned(),
                    Stage::of(
                        invocation["Status"].as_str().unwrap_or_default(),
                        invocation["StatusDetails"].as_str().unwrap_or_default(),
                    ),
                ));
            }
        }
        token = page["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            return Ok(stages);
        }
    }
}
