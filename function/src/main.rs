//! The Lambda entry point: logging, configuration and clients once at cold start, then events.

use function::config::Config;
use function::context::{Chain, Context, FunctionError};
use function::event::Payload;
use function::handler;
use lambda_runtime::{LambdaEvent, service_fn};
use std::io::{Read, Write};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL and AWS_LAMBDA_LOG_FORMAT=JSON (one flat object per line).
    function::logging::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(variable = error.variable, "invalid configuration: {error}");
            report_init_error("SmartVault.InvalidConfiguration", &error.to_string());
            return Err(error.into());
        }
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(function::context::retry_config())
        .load()
        .await;
    let mut ctx = Context::new(&sdk, config);
    // A run that outlasts one invocation goes on in the next: this function invokes itself.
    ctx.chain = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .map(|function_name| Chain {
            endpoint: std::env::var("AWS_ENDPOINT_URL_LAMBDA")
                .ok()
                .filter(|url| !url.is_empty()),
            function_name,
        });
    lambda_runtime::run(service_fn(|event: LambdaEvent<Payload>| {
        let ctx = &ctx;
        async move {
            let now = time::OffsetDateTime::now_utc();
            let deadline = instant_of(event.context.deadline());
            let report = handler::handle_until(ctx, event.payload, now, Some(deadline)).await?;
            Ok::<_, FunctionError>(report.response())
        }
    }))
    .await
}

/// The monotonic instant of a wall-clock deadline.
fn instant_of(deadline: std::time::SystemTime) -> std::time::Instant {
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    std::time::Instant::now() + left
}

/// Tells Lambda why initialisation failed (`/runtime/init/error`), so the invocation's error
/// names the problem instead of a bare "Runtime.ExitError". Best effort: the process exits
/// with the error either way.
fn report_init_error(error_type: &str, message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: {error_type}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Ok(mut stream) = std::net::TcpStream::connect(&api) {
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let _ = stream.write_all(request.as_bytes());
        let _ = stream.read(&mut [0; 256]);
    }
}
