//! Python face of [`crate::detect`]: find PII and secrets in text columns, scan tables.

use std::sync::Arc;

use arrow_array::Array;
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyTable;

use super::run::run_blocking;
use crate::detect::{
    detect_batches, detect_schema, scan_with, DetectOptions, Detector, ExternalRecognizer,
    ScanOptions, ScanReport, Span,
};
use crate::error::{Error, Result};
use crate::parallel::RunControl;
use crate::policy::compile::build_detector;
use crate::policy::model::RecognizerSpec;

fn detector(recognizers_json: Option<&str>, min_score: Option<f64>) -> PyResult<Arc<Detector>> {
    let specs: Vec<RecognizerSpec> = match recognizers_json {
        Some(text) => serde_json::from_str(text).map_err(|e| Error::Recognizer {
            name: "recognizers".into(),
            message: format!(
                "each recognizer is {{entity, pattern, validator?, context?, score?}}: {e}"
            ),
        })?,
        None => Vec::new(),
    };
    Ok(build_detector(&specs, min_score)?)
}

/// A Python callable used as an [`ExternalRecognizer`]: called once per chunk with a list of
/// strings (None for nulls), it returns one list of `(entity, start, end, score)` per value.
struct PythonRecognizer {
    callable: Py<PyAny>,
}

impl ExternalRecognizer for PythonRecognizer {
    fn spans(&self, batch_values: &[Option<&str>]) -> Result<Vec<Vec<Span>>> {
        Python::attach(|py| {
            let values = PyList::new(py, batch_values.iter().copied())?;
            let result = self.callable.bind(py).call1((values,))?;
            let per_value: Vec<Vec<(String, usize, usize, f64)>> = result.extract()?;
            Ok::<_, PyErr>(per_value)
        })
        .map_err(|err| Error::invalid_data(None, format!("the external recognizer failed: {err}")))
        .and_then(|per_value| {
            if per_value.len() != batch_values.len() {
                return Err(Error::invalid_data(
                    None,
                    format!(
                        "the external recognizer returned {} lists for {} values",
                        per_value.len(),
                        batch_values.len()
                    ),
                ));
            }
            Ok(per_value
                .into_iter()
                .map(|spans| {
                    spans
                        .into_iter()
                        .map(|(entity, start, end, score)| Span {
                            entity,
                            start,
                            end,
                            score,
                        })
                        .collect()
                })
                .collect())
        })
    }
}

/// Findings in a string column: a table of (row, entity, start, end, score), offsets in
/// characters.
#[pyfunction]
#[pyo3(signature = (column, recognizers_json=None, min_score=None, threads=None, external=None))]
pub(crate) fn detect(
    py: Python<'_>,
    column: AnyArray,
    recognizers_json: Option<&str>,
    min_score: Option<f64>,
    threads: Option<usize>,
    external: Option<Py<PyAny>>,
) -> PyResult<PyTable> {
    let detector = detector(recognizers_json, min_score)?;
    let (chunks, _field) = column.into_chunked_array()?.into_inner();
    let external = external.map(|callable| PythonRecognizer { callable });
    let control = RunControl::new();
    let batches = run_blocking(py, &control, None, |control| {
        let options = DetectOptions {
            first_row: 0,
            threads,
            external: external.as_ref().map(|e| e as &dyn ExternalRecognizer),
            control: Some(control),
        };
        let arrays: Vec<&dyn Array> = chunks.iter().map(|chunk| chunk.as_ref()).collect();
        detect_batches(&arrays, &detector, &options)
    })?;
    PyTable::try_new(batches, detect_schema())
}

/// What a scan found per column; never holds a matched value.
#[pyclass(frozen, module = "amlguard", name = "ScanReport")]
pub(crate) struct PyScanReport {
    inner: ScanReport,
}

#[pymethods]
impl PyScanReport {
    /// Rows scanned.
    #[getter]
    fn rows_scanned(&self) -> u64 {
        self.inner.rows_scanned
    }

    /// Columns skipped because they do not hold strings.
    #[getter]
    fn skipped_columns(&self) -> Vec<String> {
        self.inner.skipped_columns.clone()
    }

    /// The report as JSON text.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// One row per (column, entity): an Arrow table.
    fn to_arrow(&self) -> PyResult<PyTable> {
        let batch = self.inner.to_record_batch()?;
        let schema = batch.schema();
        PyTable::try_new(vec![batch], schema)
    }

    fn __repr__(&self) -> String {
        self.inner.to_string()
    }
}

/// Classify the string columns of a table: per column and entity, counts and fractions, plus
/// a suggested rule.
#[pyfunction]
#[pyo3(signature = (table, sample_rows=None, recognizers_json=None, min_score=None, threads=None))]
pub(crate) fn scan(
    py: Python<'_>,
    table: PyTable,
    sample_rows: Option<usize>,
    recognizers_json: Option<&str>,
    min_score: Option<f64>,
    threads: Option<usize>,
) -> PyResult<PyScanReport> {
    let detector = detector(recognizers_json, min_score)?;
    let (batches, _schema) = table.into_inner();
    let control = RunControl::new();
    let inner = run_blocking(py, &control, None, |control| {
        scan_with(
            &batches,
            &detector,
            &ScanOptions {
                sample_rows,
                threads,
                control: Some(control),
            },
        )
    })?;
    Ok(PyScanReport { inner })
}
