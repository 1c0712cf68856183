//! The RFC 6962 / RFC 9162 Merkle tree over a ledger chain's entries: leaf and node
//! hashes, the compact range (frontier) that an append extends, inclusion and consistency
//! proofs, and their verification.
//!
//! Proof generation is split in two so that a backend can fetch what it needs in one
//! round trip: [`inclusion_ranges`] / [`consistency_ranges`] name the subtree ranges a
//! proof is made of, [`range_nodes`] names the stored perfect subtrees that make up a
//! range, and [`range_hash`] folds their hashes.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// A perfect subtree: `level` (0 = leaf) and index among the subtrees of that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves.
    pub level: u32,
    /// Position among the subtrees of that height.
    pub index: u64,
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf {index} is outside a tree of size {size}")]
    OutOfRange {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has the wrong length for these tree sizes")]
    WrongLength,
    /// The recomputed root differs.
    #[error("recomputed root hash differs from the checkpoint's")]
    RootMismatch,
    /// The older tree is larger than the newer one.
    #[error("tree size {old} is larger than {new}")]
    Shrunk {
        /// Older size.
        old: u64,
        /// Newer size.
        new: u64,
    },
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The right edge of a tree: the roots of its perfect subtrees, largest first, one per set
/// bit of the size. Enough to append a leaf and to compute the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// A frontier from stored parts; `None` when the count does not match the size.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Self { size, hashes })
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree roots, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash; returns every node that became complete (the leaf first), which
    /// a backend stores so that proofs can be built later.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut index = self.size;
        let mut level = 0;
        let mut cur = leaf;
        let mut done = vec![(NodeId { level, index }, cur)];
        while index & 1 == 1 {
            // A set low bit means a subtree of this height is waiting on the left.
            let Some(left) = self.hashes.pop() else { break };
            cur = node_hash(&left, &cur);
            level += 1;
            index >>= 1;
            done.push((NodeId { level, index }, cur));
        }
        self.hashes.push(cur);
        self.size += 1;
        done
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, h| node_hash(h, &acc))
    }
}

/// Largest power of two strictly below `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The leaf ranges `[start, end)` whose subtree hashes form the inclusion proof of leaf
/// `index` in a tree of `size` leaves, lowest first (RFC 9162 2.1.3.1).
pub fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let mut out = Vec::new();
    let (mut lo, mut hi, mut m) = (0u64, size, index);
    // Walk down from the root, remembering siblings; reversed to list the lowest first.
    while hi - lo > 1 {
        let k = split(hi - lo);
        if m < k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
            m -= k;
        }
    }
    out.reverse();
    Ok(out)
}

/// The leaf ranges whose subtree hashes form the consistency proof from a tree of `old`
/// leaves to one of `new` leaves (RFC 9162 2.1.4.1), in proof order.
pub fn consistency_ranges(old: u64, new: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if old > new {
        return Err(ProofError::Shrunk { old, new });
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let (mut lo, mut hi, mut m, mut whole) = (0u64, new, old, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push((lo, hi));
            }
            break;
        }
        let k = split(n);
        if m <= k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// The stored perfect subtrees that make up the range `[start, end)`, left to right.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        // The largest aligned power of two that starts here and fits.
        let mut level = if at == 0 { 63 } else { at.trailing_zeros() };
        // Compared as a length, so that a range ending near u64::MAX cannot overflow.
        while level > 0 && (1u64 << level) > end - at {
            level -= 1;
        }
        out.push(NodeId {
            level,
            index: at >> level,
        });
        at += 1u64 << level;
    }
    out
}

/// The hash of a range from the hashes of its [`range_nodes`], left to right.
pub fn range_hash(nodes: &[Hash]) -> Hash {
    let mut it = nodes.iter().rev();
    let Some(last) = it.next() else {
        return empty_root();
    };
    it.fold(*last, |acc, h| node_hash(h, &acc))
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves with root `root`
/// (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of
/// `new` leaves with root `new_root` (RFC 9162 2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::Shrunk { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old == 0 {
        // The empty tree is a prefix of every tree; its proof is empty.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// A whole tree held in memory, every complete node kept: for tests, benchmarks and the
/// verifier's recomputation.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    frontier: Frontier,
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        for (id, h) in self.frontier.push(leaf) {
            let level = id.level as usize;
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
        }
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// A stored node.
    pub fn node(&self, id: NodeId) -> Option<Hash> {
        self.levels
            .get(id.level as usize)
            .and_then(|l| l.get(usize::try_from(id.index).ok()?))
            .copied()
    }

    /// The hash of a leaf range.
    pub fn range(&self, start: u64, end: u64) -> Option<Hash> {
        let hashes: Option<Vec<Hash>> = range_nodes(start, end)
            .into_iter()
            .map(|id| self.node(id))
            .collect();
        hashes.map(|h| range_hash(&h))
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size == 0 {
            return Some(empty_root());
        }
        self.range(0, size)
    }

    /// Inclusion proof of `index` in the first `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        inclusion_ranges(index, size)?
            .into_iter()
            .map(|(a, b)| {
                self.range(a, b)
                    .ok_or(ProofError::OutOfRange { index, size })
            })
            .collect()
    }

    /// Consistency proof from `old` to `new` leaves.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        consistency_ranges(old, new)?
            .into_iter()
            .map(|(a, b)| {
                self.range(a, b).ok_or(ProofError::OutOfRange {
                    index: b,
                    size: new,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
