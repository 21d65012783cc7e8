//! The Recycle Bin edge: this deployment's snapshots in the bin of a region (EC2
//! `ListSnapshotsInRecycleBin`), and putting one back (`RestoreSnapshotFromRecycleBin`). The bin
//! shows no tags, so a snapshot is this deployment's by the description SmartVault writes
//! (`... by <stack>`); a restored snapshot has its tags again.

use crate::aws::sdk_error;
use anyhow::{Context, Result};

/// One snapshot in the bin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Binned {
    pub snapshot_id: String,
    pub volume_id: Option<String>,
    pub description: String,
    /// When it was deleted, and when the bin lets it go (RFC 3339).
    pub entered: Option<String>,
    pub leaves: Option<String>,
}

/// Whether a snapshot's description is one SmartVault wrote for `stack`.
pub fn is_of(description: &str, stack: &str) -> bool {
    description.starts_with("SmartVault ") && description.ends_with(&format!(" by {stack}"))
}

/// `stack`'s snapshots in the bin of `ec2`'s region.
pub async fn list(ec2: &aws_sdk_ec2::Client, stack: &str) -> Result<Vec<Binned>> {
    let time = |t: Option<&aws_sdk_ec2::primitives::DateTime>| {
        t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.secs()).ok())
            .map(function::tags::format_time)
    };
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .list_snapshots_in_recycle_bin()
            .max_results(1000)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(sdk_error)
            .context("failed to list the Recycle Bin (ec2:ListSnapshotsInRecycleBin)")?;
        for snapshot in page.snapshots() {
            let description = snapshot.description().unwrap_or_default();
            if !is_of(description, stack) {
                continue;
            }
            found.push(Binned {
                snapshot_id: snapshot.snapshot_id().unwrap_or_default().to_owned(),
                volume_id: snapshot.volume_id().map(str::to_owned),
                description: description.to_owned(),
                entered: time(snapshot.recycle_bin_enter_time()),
                leaves: time(snapshot.recycle_bin_exit_time()),
            });
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(found),
        }
    }
}

/// Puts `snapshot_id` back from the bin, with its tags.
pub async fn restore(ec2: &aws_sdk_ec2::Client, snapshot_id: &str) -> Result<()> {
    ec2.restore_snapshot_from_recycle_bin()
        .snapshot_id(snapshot_id)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!(
                "failed to restore {snapshot_id} from the Recycle Bin \
                 (ec2:RestoreSnapshotFromRecycleBin)"
            )
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_of;

    #[test]
    fn only_this_stacks_descriptions_are_its_own() {
        assert!(is_of(
            "SmartVault backup of web (i-0123) by smartvault-prod",
            "smartvault-prod"
        ));
        assert!(!is_of(
            "SmartVault backup of web (i-0123) by smartvault-prod-2",
            "smartvault-prod"
        ));
        assert!(!is_of("nightly by smartvault-prod", "smartvault-prod"));
        assert!(!is_of(
            "SmartVault backup of web (i-0123) by smartvault-other",
            "smartvault-prod"
        ));
    }
}
