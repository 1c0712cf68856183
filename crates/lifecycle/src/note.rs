//! Checkpoints and receipts in the formats transparency-log tooling reads: C2SP
//! `signed-note` (ECDSA P-256 signatures, type 0x02), `tlog-checkpoint` (origin, tree size,
//! root hash) and `tlog-proof` (a receipt: index, inclusion proof, checkpoint).

use crate::certificate::{CertError, KeyRing};
use crate::tree::{self, Hash};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// First line of a `tlog-proof` receipt.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The largest note accepted.
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// The most signature lines accepted on one note (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;
const EM_DASH: &str = "\u{2014} ";

/// Why a note, checkpoint or receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not shaped as the format requires.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which format.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// No signature by a trusted key verified.
    #[error("no signature by a trusted key ({0})")]
    Untrusted(String),
    /// A signature by a trusted key failed.
    #[error("the signature by trusted key {0} does not verify: the note was changed")]
    BadSignature(String),
    /// The origin is not the one expected.
    #[error("checkpoint origin is {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// What the note says.
        found: String,
        /// What the verifier expected.
        expected: String,
    },
}

fn bad(what: &'static str, why: impl Into<String>) -> NoteError {
    NoteError::Malformed {
        what,
        why: why.into(),
    }
}

/// A checkpoint's body: what the log commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name, e.g. `tenant-lifecycle/local/gdpr-erasure`.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// RFC 6962 root hash of those leaves.
    pub root: Hash,
    /// Extension lines (this log writes one: `time <RFC 3339>`).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, extensions, each ending in a newline.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a note text as a checkpoint body.
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let what = "checkpoint";
        let Some(body) = text.strip_suffix('\n') else {
            return Err(bad(what, "the text must end in a newline"));
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(bad(what, "needs origin, tree size and root hash lines"));
        }
        let origin = lines[0];
        if origin.is_empty() || origin.contains('+') || origin.chars().any(char::is_whitespace) {
            return Err(bad(what, "origin is empty or holds a space or '+'"));
        }
        let size_line = lines[1];
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad(
                what,
                "tree size is not a decimal without leading zeros",
            ));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| bad(what, "tree size is out of range"))?;
        let root = decode_hash(lines[2])
            .ok_or_else(|| bad(what, "root hash is not 32 bytes of base64"))?;
        let extensions: Vec<String> = lines[3..].iter().map(|l| (*l).to_owned()).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad(what, "an extension line is empty"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

fn decode_hash(s: &str) -> Option<Hash> {
    B64.decode(s).ok()?.try_into().ok()
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name (this log uses the origin).
    pub name: String,
    /// Key ID, big-endian.
    pub key_id: [u8; 4],
    /// Signature bytes (ASN.1 DER ECDSA for type 0x02 keys).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line as written under the note: em dash, name, base64(key ID || signature).
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{EM_DASH}{} {}\n", self.name, B64.encode(raw))
    }
}

/// A signed note: text and signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, final newline included.
    pub text: String,
    /// Its signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// The note as a file holds it.
    pub fn to_text(&self) -> String {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
        }
        s
    }

    /// Parses a signed note.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let what = "signed note";
        if note.len() > MAX_NOTE_BYTES {
            return Err(bad(what, format!("larger than {MAX_NOTE_BYTES} bytes")));
        }
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad(what, "holds a control character"));
        }
        // The text ends at the last blank line.
        let Some(split) = note.rfind("\n\n") else {
            return Err(bad(what, "no blank line before the signatures"));
        };
        let text = &note[..=split];
        let sigs = &note[split + 2..];
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(bad(what, "the last signature line must end in a newline"));
        };
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            let rest = line.strip_prefix(EM_DASH).ok_or_else(|| {
                bad(
                    what,
                    "a signature line must start with an em dash and a space",
                )
            })?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad(what, "a signature line needs a key name and a signature"))?;
            if name.is_empty() || name.contains('+') {
                return Err(bad(what, "a key name is empty or holds '+'"));
            }
            let raw = B64
                .decode(b64)
                .map_err(|_| bad(what, "a signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad(what, "a signature is too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [raw[0], raw[1], raw[2], raw[3]],
                signature: raw[4..].to_vec(),
            });
            if signatures.len() > MAX_SIGNATURES {
                return Err(bad(what, format!("more than {MAX_SIGNATURES} signatures")));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Opens the note: at least one signature by a trusted key named `name` verifies, and
    /// none by a trusted key fails. Returns the key id (`p256:...`) that signed.
    pub fn open(&self, name: &str, keys: &KeyRing) -> Result<String, NoteError> {
        let mut signer = None;
        for sig in self.signatures.iter().filter(|s| s.name == name) {
            let Some(key) = keys.by_note_id(sig.key_id) else {
                continue;
            };
            let id = crate::certificate::local_key_id(&key.key)
                .map_err(|e| NoteError::Untrusted(e.to_string()))?;
            match key.verify(self.text.as_bytes(), &sig.signature) {
                Ok(()) => signer = signer.or(Some(id)),
                Err(CertError::BadSignature) | Err(_) => return Err(NoteError::BadSignature(id)),
            }
        }
        signer.ok_or_else(|| {
            let ids: Vec<String> = self
                .signatures
                .iter()
                .map(|s| format!("{} {}", s.name, hex::encode(s.key_id)))
                .collect();
            NoteError::Untrusted(format!(
                "signed by [{}]; trusted note key ids [{}]",
                ids.join(", "),
                keys.ids().join(", ")
            ))
        })
    }
}

