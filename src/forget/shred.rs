//! Crypto-shredding: one data key per subject, kept wrapped in a durable store, destroyed on
//! request so that every copy of the subject's encrypted values becomes unreadable.
//!
//! The store is SQLite (through rusqlite, bundled) in WAL mode with `secure_delete` on, by
//! default at `<keyring>/subject-keys.sqlite` (mode 0600). Each row holds a keyed index of the
//! subject (HMAC-SHA256 under a subkey of the KEK's keyring key, so the store never holds the
//! identifier), a random 16-byte key handle, the KEK id, and the AES-256 DEK wrapped by the KEK
//! (AES-256-KWP for the local keyring; RSA-OAEP-256 or A256KW in Azure Key Vault with
//! [`SubjectKeyStore::open_with_kek`], where the subject index key is then a keyring key of its
//! own, `subject-key-index`). Destroying a subject's key deletes the wrapped DEK and
//! keeps a tombstone (handle and time), so that decrypting later says "forgotten" rather than
//! "unknown key"; then the WAL is checkpointed and truncated and the database VACUUMed, so the
//! wrapped bytes are gone from the live files.
//!
//! Values are encrypted one by one with AES-256-GCM (ring) under the subject's DEK:
//! `0x01 || key handle (16) || nonce (12, random) || ciphertext || tag (16)`, with the column
//! name, a caller-chosen context and the key handle bound as associated data, so a value cannot
//! be moved to another column or context undetected. Random 96-bit nonces keep one subject's key
//! safe for 2^32 values, far beyond one person's records.
//!
//! ```
//! use amlguard::forget::SubjectKeyStore;
//! use amlguard::keys::LocalKeyring;
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! let store = SubjectKeyStore::open(&keyring, "subject-kek", None).unwrap();
//! let sealed = store.encrypt_value("patient-1", b"diabetes", b"diagnosis").unwrap();
//! assert_eq!(store.decrypt_value(&sealed, b"diagnosis").unwrap().as_slice(), b"diabetes");
//! store.destroy(&["patient-1".to_string()]).unwrap();
//! assert!(matches!(store.decrypt_value(&sealed, b"diagnosis"), Err(amlguard::Error::Forgotten { .. })));
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::audit::now_rfc3339;
use crate::error::{Error, Result};
use crate::keys::{DeletedKeyRetention, KeyEncryptionKey, LocalKeyring};

/// Format byte of a subject-encrypted value.
const VALUE_FORMAT: u8 = 1;
/// Bytes of a key handle.
const HANDLE_LEN: usize = 16;
/// Bytes of the GCM tag.
const TAG_LEN: usize = 16;
/// Field metadata key recording the column's original type.
pub const ORIGINAL_TYPE_METADATA: &str = "amlguard.subject_encrypted.original_type";

/// A destroyed (or, in a dry run, to-be-destroyed) subject key, for the receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyDestruction {
    /// The key's handle (opaque; never the subject's identifier).
    pub key_handle: String,
    /// The KEK that wrapped it.
    pub kek_id: String,
    /// When the key became unusable (the deleting transaction committed).
    pub unusable_at: Option<String>,
    /// When the wrapped key was gone from the live store files (secure_delete, WAL truncated,
    /// VACUUM).
    pub physically_removed_at: Option<String>,
    /// How long the KEK's provider keeps the KEK recoverable once it is deleted (Key Vault soft
    /// delete); until then earlier copies of the store file stay decryptable with it.
    pub kek_deleted_key_retention: Option<DeletedKeyRetention>,
    /// What may still hold a copy.
    pub note: String,
}

/// What decrypting a forgotten subject's value gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnForgotten {
    /// Fail with [`Error::Forgotten`].
    Error,
    /// Give null (for analytics over data that still holds forgotten subjects).
    Null,
}

impl OnForgotten {
    /// Parse `error` or `null`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "error" => Ok(OnForgotten::Error),
            "null" => Ok(OnForgotten::Null),
            _ => Err(Error::InvalidArgument {
                name: "on_forgotten",
                message: "use 'error' or 'null'".into(),
            }),
        }
    }
}

