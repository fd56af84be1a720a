"""Exceptions raised by amlguard.

Every error amlguard raises is an :class:`AmlguardError`. File-system errors are also the
matching built-in (``FileNotFoundError``, ``PermissionError``), so existing ``except`` clauses
keep working. Messages name columns, fields, keys and paths, never data values or key bytes.
"""

from __future__ import annotations

__all__ = [
    "AmlguardError",
    "PolicyError",
    "ColumnNotFoundError",
    "ColumnTypeError",
    "ColumnDeniedError",
    "KeyNotFoundError",
    "KeyringError",
    "InvalidDataError",
    "DecryptionError",
    "RecognizerError",
    "EnvelopeFormatError",
    "NotAnEnvelopeError",
    "UnsupportedFormatError",
    "UnsupportedSuiteError",
    "TruncatedHeaderError",
    "MalformedHeaderError",
    "NoMatchingKeyError",
    "KeyUsageLimitError",
    "InvalidArgumentError",
    "RandomSourceError",
    "StorageError",
    "StorageNotFoundError",
    "StoragePermissionError",
    "AuditLogError",
    "ForgottenError",
    "ConcurrentModificationError",
    "UnsupportedTableFeatureError",
    "AzureCredentialError",
    "KeyVaultError",
    "KeyVaultAuthenticationError",
    "KeyVaultPermissionError",
    "ParquetKeyMaterialError",
    "ParquetKeysRequiredError",
]


class AmlguardError(Exception):
    """Base class of every amlguard error."""


class PolicyError(AmlguardError, ValueError):
    """The policy is malformed or a parameter is invalid (the message names column and field)."""


class ColumnNotFoundError(PolicyError, KeyError):
    """The policy names a column the data does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ColumnTypeError(PolicyError, TypeError):
    """An operator does not support the column's type."""


class ColumnDeniedError(PolicyError):
    """A ``default: deny`` policy does not cover a column of the data."""


class RecognizerError(PolicyError):
    """A custom recognizer is invalid (bad regex, unknown validator, score out of range)."""


class KeyNotFoundError(AmlguardError, LookupError):
    """A named key does not exist in the key provider."""


class KeyringError(AmlguardError):
    """The keyring cannot be used (bad key name, damaged file, unsafe permissions)."""


class InvalidDataError(AmlguardError, ValueError):
    """Input data is malformed (invalid UTF-8, a bad CSV row, a value an operator cannot take)."""


class DecryptionError(AmlguardError):
    """Authentication failed: wrong key or context, or tampered data. Says nothing more."""


class EnvelopeFormatError(AmlguardError, ValueError):
    """A file or blob is not a readable amlguard container (structural, not authentication)."""


class NotAnEnvelopeError(EnvelopeFormatError):
    """The input does not start with the amlguard container magic."""


class UnsupportedFormatError(EnvelopeFormatError):
    """The container's format version is newer than this release reads: upgrade amlguard."""


class UnsupportedSuiteError(EnvelopeFormatError):
    """The container uses an algorithm suite this release does not know."""


class TruncatedHeaderError(EnvelopeFormatError):
    """The input ends inside the container header."""


class MalformedHeaderError(EnvelopeFormatError):
    """The container header is malformed (a length or field out of range)."""


class NoMatchingKeyError(AmlguardError, LookupError):
    """None of the given key-encryption keys matches a key id recorded in the container."""


class KeyUsageLimitError(AmlguardError):
    """A data key reached its safe usage limit (bytes or segments); encrypt in smaller parts."""


class InvalidArgumentError(AmlguardError, ValueError):
    """An argument is out of range (e.g. a segment size)."""


class RandomSourceError(AmlguardError):
    """The operating system's random generator failed."""


class StorageError(AmlguardError, OSError):
    """Reading or writing a file failed."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """A file or directory does not exist."""


class StoragePermissionError(StorageError, PermissionError):
    """The operating system refused access to a file or directory."""


class AuditLogError(AmlguardError):
    """The audit log is damaged or tampered with, or its signing key is not the keyring's.

    Run ``amlguard audit verify PATH`` to locate the first bad record.
    """


class ForgottenError(AmlguardError):
    """The value belongs to a forgotten data subject: its key was destroyed (crypto-shredding)."""


class ConcurrentModificationError(AmlguardError):
    """A file changed on disk during the run (another writer); amlguard replaced nothing."""


class UnsupportedTableFeatureError(AmlguardError):
    """A table uses a feature amlguard cannot forget in safely (the message names it); nothing
    was changed."""


class AzureCredentialError(AmlguardError):
    """No Azure credential could produce a token (the message lists what was tried)."""


class KeyVaultError(AmlguardError):
    """Azure Key Vault failed: unreachable, throttled beyond the retries, wrong key type, ..."""


class KeyVaultAuthenticationError(KeyVaultError):
    """Key Vault rejected the token (HTTP 401): missing, expired or for another tenant."""


class KeyVaultPermissionError(KeyVaultError, PermissionError):
    """The identity lacks a permission on the key (HTTP 403); the message names both."""


class ParquetKeysRequiredError(AmlguardError):
    """A Parquet file is encrypted (Parquet Modular Encryption) and was read without ``keys``.

    Pass the ``LocalKeyring`` or ``AzureKeyVault`` that holds its master keys. A file written
    with a plaintext footer can still be read for its unencrypted columns (``columns=[...]``).
    """


class ParquetKeyMaterialError(AmlguardError):
    """The key material a Parquet file keeps beside itself (``_KEY_MATERIAL_FOR_<file>.json``)
    is missing or malformed, or :func:`amlguard.rotate_parquet_keys` was asked to re-wrap a file
    that keeps its key material inside (which needs a rewrite: ``read_parquet`` +
    ``write_parquet(..., external_key_material=True)``).
    """
