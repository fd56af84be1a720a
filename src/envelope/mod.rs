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
//! file that is renamed into place only after the final segment has verified.
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
mod segment;
mod stream;
#[cfg(test)]
mod tests;

use std::io::Cursor;

use zeroize::Zeroizing;

pub use file::{decrypt_file, encrypt_file, inspect, rewrap, EnvelopeReport};
pub use format::{
    EncryptionContext, DEFAULT_SEGMENT_SIZE_BYTES, FORMAT_VERSION, MAX_CONTEXT_BYTES,
    MAX_KEY_SECTION_BYTES, MAX_SEGMENT_SIZE_BYTES, MAX_WRAPPED_KEYS, MIN_SEGMENT_SIZE_BYTES,
};
pub use segment::{MAX_PLAINTEXT_BYTES_PER_DEK, MAX_SEGMENTS_PER_DEK, TAG_LEN};
#[cfg(feature = "python")]
pub(crate) use stream::from_io as from_io_error;
pub(crate) use stream::{pump, to_io as to_io_error};
pub use stream::{DecryptingReader, EncryptingWriter};

use crate::error::Result;
use crate::keys::KeyEncryptionKey;
use format::{ParsedHeader, SUITE_AES_256_GCM_HKDF_SHA256_NAME};
use segment::Layout;

/// Knobs for encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Plaintext bytes per segment ([`MIN_SEGMENT_SIZE_BYTES`]..=[`MAX_SEGMENT_SIZE_BYTES`]).
    pub segment_size_bytes: usize,
    /// Worker threads (`None`: one per CPU). Memory use is about `segment_size_bytes x threads`.
    pub threads: Option<usize>,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        Self {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            threads: None,
        }
    }
}

/// Knobs for decryption.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecryptOptions {
    /// Worker threads (`None`: one per CPU). Memory use is about `segment_size x threads`.
    pub threads: Option<usize>,
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
    let segments = plaintext
        .len()
        .div_ceil(options.segment_size_bytes.max(1))
        .max(1);
    let capacity = 1024 + plaintext.len() + segments * TAG_LEN;
    let mut writer = EncryptingWriter::new(Vec::with_capacity(capacity), keks, context, options)?;
    std::io::Write::write_all(&mut writer, plaintext)
        .map_err(|e| stream::from_io(e, "encrypting", "the input"))?;
    writer.finish()
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
    let mut reader = DecryptingReader::open(Cursor::new(blob), keks, expected_context)?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(
        usize::try_from(reader.plaintext_len()).unwrap_or(0),
    ));
    reader.decrypt_all_to(&mut *plaintext, options.threads, |_| Ok(()))?;
    Ok(plaintext)
}
