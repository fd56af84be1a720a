use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, StringViewArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field};
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::*;
use crate::error::{Error, Result};
use crate::io::blob::StorageOptions;
use crate::keys::LocalKeyring;
use crate::parallel::RunControl;

struct Setup {
    dir: tempfile::TempDir,
    keyring: LocalKeyring,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    for name in ["footer-key", "pii-key", "finance-key"] {
        keyring.ensure_key(name).unwrap();
    }
    Setup { dir, keyring }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn keys(&self) -> Option<Arc<dyn MasterKeys>> {
        Some(Arc::new(self.keyring.clone()))
    }
}

fn location(path: &Path) -> Location {
    Location::parse(path.to_str().unwrap(), &StorageOptions::default()).unwrap()
}

fn people(rows: usize, offset: usize) -> RecordBatch {
    let ids: Vec<i64> = (offset..offset + rows).map(|i| i as i64).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        (
            "ssn",
            Arc::new(StringArray::from_iter((offset..offset + rows).map(|i| {
                (i % 7 != 0).then(|| format!("{:03}-{:02}-{:04}", i % 900, i % 97, i % 9999))
            }))) as ArrayRef,
        ),
        (
            "salary",
            Arc::new(Float64Array::from_iter(
                (offset..offset + rows).map(|i| (i % 5 != 0).then_some(i as f64 * 10.5)),
            )) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn pii_options() -> ParquetWriteOptions {
    ParquetWriteOptions {
        footer_key: Some("footer-key".into()),
        column_keys: [
            ("pii-key".to_string(), vec!["ssn".to_string()]),
            ("finance-key".to_string(), vec!["salary".to_string()]),
        ]
        .into_iter()
        .collect(),
        ..ParquetWriteOptions::default()
    }
}

fn write(
    batches: &[RecordBatch],
    path: &Path,
    keys: Option<Arc<dyn MasterKeys>>,
    options: &ParquetWriteOptions,
) -> Result<ParquetReport> {
    write_parquet(
        batches.iter().cloned().map(Ok),
        batches[0].schema(),
        &location(path),
        keys,
        options,
        &RunControl::new(),
    )
}

fn read(
    path: &Path,
    keys: Option<Arc<dyn MasterKeys>>,
    columns: Option<&[&str]>,
) -> Result<(RecordBatch, ParquetReport)> {
    let options = ParquetReadOptions {
        columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        ..ParquetReadOptions::default()
    };
    let (schema, batches, report) =
        read_parquet(&location(path), keys, &options, &RunControl::new())?;
    Ok((
        arrow_select::concat::concat_batches(&schema, &batches).unwrap(),
        report,
    ))
}

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

fn every_type(rows: usize) -> RecordBatch {
    let n = rows as i32;
    let mut tags = ListBuilder::new(StringBuilder::new());
    for i in 0..n {
        if i % 4 == 0 {
            tags.append_null();
        } else {
            tags.values().append_value(format!("t{i}"));
            tags.values().append_null();
            tags.append(true);
        }
    }
    let address = StructArray::from(vec![
        (
            Arc::new(Field::new("zip", DataType::Utf8, true)),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 3 != 0).then(|| format!("{:05}", i * 7))),
            )) as ArrayRef,
        ),
        (
            Arc::new(Field::new("floor", DataType::Int32, true)),
            Arc::new(Int32Array::from_iter(
                (0..n).map(|i| (i % 2 == 0).then_some(i)),
            )) as ArrayRef,
        ),
    ]);
    let dictionary: DictionaryArray<Int32Type> =
        (0..n).map(|i| ["a", "b", "c"][(i % 3) as usize]).collect();
    let batch = RecordBatch::try_from_iter([
        (
            "int",
            Arc::new(Int32Array::from_iter(
                (0..n).map(|i| (i % 5 != 0).then_some(i)),
            )) as ArrayRef,
        ),
        (
            "flag",
            Arc::new(BooleanArray::from_iter(
                (0..n).map(|i| (i % 6 != 0).then_some(i % 2 == 0)),
            )) as ArrayRef,
        ),
        (
            "view",
            Arc::new(StringViewArray::from_iter((0..n).map(|i| {
                (i % 4 != 1).then(|| format!("a longer string value {i}"))
            }))) as ArrayRef,
        ),
        (
            "blob",
            Arc::new(BinaryArray::from_iter(
                (0..n).map(|i| (i % 3 != 2).then(|| vec![i as u8; (i % 5) as usize])),
            )) as ArrayRef,
        ),
        (
            "born",
            Arc::new(Date32Array::from_iter(
                (0..n).map(|i| (i % 7 != 3).then_some(i * 11)),
            )) as ArrayRef,
        ),
        (
            "seen",
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    (0..n).map(|i| (i % 8 != 3).then_some(i as i64 * 1_000_003)),
                )
                .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(
                Decimal128Array::from_iter((0..n).map(|i| (i % 9 != 4).then_some(i as i128 * 101)))
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ) as ArrayRef,
        ),
        ("tags", Arc::new(tags.finish()) as ArrayRef),
        ("address", Arc::new(address) as ArrayRef),
        ("grade", Arc::new(dictionary) as ArrayRef),
    ])
    .unwrap();
    // Every field nullable, whatever this batch's nulls, so batches of any size share a schema.
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    RecordBatch::try_new(
        Arc::new(arrow_schema::Schema::new(fields)),
        batch.columns().to_vec(),
    )
    .unwrap()
}

