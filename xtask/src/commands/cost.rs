//! `cargo xtask cost`: what each instance's backups store and cost a month, from the changed
//! blocks the tripwire records on every set; what deleting each set frees; and what other
//! retention values would store.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use crate::user_error::UserError;
use anyhow::Result;
use function::cost::{self, Estimate, WhatIf};
use function::tags::format_time;
use std::process::ExitCode;
use time::OffsetDateTime;

/// Show the bytes each instance's sets store, their monthly price, what deleting each set frees
/// and a what-if for other retention values.
#[derive(Debug, clap::Args)]
pub struct CostCmd {
    #[command(flatten)]
    env: EnvArgs,
    /// The price per GB-month (default: the standard tier's US East list price, $0.05; see
    /// https://aws.amazon.com/ebs/pricing/ for the environment's region).
    #[arg(long, default_value_t = cost::STANDARD_PRICE_PER_GB_MONTH)]
    price_per_gb: f64,
    /// What if every schedule kept its sets this many days.
    #[arg(long)]
    retention_days: Option<u32>,
    /// What if every schedule kept at least this many newest sets per volume.
    #[arg(long)]
    keep_last: Option<u32>,
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// What the command prints with `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct CostReport {
    pub environment: String,
    pub stack: String,
    pub region: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Where the default price comes from.
    pub price_source: &'static str,
    pub estimate: Estimate,
    /// The steady state of each instance's schedule under its own retention.
    pub current: Vec<WhatIf>,
    /// ...and under --retention-days/--keep-last (empty without them).
    pub what_if: Vec<WhatIf>,
}

impl CostCmd {
    pub fn run(self) -> Result<ExitCode> {
        if !(self.price_per_gb.is_finite() && self.price_per_gb >= 0.0) {
            return Err(UserError(format!(
                "--price-per-gb {} is not a price: give US dollars per GB-month, e.g. 0.05",
                self.price_per_gb
            ))
            .into());
        }
        let range = function::settings::RETENTION_DAYS.range;
        if let Some(days) = self.retention_days
            && !range.contains(&days)
        {
            return Err(UserError(format!(
                "--retention-days {days} is not {} to {} (what a schedule's retention_days \
                 accepts)",
                range.start(),
                range.end()
            ))
            .into());
        }
        let env = self.env.load_stack("cost")?;
        let at = OffsetDateTime::now_utc();
        let (estimate, current, what_if) =
            with_aws(&self.connection, &env.region, &env.access, async |aws| {
                aws.check_account(env.account_id.as_deref()).await?;
                crate::workflows::cost::assess(
                    aws,
                    &env,
                    self.price_per_gb,
                    self.retention_days,
                    self.keep_last,
                    at,
                )
                .await
            })?;
        let report = CostReport {
            environment: env.name.clone(),
            stack: env.stack_name.clone(),
            region: env.region,
            at,
            price_source: cost::PRICE_SOURCE,
            estimate,
            current,
            what_if,
        };
        self.output.result(&report, |r| print!("{}", text(r)))?;
        Ok(ExitCode::SUCCESS)
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

fn text(report: &CostReport) -> String {
    let e = &report.estimate;
    let mut out = format!(
        "{} ({}, {}): {:.2} GiB stored{}, ${:.2} a month at ${} per GB-month{}\n",
        report.environment,
        report.stack,
        report.region,
        gib(e.bytes),
        if e.archived_bytes > 0 {
            format!(
                " and {:.2} GiB in the archive tier (at ${} per GB-month)",
                gib(e.archived_bytes),
                e.price_per_gb_month * function::cost::ARCHIVE_SHARE
            )
        } else {
            String::new()
        },
        e.monthly_usd,
        e.price_per_gb_month,
        if e.exact {
            String::new()
        } else {
            format!(
                " (at least: {} snapshots not measured yet, or measured against a set no longer \
                 kept)",
                e.unmeasured
            )
        }
    );
    for instance in &e.instances {
        out.push_str(&format!(
            "  {} {}: {} volumes, {} sets, {} bytes ({:.2} GiB){}, ${:.2} a month{}\n",
            instance.instance_id,
            instance.schedule,
            instance.volumes,
            instance.sets.len(),
            instance.bytes,
            gib(instance.bytes),
            if instance.archived_bytes > 0 {
                format!(", {:.2} GiB archived", gib(instance.archived_bytes))
            } else {
                String::new()
            },
            instance.monthly_usd,
            if instance.exact { "" } else { " (at least)" }
        ));
        for set in &instance.sets {
            out.push_str(&format!(
                "    set {}: adds {:.2} GiB; deleting it frees at most {:.2} GiB{}\n",
                format_time(set.made_at),
                gib(set.bytes),
                gib(set.frees_up_to),
                set.expires_at
                    .map(|at| format!(", expires {}", format_time(at)))
                    .unwrap_or_default()
            ));
        }
    }
    let rows = |title: &str, rows: &[WhatIf], out: &mut String| {
        if rows.is_empty() {
            return;
        }
        out.push_str(title);
        for row in rows {
            out.push_str(&format!(
                "  {} {}: retention_days {}, keep_last {}: {} sets per volume, {:.2} GiB, \
                 ${:.2} a month\n",
                row.instance_id,
                row.schedule,
                row.retention_days,
                row.keep_last,
                row.sets_kept,
                gib(row.bytes),
                row.monthly_usd
            ));
        }
    };
    rows(
        "Steady state under each schedule's own retention (data plus an average change per kept set):\n",
        &report.current,
        &mut out,
    );
    rows("What if:\n", &report.what_if, &mut out);
    out.push_str(&format!("Price: {}\n", report.price_source));
    out
}
