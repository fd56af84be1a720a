//! Python face of [`crate::keys::LocalKeyring`].

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::keys::LocalKeyring;

/// A directory of named, versioned 256-bit keys (the embedded default key provider).
#[pyclass(frozen, module = "amlguard", name = "LocalKeyring")]
pub(crate) struct PyLocalKeyring {
    pub(crate) inner: LocalKeyring,
}

#[pymethods]
impl PyLocalKeyring {
    #[new]
    #[pyo3(signature = (path=None))]
    fn new(path: Option<PathBuf>) -> PyResult<Self> {
        let inner = match path {
            Some(path) => LocalKeyring::open(path)?,
            None => LocalKeyring::open_default()?,
        };
        Ok(Self { inner })
    }

    /// Where the keyring lives.
    #[getter]
    fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    /// Create version 1 of `name` unless it exists; returns the key id (`name@version`).
    fn ensure_key(&self, name: &str) -> PyResult<String> {
        Ok(self.inner.ensure_key(name)?.to_string())
    }

    /// Add a new version of `name`; older versions stay usable. Returns the new key id.
    fn rotate(&self, name: &str) -> PyResult<String> {
        Ok(self.inner.rotate(name)?.to_string())
    }

    /// Names of all keys.
    fn list_keys(&self) -> PyResult<Vec<String>> {
        Ok(self.inner.list_keys()?)
    }

    /// Versions of one key, ascending.
    fn versions(&self, name: &str) -> PyResult<Vec<u32>> {
        Ok(self.inner.versions(name)?)
    }

    fn __contains__(&self, name: &str) -> PyResult<bool> {
        Ok(!self.inner.versions(name)?.is_empty())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let count = self.inner.list_keys().map(|k| k.len()).unwrap_or(0);
        let path = pyo3::types::PyString::new(py, &self.path()).repr()?;
        Ok(format!("LocalKeyring(path={path}, keys={count})"))
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<(Py<PyAny>, (String,))> {
        let class = slf.get_type().into_any().unbind();
        Ok((class, (slf.get().path(),)))
    }
}
