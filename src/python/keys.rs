//! Python face of [`crate::keys::LocalKeyring`].

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

use super::audit::PyAuditLog;
use crate::audit::{AuditEvent, Outcome};
use crate::keys::{CachingKek, DekCacheLimits, KeyEncryptionKey, LocalKeyring};

/// A key-encryption key: wraps and unwraps data keys. Unwrapped data keys are cached in memory
/// (bounded lifetime and uses, zeroized on eviction) so many files sharing one cost one unwrap.
#[pyclass(frozen, module = "amlguard", name = "Kek")]
pub(crate) struct PyKek {
    pub(crate) inner: Arc<dyn KeyEncryptionKey>,
}

#[pymethods]
impl PyKek {
    /// Provider-qualified key id with version, e.g. `local:training-data@2`.
    #[getter]
    fn key_id(&self) -> String {
        self.inner.key_id()
    }

    /// Key provider name.
    #[getter]
    fn provider(&self) -> String {
        self.inner.provider().to_owned()
    }

    /// Wrapping algorithm recorded in headers.
    #[getter]
    fn wrap_algorithm(&self) -> String {
        self.inner.wrap_algorithm().to_owned()
    }

    fn __repr__(&self) -> String {
        format!(
            "Kek(key_id='{}', wrap_algorithm='{}')",
            self.inner.key_id(),
            self.inner.wrap_algorithm()
        )
    }
}

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

    /// Add a new version of `name`; older versions stay usable. Returns the new key id. With
    /// `audit` (an `AuditLog` or a path; default `$AMLGUARD_AUDIT_LOG`) the rotation, failed or
    /// not, is recorded with the previous and new key ids.
    #[pyo3(signature = (name, *, audit=None))]
    fn rotate(
        slf: &Bound<'_, Self>,
        name: &str,
        audit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let py = slf.py();
        // One resolution rule for every operation: the Python helper (log object, path or env).
        let log = py
            .import("amlguard.audit")?
            .getattr("ready")?
            .call1((audit,))?;
        let keyring = &slf.get().inner;
        let previous = keyring
            .versions(name)
            .ok()
            .and_then(|v| v.last().map(|last| format!("{name}@{last}")));
        let rotated = keyring.rotate(name).map(|id| id.to_string());
        if let Ok(log) = log.cast::<PyAuditLog>() {
            let mut event = AuditEvent::new("rotate_key");
            event.target.dataset = Some(keyring.path().to_string_lossy().into_owned());
            event.key_ids.extend(previous.clone());
            event.details.insert("key_name".into(), name.into());
            if let Some(previous) = previous {
                event
                    .details
                    .insert("previous_key_id".into(), previous.into());
            }
            match &rotated {
                Ok(id) => {
                    event.key_ids.push(id.clone());
                    event.details.insert("new_key_id".into(), id.clone().into());
                }
                Err(error) => {
                    event.outcome = Outcome::Failure;
                    event.error = Some(error.to_string());
                }
            }
            let log = &log.get().inner;
            py.detach(|| log.append(event))?;
        }
        Ok(rotated?)
    }

    /// Names of all keys.
    fn list_keys(&self) -> PyResult<Vec<String>> {
        Ok(self.inner.list_keys()?)
    }

    /// Versions of one key, ascending.
    fn versions(&self, name: &str) -> PyResult<Vec<u32>> {
        Ok(self.inner.versions(name)?)
    }

    /// The key-encryption key for `name` (latest version, or `version`).
    #[pyo3(signature = (name, version=None))]
    fn kek(&self, name: &str, version: Option<u32>) -> PyResult<PyKek> {
        let kek = match version {
            Some(version) => self.inner.kek_version(name, version)?,
            None => self.inner.kek(name)?,
        };
        Ok(PyKek {
            inner: Arc::new(CachingKek::new(kek, DekCacheLimits::default())),
        })
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
