//! The demo: seeds the local world with the tenants of scenarios.json, runs the erasure
//! requests through the simulator on the real handlers, and proves the outcome.

use crate::world::{simulate, write_history};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lifecycle::{SystemKind, TenantId};
use ports::LegalHold;
use serde::Deserialize;
use serde_json::{Value, json};
use sim::{Machine, Status};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use stores::Deps;
use stores::embedded::{LocalTenantStore, World};

/// The parts of scenarios.json the demo reads.
#[derive(Debug, Deserialize)]
pub struct Scenarios {
    /// Systems and their kinds.
    pub systems: Vec<ScenarioSystem>,
    /// Tenants.
    pub tenants: Vec<ScenarioTenant>,
    /// Erasure requests.
    pub erasure_requests: Vec<Value>,
    /// Migrations.
    #[serde(default)]
    pub migrations: Vec<Value>,
}

/// A system of scenarios.json.
#[derive(Debug, Deserialize)]
pub struct ScenarioSystem {
    /// Name.
    pub name: String,
}

/// A tenant of scenarios.json.
#[derive(Debug, Deserialize)]
pub struct ScenarioTenant {
    /// Tenant id.
    pub id: String,
    /// Tier.
    pub tier: String,
}

/// A tiny deterministic generator: the demo data is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How many records of each system a tenant gets, before `scale`.
fn plan(tenant: &str, system: &str) -> usize {
    let departing = tenant.contains("departed");
    let test = tenant.contains("test_account");
    let base = match system {
        "postgresql" => 1500,
        "redis" => 800,
        "pinecone" => 1200,
        "s3" => 420,
        "cloudwatch" => 2000,
        "backups" => 12,
        "analytics" => 1800,
        _ => 100,
    };
    if departing {
        base
    } else if test {
        if matches!(system, "postgresql" | "redis" | "pinecone" | "s3") {
            base / 3
        } else {
            0
        }
    } else {
        base / 4
    }
}

fn record(system: &str, tenant: &str, i: usize, rng: &mut Rng) -> (String, Vec<u8>) {
    let r = rng.next();
    let (key, body) = match system {
        "postgresql" => match i % 3 {
            0 => (
                format!("documents/{i:06}"),
                json!({"title": format!("Contract {}", r % 997), "owner": format!("user-{:03}@{tenant}.example", r % 50), "pages": r % 40}),
            ),
            1 => (
                format!("chat_history/{i:06}"),
                json!({"role": "user", "text": format!("How do I renew order {}?", r % 10_000)}),
            ),
            _ => (
                format!("tenant_registry/{i:06}"),
                json!({"tenant": tenant, "plan": "enterprise", "seats": r % 500}),
            ),
        },
        "redis" => match i % 4 {
            0 => (
                format!("session:{:016x}", r),
                json!({"user": format!("user-{:03}", r % 50), "ttl": 3600}),
            ),
            1 => (
                format!("cache:search:{:012x}", r >> 8),
                json!({"hits": r % 20}),
            ),
            2 => (
                format!("ratelimit:{}", 28_000_000 + i),
                json!({"count": r % 100}),
            ),
            _ => (format!("lock:reindex:{i}"), json!({"holder": "worker-3"})),
        },
        "pinecone" => {
            let dims: Vec<i64> = (0..16)
                .map(|d| ((r >> (d * 4)) % 2001) as i64 - 1000)
                .collect();
            (
                format!("vec-{i:07}"),
                json!({"values_milli": dims, "metadata": {"doc": format!("documents/{:06}", i / 3)}}),
            )
        }
        "s3" => (
            if i.is_multiple_of(2) {
                format!("uploads/doc-{i:05}.pdf")
            } else {
                format!("exports/export-{i:05}.csv")
            },
            json!({"bytes": r % 1_000_000, "sha": format!("{r:016x}")}),
        ),
        "cloudwatch" => (
            format!("app-{}/{:020}", i % 8, 1_737_000_000_000u64 + i as u64),
            json!({"level": "INFO", "msg": format!("request served for {tenant}"), "latency_ms": r % 300}),
        ),
        "backups" => (
            format!("snapshot-2025-01-{:02}", i % 28 + 1),
            json!({"size": r % 10_000_000, "tier": "daily"}),
        ),
        _ => (
            format!("usage/2025/01/{:02}/{i:07}", i % 28 + 1),
            json!({"event": "query", "tokens": r % 4000}),
        ),
    };
    (key, serde_json::to_vec(&body).unwrap_or_default())
}

