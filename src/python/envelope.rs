//! Python face of [`crate::envelope`]: encrypted containers in files and bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::azure::keks_from;
use super::reuse::PyDekReuse;
use super::run::run_blocking;
use crate::envelope::{
    self, DecryptOptions, DecryptingReader, EncryptOptions, EnvelopeReport, HeaderInfo,
    OpenFromBuffer, SealIntoBuffer,
};
use crate::keys::KeyEncryptionKey;
use crate::parallel::RunControl;

fn kek_refs(keks: &[Arc<dyn KeyEncryptionKey>]) -> Vec<&dyn KeyEncryptionKey> {
    keks.iter().map(|k| k.as_ref()).collect()
}

fn encrypt_options(
    segment_size_bytes: Option<usize>,
    threads: Option<usize>,
    dek_reuse: Option<&PyDekReuse>,
) -> EncryptOptions {
    let mut options = EncryptOptions {
        threads,
        dek_reuse: dek_reuse.map(|r| r.inner.clone()),
        ..EncryptOptions::default()
    };
    if let Some(size) = segment_size_bytes {
        options.segment_size_bytes = size;
    }
    options
}

/// What an encrypt or decrypt call did.
#[pyclass(frozen, module = "amlguard", name = "EnvelopeReport", get_all)]
pub(crate) struct PyEnvelopeReport {
    plaintext_bytes: u64,
    container_bytes: u64,
    segments: u64,
    key_ids: Vec<String>,
    elapsed_seconds: f64,
}

impl From<EnvelopeReport> for PyEnvelopeReport {
    fn from(r: EnvelopeReport) -> Self {
        Self {
            plaintext_bytes: r.plaintext_bytes,
            container_bytes: r.container_bytes,
            segments: r.segments,
            key_ids: r.key_ids,
            elapsed_seconds: r.elapsed_seconds,
        }
    }
}

#[pymethods]
impl PyEnvelopeReport {
    fn __repr__(&self) -> String {
        let rate = if self.elapsed_seconds > 0.0 {
            self.plaintext_bytes as f64 / self.elapsed_seconds / 1e6
        } else {
            0.0
        };
        format!(
            "EnvelopeReport(plaintext_bytes={}, container_bytes={}, segments={}, key_ids={:?}, elapsed_seconds={:.3}, mb_per_second={rate:.0})",
            self.plaintext_bytes, self.container_bytes, self.segments, self.key_ids, self.elapsed_seconds
        )
    }
}

/// Facts from a container's header; never secret.
#[pyclass(frozen, module = "amlguard", name = "HeaderInfo", get_all)]
pub(crate) struct PyHeaderInfo {
    format_version: u8,
    suite: String,
    segment_size_bytes: u32,
    context: BTreeMap<String, String>,
    key_ids: Vec<String>,
    wrap_algorithms: Vec<String>,
    header_len_bytes: u64,
    segments: Option<u64>,
    plaintext_len_bytes: Option<u64>,
}

impl From<HeaderInfo> for PyHeaderInfo {
    fn from(info: HeaderInfo) -> Self {
        Self {
            format_version: info.format_version,
            suite: info.suite.clone(),
            segment_size_bytes: info.segment_size_bytes,
            context: info.context.clone(),
            key_ids: info.key_ids(),
            wrap_algorithms: info
                .wrapped_keys
                .iter()
                .map(|k| k.wrap_algorithm.clone())
                .collect(),
            header_len_bytes: info.header_len_bytes,
            segments: info.segments,
            plaintext_len_bytes: info.plaintext_len_bytes,
        }
    }
}

#[pymethods]
impl PyHeaderInfo {
    /// The header facts as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("format_version", self.format_version)?;
        dict.set_item("suite", &self.suite)?;
        dict.set_item("segment_size_bytes", self.segment_size_bytes)?;
        dict.set_item("context", self.context.clone())?;
        dict.set_item("key_ids", self.key_ids.clone())?;
        dict.set_item("wrap_algorithms", self.wrap_algorithms.clone())?;
        dict.set_item("header_len_bytes", self.header_len_bytes)?;
        dict.set_item("segments", self.segments)?;
        dict.set_item("plaintext_len_bytes", self.plaintext_len_bytes)?;
        Ok(dict)
    }

    fn __repr__(&self) -> String {
        format!(
            "HeaderInfo(format_version={}, suite='{}', segment_size_bytes={}, context={:?}, key_ids={:?}, segments={:?}, plaintext_len_bytes={:?})",
            self.format_version,
            self.suite,
            self.segment_size_bytes,
            self.context,
            self.key_ids,
            self.segments,
            self.plaintext_len_bytes
        )
    }
}

