//! What an invocation needs, built once at cold start (the clients, the configuration, the
//! pacer, the way to hand a run on), and how an invocation ends in error.

use crate::config::Config;
use crate::event::EventError;
use crate::inventory;
use crate::pacing::Pacer;
use crate::report::RunReport;
use std::collections::BTreeMap;
use std::fmt;

/// The SDK retry settings for EC2 and SNS. EC2 throttles each action with a token bucket
/// (`RequestLimitExceeded`); ten attempts with jittered exponential backoff ride out a
/// throttling storm instead of failing the instance.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(std::time::Duration::from_millis(250))
        .with_max_backoff(std::time::Duration::from_secs(20))
}

/// How a run goes on in a new invocation of this function when one invocation's time runs out:
/// an asynchronous invocation of itself with a continuation event.
#[derive(Debug)]
pub struct Chain {
    /// Lambda's endpoint when not AWS's (`AWS_ENDPOINT_URL_LAMBDA`, as the SDK reads it).
    pub endpoint: Option<String>,
    /// This function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
}

/// What an invocation needs, built once at cold start.
#[derive(Debug)]
pub struct Context {
    pub ec2: aws_sdk_ec2::Client,
    pub sns: aws_sdk_sns::Client,
    pub config: Config,
    /// Page size of the describe calls; tests make it small to prove pagination.
    pub page_size: i32,
    /// How long to wait, after a `CreateSnapshots` got no answer, before looking for the
    /// snapshots it may have made (EC2's reads catch up with its writes within seconds).
    pub settle: std::time::Duration,
    /// The EC2 write buckets, shared by every invocation this instance serves.
    pub pacer: Pacer,
    /// How to hand a run on; without it (tests), a run that runs out of time fails what is left.
    pub chain: Option<Chain>,
    /// The function's region and a client for each copy region.
    pub regions: Regions,
    /// How often a restore test looks at its volumes while it waits for them.
    pub poll: std::time::Duration,
    /// A client in the region of the organization's central topic, when there is one: SNS's
    /// `Publish` reaches only topics in the client's own region.
    pub central_sns: Option<aws_sdk_sns::Client>,
    /// The SDK configuration the clients were made from (a vault's reader role is assumed
    /// with it).
    pub sdk: aws_config::SdkConfig,
}

impl Context {
    /// Writes to EC2 in the function's own region, paced and bounded by its settings.
    pub fn writes<'a>(
        &'a self,
        mode: crate::execute::Mode,
        deadline: Option<&'a crate::execute::Deadline>,
    ) -> crate::execute::Writes<'a> {
        crate::execute::Writes {
            ec2: &self.ec2,
            pacer: &self.pacer,
            deadline,
            limit: self.config.max_concurrency,
            mode,
            region: None,
        }
    }

    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        Context {
            ec2: aws_sdk_ec2::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            pacer: Pacer::new(config.ec2_bucket),
            chain: None,
            regions: Regions::new(sdk, &config.policy),
            central_sns: config
                .central_topic_arn
                .as_deref()
                .and_then(|arn| central_client(sdk, arn)),
            config,
            sdk: sdk.clone(),
            page_size: inventory::DEFAULT_PAGE_SIZE,
            settle: std::time::Duration::from_secs(2),
            poll: std::time::Duration::from_secs(2),
        }
    }
}

/// An EC2 client for each copy region, and the function's own region.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    pub home: String,
    pub clients: BTreeMap<String, aws_sdk_ec2::Client>,
}

impl Regions {
    /// A client per copy region of `policy`, from the function's own SDK configuration.
    pub fn new(sdk: &aws_config::SdkConfig, policy: &crate::model::Policy) -> Self {
        let home = sdk.region().map(ToString::to_string).unwrap_or_default();
        let clients = policy
            .copies
            .iter()
            .map(|rule| {
                let config = aws_sdk_ec2::config::Builder::from(sdk)
                    .region(aws_sdk_ec2::config::Region::new(rule.region.clone()))
                    .build();
                (rule.region.clone(), aws_sdk_ec2::Client::from_conf(config))
            })
            .collect();
        Regions { home, clients }
    }
}

