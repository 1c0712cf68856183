//! The erasure state machine end to end in the simulator, on the embedded world.

use e2e::{
    ALL, Hook, HookAction, Hooked, counts, key_ring, ledger_is_empty, local_world, request, run,
    run_with, seed,
};
use lifecycle::TenantId;
use lifecycle::erasure::ERASURE_CHAIN;
use ports::LegalHold;
use serde_json::{Value, json};
use sim::{Status, TaskError};
use std::sync::Arc;
use steps::certify::existing;
use tenantctl::registry::LocalFunctions;
use tenantctl::verify::verify_ledger;

const GONE: &str = "tenant_004_departed_customer";
const STAYS: &[&str] = &[
    "tenant_001_acme_corp",
    "tenant_002_globex",
    "tenant_004_departed_customerx",
];

async fn seeded() -> e2e::LocalWorld {
    let w = local_world().await;
    seed(&w.deps, GONE, ALL, 30).await;
    for t in STAYS {
        seed(&w.deps, t, ALL, 7).await;
    }
    w
}

#[tokio::test]
async fn erasure_leaves_nothing_and_touches_no_one_else() {
    let w = seeded().await;
    let before = counts(&w.deps, STAYS).await;
    let exec = run(&w.deps, request("req-1", GONE, ALL)).await;
    assert_eq!(
        exec.status,
        Status::Succeeded,
        "{:?} {:?}",
        exec.error,
        exec.cause
    );
    let after_gone = counts(&w.deps, &[GONE]).await;
    assert!(after_gone.values().all(|n| *n == 0), "{after_gone:?}");
    assert_eq!(
        counts(&w.deps, STAYS).await,
        before,
        "other tenants untouched"
    );

    let out = exec.output.expect("output");
    let cert = &out["certificate"]["certificate"];
    assert_eq!(cert["outcome"], "erased");
    assert_eq!(cert["details"]["records_erased_total"], 30 * 7);
    assert_eq!(cert["details"]["systems"].as_array().map(Vec::len), Some(7));
    let s3 = cert["details"]["systems"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["system"] == "s3"))
        .cloned()
        .expect("s3");
    assert_eq!(s3["method"], "delete-all-versions");
    let backups = cert["details"]["systems"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["system"] == "backups"))
        .cloned()
        .expect("b");
    assert_eq!(backups["method"], "delete-backups-and-destroy-key");
    assert_eq!(
        backups["windows"][0]["what"],
        format!("backup key local:{GONE}")
    );
    let r = verify_ledger(&*w.deps.ledger, &key_ring(&w.deps).await, None, false)
        .await
        .expect("verify");
    assert_eq!(r[0].outcome, Ok(1));
}

#[tokio::test]
async fn the_history_has_the_expected_states() {
    let w = seeded().await;
    let exec = run(&w.deps, request("req-h", GONE, ALL)).await;
    let states = exec.states_entered();
    let expected_prefix = [
        "ValidateRequest",
        "AlreadyCertified",
        "CheckLegalHold",
        "LegalHoldActive?",
        "EraseSystems",
    ];
    assert_eq!(&states[..5], &expected_prefix);
    assert_eq!(states.iter().filter(|s| *s == "DeleteSystem").count(), 7);
    assert_eq!(states.iter().filter(|s| *s == "SystemErased").count(), 7);
    assert_eq!(
        &states[states.len() - 2..],
        ["VerifyErasure", "SignCertificate"]
    );
    let kinds: Vec<&str> = exec.history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"ExecutionStarted"));
    assert_eq!(kinds.last(), Some(&"ExecutionSucceeded"));
    for k in [
        "MapStateStarted",
        "MapIterationStarted",
        "MapIterationSucceeded",
        "MapStateSucceeded",
        "LambdaFunctionScheduled",
        "LambdaFunctionSucceeded",
    ] {
        assert!(kinds.contains(&k), "{k} missing");
    }
}

