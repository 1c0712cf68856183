//! Offline verification of the ledger, of checkpoints and of certificate files, trusting
//! only the keys and checkpoints the auditor names.

use crate::input::{MAX_CERTIFICATE_BYTES, read_capped, read_json_strict};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lifecycle::certificate::{public_key_from_der, public_key_from_pem, verify_document};
use lifecycle::ledger::{ChainFault, ChainVerifier, KeyRing};
use lifecycle::note::{Checkpoint, open_checkpoint};
use ports::Ledger;
use serde_json::Value;
use std::path::Path;

/// Entries read per ledger page.
const PAGE: usize = 4096;

/// The chain on which key rotations are recorded, each signed by the key it retires.
pub const KEYS_CHAIN: &str = "ledger-keys";
/// Outcome of a key rotation entry on [`KEYS_CHAIN`].
pub const KEY_ROTATION: &str = "key-rotated";

/// A key ring from PEM files (key ids derived from the keys themselves).
pub fn key_ring(pems: &[&Path], extra: Option<&p256::ecdsa::VerifyingKey>) -> Result<KeyRing> {
    let mut ring = KeyRing::default();
    for p in pems {
        let text = read_capped(p, 64 * 1024)?;
        let text =
            String::from_utf8(text).with_context(|| format!("{} is not text", p.display()))?;
        let key = public_key_from_pem(&text)
            .with_context(|| format!("{} is not a P-256 public key PEM", p.display()))?;
        ring.trust(key)?;
    }
    if let Some(k) = extra {
        ring.trust(*k)?;
    }
    Ok(ring)
}

/// A checkpoint the verification must meet, with the chain it is of.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The chain.
    pub chain: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Where it came from, for messages.
    pub source: String,
}

/// Opens a signed checkpoint with the trusted keys and finds its chain in the origin.
pub fn expected_from_note(note: &str, keys: &KeyRing, source: &str) -> Result<Expected> {
    let (checkpoint, _) = open_checkpoint(note, keys, None)
        .map_err(|e| anyhow::anyhow!("checkpoint {source}: {e}"))?;
    let chain = steps::checkpoint::chain_of_origin(&checkpoint.origin)
        .with_context(|| {
            format!(
                "checkpoint {source}: origin {:?} is not a tenant-lifecycle ledger",
                checkpoint.origin
            )
        })?
        .to_owned();
    Ok(Expected {
        chain,
        checkpoint,
        source: source.to_owned(),
    })
}

/// How to verify.
#[derive(Debug, Default)]
pub struct VerifyOptions {
    /// Only this chain.
    pub only: Option<String>,
    /// Checkpoints the chains must be consistent with.
    pub checkpoints: Vec<Expected>,
    /// Show a progress bar.
    pub progress: bool,
    /// Threads for signature checks (0 = every core).
    pub threads: usize,
}

/// Result of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainResult {
    /// Chain name.
    pub chain: String,
    /// Entries verified, or the first fault.
    pub outcome: Result<u64, ChainFault>,
    /// Checkpoints met (their sizes).
    pub checkpoints_met: Vec<u64>,
}

/// Verifies every chain (or one): hashes, links, positions and signatures, then the head.
pub async fn verify_ledger(
    ledger: &dyn Ledger,
    keys: &KeyRing,
    only: Option<&str>,
    progress: bool,
) -> Result<Vec<ChainResult>> {
    let opts = VerifyOptions {
        only: only.map(str::to_owned),
        progress,
        ..VerifyOptions::default()
    };
    verify_ledger_with(ledger, keys, &opts).await
}

