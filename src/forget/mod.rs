//! Right to be forgotten: remove data subjects' rows from Parquet datasets, destroy their keys,
//! and leave a receipt in the audit log.
//!
//! Contract of [`forget`]:
//! - A [`Dataset`] is a local Parquet file, a folder, or a hive-partitioned tree (hidden `.x`
//!   and `_x` entries such as `_SUCCESS` or `_delta_log` are skipped). Rows are found by the
//!   identifier itself or, in pseudonymised datasets, by the recomputed pseudonym ([`IdForm`]).
//! - Everything is checked before anything is written: the path exists, every file has the id
//!   column, its type is the same kind (text or integer) in every file, keys exist. A subject
//!   found nowhere is not an error: the receipt is simply empty. A folder without any visible
//!   file (a tree forget emptied) is an empty dataset; one holding only non-Parquet files is
//!   refused.
//! - Each affected file is rewritten without the subjects' rows and swapped in with one rename;
//!   files without a match are not opened for writing (byte-identical, same mtime). Row groups
//!   are skipped on statistics and bloom filters while scanning, and row groups without a match
//!   are copied byte for byte when their file is rewritten.
//! - A journal ([`journal`]) makes an interrupted run resumable: re-running the same call after a
//!   crash completes it, and its receipt includes the files the first attempt finished.
//! - In a tree hive-partitioned by the id column itself (`patient_id=subject-123/part-0.parquet`),
//!   files without the column (as pyarrow and Spark write them) take the identifier from the
//!   percent-decoded directory name ([`partition`]); files that keep it (polars) are matched on
//!   it, and go whole when all their rows match. A subject's files are removed
//!   whole (one unlink each, journalled like a rewrite), then the emptied directory, whose name is
//!   the identifier. The audit record names such paths with the value pseudonymised.
//! - A file changed by another writer between scan and swap is refused
//!   ([`Error::ConcurrentModification`]); nothing of theirs is overwritten.
//! - With a [`SubjectKeyStore`], the subjects' keys are destroyed (crypto-shredding): every
//!   value encrypted under them, in any copy anywhere, becomes unreadable.
//! - `dry_run` scans and reports what would change, and writes nothing but the audit record.
//! - A dataset whose path is an `az://` / `abfss://` prefix is forgotten blob by blob
//!   ([`ForgetOptions::storage`] says how to reach it): each affected blob is replaced by one
//!   put conditioned on the ETag it was scanned at (a subject's partition blob deleted by one
//!   Delete Blob conditioned the same way), so a blob changed meanwhile is refused. Its journal
//!   is a blob beside the dataset (`_amlguard_forget.journal` under the prefix), each update
//!   one conditional put, so an interrupted run resumes with a complete receipt there too.
//!
//! ```no_run
//! use amlguard::forget::{forget, Dataset, ForgetOptions, IdForm};
//! use amlguard::keys::LocalKeyring;
//! use amlguard::parallel::RunControl;
//! let keyring = LocalKeyring::open_default().unwrap();
//! let datasets = [Dataset { path: "data/patients".into(), id_column: "patient_id".into(), id_form: IdForm::Raw }];
//! let receipt = forget(&["patient-123".into()], &datasets, &keyring, &ForgetOptions::default(), &RunControl::new()).unwrap();
//! println!("{} rows removed from {} files", receipt.rows_removed, receipt.files.len());
//! ```

mod blob_dataset;
mod blob_journal;
pub mod journal;
pub mod matcher;
pub mod parquet;
pub mod partition;
pub mod shred;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

pub use self::matcher::{IdForm, Needles};
use self::parquet::{remove_whole_file, rewrite_file, scan_file, scan_partition_file, FileScan};
use self::partition::{
    id_partition, remove_partition_directory, would_remove_partition_directory, IdPartition,
};
pub use self::shred::{KeyDestruction, OnForgotten, SubjectKeyStore};
use crate::audit::{now_rfc3339, AuditEvent, AuditLog, Outcome};
use crate::error::{Error, Result};
use crate::io::blob::{is_blob_url, StorageOptions};
use crate::keys::KeyProvider;
use crate::parallel::RunControl;

/// One dataset to forget subjects in.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// A Parquet file, or a directory (searched recursively).
    pub path: PathBuf,
    /// The column holding the subject identifier (or its pseudonym).
    pub id_column: String,
    /// Raw identifiers or pseudonyms.
    pub id_form: IdForm,
}

