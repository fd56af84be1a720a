//! Tamper-evident audit log: append-only JSON Lines, a hash chain, and signed Merkle checkpoints.
//!
//! Contract:
//! - Every record is one line ([`record::RecordBody`]): time, actor (user / managed identity /
//!   host), action, target, outcome, observer, key ids, policy fingerprint, row and byte counts,
//!   the previous record's hash and its own hash. Records carry names, ids and counts only:
//!   never data values or key material. Data subjects appear only as keyed pseudonyms
//!   ([`AuditLog::subject_pseudonym`], HMAC-SHA256 under a keyring-derived key), so the log
//!   does not undo an erasure, yet whoever holds the key can show that subject X was forgotten.
//! - Every `checkpoint_every` records the log appends a checkpoint: an RFC 9162 Merkle tree
//!   head over all records before it, signed with Ed25519 or, by choice
//!   ([`AuditOptions::checkpoint_signature`]), HMAC-SHA256 ([`checkpoint`]), and also appends it to the
//!   *witness* ([`Witness`]: a local file or an Azure append blob), a second place the user
//!   chooses. A truncated log is then shorter than the witness says; a rewritten log no longer
//!   matches a signed root.
//! - The signing key belongs to the log: the keyring and key name given when it is opened
//!   ([`AuditOptions`]). Each append checks that this key is present and is the one that
//!   signed the log's last checkpoint, before writing anything, so a log whose key is missing
//!   fails at once with [`Error::KeyNotFound`] rather than at its next checkpoint.
//! - [`AuditLog::prove`] returns an [`InclusionProof`] for one record that [`verify_proof`]
//!   checks with the public key alone, without the rest of the log (an HMAC-signed one:
//!   [`verify_proof_with_keyring`], with the keyring holding the key).
//! - [`verify()`] re-reads the log and witness and locates the first bad record.
//! - Appends hold an exclusive advisory lock on the log file (flock / LockFileEx through
//!   `fs4`) and write each record with one `write` on an `O_APPEND` descriptor followed by
//!   `fsync`, so threads and processes never interleave or lose records. Each append first
//!   reads the records other writers added since, which keeps the chain and leaf list exact.
//!
//! - A log named by an `az://` / `abfss://` URL ([`AuditLog::open_location`]) lives in an Azure
//!   *append blob* shared by any number of machines. Each record is one Append Block made on the
//!   condition that the blob still ends where this writer last read it
//!   (`x-ms-blob-condition-appendpos`); when another writer got there first, nothing is
//!   written, this writer reads their records and tries again with the chain extended. So
//!   records never interleave nor get lost, without any lock.
//!
//! ```
//! use amlguard::audit::{AuditEvent, AuditLog, AuditOptions};
//! use amlguard::keys::LocalKeyring;
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
//! let options = AuditOptions { keyring: Some(keyring), checkpoint_every: 2, ..Default::default() };
//! let log = AuditLog::open(dir.path().join("audit.jsonl"), options).unwrap();
//! let seq = log.append(AuditEvent::new("mask")).unwrap();
//! let proof = log.prove(seq).unwrap();
//! assert!(amlguard::audit::verify_proof(&proof, Some(&log.public_key().unwrap())));
//! assert!(log.verify(None).unwrap().ok);
//! ```

pub mod checkpoint;
pub mod merkle;
pub mod record;
mod verify;
mod witness;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use fs4::fs_std::FileExt as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use self::checkpoint::{Checkpoint, CheckpointSigner, SignatureAlgorithm};
use self::merkle::{inclusion_path, leaf_hash, root_hash, Hash};
pub use self::record::{Actor, Observer, Outcome, RecordBody, RecordKind, Target};
pub use self::verify::{
    verify, verify_proof, verify_proof_with_keyring, verify_reader, verify_reader_with_keyring,
    VerifyReport,
};
pub use self::witness::Witness;
use crate::error::{Error, Result};
use crate::io::append_blob::AppendBlob;
use crate::io::blob::{is_blob_url, StorageOptions};
use crate::keys::LocalKeyring;

/// Attempts at one append to a shared blob log before giving up (each lost race means another
/// writer's record landed, so this bounds contention, not progress).
const BLOB_APPEND_ATTEMPTS: usize = 64;

/// HKDF purpose label of the key that pseudonymises subject identifiers in records.
const SUBJECT_PURPOSE: &str = "audit-subject";

