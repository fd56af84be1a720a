//! Python face of [`crate::envelope::DekReuse`]: one wrapped DEK for a bounded run of containers.

use pyo3::prelude::*;

use crate::envelope::DekReuse;

/// Share one data key between at most `max_files` containers holding at most `max_bytes`
/// plaintext bytes, then mint a fresh one. Pass as `dek_reuse=` to `encrypt_file` /
/// `encrypt_bytes`; safe to share between threads.
#[pyclass(frozen, module = "amlguard", name = "DekReuse")]
pub(crate) struct PyDekReuse {
    pub(crate) inner: DekReuse,
}

#[pymethods]
impl PyDekReuse {
    #[new]
    #[pyo3(signature = (*, max_files=1000, max_bytes=68719476736))]
    fn new(max_files: u64, max_bytes: u64) -> PyResult<Self> {
        Ok(Self {
            inner: DekReuse::new(max_files, max_bytes)?,
        })
    }

    /// Most containers per data key.
    #[getter]
    fn max_files(&self) -> u64 {
        self.inner.max_files()
    }

    /// Most plaintext bytes per data key.
    #[getter]
    fn max_bytes(&self) -> u64 {
        self.inner.max_bytes()
    }

    /// Data keys minted (and wrapped) so far.
    #[getter]
    fn deks_minted(&self) -> u64 {
        self.inner.stats().deks_minted
    }

    /// Containers started so far.
    #[getter]
    fn files(&self) -> u64 {
        self.inner.stats().files
    }

    /// Whether a data key is held in memory now.
    #[getter]
    fn holds_dek(&self) -> bool {
        self.inner.holds_dek()
    }

    /// Retire (and zeroize) the current data key; the next container gets a fresh one.
    fn retire(&self) {
        self.inner.retire();
    }

    fn __repr__(&self) -> String {
        let stats = self.inner.stats();
        format!(
            "DekReuse(max_files={}, max_bytes={}, deks_minted={}, files={}, files_on_current_dek={}, bytes_on_current_dek={})",
            self.inner.max_files(),
            self.inner.max_bytes(),
            stats.deks_minted,
            stats.files,
            stats.files_on_current_dek,
            stats.bytes_on_current_dek
        )
    }
}
