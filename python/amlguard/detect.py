"""PII and secret detection over text columns.

``detect(column)`` returns one row per finding (row, entity, start, end, score; offsets in
characters), ``scan(data)`` classifies every string column and suggests a rule, and the policy
operator ``redact_entities`` replaces findings inside free text. Built-in recognizers validate
what has a checksum (Luhn, mod-97, SSN ranges, calendar dates) and cover secrets that leak into
ML data (Azure storage keys and SAS tokens, JWTs, PEM private keys, AWS key ids, API keys).
Add your own with ``recognizers=[{"entity": ..., "pattern": ..., "validator": ..., "context":
[...], "score": ...}]``, or a model through ``ner=callable``: it is called once per chunk of
thousands of values (never per row) with a list of strings and returns, per value, a list of
``(entity, start, end, score)`` in character offsets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, Callable, Optional

import pyarrow as pa

from . import _amlguard, _frames

__all__ = ["ScanReport", "detect", "scan"]

Ner = Callable[[list[Optional[str]]], Sequence[Sequence[tuple[str, int, int, float]]]]


def _recognizers_json(recognizers: Optional[Sequence[dict[str, Any]]]) -> Optional[str]:
    return None if recognizers is None else json.dumps(list(recognizers))


def _column(data: Any) -> tuple[Any, bool]:
    """An Arrow array-like for a column and whether the caller uses polars."""
    if "polars" in sys.modules:
        import polars as pl

        if isinstance(data, pl.Series):
            return data.to_arrow(), True
    if "pandas" in sys.modules:
        import pandas as pd

        if isinstance(data, pd.Series):
            return pa.array(data, from_pandas=True), False
    if isinstance(data, (pa.Array, pa.ChunkedArray)) or hasattr(data, "__arrow_c_stream__"):
        return data, False
    if isinstance(data, (list, tuple)):
        return pa.array(data, pa.string()), False
    raise TypeError(
        f"detect takes a string column (polars or pandas Series, pyarrow Array), "
        f"not a {type(data).__name__}"
    )


def detect(
    column: Any,
    *,
    recognizers: Optional[Sequence[dict[str, Any]]] = None,
    min_score: Optional[float] = None,
    threads: Optional[int] = None,
    ner: Optional[Ner] = None,
) -> Any:
    """Findings in a string column: polars DataFrame for a polars Series, else a pyarrow Table."""
    array, polars_out = _column(column)
    result = pa.table(
        _amlguard.detect(array, _recognizers_json(recognizers), min_score, threads, ner)
    )
    if polars_out:
        import polars as pl

        return pl.DataFrame(result)
    return result


class ScanReport:
    """Which columns hold which PII, how often, and a suggested rule per column."""

    __slots__ = ("_core",)

    def __init__(self, core: _amlguard.ScanReport) -> None:
        self._core = core

    @property
    def rows_scanned(self) -> int:
        return int(self._core.rows_scanned)

    @property
    def skipped_columns(self) -> list[str]:
        return list(self._core.skipped_columns)

    def to_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self._core.to_json())
        return report

    def to_json(self) -> str:
        return str(self._core.to_json())

    def to_arrow(self) -> pa.Table:
        """One row per (column, entity)."""
        return pa.table(self._core.to_arrow())

    def to_polars(self) -> Any:
        import polars as pl

        return pl.DataFrame(self.to_arrow())

    def suggested_policy(self) -> dict[str, Any]:
        """A starting policy: the suggested rule of every column where something was found."""
        columns = {
            c["column"]: c["suggested_rule"]
            for c in self.to_dict()["columns"]
            if c["suggested_op"] != "keep"
        }
        return {"version": 1, "default": "keep", "columns": columns}

    def __repr__(self) -> str:
        return str(self._core.__repr__())

    def _repr_html_(self) -> str:
        from html import escape

        rows = []
        for column in self.to_dict()["columns"]:
            for entity in column["entities"] or [None]:
                cells = (
                    column["column"],
                    entity["entity"] if entity else "",
                    f"{entity['values_with_match']:,}" if entity else "0",
                    f"{entity['fraction']:.1%}" if entity else "",
                    column["suggested_op"],
                )
                rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
        header = "".join(
            f"<th>{h}</th>" for h in ("column", "entity", "values", "fraction", "suggested")
        )
        return (
            f"<table><caption>amlguard ScanReport ({self.rows_scanned:,} rows)</caption>"
            f"<tr>{header}</tr>{''.join(rows)}</table>"
        )


def scan(
    data: Any,
    *,
    sample_rows: Optional[int] = None,
    recognizers: Optional[Sequence[dict[str, Any]]] = None,
    min_score: Optional[float] = None,
    threads: Optional[int] = None,
) -> ScanReport:
    """Classify the string columns of a polars / pandas / pyarrow table (values never stored)."""
    if _frames.is_reader(data):
        data = data.read_all()
    stream, _ = _frames.to_stream(data)
    core = _amlguard.scan(stream, sample_rows, _recognizers_json(recognizers), min_score, threads)
    return ScanReport(core)
