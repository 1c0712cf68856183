//! The CloudWatch Logs product against moto's server (MOTO_URL): the conformance suite for
//! each place a tenant's events live (a group of its own, streams of its own, streams
//! shared by tenants), and an erasure request through the state machine checked with the
//! aws CLI, other tenants' events kept. The migration dataset: the dataset suite at a
//! group and at a stream prefix of the tenant's own, bodies bit for bit, odd keys, a body
//! too large for one event refused, another process reading what one wrote, a sync killed
//! mid-copy resumed, erasure at every location, and a migration under the router workload.

use lifecycle::{Catalog, SystemKind, TenantId};
use ports::TenantStore;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steps::testkit;
use stores::cloudwatch::{CloudWatchDataset, CloudWatchTenantStore, Config, dataset};

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

/// The datasets of a system whose home is `home` and whose `green` location is `green`
/// (TOML values), by location.
async fn datasets(
    home: &str,
    green: &str,
) -> std::collections::BTreeMap<String, CloudWatchDataset> {
    dataset::datasets(&store(&format!("{home}\nlocations = {{ green = {green} }}")).await)
        .expect("datasets")
}

#[tokio::test]
async fn a_cloudwatch_dataset_in_a_group_of_the_tenants_own_passes_the_suite() {
    let g = testkit::unique("/ds/own");
    let ds = datasets(
        &format!("groups = [\"{g}/home/{{tenant_id}}\"]"),
        &format!("\"{g}/green/{{tenant_id}}\""),
    )
    .await;
    testkit::dataset_suite(&ds["green"], &ds["green"]).await;
    testkit::dataset_suite(&ds["home"], &ds["home"]).await;
}

#[tokio::test]
async fn a_cloudwatch_dataset_in_streams_of_the_tenants_own_passes_the_suite() {
    let g = testkit::unique("/ds/streams");
    let ds = datasets(
        &format!(
            "stream_groups = [{{ group = \"{g}/api\", stream_prefix = \"tenant-{{tenant_id}}/\" }}]"
        ),
        &format!("{{ group = \"{g}/green\", stream_prefix = \"t-{{tenant_id}}/\" }}"),
    )
    .await;
    testkit::dataset_suite(&ds["green"], &ds["green"]).await;
}

#[tokio::test]
async fn records_come_back_bit_for_bit_whatever_their_keys_and_too_large_is_refused() {
    use ports::migrate::{ChangeFeed, Dataset, Rec};
    let g = testkit::unique("/ds/odd");
    let home = format!("groups = [\"{g}/{{tenant_id}}\"]");
    let ds = datasets(&home, &format!("\"{g}-green/{{tenant_id}}\"")).await;
    let (h, green) = (&ds["home"], &ds["green"]);
    let t = TenantId::parse(&testkit::unique("odd")).expect("t");
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let keys = [
        "a/b/../c",
        "/leading/slash",
        "quote\"and\\\\backslash",
        "ключ 🔑",
        "tab\tnewline\n",
        "",
    ];
    for k in keys {
        h.write(&t, k, Some(&every_byte)).await.expect(k);
    }
    assert_eq!(h.write(&t, "twice", Some(b"one")).await.expect("1"), 1);
    assert_eq!(h.write(&t, "twice", Some(b"two")).await.expect("2"), 2);
    // A body near the event limit (base64 grows it by a third) fits; a larger one is refused.
    let n = 190_000;
    h.write(&t, "big", Some(&vec![0xa5u8; n]))
        .await
        .expect("fits one event");
    let head = h.head(&t).await.expect("head");
    for too_big in [200_000, 2_000_000] {
        let e = h
            .write(&t, "big", Some(&vec![1u8; too_big]))
            .await
            .expect_err("too large for one event");
        assert!(
            e.to_string()
                .contains("CloudWatch Logs takes at most 262118 per event"),
            "a clear refusal: {e}"
        );
    }
    assert_eq!(
        h.head(&t).await.expect("head"),
        head,
        "a refused write takes no position"
    );

    // Another process (a fresh index) reads what this one wrote, bit for bit.
    let other = datasets(&home, &format!("\"{g}-green/{{tenant_id}}\"")).await;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = other["home"]
            .scan(&t, after.as_deref(), 3)
            .await
            .expect("scan");
        after = page.last().map(|r| r.key.clone());
        let done = page.len() < 3;
        all.extend(page);
        if done {
            break;
        }
    }
    let mut want: Vec<&str> = keys.iter().copied().chain(["big", "twice"]).collect();
    want.sort();
    assert_eq!(all.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), want);
    for r in &all {
        match r.key.as_str() {
            "twice" => assert_eq!((r.rev, r.body.as_deref()), (2, Some(&b"two"[..]))),
            "big" => assert_eq!(r.body.as_ref().map(Vec::len), Some(n)),
            _ => assert_eq!(r.body.as_deref(), Some(&every_byte[..]), "{:?}", r.key),
        }
    }
    assert_eq!(other["home"].head(&t).await.expect("head"), head);

    // A copy to green, then erasure reaches both locations.
    let copied = green.apply_many_exclusive(&t, &all).await.expect("copy");
    assert_eq!(copied, all.len() as u64);
    let stale = Rec {
        key: "twice".into(),
        rev: 1,
        body: Some(b"one".to_vec()),
    };
    assert!(!green.apply(&t, &stale, false).await.expect("apply"));
    let s = store(&format!(
        "{home}\nlocations = {{ green = \"{g}-green/{{tenant_id}}\" }}"
    ))
    .await;
    let pass = s
        .erase(&t, Instant::now() + Duration::from_secs(30))
        .await
        .expect("erase");
    assert!(pass.complete);
    assert_eq!(s.count(&t).await.expect("count"), 0);
    for group in [format!("{g}/{t}"), format!("{g}-green/{t}")] {
        assert_eq!(aws_events(&group, ""), 0, "{group} erased");
    }
    assert_eq!(
        Dataset::read(green, &t, "twice").await.expect("read"),
        None,
        "the index forgets an erased stream"
    );
}

