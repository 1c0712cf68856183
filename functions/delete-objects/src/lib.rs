//! delete-objects: the worker of `statemachines/gdpr-erasure-s3-distributed.asl.json`.
//!
//! A Distributed Map lists a tenant's prefix (`listObjectsV2`) and hands each child a batch
//! `{"BatchInput": {"bucket", "prefix", "tenant_id"}, "Items": [{"key"}, ...]}`; this deletes
//! every version of those keys: DeleteObjects of the keys as listed (1,000 per call), which
//! on an unversioned bucket is all; where S3 answers with a delete marker, that key's
//! versions are listed and deleted, the marker with them. `listObjectsV2` does not list a key whose only versions are
//! noncurrent or delete markers, so the machine ends with `{"sweep": {"bucket", "prefix",
//! "tenant_id"}}`, which deletes whatever versions remain under the prefix and returns
//! what is left (zero, or the step fails). Every key must lie under the prefix, and the
//! prefix must name the tenant as a whole path segment. Deleting is idempotent, so a retried
//! batch simply continues.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::StreamExt;
use lifecycle::error::from_input;
use lifecycle::{StepError, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use tenant_runtime::Budget;

/// DeleteObjects takes at most this many keys.
const MAX_DELETE: usize = 1000;
/// ListObjectVersions calls in flight for one batch of a versioned bucket.
const LIST_CONCURRENCY: usize = 16;

/// Where a batch or a sweep acts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    bucket: String,
    prefix: String,
    tenant_id: TenantId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    #[serde(rename = "BatchInput")]
    target: Target,
    #[serde(rename = "Items")]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sweep {
    sweep: Target,
}

/// What a batch or a sweep did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Output {
    /// Keys in the batch (0 for a sweep).
    pub keys: u64,
    /// Object versions and delete markers deleted.
    pub deleted: u64,
    /// Versions left under the prefix after a sweep (always 0 on success; 0 for a batch).
    pub remaining: u64,
}

fn check(t: &Target) -> Result<(), StepError> {
    let tenant = t.tenant_id.as_str();
    if !t.prefix.ends_with('/') || !t.prefix.split('/').any(|seg| seg == tenant) {
        return Err(StepError::InvalidRequest(format!(
            "prefix {:?} must end with / and name the tenant {tenant} as a whole path segment",
            t.prefix
        )));
    }
    if t.bucket.is_empty() {
        return Err(StepError::InvalidRequest("bucket is empty".into()));
    }
    Ok(())
}

fn s3_error<E, R>(op: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or("unknown").to_owned();
    let text = format!("{op}: {}", aws_sdk_s3::error::DisplayErrorContext(&e));
    if matches!(
        code.as_str(),
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "ServiceUnavailable"
    ) {
        StepError::Throttled(text)
    } else {
        StepError::StoreUnavailable(text)
    }
}

/// Deletes a batch of keys (every version), or sweeps the prefix.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Output, StepError> {
    let _ = budget;
    let cfg = deps.aws_config().ok_or_else(|| {
        StepError::Configuration(
            "delete-objects needs S3: run it with an AWS catalog (AWS or moto), not the embedded world".into(),
        )
    })?;
    let s3 = stores::s3::client(cfg);
    if input.get("sweep").is_some() {
        let Sweep { sweep: t } = from_input(input, "delete-objects")?;
        check(&t)?;
        return sweep(&s3, &t).await;
    }
    let b: Batch = from_input(input, "delete-objects")?;
    check(&b.target)?;
    if let Some(bad) = b
        .items
        .iter()
        .find(|i| !i.key.starts_with(&b.target.prefix))
    {
        return Err(StepError::InvalidRequest(format!(
            "key {:?} is not under the tenant's prefix {:?}",
            bad.key, b.target.prefix
        )));
    }
    let t = &b.target;
    // Delete the keys as listed first: on an unversioned bucket that is the whole erasure
    // (one call per 1,000 keys). Where S3 answers with a delete marker the key lives in a
    // versioned (or suspended) bucket, so its versions are listed and deleted, the new
    // marker among them. Asking the bucket (GetBucketVersioning) or listing a key's
    // versions up front would cost a call per batch, and on moto every ListObjectVersions
    // copies the whole bucket.
    let (mut deleted, markers) = delete_current(&s3, &t.bucket, &b.items).await?;
    if !markers.is_empty() {
        // Owned futures: a stream of borrowing closures would not be Send for every lifetime.
        let calls: Vec<_> = markers
            .iter()
            .map(|(key, _)| {
                let (s3, bucket, key) = (s3.clone(), t.bucket.clone(), key.clone());
                async move { versions(&s3, &bucket, &key, true).await }
            })
            .collect();
        let lists = futures::stream::iter(calls)
            .buffer_unordered(LIST_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let ours: std::collections::HashSet<&str> =
            markers.iter().filter_map(|(_, m)| m.as_deref()).collect();
        let mut ids = Vec::new();
        for l in lists {
            ids.extend(l?);
        }
        // The markers this call made are deleted too, but not counted: they held nothing.
        let made = ids
            .iter()
            .filter(|i| i.version_id().is_some_and(|v| ours.contains(v)))
            .count() as u64;
        deleted += delete(&s3, &t.bucket, ids).await?.saturating_sub(made);
    }
    tracing::info!(bucket = %t.bucket, keys = b.items.len(), deleted, "delete-objects batch");
    Ok(Output {
        keys: b.items.len() as u64,
        deleted,
        remaining: 0,
    })
}

