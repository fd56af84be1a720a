"""Envelope encryption: files and bytes in the amlguard container format.

Each container gets a fresh 256-bit data key (DEK); the DEK is wrapped by one or more
key-encryption keys (KEKs: ``LocalKeyring().kek(name)``, later Azure Key Vault) and the data is
encrypted in AES-256-GCM segments with key commitment, so truncation, reordering, splicing and
header swaps are detected. The encryption ``context`` (dataset, column, purpose, ...) is bound
to the ciphertext: decryption with an expected context refuses a container made for another.
The format is specified in ``docs/format.md``.

>>> kek = ag.LocalKeyring().kek("training-data")
>>> context = {"dataset": "patients"}
>>> ag.encrypt_file("patients.parquet", "patients.parquet.amlg", kek=kek, context=context)
>>> ag.decrypt_file("patients.parquet.amlg", "out.parquet", keks=[kek])

Every function takes ``audit=`` (an :class:`~amlguard.AuditLog` or a path; default
``$AMLGUARD_AUDIT_LOG``) and then records the call, failed or not, with key ids and byte counts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

from . import _amlguard
from . import audit as _audit
from ._amlguard import (
    AzureKek,
    DekReuse,
    EncryptedFile,
    EncryptedReader,
    EnvelopeReport,
    HeaderInfo,
    Kek,
)
from .files import is_blob_url

__all__ = [
    "DekReuse",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "inspect",
    "open_encrypted",
    "rewrap",
]

PathLike = Union[str, "os.PathLike[str]"]
AnyKek = Union[Kek, AzureKek]
Keks = Union[AnyKek, Sequence[AnyKek]]
StorageOptions = Optional[Mapping[str, Any]]
Progress = Callable[[int, int], object]


def _keks(kek: Optional[Keks], keks: Optional[Keks], role: str = "keks") -> list[AnyKek]:
    given = [k for k in (kek, keks) if k is not None]
    if len(given) != 1:
        raise TypeError(f"pass exactly one of kek= or {role}=")
    value = given[0]
    listed = [value] if isinstance(value, (Kek, AzureKek)) else list(value)
    if not listed or not all(isinstance(k, (Kek, AzureKek)) for k in listed):
        raise TypeError(
            "KEKs come from a key provider: LocalKeyring().kek('name') or "
            "AzureKeyVault(url).kek('name')"
        )
    return listed


def _context(context: Optional[Mapping[str, str]]) -> dict[str, str]:
    if context is None:
        return {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise TypeError("context maps strings to strings, e.g. {'dataset': 'patients'}")
    return dict(context)


def _remote(storage_options: StorageOptions, *paths: PathLike) -> bool:
    return bool(storage_options) or any(is_blob_url(os.fspath(p)) for p in paths)


def _ids(keks: list[AnyKek]) -> list[str]:
    return [k.key_id for k in keks]


def _bytes(data: Union[bytes, bytearray, memoryview]) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def encrypt_bytes(
    data: Union[bytes, bytearray, memoryview],
    *,
    kek: Optional[Kek] = None,
    keks: Optional[Sequence[Kek]] = None,
    context: Optional[Mapping[str, str]] = None,
    segment_size_bytes: Optional[int] = None,
    audit: _audit.AuditTarget = None,
    dek_reuse: Optional[DekReuse] = None,
) -> bytes:
    """Encrypt ``data`` into a container; the DEK is wrapped under every given KEK.

    With ``dek_reuse`` (a :class:`DekReuse`) the DEK is shared with other containers within
    its bounds instead of minted (and wrapped) for this one alone."""
    with _audit.operation(audit, "encrypt_bytes") as record:
        listed = _keks(kek, keks)
        record.key_ids = _ids(listed)
        plaintext = _bytes(data)
        record.bytes = len(plaintext)
        sealed = _amlguard.encrypt_bytes(
            plaintext, listed, _context(context), segment_size_bytes, dek_reuse
        )
        record.details["container_bytes"] = len(sealed)
    return sealed


def decrypt_bytes(
    blob: Union[bytes, bytearray, memoryview],
    *,
    keks: Optional[Keks] = None,
    kek: Optional[Kek] = None,
    context: Optional[Mapping[str, str]] = None,
    threads: Optional[int] = None,
    audit: _audit.AuditTarget = None,
) -> bytes:
    """Decrypt a container. Every ``context`` entry must match the one it was made with."""
    with _audit.operation(audit, "decrypt_bytes") as record:
        listed = _keks(kek, keks)
        record.key_ids = _ids(listed)
        sealed = _bytes(blob)
        record.details["container_bytes"] = len(sealed)
        plaintext = _amlguard.decrypt_bytes(sealed, listed, _context(context), threads)
        record.bytes = len(plaintext)
    return plaintext


def encrypt_file(
    source: PathLike,
    destination: PathLike,
    *,
    kek: Optional[Kek] = None,
    keks: Optional[Sequence[Kek]] = None,
    context: Optional[Mapping[str, str]] = None,
    segment_size_bytes: Optional[int] = None,
    threads: Optional[int] = None,
    storage_options: StorageOptions = None,
    audit: _audit.AuditTarget = None,
    dek_reuse: Optional[DekReuse] = None,
    progress: Optional[Progress] = None,
) -> EnvelopeReport:
    """Encrypt a file into a container, written atomically.

    Either path may be an Azure Blob URL (``az://container/path``,
    ``abfss://container@account.dfs.core.windows.net/path``); ``storage_options`` holds the
    account settings (``account_name``, ``account_key``, ``sas_token``, ``use_emulator``, or a
    ``credential`` object with ``get_token``). Uploads commit only when complete.

    ``dek_reuse`` shares one DEK between files within its bounds (see :class:`DekReuse`).
    ``progress`` (local files) is called about ten times a second as
    ``progress(bytes_done, bytes_total)``. ``threads`` (default: one per CPU) each handle
    every n-th segment with one segment-sized buffer. A local source file that changes size
    while it is encrypted is an error, and nothing is written.
    """
    paths = [os.fspath(source), os.fspath(destination)]
    with _audit.operation(audit, "encrypt", dataset=paths[0], paths=paths) as record:
        listed = _keks(kek, keks)
        record.key_ids = _ids(listed)
        if _remote(storage_options, source, destination):
            report = _amlguard.encrypt_location(
                paths[0], paths[1], kek=listed, context=_context(context),
                storage_options=dict(storage_options or {}),
                segment_size_bytes=segment_size_bytes, threads=threads, dek_reuse=dek_reuse,
            )  # fmt: skip
        else:
            report = _amlguard.encrypt_file(
                paths[0], paths[1], listed, _context(context), segment_size_bytes, threads,
                dek_reuse, progress,
            )  # fmt: skip
        _envelope_counts(record, report)
    return report


def decrypt_file(
    source: PathLike,
    destination: PathLike,
    *,
    keks: Optional[Keks] = None,
    kek: Optional[Kek] = None,
    context: Optional[Mapping[str, str]] = None,
    threads: Optional[int] = None,
    storage_options: StorageOptions = None,
    audit: _audit.AuditTarget = None,
    progress: Optional[Progress] = None,
) -> EnvelopeReport:
    """Decrypt a container; ``destination`` appears only after every segment verified.

    Either path may be an Azure Blob URL (see :func:`encrypt_file`). ``progress`` (local files)
    is called about ten times a second as ``progress(bytes_done, bytes_total)``."""
    paths = [os.fspath(source), os.fspath(destination)]
    with _audit.operation(audit, "decrypt", dataset=paths[0], paths=paths) as record:
        listed = _keks(kek, keks)
        record.key_ids = _ids(listed)
        if _remote(storage_options, source, destination):
            report = _amlguard.decrypt_location(
                paths[0], paths[1], kek=listed, context=_context(context),
                storage_options=dict(storage_options or {}), threads=threads,
            )  # fmt: skip
        else:
            report = _amlguard.decrypt_file(
                paths[0], paths[1], listed, _context(context), threads, progress
            )
        _envelope_counts(record, report)
    return report


def open_encrypted(
    path: PathLike,
    *,
    keks: Optional[Keks] = None,
    kek: Optional[Kek] = None,
    context: Optional[Mapping[str, str]] = None,
    storage_options: StorageOptions = None,
    audit: _audit.AuditTarget = None,
) -> Union[EncryptedFile, EncryptedReader]:
    """Open a container for seekable, random-access reads of its plaintext (blobs use ranged
    reads; see :func:`encrypt_file` for URLs). The audit record is written at open time and
    gives the plaintext size (what the handle can read), not what is read later."""
    location = os.fspath(path)
    opened: Union[EncryptedFile, EncryptedReader]
    with _audit.operation(audit, "open_encrypted", dataset=location, paths=[location]) as record:
        listed = _keks(kek, keks)
        record.key_ids = _ids(listed)
        if _remote(storage_options, path):
            opened = _amlguard.open_encrypted_location(
                location, kek=listed, context=_context(context),
                storage_options=dict(storage_options or {}),
            )  # fmt: skip
        else:
            opened = _amlguard.open_encrypted(location, listed, _context(context))
        record.bytes = opened.size
    return opened


def rewrap(path: PathLike, *, old: Keks, new: Keks, audit: _audit.AuditTarget = None) -> HeaderInfo:
    """Key rotation: re-wrap the container's DEK under ``new`` (rewrites the header only)."""
    location = os.fspath(path)
    with _audit.operation(audit, "rewrap", dataset=location, paths=[location]) as record:
        old_keks, new_keks = _keks(old, None, "old"), _keks(new, None, "new")
        record.key_ids = _ids(old_keks) + _ids(new_keks)
        record.details["old_key_ids"] = _ids(old_keks)
        record.details["new_key_ids"] = _ids(new_keks)
        info = _amlguard.rewrap(location, old_keks, new_keks)
        record.details["header_key_ids"] = list(info.key_ids)
        record.bytes = info.plaintext_len_bytes
    return info


def _envelope_counts(record: _audit.OperationRecord, report: EnvelopeReport) -> None:
    record.key_ids = sorted(set(record.key_ids) | set(report.key_ids))
    record.bytes = report.plaintext_bytes
    record.details.update(container_bytes=report.container_bytes, segments=report.segments)


def inspect(path: PathLike) -> HeaderInfo:
    """Header facts (format, suite, segment size, context, key ids); needs no key."""
    return _amlguard.inspect(os.fspath(path))
