"""The tamper-evident audit log, and the small hook other operations use to write to it.

>>> log = ag.AuditLog("audit.jsonl", witness="/mnt/other/audit.checkpoints")
>>> rid = log.append("export", dataset="patients", rows=120)
>>> proof = log.prove(rid)                       # a dict a regulator can check offline
>>> ag.verify_proof(proof, public_key=log.public_key)
True
>>> bool(log.verify())
True

Operations (``mask_file``, ``Policy.apply``, ``forget``, ``encrypt_file``, ``decrypt_file``,
``open_encrypted``, ``encrypt_bytes``, ``decrypt_bytes``, ``rewrap``, ``LocalKeyring.rotate``)
write a record when given ``audit=`` (an :class:`AuditLog` or a path) or when
``$AMLGUARD_AUDIT_LOG`` names a log. Failures are recorded too, with the error's class and
message (which never carry data values or key material).

The signing key belongs to the log, never to the operation: an :class:`AuditLog` object signs
with the keyring and ``signing_key`` it was opened with, whatever keys the operation uses; a
log named by a path or by ``$AMLGUARD_AUDIT_LOG`` is opened with the default local keyring
(``$AMLGUARD_KEYRING``, else ``~/.amlguard/keyring``) and key ``audit``, by every operation
alike. To sign with another key, open the log and pass the object. The key is checked before
the operation runs: a log whose signing key is missing raises
:class:`~amlguard.KeyNotFoundError` (or :class:`~amlguard.AuditLogError` when the keyring holds
another key of that name) and nothing is done or recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ._amlguard import AuditLog, AuditReport, LocalKeyring, verify_audit_log, verify_proof

__all__ = [
    "AuditLog",
    "AuditReport",
    "AuditTarget",
    "OperationRecord",
    "operation",
    "verify_audit_log",
    "verify_proof",
]

AUDIT_LOG_ENV = "AMLGUARD_AUDIT_LOG"

AuditTarget = Union[AuditLog, str, "os.PathLike[str]", None]


def resolve(audit: AuditTarget) -> Optional[AuditLog]:
    """The log to write to: ``audit`` itself, a log at that path, the one named by
    ``$AMLGUARD_AUDIT_LOG``, or ``None`` when no log is configured. A log named by a path is
    signed with the default keyring's key ``audit`` (see the module notes)."""
    if isinstance(audit, AuditLog):
        return audit
    path = os.fspath(audit) if audit is not None else os.environ.get(AUDIT_LOG_ENV) or None
    if path is None:
        return None
    return AuditLog(path)


def ready(audit: AuditTarget) -> Optional[AuditLog]:
    """:func:`resolve`, then check that the log's signing key is usable, before an operation
    runs; raises :class:`~amlguard.KeyNotFoundError` or :class:`~amlguard.AuditLogError`."""
    log = resolve(audit)
    if log is not None:
        log.public_key  # noqa: B018  (loads and checks the signing key)
    return log


def key_ids(
    policy_columns: dict[str, dict[str, Any]], keyring: Optional[LocalKeyring]
) -> list[str]:
    """Exact ids (``name@version``) of the keys a policy's rules name."""
    ids = set()
    for rule in policy_columns.values():
        reference = rule.get("key")
        if not isinstance(reference, str):
            continue
        if "@" not in reference and keyring is not None and reference in keyring:
            reference = f"{reference}@{keyring.versions(reference)[-1]}"
        ids.add(reference)
    return sorted(ids)


@dataclass
class OperationRecord:
    """What an operation fills in while it runs; written to the log when it ends."""

    key_ids: list[str] = field(default_factory=list)
    rows: Optional[int] = None
    bytes: Optional[int] = None
    details: dict[str, Any] = field(default_factory=dict)
    #: Raw subject identifiers; the log records only their keyed pseudonyms.
    subjects: list[str] = field(default_factory=list)


@contextmanager
def operation(
    audit: AuditTarget,
    action: str,
    *,
    dataset: Optional[str] = None,
    paths: Optional[list[str]] = None,
    key_ids: Optional[list[str]] = None,
) -> Iterator[OperationRecord]:
    """Record ``action`` in the configured log (if any) when the block ends, as a success or,
    when it raises, as a failure carrying the exception's class and message; the exception
    propagates unchanged. The block sets key ids and counts on the yielded record. The log's
    signing key is checked before the block runs."""
    log = ready(audit)
    record = OperationRecord(key_ids=list(key_ids or []))
    try:
        yield record
    except Exception as err:
        if log is not None:
            log.append(
                action, outcome="failure", dataset=dataset, paths=paths,
                key_ids=sorted(set(record.key_ids)), rows=record.rows, bytes=record.bytes,
                details=record.details, subjects=record.subjects or None,
                error=f"{type(err).__name__}: {err}",
            )  # fmt: skip
        raise
    if log is not None:
        log.append(
            action, dataset=dataset, paths=paths, key_ids=sorted(set(record.key_ids)),
            rows=record.rows, bytes=record.bytes, details=record.details,
            subjects=record.subjects or None,
        )  # fmt: skip
