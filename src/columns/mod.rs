//! Encryption of Arrow columns, value by value, under amlguard keys.
//!
//! [`encrypt_columns`] turns each chosen column into a Binary column of the Arrow extension type
//! `amlguard.encrypted` (nulls stay null); [`decrypt_columns`] restores the original type.
//! Every other column passes through untouched.
//!
//! - **Randomized** ([`Mode::Randomized`]): AES-256-GCM with a random 96-bit nonce per value.
//!   Chosen over AES-GCM-SIV because ring's AES-GCM is the fastest authenticated cipher at hand
//!   (hardware AES and carry-less multiply), and the risk GCM-SIV removes, a repeated random
//!   nonce, stays negligible here: each column of each call gets its own DEK, so one key sees
//!   at most the values of one column (appends with `reuse_from` included), and a call refuses
//!   more than 2^32 values under one key (NIST SP 800-38D's bound for random nonces).
//! - **Deterministic** ([`Mode::Deterministic`]): AES-SIV (RFC 5297) with a 512-bit DEK: equal
//!   values in, equal values out, so joins and group-bys keep working; equality is what leaks.
//!   Tokens of two tables are comparable when the second is encrypted with `reuse_from` the
//!   first (same DEK).
//! - **Subject-keyed** ([`SubjectKeying`]): each row's value is encrypted under the key of the
//!   row's data subject from the crypto-shredding store ([`crate::forget::SubjectKeyStore`]);
//!   destroying a subject's key makes those values unreadable everywhere ([`Error::Forgotten`]).
//!
//! Each column's DEK is wrapped by a [`KeyEncryptionKey`] (local keyring or Azure Key Vault)
//! and recorded with the KEK's id in the field metadata ([`metadata`]), so the data carries
//! what is needed to decrypt it through Parquet and IPC. The associated data of every value binds
//! the column name, the original type, the mode and the caller's context (sorted): a value moved
//! to another column, table or context fails to authenticate. Decryption unwraps each column's
//! DEK once, works on chunks of rows in parallel, and fails with an error naming the column
//! ([`Error::ColumnDecryption`], [`Error::ColumnNoMatchingKek`]), or gives null for values that
//! fail ([`OnError::Null`]) for analytics over partially forgotten data.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{ArrayRef, Int64Array, RecordBatch};
//! use amlguard::columns::{decrypt_columns, encrypt_columns, DecryptColumnsOptions, EncryptColumnsOptions};
//! use amlguard::keys::{KeyEncryptionKey, LocalKeyring};
//! use amlguard::parallel::RunControl;
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! keyring.ensure_key("pii").unwrap();
//! let kek = keyring.kek("pii").unwrap();
//! let batch = RecordBatch::try_from_iter([("age", Arc::new(Int64Array::from(vec![Some(41), None])) as ArrayRef)]).unwrap();
//! let control = RunControl::new();
//! let (encrypted, schema) = encrypt_columns(&[batch.clone()], &batch.schema(), &["age".into()],
//!     Some(&kek), &EncryptColumnsOptions::default(), &control).unwrap();
//! let keks: [&dyn KeyEncryptionKey; 1] = [&kek];
//! let (plain, _) = decrypt_columns(&encrypted, &schema, &keks, &DecryptColumnsOptions::default(), &control).unwrap();
//! assert_eq!(plain[0], batch);
//! ```

mod cipher;
mod codec;
pub mod metadata;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;
use zeroize::Zeroizing;

pub use self::cipher::Mode;
use self::cipher::{column_aad, subject_aad, Opener, Sealer, ValueKey, HANDLE_LEN};
use self::codec::{Decoded, Values};
use self::metadata::{encode_wrapped, FORMAT_VERSION};
pub use self::metadata::{ColumnMetadata, EncryptedColumn, SubjectKeying};
use crate::error::{Error, Result};
use crate::forget::SubjectKeyStore;
use crate::keys::KeyEncryptionKey;
use crate::parallel::RunControl;

