//! The PostgreSQL backends against the local server (127.0.0.1:5432, or TENANT_PG_URL),
//! over a real connection: the shared conformance suites, then a whole migration under a
//! workload with the `postgresql` system backed by PostgreSQL.

use e2e::migration::seed_json;
use lifecycle::{Catalog, SystemKind, TenantId};
use std::sync::Arc;
use steps::testkit;
use stores::postgres::{Pg, PgDataset, PgTenantStore};

fn url() -> String {
    std::env::var("TENANT_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into())
}

#[tokio::test]
async fn postgres_store_and_dataset_pass_the_suites() {
    let pg = Pg::connect(&url())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, database test)");
    let schema = testkit::unique("tl").to_lowercase().replace('-', "_");
    let store = PgTenantStore::new(pg.clone(), "postgresql", SystemKind::Relational, &schema)
        .await
        .expect("store")
        .with_batch_size(10);
    testkit::tenant_store_suite(&store).await;
    let ds = PgDataset::new(pg, "postgresql", &schema, "green");
    testkit::dataset_suite(&ds, &ds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_of_a_postgres_system_under_load_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let schema = testkit::unique("app").to_lowercase().replace('-', "_");
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "[[systems]]\nname = \"postgresql\"\nkind = \"relational\"\nholds = \"tenant registry rows, documents metadata, chat history\"\nbackend = \"embedded\"",
        &format!("[[systems]]\nname = \"postgresql\"\nkind = \"relational\"\nholds = \"rows\"\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"", url()),
        1,
    );
    assert!(
        text.contains("backend = \"postgres\""),
        "the local catalog's postgresql entry moved"
    );
    let catalog = Catalog::from_toml(&text).expect("catalog");
    let deps = stores::wiring::Deps::connect(
        catalog,
        stores::wiring::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            aws: None,
            read_only: false,
        },
    )
    .await
    .expect("deps");
    let deps = Arc::new(deps);
    let tenant = "tenant_001_acme_corp";
    seed_json(&deps, tenant, &["postgresql", "redis"], 200).await;
    let (tally, r) =
        e2e::migration::blue_green_under_load(&deps, tenant, &["postgresql", "redis"]).await;
    let t = TenantId::parse(tenant).expect("t");
    // The target lives in its own schema, and erasure reaches it.
    assert!(
        deps.store("postgresql")
            .expect("store")
            .count(&t)
            .await
            .expect("count")
            > 0
    );
    e2e::migration::assert_migrated_then_erased(&deps, tenant, "postgresql", &tally, 200).await;
    let green = PgDataset::new(
        Pg::connect(&url()).await.expect("pg"),
        "postgresql",
        &schema,
        "green",
    );
    assert!(
        ports::migrate::Dataset::scan(&green, &t, None, 10)
            .await
            .expect("scan")
            .is_empty(),
        "erased from every location"
    );
    r.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_follower_misses_no_write_of_concurrent_writers() {
    use ports::migrate::{ChangeFeed, Dataset};
    let schema = testkit::unique("tf").to_lowercase().replace('-', "_");
    let t = TenantId::parse("tenant_feed").expect("t");
    let mut writers = Vec::new();
    for w in 0..3 {
        // Each writer has its own connection, so their transactions really interleave.
        let ds = PgDataset::new(
            Pg::connect(&url()).await.expect("pg"),
            "postgresql",
            &schema,
            "home",
        );
        ds.provision(&t).await.expect("provision");
        let t = t.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..150 {
                ds.write(&t, &format!("w{w}/{i}"), Some(b"x"))
                    .await
                    .expect("write");
            }
        }));
    }
    let follower = PgDataset::new(
        Pg::connect(&url()).await.expect("pg"),
        "postgresql",
        &schema,
        "home",
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut pos = 0;
    loop {
        let done = writers.iter().all(|h| h.is_finished());
        for c in ChangeFeed::read(&follower, &t, pos, 50)
            .await
            .expect("feed")
        {
            pos = c.seq;
            seen.insert(c.key);
        }
        if done && ChangeFeed::head(&follower, &t).await.expect("head") == pos {
            break;
        }
        tokio::task::yield_now().await;
    }
    for h in writers {
        h.await.expect("writer");
    }
    assert_eq!(
        seen.len(),
        450,
        "a follower that only moves forward saw every write"
    );
}

