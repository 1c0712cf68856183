//! `tenantctl demo`: seeds the local world with the tenants of scenarios.json, runs the
//! erasure requests and migrations through the simulator on the real handlers, and
//! proves the outcome.

use super::{Ctx, finish};
use crate::verify::{key_ring, verify_certificate_file};
use crate::world::{connect, load_machine, simulate, world_file, write_history};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lifecycle::certificate::public_key_to_pem;
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

/// Arguments of `tenantctl demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Multiplies the number of seeded records.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Run on real local services instead of the embedded world: PostgreSQL, Redis,
    /// pgvector (TENANT_PGVECTOR_URL) and moto's S3, DynamoDB and CloudWatch Logs
    /// (MOTO_URL); scripts/demo-services starts them and runs this.
    #[arg(long)]
    services: bool,
}

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
pub async fn seed(
    world: &World,
    deps: &Deps,
    scenarios: &Scenarios,
    scale: f64,
    progress: bool,
) -> Result<u64> {
    let mut jobs = Vec::new();
    // Every catalog system: the scenarios' seven, and any other the catalog adds.
    for t in &scenarios.tenants {
        for s in deps.catalog.system_names() {
            let n = ((plan(&t.id, &s) as f64) * scale).round() as usize;
            if n > 0 {
                jobs.push((t.id.clone(), s, n));
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
        if spec.backend == "embedded" {
            written += store.put_many(&tid, &batch)? as u64;
        } else {
            // A real product is written the way an application writes it.
            let real = deps.store(&system)?;
            for (key, body) in &batch {
                real.put(&tid, key, body).await?;
            }
            written += batch.len() as u64;
        }
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

/// Runs `tenantctl demo` in a fresh world in the data dir, ending with an offline check.
pub async fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let scale = args.scale;
    if !(scale > 0.0 && scale <= 100.0) {
        bail!("--scale must be in (0, 100], got {scale}");
    }
    // The demo writes its world into the data dir itself, so that afterwards the plain
    // commands (no flags) act on it. It starts afresh only a directory it made (marked),
    // and refuses to touch a world it did not make.
    let dir = ctx.data_dir.clone();
    let marker = dir.join(".tenant-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !marker.exists() {
            bail!(
                "{} holds a world the demo did not make; run the demo elsewhere with --data-dir <dir>",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot reset {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        &marker,
        "made by tenantctl demo; the next demo run replaces this directory\n",
    )?;
    let services = if args.services {
        Some(super::demo_services::prepare(&dir).await?)
    } else {
        None
    };
    match &services {
        None => println!(
            "tenantctl demo: GDPR Art. 17 erasure and zero-downtime migration in the local simulator (no AWS account, no services)"
        ),
        Some(s) => println!(
            "tenantctl demo --services: the same acts on PostgreSQL, Redis, pgvector and moto's S3, S3 Vectors, DynamoDB and CloudWatch Logs ({}), catalog {}",
            s.moto,
            s.catalog_path.display()
        ),
    }
    println!("world: {}\n", world_file(&dir).display());
    let scenarios: Scenarios = serde_json::from_str(crate::SCENARIOS)?;
    let deps = Arc::new(match &services {
        None => connect(&dir, None).await?,
        Some(s) => {
            Deps::connect(
                lifecycle::Catalog::from_toml(&s.catalog)?,
                stores::ConnectOptions {
                    world: Some(world_file(&dir)),
                    aws: Some(s.aws.clone()),
                    read_only: false,
                },
            )
            .await?
        }
    });
    let world = stores::embedded::World::open(&world_file(&dir))?;
    let seeded = seed(&world, &deps, &scenarios, scale, true).await?;
    let tenants: Vec<String> = scenarios.tenants.iter().map(|t| t.id.clone()).collect();
    println!(
        "seeded {seeded} records for {} tenants across {} systems",
        tenants.len(),
        deps.catalog.systems.len()
    );
    let before = counts(&deps, &tenants).await?;
    println!("\nrecords per tenant and system, before:");
    print_counts(&deps, &tenants, &before, None);

    let machine = load_machine(
        crate::GDPR_ERASURE_ASL,
        "statemachines/gdpr-erasure.asl.json",
    )?;
    let mut erased = Vec::new();
    let mut requests = scenarios.erasure_requests.clone();
    for req in &mut requests {
        // A request naming every scenario system asks for everything: it names the
        // systems a catalog adds too (the services catalog's second vector store).
        let named: Vec<String> = req["systems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        if scenarios.systems.iter().all(|s| named.contains(&s.name)) {
            req["systems"] = json!(deps.catalog.system_names());
        }
    }
    for req in &requests {
        let id = req["request_id"].as_str().unwrap_or("?");
        let tenant = req["tenant_id"].as_str().unwrap_or("?").to_owned();
        let systems: Vec<String> = req["systems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        println!("\n> {id}: erase {tenant} from {} systems", systems.len());
        let exec = run_request(deps.clone(), &machine, req, &dir, true).await?;
        finish(&exec)?;
        let cert = &exec.output.as_ref().context("no output")?["certificate"]["certificate"];
        println!(
            "  certificate: {} records erased, chain {} seq {}, saved to {}",
            cert["details"]["records_erased_total"],
            cert["chain"].as_str().unwrap_or("?"),
            cert["seq"],
            dir.join("certificates")
                .join(format!("{id}.json"))
                .display()
        );
        erased.push((tenant, systems));
    }

    let held = "tenant_003_initech";
    place_demo_hold(&deps, held).await?;
    let hold_req = serde_json::json!({
        "request_id": "gdpr_req_demo_hold_003", "tenant_id": held,
        "reason": "Erasure requested while litigation is pending", "systems": deps.catalog.system_names()
    });
    println!("\n> gdpr_req_demo_hold_003: erase {held}, which is under legal hold LIT-2025-0042");
    let exec = run_request(deps.clone(), &machine, &hold_req, &dir, true).await?;
    if exec.error.as_deref() != Some("LegalHoldActive") {
        bail!("the held tenant was not refused: {:?}", exec.error);
    }
    println!("  refused with LegalHoldActive; nothing erased; the refusal is on the ledger");

    let again = &requests[0];
    println!(
        "\n> {} again (idempotency)",
        again["request_id"].as_str().unwrap_or("?")
    );
    let exec = run_request(deps.clone(), &machine, again, &dir, false).await?;
    let out = exec.output.as_ref().context("no output")?;
    if out["already_recorded"] != Value::Bool(true) {
        bail!("a certified request was erased again");
    }
    println!(
        "  already certified at seq {}: returned the existing certificate, erased nothing",
        out["certificate"]["certificate"]["seq"]
    );

    let after = counts(&deps, &tenants).await?;
    println!("\nrecords per tenant and system, after (before->after where changed):");
    print_counts(&deps, &tenants, &before, Some(&after));
    check_outcome(&before, &after, &erased)?;
    println!(
        "  check: erased tenants hold 0 records in every requested system; every other count is unchanged"
    );

    println!("\nzero-downtime migrations, each while a workload runs through tenant-router:");
    for m in &scenarios.migrations {
        let mut req = m.clone();
        if let Some(o) = req.as_object_mut() {
            // Soaks of 10 s at 1 % of real time: the demo stays quick, the gates still see traffic.
            o.insert(
                "options".into(),
                serde_json::json!({"soak_seconds": 10, "page_size": 500}),
            );
        }
        let tenant = req["tenant_id"].as_str().unwrap_or("?").to_owned();
        let t0 = std::time::Instant::now();
        let opts = crate::migrate::RunOptions {
            wait_scale: 0.01,
            workers: 2,
            live: false,
        };
        let report = crate::migrate::run_local(deps.clone(), req, opts).await?;
        let hist = dir
            .join("history")
            .join(format!("{}.json", report.exec.name));
        write_history(&hist, &report.exec)?;
        finish(&report.exec)?;
        let rec = deps
            .migrations()?
            .get(&TenantId::parse(&tenant)?)
            .await?
            .context("no migration record")?;
        let copied: u64 = rec.checkpoints.values().map(|c| c.copied).sum();
        let pause = report.pauses_us.iter().max().copied().unwrap_or(0);
        println!(
            "> {tenant}: {:?} {} -> {}: {:?} in {:.2} s, {copied} records copied across {} systems",
            rec.kind,
            rec.from,
            rec.to,
            rec.phase,
            t0.elapsed().as_secs_f64(),
            rec.systems.len()
        );
        println!(
            "  workload: {} operations, {} failed, {} stale reads, {} acknowledged writes missing; longest write pause {:.1} ms",
            report.ops,
            report.failed,
            report.stale,
            report.lost,
            pause as f64 / 1000.0
        );
        if report.failed + report.stale + report.lost > 0 {
            bail!("the migration of {tenant} lost or failed operations");
        }
        let equal = rec.fingerprints.values().all(|(a, b)| a == b);
        println!(
            "  source and target fingerprints equal in every system: {equal}; history {}",
            hist.display()
        );
        if rec.transform != lifecycle::migration::Transform::None {
            let ds = ports::migrate::Locator::dataset(&*deps, &rec.systems[0], &rec.target)?;
            if let Some(r) = ds
                .scan(&TenantId::parse(&tenant)?, None, 1)
                .await?
                .into_iter()
                .next()
            {
                let body = String::from_utf8_lossy(r.body.as_deref().unwrap_or_default())
                    .chars()
                    .take(60)
                    .collect::<String>();
                println!("  a {} record at {}: {body}...", rec.systems[0], rec.target);
            }
        }
    }

    println!("\npublishing checkpoints outside the ledger (signed notes, C2SP tlog-checkpoint):");
    super::ledger::publish_all(&deps, None).await?;
    let pem_path = dir.join("ledger-public-key.pem");
    std::fs::write(
        &pem_path,
        public_key_to_pem(deps.signer().await?.public_key())?,
    )?;

    println!("\nverifying offline, trusting only {}:", pem_path.display());
    let ring = key_ring(&[pem_path.as_path()], None)?;
    let expected = crate::verify::published(&**deps.checkpoints()?, &ring).await?;
    let opts = crate::verify::VerifyOptions {
        checkpoints: expected,
        ..Default::default()
    };
    for r in crate::verify::verify_ledger_with(&*deps.ledger, &ring, &opts).await? {
        match r.outcome {
            Ok(n) => println!(
                "  ledger chain {}: {n} entries, every hash, link, signature and Merkle root valid; consistent with its checkpoint",
                r.chain
            ),
            Err(f) => bail!(
                "ledger chain {} broken at seq {}: {}",
                r.chain,
                f.seq,
                f.reason
            ),
        }
    }
    for req in &scenarios.erasure_requests {
        let id = req["request_id"].as_str().unwrap_or("?");
        let path = dir.join("certificates").join(format!("{id}.json"));
        let doc = verify_certificate_file(&path, &ring)?;
        let seq = doc["certificate"]["seq"].as_u64().unwrap_or(0);
        let r = steps::checkpoint::receipt(
            &*deps.ledger,
            &**deps.checkpoints()?,
            lifecycle::erasure::ERASURE_CHAIN,
            seq,
            &ring,
        )
        .await?;
        let proof_path = path.with_extension("tlog-proof");
        std::fs::write(&proof_path, r.to_text())?;
        super::cert::verify_receipt(&doc, &r.to_text(), &ring)?;
        println!(
            "  certificate {} valid; receipt {} ({} hashes) proves it is on the ledger",
            path.display(),
            proof_path.display(),
            r.proof.len()
        );
    }
    let first = scenarios.erasure_requests[0]["request_id"]
        .as_str()
        .unwrap_or("?");
    println!("\npublic key: {}", pem_path.display());
    // The default data dir needs no flag; any other is named in the commands shown.
    let mut dd = if dir == Path::new(".tenant-world") {
        String::new()
    } else {
        format!(" --data-dir {}", dir.display())
    };
    // On services, the commands name the catalog and reach moto through the environment.
    let env = match &services {
        Some(s) => {
            dd.push_str(&format!(" --catalog {}", s.catalog_path.display()));
            format!(
                "AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 ",
                s.moto
            )
        }
        None => String::new(),
    };
    println!(
        "next, on this world{}:",
        if dd.is_empty() {
            " (no flags needed)"
        } else {
            ""
        }
    );
    println!(
        "  {env}cargo run -q -p tenantctl --{dd} ledger verify --trust {}",
        pem_path.display()
    );
    println!(
        "  {env}cargo run -q -p tenantctl --{dd} cert verify {0}/certificates/{first}.json --trust {1} --receipt {0}/certificates/{first}.tlog-proof",
        dir.display(),
        pem_path.display()
    );
    println!("  {env}cargo run -q -p tenantctl --{dd} count --tenant tenant_004_departed_customer");
    println!("check a certificate with openssl alone:");
    println!("  cert={}/certificates/{first}.json", dir.display());
    println!(
        "  jq -cjS .certificate \"$cert\" > body.json     # RFC 8785 form for these bodies (ASCII keys, integers)"
    );
    println!("  jq -r .signature.der_base64 \"$cert\" | base64 -d > sig.der");
    println!(
        "  openssl dgst -sha256 -verify {} -signature sig.der body.json",
        pem_path.display()
    );
    println!("histories: {}/history/*.json", dir.display());
    Ok(())
}
