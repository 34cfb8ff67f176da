//! Pack writing: `PackBuilder` add + finish for a 16 MiB pack (the default pack
//! size) of 1 MiB blobs and of 8 KiB blobs. The blobs are sealed beforehand;
//! what is timed is the copy into the pack, the sealed header and the BLAKE3
//! storage hash of the whole file. The buffer is recycled as the packer does.

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use cellar::crypto::Keys;
use cellar::pack::{PackBuilder, SealedBlob, TYPE_DATA};

const PACK: usize = 16 * support::MIB;

fn sealed_blobs(keys: &Keys, blob_len: usize) -> Vec<SealedBlob> {
    let data = support::random_bytes(PACK, 6);
    data.chunks(blob_len)
        .map(|c| SealedBlob::seal(keys, TYPE_DATA, keys.blob_id(c), c, 0))
        .collect()
}

fn copy(b: &SealedBlob) -> SealedBlob {
    SealedBlob {
        id: b.id,
        blob_type: b.blob_type,
        compression: b.compression,
        raw_len: b.raw_len,
        data: b.data.clone(),
    }
}

fn pack(c: &mut Criterion) {
    let keys = Keys::from_master([7; 32]);
    let mut g = c.benchmark_group("pack 16 MiB (add + finish)");
    g.throughput(Throughput::Bytes(PACK as u64));
    g.sample_size(20);
    for (name, blob_len) in [
        ("1 MiB blobs", support::MIB),
        ("8 KiB blobs", 8 * support::KIB),
    ] {
        let blobs = sealed_blobs(&keys, blob_len);
        let mut buffer = Vec::with_capacity(PACK + support::MIB);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    // Copies of the sealed blobs are made outside the timed part.
                    let input: Vec<SealedBlob> = blobs.iter().map(copy).collect();
                    let start = Instant::now();
                    let mut pb = PackBuilder::with_buffer(std::mem::take(&mut buffer));
                    for blob in input {
                        pb.add(blob);
                    }
                    let (id, bytes, entries) = pb.finish(&keys);
                    spent += start.elapsed();
                    black_box((id, entries));
                    buffer = bytes;
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pack);
criterion_main!(benches);
