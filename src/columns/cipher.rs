//! Per-value ciphers of encrypted columns and the associated data that binds each value to its
//! column and context.
//!
//! - Randomized: AES-256-GCM (ring) with a fresh random 96-bit nonce per value:
//!   `nonce (12) || ciphertext || tag (16)`.
//! - Deterministic: AES-SIV (RFC 5297, AES-CMAC-SIV with a 512-bit key, RustCrypto `aes-siv`)
//!   with the associated data as its one header: `SIV (16) || ciphertext`. Equal plaintexts under
//!   the same key and associated data give equal ciphertexts, which is the point (joins,
//!   group-bys) and the price (equality is visible).
//! - Subject-keyed (crypto-shredding): either of the above under the row's subject key, prefixed
//!   by `0x01 || key handle (16)`; the handle is bound into the associated data too.
//!
//! Nonces are not counters because values are encrypted in parallel and across calls (appending
//! with `reuse_from`) without shared state. Each chunk draws its nonces from a ChaCha20 generator
//! seeded from the operating system, so a syscall per value is avoided.

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Bytes of a GCM tag.
pub(crate) const GCM_TAG_LEN: usize = 16;
/// Bytes of an AES-SIV synthetic IV.
pub(crate) const SIV_LEN: usize = 16;
/// Bytes of a randomized column DEK (AES-256).
pub(crate) const RANDOMIZED_DEK_LEN: usize = 32;
/// Bytes of a deterministic column DEK (AES-SIV with AES-256: a MAC key and a CTR key).
pub(crate) const DETERMINISTIC_DEK_LEN: usize = 64;
/// Format byte that opens a subject-keyed value.
pub(crate) const SUBJECT_VALUE_FORMAT: u8 = 1;
/// Bytes of a subject key handle.
pub(crate) const HANDLE_LEN: usize = 16;
/// Bytes before the mode's own value format in a subject-keyed value.
pub(crate) const SUBJECT_PREFIX_LEN: usize = 1 + HANDLE_LEN;

/// How values are encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// AES-256-GCM, random nonce per value: equal values give unrelated ciphertexts.
    Randomized,
    /// AES-SIV: equal values give equal ciphertexts (joins and group-bys keep working).
    Deterministic,
}

impl Mode {
    /// Parse `randomized` or `deterministic`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "randomized" => Ok(Mode::Randomized),
            "deterministic" => Ok(Mode::Deterministic),
            _ => Err(Error::InvalidArgument {
                name: "mode",
                message: format!("'{text}': use 'randomized' or 'deterministic'"),
            }),
        }
    }

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Randomized => "randomized",
            Mode::Deterministic => "deterministic",
        }
    }

    /// Bytes of this mode's column DEK.
    pub(crate) fn dek_len(self) -> usize {
        match self {
            Mode::Randomized => RANDOMIZED_DEK_LEN,
            Mode::Deterministic => DETERMINISTIC_DEK_LEN,
        }
    }

    /// Bytes a value grows by when encrypted (without the subject prefix).
    pub(crate) fn overhead(self) -> usize {
        match self {
            Mode::Randomized => NONCE_LEN + GCM_TAG_LEN,
            Mode::Deterministic => SIV_LEN,
        }
    }
}

/// One column's (or one subject's) key, ready to encrypt or decrypt. Never printed.
pub(crate) enum ValueKey {
    /// Boxed: ring's key schedule is large, and maps hold many subject keys.
    Randomized(Box<LessSafeKey>),
    /// The 64-byte AES-SIV key; each chunk builds its own cipher (its CMAC state is mutable).
    Deterministic(Zeroizing<Vec<u8>>),
}

impl ValueKey {
    /// A key of `mode` from raw DEK bytes; a DEK of the wrong length is an authentication
    /// failure (it cannot be ours).
    pub(crate) fn new(mode: Mode, dek: &[u8]) -> Result<Self> {
        if dek.len() != mode.dek_len() {
            return Err(Error::Decryption);
        }
        Ok(match mode {
            Mode::Randomized => ValueKey::Randomized(Box::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, dek).map_err(|_| Error::Decryption)?,
            ))),
            Mode::Deterministic => ValueKey::Deterministic(Zeroizing::new(dek.to_vec())),
        })
    }

    /// A key of `mode` derived from a subject's 32-byte DEK (deterministic mode needs 64 bytes,
    /// expanded with HKDF-SHA256 under its own label).
    pub(crate) fn from_subject_dek(mode: Mode, dek: &[u8]) -> Result<Self> {
        match mode {
            Mode::Randomized => Self::new(mode, dek),
            Mode::Deterministic => {
                let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"amlguard/columns/v1"), dek);
                let mut siv_key = Zeroizing::new(vec![0u8; DETERMINISTIC_DEK_LEN]);
                hkdf.expand(b"subject-deterministic", siv_key.as_mut_slice())
                    .map_err(|_| Error::Decryption)?;
                Self::new(mode, &siv_key)
            }
        }
    }

    fn mode(&self) -> Mode {
        match self {
            ValueKey::Randomized(_) => Mode::Randomized,
            ValueKey::Deterministic(_) => Mode::Deterministic,
        }
    }
}

/// A fresh random DEK for `mode`.
pub(crate) fn random_dek(mode: Mode) -> Result<Zeroizing<Vec<u8>>> {
    let mut dek = Zeroizing::new(vec![0u8; mode.dek_len()]);
    getrandom::getrandom(dek.as_mut_slice()).map_err(|e| Error::RandomSource {
        message: e.to_string(),
    })?;
    Ok(dek)
}

