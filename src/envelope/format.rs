//! The container header: its byte layout, encoding and a parser that refuses bad input early.
//!
//! Layout (all integers big-endian; `docs/format.md` is the normative description):
//!
//! ```text
//! bound part (immutable, hashed into the segment key):
//!   "AMLG" | version u8 | suite u8 | segment_size u32 | salt [32] | nonce_prefix [7]
//!   | commitment [32] | context_len u32 | context [context_len]
//! key section (replaced by rewrap):
//!   key_section_len u32 | key_count u8 | key_count x (provider | key_id | wrap_algorithm | wrapped)
//! header tag (replaced by rewrap):
//!   HMAC-SHA256 [32] over the bound-part hash and the key section, keyed from the DEK
//! ```
//!
//! The bound part feeds the segment key; the key section can change (rotation) but is covered by
//! the header tag, which only a DEK holder can compute, so every header byte is authenticated.
//!
//! The parser reads the fixed part first and checks magic, version, suite, segment size and the
//! declared lengths against hard limits before it allocates anything, so a hostile header cannot
//! make it allocate more than [`MAX_CONTEXT_BYTES`] + [`MAX_KEY_SECTION_BYTES`].

use std::collections::BTreeMap;
use std::io::Read;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The encryption context: a sorted map of non-secret strings bound to the ciphertext.
pub type EncryptionContext = BTreeMap<String, String>;

pub(crate) const MAGIC: [u8; 4] = *b"AMLG";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Suite 1: AES-256-GCM segments, HKDF-SHA256 key derivation, HKDF key commitment.
pub(crate) const SUITE_AES_256_GCM_HKDF_SHA256: u8 = 1;
pub(crate) const SUITE_AES_256_GCM_HKDF_SHA256_NAME: &str = "AES-256-GCM-HKDF-SHA256-COMMIT";

pub(crate) const SALT_LEN: usize = 32;
pub(crate) const NONCE_PREFIX_LEN: usize = 7;
pub(crate) const COMMITMENT_LEN: usize = 32;
pub(crate) const HEADER_TAG_LEN: usize = 32;
/// Bytes from the magic through `context_len`.
pub(crate) const FIXED_LEN: usize =
    4 + 1 + 1 + 4 + SALT_LEN + NONCE_PREFIX_LEN + COMMITMENT_LEN + 4;

/// Smallest segment size accepted (4 KiB).
pub const MIN_SEGMENT_SIZE_BYTES: usize = 4 * 1024;
/// Largest segment size accepted (64 MiB); larger declared sizes are refused before allocating.
pub const MAX_SEGMENT_SIZE_BYTES: usize = 64 * 1024 * 1024;
/// Default segment size (1 MiB).
pub const DEFAULT_SEGMENT_SIZE_BYTES: usize = 1024 * 1024;

/// Largest encoded encryption context.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;
/// Largest encoded key section (all wrapped DEKs with their ids).
pub const MAX_KEY_SECTION_BYTES: usize = 64 * 1024;
/// Most wrapped DEKs one header may carry.
pub const MAX_WRAPPED_KEYS: usize = 16;

/// One wrapped copy of the file's DEK.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WrappedKey {
    pub provider: String,
    pub key_id: String,
    pub wrap_algorithm: String,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .field("wrap_algorithm", &self.wrap_algorithm)
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// A decoded header.
#[derive(Clone)]
pub(crate) struct Header {
    pub segment_size: u32,
    pub salt: [u8; SALT_LEN],
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub commitment: [u8; COMMITMENT_LEN],
    pub context: EncryptionContext,
    pub wrapped_keys: Vec<WrappedKey>,
}

/// A header as found in (or written to) a container, with the facts derived from its bytes.
#[derive(Clone)]
pub(crate) struct ParsedHeader {
    pub header: Header,
    /// The bound part's bytes exactly as stored (rewrap keeps them byte for byte).
    pub bound: Vec<u8>,
    /// The key section's bytes exactly as stored (without its length prefix).
    pub key_section: Vec<u8>,
    /// SHA-256 of `bound`.
    pub hash: [u8; 32],
    /// HMAC over `hash` and `key_section`, keyed from the DEK (zero until computed).
    pub tag: [u8; HEADER_TAG_LEN],
    /// Total header length: the payload starts at this offset.
    pub len: u64,
}

