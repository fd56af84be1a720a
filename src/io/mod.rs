//! Files in and out: masking Parquet and CSV files (or directories of them) in bounded memory.
//!
//! [`mask_file`] streams its input batch by batch (Parquet row group by row group), masks each
//! batch in parallel, and writes the result atomically ([`atomic::AtomicFile`]): an interrupted
//! or failed run leaves no output file. Parquet output keeps the input's row-group layout and
//! compression codec. CSV input is read with inferred types, except that columns the policy
//! masks with a string operator are read as text, so that `02139` stays `02139`.
//!
//! Azure Blob Storage lives in [`blob`] (and append blobs, for shared logs, in [`append_blob`]) (`az://` / `abfss://` URLs, block uploads that commit only
//! when complete, ranged reads); [`location`] encrypts, decrypts and masks between local paths
//! and blobs. Masking streams at both ends: a Parquet blob is read with ranged GETs of the
//! footer and the column chunks it needs, and the output is uploaded in blocks as it is written.

pub mod append_blob;
pub mod atomic;
pub mod blob;
mod blob_rest;
pub mod location;

use std::fs::File;
use std::io::{SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};

use self::blob::BlobChunks;
use self::location::{Location, ReadSeek};
use crate::error::{Error, Result};
use crate::keys::KeyProvider;
use crate::parallel::RunControl;
use crate::policy::{CompiledPolicy, Policy, Rule};

/// File formats amlguard reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
}

impl FileFormat {
    /// The format a path's extension names.
    pub fn from_path(path: &Path) -> Result<Self> {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match extension.as_str() {
            "parquet" | "pq" | "parq" => Ok(FileFormat::Parquet),
            "csv" => Ok(FileFormat::Csv),
            _ => Err(Error::invalid_data(
                None,
                format!(
                    "cannot tell the format of '{}': use a .parquet or .csv extension",
                    path.display()
                ),
            )),
        }
    }
}

/// Knobs for [`mask_file`].
#[derive(Clone, Debug)]
pub struct MaskOptions {
    /// Worker threads (`None`: one per CPU).
    pub threads: Option<usize>,
    /// Rows decoded per batch; bounds memory together with the row-group size.
    pub batch_rows: usize,
}

impl Default for MaskOptions {
    fn default() -> Self {
        Self {
            threads: None,
            batch_rows: 128 * 1024,
        }
    }
}

/// What a masking run did.
#[derive(Clone, Debug, Default)]
pub struct MaskReport {
    /// Files written.
    pub files: u64,
    /// Rows masked.
    pub rows: u64,
    /// Bytes read.
    pub input_bytes: u64,
    /// Bytes written.
    pub output_bytes: u64,
    /// Wall-clock time.
    pub elapsed_seconds: f64,
    /// Columns a rule changed (every rule other than `keep`).
    pub columns_masked: Vec<String>,
    /// Fingerprint of the policy applied.
    pub policy_fingerprint: String,
}

/// Mask `source` into `destination`. Both may be files (formats from their extensions) or
/// `source` a directory of Parquet/CSV files and `destination` a directory (created if needed).
pub fn mask_file(
    source: &Path,
    destination: &Path,
    policy: &Policy,
    keys: &dyn KeyProvider,
    options: &MaskOptions,
    control: &RunControl,
) -> Result<MaskReport> {
    let metadata = std::fs::metadata(source).map_err(|e| Error::io("opening", source, e))?;
    let pairs = if metadata.is_dir() {
        std::fs::create_dir_all(destination)
            .map_err(|e| Error::io("creating directory", destination, e))?;
        dataset_files(source)?
            .into_iter()
            .map(|input| {
                let relative = input.strip_prefix(source).unwrap_or(&input);
                let output = destination.join(relative);
                (Location::Local(input), Location::Local(output))
            })
            .collect()
    } else {
        vec![(
            Location::Local(source.to_path_buf()),
            Location::Local(destination.to_path_buf()),
        )]
    };
    mask_pairs(&pairs, policy, keys, options, control)
}

