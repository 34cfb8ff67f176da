//! Makes a repository that indexes millions of blobs without storing them, to
//! measure what a large repository costs a client (memory, cache sync time).
//!
//! It initialises a local repository, writes index segments that name fake
//! packs full of fake 8 KiB blobs (the packs are never written: nothing reads
//! them unless a snapshot refers to them, and no snapshot does), then opens the
//! repository once so that the local cache is synced. `cellar` commands that
//! use the same cache directory start from a synced cache.
//!
//!     cargo run --release --example synthetic_repo -- REPO PASSWORD_FILE \
//!         [--blobs 10000000] [--cache-dir DIR] [--kdf-memory-kib N --kdf-iterations N]
//!
//! Only the library's public API is used. See docs/benchmarks.md.

use std::path::PathBuf;
use std::time::Instant;

use cellar::backend::FileType;
use cellar::backend::local::LocalBackend;
use cellar::crypto::KdfParams;
use cellar::id::{BlobId, PackId};
use cellar::index::{PackIndex, Segment};
use cellar::pack::BlobEntry;
use cellar::repository::{self, InitOptions, Repository};

/// What a backup writes: segments of about 100,000 blobs, packs of 16 MiB of
/// 8 KiB chunks (the small parameter set, the worst case for the index).
const SEGMENT_BLOBS: u64 = 100_000;
const BLOBS_PER_PACK: u64 = 2048;
const STORED_LEN: u32 = 8 * 1024 + 28;

struct Args {
    repo: PathBuf,
    password: Vec<u8>,
    blobs: u64,
    cache_dir: Option<PathBuf>,
    kdf: KdfParams,
}

fn usage() -> ! {
    eprintln!(
        "usage: synthetic_repo REPO PASSWORD_FILE [--blobs N] [--cache-dir DIR] \
         [--kdf-memory-kib N] [--kdf-iterations N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut pos = Vec::new();
    let mut blobs = 10_000_000u64;
    let mut cache_dir = None;
    let mut kdf = KdfParams::DEFAULT;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        let number = |s: String| s.parse::<u64>().unwrap_or_else(|_| usage());
        match a.as_str() {
            "--blobs" => blobs = number(value()),
            "--cache-dir" => cache_dir = Some(PathBuf::from(value())),
            "--kdf-memory-kib" => kdf.memory_kib = number(value()) as u32,
            "--kdf-iterations" => kdf.iterations = number(value()) as u32,
            s if s.starts_with('-') => usage(),
            _ => pos.push(a),
        }
    }
    let [repo, pw] = <[String; 2]>::try_from(pos).unwrap_or_else(|_| usage());
    let text = std::fs::read_to_string(&pw).unwrap_or_else(|e| {
        eprintln!("synthetic_repo: {pw}: {e}");
        std::process::exit(1)
    });
    Args {
        repo: PathBuf::from(repo),
        password: text.lines().next().unwrap_or("").as_bytes().to_vec(),
        blobs,
        cache_dir,
        kdf,
    }
}

/// splitmix64: fake ids are uniformly spread like real keyed hashes.
struct Ids(u64);

impl Ids {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn id(&mut self) -> [u8; 32] {
        let mut id = [0u8; 32];
        for c in id.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        id
    }
}

fn fake_segment(ids: &mut Ids, blobs: u64) -> Segment {
    let mut packs = Vec::new();
    let mut left = blobs;
    while left > 0 {
        let n = left.min(BLOBS_PER_PACK);
        left -= n;
        let blobs = (0..n)
            .map(|k| BlobEntry {
                id: BlobId(ids.id()),
                blob_type: cellar::pack::TYPE_DATA,
                compression: cellar::compress::ZSTD,
                offset: k as u32 * STORED_LEN,
                stored_len: STORED_LEN,
                raw_len: 3 * STORED_LEN,
            })
            .collect();
        packs.push(PackIndex {
            id: PackId(ids.id()),
            // Blobs, then a sealed header of 42 bytes per blob, then its length.
            size: n as u32 * (STORED_LEN + 42) + 28 + 8 + 4,
            blobs,
        });
    }
    Segment {
        superseded: Vec::new(),
        packs,
    }
}

/// Peak resident set of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

fn open(a: &Args) -> cellar::Result<Repository> {
    Repository::open(
        Box::new(LocalBackend::new(&a.repo)),
        &a.password,
        a.cache_dir.as_deref(),
        std::sync::Arc::new(|m: &str| eprintln!("{m}")),
    )
}

fn run(a: &Args) -> cellar::Result<()> {
    let opts = InitOptions {
        kdf: a.kdf,
        ..InitOptions::default()
    };
    let id = repository::init(&LocalBackend::new(&a.repo), &a.password, &opts)?;
    println!("initialised repository {} at {}", id, a.repo.display());

    let start = Instant::now();
    let repo = open(a)?;
    let mut ids = Ids(u64::from_le_bytes(cellar::crypto::random_bytes::<8>()));
    let (mut written, mut segments, mut bytes) = (0u64, 0u64, 0u64);
    while written < a.blobs {
        let n = (a.blobs - written).min(SEGMENT_BLOBS);
        let (sid, sealed) = fake_segment(&mut ids, n).seal(repo.keys());
        repo.backend()
            .write(FileType::Index, &sid.to_hex(), &sealed)
            .map_err(repo.berr())?;
        written += n;
        segments += 1;
        bytes += sealed.len() as u64;
    }
    repo.backend().flush().map_err(repo.berr())?;
    drop(repo);
    println!(
        "wrote {segments} index segments ({} MiB) naming {written} blobs in {:.1} s (peak RSS {:.0} MiB)",
        bytes >> 20,
        start.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    // The first open after the segments appeared reads them all into the cache.
    let start = Instant::now();
    let repo = open(a)?;
    let (blobs, packs) = repo.cache().counts()?;
    println!(
        "synced the cache ({blobs} blobs, {packs} packs) in {:.1} s: {} (peak RSS {:.0} MiB)",
        start.elapsed().as_secs_f64(),
        repo.cache().path().display(),
        peak_rss_mib()
    );
    Ok(())
}

fn main() {
    let a = parse_args();
    if let Err(e) = run(&a) {
        eprintln!("synthetic_repo: {e}");
        std::process::exit(1);
    }
}
