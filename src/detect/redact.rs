//! `redact_entities`: replace PII and secrets found inside free text, leaving the rest.
//!
//! Each finding of a selected entity is replaced by its entity's action: a label from a
//! template (default `<{entity}>`, so an e-mail becomes `<EMAIL>`), or one of the masking
//! operators applied to the matched text alone: partial `mask`, keyed `hash` (pseudonym),
//! `tokenize` (AES-SIV) or `fpe` (digits only, format kept). Findings are exactly those
//! [`super::detect`] reports for the same detector, so a scan and a redaction agree; text
//! outside findings is copied byte for byte, so multi-byte characters are never split.
//!
//! ```
//! use std::sync::Arc;
//! use amlguard::detect::{Detector, EntityAction, RedactEntities};
//!
//! let detector = Arc::new(Detector::builtin().unwrap());
//! let op = RedactEntities::new(detector, &["EMAIL", "PHONE"], "<{entity}>", Vec::new()).unwrap();
//! let mut out = String::new();
//! op.redact("Zoë: zoe@example.com, +44 20 7946 0018", 0, &mut op.scratch(), &mut out).unwrap();
//! assert_eq!(out, "Zoë: <EMAIL>, <PHONE>");
//! ```

use std::sync::Arc;

use aes_siv::siv::Aes256Siv;
use arrow_array::ArrayRef;

use super::engine::{Detector, Finding, Scratch};
use crate::error::{Error, Result};
use crate::mask::fpe::FormatPreserving;
use crate::mask::hash::KeyedHash;
use crate::mask::partial::PartialMask;
use crate::mask::strings::map_strings;
use crate::mask::tokenize::Tokenizer;
use crate::mask::{ChunkContext, ColumnOperator};

/// The template used when a policy gives none.
pub const DEFAULT_TEMPLATE: &str = "<{entity}>";

/// What replaces one entity's findings.
// Built once per policy and never moved on a hot path, so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum EntityAction {
    /// A fixed text; `{entity}` in it becomes the entity name.
    Label(String),
    /// Partial masking of the matched text.
    Mask(PartialMask),
    /// Keyed HMAC pseudonym of the matched text.
    Hash(KeyedHash),
    /// Deterministic AES-SIV token of the matched text.
    Tokenize(Tokenizer),
    /// FF1 encryption of the matched text's digits (for card numbers, SSNs, phone numbers).
    Fpe(FormatPreserving),
}

impl EntityAction {
    fn name(&self) -> &'static str {
        match self {
            EntityAction::Label(_) => "label",
            EntityAction::Mask(_) => "mask",
            EntityAction::Hash(_) => "hash",
            EntityAction::Tokenize(_) => "tokenize",
            EntityAction::Fpe(_) => "fpe",
        }
    }
}

/// Entities whose values are mostly digits, so that `fpe` keeps their format.
pub const FPE_ENTITIES: &[&str] = &[
    super::recognizers::CREDIT_CARD,
    super::recognizers::US_SSN,
    super::recognizers::PHONE,
    super::recognizers::IBAN,
];

/// The `redact_entities` operator; see the module documentation.
pub struct RedactEntities {
    detector: Arc<Detector>,
    /// One action per detector entity; `None` leaves that entity's findings in place.
    actions: Vec<Option<EntityAction>>,
}

/// Per-call state: the detector's scratch and a cipher for `tokenize`.
pub struct RedactScratch {
    detector: Scratch,
    findings: Vec<Finding>,
    siv: Vec<Option<Aes256Siv>>,
}

