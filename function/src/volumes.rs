//! Volumes made from snapshots as their restore records say (zone, type, IOPS, throughput,
//! tags at creation), and read back by id: one way for the restore test and the deployer's
//! restore.

use crate::inventory::{FILTER_VALUES_MAX, filter};
use crate::restore_records::VolumeDetails;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::operation::create_volume::CreateVolumeError;
use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesError;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification, Volume, VolumeType};
use std::collections::BTreeMap;

/// A volume to make from a snapshot, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct AsRecorded<'a> {
    pub snapshot_id: &'a str,
    pub availability_zone: &'a str,
    pub details: &'a VolumeDetails,
    /// Tags applied at creation.
    pub tags: &'a [(String, String)],
    /// An idempotency token: a resend after a lost answer returns the same volume.
    pub client_token: Option<&'a str>,
}

/// Creates the volume, tagged at creation; returns its id.
pub async fn create(
    ec2: &Client,
    volume: &AsRecorded<'_>,
) -> Result<String, SdkError<CreateVolumeError, HttpResponse>> {
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Volume)
        .set_tags(Some(
            volume
                .tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build();
    let created = ec2
        .create_volume()
        .snapshot_id(volume.snapshot_id)
        .availability_zone(volume.availability_zone)
        .set_volume_type(volume.details.volume_type.as_deref().map(VolumeType::from))
        .set_iops(volume.details.iops)
        .set_throughput(volume.details.throughput)
        .tag_specifications(tags)
        .set_client_token(volume.client_token.map(str::to_owned))
        .send()
        .await?;
    Ok(created.volume_id().unwrap_or_default().to_owned())
}

/// The volumes among `ids` that exist, by id, every page; a volume that is gone is absent.
pub async fn by_id(
    ec2: &Client,
    ids: &[&str],
) -> Result<BTreeMap<String, Volume>, SdkError<DescribeVolumesError, HttpResponse>> {
    let mut found = BTreeMap::new();
    for chunk in ids.chunks(FILTER_VALUES_MAX) {
        let mut pages = ec2
            .describe_volumes()
            .filters(filter("volume-id", chunk.iter().copied()))
            .into_paginator()
            .items()
            .send();
        while let Some(volume) = pages.next().await {
            let volume = volume?;
            if let Some(id) = volume.volume_id() {
                found.insert(id.to_owned(), volume.clone());
            }
        }
    }
    Ok(found)
}
