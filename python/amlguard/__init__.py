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
    AzureKek,
    AzureKeyVault,
    EncryptedReader,
    LocalKeyring,
    MaskReport,
    __version__,
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    open_encrypted,
)
from .exceptions import (
    AmlguardError,
    AzureCredentialError,
    ColumnDeniedError,
    ColumnNotFoundError,
    ColumnTypeError,
    DecryptionError,
    InvalidArgumentError,
    InvalidDataError,
    KeyNotFoundError,
    KeyringError,
    KeyVaultAuthenticationError,
    KeyVaultError,
    KeyVaultPermissionError,
    MalformedContainerError,
    NoMatchingKeyError,
    NotEnvelopeError,
    PolicyError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
)
from .files import mask_file, mask_parquet
from .policy import Policy

__all__ = [
    "AmlguardError",
    "AzureCredentialError",
    "AzureKek",
    "AzureKeyVault",
    "InvalidArgumentError",
    "KeyVaultAuthenticationError",
    "KeyVaultError",
    "KeyVaultPermissionError",
    "MalformedContainerError",
    "NoMatchingKeyError",
    "NotEnvelopeError",
    "EncryptedReader",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "open_encrypted",
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
