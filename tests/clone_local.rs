//! Anonymised clones of one tenant on the embedded world, through the shipped state
//! machine in the simulator: counts per system, no original value anywhere in the
//! target, joins kept across systems, the same key twice gives the same clone and
//! another key another, a config-only clone copies nothing else, strict mode refuses an
//! unnamed personal field, a broken rule is caught by the scan and the clone removed,
//! and the production tenant is unchanged.

use e2e::{execute, fingerprint as fp, local_world};
use lifecycle::TenantId;
use lifecycle::migration::HOME;
use ports::Services;
use ports::migrate::{Locator, Rec};
use serde_json::{Value, json};
use sim::{Execution, Status};
use std::sync::Arc;
use stores::Deps;

const T: &str = "tenant_001_acme_corp";
const SYSTEMS: &[&str] = &["postgresql", "redis", "pinecone", "s3"];

fn tid(t: &str) -> TenantId {
    TenantId::parse(t).expect("tenant")
}

fn email(i: usize) -> String {
    format!("Customer.{i:03}@acme-corp.example")
}

async fn put(deps: &Deps, system: &str, tenant: &str, recs: Vec<(String, Value)>) {
    let ds = deps.dataset(system, HOME).expect("dataset");
    let recs: Vec<Rec> = recs
        .into_iter()
        .map(|(key, v)| Rec {
            key,
            rev: 0,
            body: Some(v.to_string().into_bytes()),
        })
        .collect();
    ds.apply_many(&tid(tenant), &recs).await.expect("seed");
}

/// A production tenant with customers, orders that name them, sessions that name them in
/// another system, documents, configs, embeddings and objects.
async fn seed(deps: &Deps, tenant: &str) {
    let n = 30;
    let mut pg: Vec<(String, Value)> = (0..n)
        .map(|i| {
            (
                format!("customers/{i:04}"),
                json!({"email": email(i), "name": format!("Jane Q{i:03} Public"), "phone": format!("+1 415 555 {:04}", 1000 + i), "born": "1990-04-01", "tier": "gold"}),
            )
        })
        .collect();
    pg.extend((0..n * 2).map(|i| {
        (
            format!("orders/{i:05}"),
            json!({"customer_email": email(i % n).to_lowercase(), "note": format!("ship to {} asap, tenant {tenant}", email(i % n)), "total": i * 7}),
        )
    }));
    pg.extend((0..10).map(|i| {
        (
            format!("tenant_registry/{i:04}"),
            json!({"tenant": tenant, "plan": "enterprise", "seats": 40 + i}),
        )
    }));
    put(deps, "postgresql", tenant, pg).await;
    put(
        deps,
        "redis",
        tenant,
        (0..n)
            .map(|i| {
                (
                    format!("session:{i:04}"),
                    json!({"user": format!("user-{i:03}"), "user_email": email(i), "ttl": 3600}),
                )
            })
            .collect(),
    )
    .await;
    put(
        deps,
        "pinecone",
        tenant,
        (0..20)
            .map(|i| {
                (
                    format!("vec-{i:05}"),
                    json!({"values_milli": [1000, 0, i, 0], "metadata": {"doc": format!("documents/{i:04}")}}),
                )
            })
            .collect(),
    )
    .await;
    put(
        deps,
        "s3",
        tenant,
        (0..15)
            .map(|i| {
                (
                    format!("uploads/doc-{i:04}.pdf"),
                    json!({"bytes": i * 1000, "sha": format!("{:016x}", i * 7919)}),
                )
            })
            .collect(),
    )
    .await;
}

async fn clone(deps: &Arc<Deps>, input: Value) -> Execution {
    execute(deps, tenantctl::TENANT_CLONE_ASL, "c", input).await
}

async fn records(deps: &Deps, system: &str, location: &str, tenant: &str) -> Vec<Rec> {
    let ds = deps.dataset(system, location).expect("dataset");
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ds
            .scan(&tid(tenant), after.as_deref(), 1000)
            .await
            .expect("scan");
        let full = page.len() == 1000;
        after = page.last().map(|r| r.key.clone());
        out.extend(page.into_iter().filter(|r| r.body.is_some()));
        if !full {
            return out;
        }
    }
}

