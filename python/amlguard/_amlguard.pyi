"""Type stubs for the amlguard extension module (checked by mypy.stubtest)."""

import os
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union, final

__all__ = [
    "__version__",
    "ParquetReport",
    "_ParquetKms",
    "write_parquet",
    "read_parquet",
    "ParquetKeyRotationReport",
    "rotate_parquet_keys",
    "LocalKeyring",
    "_CorePolicy",
    "MaskReport",
    "mask_file",
    "synthetic_pii",
    "labelled_notes",
    "Kek",
    "ScanReport",
    "detect",
    "scan",
    "EnvelopeReport",
    "HeaderInfo",
    "EncryptedFile",
    "DekReuse",
    "encrypt_bytes",
    "decrypt_bytes",
    "encrypt_file",
    "decrypt_file",
    "rewrap",
    "inspect",
    "open_encrypted",
    "AuditLog",
    "AuditReport",
    "verify_proof",
    "verify_audit_log",
    "SubjectKeyStore",
    "forget_json",
    "verify_forgotten_json",
    "AzureKeyVault",
    "AzureKek",
    "EncryptedReader",
    "encrypt_location",
    "decrypt_location",
    "open_encrypted_location",
    "mask_location",
    "encrypt_columns",
    "decrypt_columns",
    "encrypted_columns_json",
]

__version__: str

@final
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
    def rotate(
        self, name: str, *, audit: Union[AuditLog, str, os.PathLike[str], None] = None
    ) -> str:
        """Add a new version of ``name``; older versions stay usable. Returns the new key id.

        With ``audit`` (an :class:`AuditLog` or a path; default ``$AMLGUARD_AUDIT_LOG``) the
        rotation, failed or not, is recorded with the previous and new key ids."""
    def list_keys(self) -> list[str]:
        """Names of all keys, sorted."""
    def versions(self, name: str) -> list[int]:
        """Versions of one key, ascending (empty when it does not exist)."""
    def kek(self, name: str, version: Optional[int] = None) -> Kek:
        """The key-encryption key for ``name`` (latest version, or ``version``)."""
    def __contains__(self, key: str, /) -> bool: ...
    def __reduce__(self) -> tuple[Any, tuple[str]]: ...

@final
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

@final
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

def labelled_notes(rows: int, seed: int = 0) -> Any:
    """Synthetic notes with ground-truth spans (an Arrow stream object)."""

