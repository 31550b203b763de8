//! How long one hash takes in each format pwreset writes, at the default settings
//! (`HashSettings::for_format`): the cost a `reset` pays once per password, and the cost an
//! attacker pays per guess.
//!
//! `cargo bench --bench hash_formats`

use criterion::{Criterion, criterion_group, criterion_main};
use pwreset::password::{Format, HashSettings, hash_as};
use std::hint::black_box;

fn hash_each_format_at_default_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash_as");
    group.sample_size(10);
    for format in Format::ALL {
        let settings = HashSettings::for_format(format);
        group.bench_function(format.name(), |b| {
            b.iter(|| hash_as(black_box("correct horse battery staple"), &settings).expect("hash"))
        });
    }
    group.finish();
}

criterion_group!(benches, hash_each_format_at_default_cost);
criterion_main!(benches);
