//! The amlguard encrypted container: envelope encryption of bytes and files.
//!
//! A container is a versioned header followed by AES-256-GCM segments in the style of Tink's
//! streaming AEAD. Each container has its own random data key (DEK), wrapped under one or more
//! key-encryption keys ([`KeyEncryptionKey`]); any one of them decrypts. The segment key is
//! derived from the DEK, a random salt and a hash of the header's immutable part, and the header
//! carries a key commitment, so:
//!
//! - tampering with any bound header field, segment, or tag fails authentication;
//! - truncation, reordering, duplication, splicing segments between containers and moving a
//!   header onto another container's payload are all detected (per-segment nonces carry the
//!   segment index and a final-segment flag; each container has its own key);
//! - a container decrypts under at most one DEK (key commitment);
//! - the encryption context (non-secret strings such as dataset or purpose) is bound to the data.
//!
//! The list of wrapped DEKs is deliberately *not* part of the bound header, so that [`rewrap`]
//! can replace it (key rotation) without touching the payload. It is authenticated instead by a
//! header tag, an HMAC keyed from the DEK that rewrap recomputes; the commitment ties any wrapped
//! key that unwraps to the one DEK the payload was encrypted under. `docs/format.md` specifies
//! the bytes precisely enough to decrypt with any AES-GCM and HKDF library.
//!
//! Every authentication failure (tag, commitment, context) is the opaque [`Error::Decryption`];
//! structural problems get their own errors ([`Error::NotEnvelope`],
//! [`Error::UnsupportedFormatVersion`], [`Error::UnsupportedSuite`], [`Error::TruncatedHeader`],
//! [`Error::MalformedHeader`], [`Error::NoMatchingKek`]). File decryption writes to a temporary
//! file that is renamed into place only after every segment has verified.
//!
//! Local files are encrypted and decrypted with positional I/O, each worker thread handling
//! every n-th segment in place in one buffer of its own (`positional.rs`); blobs, pipes and the
//! [`EncryptingWriter`] / [`DecryptingReader`] types stream.
//!
//! ```
//! use amlguard::envelope::{decrypt_bytes, encrypt_bytes, EncryptionContext};
//! use amlguard::keys::{KeyEncryptionKey, LocalKeyring};
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! keyring.ensure_key("training-data").unwrap();
//! let kek = keyring.kek("training-data").unwrap();
//! let context = EncryptionContext::from([("dataset".to_string(), "patients".to_string())]);
//! let blob = encrypt_bytes(b"secret rows", &[&kek], &context).unwrap();
//! let plain = decrypt_bytes(&blob, &[&kek], &context).unwrap();
//! assert_eq!(plain.as_slice(), b"secret rows");
//! ```

mod dek;
mod file;
mod format;
#[cfg(unix)]
mod positional;
mod reuse;
mod segment;
mod stream;
#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use file::{decrypt_file, encrypt_file, inspect, rewrap, EnvelopeReport};
pub use format::{
    EncryptionContext, DEFAULT_SEGMENT_SIZE_BYTES, FORMAT_VERSION, MAX_CONTEXT_BYTES,
    MAX_KEY_SECTION_BYTES, MAX_SEGMENT_SIZE_BYTES, MAX_WRAPPED_KEYS, MIN_SEGMENT_SIZE_BYTES,
};
#[cfg(unix)]
pub(crate) use positional::{
    decrypt_file as decrypt_local_file, encrypt_file as encrypt_local_file, is_regular_file,
};
pub use reuse::{DekReuse, DekReuseStats};
pub use segment::{MAX_PLAINTEXT_BYTES_PER_DEK, MAX_SEGMENTS_PER_DEK, TAG_LEN};
#[cfg(feature = "python")]
pub(crate) use stream::from_io as from_io_error;
pub(crate) use stream::{pump, to_io as to_io_error};
pub use stream::{DecryptingReader, EncryptingWriter};

use crate::error::{Error, Result};
use crate::keys::KeyEncryptionKey;
use crate::parallel::RunControl;
use format::{ParsedHeader, SUITE_AES_256_GCM_HKDF_SHA256_NAME};
use segment::{Layout, SegmentCipher};