/// Knobs for [`forget`].
#[derive(Default)]
pub struct ForgetOptions<'a> {
    /// Report only; write nothing (but the audit record).
    pub dry_run: bool,
    /// Worker threads (`None`: one per CPU).
    pub threads: Option<usize>,
    /// Where the receipt goes.
    pub audit: Option<&'a AuditLog>,
    /// Per-subject keys to destroy.
    pub subject_keys: Option<&'a SubjectKeyStore>,
    /// How to reach datasets on Azure Blob Storage (default: the `AZURE_STORAGE_*`
    /// environment).
    pub storage: Option<&'a StorageOptions>,
}

fn is_blob_dataset(dataset: &Dataset) -> bool {
    is_blob_url(&dataset.path.to_string_lossy())
}

/// One file rewritten (or, in a dry run, that would be).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// Rows before.
    pub rows_before: u64,
    /// Rows removed.
    pub rows_removed: u64,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after (0 in a dry run, and for a removed file).
    pub bytes_after: u64,
    /// The file was removed whole (it lay in a subject's partition of the id column).
    pub removed: bool,
}

/// What [`forget`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetReceipt {
    /// Run id.
    pub run_id: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether an interrupted earlier run was completed.
    pub resumed: bool,
    /// Number of subjects requested.
    pub subjects: u64,
    /// Keyed pseudonyms of the subjects (when an audit log gives the key).
    pub subject_pseudonyms: Vec<String>,
    /// Dataset paths.
    pub datasets: Vec<String>,
    /// Parquet files looked at.
    pub files_scanned: u64,
    /// Row groups read while scanning.
    pub row_groups_scanned: u64,
    /// Row groups skipped on statistics or bloom filters.
    pub row_groups_skipped: u64,
    /// Files rewritten (or that would be).
    pub files: Vec<FileChange>,
    /// Rows removed in total.
    pub rows_removed: u64,
    /// Bytes written (new file sizes).
    pub bytes_rewritten: u64,
    /// Bytes in all files of the datasets before the run.
    pub bytes_total: u64,
    /// Subjects' partition directories of the id column removed (or, in a dry run, that
    /// would be).
    pub directories_removed: Vec<PathBuf>,
    /// Subject keys destroyed.
    pub keys_destroyed: Vec<KeyDestruction>,
    /// Id of the receipt's record in the audit log.
    pub audit_record_id: Option<u64>,
    /// Started (RFC 3339).
    pub started_at: String,
    /// Wall time.
    pub elapsed_seconds: f64,
}

/// What [`verify_forgotten`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetVerification {
    /// No row of any subject remains.
    pub ok: bool,
    /// Files looked at.
    pub files_scanned: u64,
    /// Rows still holding a subject.
    pub rows_found: u64,
    /// Files still holding subject rows, with counts.
    pub files_with_rows: Vec<(PathBuf, u64)>,
}

fn is_parquet(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| matches!(e.as_str(), "parquet" | "pq" | "parq"))
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']))
}

/// The Parquet files of a dataset, sorted. A folder holding no visible file at all (only empty
/// folders or hidden files, as a tree is left once forget has removed its every partition) is
/// an empty dataset; one holding only other files (CSV, say) is refused, since forgetting
/// nothing there would look like success.
pub fn dataset_files(root: &Path) -> Result<Vec<PathBuf>> {
    let metadata = std::fs::metadata(root).map_err(|e| Error::io("opening dataset", root, e))?;
    if metadata.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut other_file = None;
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries =
            std::fs::read_dir(&directory).map_err(|e| Error::io("listing", &directory, e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::io("listing", &directory, e))?
                .path();
            if hidden(&path) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if is_parquet(&path) {
                files.push(path);
            } else {
                other_file.get_or_insert(path);
            }
        }
    }
    files.sort();
    if let (true, Some(other)) = (files.is_empty(), other_file) {
        return Err(Error::invalid_data(
            None,
            format!(
                "dataset '{}' holds no Parquet files, only other files such as '{}'",
                root.display(),
                other.display()
            ),
        ));
    }
    Ok(files)
}

