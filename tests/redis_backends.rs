//! The Redis product against the local server (127.0.0.1:6379, or TENANT_REDIS_URL
//! without a database number): the shared conformance suites, an erasure through the
//! state machine checked with `redis-cli`, a migration under the router workload, every
//! type moved with its expiry, and erasure riding out killed connections. Each test uses
//! its own key prefix, so runs and tests never see each other's keys.

use e2e::migration::seed_json;
use lifecycle::{Catalog, SystemKind, TenantId};
use ports::TenantStore;
use ports::migrate::Dataset;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use steps::testkit;
use stores::redis::{RedisDataset, RedisTenantStore};

/// Logical databases these tests use: home and a migration location.
const HOME_DB: u8 = 9;
const GREEN_DB: u8 = 10;

fn server() -> String {
    std::env::var("TENANT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn url(db: u8) -> String {
    format!("{}/{db}", server())
}

/// `redis-cli` against one database: the product's own client, not the backend's.
fn cli(db: u8, args: &[&str]) -> String {
    cli_at(&server(), db, args)
}

/// `redis-cli` for one database of `server` (`redis://host:port`).
fn redis_cli(server: &str, db: u8) -> Command {
    let hp = server.trim_start_matches("redis://");
    let (h, p) = hp.split_once(':').unwrap_or((hp, "6379"));
    let mut c = Command::new("redis-cli");
    c.args(["-h", h, "-p", p, "-n", &db.to_string()]);
    c
}

fn cli_at(server: &str, db: u8, args: &[&str]) -> String {
    let out = redis_cli(server, db)
        .args(args)
        .output()
        .expect("redis-cli is installed beside the server");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private `redis-server` on a free loopback port, for tests that kill connections
/// (on the shared server that would cut other tests off); stopped on drop.
struct PrivateServer {
    child: std::process::Child,
    url: String,
}

impl PrivateServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, url };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on {port}");
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keys_like(db: u8, pattern: &str) -> usize {
    cli(db, &["--scan", "--pattern", pattern])
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

fn catalog(prefix: &str) -> Catalog {
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions, caches, rate-limit counters, distributed locks\"\nbackend = \"embedded\"",
        &format!(
            "[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions\"\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"{prefix}{{tenant_id}}:\"\nscan_count = 100\nlocations = {{ green = \"{}\" }}",
            url(HOME_DB),
            url(GREEN_DB)
        ),
        1,
    );
    assert!(
        text.contains("backend = \"redis\""),
        "the local catalog's redis entry moved"
    );
    Catalog::from_toml(&text).expect("catalog")
}

async fn deps(prefix: &str, dir: &tempfile::TempDir) -> Arc<stores::Deps> {
    let deps = stores::Deps::connect(
        catalog(prefix),
        stores::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            ..Default::default()
        },
    )
    .await
    .expect("deps (Redis at 127.0.0.1:6379)");
    Arc::new(deps)
}

#[tokio::test]
async fn redis_store_and_dataset_pass_the_suites() {
    let prefix = format!("{}:{{tenant_id}}:", testkit::unique("suite"));
    let store =
        RedisTenantStore::connect(&url(HOME_DB), "redis", SystemKind::KeyValue, &prefix, 10, 2)
            .await
            .expect("Redis at 127.0.0.1:6379");
    testkit::tenant_store_suite(&store).await;
    let ds = RedisDataset::connect(&url(GREEN_DB), "redis", "green", &prefix)
        .await
        .expect("dataset");
    testkit::dataset_suite(&ds, &ds).await;
}