@final
class Kek:
    """A key-encryption key: wraps and unwraps data keys (unwrapped DEKs are cached)."""

    @property
    def key_id(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def wrap_algorithm(self) -> str: ...

@final
class EnvelopeReport:
    """What an encrypt or decrypt call did."""

    @property
    def plaintext_bytes(self) -> int: ...
    @property
    def container_bytes(self) -> int: ...
    @property
    def segments(self) -> int: ...
    @property
    def key_ids(self) -> list[str]: ...
    @property
    def elapsed_seconds(self) -> float: ...

@final
class HeaderInfo:
    """Facts from a container's header; never secret."""

    @property
    def format_version(self) -> int: ...
    @property
    def suite(self) -> str: ...
    @property
    def segment_size_bytes(self) -> int: ...
    @property
    def context(self) -> dict[str, str]: ...
    @property
    def key_ids(self) -> list[str]: ...
    @property
    def wrap_algorithms(self) -> list[str]: ...
    @property
    def header_len_bytes(self) -> int: ...
    @property
    def segments(self) -> Optional[int]: ...
    @property
    def plaintext_len_bytes(self) -> Optional[int]: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class EncryptedFile:
    """Seekable read-only view of a container's plaintext; segments verify before reading."""

    @property
    def size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def read(self, size: int = ...) -> bytes: ...
    def seek(self, offset: int, whence: int = 0) -> int: ...
    def tell(self) -> int: ...
    def readable(self) -> bool: ...
    def seekable(self) -> bool: ...
    def writable(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> EncryptedFile: ...
    def __exit__(self, exc_type: Optional[Any], exc: Optional[Any], tb: Optional[Any]) -> bool: ...

@final
class DekReuse:
    """Share one data key between at most ``max_files`` containers holding at most
    ``max_bytes`` plaintext bytes, then mint a fresh one (off unless passed as ``dek_reuse=``).

    Each container still gets its own salt, segment key and key commitment; the DEK is zeroized
    when retired. Safe to share between threads."""

    def __new__(cls, *, max_files: int = 1000, max_bytes: int = 68719476736) -> DekReuse: ...
    @property
    def max_files(self) -> int: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def deks_minted(self) -> int:
        """Data keys minted (and wrapped) so far."""
    @property
    def files(self) -> int:
        """Containers started so far."""
    @property
    def holds_dek(self) -> bool:
        """Whether a data key is held in memory now."""
    def retire(self) -> None:
        """Retire (and zeroize) the current data key; the next container gets a fresh one."""

def encrypt_bytes(
    data: bytes,
    keks: list[Union[Kek, AzureKek]],
    context: dict[str, str],
    segment_size_bytes: Optional[int] = None,
    dek_reuse: Optional[DekReuse] = None,
) -> bytes: ...
def decrypt_bytes(
    blob: bytes,
    keks: list[Union[Kek, AzureKek]],
    context: dict[str, str],
    threads: Optional[int] = None,
) -> bytes: ...
def encrypt_file(
    source: Union[str, os.PathLike[str]],
    destination: Union[str, os.PathLike[str]],
    keks: list[Union[Kek, AzureKek]],
    context: dict[str, str],
    segment_size_bytes: Optional[int] = None,
    threads: Optional[int] = None,
    dek_reuse: Optional[DekReuse] = None,
    progress: Optional[Callable[[int, int], object]] = None,
) -> EnvelopeReport: ...
def decrypt_file(
    source: Union[str, os.PathLike[str]],
    destination: Union[str, os.PathLike[str]],
    keks: list[Union[Kek, AzureKek]],
    context: dict[str, str],
    threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], object]] = None,
) -> EnvelopeReport: ...
def rewrap(
    path: Union[str, os.PathLike[str]],
    old: list[Union[Kek, AzureKek]],
    new: list[Union[Kek, AzureKek]],
) -> HeaderInfo: ...
def inspect(path: Union[str, os.PathLike[str]]) -> HeaderInfo: ...
def open_encrypted(
    path: Union[str, os.PathLike[str]], keks: list[Union[Kek, AzureKek]], context: dict[str, str]
) -> EncryptedFile: ...

@final
class ScanReport:
    """What a scan found per column; never holds a matched value."""

    @property
    def rows_scanned(self) -> int: ...
    @property
    def skipped_columns(self) -> list[str]: ...
    def to_json(self) -> str: ...
    def to_arrow(self) -> Any: ...

def detect(
    column: Any,
    recognizers_json: Optional[str] = None,
    min_score: Optional[float] = None,
    threads: Optional[int] = None,
    external: Optional[Callable[[list[Optional[str]]], Any]] = None,
) -> Any:
    """Findings in a string column: (row, entity, start, end, score), character offsets."""

def scan(
    table: Any,
    sample_rows: Optional[int] = None,
    recognizers_json: Optional[str] = None,
    min_score: Optional[float] = None,
    threads: Optional[int] = None,
) -> ScanReport:
    """Classify the string columns of a table."""

@final
class AuditReport:
    """The result of verifying an audit log; true when every check passed."""

    @property
    def ok(self) -> bool: ...
    @property
    def first_bad_record(self) -> Optional[int]:
        """Index of the first bad record (for truncation: the first missing one)."""
    @property
    def records_checked(self) -> int: ...
    @property
    def problem(self) -> Optional[str]: ...
    @property
    def checkpoints_checked(self) -> int: ...
    @property
    def witness_checkpoints_checked(self) -> int: ...
    @property
    def witness_checked(self) -> bool: ...
    @property
    def public_key(self) -> Optional[str]: ...
    @property
    def records_after_last_checkpoint(self) -> int: ...
    def __bool__(self) -> bool: ...

