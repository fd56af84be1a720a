"""Forget in Parquet trees hive-partitioned by the id column itself (`patient_id=x/y.parquet`)."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import amlguard as ag
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

# Identifiers a writer must percent-encode in a directory name.
ODD = ["subject a/1", "subject%2", "ünïcode=3"]


def visits(subjects: list[str], per_subject: int = 4) -> pa.Table:
    ids = [s for s in subjects for _ in range(per_subject)]
    return pa.table({"patient_id": ids, "visit": list(range(len(ids))), "year": [2024] * len(ids)})


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).digest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def subject_dirs(root: Path) -> set[str]:
    """Decoded id values of the partition directories under root."""
    return {
        urllib.parse.unquote(p.name.split("=", 1)[1])
        for p in root.rglob("patient_id=*")
        if p.is_dir()
    }


def write_pyarrow(root: Path, subjects: list[str]) -> None:
    pq.write_to_dataset(visits(subjects), root, partition_cols=["year", "patient_id"])


def write_polars(root: Path, subjects: list[str]) -> None:
    pl.from_arrow(visits(subjects)).write_parquet(root, partition_by=["year", "patient_id"])


@pytest.mark.parametrize("write", [write_pyarrow, write_polars], ids=["pyarrow", "polars"])
def test_a_subjects_partition_is_removed_whole_and_the_rest_left_byte_identical(
    write: object, tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "visits"
    others = [f"patient-{i}" for i in range(6)]
    write(root, others + ODD)  # type: ignore[operator]
    assert subject_dirs(root) == set(others + ODD)
    victims = [ODD[0], ODD[2], "patient-3", "nobody"]
    victim_files = sorted(
        str(p)
        for p in root.rglob("*.parquet")
        if urllib.parse.unquote(p.parent.name.split("=", 1)[1]) in victims
    )
    assert len(victim_files) == 3
    # A checksum sidecar as Hadoop writers leave: hidden, it goes with the directory.
    crc = Path(victim_files[0]).parent / f".{Path(victim_files[0]).name}.crc"
    crc.write_bytes(b"crc")
    before = snapshot(root)
    ds = [ag.Dataset(root, id_column="patient_id")]
    log = ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring, witness=tmp_path / "w.jsonl")

    preview = ag.forget(victims, ds, keyring=keyring, dry_run=True)
    assert snapshot(root) == before
    assert sorted(preview.files_removed) == victim_files and preview.rows_removed == 12
    assert len(preview.directories_removed) == 3

    receipt = ag.forget(victims, ds, keyring=keyring, audit=log)
    assert receipt.rows_removed == 12
    assert sorted(receipt.files_removed) == victim_files == sorted(receipt.files_rewritten)
    assert all(f["bytes_after"] == 0 and f["rows_before"] == 4 for f in receipt.files)
    assert sorted(receipt.directories_removed) == sorted(str(Path(f).parent) for f in victim_files)
    assert receipt.files_scanned == len(others) + len(ODD)
    # The subjects' directories are gone, with the sidecar; every other file is untouched.
    assert subject_dirs(root) == set(others + ODD) - set(victims)
    after = snapshot(root)
    assert {name: before[name] for name in after} == after
    assert set(before) - set(after) == {str(Path(f).relative_to(root)) for f in victim_files} | {
        str(crc.relative_to(root))
    }
    assert not list(root.rglob("_amlguard*"))
    remaining = sum(pq.read_metadata(p).num_rows for p in root.rglob("*.parquet"))
    assert remaining == 4 * (len(others) + len(ODD) - 3)
    assert ag.verify_forgotten(victims, ds, keyring=keyring)
    assert not ag.verify_forgotten(ODD[1], ds, keyring=keyring)

    # The audit record names no subject, neither raw nor percent-encoded.
    text = (tmp_path / "audit.jsonl").read_text()
    for victim in victims[:3]:
        assert victim not in text
        assert urllib.parse.quote(victim) not in text
        assert urllib.parse.quote(victim, safe="") not in text
    assert log.find_subject(ODD[0]) == [receipt.audit_record_id]
    assert log.verify()


def test_integer_ids_and_pseudonyms_in_partition_names(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    numbers = tmp_path / "numbers"
    table = pa.table({"patient_id": [7, 7, 8, 9], "v": [1, 2, 3, 4]})
    pq.write_to_dataset(table, numbers, partition_cols=["patient_id"])
    receipt = ag.forget(["7"], [ag.Dataset(numbers, id_column="patient_id")], keyring=keyring)
    assert receipt.rows_removed == 2 and not (numbers / "patient_id=7").exists()
    assert (numbers / "patient_id=8").exists()

    # A tree partitioned by the hash pseudonym is found by recomputing it.
    pseudo = tmp_path / "pseudo"
    raw = visits(["alice", "bob"])
    policy = ag.Policy.from_dict(
        {"version": 1, "columns": {"patient_id": {"op": "hash", "key": "pseudo"}}}
    )
    masked = policy.apply(raw, keyring=keyring)
    pq.write_to_dataset(masked, pseudo, partition_cols=["patient_id"])
    ds = [ag.Dataset(pseudo, id_column="patient_id", pseudonymised_with="pseudo")]
    receipt = ag.forget(["alice"], ds, keyring=keyring)
    assert receipt.rows_removed == 4 and len(receipt.directories_removed) == 1
    assert pads.dataset(pseudo, partitioning="hive").to_table().num_rows == 4
    assert ag.verify_forgotten(["alice", "bob"], ds, keyring=keyring).rows_found == 4


def test_files_without_the_id_outside_an_id_partition_are_still_refused(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "mixed"
    pq.write_to_dataset(visits(["a", "b"]), root, partition_cols=["patient_id"])
    (root / "stray").mkdir()
    pq.write_table(pa.table({"visit": [1]}), root / "stray" / "x.parquet")
    before = snapshot(root)
    with pytest.raises(ag.ColumnNotFoundError, match="stray"):
        ag.forget(["a"], [ag.Dataset(root, id_column="patient_id")], keyring=keyring)
    assert snapshot(root) == before


@pytest.mark.parametrize("levels", [["patient_id"], ["year", "patient_id"]], ids=["id", "year-id"])
def test_a_tree_emptied_of_every_partition_stays_a_valid_empty_dataset(
    levels: list[str], tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "visits"
    everyone = ["a", "b", "c"]
    pq.write_to_dataset(visits(everyone), root, partition_cols=levels)
    (root / "_SUCCESS").write_bytes(b"")
    ds = [ag.Dataset(root, id_column="patient_id")]
    receipt = ag.forget(everyone, ds, keyring=keyring)
    assert receipt.rows_removed == 12 and len(receipt.directories_removed) == 3
    assert not list(root.rglob("*.parquet")) and root.is_dir()

    # Later calls see an empty dataset: nothing found, an empty receipt, verified absent.
    for dry_run in (True, False):
        again = ag.forget(["a", "someone-else"], ds, keyring=keyring, dry_run=dry_run)
        assert again.files_scanned == 0 and again.rows_removed == 0
        assert again.files == [] and again.directories_removed == []
    verification = ag.verify_forgotten(everyone, ds, keyring=keyring)
    assert verification.ok and verification.files_scanned == 0

    # A folder holding other files but no Parquet file is still refused: forgetting nothing
    # there would pass for success.
    (root / "visits.csv").write_text("patient_id\na\n")
    with pytest.raises(ag.InvalidDataError, match="no Parquet files"):
        ag.forget(["a"], ds, keyring=keyring)
    with pytest.raises(ag.InvalidDataError, match="no Parquet files"):
        ag.verify_forgotten(["a"], ds, keyring=keyring)


def receipt_facts(receipt: ag.ForgetReceipt) -> dict[str, Any]:
    """What a dry run must predict exactly: files, rows and directories."""
    return {
        "files": [
            (f["path"], f["rows_before"], f["rows_removed"], f["bytes_before"], f["removed"])
            for f in receipt.files
        ],
        "rows_removed": receipt.rows_removed,
        "files_scanned": receipt.files_scanned,
        "directories_removed": sorted(receipt.directories_removed),
    }


def test_a_dry_run_reports_exactly_what_the_real_run_does(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "visits"
    everyone = ["a", "b", "c", "d"]
    pq.write_to_dataset(visits(everyone), root, partition_cols=["year", "patient_id"])
    (a_dir,) = root.glob("year=2024/patient_id=a")
    (b_dir,) = root.glob("year=2024/patient_id=b")
    # Kept by the real run: a visible non-Parquet file in a's partition, and in b's a file
    # keeping the id column with another subject's row too (rewritten, not removed).
    (a_dir / "notes.txt").write_text("kept")
    pq.write_table(pa.table({"patient_id": ["b", "d"], "visit": [90, 91]}), b_dir / "x.parquet")
    # Removed with its directory: a hidden sidecar in c's partition.
    (c_dir,) = root.glob("year=2024/patient_id=c")
    (c_dir / "_SUCCESS").write_bytes(b"")
    ds = [ag.Dataset(root, id_column="patient_id")]

    preview = ag.forget(["a", "b", "c"], ds, keyring=keyring, dry_run=True)
    receipt = ag.forget(["a", "b", "c"], ds, keyring=keyring)
    assert receipt_facts(preview) == receipt_facts(receipt)
    assert receipt.directories_removed == [str(c_dir)]
    assert a_dir.is_dir() and b_dir.is_dir() and not c_dir.exists()
    assert pq.read_table(b_dir / "x.parquet").column("patient_id").to_pylist() == ["d"]


CHILD = """
import sys, amlguard as ag
keyring = ag.LocalKeyring(sys.argv[2])
victims = sys.argv[3].split(",")
ag.forget(victims, [ag.Dataset(sys.argv[1], id_column="patient_id")], keyring=keyring, threads=2)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_each_partition_whole_or_gone(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "tree"
    subjects = [f"patient-{i:04d}" for i in range(600)]
    # Two files per partition, so a kill can land between a partition's files.
    pq.write_to_dataset(visits(subjects), root, partition_cols=["patient_id"],
                        basename_template="a-{i}.parquet")  # fmt: skip
    pq.write_to_dataset(visits(subjects, 2), root, partition_cols=["patient_id"],
                        basename_template="b-{i}.parquet")  # fmt: skip
    victims = subjects[::2]
    original = snapshot(root)

    def victim_file(name: str) -> bool:
        return name.split("/")[0].split("=", 1)[1] in victims

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), keyring.path, ",".join(victims)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    started = time.perf_counter()
    timing = run()
    _, err = timing.communicate(timeout=600)
    assert timing.returncode == 0, err
    duration = time.perf_counter() - started
    assert snapshot(root) == {n: v for n, v in original.items() if not victim_file(n)}

    rng = random.Random(3)
    kills = mid_run = 0
    for _ in range(15):
        import shutil

        shutil.rmtree(root)
        pq.write_to_dataset(visits(subjects), root, partition_cols=["patient_id"],
                            basename_template="a-{i}.parquet")  # fmt: skip
        pq.write_to_dataset(visits(subjects, 2), root, partition_cols=["patient_id"],
                            basename_template="b-{i}.parquet")  # fmt: skip
        fresh = snapshot(root)
        child = run()
        # Start-up and scanning take most of a run: aim at its later part, where files go.
        time.sleep(rng.uniform(0.3 * duration, duration))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(timeout=600)
        now = snapshot(root)
        data = {n: v for n, v in now.items() if n.endswith(".parquet")}
        # Every remaining file is exactly as it was; only subjects' files are missing.
        assert all(fresh[n] == v for n, v in data.items())
        assert all(victim_file(n) for n in set(fresh) - set(now))
        if list(root.rglob("_amlguard_forget*")) or (
            any(victim_file(n) for n in data) and len(data) < len(fresh)
        ):
            mid_run += 1
        # Resuming completes the run: no subject partition, file or journal remains.
        resumed = run()
        _, err = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, err
        assert snapshot(root) == {n: v for n, v in fresh.items() if not victim_file(n)}
        assert subject_dirs(root) == set(subjects) - set(victims)
        assert not list(root.rglob("_amlguard*")) and not list(root.rglob(".*"))
    assert kills >= 6, f"only {kills} runs were killed mid-way (run takes {duration:.2f}s)"
    assert mid_run >= 2, mid_run
