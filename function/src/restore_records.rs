//! What a restore needs that a snapshot does not keep, recorded as tags at backup time: per
//! set the instance's type, architecture, zone, root device and platform (boot mode, TPM,
//! IMDSv2, platform details); per volume its device name, type, IOPS and throughput. Pure:
//! written by the planner, read by the deployer's restore.

use crate::tags::Tags;

/// The instance's type, e.g. `m7g.large`.
pub const INSTANCE_TYPE: &str = "smartvault:instance-type";
/// The instance's architecture: `x86_64`, `arm64`, ...
pub const ARCHITECTURE: &str = "smartvault:architecture";
/// The instance's availability zone, where its volumes were.
pub const AVAILABILITY_ZONE: &str = "smartvault:availability-zone";
/// The instance's root device name, e.g. `/dev/xvda`.
pub const ROOT_DEVICE: &str = "smartvault:root-device";
/// How the instance booted and what its image must say to boot it the same way: see
/// [`Platform`].
pub const PLATFORM: &str = "smartvault:platform";
/// The prefix of each volume's record: `smartvault:volume:<volume id>`.
pub const VOLUME_PREFIX: &str = "smartvault:volume:";

/// A volume's type and performance, as a restore needs them: the one shape the backup's
/// records, the restore test, restore points and restores share.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeDetails {
    pub volume_type: Option<String>,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
}

impl VolumeDetails {
    /// What a new volume may be given of these: EC2 takes IOPS only for io1, io2 and gp3
    /// (gp2's follow its size, and asking for them is refused), and throughput only for gp3.
    pub fn settable(&self) -> VolumeDetails {
        let kind = self.volume_type.as_deref();
        VolumeDetails {
            volume_type: self.volume_type.clone(),
            iops: self
                .iops
                .filter(|_| matches!(kind, Some("io1" | "io2" | "gp3"))),
            throughput: self.throughput.filter(|_| kind == Some("gp3")),
        }
    }
}

/// One volume as it was attached when its set was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeRecord {
    pub device: String,
    pub details: VolumeDetails,
}

impl VolumeRecord {
    /// The tag key of `volume_id`'s record.
    pub fn key(volume_id: &str) -> String {
        format!("{VOLUME_PREFIX}{volume_id}")
    }

    /// The tag value: `device=/dev/sdf type=gp3 iops=3000 throughput=125`, unknown parts left
    /// out; at most 90 characters for any device name EC2 takes.
    pub fn value(&self) -> String {
        let mut parts = vec![format!("device={}", self.device)];
        if let Some(kind) = &self.details.volume_type {
            parts.push(format!("type={kind}"));
        }
        if let Some(iops) = self.details.iops {
            parts.push(format!("iops={iops}"));
        }
        if let Some(throughput) = self.details.throughput {
            parts.push(format!("throughput={throughput}"));
        }
        parts.join(" ")
    }

    /// Reads a record's value back; `None` when it has no device.
    pub fn parse(value: &str) -> Option<Self> {
        let mut record = VolumeRecord::default();
        for part in value.split(' ') {
            let (key, v) = part.split_once('=')?;
            match key {
                "device" => record.device = v.to_owned(),
                "type" => record.details.volume_type = Some(v.to_owned()),
                "iops" => record.details.iops = v.parse().ok(),
                "throughput" => record.details.throughput = v.parse().ok(),
                _ => {}
            }
        }
        (!record.device.is_empty()).then_some(record)
    }

    /// The record of `volume_id` among a snapshot's tags.
    pub fn of(tags: &Tags, volume_id: &str) -> Option<Self> {
        tags.get(&Self::key(volume_id))
            .and_then(|value| Self::parse(value))
    }
}

/// What an image registered from the snapshots must declare for the instance to boot as it
/// did: its boot mode (`legacy-bios` or `uefi`: an x86 instance that booted UEFI never boots
/// from a legacy-BIOS image), NitroTPM (`v2.0`), whether it required IMDSv2, and EC2's platform
/// details (`Linux/UNIX`, `Windows`, ...), which an image registered from snapshots does not
/// carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    pub boot_mode: Option<String>,
    pub tpm: Option<String>,
    /// `required` or `optional`, as the instance's metadata options said.
    pub imds_tokens: Option<String>,
    pub details: Option<String>,
}

