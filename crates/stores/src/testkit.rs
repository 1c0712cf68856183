//! The one conformance suite every backend passes, the way `object_store` runs the same
//! tests on its in-memory, local and S3 stores. Each function panics on the first breach.

use crate::certify::{Draft, certify};
use crate::{
    Clock, Ledger, LegalHold, LegalHolds, NewEntry, Signer, StoreError, SystemClock, TenantStore,
};
use lifecycle::TenantId;
use lifecycle::certificate::local_key_id;
use lifecycle::ledger::{ChainVerifier, Head, KeyRing};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier as _;
use rand_core::RngCore;
use std::sync::Arc;
use std::time::Instant;

/// A fresh random suffix so suites can share a backend without seeing each other's data.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", rand_core::OsRng.next_u32())
}

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("test tenant id is valid")
}

/// Records of a tenant as the suite seeds them; returns the expected `count`.
async fn seed(store: &dyn TenantStore, t: &TenantId, n: usize) -> u64 {
    for i in 0..n {
        store
            .put(t, &format!("doc/{i:03}"), format!("{t}:{i}").as_bytes())
            .await
            .expect("put");
    }
    n as u64
}

/// The `TenantStore` contract. `store` must erase in batches of at most 10 records so the
/// deadline paths are exercised with little data.
pub async fn tenant_store_suite(store: &dyn TenantStore) {
    let base = unique("ck");
    let a = tid(&format!("{base}_a"));
    let ab = tid(&format!("{base}_ab")); // shares a's id as a prefix: must never be touched
    let b = tid(&format!("{base}_b"));
    let versioned = store.capabilities().versioned;

    let mut expect_a = seed(store, &a, 25).await;
    for v in 0..3 {
        store
            .put(&a, "multi", format!("v{v}").as_bytes())
            .await
            .expect("put multi");
    }
    store.put(&a, "gone", b"x").await.expect("put gone");
    store.delete(&a, "gone").await.expect("delete gone");
    expect_a += if versioned { 3 + 2 } else { 1 };
    let expect_ab = seed(store, &ab, 5).await;
    let expect_b = seed(store, &b, 7).await;

    assert_eq!(
        store.count(&a).await.expect("count a"),
        expect_a,
        "{}: count counts every version",
        store.name()
    );
    assert_eq!(store.count(&ab).await.expect("count ab"), expect_ab);
    assert_eq!(
        store.get(&a, "multi").await.expect("get"),
        Some(b"v2".to_vec()),
        "get returns the newest version"
    );
    assert_eq!(
        store.get(&a, "gone").await.expect("get gone"),
        None,
        "a deleted record reads as absent"
    );
    assert_eq!(store.get(&a, "never").await.expect("get never"), None);

    // An expired deadline still erases one batch, so loops always progress.
    let first = store.erase(&a, Instant::now()).await.expect("erase");
    assert!(
        first.erased >= 1,
        "{}: an erase call must make progress",
        store.name()
    );
    assert!(
        !first.complete,
        "{}: 30 records cannot go in one batch of 10",
        store.name()
    );
    let mut erased = first.erased;
    let mut calls = 1;
    loop {
        let pass = store.erase(&a, Instant::now()).await.expect("erase again");
        erased += pass.erased;
        calls += 1;
        assert!(calls < 100, "erase does not converge");
        if pass.complete {
            break;
        }
    }
    assert_eq!(
        erased,
        expect_a,
        "{}: every version and marker is counted once",
        store.name()
    );
    assert_eq!(
        store.count(&a).await.expect("count a after"),
        0,
        "{}: nothing of the tenant remains",
        store.name()
    );
    assert_eq!(
        store.count(&ab).await.expect("count ab after"),
        expect_ab,
        "a prefix-sharing tenant is untouched"
    );
    assert_eq!(
        store.count(&b).await.expect("count b after"),
        expect_b,
        "other tenants are untouched"
    );
    assert_eq!(
        store.get(&b, "doc/003").await.expect("get b"),
        Some(format!("{b}:3").into_bytes())
    );

    // Idempotent: erasing an erased tenant does nothing and says it is complete.
    let again = store
        .erase(&a, Instant::now() + std::time::Duration::from_secs(30))
        .await
        .expect("erase idle");
    assert_eq!((again.erased, again.complete), (0, true));

    // Residue written after erasure is visible to count (verification relies on this).
    store.put(&a, "late", b"late").await.expect("put late");
    assert_eq!(store.count(&a).await.expect("count late"), 1);
    let done = store
        .erase(&a, Instant::now() + std::time::Duration::from_secs(30))
        .await
        .expect("erase late");
    assert_eq!((done.erased, done.complete), (1, true));
    for t in [&ab, &b] {
        while !store
            .erase(t, Instant::now())
            .await
            .expect("cleanup")
            .complete
        {}
    }
}

