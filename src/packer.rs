//! The write side of the pipeline: sealed blobs go into pack builders (one for
//! data, one for trees), full packs go to writer threads, and written packs are
//! recorded in index segments. A blob is claimed before it is compressed, so two
//! threads that hash the same content store it once.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::{PackIndex, Segment};
use crate::pack::{BlobEntry, PackBuilder, SealedBlob, TYPE_TREE};
use crate::repository::Repository;

/// A segment is written once this many blobs are waiting, which bounds the
/// in-memory set of blobs not yet in the cache.
const SEGMENT_BLOBS: usize = 100_000;
const SEGMENT_PACKS: usize = 256;

#[derive(Debug, Default, Clone)]
pub struct PackerStats {
    pub data_blobs: u64,
    pub tree_blobs: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub packs: u64,
    pub segments: Vec<IndexId>,
}

type Finished = (PackId, Vec<u8>, Vec<BlobEntry>);

pub struct Packer<'r> {
    repo: &'r Repository,
    data: Mutex<PackBuilder>,
    tree: Mutex<PackBuilder>,
    pending: Mutex<HashSet<BlobId>>,
    tx: Mutex<Option<Sender<Finished>>>,
    /// Packs written and not yet in a segment.
    unindexed: Mutex<Vec<PackIndex>>,
    error: Mutex<Option<Error>>,
    segments: Mutex<Vec<IndexId>>,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    raw_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    packs: AtomicU64,
    dry_run: bool,
    /// Written packs' buffers, reused so each new pack does not fault in fresh pages.
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl<'r> Packer<'r> {
    /// Runs `f` with a packer, then writes every open pack and indexes everything
    /// written, also when `f` fails: an interrupted backup leaves no unindexed data.
    pub fn run<T>(
        repo: &'r Repository,
        writers: usize,
        dry_run: bool,
        f: impl FnOnce(&Packer<'r>) -> Result<T>,
    ) -> Result<(T, PackerStats)> {
        let (tx, rx) = bounded::<Finished>(writers.max(1));
        let cap = repo.config.pack_size as usize + (1 << 20);
        let packer = Packer {
            repo,
            data: Mutex::new(PackBuilder::new(cap)),
            tree: Mutex::new(PackBuilder::new(1 << 20)),
            pending: Mutex::new(HashSet::new()),
            tx: Mutex::new(Some(tx)),
            unindexed: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            segments: Mutex::new(Vec::new()),
            data_blobs: AtomicU64::new(0),
            tree_blobs: AtomicU64::new(0),
            raw_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            packs: AtomicU64::new(0),
            dry_run,
            buffers: Mutex::new(Vec::new()),
        };
        let result = std::thread::scope(|s| {
            for _ in 0..writers.max(1) {
                let rx: Receiver<Finished> = rx.clone();
                let p = &packer;
                s.spawn(move || p.writer_loop(rx));
            }
            drop(rx);
            let r = f(&packer);
            let fin = packer.flush_open();
            // Closing the channel ends the writer threads once they drain it.
            packer.tx.lock().unwrap().take();
            (r, fin)
        });
        let (r, fin) = result;
        let idx = packer.write_segment_now();
        let werr = packer.error.lock().unwrap().take();
        let value = r?;
        fin?;
        if let Some(e) = werr {
            return Err(e);
        }
        idx?;
        let stats = PackerStats {
            data_blobs: packer.data_blobs.load(Ordering::Relaxed),
            tree_blobs: packer.tree_blobs.load(Ordering::Relaxed),
            raw_bytes: packer.raw_bytes.load(Ordering::Relaxed),
            stored_bytes: packer.stored_bytes.load(Ordering::Relaxed),
            packs: packer.packs.load(Ordering::Relaxed),
            segments: packer.segments.lock().unwrap().clone(),
        };
        Ok((value, stats))
    }

    pub fn repo(&self) -> &Repository {
        self.repo
    }

    /// True when the caller must store this blob; false when the repository or
    /// this run already has it.
    pub fn claim(&self, id: &BlobId) -> Result<bool> {
        if self.repo.cache.contains(id)? {
            return Ok(false);
        }
        let mut pending = self.pending.lock().unwrap();
        if pending.contains(id) {
            return Ok(false);
        }
        // Re-checked under the lock: a writer moves ids from `pending` to the
        // cache, adding them to the cache first.
        if self.repo.cache.contains(id)? {
            return Ok(false);
        }
        pending.insert(*id);
        Ok(true)
    }

    /// Claims a batch at once (one cache lock for all of them).
    pub fn claim_many(&self, ids: &[BlobId]) -> Result<Vec<bool>> {
        let missing = self.repo.cache.missing(ids)?;
        let mut pending = self.pending.lock().unwrap();
        // Re-checked under the lock, as in `claim`, in one batch.
        let candidates: Vec<usize> = (0..ids.len())
            .filter(|&i| missing[i] && !pending.contains(&ids[i]))
            .collect();
        let cand_ids: Vec<BlobId> = candidates.iter().map(|&i| ids[i]).collect();
        let still_missing = self.repo.cache.missing(&cand_ids)?;
        let mut out = vec![false; ids.len()];
        for (&i, miss) in candidates.iter().zip(still_missing) {
            // A batch may hold the same chunk twice: claim it once.
            if miss && pending.insert(ids[i]) {
                out[i] = true;
            }
        }
        Ok(out)
    }

    pub fn add(&self, blob: SealedBlob) -> Result<()> {
        if let Some(e) = self.error.lock().unwrap().as_ref() {
            return Err(Error::Other(format!("writing packs failed: {e}")));
        }
        let is_tree = blob.blob_type == TYPE_TREE;
        if is_tree {
            self.tree_blobs.fetch_add(1, Ordering::Relaxed);
        } else {
            self.data_blobs.fetch_add(1, Ordering::Relaxed);
        }
        self.raw_bytes
            .fetch_add(blob.raw_len as u64, Ordering::Relaxed);
        self.stored_bytes
            .fetch_add(blob.data.len() as u64, Ordering::Relaxed);
        if self.dry_run {
            return Ok(());
        }
        let target = self.repo.config.pack_size as usize;
        let full = {
            let mut b = if is_tree {
                self.tree.lock().unwrap()
            } else {
                self.data.lock().unwrap()
            };
            b.add(blob);
            if b.len() >= target {
                let fresh = match self.buffers.lock().unwrap().pop() {
                    Some(buf) => PackBuilder::with_buffer(buf),
                    None if is_tree => PackBuilder::new(1 << 20),
                    None => PackBuilder::new(target + (1 << 20)),
                };
                Some(std::mem::replace(&mut *b, fresh))
            } else {
                None
            }
        };
        if let Some(b) = full {
            self.send(b)?;
        }
        Ok(())
    }

    fn send(&self, b: PackBuilder) -> Result<()> {
        let finished = b.finish(&self.repo.keys);
        let tx = self.tx.lock().unwrap().clone();
        match tx {
            Some(tx) => tx
                .send(finished)
                .map_err(|_| Error::Other("pack writers stopped".into())),
            None => Err(Error::Other("packer already closed".into())),
        }
    }

    fn flush_open(&self) -> Result<()> {
        for m in [&self.data, &self.tree] {
            let b = std::mem::take(&mut *m.lock().unwrap());
            if !b.is_empty() {
                self.send(b)?;
            }
        }
        Ok(())
    }

    fn writer_loop(&self, rx: Receiver<Finished>) {
        for (id, bytes, entries) in rx {
            let r = self
                .repo
                .backend
                .write(FileType::Pack, &id.to_hex(), &bytes)
                .map_err(self.repo.berr());
            match r {
                Err(e) => {
                    let mut err = self.error.lock().unwrap();
                    if err.is_none() {
                        *err = Some(e);
                    }
                    // Keep draining so senders never block forever.
                }
                Ok(()) => {
                    self.packs.fetch_add(1, Ordering::Relaxed);
                    let size = bytes.len() as u32;
                    {
                        let mut pool = self.buffers.lock().unwrap();
                        if pool.len() < 2 {
                            pool.push(bytes);
                        }
                    }
                    let need_segment = {
                        let mut u = self.unindexed.lock().unwrap();
                        u.push(PackIndex {
                            id,
                            size,
                            blobs: entries,
                        });
                        u.len() >= SEGMENT_PACKS
                            || u.iter().map(|p| p.blobs.len()).sum::<usize>() >= SEGMENT_BLOBS
                    };
                    if need_segment {
                        if let Err(e) = self.write_segment_now() {
                            let mut err = self.error.lock().unwrap();
                            if err.is_none() {
                                *err = Some(e);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs first, made durable, then the segment that names them.
    fn write_segment_now(&self) -> Result<()> {
        let packs = std::mem::take(&mut *self.unindexed.lock().unwrap());
        if packs.is_empty() {
            return Ok(());
        }
        self.repo.backend.flush().map_err(self.repo.berr())?;
        let seg = Segment {
            superseded: Vec::new(),
            packs,
        };
        let id = self.repo.write_segment(&seg)?;
        self.repo.backend.flush().map_err(self.repo.berr())?;
        let mut pending = self.pending.lock().unwrap();
        for p in &seg.packs {
            for b in &p.blobs {
                pending.remove(&b.id);
            }
        }
        self.segments.lock().unwrap().push(id);
        Ok(())
    }
}
