//! `cargo xtask status`: the stack's state, the artifact it runs, and its snapshots; for an
//! organization's environment, every stack instance and the artifact each runs.

use super::EnvArgs;
use crate::aws::cfn::StackView;
use crate::aws::snapshots;
use crate::aws::{Connection, with_aws};
use crate::config::Environment;
use crate::config::zone::minutes;
use crate::output::Output;
use anyhow::Result;
use function::model::Snapshot;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Show an environment's stack state, artifact, schedule and snapshots.
#[derive(Debug, clap::Args)]
pub struct StatusCmd {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    connection: Connection,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl StatusCmd {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        if let Some(targets) = &env.targets {
            let status = with_aws(&self.connection, &env.region, &env.access, async |aws| {
                aws.check_account(env.account_id.as_deref()).await?;
                crate::workflows::organization::status(aws, &env, targets).await
            })?;
            self.output
                .result(&status, crate::workflows::organization::Status::print)?;
            return Ok(ExitCode::SUCCESS);
        }
        let status = with_aws(&self.connection, &env.region, &env.access, async |aws| {
            // Another account's answer would read as "not deployed".
            aws.check_account(env.account_id.as_deref()).await?;
            let stack = crate::aws::cfn::describe(aws, &env.stack_name).await?;
            let snapshots = snapshots::managed(aws, &env.stack_name).await?;
            let regions = snapshots::copy_regions(&env, stack.as_ref());
            let copies =
                snapshots::copies_by_region(aws, regions, &env.stack_name, &env.region).await?;
            let mut status = Status::new(&env, &aws.region, stack, &snapshots);
            if !snapshots.is_empty() {
                let locks = snapshots::locks(aws).await;
                with_locks(&mut status.schedules, &snapshots, &locks);
            }
            status.copies = copy_status(&env, &snapshots, &copies, time::OffsetDateTime::now_utc());
            Ok(status)
        })?;
        self.output.result(&status, print)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What status reports, for `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub environment: String,
    pub stack: String,
    pub region: String,
    /// `null` when the stack does not exist.
    pub stack_status: Option<String>,
    pub artifact_sha256: Option<String>,
    pub smartvault_version: Option<String>,
    /// Each schedule the stack runs, its next fire time and its snapshots.
    pub schedules: Vec<ScheduleStatus>,
    pub termination_protection: bool,
    pub snapshots: usize,
    pub snapshots_gib: i64,
    pub oldest_snapshot: Option<String>,
    pub newest_snapshot: Option<String>,
    /// This deployment's copies in each copy region.
    pub copies: Vec<CopyStatus>,
    pub outputs: BTreeMap<String, String>,
}

/// One copy region in `status`.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct CopyStatus {
    pub region: String,
    /// This deployment's copies there, completed or in flight.
    pub copies: usize,
    pub in_flight: usize,
    pub gib: i64,
    /// When the newest copy's set was made, and its age in hours.
    pub newest_copy: Option<String>,
    pub newest_copy_age_hours: Option<i64>,
    /// The set made longest ago (`created-at`) whose completed snapshots are not all copied
    /// there yet, among the schedules the region's rule copies; `null` when none.
    pub oldest_set_without_copy: Option<String>,
}

/// Each copy region's copies, against this deployment's completed snapshots at home.
fn copy_status(
    env: &Environment,
    home: &[Snapshot],
    copies: &[(String, Vec<Snapshot>)],
    now: time::OffsetDateTime,
) -> Vec<CopyStatus> {
    use function::tags;
    let parse = |value: &str| {
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()
    };
    copies
        .iter()
        .map(|(region, found)| {
            let copied: std::collections::BTreeSet<&str> = found
                .iter()
                .filter_map(|c| c.tag(tags::SOURCE_SNAPSHOT))
                .collect();
            let rule = env.copies.iter().find(|r| &r.region == region);
            let newest = found
                .iter()
                .filter_map(|c| c.tag(tags::CREATED_AT).and_then(parse))
                .max();
            let oldest_missing = home
                .iter()
                .filter(|s| s.completed() && !copied.contains(s.id.as_str()))
                .filter(|s| {
                    let schedule = s
                        .tag(tags::SCHEDULE)
                        .unwrap_or(function::tags::DEFAULT_SCHEDULE);
                    rule.is_some_and(|r| r.copies_schedule(schedule))
                })
                .filter_map(|s| s.tag(tags::CREATED_AT).and_then(parse))
                .min();
            CopyStatus {
                region: region.clone(),
                copies: found.len(),
                in_flight: found.iter().filter(|c| !c.completed()).count(),
                gib: found.iter().map(|c| i64::from(c.size_gib)).sum(),
                newest_copy: newest.map(function::tags::format_time),
                newest_copy_age_hours: newest.map(|at| (now - at).whole_hours()),
                oldest_set_without_copy: oldest_missing.map(function::tags::format_time),
            }
        })
        .collect()
}

/// One schedule in `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleStatus {
    pub name: String,
    pub expression: String,
    pub timezone: String,
    /// In the schedule's zone and in UTC, e.g. `2026-11-27 02:00 Europe/Berlin (01:00 UTC)`.
    pub next_fire_time: Option<String>,
    /// This deployment's snapshots made by the schedule (`default` for those without the tag).
    pub snapshots: usize,
    /// How many of them a lock holds, and until when the last one does (left out when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub locked: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// Counts each schedule's snapshots a lock holds (`locks`, by snapshot id) and the last end.
fn with_locks(
    schedules: &mut [ScheduleStatus],
    snapshots: &[Snapshot],
    locks: &std::collections::BTreeMap<String, function::locks::SnapshotLock>,
) {
    for schedule in schedules {
        let held: Vec<function::locks::SnapshotLock> = snapshots
            .iter()
            .filter(|s| function::tags::schedule_of(&s.tags) == schedule.name)
            .filter_map(|s| function::locks::in_force(locks, &s.id))
            .collect();
        schedule.locked = held.len();
        schedule.locked_until = held
            .iter()
            .filter_map(|l| l.expires_on)
            .max()
            .map(function::tags::format_time);
    }
}

/// The deployed schedules (from the stack's parameters), their next fire time after `now`,
/// and how many snapshots each made.
fn schedule_status(
    parameters: &crate::stack::parameters::StackParameters,
    snapshots: &[Snapshot],
    now: time::OffsetDateTime,
) -> Vec<ScheduleStatus> {
    let schedule_of = |s: &Snapshot| function::tags::schedule_of(&s.tags).to_owned();
    parameters
        .schedule_slots()
        .into_iter()
        .map(|(name, expression, timezone)| {
            let next_fire_time =
                crate::config::schedules::fire_times_in(&expression, &timezone, now, 1)
                    .first()
                    .map(|at| {
                        format!(
                            "{} {timezone} ({} UTC)",
                            minutes(*at),
                            minutes(at.to_offset(time::UtcOffset::UTC))
                        )
                    });
            ScheduleStatus {
                snapshots: snapshots.iter().filter(|s| schedule_of(s) == name).count(),
                name,
                expression,
                timezone,
                next_fire_time,
                locked: 0,
                locked_until: None,
            }
        })
        .collect()
}

impl Status {
    /// What status shows, from the stack (if any) and this deployment's snapshots.
    fn new(
        env: &Environment,
        region: &str,
        stack: Option<StackView>,
        snapshots: &[Snapshot],
    ) -> Self {
        let times: Vec<i64> = snapshots
            .iter()
            .map(|s| s.start_time.unix_timestamp())
            .collect();
        let format = |secs: Option<&i64>| {
            secs.and_then(|s| time::OffsetDateTime::from_unix_timestamp(*s).ok())
                .map(function::tags::format_time)
        };
        let (stack_status, parameters, protection, outputs) = match stack {
            Some(view) => (
                Some(view.status),
                view.parameters,
                view.termination_protection,
                view.outputs,
            ),
            None => (None, Default::default(), false, BTreeMap::new()),
        };
        let schedules = schedule_status(&parameters, snapshots, time::OffsetDateTime::now_utc());
        Status {
            environment: env.name.clone(),
            stack: env.stack_name.clone(),
            region: region.to_owned(),
            stack_status,
            artifact_sha256: parameters.artifact_sha256,
            smartvault_version: parameters.smartvault_version,
            schedules,
            termination_protection: protection,
            snapshots: snapshots.len(),
            snapshots_gib: snapshots.iter().map(|s| i64::from(s.size_gib)).sum(),
            oldest_snapshot: format(times.iter().min()),
            newest_snapshot: format(times.iter().max()),
            copies: Vec::new(),
            outputs,
        }
    }
}

fn print(status: &Status) {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    println!(
        "environment  {} (stack {}, {})",
        status.environment, status.stack, status.region
    );
    println!(
        "state        {}",
        status
            .stack_status
            .clone()
            .unwrap_or_else(|| "not deployed".into())
    );
    println!(
        "artifact     {} (SmartVault {})",
        or_none(&status.artifact_sha256),
        or_none(&status.smartvault_version)
    );
    for schedule in &status.schedules {
        println!(
            "schedule     {} {} in {}: next {}, {} snapshots{}",
            schedule.name,
            schedule.expression,
            schedule.timezone,
            or_none(&schedule.next_fire_time),
            schedule.snapshots,
            match &schedule.locked_until {
                Some(until) => format!(", {} locked until {until} at the latest", schedule.locked),
                None => String::new(),
            }
        );
    }
    if status.schedules.is_empty() {
        println!("schedule     -");
    }
    println!(
        "protection   {}",
        if status.termination_protection {
            "on"
        } else {
            "off"
        }
    );
    println!(
        "snapshots    {} ({} GiB), oldest {}, newest {}",
        status.snapshots,
        status.snapshots_gib,
        or_none(&status.oldest_snapshot),
        or_none(&status.newest_snapshot)
    );
    for copy in &status.copies {
        println!(
            "copies       {}: {} ({} in flight, {} GiB), newest from {} ({} h old), oldest set without a copy {}",
            copy.region,
            copy.copies,
            copy.in_flight,
            copy.gib,
            or_none(&copy.newest_copy),
            copy.newest_copy_age_hours
                .map_or_else(|| "-".to_owned(), |h| h.to_string()),
            copy.oldest_set_without_copy
                .clone()
                .unwrap_or_else(|| "none".to_owned())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::parameters::StackParameters;
    use function::model::SnapshotState;

    fn env() -> Environment {
        crate::config::example("dev")
    }

    #[test]
    fn status_reads_the_stack_and_the_snapshots() {
        let view = StackView {
            name: "smartvault-dev".into(),
            status: "UPDATE_COMPLETE".into(),
            parameters: StackParameters {
                artifact_sha256: Some("ab".into()),
                schedule_1_name: Some("daily".into()),
                schedule_1_expression: Some("cron(0 1 * * ? *)".into()),
                schedule_1_timezone: Some("UTC".into()),
                schedule_2_name: Some("monthly".into()),
                schedule_2_expression: Some("cron(0 3 1 * ? *)".into()),
                schedule_2_timezone: Some("Europe/Berlin".into()),
                schedule_3_name: Some(String::new()),
                ..StackParameters::default()
            },
            outputs: BTreeMap::from([("TopicArn".to_owned(), "arn:t".to_owned())]),
            termination_protection: true,
        };
        let snapshot = |id: &str, gib: i32, at: i64| Snapshot {
            size_gib: gib,
            start_time: time::OffsetDateTime::from_unix_timestamp(at).unwrap(),
            ..Snapshot::tagged(
                id,
                SnapshotState::Completed,
                &[(function::tags::SCHEDULE, "monthly")],
            )
        };
        let status = Status::new(
            &env(),
            "eu-west-1",
            Some(view),
            &[
                snapshot("snap-1", 8, 1_795_000_000),
                snapshot("snap-2", 20, 1_795_086_400),
            ],
        );
        assert_eq!(status.stack_status.as_deref(), Some("UPDATE_COMPLETE"));
        assert_eq!(status.artifact_sha256.as_deref(), Some("ab"));
        let schedules: Vec<(&str, &str, usize)> = status
            .schedules
            .iter()
            .map(|s| (s.name.as_str(), s.timezone.as_str(), s.snapshots))
            .collect();
        assert_eq!(
            schedules,
            [("daily", "UTC", 0), ("monthly", "Europe/Berlin", 2)]
        );
        assert!(
            status.schedules[0]
                .next_fire_time
                .as_deref()
                .is_some_and(|t| t.contains(" 01:00 UTC (")),
            "{:?}",
            status.schedules[0]
        );
        // Locks: how many of a schedule's snapshots a lock holds, until the last end; an
        // expired lock holds nothing.
        let mut schedules = status.schedules.clone();
        let lock = |state, at: i64| function::locks::SnapshotLock {
            state,
            expires_on: time::OffsetDateTime::from_unix_timestamp(at).ok(),
        };
        let locks = BTreeMap::from([
            (
                "snap-1".to_owned(),
                lock(function::locks::LockState::Compliance, 1_796_000_000),
            ),
            (
                "snap-2".to_owned(),
                lock(function::locks::LockState::Expired, 1_797_000_000),
            ),
        ]);
        with_locks(
            &mut schedules,
            &[
                snapshot("snap-1", 8, 1_795_000_000),
                snapshot("snap-2", 20, 1_795_086_400),
            ],
            &locks,
        );
        assert_eq!((schedules[0].locked, schedules[1].locked), (0, 1));
        assert_eq!(
            schedules[1].locked_until.as_deref(),
            Some("2026-11-30T00:53:20Z")
        );
        assert_eq!(schedules[0].locked_until, None);
        assert!(status.termination_protection);
        assert_eq!((status.snapshots, status.snapshots_gib), (2, 28));
        assert!(status.oldest_snapshot < status.newest_snapshot);
        assert_eq!(status.outputs["TopicArn"], "arn:t");

        let absent = Status::new(&env(), "eu-west-1", None, &[]);
        assert!(absent.copies.is_empty());
        assert_eq!(absent.stack_status, None);
        assert_eq!((absent.snapshots, absent.oldest_snapshot), (0, None));
    }

    #[test]
    fn each_copy_region_shows_its_copies_their_age_and_the_oldest_set_not_copied() {
        use function::tags;
        let env = crate::config::parse(
            "environments:\n  dev:\n    region: eu-west-1\n    notification_emails: [a@b.io]\n    copies: [{region: us-west-2}, {region: eu-central-1}]\n",
            "smartvault.yaml",
            "dev",
        )
        .unwrap();
        let made = |id: &str, at: &str, completed: bool, extra: &[(&str, &str)]| {
            let state = if completed {
                SnapshotState::Completed
            } else {
                SnapshotState::Pending
            };
            let tags: Vec<(&str, &str)> = [(tags::CREATED_AT, at)]
                .into_iter()
                .chain(extra.iter().copied())
                .collect();
            Snapshot::tagged(id, state, &tags)
        };
        let home = [
            made("snap-1", "2026-11-24T01:00:00Z", true, &[]),
            made("snap-2", "2026-11-25T01:00:00Z", true, &[]),
            made("snap-3", "2026-11-26T01:00:00Z", false, &[]),
        ];
        let copy_of = |id: &str, source: &str, at: &str, completed: bool| {
            made(id, at, completed, &[(tags::SOURCE_SNAPSHOT, source)])
        };
        let copies = vec![
            (
                "eu-central-1".to_owned(),
                vec![
                    copy_of("snap-c1", "snap-1", "2026-11-24T01:00:00Z", true),
                    copy_of("snap-c2", "snap-2", "2026-11-25T01:00:00Z", false),
                ],
            ),
            (
                "us-west-2".to_owned(),
                vec![copy_of("snap-w2", "snap-2", "2026-11-25T01:00:00Z", true)],
            ),
        ];
        let now = time::macros::datetime!(2026-11-26 03:00 UTC);
        let status = copy_status(&env, &home, &copies, now);
        assert_eq!(
            status[0],
            CopyStatus {
                region: "eu-central-1".into(),
                copies: 2,
                in_flight: 1,
                gib: 16,
                newest_copy: Some("2026-11-25T01:00:00Z".into()),
                newest_copy_age_hours: Some(26),
                // snap-3 is still pending at home: not yet due for a copy.
                oldest_set_without_copy: None,
            }
        );
        assert_eq!(status[1].copies, 1);
        assert_eq!(
            status[1].oldest_set_without_copy.as_deref(),
            Some("2026-11-24T01:00:00Z")
        );
    }
}
