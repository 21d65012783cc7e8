//! The EBS direct API's `ListChangedBlocks`, every page, as signed GETs (`signed.rs`): what a
//! set changed, without the EBS SDK client (whose 132 KB the function's zip budget cannot
//! take, docs/function.md).

use crate::signed::{self, Call, encode};

pub use crate::changes::Changed;
pub use crate::signed::CallError as EbsError;

/// Which blocks of `second` differ from `first` (every block of `second` without a first),
/// reading every page.
pub async fn changed_blocks(
    sdk: &aws_config::SdkConfig,
    first: Option<&str>,
    second: &str,
) -> Result<Changed, EbsError> {
    let mut total = Changed::default();
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
        total.blocks += blocks.len() as u64;
        total.new += without("FirstBlockToken");
        total.freed += without("SecondBlockToken");
        match json["NextToken"].as_str() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(total),
        }
    }
}
