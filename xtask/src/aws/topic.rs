//! The stack topic's tags, where the function records since when each schedule runs (read-only
//! here: only the function writes them).

use crate::aws::{Aws, sdk_error};
use anyhow::{Context, Result};

/// Every tag of `topic`, key and value.
pub async fn tags(aws: &Aws, topic: &str) -> Result<Vec<(String, String)>> {
    let listed = aws_sdk_sns::Client::new(&aws.sdk)
        .list_tags_for_resource()
        .resource_arn(topic)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to read the tags of {topic} (sns:ListTagsForResource)"))?;
    Ok(listed
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect())
}
