//! The one conformance suite every backend passes, the way `object_store` runs the same
//! tests on its in-memory, local and S3 stores. Each function panics on the first breach.

use crate::certify::{Draft, certify};
use lifecycle::TenantId;
use lifecycle::certificate::local_key_id;
use lifecycle::ledger::{ChainVerifier, Head, KeyRing};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier as _;
use ports::{
    Clock, Ledger, LegalHold, LegalHolds, NewEntry, Signer, StoreError, SystemClock, TenantStore,
};
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
    // A store that deletes whole units (a log stream) may finish in one call.
    assert!(
        !first.complete || !store.capabilities().single_record_delete,
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
        frontier: vec![],
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
                leaf: [0; 32],
            },
        )
        .await;
    assert!(
        matches!(
            e,
            Err(StoreError::Conflict {
                what: ports::Contended::LedgerHead { .. },
                ..
            })
        ),
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
            hash: first.entry.entry_hash.clone(),
            frontier: vec![hex::encode(
                lifecycle::ledger::leaf_of(&first.entry.certificate).expect("leaf")
            )],
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
                leaf: [0; 32],
            },
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Conflict {
                what: ports::Contended::LedgerHead { .. },
                ..
            })
        ),
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
    let mut v = ChainVerifier::new(&chain, &ring).with_threads(2);
    v.check_batch(&entries).expect("chain verifies");
    assert_eq!(v.finish(Some(&head)).expect("head matches"), total as u64);

    let window = ledger.entries(&chain, 3, 2).await.expect("window");
    assert_eq!(window.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
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

    // The Merkle tree the backend kept in step with the chain: its nodes give proofs that
    // verify against the root the verifier rebuilt from the entries alone.
    let size = total as u64;
    let root = v_root(&entries);
    assert_eq!(
        crate::checkpoint::root_at(&*ledger, &chain, size)
            .await
            .expect("root"),
        root
    );
    for (i, e) in entries.iter().enumerate() {
        let doc: serde_json::Value = serde_json::from_str(&e.json).expect("json");
        let leaf = lifecycle::ledger::leaf_of_value(&doc["certificate"]).expect("leaf");
        let proof = crate::checkpoint::inclusion_proof(&*ledger, &chain, i as u64, size)
            .await
            .expect("proof");
        lifecycle::tree::verify_inclusion(i as u64, size, &leaf, &proof, &root)
            .expect("inclusion verifies");
    }
    for old in [1u64, 2, 5, size - 1] {
        let r1 = crate::checkpoint::root_at(&*ledger, &chain, old)
            .await
            .expect("old root");
        let proof = crate::checkpoint::consistency_proof(&*ledger, &chain, old, size)
            .await
            .expect("proof");
        lifecycle::tree::verify_consistency(old, size, &r1, &root, &proof)
            .expect("consistency verifies");
    }
}

fn v_root(entries: &[lifecycle::ledger::StoredEntry]) -> lifecycle::tree::Hash {
    let mut t = lifecycle::tree::Frontier::default();
    for e in entries {
        let doc: serde_json::Value = serde_json::from_str(&e.json).expect("json");
        t.push(lifecycle::ledger::leaf_of_value(&doc["certificate"]).expect("leaf"));
    }
    t.root()
}