impl RedactEntities {
    /// Replace `entities` (names known to `detector`) with `template` labels, except those with
    /// an action in `overrides`. Unknown names are a policy error that lists the known ones.
    pub fn new(
        detector: Arc<Detector>,
        entities: &[&str],
        template: &str,
        overrides: Vec<(String, EntityAction)>,
    ) -> Result<Self> {
        let unknown = |name: &str| {
            Error::policy(format!(
                "unknown entity '{name}'; known entities: {}",
                detector.entities().join(", ")
            ))
        };
        let mut actions: Vec<Option<EntityAction>> =
            (0..detector.entities().len()).map(|_| None).collect();
        for name in entities {
            let index = detector.entity_index(name).ok_or_else(|| unknown(name))?;
            actions[index] = Some(EntityAction::Label(template.replace("{entity}", name)));
        }
        for (name, action) in overrides {
            let index = detector.entity_index(&name).ok_or_else(|| unknown(&name))?;
            // Custom entities may be digit codes; built-in ones other than these are not.
            if matches!(action, EntityAction::Fpe(_))
                && !FPE_ENTITIES.contains(&name.as_str())
                && super::recognizers::builtin_entities().contains(&name.as_str())
            {
                return Err(Error::policy(format!(
                    "fpe keeps the format of digit entities ({}); use mask, hash or tokenize for {name}",
                    FPE_ENTITIES.join(", ")
                )));
            }
            actions[index] = Some(match action {
                EntityAction::Label(text) => EntityAction::Label(text.replace("{entity}", &name)),
                other => other,
            });
        }
        Ok(Self { detector, actions })
    }

