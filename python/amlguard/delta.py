"""Forgetting subjects in Delta Lake tables, through the ``deltalake`` package (delta-rs).

A Delta delete alone does not erase: the superseded data files stay on storage for time travel,
change-data-feed files (``_change_data/``) hold the deleted rows, and per-file min/max
statistics in the transaction log can hold the identifier itself. So :func:`forget_table`

1. deletes the subjects' rows in one transaction. deltalake rewrites every file holding one
   (copy-on-write; it writes no deletion vectors), so the current version holds no copy. The
   delete predicate compares SHA-256 digests of the identifiers, so the commit's recorded
   predicate does not name them in clear (a digest of a guessable identifier is guessable);
2. with ``vacuum=True`` only, removes every file the current version no longer references
   (retention 0, the retention check disabled) and the change-data files holding subject rows:
   time travel to the older versions stops working, and the receipt lists those versions;
3. reports what still holds a copy that it does not remove: superseded files (without
   ``vacuum``), change-data files, transaction-log entries whose statistics or text name an
   identifier, and whatever the storage keeps on its own (soft delete, snapshots, backups).

``dry_run=True`` reports the same facts and changes nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .exceptions import AmlguardError, ColumnNotFoundError, InvalidArgumentError

if TYPE_CHECKING:
    from ._amlguard import LocalKeyring
    from .forget import Dataset

__all__ = ["forget_table", "verify_table"]

STORAGE_NOTE = (
    "copies kept by the storage itself (blob soft delete, snapshots, versioning, backups) "
    "are outside amlguard's reach: expire them"
)


def _deltalake() -> Any:
    try:
        return importlib.import_module("deltalake")
    except ImportError:
        raise AmlguardError(
            "Delta Lake datasets need the deltalake package: pip install 'amlguard[delta]'"
        ) from None


def _open(path: str, version: Optional[int] = None) -> Any:
    deltalake = _deltalake()
    if not deltalake.DeltaTable.is_deltatable(path):
        raise FileNotFoundError(f"{path}: not a Delta Lake table (no _delta_log)")
    return deltalake.DeltaTable(path, version=version)


def _id_values(subjects: list[str], dataset: Dataset, keyring: Optional[LocalKeyring]) -> list[Any]:
    """The values the id column holds for ``subjects``: themselves, or recomputed pseudonyms."""
    if dataset.pseudonymised_with is None:
        return list(subjects)
    import pyarrow as pa

    from .policy import Policy

    rule: dict[str, Any] = {"op": dataset.pseudonym_op, "key": dataset.pseudonymised_with}
    if dataset.pseudonym_op == "hash":
        rule["encoding"] = dataset.encoding
        if dataset.truncate_bytes is not None:
            rule["truncate_bytes"] = dataset.truncate_bytes
    elif dataset.pseudonym_op == "tokenize":
        if dataset.tweak:
            rule["tweak"] = dataset.tweak
    else:
        raise InvalidArgumentError("pseudonym_op: use 'hash' or 'tokenize'")
    policy = Policy.from_dict({"version": 1, "columns": {"id": rule}})
    masked = policy.apply(pa.table({"id": pa.array(subjects, pa.string())}), keyring=keyring)
    return [str(v) for v in masked.column("id").to_pylist()]


def _typed_values(values: list[Any], schema: Any, column: str) -> Any:
    """``values`` as an Arrow array of the id column's type (so ints match ints); a subject
    that cannot be of that type (text in an integer column) can match no row and is left out."""
    import pyarrow as pa

    if column not in schema.names:
        raise ColumnNotFoundError(f"id column {column!r} is not in the table ({schema.names})")
    kind = _plain(schema.field(column).type)
    kept = []
    for value in values:
        try:
            kept.extend(pa.array([str(value)], pa.string()).cast(kind).to_pylist())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return pa.array(kept, kind)


def _plain(kind: Any) -> Any:
    """The non-view form of a type: deltalake writes string_view, which ``is_in`` lacks."""
    import pyarrow as pa

    if pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_binary_view(kind):
        return pa.binary()
    return kind


def _id_expression(column: str, values: Any) -> Any:
    """``column`` is one of ``values``; the column is cast first because a file's physical
    type can be a view type the table schema does not show."""
    import pyarrow.compute as pc

    return pc.field(column).cast(values.type).isin(values)


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _digest_predicate(column: str, values: Any) -> str:
    """A predicate matching ``values`` by the SHA-256 of their text form, so the predicate
    recorded in the commit does not carry them in clear."""
    digests = sorted({hashlib.sha256(str(v).encode()).hexdigest() for v in values.to_pylist()})
    listed = ", ".join(f"'{d}'" for d in digests)
    return f"encode(sha256(CAST({_quote_identifier(column)} AS VARCHAR)), 'hex') IN ({listed})"


def _matches_per_file(table: Any, root: str, column: str, values: Any) -> dict[str, int]:
    """Subject rows per data file of the table's version (paths as ``file_uris`` gives them)."""
    dataset = table.to_pyarrow_dataset()
    matches: dict[str, int] = {}
    expression = _id_expression(column, values)
    for fragment in dataset.get_fragments():
        count = fragment.count_rows(filter=expression)
        if count:
            # Fragment paths are relative to the table root.
            matches[os.path.normpath(os.path.join(root, fragment.path))] = int(count)
    return matches


def _rows_in_file(path: Path, column: str, values: Any) -> Optional[int]:
    """Subject rows in one loose Parquet file; ``None`` when it lacks the column."""
    import pyarrow.dataset as ds

    piece = ds.dataset(str(path), format="parquet")
    if column not in piece.schema.names:
        return None
    return int(piece.count_rows(filter=_id_expression(column, values)))


