//! The archive tier (issue 33), the pure rules: whether moving one snapshot to the EBS
//! Snapshots Archive tier pays, what deleting an archived snapshot early costs, and what a
//! schedule's `archive_after_days` must allow. No I/O, no clock: `now` is given.
//!
//! From the EBS user guide ("Archive Amazon EBS snapshots", "Pricing and billing"): an archived
//! snapshot is a full snapshot (all the blocks written to its volume when it was made), billed
//! at a quarter of the standard rate, for at least 90 days (deleting or permanently restoring
//! it sooner bills the rest); the blocks later snapshots still reference stay in the standard
//! tier, so archiving frees at most the snapshot's own blocks there.

use crate::cost::{STANDARD_PRICE_PER_GB_MONTH, monthly};
use crate::model::{Policy, Snapshot, Tier};
use crate::tags;
use std::collections::BTreeSet;
use time::{Duration, OffsetDateTime};

/// The archive tier's list price, US dollars per GB-month, US East (a quarter of the standard
/// tier's; the EBS user guide's "Pricing and billing for archiving Amazon EBS snapshots").
pub const ARCHIVE_PRICE_PER_GB_MONTH: f64 =
    STANDARD_PRICE_PER_GB_MONTH * crate::cost::ARCHIVE_SHARE;
/// The least time an archived snapshot is billed for.
pub const MIN_ARCHIVE_DAYS: i64 = 90;
/// Archived snapshots a volume may have (the EBS user guide's archive quotas).
pub const MAX_ARCHIVED_PER_VOLUME: usize = 25;
/// Archivals in progress an account may have at once (the same table).
pub const MAX_ARCHIVALS_IN_PROGRESS: usize = 25;
/// A month, for prices per GB-month.
const MONTH_DAYS: f64 = 30.0;
/// Without measured bytes, a schedule archives only when its sets are at least this far apart
/// (the user guide recommends archiving monthly, quarterly or yearly sets, not daily ones).
pub const UNMEASURED_MIN_GAP_HOURS: u32 = 28 * 24;

/// What is known of one snapshot for the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub made_at: OffsetDateTime,
    /// Its expiry (`smartvault:expires-at`), when it has one.
    pub expires_at: Option<OffsetDateTime>,
    /// The data its volume held when it was made (`smartvault:written-bytes`): what the
    /// archive bills for.
    pub written_bytes: Option<u64>,
    /// At most what archiving frees in the standard tier: its blocks no other kept snapshot
    /// holds (`cost::SetCost::frees_up_to`), when measured.
    pub frees_bytes: Option<u64>,
    /// It is the newest snapshot of its volume.
    pub newest_of_volume: bool,
    /// A tripwire pin or another lock holds it.
    pub pinned: bool,
    /// The longest gap between its schedule's runs, in hours (`overdue_after_hours`), when known.
    pub schedule_gap_hours: Option<u32>,
}

/// Why a snapshot stays in the standard tier, or that it goes to the archive.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Archive {
        /// What it saves a month: the standard blocks freed less the archive's bill.
        saves_monthly_usd: Option<f64>,
    },
    Stay(String),
}

/// Whether `c` goes to the archive `after_days` after it was made, at `now`.
pub fn verdict(c: &Candidate, after_days: u32, now: OffsetDateTime) -> Verdict {
    if now - c.made_at < Duration::days(i64::from(after_days)) {
        return Verdict::Stay(format!("younger than archive_after_days ({after_days})"));
    }
    if c.newest_of_volume {
        return Verdict::Stay(
            "the newest snapshot of its volume: the next set is incremental from it".into(),
        );
    }
    if c.pinned {
        return Verdict::Stay(
            "locked or pinned by the tripwire: it must restore in minutes, not 72 hours".into(),
        );
    }
    if let Some(expires) = c.expires_at
        && expires - now < Duration::days(MIN_ARCHIVE_DAYS)
    {
        return Verdict::Stay(format!(
            "expires in {} days, under the archive's {MIN_ARCHIVE_DAYS}-day minimum: archiving \
             would bill the rest",
            (expires - now).whole_days()
        ));
    }
    match (c.written_bytes, c.frees_bytes) {
        (Some(full), Some(frees)) => {
            let archive = monthly(full, ARCHIVE_PRICE_PER_GB_MONTH);
            let freed = monthly(frees, STANDARD_PRICE_PER_GB_MONTH);
            if archive < freed {
                Verdict::Archive {
                    saves_monthly_usd: Some(freed - archive),
                }
            } else {
                Verdict::Stay(format!(
                    "archiving its {full} bytes (${archive:.4} a month) costs more than the \
                     {frees} bytes it frees in the standard tier (${freed:.4})"
                ))
            }
        }
        _ => match c.schedule_gap_hours {
            Some(gap) if gap >= UNMEASURED_MIN_GAP_HOURS => Verdict::Archive {
                saves_monthly_usd: None,
            },
            _ => Verdict::Stay(
                "not measured, and its schedule runs more often than monthly: archiving \
                 frequent incremental sets costs more (the EBS user guide)"
                    .into(),
            ),
        },
    }
}

