//! The append-only, hash-chained ledger of certificates, and its offline verifier.
//!
//! `entry_hash` is the lowercase hex SHA-256 of the JCS form of the entry without
//! `entry_hash`; each entry names its predecessor's hash; the first names 64 zeros.

use crate::certificate::{self, CertError, SignedCertificate, canonical_bytes};
use p256::ecdsa::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// `prev_hash` of a chain's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One ledger entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// Chain name.
    pub chain: String,
    /// Position, from 0, without gaps.
    pub seq: u64,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// When the entry was recorded (RFC 3339, UTC).
    pub recorded_at: String,
    /// The certificate it records.
    pub certificate: SignedCertificate,
    /// Hash of this entry without this field.
    pub entry_hash: String,
}

/// The newest entry of a chain, as the head item stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Seq of the newest entry.
    pub seq: u64,
    /// Its `entry_hash`.
    pub hash: String,
}

impl Head {
    /// The seq and prev_hash the next entry must carry.
    pub fn next(head: Option<&Head>) -> (u64, String) {
        match head {
            Some(h) => (h.seq + 1, h.hash.clone()),
            None => (0, GENESIS_HASH.to_owned()),
        }
    }
}

/// Hash of an entry given as JSON: SHA-256 of its JCS form without `entry_hash`.
pub fn entry_hash(entry: &Value) -> Result<String, CertError> {
    let mut v = entry.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("entry_hash");
    } else {
        return Err(CertError::Malformed("entry is not a JSON object".into()));
    }
    Ok(hex::encode(Sha256::digest(canonical_bytes(&v)?)))
}

impl LedgerEntry {
    /// Builds an entry around a signed certificate and computes its hash.
    pub fn seal(certificate: SignedCertificate, recorded_at: String) -> Result<Self, CertError> {
        let c = &certificate.certificate;
        let mut e = LedgerEntry {
            chain: c.chain.clone(),
            seq: c.seq,
            prev_hash: c.prev_hash.clone(),
            recorded_at,
            certificate,
            entry_hash: String::new(),
        };
        let v = serde_json::to_value(&e).map_err(|x| CertError::Malformed(x.to_string()))?;
        e.entry_hash = entry_hash(&v)?;
        Ok(e)
    }

    /// The JSON text stored for this entry.
    pub fn to_json(&self) -> Result<String, CertError> {
        serde_json::to_string(self).map_err(|e| CertError::Malformed(e.to_string()))
    }
}

/// The JCS form of an entry (without `entry_hash`) built around the body's canonical bytes,
/// which JCS embeds verbatim: the body, the largest part, is canonicalised once, not twice.
/// Falls back to canonicalising the whole entry when the document has unexpected fields.
fn compose_entry(entry: &Value, body_bytes: &[u8]) -> Result<Vec<u8>, CertError> {
    let doc = &entry["certificate"];
    if doc.as_object().map(|o| o.len()) != Some(2) || doc.get("signature").is_none() {
        return canonical_bytes(entry);
    }
    // Keys in JCS order: certificate < chain < prev_hash < recorded_at < seq, and inside
    // the document certificate < signature.
    let mut out = Vec::with_capacity(body_bytes.len() + 512);
    out.extend_from_slice(b"{\"certificate\":{\"certificate\":");
    out.extend_from_slice(body_bytes);
    for (sep, v) in [
        (&b",\"signature\":"[..], &doc["signature"]),
        (&b"},\"chain\":"[..], &entry["chain"]),
        (&b",\"prev_hash\":"[..], &entry["prev_hash"]),
        (&b",\"recorded_at\":"[..], &entry["recorded_at"]),
        (&b",\"seq\":"[..], &entry["seq"]),
    ] {
        out.extend_from_slice(sep);
        out.extend_from_slice(&canonical_bytes(v)?);
    }
    out.push(b'}');
    Ok(out)
}

/// The first fault a chain verification met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seq {seq}: {reason}")]
pub struct ChainFault {
    /// The seq of the first bad entry (or of the head).
    pub seq: u64,
    /// Why it is bad.
    pub reason: String,
}

