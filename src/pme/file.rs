//! Writing and reading Parquet files, encrypted or not, at a local path or an `az://` URL.
//!
//! Writes encode the columns of each row group in parallel (one task per top-level column) and
//! append them in order, so the output is the same whatever the thread count; reads decode one
//! task per (row group, column) and stitch the arrays back into batches in file order.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, ProjectionMask};
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use parquet_key_management::crypto_factory::{
    CryptoFactory, DecryptionConfiguration, EncryptionConfiguration,
};
use parquet_key_management::kms::{KmsClientRef, KmsConnectionConfig, KmsConnectionInfo};
use rayon::prelude::*;

use super::external::{externalize, MaterialRetriever};
use super::kms::{AmlguardKms, MasterKeys};
use super::{ParquetReadOptions, ParquetReport, ParquetWriteOptions};
use crate::error::{Error, Result};
use crate::io::location::{Location, Output};
use crate::parallel::{pool, RunControl};

/// Magic at the end of a Parquet file whose footer is encrypted.
const ENCRYPTED_FOOTER_MAGIC: &[u8; 4] = b"PARE";

pub(super) fn crypto_factory(kms: &Arc<AmlguardKms>) -> CryptoFactory {
    let kms = kms.clone();
    CryptoFactory::new(
        move |_: &KmsConnectionInfo| -> parquet_key_management::errors::Result<KmsClientRef> {
            Ok(kms.clone())
        },
    )
}

/// Errors of the key tools themselves (ours are taken typed from the client first).
pub(super) fn from_key_tools(error: parquet_key_management::errors::Error) -> Error {
    match error {
        parquet_key_management::errors::Error::External(inner) => {
            Error::from_parquet_text(&inner.to_string())
        }
        other => Error::invalid_data(None, format!("Parquet encryption: {other}")),
    }
}

/// The leaf column paths (`a.b` for nested fields) of `schema` that `name` stands for: the
/// path itself, or every leaf under a top-level column.
fn leaf_paths(schema: &Schema, leaves: &[String], name: &str) -> Result<Vec<String>> {
    if leaves.iter().any(|leaf| leaf == name) {
        return Ok(vec![name.to_owned()]);
    }
    let prefix = format!("{name}.");
    let under: Vec<String> = leaves
        .iter()
        .filter(|leaf| leaf.starts_with(&prefix))
        .cloned()
        .collect();
    if under.is_empty() || schema.field_with_name(name).is_err() {
        return Err(Error::column_not_found(name, schema));
    }
    Ok(under)
}

fn encryption_configuration(
    schema: &Schema,
    options: &ParquetWriteOptions,
    footer_key: &str,
) -> Result<(EncryptionConfiguration, Vec<String>)> {
    let descriptor = ArrowSchemaConverter::new().convert(schema)?;
    let leaves: Vec<String> = descriptor
        .columns()
        .iter()
        .map(|c| c.path().string())
        .collect();
    let mut builder = EncryptionConfiguration::builder(footer_key.to_owned())
        .set_plaintext_footer(options.plaintext_footer)
        .set_double_wrapping(options.double_wrapping);
    let mut encrypted = Vec::new();
    for (master_key, columns) in &options.column_keys {
        let mut paths = Vec::new();
        for column in columns {
            paths.extend(leaf_paths(schema, &leaves, column)?);
        }
        encrypted.extend(paths.iter().cloned());
        builder = builder.add_column_key(master_key.clone(), paths);
    }
    let configuration = builder.build().map_err(|e| Error::InvalidArgument {
        name: "column_keys",
        message: e.to_string(),
    })?;
    Ok((configuration, encrypted))
}

