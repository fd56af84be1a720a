"""Searching a Delta table's folder for identifiers, in every file it holds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq


def files_naming(root: Path, identifiers: list[str]) -> list[str]:
    """Files under ``root`` (data, change data, log, checkpoints, deletion vectors) whose raw
    bytes, or decoded rows for Parquet (compression can hide a value), hold an identifier; and
    folders named after one."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            if any(i in path.name for i in identifiers):
                found.append(str(path))
            continue
        text = path.read_bytes()
        if path.suffix == ".parquet":
            text += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        if any(i.encode() in text for i in identifiers):
            found.append(str(path))
    return found
