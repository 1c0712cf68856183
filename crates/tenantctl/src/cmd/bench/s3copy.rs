//! `tenantctl bench s3-copy`: the bulk copy of one tenant's S3 prefix by the migration's
//! sync step, by `rclone copy` and by `aws s3 sync`, same objects, same server, same run,
//! each into its own empty bucket and with the same request concurrency.

use crate::fixtures::{bulk, catalog_with, moto_config, moto_s3, versioned_bucket};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFIX: &str = "tenants/bench_copy/";

/// What the comparison needs besides the endpoint.
#[derive(Debug, Clone)]
pub struct S3CopyOptions {
    /// Objects under the tenant's prefix.
    pub objects: usize,
    /// Requests in flight, for every tool.
    pub concurrency: usize,
    /// The aws CLI.
    pub aws_cli: String,
    /// The rclone binary.
    pub rclone: String,
}

fn tool_present(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn count(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<usize> {
    let mut n = 0;
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(PREFIX)
        .into_paginator()
        .send();
    while let Some(p) = pages.next().await {
        n += p?
            .contents()
            .iter()
            .filter(|o| !o.key().unwrap_or_default().contains("/~feed/"))
            .count();
    }
    Ok(n)
}

fn run_tool(name: &str, cmd: &mut Command) -> Result<Duration> {
    let t0 = Instant::now();
    let out = cmd.output().with_context(|| format!("running {name}"))?;
    let took = t0.elapsed();
    if !out.status.success() {
        bail!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(took)
}

/// Seeds the prefix, copies it three ways, checks every copy is complete, prints the table.
pub async fn run(data_dir: &Path, endpoint: &str, o: S3CopyOptions) -> Result<()> {
    if o.objects == 0 || o.concurrency == 0 {
        bail!("--objects and --concurrency must be at least 1");
    }
    for (bin, how) in [
        (&o.aws_cli, "scripts/bootstrap installs it in .venv"),
        (
            &o.rclone,
            "install the Debian package rclone (scripts/bootstrap does, as root)",
        ),
    ] {
        if !tool_present(bin) {
            bail!("{bin} is missing: {how}");
        }
    }
    let cfg = moto_config(endpoint).await;
    let s3 = moto_s3(&cfg);
    let stamp = std::process::id();
    let [home, ours, rclone_dst, aws_dst] =
        ["home", "sync", "rclone", "awscli"].map(|b| format!("bench-{b}-{stamp}"));
    for b in [&home, &ours, &rclone_dst, &aws_dst] {
        versioned_bucket(&s3, b).await?;
    }
    println!(
        "bulk copy of one tenant's S3 prefix on {endpoint} (moto): {} objects, {} requests in flight for every tool",
        o.objects, o.concurrency
    );
    let seeded: Vec<Result<()>> = futures::stream::iter(0..o.objects)
        .map(|i| {
            let (s3, home) = (s3.clone(), home.clone());
            async move {
                let body = json!({"title": format!("document {i}"), "pages": i % 40,
                    "text": "x".repeat(512)})
                .to_string();
                s3.put_object()
                    .bucket(&home)
                    .key(format!("{PREFIX}doc/{i:06}.json"))
                    .body(body.into_bytes().into())
                    .send()
                    .await
                    .context("PutObject")?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    seeded.into_iter().collect::<Result<Vec<_>>>()?;

    // rclone: same remote on both sides, so it copies server-side (CopyObject).
    let rclone_env = [
        ("RCLONE_CONFIG_MOTO_TYPE", "s3"),
        ("RCLONE_CONFIG_MOTO_PROVIDER", "Other"),
        ("RCLONE_CONFIG_MOTO_ENDPOINT", endpoint),
        ("RCLONE_CONFIG_MOTO_ACCESS_KEY_ID", "testing"),
        ("RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY", "testing"),
        ("RCLONE_CONFIG_MOTO_REGION", "us-east-1"),
        ("RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE", "true"),
    ];
    let conc = o.concurrency.to_string();
    let rclone = run_tool(
        "rclone copy",
        Command::new(&o.rclone)
            .args([
                "copy",
                &format!("moto:{home}/{PREFIX}"),
                &format!("moto:{rclone_dst}/{PREFIX}"),
                "--transfers",
                &conc,
                "--checkers",
                &conc,
                "--s3-no-check-bucket",
                "--config",
                "/dev/null",
            ])
            .envs(rclone_env)
            // The endpoint is plain HTTP on loopback; rclone's S3 client refuses to start
            // when a CA bundle is named for its (custom) transport.
            .env_remove("AWS_CA_BUNDLE"),
    )?;

    // aws s3 sync: also server-side between buckets; concurrency from a private config.
    let aws_cfg = data_dir.join("bench-aws-config");
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(
        &aws_cfg,
        format!(
            "[default]\ns3 =\n  max_concurrent_requests = {}\n",
            o.concurrency
        ),
    )?;
    let aws = run_tool(
        "aws s3 sync",
        Command::new(&o.aws_cli)
            .args([
                "--endpoint-url",
                endpoint,
                "s3",
                "sync",
                "--only-show-errors",
                &format!("s3://{home}/{PREFIX}"),
                &format!("s3://{aws_dst}/{PREFIX}"),
            ])
            .envs([
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
            ])
            .env("AWS_CONFIG_FILE", &aws_cfg),
    )?;

    // The migration's provision + bulk sync steps, as the state machine runs them.
    let catalog = catalog_with(
        "s3",
        &format!(
            "backend = \"s3\"\nbucket = \"{home}\"\nprefix = \"tenants/{{tenant_id}}/\"\nmax_concurrency = {}\nlocations = {{ green = \"{ours}\" }}\n",
            o.concurrency
        ),
    );
    let deps = Arc::new(
        stores::wiring::Deps::connect(
            lifecycle::Catalog::from_toml(&catalog)?,
            stores::wiring::ConnectOptions {
                world: Some(data_dir.join(format!("s3copy-{stamp}.db"))),
                aws: Some(cfg),
                read_only: false,
            },
        )
        .await?,
    );
    let (_, sync) = bulk(&deps, "bench_copy", &["s3"]).await?;

    for (name, b) in [
        ("sync", &ours),
        ("rclone", &rclone_dst),
        ("aws s3 sync", &aws_dst),
    ] {
        let n = count(&s3, b).await?;
        if n != o.objects {
            bail!("{name} copied {n} of {} objects", o.objects);
        }
    }
    let rate = |d: Duration| o.objects as f64 / d.as_secs_f64();
    println!(
        "  {:<44} {:>9} {:>11} {:>14}",
        "", "seconds", "objects/s", "sync is faster"
    );
    for (name, d) in [
        ("tenantctl sync (CopyObject, checkpoints)", sync),
        ("rclone copy (Debian rclone)", rclone),
        ("aws s3 sync (aws CLI v1)", aws),
    ] {
        println!(
            "  {name:<44} {:>9.2} {:>11.0} {:>13.2}x",
            d.as_secs_f64(),
            rate(d),
            d.as_secs_f64() / sync.as_secs_f64()
        );
    }
    println!();
    Ok(())
}
