"""Parquet Modular Encryption: amlguard's writer and reader, and pyarrow through the crypto
factory, under the same master keys (local keyring, or the Key Vault protocol server with
Azurite for the blob end)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import amlguard as ag
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
import pytest
from azure.storage.blob import BlobServiceClient
from support.azure_fixtures import Azurite, ServerCredential
from support.keyvault_server import KeyVaultServer

COLUMN_KEYS = {"pii-key": ["ssn", "date_of_birth"], "contact-key": ["email"]}


@pytest.fixture
def kr(tmp_path: Path) -> ag.LocalKeyring:
    ring = ag.LocalKeyring(tmp_path / "pme-keys")
    for name in ("footer-key", "pii-key", "contact-key"):
        ring.ensure_key(name)
    return ring


def write_encrypted(table: Any, path: Path, kr: Any, **kwargs: Any) -> ag.ParquetReport:
    options: dict[str, Any] = {"footer_key": "footer-key", "column_keys": COLUMN_KEYS}
    options.update(kwargs)
    return ag.write_parquet(table, path, keys=kr, **options)


def every_type_table(rows: int) -> pa.Table:
    def maybe(i: int, value: Any, every: int = 5) -> Any:
        return None if i % every == 0 else value

    return pa.table(
        {
            "i8": pa.array([maybe(i, i % 100) for i in range(rows)], pa.int8()),
            "u64": pa.array([maybe(i, 2**63 + i) for i in range(rows)], pa.uint64()),
            "f32": pa.array([maybe(i, i / 3) for i in range(rows)], pa.float32()),
            "flag": pa.array([maybe(i, i % 2 == 0, 7) for i in range(rows)]),
            "text": pa.array([maybe(i, f"välue {i}") for i in range(rows)]),
            "view": pa.array(
                [maybe(i, f"a longer string {i}" * 2) for i in range(rows)], pa.string_view()
            ),  # fmt: skip
            "large": pa.array([maybe(i, "x" * (i % 9)) for i in range(rows)], pa.large_string()),
            "raw": pa.array([maybe(i, bytes([i % 256]) * 3) for i in range(rows)]),
            "day": pa.array(
                [maybe(i, dt.date(2000, 1, 1) + dt.timedelta(days=i)) for i in range(rows)]
            ),
            "at": pa.array(
                [maybe(i, dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i)) for i in range(rows)],
                pa.timestamp("us", tz="UTC"),
            ),
            "money": pa.array(
                [maybe(i, Decimal(i) / 100) for i in range(rows)], pa.decimal128(12, 2)
            ),  # fmt: skip
            "tags": pa.array([maybe(i, [f"t{i}", None]) for i in range(rows)]),
            "addr": pa.array([maybe(i, {"zip": f"{i:05}", "floor": i % 4}) for i in range(rows)]),
            "grade": pa.array(["abc"[i % 3] for i in range(rows)]).dictionary_encode(),
        }
    )


def decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns as their values: each row group carries its own dictionary."""
    columns = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.table(columns, names=table.column_names)


def test_round_trip_of_every_type_with_nulls_and_many_row_groups(
    tmp_path: Path, kr: ag.LocalKeyring
) -> None:
    table = every_type_table(2_500)
    path = tmp_path / "types.parquet"
    report = ag.write_parquet(
        table, path, keys=kr, footer_key="footer-key",
        column_keys={"pii-key": ["text", "view", "addr", "money"], "contact-key": ["tags"]},
        row_group_rows=1_000,
    )  # fmt: skip
    assert report.rows == 2_500 and report.row_groups == 3
    assert set(report.encrypted_columns) == {
        "text", "view", "addr.zip", "addr.floor", "money", "tags.list.item"
    }  # fmt: skip
    back, read_report = ag.read_parquet_with_report(path, keys=kr)
    assert back.schema.equals(table.schema)
    assert decoded(back).equals(decoded(table))
    assert read_report.rows == 2_500
    # pyarrow reads the same file through the crypto factory, with the same values.
    assert decoded(read_with_pyarrow(path, kr)).equals(decoded(table))


