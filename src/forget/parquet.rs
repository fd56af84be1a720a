//! Finding a subject's rows in Parquet files, and rewriting a file without them.
//!
//! Scanning reads only the id column, and only of row groups that may hold a match: a row group
//! is skipped when its min/max statistics exclude every needle or when its bloom filter says no
//! needle is present (both are exact "no" answers, never false negatives). Rewriting streams the
//! file row group by row group into an [`AtomicFile`] beside it, keeping the row-group layout,
//! the codec, the schema (with its metadata) and a bloom filter on the id column if the input
//! had one. A row group without a match is copied byte for byte (its column chunks, statistics
//! and the id column's bloom filter); only row groups holding a match are decoded, filtered and
//! re-encoded. Just before the rename the file's size and modification time are compared with what
//! the scan saw; if another writer changed it in between, nothing is replaced.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use arrow_array::{BooleanArray, RecordBatch};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{PageIndexPolicy, RowGroupMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;

use super::matcher::Needles;
use crate::error::{Error, Result};
use crate::io::atomic::AtomicFile;
use crate::parallel::RunControl;

/// Rows decoded per batch while scanning and rewriting.
const BATCH_ROWS: usize = 64 * 1024;

/// Size and modification time of a file, to notice another writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u128,
}

impl Fingerprint {
    /// The file's fingerprint now.
    pub fn of(path: &Path) -> Result<Self> {
        let metadata = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
        let mtime_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            len: metadata.len(),
            mtime_ns,
        })
    }
}

/// What a scan of one file found.
#[derive(Clone, Debug)]
pub struct FileScan {
    /// The file.
    pub path: PathBuf,
    /// Its fingerprint when scanned.
    pub fingerprint: Fingerprint,
    /// Rows in the file.
    pub rows: u64,
    /// Rows whose id matched.
    pub matching_rows: u64,
    /// Row groups read.
    pub row_groups_scanned: u64,
    /// Row groups skipped on statistics or bloom filters.
    pub row_groups_skipped: u64,
    /// Every row belongs to a subject (the file lies in a subject's hive partition of the id
    /// column): the file is removed rather than rewritten.
    pub whole_file: bool,
}

/// The id column's Arrow type in a file, or `None` when the file lacks the column.
pub fn id_column_type(path: &Path, id_column: &str) -> Result<Option<arrow_schema::DataType>> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let metadata = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| in_file(e.into(), path))?;
    Ok(metadata
        .schema()
        .field_with_name(id_column)
        .ok()
        .map(|f| f.data_type().clone()))
}

fn in_file(error: Error, path: &Path) -> Error {
    match error {
        Error::InvalidData { column, message } => Error::InvalidData {
            column,
            message: format!("'{}': {message}", path.display()),
        },
        other => other,
    }
}

/// Index of the Parquet leaf column holding top-level column `name`, if it is a plain leaf.
fn leaf_index(metadata: &ArrowReaderMetadata, name: &str) -> Option<usize> {
    metadata
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [name.to_owned()])
}

/// Whether statistics prove that no needle is in this row group.
fn excluded_by_statistics(row_group: &RowGroupMetaData, leaf: usize, needles: &Needles) -> bool {
    let Some(statistics) = row_group.column(leaf).statistics() else {
        return false;
    };
    match statistics {
        Statistics::ByteArray(_) => {
            match (statistics.min_bytes_opt(), statistics.max_bytes_opt()) {
                (Some(min), Some(max)) => !needles.may_hold_text(min, max),
                _ => false,
            }
        }
        Statistics::Int32(s) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => !needles.may_hold_integer(i64::from(*min), i64::from(*max)),
            _ => false,
        },
        Statistics::Int64(s) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => !needles.may_hold_integer(*min, *max),
            _ => false,
        },
        _ => false,
    }
}