/// The signed-note verifier key string for a P-256 key: `name+hex(id)+base64(0x02||SPKI)`.
pub fn verifier_key(name: &str, key: &crate::certificate::TrustedKey) -> String {
    let mut material = vec![0x02u8];
    material.extend_from_slice(&key.spki_der);
    format!(
        "{name}+{}+{}",
        hex::encode(key.note_id),
        B64.encode(material)
    )
}

/// Verifies a signed checkpoint with trusted keys; the key name must be its origin, and
/// when `origin` is given the checkpoint must be that log's.
pub fn open_checkpoint(
    note: &str,
    keys: &KeyRing,
    origin: Option<&str>,
) -> Result<(Checkpoint, String), NoteError> {
    let signed = SignedNote::parse(note)?;
    let cp = Checkpoint::parse_body(&signed.text)?;
    if let Some(want) = origin
        && cp.origin != want
    {
        return Err(NoteError::WrongOrigin {
            found: cp.origin,
            expected: want.to_owned(),
        });
    }
    let key = signed.open(&cp.origin, keys)?;
    Ok((cp, key))
}

/// A receipt: the inclusion proof of one entry against a signed checkpoint (`tlog-proof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Index of the leaf (the entry's seq).
    pub index: u64,
    /// Inclusion proof, from the leaf's sibling up.
    pub proof: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: String,
}

