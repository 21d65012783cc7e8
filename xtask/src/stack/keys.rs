//! Which KMS keys of the backed-up volumes the function's role is not granted through
//! `source_kms_keys` (pure): deploy names them before copies and restore tests of those volumes
//! fail on a key policy that does not admit the role.

use std::collections::BTreeMap;

/// One encrypted volume of a backed-up instance, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedVolume {
    pub volume_id: String,
    pub instance_id: String,
    pub kms_key_id: String,
}

/// The keys of `volumes` that `granted` does not list, each with its volumes, in key order.
pub fn not_granted<'a>(
    volumes: &'a [EncryptedVolume],
    granted: &[String],
) -> BTreeMap<&'a str, Vec<&'a EncryptedVolume>> {
    let mut found: BTreeMap<&str, Vec<&EncryptedVolume>> = BTreeMap::new();
    for volume in volumes {
        if !granted.contains(&volume.kms_key_id) {
            found
                .entry(volume.kms_key_id.as_str())
                .or_default()
                .push(volume);
        }
    }
    found
}

/// What deploy prints for each key not granted: the key, how many volumes use it (the first
/// few named), and the fix. It cannot tell an AWS managed key (`aws/ebs`, which admits every
/// principal of the account through EC2) from a customer managed one without
/// `kms:DescribeKey`, so it says both.
pub fn notes(volumes: &[EncryptedVolume], granted: &[String]) -> Vec<String> {
    not_granted(volumes, granted)
        .into_iter()
        .map(|(key, using)| {
            format!(
                "note: {} backed-up volume(s) ({}) are encrypted with {key}, which \
                 source_kms_keys does not list; if it is a customer managed key whose key policy \
                 does not let this function's role use it, their copies and restore tests will \
                 fail: add it to source_kms_keys (the AWS managed key aws/ebs needs nothing)",
                using.len(),
                named(&using)
            )
        })
        .collect()
}

/// The first few of `using` by volume and instance, and how many more.
fn named(using: &[&EncryptedVolume]) -> String {
    let first: Vec<String> = using
        .iter()
        .take(3)
        .map(|v| format!("{} of {}", v.volume_id, v.instance_id))
        .collect();
    match using.len().saturating_sub(first.len()) {
        0 => first.join(", "),
        more => format!("{} and {more} more", first.join(", ")),
    }
}

/// Why a vault cannot get every backed-up volume's sets, when it cannot: EBS shares no
/// snapshot under the AWS managed key `aws/ebs`, and a key `source_kms_keys` does not list may
/// be that key (it cannot be told apart without `kms:DescribeKey`).
pub fn vault_refusal(
    volumes: &[EncryptedVolume],
    granted: &[String],
    vault_account: &str,
) -> Option<String> {
    let missing = not_granted(volumes, granted);
    if missing.is_empty() {
        return None;
    }
    let listed: Vec<String> = missing
        .iter()
        .map(|(key, using)| format!("{key} ({})", named(using)))
        .collect();
    Some(format!(
        "backed-up volumes are encrypted with keys source_kms_keys does not list: {}; their \
         snapshots cannot reach the vault (EBS cannot share snapshots under the AWS managed key \
         aws/ebs). Re-encrypt them with a customer managed key whose key policy admits account \
         {vault_account} and list it in source_kms_keys, or opt them out with the volume tag \
         BackupExclude",
        listed.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(id: &str, instance: &str, key: &str) -> EncryptedVolume {
        EncryptedVolume {
            volume_id: id.into(),
            instance_id: instance.into(),
            kms_key_id: key.into(),
        }
    }

    #[test]
    fn a_vault_refuses_volumes_under_keys_it_cannot_be_given_naming_them_and_the_fix() {
        let granted = "arn:aws:kms:eu-west-1:123456789012:key/granted";
        let managed = "arn:aws:kms:eu-west-1:123456789012:key/aws-ebs";
        let fine = vec![volume("vol-1", "i-1", granted)];
        assert_eq!(
            vault_refusal(&fine, &[granted.into()], "222222222222"),
            None
        );
        assert_eq!(vault_refusal(&[], &[], "222222222222"), None);
        let refused = vault_refusal(
            &[
                volume("vol-1", "i-1", granted),
                volume("vol-2", "i-2", managed),
            ],
            &[granted.into()],
            "222222222222",
        )
        .unwrap();
        assert!(
            refused.contains(&format!("{managed} (vol-2 of i-2)"))
                && !refused.contains("vol-1")
                && refused.contains("aws/ebs")
                && refused.contains("admits account 222222222222")
                && refused.contains("BackupExclude"),
            "{refused}"
        );
    }

    #[test]
    fn only_keys_not_granted_are_named_once_each_with_their_volumes() {
        let granted = "arn:aws:kms:eu-west-1:123456789012:key/granted";
        let other = "arn:aws:kms:eu-west-1:123456789012:key/other";
        let volumes = vec![
            volume("vol-1", "i-1", granted),
            volume("vol-2", "i-1", other),
            volume("vol-3", "i-2", other),
            volume("vol-4", "i-3", other),
            volume("vol-5", "i-4", other),
        ];
        let notes = notes(&volumes, &[granted.to_owned()]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "note: 4 backed-up volume(s) (vol-2 of i-1, vol-3 of i-2, vol-4 of i-3 and 1 more) \
                 are encrypted with arn:aws:kms:eu-west-1:123456789012:key/other"
            ) && notes[0].contains("add it to source_kms_keys"),
            "{}",
            notes[0]
        );
        assert!(super::notes(&volumes[..1], &[granted.to_owned()]).is_empty());
    }
}
