//! The migration request and its validation against the catalog.

use super::{CUTOVER_STEPS, HOME, Transform};
use crate::{Catalog, StepError, SystemName, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What kind of move a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationKind {
    /// Blue to green environment.
    BlueGreen,
    /// One region to another.
    Region,
    /// One schema version to the next.
    SchemaVersion,
    /// Onto a location a verified restore wrote (`restore --in-place`): no bulk copy, the
    /// restore's certificate stands for the verification.
    Restore,
}

/// How verification compares source and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VerifyMode {
    /// Live record counts.
    Count,
    /// Order-independent fingerprints of every live record.
    #[default]
    Hash,
    /// Record-by-record diff; differing records are repaired from the source.
    Full,
}

/// Tunables of one migration, all with defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationOptions {
    /// Seconds each cutover step soaks before its health check.
    #[serde(default = "default_soak")]
    pub soak_seconds: u64,
    /// Seconds catch-up may take before the migration times out and rolls back.
    #[serde(default = "default_catchup_timeout")]
    pub catchup_timeout_seconds: u64,
    /// Changes still to apply at or below which the target counts as caught up.
    #[serde(default = "default_max_lag")]
    pub max_lag: u64,
    /// Records per sync page.
    #[serde(default = "default_page")]
    pub page_size: u32,
    /// Target requests a health check needs before it can pass (fewer: it waits).
    #[serde(default)]
    pub min_requests: u64,
}

fn default_soak() -> u64 {
    60
}
fn default_catchup_timeout() -> u64 {
    900
}
fn default_max_lag() -> u64 {
    100
}
fn default_page() -> u32 {
    500
}

impl Default for MigrationOptions {
    fn default() -> Self {
        Self {
            soak_seconds: default_soak(),
            catchup_timeout_seconds: default_catchup_timeout(),
            max_lag: default_max_lag(),
            page_size: default_page(),
            min_requests: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    migration_id: Option<String>,
    tenant_id: TenantId,
    kind: MigrationKind,
    from: BTreeMap<String, Value>,
    to: BTreeMap<String, Value>,
    #[serde(default)]
    systems: Option<Vec<SystemName>>,
    #[serde(default)]
    steps_percent: Option<Vec<u8>>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    options: MigrationOptions,
    #[serde(default)]
    restore_id: Option<String>,
}

/// A validated migration request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRequest {
    /// Id of this migration, if the caller named it (otherwise provision names it).
    pub migration_id: Option<String>,
    /// The tenant to move.
    pub tenant_id: TenantId,
    /// Kind of move.
    pub kind: MigrationKind,
    /// Label of where the tenant is (e.g. `blue`, `us-east-1`, `v1`).
    pub from: String,
    /// Label of where it goes; also the target's location name.
    pub to: String,
    /// Systems moved (default: every system of the catalog).
    pub systems: Vec<SystemName>,
    /// Body transform implied by the kind.
    pub transform: Transform,
    /// Tunables.
    pub options: MigrationOptions,
    /// The verified restore whose location this migration moves the tenant onto (kind
    /// `restore` only).
    pub restore_id: Option<String>,
}

fn label(
    kind: MigrationKind,
    side: &BTreeMap<String, Value>,
    which: &str,
) -> Result<String, StepError> {
    let field = match kind {
        MigrationKind::BlueGreen => "environment",
        MigrationKind::Region => "region",
        MigrationKind::SchemaVersion => "schema_version",
        MigrationKind::Restore => "location",
    };
    if let Some(extra) = side.keys().find(|k| *k != field) {
        return Err(StepError::invalid(format!(
            "`{which}` of a {kind:?} migration takes only `{field}`, not `{extra}`"
        )));
    }
    let text = match side.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if kind == MigrationKind::SchemaVersion => format!("v{n}"),
        _ => {
            return Err(StepError::invalid(format!(
                "`{which}.{field}` is required for a {kind:?} migration"
            )));
        }
    };
    // A restore may start from the live location `home`; every other label names a side
    // that is not home.
    let home_ok = kind == MigrationKind::Restore && which == "from";
    let ok = !text.is_empty()
        && text.len() <= 40
        && (text != HOME || home_ok)
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(StepError::invalid(format!(
            "`{which}.{field}` must be 1-40 letters, digits, '-' or '_' (and not `{HOME}`)"
        )));
    }
    Ok(text)
}

