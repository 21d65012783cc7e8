//! Restore points (pure): this deployment's snapshots grouped into one point per instance per
//! run (the set one `CreateSnapshots` made), with what the restore records say about each
//! volume and the instance, and how many of its snapshots each copy region holds.

use function::locks::SnapshotLock;
use function::model::Snapshot;
use function::restore_records::VolumeDetails;
use function::restore_records::{self, VolumeRecord};
use function::tags;
use std::collections::BTreeMap;

/// One restore point.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestorePoint {
    pub instance_id: String,
    /// When its run started (`smartvault:created-at`), RFC 3339 UTC.
    pub created_at: String,
    pub schedule: String,
    /// The latest `expires-at` of its snapshots: the point is whole until then.
    pub expires_at: Option<String>,
    /// The region its snapshots are in.
    pub region: String,
    pub instance_type: Option<String>,
    pub architecture: Option<String>,
    pub availability_zone: Option<String>,
    pub root_device: Option<String>,
    /// The platform record (`boot=uefi tpm=v2.0 imds=required os=Windows`), when recorded.
    pub platform: Option<String>,
    pub volumes: Vec<PointVolume>,
    /// For a point in the environment's own region: by copy region, how many of its snapshots
    /// have a copy there.
    pub copies: BTreeMap<String, usize>,
    /// The lock every snapshot of the point is held by (the one that ends first), when all
    /// are locked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<SnapshotLock>,
}

/// One snapshot of a restore point.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PointVolume {
    pub snapshot_id: String,
    /// The volume the snapshot was taken of (for a copy, its source's).
    pub volume_id: Option<String>,
    /// From the restore record, when the snapshot has one.
    pub device: Option<String>,
    #[serde(flatten)]
    pub details: VolumeDetails,
    pub size_gib: i32,
    pub state: String,
    /// Its storage tier (`function::archive::tier_state`): `standard`, `archiving`, `archive`,
    /// `archive, restore requested <time>`, `restored from the archive until <time>`.
    pub tier: String,
    /// Whether it must come back from the archive tier before a volume can be made of it.
    pub archived: bool,
    /// Whether an operator's restore of it from the archive is under way (what `tier` says
    /// in words).
    #[serde(skip)]
    pub restore_requested: bool,
    /// Its lock, when one holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<SnapshotLock>,
}

impl RestorePoint {
    /// Whether every snapshot of the point is completed, so that it can be restored now.
    pub fn is_complete(&self) -> bool {
        self.volumes.iter().all(|v| v.state == "completed")
    }

    /// Its snapshots in the archive tier, which a restore must bring back first.
    pub fn archived(&self) -> Vec<&PointVolume> {
        self.volumes.iter().filter(|v| v.archived).collect()
    }
}

