"""amlguard: secure ML data handling for Azure Machine Learning.

>>> import amlguard as ag
>>> keyring = ag.LocalKeyring()                 # $AMLGUARD_KEYRING or ~/.amlguard/keyring
>>> keyring.ensure_key("pseudo")
>>> policy = ag.Policy.from_dict({"version": 1, "columns": {
...     "email": {"op": "hash", "key": "pseudo"},
...     "card_number": {"op": "mask", "keep_last": 4, "keep_separators": True}}})
>>> masked = policy.apply(df, keyring=keyring)  # polars, pandas or pyarrow in: the same out
"""

from __future__ import annotations

from . import datasets
from ._amlguard import (
    EncryptedFile,
    EnvelopeReport,
    HeaderInfo,
    Kek,
    LocalKeyring,
    MaskReport,
    __version__,
)
from .audit import AuditLog, AuditReport, verify_audit_log, verify_proof
from .detect import ScanReport, detect, scan
from .envelope import (
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    inspect,
    open_encrypted,
    rewrap,
)
from .exceptions import (
    AmlguardError,
    AuditLogError,
    ColumnDeniedError,
    ColumnNotFoundError,
    ColumnTypeError,
    ConcurrentModificationError,
    DecryptionError,
    EnvelopeFormatError,
    ForgottenError,
    InvalidArgumentError,
    InvalidDataError,
    KeyNotFoundError,
    KeyringError,
    KeyUsageLimitError,
    MalformedHeaderError,
    NoMatchingKeyError,
    NotAnEnvelopeError,
    PolicyError,
    RandomSourceError,
    RecognizerError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    TruncatedHeaderError,
    UnsupportedFormatError,
    UnsupportedSuiteError,
)
from .files import mask_file, mask_parquet
from .forget import (
    Dataset,
    ForgetReceipt,
    ForgetVerification,
    SubjectKeyStore,
    decrypt_subject_column,
    encrypt_subject_column,
    forget,
    verify_forgotten,
)
from .policy import Policy

__all__ = [
    "AmlguardError",
    "EncryptedFile",
    "EnvelopeFormatError",
    "EnvelopeReport",
    "HeaderInfo",
    "InvalidArgumentError",
    "Kek",
    "KeyUsageLimitError",
    "MalformedHeaderError",
    "NoMatchingKeyError",
    "NotAnEnvelopeError",
    "RandomSourceError",
    "RecognizerError",
    "ScanReport",
    "TruncatedHeaderError",
    "UnsupportedFormatError",
    "UnsupportedSuiteError",
    "decrypt_bytes",
    "detect",
    "scan",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "inspect",
    "open_encrypted",
    "rewrap",
    "AuditLog",
    "AuditLogError",
    "AuditReport",
    "ConcurrentModificationError",
    "ForgottenError",
    "verify_audit_log",
    "verify_proof",
    "Dataset",
    "ForgetReceipt",
    "ForgetVerification",
    "SubjectKeyStore",
    "decrypt_subject_column",
    "encrypt_subject_column",
    "forget",
    "verify_forgotten",
    "ColumnDeniedError",
    "ColumnNotFoundError",
    "ColumnTypeError",
    "DecryptionError",
    "InvalidDataError",
    "KeyNotFoundError",
    "KeyringError",
    "LocalKeyring",
    "MaskReport",
    "Policy",
    "PolicyError",
    "StorageError",
    "StorageNotFoundError",
    "StoragePermissionError",
    "__version__",
    "datasets",
    "mask_file",
    "mask_parquet",
]