impl Platform {
    /// The tag value, e.g. `boot=uefi tpm=v2.0 imds=required os=Windows`; `os=` comes last
    /// and takes the rest, since platform details hold spaces (`Red Hat Enterprise Linux`).
    /// `None` when nothing is known.
    pub fn value(&self) -> Option<String> {
        let mut parts = Vec::new();
        for (key, value) in [
            ("boot", &self.boot_mode),
            ("tpm", &self.tpm),
            ("imds", &self.imds_tokens),
            ("os", &self.details),
        ] {
            if let Some(value) = value {
                parts.push(format!("{key}={value}"));
            }
        }
        (!parts.is_empty()).then(|| crate::tags::fit(&parts.join(" "), 256))
    }

    /// Reads a record's value back; unknown parts are ignored.
    pub fn parse(value: &str) -> Self {
        let (head, os) = match value.split_once("os=") {
            Some((head, os)) => (head, Some(os.trim().to_owned())),
            None => (value, None),
        };
        let mut platform = Platform {
            details: os.filter(|o| !o.is_empty()),
            ..Platform::default()
        };
        for part in head.split_whitespace() {
            match part.split_once('=') {
                Some(("boot", v)) => platform.boot_mode = Some(v.to_owned()),
                Some(("tpm", v)) => platform.tpm = Some(v.to_owned()),
                Some(("imds", v)) => platform.imds_tokens = Some(v.to_owned()),
                _ => {}
            }
        }
        platform
    }

    /// Whether an image registered from the snapshots runs as this platform: EC2 reports
    /// such an image as `Linux/UNIX`, so a Windows (or licensed Linux) instance comes back
    /// without its license and billing code.
    pub fn survives_registration(&self) -> bool {
        self.details.as_deref().is_none_or(|d| d == "Linux/UNIX")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_round_trips_through_its_tag_with_spaces_in_its_details() {
        let platform = Platform {
            boot_mode: Some("uefi".into()),
            tpm: Some("v2.0".into()),
            imds_tokens: Some("required".into()),
            details: Some("Red Hat Enterprise Linux".into()),
        };
        let value = platform.value().unwrap();
        assert_eq!(
            value,
            "boot=uefi tpm=v2.0 imds=required os=Red Hat Enterprise Linux"
        );
        assert_eq!(Platform::parse(&value), platform);
        assert!(!platform.survives_registration());
        let bios = Platform {
            boot_mode: Some("legacy-bios".into()),
            details: Some("Linux/UNIX".into()),
            ..Platform::default()
        };
        assert_eq!(Platform::parse(&bios.value().unwrap()), bios);
        assert!(bios.survives_registration());
        assert_eq!(Platform::default().value(), None);
        assert_eq!(Platform::parse("garbage"), Platform::default());
    }

    #[test]
    fn a_record_round_trips_through_its_tag_and_unknown_parts_stay_unknown() {
        let full = VolumeRecord {
            device: "/dev/sdf".into(),
            details: VolumeDetails {
                volume_type: Some("gp3".into()),
                iops: Some(3000),
                throughput: Some(125),
            },
        };
        assert_eq!(
            full.value(),
            "device=/dev/sdf type=gp3 iops=3000 throughput=125"
        );
        assert_eq!(VolumeRecord::parse(&full.value()), Some(full.clone()));
        let bare = VolumeRecord {
            device: "/dev/xvda".into(),
            ..VolumeRecord::default()
        };
        assert_eq!(bare.value(), "device=/dev/xvda");
        assert_eq!(VolumeRecord::parse("device=/dev/xvda"), Some(bare));
        assert_eq!(VolumeRecord::parse("type=gp3"), None);
        assert_eq!(VolumeRecord::parse("garbage"), None);
        let tags = Tags::from([(VolumeRecord::key("vol-1"), full.value())]);
        assert_eq!(VolumeRecord::of(&tags, "vol-1"), Some(full));
        assert_eq!(VolumeRecord::key("vol-0123456789abcdef0").len(), 39);
    }

    #[test]
    fn only_the_types_that_take_iops_and_throughput_settings_are_given_them() {
        for (kind, iops, throughput) in [
            ("gp3", Some(3000), Some(125)),
            ("io2", Some(3000), None),
            ("io1", Some(3000), None),
            ("gp2", None, None),
            ("st1", None, None),
            ("sc1", None, None),
            ("standard", None, None),
        ] {
            let asked = VolumeDetails {
                volume_type: Some(kind.into()),
                iops: Some(3000),
                throughput: Some(125),
            };
            let given = asked.settable();
            assert_eq!((given.iops, given.throughput), (iops, throughput), "{kind}");
            assert_eq!(given.volume_type.as_deref(), Some(kind));
        }
        let untyped = VolumeDetails {
            iops: Some(3000),
            ..VolumeDetails::default()
        };
        assert_eq!(untyped.settable().iops, None);
    }
}
