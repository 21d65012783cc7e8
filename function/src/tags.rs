//! The tags SmartVault reads and writes, one definition for the function, the deployer and
//! docs: their keys, how times are written in them, and what AWS accepts on a tag or a
//! description (cut to fit).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Resource tags by key.
pub type Tags = std::collections::BTreeMap<String, String>;

/// The schedule a snapshot without a `smartvault:schedule` tag (made before schedules
/// existed) belongs to, and the one-schedule configuration's name.
pub const DEFAULT_SCHEDULE: &str = "default";

/// Written on every snapshot SmartVault makes; its value is the deployment name. Only
/// snapshots carrying it with this deployment's name are ever deleted.
pub const MANAGED_BY: &str = "smartvault:managed-by";
/// The instance a snapshot was taken from.
pub const INSTANCE_ID: &str = "smartvault:instance-id";
/// When the snapshot was requested, RFC 3339 UTC.
pub const CREATED_AT: &str = "smartvault:created-at";
/// When the snapshot may be deleted, RFC 3339 UTC.
pub const EXPIRES_AT: &str = "smartvault:expires-at";
/// The schedule whose run made the snapshot; its retention rules apply to it. A snapshot made
/// before schedules existed has none and belongs to `default`.
pub const SCHEDULE: &str = "smartvault:schedule";
/// On a copy in another region: the snapshot it was copied from, that snapshot's region, and
/// the volume that snapshot was taken of (a copy's own volume id is a placeholder).
pub const SOURCE_SNAPSHOT: &str = "smartvault:source-snapshot";
/// See [`SOURCE_SNAPSHOT`].
pub const SOURCE_REGION: &str = "smartvault:source-region";
/// See [`SOURCE_SNAPSHOT`].
pub const SOURCE_VOLUME: &str = "smartvault:source-volume";

/// On a vault copy: the account its source snapshot belongs to (with [`SOURCE_SNAPSHOT`],
/// [`SOURCE_REGION`] and [`SOURCE_VOLUME`]).
pub const SOURCE_ACCOUNT: &str = "smartvault:source-account";
/// On a snapshot: the bytes it changed against the snapshot named in [`CHANGED_FROM`] (EBS
/// direct API blocks times 524,288), or the bytes it holds when that is `full`.
pub const CHANGED_BYTES: &str = "smartvault:changed-bytes";
/// See [`CHANGED_BYTES`]: the earlier snapshot of the same volume, or `full`.
pub const CHANGED_FROM: &str = "smartvault:changed-from";
/// On a snapshot: the bytes of data it holds (its volume's written blocks times 524,288), from
/// its full read or its previous snapshot's plus the blocks written since less those freed.
pub const WRITTEN_BYTES: &str = "smartvault:written-bytes";
/// On a snapshot the tripwire flagged: `tripped <time>`, which suspends the expiry of its
/// instance's sets, until an operator's `cargo xtask tripwire --clear` makes it `cleared <time>`.
pub const TRIPWIRE: &str = "smartvault:tripwire";

/// On a snapshot SmartVault moved to the archive tier: when it asked (`ModifySnapshotTier`);
/// the 90-day minimum is counted from it.
pub const ARCHIVED_AT: &str = "smartvault:archived-at";
/// On an archived snapshot an operator's `cargo xtask restore` is bringing back from the
/// archive tier: `requested <time>`, until a run sees it back and mails it: `ready <time>`.
pub const TIER_RESTORE: &str = "smartvault:tier-restore";

/// On a volume restored from a snapshot (by `xtask restore` or a restore test): that snapshot.
pub const RESTORED_FROM: &str = "smartvault:restored-from";

/// The schedule a snapshot belongs to: its tag, or `default`.
pub fn schedule_of(tags: &Tags) -> &str {
    tags.get(SCHEDULE).map_or(DEFAULT_SCHEDULE, String::as_str)
}
/// The readable name shown in the EC2 console.
pub const NAME: &str = "Name";
/// Instance tag overriding `RETENTION_DAYS` for that instance's snapshots.
pub const RETENTION_OVERRIDE: &str = "BackupRetentionDays";
/// Volume tag that keeps a volume out of every backup when set to `true`.
pub const VOLUME_EXCLUDE: &str = "BackupExclude";
/// Tags with this prefix, in any case, belong to AWS and cannot be written by anyone else.
pub const AWS_RESERVED_PREFIX: &str = "aws:";
/// Tags with this prefix, in any case, are SmartVault's own.
pub const SMARTVAULT_PREFIX: &str = "smartvault:";

/// Whether `key` starts with `prefix`, ignoring ASCII case (AWS reserves `aws:` as `AWS:` too).
pub fn has_prefix(key: &str, prefix: &str) -> bool {
    key.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Whether AWS reserves `key` for itself.
pub fn is_reserved(key: &str) -> bool {
    has_prefix(key, AWS_RESERVED_PREFIX)
}

/// Formats a time the way SmartVault's tags store it: RFC 3339, UTC, whole seconds.
pub fn format_time(time: OffsetDateTime) -> String {
    let whole = time.replace_nanosecond(0).unwrap_or(time);
    whole
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| whole.unix_timestamp().to_string())
}

/// Reads a time as [`format_time`] writes it (any RFC 3339 time).
pub fn parse_time(value: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(value, &Rfc3339)
}

/// AWS's limit of tags on one resource (its own `aws:` tags aside).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
/// The tags a snapshot gets after its creation (when the tripwire reads what it changed, when
/// it is archived or brought back from the archive): room for them is kept when a snapshot is tagged at creation.
pub const RECORDED_LATER: [&str; 6] = [
    CHANGED_BYTES,
    CHANGED_FROM,
    WRITTEN_BYTES,
    TRIPWIRE,
    ARCHIVED_AT,
    TIER_RESTORE,
];
/// The most tags a snapshot gets at its creation.
pub const MAX_TAGS_AT_CREATION: usize = MAX_TAGS_PER_RESOURCE - RECORDED_LATER.len();

/// AWS allows tag values of at most 256 Unicode characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// ...and tag keys of 1 to 128.
pub const MAX_TAG_KEY_CHARS: usize = 128;

/// EBS allows snapshot descriptions of at most 255 characters (the `Description` shape of
/// the EBS service model; the EC2 User Guide gives the same limit).
pub const MAX_DESCRIPTION_CHARS: usize = 255;

/// `text` cut to at most `max_chars` characters on a character boundary, ending in `…` when
/// it was cut, so that a long instance name can never make AWS refuse the call.
pub fn fit(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefixes_match_in_any_case() {
        for key in ["aws:x", "AWS:x", "Aws:", "aWs:backup"] {
            assert!(is_reserved(key), "{key}");
        }
        for key in ["aws", "awsx:y", "my-aws:x", "", "é", "éaws:"] {
            assert!(!is_reserved(key), "{key}");
        }
        assert!(has_prefix("SmartVault:Environment", SMARTVAULT_PREFIX));
        assert!(!has_prefix("smartvault-env", SMARTVAULT_PREFIX));
    }
}
