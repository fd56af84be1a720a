//! Python face of [`crate::audit`]: the audit log, its verification report and proofs.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::blob::storage_options_from;
use super::keys::PyLocalKeyring;
use crate::audit::{
    AuditEvent, AuditLog, AuditOptions, InclusionProof, Outcome, SignatureAlgorithm, VerifyReport,
    Witness,
};
use crate::error::Error;
use crate::io::append_blob::AppendBlob;
use crate::keys::LocalKeyring;

/// An append-only, tamper-evident audit log (JSON Lines, hash chain, signed Merkle checkpoints).
#[pyclass(frozen, module = "amlguard", name = "AuditLog")]
pub(crate) struct PyAuditLog {
    pub(crate) inner: AuditLog,
}

fn json_to_py(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

fn py_to_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.extract::<String>() {
        return Ok(text);
    }
    value
        .py()
        .import("json")?
        .call_method1("dumps", (value,))?
        .extract()
}

#[pymethods]
impl PyAuditLog {
    #[new]
    #[pyo3(signature = (path, *, keyring=None, signing_key="audit", witness=None, checkpoint_every=100, storage_options=None, checkpoint_signature="ed25519"))]
    fn new(
        path: PathBuf,
        keyring: Option<&Bound<'_, PyLocalKeyring>>,
        signing_key: &str,
        witness: Option<PathBuf>,
        checkpoint_every: u64,
        storage_options: Option<&Bound<'_, PyDict>>,
        checkpoint_signature: &str,
    ) -> PyResult<Self> {
        let checkpoint_signature: SignatureAlgorithm = checkpoint_signature.parse()?;
        let keyring = match keyring {
            Some(keyring) => keyring.get().inner.clone(),
            None => LocalKeyring::open_default()?,
        };
        let options = AuditOptions {
            keyring: Some(keyring),
            signing_key: signing_key.to_owned(),
            witness,
            checkpoint_every,
            checkpoint_signature,
        };
        let location = path.to_string_lossy();
        let storage = storage_options_from(storage_options)?;
        Ok(Self {
            inner: AuditLog::open_location(&location, &storage, options)?,
        })
    }

    /// The log file.
    #[getter]
    fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    /// The witness file (second copy of the checkpoints), if any.
    #[getter]
    fn witness(&self) -> Option<String> {
        self.inner
            .witness()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// The Ed25519 public key (hex) that signs the checkpoints, or the HMAC key's fingerprint.
    #[getter]
    fn public_key(&self) -> PyResult<String> {
        Ok(self.inner.public_key()?)
    }

    /// Append one record; returns its id. `subjects` are raw identifiers: only their keyed
    /// pseudonyms are written. `details` is a JSON-serialisable mapping of counts and names.
    #[pyo3(signature = (action, *, outcome="success", dataset=None, paths=None, key_ids=None, policy_fingerprint=None, rows=None, bytes=None, subjects=None, details=None, error=None))]
    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        py: Python<'_>,
        action: &str,
        outcome: &str,
        dataset: Option<String>,
        paths: Option<Vec<String>>,
        key_ids: Option<Vec<String>>,
        policy_fingerprint: Option<String>,
        rows: Option<u64>,
        bytes: Option<u64>,
        subjects: Option<Vec<String>>,
        details: Option<&Bound<'_, PyDict>>,
        error: Option<String>,
    ) -> PyResult<u64> {
        let mut event = AuditEvent::new(action);
        event.outcome = match outcome {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            _ => {
                return Err(Error::InvalidArgument {
                    name: "outcome",
                    message: "use 'success' or 'failure'".into(),
                }
                .into())
            }
        };
        event.target.dataset = dataset;
        event.target.paths = paths.unwrap_or_default();
        event.key_ids = key_ids.unwrap_or_default();
        event.policy_fingerprint = policy_fingerprint;
        event.rows = rows;
        event.bytes = bytes;
        event.error = error;
        if let Some(subjects) = subjects {
            if !subjects.is_empty() {
                event
                    .details
                    .insert("subject_key".into(), self.inner.subject_key_id()?.into());
            }
            for subject in subjects {
                event.subjects.push(self.inner.subject_pseudonym(&subject)?);
            }
        }
        if let Some(details) = details {
            let text = py_to_json(details.as_any())?;
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(map)) => event.details.extend(map),
                _ => {
                    return Err(Error::InvalidArgument {
                        name: "details",
                        message: "must be a JSON-serialisable mapping".into(),
                    }
                    .into())
                }
            }
        }
        let log = &self.inner;
        Ok(py.detach(|| log.append(event))?)
    }

    /// Append a signed checkpoint now (unless the last record is one); returns it as a dict.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let log = &self.inner;
        let checkpoint = py.detach(|| log.checkpoint())?;
        let text = serde_json::to_string(&checkpoint)
            .map_err(|e| Error::invalid_data(None, e.to_string()))?;
        json_to_py(py, &text)
    }

    /// An inclusion proof for one record (a plain dict, JSON-serialisable), checkable with
    /// `amlguard.verify_proof` and the public key alone.
    fn prove(&self, py: Python<'_>, record_id: u64) -> PyResult<Py<PyAny>> {
        let log = &self.inner;
        let proof = py.detach(|| log.prove(record_id))?;
        let text =
            serde_json::to_string(&proof).map_err(|e| Error::invalid_data(None, e.to_string()))?;
        json_to_py(py, &text)
    }

    /// Verify the whole log and its witness; returns an `AuditReport` (true when ok).
    #[pyo3(signature = (public_key=None))]
    fn verify(&self, py: Python<'_>, public_key: Option<String>) -> PyResult<PyAuditReport> {
        let log = &self.inner;
        let report = py.detach(|| log.verify(public_key.as_deref()))?;
        Ok(report.into())
    }

    /// The keyed pseudonym under which a subject identifier is recorded.
    fn subject_pseudonym(&self, subject: &str) -> PyResult<String> {
        Ok(self.inner.subject_pseudonym(subject)?)
    }

    /// Ids of the records whose subjects include `subject` (found through its pseudonym).
    fn find_subject(&self, subject: &str) -> PyResult<Vec<u64>> {
        let pseudonym = self.inner.subject_pseudonym(subject)?;
        let data = self.inner.read_all()?;
        let text = String::from_utf8_lossy(&data);
        let mut found = Vec::new();
        for line in text.lines() {
            if let Ok((body, _)) = crate::audit::RecordBody::decode(line) {
                if body.subjects.contains(&pseudonym) {
                    found.push(body.seq);
                }
            }
        }
        Ok(found)
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(usize::try_from(self.inner.len()?).unwrap_or(usize::MAX))
    }

    fn __repr__(&self) -> String {
        format!(
            "AuditLog(path={:?}, witness={:?})",
            self.path(),
            self.witness()
        )
    }
}

