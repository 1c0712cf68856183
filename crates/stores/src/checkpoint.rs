//! Signed checkpoints of the ledger's Merkle trees, receipts and consistency proofs, built
//! from the nodes a [`Ledger`] stores and published to a [`CheckpointStore`] outside it.
//!
//! Before signing a new checkpoint the publisher proves, from the stored tree, that the
//! last published checkpoint is a prefix of the new tree: a ledger rewritten since is
//! refused instead of being signed over.

use crate::{CheckpointStore, Clock, Ledger, Signer, StoreError};
use lifecycle::StepError;
use lifecycle::certificate::TrustedKey;
use lifecycle::note::{Checkpoint, NoteSignature, Receipt, SignedNote};
use lifecycle::tree::{self, Hash};

/// Prefix of every origin this product writes: `tenant-lifecycle/<environment>/<chain>`.
pub const ORIGIN_PREFIX: &str = "tenant-lifecycle";

/// The checkpoint origin (and signed-note key name) of a chain.
pub fn origin(environment: &str, chain: &str) -> String {
    format!("{ORIGIN_PREFIX}/{environment}/{chain}")
}

/// The chain an origin names, if it is one of ours.
pub fn chain_of_origin(origin: &str) -> Option<&str> {
    let rest = origin.strip_prefix(ORIGIN_PREFIX)?.strip_prefix('/')?;
    let (_, chain) = rest.rsplit_once('/')?;
    (!chain.is_empty()).then_some(chain)
}

/// Chain names become file names and object keys: lowercase letters, digits, '-'.
pub fn check_chain_name(chain: &str) -> Result<(), StoreError> {
    let ok = !chain.is_empty()
        && chain.len() <= 64
        && chain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "chain name {chain:?} must be 1-64 of a-z, 0-9 and '-'"
        )))
    }
}

/// Hashes of leaf ranges, from the stored nodes in one read.
async fn range_hashes(
    ledger: &dyn Ledger,
    chain: &str,
    ranges: &[(u64, u64)],
) -> Result<Vec<Hash>, StepError> {
    let parts: Vec<Vec<tree::NodeId>> = ranges
        .iter()
        .map(|(a, b)| tree::range_nodes(*a, *b))
        .collect();
    let ids: Vec<tree::NodeId> = parts.iter().flatten().copied().collect();
    let found = ledger.tree_nodes(chain, &ids).await?;
    let mut it = found.into_iter().zip(ids.iter());
    let mut out = Vec::with_capacity(parts.len());
    for p in &parts {
        let mut hashes = Vec::with_capacity(p.len());
        for _ in p {
            match it.next() {
                Some((Some(h), _)) => hashes.push(h),
                Some((None, id)) => {
                    return Err(StepError::LedgerCorrupt(format!(
                        "chain {chain}: Merkle node level {} index {} is not stored",
                        id.level, id.index
                    )));
                }
                None => return Err(StepError::Internal("node list ran short".into())),
            }
        }
        out.push(tree::range_hash(&hashes));
    }
    Ok(out)
}

