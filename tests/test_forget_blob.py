"""Forget in Parquet datasets on Azure Blob Storage (Azurite): affected blobs replaced whole by
conditional puts, unaffected blobs untouched, a blob changed during the run refused, a journal
in the storage that makes an interrupted run resumable with a complete receipt, and a subject's
partition blobs deleted with conditional deletes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import amlguard as ag
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobClient, BlobServiceClient
from support.azure_fixtures import Azurite

CONTAINER = "lake"
GONE = ["subject-003", "subject-011"]


@pytest.fixture(scope="module")
def blobs(azurite: Azurite) -> Iterator[BlobServiceClient]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    client.create_container(CONTAINER)
    yield client
    client.close()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def people(ids: list[str], rows_each: int = 5) -> pa.Table:
    column = [i for i in ids for _ in range(rows_each)]
    return pa.table({"patient_id": column, "visit": list(range(len(column)))})


def upload(blobs: BlobServiceClient, name: str, table: pa.Table) -> None:
    blobs.get_blob_client(CONTAINER, name).upload_blob(parquet_bytes(table), overwrite=True)


def state(blobs: BlobServiceClient, prefix: str) -> dict[str, tuple[str, bytes]]:
    container = blobs.get_container_client(CONTAINER)
    return {
        b.name: (str(b.etag), container.download_blob(b.name).readall())
        for b in container.list_blobs(name_starts_with=prefix)
    }


@pytest.fixture
def dataset(blobs: BlobServiceClient) -> str:
    prefix = f"patients-{uuid.uuid4().hex[:8]}/"
    upload(blobs, prefix + "part-0.parquet", people(["subject-001", "subject-003"]))
    upload(blobs, prefix + "part-1.parquet", people(["subject-002", "subject-004"]))
    upload(blobs, prefix + "part-2.parquet", people(["subject-011", "subject-005", "subject-003"]))
    upload(blobs, prefix + "part-3.parquet", people(["subject-006"]))
    return prefix


def test_affected_blobs_rewritten_unaffected_untouched(
    blobs: BlobServiceClient, dataset: str, azurite: Azurite, keyring: ag.LocalKeyring,
    tmp_path: Path,
) -> None:  # fmt: skip
    url = f"az://{CONTAINER}/{dataset}"
    target = [ag.Dataset(url, id_column="patient_id")]
    options = azurite.storage_options
    before = state(blobs, dataset)

    planned = ag.forget(GONE, target, keyring=keyring, dry_run=True, storage_options=options)
    assert state(blobs, dataset) == before  # a dry run writes nothing
    assert planned.rows_removed == 15 and len(planned.files) == 2
    assert not ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options)

    log = ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring)
    receipt = ag.forget(GONE, target, keyring=keyring, storage_options=options, audit=log)
    after = state(blobs, dataset)
    assert receipt.files_scanned == 4 and receipt.rows_removed == 15
    assert receipt.files_rewritten == [f"{url}part-0.parquet", f"{url}part-2.parquet"]
    assert receipt.rows_removed_per_file == {f"{url}part-0.parquet": 5, f"{url}part-2.parquet": 10}
    for untouched in ("part-1.parquet", "part-3.parquet"):
        assert after[dataset + untouched] == before[dataset + untouched]  # same ETag and bytes
    for rewritten in ("part-0.parquet", "part-2.parquet"):
        etag, data = after[dataset + rewritten]
        assert etag != before[dataset + rewritten][0]
        table = pq.read_table(io.BytesIO(data))
        original = pq.read_table(io.BytesIO(before[dataset + rewritten][1]))
        keep = pc.invert(pc.is_in(original.column("patient_id"), pa.array(GONE)))
        assert table.equals(original.filter(keep))  # other rows intact, in order
    assert ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options).ok
    assert log.verify().ok

    again = ag.forget(GONE, target, keyring=keyring, storage_options=options)
    assert again.rows_removed == 0 and state(blobs, dataset) == after  # nothing left to do


def test_hive_partitioned_blob_tree_is_walked_and_hidden_folders_skipped(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    prefix = f"hive-{uuid.uuid4().hex[:8]}/"
    upload(blobs, prefix + "date=2024-01-01/part-0.parquet", people(["subject-003", "subject-001"]))
    upload(blobs, prefix + "date=2024-01-02/region=eu/part-0.parquet", people(["subject-011"]))
    upload(blobs, prefix + "date=2024-01-02/region=us/part-0.parquet", people(["subject-002"]))
    # Hidden folders (job scratch, table logs) are not part of the dataset and are never touched.
    upload(blobs, prefix + "_temporary/part-0.parquet", people(["subject-003"]))
    upload(blobs, prefix + ".staging/part-0.parquet", people(["subject-011"]))
    before = state(blobs, prefix)
    url = f"az://{CONTAINER}/{prefix}"
    target = [ag.Dataset(url, id_column="patient_id")]
    options = azurite.storage_options

    receipt = ag.forget(GONE, target, keyring=keyring, storage_options=options)
    assert receipt.files_scanned == 3 and receipt.rows_removed == 10
    assert receipt.files_rewritten == [
        f"{url}date=2024-01-01/part-0.parquet",
        f"{url}date=2024-01-02/region=eu/part-0.parquet",
    ]
    after = state(blobs, prefix)
    for untouched in ("date=2024-01-02/region=us/part-0.parquet", "_temporary/part-0.parquet",
                      ".staging/part-0.parquet"):  # fmt: skip
        assert after[prefix + untouched] == before[prefix + untouched]
    kept = pq.read_table(io.BytesIO(after[prefix + "date=2024-01-01/part-0.parquet"][1]))
    assert kept.column("patient_id").to_pylist() == ["subject-001"] * 5
    emptied = pq.read_table(
        io.BytesIO(after[prefix + "date=2024-01-02/region=eu/part-0.parquet"][1])
    )
    assert emptied.num_rows == 0 and emptied.schema.names == ["patient_id", "visit"]
    assert ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options).ok


@contextlib.contextmanager
def writing_once_changed(watched: BlobClient, write: Callable[[], object]) -> Iterator[None]:
    """Run ``write`` from another thread as soon as ``watched`` has a new ETag."""
    etag = watched.get_blob_properties().etag
    stop = threading.Event()

    def other_writer() -> None:
        while not stop.is_set():
            if watched.get_blob_properties().etag != etag:
                write()
                return
            time.sleep(0.002)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


def test_a_blob_changed_during_the_run_is_refused(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    prefix = f"race-{uuid.uuid4().hex[:8]}/"
    upload(blobs, prefix + "part-0.parquet", people(["subject-003", "subject-001"]))
    # A large second blob: rewriting it takes long enough for another writer to get in.
    big_ids = [f"subject-{i:07d}" for i in range(400_000)] + ["subject-003"]
    upload(blobs, prefix + "part-1.parquet", people(big_ids, rows_each=3))
    first = blobs.get_blob_client(CONTAINER, prefix + "part-0.parquet")
    second = blobs.get_blob_client(CONTAINER, prefix + "part-1.parquet")
    theirs = parquet_bytes(people(["someone-else"]))
    # As soon as the run has replaced the first blob, change the second one under it.
    racing = writing_once_changed(first, lambda: second.upload_blob(theirs, overwrite=True))
    with racing, pytest.raises(ag.ConcurrentModificationError, match="part-1.parquet"):
        ag.forget(["subject-003"], [ag.Dataset(f"az://{CONTAINER}/{prefix}",
                  id_column="patient_id")], keyring=keyring,
                  storage_options=azurite.storage_options)  # fmt: skip
    assert second.download_blob().readall() == theirs  # their write stands
    remaining = pq.read_table(io.BytesIO(first.download_blob().readall()))
    assert remaining.column("patient_id").to_pylist() == ["subject-001"] * 5


def test_bad_input_changes_nothing(
    blobs: BlobServiceClient, dataset: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    options = azurite.storage_options
    url = f"az://{CONTAINER}/{dataset}"
    upload(blobs, dataset + "part-9.parquet", pa.table({"other": ["subject-003"]}))
    before = state(blobs, dataset)
    with pytest.raises(ag.ColumnNotFoundError, match="part-9"):
        ag.forget(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                  storage_options=options)  # fmt: skip
    assert state(blobs, dataset) == before  # every blob is scanned before any is written
    blobs.get_blob_client(CONTAINER, dataset + "part-9.parquet").delete_blob()
    upload(blobs, dataset + "part-8.parquet", pa.table({"patient_id": [3, 4]}))
    before = state(blobs, dataset)
    with pytest.raises(ag.InvalidDataError, match="mixed schemas.*part-8"):
        ag.forget(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                  storage_options=options)  # fmt: skip
    with pytest.raises(ag.InvalidDataError, match="mixed schemas"):
        ag.verify_forgotten(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                            storage_options=options)  # fmt: skip
    assert state(blobs, dataset) == before
    blobs.get_blob_client(CONTAINER, dataset + "part-8.parquet").delete_blob()
    nobody = ag.forget(["nobody"], [ag.Dataset(url + "part-0.parquet", id_column="patient_id")],
                       keyring=keyring, storage_options=options)  # fmt: skip
    assert nobody.rows_removed == 0 and nobody.files_scanned == 1
    with pytest.raises(ag.StorageNotFoundError):
        ag.forget(GONE, [ag.Dataset(f"az://{CONTAINER}/no-such-prefix/", id_column="x")],
                  keyring=keyring, storage_options=options)  # fmt: skip


def without(table: pa.Table, subjects: list[str]) -> pa.Table:
    return table.filter(pc.invert(pc.is_in(table.column("patient_id"), pa.array(subjects))))


def journal_lines(blobs: BlobServiceClient, prefix: str) -> list[dict[str, object]] | None:
    client = blobs.get_blob_client(CONTAINER, prefix + "_amlguard_forget.journal")
    if not client.exists():
        return None
    text = client.download_blob().readall().decode()
    return [json.loads(line) for line in text.splitlines()]


def test_an_interrupted_run_is_resumed_and_its_receipt_is_complete(
    blobs: BlobServiceClient, dataset: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    url = f"az://{CONTAINER}/{dataset}"
    options = azurite.storage_options
    # A hidden blob beside the data is not part of the dataset.
    upload(blobs, dataset + "_scratch.parquet", people(["subject-003"]))
    before = state(blobs, dataset)
    # What a run killed mid-way leaves: part-0 replaced and recorded; part-2 replaced, but the
    # run was killed before recording it (only the line announcing the put is there).
    originals = {n: pq.read_table(io.BytesIO(before[dataset + n][1])) for n in
                 ("part-0.parquet", "part-2.parquet")}  # fmt: skip
    new_part0 = parquet_bytes(without(originals["part-0.parquet"], GONE))
    new_part2 = parquet_bytes(without(originals["part-2.parquet"], GONE))
    blobs.get_blob_client(CONTAINER, dataset + "part-0.parquet").upload_blob(
        new_part0, overwrite=True
    )
    blobs.get_blob_client(CONTAINER, dataset + "part-2.parquet").upload_blob(
        new_part2, overwrite=True
    )
    killed_run = [
        {"event": "start", "run_id": "0123456789abcdef", "request": "subjects:2",
         "files": [f"{url}part-0.parquet", f"{url}part-2.parquet"]},
        {"event": "done", "path": f"{url}part-0.parquet", "rows_before": 10, "rows_removed": 5,
         "bytes_before": len(before[dataset + "part-0.parquet"][1]),
         "bytes_after": len(new_part0), "removed": False},
        {"event": "replacing", "path": f"{url}part-2.parquet", "rows_before": 15,
         "rows_removed": 10, "bytes_before": len(before[dataset + "part-2.parquet"][1]),
         "bytes_after": len(new_part2), "removed": False,
         "etag_before": before[dataset + "part-2.parquet"][0],
         "sha256_after": hashlib.sha256(new_part2).hexdigest()},
    ]  # fmt: skip
    journal = blobs.get_blob_client(CONTAINER, dataset + "_amlguard_forget.journal")
    journal.upload_blob("".join(json.dumps(line) + "\n" for line in killed_run))

    receipt = ag.forget(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                        storage_options=options)  # fmt: skip
    assert receipt.resumed and receipt.files_scanned == 4
    assert receipt.rows_removed_per_file == {f"{url}part-0.parquet": 5, f"{url}part-2.parquet": 10}
    assert receipt.rows_removed == 15
    assert not journal.exists()  # deleted once the run completed
    scratch = dataset + "_scratch.parquet"
    assert state(blobs, scratch)[scratch] == before[scratch]  # never touched
    assert ag.verify_forgotten(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                               storage_options=options).ok  # fmt: skip


def test_a_journal_of_another_request_is_read_but_not_carried(
    blobs: BlobServiceClient, dataset: str, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    url = f"az://{CONTAINER}/{dataset}"
    other = [
        {"event": "start", "run_id": "fedcba9876543210", "request": "subjects:7", "files": []},
        {"event": "done", "path": f"{url}part-1.parquet", "rows_before": 10, "rows_removed": 9,
         "bytes_before": 1, "bytes_after": 1, "removed": False},
    ]  # fmt: skip
    journal = blobs.get_blob_client(CONTAINER, dataset + "_amlguard_forget.journal")
    journal.upload_blob("".join(json.dumps(line) + "\n" for line in other))
    receipt = ag.forget(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                        storage_options=azurite.storage_options)  # fmt: skip
    assert not receipt.resumed
    assert receipt.files_rewritten == [f"{url}part-0.parquet", f"{url}part-2.parquet"]
    assert receipt.rows_removed == 15
    assert not journal.exists()

    # With nothing left to do, a stale journal is still cleared.
    journal.upload_blob("".join(json.dumps(line) + "\n" for line in other))
    again = ag.forget(GONE, [ag.Dataset(url, id_column="patient_id")], keyring=keyring,
                      storage_options=azurite.storage_options)  # fmt: skip
    assert again.rows_removed == 0 and not again.resumed and not journal.exists()


CHILD = """
import sys, amlguard as ag
receipt = ag.forget(sys.argv[2].split(","), [ag.Dataset(sys.argv[1], id_column="patient_id")],
                    keyring=ag.LocalKeyring(sys.argv[3]), storage_options={"use_emulator": True})
