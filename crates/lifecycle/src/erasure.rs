//! GDPR Art. 17 erasure: request validation, per-system results, the rule that no
//! certificate is issued until every requested system is verified with zero residue.

use crate::certificate::canonical_bytes;
use crate::{Catalog, EraseMethod, RequestId, StepError, SystemKind, SystemName, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Chain (and certificate kind) of erasure certificates.
pub const ERASURE_CHAIN: &str = "gdpr-erasure";
/// Legal basis written into every erasure certificate.
pub const LEGAL_BASIS: &str = "GDPR Art. 17(1)";
/// The largest request accepted, in bytes of JSON.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The longest free-text reason accepted.
pub const MAX_REASON_CHARS: usize = 1000;

/// The ground for erasure, from the fixed list of GDPR Art. 17(1); the only reason that
/// goes on the ledger in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    /// (a) no longer necessary for the purposes collected (e.g. offboarding).
    NoLongerNecessary,
    /// (b) consent withdrawn.
    ConsentWithdrawn,
    /// (c) objection to processing.
    Objection,
    /// (d) unlawfully processed.
    UnlawfulProcessing,
    /// (e) erasure required by a legal obligation.
    LegalObligation,
    /// (f) data of a child collected for information society services.
    ChildData,
    /// Not stated as one of the above (the free-text reason's digest is certified).
    Unspecified,
}

impl ReasonCode {
    /// The legal basis it invokes.
    pub fn legal_basis(self) -> &'static str {
        match self {
            Self::NoLongerNecessary => "GDPR Art. 17(1)(a)",
            Self::ConsentWithdrawn => "GDPR Art. 17(1)(b)",
            Self::Objection => "GDPR Art. 17(1)(c)",
            Self::UnlawfulProcessing => "GDPR Art. 17(1)(d)",
            Self::LegalObligation => "GDPR Art. 17(1)(e)",
            Self::ChildData => "GDPR Art. 17(1)(f)",
            Self::Unspecified => LEGAL_BASIS,
        }
    }
}

/// A validated erasure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Unique request id; also the execution name.
    pub request_id: RequestId,
    /// The tenant to erase.
    pub tenant_id: TenantId,
    /// Why, in the requester's words. Never logged and never certified: it may name a
    /// person. The certificate holds only its SHA-256; the text stays in the request claim,
    /// which is erasable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The ground, from a fixed list; `unspecified` when only free text is given.
    #[serde(default = "unspecified")]
    pub reason_code: ReasonCode,
    /// Systems to erase from; each must be in the catalog.
    pub systems: Vec<SystemName>,
}

fn unspecified() -> ReasonCode {
    ReasonCode::Unspecified
}

/// Hex SHA-256 of the RFC 8785 form of a JSON value.
pub fn json_digest(v: &Value) -> String {
    let bytes = canonical_bytes(v).unwrap_or_else(|_| v.to_string().into_bytes());
    hex::encode(Sha256::digest(bytes))
}

impl ErasureRequest {
    /// What the request id is bound to: tenant, sorted systems and the catalog's digest.
    /// A replay with the same digest returns the existing certificate; another is refused.
    pub fn digest(&self, catalog: &Catalog) -> String {
        let mut systems: Vec<&str> = self.systems.iter().map(SystemName::as_str).collect();
        systems.sort_unstable();
        json_digest(&serde_json::json!({
            "catalog_sha256": catalog.digest(),
            "systems": systems,
            "tenant_id": self.tenant_id,
        }))
    }

    /// SHA-256 of the free-text reason, when one was given.
    pub fn reason_sha256(&self) -> Option<String> {
        (!self.reason.is_empty()).then(|| hex::encode(Sha256::digest(self.reason.as_bytes())))
    }