/// Whether the row group's bloom filter proves that no needle is in it.
fn excluded_by_bloom_filter(
    builder: &ParquetRecordBatchReaderBuilder<File>,
    row_group: usize,
    leaf: usize,
    physical_int: Option<bool>,
    needles: &Needles,
) -> bool {
    let Ok(Some(filter)) = builder.get_row_group_column_bloom_filter(row_group, leaf) else {
        return false;
    };
    match physical_int {
        // Integer columns: the filter hashes the plain-encoded integer of the physical type.
        Some(true) => !needles
            .integers
            .iter()
            .any(|n| i32::try_from(*n).is_ok_and(|n| filter.check(&n))),
        Some(false) => !needles.integers.iter().any(|n| filter.check(n)),
        None => !needles.text.iter().any(|n| filter.check(n.as_str())),
    }
}

/// Count the rows of `path` whose `id_column` matches.
pub fn scan_file(
    path: &Path,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
) -> Result<FileScan> {
    let fingerprint = Fingerprint::of(path)?;
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let metadata = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| in_file(e.into(), path))?;
    let rows = u64::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut scan = FileScan {
        path: path.to_path_buf(),
        fingerprint,
        rows,
        matching_rows: 0,
        row_groups_scanned: 0,
        row_groups_skipped: 0,
        whole_file: false,
    };
    let field_index = metadata
        .schema()
        .index_of(id_column)
        .map_err(|_| Error::ColumnNotFound {
            column: id_column.to_owned(),
            available: format!("file '{}' has no such column", path.display()),
        })?;
    let leaf = leaf_index(&metadata, id_column);
    let physical_int = leaf.and_then(|leaf| {
        use parquet::basic::Type;
        match metadata
            .metadata()
            .file_metadata()
            .schema_descr()
            .column(leaf)
            .physical_type()
        {
            Type::INT32 => Some(Some(true)),
            Type::INT64 => Some(Some(false)),
            Type::BYTE_ARRAY => Some(None),
            _ => None,
        }
    });
    let probe = ParquetRecordBatchReaderBuilder::new_with_metadata(
        file.try_clone()
            .map_err(|e| Error::io("reading", path, e))?,
        metadata.clone(),
    );
    let mut candidates = Vec::new();
    for row_group in 0..metadata.metadata().num_row_groups() {
        let skip = match (leaf, physical_int) {
            (Some(leaf), Some(kind)) => {
                excluded_by_statistics(metadata.metadata().row_group(row_group), leaf, needles)
                    || excluded_by_bloom_filter(&probe, row_group, leaf, kind, needles)
            }
            _ => false,
        };
        if skip {
            scan.row_groups_skipped += 1;
        } else {
            candidates.push(row_group);
        }
    }
    if candidates.is_empty() {
        return Ok(scan);
    }
    scan.row_groups_scanned = candidates.len() as u64;
    let projection = ProjectionMask::roots(
        metadata.metadata().file_metadata().schema_descr(),
        [field_index],
    );
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata)
        .with_row_groups(candidates)
        .with_projection(projection)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| in_file(e.into(), path))?;
    for batch in reader {
        control.check()?;
        let batch = batch.map_err(|e| in_file(e.into(), path))?;
        let matched = needles.matches(batch.column(0))?;
        scan.matching_rows += matched.true_count() as u64;
    }
    Ok(scan)
}

/// Scan a file whose id comes from its hive partition (`matched`: the partition value is a
/// subject's): only the footer is read.
pub fn scan_partition_file(path: &Path, matched: bool) -> Result<FileScan> {
    let fingerprint = Fingerprint::of(path)?;
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let metadata = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| in_file(e.into(), path))?;
    let rows = u64::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    Ok(FileScan {
        path: path.to_path_buf(),
        fingerprint,
        rows,
        matching_rows: if matched { rows } else { 0 },
        row_groups_scanned: 0,
        row_groups_skipped: metadata.metadata().num_row_groups() as u64,
        whole_file: matched,
    })
}

/// `ConcurrentModification` when the scanned file's size or modification time changed since.
fn unchanged_since_scan(scan: &FileScan) -> Result<()> {
    let now = Fingerprint::of(&scan.path)?;
    if now != scan.fingerprint {
        return Err(Error::ConcurrentModification {
            path: scan.path.clone(),
            message: format!(
                "size {} -> {} bytes, or its modification time changed",
                scan.fingerprint.len, now.len
            ),
        });
    }
    Ok(())
}

