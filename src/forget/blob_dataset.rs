//! Forgetting in Parquet datasets on Azure Blob Storage (`az://container/prefix/`).
//!
//! Contract:
//! - The dataset is the `.parquet` blobs directly under the prefix (or the one blob a URL
//!   without a trailing `/` names). Every blob is scanned (and its ETag noted) before any is
//!   written, so a blob without the id column stops the run before anything changed. The scan
//!   reads each blob's footer and id-column chunks only, with ranged GETs under `If-Match`.
//! - A blob without a subject row is never written: its ETag and bytes stay as they were.
//! - An affected blob is read again column chunk by column chunk with ranged GETs, each with
//!   `If-Match: <the ETag seen at scan time>`, rewritten without the subjects' rows and put back
//!   with the same `If-Match`: one request that replaces the blob only when complete. If anyone
//!   changed the blob since the scan, the service refuses a read or the put, their version
//!   stays, and the run stops with [`Error::ConcurrentModification`].
//! - No journal is needed to resume: each replacement is atomic and a rerun rescans, so blobs
//!   already rewritten no longer match and the rest are done.
//!
//! Memory: about one copy of a blob at a time. The scan holds a column chunk at a time; the
//! rewrite holds the new bytes (preallocated to the old size, so they never reallocate) and the
//! column chunks being decoded, not the old blob. The put is one request so that the
//! replacement stays conditional (a block-list commit through `object_store` cannot carry
//! `If-Match`), which limits a blob to what fits in memory once.

use std::path::PathBuf;

use arrow_array::{BooleanArray, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::matcher::Needles;
use super::FileChange;
use crate::error::{Error, Result};
use crate::io::blob::{BlobChunks, BlobLocation, StorageOptions};
use crate::parallel::RunControl;

const BATCH_ROWS: usize = 64 * 1024;

/// What one blob dataset held and what changed.
#[derive(Debug, Default)]
pub(crate) struct BlobDatasetOutcome {
    pub(crate) files_scanned: u64,
    pub(crate) bytes_total: u64,
    pub(crate) changes: Vec<FileChange>,
}

fn blobs_of(url: &str, storage: &StorageOptions) -> Result<Vec<BlobLocation>> {
    if url.ends_with('/') {
        Ok(BlobLocation::list_tree(url, storage)?
            .into_iter()
            .filter(|blob| {
                let name = blob.file_name().to_ascii_lowercase();
                [".parquet", ".pq", ".parq"]
                    .iter()
                    .any(|e| name.ends_with(e))
            })
            .collect())
    } else {
        Ok(vec![BlobLocation::parse(url, storage)?])
    }
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
/// column's chunks only).
fn count_matches(
    url: &str,
    chunks: BlobChunks,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
) -> Result<(u64, u64)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(chunks).map_err(|e| bad_file(url, e))?;
    let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let index = builder
        .schema()
        .index_of(id_column)
        .map_err(|_| Error::ColumnNotFound {
            column: id_column.to_owned(),
            available: format!("blob '{url}' has no such column"),
        })?;
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
    Ok((rows, matching))
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

/// Scan (and unless `dry_run`, rewrite) one blob dataset; see the module docs.
pub(crate) fn forget_in_blobs(
    url: &str,
    id_column: &str,
    needles: &Needles,
    storage: &StorageOptions,
    dry_run: bool,
    control: &RunControl,
) -> Result<BlobDatasetOutcome> {
    let mut outcome = BlobDatasetOutcome::default();
    // Scan every blob first, so that a blob lacking the id column stops the run before any
    // blob is written. Only one blob is held in memory at a time.
    let mut affected = Vec::new();
    for blob in blobs_of(url, storage)? {
        control.check()?;
        let (size, etag) = blob.size_and_etag()?;
        outcome.files_scanned += 1;
        outcome.bytes_total += size;
        let (rows, matching) = count_matches(
            blob.url(),
            scan_chunks(&blob, size, etag.as_deref()),
            id_column,
            needles,
            control,
        )?;
        if matching > 0 {
            let change = FileChange {
                path: PathBuf::from(blob.url()),
                rows_before: rows,
                rows_removed: matching,
                bytes_before: size,
                bytes_after: 0,
                removed: false,
            };
            affected.push((blob, etag, change));
        }
    }
    for (blob, etag, mut change) in affected {
        if !dry_run {
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
            if blob.put_if_unchanged(rewritten, &etag)?.is_none() {
                return Err(moved());
            }
        }
        outcome.changes.push(change);
    }
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
    let mut scanned = 0u64;
    let mut found = Vec::new();
    for blob in blobs_of(url, storage)? {
        let (size, etag) = blob.size_and_etag()?;
        scanned += 1;
        let chunks = scan_chunks(&blob, size, etag.as_deref());
        let (_, matching) = count_matches(blob.url(), chunks, id_column, needles, control)?;
        if matching > 0 {
            found.push((PathBuf::from(blob.url()), matching));
        }
    }
    Ok((scanned, found))
}
