//! The pgvector product against a real PostgreSQL with pgvector (`TENANT_PGVECTOR_URL`,
//! which `scripts/test` sets after `scripts/pgvector start`): the shared conformance
//! suites, vectors moved bit for bit with the dimension and distance of every location
//! checked, an erasure through the state machine checked with `psql`, erasure riding out
//! terminated backends, and a migration under the router workload. Each test uses its own
//! schema, so runs and tests never see each other's rows.

use e2e::migration::seed_json;
use lifecycle::{Catalog, TenantId};
use ports::migrate::{Dataset, Locator, Rec};
use ports::{StoreError, TenantStore};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use steps::testkit;
use stores::pgvector::{AnnIndex, Distance, PgvectorDataset, PgvectorTenantStore, VectorBody};

const DIM: u32 = 8;

/// The server's connection string; a missing variable fails the test rather than skip it.
fn url() -> String {
    match std::env::var("TENANT_PGVECTOR_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "TENANT_PGVECTOR_URL is not set: start PostgreSQL with pgvector with `eval \"$(scripts/pgvector start)\"` (scripts/test does)"
        ),
    }
}

fn schema(what: &str) -> String {
    testkit::unique(what).to_lowercase()
}

/// `psql` from pgserver's bundle: the product's own client, not the backend's.
fn psql(sql: &str) -> String {
    psql_at(&url(), sql)
}

fn psql_at(url: &str, sql: &str) -> String {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/lib/python3.11/site-packages/pgserver/pginstall/bin/psql");
    let out = Command::new(&bin)
        .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("{} (scripts/bootstrap installs it): {e}", bin.display()));
    assert!(out.status.success(), "psql {sql}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn count_sql(schema: &str, tenant: &str) -> u64 {
    psql(&format!(
        "SELECT COUNT(*) FROM \"{schema}\".vectors WHERE tenant = '{tenant}'"
    ))
    .parse()
    .expect("a count")
}

fn vector(seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn body(seed: u32) -> Vec<u8> {
    VectorBody {
        values: vector(seed),
        metadata: Some(json!({"doc": format!("d{seed}"), "chunk": seed % 7})),
    }
    .encode()
    .expect("encode")
}

fn catalog(schema: &str) -> Catalog {
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings, one namespace per tenant\"\nbackend = \"embedded\"",
        &format!(
            "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings\"\nbackend = \"pgvector\"\nurl = \"{}\"\nschema = \"{schema}\"\ndimension = {DIM}\ndistance = \"cosine\"\nbatch_size = 100",
            url()
        ),
        1,
    );
    assert!(
        text.contains("backend = \"pgvector\""),
        "the local catalog's pinecone entry moved"
    );
    Catalog::from_toml(&text).expect("catalog")
}

async fn deps(schema: &str, dir: &tempfile::TempDir) -> Arc<stores::Deps> {
    let deps = stores::Deps::connect(
        catalog(schema),
        stores::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            ..Default::default()
        },
    )
    .await
    .expect("deps (PostgreSQL with pgvector at TENANT_PGVECTOR_URL)");
    Arc::new(deps)
}

#[tokio::test]
async fn pgvector_store_and_dataset_pass_the_suites() {
    let s = schema("suite");
    let store = PgvectorTenantStore::connect(&url(), "pinecone", &s, DIM, Distance::Cosine)
        .await
        .expect("PostgreSQL with pgvector at TENANT_PGVECTOR_URL")
        .with_batch_size(10);
    testkit::tenant_store_suite(&store).await;
    let ds = PgvectorDataset::connect(
        &url(),
        "pinecone",
        &s,
        "green",
        DIM,
        Distance::Cosine,
        AnnIndex::Hnsw,
    )
    .await
    .expect("dataset");
    testkit::dataset_suite(&ds, &ds).await;
}

