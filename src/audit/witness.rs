//! The witness: a second place every checkpoint of a log is appended to, so that truncating
//! the log is detectable (the witness then holds a signed checkpoint over more records than
//! the log has).
//!
//! It is a local file or an Azure *append blob* (`az://` / `abfss://`), chosen by the user to
//! sit apart from the log: another disk, another storage account, or a container under an
//! immutability (WORM) policy. Each checkpoint is one JSON line. A file is appended under an
//! exclusive lock with one `write` and `fsync`; a blob takes each line as one Append Block,
//! which the service applies whole, so concurrent writers never interleave. The witness is
//! not chained: each line is a signed tree head that stands on its own.
//!
//! ```no_run
//! use amlguard::audit::Witness;
//! use amlguard::io::blob::StorageOptions;
//! let witness = Witness::open("az://audit-witness/checkpoints.jsonl", &StorageOptions::default()).unwrap();
//! assert!(witness.is_blob());
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt as _;

use crate::error::{Error, Result};
use crate::io::append_blob::AppendBlob;
use crate::io::blob::{is_blob_url, StorageOptions};

/// Where a log's checkpoints are mirrored: a local file or an Azure append blob.
#[derive(Debug)]
pub enum Witness {
    /// A local file (created on the first checkpoint).
    File(PathBuf),
    /// An append blob (created on the first checkpoint).
    Blob(AppendBlob),
}

impl Witness {
    /// The witness at `location`: a local path, or an `az://` / `abfss://` URL reached with
    /// `storage`. Makes no request.
    pub fn open(location: &str, storage: &StorageOptions) -> Result<Self> {
        if is_blob_url(location) {
            Ok(Self::Blob(AppendBlob::open(location, storage)?))
        } else {
            Ok(Self::File(PathBuf::from(location)))
        }
    }

    /// A local witness file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File(path.into())
    }

    /// Whether the witness is an append blob.
    pub fn is_blob(&self) -> bool {
        matches!(self, Self::Blob(_))
    }

    /// The path or URL the witness was named by.
    pub fn location(&self) -> &Path {
        match self {
            Self::File(path) => path,
            Self::Blob(blob) => Path::new(blob.url()),
        }
    }

    /// Append one line (newline included).
    pub(crate) fn append_line(&self, line: &[u8]) -> Result<()> {
        match self {
            Self::File(path) => {
                let mut file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .map_err(|e| Error::io("opening the audit witness", path, e))?;
                file.lock_exclusive()
                    .and_then(|_| file.write_all(line))
                    .and_then(|_| file.sync_data())
                    .map_err(|e| Error::io("appending to the audit witness", path, e))
            }
            Self::Blob(blob) => blob.append(line),
        }
    }

    /// The witness's content, or `None` when it does not exist (yet).
    pub(crate) fn read(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Self::File(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io("reading the audit witness", path, e)),
            },
            Self::Blob(blob) => blob.read_if_exists(),
        }
    }
}