/// Per-chunk encryption state: the nonce generator and, for AES-SIV, the cipher.
pub(crate) struct Sealer<'k> {
    key: &'k ValueKey,
    nonces: Option<ChaCha20Rng>,
    siv: Option<Aes256Siv>,
}

impl<'k> Sealer<'k> {
    pub(crate) fn new(key: &'k ValueKey) -> Result<Self> {
        Ok(match key {
            ValueKey::Randomized(_) => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::getrandom(seed.as_mut_slice()).map_err(|e| Error::RandomSource {
                    message: e.to_string(),
                })?;
                Self {
                    key,
                    nonces: Some(ChaCha20Rng::from_seed(*seed)),
                    siv: None,
                }
            }
            ValueKey::Deterministic(bytes) => Self {
                key,
                nonces: None,
                siv: Some(siv_cipher(bytes)?),
            },
        })
    }

    /// Append the encryption of `plaintext` under `aad` to `out`.
    pub(crate) fn seal_into(
        &mut self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        match (self.key, &mut self.nonces, &mut self.siv) {
            (ValueKey::Randomized(key), Some(nonces), _) => {
                let mut nonce = [0u8; NONCE_LEN];
                nonces.fill_bytes(&mut nonce);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(plaintext);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut out[start + NONCE_LEN..],
                    )
                    .map_err(|_| Error::invalid_data(None, "value too large to encrypt"))?;
                out.extend_from_slice(tag.as_ref());
            }
            (ValueKey::Deterministic(_), _, Some(siv)) => {
                out.extend_from_slice(&[0u8; SIV_LEN]);
                out.extend_from_slice(plaintext);
                let tag = siv
                    .encrypt_in_place_detached([aad], &mut out[start + SIV_LEN..])
                    .map_err(|_| Error::invalid_data(None, "value cannot be encrypted"))?;
                out[start..start + SIV_LEN].copy_from_slice(tag.as_slice());
            }
            _ => {
                return Err(Error::invalid_data(
                    None,
                    "cipher state does not match its key",
                ))
            }
        }
        Ok(())
    }
}

/// Per-chunk decryption state.
pub(crate) struct Opener<'k> {
    key: &'k ValueKey,
    siv: Option<Aes256Siv>,
}

impl<'k> Opener<'k> {
    pub(crate) fn new(key: &'k ValueKey) -> Result<Self> {
        let siv = match key {
            ValueKey::Deterministic(bytes) => Some(siv_cipher(bytes)?),
            ValueKey::Randomized(_) => None,
        };
        Ok(Self { key, siv })
    }

    /// Decrypt `sealed` under `aad`, appending the plaintext to `out`; `Err(Decryption)` when
    /// the value fails authentication (nothing is appended then).
    pub(crate) fn open_into(&mut self, sealed: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if sealed.len() < self.key.mode().overhead() {
            return Err(Error::Decryption);
        }
        match (self.key, &mut self.siv) {
            (ValueKey::Randomized(key), _) => {
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&sealed[..NONCE_LEN]);
                let start = out.len();
                out.extend_from_slice(&sealed[NONCE_LEN..]);
                match key.open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut out[start..],
                ) {
                    Ok(plain) => {
                        let plain_len = plain.len();
                        out.truncate(start + plain_len);
                    }
                    Err(_) => {
                        out.truncate(start);
                        return Err(Error::Decryption);
                    }
                }
            }
            (ValueKey::Deterministic(_), Some(siv)) => {
                let tag = aes_siv::Tag::clone_from_slice(&sealed[..SIV_LEN]);
                let start = out.len();
                out.extend_from_slice(&sealed[SIV_LEN..]);
                if siv
                    .decrypt_in_place_detached([aad], &mut out[start..], &tag)
                    .is_err()
                {
                    out.truncate(start);
                    return Err(Error::Decryption);
                }
            }
            _ => {
                return Err(Error::invalid_data(
                    None,
                    "cipher state does not match its key",
                ))
            }
        }
        Ok(())
    }
}

fn siv_cipher(key: &[u8]) -> Result<Aes256Siv> {
    if key.len() != DETERMINISTIC_DEK_LEN {
        return Err(Error::Decryption);
    }
    Ok(Aes256Siv::new(key.into()))
}

/// The associated data of one column: SHA-256 over a label, the column name, the original
/// type, the mode and the context sorted by key, each length-prefixed so that no two inputs
/// share an encoding. Hashed once per column so that each value authenticates 32 bytes rather
/// than the whole description (AES-SIV runs its header through CMAC for every value).
pub(crate) fn column_aad(
    column: &str,
    original_type: &str,
    mode: Mode,
    context: &std::collections::BTreeMap<String, String>,
) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut aad = b"amlguard/columns/v1".to_vec();
    put(&mut aad, column.as_bytes());
    put(&mut aad, original_type.as_bytes());
    put(&mut aad, mode.as_str().as_bytes());
    aad.extend_from_slice(&(context.len() as u64).to_be_bytes());
    for (key, value) in context {
        put(&mut aad, key.as_bytes());
        put(&mut aad, value.as_bytes());
    }
    use sha2::Digest;
    sha2::Sha256::digest(&aad).to_vec()
}

/// The associated data of a subject-keyed value: the column's, then the key handle.
pub(crate) fn subject_aad(column_aad: &[u8], handle: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(column_aad.len() + 1 + handle.len());
    aad.extend_from_slice(column_aad);
    aad.push(0);
    aad.extend_from_slice(handle);
    aad
}
