//! Verifying a whole log, and one record's inclusion proof.
//!
//! [`verify`] reads the log once and stops at the first record that fails a check:
//! - its own `record_hash` (a modified record), its canonical form (a hand edit),
//! - its `seq` and `prev_hash` (a deleted, inserted or reordered record),
//! - every checkpoint record: signature, signer (pinned), size and the Merkle root of the
//!   records before it (records rewritten with a recomputed chain; located to the checkpoint
//!   interval, which is as precise as a root allows);
//!
//! then reads the witness: each of its checkpoints must be validly signed, cover no more records
//! than the log holds (else the log was truncated, located at the first missing record) and match
//! the log's root at that size. Records after the last checkpoint are covered by the chain only;
//! the report says how many. HMAC-signed checkpoints are checked with the keyring holding their
//! key ([`verify_reader_with_keyring`]); without it verification stops with
//! [`Error::KeyNotFound`] rather than report a log it could not check.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::checkpoint::{parse_checkpoint, Checkpoint};
use super::merkle::{leaf_hash, root_hash, verify_inclusion, Hash};
use super::record::{RecordBody, RecordKind, GENESIS_HASH};
use super::{InclusionProof, Witness};
use crate::error::{Error, Result};
use crate::keys::LocalKeyring;

/// The outcome of [`verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Whether every check passed.
    pub ok: bool,
    /// Index of the first bad record (for truncation: the first missing one).
    pub first_bad_record: Option<u64>,
    /// Records that passed every check before the first bad one.
    pub records_checked: u64,
    /// What is wrong, when something is.
    pub problem: Option<String>,
    /// Checkpoint records verified in the log.
    pub checkpoints_checked: u64,
    /// Checkpoints verified in the witness.
    pub witness_checkpoints_checked: u64,
    /// Whether a witness was read.
    pub witness_checked: bool,
    /// Public key (hex) that signed the checkpoints.
    pub public_key: Option<String>,
    /// Records after the last checkpoint, protected by the hash chain only.
    pub records_after_last_checkpoint: u64,
}

struct Verifier<'k> {
    report: VerifyReport,
    /// Holds the keys of HMAC-signed checkpoints.
    keyring: Option<&'k LocalKeyring>,
    pinned: Option<String>,
    leaves: Vec<Hash>,
    /// Tree sizes of the checkpoints seen in order, to locate a rewrite to an interval.
    checkpoint_sizes: Vec<u64>,
}

impl Verifier<'_> {
    fn fail(&mut self, index: u64, problem: String) {
        self.report.ok = false;
        self.report.first_bad_record = Some(index);
        self.report.problem = Some(problem);
    }

    /// Start of the checkpoint interval that holds record sizes up to `tree_size`.
    fn interval_start(&self, tree_size: u64) -> u64 {
        self.checkpoint_sizes
            .iter()
            .copied()
            .filter(|size| *size < tree_size)
            .max()
            .unwrap_or(0)
    }

    fn check_signature(&mut self, checkpoint: &Checkpoint) -> Result<bool> {
        if self.pinned.is_none() {
            // Not pinned by the caller: the first checkpoint's key must sign all the others.
            self.pinned = Some(checkpoint.public_key.clone());
            self.report.public_key = Some(checkpoint.public_key.clone());
        }
        checkpoint.verify_signature(self.pinned.as_deref(), self.keyring)
    }

    fn root_at(&self, tree_size: u64) -> Option<Hash> {
        let size = usize::try_from(tree_size).ok()?;
        self.leaves.get(..size).map(root_hash)
    }
}

/// Verify the log at `path` and, if given, its witness (file or append blob).
/// `trusted_public_key` (hex) pins the signer; without it the first checkpoint's key must have
/// signed all the others.
pub fn verify(
    path: &Path,
    witness: Option<&Witness>,
    trusted_public_key: Option<&str>,
) -> Result<VerifyReport> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::io("opening the audit log", path, e))?;
    verify_reader(path, file, witness, trusted_public_key)
}

