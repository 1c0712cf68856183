//! Offline verification of the ledger and of certificate files.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lifecycle::certificate::{local_key_id, public_key_from_pem, verify_document};
use lifecycle::ledger::{ChainFault, ChainVerifier, KeyRing};
use serde_json::Value;
use std::path::Path;
use stores::Ledger;

/// Entries read per ledger page.
const PAGE: usize = 1000;

/// A key ring from PEM files (key ids derived from the keys themselves).
pub fn key_ring(pems: &[&Path], extra: Option<&p256::ecdsa::VerifyingKey>) -> Result<KeyRing> {
    let mut ring = KeyRing::default();
    for p in pems {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read public key {}", p.display()))?;
        let key = public_key_from_pem(&text)
            .with_context(|| format!("{} is not a P-256 public key PEM", p.display()))?;
        ring.insert(local_key_id(&key)?, key);
    }
    if let Some(k) = extra {
        ring.insert(local_key_id(k)?, *k);
    }
    Ok(ring)
}

/// Result of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainResult {
    /// Chain name.
    pub chain: String,
    /// Entries verified, or the first fault.
    pub outcome: Result<u64, ChainFault>,
}

/// Verifies every chain (or one): hashes, links, positions and signatures, then the head.
pub async fn verify_ledger(
    ledger: &dyn Ledger,
    keys: &KeyRing,
    only: Option<&str>,
    progress: bool,
) -> Result<Vec<ChainResult>> {
    let chains = match only {
        Some(c) => vec![c.to_owned()],
        None => ledger.chains().await?,
    };
    let mut out = Vec::new();
    for chain in chains {
        let head = ledger.head(&chain).await?;
        let bar = if progress {
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
        let mut v = ChainVerifier::new(&chain, keys);
        let mut from = 0u64;
        let mut fault = None;
        'pages: loop {
            let page = ledger.entries(&chain, from, PAGE).await?;
            let n = page.len();
            for (seq, raw) in &page {
                if let Err(f) = v.check(*seq, raw) {
                    fault = Some(f);
                    break 'pages;
                }
            }
            bar.inc(n as u64);
            if n < PAGE {
                break;
            }
            from = page.last().map_or(from, |e| e.0 + 1);
        }
        bar.finish_and_clear();
        let outcome = match fault {
            Some(f) => Err(f),
            None => v.finish(head.as_ref()),
        };
        out.push(ChainResult { chain, outcome });
    }
    Ok(out)
}

/// Verifies a certificate file; returns its body on success.
pub fn verify_certificate_file(path: &Path, keys: &KeyRing) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    // A ledger entry holds the certificate document under "certificate".
    let doc = if doc.get("entry_hash").is_some() {
        doc["certificate"].clone()
    } else {
        doc
    };
    if let Err(e) = verify_document(&doc, |k| keys.get(k)) {
        bail!("{} does not verify: {e}", path.display());
    }
    Ok(doc["certificate"].clone())
}
