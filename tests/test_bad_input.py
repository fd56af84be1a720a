"""Bad input gets a clear, typed error and loses nothing."""

from __future__ import annotations

from pathlib import Path

import amlguard as ag
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def invalid_utf8_column() -> pa.Array:
    offsets = pa.array([0, 2, 3], pa.int32()).buffers()[1]
    data = pa.py_buffer(b"\xff\xfeA")
    return pa.Array.from_buffers(pa.string(), 2, [None, offsets, data])


def test_non_utf8_string_column_is_invalid_data(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"v": invalid_utf8_column()})
    for rule in ({"op": "mask", "keep_last": 1}, {"op": "hash", "key": "pseudo"}, {"op": "redact"}):
        with pytest.raises(ag.InvalidDataError, match="UTF-8") as caught:
            ag.Policy.from_dict({"columns": {"v": rule}}).apply(table, keyring=keyring)
        assert "column 'v'" in str(caught.value)


def test_binary_column_with_string_operator_is_a_type_error(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"v": pa.array([b"\xff"], pa.binary())})
    with pytest.raises(ag.ColumnTypeError, match="Binary"):
        ag.Policy.from_dict({"columns": {"v": {"op": "mask"}}}).apply(table, keyring=keyring)


def test_unknown_column_on_empty_table() -> None:
    with pytest.raises(ag.ColumnNotFoundError, match="none"):
        ag.Policy.from_dict({"columns": {"v": {"op": "redact"}}}).apply(pa.table({}))


def test_csv_with_a_bad_row_writes_nothing(tmp_path: Path, keyring: ag.LocalKeyring) -> None:
    source = tmp_path / "in.csv"
    source.write_text("name,ssn\nann,123-45-6789\nbob,987-65-4321,extra\n")
    destination = tmp_path / "out.csv"
    policy = ag.Policy.from_dict({"columns": {"ssn": {"op": "redact"}}})
    with pytest.raises(ag.InvalidDataError, match="CSV") as caught:
        ag.mask_file(source, destination, policy, keyring=keyring)
    assert "987-65-4321" not in str(caught.value)
    assert not destination.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "keyring"]
    assert source.read_text().startswith("name,ssn\nann")


def test_failure_mid_file_leaves_no_output_and_keeps_existing(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    source = tmp_path / "cards.parquet"
    values = ["4111111111111111"] * 70_000 + ["12"]  # the last value is too short for FF1
    pq.write_table(pa.table({"card": values}), source)
    destination = tmp_path / "masked.parquet"
    destination.write_bytes(b"previous result")
    policy = ag.Policy.from_dict({"columns": {"card": {"op": "fpe", "key": "cards"}}})
    with pytest.raises(ag.InvalidDataError, match="row 70000"):
        ag.mask_parquet(source, destination, policy, keyring=keyring)
    assert destination.read_bytes() == b"previous result"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_file_same_path_and_unknown_format(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    policy = ag.Policy.from_dict({"columns": {}})
    with pytest.raises(FileNotFoundError) as caught:
        ag.mask_parquet(tmp_path / "absent.parquet", tmp_path / "out.parquet", policy)
    assert isinstance(caught.value, ag.StorageError)
    source = tmp_path / "data.parquet"
    pq.write_table(pa.table({"a": [1]}), source)
    with pytest.raises(ag.InvalidDataError, match="input itself"):
        ag.mask_parquet(source, source, policy)
    assert pq.read_table(source).num_rows == 1
    with pytest.raises(ag.InvalidDataError, match="extension"):
        ag.mask_parquet(source, tmp_path / "out.xlsx", policy)
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(ag.InvalidDataError, match="parquet"):
        ag.mask_parquet(not_parquet, tmp_path / "out.parquet", policy)
    with pytest.raises(TypeError):
        ag.mask_parquet(source, tmp_path / "o.parquet", {"columns": {}})  # type: ignore[arg-type]


def test_keyring_errors_are_typed_and_secret_free(tmp_path: Path) -> None:
    ring = ag.LocalKeyring(tmp_path / "ring")
    with pytest.raises(ag.KeyringError, match="invalid key name"):
        ring.ensure_key("../escape")
    key_id = ring.ensure_key("k")
    key_file = next((tmp_path / "ring" / "k").iterdir())
    material = key_file.read_bytes()
    assert len(material) == 32
    key_file.chmod(0o644)
    with pytest.raises(ag.KeyringError, match="chmod 600") as caught:
        ag.Policy.from_dict({"columns": {"v": {"op": "hash", "key": "k"}}}).apply(
            pa.table({"v": ["x"]}), keyring=ring
        )
    key_file.chmod(0o600)
    for text in (str(caught.value), repr(ring), key_id):
        assert material.hex() not in text and repr(material) not in text
    key_file.write_bytes(b"short")
    with pytest.raises(ag.KeyringError, match="damaged"):
        ag.Policy.from_dict({"columns": {"v": {"op": "hash", "key": "k"}}}).apply(
            pa.table({"v": ["x"]}), keyring=ring
        )
