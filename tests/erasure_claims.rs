//! What a request id binds, and counts that survive a kill: the replay and resume defects
//! of the erasure path, each reproduced through the simulator on the embedded world.

use e2e::{ALL, counts, erasure_bodies, local_world, request, run, seed};
use serde_json::{Value, json};
use sim::Status;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tenantctl::registry::LocalFunctions;

const A: &str = "tenant_a";
const B: &str = "tenant_b";

fn total(c: &std::collections::BTreeMap<(String, String), u64>, t: &str) -> u64 {
    c.iter()
        .filter(|((tt, _), _)| tt == t)
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn the_same_id_for_another_tenant_is_refused_and_erases_nothing() {
    let w = local_world().await;
    seed(&w.deps, A, ALL, 5).await;
    seed(&w.deps, B, ALL, 5).await;
    let first = run(&w.deps, request("req-1", A, ALL)).await;
    assert_eq!(first.status, Status::Succeeded, "{:?}", first.cause);
    let before = counts(&w.deps, &[B]).await;
    let again = run(&w.deps, request("req-1", B, ALL)).await;
    assert_eq!(
        again.error.as_deref(),
        Some("RequestConflict"),
        "{:?}",
        again.cause
    );
    assert_eq!(counts(&w.deps, &[B]).await, before, "tenant_b untouched");
    assert_eq!(
        erasure_bodies(&w.deps).await.len(),
        1,
        "no second certificate"
    );
    // The same request again is a replay: the existing certificate, nothing erased.
    let replay = run(&w.deps, request("req-1", A, ALL)).await;
    assert_eq!(replay.status, Status::Succeeded);
    assert_eq!(replay.output.expect("out")["already_recorded"], true);
}

#[tokio::test]
async fn the_same_id_asking_for_more_systems_is_refused_while_data_remains() {
    let w = local_world().await;
    seed(&w.deps, A, &["redis"], 5).await;
    let first = run(&w.deps, request("req-2", A, &["redis"])).await;
    // Discovery covers the whole catalog: only redis held the tenant.
    assert_eq!(first.status, Status::Succeeded, "{:?}", first.cause);
    seed(&w.deps, A, &["s3"], 5).await;
    let more = run(&w.deps, request("req-2", A, &["redis", "s3"])).await;
    assert_eq!(more.error.as_deref(), Some("RequestConflict"));
    assert_eq!(
        counts(&w.deps, &[A]).await[&(A.to_owned(), "s3".to_owned())],
        5,
        "the old certificate was not handed back as if s3 were erased"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_id_for_two_tenants_at_once_erases_one_and_certifies_it() {
    for round in 0..5 {
        let w = local_world().await;
        seed(&w.deps, A, &["redis"], 20).await;
        seed(&w.deps, B, &["redis"], 20).await;
        let id = format!("req-race-{round}");
        let (d1, d2) = (w.deps.clone(), w.deps.clone());
        let (i1, i2) = (id.clone(), id.clone());
        let t1 = tokio::spawn(async move { run(&d1, request(&i1, A, &["redis"])).await });
        let t2 = tokio::spawn(async move { run(&d2, request(&i2, B, &["redis"])).await });
        let (e1, e2) = (t1.await.expect("t1"), t2.await.expect("t2"));
        let ok = [&e1, &e2]
            .iter()
            .filter(|e| e.status == Status::Succeeded)
            .count();
        let refused = [&e1, &e2]
            .iter()
            .filter(|e| e.error.as_deref() == Some("RequestConflict"))
            .count();
        assert_eq!((ok, refused), (1, 1), "{:?} {:?}", e1.cause, e2.cause);
        let c = counts(&w.deps, &[A, B]).await;
        let (a, b) = (total(&c, A), total(&c, B));
        assert!(
            (a == 0 && b == 20) || (a == 20 && b == 0),
            "exactly one tenant erased: a={a} b={b}"
        );
        let bodies = erasure_bodies(&w.deps).await;
        assert_eq!(bodies.len(), 1);
        let erased = if a == 0 { A } else { B };
        assert_eq!(
            bodies[0]["tenant_id"], erased,
            "the certificate names the erased tenant"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_erasure_resumed_certifies_every_record() {
    let w = local_world().await;
    seed(&w.deps, A, ALL, 5).await;
    seed(&w.deps, A, &["analytics", "s3"], 4000).await;
    let held = total(&counts(&w.deps, &[A]).await, A);
    // A zero budget makes every delete-system call one batch; the execution is dropped
    // mid-way after a few passes, as a kill -9 would stop it.
    let passes = Arc::new(AtomicU32::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let (p, n) = (passes.clone(), notify.clone());
    let hook: e2e::Hook = Box::new(move |f, _input, _res| {
        if f == "delete-system" && p.fetch_add(1, Ordering::SeqCst) + 1 >= 5 {
            n.notify_one();
            return Some(e2e::HookAction::Hang);
        }
        None
    });
    let deps = w.deps.clone();
    let killed = tokio::spawn(async move {
        sim::Simulator::new(Arc::new(e2e::Hooked {
            inner: LocalFunctions::new(deps.clone()),
            deps: deps.clone(),
            hook,
        }))
        .with_task_budget(std::time::Duration::ZERO)
        .run(
            &e2e::erasure_machine(),
            "req-kill",
            request("req-kill", A, ALL),
        )
        .await
    });
    notify.notified().await;
    killed.abort();
    let _ = killed.await;
    let left = total(&counts(&w.deps, &[A]).await, A);
    assert!(
        left > 0 && left < held,
        "killed mid-way: {left} of {held} left"
    );
    assert!(
        erasure_bodies(&w.deps).await.is_empty(),
        "a kill records nothing"
    );

    let resumed = run(&w.deps, request("req-kill", A, ALL)).await;
    assert_eq!(resumed.status, Status::Succeeded, "{:?}", resumed.cause);
    let cert = &resumed.output.expect("out")["certificate"]["certificate"];
    assert_eq!(
        cert["details"]["records_erased_total"].as_u64(),
        Some(held),
        "the certificate counts what the killed run erased too"
    );
}

#[tokio::test]
async fn the_certificate_names_the_catalog_and_every_system_it_scanned() {
    let w = local_world().await;
    seed(&w.deps, A, &["redis"], 3).await;
    let exec = run(&w.deps, request("req-scope", A, &["redis"])).await;
    assert_eq!(exec.status, Status::Succeeded, "{:?}", exec.cause);
    let cert = &exec.output.expect("out")["certificate"]["certificate"];
    let scope = &cert["details"]["scope"];
    assert_eq!(scope["catalog_sha256"], json!(w.deps.catalog.digest()));
    let mut all: Vec<String> = w.deps.catalog.system_names();
    all.sort();
    assert_eq!(scope["systems_scanned"], json!(all));
    assert_eq!(scope["catalog_environment"], "local");
    let d: &Value = &cert["details"];
    assert!(d["request_sha256"].as_str().is_some_and(|h| h.len() == 64));
}

#[tokio::test]
async fn a_catalog_of_one_system_certifies_only_that_scope() {
    // The erasure proves "everywhere" against the catalog it ran with; the certificate
    // says which, so a one-system catalog cannot pass for the whole estate.
    let dir = tempfile::tempdir().expect("dir");
    let text = tenantctl::LOCAL_CATALOG;
    let mut one = String::new();
    let mut keep = true;
    for block in text.split("[[systems]]") {
        if keep {
            one.push_str(block);
            keep = false;
            continue;
        }
        if block.contains("name = \"postgresql\"") {
            one.push_str("[[systems]]");
            one.push_str(block);
        }
    }
    let catalog = lifecycle::Catalog::from_toml(&one).expect("catalog");
    let deps = Arc::new(
        tenantctl::world::connect_with(dir.path(), catalog.clone(), false)
            .await
            .expect("deps"),
    );
    seed(&deps, A, &["postgresql"], 3).await;
    let exec = run(&deps, request("req-one", A, &["postgresql"])).await;
    assert_eq!(exec.status, Status::Succeeded, "{:?}", exec.cause);
    let cert = &exec.output.expect("out")["certificate"]["certificate"];
    assert_eq!(
        cert["details"]["scope"]["systems_scanned"],
        json!(["postgresql"])
    );
    assert_eq!(
        cert["details"]["scope"]["catalog_sha256"],
        json!(catalog.digest())
    );
    let full = lifecycle::Catalog::from_toml(tenantctl::LOCAL_CATALOG).expect("full");
    assert_ne!(catalog.digest(), full.digest());
}
