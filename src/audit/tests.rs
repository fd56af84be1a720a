use std::sync::Arc;

use super::record::GENESIS_HASH;
use super::*;

fn open(dir: &Path, every: u64) -> AuditLog {
    let keyring = LocalKeyring::open(dir.join("keys")).unwrap();
    AuditLog::open(
        dir.join("audit.jsonl"),
        AuditOptions {
            keyring: Some(keyring),
            witness: Some(dir.join("witness.jsonl")),
            checkpoint_every: every,
            ..Default::default()
        },
    )
    .unwrap()
}

fn event(i: u64) -> AuditEvent {
    let mut event = AuditEvent::new("mask");
    event.rows = Some(i);
    event.target.dataset = Some(format!("dataset-{i}"));
    event
}

fn lines(log: &AuditLog) -> Vec<String> {
    std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(log: &AuditLog, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(log.path(), text).unwrap();
}

fn report(dir: &Path) -> VerifyReport {
    verify(
        &dir.join("audit.jsonl"),
        Some(&Witness::file(dir.join("witness.jsonl"))),
        None,
    )
    .unwrap()
}

/// 10 events with a checkpoint after every 3: records 0..=12 (3, 7 and 11 are checkpoints).
fn filled(dir: &Path) -> AuditLog {
    let log = open(dir, 3);
    for i in 0..10 {
        log.append(event(i)).unwrap();
    }
    assert_eq!(log.len().unwrap(), 13);
    log
}

#[test]
fn a_clean_log_verifies_and_checkpoints_go_to_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let report = log.verify(None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records_checked, 13);
    assert_eq!(report.checkpoints_checked, 3);
    assert_eq!(report.witness_checkpoints_checked, 3);
    assert_eq!(report.records_after_last_checkpoint, 1);
    assert_eq!(report.public_key, Some(log.public_key().unwrap()));
}

#[test]
fn modification_is_found_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let mut all = lines(&log);
    all[5] = all[5].replace("dataset-4", "dataset-X");
    write_lines(&log, &all);
    let report = report(dir.path());
    assert!(!report.ok);
    assert_eq!(report.first_bad_record, Some(5));
    assert_eq!(report.records_checked, 5);
}

#[test]
fn deletion_insertion_and_reordering_are_found_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let original = lines(&log);

    let mut deleted = original.clone();
    deleted.remove(4);
    write_lines(&log, &deleted);
    assert_eq!(report(dir.path()).first_bad_record, Some(4));

    let mut inserted = original.clone();
    inserted.insert(6, original[2].clone());
    write_lines(&log, &inserted);
    assert_eq!(report(dir.path()).first_bad_record, Some(6));

    let mut reordered = original.clone();
    reordered.swap(8, 9);
    write_lines(&log, &reordered);
    let found = report(dir.path());
    assert!(!found.ok);
    assert_eq!(found.first_bad_record, Some(8));

    write_lines(&log, &original);
    assert!(report(dir.path()).ok);
}

#[test]
fn truncation_is_found_through_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let all = lines(&log);
    // Cut the log back to before its last checkpoint: the chain alone looks fine.
    write_lines(&log, &all[..9]);
    let report = report(dir.path());
    assert!(!report.ok);
    assert_eq!(report.first_bad_record, Some(9));
    assert!(report.problem.unwrap().contains("truncated"));
    // Without the witness the shortened chain cannot be told from a short log.
    assert!(verify(log.path(), None, None).unwrap().ok);
}

#[test]
fn a_consistently_rehashed_rewrite_is_caught_by_the_signed_roots() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let all = lines(&log);
    // Rewrite record 5 and recompute every later hash, as an attacker without the signing
    // key would: the chain checks pass, the next signed root does not.
    let mut rewritten = Vec::new();
    let mut prev = GENESIS_HASH.to_owned();
    for (i, line) in all.iter().enumerate() {
        let (mut body, _) = RecordBody::decode(line).unwrap();
        if i == 5 {
            body.rows = Some(999);
        }
        body.prev_hash = prev.clone();
        let (encoded, hash) = body.encode().unwrap();
        prev = hex::encode(hash);
        rewritten.push(encoded);
    }
    write_lines(&log, &rewritten);
    let report = report(dir.path());
    assert!(!report.ok);
    assert_eq!(report.first_bad_record, Some(3), "{report:?}");
    assert!(report.problem.unwrap().contains("rewritten"));
}

