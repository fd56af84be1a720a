//! Deterministic synthetic PII data for demos, tests and benchmarks.
//!
//! `synthetic_pii(rows, seed)` gives the same table for the same arguments on every machine and
//! for any thread count: rows are generated in fixed blocks, each from its own ChaCha stream
//! seeded by (seed, block index). Values look real and pass their validators: Luhn-valid card
//! numbers of several brands, IBANs with correct mod-97 check digits, SSNs outside the invalid
//! ranges. Nothing here is real data. Free-text notes with ground-truth spans, for measuring
//! detection quality, are in [`crate::detect::labelled`].

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::{
    Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::Result;

/// Rows per generation block (and per output batch).
pub const BLOCK_ROWS: usize = 64 * 1024;

pub(crate) const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Amelia",
    "Oliver",
    "Hannah",
    "Lukas",
    "Chloé",
    "Léa",
    "Jürgen",
    "Zoë",
    "Aarav",
    "Priya",
    "Wei",
    "Mei",
    "Carlos",
    "Sofía",
    "Mateo",
    "Fatima",
    "Omar",
    "Ingrid",
];
pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Müller",
    "Schmidt",
    "Dubois",
    "Lefèvre",
    "Sharma",
    "Patel",
    "Wang",
    "Li",
    "Nakamura",
    "Kowalski",
    "O'Brien",
    "Nguyen",
    "Rossi",
    "Andersson",
];
pub(crate) const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "contoso.com",
    "fabrikam.co.uk",
    "northwind.de",
    "adatum.fr",
];

/// Schema of the synthetic table.
pub fn synthetic_pii_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("phone", DataType::Utf8, true),
        Field::new("ssn", DataType::Utf8, true),
        Field::new("card_number", DataType::Utf8, true),
        Field::new("iban", DataType::Utf8, true),
        Field::new("ipv4", DataType::Utf8, true),
        Field::new("date_of_birth", DataType::Date32, true),
        Field::new("age", DataType::Int32, true),
        Field::new("zip", DataType::Utf8, true),
        Field::new("salary", DataType::Float64, true),
        Field::new(
            "visit_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// `rows` rows of synthetic PII, deterministic in `seed`, as batches of up to [`BLOCK_ROWS`].
pub fn synthetic_pii(rows: usize, seed: u64) -> Result<Vec<RecordBatch>> {
    let blocks: Vec<(usize, usize)> = (0..rows)
        .step_by(BLOCK_ROWS)
        .map(|start| (start, BLOCK_ROWS.min(rows - start)))
        .collect();
    crate::parallel::pool(None)?.install(|| {
        blocks
            .par_iter()
            .map(|(start, len)| generate_block(seed, *start, *len))
            .collect()
    })
}

/// A deterministic random stream for one block of generated rows.
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    pub(crate) fn for_block(seed: u64, block: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"amlguard/synthetic-pii/v1");
        hasher.update(seed.to_be_bytes());
        hasher.update(block.to_be_bytes());
        Rng(ChaCha8Rng::from_seed(hasher.finalize().into()))
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
    pub(crate) fn range(&mut self, low: u64, high_inclusive: u64) -> u64 {
        low + self.below(high_inclusive - low + 1)
    }
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub(crate) fn digits(&mut self, out: &mut String, count: usize) {
        for _ in 0..count {
            out.push(char::from(b'0' + self.below(10) as u8));
        }
    }
}

/// Luhn check digit for a string of digits (the digit that makes the whole number valid).
pub fn luhn_check_digit(payload: &str) -> char {
    // With a trailing 0 in the check position, the payload's digits sit where Luhn doubles them.
    let mut digits: Vec<u8> = payload.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    digits.push(0);
    let sum = crate::detect::validators::luhn_sum(&digits);
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// ISO 13616 check digits for an IBAN with the given country and BBAN.
pub fn iban_check_digits(country: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{country}00");
    let mut remainder: u32 = 0;
    for c in rearranged.chars() {
        let value = c.to_digit(36).unwrap_or(0);
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    format!("{:02}", 98 - remainder)
}

pub(crate) fn card_number(rng: &mut Rng, out: &mut String) {
    let (prefix, length) = match rng.below(4) {
        0 => ("4".to_owned(), 16),
        1 => (format!("5{}", rng.range(1, 5)), 16),
        2 => (if rng.chance(50) { "34" } else { "37" }.to_owned(), 15),
        _ => ("6011".to_owned(), 16),
    };
    let mut digits = prefix;
    let remaining = length - 1 - digits.len();
    rng.digits(&mut digits, remaining);
    let check = luhn_check_digit(&digits);
    digits.push(check);
    let separator = match rng.below(3) {
        0 => None,
        1 => Some(' '),
        _ => Some('-'),
    };
    let groups: &[usize] = if length == 15 {
        &[4, 6, 5]
    } else {
        &[4, 4, 4, 4]
    };
    let mut position = 0;
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            if let Some(separator) = separator {
                out.push(separator);
            }
        }
        out.push_str(&digits[position..position + group]);
        position += group;
    }
}