/// Public keys by key id.
#[derive(Debug, Default, Clone)]
pub struct KeyRing(HashMap<String, VerifyingKey>);

impl KeyRing {
    /// Adds a key under an id.
    pub fn insert(&mut self, key_id: impl Into<String>, key: VerifyingKey) {
        self.0.insert(key_id.into(), key);
    }
    /// Looks a key up.
    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.0.get(key_id)
    }
}

/// Verifies a chain entry by entry, in order, without holding it in memory.
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    chain: String,
    keys: &'k KeyRing,
    next_seq: u64,
    prev_hash: String,
}

impl<'k> ChainVerifier<'k> {
    /// Starts verifying `chain` from its first entry.
    pub fn new(chain: &str, keys: &'k KeyRing) -> Self {
        Self {
            chain: chain.to_owned(),
            keys,
            next_seq: 0,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }

    /// How many entries have passed.
    pub fn verified(&self) -> u64 {
        self.next_seq
    }

    /// Checks the next stored entry: `stored_seq` is the seq of the key it is stored under.
    ///
    /// Parses the entry once and hashes it in place: this runs once per entry over the
    /// whole ledger, so it stays close to the cost of the signature check itself.
    pub fn check(&mut self, stored_seq: u64, raw: &str) -> Result<(), ChainFault> {
        let seq = self.next_seq;
        let fault = |reason: String| ChainFault {
            seq: stored_seq.min(seq),
            reason,
        };
        if stored_seq != seq {
            return Err(ChainFault {
                seq,
                reason: format!("entry missing: the next stored entry is seq {stored_seq}"),
            });
        }
        let mut v: Value =
            serde_json::from_str(raw).map_err(|e| fault(format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| fault("not a JSON object".into()))?;
        let stored_hash = match obj.remove("entry_hash") {
            Some(Value::String(h)) => h,
            _ => return Err(fault("entry_hash is missing".into())),
        };
        const FIELDS: [&str; 5] = ["certificate", "chain", "prev_hash", "recorded_at", "seq"];
        if obj.len() != FIELDS.len() || !FIELDS.iter().all(|f| obj.contains_key(*f)) {
            return Err(fault(format!(
                "entry fields must be exactly {FIELDS:?} and entry_hash"
            )));
        }
        let (chain, entry_seq, prev) = (
            obj["chain"].as_str(),
            obj["seq"].as_u64(),
            obj["prev_hash"].as_str(),
        );
        if chain != Some(self.chain.as_str()) || entry_seq != Some(seq) {
            return Err(fault(format!(
                "entry claims chain {:?} seq {:?}",
                obj["chain"], obj["seq"]
            )));
        }
        if prev != Some(self.prev_hash.as_str()) {
            return Err(fault(
                "prev_hash does not match the previous entry's hash".into(),
            ));
        }
        if !obj["recorded_at"].is_string() {
            return Err(fault("recorded_at is not a string".into()));
        }
        let doc = &v["certificate"];
        let body = &doc["certificate"];
        if body["chain"].as_str() != Some(self.chain.as_str())
            || body["seq"].as_u64() != Some(seq)
            || body["prev_hash"].as_str() != Some(self.prev_hash.as_str())
        {
            return Err(fault("certificate names another ledger position".into()));
        }
        let body_bytes = canonical_bytes(body).map_err(|e| fault(e.to_string()))?;
        let entry_bytes = compose_entry(&v, &body_bytes).map_err(|e| fault(e.to_string()))?;
        let recomputed = hex::encode(Sha256::digest(&entry_bytes));
        if recomputed != stored_hash {
            return Err(fault(format!(
                "entry_hash mismatch: stored {stored_hash}, recomputed {recomputed}"
            )));
        }
        certificate::verify_document_with_body(doc, &body_bytes, |k| self.keys.get(k))
            .map_err(|e| fault(format!("certificate: {e}")))?;
        self.prev_hash = recomputed;
        self.next_seq += 1;
        Ok(())
    }

    /// Checks that the stored head names the last verified entry (catches truncation).
    pub fn finish(self, head: Option<&Head>) -> Result<u64, ChainFault> {
        match head {
            None if self.next_seq == 0 => Ok(0),
            None => Err(ChainFault {
                seq: self.next_seq - 1,
                reason: "chain has entries but no head".into(),
            }),
            Some(h) if self.next_seq == 0 => Err(ChainFault {
                seq: h.seq,
                reason: "head names an entry that is not stored".into(),
            }),
            Some(h) if h.seq != self.next_seq - 1 || h.hash != self.prev_hash => Err(ChainFault {
                seq: h.seq.min(self.next_seq),
                reason: format!(
                    "head (seq {}) does not match the last stored entry (seq {})",
                    h.seq,
                    self.next_seq - 1
                ),
            }),
            Some(_) => Ok(self.next_seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::local_key_id;
    use crate::certificate::tests::{key, sample, sign};

    fn chain(n: u64) -> (KeyRing, Vec<String>, Head) {
        let sk = key();
        let vk = *sk.verifying_key();
        let id = local_key_id(&vk).expect("id");
        let mut ring = KeyRing::default();
        ring.insert(id.clone(), vk);
        let mut head: Option<Head> = None;
        let mut out = vec![];
        for _ in 0..n {
            let (seq, prev) = Head::next(head.as_ref());
            let mut c = sample(&id);
            c.seq = seq;
            c.prev_hash = prev;
            let e = LedgerEntry::seal(sign(&sk, c), "2026-01-01T00:00:00Z".into()).expect("seal");
            head = Some(Head {
                seq,
                hash: e.entry_hash.clone(),
            });
            out.push(e.to_json().expect("json"));
        }
        (ring, out, head.expect("head"))
    }

    fn verify(ring: &KeyRing, entries: &[String], head: &Head) -> Result<u64, ChainFault> {
        let mut v = ChainVerifier::new("gdpr-erasure", ring);
        for (i, raw) in entries.iter().enumerate() {
            v.check(i as u64, raw)?;
        }
        v.finish(Some(head))
    }

    #[test]
    fn a_sound_chain_verifies() {
        let (ring, entries, head) = chain(5);
        assert_eq!(verify(&ring, &entries, &head), Ok(5));
    }

    #[test]
    fn any_changed_byte_is_found_at_its_seq() {
        let (ring, entries, head) = chain(4);
        for target in 0..4 {
            let raw = &entries[target];
            // Flip every position in turn is slow; flip a spread of them.
            for pos in (0..raw.len()).step_by(raw.len() / 40 + 1) {
                let mut bytes = raw.clone().into_bytes();
                bytes[pos] = if bytes[pos] == b'7' { b'8' } else { b'7' };
                let Ok(t) = String::from_utf8(bytes) else {
                    continue;
                };
                if t == *raw {
                    continue;
                }
                let mut copy = entries.clone();
                copy[target] = t;
                let fault = verify(&ring, &copy, &head).expect_err("tamper found");
                assert_eq!(fault.seq, target as u64, "byte {pos}: {fault}");
            }
        }
    }

    #[test]
    fn composed_canonical_form_equals_full_canonicalisation() {
        let (_, entries, _) = chain(2);
        for raw in &entries {
            let mut v: Value = serde_json::from_str(raw).expect("json");
            v.as_object_mut().expect("obj").remove("entry_hash");
            let body = canonical_bytes(&v["certificate"]["certificate"]).expect("jcs");
            assert_eq!(
                compose_entry(&v, &body).expect("compose"),
                canonical_bytes(&v).expect("jcs")
            );
        }
    }

    #[test]
    fn gaps_and_truncation_are_found() {
        let (ring, entries, head) = chain(3);
        let mut v = ChainVerifier::new("gdpr-erasure", &ring);
        v.check(0, &entries[0]).expect("0");
        assert_eq!(v.check(2, &entries[2]).expect_err("gap").seq, 1);
        let mut v = ChainVerifier::new("gdpr-erasure", &ring);
        v.check(0, &entries[0]).expect("0");
        v.check(1, &entries[1]).expect("1");
        assert!(v.finish(Some(&head)).is_err());
    }
}
