//! The volumes a restore test left behind, which destroy lists and removes.

use crate::aws::{Aws, sdk_error};
use anyhow::{Context, Result};

/// The volumes a restore test of `stack` left, with their sizes.
pub async fn test_volumes(aws: &Aws, stack: &str) -> Result<Vec<(String, i32)>> {
    let mut found = Vec::new();
    let mut pages = aws
        .ec2
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{}", function::restore_test::TAG))
                .values(stack)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .context("failed to look for volumes a restore test left")?;
        for volume in page.volumes() {
            found.push((
                volume.volume_id().unwrap_or_default().to_owned(),
                volume.size().unwrap_or(0),
            ));
        }
    }
    Ok(found)
}

/// Deletes volume `id`; one already gone counts as deleted.
pub async fn delete_volume(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<()> {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    match ec2.delete_volume().volume_id(id).send().await {
        Ok(_) => Ok(()),
        Err(error) if error.code() == Some("InvalidVolume.NotFound") => Ok(()),
        Err(error) => {
            Err(sdk_error(error)).with_context(|| format!("failed to delete volume {id}"))
        }
    }
}
