//! The function's log group: its events, a window of them or new ones as they come
//! (FilterLogEvents, every page; following polls it), whether it exists, and its deletion.

use crate::aws::{Aws, sdk_error};
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;

/// One log event as CloudWatch Logs holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub log_stream: String,
    pub event_id: String,
    pub message: String,
}

/// Which events: from `start_ms` on, and only those containing `term` when given.
#[derive(Debug, Clone)]
pub struct Window<'a> {
    pub group: &'a str,
    pub start_ms: i64,
    pub term: Option<&'a str>,
}

/// Every event of the window, oldest first.
pub async fn read(aws: &Aws, window: &Window<'_>) -> Result<Vec<Event>> {
    use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
    let mut request = aws
        .logs
        .filter_log_events()
        .log_group_name(window.group)
        .start_time(window.start_ms);
    if let Some(term) = window.term {
        // A quoted term matches it anywhere in the event, the request id of JSON application
        // lines and of the platform's START, END and REPORT records alike.
        request = request.filter_pattern(format!("\"{term}\""));
    }
    let mut pages = request.into_paginator().send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(error) if error.code() == Some("ResourceNotFoundException") => bail!(
                "the log group {} does not exist: the environment is not deployed in this \
                 region, or its function never ran",
                window.group
            ),
            Err(error) => {
                return Err(sdk_error(error))
                    .with_context(|| format!("failed to read the log group {}", window.group));
            }
        };
        for event in page.events() {
            events.push(Event {
                timestamp: event.timestamp().unwrap_or_default(),
                log_stream: event.log_stream_name().unwrap_or_default().to_owned(),
                event_id: event.event_id().unwrap_or_default().to_owned(),
                message: event.message().unwrap_or_default().trim_end().to_owned(),
            });
        }
    }
    events.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
    Ok(events)
}

/// How often following looks for new events.
pub const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Calls `show` with every event of the window and then with each new one, every
/// `FOLLOW_EVERY`, until the process is stopped (Ctrl-C). An event is shown once, however
/// often the overlapping windows return it.
pub async fn follow(aws: &Aws, window: Window<'_>, mut show: impl FnMut(&Event)) -> Result<()> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut start_ms = window.start_ms;
    loop {
        let events = read(
            aws,
            &Window {
                start_ms,
                ..window.clone()
            },
        )
        .await?;
        for event in &events {
            if seen.insert(event.event_id.clone()) {
                show(event);
            }
        }
        // CloudWatch Logs may still add events a little older than the newest seen: look
        // again from a minute before it, and let the ids keep each event to one showing.
        if let Some(newest) = events.last() {
            start_ms = start_ms.max(newest.timestamp - 60_000);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Whether the log group named exactly `name` exists.
pub async fn group_exists(aws: &Aws, name: &str) -> Result<bool> {
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(sdk_error)
        .context("failed to look for the function's log group")?;
    Ok(groups
        .log_groups()
        .iter()
        .any(|g| g.log_group_name() == Some(name)))
}

/// Deletes the log group `name`: `true` when deleted, `false` when there was none.
pub async fn delete_group(aws: &Aws, name: &str) -> Result<bool> {
    use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
    match aws
        .logs
        .delete_log_group()
        .log_group_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if error.code() == Some("ResourceNotFoundException") => Ok(false),
        Err(error) => {
            Err(sdk_error(error)).with_context(|| format!("failed to delete log group {name}"))
        }
    }
}