/// Encrypt bytes into a container, sealed straight into the new bytes object.
#[pyfunction]
#[pyo3(signature = (data, keks, context, segment_size_bytes=None, dek_reuse=None))]
pub(crate) fn encrypt_bytes<'py>(
    py: Python<'py>,
    data: &[u8],
    keks: &Bound<'py, PyAny>,
    context: BTreeMap<String, String>,
    segment_size_bytes: Option<usize>,
    dek_reuse: Option<PyRef<'py, PyDekReuse>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let keks = keks_from(keks)?;
    let refs = kek_refs(&keks);
    let options = encrypt_options(segment_size_bytes, None, dek_reuse.as_deref());
    let sealer = py.detach(|| SealIntoBuffer::new(data.len(), &refs, &context, &options))?;
    PyBytes::new_with(py, sealer.sealed_len(), |buffer| {
        py.detach(|| sealer.seal(data, buffer)).map_err(PyErr::from)
    })
}

/// Decrypt a container held in memory; each segment is decrypted straight into the new bytes,
/// which are discarded unless every segment verifies.
#[pyfunction]
#[pyo3(signature = (blob, keks, context, threads=None))]
pub(crate) fn decrypt_bytes<'py>(
    py: Python<'py>,
    blob: &[u8],
    keks: &Bound<'py, PyAny>,
    context: BTreeMap<String, String>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let keks = keks_from(keks)?;
    let refs = kek_refs(&keks);
    let opener = py.detach(|| OpenFromBuffer::new(blob, &refs, &context))?;
    let len = usize::try_from(opener.plaintext_len())
        .map_err(|_| PyValueError::new_err("plaintext too large for this platform"))?;
    PyBytes::new_with(py, len, |buffer| {
        py.detach(|| opener.open_into(buffer, threads))
            .map_err(PyErr::from)
    })
}

/// Encrypt a file into a container (written atomically). `progress(bytes_done, bytes_total)`
/// is called about ten times a second; Ctrl-C stops at the next segment batch.
#[pyfunction]
#[pyo3(signature = (source, destination, keks, context, segment_size_bytes=None, threads=None, dek_reuse=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn encrypt_file<'py>(
    py: Python<'py>,
    source: PathBuf,
    destination: PathBuf,
    keks: &Bound<'py, PyAny>,
    context: BTreeMap<String, String>,
    segment_size_bytes: Option<usize>,
    threads: Option<usize>,
    dek_reuse: Option<PyRef<'py, PyDekReuse>>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyEnvelopeReport> {
    let keks = keks_from(keks)?;
    let refs = kek_refs(&keks);
    let control = Arc::new(RunControl::new());
    let options = EncryptOptions {
        control: Some(Arc::clone(&control)),
        ..encrypt_options(segment_size_bytes, threads, dek_reuse.as_deref())
    };
    let report = run_blocking(py, &control, progress, |_| {
        envelope::encrypt_file(&source, &destination, &refs, &context, &options)
    })?;
    Ok(report.into())
}

/// Decrypt a container file; the destination appears only once every segment verified.
/// `progress` and Ctrl-C as for `encrypt_file`.
#[pyfunction]
#[pyo3(signature = (source, destination, keks, context, threads=None, progress=None))]
pub(crate) fn decrypt_file<'py>(
    py: Python<'py>,
    source: PathBuf,
    destination: PathBuf,
    keks: &Bound<'py, PyAny>,
    context: BTreeMap<String, String>,
    threads: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyEnvelopeReport> {
    let keks = keks_from(keks)?;
    let refs = kek_refs(&keks);
    let control = Arc::new(RunControl::new());
    let options = DecryptOptions {
        threads,
        control: Some(Arc::clone(&control)),
    };
    let report = run_blocking(py, &control, progress, |_| {
        envelope::decrypt_file(&source, &destination, &refs, &context, &options)
    })?;
    Ok(report.into())
}

