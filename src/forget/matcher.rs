//! Which values of an id column belong to the subjects being forgotten.
//!
//! A raw dataset is matched on the identifiers themselves. A pseudonymised dataset is matched on
//! the pseudonyms recomputed from the identifiers with the very code the masking operators use
//! ([`KeyedHash::pseudonym`], [`Tokenizer::tokenize`]), so whatever `hash` or `tokenize` wrote,
//! forget finds.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BooleanArray};
use arrow_schema::DataType;

use crate::error::{Error, Result};
use crate::keys::KeyProvider;
use crate::mask::hash::{DigestEncoding, KeyedHash};
use crate::mask::tokenize::{Direction, Tokenizer};

/// How a dataset's id column relates to the raw identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdForm {
    /// The column holds the identifiers.
    Raw,
    /// The column holds `hash` pseudonyms made with this key and parameters.
    Hash {
        /// Keyring key reference.
        key: String,
        /// Digest encoding.
        encoding: DigestEncoding,
        /// Digest bytes kept (`None`: 32).
        truncate_bytes: Option<usize>,
    },
    /// The column holds `tokenize` tokens made with this key and tweak.
    Tokenize {
        /// Keyring key reference.
        key: String,
        /// The tweak (associated data) the tokens were made with.
        tweak: String,
    },
}

impl IdForm {
    /// Key reference used, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            IdForm::Raw => None,
            IdForm::Hash { key, .. } | IdForm::Tokenize { key, .. } => Some(key),
        }
    }
}

/// The id-column values to remove, as text and (for integer columns) as integers.
#[derive(Clone, Debug, Default)]
pub struct Needles {
    /// Values as text (identifiers or their pseudonyms).
    pub text: HashSet<String>,
    /// Identifiers that are integers, for integer id columns.
    pub integers: HashSet<i64>,
}

impl Needles {
    /// Build the needles for `subjects` under `form`, resolving keys from `keys`.
    pub fn build(subjects: &[String], form: &IdForm, keys: &dyn KeyProvider) -> Result<Self> {
        let mut needles = Needles::default();
        match form {
            IdForm::Raw => {
                for subject in subjects {
                    needles.text.insert(subject.clone());
                    if let Ok(number) = subject.trim().parse::<i64>() {
                        needles.integers.insert(number);
                    }
                }
            }
            IdForm::Hash {
                key,
                encoding,
                truncate_bytes,
            } => {
                let hasher = KeyedHash::new(&keys.key(key)?, *encoding, *truncate_bytes)?;
                for subject in subjects {
                    needles.text.insert(hasher.pseudonym(subject.as_bytes()));
                }
            }
            IdForm::Tokenize { key, tweak } => {
                let tokenizer = Tokenizer::new(&keys.key(key)?, tweak, Direction::Tokenize);
                for subject in subjects {
                    needles.text.insert(tokenizer.tokenize(subject)?);
                }
            }
        }
        Ok(needles)
    }

    /// Whether an id column of this type can be matched.
    pub fn supports(data_type: &DataType) -> bool {
        data_type.is_integer()
            || matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
            || matches!(data_type, DataType::Dictionary(_, value) if Self::supports(value))
    }

    /// `true` for rows whose id is one of the needles (nulls never match).
    pub fn matches(&self, column: &ArrayRef) -> Result<BooleanArray> {
        if column.data_type().is_integer() {
            let as_int = arrow_cast::cast(column, &DataType::Int64)?;
            let ints = as_int.as_primitive::<Int64Type>();
            return Ok(ints
                .iter()
                .map(|v| Some(v.is_some_and(|v| self.integers.contains(&v))))
                .collect());
        }
        let text: ArrayRef = match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Arc::clone(column),
            _ => arrow_cast::cast(column, &DataType::Utf8)?,
        };
        let found = |v: Option<&str>| Some(v.is_some_and(|v| self.text.contains(v)));
        Ok(match text.data_type() {
            DataType::Utf8 => text.as_string::<i32>().iter().map(found).collect(),
            DataType::LargeUtf8 => text.as_string::<i64>().iter().map(found).collect(),
            DataType::Utf8View => text.as_string_view().iter().map(found).collect(),
            other => {
                return Err(Error::invalid_data(
                    None,
                    format!("cannot match identifiers in a column of type {other}"),
                ))
            }
        })
    }

    /// Whether any needle can lie in `[min, max]` of a string column's statistics.
    pub fn may_hold_text(&self, min: &[u8], max: &[u8]) -> bool {
        self.text
            .iter()
            .any(|n| n.as_bytes() >= min && n.as_bytes() <= max)
    }

    /// Whether any integer needle can lie in `[min, max]`.
    pub fn may_hold_integer(&self, min: i64, max: i64) -> bool {
        self.integers.iter().any(|n| *n >= min && *n <= max)
    }
}
