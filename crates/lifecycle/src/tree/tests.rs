//! RFC 6962 test vectors as published by transparency-dev (testonly/constants.go and
//! proof/testdata), plus properties over every size up to 40.

use super::*;

fn h(s: &str) -> Hash {
    let v = hex::decode(s).expect("hex");
    v.try_into().expect("32 bytes")
}

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn reference_tree() -> MemoryTree {
    let mut t = MemoryTree::default();
    for l in LEAVES {
        t.push(leaf_hash(&hex::decode(l).expect("hex")));
    }
    t
}

#[test]
fn hasher_vectors() {
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
    assert_eq!(empty_root(), h(ROOTS[0]));
}

#[test]
fn roots_of_the_reference_tree_at_every_size() {
    let t = reference_tree();
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(t.root_at(size as u64), Some(h(root)), "size {size}");
    }
    // The frontier alone gives the same root at every size.
    let mut f = Frontier::default();
    assert_eq!(f.root(), h(ROOTS[0]));
    for (i, l) in LEAVES.iter().enumerate() {
        f.push(leaf_hash(&hex::decode(l).expect("hex")));
        assert_eq!(f.root(), h(ROOTS[i + 1]));
    }
}

type Vector = (u64, u64, &'static [&'static str]);

const INCLUSION: [Vector; 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

const CONSISTENCY: [Vector; 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn proof(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

#[test]
fn inclusion_vectors_are_built_and_verified() {
    let t = reference_tree();
    for (index, size, want) in INCLUSION {
        let want = proof(want);
        assert_eq!(
            t.inclusion(index, size).expect("proof"),
            want,
            "{index}/{size}"
        );
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).expect("hex"));
        let root = h(ROOTS[size as usize]);
        verify_inclusion(index, size, &leaf, &want, &root).expect("verifies");
    }
}

#[test]
fn consistency_vectors_are_built_and_verified() {
    let t = reference_tree();
    for (old, new, want) in CONSISTENCY {
        let want = proof(want);
        assert_eq!(
            t.consistency(old, new).expect("proof"),
            want,
            "{old}->{new}"
        );
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        verify_consistency(old, new, &r1, &r2, &want).expect("verifies");
    }
}

fn flip(p: &[Hash], i: usize, bit: u8) -> Vec<Hash> {
    let mut q = p.to_vec();
    q[i / 32][i % 32] ^= bit;
    q
}

#[test]
fn any_changed_bit_or_size_is_rejected() {
    for (index, size, p) in INCLUSION {
        let p = proof(p);
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).expect("hex"));
        let root = h(ROOTS[size as usize]);
        for i in 0..p.len() * 32 {
            for bit in [1u8, 0x80] {
                assert!(verify_inclusion(index, size, &leaf, &flip(&p, i, bit), &root).is_err());
            }
        }
        let mut bad_leaf = leaf;
        bad_leaf[0] ^= 1;
        assert!(verify_inclusion(index, size, &bad_leaf, &p, &root).is_err());
        assert!(verify_inclusion(index + 1, size, &leaf, &p, &root).is_err());
        assert!(verify_inclusion(index, size * 2, &leaf, &p, &root).is_err());
        let mut longer = p.clone();
        longer.push(leaf);
        assert!(verify_inclusion(index, size, &leaf, &longer, &root).is_err());
    }
    for (old, new, p) in CONSISTENCY {
        let p = proof(p);
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        for i in 0..p.len() * 32 {
            assert!(verify_consistency(old, new, &r1, &r2, &flip(&p, i, 1)).is_err());
        }
        let mut bad = r1;
        bad[31] ^= 1;
        assert!(verify_consistency(old, new, &bad, &r2, &p).is_err());
        assert!(verify_consistency(old, new, &r1, &bad, &p).is_err());
        if old != new && old > 1 {
            assert!(verify_consistency(old - 1, new, &r1, &r2, &p).is_err());
        }
    }
    assert!(verify_inclusion(0, 0, &h(ROOTS[1]), &[], &h(ROOTS[0])).is_err());
    assert!(verify_consistency(5, 2, &h(ROOTS[5]), &h(ROOTS[2]), &[]).is_err());
}

#[test]
fn every_proof_of_every_small_tree_verifies() {
    let mut t = MemoryTree::default();
    for i in 0..40u64 {
        t.push(leaf_hash(&i.to_be_bytes()));
    }
    for size in 1..=40u64 {
        let root = t.root_at(size).expect("root");
        for index in 0..size {
            let leaf = leaf_hash(&index.to_be_bytes());
            let p = t.inclusion(index, size).expect("proof");
            verify_inclusion(index, size, &leaf, &p, &root).expect("inclusion");
        }
        for old in 0..=size {
            let p = t.consistency(old, size).expect("proof");
            let r1 = t.root_at(old).expect("root");
            verify_consistency(old, size, &r1, &root, &p).expect("consistency");
        }
    }
}

#[test]
fn frontier_push_names_the_nodes_that_complete() {
    let mut f = Frontier::default();
    let l = leaf_hash(b"x");
    assert_eq!(f.push(l).len(), 1);
    let done = f.push(l);
    assert_eq!(done.len(), 2);
    assert_eq!(done[1].0, NodeId { level: 1, index: 0 });
    assert_eq!(f.hashes().len(), 1);
    assert!(Frontier::from_parts(3, vec![l]).is_none());
    assert_eq!(range_nodes(0, 7).len(), 3);
    assert_eq!(range_nodes(4, 8), vec![NodeId { level: 2, index: 1 }]);
}

#[test]
fn sizes_near_the_top_of_u64_do_not_overflow() {
    for size in [u64::MAX, u64::MAX - 1, 1 << 63] {
        let ranges = inclusion_ranges(size - 1, size).expect("ranges");
        assert!(ranges.len() <= 64);
        for (a, b) in ranges {
            assert!(range_nodes(a, b).len() <= 64);
        }
        assert!(consistency_ranges(3, size).expect("ranges").len() <= 128);
    }
}