/// Groups `snapshots` (this deployment's, in `region`) into restore points, newest first by
/// instance; `copies` are this deployment's copies by region, counted against each point.
pub fn group(
    snapshots: &[Snapshot],
    region: &str,
    copies: &[(String, Vec<Snapshot>)],
) -> Vec<RestorePoint> {
    let mut points: Vec<RestorePoint> = Vec::new();
    for ((instance, _), set) in function::model::sets(snapshots) {
        let first = set[0];
        let set_tag = |key: &str| set.iter().find_map(|s| s.tag(key)).map(str::to_owned);
        let mut point = RestorePoint {
            instance_id: instance.to_owned(),
            created_at: first.tag(tags::CREATED_AT).unwrap_or_default().to_owned(),
            schedule: function::tags::schedule_of(&first.tags).to_owned(),
            expires_at: set
                .iter()
                .filter_map(|s| s.tag(tags::EXPIRES_AT))
                .max()
                .map(str::to_owned),
            region: region.to_owned(),
            instance_type: set_tag(restore_records::INSTANCE_TYPE),
            architecture: set_tag(restore_records::ARCHITECTURE),
            availability_zone: set_tag(restore_records::AVAILABILITY_ZONE),
            root_device: set_tag(restore_records::ROOT_DEVICE),
            platform: set_tag(restore_records::PLATFORM),
            volumes: Vec::new(),
            copies: BTreeMap::new(),
            lock: None,
        };
        for snapshot in set {
            // A copy's own volume id is a placeholder; its source's is in a tag.
            let volume_id = snapshot
                .tag(tags::SOURCE_VOLUME)
                .map(str::to_owned)
                .or_else(|| snapshot.volume_id.clone());
            let record = volume_id.as_deref().and_then(|id| {
                snapshot
                    .tag(&VolumeRecord::key(id))
                    .and_then(VolumeRecord::parse)
            });
            point.volumes.push(PointVolume {
                snapshot_id: snapshot.id.clone(),
                volume_id,
                device: record.as_ref().map(|r| r.device.clone()),
                details: record.map(|r| r.details).unwrap_or_default(),
                size_gib: snapshot.size_gib,
                state: snapshot.state.as_str().to_owned(),
                tier: function::archive::tier_state(snapshot),
                archived: snapshot.tier == function::model::Tier::Archive,
                restore_requested: function::archive::restore_requested(snapshot),
                lock: None,
            });
        }
        points.push(point);
    }
    for point in &mut points {
        point.volumes.sort_by(|a, b| {
            a.device
                .cmp(&b.device)
                .then(a.snapshot_id.cmp(&b.snapshot_id))
        });
        for (copy_region, found) in copies {
            let copied = point
                .volumes
                .iter()
                .filter(|v| {
                    found
                        .iter()
                        .any(|c| c.tag(tags::SOURCE_SNAPSHOT) == Some(v.snapshot_id.as_str()))
                })
                .count();
            point.copies.insert(copy_region.clone(), copied);
        }
    }
    let mut list = points;
    list.sort_by(|a, b| {
        a.instance_id
            .cmp(&b.instance_id)
            .then(b.created_at.cmp(&a.created_at))
    });
    list
}

