//! Criterion benches for each masking operator over 256k synthetic values.
//!
//! Run: `cargo bench --bench operators` (add `-- <filter>` for one operator). Figures are in
//! values per second; `benches/compare.py` compares against the peers from Python.

use std::sync::Arc;

use amlguard::datasets::synthetic_pii;
use amlguard::keys::LocalKeyring;
use amlguard::parallel::RunControl;
use amlguard::policy::Policy;
use arrow_array::RecordBatch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: usize = 256 * 1024;

fn bench_operators(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary keyring directory");
    let keyring = LocalKeyring::open(dir.path()).expect("keyring");
    for name in ["pseudo", "tokens", "cards", "dates"] {
        keyring.ensure_key(name).expect("key");
    }
    let batches: Vec<RecordBatch> = synthetic_pii(ROWS, 1).expect("synthetic data");
    let schema = batches[0].schema();
    let cases = [
        ("redact", "ssn", r#"{"op": "redact"}"#),
        (
            "mask_keep_last_4",
            "card_number",
            r#"{"op": "mask", "keep_last": 4}"#,
        ),
        (
            "mask_email_domain",
            "email",
            r#"{"op": "mask", "keep_first": 1, "keep_email_domain": true}"#,
        ),
        (
            "hash_hmac_sha256",
            "email",
            r#"{"op": "hash", "key": "pseudo"}"#,
        ),
        (
            "tokenize_aes_siv",
            "ssn",
            r#"{"op": "tokenize", "key": "tokens"}"#,
        ),
        ("fpe_ff1", "card_number", r#"{"op": "fpe", "key": "cards"}"#),
        (
            "generalize_width",
            "age",
            r#"{"op": "generalize", "width": 10}"#,
        ),
        (
            "generalize_month",
            "date_of_birth",
            r#"{"op": "generalize", "to": "month"}"#,
        ),
        (
            "date_shift",
            "visit_at",
            r#"{"op": "date_shift", "key": "dates", "max_days": 30, "subject": "person_id"}"#,
        ),
        (
            "noise_laplace",
            "salary",
            r#"{"op": "noise", "scale": 100.0, "seed": 1}"#,
        ),
    ];
    let mut group = c.benchmark_group("operators");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    for (name, column, rule) in cases {
        let policy = Policy::from_json(&format!(r#"{{"columns": {{"{column}": {rule}}}}}"#))
            .expect("bench policy");
        let compiled = Arc::new(policy.compile(schema.clone(), &keyring).expect("compile"));
        for threads in [1usize, 2] {
            group.bench_function(format!("{name}/threads={threads}"), |b| {
                b.iter(|| {
                    compiled
                        .apply_batches_on(&batches, 0, &RunControl::new(), Some(threads))
                        .expect("apply")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_operators);
criterion_main!(benches);
