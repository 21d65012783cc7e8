//! The S3 edge: the artifact bucket's objects; upload once per hash, download, and remove every
//! version of an object or of the whole bucket.

use crate::aws::{Aws, sdk_error};
use crate::build::package::Artifact;
use crate::stack::parameters::ArtifactLocation;
use anyhow::{Context, Result};

/// Uploads the zip unless an object with its key (its hash) is already there; `true` when it
/// uploaded.
pub async fn upload_once(
    aws: &Aws,
    artifact: &Artifact,
    location: &ArtifactLocation,
    version: &str,
) -> Result<bool> {
    let existing = aws
        .s3
        .head_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .send()
        .await;
    if existing.is_ok() {
        return Ok(false);
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&artifact.path)
        .await
        .with_context(|| format!("failed to read `{}`", artifact.path.display()))?;
    aws.s3
        .put_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .body(body)
        .metadata("sha256", &artifact.sha256)
        .metadata("smartvault-version", version)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!(
                "failed to upload the artifact to s3://{}/{}",
                location.bucket, location.key
            )
        })?;
    Ok(true)
}

/// Where CloudFormation reads a template from: `artifacts/templates/<owner>/<name>.yaml` in
/// the artifact bucket (the deployer may write only under `artifacts/`).
pub fn template_key(owner: &str, name: &str) -> String {
    format!("artifacts/templates/{owner}/{name}.yaml")
}

/// The S3 URL CloudFormation's `TemplateURL` takes for `key` in `bucket` of `region`
/// (virtual-hosted style; China's regions end in `amazonaws.com.cn`).
pub fn template_url(bucket: &str, region: &str, key: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{bucket}.s3.{region}.{domain}/{key}")
}

/// Puts a rendered template where CloudFormation reads it by URL (a body sent inline may hold
/// only 51,200 bytes; one read from S3, 1 MB), and returns the URL.
pub async fn put_template(aws: &Aws, bucket: &str, key: &str, body: &str) -> Result<String> {
    crate::stack::limits::check_template_size(
        key,
        body.len(),
        crate::stack::limits::TemplateVia::S3,
    )?;
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-yaml")
        .body(aws_sdk_s3::primitives::ByteStream::from(
            body.as_bytes().to_vec(),
        ))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("failed to upload the template to s3://{bucket}/{key}"))?;
    Ok(template_url(bucket, &aws.region, key))
}

/// Checks that the object at `location` holds exactly the bytes of its sha256: a deploy never
/// hands Lambda an object changed after it was uploaded under that name.
pub async fn verify(aws: &Aws, location: &ArtifactLocation) -> Result<()> {
    let url = format!("s3://{}/{}", location.bucket, location.key);
    let bytes = download(aws, &location.bucket, &location.key)
        .await
        .map_err(|(DownloadError::AccessDenied(e) | DownloadError::Other(e))| e)
        .with_context(|| format!("failed to read {url} back to verify it"))?;
    let found = crate::build::package::sha256_hex(&bytes);
    if found != location.sha256 {
        anyhow::bail!(
            "{url} holds bytes with sha256 {found}, not the artifact's {}: the object was \
             changed after it was uploaded; nothing was deployed. Delete every version of it \
             (aws s3api list-object-versions / delete-object), find out who changed it, and \
             deploy again",
            location.sha256
        );
    }
    Ok(())
}

/// Why an object could not be downloaded.
#[derive(Debug)]
pub enum DownloadError {
    AccessDenied(anyhow::Error),
    Other(anyhow::Error),
}

/// The bytes of `s3://bucket/key`.
pub async fn download(aws: &Aws, bucket: &str, key: &str) -> Result<Vec<u8>, DownloadError> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let object = aws
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|error| {
            if error.code() == Some("AccessDenied") {
                DownloadError::AccessDenied(sdk_error(error))
            } else {
                DownloadError::Other(sdk_error(error))
            }
        })?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| {
            DownloadError::Other(anyhow::anyhow!(
                "failed to download s3://{bucket}/{key}: {e}"
            ))
        })?
        .into_bytes();
    Ok(bytes.to_vec())
}

/// Deletes every version and delete marker of `key` (or of every key) in `bucket`; returns how
/// many it deleted.
pub async fn delete_versions(aws: &Aws, bucket: &str, key: Option<&str>) -> Result<usize> {
    // ListObjectVersions has no paginator in the SDK: follow its markers by hand.
    let mut doomed = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = aws
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(key.map(str::to_owned))
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to list s3://{bucket}"))?;
        for version in page.versions() {
            doomed.push((
                version.key().unwrap_or_default().to_owned(),
                version.version_id().map(str::to_owned),
            ));
        }
        for marker in page.delete_markers() {
            doomed.push((
                marker.key().unwrap_or_default().to_owned(),
                marker.version_id().map(str::to_owned),
            ));
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
    let mut deleted = 0;
    for (object, version) in doomed {
        // A prefix matches longer keys too; only the key itself goes.
        if key.is_some_and(|k| k != object) {
            continue;
        }
        deleted += 1;
        aws.s3
            .delete_object()
            .bucket(bucket)
            .key(&object)
            .set_version_id(version)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("failed to delete s3://{bucket}/{object}"))?;
    }
    Ok(deleted)
}
