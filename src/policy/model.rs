//! The policy document: what a user writes, as serde types.
//!
//! Fields a user leaves out stay `None`, so a policy serialises back to exactly what was written
//! and JSON round trips are lossless. Defaults are applied when a rule is compiled.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The only policy format version so far.
pub const POLICY_VERSION: u32 = 1;

/// What happens to columns the policy does not list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    /// Unlisted columns pass through unchanged.
    #[default]
    Keep,
    /// Fail closed: an unlisted column is an error.
    Deny,
}

/// A masking policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version (1).
    #[serde(default = "default_version")]
    pub version: u32,
    /// Action for unlisted columns.
    #[serde(default)]
    pub default: DefaultAction,
    /// One rule per column, in the order written.
    #[serde(default)]
    pub columns: IndexMap<String, Rule>,
}

fn default_version() -> u32 {
    POLICY_VERSION
}

/// `keep_separators`: `true` for the default set, or the separator characters themselves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Separators {
    /// `true` keeps the default separators; `false` keeps none.
    Default(bool),
    /// Exactly these characters.
    Chars(String),
}

/// Digest text encoding for `hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Lower-case hexadecimal.
    Hex,
    /// URL-safe base64 without padding.
    Base64url,
}

/// Numeric bucket output for `generalize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketOutput {
    /// A text label.
    Label,
    /// The bucket's lower bound, keeping the type.
    Floor,
}

/// Date part for `generalize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    /// Truncate to the year.
    Year,
    /// Truncate to the month.
    Month,
    /// Truncate to the day.
    Day,
}

/// Distribution for `noise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseDistribution {
    /// Laplace.
    Laplace,
    /// Gaussian.
    Gaussian,
}

/// A user recognizer in a `redact_entities` rule (see [`crate::detect::Recognizer::custom`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognizerSpec {
    /// Entity name it reports (letters, digits and `_`).
    pub entity: String,
    /// Regular expression (`regex` crate syntax; always matched in linear time).
    pub pattern: String,
    /// Validator name (`luhn`, `mod97`, `ssn`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<String>,
    /// Words that raise the score when found shortly before a match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<String>>,
    /// Base score in 0..=1 (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// One column's rule: an operator and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Pass through.
    Keep {},
    /// Replace with nulls.
    Nullify {},
    /// Replace with a constant.
    Redact {
        /// Replacement text (default `[REDACTED]`).
        #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
        replacement: Option<String>,
    },
    /// Partial mask.
    Mask {
        /// Leading characters kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_first: Option<usize>,
        /// Trailing characters kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_last: Option<usize>,
        /// Mask character (default `*`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mask_char: Option<char>,
        /// Separators kept in place.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_separators: Option<Separators>,
        /// Mask only the local part of e-mail addresses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_email_domain: Option<bool>,
    },
    /// Keyed HMAC-SHA256 pseudonym.
    Hash {
        /// Keyring key reference (`name` or `name@version`).
        key: String,
        /// `hex` (default) or `base64url`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoding: Option<Encoding>,
        /// Keep only the first N digest bytes (8..=32).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        truncate_bytes: Option<usize>,
    },
    /// Deterministic AES-SIV token.
    Tokenize {
        /// Keyring key reference.
        key: String,
        /// Associated data binding tokens to a purpose.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tweak: Option<String>,
    },
    /// Reverse of `tokenize`.
    Detokenize {
        /// Keyring key reference.
        key: String,
        /// The tweak the tokens were made with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tweak: Option<String>,
    },
    /// FF1 format-preserving encryption.
    Fpe {
        /// Keyring key reference.
        key: String,
        /// Characters encrypted (default the ten digits).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alphabet: Option<String>,
        /// FF1 tweak.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tweak: Option<String>,
        /// Decrypt instead of encrypt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decrypt: Option<bool>,
    },
    /// Coarser values.
    Generalize {
        /// Numeric bucket width.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<f64>,
        /// Numeric bucket edges.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edges: Option<Vec<f64>>,
        /// Labels for edge buckets (`len(edges) + 1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<Vec<String>>,
        /// `label` (default) or `floor` for width buckets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<BucketOutput>,
        /// Date part for dates and timestamps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<DatePart>,
        /// Characters of a string kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<usize>,
        /// Pad a string prefix back to the original length with this character.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pad: Option<char>,
    },
    /// Keyed per-subject date shift.
    DateShift {
        /// Keyring key reference.
        key: String,
        /// Largest shift, in days.
        max_days: u32,
        /// Column holding the subject id.
        subject: String,
    },
    /// Additive noise.
    Noise {
        /// `laplace` (default) or `gaussian`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distribution: Option<NoiseDistribution>,
        /// Laplace b or Gaussian sigma.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale: Option<f64>,
        /// Privacy budget (with sensitivity).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epsilon: Option<f64>,
        /// Query sensitivity (with epsilon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sensitivity: Option<f64>,
        /// Gaussian delta (with epsilon and sensitivity).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<f64>,
        /// Seed for reproducible noise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        /// Bounds `[low, high]` applied after the noise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip: Option<(f64, f64)>,
    },
    /// Replace PII and secrets found inside free text.
    RedactEntities {
        /// Entities replaced (default: every entity the recognizers find).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entities: Option<Vec<String>>,
        /// Label template; `{entity}` becomes the entity name (default `<{entity}>`).
        #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
        replacement: Option<String>,
        /// Per-entity operator instead of the label: a `redact`, `mask`, `hash`, `tokenize`
        /// or `fpe` rule (fpe for digit entities: CREDIT_CARD, US_SSN, PHONE, IBAN).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operators: Option<IndexMap<String, Rule>>,
        /// User recognizers, tried before the built-in ones.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recognizers: Option<Vec<RecognizerSpec>>,
        /// Findings scoring below this are left alone (default 0.5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_score: Option<f64>,
    },
}