/// Seeds every tenant; returns how many records were written.
pub fn seed(
    world: &World,
    deps: &Deps,
    scenarios: &Scenarios,
    scale: f64,
    progress: bool,
) -> Result<u64> {
    let mut jobs = Vec::new();
    for t in &scenarios.tenants {
        for s in &scenarios.systems {
            let n = ((plan(&t.id, &s.name) as f64) * scale).round() as usize;
            if n > 0 {
                jobs.push((t.id.clone(), s.name.clone(), n));
            }
        }
    }
    let total: usize = jobs.iter().map(|j| j.2).sum();
    let bar = if progress {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("  seeding {bar:30} {pos}/{len} records {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut written = 0u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (tenant, system, n) in jobs {
        let spec = deps
            .catalog
            .system(&system)
            .with_context(|| format!("scenario system {system} is not in the catalog"))?;
        let store = LocalTenantStore::new(world.clone(), &system, spec.kind);
        let tid = TenantId::parse(&tenant)?;
        let mut batch: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| record(&system, &tenant, i, &mut rng))
            .collect();
        if spec.kind == SystemKind::Objects {
            // A third of the objects have three versions, as a versioned bucket keeps them.
            let extra: Vec<_> = batch
                .iter()
                .step_by(3)
                .flat_map(|r| [r.clone(), r.clone()])
                .collect();
            batch.extend(extra);
        }
        written += store.put_many(&tid, &batch)? as u64;
        bar.inc(n as u64);
        bar.set_message(format!("{tenant} / {system}"));
    }
    bar.finish_and_clear();
    Ok(written)
}

/// Counts records per tenant and system.
pub async fn counts(deps: &Deps, tenants: &[String]) -> Result<BTreeMap<(String, String), u64>> {
    let mut out = BTreeMap::new();
    for t in tenants {
        let tid = TenantId::parse(t)?;
        for s in deps.catalog.system_names() {
            out.insert((t.clone(), s.clone()), deps.store(&s)?.count(&tid).await?);
        }
    }
    Ok(out)
}

/// Prints a tenant x system table.
pub fn print_counts(
    deps: &Deps,
    tenants: &[String],
    before: &BTreeMap<(String, String), u64>,
    after: Option<&BTreeMap<(String, String), u64>>,
) {
    let systems = deps.catalog.system_names();
    print!("  {:<30}", "tenant");
    for s in &systems {
        print!(" {s:>11}");
    }
    println!(" {:>9}", "total");
    for t in tenants {
        print!("  {t:<30}");
        let mut total = 0;
        for s in &systems {
            let b = before.get(&(t.clone(), s.clone())).copied().unwrap_or(0);
            let cell = match after {
                Some(a) => {
                    let x = a.get(&(t.clone(), s.clone())).copied().unwrap_or(0);
                    total += x;
                    if x == b {
                        format!("{x}")
                    } else {
                        format!("{b}->{x}")
                    }
                }
                None => {
                    total += b;
                    format!("{b}")
                }
            };
            print!(" {cell:>11}");
        }
        println!(" {total:>9}");
    }
}

/// Runs one request through the simulator, printing transitions; returns the execution.
pub async fn run_request(
    deps: Arc<Deps>,
    machine: &Machine,
    request: &Value,
    data_dir: &Path,
    live: bool,
) -> Result<sim::Execution> {
    let id = request
        .get("request_id")
        .and_then(Value::as_str)
        .unwrap_or("request")
        .to_owned();
    let exec = simulate(deps, machine, &id, request.clone(), live).await;
    write_history(&data_dir.join("history").join(format!("{id}.json")), &exec)?;
    if exec.status == Status::Succeeded
        && let Some(cert) = exec.output.as_ref().and_then(|o| o.get("certificate"))
    {
        let dir = data_dir.join("certificates");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("{id}.json")),
            serde_json::to_vec_pretty(cert)?,
        )?;
    }
    Ok(exec)
}

/// Places the demo's legal hold.
pub async fn place_demo_hold(deps: &Deps, tenant: &str) -> Result<()> {
    deps.holds
        .place(&LegalHold {
            tenant_id: tenant.to_owned(),
            hold_id: "LIT-2025-0042".into(),
            reason: "pending litigation (demo)".into(),
            placed_at: deps.clock.now_rfc3339(),
            released_at: None,
        })
        .await?;
    Ok(())
}

/// Fails unless every count matches what the erasures promise.
pub fn check_outcome(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
    erased: &[(String, Vec<String>)],
) -> Result<()> {
    for ((t, s), b) in before {
        let a = after.get(&(t.clone(), s.clone())).copied().unwrap_or(0);
        let must_be_empty = erased
            .iter()
            .any(|(et, systems)| et == t && systems.contains(s));
        if must_be_empty && a != 0 {
            bail!("{t} still has {a} records in {s} after erasure");
        }
        if !must_be_empty && a != *b {
            bail!(
                "{t} had {b} records in {s} and now has {a}: a tenant that was not erased changed"
            );
        }
    }
    Ok(())
}
