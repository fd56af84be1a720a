//! Merkle tree hashes and inclusion proofs in the style of RFC 9162 (Certificate Transparency v2).
//!
//! Leaves are hashed as `SHA-256(0x00 || leaf)` and interior nodes as `SHA-256(0x01 || left ||
//! right)`, with the tree split at the largest power of two below its size (RFC 9162 §2.1.1).
//! The different prefixes keep a leaf from ever passing for an interior node (second-preimage
//! resistance). An inclusion proof (§2.1.3) is the list of sibling hashes from a leaf to the root;
//! [`verify_inclusion`] follows §2.1.3.2 exactly, so any RFC 9162 verifier can check our proofs.
//!
//! ```
//! use amlguard::audit::merkle::{inclusion_path, leaf_hash, root_hash, verify_inclusion};
//! let leaves: Vec<[u8; 32]> = [&b"a"[..], b"b", b"c"].iter().map(|l| leaf_hash(l)).collect();
//! let root = root_hash(&leaves);
//! let path = inclusion_path(1, &leaves).unwrap();
//! assert!(verify_inclusion(&leaves[1], 1, 3, &path, &root));
//! ```

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of a list of leaf hashes (`SHA-256("")` for the empty tree).
pub fn root_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root_hash(&leaves[..k]), &root_hash(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1), or `None` when the
/// index is outside the tree.
pub fn inclusion_path(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    collect_path(index, leaves, &mut path);
    Some(path)
}

fn collect_path(index: usize, leaves: &[Hash], path: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if index < k {
        collect_path(index, &leaves[..k], path);
        path.push(root_hash(&leaves[k..]));
    } else {
        collect_path(index - k, &leaves[k..], path);
        path.push(root_hash(&leaves[..k]));
    }
}

/// Check that `leaf` (a leaf hash) sits at `index` in a tree of `tree_size` leaves with root
/// `root`, given the audit path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    path: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    let mut running = *leaf;
    for sibling in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            running = node_hash(sibling, &running);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            running = node_hash(&running, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && running == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of the Certificate Transparency reference test vectors (RFC 6962 / 9162 share
    /// the tree hash), as used by the Go and C++ CT implementations.
    fn reference_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| leaf_hash(&hex::decode(h).unwrap()))
        .collect()
    }

    #[test]
    fn roots_match_the_reference_vectors() {
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = reference_leaves();
        for (size, root) in expected.iter().enumerate() {
            assert_eq!(
                hex::encode(root_hash(&leaves[..size + 1])),
                *root,
                "size {}",
                size + 1
            );
        }
        assert_eq!(
            hex::encode(root_hash(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn inclusion_path_matches_the_reference_vector() {
        let leaves = reference_leaves();
        let path: Vec<String> = inclusion_path(0, &leaves)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(
            path,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
    }

    #[test]
    fn every_leaf_of_every_tree_size_verifies_and_tampering_fails() {
        let leaves: Vec<Hash> = (0u32..37).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 1..=leaves.len() {
            let tree = &leaves[..size];
            let root = root_hash(tree);
            for index in 0..size {
                let path = inclusion_path(index, tree).unwrap();
                let (i, n) = (index as u64, size as u64);
                assert!(verify_inclusion(&tree[index], i, n, &path, &root));
                // Wrong leaf, wrong index, wrong size, wrong root, cut path: all rejected.
                let other = tree[(index + 1) % size];
                if size > 1 {
                    assert!(!verify_inclusion(&other, i, n, &path, &root));
                    assert!(!verify_inclusion(
                        &tree[index],
                        (i + 1) % n,
                        n,
                        &path,
                        &root
                    ));
                }
                // (A path may also fit a larger tree_size with this same root; a checkpoint's
                // signature binds size and root together, which is what proofs rely on.)
                assert!(!verify_inclusion(
                    &tree[index],
                    i,
                    n,
                    &path,
                    &leaf_hash(b"x")
                ));
                if !path.is_empty() {
                    assert!(!verify_inclusion(&tree[index], i, n, &path[1..], &root));
                }
            }
            assert!(inclusion_path(size, tree).is_none());
        }
    }
}
