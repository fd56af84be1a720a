"""Type stubs for the amlguard extension module (checked by mypy.stubtest)."""

import os
from typing import Any, Callable, Optional, Union, final

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

def mask_location(
    source: str,
    destination: str,
    policy: _CorePolicy,
    keyring: Optional[LocalKeyring] = None,
    threads: Optional[int] = None,
    batch_rows: Optional[int] = None,
    progress: Optional[Callable[[int, int], object]] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> MaskReport:
    """``mask_file`` where either end may be a blob URL or a blob dataset prefix."""

def synthetic_pii(rows: int, seed: int = 0) -> Any:
    """Deterministic synthetic PII table (an Arrow stream object)."""

@final
class AzureKeyVault:
    """An Azure Key Vault (or Managed HSM) as a key provider.

    ``credential`` is any object with ``get_token(*scopes)`` (every azure-identity credential);
    ``None`` uses DefaultAzureCredential order: environment service principal, workload identity,
    managed identity (``MSI_ENDPOINT``, ``IDENTITY_ENDPOINT`` or IMDS), Azure CLI. ``ca_bundle``
    adds trusted roots (PEM). Throttling and transient faults are retried within the limits;
    unwrapped data keys are cached for ``cache_ttl_seconds`` (0 disables the cache).
    """

    def __new__(
        cls,
        url: str,
        credential: Optional[Any] = None,
        *,
        ca_bundle: Optional[Union[str, os.PathLike[str]]] = None,
        timeout_seconds: float = 30.0,
        max_retries: int = 8,
        max_retry_delay_seconds: float = 30.0,
        max_total_seconds: float = 120.0,
        cache_ttl_seconds: float = 300.0,
        api_version: Optional[str] = None,
    ) -> AzureKeyVault: ...
    @property
    def url(self) -> str:
        """The vault URL."""
    @property
    def identity(self) -> str:
        """The identity calls are made as (as far as known; never a secret)."""
    def kek(
        self, name: str, version: Optional[str] = None, algorithm: Optional[str] = None
    ) -> AzureKek:
        """The KEK for key ``name`` pinned to ``version`` (default: the latest, resolved now).

        ``algorithm``: ``RSA-OAEP-256`` (default for RSA keys), ``RSA-OAEP``, or ``A256KW``
        (default for Managed HSM ``oct-HSM`` keys).
        """
    def retry_stats(self) -> tuple[int, float]:
        """``(retries, seconds waited)`` over every call of this vault so far."""
    def clear_cache(self) -> None:
        """Forget every cached data key."""

@final
class AzureKek:
    """One Key Vault key version as a key-encryption key (holds no key material)."""

    @property
    def key_id(self) -> str:
        """Full key id with version, as recorded in headers."""
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def provider(self) -> str: ...
    def wrap(self, key: bytes) -> bytes:
        """Wrap a data key with Key Vault's ``wrapkey``."""
    def unwrap(
        self, wrapped: bytes, key_id: Optional[str] = None, algorithm: Optional[str] = None
    ) -> bytes:
        """Unwrap with Key Vault's ``unwrapkey`` (through the vault's data-key cache)."""

def encrypt_bytes(
    data: bytes,
    keks: Union[AzureKek, list[AzureKek]],
    context: Optional[dict[str, str]] = None,
) -> bytes:
    """Encrypt ``data`` into an amlguard container wrapped under every KEK."""

def decrypt_bytes(
    blob: bytes,
    keks: Union[AzureKek, list[AzureKek]],
    context: Optional[dict[str, str]] = None,
) -> bytes:
    """Decrypt an amlguard container held in memory; ``context`` entries must match."""

def encrypt_file(
    source: str,
    destination: str,
    *,
    kek: Union[AzureKek, list[AzureKek]],
    context: Optional[dict[str, str]] = None,
    storage_options: Optional[dict[str, Any]] = None,
    segment_size_bytes: Optional[int] = None,
    threads: Optional[int] = None,
) -> dict[str, Any]:
    """Encrypt ``source`` into a container at ``destination``; either may be a local path or
    an ``az://container/path`` / ``abfss://container@account.dfs.core.windows.net/path`` URL.

    Uploads stream in blocks and commit only when complete: a failure leaves no blob.
    ``storage_options``: object_store Azure options (``account_name``, ``account_key``,
    ``sas_token``, ``use_emulator``, ...), ``credential`` (an object with ``get_token``) and
    ``part_size_bytes`` / ``max_parts_in_flight`` / ``read_ahead_bytes``.
    """

def decrypt_file(
    source: str,
    destination: str,
    *,
    kek: Union[AzureKek, list[AzureKek]],
    context: Optional[dict[str, str]] = None,
    storage_options: Optional[dict[str, Any]] = None,
    threads: Optional[int] = None,
) -> dict[str, Any]:
    """Decrypt the container at ``source`` into ``destination`` (paths or blob URLs); the
    output appears only after every segment has been authenticated."""

@final
class EncryptedReader:
    """A decrypted, seekable, read-only view of a container (ranged reads on a blob)."""

    @property
    def size(self) -> int:
        """Plaintext size in bytes."""
    @property
    def bytes_fetched(self) -> Optional[int]:
        """Container bytes fetched from Blob Storage so far (``None`` for a local file)."""
    def read(self, size: int = -1) -> bytes: ...
    def seek(self, offset: int, whence: int = 0) -> int: ...
    def tell(self) -> int: ...
    def close(self) -> None: ...
    def readable(self) -> bool: ...
    def seekable(self) -> bool: ...
    def __enter__(self) -> EncryptedReader: ...
    def __exit__(self, kind: Optional[Any], value: Optional[Any], traceback: Optional[Any]) -> bool: ...

def open_encrypted(
    source: str,
    *,
    kek: Union[AzureKek, list[AzureKek]],
    context: Optional[dict[str, str]] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> EncryptedReader:
    """Open the container at ``source`` (a path or blob URL) for random-access reading."""