// Debug shows the facts a user can act on; byte fields (salt, nonce, commitment, wrapped keys)
// are not secret but are left out so that nothing resembling key material is ever printed.
impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("segment_size", &self.segment_size)
            .field("context", &self.context)
            .field("wrapped_keys", &self.wrapped_keys)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ParsedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedHeader")
            .field("header", &self.header)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// Encode the bound part (the bytes hashed into the segment key).
    pub fn encode_bound(&self) -> Result<Vec<u8>> {
        let context = encode_context(&self.context)?;
        let mut out = Vec::with_capacity(FIXED_LEN + context.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(SUITE_AES_256_GCM_HKDF_SHA256);
        out.extend_from_slice(&self.segment_size.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.nonce_prefix);
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(&len_u32(context.len()).to_be_bytes());
        out.extend_from_slice(&context);
        Ok(out)
    }

    /// Encode everything: bound part then key section.
    pub fn encode(&self) -> Result<ParsedHeader> {
        let bound = self.encode_bound()?;
        self.with_bound(bound)
    }

    /// Encode with an already encoded bound part (rewrap keeps the stored bytes).
    pub fn with_bound(&self, bound: Vec<u8>) -> Result<ParsedHeader> {
        let key_section = encode_key_section(&self.wrapped_keys)?;
        let hash: [u8; 32] = Sha256::digest(&bound).into();
        let len = (bound.len() + 4 + key_section.len() + HEADER_TAG_LEN) as u64;
        Ok(ParsedHeader {
            header: self.clone(),
            bound,
            key_section,
            hash,
            tag: [0u8; HEADER_TAG_LEN],
            len,
        })
    }
}

impl ParsedHeader {
    /// The complete header bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        out.extend_from_slice(&self.bound);
        out.extend_from_slice(&len_u32(self.key_section.len()).to_be_bytes());
        out.extend_from_slice(&self.key_section);
        out.extend_from_slice(&self.tag);
        out
    }
}

/// Lengths are checked against limits far below `u32::MAX` before encoding.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn invalid_context(message: String) -> Error {
    Error::InvalidArgument {
        name: "encryption context",
        message,
    }
}

