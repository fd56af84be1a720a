//! Python face of [`crate::datasets`].

use pyo3::prelude::*;
use pyo3_arrow::PyTable;

use crate::datasets;
use crate::parallel::RunControl;

/// Deterministic synthetic PII table of `rows` rows (an Arrow stream object).
#[pyfunction]
#[pyo3(signature = (rows, seed=0))]
pub(crate) fn synthetic_pii(py: Python<'_>, rows: usize, seed: u64) -> PyResult<PyTable> {
    let control = RunControl::new();
    let batches =
        super::run::run_blocking(py, &control, None, |_| datasets::synthetic_pii(rows, seed))?;
    PyTable::try_new(batches, datasets::synthetic_pii_schema())
}
