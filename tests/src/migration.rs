//! Helpers of the migration tests: a fault-injecting dataset, a workload through
//! tenant-router that remembers every acknowledged write, and the migration machine.

use async_trait::async_trait;
use lifecycle::TenantId;
use serde_json::{Value, json};
use sim::{Execution, Machine, Simulator, TaskInvoker};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stores::migrate::{Dataset, Locator, Rec};
use stores::{Deps, StoreError};
use tenant_router::{Router, RouterOptions};

/// Which calls of a [`Faulty`] dataset fail while it is switched on.
#[derive(Debug, Default)]
pub struct Faults {
    /// Reads fail.
    pub reads: AtomicBool,
    /// Replica writes (apply) fail.
    pub applies: AtomicBool,
    /// Bulk applies fail after this many more succeed (u64::MAX: never).
    pub bulk_after: AtomicU64,
    /// Extra delay of each bulk apply, milliseconds.
    pub bulk_delay_ms: AtomicU64,
}

impl Faults {
    /// No faults.
    pub fn none() -> Arc<Self> {
        let f = Self::default();
        f.bulk_after.store(u64::MAX, Ordering::SeqCst);
        Arc::new(f)
    }
}

/// A dataset that fails on demand.
#[derive(Debug)]
pub struct Faulty {
    /// The real dataset.
    pub inner: Arc<dyn Dataset>,
    /// The switches.
    pub faults: Arc<Faults>,
}

fn injected() -> StoreError {
    StoreError::Unavailable("injected fault".into())
}

#[async_trait]
impl Dataset for Faulty {
    fn system(&self) -> &str {
        self.inner.system()
    }
    fn location(&self) -> &str {
        self.inner.location()
    }
    async fn provision(&self, t: &TenantId) -> Result<bool, StoreError> {
        self.inner.provision(t).await
    }
    async fn read(&self, t: &TenantId, k: &str) -> Result<Option<Rec>, StoreError> {
        if self.faults.reads.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.read(t, k).await
    }
    async fn write(&self, t: &TenantId, k: &str, b: Option<&[u8]>) -> Result<u64, StoreError> {
        self.inner.write(t, k, b).await
    }
    async fn apply(&self, t: &TenantId, r: &Rec, eq: bool) -> Result<bool, StoreError> {
        if self.faults.applies.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.apply(t, r, eq).await
    }
    async fn apply_many(&self, t: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        let left = self.faults.bulk_after.load(Ordering::SeqCst);
        if left == 0 {
            return Err(injected());
        }
        if left != u64::MAX {
            self.faults.bulk_after.store(left - 1, Ordering::SeqCst);
        }
        let ms = self.faults.bulk_delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.inner.apply_many(t, recs).await
    }
    async fn scan(&self, t: &TenantId, a: Option<&str>, l: usize) -> Result<Vec<Rec>, StoreError> {
        self.inner.scan(t, a, l).await
    }
}

/// `deps` with every listed system's dataset at `location` wrapped in one set of faults.
pub fn with_faults(deps: &Deps, systems: &[&str], location: &str, faults: &Arc<Faults>) -> Deps {
    let mut d = deps.clone();
    for s in systems {
        let inner = deps.dataset(s, location).expect("dataset");
        d = d.with_dataset(Arc::new(Faulty {
            inner,
            faults: faults.clone(),
        }));
    }
    d
}

/// The migration state machine, loaded.
pub fn migration_machine() -> Machine {
    let def: Value = serde_json::from_str(tenantctl::TENANT_MIGRATION_ASL).expect("json");
    Machine::load(&def).expect("loads")
}

/// Runs the migration machine; Waits pass at `scale` of real time.
pub async fn run_migration(invoker: Arc<dyn TaskInvoker>, input: Value, scale: f64) -> Execution {
    Simulator::new(invoker)
        .with_wait_scale(scale)
        .run(&migration_machine(), "migration", input)
        .await
}

/// A blue-green request for `tenant` over `systems` with fast soaks.
pub fn blue_green(tenant: &str, systems: &[&str], options: Value) -> Value {
    json!({"tenant_id": tenant, "kind": "blue-green", "from": {"environment": "blue"},
           "to": {"environment": "green"}, "systems": systems, "options": options})
}

