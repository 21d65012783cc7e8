//! The main template's parameters as one type: the only place their CloudFormation names are
//! spelled, converting to the parameters deploy sends and from those a deployed stack reports.

use std::collections::BTreeMap;

/// Declares [`StackParameters`] with each field's CloudFormation name, once.
macro_rules! stack_parameters {
    ($($(#[$doc:meta])* $field:ident => $name:literal,)*) => {
        /// The main template's parameters. Every field is the string CloudFormation holds;
        /// `None` is a parameter not supplied (or not reported by an older stack).
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct StackParameters {
            $($(#[$doc])* pub $field: Option<String>,)*
        }

        impl StackParameters {
            /// Every parameter's CloudFormation name, in declaration order.
            #[cfg(test)]
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The parameters as CloudFormation takes them, by name; unset ones are left out.
            pub fn to_cfn(&self) -> BTreeMap<String, String> {
                let mut map = BTreeMap::new();
                $(if let Some(value) = &self.$field {
                    map.insert($name.to_owned(), value.clone());
                })*
                map
            }

            /// The parameters a stack reports; names this version does not know are ignored.
            pub fn from_cfn<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
                let mut parameters = Self::default();
                for (name, value) in pairs {
                    match name {
                        $($name => parameters.$field = Some(value.to_owned()),)*
                        _ => {}
                    }
                }
                parameters
            }
        }
    };
}

stack_parameters! {
    /// The stack name, which names every resource and tags every snapshot.
    deployment_name => "DeploymentName",
    artifact_bucket => "ArtifactBucket",
    /// `true` for a stack set: the bucket is `<ArtifactBucket>-<region>` in each region.
    artifact_bucket_per_region => "ArtifactBucketPerRegion",
    /// `false` for a stack set: its instances' accounts have no bootstrap boundary.
    use_bootstrap_boundary => "UseBootstrapBoundary",
    /// An organization's central topic in the administrator account; empty for none.
    central_topic_arn => "CentralTopicArn",
    artifact_key => "ArtifactKey",
    artifact_sha256 => "ArtifactSha256",
    smartvault_version => "SmartVaultVersion",
    architecture => "Architecture",
    memory_size => "MemorySize",
    timeout => "Timeout",
    log_retention_days => "LogRetentionDays",
    reserved_concurrency => "ReservedConcurrency",
    notification_email_1 => "NotificationEmail1",
    notification_email_2 => "NotificationEmail2",
    notification_email_3 => "NotificationEmail3",
    backup_tag_key => "BackupTagKey",
    backup_tag_value => "BackupTagValue",
    /// Every schedule's name and retention, as the function's `SCHEDULES` variable.
    schedules => "Schedules",
    /// Schedule slots 1 to 4 (CloudFormation has no loops): an empty name leaves a slot out.
    schedule_1_name => "Schedule1Name",
    schedule_1_expression => "Schedule1Expression",
    schedule_1_timezone => "Schedule1Timezone",
    schedule_1_window => "Schedule1WindowMinutes",
    schedule_1_overdue_hours => "Schedule1OverdueHours",
    schedule_2_name => "Schedule2Name",
    schedule_2_expression => "Schedule2Expression",
    schedule_2_timezone => "Schedule2Timezone",
    schedule_2_window => "Schedule2WindowMinutes",
    schedule_2_overdue_hours => "Schedule2OverdueHours",
    schedule_3_name => "Schedule3Name",
    schedule_3_expression => "Schedule3Expression",
    schedule_3_timezone => "Schedule3Timezone",
    schedule_3_window => "Schedule3WindowMinutes",
    schedule_3_overdue_hours => "Schedule3OverdueHours",
    schedule_4_name => "Schedule4Name",
    schedule_4_expression => "Schedule4Expression",
    schedule_4_timezone => "Schedule4Timezone",
    schedule_4_window => "Schedule4WindowMinutes",
    schedule_4_overdue_hours => "Schedule4OverdueHours",
    /// How many hourly periods the overdue alarms look back for a report; 0 leaves them out.
    overdue_alarm_hours => "OverdueAlarmHours",
    /// Days a deleted snapshot of this deployment stays in the Recycle Bin; 0 leaves the
    /// rule out.
    recycle_bin_days => "RecycleBinDays",
    /// A region-wide, locked Recycle Bin rule's unlock delay in days; 0 leaves it out.
    recycle_bin_unlock_delay_days => "RecycleBinUnlockDelayDays",
    /// The copy rules as the function's `COPIES` variable.
    copies => "Copies",
    /// Copy region slots 1 to 3: an empty region leaves a slot out. The key is given as a key
    /// ARN or as an alias (`alias/<name>`, from an alias ARN too); the other is empty.
    copy_1_region => "Copy1Region",
    copy_1_kms_key_arn => "Copy1KmsKeyArn",
    copy_1_kms_alias => "Copy1KmsAlias",
    copy_2_region => "Copy2Region",
    copy_2_kms_key_arn => "Copy2KmsKeyArn",
    copy_2_kms_alias => "Copy2KmsAlias",
    copy_3_region => "Copy3Region",
    copy_3_kms_key_arn => "Copy3KmsKeyArn",
    copy_3_kms_alias => "Copy3KmsAlias",
    /// The customer managed keys of the backed-up volumes, comma-separated (empty: none).
    source_kms_key_arns => "SourceKmsKeyArns",
    /// The vault this deployment's sets go to, as the function's `VAULT` variable (empty: none).
    vault => "Vault",
    /// That vault's read-only role (empty: no vault) and its lag alarm's bound.
    vault_reader_role_arn => "VaultReaderRoleArn",
    vault_max_lag_hours => "VaultMaxLagHours",
    /// A vault's settings as the function's `VAULT_FOR` variable (empty: this is no vault).
    vault_for => "VaultFor",
    vault_kms_key_arn => "VaultKmsKeyArn",
    /// The snapshot ARNs of the workload regions a vault copies from and of its own region,
    /// comma-separated.
    vault_source_snapshots => "VaultSourceSnapshots",
    /// The workload accounts' root ARNs that may assume the vault's read-only role.
    vault_reader_principals => "VaultReaderPrincipals",
    vault_source_kms_key_arns => "VaultSourceKmsKeyArns",
    /// The tripwire's sensitivity as the function's `TRIPWIRE` variable (empty: none).
    tripwire => "Tripwire",
    /// How many of a suspicious set's changed blocks the tripwire samples (0: none).
    tripwire_sample_blocks => "TripwireSampleBlocks",
    /// The environment's name as the function's `ENVIRONMENT` variable.
    environment_name => "EnvironmentName",
    /// `true` when a schedule's consistency sends SmartVault's Linux document.
    ship_freeze_document => "ShipFreezeDocument",
    /// `true` when a schedule has `fast_restore` (EC2's completion events then reach the
    /// function, which makes each completed set ready at once).
    fast_restore => "FastRestore",
    /// The other documents schedules' consistency sends, as ARNs, comma-separated.
    consistency_documents => "ConsistencyDocuments",
    /// The restore test's settings as the function's `RESTORE_TEST` variable (empty: none).
    restore_test => "RestoreTest",
    /// The restore test's schedule; an empty expression leaves the schedule, its rights and
    /// its alarm out.
    restore_test_expression => "RestoreTestExpression",
    restore_test_timezone => "RestoreTestTimezone",
    exclude_boot_volume => "ExcludeBootVolume",
    min_interval_minutes => "MinIntervalMinutes",
    max_concurrency => "MaxConcurrency",
    dry_run => "DryRun",
    ec2_rate_share => "Ec2RateShare",
    ec2_refill_per_second => "Ec2RefillPerSecond",
    max_links => "MaxLinks",
}

/// Where a deployed zip lives in the artifact bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArtifactLocation {
    pub bucket: String,
    pub key: String,
    pub sha256: String,
}

impl StackParameters {
    /// The artifact a stack runs; the name of the first of its three parameters missing.
    pub fn artifact(&self) -> Result<ArtifactLocation, &'static str> {
        Ok(ArtifactLocation {
            bucket: self.artifact_bucket.clone().ok_or("ArtifactBucket")?,
            key: self.artifact_key.clone().ok_or("ArtifactKey")?,
            sha256: self.artifact_sha256.clone().ok_or("ArtifactSha256")?,
        })
    }

    /// The schedules a stack runs: (name, expression, time zone) of each filled slot.
    pub fn schedule_slots(&self) -> Vec<(String, String, String)> {
        [
            (
                &self.schedule_1_name,
                &self.schedule_1_expression,
                &self.schedule_1_timezone,
            ),
            (
                &self.schedule_2_name,
                &self.schedule_2_expression,
                &self.schedule_2_timezone,
            ),
            (
                &self.schedule_3_name,
                &self.schedule_3_expression,
                &self.schedule_3_timezone,
            ),
            (
                &self.schedule_4_name,
                &self.schedule_4_expression,
                &self.schedule_4_timezone,
            ),
        ]
        .into_iter()
        .filter_map(|(name, expression, zone)| {
            let name = name.as_deref().filter(|n| !n.is_empty())?;
            Some((
                name.to_owned(),
                expression.clone().unwrap_or_default(),
                zone.clone().unwrap_or_else(|| "UTC".to_owned()),
            ))
        })
        .collect()
    }

    /// The regions a stack copies to, as its `Copies` parameter records them.
    pub fn copy_regions(&self) -> Vec<String> {
        let rules: Vec<function::model::CopyRule> = self
            .copies
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        rules.into_iter().map(|r| r.region).collect()
    }

    /// The bucket and key of the artifact, when the stack records them.
    pub fn artifact_object(&self) -> Option<(&str, &str)> {
        Some((
            self.artifact_bucket.as_deref()?,
            self.artifact_key.as_deref()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_survive_the_round_trip_through_cloudformation_names() {
        let parameters = StackParameters {
            deployment_name: Some("smartvault-dev".into()),
            artifact_bucket: Some("b".into()),
            artifact_key: Some("artifacts/x.zip".into()),
            artifact_sha256: Some("ab".into()),
            schedule_1_expression: Some("cron(0 1 * * ? *)".into()),
            max_links: Some("20".into()),
            ..StackParameters::default()
        };
        let cfn = parameters.to_cfn();
        assert_eq!(cfn["ArtifactSha256"], "ab");
        assert_eq!(cfn["MaxLinks"], "20");
        assert_eq!(cfn.len(), 6, "unset parameters are not sent: {cfn:?}");
        let back = StackParameters::from_cfn(cfn.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(back, parameters);
        assert_eq!(
            back.artifact(),
            Ok(ArtifactLocation {
                bucket: "b".into(),
                key: "artifacts/x.zip".into(),
                sha256: "ab".into()
            })
        );
    }

    #[test]
    fn a_stack_without_an_artifact_or_with_unknown_parameters_reads_cleanly() {
        let read = StackParameters::from_cfn([("ArtifactBucket", "b"), ("SomethingNew", "x")]);
        assert_eq!(read.artifact_bucket.as_deref(), Some("b"));
        assert_eq!(read.artifact(), Err("ArtifactKey"));
        assert_eq!(read.artifact_object(), None);
        assert_eq!(read.to_cfn().len(), 1);
    }

    #[test]
    fn the_artifact_names_its_missing_parameter_with_the_name_cloudformation_knows() {
        for (missing, name) in [
            (0, "ArtifactBucket"),
            (1, "ArtifactKey"),
            (2, "ArtifactSha256"),
        ] {
            let mut parameters = StackParameters {
                artifact_bucket: Some("b".into()),
                artifact_key: Some("k".into()),
                artifact_sha256: Some("h".into()),
                ..StackParameters::default()
            };
            *[
                &mut parameters.artifact_bucket,
                &mut parameters.artifact_key,
                &mut parameters.artifact_sha256,
            ][missing] = None;
            assert_eq!(parameters.artifact(), Err(name));
            assert!(StackParameters::NAMES.contains(&name));
        }
    }

    #[test]
    fn every_name_is_distinct() {
        let names: std::collections::BTreeSet<_> = StackParameters::NAMES.iter().collect();
        assert_eq!(names.len(), StackParameters::NAMES.len());
    }
}
