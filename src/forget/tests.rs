use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::*;
use crate::keys::LocalKeyring;
use crate::mask::hash::DigestEncoding;

fn write(path: &Path, ids: &[&str], values: &[i64]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, true),
        Field::new("value", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(ids.to_vec())),
            Arc::new(Int64Array::from(values.to_vec())),
        ],
    )
    .unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn ids_in(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader = ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        ids.extend(
            batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .map(|v| v.unwrap().to_owned()),
        );
    }
    ids
}

fn raw(path: &Path) -> Vec<Dataset> {
    vec![Dataset {
        path: path.to_path_buf(),
        id_column: "patient_id".into(),
        id_form: IdForm::Raw,
    }]
}

#[test]
fn removes_rows_from_affected_files_only_and_leaves_others_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("year=2024")).unwrap();
    write(
        &data.join("year=2024/a.parquet"),
        &["p1", "p2", "p3"],
        &[1, 2, 3],
    );
    write(&data.join("b.parquet"), &["x1", "x2"], &[4, 5]);
    std::fs::write(data.join("_SUCCESS"), b"").unwrap();
    let untouched_before = std::fs::read(data.join("b.parquet")).unwrap();
    let mtime_before = std::fs::metadata(data.join("b.parquet"))
        .unwrap()
        .modified()
        .unwrap();

    let dry = forget(
        &["p2".into()],
        &raw(&data),
        &keyring,
        &ForgetOptions {
            dry_run: true,
            ..Default::default()
        },
        &RunControl::new(),
    )
    .unwrap();
    assert_eq!(dry.rows_removed, 1);
    assert_eq!(
        ids_in(&data.join("year=2024/a.parquet")),
        ["p1", "p2", "p3"]
    );

    let receipt = forget(
        &["p2".into(), "nobody".into()],
        &raw(&data),
        &keyring,
        &ForgetOptions::default(),
        &RunControl::new(),
    )
    .unwrap();
    assert_eq!(receipt.files.len(), 1);
    assert_eq!(receipt.rows_removed, 1);
    assert_eq!(receipt.files_scanned, 2);
    assert_eq!(ids_in(&data.join("year=2024/a.parquet")), ["p1", "p3"]);
    assert_eq!(
        std::fs::read(data.join("b.parquet")).unwrap(),
        untouched_before
    );
    assert_eq!(
        std::fs::metadata(data.join("b.parquet"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime_before
    );
    assert!(!journal::journal_path(&data).exists());
    assert!(
        verify_forgotten(
            &["p2".into()],
            &raw(&data),
            &keyring,
            None,
            &RunControl::new()
        )
        .unwrap()
        .ok
    );
    let not_found = forget(
        &["nobody".into()],
        &raw(&data),
        &keyring,
        &ForgetOptions::default(),
        &RunControl::new(),
    )
    .unwrap();
    assert!(not_found.files.is_empty() && not_found.rows_removed == 0);
}

#[test]
fn pseudonymised_datasets_are_matched_through_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    keyring.ensure_key("hash-key").unwrap();
    let hasher =
        KeyedHash::new(&keyring.key("hash-key").unwrap(), DigestEncoding::Hex, None).unwrap();
    let p1 = hasher.pseudonym(b"p1");
    let p2 = hasher.pseudonym(b"p2");
    let file = dir.path().join("masked.parquet");
    write(&file, &[&p1, &p2], &[1, 2]);
    let datasets = vec![Dataset {
        path: file.clone(),
        id_column: "patient_id".into(),
        id_form: IdForm::Hash {
            key: "hash-key".into(),
            encoding: DigestEncoding::Hex,
            truncate_bytes: None,
        },
    }];
    let receipt = forget(
        &["p1".into()],
        &datasets,
        &keyring,
        &ForgetOptions::default(),
        &RunControl::new(),
    )
    .unwrap();
    assert_eq!(receipt.rows_removed, 1);
    assert_eq!(ids_in(&file), [p2]);
}
use crate::mask::hash::KeyedHash;

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    assert!(matches!(
        forget(
            &["p".into()],
            &raw(&dir.path().join("nope")),
            &keyring,
            &ForgetOptions::default(),
            &RunControl::new()
        ),
        Err(Error::Io { .. })
    ));
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write(&data.join("a.parquet"), &["p1"], &[1]);
    let other = Arc::new(Schema::new(vec![Field::new("other", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&other),
        vec![Arc::new(StringArray::from(vec!["p1"]))],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(data.join("b.parquet")).unwrap(),
        other,
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let before = std::fs::read(data.join("a.parquet")).unwrap();
    let error = forget(
        &["p1".into()],
        &raw(&data),
        &keyring,
        &ForgetOptions::default(),
        &RunControl::new(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::ColumnNotFound { .. }), "{error}");
    assert!(error.to_string().contains("b.parquet"));
    assert_eq!(std::fs::read(data.join("a.parquet")).unwrap(), before);
}

#[test]
fn a_file_changed_during_the_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.parquet");
    write(&file, &["p1", "p2"], &[1, 2]);
    let needles = Needles::build(
        &["p1".into()],
        &IdForm::Raw,
        &LocalKeyring::unopened(dir.path()),
    )
    .unwrap();
    let control = RunControl::new();
    let scan = parquet::scan_file(&file, "patient_id", &needles, &control).unwrap();
    assert_eq!(scan.matching_rows, 1);
    // Another writer replaces the file between the scan and the swap.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&file, &["p1", "p2", "p9"], &[1, 2, 9]);
    let error =
        parquet::rewrite_file(&scan, "patient_id", &needles, &control, &|_, _| Ok(())).unwrap_err();
    assert!(matches!(error, Error::ConcurrentModification { .. }));
    assert_eq!(ids_in(&file), ["p1", "p2", "p9"]);
}

#[test]
fn shredding_makes_values_unreadable_and_is_in_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    let store = SubjectKeyStore::open(&keyring, "subject-kek", None).unwrap();
    let a = store.encrypt_value("p1", b"secret-1", b"ctx").unwrap();
    let b = store.encrypt_value("p2", b"secret-2", b"ctx").unwrap();
    assert!(matches!(
        store.decrypt_value(&a, b"other"),
        Err(Error::Decryption)
    ));
    let file = dir.path().join("a.parquet");
    write(&file, &["p1"], &[1]);
    let options = ForgetOptions {
        subject_keys: Some(&store),
        ..Default::default()
    };
    let receipt = forget(
        &["p1".into()],
        &raw(&file),
        &keyring,
        &options,
        &RunControl::new(),
    )
    .unwrap();
    assert_eq!(receipt.keys_destroyed.len(), 1);
    assert!(receipt.keys_destroyed[0].physically_removed_at.is_some());
    assert!(matches!(
        store.decrypt_value(&a, b"ctx"),
        Err(Error::Forgotten { .. })
    ));
    assert_eq!(
        store.decrypt_value(&b, b"ctx").unwrap().as_slice(),
        b"secret-2"
    );
    // A new value for a forgotten subject is refused too.
    assert!(matches!(
        store.encrypt_value("p1", b"x", b"ctx"),
        Err(Error::Forgotten { .. })
    ));
}

