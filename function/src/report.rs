//! The run's result: the SNS summary (subject and body), the JSON the invocation returns, and
//! the CloudWatch embedded-metric line. Pure: built from plain data, rendered to strings.

use crate::model::Job;
use crate::plan::{Skip, Subject};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use time::OffsetDateTime;

/// SNS rejects subjects of 100 characters or more.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// The invocation's result lists at most this many entries of each kind (with the full counts
/// beside them), so it stays far below Lambda's 6 MB response limit whatever the fleet's size.
pub const MAX_LISTED: usize = 1000;
/// The lists of a report that `response` bounds.
const LISTS: [&str; 5] = ["created", "deleted", "skipped", "failed", "warnings"];
/// A report handed from one invocation of a run to the next keeps at most this many entries
/// of each list (the counts stay whole), so that it fits an asynchronous invocation's payload
/// (256 KB; `event.rs` tests the largest one).
pub const MAX_CARRIED: usize = 100;
/// ...and cuts each reason, message and warning to this many characters.
pub const MAX_CARRIED_TEXT: usize = 200;
/// The SNS body lists at most this many entries of each section; the counts stay whole and the
/// log holds every entry.
pub const MAX_BODY_ENTRIES: usize = 100;

/// Everything one run did, or in a dry run would have done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub deployment: String,
    pub dry_run: bool,
    /// Which halves of the job this run does.
    pub job: Job,
    /// The schedule the run belongs to, whose retention its snapshots carry.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// How instances are selected, e.g. `Backup=true`.
    pub selector: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    /// Instances carrying the backup tag that this run considered.
    pub tagged_instances: usize,
    pub created: Vec<Created>,
    /// Snapshots locked by this run (schedules with a `lock`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locked: Vec<Locked>,
    pub deleted: Vec<Deleted>,
    pub skipped: Vec<Skip>,
    pub failed: Vec<Failure>,
    pub warnings: Vec<String>,
    /// Entries of each list left out to keep the report bounded; the whole count of a list is
    /// its length plus these.
    #[serde(default)]
    pub omitted: Counts,
    /// How many invocations (links) the run took so far.
    #[serde(default = "one")]
    pub links: u32,
    /// Set when this invocation handed the rest of the run on to the next link, which then
    /// publishes the whole run's summary; nothing was published by this one.
    #[serde(default)]
    pub handed_on: bool,
    /// Set when this run did not start because another run of the deployment is going on over
    /// several invocations (its topic mark, e.g. `run 2026-11-26T01:00:00Z link 3 at ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_to: Option<String>,
    /// The copies in each other region (none when the deployment copies nowhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<RegionCopies>,
    /// A restore test's results, one per sampled instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_tests: Vec<RestoreTest>,
    /// The region's coverage when the run started (a run backing up the whole fleet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::coverage::Summary>,
    // The three sections below are made by the link that ends a run, so a continuation never
    // carries them: they are written, never read back (which keeps their readers out of the
    // function's zip).
    /// A workload deployment's sets on their way to its vault account.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultShares>,
    /// A vault deployment's copies of its workload accounts' sets.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub vault_copies: Option<VaultCopies>,
    /// With a schedule's `consistency`: whether each covered instance's set was made
    /// application-consistent, and what was done when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// With the tripwire: how many sets' changed blocks this run read, and what it flagged.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub tripwire: Option<Tripwire>,
    /// With the archive tier or fast snapshot restore: what the run moved, enabled, disabled,
    /// and the restores from the archive an operator started that are ready.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub tiering: Option<Tiering>,
}

/// What a run did with storage tiers and fast snapshot restore (the link that ends the run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tiering {
    /// Snapshots sent to the archive tier.
    pub archived: Vec<TierArchived>,
    /// Snapshots that would pay in the archive but wait for its quotas.
    pub held_back: usize,
    /// Snapshots an operator's restore brought back from the archive, ready to restore now.
    pub restores_ready: Vec<RestoreReady>,
    pub fast_restore_enabled: Vec<crate::fast_plan::Change>,
    pub fast_restore_disabled: Vec<crate::fast_plan::Change>,
}

/// One snapshot sent to the archive tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierArchived {
    pub snapshot_id: String,
    pub instance_id: Option<String>,
    pub schedule: String,
    /// What it saves a month, in US cents, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saves_monthly_cents: Option<u64>,
}

/// A snapshot back from the archive tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReady {
    pub snapshot_id: String,
    pub instance_id: Option<String>,
    /// When a temporary restore goes back to the archive; `None` for a permanent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl Tiering {
    pub fn is_empty(&self) -> bool {
        self.archived.is_empty()
            && self.held_back == 0
            && self.restores_ready.is_empty()
            && self.fast_restore_enabled.is_empty()
            && self.fast_restore_disabled.is_empty()
    }

    /// The summary's lines for it.
    fn write(&self, out: &mut String, dry_run: bool) {
        use std::fmt::Write;
        if !self.restores_ready.is_empty() {
            let _ = writeln!(
                out,
                "\nBack from the archive tier, ready to restore ({}; finish with the \
                 `cargo xtask restore ... --resume` your restore printed):",
                plural(self.restores_ready.len(), "snapshot")
            );
            for ready in self.restores_ready.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(
                    out,
                    "  {} of {}{}",
                    ready.snapshot_id,
                    ready.instance_id.as_deref().unwrap_or("-"),
                    ready
                        .until
                        .as_ref()
                        .map(|u| format!(", until {u}"))
                        .unwrap_or_else(|| ", permanently".to_owned())
                );
            }
            more(
                out,
                self.restores_ready.len(),
                MAX_BODY_ENTRIES.min(self.restores_ready.len()),
            );
        }
        if !self.archived.is_empty() || self.held_back > 0 {
            let cents: u64 = self
                .archived
                .iter()
                .filter_map(|a| a.saves_monthly_cents)
                .sum();
            let _ = writeln!(
                out,
                "\n{} {} to the archive tier{}{}:",
                if dry_run { "Would move" } else { "Moved" },
                plural(self.archived.len(), "snapshot"),
                if cents > 0 {
                    format!(
                        ", saving about ${}.{:02} a month where measured",
                        cents / 100,
                        cents % 100
                    )
                } else {
                    String::new()
                },
                if self.held_back > 0 {
                    format!(" ({} more wait for the archive's quotas)", self.held_back)
                } else {
                    String::new()
                }
            );
            for a in self.archived.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(
                    out,
                    "  {} of {} ({})",
                    a.snapshot_id,
                    a.instance_id.as_deref().unwrap_or("-"),
                    a.schedule
                );
            }
            more(
                out,
                self.archived.len(),
                MAX_BODY_ENTRIES.min(self.archived.len()),
            );
        }
        for (list, verb) in [
            (&self.fast_restore_enabled, "enabled"),
            (&self.fast_restore_disabled, "disabled"),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\nFast snapshot restore {verb} on {}:",
                plural(list.len(), "snapshot")
            );
            for change in list.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(
                    out,
                    "  {} in {}",
                    change.snapshot_id,
                    change.zones.join(", ")
                );
            }
            more(out, list.len(), MAX_BODY_ENTRIES.min(list.len()));
        }
    }
}

