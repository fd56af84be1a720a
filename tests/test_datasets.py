from __future__ import annotations

import amlguard as ag
import pandas as pd
import polars as pl
import pyarrow as pa


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def test_deterministic_valid_and_in_every_frame_type() -> None:
    a = ag.datasets.synthetic_pii(3000, seed=9)
    b = ag.datasets.synthetic_pii(3000, seed=9)
    assert a.equals(b)
    assert not a.equals(ag.datasets.synthetic_pii(3000, seed=10))
    assert a.num_rows == 3000 and "note" in a.column_names
    assert all(luhn_ok(c) for c in a.column("card_number").to_pylist())
    assert all(iban_ok(i) for i in a.column("iban").to_pylist())
    assert all(not s.startswith(("000", "666", "9")) for s in a.column("ssn").to_pylist())
    assert isinstance(ag.datasets.synthetic_pii(5, output="polars"), pl.DataFrame)
    assert isinstance(ag.datasets.synthetic_pii(5, output="pandas"), pd.DataFrame)
    assert ag.datasets.synthetic_pii(0).num_rows == 0


def test_labelled_notes_spans_are_character_offsets_of_their_values() -> None:
    table = ag.datasets.labelled_notes(2000, seed=3)
    assert table.equals(ag.datasets.labelled_notes(2000, seed=3))
    assert not table.equals(ag.datasets.labelled_notes(2000, seed=4))
    assert table.column_names == ["note", "spans"]
    assert table.schema.field("spans").type == pa.list_(
        pa.field(
            "item",
            pa.struct(
                [
                    pa.field("entity", pa.string(), nullable=False),
                    pa.field("start", pa.uint64(), nullable=False),
                    pa.field("end", pa.uint64(), nullable=False),
                ]
            ),
            nullable=False,
        )
    )
    values: dict[str, list[str]] = {}
    multibyte_before_span = False
    for row in table.to_pylist():
        note, spans = row["note"], row["spans"]
        for span in spans:
            assert 0 <= span["start"] < span["end"] <= len(note)
            values.setdefault(span["entity"], []).append(note[span["start"] : span["end"]])
            multibyte_before_span |= len(note[: span["start"]].encode()) != span["start"]
    assert multibyte_before_span, "notes hold multi-byte names before some spans"
    assert all(luhn_ok(card) for card in values["CREDIT_CARD"])
    assert all(iban_ok(iban.replace(" ", "")) for iban in values["IBAN"])
    assert all("@" in email and " " not in email for email in values["EMAIL"])
    assert {"EMAIL", "PHONE", "US_SSN", "IPV4", "DATE", "URL"} <= set(values)
    assert ag.datasets.labelled_notes(0).num_rows == 0
