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

/// Scan every text once per iteration; throughput in bytes of text.
fn bench_texts(c: &mut Criterion, detector: &Detector, name: &str, texts: &[String]) {
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(name, |b| {
        let mut scratch = detector.scratch();
        let mut out: Vec<Finding> = Vec::new();
        b.iter(|| {
            let mut found = 0usize;
            for text in texts {
                detector.find_into(text, &mut scratch, &mut out);
                found += out.len();
            }
            found
        })
    });
    group.finish();
}

fn bench_detect(c: &mut Criterion) {
    let detector = Detector::builtin().expect("built-in detector");
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
    bench_texts(c, &detector, "synthetic_notes", &synthetic);
    let labelled: Vec<String> = labelled_notes(NOTES, 7)
        .into_iter()
        .map(|note| note.text)
        .collect();
    bench_texts(c, &detector, "labelled_notes", &labelled);
    let clean: Vec<String> = (0..NOTES)
        .map(|i| {
            format!(
                "Patient reported feeling better on follow up visit number {}",
                i % 7
            )
        })
        .collect();
    bench_texts(c, &detector, "clean_notes", &clean);
    // Text the pre-filter skips whole: no digit, '@', ':', '/' or '=', no key-like token.
    let no_trigger: Vec<String> = (0..NOTES)
        .map(|i| {
            let day = ["Monday", "Tuesday", "Friday"][i % 3];
            format!("No issues reported during the visit; vitals normal, next check on {day}.")
        })
        .collect();
    bench_texts(c, &detector, "no_trigger_notes", &no_trigger);
}

criterion_group!(benches, bench_detect);
criterion_main!(benches);
