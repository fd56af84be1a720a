"""Column encryption: encrypt chosen columns of a table value by value, under amlguard keys.

>>> kek = ag.LocalKeyring().kek("pii")
>>> enc = ag.encrypt_columns(df, ["ssn", "email"], kek=kek, context={"dataset": "patients"})
>>> enc = ag.encrypt_columns(df, ["patient_id"], kek=kek, mode="deterministic")  # joinable
>>> ag.encrypted_columns(enc)            # which columns, mode, key id: never secrets
>>> plain = ag.decrypt_columns(enc, keks=[kek])

Randomized mode is AES-256-GCM with a random nonce per value; deterministic mode is AES-SIV
(RFC 5297), so equal values give equal ciphertexts and joins and group-bys keep working. Each
encrypted column becomes binary, registered as the Arrow extension type ``amlguard.encrypted``
whose metadata holds the column's data key wrapped by the KEK, the KEK's id, the original type
and the context: it travels with the data through Parquet and IPC (polars and pyarrow keep it;
pandas keeps it in ``df.attrs``). The column name and context are bound to every value, so a
value moved to another column or dataset does not decrypt. ``reuse_from=earlier`` encrypts
new batches under the same keys as an earlier table, so deterministic tokens stay comparable.

With ``subject_column`` and ``subject_keys`` (a :class:`~amlguard.SubjectKeyStore`), each row
is encrypted under its data subject's own key; ``ag.forget(..., subject_keys=store)`` destroys
it, after which those values raise :class:`~amlguard.ForgottenError` (or are null with
``on_error="null"``), wherever copies of them went.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import pyarrow as pa

from . import _amlguard, _frames
from . import audit as _audit
from ._amlguard import AzureKek, Kek, SubjectKeyStore
from .exceptions import AmlguardError

__all__ = ["EncryptedColumn", "decrypt_columns", "encrypt_columns", "encrypted_columns"]

AnyKek = Union[Kek, AzureKek]

#: ``df.attrs`` key under which pandas frames keep the encrypted columns' metadata.
PANDAS_ATTRS_KEY = "amlguard.encrypted_columns"
_EXTENSION_NAME_KEY = b"ARROW:extension:name"
_EXTENSION_METADATA_KEY = b"ARROW:extension:metadata"
_EXTENSION_NAME = b"amlguard.encrypted"


@dataclass(frozen=True)
class EncryptedColumn:
    """One encrypted column, as recorded in its metadata (nothing secret)."""

    column: str
    mode: str
    key_id: str
    original_type: str
    context: dict[str, str]
    subject_column: Optional[str]
    format_version: int


def _is_pandas(data: Any) -> bool:
    if "pandas" not in sys.modules:
        return False
    import pandas as pd

    return isinstance(data, pd.DataFrame)


def _encrypted_metadata(schema: pa.Schema) -> dict[str, str]:
    out: dict[str, str] = {}
    for field in schema:
        metadata = field.metadata or {}
        if metadata.get(_EXTENSION_NAME_KEY) == _EXTENSION_NAME:
            out[field.name] = metadata.get(_EXTENSION_METADATA_KEY, b"").decode()
    return out


def _pandas_table(frame: Any) -> pa.Table:
    """The frame as Arrow, with the encrypted columns' metadata from ``df.attrs`` restored."""
    table = pa.Table.from_pandas(frame, preserve_index=None)
    recorded = frame.attrs.get(PANDAS_ATTRS_KEY) or {}
    for name, metadata in recorded.items():
        if name not in table.column_names:
            continue
        index = table.column_names.index(name)
        field = pa.field(
            name,
            pa.binary(),
            nullable=True,
            metadata={_EXTENSION_NAME_KEY: _EXTENSION_NAME, _EXTENSION_METADATA_KEY: metadata},
        )
        table = table.set_column(index, field, table.column(index).cast(pa.binary()))
    return table


def _without_pandas_entries(table: pa.Table, names: set[str]) -> pa.Table:
    """``table`` without pandas' recorded dtypes for ``names``: they changed type (encrypted to
    binary, or decrypted back), so pyarrow converts them by their Arrow type instead."""
    metadata = dict(table.schema.metadata or {})
    if b"pandas" not in metadata or not names:
        return table
    recorded = json.loads(metadata[b"pandas"])
    recorded["columns"] = [c for c in recorded.get("columns", []) if c.get("name") not in names]
    metadata[b"pandas"] = json.dumps(recorded).encode()
    return table.replace_schema_metadata(metadata)


def _to_stream(data: Any) -> tuple[Any, Callable[[Any], Any]]:
    if not _is_pandas(data):
        return _frames.to_stream(data)
    attrs = {k: v for k, v in data.attrs.items() if k != PANDAS_ATTRS_KEY}
    table = _pandas_table(data)
    encrypted_before = set(_encrypted_metadata(table.schema))

    def to_pandas(result: Any) -> Any:
        table = pa.table(result)
        encrypted = _encrypted_metadata(table.schema)
        changed = encrypted_before.symmetric_difference(encrypted)
        frame = _without_pandas_entries(table, changed).to_pandas()
        frame.attrs = dict(attrs)
        if encrypted:
            frame.attrs[PANDAS_ATTRS_KEY] = encrypted
        return frame

    return table, to_pandas


def _schema(data: Any) -> pa.Schema:
    if _is_pandas(data):
        return _pandas_table(data.head(0)).schema
    return _frames.schema_of(data)


