"""The ``amlguard`` command line.

``amlguard demo`` makes a synthetic PII dataset, masks it with ``examples/policy.yaml``'s rules
and prints a before/after sample and the throughput, with no cloud account. ``amlguard mask``
masks a Parquet or CSV file (or a directory) with a policy file. ``amlguard keys`` manages the
local keyring. Every command has ``--help``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from . import __version__
from .exceptions import AmlguardError

DEMO_POLICY = {
    "version": 1,
    "default": "deny",
    "columns": {
        "person_id": {"op": "hash", "key": "pseudo", "truncate_bytes": 16},
        "name": {"op": "redact", "with": "<NAME>"},
        "email": {"op": "mask", "keep_first": 1, "keep_email_domain": True},
        "phone": {"op": "mask", "keep_last": 2, "keep_separators": True},
        "ssn": {"op": "tokenize", "key": "tokens"},
        "card_number": {"op": "fpe", "key": "cards"},
        "iban": {"op": "mask", "keep_first": 4, "keep_last": 2},
        "ipv4": {"op": "nullify"},
        "date_of_birth": {"op": "generalize", "to": "year"},
        "age": {"op": "generalize", "width": 10},
        "zip": {"op": "generalize", "prefix": 3, "pad": "*"},
        "salary": {"op": "noise", "scale": 500.0, "seed": 7},
        "visit_at": {"op": "date_shift", "key": "dates", "max_days": 30, "subject": "person_id"},
        "note": {"op": "redact"},
    },
}
DEMO_KEYS = ("pseudo", "tokens", "cards", "dates")
SAMPLE_COLUMNS = ("person_id", "email", "phone", "ssn", "card_number", "age", "zip", "visit_at")


class ProgressBar:
    """A one-line progress display on a terminal's stderr: amount, rate and time left.

    Silent when stderr is not a terminal (pipes, files, CI logs). ``unit`` is ``"rows"`` or
    ``"bytes"`` (shown in MB)."""

    def __init__(self, enabled: bool, unit: str = "rows") -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.unit = unit
        self.started = time.perf_counter()
        self.shown = False

    def _amount(self, count: float) -> str:
        if self.unit == "bytes":
            return f"{count / 1e6:>10,.1f} MB"
        return f"{count:>12,.0f} {self.unit}"

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = done / elapsed
        line = f"  {self._amount(done)}  {self._amount(rate)}/s"
        if total:
            percent = min(done / total, 1.0)
            filled = int(percent * 30)
            left = (total - done) / rate if rate > 0 else 0.0
            line = f"  [{'#' * filled}{'.' * (30 - filled)}] {percent:6.1%}" + line
            line += f"  {left:6.1f}s left"
        sys.stderr.write("\r" + line)
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _keyring(path: Optional[str]) -> Any:
    from ._amlguard import LocalKeyring

    return LocalKeyring(path) if path else LocalKeyring()


def _format_table(rows: list[dict[str, Any]], columns: Sequence[str], width: int = 24) -> str:
    def cell(value: Any) -> str:
        text = "null" if value is None else str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    header = " | ".join(f"{c[:width]:<{width}}" for c in columns)
    lines = [header, "-+-".join("-" * width for _ in columns)]
    for row in rows:
        lines.append(" | ".join(f"{cell(row[c]):<{width}}" for c in columns))
    return "\n".join(lines)


def command_demo(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from .datasets import synthetic_pii
    from .files import mask_file
    from .policy import Policy

    keyring = _keyring(args.keyring)
    for name in DEMO_KEYS:
        keyring.ensure_key(name)
    policy = Policy.from_dict(DEMO_POLICY)

    print(f"amlguard {__version__} demo: {args.rows:,} synthetic rows, seed {args.seed}")
    print(f"keyring: {keyring.path}  (keys: {', '.join(DEMO_KEYS)})\n")
    table = synthetic_pii(args.rows, args.seed)
    policy.validate(table.schema, keyring)

    started = time.perf_counter()
    masked = policy.apply(table, keyring=keyring, threads=args.threads)
    in_memory_seconds = time.perf_counter() - started

    columns = list(SAMPLE_COLUMNS)
    print("before:")
    print(_format_table(table.slice(0, 5).select(columns).to_pylist(), columns, 22))
    print("\nafter:")
    print(_format_table(masked.slice(0, 5).select(columns).to_pylist(), columns, 22))

    mb = table.nbytes / 1e6
    print(
        f"\nin memory: {args.rows:,} rows x {table.num_columns} columns ({mb:,.1f} MB) masked in "
        f"{in_memory_seconds:.3f} s = {args.rows / in_memory_seconds:,.0f} rows/s, "
        f"{mb / in_memory_seconds:,.0f} MB/s"
    )

    with tempfile.TemporaryDirectory(prefix="amlguard-demo-") as scratch:
        out_dir = Path(args.out) if args.out else Path(scratch)
        out_dir.mkdir(parents=True, exist_ok=True)
        raw = out_dir / "patients.parquet"
        pq.write_table(table, raw, row_group_size=128 * 1024)
        bar = ProgressBar(not args.no_progress)
        try:
            report = mask_file(
                raw,
                out_dir / "patients.masked.parquet",
                policy,
                keyring=keyring,
                threads=args.threads,
                progress=bar,
            )
        finally:
            bar.close()
        print(
            f"parquet file: {report.rows:,} rows masked in {report.elapsed_seconds:.3f} s = "
            f"{report.rows_per_second:,.0f} rows/s ({report.input_bytes / 1e6:,.1f} MB in, "
            f"{report.output_bytes / 1e6:,.1f} MB out, atomic write)"
        )
        if args.out:
            print(f"wrote {raw} and {out_dir / 'patients.masked.parquet'}")
    print(f"policy fingerprint: {policy.fingerprint}")
    return 0


def command_mask(args: argparse.Namespace) -> int:
    from .files import mask_file
    from .policy import Policy

    policy = Policy.from_file(args.policy)
    bar = ProgressBar(not args.no_progress)
    try:
        report = mask_file(
            args.source,
            args.destination,
            policy,
            keyring=_keyring(args.keyring),
            threads=args.threads,
            progress=bar,
        )
    finally:
        bar.close()
    print(
        f"masked {report.rows:,} rows in {report.files} file(s) in {report.elapsed_seconds:.2f} s "
        f"({report.rows_per_second:,.0f} rows/s) -> {args.destination}"
    )
    return 0


def _parse_context(pairs: Optional[list[str]]) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs or []:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise SystemExit(f"amlguard: error: --context takes key=value, got {pair!r}")
        context[key] = value
    return context


def _audit_log(args: argparse.Namespace, keyring: Any) -> Any:
    """The audit log named by ``--audit`` (signed with the command's keyring), else ``None``
    (the operation then falls back to ``$AMLGUARD_AUDIT_LOG``)."""
    from .audit import AuditLog

    return AuditLog(args.audit, keyring=keyring) if args.audit else None


def _keks_for(keyring: Any, names: list[str]) -> list[Any]:
    return [keyring.kek(name) for name in names]


def command_encrypt(args: argparse.Namespace) -> int:
    from .envelope import encrypt_file

    keyring = _keyring(args.keyring)
    bar = ProgressBar(not args.no_progress, unit="bytes")
    try:
        report = encrypt_file(
            args.source,
            args.destination,
            keks=_keks_for(keyring, args.key),
            context=_parse_context(args.context),
            segment_size_bytes=args.segment_size,
            threads=args.threads,
            audit=_audit_log(args, keyring),
            progress=bar,
        )
    finally:
        bar.close()
    rate = report.plaintext_bytes / max(report.elapsed_seconds, 1e-9) / 1e6
    print(
        f"encrypted {report.plaintext_bytes:,} bytes into {report.segments} segment(s) "
        f"under {', '.join(report.key_ids)} in {report.elapsed_seconds:.3f} s ({rate:,.0f} MB/s)"
    )
    return 0


def command_decrypt(args: argparse.Namespace) -> int:
    from .envelope import decrypt_file

    keyring = _keyring(args.keyring)
    bar = ProgressBar(not args.no_progress, unit="bytes")
    try:
        report = decrypt_file(
            args.source,
            args.destination,
            keks=_keks_for(keyring, args.key),
            context=_parse_context(args.context),
            threads=args.threads,
            audit=_audit_log(args, keyring),
            progress=bar,
        )
    finally:
        bar.close()
    print(f"decrypted {report.plaintext_bytes:,} bytes ({report.segments} segment(s) verified)")
    return 0


def command_rewrap(args: argparse.Namespace) -> int:
    from .envelope import rewrap

    keyring = _keyring(args.keyring)
    info = rewrap(
        args.path,
        old=_keks_for(keyring, args.old),
        new=_keks_for(keyring, args.new),
        audit=_audit_log(args, keyring),
    )
    print(f"rewrapped {args.path}: now under {', '.join(info.key_ids)}")
    return 0


def command_inspect(args: argparse.Namespace) -> int:
    import json

    from .envelope import inspect

    facts = inspect(args.path).to_dict()
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        for name, value in facts.items():
            print(f"{name:<20} {value}")
    return 0


def _read_sample(path: str, rows: Optional[int]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.lower().endswith(".csv"):
        reader: Any = pacsv.open_csv(path)
    else:
        reader = pq.ParquetFile(path).iter_batches(batch_size=64 * 1024)
    batches, taken = [], 0
    for batch in reader:
        batches.append(batch)
        taken += batch.num_rows
        if rows is not None and taken >= rows:
            break
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches).slice(0, rows)


def command_scan(args: argparse.Namespace) -> int:
    import json

    from .detect import scan

    report = scan(_read_sample(args.path, args.sample_rows or None))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
    return 0


def command_keys(args: argparse.Namespace) -> int:
    keyring = _keyring(args.keyring)
    if args.keys_command == "create":
        print(keyring.ensure_key(args.name))
    elif args.keys_command == "rotate":
        print(keyring.rotate(args.name, audit=_audit_log(args, keyring)))
    else:
        for name in keyring.list_keys():
            versions = keyring.versions(name)
            print(f"{name}\tversions {versions[0]}..{versions[-1]}")
    return 0


def command_audit(args: argparse.Namespace) -> int:
    from .audit import verify_audit_log

    keyring = _keyring(args.keyring) if args.keyring else None
    report = verify_audit_log(args.path, args.witness, args.public_key, keyring=keyring)
    print(f"audit log: {args.path}")
    print(f"  ok:                     {report.ok}")
    print(f"  records checked:        {report.records_checked}")
    print(f"  first bad record:       {report.first_bad_record}")
    print(
        f"  checkpoints checked:    {report.checkpoints_checked} in the log, "
        f"{report.witness_checkpoints_checked} in the witness"
        + ("" if report.witness_checked else " (no witness given: truncation not checked)")
    )
    print(
        f"  unprotected tail:       {report.records_after_last_checkpoint} record(s) after "
        "the last checkpoint (hash chain only)"
    )
    print(
        f"  signer public key:      {report.public_key}"
        + ("" if args.public_key else " (not pinned: pass --public-key)")
    )
    if report.problem:
        print(f"  problem:                {report.problem}")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amlguard", description="Secure ML data handling: masking, encryption, forgetting."
    )
    parser.add_argument("--version", action="version", version=f"amlguard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--keyring",
            help="local keyring directory (default: $AMLGUARD_KEYRING or ~/.amlguard/keyring)",
        )

    def audited(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--audit",
            metavar="PATH",
            help="audit log to record the operation in, failed or not "
            "(default: $AMLGUARD_AUDIT_LOG; none when unset)",
        )

    demo = commands.add_parser(
        "demo", help="mask a synthetic PII dataset and show before/after and throughput"
    )
    demo.add_argument("--rows", type=int, default=200_000, help="rows to generate (200000)")
    demo.add_argument("--seed", type=int, default=0, help="dataset seed (0)")
    demo.add_argument("--threads", type=int, default=None, help="worker threads (all CPUs)")
    demo.add_argument("--out", help="keep the raw and masked Parquet files in this directory")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(demo)
    demo.set_defaults(run=command_demo)

    mask = commands.add_parser("mask", help="mask a Parquet or CSV file (or directory)")
    mask.add_argument("source", help="input .parquet / .csv file, or a directory of them")
    mask.add_argument("destination", help="output file (format from its extension) or directory")
    mask.add_argument("--policy", required=True, help="policy file (.yaml, .yml or .json)")
    mask.add_argument("--threads", type=int, default=None, help="worker threads (all CPUs)")
    mask.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(mask)
    mask.set_defaults(run=command_mask)

    scan_parser = commands.add_parser("scan", help="find which columns of a file hold which PII")
    scan_parser.add_argument("path", help="a .parquet or .csv file")
    scan_parser.add_argument(
        "--sample-rows", type=int, default=100_000, help="rows to scan (100000; 0 for all)"
    )
    scan_parser.add_argument("--json", action="store_true", help="machine-readable output")
    scan_parser.set_defaults(run=command_scan)

    encrypt = commands.add_parser("encrypt", help="encrypt a file into an amlguard container")
    encrypt.add_argument("source")
    encrypt.add_argument("destination")
    encrypt.add_argument(
        "--key",
        action="append",
        required=True,
        help="keyring key to wrap the data key under (repeat for several)",
    )
    encrypt.add_argument(
        "--context",
        action="append",
        metavar="KEY=VALUE",
        help="encryption context entry, bound to the ciphertext (repeatable)",
    )
    encrypt.add_argument(
        "--segment-size", type=int, default=None, help="plaintext bytes per segment"
    )
    encrypt.add_argument("--threads", type=int, default=None, help="worker threads (all CPUs)")
    encrypt.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(encrypt)
    audited(encrypt)
    encrypt.set_defaults(run=command_encrypt)

    decrypt = commands.add_parser("decrypt", help="decrypt an amlguard container")
    decrypt.add_argument("source")
    decrypt.add_argument("destination")
    decrypt.add_argument("--key", action="append", required=True, help="keyring key (repeatable)")
    decrypt.add_argument(
        "--context",
        action="append",
        metavar="KEY=VALUE",
        help="expected encryption context entry (repeatable)",
    )
    decrypt.add_argument("--threads", type=int, default=None, help="worker threads (all CPUs)")
    decrypt.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(decrypt)
    audited(decrypt)
    decrypt.set_defaults(run=command_decrypt)

    rewrap_parser = commands.add_parser("rewrap", help="re-wrap a container's data key (rotation)")
    rewrap_parser.add_argument("path")
    rewrap_parser.add_argument(
        "--old", action="append", required=True, help="key it is wrapped under"
    )
    rewrap_parser.add_argument("--new", action="append", required=True, help="key to wrap under")
    common(rewrap_parser)
    audited(rewrap_parser)
    rewrap_parser.set_defaults(run=command_rewrap)

    inspect_parser = commands.add_parser("inspect", help="show a container's header (no secrets)")
    inspect_parser.add_argument("path")
    inspect_parser.add_argument("--json", action="store_true", help="machine-readable output")
    inspect_parser.set_defaults(run=command_inspect)

    keys = commands.add_parser("keys", help="manage the local keyring")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key unless it exists")
    create.add_argument("name")
    common(create)
    rotate = key_commands.add_parser("rotate", help="add a new version of a key")
    rotate.add_argument("name")
    common(rotate)
    audited(rotate)
    listing = key_commands.add_parser("list", help="list keys and versions")
    common(listing)
    keys.set_defaults(run=command_keys)

    audit = commands.add_parser("audit", help="check a tamper-evident audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_commands.add_parser(
        "verify", help="verify a log; exits 1 when any record was changed, removed or added"
    )
    verify.add_argument(
        "path",
        help="the audit log (JSON Lines), or an az:// append blob "
        "(account from the AZURE_STORAGE_* environment)",
    )
    verify.add_argument("--witness", help="the second copy of the checkpoints (finds truncation)")
    verify.add_argument("--public-key", help="the signer's Ed25519 public key, hex (pins it)")
    verify.add_argument(
        "--keyring",
        help="local keyring holding the key of HMAC-signed checkpoints (not needed for Ed25519)",
    )
    audit.set_defaults(run=command_audit)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (AmlguardError, OSError) as err:
        print(f"amlguard: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("amlguard: interrupted; no partial output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