#[tokio::test]
async fn events_the_erasure_port_wrote_are_records_of_revision_zero() {
    use ports::migrate::Dataset;
    let g = testkit::unique("/ds/seeded");
    let home = format!("groups = [\"{g}/{{tenant_id}}\"]");
    let t = TenantId::parse("seeded_t").expect("t");
    let s = store(&home).await;
    s.put(&t, "text", b"plain text").await.expect("put");
    s.put(&t, "bin", &[0xff, 0x00, 0xfe]).await.expect("put");
    s.delete(&t, "gone").await.expect("delete");
    let ds = datasets(&home, &format!("\"{g}-green/{{tenant_id}}\"")).await;
    let recs = ds["home"].scan(&t, None, 10).await.expect("scan");
    assert_eq!(
        recs.iter()
            .map(|r| (r.key.as_str(), r.rev, r.body.clone()))
            .collect::<Vec<_>>(),
        [
            ("bin", 0, Some(vec![0xff, 0x00, 0xfe])),
            ("gone", 0, None),
            ("text", 0, Some(b"plain text".to_vec())),
        ]
    );
    assert_eq!(
        ds["home"]
            .write(&t, "text", Some(b"v1"))
            .await
            .expect("write"),
        1
    );
    assert_eq!(s.get(&t, "text").await.expect("get"), Some(b"v1".to_vec()));
    // Another writer's event after the index was built is read before the next answer.
    s.put(&t, "later", b"from elsewhere").await.expect("put");
    assert_eq!(
        Dataset::read(&ds["home"], &t, "later")
            .await
            .expect("read")
            .and_then(|r| r.body),
        Some(b"from elsewhere".to_vec())
    );
}

