"""PII detection from Python: detect, scan, redact_entities, custom recognizers, NER hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import amlguard as ag
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

NOTES = [
    "Mail jane.doe@example.com or call +1 415-555-0134.",
    "Card 4111 1111 1111 1111 on file; SSN 123-45-6789.",
    "Card 4111 1111 1111 1112 is not Luhn-valid; order 123456789.",
    None,
    "",
    "Zoë Ünal paid with IBAN GB82WEST12345698765432 from 10.0.0.1 ✓",
]


def test_detect_finds_validated_entities_with_character_offsets() -> None:
    spans = ag.detect(pa.array(NOTES))
    assert isinstance(spans, pa.Table)
    found = {(r["row"], r["entity"]) for r in spans.to_pylist()}
    assert {
        (0, "EMAIL"),
        (0, "PHONE"),
        (1, "CREDIT_CARD"),
        (1, "US_SSN"),
        (5, "IBAN"),
        (5, "IPV4"),
    } <= found
    assert not any(row == 2 and entity in ("CREDIT_CARD", "US_SSN") for row, entity in found)
    for record in spans.to_pylist():
        text = NOTES[record["row"]]
        assert text is not None and 0 <= record["start"] < record["end"] <= len(text)
    iban = next(r for r in spans.to_pylist() if r["entity"] == "IBAN")
    assert NOTES[5][iban["start"] : iban["end"]] == "GB82WEST12345698765432", "character offsets"


def test_detect_accepts_polars_and_pandas() -> None:
    polars_spans = ag.detect(pl.Series("note", NOTES))
    assert isinstance(polars_spans, pl.DataFrame)
    assert polars_spans.columns == ["row", "entity", "start", "end", "score"]
    pandas_spans = ag.detect(pd.Series(NOTES))
    assert pandas_spans.num_rows == polars_spans.height
    with pytest.raises(TypeError):
        ag.detect(42)


def test_scan_reports_fractions_and_suggests_rules(people: pa.Table) -> None:
    report = ag.scan(people, sample_rows=1000)
    assert report.rows_scanned == 1000
    by_column = {c["column"]: c for c in report.to_dict()["columns"]}
    assert by_column["email"]["entities"][0]["entity"] == "EMAIL"
    assert by_column["email"]["entities"][0]["fraction"] == pytest.approx(1.0)
    assert by_column["card_number"]["entities"][0]["entity"] == "CREDIT_CARD"
    assert by_column["note"]["suggested_op"] == "redact_entities"
    assert "person_id" in report.skipped_columns
    table = report.to_polars()
    assert {"column", "entity"} <= set(table.columns)
    text = repr(report) + report._repr_html_() + report.to_json()
    first_email = people.column("email")[0].as_py()
    assert first_email not in text, "a scan never shows matched values"
    suggested = ag.Policy.from_dict(report.suggested_policy())
    assert "email" in suggested.columns


def test_redact_entities_in_a_policy(keyring: ag.LocalKeyring) -> None:
    table = pa.table({"note": NOTES})
    policy = ag.Policy.from_dict(
        {
            "columns": {
                "note": {
                    "op": "redact_entities",
                    "entities": ["EMAIL", "PHONE", "CREDIT_CARD"],
                    "with": "<{entity}>",
                }
            }
        }
    )
    out = policy.apply(table, keyring=keyring).column("note").to_pylist()
    assert out[0] == "Mail <EMAIL> or call <PHONE>."
    assert out[1].startswith("Card <CREDIT_CARD> on file; SSN 123-45-6789")
    assert out[3] is None and out[4] == ""
    assert out[5] == NOTES[5], "entities not listed stay"


def test_recycled_output_memory_never_changes_a_live_column() -> None:
    # Chunks of over 256 KiB of output: their memory is recycled once a column is dropped.
    rows = 40_000
    first = pa.table({"note": [f"mail user{i}@example.com now" for i in range(rows)]})
    second = pa.table({"note": [f"write to other{i}@example.org, please" for i in range(rows)]})
    policy = ag.Policy.from_dict(
        {"columns": {"note": {"op": "redact_entities", "with": "<{entity}>"}}}
    )
    kept = policy.apply(first, threads=2)
    for _ in range(3):
        out = policy.apply(second, threads=2).column("note").to_pylist()
        assert out == ["write to <EMAIL>, please"] * rows
        assert kept.column("note").to_pylist() == ["mail <EMAIL> now"] * rows
    del kept
    again = policy.apply(first, threads=2).column("note")
    assert again.to_pylist() == ["mail <EMAIL> now"] * rows


def test_custom_recognizers_and_their_errors() -> None:
    custom = [
        {
            "entity": "EMPLOYEE_ID",
            "pattern": r"\bEMP-\d{6}\b",
            "context": ["employee"],
            "score": 0.9,
        }
    ]
    spans = ag.detect(pa.array(["employee EMP-123456 joined", "EMP-12 no"]), recognizers=custom)
    rows = [r for r in spans.to_pylist() if r["entity"] == "EMPLOYEE_ID"]
    assert [(r["row"], r["start"], r["end"]) for r in rows] == [(0, 9, 19)]
    with pytest.raises(ag.RecognizerError, match="BROKEN"):
        ag.detect(pa.array(["x"]), recognizers=[{"entity": "BROKEN", "pattern": "(unclosed"}])
    with pytest.raises(ag.RecognizerError):
        ag.detect(
            pa.array(["x"]), recognizers=[{"entity": "X", "pattern": "x", "validator": "nope"}]
        )


def test_context_words_outside_ascii_ignore_case() -> None:
    # Scored below the minimum (0.5) alone; a context word before it adds enough.
    custom = [
        {
            "entity": "EXTENSION",
            "pattern": r"\bEXT-\d{4}\b",
            "context": ["teléfono", "τηλέφωνο"],
            "score": 0.4,
        }
    ]
    values = [
        "TELÉFONO EXT-1234",
        "ΤΗΛΈΦΩΝΟ: EXT-1234",
        "Teléfono EXT-1234",
        "EXT-1234",
        "TELEFONO EXT-1234",
    ]
    spans = ag.detect(pa.array(values), recognizers=custom)
    rows = [r["row"] for r in spans.to_pylist() if r["entity"] == "EXTENSION"]
    assert rows == [0, 1, 2]


def test_ner_hook_is_called_per_chunk_not_per_row() -> None:
    calls: list[int] = []

    def names(values: list[str | None]) -> list[list[tuple[str, int, int, float]]]:
        calls.append(len(values))
        return [
            [("PERSON", v.index("Ada"), v.index("Ada") + 3, 0.9)] if v and "Ada" in v else []
            for v in values
        ]

    values = ["Ada wrote to jane@example.com", None, "no names here"] * 20_000
    spans = ag.detect(pa.array(values), ner=names)
    persons = [r for r in spans.to_pylist() if r["entity"] == "PERSON"]
    assert len(persons) == 20_000
    assert len(calls) < 10 and sum(calls) == len(values)


def test_bad_text_input() -> None:
    offsets = pa.array([0, 2], pa.int32()).buffers()[1]
    invalid = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"\xff\xfe")])
    with pytest.raises(ag.InvalidDataError, match="UTF-8"):
        ag.detect(invalid)
    with pytest.raises(ag.AmlguardError):
        ag.detect(pa.array([1, 2, 3]))
    big = "x" * 10_000_000 + " jane@example.com"
    spans = ag.detect(pa.array([big]))
    assert [r["start"] for r in spans.to_pylist()] == [10_000_001]


def test_scan_command(tmp_path: Path, people: pa.Table) -> None:
    path = tmp_path / "people.parquet"
    pq.write_table(people, path)
    env = {**os.environ, "AMLGUARD_KEYRING": str(tmp_path / "ring")}
    result = subprocess.run(
        [sys.executable, "-m", "amlguard", "scan", str(path), "--json", "--sample-rows", "500"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows_scanned"] == 500
    assert any(c["column"] == "ssn" for c in report["columns"])


def test_detect_numbers_rows_across_chunks_of_a_column() -> None:
    values = [
        "mail ana@example.com",
        None,
        "",
        "card 4111 1111 1111 1111",
        "call +44 20 7946 0958",
    ] * 9000
    whole = pa.array(values, pa.string())
    # Uneven chunks, one empty, several larger than one work unit of the pool.
    cuts = [0, 7, 7, 20_000, 41_000, len(values)]
    chunked = pa.chunked_array([whole.slice(a, b - a) for a, b in zip(cuts, cuts[1:])], pa.string())
    assert chunked.num_chunks == 5
    expected = ag.detect(whole, threads=1)
    got = ag.detect(chunked, threads=2)
    assert got.num_rows == 3 * 9000
    assert got.sort_by("row").equals(expected.sort_by("row"))
    assert set(got.column("row").to_pylist()) == {i for i, v in enumerate(values) if v and v != ""}
    series = pl.concat([pl.Series("note", c) for c in chunked.chunks], rechunk=False)
    assert series.n_chunks() >= 4
    assert ag.detect(series).sort("row").equals(pl.DataFrame(expected.sort_by("row")))
