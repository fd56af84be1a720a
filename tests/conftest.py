from __future__ import annotations

from pathlib import Path

import amlguard as ag
import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parent.parent

# Session fixtures of the Azure protocol servers (Key Vault server, Azurite).
pytest_plugins = ["support.azure_fixtures"]


@pytest.fixture(autouse=True)
def isolated_keyring_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real ~/.amlguard: the default keyring lives in the test's tmp dir."""
    monkeypatch.setenv("AMLGUARD_KEYRING", str(tmp_path / "default-keyring"))


@pytest.fixture
def keyring(tmp_path: Path) -> ag.LocalKeyring:
    ring = ag.LocalKeyring(tmp_path / "keyring")
    for name in ("pseudo", "tokens", "cards", "dates"):
        ring.ensure_key(name)
    return ring


@pytest.fixture(scope="session")
def people() -> pa.Table:
    return ag.datasets.synthetic_pii(2_000, seed=11)


@pytest.fixture
def repo() -> Path:
    return REPO
