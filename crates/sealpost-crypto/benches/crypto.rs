//! Criterion benchmarks of the hot paths: seal and open (one block and the largest payload under
//! the default limit), wrap and unwrap of the account key, and the password KDF at INTERACTIVE and
//! MODERATE. `interop/py/bench_libsodium.py` measures libsodium on the same composition.
//!
//! Run: `cargo bench -p sealpost-crypto --bench crypto -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used)] // a benchmark's panic is its error report

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealpost_crypto::{derive, open, seal, AccountKey, KdfParams, KeyPair, Payload, RecoveryKey};
use uuid::Uuid;

const NOW_MS: u64 = 1_795_780_800_123;

/// Payload JSON sizes: a short message (one block) and the largest under the default limit.
fn payloads(from: Uuid, to: Uuid) -> Vec<(&'static str, Payload)> {
    let base = Payload::text(from, to, NOW_MS, "").to_json().len();
    vec![
        (
            "200B",
            Payload::text(from, to, NOW_MS, "x".repeat(200 - base)),
        ),
        (
            "65279B",
            Payload::text(from, to, NOW_MS, "x".repeat(65_279 - base)),
        ),
    ]
}

fn envelope(c: &mut Criterion) {
    let (alice, bob) = (KeyPair::generate(), KeyPair::generate());
    let (alice_id, bob_id) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut group = c.benchmark_group("envelope");
    for (label, payload) in payloads(alice_id, bob_id) {
        assert_eq!(
            payload.to_json().len(),
            label.trim_end_matches('B').parse::<usize>().unwrap()
        );
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("seal", label), &payload, |b, p| {
            b.iter(|| seal(black_box(p), bob.public(), &alice))
        });
        let ct = seal(&payload, bob.public(), &alice);
        group.bench_with_input(BenchmarkId::new("open", label), &ct, |b, ct| {
            b.iter(|| {
                open(
                    black_box(ct),
                    &bob,
                    bob_id,
                    alice_id,
                    alice.public(),
                    NOW_MS,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn wrapping(c: &mut Criterion) {
    let wrap_key = RecoveryKey::generate().wrap_key();
    let account_key = AccountKey::generate();
    let wrapped = account_key.wrap(&wrap_key);
    let mut group = c.benchmark_group("account_key");
    group.bench_function("wrap", |b| {
        b.iter(|| black_box(&account_key).wrap(&wrap_key))
    });
    group.bench_function("unwrap", |b| {
        b.iter(|| AccountKey::unwrap(black_box(&wrapped), &wrap_key).unwrap())
    });
    group.finish();
}

fn kdf(c: &mut Criterion) {
    let mut group = c.benchmark_group("kdf");
    group.sample_size(10);
    for (label, params) in [
        ("interactive", KdfParams::interactive()),
        ("moderate", KdfParams::moderate()),
    ] {
        group.bench_with_input(BenchmarkId::new("derive", label), &params, |b, params| {
            b.iter(|| derive(black_box("correct horse battery staple"), params).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, envelope, wrapping, kdf);
criterion_main!(benches);
