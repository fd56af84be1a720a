//! Forgetting in Parquet datasets on Azure Blob Storage (`az://container/prefix/`).
//!
//! Contract:
//! - The dataset is the `.parquet` blobs under the prefix, hive folders included (or the one
//!   blob a URL without a trailing `/` names); blobs and folders whose names start with `.` or
//!   `_` are not part of it. A prefix left with hidden blobs only is an empty dataset (a
//!   subject found nowhere, an empty receipt): a run that deletes every Parquet blob of the
//!   dataset (all partitions of the id column) first leaves the hidden blob
//!   `_amlguard_forget.emptied` there, since blob storage keeps no empty folder. A prefix with
//!   visible blobs but no Parquet blob is refused (`InvalidData`), and one with no blob at all
//!   (never a dataset, or a wrong URL) as not found. Every blob is scanned (and its ETag noted) before any is written,
//!   so a blob without the id column, or an id column that is an integer in some blobs and
//!   text in others (refused as mixed schemas, as in local datasets), stops the run before
//!   anything changed. The scan reads
//!   each blob's footer and id-column chunks only, with ranged GETs under `If-Match`.
//! - A blob without a subject row is never written: its ETag and bytes stay as they were.
//! - An affected blob is read again column chunk by column chunk with ranged GETs, each with
//!   `If-Match: <the ETag seen at scan time>`, rewritten without the subjects' rows and put back
//!   with the same `If-Match`: one request that replaces the blob only when complete. If anyone
//!   changed the blob since the scan, the service refuses a read or the put, their version
//!   stays, and the run stops with [`Error::ConcurrentModification`].
//! - In a tree hive-partitioned by the id column (`patient_id=subject-123/part-0.parquet`), a
//!   blob of a subject's partition (without the column, as pyarrow and Spark write them, or
//!   with only that subject's rows, as polars writes them) is deleted whole by one Delete Blob
//!   with the same `If-Match`, so a blob someone replaced since the scan is kept and the run
//!   stops. Once a subject's partition holds no visible blob, its hidden leftovers
//!   (`_SUCCESS`, `.crc`), whose names carry the identifier too, are deleted the same way.
//!   Blob storage has no directories to remove; on an account with a hierarchical namespace
//!   the emptied directory, whose name is the identifier, stays.
//! - A journal ([`super::blob_journal`]) in the storage beside the dataset makes an
//!   interrupted run resumable with a complete receipt: before each put or delete it records
//!   the blob's scanned ETag and the SHA-256 of the new content, after it the finished blob.
//!   A rerun of the same request carries the finished blobs into its receipt, recognises a put
//!   or delete that landed just before the kill (the blob holds exactly the recorded content,
//!   or is gone), rescans and does the rest (a replaced blob no longer matches).
//!
//! Memory: about one copy of a blob at a time. The scan holds a column chunk at a time; the
//! rewrite holds the new bytes (preallocated to the old size, so they never reallocate) and the
//! column chunks being decoded, not the old blob. The put is one request so that the
//! replacement stays conditional (a block-list commit through `object_store` cannot carry
//! `If-Match`), which limits a blob to what fits in memory once.

use std::path::{Path, PathBuf};

use arrow_array::{BooleanArray, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::blob_journal::{self, journal_url, BlobJournal, Previous};
use super::journal::{content_sha256, Entry};
use super::matcher::Needles;
use super::partition::id_partition;
use super::{refuse_mixed_id_types, FileChange};
use crate::error::{Error, Result};
use crate::io::blob::{storage_error, BlobChunks, BlobLocation, StorageOptions};
use crate::parallel::RunControl;

const BATCH_ROWS: usize = 64 * 1024;

/// What one blob dataset held and what changed.
#[derive(Debug, Default)]
pub(crate) struct BlobDatasetOutcome {
    pub(crate) files_scanned: u64,
    pub(crate) bytes_total: u64,
    pub(crate) changes: Vec<FileChange>,
    /// An interrupted run of the same request was completed.
    pub(crate) resumed: bool,
    /// This run's journal, to delete once the receipt is recorded.
    pub(crate) journal: Option<BlobJournal>,
    /// Subjects' partitions of the id column left empty (or, in a dry run, that would be).
    pub(crate) directories_removed: Vec<PathBuf>,
}

/// The subjects' partitions of the id column (`<dataset>/patient_id=subject-123`) that
/// `blobs` lie in, sorted.
fn subject_partitions<'p>(
    dataset_url: &str,
    blobs: impl Iterator<Item = &'p Path>,
    id_column: &str,
    needles: &Needles,
) -> Vec<PathBuf> {
    let root = Path::new(dataset_url.trim_end_matches('/'));
    let mut directories: Vec<PathBuf> = blobs
        .filter_map(|blob| id_partition(root, blob, id_column))
        .filter(|partition| partition.matches(needles))
        .map(|partition| partition.directory)
        .collect();
    directories.sort();
    directories.dedup();
    directories
}