/// Deps on the local catalog with its `cloudwatch` system on moto under `settings`.
async fn cloudwatch_deps(settings: &str, dir: &tempfile::TempDir) -> Arc<stores::Deps> {
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "[[systems]]\nname = \"cloudwatch\"\nkind = \"logs\"\nholds = \"application log events that mention the tenant; cannot delete one event\"\nbackend = \"embedded\"",
        &format!(
            "[[systems]]\nname = \"cloudwatch\"\nkind = \"logs\"\nholds = \"log events\"\nbackend = \"cloudwatch\"\n{settings}"
        ),
        1,
    );
    assert!(
        text.contains("backend = \"cloudwatch\""),
        "the local catalog's cloudwatch entry moved"
    );
    Arc::new(
        stores::Deps::connect(
            Catalog::from_toml(&text).expect("catalog"),
            stores::ConnectOptions {
                world: Some(dir.path().join("w.db")),
                aws: Some(e2e::moto_config().await),
                ..Default::default()
            },
        )
        .await
        .expect("deps"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_copy_resumes_from_its_checkpoint() {
    use e2e::migration::{Faults, blue_green, seed_json, with_faults};
    use std::sync::atomic::Ordering;
    let g = testkit::unique("/mig/kill");
    let dir = tempfile::tempdir().expect("dir");
    let deps = cloudwatch_deps(
        &format!("groups = [\"{g}/home/{{tenant_id}}\"]\nlocations = {{ green = \"{g}/green/{{tenant_id}}\" }}"),
        &dir,
    )
    .await;
    let tenant = "tenant_001_acme_corp";
    seed_json(&deps, tenant, &["cloudwatch"], 300).await;
    let faults = Faults::none();
    faults.bulk_after.store(3, Ordering::SeqCst);
    let broken = with_faults(&deps, &["cloudwatch"], "green", &faults);
    let budget = || tenant_runtime::Budget::of(Duration::from_secs(60));
    let p = tenantctl::registry::call(
        "provision",
        blue_green(
            tenant,
            &["cloudwatch"],
            serde_json::json!({"page_size": 50}),
        ),
        &deps,
        budget(),
    )
    .await
    .expect("provision");
    let m =
        serde_json::json!({"tenant_id": tenant, "migration_id": p["migration_id"], "mode": "bulk"});
    let e = tenantctl::registry::call("sync", m.clone(), &broken, budget())
        .await
        .expect_err("killed");
    assert_eq!(e.error, "StoreUnavailable");
    let t = TenantId::parse(tenant).expect("t");
    let rec = deps
        .migrations()
        .expect("migrations")
        .get(&t)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(
        rec.checkpoints["cloudwatch"].copied, 150,
        "three pages were saved"
    );
    let out = tenantctl::registry::call("sync", m, &deps, budget())
        .await
        .expect("resumed");
    assert_eq!(
        (out["done"].clone(), out["copied"].clone()),
        (serde_json::json!(true), serde_json::json!(300))
    );
    // Each record is one event at green: none copied twice, none lost.
    assert_eq!(aws_events(&format!("{g}/green/{tenant}"), ""), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_of_a_cloudwatch_system_under_load_loses_nothing() {
    let g = testkit::unique("/mig/load");
    let dir = tempfile::tempdir().expect("dir");
    let home = format!("groups = [\"{g}/home/{{tenant_id}}\"]");
    let deps = cloudwatch_deps(
        &format!("{home}\nlocations = {{ green = \"{g}/green/{{tenant_id}}\" }}"),
        &dir,
    )
    .await;
    let tenant = "tenant_001_acme_corp";
    let t = TenantId::parse(tenant).expect("t");
    // Events written the way the erasure port's put writes them, before the migration.
    let at_home = store(&home).await;
    for i in 0..120 {
        at_home
            .put(
                &t,
                &format!("rec/{i:05}"),
                format!("{{\"i\":{i}}}").as_bytes(),
            )
            .await
            .expect("seed");
    }
    e2e::migration::seed_json(&deps, tenant, &["postgresql"], 100).await;
    let (tally, r) =
        e2e::migration::blue_green_under_load(&deps, tenant, &["cloudwatch", "postgresql"]).await;
    let written = tally
        .acked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .filter(|(s, _)| s == "cloudwatch")
        .count();
    assert!(
        written > 50,
        "the workload wrote the logs system: {written} keys"
    );
    assert!(
        aws_events(&format!("{g}/green/{tenant}"), "") >= 120,
        "the copy is at green"
    );
    e2e::migration::assert_migrated_then_erased(&deps, tenant, "cloudwatch", &tally, 120).await;
    for at in ["home", "green"] {
        assert_eq!(
            aws_events(&format!("{g}/{at}/{tenant}"), ""),
            0,
            "erased from {at}"
        );
    }
    r.shutdown().await.expect("shutdown");
}
