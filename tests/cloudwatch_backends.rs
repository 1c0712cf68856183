//! The CloudWatch Logs product against moto's server (MOTO_URL): the conformance suite for
//! each place a tenant's events live (a group of its own, streams of its own, streams
//! shared by tenants), and an erasure request through the state machine checked with the
//! aws CLI, other tenants' events kept.

use lifecycle::{Catalog, SystemKind, TenantId};
use ports::TenantStore;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steps::testkit;
use stores::cloudwatch::{CloudWatchTenantStore, Config};

async fn client() -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&e2e::moto_config().await)
}

fn config(toml: &str) -> Config {
    let text = format!(
        "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"cloudwatch\"\nkind = \"logs\"\nbackend = \"cloudwatch\"\n{toml}"
    );
    Config::parse(&Catalog::from_toml(&text).expect("catalog").systems[0]).expect("config")
}

async fn store(toml: &str) -> CloudWatchTenantStore {
    CloudWatchTenantStore::new(client().await, "cloudwatch", SystemKind::Logs, config(toml))
}

/// `aws logs filter-log-events` against moto: the product's own client.
fn aws_events(group: &str, pattern: &str) -> usize {
    let out = Command::new(".venv/bin/aws")
        .current_dir(env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests"))
        .args([
            "logs",
            "filter-log-events",
            "--log-group-name",
            group,
            "--output",
            "json",
        ])
        .args([
            "--filter-pattern",
            pattern,
            "--endpoint-url",
            &e2e::moto_url(),
            "--region",
            "us-east-1",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("the aws CLI of scripts/bootstrap");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ResourceNotFoundException"), "aws logs: {err}");
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["events"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_group_of_the_tenants_own_passes_the_suite() {
    let g = testkit::unique("/suite/own");
    testkit::tenant_store_suite(&store(&format!("groups = [\"{g}/{{tenant_id}}\"]")).await).await;
}

#[tokio::test]
async fn streams_of_the_tenants_own_pass_the_suite() {
    let g = testkit::unique("/suite/streams");
    testkit::tenant_store_suite(
        &store(&format!(
            "stream_groups = [{{ group = \"{g}\", stream_prefix = \"tenant-{{tenant_id}}/\" }}]"
        ))
        .await,
    )
    .await;
}

#[tokio::test]
async fn streams_shared_by_tenants_pass_the_suite() {
    let g = testkit::unique("/suite/shared");
    testkit::tenant_store_suite(
        &store(&format!(
            "shared_groups = [{{ group = \"{g}\", quiet_seconds = 0 }}]"
        ))
        .await,
    )
    .await;
}

#[tokio::test]
async fn a_shared_stream_still_written_to_waits_and_loses_no_other_event() {
    let g = testkit::unique("/shared/busy");
    let s = store(&format!(
        "shared_groups = [{{ group = \"{g}\", quiet_seconds = 3600 }}]"
    ))
    .await;
    let (a, b) = (
        TenantId::parse("busy_a").expect("a"),
        TenantId::parse("busy_b").expect("b"),
    );
    for i in 0..5 {
        s.put(&a, &format!("k{i}"), b"x").await.expect("put a");
        s.put(&b, &format!("k{i}"), b"y").await.expect("put b");
    }
    let pass = s
        .erase(&a, Instant::now() + Duration::from_secs(10))
        .await
        .expect("erase");
    assert_eq!(
        (pass.erased, pass.complete),
        (0, false),
        "not quiet: nothing rewritten yet"
    );
    assert_eq!(s.count(&a).await.expect("count a"), 5);
    assert_eq!(s.count(&b).await.expect("count b"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_leaves_no_event_of_the_tenant() {
    let g = testkit::unique("/app");
    let dir = tempfile::tempdir().expect("dir");
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "[[systems]]\nname = \"cloudwatch\"\nkind = \"logs\"\nholds = \"application log events that mention the tenant; cannot delete one event\"\nbackend = \"embedded\"",
        &format!(
            "[[systems]]\nname = \"cloudwatch\"\nkind = \"logs\"\nholds = \"log events\"\nbackend = \"cloudwatch\"\ngroups = [\"{g}/tenants/{{tenant_id}}\"]\nstream_groups = [{{ group = \"{g}/api\", stream_prefix = \"tenant-{{tenant_id}}/\" }}]\nshared_groups = [{{ group = \"{g}/shared\", quiet_seconds = 0 }}]"
        ),
        1,
    );
    assert!(
        text.contains("backend = \"cloudwatch\""),
        "the local catalog's cloudwatch entry moved"
    );
    let deps = stores::Deps::connect(
        Catalog::from_toml(&text).expect("catalog"),
        stores::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            aws: Some(e2e::moto_config().await),
            ..Default::default()
        },
    )
    .await
    .expect("deps");
    let deps = Arc::new(deps);
    let gone = "tenant_004_departed_customer";
    let kept = "tenant_005_test_account";
    let own = store(&format!("groups = [\"{g}/tenants/{{tenant_id}}\"]")).await;
    let streams = store(&format!(
        "stream_groups = [{{ group = \"{g}/api\", stream_prefix = \"tenant-{{tenant_id}}/\" }}]"
    ))
    .await;
    let shared = store(&format!("shared_groups = [{{ group = \"{g}/shared\" }}]")).await;
    for t in [gone, kept] {
        let t = TenantId::parse(t).expect("t");
        for i in 0..20 {
            own.put(&t, &format!("own/{i}"), b"login")
                .await
                .expect("own");
            streams
                .put(&t, &format!("api/{i}"), b"GET /docs")
                .await
                .expect("streams");
            shared
                .put(&t, &format!("shared/{i}"), b"job done")
                .await
                .expect("shared");
        }
    }
    let exec = e2e::run(&deps, e2e::request("gdpr_cw_1", gone, &["cloudwatch"])).await;
    assert!(
        exec.error.is_none(),
        "{:?}: {:?}",
        exec.error,
        e2e::task_cause(&exec)
    );
    let pattern = format!("\"{gone}\"");
    assert_eq!(
        aws_events(&format!("{g}/tenants/{gone}"), ""),
        0,
        "own group deleted"
    );
    assert_eq!(
        aws_events(&format!("{g}/api"), &pattern),
        0,
        "own streams deleted"
    );
    assert_eq!(
        aws_events(&format!("{g}/shared"), &pattern),
        0,
        "shared streams rewritten"
    );
    assert_eq!(aws_events(&format!("{g}/tenants/{kept}"), ""), 20);
    assert_eq!(aws_events(&format!("{g}/api"), &format!("\"{kept}\"")), 20);
    assert_eq!(
        aws_events(&format!("{g}/shared"), &format!("\"{kept}\"")),
        20,
        "others kept"
    );
    let bodies = e2e::erasure_bodies(&deps).await;
    assert_eq!(bodies[0]["outcome"], "erased", "{bodies:?}");
    let cw = &bodies[0]["details"]["systems"][0];
    assert_eq!(
        (cw["system"].as_str(), cw["records_erased"].as_u64()),
        (Some("cloudwatch"), Some(60)),
        "{cw}"
    );
    assert_eq!(
        cw["method"], "delete-and-rewrite-log-streams",
        "the certificate states the declared method"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_mid_erasure_is_retried() {
    let proxy = e2e::proxy::throttling_proxy(&e2e::moto_url(), 3).await;
    let cfg = tenantctl::fixtures::moto_config(&proxy.url).await;
    let g = testkit::unique("/throttled");
    let s = CloudWatchTenantStore::new(
        aws_sdk_cloudwatchlogs::Client::new(&cfg),
        "cloudwatch",
        SystemKind::Logs,
        config(&format!(
            "stream_groups = [{{ group = \"{g}\", stream_prefix = \"tenant-{{tenant_id}}/\" }}]"
        )),
    );
    let t = TenantId::parse("throttled_t").expect("t");
    for i in 0..20 {
        s.put(&t, &format!("k{i}"), b"x")
            .await
            .expect("put through throttling");
    }
    let pass = s
        .erase(&t, Instant::now() + Duration::from_secs(60))
        .await
        .expect("throttled calls are retried");
    assert_eq!((pass.erased, pass.complete), (20, true));
    assert_eq!(s.count(&t).await.expect("count"), 0);
    assert!(
        proxy.throttled.load(std::sync::atomic::Ordering::SeqCst) > 5,
        "the proxy throttled"
    );
    assert_eq!(aws_events(&g, "\"throttled_t\""), 0);
}

#[tokio::test]
async fn another_tenants_event_that_mentions_the_tenant_is_kept() {
    let g = testkit::unique("/shared/mention");
    let s = store(&format!(
        "shared_groups = [{{ group = \"{g}\", quiet_seconds = 0 }}]"
    ))
    .await;
    let (a, b) = (
        TenantId::parse("mention_a").expect("a"),
        TenantId::parse("mention_b").expect("b"),
    );
    s.put(&a, "k", b"mine").await.expect("put a");
    // b's event names a in its text; its tenant_id field says whose it is.
    s.put(&b, "k", b"invited by mention_a")
        .await
        .expect("put b");
    let pass = s
        .erase(&a, Instant::now() + Duration::from_secs(30))
        .await
        .expect("erase");
    assert_eq!((pass.erased, pass.complete), (1, true));
    assert_eq!(s.count(&b).await.expect("count b"), 1, "b's event kept");
    assert_eq!(
        s.get(&b, "k").await.expect("get b"),
        Some(b"invited by mention_a".to_vec())
    );
}
