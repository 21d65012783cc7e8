//! What a restore needs that a snapshot does not keep, recorded as tags at backup time: per
//! set the instance's type, architecture, zone and root device; per volume its device name,
//! type, IOPS and throughput. Pure: written by the planner, read by the deployer's restore.

use crate::model::Tags;

/// The instance's type, e.g. `m7g.large`.
pub const INSTANCE_TYPE: &str = "smartvault:instance-type";
/// The instance's architecture: `x86_64`, `arm64`, ...
pub const ARCHITECTURE: &str = "smartvault:architecture";
/// The instance's availability zone, where its volumes were.
pub const AVAILABILITY_ZONE: &str = "smartvault:availability-zone";
/// The instance's root device name, e.g. `/dev/xvda`.
pub const ROOT_DEVICE: &str = "smartvault:root-device";
/// The prefix of each volume's record: `smartvault:volume:<volume id>`.
pub const VOLUME_PREFIX: &str = "smartvault:volume:";

/// One volume as it was attached when its set was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeRecord {
    pub device: String,
    pub volume_type: Option<String>,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
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
        if let Some(kind) = &self.volume_type {
            parts.push(format!("type={kind}"));
        }
        if let Some(iops) = self.iops {
            parts.push(format!("iops={iops}"));
        }
        if let Some(throughput) = self.throughput {
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
                "type" => record.volume_type = Some(v.to_owned()),
                "iops" => record.iops = v.parse().ok(),
                "throughput" => record.throughput = v.parse().ok(),
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

/// The IOPS a new volume of `volume_type` may be given: EC2 takes a setting only for io1, io2
/// and gp3 (gp2's IOPS follow its size, and asking for them is refused).
pub fn settable_iops(volume_type: Option<&str>, iops: Option<i32>) -> Option<i32> {
    iops.filter(|_| matches!(volume_type, Some("io1" | "io2" | "gp3")))
}

/// The throughput a new volume of `volume_type` may be given: only gp3 takes a setting.
pub fn settable_throughput(volume_type: Option<&str>, throughput: Option<i32>) -> Option<i32> {
    throughput.filter(|_| volume_type == Some("gp3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_tag_and_unknown_parts_stay_unknown() {
        let full = VolumeRecord {
            device: "/dev/sdf".into(),
            volume_type: Some("gp3".into()),
            iops: Some(3000),
            throughput: Some(125),
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
            assert_eq!(settable_iops(Some(kind), Some(3000)), iops, "{kind}");
            assert_eq!(
                settable_throughput(Some(kind), Some(125)),
                throughput,
                "{kind}"
            );
        }
        assert_eq!(settable_iops(None, Some(3000)), None);
    }
}
