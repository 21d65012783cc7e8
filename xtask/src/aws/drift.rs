//! CloudFormation drift detection on an environment's stack: start it, wait for it, and list
//! the resources changed outside CloudFormation with their property differences.

use crate::aws::sdk_error;
use anyhow::{Context, Result, bail};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackResourceDriftStatus};
use std::time::Duration;

/// One property that differs from the template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// e.g. `/State`, `/Environment/Variables/DRY_RUN`.
    pub path: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
    /// `ADD`, `REMOVE` or `NOT_EQUAL`.
    pub kind: String,
}

/// One resource that drifted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DriftedResource {
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    /// `MODIFIED` or `DELETED`.
    pub status: String,
    pub differences: Vec<Difference>,
}

/// What drift detection found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    pub stack: String,
    /// `IN_SYNC`, `DRIFTED`, or `UNKNOWN` when detection could not finish.
    pub status: String,
    /// Why detection could not finish, or which resources it could not check.
    pub reason: Option<String>,
    pub drifted: Vec<DriftedResource>,
}

impl Drift {
    /// Whether anything differs from the template, or detection could not tell.
    pub fn is_clean(&self) -> bool {
        self.status == "IN_SYNC" && self.drifted.is_empty()
    }
}

/// How long detection may take before the command gives up waiting.
pub const WAIT: Duration = Duration::from_secs(600);

