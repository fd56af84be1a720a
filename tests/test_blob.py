"""Azure Blob Storage I/O against Azurite, with KEKs held by the Key Vault protocol server.

Azurite (npm package ``azurite``) runs on 127.0.0.1 with its data in a temporary directory;
the Key Vault protocol server (tests/support/keyvault_server.py) holds the KEKs.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amlguard as ag
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from support.azure_fixtures import Azurite, ServerCredential
from support.keyvault_server import KeyVaultServer

CONTEXT = {"dataset": "patients", "purpose": "training"}


@pytest.fixture(scope="module")
def blobs(azurite: Azurite) -> Iterator[BlobServiceClient]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    for name in ("raw", "curated"):
        client.create_container(name)
    yield client
    client.close()


@pytest.fixture
def kek(kv: KeyVaultServer) -> ag.AzureKek:
    kv.create_key("blob-kek")
    vault = ag.AzureKeyVault(kv.url, ServerCredential(kv), ca_bundle=kv.ca_file)
    return vault.kek("blob-kek")


def blob_bytes(blobs: BlobServiceClient, container: str, name: str) -> bytes:
    return bytes(blobs.get_blob_client(container, name).download_blob().readall())


def blob_exists(blobs: BlobServiceClient, container: str, name: str) -> bool:
    return bool(blobs.get_blob_client(container, name).exists())


def test_end_to_end_parquet_through_azurite_with_a_key_vault_kek(
    tmp_path: Path,
    azurite: Azurite,
    blobs: BlobServiceClient,
    kek: ag.AzureKek,
    kv: KeyVaultServer,
    people: pa.Table,
) -> None:
    local = tmp_path / "part-0.parquet"
    pq.write_table(people, local)
    url = "az://raw/patients/part-0.parquet.amlg"
    report = ag.encrypt_file(
        str(local), url, kek=kek, context=CONTEXT, storage_options=azurite.storage_options
    )
    assert report.plaintext_bytes == local.stat().st_size
    assert report.key_ids == [kek.key_id]
    stored = blob_bytes(blobs, "raw", "patients/part-0.parquet.amlg")
    assert stored[:4] == b"AMLG" and len(stored) == report.container_bytes
    assert kek.key_id.encode() in stored  # the key id with its version is in the header
    assert b"@example" not in stored  # nothing of the plaintext is visible

    # Download-decrypt to a local file, and blob to blob; the abfss form names the same blob.
    kv.reset_counts()
    back = tmp_path / "back.parquet"
    options = azurite.storage_options
    ag.decrypt_file(url, str(back), kek=kek, context=CONTEXT, storage_options=options)
    assert pq.read_table(back).equals(people)
    abfss = "abfss://raw@devstoreaccount1.dfs.core.windows.net/patients/part-0.parquet.amlg"
    ag.decrypt_file(
        abfss,
        "az://curated/patients/part-0.parquet",
        kek=kek,
        context=CONTEXT,
        storage_options=azurite.storage_options,
    )
    plain = blob_bytes(blobs, "curated", "patients/part-0.parquet")
    assert plain == local.read_bytes()
    assert kv.calls["unwrapkey"] == 1  # the second decrypt was served by the DEK cache


def test_large_uploads_stream_in_blocks_and_reads_are_random_access(
    tmp_path: Path, azurite: Azurite, blobs: BlobServiceClient, kek: ag.AzureKek
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 12345)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    options = {**azurite.storage_options, "part_size_bytes": 1024 * 1024, "max_parts_in_flight": 2}
    url = "az://raw/big/blob.amlg"
    ag.encrypt_file(
        str(local),
        url,
        kek=kek,
        context=CONTEXT,
        storage_options=options,
        segment_size_bytes=64 * 1024,
    )
    committed, uncommitted = blobs.get_blob_client("raw", "big/blob.amlg").get_block_list("all")
    assert len(committed) == 6 and not uncommitted  # 1 MiB blocks, committed once, at the end

    with ag.open_encrypted(
        url, kek=kek, context=CONTEXT, storage_options={**options, "read_ahead_bytes": 128 * 1024}
    ) as reader:
        assert reader.size == len(data)
        for offset in (len(data) - 100, 3 * 1024 * 1024 + 7, 0, 65536 * 40 - 3):
            reader.seek(offset)
            assert reader.read(1000) == data[offset : offset + 1000]
        reader.seek(-10, 2)
        assert reader.tell() == len(data) - 10 and reader.read() == data[-10:]
        # Ranged reads: the header, the final segment and a window per jump, not the blob.
        fetched = reader.bytes_fetched
        assert fetched is not None and fetched < 1024 * 1024 < len(data)
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


def test_a_failed_upload_leaves_no_blob_and_keeps_the_old_one(
    tmp_path: Path, azurite: Azurite, blobs: BlobServiceClient, kek: ag.AzureKek, kv: KeyVaultServer
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    local = tmp_path / "data.bin"
    local.write_bytes(data)
    options = {**azurite.storage_options, "part_size_bytes": 256 * 1024}
    sealed = tmp_path / "data.amlg"
    ag.encrypt_file(str(local), str(sealed), kek=kek, context=CONTEXT, segment_size_bytes=64 * 1024)
    # Tamper with a middle segment: decryption streams the first megabytes out in blocks,
    # then fails authentication; the destination blob must never appear.
    tampered = bytearray(sealed.read_bytes())
    tampered[len(tampered) // 2] ^= 1
    sealed.write_bytes(bytes(tampered))
    with pytest.raises(ag.DecryptionError):
        ag.decrypt_file(
            str(sealed),
            "az://curated/never/plain.bin",
            kek=kek,
            context=CONTEXT,
            storage_options=options,
        )
    assert not blob_exists(blobs, "curated", "never/plain.bin")

    # Over an existing blob: the old content stays until a complete upload commits.
    blobs.get_blob_client("curated", "keep/plain.bin").upload_blob(b"old content")
    with pytest.raises(ag.DecryptionError):
        ag.decrypt_file(
            str(sealed),
            "az://curated/keep/plain.bin",
            kek=kek,
            context=CONTEXT,
            storage_options=options,
        )
    assert blob_bytes(blobs, "curated", "keep/plain.bin") == b"old content"

    # A KEK that may not wrap: nothing is uploaded.
    kv.deny(kv.service_principal_identity, "wrapKey")
    with pytest.raises(ag.KeyVaultPermissionError):
        ag.encrypt_file(
            str(local), "az://raw/denied.amlg", kek=kek, context=CONTEXT, storage_options=options
        )
    assert not blob_exists(blobs, "raw", "denied.amlg")


def test_bad_blob_input_gets_typed_errors(
    tmp_path: Path, azurite: Azurite, blobs: BlobServiceClient, kek: ag.AzureKek
) -> None:
    local = tmp_path / "x.bin"
    local.write_bytes(b"hello")
    options = azurite.storage_options
    for bad in (
        "az://",
        "az:///no-container",
        "az://Bad_Name/x",
        "az://raw/",
        "az://raw",
        "s3://bucket/x",
        "abfss://raw@example.com/x",
    ):
        with pytest.raises(ag.InvalidArgumentError, match="url|scheme"):
            ag.encrypt_file(str(local), bad, kek=kek, storage_options=options)
    with pytest.raises(ag.InvalidArgumentError, match="not an Azure storage option"):
        ag.encrypt_file(str(local), "az://raw/x", kek=kek, storage_options={"acount_name": "x"})

    with pytest.raises(ag.StorageNotFoundError, match="no-such-container") as caught:
        ag.encrypt_file(
            str(local), "az://no-such-container/x.amlg", kek=kek, storage_options=options
        )
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(ResourceNotFoundError):
        blobs.get_blob_client("no-such-container", "x.amlg").get_blob_properties()

    with pytest.raises(ag.StorageNotFoundError, match="missing.amlg"):
        ag.decrypt_file(
            "az://raw/missing.amlg", str(tmp_path / "out"), kek=kek, storage_options=options
        )
    assert not (tmp_path / "out").exists()

    blobs.get_blob_client("raw", "plain.csv").upload_blob(b"id,name\n1,Ada\n" * 10)
    with pytest.raises(ag.NotAnEnvelopeError, match="az://raw/plain.csv"):
        ag.open_encrypted("az://raw/plain.csv", kek=kek, storage_options=options)
    blobs.get_blob_client("raw", "short.amlg").upload_blob(b"AMLG\x01")
    with pytest.raises(ag.EnvelopeFormatError):
        ag.decrypt_file(
            "az://raw/short.amlg", str(tmp_path / "out"), kek=kek, storage_options=options
        )
    assert not (tmp_path / "out").exists()


MASK_POLICY = {
    "columns": {
        "email": {"op": "hash", "key": "pseudo"},
        "zip": {"op": "generalize", "prefix": 3, "pad": "*"},
    }
}


def test_mask_parquet_between_blob_datasets(
    tmp_path: Path,
    azurite: Azurite,
    blobs: BlobServiceClient,
    people: pa.Table,
    keyring: ag.LocalKeyring,
) -> None:
    halves = [people.slice(0, 1000), people.slice(1000)]
    for i, half in enumerate(halves):
        local = tmp_path / f"part-{i}.parquet"
        pq.write_table(half, local)
        blobs.get_blob_client("raw", f"people/part-{i}.parquet").upload_blob(local.read_bytes())
    blobs.get_blob_client("raw", "people/_SUCCESS").upload_blob(b"")
    policy = ag.Policy.from_dict(MASK_POLICY)
    report = ag.mask_parquet(
        "az://raw/people/",
        "az://curated/people/",
        policy,
        keyring=keyring,
        storage_options=azurite.storage_options,
    )
    assert report.files == 2 and report.rows == people.num_rows
    names = sorted(b.name for b in blobs.get_container_client("curated").list_blobs("people/"))
    assert names == ["people/part-0.parquet", "people/part-1.parquet"]
    for i, half in enumerate(halves):
        out = tmp_path / f"masked-{i}.parquet"
        out.write_bytes(blob_bytes(blobs, "curated", f"people/part-{i}.parquet"))
        assert pq.read_table(out).equals(policy.apply(half, keyring=keyring))

    # One blob to a local file, and a local file to a blob.
    local_out = tmp_path / "one.parquet"
    ag.mask_file(
        "az://raw/people/part-1.parquet",
        local_out,
        policy,
        keyring=keyring,
        storage_options=azurite.storage_options,
    )
    assert pq.read_table(local_out).equals(policy.apply(halves[1], keyring=keyring))
    ag.mask_file(
        tmp_path / "part-0.parquet",
        "abfss://curated@devstoreaccount1.dfs.core.windows.net/single/part-0.csv",
        policy,
        keyring=keyring,
        storage_options=azurite.storage_options,
    )
    csv_text = blob_bytes(blobs, "curated", "single/part-0.csv").decode()
    assert csv_text.startswith("person_id,name,email,")
    assert len(csv_text.strip().splitlines()) == 1001
    masked = policy.apply(halves[0], keyring=keyring)
    emails = pacsv.read_csv(io.BytesIO(csv_text.encode())).column("email").to_pylist()
    assert emails == [e or "" for e in masked.column("email").to_pylist()]  # CSV: null -> ""

    with pytest.raises(ag.StorageNotFoundError, match="no .parquet or .csv"):
        ag.mask_parquet(
            "az://raw/nothing-here/",
            str(tmp_path / "x"),
            policy,
            keyring=keyring,
            storage_options=azurite.storage_options,
        )


def test_blob_masking_streams_without_local_staging(
    tmp_path: Path,
    azurite: Azurite,
    blobs: BlobServiceClient,
    people: pa.Table,
    keyring: ag.LocalKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing may be written to the temporary directory: blobs are read by range and written
    # by block upload, never staged on local disk.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    local = tmp_path / "groups.parquet"
    pq.write_table(people, local, row_group_size=500, compression="zstd")
    blobs.get_blob_client("raw", "stream/groups.parquet").upload_blob(local.read_bytes())
    csv_buffer = io.BytesIO()
    pacsv.write_csv(people.select(["person_id", "email", "zip"]), csv_buffer)
    blobs.get_blob_client("raw", "stream/people.csv").upload_blob(csv_buffer.getvalue())
    policy = ag.Policy.from_dict(MASK_POLICY)

    report = ag.mask_parquet(
        "az://raw/stream/",
        "az://curated/stream/",
        policy,
        keyring=keyring,
        storage_options=azurite.storage_options,
    )
    assert report.files == 2 and report.rows == 2 * people.num_rows
    assert list(scratch.iterdir()) == []
    out = tmp_path / "masked.parquet"
    out.write_bytes(blob_bytes(blobs, "curated", "stream/groups.parquet"))
    masked = pq.ParquetFile(out)
    # Row groups and codec are kept, as for local files.
    assert masked.metadata.num_row_groups == 4
    assert masked.metadata.row_group(0).column(0).compression == "ZSTD"
    assert masked.read().equals(policy.apply(people, keyring=keyring))
    csv_masked = pacsv.read_csv(io.BytesIO(blob_bytes(blobs, "curated", "stream/people.csv")))
    expected = policy.apply(people.select(["person_id", "email", "zip"]), keyring=keyring)
    emails = [e or "" for e in expected.column("email").to_pylist()]  # CSV: null -> ""
    assert csv_masked.column("email").to_pylist() == emails

    # A policy naming a column the data lacks fails before anything is written.
    broken = ag.Policy.from_dict({"columns": {"no_such_column": {"op": "redact"}}})
    with pytest.raises(ag.ColumnNotFoundError, match="no_such_column"):
        ag.mask_parquet(
            "az://raw/stream/groups.parquet",
            "az://curated/broken/groups.parquet",
            broken,
            keyring=keyring,
            storage_options=azurite.storage_options,
        )
    assert not blob_exists(blobs, "curated", "broken/groups.parquet")

    # A truncated Parquet blob is a typed error, and the output blob never appears.
    blobs.get_blob_client("raw", "stream-bad/cut.parquet").upload_blob(
        local.read_bytes()[: local.stat().st_size // 2]
    )
    with pytest.raises(ag.InvalidDataError):
        ag.mask_parquet(
            "az://raw/stream-bad/cut.parquet",
            "az://curated/stream-bad/cut.parquet",
            policy,
            keyring=keyring,
            storage_options=azurite.storage_options,
        )
    assert not blob_exists(blobs, "curated", "stream-bad/cut.parquet")
    assert list(scratch.iterdir()) == []


def _python_encrypt_upload(blobs: BlobServiceClient, data: bytes, key: bytes) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    started = time.perf_counter()
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, data, b"patients")
    blobs.get_blob_client("raw", "bench/python.bin").upload_blob(sealed, overwrite=True)
    return time.perf_counter() - started


def _python_download_decrypt(blobs: BlobServiceClient, key: bytes) -> tuple[float, bytes]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    started = time.perf_counter()
    sealed = blobs.get_blob_client("raw", "bench/python.bin").download_blob().readall()
    plain = AESGCM(key).decrypt(sealed[:12], sealed[12:], b"patients")
    return time.perf_counter() - started, plain


@pytest.mark.slow
def test_throughput_against_python_blob_client_and_cryptography(
    tmp_path: Path, azurite: Azurite, blobs: BlobServiceClient, kek: ag.AzureKek
) -> None:
    size_mib = 64
    data = os.urandom(size_mib * 1024 * 1024)
    local = tmp_path / "bench.bin"
    local.write_bytes(data)
    url = "az://raw/bench/amlguard.amlg"
    ours_up = ours_down = theirs_up = theirs_down = float("inf")
    key = os.urandom(32)
    for _ in range(2):
        started = time.perf_counter()
        ag.encrypt_file(
            str(local), url, kek=kek, context=CONTEXT, storage_options=azurite.storage_options
        )
        ours_up = min(ours_up, time.perf_counter() - started)
        started = time.perf_counter()
        ag.decrypt_file(
            url,
            str(tmp_path / "back.bin"),
            kek=kek,
            context=CONTEXT,
            storage_options=azurite.storage_options,
        )
        ours_down = min(ours_down, time.perf_counter() - started)
        theirs_up = min(theirs_up, _python_encrypt_upload(blobs, data, key))
        elapsed, plain = _python_download_decrypt(blobs, key)
        theirs_down = min(theirs_down, elapsed)
    assert (tmp_path / "back.bin").read_bytes() == data and plain == data
    figures: dict[str, Any] = {
        "amlguard encrypt+upload": size_mib / ours_up,
        "amlguard download+decrypt": size_mib / ours_down,
        "azure-storage-blob + cryptography encrypt+upload": size_mib / theirs_up,
        "azure-storage-blob + cryptography download+decrypt": size_mib / theirs_down,
    }
    print(f"\nAzurite throughput, {size_mib} MiB, best of 2 (MiB/s):")
    for name, value in figures.items():
        print(f"  {name:55s} {value:8.1f}")
