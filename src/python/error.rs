//! The one conversion from [`crate::Error`] to Python exceptions.
//!
//! Each variant maps to exactly one class from `amlguard.exceptions` (all under
//! `amlguard.AmlguardError`); file-system errors also subclass the built-in
//! `FileNotFoundError` / `PermissionError`, and cancellation becomes `KeyboardInterrupt`.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::PyErr;

use crate::error::Error;

pyo3::import_exception!(amlguard.exceptions, PolicyError);
pyo3::import_exception!(amlguard.exceptions, ColumnNotFoundError);
pyo3::import_exception!(amlguard.exceptions, ColumnTypeError);
pyo3::import_exception!(amlguard.exceptions, ColumnDeniedError);
pyo3::import_exception!(amlguard.exceptions, KeyNotFoundError);
pyo3::import_exception!(amlguard.exceptions, KeyringError);
pyo3::import_exception!(amlguard.exceptions, InvalidDataError);
pyo3::import_exception!(amlguard.exceptions, DecryptionError);
pyo3::import_exception!(amlguard.exceptions, NotAnEnvelopeError);
pyo3::import_exception!(amlguard.exceptions, UnsupportedFormatError);
pyo3::import_exception!(amlguard.exceptions, UnsupportedSuiteError);
pyo3::import_exception!(amlguard.exceptions, TruncatedHeaderError);
pyo3::import_exception!(amlguard.exceptions, MalformedHeaderError);
pyo3::import_exception!(amlguard.exceptions, NoMatchingKeyError);
pyo3::import_exception!(amlguard.exceptions, KeyUsageLimitError);
pyo3::import_exception!(amlguard.exceptions, InvalidArgumentError);
pyo3::import_exception!(amlguard.exceptions, RandomSourceError);
pyo3::import_exception!(amlguard.exceptions, RecognizerError);
pyo3::import_exception!(amlguard.exceptions, StorageError);
pyo3::import_exception!(amlguard.exceptions, StorageNotFoundError);
pyo3::import_exception!(amlguard.exceptions, StoragePermissionError);
pyo3::import_exception!(amlguard.exceptions, AuditLogError);
pyo3::import_exception!(amlguard.exceptions, ForgottenError);
pyo3::import_exception!(amlguard.exceptions, ConcurrentModificationError);
pyo3::import_exception!(amlguard.exceptions, AzureCredentialError);
pyo3::import_exception!(amlguard.exceptions, KeyVaultError);
pyo3::import_exception!(amlguard.exceptions, KeyVaultAuthenticationError);
pyo3::import_exception!(amlguard.exceptions, KeyVaultPermissionError);
pyo3::import_exception!(amlguard.exceptions, ParquetKeysRequiredError);
pyo3::import_exception!(amlguard.exceptions, ParquetKeyMaterialError);

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            Error::Policy { .. } => PolicyError::new_err(message),
            Error::ColumnNotFound { .. } => ColumnNotFoundError::new_err(message),
            Error::ColumnType { .. } => ColumnTypeError::new_err(message),
            Error::ColumnDenied { .. } => ColumnDeniedError::new_err(message),
            Error::KeyNotFound { .. } => KeyNotFoundError::new_err(message),
            Error::Keyring { .. } => KeyringError::new_err(message),
            Error::InvalidData { .. } => InvalidDataError::new_err(message),
            Error::Decryption => DecryptionError::new_err(message),
            Error::NotEnvelope { .. } => NotAnEnvelopeError::new_err(message),
            Error::UnsupportedFormatVersion { .. } => UnsupportedFormatError::new_err(message),
            Error::UnsupportedSuite { .. } => UnsupportedSuiteError::new_err(message),
            Error::TruncatedHeader { .. } => TruncatedHeaderError::new_err(message),
            Error::MalformedHeader { .. } => MalformedHeaderError::new_err(message),
            Error::NoMatchingKek { .. } => NoMatchingKeyError::new_err(message),
            Error::KeyUsageLimit { .. } => KeyUsageLimitError::new_err(message),
            Error::InvalidArgument { .. } => InvalidArgumentError::new_err(message),
            Error::RandomSource { .. } => RandomSourceError::new_err(message),
            Error::Recognizer { .. } => RecognizerError::new_err(message),
            Error::Io { ref source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => StorageNotFoundError::new_err(message),
                std::io::ErrorKind::PermissionDenied => StoragePermissionError::new_err(message),
                _ => StorageError::new_err(message),
            },
            Error::AuditLog { .. } => AuditLogError::new_err(message),
            Error::Forgotten { .. } => ForgottenError::new_err(message),
            Error::ConcurrentModification { .. } => ConcurrentModificationError::new_err(message),
            Error::AzureCredential { .. } => AzureCredentialError::new_err(message),
            Error::KeyVaultAuthentication { .. } => KeyVaultAuthenticationError::new_err(message),
            Error::KeyVaultPermission { .. } => KeyVaultPermissionError::new_err(message),
            Error::KeyVaultKeyNotFound { .. } => KeyNotFoundError::new_err(message),
            Error::KeyVault { .. } => KeyVaultError::new_err(message),
            Error::ColumnDecryption { .. } => DecryptionError::new_err(message),
            Error::ColumnNoMatchingKek { .. } => NoMatchingKeyError::new_err(message),
            Error::ParquetKeysRequired { .. } => ParquetKeysRequiredError::new_err(message),
            Error::ParquetKeyMaterial { .. } => ParquetKeyMaterialError::new_err(message),
            Error::Cancelled => PyKeyboardInterrupt::new_err(message),
        }
    }
}
