"""Pytest fixtures for the Azure protocol servers: the Key Vault server and Azurite.

Both are started once per session on free ports of 127.0.0.1 and stopped at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
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