/// The inclusion proof of entry `index` in the first `size` entries of `chain`.
pub async fn inclusion_proof(
    ledger: &dyn Ledger,
    chain: &str,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, StepError> {
    let ranges = tree::inclusion_ranges(index, size)
        .map_err(|e| StepError::invalid(format!("inclusion proof: {e}")))?;
    range_hashes(ledger, chain, &ranges).await
}

/// The consistency proof of `chain` from `old` to `new` entries.
pub async fn consistency_proof(
    ledger: &dyn Ledger,
    chain: &str,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, StepError> {
    let ranges = tree::consistency_ranges(old, new)
        .map_err(|e| StepError::invalid(format!("consistency proof: {e}")))?;
    range_hashes(ledger, chain, &ranges).await
}

/// The root of the first `size` entries of `chain`, from the stored nodes.
pub async fn root_at(ledger: &dyn Ledger, chain: &str, size: u64) -> Result<Hash, StepError> {
    if size == 0 {
        return Ok(tree::empty_root());
    }
    Ok(range_hashes(ledger, chain, &[(0, size)]).await?[0])
}

/// What [`publish`] did for one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The chain.
    pub chain: String,
    /// The tree size checkpointed.
    pub size: u64,
    /// The signed note.
    pub note: String,
    /// Where it was published.
    pub location: String,
    /// False when the newest published checkpoint already covered the whole chain.
    pub new: bool,
}

/// Signs a checkpoint note over `body` with `signer`, as C2SP signed-note type 0x02.
pub async fn sign_note(signer: &dyn Signer, name: &str, body: &str) -> Result<String, StepError> {
    let key = TrustedKey::new(*signer.public_key())
        .map_err(|e| StepError::Configuration(e.to_string()))?;
    let der = signer.sign(body.as_bytes()).await?;
    Ok(SignedNote {
        text: body.to_owned(),
        signatures: vec![NoteSignature {
            name: name.to_owned(),
            key_id: key.note_id,
            signature: der,
        }],
    }
    .to_text())
}

/// Checkpoints `chain` at its current size and publishes it, after proving the previous
/// published checkpoint consistent with the stored tree.
pub async fn publish(
    ledger: &dyn Ledger,
    signer: &dyn Signer,
    store: &dyn CheckpointStore,
    clock: &dyn Clock,
    environment: &str,
    chain: &str,
) -> Result<Published, StepError> {
    check_chain_name(chain)?;
    let Some(head) = ledger.head(chain).await? else {
        return Err(StepError::invalid(format!(
            "chain {chain} has no entries to checkpoint"
        )));
    };
    let frontier = head.tree().ok_or_else(|| {
        StepError::LedgerCorrupt(format!(
            "chain {chain}: the head carries no Merkle tree; append once to rebuild it"
        ))
    })?;
    let (size, root) = (frontier.size(), frontier.root());
    // The stored nodes must agree with the frontier the head carries.
    if root_at(ledger, chain, size).await? != root {
        return Err(StepError::LedgerCorrupt(format!(
            "chain {chain}: the stored Merkle nodes do not hash to the head's root"
        )));
    }
    let origin = origin(environment, chain);
    if let Some(prev) = store.latest(chain).await? {
        let note = SignedNote::parse(&prev)
            .map_err(|e| StepError::LedgerCorrupt(format!("published checkpoint: {e}")))?;
        let old = Checkpoint::parse_body(&note.text)
            .map_err(|e| StepError::LedgerCorrupt(format!("published checkpoint: {e}")))?;
        if old.size > size {
            return Err(StepError::LedgerCorrupt(format!(
                "chain {chain} holds {size} entries but a checkpoint of {} was published: the ledger was truncated",
                old.size
            )));
        }
        let proof = consistency_proof(ledger, chain, old.size, size).await?;
        tree::verify_consistency(old.size, size, &old.root, &root, &proof).map_err(|e| {
            StepError::LedgerCorrupt(format!(
                "chain {chain} is not an extension of its checkpoint at size {}: {e}; the ledger was rewritten, refusing to sign",
                old.size
            ))
        })?;
        if old.size == size {
            return Ok(Published {
                chain: chain.to_owned(),
                size,
                note: prev,
                location: String::new(),
                new: false,
            });
        }
    }
    let cp = Checkpoint {
        origin: origin.clone(),
        size,
        root,
        extensions: vec![format!("time {}", clock.now_rfc3339())],
    };
    let note = sign_note(signer, &origin, &cp.body()).await?;
    let location = store.publish(chain, size, &note).await?;
    tracing::info!(chain, size, "checkpoint published");
    Ok(Published {
        chain: chain.to_owned(),
        size,
        note,
        location,
        new: true,
    })
}

/// A receipt for entry `seq` of `chain` against the newest published checkpoint.
pub async fn receipt(
    ledger: &dyn Ledger,
    store: &dyn CheckpointStore,
    chain: &str,
    seq: u64,
) -> Result<Receipt, StepError> {
    let note = store.latest(chain).await?.ok_or_else(|| {
        StepError::invalid(format!(
            "no checkpoint of chain {chain} is published yet: run `tenantctl ledger checkpoint`"
        ))
    })?;
    let cp = SignedNote::parse(&note)
        .and_then(|n| Checkpoint::parse_body(&n.text))
        .map_err(|e| StepError::LedgerCorrupt(format!("published checkpoint: {e}")))?;
    if seq >= cp.size {
        return Err(StepError::invalid(format!(
            "the newest checkpoint of {chain} covers {} entries, not seq {seq}: run `tenantctl ledger checkpoint` first",
            cp.size
        )));
    }
    Ok(Receipt {
        index: seq,
        proof: inclusion_proof(ledger, chain, seq, cp.size).await?,
        checkpoint: note,
    })
}
