//! Tree blobs: encoding (which sorts) and decoding (which checks every bound)
//! a directory of 10,000 files.

mod support;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use cellar::id::BlobId;
use cellar::tree::{self, Kind, Node};

const ENTRIES: usize = 10_000;

/// A Cells data folder: files of one to four chunks, in read_dir (unsorted) order.
fn directory() -> Vec<Node> {
    let mut rng = support::Rng::new(5);
    let mut nodes: Vec<Node> = (0..ENTRIES)
        .map(|i| {
            let mut n = Node::new(
                format!("IMG_{:05}-{:08x}.jpg", i, rng.next_u64() as u32).into_bytes(),
                Kind::File,
            );
            n.mode = 0o644;
            n.uid = 1000;
            n.gid = 1000;
            n.user = "pydio".into();
            n.group = "pydio".into();
            n.mtime = (1_714_528_800 + rng.below(1 << 24) as i64, 123_456_789);
            n.ctime = n.mtime;
            n.inode = rng.next_u64() >> 20;
            n.size = rng.below(4 << 20);
            n.content = (0..1 + rng.below(4))
                .map(|_| {
                    let mut id = [0u8; 32];
                    rng.fill(&mut id);
                    BlobId(id)
                })
                .collect();
            n
        })
        .collect();
    // A deterministic shuffle so `encode` has sorting to do, as in a backup.
    for i in (1..nodes.len()).rev() {
        nodes.swap(i, rng.below(i as u64 + 1) as usize);
    }
    nodes
}

fn trees(c: &mut Criterion) {
    let nodes = directory();
    let encoded = tree::encode(&mut nodes.clone());
    println!("tree of {ENTRIES} entries: {} bytes", encoded.len());
    let mut g = c.benchmark_group("tree 10,000 entries");
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("encode", |b| {
        b.iter_batched_ref(
            || nodes.clone(),
            |n| tree::encode(black_box(n)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("decode", |b| {
        b.iter(|| tree::decode(black_box(&encoded)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, trees);
criterion_main!(benches);
