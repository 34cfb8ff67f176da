//! Index lookups at scale: `cellar::index::Cache::contains` (the dedup check of
//! every chunk a backup reads) and `lookup` (every blob a restore reads), hit
//! and miss, on a cache of 10 million blobs.
//!
//! The cache is built once into target/bench-fixtures/ and reused by later runs
//! (it is rebuilt when missing, incomplete or of another schema version). It is
//! written straight into the cache's tables in one transaction: the ids are
//! uniformly spread over the id space like real keyed hashes, but generated in
//! ascending order, so SQLite appends to its B-tree instead of splitting pages
//! at random, which turns an hour-long build into a minute.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use cellar::id::BlobId;
use cellar::index::Cache;

/// 10 million blobs under `cargo bench`; as a test (`cargo test --benches`,
/// no `--bench` argument) a small index, so that a test run does not build 571 MiB.
fn blobs() -> u64 {
    static N: OnceLock<u64> = OnceLock::new();
    *N.get_or_init(|| {
        if std::env::args().any(|a| a == "--bench") {
            10_000_000
        } else {
            100_000
        }
    })
}

fn label() -> String {
    match blobs() {
        n if n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n => format!("{}k", n / 1000),
    }
}
/// 8 KiB chunks in 16 MiB packs.
const BLOBS_PER_PACK: u64 = 2048;
const STORED_LEN: u64 = 8 * 1024 + 28;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The id of indexed blob `i`: its first 8 bytes lie in slot `i` of the id
/// space, so ids ascend with `i`; the rest is pseudo-random.
fn indexed_id(i: u64) -> BlobId {
    let step = u64::MAX / blobs();
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(i * step + splitmix(i) % step).to_be_bytes());
    for k in 0..3 {
        let v = splitmix(i ^ ((k as u64 + 1) << 56));
        id[8 + 8 * k..16 + 8 * k].copy_from_slice(&v.to_le_bytes());
    }
    BlobId(id)
}

fn fixture_path() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target directory")
        .join("bench-fixtures")
        .join(format!("index-{}", label()))
        .join("index.sqlite")
}

fn is_complete(cache: &Cache) -> bool {
    cache.counts().is_ok_and(|(b, _)| b == blobs())
        && cache
            .lookup(&indexed_id(blobs() - 1))
            .is_ok_and(|l| l.is_some())
}

fn build(path: &Path) -> rusqlite::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // The cache creates its own schema; the rows go in below it.
    drop(Cache::open(path).expect("creating the cache"));
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )?;
    let tx = conn.transaction()?;
    {
        let mut pack =
            tx.prepare("INSERT INTO packs (pid, id, size, segment) VALUES (?1, ?2, ?3, ?4)")?;
        let mut blob = tx.prepare(
            "INSERT INTO blobs (id, pid, type, compression, offset, stored_len, raw_len)
             VALUES (?1, ?2, 0, 1, ?3, ?4, 8192)",
        )?;
        let mut rng = support::Rng::new(8);
        let packs = blobs().div_ceil(BLOBS_PER_PACK);
        for p in 1..=packs {
            let mut id = [0u8; 32];
            rng.fill(&mut id);
            pack.execute(rusqlite::params![
                p as i64,
                &id[..],
                (BLOBS_PER_PACK * STORED_LEN + 4096) as i64,
                &[0u8; 32][..]
            ])?;
        }
        for i in 0..blobs() {
            blob.execute(rusqlite::params![
                &indexed_id(i).0[..],
                (i / BLOBS_PER_PACK + 1) as i64,
                ((i % BLOBS_PER_PACK) * STORED_LEN) as i64,
                STORED_LEN as i64
            ])?;
        }
    }
    tx.commit()
}

fn open_fixture() -> Cache {
    let path = fixture_path();
    if let Ok(cache) = Cache::open(&path) {
        if is_complete(&cache) {
            return cache;
        }
    }
    println!("building {} ({} blobs)...", path.display(), blobs());
    let start = Instant::now();
    build(&path).expect("building the index fixture");
    let cache = Cache::open(&path).expect("opening the index fixture");
    assert!(
        is_complete(&cache),
        "the fixture is incomplete after a build"
    );
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "built in {:.1} s, {} MiB",
        start.elapsed().as_secs_f64(),
        size >> 20
    );
    cache
}

fn index(c: &mut Criterion) {
    let cache = open_fixture();
    let mut rng = support::Rng::new(9);
    let hits: Vec<BlobId> = (0..1 << 16)
        .map(|_| indexed_id(rng.below(blobs())))
        .collect();
    let misses: Vec<BlobId> = (0..1 << 16)
        .map(|_| {
            let mut id = [0u8; 32];
            rng.fill(&mut id);
            BlobId(id)
        })
        .collect();
    assert!(cache.contains(&hits[0]).unwrap());
    assert!(!cache.contains(&misses[0]).unwrap());

    let mut g = c.benchmark_group(format!("index {} blobs", label()));
    g.throughput(Throughput::Elements(1));
    for (name, ids, hit) in [("hit", &hits, true), ("miss", &misses, false)] {
        let mut n = 0usize;
        g.bench_function(format!("contains {name}"), |b| {
            b.iter(|| {
                n = (n + 1) & (ids.len() - 1);
                let found = cache.contains(black_box(&ids[n])).unwrap();
                debug_assert_eq!(found, hit);
                found
            })
        });
        g.bench_function(format!("lookup {name}"), |b| {
            b.iter(|| {
                n = (n + 1) & (ids.len() - 1);
                cache.lookup(black_box(&ids[n])).unwrap()
            })
        });
    }
    // `missing` is what a backup calls per batch of chunks.
    const BATCH: usize = 1024;
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut n = 0usize;
    g.bench_function("missing, batch of 1024 new ids", |b| {
        b.iter(|| {
            n = (n + BATCH) & (misses.len() - 1);
            cache.missing(black_box(&misses[n..n + BATCH])).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, index);
criterion_main!(benches);
