//! Python face of [`crate::forget`]: forget, verify_forgotten and the subject-key store.
//!
//! Receipts cross as JSON text and become plain Python objects in `amlguard/forget.py`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3_arrow::PyTable;

use pyo3::types::PyDict;

use super::audit::PyAuditLog;
use super::azure::PyAzureKek;
use super::blob::storage_options_from;
use super::keys::PyLocalKeyring;
use super::run::run_blocking;
use crate::error::Error;
use crate::forget::{Dataset, ForgetOptions, IdForm, OnForgotten, SubjectKeyStore};
use crate::keys::LocalKeyring;
use crate::mask::hash::DigestEncoding;
use crate::parallel::RunControl;

/// (path, id_column, pseudonymised_with, pseudonym_op, encoding, truncate_bytes, tweak)
type DatasetSpec = (
    PathBuf,
    String,
    Option<String>,
    String,
    String,
    Option<usize>,
    String,
);

fn to_dataset(spec: DatasetSpec) -> Result<Dataset, Error> {
    let (path, id_column, key, op, encoding, truncate_bytes, tweak) = spec;
    let id_form = match (key, op.as_str()) {
        (None, _) => IdForm::Raw,
        (Some(key), "hash") => IdForm::Hash {
            key,
            encoding: match encoding.as_str() {
                "hex" => DigestEncoding::Hex,
                "base64url" => DigestEncoding::Base64Url,
                _ => {
                    return Err(Error::InvalidArgument {
                        name: "encoding",
                        message: "use 'hex' or 'base64url'".into(),
                    })
                }
            },
            truncate_bytes,
        },
        (Some(key), "tokenize") => IdForm::Tokenize { key, tweak },
        (Some(_), _) => {
            return Err(Error::InvalidArgument {
                name: "pseudonym_op",
                message: "use 'hash' or 'tokenize'".into(),
            })
        }
    };
    Ok(Dataset {
        path,
        id_column,
        id_form,
    })
}

