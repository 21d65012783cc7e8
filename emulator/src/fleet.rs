//! Builds fixture fleets in the emulator: tagged EC2 instances with attached volumes.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, InstanceType, ResourceType, Tag, TagSpecification,
};

/// Errors from fleet set-up carry the failing SDK call.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The device name moto reports as every instance's root device.
pub const ROOT_DEVICE: &str = "/dev/sda1";
const DATA_DEVICES: &[&str] = &["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj"];

/// What one instance of a fleet looks like.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    name: String,
    tags: Vec<(String, String)>,
    root_volume: bool,
    data_volumes: usize,
    volume_tags: Vec<(usize, String, String)>,
    stopped: bool,
}

/// `count` instances tagged `Backup=true`, named `node-0`, `node-1`, ..., each with a root and
/// a data volume: the fleet of the fault tests and the benchmarks.
pub fn two_volume_fleet(count: usize) -> Vec<InstanceSpec> {
    (0..count)
        .map(|n| InstanceSpec::backup(&format!("node-{n}")).data_volumes(1))
        .collect()
}

impl InstanceSpec {
    /// An instance tagged `Backup=true` with a root volume and no data volume.
    pub fn backup(name: &str) -> Self {
        Self::untagged(name).tag("Backup", "true")
    }

    /// An instance with only a `Name` tag and a root volume.
    pub fn untagged(name: &str) -> Self {
        InstanceSpec {
            name: name.to_owned(),
            tags: vec![("Name".to_owned(), name.to_owned())],
            root_volume: true,
            data_volumes: 0,
            volume_tags: Vec::new(),
            stopped: false,
        }
    }

    /// Adds an instance tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets the number of data volumes besides the root volume.
    pub fn data_volumes(mut self, count: usize) -> Self {
        assert!(
            count <= DATA_DEVICES.len(),
            "at most {} data volumes",
            DATA_DEVICES.len()
        );
        self.data_volumes = count;
        self
    }

    /// Leaves the root volume out (moto then reports no boot volume at all).
    pub fn without_root_volume(mut self) -> Self {
        self.root_volume = false;
        self
    }

    /// Tags volume `index` (0 is the root volume when there is one, data volumes follow).
    pub fn volume_tag(mut self, index: usize, key: &str, value: &str) -> Self {
        self.volume_tags
            .push((index, key.to_owned(), value.to_owned()));
        self
    }

    /// Stops the instance after launching it.
    pub fn stopped(mut self) -> Self {
        self.stopped = true;
        self
    }

    fn devices(&self) -> Vec<&'static str> {
        let root = self.root_volume.then_some(ROOT_DEVICE);
        root.into_iter()
            .chain(DATA_DEVICES.iter().copied().take(self.data_volumes))
            .collect()
    }
}

/// An instance the fleet builder launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetInstance {
    pub id: String,
    pub name: String,
    /// Volume ids in device order: the root volume first when there is one.
    pub volume_ids: Vec<String>,
}

/// Launches one instance as `spec` describes it, in its own reservation.
pub async fn launch(ec2: &Client, spec: &InstanceSpec) -> Result<FleetInstance> {
    let mappings = spec.devices().into_iter().map(|device| {
        BlockDeviceMapping::builder()
            .device_name(device)
            .ebs(EbsBlockDevice::builder().volume_size(8).build())
            .build()
    });
    let tags = spec
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build());
    let output = ec2
        .run_instances()
        .image_id("ami-00000000000000001")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .set_block_device_mappings(Some(mappings.collect()))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(tags.collect()))
                .build(),
        )
        .send()
        .await?;
    let instance = output
        .instances()
        .first()
        .ok_or("run_instances returned no instance")?;
    let id = instance.instance_id().unwrap_or_default().to_owned();
    let mut volume_ids = Vec::new();
    for device in spec.devices() {
        let volume = instance
            .block_device_mappings()
            .iter()
            .find(|m| m.device_name() == Some(device))
            .and_then(|m| m.ebs())
            .and_then(|ebs| ebs.volume_id())
            .ok_or_else(|| format!("instance {id} has no volume at {device}"))?;
        volume_ids.push(volume.to_owned());
    }
    for (index, key, value) in &spec.volume_tags {
        let volume = volume_ids
            .get(*index)
            .ok_or_else(|| format!("instance {id} has no volume {index}"))?;
        tag_resource(ec2, volume, key, value).await?;
    }
    if spec.stopped {
        ec2.stop_instances().instance_ids(&id).send().await?;
    }
    Ok(FleetInstance {
        id,
        name: spec.name.clone(),
        volume_ids,
    })
}

/// Launches every instance, one reservation each, in order.
pub async fn launch_all(ec2: &Client, specs: &[InstanceSpec]) -> Result<Vec<FleetInstance>> {
    let mut fleet = Vec::with_capacity(specs.len());
    for spec in specs {
        fleet.push(launch(ec2, spec).await?);
    }
    Ok(fleet)
}

/// Adds one tag to any resource.
pub async fn tag_resource(ec2: &Client, resource: &str, key: &str, value: &str) -> Result<()> {
    ec2.create_tags()
        .resources(resource)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await?;
    Ok(())
}

/// Creates an 8 GiB volume attached to nothing (in the region's first zone); returns its id.
pub async fn detached_volume(ec2: &Client) -> Result<String> {
    let output = ec2
        .create_volume()
        .availability_zone(format!("{}a", crate::REGION))
        .size(8)
        .send()
        .await?;
    Ok(output.volume_id().unwrap_or_default().to_owned())
}

/// Makes a snapshot the way a person or another tool would, with the given tags.
pub async fn snapshot_by_hand(
    ec2: &Client,
    volume_id: &str,
    tags: &[(&str, &str)],
) -> Result<String> {
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build());
    let output = ec2
        .create_snapshot()
        .volume_id(volume_id)
        .description("made by hand")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .set_tags(Some(tags.collect()))
                .build(),
        )
        .send()
        .await?;
    Ok(output.snapshot_id().unwrap_or_default().to_owned())
}
