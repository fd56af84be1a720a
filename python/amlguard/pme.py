"""Parquet Modular Encryption (PME) under amlguard keys, interoperable with pyarrow.

Master key ids are key names in an amlguard key provider, a :class:`LocalKeyring` or an
:class:`AzureKeyVault`, in the shape of pyarrow's ``EncryptionConfiguration``::

    ag.write_parquet(table, "patients.parquet", keys=kr, footer_key="footer-key",
                     column_keys={"pii-key": ["ssn", "dob"]})
    table = ag.read_parquet("patients.parquet", keys=kr)

The key material in the file follows the Parquet key tools format, and the same KMS client
serves pyarrow through :func:`pyarrow_crypto_factory`, so pyarrow reads what amlguard wrote and
amlguard reads what pyarrow wrote (through that factory). Paths may be local or ``az://`` /
``abfss://`` URLs; writes are atomic.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional, Union

import pyarrow as pa

from . import _frames
from ._amlguard import ParquetKeyRotationReport, ParquetReport, _ParquetKms
from ._amlguard import read_parquet as _read_parquet
from ._amlguard import rotate_parquet_keys as _rotate_parquet_keys
from ._amlguard import write_parquet as _write_parquet

__all__ = [
    "AmlguardKmsClient",
    "ParquetKeyRotationReport",
    "ParquetReport",
    "pyarrow_crypto_factory",
    "read_parquet",
    "read_parquet_with_report",
    "rotate_parquet_keys",
    "write_parquet",
]

PathLike = Union[str, "os.PathLike[str]"]
Keys = Any  # LocalKeyring | AzureKeyVault
Output = Literal["pyarrow", "polars", "pandas"]


def write_parquet(
    data: Any,
    path: PathLike,
    *,
    keys: Optional[Keys] = None,
    footer_key: Optional[str] = None,
    column_keys: Optional[dict[str, list[str]]] = None,
    plaintext_footer: bool = False,
    double_wrapping: bool = True,
    external_key_material: bool = False,
    compression: str = "snappy",
    row_group_rows: Optional[int] = None,
    threads: Optional[int] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> ParquetReport:
    """Write ``data`` as one Parquet file, encrypted with Parquet Modular Encryption when
    ``footer_key`` is given.

    ``data`` is a polars or pandas DataFrame, a pyarrow Table / RecordBatch /
    RecordBatchReader (streamed, not collected), or anything with ``__arrow_c_stream__``.
    ``footer_key`` names the master key of the footer (and of every column when
    ``column_keys`` is empty); ``column_keys`` maps a master key name to the columns it
    encrypts (a nested column's top-level name covers its leaves); unlisted columns stay
    plaintext. ``plaintext_footer`` keeps the footer readable (and signed), so tools without
    keys see the schema and the unencrypted columns. ``double_wrapping`` (the default, as in
    pyarrow) costs one key-provider call per master key per file.
    ``external_key_material=True`` keeps the wrapped keys in ``_KEY_MATERIAL_FOR_<file>.json``
    beside the file, as pyarrow's ``internal_key_material=False`` does (local paths only), so
    :func:`rotate_parquet_keys` can re-wrap them without rewriting the data; the JSON file must
    then travel with the data file.

    Returns a :class:`ParquetReport` (rows, bytes, encrypted columns, ``kms_calls``).
    """
    stream, _ = _frames.to_stream(data)
    return _write_parquet(
        stream, os.fspath(path), keys=keys, footer_key=footer_key, column_keys=column_keys,
        plaintext_footer=plaintext_footer, double_wrapping=double_wrapping,
        external_key_material=external_key_material, compression=compression,
        row_group_rows=row_group_rows, threads=threads,
        storage_options=storage_options,
    )  # fmt: skip


def read_parquet_with_report(
    path: PathLike,
    *,
    keys: Optional[Keys] = None,
    columns: Optional[list[str]] = None,
    output: Output = "pyarrow",
    threads: Optional[int] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> tuple[Any, ParquetReport]:
    """:func:`read_parquet`, plus the :class:`ParquetReport` of the read."""
    table, report = _read_parquet(
        os.fspath(path), keys=keys, columns=columns, threads=threads,
        storage_options=storage_options,
    )  # fmt: skip
    return _convert(pa.table(table), output), report


def read_parquet(
    path: PathLike,
    *,
    keys: Optional[Keys] = None,
    columns: Optional[list[str]] = None,
    output: Output = "pyarrow",
    threads: Optional[int] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> Any:
    """Read a Parquet file, decrypting it with ``keys`` when it is PME-encrypted.

    Returns a pyarrow Table, or a polars / pandas DataFrame with ``output="polars"`` /
    ``"pandas"`` (a file holds no record of the frame type it was written from, so the type
    is asked for, as in :func:`amlguard.datasets.synthetic_pii`). ``columns`` reads only those
    top-level columns, in that order. An encrypted file read without ``keys`` raises
    :class:`ParquetKeysRequiredError`, unless its footer is plaintext and only unencrypted
    columns are asked for; a wrong key or a tampered encrypted column raises
    :class:`DecryptionError`.
    """
    table, _ = read_parquet_with_report(
        path, keys=keys, columns=columns, output=output, threads=threads,
        storage_options=storage_options,
    )  # fmt: skip
    return table


def rotate_parquet_keys(
    path: PathLike, *, keys: Keys, double_wrapping: bool = True
) -> ParquetKeyRotationReport:
    """Re-wrap the key material of a Parquet file written with ``external_key_material=True``
    (or by pyarrow with ``internal_key_material=False``) under the latest version of each
    master key in ``keys``, without rewriting the data file.

    Run it after ``LocalKeyring.rotate`` (or a new Key Vault key version): the
    ``_KEY_MATERIAL_FOR_<file>.json`` beside the file is replaced atomically and the old key
    versions are no longer needed to read it. A file that keeps its key material inside raises
    :class:`ParquetKeyMaterialError` (re-wrapping it needs a rewrite). Returns a
    :class:`ParquetKeyRotationReport` (keys re-wrapped, key-provider calls).
    """
    return _rotate_parquet_keys(os.fspath(path), keys=keys, double_wrapping=double_wrapping)


def _convert(table: pa.Table, output: Output) -> Any:
    if output == "pyarrow":
        return table
    if output == "polars":
        import polars as pl

        return pl.DataFrame(table)
    if output == "pandas":
        return table.to_pandas()
    raise ValueError("output must be 'pyarrow', 'polars' or 'pandas'")


try:
    import pyarrow.parquet.encryption as _pe
except ImportError:  # pragma: no cover - pyarrow built without Parquet encryption
    _pe = None

_KmsClientBase: Any = _pe.KmsClient if _pe is not None else object


class AmlguardKmsClient(_KmsClientBase):  # type: ignore[misc]
    """A pyarrow ``KmsClient`` whose master keys are key names in an amlguard provider.

    Wrapping and unwrapping run in amlguard's core, in the format :func:`write_parquet`
    writes, so files written through either path are read through the other. ``calls``
    counts the key-provider calls made, as ``(wraps, unwraps)``.
    """

    def __init__(self, keys: Keys) -> None:
        if _pe is None:
            raise ImportError("this pyarrow was built without Parquet encryption")
        _KmsClientBase.__init__(self)
        self._kms = _ParquetKms(keys)

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return self._kms.wrap_key(key_bytes, master_key_identifier)

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return self._kms.unwrap_key(wrapped_key, master_key_identifier)

    @property
    def calls(self) -> tuple[int, int]:
        """``(wraps, unwraps)``: key-provider calls made by this client so far."""
        return self._kms.calls

    def __repr__(self) -> str:
        return f"AmlguardKmsClient({self._kms!r})"


def pyarrow_crypto_factory(keys: Keys) -> Any:
    """A ``pyarrow.parquet.encryption.CryptoFactory`` whose KMS client is an
    :class:`AmlguardKmsClient` over ``keys`` (a :class:`LocalKeyring` or
    :class:`AzureKeyVault`).

    Use it with pyarrow's ``EncryptionConfiguration(footer_key=..., column_keys=...)`` and
    ``DecryptionConfiguration()``; the ``KmsConnectionConfig`` pyarrow asks for is not used
    (the key provider already knows where its keys live).
    """
    if _pe is None:
        raise ImportError("this pyarrow was built without Parquet encryption")
    return _pe.CryptoFactory(lambda _config: AmlguardKmsClient(keys))
