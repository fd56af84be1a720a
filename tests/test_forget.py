from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import amlguard as ag
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from support.azure_fixtures import ServerCredential
from support.keyvault_server import KeyVaultServer


def patients(rows: int, start: int = 0, seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    ids = [f"patient-{start + i // 3:06d}" for i in range(rows)]  # three rows per patient
    return pa.table(
        {
            "patient_id": ids,
            "visit": list(range(start, start + rows)),
            "diagnosis": [rng.choice(["flu", "asthma", "diabetes", "fracture"]) for _ in ids],
        }
    )


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: its SHA-256 and mtime."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).digest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def ids_in(path: Path) -> set[str]:
    return set(pq.read_table(path, columns=["patient_id"]).column(0).to_pylist())


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A hive-partitioned tree with a _SUCCESS marker and files in two partitions."""
    root = tmp_path / "patients"
    for n, year in enumerate((2023, 2024)):
        part = root / f"year={year}"
        part.mkdir(parents=True)
        for k in range(3):
            start = (n * 3 + k) * 300
            pq.write_table(patients(300, start), part / f"part-{k}.parquet", row_group_size=100)
    (root / "_SUCCESS").write_text("")
    return root


def test_forget_rewrites_only_affected_files_and_leaves_the_rest_byte_identical(
    dataset: Path, tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    before = snapshot(dataset)
    log = ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring, witness=tmp_path / "w.jsonl")
    # patient-000010 lives in year=2023/part-0, patient-001250 in year=2024/part-1.
    victims = ["patient-000010", "patient-001250", "patient-999999"]
    ds = [ag.Dataset(dataset, id_column="patient_id")]
    receipt = ag.forget(victims, ds, keyring=keyring, audit=log)

    assert receipt.rows_removed == 6 and not receipt.dry_run
    assert sorted(receipt.files_rewritten) == sorted(
        [str(dataset / "year=2023/part-0.parquet"), str(dataset / "year=2024/part-1.parquet")]
    )
    assert set(receipt.rows_removed_per_file.values()) == {3}
    assert receipt.files_scanned == 6
    assert receipt.bytes_total == sum(
        p.stat().st_size for p in dataset.rglob("*.parquet") if p.name != "_SUCCESS"
    ) - sum(f["bytes_after"] - f["bytes_before"] for f in receipt.files)
    assert receipt.row_groups_skipped > 0  # min/max statistics exclude most row groups
    after = snapshot(dataset)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"year=2023/part-0.parquet", "year=2024/part-1.parquet"}
    assert not list(dataset.rglob(".*")) and not list(dataset.rglob("*.journal"))
    for path in dataset.rglob("*.parquet"):
        assert not ids_in(path) & set(victims)
    assert pq.read_table(dataset / "year=2023/part-0.parquet").num_rows == 297
    assert ag.verify_forgotten(victims, ds, keyring=keyring)
    assert not ag.verify_forgotten("patient-000011", ds, keyring=keyring)
    assert "ForgetReceipt" in receipt._repr_html_()

    # The receipt is in the audit log under pseudonyms, with a proof a regulator can check.
    text = (tmp_path / "audit.jsonl").read_text()
    assert "patient-000010" not in text
    assert log.find_subject("patient-000010") == [receipt.audit_record_id]
    assert receipt.audit_record_id is not None
    proof = log.prove(receipt.audit_record_id)
    assert ag.verify_proof(proof, public_key=log.public_key)
    assert json.loads(proof["record"])["details"]["files"][0]["rows_removed"] == 3
    assert log.verify()


def test_a_subject_found_nowhere_gives_an_empty_receipt(
    dataset: Path, keyring: ag.LocalKeyring
) -> None:
    before = snapshot(dataset)
    receipt = ag.forget("nobody", [ag.Dataset(dataset, id_column="patient_id")], keyring=keyring)
    assert receipt.rows_removed == 0 and receipt.files == [] and receipt.files_scanned == 6
    assert snapshot(dataset) == before


def test_dry_run_touches_nothing(dataset: Path, keyring: ag.LocalKeyring) -> None:
    before = snapshot(dataset)
    store = ag.SubjectKeyStore(keyring)
    sealed = ag.encrypt_subject_column(
        pa.table({"p": ["patient-000010"], "v": ["x"]}), "v", "p", store
    )
    receipt = ag.forget(
        ["patient-000010"],
        [ag.Dataset(dataset, id_column="patient_id")],
        keyring=keyring,
        subject_keys=store,
        dry_run=True,
    )
    assert receipt.dry_run and receipt.rows_removed == 3 and len(receipt.files) == 1
    assert receipt.keys_destroyed[0]["unusable_at"] is None
    assert snapshot(dataset) == before
    assert ag.decrypt_subject_column(sealed, "v", store).column("v").to_pylist() == ["x"]


def test_pseudonymised_datasets_are_found_by_recomputing_the_pseudonym(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    raw = patients(600)
    policy = ag.Policy.from_dict(
        {
            "version": 1,
            "columns": {"patient_id": {"op": "hash", "key": "pseudo", "truncate_bytes": 16}},
        }
    )
    tokens = ag.Policy.from_dict(
        {"version": 1, "columns": {"patient_id": {"op": "tokenize", "key": "tokens", "tweak": "t"}}}
    )
    pq.write_table(policy.apply(raw, keyring=keyring), tmp_path / "hashed.parquet")
    pq.write_table(tokens.apply(raw, keyring=keyring), tmp_path / "tokens.parquet")
    datasets = [
        ag.Dataset(
            tmp_path / "hashed.parquet",
            id_column="patient_id",
            pseudonymised_with="pseudo",
            truncate_bytes=16,
        ),
        ag.Dataset(
            tmp_path / "tokens.parquet",
            id_column="patient_id",
            pseudonymised_with="tokens",
            pseudonym_op="tokenize",
            tweak="t",
        ),
    ]
    receipt = ag.forget(["patient-000007"], datasets, keyring=keyring)
    assert receipt.rows_removed == 6
    assert pq.read_table(tmp_path / "hashed.parquet").num_rows == 597
    assert ag.verify_forgotten(["patient-000007"], datasets, keyring=keyring)


def test_integer_ids_and_bloom_filters(tmp_path: Path, keyring: ag.LocalKeyring) -> None:
    table = pa.table({"pid": pa.array(range(10_000), pa.int64()), "v": range(10_000)})
    shuffled = table.take(pa.array(random.Random(1).sample(range(10_000), 10_000)))
    pq.write_table(shuffled, tmp_path / "ints.parquet", row_group_size=1000)
    receipt = ag.forget(
        ["42", "4242"], [ag.Dataset(tmp_path / "ints.parquet", id_column="pid")], keyring=keyring
    )
    assert receipt.rows_removed == 2
    assert pq.read_table(tmp_path / "ints.parquet").num_rows == 9998


def test_bad_input_is_refused_before_anything_changes(
    dataset: Path, tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    with pytest.raises(FileNotFoundError):
        ag.forget("x", [ag.Dataset(tmp_path / "missing", id_column="patient_id")], keyring=keyring)
    with pytest.raises(ag.StorageNotFoundError):
        ag.verify_forgotten(
            "x", [ag.Dataset(tmp_path / "missing", id_column="patient_id")], keyring=keyring
        )
    before = snapshot(dataset)
    pq.write_table(pa.table({"other": ["patient-000010"]}), dataset / "year=2024" / "odd.parquet")
    with pytest.raises(ag.ColumnNotFoundError, match="odd.parquet"):
        ag.forget("patient-000010", [ag.Dataset(dataset, id_column="patient_id")], keyring=keyring)
    (dataset / "year=2024" / "odd.parquet").unlink()
    pq.write_table(pa.table({"patient_id": [1, 2]}), dataset / "year=2024" / "ints.parquet")
    with pytest.raises(ag.InvalidDataError, match="mixed schemas"):
        ag.forget("patient-000010", [ag.Dataset(dataset, id_column="patient_id")], keyring=keyring)
    (dataset / "year=2024" / "ints.parquet").unlink()
    assert snapshot(dataset) == before
    with pytest.raises(ag.KeyNotFoundError):
        ag.forget(
            "p",
            [ag.Dataset(dataset, id_column="patient_id", pseudonymised_with="no-such-key")],
            keyring=keyring,
        )
    with pytest.raises(ag.InvalidArgumentError):
        ag.forget(
            "p",
            [
                ag.Dataset(
                    dataset, id_column="patient_id", pseudonymised_with="pseudo", pseudonym_op="x"
                )
            ],
            keyring=keyring,
        )


def test_crypto_shredding_makes_every_copy_unreadable(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    store = ag.SubjectKeyStore(keyring)
    assert Path(store.path).parent == Path(keyring.path)
    table = patients(30).append_column("age", pa.array(range(30), pa.int32()))
    sealed = ag.encrypt_subject_column(table, "diagnosis", "patient_id", store, context="study-1")
    sealed = ag.encrypt_subject_column(sealed, "age", "patient_id", store, context="study-1")
    assert sealed.schema.field("diagnosis").type == pa.binary()
    # A copy exported elsewhere, e.g. a backup.
    backup = tmp_path / "backup.parquet"
    pq.write_table(sealed, backup)
    opened = ag.decrypt_subject_column(sealed, "diagnosis", store, context="study-1")
    assert opened.column("diagnosis").equals(table.column("diagnosis"))
    assert (
        ag.decrypt_subject_column(opened, "age", store, context="study-1")
        .column("age")
        .equals(table.column("age"))
    )
    with pytest.raises(ag.DecryptionError):
        ag.decrypt_subject_column(sealed, "diagnosis", store, context="other-study")
    # polars in, polars out.
    frame = ag.encrypt_subject_column(pl.from_arrow(table), "diagnosis", "patient_id", store)
    assert isinstance(frame, pl.DataFrame)

    with sqlite3.connect(store.path) as db:
        wrapped = dict(db.execute("SELECT key_handle, wrapped_dek FROM subject_keys"))
    data = tmp_path / "data.parquet"
    pq.write_table(table, data)
    receipt = ag.forget(
        ["patient-000000", "patient-000004"],
        [ag.Dataset(data, id_column="patient_id")],
        keyring=keyring,
        subject_keys=store,
    )
    assert len(receipt.keys_destroyed) == 2
    destruction = receipt.keys_destroyed[0]
    assert destruction["unusable_at"] <= destruction["physically_removed_at"]
    assert "backups" in destruction["note"]
    destroyed = {k["key_handle"] for k in receipt.keys_destroyed}
    assert destroyed <= set(wrapped)
    store_bytes = b"".join(p.read_bytes() for p in Path(keyring.path).glob("subject-keys.sqlite*"))
    for handle, wrapped_dek in wrapped.items():
        # Destroyed keys are gone from the live files; the others are still there.
        assert (wrapped_dek in store_bytes) == (handle not in destroyed)

    copy = pq.read_table(backup)
    with pytest.raises(ag.ForgottenError):
        ag.decrypt_subject_column(copy, "diagnosis", store, context="study-1")
    nulled = ag.decrypt_subject_column(
        copy, "diagnosis", store, context="study-1", on_forgotten="null"
    )
    values = nulled.column("diagnosis").to_pylist()
    forgotten = pc.is_in(table.column("patient_id"), pa.array(["patient-000000", "patient-000004"]))
    for value, original, gone in zip(
        values, table.column("diagnosis").to_pylist(), forgotten.to_pylist()
    ):
        assert value == (None if gone else original)
    # A reopened store still knows them as forgotten.
    again = ag.SubjectKeyStore(keyring)
    with pytest.raises(ag.ForgottenError):
        ag.decrypt_subject_column(copy, "diagnosis", again, context="study-1")


CHILD = """
import sys, amlguard as ag
keyring = ag.LocalKeyring(sys.argv[2])
victims = sys.argv[3].split(",")
receipt = ag.forget(victims, [ag.Dataset(sys.argv[1], id_column="patient_id")], keyring=keyring,
                    threads=2)
print(receipt.to_json())
"""


def _content(path: Path) -> str:
    return hashlib.sha256(pq.read_table(path).to_pandas().to_csv().encode()).hexdigest()


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_every_file_old_or_new(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    root = tmp_path / "big"
    root.mkdir()
    files = 16
    for k in range(files):
        pq.write_table(patients(30_000, k * 30_000, seed=k), root / f"part-{k:02d}.parquet",
                       row_group_size=5_000)  # fmt: skip
    # Two subjects per file, three rows each; the identifiers repeat over the files, so the
    # victims' rows lie in the first six files and the other ten stay untouched.
    victims = [
        f"patient-{(k * 30_000 + off) // 3:06d}" for k in range(files) for off in (9, 20_001)
    ]
    old = {p.name: _content(p) for p in root.glob("*.parquet")}
    new = {}
    rows_removed: dict[str, int] = {}
    for p in root.glob("*.parquet"):
        table = pq.read_table(p)
        kept = table.filter(pc.invert(pc.is_in(table.column("patient_id"), pa.array(victims))))
        new[p.name] = hashlib.sha256(kept.to_pandas().to_csv().encode()).hexdigest()
        if kept.num_rows < table.num_rows:
            rows_removed[p.name] = table.num_rows - kept.num_rows
    rows_expected = {p.name: pq.read_metadata(p).num_rows for p in root.glob("*.parquet")}

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), keyring.path, ",".join(victims)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def check_complete(receipt: dict[str, Any], dataset: Path) -> None:
        # The receipt accounts for every row removed since the data was reset, whichever
        # attempts removed them (a file swapped just before a kill included).
        changes = receipt["files"]
        assert sorted(Path(c["path"]).name for c in changes) == sorted(rows_removed)
        assert all(Path(c["path"]).parent == dataset for c in changes)
        for change in changes:
            name = Path(change["path"]).name
            assert change["rows_removed"] == rows_removed[name]
            assert change["rows_before"] == rows_expected[name]
        assert receipt["rows_removed"] == sum(rows_removed.values())

    # Time one full run on a copy to spread the kills over the whole run.
    import shutil

    shutil.copytree(root, tmp_path / "timing")
    started = time.perf_counter()
    timing = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "timing"), keyring.path, ",".join(victims)],
        capture_output=True, timeout=600,
    )  # fmt: skip
    assert timing.returncode == 0, timing.stderr
    duration = time.perf_counter() - started
    check_complete(json.loads(timing.stdout), tmp_path / "timing")

    rng = random.Random(7)
    kills = 0
    interrupted_mid_rewrite = 0
    announced = 0
    completed = 0
    for _ in range(20):
        child = run()
        time.sleep(rng.uniform(0.0, duration))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        out, _err = child.communicate(timeout=600)
        journal = root / "_amlguard_forget.journal"
        if journal.exists():
            # Killed between announcing a swap and recording it: the rerun must find out
            # whether it landed. (A line cut short by the kill is not a complete entry.)
            last = journal.read_text().split("\n")[-2:-1]
            announced += bool(last) and '"event":"replacing"' in last[0]
        if child.returncode == 0:
            # A run that completed (perhaps resuming killed ones) accounts for every row.
            check_complete(json.loads(out), root)
            completed += 1
        for p in root.glob("*.parquet"):
            content = _content(p)
            assert content in (old[p.name], new[p.name]), f"{p.name} is neither old nor new"
            removed = rows_expected[p.name] - pq.read_metadata(p).num_rows
            assert removed in (0, 6)  # two subjects x three rows, or none yet
        states = {_content(p) == new[p.name] for p in root.glob("*.parquet")}
        if states == {True, False} or list(root.glob("_amlguard_forget*")):
            interrupted_mid_rewrite += 1
        if all(_content(p) == new[p.name] for p in root.glob("*.parquet")):
            # A run finished before its kill: start over from the original data to keep testing.
            for p in root.glob("*.parquet"):
                p.unlink()
            for k in range(files):
                pq.write_table(patients(30_000, k * 30_000, seed=k), root / f"part-{k:02d}.parquet",
                               row_group_size=5_000)  # fmt: skip
    assert kills >= 10, f"only {kills} runs were killed mid-way (run takes {duration:.2f}s)"
    # Some kills must land while files are being swapped, not only during start-up.
    assert interrupted_mid_rewrite >= 3, interrupted_mid_rewrite
    print(f"run {duration:.2f}s: {kills} killed, {interrupted_mid_rewrite} mid-run "
          f"({announced} right after announcing a swap), {completed} completed")  # fmt: skip

    final = run()
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    check_complete(json.loads(out), root)
    for p in root.glob("*.parquet"):
        assert _content(p) == new[p.name]
    assert not list(root.glob(".*")) and not list(root.glob("_amlguard*"))
    assert ag.verify_forgotten(victims, [ag.Dataset(root, id_column="patient_id")], keyring=keyring)


def test_subject_keys_wrapped_by_an_azure_key_vault_kek(
    tmp_path: Path, keyring: ag.LocalKeyring, kv: KeyVaultServer
) -> None:
    kv.create_key("subject-kek")
    kv.recoverable_days = 30  # this vault's soft-delete retention
    vault = ag.AzureKeyVault(kv.url, ServerCredential(kv), ca_bundle=kv.ca_file)
    store = ag.SubjectKeyStore(keyring, kek=vault.kek("subject-kek"), path=tmp_path / "keys.db")
    assert store.kek_id.startswith(kv.url) and "/keys/subject-kek/" in store.kek_id
    table = patients(30)
    sealed = ag.encrypt_subject_column(table, "diagnosis", "patient_id", store)
    assert kv.calls["wrapkey"] == 10  # one DEK per subject, each wrapped in the vault
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT subject_index, kek_id FROM subject_keys").fetchall()
    assert {kek_id for _, kek_id in rows} == {store.kek_id}
    assert not any("patient-" in index for index, _ in rows)
    assert ag.decrypt_subject_column(sealed, "diagnosis", store).equals(table)

    data = tmp_path / "data.parquet"
    pq.write_table(table, data)
    ds = [ag.Dataset(data, id_column="patient_id")]
    preview = ag.forget(["patient-000001"], ds, keyring=keyring, subject_keys=store, dry_run=True)
    assert preview.keys_destroyed[0]["unusable_at"] is None
    receipt = ag.forget(["patient-000001"], ds, keyring=keyring, subject_keys=store)
    (destruction,) = receipt.keys_destroyed
    assert destruction["kek_id"] == store.kek_id
    assert destruction["unusable_at"] <= destruction["physically_removed_at"]
    assert destruction["kek_deleted_key_retention"] == {
        "recovery_level": "Recoverable+Purgeable",
        "recoverable_days": 30,
        "source": "provider",
    }
    assert "recoverable for 30 days" in destruction["note"]
    with pytest.raises(ag.ForgottenError):
        ag.decrypt_subject_column(sealed, "diagnosis", store)
    # A new store object on the same file: the others still decrypt through the vault.
    kept = ag.SubjectKeyStore(keyring, kek=vault.kek("subject-kek"), path=tmp_path / "keys.db")
    opened = ag.decrypt_subject_column(sealed, "diagnosis", kept, on_forgotten="null")
    assert opened.column("diagnosis").null_count == 3

    # A KEK pinned without reading the key: the documented default is stated as such.
    version = store.kek_id.rsplit("/", 1)[1]
    pinned = vault.kek("subject-kek", version=version, algorithm="RSA-OAEP-256")
    other = ag.SubjectKeyStore(keyring, kek=pinned, path=tmp_path / "other.db")
    ag.encrypt_subject_column(table, "diagnosis", "patient_id", other)
    (default,) = ag.forget(
        ["patient-000002"], ds, keyring=keyring, subject_keys=other
    ).keys_destroyed
    assert default["kek_deleted_key_retention"]["recoverable_days"] == 90
    assert default["kek_deleted_key_retention"]["source"] == "documented-default"
    assert "documented default" in default["note"]
    with pytest.raises(TypeError, match="AzureKek"):
        ag.SubjectKeyStore(keyring, kek=3)  # type: ignore[arg-type]
