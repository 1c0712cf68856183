//! Helpers shared by the end-to-end tests: a fresh local world, seeding, running the
//! erasure state machine, fault injection around the handlers, and moto clients.

pub mod migration;
pub mod proxy;

use async_trait::async_trait;
use lifecycle::TenantId;
use serde_json::{Value, json};
use sim::{Execution, Machine, Simulator, TaskError, TaskInvoker};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stores::Deps;
use tenantctl::registry::LocalFunctions;

/// A local world in a temporary directory.
pub struct LocalWorld {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The handlers' dependencies.
    pub deps: Arc<Deps>,
}

/// Opens a fresh embedded world with the local catalog.
pub async fn local_world() -> LocalWorld {
    let dir = tempfile::tempdir().expect("tempdir");
    let deps = tenantctl::world::connect(dir.path(), None)
        .await
        .expect("connect");
    LocalWorld {
        dir,
        deps: Arc::new(deps),
    }
}

/// Writes `n` records of `tenant` into each of `systems`.
pub async fn seed(deps: &Deps, tenant: &str, systems: &[&str], n: usize) {
    let t = TenantId::parse(tenant).expect("tenant");
    for s in systems {
        let store = deps.store(s).expect("system");
        for i in 0..n {
            store
                .put(
                    &t,
                    &format!("rec/{i:04}"),
                    format!("{tenant}-{s}-{i}").as_bytes(),
                )
                .await
                .expect("put");
        }
    }
}

/// Every system of the local catalog.
pub const ALL: &[&str] = &[
    "postgresql",
    "redis",
    "pinecone",
    "s3",
    "cloudwatch",
    "backups",
    "analytics",
];

/// Counts per (tenant, system).
pub async fn counts(deps: &Deps, tenants: &[&str]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for t in tenants {
        let tid = TenantId::parse(t).expect("tenant");
        for s in deps.catalog.system_names() {
            out.insert(
                (t.to_string(), s.clone()),
                deps.store(&s)
                    .expect("store")
                    .count(&tid)
                    .await
                    .expect("count"),
            );
        }
    }
    out
}

/// The erasure state machine, loaded.
pub fn erasure_machine() -> Machine {
    machine(tenantctl::GDPR_ERASURE_ASL)
}

/// A shipped state machine, loaded from its text.
pub fn machine(text: &str) -> Machine {
    let def: Value = serde_json::from_str(text).expect("json");
    Machine::load(&def).expect("loads")
}

/// Runs the state machine `asl` on the plain handlers.
pub async fn execute(deps: &Arc<Deps>, asl: &str, name: &str, input: Value) -> Execution {
    tenantctl::world::with_shipped_machines(Simulator::new(Arc::new(LocalFunctions::new(
        deps.clone(),
    ))))
    .run(&machine(asl), name, input)
    .await
}

/// Calls one step function on the plain handlers with a budget of `secs` (0: one unit of
/// work, then a continuation), as a Lambda invocation would; panics on its error.
pub async fn call_step(deps: Arc<Deps>, f: &'static str, input: Value, secs: u64) -> Value {
    tenantctl::registry::call(
        f,
        input,
        &deps,
        tenant_runtime::Budget::of(std::time::Duration::from_secs(secs)),
    )
    .await
    .expect(f)
}

/// Restores `backup_id` into `to` at schema v7, which nothing migrates to, and checks the
/// shipped restore machine refuses it for want of a migration path (the caller then checks
/// that nothing was written).
pub async fn assert_restore_at_v7_refused(deps: &Arc<Deps>, backup_id: &Value, to: &str) {
    let bad = execute(
        deps,
        tenantctl::TENANT_RESTORE_ASL,
        "v7",
        json!({"backup_id": backup_id, "to": to, "schema_version": 7}),
    )
    .await;
    assert_eq!(bad.status, sim::Status::Failed);
    assert!(
        task_cause(&bad).contains("no migration path"),
        "{}",
        task_cause(&bad)
    );
}

/// `bytes` with one bit of its middle byte flipped: a corrupted chunk.
pub fn flip_middle_byte(mut bytes: Vec<u8>) -> Vec<u8> {
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    bytes
}

/// The fingerprint of the tenant's live records of `system` at `location`.
pub async fn fingerprint(
    deps: &Deps,
    system: &str,
    location: &str,
    tenant: &str,
) -> lifecycle::migration::Fingerprint {
    let ds = ports::migrate::Locator::dataset(deps, system, location).expect("dataset");
    steps::backup::restore_fingerprint(&*ds, &TenantId::parse(tenant).expect("tenant"))
        .await
        .expect("fingerprint")
}

/// An erasure request.
pub fn request(id: &str, tenant: &str, systems: &[&str]) -> Value {
    json!({"request_id": id, "tenant_id": tenant, "reason": "Art. 17 request", "systems": systems})
}

/// Runs the erasure state machine with `invoker`.
pub async fn run_with(invoker: Arc<dyn TaskInvoker>, input: Value) -> Execution {
    let name = input
        .get("request_id")
        .and_then(Value::as_str)
        .unwrap_or("x")
        .to_owned();
    Simulator::new(invoker)
        .run(&erasure_machine(), &name, input)
        .await
}

