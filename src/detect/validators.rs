//! Validators: the checks that turn a pattern candidate into a finding.
//!
//! A pattern only says "this looks like a card number"; a validator says whether it is one:
//! Luhn and brand prefixes for cards, per-country length and mod-97 for IBANs, the area / group /
//! serial rules for US SSNs, a real calendar date for dates, and so on. Validators run on
//! candidates only, never on whole texts, so they may afford a little work.
//!
//! Contract: [`Validator::check`] gets the whole text and the candidate's byte range and returns
//! the accepted byte range (possibly narrower: a phone number that swallowed a trailing number
//! group, a URL with its sentence's full stop, the value after `api_key=`) and optionally a
//! score that replaces the recognizer's base score. Validators never allocate on the common
//! path and never look outside `text`.
//!
//! ```
//! use amlguard::detect::Validator;
//! let luhn = Validator::from_name("luhn").unwrap();
//! assert!(luhn.check("4111 1111 1111 1111", 0, 19).is_some());
//! assert!(luhn.check("4111 1111 1111 1112", 0, 19).is_none());
//! ```

use std::net::Ipv6Addr;

use base64::Engine as _;

/// A validator that can be named by a custom recognizer or a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Validator {
    /// The Luhn checksum over the candidate's digits (at least two digits).
    Luhn,
    /// A payment card: 13 to 19 digits, Luhn, a known brand prefix and length.
    CreditCard,
    /// An IBAN: known country, that country's length, ISO 7064 mod-97 check digits.
    Mod97,
    /// A US social security number: area not 000, 666 or 900-999, group not 00, serial not 0000.
    Ssn,
    /// Four decimal octets of at most 255 with no leading zeros, not part of a longer dotted run.
    Ipv4,
    /// Anything `std::net::Ipv6Addr` parses, with at least two hexadecimal digits.
    Ipv6,
    /// A real calendar date between 1900 and 2099 (ISO, d/m/y, m/d/y or with a month name).
    Date,
    /// E.164 numbers and US, UK, DE, FR and IN national formats (digits counted per plan).
    Phone,
    /// RFC 5321 limits: local part up to 64 characters, no empty labels, alphabetic TLD.
    Email,
    /// A URL whose host has a dot (or is `localhost`); trailing punctuation is trimmed.
    Url,
    /// Three base64url parts whose header decodes to a JSON object with an `alg` member.
    Jwt,
    /// An Azure storage `AccountKey=` whose value decodes to 64 bytes.
    AzureStorageKey,
    /// An Azure SAS query: a `sig` of at least 16 characters with `sv` or `se`.
    SasToken,
    /// A PEM private-key block whose END label matches its BEGIN label.
    Pem,
    /// The value after `key=` / `token:` / `secret is`, long and random enough to be a secret.
    ApiKey,
    /// The whole candidate has Shannon entropy of at least 3.5 bits per character.
    Entropy,
}

/// What a validator accepted: a byte range of the text and an optional score override.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accepted {
    /// Start byte offset in the text.
    pub start: usize,
    /// End byte offset in the text (exclusive).
    pub end: usize,
    /// Score replacing the recognizer's base score, when the validator knows better.
    pub score: Option<f64>,
}

/// Shannon entropy threshold for generic secrets, in bits per character.
pub const SECRET_ENTROPY_BITS: f64 = 3.5;

/// Shortest value taken as a generic secret.
pub const SECRET_MIN_CHARS: usize = 16;

const NAMES: &[(&str, Validator)] = &[
    ("luhn", Validator::Luhn),
    ("credit_card", Validator::CreditCard),
    ("mod97", Validator::Mod97),
    ("iban", Validator::Mod97),
    ("ssn", Validator::Ssn),
    ("ipv4", Validator::Ipv4),
    ("ipv6", Validator::Ipv6),
    ("date", Validator::Date),
    ("phone", Validator::Phone),
    ("email", Validator::Email),
    ("url", Validator::Url),
    ("jwt", Validator::Jwt),
    ("azure_storage_key", Validator::AzureStorageKey),
    ("sas_token", Validator::SasToken),
    ("pem", Validator::Pem),
    ("api_key", Validator::ApiKey),
    ("entropy", Validator::Entropy),
];

impl Validator {
    /// The validator with this policy name (`luhn`, `mod97`, `ssn`, ...), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The names a policy may use, for error messages.
    pub fn names() -> String {
        NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }

    /// Check the candidate `text[start..end]`; see the module documentation.
    pub fn check(self, text: &str, start: usize, end: usize) -> Option<Accepted> {
        let candidate = text.get(start..end)?;
        let whole = |ok: bool| {
            ok.then_some(Accepted {
                start,
                end,
                score: None,
            })
        };
        match self {
            Validator::Luhn => {
                let digits: Vec<u8> = candidate
                    .bytes()
                    .filter(u8::is_ascii_digit)
                    .map(|b| b - b'0')
                    .collect();
                whole(digits.len() >= 2 && luhn_valid(&digits))
            }
            Validator::CreditCard => credit_card(text, start, end),
            Validator::Mod97 => whole(iban_valid(candidate)),
            Validator::Ssn => ssn(candidate).map(|score| Accepted {
                start,
                end,
                score: Some(score),
            }),
            Validator::Ipv4 => whole(ipv4_valid(text, start, end)),
            Validator::Ipv6 => ipv6(text, start, end),
            Validator::Date => whole(date_valid(candidate)),
            Validator::Phone => phone(text, start, end),
            Validator::Email => whole(email_valid(candidate)),
            Validator::Url => url(text, start, end),
            Validator::Jwt => whole(jwt_valid(candidate)),
            Validator::AzureStorageKey => whole(azure_key_valid(candidate)),
            Validator::SasToken => whole(sas_valid(candidate)),
            Validator::Pem => whole(pem_valid(candidate)),
            Validator::ApiKey => api_key(text, start, end),
            Validator::Entropy => whole(
                candidate.chars().count() >= SECRET_MIN_CHARS
                    && shannon_entropy(candidate) >= SECRET_ENTROPY_BITS,
            ),
        }
    }
}

