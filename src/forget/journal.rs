//! The forget journal: what a run planned and which files it already swapped in.
//!
//! One JSON Lines file per dataset (`_amlguard_forget.journal` in a dataset directory, or
//! `_amlguard_forget.<file name>.journal` beside a single-file dataset; the leading underscore
//! hides it from Parquet readers). The first line is the plan; then, per file, a `replacing`
//! line just before its swap (the counts and the SHA-256 of the new content) and a `done` line
//! after it, each written with `fsync`. A run killed at any moment leaves every data file old or
//! new (each swap is one rename or unlink); the next run reads the journal, removes the
//! temporary files the killed run left, carries the finished files into its receipt, together
//! with a file announced by `replacing` whose swap landed before the kill (it holds exactly
//! the announced content, or is gone when it was to be removed), and redoes the rest (a file
//! already rewritten no longer matches, so nothing is removed twice). The journal is deleted
//! when the run completes. It holds paths, counts, content hashes and a keyed request
//! fingerprint, never subject identifiers other than in paths of a tree partitioned by the id
//! column, whose directory names are identifiers until the run removes them.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FileChange;
use crate::error::{Error, Result};

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// The plan.
    Start {
        /// Run id.
        run_id: String,
        /// Fingerprint of the request (keyed pseudonyms, or a count when no key is available).
        request: String,
        /// Files to rewrite.
        files: Vec<PathBuf>,
    },
    /// One file swapped in.
    Done {
        /// The file.
        path: PathBuf,
        /// Rows before.
        rows_before: u64,
        /// Rows removed.
        rows_removed: u64,
        /// Bytes before.
        bytes_before: u64,
        /// Bytes after.
        bytes_after: u64,
        /// The file was removed whole (a subject's partition of the id column).
        #[serde(default)]
        removed: bool,
    },
    /// A file or blob about to be replaced or removed. Written before the swap (a rename or
    /// unlink, a put or Delete Blob), so that a run killed between the swap and its `Done` line
    /// can tell, when resumed, whether the swap landed.
    Replacing {
        /// The file's path or the blob's URL.
        path: PathBuf,
        /// Rows before.
        rows_before: u64,
        /// Rows removed.
        rows_removed: u64,
        /// Bytes before.
        bytes_before: u64,
        /// Bytes after (0 for a removal).
        bytes_after: u64,
        /// The blob is deleted whole rather than replaced.
        #[serde(default)]
        removed: bool,
        /// The ETag of the blob version scanned, which the request is conditioned on; empty
        /// for a local file.
        #[serde(default)]
        etag_before: String,
        /// SHA-256 (hex) of the new content; empty for a removal.
        #[serde(default)]
        sha256_after: String,
    },
}

impl Entry {
    /// The `Done` line of a finished file.
    pub fn done(change: &FileChange) -> Self {
        Self::Done {
            path: change.path.clone(),
            rows_before: change.rows_before,
            rows_removed: change.rows_removed,
            bytes_before: change.bytes_before,
            bytes_after: change.bytes_after,
            removed: change.removed,
        }
    }

    /// The `Replacing` line announcing `change`, whose new content hashes to `sha256_after`
    /// (empty for a removal), of the version `etag_before` (empty for a local file).
    pub fn replacing(change: &FileChange, etag_before: String, sha256_after: String) -> Self {
        Self::Replacing {
            path: change.path.clone(),
            rows_before: change.rows_before,
            rows_removed: change.rows_removed,
            bytes_before: change.bytes_before,
            bytes_after: change.bytes_after,
            removed: change.removed,
            etag_before,
            sha256_after,
        }
    }

    /// What a `Done` or `Replacing` line says was (or is being) done to its file.
    pub fn change(&self) -> Option<FileChange> {
        match self {
            Self::Start { .. } => None,
            Self::Done {
                path,
                rows_before,
                rows_removed,
                bytes_before,
                bytes_after,
                removed,
            }
            | Self::Replacing {
                path,
                rows_before,
                rows_removed,
                bytes_before,
                bytes_after,
                removed,
                ..
            } => Some(FileChange {
                path: path.clone(),
                rows_before: *rows_before,
                rows_removed: *rows_removed,
                bytes_before: *bytes_before,
                bytes_after: *bytes_after,
                removed: *removed,
            }),
        }
    }
}