#[test]
fn every_type_round_trips_encrypted_with_nulls_and_many_row_groups() {
    let s = setup();
    let path = s.path("types.parquet");
    let batches = [every_type(1000), every_type(777), every_type(1)];
    let options = ParquetWriteOptions {
        column_keys: [
            (
                "pii-key".to_string(),
                vec!["view".to_string(), "address".to_string()],
            ),
            (
                "finance-key".to_string(),
                vec![
                    "amount".to_string(),
                    "tags".to_string(),
                    "grade".to_string(),
                ],
            ),
        ]
        .into_iter()
        .collect(),
        row_group_rows: 300,
        ..pii_options()
    };
    let written = write(&batches, &path, s.keys(), &options).unwrap();
    assert_eq!(written.rows, 1778);
    assert_eq!(written.row_groups, 6);
    // A nested column's top-level name covers its leaves.
    assert_eq!(
        written.encrypted_columns,
        [
            "view",
            "address.zip",
            "address.floor",
            "amount",
            "tags.list.item",
            "grade"
        ]
    );
    for threads in [Some(1), None] {
        let options = ParquetReadOptions {
            threads,
            batch_rows: 128,
            ..ParquetReadOptions::default()
        };
        let (schema, out, report) =
            read_parquet(&location(&path), s.keys(), &options, &RunControl::new()).unwrap();
        assert!(out.iter().all(|b| b.num_rows() <= 128));
        assert_eq!(
            arrow_select::concat::concat_batches(&schema, &out).unwrap(),
            concat(&batches)
        );
        assert_eq!(report.rows, 1778);
        assert_eq!(report.row_groups, 6);
        let mut encrypted = report.encrypted_columns.clone();
        encrypted.sort();
        let mut expected = written.encrypted_columns.clone();
        expected.sort();
        assert_eq!(encrypted, expected);
    }
}