#[tokio::test]
async fn a_legal_hold_erases_nothing_and_records_a_refusal() {
    let w = seeded().await;
    w.deps
        .holds
        .place(&LegalHold {
            tenant_id: GONE.into(),
            hold_id: "CASE-7".into(),
            reason: "litigation".into(),
            placed_at: "2026-01-01T00:00:00Z".into(),
            released_at: None,
        })
        .await
        .expect("hold");
    let before = counts(&w.deps, &[GONE]).await;
    let exec = run(&w.deps, request("req-held", GONE, ALL)).await;
    assert_eq!(exec.error.as_deref(), Some("LegalHoldActive"));
    assert_eq!(counts(&w.deps, &[GONE]).await, before, "nothing erased");
    let entries = w
        .deps
        .ledger
        .entries(ERASURE_CHAIN, 0, 10)
        .await
        .expect("entries");
    assert_eq!(entries.len(), 1);
    let e: Value = serde_json::from_str(&entries[0].json).expect("json");
    assert_eq!(e["certificate"]["certificate"]["outcome"], "refused");
    assert_eq!(
        e["certificate"]["certificate"]["details"]["legal_holds"],
        json!(["CASE-7"])
    );
    assert!(
        !entries[0].json.contains("litigation"),
        "hold reasons never reach the ledger"
    );

    // Once released, the same request erases and is certified.
    w.deps
        .holds
        .release(
            &TenantId::parse(GONE).expect("t"),
            "CASE-7",
            "2026-02-01T00:00:00Z",
        )
        .await
        .expect("release");
    let exec = run(&w.deps, request("req-held", GONE, ALL)).await;
    assert_eq!(exec.status, Status::Succeeded, "{:?}", exec.cause);
}

#[tokio::test]
async fn a_hold_placed_mid_erasure_stops_it() {
    let w = seeded().await;
    let deps = w.deps.clone();
    let placed = std::sync::atomic::AtomicBool::new(false);
    let holds = deps.holds.clone();
    let hook: Hook = Box::new(move |f, _input, _res| {
        if f == "check-legal-hold" && !placed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let h = holds.clone();
            // Placed right after the check passed, before any system is erased.
            futures_block(async move {
                h.place(&LegalHold {
                    tenant_id: GONE.into(),
                    hold_id: "LATE-1".into(),
                    reason: "r".into(),
                    placed_at: "t".into(),
                    released_at: None,
                })
                .await
                .expect("hold")
            });
        }
        None
    });
    let before = counts(&w.deps, &[GONE]).await;
    let exec = run_with(
        Arc::new(Hooked {
            inner: LocalFunctions::new(deps.clone()),
            deps: deps.clone(),
            hook,
        }),
        request("req-late", GONE, ALL),
    )
    .await;
    assert_eq!(exec.error.as_deref(), Some("LegalHoldActive"));
    assert_eq!(counts(&w.deps, &[GONE]).await, before);
    assert!(exec.states_entered().contains(&"RecordRefusal".to_owned()));
}

fn futures_block<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt")
            .block_on(f)
    })
    .join()
    .expect("join");
}

#[tokio::test]
async fn residue_written_between_delete_and_verify_blocks_the_certificate() {
    let w = seeded().await;
    let hook: Hook = Box::new(|f, input, res| {
        let done = res
            .as_ref()
            .ok()
            .and_then(|v| v.get("done"))
            .and_then(Value::as_bool)
            == Some(true);
        (f == "delete-system" && input["system"] == "pinecone" && done)
            .then(|| HookAction::Write(GONE.into(), "pinecone".into(), "vec-late".into()))
    });
    let deps = w.deps.clone();
    let exec = run_with(
        Arc::new(Hooked {
            inner: LocalFunctions::new(deps.clone()),
            deps: deps.clone(),
            hook,
        }),
        request("req-r", GONE, ALL),
    )
    .await;
    assert_eq!(
        exec.error.as_deref(),
        Some("ResidualDataFound"),
        "{:?}",
        exec.cause
    );
    assert!(e2e::task_cause(&exec).contains("pinecone"));
    assert!(
        existing(&*w.deps.ledger, ERASURE_CHAIN, "req-r")
            .await
            .expect("ledger")
            .is_none(),
        "no erased certificate"
    );
    // What was erased is on the ledger all the same, and where residue remains.
    let bodies = e2e::erasure_bodies(&w.deps).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["outcome"], "incomplete");
    assert_eq!(
        bodies[0]["details"]["residue"],
        json!([{"system": "pinecone", "records": 1}])
    );
    assert!(bodies[0]["details"]["records_erased_total"].as_u64() > Some(0));

    // Erased again and re-verified, the same request is certified.
    let exec = run(&w.deps, request("req-r", GONE, ALL)).await;
    assert_eq!(exec.status, Status::Succeeded);
}

