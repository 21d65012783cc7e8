//! The AWS regions, by partition, as the SDK's endpoint data publishes them (a test compares the
//! two): a copy region must be one of them, in the environment's own partition.

/// Each partition and its regions.
pub const PARTITIONS: &[(&str, &[&str])] = &[
    (
        "aws",
        &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    ),
    ("aws-cn", &["cn-north-1", "cn-northwest-1"]),
    ("aws-us-gov", &["us-gov-east-1", "us-gov-west-1"]),
    ("aws-iso", &["us-iso-east-1", "us-iso-west-1"]),
    ("aws-iso-b", &["us-isob-east-1", "us-isob-west-1"]),
    ("aws-iso-e", &["eu-isoe-west-1"]),
    ("aws-iso-f", &["us-isof-east-1", "us-isof-south-1"]),
    ("aws-eusc", &["eusc-de-east-1"]),
];

/// The partition `region` belongs to, when AWS publishes it.
pub fn partition_of(region: &str) -> Option<&'static str> {
    PARTITIONS
        .iter()
        .find(|(_, regions)| regions.contains(&region))
        .map(|(partition, _)| *partition)
}

/// The regions of `region`'s partition other than itself, for an error's hint.
pub fn others_in_partition(region: &str) -> Vec<&'static str> {
    PARTITIONS
        .iter()
        .find(|(_, regions)| regions.contains(&region))
        .map(|(_, regions)| regions.iter().copied().filter(|r| *r != region).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_partition_rule_agrees_with_every_published_region() {
        // The function (and role and key checks) derive a partition from a region's name; the
        // published list is the truth it must agree with.
        for (partition, regions) in PARTITIONS {
            for region in *regions {
                assert_eq!(
                    function::copies::partition_of_region(region),
                    *partition,
                    "{region}"
                );
            }
        }
    }

    #[test]
    fn regions_are_known_by_partition() {
        assert_eq!(partition_of("eu-west-1"), Some("aws"));
        assert_eq!(partition_of("cn-north-1"), Some("aws-cn"));
        assert_eq!(partition_of("eu-west-9"), None);
        assert!(others_in_partition("us-gov-west-1") == ["us-gov-east-1"]);
    }
}