fn encode_context(context: &EncryptionContext) -> Result<Vec<u8>> {
    let count = u16::try_from(context.len())
        .map_err(|_| invalid_context(format!("{} entries is too many", context.len())))?;
    let mut out = Vec::new();
    out.extend_from_slice(&count.to_be_bytes());
    // BTreeMap<String, _> iterates in byte order of the keys, which is the canonical order.
    for (key, value) in context {
        if key.is_empty() {
            return Err(invalid_context("keys must not be empty".into()));
        }
        for text in [key, value] {
            let len = u16::try_from(text.len()).map_err(|_| {
                invalid_context(format!(
                    "key '{key}': keys and values are at most 65535 bytes"
                ))
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    if out.len() > MAX_CONTEXT_BYTES {
        return Err(invalid_context(format!(
            "it encodes to {} bytes, more than the limit of {MAX_CONTEXT_BYTES}",
            out.len()
        )));
    }
    Ok(out)
}

fn encode_key_section(keys: &[WrappedKey]) -> Result<Vec<u8>> {
    let invalid = |message: String| Error::InvalidArgument {
        name: "key-encryption keys",
        message,
    };
    if keys.is_empty() || keys.len() > MAX_WRAPPED_KEYS {
        return Err(invalid(format!(
            "pass 1 to {MAX_WRAPPED_KEYS} keys, got {}",
            keys.len()
        )));
    }
    let mut out = vec![keys.len() as u8];
    for key in keys {
        let short = |field: &str, text: &str| -> Result<u8> {
            u8::try_from(text.len())
                .ok()
                .filter(|len| *len > 0)
                .ok_or_else(|| invalid(format!("{field} '{text}' must be 1 to 255 bytes")))
        };
        let long = |field: &str, len: usize| -> Result<u16> {
            u16::try_from(len)
                .ok()
                .filter(|len| *len > 0)
                .ok_or_else(|| {
                    invalid(format!(
                        "{field} of key '{}' must be 1 to 65535 bytes",
                        key.key_id
                    ))
                })
        };
        out.push(short("provider", &key.provider)?);
        out.extend_from_slice(key.provider.as_bytes());
        out.extend_from_slice(&long("key id", key.key_id.len())?.to_be_bytes());
        out.extend_from_slice(key.key_id.as_bytes());
        out.push(short("wrap algorithm", &key.wrap_algorithm)?);
        out.extend_from_slice(key.wrap_algorithm.as_bytes());
        out.extend_from_slice(&long("wrapped key", key.wrapped.len())?.to_be_bytes());
        out.extend_from_slice(&key.wrapped);
    }
    if out.len() > MAX_KEY_SECTION_BYTES {
        return Err(invalid(format!(
            "the wrapped keys take {} bytes, more than the limit of {MAX_KEY_SECTION_BYTES}",
            out.len()
        )));
    }
    Ok(out)
}

/// Read as many bytes as `buf` holds, stopping early only at end of input.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads and validates a header from the start of `reader`.
pub(crate) struct HeaderReader<'a> {
    /// Names the input in errors (a quoted path, or "the input").
    pub source_name: &'a str,
}

impl HeaderReader<'_> {
    fn malformed(&self, message: impl Into<String>) -> Error {
        Error::MalformedHeader {
            source_name: self.source_name.to_owned(),
            message: message.into(),
        }
    }

    fn truncated(&self, needed: usize, available: usize) -> Error {
        Error::TruncatedHeader {
            source_name: self.source_name.to_owned(),
            needed: needed as u64,
            available: available as u64,
        }
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io("reading", self.source_name.trim_matches('\''), e)
    }

    /// Parse the header; `reader` is left positioned at the first payload byte.
    pub fn read(&self, reader: &mut impl Read) -> Result<ParsedHeader> {
        let mut fixed = [0u8; FIXED_LEN];
        let got = read_up_to(reader, &mut fixed).map_err(|e| self.io(e))?;
        let magic_seen = got.min(MAGIC.len());
        if got == 0 || fixed[..magic_seen] != MAGIC[..magic_seen] {
            return Err(Error::NotEnvelope {
                source_name: self.source_name.to_owned(),
            });
        }
        if got > 4 && fixed[4] != FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion {
                source_name: self.source_name.to_owned(),
                version: fixed[4],
                supported: FORMAT_VERSION,
            });
        }
        if got > 5 && fixed[5] != SUITE_AES_256_GCM_HKDF_SHA256 {
            return Err(Error::UnsupportedSuite {
                source_name: self.source_name.to_owned(),
                suite: fixed[5],
                supported: format!(
                    "{SUITE_AES_256_GCM_HKDF_SHA256} ({SUITE_AES_256_GCM_HKDF_SHA256_NAME})"
                ),
            });
        }
        if got < FIXED_LEN {
            return Err(self.truncated(FIXED_LEN, got));
        }
        let mut cursor = Cursor::new(&fixed[6..]);
        let segment_size = cursor.u32();
        if !(MIN_SEGMENT_SIZE_BYTES..=MAX_SEGMENT_SIZE_BYTES).contains(&(segment_size as usize)) {
            return Err(self.malformed(format!(
                "segment size {segment_size} is outside {MIN_SEGMENT_SIZE_BYTES}..={MAX_SEGMENT_SIZE_BYTES} bytes"
            )));
        }
        let salt = cursor.array::<SALT_LEN>();
        let nonce_prefix = cursor.array::<NONCE_PREFIX_LEN>();
        let commitment = cursor.array::<COMMITMENT_LEN>();
        let context_len = cursor.u32() as usize;
        if context_len > MAX_CONTEXT_BYTES {
            return Err(self.malformed(format!(
                "context length {context_len} exceeds the limit of {MAX_CONTEXT_BYTES} bytes"
            )));
        }

        let bound_len = FIXED_LEN + context_len;
        let mut bound = Vec::with_capacity(bound_len);
        bound.extend_from_slice(&fixed);
        bound.resize(bound_len, 0);
        let got = read_up_to(reader, &mut bound[FIXED_LEN..]).map_err(|e| self.io(e))?;
        if got < context_len {
            return Err(self.truncated(bound_len + 4, FIXED_LEN + got));
        }
        let context = self.parse_context(&bound[FIXED_LEN..])?;

        let mut len_bytes = [0u8; 4];
        let got = read_up_to(reader, &mut len_bytes).map_err(|e| self.io(e))?;
        if got < 4 {
            return Err(self.truncated(bound_len + 4, bound_len + got));
        }
        let key_section_len = u32::from_be_bytes(len_bytes) as usize;
        if key_section_len > MAX_KEY_SECTION_BYTES {
            return Err(self.malformed(format!(
                "key section length {key_section_len} exceeds the limit of {MAX_KEY_SECTION_BYTES} bytes"
            )));
        }
        let mut key_section = vec![0u8; key_section_len + HEADER_TAG_LEN];
        let got = read_up_to(reader, &mut key_section).map_err(|e| self.io(e))?;
        let total = bound_len + 4 + key_section_len + HEADER_TAG_LEN;
        if got < key_section.len() {
            return Err(self.truncated(total, bound_len + 4 + got));
        }
        let mut tag = [0u8; HEADER_TAG_LEN];
        tag.copy_from_slice(&key_section[key_section_len..]);
        key_section.truncate(key_section_len);
        let wrapped_keys = self.parse_key_section(&key_section)?;

        let hash: [u8; 32] = Sha256::digest(&bound).into();
        Ok(ParsedHeader {
            header: Header {
                segment_size,
                salt,
                nonce_prefix,
                commitment,
                context,
                wrapped_keys,
            },
            bound,
            key_section,
            hash,
            tag,
            len: total as u64,
        })
    }

    fn parse_context(&self, bytes: &[u8]) -> Result<EncryptionContext> {
        let mut cursor = Cursor::new(bytes);
        let count = cursor
            .take_u16()
            .ok_or_else(|| self.malformed("the context has no entry count"))?;
        let mut context = EncryptionContext::new();
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let key = self.text(&mut cursor, "context key")?;
            let value = self.text(&mut cursor, "context value")?;
            // Canonical encoding: keys strictly ascending, so one context has one encoding.
            if key.is_empty() || previous.as_deref().is_some_and(|p| p >= key.as_str()) {
                return Err(self.malformed("context keys are empty, unsorted or repeated"));
            }
            previous = Some(key.clone());
            context.insert(key, value);
        }
        if !cursor.is_empty() {
            return Err(self.malformed("the context has trailing bytes"));
        }
        Ok(context)
    }

    fn text(&self, cursor: &mut Cursor<'_>, field: &str) -> Result<String> {
        let len = cursor
            .take_u16()
            .ok_or_else(|| self.malformed(format!("a {field} is cut short")))?;
        let bytes = cursor
            .take(len as usize)
            .ok_or_else(|| self.malformed(format!("a {field} is cut short")))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(format!("a {field} is not valid UTF-8")))
    }

    fn short_text(&self, cursor: &mut Cursor<'_>, field: &str) -> Result<String> {
        let len = cursor
            .take(1)
            .map(|b| b[0] as usize)
            .ok_or_else(|| self.malformed(format!("a {field} is cut short")))?;
        let bytes = cursor
            .take(len)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| self.malformed(format!("a {field} is empty or cut short")))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(format!("a {field} is not valid UTF-8")))
    }

    fn parse_key_section(&self, bytes: &[u8]) -> Result<Vec<WrappedKey>> {
        let mut cursor = Cursor::new(bytes);
        let count = cursor
            .take(1)
            .map(|b| b[0] as usize)
            .ok_or_else(|| self.malformed("the key section is empty"))?;
        if count == 0 || count > MAX_WRAPPED_KEYS {
            return Err(self.malformed(format!(
                "{count} wrapped keys; a header holds 1 to {MAX_WRAPPED_KEYS}"
            )));
        }
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let provider = self.short_text(&mut cursor, "key provider")?;
            let key_id = self.text(&mut cursor, "key id")?;
            let wrap_algorithm = self.short_text(&mut cursor, "wrap algorithm")?;
            let wrapped_len = cursor
                .take_u16()
                .ok_or_else(|| self.malformed("a wrapped key is cut short"))?;
            let wrapped = cursor
                .take(wrapped_len as usize)
                .filter(|b| !b.is_empty())
                .ok_or_else(|| self.malformed("a wrapped key is empty or cut short"))?
                .to_vec();
            if key_id.is_empty() {
                return Err(self.malformed("a key id is empty"));
            }
            keys.push(WrappedKey {
                provider,
                key_id,
                wrap_algorithm,
                wrapped,
            });
        }
        if !cursor.is_empty() {
            return Err(self.malformed("the key section has trailing bytes"));
        }
        Ok(keys)
    }
}

