//! amlguard: secure handling of ML data.
//!
//! - [`policy`]: declarative masking policies compiled into [`mask`] operators and applied to
//!   Arrow record batches in parallel;
//! - [`keys`]: key material, the local keyring, key-encryption keys and the DEK cache;
//! - [`envelope`]: the amlguard encrypted container (envelope encryption of bytes and files);
//! - [`columns`]: per-value encryption of Arrow columns (randomized, deterministic, per subject);
//! - [`forget`]: right to be forgotten across Parquet datasets, and crypto-shredding;
//! - [`io`]: masking Parquet and CSV files in bounded memory with atomic writes;
//! - [`detect`]: PII and secret recognizers over free text, column scans and in-text redaction;
//! - [`audit`]: the tamper-evident audit log (hash chain, signed Merkle checkpoints, proofs);
//! - [`pme`]: Parquet Modular Encryption under amlguard keys, interoperable with pyarrow;
//! - [`datasets`]: deterministic synthetic PII for demos, tests and benchmarks.
//!
//! The Python bindings live in `python` behind the `python` feature; the core never needs them.

#![deny(missing_docs)]

pub mod audit;
pub mod columns;
pub mod datasets;
pub mod detect;
pub mod envelope;
pub mod error;
pub mod forget;
pub mod io;
pub mod keys;
pub mod mask;
pub mod parallel;
pub mod pme;
pub mod policy;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
