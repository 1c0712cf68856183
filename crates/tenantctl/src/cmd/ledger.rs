//! `tenantctl ledger ...`: verify the ledger against named keys and checkpoints, publish
//! checkpoints, prove one checkpoint extends another, rotate the key.

use super::Ctx;
use crate::input::{MAX_NOTE_BYTES, read_text};
use crate::verify::{
    Expected, KEY_ROTATION, KEYS_CHAIN, VerifyOptions, expected_from_note, key_ring, published,
    verify_ledger_with, with_rotations,
};
use crate::world::connect_existing;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::Subcommand;
use lifecycle::certificate::{TrustedKey, public_key_to_pem};
use lifecycle::ledger::KeyRing;
use lifecycle::note::verifier_key;
use lifecycle::tree;
use p256::pkcs8::EncodePublicKey as _;
use ports::Signer as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use steps::certify::{Draft, certify};
use stores::Deps;

/// Ledger subcommands.
#[derive(Subcommand)]
pub enum LedgerCmd {
    /// Recompute every hash, link, signature and Merkle root; name the first bad seq.
    Verify {
        /// Only this chain.
        #[arg(long)]
        chain: Option<String>,
        /// Trust exactly these public keys (PEM), not the key stored beside the ledger.
        #[arg(long = "trust", alias = "public-key")]
        trust: Vec<PathBuf>,
        /// A signed checkpoint the ledger must still contain (repeatable); by default the
        /// newest published checkpoint of every chain.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// Threads checking signatures (0 = every core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Print the signing public key (SubjectPublicKeyInfo PEM) and its signed-note name.
    PublicKey,
    /// Print entries as JSON lines.
    Show {
        /// Chain.
        #[arg(long, default_value = "gdpr-erasure")]
        chain: String,
        /// First seq.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Sign and publish a checkpoint of every chain (or one) outside the ledger.
    Checkpoint {
        /// Only this chain.
        #[arg(long)]
        chain: Option<String>,
    },
    /// Prove that a newer checkpoint extends an older one (nothing changed or dropped).
    Consistency {
        /// The older checkpoint file.
        #[arg(long)]
        old: PathBuf,
        /// The newer one (default: the newest published for the same chain).
        #[arg(long)]
        new: Option<PathBuf>,
        /// Trust exactly these public keys (PEM).
        #[arg(long = "trust")]
        trust: Vec<PathBuf>,
    },
    /// Replace the local signing key; the rotation is itself a signed ledger entry.
    RotateKey,
}

/// The keys to trust: exactly the named ones, or (with a warning) the world's own key.
pub(crate) async fn trusted(deps: &Deps, trust: &[PathBuf]) -> Result<KeyRing> {
    if trust.is_empty() {
        println!(
            "note: trusting the signing key stored beside this ledger; an auditor names the keys with --trust key.pem"
        );
        let ring = key_ring(&[], Some(deps.signer().await?.public_key()))?;
        return keys_named_by_rotations(deps, ring).await;
    }
    let pems: Vec<&Path> = trust.iter().map(PathBuf::as_path).collect();
    key_ring(&pems, None)
}

pub(crate) fn read_note(p: &Path) -> Result<String> {
    read_text(p, MAX_NOTE_BYTES)
}

/// Runs a ledger subcommand.
pub async fn run(cmd: LedgerCmd, ctx: &Ctx) -> Result<()> {
    let (data_dir, catalog) = (ctx.data_dir.as_path(), ctx.catalog());
    match cmd {
        LedgerCmd::Verify {
            chain,
            trust,
            checkpoints,
            threads,
        } => {
            let deps = connect_existing(data_dir, catalog).await?;
            let ring = trusted(&deps, &trust).await?;
            // Checkpoints may be signed by a key the named keys rotated to.
            let note_ring = match with_rotations(&*deps.ledger, &ring).await {
                Ok(r) => r,
                Err(_) => ring.clone(),
            };
            let mut expected: Vec<Expected> = Vec::new();
            for p in &checkpoints {
                expected.push(expected_from_note(
                    &read_note(p)?,
                    &note_ring,
                    &p.display().to_string(),
                )?);
            }
            if checkpoints.is_empty()
                && let Ok(store) = deps.checkpoints()
            {
                expected = published(&**store, &note_ring).await?;
            }
            let covered: Vec<String> = expected.iter().map(|e| e.chain.clone()).collect();
            let opts = VerifyOptions {
                only: chain,
                checkpoints: expected,
                progress: true,
                threads,
            };
            let results = verify_ledger_with(&*deps.ledger, &ring, &opts).await?;
            // Without a checkpoint, truncation and rewrites by whoever holds the store
            // cannot be seen: an audit (named keys) needs one for every chain.
            let uncovered: Vec<&str> = results
                .iter()
                .filter(|r| r.outcome.is_ok() && !covered.contains(&r.chain))
                .map(|r| r.chain.as_str())
                .collect();
            if !uncovered.is_empty() {
                println!(
                    "warning: no checkpoint covers chain(s) {}: truncation or a rewrite of them cannot be detected",
                    uncovered.join(", ")
                );
                if !trust.is_empty() {
                    bail!(
                        "no checkpoint to meet for chain(s) {}: pass --checkpoint <file> you kept, or publish one with `tenantctl ledger checkpoint`",
                        uncovered.join(", ")
                    );
                }
            }
            if results.is_empty() {
                println!("the ledger is empty (no chain, no checkpoint)");
            }
            let mut bad = None;
            for r in &results {
                match &r.outcome {
                    Ok(n) => println!(
                        "chain {}: {n} entries verified (hashes, links, positions, signatures, head, Merkle tree){}",
                        r.chain,
                        match r.checkpoints_met.as_slice() {
                            [] => String::new(),
                            s => format!("; consistent with checkpoint(s) of size {s:?}"),
                        }
                    ),
                    Err(f) => {
                        println!("chain {}: FAILED at seq {}: {}", r.chain, f.seq, f.reason);
                        bad.get_or_insert(format!(
                            "chain {} is broken at seq {}: {}",
                            r.chain, f.seq, f.reason
                        ));
                    }
                }
            }
            match bad {
                Some(b) => bail!(b),
                None => Ok(()),
            }
        }
        LedgerCmd::PublicKey => {
            let deps = connect_existing(data_dir, catalog).await?;
            let signer = deps.signer().await?;
            print!("{}", public_key_to_pem(signer.public_key())?);
            let key = TrustedKey::new(*signer.public_key())?;
            eprintln!(
                "signed-note verifier key: {}",
                verifier_key(
                    &steps::checkpoint::origin(&deps.catalog.environment, "<chain>"),
                    &key
                )
            );
            Ok(())
        }
        LedgerCmd::Show { chain, from, limit } => {
            if from > i64::MAX as u64 {
                bail!("--from {from} is past any seq a ledger can hold");
            }
            let deps = connect_existing(data_dir, catalog).await?;
            for e in deps.ledger.entries(&chain, from, limit).await? {
                println!("{}", e.json);
            }
            Ok(())
        }
        LedgerCmd::Checkpoint { chain } => {
            // Only an existing world is checkpointed (its key signs; none is created).
            let deps = connect_existing(data_dir, catalog).await?;
            publish_all(&deps, chain.as_deref()).await
        }
        LedgerCmd::Consistency { old, new, trust } => {
            let deps = connect_existing(data_dir, catalog).await?;
            let ring = trusted(&deps, &trust).await?;
            let ring = with_rotations(&*deps.ledger, &ring).await?;
            let old_e = expected_from_note(&read_note(&old)?, &ring, &old.display().to_string())?;
            let new_note = match &new {
                Some(p) => read_note(p)?,
                None => deps
                    .checkpoints()?
                    .latest(&old_e.chain)
                    .await?
                    .with_context(|| format!("no checkpoint of {} is published", old_e.chain))?,
            };
            let new_e = expected_from_note(&new_note, &ring, "the newer checkpoint")?;
            if new_e.chain != old_e.chain {
                bail!(
                    "the checkpoints are of chains {} and {}",
                    old_e.chain,
                    new_e.chain
                );
            }
            let (m, n) = (old_e.checkpoint.size, new_e.checkpoint.size);
            let proof =
                steps::checkpoint::consistency_proof(&*deps.ledger, &old_e.chain, m, n).await?;
            tree::verify_consistency(m, n, &old_e.checkpoint.root, &new_e.checkpoint.root, &proof)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "chain {}: the checkpoint of size {n} does not extend the one of size {m}: {e}",
                        old_e.chain
                    )
                })?;
            println!(
                "chain {}: checkpoint {n} extends checkpoint {m}; consistency proof ({} hashes):",
                old_e.chain,
                proof.len()
            );
            for h in &proof {
                println!("{}", base64::engine::general_purpose::STANDARD.encode(h));
            }
            Ok(())
        }
        LedgerCmd::RotateKey => rotate_key(data_dir, catalog).await,
    }
}