/// Check every file has the id column with a matchable type of one kind, or lies in a hive
/// partition of it; returns that partition for the files without the column.
fn check_schemas(dataset: &Dataset, files: &[PathBuf]) -> Result<Vec<Option<IdPartition>>> {
    let mut missing = Vec::new();
    let mut kinds: Vec<(bool, &Path)> = Vec::new();
    let mut partitions = Vec::with_capacity(files.len());
    for file in files {
        let data_type = parquet::id_column_type(file, &dataset.id_column)?;
        let partition = data_type
            .is_none()
            .then(|| id_partition(&dataset.path, file, &dataset.id_column))
            .flatten();
        let from_partition = partition.is_some();
        partitions.push(partition);
        match data_type {
            None if from_partition => {}
            None => missing.push(file.display().to_string()),
            Some(data_type) => {
                if !Needles::supports(&data_type) {
                    return Err(Error::ColumnType {
                        column: dataset.id_column.clone(),
                        op: "forget".into(),
                        data_type: data_type.to_string(),
                        hint: format!(
                            "in '{}'; the id column must hold strings or integers",
                            file.display()
                        ),
                    });
                }
                kinds.push((data_type.is_integer(), file));
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::ColumnNotFound {
            column: dataset.id_column.clone(),
            available: format!(
                "it is missing from {} of {} files of dataset '{}': {}",
                missing.len(),
                files.len(),
                dataset.path.display(),
                missing.join(", ")
            ),
        });
    }
    refuse_mixed_id_types(
        &dataset.path.display().to_string(),
        &dataset.id_column,
        kinds
            .iter()
            .map(|(is_int, file)| (*is_int, file.display().to_string())),
    )?;
    Ok(partitions)
}

struct Prepared {
    dataset: Dataset,
    needles: Needles,
    scans: Vec<FileScan>,
}

fn prepare(
    subjects: &[String],
    datasets: &[Dataset],
    keys: &dyn KeyProvider,
    threads: Option<usize>,
    control: &RunControl,
) -> Result<Vec<Prepared>> {
    let mut listed = Vec::new();
    for dataset in datasets {
        let files = dataset_files(&dataset.path)?;
        let partitions = check_schemas(dataset, &files)?;
        let needles = Needles::build(subjects, &dataset.id_form, keys)?;
        listed.push((dataset.clone(), needles, files, partitions));
    }
    let pool = crate::parallel::pool(threads)?;
    let mut prepared = Vec::new();
    for (dataset, needles, files, partitions) in listed {
        let scans = pool.install(|| {
            files
                .par_iter()
                .zip(&partitions)
                .map(|(file, partition)| match partition {
                    Some(partition) => scan_partition_file(file, partition.matches(&needles)),
                    None => {
                        let mut scan = scan_file(file, &dataset.id_column, &needles, control)?;
                        // Writers that keep the column in the files (polars): a file of a
                        // subject's partition holding only that subject's rows goes whole too.
                        scan.whole_file = scan.matching_rows == scan.rows
                            && id_partition(&dataset.path, file, &dataset.id_column)
                                .is_some_and(|p| p.matches(&needles));
                        Ok(scan)
                    }
                })
                .collect::<Result<Vec<_>>>()
        })?;
        prepared.push(Prepared {
            dataset,
            needles,
            scans,
        });
    }
    Ok(prepared)
}

fn request_fingerprint(subjects: &[String], audit: Option<&AuditLog>) -> Result<String> {
    match audit {
        Some(log) => {
            let mut pseudonyms = subjects
                .iter()
                .map(|s| log.subject_pseudonym(s))
                .collect::<Result<Vec<_>>>()?;
            pseudonyms.sort();
            let joined = pseudonyms.join(",");
            use sha2::Digest;
            Ok(hex::encode(sha2::Sha256::digest(joined.as_bytes())))
        }
        None => Ok(format!("subjects:{}", subjects.len())),
    }
}

fn new_run_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::RandomSource {
        message: e.to_string(),
    })?;
    Ok(hex::encode(bytes))
}

/// Remove `subjects`' rows from `datasets` (and destroy their keys); see the module docs.
pub fn forget(
    subjects: &[String],
    datasets: &[Dataset],
    keys: &dyn KeyProvider,
    options: &ForgetOptions<'_>,
    control: &RunControl,
) -> Result<ForgetReceipt> {
    let outcome = forget_inner(subjects, datasets, keys, options, control);
    if let (Err(error), Some(log)) = (&outcome, options.audit) {
        let mut event = AuditEvent::new("forget");
        event.outcome = Outcome::Failure;
        event.error = Some(error.to_string());
        event.target.dataset = Some(dataset_names(datasets).join(", "));
        event.subjects = subjects
            .iter()
            .filter_map(|s| log.subject_pseudonym(s).ok())
            .collect();
        let _ = log.append(event);
    }
    outcome
}

