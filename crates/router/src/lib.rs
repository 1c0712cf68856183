//! tenant-router: what an application service calls for a tenant's reads and writes, so a
//! migration can move the tenant underneath it without a failed request or a lost write.
//!
//! - It caches the tenant's routing record and notices epoch changes (pushed in-process,
//!   polled every `refresh` otherwise), acknowledging each epoch once no write of an older
//!   epoch is in flight here: that is what lets the final flip fence writes and drain.
//! - Reads go to the environment the routing picks for the key (deterministic per key);
//!   a failed target read is served from the source and counted against the target.
//! - Writes: source only; or source first, then target (a target failure is left to
//!   catch-up and never surfaced); fenced (held until the flip); or after the flip target
//!   first, then a reverse copy to the source, so a rollback loses nothing.
//! - Per-environment error rate and latency windows are reported for the health gates.

use lifecycle::migration::{Env, HOME, Routing, Window, WriteMode};
use lifecycle::{StepError, TenantId};
use ports::migrate::unix_ms;
use ports::migrate::{Ack, Dataset, Locator, Rec, RoutingStore};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A router call's failure.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterError {
    /// The request is unusable (e.g. a body the migration's schema transform rejects);
    /// nothing was written.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The primary environment failed; the write did not happen.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Writes stayed fenced longer than the router waits.
    #[error("writes to tenant {0} stayed fenced past the router's timeout")]
    FencedTooLong(String),
}

