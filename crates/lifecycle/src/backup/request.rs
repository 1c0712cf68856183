//! What may be asked of backup and restore, validated before anything runs.

use super::manifest::tenant_of;
use crate::{StepError, TenantId};
use serde::{Deserialize, Serialize};

/// The largest request accepted (bytes of JSON).
pub const MAX_REQUEST: usize = 16 << 10;

/// A backup to take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its tier (default: the catalog's tier for the tenant).
    #[serde(default)]
    pub tier: Option<String>,
    /// Full (default) or incremental.
    #[serde(default = "full")]
    pub kind: super::BackupKind,
}

fn full() -> super::BackupKind {
    super::BackupKind::Full
}

/// A restore to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The backup to restore (with `to_time`, the restore starts from the tenant's chain
    /// and this id only names the tenant).
    pub backup_id: String,
    /// Restore the state at this instant (RFC 3339): the last full backup before it and
    /// the increments up to it.
    #[serde(default)]
    pub to_time: Option<String>,
    /// The location written (never the live one): `restore` by default.
    #[serde(default = "default_location")]
    pub to: String,
    /// The schema version to restore at (default: the backup's own).
    #[serde(default)]
    pub schema_version: Option<u32>,
    /// An id for the restore (default: derived from the backup, location and instant).
    #[serde(default)]
    pub restore_id: Option<String>,
    /// The tenant: needed for the backups of a tenant id over 58 characters (`bl-...`),
    /// whose id holds only a prefix and a digest of it; checked against the id otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// After the restore is verified, move the tenant's traffic to the restored location
    /// through the migration router (a migration of kind `restore`: dual-write, cutover
    /// behind health gates, rollback to the live location in milliseconds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
}

fn default_location() -> String {
    "restore".into()
}

fn parse_json<T: serde::de::DeserializeOwned>(
    raw: &serde_json::Value,
    what: &str,
) -> Result<T, StepError> {
    let text = raw.to_string();
    if text.len() > MAX_REQUEST {
        return Err(StepError::invalid(format!(
            "{what} of {} bytes is over the {MAX_REQUEST}-byte limit",
            text.len()
        )));
    }
    serde_json::from_value(raw.clone()).map_err(|e| StepError::invalid(format!("{what}: {e}")))
}

impl BackupRequest {
    /// Validates a backup request.
    pub fn parse(raw: &serde_json::Value) -> Result<Self, StepError> {
        let r: Self = parse_json(raw, "backup request")?;
        if let Some(t) = &r.tier {
            crate::ids::SystemName::parse(t)
                .map_err(|_| StepError::invalid(format!("tier {t:?} is not a tier name")))?;
        }
        Ok(r)
    }
}

impl RestoreRequest {
    /// Validates a restore request; the tenant is read from the backup id.
    pub fn parse(raw: &serde_json::Value) -> Result<(Self, TenantId), StepError> {
        let r: Self = parse_json(raw, "restore request")?;
        let tenant = match (tenant_of(&r.backup_id), &r.tenant_id) {
            (Some(t), None) => t,
            (Some(t), Some(named)) if t == *named => t,
            (Some(t), Some(named)) => {
                return Err(StepError::invalid(format!(
                    "backup {} is tenant {t}'s, not {named}'s",
                    r.backup_id
                )));
            }
            (None, Some(named)) if super::manifest::names_tenant(&r.backup_id, named) => {
                named.clone()
            }
            (None, Some(named)) => {
                return Err(StepError::invalid(format!(
                    "{:?} is not a backup of tenant {named}",
                    r.backup_id
                )));
            }
            (None, None) if r.backup_id.starts_with("bl-") => {
                return Err(StepError::invalid(format!(
                    "{:?} is a backup of a tenant id too long for the id to hold: name the tenant (tenant_id, or --tenant)",
                    r.backup_id
                )));
            }
            (None, None) => {
                return Err(StepError::invalid(format!(
                    "{:?} is not a backup id (bk-<yyyymmddThhmmssmmm>-<tenant>); `tenantctl backup list <tenant>` shows them",
                    r.backup_id
                )));
            }
        };
        crate::RequestId::parse(&r.backup_id)?;
        crate::ids::SystemName::parse(&r.to).map_err(|_| {
            StepError::invalid(format!("location {:?} is not a location name", r.to))
        })?;
        if r.to == crate::migration::HOME {
            return Err(StepError::invalid(
                "a restore never writes over the live location `home`; restore into another location and cut over with a migration",
            ));
        }
        if let Some(t) = &r.to_time {
            super::policy::instant(t)?;
        }
        if let Some(id) = &r.restore_id {
            crate::RequestId::parse(id)?;
        }
        Ok((r, tenant))
    }

