//! Content-defined chunking (FastCDC v2020, seeded gear table). A reader is cut
//! into batches of chunks so that the caller can hash, compress and encrypt one
//! batch in parallel while cut points stay exactly those of a one-pass scan.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization};

use crate::error::Result;
use crate::repofile::ChunkerParams;

/// Upper bound of the read buffer; a batch holds at most this many bytes.
pub const BATCH_BYTES: usize = 16 << 20;

/// Which parameter set a source gets (rule "v1", format-spec/04-chunking.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkClass {
    Large,
    Small,
}

const SMALL_EXTENSIONS: &[&str] = &[
    "sql", "csv", "tsv", "json", "jsonl", "ndjson", "log", "txt", "xml", "yaml", "yml", "ldif",
    "dump", "md",
];

/// Streams and text-like files get small chunks so a changed row costs a small
/// chunk, not a megabyte; everything else gets large chunks.
pub fn classify(name: &[u8]) -> ChunkClass {
    let ext = match name.iter().rposition(|&b| b == b'.') {
        Some(p) => &name[p + 1..],
        None => return ChunkClass::Large,
    };
    let lower = ext.to_ascii_lowercase();
    if SMALL_EXTENSIONS
        .iter()
        .any(|e| e.as_bytes() == lower.as_slice())
    {
        ChunkClass::Small
    } else {
        ChunkClass::Large
    }
}

