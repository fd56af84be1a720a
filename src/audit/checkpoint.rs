//! Signed checkpoints: Merkle tree heads of the audit log, signed with Ed25519 (the default) or
//! HMAC-SHA256.
//!
//! A checkpoint says "the first `tree_size` records of this log have Merkle root `root_hash`",
//! signed at `signed_at` by `signing_key`. Ed25519 is the default because a regulator or
//! auditor checks a checkpoint (and an inclusion proof built on it) with the public key alone:
//! with HMAC the verifier needs the secret key, and whoever can verify can also forge. HMAC
//! ([`SignatureAlgorithm::HmacSha256`]) suits a log that only its owner verifies (one keyring,
//! or a key shared inside one organisation); verifying then needs the keyring holding the exact
//! key version the checkpoint names, and its absence is [`Error::KeyNotFound`], never a pass.
//!
//! Either key is derived from a keyring key with an HKDF purpose label
//! (`audit-checkpoint-ed25519`, `audit-checkpoint-hmac-sha256`; never the raw key). Every
//! checkpoint records a non-secret identifier of it in `public_key` so that it can be pinned
//! out of band ([`CheckpointSigner::public_key_hex`]): the Ed25519 public key, or for HMAC the
//! key's fingerprint (HMAC-SHA256 of a fixed label under the checkpoint key).
//!
//! The signed message is fixed text, not JSON, so that its bytes never depend on a serializer:
//! `amlguard-audit-checkpoint/v1\n{tree_size}\n{root_hash hex}\n{signed_at}\n`.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{LocalKeyring, SecretKey};

/// HKDF purpose label of the Ed25519 checkpoint signing key.
const SIGNING_PURPOSE: &str = "audit-checkpoint-ed25519";
/// HKDF purpose label of the HMAC-SHA256 checkpoint key.
const HMAC_PURPOSE: &str = "audit-checkpoint-hmac-sha256";
/// What the HMAC key's fingerprint is the MAC of.
const HMAC_FINGERPRINT_LABEL: &[u8] = b"amlguard-audit-checkpoint-key-fingerprint/v1";

/// How checkpoints are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureAlgorithm {
    /// Ed25519: verified with the public key alone.
    #[default]
    Ed25519,
    /// HMAC-SHA256: verifying needs the keyring key itself.
    HmacSha256,
}

impl SignatureAlgorithm {
    /// The name used in checkpoints and options (`ed25519`, `hmac-sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::HmacSha256 => "hmac-sha256",
        }
    }

    fn is_ed25519(&self) -> bool {
        *self == Self::Ed25519
    }
}

impl std::str::FromStr for SignatureAlgorithm {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "ed25519" => Ok(Self::Ed25519),
            "hmac-sha256" => Ok(Self::HmacSha256),
            _ => Err(Error::InvalidArgument {
                name: "checkpoint_signature",
                message: format!("use 'ed25519' or 'hmac-sha256', not '{text}'"),
            }),
        }
    }
}

impl std::fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Ed25519 public key, or the HMAC key's fingerprint, hex.
    pub public_key: String,
    /// Signature (Ed25519) or MAC (HMAC-SHA256) over [`Checkpoint::signed_message`], hex.
    pub signature: String,
    /// How it is signed; left out of the JSON for Ed25519, as in logs older than HMAC.
    #[serde(default, skip_serializing_if = "SignatureAlgorithm::is_ed25519")]
    pub algorithm: SignatureAlgorithm,
}

impl Checkpoint {
    /// The exact bytes the signature covers.
    pub fn signed_message(tree_size: u64, root_hash: &str, signed_at: &str) -> Vec<u8> {
        format!("amlguard-audit-checkpoint/v1\n{tree_size}\n{root_hash}\n{signed_at}\n")
            .into_bytes()
    }

