//! Ledger benchmarks: verification against `openssl speed ecdsap256` in the same run, a
//! receipt against a checkpoint of a 1,000,000-entry tree, and appends with and without
//! the Merkle tree (embedded, and DynamoDB on moto).

use crate::fixtures::{self, bar, fresh_dir, moto_config};
use anyhow::{Context, Result, bail};
use lifecycle::ledger::{KeyRing, leaf_of};
use lifecycle::note::{Checkpoint, Receipt};
use lifecycle::tree::{self, MemoryTree};
use ports::{Ledger, Signer, SystemClock};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use steps::certify::{Draft, certify};
use stores::embedded::{LocalLedger, LocalSigner, World};

fn draft(chain: &str, i: usize) -> Draft {
    let systems: Vec<serde_json::Value> = [
        "postgresql",
        "redis",
        "pinecone",
        "s3",
        "cloudwatch",
        "backups",
        "analytics",
    ]
    .iter()
    .map(|s| serde_json::json!({"system": s, "records_erased": i, "residual_records": 0, "verified_at": "2026-01-01T00:00:00Z"}))
    .collect();
    Draft {
        kind: chain.into(),
        outcome: "erased".into(),
        request_id: format!("req-{i:07}"),
        tenant_id: format!("tenant_{:05}", i % 5000),
        details: serde_json::json!({
            "legal_basis": "GDPR Art. 17(1)",
            "records_erased_total": 7 * i,
            "systems": systems,
        }),
        unique: false,
    }
}

/// `openssl speed ecdsap256` verifies per second on one core, measured now.
fn openssl_verify_rate(seconds: u32) -> Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "ecdsap256"])
        .output()
        .context("cannot run openssl (the peer of this benchmark)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The result line: " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  14000.0"
    for line in text.lines() {
        if line.contains("ecdsa (nistp256)") {
            let nums: Vec<f64> = line
                .split_whitespace()
                .filter_map(|w| w.parse::<f64>().ok())
                .collect();
            if let Some(v) = nums.last() {
                return Ok(*v);
            }
        }
    }
    bail!("could not read the verify rate from `openssl speed ecdsap256`:\n{text}")
}