def test_polars_pandas_and_pyarrow_in_and_the_asked_for_type_out(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    table = people.select(["name", "email", "ssn", "date_of_birth", "salary"])
    frame = pl.DataFrame(table)
    write_encrypted(frame, tmp_path / "polars.parquet", kr)
    back = ag.read_parquet(tmp_path / "polars.parquet", keys=kr, output="polars")
    assert isinstance(back, pl.DataFrame) and back.equals(frame)

    pandas_frame = table.to_pandas()
    write_encrypted(pandas_frame, tmp_path / "pandas.parquet", kr)
    back_pd = ag.read_parquet(tmp_path / "pandas.parquet", keys=kr, output="pandas")
    pd.testing.assert_frame_equal(back_pd, pandas_frame)

    write_encrypted(table.to_batches()[0], tmp_path / "batch.parquet", kr)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=100))
    report = write_encrypted(reader, tmp_path / "reader.parquet", kr)
    assert report.rows == table.num_rows
    for name in ("batch.parquet", "reader.parquet"):
        assert ag.read_parquet(tmp_path / name, keys=kr).equals(table.slice(0, report.rows))
    projected = ag.read_parquet(tmp_path / "reader.parquet", keys=kr, columns=["ssn", "name"])
    assert projected.column_names == ["ssn", "name"]
    assert projected.equals(table.select(["ssn", "name"]))


def test_empty_tables_round_trip(tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table) -> None:
    empty = people.slice(0, 0)
    write_encrypted(empty, tmp_path / "empty.parquet", kr)
    back = ag.read_parquet(tmp_path / "empty.parquet", keys=kr)
    assert back.num_rows == 0 and back.schema.equals(empty.schema)
    assert read_with_pyarrow(tmp_path / "empty.parquet", kr).num_rows == 0


def read_with_pyarrow(path: Path, keys: Any, **kwargs: Any) -> pa.Table:
    factory = ag.pyarrow_crypto_factory(keys)
    properties = factory.file_decryption_properties(
        pe.KmsConnectionConfig(), pe.DecryptionConfiguration()
    )
    return pq.read_table(path, decryption_properties=properties, **kwargs)


def write_with_pyarrow(table: pa.Table, path: Path, keys: Any, **kwargs: Any) -> None:
    factory = ag.pyarrow_crypto_factory(keys)
    config = pe.EncryptionConfiguration(footer_key="footer-key", column_keys=COLUMN_KEYS, **kwargs)
    properties = factory.file_encryption_properties(pe.KmsConnectionConfig(), config)
    with pq.ParquetWriter(path, table.schema, encryption_properties=properties) as writer:
        writer.write_table(table)


@pytest.mark.parametrize("double_wrapping", [True, False])
@pytest.mark.parametrize("plaintext_footer", [False, True])
def test_pyarrow_reads_what_amlguard_wrote_and_amlguard_reads_what_pyarrow_wrote(
    tmp_path: Path,
    kr: ag.LocalKeyring,
    people: pa.Table,
    double_wrapping: bool,
    plaintext_footer: bool,
) -> None:
    ours = tmp_path / "amlguard.parquet"
    write_encrypted(
        people, ours, kr, double_wrapping=double_wrapping, plaintext_footer=plaintext_footer
    )
    assert read_with_pyarrow(ours, kr).equals(people)
    # pyarrow refuses the file without keys, as amlguard does.
    if not plaintext_footer:
        with pytest.raises(OSError):
            pq.read_table(ours)

    theirs = tmp_path / "pyarrow.parquet"
    write_with_pyarrow(
        people, theirs, kr, double_wrapping=double_wrapping, plaintext_footer=plaintext_footer
    )
    back, report = ag.read_parquet_with_report(theirs, keys=kr)
    assert back.equals(people)
    assert set(report.encrypted_columns) == {"ssn", "date_of_birth", "email"}
    assert report.plaintext_footer == plaintext_footer
    # Double wrapping: one unwrap per master key (its per-file KEK); single wrapping: one per
    # data key (the footer's and three columns'), however many row groups.
    assert (report.kms_wraps, report.kms_unwraps) == (0, 3 if double_wrapping else 4)


