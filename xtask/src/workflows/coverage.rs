//! What `cargo xtask coverage` reads: the region's instances, their volumes and this
//! deployment's snapshots, through the function's own inventory, judged by its coverage.

use crate::aws::Aws;
use crate::config::Environment;
use anyhow::Result;
use function::coverage::{self, Coverage};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The environment's coverage at `now`, as a backup run would report it.
pub async fn assess(aws: &Aws, env: &Environment, now: OffsetDateTime) -> Result<Coverage> {
    let policy = env.policy()?;
    let inventory = crate::aws::fleet::read(aws, env).await?;
    let since = schedules_since(aws, env).await;
    let mut assessed = coverage::assess(
        &inventory.instances,
        &inventory.untagged,
        &inventory.snapshots,
        &policy,
        &since,
        now,
    );
    // The region's locks: the inventory reads them only for a locked schedule, and an
    // operator may have locked a set by hand.
    let locks = if inventory.locks.is_empty() {
        crate::aws::snapshots::locks(aws).await
    } else {
        inventory.locks
    };
    coverage::with_locks(&mut assessed, &inventory.snapshots, &locks);
    coverage::with_tiers(&mut assessed, &inventory.snapshots);
    Ok(assessed)
}

/// Since when each schedule is configured, as the function recorded it on the stack's topic
/// (read-only here: only the function writes it). Unknown, and so never overdue for a missing
/// set, when the stack, its topic or the tags cannot be read; the reason is printed.
async fn schedules_since(aws: &Aws, env: &Environment) -> BTreeMap<String, OffsetDateTime> {
    let topic = match crate::aws::cfn::describe(aws, &env.stack_name).await {
        Ok(Some(view)) => view.outputs.get("TopicArn").cloned(),
        Ok(None) => None,
        Err(error) => {
            eprintln!("note: could not read stack {}: {error:#}", env.stack_name);
            None
        }
    };
    let Some(topic) = topic else {
        return BTreeMap::new();
    };
    match crate::aws::topic::tags(aws, &topic).await {
        Ok(tags) => coverage::since_from_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        Err(error) => {
            eprintln!(
                "note: could not read the tags of {topic} (since when each schedule runs): \
                 {error:#}; a schedule without a set is not judged overdue"
            );
            BTreeMap::new()
        }
    }
}

/// The notes of [`crate::stack::keys::notes`] for the volumes of the instances this environment
/// backs up; a read that fails is a note too (deploy goes on: this is advice, not a
/// precondition).
pub(crate) async fn key_notes(aws: &Aws, env: &Environment) -> Vec<String> {
    let encrypted = match crate::aws::fleet::backed_up_volumes(aws, env).await {
        Ok(owner) => crate::aws::fleet::encrypted_volumes(aws, &owner).await,
        Err(why) => Err(why),
    };
    match encrypted {
        Ok(encrypted) => crate::stack::keys::notes(&encrypted, &env.source_kms_keys),
        Err(why) => vec![format!("note: could not check the volumes' keys: {why}")],
    }
}
