//! How long one password hash takes at the default argon2id parameters (the OWASP baseline,
//! m=19456 KiB, t=2, p=1). This is the cost a `reset` pays once, and the cost an attacker pays
//! per guess: tune `[password.argon2]` with it.
//!
//! `cargo bench --bench argon2`

use criterion::{Criterion, criterion_group, criterion_main};
use pwreset::config::Argon2;
use std::hint::black_box;

fn hash_at_default_params(c: &mut Criterion) {
    let params = Argon2::default();
    assert_eq!(
        (params.memory_kib, params.iterations, params.parallelism),
        (19456, 2, 1),
        "the benchmark is meant for the documented defaults"
    );
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function("hash m=19456 t=2 p=1", |b| {
        b.iter(|| {
            pwreset::password::hash(black_box("correct horse battery staple"), &params)
                .expect("hash")
        })
    });
    group.finish();
}

criterion_group!(benches, hash_at_default_params);
criterion_main!(benches);