fn dataset_names(datasets: &[Dataset]) -> Vec<String> {
    datasets
        .iter()
        .map(|d| d.path.display().to_string())
        .collect()
}

fn forget_inner(
    subjects: &[String],
    datasets: &[Dataset],
    keys: &dyn KeyProvider,
    options: &ForgetOptions<'_>,
    control: &RunControl,
) -> Result<ForgetReceipt> {
    let started = Instant::now();
    let mut receipt = ForgetReceipt {
        run_id: new_run_id()?,
        dry_run: options.dry_run,
        subjects: subjects.len() as u64,
        datasets: dataset_names(datasets),
        started_at: now_rfc3339(),
        ..Default::default()
    };
    if let Some(log) = options.audit {
        receipt.subject_pseudonyms = subjects
            .iter()
            .map(|s| log.subject_pseudonym(s))
            .collect::<Result<_>>()?;
    }
    let (remote, local): (Vec<Dataset>, Vec<Dataset>) =
        datasets.iter().cloned().partition(is_blob_dataset);
    let prepared = prepare(subjects, &local, keys, options.threads, control)?;
    let remote_needles = remote
        .iter()
        .map(|d| Needles::build(subjects, &d.id_form, keys))
        .collect::<Result<Vec<_>>>()?;
    let request = request_fingerprint(subjects, options.audit)?;
    let mut journals = Vec::new();
    for item in &prepared {
        for scan in &item.scans {
            receipt.files_scanned += 1;
            receipt.row_groups_scanned += scan.row_groups_scanned;
            receipt.row_groups_skipped += scan.row_groups_skipped;
            receipt.bytes_total += scan.fingerprint.len;
        }
        let affected: Vec<&FileScan> = item.scans.iter().filter(|s| s.matching_rows > 0).collect();
        if options.dry_run {
            receipt.files.extend(affected.iter().map(|s| FileChange {
                path: s.path.clone(),
                rows_before: s.rows,
                rows_removed: s.matching_rows,
                bytes_before: s.fingerprint.len,
                bytes_after: 0,
                removed: s.whole_file,
            }));
            // Exactly the directories the real run would remove: those left with no visible
            // file once the files removed whole are gone.
            let gone: HashSet<&Path> = affected
                .iter()
                .filter(|s| s.whole_file)
                .map(|s| s.path.as_path())
                .collect();
            for directory in subject_partitions(&item.dataset, affected.iter().map(|s| &s.path)) {
                if would_remove_partition_directory(&directory, &gone)? {
                    receipt.directories_removed.push(directory);
                }
            }
            continue;
        }
        // Resume: finish what an interrupted run of the same request started.
        let journal_path = journal::journal_path(&item.dataset.path);
        let previous = journal::read(&journal_path)?;
        // Partition directories to remove: this run's, and those of an interrupted run, whose
        // files may already be gone.
        let mut directories = subject_partitions(
            &item.dataset,
            affected
                .iter()
                .map(|s| &s.path)
                .chain(previous.iter().flat_map(|e| match e {
                    journal::Entry::Start { files, .. } => files.as_slice(),
                    _ => &[],
                })),
        );
        directories.sort();
        directories.dedup();
        for entry in &previous {
            if let journal::Entry::Start { files, .. } = entry {
                files.iter().for_each(|f| journal::remove_leftovers(f));
            }
        }
        let mut carried = Vec::new();
        if let Some(finished) =
            journal::carried_over(&previous, &request, journal::local_replacement_landed)?
        {
            receipt.resumed = true;
            carried = finished;
        }
        receipt
            .files
            .extend(carried.iter().filter_map(journal::Entry::change));
        if affected.is_empty() && previous.is_empty() {
            continue;
        }
        let mut entries = vec![journal::Entry::Start {
            run_id: receipt.run_id.clone(),
            request: request.clone(),
            files: affected.iter().map(|s| s.path.clone()).collect(),
        }];
        entries.extend(carried);
        let journal = Mutex::new(journal::Journal::create(&journal_path, &entries)?);
        let pool = crate::parallel::pool(options.threads)?;
        let results: Vec<Result<FileChange>> = pool.install(|| {
            affected
                .par_iter()
                .map(|scan| {
                    control.check()?;
                    // Announce each swap before it happens, so that a run killed between the
                    // swap and its `done` line still counts the file when resumed.
                    let change_of = |done: &parquet::Rewritten| FileChange {
                        path: scan.path.clone(),
                        rows_before: done.rows_before,
                        rows_removed: done.rows_removed,
                        bytes_before: done.bytes_before,
                        bytes_after: done.bytes_after,
                        removed: scan.whole_file,
                    };
                    let announce = |done: &parquet::Rewritten, sha256_after: &str| {
                        let change = change_of(done);
                        journal.lock().unwrap_or_else(|p| p.into_inner()).append(
                            &journal::Entry::replacing(
                                &change,
                                String::new(),
                                sha256_after.to_owned(),
                            ),
                        )
                    };
                    let done = if scan.whole_file {
                        remove_whole_file(scan, &|done| announce(done, ""))?
                    } else {
                        rewrite_file(
                            scan,
                            &item.dataset.id_column,
                            &item.needles,
                            control,
                            &announce,
                        )?
                    };
                    let change = change_of(&done);
                    journal
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .append(&journal::Entry::done(&change))?;
                    Ok(change)
                })
                .collect()
        });
        for result in results {
            receipt.files.push(result?);
        }
        // Only after every file of the run is gone: the journal still lists them, so a run
        // killed here removes the directories when resumed.
        for directory in directories {
            if remove_partition_directory(&directory)? {
                receipt.directories_removed.push(directory);
            }
        }
        journals.push(journal.into_inner().unwrap_or_else(|p| p.into_inner()));
    }
    // Blob datasets: each affected blob is replaced by one conditional put (blob_dataset).
    let default_storage = StorageOptions::default();
    let storage = options.storage.unwrap_or(&default_storage);
    let mut blob_journals = Vec::new();
    for (dataset, needles) in remote.iter().zip(&remote_needles) {
        let outcome = blob_dataset::forget_in_blobs(
            &dataset.path.to_string_lossy(),
            &dataset.id_column,
            needles,
            storage,
            options.dry_run,
            &receipt.run_id,
            &request,
            control,
        )?;
        receipt.files_scanned += outcome.files_scanned;
        receipt.bytes_total += outcome.bytes_total;
        receipt.resumed |= outcome.resumed;
        receipt.files.extend(outcome.changes);
        receipt
            .directories_removed
            .extend(outcome.directories_removed);
        blob_journals.extend(outcome.journal);
    }
    receipt.files.sort_by(|a, b| a.path.cmp(&b.path));
    receipt.directories_removed.sort();
    receipt.rows_removed = receipt.files.iter().map(|f| f.rows_removed).sum();
    receipt.bytes_rewritten = receipt.files.iter().map(|f| f.bytes_after).sum();
    if let Some(store) = options.subject_keys {
        receipt.keys_destroyed = if options.dry_run {
            store.destruction_preview(subjects)?
        } else {
            store.destroy(subjects)?
        };
    }
    receipt.elapsed_seconds = started.elapsed().as_secs_f64();
    if let Some(log) = options.audit {
        let id_columns: Vec<&str> = datasets.iter().map(|d| d.id_column.as_str()).collect();
        let pseudonym = |value: &str| {
            log.subject_pseudonym(value)
                .unwrap_or_else(|_| "[redacted]".to_owned())
        };
        let redact = |path: &Path| partition::redact(path, &id_columns, &pseudonym);
        receipt.audit_record_id = Some(log.append(audit_event(
            &receipt,
            datasets,
            keys_used(datasets),
            &redact,
        ))?);
        // Cover the receipt by a signed checkpoint at once, so it can be proven right away.
        log.checkpoint()?;
    }
    for journal in journals {
        journal.finish()?;
    }
    for journal in blob_journals {
        journal.finish()?;
    }
    Ok(receipt)
}