/// A bounds-checked reader over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < len {
            return None;
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Some(head)
    }

    fn take_u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// Only for the fixed part, whose length is checked before parsing.
    fn u32(&mut self) -> u32 {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or_default()
    }

    /// Only for the fixed part, whose length is checked before parsing.
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(bytes) = self.take(N) {
            out.copy_from_slice(bytes);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            segment_size: 4096,
            salt: [1; SALT_LEN],
            nonce_prefix: [2; NONCE_PREFIX_LEN],
            commitment: [3; COMMITMENT_LEN],
            context: [("dataset", "patients"), ("purpose", "training")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            wrapped_keys: vec![WrappedKey {
                provider: "local".into(),
                key_id: "local:k@1".into(),
                wrap_algorithm: "AES-256-KWP".into(),
                wrapped: vec![9; 40],
            }],
        }
    }

    fn read(bytes: &[u8]) -> Result<ParsedHeader> {
        HeaderReader {
            source_name: "the input",
        }
        .read(&mut &bytes[..])
    }

    #[test]
    fn round_trips_and_hashes_only_the_bound_part() {
        let encoded = sample().encode().unwrap();
        let bytes = encoded.to_bytes();
        assert_eq!(bytes.len() as u64, encoded.len);
        let parsed = read(&bytes).unwrap();
        assert_eq!(parsed.header.context, sample().context);
        assert_eq!(parsed.header.wrapped_keys, sample().wrapped_keys);
        assert_eq!(parsed.hash, encoded.hash);
        assert_eq!(parsed.bound, encoded.bound);

        let mut other = sample();
        other.wrapped_keys[0].key_id = "local:k@2".into();
        assert_eq!(
            other.encode().unwrap().hash,
            encoded.hash,
            "key section is not bound"
        );
        other.context.insert("x".into(), "y".into());
        assert_ne!(
            other.encode().unwrap().hash,
            encoded.hash,
            "context is bound"
        );
    }

    #[test]
    fn structural_problems_are_typed() {
        let bytes = sample().encode().unwrap().to_bytes();
        assert!(matches!(read(b""), Err(Error::NotEnvelope { .. })));
        assert!(matches!(read(b"PAR1xxxx"), Err(Error::NotEnvelope { .. })));
        assert!(matches!(read(b"AM"), Err(Error::TruncatedHeader { .. })));
        for cut in [4, 6, FIXED_LEN - 1, FIXED_LEN + 3, bytes.len() - 1] {
            assert!(
                matches!(read(&bytes[..cut]), Err(Error::TruncatedHeader { .. })),
                "cut at {cut}"
            );
        }
        let mut version = bytes.clone();
        version[4] = 2;
        assert!(matches!(
            read(&version),
            Err(Error::UnsupportedFormatVersion { version: 2, .. })
        ));
        let mut suite = bytes.clone();
        suite[5] = 7;
        assert!(matches!(
            read(&suite),
            Err(Error::UnsupportedSuite { suite: 7, .. })
        ));
    }

    #[test]
    fn huge_declared_sizes_are_refused_before_allocating() {
        let bytes = sample().encode().unwrap().to_bytes();
        let mut huge = bytes.clone();
        huge[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(read(&huge), Err(Error::MalformedHeader { .. })));
        let mut small = bytes.clone();
        small[6..10].copy_from_slice(&16u32.to_be_bytes());
        assert!(matches!(read(&small), Err(Error::MalformedHeader { .. })));
        let mut context = bytes.clone();
        context[FIXED_LEN - 4..FIXED_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(read(&context), Err(Error::MalformedHeader { .. })));
    }

    #[test]
    fn non_canonical_contexts_and_bad_key_sections_are_refused() {
        let mut header = sample();
        header.context.clear();
        let mut bytes = header.encode().unwrap().to_bytes();
        // Hand-build an unsorted context: ("b","1"), ("a","2").
        let context: Vec<u8> = [
            &2u16.to_be_bytes()[..],
            &1u16.to_be_bytes(),
            b"b",
            &1u16.to_be_bytes(),
            b"1",
            &1u16.to_be_bytes(),
            b"a",
            &1u16.to_be_bytes(),
            b"2",
        ]
        .concat();
        let old_len =
            u32::from_be_bytes(bytes[FIXED_LEN - 4..FIXED_LEN].try_into().unwrap()) as usize;
        bytes.splice(FIXED_LEN..FIXED_LEN + old_len, context.iter().copied());
        bytes[FIXED_LEN - 4..FIXED_LEN].copy_from_slice(&(context.len() as u32).to_be_bytes());
        assert!(matches!(read(&bytes), Err(Error::MalformedHeader { .. })));

        let mut none = sample();
        none.wrapped_keys.clear();
        assert!(matches!(none.encode(), Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let shown = format!("{:?}", sample().wrapped_keys[0]);
        assert!(shown.contains("local:k@1"));
        assert!(!shown.contains("[9, 9"));
    }
}
