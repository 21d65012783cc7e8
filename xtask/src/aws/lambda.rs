//! The Lambda edge the deployer reads before a change: the account's concurrency and a
//! function's reservation.

use crate::aws::{Aws, sdk_error};
use crate::stack::limits::AccountConcurrency;
use anyhow::{Context, Result};

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