/// Environment variable naming the audit log used when a call does not pass one.
pub const AUDIT_LOG_ENV: &str = "AMLGUARD_AUDIT_LOG";

/// How an [`AuditLog`] signs and where it mirrors its checkpoints.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// Keyring holding the signing key (needed to append checkpoints and pseudonymise subjects;
    /// not needed to verify).
    pub keyring: Option<LocalKeyring>,
    /// Keyring key name the checkpoint signing key and the subject pseudonym key derive from.
    pub signing_key: String,
    /// Second place every checkpoint is also appended to (truncation evidence): a local path,
    /// or an `az://` / `abfss://` URL of an append blob (reached with the log's storage
    /// options; see [`AuditLog::open_location`]).
    pub witness: Option<PathBuf>,
    /// Records between checkpoints (at least 1).
    pub checkpoint_every: u64,
    /// How a new log's checkpoints are signed. A log that holds checkpoints keeps the
    /// algorithm of its last one, as it keeps that checkpoint's key version.
    pub checkpoint_signature: SignatureAlgorithm,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            keyring: None,
            signing_key: "audit".into(),
            witness: None,
            checkpoint_every: 100,
            checkpoint_signature: SignatureAlgorithm::Ed25519,
        }
    }
}

/// What one operation reports to the log. Build with [`AuditEvent::new`] and set what applies.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// Operation (`mask`, `forget`, `encrypt`, ...).
    pub action: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Dataset and files, by name.
    pub target: Target,
    /// Key ids used or destroyed.
    pub key_ids: Vec<String>,
    /// Policy fingerprint.
    pub policy_fingerprint: Option<String>,
    /// Rows processed or removed.
    pub rows: Option<u64>,
    /// Bytes read or rewritten.
    pub bytes: Option<u64>,
    /// Subject pseudonyms (from [`AuditLog::subject_pseudonym`]).
    pub subjects: Vec<String>,
    /// Operation-specific counts and names.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Error message on failure.
    pub error: Option<String>,
}

impl AuditEvent {
    /// A successful event of `action` with nothing else set.
    pub fn new(action: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            outcome: Outcome::Success,
            target: Target::default(),
            key_ids: Vec::new(),
            policy_fingerprint: None,
            rows: None,
            bytes: None,
            subjects: Vec::new(),
            details: Default::default(),
            error: None,
        }
    }
}

/// An inclusion proof: one record, its position, the audit path and the signed tree head it
/// leads to. Checkable with [`verify_proof`] and the log's public key alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The record's line, exactly as stored.
    pub record: String,
    /// Its index (= its `seq`).
    pub leaf_index: u64,
    /// Size of the tree the checkpoint covers.
    pub tree_size: u64,
    /// Sibling hashes from the leaf up, hex (RFC 9162 §2.1.3).
    pub audit_path: Vec<String>,
    /// The signed tree head.
    pub checkpoint: Checkpoint,
}

/// What this process knows of the log, brought up to date under the lock before each append.
#[derive(Default)]
struct LogState {
    /// Bytes of complete records read so far.
    offset: u64,
    /// Leaf hash of each record.
    leaves: Vec<Hash>,
    /// Byte offset of each record's line.
    line_offsets: Vec<u64>,
    /// `record_hash` of the last record, hex.
    last_hash: String,
    /// Records since the last checkpoint record.
    since_checkpoint: u64,
    /// The last checkpoint in the log.
    last_checkpoint: Option<Checkpoint>,
    /// Bytes of an incomplete record (a writer died mid-write) cut off and not yet reported.
    recovered_incomplete_bytes: u64,
}

/// An append-only, tamper-evident audit log in a local file or an Azure append blob.
pub struct AuditLog {
    path: PathBuf,
    blob: Option<AppendBlob>,
    witness: Option<Witness>,
    options: AuditOptions,
    state: Mutex<LogState>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("witness", &self.witness())
            .finish_non_exhaustive()
    }
}

