//! Round-trip, tamper and rotation tests of the container.
//!
//! The tamper tests count outcomes: every case must be rejected and zero may decrypt.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use super::format::{FIXED_LEN, HEADER_TAG_LEN};
use super::*;
use crate::error::Error;
use crate::keys::{KeyEncryptionKey, LocalKek, LocalKeyring};

const SEGMENT: usize = MIN_SEGMENT_SIZE_BYTES;

struct Fixture {
    dir: tempfile::TempDir,
    keyring: LocalKeyring,
    kek: LocalKek,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
    keyring.ensure_key("training-data").unwrap();
    let kek = keyring.kek("training-data").unwrap();
    Fixture { dir, keyring, kek }
}

fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn options(threads: usize) -> EncryptOptions {
    EncryptOptions {
        segment_size_bytes: SEGMENT,
        threads: Some(threads),
        ..EncryptOptions::default()
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn seal(kek: &LocalKek, plaintext: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    encrypt_bytes_with(plaintext, &[kek], ctx, &options(1)).unwrap()
}

/// Header length of a container, read from its own bytes.
fn header_len(blob: &[u8]) -> usize {
    let context_len = u32::from_be_bytes(blob[FIXED_LEN - 4..FIXED_LEN].try_into().unwrap());
    let key_len_at = FIXED_LEN + context_len as usize;
    let key_len = u32::from_be_bytes(blob[key_len_at..key_len_at + 4].try_into().unwrap());
    key_len_at + 4 + key_len as usize + HEADER_TAG_LEN
}

#[test]
fn round_trips_at_and_around_segment_boundaries_sequential_and_parallel() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    for threads in [1, 3] {
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 7,
            7 * SEGMENT + 1,
        ] {
            let plaintext = data(len);
            let blob = encrypt_bytes_with(&plaintext, &[&f.kek], &ctx, &options(threads)).unwrap();
            let segments = len.div_ceil(SEGMENT).max(1);
            assert_eq!(
                blob.len(),
                header_len(&blob) + len + segments * TAG_LEN,
                "len {len}"
            );
            let opened = decrypt_bytes(&blob, &[&f.kek], &ctx).unwrap();
            assert_eq!(
                opened.as_slice(),
                plaintext.as_slice(),
                "len {len} threads {threads}"
            );
        }
    }
}

#[test]
fn writer_accepts_small_writes_and_reader_seeks_anywhere() {
    let f = fixture();
    let ctx = context(&[]);
    let plaintext = data(5 * SEGMENT + 123);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let mut writer = EncryptingWriter::new(Vec::new(), &keks, &ctx, &options(2)).unwrap();
    for chunk in plaintext.chunks(1000) {
        writer.write_all(chunk).unwrap();
    }
    assert_eq!(writer.plaintext_bytes(), plaintext.len() as u64);
    let blob = writer.finish().unwrap();
    assert_eq!(
        decrypt_bytes(&blob, &keks, &ctx).unwrap().as_slice(),
        plaintext.as_slice()
    );

    let mut reader = DecryptingReader::open(Cursor::new(&blob), &keks, &ctx).unwrap();
    assert_eq!(reader.plaintext_len(), plaintext.len() as u64);
    for start in [
        0,
        1,
        SEGMENT - 3,
        SEGMENT,
        2 * SEGMENT + 17,
        plaintext.len() - 5,
    ] {
        reader.seek(SeekFrom::Start(start as u64)).unwrap();
        let mut got = vec![0u8; 10.min(plaintext.len() - start)];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, &plaintext[start..start + got.len()], "at {start}");
    }
    reader.seek(SeekFrom::End(-3)).unwrap();
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &plaintext[plaintext.len() - 3..]);
    reader.seek(SeekFrom::Start(u64::MAX / 2)).unwrap();
    assert_eq!(reader.read(&mut [0u8; 4]).unwrap(), 0);
    reader.seek(SeekFrom::Start(5)).unwrap();
    assert!(reader.seek(SeekFrom::Current(-10)).is_err());
}

