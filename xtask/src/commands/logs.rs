//! `cargo xtask logs`: the function's log events, as readable lines (the same formatter as
//! `invoke --local`) or raw, for a time window, one request, or followed as they come.

use super::EnvArgs;
use crate::aws::{Connection, with_aws};
use crate::config::ConfigError;
use crate::lifecycle::logs::{self, Event, Window};
use crate::output::Output;
use anyhow::Result;
use std::io::Write as _;
use std::process::ExitCode;

/// Print the function's log events: since a time, for one request, or followed.
#[derive(Debug, clap::Args)]
pub struct LogsCmd {
    #[command(flatten)]
    env: EnvArgs,
    /// How far back: `30m`, `1h`, `2d`, or an RFC 3339 time.
    #[arg(long, default_value = "1h")]
    since: String,
    /// Keep printing new events until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Only the events of this invocation (its request id).
    #[arg(long)]
    request: Option<String>,
    #[command(flatten)]
    connection: Connection,
    /// `json` prints each raw event as one JSON line: timestamp, log_stream, event_id, message.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// The start of `--since`, in milliseconds since the epoch.
pub fn since(text: &str, now: time::OffsetDateTime) -> Result<i64, ConfigError> {
    let bad = || {
        ConfigError(format!(
            "--since {text:?} is neither a duration such as 30m, 1h or 2d nor an RFC 3339 time \
             such as 2026-11-27T01:00:00Z"
        ))
    };
    let start = if let Ok(at) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        at
    } else {
        let unit = text.chars().last().ok_or_else(bad)?;
        let count: i64 = text[..text.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| bad())?;
        let length = match unit {
            's' => time::Duration::seconds(count),
            'm' => time::Duration::minutes(count),
            'h' => time::Duration::hours(count),
            'd' => time::Duration::days(count),
            _ => return Err(bad()),
        };
        if count <= 0 {
            return Err(bad());
        }
        now - length
    };
    Ok((start.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl LogsCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load_stack("logs")?;
        let start_ms = since(&self.since, time::OffsetDateTime::now_utc())?;
        let group = crate::lifecycle::destroy::log_group(&env.stack_name);
        let output = self.output;
        let show = move |event: &Event| {
            let line = match output {
                Output::Json => serde_json::to_string(event).unwrap_or_default(),
                Output::Text => format!(
                    "{} {}",
                    time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(event.timestamp) * 1_000_000
                    )
                    .map(function::plan::format_time)
                    .unwrap_or_default(),
                    crate::local_runtime::readable(&event.message).trim_start()
                ),
            };
            // A closed pipe (`| head`) ends the output quietly.
            let _ = writeln!(std::io::stdout(), "{line}");
        };
        let window = Window {
            group: &group,
            start_ms,
            term: self.request.as_deref(),
        };
        with_aws(&self.connection, &env.region, &env.access, async |aws| {
            aws.check_account(env.account_id.as_deref()).await?;
            if self.follow {
                tokio::select! {
                    followed = logs::follow(aws, window.clone(), show) => followed,
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            } else {
                let events = logs::read(aws, &window).await?;
                if events.is_empty() && output == Output::Text {
                    eprintln!(
                        "no events in {group} since {}{}",
                        self.since,
                        self.request
                            .as_deref()
                            .map(|r| format!(" for request {r}"))
                            .unwrap_or_default()
                    );
                }
                events.iter().for_each(show);
                Ok(())
            }
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn since_takes_a_duration_or_a_time_and_names_the_fix() {
        let now = datetime!(2026-11-27 12:00 UTC);
        let ms = |at: time::OffsetDateTime| (at.unix_timestamp_nanos() / 1_000_000) as i64;
        assert_eq!(
            since("1h", now).unwrap(),
            ms(datetime!(2026-11-27 11:00 UTC))
        );
        assert_eq!(
            since("30m", now).unwrap(),
            ms(datetime!(2026-11-27 11:30 UTC))
        );
        assert_eq!(
            since("2d", now).unwrap(),
            ms(datetime!(2026-11-25 12:00 UTC))
        );
        assert_eq!(
            since("2026-11-27T01:00:00Z", now).unwrap(),
            ms(datetime!(2026-11-27 01:00 UTC))
        );
        for bad in ["", "1w", "h", "-1h", "0m", "yesterday"] {
            let error = since(bad, now).unwrap_err().to_string();
            assert!(error.contains("such as 30m, 1h or 2d"), "{bad}: {error}");
        }
    }
}