/// Mask each `(input, output)` pair in turn, wherever they live, into one report.
pub(crate) fn mask_pairs(
    pairs: &[(Location, Location)],
    policy: &Policy,
    keys: &dyn KeyProvider,
    options: &MaskOptions,
    control: &RunControl,
) -> Result<MaskReport> {
    let started = Instant::now();
    let mut report = MaskReport {
        policy_fingerprint: policy.fingerprint(),
        columns_masked: policy
            .columns
            .iter()
            .filter(|(_, rule)| !matches!(rule, Rule::Keep {}))
            .map(|(name, _)| name.clone())
            .collect(),
        ..Default::default()
    };
    for (source, destination) in pairs {
        control.check()?;
        mask_one(
            source,
            destination,
            policy,
            keys,
            options,
            control,
            &mut report,
        )?;
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn dataset_files(directory: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).map_err(|e| Error::io("listing", directory, e))? {
        let path = entry
            .map_err(|e| Error::io("listing", directory, e))?
            .path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']));
        if path.is_file() && !hidden && FileFormat::from_path(&path).is_ok() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::invalid_data(
            None,
            format!("'{}' holds no .parquet or .csv files", directory.display()),
        ));
    }
    Ok(files)
}

fn mask_one(
    source: &Location,
    destination: &Location,
    policy: &Policy,
    keys: &dyn KeyProvider,
    options: &MaskOptions,
    control: &RunControl,
    report: &mut MaskReport,
) -> Result<()> {
    location::check_distinct(source, destination)?;
    let input_format = FileFormat::from_path(&source.file_path())?;
    let output_format = FileFormat::from_path(&destination.file_path())?;
    let mut output = location::Output::create(destination)?;
    let rows = match (input_format, source) {
        (FileFormat::Parquet, Location::Local(path)) => {
            let input = File::open(path).map_err(|e| Error::io("opening", path, e))?;
            report.input_bytes += input
                .metadata()
                .map_err(|e| Error::io("reading", path, e))?
                .len();
            let reopen = |file: &File| file.try_clone().map_err(|e| Error::io("reading", path, e));
            let parquet_output = (output_format, &mut output as &mut (dyn Write + Send));
            mask_parquet(
                input,
                reopen,
                parquet_output,
                policy,
                keys,
                options,
                control,
            )?
        }
        (FileFormat::Parquet, Location::Blob(blob)) => {
            let input = blob.chunks()?;
            report.input_bytes += input.len();
            let reopen = |chunks: &BlobChunks| Ok(chunks.clone());
            let parquet_output = (output_format, &mut output as &mut (dyn Write + Send));
            mask_parquet(
                input,
                reopen,
                parquet_output,
                policy,
                keys,
                options,
                control,
            )?
        }
        (FileFormat::Csv, _) => {
            let (mut input, len) = source.reader()?;
            report.input_bytes += len;
            mask_csv(
                &mut input,
                &source.display_name(),
                output_format,
                &mut output,
                policy,
                keys,
                options,
                control,
            )?
        }
    };
    report.output_bytes += output.commit()?;
    report.rows += rows;
    report.files += 1;
    Ok(())
}

/// Mask one Parquet input row group by row group, keeping its row-group sizes and codec.
/// `reopen` gives the row-group readers their own handle on the input.
fn mask_parquet<R: ChunkReader + 'static>(
    input: R,
    reopen: impl Fn(&R) -> Result<R>,
    (output_format, output): (FileFormat, &mut (dyn Write + Send)),
    policy: &Policy,
    keys: &dyn KeyProvider,
    options: &MaskOptions,
    control: &RunControl,
) -> Result<u64> {
    let metadata = ArrowReaderMetadata::load(&input, Default::default())?;
    let compiled = policy.compile(Arc::clone(metadata.schema()), keys)?;
    let file_metadata = metadata.metadata();
    control.set_rows_total(
        control.rows_total() + u64::try_from(file_metadata.file_metadata().num_rows()).unwrap_or(0),
    );
    let row_groups = file_metadata.num_row_groups();
    let largest_row_group = (0..row_groups)
        .map(|i| file_metadata.row_group(i).num_rows())
        .max()
        .and_then(|rows| usize::try_from(rows).ok())
        .filter(|rows| *rows > 0)
        .unwrap_or(1024 * 1024);
    let compression = if row_groups > 0 && file_metadata.row_group(0).num_columns() > 0 {
        file_metadata.row_group(0).column(0).compression()
    } else {
        Compression::SNAPPY
    };
    let mut sink = Sink::open(
        output_format,
        output,
        &compiled,
        compression,
        largest_row_group,
    )?;
    let mut rows = 0u64;
    for row_group in 0..row_groups {
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(reopen(&input)?, metadata.clone())
                .with_row_groups(vec![row_group])
                .with_batch_size(options.batch_rows)
                .build()?;
        for batch in reader {
            rows += mask_batch(&compiled, batch?, rows, options, control, &mut sink)?;
        }
        sink.end_row_group()?;
    }
    sink.finish()?;
    Ok(rows)
}

