//! Repairs: rebuilding the index from pack headers (`repair index`), and writing
//! new snapshots that leave out what is lost (`repair snapshots`). Both only add
//! files before they remove any, in the order format-spec/05 requires, so an
//! interrupted repair leaves the repository as it was or repaired, never worse.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::check::{self, BlobStatus, Damage, DamagedEntry};
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::index::{PackIndex, Segment};
use crate::pack::{self, BlobEntry, SealedBlob, TYPE_TREE};
use crate::packer::Packer;
use crate::repofile::Snapshot;
use crate::repository::Repository;
use crate::tree::{self, Kind, Node};

/// Packs and blobs per rebuilt segment: far below the format's limits (65,536
/// packs, 4,000,000 blobs), so one segment stays a few MiB to read.
const SEGMENT_PACKS: usize = 1024;
const SEGMENT_BLOBS: usize = 200_000;
/// Headers read in parallel per batch.
const BATCH: usize = 64;

/// The tag every repaired snapshot carries, and the prefix of the tag naming the
/// snapshot it replaces (`repaired-from:<64 hex>`).
pub const REPAIRED_TAG: &str = "repaired";
pub const REPAIRED_FROM: &str = "repaired-from:";

pub trait Progress: Send + Sync {
    fn start(&self, _packs: u64) {}
    fn pack_done(&self, _bytes: u64) {}
    fn warn(&self, _msg: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Default, Serialize)]
pub struct IndexRepair {
    /// Packs whose header was read and are listed in the new index.
    pub packs_indexed: u64,
    pub blobs_indexed: u64,
    pub segments_written: Vec<String>,
    pub segments_removed: Vec<String>,
    /// Packs whose header is unreadable, and why. Their blobs that the old
    /// index knew are salvaged into new packs when they still verify.
    pub damaged_packs: Vec<(String, String)>,
    pub blobs_salvaged: u64,
    /// Blobs the old index listed in damaged packs that could not be salvaged.
    pub blobs_lost: u64,
}

/// Reads a pack's header with two ranged reads: its last 4 bytes, then the sealed header.
pub fn read_pack_header(repo: &Repository, id: PackId, size: u64) -> Result<Vec<BlobEntry>> {
    let name = id.to_hex();
    let read = |off, len| {
        repo.backend()
            .read_range(FileType::Pack, &name, off, len)
            .map_err(|e| Error::corrupt("pack", id, format!("reading: {e}")))
    };
    if size < 4 {
        return Err(Error::corrupt("pack", id, "shorter than 4 bytes"));
    }
    let trailer: [u8; 4] = read(size - 4, 4)?
        .try_into()
        .map_err(|_| Error::corrupt("pack", id, "short read"))?;
    let (off, len) = pack::header_range(id, size, trailer)?;
    let sealed = read(off, len)?;
    pack::parse_header(repo.keys(), id, &sealed, off)
}