/// Once a subject's partition holds no visible blob, delete its hidden leftovers (`_SUCCESS`,
/// `.crc` checksums), whose names still carry the identifier, each under `If-Match` of the
/// ETag listed. Returns how many were deleted, or `None` when visible blobs remain (the
/// partition is kept).
fn clear_partition(directory: &Path, storage: &StorageOptions) -> Result<Option<usize>> {
    let remaining = BlobLocation::list_all(&format!("{}/", directory.display()), storage)?;
    if remaining
        .iter()
        .any(|(blob, _)| !blob.file_name().starts_with(['.', '_']))
    {
        return Ok(None);
    }
    let mut deleted = 0;
    for (blob, etag) in remaining {
        let Some(etag) = etag else {
            return Ok(None);
        };
        if !blob.delete_if_unchanged(&etag)? {
            return Ok(None); // changed since listed: someone else's to keep
        }
        deleted += 1;
    }
    Ok(Some(deleted))
}

/// The hidden blob a run leaves under a prefix whose every Parquet blob it deletes, so that
/// the prefix still exists (blob storage keeps no empty folders) and later runs read it as an
/// empty dataset rather than a wrong URL.
const EMPTIED_MARKER: &str = "_amlguard_forget.emptied";

fn is_parquet_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [".parquet", ".pq", ".parq"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// The Parquet blobs of the dataset at `url` (see the module docs), sorted. Under a prefix,
/// a blob is hidden when its name or a folder on its way starts with `.` or `_`. A prefix
/// holding hidden blobs only (the marker a run leaves when it deletes every blob, a journal,
/// `_SUCCESS`) is an empty dataset, as a local folder without visible files is; one holding
/// visible blobs but no Parquet blob is refused, since forgetting nothing there would look
/// like success; one holding no blob at all does not exist (most likely a wrong URL) and is
/// refused as not found.
fn blobs_of(url: &str, storage: &StorageOptions) -> Result<Vec<BlobLocation>> {
    if !url.ends_with('/') {
        return Ok(vec![BlobLocation::parse(url, storage)?]);
    }
    let listed = BlobLocation::list_all(url, storage)?;
    if listed.is_empty() {
        return Err(storage_error(
            "listing",
            url,
            object_store::Error::NotFound {
                path: url.to_owned(),
                source: "no blob lies under this prefix (a dataset whose every blob forget \
                         deleted keeps a hidden _amlguard_forget.emptied blob)"
                    .into(),
            },
        ));
    }
    let (parquet, other): (Vec<BlobLocation>, Vec<BlobLocation>) = listed
        .into_iter()
        .map(|(blob, _)| blob)
        .filter(|blob| {
            !blob
                .url()
                .strip_prefix(url)
                .unwrap_or(blob.url())
                .split('/')
                .any(|part| part.starts_with(['.', '_']))
        })
        .partition(|blob| is_parquet_name(blob.file_name()));
    if let (true, Some(other)) = (parquet.is_empty(), other.first()) {
        return Err(Error::invalid_data(
            None,
            format!(
                "dataset '{url}' holds no Parquet blobs, only other blobs such as '{}'",
                other.url()
            ),
        ));
    }
    Ok(parquet)
}

/// Leave [`EMPTIED_MARKER`] under the prefix `url` (unless it is there already).
fn mark_emptied(url: &str, run_id: &str, storage: &StorageOptions) -> Result<()> {
    let marker = BlobLocation::parse(&format!("{url}{EMPTIED_MARKER}"), storage)?;
    let note = serde_json::json!({
        "emptied_by_forget_run": run_id,
        "note": "every Parquet blob of this dataset was deleted by forget; this blob keeps the \
                 prefix readable as an empty dataset",
    });
    marker.put_if_absent(note.to_string().into_bytes())?;
    Ok(())
}

/// The blob as of the version seen (`If-Match` on every read) when the storage gave an ETag.
fn scan_chunks(blob: &BlobLocation, size: u64, etag: Option<&str>) -> BlobChunks {
    match etag {
        Some(etag) => blob.chunks_if_unchanged(etag, size),
        None => blob.chunks_of_size(size),
    }
}

fn bad_file(url: &str, error: impl std::fmt::Display) -> Error {
    Error::invalid_data(None, format!("blob '{url}': {error}"))
}

/// Rows in the blob, and rows whose `id_column` matches (reading the footer and the id
/// column's chunks only); `None` for the matches when the blob has no such column.
fn count_matches(
    url: &str,
    chunks: BlobChunks,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
) -> Result<(u64, Option<(u64, bool)>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(chunks).map_err(|e| bad_file(url, e))?;
    let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let Ok(index) = builder.schema().index_of(id_column) else {
        return Ok((rows, None));
    };
    let integer_ids = builder.schema().field(index).data_type().is_integer();
    let projection = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let reader = builder
        .with_projection(projection)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad_file(url, e))?;
    let mut matching = 0u64;
    for batch in reader {
        control.check()?;
        let batch = batch.map_err(|e| bad_file(url, e))?;
        matching += needles.matches(batch.column(0))?.true_count() as u64;
    }
    Ok((rows, Some((matching, integer_ids))))
}