/// The bytes of every column chunk of row group `index`.
fn chunk_bytes(path: &Path, index: usize) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let file = std::fs::File::open(path).unwrap();
    let metadata = ::parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .unwrap();
    metadata
        .row_group(index)
        .columns()
        .iter()
        .map(|c| {
            let (start, length) = c.byte_range();
            bytes[start as usize..(start + length) as usize].to_vec()
        })
        .collect()
}

#[test]
fn row_groups_without_a_match_are_copied_byte_for_byte_with_their_bloom_filter() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    let path = dir.path().join("a.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, true),
        Field::new("value", DataType::Int64, false),
    ]));
    let properties = ::parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(3))
        .set_column_bloom_filter_enabled("patient_id".into(), true)
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        Arc::clone(&schema),
        Some(properties),
    )
    .unwrap();
    let ids = [
        "a", "b", "c", "d", "gone", "e", "gone", "gone", "gone", "f", "g", "h",
    ];
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ids.to_vec())),
            Arc::new(Int64Array::from((0..12).collect::<Vec<i64>>())),
        ],
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let before: Vec<_> = (0..4).map(|i| chunk_bytes(&path, i)).collect();

    let receipt = forget(
        &["gone".into()],
        &raw(&path),
        &keyring,
        &ForgetOptions::default(),
        &RunControl::new(),
    )
    .unwrap();
    assert_eq!(receipt.rows_removed, 4);
    assert_eq!(ids_in(&path), ["a", "b", "c", "d", "e", "f", "g", "h"]);
    // Row group 2 held only the subject and is gone; 0 and 3 are copied as they were.
    let file = std::fs::File::open(&path).unwrap();
    let builder =
        ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(builder.metadata().num_row_groups(), 3);
    assert_eq!(chunk_bytes(&path, 0), before[0]);
    assert_eq!(chunk_bytes(&path, 2), before[3]);
    assert_ne!(chunk_bytes(&path, 1), before[1]);
    for row_group in 0..3 {
        let filter = builder
            .get_row_group_column_bloom_filter(row_group, 0)
            .unwrap()
            .expect("the id column keeps its bloom filter");
        assert!(!filter.check(&"gone"));
    }
    let filter = builder
        .get_row_group_column_bloom_filter(2, 0)
        .unwrap()
        .unwrap();
    assert!(filter.check(&"h"));
}

