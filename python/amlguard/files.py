"""Masking files in bounded memory: Parquet and CSV, a file or a directory of files.

Work streams batch by batch (Parquet row group by row group), runs in parallel with the GIL
released, and writes atomically: the output appears only when complete, so an interrupted run
(Ctrl-C included) leaves no partial file.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Union

from ._amlguard import LocalKeyring, MaskReport
from ._amlguard import mask_file as _mask_file
from ._amlguard import mask_location as _mask_location
from .policy import Policy

__all__ = ["mask_file", "mask_parquet"]

PathLike = Union[str, "os.PathLike[str]"]
Progress = Callable[[int, int], object]


def mask_file(
    source: PathLike,
    destination: PathLike,
    policy: Policy,
    *,
    keyring: Optional[LocalKeyring] = None,
    threads: Optional[int] = None,
    batch_rows: Optional[int] = None,
    progress: Optional[Progress] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> MaskReport:
    """Mask ``source`` (.parquet or .csv, or a directory of them) into ``destination``.

    Formats follow the extensions, so a CSV can be masked into Parquet. ``progress`` is called
    about ten times a second as ``progress(rows_done, rows_total)`` (total 0 when unknown).
    Returns a :class:`MaskReport` with counts, sizes and timing.

    Either end may be Azure Blob Storage: ``az://container/path.parquet``,
    ``abfss://container@account.dfs.core.windows.net/path.parquet``, or a dataset prefix
    ending in ``/``; ``storage_options`` says how to reach the account (see
    :func:`amlguard.encrypt_file`).
    """
    if not isinstance(policy, Policy):
        raise TypeError("policy must be an amlguard.Policy (see Policy.from_dict / from_yaml)")
    source_text, destination_text = os.fspath(source), os.fspath(destination)
    if _is_blob(source_text) or _is_blob(destination_text) or storage_options:
        return _mask_location(
            source_text,
            destination_text,
            policy._core,
            keyring,
            threads,
            batch_rows,
            progress,
            storage_options,
        )
    return _mask_file(
        os.fspath(source),
        os.fspath(destination),
        policy._core,
        keyring,
        threads,
        batch_rows,
        progress,
    )


def _is_blob(location: str) -> bool:
    return location.lower().startswith(("az://", "abfs://", "abfss://"))


mask_parquet = mask_file
"""Alias of :func:`mask_file`, named for the common case."""