/// A batch must have the stream's column names and types, and no nulls where the stream's
/// schema has none (nullability may otherwise differ: producers infer it per batch).
fn check_batch(batch: &RecordBatch, schema: &Schema) -> Result<()> {
    let fields = batch.schema_ref().fields();
    if fields.len() != schema.fields().len() {
        return Err(Error::invalid_data(
            None,
            format!(
                "a batch has {} columns, the stream's schema {}",
                fields.len(),
                schema.fields().len()
            ),
        ));
    }
    for ((field, expected), column) in fields.iter().zip(schema.fields()).zip(batch.columns()) {
        if field.name() != expected.name() || field.data_type() != expected.data_type() {
            return Err(Error::invalid_data(
                Some(expected.name()),
                format!(
                    "a batch has column '{}' of type {}, the stream's schema {} of type {}",
                    field.name(),
                    field.data_type(),
                    expected.name(),
                    expected.data_type()
                ),
            ));
        }
        if !expected.is_nullable() && column.null_count() > 0 {
            return Err(Error::invalid_data(
                Some(expected.name()),
                "the stream's schema says non-nullable, but a batch has nulls",
            ));
        }
    }
    Ok(())
}

/// Write `batches` (all of `schema`) as one Parquet file at `destination`, which appears only
/// when complete.
pub fn write_parquet(
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
    schema: SchemaRef,
    destination: &Location,
    keys: Option<Arc<dyn MasterKeys>>,
    options: &ParquetWriteOptions,
    control: &RunControl,
) -> Result<ParquetReport> {
    let started = Instant::now();
    if options.row_group_rows == 0 {
        return Err(Error::InvalidArgument {
            name: "row_group_rows",
            message: "must be at least 1".into(),
        });
    }
    let mut report = ParquetReport {
        plaintext_footer: options.footer_key.is_some() && options.plaintext_footer,
        ..ParquetReport::default()
    };
    let mut properties = WriterProperties::builder()
        // Column-chunk statistics without a page index, as pyarrow writes by default.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_compression(options.compression)
        .set_max_row_group_row_count(Some(options.row_group_rows));
    let mut kms = None;
    let mut key_material_store = None;
    match (&options.footer_key, keys) {
        (Some(footer_key), Some(keys)) => {
            let (configuration, encrypted) =
                encryption_configuration(&schema, options, footer_key)?;
            let client = Arc::new(AmlguardKms::new(keys));
            let file_keys = crypto_factory(&client)
                .file_encryption_keys(Arc::new(KmsConnectionConfig::default()), &configuration)
                .map_err(|e| client.take_error().unwrap_or_else(|| from_key_tools(e)))?;
            let file_properties = if options.external_key_material {
                let Location::Local(path) = destination else {
                    return Err(Error::InvalidArgument {
                        name: "external_key_material",
                        message: "external key material (a _KEY_MATERIAL_FOR_ file beside the data file) is supported for local paths only; write to a blob with the key material inside".into(),
                    });
                };
                let (builder, store) = externalize(file_keys, path)?;
                key_material_store = Some(store);
                builder.build()?
            } else {
                file_keys.into_parquet_builder().build()?
            };
            properties = properties.with_file_encryption_properties(file_properties);
            report.footer_key = Some(footer_key.clone());
            report.encrypted_columns = if encrypted.is_empty() {
                // Uniform encryption: every column under the footer key.
                ArrowSchemaConverter::new()
                    .convert(&schema)?
                    .columns()
                    .iter()
                    .map(|c| c.path().string())
                    .collect()
            } else {
                encrypted
            };
            kms = Some(client);
        }
        (Some(_), None) => {
            return Err(Error::InvalidArgument {
                name: "keys",
                message: "footer_key names a master key, so keys (a LocalKeyring or AzureKeyVault) must be given".into(),
            })
        }
        (None, _) if options.external_key_material => {
            return Err(Error::InvalidArgument {
                name: "external_key_material",
                message: "external key material needs a footer_key (a plain file has no keys)".into(),
            })
        }
        (None, _) if !options.column_keys.is_empty() => {
            return Err(Error::InvalidArgument {
                name: "footer_key",
                message: "column_keys need a footer_key too (the footer key protects the file metadata)".into(),
            })
        }
        (None, _) => {}
    }

    let pool = pool(options.threads)?;
    let mut output = Output::create(destination)?;
    {
        let writer = ArrowWriter::try_new(
            &mut output as &mut (dyn Write + Send),
            schema.clone(),
            Some(properties.build()),
        )?;
        let (mut file_writer, row_groups) = writer.into_serialized_writer()?;
        // Leaf columns of each top-level column, in order: one encoding task per top-level column.
        let descriptor = file_writer.schema_descr();
        let mut leaves_per_root = vec![0usize; schema.fields().len()];
        for leaf in 0..descriptor.num_columns() {
            leaves_per_root[descriptor.get_column_root_idx(leaf)] += 1;
        }

        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut pending_rows = 0usize;
        let flush = |pending: &mut Vec<RecordBatch>,
                     file_writer: &mut parquet::file::writer::SerializedFileWriter<_>|
         -> Result<()> {
            control.check()?;
            let index = file_writer.flushed_row_groups().len();
            let writers = row_groups.create_column_writers(index)?;
            let mut groups: Vec<Vec<ArrowColumnWriter>> = Vec::new();
            let mut writers = writers.into_iter();
            for count in &leaves_per_root {
                groups.push(writers.by_ref().take(*count).collect());
            }
            let batches = std::mem::take(pending);
            let chunks: Vec<Vec<ArrowColumnChunk>> = pool.install(|| {
                groups
                    .into_par_iter()
                    .enumerate()
                    .map(|(column, mut writers)| {
                        let field = schema.field(column);
                        for batch in &batches {
                            let leaves = compute_leaves(field, batch.column(column))?;
                            for (writer, leaf) in writers.iter_mut().zip(leaves.iter()) {
                                writer.write(leaf)?;
                            }
                        }
                        writers
                            .into_iter()
                            .map(|w| w.close().map_err(Error::from))
                            .collect::<Result<Vec<_>>>()
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            let mut row_group = file_writer.next_row_group()?;
            for chunk in chunks.into_iter().flatten() {
                chunk.append_to_row_group(&mut row_group)?;
            }
            row_group.close()?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            control.add_rows_done(rows as u64);
            Ok(())
        };

        for batch in batches {
            let mut batch = batch?;
            check_batch(&batch, &schema)?;
            report.rows += batch.num_rows() as u64;
            while batch.num_rows() > 0 {
                let take = (options.row_group_rows - pending_rows).min(batch.num_rows());
                pending.push(batch.slice(0, take));
                pending_rows += take;
                batch = batch.slice(take, batch.num_rows() - take);
                if pending_rows == options.row_group_rows {
                    flush(&mut pending, &mut file_writer)?;
                    pending_rows = 0;
                }
            }
        }
        if pending_rows > 0 {
            flush(&mut pending, &mut file_writer)?;
        }
        report.row_groups = file_writer.flushed_row_groups().len() as u64;
        file_writer.close()?;
    }
    // The key material first: a data file never appears without the keys to read it.
    if let Some(store) = key_material_store {
        store.commit()?;
    }
    report.bytes = output.commit()?;
    if let Some(kms) = kms {
        report.kms_calls = kms.calls();
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A local file read at explicit offsets (`pread`), so that parallel column readers never share
/// a seek position: `File`'s own `ChunkReader` seeks a cloned handle, and clones share one
/// offset, which concurrent readers would race on.
#[derive(Clone)]
struct PositionalFile {
    file: Arc<File>,
    len: u64,
}

impl PositionalFile {
    fn open(path: &std::path::Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading", path, e))?
            .len();
        Ok(Self {
            file: Arc::new(file),
            len,
        })
    }
}

fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buffer, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buffer, offset)
    }
}

/// Sequential reads of a [`PositionalFile`] from one offset on.
struct PositionalReader {
    file: Arc<File>,
    position: u64,
}

impl std::io::Read for PositionalReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = read_at(&self.file, buffer, self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl parquet::file::reader::Length for PositionalFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PositionalFile {
    type T = std::io::BufReader<PositionalReader>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::with_capacity(
            64 * 1024,
            PositionalReader {
                file: self.file.clone(),
                position: start,
            },
        ))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let mut buffer = vec![0u8; length];
        let mut filled = 0;
        while filled < length {
            let read = read_at(&self.file, &mut buffer[filled..], start + filled as u64)?;
            if read == 0 {
                return Err(parquet::errors::ParquetError::EOF(format!(
                    "expected {length} bytes at offset {start}, the file ends after {filled}"
                )));
            }
            filled += read;
        }
        Ok(buffer.into())
    }
}

/// Whether the file's footer is encrypted (it ends with `PARE`).
fn has_encrypted_footer<R: ChunkReader>(input: &R) -> Result<bool> {
    let len = input.len();
    if len < 8 {
        return Ok(false);
    }
    let tail = input.get_bytes(len - 4, 4)?;
    Ok(tail.as_ref() == ENCRYPTED_FOOTER_MAGIC)
}

/// Read the Parquet file at `source` into batches of its (projected) schema.
pub fn read_parquet(
    source: &Location,
    keys: Option<Arc<dyn MasterKeys>>,
    options: &ParquetReadOptions,
    control: &RunControl,
) -> Result<(SchemaRef, Vec<RecordBatch>, ParquetReport)> {
    match source {
        Location::Local(path) => {
            let file = PositionalFile::open(path)?;
            read_from(
                file,
                |file| Ok(file.clone()),
                source,
                keys,
                options,
                control,
            )
        }
        Location::Blob(blob) => {
            let chunks = blob.chunks()?;
            read_from(
                chunks,
                |chunks| Ok(chunks.clone()),
                source,
                keys,
                options,
                control,
            )
        }
    }
    .map_err(|e| e.in_parquet_file(source))
}

fn read_from<R: ChunkReader + 'static>(
    input: R,
    reopen: impl Fn(&R) -> Result<R> + Sync,
    source: &Location,
    keys: Option<Arc<dyn MasterKeys>>,
    options: &ParquetReadOptions,
    control: &RunControl,
) -> Result<(SchemaRef, Vec<RecordBatch>, ParquetReport)> {
    let kms = keys.map(|keys| Arc::new(AmlguardKms::new(keys)));
    let retriever = match &kms {
        Some(client) => {
            let unwrapper = crypto_factory(client)
                .key_unwrapper(
                    Arc::new(KmsConnectionConfig::default()),
                    DecryptionConfiguration::default(),
                )
                .map_err(from_key_tools)?;
            let data_file = match source {
                Location::Local(path) => Some(path.as_path()),
                Location::Blob(_) => None,
            };
            Some(Arc::new(MaterialRetriever::new(unwrapper, data_file)))
        }
        None => None,
    };
    read_with(
        input,
        reopen,
        source,
        kms.clone(),
        retriever.clone(),
        options,
        control,
    )
    // A missing key material file or a failed provider call is the cause, whatever parquet
    // made of it.
    .map_err(|e| {
        retriever
            .and_then(|r| r.take_error())
            .or_else(|| kms.and_then(|kms| kms.take_error()))
            .unwrap_or(e)
    })
}

fn read_with<R: ChunkReader + 'static>(
    input: R,
    reopen: impl Fn(&R) -> Result<R> + Sync,
    source: &Location,
    kms: Option<Arc<AmlguardKms>>,
    retriever: Option<Arc<MaterialRetriever>>,
    options: &ParquetReadOptions,
    control: &RunControl,
) -> Result<(SchemaRef, Vec<RecordBatch>, ParquetReport)> {
    let started = Instant::now();
    let keys_required = || Error::ParquetKeysRequired {
        source_name: source.display_name(),
    };
    let encrypted_footer = has_encrypted_footer(&input)?;
    let mut reader_options = ArrowReaderOptions::new();
    match retriever {
        Some(retriever) => {
            let properties = FileDecryptionProperties::with_key_retriever(retriever).build()?;
            reader_options = reader_options.with_file_decryption_properties(properties);
        }
        None if encrypted_footer => return Err(keys_required()),
        None => {}
    }
    let metadata = ArrowReaderMetadata::load(&input, reader_options)?;
    let schema = metadata.schema().clone();
    let parquet_schema = metadata.parquet_schema();

    // Projection: top-level columns by name, in the order asked for.
    let roots: Vec<usize> = match &options.columns {
        Some(names) => names
            .iter()
            .map(|name| {
                schema
                    .index_of(name)
                    .map_err(|_| Error::column_not_found(name, &schema))
            })
            .collect::<Result<_>>()?,
        None => (0..schema.fields().len()).collect(),
    };
    let projected: SchemaRef = Arc::new(schema.project(&roots)?);

    let file_metadata = metadata.metadata();
    let row_groups = file_metadata.num_row_groups();
    let mut report = ParquetReport {
        row_groups: row_groups as u64,
        bytes: input.len(),
        ..ParquetReport::default()
    };
    // Encrypted columns, from the (readable) column metadata.
    if row_groups > 0 {
        for (leaf, column) in file_metadata.row_group(0).columns().iter().enumerate() {
            if column.crypto_metadata().is_some() {
                let root = parquet_schema.get_column_root_idx(leaf);
                report
                    .encrypted_columns
                    .push(column.column_descr().path().string());
                if kms.is_none() && roots.contains(&root) {
                    return Err(keys_required());
                }
            }
        }
    }
    report.plaintext_footer = !encrypted_footer && !report.encrypted_columns.is_empty();

    let batch_rows = options.batch_rows.max(1);
    let tasks: Vec<(usize, usize)> = (0..row_groups)
        .flat_map(|group| roots.iter().map(move |root| (group, *root)))
        .collect();
    let pool = pool(options.threads)?;
    let columns: Vec<Vec<ArrayRef>> = pool.install(|| {
        tasks
            .par_iter()
            .map(|&(group, root)| -> Result<Vec<ArrayRef>> {
                control.check()?;
                let mask = ProjectionMask::roots(parquet_schema, [root]);
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    reopen(&input)?,
                    metadata.clone(),
                )
                .with_row_groups(vec![group])
                .with_projection(mask)
                .with_batch_size(batch_rows)
                .build()?;
                reader.map(|batch| Ok(batch?.column(0).clone())).collect()
            })
            .collect::<Result<Vec<_>>>()
    })?;

    // Stitch: every column of a row group was read with the same batch size, so the k-th array
    // of each column covers the same rows.
    let mut batches = Vec::new();
    let mut columns = columns.into_iter();
    for group in 0..row_groups {
        let per_column: Vec<Vec<ArrayRef>> = columns.by_ref().take(roots.len()).collect();
        let group_rows = usize::try_from(file_metadata.row_group(group).num_rows()).unwrap_or(0);
        let pieces = group_rows.div_ceil(batch_rows);
        if per_column.iter().any(|arrays| arrays.len() != pieces) {
            return Err(Error::invalid_data(
                None,
                format!(
                    "{}: row group {group} does not hold the rows its metadata declares",
                    source.display_name()
                ),
            ));
        }
        for piece in 0..pieces {
            let arrays: Vec<ArrayRef> = per_column.iter().map(|a| a[piece].clone()).collect();
            let rows = (group_rows - piece * batch_rows).min(batch_rows);
            let batch = RecordBatch::try_new_with_options(
                projected.clone(),
                arrays,
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )?;
            report.rows += rows as u64;
            batches.push(batch);
        }
        control.add_rows_done(group_rows as u64);
    }
    if let Some(kms) = kms {
        report.kms_calls = kms.calls();
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok((projected, batches, report))
}
