"""Audit records from encrypt, decrypt, open, rewrap and key rotation: per call, via
$AMLGUARD_AUDIT_LOG and from the CLI; failures recorded; no values or key bytes in the log."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import amlguard as ag
import pytest

PLAINTEXT = b"patient 4711 has diagnosis Z99.3; ssn 078-05-1120\n" * 2000
SECRET_MARKERS = (b"078-05-1120", b"Z99.3", b"patient 4711")


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def events(path: Path) -> list[dict[str, Any]]:
    return [r for r in records(path) if r["kind"] == "event"]


def key_materials(*keyrings: Path) -> list[bytes]:
    found = [p.read_bytes() for ring in keyrings for p in ring.rglob("*.key")]
    assert found, "no key files found: the leak check would check nothing"
    return found


def assert_no_secrets(log_path: Path, keyring_dirs: list[Path]) -> None:
    """Neither plaintext nor any key's bytes (raw, hex or base64) appear in the log."""
    raw = log_path.read_bytes()
    for marker in SECRET_MARKERS:
        assert marker not in raw
    for key in key_materials(*keyring_dirs):
        assert key not in raw
        assert key.hex().encode() not in raw and key.hex().upper().encode() not in raw
        assert base64.b64encode(key).rstrip(b"=") not in raw
        assert base64.urlsafe_b64encode(key).rstrip(b"=") not in raw


@pytest.fixture
def log(tmp_path: Path, keyring: ag.LocalKeyring) -> ag.AuditLog:
    return ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring, checkpoint_every=4)


def test_file_encrypt_decrypt_rewrap_and_open_are_recorded_without_secrets(
    tmp_path: Path, keyring: ag.LocalKeyring, log: ag.AuditLog
) -> None:
    source, sealed, opened = tmp_path / "notes.txt", tmp_path / "notes.amlg", tmp_path / "out.txt"
    source.write_bytes(PLAINTEXT)
    keyring.ensure_key("data")
    keyring.ensure_key("next")
    kek, next_kek = keyring.kek("data"), keyring.kek("next")

    report = ag.encrypt_file(source, sealed, kek=kek, context={"dataset": "notes"}, audit=log)
    ag.decrypt_file(sealed, opened, keks=[kek], audit=log)
    with ag.open_encrypted(sealed, kek=kek, audit=log) as handle:
        assert handle.read(7) == PLAINTEXT[:7]
    ag.rewrap(sealed, old=kek, new=next_kek, audit=log)

    encrypt, decrypt, open_, rewrap = events(tmp_path / "audit.jsonl")
    assert encrypt["action"] == "encrypt" and encrypt["outcome"] == "success"
    assert encrypt["key_ids"] == report.key_ids == [kek.key_id]
    assert encrypt["bytes"] == len(PLAINTEXT)
    assert encrypt["details"]["container_bytes"] == sealed.stat().st_size
    assert encrypt["target"]["paths"] == [str(source), str(sealed)]
    assert decrypt["action"] == "decrypt" and decrypt["bytes"] == len(PLAINTEXT)
    assert decrypt["key_ids"] == [kek.key_id]
    assert open_["action"] == "open_encrypted" and open_["bytes"] == len(PLAINTEXT)
    assert rewrap["action"] == "rewrap"
    assert rewrap["details"]["old_key_ids"] == [kek.key_id]
    assert rewrap["details"]["new_key_ids"] == [next_kek.key_id]
    assert set(rewrap["key_ids"]) == {kek.key_id, next_kek.key_id}
    assert log.verify().ok
    assert_no_secrets(tmp_path / "audit.jsonl", [tmp_path / "keyring"])


def test_bytes_round_trip_is_recorded(
    tmp_path: Path, keyring: ag.LocalKeyring, log: ag.AuditLog
) -> None:
    kek = keyring.kek("pseudo")
    sealed = ag.encrypt_bytes(PLAINTEXT, kek=kek, audit=log)
    assert ag.decrypt_bytes(sealed, kek=kek, audit=log) == PLAINTEXT
    encrypt, decrypt = events(tmp_path / "audit.jsonl")
    assert (encrypt["action"], decrypt["action"]) == ("encrypt_bytes", "decrypt_bytes")
    assert encrypt["bytes"] == decrypt["bytes"] == len(PLAINTEXT)
    assert encrypt["details"]["container_bytes"] == len(sealed)
    assert encrypt["key_ids"] == decrypt["key_ids"] == [kek.key_id]
    assert_no_secrets(tmp_path / "audit.jsonl", [tmp_path / "keyring"])


