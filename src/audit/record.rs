//! One audit record and its byte-exact line encoding.
//!
//! A record is one JSON object on one line. Its `record_hash` is the SHA-256 of the line's own
//! bytes without the trailing `,"record_hash":"…"` member, so verification never depends on a
//! JSON serializer reproducing bytes; the verifier additionally re-serializes the parsed record
//! and requires the same bytes, which rejects duplicate keys and other non-canonical edits.
//! `prev_hash` is the previous record's `record_hash` (64 zeros for the first record), which
//! chains the records. Fields cover the CADF minimum: `actor` (initiator), `action`, `target`,
//! `outcome`, `observer` and `time`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Format version written in `v`.
pub const RECORD_VERSION: u32 = 1;

/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it (CADF initiator). Never holds secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Operating-system user.
    pub user: Option<String>,
    /// Azure managed identity (`client id` or `system-assigned`) when running under one.
    pub managed_identity: Option<String>,
    /// Host name.
    pub host: Option<String>,
    /// Process id.
    pub pid: u32,
}

impl Actor {
    /// The actor of this process, from the environment.
    pub fn current() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let user = env("USER")
            .or_else(|| env("LOGNAME"))
            .or_else(|| env("USERNAME"));
        // IDENTITY_ENDPOINT / MSI_ENDPOINT are set where a managed identity is reachable
        // (App Service, AML compute, Functions); the client id names a user-assigned one.
        let managed_identity =
            (env("IDENTITY_ENDPOINT").is_some() || env("MSI_ENDPOINT").is_some()).then(|| {
                env("DEFAULT_IDENTITY_CLIENT_ID")
                    .or_else(|| env("AZURE_CLIENT_ID"))
                    .unwrap_or_else(|| "system-assigned".to_owned())
            });
        Self {
            user,
            managed_identity,
            host: host_name(),
            pid: std::process::id(),
        }
    }
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
}

/// What reported the event (CADF observer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observer {
    /// Always `amlguard`.
    pub name: String,
    /// amlguard version.
    pub version: String,
}

impl Default for Observer {
    fn default() -> Self {
        Self {
            name: "amlguard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// What was acted on (CADF target): dataset and files, by name only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Dataset name or root path.
    pub dataset: Option<String>,
    /// Files involved.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// CADF outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The operation completed.
    Success,
    /// The operation failed (the record's `error` says why).
    Failure,
}

/// Record kind: an operation, or a signed checkpoint of the records before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// An amlguard operation (mask, forget, ...).
    Event,
    /// A signed Merkle tree head (details hold the checkpoint).
    Checkpoint,
}

/// One record as stored, without its own hash. Field order is the line's byte order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordBody {
    /// Format version.
    pub v: u32,
    /// Position in the log, from 0: the record id and the Merkle leaf index.
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Event or checkpoint.
    pub kind: RecordKind,
    /// What was done (`mask`, `forget`, `checkpoint`, ...).
    pub action: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Who did it.
    pub actor: Actor,
    /// What reported it.
    pub observer: Observer,
    /// What it was done to.
    pub target: Target,
    /// Ids of the keys used or destroyed (never key material).
    pub key_ids: Vec<String>,
    /// Fingerprint of the masking policy, when one was applied.
    pub policy_fingerprint: Option<String>,
    /// Rows processed or removed.
    pub rows: Option<u64>,
    /// Bytes read or rewritten.
    pub bytes: Option<u64>,
    /// Keyed pseudonyms of the data subjects concerned (never their identifiers).
    pub subjects: Vec<String>,
    /// Operation-specific counts and names (never data values).
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Error message on failure (messages never carry data values or key material).
    pub error: Option<String>,
    /// `record_hash` of the previous record.
    pub prev_hash: String,
}

const HASH_MEMBER_PREFIX: &str = ",\"record_hash\":\"";

impl RecordBody {
    /// Encode as a line (without the newline) and return it with its record hash.
    pub fn encode(&self) -> Result<(String, [u8; 32])> {
        let body = serde_json::to_string(self)
            .map_err(|e| Error::invalid_data(None, format!("audit record: {e}")))?;
        let hash: [u8; 32] = Sha256::digest(body.as_bytes()).into();
        let mut line = body;
        line.pop(); // the closing brace; the hash member goes before it
        line.push_str(HASH_MEMBER_PREFIX);
        line.push_str(&hex::encode(hash));
        line.push_str("\"}");
        Ok((line, hash))
    }

    /// Decode and check one line: its record hash must match its bytes and the line must be the
    /// canonical encoding of the record it parses to. Returns the body and its record hash.
    pub fn decode(line: &str) -> std::result::Result<(Self, [u8; 32]), String> {
        let hash_hex_len = 64;
        let suffix_len = HASH_MEMBER_PREFIX.len() + hash_hex_len + 2;
        if line.len() < suffix_len || !line.ends_with("\"}") {
            return Err("the line is not a complete audit record".into());
        }
        let split = line.len() - suffix_len;
        let (head, tail) = line.split_at(split);
        let Some(hash_hex) = tail
            .strip_prefix(HASH_MEMBER_PREFIX)
            .and_then(|t| t.strip_suffix("\"}"))
        else {
            return Err("the record_hash member is missing or not last".into());
        };
        let recorded = super::checkpoint::decode_array::<32>(hash_hex)
            .ok_or("record_hash is not 64 hex digits")?;
        let mut body_text = head.to_owned();
        body_text.push('}');
        let actual: [u8; 32] = Sha256::digest(body_text.as_bytes()).into();
        if actual != recorded {
            return Err("record_hash does not match the record's contents (modified)".into());
        }
        let body: RecordBody = serde_json::from_str(&body_text)
            .map_err(|e| format!("not a valid audit record: {e}"))?;
        let canonical = serde_json::to_string(&body).map_err(|e| e.to_string())?;
        if canonical != body_text {
            return Err("the record is not in canonical form (edited by hand)".into());
        }
        Ok((body, recorded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> RecordBody {
        RecordBody {
            v: RECORD_VERSION,
            seq: 0,
            time: "2024-01-01T00:00:00.000000Z".into(),
            kind: RecordKind::Event,
            action: "mask".into(),
            outcome: Outcome::Success,
            actor: Actor::current(),
            observer: Observer::default(),
            target: Target::default(),
            key_ids: vec!["pseudo@1".into()],
            policy_fingerprint: None,
            rows: Some(3),
            bytes: None,
            subjects: vec![],
            details: Default::default(),
            error: None,
            prev_hash: GENESIS_HASH.into(),
        }
    }

    #[test]
    fn lines_round_trip_and_every_edit_is_caught() {
        let (line, hash) = body().encode().unwrap();
        let (decoded, decoded_hash) = RecordBody::decode(&line).unwrap();
        assert_eq!(decoded, body());
        assert_eq!(hash, decoded_hash);
        assert!(RecordBody::decode(&line.replace("\"rows\":3", "\"rows\":4")).is_err());
        assert!(RecordBody::decode(&line[..line.len() - 1]).is_err());
        // Same content, different bytes (whitespace): rejected as non-canonical even with a
        // recomputed hash.
        let spaced = body().encode().unwrap().0.replace("\"v\":1", "\"v\": 1");
        let spaced_body = &spaced[..spaced.len() - (HASH_MEMBER_PREFIX.len() + 66)];
        let rehashed = format!(
            "{spaced_body}{HASH_MEMBER_PREFIX}{}\"}}",
            hex::encode(Sha256::digest(format!("{spaced_body}}}").as_bytes()))
        );
        assert!(RecordBody::decode(&rehashed)
            .unwrap_err()
            .contains("canonical"));
    }
}
