//! The Redis erasure port: every key under the tenant's prefix, in every location, and
//! the migration bookkeeping kept beside them.

use super::{Layout, META};
use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use lifecycle::{SystemKind, TenantId};
use ports::{ErasePass, StoreError, TenantStore};
use redis::aio::ConnectionManager;
use std::time::Instant;

/// One catalog system stored in Redis.
#[derive(Clone)]
pub struct RedisTenantStore {
    conn: ConnectionManager,
    name: String,
    kind: SystemKind,
    layout: Layout,
    scan_count: usize,
    concurrency: usize,
    locations: Vec<ConnectionManager>,
}

impl std::fmt::Debug for RedisTenantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTenantStore")
            .field("name", &self.name)
            .field("prefix", &self.layout.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTenantStore {
    /// The system `name` whose tenant keys follow `layout`.
    pub(crate) fn new(
        conn: ConnectionManager,
        name: &str,
        kind: SystemKind,
        layout: Layout,
        scan_count: usize,
        concurrency: usize,
    ) -> Self {
        Self {
            conn,
            name: name.to_owned(),
            kind,
            layout,
            scan_count,
            concurrency,
            locations: Vec::new(),
        }
    }

    /// The same store on a server URL (tests and benchmarks open one without a catalog).
    pub async fn connect(
        url: &str,
        name: &str,
        kind: SystemKind,
        prefix: &str,
        scan_count: usize,
        concurrency: usize,
    ) -> Result<Self, lifecycle::StepError> {
        let layout = Layout {
            prefix: prefix.to_owned(),
            hash_tag: false,
        };
        Ok(Self::new(
            super::connect(url).await?,
            name,
            kind,
            layout,
            scan_count,
            concurrency,
        ))
    }

    /// Erasure also reaches these databases (every migration location).
    pub(crate) fn with_locations(mut self, locations: Vec<ConnectionManager>) -> Self {
        self.locations = locations;
        self
    }

    fn at_locations(&self) -> Vec<Self> {
        self.locations
            .iter()
            .map(|c| Self {
                conn: c.clone(),
                locations: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    fn meta_keys(&self, t: &TenantId) -> Vec<String> {
        META.iter().map(|m| self.layout.meta(t, m)).collect()
    }

    /// One SCAN call: the next cursor and the keys it returned.
    async fn scan_page(
        &self,
        pattern: &str,
        cursor: u64,
    ) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        super::query::<(u64, Vec<Vec<u8>>)>(
            &self.conn,
            "SCAN",
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(self.scan_count),
        )
        .await
    }

    async fn unlink(&self, keys: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        super::query::<u64>(&self.conn, "UNLINK", redis::cmd("UNLINK").arg(keys)).await
    }

    /// One pass over the tenant's keyspace: SCAN pages feed UNLINK batches, up to
    /// `concurrency` in flight while the next page is read. Returns (erased, reached the
    /// end of the keyspace).
    async fn erase_pass(&self, t: &TenantId, deadline: Instant) -> Result<(u64, bool), StoreError> {
        let pattern = self.layout.pattern(t);
        let mut erased = self
            .unlink(
                self.meta_keys(t)
                    .into_iter()
                    .map(String::into_bytes)
                    .collect(),
            )
            .await?;
        let mut inflight = FuturesUnordered::new();
        let mut cursor = 0;
        let mut found = erased > 0;
        let mut done = false;
        // Past the deadline, keep scanning until one batch is found: in a database shared
        // with other tenants a SCAN page may hold none of this tenant's keys, and every
        // call starts again from cursor 0, so stopping on an empty page would never end.
        while !done && (!found || Instant::now() < deadline) {
            let (next, keys) = self.scan_page(&pattern, cursor).await?;
            cursor = next;
            done = cursor == 0;
            if !keys.is_empty() {
                found = true;
                inflight.push(self.unlink(keys));
            }
            while inflight.len() >= self.concurrency {
                if let Some(n) = inflight.next().await {
                    erased += n?;
                }
            }
        }
        while let Some(n) = inflight.next().await {
            erased += n?;
        }
        Ok((erased, done))
    }
}

#[async_trait]
impl TenantStore for RedisTenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let name = self.layout.data(tenant, key);
        super::query::<()>(&self.conn, "SET", redis::cmd("SET").arg(name).arg(body)).await
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        self.unlink(vec![self.layout.data(tenant, key).into_bytes()])
            .await
            .map(drop)
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = self.layout.data(tenant, key);
        super::query::<Option<Vec<u8>>>(&self.conn, "GET", redis::cmd("GET").arg(name)).await
    }

    /// Every key under the prefix, in every location, and the bookkeeping beside them.
    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut n = 0;
        for store in std::iter::once(self.clone()).chain(self.at_locations()) {
            let pattern = store.layout.pattern(tenant);
            let mut cursor = 0;
            loop {
                let (next, keys) = store.scan_page(&pattern, cursor).await?;
                n += keys.len() as u64;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let meta = store.meta_keys(tenant);
            n += super::query::<u64>(&store.conn, "EXISTS", redis::cmd("EXISTS").arg(meta)).await?;
        }
        Ok(n)
    }

    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        ports::erase_locations_then(self.at_locations(), tenant, deadline, || {
            ports::erase_until_clean(deadline, || self.erase_pass(tenant, deadline))
        })
        .await
    }
}
