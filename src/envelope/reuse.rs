//! Encryption-side DEK reuse: one wrapped data key for a bounded run of containers.
//!
//! By default every container gets a fresh DEK, wrapped once per KEK: with a remote KEK (Key
//! Vault) that is one network call per file. [`DekReuse`] lets a batch job wrap one DEK and use
//! it for at most `max_files` containers holding at most `max_bytes` plaintext bytes in total,
//! then mint a fresh one. The container format does not change: each container still has its
//! own random salt and nonce prefix, hence its own segment key and key commitment, so splicing
//! and header swaps between containers that share a DEK are still detected. Their headers
//! carry byte-identical wrapped keys, so decrypting them all through a DEK cache costs one
//! unwrap.
//!
//! Contract:
//! - a DEK is shared only by containers wrapped under the same KEKs (same key ids, in order);
//!   asking for another KEK set retires the current DEK;
//! - a container whose plaintext length is known up front joins the current DEK only if the
//!   DEK's byte total stays within `max_bytes`; a container larger than `max_bytes`, or of
//!   unknown length, gets a DEK of its own that nothing else shares;
//! - a DEK is retired (its memory zeroized) as soon as it reaches either bound, when
//!   [`DekReuse::retire`] is called, and when the last handle is dropped;
//! - the AES-GCM usage limit ([`MAX_PLAINTEXT_BYTES_PER_DEK`]) is enforced over every container
//!   sharing a DEK, as a typed [`Error::KeyUsageLimit`]; segment indices stay per container.
//!
//! The trade-off is blast radius: whoever obtains one unwrapped DEK can read every container
//! that shares it (up to `max_files`), which is why reuse is off unless asked for.
//!
//! ```
//! use amlguard::envelope::{encrypt_bytes_with, DekReuse, EncryptOptions, EncryptionContext};
//! use amlguard::keys::LocalKeyring;
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! keyring.ensure_key("batch").unwrap();
//! let kek = keyring.kek("batch").unwrap();
//! let reuse = DekReuse::new(100, 1 << 30).unwrap();
//! let options = EncryptOptions { dek_reuse: Some(reuse.clone()), ..EncryptOptions::default() };
//! for part in 0..3 {
//!     encrypt_bytes_with(format!("part {part}").as_bytes(), &[&kek], &EncryptionContext::new(), &options).unwrap();
//! }
//! assert_eq!(reuse.stats().deks_minted, 1);
//! ```

use std::sync::{Arc, Mutex, MutexGuard};

use zeroize::Zeroizing;

use super::dek::{random_bytes, wrap_under};
use super::format::WrappedKey;
use super::segment::{DEK_LEN, MAX_PLAINTEXT_BYTES_PER_DEK};
use crate::error::{Error, Result};
use crate::keys::KeyEncryptionKey;

/// Plaintext bytes charged to one DEK by every container using it.
#[derive(Debug, Default)]
struct DekBudget {
    plaintext_bytes: Mutex<u64>,
}

impl DekBudget {
    fn lock(&self) -> MutexGuard<'_, u64> {
        // A counter cannot be left half-updated, so a poisoned lock is still consistent.
        self.plaintext_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn charge(&self, bytes: u64) -> Result<u64> {
        let mut total = self.lock();
        let next = total.saturating_add(bytes);
        if next > MAX_PLAINTEXT_BYTES_PER_DEK {
            return Err(Error::KeyUsageLimit {
                message: format!(
                    "a data key encrypts at most {MAX_PLAINTEXT_BYTES_PER_DEK} bytes (1 TiB) across the files sharing it"
                ),
            });
        }
        *total = next;
        Ok(next)
    }
}

/// One container's claim on a DEK's byte budget, held by its writer.
pub(crate) struct DekLease {
    budget: Arc<DekBudget>,
    /// Bytes charged up front (the expected plaintext length).
    reserved: u64,
    /// Bytes the container has sealed so far.
    sealed: u64,
    /// Where to report a DEK that this container pushed past `max_bytes`.
    owner: Option<(Arc<Mutex<ReuseState>>, u64, u64)>,
}

impl DekLease {
    fn own(reserved: u64) -> Result<Self> {
        let budget = Arc::new(DekBudget::default());
        budget.charge(reserved)?;
        Ok(Self {
            budget,
            reserved,
            sealed: 0,
            owner: None,
        })
    }

