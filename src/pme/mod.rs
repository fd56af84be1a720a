//! Parquet Modular Encryption (PME) under amlguard keys, readable by pyarrow and Spark.
//!
//! A PME file encrypts its column chunks (and, by default, its footer) with AES-GCM data keys
//! generated per file. The data keys are wrapped under *master keys* and the wrapped keys are
//! stored in the file as key material in the JSON format of the Parquet key tools (written by
//! the `parquet-key-management` crate, the format pyarrow's `CryptoFactory` and parquet-java
//! use). Here a master key id is the name of a key in an amlguard key provider
//! ([`MasterKeys`]: [`LocalKeyring`](crate::keys::LocalKeyring) or
//! [`AzureKeyVault`](crate::keys::AzureKeyVault)), and [`AmlguardKms`] is the KMS client: the
//! same client serves pyarrow through `amlguard.pyarrow_crypto_factory`, so each side reads
//! what the other wrote.
//!
//! - [`ParquetWriteOptions::footer_key`] encrypts the footer (and, without column keys, every
//!   column); [`ParquetWriteOptions::column_keys`] encrypts the listed columns under their own
//!   master keys; [`ParquetWriteOptions::plaintext_footer`] leaves the footer readable (signed)
//!   so tools without keys can read the unencrypted columns.
//! - Double wrapping (the default, as in pyarrow): data keys are wrapped by per-file key
//!   encryption keys that are wrapped by the master keys, so a file costs one provider call per
//!   master key it uses, whatever its number of columns and row groups ([`ParquetReport`]
//!   counts the calls).
//! - Key material is stored inside the file by default: re-wrapping under a new master key
//!   version then means rewriting the file. With
//!   [`ParquetWriteOptions::external_key_material`] it is kept beside the file, as the key
//!   tools' `_KEY_MATERIAL_FOR_<file>.json` (pyarrow's `internal_key_material=False`), and
//!   [`rotate_parquet_keys`] re-wraps it without touching the data. Files written before a
//!   rotation stay readable either way, because the wrapped key records the exact key version.
//!
//! Writes are atomic: temp file + rename locally, a block list committed only when complete on
//! Azure Blob Storage.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
//! use amlguard::io::blob::StorageOptions;
//! use amlguard::io::location::Location;
//! use amlguard::keys::LocalKeyring;
//! use amlguard::parallel::RunControl;
//! use amlguard::pme::{read_parquet, write_parquet, ParquetReadOptions, ParquetWriteOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
//! keyring.ensure_key("footer-key").unwrap();
//! keyring.ensure_key("pii-key").unwrap();
//! let batch = RecordBatch::try_from_iter([
//!     ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
//!     ("ssn", Arc::new(StringArray::from(vec!["123-45-6789", "987-65-4321"])) as ArrayRef),
//! ]).unwrap();
//! let options = ParquetWriteOptions {
//!     footer_key: Some("footer-key".into()),
//!     column_keys: [("pii-key".to_string(), vec!["ssn".to_string()])].into_iter().collect(),
//!     ..ParquetWriteOptions::default()
//! };
//! let path = Location::parse(dir.path().join("patients.parquet").to_str().unwrap(),
//!                            &StorageOptions::default()).unwrap();
//! let keys = Arc::new(keyring);
//! let report = write_parquet([Ok(batch.clone())], batch.schema(), &path, Some(keys.clone()),
//!                            &options, &RunControl::new()).unwrap();
//! assert_eq!(report.kms_calls.wraps, 2); // one per master key
//! let (_, batches, _) = read_parquet(&path, Some(keys), &ParquetReadOptions::default(),
//!                                    &RunControl::new()).unwrap();
//! assert_eq!(batches, vec![batch]);
//! ```

mod external;
mod file;
mod kms;

#[cfg(test)]
mod tests;

use indexmap::IndexMap;
use parquet::basic::Compression;

pub use external::{
    key_material_path, rotate_parquet_keys, KeyRotationReport, KEY_MATERIAL_PREFIX,
};
pub use file::{read_parquet, write_parquet};
pub use kms::{AmlguardKms, KmsCalls, MasterKeys};

use crate::error::Error;
use crate::io::location::Location;