def decryption(keys: Any) -> Any:
    return ag.pyarrow_crypto_factory(keys).file_decryption_properties(
        pe.KmsConnectionConfig(), pe.DecryptionConfiguration()
    )


def test_key_material_is_the_key_tools_format_with_amlguard_wrapped_keys(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    path = tmp_path / "material.parquet"
    write_encrypted(people, path, kr, plaintext_footer=True)
    raw = path.read_bytes().decode("latin-1")
    # Key material sits in the plaintext footer as the key tools' JSON: two column keys' and
    # the footer's (signing) key's.
    decoder = json.JSONDecoder()
    materials = []
    start = raw.find('{"keyMaterialType":"PKMT1"')
    while start >= 0:
        material, end = decoder.raw_decode(raw, start)
        materials.append(material)
        start = raw.find('{"keyMaterialType":"PKMT1"', end)
    by_key = {(m["masterKeyID"], m["isFooterKey"]) for m in materials}
    assert by_key == {("pii-key", False), ("contact-key", False), ("footer-key", True)}
    for material in materials:
        assert material["internalStorage"] is True and material["doubleWrapping"] is True
        wrapped = json.loads(material["wrappedKEK"])
        assert wrapped["amlguard"] == 1
        assert wrapped["keyId"] == f"local:{material['masterKeyID']}@1"
        assert wrapped["algorithm"] == "AES-256-KWP"
        assert len(base64.b64decode(wrapped["wrapped"])) == 24  # a 128-bit KEK, RFC 5649
        # The DEK is wrapped by that KEK: nonce, 16 key bytes, tag.
        assert len(base64.b64decode(material["wrappedDEK"])) == 12 + 16 + 16


def test_plaintext_footer_lets_plain_readers_see_unencrypted_columns(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    path = tmp_path / "open-footer.parquet"
    report = write_encrypted(people, path, kr, plaintext_footer=True)
    assert report.plaintext_footer
    # Plain pyarrow, no keys: schema, row count and the unencrypted columns.
    plain = pq.ParquetFile(path)
    assert plain.metadata.num_rows == people.num_rows
    assert plain.schema_arrow.names == people.column_names
    assert pq.read_table(path, columns=["name", "salary"]).equals(people.select(["name", "salary"]))
    with pytest.raises(OSError):
        pq.read_table(path, columns=["ssn"])
    # amlguard without keys: the same.
    assert ag.read_parquet(path, columns=["name"]).equals(people.select(["name"]))
    with pytest.raises(ag.ParquetKeysRequiredError, match="pass keys"):
        ag.read_parquet(path, columns=["name", "ssn"])


def test_missing_and_wrong_keys_are_typed_errors(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    path = tmp_path / "pii.parquet"
    write_encrypted(people, path, kr)
    with pytest.raises(ag.ParquetKeysRequiredError, match="encrypted Parquet file"):
        ag.read_parquet(path)
    with pytest.raises(ag.ParquetKeysRequiredError):
        ag.read_parquet(path, columns=["name"])  # the encrypted footer hides every column

    impostor = ag.LocalKeyring(tmp_path / "impostor")
    for name in ("footer-key", "pii-key", "contact-key"):
        impostor.ensure_key(name)
    with pytest.raises(ag.DecryptionError):
        ag.read_parquet(path, keys=impostor)
    with pytest.raises(ag.DecryptionError):  # pyarrow passes our client's error through
        read_with_pyarrow(path, impostor)

    # The same footer key, but not the column keys.
    shutil.copytree(Path(kr.path) / "footer-key", tmp_path / "partial" / "footer-key")
    partial = ag.LocalKeyring(tmp_path / "partial")
    with pytest.raises(ag.KeyNotFoundError, match="(pii|contact)-key"):
        ag.read_parquet(path, keys=partial)
    with pytest.raises(ag.KeyNotFoundError, match="footer-key"):
        ag.read_parquet(path, keys=ag.LocalKeyring(tmp_path / "empty"))

    with pytest.raises(TypeError, match="LocalKeyring or amlguard.AzureKeyVault"):
        ag.read_parquet(path, keys=kr.kek("footer-key"))
    with pytest.raises(ag.ColumnNotFoundError, match="sssn"):
        ag.write_parquet(people, tmp_path / "typo.parquet", keys=kr, footer_key="footer-key",
                         column_keys={"pii-key": ["sssn"]})  # fmt: skip
    with pytest.raises(ag.InvalidArgumentError, match="footer_key"):
        ag.write_parquet(people, tmp_path / "nofooter.parquet", keys=kr,
                         column_keys={"pii-key": ["ssn"]})  # fmt: skip
    assert not (tmp_path / "typo.parquet").exists()
    assert not (tmp_path / "nofooter.parquet").exists()


def encrypted_chunk_range(path: Path, keys: Any, column: str) -> tuple[int, int]:
    metadata = pq.ParquetFile(path, decryption_properties=decryption(keys)).metadata
    index = metadata.schema.names.index(column)
    chunk = metadata.row_group(0).column(index)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    return start, chunk.total_compressed_size


@pytest.mark.parametrize("plaintext_footer", [False, True])
def test_tampered_files_are_rejected(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table, plaintext_footer: bool
) -> None:
    path = tmp_path / "tamper.parquet"
    write_encrypted(people, path, kr, plaintext_footer=plaintext_footer)
    original = path.read_bytes()
    start, size = encrypted_chunk_range(path, kr, "ssn")
    # Three bytes of the encrypted column chunk, then one in the footer's GCM tag (encrypted
    # footer) or signature (plaintext footer), just before the length and magic.
    for at in (start + 3, start + size // 2, start + size - 1, len(original) - 8 - 10):
        tampered = bytearray(original)
        tampered[at] ^= 0x01
        path.write_bytes(bytes(tampered))
        with pytest.raises(ag.DecryptionError):
            ag.read_parquet(path, keys=kr)
    path.write_bytes(original)
    assert ag.read_parquet(path, keys=kr).equals(people)


def test_swapping_column_chunks_between_files_is_rejected(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    # Two files with the same layout under the same keys: the second file's encrypted ssn
    # chunk pasted into the first fails, because every module's AAD binds the file's unique id.
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    write_encrypted(people, first, kr, plaintext_footer=True)
    write_encrypted(people, second, kr, plaintext_footer=True)
    a, b = first.read_bytes(), second.read_bytes()
    start, size = encrypted_chunk_range(first, kr, "ssn")
    assert (start, size) == encrypted_chunk_range(second, kr, "ssn")
    spliced = a[:start] + b[start : start + size] + a[start + size :]
    first.write_bytes(spliced)
    with pytest.raises(ag.DecryptionError):
        ag.read_parquet(first, keys=kr)


def test_rotation_keeps_old_files_readable_and_new_files_use_the_new_version(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    before = tmp_path / "before.parquet"
    write_encrypted(people, before, kr)
    kr.rotate("pii-key")
    assert ag.read_parquet(before, keys=kr).equals(people)
    client = ag.AmlguardKmsClient(kr)
    wrapped = client.wrap_key(b"k" * 16, "pii-key")
    assert json.loads(wrapped)["keyId"] == "local:pii-key@2"
    assert client.unwrap_key(wrapped, "pii-key") == b"k" * 16
    assert client.calls == (1, 1)
    # "Re-wrapping" a file under the new version is a rewrite.
    after = tmp_path / "after.parquet"
    write_encrypted(ag.read_parquet(before, keys=kr), after, kr)
    assert ag.read_parquet(after, keys=kr).equals(people)


def key_material_file(path: Path) -> Path:
    return path.with_name(f"_KEY_MATERIAL_FOR_{path.name}.json")


def key_ids_in(material_file: Path) -> set[str]:
    """The master key versions (KMS ``keyId``) the stored key material references."""
    ids = set()
    for text in json.loads(material_file.read_text()).values():
        material = json.loads(text)
        wrapped = material["wrappedKEK"] if material["doubleWrapping"] else material["wrappedDEK"]
        ids.add(json.loads(wrapped)["keyId"])
    return ids


def external_decryption(keys: Any, path: Path) -> Any:
    return ag.pyarrow_crypto_factory(keys).file_decryption_properties(
        pe.KmsConnectionConfig(), pe.DecryptionConfiguration(), parquet_file_path=str(path)
    )


@pytest.mark.parametrize("double_wrapping", [True, False])
def test_external_key_material_is_read_by_pyarrow_and_amlguard_reads_pyarrows(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table, double_wrapping: bool
) -> None:
    ours = tmp_path / "amlguard.parquet"
    write_encrypted(people, ours, kr, external_key_material=True, double_wrapping=double_wrapping)
    stored = json.loads(key_material_file(ours).read_text())
    assert sorted(stored) == ["columnKey0", "columnKey1", "columnKey2", "footerKey"]
    footer = json.loads(stored["footerKey"])
    assert footer["isFooterKey"] and footer["masterKeyID"] == "footer-key"
    assert "internalStorage" not in footer
    # The file itself holds only a reference (in its plaintext crypto metadata), no wrapped key.
    raw = ours.read_bytes()
    reference = b'{"keyMaterialType":"PKMT1","internalStorage":false,"keyReference":"footerKey"}'
    assert reference in raw
    assert b"wrappedDEK" not in raw and b"wrappedKEK" not in raw
    assert pq.read_table(ours, decryption_properties=external_decryption(kr, ours)).equals(people)
    assert ag.read_parquet(ours, keys=kr).equals(people)

    theirs = tmp_path / "pyarrow.parquet"
    factory = ag.pyarrow_crypto_factory(kr)
    config = pe.EncryptionConfiguration(
        footer_key="footer-key", column_keys=COLUMN_KEYS, internal_key_material=False,
        double_wrapping=double_wrapping, plaintext_footer=True,
    )  # fmt: skip
    properties = factory.file_encryption_properties(
        pe.KmsConnectionConfig(), config, parquet_file_path=str(theirs)
    )
    pq.write_table(people, theirs, encryption_properties=properties)
    assert key_material_file(theirs).exists()
    # A plaintext footer shows the module key metadata: a reference to the external file.
    assert b'"internalStorage":false' in theirs.read_bytes()
    back, report = ag.read_parquet_with_report(theirs, keys=kr)
    assert back.equals(people)
    assert set(report.encrypted_columns) == {"ssn", "date_of_birth", "email"}


@pytest.mark.parametrize("double_wrapping", [True, False])
def test_rotation_rewraps_external_key_material_without_touching_the_data(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table, double_wrapping: bool
) -> None:
    path = tmp_path / "rotated.parquet"
    write_encrypted(people, path, kr, external_key_material=True)
    material = key_material_file(path)
    data_before, material_before = path.read_bytes(), material.read_text()
    assert key_ids_in(material) == {"local:footer-key@1", "local:pii-key@1", "local:contact-key@1"}
    for name in ("footer-key", "pii-key", "contact-key"):
        kr.rotate(name)
    report = ag.rotate_parquet_keys(path, keys=kr, double_wrapping=double_wrapping)
    assert report.keys_rewrapped == 4
    # Double wrapping: one unwrap and one wrap per master key; single: one wrap per data key.
    assert report.kms_unwraps == 3
    assert report.kms_wraps == (3 if double_wrapping else 4)
    assert report.key_material_path == str(material)
    assert path.read_bytes() == data_before
    assert material.read_text() != material_before
    assert key_ids_in(material) == {"local:footer-key@2", "local:pii-key@2", "local:contact-key@2"}
    assert not list(tmp_path.glob(".*.tmp"))
    assert ag.read_parquet(path, keys=kr).equals(people)
    assert pq.read_table(path, decryption_properties=external_decryption(kr, path)).equals(people)
    footer = json.loads(json.loads(material.read_text())["footerKey"])
    assert footer["doubleWrapping"] == double_wrapping
    # The old versions are no longer needed: with them deleted, the file still reads.
    for old in (tmp_path / "pme-keys").glob("*/v000001.key"):
        old.unlink()
    assert ag.read_parquet(path, keys=ag.LocalKeyring(tmp_path / "pme-keys")).equals(people)


def test_amlguard_reads_after_pyarrow_rotates_the_master_keys(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    path = tmp_path / "pyarrow-rotated.parquet"
    write_encrypted(people, path, kr, external_key_material=True)
    data_before = path.read_bytes()
    kr.rotate("pii-key")
    # A fresh factory: pyarrow caches KMS clients, and a client caches the latest versions.
    ag.pyarrow_crypto_factory(kr).rotate_master_keys(
        pe.KmsConnectionConfig(), str(path), double_wrapping=True
    )
    assert path.read_bytes() == data_before
    assert "local:pii-key@2" in key_ids_in(key_material_file(path))
    assert "local:pii-key@1" not in key_ids_in(key_material_file(path))
    assert ag.read_parquet(path, keys=kr).equals(people)


def test_external_key_material_errors_are_typed(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    inside = tmp_path / "inside.parquet"
    write_encrypted(people, inside, kr)
    with pytest.raises(ag.ParquetKeyMaterialError, match="rewrite"):
        ag.rotate_parquet_keys(inside, keys=kr)

    path = tmp_path / "outside.parquet"
    write_encrypted(people, path, kr, external_key_material=True)
    material = key_material_file(path)
    good = material.read_text()
    material.unlink()
    with pytest.raises(ag.ParquetKeyMaterialError, match="missing"):
        ag.read_parquet(path, keys=kr)
    with pytest.raises(ag.ParquetKeyMaterialError, match="rewrite"):
        ag.rotate_parquet_keys(path, keys=kr)

    material.write_text("{not json")
    with pytest.raises(ag.ParquetKeyMaterialError):
        ag.read_parquet(path, keys=kr)
    with pytest.raises(ag.ParquetKeyMaterialError):
        ag.rotate_parquet_keys(path, keys=kr)

    entries = json.loads(good)
    del entries["columnKey1"]
    material.write_text(json.dumps(entries))
    with pytest.raises(ag.ParquetKeyMaterialError, match="columnKey1"):
        ag.read_parquet(path, keys=kr)

    # A wrapped data key altered in the JSON fails authentication, as a tampered file does.
    entries = json.loads(good)
    footer = json.loads(entries["footerKey"])
    wrapped = bytearray(base64.b64decode(footer["wrappedDEK"]))
    wrapped[15] ^= 1
    footer["wrappedDEK"] = base64.b64encode(bytes(wrapped)).decode()
    entries["footerKey"] = json.dumps(footer)
    material.write_text(json.dumps(entries))
    with pytest.raises(ag.DecryptionError):
        ag.read_parquet(path, keys=kr)
    with pytest.raises(ag.DecryptionError):
        ag.rotate_parquet_keys(path, keys=kr)

    material.write_text(good)
    assert ag.read_parquet(path, keys=kr).equals(people)
    with pytest.raises(ag.InvalidArgumentError, match="footer_key"):
        ag.write_parquet(people, tmp_path / "plain.parquet", external_key_material=True)


def test_kms_calls_are_constant_per_file(
    tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table
) -> None:
    table = pa.concat_tables([people] * 5)
    figures = {}
    for row_group_rows in (10_000, 500):
        path = tmp_path / f"rg{row_group_rows}.parquet"
        written = write_encrypted(table, path, kr, row_group_rows=row_group_rows)
        _, read_report = ag.read_parquet_with_report(path, keys=kr)
        figures[written.row_groups] = (written.kms_wraps, read_report.kms_unwraps)
    assert figures == {1: (3, 3), 20: (3, 3)}

    client = ag.AmlguardKmsClient(kr)
    factory = pe.CryptoFactory(lambda _config: client)
    config = pe.EncryptionConfiguration(footer_key="footer-key", column_keys=COLUMN_KEYS)
    properties = factory.file_encryption_properties(pe.KmsConnectionConfig(), config)
    pq.write_table(table, tmp_path / "pa.parquet", encryption_properties=properties,
                   row_group_size=500)  # fmt: skip
    assert client.calls == (3, 0)


def test_writes_are_atomic(tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "atomic.parquet"
    write_encrypted(people, target, kr)
    before = target.read_bytes()

    def batches() -> Iterator[pa.RecordBatch]:
        yield from people.to_batches(max_chunksize=500)[:2]
        raise RuntimeError("the source broke")

    reader = pa.RecordBatchReader.from_batches(people.schema, batches())
    with pytest.raises(Exception, match="the source broke"):
        write_encrypted(reader, target, kr, row_group_rows=100)
    assert target.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["atomic.parquet"]


def test_report_reads_in_a_notebook(tmp_path: Path, kr: ag.LocalKeyring, people: pa.Table) -> None:
    report = write_encrypted(people, tmp_path / "r.parquet", kr)
    text = repr(report)
    assert "kms_wraps=3" in text and "footer_key='footer-key'" in text
    assert "<table>" in report._repr_html_()
    assert report.kms_calls == 3 and report.bytes == (tmp_path / "r.parquet").stat().st_size
    assert report.megabytes_per_second > 0


@pytest.fixture(scope="module")
def containers(azurite: Azurite) -> Iterator[BlobServiceClient]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    client.create_container("pme")
    yield client
    client.close()


def test_key_vault_master_keys_and_azurite_blobs(
    tmp_path: Path,
    kv: KeyVaultServer,
    azurite: Azurite,
    containers: BlobServiceClient,
    people: pa.Table,
) -> None:
    for name in ("footer-key", "pii-key", "contact-key"):
        kv.create_key(name)
    vault = ag.AzureKeyVault(kv.url, ServerCredential(kv), ca_bundle=kv.ca_file)
    url = "az://pme/patients/part-0.parquet"
    kv.reset_counts()
    report = write_encrypted(people, url, vault, storage_options=azurite.storage_options)
    # One key read (the latest version) and one wrap per master key, for the whole file.
    assert (kv.calls["get"], kv.calls["wrapkey"]) == (3, 3)
    assert report.kms_wraps == 3
    stored = containers.get_blob_client("pme", "patients/part-0.parquet")
    assert stored.get_blob_properties().size == report.bytes

    kv.reset_counts()
    back = ag.read_parquet(url, keys=vault, storage_options=azurite.storage_options)
    assert back.equals(people)
    assert kv.calls["unwrapkey"] <= 3 and kv.calls["get"] == 0
    # pyarrow reads the blob's bytes through the same vault.
    local = tmp_path / "copy.parquet"
    local.write_bytes(stored.download_blob().readall())
    assert read_with_pyarrow(local, vault).equals(people)

    # Rotating the Key Vault key leaves the file readable (the version is recorded).
    kv.create_key("pii-key")
    vault.clear_cache()
    assert ag.read_parquet(url, keys=vault, storage_options=azurite.storage_options).equals(people)
    with pytest.raises(ag.ParquetKeysRequiredError):
        ag.read_parquet(url, storage_options=azurite.storage_options)


def test_external_key_material_is_refused_for_blobs_before_anything_is_written(
    kr: ag.LocalKeyring, azurite: Azurite, containers: BlobServiceClient, people: pa.Table
) -> None:
    url = "az://pme/external/part-0.parquet"
    with pytest.raises(ag.InvalidArgumentError, match="local paths only"):
        write_encrypted(
            people, url, kr, external_key_material=True, storage_options=azurite.storage_options
        )
    assert not list(containers.get_container_client("pme").list_blobs(name_starts_with="external/"))