/// What deleting (or permanently restoring) an archived snapshot at `now` bills beyond its
/// life: the rest of its 90 days at the archive rate, on `full_bytes`; 0 once they are over.
pub fn early_deletion_usd(
    full_bytes: u64,
    archived_at: OffsetDateTime,
    now: OffsetDateTime,
) -> f64 {
    let left = Duration::days(MIN_ARCHIVE_DAYS) - (now - archived_at);
    if left <= Duration::ZERO {
        return 0.0;
    }
    monthly(full_bytes, ARCHIVE_PRICE_PER_GB_MONTH) * left.as_seconds_f64()
        / (MONTH_DAYS * 86_400.0)
}

/// Why a schedule's `archive_after_days` cannot archive anything under its retention, or
/// `None`.
pub fn archive_after_problem(after_days: u32, retention_days: u32) -> Option<String> {
    let room = i64::from(retention_days) - i64::from(after_days);
    if after_days == 0 {
        return Some("archive_after_days 0: a set is archived at the earliest a day after it is made; use 1 or more".into());
    }
    if i64::from(retention_days) <= MIN_ARCHIVE_DAYS {
        return Some(format!(
            "retention_days {retention_days} keeps no set past the archive's \
             {MIN_ARCHIVE_DAYS}-day minimum and a day: remove archive_after_days, or keep the \
             schedule's sets at least {} days",
            MIN_ARCHIVE_DAYS + 1
        ));
    }
    (room < MIN_ARCHIVE_DAYS).then(|| {
        format!(
            "archive_after_days {after_days} leaves {room} days of retention_days \
             {retention_days} in the archive, under its {MIN_ARCHIVE_DAYS}-day minimum: every \
             archived set would bill days it is not kept; use at most {} or keep sets longer",
            i64::from(retention_days) - MIN_ARCHIVE_DAYS
        )
    })
}

/// One snapshot to move to the archive tier.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Archival {
    pub snapshot_id: String,
    pub instance_id: Option<String>,
    pub schedule: String,
    /// What it saves a month, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saves_monthly_usd: Option<f64>,
}

/// What a run archives, and why fewer than would pay, when a quota held some back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Oldest first.
    pub archive: Vec<Archival>,
    /// Snapshots that would pay but wait for the archive quotas, with the quota.
    pub held_back: Vec<(String, String)>,
}

/// Whether SmartVault asked EC2 to archive `s` and EC2 still reports it in the standard tier
/// without a restore: its archival is in progress.
pub fn archiving(s: &Snapshot) -> bool {
    s.tier == Tier::Standard
        && s.tag(tags::ARCHIVED_AT).is_some()
        && s.tag(tags::TIER_RESTORE).is_none()
}

/// The prefix of `smartvault:tier-restore` while an operator's restore from the archive has
/// not been mailed ready.
const REQUESTED: &str = "requested ";

/// Whether an operator's restore of `s` from the archive was requested and not yet mailed
/// ready (`smartvault:tier-restore = requested <time>`).
pub fn restore_requested(s: &Snapshot) -> bool {
    s.tag(tags::TIER_RESTORE)
        .is_some_and(|v| v.starts_with(REQUESTED))
}

/// The tag value that marks a restore from the archive requested at `at`.
pub fn requested_at(at: OffsetDateTime) -> String {
    format!("{REQUESTED}{}", tags::format_time(at))
}

/// Where `s` is, in a word or three: `standard`, `archiving`, `archive`, `archive, restore
/// requested` (an operator's restore from the archive in progress) or `restored from the
/// archive`.
pub fn tier_kind(s: &Snapshot) -> &'static str {
    match s.tier {
        Tier::Archive if restore_requested(s) => "archive, restore requested",
        Tier::Archive => "archive",
        Tier::Restored { .. } => "restored from the archive",
        Tier::Standard if archiving(s) => "archiving",
        Tier::Standard => "standard",
    }
}

/// [`tier_kind`] with its time, as `snapshots` and `restore` say it: when the restore was
/// requested, until when a temporary one lasts.
pub fn tier_state(s: &Snapshot) -> String {
    let kind = tier_kind(s);
    match (
        s.tier,
        s.tag(tags::TIER_RESTORE)
            .and_then(|v| v.strip_prefix(REQUESTED)),
    ) {
        (Tier::Archive, Some(at)) => format!("{kind} {at}"),
        (Tier::Restored { until }, _) => format!("{kind} until {}", tags::format_time(until)),
        _ => kind.to_owned(),
    }
}

