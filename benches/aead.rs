//! AES-256-GCM backends on one 1 MiB segment, one thread: ring and aws-lc-rs, in place and (for
//! aws-lc-rs) out of place. Run with `cargo bench --bench aead`; compare against
//! `openssl speed -evp aes-256-gcm -bytes 1048576` on the same machine. This is the evidence
//! for the backend `src/envelope/segment.rs` uses.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const SEGMENT: usize = 1 << 20;
const KEY: [u8; 32] = [7u8; 32];
const NONCE: [u8; 12] = [1u8; 12];
const AAD: [u8; 32] = [2u8; 32];

fn ring_backend(c: &mut Criterion) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("key"));
    let mut group = c.benchmark_group("aead/ring");
    group.throughput(Throughput::Bytes(SEGMENT as u64));
    let mut buffer = vec![0x5au8; SEGMENT];
    group.bench_function("seal_in_place", |b| {
        b.iter(|| {
            key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(&AAD),
                black_box(&mut buffer),
            )
            .expect("seal")
        })
    });
    let mut sealed = vec![0x5au8; SEGMENT];
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(NONCE),
            Aad::from(&AAD),
            &mut sealed,
        )
        .expect("seal");
    sealed.extend_from_slice(tag.as_ref());
    group.bench_function("copy_then_open_in_place", |b| {
        let mut work = sealed.clone();
        b.iter(|| {
            work.copy_from_slice(&sealed);
            key.open_in_place(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(&AAD),
                black_box(&mut work),
            )
            .map(|p| p.len())
            .expect("open")
        })
    });
    group.finish();
}

fn aws_lc_backend(c: &mut Criterion) {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("key"));
    let mut group = c.benchmark_group("aead/aws-lc-rs");
    group.throughput(Throughput::Bytes(SEGMENT as u64));
    let mut buffer = vec![0x5au8; SEGMENT];
    group.bench_function("seal_in_place", |b| {
        b.iter(|| {
            key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(&AAD),
                black_box(&mut buffer),
            )
            .expect("seal")
        })
    });
    let plaintext = vec![0x5au8; SEGMENT];
    let mut out = vec![0u8; SEGMENT + 16];
    group.bench_function("seal_out_of_place", |b| {
        b.iter(|| {
            let (ciphertext, tag) = out.split_at_mut(SEGMENT);
            key.seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(&AAD),
                black_box(&plaintext),
                ciphertext,
                &[],
                tag,
            )
            .expect("seal")
        })
    });
    let sealed = out.clone();
    let mut opened = vec![0u8; SEGMENT];
    group.bench_function("open_out_of_place", |b| {
        b.iter(|| {
            let (ciphertext, tag) = sealed.split_at(SEGMENT);
            key.open_separate_gather(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(&AAD),
                black_box(ciphertext),
                tag,
                &mut opened,
            )
            .expect("open")
        })
    });
    group.finish();
}

criterion_group!(benches, ring_backend, aws_lc_backend);
criterion_main!(benches);
