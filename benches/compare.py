"""amlguard against what a user does today, measured in one run on the same data.

Usage:  python benches/compare.py [--rows 1000000] [--skip-rss] [--skip-detect]

Prints rows/s, MB/s and the ratio to amlguard for:
  * keyed HMAC-SHA256 of e-mail addresses: amlguard `hash` vs polars `map_elements` with Python
    `hmac` (timed on a slice, it is slow), the polars-hash plugin's vectorised `hmac_sha256`;
  * partial mask (keep the last 4 characters): amlguard `mask` vs the best polars expression
    (slice + pad) and pyarrow.compute (slice + pad);
  * the whole 14-column demo policy on the synthetic table, in memory;
  * `mask_parquet` peak RSS with a 10-column policy on 1M and 5M rows (separate processes);
  * PII detection and in-text redaction against Microsoft Presidio, MaskOps and polars / pyarrow
    regex chains, with precision, recall and F1 per entity on the labelled notes side by side
    (`benches/compare_detect.py`, run in its own process; it can also be run alone).
Every figure is the best of three runs on this machine.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import amlguard as ag
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from amlguard.cli import DEMO_POLICY

HMAC_KEY = "0123456789abcdef0123456789abcdef"

RSS_POLICY = {
    "columns": {
        "person_id": {"op": "hash", "key": "pseudo"},
        "name": {"op": "redact"},
        "email": {"op": "hash", "key": "pseudo"},
        "phone": {"op": "mask", "keep_last": 2, "keep_separators": True},
        "ssn": {"op": "tokenize", "key": "tokens"},
        "card_number": {"op": "mask", "keep_last": 4, "keep_separators": True},
        "iban": {"op": "mask", "keep_first": 4},
        "ipv4": {"op": "nullify"},
        "age": {"op": "generalize", "width": 10},
        "zip": {"op": "generalize", "prefix": 3},
    }
}


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return min(timings)


class Table:
    def __init__(self, title: str, rows: int, megabytes: float) -> None:
        self.title, self.rows, self.megabytes = title, rows, megabytes
        self.results: list[tuple[str, float]] = []

    def add(self, name: str, seconds: float, rows: int | None = None) -> None:
        # Figures timed on a slice are scaled to the full row count (rows/s is what is compared).
        scale = self.rows / rows if rows else 1.0
        self.results.append((name, seconds * scale))

    def print(self) -> None:
        reference = self.results[0][1]
        print(f"\n{self.title}  ({self.rows:,} values, {self.megabytes:,.1f} MB)")
        print(f"  {'implementation':<46} {'M rows/s':>10} {'MB/s':>10} {'amlguard is':>14}")
        for name, seconds in self.results:
            ratio = seconds / reference
            verdict = "(reference)" if name.startswith("amlguard") else f"{ratio:>10.1f}x faster"
            rate = f"{self.rows / seconds / 1e6:>10.2f} {self.megabytes / seconds:>10.1f}"
            print(f"  {name:<46} {rate} {verdict}")


def string_megabytes(column: pa.ChunkedArray) -> float:
    return sum(chunk.buffers()[2].size for chunk in column.chunks) / 1e6


def bench_hmac(table: pa.Table, keyring: ag.LocalKeyring) -> None:
    emails = table.select(["email"])
    df = pl.from_arrow(emails)
    result = Table(
        "keyed HMAC-SHA256 of e-mail addresses", emails.num_rows, string_megabytes(emails.column(0))
    )
    policy = ag.Policy.from_dict({"columns": {"email": {"op": "hash", "key": "pseudo"}}})
    result.add(
        "amlguard hash (polars in, polars out)", best_of(lambda: policy.apply(df, keyring=keyring))
    )
    result.add(
        "amlguard hash (pyarrow in, pyarrow out)",
        best_of(lambda: policy.apply(emails, keyring=keyring)),
    )
    try:
        import polars_hash as plh

        result.add(
            "polars-hash plugin hmac_sha256",
            best_of(lambda: df.select(plh.col("email").chash.hmac_sha256(key=HMAC_KEY))),
        )
    except ImportError:
        print("  (polars-hash not installed: pip install polars-hash)")
    key = HMAC_KEY.encode()
    sample = df.head(100_000)
    result.add(
        "polars map_elements + Python hmac (100k slice)",
        best_of(
            lambda: sample.select(
                pl.col("email").map_elements(
                    lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest(),
                    return_dtype=pl.String,
                )
            ),
            repeat=1,
        ),
        rows=sample.height,
    )
    result.print()


def bench_partial_mask(table: pa.Table, keyring: ag.LocalKeyring) -> None:
    cards = table.select(["card_number"])
    df = pl.from_arrow(cards)
    result = Table("partial mask, keep last 4", cards.num_rows, string_megabytes(cards.column(0)))
    policy = ag.Policy.from_dict({"columns": {"card_number": {"op": "mask", "keep_last": 4}}})
    result.add(
        "amlguard mask (polars in, polars out)", best_of(lambda: policy.apply(df, keyring=keyring))
    )
    result.add(
        "amlguard mask (pyarrow in, pyarrow out)",
        best_of(lambda: policy.apply(cards, keyring=keyring)),
    )
    column = pl.col("card_number")
    result.add(
        "polars expression: slice + pad_start",
        best_of(lambda: df.select(column.str.slice(-4).str.pad_start(column.str.len_chars(), "*"))),
    )
    array = cards.column(0)

    def pyarrow_mask() -> Any:
        lengths = pc.utf8_length(array)
        tail = pc.utf8_slice_codeunits(array, start=-4)
        stars = pc.binary_repeat("*", pc.max_element_wise(pc.subtract(lengths, 4), 0))
        return pc.binary_join_element_wise(stars, tail, "")

    result.add("pyarrow.compute: slice + repeat + join", best_of(pyarrow_mask))
    result.print()


def bench_demo_policy(table: pa.Table, keyring: ag.LocalKeyring) -> None:
    policy = ag.Policy.from_dict(DEMO_POLICY)
    result = Table("whole 14-column demo policy, in memory", table.num_rows, table.nbytes / 1e6)
    result.add(
        "amlguard Policy.apply (pyarrow)", best_of(lambda: policy.apply(table, keyring=keyring))
    )
    result.print()


# Peak RSS from VmHWM: ru_maxrss survives exec on Linux and would report the parent's peak.
PEAK_RSS = (
    "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"
)

RSS_CHILD = """
import json, sys, time, amlguard as ag
policy = ag.Policy.from_dict(json.loads(sys.argv[3]))
keyring = ag.LocalKeyring(sys.argv[4])
started = time.perf_counter()
report = ag.mask_parquet(sys.argv[1], sys.argv[2], policy, keyring=keyring)
print(json.dumps({"rows": report.rows, "seconds": time.perf_counter() - started,
                  "peak_rss_mb": PEAK_RSS}))