impl From<StepError> for RouterError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::InvalidRequest(m) => Self::Invalid(m),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<ports::StoreError> for RouterError {
    fn from(e: ports::StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Router tunables.
#[derive(Debug, Clone, Copy)]
pub struct RouterOptions {
    /// How often the routing record is re-read when no change is pushed; also the
    /// heartbeat and metrics report period.
    pub refresh: Duration,
    /// How long a write waits while writes are fenced before it fails.
    pub fence_timeout: Duration,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            refresh: Duration::from_millis(100),
            fence_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters a service can export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Target writes that failed and were left to catch-up.
    pub repairs_queued: u64,
    /// Target reads that failed and were served by the source.
    pub fallback_reads: u64,
    /// Writes that waited on a fence.
    pub fenced_writes: u64,
    /// Each fenced write's wait, microseconds.
    pub pauses_us: Vec<u64>,
    /// The routing epochs seen, with when they were first seen.
    pub epochs: Vec<(u64, Instant)>,
}

struct State {
    routing: Routing,
    inflight: BTreeMap<u64, usize>,
    dirty: HashSet<(String, String)>,
}

struct Inner {
    tenant: TenantId,
    id: String,
    store: Arc<dyn RoutingStore>,
    locator: Arc<dyn Locator>,
    opts: RouterOptions,
    state: Mutex<State>,
    changed: Notify,
    metrics: Mutex<BTreeMap<(u64, Env), Window>>,
    repairs: AtomicU64,
    fallbacks: AtomicU64,
    fenced: AtomicU64,
    pauses: Mutex<Vec<u64>>,
    epochs: Mutex<Vec<(u64, Instant)>>,
    refreshed_at: Mutex<Instant>,
    stop: Notify,
}

/// How long the flip waits for a silent router before presuming it gone; a router
/// silent that long stops writing on its own (see `ensure_fresh`).
const LIVENESS: Duration = ports::migrate::ROUTER_LIVENESS;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One tenant's router. Cheap to clone; dropping the last clone does not stop the
/// background refresh: call [`Router::shutdown`].
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("tenant", &self.inner.tenant)
            .field("id", &self.inner.id)
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Router {
    /// Starts a router for `tenant`: reads the routing record, acknowledges it and begins
    /// the background refresh.
    pub async fn start(
        tenant: TenantId,
        store: Arc<dyn RoutingStore>,
        locator: Arc<dyn Locator>,
        opts: RouterOptions,
    ) -> Result<Self, RouterError> {
        let routing = store
            .get(&tenant)
            .await?
            .unwrap_or_else(|| Routing::single(tenant.as_str(), 0, HOME));
        let id = format!(
            "{}-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed),
            unix_ms()
        );
        let inner = Arc::new(Inner {
            tenant,
            id,
            store,
            locator,
            opts,
            epochs: Mutex::new(vec![(routing.epoch, Instant::now())]),
            state: Mutex::new(State {
                routing,
                inflight: BTreeMap::new(),
                dirty: HashSet::new(),
            }),
            changed: Notify::new(),
            metrics: Mutex::new(BTreeMap::new()),
            repairs: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
            pauses: Mutex::new(Vec::new()),
            refreshed_at: Mutex::new(Instant::now()),
            stop: Notify::new(),
        });
        let epoch = lock(&inner.state).routing.epoch;
        inner
            .store
            .ack(
                &inner.tenant,
                &Ack {
                    router_id: inner.id.clone(),
                    epoch,
                    at_ms: unix_ms(),
                },
            )
            .await?;
        let bg = inner.clone();
        tokio::spawn(async move { bg.run().await });
        Ok(Self { inner })
    }

    /// This router's id, as its acknowledgements name it.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The routing record in use.
    pub fn routing(&self) -> Routing {
        lock(&self.inner.state).routing.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            repairs_queued: self.inner.repairs.load(Ordering::Relaxed),
            fallback_reads: self.inner.fallbacks.load(Ordering::Relaxed),
            fenced_writes: self.inner.fenced.load(Ordering::Relaxed),
            pauses_us: lock(&self.inner.pauses).clone(),
            epochs: lock(&self.inner.epochs).clone(),
        }
    }

    /// Re-reads the routing record now (the background task does this every `refresh`).
    pub async fn refresh(&self) -> Result<(), RouterError> {
        self.inner.refresh().await
    }

    /// Reports this router's health windows now.
    pub async fn flush(&self) -> Result<(), RouterError> {
        self.inner.report().await
    }

    /// Stops the background task, reports a last time and withdraws from acknowledgements.
    pub async fn shutdown(&self) -> Result<(), RouterError> {
        self.inner.stop.notify_one();
        self.inner.report().await?;
        self.inner
            .store
            .leave(&self.inner.tenant, &self.inner.id)
            .await?;
        Ok(())
    }

    /// Reads a record of `system`, in the source's schema.
    pub async fn get(&self, system: &str, key: &str) -> Result<Option<Vec<u8>>, RouterError> {
        let (routing, dirty) = {
            let s = lock(&self.inner.state);
            let dirty = s.dirty.contains(&(system.to_owned(), key.to_owned()));
            (s.routing.clone(), dirty)
        };
        let env = if dirty {
            Env::Source
        } else {
            routing.read_env(key)
        };
        if env == Env::Target {
            let ds = self
                .inner
                .locator
                .dataset(system, routing.location(Env::Target))?;
            let t0 = Instant::now();
            match ds.read(&self.inner.tenant, key).await {
                Ok(rec) => {
                    self.inner.record(routing.epoch, Env::Target, t0, true);
                    return match rec.and_then(|r| r.body) {
                        Some(b) => routing
                            .transform
                            .for_kind(self.inner.locator.kind(system)?)
                            .backward(&b)
                            .map(Some)
                            .map_err(RouterError::Invalid),
                        None => Ok(None),
                    };
                }
                Err(e) => {
                    self.inner.record(routing.epoch, Env::Target, t0, false);
                    self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "target read failed; served by the source");
                }
            }
        }
        let ds = self
            .inner
            .locator
            .dataset(system, routing.location(Env::Source))?;
        let t0 = Instant::now();
        let r = ds.read(&self.inner.tenant, key).await;
        self.inner.record(routing.epoch, Env::Source, t0, r.is_ok());
        Ok(r?.and_then(|r| r.body))
    }

