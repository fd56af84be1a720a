from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import amlguard as ag
import pyarrow.parquet as pq
import pytest


def run(*args: str, env_keyring: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMLGUARD_KEYRING": str(env_keyring)}
    return subprocess.run(
        [sys.executable, "-m", "amlguard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("command", [[], ["demo"], ["mask"], ["keys"], ["keys", "create"]])
def test_help_on_every_command(command: list[str], tmp_path: Path) -> None:
    result = run(*command, "--help", env_keyring=tmp_path)
    assert result.returncode == 0
    assert "usage: amlguard" in result.stdout


def test_demo_runs_without_cloud(tmp_path: Path) -> None:
    result = run(
        "demo", "--rows", "5000", "--out", str(tmp_path / "out"), env_keyring=tmp_path / "ring"
    )
    assert result.returncode == 0, result.stderr
    assert "before:" in result.stdout and "after:" in result.stdout and "rows/s" in result.stdout
    raw = pq.read_table(tmp_path / "out" / "patients.parquet")
    masked = pq.read_table(tmp_path / "out" / "patients.masked.parquet")
    assert raw.num_rows == masked.num_rows == 5000
    assert raw.column("ssn")[0].as_py() not in result.stdout.split("after:")[1]


def test_mask_and_keys_commands(tmp_path: Path, repo: Path) -> None:
    ring = tmp_path / "ring"
    for name in ("pseudo", "tokens", "cards", "dates"):
        assert run("keys", "create", name, env_keyring=ring).stdout.strip() == f"{name}@1"
    assert run("keys", "rotate", "cards", env_keyring=ring).stdout.strip() == "cards@2"
    assert "cards\tversions 1..2" in run("keys", "list", env_keyring=ring).stdout
    source = tmp_path / "people.parquet"
    pq.write_table(ag.datasets.synthetic_pii(3000, seed=1), source)
    result = run(
        "mask",
        "--policy",
        str(repo / "examples" / "policy.yaml"),
        str(source),
        str(tmp_path / "m.parquet"),
        env_keyring=ring,
    )
    assert result.returncode == 0, result.stderr
    assert "masked 3,000 rows" in result.stdout
    assert pq.read_table(tmp_path / "m.parquet").column("name").to_pylist()[0] == "<NAME>"


def test_errors_exit_nonzero_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: {x: {op: nope}}\n")
    source = tmp_path / "in.parquet"
    pq.write_table(ag.datasets.synthetic_pii(10), source)
    result = run(
        "mask", "--policy", str(bad), str(source), str(tmp_path / "o.parquet"), env_keyring=tmp_path
    )
    assert result.returncode == 2
    assert "amlguard: error:" in result.stderr and "column 'x'" in result.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_encrypt_decrypt_inspect_rewrap_commands(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    run("keys", "create", "data", env_keyring=ring)
    source = tmp_path / "plain.bin"
    source.write_bytes(b"row data " * 1000)
    sealed = tmp_path / "plain.bin.amlg"
    result = run(
        "encrypt", str(source), str(sealed), "--key", "data", "--context", "dataset=d",
        env_keyring=ring,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "local:data@1" in result.stdout
    shown = run("inspect", str(sealed), "--json", env_keyring=ring)
    assert '"dataset": "d"' in shown.stdout and "local:data@1" in shown.stdout
    wrong = run(
        "decrypt", str(sealed), str(tmp_path / "x"), "--key", "data", "--context", "dataset=e",
        env_keyring=ring,
    )  # fmt: skip
    assert wrong.returncode == 2 and "decryption failed" in wrong.stderr
    assert not (tmp_path / "x").exists()
    run("keys", "rotate", "data", env_keyring=ring)
    rewrapped = run("rewrap", str(sealed), "--old", "data", "--new", "data", env_keyring=ring)
    assert "local:data@2" in rewrapped.stdout, rewrapped.stderr
    back = run(
        "decrypt", str(sealed), str(tmp_path / "back.bin"), "--key", "data", env_keyring=ring
    )
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
