from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import amlguard as ag
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

POLICY = {
    "version": 1,
    "columns": {
        "person_id": {"op": "hash", "key": "pseudo"},
        "email": {"op": "mask", "keep_first": 1},
        "ssn": {"op": "tokenize", "key": "tokens"},
        "name": {"op": "redact"},
    },
}


def make_log(tmp_path: Path, keyring: ag.LocalKeyring, every: int = 3) -> ag.AuditLog:
    return ag.AuditLog(
        tmp_path / "audit.jsonl",
        keyring=keyring,
        witness=tmp_path / "witness.jsonl",
        checkpoint_every=every,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_records_carry_the_cadf_fields_and_a_clean_log_verifies(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    log = make_log(tmp_path, keyring)
    first = log.append("export", dataset="patients", rows=12, bytes=3400, key_ids=["pseudo@1"])
    assert first == 0
    record = json.loads(lines(tmp_path / "audit.jsonl")[0])
    for field in ("time", "actor", "action", "target", "outcome", "observer"):
        assert field in record
    assert record["actor"]["host"] and record["actor"]["pid"] == os.getpid()
    assert record["observer"]["name"] == "amlguard"
    assert record["prev_hash"] == "0" * 64 and len(record["record_hash"]) == 64
    for i in range(5):
        log.append("export", dataset=f"d{i}")
    report = log.verify()
    assert report and report.ok and report.first_bad_record is None
    assert report.records_checked == len(log) == 8  # 6 events + 2 checkpoints
    assert report.witness_checkpoints_checked == 2
    assert "ok=True" in repr(report)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("modify", 4),
        ("delete", 4),
        ("insert", 4),
        ("reorder", 4),
        ("truncate", 6),
    ],
)
def test_every_kind_of_tampering_is_found_and_located(
    tmp_path: Path, keyring: ag.LocalKeyring, tamper: str, expected: int
) -> None:
    log = make_log(tmp_path, keyring)
    for i in range(8):
        log.append("export", dataset=f"dataset-{i}", rows=i)
    path = tmp_path / "audit.jsonl"
    records = lines(path)
    assert len(records) == 10  # checkpoints at 3 and 7
    if tamper == "modify":
        records[4] = records[4].replace('"rows":3', '"rows":30')
    elif tamper == "delete":
        del records[4]
    elif tamper == "insert":
        records.insert(4, records[1])
    elif tamper == "reorder":
        records[4], records[5] = records[5], records[4]
    else:
        records = records[:6]
    path.write_text("\n".join(records) + "\n")
    report = ag.AuditLog(path, keyring=keyring, witness=tmp_path / "witness.jsonl").verify()
    assert not report and report.first_bad_record == expected, repr(report)
    assert report.records_checked == expected

    # The CLI prints the report and exits non-zero.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "amlguard",
            "audit",
            "verify",
            str(path),
            "--witness",
            str(tmp_path / "witness.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"first bad record:       {expected}" in result.stdout


def test_cli_exits_zero_on_a_good_log(tmp_path: Path, keyring: ag.LocalKeyring) -> None:
    log = make_log(tmp_path, keyring)
    log.append("export")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "amlguard",
            "audit",
            "verify",
            log.path,
            "--public-key",
            log.public_key,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok:                     True" in result.stdout


def test_inclusion_proofs_check_with_the_public_key_alone(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    log = make_log(tmp_path, keyring, every=50)
    ids = [log.append("export", dataset=f"d{i}") for i in range(6)]
    proof = log.prove(ids[3])
    # What a regulator receives: JSON text, and the public key from another channel.
    text = json.dumps(proof)
    assert ag.verify_proof(text, public_key=log.public_key)
    assert ag.verify_proof(proof, public_key=log.public_key)
    assert not ag.verify_proof(proof, public_key="00" * 32)
    forged = dict(proof, record=proof["record"].replace('"d3"', '"d9"'))
    assert not ag.verify_proof(forged, public_key=log.public_key)
    moved = dict(proof, leaf_index=2)
    assert not ag.verify_proof(moved, public_key=log.public_key)
    assert not ag.verify_proof({"not": "a proof"})
    with pytest.raises(ag.InvalidArgumentError):
        log.prove(1000)


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "amlguard", "audit", "verify", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_hmac_signed_checkpoints_verify_and_prove_with_the_keyring_only(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    path, witness = tmp_path / "audit.jsonl", tmp_path / "witness.jsonl"
    log = ag.AuditLog(path, keyring=keyring, witness=witness, checkpoint_every=3,
                      checkpoint_signature="hmac-sha256")  # fmt: skip
    ids = [log.append("export", dataset=f"d{i}") for i in range(7)]
    checkpoint = log.checkpoint()
    assert checkpoint["algorithm"] == "hmac-sha256"
    assert checkpoint["public_key"] == log.public_key  # the key's fingerprint
    assert log.verify() and log.verify(public_key=log.public_key)
    assert ag.verify_audit_log(path, witness, keyring=keyring)
    assert not ag.verify_audit_log(path, witness, "00" * 32, keyring=keyring)
    proof = log.prove(ids[4])
    assert ag.verify_proof(json.dumps(proof), log.public_key, keyring=keyring)
    forged = dict(proof, record=proof["record"].replace('"d4"', '"d9"'))
    assert not ag.verify_proof(forged, keyring=keyring)

    # Without the key: a typed error, never a pass.
    elsewhere = ag.LocalKeyring(tmp_path / "elsewhere")
    for keyless in (None, elsewhere):
        with pytest.raises(ag.KeyNotFoundError):
            ag.verify_proof(proof, keyring=keyless)
        with pytest.raises(ag.KeyNotFoundError):
            ag.verify_audit_log(path, witness, keyring=keyless)
    result = run_cli(str(path), "--witness", str(witness))
    assert result.returncode == 2 and "HMAC-SHA256" in result.stderr
    result = run_cli(str(path), "--witness", str(witness), "--keyring", keyring.path)
    assert result.returncode == 0, result.stdout + result.stderr

    # The key never appears in the log, and a changed record is found and located.
    text = path.read_text()
    for key_file in Path(keyring.path).rglob("*"):
        if key_file.is_file():
            data = key_file.read_bytes()
            assert data.hex() not in text and base64.b64encode(data).decode() not in text
    records = lines(path)
    records[1] = records[1].replace('"d1"', '"d8"')
    path.write_text("\n".join(records) + "\n")
    report = log.verify()
    assert not report and report.first_bad_record == 1
    with pytest.raises(ag.InvalidArgumentError, match="checkpoint_signature"):
        ag.AuditLog(tmp_path / "other.jsonl", keyring=keyring, checkpoint_signature="hmac-md5")


def test_subjects_are_recorded_only_as_keyed_pseudonyms(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    log = make_log(tmp_path, keyring)
    record_id = log.append("forget", subjects=["patient-000123"])
    text = (tmp_path / "audit.jsonl").read_text()
    assert "patient-000123" not in text
    assert log.subject_pseudonym("patient-000123") in text
    assert log.find_subject("patient-000123") == [record_id]
    assert log.find_subject("patient-999") == []


def test_a_missing_signing_key_is_a_typed_error(tmp_path: Path, keyring: ag.LocalKeyring) -> None:
    log = make_log(tmp_path, keyring)
    for _ in range(3):
        log.append("export")
    other_keyring = ag.LocalKeyring(tmp_path / "another-keyring")
    reopened = ag.AuditLog(tmp_path / "audit.jsonl", keyring=other_keyring, checkpoint_every=1)
    with pytest.raises(ag.KeyNotFoundError):
        reopened.append("export")
    other_keyring.ensure_key("audit")
    with pytest.raises(ag.AuditLogError, match="not the key that signed"):
        reopened.append("export")
    # Neither failed call left a record behind.
    assert len(lines(tmp_path / "audit.jsonl")) == 4
    assert log.verify()


def test_mask_writes_records_and_never_values_or_key_material(
    tmp_path: Path, keyring: ag.LocalKeyring, people: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = ag.Policy.from_dict(POLICY)
    source = tmp_path / "people.parquet"
    pq.write_table(people, source)
    log = make_log(tmp_path, keyring)
    ag.mask_file(source, tmp_path / "masked.parquet", policy, keyring=keyring, audit=log)
    policy.apply(people, keyring=keyring, audit=log)
    # Through the environment variable, and a failure is recorded too.
    monkeypatch.setenv("AMLGUARD_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    bad = ag.Policy.from_dict(
        {"version": 1, "columns": {"person_id": {"op": "hash", "key": "nope"}}}
    )
    with pytest.raises(ag.KeyNotFoundError):
        ag.mask_file(source, tmp_path / "never.parquet", bad, keyring=keyring)

    records = [json.loads(line) for line in lines(tmp_path / "audit.jsonl")]
    events = [r for r in records if r["kind"] == "event"]
    assert [e["outcome"] for e in events] == ["success", "success", "failure"]
    assert events[0]["rows"] == people.num_rows and events[0]["bytes"] > 0
    assert events[0]["key_ids"] == ["pseudo@1", "tokens@1"]
    assert events[0]["policy_fingerprint"] == policy.fingerprint
    assert events[1]["target"]["dataset"] == "in-memory pyarrow.lib.Table"
    assert "nope" in events[2]["error"]

    text = (tmp_path / "audit.jsonl").read_text()
    for column in ("person_id", "name", "email", "phone", "ssn", "card_number", "iban", "note"):
        for value in people.column(column).to_pylist()[:200]:
            if value is not None and len(str(value)) >= 6:
                assert str(value) not in text, column
    for key_file in (Path(keyring.path)).rglob("*.key"):
        material = key_file.read_bytes()
        for encoded in (
            material.hex(),
            base64.b64encode(material).decode(),
            base64.urlsafe_b64encode(material).decode().rstrip("="),
        ):
            assert encoded not in text
    assert ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring).verify()


WRITER = """
import sys, amlguard as ag
log = ag.AuditLog(sys.argv[1], keyring=ag.LocalKeyring(sys.argv[2]), checkpoint_every=7)
for i in range(int(sys.argv[3])):
    log.append("export", dataset=f"{sys.argv[4]}-{i}")
"""


def test_processes_appending_together_never_interleave_or_lose_records(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    path = tmp_path / "audit.jsonl"
    per_process, processes = 40, 4
    running = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), keyring.path, str(per_process), f"p{n}"]
        )
        for n in range(processes)
    ]
    assert [p.wait(timeout=300) for p in running] == [0] * processes
    records = [json.loads(line) for line in lines(path)]
    events = [r for r in records if r["kind"] == "event"]
    assert len(events) == per_process * processes
    assert {r["target"]["dataset"] for r in events} == {
        f"p{n}-{i}" for n in range(processes) for i in range(per_process)
    }
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert len({r["actor"]["pid"] for r in events}) == processes
    report = ag.AuditLog(path, keyring=keyring).verify()
    assert report, repr(report)
