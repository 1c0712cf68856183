//! The backup archive in an S3 bucket (versioned or not): chunks and manifests as
//! objects; deleting a prefix deletes every version and delete marker under it.

use super::S3TenantStore;
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use lifecycle::{SystemKind, TenantId};
use ports::backup::Archive;
use ports::retry::with_backoff;
use ports::{ErasePass, StoreError, TenantStore};
use std::time::Instant;

/// Backup objects in one bucket of one region.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: Client,
    bucket: String,
    region: String,
}

impl S3Archive {
    /// The archive in `bucket`, reached with `client` (whose region it is in).
    pub fn new(client: Client, bucket: &str) -> Self {
        let region = client
            .config()
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
        Self {
            client,
            bucket: bucket.to_owned(),
            region,
        }
    }

    /// The erasure port over one literal prefix (every version under it).
    fn under(&self, prefix: &str) -> S3TenantStore {
        S3TenantStore::new(
            self.client.clone(),
            "backups",
            SystemKind::Objects,
            &self.bucket,
            prefix,
            8,
        )
    }
}

fn anyone() -> TenantId {
    // The prefix holds no placeholder, so the tenant passed to the erasure port is unused.
    TenantId::parse("archive").unwrap_or_else(|_| unreachable!("a valid id"))
}

#[async_trait]
impl Archive for S3Archive {
    fn region(&self) -> &str {
        &self.region
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.under("").put(&anyone(), key, &bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.under("").get(&anyone(), key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.under("").delete(&anyone(), key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = with_backoff(|| async {
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("ListObjectsV2", e))
            })
            .await?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        self.under(prefix).count(&anyone()).await
    }

    async fn delete_prefix(
        &self,
        prefix: &str,
        deadline: Instant,
    ) -> Result<ErasePass, StoreError> {
        ports::backup::check_prefix(prefix)?;
        self.under(prefix).erase(&anyone(), deadline).await
    }
}
