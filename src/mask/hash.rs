//! `hash`: keyed pseudonyms with HMAC-SHA256.
//!
//! An unkeyed hash of a low-entropy value (a phone number, a birth date) is reversed by trying
//! every candidate, so amlguard only hashes with a key. The HMAC key is derived from a keyring key
//! with the purpose label `hash`; anyone holding the keyring key can recompute a subject's
//! pseudonym (which right-to-be-forgotten relies on), nobody else can. Strings are hashed as
//! their UTF-8 bytes, integers as their decimal text, so `42` and `"42"` get the same pseudonym.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType};
use arrow_schema::DataType;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::strings::{build_utf8, is_string_type, map_strings};
use super::{ChunkContext, ColumnOperator};
use crate::error::{Error, Result};
use crate::keys::SecretKey;

type HmacSha256 = Hmac<Sha256>;

/// Text encoding of a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestEncoding {
    /// Lower-case hexadecimal.
    Hex,
    /// URL-safe base64 without padding.
    Base64Url,
}

/// Shortest digest a policy may keep, in bytes: 64 bits keeps collisions negligible for
/// billions of distinct values.
pub const MIN_TRUNCATE_BYTES: usize = 8;

/// Keyed HMAC-SHA256 pseudonymisation.
pub struct KeyedHash {
    keyed_mac: HmacSha256,
    encoding: DigestEncoding,
    digest_bytes: usize,
}

impl KeyedHash {
    /// Build from a keyring key. `truncate_bytes` keeps the first N digest bytes (8..=32).
    pub fn new(
        key: &SecretKey,
        encoding: DigestEncoding,
        truncate_bytes: Option<usize>,
    ) -> Result<Self> {
        let digest_bytes = truncate_bytes.unwrap_or(32);
        if !(MIN_TRUNCATE_BYTES..=32).contains(&digest_bytes) {
            return Err(Error::policy(format!(
                "truncate_bytes must be between {MIN_TRUNCATE_BYTES} and 32"
            )));
        }
        let subkey = key.derive::<32>("hash");
        let keyed_mac = HmacSha256::new_from_slice(subkey.as_slice())
            .map_err(|_| Error::policy("HMAC key has an invalid length"))?;
        Ok(Self {
            keyed_mac,
            encoding,
            digest_bytes,
        })
    }

    /// The pseudonym of one value, as the operator writes it.
    pub fn pseudonym(&self, value: &[u8]) -> String {
        let mut out = String::new();
        self.write_pseudonym(value, &mut out);
        out
    }

    pub(crate) fn write_pseudonym(&self, value: &[u8], out: &mut String) {
        // Cloning the keyed state skips re-hashing the key pads for every value.
        let mut mac = self.keyed_mac.clone();
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let digest = &digest[..self.digest_bytes];
        match self.encoding {
            DigestEncoding::Hex => {
                let mut hex_buffer = [0u8; 64];
                let hex_len = digest.len() * 2;
                if hex::encode_to_slice(digest, &mut hex_buffer[..hex_len]).is_ok() {
                    out.push_str(std::str::from_utf8(&hex_buffer[..hex_len]).unwrap_or_default());
                }
            }
            DigestEncoding::Base64Url => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(digest, out)
            }
        }
    }

    fn hash_integers<T: ArrowPrimitiveType>(&self, input: &dyn Array) -> Result<ArrayRef>
    where
        T::Native: std::fmt::Display,
    {
        let ints = input.as_primitive::<T>();
        let mut text = String::with_capacity(24);
        build_utf8(ints.len(), |row, out| {
            if ints.is_null(row) {
                return Ok(false);
            }
            text.clear();
            let _ = write!(text, "{}", ints.value(row));
            self.write_pseudonym(text.as_bytes(), out);
            Ok(true)
        })
    }
}

/// Types `hash` accepts: strings and integers.
pub fn supports_type(data_type: &DataType) -> bool {
    is_string_type(data_type) || data_type.is_integer()
}

impl ColumnOperator for KeyedHash {
    fn name(&self) -> &'static str {
        "hash"
    }
    fn output_type(&self, input: &DataType) -> DataType {
        if is_string_type(input) {
            input.clone()
        } else {
            DataType::Utf8
        }
    }
    fn apply(&self, input: &ArrayRef, _: &ChunkContext<'_>) -> Result<ArrayRef> {
        let array = input.as_ref();
        match input.data_type() {
            DataType::Int8 => self.hash_integers::<Int8Type>(array),
            DataType::Int16 => self.hash_integers::<Int16Type>(array),
            DataType::Int32 => self.hash_integers::<Int32Type>(array),
            DataType::Int64 => self.hash_integers::<Int64Type>(array),
            DataType::UInt8 => self.hash_integers::<UInt8Type>(array),
            DataType::UInt16 => self.hash_integers::<UInt16Type>(array),
            DataType::UInt32 => self.hash_integers::<UInt32Type>(array),
            DataType::UInt64 => self.hash_integers::<UInt64Type>(array),
            _ => map_strings(array, |_, value, out| {
                self.write_pseudonym(value.as_bytes(), out);
                Ok(())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key(byte: u8) -> SecretKey {
        SecretKey::new(
            crate::keys::KeyId {
                name: "test".into(),
                version: 1,
            },
            zeroize::Zeroizing::new([byte; 32]),
        )
    }

    #[test]
    fn pseudonyms_are_keyed_deterministic_and_type_independent() {
        let op = KeyedHash::new(&test_key(1), DigestEncoding::Hex, None).unwrap();
        let other = KeyedHash::new(&test_key(2), DigestEncoding::Hex, None).unwrap();
        assert_eq!(op.pseudonym(b"42"), op.pseudonym(b"42"));
        assert_ne!(op.pseudonym(b"42"), other.pseudonym(b"42"));
        assert_eq!(op.pseudonym(b"42").len(), 64);
        let batch =
            arrow_array::RecordBatch::new_empty(std::sync::Arc::new(arrow_schema::Schema::empty()));
        let context = ChunkContext {
            row_offset: 0,
            batch: &batch,
        };
        let ints: ArrayRef =
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![Some(42), None]));
        let out = op.apply(&ints, &context).unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), op.pseudonym(b"42"));
        assert!(out.is_null(1));
    }

    #[test]
    fn truncation_and_base64url() {
        let op = KeyedHash::new(&test_key(1), DigestEncoding::Base64Url, Some(12)).unwrap();
        let pseudonym = op.pseudonym(b"jane@example.com");
        assert_eq!(pseudonym.len(), 16);
        assert!(!pseudonym.contains('=') && !pseudonym.contains('+') && !pseudonym.contains('/'));
        assert!(KeyedHash::new(&test_key(1), DigestEncoding::Hex, Some(4)).is_err());
    }

    /// RFC 4231, test case 2: checks the HMAC-SHA256 construction we rely on.
    #[test]
    fn hmac_sha256_matches_rfc4231() {
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// RFC 4231, test case 6: a key longer than the block size.
    #[test]
    fn hmac_sha256_long_key_matches_rfc4231() {
        let mut mac = HmacSha256::new_from_slice(&[0xaa; 131]).unwrap();
        mac.update(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
