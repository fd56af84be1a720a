from __future__ import annotations

import json
import pickle
from pathlib import Path

import amlguard as ag
import pyarrow as pa
import pytest

DOCUMENTED = {
    "version": 1,
    "default": "keep",
    "columns": {
        "email": {"op": "hash", "key": "pseudo"},
        "card": {"op": "mask", "keep_last": 4},
        "age": {"op": "generalize", "width": 10},
        "ssn": {"op": "redact"},
    },
}


def test_documented_shape_round_trips_unchanged() -> None:
    policy = ag.Policy.from_dict(DOCUMENTED)
    assert policy.to_dict() == DOCUMENTED
    assert ag.Policy.from_json(policy.to_json()) == policy
    assert json.loads(policy.to_json()) == DOCUMENTED
    assert list(policy.columns) == ["email", "card", "age", "ssn"]
    assert policy.default == "keep"


def test_pickle_and_fingerprint() -> None:
    policy = ag.Policy.from_dict(DOCUMENTED)
    clone = pickle.loads(pickle.dumps(policy))
    assert clone == policy
    assert clone.fingerprint == policy.fingerprint
    assert len(policy.fingerprint) == 64
    other = ag.Policy.from_dict({"columns": {"email": {"op": "redact"}}})
    assert other.fingerprint != policy.fingerprint
    assert "email: hash" in repr(policy)
    assert "<table>" in policy._repr_html_()


def test_yaml_file_and_text(repo: Path, people: pa.Table, keyring: ag.LocalKeyring) -> None:
    from_file = ag.Policy.from_yaml(repo / "examples" / "policy.yaml")
    from_str_path = ag.Policy.from_yaml(str(repo / "examples" / "policy.yaml"))
    assert from_file == from_str_path
    assert from_file.default == "deny"
    from_file.validate(people.schema, keyring)
    text = "version: 1\ncolumns:\n  ssn: {op: redact, with: XXX}\n"
    assert ag.Policy.from_yaml(text).columns == {"ssn": {"op": "redact", "with": "XXX"}}


@pytest.mark.parametrize(
    ("document", "column", "field"),
    [
        ({"columns": {"card": {"op": "mask", "keep_lst": 4}}}, "card", "keep_lst"),
        ({"columns": {"email": {"op": "hash"}}}, "email", "key"),
        ({"columns": {"email": {"op": "shred"}}}, "email", "op"),
        ({"columns": {"email": {"keep_last": 2}}}, "email", "op"),
        ({"columns": {"card": {"op": "mask", "keep_last": -1}}}, "card", "keep_last"),
        ({"columns": {"card": {"op": "mask", "mask_char": "**"}}}, "card", "mask_char"),
        ({"version": 7}, None, "version"),
        ({"colums": {}}, None, "colums"),
    ],
)
def test_malformed_policies_name_column_and_field(
    document: dict, column: str | None, field: str
) -> None:
    with pytest.raises(ag.PolicyError) as caught:
        ag.Policy.from_dict(document)
    message = str(caught.value)
    assert f"field '{field}'" in message
    if column:
        assert f"column '{column}'" in message


@pytest.mark.parametrize(
    "bad",
    [None, [1, 2], "columns", {"columns": {"a": {"op": "noise", "scale": float("nan")}}}],
)
def test_non_mapping_or_non_data_policies_are_policy_errors(bad: object) -> None:
    with pytest.raises(ag.PolicyError):
        ag.Policy.from_dict(bad)  # type: ignore[arg-type]


def test_yaml_syntax_error_is_a_policy_error() -> None:
    with pytest.raises(ag.PolicyError, match="YAML"):
        ag.Policy.from_yaml("columns: {a: [unclosed\n")
    with pytest.raises(ag.PolicyError, match="JSON"):
        ag.Policy.from_json("{not json")


SCHEMA = pa.schema(
    [
        ("email", pa.string()),
        ("age", pa.int32()),
        ("salary", pa.float64()),
        ("born", pa.date32()),
        ("tags", pa.list_(pa.string())),
        ("patient", pa.int64()),
    ]
)


