//! What an AWS SDK error becomes in a run's summary: a failure with AWS's error code and
//! message, or the kind of error when AWS sent none (a timeout, a lost connection).

use crate::plan::Subject;
use crate::report::Failure;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Turns an SDK error into a reported failure with the AWS error code and message.
pub fn failure<E, R>(subject: Option<Subject>, operation: &str, error: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = match error.code() {
        Some(code) => (
            code.to_owned(),
            error.message().unwrap_or_default().to_owned(),
        ),
        // Timeouts, connection and response errors have no AWS code: name the kind instead.
        None => (
            match error {
                SdkError::TimeoutError(_) => "Timeout",
                SdkError::DispatchFailure(_) => "DispatchFailure",
                SdkError::ResponseError(_) => "ResponseError",
                SdkError::ConstructionFailure(_) => "ConstructionFailure",
                _ => "Unknown",
            }
            .to_owned(),
            DisplayErrorContext(error).to_string(),
        ),
    };
    Failure {
        subject,
        operation: operation.to_owned(),
        code,
        message,
    }
}
