//! Python face of [`crate::io`]: masking files and directories.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::keys::PyLocalKeyring;
use super::policy::{resolve_keys, PyCorePolicy};
use super::run::run_blocking;
use super::{escape_html, html_table};
use crate::io::{MaskOptions, MaskReport};
use crate::keys::KeyProvider;
use crate::parallel::RunControl;

/// What a masking run did: counts, sizes and timing.
#[pyclass(frozen, module = "amlguard", name = "MaskReport", get_all)]
pub(crate) struct PyMaskReport {
    files: u64,
    rows: u64,
    input_bytes: u64,
    output_bytes: u64,
    elapsed_seconds: f64,
    columns_masked: Vec<String>,
    policy_fingerprint: String,
}

impl From<MaskReport> for PyMaskReport {
    fn from(report: MaskReport) -> Self {
        Self {
            files: report.files,
            rows: report.rows,
            input_bytes: report.input_bytes,
            output_bytes: report.output_bytes,
            elapsed_seconds: report.elapsed_seconds,
            columns_masked: report.columns_masked,
            policy_fingerprint: report.policy_fingerprint,
        }
    }
}

impl PyMaskReport {
    fn rows_per_second(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.rows as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }
}

#[pymethods]
impl PyMaskReport {
    /// Rows masked per second.
    #[getter(rows_per_second)]
    fn get_rows_per_second(&self) -> f64 {
        self.rows_per_second()
    }

    fn __repr__(&self) -> String {
        format!(
            "MaskReport(files={}, rows={}, input_bytes={}, output_bytes={}, elapsed_seconds={:.3}, rows_per_second={:.0}, columns_masked={:?}, policy_fingerprint='{}')",
            self.files,
            self.rows,
            self.input_bytes,
            self.output_bytes,
            self.elapsed_seconds,
            self.rows_per_second(),
            self.columns_masked,
            &self.policy_fingerprint[..12.min(self.policy_fingerprint.len())],
        )
    }

    fn _repr_html_(&self) -> String {
        let rows = [
            ("files", self.files.to_string()),
            ("rows", self.rows.to_string()),
            ("input bytes", self.input_bytes.to_string()),
            ("output bytes", self.output_bytes.to_string()),
            ("seconds", format!("{:.3}", self.elapsed_seconds)),
            ("rows / s", format!("{:.0}", self.rows_per_second())),
            (
                "columns masked",
                escape_html(&self.columns_masked.join(", ")),
            ),
            (
                "policy",
                escape_html(&self.policy_fingerprint[..12.min(self.policy_fingerprint.len())]),
            ),
        ];
        html_table("amlguard MaskReport", &rows)
    }
}

/// Mask a Parquet/CSV file (or a directory of them) into `destination`, atomically.
#[pyfunction]
#[pyo3(signature = (source, destination, policy, keyring=None, threads=None, batch_rows=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mask_file(
    py: Python<'_>,
    source: PathBuf,
    destination: PathBuf,
    policy: &Bound<'_, PyCorePolicy>,
    keyring: Option<&Bound<'_, PyLocalKeyring>>,
    threads: Option<usize>,
    batch_rows: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyMaskReport> {
    let policy = &policy.get().inner;
    let keys = resolve_keys(policy, keyring)?;
    let mut options = MaskOptions {
        threads,
        ..MaskOptions::default()
    };
    if let Some(rows) = batch_rows.filter(|r| *r > 0) {
        options.batch_rows = rows;
    }
    let control = RunControl::new();
    let report = run_blocking(py, &control, progress, |control| {
        crate::io::mask_file(
            &source,
            &destination,
            policy,
            &keys as &dyn KeyProvider,
            &options,
            control,
        )
    })?;
    Ok(report.into())
}
