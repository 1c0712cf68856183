//! `tenantctl bench clone`: one tenant's PostgreSQL rows cloned with five anonymised
//! columns (fake e-mail, fake name, mask, shift-date, fake address) by the clone pipe
//! (the steps the clone functions call: begin, copy pages, scan the target, certify),
//! against the same pipe with no rules (the overhead of anonymising), and against the
//! database copying the rows itself with `INSERT ... SELECT`, plain and with `md5()` on
//! the same five columns, in the same run; then the rate of the PII scan.

use crate::fixtures::bar;
use anyhow::{Context as _, Result, bail};
use lifecycle::TenantId;
use lifecycle::clone::CloneRequest;
use ports::Services;
use ports::migrate::{Locator as _, Rec};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stores::{ConnectOptions, Deps};

/// What the benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Connection string of the PostgreSQL server.
    pub url: String,
    /// Rows of the tenant.
    pub rows: usize,
}

const TENANT: &str = "bench_clone";
/// Runs of each path; the table shows the best.
const TRIALS: usize = 3;

/// The five anonymised columns and what each rule does.
const RULES: &str = r#"
[clone]
strict = true
[[clone.rules]]
system = "postgresql"
field = "/email"
action = "fake"
kind = "email"
[[clone.rules]]
system = "postgresql"
field = "/name"
action = "fake"
kind = "name"
[[clone.rules]]
system = "postgresql"
field = "/phone"
action = "mask"
[[clone.rules]]
system = "postgresql"
field = "/born"
action = "shift-date"
[[clone.rules]]
system = "postgresql"
field = "/address"
action = "fake"
kind = "address"
"#;

fn catalog(url: &str, schema: &str, rules: &str) -> Result<lifecycle::Catalog> {
    let text = format!(
        "environment = \"bench\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"postgresql\"\nkind = \"relational\"\nbackend = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n{rules}"
    );
    Ok(lifecycle::Catalog::from_toml(&text)?)
}

fn row(i: usize) -> Rec {
    let body = json!({
        "email": format!("person.{i:06}@bench-corp.example"),
        "name": format!("Bench Person {i:06}"),
        "phone": format!("+1 415 555 {:04}", i % 10_000),
        "born": format!("19{:02}-{:02}-{:02}", 50 + i % 50, 1 + i % 12, 1 + i % 28),
        "address": format!("{} Main Street, Springfield", 1 + i % 9_999),
        "tier": "gold",
        "orders": i % 17,
    });
    Rec {
        key: format!("customers/{i:07}"),
        rev: 1,
        body: Some(body.to_string().into_bytes()),
    }
}

/// Copy and scan times of one clone through the pipe.
struct Timed {
    copy: Duration,
    scan: Duration,
    copied: u64,
    fields: u64,
    scanned: u64,
    hits: u64,
}

/// One clone through the pipe; `scan` also scans and certifies it (the plain copy holds
/// every original, so its scan would find them all and remove it).
async fn clone(deps: &Deps, target: &str, what: &str, rows: usize, scan: bool) -> Result<Timed> {
    let svc: &dyn Services = deps;
    let tenant = TenantId::parse(TENANT)?;
    let req = CloneRequest::parse(&json!({"tenant_id": TENANT, "as": target}))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let far = || Instant::now() + Duration::from_secs(24 * 3600);
    let t = Instant::now();
    let begun = steps::clone::begin(svc, &req).await?;
    let b = bar(rows as u64, what);
    let mut copied = steps::clone::Copied::default();
    for system in &begun.systems {
        loop {
            // A call of a second, so the bar moves; the pipe resumes from its checkpoint
            // as it does between the clone machine's Lambda calls.
            let soon = Instant::now() + Duration::from_secs(1);
            let p = steps::clone::copy_step(svc, &tenant, &begun.clone_id, system, soon).await?;
            b.set_position(p.read);
            if p.done {
                copied = p;
                break;
            }
        }
    }
    b.finish_and_clear();
    let copy = t.elapsed();
    let t = Instant::now();
    let mut found = lifecycle::clone::scan::Findings::default();
    for system in begun.systems.iter().filter(|_| scan) {
        let s = steps::clone::scan_step(svc, &tenant, &begun.clone_id, system, far()).await?;
        if !s.done {
            bail!("the scan of {system} stopped before its end");
        }
        found.add(&s.findings);
    }
    let scanned = t.elapsed();
    if scan {
        steps::clone::finish(svc, &tenant, &begun.clone_id, far()).await?;
    }
    Ok(Timed {
        copy,
        scan: scanned,
        copied: copied.copied,
        fields: copied.fields,
        scanned: found.scanned,
        hits: found.hits(),
    })
}

