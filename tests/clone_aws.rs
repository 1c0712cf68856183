//! An anonymised clone on S3 and DynamoDB (moto), the clone key wrapped by the tenant's
//! KMS key and the clone's bookkeeping in an S3 archive, checked with the aws CLI: the
//! same counts at the staging bucket and table, no original e-mail, name or date in
//! either, the join between an S3 document's owner and a DynamoDB event's user kept, and
//! production unchanged.

use e2e::{execute, fingerprint as fp, kms_key, moto_config, moto_s3, table, versioned_bucket};
use lifecycle::TenantId;
use lifecycle::migration::HOME;
use ports::migrate::{Locator, Rec};
use serde_json::{Value, json};
use sim::Status;
use std::process::Command;
use std::sync::Arc;
use stores::Deps;
use stores::wiring::ConnectOptions;

const T: &str = "tenant_clone_aws_13";

fn email(i: usize) -> String {
    format!("Owner.{i:03}@aws-probe.example")
}

/// The aws CLI of scripts/bootstrap against moto: the products' own client.
fn aws(args: &[&str]) -> Value {
    let out = Command::new(".venv/bin/aws")
        .current_dir(env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests"))
        .args(args)
        .args([
            "--endpoint-url",
            &e2e::moto_url(),
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("the aws CLI of scripts/bootstrap");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// One object's content, read with `aws s3 cp ... -`.
fn aws_object(bucket: &str, key: &str) -> String {
    let out = Command::new(".venv/bin/aws")
        .current_dir(env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests"))
        .args(["s3", "cp", &format!("s3://{bucket}/{key}"), "-"])
        .args(["--endpoint-url", &e2e::moto_url(), "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("aws s3 cp");
    assert!(out.status.success(), "aws s3 cp {key}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_on_s3_and_dynamodb_holds_no_original_and_keeps_the_join() {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let base = steps::testkit::unique("cl").replace('_', "-");
    let (docs, docs_st, archive) = (
        format!("{base}-docs"),
        format!("{base}-docs-st"),
        format!("{base}-archive"),
    );
    for b in [&docs, &docs_st, &archive] {
        versioned_bucket(&s3, b).await;
    }
    let (usage, usage_st, ledger, holds) = (
        format!("{base}-usage"),
        format!("{base}-usage-st"),
        format!("{base}-ledger"),
        format!("{base}-holds"),
    );
    table(&ddb, &usage, "pk", "sk").await;
    table(&ddb, &usage_st, "pk", "sk").await;
    table(&ddb, &ledger, "chain", "sk").await;
    table(&ddb, &holds, "tenant_id", "hold_id").await;
    let key = kms_key(&aws_sdk_kms::Client::new(&cfg)).await;
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
locations = {{ staging = "{docs_st}" }}
[[systems]]
name = "analytics"
kind = "analytics"
backend = "dynamodb"
table = "{usage}"
partition_key = "pk"
sort_key = "sk"
partition_value = "TENANT#{{tenant_id}}"
locations = {{ staging = "{usage_st}" }}
[clone]
strict = true
[[clone.rules]]
system = "s3"
field = "/owner"
action = "fake"
kind = "email"
[[clone.rules]]
system = "s3"
field = "/author"
action = "fake"
kind = "name"
[[clone.rules]]
system = "s3"
field = "/body"
action = "redact-text"
[[clone.rules]]
system = "analytics"
field = "/user_email"
action = "fake"
kind = "email"
[[clone.rules]]
system = "analytics"
field = "/day"
action = "shift-date"
"#
    );
    let deps = Arc::new(
        Deps::connect(
            lifecycle::Catalog::from_toml(&catalog).expect("catalog"),
            ConnectOptions {
                world: None,
                aws: Some(cfg.clone()),
                read_only: false,
            },
        )
        .await
        .expect("connect to moto"),
    );
    let t = TenantId::parse(T).expect("t");
    let docs_ds = deps.dataset("s3", HOME).expect("s3");
    let recs: Vec<Rec> = (0..30)
        .map(|i| Rec {
            key: format!("doc-{i:03}.json"),
            rev: 0,
            body: Some(json!({"owner": email(i), "author": format!("Author R{i:03} Probe"),
                "title": format!("report {i}"), "body": format!("Ask {} for the figures.", email(i))})
                .to_string().into_bytes()),
        })
        .collect();
    docs_ds.apply_many(&t, &recs).await.expect("seed s3");
    let events: Vec<Rec> = (0..60)
        .map(|i| Rec {
            key: format!("event-{i:04}"),
            rev: 0,
            body: Some(
                json!({"user_email": email(i % 30), "day": format!("2024-03-{:02}", 1 + i % 28), "event": "login"})
                    .to_string()
                    .into_bytes(),
            ),
        })
        .collect();
    deps.dataset("analytics", HOME)
        .expect("analytics")
        .apply_many(&t, &events)
        .await
        .expect("seed dynamodb");
    let before = (
        fp(&deps, "s3", HOME, T).await,
        fp(&deps, "analytics", HOME, T).await,
    );

    let e = execute(
        &deps,
        tenantctl::TENANT_CLONE_ASL,
        "c",
        json!({"tenant_id": T, "systems": ["s3", "analytics"]}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    let target = format!("{T}__staging");

    // S3, read with the aws CLI from the staging bucket.
    let listed = aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &docs_st,
        "--prefix",
        &format!("tenants/{target}/"),
    ]);
    let keys: Vec<String> = listed["Contents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["Key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(keys.len(), 30, "same count in S3: {keys:?}");
    let docs_out: Vec<(String, Value)> = keys
        .iter()
        .map(|k| {
            let text = aws_object(&docs_st, k);
            (
                k.clone(),
                serde_json::from_str(&text).expect("a JSON document"),
            )
        })
        .collect();
    // DynamoDB, read with the aws CLI from the staging table (records, not the feed).
    let scanned = aws(&["dynamodb", "scan", "--table-name", &usage_st]);
    let items: Vec<Value> = scanned["Items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["pk"]["S"] == json!(format!("TENANT#{target}")))
        .filter(|i| !i["sk"]["S"].as_str().unwrap_or("~").starts_with('~'))
        .cloned()
        .collect();
    assert_eq!(items.len(), 60, "same count in DynamoDB");
    use base64::Engine as _;
    let events_out: Vec<Value> = items
        .iter()
        .map(|i| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(i["body"]["B"].as_str().expect("a body"))
                .expect("base64");
            serde_json::from_slice(&b).expect("a JSON event")
        })
        .collect();
    let all = format!("{docs_out:?}\n{events_out:?}\n{scanned}").to_lowercase();
    for i in 0..30 {
        assert!(
            !all.contains(&email(i).to_lowercase()),
            "{} arrived",
            email(i)
        );
        assert!(!all.contains(&format!("r{i:03} probe")), "a name arrived");
    }
    assert!(!all.contains("aws-probe.example"));
    // Every day moved from its own original (a shift of a few days may stay in March,
    // so the month alone proves nothing).
    for (item, event) in items.iter().zip(&events_out) {
        let sk = item["sk"]["S"].as_str().expect("sk");
        let i: usize = sk
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("an event key: {sk}"));
        let original = format!("2024-03-{:02}", 1 + i % 28);
        assert_ne!(
            event["day"],
            json!(original),
            "{sk}: its day arrived unshifted"
        );
    }
    // The join across systems: document 7's owner is the user of events 7 and 37.
    let doc7 = &docs_out
        .iter()
        .find(|(k, _)| k.ends_with("doc-007.json"))
        .expect("doc 7")
        .1;
    let owner = doc7["owner"].as_str().expect("owner");
    assert!(owner.ends_with("@anon.invalid"));
    assert!(
        doc7["body"].as_str().expect("body").contains(owner),
        "the mention joins too"
    );
    let users: Vec<&Value> = events_out
        .iter()
        .filter(|e| e["user_email"] == json!(owner))
        .collect();
    assert_eq!(users.len(), 2, "events 7 and 37 join document 7");
    assert_eq!(
        before,
        (
            fp(&deps, "s3", HOME, T).await,
            fp(&deps, "analytics", HOME, T).await
        ),
        "production unchanged"
    );
}
