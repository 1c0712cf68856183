//! `tenantctl bench backup`: one tenant of N PostgreSQL rows and M S3 objects (moto) backed
//! up by the backup pipe (the steps the backup functions call: begin, export each system
//! in resumable pages, zstd, AES-256-GCM under the tenant's key, manifest, certificate)
//! into an S3 archive, against the peers doing the same work in the same run:
//! `psql COPY ... TO STDOUT | zstd` for the rows and `rclone copy` to a `crypt` remote (on
//! the same moto) for the objects. Then the restore of that backup against
//! `zstd -d | psql COPY FROM` + `rclone copy` back from the crypt remote, the
//! point-in-time replay rate of an incremental backup, and the bytes stored per record
//! against the plain zstd of the same export.

use crate::fixtures::{bar, moto_config, moto_s3, versioned_bucket};
use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use lifecycle::TenantId;
use lifecycle::backup::{BackupRequest, RestoreRequest};
use ports::Services;
use ports::migrate::{Locator as _, Rec};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stores::{ConnectOptions, Deps};

/// What the benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Connection string of the PostgreSQL server.
    pub pg_url: String,
    /// moto's URL.
    pub endpoint: String,
    /// Rows of the tenant.
    pub rows: usize,
    /// Objects of the tenant.
    pub objects: usize,
    /// Rows changed between the full and the incremental backup.
    pub changes: usize,
    /// Requests in flight for S3, for every tool.
    pub concurrency: usize,
}

const TENANT: &str = "bench_backup";
const PREFIX: &str = "tenants/bench_backup/";

/// The bench's catalog: PostgreSQL and S3 archived in `archive`; without `with_s3`, the
/// PostgreSQL system alone (to time its export with nothing beside it).
fn catalog(
    p: &Plan,
    schema: &str,
    b: &Buckets,
    archive: &str,
    with_s3: bool,
) -> Result<lifecycle::Catalog> {
    let mut text = format!(
        r#"environment = "bench"
ledger = {{ backend = "embedded" }}
legal_holds = {{ backend = "embedded" }}
signer = {{ backend = "local" }}
[backup]
archive = {{ backend = "s3", bucket = "{archive}" }}
keys = {{ backend = "local" }}
[[systems]]
name = "postgresql"
kind = "relational"
backend = "postgres"
url = "{url}"
schema = "{schema}"
"#,
        url = p.pg_url,
    );
    if with_s3 {
        text.push_str(&format!(
            r#"[[systems]]
name = "s3"
kind = "objects"
backend = "s3"
bucket = "{home}"
prefix = "tenants/{{tenant_id}}/"
max_concurrency = {conc}
locations = {{ restore = "{restore}", pit = "{pit}" }}
"#,
            home = b.home,
            restore = b.restore,
            pit = b.pit,
            conc = p.concurrency,
        ));
    }
    Ok(lifecycle::Catalog::from_toml(&text)?)
}

/// The buckets of one run.
struct Buckets {
    home: String,
    archive: String,
    restore: String,
    pit: String,
    crypt: String,
    peer_restore: String,
}

fn row(i: usize, rev: u64) -> Rec {
    let plan = ["free", "team", "enterprise"][i % 3];
    let body = json!({
        "customer": format!("Customer {i:06}"),
        "email": format!("person.{i:06}@bench-corp.example"),
        "plan": plan,
        "seats": i % 250,
        "notes": format!("account opened in region {} with {} projects, revision {rev}", i % 7, i % 31),
    });
    Rec {
        key: format!("accounts/{i:07}"),
        rev,
        body: Some(body.to_string().into_bytes()),
    }
}

/// About 1 KiB of text per object, different in every object (words drawn by a
/// xorshift from the object's index), so that neither side gains from repeats across
/// objects that real documents would not have.
fn object(i: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "invoice", "tenant", "report", "quarter", "revenue", "contract", "renewal", "shipment",
        "support", "ticket", "region", "forecast", "budget", "vendor", "audit", "policy",
    ];
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut text = String::with_capacity(1024);
    while text.len() < 960 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(WORDS[(x % 16) as usize]);
        text.push_str(&format!(" {} ", x % 10_000));
    }
    json!({"title": format!("document {i}"), "pages": i % 40, "text": text})
        .to_string()
        .into_bytes()
}