/// Seeds `n` JSON records per system at the tenant's home location.
pub async fn seed_json(deps: &Deps, tenant: &str, systems: &[&str], n: usize) {
    let t = TenantId::parse(tenant).expect("tenant");
    for s in systems {
        let ds = deps
            .dataset(s, lifecycle::migration::HOME)
            .expect("dataset");
        let recs: Vec<Rec> = (0..n)
            .map(|i| Rec {
                key: format!("rec/{i:05}"),
                rev: 0,
                body: Some(
                    json!({"system": s, "i": i, "v": 0})
                        .to_string()
                        .into_bytes(),
                ),
            })
            .collect();
        ds.apply_many(&t, &recs).await.expect("seed");
    }
}

/// What a workload saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Operations that succeeded.
    pub ok: AtomicU64,
    /// Operations that failed (surfaced to the caller).
    pub failed: AtomicU64,
    /// Reads that returned something other than the last acknowledged value.
    pub stale: AtomicU64,
    /// The last acknowledged value per (system, key); `None` after a delete.
    pub acked: Mutex<BTreeMap<(String, String), Option<Vec<u8>>>>,
}

/// Runs `workers` tasks of mixed reads, writes and deletes through `router` until `stop`.
/// Each worker owns its keys, so "last acknowledged" is well defined per key.
pub fn workload(
    router: Router,
    systems: Vec<String>,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Tally>, Vec<tokio::task::JoinHandle<()>>) {
    let tally = Arc::new(Tally::default());
    let handles = (0..workers)
        .map(|w| {
            let (router, systems, stop, tally) =
                (router.clone(), systems.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let mut i: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let sys = &systems[(i as usize) % systems.len()];
                    // Half the keys overlap the seeded ones, half are new.
                    let key = format!("rec/{:05}", (w as u64 * 7919 + i * 13) % 400);
                    let key = if (w + i as usize) % 2 == 0 {
                        key
                    } else {
                        format!("w{w}/{}", i % 150)
                    };
                    let own = key.starts_with(&format!("w{w}/"))
                        || (key.starts_with("rec/") && key_owner(&key, workers) == w);
                    let op = i % 10;
                    let r = if !own || op < 5 {
                        match router.get(sys, &key).await {
                            Ok(got) => {
                                if own {
                                    let want = tally
                                        .acked
                                        .lock()
                                        .expect("lock")
                                        .get(&(sys.clone(), key.clone()))
                                        .cloned();
                                    if let Some(want) = want
                                        && want != got
                                    {
                                        tally.stale.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    } else if op == 9 {
                        let r = router.delete(sys, &key).await;
                        if r.is_ok() {
                            tally
                                .acked
                                .lock()
                                .expect("lock")
                                .insert((sys.clone(), key.clone()), None);
                        }
                        r
                    } else {
                        let body = json!({"system": sys, "w": w, "i": i})
                            .to_string()
                            .into_bytes();
                        let r = router.put(sys, &key, &body).await;
                        if r.is_ok() {
                            tally
                                .acked
                                .lock()
                                .expect("lock")
                                .insert((sys.clone(), key.clone()), Some(body));
                        }
                        r
                    };
                    match r {
                        Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => tally.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    (tally, handles)
}

fn key_owner(key: &str, workers: usize) -> usize {
    key.trim_start_matches("rec/").parse::<usize>().unwrap_or(0) % workers
}

/// Starts a router for `tenant` on `deps`, refreshing every 20 ms.
pub async fn router(deps: &Arc<Deps>, tenant: &str) -> Router {
    Router::start(
        TenantId::parse(tenant).expect("tenant"),
        deps.routing().expect("routing").clone(),
        deps.clone(),
        RouterOptions {
            refresh: Duration::from_millis(20),
            ..RouterOptions::default()
        },
    )
    .await
    .expect("router")
}

/// Checks every acknowledged write is what `location` holds now; returns mismatches.
pub async fn lost_writes(
    deps: &Deps,
    tenant: &str,
    location: &str,
    tally: &Tally,
    transform: lifecycle::migration::Transform,
) -> u64 {
    let t = TenantId::parse(tenant).expect("tenant");
    let acked = tally.acked.lock().expect("lock").clone();
    let mut lost = 0;
    for ((sys, key), want) in acked {
        let have = deps
            .dataset(&sys, location)
            .expect("dataset")
            .read(&t, &key)
            .await
            .expect("read")
            .and_then(|r| r.body);
        let want = want.map(|w| transform.forward(&w).expect("transform"));
        if have != want {
            lost += 1;
        }
    }
    lost
}
