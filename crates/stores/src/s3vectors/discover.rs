//! Discovery in S3 Vectors: every vector bucket and index the credentials list; an index
//! named after the tenant, or holding vectors whose keys name it.

use crate::aws::sdk_error;
use crate::discovery::{Finding, names_tenant};
use lifecycle::{DiscoverySpec, TenantId};
use ports::StoreError;
use ports::retry::with_backoff;

/// Indexes holding the tenant outside the catalog's (`known`: bucket, index name).
pub(crate) async fn scan(
    aws: &aws_config::SdkConfig,
    t: &TenantId,
    known: &[(String, String)],
    spec: &DiscoverySpec,
) -> Result<Vec<Finding>, StoreError> {
    let client = aws_sdk_s3vectors::Client::new(aws);
    let buckets = with_backoff(|| async {
        client
            .list_vector_buckets()
            .send()
            .await
            .map_err(|e| sdk_error("ListVectorBuckets", e))
    })
    .await?;
    let escaped = super::Layout::escape(t);
    let mut found = Vec::new();
    for b in buckets.vector_buckets() {
        let bucket = b.vector_bucket_name();
        let indexes = with_backoff(|| async {
            match client
                .list_indexes()
                .vector_bucket_name(bucket)
                .send()
                .await
            {
                Ok(o) => Ok(Some(o)),
                Err(e) if super::not_found(&e) => Ok(None),
                Err(e) => Err(sdk_error("ListIndexes", e)),
            }
        })
        .await?;
        let Some(indexes) = indexes else { continue };
        for i in indexes.indexes() {
            let index = i.index_name();
            if known.iter().any(|(kb, ki)| kb == bucket && ki == index) {
                continue;
            }
            let named = names_tenant(index, t.as_str()) || names_tenant(index, &escaped);
            let mut records = 0u64;
            let mut token: Option<String> = None;
            loop {
                let page = with_backoff(|| async {
                    match client
                        .list_vectors()
                        .vector_bucket_name(bucket)
                        .index_name(index)
                        .set_next_token(token.clone())
                        .send()
                        .await
                    {
                        Ok(o) => Ok(Some(o)),
                        Err(e) if super::not_found(&e) => Ok(None),
                        Err(e) => Err(sdk_error("ListVectors", e)),
                    }
                })
                .await?;
                let Some(page) = page else { break };
                records += page
                    .vectors()
                    .iter()
                    .filter(|v| named || names_tenant(v.key(), t.as_str()))
                    .count() as u64;
                match page.next_token() {
                    Some(_) if records as usize >= spec.max_per_place => {
                        return Err(crate::discovery::capped(
                            &format!("s3vectors://{bucket}/{index}"),
                            spec.max_per_place,
                        ));
                    }
                    Some(n) if Some(n) != token.as_deref() => token = Some(n.to_owned()),
                    _ => break,
                }
            }
            if named || records > 0 {
                found.push(Finding {
                    place: format!("s3vectors://{bucket}/{index}"),
                    records,
                });
            }
        }
    }
    Ok(found)
}