@final
class AuditLog:
    """An append-only, tamper-evident audit log: JSON Lines, a hash chain, and signed RFC 9162
    Merkle checkpoints every ``checkpoint_every`` records, also appended to ``witness``.

    ``checkpoint_signature`` is ``"ed25519"`` (default: anyone holding the public key verifies)
    or ``"hmac-sha256"`` (verifying needs the keyring holding the key; for a log only its owner
    checks). It applies to a new log: one that holds checkpoints keeps their algorithm.

    ``keyring`` (default: the local keyring) holds the signing key ``signing_key``, created on
    first use; it is the log's own key, used by every operation given this log whatever keys
    the operation uses, and checked before each append (missing: ``KeyNotFoundError``; another
    key of that name: ``AuditLogError``). Subject identifiers are recorded only as keyed
    pseudonyms.

    ``witness`` is a local path or an ``az://`` URL of an append blob (reached with
    ``storage_options``): each checkpoint is appended there too, so that truncating the log is
    found by :meth:`verify`.

    ``path`` may be an Azure Blob URL (``az://container/audit.jsonl``): the log is then an
    append blob shared by any number of writers, reached with ``storage_options`` (as for
    :func:`amlguard.encrypt_file`); each record is appended only if the blob still ends where
    the writer last read it, so writers never interleave nor lose records.
    """

    def __new__(
        cls,
        path: Union[str, os.PathLike[str]],
        *,
        keyring: Optional[LocalKeyring] = None,
        signing_key: str = "audit",
        witness: Optional[Union[str, os.PathLike[str]]] = None,
        checkpoint_every: int = 100,
        storage_options: Optional[dict[str, Any]] = None,
        checkpoint_signature: str = "ed25519",
    ) -> AuditLog: ...
    @property
    def path(self) -> str: ...
    @property
    def witness(self) -> Optional[str]:
        """The witness (path or URL), if any."""
    @property
    def public_key(self) -> str:
        """The Ed25519 public key (hex) that signs the checkpoints; give it to verifiers. For
        an HMAC-signed log, the key's fingerprint (identifies the key, reveals nothing)."""
    def append(
        self,
        action: str,
        *,
        outcome: str = "success",
        dataset: Optional[str] = None,
        paths: Optional[list[str]] = None,
        key_ids: Optional[list[str]] = None,
        policy_fingerprint: Optional[str] = None,
        rows: Optional[int] = None,
        bytes: Optional[int] = None,
        subjects: Optional[list[str]] = None,
        details: Optional[dict[str, Any]] = None,
        error: Optional[str] = None,
    ) -> int:
        """Append one record and return its id; ``subjects`` are written as pseudonyms only."""
    def checkpoint(self) -> dict[str, Any]:
        """Append a signed checkpoint now (unless the last record is one) and return it."""
    def prove(self, record_id: int) -> dict[str, Any]:
        """An inclusion proof for one record, checkable with :func:`verify_proof`."""
    def verify(self, public_key: Optional[str] = None) -> AuditReport:
        """Verify the log and its witness; the report is true when ok."""
    def subject_pseudonym(self, subject: str) -> str:
        """The keyed pseudonym under which ``subject`` is recorded."""
    def find_subject(self, subject: str) -> list[int]:
        """Ids of the records that concern ``subject``."""
    def __len__(self) -> int: ...

def verify_proof(
    proof: Any, public_key: Optional[str] = None, *, keyring: Optional[LocalKeyring] = None
) -> bool:
    """Check an inclusion proof (dict or JSON) with the public key alone; a proof on an
    HMAC-signed checkpoint needs ``keyring``, holding its key (else ``KeyNotFoundError``)."""

