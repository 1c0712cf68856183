use super::anon::{Anonymiser, FakeKind};
use super::scan::Scanner;
use super::transform::{Outcome, Transformer};
use super::*;
use serde_json::json;
use std::collections::HashSet;

const CATALOG: &str = r#"
environment = "t"
ledger = { backend = "embedded" }
legal_holds = { backend = "embedded" }
signer = { backend = "local" }

[[systems]]
name = "pg"
kind = "relational"
backend = "embedded"

[[systems]]
name = "kv"
kind = "key-value"
backend = "embedded"

[[systems]]
name = "vec"
kind = "vectors"
backend = "embedded"

[clone]
classes = { configs = ["pg:config/"], documents = ["pg:orders/", "pg:customers/", "kv"] }

[[clone.rules]]
system = "pg"
prefix = "customers/"
field = "/email"
action = "fake"
kind = "email"

[[clone.rules]]
system = "pg"
prefix = "customers/"
field = "/name"
action = "fake"
kind = "name"

[[clone.rules]]
system = "pg"
prefix = "orders/"
field = "/customer_email"
action = "fake"
kind = "email"

[[clone.rules]]
system = "pg"
prefix = "orders/"
field = "/note"
action = "redact-text"

[[clone.rules]]
system = "pg"
field = "/born"
action = "shift-date"

[[clone.rules]]
system = "pg"
prefix = "customers/"
field = "/pin"
action = "mask"

[[clone.rules]]
system = "kv"
field = "/user"
action = "hash"

[clone.vectors]
vec = { action = "random", field = "/values_milli" }
"#;

fn catalog() -> Catalog {
    Catalog::from_toml(CATALOG).expect("catalog")
}

fn anon(k: u8) -> Anonymiser {
    Anonymiser::new(zeroize::Zeroizing::new([k; 32]), "acme")
}

fn run(
    spec: &CloneSpec,
    a: &Anonymiser,
    system: &str,
    kind: SystemKind,
    key: &str,
    body: serde_json::Value,
) -> Result<(String, serde_json::Value, Vec<u64>), StepError> {
    let (s, t) = (
        TenantId::parse("acme").expect("s"),
        TenantId::parse("acme__staging").expect("t"),
    );
    let tr = Transformer {
        spec,
        anon: a,
        source: &s,
        target: &t,
    };
    let mut orig = Vec::new();
    match tr.record(
        system,
        kind,
        key,
        &serde_json::to_vec(&body).expect("json"),
        &mut orig,
    )? {
        Outcome::Copy { key, body, .. } => {
            Ok((key, serde_json::from_slice(&body).expect("out json"), orig))
        }
        Outcome::Dropped => Ok((String::new(), serde_json::Value::Null, orig)),
    }
}

#[test]
fn joins_survive_and_nothing_original_arrives() {
    let c = catalog();
    let spec = c.clone_spec();
    let a = anon(1);
    let (_, cust, mut o1) = run(&spec, &a, "pg", SystemKind::Relational, "customers/1",
        json!({"email": "Jane.Doe@acme.example", "name": "Jane Doe", "born": "1990-04-01", "tier": "gold"})).expect("customer");
    let (k, order, o2) = run(&spec, &a, "pg", SystemKind::Relational, "orders/acme-7",
        json!({"customer_email": "jane.doe@acme.example", "note": "call Jane.Doe@acme.example on +44 20 7946 0958", "total": 12})).expect("order");
    assert_eq!(order["customer_email"], cust["email"], "the join holds");
    assert_eq!(
        cust["email"],
        json!(a.fake(FakeKind::Email, "jane.doe@acme.example"))
    );
    assert!(
        order["note"]
            .as_str()
            .expect("note")
            .contains(cust["email"].as_str().expect("e"))
    );
    assert_eq!(
        k, "orders/acme__staging-7",
        "the tenant id is rewritten in keys"
    );
    assert_ne!(cust["born"], json!("1990-04-01"));
    assert_eq!(cust["tier"], json!("gold"));
    o1.extend(o2);
    let originals: HashSet<u64> = o1.into_iter().collect();
    let scanner = Scanner {
        spec: &spec,
        anon: &a,
        originals: &originals,
    };
    for (key, v) in [("customers/1", &cust), ("orders/acme__staging-7", &order)] {
        let f = scanner.record("pg", key, key, &serde_json::to_vec(v).expect("j"));
        assert_eq!(f.hits(), 0, "{key}: {f:?}");
    }
    // The same values left through are found.
    let leak = json!({"email": "x", "name": "jane doe", "note": "write to jane.doe@acme.example"});
    let f = scanner.record(
        "pg",
        "customers/2",
        "customers/2",
        &serde_json::to_vec(&leak).expect("j"),
    );
    assert!(f.originals >= 2 && f.emails >= 1, "{f:?}");
}

#[test]
fn the_same_key_gives_the_same_clone_and_another_key_another() {
    let c = catalog();
    let spec = c.clone_spec();
    let body = json!({"email": "a@b.example", "name": "Ann Bee"});
    let one = run(
        &spec,
        &anon(1),
        "pg",
        SystemKind::Relational,
        "customers/1",
        body.clone(),
    )
    .expect("1");
    let again = run(
        &spec,
        &anon(1),
        "pg",
        SystemKind::Relational,
        "customers/1",
        body.clone(),
    )
    .expect("2");
    let other = run(
        &spec,
        &anon(2),
        "pg",
        SystemKind::Relational,
        "customers/1",
        body,
    )
    .expect("3");
    assert_eq!(one.1, again.1);
    assert_ne!(one.1["email"], other.1["email"]);
}