fn keys_used(datasets: &[Dataset]) -> Vec<String> {
    let mut keys: Vec<String> = datasets
        .iter()
        .filter_map(|d| d.id_form.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The partition directories of the id column, named by a subject, that `files` lie in.
fn subject_partitions<'p>(
    dataset: &Dataset,
    files: impl Iterator<Item = &'p PathBuf>,
) -> Vec<PathBuf> {
    let mut directories: Vec<PathBuf> = files
        .filter_map(|file| id_partition(&dataset.path, file, &dataset.id_column))
        .map(|partition| partition.directory)
        .collect();
    directories.sort();
    directories.dedup();
    directories
}

/// The audit record of a receipt; paths go through `redact`, so that a partition directory
/// named by a subject's identifier appears under the subject's pseudonym.
fn audit_event(
    receipt: &ForgetReceipt,
    datasets: &[Dataset],
    mut key_ids: Vec<String>,
    redact: &dyn Fn(&Path) -> String,
) -> AuditEvent {
    let mut event = AuditEvent::new(if receipt.dry_run {
        "forget-dry-run"
    } else {
        "forget"
    });
    event.target.dataset = Some(dataset_names(datasets).join(", "));
    event.target.paths = receipt.files.iter().map(|f| redact(&f.path)).collect();
    let files: Vec<serde_json::Value> = receipt
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": redact(&f.path),
                "rows_before": f.rows_before,
                "rows_removed": f.rows_removed,
                "bytes_before": f.bytes_before,
                "bytes_after": f.bytes_after,
                "removed": f.removed,
            })
        })
        .collect();
    let directories_removed: Vec<String> = receipt
        .directories_removed
        .iter()
        .map(|d| redact(d))
        .collect();
    key_ids.extend(receipt.keys_destroyed.iter().map(|k| k.key_handle.clone()));
    event.key_ids = key_ids;
    event.rows = Some(receipt.rows_removed);
    event.bytes = Some(receipt.bytes_rewritten);
    event.subjects = receipt.subject_pseudonyms.clone();
    let summary = serde_json::json!({
        "run_id": receipt.run_id,
        "dry_run": receipt.dry_run,
        "resumed": receipt.resumed,
        "subjects": receipt.subjects,
        "files_scanned": receipt.files_scanned,
        "row_groups_skipped": receipt.row_groups_skipped,
        "bytes_total": receipt.bytes_total,
        "files": files,
        "directories_removed": directories_removed,
        "keys_destroyed": receipt.keys_destroyed,
    });
    if let serde_json::Value::Object(map) = summary {
        event.details = map;
    }
    event
}

