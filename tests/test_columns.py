"""Column encryption from Python: encrypt_columns / decrypt_columns / encrypted_columns.

Round trips through polars, pandas and pyarrow (the same type comes back), Parquet and IPC
files keep the encrypted columns' metadata, deterministic tokens join, tampering and wrong keys
give typed errors, subject keys make forgotten subjects' values unreadable, and an Azure Key
Vault KEK (the protocol server in tests/support) wraps the column keys with one unwrap each.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import amlguard as ag
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from support.azure_fixtures import ServerCredential
from support.keyvault_server import KeyVaultServer


@pytest.fixture
def kek(keyring: ag.LocalKeyring) -> ag.Kek:
    keyring.ensure_key("pii")
    return keyring.kek("pii")


def patients() -> pa.Table:
    return pa.table(
        {
            "patient_id": ["p1", "p2", "p3", "p1"],
            "ssn": ["123-45-6789", None, "555-12-3456", "123-45-6789"],
            "age": pa.array([41, 33, None, 41], pa.int64()),
            "score": pa.array([0.5, None, 2.25, 0.5], pa.float64()),
            "active": pa.array([True, False, None, True]),
            "born": pa.array(
                [dt.date(1983, 1, 2), None, dt.date(2001, 5, 6), dt.date(1983, 1, 2)], pa.date32()
            ),
            "seen": pa.array(
                [dt.datetime(2024, 1, 1, 12, 30), None, dt.datetime(2024, 2, 1), None],
                pa.timestamp("us", tz="UTC"),
            ),
            "balance": pa.array(
                [decimal.Decimal("10.25"), None, decimal.Decimal("-3.50"), decimal.Decimal("1")],
                pa.decimal128(12, 2),
            ),
            "note": pa.array(["a", "b", None, "ü ✓"], pa.string_view()),
            "blob": pa.array([b"\x00", None, b"", b"\xff\xfe"], pa.large_binary()),
        }
    )


ENCRYPTED = ["ssn", "age", "score", "active", "born", "seen", "balance", "note", "blob"]


@pytest.mark.parametrize("mode", ["randomized", "deterministic"])
def test_pyarrow_round_trip_every_type(kek: ag.Kek, mode: str) -> None:
    table = patients()
    enc = ag.encrypt_columns(table, ENCRYPTED, kek=kek, mode=mode, context={"dataset": "patients"})
    assert isinstance(enc, pa.Table)
    assert enc.column("patient_id") == table.column("patient_id")
    for name in ENCRYPTED:
        field = enc.schema.field(name)
        assert field.type == pa.binary()
        assert field.metadata[b"ARROW:extension:name"] == b"amlguard.encrypted"
        assert enc.column(name).null_count == table.column(name).null_count
    plain = ag.decrypt_columns(enc, keks=[kek])
    assert plain.equals(table)
    assert plain.schema.equals(table.schema)


def test_record_batch_in_record_batch_out(kek: ag.Kek) -> None:
    batch = patients().to_batches()[0]
    enc = ag.encrypt_columns(batch, ["ssn"], kek=kek)
    assert isinstance(enc, pa.RecordBatch)
    assert ag.decrypt_columns(enc, kek=kek).equals(batch)


def test_encrypted_columns_lists_no_secrets(kek: ag.Kek) -> None:
    enc = ag.encrypt_columns(
        patients(), ["ssn", "age"], kek=kek, mode="deterministic", context={"dataset": "p"}
    )
    listed = ag.encrypted_columns(enc)
    assert [c.column for c in listed] == ["ssn", "age"]
    assert {c.mode for c in listed} == {"deterministic"}
    assert {c.key_id for c in listed} == {kek.key_id}
    assert listed[0].original_type == "Utf8"
    assert listed[1].original_type == "Int64"
    assert listed[0].context == {"dataset": "p"}
    assert "wrapped" not in repr(listed)
    assert ag.encrypted_columns(enc.schema) == listed
    assert ag.encrypted_columns(patients()) == []


def test_polars_round_trip_keeps_the_extension_type(kek: ag.Kek) -> None:
    frame = pl.DataFrame(
        {"patient_id": ["p1", "p2", None], "age": [41, None, 7], "city": ["a", "b", "c"]}
    )
    enc = ag.encrypt_columns(frame, ["patient_id", "age"], kek=kek)
    assert isinstance(enc, pl.DataFrame)
    assert enc["city"].to_list() == ["a", "b", "c"]
    assert [c.column for c in ag.encrypted_columns(enc)] == ["patient_id", "age"]
    # polars operations keep the type: filter, then decrypt what is left.
    filtered = enc.filter(pl.col("city") != "b")
    plain = ag.decrypt_columns(filtered, keks=[kek])
    assert isinstance(plain, pl.DataFrame)
    assert plain.to_dict(as_series=False) == {
        "patient_id": ["p1", None],
        "age": [41, 7],
        "city": ["a", "c"],
    }


def test_pandas_round_trip_keeps_metadata_in_attrs(kek: ag.Kek) -> None:
    frame = pd.DataFrame({"ssn": ["1", None, "3"], "age": [41, 33, 7], "keep": [1.0, 2.0, 3.0]})
    frame.attrs["owner"] = "team-a"
    enc = ag.encrypt_columns(frame, ["ssn", "age"], kek=kek)
    assert isinstance(enc, pd.DataFrame)
    assert set(enc.attrs[ag.columns.PANDAS_ATTRS_KEY]) == {"ssn", "age"}
    assert enc.attrs["owner"] == "team-a"
    assert isinstance(enc["ssn"][0], bytes)
    assert [c.column for c in ag.encrypted_columns(enc)] == ["ssn", "age"]
    plain = ag.decrypt_columns(enc, keks=[kek])
    pd.testing.assert_frame_equal(plain, frame)
    assert ag.columns.PANDAS_ATTRS_KEY not in plain.attrs
    assert plain.attrs["owner"] == "team-a"


def test_parquet_and_ipc_round_trips_keep_the_metadata(kek: ag.Kek, tmp_path: Path) -> None:
    table = patients()
    enc = ag.encrypt_columns(table, ENCRYPTED, kek=kek, context={"dataset": "patients"})
    pq.write_table(enc, tmp_path / "enc.parquet")
    from_parquet = pq.read_table(tmp_path / "enc.parquet")
    assert ag.decrypt_columns(from_parquet, keks=[kek]).equals(table)
    feather.write_feather(enc, tmp_path / "enc.arrow")
    from_ipc = feather.read_table(tmp_path / "enc.arrow")
    assert ag.decrypt_columns(from_ipc, keks=[kek]).equals(table)
    # polars writes and reads Parquet with the extension type intact as well.
    pl.DataFrame(enc.select(["patient_id", "ssn", "age"])).write_parquet(tmp_path / "pl.parquet")
    from_polars = pl.read_parquet(tmp_path / "pl.parquet")
    plain = ag.decrypt_columns(from_polars, keks=[kek])
    assert plain["ssn"].to_list() == table.column("ssn").to_pylist()
    assert plain["age"].to_list() == table.column("age").to_pylist()


def test_deterministic_tokens_join_across_tables_with_reuse_from(kek: ag.Kek) -> None:
    visits = pa.table({"patient_id": ["p3", "p1", "p9"], "visit": [1, 2, 3]})
    people = ag.encrypt_columns(patients(), ["patient_id"], kek=kek, mode="deterministic")
    tokens = people.column("patient_id").to_pylist()
    assert tokens[0] == tokens[3] and tokens[0] != tokens[1]
    enc_visits = ag.encrypt_columns(
        visits, ["patient_id"], kek=kek, mode="deterministic", reuse_from=people
    )
    joined = pl.DataFrame(people.select(["patient_id", "age"])).join(
        pl.DataFrame(enc_visits), on="patient_id"
    )
    assert sorted(joined["visit"].to_list()) == [1, 2, 2]
    # Without reuse_from, a fresh key: no token in common.
    fresh = ag.encrypt_columns(visits, ["patient_id"], kek=kek, mode="deterministic")
    assert not set(fresh.column("patient_id").to_pylist()) & set(tokens)
    # Appended batches decrypt under the first table's schema.
    both = pa.concat_tables([people.select(["patient_id"]), enc_visits.select(["patient_id"])])
    assert ag.decrypt_columns(both, keks=[kek]).column("patient_id").to_pylist() == [
        "p1",
        "p2",
        "p3",
        "p1",
        "p3",
        "p1",
        "p9",
    ]


def test_tampered_values_raise_decryption_error_naming_the_column_or_become_null(
    kek: ag.Kek,
) -> None:
    enc = ag.encrypt_columns(patients(), ["ssn", "note"], kek=kek)
    values = enc.column("ssn").to_pylist()
    flipped = bytearray(values[2])
    flipped[-1] ^= 1
    values[2] = bytes(flipped)
    index = enc.schema.get_field_index("ssn")
    tampered = enc.set_column(index, enc.schema.field("ssn"), pa.array(values, pa.binary()))
    with pytest.raises(ag.DecryptionError, match="column 'ssn'"):
        ag.decrypt_columns(tampered, keks=[kek])
    plain = ag.decrypt_columns(tampered, keks=[kek], on_error="null")
    assert plain.column("ssn").to_pylist() == ["123-45-6789", None, None, "123-45-6789"]
    # Values moved to another column (its metadata stays) fail too.
    swapped = enc.set_column(index, enc.schema.field("ssn"), enc.column("note"))
    with pytest.raises(ag.DecryptionError, match="column 'ssn'"):
        ag.decrypt_columns(swapped, keks=[kek])


def test_wrong_kek_and_wrong_context(kek: ag.Kek, keyring: ag.LocalKeyring, tmp_path: Path) -> None:
    enc = ag.encrypt_columns(patients(), ["ssn"], kek=kek, context={"dataset": "patients"})
    with pytest.raises(ag.NoMatchingKeyError, match="column 'ssn'.*local:pii@1"):
        ag.decrypt_columns(enc, keks=[keyring.kek("pseudo")])
    with pytest.raises(ag.NoMatchingKeyError):
        ag.decrypt_columns(enc)
    impostor_ring = ag.LocalKeyring(tmp_path / "other")
    impostor_ring.ensure_key("pii")
    with pytest.raises(ag.DecryptionError, match="column 'ssn'"):
        ag.decrypt_columns(enc, keks=[impostor_ring.kek("pii")])
    with pytest.raises(ag.DecryptionError, match="column 'ssn'"):
        ag.decrypt_columns(enc, keks=[kek], context={"dataset": "visits"})
    assert ag.decrypt_columns(enc, keks=[kek], context={"dataset": "patients"}).equals(patients())


def test_bad_arguments(kek: ag.Kek) -> None:
    with pytest.raises(ag.ColumnNotFoundError):
        ag.encrypt_columns(patients(), ["nope"], kek=kek)
    with pytest.raises(ag.InvalidArgumentError, match="mode"):
        ag.encrypt_columns(patients(), ["ssn"], kek=kek, mode="fast")
    with pytest.raises(ag.InvalidArgumentError, match="on_error"):
        ag.decrypt_columns(patients(), keks=[kek], on_error="ignore")
    with pytest.raises(ag.ColumnTypeError):
        ag.encrypt_columns(pa.table({"l": [[1, 2]]}), ["l"], kek=kek)
    with pytest.raises(TypeError):
        ag.encrypt_columns(patients(), ["ssn"])
    enc = ag.encrypt_columns(patients(), ["ssn"], kek=kek)
    with pytest.raises(ag.InvalidDataError, match="already encrypted"):
        ag.encrypt_columns(enc, ["ssn"], kek=kek)
    with pytest.raises(ag.InvalidArgumentError, match="reuse_from"):
        ag.encrypt_columns(patients(), ["age"], kek=kek, reuse_from=enc)


def test_subject_keys_forget_makes_values_unreadable(
    kek: ag.Kek, keyring: ag.LocalKeyring, tmp_path: Path
) -> None:
    store = ag.SubjectKeyStore(keyring)
    table = patients()
    enc = ag.encrypt_columns(table, ["ssn", "age"], subject_column="patient_id", subject_keys=store)
    [listed, _] = ag.encrypted_columns(enc)
    assert listed.subject_column == "patient_id"
    assert listed.key_id == store.kek_id
    pq.write_table(enc, tmp_path / "export.parquet")  # a copy made before the request
    assert ag.decrypt_columns(enc, subject_keys=store).equals(table)

    dataset = tmp_path / "data"
    dataset.mkdir()
    pq.write_table(enc, dataset / "part-0.parquet")
    receipt = ag.forget(
        ["p1"],
        datasets=[ag.Dataset(dataset, id_column="patient_id")],
        keyring=keyring,
        subject_keys=store,
    )
    assert receipt.rows_removed == 2
    assert len(receipt.keys_destroyed) == 1
    assert receipt.keys_destroyed[0]["unusable_at"]

    # The copy made earlier still holds p1's rows, but they no longer decrypt.
    export = pq.read_table(tmp_path / "export.parquet")
    with pytest.raises(ag.ForgottenError):
        ag.decrypt_columns(export, subject_keys=store)
    partial = ag.decrypt_columns(export, subject_keys=store, on_error="null")
    assert partial.column("ssn").to_pylist() == [None, None, "555-12-3456", None]
    assert partial.column("age").to_pylist() == [None, 33, None, None]
    rest = ag.decrypt_columns(pq.read_table(dataset / "part-0.parquet"), subject_keys=store)
    assert rest.column("patient_id").to_pylist() == ["p2", "p3"]
    assert rest.column("ssn").to_pylist() == [None, "555-12-3456"]


def test_azure_key_vault_kek_wraps_column_keys(kv: KeyVaultServer) -> None:
    kv.create_key("columns")
    vault = ag.AzureKeyVault(kv.url, ServerCredential(kv), ca_bundle=kv.ca_file)
    kek = vault.kek("columns")
    table = patients()
    enc = ag.encrypt_columns(table, ["ssn", "age", "note"], kek=kek, mode="deterministic")
    assert {c.key_id for c in ag.encrypted_columns(enc)} == {kek.key_id}
    kv.reset_counts()
    assert ag.decrypt_columns(enc, keks=[kek]).equals(table)
    assert kv.calls["unwrapkey"] <= 3, "one unwrap per column at most"


def test_calls_are_audited_without_values_or_keys(
    kek: ag.Kek, keyring: ag.LocalKeyring, tmp_path: Path
) -> None:
    log = ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring)
    enc = ag.encrypt_columns(
        patients(), ["ssn"], kek=kek, context={"dataset": "patients"}, audit=log
    )
    ag.decrypt_columns(enc, keks=[kek], audit=log)
    with pytest.raises(ag.NoMatchingKeyError):
        ag.decrypt_columns(enc, keks=[keyring.kek("pseudo")], audit=log)
    text = (tmp_path / "audit.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    actions = [(r.get("operation") or r.get("action"), r.get("outcome")) for r in records]
    assert ("encrypt_columns", "success") in actions
    assert ("decrypt_columns", "success") in actions
    assert ("decrypt_columns", "failure") in actions
    assert kek.key_id in text
    assert "123-45-6789" not in text
    meta = enc.schema.field("ssn").metadata[b"ARROW:extension:metadata"].decode()
    assert json.loads(meta)["wrapped_dek"] not in text
    assert bool(log.verify())
