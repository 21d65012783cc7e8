//! What `cargo xtask cost` reads: this deployment's snapshots and the tripwire's records on
//! them, judged by the function's own cost estimate (`function::cost`).

use crate::aws::Aws;
use crate::config::Environment;
use anyhow::Result;
use function::cost::{self, Estimate, WhatIf};
use time::OffsetDateTime;

/// What the environment's kept sets store at `price_per_gb_month`, and the steady state of each
/// instance's schedules under its own retention and under `retention_days`/`keep_last`.
pub async fn assess(
    aws: &Aws,
    env: &Environment,
    price_per_gb_month: f64,
    retention_days: Option<u32>,
    keep_last: Option<u32>,
    now: OffsetDateTime,
) -> Result<(Estimate, Vec<WhatIf>, Vec<WhatIf>)> {
    let policy = env.policy()?;
    let snapshots = crate::aws::snapshots::managed(aws, &env.stack_name).await?;
    let estimate = cost::estimate(&snapshots, &env.stack_name, price_per_gb_month, now);
    let current = cost::what_if(&snapshots, &policy, None, None, price_per_gb_month, now);
    let other = if retention_days.is_some() || keep_last.is_some() {
        cost::what_if(
            &snapshots,
            &policy,
            retention_days,
            keep_last,
            price_per_gb_month,
            now,
        )
    } else {
        Vec::new()
    };
    Ok((estimate, current, other))
}