    /// Writes a record of `system` (in the source's schema).
    pub async fn put(&self, system: &str, key: &str, body: &[u8]) -> Result<(), RouterError> {
        self.write(system, key, Some(body)).await
    }

    /// Deletes a record of `system`.
    pub async fn delete(&self, system: &str, key: &str) -> Result<(), RouterError> {
        self.write(system, key, None).await
    }

    async fn write(&self, system: &str, key: &str, body: Option<&[u8]>) -> Result<(), RouterError> {
        let routing = self.inner.enter().await?;
        let r = self.inner.write_at(&routing, system, key, body).await;
        self.inner.leave(routing.epoch);
        r
    }
}

impl Inner {
    /// A router that has not heard from the routing store for longer than routers are
    /// presumed alive must not write during a migration: the flip may have happened
    /// without it. It refreshes first, and refuses the write if it cannot.
    async fn ensure_fresh(&self) -> Result<(), RouterError> {
        let (stale, migrating) = {
            let s = lock(&self.state);
            (
                *lock(&self.refreshed_at) + LIVENESS < Instant::now(),
                s.routing.target.is_some(),
            )
        };
        if stale && migrating {
            self.refresh().await.map_err(|e| {
                RouterError::Unavailable(format!("routing is stale and cannot be re-read ({e}); refusing to write during a migration"))
            })?;
        }
        Ok(())
    }

    fn record(&self, epoch: u64, env: Env, t0: Instant, ok: bool) {
        let us = t0.elapsed().as_micros() as u64;
        lock(&self.metrics)
            .entry((epoch, env))
            .or_default()
            .record(us, ok);
    }

