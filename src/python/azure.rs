//! Python face of [`crate::keys::azure`]: `AzureKeyVault`, its KEKs, and thin envelope glue
//! (`encrypt_bytes` / `decrypt_bytes` over any mix of KEKs) until the envelope module has its own.
//!
//! A Python credential (any object with `get_token(*scopes)`, e.g. from `azure-identity`) is
//! bridged into the azure_core pipeline: the pipeline calls it, under the GIL, only when it needs
//! a token, and caches the token until shortly before it expires. Every call that may reach Key
//! Vault releases the GIL first, so the bridge can take it from the I/O threads.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error as AzureError, ErrorKind as AzureErrorKind};
use azure_core::time::OffsetDateTime;
use pyo3::prelude::*;

use super::keys::PyKek;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use super::run::run_blocking;
use crate::envelope::EncryptionContext;
use crate::error::Error;
use crate::keys::azure::{NamedCredential, RetryLimits};
use crate::keys::{AzureKek, AzureKeyVault, AzureKeyVaultOptions, DekCacheLimits};
use crate::keys::{KeyEncryptionKey, KeyWrapAlgorithm};
use crate::parallel::RunControl;

/// A Python object with `get_token(*scopes) -> AccessToken(token, expires_on)`.
pub(crate) struct PyTokenCredential {
    credential: Py<PyAny>,
}

impl PyTokenCredential {
    pub(crate) fn new(credential: Py<PyAny>) -> Self {
        Self { credential }
    }
}

impl std::fmt::Debug for PyTokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PyTokenCredential")
    }
}

#[async_trait::async_trait]
impl TokenCredential for PyTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let fetched: PyResult<(String, i64)> = Python::attach(|py| {
            let token = self
                .credential
                .call_method1(py, "get_token", PyTuple::new(py, scopes)?)?;
            let token = token.bind(py);
            Ok((
                token.getattr("token")?.extract()?,
                token.getattr("expires_on")?.extract()?,
            ))
        });
        let (token, expires_on) = fetched.map_err(|e| {
            AzureError::with_message(
                AzureErrorKind::Credential,
                format!("the Python credential's get_token failed: {e}"),
            )
        })?;
        let expires_on = OffsetDateTime::from_unix_timestamp(expires_on).map_err(|e| {
            AzureError::with_message(
                AzureErrorKind::Credential,
                format!("the Python credential returned a bad expires_on: {e}"),
            )
        })?;
        Ok(AccessToken::new(token, expires_on))
    }
}

fn seconds(name: &'static str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Error::InvalidArgument {
            name,
            message: format!("{value} is not a non-negative number of seconds"),
        }
        .into()
    })
}

/// An Azure Key Vault (or Managed HSM) as a key provider.
#[pyclass(frozen, module = "amlguard", name = "AzureKeyVault")]
pub(crate) struct PyAzureKeyVault {
    pub(crate) inner: AzureKeyVault,
}

#[pymethods]
impl PyAzureKeyVault {
    #[new]
    #[pyo3(signature = (url, credential=None, *, ca_bundle=None, timeout_seconds=30.0, max_retries=8, max_retry_delay_seconds=30.0, max_total_seconds=120.0, cache_ttl_seconds=300.0, api_version=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: &str,
        credential: Option<Bound<'_, PyAny>>,
        ca_bundle: Option<std::path::PathBuf>,
        timeout_seconds: f64,
        max_retries: u32,
        max_retry_delay_seconds: f64,
        max_total_seconds: f64,
        cache_ttl_seconds: f64,
        api_version: Option<String>,
    ) -> PyResult<Self> {
        let named = match credential {
            Some(credential) => {
                if !credential.hasattr("get_token")? {
                    return Err(pyo3::exceptions::PyTypeError::new_err(
                        "credential must have a get_token(*scopes) method (e.g. an azure-identity credential)",
                    ));
                }
                let type_name = credential.get_type().name()?.to_string();
                Some(NamedCredential {
                    description: format!("Python credential {type_name}"),
                    credential: Arc::new(PyTokenCredential {
                        credential: credential.unbind(),
                    }),
                })
            }
            None => None,
        };
        let cache_ttl = seconds("cache_ttl_seconds", cache_ttl_seconds)?;
        let options = AzureKeyVaultOptions {
            ca_bundle,
            request_timeout: seconds("timeout_seconds", timeout_seconds)?,
            retry: RetryLimits {
                max_retries,
                max_delay: seconds("max_retry_delay_seconds", max_retry_delay_seconds)?,
                max_total: seconds("max_total_seconds", max_total_seconds)?,
                ..RetryLimits::default()
            },
            dek_cache: (!cache_ttl.is_zero()).then(|| DekCacheLimits {
                ttl: cache_ttl,
                ..DekCacheLimits::default()
            }),
            api_version,
        };
        Ok(Self {
            inner: AzureKeyVault::new(url, named, options)?,
        })
    }

    /// The vault URL.
    #[getter]
    fn url(&self) -> String {
        self.inner.url().to_owned()
    }

    /// The identity calls are made as (as far as known; never a secret).
    #[getter]
    fn identity(&self) -> String {
        self.inner.identity()
    }

    /// The KEK for key ``name``, pinned to ``version`` (default: the latest, resolved now).
    #[pyo3(signature = (name, version=None, algorithm=None))]
    fn kek(
        &self,
        py: Python<'_>,
        name: &str,
        version: Option<&str>,
        algorithm: Option<&str>,
    ) -> PyResult<PyAzureKek> {
        let algorithm = algorithm.map(KeyWrapAlgorithm::parse).transpose()?;
        let vault = self.inner.clone();
        let kek = run_blocking(py, &RunControl::new(), None, |_| {
            vault.kek(name, version, algorithm)
        })?;
        Ok(PyAzureKek {
            inner: Arc::new(kek),
        })
    }

    /// ``(retries, seconds waited)`` over every call of this vault so far.
    fn retry_stats(&self) -> (u64, f64) {
        let stats = self.inner.retry_stats();
        (stats.retries(), stats.waited().as_secs_f64())
    }

    /// Forget every cached data key (the next unwrap of each calls Key Vault again).
    fn clear_cache(&self) {
        if let Some(cache) = self.inner.dek_cache() {
            cache.clear();
        }
    }

    fn __repr__(&self) -> String {
        format!("AzureKeyVault(url='{}')", self.inner.url())
    }
}