impl Receipt {
    /// The receipt as a `.tlog-proof` file holds it.
    pub fn to_text(&self) -> String {
        let mut s = format!("{PROOF_HEADER}\nindex {}\n", self.index);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses a `.tlog-proof` file (an `extra` line is accepted and ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let what = "tlog-proof";
        if text.len() > MAX_NOTE_BYTES {
            return Err(bad(what, format!("larger than {MAX_NOTE_BYTES} bytes")));
        }
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad(what, "no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(bad(what, format!("the first line must be {PROOF_HEADER}")));
        }
        let mut line = lines.next();
        if line.is_some_and(|l| l.starts_with("extra ")) {
            line = lines.next();
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .filter(|d| d.len() == 1 || !d.starts_with('0'))
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| bad(what, "no valid index line"))?;
        let proof = lines
            .map(|l| decode_hash(l).ok_or_else(|| bad(what, "a proof line is not a base64 hash")))
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > 64 {
            return Err(bad(what, "the proof is longer than any tree allows"));
        }
        Ok(Self {
            index,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Verifies the receipt for a leaf: the checkpoint is signed by a trusted key for
    /// `origin`, and the leaf is at `index` in its tree.
    pub fn verify(
        &self,
        leaf: &Hash,
        origin: &str,
        keys: &KeyRing,
    ) -> Result<Checkpoint, ReceiptError> {
        let (cp, _) = open_checkpoint(&self.checkpoint, keys, Some(origin))?;
        tree::verify_inclusion(self.index, cp.size, leaf, &self.proof, &cp.root)?;
        Ok(cp)
    }
}

/// Why a receipt did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The checkpoint is not trusted.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// The inclusion proof failed.
    #[error("inclusion proof: {0}")]
    Proof(#[from] tree::ProofError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::TrustedKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::DecodePublicKey;

    fn sign_note(sk: &SigningKey, name: &str, text: &str) -> String {
        let tk = TrustedKey::new(*sk.verifying_key()).expect("key");
        let sig: Signature = sk.sign(text.as_bytes());
        SignedNote {
            text: text.to_owned(),
            signatures: vec![NoteSignature {
                name: name.to_owned(),
                key_id: tk.note_id,
                signature: sig.to_der().as_bytes().to_vec(),
            }],
        }
        .to_text()
    }

    #[test]
    fn rekor_checkpoint_opens_with_its_published_key() {
        // transparency-dev/formats note_verifier_test.go: a real Rekor checkpoint.
        let vkey = "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=";
        let note = "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n\u{2014} rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n";
        let material = B64
            .decode(vkey.splitn(3, '+').nth(2).expect("b64"))
            .expect("b64");
        assert_eq!(material[0], 0x02);
        let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&material[1..]).expect("spki");
        let mut ring = KeyRing::default();
        ring.trust(vk).expect("trust");
        let tk = ring
            .by_note_id([0xc0, 0xd2, 0x3d, 0x6a])
            .expect("key id matches");
        assert_eq!(verifier_key("rekor.sigstore.dev", tk), vkey);
        let signed = SignedNote::parse(note).expect("parse");
        assert_eq!(signed.to_text(), note);
        signed.open("rekor.sigstore.dev", &ring).expect("opens");
        let cp = Checkpoint::parse_body(&signed.text).expect("body");
        assert_eq!((cp.origin.as_str(), cp.size), ("Rekor", 798034));
        // One changed byte of the text breaks it.
        let changed = note.replace("798034", "798035");
        assert!(matches!(
            SignedNote::parse(&changed)
                .expect("parse")
                .open("rekor.sigstore.dev", &ring),
            Err(NoteError::BadSignature(_))
        ));
        assert!(matches!(
            signed.open("bananas.sigstore.dev", &ring),
            Err(NoteError::Untrusted(_))
        ));
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_bad_shapes() {
        let sk = SigningKey::random(&mut rand_core::OsRng);
        let cp = Checkpoint {
            origin: "tenant-lifecycle/local/gdpr-erasure".into(),
            size: 12,
            root: tree::leaf_hash(b"x"),
            extensions: vec!["time 2026-12-01T00:00:00Z".into()],
        };
        let note = sign_note(&sk, &cp.origin, &cp.body());
        let mut ring = KeyRing::default();
        assert!(matches!(
            open_checkpoint(&note, &ring, None),
            Err(NoteError::Untrusted(_))
        ));
        ring.trust(*sk.verifying_key()).expect("trust");
        let (back, _) = open_checkpoint(&note, &ring, Some(&cp.origin)).expect("opens");
        assert_eq!(back, cp);
        assert!(matches!(
            open_checkpoint(&note, &ring, Some("other")),
            Err(NoteError::WrongOrigin { .. })
        ));
        for body in [
            "o\n012\nAAAA\n",
            "o\n1\n",
            "o\n1\nnot-base64\n",
            "o o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(Checkpoint::parse_body(body).is_err(), "{body:?}");
        }
        assert!(SignedNote::parse("text\n\n\u{2014} k AAAA\n").is_err());
        assert!(SignedNote::parse("te\u{1b}xt\n\n").is_err());
    }

    #[test]
    fn receipts_round_trip_and_any_changed_byte_fails() {
        let sk = SigningKey::random(&mut rand_core::OsRng);
        let mut ring = KeyRing::default();
        ring.trust(*sk.verifying_key()).expect("trust");
        let mut t = tree::MemoryTree::default();
        for i in 0..11u64 {
            t.push(tree::leaf_hash(&i.to_be_bytes()));
        }
        let origin = "tenant-lifecycle/local/gdpr-erasure";
        let cp = Checkpoint {
            origin: origin.into(),
            size: 11,
            root: t.root(),
            extensions: vec![],
        };
        let receipt = Receipt {
            index: 6,
            proof: t.inclusion(6, 11).expect("proof"),
            checkpoint: sign_note(&sk, origin, &cp.body()),
        };
        let text = receipt.to_text();
        let back = Receipt::parse(&text).expect("parse");
        assert_eq!(back, receipt);
        let leaf = tree::leaf_hash(&6u64.to_be_bytes());
        back.verify(&leaf, origin, &ring).expect("verifies");
        assert!(back.verify(&tree::leaf_hash(b"y"), origin, &ring).is_err());
        let bytes = text.as_bytes();
        for pos in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[pos] = if b[pos] == b'A' { b'B' } else { b'A' };
            let Ok(t) = String::from_utf8(b) else {
                continue;
            };
            if t == text {
                continue;
            }
            let ok = Receipt::parse(&t)
                .map_err(ReceiptError::from)
                .and_then(|r| r.verify(&leaf, origin, &ring));
            assert!(
                ok.is_err(),
                "byte {pos} changed and the receipt still verified"
            );
        }
    }
}