/// Detects drift on `stack`, polling every `poll` until CloudFormation has an answer.
pub async fn detect(cloudformation: &Client, stack: &str, poll: Duration) -> Result<Drift> {
    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
    let started = match cloudformation
        .detect_stack_drift()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(started) => started,
        Err(error) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            let message = error.message().unwrap_or_default().to_owned();
            if error.code() == Some("ValidationError") && message.contains("does not exist") {
                anyhow::bail!(crate::user_error::UserError(format!(
                    "stack {stack} does not exist in this region; deploy it first (cargo xtask \
                     deploy), or check --env and --region"
                )));
            }
            if status.is_some_and(|s| s >= 500) && error.code().is_none() {
                anyhow::bail!(
                    "the endpoint answered DetectStackDrift with HTTP {} and no AWS error: it \
                     does not implement drift detection (the local emulator does not); run \
                     drift against AWS",
                    status.unwrap_or_default()
                );
            }
            return Err(sdk_error(error))
                .with_context(|| format!("failed to start drift detection on stack {stack}"));
        }
    };
    let id = started
        .stack_drift_detection_id()
        .unwrap_or_default()
        .to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        let status = cloudformation
            .describe_stack_drift_detection_status()
            .stack_drift_detection_id(&id)
            .send()
            .await
            .map_err(sdk_error)
            .context("failed to read the drift detection's status")?;
        if status.detection_status() != Some(&StackDriftDetectionStatus::DetectionInProgress) {
            break status;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "drift detection {id} on {stack} did not finish within {} s; see it in the \
                 CloudFormation console",
                WAIT.as_secs()
            );
        }
        tokio::time::sleep(poll).await;
    };
    let failed = status.detection_status() == Some(&StackDriftDetectionStatus::DetectionFailed);
    let mut drifted = Vec::new();
    let mut pages = cloudformation
        .describe_stack_resource_drifts()
        .stack_name(stack)
        .stack_resource_drift_status_filters(StackResourceDriftStatus::Modified)
        .stack_resource_drift_status_filters(StackResourceDriftStatus::Deleted)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .context("failed to read the drifted resources")?;
        for drift in page.stack_resource_drifts() {
            drifted.push(DriftedResource {
                logical_id: drift.logical_resource_id().unwrap_or_default().to_owned(),
                physical_id: drift.physical_resource_id().map(str::to_owned),
                resource_type: drift.resource_type().unwrap_or_default().to_owned(),
                status: drift
                    .stack_resource_drift_status()
                    .map_or("UNKNOWN", |s| s.as_str())
                    .to_owned(),
                differences: drift
                    .property_differences()
                    .iter()
                    .map(|d| Difference {
                        path: d.property_path().unwrap_or_default().to_owned(),
                        expected: d.expected_value().map(str::to_owned),
                        actual: d.actual_value().map(str::to_owned),
                        kind: d.difference_type().map_or("", |k| k.as_str()).to_owned(),
                    })
                    .collect(),
            });
        }
    }
    drifted.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    Ok(Drift {
        stack: stack.to_owned(),
        status: match status.stack_drift_status() {
            Some(s) if !failed => s.as_str().to_owned(),
            _ if !drifted.is_empty() => "DRIFTED".to_owned(),
            _ => "UNKNOWN".to_owned(),
        },
        reason: status.detection_status_reason().map(str::to_owned),
        drifted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stack_drift_detection_status::DescribeStackDriftDetectionStatusOutput;
    use aws_sdk_cloudformation::operation::describe_stack_resource_drifts::DescribeStackResourceDriftsOutput;
    use aws_sdk_cloudformation::operation::detect_stack_drift::DetectStackDriftOutput;
    use aws_sdk_cloudformation::types::{
        DifferenceType, PropertyDifference, StackDriftStatus, StackResourceDrift,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    fn started() -> aws_smithy_mocks::Rule {
        mock!(Client::detect_stack_drift).then_output(|| {
            DetectStackDriftOutput::builder()
                .stack_drift_detection_id("d-1")
                .build()
        })
    }

    /// In progress twice, then `outcome`.
    fn status(
        outcome: StackDriftDetectionStatus,
        drift: Option<StackDriftStatus>,
        reason: Option<&'static str>,
    ) -> (aws_smithy_mocks::Rule, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let rule = mock!(Client::describe_stack_drift_detection_status).then_compute_output(
            move |request| {
                assert_eq!(request.stack_drift_detection_id(), Some("d-1"));
                let call = counted.fetch_add(1, Ordering::SeqCst);
                let now = aws_smithy_types::DateTime::from_secs(1_795_000_000);
                let builder = DescribeStackDriftDetectionStatusOutput::builder()
                    .stack_id("arn:aws:cloudformation:eu-west-1:1:stack/smartvault-prod/x")
                    .stack_drift_detection_id("d-1")
                    .timestamp(now);
                let builder = if call < 2 {
                    builder.detection_status(StackDriftDetectionStatus::DetectionInProgress)
                } else {
                    builder
                        .detection_status(outcome.clone())
                        .set_stack_drift_status(drift.clone())
                        .set_detection_status_reason(reason.map(str::to_owned))
                };
                builder.build()
            },
        );
        (rule, calls)
    }

    fn drifts(found: Vec<StackResourceDrift>) -> (aws_smithy_mocks::Rule, Arc<Mutex<Vec<String>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&asked);
        let rule = mock!(Client::describe_stack_resource_drifts).then_compute_output(move |r| {
            let mut record = record.lock().unwrap();
            for filter in r.stack_resource_drift_status_filters() {
                record.push(filter.as_str().to_owned());
            }
            DescribeStackResourceDriftsOutput::builder()
                .set_stack_resource_drifts(Some(found.clone()))
                .build()
        });
        (rule, asked)
    }

    fn drifted_schedule() -> StackResourceDrift {
        let now = aws_smithy_types::DateTime::from_secs(1_795_000_000);
        StackResourceDrift::builder()
            .stack_id("s")
            .logical_resource_id("Schedule1")
            .physical_resource_id("smartvault-prod-daily")
            .resource_type("AWS::Scheduler::Schedule")
            .stack_resource_drift_status(StackResourceDriftStatus::Modified)
            .timestamp(now)
            .property_differences(
                PropertyDifference::builder()
                    .property_path("/State")
                    .expected_value("ENABLED")
                    .actual_value("DISABLED")
                    .difference_type(DifferenceType::NotEqual)
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_schedule_disabled_by_hand_is_found_with_its_property() {
        let start = started();
        let (poll, calls) = status(
            StackDriftDetectionStatus::DetectionComplete,
            Some(StackDriftStatus::Drifted),
            None,
        );
        let (list, asked) = drifts(vec![drifted_schedule()]);
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&start, &poll, &list]
        );
        let drift = detect(&client, "smartvault-prod", Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "polled until complete");
        assert_eq!(*asked.lock().unwrap(), ["MODIFIED", "DELETED"]);
        assert_eq!(drift.status, "DRIFTED");
        assert!(!drift.is_clean());
        assert_eq!(
            drift.drifted,
            [DriftedResource {
                logical_id: "Schedule1".into(),
                physical_id: Some("smartvault-prod-daily".into()),
                resource_type: "AWS::Scheduler::Schedule".into(),
                status: "MODIFIED".into(),
                differences: vec![Difference {
                    path: "/State".into(),
                    expected: Some("ENABLED".into()),
                    actual: Some("DISABLED".into()),
                    kind: "NOT_EQUAL".into(),
                }],
            }]
        );
    }

    #[tokio::test]
    async fn a_stack_in_sync_is_clean_and_a_failed_detection_is_not() {
        let start = started();
        let (poll, _) = status(
            StackDriftDetectionStatus::DetectionComplete,
            Some(StackDriftStatus::InSync),
            None,
        );
        let (list, _) = drifts(Vec::new());
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&start, &poll, &list]
        );
        let drift = detect(&client, "smartvault-prod", Duration::from_millis(1))
            .await
            .unwrap();
        assert!(drift.is_clean(), "{drift:?}");

        let start = started();
        let (poll, _) = status(
            StackDriftDetectionStatus::DetectionFailed,
            None,
            Some("Failed to detect drift on resource [Schedule1]: access denied"),
        );
        let (list, _) = drifts(Vec::new());
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&start, &poll, &list]
        );
        let drift = detect(&client, "smartvault-prod", Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(drift.status, "UNKNOWN");
        assert!(!drift.is_clean(), "an unfinished detection proves nothing");
        assert!(drift.reason.unwrap().contains("access denied"));
    }

    #[tokio::test]
    async fn a_missing_stack_or_an_endpoint_without_drift_detection_is_named() {
        let http = |status: u16, body: &'static str| {
            mock!(Client::detect_stack_drift).then_http_response(move || {
                aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
                    aws_smithy_types::body::SdkBody::from(body),
                )
            })
        };
        let missing = http(
            400,
            "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack \
             with id smartvault-nope does not exist</Message></Error></ErrorResponse>",
        );
        let client = mock_client!(aws_sdk_cloudformation, [&missing]);
        let error = detect(&client, "smartvault-nope", Duration::from_millis(1))
            .await
            .unwrap_err();
        assert!(
            error
                .downcast_ref::<crate::user_error::UserError>()
                .is_some(),
            "exit 2: {error:#}"
        );
        assert!(
            format!("{error:#}").contains("stack smartvault-nope does not exist in this region"),
            "{error:#}"
        );
        // The emulator answers an unimplemented action with an HTML page and HTTP 500.
        let unimplemented = http(
            500,
            "<!doctype html><title>500 Internal Server Error</title>",
        );
        let client = mock_client!(aws_sdk_cloudformation, [&unimplemented]);
        let error = detect(&client, "smartvault-local", Duration::from_millis(1))
            .await
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("does not implement drift detection") && !text.contains("<!doctype"),
            "{text}"
        );
    }
}
