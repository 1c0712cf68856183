//! Certificates: a JSON body, signed as its RFC 8785 (JCS) canonical form with ECDSA P-256
//! over SHA-256 (ASN.1 DER, standard base64), so anyone can check one with openssl alone.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The only signature algorithm certificates use.
pub const ALG: &str = "ES256";

/// The signed body of a certificate. Holds strings, integers, booleans, arrays and objects
/// only; it names its ledger position so the signature binds it to the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Kind of certificate, e.g. `gdpr-erasure`; also the ledger chain's kind.
    pub kind: String,
    /// Body format version.
    pub format: u32,
    /// What happened: `erased`, `refused`, ...
    pub outcome: String,
    /// The request this certifies.
    pub request_id: String,
    /// The tenant it concerns.
    pub tenant_id: String,
    /// When it was issued (RFC 3339, UTC).
    pub issued_at: String,
    /// Ledger chain the certificate is recorded on.
    pub chain: String,
    /// Position on that chain.
    pub seq: u64,
    /// `entry_hash` of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// Identifier of the signing key.
    pub key_id: String,
    /// Kind-specific details.
    pub details: Value,
}

/// The signature over a certificate body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    /// Always `ES256`.
    pub alg: String,
    /// Identifier of the signing key.
    pub key_id: String,
    /// DER-encoded ECDSA signature, standard base64.
    pub der_base64: String,
}

/// A certificate with its signature: the document users keep and verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCertificate {
    /// The signed body.
    pub certificate: Certificate,
    /// Its signature.
    pub signature: SignatureBlock,
}

/// Why a certificate or key failed to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The document is not shaped like a certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The body holds a floating-point number, which JCS cannot pin down across languages.
    #[error("certificate body holds a non-integer number at {0}")]
    Float(String),
    /// No key with this id is known.
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// The signature does not match the body.
    #[error("signature does not verify")]
    BadSignature,
    /// A public key could not be read.
    #[error("bad public key: {0}")]
    BadKey(String),
}

/// RFC 8785 canonical bytes of a JSON value.
pub fn canonical_bytes(v: &Value) -> Result<Vec<u8>, CertError> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| CertError::Malformed(e.to_string()))
}

/// Refuses any floating-point number anywhere in `v`.
pub fn ensure_integers_only(v: &Value, path: &str) -> Result<(), CertError> {
    // The path is only built on failure: this runs for every entry of a ledger verify.
    fn find(v: &Value, trail: &mut Vec<String>) -> bool {
        match v {
            Value::Number(n) => !(n.is_i64() || n.is_u64()),
            Value::Array(a) => a.iter().enumerate().any(|(i, x)| {
                find(x, trail) && {
                    trail.push(format!("[{i}]"));
                    true
                }
            }),
            Value::Object(o) => o.iter().any(|(k, x)| {
                find(x, trail) && {
                    trail.push(format!(".{k}"));
                    true
                }
            }),
            _ => false,
        }
    }
    let mut trail = Vec::new();
    if find(v, &mut trail) {
        trail.reverse();
        return Err(CertError::Float(format!("{path}{}", trail.concat())));
    }
    Ok(())
}

impl Certificate {
    /// The exact bytes that are signed: JCS of the body.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, CertError> {
        let v = serde_json::to_value(self).map_err(|e| CertError::Malformed(e.to_string()))?;
        ensure_integers_only(&v, "$")?;
        canonical_bytes(&v)
    }
}

/// Reads a SubjectPublicKeyInfo PEM P-256 public key.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, CertError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| CertError::BadKey(e.to_string()))
}

/// Reads a SubjectPublicKeyInfo DER P-256 public key (what KMS GetPublicKey returns).
pub fn public_key_from_der(der: &[u8]) -> Result<VerifyingKey, CertError> {
    VerifyingKey::from_public_key_der(der).map_err(|e| CertError::BadKey(e.to_string()))
}

/// Writes a public key as SubjectPublicKeyInfo PEM.
pub fn public_key_to_pem(key: &VerifyingKey) -> Result<String, CertError> {
    key.to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| CertError::BadKey(e.to_string()))
}

/// A short stable id for a local key: `p256:` and 16 hex digits of SHA-256 of its SPKI DER.
pub fn local_key_id(key: &VerifyingKey) -> Result<String, CertError> {
    let der = key
        .to_public_key_der()
        .map_err(|e| CertError::BadKey(e.to_string()))?;
    let digest = Sha256::digest(der.as_bytes());
    Ok(format!("p256:{}", &hex::encode(digest)[..16]))
}

/// A public key an auditor trusts, ready to verify with: P-256 for parsing and signing
/// checks, and the same key parsed by aws-lc (assembly-optimised, constant-time), which
/// verifies several times faster than the pure-Rust crate.
#[derive(Clone)]
pub struct TrustedKey {
    /// The key.
    pub key: VerifyingKey,
    /// Its SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// Signed-note key ID: the first 4 bytes of SHA-256 of the SPKI DER (C2SP, type 0x02).
    pub note_id: [u8; 4],
    fast: Option<aws_lc_rs::signature::ParsedPublicKey>,
    /// Set once the key was rotated away: it signs nothing issued after this time.
    pub retired_at: Option<String>,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey")
            .field("note_id", &hex::encode(self.note_id))
            .finish_non_exhaustive()
    }
}