/// The `RequestLog` contract: one claim per request id, atomically, even under a race of
/// different digests; progress adds up and keeps the first count found.
pub async fn request_log_suite(log: Arc<dyn ports::RequestLog>) {
    use ports::Claim;
    let id = unique("req").replace('_', "-");
    let at = "2026-01-01T00:00:00Z";
    assert_eq!(
        log.claim(&id, "d1", "why", at).await.expect("claim"),
        Claim::New
    );
    assert_eq!(
        log.claim(&id, "d1", "why", at).await.expect("again"),
        Claim::Same
    );
    assert_eq!(
        log.claim(&id, "d2", "why", at).await.expect("other"),
        Claim::Other("d1".into())
    );
    // Eight racers with eight digests: exactly one wins, all others see the winner's.
    let raced = unique("race").replace('_', "-");
    let mut handles = Vec::new();
    for i in 0..8 {
        let (l, r) = (log.clone(), raced.clone());
        handles.push(tokio::spawn(async move {
            (
                i,
                l.claim(&r, &format!("digest-{i}"), "", at)
                    .await
                    .expect("claim"),
            )
        }));
    }
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for h in handles {
        let (i, c) = h.await.expect("task");
        match c {
            Claim::New => winners.push(format!("digest-{i}")),
            Claim::Other(d) => seen.push(d),
            Claim::Same => panic!("a different digest was taken as the same"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert!(seen.iter().all(|d| *d == winners[0]));

    assert!(log.progress(&id).await.expect("progress").is_empty());
    let p = log
        .record_pass(&id, "s3", Some(10), 4, false)
        .await
        .expect("pass");
    assert_eq!(
        (p.records_found, p.records_erased, p.done),
        (Some(10), 4, false)
    );
    let p = log
        .record_pass(&id, "s3", Some(99), 6, true)
        .await
        .expect("pass");
    assert_eq!(
        (p.records_found, p.records_erased, p.done),
        (Some(10), 10, true)
    );
    log.record_pass(&id, "redis", None, 0, true)
        .await
        .expect("pass");
    let all = log.progress(&id).await.expect("progress");
    assert_eq!(
        all.iter().map(|p| p.system.as_str()).collect::<Vec<_>>(),
        ["redis", "s3"]
    );
    assert_eq!(all[1].certified_count(), 10);
}

/// The `CheckpointStore` contract: write-once per size, the same text again is fine, the
/// latest is the largest size, and names that are paths are refused.
pub async fn checkpoint_store_suite(store: &dyn ports::CheckpointStore) {
    let chain = unique("cp").replace('_', "-");
    assert_eq!(store.latest(&chain).await.expect("latest"), None);
    store.publish(&chain, 2, "two\n").await.expect("publish");
    store.publish(&chain, 10, "ten\n").await.expect("publish");
    store.publish(&chain, 9, "nine\n").await.expect("publish");
    assert_eq!(
        store.latest(&chain).await.expect("latest").as_deref(),
        Some("ten\n")
    );
    store
        .publish(&chain, 10, "ten\n")
        .await
        .expect("same text again");
    assert!(matches!(
        store.publish(&chain, 10, "forged\n").await,
        Err(StoreError::Conflict {
            what: ports::Contended::Checkpoint { .. },
            ..
        })
    ));
    assert_eq!(
        store.latest(&chain).await.expect("latest").as_deref(),
        Some("ten\n")
    );
    assert!(store.chains().await.expect("chains").contains(&chain));
    for bad in ["../x", "a/b", "", "UPPER"] {
        assert!(store.publish(bad, 1, "x\n").await.is_err(), "{bad:?}");
    }
}

/// The contract of a [`ports::migrate::Dataset`] and its [`ports::migrate::ChangeFeed`]:
/// revisions grow by one per primary write, replicas refuse older revisions, tombstones
/// stay, scans page in key order, every primary write is on the feed and only those.
pub async fn dataset_suite(
    ds: &dyn ports::migrate::Dataset,
    feed: &dyn ports::migrate::ChangeFeed,
) {
    use ports::migrate::Rec;
    let t = TenantId::parse(&unique("mig")).expect("tenant");
    ds.provision(&t).await.expect("provision");
    assert!(
        !ds.provision(&t).await.expect("provision again"),
        "provision is idempotent"
    );
    assert_eq!(ds.read(&t, "a").await.expect("read"), None);
    let head0 = feed.head(&t).await.expect("head");
    assert_eq!(ds.write(&t, "a", Some(b"1")).await.expect("write"), 1);
    assert_eq!(ds.write(&t, "a", Some(b"2")).await.expect("write"), 2);
    assert_eq!(ds.write(&t, "b", None).await.expect("delete"), 1);
    let a = ds.read(&t, "a").await.expect("read").expect("a");
    assert_eq!((a.rev, a.body.as_deref()), (2, Some(&b"2"[..])));
    let b = ds.read(&t, "b").await.expect("read").expect("tombstone");
    assert_eq!((b.rev, b.body), (1, None), "a delete leaves a tombstone");

    // Replica writes are conditional on the revision.
    let old = Rec {
        key: "a".into(),
        rev: 1,
        body: Some(b"stale".to_vec()),
    };
    assert!(
        !ds.apply(&t, &old, false).await.expect("apply"),
        "older is refused"
    );
    let same = Rec {
        key: "a".into(),
        rev: 2,
        body: Some(b"fixed".to_vec()),
    };
    assert!(
        !ds.apply(&t, &same, false).await.expect("apply"),
        "equal is refused"
    );
    assert!(
        ds.apply(&t, &same, true).await.expect("apply"),
        "equal replaces when asked"
    );
    let newer = Rec {
        key: "a".into(),
        rev: 9,
        body: Some(b"9".to_vec()),
    };
    assert!(ds.apply(&t, &newer, false).await.expect("apply"));
    assert_eq!(
        ds.write(&t, "a", Some(b"10")).await.expect("write"),
        10,
        "a primary write follows the highest revision"
    );
    let many: Vec<Rec> = (0..25)
        .map(|i| Rec {
            key: format!("k/{i:03}"),
            rev: 1,
            body: Some(vec![i as u8]),
        })
        .collect();
    assert_eq!(ds.apply_many(&t, &many).await.expect("many"), 25);
    assert_eq!(
        ds.apply_many(&t, &many).await.expect("again"),
        0,
        "idempotent"
    );
    // The bulk copy's exclusive path keeps the same revision rule.
    let mixed = vec![
        Rec {
            key: "k/000".into(),
            rev: 1,
            body: Some(b"not newer".to_vec()),
        },
        Rec {
            key: "k/001".into(),
            rev: 2,
            body: Some(b"newer".to_vec()),
        },
        Rec {
            key: "k/xyz".into(),
            rev: 1,
            body: None,
        },
    ];
    assert_eq!(
        ds.apply_many_exclusive(&t, &mixed)
            .await
            .expect("exclusive"),
        2
    );
    assert_eq!(
        ds.read(&t, "k/000")
            .await
            .expect("read")
            .and_then(|r| r.body),
        Some(vec![0])
    );
    let k1 = ds.read(&t, "k/001").await.expect("read").expect("k1");
    assert_eq!((k1.rev, k1.body.as_deref()), (2, Some(&b"newer"[..])));

    // Scans page in key order, tombstones included.
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ds.scan(&t, after.as_deref(), 7).await.expect("scan");
        keys.extend(page.iter().map(|r| r.key.clone()));
        match page.last() {
            Some(r) if page.len() == 7 => after = Some(r.key.clone()),
            _ => break,
        }
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 28);

    // A full export (the backend's bulk read, or scans) gives the scan's records in the
    // same order, from the start and after a key, and stops cleanly when dropped early.
    let all = ds.scan(&t, None, 100).await.expect("scan");
    for (after, page) in [(None, 7), (Some("k/010"), 4), (Some("zzz"), 5)] {
        let mut e = match ds.export(&t, after, page).await.expect("export") {
            Some(e) => e,
            None => Box::new(ports::migrate::ScanExport::new(ds, &t, after, page)),
        };
        let mut got = Vec::new();
        loop {
            let p = e.next_page().await.expect("page");
            assert!(p.len() <= page);
            let short = p.len() < page;
            got.extend(p);
            if short {
                break;
            }
        }
        assert!(e.next_page().await.expect("after the end").is_empty());
        let want: Vec<Rec> = all
            .iter()
            .filter(|r| after.is_none_or(|a| r.key.as_str() > a))
            .cloned()
            .collect();
        assert_eq!(got, want, "export after {after:?}");
    }
    if let Some(mut e) = ds.export(&t, None, 2).await.expect("export") {
        assert_eq!(e.next_page().await.expect("page").len(), 2);
    }
    assert_eq!(
        ds.scan(&t, None, 100)
            .await
            .expect("scan after an export stopped early"),
        all
    );

    // The feed holds the primary writes only, in order, and trims without reusing positions.
    let changes = feed.read(&t, head0, 100).await.expect("feed");
    let ks: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(ks, ["a", "a", "b", "a"]);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    let head = feed.head(&t).await.expect("head");
    assert_eq!(head, changes.last().expect("last").seq);
    feed.trim(&t, head).await.expect("trim");
    assert_eq!(
        feed.read(&t, head0, 100).await.expect("feed").len(),
        1,
        "the head stays"
    );
    ds.write(&t, "c", Some(b"c")).await.expect("write");
    assert!(
        feed.head(&t).await.expect("head") > head,
        "positions are never reused"
    );
    let other = TenantId::parse(&unique("other")).expect("tenant");
    assert_eq!(
        ds.read(&other, "a").await.expect("read"),
        None,
        "tenants are separate"
    );
    assert!(feed.read(&other, 0, 10).await.expect("feed").is_empty());

    // Concurrent primary writes: every write takes its own revision and one feed position.
    let t = TenantId::parse(&unique("race")).expect("tenant");
    let writers = (0..4).map(|w| {
        let t = &t;
        async move {
            for i in 0..6 {
                let key = if (w + i) % 2 == 0 { "x" } else { "y" };
                ds.write(t, key, Some(format!("{w}/{i}").as_bytes()))
                    .await
                    .expect("concurrent write");
            }
        }
    });
    futures::future::join_all(writers).await;
    let mut revs = 0;
    for k in ["x", "y"] {
        revs += ds.read(&t, k).await.expect("read").map_or(0, |r| r.rev);
    }
    assert_eq!(revs, 24, "no write lost its revision to a race");
    let changes = feed.read(&t, 0, 100).await.expect("feed");
    assert_eq!(changes.len(), 24, "one feed entry per write");
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(feed.head(&t).await.expect("head"), changes[23].seq);
}

/// The contract of a [`ports::migrate::RoutingStore`]: epochs move forward only, under
/// the expected epoch; acknowledgements and health windows are per router and merge.
pub async fn routing_suite(store: &dyn ports::migrate::RoutingStore) {
    use lifecycle::migration::{Env, Routing, Window};
    use ports::migrate::Ack;
    let t = TenantId::parse(&unique("route")).expect("tenant");
    assert_eq!(store.get(&t).await.expect("get"), None);
    let r1 = Routing::single(t.as_str(), 1, "home");
    store.put(&r1, None).await.expect("first");
    assert!(
        matches!(
            store.put(&r1, None).await,
            Err(StoreError::Conflict {
                what: ports::Contended::RoutingEpoch { .. },
                ..
            })
        ),
        "exists"
    );
    let mut r2 = r1.clone();
    r2.epoch = 2;
    r2.target = Some("green".into());
    r2.read_percent = 25;
    assert!(
        matches!(
            store.put(&r2, Some(0)).await,
            Err(StoreError::Conflict {
                what: ports::Contended::RoutingEpoch { .. },
                ..
            })
        ),
        "stale expectation"
    );
    store.put(&r2, Some(1)).await.expect("next epoch");
    assert!(
        matches!(
            store.put(&r1, Some(2)).await,
            Err(StoreError::Conflict {
                what: ports::Contended::RoutingEpoch { .. },
                ..
            })
        ),
        "epochs never go back"
    );
    assert_eq!(store.get(&t).await.expect("get"), Some(r2));

    for (id, epoch) in [("r1", 1), ("r2", 2), ("r1", 2)] {
        store
            .ack(
                &t,
                &Ack {
                    router_id: id.into(),
                    epoch,
                    at_ms: 5,
                },
            )
            .await
            .expect("ack");
    }
    let mut acks = store.acks(&t).await.expect("acks");
    acks.sort_by(|a, b| a.router_id.cmp(&b.router_id));
    assert_eq!(
        acks.iter()
            .map(|a| (a.router_id.as_str(), a.epoch))
            .collect::<Vec<_>>(),
        [("r1", 2), ("r2", 2)]
    );
    store.leave(&t, "r2").await.expect("leave");
    assert_eq!(store.acks(&t).await.expect("acks").len(), 1);

    let mut a = Window::default();
    a.record(100, true);
    let mut b = Window::default();
    b.record(200, false);
    store
        .report(&t, 2, Env::Target, "r1", &a)
        .await
        .expect("report");
    store
        .report(&t, 2, Env::Target, "r2", &b)
        .await
        .expect("report");
    a.record(300, true);
    store
        .report(&t, 2, Env::Target, "r1", &a)
        .await
        .expect("replace");
    store
        .report(&t, 3, Env::Target, "r1", &b)
        .await
        .expect("other epoch");
    let h = store.health(&t, 2, Env::Target).await.expect("health");
    assert_eq!(
        (h.requests, h.errors),
        (3, 1),
        "windows merge across routers, replace per router"
    );
    assert_eq!(
        store
            .health(&t, 2, Env::Source)
            .await
            .expect("health")
            .requests,
        0
    );
}

/// The contract of a [`ports::migrate::Migrations`] table: writes conditional on the version.
pub async fn migrations_suite(table: &dyn ports::migrate::Migrations) {
    use lifecycle::migration::{HOME, MigrationRecord, MigrationRequest};
    let tenant = unique("mt");
    let cat = lifecycle::Catalog::from_toml(
        "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nholds = \"x\"\nbackend = \"embedded\"\n",
    )
    .expect("catalog");
    let req = MigrationRequest::parse(
        &serde_json::json!({"tenant_id": tenant, "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "g"}}),
        &cat,
    )
    .expect("request");
    let t = TenantId::parse(&tenant).expect("tenant");
    let mut rec = MigrationRecord::new("m1", &req, HOME, "2026-01-01T00:00:00Z");
    assert_eq!(table.get(&t).await.expect("get"), None);
    table.put(&rec, None).await.expect("create");
    assert!(matches!(
        table.put(&rec, None).await,
        Err(StoreError::Conflict {
            what: ports::Contended::MigrationVersion { .. },
            ..
        })
    ));
    rec.version = 1;
    rec.checkpoints.entry("pg".into()).or_default().copied = 42;
    table.put(&rec, Some(0)).await.expect("update");
    assert!(
        matches!(
            table.put(&rec, Some(0)).await,
            Err(StoreError::Conflict {
                what: ports::Contended::MigrationVersion { .. },
                ..
            })
        ),
        "lost update refused"
    );
    assert_eq!(table.get(&t).await.expect("get"), Some(rec));
}
