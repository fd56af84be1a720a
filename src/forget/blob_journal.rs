//! The forget journal of a blob dataset, kept in the storage beside the dataset.
//!
//! The lines are the local journal's ([`super::journal::Entry`]), in a blob named
//! `_amlguard_forget.journal` under the dataset's prefix, or `_amlguard_forget.<name>.journal`
//! beside a single-blob dataset; the leading underscore hides it from Parquet readers and from
//! the dataset listing. It holds URLs, counts, ETags, content hashes of new versions and the
//! keyed request fingerprint, never a subject identifier other than in the URLs of a tree
//! partitioned by the id column, whose names are identifiers until the run deletes them.
//!
//! Every update replaces the whole journal blob with one put conditioned on the ETag of the
//! version it replaces (`If-None-Match: *` for a new journal). A put lands whole or not at all,
//! so a run killed at any moment leaves the previous or the next version; and a second run
//! writing the same journal at the same time is refused rather than interleaved. An append
//! blob would make each update cheaper (the journal is rewritten whole, twice per blob, so `n`
//! affected blobs cost about `460 n²` bytes of puts), but a new or resumed journal could not
//! be written in one request: an append blob is created empty and filled by later appends, so
//! a run killed between the two would lose the lines it carries over from the run it resumes.

use super::journal::{self, content_sha256, Entry};
use crate::error::{Error, Result};
use crate::io::blob::{BlobLocation, StorageOptions};

/// The URL of the journal of the dataset at `dataset_url` (a prefix ending in `/`, or a blob).
pub(crate) fn journal_url(dataset_url: &str) -> String {
    match dataset_url.rsplit_once('/') {
        _ if dataset_url.ends_with('/') => format!("{dataset_url}_amlguard_forget.journal"),
        Some((directory, name)) => format!("{directory}/_amlguard_forget.{name}.journal"),
        None => format!("_amlguard_forget.{dataset_url}.journal"),
    }
}

/// An existing journal: its entries and the ETag of the version read.
#[derive(Debug, Default)]
pub(crate) struct Previous {
    pub(crate) entries: Vec<Entry>,
    pub(crate) etag: Option<String>,
}

/// The journal at `location`, or an empty one when there is none.
pub(crate) fn read(location: &BlobLocation) -> Result<Previous> {
    if !location.exists()? {
        return Ok(Previous::default());
    }
    let (bytes, etag) = location.get_with_etag()?;
    Ok(Previous {
        entries: journal::parse(&String::from_utf8_lossy(&bytes)),
        etag,
    })
}

/// A journal this run writes.
pub(crate) struct BlobJournal {
    location: BlobLocation,
    etag: String,
    text: String,
}

impl std::fmt::Debug for BlobJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobJournal")
            .field("url", &self.location.url())
            .finish_non_exhaustive()
    }
}

fn taken_over(location: &BlobLocation) -> Error {
    Error::ConcurrentModification {
        path: location.url().into(),
        message:
            "another forget run is writing this dataset's journal; let it finish, then run again"
                .into(),
    }
}

impl BlobJournal {
    /// Write a journal of `entries` at `location`, replacing the version `previous` read (or
    /// creating it when there was none).
    pub(crate) fn create(
        location: BlobLocation,
        previous: &Previous,
        entries: &[Entry],
    ) -> Result<Self> {
        let mut text = String::new();
        for entry in entries {
            text.push_str(&journal::encode(entry)?);
        }
        let written = match &previous.etag {
            Some(etag) => location.put_if_unchanged(text.clone().into_bytes(), etag)?,
            None => location.put_if_absent(text.clone().into_bytes())?,
        };
        let etag = written.ok_or_else(|| taken_over(&location))?;
        Ok(Self {
            location,
            etag,
            text,
        })
    }

    /// Record one more entry: the journal is replaced by one that ends with it.
    pub(crate) fn append(&mut self, entry: &Entry) -> Result<()> {
        let mut text = self.text.clone();
        text.push_str(&journal::encode(entry)?);
        self.etag = self
            .location
            .put_if_unchanged(text.clone().into_bytes(), &self.etag)?
            .ok_or_else(|| taken_over(&self.location))?;
        self.text = text;
        Ok(())
    }

    /// The run completed: delete the journal, unless another run has taken it over since.
    pub(crate) fn finish(self) -> Result<()> {
        self.location.delete_if_unchanged(&self.etag).map(|_| ())
    }
}

/// The `Done` lines to carry into this run's journal and receipt when `previous` is the journal
/// of an interrupted run of the same `request` (see [`journal::carried_over`]); a blob announced
/// by `Replacing` counts when its put or delete landed.
pub(crate) fn carried_over(
    previous: &Previous,
    request: &str,
    storage: &StorageOptions,
) -> Result<Option<Vec<Entry>>> {
    journal::carried_over(&previous.entries, request, |entry| {
        replacement_landed(entry, storage)
    })
}

/// Whether the request a `Replacing` line announced landed before its run was killed: the blob
/// is gone (a removal), or holds exactly the new content (a replacement).
fn replacement_landed(entry: &Entry, storage: &StorageOptions) -> Result<bool> {
    let Entry::Replacing {
        path,
        bytes_after,
        removed,
        etag_before,
        sha256_after,
        ..
    } = entry
    else {
        return Ok(false);
    };
    let blob = BlobLocation::parse(&path.to_string_lossy(), storage)?;
    if !blob.exists()? {
        return Ok(*removed);
    }
    if *removed {
        return Ok(false);
    }
    let (size, etag) = blob.size_and_etag()?;
    if etag.as_deref() == Some(etag_before.as_str()) || size != *bytes_after {
        return Ok(false);
    }
    let (bytes, _) = blob.get_with_etag()?;
    Ok(content_sha256(&bytes) == *sha256_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_lies_beside_the_dataset_under_a_hidden_name() {
        assert_eq!(
            journal_url("az://lake/patients/"),
            "az://lake/patients/_amlguard_forget.journal"
        );
        assert_eq!(
            journal_url("az://lake/patients/part-0.parquet"),
            "az://lake/patients/_amlguard_forget.part-0.parquet.journal"
        );
    }
}