def _context(context: Optional[Mapping[str, str]]) -> Optional[dict[str, str]]:
    if context is None:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise TypeError("context maps strings to strings, e.g. {'dataset': 'patients'}")
    return dict(context)


def _columns(columns: Union[str, Sequence[str]]) -> list[str]:
    return [columns] if isinstance(columns, str) else [str(c) for c in columns]


@contextmanager
def _audited(
    audit: _audit.AuditTarget,
    action: str,
    context: Optional[Mapping[str, str]],
    key_ids: list[str],
    details: dict[str, Any],
) -> Iterator[Callable[[int], None]]:
    """Record ``action`` in the audit log, if one is configured, with its outcome."""
    log = _audit.ready(audit)
    rows: list[int] = []
    dataset = (context or {}).get("dataset")
    try:
        yield rows.append
    except AmlguardError as err:
        if log is not None:
            log.append(
                action, outcome="failure", dataset=dataset, key_ids=key_ids, details=details,
                error=str(err),
            )  # fmt: skip
        raise
    if log is not None:
        log.append(
            action, dataset=dataset, key_ids=key_ids, rows=rows[0] if rows else None,
            details=details,
        )  # fmt: skip


def encrypt_columns(
    data: Any,
    columns: Union[str, Sequence[str]],
    *,
    kek: Optional[AnyKek] = None,
    mode: str = "randomized",
    context: Optional[Mapping[str, str]] = None,
    subject_column: Optional[str] = None,
    subject_keys: Optional[SubjectKeyStore] = None,
    reuse_from: Any = None,
    threads: Optional[int] = None,
    audit: _audit.AuditTarget = None,
) -> Any:
    """Encrypt ``columns`` of ``data`` (polars, pandas or pyarrow: the same type comes back).

    ``mode`` is ``"randomized"`` (AES-256-GCM) or ``"deterministic"`` (AES-SIV). ``context``
    is bound to every value and recorded. ``subject_column`` with ``subject_keys`` encrypts
    each row under its subject's key (``kek`` is then not needed). ``reuse_from`` is an earlier
    encrypted table (or its schema) whose column keys are reused. With ``audit`` (or
    ``$AMLGUARD_AUDIT_LOG``) the call, failed or not, is recorded (key ids and counts only).
    """
    if kek is None and subject_keys is None:
        raise TypeError("pass kek= (LocalKeyring().kek('name') or AzureKeyVault(url).kek('name'))")
    if kek is not None and not isinstance(kek, (Kek, AzureKek)):
        raise TypeError("kek must be a Kek or AzureKek from a key provider")
    reuse_schema = None if reuse_from is None else _schema(reuse_from)
    names = _columns(columns)
    key_id = kek.key_id if kek is not None else subject_keys.kek_id if subject_keys else None
    details = {"columns": names, "mode": mode, "subject_keyed": subject_column is not None}
    with _audited(audit, "encrypt_columns", context, [key_id] if key_id else [], details) as done:
        stream, rebuild = _to_stream(data)
        result = rebuild(
            _amlguard.encrypt_columns(
                stream,
                names,
                kek,
                mode,
                _context(context),
                subject_column,
                subject_keys,
                reuse_schema,
                threads,
            )
        )
        done(len(result))
    return result


def decrypt_columns(
    data: Any,
    *,
    keks: Optional[Union[AnyKek, Sequence[AnyKek]]] = None,
    kek: Optional[AnyKek] = None,
    context: Optional[Mapping[str, str]] = None,
    columns: Optional[Union[str, Sequence[str]]] = None,
    on_error: str = "raise",
    subject_keys: Optional[SubjectKeyStore] = None,
    threads: Optional[int] = None,
    audit: _audit.AuditTarget = None,
) -> Any:
    """Decrypt the encrypted columns of ``data`` (all, or ``columns``), restoring their types.

    ``context``, when given, must be the one the columns were encrypted with (by default the
    recorded one is used). A value that fails authentication raises
    :class:`~amlguard.DecryptionError` naming its column, a key that none of ``keks`` matches
    raises :class:`~amlguard.NoMatchingKeyError`, and a forgotten subject's value raises
    :class:`~amlguard.ForgottenError`; with ``on_error="null"`` failing values become null.
    """
    if kek is not None and keks is not None:
        raise TypeError("pass kek= or keks=, not both")
    chosen = kek if kek is not None else keks
    log = _audit.ready(audit)
    listed = encrypted_columns(data) if log is not None else []
    wanted = None if columns is None else _columns(columns)
    touched = [c for c in listed if wanted is None or c.column in wanted]
    details = {"columns": [c.column for c in touched], "on_error": on_error}
    key_ids = sorted({c.key_id for c in touched})
    with _audited(log, "decrypt_columns", context, key_ids, details) as done:
        stream, rebuild = _to_stream(data)
        result = rebuild(
            _amlguard.decrypt_columns(
                stream, chosen, _context(context), wanted, on_error, subject_keys, threads
            )
        )
        done(len(result))
    return result


def encrypted_columns(data: Any) -> list[EncryptedColumn]:
    """The encrypted columns of ``data`` (a table, frame or schema): mode, key id, context."""
    raw = json.loads(_amlguard.encrypted_columns_json(_schema(data)))
    return [
        EncryptedColumn(
            column=str(c["column"]),
            mode=str(c["mode"]),
            key_id=str(c["key_id"]),
            original_type=str(c["original_type"]),
            context={str(k): str(v) for k, v in c["context"].items()},
            subject_column=c["subject_column"],
            format_version=int(c["format_version"]),
        )
        for c in raw
    ]