def _current_files(table: Any) -> set[str]:
    return {os.path.normpath(p) for p in table.file_uris()}


def _versions_referencing(path: str, newest: int, files: set[str]) -> list[int]:
    """Versions up to ``newest`` whose snapshot references any of ``files``."""
    found = []
    for version in range(newest + 1):
        try:
            snapshot = _open(path, version)
        except Exception:  # noqa: BLE001 - a version already unreadable references nothing
            continue
        if _current_files(snapshot) & files:
            found.append(version)
    return found


def _log_mentions(root: Path, values: Any) -> list[dict[str, str]]:
    """Transaction-log files whose bytes contain a (text) identifier: statistics or predicates."""
    needles = [str(v).encode() for v in values.to_pylist() if isinstance(v, str) and len(v) >= 3]
    found: list[dict[str, str]] = []
    if not needles:
        return found
    for entry in sorted((root / "_delta_log").glob("*")):
        if not entry.is_file():
            continue
        data = entry.read_bytes()
        if any(needle in data for needle in needles):
            kind = "log checkpoint" if entry.suffix == ".parquet" else "log commit"
            found.append(
                {
                    "path": str(entry),
                    "kind": kind,
                    "note": "per-file statistics or text in the transaction log name an "
                    "identifier; removed only when the log expires "
                    "(delta.logRetentionDuration, then a checkpoint and cleanup_metadata)",
                }
            )
    return found


def _loose_copies(
    root: Path, current: set[str], column: str, values: Any
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Parquet files outside the current snapshot (superseded data, change data) holding rows."""
    copies, change_data = [], []
    for entry in sorted(root.rglob("*.parquet")):
        relative = entry.relative_to(root).parts
        if relative[0] == "_delta_log" or os.path.normpath(str(entry)) in current:
            continue
        rows = _rows_in_file(entry, column, values)
        if rows == 0:
            continue
        is_change_data = relative[0] == "_change_data"
        if is_change_data:
            change_data.append(entry)
        copies.append(
            {
                "path": str(entry),
                "kind": "change data feed" if is_change_data else "superseded data file",
                "rows": rows,
                "note": "lacks the id column (partition value); may hold rows"
                if rows is None
                else "holds subject rows",
            }
        )
    return copies, change_data


def forget_table(
    subjects: list[str],
    dataset: Dataset,
    *,
    keyring: Optional[LocalKeyring] = None,
    dry_run: bool = False,
    vacuum: bool = False,
) -> dict[str, Any]:
    """Delete ``subjects``' rows from one Delta table and purge them as far as allowed;
    returns the table's part of the receipt (see the module documentation)."""
    path = os.fspath(dataset.path)
    root = Path(path)
    table = _open(path)
    version_before = int(table.version())
    values = _typed_values(
        _id_values(subjects, dataset, keyring), table.to_pyarrow_dataset().schema, dataset.id_column
    )
    matches = _matches_per_file(table, path, dataset.id_column, values)
    rows_to_remove = sum(matches.values())
    protocol = table.protocol()
    features = set(protocol.reader_features or []) | set(protocol.writer_features or [])
    receipt: dict[str, Any] = {
        "path": path,
        "format": "delta",
        "dry_run": dry_run,
        "vacuum": vacuum,
        "version_before": version_before,
        "version_after": version_before,
        "rows_removed": rows_to_remove,
        "files": [{"path": p, "rows_removed": n} for p, n in sorted(matches.items())],
        "deletion_vectors_enabled": "deletionVectors" in features,
        "versions_with_subject_rows": _versions_referencing(path, version_before, set(matches))
        if matches
        else [],
        "files_vacuumed": [],
        "versions_lost_history": [],
        "change_data_files_removed": [],
        "remaining_copies": [],
    }
    if not dry_run and matches:
        table.delete(_digest_predicate(dataset.id_column, values))
        receipt["version_after"] = int(table.version())
    current = _current_files(table)
    copies, change_data = _loose_copies(root, current, dataset.id_column, values)
    if vacuum and not dry_run:
        superseded = {os.path.normpath(str(root / p)) for p in table.vacuum(
            retention_hours=0, enforce_retention_duration=False, dry_run=True
        )}  # fmt: skip
        lost = _versions_referencing(path, int(table.version()), superseded)
        removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        receipt["files_vacuumed"] = sorted(str(root / p) for p in removed)
        receipt["versions_lost_history"] = lost
        for entry in change_data:
            entry.unlink()
        receipt["change_data_files_removed"] = [str(p) for p in change_data]
        copies, _ = _loose_copies(root, _current_files(_open(path)), dataset.id_column, values)
    receipt["remaining_copies"] = (
        copies + _log_mentions(root, values) + [{"kind": "storage", "note": STORAGE_NOTE}]
    )
    return receipt


def verify_table(
    subjects: list[str], dataset: Dataset, keyring: Optional[LocalKeyring] = None
) -> tuple[int, list[tuple[str, int]]]:
    """Files scanned and (file, rows) still holding ``subjects`` in the current version."""
    path = os.fspath(dataset.path)
    table = _open(path)
    values = _typed_values(
        _id_values(subjects, dataset, keyring), table.to_pyarrow_dataset().schema, dataset.id_column
    )
    matches = _matches_per_file(table, path, dataset.id_column, values)
    return len(table.file_uris()), sorted(matches.items())
