//! `tenantctl cert ...`: verify a certificate and its receipt, export it for openssl,
//! write its receipt (the inclusion proof against the newest checkpoint).

use super::Ctx;
use super::ledger::{keys_named_by_rotations, read_note, trusted};
use crate::input::read_json_strict;
use crate::verify::{key_ring, verify_certificate_file};
use crate::world::connect_existing;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::Subcommand;
use lifecycle::certificate::{canonical_bytes, public_key_to_pem};
use lifecycle::ledger::{KeyRing, leaf_of_value};
use lifecycle::note::{Checkpoint, Receipt, SignedNote};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Certificate subcommands.
#[derive(Subcommand)]
pub enum CertCmd {
    /// Verify a certificate file (or a ledger entry file), and its receipt if given.
    Verify {
        /// The certificate JSON.
        file: PathBuf,
        /// Trust exactly these public keys (PEM); needs no world then.
        #[arg(long = "trust", alias = "public-key")]
        trust: Vec<PathBuf>,
        /// A receipt (`tlog-proof`) proving the certificate is on the ledger.
        #[arg(long)]
        receipt: Option<PathBuf>,
    },
    /// Write the canonical body, the DER signature and the public key, for openssl.
    Export {
        /// The certificate JSON.
        file: PathBuf,
        /// Output directory.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Write the certificate's receipt: its inclusion proof against the newest checkpoint.
    Prove {
        /// The certificate JSON.
        file: PathBuf,
        /// Where to write it (default: beside the certificate, `.tlog-proof`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a cert subcommand.
pub async fn run(cmd: CertCmd, ctx: &Ctx) -> Result<()> {
    let (data_dir, catalog) = (ctx.data_dir.as_path(), ctx.catalog());
    match cmd {
        CertCmd::Verify {
            file,
            trust,
            receipt,
        } => {
            let ring = if trust.is_empty() {
                let deps = connect_existing(data_dir, catalog).await?;
                trusted(&deps, &trust).await?
            } else {
                let pems: Vec<&Path> = trust.iter().map(PathBuf::as_path).collect();
                key_ring(&pems, None)?
            };
            let doc = verify_certificate_file(&file, &ring)?;
            let body = &doc["certificate"];
            println!(
                "valid: {} certificate, outcome {}, request {}, tenant {}, ledger {} seq {}",
                body["kind"].as_str().unwrap_or("?"),
                body["outcome"].as_str().unwrap_or("?"),
                body["request_id"].as_str().unwrap_or("?"),
                body["tenant_id"].as_str().unwrap_or("?"),
                body["chain"].as_str().unwrap_or("?"),
                body["seq"]
            );
            if let Some(r) = receipt {
                let started = std::time::Instant::now();
                let cp = verify_receipt(&doc, &read_note(&r)?, &ring)?;
                println!(
                    "receipt valid: entry {} is in the tree of {} entries whose checkpoint a trusted key signed ({} us)",
                    body["seq"],
                    cp.size,
                    started.elapsed().as_micros()
                );
            }
            Ok(())
        }
        CertCmd::Export { file, out_dir } => {
            let doc = read_json_strict(&file, crate::input::MAX_CERTIFICATE_BYTES)?;
            let body = doc
                .get("certificate")
                .context("no \"certificate\" object in the file")?;
            let sig = doc
                .pointer("/signature/der_base64")
                .and_then(Value::as_str)
                .context("no signature.der_base64 in the file")?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .context("signature.der_base64 is not base64")?;
            let deps = connect_existing(data_dir, catalog).await?;
            std::fs::create_dir_all(&out_dir)?;
            std::fs::write(out_dir.join("body.json"), canonical_bytes(body)?)?;
            std::fs::write(out_dir.join("sig.der"), der)?;
            std::fs::write(
                out_dir.join("key.pem"),
                public_key_to_pem(deps.signer().await?.public_key())?,
            )?;
            println!(
                "wrote body.json (RFC 8785 canonical), sig.der and key.pem to {}",
                out_dir.display()
            );
            println!(
                "check: openssl dgst -sha256 -verify {0}/key.pem -signature {0}/sig.der {0}/body.json",
                out_dir.display()
            );
            Ok(())
        }
        CertCmd::Prove { file, out } => {
            let deps = connect_existing(data_dir, catalog).await?;
            let doc = read_json_strict(&file, crate::input::MAX_CERTIFICATE_BYTES)?;
            let doc = if doc.get("entry_hash").is_some() {
                doc["certificate"].clone()
            } else {
                doc
            };
            let body = &doc["certificate"];
            let (Some(chain), Some(seq)) = (body["chain"].as_str(), body["seq"].as_u64()) else {
                bail!("{} names no ledger chain and seq", file.display());
            };
            let ring = key_ring(&[], Some(deps.signer().await?.public_key()))?;
            let ring = keys_named_by_rotations(&deps, ring).await?;
            let r = steps::checkpoint::receipt(
                &*deps.ledger,
                &**deps.checkpoints()?,
                chain,
                seq,
                &ring,
            )
            .await?;
            // The receipt must prove this very certificate, not whatever sits at its seq.
            verify_receipt(&doc, &r.to_text(), &ring).with_context(|| {
                format!("the ledger's entry at {chain} seq {seq} is not this certificate")
            })?;
            let out = out.unwrap_or_else(|| file.with_extension("tlog-proof"));
            std::fs::write(&out, r.to_text())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "receipt: {} ({} proof hashes, {} bytes); check offline with: tenantctl cert verify {} --trust key.pem --receipt {}",
                out.display(),
                r.proof.len(),
                r.to_text().len(),
                file.display(),
                out.display()
            );
            Ok(())
        }
    }
}

/// Verifies a receipt for a certificate document: the checkpoint is signed by a trusted
/// key for the certificate's chain, and the certificate is the leaf at its seq.
pub fn verify_receipt(doc: &Value, receipt: &str, ring: &KeyRing) -> Result<Checkpoint> {
    let r = Receipt::parse(receipt)?;
    let body = &doc["certificate"];
    let chain = body["chain"]
        .as_str()
        .context("the certificate names no chain")?;
    let seq = body["seq"]
        .as_u64()
        .context("the certificate names no seq")?;
    if r.index != seq {
        bail!(
            "the receipt proves entry {} but the certificate is entry {seq}",
            r.index
        );
    }
    let note = SignedNote::parse(&r.checkpoint)?;
    let origin = Checkpoint::parse_body(&note.text)?.origin;
    if steps::checkpoint::chain_of_origin(&origin) != Some(chain) {
        bail!("the receipt's checkpoint is of {origin}, not of chain {chain}");
    }
    let leaf = leaf_of_value(doc)?;
    Ok(r.verify(&leaf, &origin, ring)?)
}
