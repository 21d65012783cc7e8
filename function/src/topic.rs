//! The deployment's topic: where a run's summary goes (and the organization's central topic),
//! and the tags on it that remember runs: run marks, when each schedule was first seen, the
//! restore test's cursor.

use crate::context::{Context, FunctionError, region_and_account};
use crate::report::RunReport;
use crate::run_mark::{self, RunMark};
use time::OffsetDateTime;

/// SNS accepts messages up to 256 KiB; the body is cut below that, the log keeps it all.
const MAX_MESSAGE_BYTES: usize = 250 * 1024;

/// Publishes the run's summary to the topic.
pub(crate) async fn publish(ctx: &Context, report: &RunReport) -> Result<(), FunctionError> {
    let subject = report.subject();
    let published = ctx
        .sns
        .publish()
        .topic_arn(&ctx.config.sns_topic_arn)
        .subject(&subject)
        .message(truncate(report.body(), MAX_MESSAGE_BYTES))
        .send()
        .await;
    // The organization's inbox, whatever happened to the deployment's own topic.
    let central = publish_centrally(ctx, report).await;
    if let Err(error) = published {
        let failure = crate::sdk_errors::failure(None, "Publish", &error);
        return Err(FunctionError::PublishFailed(format!(
            "{subject}; and the summary could not be published to {}: {}: {}",
            ctx.config.sns_topic_arn, failure.code, failure.message
        )));
    }
    central
}

/// Publishes the summary to the organization's central topic too, when there is one, with
/// the account and region (read from the deployment's own topic ARN) in its subject.
pub(crate) async fn publish_centrally(
    ctx: &Context,
    report: &RunReport,
) -> Result<(), FunctionError> {
    let Some(central) = &ctx.config.central_topic_arn else {
        return Ok(());
    };
    let (region, account) = region_and_account(&ctx.config.sns_topic_arn);
    let subject = report.central_subject(account, region);
    // The central topic is usually in another region (the administrator's): publish through
    // a client of its own region, never the function's.
    let published = ctx
        .central_sns
        .as_ref()
        .unwrap_or(&ctx.sns)
        .publish()
        .topic_arn(central)
        .subject(&subject)
        .message(truncate(report.body(), MAX_MESSAGE_BYTES))
        .send()
        .await;
    if let Err(error) = published {
        let failure = crate::sdk_errors::failure(None, "Publish", &error);
        return Err(FunctionError::PublishFailed(format!(
            "{subject}; published to {}, but not to the organization's central topic {central}: \
             {}: {} (its topic policy must allow this account: `cargo xtask deploy` sets it)",
            ctx.config.sns_topic_arn, failure.code, failure.message
        )));
    }
    Ok(())
}

/// The topic's mark of a run of `schedule` going on over several invocations, if any.
pub(crate) async fn run_mark(ctx: &Context, schedule: &str) -> Option<RunMark> {
    topic_tag(ctx, &run_mark::tag(schedule))
        .await
        .and_then(|value| RunMark::parse(&value))
}

/// Writes the topic's run mark of `schedule`, or removes it (`None`).
pub(crate) async fn set_run_mark(ctx: &Context, schedule: &str, mark: Option<&RunMark>) {
    set_topic_tag(
        ctx,
        &run_mark::tag(schedule),
        mark.map(RunMark::value).as_deref(),
    )
    .await;
}

/// Since when each configured schedule is known to this deployment (coverage's
/// `SINCE_TAG_PREFIX` tags on the topic). A schedule seen for the first time is recorded with
/// `now`, except in a dry run; when the tags cannot be read nothing is written, so that a
/// failed read never moves a schedule's start.
pub(crate) async fn schedules_since(
    ctx: &Context,
    dry_run: bool,
    now: OffsetDateTime,
) -> std::collections::BTreeMap<String, OffsetDateTime> {
    let Some(tags) = topic_tags(ctx).await else {
        return Default::default();
    };
    let mut since =
        crate::coverage::since_from_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for schedule in &ctx.config.policy.schedules {
        if !dry_run && !since.contains_key(&schedule.name) {
            let key = crate::coverage::since_tag(&schedule.name);
            set_topic_tag(ctx, &key, Some(&crate::tags::format_time(now))).await;
            since.insert(schedule.name.clone(), now);
        }
    }
    since
}

/// Every tag on the function's topic; `None` (logged) when they cannot be read.
pub(crate) async fn topic_tags(ctx: &Context) -> Option<Vec<(String, String)>> {
    let listed = ctx
        .sns
        .list_tags_for_resource()
        .resource_arn(&ctx.config.sns_topic_arn)
        .send()
        .await;
    match listed {
        Ok(listed) => Some(
            listed
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(error = %aws_sdk_sns::error::DisplayErrorContext(&error), "could not read the topic's tags");
            None
        }
    }
}

/// The value of one of the function's tags on its topic (the run mark, the restore test's
/// cursor). Best effort: a tag that cannot be read is logged and taken as absent.
pub(crate) async fn topic_tag(ctx: &Context, key: &str) -> Option<String> {
    topic_tags(ctx)
        .await?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| value)
}

/// Writes one of the function's tags on its topic, or removes it (`None`). Best effort, logged
/// on failure.
pub(crate) async fn set_topic_tag(ctx: &Context, key: &str, value: Option<&str>) {
    let topic = &ctx.config.sns_topic_arn;
    let result = match value {
        Some(value) => {
            let tag = aws_sdk_sns::types::Tag::builder()
                .key(key)
                .value(value)
                .build();
            match tag {
                Ok(tag) => ctx
                    .sns
                    .tag_resource()
                    .resource_arn(topic)
                    .tags(tag)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string()),
                Err(error) => Err(error.to_string()),
            }
        }
        None => ctx
            .sns
            .untag_resource()
            .resource_arn(topic)
            .tag_keys(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string()),
    };
    if let Err(error) = result {
        tracing::warn!(key, %error, "could not update a tag on the topic");
    }
}

fn truncate(mut body: String, max_bytes: usize) -> String {
    const NOTE: &str = "\n[... cut to fit SNS; the function's log holds the full report]\n";
    if body.len() <= max_bytes {
        return body;
    }
    let mut cut = max_bytes - NOTE.len();
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body.truncate(cut);
    body.push_str(NOTE);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_with_a_note_within_the_limit() {
        let body = "é".repeat(200);
        let cut = truncate(body, 150);
        assert!(cut.len() <= 150, "{}", cut.len());
        assert!(cut.ends_with("full report]\n"));
        assert_eq!(truncate("short".into(), 150), "short");
    }
}
