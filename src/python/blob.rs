//! Python face of [`crate::io::location`] and [`crate::io::blob`]: `encrypt_file`,
//! `decrypt_file` and `open_encrypted` over local paths and `az://` / `abfss://` URLs.

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::azure::{context_from, keks_from, PyTokenCredential};
use super::envelope::PyEnvelopeReport;
use super::run::run_blocking;
use crate::envelope::{DecryptOptions, DecryptingReader, EncryptOptions};
use crate::error::Error;
use crate::io::blob::StorageOptions;
use crate::io::location::{self, Location, ReadSeek};
use crate::keys::KeyEncryptionKey;
use crate::parallel::RunControl;

/// `storage_options` from Python: strings, plus `credential` (an object with `get_token`) and
/// the integers `part_size_bytes` / `max_parts_in_flight` / `read_ahead_bytes`.
pub(crate) fn storage_options_from(
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<StorageOptions> {
    let mut out = StorageOptions::default();
    let Some(options) = options else {
        return Ok(out);
    };
    for (key, value) in options.iter() {
        let key: String = key.extract()?;
        match key.as_str() {
            "credential" => {
                if !value.hasattr("get_token")? {
                    return Err(pyo3::exceptions::PyTypeError::new_err(
                        "storage_options['credential'] must have a get_token(*scopes) method",
                    ));
                }
                out.credential = Some(Arc::new(PyTokenCredential::new(value.unbind())));
            }
            "part_size_bytes" => out.part_size_bytes = value.extract()?,
            "max_parts_in_flight" => out.max_parts_in_flight = value.extract()?,
            "read_ahead_bytes" => out.read_ahead_bytes = value.extract()?,
            _ => {
                let text = if let Ok(flag) = value.extract::<bool>() {
                    flag.to_string()
                } else {
                    value.str()?.to_string()
                };
                out.options.push((key, text));
            }
        }
    }
    Ok(out)
}

fn kek_refs(keks: &[Arc<dyn KeyEncryptionKey>]) -> Vec<&dyn KeyEncryptionKey> {
    keks.iter().map(|k| k.as_ref()).collect()
}

/// Encrypt ``source`` into an amlguard container at ``destination`` (paths or blob URLs).
#[pyfunction]
#[pyo3(name = "encrypt_location", signature = (source, destination, *, kek, context=None, storage_options=None, segment_size_bytes=None, threads=None, dek_reuse=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn encrypt_file(
    py: Python<'_>,
    source: &str,
    destination: &str,
    kek: &Bound<'_, PyAny>,
    context: Option<&Bound<'_, PyDict>>,
    storage_options: Option<&Bound<'_, PyDict>>,
    segment_size_bytes: Option<usize>,
    threads: Option<usize>,
    dek_reuse: Option<PyRef<'_, super::reuse::PyDekReuse>>,
) -> PyResult<PyEnvelopeReport> {
    let keks = keks_from(kek)?;
    let context = context_from(context)?;
    let options = storage_options_from(storage_options)?;
    let mut encrypt_options = EncryptOptions {
        threads,
        dek_reuse: dek_reuse.map(|r| r.inner.clone()),
        ..EncryptOptions::default()
    };
    if let Some(size) = segment_size_bytes {
        encrypt_options.segment_size_bytes = size;
    }
    let report = run_blocking(py, &RunControl::new(), None, |_| {
        let source = Location::parse(source, &options)?;
        let destination = Location::parse(destination, &options)?;
        location::encrypt(
            &source,
            &destination,
            &kek_refs(&keks),
            &context,
            &encrypt_options,
        )
    })?;
    Ok(report.into())
}

/// Decrypt the container at ``source`` into ``destination`` (paths or blob URLs).
#[pyfunction]
#[pyo3(name = "decrypt_location", signature = (source, destination, *, kek, context=None, storage_options=None, threads=None))]
pub(crate) fn decrypt_file(
    py: Python<'_>,
    source: &str,
    destination: &str,
    kek: &Bound<'_, PyAny>,
    context: Option<&Bound<'_, PyDict>>,
    storage_options: Option<&Bound<'_, PyDict>>,
    threads: Option<usize>,
) -> PyResult<PyEnvelopeReport> {
    let keks = keks_from(kek)?;
    let context = context_from(context)?;
    let options = storage_options_from(storage_options)?;
    let report = run_blocking(py, &RunControl::new(), None, |_| {
        let source = Location::parse(source, &options)?;
        let destination = Location::parse(destination, &options)?;
        location::decrypt(
            &source,
            &destination,
            &kek_refs(&keks),
            &context,
            &DecryptOptions {
                threads,
                ..DecryptOptions::default()
            },
        )
    })?;
    Ok(report.into())
}

/// A decrypted, seekable, read-only view of an amlguard container.
#[pyclass(frozen, module = "amlguard", name = "EncryptedReader")]
pub(crate) struct PyEncryptedReader {
    reader: Mutex<Option<DecryptingReader<Box<dyn ReadSeek>>>>,
    size: u64,
    name: String,
    fetched: Option<Arc<crate::io::blob::ReadStats>>,
}

