"""Forget in Delta tables with deletion vectors (built per the Delta protocol, see
support/delta_dv.py): rows a deletion vector masks still sit in their data file, so forget
must rewrite those files too."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import amlguard as ag
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

deltalake = pytest.importorskip("deltalake")
polars = pytest.importorskip("polars")
pytest.importorskip("pyroaring")

from support.delta_dv import (  # noqa: E402 - after the skips above
    add_actions,
    delete_with_deletion_vectors,
    z85_decode,
    z85_encode,
)
from support.delta_files import files_naming  # noqa: E402

GONE = "subject-001"


def people(start: int, stop: int) -> pa.Table:
    ids = [f"subject-{i % 10:03d}" for i in range(start, stop)]
    return pa.table({"patient_id": ids, "visit": list(range(start, stop))})


def make_table(root: Path, storage: str) -> str:
    """Two files of 100 rows; a deletion vector on the first masks every subject-001 row of it
    (rows 1, 11, ..., 91) and row 0; the second still holds 10 live subject-001 rows. Returns
    the masked file's path."""
    deltalake.write_deltalake(root, people(0, 100))
    (first,) = add_actions(root)
    deltalake.write_deltalake(root, people(100, 200), mode="append")
    delete_with_deletion_vectors(root, {first: [0, *range(1, 100, 10)]}, storage)
    return first


def logical_rows(root: Path) -> list[dict[str, Any]]:
    """The table's rows as a reader sees them (deletion vectors applied), sorted."""
    rows = polars.read_delta(str(root)).to_dicts()
    return sorted(rows, key=lambda row: row["visit"])