/// What the tripwire read and flagged in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tripwire {
    /// Snapshots whose changed blocks were read and recorded.
    pub measured: usize,
    pub alerts: Vec<TripwireAlert>,
    /// Every instance whose expiry a trip suspends (flagged by this run or an earlier one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trips: Vec<TripHeld>,
    /// The environment's name, for the commands the summary gives; `None` names it `<env>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// What this deployment's kept sets store, from their recorded changed blocks
    /// (`cost::estimate`): the bytes, whether exact, and how many snapshots are not measured.
    #[serde(default)]
    pub stored_bytes: u64,
    #[serde(default)]
    pub stored_exact: bool,
    #[serde(default)]
    pub unmeasured: usize,
    /// A completion event's run: its trips and stored bytes are its instances' only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// An instance the tripwire flagged and no operator has cleared yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TripHeld {
    pub instance_id: String,
    /// When it was flagged, and when the suspicious set was made.
    pub since: String,
    pub suspicious_set: String,
    /// The suspicious snapshots (one per volume that spiked).
    pub snapshots: Vec<String>,
    /// Flagged by this run.
    pub new: bool,
    /// The clean restore point: the newest set before the spike, when there is one.
    pub clean_point: Option<String>,
    /// The lock that pins it, as EC2 will hold it after this run.
    pub pinned: Option<String>,
}

/// One snapshot that changed far more of its volume than the volume's history makes normal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TripwireAlert {
    pub instance_id: String,
    pub volume_id: String,
    pub snapshot_id: String,
    /// The share of the volume it changed, and the volume's usual peak and the threshold, in
    /// thousandths.
    pub changed_permille: u32,
    /// The volume's median change: with the usual peak, its normal range.
    pub median_permille: u32,
    pub usual_peak_permille: u32,
    pub threshold_permille: u32,
    /// With sampling: the sampled changed blocks' mean entropy, in thousandths of a bit per
    /// byte (8,000 is random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_millibits: Option<u32>,
}

/// What a workload run did towards its vault account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultShares {
    pub account: String,
    /// Snapshots shared with the vault by this run.
    pub shared: usize,
    /// Shares removed by this run: the vault has its copy.
    pub unshared: usize,
    /// The longest any instance's sets have waited for the vault, in hours; `None` when it was
    /// not measured (the vault's copies could not be read, or a completion event only shared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_hours: Option<u32>,
    pub max_lag_hours: u32,
    /// Instances whose vault lag passed `max_lag_hours`, with since when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behind: Vec<String>,
}

/// What a vault run did with its copies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultCopies {
    /// Copies started by this run.
    pub started: usize,
    pub completed: usize,
    pub in_flight: usize,
    /// Shared snapshots left for the next run (EC2's copies in flight).
    pub waiting: usize,
    /// Copies past the vault's retention deleted.
    pub deleted: usize,
}

fn one() -> u32 {
    1
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// A number per list of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub created: usize,
    /// Snapshots locked (schedules with a `lock`); left out of the JSON when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub locked: usize,
    pub deleted: usize,
    pub skipped: usize,
    pub failed: usize,
    pub warnings: usize,
}

/// The run's consistent sets: how many instances achieved it, how many did not, and each
/// instance's outcome (the list bounded like the others, the counts whole).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    pub achieved: usize,
    pub missed: usize,
    pub instances: Vec<crate::consistency::Outcome>,
}

impl Consistency {
    pub fn add(&mut self, outcomes: Vec<crate::consistency::Outcome>) {
        for outcome in outcomes {
            if outcome.achieved {
                self.achieved += 1;
            } else {
                self.missed += 1;
            }
            self.instances.push(outcome);
        }
    }
}

/// A snapshot made (or, in a dry run, that would be made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub instance_id: String,
    pub instance_name: Option<String>,
    pub volume_id: String,
    pub device_name: String,
    /// `None` in a dry run.
    pub snapshot_id: Option<String>,
}

/// A snapshot locked (or, in a dry run, that would be locked) until its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    pub snapshot_id: String,
    /// The copy region, for a copy; `None` in the function's own region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub mode: crate::locks::LockMode,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// A snapshot deleted (or, in a dry run, that would be deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub snapshot_id: String,
    pub volume_id: Option<String>,
    pub instance_id: Option<String>,
    pub size_gib: i32,
}

/// What a run did with the copies in one other region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionCopies {
    pub region: String,
    /// Copies started by this run (or, in a dry run, that would be).
    pub started: usize,
    /// This deployment's completed copies there when the run read the region.
    pub completed: usize,
    /// ...and those still in flight (`pending`).
    pub in_flight: usize,
    /// Snapshots whose copy waits for the next sweep: the region's copies in flight were at
    /// EC2's limit, or the invocation's time ran out.
    pub waiting: usize,
    /// Expired or failed copies deleted there.
    pub deleted: usize,
    /// Copy calls that failed (each is listed among the run's failures).
    pub failed: usize,
}

/// One instance's restore test: a volume was created from each snapshot of its newest
/// completed set, waited for, and deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTest {
    pub instance_id: String,
    /// The set tested: its run's start.
    pub set_created_at: String,
    pub availability_zone: String,
    pub volumes: usize,
    pub size_gib: i64,
    pub status: TestStatus,
    /// The slowest volume's time from `CreateVolume` to `available`, in milliseconds (to
    /// the poll that saw it); `None` when none became available.
    pub slowest_ms: Option<u64>,
}

/// How a restore test went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestStatus {
    /// Every volume became `available`.
    Passed,
    /// A volume was refused, went to `error`, or was not `available` in time.
    Failed,
    /// A dry run: what a test would restore.
    Planned,
}

/// An AWS call that failed for one instance, snapshot or the whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub subject: Option<Subject>,
    pub operation: String,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(subject) = &self.subject {
            write!(f, "{subject}: ")?;
        }
        write!(
            f,
            "{} failed: {}: {}",
            self.operation, self.code, self.message
        )
    }
}

fn default_schedule() -> String {
    crate::tags::DEFAULT_SCHEDULE.to_owned()
}

impl RunReport {
    /// An empty report of a run by `deployment` that started at `started_at`.
    pub fn new(
        deployment: &str,
        dry_run: bool,
        job: Job,
        selector: String,
        started_at: OffsetDateTime,
    ) -> Self {
        RunReport {
            deployment: deployment.to_owned(),
            dry_run,
            job,
            schedule: crate::tags::DEFAULT_SCHEDULE.to_owned(),
            selector,
            started_at,
            duration_ms: 0,
            tagged_instances: 0,
            created: Vec::new(),
            locked: Vec::new(),
            deleted: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
            warnings: Vec::new(),
            omitted: Counts::default(),
            links: 1,
            handed_on: false,
            deferred_to: None,
            copies: Vec::new(),
            restore_tests: Vec::new(),
            coverage: None,
            vault: None,
            vault_copies: None,
            tripwire: None,
            consistency: None,
            tiering: None,
        }
    }

