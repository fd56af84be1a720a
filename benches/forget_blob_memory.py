"""Peak memory of forgetting subjects in one large Parquet blob on Azure Blob Storage (Azurite).

A child process runs ``ag.forget`` on an ``az://`` dataset holding one blob of about
``--megabytes`` MB (incompressible payload column); ``/usr/bin/time -f %M`` reports its peak
resident set size (measured through ``time``: a child forked from this process would inherit
this process's peak), shown with the blob's size and with importing amlguard alone. Azurite
comes from the npm cache scripts/test.sh fills (``$AZURITE_BLOB`` overrides).

Run (release build)::

    python benches/forget_blob_memory.py --megabytes 200
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from audit_blob import AZURITE_ACCOUNT, AZURITE_KEY, start_azurite

CHILD = (
    "import sys, time, amlguard as ag\n"
    "start = time.perf_counter()\n"
    "receipt = ag.forget(['subject-00007'], [ag.Dataset(sys.argv[1], id_column='patient_id')],\n"
    "                    keyring=ag.LocalKeyring(sys.argv[2]),\n"
    "                    storage_options={'use_emulator': True})\n"
    "print(receipt.rows_removed, receipt.bytes_rewritten, time.perf_counter() - start)\n"
)
BASELINE = "import amlguard"


def blob_bytes(megabytes: int) -> bytes:
    payload_bytes = 200
    rows = megabytes * 1024 * 1024 // payload_bytes
    table = pa.table(
        {
            "patient_id": [f"subject-{i % 10_000:05d}" for i in range(rows)],
            "payload": [os.urandom(payload_bytes) for _ in range(rows)],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=256 * 1024)
    return sink.getvalue()


def peak_kib(command: list[str], environment: dict[str, str]) -> tuple[int, str]:
    """Peak RSS (KiB) of ``command`` per ``/usr/bin/time``, and its standard output."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], env=environment, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return int(done.stderr.strip().splitlines()[-1]), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()
    from azure.storage.blob import BlobServiceClient

    process, port = start_azurite()
    try:
        url = f"http://127.0.0.1:{port}"
        service = BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={url}/{AZURITE_ACCOUNT};"
        )
        service.create_container("memory")
        data = blob_bytes(args.megabytes)
        service.get_blob_client("memory", "patients/part-0.parquet").upload_blob(data)
        environment = dict(os.environ, AZURITE_BLOB_STORAGE_URL=url)
        keyring = Path(tempfile.mkdtemp()) / "keyring"
        baseline_kib, _ = peak_kib([sys.executable, "-c", BASELINE], environment)
        started = time.perf_counter()
        peak, output = peak_kib(
            [sys.executable, "-c", CHILD, "az://memory/patients/", str(keyring)], environment
        )
        wall = time.perf_counter() - started
        rows, rewritten, seconds = output.split()
        print(
            f"blob: {len(data) / 1e6:.1f} MB; rows removed {rows}; rewritten "
            f"{int(rewritten) / 1e6:.1f} MB; forget {float(seconds):.2f} s (child {wall:.2f} s)"
        )
        print(
            f"peak RSS: {peak / 1024:.0f} MiB "
            f"(importing amlguard alone: {baseline_kib / 1024:.0f} MiB)"
        )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