/// Reads a stream ahead in a thread of its own, so that a pipe's producer
/// (mysqldump) never waits while a batch is being sealed, and reading overlaps
/// hashing, compression and encryption.
pub struct Prefetch {
    rx: crossbeam_channel::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Prefetch {
    /// `blocks` buffers of `block` bytes at most are held ahead.
    pub fn new(mut inner: Box<dyn Read + Send>, block: usize, blocks: usize) -> Prefetch {
        let (tx, rx) = crossbeam_channel::bounded(blocks.max(1));
        std::thread::spawn(move || {
            loop {
                let mut buf = vec![0u8; block];
                let mut filled = 0;
                let res = loop {
                    match inner.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let eof = filled == 0;
                let msg = match res {
                    Ok(()) => Ok(buf),
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                // The consumer hung up (backup failed or interrupted): stop reading.
                if tx.send(msg).is_err() || eof || failed {
                    return;
                }
            }
        });
        Prefetch {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) if b.is_empty() => self.done = true,
                Ok(Ok(b)) => {
                    self.current = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => self.done = true,
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Cuts everything `reader` yields. `on_batch` receives consecutive chunks (in
/// order; the concatenation of all batches is the input). `size_hint` sizes the
/// buffer so a 300-byte file does not cost a 16 MiB buffer.
pub fn chunk_stream<R: Read + ?Sized>(
    reader: &mut R,
    params: ChunkerParams,
    seed: u64,
    size_hint: Option<u64>,
    mut on_batch: impl FnMut(&[&[u8]]) -> Result<()>,
) -> std::io::Result<Result<u64>> {
    let full = BATCH_BYTES.max(2 * params.max as usize);
    let cap = match size_hint {
        Some(h) => (h as usize).saturating_add(1).clamp(4096, full),
        None => full,
    };
    // Buffers are reused per thread: a fresh multi-MiB allocation per file costs
    // thousands of page faults.
    let mut pooled = if cap <= SMALL_BUFFER {
        BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()))
    } else {
        BIG_BUFFERS.lock().unwrap().pop().unwrap_or_default()
    };
    if pooled.len() < cap {
        pooled.resize(cap, 0);
    }
    let r = chunk_into(reader, &mut pooled, cap, full, params, seed, &mut on_batch);
    // Threads keep small buffers; big ones go back to a shared pool of two, so
    // memory does not grow with the number of reader threads.
    if pooled.len() <= SMALL_BUFFER {
        BUFFER.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < pooled.len() {
                *b = pooled;
            }
        });
    } else {
        let mut pool = BIG_BUFFERS.lock().unwrap();
        if pool.len() < 2 {
            pool.push(pooled);
        }
    }
    r
}

/// Files up to this size are read into per-thread buffers.
pub const SMALL_BUFFER: usize = 1 << 20;
static BIG_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn chunk_into<R: Read + ?Sized>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    mut limit: usize,
    full: usize,
    params: ChunkerParams,
    seed: u64,
    on_batch: &mut impl FnMut(&[&[u8]]) -> Result<()>,
) -> std::io::Result<Result<u64>> {
    let min = params.min as usize;
    let max = params.max as usize;
    let mut filled = 0usize;
    let mut eof = false;
    let mut total = 0u64;
    loop {
        // Fill the buffer (a short read is not EOF).
        while !eof && filled < limit {
            match reader.read(&mut buf[filled..limit]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if !eof && filled == limit && limit < full {
                // The file grew past its stat size: go on with a full-size window.
                limit = full;
                if buf.len() < full {
                    buf.resize(full, 0);
                }
            }
        }
        if filled == 0 {
            break;
        }
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        let mut start = 0usize;
        {
            let data = &buf[..filled];
            // The seeded gear tables are built once per buffer fill: 4 KiB of
            // work per batch.
            let cdc = FastCDC::with_level_and_seed(
                data,
                min,
                params.avg as usize,
                max,
                Normalization::Level1,
                seed,
            );
            // A cut is final only when a whole max-size window was visible, or at EOF.
            while start < filled && (eof || filled - start >= max) {
                let (_, end) = cdc.cut(start, filled - start);
                cuts.push((start, end));
                start = end;
            }
            let slices: Vec<&[u8]> = cuts.iter().map(|&(s, e)| &data[s..e]).collect();
            if !slices.is_empty() {
                if let Err(e) = on_batch(&slices) {
                    return Ok(Err(e));
                }
            }
        }
        total += start as u64;
        buf.copy_within(start..filled, 0);
        filled -= start;
        if eof && filled == 0 {
            break;
        }
    }
    Ok(Ok(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkerParams {
        ChunkerParams {
            min: 2048,
            avg: 8192,
            max: 32768,
        }
    }

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn cut_all(input: &[u8], chunk_read: usize) -> Vec<Vec<u8>> {
        struct Slow<'a>(&'a [u8], usize);
        impl Read for Slow<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(self.1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut chunks = Vec::new();
        let total = chunk_stream(&mut Slow(input, chunk_read), params(), 42, None, |b| {
            chunks.extend(b.iter().map(|c| c.to_vec()));
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(total as usize, input.len());
        chunks
    }

    #[test]
    fn concatenation_is_input_and_boundaries_do_not_depend_on_reads() {
        let input = data(1_000_000, 7);
        let a = cut_all(&input, usize::MAX);
        let b = cut_all(&input, 777);
        assert_eq!(a, b);
        assert_eq!(a.concat(), input);
        assert!(a.iter().all(|c| c.len() <= 32768));
        assert!(a[..a.len() - 1].iter().all(|c| c.len() >= 2048));
    }

    #[test]
    fn an_insertion_changes_few_chunks() {
        let input = data(2_000_000, 9);
        let mut edited = input.clone();
        edited.splice(1_000_000..1_000_000, b"0123456789".iter().copied());
        let a: std::collections::HashSet<_> = cut_all(&input, usize::MAX).into_iter().collect();
        let b = cut_all(&edited, usize::MAX);
        let new = b.iter().filter(|c| !a.contains(*c)).count();
        assert!(new <= 3, "{new} chunks changed");
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert!(cut_all(&[], 10).is_empty());
    }

    #[test]
    fn classify_by_extension() {
        assert_eq!(classify(b"cells.sql"), ChunkClass::Small);
        assert_eq!(classify(b"X.JSON"), ChunkClass::Small);
        assert_eq!(classify(b"movie.mp4"), ChunkClass::Large);
        assert_eq!(classify(b"noext"), ChunkClass::Large);
    }
}