/// Rows per unit of parallel work.
const CHUNK_ROWS: usize = 16 * 1024;
/// Values one randomized DEK may encrypt in one call (random 96-bit nonces).
const MAX_VALUES_PER_KEY: u64 = 1 << 32;

/// Subject-keyed encryption: whose key encrypts each row.
#[derive(Clone, Copy, Debug)]
pub struct SubjectKeys<'a> {
    /// The column naming each row's data subject.
    pub column: &'a str,
    /// The store holding one key per subject.
    pub store: &'a SubjectKeyStore,
}

/// How [`encrypt_columns`] encrypts.
#[derive(Clone, Debug)]
pub struct EncryptColumnsOptions<'a> {
    /// Randomized (default) or deterministic.
    pub mode: Mode,
    /// Context bound into every value (dataset, purpose, ...); recorded in the metadata.
    pub context: BTreeMap<String, String>,
    /// Encrypt each row under its subject's key instead of a column DEK.
    pub subject: Option<SubjectKeys<'a>>,
    /// Reuse the DEKs recorded in this schema (a table encrypted earlier), so that appended
    /// batches share keys and deterministic tokens stay comparable.
    pub reuse_from: Option<&'a Schema>,
    /// Worker threads (`None`: one per CPU).
    pub threads: Option<usize>,
}

impl Default for EncryptColumnsOptions<'_> {
    fn default() -> Self {
        Self {
            mode: Mode::Randomized,
            context: BTreeMap::new(),
            subject: None,
            reuse_from: None,
            threads: None,
        }
    }
}

/// What decryption does with a value that fails (tampered, wrong context, forgotten subject).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Fail with an error naming the column.
    #[default]
    Raise,
    /// Give null for that value.
    Null,
}

impl OnError {
    /// Parse `raise` or `null`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "raise" => Ok(OnError::Raise),
            "null" => Ok(OnError::Null),
            _ => Err(Error::InvalidArgument {
                name: "on_error",
                message: format!("'{text}': use 'raise' or 'null'"),
            }),
        }
    }
}

/// How [`decrypt_columns`] decrypts.
#[derive(Clone, Debug, Default)]
pub struct DecryptColumnsOptions<'a> {
    /// The context to check values against (`None`: the one recorded with each column).
    pub context: Option<BTreeMap<String, String>>,
    /// Which encrypted columns to decrypt (`None`: all).
    pub columns: Option<Vec<String>>,
    /// Raise or give null on a failing value.
    pub on_error: OnError,
    /// The subject-key store, for subject-keyed columns.
    pub subject_keys: Option<&'a SubjectKeyStore>,
    /// Worker threads (`None`: one per CPU).
    pub threads: Option<usize>,
}

/// The encrypted columns of `schema`, with their mode and key id (never secrets).
pub fn encrypted_columns(schema: &Schema) -> Result<Vec<EncryptedColumn>> {
    let mut out = Vec::new();
    for field in schema.fields() {
        if let Some(meta) = ColumnMetadata::from_field(field)? {
            out.push(EncryptedColumn {
                column: field.name().clone(),
                mode: meta.mode,
                key_id: meta.key_id,
                original_type: meta.original_type,
                context: meta.context,
                subject_column: meta.subject.map(|s| s.column),
                format_version: meta.format_version,
            });
        }
    }
    Ok(out)
}

/// The key of one column being encrypted or decrypted.
enum ColumnKey {
    /// One DEK for the whole column.
    Column(ValueKey),
    /// Keys by subject (encrypting) or by handle (decrypting); `None` marks a destroyed key.
    Subjects(HashMap<[u8; HANDLE_LEN], Option<ValueKey>>),
}

struct ColumnPlan {
    index: usize,
    name: String,
    aad: Vec<u8>,
    key: ColumnKey,
    /// Decrypting: the type to restore.
    original_type: DataType,
    mode: Mode,
}

