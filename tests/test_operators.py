"""Each operator's behaviour through the public API, on pyarrow tables."""

from __future__ import annotations

import datetime as dt
import re

import amlguard as ag
import pyarrow as pa
import pytest


def apply(
    rule: dict, table: pa.Table, keyring: ag.LocalKeyring, column: str = "v", **kw
) -> pa.Table:
    return ag.Policy.from_dict({"columns": {column: rule}}).apply(table, keyring=keyring, **kw)


def test_keep_nullify_redact(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"v": ["a", None, "c"], "n": [1, 2, 3]})
    assert apply({"op": "keep"}, table, keyring).equals(table)
    nulls = apply({"op": "nullify"}, table, keyring, column="n")
    assert nulls.column("n").null_count == 3 and nulls.schema.field("n").type == pa.int64()
    redacted = apply({"op": "redact"}, table, keyring).column("v").to_pylist()
    assert redacted == ["[REDACTED]", None, "[REDACTED]"]
    custom = apply({"op": "redact", "with": "<SSN>"}, table, keyring).column("v").to_pylist()
    assert custom == ["<SSN>", None, "<SSN>"]


def test_partial_mask(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"v": ["4111-1111-1111-1234", "jane.doe@example.com", "abc", None, ""]})
    cards = apply({"op": "mask", "keep_last": 4, "keep_separators": True}, table, keyring)
    assert cards.column("v").to_pylist() == [
        "****-****-****-1234",
        "****.***@******e.com",
        "***",
        None,
        "",
    ]
    emails = apply(
        {"op": "mask", "keep_first": 1, "keep_email_domain": True, "mask_char": "#"}, table, keyring
    )
    assert emails.column("v")[1].as_py() == "j#######@example.com"
    custom_separators = apply(
        {"op": "mask", "keep_last": 2, "keep_separators": "-"}, table, keyring
    )
    assert custom_separators.column("v")[0].as_py() == "****-****-****-**34"


def test_hash_is_keyed_deterministic_and_type_independent(
    tmp_path, keyring: ag.LocalKeyring
) -> None:
    table = pa.table({"v": ["42", "43", None], "i": pa.array([42, 43, None], pa.int64())})
    rule = {"op": "hash", "key": "pseudo"}
    once = apply(rule, table, keyring)
    again = apply(rule, table, keyring)
    assert once.equals(again)
    digests = once.column("v").to_pylist()
    assert re.fullmatch("[0-9a-f]{64}", digests[0]) and digests[0] != digests[1]
    assert digests[2] is None
    ints = apply(rule, table, keyring, column="i")
    assert ints.schema.field("i").type == pa.string()
    assert ints.column("i").to_pylist() == digests, "42 and '42' share a pseudonym"
    other_ring = ag.LocalKeyring(tmp_path / "other")
    other_ring.ensure_key("pseudo")
    assert apply(rule, table, other_ring).column("v")[0] != once.column("v")[0]
    short = apply({**rule, "encoding": "base64url", "truncate_bytes": 12}, table, keyring)
    assert re.fullmatch("[A-Za-z0-9_-]{16}", short.column("v")[0].as_py())
    # Pinning the version keeps pseudonyms stable across rotation.
    keyring.rotate("pseudo")
    assert apply({"op": "hash", "key": "pseudo@1"}, table, keyring).equals(once)
    assert not apply(rule, table, keyring).equals(once)


def test_tokenize_round_trip_and_tamper(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"v": ["123-45-6789", "123-45-6789", "987-65-4321", None]})
    tokens = apply({"op": "tokenize", "key": "tokens"}, table, keyring)
    values = tokens.column("v").to_pylist()
    assert values[0] == values[1] != values[2] and values[3] is None
    assert "123" not in values[0]
    back = apply({"op": "detokenize", "key": "tokens"}, tokens, keyring)
    assert back.equals(table)
    with pytest.raises(ag.DecryptionError):
        apply({"op": "detokenize", "key": "tokens", "tweak": "other"}, tokens, keyring)
    with pytest.raises(ag.DecryptionError):
        apply({"op": "detokenize", "key": "pseudo"}, tokens, keyring)
    first = values[0]
    tampered = first[:-2] + ("A" if first[-2] != "A" else "B") + first[-1]
    with pytest.raises(ag.DecryptionError) as caught:
        apply({"op": "detokenize", "key": "tokens"}, pa.table({"v": [tampered]}), keyring)
    assert tampered not in str(caught.value)