/// A file of a partition by the id column, written as pyarrow and Spark write it: without the
/// id column.
fn write_partition_file(path: &Path, values: &[i64]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "value",
        DataType::Int64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(values.to_vec()))],
    )
    .unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn run(root: &Path, subjects: &[&str], dry_run: bool) -> Result<ForgetReceipt> {
    let keyring = LocalKeyring::open(root.parent().unwrap().join("keys")).unwrap();
    let subjects: Vec<String> = subjects.iter().map(|s| (*s).to_owned()).collect();
    let options = ForgetOptions {
        dry_run,
        ..Default::default()
    };
    forget(
        &subjects,
        &raw(root),
        &keyring,
        &options,
        &RunControl::new(),
    )
}

#[test]
fn a_tree_emptied_of_every_partition_is_an_empty_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("visits");
    for subject in ["a", "b"] {
        write_partition_file(
            &root
                .join("year=2024")
                .join(format!("patient_id={subject}"))
                .join("part-0.parquet"),
            &[1, 2],
        );
    }
    std::fs::write(root.join("_SUCCESS"), b"").unwrap();
    let receipt = run(&root, &["a", "b"], false).unwrap();
    assert_eq!(receipt.rows_removed, 4);
    assert_eq!(receipt.directories_removed.len(), 2);
    for dry_run in [true, false] {
        let again = run(&root, &["a", "c"], dry_run).unwrap();
        assert_eq!((again.files_scanned, again.rows_removed), (0, 0));
        assert!(again.files.is_empty() && again.directories_removed.is_empty());
    }
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    let verification = verify_forgotten(
        &["a".into()],
        &raw(&root),
        &keyring,
        None,
        &RunControl::new(),
    )
    .unwrap();
    assert!(verification.ok && verification.files_scanned == 0);
    // Only non-Parquet files: refused, since forgetting nothing there would look like success.
    std::fs::write(root.join("visits.csv"), b"patient_id\na\n").unwrap();
    let error = run(&root, &["a"], false).unwrap_err();
    assert!(matches!(error, Error::InvalidData { .. }), "{error}");
    assert!(error.to_string().contains("visits.csv"), "{error}");
}

#[test]
fn a_dry_run_lists_exactly_the_directories_the_real_run_removes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("visits");
    for subject in ["a", "b", "c", "d"] {
        write_partition_file(
            &root
                .join(format!("patient_id={subject}"))
                .join("part-0.parquet"),
            &[1, 2],
        );
    }
    // Kept by the real run: a visible non-Parquet file in a's partition, and in b's a file
    // keeping the id column with another subject's row (rewritten, not removed).
    std::fs::write(root.join("patient_id=a").join("notes.txt"), b"kept").unwrap();
    write(
        &root.join("patient_id=b").join("x.parquet"),
        &["b", "d"],
        &[9, 9],
    );
    std::fs::write(root.join("patient_id=c").join("_SUCCESS"), b"").unwrap();
    let preview = run(&root, &["a", "b", "c"], true).unwrap();
    let receipt = run(&root, &["a", "b", "c"], false).unwrap();
    let facts = |r: &ForgetReceipt| {
        let files: Vec<_> = r
            .files
            .iter()
            .map(|f| (f.path.clone(), f.rows_before, f.rows_removed, f.removed))
            .collect();
        (files, r.rows_removed, r.directories_removed.clone())
    };
    assert_eq!(facts(&preview), facts(&receipt));
    assert_eq!(receipt.directories_removed, vec![root.join("patient_id=c")]);
    assert!(root.join("patient_id=a").is_dir() && root.join("patient_id=b").is_dir());
    assert_eq!(ids_in(&root.join("patient_id=b").join("x.parquet")), ["d"]);
}

