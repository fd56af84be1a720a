//! Azure append blobs, for logs that several machines add to at once.
//!
//! `object_store` has no append-blob API, so this speaks the documented Blob REST API directly
//! (Put Blob with `x-ms-blob-type: AppendBlob`, Append Block, ranged Get Blob) through
//! `blob_rest`, each request signed with `object_store`'s own Azure credential and
//! authorizer, so account keys, SAS tokens, bearer tokens and managed / workload identities work
//! exactly as they do for [`super::blob`].
//!
//! Contract of [`AppendBlob::append_at`]: the block lands only if the blob's length is still
//! `offset` (`x-ms-blob-condition-appendpos`); otherwise nothing is written and `false` comes
//! back, and the caller reads what others appended and tries again. Each Append Block is atomic,
//! so readers never see part of a block and concurrent writers never interleave.
//!
//! ```no_run
//! use amlguard::io::append_blob::AppendBlob;
//! use amlguard::io::blob::StorageOptions;
//! let options = StorageOptions::from_pairs([("use_emulator", "true")]);
//! let blob = AppendBlob::open("az://logs/audit.jsonl", &options).unwrap();
//! let length = blob.read_from(0).unwrap().len() as u64;
//! assert!(blob.append_at(length, b"one line\n").unwrap());
//! ```

use std::path::PathBuf;

use super::blob::StorageOptions;
use super::blob_rest::{http_error, RestBlob};
use crate::error::{Error, Result};

/// Largest block one Append Block call takes (service versions since 2022-11-02 allow 100 MiB;
/// 4 MiB is what every version and Azurite accept).
pub const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024;

/// One append blob, addressed by its `az://` / `abfss://` URL.
pub struct AppendBlob {
    rest: RestBlob,
}

impl std::fmt::Debug for AppendBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendBlob")
            .field("url", &self.rest.url())
            .finish_non_exhaustive()
    }
}

impl AppendBlob {
    /// Address the append blob at `url` (it is created on the first append). Makes no request.
    pub fn open(url: &str, options: &StorageOptions) -> Result<Self> {
        Ok(Self {
            rest: RestBlob::open(url, options)?,
        })
    }

    /// The URL this blob was named by.
    pub fn url(&self) -> &str {
        self.rest.url()
    }

    /// Create the blob as an empty append blob unless it exists.
    pub fn create_if_missing(&self) -> Result<()> {
        let answer = self.rest.call(
            "creating",
            http::Method::PUT,
            None,
            &[
                ("x-ms-blob-type", "AppendBlob".into()),
                ("if-none-match", "*".into()),
            ],
            Vec::new(),
        )?;
        match answer.status {
            200..=299 => Ok(()),
            // Someone created it first (409 BlobAlreadyExists, or 412 from If-None-Match).
            409 | 412 => Ok(()),
            _ => Err(http_error("creating", self.rest.url(), &answer)),
        }
    }

    /// The blob's bytes from `offset` to its end (empty when it does not exist yet or ends
    /// at `offset`).
    pub fn read_from(&self, offset: u64) -> Result<Vec<u8>> {
        self.read_range(offset, None)
    }

    /// The bytes `start..end` (`end` `None`: to the blob's end).
    pub fn read_range(&self, start: u64, end: Option<u64>) -> Result<Vec<u8>> {
        Ok(self.read_existing(start, end)?.unwrap_or_default())
    }

    /// The whole blob, or `None` when it does not exist.
    pub fn read_if_exists(&self) -> Result<Option<Vec<u8>>> {
        self.read_existing(0, None)
    }

    /// The bytes `start..end`, or `None` when the blob does not exist.
    fn read_existing(&self, start: u64, end: Option<u64>) -> Result<Option<Vec<u8>>> {
        if end.is_some_and(|end| end <= start) {
            return Ok(Some(Vec::new()));
        }
        let range = match end {
            Some(end) => format!("bytes={start}-{}", end - 1),
            None => format!("bytes={start}-"),
        };
        let answer = self.rest.call(
            "reading",
            http::Method::GET,
            None,
            &[("x-ms-range", range)],
            Vec::new(),
        )?;
        match answer.status {
            206 => Ok(Some(answer.body)),
            // The whole blob (a service that ignored the range): keep the part asked for.
            200 => Ok(Some(
                answer
                    .body
                    .get(usize::try_from(start).unwrap_or(usize::MAX)..)
                    .unwrap_or_default()
                    .to_vec(),
            )),
            404 if answer.code == "BlobNotFound" => Ok(None),
            // An empty range past the end (an empty blob included).
            416 => Ok(Some(Vec::new())),
            _ => Err(http_error("reading", self.rest.url(), &answer)),
        }
    }

    /// Append `data` as one block if the blob is exactly `offset` bytes long; `Ok(false)` when
    /// it is not (another writer appended first: nothing was written). Creates the blob on
    /// first use.
    pub fn append_at(&self, offset: u64, data: &[u8]) -> Result<bool> {
        self.append_block(Some(offset), data)
    }

    /// Append `data` as one block wherever the blob ends (for lines that stand alone, such as
    /// signed checkpoints; the block still lands whole). Creates the blob on first use.
    pub fn append(&self, data: &[u8]) -> Result<()> {
        // Without a position condition the service has no reason to refuse with 412.
        self.append_block(None, data).map(|_| ())
    }

    fn append_block(&self, offset: Option<u64>, data: &[u8]) -> Result<bool> {
        if data.is_empty() || data.len() > MAX_APPEND_BYTES {
            return Err(Error::InvalidArgument {
                name: "data",
                message: format!("an append block holds 1 to {MAX_APPEND_BYTES} bytes"),
            });
        }
        for _ in 0..2 {
            let answer = self.rest.call(
                "appending to",
                http::Method::PUT,
                Some("comp=appendblock"),
                &offset
                    .map(|offset| ("x-ms-blob-condition-appendpos", offset.to_string()))
                    .into_iter()
                    .collect::<Vec<_>>(),
                data.to_vec(),
            )?;
            match answer.status {
                200..=299 => return Ok(true),
                412 if answer.code == "AppendPositionConditionNotMet" => return Ok(false),
                404 if answer.code == "BlobNotFound" => self.create_if_missing()?,
                _ => return Err(http_error("appending to", self.rest.url(), &answer)),
            }
        }
        Err(Error::io(
            "appending to",
            PathBuf::from(self.rest.url()),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the blob vanished right after it was created",
            ),
        ))
    }
}
