from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import amlguard as ag


def test_created_on_first_use_with_private_permissions(tmp_path: Path) -> None:
    root = tmp_path / "nested" / "ring"
    ring = ag.LocalKeyring(root)
    assert ring.path == str(root) and root.is_dir()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert ring.ensure_key("pseudo") == "pseudo@1"
    assert ring.ensure_key("pseudo") == "pseudo@1"
    key_dir = root / "pseudo"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    for key_file in key_dir.iterdir():
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_versions_list_contains_and_pickle(tmp_path: Path) -> None:
    ring = ag.LocalKeyring(tmp_path)
    ring.ensure_key("b")
    ring.ensure_key("a")
    assert ring.rotate("a") == "a@2"
    assert ring.list_keys() == ["a", "b"]
    assert ring.versions("a") == [1, 2]
    assert ring.versions("zzz") == []
    assert "a" in ring and "zzz" not in ring
    clone = pickle.loads(pickle.dumps(ring))
    assert clone.path == ring.path and clone.list_keys() == ["a", "b"]
    assert repr(ring) == f"LocalKeyring(path={str(tmp_path)!r}, keys=2)"


def test_default_path_from_environment(tmp_path: Path) -> None:
    # conftest points AMLGUARD_KEYRING at a per-test directory.
    ring = ag.LocalKeyring()
    assert ring.path == os.environ["AMLGUARD_KEYRING"]
    ring.ensure_key("x")
    assert Path(os.environ["AMLGUARD_KEYRING"], "x").is_dir()
