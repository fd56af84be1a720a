"""Forget N subjects in a multi-file Parquet dataset: amlguard vs. the naive polars rewrite.

The dataset is a folder of Parquet files written in patient-id order (as an ingestion job that
writes a patient table sorted or bucketed by id would), ``--rows`` rows in ``--files`` files,
three visits per patient. ``--subjects`` random patients are forgotten:

- amlguard: ``ag.forget`` scans only the id column, skips row groups on min/max statistics,
  rewrites only the files that hold a subject (each swapped in atomically, with a journal);
- naive: polars reads every file, filters the subjects out, and writes every file back.

Run (release build: ``maturin develop --release``)::

    python benches/forget.py --rows 2000000 --files 100 --subjects 100
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import amlguard as ag
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq


def make_dataset(root: Path, rows: int, files: int, seed: int) -> list[str]:
    """Write the dataset; return all patient ids."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    per_file = rows // files
    patients: list[str] = []
    for k in range(files):
        start = k * per_file
        ids = [f"patient-{(start + i) // 3:08d}" for i in range(per_file)]
        patients.extend(ids[::3])
        table = pa.table(
            {
                "patient_id": ids,
                "visit_id": pa.array(range(start, start + per_file), pa.int64()),
                "diagnosis": [rng.choice(["flu", "asthma", "diabetes", "fracture"]) for _ in ids],
                "cost": [rng.random() * 1000 for _ in ids],
            }
        )
        pq.write_table(table, root / f"part-{k:04d}.parquet", row_group_size=per_file // 4 or 1)
    return patients


def dataset_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("*.parquet"))


def naive_polars(root: Path, subjects: list[str], durable: bool) -> tuple[float, int, int]:
    """Read every file, filter, write every file back (through a temp file and rename; with
    ``durable``, fsync each file before the rename, as amlguard does)."""
    started = time.perf_counter()
    written = files = 0
    for path in sorted(root.glob("*.parquet")):
        frame = pl.read_parquet(path).filter(~pl.col("patient_id").is_in(subjects))
        temp = path.with_suffix(".tmp")
        frame.write_parquet(temp, compression="snappy")
        if durable:
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temp, path)
        written += path.stat().st_size
        files += 1
    return time.perf_counter() - started, files, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="amlguard-forget-bench-") as scratch:
        base = Path(scratch)
        source = base / "source"
        started = time.perf_counter()
        patients = make_dataset(source, args.rows, args.files, args.seed)
        total = dataset_bytes(source)
        print(
            f"dataset: {args.rows:,} rows, {args.files} files, {total / 1e6:,.1f} MB "
            f"(written in {time.perf_counter() - started:.1f} s); forgetting {args.subjects} "
            f"random patients; amlguard {ag.__version__}, polars {pl.__version__}, "
            f"{os.cpu_count()} CPUs"
        )
        subjects = random.Random(args.seed).sample(patients, args.subjects)
        keyring = ag.LocalKeyring(base / "keyring")

        ours = base / "amlguard"
        shutil.copytree(source, ours)
        log = ag.AuditLog(base / "audit.jsonl", keyring=keyring)
        started = time.perf_counter()
        receipt = ag.forget(
            subjects, [ag.Dataset(ours, id_column="patient_id")], keyring=keyring, audit=log
        )
        ours_seconds = time.perf_counter() - started
        assert ag.verify_forgotten(subjects, [ag.Dataset(ours, id_column="patient_id")],
                                   keyring=keyring)  # fmt: skip

        naive_runs = []
        for durable in (False, True):
            naive = base / f"naive-{durable}"
            shutil.copytree(source, naive)
            naive_runs.append((durable, *naive_polars(naive, subjects, durable)))
            naive_rows = sum(pq.read_metadata(p).num_rows for p in naive.glob("*.parquet"))
            assert naive_rows == args.rows - receipt.rows_removed
        ours_rows = sum(pq.read_metadata(p).num_rows for p in ours.glob("*.parquet"))
        assert ours_rows == args.rows - receipt.rows_removed
        touched = sum(f["bytes_before"] for f in receipt.files)

        print(f"{'':34} {'wall s':>8} {'files rewritten':>16} {'bytes rewritten':>16} "
              f"{'input rewritten':>16}")  # fmt: skip
        print(
            f"{'amlguard forget (fsync, journal)':34} {ours_seconds:8.2f} {len(receipt.files):>16} "
            f"{receipt.bytes_rewritten:>16,} {touched / total:>16.1%}"
        )
        for durable, seconds, files, written in naive_runs:
            name = "polars read/filter/write" + (" + fsync" if durable else "")
            print(f"{name:34} {seconds:8.2f} {files:>16} {written:>16,} {1:>16.1%}")
        naive_seconds = naive_runs[-1][1]
        row_groups = receipt.row_groups_skipped + receipt.row_groups_scanned
        print(
            f"rows removed: {receipt.rows_removed:,}; row groups skipped on statistics: "
            f"{receipt.row_groups_skipped} of {row_groups}; "
            f"time vs polars + fsync: {ours_seconds / naive_seconds:.2f}x"
        )


if __name__ == "__main__":
    main()