/// What the scan of one blob found.
struct SubjectRows {
    rows: u64,
    /// Rows that belong to the subjects.
    matching: u64,
    /// All of them do because the blob lies in a subject's hive partition of the id column
    /// (it is then deleted whole).
    whole: bool,
    /// Whether the blob's id column holds integers (`None` when the blob has no id column).
    integer_ids: Option<bool>,
}

/// Scan one blob for the subjects' rows. A blob without the id column outside a hive
/// partition of it is refused.
fn subject_rows(
    dataset_url: &str,
    blob: &BlobLocation,
    size: u64,
    etag: Option<&str>,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
) -> Result<SubjectRows> {
    let (rows, matching) = count_matches(
        blob.url(),
        scan_chunks(blob, size, etag),
        id_column,
        needles,
        control,
    )?;
    let partition = id_partition(
        Path::new(dataset_url.trim_end_matches('/')),
        Path::new(blob.url()),
        id_column,
    );
    let subjects_partition = partition.as_ref().is_some_and(|p| p.matches(needles));
    match matching {
        // Writers that keep the column in the files (polars): a blob of a subject's partition
        // holding only that subject's rows goes whole.
        Some((matching, integer_ids)) => Ok(SubjectRows {
            rows,
            matching,
            whole: subjects_partition && matching == rows && rows > 0,
            integer_ids: Some(integer_ids),
        }),
        None if partition.is_some() => Ok(SubjectRows {
            rows,
            matching: if subjects_partition { rows } else { 0 },
            whole: subjects_partition,
            integer_ids: None,
        }),
        None => Err(Error::ColumnNotFound {
            column: id_column.to_owned(),
            available: format!("blob '{}' has no such column", blob.url()),
        }),
    }
}

/// The blob's Parquet without the matching rows (same schema, codec and row-group size),
/// read from `chunks` (`size_bytes` long) and written into a buffer of that size.
fn without_matches(
    url: &str,
    chunks: BlobChunks,
    size_bytes: u64,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
) -> Result<(Vec<u8>, u64)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(chunks).map_err(|e| bad_file(url, e))?;
    let metadata = builder.metadata().clone();
    let compression = if metadata.num_row_groups() > 0 && metadata.row_group(0).num_columns() > 0 {
        metadata.row_group(0).column(0).compression()
    } else {
        Compression::SNAPPY
    };
    let largest_row_group = (0..metadata.num_row_groups())
        .map(|i| metadata.row_group(i).num_rows())
        .max()
        .and_then(|rows| usize::try_from(rows).ok())
        .filter(|rows| *rows > 0)
        .unwrap_or(1024 * 1024);
    let schema = builder.schema().clone();
    let index = schema.index_of(id_column)?;
    let properties = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(largest_row_group))
        .build();
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad_file(url, e))?;
    // Removing rows rarely makes a file larger; a larger one simply grows the buffer.
    let mut output = Vec::with_capacity(usize::try_from(size_bytes).unwrap_or(0));
    let mut removed = 0u64;
    {
        let mut writer = ArrowWriter::try_new(&mut output, schema, Some(properties))?;
        for batch in reader {
            control.check()?;
            let batch: RecordBatch = batch.map_err(|e| bad_file(url, e))?;
            let matched = needles.matches(batch.column(index))?;
            if matched.true_count() == 0 {
                writer.write(&batch)?;
                continue;
            }
            removed += matched.true_count() as u64;
            let keep: BooleanArray = matched.iter().map(|m| m.map(|m| !m)).collect();
            let kept = arrow_select::filter::filter_record_batch(&batch, &keep)?;
            if kept.num_rows() > 0 {
                writer.write(&kept)?;
            }
        }
        writer.close()?;
    }
    Ok((output, removed))
}

