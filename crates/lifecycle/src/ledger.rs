//! The append-only, hash-chained ledger of certificates, and its offline verifier.
//!
//! `entry_hash` is the lowercase hex SHA-256 of the JCS form of the entry without
//! `entry_hash`; each entry names its predecessor's hash; the first names 64 zeros.

use crate::certificate::{self, CertError, SignedCertificate, canonical_bytes};
use crate::tree::{self, Frontier, Hash};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

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

/// The newest entry of a chain, as the head item stores it, with the right edge of the
/// chain's Merkle tree so an append can extend the tree without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Seq of the newest entry.
    pub seq: u64,
    /// Its `entry_hash`.
    pub hash: String,
    /// The tree's frontier after this entry (hex hashes, largest subtree first); empty on
    /// ledgers written before the tree existed.
    #[serde(default)]
    pub frontier: Vec<String>,
}

impl Head {
    /// The tree frontier this head carries, if it is whole.
    pub fn tree(&self) -> Option<Frontier> {
        let hashes: Option<Vec<Hash>> = self
            .frontier
            .iter()
            .map(|h| hex::decode(h).ok().and_then(|b| b.try_into().ok()))
            .collect();
        Frontier::from_parts(self.seq + 1, hashes?)
    }
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
        match v {
            // A plain printable ASCII string or an integer is its own canonical form;
            // anything else goes through the canonicaliser.
            Value::String(t)
                if t.bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') =>
            {
                out.push(b'"');
                out.extend_from_slice(t.as_bytes());
                out.push(b'"');
            }
            Value::Number(n) if n.is_u64() => out.extend_from_slice(n.to_string().as_bytes()),
            _ => out.extend_from_slice(&canonical_bytes(v)?),
        }
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

pub use crate::certificate::KeyRing;

/// One entry as a backend stores it: its seq, the `entry_hash` kept beside it (a column or
/// attribute), and the JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The seq it is stored under.
    pub seq: u64,
    /// The hash stored beside the text.
    pub entry_hash: String,
    /// The entry's JSON text.
    pub json: String,
}

/// The Merkle leaf of an entry: the RFC 8785 form of its certificate document (body and
/// signature), which is all a certificate holder has, so a receipt needs nothing else.
pub fn leaf_of(doc: &SignedCertificate) -> Result<Hash, CertError> {
    let v = serde_json::to_value(doc).map_err(|e| CertError::Malformed(e.to_string()))?;
    leaf_of_value(&v)
}

/// [`leaf_of`] for a document given as JSON.
pub fn leaf_of_value(doc: &Value) -> Result<Hash, CertError> {
    Ok(tree::leaf_hash(&canonical_bytes(doc)?))
}

fn compose_doc(doc: &Value, body_bytes: &[u8]) -> Result<Vec<u8>, CertError> {
    if doc.as_object().map(|o| o.len()) != Some(2) || doc.get("signature").is_none() {
        return canonical_bytes(doc);
    }
    let mut out = Vec::with_capacity(body_bytes.len() + 200);
    out.extend_from_slice(b"{\"certificate\":");
    out.extend_from_slice(body_bytes);
    out.extend_from_slice(b",\"signature\":");
    out.extend_from_slice(&canonical_bytes(&doc["signature"])?);
    out.push(b'}');
    Ok(out)
}

/// The document's canonical bytes are the entry's without the entry fields: the leaf is
/// hashed from the prefix of the composed entry, not canonicalised a third time.
fn leaf_from_entry_bytes(
    entry_bytes: &[u8],
    doc: &Value,
    body_bytes: &[u8],
) -> Result<Hash, CertError> {
    // compose_entry wrote `{"certificate":<doc>,"chain":...`; <doc> ends before `,"chain":`.
    const HEAD: &[u8] = b"{\"certificate\":";
    if entry_bytes.starts_with(HEAD)
        && let Some(end) = entry_bytes.windows(9).rposition(|w| w == b",\"chain\":")
        && doc.as_object().map(|o| o.len()) == Some(2)
    {
        return Ok(tree::leaf_hash(&entry_bytes[HEAD.len()..end]));
    }
    Ok(tree::leaf_hash(&compose_doc(doc, body_bytes)?))
}

/// What checking one entry on its own established.
#[derive(Debug, Clone)]
struct Checked {
    seq: u64,
    prev_hash: String,
    entry_hash: String,
    leaf: Hash,
    /// The request id of an `erased` certificate: certified once per chain.
    unique: Option<String>,
}

