//! Every Lambda function ships a sample event (`fixtures/events/<function>.json`, what
//! `cargo lambda invoke --data-file` takes), and each is one its handler accepts: invoked
//! on a fresh embedded world it may fail on the world's state (no such backup yet), never
//! on the event's shape.

use e2e::local_world;
use std::path::Path;
use std::time::Duration;
use tenant_runtime::Budget;

/// What serde and the request parsers say about an event of the wrong shape.
const SHAPE_ERRORS: &[&str] = &[
    "unknown field",
    "missing field",
    "invalid type",
    "unknown variant",
    "is malformed",
    "duplicate field",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_has_a_sample_event_its_handler_accepts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let w = local_world().await;
    for f in tenantctl::registry::FUNCTIONS {
        let path = root.join("fixtures/events").join(format!("{f}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixtures/events/{f}.json: {e}"));
        let event: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}.json is not JSON: {e}"));
        assert!(event.is_object(), "{f}.json is not a JSON object");
        let got =
            tenantctl::registry::call(f, event, &w.deps, Budget::of(Duration::from_secs(30))).await;
        if let Err(e) = got {
            assert!(
                !SHAPE_ERRORS.iter().any(|s| e.cause.contains(s)),
                "{f}: fixtures/events/{f}.json is refused for its shape: {}: {}",
                e.error,
                e.cause
            );
        }
    }
}