    /// The whole count of each list, the omitted entries included.
    pub fn totals(&self) -> Counts {
        Counts {
            created: self.created.len() + self.omitted.created,
            locked: self.locked.len() + self.omitted.locked,
            deleted: self.deleted.len() + self.omitted.deleted,
            skipped: self.skipped.len() + self.omitted.skipped,
            failed: self.failed.len() + self.omitted.failed,
            warnings: self.warnings.len() + self.omitted.warnings,
        }
    }

    /// The report with each list cut to its first `max` entries (the rest counted in
    /// `omitted`), and each reason, message and warning to `MAX_CARRIED_TEXT` characters.
    pub fn bounded(mut self, max: usize) -> Self {
        use crate::tags::fit;
        for skip in &mut self.skipped {
            skip.reason = fit(&skip.reason, MAX_CARRIED_TEXT);
        }
        for failure in &mut self.failed {
            failure.message = fit(&failure.message, MAX_CARRIED_TEXT);
        }
        for warning in &mut self.warnings {
            *warning = fit(warning, MAX_CARRIED_TEXT);
        }
        fn cut<T>(list: &mut Vec<T>, omitted: &mut usize, max: usize) {
            if list.len() > max {
                *omitted += list.len() - max;
                list.truncate(max);
            }
        }
        cut(&mut self.created, &mut self.omitted.created, max);
        cut(&mut self.locked, &mut self.omitted.locked, max);
        cut(&mut self.deleted, &mut self.omitted.deleted, max);
        cut(&mut self.skipped, &mut self.omitted.skipped, max);
        cut(&mut self.failed, &mut self.omitted.failed, max);
        cut(&mut self.warnings, &mut self.omitted.warnings, max);
        if let Some(consistency) = &mut self.consistency {
            // The misses first: they are what a reader needs.
            consistency.instances.sort_by_key(|o| o.achieved);
            consistency.instances.truncate(max);
            for outcome in &mut consistency.instances {
                outcome.detail = fit(&outcome.detail, MAX_CARRIED_TEXT);
            }
        }
        self
    }

    /// The SNS subject: deployment and counts, always under 100 characters.
    pub fn subject(&self) -> String {
        self.subject_where("")
    }

    /// The subject with `place` after the deployment in its brackets (the deployment is cut
    /// to fit, never the place).
    fn subject_where(&self, place: &str) -> String {
        let totals = self.totals();
        let passed = self.tests_with(TestStatus::Passed);
        let counts = if self.job == Job::RestoreTest && self.dry_run {
            format!(
                " restore test dry run: {} to test",
                self.tests_with(TestStatus::Planned)
            )
        } else if self.job == Job::RestoreTest {
            format!(" restore test: {passed} passed, {} failed", totals.failed)
        } else if self.dry_run {
            format!(
                " dry run: {} to create, {} to delete, {} failed",
                totals.created, totals.deleted, totals.failed
            )
        } else {
            format!(
                ": {} created, {} deleted, {} failed",
                totals.created, totals.deleted, totals.failed
            )
        };
        let fixed =
            "SmartVault []".chars().count() + counts.chars().count() + place.chars().count();
        let room = MAX_SUBJECT_CHARS.saturating_sub(fixed);
        let name = crate::tags::fit(&self.deployment, room);
        format!("SmartVault [{name}{place}]{counts}")
    }

    /// The subject for an organization's central topic: the deployment with the account and
    /// region it ran in (`smartvault-org 111111111111/eu-west-1`), which one inbox tells apart.
    pub fn central_subject(&self, account: &str, region: &str) -> String {
        self.subject_where(&format!(" {account}/{region}"))
    }

    /// How many of the restore tests ended with `status`.
    pub fn tests_with(&self, status: TestStatus) -> usize {
        self.restore_tests
            .iter()
            .filter(|t| t.status == status)
            .count()
    }

