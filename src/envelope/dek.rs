//! Data keys: minting a fresh DEK for a new container, and recovering it from a header.
//!
//! Every container gets its own random salt and nonce prefix, and its own random 256-bit DEK
//! wrapped under each KEK the caller passes (or, when asked, a DEK shared through
//! [`DekReuse`]). Recovering the DEK tries each recorded wrapped key with each KEK that
//! accepts its key id, and accepts an unwrapped key only if it matches the header's commitment.

use zeroize::Zeroizing;

use super::format::{
    EncryptionContext, Header, ParsedHeader, WrappedKey, MAX_SEGMENT_SIZE_BYTES,
    MIN_SEGMENT_SIZE_BYTES, NONCE_PREFIX_LEN, SALT_LEN,
};
use super::reuse::{DekLease, DekReuse};
use super::segment::{
    commitment, header_tag, verify_commitment, verify_header_tag, SegmentCipher, DEK_LEN,
};
use crate::error::{Error, Result};
use crate::keys::KeyEncryptionKey;

/// Fill `buf` from the operating system's random generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::RandomSource {
        message: e.to_string(),
    })
}

/// Check a segment size requested by a caller.
pub(crate) fn check_segment_size(segment_size_bytes: usize) -> Result<u32> {
    if (MIN_SEGMENT_SIZE_BYTES..=MAX_SEGMENT_SIZE_BYTES).contains(&segment_size_bytes) {
        // The range's upper end (64 MiB) fits a u32.
        u32::try_from(segment_size_bytes).map_err(|_| Error::Decryption)
    } else {
        Err(Error::InvalidArgument {
            name: "segment size",
            message: format!(
                "{segment_size_bytes} bytes is outside {MIN_SEGMENT_SIZE_BYTES}..={MAX_SEGMENT_SIZE_BYTES}"
            ),
        })
    }
}

/// Wrap `dek` under every KEK.
pub(crate) fn wrap_under(dek: &[u8], keks: &[&dyn KeyEncryptionKey]) -> Result<Vec<WrappedKey>> {
    if keks.is_empty() {
        return Err(Error::InvalidArgument {
            name: "key-encryption keys",
            message: "pass at least one KEK".into(),
        });
    }
    keks.iter()
        .map(|kek| {
            Ok(WrappedKey {
                provider: kek.provider().to_owned(),
                key_id: kek.key_id(),
                wrap_algorithm: kek.wrap_algorithm().to_owned(),
                wrapped: kek.wrap(dek)?,
            })
        })
        .collect()
}

/// A new container's header and segment cipher: fresh salt and nonce prefix, and a fresh DEK
/// unless `reuse` hands out a shared one (then also the lease the writer charges bytes to).
pub(crate) fn new_container(
    keks: &[&dyn KeyEncryptionKey],
    context: &EncryptionContext,
    segment_size_bytes: usize,
    reuse: Option<(&DekReuse, Option<u64>)>,
) -> Result<(ParsedHeader, SegmentCipher, Option<DekLease>)> {
    let segment_size = check_segment_size(segment_size_bytes)?;
    let (dek, wrapped_keys, lease) = match reuse {
        Some((reuse, expected_bytes)) => {
            let (dek, wrapped, lease) = reuse.acquire(keks, expected_bytes)?;
            (dek, wrapped, Some(lease))
        }
        None => {
            let mut dek = Zeroizing::new([0u8; DEK_LEN]);
            random_bytes(dek.as_mut_slice())?;
            let wrapped = wrap_under(dek.as_slice(), keks)?;
            (dek, wrapped, None)
        }
    };
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt)?;
    let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
    random_bytes(&mut nonce_prefix)?;
    let header = Header {
        segment_size,
        salt,
        nonce_prefix,
        commitment: commitment(&salt, dek.as_slice()),
        context: context.clone(),
        wrapped_keys,
    };
    let mut parsed = header.encode()?;
    parsed.tag = header_tag(&parsed, dek.as_slice());
    let cipher = SegmentCipher::new(dek.as_slice(), &parsed.header, &parsed.hash)?;
    Ok((parsed, cipher, lease))
}

/// Every entry of `expected` must be in the header's context with the same value. A mismatch is
/// an authentication failure: the caller asked for data bound to another context.
pub(crate) fn check_context(header: &Header, expected: &EncryptionContext) -> Result<()> {
    let matches = expected
        .iter()
        .all(|(key, value)| header.context.get(key) == Some(value));
    if matches {
        Ok(())
    } else {
        Err(Error::Decryption)
    }
}

/// Fail with [`Error::NoMatchingKek`] unless some KEK accepts some recorded key id.
pub(crate) fn check_some_kek_matches(
    header: &Header,
    keks: &[&dyn KeyEncryptionKey],
) -> Result<()> {
    let matches = header
        .wrapped_keys
        .iter()
        .any(|wrapped| keks.iter().any(|kek| kek.accepts(&wrapped.key_id)));
    if matches {
        return Ok(());
    }
    let recorded: Vec<&str> = header
        .wrapped_keys
        .iter()
        .map(|k| k.key_id.as_str())
        .collect();
    let offered: Vec<String> = keks.iter().map(|kek| kek.key_id()).collect();
    Err(Error::NoMatchingKek {
        recorded: recorded.join(", "),
        offered: if offered.is_empty() {
            "none".into()
        } else {
            offered.join(", ")
        },
    })
}

/// Recover the DEK from the header with one of `keks`, checked against the commitment; then
/// check the header tag with it.
pub(crate) fn unwrap_data_key(
    parsed: &ParsedHeader,
    keks: &[&dyn KeyEncryptionKey],
) -> Result<Zeroizing<Vec<u8>>> {
    let header = &parsed.header;
    check_some_kek_matches(header, keks)?;
    // A provider failure the user can act on (a deleted key version, a network error) is more
    // useful than the opaque authentication failure, so it is reported if nothing succeeds.
    let mut actionable: Option<Error> = None;
    for wrapped in &header.wrapped_keys {
        for kek in keks.iter().filter(|kek| kek.accepts(&wrapped.key_id)) {
            match kek.unwrap_recorded(&wrapped.wrapped, &wrapped.key_id, &wrapped.wrap_algorithm) {
                Ok(dek) => {
                    if verify_commitment(header, &dek).is_ok() {
                        verify_header_tag(parsed, &dek)?;
                        return Ok(dek);
                    }
                }
                Err(Error::Decryption) => {}
                Err(other) => {
                    actionable.get_or_insert(other);
                }
            }
        }
    }
    Err(actionable.unwrap_or(Error::Decryption))
}

/// The segment cipher of an existing container, after checking context, KEK and commitment.
pub(crate) fn open_container(
    parsed: &ParsedHeader,
    keks: &[&dyn KeyEncryptionKey],
    expected_context: &EncryptionContext,
) -> Result<SegmentCipher> {
    check_some_kek_matches(&parsed.header, keks)?;
    check_context(&parsed.header, expected_context)?;
    let dek = unwrap_data_key(parsed, keks)?;
    SegmentCipher::new(dek.as_slice(), &parsed.header, &parsed.hash)
}