impl Rule {
    /// The operator's name as written in a policy.
    pub fn op_name(&self) -> &'static str {
        match self {
            Rule::Keep {} => "keep",
            Rule::Nullify {} => "nullify",
            Rule::Redact { .. } => "redact",
            Rule::Mask { .. } => "mask",
            Rule::Hash { .. } => "hash",
            Rule::Tokenize { .. } => "tokenize",
            Rule::Detokenize { .. } => "detokenize",
            Rule::Fpe { .. } => "fpe",
            Rule::Generalize { .. } => "generalize",
            Rule::DateShift { .. } => "date_shift",
            Rule::Noise { .. } => "noise",
            Rule::RedactEntities { .. } => "redact_entities",
        }
    }

    /// The keyring key reference the rule needs, if any.
    pub fn key_reference(&self) -> Option<&str> {
        match self {
            Rule::Hash { key, .. }
            | Rule::Tokenize { key, .. }
            | Rule::Detokenize { key, .. }
            | Rule::Fpe { key, .. }
            | Rule::DateShift { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Every keyring key reference the rule needs, nested per-entity operators included.
    pub fn key_references(&self) -> Vec<&str> {
        match self {
            Rule::RedactEntities {
                operators: Some(operators),
                ..
            } => operators.values().flat_map(Rule::key_references).collect(),
            other => other.key_reference().into_iter().collect(),
        }
    }
}

impl Policy {
    /// Parse a policy from JSON text. Errors name the column and the field at fault.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::policy(format!("not valid JSON: {e}")))?;
        Self::from_value(raw)
    }

    /// Build a policy from a JSON value (what Python dicts and YAML documents become).
    pub fn from_value(raw: serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(mut top) = raw else {
            return Err(Error::policy(
                "a policy is a mapping with 'version', 'default' and 'columns'",
            ));
        };
        // Parse each column's rule on its own so that an error can name the column.
        let columns = match top.remove("columns") {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(columns)) => columns,
            Some(_) => {
                return Err(Error::Policy {
                    column: None,
                    field: Some("columns".into()),
                    message: "'columns' must map column names to rules".into(),
                })
            }
        };
        let mut rules = IndexMap::with_capacity(columns.len());
        for (column, rule) in columns {
            if rule.get("op").is_none() {
                return Err(Error::policy_field(
                    &column,
                    "op",
                    "every rule needs an 'op' (keep, nullify, redact, mask, hash, tokenize, detokenize, fpe, generalize, date_shift, noise, redact_entities)",
                ));
            }
            let rule: Rule = serde_json::from_value(rule.clone()).map_err(|e| {
                let message = e.to_string();
                let field = field_named_in(&message)
                    .or_else(|| culprit_field(&rule))
                    .unwrap_or_else(|| "op".to_owned());
                Error::policy_field(&column, &field, message)
            })?;
            rules.insert(column, rule);
        }
        top.insert(
            "columns".into(),
            serde_json::Value::Object(Default::default()),
        );
        let mut policy: Policy =
            serde_json::from_value(serde_json::Value::Object(top)).map_err(|e| {
                let message = e.to_string();
                Error::Policy {
                    column: None,
                    field: field_named_in(&message),
                    message,
                }
            })?;
        if policy.version != POLICY_VERSION {
            return Err(Error::Policy {
                column: None,
                field: Some("version".into()),
                message: format!(
                    "policy version {} is not supported; this release reads version {POLICY_VERSION}",
                    policy.version
                ),
            });
        }
        policy.columns = rules;
        Ok(policy)
    }

    /// The policy as canonical JSON (fields in a fixed order, unset parameters omitted).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// SHA-256 of the canonical JSON, hex: identifies a policy in reports and audit records.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.to_json().as_bytes()))
    }
}

