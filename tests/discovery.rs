//! Discovery of undocumented systems, on moto (MOTO_URL), the local Redis and the local
//! PostgreSQL: a tenant's data planted in a bucket, a table, a log group, a Redis key and
//! a PostgreSQL table and an S3 Vectors index that the catalog does not list is found, what the catalog lists is
//! not reported, and the erasure's verification refuses a certificate until the planted
//! data is gone.

use aws_sdk_s3::primitives::ByteStream;
use lifecycle::{Catalog, TenantId};
use std::process::Command;
use std::sync::Arc;
use steps::testkit;

const PG: &str = "host=127.0.0.1 user=postgres dbname=test";

fn redis_cli(args: &[&str]) {
    let out = Command::new("redis-cli")
        .args(["-n", "9"])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{out:?}");
}

async fn pg() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_what_the_catalog_does_not_list_and_verification_refuses_it() {
    let u = testkit::unique("disc").replace('_', "-");
    let tenant = format!("tenant_{}", u.replace('-', "_"));
    let t = TenantId::parse(&tenant).expect("tenant");
    let aws = e2e::moto_config().await;
    let s3 = e2e::moto_s3(&aws);
    let docs = format!("docs-{u}");
    e2e::versioned_bucket(&s3, &docs).await;
    let text = tenantctl::LOCAL_CATALOG
        .replacen(
            "[[systems]]\nname = \"s3\"\nkind = \"objects\"\nholds = \"uploaded documents and exports, every object version\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"s3\"\nkind = \"objects\"\nholds = \"documents\"\nbackend = \"s3\"\nbucket = \"{docs}\"\nprefix = \"tenants/{{tenant_id}}/\""),
            1,
        )
        .replacen(
            "[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions, caches, rate-limit counters, distributed locks\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions\"\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/9\"\nprefix = \"{u}:{{tenant_id}}:\""),
            1,
        )
        .replacen(
            "\n[[systems]]",
            &format!("\ndiscovery = {{ aws = true, postgres = [\"{PG}\"] }}\n\n[[systems]]"),
            1,
        );
    assert!(text.contains("backend = \"redis\"") && text.contains("backend = \"s3\""));
    let dir = tempfile::tempdir().expect("dir");
    let deps = Arc::new(
        stores::Deps::connect(
            Catalog::from_toml(&text).expect("catalog"),
            stores::ConnectOptions {
                world: Some(dir.path().join("w.db")),
                aws: Some(aws.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("deps"),
    );

    // What the catalog lists, which discovery must not report.
    deps.store("s3")
        .expect("s3")
        .put(&t, "a.txt", b"mine")
        .await
        .expect("catalogued object");
    redis_cli(&["SET", &format!("{u}:{tenant}:session"), "x"]);

    // What it does not list.
    let stray = format!("stray-{u}");
    s3.create_bucket()
        .bucket(&stray)
        .send()
        .await
        .expect("bucket");
    for (key, body) in [
        (format!("exports/{tenant}/report.csv"), "a,b".to_owned()),
        ("misc/notes.txt".to_owned(), format!("call {tenant} back")),
    ] {
        s3.put_object()
            .bucket(&stray)
            .key(key)
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await
            .expect("object");
    }
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    e2e::hash_table(&ddb, &stray, "id").await;
    ddb.put_item()
        .table_name(&stray)
        .item("id", aws_sdk_dynamodb::types::AttributeValue::S("1".into()))
        .item(
            "owner",
            aws_sdk_dynamodb::types::AttributeValue::S(tenant.clone()),
        )
        .send()
        .await
        .expect("item");
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws);
    let group = format!("/stray/{u}");
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("group");
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("s")
        .send()
        .await
        .expect("stream");
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name("s")
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(ports::migrate::unix_ms() as i64)
                .message(format!("login by {tenant}"))
                .build()
                .expect("event"),
        )
        .send()
        .await
        .expect("event");
    redis_cli(&["SET", &format!("cache:{tenant}:profile"), "x"]);
    let vectors = aws_sdk_s3vectors::Client::new(&aws);
    let vindex = format!("idx-{u}");
    vectors
        .create_vector_bucket()
        .vector_bucket_name(&stray)
        .send()
        .await
        .expect("vector bucket");
    vectors
        .create_index()
        .vector_bucket_name(&stray)
        .index_name(&vindex)
        .data_type(aws_sdk_s3vectors::types::DataType::Float32)
        .dimension(2)
        .distance_metric(aws_sdk_s3vectors::types::DistanceMetric::Cosine)
        .send()
        .await
        .expect("index");
    vectors
        .put_vectors()
        .vector_bucket_name(&stray)
        .index_name(&vindex)
        .vectors(
            aws_sdk_s3vectors::types::PutInputVector::builder()
                .key(format!("{tenant}/doc-1"))
                .data(aws_sdk_s3vectors::types::VectorData::Float32(vec![
                    1.0, 0.5,
                ]))
                .build()
                .expect("vector"),
        )
        .send()
        .await
        .expect("put vector");
    let schema = format!("stray_{}", u.replace('-', "_"));
    let pg = pg().await;
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.notes (id int, body text);
         INSERT INTO {schema}.notes VALUES (1, 'owner: {tenant}'), (2, 'owner: {tenant}x');"
    ))
    .await
    .expect("pg table");

    let found = stores::discovery::discover(&deps, &t)
        .await
        .expect("discover");
    let places: Vec<(&str, u64)> = found
        .iter()
        .map(|f| (f.place.as_str(), f.records))
        .collect();
    for want in [
        format!("s3://{stray}/exports/{tenant}"),
        format!("s3://{stray}/misc/notes.txt"),
        format!("dynamodb://{stray}"),
        format!("logs://{group}"),
        format!("redis://127.0.0.1:6379/9/cache:{tenant}*"),
        format!("postgres://127.0.0.1/{schema}.notes"),
        format!("s3vectors://{stray}/{vindex}"),
    ] {
        assert!(
            places.iter().any(|(p, n)| *p == want && *n == 1),
            "{want} not in {places:?}"
        );
    }
    assert_eq!(places.len(), 7, "nothing the catalog lists: {places:?}");

    // The erasure's verification runs discovery and refuses a certificate.
    let exec = e2e::run(
        &deps,
        e2e::request("gdpr_disc_1", &tenant, &["s3", "redis"]),
    )
    .await;
    assert_eq!(exec.error.as_deref(), Some("ResidualDataFound"), "{exec:?}");
    assert!(
        e2e::task_cause(&exec).contains(&format!("undocumented s3://{stray}")),
        "{}",
        e2e::task_cause(&exec)
    );
    assert!(
        !e2e::erasure_bodies(&deps)
            .await
            .iter()
            .any(|b| b["outcome"] == "erased"),
        "no erased certificate while the tenant is elsewhere"
    );

    // Once the undocumented places are cleaned, the same tenant is certified.
    for key in [
        format!("exports/{tenant}/report.csv"),
        "misc/notes.txt".into(),
    ] {
        s3.delete_object()
            .bucket(&stray)
            .key(key)
            .send()
            .await
            .expect("rm");
    }
    ddb.delete_table()
        .table_name(&stray)
        .send()
        .await
        .expect("rm table");
    logs.delete_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("rm group");
    redis_cli(&["DEL", &format!("cache:{tenant}:profile")]);
    vectors
        .delete_index()
        .vector_bucket_name(&stray)
        .index_name(&vindex)
        .send()
        .await
        .expect("rm index");
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("rm schema");
    let exec = e2e::run(
        &deps,
        e2e::request("gdpr_disc_2", &tenant, &["s3", "redis"]),
    )
    .await;
    assert!(
        exec.error.is_none(),
        "{:?}: {}",
        exec.error,
        e2e::task_cause(&exec)
    );
    assert!(
        stores::discovery::discover(&deps, &t)
            .await
            .expect("discover")
            .is_empty()
    );
}
