//! Chunking throughput: `cellar::chunker::chunk_stream` (FastCDC v2020, seeded
//! gear table) with the repository's large and small parameter sets, fed from
//! memory so that only the cutting and the batch copy are measured.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use cellar::chunker::chunk_stream;
use cellar::repofile::ChunkerConfig;

fn chunker(c: &mut Criterion) {
    let data = support::random_bytes(64 * support::MIB, 1);
    let seed = cellar::crypto::Keys::from_master([7; 32]).chunker_seed();
    let cfg = ChunkerConfig::default();
    let mut g = c.benchmark_group("chunker");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for (name, params) in [
        ("large 512K/1M/8M", cfg.large),
        ("small 4K/8K/32K", cfg.small),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut chunks = 0usize;
                let total = chunk_stream(&mut &data[..], params, seed, None, |batch| {
                    chunks += batch.len();
                    black_box(batch);
                    Ok(())
                })
                .unwrap()
                .unwrap();
                assert_eq!(total as usize, data.len());
                chunks
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chunker);
criterion_main!(benches);