/// One Key Vault key version as a key-encryption key.
#[pyclass(frozen, module = "amlguard", name = "AzureKek")]
pub(crate) struct PyAzureKek {
    pub(crate) inner: Arc<AzureKek>,
}

#[pymethods]
impl PyAzureKek {
    /// Full key id with version, as recorded in headers.
    #[getter]
    fn key_id(&self) -> String {
        self.inner.key_id()
    }

    /// Key name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// Pinned key version.
    #[getter]
    fn version(&self) -> String {
        self.inner.version().to_owned()
    }

    /// Wrap algorithm (``RSA-OAEP-256``, ``RSA-OAEP`` or ``A256KW``).
    #[getter]
    fn algorithm(&self) -> String {
        self.inner.wrap_algorithm().to_owned()
    }

    /// Provider name recorded in headers.
    #[getter]
    fn provider(&self) -> String {
        self.inner.provider().to_owned()
    }

    /// Wrap ``key`` (a data key) with Key Vault's ``wrapkey``.
    fn wrap(&self, py: Python<'_>, key: Vec<u8>) -> PyResult<Py<PyBytes>> {
        let kek = self.inner.clone();
        let wrapped = run_blocking(py, &RunControl::new(), None, |_| kek.wrap(&key))?;
        Ok(PyBytes::new(py, &wrapped).unbind())
    }

    /// Unwrap ``wrapped`` with Key Vault's ``unwrapkey`` under ``key_id`` (default: this
    /// version) and ``algorithm`` (default: this KEK's). Goes through the vault's DEK cache.
    #[pyo3(signature = (wrapped, key_id=None, algorithm=None))]
    fn unwrap(
        &self,
        py: Python<'_>,
        wrapped: Vec<u8>,
        key_id: Option<String>,
        algorithm: Option<String>,
    ) -> PyResult<Py<PyBytes>> {
        let kek = self.inner.clone();
        let key_id = key_id.unwrap_or_else(|| kek.key_id());
        let algorithm = algorithm.unwrap_or_else(|| kek.wrap_algorithm().to_owned());
        let dek = run_blocking(py, &RunControl::new(), None, |_| {
            kek.unwrap_recorded(&wrapped, &key_id, &algorithm)
        })?;
        Ok(PyBytes::new(py, &dek).unbind())
    }

    fn __repr__(&self) -> String {
        format!(
            "AzureKek(key_id='{}', algorithm='{}')",
            self.inner.key_id(),
            self.inner.wrap_algorithm()
        )
    }
}

pub(crate) fn context_from(context: Option<&Bound<'_, PyDict>>) -> PyResult<EncryptionContext> {
    let mut out = EncryptionContext::new();
    if let Some(context) = context {
        for (key, value) in context.iter() {
            out.insert(key.extract()?, value.extract()?);
        }
    }
    Ok(out)
}

/// The KEKs a call was given: an `AzureKek` or `Kek`, or a list of them.
pub(crate) fn keks_from(keks: &Bound<'_, PyAny>) -> PyResult<Vec<Arc<dyn KeyEncryptionKey>>> {
    let one = |item: &Bound<'_, PyAny>| -> Option<Arc<dyn KeyEncryptionKey>> {
        if let Ok(kek) = item.cast::<PyAzureKek>() {
            let kek: Arc<dyn KeyEncryptionKey> = kek.get().inner.clone();
            return Some(kek);
        }
        item.cast::<PyKek>().ok().map(|kek| kek.get().inner.clone())
    };
    if let Some(kek) = one(keks) {
        return Ok(vec![kek]);
    }
    let mut out = Vec::new();
    for item in keks.try_iter()? {
        out.push(one(&item?).ok_or_else(|| {
            pyo3::exceptions::PyTypeError::new_err(
                "keks must be a Kek / AzureKek or a list of them",
            )
        })?);
    }
    Ok(out)
}
