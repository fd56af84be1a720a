//! Forgetting in Parquet datasets on Azure Blob Storage (`az://container/prefix/`).
//!
//! Contract:
//! - The dataset is the `.parquet` blobs directly under the prefix (or the one blob a URL
//!   without a trailing `/` names). Every blob is scanned (and its ETag noted) before any is
//!   written, so a blob without the id column stops the run before anything changed.
//! - A blob without a subject row is never written: its ETag and bytes stay as they were.
//! - An affected blob is read again with `If-Match: <the ETag seen at scan time>`, rewritten in
//!   memory without the subjects' rows and put back with the same `If-Match`: one request that
//!   replaces the blob only when complete. If anyone changed the blob since the scan, the
//!   service refuses the read or the put, their version stays, and the run stops with
//!   [`Error::ConcurrentModification`].
//! - No journal is needed to resume: each replacement is atomic and a rerun rescans, so blobs
//!   already rewritten no longer match and the rest are done.
//!
//! Memory: a blob being rewritten is held twice (old and new bytes), so this suits the usual
//! part files of up to a few hundred MB, not single multi-GB blobs.

use std::path::PathBuf;

use arrow_array::{BooleanArray, RecordBatch};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::matcher::Needles;
use super::FileChange;
use crate::error::{Error, Result};
use crate::io::blob::{BlobLocation, StorageOptions};
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

fn bad_file(url: &str, error: impl std::fmt::Display) -> Error {
    Error::invalid_data(None, format!("blob '{url}': {error}"))
}

/// Rows in the blob, and rows whose `id_column` matches.
fn count_matches(
    url: &str,
    data: &Bytes,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
) -> Result<(u64, u64)> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data.clone()).map_err(|e| bad_file(url, e))?;
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

/// The blob's Parquet without the matching rows (same schema, codec and row-group size).
fn without_matches(
    url: &str,
    data: &Bytes,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
) -> Result<(Vec<u8>, u64)> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data.clone()).map_err(|e| bad_file(url, e))?;
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
    let mut output = Vec::new();
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
        let (data, etag) = blob.get_with_etag()?;
        outcome.files_scanned += 1;
        outcome.bytes_total += data.len() as u64;
        let (rows, matching) = count_matches(blob.url(), &data, id_column, needles, control)?;
        if matching > 0 {
            let change = FileChange {
                path: PathBuf::from(blob.url()),
                rows_before: rows,
                rows_removed: matching,
                bytes_before: data.len() as u64,
                bytes_after: 0,
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
            let data = blob.get_if_unchanged(&etag)?.ok_or_else(moved)?;
            let (rewritten, removed) =
                without_matches(blob.url(), &data, id_column, needles, control)?;
            change.bytes_after = rewritten.len() as u64;
            change.rows_removed = removed;
            if !blob.put_if_unchanged(rewritten, &etag)? {
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
        let (data, _) = blob.get_with_etag()?;
        scanned += 1;
        let (_, matching) = count_matches(blob.url(), &data, id_column, needles, control)?;
        if matching > 0 {
            found.push((PathBuf::from(blob.url()), matching));
        }
    }
    Ok((scanned, found))
}