    /// Whether an Ed25519 signature is valid under the recorded public key and, when given,
    /// that key equals `trusted_public_key` (hex). An HMAC checkpoint is never valid here:
    /// checking it needs the key ([`Checkpoint::verify_signature`]).
    pub fn signature_valid(&self, trusted_public_key: Option<&str>) -> bool {
        if trusted_public_key.is_some_and(|pinned| !pinned.eq_ignore_ascii_case(&self.public_key)) {
            return false;
        }
        if self.algorithm != SignatureAlgorithm::Ed25519 {
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

    /// Whether the signature is valid, by either algorithm: Ed25519 as
    /// [`Checkpoint::signature_valid`]; HMAC-SHA256 with the exact key version the checkpoint
    /// names, taken from `keyring` (its fingerprint must equal `trusted_public_key` when
    /// given). An HMAC checkpoint without a keyring, or whose key the keyring lacks, is
    /// [`Error::KeyNotFound`].
    pub fn verify_signature(
        &self,
        trusted_public_key: Option<&str>,
        keyring: Option<&LocalKeyring>,
    ) -> Result<bool> {
        if self.algorithm == SignatureAlgorithm::Ed25519 {
            return Ok(self.signature_valid(trusted_public_key));
        }
        if trusted_public_key.is_some_and(|pinned| !pinned.eq_ignore_ascii_case(&self.public_key)) {
            return Ok(false);
        }
        let keyring = keyring.ok_or_else(|| Error::KeyNotFound {
            name: self.signing_key.clone(),
            provider: "the keys given (none: HMAC-SHA256 checkpoints are verified with the keyring holding their key)".into(),
        })?;
        let signer = CheckpointSigner::with_algorithm(
            &keyring.key_by_reference(&self.signing_key)?,
            SignatureAlgorithm::HmacSha256,
        )?;
        if !signer
            .public_key_hex()
            .eq_ignore_ascii_case(&self.public_key)
        {
            return Ok(false);
        }
        let Ok(tag) = hex::decode(&self.signature) else {
            return Ok(false);
        };
        let message = Self::signed_message(self.tree_size, &self.root_hash, &self.signed_at);
        Ok(signer.mac_checks(&message, &tag))
    }
}

pub(crate) fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// The checkpoint key, by algorithm.
enum SignerKey {
    Ed25519(SigningKey),
    HmacSha256 {
        key: Zeroizing<[u8; 32]>,
        fingerprint: String,
    },
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| Error::invalid_data(None, "HMAC key has an invalid length"))?;
    mac.update(message);
    Ok(mac)
}

/// Signs checkpoints with a key derived from a keyring key (Ed25519 or HMAC-SHA256). The key is
/// zeroized when dropped and never printed.
pub struct CheckpointSigner {
    key_id: String,
    key: SignerKey,
}

impl CheckpointSigner {
    /// An Ed25519 signer derived from a keyring key.
    pub fn new(key: &SecretKey) -> Self {
        Self {
            key_id: key.id().to_string(),
            key: SignerKey::Ed25519(SigningKey::from_bytes(&key.derive::<32>(SIGNING_PURPOSE))),
        }
    }

    /// A signer of `algorithm` derived from a keyring key.
    pub fn with_algorithm(key: &SecretKey, algorithm: SignatureAlgorithm) -> Result<Self> {
        match algorithm {
            SignatureAlgorithm::Ed25519 => Ok(Self::new(key)),
            SignatureAlgorithm::HmacSha256 => {
                let mac_key = key.derive::<32>(HMAC_PURPOSE);
                let fingerprint = hmac_sha256(mac_key.as_slice(), HMAC_FINGERPRINT_LABEL)?
                    .finalize()
                    .into_bytes();
                Ok(Self {
                    key_id: key.id().to_string(),
                    key: SignerKey::HmacSha256 {
                        key: mac_key,
                        fingerprint: hex::encode(fingerprint),
                    },
                })
            }
        }
    }