/// Knobs for encryption.
#[derive(Clone, Debug)]
pub struct EncryptOptions {
    /// Plaintext bytes per segment ([`MIN_SEGMENT_SIZE_BYTES`]..=[`MAX_SEGMENT_SIZE_BYTES`]).
    pub segment_size_bytes: usize,
    /// Worker threads (`None`: one per CPU). Memory use is about `segment_size_bytes x threads`.
    pub threads: Option<usize>,
    /// Share one DEK between several containers (`None`: a fresh DEK per container).
    pub dek_reuse: Option<DekReuse>,
    /// Progress (plaintext bytes sealed) and cancellation, checked between segment batches.
    pub control: Option<Arc<RunControl>>,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        Self {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            threads: None,
            dek_reuse: None,
            control: None,
        }
    }
}

/// Knobs for decryption.
#[derive(Clone, Debug, Default)]
pub struct DecryptOptions {
    /// Worker threads (`None`: one per CPU). Memory use is about `segment_size x threads`.
    pub threads: Option<usize>,
    /// Progress (plaintext bytes verified) and cancellation, checked between segment batches.
    pub control: Option<Arc<RunControl>>,
}

/// Publish `more` bytes done (of `total`, when known) to `control`, if any, and stop if the run
/// was cancelled. Progress counts bytes in [`RunControl`]'s row counters.
pub(crate) fn report_progress(
    control: Option<&RunControl>,
    more: u64,
    total: Option<u64>,
) -> Result<()> {
    if let Some(control) = control {
        if let Some(total) = total {
            control.set_rows_total(total);
        }
        control.add_rows_done(more);
        control.check()?;
    }
    Ok(())
}

/// A `decrypt_all_to` progress callback (cumulative bytes) that reports to `options.control`.
pub(crate) fn decrypt_progress(
    options: &DecryptOptions,
    total: u64,
) -> impl FnMut(u64) -> Result<()> + '_ {
    if let Some(control) = &options.control {
        control.set_rows_total(total);
    }
    let mut reported = 0u64;
    move |done| {
        let more = done.saturating_sub(reported);
        reported = done;
        report_progress(options.control.as_deref(), more, Some(total))
    }
}

/// One wrapped copy of a container's DEK, as [`inspect`] shows it (no key bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKeyInfo {
    /// Key provider (`local`, ...).
    pub provider: String,
    /// Provider-qualified key id with version, e.g. `local:training-data@2`.
    pub key_id: String,
    /// Wrapping algorithm, e.g. `AES-256-KWP`.
    pub wrap_algorithm: String,
    /// Length of the wrapped key, in bytes.
    pub wrapped_len_bytes: usize,
}

/// Facts from a container's header. Never secret: no key material, salt or nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Format version.
    pub format_version: u8,
    /// Algorithm suite name.
    pub suite: String,
    /// Plaintext bytes per segment.
    pub segment_size_bytes: u32,
    /// The encryption context.
    pub context: EncryptionContext,
    /// The wrapped DEKs, in header order.
    pub wrapped_keys: Vec<WrappedKeyInfo>,
    /// Header length: the payload starts at this offset.
    pub header_len_bytes: u64,
    /// Number of segments, from the payload length (`None` when unknown or impossible).
    pub segments: Option<u64>,
    /// Plaintext length implied by the payload length (`None` when unknown or impossible).
    /// Unauthenticated in [`inspect`]; authenticated by [`DecryptingReader`].
    pub plaintext_len_bytes: Option<u64>,
}

impl HeaderInfo {
    fn from_parsed(parsed: &ParsedHeader, layout: Option<Layout>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            suite: SUITE_AES_256_GCM_HKDF_SHA256_NAME.to_owned(),
            segment_size_bytes: parsed.header.segment_size,
            context: parsed.header.context.clone(),
            wrapped_keys: parsed
                .header
                .wrapped_keys
                .iter()
                .map(|k| WrappedKeyInfo {
                    provider: k.provider.clone(),
                    key_id: k.key_id.clone(),
                    wrap_algorithm: k.wrap_algorithm.clone(),
                    wrapped_len_bytes: k.wrapped.len(),
                })
                .collect(),
            header_len_bytes: parsed.len,
            segments: layout.map(|l| l.segments),
            plaintext_len_bytes: layout.map(|l| l.plaintext_len()),
        }
    }

    /// The recorded key ids.
    pub fn key_ids(&self) -> Vec<String> {
        self.wrapped_keys.iter().map(|k| k.key_id.clone()).collect()
    }
}

