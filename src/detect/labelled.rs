//! Synthetic free-text notes with ground-truth spans, to measure detection quality.
//!
//! [`labelled_notes`] writes notes from sentence templates and records, for every value it
//! inserts, the entity and its character span. Between the real values it mixes in hard
//! negatives that a careless recognizer reports: Luhn-invalid card numbers, nine-digit numbers
//! that are not SSNs (order numbers, numbers in invalid SSN ranges), version strings such as
//! `2.10.3`, IBANs with wrong check digits, out-of-range IPv4 addresses, ISBNs, amounts, times
//! and low-entropy "passwords". Dates written like phone numbers (`2024-03-15`, `15.03.2024`)
//! are labelled DATE, so a PHONE there is a false positive. Names are multi-byte on purpose.
//! [`evaluate`] compares a detector's output with the labels: exact (entity, start, end)
//! matches count as true positives. Deterministic in `(rows, seed)`; nothing here is real data.
//!
//! ```
//! use amlguard::detect::{labelled, Detector};
//! let notes = labelled::labelled_notes(200, 1);
//! let quality = labelled::evaluate(&Detector::builtin().unwrap(), &notes).unwrap();
//! assert!(quality.iter().any(|q| q.entity == "EMAIL" && q.true_positives > 0));
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, StringArray};
use base64::Engine as _;

use super::engine::{count_chars, Detector};
use super::recognizers::*;
use super::scan::detect;
use crate::datasets::{self, Rng, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES};
use crate::error::Result;

/// One labelled span, in character offsets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelledSpan {
    /// Entity name.
    pub entity: &'static str,
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
}

/// A note and its ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledNote {
    /// The text.
    pub text: String,
    /// Every PII or secret value in it.
    pub spans: Vec<LabelledSpan>,
}

struct NoteWriter {
    text: String,
    chars: usize,
    spans: Vec<LabelledSpan>,
}

impl NoteWriter {
    fn push(&mut self, text: &str) {
        self.text.push_str(text);
        self.chars += count_chars(text.as_bytes());
    }
    fn entity(&mut self, entity: &'static str, value: &str) {
        let start = self.chars;
        self.push(value);
        self.spans.push(LabelledSpan {
            entity,
            start,
            end: self.chars,
        });
    }
}

fn us_phone(rng: &mut Rng, out: &mut String) {
    let (area, exchange, line) = (rng.range(201, 989), rng.range(200, 999), rng.below(10_000));
    let _ = match rng.below(5) {
        0 => write!(out, "+1 {area}-{exchange}-{line:04}"),
        1 => write!(out, "({area}) {exchange}-{line:04}"),
        2 => write!(out, "{area}-{exchange}-{line:04}"),
        3 => write!(out, "{area}.{exchange}.{line:04}"),
        _ => write!(out, "+1{area}{exchange}{line:04}"),
    };
}

fn phone(rng: &mut Rng, out: &mut String) {
    let _ = match rng.below(12) {
        0..=2 => {
            us_phone(rng, out);
            Ok(())
        }
        3 => write!(out, "+44 20 7946 {:04}", rng.below(10_000)),
        4 => write!(out, "020 7946 {:04}", rng.below(10_000)),
        5 => write!(out, "07700 9{:05}", rng.below(100_000)),
        6 => write!(out, "+49 30 {:08}", rng.below(100_000_000)),
        7 => write!(out, "0151 {:08}", rng.below(100_000_000)),
        8 => write!(
            out,
            "+33 {} {:02} {:02} {:02} {:02}",
            rng.range(1, 9),
            rng.below(100),
            rng.below(100),
            rng.below(100),
            rng.below(100)
        ),
        9 => write!(
            out,
            "0{} {:02} {:02} {:02} {:02}",
            rng.range(1, 9),
            rng.below(100),
            rng.below(100),
            rng.below(100),
            rng.below(100)
        ),
        10 => write!(
            out,
            "+91 {}{:04} {:05}",
            rng.range(6, 9),
            rng.below(10_000),
            rng.below(100_000)
        ),
        _ => write!(
            out,
            "{}{:04} {:05}",
            rng.range(6, 9),
            rng.below(10_000),
            rng.below(100_000)
        ),
    };
}