#[tokio::test]
async fn residue_in_a_system_the_request_did_not_name_is_found() {
    let w = seeded().await;
    // The request forgets analytics, where the tenant still has data.
    let systems: Vec<&str> = ALL.iter().copied().filter(|s| *s != "analytics").collect();
    let before = counts(&w.deps, &[GONE]).await;
    let exec = run(&w.deps, request("req-u", GONE, &systems)).await;
    assert_eq!(exec.error.as_deref(), Some("ResidualDataFound"));
    assert!(e2e::task_cause(&exec).contains("analytics"));
    // Data was destroyed before discovery found the rest: the ledger says so.
    let bodies = e2e::erasure_bodies(&w.deps).await;
    assert_eq!(bodies.len(), 1, "one certificate");
    let d = &bodies[0]["details"];
    assert_eq!(bodies[0]["outcome"], "incomplete");
    assert_eq!(d["stopped_by"], "ResidualDataFound");
    let erased: u64 = systems
        .iter()
        .map(|s| before[&(GONE.to_owned(), (*s).to_owned())])
        .sum();
    assert_eq!(d["records_erased_total"].as_u64(), Some(erased));
    assert_eq!(d["residue"][0]["system"], "analytics");
}

#[tokio::test]
async fn a_certified_request_returns_its_certificate_and_erases_nothing() {
    let w = seeded().await;
    let first = run(&w.deps, request("req-i", GONE, ALL)).await;
    assert_eq!(first.status, Status::Succeeded);
    // New data arrives after the certificate; replaying the request must not touch it.
    seed(&w.deps, GONE, &["redis"], 3).await;
    let second = run(&w.deps, request("req-i", GONE, ALL)).await;
    assert_eq!(second.status, Status::Succeeded);
    let out = second.output.clone().expect("output");
    assert_eq!(out["already_recorded"], true);
    assert_eq!(
        out["certificate"],
        first.output.expect("first")["certificate"]
    );
    assert_eq!(
        counts(&w.deps, &[GONE]).await[&(GONE.to_owned(), "redis".to_owned())],
        3
    );
    assert!(!second.states_entered().contains(&"EraseSystems".to_owned()));
    assert_eq!(
        w.deps
            .ledger
            .head(ERASURE_CHAIN)
            .await
            .expect("head")
            .map(|h| h.seq),
        Some(0)
    );
}

#[tokio::test]
async fn delete_system_resumes_after_throttling_and_partial_progress() {
    let w = seeded().await;
    seed(&w.deps, GONE, &["s3"], 2500).await; // more than one batch of 1000
    let calls = std::sync::atomic::AtomicU32::new(0);
    // The second delete-system call on s3 is throttled after it erased a batch: the
    // Retry repeats it and the loop finishes cleanly.
    let hook: Hook = Box::new(move |f, input, _res| {
        if f == "delete-system"
            && input["system"] == "s3"
            && calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        {
            return Some(HookAction::Fail(TaskError {
                error: "Throttled".into(),
                cause: "SlowDown".into(),
            }));
        }
        None
    });
    let deps = w.deps.clone();
    let exec = run_with(
        Arc::new(Hooked {
            inner: LocalFunctions::new(deps.clone()),
            deps: deps.clone(),
            hook,
        }),
        request("req-t", GONE, &["s3"]),
    )
    .await;
    // The rest of the catalog still holds the tenant; erase those too in a second request.
    assert_eq!(exec.error.as_deref(), Some("ResidualDataFound"));
    assert_eq!(
        counts(&w.deps, &[GONE]).await[&(GONE.to_owned(), "s3".to_owned())],
        0,
        "s3 fully erased despite the throttle"
    );
    let failed = exec
        .history
        .iter()
        .filter(|e| e.kind == "LambdaFunctionFailed" && e.details["error"] == "Throttled")
        .count();
    assert_eq!(failed, 1, "one throttled call, retried");
    let exec = run(&w.deps, request("req-t2", GONE, ALL)).await;
    assert_eq!(exec.status, Status::Succeeded);
}