/// Clear the subjects' partitions emptied by this run or the one it resumes (`changes`), and
/// those a killed run planned to empty (`previous`), whose leftovers may still be there; see
/// [`clear_partition`]. Returns the partitions left empty.
fn clear_subject_partitions(
    url: &str,
    changes: &[FileChange],
    previous: &Previous,
    id_column: &str,
    needles: &Needles,
    storage: &StorageOptions,
    control: &RunControl,
) -> Result<Vec<PathBuf>> {
    let removed = changes
        .iter()
        .filter(|c| c.removed)
        .map(|c| c.path.as_path());
    let emptied = subject_partitions(url, removed, id_column, needles);
    let planned = previous.entries.iter().flat_map(|e| match e {
        Entry::Start { files, .. } => files.as_slice(),
        _ => &[],
    });
    let mut candidates = subject_partitions(url, planned.map(PathBuf::as_path), id_column, needles);
    candidates.extend(emptied.iter().cloned());
    candidates.sort();
    candidates.dedup();
    let mut cleared = Vec::new();
    for directory in candidates {
        control.check()?;
        if let Some(deleted) = clear_partition(&directory, storage)? {
            if deleted > 0 || emptied.contains(&directory) {
                cleared.push(directory);
            }
        }
    }
    Ok(cleared)
}

/// A blob with subject rows, as scanned.
struct Affected {
    blob: BlobLocation,
    etag: Option<String>,
    change: FileChange,
}

