"""The tamper-evident audit log, and the small hook other operations use to write to it.

>>> log = ag.AuditLog("audit.jsonl", witness="/mnt/other/audit.checkpoints")
>>> rid = log.append("export", dataset="patients", rows=120)
>>> proof = log.prove(rid)                       # a dict a regulator can check offline
>>> ag.verify_proof(proof, public_key=log.public_key)
True
>>> bool(log.verify())
True

Operations (``mask_file``, ``Policy.apply``, ``forget``) write a record when given
``audit=`` (an :class:`AuditLog` or a path) or when ``$AMLGUARD_AUDIT_LOG`` names a log.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from ._amlguard import AuditLog, AuditReport, LocalKeyring, verify_audit_log, verify_proof

__all__ = ["AuditLog", "AuditReport", "AuditTarget", "verify_audit_log", "verify_proof"]

AUDIT_LOG_ENV = "AMLGUARD_AUDIT_LOG"

AuditTarget = Union[AuditLog, str, "os.PathLike[str]", None]


def resolve(audit: AuditTarget, keyring: Optional[LocalKeyring] = None) -> Optional[AuditLog]:
    """The log to write to: ``audit`` itself, a log at that path, the one named by
    ``$AMLGUARD_AUDIT_LOG``, or ``None`` when no log is configured."""
    if isinstance(audit, AuditLog):
        return audit
    path = os.fspath(audit) if audit is not None else os.environ.get(AUDIT_LOG_ENV) or None
    if path is None:
        return None
    return AuditLog(path, keyring=keyring) if keyring is not None else AuditLog(path)


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
