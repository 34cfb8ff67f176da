//! Blob id throughput: keyed BLAKE3 (`Keys::blob_id`) on a large chunk and on a
//! small chunk, single-threaded.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use cellar::crypto::Keys;

fn hashing(c: &mut Criterion) {
    let keys = Keys::from_master([7; 32]);
    let mut g = c.benchmark_group("blob id (keyed BLAKE3)");
    for (name, len) in [("1 MiB", support::MIB), ("8 KiB", 8 * support::KIB)] {
        let data = support::random_bytes(len, 2);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| b.iter(|| keys.blob_id(black_box(&data))));
    }
    g.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
