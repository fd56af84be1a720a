"""Masking policies: data that says what to do with each column.

A policy is a mapping ``{"version": 1, "default": "keep" | "deny", "columns": {name: rule}}``
where each rule is ``{"op": <operator>, **parameters}``. Build one from a dict, JSON or YAML;
check it against a schema before touching data with :meth:`Policy.validate`; apply it to a
polars, pandas or pyarrow object with :meth:`Policy.apply` (the same type comes back).
Policies pickle and round-trip through JSON unchanged, so Spark or Ray executors get exactly
the policy the driver validated. Keys are referenced by name, never embedded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Union

import pyarrow as pa

from . import _frames
from ._amlguard import LocalKeyring, _CorePolicy

__all__ = ["Policy"]

PathLike = Union[str, "os.PathLike[str]"]


class Policy:
    """A validated-on-parse masking policy. Immutable."""

    __slots__ = ("_core",)

    def __init__(self, core: _CorePolicy) -> None:
        if not isinstance(core, _CorePolicy):
            raise TypeError("use Policy.from_dict, Policy.from_json or Policy.from_yaml")
        self._core = core

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, policy: dict[str, Any]) -> Policy:
        """Build from a mapping (as written in YAML or JSON)."""
        if not isinstance(policy, dict):
            from .exceptions import PolicyError

            raise PolicyError(f"a policy is a mapping, not a {type(policy).__name__}")
        try:
            text = json.dumps(policy, allow_nan=False)
        except (TypeError, ValueError) as err:
            from .exceptions import PolicyError

            raise PolicyError(f"the policy holds a value that is not plain data: {err}") from None
        return cls(_CorePolicy.from_json(text))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        """Build from JSON text."""
        return cls(_CorePolicy.from_json(text))

    @classmethod
    def from_yaml(cls, source: Union[PathLike, str]) -> Policy:
        """Build from a YAML file path or YAML text."""
        import yaml

        from .exceptions import PolicyError

        text = _read_if_path(source, (".yaml", ".yml"))
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise PolicyError(f"not valid YAML: {err}") from None
        return cls.from_dict(document)

    @classmethod
    def from_file(cls, path: PathLike) -> Policy:
        """Build from a ``.json``, ``.yaml`` or ``.yml`` file."""
        suffix = Path(path).suffix.lower()
        if suffix == ".json":
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        return cls.from_yaml(Path(path))

    # -- views --------------------------------------------------------------------------
    def to_json(self, indent: Optional[int] = None) -> str:
        """Canonical JSON (parameters left out stay out)."""
        text: str = self._core.to_json()
        return text if indent is None else json.dumps(json.loads(text), indent=indent)

    def to_dict(self) -> dict[str, Any]:
        """The policy as a plain mapping."""
        result: dict[str, Any] = json.loads(self._core.to_json())
        return result

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON: names this exact policy in reports and audit logs."""
        return str(self._core.fingerprint())

    @property
    def columns(self) -> dict[str, dict[str, Any]]:
        """Per-column rules."""
        columns: dict[str, dict[str, Any]] = self.to_dict()["columns"]
        return columns

    @property
    def default(self) -> str:
        """``keep`` or ``deny``: what happens to columns the policy does not list."""
        return str(self.to_dict()["default"])

    # -- checking and applying ----------------------------------------------------------
    def validate(self, schema_or_data: Any, keyring: Optional[LocalKeyring] = None) -> None:
        """Check the policy against a schema (or data) before touching any values.

        Raises a :class:`~amlguard.PolicyError` subclass naming the column and the field: an
        unknown column, an operator that does not fit the column's type, a bad parameter, an
        uncovered column under ``default: deny``, and with ``keyring`` a missing key.
        """
        self._core.validate_schema(_frames.schema_of(schema_or_data), keyring)

    def output_schema(
        self, schema_or_data: Any, keyring: Optional[LocalKeyring] = None
    ) -> pa.Schema:
        """The Arrow schema of the masked output."""
        return pa.schema(self._core.output_schema(_frames.schema_of(schema_or_data), keyring))

    def apply(
        self,
        data: Any,
        *,
        keyring: Optional[LocalKeyring] = None,
        threads: Optional[int] = None,
        audit: Any = None,
    ) -> Any:
        """Mask ``data`` and return the same type.

        polars and pandas DataFrames and pyarrow Tables and RecordBatches are masked in
        parallel (``threads`` workers, default one per CPU) with the GIL released; a pyarrow
        RecordBatchReader is returned as a reader that masks each batch as it is read.
        ``keyring`` defaults to the local keyring (``$AMLGUARD_KEYRING`` or
        ``~/.amlguard/keyring``) when a rule needs a key. With ``audit`` (an
        :class:`~amlguard.AuditLog` or a path) or ``$AMLGUARD_AUDIT_LOG``, the call is recorded.
        """
        from . import audit as _audit

        log = _audit.ready(audit)
        if _frames.is_reader(data):
            reader = self._core.apply_reader(data, keyring, threads)
            if log is not None:  # rows are unknown until the reader is drained
                self._record(log, _audit.key_ids(self.columns, keyring), type(data), None)
            return pa.RecordBatchReader.from_stream(reader)
        stream, rebuild = _frames.to_stream(data)
        masked = self._core.apply_table(stream, keyring, threads)
        if log is not None:
            rows = len(data) if hasattr(data, "__len__") else None
            self._record(log, _audit.key_ids(self.columns, keyring), type(data), rows)
        return rebuild(masked)

    def _record(self, log: Any, key_ids: list[str], kind: type, rows: Optional[int]) -> None:
        dataset = f"in-memory {kind.__module__}.{kind.__qualname__}"
        log.append(
            "mask", dataset=dataset, key_ids=key_ids, policy_fingerprint=self.fingerprint, rows=rows
        )

    # -- protocol -----------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Policy.from_json, (self.to_json(),))

    def __repr__(self) -> str:
        rules = ", ".join(f"{name}: {rule['op']}" for name, rule in self.columns.items())
        fingerprint = self.fingerprint[:12]
        return f"Policy(default={self.default!r}, columns={{{rules}}}, fingerprint={fingerprint!r})"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                escape(name),
                escape(rule["op"]),
                escape(", ".join(f"{k}={v!r}" for k, v in rule.items() if k != "op")),
            )
            for name, rule in self.columns.items()
        )
        return (
            f"<table><caption>amlguard Policy (default: {escape(self.default)}, "
            f"{escape(self.fingerprint[:12])})</caption>"
            f"<tr><th>column</th><th>operator</th><th>parameters</th></tr>{rows}</table>"
        )


def _read_if_path(source: Union[PathLike, str], suffixes: tuple[str, ...]) -> str:
    """Read ``source`` if it names a file; otherwise it is the document itself."""
    if isinstance(source, os.PathLike):
        return Path(source).read_text(encoding="utf-8")
    if "\n" not in source and (source.lower().endswith(suffixes) or os.path.exists(source)):
        return Path(source).read_text(encoding="utf-8")
    return source