/// Rebuilds the index from the pack headers alone and supersedes every old
/// segment (format-spec/05 §5.5, with the "last segment only" rule of §5.7 step 4).
/// The caller holds an exclusive lock.
pub fn repair_index(repo: &Repository, progress: &dyn Progress) -> Result<IndexRepair> {
    let mut out = IndexRepair::default();
    // Every segment present now is superseded at the end, readable or not: the new
    // segments carry everything the packs themselves describe.
    let old = check::index_listing(repo)?;
    let mut packs: Vec<(PackId, u64)> = repo
        .backend()
        .list(FileType::Pack)
        .map_err(repo.berr())?
        .into_iter()
        .filter(|(n, _)| check::valid_id(n))
        .filter_map(|(n, s)| PackId::from_hex(&n).ok().map(|i| (i, s)))
        .collect();
    packs.sort();
    progress.start(packs.len() as u64);

    let mut current = Segment::default();
    let mut damaged: Vec<PackId> = Vec::new();
    for chunk in packs.chunks(BATCH) {
        crate::cancel::check()?;
        let headers: Vec<_> = chunk
            .par_iter()
            .map(|&(id, size)| {
                let r = if size > u32::MAX as u64 {
                    Err(Error::corrupt("pack", id, "larger than 4 GiB"))
                } else {
                    read_pack_header(repo, id, size)
                };
                progress.pack_done(size);
                (id, size, r)
            })
            .collect();
        for (id, size, r) in headers {
            match r {
                Ok(blobs) => {
                    out.packs_indexed += 1;
                    out.blobs_indexed += blobs.len() as u64;
                    current.packs.push(PackIndex {
                        id,
                        size: size as u32,
                        blobs,
                    });
                    if current.packs.len() >= SEGMENT_PACKS || current.blob_count() >= SEGMENT_BLOBS
                    {
                        // Not the last segment: no superseded list; made durable
                        // before the last one is written.
                        let seg = std::mem::take(&mut current);
                        out.segments_written
                            .push(repo.write_segment(&seg)?.to_hex());
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    progress.warn(&why);
                    out.damaged_packs.push((id.to_hex(), why));
                    damaged.push(id);
                }
            }
        }
    }

    // Blobs of damaged packs that the old index describes and that still verify
    // are copied, sealed box for sealed box, into new packs (which the packer
    // indexes in segments of their own, not superseded below).
    if !damaged.is_empty() {
        let (salvaged, lost) = salvage(repo, &old, &damaged, &packs)?;
        out.blobs_salvaged = salvaged;
        out.blobs_lost = lost;
    }

    repo.backend().flush().map_err(repo.berr())?;
    let mut superseded: Vec<IndexId> = old.listed.iter().map(|(id, _)| *id).collect();
    superseded.sort();
    current.superseded = superseded.clone();
    out.segments_written
        .push(repo.write_segment(&current)?.to_hex());
    repo.backend().flush().map_err(repo.berr())?;
    for id in &superseded {
        repo.backend()
            .remove(FileType::Index, &id.to_hex())
            .map_err(repo.berr())?;
        out.segments_removed.push(id.to_hex());
    }
    repo.backend().flush().map_err(repo.berr())?;
    // The cache sees segments gone and rebuilds itself from the new ones.
    repo.sync_index()?;
    Ok(out)
}

/// Copies every blob the old index lists in a damaged pack, if it still verifies.
/// Returns (salvaged, lost).
fn salvage(
    repo: &Repository,
    old: &check::IndexListing,
    damaged: &[PackId],
    sizes: &[(PackId, u64)],
) -> Result<(u64, u64)> {
    let mut wanted: HashMap<PackId, Vec<BlobEntry>> = HashMap::new();
    for &(seg_id, size) in &old.effective {
        let Ok(seg) = check::read_segment(repo, seg_id, size) else {
            continue;
        };
        for p in seg.packs {
            if damaged.contains(&p.id) && !wanted.contains_key(&p.id) {
                wanted.insert(p.id, p.blobs);
            }
        }
    }
    if wanted.is_empty() {
        return Ok((0, 0));
    }
    let mut salvaged = 0u64;
    let mut lost = 0u64;
    let size_of: HashMap<PackId, u64> = sizes.iter().copied().collect();
    Packer::run(repo, 1, false, |p| {
        for (pack_id, entries) in &wanted {
            let size = size_of.get(pack_id).copied().unwrap_or(0);
            let bytes = if size <= u32::MAX as u64 {
                repo.backend()
                    .read(FileType::Pack, &pack_id.to_hex())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            for e in entries {
                let end = e.offset as u64 + e.stored_len as u64;
                let stored = bytes.get(e.offset as usize..end.min(usize::MAX as u64) as usize);
                let ok = stored.is_some_and(|s| pack::open_blob(repo.keys(), e, s).is_ok());
                if !ok {
                    lost += 1;
                    continue;
                }
                p.add(SealedBlob {
                    id: e.id,
                    blob_type: e.blob_type,
                    compression: e.compression,
                    raw_len: e.raw_len,
                    data: stored.expect("checked above").to_vec(),
                })?;
                salvaged += 1;
            }
        }
        Ok(())
    })?;
    Ok((salvaged, lost))
}

#[derive(Debug, Serialize)]
pub struct SnapshotRepair {
    pub original: String,
    /// The new snapshot, when one was written (None if the original is intact, or
    /// its root tree is lost and nothing can be saved).
    pub repaired: Option<String>,
    /// What the new snapshot leaves out.
    pub removed: Vec<DamagedEntry>,
    pub forgotten: bool,
    /// Why the snapshot could not be repaired.
    pub error: Option<String>,
}

/// What a rewritten tree became.
#[derive(Clone)]
enum Rewrite {
    /// The tree cannot be read.
    Lost(String),
    /// Nothing below it is damaged.
    Same,
    /// A new tree without the damaged entries (paths relative to the tree).
    New(BlobId, Arc<Vec<DamagedEntry>>),
}

struct Rewriter<'a, 'r> {
    repo: &'r Repository,
    damage: &'a Damage,
    packer: &'a Packer<'r>,
    memo: HashMap<BlobId, Rewrite>,
}

impl Rewriter<'_, '_> {
    fn tree(&mut self, id: BlobId, depth: usize) -> Result<Rewrite> {
        if let Some(r) = self.memo.get(&id) {
            return Ok(r.clone());
        }
        let r = if depth > check::MAX_DEPTH {
            Rewrite::Lost(format!(
                "trees nested deeper than {} levels",
                check::MAX_DEPTH
            ))
        } else {
            self.rewrite(id, depth)?
        };
        self.memo.insert(id, r.clone());
        Ok(r)
    }

    fn rewrite(&mut self, id: BlobId, depth: usize) -> Result<Rewrite> {
        if let BlobStatus::Lost(why) = self.damage.blob_status(self.repo, &id, TYPE_TREE)? {
            return Ok(Rewrite::Lost(format!("tree {why}")));
        }
        let nodes = match self.repo.load_tree(&id) {
            Ok(n) => n,
            Err(e) => return Ok(Rewrite::Lost(e.to_string())),
        };
        let mut kept: Vec<Node> = Vec::with_capacity(nodes.len());
        let mut removed = Vec::new();
        let mut changed = false;
        for mut n in nodes {
            let name = String::from_utf8_lossy(&n.name).into_owned();
            match n.kind {
                Kind::File => {
                    // Files at risk (data intact in a damaged pack) are kept.
                    if let Some((true, problem)) = self.damage.file_status(self.repo, &n)? {
                        changed = true;
                        removed.push(DamagedEntry {
                            path: name,
                            kind: "file",
                            lost: true,
                            problem,
                        });
                        continue;
                    }
                }
                Kind::Dir => {
                    let Some(sub) = n.subtree else { continue };
                    match self.tree(sub, depth + 1)? {
                        Rewrite::Same => {}
                        Rewrite::Lost(problem) => {
                            changed = true;
                            removed.push(DamagedEntry {
                                path: name,
                                kind: "dir",
                                lost: true,
                                problem,
                            });
                            continue;
                        }
                        Rewrite::New(new, below) => {
                            changed = true;
                            n.subtree = Some(new);
                            removed.extend(below.iter().map(|e| DamagedEntry {
                                path: format!("{name}/{}", e.path),
                                ..e.clone()
                            }));
                        }
                    }
                }
                _ => {}
            }
            kept.push(n);
        }
        if !changed {
            return Ok(Rewrite::Same);
        }
        let plain = tree::encode(&mut kept);
        let keys = self.repo.keys();
        let new = keys.blob_id(&plain);
        if self.packer.claim(&new)? {
            let level = self.repo.config().compression.level;
            self.packer
                .add(SealedBlob::seal(keys, TYPE_TREE, new, &plain, level))?;
        }
        Ok(Rewrite::New(new, Arc::new(removed)))
    }
}

/// Writes, for each given snapshot that reaches damaged data, a new snapshot
/// without the damaged files and directories, tagged `repaired` and
/// `repaired-from:<id>`. New trees go into packs and the index before the new
/// snapshots are written; originals are removed only afterwards, and only with
/// `forget`.
pub fn repair_snapshots(
    repo: &Repository,
    damage: &Damage,
    snapshots: &[(SnapshotId, Snapshot)],
    forget: bool,
) -> Result<Vec<SnapshotRepair>> {
    let (plans, _) = Packer::run(repo, 1, false, |p| {
        let mut rw = Rewriter {
            repo,
            damage,
            packer: p,
            memo: HashMap::new(),
        };
        let mut plans = Vec::new();
        for (id, snap) in snapshots {
            crate::cancel::check()?;
            let r = match BlobId::from_hex(&snap.tree) {
                Ok(root) => rw.tree(root, 0)?,
                Err(e) => Rewrite::Lost(e.to_string()),
            };
            plans.push((*id, snap.clone(), r));
        }
        Ok(plans)
    })?;
    let mut out = Vec::new();
    for (id, snap, r) in plans {
        let mut rep = SnapshotRepair {
            original: id.to_hex(),
            repaired: None,
            removed: Vec::new(),
            forgotten: false,
            error: None,
        };
        match r {
            Rewrite::Same => {}
            Rewrite::Lost(why) => {
                rep.error = Some(format!("its root tree is lost ({why}): nothing to keep"));
            }
            Rewrite::New(root, removed) => {
                let mut new = snap.clone();
                new.tree = root.to_hex();
                new.tags
                    .retain(|t| t != REPAIRED_TAG && !t.starts_with(REPAIRED_FROM));
                new.tags.push(REPAIRED_TAG.into());
                new.tags.push(format!("{REPAIRED_FROM}{id}"));
                new.program = format!("cellar {} (repair snapshots)", env!("CARGO_PKG_VERSION"));
                // The original's statistics no longer describe this tree.
                new.summary = None;
                let new_id = repo.save_snapshot(&new)?;
                rep.repaired = Some(new_id.to_hex());
                rep.removed = removed
                    .iter()
                    .map(|e| DamagedEntry {
                        path: format!("/{}", e.path),
                        ..e.clone()
                    })
                    .collect();
                if forget {
                    repo.remove_snapshot(id)?;
                    rep.forgotten = true;
                }
            }
        }
        out.push(rep);
    }
    if forget {
        repo.backend().flush().map_err(repo.berr())?;
    }
    Ok(out)
}