/// Runs `sh -c script` with the environment given, returns its time.
fn shell(what: &str, script: &str, env: &[(&str, &str)]) -> Result<Duration> {
    let t = Instant::now();
    let out = Command::new("sh")
        .args(["-c", script])
        .envs(env.iter().copied())
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

fn present(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Bytes and objects under a prefix of a bucket.
async fn usage(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<(u64, u64)> {
    let (mut bytes, mut n) = (0u64, 0u64);
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(p) = pages.next().await {
        for o in p.context("ListObjectsV2")?.contents() {
            bytes += o.size().unwrap_or(0).max(0) as u64;
            n += 1;
        }
    }
    Ok((bytes, n))
}

/// Exports one system through the pipe, a call of a second at a time as the machine's
/// Lambda calls would; returns its time.
async fn export(svc: &dyn Services, backup_id: &str, system: &str, total: u64) -> Result<Duration> {
    let tenant = TenantId::parse(TENANT)?;
    let t = Instant::now();
    let b = bar(total, &format!("backup {system}"));
    loop {
        let soon = Instant::now() + Duration::from_secs(1);
        let e = steps::backup::export_step(svc, &tenant, backup_id, system, soon).await?;
        b.set_position(e.records);
        if e.done {
            break;
        }
    }
    b.finish_and_clear();
    Ok(t.elapsed())
}

/// A backup through the pipe, every system at once as the machine's Map runs them.
async fn backup(
    deps: &Deps,
    kind: &str,
    totals: &[(String, u64)],
) -> Result<(String, Duration, Vec<(String, Duration)>)> {
    let svc: &dyn Services = deps;
    let tenant = TenantId::parse(TENANT)?;
    let req = BackupRequest::parse(&json!({"tenant_id": TENANT, "kind": kind}))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    let begun = steps::backup::begin(svc, &req).await?;
    let parts = futures::future::try_join_all(begun.systems.iter().map(|s| {
        let total = totals.iter().find(|(n, _)| n == s).map_or(0, |(_, n)| *n);
        let id = begun.backup_id.clone();
        async move { anyhow::Ok((s.clone(), export(svc, &id, s, total).await?)) }
    }))
    .await?;
    steps::backup::finish(svc, &tenant, &begun.backup_id).await?;
    Ok((begun.backup_id, t.elapsed(), parts))
}

/// A restore through the pipe; returns its time, the time spent replaying increments (the
/// calls that began past the chain's first backup), records written, and whether the
/// restored fingerprints equal the manifest's. `per_chunk` makes each call replay one
/// chunk, so that the increments' time is exact.
async fn restore(
    deps: &Deps,
    req: serde_json::Value,
    total: u64,
    per_chunk: bool,
) -> Result<(Duration, Duration, u64, bool)> {
    let svc: &dyn Services = deps;
    let (req, tenant) = RestoreRequest::parse(&req).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    let plan = steps::backup::plan_restore(svc, &req, &tenant).await?;
    let b = bar(total, &format!("restore to {}", plan.to));
    let mut in_increments = Duration::ZERO;
    let mut written = 0;
    for sp in &plan.systems {
        let mut p = steps::backup::RestoreProgress {
            system: sp.system.clone(),
            ..Default::default()
        };
        let before = written;
        while !p.done {
            let began_in_increment = p.backup_index > 0;
            let call = Instant::now();
            p = steps::backup::restore_step(
                svc,
                &plan,
                p,
                Instant::now() + Duration::from_millis(if per_chunk { 0 } else { 1000 }),
            )
            .await?;
            if began_in_increment {
                in_increments += call.elapsed();
            }
            b.set_position(before + p.applied);
        }
        written += p.applied;
    }
    let done = steps::backup::finish_restore(svc, &plan).await?;
    b.finish_and_clear();
    Ok((t.elapsed(), in_increments, written, done.matches_manifest))
}

/// Runs the benchmark and prints its tables.
pub async fn run(data_dir: &Path, plan: Plan) -> Result<()> {
    if plan.rows == 0 || plan.objects == 0 || plan.concurrency == 0 || plan.changes > plan.rows {
        bail!(
            "--rows, --objects and --concurrency must be at least 1, and --changes at most --rows"
        );
    }
    for (bin, how) in [
        ("psql", "install the Debian package postgresql-client"),
        ("zstd", "install the Debian package zstd"),
        (
            "rclone",
            "install the Debian package rclone (scripts/bootstrap bench does)",
        ),
    ] {
        if !present(bin) {
            bail!("{bin} is missing: {how}");
        }
    }
    let (client, conn) = tokio_postgres::connect(&plan.pg_url, tokio_postgres::NoTls)
        .await
        .context("connect to PostgreSQL (set --pg-url or TENANT_PG_URL)")?;
    tokio::spawn(conn);
    let cfg = moto_config(&plan.endpoint).await;
    let s3 = moto_s3(&cfg);
    let stamp = std::process::id();
    let [
        home,
        archive,
        restore_b,
        pit,
        crypt,
        peer_restore,
        archive_pg,
    ] = [
        "home",
        "archive",
        "restore",
        "pit",
        "crypt",
        "peer-restore",
        "archive-pg",
    ]
    .map(|b| format!("bench-bk-{b}-{stamp}"));
    for b in [
        &home,
        &archive,
        &restore_b,
        &pit,
        &crypt,
        &peer_restore,
        &archive_pg,
    ] {
        versioned_bucket(&s3, b).await?;
    }
    let buckets = Buckets {
        home,
        archive,
        restore: restore_b,
        pit,
        crypt,
        peer_restore,
    };
    let schema = steps::testkit::unique("bench_bk")
        .to_lowercase()
        .replace('-', "_");
    let dir = data_dir.join(format!("bench-backup-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    let deps = Arc::new(
        Deps::connect(
            catalog(&plan, &schema, &buckets, &buckets.archive, true)?,
            ConnectOptions {
                world: Some(dir.join("world.db")),
                aws: Some(cfg),
                read_only: false,
            },
        )
        .await?,
    );
    let tenant = TenantId::parse(TENANT)?;

    // Seed: the rows through the dataset (its table), the objects straight to S3.
    let home_pg = deps.dataset("postgresql", lifecycle::migration::HOME)?;
    home_pg.provision(&tenant).await?;
    let b = bar(plan.rows as u64, "seeding PostgreSQL");
    for start in (0..plan.rows).step_by(1000) {
        let page: Vec<Rec> = (start..(start + 1000).min(plan.rows))
            .map(|i| row(i, 1))
            .collect();
        home_pg.apply_many(&tenant, &page).await?;
        b.inc(page.len() as u64);
    }
    b.finish_and_clear();
    client.batch_execute("ANALYZE").await.ok();
    let b = bar(plan.objects as u64, "seeding S3 (moto)");
    let seeded: Vec<Result<()>> = futures::stream::iter(0..plan.objects)
        .map(|i| {
            let (s3, bucket, b) = (s3.clone(), buckets.home.clone(), b.clone());
            async move {
                s3.put_object()
                    .bucket(&bucket)
                    .key(format!("{PREFIX}docs/{i:06}.json"))
                    .body(object(i).into())
                    .send()
                    .await
                    .context("PutObject")?;
                b.inc(1);
                Ok(())
            }
        })
        .buffer_unordered(plan.concurrency)
        .collect()
        .await;
    seeded.into_iter().collect::<Result<Vec<_>>>()?;
    b.finish_and_clear();

    // Ours: a full backup of both systems.
    let totals = [
        ("postgresql".to_owned(), plan.rows as u64),
        ("s3".to_owned(), plan.objects as u64),
    ];
    let (full_id, ours, parts) = backup(&deps, "full", &totals).await?;
    let part_time = |s: &str| {
        parts
            .iter()
            .find(|(n, _)| n == s)
            .map_or(Duration::ZERO, |(_, d)| *d)
    };
    let manifest = steps::backup::list(&*deps, &tenant)
        .await?
        .into_iter()
        .find(|m| m.backup_id == full_id)
        .context("the backup's manifest")?;
    let part_bytes = |s: &str| -> (u64, u64) {
        manifest
            .systems
            .iter()
            .find(|p| p.system == s)
            .map_or((0, 0), |p| {
                (p.chunks.iter().map(|c| c.bytes).sum(), p.records)
            })
    };
    // The PostgreSQL part alone: a backup of that system only, into an archive of its
    // own (so the incremental below still builds on the backup of both).
    let pg_only = Deps::connect(
        catalog(&plan, &schema, &buckets, &archive_pg, false)?,
        ConnectOptions {
            world: Some(dir.join("world-pg.db")),
            aws: Some(moto_config(&plan.endpoint).await),
            read_only: false,
        },
    )
    .await?;
    // The best of three, for it and for the raw COPY it is held against: each takes a
    // fraction of a second, so one run is at the mercy of whatever else the machine does.
    let mut pg_alone = Duration::MAX;
    for _ in 0..3 {
        pg_alone = pg_alone.min(backup(&pg_only, "full", &totals[..1]).await?.1);
    }
    let (pg_bytes, pg_records) = part_bytes("postgresql");
    let (s3_bytes, s3_records) = part_bytes("s3");
    if pg_records != plan.rows as u64 || s3_records != plan.objects as u64 {
        bail!("the backup holds {pg_records} rows and {s3_records} objects");
    }

    // Peers, in series, on the same servers.
    let select = format!(
        r#"SELECT tenant, key, rev, body FROM "{schema}".records WHERE tenant = '{TENANT}'"#
    );
    let dump = dir.join("rows.copy.zst");
    let dump_s = dump.display().to_string();
    let pg_env = [("PGURL", plan.pg_url.as_str()), ("DUMP", dump_s.as_str())];
    let mut raw_copy = Duration::MAX;
    for _ in 0..3 {
        raw_copy = raw_copy.min(shell(
            "psql COPY TO STDOUT",
            &format!(r#"psql "$PGURL" -qAt -c "COPY ({select}) TO STDOUT" > /dev/null"#),
            &pg_env,
        )?);
    }
    let copy_zstd = shell(
        "psql COPY | zstd",
        &format!(r#"psql "$PGURL" -qAt -c "COPY ({select}) TO STDOUT" | zstd -q -f -o "$DUMP""#),
        &pg_env,
    )?;
    let zstd_bytes = std::fs::metadata(&dump)?.len();
    let obscured = Command::new("rclone")
        .args(["obscure", "bench-backup-passphrase"])
        .output()
        .context("rclone obscure")?;
    let obscured = String::from_utf8_lossy(&obscured.stdout).trim().to_owned();
    let crypt_remote = format!("moto:{}/crypt", buckets.crypt);
    let conc = plan.concurrency.to_string();
    let rclone_env: Vec<(&str, &str)> = vec![
        ("RCLONE_CONFIG_MOTO_TYPE", "s3"),
        ("RCLONE_CONFIG_MOTO_PROVIDER", "Other"),
        ("RCLONE_CONFIG_MOTO_ENDPOINT", &plan.endpoint),
        ("RCLONE_CONFIG_MOTO_ACCESS_KEY_ID", "testing"),
        ("RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY", "testing"),
        ("RCLONE_CONFIG_MOTO_REGION", "us-east-1"),
        ("RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE", "true"),
        ("RCLONE_CONFIG_CRYPT_TYPE", "crypt"),
        ("RCLONE_CONFIG_CRYPT_REMOTE", &crypt_remote),
        ("RCLONE_CONFIG_CRYPT_PASSWORD", &obscured),
        ("RCLONE_CONFIG", "/dev/null"),
        ("TRANSFERS", &conc),
    ];
    let home_src = format!("moto:{}/{PREFIX}", buckets.home);
    let back_dst = format!("moto:{}/{PREFIX}", buckets.peer_restore);
    let rclone_up = shell(
        "rclone copy to crypt",
        &format!(
            r#"rclone copy "{home_src}" crypt: --transfers "$TRANSFERS" --checkers "$TRANSFERS" --s3-no-check-bucket"#
        ),
        &rclone_env,
    )?;
    let (crypt_bytes, crypt_objects) = usage(&s3, &buckets.crypt, "crypt/").await?;
    if crypt_objects != plan.objects as u64 {
        bail!("rclone wrote {crypt_objects} of {} objects", plan.objects);
    }

    // Restores: ours into location `restore`, verified; the peers' back from their copies.
    let (ours_restore, _, restored, matches) = restore(
        &deps,
        json!({"backup_id": full_id, "to": "restore"}),
        (plan.rows + plan.objects) as u64,
        false,
    )
    .await?;
    if !matches || restored != (plan.rows + plan.objects) as u64 {
        bail!("the restore wrote {restored} records; matches the manifest: {matches}");
    }
    let peer = format!("{schema}__peer");
    client
        .batch_execute(&format!(
            r#"CREATE SCHEMA "{peer}"; CREATE TABLE "{peer}".records (LIKE "{schema}".records INCLUDING ALL);"#
        ))
        .await?;
    let zstd_restore = shell(
        "zstd -d | psql COPY FROM STDIN",
        &format!(
            r#"zstd -q -d -c "$DUMP" | psql "$PGURL" -q -c "COPY \"{peer}\".records (tenant, key, rev, body) FROM STDIN""#
        ),
        &pg_env,
    )?;
    let rclone_down = shell(
        "rclone copy from crypt",
        &format!(
            r#"rclone copy crypt: "{back_dst}" --transfers "$TRANSFERS" --checkers "$TRANSFERS" --s3-no-check-bucket"#
        ),
        &rclone_env,
    )?;
    let (_, back) = usage(&s3, &buckets.peer_restore, PREFIX).await?;
    if back != plan.objects as u64 {
        bail!("rclone restored {back} of {} objects", plan.objects);
    }

    // Point in time: change rows, take an incremental, restore the chain to after it.
    // Through the application's write path, which the change feed records (the bulk
    // apply that seeded the rows is a migration's copy, which it does not).
    let b = bar(plan.changes as u64, "changing rows");
    for i in 0..plan.changes {
        let r = row(i, 2);
        home_pg.write(&tenant, &r.key, r.body.as_deref()).await?;
        b.inc(1);
    }
    b.finish_and_clear();
    let (inc_id, inc_time, _) = backup(
        &deps,
        "incremental",
        &[("postgresql".to_owned(), plan.changes as u64)],
    )
    .await?;
    let inc = steps::backup::list(&*deps, &tenant)
        .await?
        .into_iter()
        .find(|m| m.backup_id == inc_id)
        .context("the incremental's manifest")?;
    let inc_records: u64 = inc.systems.iter().map(|p| p.records + p.tombstones).sum();
    if inc_records != plan.changes as u64 {
        bail!(
            "the incremental holds {inc_records} records, {} rows changed",
            plan.changes
        );
    }
    let t_after = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("format")?;
    let (pit_time, replay, _, _) = restore(
        &deps,
        json!({"backup_id": full_id, "to": "pit", "to_time": t_after}),
        (plan.rows + plan.objects + plan.changes) as u64,
        true,
    )
    .await?;

    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    let recs = (plan.rows + plan.objects) as f64;
    let peers_backup = copy_zstd + rclone_up;
    let peers_restore = zstd_restore + rclone_down;
    println!(
        "backup of one tenant: {} PostgreSQL rows + {} S3 objects ({} B each), PostgreSQL {}, S3 on moto {}, {} requests in flight for every tool:",
        plan.rows,
        plan.objects,
        object(0).len(),
        plan.pg_url,
        plan.endpoint,
        plan.concurrency
    );
    println!("| path | time | records/s | time vs ours |");
    println!("| --- | ---: | ---: | ---: |");
    let line = |what: &str, d: Duration, n: f64, base: Duration| {
        println!(
            "| {what} | {:.2} s | {:.0} | {:.2}x |",
            secs(d),
            n / secs(d),
            secs(d) / secs(base)
        );
    };
    line(
        "tenantctl backup, both systems (zstd + AES-256-GCM, manifest, certificate)",
        ours,
        recs,
        ours,
    );
    line(
        "  its PostgreSQL part",
        part_time("postgresql"),
        plan.rows as f64,
        ours,
    );
    line(
        "tenantctl backup of the PostgreSQL system alone (best of 3)",
        pg_alone,
        plan.rows as f64,
        ours,
    );
    line("  its S3 part", part_time("s3"), plan.objects as f64, ours);
    line(
        "psql COPY TO STDOUT \\| zstd (rows, not encrypted)",
        copy_zstd,
        plan.rows as f64,
        ours,
    );
    line(
        "rclone copy to a crypt remote (objects, encrypted)",
        rclone_up,
        plan.objects as f64,
        ours,
    );
    line("the peers together (in series)", peers_backup, recs, ours);
    line(
        "psql COPY TO STDOUT > /dev/null (the raw export, best of 3)",
        raw_copy,
        plan.rows as f64,
        ours,
    );
    line(
        "tenantctl restore to a new location (verified against the manifest)",
        ours_restore,
        recs,
        ours_restore,
    );
    line(
        "zstd -d \\| psql COPY FROM STDIN + rclone copy from crypt",
        peers_restore,
        recs,
        ours_restore,
    );
    line(
        &format!(
            "tenantctl incremental backup of {} changed rows",
            plan.changes
        ),
        inc_time,
        plan.changes as f64,
        ours,
    );
    println!(
        "| point-in-time restore, full + incremental, one chunk a call (replaying the {} changes: {:.2} s) | {:.2} s | {:.0} changes replayed/s | |",
        plan.changes,
        secs(replay),
        secs(pit_time),
        plan.changes as f64 / secs(replay)
    );
    println!();
    println!("| bytes stored | total | per record | vs the peer |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| tenantctl, PostgreSQL part | {pg_bytes} | {:.1} | {:.2}x |",
        pg_bytes as f64 / plan.rows as f64,
        pg_bytes as f64 / zstd_bytes.max(1) as f64
    );
    println!(
        "| psql COPY \\| zstd | {zstd_bytes} | {:.1} | |",
        zstd_bytes as f64 / plan.rows as f64
    );
    println!(
        "| tenantctl, S3 part | {s3_bytes} | {:.1} | {:.2}x |",
        s3_bytes as f64 / plan.objects as f64,
        s3_bytes as f64 / crypt_bytes.max(1) as f64
    );
    println!(
        "| rclone crypt | {crypt_bytes} | {:.1} | |",
        crypt_bytes as f64 / plan.objects as f64
    );
    println!(
        "backup: the peers together take {:.2}x ours; a backup of the PostgreSQL system alone takes {:.2}x the raw COPY (target: within 2x; beside the S3 part {:.2}x); restore: the peers take {:.2}x ours",
        secs(peers_backup) / secs(ours),
        secs(pg_alone) / secs(raw_copy),
        secs(part_time("postgresql")) / secs(raw_copy),
        secs(peers_restore) / secs(ours_restore)
    );

    for s in [
        schema.clone(),
        format!("{schema}__restore"),
        format!("{schema}__pit"),
        peer,
    ] {
        client
            .batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{s}" CASCADE"#))
            .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