#[test]
fn appending_to_a_damaged_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let mut all = lines(&log);
    all[2] = all[2].replace("dataset-2", "dataset-9");
    write_lines(&log, &all);
    let fresh = open(dir.path(), 3);
    assert!(matches!(
        fresh.append(event(1)),
        Err(Error::AuditLog { .. })
    ));
}

#[test]
fn an_incomplete_last_record_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let mut text = std::fs::read(log.path()).unwrap();
    text.extend_from_slice(b"{\"v\":1,\"seq\":13,\"ti");
    std::fs::write(log.path(), &text).unwrap();
    assert!(!report(dir.path()).ok);
    let fresh = open(dir.path(), 3);
    let seq = fresh.append(event(99)).unwrap();
    assert_eq!(seq, 13);
    assert!(lines(&fresh)[13].contains("\"recovered_incomplete_bytes\":19"));
    assert!(report(dir.path()).ok);
}

#[test]
fn proofs_verify_with_the_public_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let public_key = log.public_key().unwrap();
    for seq in 0..13 {
        let proof = log.prove(seq).unwrap();
        assert!(verify_proof(&proof, Some(&public_key)), "record {seq}");
        // The proof survives a JSON round trip (it is what a regulator receives).
        let json = serde_json::to_string(&proof).unwrap();
        let parsed: InclusionProof = serde_json::from_str(&json).unwrap();
        assert!(verify_proof(&parsed, Some(&public_key)));
        let mut forged = proof.clone();
        forged.record = forged.record.replacen("\"v\":1", "\"v\":2", 1);
        assert!(!verify_proof(&forged, Some(&public_key)));
        let mut moved = proof.clone();
        moved.leaf_index = (seq + 1) % proof.tree_size;
        assert!(!verify_proof(&moved, Some(&public_key)));
        assert!(!verify_proof(&proof, Some(&hex::encode([1u8; 32]))));
    }
    // The last record was not covered by a checkpoint: proving it wrote one.
    assert_eq!(log.len().unwrap(), 14);
    assert!(matches!(log.prove(99), Err(Error::InvalidArgument { .. })));
}

#[test]
fn a_missing_or_different_signing_key_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    std::fs::remove_dir_all(dir.path().join("keys").join("audit")).unwrap();
    let log = open(dir.path(), 3);
    assert!(matches!(log.checkpoint(), Err(Error::KeyNotFound { .. })));
    // A keyring with another key named "audit": refused, the log stays as it was.
    let log = open(dir.path(), 3);
    log.options
        .keyring
        .as_ref()
        .unwrap()
        .ensure_key("audit")
        .unwrap();
    assert!(matches!(log.checkpoint(), Err(Error::AuditLog { .. })));
    assert!(verify(log.path(), None, None).unwrap().ok);
}

