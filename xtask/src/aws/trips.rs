//! The EC2 edge of `tripwire --clear`: an operator's tag on the flagged snapshots, with the
//! operator's own credentials (not a CI call: it needs `ec2:CreateTags`, which the deployer
//! policy does not grant).

use anyhow::{Context, Result};

/// Sets tag `key` to `value` on each of `ids`, in one CreateTags call (EC2 takes up to 1,000
/// resources in one; an instance's flagged snapshots are one per volume).
pub async fn set_tag(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
    key: &str,
    value: &str,
) -> Result<()> {
    ec2.create_tags()
        .set_resources(Some(ids.to_vec()))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("failed to tag {} with {key}={value}", ids.join(", ")))?;
    Ok(())
}
