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
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Optional, Union

from . import _amlguard
from ._amlguard import EncryptedFile, EnvelopeReport, HeaderInfo, Kek

__all__ = [
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "inspect",
    "open_encrypted",
    "rewrap",
]

PathLike = Union[str, "os.PathLike[str]"]
Keks = Union[Kek, Sequence[Kek]]


def _keks(kek: Optional[Keks], keks: Optional[Keks], role: str = "keks") -> list[Kek]:
    given = [k for k in (kek, keks) if k is not None]
    if len(given) != 1:
        raise TypeError(f"pass exactly one of kek= or {role}=")
    value = given[0]
    listed = [value] if isinstance(value, Kek) else list(value)
    if not listed or not all(isinstance(k, Kek) for k in listed):
        raise TypeError("KEKs come from a key provider, e.g. LocalKeyring().kek('name')")
    return listed


def _context(context: Optional[Mapping[str, str]]) -> dict[str, str]:
    if context is None:
        return {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise TypeError("context maps strings to strings, e.g. {'dataset': 'patients'}")
    return dict(context)


def _bytes(data: Union[bytes, bytearray, memoryview]) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def encrypt_bytes(
    data: Union[bytes, bytearray, memoryview],
    *,
    kek: Optional[Kek] = None,
    keks: Optional[Sequence[Kek]] = None,
    context: Optional[Mapping[str, str]] = None,
    segment_size_bytes: Optional[int] = None,
) -> bytes:
    """Encrypt ``data`` into a container; the DEK is wrapped under every given KEK."""
    return _amlguard.encrypt_bytes(
        _bytes(data), _keks(kek, keks), _context(context), segment_size_bytes
    )


def decrypt_bytes(
    blob: Union[bytes, bytearray, memoryview],
    *,
    keks: Optional[Keks] = None,
    kek: Optional[Kek] = None,
    context: Optional[Mapping[str, str]] = None,
    threads: Optional[int] = None,
) -> bytes:
    """Decrypt a container. Every ``context`` entry must match the one it was made with."""
    return _amlguard.decrypt_bytes(_bytes(blob), _keks(kek, keks), _context(context), threads)


def encrypt_file(
    source: PathLike,
    destination: PathLike,
    *,
    kek: Optional[Kek] = None,
    keks: Optional[Sequence[Kek]] = None,
    context: Optional[Mapping[str, str]] = None,
    segment_size_bytes: Optional[int] = None,
    threads: Optional[int] = None,
) -> EnvelopeReport:
    """Encrypt a file into a container, written atomically."""
    return _amlguard.encrypt_file(
        os.fspath(source),
        os.fspath(destination),
        _keks(kek, keks),
        _context(context),
        segment_size_bytes,
        threads,
    )


def decrypt_file(
    source: PathLike,
    destination: PathLike,
    *,
    keks: Optional[Keks] = None,
    kek: Optional[Kek] = None,
    context: Optional[Mapping[str, str]] = None,
    threads: Optional[int] = None,
) -> EnvelopeReport:
    """Decrypt a container; ``destination`` appears only after every segment verified."""
    return _amlguard.decrypt_file(
        os.fspath(source), os.fspath(destination), _keks(kek, keks), _context(context), threads
    )


def open_encrypted(
    path: PathLike,
    *,
    keks: Optional[Keks] = None,
    kek: Optional[Kek] = None,
    context: Optional[Mapping[str, str]] = None,
) -> EncryptedFile:
    """Open a container for seekable, random-access reads of its plaintext."""
    return _amlguard.open_encrypted(os.fspath(path), _keks(kek, keks), _context(context))


def rewrap(path: PathLike, *, old: Keks, new: Keks) -> HeaderInfo:
    """Key rotation: re-wrap the container's DEK under ``new`` (rewrites the header only)."""
    return _amlguard.rewrap(os.fspath(path), _keks(old, None, "old"), _keks(new, None, "new"))


def inspect(path: PathLike) -> HeaderInfo:
    """Header facts (format, suite, segment size, context, key ids); needs no key."""
    return _amlguard.inspect(os.fspath(path))