/// Verifies the ledger trusting exactly `keys` (and the keys that trusted keys rotated
/// to, as recorded on the `ledger-keys` chain), and checks every expected checkpoint:
/// a chain shorter than a checkpoint was truncated, one whose entries hash to another
/// root was rewritten, a checkpointed chain that is gone was deleted.
pub async fn verify_ledger_with(
    ledger: &dyn Ledger,
    keys: &KeyRing,
    opts: &VerifyOptions,
) -> Result<Vec<ChainResult>> {
    let stored = ledger.chains().await?;
    let mut chains: Vec<String> = match &opts.only {
        Some(c) => vec![c.clone()],
        None => stored.clone(),
    };
    for e in &opts.checkpoints {
        if opts.only.as_ref().is_none_or(|o| *o == e.chain) && !chains.contains(&e.chain) {
            chains.push(e.chain.clone());
        }
    }
    // Rotations first: later chains may be signed by a key a rotation introduced.
    chains.sort_by_key(|c| (c != KEYS_CHAIN, c.clone()));
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        opts.threads
    };
    let mut ring = keys.clone();
    let mut out = Vec::new();
    for chain in chains {
        let expected: Vec<&Expected> = opts
            .checkpoints
            .iter()
            .filter(|e| e.chain == chain)
            .collect();
        if !stored.contains(&chain) {
            let fault = match expected.first() {
                Some(e) => ChainFault {
                    seq: 0,
                    reason: format!(
                        "the chain is missing from the ledger, yet checkpoint {} covers {} of its entries: the chain was deleted",
                        e.source, e.checkpoint.size
                    ),
                },
                None => ChainFault {
                    seq: 0,
                    reason: "no such chain".into(),
                },
            };
            out.push(ChainResult {
                chain,
                outcome: Err(fault),
                checkpoints_met: vec![],
            });
            continue;
        }
        let head = ledger.head(&chain).await?;
        let bar = if opts.progress {
            let b = ProgressBar::new(head.as_ref().map_or(0, |h| h.seq + 1));
            b.set_style(
                ProgressStyle::with_template("  {msg:<16} {bar:30} {pos}/{len} entries {per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_message(chain.clone());
            b
        } else {
            ProgressBar::hidden()
        };
        let rotations = chain == KEYS_CHAIN;
        let mut v =
            ChainVerifier::new(&chain, &ring).with_threads(if rotations { 1 } else { threads });
        for e in &expected {
            v.want_root_at(e.checkpoint.size);
        }
        let mut fault = None;
        let mut page = ledger.entries(&chain, 0, PAGE).await?;
        loop {
            let n = page.len();
            let next_from = page.last().map_or(0, |e| e.seq + 1);
            let more = n == PAGE;
            let (checked, next) = if rotations {
                // One at a time: a rotation entry extends trust to the entry after it.
                let mut r = Ok(());
                for e in &page {
                    r = v.check_stored(e);
                    if r.is_err() {
                        break;
                    }
                    if let Err(f) = trust_rotation(&mut v, &e.json) {
                        r = Err(ChainFault {
                            seq: e.seq,
                            reason: f,
                        });
                        break;
                    }
                }
                let next = if more && r.is_ok() {
                    ledger.entries(&chain, next_from, PAGE).await?
                } else {
                    Vec::new()
                };
                (r, next)
            } else {
                // The next page is read while this one is checked on the worker threads.
                let verify = tokio::task::spawn_blocking(move || {
                    let r = v.check_batch(&page);
                    (v, r)
                });
                let next = if more {
                    Some(ledger.entries(&chain, next_from, PAGE).await)
                } else {
                    None
                };
                let (back, r) = verify
                    .await
                    .map_err(|e| anyhow::anyhow!("verifier task failed: {e}"))?;
                v = back;
                (r, next.transpose()?.unwrap_or_default())
            };
            if let Err(f) = checked {
                fault = Some(f);
                break;
            }
            bar.inc(n as u64);
            if !more {
                break;
            }
            page = next;
        }
        bar.finish_and_clear();
        let mut met = Vec::new();
        if fault.is_none() {
            for e in &expected {
                let size = e.checkpoint.size;
                match v.root_at(size) {
                    None => {
                        fault = Some(ChainFault {
                            seq: v.verified(),
                            reason: format!(
                                "checkpoint {} covers {size} entries but the ledger holds {}: the chain was truncated",
                                e.source,
                                v.verified()
                            ),
                        });
                        break;
                    }
                    Some(root) if root != e.checkpoint.root => {
                        fault = Some(ChainFault {
                            seq: size.saturating_sub(1),
                            reason: format!(
                                "entries 0..{} do not hash to the root of checkpoint {}: the chain was rewritten",
                                size.saturating_sub(1),
                                e.source
                            ),
                        });
                        break;
                    }
                    Some(_) => met.push(size),
                }
            }
        }
        if rotations {
            ring = v.keys().clone();
        }
        let outcome = match fault {
            Some(f) => Err(f),
            None => v.finish(head.as_ref()),
        };
        out.push(ChainResult {
            chain,
            outcome,
            checkpoints_met: met,
        });
    }
    Ok(out)
}

/// After a verified `key-rotation` entry, trusts the key it names.
fn trust_rotation(v: &mut ChainVerifier, raw: &str) -> std::result::Result<(), String> {
    let entry: Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    let body = &entry["certificate"]["certificate"];
    if body["outcome"] != KEY_ROTATION {
        return Ok(());
    }
    let der = body["details"]["new_public_key_spki_base64"]
        .as_str()
        .ok_or("a key rotation names no new key")?;
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, der)
        .map_err(|e| format!("a key rotation's key is not base64: {e}"))?;
    let key = public_key_from_der(&der).map_err(|e| e.to_string())?;
    v.trust(key).map_err(|e| e.to_string())?;
    // The retired key signs nothing issued after the rotation, on any chain.
    if let (Some(old), Some(at)) = (
        body["details"]["old_key_id"].as_str(),
        body["issued_at"].as_str(),
    ) {
        v.retire(old, at);
    }
    Ok(())
}