/// The subject-key store.
pub struct SubjectKeyStore {
    path: PathBuf,
    connection: Mutex<Connection>,
    kek: Arc<dyn KeyEncryptionKey>,
    index_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SubjectKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKeyStore")
            .field("path", &self.path)
            .field("kek", &self.kek.key_id())
            .finish_non_exhaustive()
    }
}

fn sql_error(path: &Path, error: rusqlite::Error) -> Error {
    Error::Keyring {
        message: format!("subject-key store '{}': {error}", path.display()),
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::RandomSource {
        message: e.to_string(),
    })?;
    Ok(bytes)
}

impl SubjectKeyStore {
    /// Open (creating on first use) the store; `path` defaults to
    /// `<keyring>/subject-keys.sqlite`. The KEK `kek_name` is created in the keyring if needed.
    pub fn open(keyring: &LocalKeyring, kek_name: &str, path: Option<&Path>) -> Result<Self> {
        let path = path.map_or_else(
            || keyring.path().join("subject-keys.sqlite"),
            Path::to_path_buf,
        );
        keyring.ensure_key(kek_name)?;
        let kek = keyring.kek(kek_name)?;
        let index_key = keyring.key(kek_name)?.derive::<32>("subject-key-index");
        Self::open_store(path, Arc::new(kek), index_key)
    }

    /// Open (creating on first use) a store whose subject keys are wrapped by `kek`, e.g. an
    /// Azure Key Vault key. The keyed subject index uses the keyring key `subject-key-index`
    /// (created if needed), so the store never holds identifiers; `path` defaults to
    /// `<keyring>/subject-keys.sqlite`.
    pub fn open_with_kek(
        keyring: &LocalKeyring,
        kek: Arc<dyn KeyEncryptionKey>,
        path: Option<&Path>,
    ) -> Result<Self> {
        let path = path.map_or_else(
            || keyring.path().join("subject-keys.sqlite"),
            Path::to_path_buf,
        );
        keyring.ensure_key("subject-key-index")?;
        let index_key = keyring
            .key("subject-key-index")?
            .derive::<32>("subject-key-index");
        Self::open_store(path, kek, index_key)
    }