#[tokio::test]
async fn vectors_move_bit_for_bit_and_other_dimensions_or_metrics_are_refused() {
    let s = schema("bits");
    let t = TenantId::parse("t1").expect("t");
    let open = |loc: &'static str, dim: u32, d: Distance| {
        let s = s.clone();
        async move {
            PgvectorDataset::connect(&url(), "pinecone", &s, loc, dim, d, AnnIndex::Hnsw)
                .await
                .expect("dataset")
        }
    };
    let home = open("home", DIM, Distance::Cosine).await;
    home.provision(&t).await.expect("provision home");
    for i in 0..50 {
        home.write(&t, &format!("chunk/{i:03}"), Some(&body(i)))
            .await
            .expect("write");
    }
    home.write(&t, "doc/raw", Some(b"plain text of the chunk"))
        .await
        .expect("a document without a vector");
    let recs = home.scan(&t, None, 100).await.expect("scan");
    assert_eq!(recs.len(), 51);
    for r in recs.iter().filter(|r| r.key.starts_with("chunk/")) {
        let i: u32 = r.key["chunk/".len()..].parse().expect("i");
        assert_eq!(
            r.body.as_deref(),
            Some(&body(i)[..]),
            "read back byte-equal"
        );
    }
    // The stored column is a real vector: pgvector ranks by it.
    let nearest = psql(&format!(
        "SELECT key FROM \"{s}\".vectors WHERE tenant = 't1' AND embedding IS NOT NULL ORDER BY embedding <=> (SELECT embedding FROM \"{s}\".vectors WHERE tenant = 't1' AND key = 'chunk/007') LIMIT 1"
    ));
    assert_eq!(nearest, "chunk/007");

    let green = open("green", DIM, Distance::Cosine).await;
    assert!(green.provision(&t).await.expect("provision green"));
    assert_eq!(green.apply_many(&t, &recs).await.expect("copy"), 51);
    assert_eq!(green.scan(&t, None, 100).await.expect("scan green"), recs);

    // A body of another dimension never reaches the table.
    let wide = VectorBody {
        values: vec![0.25; 12],
        metadata: None,
    }
    .encode()
    .expect("encode");
    let e = home
        .write(&t, "wide", Some(&wide))
        .await
        .expect_err("12 dimensions into vector(8)");
    assert!(
        matches!(&e, StoreError::Config(m) if m.contains("12 dimensions") && m.contains("vector(8)")),
        "{e}"
    );
    let e = green
        .apply_many(
            &t,
            &[Rec {
                key: "wide".into(),
                rev: 1,
                body: Some(wide),
            }],
        )
        .await
        .expect_err("refused in a copy too");
    assert!(matches!(e, StoreError::Config(_)), "{e}");

    // A location whose table was made for another dimension or metric is refused.
    psql(&format!(
        "CREATE SCHEMA \"{s}__blue\"; CREATE TABLE \"{s}__blue\".vectors (tenant text, key text, rev bigint, embedding vector(4), metadata jsonb, document bytea, PRIMARY KEY (tenant, key))"
    ));
    let e = open("blue", DIM, Distance::Cosine)
        .await
        .provision(&t)
        .await
        .expect_err("vector(4) is not vector(8)");
    assert!(
        matches!(&e, StoreError::Config(m) if m.contains("vector(4)") && m.contains("vector(8)")),
        "{e}"
    );
    let l2 = open("red", DIM, Distance::L2).await;
    l2.provision(&t).await.expect("an l2 location");
    let e = open("red", DIM, Distance::Cosine)
        .await
        .apply(&t, &recs[0], false)
        .await
        .expect_err("an l2 index under a cosine catalog");
    assert!(
        matches!(&e, StoreError::Config(m) if m.contains("vector_l2_ops") && m.contains("cosine")),
        "{e}"
    );
    psql(&format!(
        "DROP SCHEMA \"{s}\" CASCADE; DROP SCHEMA \"{s}__green\" CASCADE; DROP SCHEMA \"{s}__blue\" CASCADE; DROP SCHEMA \"{s}__red\" CASCADE"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_leaves_no_vector_of_the_tenant_and_every_other() {
    let s = schema("gdpr");
    let dir = tempfile::tempdir().expect("dir");
    let deps = deps(&s, &dir).await;
    let gone = "tenant_004_departed_customer";
    let kept = ["tenant_005_test_account", "tenant_004_departed_customer2"];
    let home = deps
        .system("pinecone")
        .expect("system")
        .dataset("home")
        .expect("home")
        .0;
    let green = deps
        .system("pinecone")
        .expect("system")
        .dataset("green")
        .expect("green")
        .0;
    for t in std::iter::once(gone).chain(kept) {
        let t = TenantId::parse(t).expect("t");
        let recs: Vec<Rec> = (0..300)
            .map(|i| Rec {
                key: format!("chunk/{i:04}"),
                rev: 1,
                body: Some(body(i)),
            })
            .collect();
        home.apply_many(&t, &recs).await.expect("seed");
    }
    let t = TenantId::parse(gone).expect("t");
    green.provision(&t).await.expect("green");
    let copied: Vec<Rec> = (0..40)
        .map(|i| Rec {
            key: format!("copied/{i}"),
            rev: 1,
            body: Some(body(i)),
        })
        .collect();
    green
        .apply_many(&t, &copied)
        .await
        .expect("a copy at green");
    home.write(
        &t,
        "profile",
        Some(
            &VectorBody {
                values: vector(1),
                metadata: Some(json!({"email": "someone@example.com"})),
            }
            .encode()
            .expect("encode"),
        ),
    )
    .await
    .expect("profile");
    assert_eq!(count_sql(&s, gone), 301);
    let exec = e2e::run(&deps, e2e::request("gdpr_pgvector_1", gone, &["pinecone"])).await;
    assert!(
        exec.error.is_none(),
        "{:?}: {:?}",
        exec.error,
        e2e::task_cause(&exec)
    );
    assert_eq!(count_sql(&s, gone), 0, "home");
    assert_eq!(count_sql(&format!("{s}__green"), gone), 0, "every location");
    assert_eq!(
        psql(&format!(
            "SELECT COUNT(*) FROM \"{s}\".vector_changes WHERE tenant = '{gone}'"
        )),
        "0",
        "the feed too"
    );
    for k in kept {
        assert_eq!(count_sql(&s, k), 300, "{k} untouched");
    }
    let bodies = e2e::erasure_bodies(&deps).await;
    assert_eq!(bodies[0]["outcome"], "erased", "{bodies:?}");
    let sys = &bodies[0]["details"]["systems"][0];
    assert_eq!(sys["system"], "pinecone", "{bodies:?}");
    assert_eq!(sys["records_erased"], 342, "{sys}");
    let text = serde_json::to_string(&bodies).expect("json");
    assert!(
        !text.contains("someone@example.com"),
        "no personal data on the ledger"
    );
    psql(&format!(
        "DROP SCHEMA \"{s}\" CASCADE; DROP SCHEMA \"{s}__green\" CASCADE"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_rides_out_terminated_backends() {
    let s = schema("kill");
    let app = testkit::unique("killme");
    // Only this test's connections carry this name, so other tests keep theirs.
    let conn = format!("{} application_name={app}", url());
    let store = PgvectorTenantStore::connect(&conn, "pinecone", &s, DIM, Distance::Cosine)
        .await
        .expect("store")
        .with_batch_size(50);
    let home = PgvectorDataset::connect(
        &url(),
        "pinecone",
        &s,
        "home",
        DIM,
        Distance::Cosine,
        AnnIndex::Hnsw,
    )
    .await
    .expect("dataset");
    let (t, other) = (
        TenantId::parse("t1").expect("t"),
        TenantId::parse("t2").expect("t"),
    );
    for tenant in [&t, &other] {
        let recs: Vec<Rec> = (0..3000)
            .map(|i| Rec {
                key: format!("k{i:05}"),
                rev: 1,
                body: Some(body(i)),
            })
            .collect();
        for page in recs.chunks(500) {
            home.apply_many(tenant, page).await.expect("seed");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, app) = (stop.clone(), app.clone());
        tokio::task::spawn_blocking(move || {
            let mut killed = 0u64;
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) && rounds < 40 {
                std::thread::sleep(Duration::from_millis(10));
                let n = psql(&format!(
                    "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{app}'"
                ));
                killed += n.parse::<u64>().unwrap_or(0);
                rounds += 1;
            }
            killed
        })
    };
    let mut passes = 0;
    loop {
        passes += 1;
        let pass = store
            .erase(&t, Instant::now() + Duration::from_millis(20))
            .await
            .expect("a terminated backend is retried, never an error");
        if pass.complete {
            break;
        }
        assert!(passes < 10_000, "erasure made no progress");
    }
    stop.store(true, Ordering::SeqCst);
    let killed = killer.await.expect("killer");
    assert!(killed > 0 && passes > 1, "killed {killed}, passes {passes}");
    assert_eq!(count_sql(&s, "t1"), 0);
    assert_eq!(count_sql(&s, "t2"), 3000, "the other tenant untouched");
    psql(&format!("DROP SCHEMA \"{s}\" CASCADE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_of_a_pgvector_system_under_load_loses_nothing() {
    let s = schema("mig");
    let dir = tempfile::tempdir().expect("dir");
    let deps = deps(&s, &dir).await;
    let tenant = "tenant_001_acme_corp";
    // Documents (the workload's JSON bodies) and vectors side by side.
    seed_json(&deps, tenant, &["pinecone", "postgresql"], 200).await;
    let t = TenantId::parse(tenant).expect("t");
    let vectors: Vec<Rec> = (0..300)
        .map(|i| Rec {
            key: format!("vec/{i:05}"),
            rev: 0,
            body: Some(body(i)),
        })
        .collect();
    deps.dataset("pinecone", "home")
        .expect("home")
        .apply_many(&t, &vectors)
        .await
        .expect("seed vectors");
    let (tally, r) =
        e2e::migration::blue_green_under_load(&deps, tenant, &["pinecone", "postgresql"]).await;
    assert!(
        psql(&format!(
            "SELECT COUNT(*) FROM \"{s}__green\".vectors WHERE tenant = '{tenant}' AND embedding IS NOT NULL"
        )) == "300",
        "the vectors are at green"
    );
    e2e::migration::assert_migrated_then_erased(&deps, tenant, "pinecone", &tally, 500).await;
    assert_eq!(
        count_sql(&s, tenant) + count_sql(&format!("{s}__green"), tenant),
        0
    );
    r.shutdown().await.expect("shutdown");
    psql(&format!(
        "DROP SCHEMA \"{s}\" CASCADE; DROP SCHEMA \"{s}__green\" CASCADE"
    ));
}
