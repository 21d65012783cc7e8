//! `cargo xtask logs`: the function's log events, as readable lines (the same formatter as
//! `invoke --local`) or raw, for a time window, one request, or followed as they come.

use super::EnvArgs;
use crate::aws::logs::{self, Event, Window};
use crate::aws::{Connection, with_aws};
use crate::output::Output;
use crate::user_error::UserError;
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
pub fn since(text: &str, now: time::OffsetDateTime) -> Result<i64, UserError> {
    let bad = || {
        UserError(format!(
            "--since {text:?} is neither a duration such as 30m, 1h or 2d nor an RFC 3339 time \
             such as 2026-11-27T01:00:00Z"
        ))
    };
    let too_far = || {
        UserError(format!(
            "--since {text:?} reaches back more than {MAX_SINCE_DAYS} days, further than \
             CloudWatch Logs keeps events (its longest retention is ten years); give at most \
             {MAX_SINCE_DAYS}d or a time since {}",
            function::tags::format_time(now - time::Duration::days(MAX_SINCE_DAYS))
        ))
    };
    let start = if let Ok(at) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        if at > now {
            return Err(UserError(format!(
                "--since {text:?} is in the future (now is {}); give a time before now",
                function::tags::format_time(now)
            )));
        }
        at
    } else {
        let unit = text.chars().last().ok_or_else(bad)?;
        let digits = &text[..text.len() - unit.len_utf8()];
        // Digits only: `+1h` and `-1h` are refused, not read by `i64`'s parser.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let count: i64 = digits.parse().map_err(|_| too_far())?;
        let seconds_per = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        let seconds = count
            .checked_mul(seconds_per)
            .filter(|s| *s <= MAX_SINCE_DAYS * 86_400)
            .ok_or_else(too_far)?;
        now - time::Duration::seconds(seconds)
    };
    if start < now - time::Duration::days(MAX_SINCE_DAYS) {
        return Err(too_far());
    }
    Ok((start.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The furthest `--since` reaches back: CloudWatch Logs' longest retention, ten years.
const MAX_SINCE_DAYS: i64 = 3653;

/// Checks `--request`: a request id as the log shows it (Lambda's are UUIDs such as
/// 8f5a3d4e-2b1c-4f7e-9a6d-0c1b2a3d4e5f): letters, digits and hyphens, never empty or quoted.
pub fn request_id(text: &str) -> Result<&str, UserError> {
    let id_like = (1..=64).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if id_like {
        Ok(text)
    } else {
        Err(UserError(format!(
            "--request {text:?} is not a Lambda request id; give the id of one invocation as \
             the log shows it, e.g. 8f5a3d4e-2b1c-4f7e-9a6d-0c1b2a3d4e5f, without quotes"
        )))
    }
}

impl LogsCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load_stack("logs")?;
        let start_ms = since(&self.since, time::OffsetDateTime::now_utc())?;
        if let Some(request) = &self.request {
            request_id(request)?;
        }
        let group = crate::workflows::destroy::log_group(&env.stack_name);
        let output = self.output;
        let show = move |event: &Event| {
            let line = match output {
                Output::Json => serde_json::to_string(event).unwrap_or_default(),
                Output::Text => format!(
                    "{} {}",
                    time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(event.timestamp) * 1_000_000
                    )
                    .map(function::tags::format_time)
                    .unwrap_or_default(),
                    crate::build::local_runtime::readable(&event.message).trim_start()
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
                // On stderr, so that `--output json` stays one event per line on stdout.
                eprintln!(
                    "following {group} since {} (new events every {} s); Ctrl-C to stop",
                    self.since,
                    logs::FOLLOW_EVERY.as_secs()
                );
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
        for bad in ["", "1w", "h", "-1h", "+1h", "0m", "yesterday", " 1h"] {
            let error = since(bad, now).unwrap_err().to_string();
            assert!(error.contains("such as 30m, 1h or 2d"), "{bad}: {error}");
        }
        // Far past CloudWatch Logs' retention: refused, never a panic or a year before zero.
        for far in [
            "99999999d",
            "106751d",
            "99999999999999999999d",
            "3654d",
            "1990-01-01T00:00:00Z",
        ] {
            let error = since(far, now).unwrap_err().to_string();
            assert!(error.contains("more than 3653 days"), "{far}: {error}");
        }
        assert!(since("3653d", now).is_ok());
        let future = since("2027-01-01T00:00:00Z", now).unwrap_err().to_string();
        assert!(future.contains("in the future"), "{future}");
    }

    #[test]
    fn a_request_id_is_an_id_as_the_log_shows_it() {
        let id = "8f5a3d4e-2b1c-4f7e-9a6d-0c1b2a3d4e5f";
        assert_eq!(request_id(id).unwrap(), id);
        assert_eq!(request_id("req-a").unwrap(), "req-a");
        for bad in [
            "",
            "\"8f5a3d4e-2b1c-4f7e-9a6d-0c1b2a3d4e5f\"",
            "'abc'",
            " 8f5a3d4e-2b1c-4f7e-9a6d-0c1b2a3d4e5",
        ] {
            let error = request_id(bad).unwrap_err().to_string();
            assert!(
                error.contains("is not a Lambda request id"),
                "{bad}: {error}"
            );
        }
    }
}
