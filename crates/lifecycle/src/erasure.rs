//! GDPR Art. 17 erasure: request validation, per-system results, the rule that no
//! certificate is issued until every requested system is verified with zero residue.

use crate::{Catalog, EraseMethod, RequestId, StepError, SystemKind, SystemName, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Chain (and certificate kind) of erasure certificates.
pub const ERASURE_CHAIN: &str = "gdpr-erasure";
/// Legal basis written into every erasure certificate.
pub const LEGAL_BASIS: &str = "GDPR Art. 17(1)";
/// The largest request accepted, in bytes of JSON.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The longest free-text reason accepted.
pub const MAX_REASON_CHARS: usize = 1000;

/// A validated erasure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Unique request id; also the execution name.
    pub request_id: RequestId,
    /// The tenant to erase.
    pub tenant_id: TenantId,
    /// Why (kept in the certificate, never logged).
    pub reason: String,
    /// Systems to erase from; each must be in the catalog.
    pub systems: Vec<SystemName>,
}

impl ErasureRequest {
    /// Validates a raw request against the catalog. Every failure is `InvalidRequest` with
    /// a message that says what to fix.
    pub fn parse(raw: &Value, catalog: &Catalog) -> Result<Self, StepError> {
        let size = serde_json::to_vec(raw)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_REQUEST_BYTES {
            return Err(StepError::invalid(format!(
                "request is {size} bytes; the limit is {MAX_REQUEST_BYTES}"
            )));
        }
        let obj = raw
            .as_object()
            .ok_or_else(|| StepError::invalid("request must be a JSON object"))?;
        for field in ["request_id", "tenant_id", "reason", "systems"] {
            if !obj.contains_key(field) {
                return Err(StepError::invalid(format!(
                    "request is missing the field {field:?} (required: request_id, tenant_id, reason, systems)"
                )));
            }
        }
        let req: ErasureRequest = serde_json::from_value(raw.clone())
            .map_err(|e| StepError::invalid(format!("request is malformed: {e}")))?;
        if req.reason.trim().is_empty() {
            return Err(StepError::invalid(
                "reason is empty; state the ground for erasure",
            ));
        }
        if req.reason.chars().count() > MAX_REASON_CHARS {
            return Err(StepError::invalid(format!(
                "reason is longer than {MAX_REASON_CHARS} characters"
            )));
        }
        if req.systems.is_empty() {
            return Err(StepError::invalid(
                "systems is empty; name at least one system",
            ));
        }
        let mut seen = BTreeSet::new();
        for s in &req.systems {
            if !seen.insert(s.as_str()) {
                return Err(StepError::invalid(format!("system {s} is listed twice")));
            }
            if catalog.system(s.as_str()).is_none() {
                return Err(StepError::invalid(format!(
                    "system {s} is not in the {} catalog (known: {})",
                    catalog.environment,
                    catalog.system_names().join(", ")
                )));
            }
        }
        Ok(req)
    }
}

/// What one system's verification scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemVerification {
    /// System name.
    pub system: String,
    /// Its kind.
    pub kind: SystemKind,
    /// How it was erased.
    pub method: EraseMethod,
    /// Records erased by this request.
    pub records_erased: u64,
    /// Records of the tenant the re-scan still found.
    pub residual_records: u64,
    /// When the re-scan ran.
    pub verified_at: String,
}

/// Checks every requested system was verified and holds nothing of the tenant.
pub fn require_verified(
    requested: &[SystemName],
    verified: &[SystemVerification],
) -> Result<(), StepError> {
    for s in requested {
        let Some(v) = verified.iter().find(|v| v.system == s.as_str()) else {
            return Err(StepError::VerificationIncomplete(format!(
                "system {s} has not been verified"
            )));
        };
        if v.residual_records > 0 {
            return Err(StepError::ResidualDataFound {
                system: v.system.clone(),
                records: v.residual_records,
            });
        }
    }
    if let Some(extra) = verified
        .iter()
        .find(|v| !requested.iter().any(|s| s.as_str() == v.system))
    {
        return Err(StepError::VerificationIncomplete(format!(
            "verification names system {} that the request did not",
            extra.system
        )));
    }
    Ok(())
}

