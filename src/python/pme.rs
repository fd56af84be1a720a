//! Python face of [`crate::pme`]: `write_parquet`, `read_parquet`, the report, and the KMS
//! client behind `amlguard.AmlguardKmsClient` (pyarrow's `KmsClient`).

use std::sync::Arc;

use indexmap::IndexMap;
use parquet::basic::Compression;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3_arrow::{PyRecordBatchReader, PyTable};

use super::azure::PyAzureKeyVault;
use super::blob::storage_options_from;
use super::keys::PyLocalKeyring;
use super::run::run_blocking;
use super::{escape_html, html_table};
use crate::error::Error;
use crate::io::location::Location;
use crate::parallel::RunControl;
use crate::pme::{
    AmlguardKms, KeyRotationReport, MasterKeys, ParquetReadOptions, ParquetReport,
    ParquetWriteOptions,
};

/// The key provider whose key names are the master key ids: a `LocalKeyring` or an
/// `AzureKeyVault`.
fn master_keys(keys: &Bound<'_, PyAny>) -> PyResult<Arc<dyn MasterKeys>> {
    if let Ok(keyring) = keys.cast::<PyLocalKeyring>() {
        return Ok(Arc::new(keyring.get().inner.clone()));
    }
    if let Ok(vault) = keys.cast::<PyAzureKeyVault>() {
        return Ok(Arc::new(vault.get().inner.clone()));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "keys must be an amlguard.LocalKeyring or amlguard.AzureKeyVault (master key ids are key names in it), not {}",
        keys.get_type().name()?
    )))
}

fn compression_from(name: &str) -> PyResult<Compression> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "snappy" => Compression::SNAPPY,
        "zstd" => Compression::ZSTD(Default::default()),
        "lz4" => Compression::LZ4_RAW,
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        other => {
            return Err(Error::InvalidArgument {
                name: "compression",
                message: format!("'{other}' is not one of snappy, zstd, lz4, none"),
            }
            .into())
        }
    })
}

/// What a Parquet write or read did: rows, size, encrypted columns and key-provider calls.
#[pyclass(frozen, module = "amlguard", name = "ParquetReport", get_all)]
pub(crate) struct PyParquetReport {
    rows: u64,
    row_groups: u64,
    bytes: u64,
    elapsed_seconds: f64,
    encrypted_columns: Vec<String>,
    footer_key: Option<String>,
    plaintext_footer: bool,
    kms_wraps: u64,
    kms_unwraps: u64,
}

impl From<ParquetReport> for PyParquetReport {
    fn from(report: ParquetReport) -> Self {
        Self {
            rows: report.rows,
            row_groups: report.row_groups,
            bytes: report.bytes,
            elapsed_seconds: report.elapsed_seconds,
            encrypted_columns: report.encrypted_columns,
            footer_key: report.footer_key,
            plaintext_footer: report.plaintext_footer,
            kms_wraps: report.kms_calls.wraps,
            kms_unwraps: report.kms_calls.unwraps,
        }
    }
}

impl PyParquetReport {
    fn megabytes_per_second(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.elapsed_seconds
        } else {
            0.0
        }
    }
}

#[pymethods]
impl PyParquetReport {
    /// Key-provider calls in all (wraps + unwraps).
    #[getter]
    fn kms_calls(&self) -> u64 {
        self.kms_wraps + self.kms_unwraps
    }

    /// File megabytes (10^6 bytes) per second.
    #[getter(megabytes_per_second)]
    fn get_megabytes_per_second(&self) -> f64 {
        self.megabytes_per_second()
    }