#[test]
fn empty_plaintext_is_one_empty_final_segment() {
    let f = fixture();
    let ctx = context(&[]);
    let blob = seal(&f.kek, b"", &ctx);
    assert_eq!(blob.len(), header_len(&blob) + TAG_LEN);
    assert!(decrypt_bytes(&blob, &[&f.kek], &ctx).unwrap().is_empty());
    // Dropping the lone tag leaves no final segment.
    assert!(matches!(
        decrypt_bytes(&blob[..blob.len() - TAG_LEN], &[&f.kek], &ctx),
        Err(Error::Decryption)
    ));
}

/// Decrypt a candidate; `true` when it decrypted (a failure of the test for tampered input).
fn decrypts(blob: &[u8], keks: &[&dyn KeyEncryptionKey], ctx: &EncryptionContext) -> bool {
    decrypt_bytes(blob, keks, ctx).is_ok()
}

#[test]
fn flipping_any_bit_is_rejected() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients"), ("purpose", "training")]);
    let blob = seal(&f.kek, &data(SEGMENT + 10), &ctx);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let mut accepted = Vec::new();
    let mut cases = 0;
    let mut tampered = blob.clone();
    for byte in 0..blob.len() {
        for bit in 0..8 {
            tampered[byte] ^= 1 << bit;
            if decrypts(&tampered, &keks, &ctx) {
                accepted.push((byte, bit));
            }
            tampered[byte] ^= 1 << bit;
            cases += 1;
        }
    }
    assert_eq!(cases, blob.len() * 8);
    assert!(
        accepted.is_empty(),
        "{} of {cases} flips decrypted: {accepted:?}",
        accepted.len()
    );
    assert!(
        decrypts(&tampered, &keks, &ctx),
        "the untampered container still decrypts"
    );
}

#[test]
fn flipping_sampled_bits_of_a_larger_container_is_rejected() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    let blob = seal(&f.kek, &data(40 * SEGMENT + 321), &ctx);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    // A fixed LCG spreads 300 flips over header, every segment body and every tag.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut tampered = blob.clone();
    let mut accepted = 0;
    for _ in 0..300 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let bit = (state >> 11) as usize % (blob.len() * 8);
        tampered[bit / 8] ^= 1 << (bit % 8);
        accepted += usize::from(decrypts(&tampered, &keks, &ctx));
        tampered[bit / 8] ^= 1 << (bit % 8);
    }
    assert_eq!(accepted, 0);
}

#[test]
fn authentication_failures_are_opaque() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    let blob = seal(&f.kek, &data(100), &ctx);
    let mut tag_flip = blob.clone();
    let last = tag_flip.len() - 1;
    tag_flip[last] ^= 1;
    let mut body_flip = blob.clone();
    body_flip[header_len(&blob) + 3] ^= 1;
    let errors = [
        decrypt_bytes(&tag_flip, &[&f.kek], &ctx).unwrap_err(),
        decrypt_bytes(&body_flip, &[&f.kek], &ctx).unwrap_err(),
        decrypt_bytes(&blob, &[&f.kek], &context(&[("dataset", "claims")])).unwrap_err(),
    ];
    for error in &errors {
        assert!(matches!(error, Error::Decryption));
        assert_eq!(error.to_string(), errors[0].to_string());
    }
}

/// Split a container into header and ciphertext segments.
fn split(blob: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let header = header_len(blob);
    let segments = blob[header..]
        .chunks(SEGMENT + TAG_LEN)
        .map(<[u8]>::to_vec)
        .collect();
    (blob[..header].to_vec(), segments)
}

fn join(header: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header.to_vec();
    for segment in segments {
        out.extend_from_slice(segment);
    }
    out
}