#[tokio::test]
async fn a_short_budget_loops_through_continuations() {
    let w = seeded().await;
    seed(&w.deps, GONE, &["analytics"], 3500).await;
    let exec = sim::Simulator::new(Arc::new(LocalFunctions::new(w.deps.clone())))
        .with_task_budget(std::time::Duration::ZERO)
        .run(
            &e2e::erasure_machine(),
            "req-b",
            request("req-b", GONE, ALL),
        )
        .await;
    assert_eq!(exec.status, Status::Succeeded, "{:?}", exec.cause);
    let analytics_passes = exec
        .history
        .iter()
        .filter(|e| e.kind == "TaskStateEntered")
        .filter(|e| {
            e.details["input"]
                .as_str()
                .unwrap_or_default()
                .contains("\"analytics\"")
        })
        .count();
    assert!(
        analytics_passes >= 4,
        "3,500 records in batches of 1,000 need 4 passes, saw {analytics_passes}"
    );
    let cert = &exec.output.expect("out")["certificate"]["certificate"];
    let a = cert["details"]["systems"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["system"] == "analytics"))
        .cloned()
        .expect("a");
    // The 3,500 keys overwrite the 30 seeded ones (same keys, not versioned).
    assert_eq!(
        a["records_erased"], 3500,
        "counts accumulate across continuations"
    );
}

#[tokio::test]
async fn malformed_requests_are_invalid_and_change_nothing() {
    let w = seeded().await;
    let before = counts(&w.deps, &[GONE]).await;
    let bad = vec![
        json!({"tenant_id": GONE, "reason": "x", "systems": ["s3"]}),
        json!({"request_id": "r", "tenant_id": GONE, "reason": "x", "systems": ["mongodb"]}),
        json!({"request_id": "r", "tenant_id": "tenant/../004", "reason": "x", "systems": ["s3"]}),
        json!({"request_id": "r", "tenant_id": "..", "reason": "x", "systems": ["s3"]}),
        json!({"request_id": "r", "tenant_id": "", "reason": "x", "systems": ["s3"]}),
        json!({"request_id": "r", "tenant_id": GONE, "reason": "x".repeat(1_000_000), "systems": ["s3"]}),
        json!({"request_id": "r", "tenant_id": GONE, "reason": "x", "systems": "s3"}),
        json!({"request_id": 42, "tenant_id": GONE, "reason": "x", "systems": ["s3"]}),
        json!({"request_id": "r", "tenant_id": GONE, "reason": "x", "systems": [1, 2]}),
        json!("just a string"),
    ];
    for b in bad {
        let exec = run(&w.deps, b.clone()).await;
        let shown: String = b.to_string().chars().take(80).collect();
        assert_eq!(exec.error.as_deref(), Some("InvalidRequest"), "{shown}");
        assert_eq!(exec.states_entered(), ["ValidateRequest"], "{shown}");
    }
    assert_eq!(counts(&w.deps, &[GONE]).await, before);
    assert!(
        ledger_is_empty(&w.deps).await,
        "no certificate on the ledger"
    );
}

#[tokio::test]
async fn sign_certificate_refuses_before_verification() {
    let w = seeded().await;
    let budget = tenant_runtime::Budget::of(std::time::Duration::from_secs(5));
    let req = request("req-s", GONE, &["s3", "redis"]);
    let e = sign_certificate::handler(
        json!({"request": req, "outcome": "erased"}),
        &w.deps,
        budget,
    )
    .await
    .expect_err("no verification");
    assert_eq!(e.error_type(), "VerificationIncomplete");
    let partial = json!([{"system": "s3", "kind": "objects", "method": "delete-all-versions", "records_erased": 1, "residual_records": 0, "verified_at": "t"}]);
    let e = sign_certificate::handler(
        json!({"request": req, "outcome": "erased", "verifications": partial}),
        &w.deps,
        budget,
    )
    .await
    .expect_err("partial");
    assert_eq!(e.error_type(), "VerificationIncomplete");
    let dirty = json!([
        {"system": "s3", "kind": "objects", "method": "delete-all-versions", "records_erased": 1, "residual_records": 0, "verified_at": "t"},
        {"system": "redis", "kind": "key-value", "method": "delete-records", "records_erased": 1, "residual_records": 2, "verified_at": "t"}]);
    let e = sign_certificate::handler(
        json!({"request": req, "outcome": "erased", "verifications": dirty}),
        &w.deps,
        budget,
    )
    .await
    .expect_err("dirty");
    assert_eq!(e.error_type(), "ResidualDataFound");
    let e = sign_certificate::handler(
        json!({"request": req, "outcome": "refused"}),
        &w.deps,
        budget,
    )
    .await
    .expect_err("no hold");
    assert_eq!(e.error_type(), "InvalidRequest");
    assert!(
        ledger_is_empty(&w.deps).await,
        "no certificate on the ledger"
    );
}

