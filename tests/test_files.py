"""Masking files: streaming, row groups, formats, directories, atomic output, progress."""

from __future__ import annotations

from pathlib import Path

import amlguard as ag
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

POLICY = {
    "columns": {
        "email": {"op": "hash", "key": "pseudo"},
        "ssn": {"op": "tokenize", "key": "tokens"},
        "zip": {"op": "generalize", "prefix": 3, "pad": "*"},
        "age": {"op": "generalize", "width": 10},
    }
}


def test_parquet_matches_in_memory_and_keeps_row_groups(
    tmp_path: Path, people: pa.Table, keyring: ag.LocalKeyring
) -> None:
    source = tmp_path / "people.parquet"
    pq.write_table(people, source, row_group_size=700, compression="zstd")
    destination = tmp_path / "masked.parquet"
    policy = ag.Policy.from_dict(POLICY)
    seen: list[tuple[int, int]] = []
    report = ag.mask_parquet(
        source,
        destination,
        policy,
        keyring=keyring,
        batch_rows=256,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert report.rows == people.num_rows and report.files == 1
    assert report.input_bytes == source.stat().st_size
    assert report.output_bytes == destination.stat().st_size
    assert report.columns_masked == ["email", "ssn", "zip", "age"]
    assert report.policy_fingerprint == policy.fingerprint
    assert "rows=2000" in repr(report) and "<table>" in report._repr_html_()
    assert seen and seen[-1] == (people.num_rows, people.num_rows)
    written = pq.ParquetFile(destination)
    assert [written.metadata.row_group(i).num_rows for i in range(written.num_row_groups)] == [
        700,
        700,
        600,
    ]
    assert written.metadata.row_group(0).column(0).compression == "ZSTD"
    expected = policy.apply(people, keyring=keyring)
    assert written.read().equals(expected.combine_chunks())


def test_csv_keeps_leading_zeros_and_can_become_parquet(
    tmp_path: Path, keyring: ag.LocalKeyring
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("zip,age,ssn,note\n02139,37,123-45-6789,hi\n00501,41,,\n")
    policy = ag.Policy.from_dict(
        {
            "columns": {
                "zip": {"op": "generalize", "prefix": 3},
                "age": {"op": "generalize", "width": 10},
                "ssn": {"op": "redact"},
            }
        }
    )
    ag.mask_file(source, tmp_path / "out.csv", policy, keyring=keyring)
    masked = pacsv.read_csv(
        tmp_path / "out.csv",
        convert_options=pacsv.ConvertOptions(
            strings_can_be_null=True, column_types={"zip": pa.string()}
        ),
    )
    assert masked.column("zip").to_pylist() == ["021", "005"]
    assert masked.column("age").to_pylist() == ["30-39", "40-49"]
    assert masked.column("ssn").to_pylist() == ["[REDACTED]", None]
    ag.mask_file(source, tmp_path / "out.parquet", policy, keyring=keyring)
    assert pq.read_table(tmp_path / "out.parquet").column("zip").to_pylist() == ["021", "005"]


def test_directory_of_files(tmp_path: Path, people: pa.Table, keyring: ag.LocalKeyring) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(people.slice(0, 1000), raw / "part-0.parquet")
    pq.write_table(people.slice(1000), raw / "part-1.parquet")
    (raw / "_SUCCESS").write_text("")
    report = ag.mask_parquet(
        raw, tmp_path / "curated", ag.Policy.from_dict(POLICY), keyring=keyring
    )
    assert report.files == 2 and report.rows == people.num_rows
    assert sorted(p.name for p in (tmp_path / "curated").iterdir()) == [
        "part-0.parquet",
        "part-1.parquet",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    try:
        ag.mask_parquet(empty, tmp_path / "out", ag.Policy.from_dict(POLICY), keyring=keyring)
    except ag.InvalidDataError as err:
        assert "no .parquet" in str(err)
    else:
        raise AssertionError("an empty directory must be an error")
