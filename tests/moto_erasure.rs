//! The erasure state machine end to end against real AWS APIs (moto): S3 with versions and
//! delete markers, DynamoDB items, legal holds and ledger in DynamoDB, certificates signed
//! by KMS. Same handlers, same ASL file, an AWS catalog instead of the local one.

use e2e::{key_ring, kms_key, moto_config, moto_s3, request, run, table, versioned_bucket};
use lifecycle::TenantId;
use lifecycle::erasure::ERASURE_CHAIN;
use ports::LegalHold;
use serde_json::Value;
use sim::Status;
use std::sync::Arc;
use stores::Deps;
use stores::wiring::ConnectOptions;
use tenantctl::verify::verify_ledger;

struct Aws {
    cfg: aws_config::SdkConfig,
    deps: Arc<Deps>,
    bucket: String,
    ledger_table: String,
}

async fn aws_world() -> Aws {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let base = steps::testkit::unique("e2e").replace('_', "-");
    let bucket = format!("{base}-docs");
    versioned_bucket(&s3, &bucket).await;
    let (usage, ledger, holds) = (
        format!("{base}-usage"),
        format!("{base}-ledger"),
        format!("{base}-holds"),
    );
    table(&ddb, &usage, "pk", "sk").await;
    table(&ddb, &ledger, "chain", "sk").await;
    table(&ddb, &holds, "tenant_id", "hold_id").await;
    let key = kms_key(&aws_sdk_kms::Client::new(&cfg)).await;
    let checkpoints = format!("{base}-checkpoints");
    e2e::object_lock_bucket(&s3, &checkpoints).await;
    let catalog = format!(
        r#"
environment = "moto"
checkpoints = {{ backend = "s3", bucket = "{checkpoints}", retention_days = 1 }}
ledger = {{ backend = "dynamodb", table = "{ledger}" }}
legal_holds = {{ backend = "dynamodb", table = "{holds}" }}
signer = {{ backend = "kms", key_id = "{key}" }}
[[systems]]
name = "s3"
kind = "objects"
backend = "s3"
bucket = "{bucket}"
prefix = "tenants/{{tenant_id}}/"
[[systems]]
name = "analytics"
kind = "analytics"
backend = "dynamodb"
table = "{usage}"
partition_key = "pk"
sort_key = "sk"
partition_value = "TENANT#{{tenant_id}}"
"#
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
    Aws {
        cfg,
        deps: Arc::new(deps),
        bucket,
        ledger_table: ledger,
    }
}

async fn seed(deps: &Deps, tenant: &str, objects: usize, items: usize) {
    let t = TenantId::parse(tenant).expect("tenant");
    let s3 = deps.store("s3").expect("s3");
    for i in 0..objects {
        let key = format!("uploads/doc-{i:04}.pdf");
        s3.put(&t, &key, b"v1").await.expect("put");
        if i % 3 == 0 {
            s3.put(&t, &key, b"v2").await.expect("put v2");
            s3.put(&t, &key, b"v3").await.expect("put v3");
        }
        if i % 10 == 0 {
            s3.delete(&t, &key).await.expect("delete marker");
        }
    }
    let a = deps.store("analytics").expect("analytics");
    for i in 0..items {
        a.put(&t, &format!("usage/{i:05}"), b"{\"tokens\":12}")
            .await
            .expect("put item");
    }
}

async fn count(deps: &Deps, tenant: &str) -> (u64, u64) {
    let t = TenantId::parse(tenant).expect("tenant");
    (
        deps.store("s3")
            .expect("s3")
            .count(&t)
            .await
            .expect("count"),
        deps.store("analytics")
            .expect("a")
            .count(&t)
            .await
            .expect("count"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_on_aws_apis_removes_every_version_and_item_and_certifies() {
    let w = aws_world().await;
    seed(&w.deps, "acme_gone", 60, 120).await;
    seed(&w.deps, "acme_gonex", 9, 10).await; // shares the prefix "acme_gone"
    seed(&w.deps, "globex", 12, 15).await;
    let (objs, items) = count(&w.deps, "acme_gone").await;
    assert_eq!(
        (objs, items),
        (60 + 2 * 20 + 6, 120),
        "versions and delete markers are counted"
    );
    let keep1 = count(&w.deps, "acme_gonex").await;
    let keep2 = count(&w.deps, "globex").await;

    let exec = run(
        &w.deps,
        request("req-aws-1", "acme_gone", &["s3", "analytics"]),
    )
    .await;
    assert_eq!(
        exec.status,
        Status::Succeeded,
        "{:?}: {:?}",
        exec.error,
        exec.cause
    );
    assert_eq!(count(&w.deps, "acme_gone").await, (0, 0));
    assert_eq!(count(&w.deps, "acme_gonex").await, keep1);
    assert_eq!(count(&w.deps, "globex").await, keep2);

    // Straight from S3: no version, no delete marker under the tenant's prefix.
    let s3 = moto_s3(&w.cfg);
    let listing = s3
        .list_object_versions()
        .bucket(&w.bucket)
        .prefix("tenants/acme_gone/")
        .send()
        .await
        .expect("list");
    assert!(listing.versions().is_empty() && listing.delete_markers().is_empty());

    let cert = exec.output.expect("output")["certificate"].clone();
    assert_eq!(
        cert["certificate"]["details"]["records_erased_total"],
        106 + 120
    );
    let r = key_ring(&w.deps).await;
    lifecycle::certificate::verify_document(&cert, |k| r.get(k))
        .expect("KMS-signed certificate verifies");
    let chains = verify_ledger(&*w.deps.ledger, &r, None, false)
        .await
        .expect("verify");
    assert_eq!(chains[0].outcome, Ok(1));

    // The scheduled publisher checkpoints the DynamoDB ledger's tree to the Object Lock
    // bucket with the KMS key; the certificate's receipt verifies against it.
    let out = publish_checkpoint::handler(
        serde_json::json!({}),
        &w.deps,
        tenant_runtime::Budget::of(std::time::Duration::from_secs(60)),
    )
    .await
    .expect("publish");
    assert_eq!(out.published.len(), 1);
    assert!(out.published[0].location.starts_with("s3://"));
    let store = w.deps.checkpoints().expect("store");
    let expected = tenantctl::verify::published(&**store, &r)
        .await
        .expect("published");
    let opts = tenantctl::verify::VerifyOptions {
        checkpoints: expected,
        ..Default::default()
    };
    let chains = tenantctl::verify::verify_ledger_with(&*w.deps.ledger, &r, &opts)
        .await
        .expect("verify");
    assert_eq!(chains[0].outcome, Ok(1));
    assert_eq!(chains[0].checkpoints_met, vec![1]);
    let receipt = steps::checkpoint::receipt(&*w.deps.ledger, &**store, ERASURE_CHAIN, 0, &r)
        .await
        .expect("receipt");
    let leaf = lifecycle::ledger::leaf_of_value(&cert).expect("leaf");
    receipt
        .verify(&leaf, &steps::checkpoint::origin("moto", ERASURE_CHAIN), &r)
        .expect("receipt verifies");

    // Any changed byte in the DynamoDB ledger item is found at its seq.
    let ddb = aws_sdk_dynamodb::Client::new(&w.cfg);
    let item = ddb
        .get_item()
        .table_name(&w.ledger_table)
        .key(
            "chain",
            aws_sdk_dynamodb::types::AttributeValue::S(ERASURE_CHAIN.into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("E#{:020}", 0)),
        )
        .send()
        .await
        .expect("get");
    let body = item
        .item()
        .and_then(|i| i.get("body"))
        .and_then(|b| b.as_s().ok())
        .cloned()
        .expect("body");
    let tampered = body.replacen("\"records_erased\":120", "\"records_erased\":119", 1);
    assert_ne!(tampered, body);
    ddb.update_item()
        .table_name(&w.ledger_table)
        .key(
            "chain",
            aws_sdk_dynamodb::types::AttributeValue::S(ERASURE_CHAIN.into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("E#{:020}", 0)),
        )
        .update_expression("SET body = :b")
        .expression_attribute_values(":b", aws_sdk_dynamodb::types::AttributeValue::S(tampered))
        .send()
        .await
        .expect("tamper");
    let chains = verify_ledger(&*w.deps.ledger, &r, None, false)
        .await
        .expect("verify");
    assert_eq!(chains[0].outcome.clone().expect_err("tampered").seq, 0);
}

#[tokio::test]
async fn a_legal_hold_in_dynamodb_refuses_and_records_on_the_dynamodb_ledger() {
    let w = aws_world().await;
    seed(&w.deps, "held_co", 5, 5).await;
    w.deps
        .holds
        .place(&LegalHold {
            tenant_id: "held_co".into(),
            hold_id: "SEC-99".into(),
            reason: "regulator inquiry".into(),
            placed_at: "2026-01-01T00:00:00Z".into(),
            released_at: None,
        })
        .await
        .expect("hold");
    let before = count(&w.deps, "held_co").await;
    let exec = run(
        &w.deps,
        request("req-aws-held", "held_co", &["s3", "analytics"]),
    )
    .await;
    assert_eq!(exec.error.as_deref(), Some("LegalHoldActive"));
    assert_eq!(count(&w.deps, "held_co").await, before, "nothing erased");
    let entries = w
        .deps
        .ledger
        .entries(ERASURE_CHAIN, 0, 10)
        .await
        .expect("entries");
    assert_eq!(entries.len(), 1);
    let e: Value = serde_json::from_str(&entries[0].json).expect("json");
    assert_eq!(e["certificate"]["certificate"]["outcome"], "refused");
}

#[tokio::test]
async fn tenantctl_erase_aws_starts_a_step_functions_execution_named_after_the_request() {
    let cfg = moto_config().await;
    let sfn = aws_sdk_sfn::Client::new(&cfg);
    let mut def = tenantctl::GDPR_ERASURE_ASL.to_owned();
    for f in tenantctl::registry::FUNCTIONS {
        let placeholder = format!(
            "${{{}FunctionArn}}",
            f.split('-')
                .map(|p| format!("{}{}", &p[..1].to_uppercase(), &p[1..]))
                .collect::<String>()
        );
        def = def.replace(
            &placeholder,
            &format!("arn:aws:lambda:us-east-1:123456789012:function:{f}"),
        );
    }
    assert!(
        !def.contains("FunctionArn}"),
        "every placeholder substituted"
    );
    let sm = sfn
        .create_state_machine()
        .name(steps::testkit::unique("gdpr"))
        .definition(def)
        .role_arn("arn:aws:iam::123456789012:role/sfn")
        .send()
        .await
        .expect("create state machine");
    let req = request("gdpr_req_aws_001", "tenant_x", &["s3"]);
    let exec = tenantctl::aws::start_erasure(&cfg, sm.state_machine_arn(), &req)
        .await
        .expect("start");
    assert!(exec.ends_with(":gdpr_req_aws_001"), "{exec}");
    let d = sfn
        .describe_execution()
        .execution_arn(&exec)
        .send()
        .await
        .expect("describe");
    assert_eq!(d.name(), Some("gdpr_req_aws_001"));
    let input: Value = serde_json::from_str(d.input().unwrap_or("{}")).expect("input");
    assert_eq!(input, req);
    let bad =
        tenantctl::aws::start_erasure(&cfg, sm.state_machine_arn(), &request("a/b", "t", &["s3"]))
            .await;
    assert!(bad.expect_err("bad id").to_string().contains("request_id"));
}