#[test]
fn strict_mode_refuses_an_unnamed_personal_field_and_names_no_value() {
    let c = catalog();
    let spec = c.clone_spec();
    let err = run(
        &spec,
        &anon(1),
        "pg",
        SystemKind::Relational,
        "customers/1",
        json!({"email": "a@b.example", "name": "A", "contact_phone": "+1 415 555 2671"}),
    )
    .expect_err("strict");
    assert_eq!(err.error_type(), "UnruledPersonalData");
    assert!(
        err.to_string().contains("/contact_phone") && !err.to_string().contains("2671"),
        "{err}"
    );
    let err = run(
        &spec,
        &anon(1),
        "pg",
        SystemKind::Relational,
        "misc/1",
        json!({"items": [{"note": "mail bob@x.example"}]}),
    )
    .expect_err("by value");
    assert!(err.to_string().contains("/items/*/note"), "{err}");
    let mut lax = spec.into_owned();
    lax.strict = false;
    assert!(
        run(
            &lax,
            &anon(1),
            "pg",
            SystemKind::Relational,
            "misc/1",
            json!({"contact_phone": "+1 415 555 2671"})
        )
        .is_ok()
    );
}

#[test]
fn embeddings_are_replaced_or_dropped() {
    let c = catalog();
    let spec = c.clone_spec();
    let (_, v, _) = run(
        &spec,
        &anon(1),
        "vec",
        SystemKind::Vectors,
        "vec-1",
        json!({"values_milli": [1000, 0, 0, 0], "metadata": {"doc": "documents/1"}}),
    )
    .expect("random");
    let vals = v["values_milli"].as_array().expect("values");
    assert_eq!(vals.len(), 4);
    assert_ne!(vals, &vec![json!(1000), json!(0), json!(0), json!(0)]);
    let mut drop = spec.into_owned();
    drop.vectors.clear();
    assert_eq!(
        run(
            &drop,
            &anon(1),
            "vec",
            SystemKind::Vectors,
            "vec-1",
            json!({"values_milli": [1]})
        )
        .expect("drop")
        .1,
        serde_json::Value::Null
    );
}

#[test]
fn requests_are_validated_and_select_by_class() {
    let c = catalog();
    let spec = c.clone_spec();
    let r = CloneRequest::parse(&json!({"tenant_id": "acme", "sync": ["configs"]})).expect("req");
    assert_eq!(r.target().expect("t").as_str(), "acme__staging");
    let sel = r.selectors(&c, &spec).expect("sel");
    assert_eq!(sel.len(), 1);
    assert!(sel[0].selects("config/x") && !sel[0].selects("orders/1"));
    assert_eq!(r.id().expect("id"), r.id().expect("id again"));
    for bad in [
        json!({"tenant_id": "acme", "to": "home"}),
        json!({"tenant_id": "acme", "as": "acme"}),
        json!({"tenant_id": "acme", "to": "../x"}),
        json!({"tenant_id": "acme", "sync": ["nope"], "extra": 1}),
        json!({"tenant_id": "acme", "limit": 0}),
    ] {
        assert_eq!(
            CloneRequest::parse(&bad).expect_err("bad").error_type(),
            "InvalidRequest",
            "{bad}"
        );
    }
    let unknown =
        CloneRequest::parse(&json!({"tenant_id": "acme", "sync": ["nope"]})).expect("parses");
    assert!(unknown.selectors(&c, &spec).is_err());
    let bad_rule = CATALOG.replace("system = \"kv\"\nfield", "system = \"nowhere\"\nfield");
    assert_eq!(
        Catalog::from_toml(&bad_rule)
            .expect_err("rule")
            .error_type(),
        "ConfigurationError"
    );
}

#[test]
fn values_that_fall_in_the_anonymised_space_are_not_taken_for_originals() {
    // Dense dates, four-digit PINs and real names that are also fakes: another record's
    // anonymised value often equals some original, which is no leak; a value left
    // through in its own record still is.
    let c = catalog();
    let spec = c.clone_spec();
    let a = anon(5);
    let mut tags = Vec::new();
    let mut out = Vec::new();
    for i in 0..3000 {
        let name = if i % 10 == 0 {
            "Grace Hopper".to_owned()
        } else {
            format!("Person {i:05}")
        };
        let born = format!("19{:02}-{:02}-{:02}", 60 + i % 10, 1 + i % 12, 1 + i % 20);
        let body = json!({"email": format!("p{i}@acme.example"), "name": name, "born": born,
                          "pin": format!("{:04}", i % 10_000), "tier": "gold"});
        let (k, v, t) = run(
            &spec,
            &a,
            "pg",
            SystemKind::Relational,
            &format!("customers/{i:05}"),
            body.clone(),
        )
        .expect("customer");
        assert_ne!(v["pin"], body["pin"], "a mask never returns its input");
        assert_ne!(v["name"], body["name"], "a fake never returns its input");
        tags.extend(t);
        out.push((k, v, body));
    }
    let originals: HashSet<u64> = tags.into_iter().collect();
    let scanner = Scanner {
        spec: &spec,
        anon: &a,
        originals: &originals,
    };
    let mut hits = 0;
    for (k, v, _) in &out {
        hits += scanner
            .record("pg", k, k, &serde_json::to_vec(v).expect("j"))
            .hits();
    }
    assert_eq!(hits, 0, "anonymised values taken for originals");
    for field in ["born", "pin", "name", "email"] {
        let (k, v, orig) = &out[10];
        let mut leak = v.clone();
        leak[field] = orig[field].clone();
        let f = scanner.record("pg", k, k, &serde_json::to_vec(&leak).expect("j"));
        assert!(
            f.hits() >= 1,
            "{field} left through in its own record is not found"
        );
    }
}