#[test]
fn truncation_dropping_duplicating_and_reordering_segments_are_rejected() {
    let f = fixture();
    let ctx = context(&[]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    for len in [3 * SEGMENT, 3 * SEGMENT + 100] {
        let blob = seal(&f.kek, &data(len), &ctx);
        let (header, segments) = split(&blob);
        let mut candidates: Vec<(String, Vec<u8>)> = Vec::new();
        // Truncation at every segment boundary and around it, and in the middle of segments.
        let boundary = |i: usize| header.len() + i * (SEGMENT + TAG_LEN);
        for i in 0..=segments.len() {
            for delta in [-17i64, -16, -1, 0, 1, 16, 100] {
                let cut = boundary(i) as i64 + delta;
                if cut >= header.len() as i64 && (cut as usize) < blob.len() {
                    candidates.push((format!("cut at {cut}"), blob[..cut as usize].to_vec()));
                }
            }
        }
        for i in 0..segments.len() {
            let mut dropped = segments.clone();
            dropped.remove(i);
            candidates.push((format!("drop {i}"), join(&header, &dropped)));
            let mut duplicated = segments.clone();
            duplicated.insert(i, segments[i].clone());
            candidates.push((format!("duplicate {i}"), join(&header, &duplicated)));
            for j in 0..segments.len() {
                if i != j {
                    let mut swapped = segments.clone();
                    swapped.swap(i, j);
                    candidates.push((format!("swap {i} {j}"), join(&header, &swapped)));
                }
            }
        }
        let mut appended = blob.clone();
        appended.extend_from_slice(&segments[0]);
        candidates.push(("append".into(), appended));
        let accepted: Vec<&String> = candidates
            .iter()
            .filter(|(_, candidate)| decrypts(candidate, &keks, &ctx))
            .map(|(name, _)| name)
            .collect();
        assert!(candidates.len() > 30);
        assert!(accepted.is_empty(), "decrypted: {accepted:?}");
    }
}

#[test]
fn headers_and_segments_cannot_move_between_containers() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let a = seal(&f.kek, &data(2 * SEGMENT + 5), &ctx);
    let b = seal(&f.kek, &data(2 * SEGMENT + 5), &ctx);
    let (header_a, segments_a) = split(&a);
    let (header_b, segments_b) = split(&b);
    let mut candidates = vec![join(&header_a, &segments_b), join(&header_b, &segments_a)];
    for i in 0..segments_a.len() {
        let mut spliced = segments_a.clone();
        spliced[i] = segments_b[i].clone();
        candidates.push(join(&header_a, &spliced));
    }
    assert_eq!(
        candidates
            .iter()
            .filter(|c| decrypts(c, &keks, &ctx))
            .count(),
        0
    );
}

#[test]
fn wrong_context_kek_or_version_is_rejected() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients"), ("purpose", "training")]);
    let blob = seal(&f.kek, &data(100), &ctx);

    // Subset of the stored context is accepted; anything else is not.
    assert!(decrypts(
        &blob,
        &[&f.kek],
        &context(&[("dataset", "patients")])
    ));
    assert!(decrypts(&blob, &[&f.kek], &context(&[])));
    for wrong in [
        context(&[("dataset", "claims")]),
        context(&[("dataset", "patients"), ("extra", "x")]),
        context(&[("Dataset", "patients")]),
    ] {
        assert!(matches!(
            decrypt_bytes(&blob, &[&f.kek], &wrong),
            Err(Error::Decryption)
        ));
    }

    // Another key name: nothing matches, and the error lists the recorded ids.
    f.keyring.ensure_key("other").unwrap();
    let other = f.keyring.kek("other").unwrap();
    match decrypt_bytes(&blob, &[&other], &ctx) {
        Err(Error::NoMatchingKek { recorded, offered }) => {
            assert_eq!(recorded, "local:training-data@1");
            assert_eq!(offered, "local:other@1");
        }
        other => panic!("expected NoMatchingKek, got {other:?}"),
    }
    assert!(matches!(
        decrypt_bytes(&blob, &[], &ctx),
        Err(Error::NoMatchingKek { .. })
    ));

    // Same name in another keyring: the key is simply wrong.
    let elsewhere = LocalKeyring::open(f.dir.path().join("elsewhere")).unwrap();
    elsewhere.ensure_key("training-data").unwrap();
    let impostor = elsewhere.kek("training-data").unwrap();
    assert!(matches!(
        decrypt_bytes(&blob, &[&impostor], &ctx),
        Err(Error::Decryption)
    ));

    // A header edited to claim another version of the right key does not decrypt.
    f.keyring.rotate("training-data").unwrap();
    let text = blob.clone();
    let at = text
        .windows(b"training-data@1".len())
        .position(|w| w == b"training-data@1")
        .unwrap();
    let mut relabelled = text.clone();
    relabelled[at + b"training-data@".len()] = b'2';
    let v2 = f.keyring.kek("training-data").unwrap();
    assert!(!decrypts(&relabelled, &[&v2], &ctx));
    // The honest header still decrypts with the rotated KEK: it unwraps with version 1.
    assert!(decrypts(&blob, &[&v2], &ctx));
}

