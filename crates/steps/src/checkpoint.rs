//! Signed checkpoints of the ledger's Merkle trees, receipts and consistency proofs, built
//! from the nodes a [`Ledger`] stores and published to a [`CheckpointStore`] outside it.
//!
//! Before signing a new checkpoint the publisher proves, from the stored tree, that the
//! last published checkpoint is a prefix of the new tree: a ledger rewritten since is
//! refused instead of being signed over.

use lifecycle::StepError;
use lifecycle::certificate::{KeyRing, TrustedKey};
use lifecycle::ledger::leaf_of_value;
use lifecycle::note::{Checkpoint, NoteSignature, Receipt, SignedNote, open_checkpoint};
use lifecycle::tree::{self, Hash};
use ports::{CheckpointStore, Clock, Ledger, Signer, StoreError, check_chain_name};

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

/// Checkpoints `chain` at its current size and publishes it.
///
/// What is signed is computed from the entries, not taken from the stored tree: the
/// newest published checkpoint must be signed by a key in `trusted` (the ledger's own
/// keys) and match the stored subtrees it covers; every entry appended since is re-read,
/// its leaf recomputed from its certificate, and the tree extended from there. Stored
/// nodes that disagree with the entries, a chain shorter than a published checkpoint, or
/// one that does not extend it, are `LedgerCorrupt`, and nothing is signed.
pub async fn publish(
    ledger: &dyn Ledger,
    signer: &dyn Signer,
    store: &dyn CheckpointStore,
    clock: &dyn Clock,
    environment: &str,
    chain: &str,
    trusted: &KeyRing,
) -> Result<Published, StepError> {
    check_chain_name(chain)?;
    let corrupt = |m: String| StepError::LedgerCorrupt(format!("chain {chain}: {m}"));
    // The published checkpoint first, then the head: the head only grows, so a checkpoint
    // another publisher makes meanwhile can never look like a truncation.
    let prev = store.latest(chain).await?;
    let Some(head) = ledger.head(chain).await? else {
        return Err(StepError::invalid(format!(
            "chain {chain} has no entries to checkpoint"
        )));
    };
    let size = head.seq + 1;
    let origin = origin(environment, chain);
    let (mut tree, prev) = match prev {
        None => (tree::Frontier::default(), None),
        Some(note) => {
            let (old, _) = open_checkpoint(&note, trusted, Some(&origin)).map_err(|e| {
                corrupt(format!(
                    "the newest published checkpoint is not one this ledger's keys signed ({e}); refusing to publish over it"
                ))
            })?;
            if old.size > size {
                return Err(corrupt(format!(
                    "it holds {size} entries but a checkpoint of {} was published: the ledger was truncated",
                    old.size
                )));
            }
            // The old tree's right edge, from the stored nodes, must give the signed root.
            let ids = tree::range_nodes(0, old.size);
            let found = ledger.tree_nodes(chain, &ids).await?;
            let hashes: Option<Vec<Hash>> = found.into_iter().collect();
            let f = hashes
                .and_then(|h| tree::Frontier::from_parts(old.size, h))
                .filter(|f| f.root() == old.root)
                .ok_or_else(|| {
                    corrupt(format!(
                        "the stored tree does not give the root of the checkpoint at size {}: the ledger was rewritten, refusing to sign",
                        old.size
                    ))
                })?;
            (f, Some((old, note)))
        }
    };
    if let Some((old, note)) = &prev
        && old.size == size
    {
        if head.tree().map(|f| f.root()) != Some(old.root) {
            return Err(corrupt(format!(
                "the head's tree differs from the checkpoint at size {size}: the ledger was rewritten"
            )));
        }
        return Ok(Published {
            chain: chain.to_owned(),
            size,
            note: note.clone(),
            location: String::new(),
            new: false,
        });
    }
    // Extend the tree with the leaves of the entries themselves.
    let mut written = Vec::new();
    let mut from = tree.size();
    while from < size {
        let page = ledger.entries(chain, from, 1000).await?;
        if page.is_empty() {
            break;
        }
        // Entries appended after the head was read belong to a later checkpoint.
        for e in page.iter().take_while(|e| e.seq < size) {
            if e.seq != tree.size() {
                return Err(corrupt(format!("entry {} is missing", tree.size())));
            }
            let v: serde_json::Value = serde_json::from_str(&e.json)
                .map_err(|x| corrupt(format!("entry {} is not JSON: {x}", e.seq)))?;
            let leaf = leaf_of_value(&v["certificate"])
                .map_err(|x| corrupt(format!("entry {}: {x}", e.seq)))?;
            written.extend(tree.push(leaf));
        }
        if page.iter().any(|e| e.seq >= size) {
            break;
        }
        from = tree.size();
    }
    if tree.size() != size {
        return Err(corrupt(format!(
            "the head names {size} entries but {} are stored",
            tree.size()
        )));
    }
    let root = tree.root();
    if head.tree().map(|f| f.root()) != Some(root) {
        return Err(corrupt(
            "the tree stored with the head does not match the entries".into(),
        ));
    }
    // The stored nodes serve later proofs: they must be the ones the entries give.
    for part in written.chunks(500) {
        let ids: Vec<tree::NodeId> = part.iter().map(|(id, _)| *id).collect();
        let stored = ledger.tree_nodes(chain, &ids).await?;
        if let Some(((id, _), _)) = part
            .iter()
            .zip(stored)
            .find(|((_, h), s)| s.as_ref() != Some(h))
        {
            return Err(corrupt(format!(
                "stored Merkle node level {} index {} does not match the entries",
                id.level, id.index
            )));
        }
    }
    let cp = Checkpoint {
        origin: origin.clone(),
        size,
        root,
        extensions: vec![format!("time {}", clock.now_rfc3339())],
    };
    let note = sign_note(signer, &origin, &cp.body()).await?;
    let location = match store.publish(chain, size, &note).await {
        Ok(l) => l,
        // Another publisher checkpointed the same size first (its time line differs):
        // fine if it signed the same root.
        Err(e @ StoreError::Conflict { .. }) => {
            let theirs = store.latest(chain).await?.unwrap_or_default();
            let same = open_checkpoint(&theirs, trusted, Some(&origin))
                .is_ok_and(|(c, _)| c.size >= size && (c.size > size || c.root == root));
            if !same {
                return Err(StepError::LedgerCorrupt(e.to_string()));
            }
            return Ok(Published {
                chain: chain.to_owned(),
                size,
                note: theirs,
                location: String::new(),
                new: false,
            });
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(chain, size, "checkpoint published");
    Ok(Published {
        chain: chain.to_owned(),
        size,
        note,
        location,
        new: true,
    })
}

/// [`publish`] for each of `chains` (every chain of the ledger when `None`).
pub async fn publish_chains(
    ledger: &dyn Ledger,
    signer: &dyn Signer,
    store: &dyn CheckpointStore,
    clock: &dyn Clock,
    environment: &str,
    chains: Option<Vec<String>>,
    trusted: &KeyRing,
) -> Result<Vec<Published>, StepError> {
    let chains = match chains {
        Some(c) => c,
        None => ledger.chains().await?,
    };
    let mut out = Vec::with_capacity(chains.len());
    for chain in chains {
        out.push(publish(ledger, signer, store, clock, environment, &chain, trusted).await?);
    }
    Ok(out)
}

/// A receipt for entry `seq` of `chain` against the newest published checkpoint.
pub async fn receipt(
    ledger: &dyn Ledger,
    store: &dyn CheckpointStore,
    chain: &str,
    seq: u64,
    trusted: &KeyRing,
) -> Result<Receipt, StepError> {
    let note = store.latest(chain).await?.ok_or_else(|| {
        StepError::invalid(format!(
            "no checkpoint of chain {chain} is published yet: run `tenantctl ledger checkpoint`"
        ))
    })?;
    let (cp, _) = open_checkpoint(&note, trusted, None).map_err(|e| {
        StepError::LedgerCorrupt(format!(
            "the newest published checkpoint of {chain} is not one this ledger's keys signed: {e}"
        ))
    })?;
    if chain_of_origin(&cp.origin) != Some(chain) {
        return Err(StepError::LedgerCorrupt(format!(
            "the newest published checkpoint of {chain} is of {}",
            cp.origin
        )));
    }
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
