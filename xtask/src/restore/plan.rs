//! Restore planning (pure): which restore point a request means, the volumes to create from it
//! as they were, and whether a target instance can take them. Every refusal names the fix.

use crate::restore::points::{PointVolume, RestorePoint};
use crate::user_error::UserError;
use function::restore_records::VolumeDetails;
use std::collections::BTreeSet;

/// Which restore point of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// The newest complete one.
    Latest,
    /// The newest complete one made at or before this time (RFC 3339).
    Time(time::OffsetDateTime),
}

impl At {
    /// `latest` or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<Self, UserError> {
        if text == "latest" {
            return Ok(At::Latest);
        }
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(At::Time)
            .map_err(|_| {
                UserError(format!(
                    "--at {text:?} is neither `latest` nor a time such as 2026-11-26T01:00:00Z"
                ))
            })
    }
}

/// How much older than the newest a restore point ready in the target zone may be for `--at
/// latest` to prefer it: its volumes have their full performance at once, for at most a day's
/// older data.
pub const FAST_PREFERENCE: time::Duration = time::Duration::hours(24);

/// What fast snapshot restore changes about a restore: the point to use and whether it is
/// ready (enabled in the zone for every snapshot), and the newer point passed over, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fast<'a> {
    pub point: &'a RestorePoint,
    pub ready: bool,
    pub passed_over: Option<&'a RestorePoint>,
}

/// With `--at latest`, prefers the newest point of `chosen`'s instance whose every snapshot has
/// fast snapshot restore enabled in `zone` (`ready`: snapshot and zone pairs) over `chosen`, when
/// it is at most [`FAST_PREFERENCE`] older; `chosen` stays when it is ready itself, or none is.
pub fn prefer_fast<'a>(
    points: &'a [RestorePoint],
    chosen: &'a RestorePoint,
    at: &At,
    zone: &str,
    ready: &[(String, String)],
) -> Fast<'a> {
    let is_ready = |p: &RestorePoint| {
        !p.volumes.is_empty()
            && p.volumes.iter().all(|v| {
                ready
                    .iter()
                    .any(|(id, z)| *id == v.snapshot_id && z == zone)
            })
    };
    let made = |p: &RestorePoint| function::tags::parse_time(&p.created_at).ok();
    if is_ready(chosen) {
        return Fast {
            point: chosen,
            ready: true,
            passed_over: None,
        };
    }
    let newest = made(chosen);
    let other = (*at == At::Latest)
        .then(|| {
            points.iter().find(|p| {
                p.instance_id == chosen.instance_id
                    && p.is_complete()
                    && p.archived().is_empty()
                    && is_ready(p)
                    && matches!((made(p), newest), (Some(m), Some(n)) if m <= n && n - m <= FAST_PREFERENCE)
            })
        })
        .flatten();
    match other {
        Some(point) => Fast {
            point,
            ready: true,
            passed_over: Some(chosen),
        },
        None => Fast {
            point: chosen,
            ready: false,
            passed_over: None,
        },
    }
}