def test_failures_are_recorded_and_the_error_still_raised(
    tmp_path: Path, keyring: ag.LocalKeyring, log: ag.AuditLog
) -> None:
    source, sealed = tmp_path / "notes.txt", tmp_path / "notes.amlg"
    source.write_bytes(PLAINTEXT)
    right, wrong = keyring.kek("pseudo"), keyring.kek("tokens")
    ag.encrypt_file(source, sealed, kek=right, audit=log)
    with pytest.raises(ag.AmlguardError) as raised:
        ag.decrypt_file(sealed, tmp_path / "out.txt", kek=wrong, audit=log)
    assert not (tmp_path / "out.txt").exists()
    with pytest.raises(FileNotFoundError):
        ag.encrypt_file(tmp_path / "missing.txt", tmp_path / "x.amlg", kek=right, audit=log)
    tampered = bytearray(sealed.read_bytes())
    tampered[-40] ^= 1
    with pytest.raises(ag.DecryptionError):
        ag.decrypt_bytes(bytes(tampered), kek=right, audit=log)

    _, decrypt, encrypt, decrypt_bytes = events(tmp_path / "audit.jsonl")
    assert decrypt["action"] == "decrypt" and decrypt["outcome"] == "failure"
    assert decrypt["key_ids"] == [wrong.key_id]
    assert type(raised.value).__name__ in decrypt["error"]
    assert encrypt["outcome"] == "failure" and "missing.txt" in encrypt["error"]
    assert decrypt_bytes["outcome"] == "failure" and "DecryptionError" in decrypt_bytes["error"]
    assert log.verify().ok
    assert_no_secrets(tmp_path / "audit.jsonl", [tmp_path / "keyring"])


def test_key_rotation_is_recorded_with_previous_and_new_ids(
    tmp_path: Path, keyring: ag.LocalKeyring, log: ag.AuditLog
) -> None:
    new_id = keyring.rotate("pseudo", audit=log)
    assert new_id == "pseudo@2"
    with pytest.raises(ag.AmlguardError):
        keyring.rotate("not a valid/name", audit=log)
    rotation, failed = events(tmp_path / "audit.jsonl")
    assert rotation["action"] == "rotate_key" and rotation["outcome"] == "success"
    assert rotation["details"]["previous_key_id"] == "pseudo@1"
    assert rotation["details"]["new_key_id"] == "pseudo@2"
    assert rotation["key_ids"] == ["pseudo@1", "pseudo@2"]
    assert failed["outcome"] == "failure" and failed["error"]
    assert_no_secrets(tmp_path / "audit.jsonl", [tmp_path / "keyring"])