fn find_kek<'k>(
    keks: &[&'k dyn KeyEncryptionKey],
    key_id: &str,
    column: &str,
) -> Result<&'k dyn KeyEncryptionKey> {
    keks.iter()
        .copied()
        .find(|kek| kek.accepts(key_id))
        .ok_or_else(|| Error::ColumnNoMatchingKek {
            column: column.to_owned(),
            recorded: key_id.to_owned(),
            offered: if keks.is_empty() {
                "none".into()
            } else {
                keks.iter()
                    .map(|k| k.key_id())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

fn unwrap_column_dek(
    meta: &ColumnMetadata,
    keks: &[&dyn KeyEncryptionKey],
    column: &str,
) -> Result<ValueKey> {
    let kek = find_kek(keks, &meta.key_id, column)?;
    let wrapped = meta.wrapped_dek_bytes(column)?;
    let dek = kek
        .unwrap_recorded(&wrapped, &meta.key_id, &meta.wrap_algorithm)
        .map_err(|e| match e {
            Error::Decryption => Error::ColumnDecryption {
                column: column.to_owned(),
            },
            other => other,
        })?;
    ValueKey::new(meta.mode, &dek).map_err(|_| Error::ColumnDecryption {
        column: column.to_owned(),
    })
}

fn replace_fields(schema: &Schema, replaced: &HashMap<usize, Field>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            replaced
                .get(&i)
                .cloned()
                .unwrap_or_else(|| f.as_ref().clone())
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Work items: (batch, plan, row range).
fn chunks(batches: &[RecordBatch], plans: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        for p in 0..plans {
            let mut start = 0;
            while start < batch.num_rows() {
                let len = CHUNK_ROWS.min(batch.num_rows() - start);
                out.push((b, p, start, len));
                start += len;
            }
        }
    }
    out
}

/// Put per-chunk arrays back into batches (chunks come in batch, plan, row order).
/// Run `one` on every (batch, column plan, row range) chunk in the pool, with cancellation
/// and progress, and put the results back into batches of `schema`.
fn run_chunks(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    plans: &[ColumnPlan],
    threads: Option<usize>,
    control: &RunControl,
    one: impl Fn(&RecordBatch, &ColumnPlan, usize, usize) -> Result<ArrayRef> + Sync,
) -> Result<Vec<RecordBatch>> {
    let work = chunks(batches, plans.len());
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    control.set_rows_total(rows * plans.len() as u64);
    let arrays = crate::parallel::pool(threads)?.install(|| {
        work.par_iter()
            .map(|&(b, p, start, len)| {
                control.check()?;
                let array = one(&batches[b], &plans[p], start, len)?;
                control.add_rows_done(len as u64);
                Ok(array)
            })
            .collect::<Result<Vec<ArrayRef>>>()
    })?;
    assemble(batches, schema, plans, &work, arrays)
}

fn assemble(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    plans: &[ColumnPlan],
    work: &[(usize, usize, usize, usize)],
    arrays: Vec<ArrayRef>,
) -> Result<Vec<RecordBatch>> {
    let mut pieces: HashMap<(usize, usize), Vec<ArrayRef>> = HashMap::new();
    for ((b, p, _, _), array) in work.iter().zip(arrays) {
        pieces.entry((*b, *p)).or_default().push(array);
    }
    let mut out = Vec::with_capacity(batches.len());
    for (b, batch) in batches.iter().enumerate() {
        let mut columns = batch.columns().to_vec();
        for (p, plan) in plans.iter().enumerate() {
            let target = schema.field(plan.index).data_type();
            columns[plan.index] = match pieces.remove(&(b, p)) {
                Some(parts) if parts.len() == 1 => parts
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| arrow_array::new_empty_array(target)),
                Some(parts) => {
                    let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                    arrow_select::concat::concat(&refs)?
                }
                None => arrow_array::new_empty_array(target),
            };
        }
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        out.push(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &options,
        )?);
    }
    Ok(out)
}

/// Encrypt `columns` of `batches` (all of `schema`). `kek` wraps the column DEKs; it may be
/// `None` only for subject-keyed encryption, whose keys the store's KEK wraps.
pub fn encrypt_columns(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    columns: &[String],
    kek: Option<&dyn KeyEncryptionKey>,
    options: &EncryptColumnsOptions<'_>,
    control: &RunControl,
) -> Result<(Vec<RecordBatch>, SchemaRef)> {
    if columns.is_empty() {
        return Err(Error::InvalidArgument {
            name: "columns",
            message: "name at least one column to encrypt".into(),
        });
    }
    let mode = options.mode;
    let mut plans = Vec::with_capacity(columns.len());
    let mut new_fields = HashMap::new();
    let subject_keys = match options.subject {
        Some(subject) => Some(subject_keys_for(batches, schema, subject, columns)?),
        None => None,
    };
    for name in columns {
        let (index, field) = schema
            .column_with_name(name)
            .ok_or_else(|| Error::column_not_found(name, schema))?;
        if new_fields.contains_key(&index) {
            return Err(Error::InvalidArgument {
                name: "columns",
                message: format!("column '{name}' is named twice"),
            });
        }
        if ColumnMetadata::from_field(field)?.is_some() {
            return Err(Error::invalid_data(
                Some(name),
                "the column is already encrypted by amlguard",
            ));
        }
        // Dictionary-encoded columns (pandas categoricals, polars enums) are encrypted as
        // their values; decryption gives the plain value type.
        let data_type = match field.data_type() {
            DataType::Dictionary(_, values) => values.as_ref(),
            other => other,
        };
        if !codec::is_supported(data_type) {
            return Err(codec::unsupported(name, field.data_type()));
        }
        let original_type = data_type.to_string();
        if original_type.parse::<DataType>().ok().as_ref() != Some(data_type) {
            return Err(codec::unsupported(name, data_type));
        }
        let field_metadata: BTreeMap<String, String> = field
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (meta, key) = match (&subject_keys, options.subject) {
            (Some((keys, store_kek_id)), Some(subject)) => (
                ColumnMetadata {
                    format_version: FORMAT_VERSION,
                    mode,
                    original_type: original_type.clone(),
                    original_nullable: field.is_nullable(),
                    key_id: store_kek_id.clone(),
                    wrap_algorithm: crate::keys::AES_256_KWP.into(),
                    wrapped_dek: None,
                    context: options.context.clone(),
                    subject: Some(SubjectKeying {
                        column: subject.column.to_owned(),
                        store_kek_id: store_kek_id.clone(),
                    }),
                    field_metadata,
                },
                ColumnKey::Subjects(
                    keys.values()
                        .map(|(handle, dek)| {
                            Ok((*handle, Some(ValueKey::from_subject_dek(mode, dek)?)))
                        })
                        .collect::<Result<_>>()?,
                ),
            ),
            _ => {
                let kek = kek.ok_or_else(|| Error::InvalidArgument {
                    name: "kek",
                    message: "pass the key-encryption key that wraps the column keys".into(),
                })?;
                column_key(name, &original_type, field, kek, options, field_metadata)?
            }
        };
        let aad = column_aad(name, &original_type, mode, &meta.context);
        new_fields.insert(
            index,
            Field::new(name, DataType::Binary, true).with_metadata(meta.to_field_metadata()?),
        );
        plans.push(ColumnPlan {
            index,
            name: name.clone(),
            aad,
            key,
            original_type: data_type.clone(),
            mode,
        });
    }
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if mode == Mode::Randomized && rows > MAX_VALUES_PER_KEY {
        return Err(Error::KeyUsageLimit {
            message: format!(
                "{rows} values under one column key exceed 2^32 random nonces; encrypt in parts"
            ),
        });
    }
    let new_schema = replace_fields(schema, &new_fields);
    let subject_index = match options.subject {
        Some(subject) => Some(
            schema
                .index_of(subject.column)
                .map_err(|_| Error::column_not_found(subject.column, schema))?,
        ),
        None => None,
    };
    let subject_handles = subject_keys.as_ref().map(|(keys, _)| {
        keys.iter()
            .map(|(subject, (handle, _))| (subject.as_str(), *handle))
            .collect::<HashMap<&str, [u8; HANDLE_LEN]>>()
    });
    let out = run_chunks(
        batches,
        &new_schema,
        &plans,
        options.threads,
        control,
        |batch, plan, start, len| {
            let mut values = batch.column(plan.index).slice(start, len);
            if values.data_type() != &plan.original_type {
                values = arrow_cast::cast(&values, &plan.original_type)?;
            }
            let array = match (&plan.key, subject_index, &subject_handles) {
                (ColumnKey::Column(key), _, _) => {
                    encrypt_chunk(&values, &plan.name, key, &plan.aad)?
                }
                (ColumnKey::Subjects(keys), Some(subject_index), Some(handles)) => {
                    let subjects = arrow_cast::cast(
                        &batch.column(subject_index).slice(start, len),
                        &DataType::Utf8,
                    )?;
                    encrypt_subject_chunk(
                        &values,
                        subjects.as_string::<i32>(),
                        plan,
                        keys,
                        handles,
                        options.subject.map_or("", |s| s.column),
                    )?
                }
                _ => {
                    return Err(Error::invalid_data(
                        Some(&plan.name),
                        "no key for the column",
                    ))
                }
            };
            Ok(array)
        },
    )?;
    Ok((out, new_schema))
}

/// The DEK of one column: fresh and wrapped by `kek`, or reused from `options.reuse_from`.
fn column_key(
    name: &str,
    original_type: &str,
    field: &Field,
    kek: &dyn KeyEncryptionKey,
    options: &EncryptColumnsOptions<'_>,
    field_metadata: BTreeMap<String, String>,
) -> Result<(ColumnMetadata, ColumnKey)> {
    let mode = options.mode;
    if let Some(previous) = options.reuse_from {
        let reuse_error = |message: String| Error::InvalidArgument {
            name: "reuse_from",
            message: format!("column '{name}': {message}"),
        };
        let earlier = previous
            .field_with_name(name)
            .ok()
            .map(ColumnMetadata::from_field)
            .transpose()?
            .flatten()
            .ok_or_else(|| reuse_error("not an encrypted column of the earlier table".into()))?;
        if earlier.subject.is_some() {
            return Err(reuse_error("the earlier column is subject-keyed".into()));
        }
        if earlier.mode != mode {
            return Err(reuse_error(format!(
                "the earlier column is {}, not {}",
                earlier.mode.as_str(),
                mode.as_str()
            )));
        }
        if earlier.original_type != original_type {
            return Err(reuse_error(format!(
                "the earlier column held {}, this one {original_type}",
                earlier.original_type
            )));
        }
        if earlier.context != options.context {
            return Err(reuse_error("the earlier column has another context".into()));
        }
        let key = unwrap_column_dek(&earlier, &[kek], name)?;
        let meta = ColumnMetadata {
            original_nullable: field.is_nullable(),
            field_metadata,
            ..earlier
        };
        return Ok((meta, ColumnKey::Column(key)));
    }
    let dek = cipher::random_dek(mode)?;
    let wrapped = kek.wrap(&dek)?;
    let meta = ColumnMetadata {
        format_version: FORMAT_VERSION,
        mode,
        original_type: original_type.to_owned(),
        original_nullable: field.is_nullable(),
        key_id: kek.key_id(),
        wrap_algorithm: kek.wrap_algorithm().to_owned(),
        wrapped_dek: Some(encode_wrapped(&wrapped)),
        context: options.context.clone(),
        subject: None,
        field_metadata,
    };
    Ok((meta, ColumnKey::Column(ValueKey::new(mode, &dek)?)))
}

/// Subject keys (created on first use) of every subject with a value to encrypt, and the
/// store's KEK id.
#[allow(clippy::type_complexity)]
fn subject_keys_for(
    batches: &[RecordBatch],
    schema: &Schema,
    subject: SubjectKeys<'_>,
    columns: &[String],
) -> Result<(
    HashMap<String, ([u8; HANDLE_LEN], Zeroizing<Vec<u8>>)>,
    String,
)> {
    let subject_index = schema
        .index_of(subject.column)
        .map_err(|_| Error::column_not_found(subject.column, schema))?;
    let value_indexes = columns
        .iter()
        .map(|c| {
            schema
                .index_of(c)
                .map_err(|_| Error::column_not_found(c, schema))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut keys = HashMap::new();
    for batch in batches {
        let subjects = arrow_cast::cast(batch.column(subject_index), &DataType::Utf8)?;
        let subjects = subjects.as_string::<i32>();
        for row in 0..batch.num_rows() {
            let has_value = value_indexes.iter().any(|i| batch.column(*i).is_valid(row));
            if !has_value {
                continue;
            }
            if subjects.is_null(row) {
                return Err(Error::invalid_data(
                    Some(subject.column),
                    "a row with a value to encrypt has no subject; every such row needs one",
                ));
            }
            let id = subjects.value(row);
            if !keys.contains_key(id) {
                keys.insert(id.to_owned(), subject.store.subject_key(id)?);
            }
        }
    }
    Ok((keys, subject.store.kek_id()))
}

fn binary_from_parts(bytes: Vec<u8>, ends: Vec<i64>, valid: &[bool]) -> Result<ArrayRef> {
    let nulls = if valid.iter().all(|v| *v) {
        None
    } else {
        let mut builder = BooleanBufferBuilder::new(valid.len());
        for v in valid {
            builder.append(*v);
        }
        Some(NullBuffer::new(builder.finish()))
    };
    let values = Buffer::from_vec(bytes);
    if let Ok(ends32) = ends
        .iter()
        .map(|e| i32::try_from(*e))
        .collect::<std::result::Result<Vec<i32>, _>>()
    {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(
            std::iter::once(0i32).chain(ends32).collect::<Vec<_>>(),
        ));
        return Ok(Arc::new(BinaryArray::try_new(offsets, values, nulls)?));
    }
    Err(Error::invalid_data(
        None,
        "an encrypted chunk exceeds 2 GiB; use smaller record batches",
    ))
}

fn encrypt_chunk(values: &ArrayRef, column: &str, key: &ValueKey, aad: &[u8]) -> Result<ArrayRef> {
    let source = Values::new(values, column)?;
    let mut sealer = Sealer::new(key)?;
    let rows = values.len();
    let estimate = values.get_buffer_memory_size() + rows * 32;
    let mut bytes = Vec::with_capacity(estimate);
    let mut ends = Vec::with_capacity(rows);
    let mut valid = Vec::with_capacity(rows);
    for row in 0..rows {
        let sealed = source.with_value(row, |plain| sealer.seal_into(plain, aad, &mut bytes));
        match sealed {
            Some(result) => {
                result.map_err(|e| e.in_column(column))?;
                valid.push(true);
            }
            None => valid.push(false),
        }
        ends.push(bytes.len() as i64);
    }
    binary_from_parts(bytes, ends, &valid)
}

fn encrypt_subject_chunk(
    values: &ArrayRef,
    subjects: &arrow_array::StringArray,
    plan: &ColumnPlan,
    keys: &HashMap<[u8; HANDLE_LEN], Option<ValueKey>>,
    handles: &HashMap<&str, [u8; HANDLE_LEN]>,
    subject_column: &str,
) -> Result<ArrayRef> {
    let source = Values::new(values, &plan.name)?;
    let rows = values.len();
    let mut sealers: HashMap<[u8; HANDLE_LEN], (Sealer<'_>, Vec<u8>)> = HashMap::new();
    let mut bytes = Vec::with_capacity(values.get_buffer_memory_size() + rows * 48);
    let mut ends = Vec::with_capacity(rows);
    let mut valid = Vec::with_capacity(rows);
    for row in 0..rows {
        let sealed = source.with_value(row, |plain| -> Result<()> {
            let missing = || {
                Error::invalid_data(
                    Some(subject_column),
                    "a row with a value to encrypt has no subject key",
                )
            };
            if subjects.is_null(row) {
                return Err(missing());
            }
            let handle = *handles.get(subjects.value(row)).ok_or_else(missing)?;
            let (sealer, aad) = match sealers.entry(handle) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let key = keys
                        .get(&handle)
                        .and_then(Option::as_ref)
                        .ok_or_else(missing)?;
                    entry.insert((Sealer::new(key)?, subject_aad(&plan.aad, &handle)))
                }
            };
            bytes.push(cipher::SUBJECT_VALUE_FORMAT);
            bytes.extend_from_slice(&handle);
            sealer.seal_into(plain, aad, &mut bytes)
        });
        match sealed {
            Some(result) => {
                result.map_err(|e| e.in_column(&plan.name))?;
                valid.push(true);
            }
            None => valid.push(false),
        }
        ends.push(bytes.len() as i64);
    }
    binary_from_parts(bytes, ends, &valid)
}

/// Decrypt the encrypted columns of `batches` (all of `schema`), restoring their types.
pub fn decrypt_columns(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    keks: &[&dyn KeyEncryptionKey],
    options: &DecryptColumnsOptions<'_>,
    control: &RunControl,
) -> Result<(Vec<RecordBatch>, SchemaRef)> {
    let targets: Vec<(usize, ColumnMetadata)> = match &options.columns {
        Some(names) => names
            .iter()
            .map(|name| {
                let (index, field) = schema
                    .column_with_name(name)
                    .ok_or_else(|| Error::column_not_found(name, schema))?;
                let meta = ColumnMetadata::from_field(field)?.ok_or_else(|| {
                    Error::invalid_data(Some(name), "the column is not encrypted by amlguard")
                })?;
                Ok((index, meta))
            })
            .collect::<Result<_>>()?,
        None => schema
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                ColumnMetadata::from_field(f)
                    .transpose()
                    .map(|m| m.map(|m| (i, m)))
            })
            .collect::<Result<_>>()?,
    };
    let mut plans = Vec::with_capacity(targets.len());
    let mut new_fields = HashMap::new();
    for (index, meta) in targets {
        let field = schema.field(index);
        let name = field.name().clone();
        if !matches!(
            field.data_type(),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ) {
            return Err(Error::invalid_data(
                Some(&name),
                format!(
                    "an encrypted column must be binary, found {}",
                    field.data_type()
                ),
            ));
        }
        let original_type = meta.original_data_type(&name)?;
        let context = options.context.as_ref().unwrap_or(&meta.context);
        let aad = column_aad(&name, &meta.original_type, meta.mode, context);
        let key = match &meta.subject {
            None => ColumnKey::Column(unwrap_column_dek(&meta, keks, &name)?),
            Some(_) => {
                let store = options.subject_keys.ok_or_else(|| Error::InvalidArgument {
                    name: "subject_keys",
                    message: format!(
                        "column '{name}' was encrypted under per-subject keys: pass the subject-key store"
                    ),
                })?;
                ColumnKey::Subjects(handle_keys(batches, index, &name, meta.mode, store)?)
            }
        };
        let nullable = meta.original_nullable || options.on_error == OnError::Null;
        new_fields.insert(
            index,
            Field::new(&name, original_type.clone(), nullable)
                .with_metadata(meta.field_metadata.clone().into_iter().collect()),
        );
        plans.push(ColumnPlan {
            index,
            name,
            aad,
            key,
            original_type,
            mode: meta.mode,
        });
    }
    if plans.is_empty() {
        return Ok((batches.to_vec(), Arc::clone(schema)));
    }
    let new_schema = replace_fields(schema, &new_fields);
    let out = run_chunks(
        batches,
        &new_schema,
        &plans,
        options.threads,
        control,
        |batch, plan, start, len| {
            let sealed = batch.column(plan.index).slice(start, len);
            decrypt_chunk(&sealed, plan, options.on_error)
        },
    )?;
    Ok((out, new_schema))
}

