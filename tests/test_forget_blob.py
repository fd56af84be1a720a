"""Forget in Parquet datasets on Azure Blob Storage (Azurite): affected blobs replaced whole by
conditional puts, unaffected blobs untouched, a blob changed during the run refused."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import amlguard as ag
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from support.azure_fixtures import Azurite

CONTAINER = "lake"
GONE = ["subject-003", "subject-011"]


@pytest.fixture(scope="module")
def blobs(azurite: Azurite) -> Iterator[BlobServiceClient]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    client.create_container(CONTAINER)
    yield client
    client.close()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def people(ids: list[str], rows_each: int = 5) -> pa.Table:
    column = [i for i in ids for _ in range(rows_each)]
    return pa.table({"patient_id": column, "visit": list(range(len(column)))})


def upload(blobs: BlobServiceClient, name: str, table: pa.Table) -> None:
    blobs.get_blob_client(CONTAINER, name).upload_blob(parquet_bytes(table), overwrite=True)


def state(blobs: BlobServiceClient, prefix: str) -> dict[str, tuple[str, bytes]]:
    container = blobs.get_container_client(CONTAINER)
    return {
        b.name: (str(b.etag), container.download_blob(b.name).readall())
        for b in container.list_blobs(name_starts_with=prefix)
    }


@pytest.fixture
def dataset(blobs: BlobServiceClient) -> str:
    prefix = f"patients-{uuid.uuid4().hex[:8]}/"
    upload(blobs, prefix + "part-0.parquet", people(["subject-001", "subject-003"]))
    upload(blobs, prefix + "part-1.parquet", people(["subject-002", "subject-004"]))
    upload(blobs, prefix + "part-2.parquet", people(["subject-011", "subject-005", "subject-003"]))
    upload(blobs, prefix + "part-3.parquet", people(["subject-006"]))
    return prefix


def test_affected_blobs_rewritten_unaffected_untouched(
    blobs: BlobServiceClient, dataset: str, azurite: Azurite, keyring: ag.LocalKeyring,
    tmp_path: Path,
) -> None:  # fmt: skip
    url = f"az://{CONTAINER}/{dataset}"
    target = [ag.Dataset(url, id_column="patient_id")]
    options = azurite.storage_options
    before = state(blobs, dataset)

    planned = ag.forget(GONE, target, keyring=keyring, dry_run=True, storage_options=options)
    assert state(blobs, dataset) == before  # a dry run writes nothing
    assert planned.rows_removed == 15 and len(planned.files) == 2
    assert not ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options)

    log = ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring)
    receipt = ag.forget(GONE, target, keyring=keyring, storage_options=options, audit=log)
    after = state(blobs, dataset)
    assert receipt.files_scanned == 4 and receipt.rows_removed == 15
    assert receipt.files_rewritten == [f"{url}part-0.parquet", f"{url}part-2.parquet"]
    assert receipt.rows_removed_per_file == {f"{url}part-0.parquet": 5, f"{url}part-2.parquet": 10}
    for untouched in ("part-1.parquet", "part-3.parquet"):
        assert after[dataset + untouched] == before[dataset + untouched]  # same ETag and bytes
    for rewritten in ("part-0.parquet", "part-2.parquet"):
        etag, data = after[dataset + rewritten]
        assert etag != before[dataset + rewritten][0]
        table = pq.read_table(io.BytesIO(data))
        original = pq.read_table(io.BytesIO(before[dataset + rewritten][1]))
        keep = pc.invert(pc.is_in(original.column("patient_id"), pa.array(GONE)))
        assert table.equals(original.filter(keep))  # other rows intact, in order
    assert ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options).ok
    assert log.verify().ok

    again = ag.forget(GONE, target, keyring=keyring, storage_options=options)
    assert again.rows_removed == 0 and state(blobs, dataset) == after  # nothing left to do


def test_hive_partitioned_blob_tree_is_walked_and_hidden_folders_skipped(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    prefix = f"hive-{uuid.uuid4().hex[:8]}/"
    upload(blobs, prefix + "date=2024-01-01/part-0.parquet", people(["subject-003", "subject-001"]))
    upload(blobs, prefix + "date=2024-01-02/region=eu/part-0.parquet", people(["subject-011"]))
    upload(blobs, prefix + "date=2024-01-02/region=us/part-0.parquet", people(["subject-002"]))
    # Hidden folders (job scratch, table logs) are not part of the dataset and are never touched.
    upload(blobs, prefix + "_temporary/part-0.parquet", people(["subject-003"]))
    upload(blobs, prefix + ".staging/part-0.parquet", people(["subject-011"]))
    before = state(blobs, prefix)
    url = f"az://{CONTAINER}/{prefix}"
    target = [ag.Dataset(url, id_column="patient_id")]
    options = azurite.storage_options

    receipt = ag.forget(GONE, target, keyring=keyring, storage_options=options)
    assert receipt.files_scanned == 3 and receipt.rows_removed == 10
    assert receipt.files_rewritten == [
        f"{url}date=2024-01-01/part-0.parquet",
        f"{url}date=2024-01-02/region=eu/part-0.parquet",
    ]
    after = state(blobs, prefix)
    for untouched in ("date=2024-01-02/region=us/part-0.parquet", "_temporary/part-0.parquet",
                      ".staging/part-0.parquet"):  # fmt: skip
        assert after[prefix + untouched] == before[prefix + untouched]
    kept = pq.read_table(io.BytesIO(after[prefix + "date=2024-01-01/part-0.parquet"][1]))
    assert kept.column("patient_id").to_pylist() == ["subject-001"] * 5
    emptied = pq.read_table(
        io.BytesIO(after[prefix + "date=2024-01-02/region=eu/part-0.parquet"][1])
    )
    assert emptied.num_rows == 0 and emptied.schema.names == ["patient_id", "visit"]
    assert ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options).ok


def test_a_blob_changed_during_the_run_is_refused(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    prefix = f"race-{uuid.uuid4().hex[:8]}/"
    upload(blobs, prefix + "part-0.parquet", people(["subject-003", "subject-001"]))
    # A large second blob: rewriting it takes long enough for another writer to get in.
    big_ids = [f"subject-{i:07d}" for i in range(400_000)] + ["subject-003"]
    upload(blobs, prefix + "part-1.parquet", people(big_ids, rows_each=3))
    first = blobs.get_blob_client(CONTAINER, prefix + "part-0.parquet")
    second = blobs.get_blob_client(CONTAINER, prefix + "part-1.parquet")
    first_etag = first.get_blob_properties().etag
    theirs = parquet_bytes(people(["someone-else"]))
    stop = threading.Event()

    def other_writer() -> None:
        # As soon as the run has replaced the first blob, change the second one under it.
        while not stop.is_set():
            if first.get_blob_properties().etag != first_etag:
                second.upload_blob(theirs, overwrite=True)
                return
            time.sleep(0.002)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        with pytest.raises(ag.ConcurrentModificationError, match="part-1.parquet"):
            ag.forget(["subject-003"], [ag.Dataset(f"az://{CONTAINER}/{prefix}",
                      id_column="patient_id")], keyring=keyring,
                      storage_options=azurite.storage_options)  # fmt: skip
    finally:
        stop.set()
        writer.join()
    assert second.download_blob().readall() == theirs  # their write stands
    remaining = pq.read_table(io.BytesIO(first.download_blob().readall()))
    assert remaining.column("patient_id").to_pylist() == ["subject-001"] * 5


def test_bad_input_changes_nothing(
    blobs: BlobServiceClient, dataset: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    options = azurite.storage_options
    url = f"az://{CONTAINER}/{dataset}"
    upload(blobs, dataset + "part-9.parquet", pa.table({"other": ["subject-003"]}))
    before = state(blobs, dataset)
    with pytest.raises(ag.ColumnNotFoundError, match="part-9"):
        ag.forget(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                  storage_options=options)  # fmt: skip
    assert state(blobs, dataset) == before  # every blob is scanned before any is written
    nobody = ag.forget(["nobody"], [ag.Dataset(url + "part-0.parquet", id_column="patient_id")],
                       keyring=keyring, storage_options=options)  # fmt: skip
    assert nobody.rows_removed == 0 and nobody.files_scanned == 1
    with pytest.raises(ag.StorageNotFoundError):
        ag.forget(GONE, [ag.Dataset(f"az://{CONTAINER}/no-such-prefix/", id_column="x")],
                  keyring=keyring, storage_options=options)  # fmt: skip