/// `bench ledger-verify`: builds a ledger of `n` entries, verifies it on one thread and on
/// every core, and compares per-core rates with openssl's verify rate.
pub async fn verify(n: usize, data_dir: &Path) -> Result<()> {
    let dir = fresh_dir(data_dir, "bench-ledger")?;
    let world = World::open(&dir.join("world.db"))?;
    let signer = LocalSigner::load_or_create(&world, "bench")?;
    let ledger = LocalLedger::new(world.clone());
    let chain = "bench";
    let b = bar(n as u64, "appending");
    for i in 0..n {
        certify(&ledger, &signer, &SystemClock, &draft(chain, i)).await?;
        b.inc(1);
    }
    b.finish_and_clear();

    let mut ring = KeyRing::default();
    ring.trust(*signer.public_key())?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut rows = Vec::new();
    for threads in [1, cores] {
        let opts = crate::verify::VerifyOptions {
            only: Some(chain.into()),
            threads,
            ..Default::default()
        };
        let started = Instant::now();
        let r = crate::verify::verify_ledger_with(&ledger, &ring, &opts).await?;
        let took = started.elapsed();
        match &r[0].outcome {
            Ok(v) if *v == n as u64 => {}
            other => bail!("the benchmark ledger did not verify: {other:?}"),
        }
        rows.push((threads, took));
    }
    // The same signatures over the same canonical bodies, nothing else: aws-lc alone.
    let entries = ledger.entries(chain, 0, n).await?;
    let mut prepared = Vec::with_capacity(entries.len());
    for e in &entries {
        let v: serde_json::Value = serde_json::from_str(&e.json)?;
        let body = lifecycle::certificate::canonical_bytes(&v["certificate"]["certificate"])?;
        let der = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            v["certificate"]["signature"]["der_base64"]
                .as_str()
                .context("signature")?,
        )?;
        prepared.push((body, der));
    }
    let key = lifecycle::certificate::TrustedKey::new(*signer.public_key())?;
    let started = Instant::now();
    for (body, der) in &prepared {
        key.verify(body, der)?;
    }
    let raw = started.elapsed();
    let openssl = openssl_verify_rate(3)?;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "ledger verify, {n} entries (hash, links, JCS, Merkle leaf, ECDSA P-256 via aws-lc), {cores} cores:"
    );
    println!(
        "  {:<48} {:>9} {:>12} {:>14}",
        "", "seconds", "entries/s", "per core"
    );
    for (threads, took) in &rows {
        println!(
            "  {:<48} {:>9.2} {:>12.0} {:>14.0}",
            format!("tenantctl ledger verify, {threads} verify thread(s)"),
            took.as_secs_f64(),
            rate(*took),
            rate(*took) / *threads as f64
        );
    }
    println!(
        "  {:<48} {:>9.2} {:>12.0} {:>14.0}",
        "aws-lc verify alone, same bodies, 1 thread",
        raw.as_secs_f64(),
        rate(raw),
        rate(raw)
    );
    println!(
        "  {:<48} {:>9} {:>12.0} {:>14.0}",
        "openssl speed ecdsap256 (verify/s, one core)", "", openssl, openssl
    );
    let (t_all, d_all) = rows[rows.len() - 1];
    println!(
        "  ratio: per core {:.0} % of openssl's verify rate on one thread, {:.0} % with {t_all} threads (target >= 70 %); {t_all} threads are {:.2}x one",
        100.0 * rate(rows[0].1) / openssl,
        100.0 * rate(d_all) / t_all as f64 / openssl,
        rate(d_all) / rate(rows[0].1)
    );
    println!(
        "  the signature check alone runs at {:.0} % of openssl; the rest of an entry (JSON, JCS, three SHA-256, links) is {:.0} % of the one-thread time",
        100.0 * rate(raw) / openssl,
        100.0 * (1.0 - raw.as_secs_f64() / rows[0].1.as_secs_f64())
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// `bench receipt`: a receipt for a real certificate placed in a 1,000,000-entry tree,
/// verified offline from its text (parse, checkpoint signature, inclusion proof).
pub async fn receipt(size: u64, data_dir: &Path) -> Result<()> {
    let dir = fresh_dir(data_dir, "bench-receipt")?;
    let world = World::open(&dir.join("world.db"))?;
    let signer = LocalSigner::load_or_create(&world, "bench")?;
    let ledger = LocalLedger::new(world);
    let cert = certify(&ledger, &signer, &SystemClock, &draft("bench", 1)).await?;
    let doc = serde_json::to_value(&cert.entry.certificate)?;
    let leaf = leaf_of(&cert.entry.certificate)?;
    let index = size * 7 / 9;
    let b = bar(size, "building the tree");
    let mut t = MemoryTree::default();
    for i in 0..size {
        t.push(if i == index {
            leaf
        } else {
            tree::leaf_hash(&i.to_be_bytes())
        });
        if i % 65536 == 0 {
            b.set_position(i);
        }
    }
    b.finish_and_clear();
    let origin = steps::checkpoint::origin("bench", "bench");
    let cp = Checkpoint {
        origin: origin.clone(),
        size,
        root: t.root(),
        extensions: vec![],
    };
    let note = steps::checkpoint::sign_note(&signer, &origin, &cp.body()).await?;
    let r = Receipt {
        index,
        proof: t.inclusion(index, size)?,
        checkpoint: note,
    };
    let text = r.to_text();
    let mut ring = KeyRing::default();
    ring.trust(*signer.public_key())?;
    let runs = 2000u32;
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let started = Instant::now();
        let parsed = Receipt::parse(&text)?;
        let l = lifecycle::ledger::leaf_of_value(&doc)?;
        lifecycle::certificate::verify_document(&doc, |k| ring.get(k))?;
        parsed.verify(&l, &origin, &ring)?;
        times.push(started.elapsed());
    }
    times.sort();
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let openssl = openssl_verify_rate(1)?;
    println!("receipt of one certificate against a checkpoint of a {size}-entry tree:");
    println!(
        "  proof: {} hashes, {} bytes ({} bytes as base64 text); the whole receipt file {} bytes",
        r.proof.len(),
        r.proof.len() * 32,
        r.proof.len() * 45,
        text.len()
    );
    println!(
        "  verify (parse, certificate signature, checkpoint signature, inclusion), {runs} runs: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (target < 5 ms)",
        p(0.5),
        p(0.99),
        p(1.0)
    );
    println!(
        "  limit: two ECDSA verifies at openssl's rate take {:.3} ms; ratio {:.2}x",
        2e3 / openssl,
        p(0.5) / (2e3 / openssl)
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

async fn append_rate(
    ledger: &dyn Ledger,
    signer: &dyn Signer,
    chain: &str,
    n: usize,
) -> Result<f64> {
    let started = Instant::now();
    for i in 0..n {
        certify(ledger, signer, &SystemClock, &draft(chain, i)).await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `bench ledger-append`: appends (sign + store) per second with the Merkle tree kept in
/// the same transaction, against the same appends without it.
pub async fn append(n: usize, dynamodb: Option<(&str, usize)>, data_dir: &Path) -> Result<()> {
    let dir = fresh_dir(data_dir, "bench-append")?;
    let world = World::open(&dir.join("world.db"))?;
    let signer = LocalSigner::load_or_create(&world, "bench")?;
    let mut rows = Vec::new();
    // Alternate the two so drift of the machine hits both alike.
    let (mut with, mut without) = (0.0, 0.0);
    for round in 0..2 {
        without += append_rate(
            &LocalLedger::without_tree(world.clone()),
            &signer,
            &format!("plain-{round}"),
            n / 2,
        )
        .await?;
        with += append_rate(
            &LocalLedger::new(world.clone()),
            &signer,
            &format!("tree-{round}"),
            n / 2,
        )
        .await?;
    }
    rows.push(("embedded (SQLite)", n, with / 2.0, without / 2.0));
    if let Some((endpoint, items)) = dynamodb {
        let cfg = moto_config(endpoint).await;
        let ddb = aws_sdk_dynamodb::Client::new(&cfg);
        // moto copies a whole table for every transaction, so each run gets a table of its
        // own: runs see tables of the same size and neither pays for the other's items.
        let (mut with, mut without) = (0.0, 0.0);
        for round in 0..2 {
            for tree in [false, true] {
                let table = format!("bench-ledger-{}-{round}-{tree}", std::process::id());
                fixtures::table(&ddb, &table, "chain", "sk").await?;
                let r = if tree {
                    let l = stores::dynamodb::DynamoLedger::new(ddb.clone(), &table);
                    append_rate(&l, &signer, "bench", items / 2).await?
                } else {
                    let l = stores::dynamodb::DynamoLedger::without_tree(ddb.clone(), &table);
                    append_rate(&l, &signer, "bench", items / 2).await?
                };
                if tree {
                    with += r;
                } else {
                    without += r;
                }
            }
        }
        rows.push(("DynamoDB (moto)", items, with / 2.0, without / 2.0));
    }
    println!("ledger appends (sign + conditional append), with the Merkle tree kept and without:");
    println!(
        "  {:<20} {:>8} {:>14} {:>14} {:>10}",
        "backend", "appends", "with tree/s", "without/s", "tree cost"
    );
    for (name, count, w, wo) in &rows {
        println!(
            "  {:<20} {:>8} {:>14.0} {:>14.0} {:>9.1} %",
            name,
            count,
            w,
            wo,
            100.0 * (1.0 - w / wo)
        );
    }
    println!("  target: the tree costs under 20 %");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