/// Re-wrap a container's data key for key rotation (rewrites the header only).
#[pyfunction]
pub(crate) fn rewrap<'py>(
    py: Python<'py>,
    path: PathBuf,
    old: &Bound<'py, PyAny>,
    new: &Bound<'py, PyAny>,
) -> PyResult<PyHeaderInfo> {
    let (old, new) = (keks_from(old)?, keks_from(new)?);
    let (old_refs, new_refs) = (kek_refs(&old), kek_refs(&new));
    let info = py.detach(|| envelope::rewrap(&path, &old_refs, &new_refs))?;
    Ok(info.into())
}

/// Header facts of a container; needs no key.
#[pyfunction]
pub(crate) fn inspect(path: PathBuf) -> PyResult<PyHeaderInfo> {
    Ok(envelope::inspect(&path)?.into())
}

/// A read-only, seekable view of a container's plaintext. Each segment is authenticated
/// before any of its bytes are returned.
#[pyclass(frozen, module = "amlguard", name = "EncryptedFile")]
pub(crate) struct PyEncryptedFile {
    reader: Mutex<Option<DecryptingReader<File>>>,
    size: u64,
}

impl PyEncryptedFile {
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut DecryptingReader<File>) -> std::io::Result<T>,
    ) -> PyResult<T> {
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let reader = guard
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("I/O operation on closed file"))?;
        f(reader).map_err(io_to_py)
    }
}

fn io_to_py(err: std::io::Error) -> PyErr {
    match err.into_inner() {
        Some(inner) => match inner.downcast::<crate::Error>() {
            Ok(ours) => PyErr::from(*ours),
            Err(other) => pyo3::exceptions::PyOSError::new_err(other.to_string()),
        },
        None => pyo3::exceptions::PyOSError::new_err("I/O error"),
    }
}

#[pymethods]
impl PyEncryptedFile {
    /// Plaintext size in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    /// Read up to `size` bytes (all remaining when negative or omitted).
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&self, py: Python<'py>, size: i64) -> PyResult<Bound<'py, PyBytes>> {
        let position = self.with_reader(|r| r.stream_position())?;
        let remaining = self.size.saturating_sub(position);
        let wanted = if size < 0 {
            remaining
        } else {
            remaining.min(size as u64)
        };
        let wanted = usize::try_from(wanted)
            .map_err(|_| PyValueError::new_err("read size too large for this platform"))?;
        let mut buffer = vec![0u8; wanted];
        let filled = py.detach(|| {
            self.with_reader(|r| {
                let mut filled = 0;
                while filled < buffer.len() {
                    match r.read(&mut buffer[filled..])? {
                        0 => break,
                        n => filled += n,
                    }
                }
                Ok(filled)
            })
        })?;
        Ok(PyBytes::new(py, &buffer[..filled]))
    }

    /// Move to `offset` (whence 0: from start, 1: from current, 2: from end); returns the new position.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, offset: i64, whence: i32) -> PyResult<u64> {
        let target = match whence {
            0 => SeekFrom::Start(
                u64::try_from(offset)
                    .map_err(|_| PyValueError::new_err("negative seek position"))?,
            ),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => return Err(PyValueError::new_err("whence must be 0, 1 or 2")),
        };
        self.with_reader(|r| r.seek(target))
    }

    /// Current position.
    fn tell(&self) -> PyResult<u64> {
        self.with_reader(|r| r.stream_position())
    }

    fn readable(&self) -> bool {
        true
    }

    fn seekable(&self) -> bool {
        true
    }

    fn writable(&self) -> bool {
        false
    }

    /// Close the underlying file.
    fn close(&self) {
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether the file is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close();
        false
    }
}

/// Open a container for random-access reading of its plaintext.
#[pyfunction]
pub(crate) fn open_encrypted<'py>(
    path: PathBuf,
    keks: &Bound<'py, PyAny>,
    context: BTreeMap<String, String>,
) -> PyResult<PyEncryptedFile> {
    let keks = keks_from(keks)?;
    let refs = kek_refs(&keks);
    let file = File::open(&path).map_err(|e| crate::Error::io("opening", &path, e))?;
    let reader = DecryptingReader::open(file, &refs, &context)?;
    Ok(PyEncryptedFile {
        size: reader.plaintext_len(),
        reader: Mutex::new(Some(reader)),
    })
}