/// Scan `datasets` for any row of `subjects`; `ok` when none remains.
pub fn verify_forgotten(
    subjects: &[String],
    datasets: &[Dataset],
    keys: &dyn KeyProvider,
    threads: Option<usize>,
    control: &RunControl,
) -> Result<ForgetVerification> {
    verify_forgotten_in(
        subjects,
        datasets,
        keys,
        threads,
        &StorageOptions::default(),
        control,
    )
}

/// [`verify_forgotten`] with the storage options blob datasets are reached with.
pub fn verify_forgotten_in(
    subjects: &[String],
    datasets: &[Dataset],
    keys: &dyn KeyProvider,
    threads: Option<usize>,
    storage: &StorageOptions,
    control: &RunControl,
) -> Result<ForgetVerification> {
    let (remote, local): (Vec<Dataset>, Vec<Dataset>) =
        datasets.iter().cloned().partition(is_blob_dataset);
    let prepared = prepare(subjects, &local, keys, threads, control)?;
    let mut verification = ForgetVerification::default();
    for dataset in &remote {
        let needles = Needles::build(subjects, &dataset.id_form, keys)?;
        let (scanned, found) = blob_dataset::find_in_blobs(
            &dataset.path.to_string_lossy(),
            &dataset.id_column,
            &needles,
            storage,
            control,
        )?;
        verification.files_scanned += scanned;
        for (path, rows) in found {
            verification.rows_found += rows;
            verification.files_with_rows.push((path, rows));
        }
    }
    for item in prepared {
        for scan in item.scans {
            verification.files_scanned += 1;
            if scan.matching_rows > 0 {
                verification.rows_found += scan.matching_rows;
                verification
                    .files_with_rows
                    .push((scan.path, scan.matching_rows));
            }
        }
    }
    verification.ok = verification.rows_found == 0;
    Ok(verification)
}

/// Refuse a dataset whose id column is an integer in some files and text in others
/// (`kinds`: whether it is an integer, and the file or blob): rows would be matched
/// differently from one file to the next.
pub(crate) fn refuse_mixed_id_types(
    dataset: &str,
    id_column: &str,
    kinds: impl IntoIterator<Item = (bool, String)>,
) -> Result<()> {
    let (mut integer, mut text) = (None, None);
    for (is_int, file) in kinds {
        let slot = if is_int { &mut integer } else { &mut text };
        slot.get_or_insert(file);
    }
    match (integer, text) {
        (Some(integer), Some(text)) => Err(Error::invalid_data(
            Some(id_column),
            format!(
                "mixed schemas in dataset '{dataset}': the id column is an integer in '{integer}' but text in '{text}'; make the files agree first"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