/// Checks everything about one entry that does not depend on its neighbours: shape,
/// position claims, stored and recomputed hash, `recorded_at` equal to the signed
/// `issued_at`, and the signature. Runs on many threads at once.
fn check_entry(chain: &str, stored: &StoredEntry, keys: &KeyRing) -> Result<Checked, String> {
    // Strict: a key twice would let a reader see another value than the one hashed.
    let mut v: Value =
        crate::json::parse_strict(&stored.json).map_err(|e| format!("not acceptable JSON: {e}"))?;
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    let claimed_hash = match obj.remove("entry_hash") {
        Some(Value::String(h)) => h,
        _ => return Err("entry_hash is missing".into()),
    };
    const FIELDS: [&str; 5] = ["certificate", "chain", "prev_hash", "recorded_at", "seq"];
    if obj.len() != FIELDS.len() || !FIELDS.iter().all(|f| obj.contains_key(*f)) {
        return Err(format!(
            "entry fields must be exactly {FIELDS:?} and entry_hash"
        ));
    }
    if obj["chain"].as_str() != Some(chain) || obj["seq"].as_u64() != Some(stored.seq) {
        return Err(format!(
            "entry claims chain {:?} seq {:?}",
            obj["chain"], obj["seq"]
        ));
    }
    let prev_hash = obj["prev_hash"]
        .as_str()
        .ok_or("prev_hash is not a string")?
        .to_owned();
    let doc = &v["certificate"];
    let body = &doc["certificate"];
    if body["chain"].as_str() != Some(chain)
        || body["seq"].as_u64() != Some(stored.seq)
        || body["prev_hash"].as_str() != Some(prev_hash.as_str())
    {
        return Err("certificate names another ledger position".into());
    }
    match (v["recorded_at"].as_str(), body["issued_at"].as_str()) {
        (Some(r), Some(i)) if r == i => {}
        (Some(_), _) => {
            return Err(
                "recorded_at differs from the signed issued_at: the entry's time was changed"
                    .into(),
            );
        }
        _ => return Err("recorded_at is not a string".into()),
    }
    let body_bytes = canonical_bytes(body).map_err(|e| e.to_string())?;
    let entry_bytes = compose_entry(&v, &body_bytes).map_err(|e| e.to_string())?;
    let recomputed = hex::encode(Sha256::digest(&entry_bytes));
    if recomputed != claimed_hash {
        return Err(format!(
            "entry_hash mismatch: the entry says {claimed_hash}, its content hashes to {recomputed}"
        ));
    }
    if stored.entry_hash != recomputed {
        return Err(format!(
            "the entry_hash stored beside the entry ({}) differs from its content's hash {recomputed}",
            stored.entry_hash
        ));
    }
    let doc = &v["certificate"];
    certificate::verify_document_with_body(doc, &body_bytes, |k| keys.get(k))
        .map_err(|e| format!("certificate: {e}"))?;
    let key_id = doc["signature"]["key_id"].as_str().unwrap_or_default();
    if let (Some(retired), Some(issued)) = (
        keys.get(key_id).and_then(|k| k.retired_at.as_deref()),
        body["issued_at"].as_str(),
    ) && issued > retired
    {
        return Err(format!(
            "signed by key {key_id} at {issued}, after it was rotated away at {retired}"
        ));
    }
    let unique = (body["outcome"] == "erased" && body["kind"] == crate::erasure::ERASURE_CHAIN)
        .then(|| body["request_id"].as_str().map(str::to_owned))
        .flatten();
    let leaf = leaf_from_entry_bytes(&entry_bytes, doc, &body_bytes).map_err(|e| e.to_string())?;
    Ok(Checked {
        seq: stored.seq,
        prev_hash,
        entry_hash: recomputed,
        leaf,
        unique,
    })
}

/// Verifies a chain entry by entry, in order, without holding it in memory, and rebuilds
/// its Merkle tree on the way so roots can be compared with checkpoints.
#[derive(Debug)]
pub struct ChainVerifier {
    chain: String,
    keys: KeyRing,
    next_seq: u64,
    prev_hash: String,
    tree: Frontier,
    wanted: BTreeSet<u64>,
    roots: BTreeMap<u64, Hash>,
    threads: usize,
    certified: std::collections::HashMap<String, u64>,
}

impl ChainVerifier {
    /// Starts verifying `chain` from its first entry, trusting exactly `keys`.
    pub fn new(chain: &str, keys: &KeyRing) -> Self {
        Self {
            chain: chain.to_owned(),
            keys: keys.clone(),
            next_seq: 0,
            prev_hash: GENESIS_HASH.to_owned(),
            tree: Frontier::default(),
            wanted: BTreeSet::new(),
            roots: BTreeMap::new(),
            threads: 1,
            certified: std::collections::HashMap::new(),
        }
    }

