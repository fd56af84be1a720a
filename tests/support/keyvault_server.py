"""A Key Vault-compatible HTTPS server for tests, with its own token endpoints.

No Azure Key Vault emulator exists, so the tests talk to this server instead. It speaks the
documented public REST protocol closely enough that Microsoft's own Python clients
(``azure-keyvault-keys`` + ``azure-identity``) work against it unchanged (``test_keyvault.py``
proves that), and our Rust provider is tested against the same server, never against a mock:

- HTTPS on 127.0.0.1 with a CA and a server certificate made at start (``ca_file``);
- the bearer-challenge flow: a request without a valid token gets 401 with
  ``WWW-Authenticate: Bearer authorization="https://<host>/<tenant>", resource="https://vault.azure.net"``;
- token endpoints it validates tokens against: the Entra ID client-credential flow at
  ``/{tenant}/oauth2/v2.0/token`` (with the OpenID discovery document MSAL asks for) on the HTTPS
  port, and managed-identity endpoints on a plain-HTTP port like the real ones: App Service style
  (``IDENTITY_ENDPOINT`` + ``X-IDENTITY-HEADER``), Azure ML style (``MSI_ENDPOINT`` + ``secret``)
  and IMDS (``Metadata: true``);
- ``api-version`` checking;
- keys: create (RSA 2048-4096, ``oct-HSM`` 256-bit AES), get (latest or one version), list
  versions, wrapkey / unwrapkey with real RSA-OAEP, RSA-OAEP-256 and A256KW;
- switches: throttling (429 with ``Retry-After``, as a rate limit or for the next N requests),
  503 for the next N requests, slow responses, per-identity permission denials (403), expiring
  every token;
- counters of every call, by operation, for the tests' measurements.

Run it standalone with ``python keyvault_server.py`` to poke at it by hand.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import math
import os
import secrets
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SUPPORTED_API_VERSIONS = frozenset(
    {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-06-01-preview", "2025-07-01"}
)
VAULT_RESOURCE = "https://vault.azure.net"
RSA_ALGORITHMS = {"RSA-OAEP": hashes.SHA1, "RSA-OAEP-256": hashes.SHA256}
AES_ALGORITHMS = {"A256KW"}
DEFAULT_KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
TOKEN_LIFETIME_SECONDS = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca, cert, key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "amlguard test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "server.pem", "server.key"))
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@dataclass
class KeyVersion:
    name: str
    version: str
    kty: str
    key_ops: list[str]
    rsa_key: rsa.RSAPrivateKey | None = None
    aes_key: bytes | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    enabled: bool = True


@dataclass
class Token:
    identity: str
    expires_on: float
    resource: str


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        inner: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.inner = inner


class KeyVaultServer:
    """The server's state and switches; :meth:`start` serves it on free ports of 127.0.0.1."""

    def __init__(self, directory: Path | None = None) -> None:
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="amlguard-keyvault-"))
        self.ca_file, self._cert_file, self._key_file = make_tls_files(self.directory)
        self.tenant_id = str(uuid.uuid4())
        # A service principal (client-credential flow) and a managed identity.
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(24)
        # Soft-delete retention the vault reports in key attributes (set per vault, 7-90 days).
        self.recoverable_days = 90
        self.managed_identity_client_id = str(uuid.uuid4())
        self.identity_header = secrets.token_urlsafe(16)
        # The federated token a Kubernetes workload identity would find in its token file.
        self.federated_token = secrets.token_urlsafe(32)
        self.lock = threading.Lock()
        self.keys: dict[str, list[KeyVersion]] = {}
        self.tokens: dict[str, Token] = {}
        self.calls: Counter[str] = Counter()
        self.api_versions: Counter[str] = Counter()
        self.denied: set[tuple[str, str]] = set()
        self.fail_next: list[tuple[int, dict[str, str]]] = []
        self.rate_limit: tuple[int, float] | None = None
        self._window: tuple[float, int] = (0.0, 0)
        self.delay_seconds = 0.0
        self.token_lifetime_seconds = TOKEN_LIFETIME_SECONDS
        self._servers: list[_QuietServer] = []
        self.port = 0
        self.msi_port = 0

    # ---- addresses -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The vault URL (``https://127.0.0.1:<port>``)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        """The authority host for Entra ID credentials (same port as the vault)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def identity_endpoint(self) -> str:
        """App Service style managed-identity endpoint (``IDENTITY_ENDPOINT``)."""
        return f"http://127.0.0.1:{self.msi_port}/msi/token"

    @property
    def msi_endpoint(self) -> str:
        """Azure ML compute style managed-identity endpoint (``MSI_ENDPOINT``)."""
        return f"http://127.0.0.1:{self.msi_port}/msi/azureml"

    @property
    def imds_endpoint(self) -> str:
        """Instance Metadata Service root (``IMDS_ENDPOINT`` style)."""
        return f"http://127.0.0.1:{self.msi_port}"

    @property
    def service_principal_identity(self) -> str:
        return f"appid={self.client_id}"

    @property
    def managed_identity(self) -> str:
        return f"appid={self.managed_identity_client_id}"

    # ---- switches --------------------------------------------------------------------------
    def throttle_next(self, count: int, retry_after_seconds: int = 1) -> None:
        """The next ``count`` vault requests get 429 with ``Retry-After``."""
        with self.lock:
            self.fail_next += [(429, {"Retry-After": str(retry_after_seconds)})] * count

    def unavailable_next(self, count: int) -> None:
        """The next ``count`` vault requests get 503."""
        with self.lock:
            self.fail_next += [(503, {})] * count

    def set_rate_limit(self, requests: int | None, per_seconds: float = 1.0) -> None:
        """Allow ``requests`` vault requests per window; the rest get 429 until it ends."""
        with self.lock:
            self.rate_limit = None if requests is None else (requests, per_seconds)
            self._window = (0.0, 0)

    def deny(self, identity: str, operation: str) -> None:
        """Refuse ``operation`` (``wrapKey``, ``unwrapKey``, ``get``, ...) to ``identity``."""
        with self.lock:
            self.denied.add((identity, operation))

    def expire_all_tokens(self) -> None:
        """Every token issued so far stops being valid (as if its lifetime had passed)."""
        with self.lock:
            for token in self.tokens.values():
                token.expires_on = time.time() - 1

    def reset_faults(self) -> None:
        with self.lock:
            self.fail_next.clear()
            self.rate_limit = None
            self.denied.clear()
            self.delay_seconds = 0.0
            self.recoverable_days = 90

    def reset_counts(self) -> None:
        with self.lock:
            self.calls.clear()
            self.api_versions.clear()

    # ---- keys, directly (test setup) -------------------------------------------------------
    def create_key(self, name: str, kty: str = "RSA", size: int | None = None) -> str:
        """Create a new version of ``name`` and return its full key id."""
        return self._create(name, kty, size, None)["key"]["kid"]

    def _create(
        self, name: str, kty: str, size: int | None, key_ops: list[str] | None
    ) -> dict[str, Any]:
        if kty in ("RSA", "RSA-HSM"):
            bits = size or 2048
            if bits not in (2048, 3072, 4096):
                raise ApiError(400, "BadParameter", f"Invalid key size {bits} for RSA.")
            version = KeyVersion(
                name,
                uuid.uuid4().hex,
                kty,
                key_ops or DEFAULT_KEY_OPS,
                rsa_key=rsa.generate_private_key(public_exponent=65537, key_size=bits),
            )
        elif kty in ("oct-HSM", "oct"):
            bits = size or 256
            if bits not in (128, 192, 256):
                raise ApiError(400, "BadParameter", f"Invalid key size {bits} for oct-HSM.")
            version = KeyVersion(
                name,
                uuid.uuid4().hex,
                kty,
                key_ops or ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
                aes_key=os.urandom(bits // 8),
            )
        else:
            raise ApiError(400, "BadParameter", f"Key type '{kty}' is not supported.")
        with self.lock:
            self.keys.setdefault(name.lower(), []).append(version)
        return self._bundle(version)

    def _kid(self, version: KeyVersion) -> str:
        return f"{self.url}/keys/{version.name}/{version.version}"

    def _bundle(self, version: KeyVersion) -> dict[str, Any]:
        jwk: dict[str, Any] = {"kid": self._kid(version), "kty": version.kty}
        jwk["key_ops"] = version.key_ops
        if version.rsa_key is not None:
            numbers = version.rsa_key.public_key().public_numbers()
            jwk["n"] = b64url(_int_bytes(numbers.n))
            jwk["e"] = b64url(_int_bytes(numbers.e))
        return {
            "key": jwk,
            "attributes": {
                "enabled": version.enabled,
                "created": version.created,
                "updated": version.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": self.recoverable_days,
                "exportable": False,
            },
            "tags": {},
        }

    def _find(self, name: str, version: str) -> KeyVersion:
        with self.lock:
            versions = self.keys.get(name.lower(), [])
            if version:
                versions = [v for v in versions if v.version == version]
        if not versions:
            shown = f"{name}/{version}" if version else name
            raise ApiError(
                404,
                "KeyNotFound",
                f"A key with (name/id) {shown} was not found in this key vault. If you recently"
                " deleted this key you may be able to recover it using the correct recovery"
                " command. For help resolving this issue, please see"
                " https://go.microsoft.com/fwlink/?linkid=2125182",
            )
        return versions[-1]

    # ---- tokens ----------------------------------------------------------------------------
    def issue_token(self, identity: str, resource: str = VAULT_RESOURCE) -> tuple[str, int]:
        token = "amlg." + secrets.token_urlsafe(32)
        expires_on = int(time.time()) + self.token_lifetime_seconds
        with self.lock:
            self.tokens[token] = Token(identity, expires_on, resource)
        return token, expires_on

    def _authenticate(self, header: str | None) -> str:
        challenge = {
            "WWW-Authenticate": (
                f'Bearer authorization="{self.authority}/{self.tenant_id}", '
                f'resource="{VAULT_RESOURCE}"'
            )
        }
        if not header or not header.startswith("Bearer "):
            raise ApiError(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                challenge,
            )
        with self.lock:
            token = self.tokens.get(header[len("Bearer ") :])
        if token is None:
            raise ApiError(401, "Unauthorized", "AKV10032: Invalid issuer or token.", challenge)
        if token.expires_on <= time.time():
            raise ApiError(
                401,
                "Unauthorized",
                "[TokenExpired] Error validating token: 'S2S12086'.",
                challenge,
            )
        if token.resource.rstrip("/") != VAULT_RESOURCE:
            raise ApiError(
                401, "Unauthorized", f"AKV10022: Invalid audience: {token.resource}.", challenge
            )
        return token.identity

    def _authorize(self, identity: str, operation: str) -> None:
        with self.lock:
            denied = (identity, operation) in self.denied
        if denied:
            raise ApiError(
                403,
                "Forbidden",
                f"The user, group or application '{identity};iss=https://sts.windows.net/"
                f"{self.tenant_id}/' does not have keys {operation} permission on key vault"
                f" '127.0.0.1:{self.port};location=local'. For help resolving this issue,"
                " please see https://go.microsoft.com/fwlink/?linkid=2125287",
                inner="AccessDenied",
            )

    def _injected_fault(self) -> ApiError | None:
        with self.lock:
            if self.fail_next:
                status, headers = self.fail_next.pop(0)
                self.calls[f"fault:{status}"] += 1
                return _fault(status, headers)
            if self.rate_limit is not None:
                limit, window = self.rate_limit
                now = time.monotonic()
                started, used = self._window
                if now - started >= window:
                    started, used = now, 0
                if used >= limit:
                    self._window = (started, used)
                    self.calls["fault:429"] += 1
                    wait = max(1, math.ceil(window - (now - started)))
                    return _fault(429, {"Retry-After": str(wait)})
                self._window = (started, used + 1)
        return None

    # ---- vault REST handlers ---------------------------------------------------------------
    def handle_vault(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> dict[str, Any]:
        parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
        if not parts or parts[0] != "keys":
            raise ApiError(404, "NotFound", f"No such resource: {path}")
        api_version = query.get("api-version")
        if api_version is None:
            raise ApiError(400, "BadParameter", "The api-version query parameter is missing.")
        if api_version not in SUPPORTED_API_VERSIONS:
            latest = "7.6"
            raise ApiError(
                400,
                "BadParameter",
                f"The specified version ({api_version}) is not recognized. Consider using the"
                f" latest supported version ({latest}).",
            )
        identity = self._authenticate(headers.get("Authorization"))
        fault = self._injected_fault()
        if fault is not None:
            raise fault
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        with self.lock:
            self.api_versions[api_version] += 1
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            raise ApiError(400, "BadParameter", f"The request body is not JSON: {error}") from error

        name = parts[1] if len(parts) > 1 else ""
        rest = parts[2:]
        if method == "POST" and rest == ["create"]:
            self._count("create")
            self._authorize(identity, "create")
            return self._create(
                name, request.get("kty", ""), request.get("key_size"), request.get("key_ops")
            )
        if method == "GET" and rest == ["versions"]:
            self._count("list_versions")
            self._authorize(identity, "list")
            self._find(name, "")
            with self.lock:
                versions = list(self.keys.get(name.lower(), []))
            return {
                "value": [
                    {"kid": self._kid(v), "attributes": self._bundle(v)["attributes"]}
                    for v in versions
                ],
                "nextLink": None,
            }
        if method == "GET" and len(rest) <= 1:
            self._count("get")
            self._authorize(identity, "get")
            return self._bundle(self._find(name, rest[0] if rest else ""))
        if method == "POST" and len(rest) in (1, 2) and rest[-1] in ("wrapkey", "unwrapkey"):
            operation = "wrapKey" if rest[-1] == "wrapkey" else "unwrapKey"
            self._count(rest[-1])
            self._authorize(identity, operation)
            version = self._find(name, rest[0] if len(rest) == 2 else "")
            return self._key_operation(version, operation, request)
        raise ApiError(405, "MethodNotAllowed", f"{method} {path} is not supported here.")

    def _count(self, operation: str) -> None:
        with self.lock:
            self.calls[operation] += 1

    def _key_operation(
        self, version: KeyVersion, operation: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        algorithm = request.get("alg")
        value = request.get("value")
        if not isinstance(algorithm, str) or not isinstance(value, str):
            raise ApiError(400, "BadParameter", "Both 'alg' and 'value' are required.")
        if operation not in version.key_ops:
            raise ApiError(
                403,
                "Forbidden",
                f"Operation {operation} is not permitted on this key.",
                inner="KeyOperationForbidden",
            )
        try:
            data = unb64url(value)
        except ValueError as error:
            raise ApiError(400, "BadParameter", "'value' is not base64url.") from error
        if version.rsa_key is not None:
            if algorithm not in RSA_ALGORITHMS:
                raise ApiError(
                    400,
                    "BadParameter",
                    f"Invalid algorithm '{algorithm}' for key type {version.kty}; use one of"
                    f" {', '.join(sorted(RSA_ALGORITHMS))}.",
                )
            digest = RSA_ALGORITHMS[algorithm]
            oaep = padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
            try:
                if operation == "wrapKey":
                    result = version.rsa_key.public_key().encrypt(data, oaep)
                else:
                    result = version.rsa_key.decrypt(data, oaep)
            except ValueError as error:
                raise ApiError(400, "BadParameter", "Bad Request") from error
        else:
            assert version.aes_key is not None
            expected = f"A{len(version.aes_key) * 8}KW"
            if algorithm != expected:
                raise ApiError(
                    400,
                    "BadParameter",
                    f"Invalid algorithm '{algorithm}' for key type {version.kty} of"
                    f" {len(version.aes_key) * 8} bits; use {expected}.",
                )
            try:
                if operation == "wrapKey":
                    result = aes_key_wrap(version.aes_key, data)
                else:
                    result = aes_key_unwrap(version.aes_key, data)
            except (ValueError, InvalidUnwrap) as error:
                raise ApiError(400, "BadParameter", "Bad Request") from error
        return {"kid": self._kid(version), "value": b64url(result)}

    # ---- token endpoints ---------------------------------------------------------------
    def handle_token(self, path: str, body: bytes) -> dict[str, Any] | None:
        """Entra ID endpoints on the HTTPS port; ``None`` when ``path`` is not one of them."""
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[-2:] == [".well-known", "openid-configuration"]:
            tenant = parts[0]
            base = f"{self.authority}/{tenant}"
            return {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "response_types_supported": ["code", "token"],
                "tenant_region_scope": None,
            }
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            self._count("token:client_credentials")
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8")))
            if parts[0] not in (self.tenant_id, "organizations", "common"):
                raise ApiError(
                    400, "invalid_request", f"AADSTS90002: Tenant '{parts[0]}' not found."
                )
            if form.get("grant_type") != "client_credentials":
                raise ApiError(400, "unsupported_grant_type", "AADSTS70003: unsupported grant.")
            if form.get("client_id") != self.client_id:
                raise ApiError(400, "unauthorized_client", "AADSTS700016: unknown application.")
            if "client_assertion" in form:
                jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                if form.get("client_assertion_type") != jwt_bearer or not secrets.compare_digest(
                    form["client_assertion"], self.federated_token
                ):
                    raise ApiError(
                        401, "invalid_client", "AADSTS700024: Client assertion is not valid."
                    )
                self._count("token:workload_identity")
            elif not secrets.compare_digest(form.get("client_secret", ""), self.client_secret):
                raise ApiError(401, "invalid_client", "AADSTS7000215: Invalid client secret.")
            scope = form.get("scope", "")
            resource = scope.split(" ")[0].removesuffix("/.default")
            token, _ = self.issue_token(self.service_principal_identity, resource)
            return {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime_seconds,
                "ext_expires_in": self.token_lifetime_seconds,
                "access_token": token,
            }
        return None

    def handle_managed_identity(
        self, path: str, query: dict[str, str], headers: Any
    ) -> dict[str, Any]:
        """Managed-identity endpoints on the plain-HTTP port."""
        if path.rstrip("/") == "/msi/token":
            self._count("token:app_service")
            if query.get("api-version") != "2019-08-01":
                raise ApiError(400, "invalid_request", "api-version must be 2019-08-01")
            if headers.get("X-IDENTITY-HEADER") != self.identity_header:
                raise ApiError(401, "unauthorized", "X-IDENTITY-HEADER is missing or wrong.")
            resource = query.get("resource", "")
        elif path.rstrip("/") == "/msi/azureml":
            self._count("token:azure_ml")
            if query.get("api-version") != "2017-09-01":
                raise ApiError(400, "invalid_request", "api-version must be 2017-09-01")
            if headers.get("secret") != self.identity_header:
                raise ApiError(401, "unauthorized", "secret header is missing or wrong.")
            resource = query.get("resource", "")
        elif path.rstrip("/") == "/metadata/identity/oauth2/token":
            self._count("token:imds")
            if headers.get("Metadata") != "true":
                raise ApiError(400, "invalid_request", "Required metadata header not specified")
            resource = query.get("resource", "")
        else:
            raise ApiError(404, "not_found", f"No managed-identity endpoint at {path}")
        client_id = query.get("client_id") or query.get("clientid")
        if client_id and client_id != self.managed_identity_client_id:
            raise ApiError(400, "invalid_request", f"Identity {client_id} is not assigned.")
        token, expires_on = self.issue_token(self.managed_identity, resource.rstrip("/"))
        return {
            "access_token": token,
            "expires_on": str(expires_on),
            "expires_in": str(self.token_lifetime_seconds),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": self.managed_identity_client_id,
        }

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, managed_identity_address: tuple[str, int] = ("127.0.0.1", 0)) -> KeyVaultServer:
        """Serve the vault over HTTPS on a free port of 127.0.0.1 and the managed-identity
        endpoints over plain HTTP at ``managed_identity_address`` (the IMDS test binds it to
        169.254.169.254:80 inside a network namespace of its own)."""
        vault = _QuietServer(("127.0.0.1", 0), _handler(self, tls=True))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert_file, self._key_file)
        vault.socket = context.wrap_socket(vault.socket, server_side=True)
        msi = _QuietServer(managed_identity_address, _handler(self, tls=False))
        self.port = vault.server_address[1]
        self.msi_port = msi.server_address[1]
        for server in (vault, msi):
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._own_directory:
            for child in self.directory.iterdir():
                child.unlink()
            self.directory.rmdir()

    def __enter__(self) -> KeyVaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that reject the certificate (a test does) or hang up are not server errors.
        pass


def _fault(status: int, headers: dict[str, str]) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            "Throttled",
            "Request was not processed because too many requests were received."
            " Reason: VaultRequestTypeLimitReached",
            headers,
        )
    return ApiError(
        status, "ServiceUnavailable", "The service is temporarily unavailable.", headers
    )


def _handler(server: KeyVaultServer, tls: bool) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            path = parsed.path
            while "//" in path:  # clients that omit a key version send "/keys/name//wrapkey"
                path = path.replace("//", "/")
            try:
                if not tls:
                    result = server.handle_managed_identity(path, query, self.headers)
                else:
                    token = server.handle_token(path, body) if method in ("GET", "POST") else None
                    result = (
                        token
                        if token is not None
                        else server.handle_vault(method, path, query, self.headers, body)
                    )
                self._send(200, result, {})
            except ApiError as error:
                if error.code.startswith(("invalid_", "unsupported_", "unauthorized", "not_")):
                    payload: dict[str, Any] = {
                        "error": error.code,
                        "error_description": error.message,
                    }
                else:
                    payload = {"error": {"code": error.code, "message": error.message}}
                    if error.inner:
                        payload["error"]["innererror"] = {"code": error.inner}
                self._send(error.status, payload, error.headers)

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler


if __name__ == "__main__":
    with KeyVaultServer() as running:
        running.create_key("demo")
        print(f"vault {running.url}  CA {running.ca_file}")
        print(
            f"tenant {running.tenant_id} client {running.client_id} secret {running.client_secret}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