/// The restore point `at` of `instance` among `points` (one region's), or why there is none.
pub fn select<'a>(
    points: &'a [RestorePoint],
    instance: &str,
    at: &At,
) -> Result<&'a RestorePoint, UserError> {
    let of_instance: Vec<&RestorePoint> = points
        .iter()
        .filter(|p| p.instance_id == instance)
        .collect();
    if of_instance.is_empty() {
        let known: BTreeSet<&str> = points.iter().map(|p| p.instance_id.as_str()).collect();
        let region = points.first().map_or("this region", |p| p.region.as_str());
        return Err(UserError(format!(
            "no restore point of {instance} in {region}; {}",
            if known.is_empty() {
                "this deployment has none there (`cargo xtask snapshots` lists them)".to_owned()
            } else {
                format!(
                    "the instances with restore points are {} (`cargo xtask snapshots` lists them)",
                    known.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        )));
    }
    let parse = |p: &RestorePoint| {
        time::OffsetDateTime::parse(
            &p.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    };
    // `points` are newest first for each instance.
    let chosen = of_instance.iter().find(|p| {
        p.is_complete()
            && match at {
                At::Latest => true,
                At::Time(limit) => parse(p).is_some_and(|made| made <= *limit),
            }
    });
    chosen.copied().ok_or_else(|| {
        let oldest = of_instance.last().map_or("", |p| p.created_at.as_str());
        UserError(match at {
            At::Latest => format!(
                "no restore point of {instance} is complete yet (its snapshots are pending); \
                 wait for them, or name an older one with --at"
            ),
            At::Time(limit) => format!(
                "no complete restore point of {instance} was made at or before {}; the oldest \
                 is {oldest}: pass --at {oldest} or later, or --at latest",
                function::tags::format_time(*limit)
            ),
        })
    })
}

/// One volume to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewVolume {
    pub snapshot_id: String,
    pub device: Option<String>,
    pub availability_zone: String,
    #[serde(flatten)]
    pub details: VolumeDetails,
    pub size_gib: i32,
    /// Tagged at creation: where it came from.
    pub tags: Vec<(String, String)>,
}

/// Tag keys on a restored volume.
pub use function::tags::RESTORED_FROM;
pub const RESTORED_INSTANCE: &str = "smartvault:restored-instance";
pub const RESTORE_POINT: &str = "smartvault:restore-point";

/// The volumes a volume restore (the default) creates from `point`: one per snapshot, in `az` or the
/// recorded zone, with the recorded type, IOPS and throughput (EC2 keeps the snapshot's
/// encryption and size).
pub fn volumes(point: &RestorePoint, az: Option<&str>) -> Result<Vec<NewVolume>, UserError> {
    let zone = az
        .map(str::to_owned)
        .or_else(|| point.availability_zone.clone())
        .ok_or_else(|| {
            UserError(format!(
                "the restore point of {} at {} has no recorded availability zone (made before \
                 SmartVault recorded it); pass --az, e.g. --az {}a",
                point.instance_id, point.created_at, point.region
            ))
        })?;
    if az.is_none() && !zone.starts_with(&point.region) {
        return Err(UserError(format!(
            "the restore point is in {}, a copy region, and its instance was in {zone}: pass \
             --az with a zone of {} (e.g. --az {}a)",
            point.region, point.region, point.region
        )));
    }
    if !zone.starts_with(&point.region) {
        return Err(UserError(format!(
            "--az {zone} is not in {}, where the restore point's snapshots are; name a zone of \
             {} (e.g. {}a), or restore from a copy region with --region",
            point.region, point.region, point.region
        )));
    }
    Ok(point
        .volumes
        .iter()
        .map(|v| new_volume(point, v, &zone))
        .collect())
}

fn new_volume(point: &RestorePoint, volume: &PointVolume, zone: &str) -> NewVolume {
    let device = volume.device.clone();
    let mut tags = vec![
        (RESTORED_FROM.to_owned(), volume.snapshot_id.clone()),
        (RESTORED_INSTANCE.to_owned(), point.instance_id.clone()),
        (RESTORE_POINT.to_owned(), point.created_at.clone()),
        (
            "Name".to_owned(),
            format!(
                "{} {} restored from {}",
                point.instance_id,
                device.as_deref().unwrap_or("volume"),
                point.created_at
            ),
        ),
    ];
    if let Some(original) = &volume.volume_id {
        tags.push(("smartvault:original-volume".to_owned(), original.clone()));
    }
    NewVolume {
        snapshot_id: volume.snapshot_id.clone(),
        device,
        availability_zone: zone.to_owned(),
        // IOPS and throughput only where the type takes them.
        details: volume.details.settable(),
        size_gib: volume.size_gib,
        tags,
    }
}

/// An image registered from a restore point, and the instance launched from it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewInstance {
    pub image_name: String,
    pub architecture: String,
    pub root_device: String,
    /// Root first, then the data volumes, each from its snapshot at its recorded device.
    pub devices: Vec<ImageDevice>,
    pub instance_type: String,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    /// Tagged at launch: where it came from.
    pub tags: Vec<(String, String)>,
    /// How the original booted (boot mode, TPM, IMDSv2), for the image to declare; all `None`
    /// for a point recorded before the platform was.
    pub platform: function::restore_records::Platform,
    /// What to say before launching: the platform an image from snapshots loses.
    pub warnings: Vec<String>,
}