#[test]
fn uniform_encryption_and_plain_files_round_trip() {
    let s = setup();
    let batches = [people(500, 0), people(10, 500)];
    let uniform = ParquetWriteOptions {
        footer_key: Some("footer-key".into()),
        ..ParquetWriteOptions::default()
    };
    let path = s.path("uniform.parquet");
    let report = write(&batches, &path, s.keys(), &uniform).unwrap();
    assert_eq!(report.encrypted_columns, ["id", "ssn", "salary"]);
    assert_eq!(report.kms_calls.wraps, 1);
    let (back, read_report) = read(&path, s.keys(), None).unwrap();
    assert_eq!(back, concat(&batches));
    assert_eq!(read_report.kms_calls.unwraps, 1);

    let plain = s.path("plain.parquet");
    let report = write(&batches, &plain, None, &ParquetWriteOptions::default()).unwrap();
    assert!(report.encrypted_columns.is_empty());
    assert_eq!(report.kms_calls, KmsCalls::default());
    // A plain file reads with or without keys, and other Parquet readers read it.
    assert_eq!(read(&plain, None, None).unwrap().0, concat(&batches));
    assert_eq!(read(&plain, s.keys(), None).unwrap().0, concat(&batches));
    let reader = SerializedFileReader::new(std::fs::File::open(&plain).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 510);
}

