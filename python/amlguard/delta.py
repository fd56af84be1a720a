"""Forgetting subjects in Delta Lake tables, through the ``deltalake`` package (delta-rs).

A Delta delete alone does not erase: the superseded data files stay on storage for time travel,
change-data-feed files (``_change_data/``) hold the deleted rows, per-file min/max statistics
in the transaction log can hold the identifier itself, and in tables written with deletion
vectors (Spark, Databricks) a "deleted" row stays in its data file. So :func:`forget_table`

1. deletes the subjects' rows in one transaction. deltalake rewrites every file holding a live
   one (copy-on-write; it writes no deletion vectors) and drops the rows the file's deletion
   vector masked, so the current version holds no copy. The delete predicate compares SHA-256
   digests of the identifiers, so the commit's recorded predicate does not name them in clear
   (a digest of a guessable identifier is guessable);
2. rewrites the files whose deletion vector still masks a subject row (no live one, so the
   delete left them), with deltalake's Z-order over the partitions holding them: the rewrite
   applies the deletion vectors, as ``REORG TABLE ... APPLY (PURGE)`` does;
3. with ``vacuum=True`` only, removes every file the current version no longer references
   (retention 0, the retention check disabled) and the change-data files holding subject rows,
   then expires the transaction log: a checkpoint at the current version with log and
   tombstone retention set to 0, ``cleanup_metadata``, and the two retention properties set
   back. Time travel to every older version stops working; the receipt lists those versions.
   The commit that sets retention to 0 also records the values to set back (table property
   ``amlguard.forget.retentionToRestore``), so a run killed before setting them back leaves
   them on the table, and the next forget on it, whatever its subjects, sets them back first;
4. reports what still holds a copy that it does not remove: superseded files (without
   ``vacuum``), change-data files, transaction-log entries whose statistics or text name an
   identifier, rows still masked by a deletion vector, and whatever the storage keeps on its
   own (soft delete, snapshots, backups).

Tables may be local or on Azure Blob Storage (``az://container/table``, reached with the same
``storage_options`` as amlguard's blob layer). ``dry_run=True`` reports the same facts and
changes nothing. A table with a reader feature this module cannot scan correctly (column
mapping, for one) is refused with :class:`~amlguard.UnsupportedTableFeatureError`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import unquote

from .exceptions import (
    AmlguardError,
    ColumnNotFoundError,
    InvalidArgumentError,
    InvalidDataError,
    UnsupportedTableFeatureError,
)
from .files import is_blob_url

if TYPE_CHECKING:
    from ._amlguard import LocalKeyring
    from .forget import Dataset

__all__ = ["forget_table", "verify_table"]

LOG_RETENTION = "delta.logRetentionDuration"
TOMBSTONE_RETENTION = "delta.deletedFileRetentionDuration"
# Delta's defaults, written back when the table had no value of its own.
RETENTION_DEFAULTS = {LOG_RETENTION: "interval 30 days", TOMBSTONE_RETENTION: "interval 1 week"}
EXPIRE_NOW = "interval 0 seconds"
# Set to the retention values to write back (JSON) in the same commit that sets retention to 0,
# and emptied in the commit that writes them back: a non-empty value means a run stopped in
# between. deltalake cannot remove a table property, hence "" for "nothing to restore".
RETENTION_TO_RESTORE = "amlguard.forget.retentionToRestore"
# Reader features under which a plain Parquet scan of each file reads it right (deletion
# vectors are applied here from deltalake's selection vectors).
READABLE_FEATURES = {"deletionVectors", "timestampNtz", "variantType", "variantType-preview"}

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


def _options(path: str, storage_options: Optional[dict[str, Any]]) -> Optional[dict[str, str]]:
    """deltalake's storage options (text values) for a blob table; the keys are object_store's,
    as in amlguard's blob layer, so both resolve the same credentials."""
    if not is_blob_url(path):
        return None
    return {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in (storage_options or {}).items()
    }


def _open(path: str, options: Optional[dict[str, str]], version: Optional[int] = None) -> Any:
    deltalake = _deltalake()
    if not deltalake.DeltaTable.is_deltatable(path, storage_options=options):
        raise FileNotFoundError(f"{path}: not a Delta Lake table (no _delta_log)")
    return deltalake.DeltaTable(path, version=version, storage_options=options)