def test_a_path_or_the_environment_names_the_log(
    tmp_path: Path, keyring: ag.LocalKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    kek = keyring.kek("pseudo")
    by_path = tmp_path / "by-path.jsonl"
    ag.encrypt_bytes(b"x" * 100, kek=kek, audit=by_path)
    assert [e["action"] for e in events(by_path)] == ["encrypt_bytes"]

    from_env = tmp_path / "from-env.jsonl"
    monkeypatch.setenv("AMLGUARD_AUDIT_LOG", str(from_env))
    sealed = ag.encrypt_bytes(b"y" * 100, kek=kek)
    ag.decrypt_bytes(sealed, kek=kek)
    keyring.rotate("tokens")
    assert [e["action"] for e in events(from_env)] == [
        "encrypt_bytes",
        "decrypt_bytes",
        "rotate_key",
    ]
    assert ag.AuditLog(from_env).verify().ok
    monkeypatch.delenv("AMLGUARD_AUDIT_LOG")
    ag.encrypt_bytes(b"z", kek=kek)
    assert len(events(from_env)) == 3  # no log configured: nothing written anywhere


def checkpoints(path: Path) -> list[dict[str, Any]]:
    return [r["details"] for r in records(path) if r["kind"] == "checkpoint"]


def test_a_log_signs_with_its_own_keyring_whatever_keys_the_operation_uses(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    audit_ring = ag.LocalKeyring(tmp_path / "audit-ring")
    path = tmp_path / "audit.jsonl"
    log = ag.AuditLog(path, keyring=audit_ring, signing_key="auditor", checkpoint_every=2)
    source, sealed = tmp_path / "notes.txt", tmp_path / "notes.amlg"
    source.write_bytes(PLAINTEXT)
    kek, next_kek = keyring.kek("pseudo"), keyring.kek("tokens")
    ag.encrypt_file(source, sealed, kek=kek, audit=log)
    ag.decrypt_file(sealed, tmp_path / "out.txt", kek=kek, audit=log)
    with ag.open_encrypted(sealed, kek=kek, audit=log):
        pass
    ag.rewrap(sealed, old=kek, new=next_kek, audit=log)
    ag.decrypt_bytes(ag.encrypt_bytes(b"payload", kek=kek, audit=log), kek=kek, audit=log)

    signed = checkpoints(path)
    assert len(signed) == 3 and {c["signing_key"] for c in signed} == {"auditor@1"}
    assert {c["public_key"] for c in signed} == {log.public_key}
    report = log.verify()
    assert report.ok and report.checkpoints_checked == 3 and report.public_key == log.public_key
    assert ag.verify_audit_log(path, public_key=log.public_key).ok
    # Neither the data keyring nor the default keyring was asked for an audit key.
    assert "auditor" not in keyring and "audit" not in keyring
    assert not (tmp_path / "default-keyring").exists()
    # Reopened by path (default keyring), the log is refused before anything runs: its key,
    # auditor@1, is not there. Nothing is encrypted and nothing is recorded.
    count = len(records(path))
    with pytest.raises(ag.KeyNotFoundError, match="auditor"):
        ag.encrypt_file(source, tmp_path / "never.amlg", kek=kek, audit=path)
    assert not (tmp_path / "never.amlg").exists()
    assert len(records(path)) == count and log.verify().ok


def test_a_log_whose_signing_key_is_missing_refuses_every_operation(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    audit_ring = ag.LocalKeyring(tmp_path / "audit-ring")
    path = tmp_path / "audit.jsonl"
    log = ag.AuditLog(path, keyring=audit_ring, checkpoint_every=2)
    kek = keyring.kek("pseudo")
    ag.encrypt_bytes(b"one", kek=kek, audit=log)
    ag.encrypt_bytes(b"two", kek=kek, audit=log)
    assert checkpoints(path)  # signed by audit@1, which is now removed
    for key_file in Path(audit_ring.path).rglob("*.key"):
        key_file.unlink()
    count = len(records(path))
    # Found at once, not at the next checkpoint: no record lands that could never be signed.
    with pytest.raises(ag.KeyNotFoundError):
        log.append("export")
    with pytest.raises(ag.KeyNotFoundError):
        ag.encrypt_bytes(b"three", kek=kek, audit=log)
    with pytest.raises(ag.KeyNotFoundError):
        keyring.rotate("tokens", audit=log)
    assert keyring.versions("tokens") == [1]  # the rotation did not run
    with pytest.raises(ag.KeyNotFoundError):
        ag.forget("subject-1", [], keyring=keyring, audit=log)
    assert len(records(path)) == count
    # A keyring holding another key of that name is a different typed error.
    audit_ring.ensure_key("audit")
    with pytest.raises(ag.AuditLogError, match="not the key that signed"):
        ag.encrypt_bytes(b"four", kek=kek, audit=log)
    assert len(records(path)) == count
    assert ag.verify_audit_log(path).ok  # the log itself is intact, checkable without a key


def test_a_path_named_log_is_signed_by_the_default_keyring_for_every_operation(
    tmp_path: Path, keyring: ag.LocalKeyring, people: Any
) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "audit.jsonl"
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(people, data / "part-0.parquet")
    policy = ag.Policy.from_dict(
        {"version": 1, "columns": {"person_id": {"op": "hash", "key": "pseudo"}}}
    )
    ag.mask_file(data / "part-0.parquet", tmp_path / "masked.parquet", policy, keyring=keyring,
                 audit=path)  # fmt: skip
    ag.encrypt_bytes(b"payload", kek=keyring.kek("pseudo"), audit=path)
    keyring.rotate("tokens", audit=path)
    ag.forget([people.column("person_id")[0].as_py()],
              [ag.Dataset(data, id_column="person_id")], keyring=keyring, audit=path)  # fmt: skip
    actions = [e["action"] for e in events(path)]
    assert actions == ["mask", "encrypt_bytes", "rotate_key", "forget"]
    default = ag.LocalKeyring()
    assert "audit" in default and "audit" not in keyring
    signed = checkpoints(path)
    assert signed and {c["signing_key"] for c in signed} == {"audit@1"}
    assert ag.AuditLog(path).verify().ok
    assert ag.AuditLog(path).public_key == signed[0]["public_key"]


def cli(*args: str, keyring_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AMLGUARD_AUDIT_LOG"}
    env["AMLGUARD_KEYRING"] = str(keyring_dir)
    return subprocess.run(
        [sys.executable, "-m", "amlguard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_audit_flag_on_encrypt_decrypt_rewrap_and_rotate(tmp_path: Path) -> None:
    ring, log_path = tmp_path / "ring", tmp_path / "cli-audit.jsonl"
    source = tmp_path / "notes.txt"
    source.write_bytes(PLAINTEXT)
    sealed, out = tmp_path / "notes.amlg", tmp_path / "out.txt"
    steps = [
        ["keys", "create", "data"],
        ["keys", "rotate", "data", "--audit", str(log_path)],
        ["encrypt", str(source), str(sealed), "--key", "data", "--audit", str(log_path)],
        ["keys", "create", "next"],
        ["rewrap", str(sealed), "--old", "data", "--new", "next", "--audit", str(log_path)],
        ["decrypt", str(sealed), str(out), "--key", "next", "--audit", str(log_path)],
    ]
    for step in steps:
        result = cli(*step, keyring_dir=ring)
        assert result.returncode == 0, (step, result.stderr)
    assert out.read_bytes() == PLAINTEXT
    failed = cli("decrypt", str(sealed), str(out), "--key", "data", "--audit", str(log_path),
                 keyring_dir=ring)  # fmt: skip
    assert failed.returncode != 0
    actions = [(e["action"], e["outcome"]) for e in events(log_path)]
    assert actions == [
        ("rotate_key", "success"),
        ("encrypt", "success"),
        ("rewrap", "success"),
        ("decrypt", "success"),
        ("decrypt", "failure"),
    ]
    verified = cli("audit", "verify", str(log_path), keyring_dir=ring)
    assert verified.returncode == 0, verified.stdout
    assert_no_secrets(log_path, [ring])