/// Every version and delete marker under `prefix` (only of `prefix` itself when `exact`).
async fn versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    exact: bool,
) -> Result<Vec<ObjectIdentifier>, StepError> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| s3_error("ListObjectVersions", e))?;
        let pairs = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            );
        for (k, v) in pairs {
            let Some(k) = k else { continue };
            if exact && k != prefix {
                continue;
            }
            let mut id = ObjectIdentifier::builder().key(k);
            if let Some(v) = v.filter(|v| *v != "null") {
                id = id.version_id(v);
            }
            out.push(id.build().map_err(|e| StepError::Internal(e.to_string()))?);
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Deletes the current version of each key (no version ids) and returns how many keys
/// went for good, and the keys where S3 put a delete marker instead (with its version id):
/// those have versions to delete.
async fn delete_current(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    items: &[Item],
) -> Result<(u64, Vec<(String, Option<String>)>), StepError> {
    let (mut gone, mut markers) = (0u64, Vec::new());
    for chunk in items.chunks(MAX_DELETE) {
        let objects = chunk
            .iter()
            .map(|i| ObjectIdentifier::builder().key(&i.key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StepError::Internal(e.to_string()))?;
        let del = Delete::builder()
            .set_objects(Some(objects))
            .quiet(false)
            .build()
            .map_err(|e| StepError::Internal(e.to_string()))?;
        let r = s3
            .delete_objects()
            .bucket(bucket)
            .delete(del)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObjects", e))?;
        refused(&r)?;
        for d in r.deleted() {
            match (d.key(), d.delete_marker()) {
                (Some(k), Some(true)) => markers.push((
                    k.to_owned(),
                    d.delete_marker_version_id().map(str::to_owned),
                )),
                _ => gone += 1,
            }
        }
    }
    Ok((gone, markers))
}

/// A DeleteObjects answer's first refused key as the error the state machine retries on
/// (Throttled for SlowDown).
fn refused(
    r: &aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput,
) -> Result<(), StepError> {
    let Some(e) = r.errors().first() else {
        return Ok(());
    };
    let code = e.code().unwrap_or("unknown");
    let text = format!(
        "DeleteObjects refused {} key(s), first {:?}: {code}: {}",
        r.errors().len(),
        e.key().unwrap_or_default(),
        e.message().unwrap_or_default()
    );
    Err(if code == "SlowDown" {
        StepError::Throttled(text)
    } else {
        StepError::StoreUnavailable(text)
    })
}

async fn delete(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    ids: Vec<ObjectIdentifier>,
) -> Result<u64, StepError> {
    let mut deleted = 0u64;
    for chunk in ids.chunks(MAX_DELETE) {
        let del = Delete::builder()
            .set_objects(Some(chunk.to_vec()))
            .quiet(true)
            .build()
            .map_err(|e| StepError::Internal(e.to_string()))?;
        let r = s3
            .delete_objects()
            .bucket(bucket)
            .delete(del)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObjects", e))?;
        refused(&r)?;
        deleted += chunk.len() as u64;
    }
    Ok(deleted)
}

async fn sweep(s3: &aws_sdk_s3::Client, t: &Target) -> Result<Output, StepError> {
    let ids = versions(s3, &t.bucket, &t.prefix, false).await?;
    let deleted = delete(s3, &t.bucket, ids).await?;
    let remaining = versions(s3, &t.bucket, &t.prefix, false).await?.len() as u64;
    if remaining > 0 {
        return Err(StepError::ResidualDataFound {
            system: format!("s3://{}/{}", t.bucket, t.prefix),
            records: remaining,
        });
    }
    Ok(Output {
        keys: 0,
        deleted,
        remaining,
    })
}