/// Which of this deployment's `snapshots` go to the archive tier at `now`: those of a schedule
/// with `archive_after_days` for which [`verdict`] says it pays, never one of `held` (locked,
/// pinned, kept ready by fast snapshot restore), within the archive quotas. `frees` is what
/// archiving each measured snapshot frees in the standard tier, sorted by snapshot id.
pub fn plan(
    snapshots: &[Snapshot],
    policy: &Policy,
    held: &BTreeSet<String>,
    frees: &[(String, u64)],
    now: OffsetDateTime,
) -> Plan {
    // Each volume's newest snapshot, and how many of its snapshots are in the archive (or on
    // their way there, or restored from it), by volume id (sorted).
    let mut by_volume: Vec<&Snapshot> =
        snapshots.iter().filter(|s| s.volume_id.is_some()).collect();
    by_volume.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
    let mut volumes: Vec<(&str, &str, usize)> = Vec::new();
    for chunk in by_volume.chunk_by(|a, b| a.volume_id == b.volume_id) {
        let newest = chunk
            .iter()
            .max_by_key(|s| (s.made_at_by(now), s.id.as_str()))
            .map_or("", |s| s.id.as_str());
        let archived = chunk
            .iter()
            .filter(|s| s.tier != Tier::Standard || s.tag(tags::ARCHIVED_AT).is_some())
            .count();
        volumes.push((
            chunk[0].volume_id.as_deref().unwrap_or_default(),
            newest,
            archived,
        ));
    }
    let volume_of = |s: &Snapshot| {
        s.volume_id
            .as_deref()
            .and_then(|v| volumes.binary_search_by(|e| e.0.cmp(v)).ok())
    };
    let mut in_progress = snapshots.iter().filter(|s| archiving(s)).count();
    let mut candidates: Vec<(&Snapshot, Option<f64>, String)> = Vec::new();
    for s in snapshots {
        let schedule = tags::schedule_of(&s.tags);
        let Some(rule) = policy.rule(schedule) else {
            continue;
        };
        let Some(after_days) = rule.archive_after_days else {
            continue;
        };
        if !s.completed()
            || s.tier != Tier::Standard
            || s.tag(tags::ARCHIVED_AT).is_some()
            || s.tag(tags::TIER_RESTORE).is_some()
            || s.tag(tags::SOURCE_REGION).is_some()
            || s.tag(tags::INSTANCE_ID).is_none()
        {
            continue;
        }
        let candidate = Candidate {
            made_at: s.made_at_by(now),
            expires_at: s
                .tag(tags::EXPIRES_AT)
                .and_then(|t| tags::parse_time(t).ok()),
            written_bytes: s.tag(tags::WRITTEN_BYTES).and_then(|b| b.parse().ok()),
            frees_bytes: frees
                .binary_search_by(|(id, _)| id.as_str().cmp(&s.id))
                .ok()
                .map(|at| frees[at].1),
            newest_of_volume: volume_of(s).is_none_or(|at| volumes[at].1 == s.id),
            pinned: held.contains(&s.id),
            schedule_gap_hours: rule.overdue_after_hours,
        };
        if let Verdict::Archive { saves_monthly_usd } = verdict(&candidate, after_days, now) {
            candidates.push((s, saves_monthly_usd, schedule.to_owned()));
        }
    }
    candidates.sort_by(|a, b| {
        a.0.made_at_by(now)
            .cmp(&b.0.made_at_by(now))
            .then(a.0.id.cmp(&b.0.id))
    });
    let mut plan = Plan::default();
    let mut archived: Vec<usize> = volumes.iter().map(|v| v.2).collect();
    for (s, saves_monthly_usd, schedule) in candidates {
        let Some(at) = volume_of(s) else { continue };
        let count = &mut archived[at];
        if *count >= MAX_ARCHIVED_PER_VOLUME {
            plan.held_back.push((
                s.id.clone(),
                format!("its volume has {MAX_ARCHIVED_PER_VOLUME} archived snapshots, the most EBS allows"),
            ));
            continue;
        }
        if in_progress >= MAX_ARCHIVALS_IN_PROGRESS {
            plan.held_back.push((
                s.id.clone(),
                format!("{MAX_ARCHIVALS_IN_PROGRESS} archivals are in progress, the most EBS allows at once; a later run archives it"),
            ));
            continue;
        }
        *count += 1;
        in_progress += 1;
        plan.archive.push(Archival {
            snapshot_id: s.id.clone(),
            instance_id: s.tag(tags::INSTANCE_ID).map(str::to_owned),
            schedule,
            saves_monthly_usd,
        });
    }
    plan
}

/// What deleting `s` now bills beyond its life, when it is in the archive (on its way there,
/// or temporarily restored from it) within its 90 days: on its written bytes when measured,
/// else its volume's size (an upper bound). A permanent restore billed the rest already.
pub fn early_deletion(s: &Snapshot, now: OffsetDateTime) -> Option<f64> {
    let permanently_restored = s.tier == Tier::Standard && s.tag(tags::TIER_RESTORE).is_some();
    if permanently_restored {
        return None;
    }
    let archived_at = tags::parse_time(s.tag(tags::ARCHIVED_AT)?).ok()?;
    let full = s
        .tag(tags::WRITTEN_BYTES)
        .and_then(|b| b.parse().ok())
        .unwrap_or(u64::try_from(s.size_gib).unwrap_or(0) << 30);
    Some(early_deletion_usd(full, archived_at, now)).filter(|usd| *usd > 0.0)
}

#[cfg(test)]
mod tests;