#[test]
fn empty_tables_round_trip() {
    let s = setup();
    let path = s.path("empty.parquet");
    let empty = people(0, 0);
    let report = write(
        std::slice::from_ref(&empty),
        &path,
        s.keys(),
        &pii_options(),
    )
    .unwrap();
    assert_eq!(report.rows, 0);
    let (schema, batches, _) = read_parquet(
        &location(&path),
        s.keys(),
        &ParquetReadOptions::default(),
        &RunControl::new(),
    )
    .unwrap();
    assert_eq!(schema, empty.schema());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[test]
fn provider_calls_do_not_grow_with_row_groups_or_columns() {
    let s = setup();
    let batches: Vec<RecordBatch> = (0..10).map(|i| people(100, i * 100)).collect();
    let path = s.path("calls.parquet");
    for (double_wrapping, row_group_rows) in [(true, 1000), (true, 50), (false, 50)] {
        let options = ParquetWriteOptions {
            double_wrapping,
            row_group_rows,
            ..pii_options()
        };
        let written = write(&batches, &path, s.keys(), &options).unwrap();
        let (back, read_report) = read(&path, s.keys(), None).unwrap();
        assert_eq!(back, concat(&batches));
        assert_eq!(written.row_groups, (1000 / row_group_rows) as u64);
        // Three master keys, two encrypted columns: double wrapping wraps one per-file key
        // per master key; single wrapping wraps the footer key and one key per column. Either
        // way, reading unwraps each once, however many row groups.
        assert_eq!(written.kms_calls.wraps, 3, "double={double_wrapping}");
        assert_eq!(read_report.kms_calls.unwraps, 3, "double={double_wrapping}");
        assert_eq!(read_report.kms_calls.wraps, 0);
    }
}

#[test]
fn reading_without_keys_or_with_wrong_keys_is_a_typed_error() {
    let s = setup();
    let path = s.path("pii.parquet");
    let batch = people(100, 0);
    write(
        std::slice::from_ref(&batch),
        &path,
        s.keys(),
        &pii_options(),
    )
    .unwrap();

    assert!(matches!(
        read(&path, None, None),
        Err(Error::ParquetKeysRequired { .. })
    ));
    // The encrypted footer hides even the unencrypted columns.
    assert!(matches!(
        read(&path, None, Some(&["id"])),
        Err(Error::ParquetKeysRequired { .. })
    ));

    // Same key names in another keyring: the wrapped keys fail authentication.
    let other = LocalKeyring::open(s.path("other-keys")).unwrap();
    for name in ["footer-key", "pii-key", "finance-key"] {
        other.ensure_key(name).unwrap();
    }
    assert!(matches!(
        read(&path, Some(Arc::new(other)), None),
        Err(Error::Decryption)
    ));

    // A keyring without the master keys says which one is missing.
    let empty = LocalKeyring::open(s.path("no-keys")).unwrap();
    match read(&path, Some(Arc::new(empty)), None) {
        Err(Error::KeyNotFound { name, .. }) => assert_eq!(name, "footer-key@1"),
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
    // The footer key but not the column keys: the missing column key is named, though
    // parquet asks for it deep inside the column reader.
    let partial_dir = s.path("partial-keys");
    std::fs::create_dir_all(partial_dir.join("footer-key")).unwrap();
    for entry in std::fs::read_dir(s.keyring.path().join("footer-key")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            partial_dir.join("footer-key").join(entry.file_name()),
        )
        .unwrap();
    }
    let partial = LocalKeyring::open(&partial_dir).unwrap();
    match read(&path, Some(Arc::new(partial)), None) {
        Err(Error::KeyNotFound { name, .. }) => {
            assert!(name == "pii-key@1" || name == "finance-key@1", "{name}")
        }
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
    // Writing with a missing master key fails before anything is written.
    let missing = s.path("missing.parquet");
    let options = ParquetWriteOptions {
        footer_key: Some("no-such-key".into()),
        ..ParquetWriteOptions::default()
    };
    assert!(matches!(
        write(&[batch], &missing, s.keys(), &options),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(!missing.exists());
}

#[test]
fn a_plaintext_footer_leaves_unencrypted_columns_readable_without_keys() {
    let s = setup();
    let path = s.path("open-footer.parquet");
    let batch = people(300, 0);
    let options = ParquetWriteOptions {
        plaintext_footer: true,
        ..pii_options()
    };
    let written = write(std::slice::from_ref(&batch), &path, s.keys(), &options).unwrap();
    assert!(written.plaintext_footer);

    let (ids, report) = read(&path, None, Some(&["id"])).unwrap();
    assert_eq!(ids.column(0), batch.column(0));
    assert!(report.plaintext_footer);
    assert_eq!(report.kms_calls, KmsCalls::default());
    assert!(matches!(
        read(&path, None, Some(&["id", "ssn"])),
        Err(Error::ParquetKeysRequired { .. })
    ));
    assert_eq!(read(&path, s.keys(), None).unwrap().0, batch);
    // A plain Parquet reader sees the schema and row count, not the encrypted statistics.
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let metadata = reader.metadata();
    assert_eq!(metadata.file_metadata().num_rows(), 300);
    assert!(metadata.row_group(0).column(1).statistics().is_none());
    assert!(metadata.row_group(0).column(0).statistics().is_some());
}

/// Byte range of a column chunk in row group 0.
fn column_chunk_range(path: &Path, keys: Arc<dyn MasterKeys>, column: usize) -> (usize, usize) {
    // Only the key tools' reader can see the encrypted footer; ask it for the layout.
    let kms = Arc::new(AmlguardKms::new(keys));
    let factory = parquet_key_management::crypto_factory::CryptoFactory::new(
        move |_: &parquet_key_management::kms::KmsConnectionInfo| {
            Ok(kms.clone() as parquet_key_management::kms::KmsClientRef)
        },
    );
    let properties = factory
        .file_decryption_properties(Default::default(), Default::default())
        .unwrap();
    let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
        .with_file_decryption_properties(properties);
    let metadata = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
        &std::fs::File::open(path).unwrap(),
        options,
    )
    .unwrap();
    let (start, len) = metadata.metadata().row_group(0).column(column).byte_range();
    (start as usize, len as usize)
}

#[test]
fn tampering_with_an_encrypted_column_or_the_footer_fails_authentication() {
    let s = setup();
    let path = s.path("tamper.parquet");
    let batch = people(2000, 0);
    for plaintext_footer in [false, true] {
        let options = ParquetWriteOptions {
            plaintext_footer,
            ..pii_options()
        };
        write(std::slice::from_ref(&batch), &path, s.keys(), &options).unwrap();
        let original = std::fs::read(&path).unwrap();
        let (start, len) = column_chunk_range(&path, s.keys().unwrap(), 1);
        let footer_len = u32::from_le_bytes(
            original[original.len() - 8..original.len() - 4]
                .try_into()
                .unwrap(),
        ) as usize;
        let footer = original.len() - 8 - footer_len;
        for at in [
            start + 2,
            start + len / 2,
            start + len - 1,
            footer + footer_len / 2,
        ] {
            let mut tampered = original.clone();
            tampered[at] ^= 0x01;
            std::fs::write(&path, &tampered).unwrap();
            let outcome = read(&path, s.keys(), None);
            assert!(
                matches!(outcome, Err(Error::Decryption)),
                "byte {at} (column chunk {start}..{}, footer at {footer}, plaintext footer {plaintext_footer}): {outcome:?}",
                start + len
            );
        }
        std::fs::write(&path, &original).unwrap();
        assert_eq!(read(&path, s.keys(), None).unwrap().0, batch);
    }
}

#[test]
fn files_stay_readable_after_rotation_and_new_files_use_the_new_version() {
    let s = setup();
    let path = s.path("rotate.parquet");
    let batch = people(50, 0);
    write(
        std::slice::from_ref(&batch),
        &path,
        s.keys(),
        &pii_options(),
    )
    .unwrap();
    s.keyring.rotate("pii-key").unwrap();
    s.keyring.rotate("footer-key").unwrap();
    assert_eq!(read(&path, s.keys(), None).unwrap().0, batch);

    let kms = AmlguardKms::new(s.keys().unwrap());
    let wrapped = kms.wrap(&[7u8; 16], "pii-key").unwrap();
    assert!(
        wrapped.contains("\"keyId\":\"local:pii-key@2\""),
        "{wrapped}"
    );
    assert_eq!(
        kms.unwrap(&wrapped, "pii-key").unwrap().as_slice(),
        &[7u8; 16]
    );
    // Served from memory the second time.
    kms.unwrap(&wrapped, "pii-key").unwrap();
    assert_eq!(
        kms.calls(),
        KmsCalls {
            wraps: 1,
            unwraps: 1
        }
    );
}

#[test]
fn a_wrapped_key_cannot_be_redirected_to_another_master_key() {
    let s = setup();
    let kms = AmlguardKms::new(s.keys().unwrap());
    let wrapped = kms.wrap(&[1u8; 16], "finance-key").unwrap();
    assert!(matches!(
        kms.unwrap(&wrapped, "pii-key"),
        Err(Error::NoMatchingKek { .. })
    ));
    // Relabelled to claim the other key: authentication fails.
    let relabelled = wrapped.replace("local:finance-key@1", "local:pii-key@1");
    assert!(matches!(
        kms.unwrap(&relabelled, "pii-key"),
        Err(Error::Decryption)
    ));
    assert!(matches!(
        kms.unwrap("bm90IG91cnM=", "pii-key"),
        Err(Error::InvalidData { .. })
    ));
    assert!(!format!("{kms:?}").contains("wrapped"));
}

#[test]
fn bad_configurations_are_refused_before_writing() {
    let s = setup();
    let path = s.path("bad.parquet");
    let batch = people(10, 0);
    let typo = ParquetWriteOptions {
        column_keys: [("pii-key".to_string(), vec!["sssn".to_string()])]
            .into_iter()
            .collect(),
        ..pii_options()
    };
    assert!(matches!(
        write(std::slice::from_ref(&batch), &path, s.keys(), &typo),
        Err(Error::ColumnNotFound { column, .. }) if column == "sssn"
    ));
    let twice = ParquetWriteOptions {
        column_keys: [
            ("pii-key".to_string(), vec!["ssn".to_string()]),
            ("finance-key".to_string(), vec!["ssn".to_string()]),
        ]
        .into_iter()
        .collect(),
        ..pii_options()
    };
    assert!(matches!(
        write(std::slice::from_ref(&batch), &path, s.keys(), &twice),
        Err(Error::InvalidArgument { .. })
    ));
    let no_footer = ParquetWriteOptions {
        footer_key: None,
        ..pii_options()
    };
    assert!(matches!(
        write(std::slice::from_ref(&batch), &path, s.keys(), &no_footer),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        write(&[batch], &path, None, &pii_options()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(!path.exists());
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let s = setup();
    let out_dir = s.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let path = out_dir.join("partial.parquet");
    let good = people(100, 0);
    let batches = vec![
        Ok(good.clone()),
        Err(Error::invalid_data(Some("ssn"), "the source broke")),
    ];
    let options = ParquetWriteOptions {
        row_group_rows: 10,
        ..pii_options()
    };
    let outcome = write_parquet(
        batches,
        good.schema(),
        &location(&path),
        s.keys(),
        &options,
        &RunControl::new(),
    );
    assert!(matches!(outcome, Err(Error::InvalidData { .. })));
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}

fn key_ids_in(material_file: &Path) -> Vec<String> {
    let store: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(material_file).unwrap()).unwrap();
    let mut ids: Vec<String> = store
        .values()
        .map(|text| {
            let material: serde_json::Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
            let wrapped = if material["doubleWrapping"].as_bool().unwrap() {
                &material["wrappedKEK"]
            } else {
                &material["wrappedDEK"]
            };
            let wrapped: serde_json::Value =
                serde_json::from_str(wrapped.as_str().unwrap()).unwrap();
            wrapped["keyId"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn external_key_material_is_rewrapped_without_touching_the_data_file() {
    for double_wrapping in [true, false] {
        let s = setup();
        let path = s.path("external.parquet");
        let batch = people(300, 0);
        let options = ParquetWriteOptions {
            external_key_material: true,
            double_wrapping,
            row_group_rows: 100,
            ..pii_options()
        };
        write(std::slice::from_ref(&batch), &path, s.keys(), &options).unwrap();
        let material = key_material_path(&path);
        assert_eq!(
            key_ids_in(&material),
            [
                "local:finance-key@1",
                "local:footer-key@1",
                "local:pii-key@1"
            ]
        );
        assert_eq!(read(&path, s.keys(), None).unwrap().0, batch);
        let data_before = std::fs::read(&path).unwrap();

        for name in ["footer-key", "pii-key", "finance-key"] {
            s.keyring.rotate(name).unwrap();
        }
        let report =
            rotate_parquet_keys(&location(&path), s.keys().unwrap(), double_wrapping).unwrap();
        assert_eq!(report.keys_rewrapped, 3);
        assert_eq!(report.key_material_path, material);
        assert_eq!(
            report.kms_calls,
            KmsCalls {
                wraps: 3,
                unwraps: 3
            }
        );
        assert_eq!(std::fs::read(&path).unwrap(), data_before);
        assert_eq!(
            key_ids_in(&material),
            [
                "local:finance-key@2",
                "local:footer-key@2",
                "local:pii-key@2"
            ]
        );
        // Only the new versions are needed now.
        for name in ["footer-key", "pii-key", "finance-key"] {
            std::fs::remove_file(s.path("keys").join(name).join("v000001.key")).unwrap();
        }
        let keyring = LocalKeyring::open(s.path("keys")).unwrap();
        assert_eq!(read(&path, Some(Arc::new(keyring)), None).unwrap().0, batch);
    }
}

#[test]
fn missing_external_key_material_and_internal_material_rotation_are_typed_errors() {
    let s = setup();
    let batch = people(20, 0);
    let inside = s.path("inside.parquet");
    write(
        std::slice::from_ref(&batch),
        &inside,
        s.keys(),
        &pii_options(),
    )
    .unwrap();
    assert!(!key_material_path(&inside).exists());
    let error = rotate_parquet_keys(&location(&inside), s.keys().unwrap(), true).unwrap_err();
    assert!(
        matches!(&error, Error::ParquetKeyMaterial { message, .. } if message.contains("rewrite")),
        "{error:?}"
    );

    let outside = s.path("outside.parquet");
    let options = ParquetWriteOptions {
        external_key_material: true,
        ..pii_options()
    };
    write(std::slice::from_ref(&batch), &outside, s.keys(), &options).unwrap();
    std::fs::remove_file(key_material_path(&outside)).unwrap();
    let error = read(&outside, s.keys(), None).unwrap_err();
    assert!(
        matches!(&error, Error::ParquetKeyMaterial { message, .. } if message.contains("missing")),
        "{error:?}"
    );
}
