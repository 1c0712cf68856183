//! Provisioning a migration's target bucket in the shape of the source's: versioning,
//! default encryption, Object Lock, tags. A missing bucket is created (and tagged with
//! the tenant and migration that made it, before anything else is set); an existing one
//! of another shape is refused with what differs, unless it carries this migration's
//! tags: then a call that died half-way made it, and it is configured again; one of the
//! same shape is left as it is.

use crate::aws::sdk_error;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, ObjectLockEnabled,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use ports::StoreError;
use ports::retry::with_backoff;

/// The settings of a bucket a target must share with its source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BucketShape {
    /// Versioning is enabled (every record is an object version the erasure must reach).
    pub versioned: bool,
    /// The default encryption's algorithm and KMS key, when one is set.
    pub encryption: Option<(String, Option<String>)>,
    /// Object Lock is enabled.
    pub object_lock: bool,
}

impl BucketShape {
    /// What differs from `want`, one phrase each (empty when equal).
    pub fn differences(&self, want: &Self) -> Vec<String> {
        let mut out = Vec::new();
        if self.versioned != want.versioned {
            out.push(format!(
                "versioning {} where the source's is {}",
                on(self.versioned),
                on(want.versioned)
            ));
        }
        if self.encryption != want.encryption {
            out.push(format!(
                "default encryption {} where the source's is {}",
                enc(&self.encryption),
                enc(&want.encryption)
            ));
        }
        if self.object_lock != want.object_lock {
            out.push(format!(
                "Object Lock {} where the source's is {}",
                on(self.object_lock),
                on(want.object_lock)
            ));
        }
        out
    }
}

fn on(b: bool) -> &'static str {
    if b { "enabled" } else { "off" }
}

fn enc(e: &Option<(String, Option<String>)>) -> String {
    match e {
        None => "none".into(),
        Some((a, None)) => a.clone(),
        Some((a, Some(k))) => format!("{a} with key {k}"),
    }
}

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or_default()
        .to_owned()
}

/// The shape of `bucket`, or `None` when it does not exist.
pub async fn shape(client: &Client, bucket: &str) -> Result<Option<BucketShape>, StoreError> {
    let versioning = match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => v,
        Err(e) if code(&e) == "NoSuchBucket" => return Ok(None),
        Err(e) => return Err(sdk_error("GetBucketVersioning", e)),
    };
    let encryption = match client.get_bucket_encryption().bucket(bucket).send().await {
        Ok(o) => o
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| {
                (
                    d.sse_algorithm().as_str().to_owned(),
                    d.kms_master_key_id().map(str::to_owned),
                )
            }),
        Err(e) if code(&e) == "ServerSideEncryptionConfigurationNotFoundError" => None,
        Err(e) => return Err(sdk_error("GetBucketEncryption", e)),
    };
    let object_lock = match client
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(o) => o
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|x| *x == ObjectLockEnabled::Enabled),
        Err(e) if code(&e) == "ObjectLockConfigurationNotFoundError" => false,
        Err(e) => return Err(sdk_error("GetObjectLockConfiguration", e)),
    };
    Ok(Some(BucketShape {
        versioned: versioning.status() == Some(&BucketVersioningStatus::Enabled),
        encryption,
        object_lock,
    }))
}

/// Makes `bucket` (reached by `client`, in `region`) in the shape `want`, tagged with
/// `tags`, unless it exists: then it must have that shape. True when it was created.
pub async fn ensure(
    client: &Client,
    region: Option<&str>,
    bucket: &str,
    want: &BucketShape,
    tags: &[(String, String)],
) -> Result<bool, StoreError> {
    if let Some(have) = shape(client, bucket).await? {
        let d = have.differences(want);
        if d.is_empty() {
            return Ok(false);
        }
        if !ours(client, bucket, tags).await? {
            return Err(StoreError::Config(format!(
                "bucket {bucket} exists with another shape than the source's: {}; remove it or name another bucket for the location",
                d.join("; ")
            )));
        }
        // Made by this migration in a call that died before it was configured.
        configure(client, bucket, want).await?;
        return checked(client, bucket, want).await;
    }
    let mut create = client
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(want.object_lock);
    if let Some(r) = region.filter(|r| *r != "us-east-1") {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(r))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => {}
        // Two provisions at once: the other made it and is configuring it; it is used
        // once it has the source's shape, as any existing bucket would be.
        Err(e) if code(&e) == "BucketAlreadyOwnedByYou" => {
            for _ in 0..20 {
                let have = shape(client, bucket).await?.unwrap_or_default();
                if have.differences(want).is_empty() {
                    return Ok(false);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            return checked(client, bucket, want).await.map(|_| false);
        }
        Err(e) => return Err(sdk_error("CreateBucket", e)),
    }
    // Tagged first, so a call that dies after this leaves a bucket the next call knows.
    let tag_set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Config(format!("bucket {bucket} tags: {e}")))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| StoreError::Config(format!("bucket {bucket} tags: {e}")))?;
    with_backoff(|| async {
        client
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging.clone())
            .send()
            .await
            .map_err(|e| sdk_error("PutBucketTagging", e))
    })
    .await?;
    configure(client, bucket, want).await?;
    checked(client, bucket, want).await
}

/// True when `bucket` carries every one of `tags` (this migration made it).
async fn ours(
    client: &Client,
    bucket: &str,
    tags: &[(String, String)],
) -> Result<bool, StoreError> {
    let have = match client.get_bucket_tagging().bucket(bucket).send().await {
        Ok(o) => o.tag_set().to_vec(),
        Err(e) if code(&e) == "NoSuchTagSet" => return Ok(false),
        Err(e) => return Err(sdk_error("GetBucketTagging", e)),
    };
    Ok(!tags.is_empty()
        && tags
            .iter()
            .all(|(k, v)| have.iter().any(|t| t.key() == k && t.value() == v)))
}

/// What was made is checked as any existing bucket would be.
async fn checked(client: &Client, bucket: &str, want: &BucketShape) -> Result<bool, StoreError> {
    let have = shape(client, bucket).await?.unwrap_or_default();
    let d = have.differences(want);
    if !d.is_empty() {
        return Err(StoreError::Config(format!(
            "bucket {bucket} was created but differs from the source's: {}",
            d.join("; ")
        )));
    }
    Ok(true)
}

/// Versioning and default encryption as `want` says (each idempotent, retried).
async fn configure(client: &Client, bucket: &str, want: &BucketShape) -> Result<(), StoreError> {
    if want.versioned || want.object_lock {
        with_backoff(|| async {
            client
                .put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error("PutBucketVersioning", e))
        })
        .await?;
    }
    if let Some((algo, key)) = &want.encryption {
        let default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::from(algo.as_str()))
            .set_kms_master_key_id(key.clone())
            .build()
            .map_err(|e| StoreError::Config(format!("bucket {bucket} encryption: {e}")))?;
        let conf = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .build(),
            )
            .build()
            .map_err(|e| StoreError::Config(format!("bucket {bucket} encryption: {e}")))?;
        with_backoff(|| async {
            client
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(conf.clone())
                .send()
                .await
                .map_err(|e| sdk_error("PutBucketEncryption", e))
        })
        .await?;
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_setting() {
        let src = BucketShape {
            versioned: true,
            encryption: Some(("aws:kms".into(), Some("alias/t".into()))),
            object_lock: false,
        };
        assert!(src.differences(&src).is_empty());
        let d = BucketShape::default().differences(&src);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].contains("versioning off where the source's is enabled"),
            "{d:?}"
        );
        assert!(d[1].contains("aws:kms with key alias/t"), "{d:?}");
    }
}
