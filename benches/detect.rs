//! Criterion bench for the detector's single-thread scan over labelled synthetic notes.
//!
//! Run: `cargo bench --bench detect`. Throughput is in bytes of text per second on one core;
//! `benches/compare_detect.py` compares against the peers from Python.

use amlguard::datasets::synthetic_pii;
use amlguard::detect::labelled::labelled_notes;
use amlguard::detect::{Detector, Finding};
use arrow_array::{cast::AsArray, Array};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const NOTES: usize = 20_000;

fn bench_detect(c: &mut Criterion) {
    let notes = labelled_notes(NOTES, 7);
    let bytes: usize = notes.iter().map(|n| n.text.len()).sum();
    let clean: Vec<String> = (0..NOTES)
        .map(|i| {
            format!(
                "Patient reported feeling better on follow up visit number {}",
                i % 7
            )
        })
        .collect();
    let clean_bytes: usize = clean.iter().map(String::len).sum();
    // The column the throughput comparison in benches/compare_detect.py runs on.
    let synthetic: Vec<String> = synthetic_pii(NOTES, 1)
        .expect("synthetic data")
        .iter()
        .flat_map(|batch| {
            let notes = batch.column_by_name("note").expect("note column");
            let notes = notes.as_string::<i32>();
            (0..notes.len())
                .map(|i| notes.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let synthetic_bytes: usize = synthetic.iter().map(String::len).sum();
    let detector = Detector::builtin().expect("built-in detector");
    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(synthetic_bytes as u64));
    group.bench_function("synthetic_notes", |b| {
        let mut scratch = detector.scratch();
        let mut out: Vec<Finding> = Vec::new();
        b.iter(|| {
            let mut found = 0usize;
            for text in &synthetic {
                detector.find_into(text, &mut scratch, &mut out);
                found += out.len();
            }
            found
        })
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("labelled_notes", |b| {
        let mut scratch = detector.scratch();
        let mut out: Vec<Finding> = Vec::new();
        b.iter(|| {
            let mut found = 0usize;
            for note in &notes {
                detector.find_into(&note.text, &mut scratch, &mut out);
                found += out.len();
            }
            found
        })
    });
    group.throughput(Throughput::Bytes(clean_bytes as u64));
    group.bench_function("clean_notes", |b| {
        let mut scratch = detector.scratch();
        let mut out: Vec<Finding> = Vec::new();
        b.iter(|| {
            let mut found = 0usize;
            for text in &clean {
                detector.find_into(text, &mut scratch, &mut out);
                found += out.len();
            }
            found
        })
    });
    group.finish();
}

criterion_group!(benches, bench_detect);
criterion_main!(benches);