/// One block device of the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageDevice {
    pub device: String,
    pub snapshot_id: String,
    #[serde(flatten)]
    pub details: VolumeDetails,
    /// The root volume goes with the instance; a data volume outlives it.
    pub delete_on_termination: bool,
}

/// Where a new instance runs: from flags, else from the original instance when it still
/// exists, else from the point's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub instance_type: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
}

/// The image and instance a `--new-instance` restore makes from `point`. `flags` win over
/// `original` (the instance as it is now, if it still exists), which wins over the records.
pub fn new_instance(
    point: &RestorePoint,
    flags: &Placement,
    original: Option<&Placement>,
) -> Result<NewInstance, UserError> {
    let missing = |what: &str| {
        UserError(format!(
            "the restore point of {} at {} has no recorded {what} (made before SmartVault \
             recorded it); restore its volumes instead (the default: leave out --new-instance and --replace-root)",
            point.instance_id, point.created_at
        ))
    };
    let root_device = point
        .root_device
        .clone()
        .ok_or_else(|| missing("root device"))?;
    let architecture = point
        .architecture
        .clone()
        .ok_or_else(|| missing("architecture"))?;
    let mut devices = Vec::new();
    for volume in &point.volumes {
        let device = volume
            .device
            .clone()
            .ok_or_else(|| missing("device names"))?;
        let root = device == root_device;
        devices.push(ImageDevice {
            delete_on_termination: root,
            snapshot_id: volume.snapshot_id.clone(),
            details: volume.details.settable(),
            device,
        });
    }
    if !devices.iter().any(|d| d.device == root_device) {
        return Err(UserError(format!(
            "the restore point of {} at {} has no snapshot of its root device {root_device} (it \
             was excluded from backup); restore its volumes (leave out --new-instance; --attach-to a stopped instance) and attach them to \
             an instance instead",
            point.instance_id, point.created_at
        )));
    }
    devices.sort_by_key(|d| (d.device != root_device, d.device.clone()));
    let instance_type = flags
        .instance_type
        .clone()
        .or_else(|| original.and_then(|o| o.instance_type.clone()))
        .or_else(|| point.instance_type.clone())
        .ok_or_else(|| {
            UserError(format!(
                "no instance type for {}: the instance is gone and the restore point has none \
                 recorded; pass --instance-type",
                point.instance_id
            ))
        })?;
    if let Some(subnet) = &flags.subnet_id
        && !function::event::is_ec2_id(subnet, "subnet-")
    {
        return Err(UserError(format!(
            "--subnet {subnet:?} is not a subnet id like subnet-0123456789abcdef0"
        )));
    }
    if let Some(group) = flags
        .security_group_ids
        .iter()
        .find(|g| !function::event::is_ec2_id(g, "sg-"))
    {
        return Err(UserError(format!(
            "--security-groups holds {group:?}, which is not a security group id like \
             sg-0123456789abcdef0; list ids separated by commas, or leave the flag out to use \
             the original instance's"
        )));
    }
    let subnet_id = flags
        .subnet_id
        .clone()
        .or_else(|| original.and_then(|o| o.subnet_id.clone()));
    let security_group_ids = if flags.security_group_ids.is_empty() {
        original
            .map(|o| o.security_group_ids.clone())
            .unwrap_or_default()
    } else {
        flags.security_group_ids.clone()
    };
    let stamp: String = point
        .created_at
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let platform = point
        .platform
        .as_deref()
        .map(function::restore_records::Platform::parse)
        .unwrap_or_default();
    let mut warnings = Vec::new();
    if point.platform.is_none() {
        warnings.push(format!(
            "the restore point of {} has no platform record (made before SmartVault recorded \
             boot mode, TPM and IMDSv2): the image is registered with EC2's defaults, and an \
             instance that booted UEFI will not boot from it; if the new instance fails its status \
             checks, read its console output",
            point.instance_id
        ));
    }
    if !platform.survives_registration() {
        warnings.push(format!(
            "{} ran {}; an image registered from snapshots runs as Linux/UNIX: the new \
             instance loses the original's license and billing (Windows needs an image made \
             with CreateImage or the original AMI; restore its volumes and attach them instead)",
            point.instance_id,
            platform.details.as_deref().unwrap_or("another platform")
        ));
    }
    Ok(NewInstance {
        platform,
        warnings,
        image_name: format!("smartvault-restore-{}-{stamp}", point.instance_id),
        architecture,
        root_device,
        devices,
        instance_type,
        subnet_id,
        security_group_ids,
        tags: vec![
            (RESTORED_INSTANCE.to_owned(), point.instance_id.clone()),
            (RESTORE_POINT.to_owned(), point.created_at.clone()),
            (
                "Name".to_owned(),
                format!("{} restored from {}", point.instance_id, point.created_at),
            ),
        ],
    })
}

