//! The Lambda edge: the account's concurrency and a function's reservation (read before a
//! change), and a synchronous invocation with its log tail (`invoke`).

use crate::aws::{Aws, sdk_error};
use crate::config::Environment;
use crate::stack::limits::AccountConcurrency;
use anyhow::{Context, Result};
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine as _;

/// The account's concurrency quota and what is unreserved, in the client's region.
pub async fn account_concurrency(aws: &Aws) -> Result<AccountConcurrency> {
    let settings = aws
        .lambda
        .get_account_settings()
        .send()
        .await
        .map_err(sdk_error)
        .context("failed to read the account's Lambda settings (lambda:GetAccountSettings)")?;
    let limit = settings.account_limit();
    let count = |value: Option<i32>| value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    Ok(AccountConcurrency {
        limit: count(limit.map(|l| l.concurrent_executions())),
        unreserved: count(limit.and_then(|l| l.unreserved_concurrent_executions())),
    })
}

/// What `function` reserves today; `None` when it reserves nothing or does not exist yet.
pub async fn reservation(aws: &Aws, function: &str) -> Result<Option<u32>> {
    use aws_sdk_lambda::error::ProvideErrorMetadata;
    match aws
        .lambda
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
    {
        Ok(output) => Ok(output
            .reserved_concurrent_executions()
            .and_then(|v| u32::try_from(v).ok())),
        Err(error) if error.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(error) => Err(sdk_error(error))
            .with_context(|| format!("failed to read the reserved concurrency of {function}")),
    }
}

/// What the invocation returned, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Invocation {
    pub function: String,
    pub status_code: i32,
    /// Lambda's `FunctionError` (`Unhandled`) when the function failed.
    pub function_error: Option<String>,
    pub payload: serde_json::Value,
    pub log_tail: String,
}

/// Invokes the environment's function and waits for its answer and the tail of its log.
pub async fn invoke(aws: &Aws, env: &Environment, event: &serde_json::Value) -> Result<Invocation> {
    let output = aws
        .lambda
        .invoke()
        .function_name(&env.stack_name)
        .invocation_type(InvocationType::RequestResponse)
        .log_type(LogType::Tail)
        .payload(aws_sdk_lambda::primitives::Blob::new(serde_json::to_vec(
            event,
        )?))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!(
                "failed to invoke function {}; is it deployed (`cargo xtask status`)?",
                env.stack_name
            )
        })?;
    let payload = output
        .payload()
        .map(|p| {
            serde_json::from_slice(p.as_ref())
                .unwrap_or_else(|_| String::from_utf8_lossy(p.as_ref()).into())
        })
        .unwrap_or(serde_json::Value::Null);
    let log_tail = output
        .log_result()
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Ok(Invocation {
        function: env.stack_name.clone(),
        status_code: output.status_code(),
        function_error: output.function_error().map(str::to_owned),
        payload,
        log_tail,
    })
}