/// Runs the erasure state machine on the plain handlers.
pub async fn run(deps: &Arc<Deps>, input: Value) -> Execution {
    run_with(Arc::new(LocalFunctions::new(deps.clone())), input).await
}

/// What a hook sees after each task: the function, its input and its result.
pub type Hook =
    Box<dyn Fn(&str, &Value, &Result<Value, TaskError>) -> Option<HookAction> + Send + Sync>;

/// What a hook may do.
pub enum HookAction {
    /// Write a record (tenant, system, key) before the next state runs.
    Write(String, String, String),
    /// Replace the task's result with this error.
    Fail(TaskError),
    /// Never return, as a process killed in the middle of a task: the execution stops
    /// here (the test drops it) and nothing after this task runs.
    Hang,
}

/// Wraps the handlers to inject faults between states.
pub struct Hooked {
    /// The real handlers.
    pub inner: LocalFunctions,
    /// The deps, to write through.
    pub deps: Arc<Deps>,
    /// The hook.
    pub hook: Hook,
}

#[async_trait]
impl TaskInvoker for Hooked {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        budget: Duration,
    ) -> Result<Value, TaskError> {
        let f = tenantctl::registry::function_for(resource).unwrap_or_default();
        let res = self.inner.invoke(resource, input.clone(), budget).await;
        match (self.hook)(&f, &input, &res) {
            Some(HookAction::Write(t, s, k)) => {
                let tid = TenantId::parse(&t).expect("tenant");
                self.deps
                    .store(&s)
                    .expect("system")
                    .put(&tid, &k, b"late write")
                    .await
                    .expect("write");
                res
            }
            Some(HookAction::Fail(e)) => Err(e),
            Some(HookAction::Hang) => std::future::pending().await,
            None => res,
        }
    }
}

/// Moto's URL from `MOTO_URL` (scripts/test starts moto and sets it).
pub fn moto_url() -> String {
    std::env::var("MOTO_URL").unwrap_or_else(|_| {
        panic!("MOTO_URL is not set: run scripts/test, which installs moto into .venv and starts it on a free loopback port")
    })
}

/// AWS configuration pointing every client at moto.
pub async fn moto_config() -> aws_config::SdkConfig {
    tenantctl::fixtures::moto_config(&moto_url()).await
}

pub use tenantctl::fixtures::moto_s3;

/// Creates a versioned bucket.
pub async fn versioned_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    tenantctl::fixtures::versioned_bucket(s3, name)
        .await
        .expect("create versioned bucket");
}

/// Creates a bucket with Object Lock enabled (so versioned), for checkpoints.
pub async fn object_lock_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket()
        .bucket(name)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create object-lock bucket");
}

/// Creates a DynamoDB table with string keys `pk` and `sk` (on-demand).
pub async fn table(ddb: &aws_sdk_dynamodb::Client, name: &str, pk: &str, sk: &str) {
    tenantctl::fixtures::table(ddb, name, pk, sk)
        .await
        .expect("create table");
}

/// The same with a DynamoDB Stream (view `NEW_IMAGE`).
pub async fn streamed_table(ddb: &aws_sdk_dynamodb::Client, name: &str, pk: &str, sk: &str) {
    tenantctl::fixtures::streamed_table(ddb, name, pk, sk)
        .await
        .expect("create table");
}

/// Creates a DynamoDB table with only a string partition key `pk` (on-demand).
pub async fn hash_table(ddb: &aws_sdk_dynamodb::Client, name: &str, pk: &str) {
    tenantctl::fixtures::hash_table(ddb, name, pk)
        .await
        .expect("create table");
}

/// Creates an ECC_NIST_P256 signing key and returns its id.
pub async fn kms_key(kms: &aws_sdk_kms::Client) -> String {
    let out = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .expect("create key");
    out.key_metadata().expect("metadata").key_id().to_owned()
}

/// A key ring holding the deps' signing key.
pub async fn key_ring(deps: &Deps) -> lifecycle::ledger::KeyRing {
    let s = deps.signer().await.expect("signer");
    let mut r = lifecycle::ledger::KeyRing::default();
    r.insert(s.key_id(), *s.public_key());
    r
}

/// The cause of the last task failure of an execution (a Catch turns the task's error
/// into the state machine's own, so this is where the details are).
pub fn task_cause(exec: &sim::Execution) -> String {
    exec.history
        .iter()
        .rev()
        .find(|e| e.kind == "LambdaFunctionFailed")
        .and_then(|e| e.details["cause"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The bodies of every certificate on the erasure chain, in order.
pub async fn erasure_bodies(deps: &Deps) -> Vec<Value> {
    deps.ledger
        .entries(lifecycle::erasure::ERASURE_CHAIN, 0, 10_000)
        .await
        .expect("entries")
        .into_iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.json).expect("json");
            v["certificate"]["certificate"].clone()
        })
        .collect()
}

/// True while the erasure chain has no entry.
pub async fn ledger_is_empty(deps: &Deps) -> bool {
    deps.ledger
        .head(lifecycle::erasure::ERASURE_CHAIN)
        .await
        .expect("head")
        .is_none()
}

/// A clock ahead of now by a span: retention, prune and abandoned backups without
/// waiting.
#[derive(Debug)]
pub struct Later(pub time::Duration);

impl ports::Clock for Later {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + self.0
    }
}
