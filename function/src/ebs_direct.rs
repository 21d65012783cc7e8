//! The EBS direct API's `ListChangedBlocks`, every page, and `GetSnapshotBlock`, as signed GETs
//! (`signed.rs`): what a set changed and a sample of its changed blocks, without the EBS SDK
//! client (whose 132 KB the function's zip budget cannot take, docs/function.md).

use crate::signed::{self, Call, encode};

pub use crate::changes::Changed;
pub use crate::signed::CallError as EbsError;

/// A changed block of the second snapshot that can be read: its index and block token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub index: u64,
    pub token: String,
}

/// Which blocks of `second` differ from `first` (every block of `second` without a first),
/// reading every page; with up to `tripwire::MAX_SAMPLE_BLOCKS` of them to read, spread over
/// the first page.
pub async fn changed_blocks(
    sdk: &aws_config::SdkConfig,
    first: Option<&str>,
    second: &str,
) -> Result<(Changed, Vec<Sample>), EbsError> {
    let mut total = Changed::default();
    let mut samples = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![format!("maxResults=10000")];
        if let Some(first) = first {
            query.push(format!("firstSnapshotId={}", encode(first)));
        }
        if let Some(token) = token.take() {
            query.push(format!("pageToken={}", encode(&token)));
        }
        let body = signed::send(
            sdk,
            Call {
                service: "ebs",
                operation: "ListChangedBlocks",
                endpoint: None,
                method: "GET",
                path: format!(
                    "/snapshots/{}/changedblocks?{}",
                    encode(second),
                    query.join("&")
                ),
                headers: &[],
                body: Vec::new(),
            },
        )
        .await?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let blocks = json["ChangedBlocks"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        let without = |key: &str| blocks.iter().filter(|b| b.get(key).is_none()).count() as u64;
        if samples.is_empty() {
            let readable: Vec<&serde_json::Value> = blocks
                .iter()
                .filter(|b| b.get("SecondBlockToken").is_some())
                .collect();
            let spread =
                crate::tripwire::spread(&readable, crate::tripwire::MAX_SAMPLE_BLOCKS as usize);
            samples.extend(spread.into_iter().filter_map(|b| {
                Some(Sample {
                    index: b["BlockIndex"].as_u64()?,
                    token: b["SecondBlockToken"].as_str()?.to_owned(),
                })
            }));
        }
        total.blocks += blocks.len() as u64;
        total.new += without("FirstBlockToken");
        total.freed += without("SecondBlockToken");
        match json["NextToken"].as_str() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok((total, samples)),
        }
    }
}

/// The data of one block of `snapshot` (`GetSnapshotBlock`, 524,288 bytes).
pub async fn block(
    sdk: &aws_config::SdkConfig,
    snapshot: &str,
    sample: &Sample,
) -> Result<Vec<u8>, EbsError> {
    signed::send(
        sdk,
        Call {
            service: "ebs",
            operation: "GetSnapshotBlock",
            endpoint: None,
            method: "GET",
            path: format!(
                "/snapshots/{}/blocks/{}?blockToken={}",
                encode(snapshot),
                sample.index,
                encode(&sample.token)
            ),
            headers: &[],
            body: Vec::new(),
        },
    )
    .await
}
