"""The audit log in an Azure append blob (Azurite): conditional appends, concurrent writers
in threads and processes, verification and proofs read back from the blob."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import amlguard as ag
import pytest
from azure.storage.blob import BlobServiceClient
from support.azure_fixtures import Azurite

CONTAINER = "audit"


@pytest.fixture(scope="module")
def blobs(azurite: Azurite) -> Iterator[BlobServiceClient]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    client.create_container(CONTAINER)
    yield client
    client.close()


@pytest.fixture
def log_url(blobs: BlobServiceClient) -> str:
    return f"az://{CONTAINER}/logs/{uuid.uuid4().hex}.jsonl"


def blob_lines(blobs: BlobServiceClient, url: str) -> list[dict[str, object]]:
    name = url.split(f"az://{CONTAINER}/", 1)[1]
    data = blobs.get_blob_client(CONTAINER, name).download_blob().readall()
    return [json.loads(line) for line in data.decode().splitlines()]


def test_records_land_in_an_append_blob_and_verify(
    blobs: BlobServiceClient, log_url: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    log = ag.AuditLog(log_url, keyring=keyring, checkpoint_every=3,
                      storage_options=azurite.storage_options)  # fmt: skip
    ids = [log.append("export", dataset=f"d{i}", rows=i) for i in range(7)]
    assert ids == [0, 1, 2, 4, 5, 6, 8]  # a checkpoint after every third event
    name = log_url.split(f"az://{CONTAINER}/", 1)[1]
    properties = blobs.get_blob_client(CONTAINER, name).get_blob_properties()
    assert properties.blob_type == "AppendBlob"
    records = blob_lines(blobs, log_url)
    assert [r["seq"] for r in records] == list(range(9)) == list(range(len(log)))
    report = log.verify()
    assert report.ok and report.records_checked == 9 and report.checkpoints_checked == 2
    proof = log.prove(ids[-1])
    assert ag.verify_proof(proof, public_key=log.public_key)
    assert log.path == log_url

    # A second handle (another machine) continues the same chain.
    other = ag.AuditLog(log_url, keyring=keyring, storage_options=azurite.storage_options)
    assert other.append("import") == 10 and other.verify().ok


def test_an_hmac_signed_blob_log_verifies_with_its_keyring(
    log_url: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    log = ag.AuditLog(log_url, keyring=keyring, checkpoint_every=2,
                      storage_options=azurite.storage_options,
                      checkpoint_signature="hmac-sha256")  # fmt: skip
    ids = [log.append("export", dataset=f"d{i}") for i in range(5)]
    assert log.verify()
    options = azurite.storage_options
    assert ag.verify_audit_log(log_url, storage_options=options, keyring=keyring)
    with pytest.raises(ag.KeyNotFoundError):
        ag.verify_audit_log(log_url, storage_options=options)
    proof = log.prove(ids[-1])
    assert proof["checkpoint"]["algorithm"] == "hmac-sha256"
    assert ag.verify_proof(proof, log.public_key, keyring=keyring)


def test_tampering_in_the_blob_is_found(
    blobs: BlobServiceClient, log_url: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    log = ag.AuditLog(log_url, keyring=keyring, checkpoint_every=2,
                      storage_options=azurite.storage_options)  # fmt: skip
    for i in range(4):
        log.append("export", rows=i)
    assert ag.verify_audit_log(log_url, storage_options=azurite.storage_options).ok
    env = {**os.environ, "AZURE_STORAGE_USE_EMULATOR": "true"}
    command = [sys.executable, "-m", "amlguard", "audit", "verify", log_url]
    clean = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert clean.returncode == 0, clean.stderr
    name = log_url.split(f"az://{CONTAINER}/", 1)[1]
    client = blobs.get_blob_client(CONTAINER, name)
    data = client.download_blob().readall().replace(b'"rows":1', b'"rows":9', 1)
    client.upload_blob(data, overwrite=True, blob_type="AppendBlob")
    report = ag.AuditLog(log_url, keyring=keyring,
                         storage_options=azurite.storage_options).verify()  # fmt: skip
    assert not report.ok and report.first_bad_record == 1
    tampered = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert tampered.returncode == 1 and "first bad record:       1" in tampered.stdout


CHILD = textwrap.dedent(
    """
    import sys, amlguard as ag
    url, ring, writer, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    log = ag.AuditLog(url, keyring=ag.LocalKeyring(ring), checkpoint_every=5,
                      storage_options={"use_emulator": True})
    for i in range(count):
        log.append("export", dataset=f"{writer}-{i}")
    """
)


def test_concurrent_writers_never_interleave_nor_lose_records(
    blobs: BlobServiceClient, log_url: str, azurite: Azurite, keyring: ag.LocalKeyring,
    tmp_path: Path,
) -> None:  # fmt: skip
    keyring.ensure_key("audit")
    processes, per_process, threads, per_thread = 3, 15, 4, 10
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, log_url, keyring.path, f"p{n}", str(per_process)]
        )
        for n in range(processes)
    ]
    log = ag.AuditLog(log_url, keyring=keyring, checkpoint_every=5,
                      storage_options=azurite.storage_options)  # fmt: skip
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for i in range(per_thread):
                log.append("export", dataset=f"t{writer}-{i}")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for child in children:
        assert child.wait(timeout=300) == 0
    assert errors == []

    records = blob_lines(blobs, log_url)
    events = [r for r in records if r["kind"] == "event"]
    datasets = sorted(str(r["target"]["dataset"]) for r in events)  # type: ignore[index]
    expected = sorted(
        [f"p{n}-{i}" for n in range(processes) for i in range(per_process)]
        + [f"t{n}-{i}" for n in range(threads) for i in range(per_thread)]
    )
    assert datasets == expected  # every record once: none lost, none doubled
    assert [r["seq"] for r in records] == list(range(len(records)))
    report = log.verify()
    assert report.ok and report.records_checked == len(records)
    assert report.checkpoints_checked >= len(events) // 5 - 1


def test_operations_write_to_a_blob_log_through_the_environment(
    blobs: BlobServiceClient, log_url: str, azurite: Azurite, keyring: ag.LocalKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AMLGUARD_AUDIT_LOG", log_url)
    kek = keyring.kek("pseudo")
    sealed = ag.encrypt_bytes(b"secret payload", kek=kek)
    ag.decrypt_bytes(sealed, kek=kek)
    actions = [r["action"] for r in blob_lines(blobs, log_url)]
    assert actions == ["encrypt_bytes", "decrypt_bytes"]


def test_bad_blob_locations_get_typed_errors(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    with pytest.raises(ag.InvalidArgumentError):
        ag.AuditLog("az://Bad_Container/x.jsonl", keyring=keyring,
                    storage_options=azurite.storage_options)  # fmt: skip
    missing = ag.AuditLog("az://no-such-container/x.jsonl", keyring=keyring,
                          storage_options=azurite.storage_options)  # fmt: skip
    with pytest.raises(ag.StorageNotFoundError):
        missing.append("export")
    name = f"block-{uuid.uuid4().hex}.jsonl"
    blobs.get_blob_client(CONTAINER, name).upload_blob(b"")  # a block blob, not an append blob
    wrong_type = ag.AuditLog(f"az://{CONTAINER}/{name}", keyring=keyring,
                             storage_options=azurite.storage_options)  # fmt: skip
    with pytest.raises(ag.StorageError):
        wrong_type.append("export")


def witness_url() -> str:
    return f"az://{CONTAINER}/witness/{uuid.uuid4().hex}.jsonl"


def test_a_blob_witness_finds_truncation_of_a_local_log(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    path, witness = tmp_path / "audit.jsonl", witness_url()
    log = ag.AuditLog(path, keyring=keyring, witness=witness, checkpoint_every=3,
                      storage_options=azurite.storage_options)  # fmt: skip
    assert log.witness == witness
    for i in range(10):
        log.append("export", rows=i)
    mirrored = blob_lines(blobs, witness)
    name = witness.split(f"az://{CONTAINER}/", 1)[1]
    assert blobs.get_blob_client(CONTAINER, name).get_blob_properties().blob_type == "AppendBlob"
    logged = [r["details"] for r in (json.loads(x) for x in path.read_text().splitlines())
              if r["kind"] == "checkpoint"]  # fmt: skip
    assert mirrored == logged and [c["tree_size"] for c in mirrored] == [3, 7, 11]
    report = log.verify()
    assert report.ok and report.witness_checked and report.witness_checkpoints_checked == 3

    # Cut the log back to before its last checkpoint: its chain alone still looks whole.
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:9]))
    assert ag.verify_audit_log(path).ok
    for report in (
        log.verify(),
        ag.verify_audit_log(path, witness=witness, storage_options=azurite.storage_options),
    ):
        assert not report.ok and report.first_bad_record == 9
        assert "truncated" in (report.problem or "")
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    command = [sys.executable, "-m", "amlguard", "audit", "verify", str(path), "--witness", witness]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "first bad record:       9" in result.stdout


def test_a_blob_log_recreated_shorter_is_caught_by_its_blob_witness(
    blobs: BlobServiceClient, log_url: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    witness = witness_url()
    log = ag.AuditLog(log_url, keyring=keyring, witness=witness, checkpoint_every=3,
                      storage_options=azurite.storage_options)  # fmt: skip
    for i in range(7):
        log.append("export", rows=i)
    assert log.verify().witness_checkpoints_checked == 2
    # An append blob cannot be cut in place: whoever shortens it deletes and rewrites it.
    name = log_url.split(f"az://{CONTAINER}/", 1)[1]
    client = blobs.get_blob_client(CONTAINER, name)
    kept = b"".join(client.download_blob().readall().splitlines(keepends=True)[:4])
    client.delete_blob()
    client.upload_blob(kept, blob_type="AppendBlob")
    reader = ag.AuditLog(log_url, keyring=keyring, witness=witness,
                         storage_options=azurite.storage_options)  # fmt: skip
    report = reader.verify()
    assert not report.ok and report.first_bad_record == 4 and "truncated" in (report.problem or "")


def test_a_missing_blob_witness_is_reported_not_ignored(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring, tmp_path: Path
) -> None:
    path, witness = tmp_path / "audit.jsonl", witness_url()
    log = ag.AuditLog(path, keyring=keyring, witness=witness, checkpoint_every=2,
                      storage_options=azurite.storage_options)  # fmt: skip
    log.append("export")
    assert log.verify().ok  # no checkpoint yet, so no witness is expected
    log.append("export")
    blobs.get_blob_client(CONTAINER, witness.split(f"az://{CONTAINER}/", 1)[1]).delete_blob()
    with pytest.raises(FileNotFoundError, match="witness"):
        log.verify()
