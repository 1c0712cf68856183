//! Discovery in S3: every bucket the credentials list, its keys and a sample of bodies.

use crate::aws::sdk_error;
use crate::discovery::{Finding, capped, names_tenant, place_of, tally};
use aws_sdk_s3::error::ProvideErrorMetadata;
use lifecycle::{DiscoverySpec, TenantId};
use ports::StoreError;
use ports::retry::with_backoff;

/// Bodies larger than this are not sampled.
const MAX_SAMPLED_BODY: i64 = 1 << 20;

/// Places in the account's buckets holding the tenant, except under `known` prefixes.
pub(crate) async fn scan(
    aws: &aws_config::SdkConfig,
    t: &TenantId,
    known: &[(String, String)],
    spec: &DiscoverySpec,
) -> Result<Vec<Finding>, StoreError> {
    let client = super::client(aws);
    let buckets = with_backoff(|| async {
        client
            .list_buckets()
            .send()
            .await
            .map_err(|e| sdk_error("ListBuckets", e))
    })
    .await?;
    let mut places = Vec::new();
    for b in buckets.buckets() {
        let Some(bucket) = b.name() else { continue };
        let covered = |key: &str| {
            known
                .iter()
                .any(|(kb, prefix)| kb == bucket && key.starts_with(prefix.as_str()))
        };
        let mut token: Option<String> = None;
        let (mut seen, mut sampled) = (0, 0);
        loop {
            let page = with_backoff(|| async {
                match client
                    .list_objects_v2()
                    .bucket(bucket)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                {
                    Ok(p) => Ok(Some(p)),
                    // Deleted since it was listed.
                    Err(e) if e.code() == Some("NoSuchBucket") => Ok(None),
                    Err(e) => Err(sdk_error("ListObjectsV2", e)),
                }
            })
            .await?;
            let Some(page) = page else { break };
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                seen += 1;
                if covered(key) {
                    continue;
                }
                if names_tenant(key, t.as_str()) {
                    places.push(format!("s3://{bucket}/{}", place_of(key, t.as_str())));
                } else if sampled < spec.sample_bodies && o.size().unwrap_or(0) <= MAX_SAMPLED_BODY
                {
                    sampled += 1;
                    let body = with_backoff(|| async {
                        let o = match client.get_object().bucket(bucket).key(key).send().await {
                            Ok(o) => o,
                            Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchBucket")) => {
                                return Ok(Vec::new());
                            }
                            Err(e) => return Err(sdk_error("GetObject", e)),
                        };
                        o.body
                            .collect()
                            .await
                            .map(|b| b.into_bytes().to_vec())
                            .map_err(|e| StoreError::Unavailable(format!("GetObject body: {e}")))
                    })
                    .await?;
                    if names_tenant(&String::from_utf8_lossy(&body), t.as_str()) {
                        places.push(format!("s3://{bucket}/{key}"));
                    }
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
            if seen >= spec.max_per_place {
                return Err(capped(&format!("s3://{bucket}"), spec.max_per_place));
            }
        }
    }
    Ok(tally(places))
}
