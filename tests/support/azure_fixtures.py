"""Pytest fixtures for the Azure protocol servers: the Key Vault server and Azurite.

Both are started once per session on free ports of 127.0.0.1 and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .keyvault_server import KeyVaultServer


@dataclass
class StaticToken:
    token: str
    expires_on: int


class ServerCredential:
    """A ``get_token(*scopes)`` credential whose tokens come from the server's token endpoint
    logic (used where a test needs to control the token, e.g. an expired one)."""

    def __init__(self, server: KeyVaultServer, expires_on: int | None = None) -> None:
        self.server = server
        self.expires_on = expires_on
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> StaticToken:
        self.calls += 1
        resource = scopes[0].removesuffix("/.default") if scopes else ""
        token, expires_on = self.server.issue_token(
            self.server.service_principal_identity, resource
        )
        if self.expires_on is not None:
            with self.server.lock:
                self.server.tokens[token].expires_on = self.expires_on
            expires_on = self.expires_on
        return StaticToken(token, expires_on)


@pytest.fixture(scope="session")
def keyvault() -> Iterator[KeyVaultServer]:
    server = KeyVaultServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kv(keyvault: KeyVaultServer) -> Iterator[KeyVaultServer]:
    """The session's server with faults cleared and counters reset around each test."""
    keyvault.reset_faults()
    keyvault.reset_counts()
    yield keyvault
    keyvault.reset_faults()


def wait_for(predicate: Any, timeout_seconds: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start in time")
        time.sleep(0.1)


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_CACHE = Path(
    os.environ.get("AMLGUARD_AZURITE_CACHE", Path.home() / ".cache" / "amlguard-azurite")
)


def azurite_command() -> list[str]:
    """The azurite-blob executable: $AZURITE_BLOB, the npm cache dir (installed on first use
    with ``npm install --prefix <cache> azurite@3``), or PATH."""
    if os.environ.get("AZURITE_BLOB"):
        return [os.environ["AZURITE_BLOB"]]
    cached = AZURITE_CACHE / "node_modules" / ".bin" / "azurite-blob"
    if not cached.exists() and shutil.which("azurite-blob") is None:
        if shutil.which("npm") is None:
            pytest.fail("Azurite is needed: install Node.js/npm (scripts/test.sh installs Azurite)")
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(AZURITE_CACHE),
                "--no-audit",
                "--no-fund",
                "azurite@3",
            ],
            check=True,
        )
    if cached.exists():
        return [str(cached)]
    found = shutil.which("azurite-blob")
    assert found is not None
    return [found]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Azurite:
    port: int
    url: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.url}/{AZURITE_ACCOUNT};"
        )

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"use_emulator": True}


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service on a free port of 127.0.0.1, data in a temporary directory."""
    data = tmp_path_factory.mktemp("azurite")
    log = tmp_path_factory.mktemp("azurite-log") / "stderr.log"
    port = free_port()
    process = subprocess.Popen(
        [
            *azurite_command(),
            "--silent",
            "--location",
            str(data),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        # A file, not a pipe: nobody drains a pipe while the tests run.
        stderr=log.open("wb"),
    )

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited: {log.read_text(errors='replace')}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, timeout_seconds=60)
        url = f"http://127.0.0.1:{port}"
        # object_store's emulator mode reads the Azurite address from this variable.
        previous = os.environ.get("AZURITE_BLOB_STORAGE_URL")
        os.environ["AZURITE_BLOB_STORAGE_URL"] = url
        yield Azurite(port, url)
        if previous is None:
            os.environ.pop("AZURITE_BLOB_STORAGE_URL", None)
        else:
            os.environ["AZURITE_BLOB_STORAGE_URL"] = previous
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
