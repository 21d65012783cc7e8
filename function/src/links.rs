//! How a run goes on over several invocations: what an invocation leaves when its time is up,
//! and the next link started with it (an asynchronous invocation of this function).

use crate::context::Context;
use crate::event::{Link, Request};
use crate::report::{Failure, MAX_CARRIED, RunReport};
use time::OffsetDateTime;

/// What an invocation leaves when its time is up.
pub(crate) struct Left {
    /// EC2 calls not started.
    pub calls: usize,
    /// Calls this invocation carried out (made, deleted, skipped or failed).
    pub progress: usize,
    /// How long reading the inventory took.
    pub inventory_ms: u128,
}

/// Starts the next link of the run with what is left, returning its number; or says why the
/// run cannot go on (no way to invoke itself, the maximum of links reached, no progress in
/// this link, Invoke refused).
pub(crate) async fn hand_on(
    ctx: &Context,
    request: &Request,
    now: OffsetDateTime,
    report: &RunReport,
    left: &Left,
) -> Result<u32, Failure> {
    let carried = left.calls;
    let stop = |code: &str, message: String| Failure {
        subject: None,
        operation: "Continue".to_owned(),
        code: code.to_owned(),
        message,
    };
    let Some(chain) = &ctx.chain else {
        return Err(stop(
            "SmartVault.OutOfTime",
            format!(
                "{carried} calls were not started before the invocation's deadline, and this \
                 invocation cannot hand the run on; the next run backs them up"
            ),
        ));
    };
    if report.links >= ctx.config.max_links {
        return Err(stop(
            "SmartVault.MaxLinks",
            format!(
                "the run reached MAX_LINKS={} invocations with {carried} calls left; the next \
                 run goes on with them (raise MAX_LINKS, or the timeout, for a fleet this size)",
                ctx.config.max_links
            ),
        ));
    }
    if left.progress == 0 {
        // Handing on would only repeat this invocation: say what to change instead.
        return Err(stop(
            "SmartVault.NoProgress",
            format!(
                "this invocation started none of the {carried} calls left: reading the \
                 inventory took {} ms, leaving less than the safety margin before the \
                 deadline; raise the function's timeout",
                left.inventory_ms
            ),
        ));
    }
    let link = Link {
        run_started_at: now,
        number: report.links + 1,
        options: request.options.clone(),
        dry_run: request.dry_run,
        so_far: report.clone().bounded(MAX_CARRIED),
    };
    let payload = serde_json::to_vec(&link.event()).unwrap_or_default();
    // Lambda's Invoke, asynchronous, as a signed POST (`signed.rs`): the Lambda SDK client's
    // 180 KiB the zip cannot take for this one call.
    crate::signed::send(
        &ctx.sdk,
        crate::signed::Call {
            service: "lambda",
            operation: "Invoke",
            endpoint: chain.endpoint.as_deref(),
            method: "POST",
            path: format!(
                "/2015-03-31/functions/{}/invocations",
                crate::signed::encode(&chain.function_name)
            ),
            headers: &[
                ("X-Amz-Invocation-Type", "Event"),
                ("Content-Type", "application/json"),
            ],
            body: payload,
        },
    )
    .await
    .map_err(|error| {
        stop(
            &error.code,
            format!(
                "could not start link {} of the run ({carried} calls left): {error}",
                link.number
            ),
        )
    })?;
    Ok(link.number)
}