    /// The SNS message body: what was created, deleted, skipped and failed, and why. Each
    /// section lists at most `MAX_BODY_ENTRIES` entries and says how many more there are.
    pub fn body(&self) -> String {
        let mut out = String::new();
        let totals = self.totals();
        let (create_verb, delete_verb) = if self.dry_run {
            ("Would create", "Would delete")
        } else {
            ("Created", "Deleted")
        };
        let _ = writeln!(
            out,
            "SmartVault run summary for deployment {}",
            self.deployment
        );
        let schedule = if self.job == Job::RestoreTest {
            String::new()
        } else {
            format!(", schedule {}", self.schedule)
        };
        let _ = writeln!(
            out,
            "Started {} ({}{schedule}), took {:.1} s{}",
            crate::tags::format_time(self.started_at),
            self.job,
            self.duration_ms as f64 / 1000.0,
            if self.links > 1 {
                format!(" over {} invocations", self.links)
            } else {
                String::new()
            }
        );
        if self.dry_run {
            let _ = writeln!(out, "DRY RUN: nothing was created or deleted.");
        }
        if self.job.backs_up() && self.tagged_instances == 0 {
            let _ = writeln!(
                out,
                "\nNo instance is tagged {}: nothing to back up.",
                self.selector
            );
        }

        if totals.created > 0 {
            let _ = writeln!(
                out,
                "\n{create_verb} {}:",
                plural(totals.created, "snapshot")
            );
            let mut current: Option<&str> = None;
            for created in self.created.iter().take(MAX_BODY_ENTRIES) {
                if current != Some(created.instance_id.as_str()) {
                    current = Some(created.instance_id.as_str());
                    match &created.instance_name {
                        Some(name) => {
                            let _ = writeln!(out, "  {} ({name})", created.instance_id);
                        }
                        None => {
                            let _ = writeln!(out, "  {}", created.instance_id);
                        }
                    }
                }
                let snapshot = created.snapshot_id.as_deref().unwrap_or("(dry run)");
                let _ = writeln!(
                    out,
                    "    {} {} -> {snapshot}",
                    created.volume_id, created.device_name
                );
            }
            more(&mut out, totals.created, self.created.len());
        }
        if let Some(consistency) = &self.consistency {
            let mode = consistency
                .instances
                .first()
                .map_or("", |o| o.mode.as_str());
            let _ = writeln!(
                out,
                "\nConsistency ({mode}): {} of {} application-consistent",
                consistency.achieved,
                plural(consistency.achieved + consistency.missed, "instance"),
            );
            let missed: Vec<_> = consistency
                .instances
                .iter()
                .filter(|o| !o.achieved)
                .collect();
            for outcome in missed.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(
                    out,
                    "  {}: not achieved: {}",
                    outcome.instance_id, outcome.detail
                );
            }
            more(&mut out, consistency.missed, missed.len());
        }
        if let Some(tiering) = &self.tiering {
            tiering.write(&mut out, self.dry_run);
        }
        if totals.locked > 0 {
            let _ = writeln!(
                out,
                "\n{} {} until each one's expiry:",
                if self.dry_run { "Would lock" } else { "Locked" },
                plural(totals.locked, "snapshot")
            );
            for locked in self.locked.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(
                    out,
                    "  {} {} until {}",
                    locked.snapshot_id,
                    locked.mode.as_str(),
                    crate::tags::format_time(locked.until)
                );
            }
            more(&mut out, totals.locked, self.locked.len());
        }
        if totals.deleted > 0 {
            let total: i64 = self.deleted.iter().map(|d| i64::from(d.size_gib)).sum();
            let size = if self.omitted.deleted == 0 {
                format!(" ({total} GiB)")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "\n{delete_verb} {}{size}:",
                plural(totals.deleted, "expired snapshot")
            );
            for deleted in self.deleted.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(
                    out,
                    "  {} (volume {}, instance {}, {} GiB)",
                    deleted.snapshot_id,
                    deleted.volume_id.as_deref().unwrap_or("unknown"),
                    deleted.instance_id.as_deref().unwrap_or("unknown"),
                    deleted.size_gib
                );
            }
            more(&mut out, totals.deleted, self.deleted.len());
        }
        if !self.copies.is_empty() {
            let _ = writeln!(out, "\nCopies in other regions:");
            for region in &self.copies {
                let _ = writeln!(
                    out,
                    "  {}: {} started, {} completed, {} in flight, {} waiting for the next \
                     sweep, {} expired or failed deleted, {} failed",
                    region.region,
                    region.started,
                    region.completed,
                    region.in_flight,
                    region.waiting,
                    region.deleted,
                    region.failed
                );
            }
        }
        if let Some(vault) = &self.vault {
            let lag = match vault.lag_hours {
                Some(hours) => format!("vault lag {hours} h (bound {} h)", vault.max_lag_hours),
                None => "vault lag not measured by this run".to_owned(),
            };
            let _ = writeln!(
                out,
                "\nVault account {}: {} shared, {} shares removed (copied); {lag}",
                vault.account, vault.shared, vault.unshared
            );
            for behind in &vault.behind {
                let _ = writeln!(out, "  behind: {behind}");
            }
        }
        if let Some(copies) = &self.vault_copies {
            let _ = writeln!(
                out,
                "\nVault copies: {} started, {} completed, {} in flight, {} waiting for the next \
                 run, {} expired deleted",
                copies.started, copies.completed, copies.in_flight, copies.waiting, copies.deleted
            );
        }
        if let Some(tripwire) = &self.tripwire {
            tripwire_section(&mut out, tripwire);
        }
        if self.job == Job::RestoreTest {
            self.restore_section(&mut out);
        }
        if let Some(coverage) = &self.coverage {
            coverage_section(&mut out, coverage);
        }
        if totals.skipped > 0 {
            let _ = writeln!(out, "\nSkipped {}:", totals.skipped);
            for skip in self.skipped.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(out, "  {}: {}", skip.subject, skip.reason);
            }
            more(&mut out, totals.skipped, self.skipped.len());
        }
        if totals.failed > 0 {
            let _ = writeln!(out, "\nFAILED {}:", totals.failed);
            for failure in self.failed.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(out, "  {failure}");
            }
            more(&mut out, totals.failed, self.failed.len());
        }
        if totals.warnings > 0 {
            let _ = writeln!(out, "\nWarnings:");
            for warning in self.warnings.iter().take(MAX_BODY_ENTRIES) {
                let _ = writeln!(out, "  {warning}");
            }
            more(&mut out, totals.warnings, self.warnings.len());
        }
        if totals.created == 0
            && totals.deleted == 0
            && totals.failed == 0
            && self.tagged_instances > 0
            && self.job != Job::RestoreTest
        {
            let _ = writeln!(out, "\nNothing to do this time.");
        }
        out
    }

    /// The restore test's section: one line per instance tested.
    fn restore_section(&self, out: &mut String) {
        let tests = &self.restore_tests;
        if tests.is_empty() {
            let _ = writeln!(
                out,
                "\nRestore test: no instance has a completed set of this deployment to test."
            );
            return;
        }
        let volumes: usize = tests.iter().map(|t| t.volumes).sum();
        let _ = if self.dry_run {
            writeln!(
                out,
                "\nRestore test (dry run): would restore {} of {}:",
                plural(volumes, "volume"),
                plural(tests.len(), "instance")
            )
        } else {
            writeln!(
                out,
                "\nRestore test: {} of {} passed ({} created from their snapshots, waited \
                 for and deleted):",
                self.tests_with(TestStatus::Passed),
                plural(tests.len(), "instance"),
                plural(volumes, "volume")
            )
        };
        for test in tests.iter().take(MAX_BODY_ENTRIES) {
            let outcome = match (test.status, test.slowest_ms) {
                (TestStatus::Passed, Some(ms)) if ms < 1000 => {
                    format!("PASSED, available in {ms} ms")
                }
                (TestStatus::Passed, Some(ms)) => {
                    format!("PASSED, available in {:.1} s", ms as f64 / 1000.0)
                }
                (TestStatus::Passed, None) => "PASSED".to_owned(),
                (TestStatus::Failed, _) => "FAILED (see the failures below)".to_owned(),
                (TestStatus::Planned, _) => "would be tested".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {}: set of {}, {} ({} GiB) in {}: {outcome}",
                test.instance_id,
                test.set_created_at,
                plural(test.volumes, "volume"),
                test.size_gib,
                test.availability_zone
            );
        }
        more(out, tests.len(), tests.len());
    }

    /// The invocation's result: the report with each list cut to its first `MAX_LISTED`
    /// entries, and `counts` giving every list's full length.
    pub fn response(&self) -> serde_json::Value {
        let totals = serde_json::to_value(self.totals()).unwrap_or_default();
        let mut value = serde_json::to_value(self).unwrap_or_default();
        for list in LISTS {
            if let Some(items) = value.get_mut(list).and_then(|v| v.as_array_mut()) {
                items.truncate(MAX_LISTED);
            }
        }
        value["counts"] = totals;
        value
    }

    /// A CloudWatch embedded-metric-format document for this run.
    pub fn metrics(&self, timestamp_ms: i64) -> serde_json::Value {
        let totals = self.totals();
        let names = [
            ("SnapshotsCreated", "Count"),
            ("SnapshotsLocked", "Count"),
            ("SnapshotsDeleted", "Count"),
            ("Skipped", "Count"),
            ("Failures", "Count"),
            ("RunDuration", "Milliseconds"),
            ("CopiesStarted", "Count"),
            ("CopiesWaiting", "Count"),
        ];
        // The vault's figures, only in the deployments that have one (or are one).
        let vault = [("VaultLagHours", "None")];
        let vault_copies = [
            ("VaultCopiesStarted", "Count"),
            ("VaultCopiesWaiting", "Count"),
        ];
        let tripwire = [("TripwireAlerts", "Count"), ("TrippedInstances", "Count")];
        let consistency = [
            ("ConsistentInstances", "Count"),
            ("InconsistentInstances", "Count"),
        ];
        // A restore test's own figures, only in its runs (a backup run's zero would read as
        // a test that took no time).
        let tests = [
            ("RestoreTestsPassed", "Count"),
            ("RestoreTestsFailed", "Count"),
            ("RestoreTestSeconds", "Seconds"),
        ];
        // Coverage, only in the runs that assessed it.
        let covered = [
            ("UnprotectedInstances", "Count"),
            ("OverdueInstances", "Count"),
            ("OldestBackupAgeHours", "None"),
        ];
        let mut names: Vec<(&str, &str)> = names.to_vec();
        if self.job == Job::RestoreTest {
            names.extend(tests);
        }
        if self.coverage.is_some() {
            names.extend(covered);
        }
        let lag = self.vault.as_ref().and_then(|v| v.lag_hours);
        if lag.is_some() {
            names.extend(vault);
        }
        if self.vault_copies.is_some() {
            names.extend(vault_copies);
        }
        if self.consistency.is_some() {
            names.extend(consistency);
        }
        if let Some(run) = &self.tripwire {
            // A completion event's run sees its instances only: it raises the count of tripped
            // instances, never lowers it (the alarm keeps its state until a scheduled run
            // counts them all).
            let counted = !run.partial || !run.trips.is_empty();
            names.extend(
                tripwire
                    .into_iter()
                    .filter(|(name, _)| counted || *name != "TrippedInstances"),
            );
        }
        let slowest_ms = self
            .restore_tests
            .iter()
            .filter_map(|t| t.slowest_ms)
            .max()
            .unwrap_or(0);
        let mut document = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "SmartVault",
                    "Dimensions": [["Deployment"]],
                    "Metrics": names.iter().map(|(name, unit)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
                }],
            },
            "Deployment": self.deployment,
            "SnapshotsCreated": totals.created,
            "SnapshotsLocked": totals.locked,
            "SnapshotsDeleted": totals.deleted,
            "Skipped": totals.skipped,
            "Failures": totals.failed,
            "RunDuration": self.duration_ms,
            "CopiesStarted": self.copies.iter().map(|c| c.started).sum::<usize>(),
            "CopiesWaiting": self.copies.iter().map(|c| c.waiting).sum::<usize>(),
        });
        if let Some(hours) = lag {
            document["VaultLagHours"] = hours.into();
        }
        if let Some(tripwire) = &self.tripwire {
            document["TripwireAlerts"] = tripwire.alerts.len().into();
            if !tripwire.partial || !tripwire.trips.is_empty() {
                document["TrippedInstances"] = tripwire.trips.len().into();
            }
        }
        if let Some(consistency) = &self.consistency {
            document["ConsistentInstances"] = consistency.achieved.into();
            document["InconsistentInstances"] = consistency.missed.into();
        }
        if let Some(copies) = &self.vault_copies {
            document["VaultCopiesStarted"] = copies.started.into();
            document["VaultCopiesWaiting"] = copies.waiting.into();
        }
        if let Some(coverage) = &self.coverage {
            document["UnprotectedInstances"] = coverage.unprotected.into();
            document["OverdueInstances"] = coverage.overdue.into();
            document["OldestBackupAgeHours"] = coverage
                .oldest_newest_hours
                .values()
                .copied()
                .max()
                .unwrap_or(0)
                .into();
        }
        if self.job == Job::RestoreTest {
            document["RestoreTestsPassed"] = self.tests_with(TestStatus::Passed).into();
            // A test that could not even start (no set, no zone) fails as much as a volume
            // that never became available.
            document["RestoreTestsFailed"] =
                (self.tests_with(TestStatus::Failed) + self.failed_before_testing()).into();
            document["RestoreTestSeconds"] = (slowest_ms as f64 / 1000.0).into();
        }
        document
    }

    /// Every embedded-metric line of the run: [`Self::metrics`], then
    /// [`Self::schedule_metrics`].
    pub fn metric_lines(&self, timestamp_ms: i64) -> Vec<serde_json::Value> {
        std::iter::once(self.metrics(timestamp_ms))
            .chain(self.schedule_metrics(timestamp_ms))
            .collect()
    }

    /// One embedded-metric document per schedule: `OldestBackupAgeHours` of that schedule,
    /// under the dimensions `Deployment` and `Schedule`, which the stack's overdue alarms
    /// watch. Every run that assessed coverage reports every schedule, so a schedule that
    /// stopped running shows its age growing in the other schedules' runs.
    pub fn schedule_metrics(&self, timestamp_ms: i64) -> Vec<serde_json::Value> {
        let Some(coverage) = &self.coverage else {
            return Vec::new();
        };
        coverage
            .oldest_newest_hours
            .iter()
            .map(|(schedule, hours)| {
                serde_json::json!({
                    "_aws": {
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": "SmartVault",
                            "Dimensions": [["Deployment", "Schedule"]],
                            "Metrics": [{"Name": "OldestBackupAgeHours", "Unit": "None"}],
                        }],
                    },
                    "Deployment": self.deployment,
                    "Schedule": schedule,
                    "OldestBackupAgeHours": hours,
                })
            })
            .collect()
    }

    /// Instances a restore test could not start on (reported as failures without a test).
    fn failed_before_testing(&self) -> usize {
        let tested: std::collections::BTreeSet<&str> = self
            .restore_tests
            .iter()
            .map(|t| t.instance_id.as_str())
            .collect();
        let untested: std::collections::BTreeSet<&str> = self
            .failed
            .iter()
            .filter_map(|f| match &f.subject {
                Some(crate::plan::Subject::Instance(id)) if !tested.contains(id.as_str()) => {
                    Some(id.as_str())
                }
                _ => None,
            })
            .collect();
        untested.len()
    }
}

