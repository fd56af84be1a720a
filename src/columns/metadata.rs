//! What an encrypted column records about itself, in its Arrow field metadata.
//!
//! An encrypted column is a Binary column registered as the Arrow extension type
//! `amlguard.encrypted` (field metadata `ARROW:extension:name`); its `ARROW:extension:metadata`
//! is this JSON object:
//!
//! ```json
//! {"format_version": 1, "mode": "randomized", "original_type": "Int64",
//!  "original_nullable": true, "key_id": "local:pii@1", "wrap_algorithm": "AES-256-KWP",
//!  "wrapped_dek": "<base64>", "context": {"dataset": "patients"},
//!  "subject": null, "field_metadata": {}}
//! ```
//!
//! `original_type` is the Arrow `DataType` in its text form, which arrow-rs parses back exactly
//! (tested for every supported type). In subject-keyed columns `wrapped_dek` is absent and
//! `subject` names the subject column and the store's KEK; each value carries its key handle.
//! Extension types survive Parquet and IPC round trips through arrow-rs and pyarrow, and polars
//! keeps them too (it drops plain field metadata), which is why the metadata lives here.
//! Nothing in it is secret: the DEK is wrapped by the KEK.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::cipher::Mode;
use crate::error::{Error, Result};

/// Arrow's field metadata key naming an extension type.
pub const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
/// Arrow's field metadata key holding an extension type's metadata.
pub const EXTENSION_METADATA_KEY: &str = "ARROW:extension:metadata";
/// The extension type name of encrypted columns.
pub const EXTENSION_NAME: &str = "amlguard.encrypted";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Subject-keyed encryption facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectKeying {
    /// The column whose value chose each row's key.
    pub column: String,
    /// The KEK id of the subject-key store.
    pub store_kek_id: String,
}

/// The recorded facts of one encrypted column (never secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMetadata {
    /// Format version of the values and this record.
    pub format_version: u8,
    /// Randomized or deterministic.
    pub mode: Mode,
    /// The Arrow data type before encryption, in arrow-rs text form.
    pub original_type: String,
    /// Whether the original field was nullable.
    pub original_nullable: bool,
    /// Id of the KEK that wrapped the DEK (or of the subject-key store's KEK).
    pub key_id: String,
    /// The wrapping algorithm, as the KEK reports it.
    pub wrap_algorithm: String,
    /// The column DEK wrapped by the KEK, base64 (absent for subject-keyed columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_dek: Option<String>,
    /// The caller's context, bound into every value's associated data.
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// Present when each row was encrypted under its subject's key.
    #[serde(default)]
    pub subject: Option<SubjectKeying>,
    /// The original field's own metadata, restored on decryption.
    #[serde(default)]
    pub field_metadata: BTreeMap<String, String>,
}

impl ColumnMetadata {
    /// The field metadata of the encrypted column.
    pub fn to_field_metadata(&self) -> Result<HashMap<String, String>> {
        let json = serde_json::to_string(self)
            .map_err(|e| Error::invalid_data(None, format!("column metadata: {e}")))?;
        Ok(HashMap::from([
            (EXTENSION_NAME_KEY.to_owned(), EXTENSION_NAME.to_owned()),
            (EXTENSION_METADATA_KEY.to_owned(), json),
        ]))
    }

    /// The recorded facts of `field`, or `None` when it is not an amlguard encrypted column.
    pub fn from_field(field: &arrow_schema::Field) -> Result<Option<Self>> {
        let metadata = field.metadata();
        if metadata.get(EXTENSION_NAME_KEY).map(String::as_str) != Some(EXTENSION_NAME) {
            return Ok(None);
        }
        let column = field.name();
        let json = metadata.get(EXTENSION_METADATA_KEY).ok_or_else(|| {
            Error::invalid_data(
                Some(column),
                "the column is marked amlguard.encrypted but has no extension metadata",
            )
        })?;
        #[derive(Deserialize)]
        struct Version {
            format_version: u8,
        }
        let version: Version = serde_json::from_str(json).map_err(|e| {
            Error::invalid_data(Some(column), format!("malformed encryption metadata: {e}"))
        })?;
        if version.format_version != FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion {
                source_name: format!("encrypted column '{column}'"),
                version: version.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let parsed: Self = serde_json::from_str(json).map_err(|e| {
            Error::invalid_data(Some(column), format!("malformed encryption metadata: {e}"))
        })?;
        Ok(Some(parsed))
    }

    /// The wrapped DEK's bytes.
    pub(crate) fn wrapped_dek_bytes(&self, column: &str) -> Result<Vec<u8>> {
        let text = self.wrapped_dek.as_deref().ok_or_else(|| {
            Error::invalid_data(Some(column), "the encryption metadata holds no wrapped key")
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| Error::invalid_data(Some(column), "the wrapped key is not base64"))
    }

    /// The original data type.
    pub fn original_data_type(&self, column: &str) -> Result<arrow_schema::DataType> {
        self.original_type.parse().map_err(|_| {
            Error::invalid_data(
                Some(column),
                format!(
                    "unknown original type '{}'; a newer amlguard may read it",
                    self.original_type
                ),
            )
        })
    }
}

/// Base64 of a wrapped DEK.
pub(crate) fn encode_wrapped(wrapped: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(wrapped)
}

/// What [`crate::columns::encrypted_columns`] reports about one column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EncryptedColumn {
    /// The column's name.
    pub column: String,
    /// Randomized or deterministic.
    pub mode: Mode,
    /// The KEK id that can unwrap its key.
    pub key_id: String,
    /// The original Arrow type, as text.
    pub original_type: String,
    /// The bound context.
    pub context: BTreeMap<String, String>,
    /// The subject column, for subject-keyed (crypto-shredding) columns.
    pub subject_column: Option<String>,
    /// Format version.
    pub format_version: u8,
}