""".replace("PEAK_RSS", PEAK_RSS)

BASELINE_CHILD = f"import amlguard, pyarrow.parquet; print({PEAK_RSS})"


def write_dataset(path: Path, rows: int) -> None:
    chunk = 500_000
    writer = None
    for index, start in enumerate(range(0, rows, chunk)):
        part = ag.datasets.synthetic_pii(min(chunk, rows - start), seed=index)
        writer = writer or pq.ParquetWriter(path, part.schema)
        writer.write_table(part, row_group_size=128 * 1024)
    if writer:
        writer.close()


def bench_rss(keyring: ag.LocalKeyring, sizes: list[int]) -> None:
    baseline = float(
        subprocess.run(
            [sys.executable, "-c", BASELINE_CHILD], capture_output=True, text=True, check=True
        ).stdout
    )
    print(
        "\nmask_parquet with a 10-column policy "
        f"(peak RSS; Python + pyarrow + amlguard alone: {baseline:.0f} MB)"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for rows in sizes:
            source = Path(scratch, f"in-{rows}.parquet")
            write_dataset(source, rows)
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    RSS_CHILD,
                    str(source),
                    str(Path(scratch, "out.parquet")),
                    json.dumps(RSS_POLICY),
                    keyring.path,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(out.stdout)
            print(
                f"  {rows:>10,} rows  {source.stat().st_size / 1e6:8.0f} MB file  "
                f"{figures['rows'] / figures['seconds'] / 1e6:6.2f} M rows/s  "
                f"peak RSS {figures['peak_rss_mb']:7.0f} MB"
            )


def bench_detection(rows: int) -> None:
    script = Path(__file__).with_name("compare_detect.py")
    print(f"\n== PII detection and redaction ({script.name} --rows {rows})", flush=True)
    subprocess.run([sys.executable, str(script), "--rows", str(rows)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--only-rss", action="store_true")
    parser.add_argument("--skip-detect", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as ring_dir:
        keyring = ag.LocalKeyring(ring_dir)
        for name in ("pseudo", "tokens", "cards", "dates"):
            keyring.ensure_key(name)
        print(
            f"amlguard {ag.__version__}, polars {pl.__version__}, "
            f"pyarrow {pa.__version__}, {os.cpu_count()} CPUs"
        )
        if not args.only_rss:
            table = ag.datasets.synthetic_pii(args.rows, seed=1)
            bench_hmac(table, keyring)
            bench_partial_mask(table, keyring)
            bench_demo_policy(table, keyring)
            del table
        if not args.skip_rss:
            bench_rss(keyring, [args.rows, 5 * args.rows])
    if not (args.only_rss or args.skip_detect):
        bench_detection(args.rows)


if __name__ == "__main__":
    main()
