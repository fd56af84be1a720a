//! Python face of [`crate::policy`]: parse, validate and apply policies to Arrow data.

use std::sync::Arc;

use arrow_array::RecordBatchReader;
use pyo3::prelude::*;
use pyo3_arrow::{PyRecordBatchReader, PySchema, PyTable};

use super::keys::PyLocalKeyring;
use super::run::run_blocking;
use crate::keys::{KeyProvider, LocalKeyring};
use crate::parallel::RunControl;
use crate::policy::{CompiledPolicy, MaskingReader, Policy};

/// The compiled-from-JSON policy held by `amlguard.Policy`.
#[pyclass(frozen, module = "amlguard", name = "_CorePolicy")]
pub(crate) struct PyCorePolicy {
    pub(crate) inner: Policy,
}

/// The keyring given, or the default one when the policy needs keys and none was given.
pub(crate) fn resolve_keys(
    policy: &Policy,
    keyring: Option<&Bound<'_, PyLocalKeyring>>,
) -> PyResult<LocalKeyring> {
    match keyring {
        Some(keyring) => Ok(keyring.get().inner.clone()),
        None if policy
            .columns
            .values()
            .any(|r| !r.key_references().is_empty()) =>
        {
            Ok(LocalKeyring::open_default()?)
        }
        // No rule needs a key: an unopened keyring handle is never read.
        None => Ok(LocalKeyring::unopened(
            LocalKeyring::default_path().unwrap_or_default(),
        )),
    }
}

impl PyCorePolicy {
    fn compile(
        &self,
        schema: arrow_schema::SchemaRef,
        keyring: Option<&Bound<'_, PyLocalKeyring>>,
    ) -> PyResult<CompiledPolicy> {
        let keys = resolve_keys(&self.inner, keyring)?;
        Ok(self.inner.compile(schema, &keys as &dyn KeyProvider)?)
    }
}

#[pymethods]
impl PyCorePolicy {
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        Ok(Self {
            inner: Policy::from_json(text)?,
        })
    }

    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    fn fingerprint(&self) -> String {
        self.inner.fingerprint()
    }

    /// Check against a schema; with a keyring, also check that every named key exists.
    #[pyo3(signature = (schema, keyring=None))]
    fn validate_schema(
        &self,
        schema: PySchema,
        keyring: Option<&Bound<'_, PyLocalKeyring>>,
    ) -> PyResult<()> {
        let keys = keyring.map(|k| k.get().inner.clone());
        self.inner.validate(
            schema.as_ref(),
            keys.as_ref().map(|k| k as &dyn KeyProvider),
        )?;
        Ok(())
    }

    /// The output schema for an input schema.
    #[pyo3(signature = (schema, keyring=None))]
    fn output_schema(
        &self,
        schema: PySchema,
        keyring: Option<&Bound<'_, PyLocalKeyring>>,
    ) -> PyResult<PySchema> {
        let compiled = self.compile(schema.into_inner(), keyring)?;
        Ok(PySchema::new(compiled.output_schema()))
    }

    /// Mask a whole table (any object with `__arrow_c_stream__`).
    #[pyo3(signature = (table, keyring=None, threads=None))]
    fn apply_table(
        &self,
        py: Python<'_>,
        table: PyTable,
        keyring: Option<&Bound<'_, PyLocalKeyring>>,
        threads: Option<usize>,
    ) -> PyResult<PyTable> {
        let (batches, schema) = table.into_inner();
        let compiled = self.compile(schema, keyring)?;
        let control = RunControl::new();
        control.set_rows_total(batches.iter().map(|b| b.num_rows() as u64).sum());
        let masked = run_blocking(py, &control, None, |control| {
            compiled.apply_batches_on(&batches, 0, control, threads)
        })?;
        PyTable::try_new(masked, compiled.output_schema())
    }

    /// Mask a stream lazily: batches are masked as the returned reader is consumed.
    #[pyo3(signature = (reader, keyring=None, threads=None))]
    fn apply_reader(
        &self,
        reader: PyRecordBatchReader,
        keyring: Option<&Bound<'_, PyLocalKeyring>>,
        threads: Option<usize>,
    ) -> PyResult<PyRecordBatchReader> {
        let reader = reader.into_reader()?;
        let compiled = Arc::new(self.compile(reader.schema(), keyring)?);
        let masking = MaskingReader::new(reader, compiled, threads, Arc::new(RunControl::new()));
        Ok(PyRecordBatchReader::new(Box::new(masking)))
    }
}