const MONTH_NAMES: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn date(rng: &mut Rng, out: &mut String) {
    let (y, m, d) = (rng.range(1950, 2030), rng.range(1, 12), rng.range(1, 28));
    let _ = match rng.below(6) {
        0 => write!(out, "{y}-{m:02}-{d:02}"),
        1 => write!(out, "{d:02}/{m:02}/{y}"),
        2 => write!(out, "{m:02}/{d:02}/{y}"),
        3 => write!(out, "{d:02}.{m:02}.{y}"),
        4 => write!(out, "{d} {} {y}", MONTH_NAMES[m as usize - 1]),
        _ => write!(out, "{} {d}, {y}", MONTH_NAMES[m as usize - 1]),
    };
}

fn ipv4(rng: &mut Rng, out: &mut String) {
    let _ = write!(
        out,
        "{}.{}.{}.{}",
        rng.range(1, 223),
        rng.below(256),
        rng.below(256),
        rng.range(1, 254)
    );
}

fn hex_group(rng: &mut Rng) -> String {
    format!("{:x}", rng.below(0x10000))
}

fn ipv6(rng: &mut Rng, out: &mut String) {
    let groups: Vec<String> = (0..8).map(|_| hex_group(rng)).collect();
    match rng.below(3) {
        0 => out.push_str(&groups.join(":")),
        1 => {
            let _ = write!(out, "2001:db8::{}:{}", groups[0], groups[1]);
        }
        _ => {
            let _ = write!(out, "fe80::{}:{}:{}", groups[2], groups[3], groups[4]);
        }
    }
}

const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_text(rng: &mut Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.below(alphabet.len() as u64) as usize]))
        .collect()
}

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.below(256) as u8).collect()
}

fn jwt(rng: &mut Rng, out: &mut String) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let alg = ["HS256", "RS256", "ES256"][rng.below(3) as usize];
    let header = b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let payload = b64.encode(format!(
        r#"{{"sub":"{}","iat":{}}}"#,
        rng.below(1_000_000),
        1_700_000_000 + rng.below(1_000_000)
    ));
    let signature = b64.encode(random_bytes(rng, 32));
    let _ = write!(out, "{header}.{payload}.{signature}");
}

fn azure_connection_string(rng: &mut Rng, out: &mut String) {
    let key = base64::engine::general_purpose::STANDARD.encode(random_bytes(rng, 64));
    let _ = write!(
        out,
        "DefaultEndpointsProtocol=https;AccountName=stor{};AccountKey={key}",
        rng.below(100_000)
    );
}

fn sas_query(rng: &mut Rng, out: &mut String) {
    let signature = base64::engine::general_purpose::STANDARD
        .encode(random_bytes(rng, 32))
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let _ = write!(
        out,
        "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2025-0{}-01T00:00:00Z&spr=https&sig={signature}",
        rng.range(1, 9)
    );
}

fn pem(rng: &mut Rng, out: &mut String) {
    let body = base64::engine::general_purpose::STANDARD.encode(random_bytes(rng, 144));
    let label = ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"][rng.below(3) as usize];
    let _ = writeln!(out, "-----BEGIN {label}-----");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    let _ = write!(out, "-----END {label}-----");
}