@pytest.mark.parametrize(
    ("rule_column", "rule", "error", "words"),
    [
        ("nope", {"op": "redact"}, ag.ColumnNotFoundError, ["nope", "email"]),
        ("age", {"op": "mask", "keep_last": 2}, ag.ColumnTypeError, ["age", "mask", "Int32"]),
        ("salary", {"op": "hash", "key": "pseudo"}, ag.ColumnTypeError, ["salary"]),
        ("tags", {"op": "redact"}, ag.ColumnTypeError, ["tags", "List"]),
        ("age", {"op": "generalize", "width": 0}, ag.PolicyError, ["width"]),
        ("age", {"op": "generalize", "width": 2.5}, ag.PolicyError, ["whole number"]),
        ("age", {"op": "generalize", "width": 5, "to": "year"}, ag.PolicyError, ["exactly one"]),
        ("salary", {"op": "generalize", "edges": [3, 1]}, ag.PolicyError, ["ascending"]),
        (
            "salary",
            {"op": "generalize", "edges": [1, 3], "labels": ["a"]},
            ag.PolicyError,
            ["labels", "3 labels"],
        ),
        (
            "email",
            {"op": "hash", "key": "pseudo", "truncate_bytes": 4},
            ag.PolicyError,
            ["truncate_bytes"],
        ),
        ("email", {"op": "fpe", "key": "k", "alphabet": "aa"}, ag.PolicyError, ["alphabet"]),
        ("salary", {"op": "noise"}, ag.PolicyError, ["scale"]),
        (
            "salary",
            {"op": "noise", "epsilon": 1, "sensitivity": 1, "distribution": "gaussian"},
            ag.PolicyError,
            ["delta"],
        ),
        ("salary", {"op": "noise", "scale": 1, "clip": [5, 1]}, ag.PolicyError, ["clip"]),
        (
            "born",
            {"op": "date_shift", "key": "d", "max_days": 10, "subject": "who"},
            ag.ColumnNotFoundError,
            ["who"],
        ),
        (
            "born",
            {"op": "date_shift", "key": "d", "max_days": 10, "subject": "salary"},
            ag.PolicyError,
            ["subject"],
        ),
        (
            "born",
            {"op": "date_shift", "key": "d", "max_days": 0, "subject": "patient"},
            ag.PolicyError,
            ["max_days"],
        ),
        ("email", {"op": "hash", "key": "bad/name"}, ag.PolicyError, ["key"]),
    ],
)
def test_validate_before_touching_data(
    rule_column: str, rule: dict, error: type[Exception], words: list[str]
) -> None:
    policy = ag.Policy.from_dict({"columns": {rule_column: rule}})
    with pytest.raises(error) as caught:
        policy.validate(SCHEMA)
    for word in words:
        assert word in str(caught.value)


def test_deny_default_fails_closed() -> None:
    policy = ag.Policy.from_dict({"default": "deny", "columns": {"email": {"op": "redact"}}})
    with pytest.raises(ag.ColumnDeniedError, match="'age'"):
        policy.validate(SCHEMA)
    table = pa.table({"email": ["a@b.c"], "age": [3]})
    with pytest.raises(ag.ColumnDeniedError):
        policy.apply(table)


def test_missing_key_is_found_by_validate_with_a_keyring(keyring: ag.LocalKeyring) -> None:
    policy = ag.Policy.from_dict({"columns": {"email": {"op": "hash", "key": "absent"}}})
    policy.validate(SCHEMA)  # without a keyring only the reference's form is checked
    with pytest.raises(ag.KeyNotFoundError, match="absent"):
        policy.validate(SCHEMA, keyring)
    with pytest.raises(ag.KeyNotFoundError):
        policy.apply(pa.table({"email": ["x"]}), keyring=keyring)


def test_validate_takes_any_schema_like(people: pa.Table, keyring: ag.LocalKeyring) -> None:
    import pandas as pd
    import polars as pl

    policy = ag.Policy.from_dict({"columns": {"email": {"op": "hash", "key": "pseudo"}}})
    for data in (people, people.schema, pl.from_arrow(people), people.slice(0, 10).to_pandas()):
        policy.validate(data, keyring)
    with pytest.raises(ag.ColumnNotFoundError):
        policy.validate(pd.DataFrame({"x": [1]}))
    assert policy.output_schema(people.schema, keyring).field("email").type == pa.string()
