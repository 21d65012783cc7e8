//! The KMS edge doctor reads: a key's manager and its key policy, in the key's own region.

use crate::aws::{Aws, said};

/// A key as doctor judges it.
pub enum Key {
    /// An AWS managed key: it admits every principal of the account through EC2.
    AwsManaged,
    /// A customer managed key: its ARN and its default key policy, `None` when not JSON.
    Customer {
        arn: String,
        policy: Option<serde_json::Value>,
    },
}

/// Reads `key` (an id, ARN or alias) in `region`; the error names the call that failed.
pub async fn key(aws: &Aws, region: &str, key: &str) -> Result<Key, String> {
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&aws.sdk)
            .region(aws_sdk_kms::config::Region::new(region.to_owned()))
            .build(),
    );
    let described = kms
        .describe_key()
        .key_id(key)
        .send()
        .await
        .map_err(|error| format!("kms:DescribeKey: {}", said(&error)))?;
    let metadata = described
        .key_metadata()
        .ok_or_else(|| "no key metadata".to_owned())?;
    if metadata.key_manager() == Some(&aws_sdk_kms::types::KeyManagerType::Aws) {
        return Ok(Key::AwsManaged);
    }
    let arn = metadata.arn().unwrap_or(key).to_owned();
    let read = kms
        .get_key_policy()
        .key_id(&arn)
        .policy_name("default")
        .send()
        .await
        .map_err(|error| format!("kms:GetKeyPolicy: {}", said(&error)))?;
    let policy = read.policy().and_then(|p| serde_json::from_str(p).ok());
    Ok(Key::Customer { arn, policy })
}
