//! The tripwire's trips (used by `tripwire`): each instance whose expiry a trip suspends, read
//! from this deployment's snapshots with its clean set and the lock that pins it, and the
//! operator's clear, which resumes expiry and leaves the pin to run out.

use crate::aws::Aws;
use crate::aws::snapshots;
use crate::config::Environment;
use crate::user_error::UserError;
use anyhow::{Result, bail};
use function::tags::{self, format_time};
use function::tripwire;
use time::OffsetDateTime;

/// One instance's trip, as `tripwire` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TripView {
    pub instance_id: String,
    /// When the tripwire flagged it, and when the suspicious set was made.
    pub since: String,
    pub suspicious_set: String,
    pub snapshots: Vec<String>,
    /// The clean restore point (the newest set before the spike) and its pin.
    pub clean_point: Option<String>,
    pub pinned: Option<String>,
    /// The command that restores the clean point.
    pub restore: Option<String>,
}

/// The trips in force in this deployment.
pub async fn trips(aws: &Aws, env: &Environment, now: OffsetDateTime) -> Result<Vec<TripView>> {
    let found = snapshots::managed(aws, &env.stack_name).await?;
    let locks = snapshots::locks(aws).await;
    let deployment = &env.stack_name;
    Ok(tripwire::trips(&found, deployment, now)
        .into_iter()
        .map(|(instance, trip)| {
            let clean = tripwire::clean_set(&found, deployment, &instance, trip.set_at, now);
            let clean_point = clean.as_ref().map(|(at, _)| format_time(*at));
            TripView {
                restore: clean_point
                    .as_ref()
                    .map(|at| tripwire::restore_command(&env.name, &instance, at)),
                pinned: clean
                    .as_ref()
                    .and_then(|(_, set)| {
                        function::locks::holding_all(&locks, set.iter().map(|s| s.id.as_str()))
                    })
                    .map(|lock| lock.describe()),
                clean_point,
                since: format_time(trip.since),
                suspicious_set: format_time(trip.set_at),
                snapshots: trip.snapshots,
                instance_id: instance,
            }
        })
        .collect())
}

/// Clears `instance`'s trip: its suspicious snapshots' tag becomes `cleared <now>`, so the
/// next run expires its sets again; the pin on its clean set runs out by itself. Refused with
/// the fix when the instance has no trip in force.
pub async fn clear(
    aws: &Aws,
    env: &Environment,
    instance: &str,
    now: OffsetDateTime,
) -> Result<Vec<String>> {
    let found = snapshots::managed(aws, &env.stack_name).await?;
    let trips = tripwire::trips(&found, &env.stack_name, now);
    let Some(trip) = trips.get(instance) else {
        bail!(UserError(format!(
            "{instance} has no trip in force in {} ({}); `cargo xtask tripwire --env {}` lists \
             the instances that have one",
            env.name,
            if trips.is_empty() {
                "none has".to_owned()
            } else {
                trips.keys().cloned().collect::<Vec<_>>().join(", ")
            },
            env.name
        )));
    };
    crate::aws::trips::set_tag(
        &aws.ec2,
        &trip.snapshots,
        tags::TRIPWIRE,
        &tripwire::cleared(now),
    )
    .await?;
    Ok(trip.snapshots.clone())
}