async fn timed_sql(c: &tokio_postgres::Client, sql: &str) -> Result<(Duration, u64)> {
    let t = Instant::now();
    let n = c.execute(sql, &[]).await.with_context(|| sql.to_owned())?;
    Ok((t.elapsed(), n))
}

/// Runs the benchmark and prints its table.
pub async fn run(data_dir: &Path, plan: Plan) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(&plan.url, tokio_postgres::NoTls)
        .await
        .context("connect to PostgreSQL (set --pg-url or TENANT_PG_URL)")?;
    tokio::spawn(conn);
    let schema = steps::testkit::unique("bench_cl")
        .to_lowercase()
        .replace('-', "_");
    let dir = data_dir.join(format!("bench-clone-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let connect = |name: &str, rules: &str| {
        // Each world its own directory: the embedded archive lives beside the world file.
        let (url, schema, world) = (
            plan.url.clone(),
            schema.clone(),
            dir.join(name).join("world.db"),
        );
        let rules = rules.to_owned();
        async move {
            if let Some(d) = world.parent() {
                std::fs::create_dir_all(d)?;
            }
            let deps = Deps::connect(
                catalog(&url, &schema, &rules)?,
                ConnectOptions {
                    world: Some(world),
                    ..Default::default()
                },
            )
            .await?;
            anyhow::Ok(Arc::new(deps))
        }
    };
    let anon = connect("anon", RULES).await?;
    let plain = connect("plain", "[clone]\nstrict = false\n").await?;

    let tenant = TenantId::parse(TENANT)?;
    let home = anon.dataset("postgresql", lifecycle::migration::HOME)?;
    home.provision(&tenant).await?;
    let b = bar(plan.rows as u64, "seeding PostgreSQL");
    for start in (0..plan.rows).step_by(1000) {
        let page: Vec<Rec> = (start..(start + 1000).min(plan.rows)).map(row).collect();
        home.apply_many(&tenant, &page).await?;
        b.inc(page.len() as u64);
    }
    b.finish_and_clear();
    client.batch_execute("ANALYZE").await.ok();

    // Best of three, the two pipes taking turns, so a moment of noise on the machine
    // weighs on neither alone; the first clone with rules is scanned and certified.
    let (mut with_rules, mut without): (Option<Timed>, Option<Timed>) = (None, None);
    for trial in 0..TRIALS {
        let a = clone(
            &anon,
            &format!("bench_clone__anon{trial}"),
            "clone, 5 rules",
            plan.rows,
            trial == 0,
        )
        .await?;
        let p = clone(
            &plain,
            &format!("bench_clone__plain{trial}"),
            "clone, no rules",
            plan.rows,
            false,
        )
        .await?;
        with_rules = Some(match with_rules {
            Some(w) => Timed {
                copy: w.copy.min(a.copy),
                ..w
            },
            None => a,
        });
        without = Some(match without {
            Some(w) => Timed {
                copy: w.copy.min(p.copy),
                ..w
            },
            None => p,
        });
    }
    let (Some(with_rules), Some(without)) = (with_rules, without) else {
        bail!("no trial ran");
    };
    if with_rules.hits != 0 {
        bail!(
            "the scan found {} original values in the clone",
            with_rules.hits
        );
    }
    if with_rules.copied != plan.rows as u64 || without.copied != plan.rows as u64 {
        bail!(
            "copied {} and {} rows of {}",
            with_rules.copied,
            without.copied,
            plan.rows
        );
    }
    if with_rules.fields != 5 * plan.rows as u64 {
        bail!(
            "anonymised {} values, expected {}",
            with_rules.fields,
            5 * plan.rows
        );
    }

    let peer = format!("{schema}__peer");
    client
        .batch_execute(&format!(
            r#"CREATE SCHEMA "{peer}"; CREATE TABLE "{peer}".records (LIKE "{schema}".records INCLUDING ALL);"#
        ))
        .await?;
    let md5 = ["email", "name", "phone", "born", "address"]
        .iter()
        .map(|c| format!("'{c}', md5(j->>'{c}')"))
        .collect::<Vec<_>>()
        .join(", ");
    let (mut sql_plain, mut sql_md5) = (Duration::MAX, Duration::MAX);
    for trial in 0..TRIALS {
        let (d1, n1) = timed_sql(
            &client,
            &format!(
                r#"INSERT INTO "{peer}".records (tenant, key, rev, body)
                   SELECT 'peer_plain{trial}', key, rev, body FROM "{schema}".records WHERE tenant = '{TENANT}'"#
            ),
        )
        .await?;
        let (d2, n2) = timed_sql(
            &client,
            &format!(
                r#"INSERT INTO "{peer}".records (tenant, key, rev, body)
                   SELECT 'peer_md5{trial}', key, rev, convert_to((j || jsonb_build_object({md5}))::text, 'UTF8')
                   FROM (SELECT key, rev, convert_from(body, 'UTF8')::jsonb AS j
                         FROM "{schema}".records WHERE tenant = '{TENANT}') s"#
            ),
        )
        .await?;
        if n1 != plan.rows as u64 || n2 != plan.rows as u64 {
            bail!("INSERT ... SELECT copied {n1} and {n2} rows");
        }
        (sql_plain, sql_md5) = (sql_plain.min(d1), sql_md5.min(d2));
    }

    let rows = plan.rows as f64;
    let rate = |d: Duration| rows / d.as_secs_f64().max(1e-9);
    let line = |what: &str, d: Duration| {
        println!(
            "| {what} | {:.2} s | {:.0} | {:.2}x |",
            d.as_secs_f64(),
            rate(d),
            d.as_secs_f64() / without.copy.as_secs_f64().max(1e-9)
        );
    };
    println!(
        "clone {} PostgreSQL rows of one tenant (5 anonymised columns) on {}:",
        plan.rows, plan.url
    );
    println!("| path | time (best of {TRIALS}) | rows/s | time vs the pipe's plain copy |");
    println!("| --- | ---: | ---: | ---: |");
    line(
        "clone pipe, 5 rules (fake e-mail, fake name, mask, shift-date, fake address)",
        with_rules.copy,
    );
    line(
        "clone pipe, no rules (the same pages, no transform)",
        without.copy,
    );
    line(
        "PostgreSQL INSERT ... SELECT with md5() on the 5 columns",
        sql_md5,
    );
    line("PostgreSQL INSERT ... SELECT, plain", sql_plain);
    println!(
        "| PII scan of the anonymised clone ({} records, {} hits) | {:.2} s | {:.0} | |",
        with_rules.scanned,
        with_rules.hits,
        with_rules.scan.as_secs_f64(),
        with_rules.scanned as f64 / with_rules.scan.as_secs_f64().max(1e-9)
    );
    println!(
        "anonymisation overhead over the pipe's plain copy: {:+.0} %; the pipe with rules runs at {:.0} % of PostgreSQL's own md5() copy",
        (with_rules.copy.as_secs_f64() / without.copy.as_secs_f64().max(1e-9) - 1.0) * 100.0,
        sql_md5.as_secs_f64() / with_rules.copy.as_secs_f64().max(1e-9) * 100.0
    );

    for s in [schema.clone(), format!("{schema}__staging"), peer] {
        client
            .batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{s}" CASCADE"#))
            .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
