"""Right to be forgotten: remove data subjects from Parquet datasets and destroy their keys.

>>> receipt = ag.forget(
...     ["subject-123", "subject-456"],
...     datasets=[
...         ag.Dataset("data/raw/patients/", id_column="patient_id"),
...         ag.Dataset("data/curated/", id_column="patient_token", pseudonymised_with="hash-key"),
...     ],
...     audit=ag.AuditLog("audit.jsonl"), subject_keys=ag.SubjectKeyStore())
>>> receipt.rows_removed, receipt.files_rewritten
>>> ag.verify_forgotten("subject-123", datasets).ok
True

Only affected files are rewritten, each swapped in atomically; an interrupted call is completed
by calling it again (a journal in the dataset root records progress). ``dry_run=True`` reports
what would change and writes no data. Crypto-shredding: :func:`encrypt_subject_column` encrypts
a column under one key per subject; ``forget(..., subject_keys=store)`` destroys those keys, so
every copy of those values anywhere becomes unreadable (:class:`~amlguard.ForgottenError`, or
null with ``on_forgotten="null"``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from html import escape
from typing import Any, Optional, Union

from . import _frames
from . import audit as _audit
from ._amlguard import LocalKeyring, SubjectKeyStore, forget_json, verify_forgotten_json
from .exceptions import InvalidArgumentError

__all__ = [
    "Dataset",
    "ForgetReceipt",
    "ForgetVerification",
    "SubjectKeyStore",
    "decrypt_subject_column",
    "encrypt_subject_column",
    "forget",
    "verify_forgotten",
]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Dataset:
    """A Parquet file, folder or hive-partitioned tree (or, with ``format="delta"``, a Delta
    Lake table), and the column identifying subjects. Parquet datasets may be Azure Blob
    prefixes (``az://container/prefix/``; see :func:`forget` for ``storage_options``).

    ``pseudonymised_with`` names the keyring key the id column was pseudonymised with
    (``pseudonym_op`` ``"hash"`` with ``encoding`` / ``truncate_bytes``, or ``"tokenize"``
    with ``tweak``), exactly as in the masking policy; rows are then found by recomputing the
    pseudonym from the raw identifier.
    """

    path: PathLike
    id_column: str
    pseudonymised_with: Optional[str] = None
    pseudonym_op: str = "hash"
    encoding: str = "hex"
    truncate_bytes: Optional[int] = None
    tweak: str = ""
    format: str = "parquet"

    def __post_init__(self) -> None:
        if self.format not in ("parquet", "delta"):
            raise InvalidArgumentError(f"format: use 'parquet' or 'delta', not {self.format!r}")

    def _spec(self) -> tuple[str, str, Optional[str], str, str, Optional[int], str]:
        return (
            os.fspath(self.path),
            self.id_column,
            self.pseudonymised_with,
            self.pseudonym_op,
            self.encoding,
            self.truncate_bytes,
            self.tweak,
        )


@dataclass(frozen=True)
class ForgetReceipt:
    """What :func:`forget` did (or, with ``dry_run``, would do)."""

    run_id: str
    dry_run: bool
    resumed: bool
    subjects: int
    subject_pseudonyms: list[str]
    datasets: list[str]
    files_scanned: int
    row_groups_scanned: int
    row_groups_skipped: int
    files: list[dict[str, Any]]
    rows_removed: int
    bytes_rewritten: int
    bytes_total: int
    keys_destroyed: list[dict[str, Any]]
    audit_record_id: Optional[int]
    started_at: str
    elapsed_seconds: float
    delta_tables: list[dict[str, Any]] = field(default_factory=list)
    directories_removed: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def files_rewritten(self) -> list[str]:
        """Paths of the files rewritten (or removed whole)."""
        return [str(f["path"]) for f in self.files]

    @property
    def files_removed(self) -> list[str]:
        """Paths of the files removed whole: those in a subject's hive partition of the id
        column."""
        return [str(f["path"]) for f in self.files if f.get("removed")]

    @property
    def rows_removed_per_file(self) -> dict[str, int]:
        """Rows removed, per file."""
        return {str(f["path"]): int(f["rows_removed"]) for f in self.files}

    def to_json(self) -> str:
        """The receipt as JSON."""
        return json.dumps(self.raw)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(str(f['path']))}</td><td>{f['rows_removed']}</td>"
            f"<td>{f['rows_before']}</td><td>{f['bytes_before']}</td><td>{f['bytes_after']}</td></tr>"
            for f in self.files
        )
        keys = "".join(
            f"<li>{escape(k['key_handle'])}: unusable {escape(str(k['unusable_at']))}, "
            f"removed {escape(str(k['physically_removed_at']))}</li>"
            for k in self.keys_destroyed
        )
        title = "amlguard ForgetReceipt" + (" (dry run)" if self.dry_run else "")
        return (
            f"<div><b>{title}</b>: {self.subjects} subject(s), {self.rows_removed} rows removed "
            f"from {len(self.files)} of {self.files_scanned} files; {self.bytes_rewritten:,} of "
            f"{self.bytes_total:,} bytes rewritten; {self.row_groups_skipped} row groups skipped; "
            f"{self.elapsed_seconds:.3f} s; audit record {self.audit_record_id}"
            f"<table><tr><th>file</th><th>rows removed</th><th>rows before</th>"
            f"<th>bytes before</th><th>bytes after</th></tr>{rows}</table>"
            + (f"keys destroyed:<ul>{keys}</ul>" if keys else "")
            + "</div>"
        )


@dataclass(frozen=True)
class ForgetVerification:
    """What :func:`verify_forgotten` found; true when no subject row remains."""

    ok: bool
    files_scanned: int
    rows_found: int
    files_with_rows: list[tuple[str, int]]

    def __bool__(self) -> bool:
        return self.ok


def _subjects(subjects: Union[str, list[str], tuple[str, ...]]) -> list[str]:
    return [subjects] if isinstance(subjects, str) else [str(s) for s in subjects]


def forget(
    subjects: Union[str, list[str], tuple[str, ...]],
    datasets: list[Dataset],
    *,
    keyring: Optional[LocalKeyring] = None,
    audit: _audit.AuditTarget = None,
    subject_keys: Optional[SubjectKeyStore] = None,
    dry_run: bool = False,
    threads: Optional[int] = None,
    vacuum: bool = False,
    storage_options: Optional[dict[str, Any]] = None,
) -> ForgetReceipt:
    """Remove every row of ``subjects`` from ``datasets`` and destroy their keys in
    ``subject_keys``; the receipt goes to ``audit`` (or ``$AMLGUARD_AUDIT_LOG``).

    Delta tables (``Dataset(..., format="delta")``, local or ``az://``) are handled first,
    each in one delete transaction, then files whose deletion vectors still mask subject rows
    are rewritten; ``vacuum=True`` then removes their superseded files and subject change-data
    files and expires the transaction log before the current version, ending time travel to
    older versions (see :mod:`amlguard.delta`). Their part of the receipt is
    ``receipt.delta_tables``, each also recorded in the audit log.

    Parquet datasets may be on Azure Blob Storage (``az://container/prefix/``), reached with
    ``storage_options``: an affected blob is replaced in one request made on the condition
    that its ETag is still the one it was read at, so a blob changed meanwhile is refused
    (:class:`~amlguard.ConcurrentModificationError`) and blobs without a subject row are never
    written."""
    log = _audit.ready(audit)
    names = _subjects(subjects)
    delta_tables = []
    for dataset in (d for d in datasets if d.format == "delta"):
        from .delta import forget_table

        with _audit.operation(log, "forget", dataset=os.fspath(dataset.path)) as record:
            record.subjects = names
            table = forget_table(names, dataset, keyring=keyring, dry_run=dry_run, vacuum=vacuum,
                                 storage_options=storage_options)  # fmt: skip
            record.rows = table["rows_removed"]
            record.details.update(
                format="delta", dry_run=dry_run, vacuum=vacuum,
                version_before=table["version_before"], version_after=table["version_after"],
                files_rewritten=len(table["files"]), files_vacuumed=len(table["files_vacuumed"]),
                versions_lost_history=table["versions_lost_history"],
                log_versions_expired=len(table["log_versions_expired"]),
                files_purged_of_masked_rows=len(table["files_purged_of_masked_rows"]),
                remaining_copies=len(table["remaining_copies"]),
                retention_restored=table["retention_restored"],
            )  # fmt: skip
        delta_tables.append(table)
    text = forget_json(
        names,
        [d._spec() for d in datasets if d.format == "parquet"],
        keyring,
        dry_run,
        threads,
        log,
        subject_keys,
        storage_options,
    )
    raw = json.loads(text)
    raw["delta_tables"] = delta_tables
    raw["datasets"] = list(raw["datasets"]) + [t["path"] for t in delta_tables]
    raw["rows_removed"] = int(raw["rows_removed"]) + sum(t["rows_removed"] for t in delta_tables)
    return ForgetReceipt(**raw, raw=raw)


def verify_forgotten(
    subjects: Union[str, list[str], tuple[str, ...]],
    datasets: list[Dataset],
    *,
    keyring: Optional[LocalKeyring] = None,
    threads: Optional[int] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> ForgetVerification:
    """Scan ``datasets`` for any remaining row of ``subjects`` (Delta tables: their current
    version, rows masked by a deletion vector included)."""
    names = _subjects(subjects)
    parquet = [d._spec() for d in datasets if d.format == "parquet"]
    raw = json.loads(verify_forgotten_json(names, parquet, keyring, threads, storage_options))
    files_scanned = int(raw["files_scanned"])
    found = [(str(p), int(n)) for p, n in raw["files_with_rows"]]
    for dataset in (d for d in datasets if d.format == "delta"):
        from .delta import verify_table

        scanned, rows = verify_table(names, dataset, keyring, storage_options)
        files_scanned += scanned
        found.extend(rows)
    rows_found = sum(n for _, n in found)
    return ForgetVerification(
        ok=rows_found == 0,
        files_scanned=files_scanned,
        rows_found=rows_found,
        files_with_rows=found,
    )


def encrypt_subject_column(
    data: Any, column: str, subject_column: str, store: SubjectKeyStore, *, context: str = ""
) -> Any:
    """Encrypt ``column`` value by value under the key of each row's subject
    (``subject_column``), AES-256-GCM with column and ``context`` bound. Same type out."""
    stream, rebuild = _frames.to_stream(data)
    return rebuild(store.encrypt_column(stream, column, subject_column, context))


def decrypt_subject_column(
    data: Any,
    column: str,
    store: SubjectKeyStore,
    *,
    context: str = "",
    on_forgotten: str = "error",
) -> Any:
    """Decrypt a column made by :func:`encrypt_subject_column`, restoring its type. Values of
    forgotten subjects raise :class:`~amlguard.ForgottenError`, or are null with
    ``on_forgotten="null"`` (for analytics)."""
    stream, rebuild = _frames.to_stream(data)
    return rebuild(store.decrypt_column(stream, column, context, on_forgotten))
