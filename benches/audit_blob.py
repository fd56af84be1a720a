"""Audit log append rates: one writer and several processes on an Azure append blob (Azurite),
against the local file log.

Each blob record costs two round trips (read what others appended, then an Append Block
conditioned on the append position); a writer that loses the race re-reads and retries.
Azurite comes from the npm cache scripts/test.sh fills (``$AZURITE_BLOB`` overrides).

Run (release build: ``maturin develop --release``)::

    python benches/audit_blob.py --records 200 --processes 4
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import amlguard as ag

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development-storage key (not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
CHILD = (
    "import sys, amlguard as ag\n"
    "log = ag.AuditLog(sys.argv[1], keyring=ag.LocalKeyring(sys.argv[2]),"
    " storage_options={'use_emulator': True})\n"
    "for i in range(int(sys.argv[3])):\n"
    "    log.append('export', rows=i)\n"
)


def start_azurite() -> tuple[subprocess.Popen[bytes], int]:
    executable = os.environ.get("AZURITE_BLOB") or str(
        Path.home() / ".cache" / "amlguard-azurite" / "node_modules" / ".bin" / "azurite-blob"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [executable, "--silent", "--location", tempfile.mkdtemp(), "--blobHost", "127.0.0.1",
         "--blobPort", str(port), "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.1)
    process.terminate()
    raise SystemExit("Azurite did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200, help="records per writer")
    parser.add_argument("--processes", type=int, default=4, help="concurrent writer processes")
    args = parser.parse_args()

    from azure.storage.blob import BlobServiceClient

    azurite, port = start_azurite()
    try:
        os.environ["AZURITE_BLOB_STORAGE_URL"] = f"http://127.0.0.1:{port}"
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
        BlobServiceClient.from_connection_string(connection).create_container("audit")
        keyring = ag.LocalKeyring(tempfile.mkdtemp())
        keyring.ensure_key("audit")
        options = {"use_emulator": True}

        one = ag.AuditLog("az://audit/one.jsonl", keyring=keyring, storage_options=options)
        started = time.perf_counter()
        for i in range(args.records):
            one.append("export", rows=i)
        single = args.records / (time.perf_counter() - started)

        shared = "az://audit/shared.jsonl"
        started = time.perf_counter()
        writers = [
            subprocess.Popen([sys.executable, "-c", CHILD, shared, keyring.path, str(args.records)])
            for _ in range(args.processes)
        ]
        if any(writer.wait() != 0 for writer in writers):
            raise SystemExit("a writer failed")
        together = args.processes * args.records / (time.perf_counter() - started)
        report = ag.AuditLog(shared, keyring=keyring, storage_options=options).verify()

        local = ag.AuditLog(Path(tempfile.mkdtemp()) / "audit.jsonl", keyring=keyring)
        started = time.perf_counter()
        for i in range(args.records):
            local.append("export", rows=i)
        local_rate = args.records / (time.perf_counter() - started)
    finally:
        azurite.terminate()
        azurite.wait()
    print(f"append blob, one writer:           {single:8.0f} records/s")
    print(f"append blob, {args.processes} processes at once: {together:8.0f} records/s in total "
          f"(verify ok={report.ok}, {report.records_checked} records)")  # fmt: skip
    print(f"local file (fsync per record):     {local_rate:8.0f} records/s")


if __name__ == "__main__":
    main()
