"""Forget in a Delta table on Azure Blob Storage (Azurite), reached with the same
storage_options as amlguard's blob layer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import amlguard as ag
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from support.azure_fixtures import Azurite

deltalake = pytest.importorskip("deltalake")

CONTAINER = "deltalake"
GONE = ["subject-000", "subject-017"]


@pytest.fixture(scope="module")
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    client.create_container(CONTAINER)
    yield client.get_container_client(CONTAINER)
    client.close()


def people(start: int, stop: int) -> pa.Table:
    ids = [f"subject-{i % 40:03d}" for i in range(start, stop)]
    return pa.table({"patient_id": ids, "visit": list(range(start, stop))})


def text_options(options: dict[str, object]) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}


def blobs_naming(container: ContainerClient, prefix: str, ids: list[str]) -> list[str]:
    """Blobs under ``prefix`` whose bytes, or decoded Parquet rows, hold an identifier."""
    found = []
    for blob in container.list_blobs(name_starts_with=prefix):
        data = container.download_blob(blob.name).readall()
        if blob.name.endswith(".parquet"):
            data += json.dumps(pq.read_table(pa.BufferReader(data)).to_pylist()).encode()
        if any(i.encode() in data for i in ids):
            found.append(blob.name)
    return found


def test_forget_and_verify_a_delta_table_in_blob_storage(
    azurite: Azurite, container: ContainerClient, keyring: ag.LocalKeyring
) -> None:
    prefix = f"visits-{uuid.uuid4().hex[:8]}"
    url = f"az://{CONTAINER}/{prefix}"
    options = azurite.storage_options
    deltalake.write_deltalake(url, people(0, 200), storage_options=text_options(options),
                              configuration={"delta.enableChangeDataFeed": "true"})  # fmt: skip
    deltalake.write_deltalake(url, people(200, 400), mode="append",
                              storage_options=text_options(options))  # fmt: skip
    before = deltalake.DeltaTable(url, storage_options=text_options(options)).to_pyarrow_table()
    dataset = ag.Dataset(url, id_column="patient_id", format="delta")
    found = ag.verify_forgotten(GONE, [dataset], keyring=keyring, storage_options=options)
    assert not found and found.rows_found == 20
    assert all(path.startswith(url + "/") for path, _ in found.files_with_rows)

    planned = ag.forget(GONE, [dataset], keyring=keyring, storage_options=options, dry_run=True)
    assert planned.delta_tables[0]["rows_removed"] == 20
    assert planned.delta_tables[0]["version_after"] == 1

    receipt = ag.forget(GONE, [dataset], keyring=keyring, storage_options=options)
    (table,) = receipt.delta_tables
    assert table["rows_removed"] == 20 and table["version_after"] == 2
    kinds = {c["kind"] for c in table["remaining_copies"]}
    assert {"superseded data file", "change data feed", "log commit", "storage"} <= kinds
    assert ag.verify_forgotten(GONE, [dataset], keyring=keyring, storage_options=options).ok

    receipt = ag.forget(GONE, [dataset], keyring=keyring, storage_options=options, vacuum=True)
    (table,) = receipt.delta_tables
    assert table["files_vacuumed"] and table["change_data_files_removed"]
    assert table["log_versions_expired"] and table["versions_lost_history"]
    assert [c["kind"] for c in table["remaining_copies"]] == ["storage"]
    assert blobs_naming(container, prefix + "/", GONE) == []
    after = deltalake.DeltaTable(url, storage_options=text_options(options)).to_pyarrow_table()
    expected = before.filter(pc.invert(pc.field("patient_id").isin(GONE)))
    assert sorted(after.to_pylist(), key=lambda r: r["visit"]) == sorted(
        expected.to_pylist(), key=lambda r: r["visit"]
    )
    assert ag.verify_forgotten(GONE, [dataset], keyring=keyring, storage_options=options).ok


def test_a_missing_blob_table_is_not_found(
    azurite: Azurite, container: ContainerClient, keyring: ag.LocalKeyring
) -> None:
    dataset = ag.Dataset(f"az://{CONTAINER}/none-{uuid.uuid4().hex[:8]}", id_column="x",
                         format="delta")  # fmt: skip
    with pytest.raises(FileNotFoundError):
        ag.forget(GONE, [dataset], keyring=keyring, storage_options=azurite.storage_options)
