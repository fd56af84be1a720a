//! Key material and key providers: keyring keys, key-encryption keys ([`KeyEncryptionKey`]) and
//! the DEK cache.
//!
//! [`SecretKey`] holds 256 bits of key material, is zeroized on drop and never prints its bytes.
//! Operators never use a keyring key directly: each derives its own subkey with HKDF-SHA256 and a
//! purpose label ([`SecretKey::derive`]), so one named key can serve several operators without
//! their outputs being related.
//!
//! ```
//! use amlguard::keys::LocalKeyring;
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! keyring.ensure_key("pseudonyms").unwrap();
//! let key = keyring.key("pseudonyms").unwrap();
//! assert_eq!(key.id().to_string(), "pseudonyms@1");
//! ```

pub mod azure;
mod kek;
mod keyring;

pub use azure::{AzureKek, AzureKeyVault, AzureKeyVaultOptions, KeyWrapAlgorithm};
pub use kek::{
    CachingKek, DekCache, DekCacheLimits, DeletedKeyRetention, KeyEncryptionKey, LocalKek,
    AES_256_KWP, LOCAL_PROVIDER,
};
pub(crate) use keyring::parse_key_reference;
pub use keyring::{KeyId, LocalKeyring};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of every keyring key, in bytes.
pub const KEY_LEN_BYTES: usize = 32;

/// 256 bits of secret key material with its id. Zeroized on drop; `Debug` shows only the id.
pub struct SecretKey {
    id: KeyId,
    material: Zeroizing<[u8; KEY_LEN_BYTES]>,
}

impl SecretKey {
    pub(crate) fn new(id: KeyId, material: Zeroizing<[u8; KEY_LEN_BYTES]>) -> Self {
        Self { id, material }
    }

    /// The key's id (name and version); never secret.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Derive a subkey for one purpose with HKDF-SHA256 (RFC 5869). The purpose label separates
    /// domains: the hash, tokenize, FPE and date-shift operators each get unrelated keys.
    pub(crate) fn derive<const N: usize>(&self, purpose: &str) -> Zeroizing<[u8; N]> {
        let hkdf = Hkdf::<Sha256>::new(Some(b"amlguard/v1"), self.material.as_slice());
        let mut out = Zeroizing::new([0u8; N]);
        // N is at most 255 * 32 bytes for every caller, so expand cannot fail.
        if hkdf.expand(purpose.as_bytes(), out.as_mut_slice()).is_err() {
            unreachable!("HKDF output length is a small compile-time constant");
        }
        out
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Anything that resolves key references to keys: the local keyring now, cloud providers later.
pub trait KeyProvider: Send + Sync {
    /// The key for a reference (`name` for the latest version, `name@version` for one version).
    fn key(&self, reference: &str) -> crate::error::Result<SecretKey>;
}

impl KeyProvider for LocalKeyring {
    fn key(&self, reference: &str) -> crate::error::Result<SecretKey> {
        self.key_by_reference(reference)
    }
}