pub(crate) fn iban(rng: &mut Rng, out: &mut String) {
    let (country, bban) = match rng.below(4) {
        0 => {
            let mut bban = String::new();
            rng.digits(&mut bban, 18);
            ("DE", bban)
        }
        1 => {
            let mut bban: String = (0..4)
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect();
            rng.digits(&mut bban, 14);
            ("GB", bban)
        }
        2 => {
            let mut bban = String::new();
            rng.digits(&mut bban, 23);
            ("FR", bban)
        }
        _ => {
            let mut bban: String = (0..4)
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect();
            rng.digits(&mut bban, 10);
            ("NL", bban)
        }
    };
    out.push_str(country);
    out.push_str(&iban_check_digits(country, &bban));
    out.push_str(&bban);
}

pub(crate) fn ssn(rng: &mut Rng, out: &mut String) {
    let area = loop {
        let area = rng.range(1, 899);
        if area != 666 {
            break area;
        }
    };
    let _ = write!(
        out,
        "{area:03}-{:02}-{:04}",
        rng.range(1, 99),
        rng.range(1, 9999)
    );
}

fn phone(rng: &mut Rng, out: &mut String) {
    let _ = match rng.below(6) {
        0 => write!(
            out,
            "+1 {}-555-{:04}",
            rng.range(201, 989),
            rng.below(10_000)
        ),
        1 => write!(
            out,
            "({}) 555-{:04}",
            rng.range(201, 989),
            rng.below(10_000)
        ),
        2 => write!(out, "+44 20 7946 {:04}", rng.below(10_000)),
        3 => write!(out, "+49 30 {:08}", rng.below(100_000_000)),
        4 => write!(
            out,
            "+33 1 {:02} {:02} {:02} {:02}",
            rng.below(100),
            rng.below(100),
            rng.below(100),
            rng.below(100)
        ),
        _ => write!(
            out,
            "+91 9{:04} {:05}",
            rng.below(10_000),
            rng.below(100_000)
        ),
    };
}

pub(crate) fn email(rng: &mut Rng, first: &str, last: &str, out: &mut String) {
    let ascii = |s: &str| -> String {
        s.chars()
            .filter_map(|c| {
                let c = match c {
                    'é' | 'è' | 'ê' => 'e',
                    'ü' => 'u',
                    'ö' => 'o',
                    'ë' => 'e',
                    'í' => 'i',
                    other => other,
                };
                c.is_ascii_alphanumeric().then(|| c.to_ascii_lowercase())
            })
            .collect()
    };
    let _ = write!(
        out,
        "{}.{}{}@{}",
        ascii(first),
        ascii(last),
        rng.below(100),
        rng.pick(EMAIL_DOMAINS)
    );
}

