//! Signed checkpoints: Merkle tree heads of the audit log signed with Ed25519.
//!
//! A checkpoint says "the first `tree_size` records of this log have Merkle root `root_hash`",
//! signed at `signed_at` by `signing_key`. Ed25519 rather than HMAC because a regulator or
//! auditor checks a checkpoint (and an inclusion proof built on it) with the public key alone:
//! with HMAC the verifier would need the secret key, and whoever can verify could also forge.
//! The signing key is derived from a keyring key with the HKDF purpose label
//! `audit-checkpoint-ed25519` (never the raw key), and the public key is recorded in every
//! checkpoint so that it can be pinned out of band ([`CheckpointSigner::public_key_hex`]).
//!
//! The signed message is fixed text, not JSON, so that its bytes never depend on a serializer:
//! `amlguard-audit-checkpoint/v1\n{tree_size}\n{root_hash hex}\n{signed_at}\n`.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::SecretKey;

/// HKDF purpose label of the checkpoint signing key.
const SIGNING_PURPOSE: &str = "audit-checkpoint-ed25519";

/// A signed Merkle tree head over the first `tree_size` records of a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Number of records covered (records `0..tree_size`).
    pub tree_size: u64,
    /// RFC 9162 Merkle tree hash of those records, hex.
    pub root_hash: String,
    /// When it was signed (RFC 3339, UTC).
    pub signed_at: String,
    /// Keyring key id the signing key was derived from (`name@version`); never secret.
    pub signing_key: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Ed25519 signature over [`Checkpoint::signed_message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes the signature covers.
    pub fn signed_message(tree_size: u64, root_hash: &str, signed_at: &str) -> Vec<u8> {
        format!("amlguard-audit-checkpoint/v1\n{tree_size}\n{root_hash}\n{signed_at}\n")
            .into_bytes()
    }

    /// Whether the signature is valid under the recorded public key and, when given, that key
    /// equals `trusted_public_key` (hex).
    pub fn signature_valid(&self, trusted_public_key: Option<&str>) -> bool {
        if trusted_public_key.is_some_and(|pinned| !pinned.eq_ignore_ascii_case(&self.public_key)) {
            return false;
        }
        let Some(public_key) = decode_array::<32>(&self.public_key) else {
            return false;
        };
        let Some(signature) = decode_array::<64>(&self.signature) else {
            return false;
        };
        let Ok(verifying_key) = VerifyingKey::from_bytes(&public_key) else {
            return false;
        };
        let message = Self::signed_message(self.tree_size, &self.root_hash, &self.signed_at);
        verifying_key
            .verify(&message, &Signature::from_bytes(&signature))
            .is_ok()
    }
}

pub(crate) fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// Signs checkpoints with an Ed25519 key derived from a keyring key. The signing key is
/// zeroized when dropped and never printed.
pub struct CheckpointSigner {
    key_id: String,
    signing_key: SigningKey,
}

impl CheckpointSigner {
    /// Derive the signer from a keyring key.
    pub fn new(key: &SecretKey) -> Self {
        let seed = key.derive::<32>(SIGNING_PURPOSE);
        Self {
            key_id: key.id().to_string(),
            signing_key: SigningKey::from_bytes(&seed),
        }
    }

    /// The keyring key id (`name@version`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The Ed25519 public key, hex: hand it to whoever verifies the log.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.signing_key.verifying_key().as_bytes())
    }

    /// Sign a tree head.
    pub fn sign(&self, tree_size: u64, root_hash: &[u8; 32], signed_at: &str) -> Checkpoint {
        let root_hash = hex::encode(root_hash);
        let message = Checkpoint::signed_message(tree_size, &root_hash, signed_at);
        let signature = self.signing_key.sign(&message);
        Checkpoint {
            tree_size,
            root_hash,
            signed_at: signed_at.to_owned(),
            signing_key: self.key_id.clone(),
            public_key: self.public_key_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

/// Parse a checkpoint stored as JSON (in the log's details or the witness file).
pub(crate) fn parse_checkpoint(value: &serde_json::Value) -> Result<Checkpoint> {
    serde_json::from_value(value.clone())
        .map_err(|e| Error::invalid_data(None, format!("malformed audit checkpoint: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;

    fn key(byte: u8) -> SecretKey {
        SecretKey::new(
            KeyId {
                name: "audit".into(),
                version: 1,
            },
            zeroize::Zeroizing::new([byte; 32]),
        )
    }

    /// RFC 8032 §7.1 TEST 1: checks the Ed25519 implementation we configure.
    #[test]
    fn ed25519_matches_rfc8032_test_1() {
        let seed =
            decode_array::<32>("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap();
        let signing_key = SigningKey::from_bytes(&seed);
        assert_eq!(
            hex::encode(signing_key.verifying_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(signing_key.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn checkpoints_verify_and_any_change_fails() {
        let signer = CheckpointSigner::new(&key(1));
        let checkpoint = signer.sign(5, &[7u8; 32], "2024-01-01T00:00:00Z");
        assert!(checkpoint.signature_valid(None));
        assert!(checkpoint.signature_valid(Some(&signer.public_key_hex())));
        let other = CheckpointSigner::new(&key(2));
        assert!(!checkpoint.signature_valid(Some(&other.public_key_hex())));
        let mut changed = checkpoint.clone();
        changed.tree_size = 4;
        assert!(!changed.signature_valid(None));
        let mut changed = checkpoint.clone();
        changed.root_hash = hex::encode([8u8; 32]);
        assert!(!changed.signature_valid(None));
        let mut changed = checkpoint;
        changed.public_key = other.public_key_hex();
        assert!(!changed.signature_valid(None));
        assert!(!format!("{signer:?}").contains(&hex::encode(key(1).derive::<32>(SIGNING_PURPOSE))));
    }
}