    fn open_store(
        path: PathBuf,
        kek: Arc<dyn KeyEncryptionKey>,
        index_key: Zeroizing<[u8; 32]>,
    ) -> Result<Self> {
        let connection = Connection::open(&path).map_err(|e| sql_error(&path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        connection
            .execute_batch(
                "PRAGMA journal_mode=WAL;
                 PRAGMA synchronous=FULL;
                 PRAGMA secure_delete=ON;
                 CREATE TABLE IF NOT EXISTS subject_keys (
                     subject_index TEXT PRIMARY KEY,
                     key_handle TEXT NOT NULL UNIQUE,
                     kek_id TEXT NOT NULL,
                     wrapped_dek BLOB,
                     created_at TEXT NOT NULL,
                     destroyed_at TEXT
                 );",
            )
            .map_err(|e| sql_error(&path, e))?;
        Ok(Self {
            path,
            connection: Mutex::new(connection),
            kek,
            index_key,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The KEK's id.
    pub fn kek_id(&self) -> String {
        self.kek.key_id()
    }

    fn subject_index(&self, subject: &str) -> Result<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.index_key.as_slice())
            .map_err(|_| Error::invalid_data(None, "HMAC key has an invalid length"))?;
        mac.update(subject.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subject's key (created on first use), with its handle.
    pub(crate) fn subject_key(
        &self,
        subject: &str,
    ) -> Result<([u8; HANDLE_LEN], Zeroizing<Vec<u8>>)> {
        let index = self.subject_index(subject)?;
        let connection = self.connection();
        let row: Option<(String, Option<Vec<u8>>, String)> = connection
            .query_row(
                "SELECT key_handle, wrapped_dek, kek_id FROM subject_keys WHERE subject_index = ?1",
                params![index],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(|e| sql_error(&self.path, e))?;
        match row {
            Some((handle, Some(wrapped), kek_id)) => {
                let handle = decode_handle(&handle)?;
                Ok((handle, self.kek.unwrap(&wrapped, &kek_id)?))
            }
            Some((handle, None, _)) => Err(Error::Forgotten { key_handle: handle }),
            None => {
                let handle = random::<HANDLE_LEN>()?;
                let dek = Zeroizing::new(random::<32>()?.to_vec());
                let wrapped = self.kek.wrap(&dek)?;
                let inserted = connection
                    .execute(
                        "INSERT OR IGNORE INTO subject_keys (subject_index, key_handle, kek_id, wrapped_dek, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![index, hex::encode(handle), self.kek.key_id(), wrapped, now_rfc3339()],
                    )
                    .map_err(|e| sql_error(&self.path, e))?;
                drop(connection);
                if inserted == 0 {
                    // Another process created this subject's key first: use theirs.
                    return self.subject_key(subject);
                }
                Ok((handle, dek))
            }
        }
    }

    /// The DEK for a handle; [`Error::Forgotten`] when it was destroyed.
    pub(crate) fn key_by_handle(&self, handle: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let handle_hex = hex::encode(handle);
        let row: Option<(Option<Vec<u8>>, String)> = self
            .connection()
            .query_row(
                "SELECT wrapped_dek, kek_id FROM subject_keys WHERE key_handle = ?1",
                params![handle_hex],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| sql_error(&self.path, e))?;
        match row {
            Some((Some(wrapped), kek_id)) => self.kek.unwrap(&wrapped, &kek_id),
            Some((None, _)) => Err(Error::Forgotten {
                key_handle: handle_hex,
            }),
            None => Err(Error::KeyNotFound {
                name: format!("subject key {handle_hex}"),
                provider: format!("the subject-key store at '{}'", self.path.display()),
            }),
        }
    }

    /// Encrypt one value under `subject`'s key, bound to `context`.
    pub fn encrypt_value(&self, subject: &str, value: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let (handle, dek) = self.subject_key(subject)?;
        seal(&handle, &dek, value, context)
    }

    /// Decrypt one value; [`Error::Forgotten`] when its subject was forgotten.
    pub fn decrypt_value(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let handle = sealed_handle(sealed)?;
        let dek = self.key_by_handle(handle)?;
        open(handle, &dek, sealed, context)
    }

    fn destruction_note(&self) -> String {
        let mut note = format!(
            "the wrapped key was deleted from '{}' (SQLite secure_delete overwrote it, the WAL was checkpointed and truncated, the database was VACUUMed); copies of that file made earlier (backups, snapshots) still hold it wrapped under KEK '{}': expire them, or rotate the KEK and destroy its old versions; flash storage may keep old blocks until they are reused",
            self.path.display(),
            self.kek.key_id()
        );
        if let Some(retention) = self.kek.deleted_key_retention() {
            note.push_str(&format!(
                "; the KEK's provider keeps a deleted KEK recoverable for {} days (recovery level {}, {}), so such copies become unreadable only once the KEK is deleted and then purged or those days have passed",
                retention.recoverable_days,
                retention.recovery_level,
                if retention.source == "provider" { "as the vault reports" } else { "the documented default; the vault did not report it" },
            ));
        }
        note
    }

    /// The keys [`destroy`](Self::destroy) would destroy, without destroying them.
    pub fn destruction_preview(&self, subjects: &[String]) -> Result<Vec<KeyDestruction>> {
        let connection = self.connection();
        let mut out = Vec::new();
        for subject in subjects {
            let index = self.subject_index(subject)?;
            let row: Option<(String, String)> = connection
                .query_row(
                    "SELECT key_handle, kek_id FROM subject_keys WHERE subject_index = ?1 AND wrapped_dek IS NOT NULL",
                    params![index],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(|e| sql_error(&self.path, e))?;
            if let Some((key_handle, kek_id)) = row {
                out.push(KeyDestruction {
                    key_handle,
                    kek_id,
                    unusable_at: None,
                    physically_removed_at: None,
                    kek_deleted_key_retention: self.kek.deleted_key_retention(),
                    note: "dry run: not destroyed".into(),
                });
            }
        }
        Ok(out)
    }

    /// Destroy the keys of `subjects` (those that have one); returns what was destroyed.
    pub fn destroy(&self, subjects: &[String]) -> Result<Vec<KeyDestruction>> {
        let indexes = subjects
            .iter()
            .map(|s| self.subject_index(s))
            .collect::<Result<Vec<_>>>()?;
        let mut connection = self.connection();
        let transaction = connection
            .transaction()
            .map_err(|e| sql_error(&self.path, e))?;
        let mut destroyed = Vec::new();
        let now = now_rfc3339();
        for index in &indexes {
            let row: Option<(String, String)> = transaction
                .query_row(
                    "UPDATE subject_keys SET wrapped_dek = NULL, destroyed_at = ?2 WHERE subject_index = ?1 AND wrapped_dek IS NOT NULL RETURNING key_handle, kek_id",
                    params![index, now],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(|e| sql_error(&self.path, e))?;
            if let Some(found) = row {
                destroyed.push(found);
            }
        }
        transaction.commit().map_err(|e| sql_error(&self.path, e))?;
        let unusable_at = now_rfc3339();
        if destroyed.is_empty() {
            return Ok(Vec::new());
        }
        // secure_delete zeroed the freed cells; the WAL still holds the old page images until it
        // is checkpointed and truncated, and VACUUM rebuilds the file without free pages.
        connection
            .execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(|e| sql_error(&self.path, e))?;
        let removed_at = now_rfc3339();
        let note = self.destruction_note();
        let retention = self.kek.deleted_key_retention();
        Ok(destroyed
            .into_iter()
            .map(|(key_handle, kek_id)| KeyDestruction {
                key_handle,
                kek_id,
                unusable_at: Some(unusable_at.clone()),
                physically_removed_at: Some(removed_at.clone()),
                kek_deleted_key_retention: retention.clone(),
                note: note.clone(),
            })
            .collect())
    }

    /// Encrypt `column` of `batches` value by value under the key of each row's subject (read
    /// from `subject_column`). The column becomes Binary; its original type is kept in the
    /// field metadata so that [`decrypt_column`](Self::decrypt_column) restores it.
    pub fn encrypt_column(
        &self,
        batches: &[RecordBatch],
        column: &str,
        subject_column: &str,
        context: &str,
    ) -> Result<(Vec<RecordBatch>, Arc<Schema>)> {
        let schema = batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| Error::invalid_data(None, "no data"))?;
        let (index, field) = find(&schema, column)?;
        find(&schema, subject_column)?;
        let original_type = field.data_type().to_string();
        let mut metadata = field.metadata().clone();
        metadata.insert(ORIGINAL_TYPE_METADATA.into(), original_type);
        let new_field = Field::new(field.name(), DataType::Binary, true).with_metadata(metadata);
        let new_schema = replace_field(&schema, index, new_field);
        let aad_context = aad_context(column, context);
        let mut keys: HashMap<String, ([u8; HANDLE_LEN], Zeroizing<Vec<u8>>)> = HashMap::new();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let values = as_text_or_binary(batch.column(index), column)?;
            let subjects = arrow_cast::cast(
                batch
                    .column_by_name(subject_column)
                    .ok_or_else(|| Error::column_not_found(subject_column, &schema))?,
                &DataType::Utf8,
            )?;
            let subjects = subjects.as_string::<i32>();
            let mut sealed: Vec<Option<Vec<u8>>> = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let Some(value) = values(row) else {
                    sealed.push(None);
                    continue;
                };
                if subjects.is_null(row) {
                    return Err(Error::invalid_data(
                        Some(subject_column),
                        format!("row {row} has no subject, so its '{column}' value cannot be encrypted under a subject key"),
                    ));
                }
                let subject = subjects.value(row);
                if !keys.contains_key(subject) {
                    keys.insert(subject.to_owned(), self.subject_key(subject)?);
                }
                let Some((handle, dek)) = keys.get(subject) else {
                    return Err(Error::invalid_data(None, "subject key cache"));
                };
                sealed.push(Some(seal(handle, dek, &value, &aad_context)?));
            }
            let array: ArrayRef = Arc::new(BinaryArray::from_iter(sealed));
            let mut columns = batch.columns().to_vec();
            columns[index] = array;
            out.push(RecordBatch::try_new(Arc::clone(&new_schema), columns)?);
        }
        Ok((out, new_schema))
    }

    /// Decrypt a column made by [`encrypt_column`](Self::encrypt_column), restoring its type.
    /// Values of forgotten subjects give [`Error::Forgotten`] or null, per `on_forgotten`.
    pub fn decrypt_column(
        &self,
        batches: &[RecordBatch],
        column: &str,
        context: &str,
        on_forgotten: OnForgotten,
    ) -> Result<(Vec<RecordBatch>, Arc<Schema>)> {
        let schema = batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| Error::invalid_data(None, "no data"))?;
        let (index, field) = find(&schema, column)?;
        let original: DataType = field
            .metadata()
            .get(ORIGINAL_TYPE_METADATA)
            .and_then(|t| t.parse().ok())
            .unwrap_or(DataType::Utf8);
        let mut metadata = field.metadata().clone();
        metadata.remove(ORIGINAL_TYPE_METADATA);
        let new_field = Field::new(field.name(), original.clone(), true).with_metadata(metadata);
        let new_schema = replace_field(&schema, index, new_field);
        let aad_context = aad_context(column, context);
        let mut keys: HashMap<[u8; HANDLE_LEN], Option<Zeroizing<Vec<u8>>>> = HashMap::new();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let sealed = arrow_cast::cast(batch.column(index), &DataType::Binary)?;
            let sealed = sealed.as_binary::<i32>();
            let mut opened: Vec<Option<Vec<u8>>> = Vec::with_capacity(sealed.len());
            for row in 0..sealed.len() {
                if sealed.is_null(row) {
                    opened.push(None);
                    continue;
                }
                let value = sealed.value(row);
                let handle = sealed_handle(value)?;
                let mut handle_key = [0u8; HANDLE_LEN];
                handle_key.copy_from_slice(handle);
                if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(handle_key) {
                    slot.insert(match self.key_by_handle(handle) {
                        Ok(dek) => Some(dek),
                        Err(Error::Forgotten { .. }) if on_forgotten == OnForgotten::Null => None,
                        Err(other) => return Err(other),
                    });
                }
                match keys.get(&handle_key) {
                    Some(Some(dek)) => {
                        opened.push(Some(open(handle, dek, value, &aad_context)?.to_vec()))
                    }
                    _ => opened.push(None),
                }
            }
            let binary: ArrayRef = Arc::new(BinaryArray::from_iter(opened));
            let restored = restore_type(&binary, &original, column)?;
            let mut columns = batch.columns().to_vec();
            columns[index] = restored;
            out.push(RecordBatch::try_new(Arc::clone(&new_schema), columns)?);
        }
        Ok((out, new_schema))
    }
}

fn find<'a>(schema: &'a Schema, column: &str) -> Result<(usize, &'a Field)> {
    schema
        .column_with_name(column)
        .ok_or_else(|| Error::column_not_found(column, schema))
}

fn replace_field(schema: &Schema, index: usize, field: Field) -> Arc<Schema> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[index] = field;
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn aad_context(column: &str, context: &str) -> Vec<u8> {
    let mut aad = b"amlguard/subject-column/v1\0".to_vec();
    aad.extend_from_slice(column.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// Gives one row's value as bytes, or `None` for null.
type RowBytes<'a> = Box<dyn Fn(usize) -> Option<Vec<u8>> + 'a>;

/// A row accessor giving each value's bytes (text as UTF-8, other types as their text form).
fn as_text_or_binary<'a>(array: &'a ArrayRef, column: &str) -> Result<RowBytes<'a>> {
    match array.data_type() {
        DataType::Binary => {
            let values = array.as_binary::<i32>();
            Ok(Box::new(move |row| {
                (!values.is_null(row)).then(|| values.value(row).to_vec())
            }))
        }
        DataType::LargeBinary => {
            let values = array.as_binary::<i64>();
            Ok(Box::new(move |row| {
                (!values.is_null(row)).then(|| values.value(row).to_vec())
            }))
        }
        _ => {
            let text = arrow_cast::cast(array, &DataType::Utf8).map_err(|_| Error::ColumnType {
                column: column.to_owned(),
                op: "encrypt_subject_column".into(),
                data_type: array.data_type().to_string(),
                hint: "use a string, binary, numeric or temporal column".into(),
            })?;
            Ok(Box::new(move |row| {
                let text = text.as_string::<i32>();
                (!text.is_null(row)).then(|| text.value(row).as_bytes().to_vec())
            }))
        }
    }
}

fn restore_type(binary: &ArrayRef, original: &DataType, column: &str) -> Result<ArrayRef> {
    match original {
        DataType::Binary => Ok(Arc::clone(binary)),
        DataType::LargeBinary => Ok(arrow_cast::cast(binary, original)?),
        _ => {
            let as_text = arrow_cast::cast(binary, &DataType::Utf8)
                .map_err(|_| Error::invalid_data(Some(column), "decrypted value is not UTF-8"))?;
            Ok(arrow_cast::cast(&as_text, original)?)
        }
    }
}

fn decode_handle(text: &str) -> Result<[u8; HANDLE_LEN]> {
    crate::audit::checkpoint::decode_array::<HANDLE_LEN>(text)
        .ok_or_else(|| Error::invalid_data(None, "subject-key store holds a malformed key handle"))
}

fn sealed_handle(sealed: &[u8]) -> Result<&[u8]> {
    if sealed.len() < 1 + HANDLE_LEN + NONCE_LEN + TAG_LEN || sealed[0] != VALUE_FORMAT {
        return Err(Error::Decryption);
    }
    Ok(&sealed[1..1 + HANDLE_LEN])
}

fn cipher(dek: &[u8]) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, dek).map_err(|_| Error::Decryption)?;
    Ok(LessSafeKey::new(unbound))
}