def _filesystem(path: str, options: Optional[dict[str, str]]) -> Any:
    """The table's storage as a pyarrow filesystem rooted at the table (local or blob)."""
    import pyarrow.fs as pa_fs
    from deltalake.fs import DeltaStorageHandler

    root = path if is_blob_url(path) else os.path.abspath(path)
    return pa_fs.PyFileSystem(DeltaStorageHandler(root, options))


def _full(root: str, relative: str) -> str:
    """A file's path as the receipt gives it: under ``root`` as the caller spelled it."""
    if is_blob_url(root):
        return root.rstrip("/") + "/" + relative
    return os.path.normpath(os.path.join(root, relative))


def _listing(fs: Any) -> list[str]:
    """Every file under the table root, relative to it."""
    import pyarrow.fs as pa_fs

    infos = fs.get_file_info(pa_fs.FileSelector("", recursive=True))
    return sorted(i.path for i in infos if i.type == pa_fs.FileType.File)


def _reader_features(table: Any) -> set[str]:
    return set(table.protocol().reader_features or [])


def _check_features(path: str, table: Any) -> None:
    """Refuse tables whose files a plain Parquet scan would misread."""
    protocol = table.protocol()
    refused = sorted(_reader_features(table) - READABLE_FEATURES)
    mapping = table.metadata().configuration.get("delta.columnMapping.mode", "none")
    if protocol.min_reader_version == 2 and mapping != "none":
        refused.append("columnMapping")
    if protocol.min_reader_version > 3:
        refused.append(f"reader version {protocol.min_reader_version}")
    if refused:
        raise UnsupportedTableFeatureError(
            f"{path}: forget does not support the Delta table feature(s) {refused} "
            f"(supported reader features: {sorted(READABLE_FEATURES)}); nothing was changed"
        )


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