/// Encrypt `plaintext` into a container whose DEK is wrapped under every KEK in `keks`.
pub fn encrypt_bytes(
    plaintext: &[u8],
    keks: &[&dyn KeyEncryptionKey],
    context: &EncryptionContext,
) -> Result<Vec<u8>> {
    encrypt_bytes_with(plaintext, keks, context, &EncryptOptions::default())
}

/// [`encrypt_bytes`] with explicit options.
pub fn encrypt_bytes_with(
    plaintext: &[u8],
    keks: &[&dyn KeyEncryptionKey],
    context: &EncryptionContext,
    options: &EncryptOptions,
) -> Result<Vec<u8>> {
    let sealer = SealIntoBuffer::new(plaintext.len(), keks, context, options)?;
    let mut sealed = vec![0u8; sealer.sealed_len()];
    sealer.seal(plaintext, &mut sealed)?;
    Ok(sealed)
}

/// Decrypt a container made by [`encrypt_bytes`] (or any container held in memory).
///
/// Every entry of `expected_context` must be present, with the same value, in the context the
/// container was encrypted with (an empty map accepts any context).
pub fn decrypt_bytes(
    blob: &[u8],
    keks: &[&dyn KeyEncryptionKey],
    expected_context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>> {
    decrypt_bytes_with(blob, keks, expected_context, &DecryptOptions::default())
}

/// [`decrypt_bytes`] with explicit options.
pub fn decrypt_bytes_with(
    blob: &[u8],
    keks: &[&dyn KeyEncryptionKey],
    expected_context: &EncryptionContext,
    options: &DecryptOptions,
) -> Result<Zeroizing<Vec<u8>>> {
    let opener = OpenFromBuffer::new(blob, keks, expected_context)?;
    let len = usize::try_from(opener.plaintext_len()).map_err(|_| Error::Decryption)?;
    let mut plaintext = Zeroizing::new(vec![0u8; len]);
    opener.open_into(&mut plaintext, options.threads)?;
    report_progress(options.control.as_deref(), len as u64, Some(len as u64))?;
    Ok(plaintext)
}

/// A container sealed from a plaintext held in memory straight into a caller's buffer (a
/// Python `bytes` object, a `Vec`): each segment is encrypted from the input into its place,
/// segments in parallel, with no intermediate buffer.
pub(crate) struct SealIntoBuffer {
    header: Vec<u8>,
    cipher: SegmentCipher,
    segment_size: usize,
    plaintext_len: usize,
    threads: Option<usize>,
    lease: Option<reuse::DekLease>,
}

impl SealIntoBuffer {
    /// Start a container for `plaintext_len` bytes: DEK, wrapped keys and header.
    pub(crate) fn new(
        plaintext_len: usize,
        keks: &[&dyn KeyEncryptionKey],
        context: &EncryptionContext,
        options: &EncryptOptions,
    ) -> Result<Self> {
        let reuse = options
            .dek_reuse
            .as_ref()
            .map(|r| (r, Some(plaintext_len as u64)));
        let (header, cipher, lease) =
            dek::new_container(keks, context, options.segment_size_bytes, reuse)?;
        Ok(Self {
            segment_size: header.header.segment_size as usize,
            header: header.to_bytes(),
            cipher,
            plaintext_len,
            threads: options.threads,
            lease,
        })
    }

    fn segments(&self) -> usize {
        self.plaintext_len.div_ceil(self.segment_size).max(1)
    }

    /// Length of the finished container.
    pub(crate) fn sealed_len(&self) -> usize {
        self.header.len() + self.plaintext_len + self.segments() * TAG_LEN
    }

    /// Write the container for `plaintext` into `out` ([`Self::sealed_len`] bytes).
    pub(crate) fn seal(mut self, plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        if plaintext.len() != self.plaintext_len || out.len() != self.sealed_len() {
            return Err(Error::invalid_data(
                None,
                "container buffer has the wrong length",
            ));
        }
        let segments = self.segments();
        segment::UsageMeter::default().reserve(segments as u64, plaintext.len() as u64)?;
        segment::index_u32(segments as u64 - 1)?;
        if let Some(lease) = &mut self.lease {
            lease.charge(plaintext.len() as u64)?;
        }
        let (header, payload) = out.split_at_mut(self.header.len());
        header.copy_from_slice(&self.header);
        let cipher = &self.cipher;
        if plaintext.is_empty() {
            return cipher.seal_into(0, true, plaintext, payload);
        }
        let seal = |(i, (chunk, slot)): (usize, (&[u8], &mut [u8]))| {
            cipher.seal_into(
                segment::index_u32(i as u64)?,
                i + 1 == segments,
                chunk,
                slot,
            )
        };
        let (threads, pool) = stream::worker_pool(self.threads)?;
        match pool {
            Some(pool) if threads > 1 && segments > 1 => pool.install(|| {
                use rayon::prelude::*;
                plaintext
                    .par_chunks(self.segment_size)
                    .zip(payload.par_chunks_mut(self.segment_size + TAG_LEN))
                    .enumerate()
                    .try_for_each(seal)
            }),
            _ => plaintext
                .chunks(self.segment_size)
                .zip(payload.chunks_mut(self.segment_size + TAG_LEN))
                .enumerate()
                .try_for_each(seal),
        }
    }
}

/// A container held in memory, opened straight into a caller's buffer: segments are
/// authenticated and decrypted from the input into their place, in parallel, with no
/// intermediate buffer. The caller must discard the buffer unless [`Self::open_into`]
/// succeeds (the Python binding drops the half-filled `bytes` object).
pub(crate) struct OpenFromBuffer<'a> {
    payload: &'a [u8],
    layout: Layout,
    cipher: SegmentCipher,
}

