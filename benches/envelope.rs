//! Envelope throughput: encrypt and decrypt 1 MiB and 64 MiB in-memory buffers (1 MiB segments)
//! with one and two threads. Run with `cargo bench --bench envelope`; compare against
//! `openssl speed -evp aes-256-gcm` on the same machine.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use amlguard::envelope::{
    decrypt_bytes_with, encrypt_bytes_with, DecryptOptions, EncryptOptions, EncryptionContext,
};
use amlguard::keys::{KeyEncryptionKey, LocalKeyring};

fn envelope(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let keyring = LocalKeyring::open(dir.path()).expect("keyring");
    keyring.ensure_key("bench").expect("key");
    let kek = keyring.kek("bench").expect("kek");
    let keks: [&dyn KeyEncryptionKey; 1] = [&kek];
    let context = EncryptionContext::from([("dataset".to_string(), "bench".to_string())]);

    let mut group = c.benchmark_group("envelope");
    group.sample_size(10);
    for size in [1usize << 20, 64 << 20] {
        let plaintext = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        for threads in [1usize, 2] {
            let options = EncryptOptions {
                threads: Some(threads),
                ..EncryptOptions::default()
            };
            let label = format!("{}MiB/{threads}t", size >> 20);
            group.bench_with_input(BenchmarkId::new("encrypt", &label), &plaintext, |b, p| {
                b.iter(|| {
                    encrypt_bytes_with(black_box(p), &keks, &context, &options).expect("encrypt")
                })
            });
            let blob = encrypt_bytes_with(&plaintext, &keks, &context, &options).expect("encrypt");
            let decrypt_options = DecryptOptions {
                threads: Some(threads),
                ..DecryptOptions::default()
            };
            group.bench_with_input(BenchmarkId::new("decrypt", &label), &blob, |b, blob| {
                b.iter(|| {
                    decrypt_bytes_with(black_box(blob), &keks, &context, &decrypt_options)
                        .expect("decrypt")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
