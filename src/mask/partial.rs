//! `mask`: partial masking of strings.
//!
//! Keeps the first `keep_first` and last `keep_last` maskable characters and replaces the rest
//! with `mask_char`, one for one, so lengths are kept. Characters listed as separators (for
//! example `-`, ` ` and `@`) are kept in place and not counted; with `keep_email_domain` only the
//! part before the last `@` is masked. A value with no more maskable characters than would be
//! kept is masked entirely, so a short value is never revealed whole. Lengths count Unicode
//! characters, not bytes; ASCII values take a byte-level fast path.
//!
//! ```text
//! keep_last=4, keep_separators        "4111-1111-1111-1234"  ->  "****-****-****-1234"
//! keep_first=1, keep_email_domain     "jane.doe@example.com" ->  "j*******@example.com"
//! ```

use arrow_array::ArrayRef;

use super::strings::map_strings;
use super::{ChunkContext, ColumnOperator};
use crate::error::Result;

/// The separators kept when a policy says `keep_separators: true`.
pub const DEFAULT_SEPARATORS: &str = " -_.@()/+:";

/// Partial masking; see the module documentation.
pub struct PartialMask {
    keep_first: usize,
    keep_last: usize,
    mask_char: char,
    separators: Vec<char>,
    ascii_separator: [bool; 128],
    keep_email_domain: bool,
}

impl PartialMask {
    /// Build a partial mask.
    pub fn new(
        keep_first: usize,
        keep_last: usize,
        mask_char: char,
        separators: &str,
        keep_email_domain: bool,
    ) -> Self {
        let mut ascii_separator = [false; 128];
        for c in separators.chars().filter(char::is_ascii) {
            ascii_separator[c as usize] = true;
        }
        Self {
            keep_first,
            keep_last,
            mask_char,
            separators: separators.chars().collect(),
            ascii_separator,
            keep_email_domain,
        }
    }

    pub(crate) fn mask_into(&self, value: &str, out: &mut String) {
        if self.keep_email_domain {
            if let Some(at) = value.rfind('@') {
                self.mask_part(&value[..at], out);
                out.push_str(&value[at..]);
                return;
            }
        }
        self.mask_part(value, out);
    }

    fn mask_part(&self, value: &str, out: &mut String) {
        if value.is_ascii() && self.mask_char.is_ascii() {
            self.mask_ascii(value, out);
        } else {
            self.mask_unicode(value, out);
        }
    }

    fn kept_range(&self, maskable: usize) -> (usize, usize) {
        if maskable <= self.keep_first + self.keep_last {
            // Keeping this much would reveal the whole value: mask all of it.
            (0, maskable)
        } else {
            (self.keep_first, maskable - self.keep_last)
        }
    }

    fn mask_ascii(&self, value: &str, out: &mut String) {
        let is_separator = |b: u8| self.ascii_separator[usize::from(b)];
        let bytes = value.as_bytes();
        if self.separators.is_empty() {
            let (mask_from, mask_to) = self.kept_range(bytes.len());
            out.push_str(&value[..mask_from]);
            out.extend(std::iter::repeat_n(self.mask_char, mask_to - mask_from));
            out.push_str(&value[mask_to..]);
            return;
        }
        let maskable = bytes.iter().filter(|b| !is_separator(**b)).count();
        let (mask_from, mask_to) = self.kept_range(maskable);
        let mut index = 0;
        for &b in bytes {
            if is_separator(b) {
                out.push(char::from(b));
            } else {
                out.push(if (mask_from..mask_to).contains(&index) {
                    self.mask_char
                } else {
                    char::from(b)
                });
                index += 1;
            }
        }
    }

    fn mask_unicode(&self, value: &str, out: &mut String) {
        let is_separator = |c: char| self.separators.contains(&c);
        let maskable = value.chars().filter(|c| !is_separator(*c)).count();
        let (mask_from, mask_to) = self.kept_range(maskable);
        let mut index = 0;
        for c in value.chars() {
            if is_separator(c) {
                out.push(c);
            } else {
                out.push(if (mask_from..mask_to).contains(&index) {
                    self.mask_char
                } else {
                    c
                });
                index += 1;
            }
        }
    }
}

impl ColumnOperator for PartialMask {
    fn name(&self) -> &'static str {
        "mask"
    }
    fn apply(&self, input: &ArrayRef, _: &ChunkContext<'_>) -> Result<ArrayRef> {
        map_strings(input.as_ref(), |_, value, out| {
            self.mask_into(value, out);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(op: &PartialMask, value: &str) -> String {
        let mut out = String::new();
        op.mask_into(value, &mut out);
        out
    }

    #[test]
    fn keeps_last_digits_and_separators() {
        let op = PartialMask::new(0, 4, '*', DEFAULT_SEPARATORS, false);
        assert_eq!(mask(&op, "4111-1111-1111-1234"), "****-****-****-1234");
        let plain = PartialMask::new(0, 4, '*', "", false);
        assert_eq!(mask(&plain, "4111-1111-1111-1234"), "***************1234");
    }

    #[test]
    fn email_domain_is_kept() {
        let op = PartialMask::new(1, 0, '*', "", true);
        assert_eq!(mask(&op, "jane.doe@example.com"), "j*******@example.com");
        assert_eq!(mask(&op, "no-at-sign"), "n*********");
    }

    #[test]
    fn short_values_are_never_revealed_whole() {
        let op = PartialMask::new(2, 2, '#', "", false);
        assert_eq!(mask(&op, "abcd"), "####");
        assert_eq!(mask(&op, "abcde"), "ab#de");
        assert_eq!(mask(&op, ""), "");
    }

    #[test]
    fn counts_characters_not_bytes() {
        let op = PartialMask::new(1, 1, '•', " ", false);
        assert_eq!(mask(&op, "Zoë Ünal"), "Z•• •••l");
        let ascii_mask = PartialMask::new(1, 1, '*', "", false);
        assert_eq!(mask(&ascii_mask, "éèêë"), "é**ë");
    }
}