impl TrustedKey {
    /// Prepares a key for verification.
    pub fn new(key: VerifyingKey) -> Result<Self, CertError> {
        let spki_der = key
            .to_public_key_der()
            .map_err(|e| CertError::BadKey(e.to_string()))?
            .as_bytes()
            .to_vec();
        let digest = Sha256::digest(&spki_der);
        let point = key.to_encoded_point(false);
        let fast = aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            point.as_bytes(),
        )
        .ok();
        Ok(Self {
            key,
            spki_der,
            note_id: [digest[0], digest[1], digest[2], digest[3]],
            fast,
            retired_at: None,
        })
    }

    /// Checks an ECDSA P-256 / SHA-256 DER signature over `message`.
    pub fn verify(&self, message: &[u8], der: &[u8]) -> Result<(), CertError> {
        match &self.fast {
            Some(k) => k
                .verify_sig(message, der)
                .map_err(|_| CertError::BadSignature),
            None => self.verify_portable(message, der),
        }
    }

    /// The same check with the pure-Rust p256 crate (the cross-check in the tests).
    pub fn verify_portable(&self, message: &[u8], der: &[u8]) -> Result<(), CertError> {
        let signature = Signature::from_der(der).map_err(|_| CertError::BadSignature)?;
        self.key
            .verify(message, &signature)
            .map_err(|_| CertError::BadSignature)
    }
}

/// The public keys a verification accepts, by key id.
#[derive(Debug, Default, Clone)]
pub struct KeyRing(HashMap<String, TrustedKey>);

impl KeyRing {
    /// Adds a key under an id; a key aws-lc cannot parse still verifies with p256.
    pub fn insert(&mut self, key_id: impl Into<String>, key: VerifyingKey) {
        if let Ok(k) = TrustedKey::new(key) {
            self.0.insert(key_id.into(), k);
        }
    }
    /// Adds a key under the id derived from it ([`local_key_id`]); returns that id.
    pub fn trust(&mut self, key: VerifyingKey) -> Result<String, CertError> {
        let id = local_key_id(&key)?;
        self.0.insert(id.clone(), TrustedKey::new(key)?);
        Ok(id)
    }
    /// Marks a key retired from `at` on (RFC 3339): anything it signs later is refused.
    pub fn retire(&mut self, key_id: &str, at: &str) {
        if let Some(k) = self.0.get_mut(key_id)
            && k.retired_at.is_none()
        {
            k.retired_at = Some(at.to_owned());
        }
    }
    /// Looks a key up.
    pub fn get(&self, key_id: &str) -> Option<&TrustedKey> {
        self.0.get(key_id)
    }
    /// Finds a key by its signed-note key ID.
    pub fn by_note_id(&self, id: [u8; 4]) -> Option<&TrustedKey> {
        self.0.values().find(|k| k.note_id == id)
    }
    /// Key ids held, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.keys().cloned().collect();
        v.sort();
        v
    }
    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Verifies a certificate document given as JSON, against the key its `key_id` names.
///
/// Works on the raw JSON value, not on [`Certificate`], so that a body with fields this
/// version does not know still verifies byte-exactly.
pub fn verify_document<'k>(
    doc: &Value,
    lookup: impl Fn(&str) -> Option<&'k TrustedKey>,
) -> Result<(), CertError> {
    let body = doc
        .get("certificate")
        .filter(|b| b.is_object())
        .ok_or_else(|| CertError::Malformed("no \"certificate\" object".into()))?;
    ensure_integers_only(body, "certificate")?;
    verify_document_with_body(doc, &canonical_bytes(body)?, lookup)
}

/// Verifies a document whose body's canonical bytes the caller already has (the ledger
/// verifier reuses them to hash the entry).
pub fn verify_document_with_body<'k>(
    doc: &Value,
    body_bytes: &[u8],
    lookup: impl Fn(&str) -> Option<&'k TrustedKey>,
) -> Result<(), CertError> {
    let body = doc
        .get("certificate")
        .filter(|b| b.is_object())
        .ok_or_else(|| CertError::Malformed("no \"certificate\" object".into()))?;
    let sig = doc
        .get("signature")
        .ok_or_else(|| CertError::Malformed("no \"signature\" object".into()))?;
    let key_id = sig
        .get("key_id")
        .and_then(Value::as_str)
        .ok_or_else(|| CertError::Malformed("signature.key_id is missing".into()))?;
    if sig.get("alg").and_then(Value::as_str) != Some(ALG) {
        return Err(CertError::Malformed(format!("signature.alg must be {ALG}")));
    }
    if body.get("key_id").and_then(Value::as_str) != Some(key_id) {
        return Err(CertError::Malformed(
            "certificate.key_id differs from signature.key_id".into(),
        ));
    }
    ensure_integers_only(body, "certificate")?;
    check_signature(sig, key_id, body_bytes, lookup)
}

