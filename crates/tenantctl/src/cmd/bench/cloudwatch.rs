//! `tenantctl bench cloudwatch-erase`: one tenant's log streams (and its events in a
//! shared stream) erased on moto by the CloudWatch Logs product, against the aws CLI
//! making the same calls for an equal tenant (describe the streams, delete each one).

use crate::fixtures::{bar, moto_config};
use anyhow::{Result, bail};
use lifecycle::{Catalog, SystemKind, TenantId};
use ports::TenantStore;
use std::process::Command;
use std::time::{Duration, Instant};
use stores::cloudwatch::{CloudWatchTenantStore, Config};

fn store(client: aws_sdk_cloudwatchlogs::Client, group: &str) -> Result<CloudWatchTenantStore> {
    let text = format!(
        "environment = \"bench\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"cloudwatch\"\nkind = \"logs\"\nbackend = \"cloudwatch\"\nstream_groups = [{{ group = \"{group}\", stream_prefix = \"tenant-{{tenant_id}}/\" }}]"
    );
    let c = Config::parse(&Catalog::from_toml(&text)?.systems[0])?;
    Ok(CloudWatchTenantStore::new(
        client,
        "cloudwatch",
        SystemKind::Logs,
        c,
    ))
}

/// Seeds `streams` streams of `events` events for `tenant` in `group`.
async fn seed(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    tenant: &str,
    streams: usize,
    events: usize,
) -> Result<()> {
    let b = bar(streams as u64, "streams");
    for s in 0..streams {
        let stream = format!("tenant-{tenant}/s{s:04}");
        client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(&stream)
            .send()
            .await?;
        let now = ports::migrate::unix_ms() as i64;
        let batch = (0..events)
            .map(|i| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now + i as i64)
                    .message(format!("{{\"tenant_id\":\"{tenant}\",\"n\":{i}}}"))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(&stream)
            .set_log_events(Some(batch))
            .send()
            .await?;
        b.inc(1);
    }
    b.finish_and_clear();
    Ok(())
}

/// Runs the benchmark and prints its table.
pub async fn run(endpoint: &str, streams: usize, events: usize, aws_cli: &str) -> Result<()> {
    let cfg = moto_config(endpoint).await;
    let client = aws_sdk_cloudwatchlogs::Client::new(&cfg);
    let group = format!("/bench/cw-{}", std::process::id());
    client
        .create_log_group()
        .log_group_name(&group)
        .send()
        .await?;
    let (ours, theirs) = ("bench_ours", "bench_cli");
    seed(&client, &group, ours, streams, events).await?;
    seed(&client, &group, theirs, streams, events).await?;
    let records = (streams * events) as f64;

    let s = store(client.clone(), &group)?;
    let t = TenantId::parse(ours)?;
    let start = Instant::now();
    let pass = s
        .erase(&t, Instant::now() + Duration::from_secs(600))
        .await?;
    let our_time = start.elapsed();
    if !pass.complete || s.count(&t).await? != 0 {
        bail!("our erasure left events behind");
    }

    let cli = |args: &[&str]| -> Result<Vec<u8>> {
        let out = Command::new(aws_cli)
            .args([
                "--endpoint-url",
                endpoint,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()?;
        if !out.status.success() {
            bail!(
                "aws {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    };
    let start = Instant::now();
    let listed: serde_json::Value = serde_json::from_slice(&cli(&[
        "logs",
        "describe-log-streams",
        "--log-group-name",
        &group,
        "--log-stream-name-prefix",
        &format!("tenant-{theirs}/"),
    ])?)?;
    let names: Vec<String> = listed["logStreams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["logStreamName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let b = bar(names.len() as u64, "aws logs delete-log-stream");
    for n in &names {
        cli(&[
            "logs",
            "delete-log-stream",
            "--log-group-name",
            &group,
            "--log-stream-name",
            n,
        ])?;
        b.inc(1);
    }
    b.finish_and_clear();
    let cli_time = start.elapsed();
    if names.len() != streams {
        bail!("the aws CLI saw {} streams, not {streams}", names.len());
    }
    client
        .delete_log_group()
        .log_group_name(&group)
        .send()
        .await?;

    let rate = |d: Duration| records / d.as_secs_f64().max(1e-9);
    println!(
        "erase one tenant's {streams} log streams of {events} events each (CloudWatch Logs on moto)"
    );
    println!(
        "{:<50} {:>10} {:>9} {:>12} {:>8}",
        "tool", "events", "seconds", "events/s", "speed"
    );
    println!(
        "{:<50} {:>10} {:>9.2} {:>12.0} {:>7.2}x",
        "tenantctl (count, then DeleteLogStream)",
        pass.erased,
        our_time.as_secs_f64(),
        rate(our_time),
        cli_time.as_secs_f64() / our_time.as_secs_f64().max(1e-9)
    );
    println!(
        "{:<50} {:>10} {:>9.2} {:>12.0} {:>7.2}x",
        "aws logs describe-log-streams + delete-log-stream",
        streams * events,
        cli_time.as_secs_f64(),
        rate(cli_time),
        1.0
    );
    Ok(())
}
