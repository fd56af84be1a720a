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
    "StorageError",
    "StorageNotFoundError",
    "StoragePermissionError",
    "NotEnvelopeError",
    "UnsupportedFormatError",
    "MalformedContainerError",
    "NoMatchingKeyError",
    "KeyUsageLimitError",
    "InvalidArgumentError",
    "RandomSourceError",
    "AzureCredentialError",
    "KeyVaultError",
    "KeyVaultAuthenticationError",
    "KeyVaultPermissionError",
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


class KeyNotFoundError(AmlguardError, LookupError):
    """A named key does not exist in the key provider."""


class KeyringError(AmlguardError):
    """The keyring cannot be used (bad key name, damaged file, unsafe permissions)."""


class InvalidDataError(AmlguardError, ValueError):
    """Input data is malformed (invalid UTF-8, a bad CSV row, a value an operator cannot take)."""


class DecryptionError(AmlguardError):
    """Authentication failed: wrong key or context, or tampered data. Says nothing more."""


class StorageError(AmlguardError, OSError):
    """Reading or writing a file failed."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """A file or directory does not exist."""


class StoragePermissionError(StorageError, PermissionError):
    """The operating system refused access to a file or directory."""


class NotEnvelopeError(AmlguardError, ValueError):
    """The input is not an amlguard encrypted container (no ``AMLG`` magic)."""


class UnsupportedFormatError(AmlguardError):
    """The container uses a format version or algorithm suite this build cannot read."""


class MalformedContainerError(AmlguardError, ValueError):
    """The container header is truncated or structurally invalid."""


class NoMatchingKeyError(AmlguardError, LookupError):
    """None of the keys offered matches a key recorded in the container."""


class KeyUsageLimitError(AmlguardError):
    """A data key reached a safe-usage limit; split the data into several files."""


class InvalidArgumentError(AmlguardError, ValueError):
    """A call argument is out of range or malformed (segment size, URL, key name, ...)."""


class RandomSourceError(AmlguardError, OSError):
    """The operating system's random number generator failed."""


class AzureCredentialError(AmlguardError):
    """No Azure credential could produce a token (the message lists what was tried)."""


class KeyVaultError(AmlguardError):
    """Azure Key Vault failed: unreachable, throttled beyond the retries, wrong key type, ..."""


class KeyVaultAuthenticationError(KeyVaultError):
    """Key Vault rejected the token (HTTP 401): missing, expired or for another tenant."""


class KeyVaultPermissionError(KeyVaultError, PermissionError):
    """The identity lacks a permission on the key (HTTP 403); the message names both."""
