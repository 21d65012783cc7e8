//! AWS clients for the deployer: the environment's region and credentials (the standard chain, a
//! profile, or a role assumed with STS), `--profile` and `--region` overriding.

pub mod artifact_store;
pub mod cfn;
pub mod drift;
pub mod fleet;
pub mod iam;
pub mod inbox;
pub mod kms;
pub mod lambda;
pub mod logs;
pub mod organizations;
pub mod recycle_bin;
pub mod restore;
pub mod snapshots;
pub mod stacksets;
pub mod topic;
pub mod trips;
pub mod unlock;
pub mod volumes;

use crate::config::access::Access;
use anyhow::{Context, Result, bail};
use aws_sdk_iam::error::ProvideErrorMetadata;

/// Where to connect: the config's region unless `--region` overrides it; `--profile` picks a
/// named profile. `AWS_ENDPOINT_URL` (an emulator, say) is honoured by the SDK itself.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Connection {
    /// A named profile from the AWS config files.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Overrides the environment's region.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Sends every AWS call to this endpoint (like AWS_ENDPOINT_URL), e.g. a local emulator.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
}

/// One client per service, all from one SDK configuration.
pub struct Aws {
    pub region: String,
    /// What to tell the user when the credentials are refused: how they were obtained.
    credentials_hint: String,
    pub sdk: aws_config::SdkConfig,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub sts: aws_sdk_sts::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Aws {
    /// Clients for `default_region` (or `--region`) with `access`'s credentials, unless
    /// `--profile` names others. A role is assumed from the ambient credentials, on first use
    /// and again before its session expires.
    pub async fn connect(
        connection: &Connection,
        default_region: &str,
        access: &Access,
    ) -> Result<Self> {
        let region = connection
            .region
            .clone()
            .unwrap_or_else(|| default_region.to_owned());
        let access = match &connection.profile {
            Some(name) => Access::Profile { name: name.clone() },
            None => access.clone(),
        };
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()));
        if let Access::Profile { name } = &access {
            // The profile's own credentials, even when AWS_ACCESS_KEY_ID is set (as in a CI
            // job): the default chain would prefer those and silently ignore the profile.
            let profile = aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(name)
                .build();
            loader = loader.profile_name(name).credentials_provider(profile);
        }
        if let Some(endpoint) = &connection.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let mut sdk = loader.load().await;
        let credentials_hint = match &access {
            Access::Role {
                arn,
                external_id,
                session_name,
            } => {
                let mut role = aws_config::sts::AssumeRoleProvider::builder(arn)
                    .session_name(session_name)
                    .configure(&sdk);
                if let Some(id) = external_id {
                    role = role.external_id(id);
                }
                let provider = role.build().await;
                sdk = sdk
                    .into_builder()
                    .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                        provider,
                    ))
                    .build();
                let environment = session_name.trim_start_matches("smartvault-");
                crate::config::access::assume_role_refused(environment, arn, external_id.is_some())
            }
            Access::Profile { name } => format!(
                "check the profile {name:?} in ~/.aws/config (and `aws sso login --profile \
                 {name}` if it uses SSO)"
            ),
            Access::Ambient => "check your credentials (`aws configure`, AWS_PROFILE, --profile, \
                 or role_arn/profile for the environment in smartvault.yaml)"
                .to_owned(),
        };
        let mut aws = Self::from_sdk(&sdk, region);
        aws.credentials_hint = credentials_hint;
        Ok(aws)
    }

    /// Clients from an SDK configuration made elsewhere (the demo's emulator, say).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, region: String) -> Self {
        // A custom endpoint (an emulator, MinIO, a VPC endpoint by URL) wants path-style S3.
        let custom_endpoint =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom_endpoint)
            .build();
        Aws {
            region,
            credentials_hint: "check your credentials".to_owned(),
            sdk: sdk.clone(),
            cloudformation: aws_sdk_cloudformation::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            lambda: aws_sdk_lambda::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
        }
    }

    /// The same credentials in another region (an organization's target regions).
    pub fn in_region(&self, region: &str) -> Self {
        let sdk = self
            .sdk
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        let mut aws = Self::from_sdk(&sdk, region.to_owned());
        aws.credentials_hint = self.credentials_hint.clone();
        aws
    }

    /// Clients in `region` of another account, as `role_arn` assumed with these credentials
    /// (an organization's member account, which destroy cleans up).
    pub async fn assume(&self, role_arn: &str, session_name: &str, region: &str) -> Self {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name(session_name)
            .configure(&self.sdk)
            .build()
            .await;
        let sdk = self
            .sdk
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build();
        let mut aws = Self::from_sdk(&sdk, region.to_owned());
        aws.credentials_hint = format!(
            "check that {role_arn} exists and trusts the administrator account, and that these \
             credentials may assume it (sts:AssumeRole)"
        );
        aws
    }

    /// The caller's account id, checked against the expected one when the config names it.
    pub async fn check_account(&self, expected: Option<&str>) -> Result<String> {
        let identity = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_sts::error::DisplayErrorContext(e)))
            .with_context(|| {
                format!(
                    "failed to identify the AWS account (sts:GetCallerIdentity); {}",
                    self.credentials_hint
                )
            })?;
        let account = identity.account().unwrap_or_default().to_owned();
        if let Some(expected) = expected
            && expected != account
        {
            bail!(
                "these credentials are for account {account}, but the environment expects account \
                 {expected}; switch credentials (--profile, or role_arn/profile for the \
                 environment in smartvault.yaml) or fix `account_id` in the config"
            );
        }
        Ok(account)
    }
}

/// Formats any SDK error with its whole chain, for `anyhow` context.
pub fn sdk_error<E: std::error::Error + 'static>(error: E) -> anyhow::Error {
    anyhow::anyhow!(
        "{}",
        aws_sdk_cloudformation::error::DisplayErrorContext(error)
    )
}

/// What an AWS error says, in one line: its code and message, or that the endpoint answered
/// with no AWS error at all (the local emulator does for an API it lacks), never a dump.
pub fn said<E: ProvideErrorMetadata>(
    error: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(message)) => message.to_owned(),
        (None, None) => match error.raw_response() {
            Some(response) => format!(
                "HTTP {} with no AWS error: the endpoint does not implement it (the local \
                 emulator does not)",
                response.status().as_u16()
            ),
            None => "no answer (a network or credentials problem)".to_owned(),
        },
    }
}

/// Who the credentials are.
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// The caller's identity (sts:GetCallerIdentity); the error in one line ([`said`]).
pub async fn caller(aws: &Aws) -> std::result::Result<Identity, String> {
    let identity = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|error| said(&error))?;
    Ok(Identity {
        account: identity.account().unwrap_or_default().to_owned(),
        arn: identity.arn().unwrap_or_default().to_owned(),
    })
}

/// A fresh multi-threaded async runtime.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// Runs `work` with AWS clients for `region` (or `--region`) on a fresh async runtime.
pub fn with_aws<T>(
    connection: &Connection,
    region: &str,
    access: &Access,
    work: impl AsyncFnOnce(&Aws) -> Result<T>,
) -> Result<T> {
    runtime()?.block_on(async {
        let aws = Aws::connect(connection, region, access).await?;
        work(&aws).await
    })
}
