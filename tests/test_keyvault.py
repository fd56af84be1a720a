"""Azure Key Vault KEKs, tested against the Key Vault protocol server (tests/support).

The server is first checked against Microsoft's official Python clients (azure-keyvault-keys +
azure-identity): what the official client wraps, our Rust provider unwraps, and the other way
round. Then our provider's credentials, retries, typed errors and DEK cache are exercised
against the same server. Our client is never patched or mocked.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amlguard as ag
import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from support.azure_fixtures import ServerCredential
from support.keyvault_server import KeyVaultServer

DEK = bytes(range(32))


def official_credential(kv: KeyVaultServer) -> ClientSecretCredential:
    return ClientSecretCredential(
        kv.tenant_id,
        kv.client_id,
        kv.client_secret,
        authority=kv.authority,
        disable_instance_discovery=True,
        connection_verify=str(kv.ca_file),
    )


def official_options(kv: KeyVaultServer) -> dict[str, Any]:
    # The challenge names resource https://vault.azure.net, which a 127.0.0.1 vault cannot
    # match, so the official client's resource check is switched off, as ours is for loopback.
    return {"verify_challenge_resource": False, "connection_verify": str(kv.ca_file)}


@pytest.fixture(scope="module")
def official(keyvault: KeyVaultServer) -> Iterator[tuple[ClientSecretCredential, KeyClient]]:
    credential = official_credential(keyvault)
    client = KeyClient(keyvault.url, credential, **official_options(keyvault))
    yield credential, client
    client.close()
    credential.close()


def vault(kv: KeyVaultServer, **kwargs: Any) -> ag.AzureKeyVault:
    return ag.AzureKeyVault(kv.url, ServerCredential(kv), ca_bundle=kv.ca_file, **kwargs)


@pytest.mark.parametrize(
    "algorithm", [KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa_oaep], ids=str
)
def test_official_client_and_ours_unwrap_each_others_rsa_wraps(
    kv: KeyVaultServer, official: tuple[ClientSecretCredential, KeyClient], algorithm: Any
) -> None:
    credential, client = official
    key = client.create_rsa_key(f"faithful-rsa-{algorithm.value.lower()}", size=2048)
    assert key.properties.version and key.id.endswith(key.properties.version)
    crypto = CryptographyClient(key, credential, **official_options(kv))

    ours = vault(kv).kek(key.name, algorithm=algorithm.value)
    assert ours.key_id == key.id
    assert ours.algorithm == algorithm.value

    # Official wraps (locally with the public key the server published) -> we unwrap remotely.
    wrapped_by_them = crypto.wrap_key(algorithm, DEK).encrypted_key
    assert ours.unwrap(wrapped_by_them) == DEK
    # We wrap through the server's wrapkey -> the official client unwraps through unwrapkey.
    wrapped_by_us = ours.wrap(DEK)
    assert wrapped_by_us != wrapped_by_them  # OAEP is randomised
    assert crypto.unwrap_key(algorithm, wrapped_by_us).key == DEK
    assert kv.calls["wrapkey"] == 1 and kv.calls["unwrapkey"] == 2


def test_official_client_and_ours_agree_on_a256kw_with_an_oct_hsm_key(
    kv: KeyVaultServer, official: tuple[ClientSecretCredential, KeyClient]
) -> None:
    credential, client = official
    key = client.create_oct_key("faithful-hsm", size=256, hardware_protected=True)
    assert key.key_type == "oct-HSM"
    ours = vault(kv).kek(key.name)
    assert ours.algorithm == "A256KW"
    # Without keys/get the official client cannot fetch the key and does every operation
    # remotely (with the key it would "wrap" locally under a random key, since an oct-HSM
    # bundle carries no key bytes).
    kv.deny(kv.service_principal_identity, "get")
    crypto = CryptographyClient(key.id, credential, **official_options(kv))
    wrapped_by_them = crypto.wrap_key(KeyWrapAlgorithm.aes_256, DEK).encrypted_key
    assert len(wrapped_by_them) == 40  # RFC 3394: 32 bytes + 8
    assert ours.unwrap(wrapped_by_them) == DEK
    assert crypto.unwrap_key(KeyWrapAlgorithm.aes_256, ours.wrap(DEK)).key == DEK
    assert kv.calls["wrapkey"] == 2 and kv.calls["unwrapkey"] == 2


def test_bearer_challenge_and_api_version_checks(kv: KeyVaultServer) -> None:
    context = ssl.create_default_context(cafile=str(kv.ca_file))
    request = urllib.request.Request(
        f"{kv.url}/keys/any/wrapkey?api-version=7.6", data=b"{}", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=context)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{kv.authority}/{kv.tenant_id}", resource="https://vault.azure.net"'
    )
    token, _ = kv.issue_token(kv.service_principal_identity)
    request = urllib.request.Request(
        f"{kv.url}/keys/any?api-version=1999-01-01", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=context)
    assert caught.value.code == 400
    assert "is not recognized" in json.loads(caught.value.read())["error"]["message"]

    kv.create_key("api-version-check")
    with pytest.raises(ag.KeyVaultError, match=r"HTTP 400.*not recognized"):
        vault(kv, api_version="1999-01-01").kek("api-version-check")
    vault(kv).kek("api-version-check")
    assert set(kv.api_versions) == {"2025-07-01"}  # the official Rust SDK's default


def test_envelope_records_the_version_and_survives_rotation(kv: KeyVaultServer) -> None:
    kv.create_key("rotating")
    provider = vault(kv)
    v1 = provider.kek("rotating")
    sealed = ag.encrypt_bytes(b"patients", kek=v1, context={"dataset": "p"})
    assert v1.key_id.encode() in sealed  # the full key id with version is in the header
    kv.create_key("rotating")  # a new version becomes the latest
    v2 = provider.kek("rotating")
    assert v2.version != v1.version
    provider.clear_cache()
    kv.reset_counts()
    assert ag.decrypt_bytes(sealed, kek=v2, context={"dataset": "p"}) == b"patients"
    assert kv.calls["unwrapkey"] == 1
    with pytest.raises(ag.DecryptionError):
        ag.decrypt_bytes(sealed, kek=v2, context={"dataset": "other"})
    # A KEK pinned to an explicit version and algorithm needs no keys/get call.
    kv.reset_counts()
    pinned = provider.kek("rotating", version=v1.version, algorithm="RSA-OAEP-256")
    assert pinned.key_id == v1.key_id and kv.calls["get"] == 0


def test_credentials_environment_and_managed_identities(
    kv: KeyVaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kv.create_key("cred-check")
    for name in (
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AZURE_FEDERATED_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)

    def round_trip() -> str:
        provider = ag.AzureKeyVault(kv.url, ca_bundle=kv.ca_file)
        kek = provider.kek("cred-check")
        assert kek.unwrap(kek.wrap(DEK)) == DEK
        return provider.identity

    # 1. Environment service principal (client-credential flow at the local authority).
    monkeypatch.setenv("AZURE_TENANT_ID", kv.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", kv.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", kv.client_secret)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", kv.authority)
    assert "environment service principal" in round_trip()
    assert kv.calls["token:client_credentials"] == 1
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("AZURE_CLIENT_ID")

    # 2. Workload identity: a federated token file exchanged at the local authority.
    token_file = tmp_path / "federated-token"
    token_file.write_text(kv.federated_token)
    monkeypatch.setenv("AZURE_TENANT_ID", kv.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", kv.client_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    assert "workload identity" in round_trip()
    assert kv.calls["token:workload_identity"] == 1
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name)

    # 3. App Service / AML online endpoint style managed identity.
    monkeypatch.setenv("IDENTITY_ENDPOINT", kv.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", kv.identity_header)
    assert "IDENTITY_ENDPOINT" in round_trip()
    assert kv.calls["token:app_service"] == 1
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")

    # 4. Azure ML compute instance style managed identity (user-assigned).
    monkeypatch.setenv("MSI_ENDPOINT", kv.msi_endpoint)
    monkeypatch.setenv("MSI_SECRET", kv.identity_header)
    monkeypatch.setenv("AZURE_CLIENT_ID", kv.managed_identity_client_id)
    assert "Azure ML compute managed identity (user-assigned" in round_trip()
    assert kv.calls["token:azure_ml"] == 1


CREDENTIAL_IN_NETNS = Path(__file__).parent / "support" / "credential_in_netns.py"


def run_in_own_network_namespace(mode: str) -> dict[str, Any]:
    """Run support/credential_in_netns.py in a fresh network namespace (needs root, as on the
    project's machines and CI) and return what it printed."""
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    started = time.monotonic()
    result = subprocess.run(
        ["unshare", "--net", sys.executable, str(CREDENTIAL_IN_NETNS), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    report["elapsed_seconds"] = time.monotonic() - started
    return report


def test_managed_identity_through_imds_at_its_fixed_address() -> None:
    # The official credential calls http://169.254.169.254 (not configurable); in a network
    # namespace of its own that address is ours, as it is the platform's on an Azure VM.
    report = run_in_own_network_namespace("imds")
    assert report["round_trip_ok"] is True
    assert report["identity"] == "managed identity via IMDS (system-assigned)"
    assert report["calls"]["token:imds"] == 1
    assert report["calls"]["wrapkey"] == 1 and report["calls"]["unwrapkey"] == 1


def test_azure_cli_login_is_used_when_no_managed_identity_answers() -> None:
    # No environment credential and no IMDS: the chain must give up on IMDS at once (a probe,
    # not the official credential's 72 s of retries) and take the Azure CLI's token.
    report = run_in_own_network_namespace("cli")
    assert report["round_trip_ok"] is True
    assert report["identity"] == "Azure CLI login"
    assert report["cli_arguments"] == [
        ["account", "get-access-token", "-o", "json", "--scope", "https://vault.azure.net/.default"]
    ]
    assert "token:imds" not in report["calls"]
    assert report["elapsed_seconds"] < 30


def test_python_credential_is_called_once_and_tokens_are_cached(kv: KeyVaultServer) -> None:
    kv.create_key("token-cache")
    credential = ServerCredential(kv)
    kek = ag.AzureKeyVault(kv.url, credential, ca_bundle=kv.ca_file, cache_ttl_seconds=0).kek(
        "token-cache"
    )
    wrapped = kek.wrap(DEK)
    for _ in range(20):
        assert kek.unwrap(wrapped) == DEK
    assert credential.calls == 1
    assert kv.calls["unwrapkey"] == 20


def test_retries_honour_retry_after_and_503(kv: KeyVaultServer) -> None:
    kv.create_key("flaky")
    provider = vault(kv, cache_ttl_seconds=0)
    kek = provider.kek("flaky")
    wrapped = kek.wrap(DEK)
    kv.throttle_next(2, retry_after_seconds=1)
    kv.unavailable_next(1)
    started = time.monotonic()
    assert kek.unwrap(wrapped) == DEK
    elapsed = time.monotonic() - started
    retries, waited = provider.retry_stats()
    assert retries == 3 and kv.calls["fault:429"] == 2 and kv.calls["fault:503"] == 1
    assert 2.0 <= waited < 4.0 and elapsed < 6.0  # two Retry-After: 1 waits + a short backoff


def test_slow_responses_time_out_and_are_retried(kv: KeyVaultServer) -> None:
    kv.create_key("slow")
    provider = vault(kv, cache_ttl_seconds=0, timeout_seconds=0.5, max_total_seconds=3)
    kek = provider.kek("slow")
    wrapped = kek.wrap(DEK)
    kv.delay_seconds = 1.0
    kv.reset_counts()
    with pytest.raises(ag.KeyVaultError, match="cannot reach the vault"):
        kek.unwrap(wrapped)
    assert kv.calls["unwrapkey"] >= 2  # the timed-out attempt was retried
    kv.delay_seconds = 0.0
    assert kek.unwrap(wrapped) == DEK


def test_permission_and_missing_key_errors_are_typed_and_not_retried(kv: KeyVaultServer) -> None:
    kv.create_key("guarded")
    provider = vault(kv, cache_ttl_seconds=0)
    kek = provider.kek("guarded")
    wrapped = kek.wrap(DEK)
    kv.deny(kv.service_principal_identity, "unwrapKey")
    kv.reset_counts()
    with pytest.raises(ag.KeyVaultPermissionError) as caught:
        kek.unwrap(wrapped)
    message = str(caught.value)
    assert "keys/unwrapKey" in message and kek.key_id in message
    assert "Python credential ServerCredential" in message
    assert kv.service_principal_identity in message  # Key Vault's own words name the identity
    assert isinstance(caught.value, PermissionError)
    assert kv.calls["unwrapkey"] == 1 and provider.retry_stats()[0] == 0

    with pytest.raises(ag.KeyNotFoundError, match="no-such-key"):
        provider.kek("no-such-key")
    with pytest.raises(ag.KeyNotFoundError):
        provider.kek("guarded", version="0123456789abcdef")
    assert provider.retry_stats()[0] == 0


def test_a_429_storm_all_requests_succeed_within_a_bounded_time(kv: KeyVaultServer) -> None:
    kv.create_key("storm")
    provider = vault(kv, cache_ttl_seconds=0, max_retries=20, max_retry_delay_seconds=4)
    kek = provider.kek("storm")
    wrapped = [kek.wrap(DEK) for _ in range(8)]
    requests, per_second, threads = 60, 10, 8
    kv.set_rate_limit(per_second, 1.0)
    kv.reset_counts()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda i: kek.unwrap(wrapped[i % 8]), range(requests)))
    elapsed = time.monotonic() - started
    kv.set_rate_limit(None)
    retries, waited = provider.retry_stats()
    assert results == [DEK] * requests
    floor = requests / per_second - 1
    assert floor <= elapsed < 3 * floor, elapsed
    print(
        f"\n429 storm: {requests} unwraps from {threads} threads against {per_second} req/s:"
        f" all succeeded in {elapsed:.1f}s (ideal {floor + 1:.0f}s), {kv.calls['fault:429']}"
        f" 429 answers, {retries} retries, {waited:.1f}s waited in total across threads"
    )


def test_key_vault_calls_with_and_without_the_cache(kv: KeyVaultServer) -> None:
    kv.create_key("counting")
    figures = {}
    for cache_ttl in (300.0, 0.0):
        kek = vault(kv, cache_ttl_seconds=cache_ttl).kek("counting")
        shared = ag.encrypt_bytes(b"row group", kek=kek, context={"d": "x"})
        distinct = [
            ag.encrypt_bytes(b"row group %d" % i, kek=kek, context={"d": "x"}) for i in range(100)
        ]
        kv.reset_counts()
        for _ in range(100):
            assert ag.decrypt_bytes(shared, kek=kek, context={"d": "x"}) == b"row group"
        shared_calls = kv.calls["unwrapkey"]
        kv.reset_counts()
        for i, blob in enumerate(distinct):
            assert ag.decrypt_bytes(blob, kek=kek, context={"d": "x"}) == b"row group %d" % i
        figures[cache_ttl > 0] = (shared_calls, kv.calls["unwrapkey"])
    assert figures[True] == (1, 100)
    assert figures[False] == (100, 100)
    print(
        "\nKey Vault unwrapkey calls to decrypt 100 containers:"
        f" sharing one DEK: {figures[True][0]} with the cache, {figures[False][0]} without;"
        f" 100 distinct DEKs: {figures[True][1]} with the cache, {figures[False][1]} without"
    )


def test_bad_key_vault_input_gets_typed_errors(kv: KeyVaultServer) -> None:
    rsa_id = kv.create_key("typed-rsa")
    kv.create_key("typed-hsm", kty="oct-HSM")
    kv._create("sign-only", "RSA", 2048, ["sign", "verify"])
    provider = vault(kv)
    with pytest.raises(ag.KeyVaultError, match="A256KW needs an oct-HSM"):
        provider.kek("typed-rsa", algorithm="A256KW")
    with pytest.raises(ag.KeyVaultError, match="RSA-OAEP-256 needs an RSA key"):
        provider.kek("typed-hsm", algorithm="RSA-OAEP-256")
    with pytest.raises(ag.KeyVaultError, match="do not include wrapKey"):
        provider.kek("sign-only")
    with pytest.raises(ag.InvalidArgumentError, match="not supported for Azure Key Vault"):
        provider.kek("typed-rsa", algorithm="AES-256-KWP")
    with pytest.raises(ag.InvalidArgumentError, match="key name"):
        provider.kek("bad/name")
    # A wrapped key that does not decrypt is the same opaque failure as a local KEK's.
    kek = provider.kek("typed-rsa")
    assert kek.key_id == rsa_id
    with pytest.raises(ag.DecryptionError):
        kek.unwrap(b"\x00" * 256)
    # Wrong vault URLs.
    with pytest.raises(ag.InvalidArgumentError, match="https"):
        ag.AzureKeyVault("http://contoso.vault.azure.net")
    with pytest.raises(ag.InvalidArgumentError, match="path"):
        ag.AzureKeyVault("https://contoso.vault.azure.net/keys/x")
    unreachable = ag.AzureKeyVault(
        "https://127.0.0.1:1", ServerCredential(kv), max_retries=1, max_total_seconds=2
    )
    with pytest.raises(ag.KeyVaultError, match="cannot reach the vault"):
        unreachable.kek("typed-rsa")
    # A vault whose certificate is not trusted.
    with pytest.raises(ag.KeyVaultError, match="cannot reach the vault"):
        ag.AzureKeyVault(kv.url, ServerCredential(kv), max_retries=0).kek("typed-rsa")


def test_expired_token_is_an_authentication_error(kv: KeyVaultServer) -> None:
    kv.create_key("expiry")
    expired = ServerCredential(kv, expires_on=int(time.time()) - 60)
    provider = ag.AzureKeyVault(kv.url, expired, ca_bundle=kv.ca_file)
    with pytest.raises(ag.KeyVaultAuthenticationError, match="TokenExpired") as caught:
        provider.kek("expiry")
    assert "Python credential ServerCredential" in str(caught.value)
    assert provider.retry_stats()[0] == 0
    # A credential that fails is a credential error, not a vault error.

    class Broken:
        def get_token(self, *scopes: str) -> Any:
            raise RuntimeError("no login")

    with pytest.raises(ag.AzureCredentialError, match="no login"):
        ag.AzureKeyVault(kv.url, Broken(), ca_bundle=kv.ca_file).kek("expiry")
    with pytest.raises(TypeError):
        ag.AzureKeyVault(kv.url, object())


def test_reprs_and_errors_hold_no_secrets(kv: KeyVaultServer) -> None:
    kv.create_key("secretless")
    provider = vault(kv)
    kek = provider.kek("secretless")
    wrapped = kek.wrap(DEK)
    shown = repr(provider) + repr(kek) + provider.identity
    assert kv.client_secret not in shown and DEK.hex() not in shown
    assert wrapped.hex() not in shown
    assert (
        os.environ.get("AZURE_CLIENT_SECRET") is None
        or os.environ["AZURE_CLIENT_SECRET"] not in shown
    )
