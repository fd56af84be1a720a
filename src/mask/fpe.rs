//! `fpe`: format-preserving encryption with FF1 (NIST SP 800-38G) over AES-256.
//!
//! Characters of the alphabet (digits by default) are encrypted as one FF1 numeral string;
//! every other character stays in place, so `4111-1111-1111-1111` becomes another
//! 16-digit, dash-separated string. FF1 needs a domain of at least one million values
//! (six digits, four letters of a 36-character alphabet, ...): a shorter value is an error,
//! not a silent pass-through. With `decrypt` the operator reverses a column it encrypted.

use std::collections::HashMap;

use aes::Aes256;
use arrow_array::ArrayRef;
use fpe::ff1::{FlexibleNumeralString, FF1};

use super::strings::map_strings;
use super::{ChunkContext, ColumnOperator};
use crate::error::{Error, Result};
use crate::keys::SecretKey;

/// The alphabet used when a policy gives none.
pub const DIGITS: &str = "0123456789";

/// FF1 format-preserving encryption of the alphabet characters of each value.
pub struct FormatPreserving {
    ff1: FF1<Aes256>,
    alphabet: Vec<char>,
    numeral_of: HashMap<char, u16>,
    min_numerals: usize,
    tweak: Vec<u8>,
    decrypt: bool,
}

impl FormatPreserving {
    /// Build from a keyring key, an alphabet of 2 to 65536 distinct characters and a tweak.
    pub fn new(key: &SecretKey, alphabet: &str, tweak: &str, decrypt: bool) -> Result<Self> {
        let chars: Vec<char> = alphabet.chars().collect();
        let mut numeral_of = HashMap::with_capacity(chars.len());
        for (index, c) in chars.iter().enumerate() {
            let numeral = u16::try_from(index)
                .map_err(|_| Error::policy("the alphabet may hold at most 65536 characters"))?;
            if numeral_of.insert(*c, numeral).is_some() {
                return Err(Error::policy(format!(
                    "the alphabet repeats the character {c:?}"
                )));
            }
        }
        let radix = u32::try_from(chars.len())
            .ok()
            .filter(|r| *r >= 2)
            .ok_or_else(|| Error::policy("the alphabet needs at least 2 characters"))?;
        let subkey = key.derive::<32>("fpe-ff1");
        let ff1 = FF1::<Aes256>::new(subkey.as_slice(), radix)
            .map_err(|_| Error::policy("the alphabet size is not a valid FF1 radix"))?;
        // NIST SP 800-38G rev. 1: radix^minlen >= 1,000,000.
        let mut min_numerals = 1usize;
        let mut domain = u64::from(radix);
        while domain < 1_000_000 {
            domain = domain.saturating_mul(u64::from(radix));
            min_numerals += 1;
        }
        Ok(Self {
            ff1,
            alphabet: chars,
            numeral_of,
            min_numerals,
            tweak: tweak.as_bytes().to_vec(),
            decrypt,
        })
    }

    /// Encrypt (or decrypt) one value. `row` is only used to say where a short value sits.
    pub fn transform(&self, value: &str, row: u64, out: &mut String) -> Result<()> {
        let numerals: Vec<u16> = value
            .chars()
            .filter_map(|c| self.numeral_of.get(&c).copied())
            .collect();
        if numerals.len() < self.min_numerals {
            return Err(Error::invalid_data(
                None,
                format!(
                    "row {row} has {} characters of the FPE alphabet; FF1 needs at least {} (use 'mask' or 'tokenize' for short values)",
                    numerals.len(),
                    self.min_numerals
                ),
            ));
        }
        let input = FlexibleNumeralString::from(numerals);
        let result = if self.decrypt {
            self.ff1.decrypt(&self.tweak, &input)
        } else {
            self.ff1.encrypt(&self.tweak, &input)
        }
        .map_err(|e| Error::invalid_data(None, format!("row {row}: FF1 refused the value: {e}")))?;
        let mut numerals = Vec::<u16>::from(result).into_iter();
        for c in value.chars() {
            if self.numeral_of.contains_key(&c) {
                let numeral = numerals.next().unwrap_or_default();
                out.push(self.alphabet[usize::from(numeral)]);
            } else {
                out.push(c);
            }
        }
        Ok(())
    }
}