    /// The keyring key id (`name@version`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// How this signer signs.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self.key {
            SignerKey::Ed25519(_) => SignatureAlgorithm::Ed25519,
            SignerKey::HmacSha256 { .. } => SignatureAlgorithm::HmacSha256,
        }
    }

    /// What identifies the key without revealing it, hex: the Ed25519 public key (hand it to
    /// whoever verifies the log), or the HMAC key's fingerprint.
    pub fn public_key_hex(&self) -> String {
        match &self.key {
            SignerKey::Ed25519(signing_key) => hex::encode(signing_key.verifying_key().as_bytes()),
            SignerKey::HmacSha256 { fingerprint, .. } => fingerprint.clone(),
        }
    }

    /// Whether `tag` is the HMAC of `message` under this signer's key, compared in constant
    /// time (never, for an Ed25519 signer).
    fn mac_checks(&self, message: &[u8], tag: &[u8]) -> bool {
        match &self.key {
            SignerKey::HmacSha256 { key, .. } => {
                hmac_sha256(key.as_slice(), message).is_ok_and(|mac| mac.verify_slice(tag).is_ok())
            }
            SignerKey::Ed25519(_) => false,
        }
    }

    /// Sign a tree head.
    pub fn sign(
        &self,
        tree_size: u64,
        root_hash: &[u8; 32],
        signed_at: &str,
    ) -> Result<Checkpoint> {
        let root_hash = hex::encode(root_hash);
        let message = Checkpoint::signed_message(tree_size, &root_hash, signed_at);
        let signature = match &self.key {
            SignerKey::Ed25519(signing_key) => hex::encode(signing_key.sign(&message).to_bytes()),
            SignerKey::HmacSha256 { key, .. } => hex::encode(
                hmac_sha256(key.as_slice(), &message)?
                    .finalize()
                    .into_bytes(),
            ),
        };
        Ok(Checkpoint {
            tree_size,
            root_hash,
            signed_at: signed_at.to_owned(),
            signing_key: self.key_id.clone(),
            public_key: self.public_key_hex(),
            signature,
            algorithm: self.algorithm(),
        })
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm())
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
        let checkpoint = signer.sign(5, &[7u8; 32], "2024-01-01T00:00:00Z").unwrap();
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

    /// RFC 4231 §4.2 test case 1: checks the HMAC-SHA256 implementation we configure.
    #[test]
    fn hmac_sha256_matches_rfc4231_test_case_1() {
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There").unwrap().finalize();
        assert_eq!(
            hex::encode(mac.into_bytes()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn hmac_checkpoints_verify_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
        keyring.ensure_key("audit").unwrap();
        let secret = keyring.key("audit").unwrap();
        let signer =
            CheckpointSigner::with_algorithm(&secret, SignatureAlgorithm::HmacSha256).unwrap();
        let checkpoint = signer.sign(5, &[7u8; 32], "2024-01-01T00:00:00Z").unwrap();
        assert_eq!(checkpoint.algorithm, SignatureAlgorithm::HmacSha256);
        assert_eq!(checkpoint.signing_key, "audit@1");
        let json = serde_json::to_value(&checkpoint).unwrap();
        assert_eq!(json["algorithm"], "hmac-sha256");
        assert_eq!(parse_checkpoint(&json).unwrap(), checkpoint);
        assert!(checkpoint.verify_signature(None, Some(&keyring)).unwrap());
        let fingerprint = signer.public_key_hex();
        assert!(checkpoint
            .verify_signature(Some(&fingerprint), Some(&keyring))
            .unwrap());
        assert!(!checkpoint
            .verify_signature(Some(&hex::encode([1u8; 32])), Some(&keyring))
            .unwrap());
        // The public-key-only check never passes an HMAC checkpoint.
        assert!(!checkpoint.signature_valid(None));
        let mut changed = checkpoint.clone();
        changed.tree_size = 4;
        assert!(!changed.verify_signature(None, Some(&keyring)).unwrap());
        let mut changed = checkpoint.clone();
        changed.signature = hex::encode([0u8; 32]);
        assert!(!changed.verify_signature(None, Some(&keyring)).unwrap());
        // Without the key: a typed error, not a pass nor a plain failure.
        assert!(matches!(
            checkpoint.verify_signature(None, None),
            Err(Error::KeyNotFound { .. })
        ));
        let elsewhere = LocalKeyring::open(dir.path().join("other")).unwrap();
        assert!(matches!(
            checkpoint.verify_signature(None, Some(&elsewhere)),
            Err(Error::KeyNotFound { .. })
        ));
        // Another key of the same name does not verify it.
        elsewhere.ensure_key("audit").unwrap();
        assert!(!checkpoint.verify_signature(None, Some(&elsewhere)).unwrap());
        let mac_key = hex::encode(secret.derive::<32>(HMAC_PURPOSE));
        assert!(!format!("{signer:?}").contains(&mac_key));
        assert!(!json.to_string().contains(&mac_key));
        // An Ed25519 checkpoint keeps its old JSON form: no algorithm member.
        let ed25519 = CheckpointSigner::new(&secret)
            .sign(5, &[7u8; 32], "t")
            .unwrap();
        assert!(serde_json::to_value(&ed25519)
            .unwrap()
            .get("algorithm")
            .is_none());
        assert!(ed25519.verify_signature(None, None).unwrap());
    }
}
