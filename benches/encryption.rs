//! Sealed boxes: AES-256-GCM `Keys::seal` and `Keys::open` (with a fresh random
//! nonce per seal, as every blob gets) on a large and a small blob.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use cellar::crypto::{Keys, aad};

fn encryption(c: &mut Criterion) {
    let keys = Keys::from_master([7; 32]);
    for (op, seal) in [("seal (AES-256-GCM)", true), ("open (AES-256-GCM)", false)] {
        let mut g = c.benchmark_group(op);
        for (name, len) in [("1 MiB", support::MIB), ("8 KiB", 8 * support::KIB)] {
            let data = support::random_bytes(len, 4);
            let sealed = keys.seal(aad::BLOB_PREFIX, &data);
            g.throughput(Throughput::Bytes(len as u64));
            if seal {
                g.bench_function(name, |b| {
                    b.iter(|| keys.seal(aad::BLOB_PREFIX, black_box(&data)))
                });
            } else {
                g.bench_function(name, |b| {
                    b.iter(|| keys.open(aad::BLOB_PREFIX, black_box(&sealed)).unwrap())
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, encryption);
criterion_main!(benches);