/// A root volume replaced in place (EC2's replace-root-volume task), keeping the instance's
/// id, addresses and data volumes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplaceRoot {
    pub instance_id: String,
    /// The point's snapshot of the root device.
    pub snapshot_id: String,
    /// Sent as the task's client token: a retried request is the same task.
    pub client_token: String,
}

/// The replace-root task of `point` for its instance, whose state is `state` (`None`: gone).
pub fn replace_root(point: &RestorePoint, state: Option<&str>) -> Result<ReplaceRoot, UserError> {
    let instance = &point.instance_id;
    match state {
        None | Some("terminated" | "shutting-down") => {
            return Err(UserError(format!(
                "{instance} no longer exists, so its root volume cannot be replaced in place; \
                 restore it with --new-instance instead"
            )));
        }
        Some("running") => {}
        Some(other) => {
            return Err(UserError(format!(
                "{instance} is {other}; EC2 replaces a root volume only on a running instance: \
                 start it (aws ec2 start-instances --instance-ids {instance}) and run the \
                 restore again"
            )));
        }
    }
    let root = point.root_device.as_deref().ok_or_else(|| {
        UserError(format!(
            "the restore point of {instance} at {} has no recorded root device (made before \
             SmartVault recorded it); restore its volumes instead (the default: leave out --new-instance and --replace-root)",
            point.created_at
        ))
    })?;
    let snapshot = point
        .volumes
        .iter()
        .find(|v| v.device.as_deref() == Some(root))
        .ok_or_else(|| {
            UserError(format!(
                "the restore point of {instance} at {} has no snapshot of its root device \
                 {root} (it was excluded from backup); restore its volumes instead (leave out --replace-root)",
                point.created_at
            ))
        })?;
    let token: String = format!("smartvault-{instance}-{}", snapshot.snapshot_id)
        .chars()
        .take(64)
        .collect();
    Ok(ReplaceRoot {
        instance_id: instance.clone(),
        snapshot_id: snapshot.snapshot_id.clone(),
        client_token: token,
    })
}

/// An instance volumes are to be attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub state: String,
    pub availability_zone: String,
    /// Device names in use on it.
    pub devices: BTreeSet<String>,
}