fn value_aad(context: &[u8], handle: &[u8]) -> Vec<u8> {
    let mut aad = context.to_vec();
    aad.push(0);
    aad.extend_from_slice(handle);
    aad
}

fn seal(handle: &[u8; HANDLE_LEN], dek: &[u8], value: &[u8], context: &[u8]) -> Result<Vec<u8>> {
    let nonce_bytes = random::<NONCE_LEN>()?;
    let mut out = Vec::with_capacity(1 + HANDLE_LEN + NONCE_LEN + value.len() + TAG_LEN);
    out.push(VALUE_FORMAT);
    out.extend_from_slice(handle);
    out.extend_from_slice(&nonce_bytes);
    let mut in_out = value.to_vec();
    cipher(dek)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(value_aad(context, handle)),
            &mut in_out,
        )
        .map_err(|_| Error::invalid_data(None, "value too large to encrypt"))?;
    out.extend_from_slice(&in_out);
    Ok(out)
}

fn open(handle: &[u8], dek: &[u8], sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let nonce_start = 1 + HANDLE_LEN;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[nonce_start..nonce_start + NONCE_LEN]);
    let mut in_out = Zeroizing::new(sealed[nonce_start + NONCE_LEN..].to_vec());
    let plain_len = cipher(dek)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(value_aad(context, handle)),
            in_out.as_mut_slice(),
        )
        .map_err(|_| Error::Decryption)?
        .len();
    in_out.truncate(plain_len);
    Ok(in_out)
}
