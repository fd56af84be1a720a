from __future__ import annotations

import amlguard as ag
import pandas as pd
import polars as pl


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