/// The summary's one line of totals: what this deployment's sets store and cost a month.
fn stored_line(out: &mut String, tripwire: &Tripwire, env: &str, price: f64) {
    let _ = writeln!(
        out,
        "\nStored: {:.2} GiB in this deployment's sets, about ${:.2} a month at ${price} per \
         GB-month (the standard tier's US East list price){}; `cargo xtask cost --env {env}` \
         shows each instance",
        tripwire.stored_bytes as f64 / (1u64 << 30) as f64,
        crate::cost::monthly(tripwire.stored_bytes, price),
        if tripwire.stored_exact {
            String::new()
        } else if tripwire.unmeasured > 0 {
            format!(
                " (at least: {} snapshots' changed blocks are not read yet)",
                tripwire.unmeasured
            )
        } else {
            " (at least: some sets were measured before what they hold was recorded)".to_owned()
        }
    );
}

/// The tripwire's part of the body: this run's alerts, then every instance whose expiry a
/// trip suspends, with its clean restore point, the command that restores it and the one that
/// clears the trip.
fn tripwire_section(out: &mut String, tripwire: &Tripwire) {
    let percent = |permille: u32| f64::from(permille) / 10.0;
    let env = tripwire.environment.as_deref().unwrap_or("<env>");
    let price = crate::cost::STANDARD_PRICE_PER_GB_MONTH;
    // A completion event's run sees its instances only: the totals are the scheduled run's.
    if !tripwire.partial {
        stored_line(out, tripwire, env, price);
    }
    if !tripwire.alerts.is_empty() {
        let _ = writeln!(
            out,
            "\nTRIPWIRE: sets that changed far more than their volume's history makes normal \
             (ransomware rewrites volumes this way):"
        );
    }
    for alert in tripwire.alerts.iter().take(MAX_BODY_ENTRIES) {
        let _ = writeln!(
            out,
            "  {} volume {}: {} changed {:.1}% of the volume (normal {:.1}-{:.1}%, threshold \
             {:.1}%){}",
            alert.instance_id,
            alert.volume_id,
            alert.snapshot_id,
            percent(alert.changed_permille),
            percent(alert.median_permille),
            percent(alert.usual_peak_permille),
            percent(alert.threshold_permille),
            alert
                .sampled_millibits
                .map(|m| format!(
                    "; its sampled changed blocks average {:.2} bits per byte (random: 8)",
                    f64::from(m) / 1000.0
                ))
                .unwrap_or_default()
        );
    }
    if tripwire.trips.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nTRIPWIRE: expiry suspended for {} instance(s) until an operator clears it:",
        tripwire.trips.len()
    );
    for trip in tripwire.trips.iter().take(MAX_BODY_ENTRIES) {
        let _ = writeln!(
            out,
            "  {}{}: flagged {} (set of {}: {})",
            trip.instance_id,
            if trip.new { " (new)" } else { "" },
            trip.since,
            trip.suspicious_set,
            trip.snapshots.join(", ")
        );
        match &trip.clean_point {
            Some(at) => {
                let _ = writeln!(
                    out,
                    "    clean restore point: {at}, pinned: {}\n    restore it: `{}`",
                    trip.pinned
                        .as_deref()
                        .unwrap_or("not yet (the next run locks it)"),
                    crate::tripwire::restore_command(env, &trip.instance_id, at)
                );
            }
            None => {
                let _ = writeln!(out, "    no set of it before the spike to restore");
            }
        }
        let _ = writeln!(
            out,
            "    once handled: `{}`",
            crate::tripwire::clear_command(env, &trip.instance_id)
        );
    }
}

