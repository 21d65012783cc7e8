//! EC2's storage-tier and fast-snapshot-restore calls (`ModifySnapshotTier`,
//! `EnableFastSnapshotRestores`, `DisableFastSnapshotRestores`, `DescribeFastSnapshotRestores`)
//! as signed EC2 Query requests through `signed.rs`: the SDK's code for four more operations
//! would cost the zip more than its budget has left (docs/function.md, "Zip size").

use crate::signed::{self, Call, CallError, encode};

/// The EC2 API version the Query calls name.
const VERSION: &str = "2016-11-15";

/// Sends `Action` with `params` (each name and value once) and returns the XML answer.
async fn call(
    sdk: &aws_config::SdkConfig,
    action: &'static str,
    params: &[(String, String)],
) -> Result<String, CallError> {
    let mut body = format!("Action={action}&Version={VERSION}");
    for (name, value) in params {
        body.push_str(&format!("&{}={}", encode(name), encode(value)));
    }
    let answer = signed::send(
        sdk,
        Call {
            service: "ec2",
            operation: action,
            endpoint: None,
            method: "POST",
            path: "/".to_owned(),
            headers: &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body: body.into_bytes(),
        },
    )
    .await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The text of each `<name>` element in `xml`, in order.
fn values<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// Archives `snapshot_id` (`ModifySnapshotTier`, `StorageTier=archive`).
pub async fn archive(sdk: &aws_config::SdkConfig, snapshot_id: &str) -> Result<(), CallError> {
    call(
        sdk,
        "ModifySnapshotTier",
        &[
            ("SnapshotId".into(), snapshot_id.into()),
            ("StorageTier".into(), "archive".into()),
        ],
    )
    .await
    .map(drop)
}

/// Enables (`on`) or disables fast snapshot restore of `snapshot_id` in `zones`. EC2 answers
/// each zone apart: the zones it refused come back with their error.
pub async fn fast_restore(
    sdk: &aws_config::SdkConfig,
    snapshot_id: &str,
    zones: &[String],
    on: bool,
) -> Result<Vec<(String, CallError)>, CallError> {
    let mut params = vec![("SourceSnapshotId.1".to_owned(), snapshot_id.to_owned())];
    for (n, zone) in zones.iter().enumerate() {
        params.push((format!("AvailabilityZone.{}", n + 1), zone.clone()));
    }
    let action = if on {
        "EnableFastSnapshotRestores"
    } else {
        "DisableFastSnapshotRestores"
    };
    let xml = call(sdk, action, &params).await?;
    let refused = xml.find("<unsuccessful>").map_or("", |start| &xml[start..]);
    let zones = values(refused, "availabilityZone");
    let codes = values(refused, "code");
    let messages = values(refused, "message");
    Ok(zones
        .iter()
        .enumerate()
        .map(|(n, zone)| {
            (
                (*zone).to_owned(),
                CallError {
                    code: codes.get(n).copied().unwrap_or("Unsuccessful").to_owned(),
                    message: messages.get(n).copied().unwrap_or_default().to_owned(),
                    status: 200,
                },
            )
        })
        .collect())
}

/// The fast snapshot restores of the region's snapshots that are enabling, optimizing or
/// enabled: (snapshot id, zone) pairs, sorted, every page.
pub async fn fast_restores(
    sdk: &aws_config::SdkConfig,
) -> Result<Vec<crate::fast_plan::Pair>, CallError> {
    let mut found: Vec<crate::fast_plan::Pair> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = vec![
            ("Filter.1.Name".to_owned(), "state".to_owned()),
            ("Filter.1.Value.1".to_owned(), "enabling".to_owned()),
            ("Filter.1.Value.2".to_owned(), "optimizing".to_owned()),
            ("Filter.1.Value.3".to_owned(), "enabled".to_owned()),
            ("MaxResults".to_owned(), "200".to_owned()),
        ];
        if let Some(token) = &token {
            params.push(("NextToken".to_owned(), token.clone()));
        }
        let xml = call(sdk, "DescribeFastSnapshotRestores", &params).await?;
        for item in xml.split("<item>").skip(1) {
            if let (Some(id), Some(zone)) = (
                values(item, "snapshotId").first(),
                values(item, "availabilityZone").first(),
            ) {
                found.push(((*id).to_owned(), (*zone).to_owned()));
            }
        }
        token = values(&xml, "nextToken").first().map(|t| (*t).to_owned());
        if token.is_none() {
            break;
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_element_by_element() {
        let enable = "<EnableFastSnapshotRestoresResponse><successful><item><snapshotId>snap-1</snapshotId><availabilityZone>us-east-1a</availabilityZone></item></successful><unsuccessful><item><snapshotId>snap-1</snapshotId><fastSnapshotRestoreStateErrorSet><item><availabilityZone>us-east-1b</availabilityZone><error><code>FastSnapshotRestoreLimitExceeded</code><message>at most 5</message></error></item></fastSnapshotRestoreStateErrorSet></item></unsuccessful></EnableFastSnapshotRestoresResponse>";
        let refused = enable
            .find("<unsuccessful>")
            .map_or("", |start| &enable[start..]);
        assert_eq!(values(refused, "availabilityZone"), ["us-east-1b"]);
        assert_eq!(
            values(refused, "code"),
            ["FastSnapshotRestoreLimitExceeded"]
        );
        assert_eq!(values(enable, "snapshotId"), ["snap-1", "snap-1"]);
        assert!(values("<a>unclosed", "a").is_empty());
    }
}