def digest(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def physical_subject_rows(root: Path, files: list[str]) -> int:
    """Subject rows physically in ``files`` (read raw: deletion vectors not applied)."""
    total = 0
    for name in files:
        ids = pq.read_table(root / name, columns=["patient_id"]).column("patient_id")
        total += ids.to_pylist().count(GONE)
    return total


def test_the_constructed_deletion_vectors_follow_the_protocol(tmp_path: Path) -> None:
    # The protocol's inline example (rows 3, 4, 7, 11, 18, 29): Z85 and Roaring as specified.
    example = "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L"
    raw = z85_decode(example)
    assert len(raw) == 40 and z85_encode(raw) == example
    import pyroaring

    assert list(pyroaring.BitMap.deserialize(raw[12:])) == [3, 4, 7, 11, 18, 29]
    # deltalake (delta-kernel) and polars read the constructed tables with the rows masked.
    for storage in ("i", "u", "p"):
        root = tmp_path / storage
        first = make_table(root, storage)
        table = deltalake.DeltaTable(root)
        assert "deletionVectors" in (table.protocol().reader_features or [])
        (vector,) = pa.table(table.deletion_vectors().read_all()).to_pylist()
        assert vector["filepath"].endswith(first)
        masked = [i for i, keep in enumerate(vector["selection_vector"]) if not keep]
        assert masked == [0, *range(1, 100, 10)]
        rows = logical_rows(root)
        assert len(rows) == 189 and [r for r in rows if r["visit"] < 100][0]["visit"] == 2


@pytest.mark.parametrize("storage", ["i", "u", "p"])
def test_masked_and_live_subject_rows_leave_the_data_files(
    tmp_path: Path, keyring: ag.LocalKeyring, storage: str
) -> None:
    root = tmp_path / "visits"
    first = make_table(root, storage)
    before = logical_rows(root)
    expected = [r for r in before if r["patient_id"] != GONE]
    dataset = ag.Dataset(root, id_column="patient_id", format="delta")
    found = ag.verify_forgotten(GONE, [dataset], keyring=keyring)
    assert not found and found.rows_found == 20  # 10 live + 10 masked but still in the file

    receipt = ag.forget([GONE], [dataset], keyring=keyring)
    (table,) = receipt.delta_tables
    assert table["deletion_vectors_enabled"]
    assert table["rows_removed"] == receipt.rows_removed == 10
    assert table["rows_masked_by_deletion_vectors"] == 10
    assert table["files_purged_of_masked_rows"] == [str(root / first)]
    assert not [c for c in table["remaining_copies"] if c["kind"].startswith("rows masked")]

    after = logical_rows(root)
    assert len(after) == len(expected) == 179 and digest(after) == digest(expected)
    files = pa.table(deltalake.DeltaTable(root).get_add_actions())["path"].to_pylist()
    assert first not in files and physical_subject_rows(root, files) == 0
    assert ag.verify_forgotten(GONE, [dataset], keyring=keyring).ok

    # vacuum=True then removes the superseded files and the log naming the subject.
    receipt = ag.forget([GONE], [dataset], keyring=keyring, vacuum=True)
    (table,) = receipt.delta_tables
    assert table["rows_removed"] == 0 and table["files_vacuumed"]
    assert table["log_versions_expired"]
    assert files_naming(root, [GONE]) == []
    assert digest(logical_rows(root)) == digest(expected)
    query = deltalake.QueryBuilder().register("visits", deltalake.DeltaTable(root))
    counted = pa.table(query.execute("SELECT count(*) AS n FROM visits").read_all())
    assert counted["n"].to_pylist() == [179]


def test_only_the_partition_holding_masked_rows_is_rewritten(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "by_site"
    rows = people(0, 200).append_column("site", pa.array(["north"] * 100 + ["south"] * 100))
    east = pa.table({"patient_id": ["subject-005"] * 20, "visit": list(range(200, 220)),
                     "site": ["east"] * 20})  # fmt: skip
    deltalake.write_deltalake(root, pa.concat_tables([rows, east]), partition_by=["site"])
    files = add_actions(root)
    north, south, untouched = (
        next(p for p in files if p.startswith(f"site={site}/"))
        for site in ("north", "south", "east")
    )
    # Every subject-001 row of the north file is masked; the south file has none masked.
    delete_with_deletion_vectors(root, {north: list(range(1, 100, 10))}, "i")
    expected = [r for r in logical_rows(root) if r["patient_id"] != GONE]
    dataset = ag.Dataset(root, id_column="patient_id", format="delta")
    receipt = ag.forget([GONE], [dataset], keyring=keyring)
    (table,) = receipt.delta_tables
    assert table["rows_removed"] == 10 and table["rows_masked_by_deletion_vectors"] == 10
    assert table["files_purged_of_masked_rows"] == [str(root / north)]
    current = pa.table(deltalake.DeltaTable(root).get_add_actions())["path"].to_pylist()
    assert north not in current and south not in current  # south held live rows
    assert untouched in current  # a partition without masked subject rows is not rewritten
    assert physical_subject_rows(root, current) == 0
    assert digest(logical_rows(root)) == digest(expected)


def test_masked_rows_in_a_partition_whose_name_is_escaped_are_purged(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "by_site"
    rows = people(0, 100).append_column("site", pa.array(["north side/1"] * 100))
    deltalake.write_deltalake(root, rows, partition_by=["site"])
    (north,) = add_actions(root)
    # The folder name is percent-encoded, and the log holds that name URI-encoded again.
    assert north.startswith("site=north%2520side%252F1/")
    delete_with_deletion_vectors(root, {north: list(range(1, 100, 10))}, "i")
    expected = [r for r in logical_rows(root) if r["patient_id"] != GONE]
    dataset = ag.Dataset(root, id_column="patient_id", format="delta")
    receipt = ag.forget([GONE], [dataset], keyring=keyring)
    (table,) = receipt.delta_tables
    assert table["rows_removed"] == 0 and table["rows_masked_by_deletion_vectors"] == 10
    assert table["files_purged_of_masked_rows"] == [str(root / unquote(north))]
    current = list(add_actions(root))
    assert north not in current
    assert physical_subject_rows(root, [unquote(path) for path in current]) == 0
    masked = [c for c in table["remaining_copies"] if "deletion vector" in c["kind"]]
    assert masked == []
    assert digest(logical_rows(root)) == digest(expected)
    assert ag.verify_forgotten([GONE], [dataset], keyring=keyring).ok


@pytest.mark.parametrize("live_row", [True, False])
def test_a_table_partitioned_by_the_id_loses_masked_and_live_subject_rows(
    tmp_path: Path, keyring: ag.LocalKeyring, live_row: bool
) -> None:
    # One folder per subject, so data files lack the id column (it is a partition value).
    # subject-001's first file is wholly masked by a deletion vector; with ``live_row`` a second
    # file holds one live row. subject-002 has masked rows of its own, which must stay masked.
    root = tmp_path / "by_patient"
    deltalake.write_deltalake(root, people(0, 100), partition_by=["patient_id"])
    first_files = add_actions(root)
    masked_file = next(p for p in first_files if p.startswith(f"patient_id={GONE}/"))
    other = next(p for p in first_files if p.startswith("patient_id=subject-002/"))
    if live_row:
        deltalake.write_deltalake(root, people(100, 102), partition_by=["patient_id"],
                                  mode="append")  # fmt: skip
    delete_with_deletion_vectors(root, {masked_file: list(range(10)), other: [0, 1]}, "u")
    before = logical_rows(root)
    expected = [r for r in before if r["patient_id"] != GONE]
    assert len(before) - len(expected) == int(live_row)
    dataset = ag.Dataset(root, id_column="patient_id", format="delta")
    found = ag.verify_forgotten(GONE, [dataset], keyring=keyring)
    assert found.rows_found == 10 + int(live_row)  # masked rows still sit in their file

    receipt = ag.forget([GONE], [dataset], keyring=keyring, vacuum=True)
    (table,) = receipt.delta_tables
    assert table["rows_removed"] == int(live_row)
    assert table["rows_masked_by_deletion_vectors"] == 10
    # A delete on the partition column drops the subject's whole partition, the wholly masked
    # file included; without a live row there is no delete, and the purge step rewrites it.
    purged = [] if live_row else [str(root / masked_file)]
    assert table["files_purged_of_masked_rows"] == purged
    assert str(root / masked_file) in table["files_vacuumed"]
    current = pa.table(deltalake.DeltaTable(root).get_add_actions())["path"].to_pylist()
    assert not [p for p in current if p.startswith(f"patient_id={GONE}/")]
    assert other in current  # another subject's masked rows: not this run's business
    assert not (root / f"patient_id={GONE}").exists()
    assert digest(logical_rows(root)) == digest(expected)
    assert files_naming(root, [GONE]) == []
    assert ag.verify_forgotten(GONE, [dataset], keyring=keyring).ok


def test_dry_run_reports_masked_rows_and_touches_nothing(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "visits"
    make_table(root, "u")
    state = {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    dataset = ag.Dataset(root, id_column="patient_id", format="delta")
    receipt = ag.forget([GONE], [dataset], keyring=keyring, dry_run=True, vacuum=True)
    (table,) = receipt.delta_tables
    assert table["rows_removed"] == 10 and table["rows_masked_by_deletion_vectors"] == 10
    masked = [c for c in table["remaining_copies"] if c["kind"].startswith("rows masked")]
    assert [c["rows"] for c in masked] == [10]
    assert {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} == state


def test_a_table_with_column_mapping_is_refused_and_unchanged(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "mapped"
    deltalake.write_deltalake(
        root, people(0, 50), configuration={"delta.columnMapping.mode": "name"}
    )
    state = {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    dataset = ag.Dataset(root, id_column="patient_id", format="delta")
    with pytest.raises(ag.UnsupportedTableFeatureError, match="columnMapping"):
        ag.forget([GONE], [dataset], keyring=keyring, vacuum=True)
    with pytest.raises(ag.UnsupportedTableFeatureError, match="columnMapping"):
        ag.verify_forgotten([GONE], [dataset], keyring=keyring)
    assert {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} == state