    /// Account for `bytes` more sealed plaintext; fails past the AES-GCM usage limit.
    pub(crate) fn charge(&mut self, bytes: u64) -> Result<()> {
        let before = self.sealed;
        self.sealed = self.sealed.saturating_add(bytes);
        // Bytes within the up-front reservation were charged when the DEK was handed out.
        let extra = self.sealed.saturating_sub(self.reserved.max(before));
        if extra > 0 {
            let total = self.budget.charge(extra)?;
            if let Some((state, generation, max_bytes)) = &self.owner {
                if total >= *max_bytes {
                    // The file grew past what was announced: no later file joins this DEK.
                    lock_state(state).retire_generation(*generation);
                }
            }
        }
        Ok(())
    }
}

/// The DEK being shared now.
struct ActiveDek {
    dek: Zeroizing<[u8; DEK_LEN]>,
    key_ids: Vec<String>,
    wrapped_keys: Vec<WrappedKey>,
    files: u64,
    budget: Arc<DekBudget>,
    generation: u64,
}

#[derive(Default)]
struct ReuseState {
    current: Option<ActiveDek>,
    deks_minted: u64,
    files: u64,
}

impl ReuseState {
    fn retire_generation(&mut self, generation: u64) {
        if self.current.as_ref().map(|a| a.generation) == Some(generation) {
            // Dropping the `Zeroizing` DEK wipes it.
            self.current = None;
        }
    }
}

fn lock_state(state: &Mutex<ReuseState>) -> MutexGuard<'_, ReuseState> {
    // Every update is a whole-value move or a counter bump, so a poisoned state is consistent.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters of a [`DekReuse`] (no key material).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DekReuseStats {
    /// DEKs minted (and wrapped) so far.
    pub deks_minted: u64,
    /// Containers started so far.
    pub files: u64,
    /// Containers using the current DEK (0 when none is active).
    pub files_on_current_dek: u64,
    /// Plaintext bytes charged to the current DEK (0 when none is active).
    pub bytes_on_current_dek: u64,
}

/// Share one DEK between at most `max_files` containers / `max_bytes` plaintext bytes.
///
/// A cheap handle: clones share the same DEK and counters, and it is safe to use from many
/// threads at once (concurrent containers join the same DEK). See the module documentation.
#[derive(Clone)]
pub struct DekReuse {
    max_files: u64,
    max_bytes: u64,
    state: Arc<Mutex<ReuseState>>,
}

impl DekReuse {
    /// Reuse each DEK for at most `max_files` containers (>= 1) and `max_bytes` plaintext bytes
    /// (1..=[`MAX_PLAINTEXT_BYTES_PER_DEK`]).
    pub fn new(max_files: u64, max_bytes: u64) -> Result<Self> {
        if max_files == 0 {
            return Err(Error::InvalidArgument {
                name: "max_files",
                message: "a DEK serves at least one file".into(),
            });
        }
        if max_bytes == 0 || max_bytes > MAX_PLAINTEXT_BYTES_PER_DEK {
            return Err(Error::InvalidArgument {
                name: "max_bytes",
                message: format!(
                    "{max_bytes} is outside 1..={MAX_PLAINTEXT_BYTES_PER_DEK} (the AES-GCM limit per data key)"
                ),
            });
        }
        Ok(Self {
            max_files,
            max_bytes,
            state: Arc::default(),
        })
    }

    /// Most containers per DEK.
    pub fn max_files(&self) -> u64 {
        self.max_files
    }

    /// Most plaintext bytes per DEK.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Counters so far.
    pub fn stats(&self) -> DekReuseStats {
        let state = lock_state(&self.state);
        let (files_on_current_dek, bytes_on_current_dek) = state
            .current
            .as_ref()
            .map_or((0, 0), |active| (active.files, *active.budget.lock()));
        DekReuseStats {
            deks_minted: state.deks_minted,
            files: state.files,
            files_on_current_dek,
            bytes_on_current_dek,
        }
    }

    /// Whether a DEK is held in memory now.
    pub fn holds_dek(&self) -> bool {
        lock_state(&self.state).current.is_some()
    }

