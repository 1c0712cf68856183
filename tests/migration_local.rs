//! The migration state machine through the simulator on the embedded world, with a
//! workload running through tenant-router while it moves the tenant.

use e2e::local_world;
use e2e::migration::*;
use lifecycle::TenantId;
use lifecycle::migration::{HOME, Phase, Transform, WriteMode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use stores::Deps;
use tenant_runtime::Budget;
use tenantctl::registry::{LocalFunctions, call};

const SYSTEMS: &[&str] = &["postgresql", "redis", "s3"];

fn fast() -> Value {
    json!({"soak_seconds": 10, "page_size": 64, "max_lag": 0})
}

async fn step(deps: &Deps, f: &str, input: Value) -> Result<Value, sim::TaskError> {
    call(
        f,
        input,
        deps,
        Budget::of(std::time::Duration::from_secs(60)),
    )
    .await
}

async fn migration(deps: &Deps, tenant: &str) -> lifecycle::migration::MigrationRecord {
    deps.migrations()
        .expect("table")
        .get(&TenantId::parse(tenant).expect("t"))
        .await
        .expect("get")
        .expect("record")
}

async fn certificates(deps: &Deps) -> Vec<Value> {
    deps.ledger
        .entries(lifecycle::migration::MIGRATION_CHAIN, 0, 100)
        .await
        .expect("entries")
        .into_iter()
        .map(|e| serde_json::from_str(&e.json).expect("json"))
        .collect()
}

/// `m` with the fields of `extra` added.
fn with(m: &Value, extra: Value) -> Value {
    let mut v = m.clone();
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

/// Provisions the migration `req`, bulk-copies it and starts dual-write, step by step;
/// returns the migration's reference (tenant and migration id).
async fn to_dual_write(deps: &Deps, req: Value) -> Value {
    let p = step(deps, "provision", req).await.expect("provision");
    let m = json!({"tenant_id": p["tenant_id"], "migration_id": p["migration_id"]});
    assert_eq!(
        step(deps, "sync", with(&m, json!({"mode": "bulk"})))
            .await
            .expect("bulk")["done"],
        true
    );
    step(deps, "cutover", with(&m, json!({"to": "DUAL_WRITE"})))
        .await
        .expect("dual");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_migration_under_load_loses_no_write_and_ends_equal() {
    let w = local_world().await;
    let tenant = "tenant_001_acme_corp";
    seed_json(&w.deps, tenant, SYSTEMS, 300).await;
    let r = router(&w.deps, tenant).await.expect("router");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, handles) = workload(
        r.clone(),
        SYSTEMS.iter().map(|s| s.to_string()).collect(),
        4,
        stop.clone(),
    );
    let exec = run_migration(
        Arc::new(LocalFunctions::new(w.deps.clone())),
        blue_green(tenant, SYSTEMS, fast()),
        0.02,
    )
    .await;
    // Keep the workload going a little past the end, on the new location.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.await.expect("worker");
    }
    let failures: Vec<String> = exec
        .history
        .iter()
        .filter(|e| e.kind == "LambdaFunctionFailed")
        .map(|e| e.details.to_string())
        .collect();
    assert!(exec.error.is_none(), "{:?}: {failures:?}", exec.error);
    let ops = tally.ok.load(Ordering::SeqCst);
    println!("{ops} operations, router stats: {:?}", {
        let s = r.stats();
        (
            s.repairs_queued,
            s.fallback_reads,
            s.fenced_writes,
            s.pauses_us.iter().max().copied(),
        )
    });
    assert!(ops >= 1000, "only {ops} operations ran");
    assert_eq!(tally.failed.load(Ordering::SeqCst), 0, "failed operations");
    assert_eq!(
        tally.stale.load(Ordering::SeqCst),
        0,
        "reads that missed an acknowledged write"
    );
    assert_eq!(
        lost_writes(&w.deps, tenant, "green", &tally, Transform::None)
            .await
            .expect("lost"),
        0,
        "lost writes"
    );
    let m = migration(&w.deps, tenant).await;
    assert_eq!(m.phase, Phase::Migrated);
    for s in SYSTEMS {
        let (src, dst) = m.fingerprints[*s];
        assert_eq!(src, dst, "{s} fingerprints");
        assert!(src.count > 0);
    }
    let routing = w
        .deps
        .routing()
        .expect("r")
        .get(&TenantId::parse(tenant).expect("t"))
        .await
        .expect("get")
        .expect("routing");
    assert_eq!(
        (
            routing.source.as_str(),
            routing.target.as_deref(),
            routing.write_mode
        ),
        ("green", None, WriteMode::SourceOnly)
    );
    let certs = certificates(&w.deps).await;
    assert_eq!(certs.len(), 1);
    assert_eq!(
        certs[0]["certificate"]["certificate"]["outcome"],
        "migrated"
    );
    r.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_spike_at_25_percent_rolls_back_with_nothing_lost() {
    let w = local_world().await;
    let tenant = "tenant_002_globex";
    seed_json(&w.deps, tenant, SYSTEMS, 200).await;
    let faults = Faults::none();
    let deps = Arc::new(with_faults(&w.deps, SYSTEMS, "eu-west-1", &faults));
    let r = router(&deps, tenant).await.expect("router");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, handles) = workload(
        r.clone(),
        SYSTEMS.iter().map(|s| s.to_string()).collect(),
        3,
        stop.clone(),
    );
    let f2 = faults.clone();
    let invoker = e2e::Hooked {
        inner: LocalFunctions::new(deps.clone()),
        deps: deps.clone(),
        hook: Box::new(move |f, _input, out| {
            if f == "cutover" && out.as_ref().is_ok_and(|v| v["percent"] == 25) {
                f2.reads.store(true, Ordering::SeqCst);
                f2.applies.store(true, Ordering::SeqCst);
            }
            None
        }),
    };
    let req = json!({"tenant_id": tenant, "kind": "region", "from": {"region": "us-east-1"},
        "to": {"region": "eu-west-1"}, "systems": SYSTEMS, "options": fast()});
    let exec = run_migration(Arc::new(invoker), req, 0.02).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.await.expect("worker");
    }
    assert_eq!(
        exec.error.as_deref(),
        Some("MigrationRolledBack"),
        "{:?}",
        exec.error
    );
    let entered = exec.states_entered();
    assert!(entered.iter().any(|s| s == "Rollback"));
    assert!(!entered.iter().any(|s| s == "Finalize"));
    assert_eq!(
        tally.failed.load(Ordering::SeqCst),
        0,
        "a target failure reached the caller"
    );
    assert_eq!(tally.stale.load(Ordering::SeqCst), 0);
    assert_eq!(
        lost_writes(&w.deps, tenant, HOME, &tally, Transform::None)
            .await
            .expect("lost"),
        0,
        "lost writes"
    );
    let m = migration(&w.deps, tenant).await;
    assert_eq!(m.phase, Phase::RolledBack);
    assert!(
        m.reason
            .as_deref()
            .is_some_and(|r| r.contains("HealthGateBreached")),
        "{:?}",
        m.reason
    );
    assert!(m.gates["25"].errors > 0);
    let routing = r.routing();
    assert_eq!(
        (routing.source.as_str(), routing.target.as_deref()),
        (HOME, None)
    );
    let certs = certificates(&w.deps).await;
    assert_eq!(
        certs
            .last()
            .map(|c| c["certificate"]["certificate"]["outcome"].clone()),
        Some(json!("rolled-back"))
    );
    r.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_is_repaired_record_by_record() {
    let w = local_world().await;
    let tenant = "tenant_003_initech";
    seed_json(&w.deps, tenant, &["postgresql"], 150).await;
    let req = json!({"tenant_id": tenant, "kind": "schema-version", "from": {"schema_version": 1},
        "to": {"schema_version": 2}, "systems": ["postgresql"], "options": fast()});
    let m = to_dual_write(&w.deps, req).await;
    let with = |extra: Value| with(&m, extra);
    step(&w.deps, "sync", with(json!({"mode": "catch-up"})))
        .await
        .expect("catch-up");
    // Every v1 record became v2 at the target.
    let t = TenantId::parse(tenant).expect("t");
    let v2 = ports::migrate::Locator::dataset(&*w.deps, "postgresql", "v2")
        .expect("ds")
        .read(&t, "rec/00007")
        .await
        .expect("read")
        .expect("rec");
    assert!(
        String::from_utf8_lossy(v2.body.as_deref().unwrap_or_default())
            .starts_with("{\"schema_version\":2,")
    );
    // Corrupt one target record behind the migration's back.
    let n = w.deps.world().expect("world")
        .execute_raw(
            "UPDATE records SET body = ?1 WHERE system = 'postgresql@v2' AND tenant = ?2 AND key = 'rec/00042'",
            &[&b"{\"schema_version\":2,\"record\":{\"tampered\":true}}".to_vec(), &tenant],
        )
        .expect("tamper");
    assert_eq!(n, 1);
    let e = step(&w.deps, "verify", with(json!({"mode": "HASH"})))
        .await
        .expect_err("mismatch");
    assert_eq!(e.error, "ChecksumMismatch", "{}", e.cause);
    let full = step(&w.deps, "verify", with(json!({"mode": "FULL"})))
        .await
        .expect("full");
    assert_eq!(
        full["systems"][0]["repaired"], 1,
        "only the differing record is rewritten"
    );
    let again = step(&w.deps, "verify", with(json!({"mode": "HASH"})))
        .await
        .expect("verified");
    assert_eq!(again["systems"][0]["source_count"], 150);
    assert_eq!(migration(&w.deps, tenant).await.phase, Phase::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_copy_resumes_from_its_checkpoint() {
    let w = local_world().await;
    let tenant = "tenant_001_acme_corp";
    seed_json(&w.deps, tenant, &["s3"], 500).await;
    let faults = Faults::none();
    faults.bulk_after.store(3, Ordering::SeqCst);
    let broken = with_faults(&w.deps, &["s3"], "green", &faults);
    let p = step(
        &w.deps,
        "provision",
        blue_green(tenant, &["s3"], json!({"page_size": 50})),
    )
    .await
    .expect("provision");
    let m = json!({"tenant_id": tenant, "migration_id": p["migration_id"], "mode": "bulk"});
    let e = step(&broken, "sync", m.clone()).await.expect_err("killed");
    assert_eq!(e.error, "StoreUnavailable");
    let cp = migration(&w.deps, tenant).await.checkpoints["s3"].clone();
    assert_eq!(
        (cp.copied, cp.cursor.as_deref()),
        (150, Some("rec/00149")),
        "three pages were saved"
    );
    let out = step(&w.deps, "sync", m).await.expect("resumed");
    assert_eq!(
        (
            out["done"].clone(),
            out["copied"].clone(),
            out["skipped"].clone()
        ),
        (json!(true), json!(500), json!(0))
    );
    // Objects keep versions: a record copied twice would show as two versions.
    let rows = w
        .deps
        .world()
        .expect("world")
        .count_raw(
            "SELECT COUNT(*) FROM records WHERE system = 's3@green' AND tenant = ?1",
            tenant,
        )
        .expect("count");
    assert_eq!(rows, 500, "nothing duplicated or lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_faster_than_catch_up_time_out_cleanly_before_any_cutover() {
    let w = local_world().await;
    let tenant = "tenant_002_globex";
    seed_json(&w.deps, tenant, &["redis"], 20).await;
    let faults = Faults::none();
    faults.bulk_delay_ms.store(5, Ordering::SeqCst);
    let deps = Arc::new(with_faults(&w.deps, &["redis"], "green", &faults));
    let r = router(&deps, tenant).await.expect("router");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, handles) = workload(r.clone(), vec!["redis".into()], 2, stop.clone());
    let req = blue_green(
        tenant,
        &["redis"],
        json!({"soak_seconds": 1, "page_size": 1, "max_lag": 0, "catchup_timeout_seconds": 1}),
    );
    let exec = run_migration(Arc::new(LocalFunctions::new(deps.clone())), req, 0.2).await;
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.await.expect("worker");
    }
    assert_eq!(
        exec.error.as_deref(),
        Some("MigrationRolledBack"),
        "{:?}",
        exec.error
    );
    assert!(
        !exec.states_entered().iter().any(|s| s == "NextCutoverStep"),
        "no read moved"
    );
    let m = migration(&w.deps, tenant).await;
    assert_eq!(m.phase, Phase::RolledBack);
    assert!(
        m.reason
            .as_deref()
            .is_some_and(|r| r.contains("CatchUpTimeout")),
        "{:?}",
        m.reason
    );
    let cp = &m.checkpoints["redis"];
    assert!(cp.bulk_done && cp.lag > 0, "state kept: {cp:?}");
    assert!(m.gates.is_empty());
    assert_eq!(tally.failed.load(Ordering::SeqCst), 0);
    assert_eq!(
        lost_writes(&w.deps, tenant, HOME, &tally, Transform::None)
            .await
            .expect("lost"),
        0
    );
    r.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn illegal_transitions_and_malformed_inputs_change_nothing() {
    let w = local_world().await;
    let tenant = "tenant_001_acme_corp";
    seed_json(&w.deps, tenant, &["postgresql"], 10).await;
    for bad in [
        json!({"tenant_id": tenant}),
        json!({"tenant_id": tenant, "kind": "blue-green", "from": {"environment": "blue"}, "to": {"environment": "blue"}}),
        json!({"tenant_id": tenant, "kind": "blue-green", "from": {"environment": "blue"}, "to": {"environment": "green"}, "systems": ["cloudwatch"]}),
        json!({"tenant_id": "bad tenant!", "kind": "blue-green", "from": {"environment": "blue"}, "to": {"environment": "green"}}),
    ] {
        let e = step(&w.deps, "provision", bad).await.expect_err("refused");
        assert_eq!(e.error, "InvalidRequest", "{}", e.cause);
    }
    assert!(
        w.deps
            .migrations()
            .expect("t")
            .get(&TenantId::parse(tenant).expect("t"))
            .await
            .expect("get")
            .is_none(),
        "nothing created"
    );
    let p = step(
        &w.deps,
        "provision",
        blue_green(tenant, &["postgresql"], json!({})),
    )
    .await
    .expect("provision");
    let before = migration(&w.deps, tenant).await;
    let m = json!({"tenant_id": tenant, "migration_id": p["migration_id"]});
    let with = |k: &str, v: Value| {
        let mut x = m.clone();
        x[k] = v;
        x
    };
    let refused = [
        ("cutover", with("to", json!("next"))),
        ("cutover", with("to", json!("DUAL_WRITE"))),
        ("cutover", with("to", json!(37))),
        ("finalize", m.clone()),
        ("check-health", m.clone()),
        ("verify", with("mode", json!("FULL"))),
        ("sync", with("mode", json!("catch-up"))),
        ("sync", with("mode", json!("sideways"))),
        (
            "provision",
            blue_green(tenant, &["postgresql"], json!({}))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("to".into(), json!({"environment": "purple"}));
                    Value::Object(o)
                })
                .expect("obj"),
        ),
        (
            "sync",
            json!({"tenant_id": tenant, "migration_id": "someone-else", "mode": "bulk"}),
        ),
    ];
    for (f, input) in refused {
        let e = step(&w.deps, f, input.clone()).await.expect_err(f);
        assert_eq!(e.error, "InvalidRequest", "{f} {input}: {}", e.cause);
        assert!(!e.cause.is_empty());
    }
    assert_eq!(
        migration(&w.deps, tenant).await,
        before,
        "refusals changed nothing"
    );
    // Re-running provision resumes rather than starting over.
    let again = step(
        &w.deps,
        "provision",
        blue_green(tenant, &["postgresql"], json!({})),
    )
    .await
    .expect("resume");
    assert_eq!(
        (again["resumed"].clone(), again["migration_id"].clone()),
        (json!(true), p["migration_id"].clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_version_migration_moves_vectors_as_they_are() {
    // A schema version governs documents; an embedding's body is the vector store's own
    // shape, so under v1 -> v2 the vectors must arrive (and be written through the
    // router) byte for byte, while the documents beside them are transformed.
    let w = local_world().await;
    let tenant = "tenant_002_globex";
    let t = TenantId::parse(tenant).expect("t");
    seed_json(&w.deps, tenant, &["postgresql"], 30).await;
    let vector = |i: usize| {
        json!({"values_milli": [i, 1000, -500], "metadata": {"doc": format!("d{i}")}})
            .to_string()
            .into_bytes()
    };
    let vectors: Vec<ports::migrate::Rec> = (0..30)
        .map(|i| ports::migrate::Rec {
            key: format!("chunk-{i:04}"),
            rev: 0,
            body: Some(vector(i)),
        })
        .collect();
    let home = ports::migrate::Locator::dataset(&*w.deps, "pinecone", HOME).expect("ds");
    home.apply_many(&t, &vectors).await.expect("seed vectors");
    let req = json!({"tenant_id": tenant, "kind": "schema-version", "from": {"schema_version": 1},
        "to": {"schema_version": 2}, "systems": ["postgresql", "pinecone"], "options": fast()});
    let m = to_dual_write(&w.deps, req).await;
    let with = |extra: Value| with(&m, extra);
    // A vector written through the router while both sides are written.
    let r = router(&w.deps, tenant).await.expect("router");
    r.put("pinecone", "chunk-9999", &vector(9999))
        .await
        .expect("write");
    assert_eq!(
        r.get("pinecone", "chunk-0003").await.expect("read"),
        Some(vector(3)),
        "read through the router as written"
    );
    r.shutdown().await.expect("shutdown");
    step(&w.deps, "sync", with(json!({"mode": "catch-up"})))
        .await
        .expect("catch-up");
    let v2 = ports::migrate::Locator::dataset(&*w.deps, "pinecone", "v2").expect("ds");
    for (key, want) in [("chunk-0007", vector(7)), ("chunk-9999", vector(9999))] {
        let got = v2.read(&t, key).await.expect("read").and_then(|r| r.body);
        assert_eq!(
            got.as_deref().map(String::from_utf8_lossy),
            Some(String::from_utf8_lossy(&want)),
            "{key} at v2 is the vector as written"
        );
    }
    let doc = ports::migrate::Locator::dataset(&*w.deps, "postgresql", "v2")
        .expect("ds")
        .read(&t, "rec/00007")
        .await
        .expect("read")
        .and_then(|r| r.body)
        .expect("doc");
    assert!(String::from_utf8_lossy(&doc).starts_with("{\"schema_version\":2,"));
    let verified = step(&w.deps, "verify", with(json!({"mode": "HASH"})))
        .await
        .expect("verify");
    assert_eq!(verified["systems"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_reports_its_pace_and_the_lag_it_leaves() {
    let w = local_world().await;
    let tenant = "tenant_004_umbrella";
    seed_json(&w.deps, tenant, &["postgresql"], 50).await;
    let req = json!({"tenant_id": tenant, "kind": "blue-green", "from": {"environment": "blue"},
        "to": {"environment": "green"}, "systems": ["postgresql"], "options": fast()});
    let m = to_dual_write(&w.deps, req).await;
    // 400 writes at the source since the bulk copy: a backlog for catch-up.
    let t = TenantId::parse(tenant).expect("t");
    let home = ports::migrate::Locator::dataset(&*w.deps, "postgresql", HOME).expect("ds");
    for i in 0..400 {
        home.write(
            &t,
            &format!("rec/{:05}", i % 50),
            Some(format!("{{\"n\":{i}}}").as_bytes()),
        )
        .await
        .expect("write");
    }
    // A call out of time after its first page: behind, the lag left, not outpaced (no
    // write arrived while it ran).
    let out = call(
        "sync",
        with(&m, json!({"mode": "catch-up"})),
        &w.deps,
        Budget::of(std::time::Duration::ZERO),
    )
    .await
    .expect("catch-up");
    assert_eq!(out["done"], false, "{out}");
    assert!(out["lag"].as_u64().expect("lag") > 0, "{out}");
    assert!(
        out["pace"]["applied_per_s"].as_f64().expect("rate") > 0.0,
        "{out}"
    );
    assert_eq!(out["pace"]["writes_per_s"], 0.0, "{out}");
    assert_eq!(out["pace"]["outpaced"], false, "{out}");
    // Given time, it drains.
    let out = step(&w.deps, "sync", with(&m, json!({"mode": "catch-up"})))
        .await
        .expect("catch-up");
    assert_eq!(
        (out["done"].clone(), out["lag"].clone()),
        (json!(true), json!(0)),
        "{out}"
    );
    assert_eq!(out["pace"]["outpaced"], false, "{out}");
}
