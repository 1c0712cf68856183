//! Backup and restore on the real products: S3 and DynamoDB (moto) and PostgreSQL, the
//! archive in an S3 bucket and the tenant's key in KMS; erasure deletes every backup
//! version and schedules the key's deletion, after which nothing restores.

use e2e::migration::seed_json;
use e2e::{
    execute, fingerprint as fp, kms_key, moto_config, moto_s3, request, run, table,
    versioned_bucket,
};
use lifecycle::TenantId;
use lifecycle::migration::HOME;
use ports::Services;
use ports::backup::KeyState;
use ports::migrate::Locator;
use serde_json::json;
use sim::Status;
use std::sync::Arc;
use stores::Deps;
use stores::wiring::ConnectOptions;

const T: &str = "tenant_001_acme_corp";
const SYSTEMS: &[&str] = &["s3", "analytics", "postgresql"];

fn pg_url() -> String {
    std::env::var("TENANT_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into())
}

/// The world of these tests; T is platinum, so its backups are copied to the replica
/// bucket of the second region (returned last).
async fn world() -> (Arc<Deps>, aws_config::SdkConfig, String, String) {
    let (deps, cfg, archive, replica, _) = world_and_catalog().await;
    (deps, cfg, archive, replica)
}

async fn world_and_catalog() -> (
    Arc<Deps>,
    aws_config::SdkConfig,
    String,
    String,
    lifecycle::Catalog,
) {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let base = steps::testkit::unique("bk").replace('_', "-");
    let (docs, docs_r, archive, replica) = (
        format!("{base}-docs"),
        format!("{base}-docs-r"),
        format!("{base}-archive"),
        format!("{base}-replica"),
    );
    for b in [&docs, &docs_r, &archive, &replica] {
        versioned_bucket(&s3, b).await;
    }
    let (usage, usage_r, ledger, holds) = (
        format!("{base}-usage"),
        format!("{base}-usage-r"),
        format!("{base}-ledger"),
        format!("{base}-holds"),
    );
    table(&ddb, &usage, "pk", "sk").await;
    table(&ddb, &usage_r, "pk", "sk").await;
    table(&ddb, &ledger, "chain", "sk").await;
    table(&ddb, &holds, "tenant_id", "hold_id").await;
    let key = kms_key(&aws_sdk_kms::Client::new(&cfg)).await;
    let schema = steps::testkit::unique("bk")
        .to_lowercase()
        .replace('-', "_");
    let catalog = format!(
        r#"
environment = "moto"
ledger = {{ backend = "dynamodb", table = "{ledger}" }}
legal_holds = {{ backend = "dynamodb", table = "{holds}" }}
signer = {{ backend = "kms", key_id = "{key}" }}
[backup]
archive = {{ backend = "s3", bucket = "{archive}", replica_bucket = "{replica}", replica_region = "eu-west-1" }}
keys = {{ backend = "kms", alias_prefix = "alias/{base}-" }}
tenant_tiers = {{ {T} = "platinum" }}
[[systems]]
name = "s3"
kind = "objects"
backend = "s3"
bucket = "{docs}"
prefix = "tenants/{{tenant_id}}/"
locations = {{ restore = "{docs_r}" }}
[[systems]]
name = "analytics"
kind = "analytics"
backend = "dynamodb"
table = "{usage}"
partition_key = "pk"
sort_key = "sk"
partition_value = "TENANT#{{tenant_id}}"
locations = {{ restore = "{usage_r}" }}
[[systems]]
name = "postgresql"
kind = "relational"
backend = "postgres"
url = "{pg}"
schema = "{schema}"
[[systems]]
name = "backups"
kind = "backups"
backend = "archive"
"#,
        pg = pg_url()
    );
    let catalog = lifecycle::Catalog::from_toml(&catalog).expect("catalog");
    let deps = Deps::connect(
        catalog.clone(),
        ConnectOptions {
            world: None,
            aws: Some(cfg.clone()),
            read_only: false,
        },
    )
    .await
    .expect("connect");
    (Arc::new(deps), cfg, archive, replica, catalog)
}

/// Every object version and delete marker under the tenant's prefix of a bucket.
async fn versions(s3: &aws_sdk_s3::Client, bucket: &str) -> (Vec<String>, usize) {
    let v = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(format!("tenants/{T}/"))
        .send()
        .await
        .expect("list");
    let mut keys: Vec<String> = v
        .versions()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    (keys, v.delete_markers().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_backed_up_on_s3_dynamodb_and_postgres_restores_equal_and_erasure_shreds_its_kms_key()
 {
    let (deps, cfg, archive, replica) = world().await;
    for s in SYSTEMS {
        deps.dataset(s, HOME)
            .expect("ds")
            .provision(&TenantId::parse(T).expect("t"))
            .await
            .expect("provision");
    }
    seed_json(&deps, T, SYSTEMS, 150).await;
    let b = execute(
        &deps,
        tenantctl::TENANT_BACKUP_ASL,
        "x",
        json!({"tenant_id": T}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let b = b.output.expect("out");
    assert_eq!(b["records"], 450);
    let r = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "x",
        json!({"backup_id": b["backup_id"], "to": "restore"}),
    )
    .await;
    assert_eq!(r.status, Status::Succeeded, "{}", e2e::task_cause(&r));
    assert_eq!(r.output.expect("out")["matches_manifest"], true);
    for s in SYSTEMS {
        let home = fp(&deps, s, HOME, T).await;
        assert_eq!(home.count, 150, "{s}");
        assert_eq!(fp(&deps, s, "restore", T).await, home, "{s}");
    }
    let s3 = moto_s3(&cfg);
    let (primary, _) = versions(&s3, &archive).await;
    assert!(!primary.is_empty());
    // Platinum: the backup is copied whole to the second region's bucket.
    assert_eq!(b["regions"], json!(["us-east-1", "eu-west-1"]), "{b}");
    let (copied, _) = versions(&s3, &replica).await;
    let backup_objects = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| k.contains("/backups/"))
            .cloned()
            .collect()
    };
    assert_eq!(backup_objects(&copied), backup_objects(&primary));
    for k in backup_objects(&primary) {
        let get = |bucket: String| {
            let (s3, k) = (s3.clone(), k.clone());
            async move {
                s3.get_object()
                    .bucket(bucket)
                    .key(k)
                    .send()
                    .await
                    .expect("get")
                    .body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes()
            }
        };
        assert_eq!(
            get(archive.clone()).await,
            get(replica.clone()).await,
            "{k}"
        );
    }
    let mut all: Vec<&str> = SYSTEMS.to_vec();
    all.push("backups");
    let e = run(&deps, request("gdpr-bk-aws", T, &all)).await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    for bucket in [&archive, &replica] {
        let (left, markers) = versions(&s3, bucket).await;
        assert!(
            left.is_empty() && markers == 0,
            "{bucket}: every version of every backup object is gone: {left:?}"
        );
    }
    let KeyState::Destroyed(w) = deps
        .keys()
        .expect("keys")
        .state(&TenantId::parse(T).expect("t"))
        .await
        .expect("state")
    else {
        panic!("the tenant's KMS key must be destroyed");
    };
    assert!(w[0].what.contains("arn:aws:kms"), "{w:?}");
    let cert = e.output.expect("out");
    let sys = cert["certificate"]["certificate"]["details"]["systems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bk = sys
        .iter()
        .find(|s| s["system"] == "backups")
        .expect("backups");
    assert_eq!(bk["method"], "delete-backups-and-destroy-key");
    assert!(
        bk["windows"][0]["gone_by"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{bk}"
    );
    let again = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "x",
        json!({"backup_id": b["backup_id"], "to": "restore"}),
    )
    .await;
    assert_eq!(
        again.error.as_deref(),
        Some("TenantErased"),
        "{}",
        e2e::task_cause(&again)
    );
}

#[derive(Debug)]
struct Later(time::Duration);

impl ports::Clock for Later {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_a_platinum_backup_in_both_regions_and_a_hold_keeps_it_in_both() {
    let (deps, cfg, archive, replica, catalog) = world_and_catalog().await;
    let tenant = TenantId::parse(T).expect("t");
    deps.dataset("postgresql", HOME)
        .expect("ds")
        .provision(&tenant)
        .await
        .expect("provision");
    seed_json(&deps, T, &["postgresql"], 20).await;
    let b = execute(
        &deps,
        tenantctl::TENANT_BACKUP_ASL,
        "x",
        json!({"tenant_id": T}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let s3 = moto_s3(&cfg);
    let before = versions(&s3, &replica).await.0;
    assert!(
        before.iter().any(|k| k.ends_with("/manifest.json")),
        "{before:?}"
    );
    // 400 days on: past platinum's 365.
    let later = Deps::connect(
        catalog,
        ConnectOptions {
            world: None,
            aws: Some(cfg.clone()),
            read_only: false,
        },
    )
    .await
    .expect("connect")
    .with_clock(Arc::new(Later(time::Duration::days(400))));
    deps.holds
        .place(&ports::LegalHold {
            tenant_id: T.into(),
            hold_id: "LIT-7".into(),
            reason: "case".into(),
            placed_at: "2026-01-01T00:00:00Z".into(),
            released_at: None,
        })
        .await
        .expect("hold");
    let held = steps::backup::prune(&later, &tenant).await.expect("prune");
    assert!(held.deleted.is_empty(), "{held:?}");
    assert_eq!(
        versions(&s3, &replica).await.0,
        before,
        "the hold keeps the copy too"
    );
    deps.holds
        .release(&tenant, "LIT-7", "2026-02-01T00:00:00Z")
        .await
        .expect("release");
    let p = steps::backup::prune(&later, &tenant).await.expect("prune");
    assert_eq!(p.deleted.len(), 1, "{p:?}");
    for bucket in [&archive, &replica] {
        let left = versions(&s3, bucket).await.0;
        assert!(
            !left.iter().any(|k| k.contains("/backups/")),
            "{bucket}: {left:?}"
        );
    }
}