async fn body_map(deps: &Deps, system: &str, location: &str, tenant: &str) -> Vec<(String, Value)> {
    records(deps, system, location, tenant)
        .await
        .into_iter()
        .map(|r| {
            let v = serde_json::from_slice(r.body.as_deref().unwrap_or_default()).expect("json");
            (r.key, v)
        })
        .collect()
}

async fn fingerprints(deps: &Deps) -> Vec<lifecycle::migration::Fingerprint> {
    let mut out = Vec::new();
    for s in SYSTEMS {
        out.push(fp(deps, s, HOME, T).await);
    }
    out
}

#[tokio::test]
async fn a_full_clone_is_anonymised_joinable_and_leaves_production_alone() {
    let w = local_world().await;
    seed(&w.deps, T).await;
    let before = fingerprints(&w.deps).await;
    let e = clone(&w.deps, json!({"tenant_id": T})).await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let out = e.output.expect("output");
    assert_eq!(out["outcome"], "cloned", "{out}");
    let target = format!("{T}__staging");
    // Same counts per system (the embeddings are replaced, not dropped, by the catalog).
    for s in SYSTEMS {
        assert_eq!(
            records(&w.deps, s, HOME, T).await.len(),
            records(&w.deps, s, "staging", &target).await.len(),
            "{s}"
        );
    }
    // No original value anywhere in the target, read back as stored.
    let mut everything = String::new();
    for s in SYSTEMS {
        for r in records(&w.deps, s, "staging", &target).await {
            everything.push_str(&r.key);
            everything.push_str(&String::from_utf8_lossy(
                r.body.as_deref().unwrap_or_default(),
            ));
        }
    }
    for i in 0..30 {
        let e = email(i);
        assert!(
            !everything.to_lowercase().contains(&e.to_lowercase()),
            "{e} arrived"
        );
        assert!(
            !everything.contains(&format!("Q{i:03} Public")),
            "a name arrived"
        );
        assert!(
            !everything.contains(&format!("555 {:04}", 1000 + i)),
            "a phone arrived"
        );
    }
    assert!(!everything.contains("acme-corp.example"));
    assert!(!everything.contains("1990-04-01"));
    assert!(
        !everything.contains(&format!("\"{T}\"")),
        "the tenant id is rewritten"
    );
    // Joins hold within PostgreSQL and across PostgreSQL and Redis.
    let pg = body_map(&w.deps, "postgresql", "staging", &target).await;
    let customer = |i: usize| {
        pg.iter()
            .find(|(k, _)| k == &format!("customers/{i:04}"))
            .map(|(_, v)| v["email"].clone())
            .expect("customer")
    };
    for (k, v) in pg.iter().filter(|(k, _)| k.starts_with("orders/")) {
        let i: usize = k["orders/".len()..].parse().expect("n");
        assert_eq!(v["customer_email"], customer(i % 30), "{k}");
        assert!(
            v["note"]
                .as_str()
                .expect("note")
                .contains(customer(i % 30).as_str().expect("e")),
            "the note's mention joins too"
        );
    }
    let sessions = body_map(&w.deps, "redis", "staging", &target).await;
    for (k, v) in &sessions {
        let i: usize = k["session:".len()..].parse().expect("n");
        assert_eq!(v["user_email"], customer(i), "{k}: the join across systems");
    }
    // Embeddings are random unit vectors of the same dimension.
    for (_, v) in body_map(&w.deps, "pinecone", "staging", &target).await {
        let vals = v["values_milli"].as_array().expect("values");
        assert_eq!(vals.len(), 4);
        assert_ne!(vals[0], json!(1000));
    }
    assert_eq!(before, fingerprints(&w.deps).await, "production unchanged");
    // Certified, with counts and no personal value.
    let entries = w
        .deps
        .ledger()
        .entries(lifecycle::clone::CLONE_CHAIN, 0, 10)
        .await
        .expect("ledger");
    assert_eq!(entries.len(), 1);
    assert!(!entries[0].json.contains("acme-corp.example"));
    assert!(entries[0].json.contains("rules_sha256"));
}

