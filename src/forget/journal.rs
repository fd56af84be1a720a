//! The forget journal: what a run planned and which files it already swapped in.
//!
//! One JSON Lines file per dataset (`_amlguard_forget.journal` in a dataset directory, or
//! `_amlguard_forget.<file name>.journal` beside a single-file dataset; the leading underscore
//! hides it from Parquet readers). The first line is the plan, each later line one finished
//! file, each written with `fsync`. A run killed at any moment leaves every data file old or new
//! (each swap is one rename); the next run reads the journal, removes the temporary files the
//! killed run left, carries the finished files into its receipt, and redoes the rest (a file
//! already rewritten no longer matches, so nothing is removed twice). The journal is deleted
//! when the run completes. It holds paths, counts and a keyed request fingerprint, never subject
//! identifiers other than in paths of a tree partitioned by the id column, whose directory names
//! are identifiers until the run removes them.

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
    /// A blob about to be replaced or deleted (blob datasets only). Written before the
    /// request, so that a run killed between the request and its `Done` line can tell, when
    /// resumed, whether the request landed.
    Replacing {
        /// The blob's URL.
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
        /// The ETag of the version scanned, which the request is conditioned on.
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
