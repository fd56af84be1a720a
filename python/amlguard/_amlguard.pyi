"""Type stubs for the amlguard extension module (checked by mypy.stubtest)."""

import os
from typing import Any, Callable, Optional, Union

__version__: str

class LocalKeyring:
    """A directory of named, versioned 256-bit keys (the embedded default key provider).

    Created on first use with 0700/0600 permissions at ``path``, ``$AMLGUARD_KEYRING`` or
    ``~/.amlguard/keyring``. Key material never appears in reprs, errors or logs.
    """

    def __new__(cls, path: Optional[Union[str, os.PathLike[str]]] = None) -> LocalKeyring: ...
    @property
    def path(self) -> str:
        """Where the keyring lives."""
    def ensure_key(self, name: str) -> str:
        """Create version 1 of ``name`` unless it exists; returns the key id ``name@version``."""
    def rotate(self, name: str) -> str:
        """Add a new version of ``name``; older versions stay usable. Returns the new key id."""
    def list_keys(self) -> list[str]:
        """Names of all keys, sorted."""
    def versions(self, name: str) -> list[int]:
        """Versions of one key, ascending (empty when it does not exist)."""
    def __contains__(self, name: str) -> bool: ...
    def __reduce__(self) -> tuple[Any, tuple[str]]: ...

class MaskReport:
    """What a masking run did: counts, sizes and timing."""

    @property
    def files(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def input_bytes(self) -> int: ...
    @property
    def output_bytes(self) -> int: ...
    @property
    def elapsed_seconds(self) -> float: ...
    @property
    def rows_per_second(self) -> float: ...
    @property
    def columns_masked(self) -> list[str]: ...
    @property
    def policy_fingerprint(self) -> str: ...
    def _repr_html_(self) -> str: ...

class _CorePolicy:
    """The parsed policy behind :class:`amlguard.Policy`."""

    @staticmethod
    def from_json(text: str) -> _CorePolicy: ...
    def to_json(self) -> str: ...
    def fingerprint(self) -> str: ...
    def validate_schema(self, schema: Any, keyring: Optional[LocalKeyring] = None) -> None: ...
    def output_schema(self, schema: Any, keyring: Optional[LocalKeyring] = None) -> Any: ...
    def apply_table(
        self, table: Any, keyring: Optional[LocalKeyring] = None, threads: Optional[int] = None
    ) -> Any: ...
    def apply_reader(
        self, reader: Any, keyring: Optional[LocalKeyring] = None, threads: Optional[int] = None
    ) -> Any: ...

def mask_file(
    source: Union[str, os.PathLike[str]],
    destination: Union[str, os.PathLike[str]],
    policy: _CorePolicy,
    keyring: Optional[LocalKeyring] = None,
    threads: Optional[int] = None,
    batch_rows: Optional[int] = None,
    progress: Optional[Callable[[int, int], object]] = None,
) -> MaskReport:
    """Mask a Parquet/CSV file (or a directory of them) into ``destination``, atomically."""

def synthetic_pii(rows: int, seed: int = 0) -> Any:
    """Deterministic synthetic PII table (an Arrow stream object)."""
