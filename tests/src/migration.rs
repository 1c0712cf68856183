//! Helpers of the migration tests: a fault-injecting dataset and the migration machine;
//! the workload through tenant-router is tenantctl's (the demo runs it too).

pub use tenantctl::migrate::{Tally, lost_writes, router, workload};

use async_trait::async_trait;
use lifecycle::TenantId;
use ports::StoreError;
use ports::migrate::{Dataset, Locator, Rec};
use serde_json::{Value, json};
use sim::{Execution, Machine, Simulator, TaskInvoker};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use stores::Deps;

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

/// After a blue-green migration of `system` under `tally`'s workload: no operation failed,
/// every acknowledged write is at `green`, the recorded fingerprints are equal over at least
/// `min_records`; then erasing the tenant from the system completes and leaves nothing, in
/// any location.
pub async fn assert_migrated_then_erased(
    deps: &Deps,
    tenant: &str,
    system: &str,
    tally: &Tally,
    min_records: u64,
) {
    assert_eq!(tally.failed.load(Ordering::SeqCst), 0, "failed operations");
    let lost = lost_writes(
        deps,
        tenant,
        "green",
        tally,
        lifecycle::migration::Transform::None,
    )
    .await
    .expect("lost");
    assert_eq!(lost, 0, "acknowledged writes missing at green");
    let t = TenantId::parse(tenant).expect("tenant");
    let m = deps
        .migrations()
        .expect("migrations")
        .get(&t)
        .await
        .expect("get")
        .expect("record");
    let (a, b) = m.fingerprints[system];
    assert_eq!(a, b, "{system} fingerprints");
    assert!(
        a.count >= min_records,
        "{} < {min_records} records",
        a.count
    );
    let store = deps.store(system).expect("store");
    let pass = store
        .erase(&t, std::time::Instant::now() + Duration::from_secs(120))
        .await
        .expect("erase");
    assert!(pass.complete);
    assert_eq!(
        store.count(&t).await.expect("count"),
        0,
        "every location, feed included"
    );
}

/// A blue-green migration of `systems` run through the simulator while a workload of
/// three workers goes through tenant-router all along; checks the execution succeeded and
/// the workload did real work. Returns the workload's tally and the router (for the
/// caller's own checks, then `shutdown`).
pub async fn blue_green_under_load(
    deps: &Arc<Deps>,
    tenant: &str,
    systems: &[&str],
) -> (Arc<Tally>, tenant_router::Router) {
    let r = tenantctl::migrate::router(deps, tenant)
        .await
        .expect("router");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, handles) = tenantctl::migrate::workload(
        r.clone(),
        systems.iter().map(|s| (*s).to_owned()).collect(),
        3,
        stop.clone(),
    );
    let exec = run_migration(
        Arc::new(tenantctl::registry::LocalFunctions::new(deps.clone())),
        blue_green(
            tenant,
            systems,
            json!({"soak_seconds": 10, "page_size": 50}),
        ),
        0.02,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.await.expect("worker");
    }
    assert!(exec.error.is_none(), "{:?}: {:?}", exec.error, exec.cause);
    assert!(tally.ok.load(Ordering::SeqCst) > 500, "the workload ran");
    (tally, r)
}