#[tokio::test]
async fn a_bulk_copy_between_schemas_of_one_database_runs_in_the_server_and_keeps_newer_records() {
    use ports::migrate::{Dataset, Rec};
    let pg = Pg::connect(&url()).await.expect("PostgreSQL");
    let schema = testkit::unique("cp").to_lowercase().replace('-', "_");
    let home = PgDataset::new(pg.clone(), "postgresql", &schema, "home");
    let green = PgDataset::new(pg.clone(), "postgresql", &schema, "green");
    let t = TenantId::parse(&testkit::unique("t")).expect("t");
    let other = TenantId::parse(&testkit::unique("o")).expect("o");
    home.provision(&t).await.expect("provision");
    green.provision(&t).await.expect("provision");
    let rec = |i: usize, rev: u64, body: &str| Rec {
        key: format!("k/{i:03}"),
        rev,
        body: Some(body.as_bytes().to_vec()),
    };
    let recs: Vec<Rec> = (0..25).map(|i| rec(i, 3, "home")).collect();
    home.apply_many(&t, &recs).await.expect("seed");
    home.apply_many(&other, &recs).await.expect("seed other");
    // The target already holds one record at a newer revision (a dual-write got there).
    green
        .apply(&t, &rec(4, 9, "newer"), false)
        .await
        .expect("newer");
    let mut after: Option<String> = None;
    let (mut listed, mut copied) = (0, 0);
    loop {
        let p = green
            .copy_page_from(&t, &home, after.as_deref(), 10)
            .await
            .expect("copy")
            .expect("one database: the server copies");
        listed += p.listed;
        copied += p.copied;
        if p.listed < 10 {
            break;
        }
        after = p.last;
    }
    assert_eq!(
        (listed, copied),
        (25, 24),
        "the newer record is not overwritten"
    );
    let r4 = green.read(&t, "k/004").await.expect("read").expect("k4");
    assert_eq!((r4.rev, r4.body.as_deref()), (9, Some(&b"newer"[..])));
    assert_eq!(green.scan(&t, None, 100).await.expect("scan").len(), 25);
    assert!(
        green.scan(&other, None, 10).await.expect("scan").is_empty(),
        "other tenants stay"
    );
    // Again: nothing newer at the source, nothing copied.
    let again = green
        .copy_page_from(&t, &home, None, 100)
        .await
        .expect("copy")
        .expect("copied");
    assert_eq!((again.listed, again.copied), (25, 0));
    // Another server (another connection string): not a server-side copy.
    let elsewhere = Pg::connect(&format!("{} application_name=elsewhere", url()))
        .await
        .expect("PostgreSQL");
    let far = PgDataset::new(elsewhere, "postgresql", &schema, "far");
    assert!(
        far.copy_page_from(&t, &home, None, 10)
            .await
            .expect("copy")
            .is_none()
    );
}

#[tokio::test]
async fn an_export_after_a_key_with_quotes_backslashes_and_percents_equals_the_scan() {
    use ports::migrate::{Dataset, Rec};
    let pg = Pg::connect(&url()).await.expect("PostgreSQL");
    let schema = testkit::unique("ex").to_lowercase().replace('-', "_");
    let ds = PgDataset::new(pg, "postgresql", &schema, "home");
    let t = TenantId::parse(&testkit::unique("t")).expect("t");
    ds.provision(&t).await.expect("provision");
    let keys = [
        "a",
        "it's",
        "it''s",
        "back\\slash",
        "50%",
        "%L",
        "ünïcode",
        "z'; DROP TABLE x; --",
    ];
    let recs: Vec<Rec> = keys
        .iter()
        .map(|k| Rec {
            key: (*k).into(),
            rev: 1,
            body: Some(k.as_bytes().to_vec()),
        })
        .collect();
    ds.apply_many(&t, &recs).await.expect("seed");
    let all = ds.scan(&t, None, 100).await.expect("scan");
    assert_eq!(all.len(), keys.len());
    for after in keys {
        let mut e = ds
            .export(&t, Some(after), 3)
            .await
            .expect("export")
            .expect("PostgreSQL has a bulk export");
        let mut got = Vec::new();
        loop {
            let p = e.next_page().await.expect("page");
            let short = p.len() < 3;
            got.extend(p);
            if short {
                break;
            }
        }
        let want: Vec<Rec> = all
            .iter()
            .filter(|r| r.key.as_str() > after)
            .cloned()
            .collect();
        assert_eq!(got, want, "after {after:?}");
    }
}