def test_fpe_keeps_format_and_reverses(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"v": ["4111 1111 1111 1111", "5500-0000-0000-0004", None]})
    enc = apply({"op": "fpe", "key": "cards"}, table, keyring)
    out = enc.column("v").to_pylist()
    assert (
        re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", out[0]) and out[0] != table.column("v")[0].as_py()
    )
    assert re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{4}", out[1])
    dec = apply({"op": "fpe", "key": "cards", "decrypt": True}, enc, keyring)
    assert dec.equals(table)
    letters = apply(
        {"op": "fpe", "key": "cards", "alphabet": "abcdefghijklmnopqrstuvwxyz"},
        pa.table({"v": ["hello world"]}),
        keyring,
    )
    assert re.fullmatch("[a-z]{5} [a-z]{5}", letters.column("v")[0].as_py())
    with pytest.raises(ag.InvalidDataError, match="row 1"):
        apply({"op": "fpe", "key": "cards"}, pa.table({"v": ["123456", "12-3"]}), keyring)


def test_generalize_numbers_dates_strings(keyring: ag.LocalKeyring) -> None:
    table = pa.table(
        {
            "age": pa.array([37, None, 40], pa.int32()),
            "salary": [5.0, 50_000.5, 250_000.0],
            "born": pa.array([dt.date(1990, 7, 14), dt.date(1985, 1, 31), None]),
            "at": pa.array([dt.datetime(2024, 3, 5, 13, 45)] * 3, pa.timestamp("ms", tz="UTC")),
            "zip": ["02139", "94110", None],
        }
    )
    policy = ag.Policy.from_dict(
        {
            "columns": {
                "age": {"op": "generalize", "width": 10},
                "salary": {
                    "op": "generalize",
                    "edges": [10_000, 100_000],
                    "labels": ["low", "mid", "high"],
                },
                "born": {"op": "generalize", "to": "year"},
                "at": {"op": "generalize", "to": "month"},
                "zip": {"op": "generalize", "prefix": 3},
            }
        }
    )
    out = policy.apply(table, keyring=keyring)
    assert out.column("age").to_pylist() == ["30-39", None, "40-49"]
    assert out.column("salary").to_pylist() == ["low", "mid", "high"]
    assert out.column("born").to_pylist() == [dt.date(1990, 1, 1), dt.date(1985, 1, 1), None]
    assert out.schema.field("at").type == pa.timestamp("ms", tz="UTC")
    assert out.column("at")[0].as_py() == dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    assert out.column("zip").to_pylist() == ["021", "941", None]
    floors = apply(
        {"op": "generalize", "width": 10, "output": "floor"}, table, keyring, column="age"
    )
    assert floors.schema.field("age").type == pa.int32()
    assert floors.column("age").to_pylist() == [30, None, 40]


def test_date_shift_is_consistent_per_subject(keyring: ag.LocalKeyring) -> None:
    days = [dt.date(2024, 1, 1), dt.date(2024, 1, 11), dt.date(2024, 1, 1), dt.date(2024, 5, 1)]
    table = pa.table({"patient": ["p1", "p1", "p2", None], "visit": days})
    rule = {"op": "date_shift", "key": "dates", "max_days": 30, "subject": "patient"}
    out = apply(rule, table, keyring, column="visit").column("visit").to_pylist()
    assert out[1] - out[0] == dt.timedelta(days=10), "intervals within a subject are kept"
    for before, after in zip(days[:3], out[:3]):
        assert 1 <= abs((after - before).days) <= 30
    assert out[3] is None, "no subject, no consistent shift: null"
    assert apply(rule, table, keyring, column="visit").column("visit").to_pylist() == out


def test_noise_is_reproducible_bounded_and_thread_independent(keyring: ag.LocalKeyring) -> None:
    values = pa.array([float(i) for i in range(100_000)])
    table = pa.table({"v": values, "age": pa.array([50] * 100_000, pa.int16())})
    rule = {"op": "noise", "scale": 2.0, "seed": 42}
    one_thread = apply(rule, table, keyring, threads=1)
    two_threads = apply(rule, table, keyring, threads=2)
    assert one_thread.equals(two_threads)
    noisy = one_thread.column("v").to_pylist()
    assert noisy != values.to_pylist()
    mean_abs = sum(abs(a - b) for a, b in zip(noisy, values.to_pylist())) / len(noisy)
    assert 1.8 < mean_abs < 2.2, "Laplace(b) has mean absolute deviation b"
    unseeded = apply({"op": "noise", "scale": 2.0}, table, keyring)
    assert not unseeded.equals(apply({"op": "noise", "scale": 2.0}, table, keyring))
    clipped = apply(
        {
            "op": "noise",
            "epsilon": 0.5,
            "sensitivity": 1,
            "distribution": "gaussian",
            "delta": 1e-5,
            "clip": [40, 60],
            "seed": 1,
        },
        table,
        keyring,
        column="age",
    )
    ages = clipped.column("age").to_pylist()
    assert clipped.schema.field("age").type == pa.int16()
    assert min(ages) >= 40 and max(ages) <= 60 and len(set(ages)) > 5
