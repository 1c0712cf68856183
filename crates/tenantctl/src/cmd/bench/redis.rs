//! Erasing one tenant's keys from a Redis database shared with other tenants, by the
//! Redis product (SCAN + UNLINK batches in flight together) and by the usual shell
//! pipeline `redis-cli --scan --pattern ... | xargs redis-cli unlink`, in the same run.

use crate::fixtures::bar;
use anyhow::{Context as _, Result, bail};
use lifecycle::{SystemKind, TenantId};
use ports::TenantStore as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stores::redis::RedisTenantStore;

/// What the benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Server URL without a database, e.g. `redis://127.0.0.1:6379`.
    pub url: String,
    /// The logical database used (it must be empty; it is flushed at the end).
    pub db: u8,
    /// Keys of the erased tenant.
    pub tenant_keys: usize,
    /// Keys in the database, every tenant included.
    pub total_keys: usize,
    /// SCAN COUNT of the product.
    pub scan_count: usize,
    /// UNLINK batches in flight.
    pub concurrency: usize,
}

const TENANT: &str = "tenant_erased";

fn host_port(url: &str) -> Result<(String, String)> {
    let hp = url
        .strip_prefix("redis://")
        .context("the url must start with redis://")?;
    let hp = hp.split('/').next().unwrap_or(hp);
    let (h, p) = hp.split_once(':').unwrap_or((hp, "6379"));
    Ok((h.to_owned(), p.to_owned()))
}

fn cli(plan: &Plan) -> Result<Command> {
    let (h, p) = host_port(&plan.url)?;
    let mut c = Command::new("redis-cli");
    c.args(["-h", &h, "-p", &p, "-n", &plan.db.to_string()]);
    Ok(c)
}

fn dbsize(plan: &Plan) -> Result<u64> {
    let out = cli(plan)?.arg("DBSIZE").output().context("redis-cli")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("DBSIZE answer")
}

/// Writes `SET` commands for `keys` through `redis-cli --pipe` (the server's own bulk
/// load path), with a progress bar.
fn seed(plan: &Plan, what: &str, keys: impl Iterator<Item = String>, n: usize) -> Result<()> {
    let mut child = cli(plan)?
        .arg("--pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("redis-cli --pipe")?;
    let mut stdin = std::io::BufWriter::new(child.stdin.take().context("stdin")?);
    let b = bar(n as u64, what);
    for (i, k) in keys.enumerate() {
        write!(
            stdin,
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n",
            k.len()
        )?;
        if i % 50_000 == 0 {
            b.set_position(i as u64);
        }
    }
    stdin.flush()?;
    drop(stdin);
    b.finish_and_clear();
    if !child.wait()?.success() {
        bail!("redis-cli --pipe failed while seeding {what}");
    }
    Ok(())
}

fn tenant_keys(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("bench:{TENANT}:session/{i}"))
}

fn timed_peer(plan: &Plan) -> Result<Duration> {
    let (h, p) = host_port(&plan.url)?;
    let line = format!(
        "redis-cli -h {h} -p {p} -n {db} --scan --pattern 'bench:{TENANT}:*' | xargs redis-cli -h {h} -p {p} -n {db} unlink > /dev/null",
        db = plan.db
    );
    let start = Instant::now();
    let status = Command::new("sh").args(["-c", &line]).status()?;
    let took = start.elapsed();
    if !status.success() {
        bail!("the peer pipeline failed: {line}");
    }
    Ok(took)
}

/// Runs the benchmark and prints its table.
pub async fn run(plan: Plan) -> Result<()> {
    if plan.tenant_keys == 0 || plan.total_keys < plan.tenant_keys {
        bail!("--total-keys must be at least --tenant-keys, and both above 0");
    }
    let before = dbsize(&plan)?;
    if before != 0 {
        bail!(
            "database {} of {} holds {before} keys; the benchmark needs an empty database (it flushes it at the end): pass another --db",
            plan.db,
            plan.url
        );
    }
    let others = plan.total_keys - plan.tenant_keys;
    seed(
        &plan,
        "other tenants",
        (0..others).map(|i| format!("bench:tenant_{:03}:session/{i}", i % 97)),
        others,
    )?;
    let store = RedisTenantStore::connect(
        &format!("{}/{}", plan.url, plan.db),
        "redis",
        SystemKind::KeyValue,
        "bench:{tenant_id}:",
        plan.scan_count,
        plan.concurrency,
    )
    .await?;
    let t = TenantId::parse(TENANT)?;

    seed(
        &plan,
        "tenant",
        tenant_keys(plan.tenant_keys),
        plan.tenant_keys,
    )?;
    let peer = timed_peer(&plan)?;
    let peer_left = dbsize(&plan)? - others as u64;

    seed(
        &plan,
        "tenant",
        tenant_keys(plan.tenant_keys),
        plan.tenant_keys,
    )?;
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
    let ours = start.elapsed();
    let ours_left = dbsize(&plan)? - others as u64;
    let untouched = dbsize(&plan)? == others as u64;
    cli(&plan)?.arg("FLUSHDB").output()?;

    let rate = |d: Duration| plan.tenant_keys as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "erase one tenant of {} keys among {} (Redis, database {})",
        plan.tenant_keys, plan.total_keys, plan.db
    );
    println!(
        "{:<58} {:>9} {:>9} {:>11} {:>8}",
        "tool", "left", "seconds", "keys/s", "speed"
    );
    println!(
        "{:<58} {:>9} {:>9.2} {:>11.0} {:>7.2}x",
        format!(
            "tenantctl (SCAN COUNT {}, {} UNLINK in flight)",
            plan.scan_count, plan.concurrency
        ),
        ours_left,
        ours.as_secs_f64(),
        rate(ours),
        peer.as_secs_f64() / ours.as_secs_f64().max(1e-9)
    );
    println!(
        "{:<58} {:>9} {:>9.2} {:>11.0} {:>7.2}x",
        "redis-cli --scan --pattern ... | xargs redis-cli unlink",
        peer_left,
        peer.as_secs_f64(),
        rate(peer),
        1.0
    );
    println!(
        "keys erased by tenantctl: {erased}; other tenants' {others} keys untouched: {untouched}"
    );
    Ok(())
}