    fn __repr__(&self) -> String {
        format!(
            "ParquetReport(rows={}, row_groups={}, bytes={}, elapsed_seconds={:.3}, encrypted_columns={:?}, footer_key={}, plaintext_footer={}, kms_wraps={}, kms_unwraps={})",
            self.rows,
            self.row_groups,
            self.bytes,
            self.elapsed_seconds,
            self.encrypted_columns,
            self.footer_key
                .as_ref()
                .map(|k| format!("'{k}'"))
                .unwrap_or_else(|| "None".into()),
            if self.plaintext_footer { "True" } else { "False" },
            self.kms_wraps,
            self.kms_unwraps,
        )
    }

    fn _repr_html_(&self) -> String {
        let rows = [
            ("rows", self.rows.to_string()),
            ("row groups", self.row_groups.to_string()),
            ("bytes", self.bytes.to_string()),
            ("seconds", format!("{:.3}", self.elapsed_seconds)),
            ("MB / s", format!("{:.1}", self.megabytes_per_second())),
            (
                "encrypted columns",
                escape_html(&self.encrypted_columns.join(", ")),
            ),
            (
                "footer key",
                escape_html(self.footer_key.as_deref().unwrap_or("-")),
            ),
            ("plaintext footer", self.plaintext_footer.to_string()),
            (
                "KMS calls",
                format!("{} wraps, {} unwraps", self.kms_wraps, self.kms_unwraps),
            ),
        ];
        html_table("amlguard ParquetReport", &rows)
    }
}

/// Write an Arrow stream as one Parquet file (PME-encrypted when `footer_key` is given).
#[pyfunction]
#[pyo3(signature = (data, destination, *, keys=None, footer_key=None, column_keys=None, plaintext_footer=false, double_wrapping=true, external_key_material=false, compression="snappy", row_group_rows=None, threads=None, storage_options=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_parquet(
    py: Python<'_>,
    data: PyRecordBatchReader,
    destination: &str,
    keys: Option<&Bound<'_, PyAny>>,
    footer_key: Option<String>,
    column_keys: Option<IndexMap<String, Vec<String>>>,
    plaintext_footer: bool,
    double_wrapping: bool,
    external_key_material: bool,
    compression: &str,
    row_group_rows: Option<usize>,
    threads: Option<usize>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyParquetReport> {
    let keys = keys.map(master_keys).transpose()?;
    let storage = storage_options_from(storage_options)?;
    let destination = Location::parse(destination, &storage)?;
    let mut options = ParquetWriteOptions {
        footer_key,
        column_keys: column_keys.unwrap_or_default(),
        plaintext_footer,
        double_wrapping,
        external_key_material,
        compression: compression_from(compression)?,
        threads,
        ..ParquetWriteOptions::default()
    };
    if let Some(rows) = row_group_rows {
        options.row_group_rows = rows;
    }
    let reader = data.into_reader()?;
    let schema = reader.schema();
    let report = run_blocking(py, &RunControl::new(), None, |control| {
        crate::pme::write_parquet(
            reader.map(|batch| batch.map_err(Error::from)),
            schema,
            &destination,
            keys,
            &options,
            control,
        )
    })?;
    Ok(report.into())
}

/// Read a Parquet file (decrypting it with `keys` when it is PME-encrypted) into a table and
/// a report.
#[pyfunction]
#[pyo3(signature = (source, *, keys=None, columns=None, threads=None, storage_options=None))]
pub(crate) fn read_parquet(
    py: Python<'_>,
    source: &str,
    keys: Option<&Bound<'_, PyAny>>,
    columns: Option<Vec<String>>,
    threads: Option<usize>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(PyTable, PyParquetReport)> {
    let keys = keys.map(master_keys).transpose()?;
    let storage = storage_options_from(storage_options)?;
    let source = Location::parse(source, &storage)?;
    let options = ParquetReadOptions {
        columns,
        threads,
        ..ParquetReadOptions::default()
    };
    let (schema, batches, report) = run_blocking(py, &RunControl::new(), None, |control| {
        crate::pme::read_parquet(&source, keys, &options, control)
    })?;
    Ok((PyTable::try_new(batches, schema)?, report.into()))
}

/// The KMS client behind `amlguard.AmlguardKmsClient`: wraps and unwraps Parquet keys under
/// master keys named in a `LocalKeyring` or `AzureKeyVault`, in the format amlguard writes.
/// What `rotate_parquet_keys` did.
#[pyclass(
    frozen,
    module = "amlguard",
    name = "ParquetKeyRotationReport",
    get_all
)]
pub(crate) struct PyKeyRotationReport {
    key_material_path: String,
    keys_rewrapped: u64,
    kms_wraps: u64,
    kms_unwraps: u64,
    elapsed_seconds: f64,
}

