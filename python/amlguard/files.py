"""Masking files in bounded memory: Parquet and CSV, a file or a directory of files.

Work streams batch by batch (Parquet row group by row group), runs in parallel with the GIL
released, and writes atomically: the output appears only when complete, so an interrupted run
(Ctrl-C included) leaves no partial file.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Union

from . import audit as _audit
from ._amlguard import LocalKeyring, MaskReport
from ._amlguard import mask_file as _mask_file
from ._amlguard import mask_location as _mask_location
from .exceptions import AmlguardError
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
    audit: _audit.AuditTarget = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> MaskReport:
    """Mask ``source`` (.parquet or .csv, or a directory of them) into ``destination``.

    Formats follow the extensions, so a CSV can be masked into Parquet. ``progress`` is called
    about ten times a second as ``progress(rows_done, rows_total)`` (total 0 when unknown).
    Returns a :class:`MaskReport` with counts, sizes and timing. With ``audit`` (or
    ``$AMLGUARD_AUDIT_LOG``) the run, failed or not, is recorded in that audit log.

    Either end may be Azure Blob Storage: ``az://container/path.parquet``,
    ``abfss://container@account.dfs.core.windows.net/path.parquet``, or a dataset prefix
    ending in ``/``; ``storage_options`` says how to reach the account (see
    :func:`amlguard.encrypt_file`).
    """
    if not isinstance(policy, Policy):
        raise TypeError("policy must be an amlguard.Policy (see Policy.from_dict / from_yaml)")
    log = _audit.ready(audit)
    paths = [os.fspath(source), os.fspath(destination)]
    try:
        if is_blob_url(paths[0]) or is_blob_url(paths[1]) or storage_options:
            report = _mask_location(
                paths[0], paths[1], policy._core, keyring, threads, batch_rows, progress,
                storage_options,
            )  # fmt: skip
        else:
            report = _mask_file(
                paths[0], paths[1], policy._core, keyring, threads, batch_rows, progress
            )
    except AmlguardError as err:
        if log is not None:
            log.append(
                "mask", outcome="failure", dataset=paths[0], paths=paths, error=str(err),
                key_ids=_audit.key_ids(policy.columns, keyring),
                policy_fingerprint=policy.fingerprint,
            )  # fmt: skip
        raise
    if log is not None:
        log.append(
            "mask", dataset=paths[0], paths=paths, rows=report.rows, bytes=report.input_bytes,
            key_ids=_audit.key_ids(policy.columns, keyring), policy_fingerprint=policy.fingerprint,
            details={"files": report.files, "output_bytes": report.output_bytes,
                     "columns_masked": report.columns_masked},
        )  # fmt: skip
    return report


def is_blob_url(location: str) -> bool:
    """Whether ``location`` names Azure Blob Storage rather than a local path."""
    return location.lower().startswith(("az://", "abfs://", "abfss://"))


mask_parquet = mask_file
"""Alias of :func:`mask_file`, named for the common case."""