    /// Retire the current DEK now (zeroizing it); the next container gets a fresh one.
    pub fn retire(&self) {
        lock_state(&self.state).current = None;
    }

    /// The DEK and wrapped keys for a new container of `expected_bytes` plaintext (`None`:
    /// unknown), and the lease its writer charges sealed bytes to.
    pub(crate) fn acquire(
        &self,
        keks: &[&dyn KeyEncryptionKey],
        expected_bytes: Option<u64>,
    ) -> Result<(Zeroizing<[u8; DEK_LEN]>, Vec<WrappedKey>, DekLease)> {
        let key_ids: Vec<String> = keks.iter().map(|kek| kek.key_id()).collect();
        let mut state = lock_state(&self.state);
        state.files += 1;
        let shareable = expected_bytes.filter(|bytes| *bytes <= self.max_bytes);
        let Some(expected) = shareable else {
            // Too large or of unknown length: a DEK of its own, outside the shared run.
            let dek = fresh_dek()?;
            let wrapped = wrap_under(dek.as_slice(), keks)?;
            state.deks_minted += 1;
            return Ok((dek, wrapped, DekLease::own(expected_bytes.unwrap_or(0))?));
        };
        let fits = state.current.as_ref().is_some_and(|active| {
            active.key_ids == key_ids
                && active.files < self.max_files
                && active.budget.lock().saturating_add(expected) <= self.max_bytes
        });
        if !fits {
            state.current = None;
            let dek = fresh_dek()?;
            // Wrapped under the lock: concurrent containers wait for this DEK and share it
            // rather than each minting (and wrapping remotely) one of their own.
            let wrapped_keys = wrap_under(dek.as_slice(), keks)?;
            state.deks_minted += 1;
            let generation = state.deks_minted;
            state.current = Some(ActiveDek {
                dek,
                key_ids,
                wrapped_keys,
                files: 0,
                budget: Arc::default(),
                generation,
            });
        }
        let Some(active) = state.current.as_mut() else {
            return Err(Error::invalid_data(None, "no data key is active"));
        };
        active.files += 1;
        let total = active.budget.charge(expected)?;
        let handed_out = (
            Zeroizing::new(*active.dek),
            active.wrapped_keys.clone(),
            DekLease {
                budget: Arc::clone(&active.budget),
                reserved: expected,
                sealed: 0,
                owner: Some((Arc::clone(&self.state), active.generation, self.max_bytes)),
            },
        );
        if active.files >= self.max_files || total >= self.max_bytes {
            // Spent: wipe it now rather than when the next container asks.
            state.current = None;
        }
        Ok(handed_out)
    }
}

fn fresh_dek() -> Result<Zeroizing<[u8; DEK_LEN]>> {
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    random_bytes(dek.as_mut_slice())?;
    Ok(dek)
}