/// Publishes a checkpoint of every chain (or one) and prints where.
pub async fn publish_all(deps: &Deps, only: Option<&str>) -> Result<()> {
    let signer = deps.signer().await?;
    let ring = key_ring(&[], Some(signer.public_key()))?;
    let ring = keys_named_by_rotations(deps, ring).await?;
    let done = steps::checkpoint::publish_chains(
        &*deps.ledger,
        &*signer,
        &**deps.checkpoints()?,
        &*deps.clock,
        &deps.catalog.environment,
        only.map(|c| vec![c.to_owned()]),
        &ring,
    )
    .await?;
    for p in done {
        if p.new {
            println!(
                "checkpoint of {} at size {}: {}",
                p.chain, p.size, p.location
            );
        } else {
            println!(
                "checkpoint of {} at size {}: already published",
                p.chain, p.size
            );
        }
    }
    Ok(())
}

async fn rotate_key(data_dir: &Path, catalog: Option<&Path>) -> Result<()> {
    let deps = connect_existing(data_dir, catalog).await?;
    let world = deps
        .world()
        .context("key rotation here is for the local key; rotate a KMS key in KMS")?;
    let path = stores::embedded::key_file_for(world.path());
    let (old, new) = stores::embedded::LocalSigner::rotate(&path)?;
    let der = new
        .public_key()
        .to_public_key_der()
        .map_err(|e| anyhow::anyhow!("encode key: {e}"))?;
    let old_der = old
        .public_key()
        .to_public_key_der()
        .map_err(|e| anyhow::anyhow!("encode key: {e}"))?;
    let draft = Draft {
        kind: KEYS_CHAIN.to_owned(),
        outcome: KEY_ROTATION.to_owned(),
        request_id: format!("rotate-{}", new.key_id().replace(':', "-")),
        tenant_id: "ledger".to_owned(),
        details: serde_json::json!({
            "old_key_id": old.key_id(),
            "new_key_id": new.key_id(),
            "old_public_key_spki_base64": base64::engine::general_purpose::STANDARD.encode(old_der.as_bytes()),
            "new_public_key_spki_base64": base64::engine::general_purpose::STANDARD.encode(der.as_bytes()),
        }),
        unique: false,
    };
    // Signed by the key it retires, so trust in the old key carries over to the new one.
    let done = certify(&*deps.ledger, &old, &*deps.clock, &draft).await?;
    println!(
        "signing key rotated: {} -> {}; recorded on chain {KEYS_CHAIN} at seq {}",
        old.key_id(),
        new.key_id(),
        done.entry.seq
    );
    print!("{}", public_key_to_pem(new.public_key())?);
    // Reconnected, so that the signer is the key just written.
    publish_all(&connect_existing(data_dir, catalog).await?, None).await
}

/// The world's own keys: `ring` plus every key, old or new, its rotation chain names.
/// Only for the modes that already trust what sits beside the ledger.
pub(crate) async fn keys_named_by_rotations(deps: &Deps, ring: KeyRing) -> Result<KeyRing> {
    let mut out = ring;
    let mut from = 0;
    loop {
        let page = deps.ledger.entries(KEYS_CHAIN, from, 1000).await?;
        for e in &page {
            let v: Value = serde_json::from_str(&e.json)?;
            let d = &v["certificate"]["certificate"]["details"];
            for field in ["old_public_key_spki_base64", "new_public_key_spki_base64"] {
                if let Some(der) = d[field].as_str()
                    && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(der)
                    && let Ok(k) = lifecycle::certificate::public_key_from_der(&der)
                {
                    out.trust(k)?;
                }
            }
        }
        if page.len() < 1000 {
            return Ok(out);
        }
        from += 1000;
    }
}