    /// Checks signatures of a batch on up to `n` threads.
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Remembers the tree's root when it reaches `size` leaves (a checkpoint's size).
    pub fn want_root_at(&mut self, size: u64) {
        if size == 0 {
            self.roots.insert(0, tree::empty_root());
        }
        self.wanted.insert(size);
    }

    /// The root the tree had at `size`, if it was wanted and reached.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        self.roots.get(&size).copied()
    }

    /// The tree rebuilt from the entries verified so far.
    pub fn frontier(&self) -> &Frontier {
        &self.tree
    }

    /// Trusts one more key from here on (a key rotation the ledger recorded).
    pub fn trust(&mut self, key: p256::ecdsa::VerifyingKey) -> Result<String, CertError> {
        self.keys.trust(key)
    }

    /// Retires a key from `at` on (the other side of a recorded rotation).
    pub fn retire(&mut self, key_id: &str, at: &str) {
        self.keys.retire(key_id, at);
    }

    /// The keys trusted now.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// How many entries have passed.
    pub fn verified(&self) -> u64 {
        self.next_seq
    }

    fn fault(&self, seq: u64, reason: String) -> ChainFault {
        ChainFault { seq, reason }
    }

    fn link(&mut self, c: Checked) -> Result<(), ChainFault> {
        if c.prev_hash != self.prev_hash {
            return Err(self.fault(
                c.seq,
                "prev_hash does not match the previous entry's hash".into(),
            ));
        }
        if let Some(r) = c.unique
            && let Some(first) = self.certified.insert(r.clone(), c.seq)
        {
            return Err(self.fault(
                c.seq,
                format!("request {r} was already certified erased at seq {first}: a request id is certified once"),
            ));
        }
        self.prev_hash = c.entry_hash;
        self.tree.push(c.leaf);
        self.next_seq += 1;
        if self.wanted.contains(&self.next_seq) {
            self.roots.insert(self.next_seq, self.tree.root());
        }
        Ok(())
    }

    fn expect_seq(&self, stored_seq: u64) -> Result<(), ChainFault> {
        if stored_seq != self.next_seq {
            return Err(self.fault(
                self.next_seq,
                format!("entry missing: the next stored entry is seq {stored_seq}"),
            ));
        }
        Ok(())
    }

    /// Checks the next stored entry (`stored_hash` is the hash kept beside it).
    pub fn check_stored(&mut self, e: &StoredEntry) -> Result<(), ChainFault> {
        self.expect_seq(e.seq)?;
        let c = check_entry(&self.chain, e, &self.keys).map_err(|r| self.fault(e.seq, r))?;
        self.link(c)
    }

    /// Checks the next stored entry whose only stored hash is the one inside it.
    pub fn check(&mut self, stored_seq: u64, raw: &str) -> Result<(), ChainFault> {
        let claimed = serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v["entry_hash"].as_str().map(str::to_owned))
            .unwrap_or_default();
        self.check_stored(&StoredEntry {
            seq: stored_seq,
            entry_hash: claimed,
            json: raw.to_owned(),
        })
    }

    /// Checks a page of consecutive entries: each on its own on several threads, then the
    /// links in order. Reports the lowest bad seq, as a sequential check would.
    pub fn check_batch(&mut self, entries: &[StoredEntry]) -> Result<(), ChainFault> {
        if self.threads <= 1 || entries.len() < 64 {
            for e in entries {
                self.check_stored(e)?;
            }
            return Ok(());
        }
        let chunk = entries.len().div_ceil(self.threads);
        let (chain, keys) = (&self.chain, &self.keys);
        let results: Vec<Vec<Result<Checked, String>>> = std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|e| check_entry(chain, e, keys))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| vec![Err("verifier thread panicked".into())])
                })
                .collect()
        });
        for (e, r) in entries.iter().zip(results.into_iter().flatten()) {
            self.expect_seq(e.seq)?;
            let c = r.map_err(|reason| self.fault(e.seq, reason))?;
            self.link(c)?;
        }
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
            Some(h) if !h.frontier.is_empty() && h.frontier != self.tree.hashes().iter().map(hex::encode).collect::<Vec<_>>() => Err(ChainFault {
                seq: h.seq,
                reason: "the Merkle tree stored with the head differs from the tree of the stored entries".into(),
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
            c.request_id = format!("r{seq}");
            c.seq = seq;
            c.prev_hash = prev;
            let e = LedgerEntry::seal(sign(&sk, c), "2026-01-01T00:00:00Z".into()).expect("seal");
            head = Some(Head {
                seq,
                hash: e.entry_hash.clone(),
                frontier: vec![],
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

    fn stored(entries: &[String]) -> Vec<StoredEntry> {
        entries
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let v: Value = serde_json::from_str(raw).expect("json");
                StoredEntry {
                    seq: i as u64,
                    entry_hash: v["entry_hash"].as_str().expect("hash").to_owned(),
                    json: raw.clone(),
                }
            })
            .collect()
    }

    #[test]
    fn threads_find_what_one_thread_finds_and_the_tree_matches() {
        let (ring, entries, head) = chain(150);
        let all = stored(&entries);
        let mut v = ChainVerifier::new("gdpr-erasure", &ring).with_threads(4);
        v.want_root_at(100);
        v.check_batch(&all).expect("verifies");
        let mut t = tree::MemoryTree::default();
        for raw in &entries {
            let e: LedgerEntry = serde_json::from_str(raw).expect("entry");
            t.push(leaf_of(&e.certificate).expect("leaf"));
        }
        assert_eq!(v.root_at(100), t.root_at(100));
        assert_eq!(v.frontier().root(), t.root());
        assert_eq!(v.finish(Some(&head)), Ok(150));

        let mut bad = all.clone();
        bad[120].json = bad[120]
            .json
            .replace("\"outcome\":\"erased\"", "\"outcome\":\"erasex\"");
        bad[77].entry_hash = "0".repeat(64);
        let mut v = ChainVerifier::new("gdpr-erasure", &ring).with_threads(4);
        let f = v.check_batch(&bad).expect_err("tamper found");
        assert_eq!(f.seq, 77, "{f}");
        assert!(f.reason.contains("stored beside"), "{f}");
    }

    #[test]
    fn a_key_twice_in_an_entry_is_refused() {
        let (ring, entries, _) = chain(1);
        let dup = entries[0].replacen(
            "\"tenant_id\":\"t1\"",
            "\"tenant_id\":\"forged\",\"tenant_id\":\"t1\"",
            1,
        );
        assert_ne!(dup, entries[0]);
        let mut v = ChainVerifier::new("gdpr-erasure", &ring);
        let f = v.check(0, &dup).expect_err("duplicate key");
        assert!(f.reason.contains("duplicate key"), "{f}");
    }

    #[test]
    fn a_request_certified_erased_twice_is_found() {
        let sk = key();
        let vk = *sk.verifying_key();
        let id = local_key_id(&vk).expect("id");
        let mut ring = KeyRing::default();
        ring.insert(id.clone(), vk);
        let mut head: Option<Head> = None;
        let mut v = ChainVerifier::new("gdpr-erasure", &ring);
        for seq in 0..2u64 {
            let (s, prev) = Head::next(head.as_ref());
            let mut c = sample(&id);
            c.seq = s;
            c.prev_hash = prev;
            let e = LedgerEntry::seal(sign(&sk, c), "2026-01-01T00:00:00Z".into()).expect("seal");
            head = Some(Head {
                seq: s,
                hash: e.entry_hash.clone(),
                frontier: vec![],
            });
            let r = v.check(seq, &e.to_json().expect("json"));
            if seq == 0 {
                r.expect("first");
            } else {
                assert!(r.expect_err("twice").reason.contains("certified once"));
            }
        }
    }

    #[test]
    fn a_retired_key_signs_nothing_after_its_rotation() {
        let (mut ring, entries, _) = chain(1);
        let id = ring.ids()[0].clone();
        ring.retire(&id, "2025-12-31T00:00:00Z");
        let mut v = ChainVerifier::new("gdpr-erasure", &ring);
        let f = v.check(0, &entries[0]).expect_err("retired");
        assert!(f.reason.contains("rotated away"), "{f}");
    }

    #[test]
    fn a_changed_recorded_at_is_found_even_with_its_hash_recomputed() {
        let (ring, entries, _) = chain(2);
        let mut v: Value = serde_json::from_str(&entries[1]).expect("json");
        v["recorded_at"] = "2020-01-01T00:00:00Z".into();
        v.as_object_mut().expect("obj").remove("entry_hash");
        let h = entry_hash(&v).expect("hash");
        v["entry_hash"] = h.into();
        let mut ver = ChainVerifier::new("gdpr-erasure", &ring);
        ver.check(0, &entries[0]).expect("0");
        let f = ver.check(1, &v.to_string()).expect_err("caught");
        assert!(f.reason.contains("recorded_at"), "{f}");
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