impl From<KeyRotationReport> for PyKeyRotationReport {
    fn from(report: KeyRotationReport) -> Self {
        Self {
            key_material_path: report.key_material_path.display().to_string(),
            keys_rewrapped: report.keys_rewrapped,
            kms_wraps: report.kms_calls.wraps,
            kms_unwraps: report.kms_calls.unwraps,
            elapsed_seconds: report.elapsed_seconds,
        }
    }
}

#[pymethods]
impl PyKeyRotationReport {
    #[getter]
    fn kms_calls(&self) -> u64 {
        self.kms_wraps + self.kms_unwraps
    }

    fn __repr__(&self) -> String {
        format!(
            "ParquetKeyRotationReport(key_material_path='{}', keys_rewrapped={}, kms_wraps={}, kms_unwraps={}, elapsed_seconds={:.3})",
            self.key_material_path,
            self.keys_rewrapped,
            self.kms_wraps,
            self.kms_unwraps,
            self.elapsed_seconds,
        )
    }
}

/// Re-wrap a Parquet file's external key material under the latest master key versions.
#[pyfunction]
#[pyo3(signature = (path, *, keys, double_wrapping=true))]
pub(crate) fn rotate_parquet_keys(
    py: Python<'_>,
    path: &str,
    keys: &Bound<'_, PyAny>,
    double_wrapping: bool,
) -> PyResult<PyKeyRotationReport> {
    let keys = master_keys(keys)?;
    let source = Location::parse(path, &Default::default())?;
    let report = run_blocking(py, &RunControl::new(), None, |_| {
        crate::pme::rotate_parquet_keys(&source, keys, double_wrapping)
    })?;
    Ok(report.into())
}

#[pyclass(frozen, module = "amlguard", name = "_ParquetKms")]
pub(crate) struct PyParquetKms {
    inner: Arc<AmlguardKms>,
}

#[pymethods]
impl PyParquetKms {
    #[new]
    fn new(keys: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            inner: Arc::new(AmlguardKms::new(master_keys(keys)?)),
        })
    }

    /// Wrap `key_bytes` under the latest version of master key `master_key_identifier`.
    fn wrap_key(
        &self,
        py: Python<'_>,
        key_bytes: Vec<u8>,
        master_key_identifier: &str,
    ) -> PyResult<String> {
        let kms = self.inner.clone();
        let key_bytes = zeroize::Zeroizing::new(key_bytes);
        run_blocking(py, &RunControl::new(), None, |_| {
            kms.wrap(&key_bytes, master_key_identifier)
        })
    }

    /// Unwrap a key wrapped by `wrap_key` under master key `master_key_identifier`.
    fn unwrap_key(
        &self,
        py: Python<'_>,
        wrapped_key: &str,
        master_key_identifier: &str,
    ) -> PyResult<Py<PyBytes>> {
        let kms = self.inner.clone();
        let key = run_blocking(py, &RunControl::new(), None, |_| {
            kms.unwrap(wrapped_key, master_key_identifier)
        })?;
        Ok(PyBytes::new(py, &key).unbind())
    }

    /// `(wraps, unwraps)`: key-provider calls made so far.
    #[getter]
    fn calls(&self) -> (u64, u64) {
        let calls = self.inner.calls();
        (calls.wraps, calls.unwraps)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}