    /// What a certificate says of the reason: the code, its legal basis, the text's digest.
    pub fn reason_details(&self) -> Value {
        let mut v = serde_json::json!({
            "code": self.reason_code,
            "legal_basis": self.reason_code.legal_basis(),
        });
        if let Some(h) = self.reason_sha256() {
            v["text_sha256"] = h.into();
        }
        v
    }
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
        for field in ["request_id", "tenant_id", "systems"] {
            if !obj.contains_key(field) {
                return Err(StepError::invalid(format!(
                    "request is missing the field {field:?} (required: request_id, tenant_id, systems, and reason or reason_code)"
                )));
            }
        }
        if !obj.contains_key("reason") && !obj.contains_key("reason_code") {
            return Err(StepError::invalid(
                "request states no ground: give reason_code (no-longer-necessary, consent-withdrawn, objection, unlawful-processing, legal-obligation, child-data) or a reason",
            ));
        }
        let req: ErasureRequest = serde_json::from_value(raw.clone())
            .map_err(|e| StepError::invalid(format!("request is malformed: {e}")))?;
        if obj.contains_key("reason") && req.reason.trim().is_empty() {
            return Err(StepError::invalid(
                "reason is empty; state the ground for erasure",
            ));
        }
        if req.reason.chars().any(|c| c.is_control() && c != '\n') {
            return Err(StepError::invalid(
                "reason holds a control character (only line breaks are allowed)",
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
    /// Records erased by this request (at least what was found before the first pass).
    pub records_erased: u64,
    /// Records of the tenant found before the first erase pass.
    #[serde(default)]
    pub records_found: u64,
    /// Records of the tenant the re-scan still found.
    pub residual_records: u64,
    /// When the re-scan ran.
    pub verified_at: String,
    /// What the erasure closed that takes time to be gone for good (a KMS key pending
    /// deletion, per region).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

/// A copy that stops being readable at once but is only gone for good later: the
/// certificate states both instants, per region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// What it is (`backup key arn:aws:kms:...`, never personal data).
    pub what: String,
    /// Where.
    pub region: String,
    /// When it stopped being readable.
    pub closed_at: String,
    /// When nothing of it remains.
    pub gone_by: String,
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

/// One system's erasure progress, as persisted after every pass so that a killed and
/// resumed erasure still certifies everything it erased.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SystemProgress {
    /// System name.
    pub system: String,
    /// Records of the tenant counted before the first pass.
    pub records_found: Option<u64>,
    /// Records the passes reported erased, summed over every execution of the request.
    pub records_erased: u64,
    /// True once a pass left nothing.
    pub done: bool,
}

impl SystemProgress {
    /// What the certificate counts: the passes' sum, and never less than what was found
    /// before erasing began (a pass cut short by a kill reports nothing, yet erased).
    pub fn certified_count(&self) -> u64 {
        self.records_erased.max(self.records_found.unwrap_or(0))
    }
}

/// The scope an erasure proved: which catalog, and every system its re-scan covered.
pub fn scope(catalog: &Catalog, scanned: &[String]) -> Value {
    let mut scanned: Vec<&str> = scanned.iter().map(String::as_str).collect();
    scanned.sort_unstable();
    scanned.dedup();
    serde_json::json!({
        "catalog_environment": catalog.environment,
        "catalog_sha256": catalog.digest(),
        "systems_scanned": scanned,
    })
}

/// The `details` of an `erased` certificate.
pub fn erased_details(
    req: &ErasureRequest,
    digest: &str,
    verified: &[SystemVerification],
    scope: Value,
) -> Value {
    let total: u64 = verified.iter().map(|v| v.records_erased).sum();
    serde_json::json!({
        "legal_basis": req.reason_code.legal_basis(),
        "reason": req.reason_details(),
        "request_sha256": digest,
        "records_erased_total": total,
        "scope": scope,
        "systems": verified,
    })
}

/// The `details` of a `refused` certificate: an active legal hold stopped the erasure
/// (before it began, or mid-way: `progress` says what was erased until then).
pub fn refused_details(
    req: &ErasureRequest,
    digest: &str,
    holds: &[String],
    progress: &[SystemProgress],
) -> Value {
    serde_json::json!({
        "legal_basis": req.reason_code.legal_basis(),
        "reason": req.reason_details(),
        "request_sha256": digest,
        "refusal": "LegalHoldActive",
        "legal_holds": holds,
        "systems_requested": req.systems,
        "records_erased_total": progress.iter().map(SystemProgress::certified_count).sum::<u64>(),
        "systems": progress_details(progress),
    })
}

fn progress_details(progress: &[SystemProgress]) -> Vec<Value> {
    progress
        .iter()
        .map(|p| {
            serde_json::json!({
                "system": p.system,
                "records_erased": p.certified_count(),
                "complete": p.done,
            })
        })
        .collect()
}

/// The `details` of an `incomplete` certificate: the erasure erased something and then
/// stopped (`error` is the stable error type); `residue` is what a re-scan still found.
pub fn incomplete_details(
    req: &ErasureRequest,
    digest: &str,
    error: &str,
    progress: &[SystemProgress],
    residue: &[(String, u64)],
    scope: Value,
) -> Value {
    serde_json::json!({
        "legal_basis": req.reason_code.legal_basis(),
        "reason": req.reason_details(),
        "request_sha256": digest,
        "stopped_by": error,
        "records_erased_total": progress.iter().map(SystemProgress::certified_count).sum::<u64>(),
        "systems": progress_details(progress),
        "residue": residue.iter().map(|(s, n)| serde_json::json!({"system": s, "records": n})).collect::<Vec<_>>(),
        "scope": scope,
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
            records_found: 5,
            residual_records: residual,
            verified_at: "2026-01-01T00:00:00Z".into(),
            windows: vec![],
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
        let d = erased_details(
            &req,
            &req.digest(&catalog()),
            &[v("s3", 0), v("redis", 0)],
            scope(&catalog(), &["s3".into(), "redis".into()]),
        );
        assert_eq!(d["records_erased_total"], 10);
        assert_eq!(d["scope"]["systems_scanned"], json!(["redis", "s3"]));
        // The words of the reason never reach the certificate, only their digest.
        assert!(!d.to_string().contains("offboarding"));
        assert_eq!(d["reason"]["code"], "unspecified");
    }

    #[test]
    fn the_digest_binds_tenant_systems_and_catalog_but_not_their_order() {
        let c = catalog();
        let a = ErasureRequest::parse(&good(), &c).expect("ok");
        let mut swapped = good();
        swapped["systems"] = json!(["redis", "s3"]);
        let b = ErasureRequest::parse(&swapped, &c).expect("ok");
        assert_eq!(a.digest(&c), b.digest(&c));
        let mut other = good();
        other["tenant_id"] = "t2".into();
        assert_ne!(
            a.digest(&c),
            ErasureRequest::parse(&other, &c).expect("ok").digest(&c)
        );
        let mut fewer = good();
        fewer["systems"] = json!(["s3"]);
        assert_ne!(
            a.digest(&c),
            ErasureRequest::parse(&fewer, &c).expect("ok").digest(&c)
        );
        let mut c2 = c.clone();
        c2.environment = "other".into();
        assert_ne!(a.digest(&c), a.digest(&c2));
    }

    #[test]
    fn a_reason_code_alone_is_enough_and_unknown_codes_are_refused() {
        let r = ErasureRequest::parse(
            &json!({"request_id": "r1", "tenant_id": "t1", "reason_code": "consent-withdrawn", "systems": ["s3"]}),
            &catalog(),
        )
        .expect("ok");
        assert_eq!(r.reason_code.legal_basis(), "GDPR Art. 17(1)(b)");
        assert!(r.reason_sha256().is_none());
        let e = ErasureRequest::parse(
            &json!({"request_id": "r1", "tenant_id": "t1", "reason_code": "because", "systems": ["s3"]}),
            &catalog(),
        )
        .expect_err("unknown code");
        assert_eq!(e.error_type(), "InvalidRequest");
        let e = ErasureRequest::parse(
            &json!({"request_id": "r1", "tenant_id": "t1", "systems": ["s3"]}),
            &catalog(),
        )
        .expect_err("no ground");
        assert!(e.to_string().contains("reason_code"), "{e}");
    }
}
