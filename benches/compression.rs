//! Compression throughput: `compress_blob` at the default level 3 on SQL-dump
//! text and on random bytes. A random large chunk takes the incompressible fast
//! path (a 16 KiB level-1 probe); a random small chunk is below the probe's
//! threshold and pays a full zstd pass that is then thrown away.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use cellar::compress::{NONE, ZSTD, compress_blob, decompress_blob};
use support::{KIB, MIB};

const LEVEL: i32 = 3;

fn compression(c: &mut Criterion) {
    let mut g = c.benchmark_group("compress_blob level 3");
    let inputs = [
        ("SQL text 8 KiB", support::sql_text(8 * KIB, 3), ZSTD),
        ("SQL text 1 MiB", support::sql_text(MIB, 3), ZSTD),
        ("random 1 MiB (probe)", support::random_bytes(MIB, 3), NONE),
        (
            "random 8 KiB (no probe)",
            support::random_bytes(8 * KIB, 3),
            NONE,
        ),
    ];
    for (name, data, expect) in &inputs {
        let (kind, out) = compress_blob(data, LEVEL);
        assert_eq!(kind, *expect, "{name}");
        if let Some(out) = out {
            println!("{name}: ratio {:.2}", data.len() as f64 / out.len() as f64);
        }
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(*name, |b| b.iter(|| compress_blob(black_box(data), LEVEL)));
    }
    g.finish();

    let mut g = c.benchmark_group("decompress_blob");
    for (name, data, _) in inputs.iter().filter(|(_, _, k)| *k == ZSTD) {
        let frame = compress_blob(data, LEVEL).1.unwrap();
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| decompress_blob(ZSTD, frame.clone(), data.len()).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, compression);
criterion_main!(benches);
