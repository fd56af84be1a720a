"""The progress bar of ``amlguard encrypt|decrypt``: on a terminal only, off with --no-progress.

The command runs with its stderr on a real pseudo-terminal (the ``pty`` module), as in an
interactive shell, and with stderr on a pipe, as in a job log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pty = pytest.importorskip("pty")

SIZE = 3_000_000


def run_on_terminal(args: list[str], keyring: Path) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, stdout, terminal text)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "AMLGUARD_KEYRING": str(keyring)}
    process = subprocess.Popen(
        [sys.executable, "-m", "amlguard", *args],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    stdout = process.stdout.read().decode() if process.stdout else ""
    return process.wait(timeout=120), stdout, seen.decode()


def run_piped(args: list[str], keyring: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMLGUARD_KEYRING": str(keyring)}
    return subprocess.run(
        [sys.executable, "-m", "amlguard", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    ring = tmp_path / "ring"
    assert run_piped(["keys", "create", "data"], ring).returncode == 0
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(SIZE))
    return ring, plain, tmp_path / "plain.amlg", tmp_path / "back.bin"


def test_progress_bar_on_a_terminal(files: tuple[Path, Path, Path, Path]) -> None:
    ring, plain, sealed, back = files
    code, stdout, shown = run_on_terminal(
        ["encrypt", str(plain), str(sealed), "--key", "data", "--segment-size", "65536"], ring
    )
    assert code == 0, shown
    assert "encrypted 3,000,000 bytes" in stdout
    # Redrawn in place with carriage returns; the last drawing is complete, with the total.
    last = shown.rstrip("\r\n").split("\r")[-1]
    assert "[" + "#" * 30 + "] 100.0%" in last, shown
    assert "3.0 MB" in last and "MB/s" in last and "s left" in last

    code, stdout, shown = run_on_terminal(
        ["decrypt", str(sealed), str(back), "--key", "data"], ring
    )
    assert code == 0, shown
    last = shown.rstrip("\r\n").split("\r")[-1]
    assert "100.0%" in last and "3.0 MB" in last, shown
    assert back.read_bytes() == plain.read_bytes()


def test_no_progress_flag_and_non_terminals_print_no_bar(
    files: tuple[Path, Path, Path, Path],
) -> None:
    ring, plain, sealed, back = files
    code, stdout, shown = run_on_terminal(
        ["encrypt", str(plain), str(sealed), "--key", "data", "--no-progress"], ring
    )
    assert code == 0 and "encrypted" in stdout
    assert shown == ""
    code, _, shown = run_on_terminal(
        ["decrypt", str(sealed), str(back), "--key", "data", "--no-progress"], ring
    )
    assert code == 0 and shown == ""

    piped = run_piped(["decrypt", str(sealed), str(back), "--key", "data"], ring)
    assert piped.returncode == 0 and piped.stderr == ""
    piped = run_piped(["encrypt", str(plain), str(sealed), "--key", "data"], ring)
    assert piped.returncode == 0 and piped.stderr == ""


def test_a_failing_progress_callback_stops_the_work_and_leaves_no_output(tmp_path: Path) -> None:
    import amlguard as ag

    keyring = ag.LocalKeyring(tmp_path / "ring")
    keyring.ensure_key("data")
    kek = keyring.kek("data")
    plain, sealed = tmp_path / "big.bin", tmp_path / "big.amlg"
    with open(plain, "wb") as f:
        f.truncate(512 * 1024 * 1024)  # sparse: reading it takes longer than one 100 ms tick
    calls: list[tuple[int, int]] = []

    def stop(done: int, total: int) -> None:
        calls.append((done, total))
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        ag.encrypt_file(plain, sealed, kek=kek, progress=stop, threads=1)
    assert calls and calls[0][1] == 512 * 1024 * 1024 and calls[0][0] < calls[0][1]
    assert not sealed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin", "ring"]