/// The keys of every subject handle found in one subject-keyed column; `None` for destroyed.
fn handle_keys(
    batches: &[RecordBatch],
    index: usize,
    column: &str,
    mode: Mode,
    store: &SubjectKeyStore,
) -> Result<HashMap<[u8; HANDLE_LEN], Option<ValueKey>>> {
    let mut keys = HashMap::new();
    for batch in batches {
        let array = batch.column(index);
        let values = Values::new(array, column)?;
        for row in 0..array.len() {
            let handle = values.with_value(row, |sealed| {
                (sealed.len() > cipher::SUBJECT_PREFIX_LEN
                    && sealed[0] == cipher::SUBJECT_VALUE_FORMAT)
                    .then(|| {
                        let mut handle = [0u8; HANDLE_LEN];
                        handle.copy_from_slice(&sealed[1..cipher::SUBJECT_PREFIX_LEN]);
                        handle
                    })
            });
            let Some(Some(handle)) = handle else { continue };
            if keys.contains_key(&handle) {
                continue;
            }
            let key = match store.key_by_handle(&handle) {
                Ok(dek) => Some(ValueKey::from_subject_dek(mode, &dek)?),
                Err(Error::Forgotten { .. }) => None,
                Err(other) => return Err(other),
            };
            keys.insert(handle, key);
        }
    }
    Ok(keys)
}

