//! Restoring (used by `snapshots` and `restore`): this deployment's restore points in a region,
//! or its vault's copies, read from its snapshots, copies and locks and grouped by the pure
//! `restore::points`; what a restore makes is `restore::plan`, the EC2 side `aws::restore`.

use crate::aws::Aws;
use crate::aws::snapshots;
use crate::config::Environment;
use crate::restore::points::{self, RestorePoint};
use crate::user_error::UserError;
use anyhow::{Result, bail};

/// This deployment's restore points in `region`: the environment's own (with the copies each
/// region holds), or one of its copy regions (the copies there). Any other region is refused.
pub async fn points(aws: &Aws, env: &Environment, region: &str) -> Result<Vec<RestorePoint>> {
    let stack = crate::aws::cfn::describe(aws, &env.stack_name).await?;
    let regions = snapshots::copy_regions(env, stack.as_ref());
    if region == env.region {
        let found = snapshots::managed(aws, &env.stack_name).await?;
        let copies =
            snapshots::copies_by_region(aws, regions, &env.stack_name, &env.region).await?;
        let mut grouped = points::group(&found, region, &copies);
        points::with_locks(&mut grouped, &snapshots::locks(aws).await);
        return Ok(grouped);
    }
    if !regions.iter().any(|r| r == region) {
        bail!(UserError(format!(
            "{region} is not one of {}'s copy regions ({}); use the environment's own region \
             ({}) without --region, or one of those",
            env.name,
            if regions.is_empty() {
                "it has none".to_owned()
            } else {
                regions.join(", ")
            },
            env.region
        )));
    }
    let copies = snapshots::copies(aws, region, &env.stack_name, &env.region).await?;
    let mut grouped = points::group(&copies, region, &[]);
    points::with_locks(&mut grouped, &snapshots::locks_in(aws, region).await);
    Ok(grouped)
}

/// The restore points a vault environment holds of `workload`'s sets (its copies, in the
/// vault's own region), with their locks: what `restore --from-vault` restores from.
pub async fn vault_points(
    aws: &Aws,
    vault: &Environment,
    workload: &str,
) -> Result<Vec<RestorePoint>> {
    let copies = snapshots::vault_copies(aws, &vault.stack_name, workload).await?;
    let mut grouped = points::group(&copies, &vault.region, &[]);
    points::with_locks(&mut grouped, &snapshots::locks(aws).await);
    Ok(grouped)
}