fn generate_block(seed: u64, start: usize, rows: usize) -> Result<RecordBatch> {
    let mut rng = Rng::for_block(seed, (start / BLOCK_ROWS) as u64);
    let mut person_id = Int64Builder::with_capacity(rows);
    let mut name = StringBuilder::with_capacity(rows, rows * 14);
    let mut email_col = StringBuilder::with_capacity(rows, rows * 28);
    let mut phone_col = StringBuilder::with_capacity(rows, rows * 16);
    let mut ssn_col = StringBuilder::with_capacity(rows, rows * 11);
    let mut card_col = StringBuilder::with_capacity(rows, rows * 19);
    let mut iban_col = StringBuilder::with_capacity(rows, rows * 24);
    let mut ip_col = StringBuilder::with_capacity(rows, rows * 14);
    let mut dob = Date32Builder::with_capacity(rows);
    let mut age = Int32Builder::with_capacity(rows);
    let mut zip = StringBuilder::with_capacity(rows, rows * 5);
    let mut salary = Float64Builder::with_capacity(rows);
    let mut visit = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut note = StringBuilder::with_capacity(rows, rows * 120);
    // 2024-06-30, the reference date ages are computed at.
    const REFERENCE_DAY: i32 = 19_904;
    let mut scratch = String::new();
    let (mut e, mut p, mut c) = (String::new(), String::new(), String::new());
    for row in start..start + rows {
        person_id.append_value(row as i64 + 1);
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        scratch.clear();
        let _ = write!(scratch, "{first} {last}");
        name.append_value(&scratch);

        e.clear();
        email(&mut rng, first, last, &mut e);
        p.clear();
        phone(&mut rng, &mut p);
        c.clear();
        card_number(&mut rng, &mut c);
        let missing = rng.chance(2);
        if missing {
            email_col.append_null();
        } else {
            email_col.append_value(&e);
        }
        phone_col.append_value(&p);
        scratch.clear();
        ssn(&mut rng, &mut scratch);
        ssn_col.append_value(&scratch);
        let ssn_value = scratch.clone();
        card_col.append_value(&c);
        scratch.clear();
        iban(&mut rng, &mut scratch);
        iban_col.append_value(&scratch);
        scratch.clear();
        let _ = write!(
            scratch,
            "{}.{}.{}.{}",
            rng.range(1, 223),
            rng.below(256),
            rng.below(256),
            rng.range(1, 254)
        );
        ip_col.append_value(&scratch);
        let ip_value = scratch.clone();
        // Born between 1940 and 2005.
        let born = rng.range(0, 65 * 365) as i32 - 10_957;
        dob.append_value(born);
        age.append_value((REFERENCE_DAY - born) / 365);
        scratch.clear();
        let _ = write!(scratch, "{:05}", rng.range(501, 99_950));
        zip.append_value(&scratch);
        salary.append_value((rng.range(2_500_000, 25_000_000) as f64) / 100.0);
        visit.append_value(1_704_067_200_000_000 + rng.below(366 * 86_400) as i64 * 1_000_000);
        scratch.clear();
        let _ = match rng.below(6) {
            0 => write!(scratch, "Patient {first} {last} called from {p} about a billing question; reach them at {e}."),
            1 => write!(scratch, "Refund issued to card {c} after review. Customer confirmed by phone {p}."),
            2 => write!(scratch, "SSN on file {ssn_value}; identity verified in branch. Login from {ip_value}."),
            3 => write!(scratch, "Follow-up visit scheduled, order #{} shipped, version 2.{}.{} of the app.", rng.below(1_000_000), rng.below(20), rng.below(50)),
            4 => write!(scratch, "Contact {e} or call {p}; alternate card {c}."),
            _ => write!(scratch, "No issues reported during the visit; vitals normal and next check in {} weeks.", rng.range(2, 12)),
        };
        note.append_value(&scratch);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(person_id.finish()),
        Arc::new(name.finish()),
        Arc::new(email_col.finish()),
        Arc::new(phone_col.finish()),
        Arc::new(ssn_col.finish()),
        Arc::new(card_col.finish()),
        Arc::new(iban_col.finish()),
        Arc::new(ip_col.finish()),
        Arc::new(dob.finish()),
        Arc::new(age.finish()),
        Arc::new(zip.finish()),
        Arc::new(salary.finish()),
        Arc::new(visit.finish()),
        Arc::new(note.finish()),
    ];
    Ok(RecordBatch::try_new(synthetic_pii_schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;

    fn luhn_valid(number: &str) -> bool {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let (payload, check) = digits.split_at(digits.len() - 1);
        luhn_check_digit(payload).to_string() == check
    }

    #[test]
    fn known_check_digits() {
        assert_eq!(luhn_check_digit("411111111111111"), '1');
        assert_eq!(luhn_check_digit("7992739871"), '3');
        // The ISO 13616 example IBAN GB82 WEST 1234 5698 7654 32.
        assert_eq!(iban_check_digits("GB", "WEST12345698765432"), "82");
        assert_eq!(iban_check_digits("DE", "370400440532013000"), "89");
    }

    #[test]
    fn deterministic_and_valid() {
        let a = synthetic_pii(70_000, 5).unwrap();
        let b = synthetic_pii(70_000, 5).unwrap();
        let c = synthetic_pii(1_000, 6).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.iter().map(|b| b.num_rows()).sum::<usize>(), 70_000);
        assert_ne!(a[0].slice(0, 1000), c[0]);
        let cards = a[0]
            .column_by_name("card_number")
            .unwrap()
            .as_string::<i32>();
        assert!(cards.iter().take(2000).all(|c| luhn_valid(c.unwrap())));
        let ssns = a[0].column_by_name("ssn").unwrap().as_string::<i32>();
        assert!(ssns
            .iter()
            .take(2000)
            .all(|s| !s.unwrap().starts_with("666")));
    }
}
