//! Fixtures shared by the migration modules' unit tests.

use super::{HOME, MigrationRecord, MigrationRequest};
use crate::Catalog;

/// A blue-green record for tenant `t1` over a catalog of `pg` and `logs`.
pub(super) fn record() -> MigrationRecord {
    let cat = Catalog::from_toml(
        "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nholds = \"x\"\nbackend = \"embedded\"\n[[systems]]\nname = \"logs\"\nkind = \"logs\"\nholds = \"x\"\nbackend = \"embedded\"\n",
    )
    .expect("catalog");
    let req = MigrationRequest::parse(
        &serde_json::json!({"tenant_id": "t1", "kind": "blue-green",
            "from": {"environment": "blue"}, "to": {"environment": "green"}}),
        &cat,
    )
    .expect("request");
    MigrationRecord::new("mig-t1-green", &req, HOME, "2026-01-01T00:00:00Z")
}
