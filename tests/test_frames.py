"""Arrow in, the same type out: polars, pandas and pyarrow, every string type, nulls, order."""

from __future__ import annotations

import amlguard as ag
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

POLICY = {
    "columns": {
        "email": {"op": "hash", "key": "pseudo"},
        "card_number": {"op": "mask", "keep_last": 4, "keep_separators": True},
        "age": {"op": "generalize", "width": 10},
    }
}


def test_polars_in_polars_out(people: pa.Table, keyring: ag.LocalKeyring) -> None:
    df = pl.from_arrow(people)
    out = ag.Policy.from_dict(POLICY).apply(df, keyring=keyring)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == df.columns
    assert out.height == df.height
    assert out["name"].equals(df["name"]), "unrelated columns pass through"
    assert out["email"].null_count() == df["email"].null_count()
    assert out.schema["age"] == pl.String
    assert out["card_number"].str.slice(-4).equals(df["card_number"].str.slice(-4))
    expected = ag.Policy.from_dict(POLICY).apply(people, keyring=keyring)
    assert out.to_arrow().column("email").to_pylist() == expected.column("email").to_pylist()


def test_pandas_in_pandas_out(people: pa.Table, keyring: ag.LocalKeyring) -> None:
    df = people.slice(0, 500).to_pandas()
    df.index = pd.RangeIndex(100, 600)
    out = ag.Policy.from_dict(POLICY).apply(df, keyring=keyring)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(df.columns)
    assert list(out.index) == list(df.index)
    assert out["name"].equals(df["name"])
    assert out["email"].isna().sum() == df["email"].isna().sum()
    assert out["card_number"].str[-4:].equals(df["card_number"].str[-4:])


def test_pyarrow_table_batch_and_reader(people: pa.Table, keyring: ag.LocalKeyring) -> None:
    policy = ag.Policy.from_dict(POLICY)
    table_out = policy.apply(people, keyring=keyring)
    assert isinstance(table_out, pa.Table)
    batch = people.combine_chunks().to_batches()[0]
    batch_out = policy.apply(batch, keyring=keyring)
    assert isinstance(batch_out, pa.RecordBatch)
    assert pa.Table.from_batches([batch_out]).equals(table_out.combine_chunks())
    reader = pa.RecordBatchReader.from_batches(people.schema, people.to_batches(max_chunksize=300))
    reader_out = policy.apply(reader, keyring=keyring)
    assert isinstance(reader_out, pa.RecordBatchReader)
    streamed = reader_out.read_all()
    assert streamed.combine_chunks().equals(table_out.combine_chunks())


@pytest.mark.parametrize("string_type", [pa.string(), pa.large_string(), pa.string_view()])
def test_every_string_type_keeps_its_type(
    string_type: pa.DataType, keyring: ag.LocalKeyring
) -> None:
    table = pa.table({"v": pa.array(["4111111111111111", None, "12"], string_type), "k": [1, 2, 3]})
    for rule in (
        {"op": "mask", "keep_last": 4},
        {"op": "hash", "key": "pseudo"},
        {"op": "tokenize", "key": "tokens"},
        {"op": "redact"},
        {"op": "generalize", "prefix": 2},
    ):
        out = ag.Policy.from_dict({"columns": {"v": rule}}).apply(table, keyring=keyring)
        assert out.schema.field("v").type == string_type, rule
        assert out.column("v").null_count == 1
        assert out.column("k").equals(table.column("k"))


def test_threads_do_not_change_output(keyring: ag.LocalKeyring) -> None:
    big = ag.datasets.synthetic_pii(150_000, seed=3)
    policy = ag.Policy.from_dict(
        {
            "columns": {
                **POLICY["columns"],
                "salary": {"op": "noise", "scale": 10, "seed": 5},
                "ssn": {"op": "tokenize", "key": "tokens"},
                "visit_at": {
                    "op": "date_shift",
                    "key": "dates",
                    "max_days": 9,
                    "subject": "person_id",
                },
            }
        }
    )
    one = policy.apply(big, keyring=keyring, threads=1)
    two = policy.apply(big, keyring=keyring, threads=2)
    assert one.combine_chunks().equals(two.combine_chunks())
    assert one.num_rows == big.num_rows


def test_zero_rows_all_nulls_and_chunked_input(keyring: ag.LocalKeyring) -> None:
    policy = ag.Policy.from_dict({"columns": {"v": {"op": "hash", "key": "pseudo"}}})
    empty = pa.table({"v": pa.array([], pa.string())})
    out = policy.apply(empty, keyring=keyring)
    assert out.num_rows == 0 and out.schema.field("v").type == pa.string()
    all_null = pa.table({"v": pa.array([None, None], pa.string())})
    assert policy.apply(all_null, keyring=keyring).column("v").to_pylist() == [None, None]
    chunked = pa.Table.from_batches(
        [
            pa.record_batch({"v": ["a", "b"]}),
            pa.record_batch({"v": pa.array([], pa.string())}),
            pa.record_batch({"v": ["a"]}),
        ]
    )
    hashed = policy.apply(chunked, keyring=keyring).column("v").to_pylist()
    assert hashed[0] == hashed[2] != hashed[1]
    empty_polars = pl.DataFrame({"v": pl.Series([], dtype=pl.String)})
    assert policy.apply(empty_polars, keyring=keyring).height == 0


def test_nested_columns_pass_through_or_fail_clearly(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"s": pa.array([{"a": 1}, None]), "l": pa.array([["x"], []])})
    kept = ag.Policy.from_dict({"columns": {}}).apply(table, keyring=keyring)
    assert kept.equals(table)
    nulled = ag.Policy.from_dict({"columns": {"s": {"op": "nullify"}}}).apply(
        table, keyring=keyring
    )
    assert nulled.column("s").null_count == 2
    with pytest.raises(ag.ColumnTypeError, match="Struct"):
        ag.Policy.from_dict({"columns": {"s": {"op": "mask"}}}).apply(table, keyring=keyring)


def test_unsupported_inputs_are_type_errors() -> None:
    policy = ag.Policy.from_dict({"columns": {}})
    with pytest.raises(TypeError, match="collect"):
        policy.apply(pl.LazyFrame({"a": [1]}))
    with pytest.raises(TypeError, match="cannot mask"):
        policy.apply([1, 2, 3])
