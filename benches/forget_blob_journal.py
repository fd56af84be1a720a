"""Wall time of forgetting subjects in a blob dataset where every blob is affected (Azurite).

``--blobs`` blobs of ``--rows`` rows (three row groups each) under one prefix, one subject per
blob, so that every blob is rewritten and the journal gets two updates per blob. A child
process runs ``ag.forget`` and reports the time of that call alone; each run starts from
freshly uploaded blobs. Run it under two builds to see what the journal costs. Azurite comes
from the npm cache scripts/test.sh fills (``$AZURITE_BLOB`` overrides).

Run (release build)::

    python benches/forget_blob_journal.py --blobs 100 --rows 30000 --runs 3
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from audit_blob import AZURITE_ACCOUNT, AZURITE_KEY, start_azurite

CHILD = (
    "import sys, time, amlguard as ag\n"
    "start = time.perf_counter()\n"
    "dataset = ag.Dataset(sys.argv[1], id_column='patient_id')\n"
    "receipt = ag.forget(sys.argv[3].split(','), [dataset], keyring=ag.LocalKeyring(sys.argv[2]),\n"
    "                    storage_options={'use_emulator': True})\n"
    "print(len(receipt.files), receipt.rows_removed, time.perf_counter() - start)\n"
)


def blob_bytes(index: int, rows: int) -> bytes:
    table = pa.table(
        {
            "patient_id": [f"subject-{index:04d}-{i // 3:06d}" for i in range(rows)],
            "visit": list(range(rows)),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=max(1, rows // 3))
    return sink.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from azure.storage.blob import BlobServiceClient

    process, port = start_azurite()
    try:
        url = f"http://127.0.0.1:{port}"
        service = BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={url}/{AZURITE_ACCOUNT};"
        )
        service.create_container("journal")
        blobs = [blob_bytes(k, args.rows) for k in range(args.blobs)]
        subjects = ",".join(f"subject-{k:04d}-{7:06d}" for k in range(args.blobs))
        environment = dict(os.environ, AZURITE_BLOB_STORAGE_URL=url)
        keyring = Path(tempfile.mkdtemp()) / "keyring"
        for run in range(args.runs):
            prefix = f"run-{run}/"
            for k, data in enumerate(blobs):
                service.get_blob_client("journal", f"{prefix}part-{k:04d}.parquet").upload_blob(
                    data
                )
            done = subprocess.run(
                [sys.executable, "-c", CHILD, f"az://journal/{prefix}", str(keyring), subjects],
                env=environment, check=True, capture_output=True, text=True,
            )  # fmt: skip
            files, rows, seconds = done.stdout.split()
            print(
                f"run {run}: {files} blobs rewritten ({sum(map(len, blobs)) / 1e6:.1f} MB in "
                f"all), {rows} rows removed, forget {float(seconds):.2f} s"
            )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