#[tokio::test]
async fn every_type_moves_with_its_expiry_and_the_same_fingerprint() {
    let p = testkit::unique("types");
    let prefix = format!("{p}:{{tenant_id}}:");
    let t = TenantId::parse("t1").expect("t");
    let k = |s: &str| format!("{p}:t1:{s}");
    cli(HOME_DB, &["SET", &k("plain"), "v"]);
    cli(HOME_DB, &["SET", &k("ttl"), "v", "PX", "600000"]);
    cli(HOME_DB, &["HSET", &k("h"), "b", "2", "a", "1"]);
    cli(HOME_DB, &["SADD", &k("s"), "y", "x"]);
    cli(HOME_DB, &["ZADD", &k("z"), "1.5", "m", "-2", "n"]);
    cli(HOME_DB, &["RPUSH", &k("l"), "3", "1", "2"]);
    cli(HOME_DB, &["XADD", &k("x"), "1-1", "f", "v"]);
    cli(HOME_DB, &["PEXPIRE", &k("h"), "600000"]);
    let home = RedisDataset::connect(&url(HOME_DB), "redis", "home", &prefix)
        .await
        .expect("home");
    let green = RedisDataset::connect(&url(GREEN_DB), "redis", "green", &prefix)
        .await
        .expect("green");
    let recs = home.scan(&t, None, 100).await.expect("scan");
    assert_eq!(recs.len(), 7, "{recs:?}");
    assert_eq!(green.apply_many(&t, &recs).await.expect("copy"), 7);
    let copied = green.scan(&t, None, 100).await.expect("scan green");
    assert_eq!(
        copied, recs,
        "bit-exact bodies, canonical whatever the encoding"
    );
    for (key, ty) in [
        ("h", "hash"),
        ("s", "set"),
        ("z", "zset"),
        ("l", "list"),
        ("x", "stream"),
    ] {
        assert_eq!(cli(GREEN_DB, &["TYPE", &k(key)]).trim(), ty, "{key}");
    }
    assert_eq!(cli(GREEN_DB, &["LRANGE", &k("l"), "0", "-1"]), "3\n1\n2\n");
    assert_eq!(cli(GREEN_DB, &["ZSCORE", &k("z"), "m"]).trim(), "1.5");
    for key in ["ttl", "h"] {
        assert_eq!(
            cli(GREEN_DB, &["PEXPIRETIME", &k(key)]),
            cli(HOME_DB, &["PEXPIRETIME", &k(key)]),
            "{key} keeps its absolute expiry"
        );
    }
    assert_eq!(cli(GREEN_DB, &["PTTL", &k("plain")]).trim(), "-1");
    for db in [GREEN_DB, HOME_DB] {
        let store =
            RedisTenantStore::connect(&url(db), "redis", SystemKind::KeyValue, &prefix, 100, 4)
                .await
                .expect("store");
        assert!(
            store
                .erase(&t, Instant::now() + Duration::from_secs(30))
                .await
                .expect("erase")
                .complete
        );
    }
    assert_eq!(
        keys_like(HOME_DB, &format!("*{p}*")) + keys_like(GREEN_DB, &format!("*{p}*")),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_leaves_no_key_of_the_tenant_and_every_other_key() {
    let p = testkit::unique("gdpr");
    let dir = tempfile::tempdir().expect("dir");
    let deps = deps(&format!("{p}:"), &dir).await;
    let gone = "tenant_004_departed_customer";
    // A tenant whose id starts with the erased one's must keep every key.
    let kept = ["tenant_005_test_account", "tenant_004_departed_customer2"];
    for i in 0..500 {
        cli(HOME_DB, &["SET", &format!("{p}:{gone}:session/{i}"), "x"]);
        for k in kept {
            cli(HOME_DB, &["SET", &format!("{p}:{k}:session/{i}"), "y"]);
        }
        if i % 100 == 0 {
            cli(GREEN_DB, &["SET", &format!("{p}:{gone}:copied/{i}"), "x"]);
        }
    }
    cli(
        HOME_DB,
        &[
            "HSET",
            &format!("{p}:{gone}:profile"),
            "email",
            "someone@example.com",
        ],
    );
    let exec = e2e::run(&deps, e2e::request("gdpr_redis_1", gone, &["redis"])).await;
    assert!(
        exec.error.is_none(),
        "{:?}: {:?}",
        exec.error,
        e2e::task_cause(&exec)
    );
    assert_eq!(keys_like(HOME_DB, &format!("{p}:{gone}:*")), 0, "home");
    assert_eq!(
        keys_like(GREEN_DB, &format!("{p}:{gone}:*")),
        0,
        "every location"
    );
    for k in kept {
        assert_eq!(
            keys_like(HOME_DB, &format!("{p}:{k}:*")),
            500,
            "{k} untouched"
        );
    }
    let bodies = e2e::erasure_bodies(&deps).await;
    assert_eq!(bodies[0]["outcome"], "erased", "{bodies:?}");
    let redis = &bodies[0]["details"]["systems"][0];
    assert_eq!(redis["system"], "redis", "{bodies:?}");
    assert_eq!(redis["records_erased"], 506, "{redis}");
    let text = serde_json::to_string(&bodies).expect("json");
    assert!(
        !text.contains("someone@example.com"),
        "no personal data on the ledger"
    );
    for k in kept {
        let t = TenantId::parse(k).expect("t");
        deps.store("redis")
            .expect("redis")
            .erase(&t, Instant::now() + Duration::from_secs(30))
            .await
            .expect("cleanup");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_rides_out_killed_connections() {
    let server = PrivateServer::start();
    let p = testkit::unique("kill");
    let prefix = format!("{p}:{{tenant_id}}:");
    let t = TenantId::parse("t1").expect("t");
    let mut pipe = String::new();
    for i in 0..3000 {
        pipe.push_str(&format!("SET {p}:t1:k{i} v\n"));
        pipe.push_str(&format!("SET other:t2:k{i} v\n"));
    }
    pipe_to_at(&server.url, 0, &pipe);
    let store = RedisTenantStore::connect(
        &format!("{}/0", server.url),
        "redis",
        SystemKind::KeyValue,
        &prefix,
        10,
        2,
    )
    .await
    .expect("store");
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, url) = (stop.clone(), server.url.clone());
        tokio::task::spawn_blocking(move || {
            let mut kills = 0;
            while !stop.load(Ordering::SeqCst) && kills < 20 {
                std::thread::sleep(Duration::from_millis(15));
                // Every client connection but the killer's own: the store's included.
                cli_at(
                    &url,
                    0,
                    &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
                );
                kills += 1;
            }
            kills
        })
    };
    let mut passes = 0;
    loop {
        passes += 1;
        let pass = store
            .erase(&t, Instant::now() + Duration::from_millis(20))
            .await
            .expect("a killed connection is retried, never an error");
        if pass.complete {
            break;
        }
        assert!(passes < 10_000, "erasure made no progress");
    }
    stop.store(true, Ordering::SeqCst);
    let kills = killer.await.expect("killer");
    assert!(kills > 0 && passes > 1, "kills {kills}, passes {passes}");
    assert_eq!(
        cli_at(&server.url, 0, &["--scan", "--pattern", &format!("{p}:*")]).trim(),
        ""
    );
    assert_eq!(
        cli_at(&server.url, 0, &["DBSIZE"]).trim(),
        "3000",
        "the other tenant untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_of_a_redis_system_under_load_loses_nothing() {
    let p = testkit::unique("mig");
    let dir = tempfile::tempdir().expect("dir");
    let deps = deps(&format!("{p}:"), &dir).await;
    let tenant = "tenant_001_acme_corp";
    seed_json(&deps, tenant, &["redis", "postgresql"], 200).await;
    let (tally, r) =
        e2e::migration::blue_green_under_load(&deps, tenant, &["redis", "postgresql"]).await;
    assert!(
        keys_like(GREEN_DB, &format!("{p}:{tenant}:*")) >= 200,
        "the copy is at green"
    );
    e2e::migration::assert_migrated_then_erased(&deps, tenant, "redis", &tally, 200).await;
    assert_eq!(
        keys_like(HOME_DB, &format!("*{p}:{tenant}:*"))
            + keys_like(GREEN_DB, &format!("*{p}:{tenant}:*")),
        0,
        "erased from every location, bookkeeping included"
    );
    r.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_that_reaches_its_cap_fails_instead_of_passing() {
    let p = testkit::unique("cap");
    let tenant = format!("t{}", p.replace(['_', '-'], ""));
    // More keys than one SCAN page holds, so the cap is reached with pages left.
    let keys: Vec<String> = (0..2500)
        .map(|i| format!("{p}-stray:{tenant}:k{i}"))
        .collect();
    pipe_to(
        HOME_DB,
        &keys
            .iter()
            .map(|k| format!("SET {k} x\n"))
            .collect::<String>(),
    );
    let dir = tempfile::tempdir().expect("dir");
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "\n[[systems]]",
        &format!(
            "\ndiscovery = {{ redis = [\"{}\"], catalog_servers = false, max_per_place = 10 }}\n\n[[systems]]",
            server()
        ),
        1,
    );
    let deps = stores::Deps::connect(
        Catalog::from_toml(&text).expect("catalog"),
        stores::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            ..Default::default()
        },
    )
    .await
    .expect("deps");
    let t = TenantId::parse(&tenant).expect("t");
    let e = stores::discovery::discover(&deps, &t)
        .await
        .expect_err("a partial scan is not a clean one");
    assert!(e.to_string().contains("max_per_place"), "{e}");
    pipe_to(
        HOME_DB,
        &keys
            .iter()
            .map(|k| format!("DEL {k}\n"))
            .collect::<String>(),
    );
}

/// Sends commands to `redis-cli` on standard input.
fn pipe_to(db: u8, commands: &str) {
    pipe_to_at(&server(), db, commands);
}

/// Sends commands to `redis-cli` on standard input, for one database of `server`.
fn pipe_to_at(server: &str, db: u8, commands: &str) {
    use std::io::Write as _;
    let mut child = redis_cli(server, db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(commands.as_bytes())
        .expect("commands");
    assert!(child.wait().expect("redis-cli ran").success());
}