fn decrypt_chunk(sealed: &ArrayRef, plan: &ColumnPlan, on_error: OnError) -> Result<ArrayRef> {
    let source = Values::new(sealed, &plan.name)?;
    let rows = sealed.len();
    let overhead = plan.mode.overhead();
    let mut decoded = Decoded::with_capacity(rows, sealed.get_buffer_memory_size());
    let fail = |error: Error| -> Result<()> {
        match on_error {
            OnError::Null => Ok(()),
            OnError::Raise => Err(error),
        }
    };
    let tampered = || Error::ColumnDecryption {
        column: plan.name.clone(),
    };
    match &plan.key {
        ColumnKey::Column(key) => {
            let mut opener = Opener::new(key)?;
            for row in 0..rows {
                let start = decoded.bytes.len();
                let opened = source.with_value(row, |value| {
                    opener.open_into(value, &plan.aad, &mut decoded.bytes)
                });
                match opened {
                    None => decoded.finish_row(start, false),
                    Some(Ok(())) => decoded.finish_row(start, true),
                    Some(Err(_)) => {
                        fail(tampered())?;
                        decoded.finish_row(start, false);
                    }
                }
            }
        }
        ColumnKey::Subjects(keys) => {
            let mut openers: HashMap<[u8; HANDLE_LEN], (Opener<'_>, Vec<u8>)> = HashMap::new();
            for row in 0..rows {
                let start = decoded.bytes.len();
                let opened = source.with_value(row, |value| -> Result<()> {
                    if value.len() < cipher::SUBJECT_PREFIX_LEN + overhead
                        || value[0] != cipher::SUBJECT_VALUE_FORMAT
                    {
                        return Err(tampered());
                    }
                    let mut handle = [0u8; HANDLE_LEN];
                    handle.copy_from_slice(&value[1..cipher::SUBJECT_PREFIX_LEN]);
                    let key = match keys.get(&handle) {
                        Some(Some(key)) => key,
                        Some(None) => {
                            return Err(Error::Forgotten {
                                key_handle: hex::encode(handle),
                            })
                        }
                        None => return Err(tampered()),
                    };
                    let (opener, aad) = match openers.entry(handle) {
                        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                        std::collections::hash_map::Entry::Vacant(entry) => {
                            entry.insert((Opener::new(key)?, subject_aad(&plan.aad, &handle)))
                        }
                    };
                    opener
                        .open_into(
                            &value[cipher::SUBJECT_PREFIX_LEN..],
                            aad,
                            &mut decoded.bytes,
                        )
                        .map_err(|_| tampered())
                });
                match opened {
                    None => decoded.finish_row(start, false),
                    Some(Ok(())) => decoded.finish_row(start, true),
                    Some(Err(error)) => {
                        fail(error)?;
                        decoded.finish_row(start, false);
                    }
                }
            }
        }
    }
    decoded.into_array(&plan.original_type, &plan.name)
}
