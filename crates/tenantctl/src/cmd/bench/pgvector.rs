//! Copying and erasing one tenant's vectors in PostgreSQL with pgvector, by the pgvector
//! product (scan pages + `apply_many_exclusive` with pgvector's binary format; erase in
//! batches across every location) and by the database's own statements in the same
//! database (`INSERT ... SELECT`, `DELETE ... WHERE tenant = ...`), in the same run.

use crate::fixtures::bar;
use anyhow::{Context as _, Result, bail};
use lifecycle::TenantId;
use ports::TenantStore as _;
use ports::migrate::{Dataset as _, Rec};
use std::time::{Duration, Instant};
use stores::pgvector::{AnnIndex, Distance, PgvectorDataset, PgvectorTenantStore, VectorBody};

/// What the benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Connection string of a server with pgvector.
    pub url: String,
    /// Vectors of the tenant copied and erased.
    pub vectors: usize,
    /// Their dimension.
    pub dimension: u32,
    /// Build an HNSW index on every table (copies then pay for index inserts).
    pub hnsw: bool,
    /// Records per scan page and per `apply_many`.
    pub page: usize,
}

const TENANT: &str = "tenant_bench";

fn embedding(seed: u64, dim: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

async fn rows(c: &tokio_postgres::Client, schema: &str) -> Result<i64> {
    let r = c
        .query_one(
            &format!(r#"SELECT COUNT(*) FROM "{schema}".vectors WHERE tenant = $1"#),
            &[&TENANT],
        )
        .await?;
    Ok(r.get(0))
}

/// Runs the benchmark and prints its table.
pub async fn run(plan: Plan) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(&plan.url, tokio_postgres::NoTls)
        .await
        .context("connect to PostgreSQL with pgvector (set --url or TENANT_PGVECTOR_URL)")?;
    tokio::spawn(conn);
    let base = steps::testkit::unique("bench_pgv").to_lowercase();
    let index = if plan.hnsw {
        AnnIndex::Hnsw
    } else {
        AnnIndex::None
    };
    let open = |loc: &'static str| {
        let (url, base) = (plan.url.clone(), base.clone());
        async move {
            PgvectorDataset::connect(
                &url,
                "bench",
                &base,
                loc,
                plan.dimension,
                Distance::Cosine,
                index,
            )
            .await
        }
    };
    let t = TenantId::parse(TENANT)?;
    let home = open("home").await?;
    home.provision(&t).await?;
    let b = bar(plan.vectors as u64, "seed");
    let mut i = 0;
    while i < plan.vectors {
        let n = plan.page.min(plan.vectors - i);
        let recs: Vec<Rec> = (i..i + n)
            .map(|k| {
                Ok(Rec {
                    key: format!("chunk/{k:07}"),
                    rev: 1,
                    body: Some(
                        VectorBody {
                            values: embedding(k as u64, plan.dimension),
                            metadata: Some(serde_json::json!({"doc": k / 20, "chunk": k % 20})),
                        }
                        .encode()?,
                    ),
                })
            })
            .collect::<Result<_, ports::StoreError>>()?;
        home.apply_many_exclusive(&t, &recs).await?;
        i += n;
        b.set_position(i as u64);
    }
    b.finish_and_clear();

    // The product's copy: pages through the source, one statement per page at the target.
    let green = open("green").await?;
    green.provision(&t).await?;
    let b = bar(plan.vectors as u64, "copy (tenantctl)");
    let start = Instant::now();
    let mut after: Option<String> = None;
    let mut copied = 0u64;
    loop {
        let page = home.scan(&t, after.as_deref(), plan.page).await?;
        copied += green.apply_many_exclusive(&t, &page).await?;
        b.inc(page.len() as u64);
        match page.last() {
            Some(r) if page.len() == plan.page => after = Some(r.key.clone()),
            _ => break,
        }
    }
    let ours_copy = start.elapsed();
    b.finish_and_clear();

    let peer_ds = open("peer").await?;
    peer_ds.provision(&t).await?;
    let start = Instant::now();
    client
        .execute(
            &format!(
                r#"INSERT INTO "{base}__peer".vectors SELECT * FROM "{base}".vectors WHERE tenant = $1"#
            ),
            &[&TENANT],
        )
        .await?;
    let peer_copy = start.elapsed();
    let (green_rows, peer_rows) = (
        rows(&client, &format!("{base}__green")).await?,
        rows(&client, &format!("{base}__peer")).await?,
    );
    if green_rows != plan.vectors as i64 || peer_rows != plan.vectors as i64 {
        bail!(
            "copies hold {green_rows} and {peer_rows} vectors, not {}",
            plan.vectors
        );
    }
    let equal: bool = client
        .query_one(
            &format!(
                r#"SELECT NOT EXISTS (SELECT key, embedding::text, metadata FROM "{base}__green".vectors
                   EXCEPT SELECT key, embedding::text, metadata FROM "{base}".vectors)"#
            ),
            &[],
        )
        .await?
        .get(0);

    // The product's erasure of the green copy (its store's home is that schema) against
    // one DELETE of the peer copy.
    let store = PgvectorTenantStore::connect(
        &plan.url,
        "bench",
        &format!("{base}__green"),
        plan.dimension,
        Distance::Cosine,
    )
    .await?;
    let start = Instant::now();
    let mut erased = 0;
    loop {
        let pass = store
            .erase(&t, Instant::now() + Duration::from_secs(60))
            .await?;
        erased += pass.erased;
        if pass.complete {
            break;
        }
    }
    let ours_erase = start.elapsed();
    let start = Instant::now();
    client
        .execute(
            &format!(r#"DELETE FROM "{base}__peer".vectors WHERE tenant = $1"#),
            &[&TENANT],
        )
        .await?;
    let peer_erase = start.elapsed();
    let left = rows(&client, &format!("{base}__green")).await?
        + rows(&client, &format!("{base}__peer")).await?;
    for s in [
        base.clone(),
        format!("{base}__green"),
        format!("{base}__peer"),
    ] {
        client
            .batch_execute(&format!(r#"DROP SCHEMA "{s}" CASCADE"#))
            .await?;
    }

    let rate = |d: Duration| plan.vectors as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "one tenant's {} vectors of {} dimensions (cosine, {}) in PostgreSQL with pgvector",
        plan.vectors,
        plan.dimension,
        if plan.hnsw {
            "HNSW index"
        } else {
            "no ANN index"
        }
    );
    println!(
        "{:<64} {:>9} {:>11} {:>8}",
        "operation", "seconds", "vectors/s", "ratio"
    );
    let line = |what: String, d: Duration, peer: Duration| {
        println!(
            "{:<64} {:>9.2} {:>11.0} {:>7.2}x",
            what,
            d.as_secs_f64(),
            rate(d),
            peer.as_secs_f64() / d.as_secs_f64().max(1e-9)
        );
    };
    line(
        format!(
            "copy: tenantctl (scan + apply_many, pages of {})",
            plan.page
        ),
        ours_copy,
        peer_copy,
    );
    line(
        "copy: INSERT INTO ... SELECT ... WHERE tenant = $1".into(),
        peer_copy,
        peer_copy,
    );
    line(
        "erase: tenantctl (batches of 1000, every location, recount)".into(),
        ours_erase,
        peer_erase,
    );
    line(
        "erase: DELETE FROM ... WHERE tenant = $1".into(),
        peer_erase,
        peer_erase,
    );
    println!(
        "copied {copied}, copy equal to the source: {equal}; erased by tenantctl {erased}, vectors left {left}"
    );
    Ok(())
}