/// Luhn (mod 10) over decimal digit values.
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    luhn_sum(digits).is_multiple_of(10)
}

/// The Luhn sum of decimal digit values: every second digit from the right doubled (digit
/// sums of the doubles from a table, two digits per step: this runs on every card candidate).
pub(crate) fn luhn_sum(digits: &[u8]) -> u32 {
    const DOUBLED: [u8; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let doubled = |d: u8| u32::from(DOUBLED.get(usize::from(d)).copied().unwrap_or(0));
    digits
        .rchunks(2)
        .map(|pair| match *pair {
            [left, right] => doubled(left) + u32::from(right),
            [single] => u32::from(single),
            _ => 0,
        })
        .sum()
}

/// Try the candidate's ends from the longest to the shortest: the full candidate, then each
/// point just before a separator. Patterns for numbers with separators are greedy and may
/// swallow a following number ("call 555-0100 2 times"); shorter prefixes recover the real one.
fn longest_valid_prefix<T>(
    text: &str,
    start: usize,
    end: usize,
    separators: &[u8],
    mut check: impl FnMut(usize) -> Option<T>,
) -> Option<T> {
    if let Some(found) = check(end) {
        return Some(found);
    }
    let bytes = text.as_bytes();
    let mut p = end;
    while p > start + 1 {
        p -= 1;
        if separators.contains(&bytes[p]) && bytes[p - 1].is_ascii_digit() {
            if let Some(found) = check(p) {
                return Some(found);
            }
        }
    }
    None
}

/// The digits and digit-group lengths of a short candidate, kept on the stack: validators run
/// on every candidate, so they do not allocate.
struct DigitGroups {
    digits: [u8; MAX_DIGITS],
    digit_count: usize,
    /// Group lengths at `1..=group_count` (slot 0 absorbs the non-digits before any group).
    groups: [u8; MAX_PARSED_BYTES + 1],
    group_count: usize,
    /// The non-digit bytes are all the same byte (or there are none).
    one_separator: bool,
}

/// Most digits and groups a validated number holds.
const MAX_DIGITS: usize = 64;
const MAX_GROUPS: usize = 16;
/// Candidates up to this long are parsed without a branch per byte.
const MAX_PARSED_BYTES: usize = 64;

impl DigitGroups {
    fn new() -> Self {
        Self {
            digits: [0; MAX_DIGITS],
            digit_count: 0,
            groups: [0; MAX_PARSED_BYTES + 1],
            group_count: 0,
            one_separator: true,
        }
    }

    /// Parse `text` into this fresh value; `false` when it holds more digits or groups than
    /// any number we validate. (Filled in place: returned by value, the 150 bytes were copied.)
    fn parse(&mut self, text: &str) -> bool {
        let bytes = text.as_bytes();
        if bytes.len() > MAX_PARSED_BYTES {
            // Longer candidates exist (a phone pattern over a long digit list) but are rare
            // and rejected, unless their digits and groups are few.
            return self.parse_long(bytes);
        }
        // Branch-free: digit and separator patterns are unpredictable, and a mispredicted
        // branch per byte cost more than the whole loop. The current group's length stays in
        // a register and is stored, not added to memory, at each byte: a read-modify-write of
        // the same slot chained every iteration.
        let mut in_group = 0usize;
        let mut group_len = 0u8;
        let mut separator: Option<u8> = None;
        for &b in bytes {
            let value = b.wrapping_sub(b'0');
            let is_digit = usize::from(value < 10);
            self.digits[self.digit_count & (MAX_DIGITS - 1)] = value;
            self.digit_count += is_digit;
            self.group_count += is_digit & !in_group & 1;
            group_len = if is_digit == 1 { group_len + 1 } else { 0 };
            // Non-digits write their zero to slot 0, which no group uses.
            self.groups[self.group_count * is_digit] = group_len;
            in_group = is_digit;
            if is_digit == 0 {
                self.one_separator &= *separator.get_or_insert(b) == b;
            }
        }
        self.group_count <= MAX_GROUPS
    }

    fn parse_long(&mut self, bytes: &[u8]) -> bool {
        let mut in_group = false;
        let mut separator = None;
        for &b in bytes {
            if b.is_ascii_digit() {
                let Some(slot) = self.digits.get_mut(self.digit_count) else {
                    return false;
                };
                *slot = b - b'0';
                self.digit_count += 1;
                if !in_group {
                    self.group_count += 1;
                    if self.group_count > MAX_GROUPS {
                        return false;
                    }
                }
                self.groups[self.group_count] += 1;
                in_group = true;
            } else {
                in_group = false;
                self.one_separator &= *separator.get_or_insert(b) == b;
            }
        }
        true
    }
    fn digits(&self) -> &[u8] {
        &self.digits[..self.digit_count]
    }
    fn groups(&self) -> &[u8] {
        &self.groups[1..=self.group_count]
    }
}

fn credit_card(text: &str, start: usize, end: usize) -> Option<Accepted> {
    longest_valid_prefix(text, start, end, b" -", |cut| {
        let candidate = &text[start..cut];
        let mut parsed = DigitGroups::new();
        if !parsed.parse(candidate) {
            return None;
        }
        let digits = parsed.digits();
        if !(13..=19).contains(&digits.len()) {
            return None;
        }
        let groups = parsed.groups();
        let grouped = groups.len() == 1 || groups.iter().all(|g| (3..=6).contains(g));
        (parsed.one_separator && grouped && brand_length_ok(digits) && luhn_valid(digits))
            .then_some(Accepted {
                start,
                end: cut,
                score: None,
            })
    })
}

fn prefix_number(digits: &[u8], count: usize) -> u32 {
    digits
        .iter()
        .take(count)
        .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
}

/// Known issuer prefixes (IIN ranges) and the lengths each brand issues.
fn brand_length_ok(digits: &[u8]) -> bool {
    let len = digits.len();
    if len < 6 {
        return false;
    }
    // The shorter prefixes from the six-digit one (one pass over the digits, not five).
    let p6 = prefix_number(digits, 6);
    let (p1, p2, p3, p4) = (p6 / 100_000, p6 / 10_000, p6 / 1_000, p6 / 100);
    let visa = p1 == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let amex = (p2 == 34 || p2 == 37) && len == 15;
    let discover =
        (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622_126..=622_925).contains(&p6))
            && (16..=19).contains(&len);
    let unionpay = p2 == 62 && (16..=19).contains(&len);
    let diners = ((300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39)
        && (14..=19).contains(&len);
    let jcb = (3528..=3589).contains(&p4) && (16..=19).contains(&len);
    let maestro = (p2 == 50 || (56..=58).contains(&p2) || p2 == 67) && (13..=19).contains(&len);
    let mir = (2200..=2204).contains(&p4) && (16..=19).contains(&len);
    visa || mastercard || amex || discover || unionpay || diners || jcb || maestro || mir
}

/// IBAN lengths per country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

fn iban_valid(candidate: &str) -> bool {
    // 34 characters is the longest IBAN of any country.
    let mut compact = [0u8; 34];
    let mut len = 0;
    for b in candidate.bytes().filter(|b| *b != b' ') {
        match compact.get_mut(len) {
            Some(slot) if b.is_ascii_alphanumeric() => *slot = b,
            _ => return false,
        }
        len += 1;
    }
    let compact = &compact[..len];
    if compact.len() < 15 {
        return false;
    }
    let Ok(country) = std::str::from_utf8(&compact[..2]) else {
        return false;
    };
    let expected = IBAN_LENGTHS
        .iter()
        .find(|(c, _)| *c == country)
        .map(|(_, l)| *l);
    if expected != Some(compact.len()) {
        return false;
    }
    // ISO 7064 mod 97-10 over BBAN + country + check digits, letters as 10..35.
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder: u32 = 0;
    for &b in rearranged {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            b'a'..=b'z' => u32::from(b - b'a') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// SSN score by format: dashed numbers are clear, a bare nine-digit number needs context.
fn ssn(candidate: &str) -> Option<f64> {
    let bytes = candidate.as_bytes();
    let score = match bytes.len() {
        9 => 0.3,
        11 if bytes[3] == b'-' && bytes[6] == b'-' => 0.85,
        11 if bytes[3] == b' ' && bytes[6] == b' ' => 0.6,
        _ => return None,
    };
    let mut digits = [0u8; 9];
    let mut count = 0;
    for &b in bytes {
        if b.is_ascii_digit() {
            *digits.get_mut(count)? = b - b'0';
            count += 1;
        } else if bytes.len() == 9 {
            return None;
        }
    }
    if count != 9 {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
    };
    let (area, group, serial) = (number(0..3), number(3..5), number(5..9));
    let invalid = area == 0
        || area == 666
        || area >= 900
        || group == 0
        || serial == 0
        // Numbers published in advertising and never issued.
        || (area, group, serial) == (78, 5, 1120)
        || (area, group, serial) == (219, 9, 9999);
    (!invalid).then_some(score)
}

fn ipv4_valid(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    // "1.2.3.4.5" and "v10.1.2.3.4" are versions or OIDs, not addresses.
    let dotted_digit_before =
        start >= 2 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit();
    let dotted_digit_after =
        end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit();
    if dotted_digit_before || dotted_digit_after {
        return false;
    }
    // One pass (this runs on every dotted quad): an octet is 1-3 digits, at most 255, with
    // no leading zero; a '.' closes one, the end of the candidate the fourth.
    let (mut dots, mut value, mut len, mut leading_zero) = (0, 0u32, 0, false);
    let octet_ok = |value: u32, len: usize, leading_zero: bool| {
        (1..=3).contains(&len) && value <= 255 && !(leading_zero && len > 1)
    };
    for &b in &bytes[start..end] {
        if b == b'.' {
            if dots == 3 || !octet_ok(value, len, leading_zero) {
                return false;
            }
            (dots, value, len) = (dots + 1, 0, 0);
        } else if b.is_ascii_digit() && len < 3 {
            leading_zero = if len == 0 { b == b'0' } else { leading_zero };
            (value, len) = (value * 10 + u32::from(b - b'0'), len + 1);
        } else {
            return false;
        }
    }
    dots == 3 && octet_ok(value, len, leading_zero)
}

fn ipv6(text: &str, start: usize, end: usize) -> Option<Accepted> {
    let mut end = end;
    // A sentence's full stop or a trailing colon is not part of the address.
    while end > start
        && matches!(text.as_bytes()[end - 1], b'.' | b':')
        && !text[start..end].ends_with("::")
    {
        end -= 1;
    }
    let candidate = &text[start..end];
    let hex_digits = candidate.bytes().filter(u8::is_ascii_hexdigit).count();
    (hex_digits >= 2 && candidate.parse::<Ipv6Addr>().is_ok()).then_some(Accepted {
        start,
        end,
        score: None,
    })
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The DATE pattern's alternation of month words, made from [`MONTHS`] so that the pattern
/// and [`names_month`] admit the same forms: the three-letter abbreviation, the whole name
/// and "sept" (`sep(?:t(?:ember)?)?`, `may`, `jun(?:e)?`, ...).
pub(crate) fn month_alternation() -> String {
    MONTHS
        .iter()
        .map(|full| match (&full[..3], &full[3..]) {
            (short, "") => short.to_owned(),
            ("sep", rest) => format!("sep(?:t(?:{})?)?", &rest[1..]),
            (short, rest) => format!("{short}(?:{rest})?"),
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Whether `word` names the month `full` as the DATE pattern admits it: the three-letter
/// abbreviation or the whole name (and "sept"), in any case; "Marchy" or "Septem" do not.
fn names_month(word: &[u8], full: &str) -> bool {
    let admitted =
        word.len() == 3 || word.len() == full.len() || (full == "september" && word.len() == 4);
    admitted
        && full
            .as_bytes()
            .get(..word.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(word))
}

fn month_number(word: &[u8]) -> Option<u32> {
    let end = word
        .iter()
        .rposition(|b| !matches!(b, b'.' | b','))
        .map_or(0, |last| last + 1);
    let word = &word[..end];
    MONTHS
        .iter()
        .position(|full| names_month(word, full))
        .map(|i| i as u32 + 1)
}

/// A run of ASCII digits as a number (`None` past `u32`).
fn parse_digits(run: &[u8]) -> Option<u32> {
    run.iter().try_fold(0u32, |acc, &b| {
        acc.checked_mul(10)?
            .checked_add(u32::from(b.wrapping_sub(b'0')))
    })
}

fn real_date(year: u32, month: u32, day: u32) -> bool {
    (1900..=2099).contains(&year)
        && i32::try_from(year)
            .ok()
            .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, month, day))
            .is_some()
}

fn date_valid(candidate: &str) -> bool {
    // Byte loops on the stack: this runs on every date-shaped candidate.
    let bytes = candidate.as_bytes();
    // The digit runs (a date has two or three), and the number of them.
    let mut numbers: [&[u8]; 3] = [&[]; 3];
    let mut count = 0;
    let mut rest = bytes;
    while let Some(first) = rest.iter().position(u8::is_ascii_digit) {
        let run_len = rest[first..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len() - first);
        let Some(slot) = numbers.get_mut(count) else {
            return false;
        };
        *slot = &rest[first..first + run_len];
        count += 1;
        rest = &rest[first + run_len..];
    }
    let numbers = &numbers[..count];
    if bytes.iter().any(u8::is_ascii_alphabetic) {
        let month = bytes
            .split(|b| matches!(b, b' ' | b','))
            .filter(|w| w.first().is_some_and(u8::is_ascii_alphabetic))
            .find_map(month_number);
        let (Some(month), [first, second]) = (month, numbers) else {
            return false;
        };
        let (Some(a), Some(b)) = (parse_digits(first), parse_digits(second)) else {
            return false;
        };
        return real_date(b, month, a);
    }
    let mut separators = bytes.iter().filter(|b| !b.is_ascii_digit());
    let (Some(first_separator), Some(second_separator), None) =
        (separators.next(), separators.next(), separators.next())
    else {
        return false;
    };
    let [first, second, third] = numbers else {
        return false;
    };
    if first_separator != second_separator {
        return false;
    }
    let (Some(a), Some(b), Some(c)) = (
        parse_digits(first),
        parse_digits(second),
        parse_digits(third),
    ) else {
        return false;
    };
    if first.len() == 4 {
        real_date(a, b, c)
    } else {
        // d/m/y or m/d/y: a real date in either order is a date.
        real_date(c, b, a) || real_date(c, a, b)
    }
}

fn phone(text: &str, start: usize, end: usize) -> Option<Accepted> {
    // The tail of a longer digit sequence ("4978 0492 9843 2939" after the card check failed)
    // is not a phone number: a number of three or more digits right before is a continuation.
    let bytes = text.as_bytes();
    if start >= 4
        && matches!(bytes[start - 1], b' ' | b'-' | b'.' | b'/')
        && bytes[start - 4..start - 1].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    // No rule of `phone_score` accepts fewer digits, and a prefix holds no more: most rejected
    // candidates (counts, versions, times) end here, before a parse per prefix.
    if bytes[start..end]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .count()
        < PHONE_MIN_DIGITS
    {
        return None;
    }
    longest_valid_prefix(text, start, end, b" ./-", |cut| {
        phone_score(&text[start..cut]).map(|score| Accepted {
            start,
            end: cut,
            score: Some(score),
        })
    })
}

/// The fewest digits a phone number has here (E.164 from 8; national numbers 10 to 12).
const PHONE_MIN_DIGITS: usize = 8;

fn phone_score(candidate: &str) -> Option<f64> {
    // A bare digit run has no country code and no grouping: reject it before parsing. (The
    // pattern gives no such candidate; prefixes cut before a first separator are such.)
    if candidate.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut parsed = DigitGroups::new();
    if !parsed.parse(candidate) {
        return None;
    }
    let (digits, groups) = (parsed.digits(), parsed.groups());
    let n = digits.len();
    let at = |i: usize| digits.get(i).copied().unwrap_or(0);
    if candidate.starts_with('+') {
        if !(PHONE_MIN_DIGITS..=15).contains(&n) {
            return None;
        }
        let plan_ok = match (at(0), at(1)) {
            // NANP: +1 NXX NXX XXXX.
            (1, _) => n == 11 && at(1) >= 2 && at(4) >= 2,
            (4, 4) => (11..=12).contains(&n),
            (4, 9) => (9..=14).contains(&n),
            (3, 3) => n == 11 && at(2) >= 1,
            (9, 1) => n == 12,
            _ => true,
        };
        return plan_ok.then_some(0.75);
    }
    // Without a country code a number needs visible grouping: bare digit runs are order
    // numbers, ids and amounts far more often than phone numbers.
    if groups.len() < 2 || groups.iter().any(|g| *g > 8) {
        return None;
    }
    let with_area_in_parentheses = candidate.starts_with('(');
    // National numbers are written with one kind of separator ("020 7946 0018",
    // "201.555.0123"); a mix usually means two numbers ("0100 2024-03-15").
    let after_area = match with_area_in_parentheses
        .then(|| candidate.find(')'))
        .flatten()
    {
        Some(close) => &candidate[close + 1..],
        None => candidate,
    };
    let mut separators = after_area
        .trim_start()
        .bytes()
        .filter(|b| !b.is_ascii_digit());
    if let Some(first) = separators.next() {
        if !separators.all(|b| b == first) {
            return None;
        }
    }
    if at(0) == 0 {
        // Trunk prefix 0: UK (11 digits), DE (10-12), FR (10), IN (11).
        let pairs_ok = groups.iter().all(|g| *g >= 2);
        return ((10..=12).contains(&n) && pairs_ok).then_some(0.6);
    }
    let us_grouping = groups == [3, 3, 4] || (with_area_in_parentheses && groups == [3, 7]);
    if n == 10 && us_grouping && at(0) >= 2 && at(3) >= 2 {
        return Some(0.65);
    }
    if n == 11 && at(0) == 1 && groups == [1, 3, 3, 4] && at(1) >= 2 && at(4) >= 2 {
        return Some(0.65);
    }
    // India mobile: 98765 43210.
    if n == 10 && groups == [5, 5] && at(0) >= 6 {
        return Some(0.6);
    }
    None
}

fn email_valid(candidate: &str) -> bool {
    // One byte loop per part, no searches or splits: this runs on every e-mail found, and on
    // strings this short the set-up of a vector search costs more than the loop.
    let bytes = candidate.as_bytes();
    let Some(at) = bytes.iter().rposition(|&b| b == b'@') else {
        return false;
    };
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    if !(1..=64).contains(&local.len()) || domain.len() > 253 {
        return false;
    }
    // A leading '.' counts as doubled (the start stands for one), a trailing one is checked
    // after the loop.
    let mut previous = b'.';
    let mut doubled_dot = false;
    for &b in local {
        doubled_dot |= b == b'.' && previous == b'.';
        previous = b;
    }
    if doubled_dot || previous == b'.' {
        return false;
    }
    // Labels: 1 to 63 bytes, no '-' at either end; the last one (the TLD) two or more letters.
    let (mut label_len, mut labels_ok, mut tld_letters, mut dots) = (0usize, true, true, 0);
    let mut previous = b'.';
    for &b in domain {
        if b == b'.' {
            labels_ok &= (1..=63).contains(&label_len) && previous != b'-';
            (label_len, tld_letters, dots) = (0, true, dots + 1);
        } else {
            labels_ok &= label_len > 0 || b != b'-';
            label_len += 1;
            tld_letters &= b.is_ascii_alphabetic();
        }
        previous = b;
    }
    labels_ok && dots > 0 && (2..=63).contains(&label_len) && tld_letters
}

fn url(text: &str, start: usize, end: usize) -> Option<Accepted> {
    let mut end = end;
    let bytes = text.as_bytes();
    while end > start
        && matches!(
            bytes[end - 1],
            b'.' | b',' | b';' | b':' | b'!' | b')' | b']' | b'}' | b'\'' | b'"'
        )
    {
        end -= 1;
    }
    let candidate = &text[start..end];
    let rest = match candidate.find("://") {
        Some(i) => &candidate[i + 3..],
        None => candidate,
    };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    let host_ok = host == "localhost"
        || (host.contains('.')
            && !host.starts_with('.')
            && !host.ends_with('.')
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    host_ok.then_some(Accepted {
        start,
        end,
        score: None,
    })
}

fn base64url_decode(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
}

fn jwt_valid(candidate: &str) -> bool {
    let mut parts = candidate.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(header) = base64url_decode(header) else {
        return false;
    };
    let header_ok = serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.contains_key("alg")))
        .unwrap_or(false);
    header_ok && base64url_decode(payload).is_some()
}

fn azure_key_valid(candidate: &str) -> bool {
    let Some(at) = candidate.find("AccountKey=") else {
        return false;
    };
    let key = &candidate[at + "AccountKey=".len()..];
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|bytes| bytes.len() == 64)
}

fn sas_valid(candidate: &str) -> bool {
    let mut signature_ok = false;
    let mut version_or_expiry = false;
    for pair in candidate.trim_start_matches(['?', '&']).split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "sig" => signature_ok = value.len() >= 16,
            "sv" | "se" => version_or_expiry = !value.is_empty(),
            _ => {}
        }
    }
    signature_ok && version_or_expiry
}

fn pem_valid(candidate: &str) -> bool {
    let label = |marker: &str| {
        candidate
            .find(marker)
            .map(|i| &candidate[i + marker.len()..])
            .and_then(|rest| rest.split("-----").next())
    };
    match (label("-----BEGIN "), label("-----END ")) {
        (Some(begin), Some(end)) => begin == end && begin.ends_with("PRIVATE KEY"),
        _ => false,
    }
}

/// Bits per character of the text's character distribution.
pub fn shannon_entropy(text: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    let mut others = std::collections::HashMap::new();
    for c in text.chars() {
        total += 1;
        if c.is_ascii() {
            counts[c as usize] += 1;
        } else {
            *others.entry(c).or_insert(0u32) += 1;
        }
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .iter()
        .copied()
        .chain(others.into_values())
        .filter(|c| *c > 0)
        .map(|c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum()
}

fn api_key(text: &str, start: usize, end: usize) -> Option<Accepted> {
    let bytes = text.as_bytes();
    let mut i = start;
    // The keyword ("api_key", "client-secret", ...), an optional closing quote, then ':' '=' or "is".
    while i < end && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' || bytes[i] == b'-') {
        i += 1;
    }
    let skip = |i: &mut usize, set: &[u8]| {
        while *i < end && set.contains(&bytes[*i]) {
            *i += 1;
        }
    };
    skip(&mut i, b"\"'");
    skip(&mut i, b" \t");
    if i < end && (bytes[i] == b':' || bytes[i] == b'=') {
        i += 1;
    } else if text[i..end].starts_with("is") {
        i += 2;
    } else {
        return None;
    }
    skip(&mut i, b" \t");
    skip(&mut i, b"\"'");
    let mut value_end = end;
    while value_end > i && matches!(bytes[value_end - 1], b'.' | b'"' | b'\'') {
        value_end -= 1;
    }
    let value = &text[i..value_end];
    let classes = [
        value.bytes().any(|b| b.is_ascii_lowercase()),
        value.bytes().any(|b| b.is_ascii_uppercase()),
        value.bytes().any(|b| b.is_ascii_digit()),
    ];
    let random_enough = value.len() >= SECRET_MIN_CHARS
        && classes.iter().filter(|c| **c).count() >= 2
        && shannon_entropy(value) >= SECRET_ENTROPY_BITS;
    random_enough.then_some(Accepted {
        start: i,
        end: value_end,
        score: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: Validator, text: &str) -> bool {
        v.check(text, 0, text.len()).is_some()
    }

    #[test]
    fn cards_need_luhn_brand_and_length() {
        assert!(ok(Validator::CreditCard, "4111111111111111"));
        assert!(ok(Validator::CreditCard, "4111-1111-1111-1111"));
        assert!(ok(Validator::CreditCard, "3782 822463 10005"));
        assert!(!ok(Validator::CreditCard, "4111111111111112"));
        // Luhn-valid but no brand issues 16 digits starting with 1.
        assert!(!ok(Validator::CreditCard, "1111111111111117"));
        assert!(!ok(Validator::CreditCard, "4111-1111 1111-1111"));
        let trailing = "4111 1111 1111 1111 12";
        let found = Validator::CreditCard
            .check(trailing, 0, trailing.len())
            .unwrap();
        assert_eq!(found.end, 19);
    }

    #[test]
    fn luhn_sum_equals_the_textbook_definition() {
        // Every second digit from the right doubled, 9 subtracted from doubles above 9.
        let reference = |digits: &[u8]| -> u32 {
            digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| {
                    let d = u32::from(d) * if i % 2 == 1 { 2 } else { 1 };
                    if d > 9 {
                        d - 9
                    } else {
                        d
                    }
                })
                .sum()
        };
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..=40 {
            for _ in 0..200 {
                let digits: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % 10) as u8
                    })
                    .collect();
                assert_eq!(luhn_sum(&digits), reference(&digits), "{digits:?}");
            }
        }
        // Published test numbers: valid, and one digit changed.
        assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    }

    #[test]
    fn ssn_rules() {
        assert!(ok(Validator::Ssn, "123-45-6789"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "078-05-1120",
            "123-45 6789",
        ] {
            assert!(!ok(Validator::Ssn, bad), "{bad}");
        }
        assert_eq!(
            Validator::Ssn.check("123456789", 0, 9).unwrap().score,
            Some(0.3)
        );
    }

    #[test]
    fn iban_length_and_mod97() {
        assert!(ok(Validator::Mod97, "GB82WEST12345698765432"));
        assert!(ok(Validator::Mod97, "GB82 WEST 1234 5698 7654 32"));
        assert!(ok(Validator::Mod97, "DE89370400440532013000"));
        assert!(!ok(Validator::Mod97, "GB83WEST12345698765432"));
        assert!(!ok(Validator::Mod97, "GB82WEST1234569876543"));
        assert!(!ok(Validator::Mod97, "QQ82WEST12345698765432"));
    }

    #[test]
    fn ip_addresses() {
        assert!(ok(Validator::Ipv4, "192.168.0.1"));
        assert!(!ok(Validator::Ipv4, "256.1.1.1"));
        assert!(!ok(Validator::Ipv4, "01.2.3.4"));
        let version = "1.2.3.4.5";
        assert!(Validator::Ipv4.check(version, 0, 7).is_none());
        assert!(ok(Validator::Ipv6, "2001:db8::8a2e:370:7334"));
        assert!(ok(Validator::Ipv6, "::ffff:192.0.2.1"));
        assert!(!ok(Validator::Ipv6, "12:30:45"));
        assert!(!ok(Validator::Ipv6, "::"));
    }

    #[test]
    fn dates_are_real_calendar_dates() {
        for good in [
            "2024-02-29",
            "29/02/2024",
            "02/29/2024",
            "15.03.2024",
            "15 March 2024",
            "Mar 15, 2024",
        ] {
            assert!(ok(Validator::Date, good), "{good}");
        }
        for bad in [
            "2023-02-29",
            "31/04/2024",
            "2024-13-01",
            "2024-03/15",
            "15 Foo 2024",
            "15 Marchy 2024",
            "Septem 3, 2024",
            "1850-01-01",
        ] {
            assert!(!ok(Validator::Date, bad), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for good in [
            "+1 201-555-0123",
            "(201) 555-0123",
            "201-555-0123",
            "+44 20 7946 0018",
            "020 7946 0018",
            "+49 30 12345678",
            "030 12345678",
            "+33 1 23 45 67 89",
            "01 23 45 67 89",
            "+91 98765 43210",
            "98765 43210",
            "+14155552671",
            "1-800-555-0199",
        ] {
            assert!(ok(Validator::Phone, good), "{good}");
        }
        for bad in [
            "2024-03-15",
            "15.03.2024",
            "4155552671",
            "123-45-6789",
            "2.10.3",
            "+1 123-555-0123",
            "12 34",
        ] {
            assert!(!ok(Validator::Phone, bad), "{bad}");
        }
    }

    #[test]
    fn no_phone_rule_accepts_fewer_than_the_minimum_digits() {
        // The validator rejects such candidates before scoring any prefix: that holds only while
        // every rule of `phone_score` needs `PHONE_MIN_DIGITS` digits or more.
        let mut rng = crate::datasets::Rng::for_block(0x9405e, 0);
        let pieces = [
            "+", "(", ")", " ", "-", ".", "/", "0", "1", "2", "4", "9", "44", "91",
        ];
        let mut accepted = 0;
        for _ in 0..200_000 {
            let count = rng.range(1, 14);
            let candidate: String = (0..count)
                .map(|_| pieces[rng.range(0, pieces.len() as u64 - 1) as usize])
                .collect();
            let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
            let score = phone_score(&candidate);
            assert!(
                score.is_none() || digits >= PHONE_MIN_DIGITS,
                "{candidate:?} has {digits} digits"
            );
            accepted += usize::from(score.is_some());
        }
        assert!(accepted > 0, "the generator reaches accepted numbers");
    }

    #[test]
    fn digit_groups_match_a_plain_split() {
        let mut rng = crate::datasets::Rng::for_block(0xd161, 0);
        let pieces = ["0", "7", "9", " ", "-", ".", "+", "("];
        // Both loops (up to and past 64 bytes) at their limits, then random texts.
        let edges = [
            "1".repeat(64),
            "1".repeat(65),
            "1".repeat(300),
            "1 ".repeat(16),
            "1 ".repeat(17),
            "12-".repeat(40),
        ];
        let random = (0..20_000).map(|_| {
            let len = rng.range(0, 90);
            (0..len).map(|_| rng.pick(&pieces)).collect::<String>()
        });
        for text in edges.into_iter().chain(random) {
            let digits: Vec<u8> = text
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            let groups: Vec<usize> = text
                .split(|c: char| !c.is_ascii_digit())
                .filter(|g| !g.is_empty())
                .map(str::len)
                .collect();
            let mut separators = text.bytes().filter(|b| !b.is_ascii_digit());
            let one_separator = separators
                .next()
                .is_none_or(|first| separators.all(|b| b == first));
            let mut parsed = DigitGroups::new();
            let fits = digits.len() <= MAX_DIGITS && groups.len() <= MAX_GROUPS;
            assert_eq!(parsed.parse(&text), fits, "{text:?}");
            if fits {
                assert_eq!(parsed.digits(), digits, "{text:?}");
                let parsed_groups: Vec<usize> =
                    parsed.groups().iter().map(|g| usize::from(*g)).collect();
                assert_eq!(parsed_groups, groups, "{text:?}");
                assert_eq!(parsed.one_separator, one_separator, "{text:?}");
            }
        }
    }

    /// The date and IPv4 rules as first written with `str` splits (they allocated); the byte
    /// loops must give the same verdicts.
    fn date_reference(candidate: &str) -> bool {
        let month_number = |word: &str| {
            let lower = word.trim_end_matches(['.', ',']).to_ascii_lowercase();
            MONTHS
                .iter()
                .position(|full| {
                    let forms = [
                        &full[..3],
                        full,
                        if *full == "september" { "sept" } else { full },
                    ];
                    forms.contains(&lower.as_str())
                })
                .map(|i| i as u32 + 1)
        };
        let numbers: Vec<&str> = candidate
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        let parse = |s: &str| s.parse::<u32>().ok();
        if candidate.bytes().any(|b| b.is_ascii_alphabetic()) {
            let month = candidate
                .split([' ', ','])
                .filter(|w| w.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()))
                .find_map(month_number);
            let (Some(month), [first, second]) = (month, numbers.as_slice()) else {
                return false;
            };
            let (Some(a), Some(b)) = (parse(first), parse(second)) else {
                return false;
            };
            return real_date(b, month, a);
        }
        let separators: Vec<u8> = candidate.bytes().filter(|b| !b.is_ascii_digit()).collect();
        if separators.len() != 2 || separators[0] != separators[1] || numbers.len() != 3 {
            return false;
        }
        let (Some(a), Some(b), Some(c)) = (parse(numbers[0]), parse(numbers[1]), parse(numbers[2]))
        else {
            return false;
        };
        if numbers[0].len() == 4 {
            real_date(a, b, c)
        } else {
            real_date(c, b, a) || real_date(c, a, b)
        }
    }

    fn ipv4_reference(octets: &str) -> bool {
        let octets: Vec<&str> = octets.split('.').collect();
        octets.len() == 4
            && octets.iter().all(|o| {
                !o.is_empty()
                    && o.len() <= 3
                    && o.bytes().all(|b| b.is_ascii_digit())
                    && (o.len() == 1 || !o.starts_with('0'))
                    && o.parse::<u16>().is_ok_and(|v| v <= 255)
            })
    }

    #[test]
    fn dates_and_ipv4_match_the_str_formulation() {
        let mut rng = crate::datasets::Rng::for_block(0xda7e, 0);
        let pieces = [
            "0",
            "1",
            "2",
            "3",
            "9",
            "12",
            "31",
            "2024",
            "1999",
            "4294967296",
            "-",
            "/",
            ".",
            " ",
            ",",
            "Mar",
            "march",
            "JAN",
            "Sept.",
            "may,",
            "ma",
            "Marchy",
            "Septe",
            "JUNE",
            "december",
            "é",
            "x",
            "255",
            "256",
            "01",
        ];
        for _ in 0..60_000 {
            let count = rng.range(1, 8);
            let text: String = (0..count).map(|_| rng.pick(&pieces)).collect();
            assert_eq!(date_valid(&text), date_reference(&text), "{text:?}");
            assert_eq!(
                ipv4_valid(&text, 0, text.len()),
                ipv4_reference(&text),
                "{text:?}"
            );
        }
        for date in ["2024-03-15", "15/03/2024", "3 March 2024", "Mar. 3rd, 2024"] {
            assert!(date_valid(date) && date_reference(date), "{date}");
        }
        assert!(ipv4_valid("10.0.0.255", 0, 10) && ipv4_reference("10.0.0.255"));
    }

    #[test]
    fn the_date_pattern_and_the_validator_admit_the_same_month_words() {
        let pattern = format!("^(?i-u:{})$", month_alternation());
        let words = regex_automata::meta::Regex::new(&pattern).unwrap();
        let mut tried = 0;
        for full in MONTHS {
            for len in 1..=full.len() + 1 {
                let word = format!("{full}y")[..len].to_owned();
                for word in [word.clone(), word.to_ascii_uppercase()] {
                    let admitted = MONTHS.iter().any(|m| names_month(word.as_bytes(), m));
                    assert_eq!(words.is_match(&word), admitted, "{word:?}");
                    tried += 1;
                }
            }
        }
        assert_eq!(tried, 172);
        assert!(words.is_match("Sept") && words.is_match("jun") && !words.is_match("septe"));
    }

    #[test]
    fn emails() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_domain = format!("a@{}.com", "b".repeat(64));
        for good in ["a@b.co", "zoë.m+x@mail.example.org", "x-y_z@a-b.c-d.info"] {
            assert!(ok(Validator::Email, good), "{good}");
        }
        for bad in [
            ".a@b.co",
            "a.@b.co",
            "a..b@c.de",
            "a@-b.co",
            "a@b-.co",
            "a@b..co",
            "a@b.c",
            "a@b.c0m",
            "a@bco",
            "@b.co",
            long_local.as_str(),
            long_domain.as_str(),
        ] {
            assert!(!ok(Validator::Email, bad), "{bad}");
        }
        // Same verdicts as a plain `str` formulation of the rules, on every short string
        // over the characters that decide them.
        let reference = |candidate: &str| {
            let Some((local, domain)) = candidate.rsplit_once('@') else {
                return false;
            };
            let local_ok = !local.is_empty()
                && local.len() <= 64
                && !local.starts_with('.')
                && !local.ends_with('.')
                && !local.contains("..");
            let tld = domain.rsplit_once('.').map(|(_, tld)| tld);
            local_ok
                && domain.len() <= 253
                && domain.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-')
                })
                && tld.is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()))
        };
        let alphabet = ["a", "b", ".", "-", "@", "1", "ë"];
        let mut compared = 0;
        for len in 1..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut text = String::new();
                for _ in 0..len {
                    text.push_str(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                assert_eq!(email_valid(&text), reference(&text), "{text:?}");
                compared += 1;
            }
        }
        assert!(compared > 100_000);
    }

    #[test]
    fn secrets() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(ok(Validator::Jwt, jwt));
        assert!(!ok(Validator::Jwt, "eyJub3QiOiJhbGcifQ.eyJ9.abc"));
        let key = format!(
            "AccountKey={}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 64])
        );
        assert!(ok(Validator::AzureStorageKey, &key));
        assert!(ok(
            Validator::SasToken,
            "sv=2022-11-02&sr=b&sp=r&sig=abcdEFGH1234ijkl%2BmnoP%3D"
        ));
        assert!(!ok(Validator::SasToken, "sv=2022-11-02&sr=b"));
        let text = "api_key = \"Zx8Qw2LmN4vB7tY1pR6s\".";
        let found = Validator::ApiKey.check(text, 0, text.len() - 1).unwrap();
        assert_eq!(&text[found.start..found.end], "Zx8Qw2LmN4vB7tY1pR6s");
        assert!(Validator::ApiKey
            .check("token: aaaaaaaaaaaaaaaaaaaa", 0, 27)
            .is_none());
        assert!(shannon_entropy("abcd") > 1.99 && shannon_entropy("aaaa") == 0.0);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Validator::from_name("mod97"), Some(Validator::Mod97));
        assert_eq!(Validator::from_name("nope"), None);
        assert!(Validator::names().contains("luhn"));
    }
}