#[test]
fn threads_appending_together_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), 7));
    // A second handle on the same file in the same process takes the file lock separately.
    let other = Arc::new(open(dir.path(), 7));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let log = if t % 2 == 0 {
                Arc::clone(&log)
            } else {
                Arc::clone(&other)
            };
            std::thread::spawn(move || {
                for i in 0..25 {
                    log.append(event(t * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let report = log.verify(None).unwrap();
    assert!(report.ok, "{report:?}");
    let events = lines(&log)
        .iter()
        .filter(|l| l.contains("\"kind\":\"event\""))
        .count();
    assert_eq!(events, 200);
}

#[test]
fn subject_pseudonyms_are_keyed_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 3);
    let a = log.subject_pseudonym("patient-1").unwrap();
    assert_eq!(a, log.subject_pseudonym("patient-1").unwrap());
    assert_ne!(a, log.subject_pseudonym("patient-2").unwrap());
    assert_eq!(a.len(), 64);
    let elsewhere = tempfile::tempdir().unwrap();
    assert_ne!(
        a,
        open(elsewhere.path(), 3)
            .subject_pseudonym("patient-1")
            .unwrap()
    );
}

fn open_hmac(dir: &Path, every: u64) -> AuditLog {
    AuditLog::open(
        dir.join("audit.jsonl"),
        AuditOptions {
            keyring: Some(LocalKeyring::open(dir.join("keys")).unwrap()),
            witness: Some(dir.join("witness.jsonl")),
            checkpoint_every: every,
            checkpoint_signature: SignatureAlgorithm::HmacSha256,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn hmac_signed_logs_verify_and_prove_with_their_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_hmac(dir.path(), 3);
    for i in 0..10 {
        log.append(event(i)).unwrap();
    }
    let keyring = log.options.keyring.clone().unwrap();
    let checkpoint = log.checkpoint().unwrap();
    assert_eq!(checkpoint.algorithm, SignatureAlgorithm::HmacSha256);
    let fingerprint = log.public_key().unwrap();
    assert_eq!(checkpoint.public_key, fingerprint);
    let report = log.verify(None).unwrap();
    assert!(report.ok && report.checkpoints_checked == 4, "{report:?}");
    assert!(report.witness_checked && report.witness_checkpoints_checked == 4);
    assert!(log.verify(Some(&fingerprint)).unwrap().ok);
    assert!(!log.verify(Some(&hex::encode([1u8; 32]))).unwrap().ok);

    // Without the key, verification is a typed error, not a pass.
    let witness = Witness::file(dir.path().join("witness.jsonl"));
    let no_key = verify(log.path(), Some(&witness), None);
    assert!(
        matches!(no_key, Err(Error::KeyNotFound { .. })),
        "{no_key:?}"
    );
    let file = std::fs::File::open(log.path()).unwrap();
    let keyed = verify_reader_with_keyring(log.path(), file, Some(&witness), None, Some(&keyring));
    assert!(keyed.unwrap().ok);

    // Proofs: valid with the key, refused without it or when forged.
    let proof = log.prove(4).unwrap();
    assert!(verify_proof_with_keyring(&proof, Some(&fingerprint), Some(&keyring)).unwrap());
    assert!(!verify_proof(&proof, None));
    assert!(matches!(
        verify_proof_with_keyring(&proof, None, None),
        Err(Error::KeyNotFound { .. })
    ));
    let mut forged = proof.clone();
    forged.record = forged.record.replacen("dataset-", "dataset-x", 1);
    assert!(forged.record != proof.record);
    assert!(!verify_proof_with_keyring(&forged, None, Some(&keyring)).unwrap());

    // A modified record is found and located, as under Ed25519.
    let mut text = lines(&log);
    text[5] = text[5].replacen("dataset-", "dataset-x", 1);
    write_lines(&log, &text);
    let report = log.verify(None).unwrap();
    assert!(
        !report.ok && report.first_bad_record == Some(5),
        "{report:?}"
    );
}

#[test]
fn a_log_keeps_the_algorithm_of_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()); // Ed25519 checkpoints
    let log = open_hmac(dir.path(), 3);
    log.append(event(10)).unwrap();
    let checkpoint = log.checkpoint().unwrap();
    assert_eq!(checkpoint.algorithm, SignatureAlgorithm::Ed25519);
    assert!(verify(log.path(), None, None).unwrap().ok);
    // A missing HMAC key is a typed error on append, and nothing is written.
    let other = tempfile::tempdir().unwrap();
    let log = open_hmac(other.path(), 3);
    log.append(event(0)).unwrap();
    log.checkpoint().unwrap();
    std::fs::remove_dir_all(other.path().join("keys").join("audit")).unwrap();
    let before = std::fs::read(log.path()).unwrap();
    let reopened = open_hmac(other.path(), 3);
    assert!(matches!(
        reopened.append(event(1)),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        reopened.verify(None),
        Err(Error::KeyNotFound { .. })
    ));
    assert_eq!(std::fs::read(log.path()).unwrap(), before);
}