    /// Fresh per-thread state.
    pub fn scratch(&self) -> RedactScratch {
        RedactScratch {
            detector: self.detector.scratch(),
            findings: Vec::new(),
            siv: self
                .actions
                .iter()
                .map(|a| match a {
                    Some(EntityAction::Tokenize(t)) => Some(t.cipher()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Append `text` with its selected findings replaced to `out`. `row` (the global row index)
    /// only serves error messages.
    pub fn redact(
        &self,
        text: &str,
        row: u64,
        scratch: &mut RedactScratch,
        out: &mut String,
    ) -> Result<()> {
        self.detector
            .spans_into(text, &mut scratch.detector, &mut scratch.findings);
        let mut copied = 0;
        for f in &scratch.findings {
            let Some(action) = self.actions.get(f.entity).and_then(Option::as_ref) else {
                continue;
            };
            out.push_str(&text[copied..f.start]);
            let value = &text[f.start..f.end];
            match action {
                EntityAction::Label(label) => out.push_str(label),
                EntityAction::Mask(mask) => mask.mask_into(value, out),
                EntityAction::Hash(hash) => hash.write_pseudonym(value.as_bytes(), out),
                EntityAction::Tokenize(tokenizer) => match scratch.siv.get_mut(f.entity).and_then(Option::as_mut) {
                    Some(cipher) => tokenizer.tokenize_into(cipher, value, out)?,
                    None => out.push_str(&tokenizer.tokenize(value)?),
                },
                EntityAction::Fpe(fpe) => fpe.transform(value, row, out).map_err(|e| match e {
                    Error::InvalidData { column, .. } => Error::InvalidData {
                        column,
                        message: format!(
                            "row {row}: a {} finding has too few digits for fpe; use mask or hash for it",
                            self.detector.entity_name(f.entity)
                        ),
                    },
                    other => other,
                })?,
            }
            copied = f.end;
        }
        out.push_str(&text[copied..]);
        Ok(())
    }

    /// The action names per entity, for reports (`EMAIL: label`, ...).
    pub fn describe(&self) -> Vec<(String, &'static str)> {
        self.actions
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                a.as_ref()
                    .map(|a| (self.detector.entity_name(i).to_owned(), a.name()))
            })
            .collect()
    }
}

impl ColumnOperator for RedactEntities {
    fn name(&self) -> &'static str {
        "redact_entities"
    }
    fn apply(&self, input: &ArrayRef, context: &ChunkContext<'_>) -> Result<ArrayRef> {
        let mut scratch = self.scratch();
        map_strings(input.as_ref(), |row, value, out| {
            self.redact(value, context.row_offset + row as u64, &mut scratch, out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyId, SecretKey};
    use crate::mask::fpe::DIGITS;
    use crate::mask::hash::DigestEncoding;
    use crate::mask::partial::DEFAULT_SEPARATORS;
    use crate::mask::tokenize::Direction;
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, RecordBatch, StringArray};
    use arrow_schema::DataType;

    fn key() -> SecretKey {
        SecretKey::new(
            KeyId {
                name: "k".into(),
                version: 1,
            },
            zeroize::Zeroizing::new([5u8; 32]),
        )
    }

    fn redact(op: &RedactEntities, text: &str) -> String {
        let mut out = String::new();
        op.redact(text, 0, &mut op.scratch(), &mut out).unwrap();
        out
    }

    #[test]
    fn labels_and_operators_per_entity() {
        let detector = Arc::new(Detector::builtin().unwrap());
        let overrides = vec![
            (
                "CREDIT_CARD".to_owned(),
                EntityAction::Mask(PartialMask::new(0, 4, '*', DEFAULT_SEPARATORS, false)),
            ),
            (
                "EMAIL".to_owned(),
                EntityAction::Hash(KeyedHash::new(&key(), DigestEncoding::Hex, Some(8)).unwrap()),
            ),
            (
                "US_SSN".to_owned(),
                EntityAction::Fpe(FormatPreserving::new(&key(), DIGITS, "", false).unwrap()),
            ),
            (
                "IBAN".to_owned(),
                EntityAction::Tokenize(Tokenizer::new(&key(), "", Direction::Tokenize)),
            ),
        ];
        let op = RedactEntities::new(detector, &["PHONE"], "[{entity}]", overrides).unwrap();
        let text = "Zoë paid with 4111-1111-1111-1112? no: 4111 1111 1111 1111, mail zoë@example.com, ssn 123-45-6789, tel +33 1 23 45 67 89, iban GB82WEST12345698765432.";
        let out = redact(&op, text);
        assert!(
            out.starts_with("Zoë paid with 4111-1111-1111-1112? no: **** **** **** 1111, mail "),
            "{out}"
        );
        let hashed = KeyedHash::new(&key(), DigestEncoding::Hex, Some(8))
            .unwrap()
            .pseudonym("zoë@example.com".as_bytes());
        assert!(out.contains(&format!("mail {hashed}, ssn ")), "{out}");
        assert!(
            !out.contains("123-45-6789") && out.contains("tel [PHONE], iban "),
            "{out}"
        );
        let ssn = &out[out.find("ssn ").unwrap() + 4..][..11];
        assert!(
            ssn.as_bytes()[3] == b'-' && ssn.as_bytes()[6] == b'-',
            "{ssn}"
        );
        let token = Tokenizer::new(&key(), "", Direction::Tokenize)
            .tokenize("GB82WEST12345698765432")
            .unwrap();
        assert!(out.ends_with(&format!("iban {token}.")), "{out}");
    }

    #[test]
    fn unknown_entities_and_misplaced_fpe_are_errors() {
        let detector = Arc::new(Detector::builtin().unwrap());
        let err = RedactEntities::new(Arc::clone(&detector), &["PERSON"], DEFAULT_TEMPLATE, vec![])
            .err()
            .unwrap();
        assert!(err.to_string().contains("PERSON"));
        let fpe = FormatPreserving::new(&key(), DIGITS, "", false).unwrap();
        assert!(RedactEntities::new(
            detector,
            &[],
            DEFAULT_TEMPLATE,
            vec![("EMAIL".into(), EntityAction::Fpe(fpe))]
        )
        .is_err());
    }

    #[test]
    fn operator_keeps_type_nulls_and_multibyte_text() {
        let detector = Arc::new(Detector::builtin().unwrap());
        let op =
            RedactEntities::new(detector, &["EMAIL", "PHONE"], DEFAULT_TEMPLATE, vec![]).unwrap();
        let input = StringArray::from(vec![
            Some("日本語 a@b.co 🙂"),
            None,
            Some(""),
            Some("clean"),
        ]);
        let batch = RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()));
        for data_type in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
            let array = arrow_cast::cast(&input, &data_type).unwrap();
            let out = op
                .apply(
                    &array,
                    &ChunkContext {
                        row_offset: 0,
                        batch: &batch,
                    },
                )
                .unwrap();
            assert_eq!(out.data_type(), &data_type);
            let out = arrow_cast::cast(&out, &DataType::Utf8).unwrap();
            let out = out.as_string::<i32>();
            assert_eq!(out.value(0), "日本語 <EMAIL> 🙂");
            assert!(out.is_null(1));
            assert_eq!(out.value(2), "");
            assert_eq!(out.value(3), "clean");
        }
    }
}