/// For errors serde reports without a field name (a value of the wrong type or range): the
/// field whose removal makes the rule parse, or turns the error into "missing field".
fn culprit_field(rule: &serde_json::Value) -> Option<String> {
    let object = rule.as_object()?;
    object.keys().filter(|k| *k != "op").find_map(|key| {
        let mut without = object.clone();
        without.remove(key);
        match serde_json::from_value::<Rule>(serde_json::Value::Object(without)) {
            Ok(_) => Some(key.clone()),
            Err(e) if field_named_in(&e.to_string()).as_deref() == Some(key) => Some(key.clone()),
            Err(_) => None,
        }
    })
}

/// serde names the offending field in backticks (`unknown field `x``, `missing field `y``).
fn field_named_in(message: &str) -> Option<String> {
    let field_markers = ["unknown field `", "missing field `", "duplicate field `"];
    field_markers.iter().find_map(|marker| {
        let start = message.find(marker)? + marker.len();
        let end = message[start..].find('`')? + start;
        Some(message[start..end].to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_and_round_trips() {
        let text = r#"{"version": 1, "default": "keep", "columns": {
            "email": {"op": "hash", "key": "pseudo"},
            "card": {"op": "mask", "keep_last": 4},
            "age": {"op": "generalize", "width": 10},
            "ssn": {"op": "redact"}}}"#;
        let policy = Policy::from_json(text).unwrap();
        assert_eq!(
            policy.columns.keys().collect::<Vec<_>>(),
            vec!["email", "card", "age", "ssn"]
        );
        let again = Policy::from_json(&policy.to_json()).unwrap();
        assert_eq!(policy, again);
        assert_eq!(policy.to_json(), again.to_json());
        assert_eq!(policy.fingerprint().len(), 64);
    }

    #[test]
    fn errors_name_column_and_field() {
        let cases = [
            (
                r#"{"columns": {"a": {"op": "mask", "keep_lst": 4}}}"#,
                Some("a"),
                Some("keep_lst"),
            ),
            (
                r#"{"columns": {"a": {"op": "hash"}}}"#,
                Some("a"),
                Some("key"),
            ),
            (
                r#"{"columns": {"a": {"op": "shred"}}}"#,
                Some("a"),
                Some("op"),
            ),
            (
                r#"{"columns": {"a": {"keep_last": 4}}}"#,
                Some("a"),
                Some("op"),
            ),
            (
                r#"{"columns": {"a": {"op": "mask", "keep_last": -4}}}"#,
                Some("a"),
                Some("keep_last"),
            ),
            (
                r#"{"columns": {"a": {"op": "mask", "mask_char": "ab"}}}"#,
                Some("a"),
                Some("mask_char"),
            ),
            (r#"{"version": 2}"#, None, Some("version")),
            (r#"{"colums": {}}"#, None, Some("colums")),
            (r#"{"default": "allow"}"#, None, None),
        ];
        for (text, column, field) in cases {
            match Policy::from_json(text) {
                Err(Error::Policy {
                    column: c,
                    field: f,
                    ..
                }) => {
                    assert_eq!(c.as_deref(), column, "{text}");
                    assert_eq!(f.as_deref(), field, "{text}");
                }
                other => panic!("{text}: expected a policy error, got {other:?}"),
            }
        }
        assert!(matches!(
            Policy::from_json("not json"),
            Err(Error::Policy { .. })
        ));
        assert!(matches!(
            Policy::from_json("[1]"),
            Err(Error::Policy { .. })
        ));
    }
}