def verify_audit_log(
    path: Union[str, os.PathLike[str]],
    witness: Optional[Union[str, os.PathLike[str]]] = None,
    public_key: Optional[str] = None,
    storage_options: Optional[dict[str, Any]] = None,
    *,
    keyring: Optional[LocalKeyring] = None,
) -> AuditReport:
    """Verify an audit log file or append blob (``az://...``; ``storage_options`` as for
    :class:`AuditLog`) and its witness. No keyring is needed but for HMAC-signed checkpoints,
    checked with their key in ``keyring`` (without it: ``KeyNotFoundError``)."""

@final
class SubjectKeyStore:
    """Per-subject data keys (SQLite, WAL, in the keyring directory) wrapped by ``kek``, a
    keyring key name (default ``subject-kek``) or an :class:`AzureKek`: crypto-shredding.
    ``forget(..., subject_keys=store)`` destroys subjects' keys."""

    def __new__(
        cls,
        keyring: Optional[LocalKeyring] = None,
        kek: Optional[Union[str, AzureKek]] = None,
        path: Optional[Union[str, os.PathLike[str]]] = None,
    ) -> SubjectKeyStore: ...
    @property
    def path(self) -> str: ...
    @property
    def kek_id(self) -> str: ...
    def encrypt_column(
        self, table: Any, column: str, subject_column: str, context: str = ""
    ) -> Any: ...
    def decrypt_column(
        self, table: Any, column: str, context: str = "", on_forgotten: str = "error"
    ) -> Any: ...
    def destroy_json(self, subjects: list[str]) -> str:
        """Destroy the subjects' keys; returns the destructions as JSON."""