/// Mask one CSV input; string-rule columns are read as text.
#[allow(clippy::too_many_arguments)]
fn mask_csv(
    input: &mut dyn ReadSeek,
    name: &str,
    output_format: FileFormat,
    output: &mut (dyn Write + Send),
    policy: &Policy,
    keys: &dyn KeyProvider,
    options: &MaskOptions,
    control: &RunControl,
) -> Result<u64> {
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (inferred, _) = format
        .infer_schema(&mut *input, Some(10_000))
        .map_err(|e| Error::from(e).in_csv(name))?;
    input
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("reading", PathBuf::from(name), e))?;
    let schema = text_for_string_rules(&inferred, policy);
    let compiled = policy.compile(Arc::clone(&schema), keys)?;
    let reader = arrow_csv::ReaderBuilder::new(schema)
        .with_format(format)
        .with_batch_size(options.batch_rows)
        .build(std::io::BufReader::new(input))?;
    let mut sink = Sink::open(
        output_format,
        output,
        &compiled,
        Compression::SNAPPY,
        1024 * 1024,
    )?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::from(e).in_csv(name))?;
        rows += mask_batch(&compiled, batch, rows, options, control, &mut sink)?;
    }
    sink.finish()?;
    Ok(rows)
}

impl Error {
    fn in_csv(self, name: &str) -> Self {
        match self {
            Error::InvalidData { column, message } => Error::InvalidData {
                column,
                message: format!("CSV file {name}: {message}"),
            },
            other => other,
        }
    }
}

/// CSV type inference would turn `02139` into 2139: read string-rule columns as text.
fn text_for_string_rules(inferred: &Schema, policy: &Policy) -> SchemaRef {
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|field| {
            let wants_text = matches!(
                policy.columns.get(field.name()),
                Some(
                    Rule::Redact { .. }
                        | Rule::Mask { .. }
                        | Rule::Hash { .. }
                        | Rule::Tokenize { .. }
                        | Rule::Detokenize { .. }
                        | Rule::Fpe { .. }
                        | Rule::Generalize {
                            prefix: Some(_),
                            ..
                        }
                )
            );
            if wants_text {
                Field::new(field.name(), DataType::Utf8, true)
            } else {
                field.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn mask_batch(
    compiled: &CompiledPolicy,
    batch: RecordBatch,
    first_row: u64,
    options: &MaskOptions,
    control: &RunControl,
    sink: &mut Sink<'_>,
) -> Result<u64> {
    let rows = batch.num_rows() as u64;
    for masked in compiled.apply_batches_on(&[batch], first_row, control, options.threads)? {
        sink.write(&masked)?;
    }
    Ok(rows)
}

enum Sink<'a> {
    Parquet(ArrowWriter<&'a mut (dyn Write + Send)>),
    Csv(arrow_csv::Writer<&'a mut (dyn Write + Send)>),
}

impl<'a> Sink<'a> {
    fn open(
        format: FileFormat,
        file: &'a mut (dyn Write + Send),
        compiled: &CompiledPolicy,
        compression: Compression,
        row_group_rows: usize,
    ) -> Result<Self> {
        Ok(match format {
            FileFormat::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(compression)
                    .set_max_row_group_row_count(Some(row_group_rows))
                    .build();
                Sink::Parquet(ArrowWriter::try_new(
                    file,
                    compiled.output_schema(),
                    Some(properties),
                )?)
            }
            FileFormat::Csv => Sink::Csv(
                arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file),
            ),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Sink::Parquet(writer) => writer.write(batch)?,
            Sink::Csv(writer) => writer.write(batch)?,
        }
        Ok(())
    }

    fn end_row_group(&mut self) -> Result<()> {
        if let Sink::Parquet(writer) = self {
            writer.flush()?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Parquet(writer) => {
                writer.close()?;
            }
            Sink::Csv(writer) => {
                writer.into_inner();
            }
        }
        Ok(())
    }
}