/// The `LegalHolds` contract.
pub async fn legal_holds_suite(holds: &dyn LegalHolds) {
    let t = tid(&unique("hold"));
    let other = tid(&unique("hold"));
    let now = SystemClock.now_rfc3339();
    assert!(holds.active(&t).await.expect("active").is_empty());
    let hold = LegalHold {
        tenant_id: t.to_string(),
        hold_id: "case-42".into(),
        reason: "litigation".into(),
        placed_at: now.clone(),
        released_at: None,
    };
    holds.place(&hold).await.expect("place");
    holds
        .place(&LegalHold {
            hold_id: "case-43".into(),
            ..hold.clone()
        })
        .await
        .expect("place 2");
    let active = holds.active(&t).await.expect("active");
    assert_eq!(
        active
            .iter()
            .map(|h| h.hold_id.as_str())
            .collect::<Vec<_>>(),
        ["case-42", "case-43"]
    );
    assert!(
        holds.active(&other).await.expect("other").is_empty(),
        "holds are per tenant"
    );
    holds.release(&t, "case-42", &now).await.expect("release");
    assert!(
        matches!(
            holds.release(&t, "case-42", &now).await,
            Err(StoreError::NotFound(_))
        ),
        "double release"
    );
    assert!(matches!(
        holds.release(&t, "nope", &now).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(holds.active(&t).await.expect("active").len(), 1);
    holds.place(&hold).await.expect("re-place");
    assert_eq!(
        holds.active(&t).await.expect("active").len(),
        2,
        "a released hold can be placed again"
    );
}

/// The `Signer` contract: DER ECDSA P-256/SHA-256 over the message, key id from the key.
/// `long_messages` also signs 10 kB (KMS's DIGEST path, which moto computes wrongly).
pub async fn signer_suite(signer: &dyn Signer, long_messages: bool) {
    let msg = br#"{"a":1,"b":"x"}"#;
    let der = signer.sign(msg).await.expect("sign");
    let sig = Signature::from_der(&der).expect("DER signature");
    signer
        .public_key()
        .verify(msg, &sig)
        .expect("verifies under the public key");
    assert!(signer.public_key().verify(b"other", &sig).is_err());
    assert_eq!(
        signer.key_id(),
        local_key_id(signer.public_key()).expect("id")
    );
    if !long_messages {
        return;
    }
    let long = vec![b'x'; 10_000];
    let der = signer.sign(&long).await.expect("sign long");
    let sig = Signature::from_der(&der).expect("DER");
    signer
        .public_key()
        .verify(&long, &sig)
        .expect("long messages verify too");
}

fn draft(chain: &str, request: &str, unique: bool) -> Draft {
    Draft {
        kind: chain.to_owned(),
        outcome: "erased".into(),
        request_id: request.to_owned(),
        tenant_id: "t1".into(),
        details: serde_json::json!({"records_erased_total": 1}),
        unique,
    }
}

/// The `Ledger` contract: conditional append, request uniqueness, ordered reads, and no
/// fork or gap under concurrent appends.
pub async fn ledger_suite(ledger: Arc<dyn Ledger>, signer: Arc<dyn Signer>) {
    let chain = unique("ck-chain").replace('_', "-");
    let clock = SystemClock;
    assert_eq!(ledger.head(&chain).await.expect("head"), None);
    let bogus = Head {
        seq: 0,
        hash: "f".repeat(64),
    };
    let e = ledger
        .append(
            &chain,
            Some(&bogus),
            NewEntry {
                seq: 1,
                entry_hash: "x",
                json: "{}",
                unique_request: None,
            },
        )
        .await;
    assert!(
        matches!(e, Err(StoreError::Conflict(_))),
        "append on a head that does not exist: {e:?}"
    );

    let first = certify(&*ledger, &*signer, &clock, &draft(&chain, "req-1", true))
        .await
        .expect("certify");
    assert!(!first.already_recorded);
    assert_eq!(first.entry.seq, 0);
    let again = certify(&*ledger, &*signer, &clock, &draft(&chain, "req-1", true))
        .await
        .expect("certify again");
    assert!(again.already_recorded, "a unique request is recorded once");
    assert_eq!(again.entry, first.entry);
    let h0 = ledger.head(&chain).await.expect("head").expect("some");
    assert_eq!(
        h0,
        Head {
            seq: 0,
            hash: first.entry.entry_hash.clone()
        }
    );

    certify(&*ledger, &*signer, &clock, &draft(&chain, "req-2", false))
        .await
        .expect("second");
    let stale = ledger
        .append(
            &chain,
            Some(&h0),
            NewEntry {
                seq: 1,
                entry_hash: "y",
                json: "{}",
                unique_request: None,
            },
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "stale head must conflict: {stale:?}"
    );

    // Concurrent appenders: every append lands, none forks the chain, none leaves a gap.
    let tasks = 6;
    let each = 4;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (l, s, c) = (ledger.clone(), signer.clone(), chain.clone());
        handles.push(tokio::spawn(async move {
            for i in 0..each {
                certify(
                    &*l,
                    &*s,
                    &SystemClock,
                    &draft(&c, &format!("race-{t}-{i}"), true),
                )
                .await
                .expect("race append");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let total = 2 + tasks * each;
    let head = ledger.head(&chain).await.expect("head").expect("some");
    assert_eq!(head.seq, total as u64 - 1, "no append lost");
    let entries = ledger.entries(&chain, 0, 10_000).await.expect("entries");
    assert_eq!(entries.len(), total);
    let mut ring = KeyRing::default();
    ring.insert(signer.key_id(), *signer.public_key());
    let mut v = ChainVerifier::new(&chain, &ring);
    for (seq, raw) in &entries {
        v.check(*seq, raw).expect("chain verifies");
    }
    assert_eq!(v.finish(Some(&head)).expect("head matches"), total as u64);

    let window = ledger.entries(&chain, 3, 2).await.expect("window");
    assert_eq!(window.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
    assert!(ledger.chains().await.expect("chains").contains(&chain));
    let found = ledger
        .find_request(&chain, "race-2-1")
        .await
        .expect("find")
        .expect("recorded");
    assert!(found.contains("race-2-1"));
    assert_eq!(
        ledger.find_request(&chain, "req-2").await.expect("find"),
        None,
        "non-unique requests are not indexed"
    );
}