/// [`verify`] over a log read from `log` (a downloaded blob, say); `path` names it in errors.
pub fn verify_reader(
    path: &Path,
    log: impl Read,
    witness: Option<&Witness>,
    trusted_public_key: Option<&str>,
) -> Result<VerifyReport> {
    verify_reader_with_keyring(path, log, witness, trusted_public_key, None)
}

/// [`verify_reader`] checking HMAC-signed checkpoints with the keys in `keyring` (the exact
/// key versions the checkpoints name); `trusted_public_key` then pins the key's fingerprint.
pub fn verify_reader_with_keyring(
    path: &Path,
    log: impl Read,
    witness: Option<&Witness>,
    trusted_public_key: Option<&str>,
    keyring: Option<&LocalKeyring>,
) -> Result<VerifyReport> {
    let mut verifier = Verifier {
        keyring,
        report: VerifyReport {
            ok: true,
            public_key: trusted_public_key.map(str::to_owned),
            ..Default::default()
        },
        pinned: trusted_public_key.map(str::to_owned),
        leaves: Vec::new(),
        checkpoint_sizes: Vec::new(),
    };
    let mut previous_hash = GENESIS_HASH.to_owned();
    let mut reader = BufReader::new(log);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("reading the audit log", path, e))?;
        if read == 0 {
            break;
        }
        let index = verifier.leaves.len() as u64;
        if line.last() != Some(&b'\n') {
            verifier.fail(index, "the last record is incomplete (no newline)".into());
            return Ok(verifier.report);
        }
        let Ok(text) = std::str::from_utf8(&line[..line.len() - 1]) else {
            verifier.fail(index, "the record is not UTF-8".into());
            return Ok(verifier.report);
        };
        let (body, hash) = match RecordBody::decode(text) {
            Ok(decoded) => decoded,
            Err(problem) => {
                verifier.fail(index, problem);
                return Ok(verifier.report);
            }
        };
        if body.seq != index {
            verifier.fail(
                index,
                format!(
                    "record holds seq {} where {index} belongs: records were deleted, inserted or reordered",
                    body.seq
                ),
            );
            return Ok(verifier.report);
        }
        if body.prev_hash != previous_hash {
            verifier.fail(
                index,
                "prev_hash does not match the previous record: records were deleted, inserted or reordered".into(),
            );
            return Ok(verifier.report);
        }
        if body.kind == RecordKind::Checkpoint {
            let checkpoint = match parse_checkpoint(&serde_json::Value::Object(body.details)) {
                Ok(checkpoint) => checkpoint,
                Err(_) => {
                    verifier.fail(index, "malformed checkpoint".into());
                    return Ok(verifier.report);
                }
            };
            if !verifier.check_signature(&checkpoint)? {
                verifier.fail(
                    index,
                    "checkpoint signature is invalid or by another key".into(),
                );
                return Ok(verifier.report);
            }
            if checkpoint.tree_size != index {
                verifier.fail(
                    index,
                    "checkpoint does not cover exactly the records before it".into(),
                );
                return Ok(verifier.report);
            }
            let root = verifier.root_at(checkpoint.tree_size).map(hex::encode);
            if root.as_deref() != Some(checkpoint.root_hash.as_str()) {
                let start = verifier.interval_start(checkpoint.tree_size);
                verifier.fail(
                    start,
                    format!(
                        "records {start}..{index} do not match the signed checkpoint at record {index}: they were rewritten"
                    ),
                );
                verifier.report.records_checked = start;
                return Ok(verifier.report);
            }
            verifier.checkpoint_sizes.push(checkpoint.tree_size);
            verifier.report.checkpoints_checked += 1;
            verifier.report.records_after_last_checkpoint = 0;
        } else {
            verifier.report.records_after_last_checkpoint += 1;
        }
        verifier.leaves.push(leaf_hash(text.as_bytes()));
        previous_hash = hex::encode(hash);
        verifier.report.records_checked += 1;
    }
    if let Some(witness) = witness {
        check_witness(&mut verifier, witness)?;
    }
    Ok(verifier.report)
}

