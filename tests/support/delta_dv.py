"""Deletion vectors in Delta tables, as Spark and Databricks write them (Delta PROTOCOL.md,
"Deletion Vectors" and "Deletion Vector Format"), for tables deltalake itself cannot make.

deltalake writes no deletion vectors, so a test table gets them through one more commit written
here: protocol reader 3 / writer 7 with the ``deletionVectors`` feature, and for each chosen
data file a ``remove`` of it and an ``add`` of the same file with a deletion vector descriptor,
just as a Spark ``DELETE`` with deletion vectors enabled commits. The vector is a
RoaringBitmapArray (magic 1681511377, then the portable 64-bit Roaring format), stored inline
(``storageType`` ``i``, Z85 text in the log) or in a ``deletion_vector_<uuid>.bin`` file
(version byte 1, then big-endian size, bitmap and CRC-32) named by its UUID relative to the table
(``storageType`` ``u``) or by an absolute URI (``storageType`` ``p``).
"""

from __future__ import annotations

import json
import struct
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pyroaring

MAGIC = 1681511377
Z85_ALPHABET = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)


def z85_encode(data: bytes) -> str:
    """ZeroMQ Z85 (RFC 32/Z85) of ``data``, whose length must be a multiple of 4."""
    if len(data) % 4:
        raise ValueError("Z85 encodes whole 4-byte groups")
    out = []
    for start in range(0, len(data), 4):
        value = int.from_bytes(data[start : start + 4], "big")
        group = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            group.append(Z85_ALPHABET[digit])
        out.extend(reversed(group))
    return "".join(out)


def z85_decode(text: str) -> bytes:
    out = bytearray()
    for start in range(0, len(text), 5):
        value = 0
        for char in text[start : start + 5]:
            value = value * 85 + Z85_ALPHABET.index(char)
        out += value.to_bytes(4, "big")
    return bytes(out)


def bitmap_array(rows: list[int]) -> bytes:
    """Row indexes as a Delta RoaringBitmapArray: magic, then bucket count, and per bucket its
    high 32 bits and a 32-bit Roaring bitmap of the low bits (all little endian)."""
    buckets: dict[int, list[int]] = {}
    for row in sorted(rows):
        buckets.setdefault(row >> 32, []).append(row & 0xFFFFFFFF)
    out = struct.pack("<iQ", MAGIC, len(buckets))
    for key in sorted(buckets):
        out += struct.pack("<I", key) + pyroaring.BitMap(buckets[key]).serialize()
    return out


def descriptor(root: Path, rows: list[int], storage: str) -> dict[str, Any]:
    """A deletion vector descriptor for ``rows``, writing the DV file for storage ``u``."""
    data = bitmap_array(rows)
    if storage == "i":
        padded = data + b"\0" * (-len(data) % 4)
        return {
            "storageType": "i",
            "pathOrInlineDv": z85_encode(padded),
            "sizeInBytes": len(data),
            "cardinality": len(rows),
        }
    if storage not in ("u", "p"):
        raise ValueError(
            "storage: 'i' (inline), 'u' (file named by a UUID) or 'p' (file named by a URI)"
        )
    name = uuid.uuid4()
    prefix = "dv"
    (root / prefix).mkdir(exist_ok=True)
    framed = bytes([1]) + struct.pack(">I", len(data)) + data + struct.pack(">I", zlib.crc32(data))
    file = root / prefix / f"deletion_vector_{name}.bin"
    file.write_bytes(framed)
    return {
        "storageType": storage,
        "pathOrInlineDv": (
            prefix + z85_encode(name.bytes) if storage == "u" else file.resolve().as_uri()
        ),
        "offset": 1,
        "sizeInBytes": len(data),
        "cardinality": len(rows),
    }


def add_actions(root: Path) -> dict[str, dict[str, Any]]:
    """The live ``add`` actions by path (reading the JSON commits; no checkpoint expected)."""
    live: dict[str, dict[str, Any]] = {}
    for commit in sorted((root / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return live


def delete_with_deletion_vectors(
    root: Path, rows_by_file: dict[str, list[int]], storage: str
) -> None:
    """Commit the next version: enable deletion vectors and mask ``rows_by_file`` (row indexes
    per data file path) without rewriting any data file."""
    live = add_actions(root)
    version = max(int(p.name[:20]) for p in (root / "_delta_log").glob("*.json")) + 1
    now = int(time.time() * 1000)
    actions: list[dict[str, Any]] = [
        {
            "protocol": {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["deletionVectors"],
                "writerFeatures": ["deletionVectors"],
            }
        }
    ]
    for path, rows in rows_by_file.items():
        add = live[path]
        actions.append(
            {
                "remove": {
                    "path": path,
                    "deletionTimestamp": now,
                    "dataChange": True,
                    "extendedFileMetadata": True,
                    "partitionValues": add["partitionValues"],
                    "size": add["size"],
                }
            }
        )
        masked = dict(add, dataChange=True, modificationTime=now)
        masked["deletionVector"] = descriptor(root, rows, storage)
        actions.append({"add": masked})
    actions.append(
        {"commitInfo": {"timestamp": now, "operation": "DELETE", "operationParameters": {}}}
    )
    commit = root / "_delta_log" / f"{version:020d}.json"
    with commit.open("x") as out:  # a commit is never overwritten
        out.write("".join(json.dumps(a) + "\n" for a in actions))