impl PyEncryptedReader {
    fn with_reader<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut DecryptingReader<Box<dyn ReadSeek>>) -> std::io::Result<T> + Send,
    ) -> PyResult<T> {
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let Some(reader) = guard.as_mut() else {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "I/O operation on a closed EncryptedReader",
            ));
        };
        let name = self.name.clone();
        run_blocking(py, &RunControl::new(), None, move |_| {
            work(reader).map_err(|e| crate::envelope::from_io_error(e, "reading", &name))
        })
    }
}

#[pymethods]
impl PyEncryptedReader {
    /// Plaintext size in bytes (authenticated).
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    /// Container bytes fetched from Blob Storage so far (``None`` for a local file).
    #[getter]
    fn bytes_fetched(&self) -> Option<u64> {
        self.fetched.as_ref().map(|stats| stats.bytes())
    }

    /// Read up to ``size`` bytes (all that is left when negative); each segment is
    /// authenticated before any of its bytes are returned.
    #[pyo3(signature = (size=-1), text_signature = "(self, size=-1)")]
    fn read(&self, py: Python<'_>, size: i64) -> PyResult<Py<PyBytes>> {
        let data = self.with_reader(py, move |reader| {
            let mut out = Vec::new();
            if size < 0 {
                reader.read_to_end(&mut out)?;
            } else {
                reader.take(size as u64).read_to_end(&mut out)?;
            }
            Ok(out)
        })?;
        Ok(PyBytes::new(py, &data).unbind())
    }

    /// Move to ``offset`` relative to ``whence`` (0 start, 1 current, 2 end); returns the
    /// new position.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        let target = match whence {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| {
                PyErr::from(Error::InvalidArgument {
                    name: "offset",
                    message: "a negative offset from the start".into(),
                })
            })?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "whence must be 0, 1 or 2",
                ))
            }
        };
        self.with_reader(py, move |reader| reader.seek(target))
    }

    /// The current position.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_reader(py, |reader| reader.stream_position())
    }

    /// Release the underlying file or blob.
    fn close(&self) {
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn readable(&self) -> bool {
        true
    }

    fn seekable(&self) -> bool {
        true
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _kind: Option<Bound<'_, PyAny>>,
        _value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("EncryptedReader({}, size={})", self.name, self.size)
    }
}

/// Open the container at ``source`` (a path or blob URL) for random-access reading.
#[pyfunction]
#[pyo3(name = "open_encrypted_location", signature = (source, *, kek, context=None, storage_options=None))]
pub(crate) fn open_encrypted(
    py: Python<'_>,
    source: &str,
    kek: &Bound<'_, PyAny>,
    context: Option<&Bound<'_, PyDict>>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyEncryptedReader> {
    let keks = keks_from(kek)?;
    let context = context_from(context)?;
    let options = storage_options_from(storage_options)?;
    let (reader, name, fetched) = run_blocking(py, &RunControl::new(), None, |_| {
        let location = Location::parse(source, &options)?;
        let name = location.display_name();
        match &location {
            Location::Blob(blob) => {
                // Keep the blob reader's counters before it disappears into the decryptor.
                let input = blob.reader()?;
                let fetched = input.stats();
                let input: Box<dyn ReadSeek> = Box::new(input);
                let reader =
                    DecryptingReader::open_named(input, &kek_refs(&keks), &context, name.clone())?;
                Ok((reader, name, Some(fetched)))
            }
            Location::Local(_) => {
                let reader = location::open_encrypted(&location, &kek_refs(&keks), &context)?;
                Ok((reader, name, None))
            }
        }
    })?;
    Ok(PyEncryptedReader {
        size: reader.plaintext_len(),
        reader: Mutex::new(Some(reader)),
        name,
        fetched,
    })
}

/// Mask a file or dataset where either end may be a blob URL (``az://container/prefix/`` for
/// a dataset of Parquet/CSV blobs); local-only calls behave exactly like ``mask_file``.
#[pyfunction]
#[pyo3(signature = (source, destination, policy, keyring=None, threads=None, batch_rows=None, progress=None, storage_options=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mask_location(
    py: Python<'_>,
    source: &str,
    destination: &str,
    policy: &Bound<'_, super::policy::PyCorePolicy>,
    keyring: Option<&Bound<'_, super::keys::PyLocalKeyring>>,
    threads: Option<usize>,
    batch_rows: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<super::io::PyMaskReport> {
    let policy = &policy.get().inner;
    let keys = super::policy::resolve_keys(policy, keyring)?;
    let storage = storage_options_from(storage_options)?;
    let mut options = crate::io::MaskOptions {
        threads,
        ..crate::io::MaskOptions::default()
    };
    if let Some(rows) = batch_rows.filter(|r| *r > 0) {
        options.batch_rows = rows;
    }
    let control = RunControl::new();
    let report = run_blocking(py, &control, progress, |control| {
        location::mask(
            source,
            destination,
            &storage,
            policy,
            &keys as &dyn crate::keys::KeyProvider,
            &options,
            control,
        )
    })?;
    Ok(report.into())
}
