//! How an environment's account is reached: the ambient credentials, a named profile, or a role
//! assumed with STS (`role_arn`, optional `external_id`). Pure validation; aws/mod.rs does the I/O.

use serde::Serialize;

/// The credentials a command uses for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// The standard credential chain (environment variables, `AWS_PROFILE`, SSO, OIDC in CI).
    #[default]
    Ambient,
    /// A named profile from the AWS config files.
    Profile { name: String },
    /// A role assumed from the ambient credentials.
    Role {
        arn: String,
        external_id: Option<String>,
        /// `smartvault-<environment>`: CloudTrail shows who acted, and for which environment.
        session_name: String,
    },
}

/// What the configuration says about one environment's credentials.
#[derive(Debug, Clone, Default)]
pub struct Requested<'a> {
    pub environment: &'a str,
    pub role_arn: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub account_id: Option<&'a str>,
    /// The environment's region: a role of another partition cannot be assumed there.
    pub region: Option<&'a str>,
}

/// A refusal: the key it concerns and the message with the fix.
pub type Refusal = (&'static str, String);

/// The account a role ARN belongs to, when it is one.
pub fn role_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?;
    let valid = partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        && !name.ends_with('/');
    valid.then_some(account)
}

/// STS's rule for an external id: 2 to 1,224 of letters, digits and `+=,.@:/-_`.
fn is_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b))
}

/// The session name for an environment: `smartvault-<env>`, within STS's 64 characters.
pub fn session_name(environment: &str) -> String {
    format!("smartvault-{environment}")
        .chars()
        .take(64)
        .collect()
}

/// Validates what an environment says about its credentials.
pub fn resolve(requested: &Requested<'_>) -> Result<Access, Refusal> {
    if requested.external_id.is_some() && requested.role_arn.is_none() {
        return Err((
            "external_id",
            "an external id is sent only when assuming a role; add `role_arn`, or remove \
             `external_id`"
                .into(),
        ));
    }
    match (requested.role_arn, requested.profile) {
        (Some(_), Some(_)) => Err((
            "role_arn",
            "give `role_arn` or `profile`, not both: `role_arn` is assumed from the ambient \
             credentials; to assume it from a profile, set role_arn and source_profile in that \
             profile (~/.aws/config) and name only the profile"
                .into(),
        )),
        (None, Some(profile)) => {
            if profile.trim().is_empty() || profile.trim() != profile {
                return Err((
                    "profile",
                    format!(
                        "{profile:?} is not a profile name; write the name of a [profile ...] \
                         in ~/.aws/config"
                    ),
                ));
            }
            Ok(Access::Profile {
                name: profile.to_owned(),
            })
        }
        (Some(arn), None) => {
            let Some(account) = role_account(arn) else {
                return Err((
                    "role_arn",
                    format!(
                        "{arn:?} is not an IAM role ARN; write e.g. \
                         \"arn:aws:iam::222222222222:role/smartvault-deployer\""
                    ),
                ));
            };
            let partition = arn.split(':').nth(1).unwrap_or_default();
            if let Some(region) = requested.region
                && partition != function::copies::partition_of_region(region)
            {
                let expected = function::copies::partition_of_region(region);
                return Err((
                    "role_arn",
                    format!(
                        "{arn:?} is a role of the {partition} partition, but the environment's \
                         region {region} is in the {expected} partition, where it cannot be \
                         assumed; write arn:{expected}:iam::<account>:role/<name>"
                    ),
                ));
            }
            if let Some(expected) = requested.account_id
                && expected != account
            {
                return Err((
                    "role_arn",
                    format!(
                        "{arn:?} is a role in account {account}, but account_id is {expected}; \
                         name a role in the environment's own account, or fix account_id"
                    ),
                ));
            }
            if let Some(id) = requested.external_id
                && !is_external_id(id)
            {
                return Err((
                    "external_id",
                    "an external id is 2 to 1224 letters, digits or +=,.@:/-_ (STS's rule)".into(),
                ));
            }
            Ok(Access::Role {
                arn: arn.to_owned(),
                external_id: requested.external_id.map(str::to_owned),
                session_name: session_name(requested.environment),
            })
        }
        (None, None) => Ok(Access::Ambient),
    }
}