    /// The restore's id: given, or derived from what it restores and where.
    pub fn id(&self) -> String {
        self.restore_id.clone().unwrap_or_else(|| {
            let mut what = serde_json::json!({
                "backup_id": self.backup_id, "to": self.to, "to_time": self.to_time,
                "schema_version": self.schema_version,
            });
            if self.in_place {
                what["in_place"] = serde_json::Value::Bool(true);
            }
            let mut h = crate::erasure::json_digest(&what);
            h.truncate(16);
            format!("rs-{h}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restores_name_a_backup_and_never_the_live_location() {
        let (r, t) =
            RestoreRequest::parse(&json!({"backup_id": "bk-20260102t030405006-t1"})).expect("ok");
        assert_eq!(t.as_str(), "t1");
        assert_eq!(r.to, "restore");
        assert!(r.id().starts_with("rs-"));
        for bad in [
            json!({"backup_id": "../etc"}),
            json!({"backup_id": "bk-20260102t030405006-t1", "to": "home"}),
            json!({"backup_id": "bk-20260102t030405006-t1", "to": "a/b"}),
            json!({"backup_id": "bk-20260102t030405006-t1", "to_time": "yesterday"}),
            json!({"backup_id": "bk-20260102t030405006-t1", "extra": 1}),
            json!({"backup_id": "bk-20260102t030405006-t1", "to": "x".repeat(20_000)}),
        ] {
            assert_eq!(
                RestoreRequest::parse(&bad).expect_err("bad").error_type(),
                "InvalidRequest",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_long_tenants_restore_names_the_tenant_and_the_id_must_be_its() {
        let long = TenantId::parse(&format!("t{}", "x".repeat(99))).expect("id");
        let id = super::super::manifest::backup_id(
            &long,
            time::macros::datetime!(2026-01-02 03:04:05.006 UTC),
        );
        let err = RestoreRequest::parse(&json!({"backup_id": id})).expect_err("no tenant");
        assert!(err.to_string().contains("name the tenant"), "{err}");
        let (_, t) =
            RestoreRequest::parse(&json!({"backup_id": id, "tenant_id": long})).expect("named");
        assert_eq!(t, long);
        let other = format!("u{}", "x".repeat(99));
        assert!(RestoreRequest::parse(&json!({"backup_id": id, "tenant_id": other})).is_err());
        assert!(
            RestoreRequest::parse(
                &json!({"backup_id": "bk-20260102t030405006-t1", "tenant_id": "t2"})
            )
            .is_err(),
            "a short id names its tenant; another is refused"
        );
        RestoreRequest::parse(&json!({"backup_id": "bk-20260102t030405006-t1", "tenant_id": "t1"}))
            .expect("the same tenant");
    }

    #[test]
    fn backups_validate_their_tenant_and_tier() {
        let r = BackupRequest::parse(&json!({"tenant_id": "t1"})).expect("ok");
        assert_eq!(r.kind, crate::backup::BackupKind::Full);
        assert!(BackupRequest::parse(&json!({"tenant_id": "t/1"})).is_err());
        assert!(BackupRequest::parse(&json!({"tenant_id": "t1", "tier": "a b"})).is_err());
        assert!(BackupRequest::parse(&json!({"tenant_id": "t1", "kind": "incremental"})).is_ok());
    }
}