#[tokio::test]
async fn the_same_key_gives_the_same_clone_and_another_key_an_unlinkable_one() {
    let w = local_world().await;
    seed(&w.deps, T).await;
    for (as_, key) in [("c_one", "k1"), ("c_two", "k1"), ("c_three", "k2")] {
        let e = clone(
            &w.deps,
            json!({"tenant_id": T, "as": as_, "key": key, "systems": ["postgresql", "redis"]}),
        )
        .await;
        assert_eq!(
            e.status,
            Status::Succeeded,
            "{as_}: {:?} {:?}",
            e.error,
            e.cause
        );
    }
    let norm = |v: Vec<(String, Value)>, id: &str| {
        v.into_iter()
            .map(|(k, b)| (k, b.to_string().replace(id, "X")))
            .collect::<Vec<_>>()
    };
    let one = norm(
        body_map(&w.deps, "postgresql", "staging", "c_one").await,
        "c_one",
    );
    let two = norm(
        body_map(&w.deps, "postgresql", "staging", "c_two").await,
        "c_two",
    );
    let three = norm(
        body_map(&w.deps, "postgresql", "staging", "c_three").await,
        "c_three",
    );
    assert_eq!(one, two, "the same key gives byte-identical output");
    assert_eq!(one.len(), three.len());
    let differ = one.iter().zip(&three).filter(|(a, b)| a.1 != b.1).count();
    assert!(
        differ >= 90,
        "another key: {differ} of {} records differ",
        one.len()
    );
    // A clone into a target that holds the tenant already is refused; a retry of the
    // same request is the same clone.
    let again = clone(
        &w.deps,
        json!({"tenant_id": T, "as": "c_one", "key": "k2", "systems": ["postgresql"]}),
    )
    .await;
    assert_eq!(again.status, Status::Failed);
    assert_eq!(
        again.error.as_deref(),
        Some("InvalidRequest"),
        "{:?}",
        again.cause
    );
}

#[tokio::test]
async fn a_config_only_clone_copies_configs_only() {
    let w = local_world().await;
    seed(&w.deps, T).await;
    let e = clone(
        &w.deps,
        json!({"tenant_id": T, "to": "dev", "sync": ["configs"]}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let target = format!("{T}__dev");
    let pg = body_map(&w.deps, "postgresql", "dev", &target).await;
    assert_eq!(pg.len(), 10);
    assert!(
        pg.iter()
            .all(|(k, v)| k.starts_with("tenant_registry/") && v["tenant"] == target.as_str())
    );
    for s in ["redis", "pinecone", "s3"] {
        assert!(records(&w.deps, s, "dev", &target).await.is_empty(), "{s}");
    }
}

#[tokio::test]
async fn strict_mode_refuses_a_planted_personal_column_and_writes_nothing() {
    let w = local_world().await;
    seed(&w.deps, T).await;
    put(
        &w.deps,
        "postgresql",
        T,
        vec![("customers/9999".into(), json!({"email": "a@b.example", "name": "A B", "phone": "1", "born": "2000-01-01", "tier": "x", "backup_contact_mail": "x@y.example"}))],
    )
    .await;
    let e = clone(&w.deps, json!({"tenant_id": T, "systems": ["postgresql"]})).await;
    assert_eq!(e.status, Status::Failed);
    assert_eq!(
        e.error.as_deref(),
        Some("UnruledPersonalData"),
        "{:?}",
        e.cause
    );
    let cause = e.cause.unwrap_or_default();
    assert!(
        cause.contains("/backup_contact_mail") && !cause.contains("x@y.example"),
        "{cause}"
    );
}

/// A world whose clone rules leak: customers' e-mails hashed, orders' e-mails kept,
/// strict mode off, so nothing but the scan stops the originals.
async fn leaking_world(dir: &std::path::Path) -> Arc<Deps> {
    // A deliberately broken rule: customers' e-mails "masked" by keeping them, and
    // strict mode off so nothing stops the value before the scan does.
    let catalog = tenantctl::LOCAL_CATALOG
        .replace("strict = true", "strict = false")
        .replace(
            "field = \"/email\"\naction = \"fake\"\nkind = \"email\"",
            "field = \"/email\"\naction = \"hash\"",
        )
        .replace(
            "prefix = \"orders/\"\nfield = \"/customer_email\"\naction = \"fake\"\nkind = \"email\"",
            "prefix = \"orders/\"\nfield = \"/customer_email\"\naction = \"keep\"",
        );
    assert_ne!(catalog, tenantctl::LOCAL_CATALOG);
    let path = dir.join("catalog.toml");
    std::fs::write(&path, &catalog).expect("catalog");
    let deps = Arc::new(
        tenantctl::world::connect(dir, Some(&path))
            .await
            .expect("connect"),
    );
    seed(&deps, T).await;
    deps
}

#[tokio::test]
async fn a_broken_rule_is_caught_by_the_scan_and_the_clone_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let deps = leaking_world(dir.path()).await;
    let before = fingerprints(&deps).await;
    let e = clone(
        &deps,
        json!({"tenant_id": T, "systems": ["postgresql", "redis"]}),
    )
    .await;
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("CloneRemoved"), "{:?}", e.cause);
    let target = format!("{T}__staging");
    for s in ["postgresql", "redis"] {
        assert!(
            records(&deps, s, "staging", &target).await.is_empty(),
            "{s} removed"
        );
    }
    let entries = deps
        .ledger()
        .entries(lifecycle::clone::CLONE_CHAIN, 0, 10)
        .await
        .expect("ledger");
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0].json.contains("\"removed\""),
        "{}",
        entries[0].json
    );
    assert_eq!(before, fingerprints(&deps).await, "production unchanged");
}