impl<'a> OpenFromBuffer<'a> {
    /// Check the header and expected context, recover the DEK with one of `keks`.
    pub(crate) fn new(
        blob: &'a [u8],
        keks: &[&dyn KeyEncryptionKey],
        expected_context: &EncryptionContext,
    ) -> Result<Self> {
        let header = stream::read_header(&mut Cursor::new(blob), "the input")?;
        let payload = usize::try_from(header.len)
            .ok()
            .and_then(|start| blob.get(start..))
            .ok_or(Error::Decryption)?;
        let layout = Layout::of_payload(header.header.segment_size, payload.len() as u64)?;
        let cipher = dek::open_container(&header, keks, expected_context)?;
        Ok(Self {
            payload,
            layout,
            cipher,
        })
    }

    /// Plaintext length implied by the payload length (authenticated by [`Self::open_into`]).
    pub(crate) fn plaintext_len(&self) -> u64 {
        self.layout.plaintext_len()
    }

    /// Authenticate and decrypt every segment into `out` ([`Self::plaintext_len`] bytes).
    pub(crate) fn open_into(&self, out: &mut [u8], threads: Option<usize>) -> Result<()> {
        if out.len() as u64 != self.plaintext_len() {
            return Err(Error::invalid_data(
                None,
                "plaintext buffer has the wrong length",
            ));
        }
        let full = self.layout.segment_size as usize + TAG_LEN;
        let segments = self.layout.segments as usize;
        // One job per segment of the payload, the final one included even when it holds no
        // plaintext (a tag alone): skipping it would accept a container cut after a segment.
        let mut jobs: Vec<(usize, &[u8], &mut [u8])> = Vec::with_capacity(segments);
        let mut rest: &mut [u8] = out;
        for (i, segment) in self.payload.chunks(full).enumerate() {
            let plaintext_len = segment.len().saturating_sub(TAG_LEN).min(rest.len());
            let (slot, tail) = std::mem::take(&mut rest).split_at_mut(plaintext_len);
            rest = tail;
            jobs.push((i, segment, slot));
        }
        if jobs.len() != segments || !rest.is_empty() {
            return Err(Error::Decryption);
        }
        let cipher = &self.cipher;
        let open = |(i, segment, slot): (usize, &[u8], &mut [u8])| {
            let index = segment::index_u32(i as u64)?;
            let opened = cipher.open_into(index, i + 1 == segments, segment, slot)?;
            if opened == slot.len() {
                Ok(())
            } else {
                Err(Error::Decryption)
            }
        };
        let (threads, pool) = stream::worker_pool(threads)?;
        match pool {
            Some(pool) if threads > 1 && segments > 1 => pool.install(|| {
                use rayon::prelude::*;
                jobs.into_par_iter().try_for_each(open)
            }),
            _ => jobs.into_iter().try_for_each(open),
        }
    }
}