impl MigrationRequest {
    /// Validates a request (the shape of scenarios.json's `migrations`) against the catalog.
    pub fn parse(raw: &Value, catalog: &Catalog) -> Result<Self, StepError> {
        let r: RawRequest = serde_json::from_value(raw.clone())
            .map_err(|e| StepError::invalid(format!("migration request is malformed: {e}")))?;
        let from = label(r.kind, &r.from, "from")?;
        let to = label(r.kind, &r.to, "to")?;
        if from == to {
            return Err(StepError::invalid(format!(
                "`from` and `to` are both {from}: nothing to migrate"
            )));
        }
        let transform = match r.kind {
            MigrationKind::SchemaVersion if from == "v1" && to == "v2" => Transform::SchemaV1ToV2,
            MigrationKind::SchemaVersion => {
                return Err(StepError::invalid(format!(
                    "no schema transform from {from} to {to} (known: v1 -> v2)"
                )));
            }
            _ => Transform::None,
        };
        if let Some(steps) = &r.steps_percent
            && steps.as_slice() != CUTOVER_STEPS
        {
            return Err(StepError::invalid(format!(
                "steps_percent must be {CUTOVER_STEPS:?} (got {steps:?})"
            )));
        }
        let systems = match r.systems {
            Some(s) if s.is_empty() => {
                return Err(StepError::invalid("`systems` is empty"));
            }
            Some(s) => s,
            // Backups, and logs without migration locations, cannot be moved record by
            // record; they stay where they are unless a request names them (and is
            // refused).
            None => catalog
                .systems
                .iter()
                .filter(|s| s.migratable())
                .map(|s| s.name.clone())
                .collect(),
        };
        for s in &systems {
            let spec = catalog.system(s.as_str()).ok_or_else(|| {
                StepError::invalid(format!(
                    "system {s} is not in the {} catalog (known: {})",
                    catalog.environment,
                    catalog.system_names().join(", ")
                ))
            })?;
            if !spec.migratable() {
                let how = if spec.kind == crate::SystemKind::Logs {
                    " (a logs system migrates only when its product keeps records in a stream of their own and its catalog entry names `locations`)"
                } else {
                    ""
                };
                return Err(StepError::invalid(format!(
                    "system {s} ({:?}) cannot be migrated record by record{how}; leave it out of `systems`",
                    spec.kind
                )));
            }
        }
        let o = &r.options;
        if o.page_size == 0 || o.page_size > 10_000 || o.soak_seconds > 86_400 {
            return Err(StepError::invalid(
                "options: page_size must be 1..=10000 and soak_seconds at most 86400",
            ));
        }
        let _ = r.reason;
        let restore_id = match (r.kind, r.restore_id) {
            (MigrationKind::Restore, Some(id)) => Some(crate::RequestId::parse(&id)?.to_string()),
            (MigrationKind::Restore, None) => {
                return Err(StepError::invalid(
                    "a restore migration names the verified restore it moves onto (restore_id)",
                ));
            }
            (_, Some(_)) => {
                return Err(StepError::invalid(
                    "restore_id belongs to a migration of kind restore",
                ));
            }
            (_, None) => None,
        };
        let migration_id = r
            .migration_id
            .map(|id| crate::RequestId::parse(&id).map(|i| i.to_string()))
            .transpose()?;
        Ok(Self {
            migration_id,
            tenant_id: r.tenant_id,
            kind: r.kind,
            from,
            to,
            systems,
            transform,
            options: r.options,
            restore_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::testing::record;

    #[test]
    fn requests_are_validated_against_the_catalog() {
        let m = record();
        assert_eq!(
            m.systems,
            vec!["pg"],
            "logs cannot be migrated record by record"
        );
        assert_eq!(m.migration_id, "mig-t1-green");
        let cat = Catalog::from_toml(
            "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nholds = \"x\"\nbackend = \"embedded\"\n",
        )
        .expect("catalog");
        let bad = [
            (
                serde_json::json!({"tenant_id": "t1", "kind": "region", "from": {"region": "a"}, "to": {"region": "a"}}),
                "nothing to migrate",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "region", "from": {"environment": "a"}, "to": {"region": "b"}}),
                "takes only",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "schema-version", "from": {"schema_version": 2}, "to": {"schema_version": 3}}),
                "no schema transform",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "g"}, "systems": ["nope"]}),
                "not in the",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "g"}, "steps_percent": [50, 100]}),
                "steps_percent",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "../x"}}),
                "letters",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "teleport", "from": {}, "to": {}}),
                "malformed",
            ),
        ];
        for (raw, want) in bad {
            let e = MigrationRequest::parse(&raw, &cat).expect_err(want);
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
        // A logs system migrates when its entry names locations (CloudWatch Logs); the
        // embedded world's logs take no settings, so they are still refused.
        let logs = Catalog::from_toml(
            "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nbackend = \"embedded\"\n[[systems]]\nname = \"local-logs\"\nkind = \"logs\"\nbackend = \"embedded\"\n[[systems]]\nname = \"cw\"\nkind = \"logs\"\nbackend = \"cloudwatch\"\ngroups = [\"/a/{tenant_id}\"]\nlocations = { green = \"/g/{tenant_id}\" }\n[[systems]]\nname = \"cw-home\"\nkind = \"logs\"\nbackend = \"cloudwatch\"\ngroups = [\"/h/{tenant_id}\"]\n",
        )
        .expect("catalog");
        let bg = |systems: Option<&[&str]>| {
            let mut raw = serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "green"}});
            if let Some(s) = systems {
                raw["systems"] = serde_json::json!(s);
            }
            MigrationRequest::parse(&raw, &logs)
        };
        let names = |r: MigrationRequest| {
            r.systems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(bg(None).expect("every migratable system")),
            ["pg", "cw"],
            "logs with locations are migrated, logs without stay"
        );
        assert_eq!(names(bg(Some(&["cw"])).expect("named")), ["cw"]);
        for refused in ["local-logs", "cw-home"] {
            let e = bg(Some(&[refused])).expect_err(refused);
            assert!(
                e.to_string()
                    .contains("cannot be migrated record by record")
                    && e.to_string().contains("names `locations`"),
                "{e}"
            );
        }
        let v2 = MigrationRequest::parse(
            &serde_json::json!({"tenant_id": "t3", "kind": "schema-version", "from": {"schema_version": 1}, "to": {"schema_version": 2}}),
            &cat,
        )
        .expect("v1 -> v2");
        assert_eq!(
            (v2.from.as_str(), v2.to.as_str(), v2.transform),
            ("v1", "v2", Transform::SchemaV1ToV2)
        );
    }

    #[test]
    fn a_restore_migration_starts_from_home_and_names_its_restore() {
        let cat = Catalog::from_toml(
            "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nholds = \"x\"\nbackend = \"embedded\"\n",
        )
        .expect("catalog");
        let ok = MigrationRequest::parse(
            &serde_json::json!({"tenant_id": "t1", "kind": "restore", "from": {"location": "home"},
                "to": {"location": "restored"}, "restore_id": "rs-0123"}),
            &cat,
        )
        .expect("restore");
        assert_eq!(
            (ok.from.as_str(), ok.to.as_str(), ok.restore_id.as_deref()),
            ("home", "restored", Some("rs-0123"))
        );
        for (bad, says) in [
            (
                serde_json::json!({"tenant_id": "t1", "kind": "restore", "from": {"location": "home"}, "to": {"location": "r"}}),
                "restore_id",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "restore", "from": {"location": "r"}, "to": {"location": "home"}, "restore_id": "rs-1"}),
                "not `home`",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "a"}, "to": {"environment": "b"}, "restore_id": "rs-1"}),
                "kind restore",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "restore", "from": {"location": "home"}, "to": {"location": "r"}, "restore_id": "../x"}),
                "request_id",
            ),
        ] {
            let e = MigrationRequest::parse(&bad, &cat).expect_err(says);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }
}
