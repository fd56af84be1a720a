//! The one error type of the amlguard core.
//!
//! Every variant says what went wrong in terms a user can act on and names the column, field,
//! key or path involved. No variant ever carries key material or data values: messages are built
//! from names and schema facts only. Authentication failures are a single opaque
//! [`Error::Decryption`] that says nothing about where or why a check failed.

use std::path::PathBuf;

/// Result alias used across the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in amlguard.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy document is malformed or one of its parameters is invalid.
    #[error("invalid policy{}: {message}", location(.column, .field))]
    Policy {
        /// Column the problem belongs to, when it belongs to one.
        column: Option<String>,
        /// Parameter (field) of the column's rule, when one is at fault.
        field: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The policy or a call names a column that the data does not have.
    #[error("column '{column}' is not in the data (columns: {available})")]
    ColumnNotFound {
        /// The missing column.
        column: String,
        /// The columns the data does have, comma separated.
        available: String,
    },

    /// An operator cannot be applied to a column of this Arrow type.
    #[error("column '{column}': operator '{op}' does not support type {data_type}; {hint}")]
    ColumnType {
        /// The column.
        column: String,
        /// The operator.
        op: String,
        /// The column's Arrow data type, as text.
        data_type: String,
        /// What to do instead.
        hint: String,
    },

    /// The data has a column that a `default: deny` policy does not mention.
    #[error("column '{column}' is not covered by the policy and its default is 'deny'; add a rule for it (e.g. {{\"op\": \"keep\"}})")]
    ColumnDenied {
        /// The column.
        column: String,
    },

    /// A named key does not exist in the key provider.
    #[error("key '{name}' does not exist in {provider}; create it first (e.g. LocalKeyring.ensure_key('{name}'))")]
    KeyNotFound {
        /// Key name.
        name: String,
        /// Where it was looked for (never secret).
        provider: String,
    },

    /// The keyring cannot be used (bad name, bad file, unsafe permissions).
    #[error("keyring error: {message}")]
    Keyring {
        /// What is wrong.
        message: String,
    },

    /// A recognizer cannot be built: its pattern does not compile, or a parameter is invalid.
    #[error("recognizer '{name}': {message}")]
    Recognizer {
        /// The recognizer's entity name (e.g. `EMPLOYEE_ID`).
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// Input data is not what it claims to be (invalid UTF-8, bad CSV row, unreadable Parquet,
    /// a value an operator cannot take).
    #[error("invalid data{}: {message}", column_suffix(.column))]
    InvalidData {
        /// Column involved, if any.
        column: Option<String>,
        /// What is wrong.
        message: String,
    },

    /// Authentication failed: wrong key, wrong context or tampered data. Deliberately says nothing more.
    #[error("decryption failed: the data was tampered with, or the key or context is wrong")]
    Decryption,

    /// The input is not an amlguard encrypted container (it does not start with `AMLG`).
    #[error("{source_name} is not an amlguard encrypted file (it does not start with the AMLG magic); check the path, or encrypt it first")]
    NotEnvelope {
        /// What was read: a path, or "the input" for in-memory data.
        source_name: String,
    },

    /// The container was written by a newer amlguard with a format version this build cannot read.
    #[error("{source_name} uses envelope format version {version}, but this amlguard reads only version {supported}; upgrade amlguard")]
    UnsupportedFormatVersion {
        /// What was read.
        source_name: String,
        /// The version the header declares.
        version: u8,
        /// The version this build reads.
        supported: u8,
    },

    /// The container declares an algorithm suite this build does not know.
    #[error("{source_name} uses algorithm suite {suite}, which this amlguard does not support (supported: {supported}); upgrade amlguard")]
    UnsupportedSuite {
        /// What was read.
        source_name: String,
        /// The suite id the header declares.
        suite: u8,
        /// The suites this build supports, as text.
        supported: String,
    },

    /// The input ends inside the container header: the file was cut short or is still being written.
    #[error("{source_name} ends inside its header ({available} of at least {needed} bytes); the file is truncated or incomplete")]
    TruncatedHeader {
        /// What was read.
        source_name: String,
        /// Bytes the header needs so far.
        needed: u64,
        /// Bytes available.
        available: u64,
    },

    /// The container header is structurally invalid (a field out of range, bad UTF-8, ...).
    #[error("{source_name} has a malformed header: {message}")]
    MalformedHeader {
        /// What was read.
        source_name: String,
        /// Which field is wrong and why.
        message: String,
    },

    /// None of the key-encryption keys offered can unwrap any data key recorded in the header.
    #[error("none of the keys offered ({offered}) matches a key recorded in the file ({recorded}); pass one of the recorded keys")]
    NoMatchingKek {
        /// Key ids recorded in the header, comma separated.
        recorded: String,
        /// Key ids of the KEKs offered, comma separated ("none" when none was).
        offered: String,
    },

    /// A data key reached a safe-usage limit of AES-GCM (segments or bytes under one key).
    #[error("usage limit reached for one data key: {message}; split the data into several files")]
    KeyUsageLimit {
        /// Which limit, with its value.
        message: String,
    },

    /// A call argument is out of range (segment size, empty key list, oversized context, ...).
    #[error("invalid {name}: {message}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// What is wrong and the accepted range.
        message: String,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {message}; check that the OS entropy source (getrandom, /dev/urandom) is available")]
    RandomSource {
        /// The OS error, as text.
        message: String,
    },

    /// A file-system operation failed.
    #[error("{action} '{}': {source}", .path.display())]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The audit log cannot be used: it is damaged or was tampered with, or its signing key does
    /// not match (run `amlguard audit verify` to locate the problem).
    #[error("audit log '{}': {message}", .path.display())]
    AuditLog {
        /// The log file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },

    /// A value belongs to a data subject whose key was destroyed (crypto-shredded).
    #[error("the value belongs to a forgotten data subject (key '{key_handle}' was destroyed); it can no longer be decrypted")]
    Forgotten {
        /// Opaque handle of the destroyed subject key (never the subject's identifier).
        key_handle: String,
    },

    /// A file changed on disk while amlguard was working on it (another writer); nothing was
    /// replaced.
    #[error("'{}' was changed by someone else during the run ({message}); nothing was replaced, run again when writers have finished", .path.display())]
    ConcurrentModification {
        /// The file.
        path: PathBuf,
        /// What changed (size, modification time).
        message: String,
    },

    /// No Azure credential could produce a token (no source configured, or each one failed).
    #[error("Azure credential error: {message}")]
    AzureCredential {
        /// What was tried and why it failed (never a secret).
        message: String,
    },

    /// Azure Key Vault rejected the token (401): missing, expired, or for another tenant.
    #[error("Azure Key Vault {vault} did not accept the token of {identity} for key '{key}': {message}; sign in again or check the tenant")]
    KeyVaultAuthentication {
        /// Vault URL.
        vault: String,
        /// Key name or id.
        key: String,
        /// The identity the token was for (never a secret).
        identity: String,
        /// What Key Vault said.
        message: String,
    },

    /// The identity lacks a permission on a Key Vault key (403).
    #[error("{identity} lacks permission '{permission}' on key '{key}' in Azure Key Vault {vault}; grant it (role 'Key Vault Crypto Service Encryption User' or an access policy). Key Vault said: {message}")]
    KeyVaultPermission {
        /// Vault URL.
        vault: String,
        /// Key name or id.
        key: String,
        /// The identity the call was made as.
        identity: String,
        /// The missing permission, e.g. `keys/unwrapKey`.
        permission: String,
        /// What Key Vault said (it names the identity's object and application ids).
        message: String,
    },

    /// A Key Vault key (or key version) does not exist (404).
    #[error("key '{key}' does not exist in Azure Key Vault {vault}; check the name and version, or create it (az keyvault key create)")]
    KeyVaultKeyNotFound {
        /// Vault URL.
        vault: String,
        /// Key name or id.
        key: String,
    },

    /// Any other Key Vault failure: unreachable vault, throttling or server errors that outlasted
    /// the retries, a key of the wrong type for the algorithm, a bad request.
    #[error("Azure Key Vault {vault}, key '{key}'{}: {message}", status_suffix(.status))]
    KeyVault {
        /// Vault URL.
        vault: String,
        /// Key name or id.
        key: String,
        /// HTTP status, when the vault answered.
        status: Option<u16>,
        /// What went wrong and what to do.
        message: String,
    },

    /// A value of an encrypted column failed authentication, or its column key did not unwrap:
    /// tampered data, or the wrong key or context. Says nothing about which check failed.
    #[error("decryption failed in column '{column}': the data was tampered with, or the key or context is wrong")]
    ColumnDecryption {
        /// The encrypted column.
        column: String,
    },

    /// None of the key-encryption keys offered matches the key id recorded with an encrypted column.
    #[error("column '{column}' was encrypted under key '{recorded}', and none of the keys offered ({offered}) matches it; pass that key")]
    ColumnNoMatchingKek {
        /// The encrypted column.
        column: String,
        /// The key id recorded in the column's metadata.
        recorded: String,
        /// Key ids of the KEKs offered, comma separated ("none" when none was).
        offered: String,
    },

    /// A Parquet file is encrypted (Parquet Modular Encryption) and was read without keys.
    #[error("{source_name} is an encrypted Parquet file; pass keys (the LocalKeyring or AzureKeyVault holding its master keys) to read it")]
    ParquetKeysRequired {
        /// The file read.
        source_name: String,
    },

    /// The key material a Parquet file keeps outside itself (`_KEY_MATERIAL_FOR_<file>.json`)
    /// is missing or unreadable, or a file keeps it inside and so cannot be re-wrapped in place.
    #[error("{source_name}: {message}")]
    ParquetKeyMaterial {
        /// The data file or key material file concerned.
        source_name: String,
        /// What is wrong and what to do.
        message: String,
    },

    /// The caller asked for the work to stop (Ctrl-C in Python).
    #[error("cancelled")]
    Cancelled,
}

fn location(column: &Option<String>, field: &Option<String>) -> String {
    match (column, field) {
        (Some(c), Some(f)) => format!(" (column '{c}', field '{f}')"),
        (Some(c), None) => format!(" (column '{c}')"),
        (None, Some(f)) => format!(" (field '{f}')"),
        (None, None) => String::new(),
    }
}

fn status_suffix(status: &Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

fn column_suffix(column: &Option<String>) -> String {
    column
        .as_ref()
        .map(|c| format!(" in column '{c}'"))
        .unwrap_or_default()
}

impl Error {
    /// A policy error that belongs to no particular column.
    pub fn policy(message: impl Into<String>) -> Self {
        Error::Policy {
            column: None,
            field: None,
            message: message.into(),
        }
    }

    /// A policy error about one parameter of one column's rule.
    pub fn policy_field(column: &str, field: &str, message: impl Into<String>) -> Self {
        Error::Policy {
            column: Some(column.to_owned()),
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// `column` is not in `schema`; the error lists the columns that are.
    pub fn column_not_found(column: &str, schema: &arrow_schema::Schema) -> Self {
        Error::ColumnNotFound {
            column: column.to_owned(),
            available: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Invalid data in a named column.
    pub fn invalid_data(column: Option<&str>, message: impl Into<String>) -> Self {
        Error::InvalidData {
            column: column.map(str::to_owned),
            message: message.into(),
        }
    }

    /// An I/O error with the path it happened on.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Attach a column name to a column-less data error.
    pub(crate) fn in_column(self, name: &str) -> Self {
        match self {
            Error::InvalidData {
                column: None,
                message,
            } => Error::InvalidData {
                column: Some(name.to_owned()),
                message,
            },
            other => other,
        }
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(err: arrow_schema::ArrowError) -> Self {
        match err {
            arrow_schema::ArrowError::ExternalError(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::invalid_data(None, other.to_string()),
            },
            arrow_schema::ArrowError::IoError(msg, source) => Error::Io {
                action: "reading or writing",
                path: PathBuf::from(msg),
                source,
            },
            other => Error::invalid_data(None, other.to_string()),
        }
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(err: parquet::errors::ParquetError) -> Self {
        match err {
            parquet::errors::ParquetError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::invalid_data(None, format!("parquet: {other}")),
            },
            parquet::errors::ParquetError::ArrowError(msg) => {
                Error::invalid_data(None, format!("parquet: {msg}"))
            }
            other => Error::invalid_data(None, format!("parquet: {other}")),
        }
    }
}