/// An open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
}

/// The journal's path for a dataset rooted at `root` (a directory or a single file).
pub fn journal_path(root: &Path) -> PathBuf {
    if root.is_dir() {
        root.join("_amlguard_forget.journal")
    } else {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        root.with_file_name(format!("_amlguard_forget.{name}.journal"))
    }
}

/// Entries of an existing journal (an incomplete last line, from a crash, is ignored).
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading the forget journal", path, e)),
    };
    Ok(parse(&text))
}

/// The entries of a journal's text (an incomplete last line, from a crash, is ignored).
pub fn parse(text: &str) -> Vec<Entry> {
    text.split_terminator('\n')
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The `Done` lines to carry into this run's journal and receipt when `previous` is the journal
/// of an interrupted run of the same `request` (`None` when there is none, or it is another
/// request's): its finished files, and a file it announced (`Replacing`) and was killed before
/// recording, when `landed` says the swap took place.
pub fn carried_over(
    previous: &[Entry],
    request: &str,
    mut landed: impl FnMut(&Entry) -> Result<bool>,
) -> Result<Option<Vec<Entry>>> {
    let same_request = previous
        .iter()
        .any(|e| matches!(e, Entry::Start { request: r, .. } if r == request));
    if !same_request {
        return Ok(None);
    }
    let finished: HashSet<&Path> = previous
        .iter()
        .filter_map(|e| match e {
            Entry::Done { path, .. } => Some(path.as_path()),
            _ => None,
        })
        .collect();
    let mut carried = Vec::new();
    for entry in previous {
        match entry {
            Entry::Done { .. } => carried.push(entry.clone()),
            Entry::Replacing { path, .. }
                if !finished.contains(path.as_path()) && landed(entry)? =>
            {
                carried.extend(entry.change().map(|change| Entry::done(&change)));
            }
            _ => {}
        }
    }
    Ok(Some(carried))
}

/// Whether the swap a `Replacing` line announced for a local file landed before its run was
/// killed: the file is gone (a removal), or holds exactly the new content (a rewrite).
pub fn local_replacement_landed(entry: &Entry) -> Result<bool> {
    let Entry::Replacing {
        path,
        bytes_after,
        removed,
        sha256_after,
        ..
    } = entry
    else {
        return Ok(false);
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(*removed),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    if *removed || metadata.len() != *bytes_after {
        return Ok(false);
    }
    Ok(file_sha256(path)? == *sha256_after)
}

/// SHA-256 (hex) of a file's content, read in a stream.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io("reading", path, e))?;
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 (hex) of `bytes`.
pub fn content_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Remove temporary files a killed run left beside `file` (`.<name>.*.tmp`, see `AtomicFile`).
pub fn remove_leftovers(file: &Path) {
    let (Some(directory), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if entry_name.starts_with(&prefix) && entry_name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Journal {
    /// Start a journal (replacing any old one) with these entries.
    pub fn create(path: &Path, entries: &[Entry]) -> Result<Self> {
        // A run killed while writing its journal leaves the temporary file behind.
        remove_leftovers(path);
        let mut text = String::new();
        for entry in entries {
            text.push_str(&encode(entry)?);
        }
        let mut atomic = crate::io::atomic::AtomicFile::create(path)?;
        atomic
            .file_mut()
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("writing the forget journal", path, e))?;
        atomic.commit()?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io("opening the forget journal", path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Record one more entry durably.
    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        self.file
            .write_all(encode(entry)?.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io("writing the forget journal", &self.path, e))
    }

    /// The run completed: delete the journal.
    pub fn finish(self) -> Result<()> {
        std::fs::remove_file(&self.path)
            .map_err(|e| Error::io("removing the forget journal", &self.path, e))
    }
}

/// One journal line, newline included.
pub fn encode(entry: &Entry) -> Result<String> {
    let mut line = serde_json::to_string(entry)
        .map_err(|e| Error::invalid_data(None, format!("forget journal: {e}")))?;
    line.push('\n');
    Ok(line)
}