/// The coverage section: how many instances are protected, overdue, not yet backed up and
/// unprotected, the first few of each, and each schedule's oldest newest set.
fn coverage_section(out: &mut String, coverage: &crate::coverage::Summary) {
    let _ = writeln!(
        out,
        "\nCoverage: {} protected, {} overdue, {} without a backup yet, {} unprotected (no \
         backup tag), {} opted out",
        coverage.protected,
        coverage.overdue,
        coverage.no_backup_yet,
        coverage.unprotected,
        coverage.opted_out
    );
    let list = |out: &mut String, what: &str, ids: &[String], total: usize| {
        if total > 0 {
            let more = if total > ids.len() {
                format!(" and {} more", total - ids.len())
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {what}: {}{more}", ids.join(", "));
        }
    };
    list(out, "OVERDUE", &coverage.overdue_ids, coverage.overdue);
    list(
        out,
        "without a backup yet",
        &coverage.no_backup_yet_ids,
        coverage.no_backup_yet,
    );
    list(
        out,
        "unprotected",
        &coverage.unprotected_ids,
        coverage.unprotected,
    );
    for (schedule, hours) in &coverage.oldest_newest_hours {
        let _ = writeln!(
            out,
            "  schedule {schedule}: the oldest newest backup is {hours} hours old"
        );
    }
    if coverage.overdue + coverage.unprotected > 0 {
        let _ = writeln!(
            out,
            "  (`cargo xtask coverage --env <env>` shows every instance and since when)"
        );
    }
}

/// The line that says how many entries of a section the body leaves out.
fn more(out: &mut String, total: usize, listed: usize) {
    let shown = listed.min(MAX_BODY_ENTRIES);
    if total > shown {
        let _ = writeln!(
            out,
            "  ... and {} more (the function's log lists every one)",
            total - shown
        );
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn report() -> RunReport {
        RunReport {
            deployment: "prod".into(),
            dry_run: false,
            job: Job::BackupAndCleanup,
            schedule: "daily".into(),
            selector: "Backup=true".into(),
            started_at: datetime!(2026-11-26 01:00 UTC),
            duration_ms: 1500,
            tagged_instances: 2,
            created: vec![
                Created {
                    instance_id: "i-1".into(),
                    instance_name: Some("web-1".into()),
                    volume_id: "vol-1".into(),
                    device_name: "/dev/xvda".into(),
                    snapshot_id: Some("snap-1".into()),
                },
                Created {
                    instance_id: "i-1".into(),
                    instance_name: Some("web-1".into()),
                    volume_id: "vol-2".into(),
                    device_name: "/dev/sdf".into(),
                    snapshot_id: Some("snap-2".into()),
                },
            ],
            locked: Vec::new(),
            deleted: vec![Deleted {
                snapshot_id: "snap-0".into(),
                volume_id: Some("vol-1".into()),
                instance_id: Some("i-1".into()),
                size_gib: 8,
            }],
            skipped: vec![Skip::new(
                Subject::Instance("i-2".into()),
                "instance is stopping",
            )],
            failed: vec![Failure {
                subject: Some(Subject::Instance("i-3".into())),
                operation: "CreateSnapshots".into(),
                code: "IncorrectState".into(),
                message: "the instance is terminated".into(),
            }],
            warnings: vec!["instance i-1: bad override".into()],
            omitted: Counts::default(),
            links: 1,
            handed_on: false,
            deferred_to: None,
            copies: vec![RegionCopies {
                region: "us-west-2".into(),
                started: 2,
                completed: 40,
                in_flight: 3,
                waiting: 1,
                deleted: 4,
                failed: 0,
            }],
            restore_tests: Vec::new(),
            coverage: None,
            vault: None,
            vault_copies: None,
            tripwire: None,
            consistency: None,
            tiering: None,
        }
    }

    #[test]
    fn a_run_that_assessed_coverage_reports_it_in_the_body_and_the_metrics() {
        let covered = RunReport {
            coverage: Some(crate::coverage::Summary {
                protected: 40,
                overdue: 12,
                no_backup_yet: 1,
                opted_out: 2,
                unprotected: 3,
                overdue_ids: (0..10).map(|n| format!("i-{n}")).collect(),
                no_backup_yet_ids: vec!["i-new".into()],
                unprotected_ids: vec!["i-a".into(), "i-b".into(), "i-c".into()],
                oldest_newest_hours: [("daily".to_owned(), 30), ("weekly".to_owned(), 100)]
                    .into_iter()
                    .collect(),
            }),
            ..report()
        };
        let body = covered.body();
        assert!(
            body.contains(
                "\nCoverage: 40 protected, 12 overdue, 1 without a backup yet, 3 unprotected \
                 (no backup tag), 2 opted out\n  OVERDUE: i-0, i-1, i-2, i-3, i-4, i-5, i-6, \
                 i-7, i-8, i-9 and 2 more\n  without a backup yet: i-new\n  unprotected: i-a, \
                 i-b, i-c\n  schedule daily: the oldest newest backup is 30 hours old\n  \
                 schedule weekly: the oldest newest backup is 100 hours old\n"
            ),
            "{body}"
        );
        let metrics = covered.metrics(7);
        assert_eq!(metrics["UnprotectedInstances"], 3);
        assert_eq!(metrics["OverdueInstances"], 12);
        assert_eq!(metrics["OldestBackupAgeHours"], 100);
        let names = metrics["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("OverdueInstances"), "{names}");
        let per_schedule = covered.schedule_metrics(7);
        assert_eq!(per_schedule.len(), 2);
        assert_eq!(
            covered.metric_lines(7),
            [vec![metrics], per_schedule.clone()].concat(),
            "the run's line, then one per schedule"
        );
        assert_eq!(per_schedule[0]["Schedule"], "daily");
        assert_eq!(per_schedule[0]["OldestBackupAgeHours"], 30);
        assert_eq!(
            per_schedule[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Deployment", "Schedule"]])
        );
        // A run that did not assess coverage says and emits nothing of it.
        assert!(!report().body().contains("Coverage:"));
        assert!(report().metrics(7).get("OverdueInstances").is_none());
        assert!(report().schedule_metrics(7).is_empty());
    }

    /// A restore test's report: i-1 passed, i-2 failed, i-3 had nothing to test.
    fn restore_test_report() -> RunReport {
        let test = |id: &str, status, slowest_ms| RestoreTest {
            instance_id: id.into(),
            set_created_at: "2026-11-25T01:00:00Z".into(),
            availability_zone: "us-east-1a".into(),
            volumes: 3,
            size_gib: 24,
            status,
            slowest_ms,
        };
        let failure = |subject: Subject, code: &str| Failure {
            subject: Some(subject),
            operation: "RestoreTest".into(),
            code: code.into(),
            message: "m".into(),
        };
        RunReport {
            job: Job::RestoreTest,
            created: Vec::new(),
            deleted: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            copies: Vec::new(),
            failed: vec![
                failure(Subject::Snapshot("snap-9".into()), "SmartVault.VolumeError"),
                failure(Subject::Instance("i-3".into()), "SmartVault.NoRecordedZone"),
            ],
            restore_tests: vec![
                test("i-1", TestStatus::Passed, Some(4200)),
                test("i-2", TestStatus::Failed, Some(1000)),
            ],
            ..report()
        }
    }

    #[test]
    fn a_restore_test_says_what_passed_how_fast_and_what_failed() {
        let report = restore_test_report();
        assert_eq!(
            report.subject(),
            "SmartVault [prod] restore test: 1 passed, 2 failed"
        );
        let body = report.body();
        assert!(
            body.contains(
                "\nRestore test: 1 of 2 instances passed (6 volumes created from their \
                 snapshots, waited for and deleted):\n  i-1: set of 2026-11-25T01:00:00Z, 3 \
                 volumes (24 GiB) in us-east-1a: PASSED, available in 4.2 s\n  i-2: set of \
                 2026-11-25T01:00:00Z, 3 volumes (24 GiB) in us-east-1a: FAILED (see the \
                 failures below)\n"
            ),
            "{body}"
        );
        assert!(body.contains("FAILED 2:"), "{body}");
        assert!(!body.contains("Nothing to do"), "{body}");
        let metrics = report.metrics(0);
        assert_eq!(metrics["RestoreTestsPassed"], 1);
        assert_eq!(
            metrics["RestoreTestsFailed"], 2,
            "the failed test and the instance that could not be tested"
        );
        assert_eq!(metrics["RestoreTestSeconds"], 4.2);
        let names = metrics["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("RestoreTestSeconds"), "{names}");
        // Backup runs carry no restore test figures.
        let backup = super::tests::report().metrics(0);
        assert!(backup.get("RestoreTestsFailed").is_none());
        let dry = RunReport {
            dry_run: true,
            failed: Vec::new(),
            restore_tests: vec![RestoreTest {
                status: TestStatus::Planned,
                slowest_ms: None,
                ..report.restore_tests[0].clone()
            }],
            ..report.clone()
        };
        assert_eq!(
            dry.subject(),
            "SmartVault [prod] restore test dry run: 1 to test"
        );
        assert!(
            dry.body()
                .contains("Restore test (dry run): would restore 3 volumes of 1 instance:"),
            "{}",
            dry.body()
        );
        let empty = RunReport {
            failed: Vec::new(),
            restore_tests: Vec::new(),
            ..report
        };
        assert!(
            empty
                .body()
                .contains("Restore test: no instance has a completed set of this deployment")
        );
    }

    #[test]
    fn the_copies_in_each_region_are_summarised_on_one_line() {
        let body = report().body();
        assert!(
            body.contains(
                "\nCopies in other regions:\n  us-west-2: 2 started, 40 completed, 3 in flight, \
                 1 waiting for the next sweep, 4 expired or failed deleted, 0 failed\n"
            ),
            "{body}"
        );
        let none = RunReport {
            copies: Vec::new(),
            ..report()
        };
        assert!(!none.body().contains("Copies in other regions"));
    }

    #[test]
    fn subject_has_the_deployment_and_counts() {
        assert_eq!(
            report().subject(),
            "SmartVault [prod]: 2 created, 1 deleted, 1 failed"
        );
        let dry = RunReport {
            dry_run: true,
            ..report()
        };
        assert_eq!(
            dry.subject(),
            "SmartVault [prod] dry run: 2 to create, 1 to delete, 1 failed"
        );
    }

    #[test]
    fn the_documented_subjects_are_the_ones_sent() {
        let docs = include_str!("../../docs/function.md");
        let named = RunReport {
            deployment: "smartvault-prod".into(),
            ..report()
        };
        let dry = RunReport {
            dry_run: true,
            ..named.clone()
        };
        let tested = RunReport {
            deployment: "smartvault-prod".into(),
            ..restore_test_report()
        };
        for subject in [named.subject(), dry.subject(), tested.subject()] {
            assert!(docs.contains(&format!("`{subject}`")), "{subject}");
        }
    }

    #[test]
    fn subject_stays_under_100_characters_with_a_long_name() {
        let long = RunReport {
            deployment: "x".repeat(128),
            dry_run: true,
            ..report()
        };
        let subject = long.subject();
        assert!(subject.chars().count() <= MAX_SUBJECT_CHARS, "{subject}");
        assert!(
            subject.contains('…') && subject.ends_with("1 failed"),
            "{subject}"
        );
        // The central topic's subject cuts the name, never the account and region.
        let central = long.central_subject("111111111111", "ap-southeast-2");
        assert!(central.chars().count() <= MAX_SUBJECT_CHARS, "{central}");
        assert!(
            central.contains("… 111111111111/ap-southeast-2]") && central.ends_with("1 failed"),
            "{central}"
        );
        let short = RunReport {
            deployment: "smartvault-org".into(),
            ..report()
        };
        assert_eq!(
            short.central_subject("111111111111", "eu-west-1"),
            short.subject().replace(
                "[smartvault-org]",
                "[smartvault-org 111111111111/eu-west-1]"
            )
        );
    }

    #[test]
    fn the_tripwire_section_names_the_commands_and_gives_totals_only_for_the_whole_fleet() {
        let mut run = report();
        run.tripwire = Some(Tripwire {
            measured: 2,
            alerts: vec![TripwireAlert {
                instance_id: "i-1".into(),
                volume_id: "vol-2".into(),
                snapshot_id: "snap-9".into(),
                changed_permille: 600,
                median_permille: 25,
                usual_peak_permille: 50,
                threshold_permille: 200,
                sampled_millibits: Some(7_996),
            }],
            trips: vec![TripHeld {
                instance_id: "i-1".into(),
                since: "2026-11-27T01:05:00Z".into(),
                suspicious_set: "2026-11-27T01:00:00Z".into(),
                snapshots: vec!["snap-9".into()],
                new: true,
                clean_point: Some("2026-11-26T01:00:00Z".into()),
                pinned: Some("governance until 2026-12-27T01:05:00Z".into()),
            }],
            environment: Some("prod".into()),
            stored_bytes: 3 << 30,
            stored_exact: true,
            unmeasured: 0,
            partial: false,
        });
        let body = run.body();
        for expected in [
            "i-1 volume vol-2: snap-9 changed 60.0% of the volume (normal 2.5-5.0%, threshold \
             20.0%); its sampled changed blocks average 8.00 bits per byte",
            "expiry suspended for 1 instance(s)",
            "clean restore point: 2026-11-26T01:00:00Z, pinned: governance until",
            "`cargo xtask restore --env prod --instance i-1 --at 2026-11-26T01:00:00Z`",
            "`cargo xtask tripwire --env prod --clear --instance i-1`",
            "Stored: 3.00 GiB in this deployment's sets, about $0.15 a month",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in:\n{body}");
        }
        // A completion event's run: its own instance's figures are no fleet's totals.
        if let Some(t) = run.tripwire.as_mut() {
            t.partial = true;
        }
        assert!(!run.body().contains("Stored:"));
    }

    #[test]
    fn body_lists_every_section() {
        let body = report().body();
        for expected in [
            "deployment prod",
            "Created 2 snapshots:",
            "  i-1 (web-1)\n    vol-1 /dev/xvda -> snap-1\n    vol-2 /dev/sdf -> snap-2",
            "Deleted 1 expired snapshot (8 GiB):",
            "snap-0 (volume vol-1, instance i-1, 8 GiB)",
            "Skipped 1:\n  instance i-2: instance is stopping",
            "FAILED 1:\n  instance i-3: CreateSnapshots failed: IncorrectState: the instance is terminated",
            "Warnings:\n  instance i-1: bad override",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in:\n{body}");
        }
        assert!(!body.contains("DRY RUN"));
    }

    #[test]
    fn body_says_when_no_instance_is_tagged_and_marks_dry_runs() {
        let empty = RunReport {
            dry_run: true,
            tagged_instances: 0,
            created: vec![],
            deleted: vec![],
            skipped: vec![],
            failed: vec![],
            warnings: vec![],
            ..report()
        };
        let body = empty.body();
        assert!(
            body.contains("No instance is tagged Backup=true: nothing to back up."),
            "{body}"
        );
        assert!(
            body.contains("DRY RUN: nothing was created or deleted."),
            "{body}"
        );
    }

    #[test]
    fn the_response_stays_bounded_with_the_full_counts() {
        let mut big = report();
        let one = big.created[0].clone();
        big.created = vec![one; 50_000];
        big.warnings = vec!["w".repeat(200); 20_000];
        let response = big.response();
        let bytes = serde_json::to_vec(&response).unwrap().len();
        assert!(bytes < 1024 * 1024, "{bytes} bytes");
        assert_eq!(response["created"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(response["warnings"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(response["counts"]["created"], 50_000);
        assert_eq!(response["counts"]["warnings"], 20_000);
        assert_eq!(response["counts"]["failed"], 1);
        assert_eq!(response["failed"].as_array().unwrap().len(), 1);
        assert_eq!(response["deployment"], "prod");
    }

    #[test]
    fn a_bounded_report_keeps_its_counts_and_says_how_many_more() {
        let mut big = report();
        let one = big.created[0].clone();
        big.created = vec![one; 5_000];
        big.links = 4;
        let bounded = big.clone().bounded(MAX_CARRIED);
        assert_eq!(bounded.created.len(), MAX_CARRIED);
        assert_eq!(bounded.totals(), big.totals());
        assert_eq!(bounded.subject(), big.subject());
        assert_eq!(
            bounded.subject(),
            "SmartVault [prod]: 5000 created, 1 deleted, 1 failed"
        );
        let body = bounded.body();
        assert!(body.contains("Created 5000 snapshots:"), "{body}");
        assert!(
            body.contains("  ... and 4900 more (the function's log lists every one)"),
            "{body}"
        );
        assert!(body.contains("over 4 invocations"), "{body}");
        assert!(
            body.len() < 16 * 1024,
            "a readable email: {} bytes",
            body.len()
        );
        let carried: RunReport =
            serde_json::from_value(serde_json::to_value(&bounded).unwrap()).unwrap();
        assert_eq!(
            carried, bounded,
            "a report survives its trip to the next link"
        );
    }

    #[test]
    fn metrics_follow_the_embedded_metric_format() {
        let mut run = report();
        run.locked.push(Locked {
            snapshot_id: "snap-1".into(),
            region: None,
            mode: crate::locks::LockMode::Compliance,
            until: datetime!(2026-12-04 01:00 UTC),
        });
        run.omitted.locked = 2;
        let metrics = run.metrics(1_700_000_000_000);
        assert_eq!(metrics["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(
            metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "SmartVault"
        );
        let names: Vec<&str> = metrics["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(metrics.get(*name).is_some(), "metric {name} has no value");
        }
        assert_eq!(metrics["SnapshotsCreated"], 2);
        assert_eq!(metrics["SnapshotsLocked"], 3, "the listed and the omitted");
        assert_eq!(metrics["CopiesStarted"], 2);
        assert_eq!(metrics["CopiesWaiting"], 1);
        assert_eq!(metrics["Failures"], 1);
        assert_eq!(metrics["RunDuration"], 1500);
    }

    /// The end link's sections are written and never read back: a continuation (which only an
    /// earlier link writes) cannot carry them, whatever an event says.
    #[test]
    fn the_end_links_sections_are_written_and_never_read_back() {
        let mut ended = report();
        ended.vault = Some(VaultShares {
            account: "222222222222".into(),
            shared: 2,
            ..VaultShares::default()
        });
        ended.vault_copies = Some(VaultCopies::default());
        ended.tripwire = Some(Tripwire::default());
        let written = serde_json::to_value(&ended).unwrap();
        assert!(written.get("vault").is_some() && written.get("tripwire").is_some());
        let read: RunReport = serde_json::from_value(written).unwrap();
        assert_eq!(
            (read.vault, read.vault_copies, read.tripwire),
            (None, None, None)
        );
    }
}