impl PartialEq for DekReuse {
    /// Handles are equal when they share one state.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

impl Eq for DekReuse {}

impl std::fmt::Debug for DekReuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DekReuse")
            .field("max_files", &self.max_files)
            .field("max_bytes", &self.max_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{
        decrypt_bytes, encrypt_bytes_with, inspect, EncryptOptions, EncryptionContext,
    };
    use crate::keys::{CachingKek, DekCacheLimits, LocalKeyring};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A KEK that counts its wraps and unwraps.
    struct Counting<K> {
        inner: K,
        wraps: AtomicUsize,
        unwraps: AtomicUsize,
    }

    impl<K: KeyEncryptionKey> KeyEncryptionKey for Counting<K> {
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
        fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>> {
            self.wraps.fetch_add(1, Ordering::Relaxed);
            self.inner.wrap(dek)
        }
        fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<Zeroizing<Vec<u8>>> {
            self.unwraps.fetch_add(1, Ordering::Relaxed);
            self.inner.unwrap(wrapped, key_id)
        }
    }

    fn counting_kek(dir: &tempfile::TempDir, name: &str) -> Counting<crate::keys::LocalKek> {
        let keyring = LocalKeyring::open(dir.path()).unwrap();
        keyring.ensure_key(name).unwrap();
        Counting {
            inner: keyring.kek(name).unwrap(),
            wraps: AtomicUsize::new(0),
            unwraps: AtomicUsize::new(0),
        }
    }

    /// The key section of a container (header bytes after the bound part), per docs/format.md.
    fn key_section(blob: &[u8]) -> Vec<u8> {
        use crate::envelope::format::FIXED_LEN;
        let context_len =
            u32::from_be_bytes(blob[FIXED_LEN - 4..FIXED_LEN].try_into().unwrap()) as usize;
        let at = FIXED_LEN + context_len;
        let len = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
        blob[at + 4..at + 4 + len].to_vec()
    }

    fn with_reuse(reuse: &DekReuse) -> EncryptOptions {
        EncryptOptions {
            dek_reuse: Some(reuse.clone()),
            ..EncryptOptions::default()
        }
    }

    #[test]
    fn files_share_a_wrapped_dek_up_to_max_files_and_decrypt_with_one_unwrap_each() {
        let dir = tempfile::tempdir().unwrap();
        let kek = counting_kek(&dir, "batch");
        let context = EncryptionContext::new();
        let reuse = DekReuse::new(3, 1 << 20).unwrap();
        let blobs: Vec<Vec<u8>> = (0..7)
            .map(|i| {
                let data = vec![i as u8; 1000 + i];
                encrypt_bytes_with(&data, &[&kek], &context, &with_reuse(&reuse)).unwrap()
            })
            .collect();
        // Files 0-2, 3-5 and 6 share a wrapped DEK; nothing is shared across groups.
        let sections: Vec<Vec<u8>> = blobs.iter().map(|b| key_section(b)).collect();
        for (i, a) in sections.iter().enumerate() {
            for (j, b) in sections.iter().enumerate() {
                assert_eq!(a == b, i / 3 == j / 3, "files {i} and {j}");
            }
        }
        assert_eq!(kek.wraps.load(Ordering::Relaxed), 3);
        let stats = reuse.stats();
        assert_eq!((stats.deks_minted, stats.files), (3, 7));
        assert_eq!(stats.files_on_current_dek, 1);
        // Each container still has its own salt and nonce prefix, hence its own segment key.
        let salts: std::collections::HashSet<&[u8]> = blobs.iter().map(|b| &b[10..49]).collect();
        assert_eq!(salts.len(), 7);

        let cached = CachingKek::new(kek, DekCacheLimits::default());
        for (i, blob) in blobs.iter().enumerate() {
            let plain = decrypt_bytes(blob, &[&cached], &context).unwrap();
            assert_eq!(plain.as_slice(), vec![i as u8; 1000 + i].as_slice());
        }
        assert_eq!(cached.inner().unwraps.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn max_bytes_bounds_the_plaintext_under_one_dek() {
        let dir = tempfile::tempdir().unwrap();
        let kek = counting_kek(&dir, "bytes");
        let context = EncryptionContext::new();
        let reuse = DekReuse::new(100, 10_000).unwrap();
        let sizes = [4_000usize, 4_000, 4_000, 2_000, 20_000, 1];
        let blobs: Vec<Vec<u8>> = sizes
            .iter()
            .map(|n| encrypt_bytes_with(&vec![7u8; *n], &[&kek], &context, &with_reuse(&reuse)))
            .collect::<Result<_>>()
            .unwrap();
        let s: Vec<Vec<u8>> = blobs.iter().map(|b| key_section(b)).collect();
        // 4000 + 4000 fit; a third 4000 would make 12000 > 10000: fresh DEK, which 2000 joins.
        assert!(s[0] == s[1] && s[1] != s[2] && s[2] == s[3]);
        // Larger than max_bytes: a DEK of its own; the run it interrupted goes on afterwards.
        assert!(s[4] != s[3] && s[4] != s[5]);
        assert_eq!(s[5], s[3]);
        assert_eq!(reuse.stats().deks_minted, 3);
        assert_eq!(reuse.stats().bytes_on_current_dek, 6_001);
    }

    #[test]
    fn unknown_lengths_and_other_keks_do_not_share() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (counting_kek(&dir, "a"), counting_kek(&dir, "b"));
        let context = EncryptionContext::new();
        let reuse = DekReuse::new(10, 1 << 20).unwrap();
        let options = with_reuse(&reuse);
        let seal = |kek: &dyn KeyEncryptionKey| {
            encrypt_bytes_with(b"x", &[kek], &context, &options).unwrap()
        };
        let (a1, b1, a2) = (seal(&a), seal(&b), seal(&a));
        assert_ne!(key_section(&a1), key_section(&b1));
        assert_ne!(
            key_section(&a1),
            key_section(&a2),
            "switching KEKs retires the DEK"
        );
        let a3 = seal(&a);
        assert_eq!(key_section(&a2), key_section(&a3));

        let mut writer =
            crate::envelope::EncryptingWriter::new(Vec::new(), &[&a], &context, &options).unwrap();
        std::io::Write::write_all(&mut writer, b"streamed").unwrap();
        let streamed = writer.finish().unwrap();
        assert_ne!(
            key_section(&streamed),
            key_section(&a3),
            "unknown length: own DEK"
        );
        assert_eq!(key_section(&seal(&a)), key_section(&a3));
        assert_eq!(
            decrypt_bytes(&streamed, &[&a], &context)
                .unwrap()
                .as_slice(),
            b"streamed"
        );
    }

    #[test]
    fn spent_and_retired_deks_are_dropped_and_debug_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let kek = counting_kek(&dir, "k");
        let context = EncryptionContext::new();
        let reuse = DekReuse::new(2, 1 << 20).unwrap();
        encrypt_bytes_with(b"1", &[&kek], &context, &with_reuse(&reuse)).unwrap();
        assert!(reuse.holds_dek());
        let debug = format!("{reuse:?}");
        let dek = lock_state(&reuse.state)
            .current
            .as_ref()
            .map(|a| *a.dek)
            .unwrap();
        assert!(!debug.contains(&hex::encode(dek)) && !debug.contains(&format!("{dek:?}")));
        encrypt_bytes_with(b"2", &[&kek], &context, &with_reuse(&reuse)).unwrap();
        assert!(
            !reuse.holds_dek(),
            "retired as soon as max_files is reached"
        );
        encrypt_bytes_with(b"3", &[&kek], &context, &with_reuse(&reuse)).unwrap();
        reuse.retire();
        assert!(!reuse.holds_dek());
        assert!(debug.contains("max_files: 2") && debug.contains("files_on_current_dek: 1"));
        assert!(DekReuse::new(0, 1).is_err());
        assert!(DekReuse::new(1, 0).is_err());
        assert!(DekReuse::new(1, MAX_PLAINTEXT_BYTES_PER_DEK + 1).is_err());
    }

    #[test]
    fn the_usage_limit_spans_every_file_sharing_a_dek() {
        let reuse = DekReuse::new(10, MAX_PLAINTEXT_BYTES_PER_DEK).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kek = counting_kek(&dir, "limit");
        let (_, _, mut first) = reuse
            .acquire(&[&kek], Some(MAX_PLAINTEXT_BYTES_PER_DEK - 10))
            .unwrap();
        let (_, _, mut second) = reuse.acquire(&[&kek], Some(10)).unwrap();
        assert_eq!(reuse.stats().deks_minted, 1);
        first.charge(MAX_PLAINTEXT_BYTES_PER_DEK - 10).unwrap();
        second.charge(10).unwrap();
        // The second file turns out longer than announced: past the limit of the shared DEK.
        assert!(matches!(second.charge(1), Err(Error::KeyUsageLimit { .. })));
        assert!(!reuse.holds_dek());
    }

    #[test]
    fn files_are_found_by_inspect_and_decrypt_after_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
        keyring.ensure_key("files").unwrap();
        let kek = keyring.kek("files").unwrap();
        let reuse = DekReuse::new(5, 1 << 30).unwrap();
        let context = EncryptionContext::new();
        for i in 0..3 {
            let (plain, sealed) = (
                dir.path().join(format!("{i}.bin")),
                dir.path().join(format!("{i}.amlg")),
            );
            std::fs::write(&plain, vec![i as u8; 70_000]).unwrap();
            crate::envelope::encrypt_file(&plain, &sealed, &[&kek], &context, &with_reuse(&reuse))
                .unwrap();
            assert_eq!(inspect(&sealed).unwrap().plaintext_len_bytes, Some(70_000));
        }
        let stats = reuse.stats();
        assert_eq!((stats.deks_minted, stats.files_on_current_dek), (1, 3));
        assert_eq!(stats.bytes_on_current_dek, 210_000);
    }
}