/// The sentence that explains a refused `AssumeRole` and its fix.
pub fn assume_role_refused(environment: &str, arn: &str, external_id: bool) -> String {
    format!(
        "could not assume {arn} for environment {environment}: the credentials this command \
         started with must be allowed sts:AssumeRole on it, and the role's trust policy must \
         trust them{}; or override with --profile",
        if external_id {
            " with the configured external_id (sts:ExternalId)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested<'a>() -> Requested<'a> {
        Requested {
            environment: "prod",
            ..Requested::default()
        }
    }

    #[test]
    fn nothing_said_is_the_ambient_chain_and_a_profile_is_a_profile() {
        assert_eq!(resolve(&requested()), Ok(Access::Ambient));
        let profile = Requested {
            profile: Some("prod-admin"),
            ..requested()
        };
        assert_eq!(
            resolve(&profile),
            Ok(Access::Profile {
                name: "prod-admin".into()
            })
        );
    }

    #[test]
    fn a_role_of_another_partition_is_refused() {
        for (arn, region, partition) in [
            ("arn:aws-cn:iam::222222222222:role/d", "us-east-1", "aws-cn"),
            (
                "arn:aws-us-gov:iam::222222222222:role/d",
                "eu-west-1",
                "aws-us-gov",
            ),
            ("arn:aws:iam::222222222222:role/d", "cn-north-1", "aws"),
        ] {
            let (key, message) = resolve(&Requested {
                role_arn: Some(arn),
                region: Some(region),
                ..requested()
            })
            .unwrap_err();
            assert_eq!(key, "role_arn");
            assert!(
                message.contains(&format!("is a role of the {partition} partition")),
                "{message}"
            );
        }
        let gov = Requested {
            role_arn: Some("arn:aws-us-gov:iam::222222222222:role/d"),
            region: Some("us-gov-west-1"),
            ..requested()
        };
        assert!(resolve(&gov).is_ok());
    }

    #[test]
    fn a_role_is_assumed_with_a_session_named_after_the_environment() {
        let role = Requested {
            role_arn: Some("arn:aws:iam::222222222222:role/ci/smartvault-deployer"),
            external_id: Some("smartvault-prod-7f3a"),
            account_id: Some("222222222222"),
            ..requested()
        };
        assert_eq!(
            resolve(&role),
            Ok(Access::Role {
                arn: "arn:aws:iam::222222222222:role/ci/smartvault-deployer".into(),
                external_id: Some("smartvault-prod-7f3a".into()),
                session_name: "smartvault-prod".into(),
            })
        );
        assert_eq!(session_name(&"e".repeat(60)).len(), 64);
        assert_eq!(
            role_account("arn:aws-us-gov:iam::123456789012:role/x"),
            Some("123456789012")
        );
    }

    #[test]
    fn every_mistake_names_the_key_and_the_fix() {
        let cases: [(Requested, &str, &str); 7] = [
            (
                Requested {
                    role_arn: Some("arn:aws:iam::2222:role/x"),
                    ..requested()
                },
                "role_arn",
                "is not an IAM role ARN; write e.g.",
            ),
            (
                Requested {
                    role_arn: Some("arn:aws:iam::222222222222:user/x"),
                    ..requested()
                },
                "role_arn",
                "is not an IAM role ARN",
            ),
            (
                Requested {
                    role_arn: Some("arn:aws:iam::222222222222:role/x"),
                    account_id: Some("111111111111"),
                    ..requested()
                },
                "role_arn",
                "is a role in account 222222222222, but account_id is 111111111111",
            ),
            (
                Requested {
                    role_arn: Some("arn:aws:iam::222222222222:role/x"),
                    profile: Some("p"),
                    ..requested()
                },
                "role_arn",
                "not both",
            ),
            (
                Requested {
                    external_id: Some("abc"),
                    ..requested()
                },
                "external_id",
                "add `role_arn`",
            ),
            (
                Requested {
                    role_arn: Some("arn:aws:iam::222222222222:role/x"),
                    external_id: Some("a b"),
                    ..requested()
                },
                "external_id",
                "2 to 1224",
            ),
            (
                Requested {
                    profile: Some(" "),
                    ..requested()
                },
                "profile",
                "is not a profile name",
            ),
        ];
        for (given, key, expected) in cases {
            let (refused_key, message) = resolve(&given).unwrap_err();
            assert_eq!(refused_key, key, "{given:?}");
            assert!(message.contains(expected), "{given:?}: {message}");
        }
    }

    #[test]
    fn a_refused_role_names_the_role_the_environment_and_what_to_grant() {
        let message = assume_role_refused("prod", "arn:aws:iam::222222222222:role/r", true);
        assert!(
            message
                .contains("could not assume arn:aws:iam::222222222222:role/r for environment prod")
                && message.contains("sts:AssumeRole")
                && message.contains("trust policy")
                && message.contains("external_id"),
            "{message}"
        );
    }
}