/// Remove a file all of whose rows belong to the subjects, unless it changed since it was
/// scanned. One unlink: the file is there whole or gone. `before_removal` is called with the
/// counts just before the unlink (to journal them); its error keeps the file.
pub fn remove_whole_file(
    scan: &FileScan,
    before_removal: &dyn Fn(&Rewritten) -> Result<()>,
) -> Result<Rewritten> {
    let path = &scan.path;
    unchanged_since_scan(scan)?;
    let removed = Rewritten {
        rows_before: scan.rows,
        rows_removed: scan.rows,
        bytes_before: scan.fingerprint.len,
        bytes_after: 0,
    };
    before_removal(&removed)?;
    std::fs::remove_file(path).map_err(|e| Error::io("removing", path, e))?;
    if let Some(parent) = path.parent() {
        // Make the removal durable before the journal records it.
        let _ = File::open(parent).and_then(|dir| dir.sync_all());
    }
    Ok(removed)
}

/// What rewriting one file did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// Rows before.
    pub rows_before: u64,
    /// Rows removed.
    pub rows_removed: u64,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

/// A writer that hashes (SHA-256) what passes through it, so that the journal can name the new
/// content without reading it back.
struct HashingWriter<'a, W> {
    inner: W,
    hasher: &'a mut sha2::Sha256,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Rewrite `scan.path` without the matching rows and swap it in atomically, unless the file
