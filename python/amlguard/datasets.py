"""Deterministic synthetic PII for demos, tests and benchmarks. Nothing here is real data.

``synthetic_pii(n, seed)`` returns the same table for the same arguments on every machine and
for any thread count: names, e-mails, phones (US, UK, DE, FR, IN formats), SSNs, Luhn-valid card
numbers of several brands, IBANs with valid check digits, IPv4 addresses, dates of birth, ages,
ZIP codes, salaries, visit timestamps and a free-text ``note`` with PII embedded in it.

``labelled_notes(n, seed)`` returns free-text notes with their ground truth, to measure
detection quality: ``note`` and ``spans`` (entity, start, end in characters, end exclusive),
mixed with hard negatives such as Luhn-invalid card numbers, invalid SSN ranges, version
strings and dates written like phone numbers.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

from ._amlguard import labelled_notes as _labelled_notes
from ._amlguard import synthetic_pii as _synthetic_pii

__all__ = ["labelled_notes", "synthetic_pii"]


def synthetic_pii(
    n: int, seed: int = 0, *, output: Literal["pyarrow", "polars", "pandas"] = "pyarrow"
) -> Any:
    """``n`` rows of synthetic PII as a pyarrow Table (or polars / pandas DataFrame)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    table = pa.table(_synthetic_pii(n, seed))
    if output == "pyarrow":
        return table
    if output == "polars":
        import polars as pl

        return pl.DataFrame(table)
    if output == "pandas":
        return table.to_pandas()
    raise ValueError("output must be 'pyarrow', 'polars' or 'pandas'")


def labelled_notes(n: int, seed: int = 0) -> pa.Table:
    """``n`` notes with ground-truth spans as a pyarrow Table: ``note`` and ``spans``.

    ``spans`` is a list of ``{"entity", "start", "end"}`` per note, in character offsets
    (``note[start:end]`` in Python is the value), the same offsets ``detect`` reports.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    return pa.table(_labelled_notes(n, seed))