/// The result of verifying an audit log. True when every check passed.
#[pyclass(frozen, module = "amlguard", name = "AuditReport", get_all)]
pub(crate) struct PyAuditReport {
    ok: bool,
    first_bad_record: Option<u64>,
    records_checked: u64,
    problem: Option<String>,
    checkpoints_checked: u64,
    witness_checkpoints_checked: u64,
    witness_checked: bool,
    public_key: Option<String>,
    records_after_last_checkpoint: u64,
}

impl From<VerifyReport> for PyAuditReport {
    fn from(report: VerifyReport) -> Self {
        Self {
            ok: report.ok,
            first_bad_record: report.first_bad_record,
            records_checked: report.records_checked,
            problem: report.problem,
            checkpoints_checked: report.checkpoints_checked,
            witness_checkpoints_checked: report.witness_checkpoints_checked,
            witness_checked: report.witness_checked,
            public_key: report.public_key,
            records_after_last_checkpoint: report.records_after_last_checkpoint,
        }
    }
}

#[pymethods]
impl PyAuditReport {
    fn __bool__(&self) -> bool {
        self.ok
    }

    fn __repr__(&self) -> String {
        let bad = self
            .first_bad_record
            .map_or_else(|| "None".to_owned(), |i| i.to_string());
        format!(
            "AuditReport(ok={}, records_checked={}, first_bad_record={bad}, checkpoints_checked={}, witness_checked={}, problem={:?})",
            if self.ok { "True" } else { "False" },
            self.records_checked,
            self.checkpoints_checked,
            if self.witness_checked { "True" } else { "False" },
            self.problem.as_deref().unwrap_or(""),
        )
    }
}

/// Check an inclusion proof (a dict from `AuditLog.prove`, or its JSON text) with the public key
/// alone. Pass `public_key` (hex) to pin the signer; without it only self-consistency is shown.
/// A proof on an HMAC-signed checkpoint needs `keyring`, holding its key.
#[pyfunction]
#[pyo3(signature = (proof, public_key=None, *, keyring=None))]
pub(crate) fn verify_proof(
    proof: &Bound<'_, PyAny>,
    public_key: Option<String>,
    keyring: Option<&Bound<'_, PyLocalKeyring>>,
) -> PyResult<bool> {
    let text = py_to_json(proof)?;
    let Ok(proof) = serde_json::from_str::<InclusionProof>(&text) else {
        return Ok(false);
    };
    let keyring = keyring.map(|k| k.get().inner.clone());
    Ok(crate::audit::verify_proof_with_keyring(
        &proof,
        public_key.as_deref(),
        keyring.as_ref(),
    )?)
}

/// Verify an audit log file or append blob (and optionally its witness); a keyring is needed
/// only for HMAC-signed checkpoints.
#[pyfunction]
#[pyo3(signature = (path, witness=None, public_key=None, storage_options=None, *, keyring=None))]
pub(crate) fn verify_audit_log(
    py: Python<'_>,
    path: PathBuf,
    witness: Option<PathBuf>,
    public_key: Option<String>,
    storage_options: Option<&Bound<'_, PyDict>>,
    keyring: Option<&Bound<'_, PyLocalKeyring>>,
) -> PyResult<PyAuditReport> {
    let keyring = keyring.map(|k| k.get().inner.clone());
    let location = path.to_string_lossy().into_owned();
    let storage = storage_options_from(storage_options)?;
    let witness = match witness {
        Some(witness) => Some(Witness::open(&witness.to_string_lossy(), &storage)?),
        None => None,
    };
    let report = if crate::io::blob::is_blob_url(&location) {
        let blob = AppendBlob::open(&location, &storage)?;
        py.detach(|| {
            let data = blob.read_from(0)?;
            crate::audit::verify_reader_with_keyring(
                &path,
                data.as_slice(),
                witness.as_ref(),
                public_key.as_deref(),
                keyring.as_ref(),
            )
        })?
    } else {
        py.detach(|| {
            let file = std::fs::File::open(&path)
                .map_err(|e| Error::io("opening the audit log", &path, e))?;
            crate::audit::verify_reader_with_keyring(
                &path,
                file,
                witness.as_ref(),
                public_key.as_deref(),
                keyring.as_ref(),
            )
        })?
    };
    Ok(report.into())
}