/// Sets each snapshot's lock from `locks` (the region's, by snapshot id; expired ones hold
/// nothing), and each point's: the one ending first, when a lock holds every snapshot.
pub fn with_locks(points: &mut [RestorePoint], locks: &BTreeMap<String, SnapshotLock>) {
    for point in points {
        for volume in &mut point.volumes {
            volume.lock = function::locks::in_force(locks, &volume.snapshot_id);
        }
        point.lock = function::locks::holding_all(
            locks,
            point.volumes.iter().map(|v| v.snapshot_id.as_str()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use function::locks::LockState;

    fn snapshot(
        id: &str,
        volume: &str,
        instance: &str,
        at: &str,
        extra: &[(&str, &str)],
    ) -> Snapshot {
        let mut tags = vec![
            (tags::INSTANCE_ID, instance),
            (tags::CREATED_AT, at),
            (tags::SCHEDULE, "daily"),
        ];
        tags.extend(extra.iter().copied());
        Snapshot {
            volume_id: Some(volume.into()),
            ..Snapshot::tagged(id, function::model::SnapshotState::Completed, &tags)
        }
    }

    /// A point is locked when every snapshot is, until the first of their locks ends; an
    /// expired lock holds nothing.
    #[test]
    fn a_point_shows_the_lock_that_holds_all_its_snapshots() {
        let at = "2026-11-26T01:00:00Z";
        let home = vec![
            snapshot("snap-1", "vol-1", "i-a", at, &[]),
            snapshot("snap-2", "vol-2", "i-a", at, &[]),
            snapshot("snap-3", "vol-3", "i-b", at, &[]),
            snapshot("snap-4", "vol-4", "i-c", at, &[]),
        ];
        let lock = |state, day| SnapshotLock {
            state,
            expires_on: Some(
                time::macros::datetime!(2026-12-01 00:00 UTC) + time::Duration::days(day),
            ),
        };
        let locks: BTreeMap<String, SnapshotLock> = [
            ("snap-1", lock(LockState::Compliance, 2)),
            ("snap-2", lock(LockState::Compliance, 1)),
            ("snap-3", lock(LockState::Governance, 1)),
            ("snap-4", lock(LockState::Expired, 1)),
        ]
        .into_iter()
        .map(|(id, l)| (id.to_owned(), l))
        .collect();
        let mut points = group(&home, "eu-west-1", &[]);
        with_locks(&mut points, &locks);
        let shown: Vec<(&str, Option<String>)> = points
            .iter()
            .map(|p| (p.instance_id.as_str(), p.lock.map(|l| l.describe())))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "i-a",
                    Some("compliance until 2026-12-02T00:00:00Z".to_owned())
                ),
                (
                    "i-b",
                    Some("governance until 2026-12-02T00:00:00Z".to_owned())
                ),
                ("i-c", None),
            ]
        );
        assert_eq!(
            points[0].volumes[0].lock,
            Some(lock(LockState::Compliance, 2))
        );
    }

    #[test]
    fn snapshots_group_into_one_point_per_instance_and_run_with_their_records_and_copies() {
        let at1 = "2026-11-25T01:00:00Z";
        let at2 = "2026-11-26T01:00:00Z";
        let records = [
            (restore_records::INSTANCE_TYPE, "m7g.large"),
            (restore_records::AVAILABILITY_ZONE, "eu-west-1a"),
            (
                "smartvault:volume:vol-root",
                "device=/dev/xvda type=gp3 iops=3000 throughput=125",
            ),
            (
                "smartvault:volume:vol-data",
                "device=/dev/sdf type=io2 iops=8000",
            ),
            (tags::EXPIRES_AT, "2026-12-03T01:00:00Z"),
        ];
        let home = vec![
            snapshot("snap-2d", "vol-data", "i-a", at2, &records),
            snapshot("snap-2r", "vol-root", "i-a", at2, &records),
            snapshot("snap-1r", "vol-root", "i-a", at1, &[]),
            snapshot("snap-b", "vol-b", "i-b", at2, &[]),
        ];
        let mut copy = snapshot("snap-c", "vol-ffffffff", "i-a", at2, &records);
        copy.tags
            .insert(tags::SOURCE_SNAPSHOT.into(), "snap-2r".into());
        copy.tags
            .insert(tags::SOURCE_VOLUME.into(), "vol-root".into());
        let copies = vec![("us-west-2".to_owned(), vec![copy.clone()])];
        let points = group(&home, "eu-west-1", &copies);
        let keys: Vec<(&str, &str)> = points
            .iter()
            .map(|p| (p.instance_id.as_str(), p.created_at.as_str()))
            .collect();
        assert_eq!(
            keys,
            [("i-a", at2), ("i-a", at1), ("i-b", at2)],
            "newest first"
        );
        let newest = &points[0];
        assert_eq!(newest.instance_type.as_deref(), Some("m7g.large"));
        assert_eq!(newest.expires_at.as_deref(), Some("2026-12-03T01:00:00Z"));
        let devices: Vec<Option<&str>> =
            newest.volumes.iter().map(|v| v.device.as_deref()).collect();
        assert_eq!(devices, [Some("/dev/sdf"), Some("/dev/xvda")]);
        assert_eq!(newest.volumes[0].details.iops, Some(8000));
        assert_eq!(newest.volumes[1].details.throughput, Some(125));
        assert_eq!(
            newest.copies["us-west-2"], 1,
            "one of its two snapshots is copied"
        );
        assert!(newest.is_complete());
        assert_eq!(
            points[1].volumes[0].device, None,
            "made before restore records"
        );

        // In the copy region, a copy is its own point, named by its source volume.
        let there = group(&[copy], "us-west-2", &[]);
        assert_eq!(there[0].region, "us-west-2");
        assert_eq!(there[0].volumes[0].volume_id.as_deref(), Some("vol-root"));
        assert_eq!(there[0].volumes[0].device.as_deref(), Some("/dev/xvda"));
    }
}