def _data_files(table: Any) -> list[tuple[str, dict[str, Any]]]:
    """The current version's data files: each one's path relative to the root (decoded: the
    log holds it URI-encoded) and its partition values, typed as the table schema has them."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=False))
    paths = [unquote(path) for path in actions.column("path").to_pylist()]
    if "partition" not in actions.column_names:
        return [(path, {}) for path in paths]
    return list(zip(paths, actions.column("partition").to_pylist()))


def _partition_expression(values: dict[str, Any], schema: Any) -> Any:
    """What a file's partition values guarantee of its rows, so a scan fills the partition
    columns the file lacks (a null value is Hive's null partition)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    expression = None
    for column, value in values.items():
        field = pc.field(column)
        term = (
            field.is_null()
            if value is None
            else field == pa.scalar(value, schema.field(column).type)
        )
        expression = term if expression is None else expression & term
    return expression


def _dataset(table: Any, fs: Any) -> Any:
    """The current version as a pyarrow dataset of one fragment per data file (paths relative
    to the root). deltalake's ``to_pyarrow_dataset`` refuses tables with deletion vectors; for
    those the fragments are built from the add actions, and the vectors applied in
    :func:`_scan`."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if "deletionVectors" not in _reader_features(table):
        return table.to_pyarrow_dataset(filesystem=fs)
    schema = pa.schema(table.schema().to_arrow())
    parquet = ds.ParquetFileFormat()
    fragments = [
        parquet.make_fragment(
            path, filesystem=fs, partition_expression=_partition_expression(values, schema)
        )
        for path, values in _data_files(table)
    ]
    return ds.FileSystemDataset(fragments, schema, parquet, fs)


def _kept_rows(table: Any) -> dict[str, list[bool]]:
    """Per data file with a deletion vector (path relative to the root): which rows it keeps."""
    import pyarrow as pa

    if "deletionVectors" not in _reader_features(table):
        return {}
    prefix = table.table_uri.rstrip("/") + "/"
    kept = {}
    for row in pa.table(table.deletion_vectors().read_all()).to_pylist():
        uri = str(row["filepath"])
        # Files outside the table root keep their absolute address, as their add action does.
        relative = uri[len(prefix) :] if uri.startswith(prefix) else uri
        kept[unquote(relative)] = list(row["selection_vector"])
    return kept


def _scan(table: Any, fs: Any, column: str, values: Any) -> dict[str, tuple[int, int]]:
    """Per data file of the table's version holding a subject: (live rows, rows masked by the
    file's deletion vector, which stay in the file until it is rewritten)."""
    import pyarrow.compute as pc

    dataset = _dataset(table, fs)
    kept_rows = _kept_rows(table)
    expression = _id_expression(column, values)
    found: dict[str, tuple[int, int]] = {}
    applied = set()
    for fragment in dataset.get_fragments():
        kept = kept_rows.get(fragment.path)
        if kept is None:
            # The dataset's schema, so a partition column is read from the partition values.
            scanner = fragment.scanner(schema=dataset.schema, filter=expression)
            live, masked = int(scanner.count_rows()), 0
        else:
            applied.add(fragment.path)
            ids = fragment.to_table(columns=[column], schema=dataset.schema).column(column)
            hits = pc.is_in(ids.cast(values.type), value_set=values).to_pylist()
            # A selection vector may stop at the last masked row: the rows after it are kept.
            kept = kept + [True] * (len(hits) - len(kept))
            live = sum(1 for hit, keep in zip(hits, kept) if hit and keep)
            masked = sum(1 for hit, keep in zip(hits, kept) if hit and not keep)
        if live or masked:
            found[fragment.path] = (live, masked)
    if set(kept_rows) - applied:
        # Never count masked rows as live (or miss them) because a path did not line up.
        raise UnsupportedTableFeatureError(
            f"{table.table_uri}: deletion vectors of {sorted(set(kept_rows) - applied)} match "
            "no data file as amlguard reads the table"
        )
    return found


def _rows_in_file(fs: Any, relative: str, column: str, values: Any) -> Optional[int]:
    """Subject rows in one loose Parquet file; ``None`` when it lacks the column."""
    import pyarrow.dataset as ds

    piece = ds.dataset(relative, filesystem=fs, format="parquet")
    if column not in piece.schema.names:
        return None
    return int(piece.count_rows(filter=_id_expression(column, values)))


def _current_files(table: Any) -> set[str]:
    import pyarrow as pa

    return set(pa.table(table.get_add_actions()).column("path").to_pylist())


def _versions_referencing(
    path: str, options: Optional[dict[str, str]], newest: int, files: set[str]
) -> list[int]:
    """Versions up to ``newest`` whose snapshot references any of ``files``."""
    found = []
    for version in range(newest + 1):
        try:
            snapshot = _open(path, options, version)
        except Exception:  # noqa: BLE001 - a version already unreadable references nothing
            continue
        if _current_files(snapshot) & files:
            found.append(version)
    return found


def _log_versions(fs: Any) -> set[int]:
    """Versions whose commit file is still in ``_delta_log``."""
    names = (p.rsplit("/", 1)[-1] for p in _listing(fs) if p.startswith("_delta_log/"))
    return {int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit()}


def _log_text(fs: Any, relative: str) -> bytes:
    """A log file's bytes; for a Parquet checkpoint also its decoded rows, since compression
    can hide a value from a byte search."""
    with fs.open_input_file(relative) as handle:
        data: bytes = handle.read()
    if relative.endswith(".parquet"):
        import pyarrow.parquet as pq

        rows = pq.read_table(relative, filesystem=fs).to_pylist()
        data += json.dumps(rows, default=str).encode()
    return data


def _log_mentions(fs: Any, root: str, values: Any) -> list[dict[str, str]]:
    """Transaction-log files whose content holds a (text) identifier: statistics, partition
    values or predicates."""
    needles = [str(v).encode() for v in values.to_pylist() if isinstance(v, str) and len(v) >= 3]
    found: list[dict[str, str]] = []
    if not needles:
        return found
    for relative in _listing(fs):
        if not relative.startswith("_delta_log/"):
            continue
        data = _log_text(fs, relative)
        if any(needle in data for needle in needles):
            kind = "log checkpoint" if ".checkpoint." in relative else "log commit"
            found.append(
                {
                    "path": _full(root, relative),
                    "kind": kind,
                    "note": "per-file statistics or text in the transaction log name an "
                    "identifier; forget with vacuum=True expires the log before the current "
                    "version",
                }
            )
    return found


def _loose_copies(
    fs: Any, root: str, current: set[str], column: str, values: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    """Parquet files outside the current snapshot (superseded data, change data) holding rows;
    and the change-data ones (relative paths)."""
    copies, change_data = [], []
    for relative in _listing(fs):
        if (
            not relative.endswith(".parquet")
            or relative.startswith("_delta_log/")
            or relative in current
            or unquote(relative) in current
        ):
            continue
        rows = _rows_in_file(fs, relative, column, values)
        if rows == 0:
            continue
        is_change_data = relative.startswith("_change_data/")
        if is_change_data:
            change_data.append(relative)
        copies.append(
            {
                "path": _full(root, relative),
                "kind": "change data feed" if is_change_data else "superseded data file",
                "rows": rows,
                "note": "lacks the id column (partition value); may hold rows"
                if rows is None
                else "holds subject rows",
            }
        )
    return copies, change_data


def _masked_copies(root: str, scan: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    return [
        {
            "path": _full(root, relative),
            "kind": "rows masked by a deletion vector",
            "rows": masked,
            "note": "deleted by a deletion vector but still in the data file",
        }
        for relative, (_, masked) in sorted(scan.items())
        if masked
    ]


def _purge_masked_rows(table: Any, files: set[str], column: str) -> None:
    """Rewrite the partitions holding ``files`` with deltalake's Z-order, which reads through
    the deletion vectors, so the masked rows are not copied; deltalake has no call that
    rewrites one chosen file (compaction skips a file alone in its bin)."""
    partition_columns = list(table.metadata().partition_columns)
    names = [f.name for f in table.schema().fields]
    order = column if column not in partition_columns else next(
        n for n in names if n not in partition_columns
    )  # fmt: skip
    partitions = {
        tuple((c, values.get(c)) for c in partition_columns)
        for path, values in _data_files(table)
        if path in files
    }
    for partition in sorted(partitions, key=str):
        filters = [(c, "=", None if v is None else str(v)) for c, v in partition]
        table.optimize.z_order([order], partition_filters=filters or None)


def _retention_to_restore(path: str, table: Any) -> Optional[dict[str, str]]:
    """The retention values a stopped run left to set back, if any."""
    text = table.metadata().configuration.get(RETENTION_TO_RESTORE, "")
    if not text:
        return None
    try:
        saved = json.loads(text)
    except ValueError:
        saved = None
    if (
        not isinstance(saved, dict)
        or set(saved) != set(RETENTION_DEFAULTS)
        or not all(isinstance(value, str) and value for value in saved.values())
    ):
        raise InvalidDataError(
            f"{path}: table property {RETENTION_TO_RESTORE} = {text!r} is not the retention "
            f"values amlguard records; set {sorted(RETENTION_DEFAULTS)} and set it to '' by "
            "hand; nothing was changed"
        )
    return {key: str(value) for key, value in saved.items()}


def _set_retention_back(table: Any, saved: dict[str, str]) -> None:
    """One commit: the retention values back, and nothing left to restore."""
    table.alter.set_table_properties({**saved, RETENTION_TO_RESTORE: ""}, raise_if_not_exists=False)


def _expire_log(table: Any, fs: Any) -> list[int]:
    """Checkpoint the current version and delete the log before it (Delta's metadata cleanup,
    with log and tombstone retention 0 for the call, so the checkpoint carries no tombstones
    of removed files either); returns the versions whose commit files went."""
    before = _log_versions(fs)
    configuration = table.metadata().configuration
    # EXPIRE_NOW with nothing recorded to restore is left by a run of an amlguard that did not
    # record the values yet: Delta's defaults are the best guess.
    saved = {
        key: default if configuration.get(key, EXPIRE_NOW) == EXPIRE_NOW else configuration[key]
        for key, default in RETENTION_DEFAULTS.items()
    }
    # The values to set back go into the very commit that zeroes retention, so no moment
    # exists at which retention is 0 and the values are recorded nowhere.
    expire = {key: EXPIRE_NOW for key in saved}
    expire[RETENTION_TO_RESTORE] = json.dumps(saved, sort_keys=True)
    table.alter.set_table_properties(expire, raise_if_not_exists=False)
    try:
        table.create_checkpoint()
        table.cleanup_metadata()
    finally:
        _set_retention_back(table, saved)
    return sorted(before - _log_versions(fs))


def _remove_empty_folders(root: str) -> None:
    """Local partition folders emptied by vacuum: their names can be identifiers."""
    if is_blob_url(root):
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        name = os.path.basename(folder)
        if folder != os.path.normpath(root) and not name.startswith("_"):
            try:
                os.rmdir(folder)
            except OSError:
                continue


def forget_table(
    subjects: list[str],
    dataset: Dataset,
    *,
    keyring: Optional[LocalKeyring] = None,
    dry_run: bool = False,
    vacuum: bool = False,
    storage_options: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Delete ``subjects``' rows from one Delta table and purge them as far as allowed;
    returns the table's part of the receipt (see the module documentation)."""
    path = os.fspath(dataset.path)
    options = _options(path, storage_options)
    table = _open(path, options)
    _check_features(path, table)
    fs = _filesystem(path, options)
    version_before = int(table.version())
    # A run stopped between its two retention commits left retention at 0: set it back first.
    retention_restored = _retention_to_restore(path, table)
    if retention_restored is not None and not dry_run:
        _set_retention_back(table, retention_restored)
    column = dataset.id_column
    values = _typed_values(
        _id_values(subjects, dataset, keyring), _dataset(table, fs).schema, column
    )
    scan = _scan(table, fs, column, values)
    live = {p: n for p, (n, _) in scan.items() if n}
    receipt: dict[str, Any] = {
        "path": path,
        "format": "delta",
        "dry_run": dry_run,
        "vacuum": vacuum,
        "version_before": version_before,
        "version_after": int(table.version()),
        "retention_restored": retention_restored,
        "rows_removed": sum(live.values()),
        "files": [{"path": _full(path, p), "rows_removed": n} for p, n in sorted(live.items())],
        "deletion_vectors_enabled": "deletionVectors" in _reader_features(table),
        "rows_masked_by_deletion_vectors": sum(m for _, m in scan.values()),
        "files_purged_of_masked_rows": [],
        "versions_with_subject_rows": _versions_referencing(
            path, options, version_before, set(scan)
        )
        if scan
        else [],
        "files_vacuumed": [],
        "versions_lost_history": [],
        "log_versions_expired": [],
        "change_data_files_removed": [],
        "remaining_copies": [],
    }
    masked_anywhere = receipt["rows_masked_by_deletion_vectors"] > 0
    if not dry_run and scan:
        if live:
            table.delete(_digest_predicate(column, values))
        # Files whose deletion vector masks a subject row but that held no live one.
        still_masked = (
            {p for p, (_, m) in _scan(table, fs, column, values).items() if m}
            if masked_anywhere
            else set()
        )
        if still_masked:
            _purge_masked_rows(table, still_masked, column)
            receipt["files_purged_of_masked_rows"] = sorted(_full(path, p) for p in still_masked)
        receipt["version_after"] = int(table.version())
    copies, change_data = _loose_copies(fs, path, _current_files(table), column, values)
    if vacuum and not dry_run:
        mentions = _log_mentions(fs, path, values)
        superseded = set(table.vacuum(retention_hours=0, enforce_retention_duration=False))
        lost = _versions_referencing(path, options, int(table.version()), superseded)
        removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        receipt["files_vacuumed"] = sorted(_full(path, p) for p in removed)
        for relative in change_data:
            fs.delete_file(relative)
        receipt["change_data_files_removed"] = [_full(path, p) for p in change_data]
        if receipt["versions_with_subject_rows"] or copies or mentions:
            receipt["log_versions_expired"] = _expire_log(table, fs)
        receipt["versions_lost_history"] = sorted(set(lost) | set(receipt["log_versions_expired"]))
        receipt["version_after"] = int(table.version())
        _remove_empty_folders(path)
        copies, _ = _loose_copies(fs, path, _current_files(table), column, values)
    receipt["remaining_copies"] = (
        copies
        + _masked_copies(
            path, _scan(table, fs, column, values) if masked_anywhere and not dry_run else scan
        )
        + _log_mentions(fs, path, values)
        + [{"kind": "storage", "note": STORAGE_NOTE}]
    )
    return receipt


def verify_table(
    subjects: list[str],
    dataset: Dataset,
    keyring: Optional[LocalKeyring] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> tuple[int, list[tuple[str, int]]]:
    """Files scanned and (file, rows) still holding ``subjects`` in the current version, rows
    masked by a deletion vector included (they are still in the file)."""
    path = os.fspath(dataset.path)
    options = _options(path, storage_options)
    table = _open(path, options)
    _check_features(path, table)
    fs = _filesystem(path, options)
    dataset_now = _dataset(table, fs)
    values = _typed_values(
        _id_values(subjects, dataset, keyring), dataset_now.schema, dataset.id_column
    )
    found = _scan(table, fs, dataset.id_column, values)
    rows = [(_full(path, p), live + masked) for p, (live, masked) in sorted(found.items())]
    return len(_current_files(table)), rows