/// Scan (and unless `dry_run`, rewrite) one blob dataset; see the module docs. `run_id` and
/// `request` (the request fingerprint) go into the journal.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forget_in_blobs(
    url: &str,
    id_column: &str,
    needles: &Needles,
    storage: &StorageOptions,
    dry_run: bool,
    run_id: &str,
    request: &str,
    control: &RunControl,
) -> Result<BlobDatasetOutcome> {
    let mut outcome = BlobDatasetOutcome::default();
    let journal_location = BlobLocation::parse(&journal_url(url), storage)?;
    let previous = if dry_run {
        Previous::default()
    } else {
        blob_journal::read(&journal_location)?
    };
    // Scan every blob first, so that a blob lacking the id column stops the run before any
    // blob is written.
    let affected = scan_blobs(url, id_column, needles, storage, control, &mut outcome)?;
    if dry_run {
        outcome.changes = affected.into_iter().map(|a| a.change).collect();
        outcome.directories_removed = subject_partitions(
            url,
            outcome
                .changes
                .iter()
                .filter(|c| c.removed)
                .map(|c| c.path.as_path()),
            id_column,
            needles,
        );
        return Ok(outcome);
    }
    let carried = blob_journal::carried_over(&previous, request, storage)?;
    outcome.resumed = carried.is_some();
    let carried = carried.unwrap_or_default();
    if affected.is_empty() && previous.entries.is_empty() {
        return Ok(outcome);
    }
    let mut entries = vec![Entry::Start {
        run_id: run_id.to_owned(),
        request: request.to_owned(),
        files: affected.iter().map(|a| a.change.path.clone()).collect(),
    }];
    entries.extend(carried.iter().cloned());
    let mut journal = BlobJournal::create(journal_location, &previous, &entries)?;
    // Before the deletions: a run killed midway leaves the marker too.
    let empties_dataset = url.ends_with('/')
        && !affected.is_empty()
        && affected.len() as u64 == outcome.files_scanned
        && affected.iter().all(|a| a.change.removed);
    if empties_dataset {
        mark_emptied(url, run_id, storage)?;
    }
    outcome
        .changes
        .extend(carried.iter().filter_map(Entry::change));
    for Affected {
        blob,
        etag,
        mut change,
    } in affected
    {
        control.check()?;
        let changed = |detail: String| Error::ConcurrentModification {
            path: PathBuf::from(blob.url()),
            message: detail,
        };
        let Some(etag) = etag else {
            return Err(changed(
                "the storage gave no ETag, so it cannot be replaced safely".into(),
            ));
        };
        let moved = || {
            changed(format!(
                "the blob changed since it was scanned (ETag {etag} is no longer current); its new content was kept"
            ))
        };
        let replacing = |change: &FileChange, sha256_after: String| {
            Entry::replacing(change, etag.clone(), sha256_after)
        };
        if change.removed {
            journal.append(&replacing(&change, String::new()))?;
            if !blob.delete_if_unchanged(&etag)? {
                return Err(moved());
            }
        } else {
            let chunks = blob.chunks_if_unchanged(&etag, change.bytes_before);
            let rewritten = without_matches(
                blob.url(),
                chunks,
                change.bytes_before,
                id_column,
                needles,
                control,
            );
            let (rewritten, removed) = match rewritten {
                Ok(done) => done,
                // A read refused by If-Match surfaces as a Parquet read error: tell it apart.
                Err(_) if blob.etag()?.as_deref() != Some(etag.as_str()) => return Err(moved()),
                Err(error) => return Err(error),
            };
            change.bytes_after = rewritten.len() as u64;
            change.rows_removed = removed;
            journal.append(&replacing(&change, content_sha256(&rewritten)))?;
            if blob.put_if_unchanged(rewritten, &etag)?.is_none() {
                return Err(moved());
            }
        }
        journal.append(&Entry::done(&change))?;
        outcome.changes.push(change);
    }
    outcome.directories_removed = clear_subject_partitions(
        url,
        &outcome.changes,
        &previous,
        id_column,
        needles,
        storage,
        control,
    )?;
    outcome.journal = Some(journal);
    Ok(outcome)
}

/// Rows of the subjects still in one blob dataset: (files scanned, (url, rows) per blob).
pub(crate) fn find_in_blobs(
    url: &str,
    id_column: &str,
    needles: &Needles,
    storage: &StorageOptions,
    control: &RunControl,
) -> Result<(u64, Vec<(PathBuf, u64)>)> {
    let mut outcome = BlobDatasetOutcome::default();
    let affected = scan_blobs(url, id_column, needles, storage, control, &mut outcome)?;
    let found = affected
        .into_iter()
        .map(|a| (a.change.path, a.change.rows_removed))
        .collect();
    Ok((outcome.files_scanned, found))
}

/// Scan every blob of the dataset (one in memory at a time), counting them and their bytes
/// into `outcome`: the blobs holding subject rows, with the change their forget would make.
/// An id column that is an integer in some blobs and text in others is refused.
fn scan_blobs(
    url: &str,
    id_column: &str,
    needles: &Needles,
    storage: &StorageOptions,
    control: &RunControl,
    outcome: &mut BlobDatasetOutcome,
) -> Result<Vec<Affected>> {
    let mut affected = Vec::new();
    let mut id_kinds = Vec::new();
    for blob in blobs_of(url, storage)? {
        control.check()?;
        let (size, etag) = blob.size_and_etag()?;
        outcome.files_scanned += 1;
        outcome.bytes_total += size;
        let found = subject_rows(
            url,
            &blob,
            size,
            etag.as_deref(),
            id_column,
            needles,
            control,
        )?;
        if let Some(integer) = found.integer_ids {
            id_kinds.push((integer, blob.url().to_owned()));
        }
        if found.matching > 0 {
            let change = FileChange {
                path: PathBuf::from(blob.url()),
                rows_before: found.rows,
                rows_removed: found.matching,
                bytes_before: size,
                bytes_after: 0,
                removed: found.whole,
            };
            affected.push(Affected { blob, etag, change });
        }
    }
    refuse_mixed_id_types(url, id_column, id_kinds)?;
    Ok(affected)
}