fn check_witness(verifier: &mut Verifier, witness: &Witness) -> Result<()> {
    verifier.report.witness_checked = true;
    let bytes = match witness.read()? {
        Some(bytes) => bytes,
        None if verifier.checkpoint_sizes.is_empty() => return Ok(()),
        None => {
            return Err(Error::io(
                "reading the audit witness",
                witness.location(),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the log holds checkpoints but the witness does not exist",
                ),
            ))
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let present = verifier.leaves.len() as u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| parse_checkpoint(&v).ok());
        let Some(checkpoint) = parsed else {
            verifier.report.ok = false;
            verifier.report.problem = Some("the witness holds a malformed checkpoint".into());
            return Ok(());
        };
        if !verifier.check_signature(&checkpoint)? {
            verifier.report.ok = false;
            verifier.report.problem =
                Some("a witness checkpoint's signature is invalid or by another key".into());
            return Ok(());
        }
        if checkpoint.tree_size > present {
            verifier.fail(
                present,
                format!(
                    "the log was truncated: the witness has a signed checkpoint over {} records, the log holds {present}",
                    checkpoint.tree_size
                ),
            );
            verifier.report.records_checked = present;
            return Ok(());
        }
        if verifier
            .root_at(checkpoint.tree_size)
            .map(hex::encode)
            .as_deref()
            != Some(checkpoint.root_hash.as_str())
        {
            let start = verifier.interval_start(checkpoint.tree_size);
            verifier.fail(
                start,
                format!(
                    "records {start}..{} do not match the witness's signed checkpoint: they were rewritten",
                    checkpoint.tree_size
                ),
            );
            verifier.report.records_checked = start;
            return Ok(());
        }
        verifier.report.witness_checkpoints_checked += 1;
    }
    Ok(())
}

/// Check an inclusion proof with the public key alone: the checkpoint's signature (by
/// `trusted_public_key` when given), the record's own hash, its position, and the audit path
/// from its leaf hash to the signed root. A proof on an HMAC-signed checkpoint is never valid
/// here; check it with [`verify_proof_with_keyring`].
pub fn verify_proof(proof: &InclusionProof, trusted_public_key: Option<&str>) -> bool {
    proof.checkpoint.signature_valid(trusted_public_key) && proof_leads_to_checkpoint(proof)
}

/// [`verify_proof`] for a checkpoint of either algorithm: an HMAC-signed one is checked with
/// its key from `keyring` ([`Error::KeyNotFound`] without it).
pub fn verify_proof_with_keyring(
    proof: &InclusionProof,
    trusted_public_key: Option<&str>,
    keyring: Option<&LocalKeyring>,
) -> Result<bool> {
    Ok(proof
        .checkpoint
        .verify_signature(trusted_public_key, keyring)?
        && proof_leads_to_checkpoint(proof))
}

/// Whether the record, its position and its audit path lead to the checkpoint's root.
fn proof_leads_to_checkpoint(proof: &InclusionProof) -> bool {
    let checkpoint = &proof.checkpoint;
    if checkpoint.tree_size != proof.tree_size {
        return false;
    }
    let Ok((body, _)) = RecordBody::decode(&proof.record) else {
        return false;
    };
    if body.seq != proof.leaf_index {
        return false;
    }
    let Some(root) = super::checkpoint::decode_array::<32>(&checkpoint.root_hash) else {
        return false;
    };
    let mut path = Vec::with_capacity(proof.audit_path.len());
    for sibling in &proof.audit_path {
        match super::checkpoint::decode_array::<32>(sibling) {
            Some(hash) => path.push(hash),
            None => return false,
        }
    }
    verify_inclusion(
        &leaf_hash(proof.record.as_bytes()),
        proof.leaf_index,
        proof.tree_size,
        &path,
        &root,
    )
}