/// How [`write_parquet`] writes.
#[derive(Clone, Debug)]
pub struct ParquetWriteOptions {
    /// Master key that encrypts (or, with a plaintext footer, signs) the footer; `None` writes
    /// a plain, unencrypted file.
    pub footer_key: Option<String>,
    /// Master key name -> columns encrypted under it. Empty with a footer key: every column is
    /// encrypted under the footer key. A top-level name of a nested column covers its leaves.
    pub column_keys: IndexMap<String, Vec<String>>,
    /// Leave the footer readable (and signed with the footer key), so readers without keys can
    /// read the schema and the unencrypted columns.
    pub plaintext_footer: bool,
    /// Wrap data keys with per-file key encryption keys, themselves wrapped by the master keys
    /// (fewer provider calls; the default, as in pyarrow).
    pub double_wrapping: bool,
    /// Keep the key material in a `_KEY_MATERIAL_FOR_<file>.json` beside the file (the key
    /// tools' external storage, local paths only), so [`rotate_parquet_keys`] can re-wrap it
    /// under new master key versions without rewriting the data.
    pub external_key_material: bool,
    /// Page compression.
    pub compression: Compression,
    /// Rows per row group at most.
    pub row_group_rows: usize,
    /// Encoding threads (`None`: all cores).
    pub threads: Option<usize>,
}

impl Default for ParquetWriteOptions {
    fn default() -> Self {
        Self {
            footer_key: None,
            column_keys: IndexMap::new(),
            plaintext_footer: false,
            double_wrapping: true,
            external_key_material: false,
            compression: Compression::SNAPPY,
            row_group_rows: 1024 * 1024,
            threads: None,
        }
    }
}

/// How [`read_parquet`] reads.
#[derive(Clone, Debug)]
pub struct ParquetReadOptions {
    /// Top-level columns to read, in this order (`None`: all). Without keys, a file with a
    /// plaintext footer can be read for its unencrypted columns.
    pub columns: Option<Vec<String>>,
    /// Rows per output batch at most.
    pub batch_rows: usize,
    /// Decoding threads (`None`: all cores).
    pub threads: Option<usize>,
}

impl Default for ParquetReadOptions {
    fn default() -> Self {
        Self {
            columns: None,
            batch_rows: 64 * 1024,
            threads: None,
        }
    }
}

/// What a Parquet write or read did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParquetReport {
    /// Rows written or read.
    pub rows: u64,
    /// Row groups in the file.
    pub row_groups: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Wall time.
    pub elapsed_seconds: f64,
    /// Leaf column paths that are encrypted (every column under uniform encryption).
    pub encrypted_columns: Vec<String>,
    /// The footer's master key (writes only: reads cannot tell it before unwrapping).
    pub footer_key: Option<String>,
    /// Whether the file is encrypted with a plaintext (signed) footer.
    pub plaintext_footer: bool,
    /// Key-provider calls made.
    pub kms_calls: KmsCalls,
}

impl Error {
    /// Name the Parquet file in a column-less data error, and make failed authentication the
    /// one opaque [`Error::Decryption`].
    pub(crate) fn in_parquet_file(self, source: &Location) -> Self {
        match self {
            Error::InvalidData { column, message } => match Error::from_parquet_text(&message) {
                Error::Decryption => Error::Decryption,
                _ => Error::InvalidData {
                    column,
                    message: format!("{}: {message}", source.display_name()),
                },
            },
            other => other,
        }
    }

    /// Classify a Parquet error message: AES-GCM tag failures (a wrong key or tampered bytes)
    /// are [`Error::Decryption`]; anything else is invalid data.
    pub(crate) fn from_parquet_text(message: &str) -> Self {
        let lower = message.to_ascii_lowercase();
        // parquet reports a failed GCM open as ring's `Unspecified`, a footer or column metadata
        // it cannot open as "unable to decrypt", a page header as "error decrypting ... key may
        // be wrong", and a plaintext footer whose signature fails as such.
        let authentication = [
            "unable to decrypt",
            "error decrypting",
            "key may be wrong",
            "unspecified",
            "signature",
        ];
        if authentication.iter().any(|needle| lower.contains(needle)) {
            Error::Decryption
        } else {
            Error::invalid_data(None, message.to_owned())
        }
    }
}
