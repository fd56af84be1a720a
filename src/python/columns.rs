//! Python face of [`crate::columns`]: encrypt_columns, decrypt_columns, encrypted_columns.
//!
//! Tables come in and go out through the Arrow PyCapsule interface; the column listing crosses
//! as JSON and becomes dataclasses in `amlguard/columns.py`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::{PySchema, PyTable};

use super::azure::{context_from, keks_from};
use super::forget::PySubjectKeyStore;
use super::run::run_blocking;
use crate::columns::{
    self, DecryptColumnsOptions, EncryptColumnsOptions, Mode, OnError, SubjectKeys,
};
use crate::error::Error;
use crate::keys::KeyEncryptionKey;
use crate::parallel::RunControl;

/// Encrypt `columns` of an Arrow table; returns the table with those columns encrypted.
#[pyfunction]
#[pyo3(signature = (table, columns, kek=None, mode="randomized", context=None, subject_column=None, subject_keys=None, reuse_from=None, threads=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn encrypt_columns(
    py: Python<'_>,
    table: PyTable,
    columns: Vec<String>,
    kek: Option<&Bound<'_, PyAny>>,
    mode: &str,
    context: Option<&Bound<'_, PyDict>>,
    subject_column: Option<String>,
    subject_keys: Option<&Bound<'_, PySubjectKeyStore>>,
    reuse_from: Option<PySchema>,
    threads: Option<usize>,
) -> PyResult<PyTable> {
    let mode = Mode::parse(mode)?;
    let context = context_from(context)?;
    let kek = match kek {
        Some(kek) => {
            let mut keks = keks_from(kek)?;
            if keks.len() != 1 {
                return Err(PyTypeError::new_err(
                    "kek must be one Kek or AzureKek (decrypt_columns takes several)",
                ));
            }
            keks.pop()
        }
        None => None,
    };
    let store = subject_keys.map(|s| &s.get().inner);
    let subject = match (subject_column.as_deref(), store) {
        (Some(column), Some(store)) => Some(SubjectKeys { column, store }),
        (None, None) => None,
        _ => {
            return Err(Error::InvalidArgument {
                name: "subject_column",
                message: "pass subject_column and subject_keys together".into(),
            }
            .into())
        }
    };
    let reuse_schema = reuse_from.map(PySchema::into_inner);
    let options = EncryptColumnsOptions {
        mode,
        context,
        subject,
        reuse_from: reuse_schema.as_deref(),
        threads,
    };
    let (batches, schema) = table.into_inner();
    let control = RunControl::new();
    let kek_ref: Option<&dyn KeyEncryptionKey> = kek.as_deref();
    let (batches, schema) = run_blocking(py, &control, None, |control| {
        columns::encrypt_columns(&batches, &schema, &columns, kek_ref, &options, control)
    })?;
    PyTable::try_new(batches, schema)
}

/// Decrypt the encrypted columns of an Arrow table (all, or `columns`), restoring their types.
#[pyfunction]
#[pyo3(signature = (table, keks=None, context=None, columns=None, on_error="raise", subject_keys=None, threads=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn decrypt_columns(
    py: Python<'_>,
    table: PyTable,
    keks: Option<&Bound<'_, PyAny>>,
    context: Option<&Bound<'_, PyDict>>,
    columns: Option<Vec<String>>,
    on_error: &str,
    subject_keys: Option<&Bound<'_, PySubjectKeyStore>>,
    threads: Option<usize>,
) -> PyResult<PyTable> {
    let keks = match keks {
        Some(keks) => keks_from(keks)?,
        None => Vec::new(),
    };
    let options = DecryptColumnsOptions {
        context: context.map(|c| context_from(Some(c))).transpose()?,
        columns,
        on_error: OnError::parse(on_error)?,
        subject_keys: subject_keys.map(|s| &s.get().inner),
        threads,
    };
    let (batches, schema) = table.into_inner();
    let control = RunControl::new();
    let kek_refs: Vec<&dyn KeyEncryptionKey> = keks.iter().map(|k| k.as_ref()).collect();
    let (batches, schema) = run_blocking(py, &control, None, |control| {
        columns::decrypt_columns(&batches, &schema, &kek_refs, &options, control)
    })?;
    PyTable::try_new(batches, schema)
}

/// The encrypted columns of a schema (mode, key id, context; never secrets), as JSON.
#[pyfunction]
pub(crate) fn encrypted_columns_json(schema: PySchema) -> PyResult<String> {
    let listed = columns::encrypted_columns(&schema.into_inner())?;
    Ok(serde_json::to_string(&listed).map_err(|e| Error::invalid_data(None, e.to_string()))?)
}