    /// Waits out a fence, then counts a write in flight at the current epoch.
    async fn enter(&self) -> Result<Routing, RouterError> {
        self.ensure_fresh().await?;
        let start = Instant::now();
        let mut waited = false;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = lock(&self.state);
                if s.routing.write_mode != WriteMode::Fenced {
                    let epoch = s.routing.epoch;
                    *s.inflight.entry(epoch).or_default() += 1;
                    if waited {
                        lock(&self.pauses).push(start.elapsed().as_micros() as u64);
                    }
                    return Ok(s.routing.clone());
                }
            }
            if !waited {
                waited = true;
                self.fenced.fetch_add(1, Ordering::Relaxed);
            }
            let left = self.opts.fence_timeout.saturating_sub(start.elapsed());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return Err(RouterError::FencedTooLong(self.tenant.to_string()));
            }
        }
    }

    fn leave(&self, epoch: u64) {
        let mut s = lock(&self.state);
        if let Some(n) = s.inflight.get_mut(&epoch) {
            *n -= 1;
            if *n == 0 {
                s.inflight.remove(&epoch);
            }
        }
        drop(s);
        self.changed.notify_waiters();
    }

    async fn write_at(
        &self,
        routing: &Routing,
        system: &str,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<(), RouterError> {
        let tenant = &self.tenant;
        let target_body = match (routing.target.is_some(), body) {
            (true, Some(b)) => Some(
                routing
                    .transform
                    .for_kind(self.locator.kind(system)?)
                    .forward(b)
                    .map_err(RouterError::Invalid)?,
            ),
            _ => None,
        };
        let source = self
            .locator
            .dataset(system, routing.location(Env::Source))?;
        match routing.write_mode {
            WriteMode::SourceOnly | WriteMode::Fenced => {
                let t0 = Instant::now();
                let r = source.write(tenant, key, body).await;
                self.record(routing.epoch, Env::Source, t0, r.is_ok());
                r?;
            }
            WriteMode::DualSourceFirst => {
                let t0 = Instant::now();
                let r = source.write(tenant, key, body).await;
                self.record(routing.epoch, Env::Source, t0, r.is_ok());
                let rev = r?;
                let target = self
                    .locator
                    .dataset(system, routing.location(Env::Target))?;
                let rec = Rec {
                    key: key.to_owned(),
                    rev,
                    body: target_body,
                };
                self.replicate(routing.epoch, Env::Target, &*target, &rec, system)
                    .await;
            }
            WriteMode::DualTargetFirst => {
                let target = self
                    .locator
                    .dataset(system, routing.location(Env::Target))?;
                let t0 = Instant::now();
                let r = target.write(tenant, key, target_body.as_deref()).await;
                self.record(routing.epoch, Env::Target, t0, r.is_ok());
                let rev = r?;
                let rec = Rec {
                    key: key.to_owned(),
                    rev,
                    body: body.map(<[u8]>::to_vec),
                };
                self.replicate(routing.epoch, Env::Source, &*source, &rec, system)
                    .await;
            }
        }
        Ok(())
    }

    /// The second write of a dual-write: its failure is counted and left to catch-up
    /// (the primary's change feed holds the change), never surfaced to the caller.
    async fn replicate(&self, epoch: u64, env: Env, ds: &dyn Dataset, rec: &Rec, system: &str) {
        let t0 = Instant::now();
        let r = ds.apply(&self.tenant, rec, false).await;
        self.record(epoch, env, t0, r.is_ok());
        if let Err(e) = r {
            self.repairs.fetch_add(1, Ordering::Relaxed);
            lock(&self.state)
                .dirty
                .insert((system.to_owned(), rec.key.clone()));
            tracing::debug!(error = %e, ?env, "replica write failed; queued for catch-up");
        }
    }

    async fn refresh(&self) -> Result<(), RouterError> {
        let got = self.store.get(&self.tenant).await?;
        *lock(&self.refreshed_at) = Instant::now();
        let Some(fresh) = got else {
            return self.heartbeat().await;
        };
        let older = {
            let mut s = lock(&self.state);
            if fresh.epoch > s.routing.epoch {
                lock(&self.epochs).push((fresh.epoch, Instant::now()));
                // Keys whose target copy failed are read from the source until the flip
                // (its fenced catch-up repairs every one) or until the migration ends.
                if fresh.target.is_none() || fresh.write_mode == WriteMode::DualTargetFirst {
                    s.dirty.clear();
                }
                s.routing = fresh;
                true
            } else {
                false
            }
        };
        if older {
            self.changed.notify_waiters();
        }
        self.heartbeat().await
    }

    /// Acknowledges the current epoch once no older write is in flight here.
    async fn heartbeat(&self) -> Result<(), RouterError> {
        let epoch = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = lock(&self.state);
                let e = s.routing.epoch;
                if s.inflight.range(..e).next().is_none() {
                    break e;
                }
            }
            notified.await;
        };
        let ack = Ack {
            router_id: self.id.clone(),
            epoch,
            at_ms: unix_ms(),
        };
        Ok(self.store.ack(&self.tenant, &ack).await?)
    }

    async fn report(&self) -> Result<(), RouterError> {
        let windows: Vec<((u64, Env), Window)> = lock(&self.metrics)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for ((epoch, env), w) in windows {
            self.store
                .report(&self.tenant, epoch, env, &self.id, &w)
                .await?;
        }
        Ok(())
    }

    async fn run(self: Arc<Self>) {
        let mut watch = self.store.watch(&self.tenant);
        let mut last_report = Instant::now();
        loop {
            let tick = tokio::time::sleep(self.opts.refresh);
            let pushed = async {
                match watch.as_mut() {
                    Some(w) => {
                        if w.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = self.stop.notified() => return,
                () = tick => {}
                () = pushed => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "routing refresh failed; keeping the cached record");
            }
            if last_report.elapsed() >= self.opts.refresh {
                last_report = Instant::now();
                if let Err(e) = self.report().await {
                    tracing::warn!(error = %e, "health report failed");
                }
            }
        }
    }
}