/// Current time as RFC 3339 UTC with microseconds.
pub(crate) fn now_rfc3339() -> String {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl AuditLog {
    /// Open (the file is created on the first append) the log at `path`. A witness URL is
    /// reached with the `AZURE_STORAGE_*` environment.
    pub fn open(path: impl Into<PathBuf>, options: AuditOptions) -> Result<Self> {
        Self::open_with(path.into(), None, &StorageOptions::default(), options)
    }

    fn open_with(
        path: PathBuf,
        blob: Option<AppendBlob>,
        storage: &StorageOptions,
        options: AuditOptions,
    ) -> Result<Self> {
        if options.checkpoint_every == 0 {
            return Err(Error::InvalidArgument {
                name: "checkpoint_every",
                message: "must be at least 1".into(),
            });
        }
        let witness = match &options.witness {
            Some(location) => Some(Witness::open(&location.to_string_lossy(), storage)?),
            None => None,
        };
        Ok(Self {
            path,
            blob,
            witness,
            options,
            state: Mutex::new(LogState {
                last_hash: record::GENESIS_HASH.into(),
                ..Default::default()
            }),
        })
    }

    /// Open the log at `location`: a local path, or an `az://` / `abfss://` URL of an append
    /// blob (created on the first append) reached with `storage`. A witness URL is reached with
    /// the same `storage`.
    pub fn open_location(
        location: &str,
        storage: &StorageOptions,
        options: AuditOptions,
    ) -> Result<Self> {
        let blob = if is_blob_url(location) {
            Some(AppendBlob::open(location, storage)?)
        } else {
            None
        };
        Self::open_with(PathBuf::from(location), blob, storage, options)
    }

    /// Whether the log lives in an Azure append blob.
    pub fn is_blob(&self) -> bool {
        self.blob.is_some()
    }

    /// The whole log as stored.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        match &self.blob {
            Some(blob) => blob.read_from(0),
            None => std::fs::read(&self.path)
                .map_err(|e| Error::io("reading the audit log", &self.path, e)),
        }
    }

    /// Open the log named by `$AMLGUARD_AUDIT_LOG`, if set (a blob URL is reached with the
    /// `AZURE_STORAGE_*` environment).
    pub fn from_env(options: AuditOptions) -> Result<Option<Self>> {
        match std::env::var(AUDIT_LOG_ENV).ok().filter(|v| !v.is_empty()) {
            Some(location) => Ok(Some(Self::open_location(
                &location,
                &StorageOptions::default(),
                options,
            )?)),
            None => Ok(None),
        }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The witness (its path or URL), if any.
    pub fn witness(&self) -> Option<&Path> {
        self.witness.as_ref().map(Witness::location)
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::AuditLog {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn keyring(&self) -> Result<&LocalKeyring> {
        self.options.keyring.as_ref().ok_or_else(|| {
            self.error("no keyring was given, so checkpoints cannot be signed nor subjects pseudonymised; open the log with the keyring holding its signing key")
        })
    }

    /// The signer, checked against the key that signed the log's last checkpoint.
    fn signer(&self, state: &LogState) -> Result<CheckpointSigner> {
        let keyring = self.keyring()?;
        let key = match &state.last_checkpoint {
            // The log names the exact key version that signed it: that key must still exist.
            Some(last) => keyring.key_by_reference(&last.signing_key)?,
            None => {
                keyring.ensure_key(&self.options.signing_key)?;
                keyring.key(&self.options.signing_key)?
            }
        };
        let algorithm = state
            .last_checkpoint
            .as_ref()
            .map_or(self.options.checkpoint_signature, |last| last.algorithm);
        let signer = CheckpointSigner::with_algorithm(&key, algorithm)?;
        if let Some(last) = &state.last_checkpoint {
            if !last
                .public_key
                .eq_ignore_ascii_case(&signer.public_key_hex())
            {
                return Err(self.error(format!(
                    "the keyring's key '{}' is not the key that signed this log's checkpoints (public key {}); open the log with the keyring that signed it",
                    last.signing_key, last.public_key
                )));
            }
        }
        Ok(signer)
    }

    /// What identifies this log's checkpoint key, hex: the Ed25519 public key (give it to
    /// verifiers), or for an HMAC-signed log the key's fingerprint.
    pub fn public_key(&self) -> Result<String> {
        let state = self.current()?;
        Ok(self.signer(&state)?.public_key_hex())
    }

    /// This process's state, brought up to date (for a local log, under the file lock, which
    /// is released on return).
    fn current(&self) -> Result<std::sync::MutexGuard<'_, LogState>> {
        match &self.blob {
            Some(blob) => {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                self.blob_catch_up(blob, &mut state)?;
                Ok(state)
            }
            None => {
                let (file, mut state) = self.locked()?;
                self.catch_up(&file, &mut state)?;
                Ok(state)
            }
        }
    }

    /// The keyed pseudonym recorded for a data subject: HMAC-SHA256 of the identifier under a
    /// key derived from the signing key (purpose `audit-subject`), hex.
    pub fn subject_pseudonym(&self, subject: &str) -> Result<String> {
        let keyring = self.keyring()?;
        keyring.ensure_key(&self.options.signing_key)?;
        let key = keyring.key(&self.options.signing_key)?;
        let mac_key = key.derive::<32>(SUBJECT_PURPOSE);
        let mut mac = Hmac::<Sha256>::new_from_slice(mac_key.as_slice())
            .map_err(|_| self.error("HMAC key has an invalid length"))?;
        mac.update(subject.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// The key id (`name@version`) subject pseudonyms are made with.
    pub fn subject_key_id(&self) -> Result<String> {
        let keyring = self.keyring()?;
        Ok(keyring.ensure_key(&self.options.signing_key)?.to_string())
    }

    fn open_file(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Error::io("opening the audit log", &self.path, e))
    }

    /// The log file under an exclusive lock, and this process's state under its mutex. The
    /// lock is released when the file is dropped.
    fn locked(&self) -> Result<(File, std::sync::MutexGuard<'_, LogState>)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let file = self.open_file()?;
        file.lock_exclusive()
            .map_err(|e| Error::io("locking the audit log", &self.path, e))?;
        Ok((file, state))
    }

    /// Read the records appended (by anyone) since this process last looked.
    fn catch_up(&self, file: &File, state: &mut LogState) -> Result<()> {
        let length = file
            .metadata()
            .map_err(|e| Error::io("reading the audit log", &self.path, e))?
            .len();
        if length < state.offset {
            return Err(self.error(format!(
                "the log is shorter ({length} bytes) than when this process last read it ({} bytes): it was truncated; run `amlguard audit verify`",
                state.offset
            )));
        }
        let mut reader = BufReader::new(file);
        reader
            .seek(SeekFrom::Start(state.offset))
            .map_err(|e| Error::io("reading the audit log", &self.path, e))?;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io("reading the audit log", &self.path, e))?;
            if read == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                // A writer died mid-write (each record is one write, so only a crash leaves
                // this). Cut it off so the log stays parseable, and say so in the next record.
                file.set_len(state.offset)
                    .map_err(|e| Error::io("repairing the audit log", &self.path, e))?;
                state.recovered_incomplete_bytes += read as u64;
                break;
            }
            self.ingest_line(state, &line)?;
        }
        Ok(())
    }

    /// Take one complete line (newline included) another writer appended into the state.
    fn ingest_line(&self, state: &mut LogState, line: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(&line[..line.len() - 1])
            .map_err(|_| self.error(format!("record {} is not UTF-8", state.leaves.len())))?;
        let seq = state.leaves.len() as u64;
        let (body, hash) = RecordBody::decode(text).map_err(|problem| {
            self.error(format!(
                "record {seq} is damaged ({problem}); run `amlguard audit verify`"
            ))
        })?;
        if body.seq != seq || body.prev_hash != state.last_hash {
            return Err(self.error(format!(
                "record {seq} does not continue the chain; run `amlguard audit verify`"
            )));
        }
        state.line_offsets.push(state.offset);
        state.leaves.push(leaf_hash(text.as_bytes()));
        state.last_hash = hex::encode(hash);
        state.offset += line.len() as u64;
        match body.kind {
            RecordKind::Checkpoint => {
                let value = serde_json::Value::Object(body.details);
                state.last_checkpoint = Some(checkpoint::parse_checkpoint(&value)?);
                state.since_checkpoint = 0;
            }
            RecordKind::Event => state.since_checkpoint += 1,
        }
        Ok(())
    }

    /// Read the records appended to the blob (by anyone) since this process last looked.
    /// Append Block is atomic, so a line without its newline means the blob was damaged.
    fn blob_catch_up(&self, blob: &AppendBlob, state: &mut LogState) -> Result<()> {
        let data = blob.read_from(state.offset)?;
        let mut rest = data.as_slice();
        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                return Err(self.error(format!(
                    "record {} is incomplete (no newline); run `amlguard audit verify`",
                    state.leaves.len()
                )));
            };
            let (line, tail) = rest.split_at(end + 1);
            self.ingest_line(state, line)?;
            rest = tail;
        }
        Ok(())
    }

    /// The line (newline included) and hash of the next record, chained onto `state`.
    fn encode_record(
        &self,
        state: &LogState,
        kind: RecordKind,
        event: AuditEvent,
    ) -> Result<(Vec<u8>, Hash)> {
        let seq = state.leaves.len() as u64;
        let mut details = event.details;
        if state.recovered_incomplete_bytes > 0 {
            details.insert(
                "recovered_incomplete_bytes".into(),
                state.recovered_incomplete_bytes.into(),
            );
        }
        let body = RecordBody {
            v: record::RECORD_VERSION,
            seq,
            time: now_rfc3339(),
            kind,
            action: event.action,
            outcome: event.outcome,
            actor: Actor::current(),
            observer: Observer::default(),
            target: event.target,
            key_ids: event.key_ids,
            policy_fingerprint: event.policy_fingerprint,
            rows: event.rows,
            bytes: event.bytes,
            subjects: event.subjects,
            details,
            error: event.error,
            prev_hash: state.last_hash.clone(),
        };
        let (line, hash) = body.encode()?;
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        Ok((bytes, hash))
    }

    fn write_record(
        &self,
        mut file: &File,
        state: &mut LogState,
        kind: RecordKind,
        event: AuditEvent,
    ) -> Result<u64> {
        let (bytes, hash) = self.encode_record(state, kind, event)?;
        // One write on an O_APPEND descriptor under the lock: the record lands whole at the end.
        file.write_all(&bytes)
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io("appending to the audit log", &self.path, e))?;
        Ok(self.record_written(state, &bytes, hash))
    }

    /// Account for a record now stored at the end of the log; returns its seq.
    fn record_written(&self, state: &mut LogState, bytes: &[u8], hash: Hash) -> u64 {
        let seq = state.leaves.len() as u64;
        state.line_offsets.push(state.offset);
        state.leaves.push(leaf_hash(&bytes[..bytes.len() - 1]));
        state.last_hash = hex::encode(hash);
        state.offset += bytes.len() as u64;
        state.recovered_incomplete_bytes = 0;
        seq
    }

    /// Append one record to the blob if nobody appended since `state` was brought up to date;
    /// `None` when someone did (nothing was written).
    fn blob_write(
        &self,
        blob: &AppendBlob,
        state: &mut LogState,
        kind: RecordKind,
        event: AuditEvent,
    ) -> Result<Option<u64>> {
        let (bytes, hash) = self.encode_record(state, kind, event)?;
        if blob.append_at(state.offset, &bytes)? {
            return Ok(Some(self.record_written(state, &bytes, hash)));
        }
        Ok(None)
    }

    fn contention_error(&self) -> Error {
        self.error(format!(
            "lost the race to append {BLOB_APPEND_ATTEMPTS} times in a row to a busy shared log; try again"
        ))
    }

    fn blob_append(&self, blob: &AppendBlob, event: AuditEvent) -> Result<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 0..BLOB_APPEND_ATTEMPTS {
            self.blob_catch_up(blob, &mut state)?;
            // The log's own key must be there (and be the one that signed it) before anything
            // is written, so that no record lands that could never be checkpointed.
            let signer = self.signer(&state)?;
            let written = self.blob_write(blob, &mut state, RecordKind::Event, event.clone())?;
            if let Some(seq) = written {
                state.since_checkpoint += 1;
                if state.since_checkpoint >= self.options.checkpoint_every {
                    self.blob_checkpoint(blob, &mut state, &signer)?;
                }
                return Ok(seq);
            }
            backoff(attempt);
        }
        Err(self.contention_error())
    }

    /// Append a checkpoint over everything in the blob, unless the last record already is one.
    fn blob_checkpoint(
        &self,
        blob: &AppendBlob,
        state: &mut LogState,
        signer: &CheckpointSigner,
    ) -> Result<Checkpoint> {
        for attempt in 0..BLOB_APPEND_ATTEMPTS {
            self.blob_catch_up(blob, state)?;
            if let Some(last) = &state.last_checkpoint {
                if state.since_checkpoint == 0 {
                    return Ok(last.clone());
                }
            }
            let (checkpoint, event) = self.checkpoint_event(state, signer)?;
            if self
                .blob_write(blob, state, RecordKind::Checkpoint, event)?
                .is_some()
            {
                self.checkpoint_written(state, &checkpoint)?;
                return Ok(checkpoint);
            }
            backoff(attempt);
        }
        Err(self.contention_error())
    }

    /// A checkpoint over every record in `state`, and the record that carries it.
    fn checkpoint_event(
        &self,
        state: &LogState,
        signer: &CheckpointSigner,
    ) -> Result<(Checkpoint, AuditEvent)> {
        let tree_size = state.leaves.len() as u64;
        let checkpoint = signer.sign(tree_size, &root_hash(&state.leaves), &now_rfc3339())?;
        let details = match serde_json::to_value(&checkpoint) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(self.error("cannot encode a checkpoint")),
        };
        let mut event = AuditEvent::new("checkpoint");
        event.key_ids = vec![signer.key_id().to_owned()];
        event.details = details;
        Ok((checkpoint, event))
    }

    fn write_checkpoint(
        &self,
        file: &File,
        state: &mut LogState,
        signer: &CheckpointSigner,
    ) -> Result<Checkpoint> {
        let (checkpoint, event) = self.checkpoint_event(state, signer)?;
        self.write_record(file, state, RecordKind::Checkpoint, event)?;
        self.checkpoint_written(state, &checkpoint)?;
        Ok(checkpoint)
    }

    /// Account for a checkpoint now in the log, and mirror it to the witness.
    fn checkpoint_written(&self, state: &mut LogState, checkpoint: &Checkpoint) -> Result<()> {
        state.last_checkpoint = Some(checkpoint.clone());
        state.since_checkpoint = 0;
        if let Some(witness) = &self.witness {
            let mut line = serde_json::to_string(checkpoint)
                .map_err(|_| self.error("cannot encode a checkpoint"))?;
            line.push('\n');
            witness.append_line(line.as_bytes())?;
        }
        Ok(())
    }

    /// Append one record; returns its id (`seq`). A checkpoint follows every
    /// `checkpoint_every` records.
    pub fn append(&self, event: AuditEvent) -> Result<u64> {
        if let Some(blob) = &self.blob {
            return self.blob_append(blob, event);
        }
        let (file, mut state) = self.locked()?;
        self.catch_up(&file, &mut state)?;
        // Load the log's own signer before writing, so that a missing or different signing key
        // fails the call without leaving a record behind that could never be checkpointed.
        let signer = self.signer(&state)?;
        let seq = self.write_record(&file, &mut state, RecordKind::Event, event)?;
        state.since_checkpoint += 1;
        if state.since_checkpoint >= self.options.checkpoint_every {
            self.write_checkpoint(&file, &mut state, &signer)?;
        }
        Ok(seq)
    }

    /// Append a checkpoint now unless the last record already is one; returns the latest
    /// checkpoint. Call it after an important record so that it is covered at once.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        if let Some(blob) = &self.blob {
            let mut state = self.current()?;
            let signer = self.signer(&state)?;
            return self.blob_checkpoint(blob, &mut state, &signer);
        }
        let (file, mut state) = self.locked()?;
        self.catch_up(&file, &mut state)?;
        match &state.last_checkpoint {
            Some(last) if state.since_checkpoint == 0 => Ok(last.clone()),
            _ => {
                let signer = self.signer(&state)?;
                self.write_checkpoint(&file, &mut state, &signer)
            }
        }
    }

    /// Number of records in the log (checkpoints included).
    pub fn len(&self) -> Result<u64> {
        Ok(self.current()?.leaves.len() as u64)
    }

    /// Whether the log has no records.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// An inclusion proof for record `record_id` against the latest checkpoint, writing a
    /// checkpoint first when none covers the record yet.
    pub fn prove(&self, record_id: u64) -> Result<InclusionProof> {
        if let Some(blob) = &self.blob {
            let mut state = self.current()?;
            return self.prove_in(
                &mut state,
                record_id,
                |state| {
                    let signer = self.signer(state)?;
                    self.blob_checkpoint(blob, state, &signer)
                },
                |start, end| blob.read_range(start, Some(end)),
            );
        }
        let (file, mut state) = self.locked()?;
        self.catch_up(&file, &mut state)?;
        let reader = file
            .try_clone()
            .map_err(|e| Error::io("reading the audit log", &self.path, e))?;
        self.prove_in(
            &mut state,
            record_id,
            |state| {
                let signer = self.signer(state)?;
                self.write_checkpoint(&file, state, &signer)
            },
            |start, end| {
                let mut line = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
                (&reader)
                    .seek(SeekFrom::Start(start))
                    .and_then(|_| (&reader).read_exact(&mut line))
                    .map_err(|e| Error::io("reading the audit log", &self.path, e))?;
                Ok(line)
            },
        )
    }

    /// [`AuditLog::prove`] once the state is current: `checkpoint` appends one when none
    /// covers the record yet, `read` fetches the bytes of a byte range of the log.
    fn prove_in(
        &self,
        state: &mut LogState,
        record_id: u64,
        checkpoint: impl FnOnce(&mut LogState) -> Result<Checkpoint>,
        read: impl FnOnce(u64, u64) -> Result<Vec<u8>>,
    ) -> Result<InclusionProof> {
        let count = state.leaves.len() as u64;
        if record_id >= count {
            return Err(Error::InvalidArgument {
                name: "record_id",
                message: format!("the log has records 0..{count}; {record_id} is not one"),
            });
        }
        let checkpoint = match &state.last_checkpoint {
            Some(last) if last.tree_size > record_id => last.clone(),
            _ => checkpoint(state)?,
        };
        let tree_size = checkpoint.tree_size;
        let covered = usize::try_from(tree_size)
            .ok()
            .and_then(|n| state.leaves.get(..n))
            .ok_or_else(|| self.error("checkpoint covers more records than the log holds"))?;
        let index = usize::try_from(record_id).map_err(|_| self.error("record id too large"))?;
        let audit_path = inclusion_path(index, covered)
            .ok_or_else(|| self.error("record is not covered by the checkpoint"))?
            .iter()
            .map(hex::encode)
            .collect();
        let start = state.line_offsets[index];
        let end = state
            .line_offsets
            .get(index + 1)
            .copied()
            .unwrap_or(state.offset);
        let mut line = read(start, end)?;
        line.pop(); // newline
        let record = String::from_utf8(line).map_err(|_| self.error("record is not UTF-8"))?;
        Ok(InclusionProof {
            record,
            leaf_index: record_id,
            tree_size,
            audit_path,
            checkpoint,
        })
    }

    /// Verify the whole log (and its witness); see [`verify()`]. Pins the signer to
    /// `trusted_public_key`, else to this log's signing key (the exact version its first
    /// checkpoint names) when the keyring holds it; HMAC checkpoints are checked with that
    /// keyring ([`Error::KeyNotFound`] when it lacks the key). Reads only: never repairs nor
    /// appends.
    pub fn verify(&self, trusted_public_key: Option<&str>) -> Result<VerifyReport> {
        let data = self.read_all()?;
        let pinned = match trusted_public_key {
            Some(key) => Some(key.to_owned()),
            None => self.pinned_key_from_keyring(&data),
        };
        verify_reader_with_keyring(
            &self.path,
            data.as_slice(),
            self.witness.as_ref(),
            pinned.as_deref(),
            self.options.keyring.as_ref(),
        )
    }

    /// The public key of this log's signing key as held by the keyring: the version named by
    /// the log's first checkpoint, else the latest (no checkpoint yet). `None` when the keyring
    /// does not hold it (verification then checks that one key signed every checkpoint).
    fn pinned_key_from_keyring(&self, data: &[u8]) -> Option<String> {
        let keyring = self.options.keyring.as_ref()?;
        let first_checkpoint = data
            .split(|b| *b == b'\n')
            .filter_map(|line| std::str::from_utf8(line).ok())
            .filter_map(|line| RecordBody::decode(line).ok())
            .find(|(body, _)| body.kind == RecordKind::Checkpoint)
            .and_then(|(body, _)| {
                checkpoint::parse_checkpoint(&serde_json::Value::Object(body.details)).ok()
            });
        let (key, algorithm) = match first_checkpoint {
            Some(first) => (
                keyring.key_by_reference(&first.signing_key).ok()?,
                first.algorithm,
            ),
            None => (
                keyring.key(&self.options.signing_key).ok()?,
                self.options.checkpoint_signature,
            ),
        };
        CheckpointSigner::with_algorithm(&key, algorithm)
            .ok()
            .map(|signer| signer.public_key_hex())
    }
}

/// A short, growing pause after losing an append race, so that contending writers spread out.
fn backoff(attempt: usize) {
    let micros = 200u64 << attempt.min(8);
    std::thread::sleep(std::time::Duration::from_micros(
        micros + u64::from(std::process::id() % 97),
    ));
}

#[cfg(test)]
mod tests;
