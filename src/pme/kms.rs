//! amlguard key providers as the KMS of Parquet Modular Encryption.
//!
//! In the Parquet key tools, a *master key id* names a key in a KMS and the KMS client wraps and
//! unwraps small keys under it. Here a master key id is a key *name* in an amlguard key provider
//! ([`MasterKeys`]: the local keyring or an Azure Key Vault), and wrapping goes through the
//! [`KeyEncryptionKey`] of that key's latest version.
//!
//! The KMS returns the wrapped key as a string that the key tools store in the file's key
//! material. amlguard's string is a small JSON object that records the exact key version and
//! wrap algorithm used, so that a file stays readable after its master key is rotated:
//!
//! ```json
//! {"amlguard":1,"keyId":"local:pii-key@1","algorithm":"AES-256-KWP","wrapped":"<base64>"}
//! ```
//!
//! Unwrapping checks that the recorded key id is a version of the master key the file names
//! (a file cannot redirect an unwrap to another key), then asks the provider for exactly that
//! version. [`AmlguardKms`] counts the calls it makes and remembers what it unwrapped for its
//! own lifetime (one write or one read), so one file costs one provider call per distinct
//! wrapped key however many row groups and columns share it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parquet_key_management::kms::KmsClient;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::azure::parse_key_id;
use crate::keys::{AzureKeyVault, KeyEncryptionKey, KeyWrapAlgorithm, LocalKeyring};

/// Version of the wrapped-key string this build writes and reads.
const WRAPPED_KEY_FORMAT: u32 = 1;

/// A key provider whose key names serve as Parquet master key ids.
pub trait MasterKeys: Send + Sync {
    /// The KEK of the latest version of master key `name`, used to wrap new keys.
    fn latest(&self, name: &str) -> Result<Arc<dyn KeyEncryptionKey>>;

    /// The KEK that unwraps what was wrapped under the recorded `key_id` with `algorithm`.
    /// `key_id` must name a version of master key `name`.
    fn recorded(
        &self,
        name: &str,
        key_id: &str,
        algorithm: &str,
    ) -> Result<Arc<dyn KeyEncryptionKey>>;

    /// Where the keys live, for messages (never secret).
    fn describe(&self) -> String;
}

fn foreign_key_id(name: &str, key_id: &str) -> Error {
    Error::NoMatchingKek {
        recorded: key_id.to_owned(),
        offered: format!("master key '{name}'"),
    }
}

impl MasterKeys for LocalKeyring {
    fn latest(&self, name: &str) -> Result<Arc<dyn KeyEncryptionKey>> {
        Ok(Arc::new(self.kek(name)?))
    }

    fn recorded(
        &self,
        name: &str,
        key_id: &str,
        _algorithm: &str,
    ) -> Result<Arc<dyn KeyEncryptionKey>> {
        let kek = self.kek_for_key_id(key_id)?;
        if kek.keyring_id().name != name {
            return Err(foreign_key_id(name, key_id));
        }
        Ok(Arc::new(kek))
    }

    fn describe(&self) -> String {
        LocalKeyring::describe(self)
    }
}

impl MasterKeys for AzureKeyVault {
    fn latest(&self, name: &str) -> Result<Arc<dyn KeyEncryptionKey>> {
        Ok(Arc::new(self.kek(name, None, None)?))
    }

    fn recorded(
        &self,
        name: &str,
        key_id: &str,
        algorithm: &str,
    ) -> Result<Arc<dyn KeyEncryptionKey>> {
        let parts = parse_key_id(key_id).ok_or_else(|| foreign_key_id(name, key_id))?;
        if !parts.name.eq_ignore_ascii_case(name) {
            return Err(foreign_key_id(name, key_id));
        }
        // Version and algorithm are both known: no Key Vault call until the unwrap itself.
        let kek = self.kek(
            &parts.name,
            Some(&parts.version),
            Some(KeyWrapAlgorithm::parse(algorithm)?),
        )?;
        if !kek.accepts(key_id) {
            // Recorded for another vault: never send its wrapped key to this one.
            return Err(Error::NoMatchingKek {
                recorded: key_id.to_owned(),
                offered: kek.key_id(),
            });
        }
        Ok(Arc::new(kek))
    }

    fn describe(&self) -> String {
        format!("Azure Key Vault {}", self.url())
    }
}

/// The wrapped-key string stored in the Parquet key material.
#[derive(Serialize, Deserialize)]
struct WrappedKey {
    amlguard: u32,
    #[serde(rename = "keyId")]
    key_id: String,
    algorithm: String,
    wrapped: String,
}

/// Provider calls made by one [`AmlguardKms`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmsCalls {
    /// Keys wrapped (each one provider call: a Key Vault `wrapkey`, or a local key wrap).
    pub wraps: u64,
    /// Keys unwrapped (each one provider call; repeats of the same wrapped key are served from
    /// memory and not counted).
    pub unwraps: u64,
}

/// Unwrapped keys by (master key name, wrapped-key string).
type UnwrappedKeys = HashMap<(String, String), Zeroizing<Vec<u8>>>;

