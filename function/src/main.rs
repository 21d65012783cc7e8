//! The Lambda entry point: logging, configuration and clients once at cold start, then events.

use function::config::Config;
use function::handler::{self, Context, FunctionError};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL and AWS_LAMBDA_LOG_FORMAT=JSON.
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(|error| {
        tracing::error!(variable = error.variable, "invalid configuration: {error}");
    })?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(handler::retry_config())
        .load()
        .await;
    let ctx = Context::new(&sdk, config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let ctx = &ctx;
        async move {
            let now = time::OffsetDateTime::now_utc();
            let report = handler::handle(ctx, &event.payload, now).await?;
            serde_json::to_value(&report).map_err(|e| FunctionError::RunFailed(e.to_string()))
        }
    }))
    .await
}