/// Whether `target` can take `volumes` at their recorded devices: stopped, in their zone, and
/// none of the devices in use.
pub fn check_attach(target: &Target, volumes: &[NewVolume]) -> Result<(), UserError> {
    if target.state != "stopped" {
        return Err(UserError(format!(
            "{} is {}; attach restored volumes only to a stopped instance: stop it (aws ec2 \
             stop-instances --instance-ids {}) and run the restore again, or restore without \
             --attach-to",
            target.id, target.state, target.id
        )));
    }
    if let Some(volume) = volumes.first()
        && volume.availability_zone != target.availability_zone
    {
        return Err(UserError(format!(
            "{} is in {}, the volumes would be in {}; pass --az {} to create them there, or \
             attach to an instance in {}",
            target.id,
            target.availability_zone,
            volume.availability_zone,
            target.availability_zone,
            volume.availability_zone
        )));
    }
    if let Some(missing) = volumes.iter().find(|v| v.device.is_none()) {
        return Err(UserError(format!(
            "{} has no recorded device name (a set made before SmartVault recorded them); \
             restore without --attach-to and attach it by hand",
            missing.snapshot_id
        )));
    }
    let busy: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v.device.as_deref())
        .filter(|d| target.devices.contains(*d))
        .collect();
    if !busy.is_empty() {
        return Err(UserError(format!(
            "{} already has a volume at {}; detach it first (aws ec2 detach-volume) or attach \
             to another stopped instance",
            target.id,
            busy.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn point(instance: &str, at: &str, state: &str) -> RestorePoint {
        RestorePoint {
            instance_id: instance.into(),
            created_at: at.into(),
            schedule: "daily".into(),
            expires_at: None,
            region: "eu-west-1".into(),
            instance_type: Some("m7g.large".into()),
            architecture: Some("arm64".into()),
            availability_zone: Some("eu-west-1b".into()),
            root_device: Some("/dev/xvda".into()),
            platform: None,
            volumes: vec![
                PointVolume {
                    snapshot_id: format!("snap-{at}-root"),
                    volume_id: Some("vol-root".into()),
                    device: Some("/dev/xvda".into()),
                    details: VolumeDetails {
                        volume_type: Some("gp3".into()),
                        iops: Some(3000),
                        throughput: Some(125),
                    },
                    size_gib: 8,
                    state: state.into(),
                    tier: "standard".into(),
                    archived: false,
                    restore_requested: false,
                    lock: None,
                },
                PointVolume {
                    snapshot_id: format!("snap-{at}-data"),
                    volume_id: Some("vol-data".into()),
                    device: Some("/dev/sdf".into()),
                    details: VolumeDetails {
                        volume_type: Some("st1".into()),
                        iops: Some(500),
                        throughput: Some(40),
                    },
                    size_gib: 500,
                    state: state.into(),
                    tier: "standard".into(),
                    archived: false,
                    restore_requested: false,
                    lock: None,
                },
            ],
            copies: BTreeMap::new(),
            lock: None,
        }
    }

    #[test]
    fn the_point_is_the_newest_complete_one_at_or_before_the_time_asked() {
        let points = vec![
            point("i-a", "2026-11-26T01:00:00Z", "pending"),
            point("i-a", "2026-11-25T01:00:00Z", "completed"),
            point("i-a", "2026-11-24T01:00:00Z", "completed"),
        ];
        let at = |t: &str| At::parse(t).unwrap();
        assert_eq!(
            select(&points, "i-a", &at("latest")).unwrap().created_at,
            "2026-11-25T01:00:00Z",
            "the newest one is still pending"
        );
        assert_eq!(
            select(&points, "i-a", &at("2026-11-24T12:00:00Z"))
                .unwrap()
                .created_at,
            "2026-11-24T01:00:00Z"
        );
        let early = select(&points, "i-a", &at("2026-11-01T00:00:00Z")).unwrap_err();
        assert_eq!(
            early.0,
            "no complete restore point of i-a was made at or before 2026-11-01T00:00:00Z; the \
             oldest is 2026-11-24T01:00:00Z: pass --at 2026-11-24T01:00:00Z or later, or --at \
             latest"
        );
        let unknown = select(&points, "i-b", &At::Latest).unwrap_err();
        assert!(
            unknown.0.starts_with(
                "no restore point of i-b in eu-west-1; the instances with restore points are i-a"
            ),
            "{}",
            unknown.0
        );
        assert!(
            At::parse("yesterday")
                .unwrap_err()
                .0
                .contains("neither `latest` nor a time")
        );
    }

    #[test]
    fn volumes_come_back_as_they_were_in_their_zone_or_the_one_asked() {
        let p = point("i-a", "2026-11-25T01:00:00Z", "completed");
        let made = volumes(&p, None).unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(made[0].availability_zone, "eu-west-1b");
        assert_eq!(
            (
                made[0].details.volume_type.as_deref(),
                made[0].details.iops,
                made[0].details.throughput
            ),
            (Some("gp3"), Some(3000), Some(125))
        );
        // st1 takes neither IOPS nor throughput settings.
        assert_eq!(
            (
                made[1].details.iops,
                made[1].details.throughput,
                made[1].size_gib
            ),
            (None, None, 500)
        );
        assert!(made[1].tags.contains(&(
            RESTORED_FROM.into(),
            "snap-2026-11-25T01:00:00Z-data".into()
        )));
        assert_eq!(
            volumes(&p, Some("eu-west-1c")).unwrap()[0].availability_zone,
            "eu-west-1c"
        );
        let wrong = volumes(&p, Some("us-east-1a")).unwrap_err();
        assert!(
            wrong.0.starts_with("--az us-east-1a is not in eu-west-1"),
            "{}",
            wrong.0
        );
        let mut copied = p.clone();
        copied.region = "us-west-2".into();
        assert!(volumes(&copied, None).unwrap_err().0.contains(
            "a copy region, and its instance was in eu-west-1b: pass --az with a zone of us-west-2"
        ));
        assert_eq!(
            volumes(&copied, Some("us-west-2a")).unwrap()[0].availability_zone,
            "us-west-2a"
        );
        let mut unrecorded = p;
        unrecorded.availability_zone = None;
        assert!(
            volumes(&unrecorded, None)
                .unwrap_err()
                .0
                .contains("pass --az")
        );
    }

    #[test]
    fn a_new_instance_is_the_recorded_machine_placed_by_flags_then_the_original_then_records() {
        let p = point("i-a", "2026-11-25T01:00:00Z", "completed");
        let plan = new_instance(&p, &Placement::default(), None).unwrap();
        assert_eq!(plan.root_device, "/dev/xvda");
        assert_eq!(plan.architecture, "arm64");
        assert_eq!(plan.instance_type, "m7g.large", "from the records");
        let devices: Vec<(&str, bool)> = plan
            .devices
            .iter()
            .map(|d| (d.device.as_str(), d.delete_on_termination))
            .collect();
        assert_eq!(
            devices,
            [("/dev/xvda", true), ("/dev/sdf", false)],
            "root first, data kept"
        );
        assert_eq!(plan.image_name, "smartvault-restore-i-a-20261125T010000Z");
        let original = Placement {
            instance_type: Some("m7g.xlarge".into()),
            subnet_id: Some("subnet-1".into()),
            security_group_ids: vec!["sg-1".into()],
        };
        let placed = new_instance(&p, &Placement::default(), Some(&original)).unwrap();
        assert_eq!(
            (
                placed.instance_type.as_str(),
                placed.subnet_id.as_deref(),
                placed.security_group_ids.as_slice()
            ),
            ("m7g.xlarge", Some("subnet-1"), &["sg-1".to_owned()][..])
        );
        let flagged = Placement {
            instance_type: Some("c7g.large".into()),
            ..Placement::default()
        };
        assert_eq!(
            new_instance(&p, &flagged, Some(&original))
                .unwrap()
                .instance_type,
            "c7g.large"
        );
        // Flags AWS would refuse only at launch, after the image was registered.
        for (bad, expected) in [
            (
                Placement {
                    subnet_id: Some(String::new()),
                    ..Placement::default()
                },
                "--subnet \"\" is not a subnet id",
            ),
            (
                Placement {
                    security_group_ids: vec![String::new()],
                    ..Placement::default()
                },
                "--security-groups holds \"\", which is not a security group id",
            ),
            (
                Placement {
                    security_group_ids: vec!["sg-0123abcd".into(), "web".into()],
                    ..Placement::default()
                },
                "--security-groups holds \"web\"",
            ),
        ] {
            let message = new_instance(&p, &bad, Some(&original)).unwrap_err().0;
            assert!(message.contains(expected), "{message}");
        }
        let mut no_root = p.clone();
        no_root.volumes.remove(0);
        assert!(
            new_instance(&no_root, &flagged, None)
                .unwrap_err()
                .0
                .contains("no snapshot of its root device /dev/xvda")
        );
        let mut unrecorded = p;
        unrecorded.architecture = None;
        assert!(
            new_instance(&unrecorded, &flagged, None)
                .unwrap_err()
                .0
                .contains("no recorded architecture")
        );
    }

    #[test]
    fn a_root_is_replaced_in_place_only_on_a_running_instance_from_the_root_snapshot() {
        let p = point("i-a", "2026-11-25T01:00:00Z", "completed");
        let task = replace_root(&p, Some("running")).unwrap();
        assert_eq!(task.snapshot_id, "snap-2026-11-25T01:00:00Z-root");
        assert!(task.client_token.len() <= 64);
        assert!(
            replace_root(&p, Some("stopped"))
                .unwrap_err()
                .0
                .starts_with(
                    "i-a is stopped; EC2 replaces a root volume only on a running instance"
                )
        );
        assert!(
            replace_root(&p, None)
                .unwrap_err()
                .0
                .contains("restore it with --new-instance instead")
        );
        let mut no_root = p;
        no_root.volumes.remove(0);
        assert!(
            replace_root(&no_root, Some("running"))
                .unwrap_err()
                .0
                .contains("no snapshot of its root device")
        );
    }

    #[test]
    fn attaching_needs_a_stopped_instance_in_the_zone_with_the_devices_free() {
        let made = volumes(&point("i-a", "2026-11-25T01:00:00Z", "completed"), None).unwrap();
        let target = |state: &str, zone: &str, devices: &[&str]| Target {
            id: "i-new".into(),
            state: state.into(),
            availability_zone: zone.into(),
            devices: devices.iter().map(|d| (*d).to_owned()).collect(),
        };
        assert_eq!(
            check_attach(&target("stopped", "eu-west-1b", &[]), &made),
            Ok(())
        );
        let running = check_attach(&target("running", "eu-west-1b", &[]), &made).unwrap_err();
        assert!(
            running.0.starts_with(
                "i-new is running; attach restored volumes only to a stopped instance"
            )
        );
        let zone = check_attach(&target("stopped", "eu-west-1a", &[]), &made).unwrap_err();
        assert!(zone.0.starts_with(
            "i-new is in eu-west-1a, the volumes would be in eu-west-1b; pass --az eu-west-1a"
        ));
        let busy =
            check_attach(&target("stopped", "eu-west-1b", &["/dev/xvda"]), &made).unwrap_err();
        assert!(
            busy.0
                .starts_with("i-new already has a volume at /dev/xvda")
        );
    }

    #[test]
    fn latest_prefers_a_point_ready_in_the_zone_within_a_day_and_says_what_it_passed_over() {
        let points = vec![
            point("i-a", "2027-01-03T02:00:00Z", "completed"),
            point("i-a", "2027-01-02T20:00:00Z", "completed"),
            point("i-a", "2027-01-01T02:00:00Z", "completed"),
        ];
        let ids = |p: &RestorePoint| -> Vec<String> {
            p.volumes.iter().map(|v| v.snapshot_id.clone()).collect()
        };
        let ready_in = |p: &RestorePoint, zone: &str| -> Vec<(String, String)> {
            ids(p).into_iter().map(|id| (id, zone.to_owned())).collect()
        };
        // Nothing ready: the newest, not ready.
        let none = prefer_fast(&points, &points[0], &At::Latest, "eu-west-1b", &[]);
        assert_eq!(
            (none.point, none.ready, none.passed_over),
            (&points[0], false, None)
        );
        // The newest ready itself.
        let own = prefer_fast(
            &points,
            &points[0],
            &At::Latest,
            "eu-west-1b",
            &ready_in(&points[0], "eu-west-1b"),
        );
        assert_eq!(
            (own.point, own.ready, own.passed_over),
            (&points[0], true, None)
        );
        // Six hours older and ready in the zone: preferred, the newest named.
        let ready = ready_in(&points[1], "eu-west-1b");
        let preferred = prefer_fast(&points, &points[0], &At::Latest, "eu-west-1b", &ready);
        assert_eq!(
            (preferred.point, preferred.ready, preferred.passed_over),
            (&points[1], true, Some(&points[0]))
        );
        // Ready in another zone only, or an explicit --at: the chosen point stays.
        let elsewhere = prefer_fast(&points, &points[0], &At::Latest, "eu-west-1a", &ready);
        assert_eq!(elsewhere.point, &points[0]);
        let at = At::parse("2027-01-03T02:00:00Z").unwrap();
        assert_eq!(
            prefer_fast(&points, &points[0], &at, "eu-west-1b", &ready).point,
            &points[0]
        );
        // Two days older: too old to prefer.
        let old = prefer_fast(
            &points,
            &points[0],
            &At::Latest,
            "eu-west-1b",
            &ready_in(&points[2], "eu-west-1b"),
        );
        assert_eq!((old.point, old.ready), (&points[0], false));
    }
}