#[test]
fn several_keks_any_one_decrypts() {
    let f = fixture();
    f.keyring.ensure_key("region-b").unwrap();
    let b = f.keyring.kek("region-b").unwrap();
    let ctx = context(&[]);
    let blob = encrypt_bytes(&data(10), &[&f.kek, &b], &ctx).unwrap();
    assert!(decrypts(&blob, &[&f.kek], &ctx));
    assert!(decrypts(&blob, &[&b], &ctx));
    let info = DecryptingReader::open(Cursor::new(&blob), &[&b], &ctx)
        .unwrap()
        .header_info()
        .clone();
    assert_eq!(
        info.key_ids(),
        vec!["local:training-data@1", "local:region-b@1"]
    );
}

#[test]
fn structural_errors_are_typed() {
    let f = fixture();
    let ctx = context(&[]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let blob = seal(&f.kek, &data(10), &ctx);
    assert!(matches!(
        decrypt_bytes(b"", &keks, &ctx),
        Err(Error::NotEnvelope { .. })
    ));
    assert!(matches!(
        decrypt_bytes(b"PAR1....", &keks, &ctx),
        Err(Error::NotEnvelope { .. })
    ));
    assert!(matches!(
        decrypt_bytes(&blob[..40], &keks, &ctx),
        Err(Error::TruncatedHeader { .. })
    ));
    let mut version = blob.clone();
    version[4] = 9;
    assert!(matches!(
        decrypt_bytes(&version, &keks, &ctx),
        Err(Error::UnsupportedFormatVersion { version: 9, .. })
    ));
    let mut suite = blob.clone();
    suite[5] = 9;
    assert!(matches!(
        decrypt_bytes(&suite, &keks, &ctx),
        Err(Error::UnsupportedSuite { .. })
    ));
    let mut huge = blob.clone();
    huge[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decrypt_bytes(&huge, &keks, &ctx),
        Err(Error::MalformedHeader { .. })
    ));

    for bad in [0, 100, MAX_SEGMENT_SIZE_BYTES + 1] {
        let options = EncryptOptions {
            segment_size_bytes: bad,
            threads: Some(1),
            ..EncryptOptions::default()
        };
        assert!(matches!(
            encrypt_bytes_with(b"x", &keks, &ctx, &options),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        encrypt_bytes(b"x", &[], &ctx),
        Err(Error::InvalidArgument { .. })
    ));
    let empty_key = context(&[("", "x")]);
    assert!(matches!(
        encrypt_bytes(b"x", &keks, &empty_key),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn debug_and_errors_never_show_key_bytes() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let blob = seal(&f.kek, &data(10), &ctx);
    let reader = DecryptingReader::open(Cursor::new(&blob), &keks, &ctx).unwrap();
    let writer = EncryptingWriter::new(Vec::new(), &keks, &ctx, &options(1)).unwrap();
    let raw = f.keyring.key("training-data").unwrap();
    let raw_bytes =
        std::fs::read(f.keyring.path().join("training-data").join("v000001.key")).unwrap();
    assert_eq!(raw_bytes.len(), 32);
    let header = super::stream::read_header(&mut &blob[..], "the input").unwrap();
    let wrapped = header.header.wrapped_keys[0].wrapped.clone();
    let shown = [
        format!("{:?}", reader),
        format!("{:?}", writer),
        format!("{:?}", reader.header_info()),
        format!("{:?}", header),
        format!("{:?}", f.kek),
        format!("{:?}", raw),
        decrypt_bytes(&blob, &keks, &context(&[("x", "y")]))
            .unwrap_err()
            .to_string(),
    ]
    .join("\n");
    assert!(shown.contains("local:training-data@1"));
    for secret in [&raw_bytes[..], &wrapped[..], &header.header.salt[..]] {
        assert!(!shown.contains(&hex::encode(secret)));
        assert!(!shown.contains(&format!("{:?}", secret)[1..20]));
    }
}

#[test]
fn files_round_trip_atomically_and_refuse_bad_input() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let dir = f.dir.path();
    let plain = dir.join("patients.parquet");
    let sealed = dir.join("patients.parquet.amlg");
    let out = dir.join("out.parquet");
    std::fs::write(&plain, data(5 * SEGMENT + 3)).unwrap();

    let report = encrypt_file(&plain, &sealed, &keks, &ctx, &options(2)).unwrap();
    assert_eq!(report.plaintext_bytes, 5 * SEGMENT as u64 + 3);
    assert_eq!(report.segments, 6);
    assert_eq!(
        report.container_bytes,
        std::fs::metadata(&sealed).unwrap().len()
    );
    let info = inspect(&sealed).unwrap();
    assert_eq!(info.plaintext_len_bytes, Some(report.plaintext_bytes));
    assert_eq!(info.context, ctx);
    assert_eq!(info.segment_size_bytes as usize, SEGMENT);

    for threads in [1, 2] {
        let options = DecryptOptions {
            threads: Some(threads),
            ..DecryptOptions::default()
        };
        let report = decrypt_file(&sealed, &out, &keks, &ctx, &options).unwrap();
        assert_eq!(report.plaintext_bytes, 5 * SEGMENT as u64 + 3);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());
        std::fs::remove_file(&out).unwrap();
    }

    // A container whose last segment is corrupt leaves no output and no temporary file.
    let corrupt = dir.join("corrupt.amlg");
    let mut bytes = std::fs::read(&sealed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&corrupt, &bytes).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let decrypt_options = DecryptOptions {
        threads: Some(1),
        ..DecryptOptions::default()
    };
    assert!(matches!(
        decrypt_file(&corrupt, &out, &keks, &ctx, &decrypt_options),
        Err(Error::Decryption)
    ));
    let after: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before.len(), after.len(), "no temporary file left behind");
    assert!(!out.exists());
    // The same holds when the corruption is in a middle segment found only while streaming.
    let mut bytes = std::fs::read(&sealed).unwrap();
    let middle = header_len(&bytes) + 2 * (SEGMENT + TAG_LEN) + 5;
    bytes[middle] ^= 1;
    std::fs::write(&corrupt, &bytes).unwrap();
    std::fs::write(&out, b"previous contents").unwrap();
    assert!(decrypt_file(&corrupt, &out, &keks, &ctx, &decrypt_options).is_err());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"previous contents",
        "destination untouched"
    );

    // Bad input: missing source, same source and destination, a plaintext file, an empty file.
    assert!(matches!(
        decrypt_file(&dir.join("missing"), &out, &keks, &ctx, &decrypt_options),
        Err(Error::Io { .. })
    ));
    assert!(encrypt_file(&plain, &plain, &keks, &ctx, &options(1)).is_err());
    assert!(matches!(
        decrypt_file(&plain, &out, &keks, &ctx, &decrypt_options),
        Err(Error::NotEnvelope { .. })
    ));
    let empty = dir.join("empty.amlg");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(inspect(&empty), Err(Error::NotEnvelope { .. })));
    assert!(matches!(
        inspect(&dir.join("missing")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn files_round_trip_with_any_thread_count_at_and_around_segment_boundaries() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let dir = f.dir.path();
    let (plain, sealed, out) = (dir.join("p.bin"), dir.join("p.amlg"), dir.join("o.bin"));
    for len in [
        0,
        1,
        SEGMENT - 1,
        SEGMENT,
        SEGMENT + 1,
        2 * SEGMENT,
        3 * SEGMENT + 7,
        7 * SEGMENT,
    ] {
        let plaintext = data(len);
        std::fs::write(&plain, &plaintext).unwrap();
        for encrypt_threads in [1, 2, 3] {
            let report =
                encrypt_file(&plain, &sealed, &keks, &ctx, &options(encrypt_threads)).unwrap();
            let blob = std::fs::read(&sealed).unwrap();
            let segments = len.div_ceil(SEGMENT).max(1);
            assert_eq!(report.segments, segments as u64, "len {len}");
            assert_eq!(report.container_bytes, blob.len() as u64);
            assert_eq!(blob.len(), header_len(&blob) + len + segments * TAG_LEN);
            // The in-memory opener and the streaming reader agree with the file path.
            let opened = decrypt_bytes(&blob, &keks, &ctx).unwrap();
            assert_eq!(opened.as_slice(), plaintext.as_slice(), "len {len}");
            let mut streamed = Vec::new();
            DecryptingReader::open(Cursor::new(&blob), &keks, &ctx)
                .unwrap()
                .read_to_end(&mut streamed)
                .unwrap();
            assert_eq!(streamed, plaintext, "len {len}");
            for decrypt_threads in [1, 2, 3] {
                let options = DecryptOptions {
                    threads: Some(decrypt_threads),
                    ..DecryptOptions::default()
                };
                let report = decrypt_file(&sealed, &out, &keks, &ctx, &options).unwrap();
                assert_eq!(report.plaintext_bytes, len as u64);
                assert_eq!(
                    std::fs::read(&out).unwrap(),
                    plaintext,
                    "len {len} threads {encrypt_threads}/{decrypt_threads}"
                );
                std::fs::remove_file(&out).unwrap();
            }
        }
    }
}

#[test]
fn parallel_file_decryption_of_any_corrupt_segment_leaves_nothing() {
    let f = fixture();
    let ctx = context(&[]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let dir = f.dir.path();
    let (plain, sealed, out) = (dir.join("p.bin"), dir.join("p.amlg"), dir.join("o.bin"));
    std::fs::write(&plain, data(4 * SEGMENT + 9)).unwrap();
    encrypt_file(&plain, &sealed, &keks, &ctx, &options(3)).unwrap();
    let good = std::fs::read(&sealed).unwrap();
    let payload = header_len(&good);
    let corrupt = dir.join("corrupt.amlg");
    std::fs::write(&out, b"previous contents").unwrap();
    let files_before = std::fs::read_dir(dir).unwrap().count() + 1;
    let mut decrypted = 0;
    for segment in 0..5 {
        for threads in [2, 3] {
            let mut bytes = good.clone();
            bytes[payload + segment * (SEGMENT + TAG_LEN) + 3] ^= 0x10;
            std::fs::write(&corrupt, &bytes).unwrap();
            let options = DecryptOptions {
                threads: Some(threads),
                ..DecryptOptions::default()
            };
            match decrypt_file(&corrupt, &out, &keks, &ctx, &options) {
                Err(Error::Decryption) => {}
                Err(other) => panic!("segment {segment}: unexpected error {other}"),
                Ok(_) => decrypted += 1,
            }
            assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
            assert_eq!(
                std::fs::read_dir(dir).unwrap().count(),
                files_before,
                "no temporary file left behind"
            );
        }
    }
    assert_eq!(decrypted, 0);
    // A container cut short at a segment boundary is rejected the same way.
    std::fs::write(&corrupt, &good[..payload + 2 * (SEGMENT + TAG_LEN)]).unwrap();
    let options = DecryptOptions {
        threads: Some(2),
        ..DecryptOptions::default()
    };
    assert!(matches!(
        decrypt_file(&corrupt, &out, &keks, &ctx, &options),
        Err(Error::Decryption)
    ));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
}

#[cfg(unix)]
#[test]
fn read_only_destination_directory_is_a_typed_error() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let ctx = context(&[]);
    let keks: [&dyn KeyEncryptionKey; 1] = [&f.kek];
    let plain = f.dir.path().join("plain.bin");
    std::fs::write(&plain, b"abc").unwrap();
    let locked = f.dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let result = encrypt_file(&plain, &locked.join("x.amlg"), &keks, &ctx, &options(1));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Root ignores directory permissions; only check when the OS enforced them.
    if let Err(error) = result {
        assert!(matches!(error, Error::Io { .. }));
    }
}

#[test]
fn rotation_rewrap_and_retiring_the_old_version() {
    let f = fixture();
    let ctx = context(&[("dataset", "patients")]);
    let dir = f.dir.path();
    let plain = dir.join("plain.bin");
    let sealed = dir.join("sealed.amlg");
    let out = dir.join("out.bin");
    std::fs::write(&plain, data(3 * SEGMENT + 9)).unwrap();
    let v1 = f.keyring.kek("training-data").unwrap();
    encrypt_file(&plain, &sealed, &[&v1], &ctx, &options(1)).unwrap();
    let payload_before = {
        let bytes = std::fs::read(&sealed).unwrap();
        bytes[header_len(&bytes)..].to_vec()
    };

    f.keyring.rotate("training-data").unwrap();
    let v2 = f.keyring.kek("training-data").unwrap();
    assert_eq!(v2.key_id(), "local:training-data@2");
    let options = DecryptOptions::default();
    decrypt_file(&sealed, &out, &[&v2], &ctx, &options).unwrap();
    std::fs::remove_file(&out).unwrap();

    let info = rewrap(&sealed, &[&v1], &[&v2]).unwrap();
    assert_eq!(info.key_ids(), vec!["local:training-data@2"]);
    assert_eq!(inspect(&sealed).unwrap(), info);
    let bytes = std::fs::read(&sealed).unwrap();
    assert_eq!(
        &bytes[header_len(&bytes)..],
        payload_before.as_slice(),
        "payload untouched"
    );

    // Retire version 1: the rewrapped file still decrypts with version 2 alone.
    std::fs::remove_file(f.keyring.path().join("training-data").join("v000001.key")).unwrap();
    let v2_only = f.keyring.kek_version("training-data", 2).unwrap();
    decrypt_file(&sealed, &out, &[&v2_only], &ctx, &options).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());

    // A file never rewrapped now fails with an actionable error naming the missing version.
    let old = encrypt_bytes(b"x", &[&v1], &ctx).unwrap();
    assert!(matches!(
        decrypt_bytes(&old, &[&v2_only], &ctx),
        Err(Error::KeyNotFound { .. })
    ));

    // Rewrap with a KEK that does not match is refused and leaves the file as it was.
    f.keyring.ensure_key("other").unwrap();
    let other = f.keyring.kek("other").unwrap();
    assert!(matches!(
        rewrap(&sealed, &[&other], &[&other]),
        Err(Error::NoMatchingKek { .. })
    ));
    assert_eq!(std::fs::read(&sealed).unwrap(), bytes);
}

#[test]
fn caching_kek_unwraps_once_for_many_containers_sharing_a_dek() {
    use crate::keys::{CachingKek, DekCacheLimits};
    let f = fixture();
    let ctx = context(&[]);
    let dir = f.dir.path();
    let sealed = dir.join("a.amlg");
    std::fs::write(dir.join("a"), data(10)).unwrap();
    encrypt_file(&dir.join("a"), &sealed, &[&f.kek], &ctx, &options(1)).unwrap();
    let cached = CachingKek::new(
        f.keyring.kek("training-data").unwrap(),
        DekCacheLimits::default(),
    );
    for i in 0..3 {
        let out = dir.join(format!("out{i}"));
        decrypt_file(&sealed, &out, &[&cached], &ctx, &DecryptOptions::default()).unwrap();
    }
    assert_eq!(cached.cache().len(), 1);
}
