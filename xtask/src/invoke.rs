//! `cargo xtask invoke`: runs the deployed function once and shows its result and log tail.

use crate::aws::{Aws, sdk_error};
use crate::config::Environment;
use anyhow::{Context, Result};
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine as _;
use std::path::Path;

/// The seed's console test event: back up, then clean up.
pub const DEFAULT_EVENT: &str = r#"{"action": "manual-trigger"}"#;

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

/// The event to send: the file's JSON, or the default, with `dry_run` added when asked.
pub fn event(file: Option<&Path>, dry_run: bool) -> Result<serde_json::Value> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("failed to read `{}`", path.display()))?,
        None => DEFAULT_EVENT.to_owned(),
    };
    let mut event: serde_json::Value =
        serde_json::from_str(&text).context("the event is not JSON")?;
    if dry_run {
        let object = event
            .as_object_mut()
            .context("--dry-run needs an event that is a JSON object")?;
        object.insert("dry_run".into(), serde_json::Value::Bool(true));
    }
    Ok(event)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_event_is_the_seed_test_event_and_dry_run_is_added() {
        assert_eq!(
            event(None, false).unwrap(),
            serde_json::json!({"action": "manual-trigger"})
        );
        assert_eq!(
            event(None, true).unwrap(),
            serde_json::json!({"action": "manual-trigger", "dry_run": true})
        );
    }
}