/// Rewrites the stored state at `key` as an attacker with the archive would: a JSON file
/// gets `edit` applied, anything else (sealed) a flipped byte.
async fn tamper(deps: &Deps, key: &str, edit: impl Fn(&mut Value)) {
    let archive = deps.archive().expect("archive");
    let mut bytes = archive.get(key).await.expect("get").expect("stored");
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) => {
            edit(&mut v);
            bytes = serde_json::to_vec(&v).expect("json");
        }
        Err(_) => {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
    }
    archive.put(key, bytes).await.expect("put");
}

#[tokio::test]
async fn altered_clone_state_is_refused_and_never_certified_clean() {
    let dir = tempfile::tempdir().expect("dir");
    let deps = leaking_world(dir.path()).await;
    let svc: &dyn Services = &*deps;
    let t = tid(T);
    let req =
        lifecycle::clone::CloneRequest::parse(&json!({"tenant_id": T, "systems": ["postgresql"]}))
            .expect("request");
    let far = || std::time::Instant::now() + std::time::Duration::from_secs(600);
    let begun = steps::clone::begin(svc, &req).await.expect("begin");
    let id = begun.clone_id.clone();
    assert!(
        steps::clone::copy_step(svc, &t, &id, "postgresql", far())
            .await
            .expect("copy")
            .done
    );
    let root = format!("tenants/{T}/clones/{id}/");

    // One changed tag: the scan would miss the value it stood for.
    let tags = format!("{root}postgresql/tags-00000000.bin");
    let archive = deps.archive().expect("archive");
    let mut b = archive.get(&tags).await.expect("get").expect("tags");
    let original = b.clone();
    b[3] ^= 0x40;
    archive.put(&tags, b).await.expect("put");
    let e = steps::clone::scan_step(svc, &t, &id, "postgresql", far())
        .await
        .expect_err("a changed tag file is refused");
    assert_eq!(e.error_type(), "CloneStateCorrupt", "{e}");
    archive
        .put(&tags, original)
        .await
        .expect("restore the tags");

    // The scan finds the leak; its findings rewritten to zero must not certify a clean clone.
    let s = steps::clone::scan_step(svc, &t, &id, "postgresql", far())
        .await
        .expect("scan");
    assert!(s.done && s.findings.hits() > 0, "{s:?}");
    tamper(&deps, &format!("{root}postgresql/scan.json"), |v| {
        for k in ["originals", "emails", "phones"] {
            v["findings"][k] = json!(0);
        }
    })
    .await;
    let e = steps::clone::finish(svc, &t, &id, far())
        .await
        .expect_err("altered findings are refused");
    assert_eq!(e.error_type(), "CloneStateCorrupt", "{e}");

    // A changed plan (another target location) is refused by every step.
    tamper(&deps, &format!("{root}plan.json"), |v| {
        v["plan"]["request"]["to"] = json!("dev");
        v["request"]["to"] = json!("dev");
    })
    .await;
    let e = steps::clone::copy_step(svc, &t, &id, "postgresql", far())
        .await
        .expect_err("an altered plan is refused");
    assert_eq!(e.error_type(), "CloneStateCorrupt", "{e}");
    let entries = deps
        .ledger()
        .entries(lifecycle::clone::CLONE_CHAIN, 0, 10)
        .await
        .expect("ledger");
    assert!(entries.is_empty(), "nothing certified");
}