def forget_json(
    subjects: list[str],
    datasets: list[tuple[str, str, Optional[str], str, str, Optional[int], str]],
    keyring: Optional[LocalKeyring] = None,
    dry_run: bool = False,
    threads: Optional[int] = None,
    audit: Optional[AuditLog] = None,
    subject_keys: Optional[SubjectKeyStore] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> str:
    """Forget subjects across datasets; the receipt as JSON."""

def verify_forgotten_json(
    subjects: list[str],
    datasets: list[tuple[str, str, Optional[str], str, str, Optional[int], str]],
    keyring: Optional[LocalKeyring] = None,
    threads: Optional[int] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> str:
    """Scan datasets for remaining subject rows; the result as JSON."""

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
    def __exit__(
        self, kind: Optional[Any], value: Optional[Any], traceback: Optional[Any]
    ) -> bool: ...

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

def encrypt_location(
    source: str,
    destination: str,
    *,
    kek: Any,
    context: Optional[dict[str, str]] = None,
    storage_options: Optional[dict[str, Any]] = None,
    segment_size_bytes: Optional[int] = None,
    threads: Optional[int] = None,
    dek_reuse: Optional[DekReuse] = None,
) -> EnvelopeReport:
    """Encrypt where either end may be a blob URL."""

def decrypt_location(
    source: str,
    destination: str,
    *,
    kek: Any,
    context: Optional[dict[str, str]] = None,
    storage_options: Optional[dict[str, Any]] = None,
    threads: Optional[int] = None,
) -> EnvelopeReport:
    """Decrypt where either end may be a blob URL."""

def open_encrypted_location(
    source: str,
    *,
    kek: Any,
    context: Optional[dict[str, str]] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> EncryptedReader:
    """Random-access reader of a container at a path or blob URL."""

def encrypt_columns(
    table: Any,
    columns: list[str],
    kek: Optional[Union[Kek, AzureKek]] = None,
    mode: str = "randomized",
    context: Optional[dict[str, str]] = None,
    subject_column: Optional[str] = None,
    subject_keys: Optional[SubjectKeyStore] = None,
    reuse_from: Any = None,
    threads: Optional[int] = None,
) -> Any:
    """Encrypt ``columns`` of an Arrow table value by value; returns an Arrow table."""

def decrypt_columns(
    table: Any,
    keks: Optional[Union[Kek, AzureKek, Sequence[Union[Kek, AzureKek]]]] = None,
    context: Optional[dict[str, str]] = None,
    columns: Optional[list[str]] = None,
    on_error: str = "raise",
    subject_keys: Optional[SubjectKeyStore] = None,
    threads: Optional[int] = None,
) -> Any:
    """Decrypt the encrypted columns of an Arrow table, restoring their types."""

def encrypted_columns_json(schema: Any) -> str:
    """The encrypted columns of an Arrow schema (mode, key id, context) as JSON."""

@final
class ParquetReport:
    """What a Parquet write or read did: rows, size, encrypted columns and key-provider calls."""

    @property
    def rows(self) -> int: ...
    @property
    def row_groups(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def elapsed_seconds(self) -> float: ...
    @property
    def megabytes_per_second(self) -> float:
        """File megabytes (10^6 bytes) per second."""
    @property
    def encrypted_columns(self) -> list[str]:
        """Leaf column paths that are encrypted (every column under uniform encryption)."""
    @property
    def footer_key(self) -> Optional[str]:
        """The footer's master key (writes only)."""
    @property
    def plaintext_footer(self) -> bool: ...
    @property
    def kms_wraps(self) -> int:
        """Keys wrapped by the key provider."""
    @property
    def kms_unwraps(self) -> int:
        """Keys unwrapped by the key provider (repeats of one wrapped key are not counted)."""
    @property
    def kms_calls(self) -> int:
        """Key-provider calls in all (wraps + unwraps)."""
    def _repr_html_(self) -> str: ...

def write_parquet(
    data: Any,
    destination: str,
    *,
    keys: Optional[Union[LocalKeyring, AzureKeyVault]] = None,
    footer_key: Optional[str] = None,
    column_keys: Optional[dict[str, list[str]]] = None,
    plaintext_footer: bool = False,
    double_wrapping: bool = True,
    external_key_material: bool = False,
    compression: str = "snappy",
    row_group_rows: Optional[int] = None,
    threads: Optional[int] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> ParquetReport:
    """Write an Arrow stream as one Parquet file (PME-encrypted when ``footer_key`` is given)."""

def read_parquet(
    source: str,
    *,
    keys: Optional[Union[LocalKeyring, AzureKeyVault]] = None,
    columns: Optional[list[str]] = None,
    threads: Optional[int] = None,
    storage_options: Optional[dict[str, Any]] = None,
) -> tuple[Any, ParquetReport]:
    """Read a Parquet file (decrypting it when PME-encrypted) into a table and a report."""

@final
class ParquetKeyRotationReport:
    """What ``rotate_parquet_keys`` did: keys re-wrapped and key-provider calls."""

    @property
    def key_material_path(self) -> str:
        """The ``_KEY_MATERIAL_FOR_<file>.json`` rewritten."""
    @property
    def keys_rewrapped(self) -> int:
        """Data keys re-wrapped (the footer's and each encrypted column's)."""
    @property
    def kms_wraps(self) -> int: ...
    @property
    def kms_unwraps(self) -> int: ...
    @property
    def kms_calls(self) -> int:
        """Key-provider calls in all (wraps + unwraps)."""
    @property
    def elapsed_seconds(self) -> float: ...

def rotate_parquet_keys(
    path: str,
    *,
    keys: Union[LocalKeyring, AzureKeyVault],
    double_wrapping: bool = True,
) -> ParquetKeyRotationReport:
    """Re-wrap a Parquet file's external key material under the latest master key versions."""

@final
class _ParquetKms:
    """The KMS client behind ``amlguard.AmlguardKmsClient``."""

    def __new__(cls, keys: Union[LocalKeyring, AzureKeyVault]) -> _ParquetKms: ...
    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str: ...
    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes: ...
    @property
    def calls(self) -> tuple[int, int]:
        """``(wraps, unwraps)``: key-provider calls made so far."""