print(receipt.to_json())
"""


def visits(rows: int, start: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    ids = [f"patient-{(start + i) // 3:06d}" for i in range(rows)]  # three rows per patient
    return pa.table(
        {
            "patient_id": ids,
            "visit": list(range(start, start + rows)),
            "diagnosis": [rng.choice(["flu", "asthma", "diabetes", "fracture"]) for _ in ids],
        }
    )


def content(table: pa.Table) -> str:
    return hashlib.sha256(table.to_pandas().to_csv().encode()).hexdigest()


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_every_blob_old_or_new_and_the_receipt_complete(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    count, rows = 6, 30_000
    names = [f"part-{k}.parquet" for k in range(count)]
    originals = {n: visits(rows, k * rows, seed=k) for k, n in enumerate(names)}
    # Two subjects per blob, in different row groups: every blob is rewritten, 6 rows each.
    victims = [f"patient-{(k * rows + off) // 3:06d}" for k in range(count) for off in (9, 20_001)]
    old = {n: content(t) for n, t in originals.items()}
    new = {n: content(without(t, victims)) for n, t in originals.items()}
    encoded = {}
    for n, t in originals.items():
        sink = io.BytesIO()
        pq.write_table(t, sink, row_group_size=5_000)  # six row groups per blob
        encoded[n] = sink.getvalue()
    container = blobs.get_container_client(CONTAINER)

    def reset(prefix: str) -> None:
        for n in names:
            container.upload_blob(prefix + n, encoded[n], overwrite=True)

    def run(prefix: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, f"az://{CONTAINER}/{prefix}", ",".join(victims),
             keyring.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def check_complete(receipt: dict[str, object], prefix: str) -> None:
        # The receipt accounts for every row removed since the data was reset, whichever
        # attempts removed them.
        url = f"az://{CONTAINER}/{prefix}"
        files = receipt["files"]
        assert isinstance(files, list)
        assert sorted(f["path"] for f in files) == [url + n for n in names]
        assert all(f["rows_removed"] == 6 and f["rows_before"] == rows for f in files)
        assert all(f["bytes_after"] > 0 and f["bytes_before"] == len(encoded[
            str(f["path"]).removeprefix(url)]) for f in files)  # fmt: skip
        assert receipt["rows_removed"] == 6 * count

    # Time one full run on a copy, to spread the kills over the whole run.
    timing = f"sigkill-timing-{uuid.uuid4().hex[:8]}/"
    reset(timing)
    started = time.perf_counter()
    out, err = run(timing).communicate(timeout=600)
    duration = time.perf_counter() - started
    check_complete(json.loads(out), timing)

    prefix = f"sigkill-{uuid.uuid4().hex[:8]}/"
    reset(prefix)
    rng = random.Random(5)
    journal_blob = container.get_blob_client(prefix + "_amlguard_forget.journal")
    kills = mid_run = completed = announced = 0
    for attempt in range(14):
        child = run(prefix)
        if attempt % 2:
            time.sleep(rng.uniform(0.0, duration))  # anywhere, start-up and scan included
        else:
            # Once the journal is there: amid the puts and the journal updates.
            deadline = time.monotonic() + 2 * duration
            while not journal_blob.exists() and child.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, duration / 2))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        out, err = child.communicate(timeout=600)
        listed = sorted(b.name for b in container.list_blobs(name_starts_with=prefix))
        # Nothing but the data and, mid-run, the journal: no stray or duplicate blob.
        assert set(listed) - {prefix + "_amlguard_forget.journal"} == {prefix + n for n in names}
        states = []
        for n in names:
            table = pq.read_table(io.BytesIO(container.download_blob(prefix + n).readall()))
            digest = content(table)
            assert digest in (old[n], new[n]), f"{n} is neither old nor new"
            assert table.num_rows in (rows, rows - 6)
            states.append(digest == new[n])
        journal = journal_lines(blobs, prefix)
        if journal is not None:
            # The journal names blobs and counts, never a subject.
            assert not any(v in json.dumps(journal) for v in victims)
            mid_run += 1
            # Killed between announcing a put and recording it: the rerun must find out
            # whether it landed.
            announced += journal[-1]["event"] == "replacing"
        elif len(set(states)) == 2:
            mid_run += 1
        if child.returncode == 0:
            # A run that completed (perhaps resuming killed ones) accounts for every row.
            check_complete(json.loads(out), prefix)
            assert journal is None and all(states)
            completed += 1
            reset(prefix)
        elif journal is None and all(states):
            # Killed after it completed and deleted its journal, before printing its receipt
            # (which an audit log would hold): start again from the old data.
            reset(prefix)
    assert kills >= 8, f"only {kills} runs were killed mid-way (a run takes {duration:.2f}s)"
    assert mid_run >= 5, f"only {mid_run} kills landed while blobs were being replaced"
    print(f"run {duration:.2f}s: {kills} killed, {mid_run} mid-run ({announced} right after "
          f"announcing a put), {completed} completed")  # fmt: skip

    final = run(prefix)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    receipt = json.loads(out)
    check_complete(receipt, prefix)
    for n in names:
        table = pq.read_table(io.BytesIO(container.download_blob(prefix + n).readall()))
        assert content(table) == new[n]
    assert journal_lines(blobs, prefix) is None
    target = [ag.Dataset(f"az://{CONTAINER}/{prefix}", id_column="patient_id")]
    assert ag.verify_forgotten(victims, target, keyring=keyring,
                               storage_options=azurite.storage_options).ok  # fmt: skip


def test_a_subjects_partition_blobs_are_deleted(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring, tmp_path: Path
) -> None:
    prefix = f"by-id-{uuid.uuid4().hex[:8]}/"
    visits_only = pa.table({"visit": [1, 2, 3]})  # pyarrow and Spark drop the column
    upload(blobs, prefix + "patient_id=subject-003/part-0.parquet", visits_only)
    upload(blobs, prefix + "patient_id=subject-003/part-1.parquet", visits_only)
    upload(blobs, prefix + "patient_id=subject-001/part-0.parquet", visits_only)
    # polars keeps the column in the files: a blob of only the subject's rows goes whole too.
    upload(blobs, prefix + "patient_id=subject-011/part-0.parquet", people(["subject-011"]))
    # Hidden leftovers of the writers: their names carry the identifier too.
    container = blobs.get_container_client(CONTAINER)
    for hidden in ("patient_id=subject-003/_SUCCESS", "patient_id=subject-003/.part-0.crc",
                   "patient_id=subject-001/_SUCCESS"):  # fmt: skip
        container.upload_blob(prefix + hidden, b"")
    url = f"az://{CONTAINER}/{prefix}"
    target = [ag.Dataset(url, id_column="patient_id")]
    options = azurite.storage_options
    before = state(blobs, prefix)
    gone = [f"{url}patient_id=subject-003/part-0.parquet",
            f"{url}patient_id=subject-003/part-1.parquet",
            f"{url}patient_id=subject-011/part-0.parquet"]  # fmt: skip

    partitions = [f"{url}patient_id=subject-003", f"{url}patient_id=subject-011"]

    planned = ag.forget(GONE, target, keyring=keyring, dry_run=True, storage_options=options)
    assert planned.files_removed == gone and planned.rows_removed == 11
    assert planned.directories_removed == partitions
    assert state(blobs, prefix) == before
    assert not ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options)

    log = ag.AuditLog(tmp_path / "audit.jsonl", keyring=keyring)
    receipt = ag.forget(GONE, target, keyring=keyring, storage_options=options, audit=log)
    assert receipt.files_removed == gone and receipt.rows_removed == 11
    assert all(f["bytes_after"] == 0 for f in receipt.files)
    assert receipt.directories_removed == partitions
    kept = [
        prefix + "patient_id=subject-001/part-0.parquet",
        prefix + "patient_id=subject-001/_SUCCESS",
    ]
    # The rest untouched; no leftover of the subjects' partitions, no journal.
    assert state(blobs, prefix) == {k: before[k] for k in kept}
    assert ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options).ok
    # The audit record names the partitions by pseudonym, never by the identifier.
    record = (tmp_path / "audit.jsonl").read_text()
    assert "subject-003" not in record and "subject-011" not in record
    assert f"{url}patient_id=" in record and log.verify().ok


def test_a_prefix_emptied_of_every_partition_stays_a_valid_empty_dataset(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    prefix = f"by-id-emptied-{uuid.uuid4().hex[:8]}/"
    visits_only = pa.table({"visit": [1, 2, 3]})
    upload(blobs, prefix + "patient_id=subject-003/part-0.parquet", visits_only)
    upload(blobs, prefix + "patient_id=subject-011/part-0.parquet", visits_only)
    container = blobs.get_container_client(CONTAINER)
    container.upload_blob(prefix + "patient_id=subject-003/_SUCCESS", b"")
    url = f"az://{CONTAINER}/{prefix}"
    target = [ag.Dataset(url, id_column="patient_id")]
    options = azurite.storage_options
    receipt = ag.forget(GONE, target, keyring=keyring, storage_options=options)
    assert receipt.rows_removed == 6 and len(receipt.files_removed) == 2
    # Blob storage keeps no empty folder: a hidden marker, naming no subject, keeps the prefix.
    left = state(blobs, prefix)
    assert list(left) == [prefix + "_amlguard_forget.emptied"]
    assert not any(s in left[prefix + "_amlguard_forget.emptied"][1].decode() for s in GONE)
    # A rerun, a later forget and a verification see an empty dataset.
    for subjects, dry_run in ((GONE, False), (["subject-001"], False), (GONE, True)):
        again = ag.forget(subjects, target, keyring=keyring, dry_run=dry_run,
                          storage_options=options)  # fmt: skip
        assert (again.files_scanned, again.rows_removed) == (0, 0)
        assert again.files == [] and again.directories_removed == []
    verification = ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options)
    assert verification.ok and verification.files_scanned == 0
    assert state(blobs, prefix) == left
    # Visible blobs but no Parquet blob: refused, since forgetting nothing would pass for
    # success; no blob at all (never a dataset, a wrong URL): not found.
    container.upload_blob(prefix + "visits.csv", b"patient_id\nsubject-003\n")
    with pytest.raises(ag.InvalidDataError, match="visits.csv"):
        ag.forget(GONE, target, keyring=keyring, storage_options=options)
    with pytest.raises(ag.InvalidDataError, match="no Parquet blobs"):
        ag.verify_forgotten(GONE, target, keyring=keyring, storage_options=options)
    with pytest.raises(ag.StorageNotFoundError, match="no blob lies under this prefix"):
        ag.verify_forgotten(GONE, [ag.Dataset(f"az://{CONTAINER}/never-{uuid.uuid4().hex[:8]}/",
                            id_column="patient_id")], keyring=keyring,
                            storage_options=options)  # fmt: skip


def test_a_partition_blob_changed_before_its_delete_is_kept(
    blobs: BlobServiceClient, azurite: Azurite, keyring: ag.LocalKeyring
) -> None:
    prefix = f"by-id-race-{uuid.uuid4().hex[:8]}/"
    upload(blobs, prefix + "a-first.parquet", people(["subject-003", "subject-001"]))
    # A large blob rewritten next: long enough for another writer to get in.
    big_ids = [f"subject-{i:07d}" for i in range(400_000)] + ["subject-003"]
    upload(blobs, prefix + "b-big.parquet", people(big_ids, rows_each=3))
    partition = prefix + "patient_id=subject-003/part-0.parquet"
    upload(blobs, partition, pa.table({"visit": [1, 2]}))
    first = blobs.get_blob_client(CONTAINER, prefix + "a-first.parquet")
    theirs = parquet_bytes(pa.table({"visit": [7, 8, 9]}))
    changed = blobs.get_blob_client(CONTAINER, partition)
    racing = writing_once_changed(first, lambda: changed.upload_blob(theirs, overwrite=True))
    with racing, pytest.raises(ag.ConcurrentModificationError, match="patient_id=subject-003"):
        ag.forget(["subject-003"], [ag.Dataset(f"az://{CONTAINER}/{prefix}",
                  id_column="patient_id")], keyring=keyring,
                  storage_options=azurite.storage_options)  # fmt: skip
    # Their version of the blob stands: an unconditional delete would have removed it.
    assert blobs.get_blob_client(CONTAINER, partition).download_blob().readall() == theirs
