//! The S3 erasure port: every object version and delete marker under a tenant's prefix.

use super::MAX_DELETE_BATCH;
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use lifecycle::catalog::locate;
use lifecycle::{SystemKind, TenantId};
use ports::retry::{MAX_ATTEMPTS, backoff, with_backoff};
use ports::{ErasePass, StoreError, TenantStore};
use std::time::Instant;
use tokio::task::JoinSet;

/// One catalog system stored in S3.
#[derive(Debug, Clone)]
pub struct S3TenantStore {
    client: Client,
    name: String,
    kind: SystemKind,
    bucket: String,
    prefix: String,
    concurrency: usize,
    batch: usize,
    location_buckets: Vec<(Option<aws_config::Region>, String)>,
}

/// One page of versions to delete: `(key, version_id)`.
pub(super) type Batch = Vec<(String, Option<String>)>;

impl S3TenantStore {
    /// A system named `name` in `bucket`, tenant prefix template `prefix`.
    pub fn new(
        client: Client,
        name: &str,
        kind: SystemKind,
        bucket: &str,
        prefix: &str,
        concurrency: usize,
    ) -> Self {
        Self {
            client,
            name: name.to_owned(),
            kind,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            concurrency: concurrency.max(1),
            batch: MAX_DELETE_BATCH,
            location_buckets: Vec::new(),
        }
    }

    /// Also counts and erases the tenant in these buckets (a migration's locations), each
    /// in its region when the location is named after one.
    pub fn with_location_buckets(
        mut self,
        buckets: Vec<(Option<aws_config::Region>, String)>,
    ) -> Self {
        self.location_buckets = buckets;
        self
    }

    /// This store, pointed at each location bucket.
    fn at_locations(&self) -> Vec<Self> {
        self.location_buckets
            .iter()
            .map(|(region, b)| Self {
                client: match region {
                    Some(r) => Client::from_conf(
                        self.client.config().to_builder().region(r.clone()).build(),
                    ),
                    None => self.client.clone(),
                },
                bucket: b.clone(),
                location_buckets: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    /// Sets how many versions one list page and one DeleteObjects call carry (at most 1,000).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.clamp(1, MAX_DELETE_BATCH);
        self
    }

    fn key(&self, tenant: &TenantId, key: &str) -> String {
        format!("{}{key}", locate(&self.prefix, tenant))
    }

    /// Lists one page of versions and delete markers after the given markers.
    pub(super) async fn list_page(
        &self,
        prefix: &str,
        key_marker: Option<String>,
        version_marker: Option<String>,
    ) -> Result<(Batch, Option<(Option<String>, Option<String>)>), StoreError> {
        let out = with_backoff(|| async {
            self.client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(self.batch as i32)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| sdk_error("ListObjectVersions", e))
        })
        .await?;
        let mut batch: Batch = Vec::new();
        for v in out.versions() {
            if let Some(k) = v.key() {
                batch.push((k.to_owned(), v.version_id().map(str::to_owned)));
            }
        }
        for m in out.delete_markers() {
            if let Some(k) = m.key() {
                batch.push((k.to_owned(), m.version_id().map(str::to_owned)));
            }
        }
        let next = if out.is_truncated() == Some(true) {
            Some((
                out.next_key_marker().map(str::to_owned),
                out.next_version_id_marker().map(str::to_owned),
            ))
        } else {
            None
        };
        Ok((batch, next))
    }

    /// Deletes one batch of versions, retrying throttled calls and per-key throttles.
    pub(super) async fn delete_batch(&self, mut batch: Batch) -> Result<u64, StoreError> {
        let mut deleted = 0u64;
        let mut attempt = 0;
        while !batch.is_empty() {
            attempt += 1;
            let objects = batch
                .iter()
                .map(|(k, v)| {
                    ObjectIdentifier::builder()
                        .key(k)
                        .set_version_id(v.clone())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Unavailable(format!("DeleteObjects: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("DeleteObjects: {e}")))?;
            let res = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await;
            let out = match res.map_err(|e| sdk_error("DeleteObjects", e)) {
                Ok(out) => out,
                Err(StoreError::Throttled(m) | StoreError::Unavailable(m))
                    if attempt < MAX_ATTEMPTS =>
                {
                    tracing::debug!(attempt, error = %m, "DeleteObjects throttled; backing off");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Per-key errors: keep the failed keys for another try if they are transient,
            // fail the batch on anything else (AccessDenied, ...).
            let mut retry: Batch = Vec::new();
            for err in out.errors() {
                let code = err.code().unwrap_or("Unknown");
                let key = err.key().unwrap_or_default().to_owned();
                if crate::aws::is_throttle_code(code) && attempt < MAX_ATTEMPTS {
                    retry.push((key, err.version_id().map(str::to_owned)));
                } else {
                    return Err(StoreError::Unavailable(format!(
                        "DeleteObjects refused a key of system {}: {code}",
                        self.name
                    )));
                }
            }
            deleted += (batch.len() - retry.len()) as u64;
            if !retry.is_empty() {
                tokio::time::sleep(backoff(attempt)).await;
            }
            batch = retry;
        }
        Ok(deleted)
    }

    /// One pass over the tenant's records from the start: (erased, listed to the end).
    async fn erase_pass(
        &self,
        tenant: &TenantId,
        deadline: Instant,
    ) -> Result<(u64, bool), StoreError> {
        let prefix = locate(&self.prefix, tenant);
        // List the next page while up to `concurrency` DeleteObjects calls run; stop
        // listing once the deadline passes and let the calls in flight finish.
        let mut running: JoinSet<Result<u64, StoreError>> = JoinSet::new();
        let mut markers: Option<(Option<String>, Option<String>)> = None;
        let mut listed_all = false;
        let mut erased = 0u64;
        let mut first = true;
        loop {
            while !listed_all
                && running.len() < self.concurrency
                && (first || Instant::now() < deadline)
            {
                let (km, vm) = markers.take().unwrap_or((None, None));
                let (batch, next) = self.list_page(&prefix, km, vm).await?;
                first = false;
                listed_all = next.is_none();
                markers = next;
                if !batch.is_empty() {
                    let me = self.clone();
                    running.spawn(async move { me.delete_batch(batch).await });
                }
            }
            match running.join_next().await {
                Some(done) => {
                    erased +=
                        done.map_err(|e| StoreError::Unavailable(format!("delete task: {e}")))??;
                }
                None => break,
            }
        }
        Ok((erased, listed_all))
    }
}

#[async_trait]
impl TenantStore for S3TenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let k = self.key(tenant, key);
        with_backoff(|| async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&k)
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("PutObject", e))
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let k = self.key(tenant, key);
        with_backoff(|| async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&k)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("DeleteObject", e))
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = self.key(tenant, key);
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&k)
            .send()
            .await
        {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("GetObject body: {e}")))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_error("GetObject", e)),
        }
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let prefix = locate(&self.prefix, tenant);
        let mut total = 0u64;
        for other in self.at_locations() {
            total += other.count(tenant).await?;
        }
        let mut markers = (None, None);
        loop {
            let (batch, next) = self.list_page(&prefix, markers.0, markers.1).await?;
            total += batch.len() as u64;
            match next {
                Some(m) => markers = m,
                None => return Ok(total),
            }
        }
    }

    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        ports::erase_locations_then(self.at_locations(), tenant, deadline, || {
            ports::erase_until_clean(deadline, || self.erase_pass(tenant, deadline))
        })
        .await
    }
}