/// changed since it was scanned. `before_swap` is called with the counts and the SHA-256 (hex)
/// of the new content just before the rename (to journal them); its error stops the swap.
pub fn rewrite_file(
    scan: &FileScan,
    id_column: &str,
    needles: &Needles,
    control: &RunControl,
    before_swap: &dyn Fn(&Rewritten, &str) -> Result<()>,
) -> Result<Rewritten> {
    let path = &scan.path;
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    // With the page index, so that copied row groups keep theirs.
    let metadata = ArrowReaderMetadata::load(
        &file,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
    )
    .map_err(|e| in_file(e.into(), path))?;
    let parquet_metadata = metadata.metadata();
    let row_groups = parquet_metadata.num_row_groups();
    let first_chunk = (row_groups > 0 && parquet_metadata.row_group(0).num_columns() > 0)
        .then(|| parquet_metadata.row_group(0).column(0));
    let compression = first_chunk.map_or(Compression::SNAPPY, |c| c.compression());
    let largest_row_group = (0..row_groups)
        .map(|i| parquet_metadata.row_group(i).num_rows())
        .max()
        .and_then(|rows| usize::try_from(rows).ok())
        .filter(|rows| *rows > 0)
        .unwrap_or(1024 * 1024);
    let mut properties = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(largest_row_group));
    if let Some(leaf) = leaf_index(&metadata, id_column) {
        let had_bloom_filter = (0..row_groups).any(|i| {
            parquet_metadata
                .row_group(i)
                .column(leaf)
                .bloom_filter_offset()
                .is_some()
        });
        if had_bloom_filter {
            // Keep later forgets fast: the id column keeps its bloom filter.
            properties = properties.set_column_bloom_filter_enabled(
                ColumnPath::from(vec![id_column.to_owned()]),
                true,
            );
        }
    }
    let offset_indexes = parquet_metadata.offset_index();
    let column_indexes = parquet_metadata.column_index();
    let has_page_index = offset_indexes.is_some_and(|groups| {
        groups.len() == row_groups
            && (0..row_groups)
                .all(|i| groups[i].len() == parquet_metadata.row_group(i).num_columns())
    });
    if !has_page_index {
        // A file's row groups either all carry an offset index or none does; copied row groups
        // have none here, so the re-encoded ones get none either.
        properties = properties
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true);
    }
    let schema = std::sync::Arc::clone(metadata.schema());
    let id_index = schema.index_of(id_column)?;
    let id_leaf = leaf_index(&metadata, id_column).ok_or_else(|| Error::ColumnNotFound {
        column: id_column.to_owned(),
        available: format!(
            "'{}' has no top-level leaf column of that name",
            path.display()
        ),
    })?;
    let reader = |row_group: usize, projection: Option<ProjectionMask>| {
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            file.try_clone()
                .map_err(|e| Error::io("reading", path, e))?,
            metadata.clone(),
        )
        .with_row_groups(vec![row_group])
        .with_batch_size(BATCH_ROWS);
        if let Some(projection) = projection {
            builder = builder.with_projection(projection);
        }
        Ok::<_, Error>(builder)
    };
    let mut output = AtomicFile::create(path)?;
    let mut rows_removed = 0u64;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    {
        let writer = ArrowWriter::try_new(
            HashingWriter {
                inner: output.file_mut(),
                hasher: &mut hasher,
            },
            std::sync::Arc::clone(&schema),
            Some(properties.build()),
        )?;
        let (mut writer, factory) = writer.into_serialized_writer()?;
        let mut row_groups_written = 0usize;
        for row_group in 0..row_groups {
            control.check()?;
            // Read the id column alone first: most row groups of an affected file hold no match
            // and are then copied as they are, without decoding the other columns.
            let id_only =
                ProjectionMask::leaves(parquet_metadata.file_metadata().schema_descr(), [id_leaf]);
            let mut matches = 0usize;
            for batch in reader(row_group, Some(id_only))?
                .build()
                .map_err(|e| in_file(e.into(), path))?
            {
                let batch = batch.map_err(|e| in_file(e.into(), path))?;
                matches += needles.matches(batch.column(0))?.true_count();
            }
            if matches == 0 {
                let source = parquet_metadata.row_group(row_group);
                let bloom_filters = reader(row_group, None)?;
                let mut copy = writer.next_row_group()?;
                for (leaf, chunk) in source.columns().iter().enumerate() {
                    copy.append_column(
                        &file,
                        ColumnCloseResult {
                            bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or(0),
                            rows_written: u64::try_from(source.num_rows()).unwrap_or(0),
                            metadata: chunk.clone(),
                            bloom_filter: bloom_filters
                                .get_row_group_column_bloom_filter(row_group, leaf)
                                .ok()
                                .flatten(),
                            column_index: column_indexes
                                .filter(|_| has_page_index)
                                .and_then(|groups| groups.get(row_group)?.get(leaf).cloned()),
                            offset_index: offset_indexes
                                .filter(|_| has_page_index)
                                .and_then(|groups| groups.get(row_group)?.get(leaf).cloned()),
                        },
                    )?;
                }
                copy.close()?;
                row_groups_written += 1;
                continue;
            }
            let mut columns = factory.create_column_writers(row_groups_written)?;
            let mut kept_rows = 0usize;
            for batch in reader(row_group, None)?
                .build()
                .map_err(|e| in_file(e.into(), path))?
            {
                let batch: RecordBatch = batch.map_err(|e| in_file(e.into(), path))?;
                let matched = needles.matches(batch.column(id_index))?;
                rows_removed += matched.true_count() as u64;
                let keep: BooleanArray = matched.iter().map(|m| m.map(|m| !m)).collect();
                let kept = arrow_select::filter::filter_record_batch(&batch, &keep)?;
                if kept.num_rows() == 0 {
                    continue;
                }
                kept_rows += kept.num_rows();
                let mut next = columns.iter_mut();
                for (field, column) in schema.fields().iter().zip(kept.columns()) {
                    for leaf in compute_leaves(field, column)? {
                        next.next()
                            .ok_or_else(|| {
                                Error::invalid_data(None, "more leaf columns than the schema has")
                            })?
                            .write(&leaf)?;
                    }
                }
            }
            if kept_rows == 0 {
                continue; // every row of this row group belonged to the subjects
            }
            let mut encoded = writer.next_row_group()?;
            for column in columns {
                column.close()?.append_to_row_group(&mut encoded)?;
            }
            encoded.close()?;
            row_groups_written += 1;
        }
        writer.close()?;
    }
    // The last moment before the swap: if someone else wrote the file since the scan, keep
    // theirs and drop ours (the temporary file is removed when `output` is dropped).
    unchanged_since_scan(scan)?;
    let rewritten = Rewritten {
        rows_before: scan.rows,
        rows_removed,
        bytes_before: scan.fingerprint.len,
        bytes_after: output.bytes_written()?,
    };
    before_swap(
        &rewritten,
        &hex::encode(<sha2::Sha256 as sha2::Digest>::finalize(hasher)),
    )?;
    output.commit()?;
    Ok(rewritten)
}