fn aws_key_id(rng: &mut Rng, out: &mut String) {
    out.push_str(if rng.chance(70) { "AKIA" } else { "ASIA" });
    out.push_str(&random_text(rng, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
}

fn email(rng: &mut Rng, first: &str, last: &str, out: &mut String) {
    if rng.chance(10) {
        // Internationalised local part (RFC 6531).
        let _ = write!(
            out,
            "{}.{}@{}",
            first.to_lowercase(),
            rng.below(100),
            rng.pick(EMAIL_DOMAINS)
        );
    } else {
        datasets::email(rng, first, last, out);
    }
}

fn luhn_invalid_card(rng: &mut Rng, out: &mut String) {
    let mut card = String::new();
    datasets::card_number(rng, &mut card);
    // Changing the last digit by one always breaks the Luhn sum.
    if let Some(last) = card.pop().and_then(|c| c.to_digit(10)) {
        card.push(char::from(b'0' + ((last + 1) % 10) as u8));
    }
    out.push_str(&card);
}

fn invalid_ssn(rng: &mut Rng, out: &mut String) {
    let _ = match rng.below(4) {
        0 => write!(out, "666-{:02}-{:04}", rng.range(1, 99), rng.range(1, 9999)),
        1 => write!(
            out,
            "9{:02}-{:02}-{:04}",
            rng.below(100),
            rng.range(1, 99),
            rng.range(1, 9999)
        ),
        2 => write!(out, "{:03}-00-{:04}", rng.range(1, 899), rng.range(1, 9999)),
        _ => write!(out, "000-{:02}-{:04}", rng.range(1, 99), rng.range(1, 9999)),
    };
}

fn bad_iban(rng: &mut Rng, out: &mut String) {
    let mut iban = String::new();
    datasets::iban(rng, &mut iban);
    // A different pair of check digits never satisfies mod-97.
    let check: u32 = iban[2..4].parse().unwrap_or(0);
    let wrong = if check >= 97 { 2 } else { check + 1 };
    out.push_str(&iban[..2]);
    let _ = write!(out, "{wrong:02}");
    out.push_str(&iban[4..]);
}

fn positive(rng: &mut Rng, w: &mut NoteWriter, first: &str, last: &str) {
    let mut v = String::new();
    macro_rules! value {
        ($gen:expr) => {{
            v.clear();
            $gen;
            v.as_str()
        }};
    }
    match rng.below(16) {
        0 => {
            w.push(&format!("Patient {first} {last} called from "));
            w.entity(PHONE, value!(phone(rng, &mut v)));
            w.push(" about a billing question; reach them at ");
            w.entity(EMAIL, value!(email(rng, first, last, &mut v)));
            w.push(".");
        }
        1 => {
            w.push("Refund issued to card ");
            w.entity(CREDIT_CARD, value!(datasets::card_number(rng, &mut v)));
            w.push(" after review.");
        }
        2 => {
            w.push(&format!("{first}'s SSN on file "));
            w.entity(US_SSN, value!(datasets::ssn(rng, &mut v)));
            w.push("; identity verified in branch.");
        }
        3 => {
            w.push("Transfer to IBAN ");
            w.entity(IBAN, value!(datasets::iban(rng, &mut v)));
            w.push(" confirmed by the bank.");
        }
        4 => {
            w.push("Login from ");
            w.entity(IPV4, value!(ipv4(rng, &mut v)));
            w.push(" on ");
            w.entity(DATE, value!(date(rng, &mut v)));
            w.push(".");
        }
        5 => {
            w.push("Upstream host ");
            w.entity(IPV6, value!(ipv6(rng, &mut v)));
            w.push(" refused the connection.");
        }
        6 => {
            w.push("Details at ");
            let url = format!("https://portal.example.com/cases/{}", rng.below(100_000));
            w.entity(URL, &url);
            w.push(", please review.");
        }
        7 => {
            w.push("Next appointment ");
            w.entity(DATE, value!(date(rng, &mut v)));
            w.push(&format!(" with Dr. {last}."));
        }
        8 => {
            w.push("Authorization: Bearer ");
            w.entity(JWT, value!(jwt(rng, &mut v)));
        }
        9 => {
            w.push("aws_access_key_id=");
            w.entity(AWS_ACCESS_KEY_ID, value!(aws_key_id(rng, &mut v)));
        }
        10 => {
            w.push("conn: ");
            w.entity(
                AZURE_STORAGE_KEY,
                value!(azure_connection_string(rng, &mut v)),
            );
            w.push(";EndpointSuffix=core.windows.net");
        }
        11 => {
            w.push("Download from ");
            let url = format!(
                "https://stor{}.blob.core.windows.net/data/export.csv",
                rng.below(1000)
            );
            w.entity(URL, &url);
            w.push("?");
            w.entity(AZURE_SAS_TOKEN, value!(sas_query(rng, &mut v)));
        }
        12 => {
            w.push(if rng.chance(50) {
                "api_key = \""
            } else {
                "client_secret: "
            });
            let len = rng.range(24, 40) as usize;
            w.entity(API_KEY, &random_text(rng, BASE62, len));
            w.push("\"");
        }
        13 => {
            w.push("Key material pasted in the ticket:\n");
            w.entity(PEM_PRIVATE_KEY, value!(pem(rng, &mut v)));
        }
        14 => {
            w.push("Contact ");
            w.entity(EMAIL, value!(email(rng, first, last, &mut v)));
            w.push(" or call ");
            w.entity(PHONE, value!(phone(rng, &mut v)));
            w.push("; alternate card ");
            w.entity(CREDIT_CARD, value!(datasets::card_number(rng, &mut v)));
            w.push(".");
        }
        _ => {
            w.push("SSN: ");
            let mut ssn = String::new();
            datasets::ssn(rng, &mut ssn);
            w.entity(US_SSN, &ssn.replace('-', ""));
            w.push(" (no dashes).");
        }
    }
}

fn negative(rng: &mut Rng, w: &mut NoteWriter) {
    let mut v = String::new();
    let text = match rng.below(12) {
        0 => {
            luhn_invalid_card(rng, &mut v);
            format!("Card {v} was declined as invalid.")
        }
        1 => format!("Order #{} shipped.", rng.range(100_000_000, 999_999_999)),
        2 => {
            invalid_ssn(rng, &mut v);
            format!("Reference {v} is not a valid number.")
        }
        3 => format!(
            "Running version {}.{}.{} of the app, build {}.",
            rng.below(20),
            rng.below(20),
            rng.below(50),
            rng.range(1000, 99_999)
        ),
        4 => {
            bad_iban(rng, &mut v);
            format!("Rejected account {v} (bad check digits).")
        }
        5 => format!(
            "Pinged {}.{}.{}.{} without reply.",
            rng.range(256, 999),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        6 => format!(
            "ISBN 978-{}-{:02}-{:06}-{}",
            rng.below(10),
            rng.below(100),
            rng.below(1_000_000),
            rng.below(10)
        ),
        7 => format!(
            "Paid ${},{:03}.{:02} at {:02}:{:02}:{:02}.",
            rng.range(1, 99),
            rng.below(1000),
            rng.below(100),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        8 => "password: changeme123 (rotated).".to_owned(),
        9 => format!(
            "Ticket {}-{} escalated to tier {}.",
            rng.range(1000, 9999),
            rng.range(100_000, 999_999),
            rng.range(1, 3)
        ),
        10 => format!(
            "Temperature 37.{} C, BP {}/{}, weight {} kg.",
            rng.below(10),
            rng.range(100, 140),
            rng.range(60, 90),
            rng.range(40, 120)
        ),
        _ => format!(
            "Tracking number {}{}.",
            rng.range(1, 9),
            rng.range(10_000_000, 99_999_999)
        ),
    };
    w.push(&text);
}

/// `rows` labelled notes, deterministic in `seed`.
pub fn labelled_notes(rows: usize, seed: u64) -> Vec<LabelledNote> {
    let mut rng = Rng::for_block(seed ^ 0x6c61_6265_6c6c_6564, 0);
    (0..rows)
        .map(|_| {
            let mut w = NoteWriter {
                text: String::new(),
                chars: 0,
                spans: Vec::new(),
            };
            let first = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            let sentences = rng.range(1, 3);
            for i in 0..sentences {
                if i > 0 {
                    w.push(" ");
                }
                if rng.chance(60) {
                    positive(&mut rng, &mut w, first, last);
                } else {
                    negative(&mut rng, &mut w);
                }
            }
            LabelledNote {
                text: w.text,
                spans: w.spans,
            }
        })
        .collect()
}

/// Precision and recall of one entity.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityQuality {
    /// Entity name.
    pub entity: String,
    /// Findings that match a label exactly.
    pub true_positives: u64,
    /// Findings that match no label.
    pub false_positives: u64,
    /// Labels with no exact finding.
    pub false_negatives: u64,
}

impl EntityQuality {
    /// TP / (TP + FP); 1 when nothing was found.
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }
    /// TP / (TP + FN); 1 when nothing was labelled.
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// Run `detector` over the notes (through [`detect`], as a user would) and score each entity.
pub fn evaluate(detector: &Detector, notes: &[LabelledNote]) -> Result<Vec<EntityQuality>> {
    let array: ArrayRef = Arc::new(StringArray::from_iter_values(
        notes.iter().map(|n| n.text.as_str()),
    ));
    let found = detect(array.as_ref(), detector)?;
    let rows = found.column(0).as_primitive::<UInt64Type>();
    let entities = found.column(1).as_string::<i32>();
    let starts = found.column(2).as_primitive::<UInt64Type>();
    let ends = found.column(3).as_primitive::<UInt64Type>();
    let truth: HashSet<(usize, &str, usize, usize)> = notes
        .iter()
        .enumerate()
        .flat_map(|(row, n)| n.spans.iter().map(move |s| (row, s.entity, s.start, s.end)))
        .collect();
    let mut quality: BTreeMap<String, EntityQuality> = BTreeMap::new();
    let entry = |quality: &mut BTreeMap<String, EntityQuality>, entity: &str| {
        quality
            .entry(entity.to_owned())
            .or_insert_with(|| EntityQuality {
                entity: entity.to_owned(),
                true_positives: 0,
                false_positives: 0,
                false_negatives: 0,
            });
    };
    let mut matched = HashSet::new();
    for i in 0..found.num_rows() {
        let key = (
            rows.value(i) as usize,
            entities.value(i),
            starts.value(i) as usize,
            ends.value(i) as usize,
        );
        entry(&mut quality, key.1);
        let q = quality.get_mut(key.1).map(|q| {
            if truth.contains(&key) {
                q.true_positives += 1;
                true
            } else {
                q.false_positives += 1;
                false
            }
        });
        if q == Some(true) {
            matched.insert(key);
        }
    }
    for key in &truth {
        entry(&mut quality, key.1);
        if !matched.contains(key) {
            if let Some(q) = quality.get_mut(key.1) {
                q.false_negatives += 1;
            }
        }
    }
    Ok(quality.into_values().collect())
}

/// The quality table as text, one line per entity.
pub fn quality_table(quality: &[EntityQuality]) -> String {
    let mut out = format!(
        "{:<20} {:>8} {:>6} {:>6} {:>9} {:>7} {:>6}\n",
        "entity", "TP", "FP", "FN", "precision", "recall", "F1"
    );
    for q in quality {
        let _ = writeln!(
            out,
            "{:<20} {:>8} {:>6} {:>6} {:>9.4} {:>7.4} {:>6.4}",
            q.entity,
            q.true_positives,
            q.false_positives,
            q.false_negatives,
            q.precision(),
            q.recall(),
            q.f1()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_point_at_the_values() {
        let notes = labelled_notes(500, 3);
        assert_eq!(notes, labelled_notes(500, 3));
        for note in &notes {
            let chars: Vec<char> = note.text.chars().collect();
            for span in &note.spans {
                assert!(span.start < span.end && span.end <= chars.len());
            }
        }
        assert!(notes.iter().any(|n| n.spans.is_empty()));
    }

    /// Precision >= 0.99 and recall >= 0.98 for every validated entity on 20k labelled notes.
    #[test]
    fn precision_and_recall_per_entity() {
        let notes = labelled_notes(20_000, 42);
        let detector = Detector::builtin().unwrap();
        let quality = evaluate(&detector, &notes).unwrap();
        println!("{}", quality_table(&quality));
        for q in &quality {
            if [EMAIL, CREDIT_CARD, US_SSN, IBAN, IPV4, PHONE].contains(&q.entity.as_str()) {
                assert!(
                    q.precision() >= 0.99,
                    "{}: precision {:.4}",
                    q.entity,
                    q.precision()
                );
                assert!(q.recall() >= 0.98, "{}: recall {:.4}", q.entity, q.recall());
            }
        }
        for entity in [EMAIL, CREDIT_CARD, US_SSN, IBAN, IPV4, PHONE] {
            assert!(
                quality
                    .iter()
                    .any(|q| q.entity == entity && q.true_positives > 500),
                "{entity}"
            );
        }
    }
}