fn check_signature<'k>(
    sig: &Value,
    key_id: &str,
    bytes: &[u8],
    lookup: impl Fn(&str) -> Option<&'k TrustedKey>,
) -> Result<(), CertError> {
    let b64 = sig
        .get("der_base64")
        .and_then(Value::as_str)
        .ok_or_else(|| CertError::Malformed("signature.der_base64 is missing".into()))?;
    let der = B64
        .decode(b64)
        .map_err(|e| CertError::Malformed(format!("der_base64: {e}")))?;
    let key = lookup(key_id).ok_or_else(|| CertError::UnknownKey(key_id.to_owned()))?;
    key.verify(bytes, &der)
}

/// Encodes a DER signature into a signature block.
pub fn signature_block(key_id: &str, der: &[u8]) -> SignatureBlock {
    SignatureBlock {
        alg: ALG.to_owned(),
        key_id: key_id.to_owned(),
        der_base64: B64.encode(der),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;

    pub(crate) fn key() -> SigningKey {
        SigningKey::random(&mut rand_core::OsRng)
    }

    pub(crate) fn sample(key_id: &str) -> Certificate {
        Certificate {
            kind: "gdpr-erasure".into(),
            format: 1,
            outcome: "erased".into(),
            request_id: "r1".into(),
            tenant_id: "t1".into(),
            issued_at: "2026-01-01T00:00:00Z".into(),
            chain: "gdpr-erasure".into(),
            seq: 0,
            prev_hash: "0".repeat(64),
            key_id: key_id.into(),
            details: serde_json::json!({"systems": [{"system": "s3", "records_erased": 3}]}),
        }
    }

    pub(crate) fn sign(sk: &SigningKey, cert: Certificate) -> SignedCertificate {
        let bytes = cert.signing_bytes().expect("bytes");
        let sig: Signature = sk.sign(&bytes);
        let block = signature_block(&cert.key_id, sig.to_der().as_bytes());
        SignedCertificate {
            certificate: cert,
            signature: block,
        }
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let sk = key();
        let vk = *sk.verifying_key();
        let id = local_key_id(&vk).expect("id");
        let doc = serde_json::to_value(sign(&sk, sample(&id))).expect("json");
        let tk = TrustedKey::new(vk).expect("key");
        let lookup = |k: &str| (k == id).then_some(&tk);
        verify_document(&doc, lookup).expect("verifies");

        let mut tampered = doc.clone();
        tampered["certificate"]["details"]["systems"][0]["records_erased"] = 4.into();
        assert_eq!(
            verify_document(&tampered, lookup),
            Err(CertError::BadSignature)
        );

        let mut float = doc.clone();
        float["certificate"]["details"]["x"] = serde_json::json!(1.5);
        assert!(matches!(
            verify_document(&float, lookup),
            Err(CertError::Float(_))
        ));

        assert!(matches!(
            verify_document(&doc, |_| None),
            Err(CertError::UnknownKey(_))
        ));
    }

    #[test]
    fn aws_lc_and_p256_agree_on_every_signature() {
        use p256::elliptic_curve::ops::Neg;
        let sk = key();
        let tk = TrustedKey::new(*sk.verifying_key()).expect("key");
        for i in 0..64u32 {
            let msg = format!("message {i}").into_bytes();
            let sig: Signature = sk.sign(&msg);
            let der = sig.to_der();
            assert_eq!(tk.verify(&msg, der.as_bytes()), Ok(()));
            assert_eq!(tk.verify_portable(&msg, der.as_bytes()), Ok(()));
            // The high-S twin of the same signature: both libraries must decide alike.
            let (r, s) = sig.split_scalars();
            let twin = Signature::from_scalars(r, s.neg()).expect("twin");
            let twin = twin.to_der();
            assert_eq!(
                tk.verify(&msg, twin.as_bytes()).is_ok(),
                tk.verify_portable(&msg, twin.as_bytes()).is_ok()
            );
            let mut bad = der.as_bytes().to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(tk.verify(&msg, &bad).is_err());
            assert!(tk.verify_portable(&msg, &bad).is_err());
            assert!(tk.verify(b"other", der.as_bytes()).is_err());
            assert!(tk.verify(&msg, b"not der").is_err());
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_strips_space() {
        let v: Value = serde_json::from_str(r#"{ "b": 1, "a": [true, "x"] }"#).expect("json");
        assert_eq!(
            canonical_bytes(&v).expect("jcs"),
            br#"{"a":[true,"x"],"b":1}"#
        );
    }

    #[test]
    fn pem_round_trip() {
        let vk = *key().verifying_key();
        let pem = public_key_to_pem(&vk).expect("pem");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(public_key_from_pem(&pem).expect("parse"), vk);
        assert!(public_key_from_pem("garbage").is_err());
    }
}