#[tokio::test]
async fn an_id_claimed_by_other_content_is_refused_and_nothing_is_written() {
    let w = local_world().await;
    let deps = w.deps.clone();
    seed(&deps, T).await;
    let svc: &dyn Services = &*deps;
    let req =
        lifecycle::clone::CloneRequest::parse(&json!({"tenant_id": T, "systems": ["postgresql"]}))
            .expect("request");
    let id = req.id().expect("id").to_string();
    svc.requests()
        .claim(&id, "another request's digest", "", "2026-12-02T00:00:00Z")
        .await
        .expect("claim");
    let e = steps::clone::begin(svc, &req).await.expect_err("conflict");
    assert_eq!(e.error_type(), "RequestConflict", "{e}");
    assert!(
        records(&deps, "postgresql", "staging", &format!("{T}__staging"))
            .await
            .is_empty()
    );
    let archive = deps.archive().expect("archive");
    assert!(
        archive
            .list(&format!("tenants/{T}/clones/"))
            .await
            .expect("list")
            .is_empty(),
        "no plan written"
    );
}

#[tokio::test]
async fn two_clones_begun_at_once_into_one_target_cannot_both_write() {
    let w = local_world().await;
    let deps = w.deps.clone();
    seed(&deps, T).await;
    let svc: &dyn Services = &*deps;
    let req = |key: &str| {
        lifecycle::clone::CloneRequest::parse(
            &json!({"tenant_id": T, "systems": ["postgresql"], "key": key}),
        )
        .expect("request")
    };
    let (a, b) = (req("ka"), req("kb"));
    assert_ne!(a.id().expect("a"), b.id().expect("b"), "two clones");
    let (ra, rb) = tokio::join!(steps::clone::begin(svc, &a), steps::clone::begin(svc, &b));
    let oks = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(oks, 1, "exactly one clone owns the target: {ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    assert_eq!(loser.expect_err("refused").error_type(), "InvalidRequest");
}

/// The handlers, with each clone-system call given no budget (one page per call) and the
/// `hang_at`-th such call never returning, as a process killed mid-copy.
struct OnePageACall {
    inner: tenantctl::registry::LocalFunctions,
    calls: std::sync::atomic::AtomicUsize,
    hang_at: usize,
}

#[async_trait::async_trait]
impl sim::TaskInvoker for OnePageACall {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        budget: std::time::Duration,
    ) -> Result<Value, sim::TaskError> {
        if tenantctl::registry::function_for(resource).as_deref() != Some("clone-system") {
            return self.inner.invoke(resource, input, budget).await;
        }
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == self.hang_at {
            std::future::pending::<()>().await;
        }
        self.inner
            .invoke(resource, input, std::time::Duration::ZERO)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_killed_mid_copy_resumes_in_a_new_process_to_the_same_clone_and_a_limit_holds_across_pages()
 {
    let w = local_world().await;
    // 1,300 documents: three pages of the copy.
    put(
        &w.deps,
        "postgresql",
        T,
        (0..1300)
            .map(|i| {
                (
                    format!("documents/{i:05}"),
                    json!({"owner": email(i % 40), "title": format!("report {i}")}),
                )
            })
            .collect(),
    )
    .await;
    let run = |deps: Arc<Deps>, as_: &'static str, hang_at: usize, extra: Value| async move {
        let invoker = Arc::new(OnePageACall {
            inner: tenantctl::registry::LocalFunctions::new(deps.clone()),
            calls: Default::default(),
            hang_at,
        });
        let mut input = json!({"tenant_id": T, "as": as_, "key": "k1", "systems": ["postgresql"]});
        if let (Some(o), Some(e)) = (input.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let sim = tenantctl::world::with_shipped_machines(sim::Simulator::new(invoker));
        // A hung run is given 3 s to reach its hang; any other, time to finish.
        tokio::time::timeout(
            std::time::Duration::from_secs(if hang_at > 0 { 3 } else { 300 }),
            sim.run(&e2e::machine(tenantctl::TENANT_CLONE_ASL), as_, input),
        )
        .await
    };
    let whole = run(w.deps.clone(), "c_whole", 0, json!({}))
        .await
        .expect("ends");
    assert_eq!(
        whole.status,
        Status::Succeeded,
        "{:?} {:?}",
        whole.error,
        whole.cause
    );
    // Killed during its second page; a new process runs the same request again.
    assert!(
        run(w.deps.clone(), "c_killed", 2, json!({})).await.is_err(),
        "hung"
    );
    let again = Arc::new(
        tenantctl::world::connect(w.dir.path(), None)
            .await
            .expect("a new process"),
    );
    let resumed = run(again.clone(), "c_killed", 0, json!({}))
        .await
        .expect("ends");
    assert_eq!(
        resumed.status,
        Status::Succeeded,
        "{:?} {:?}",
        resumed.error,
        resumed.cause
    );
    let norm = |v: Vec<(String, Value)>, id: &str| {
        v.into_iter()
            .map(|(k, b)| (k, b.to_string().replace(id, "X")))
            .collect::<Vec<_>>()
    };
    let a = norm(
        body_map(&again, "postgresql", "staging", "c_whole").await,
        "c_whole",
    );
    let b = norm(
        body_map(&again, "postgresql", "staging", "c_killed").await,
        "c_killed",
    );
    assert_eq!(a.len(), 1300);
    assert_eq!(a, b, "the resumed clone is the uninterrupted one");
    // A limit counts across pages.
    let limited = run(again.clone(), "c_limit", 0, json!({"limit": 700}))
        .await
        .expect("ends");
    assert_eq!(
        limited.status,
        Status::Succeeded,
        "{:?} {:?}",
        limited.error,
        limited.cause
    );
    assert_eq!(
        records(&again, "postgresql", "staging", "c_limit")
            .await
            .len(),
        700
    );
}

/// The target's PostgreSQL and Redis records of a clone, by key.
async fn cloned(deps: &Deps, target: &str) -> (Vec<(String, Value)>, Vec<(String, Value)>) {
    (
        body_map(deps, "postgresql", "staging", target).await,
        body_map(deps, "redis", "staging", target).await,
    )
}

fn keys(v: &[(String, Value)], prefix: &str) -> Vec<String> {
    v.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test]
async fn a_subset_clone_keeps_every_reference_whole_across_systems() {
    let w = local_world().await;
    seed(&w.deps, T).await;
    let before = fingerprints(&w.deps).await;
    // Five orders and the customers they name; sessions and embeddings refer to records
    // left out, so none comes along; objects take no part in a reference: all of them.
    let e = clone(
        &w.deps,
        json!({"tenant_id": T, "as": "sub_orders", "subset": {"from": "postgresql:orders/", "first": 5}}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let (pg, redis) = cloned(&w.deps, "sub_orders").await;
    assert_eq!(
        keys(&pg, "orders/"),
        (0..5).map(|i| format!("orders/{i:05}")).collect::<Vec<_>>()
    );
    assert_eq!(
        keys(&pg, "customers/"),
        (0..5)
            .map(|i| format!("customers/{i:04}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        keys(&pg, "tenant_registry/").len(),
        10,
        "configs take no part: whole"
    );
    assert!(redis.is_empty(), "sessions of customers left out stay out");
    assert!(
        records(&w.deps, "pinecone", "staging", "sub_orders")
            .await
            .is_empty()
    );
    assert_eq!(
        records(&w.deps, "s3", "staging", "sub_orders").await.len(),
        15
    );
    let emails: Vec<&Value> = pg
        .iter()
        .filter(|(k, _)| k.starts_with("customers/"))
        .map(|(_, v)| &v["email"])
        .collect();
    for (k, v) in pg.iter().filter(|(k, _)| k.starts_with("orders/")) {
        assert!(
            emails.contains(&&v["customer_email"]),
            "{k} points at a cloned customer"
        );
    }
    // Three customers with their dependants: their orders (two each) and their sessions,
    // in another system; every reference of the clone lands inside it.
    let e = clone(
        &w.deps,
        json!({"tenant_id": T, "as": "sub_customers", "subset": {"from": "postgresql:customers/", "first": 3, "dependants": true}}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let (pg, redis) = cloned(&w.deps, "sub_customers").await;
    assert_eq!(keys(&pg, "customers/").len(), 3);
    assert_eq!(
        keys(&pg, "orders/"),
        [0, 1, 2, 30, 31, 32].map(|i| format!("orders/{i:05}"))
    );
    assert_eq!(
        keys(&redis, "session:"),
        (0..3)
            .map(|i| format!("session:{i:04}"))
            .collect::<Vec<_>>()
    );
    let emails: Vec<&Value> = pg
        .iter()
        .filter(|(k, _)| k.starts_with("customers/"))
        .map(|(_, v)| &v["email"])
        .collect();
    for (k, v) in &redis {
        assert!(
            emails.contains(&&v["user_email"]),
            "{k} points at a cloned customer"
        );
    }
    // Still anonymised and certified with the subset named.
    let all = format!("{pg:?}{redis:?}");
    assert!(!all.to_lowercase().contains("acme-corp.example"), "{all}");
    let entries = w
        .deps
        .ledger()
        .entries(lifecycle::clone::CLONE_CHAIN, 0, 10)
        .await
        .expect("ledger");
    assert_eq!(entries.len(), 2);
    assert!(
        entries[1].json.contains("\"dependants\":true"),
        "{}",
        entries[1].json
    );
    assert!(
        !entries[1].json.contains("customers/"),
        "the roots' key prefix goes on the ledger as a digest"
    );
    assert_eq!(before, fingerprints(&w.deps).await, "production unchanged");
    put(
        &w.deps,
        "postgresql",
        "tenant_002_globex",
        vec![("tenant_registry/0001".into(), json!({"plan": "basic"}))],
    )
    .await;
    // Refused in one line, nothing begun: a limit beside a subset, roots the clone does
    // not copy, a class that names no system, sessions whose customers the clone leaves
    // out.
    for (input, says) in [
        (
            json!({"tenant_id": T, "as": "x1", "limit": 3, "subset": {"from": "postgresql:orders/", "first": 5}}),
            "limit and subset",
        ),
        (
            json!({"tenant_id": T, "as": "x2", "sync": ["configs"], "subset": {"from": "postgresql:orders/", "first": 5}}),
            "not among what the clone copies",
        ),
        (
            json!({"tenant_id": T, "as": "x3", "subset": {"from": "../etc:x", "first": 5}}),
            "does not name a system",
        ),
        (
            json!({"tenant_id": T, "as": "x4", "systems": ["redis"], "subset": {"from": "redis:session:", "first": 3}}),
            "which this clone does not copy",
        ),
        (
            json!({"tenant_id": T, "as": "tenant_002_globex"}),
            "tenant tenant_002_globex exists",
        ),
        (
            json!({"tenant_id": T, "as": T.to_uppercase()}),
            "not only in case",
        ),
        (
            json!({"tenant_id": T, "as": "x5", "subset": {"from": "postgresql:orders/nothing-here", "first": 3}}),
            "matched no record",
        ),
        (
            json!({"tenant_id": T, "as": "x6", "subset": {"from": "postgresql:orders/", "since_days": 4_000_000_000u32, "date_field": "/d"}}),
            "at most 36500",
        ),
    ] {
        let e = clone(&w.deps, input).await;
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.error.as_deref(), Some("InvalidRequest"), "{:?}", e.cause);
        assert!(
            e.cause.as_deref().unwrap_or_default().contains(says),
            "{:?}",
            e.cause
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subset_search_cut_after_every_page_and_resumed_by_new_processes_finds_the_same_subset() {
    let w = local_world().await;
    // 1,200 orders over 400 customers: pages of 500, so the search needs many passes.
    put(
        &w.deps,
        "postgresql",
        T,
        (0..400)
            .map(|i| (format!("customers/{i:04}"), json!({"email": email(i), "name": "Jane Q Public", "phone": "+1 415 555 0000", "born": "1990-04-01", "tier": "gold"})))
            .chain((0..1200).map(|i| {
                (
                    format!("orders/{i:05}"),
                    json!({"customer_email": email(i % 400).to_lowercase(), "note": "n", "total": i}),
                )
            }))
            .collect(),
    )
    .await;
    let begin = |as_: &str| {
        lifecycle::clone::CloneRequest::parse(&json!({"tenant_id": T, "as": as_, "systems": ["postgresql"], "subset": {"from": "postgresql:customers/", "first": 150, "dependants": true}}))
            .expect("request")
    };
    let svc: &dyn Services = &*w.deps;
    let whole = steps::clone::begin(svc, &begin("s_whole"))
        .await
        .expect("begin");
    let far = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let one = steps::clone::subset_step(svc, &tid(T), &whole.clone_id, far)
        .await
        .expect("whole");
    assert!(one.done);
    // The same search, every call out of time after its first page, each in a new process.
    let cut = steps::clone::begin(svc, &begin("s_cut"))
        .await
        .expect("begin");
    let mut calls = 0;
    let last = loop {
        let fresh = tenantctl::world::connect(w.dir.path(), None)
            .await
            .expect("a new process");
        let s =
            steps::clone::subset_step(&fresh, &tid(T), &cut.clone_id, std::time::Instant::now())
                .await
                .expect("a pass");
        calls += 1;
        assert!(calls < 100, "the search ends");
        if s.done {
            break s;
        }
    };
    assert!(calls > 3, "it was cut: {calls} passes");
    assert_eq!((last.members, last.rounds), (one.members, one.rounds));
    // 150 customers, each with three orders.
    assert_eq!(one.members, 600);
    for id in [&whole.clone_id, &cut.clone_id] {
        let far = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let c = steps::clone::copy_step(svc, &tid(T), id, "postgresql", far)
            .await
            .expect("copy");
        assert_eq!(c.copied, 600);
    }
    let mut seen = Vec::new();
    for as_ in ["s_whole", "s_cut"] {
        seen.push(
            body_map(&w.deps, "postgresql", "staging", as_)
                .await
                .into_iter()
                .map(|(k, b)| (k, b.to_string().replace(as_, "X")))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(seen[0], seen[1], "the cut search copies the same clone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_first_clones_under_one_new_key_name_at_once_share_one_key() {
    let w = local_world().await;
    seed(&w.deps, T).await;
    for round in 0..20 {
        let name = format!("fresh{round}");
        let req = |as_: String| {
            lifecycle::clone::CloneRequest::parse(
                &json!({"tenant_id": T, "as": as_, "key": name, "systems": ["postgresql"]}),
            )
            .expect("request")
        };
        // Two tasks on two threads: each begins its clone as a Lambda of its own would.
        let begin = |r: lifecycle::clone::CloneRequest| {
            let deps = w.deps.clone();
            tokio::spawn(async move { steps::clone::begin(&*deps, &r).await })
        };
        let (x, y) = (
            begin(req(format!("k_a{round}"))),
            begin(req(format!("k_b{round}"))),
        );
        let (x, y) = (
            x.await.expect("task a").expect("begin a"),
            y.await.expect("task b").expect("begin b"),
        );
        let svc: &dyn Services = &*w.deps;
        let px = steps::clone::plan(svc, &tid(T), &x.clone_id)
            .await
            .expect("plan a");
        let py = steps::clone::plan(svc, &tid(T), &y.clone_id)
            .await
            .expect("plan b");
        assert_eq!(
            (px.key_ref, px.wrapped_b64),
            (py.key_ref, py.wrapped_b64),
            "round {round}: one key name, one key"
        );
    }
}