impl ColumnOperator for FormatPreserving {
    fn name(&self) -> &'static str {
        "fpe"
    }
    fn apply(&self, input: &ArrayRef, context: &ChunkContext<'_>) -> Result<ArrayRef> {
        map_strings(input.as_ref(), |row, value, out| {
            self.transform(value, context.row_offset + row as u64, out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;
    use zeroize::Zeroizing;

    const NIST_AES256_KEY: &str =
        "2b7e151628aed2a6abf7158809cf4f3cef4359d8d580aa4f7f036d6f04fc6a94";

    fn ff1(radix: u32) -> FF1<Aes256> {
        FF1::<Aes256>::new(&hex::decode(NIST_AES256_KEY).unwrap(), radix).unwrap()
    }

    fn numerals(text: &str, alphabet: &str) -> FlexibleNumeralString {
        FlexibleNumeralString::from(
            text.chars()
                .map(|c| alphabet.find(c).unwrap() as u16)
                .collect::<Vec<_>>(),
        )
    }

    fn text(ns: FlexibleNumeralString, alphabet: &str) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        Vec::<u16>::from(ns)
            .into_iter()
            .map(|n| chars[n as usize])
            .collect()
    }

    /// NIST SP 800-38G FF1 samples 7, 8 and 9 (AES-256).
    #[test]
    fn ff1_matches_nist_samples() {
        let alphabet36 = "0123456789abcdefghijklmnopqrstuvwxyz";
        let cases = [
            (10, "", "0123456789", "6657667009"),
            (10, "39383736353433323130", "0123456789", "1001623463"),
            (
                36,
                "3737373770717273373737",
                "0123456789abcdefghi",
                "xs8a0azh2avyalyzuwd",
            ),
        ];
        for (radix, tweak, plaintext, expected) in cases {
            let tweak = hex::decode(tweak).unwrap();
            let cipher = ff1(radix);
            let ct = cipher
                .encrypt(&tweak, &numerals(plaintext, alphabet36))
                .unwrap();
            assert_eq!(text(ct, alphabet36), expected);
        }
    }

    fn key() -> SecretKey {
        SecretKey::new(
            KeyId {
                name: "f".into(),
                version: 1,
            },
            Zeroizing::new([3u8; 32]),
        )
    }

    #[test]
    fn keeps_format_and_round_trips() {
        let encrypt = FormatPreserving::new(&key(), DIGITS, "", false).unwrap();
        let decrypt = FormatPreserving::new(&key(), DIGITS, "", true).unwrap();
        let mut card = String::new();
        encrypt
            .transform("4111-1111-1111-1111", 0, &mut card)
            .unwrap();
        assert_eq!(card.len(), 19);
        assert_ne!(card, "4111-1111-1111-1111");
        assert!(card
            .chars()
            .enumerate()
            .all(|(i, c)| if [4, 9, 14].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_digit()
            }));
        let mut back = String::new();
        decrypt.transform(&card, 0, &mut back).unwrap();
        assert_eq!(back, "4111-1111-1111-1111");
    }

    #[test]
    fn short_values_and_bad_alphabets_are_errors() {
        let encrypt = FormatPreserving::new(&key(), DIGITS, "", false).unwrap();
        let err = encrypt
            .transform("12-34", 7, &mut String::new())
            .unwrap_err();
        assert!(err.to_string().contains("row 7"), "{err}");
        assert!(FormatPreserving::new(&key(), "0", "", false).is_err());
        assert!(FormatPreserving::new(&key(), "0120", "", false).is_err());
    }
}
