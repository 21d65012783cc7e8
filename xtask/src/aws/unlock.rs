//! The one place SmartVault unlocks a snapshot: `destroy --unlock-governance`, an operator's
//! explicit choice made with their own credentials. No policy SmartVault ships grants
//! `ec2:UnlockSnapshot`, so the CI role cannot; compliance locks are never asked.

use crate::aws::{Aws, sdk_error};
use anyhow::{Context, Result};

/// Removes the governance lock of snapshot `id`.
pub async fn governance(aws: &Aws, id: &str) -> Result<()> {
    aws.ec2
        .unlock_snapshot()
        .snapshot_id(id)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!("ec2:UnlockSnapshot of {id} was refused; it needs credentials that hold it")
        })?;
    Ok(())
}