#[tokio::test]
async fn tampering_with_any_stored_entry_is_found_at_its_seq() {
    let w = seeded().await;
    for i in 0..4 {
        let t = format!("tenant_t{i}");
        seed(&w.deps, &t, &["redis"], 2).await;
        let exec = run(&w.deps, request(&format!("req-{i}"), &t, &["redis"])).await;
        assert_eq!(exec.status, Status::Succeeded);
    }
    let world =
        stores::embedded::World::open(&tenantctl::world::world_file(w.dir.path())).expect("world");
    let ring = key_ring(&w.deps).await;
    let originals = w
        .deps
        .ledger
        .entries(ERASURE_CHAIN, 0, 10)
        .await
        .expect("entries");
    for e in &originals {
        let (seq, raw) = (&e.seq, &e.json);
        for pos in (0..raw.len()).step_by(97) {
            let mut bytes = raw.clone().into_bytes();
            bytes[pos] = if bytes[pos] == b'1' { b'2' } else { b'1' };
            let Ok(tampered) = String::from_utf8(bytes) else {
                continue;
            };
            if tampered == *raw {
                continue;
            }
            world
                .execute_raw(
                    "UPDATE ledger_entries SET body = ?1 WHERE chain = ?2 AND seq = ?3",
                    &[&tampered, &ERASURE_CHAIN, &(*seq as i64)],
                )
                .expect("tamper");
            let r = verify_ledger(&*w.deps.ledger, &ring, Some(ERASURE_CHAIN), false)
                .await
                .expect("verify");
            let fault = r[0].outcome.clone().expect_err("tamper must be found");
            assert_eq!(fault.seq, *seq, "byte {pos} of seq {seq}: {}", fault.reason);
            world
                .execute_raw(
                    "UPDATE ledger_entries SET body = ?1 WHERE chain = ?2 AND seq = ?3",
                    &[raw, &ERASURE_CHAIN, &(*seq as i64)],
                )
                .expect("restore");
        }
    }
    // A deleted entry is a gap, found at its seq.
    world
        .execute_raw("DELETE FROM ledger_entries WHERE seq = 2", &[])
        .expect("delete");
    let r = verify_ledger(&*w.deps.ledger, &ring, Some(ERASURE_CHAIN), false)
        .await
        .expect("verify");
    assert_eq!(r[0].outcome.clone().expect_err("gap").seq, 2);
}

#[tokio::test]
async fn a_certificate_verifies_with_openssl_and_the_published_key_only() {
    let w = seeded().await;
    let exec = run(&w.deps, request("req-o", GONE, ALL)).await;
    let cert = exec.output.expect("out")["certificate"].clone();
    let dir = tempfile::tempdir().expect("dir");
    let pem = lifecycle::certificate::public_key_to_pem(
        w.deps.signer().await.expect("signer").public_key(),
    )
    .expect("pem");
    std::fs::write(dir.path().join("key.pem"), pem).expect("key");
    let body = lifecycle::certificate::canonical_bytes(&cert["certificate"]).expect("jcs");
    std::fs::write(dir.path().join("body.json"), &body).expect("body");
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(cert["signature"]["der_base64"].as_str().expect("b64"))
        .expect("der");
    std::fs::write(dir.path().join("sig.der"), &der).expect("sig");
    let ok = std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "key.pem",
            "-signature",
            "sig.der",
            "body.json",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl must be installed (scripts/bootstrap installs it)");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Verified OK"));
    // One changed byte in the body and openssl refuses it.
    let mut bad = body.clone();
    let i = bad.iter().position(|b| b.is_ascii_digit()).expect("digit");
    bad[i] = if bad[i] == b'9' { b'8' } else { b'9' };
    std::fs::write(dir.path().join("body.json"), &bad).expect("body");
    let no = std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "key.pem",
            "-signature",
            "sig.der",
            "body.json",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl");
    assert!(!no.status.success());
}