/// A Parquet key-tools KMS client backed by amlguard [`MasterKeys`].
///
/// Serves one write or one read: the KEKs it resolves and the keys it unwraps are kept (the
/// unwrapped ones zeroized on drop) only as long as it lives.
pub struct AmlguardKms {
    keys: Arc<dyn MasterKeys>,
    latest: Mutex<HashMap<String, Arc<dyn KeyEncryptionKey>>>,
    unwrapped: Mutex<UnwrappedKeys>,
    wraps: AtomicU64,
    unwraps: AtomicU64,
    /// The first error this client returned: parquet flattens some key-retrieval errors into
    /// text, so the caller takes the typed one from here.
    first_error: Mutex<Option<Error>>,
}

impl std::fmt::Debug for AmlguardKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmlguardKms")
            .field("keys", &self.keys.describe())
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl AmlguardKms {
    /// A client over `keys`.
    pub fn new(keys: Arc<dyn MasterKeys>) -> Self {
        Self {
            keys,
            latest: Mutex::new(HashMap::new()),
            unwrapped: Mutex::new(HashMap::new()),
            wraps: AtomicU64::new(0),
            unwraps: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    /// The first error a key-tools call on this client failed with, typed (taken once).
    pub fn take_error(&self) -> Option<Error> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Keep the first error and hand the key tools one that says the same.
    fn to_kms_error(&self, error: Error) -> parquet_key_management::errors::Error {
        let message = error.to_string();
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(error);
        }
        parquet_key_management::errors::Error::General(message)
    }

    /// Provider calls so far.
    pub fn calls(&self) -> KmsCalls {
        KmsCalls {
            wraps: self.wraps.load(Ordering::Relaxed),
            unwraps: self.unwraps.load(Ordering::Relaxed),
        }
    }

    fn latest_kek(&self, name: &str) -> Result<Arc<dyn KeyEncryptionKey>> {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kek) = latest.get(name) {
            return Ok(kek.clone());
        }
        // Resolved once per master key, so a Key Vault key's version is read once per file.
        let kek = self.keys.latest(name)?;
        latest.insert(name.to_owned(), kek.clone());
        Ok(kek)
    }

    /// Wrap `key` under the latest version of master key `name`; the result is the string the
    /// key tools store.
    pub fn wrap(&self, key: &[u8], name: &str) -> Result<String> {
        let kek = self.latest_kek(name)?;
        let wrapped = kek.wrap(key)?;
        self.wraps.fetch_add(1, Ordering::Relaxed);
        serde_json::to_string(&WrappedKey {
            amlguard: WRAPPED_KEY_FORMAT,
            key_id: kek.key_id(),
            algorithm: kek.wrap_algorithm().to_owned(),
            wrapped: BASE64.encode(wrapped),
        })
        .map_err(|e| Error::invalid_data(None, format!("cannot encode a wrapped key: {e}")))
    }

    /// Unwrap a string [`wrap`](Self::wrap) produced under master key `name`.
    pub fn unwrap(&self, wrapped: &str, name: &str) -> Result<Zeroizing<Vec<u8>>> {
        let memo_key = (name.to_owned(), wrapped.to_owned());
        // Held across the provider call: concurrent column readers asking for the same key
        // wait for the first call instead of each making one.
        let mut unwrapped = self.unwrapped.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = unwrapped.get(&memo_key) {
            return Ok(key.clone());
        }
        let record: WrappedKey = serde_json::from_str(wrapped)
            .ok()
            .filter(|r: &WrappedKey| r.amlguard == WRAPPED_KEY_FORMAT)
            .ok_or_else(|| {
                Error::invalid_data(
                    None,
                    format!(
                        "the key material of master key '{name}' was not wrapped by amlguard (or by a newer version of it); read the file with the KMS client that wrote it"
                    ),
                )
            })?;
        let wrapped_bytes = BASE64
            .decode(&record.wrapped)
            .map_err(|_| Error::Decryption)?;
        let kek = self
            .keys
            .recorded(name, &record.key_id, &record.algorithm)?;
        let key = kek.unwrap_recorded(&wrapped_bytes, &record.key_id, &record.algorithm)?;
        self.unwraps.fetch_add(1, Ordering::Relaxed);
        unwrapped.insert(memo_key, key.clone());
        Ok(key)
    }
}

impl KmsClient for AmlguardKms {
    fn wrap_key(
        &self,
        key_bytes: &[u8],
        master_key_identifier: &str,
    ) -> parquet_key_management::errors::Result<String> {
        self.wrap(key_bytes, master_key_identifier)
            .map_err(|e| self.to_kms_error(e))
    }

    fn unwrap_key(
        &self,
        wrapped_key: &str,
        master_key_identifier: &str,
    ) -> parquet_key_management::errors::Result<Vec<u8>> {
        // The key tools take a plain Vec; the copy kept here is zeroized when the client drops.
        self.unwrap(wrapped_key, master_key_identifier)
            .map(|key| key.to_vec())
            .map_err(|e| self.to_kms_error(e))
    }
}