fn keyring_or_default(keyring: Option<&Bound<'_, PyLocalKeyring>>) -> PyResult<LocalKeyring> {
    Ok(match keyring {
        Some(keyring) => keyring.get().inner.clone(),
        None => LocalKeyring::open_default()?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    Ok(serde_json::to_string(value).map_err(|e| Error::invalid_data(None, e.to_string()))?)
}

/// Forget subjects across datasets; returns the receipt as JSON.
#[pyfunction]
#[pyo3(signature = (subjects, datasets, keyring=None, dry_run=false, threads=None, audit=None, subject_keys=None, storage_options=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn forget_json(
    py: Python<'_>,
    subjects: Vec<String>,
    datasets: Vec<DatasetSpec>,
    keyring: Option<&Bound<'_, PyLocalKeyring>>,
    dry_run: bool,
    threads: Option<usize>,
    audit: Option<&Bound<'_, PyAuditLog>>,
    subject_keys: Option<&Bound<'_, PySubjectKeyStore>>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let storage = storage_options_from(storage_options)?;
    let datasets = datasets
        .into_iter()
        .map(to_dataset)
        .collect::<Result<Vec<_>, _>>()?;
    let keyring = keyring_or_default(keyring)?;
    let options = ForgetOptions {
        dry_run,
        threads,
        audit: audit.map(|a| &a.get().inner),
        subject_keys: subject_keys.map(|s| &s.get().inner),
        storage: Some(&storage),
    };
    let control = RunControl::new();
    let receipt = run_blocking(py, &control, None, |control| {
        crate::forget::forget(&subjects, &datasets, &keyring, &options, control)
    })?;
    to_json(&receipt)
}

/// Scan datasets for any remaining row of the subjects; returns the verification as JSON.
#[pyfunction]
#[pyo3(signature = (subjects, datasets, keyring=None, threads=None, storage_options=None))]
pub(crate) fn verify_forgotten_json(
    py: Python<'_>,
    subjects: Vec<String>,
    datasets: Vec<DatasetSpec>,
    keyring: Option<&Bound<'_, PyLocalKeyring>>,
    threads: Option<usize>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let storage = storage_options_from(storage_options)?;
    let datasets = datasets
        .into_iter()
        .map(to_dataset)
        .collect::<Result<Vec<_>, _>>()?;
    let keyring = keyring_or_default(keyring)?;
    let control = RunControl::new();
    let verification = run_blocking(py, &control, None, |control| {
        crate::forget::verify_forgotten_in(
            &subjects, &datasets, &keyring, threads, &storage, control,
        )
    })?;
    to_json(&verification)
}

/// Per-subject data keys (SQLite, WAL) wrapped by a keyring KEK: crypto-shredding.
#[pyclass(frozen, module = "amlguard", name = "SubjectKeyStore")]
pub(crate) struct PySubjectKeyStore {
    pub(crate) inner: SubjectKeyStore,
}

#[pymethods]
impl PySubjectKeyStore {
    #[new]
    #[pyo3(signature = (keyring=None, kek=None, path=None))]
    fn new(
        keyring: Option<&Bound<'_, PyLocalKeyring>>,
        kek: Option<&Bound<'_, PyAny>>,
        path: Option<PathBuf>,
    ) -> PyResult<Self> {
        let keyring = keyring_or_default(keyring)?;
        let inner = match kek {
            None => SubjectKeyStore::open(&keyring, "subject-kek", path.as_deref())?,
            Some(kek) => match kek.extract::<String>() {
                Ok(name) => SubjectKeyStore::open(&keyring, &name, path.as_deref())?,
                Err(_) => {
                    let kek = kek.cast::<PyAzureKek>().map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err(
                            "kek must be a keyring key name or an AzureKek",
                        )
                    })?;
                    SubjectKeyStore::open_with_kek(
                        &keyring,
                        kek.get().inner.clone(),
                        path.as_deref(),
                    )?
                }
            },
        };
        Ok(Self { inner })
    }

    /// The store file.
    #[getter]
    fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    /// The KEK that wraps the subject keys.
    #[getter]
    fn kek_id(&self) -> String {
        self.inner.kek_id()
    }

    /// Encrypt `column` per subject (Arrow stream in, Arrow table out).
    #[pyo3(signature = (table, column, subject_column, context=""))]
    fn encrypt_column(
        &self,
        py: Python<'_>,
        table: PyTable,
        column: &str,
        subject_column: &str,
        context: &str,
    ) -> PyResult<PyTable> {
        let (batches, _) = table.into_inner();
        let control = RunControl::new();
        let store = &self.inner;
        let (batches, schema) = run_blocking(py, &control, None, |_| {
            store.encrypt_column(&batches, column, subject_column, context)
        })?;
        PyTable::try_new(batches, schema)
    }

    /// Decrypt `column`; forgotten subjects raise ForgottenError or give null.
    #[pyo3(signature = (table, column, context="", on_forgotten="error"))]
    fn decrypt_column(
        &self,
        py: Python<'_>,
        table: PyTable,
        column: &str,
        context: &str,
        on_forgotten: &str,
    ) -> PyResult<PyTable> {
        let choice = OnForgotten::parse(on_forgotten)?;
        let (batches, _) = table.into_inner();
        let control = RunControl::new();
        let store = &self.inner;
        let (batches, schema) = run_blocking(py, &control, None, |_| {
            store.decrypt_column(&batches, column, context, choice)
        })?;
        PyTable::try_new(batches, schema)
    }

    /// Destroy the keys of `subjects`; returns the destructions as JSON.
    fn destroy_json(&self, py: Python<'_>, subjects: Vec<String>) -> PyResult<String> {
        let store = &self.inner;
        let destroyed = py.detach(|| store.destroy(&subjects))?;
        to_json(&destroyed)
    }

    fn __repr__(&self) -> String {
        format!(
            "SubjectKeyStore(path={:?}, kek_id={:?})",
            self.path(),
            self.kek_id()
        )
    }
}