/// `keys` and every key a verified rotation on the `ledger-keys` chain moved trust to.
/// A rotation chain that does not verify with `keys` is an error.
pub async fn with_rotations(ledger: &dyn Ledger, keys: &KeyRing) -> Result<KeyRing> {
    if !ledger.chains().await?.iter().any(|c| c == KEYS_CHAIN) {
        return Ok(keys.clone());
    }
    let head = ledger.head(KEYS_CHAIN).await?;
    let mut v = ChainVerifier::new(KEYS_CHAIN, keys);
    let mut from = 0;
    loop {
        let page = ledger.entries(KEYS_CHAIN, from, PAGE).await?;
        for e in &page {
            v.check_stored(e)
                .and_then(|()| {
                    trust_rotation(&mut v, &e.json)
                        .map_err(|reason| ChainFault { seq: e.seq, reason })
                })
                .map_err(|f| {
                    anyhow::anyhow!(
                        "chain {KEYS_CHAIN} is broken at seq {}: {}",
                        f.seq,
                        f.reason
                    )
                })?;
        }
        if page.len() < PAGE {
            break;
        }
        from += PAGE as u64;
    }
    let ring = v.keys().clone();
    v.finish(head.as_ref()).map_err(|f| {
        anyhow::anyhow!(
            "chain {KEYS_CHAIN} is broken at seq {}: {}",
            f.seq,
            f.reason
        )
    })?;
    Ok(ring)
}

/// Reads every published checkpoint as what the chains must meet, opened with `keys`.
pub async fn published(
    store: &dyn ports::CheckpointStore,
    keys: &KeyRing,
) -> Result<Vec<Expected>> {
    let mut out = Vec::new();
    for chain in store.chains().await? {
        if let Some(note) = store.latest(&chain).await? {
            let e = expected_from_note(&note, keys, &format!("published for {chain}"))?;
            if e.chain != chain {
                bail!(
                    "the checkpoint published for {chain} is of chain {}: the checkpoint store was tampered with",
                    e.chain
                );
            }
            out.push(e);
        }
    }
    Ok(out)
}

/// Verifies a certificate file; returns its body on success.
pub fn verify_certificate_file(path: &Path, keys: &KeyRing) -> Result<Value> {
    let doc = read_json_strict(path, MAX_CERTIFICATE_BYTES)?;
    // A ledger entry holds the certificate document under "certificate".
    let doc = if doc.get("entry_hash").is_some() {
        // A whole entry is checked as an entry: its fields and its hash, not just the
        // certificate inside (outer fields must not say something the hash does not).
        const FIELDS: [&str; 6] = [
            "certificate",
            "chain",
            "entry_hash",
            "prev_hash",
            "recorded_at",
            "seq",
        ];
        let obj = doc.as_object().context("not a JSON object")?;
        if obj.len() != FIELDS.len() || !FIELDS.iter().all(|f| obj.contains_key(*f)) {
            bail!(
                "{} looks like a ledger entry but its fields are not exactly {FIELDS:?}",
                path.display()
            );
        }
        let h = lifecycle::ledger::entry_hash(&doc)?;
        if doc["entry_hash"].as_str() != Some(h.as_str()) {
            bail!(
                "{} does not verify: its entry_hash is not the hash of the entry",
                path.display()
            );
        }
        doc["certificate"].clone()
    } else {
        doc
    };
    if let Err(e) = verify_document(&doc, |k| keys.get(k)) {
        bail!("{} does not verify: {e}", path.display());
    }
    Ok(doc)
}