/// The `details` of an `erased` certificate.
pub fn erased_details(req: &ErasureRequest, verified: &[SystemVerification]) -> Value {
    let total: u64 = verified.iter().map(|v| v.records_erased).sum();
    serde_json::json!({
        "legal_basis": LEGAL_BASIS,
        "reason": req.reason,
        "records_erased_total": total,
        "systems": verified,
    })
}

/// The `details` of a `refused` certificate: nothing was erased because of legal holds.
pub fn refused_details(req: &ErasureRequest, holds: &[String]) -> Value {
    serde_json::json!({
        "legal_basis": LEGAL_BASIS,
        "reason": req.reason,
        "refusal": "LegalHoldActive",
        "legal_holds": holds,
        "systems_requested": req.systems,
        "records_erased_total": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::from_toml(
            r#"
environment = "t"
ledger = { backend = "embedded" }
legal_holds = { backend = "embedded" }
signer = { backend = "local" }
[[systems]]
name = "s3"
kind = "objects"
backend = "embedded"
[[systems]]
name = "redis"
kind = "key-value"
backend = "embedded"
"#,
        )
        .expect("catalog")
    }

    fn good() -> Value {
        json!({"request_id": "r1", "tenant_id": "t1", "reason": "offboarding", "systems": ["s3", "redis"]})
    }

    #[test]
    fn a_good_request_parses() {
        let r = ErasureRequest::parse(&good(), &catalog()).expect("ok");
        assert_eq!(r.systems.len(), 2);
    }

    #[test]
    fn malformed_requests_are_invalid_with_a_reason() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "JSON object"),
            (
                json!({"tenant_id": "t1", "reason": "x", "systems": ["s3"]}),
                "request_id",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "a/b", "reason": "x", "systems": ["s3"]}),
                "'/'",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "..", "reason": "x", "systems": ["s3"]}),
                "tenant_id",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "", "reason": "x", "systems": ["s3"]}),
                "empty",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "t1", "reason": "x", "systems": ["mongo"]}),
                "not in the",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "t1", "reason": "x", "systems": "s3"}),
                "malformed",
            ),
            (
                json!({"request_id": 7, "tenant_id": "t1", "reason": "x", "systems": ["s3"]}),
                "malformed",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "t1", "reason": "x", "systems": []}),
                "empty",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "t1", "reason": "x", "systems": ["s3", "s3"]}),
                "twice",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "t1", "reason": "x", "systems": ["s3"], "extra": 1}),
                "unknown field",
            ),
            (
                json!({"request_id": "r1", "tenant_id": "t1", "reason": "x".repeat(1 << 20), "systems": ["s3"]}),
                "limit",
            ),
        ];
        for (raw, needle) in cases {
            let e = ErasureRequest::parse(&raw, &catalog()).expect_err(needle);
            assert_eq!(e.error_type(), "InvalidRequest");
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
    }

    fn v(system: &str, residual: u64) -> SystemVerification {
        SystemVerification {
            system: system.into(),
            kind: SystemKind::Objects,
            method: EraseMethod::DeleteAllVersions,
            records_erased: 5,
            residual_records: residual,
            verified_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn certificate_needs_every_system_verified_clean() {
        let req = ErasureRequest::parse(&good(), &catalog()).expect("ok");
        assert!(require_verified(&req.systems, &[v("s3", 0), v("redis", 0)]).is_ok());
        let e = require_verified(&req.systems, &[v("s3", 0)]).expect_err("missing");
        assert_eq!(e.error_type(), "VerificationIncomplete");
        let e = require_verified(&req.systems, &[v("s3", 0), v("redis", 2)]).expect_err("residue");
        assert_eq!(e.error_type(), "ResidualDataFound");
        let d = erased_details(&req, &[v("s3", 0), v("redis", 0)]);
        assert_eq!(d["records_erased_total"], 10);
    }
}