/// The region and account of a topic ARN (`arn:aws:sns:<region>:<account>:<name>`); empty
/// where the ARN has no such field.
pub(crate) fn region_and_account(topic_arn: &str) -> (&str, &str) {
    let mut fields = topic_arn.split(':').skip(3);
    (
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    )
}

/// An SNS client in the region of `topic_arn`, from the function's own SDK configuration;
/// `None` when the ARN names no region.
pub fn central_client(sdk: &aws_config::SdkConfig, topic_arn: &str) -> Option<aws_sdk_sns::Client> {
    let region = Some(region_and_account(topic_arn).0).filter(|r| !r.is_empty())?;
    let config = aws_sdk_sns::config::Builder::from(sdk)
        .region(aws_sdk_sns::config::Region::new(region.to_owned()))
        .build();
    Some(aws_sdk_sns::Client::from_conf(config))
}

/// Why an invocation returned an error. The `error_type` is stable for alarms and scripts.
pub enum FunctionError {
    /// The event was refused before anything was done.
    InvalidEvent(EventError),
    /// Something failed; the summary was published first. Carries the whole report.
    RunFailed(Box<RunReport>),
    /// The summary could not be published.
    PublishFailed(String),
    /// The result could not be encoded.
    Internal(String),
}

impl FunctionError {
    pub fn error_type(&self) -> &'static str {
        match self {
            FunctionError::InvalidEvent(_) => "SmartVault.InvalidEvent",
            FunctionError::RunFailed(_) => "SmartVault.RunFailed",
            FunctionError::PublishFailed(_) => "SmartVault.PublishFailed",
            FunctionError::Internal(_) => "SmartVault.Internal",
        }
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FunctionError::InvalidEvent(e) => write!(f, "{e}"),
            FunctionError::RunFailed(report) => {
                let first: Vec<String> = report
                    .failed
                    .iter()
                    .take(3)
                    .map(ToString::to_string)
                    .collect();
                write!(
                    f,
                    "{} (summary published); first failures: {}",
                    report.subject(),
                    first.join("; ")
                )
            }
            FunctionError::PublishFailed(message) | FunctionError::Internal(message) => {
                f.write_str(message)
            }
        }
    }
}

/// The runtime logs a handler's error with `Debug`: the error type and the readable message,
/// never the whole report as a struct dump (its failures are in the message, its sets in the
/// summary).
impl fmt::Debug for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {self}", self.error_type())
    }
}

impl std::error::Error for FunctionError {}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(error: FunctionError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Job;
    use crate::report::Failure;

    #[test]
    fn an_error_is_logged_readable_not_as_a_struct_dump() {
        let mut report = RunReport::new(
            "prod",
            false,
            Job::Backup,
            "Backup=true".into(),
            time::macros::datetime!(2026-11-26 01:00 UTC),
        );
        report.failed.push(Failure {
            subject: None,
            operation: "CreateSnapshots".into(),
            code: "IncorrectState".into(),
            message: "not now".into(),
        });
        let logged = format!("{:?}", FunctionError::RunFailed(Box::new(report)));
        assert!(
            logged.starts_with("SmartVault.RunFailed: SmartVault [prod]"),
            "{logged}"
        );
        assert!(logged.contains("IncorrectState"), "{logged}");
        assert!(!logged.contains("RunReport {"), "{logged}");
    }

    #[test]
    fn error_types_are_stable() {
        let diagnostic: lambda_runtime::Diagnostic =
            FunctionError::PublishFailed("x".into()).into();
        assert_eq!(diagnostic.error_type, "SmartVault.PublishFailed");
        assert_eq!(diagnostic.error_message, "x");
    }
}
