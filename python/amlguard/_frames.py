"""Arrow in, the same type out.

Data crosses into the Rust core through the Arrow PyCapsule interface (``__arrow_c_stream__``),
without copies. This module only decides, per input type, how to hand data in and how to rebuild
the caller's type from the Arrow stream that comes back: polars in, polars out; pandas in,
pandas out; pyarrow Table / RecordBatch / RecordBatchReader in, the same out. polars and pandas
are imported only when the caller already uses them.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import pyarrow as pa

__all__ = ["to_stream", "is_reader", "schema_of"]


def _module_of(data: Any) -> str:
    return type(data).__module__.split(".", 1)[0]


def _is_polars_frame(data: Any) -> bool:
    if "polars" not in sys.modules:
        return False
    import polars as pl

    return isinstance(data, pl.DataFrame)


def _is_pandas_frame(data: Any) -> bool:
    if "pandas" not in sys.modules:
        return False
    import pandas as pd

    return isinstance(data, pd.DataFrame)


def is_reader(data: Any) -> bool:
    """True for streams that are consumed lazily (a pyarrow RecordBatchReader)."""
    return isinstance(data, pa.RecordBatchReader)


def to_stream(data: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Return an object exporting ``__arrow_c_stream__`` and a function that turns the masked
    Arrow stream back into ``data``'s type."""
    if _is_polars_frame(data):
        import polars as pl

        def to_polars(result: Any) -> Any:
            return pl.DataFrame(pa.table(result))

        return data, to_polars
    if _is_pandas_frame(data):
        table = pa.Table.from_pandas(data, preserve_index=None)
        return table, lambda result: pa.table(result).to_pandas()
    if isinstance(data, pa.Table):
        return data, pa.table
    if isinstance(data, pa.RecordBatch):

        def to_batch(result: Any) -> pa.RecordBatch:
            table = pa.table(result).combine_chunks()
            return pa.RecordBatch.from_arrays(
                [column.combine_chunks() for column in table.columns], schema=table.schema
            )

        return pa.Table.from_batches([data]), to_batch
    if _module_of(data) == "polars" and type(data).__name__ == "LazyFrame":
        raise TypeError(
            "amlguard masks materialised data: call .collect() on the LazyFrame first "
            "(or use mask_parquet to stream a file)"
        )
    if hasattr(data, "__arrow_c_stream__"):
        return data, pa.table
    raise TypeError(
        f"cannot mask a {type(data).__name__}: pass a polars or pandas DataFrame, a pyarrow "
        "Table, RecordBatch or RecordBatchReader, or any object with __arrow_c_stream__"
    )


def schema_of(data: Any) -> pa.Schema:
    """The Arrow schema of a schema-like or data object."""
    if isinstance(data, pa.Schema):
        return data
    if _is_polars_frame(data):
        schema: pa.Schema = data.head(0).to_arrow().schema
        return schema
    if _is_pandas_frame(data):
        return pa.Schema.from_pandas(data.head(0), preserve_index=None)
    if isinstance(data, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return data.schema
    if hasattr(data, "__arrow_c_schema__") and not hasattr(data, "__arrow_c_stream__"):
        return pa.schema(data)
    if isinstance(data, dict):
        return pa.schema(list(data.items()))
    raise TypeError(f"cannot read an Arrow schema from a {type(data).__name__}")