#[test]
fn a_rerun_counts_the_files_a_killed_run_swapped_before_writing_their_done_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("visits");
    std::fs::create_dir_all(&root).unwrap();
    let (rewritten, pending) = (root.join("a.parquet"), root.join("b.parquet"));
    let removed = root.join("patient_id=p2").join("part-0.parquet");
    write(&rewritten, &["p1", "p2", "p3"], &[1, 2, 3]);
    let bytes_before = std::fs::metadata(&rewritten).unwrap().len();
    write(&pending, &["p2", "x"], &[4, 5]);
    let pending_bytes = std::fs::metadata(&pending).unwrap().len();
    // The killed run's state: `a` swapped for its rewrite, the partition file unlinked, each
    // announced by a `replacing` line without its `done` line; `b` announced, not yet swapped.
    write(&rewritten, &["p1", "p3"], &[1, 3]);
    let bytes_after = std::fs::metadata(&rewritten).unwrap().len();
    std::fs::create_dir_all(removed.parent().unwrap()).unwrap();
    let change = |path: &Path, rows: (u64, u64), bytes: (u64, u64), removed: bool| FileChange {
        path: path.to_path_buf(),
        rows_before: rows.0,
        rows_removed: rows.1,
        bytes_before: bytes.0,
        bytes_after: bytes.1,
        removed,
    };
    let swapped = change(&rewritten, (3, 1), (bytes_before, bytes_after), false);
    let unlinked = change(&removed, (2, 2), (700, 0), true);
    let entries = [
        journal::Entry::Start {
            run_id: "killed".into(),
            request: "subjects:1".into(),
            files: vec![rewritten.clone(), pending.clone(), removed.clone()],
        },
        journal::Entry::replacing(
            &swapped,
            String::new(),
            journal::file_sha256(&rewritten).unwrap(),
        ),
        journal::Entry::replacing(
            &change(&pending, (2, 1), (pending_bytes, pending_bytes), false),
            String::new(),
            journal::content_sha256(b"the rewrite that never landed"),
        ),
        journal::Entry::replacing(&unlinked, String::new(), String::new()),
    ];
    let text: String = entries
        .iter()
        .map(|e| journal::encode(e).unwrap())
        .collect();
    std::fs::write(journal::journal_path(&root), text).unwrap();
    std::fs::write(root.join(".a.parquet.killed.tmp"), b"partial").unwrap();

    let receipt = run(&root, &["p2"], false).unwrap();
    assert!(receipt.resumed);
    let counted: Vec<_> = receipt
        .files
        .iter()
        .map(|f| (f.path.clone(), f.rows_removed, f.removed))
        .collect();
    assert_eq!(
        counted,
        [
            (rewritten.clone(), 1, false),
            (pending.clone(), 1, false),
            (removed.clone(), 2, true),
        ]
    );
    assert_eq!(receipt.files[0], swapped);
    assert_eq!(receipt.rows_removed, 4);
    assert_eq!(
        receipt.directories_removed,
        vec![root.join("patient_id=p2")]
    );
    assert_eq!(ids_in(&pending), ["x"]);
    assert_eq!(ids_in(&rewritten), ["p1", "p3"]);
    assert!(!root.join(".a.parquet.killed.tmp").exists());
    assert!(!journal::journal_path(&root).exists());
}

#[test]
fn a_rewrite_is_announced_with_the_hash_of_the_content_swapped_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    write(&path, &["p1", "p2"], &[1, 2]);
    let needles = Needles::build(
        &["p2".into()],
        &IdForm::Raw,
        &LocalKeyring::open(dir.path().join("keys")).unwrap(),
    )
    .unwrap();
    let control = RunControl::new();
    let scan = parquet::scan_file(&path, "patient_id", &needles, &control).unwrap();
    let announced = Mutex::new(None);
    let done = parquet::rewrite_file(&scan, "patient_id", &needles, &control, &|done, sha| {
        // Announced before the swap: the file still holds the old rows.
        assert_eq!(ids_in(&path), ["p1", "p2"]);
        *announced.lock().unwrap() = Some((done.clone(), sha.to_owned()));
        Ok(())
    })
    .unwrap();
    let (announced_done, sha) = announced.into_inner().unwrap().unwrap();
    assert_eq!(announced_done, done);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), done.bytes_after);
    assert_eq!(journal::file_sha256(&path).unwrap(), sha);
    // A refused announcement stops the swap: the file keeps its content.
    write(&path, &["p1", "p2"], &[1, 2]);
    let before = std::fs::read(&path).unwrap();
    let scan = parquet::scan_file(&path, "patient_id", &needles, &control).unwrap();
    let error = parquet::rewrite_file(&scan, "patient_id", &needles, &control, &|_, _| {
        Err(Error::invalid_data(None, "journal unwritable"))
    })
    .unwrap_err();
    assert!(error.to_string().contains("journal unwritable"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
