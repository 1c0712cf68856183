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

async fn world() -> (Arc<Deps>, aws_config::SdkConfig, String) {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let base = steps::testkit::unique("bk").replace('_', "-");
    let (docs, docs_r, archive) = (
        format!("{base}-docs"),
        format!("{base}-docs-r"),
        format!("{base}-archive"),
    );
    for b in [&docs, &docs_r, &archive] {
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
archive = {{ backend = "s3", bucket = "{archive}" }}
keys = {{ backend = "kms", alias_prefix = "alias/{base}-" }}
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
        catalog,
        ConnectOptions {
            world: None,
            aws: Some(cfg.clone()),
            read_only: false,
        },
    )
    .await
    .expect("connect");
    (Arc::new(deps), cfg, archive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_backed_up_on_s3_dynamodb_and_postgres_restores_equal_and_erasure_shreds_its_kms_key()
 {
    let (deps, cfg, archive) = world().await;
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
    let versions = s3
        .list_object_versions()
        .bucket(&archive)
        .prefix(format!("tenants/{T}/"))
        .send()
        .await
        .expect("list");
    assert!(!versions.versions().is_empty());
    let mut all: Vec<&str> = SYSTEMS.to_vec();
    all.push("backups");
    let e = run(&deps, request("gdpr-bk-aws", T, &all)).await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    let after = s3
        .list_object_versions()
        .bucket(&archive)
        .prefix(format!("tenants/{T}/"))
        .send()
        .await
        .expect("list");
    assert!(
        after.versions().is_empty() && after.delete_markers().is_empty(),
        "every version of every backup object is gone"
    );
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
