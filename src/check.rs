//! Integrity checking (`cellar check`): the repository-level checks of
//! format-spec/06 §6.5 in increasing cost, and a damage report that names the
//! snapshots and the paths inside them that a problem affects, not only object ids.
//!
//! Memory stays bounded by the number of packs and trees, never by the number of
//! data blobs: index segments are streamed one at a time, blob lookups go to the
//! SQLite cache, and only blobs found damaged are remembered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::index::{PackIndex, Segment};
use crate::pack::{self, BlobEntry, TYPE_DATA, TYPE_TREE};
use crate::repository::Repository;
use crate::tree::Kind;

/// Stored-size limit of an index segment file (format-spec/03 §3.2).
pub const MAX_SEGMENT_FILE: u64 = 269_484_061;
/// Trees nested deeper than this are refused (format-spec/06 R16).
pub const MAX_DEPTH: usize = 4096;
/// Packs verified per parallel batch: enough to keep every core busy, few enough
/// that the batch's index listings stay small.
const BATCH_PACKS: usize = 64;

/// Which packs `--read-data` reads.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadData {
    /// Structure only.
    None,
    All,
    /// The `n`-th (1-based) of `of` slices, cut by the first four bytes of the pack id:
    /// slices 1..=of together cover every pack exactly once.
    Slice {
        n: u32,
        of: u32,
    },
    /// A random share of the packs, in percent.
    Percent(f64),
}

impl ReadData {
    /// Parses a `--read-data-subset` value: `N/M` or `P%`.
    pub fn parse_subset(s: &str) -> Result<ReadData> {
        let bad = || {
            Error::InvalidArgument(format!(
                "--read-data-subset {s:?}: expected N/M (1 <= N <= M) or a percentage like 10%"
            ))
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(ReadData::Percent(p));
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let of: u32 = m.trim().parse().map_err(|_| bad())?;
        if n == 0 || of == 0 || n > of {
            return Err(bad());
        }
        Ok(ReadData::Slice { n, of })
    }
}

/// The 0-based slice of `of` a pack falls into.
pub fn slice_of(id: &PackId, of: u32) -> u32 {
    let head = u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]) as u64;
    ((head * of as u64) >> 32) as u32
}

pub trait Progress: Send + Sync {
    /// Called once before packs are read: how many, and their total size.
    fn start(&self, _packs: u64, _bytes: u64) {}
    fn pack_done(&self, _bytes: u64) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// One thing that is wrong, with the object it is about.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// "pack", "index segment", "snapshot", "key", "lock", "blob".
    pub object: &'static str,
    /// Its id (hex), or its name.
    pub id: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.object, self.id, self.message)
    }
}

fn problem(object: &'static str, id: impl ToString, message: impl Into<String>) -> Problem {
    Problem {
        object,
        id: id.to_string(),
        message: message.into(),
    }
}

/// A file or directory of a snapshot that cannot be restored completely.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DamagedEntry {
    /// Absolute path inside the snapshot (not necessarily UTF-8: lossy here).
    pub path: String,
    /// "file" (its content) or "dir" (its listing: nothing below it restores).
    pub kind: &'static str,
    /// True when it cannot be restored; false when it still restores but its
    /// data sits in a damaged pack (`repair index` moves it to a new one).
    pub lost: bool,
    pub problem: String,
}

impl DamagedEntry {
    /// The entry as seen from the directory `name` one level up.
    fn under(&self, name: &str) -> DamagedEntry {
        DamagedEntry {
            path: if self.path.is_empty() {
                name.to_string()
            } else {
                format!("{name}/{}", self.path)
            },
            ..self.clone()
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DamagedSnapshot {
    pub id: String,
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub damaged: Vec<DamagedEntry>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub snapshots: u64,
    pub index_segments: u64,
    pub packs: u64,
    pub unreferenced_packs: u64,
    pub trees: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub blobs_verified: u64,
    pub duration_s: f64,
}

/// Everything `check` found. `ok` is true only when `errors` is empty.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    pub errors: Vec<Problem>,
    /// Not errors: duplicates, unreferenced packs (left by interrupted backups).
    pub warnings: Vec<Problem>,
    pub damaged_snapshots: Vec<DamagedSnapshot>,
    pub unreferenced_packs: Vec<String>,
    /// Every pack whose bytes were read and verified, sorted.
    pub packs_read: Vec<String>,
    pub stats: Stats,
}

/// What `check` learned about blobs and packs, for the damage report and for
/// `repair snapshots`. A blob is lost for restore when the copy the index (cache)
/// points to is known to be unusable; it is at risk when that copy verifies but
/// sits in a pack with other problems (a damaged header, a wrong size).
#[derive(Clone, Debug, Default)]
pub struct Damage {
    lost: HashMap<BlobId, Vec<(PackId, String)>>,
    packs: HashMap<PackId, String>,
}

/// One blob as restore would find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobStatus {
    /// Usable; its raw length.
    Ok(u32),
    /// Usable today (raw length), but stored in a damaged pack.
    AtRisk(u32, String),
    Lost(String),
}

impl Damage {
    fn add(&mut self, blob: BlobId, pack: PackId, why: String) {
        self.lost.entry(blob).or_default().push((pack, why));
    }

    fn pack(&mut self, pack: PackId, why: String) {
        self.packs.entry(pack).or_insert(why);
    }

    pub fn is_empty(&self) -> bool {
        self.lost.is_empty() && self.packs.is_empty()
    }

    /// Whether the blob `id` can be read back as a blob of type `ty`.
    pub fn blob_status(&self, repo: &Repository, id: &BlobId, ty: u8) -> Result<BlobStatus> {
        let Some(loc) = repo.cache().lookup(id)? else {
            return Ok(BlobStatus::Lost(format!("blob {id} is not in the index")));
        };
        if loc.entry.blob_type != ty {
            return Ok(BlobStatus::Lost(format!(
                "blob {id} is a {} blob where a {} blob is expected",
                type_name(loc.entry.blob_type),
                type_name(ty)
            )));
        }
        if let Some(copies) = self.lost.get(id) {
            if let Some((_, why)) = copies.iter().find(|(p, _)| *p == loc.pack) {
                return Ok(BlobStatus::Lost(format!("blob {id}: {why}")));
            }
        }
        if let Some(why) = self.packs.get(&loc.pack) {
            return Ok(BlobStatus::AtRisk(
                loc.entry.raw_len,
                format!("pack {} {why}", loc.pack),
            ));
        }
        Ok(BlobStatus::Ok(loc.entry.raw_len))
    }

    /// The first problem of a file's content, and whether it is lost (else at risk).
    pub fn file_status(
        &self,
        repo: &Repository,
        node: &crate::tree::Node,
    ) -> Result<Option<(bool, String)>> {
        let mut sum = 0u64;
        let mut risk = None;
        for b in &node.content {
            match self.blob_status(repo, b, TYPE_DATA)? {
                BlobStatus::Ok(len) => sum += len as u64,
                BlobStatus::AtRisk(len, why) => {
                    sum += len as u64;
                    risk.get_or_insert(why);
                }
                BlobStatus::Lost(why) => return Ok(Some((true, why))),
            }
        }
        if sum != node.size {
            return Ok(Some((
                true,
                format!("content is {sum} bytes but the tree says {}", node.size),
            )));
        }
        Ok(risk.map(|why| (false, why)))
    }
}

fn type_name(t: u8) -> &'static str {
    if t == TYPE_TREE { "tree" } else { "data" }
}

/// Reads and opens one index segment, bounding its size first (R1).
pub fn read_segment(repo: &Repository, id: IndexId, size: u64) -> Result<Segment> {
    if size > MAX_SEGMENT_FILE {
        return Err(Error::corrupt(
            "index segment",
            id,
            format!("{size} bytes is over the {MAX_SEGMENT_FILE}-byte limit"),
        ));
    }
    let bytes = repo
        .backend()
        .read(FileType::Index, &id.to_hex())
        .map_err(|e| Error::corrupt("index segment", id, e.to_string()))?;
    Segment::open(repo.keys(), id, &bytes)
}

/// The effective index (format-spec/05 §5.6): every listed segment that reads and
/// verifies, minus every segment any of them supersedes. Also returns the ids and
/// sizes of all listed segments and the problems of those that did not read.
pub struct IndexListing {
    pub effective: Vec<(IndexId, u64)>,
    pub listed: Vec<(IndexId, u64)>,
    pub unreadable: Vec<(IndexId, Error)>,
}

pub fn index_listing(repo: &Repository) -> Result<IndexListing> {
    let mut listed: Vec<(IndexId, u64)> = repo
        .backend()
        .list(FileType::Index)
        .map_err(repo.berr())?
        .into_iter()
        .filter_map(|(n, s)| valid_id(&n).then(|| IndexId::from_hex(&n).ok().map(|i| (i, s)))?)
        .collect();
    listed.sort();
    let read: Vec<_> = listed
        .par_iter()
        .map(|&(id, size)| (id, size, read_segment(repo, id, size).map(|s| s.superseded)))
        .collect();
    let mut superseded = HashSet::new();
    let mut ok = Vec::new();
    let mut unreadable = Vec::new();
    for (id, size, r) in read {
        match r {
            Ok(sup) => {
                superseded.extend(sup);
                ok.push((id, size));
            }
            Err(e) => unreadable.push((id, e)),
        }
    }
    let effective = ok
        .into_iter()
        .filter(|(id, _)| !superseded.contains(id))
        .collect();
    Ok(IndexListing {
        effective,
        listed,
        unreadable,
    })
}

/// 64 lowercase hex digits (format-spec R5): anything else in a listing is ignored.
pub fn valid_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What reading one pack found.
#[derive(Default)]
struct PackResult {
    errors: Vec<Problem>,
    lost: Vec<(BlobId, String)>,
    verified: u64,
    bytes: u64,
}

/// Reads a whole pack and checks its storage id, its header, the header against
/// the index listing (R11), and every blob (R9). `listing` is None for a pack no
/// index segment lists: its header entries are verified instead.
fn verify_pack(
    repo: &Repository,
    id: PackId,
    size: u64,
    listing: Option<&PackIndex>,
) -> PackResult {
    let mut r = PackResult::default();
    let lose_all = |r: &mut PackResult, why: &str| {
        if let Some(l) = listing {
            r.lost
                .extend(l.blobs.iter().map(|b| (b.id, why.to_string())));
        }
    };
    if size > u32::MAX as u64 {
        r.errors.push(problem(
            "pack",
            id,
            format!("{size} bytes is over the 4 GiB limit"),
        ));
        lose_all(&mut r, "its pack is too large to be valid");
        return r;
    }
    let bytes = match repo.backend().read(FileType::Pack, &id.to_hex()) {
        Ok(b) => b,
        Err(e) => {
            r.errors
                .push(problem("pack", id, format!("cannot be read: {e}")));
            lose_all(&mut r, &format!("pack {id} cannot be read"));
            return r;
        }
    };
    r.bytes = bytes.len() as u64;
    if crate::id::storage_hash(&bytes) != id.0 {
        r.errors
            .push(problem("pack", id, "content does not match its name"));
    }
    let header = (|| {
        if bytes.len() < 4 {
            return Err(Error::corrupt("pack", id, "shorter than 4 bytes"));
        }
        let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().expect("4 bytes");
        let (off, len) = pack::header_range(id, bytes.len() as u64, trailer)?;
        pack::parse_header(
            repo.keys(),
            id,
            &bytes[off as usize..(off + len) as usize],
            off,
        )
    })();
    let header = match header {
        Ok(h) => Some(h),
        Err(e) => {
            r.errors.push(problem(
                "pack",
                id,
                format!("header: {}", strip_prefix(&e, &id)),
            ));
            None
        }
    };
    let entries: Vec<BlobEntry> = match (listing, &header) {
        (Some(l), _) => l.blobs.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => Vec::new(),
    };
    let by_offset: HashMap<u32, &BlobEntry> =
        header.iter().flatten().map(|e| (e.offset, e)).collect();
    for e in &entries {
        if listing.is_some() && header.is_some() && by_offset.get(&e.offset) != Some(&e) {
            r.errors.push(problem(
                "pack",
                id,
                format!(
                    "index entry for blob {} disagrees with the pack header",
                    e.id
                ),
            ));
            r.lost.push((
                e.id,
                format!("its index entry disagrees with the header of pack {id}"),
            ));
            continue;
        }
        let end = e.offset as u64 + e.stored_len as u64;
        if end > bytes.len() as u64 {
            r.errors.push(problem(
                "pack",
                id,
                format!("blob {} lies past the end of the pack", e.id),
            ));
            r.lost
                .push((e.id, format!("lies past the end of pack {id}")));
            continue;
        }
        match pack::open_blob(repo.keys(), e, &bytes[e.offset as usize..end as usize]) {
            Ok(_) => r.verified += 1,
            Err(err) => {
                let why = format!("{} (in pack {id})", strip_prefix(&err, &e.id));
                r.errors.push(problem("blob", e.id, why.clone()));
                r.lost.push((e.id, why));
            }
        }
    }
    r
}

/// An error's message without its leading "<kind> <id>: " (the caller names the object).
fn strip_prefix(e: &Error, id: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    let id = id.to_string();
    match s.find(&id) {
        Some(i) => s[i + id.len()..].trim_start_matches(':').trim().to_string(),
        None => s,
    }
}

fn listing_digest(p: &PackIndex) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&p.size.to_le_bytes());
    for b in &p.blobs {
        h.update(&[b.blob_type, b.compression]);
        h.update(&b.offset.to_le_bytes());
        h.update(&b.stored_len.to_le_bytes());
        h.update(&b.raw_len.to_le_bytes());
        h.update(b.id.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// Runs every check. Errors that stop the check itself (the backend fails, the
/// cache cannot be read) are returned as `Err`; everything wrong with the
/// repository goes into the report.
pub fn check(
    repo: &Repository,
    read_data: &ReadData,
    progress: &dyn Progress,
) -> Result<(Report, Damage)> {
    let started = std::time::Instant::now();
    let mut rep = Report::default();
    let mut damage = Damage::default();

    // 1. Key files, snapshot files, index segments (R7, R8, parsing).
    for e in repo.key_file_problems()? {
        rep.errors.push(problem("key", "", e.to_string()));
    }
    // Locks come and go: one that does not open is reported, not an error (and
    // it blocks prune until `unlock` removes it).
    for (name, _) in repo.backend().list(FileType::Lock).map_err(repo.berr())? {
        if valid_id(&name) {
            if let Err(e) = crate::lock::read_lock(repo, &name) {
                rep.warnings
                    .push(problem("lock", &name, strip_prefix(&e, &name)));
            }
        }
    }
    let idx = index_listing(repo)?;
    for (id, e) in &idx.unreadable {
        rep.errors
            .push(problem("index segment", id, strip_prefix(e, id)));
    }
    rep.stats.index_segments = idx.listed.len() as u64;

    // 2. Packs of the effective index: present, with the listed size; read the
    //    selected ones (R7, header bounds, R11, R9).
    let listed_packs: HashMap<PackId, u64> = repo
        .backend()
        .list(FileType::Pack)
        .map_err(repo.berr())?
        .into_iter()
        .filter(|(n, _)| valid_id(n))
        .filter_map(|(n, s)| PackId::from_hex(&n).ok().map(|i| (i, s)))
        .collect();
    rep.stats.packs = listed_packs.len() as u64;
    let selected = select_packs(&listed_packs, read_data);
    let total: u64 = selected.iter().map(|p| listed_packs[p]).sum();
    progress.start(selected.len() as u64, total);

    let mut listings: HashMap<PackId, (IndexId, [u8; 32])> = HashMap::new();
    let mut read: HashSet<PackId> = HashSet::new();
    let mut batch: Vec<(PackId, u64, Option<PackIndex>)> = Vec::new();
    for &(seg_id, size) in &idx.effective {
        crate::cancel::check()?;
        let seg = match read_segment(repo, seg_id, size) {
            Ok(s) => s,
            Err(e) => {
                rep.errors
                    .push(problem("index segment", seg_id, strip_prefix(&e, &seg_id)));
                continue;
            }
        };
        for p in seg.packs {
            let digest = listing_digest(&p);
            if let Some((other, d)) = listings.get(&p.id) {
                if *d != digest {
                    rep.errors.push(problem(
                        "pack",
                        p.id,
                        format!(
                            "listed with different contents in index segments {other} and {seg_id}"
                        ),
                    ));
                }
                continue;
            }
            listings.insert(p.id, (seg_id, digest));
            match listed_packs.get(&p.id) {
                None => {
                    rep.errors.push(problem(
                        "pack",
                        p.id,
                        format!("missing (listed in index segment {seg_id})"),
                    ));
                    for b in &p.blobs {
                        damage.add(b.id, p.id, format!("pack {} is missing", p.id));
                    }
                    damage.pack(p.id, "is missing".into());
                    continue;
                }
                Some(&actual) if actual != p.size as u64 => {
                    rep.errors.push(problem(
                        "pack",
                        p.id,
                        format!(
                            "index segment {seg_id} says {} bytes, the file has {actual}",
                            p.size
                        ),
                    ));
                    // Whatever lies past the real end cannot be read back; the rest
                    // is verified by --read-data.
                    damage.pack(p.id, format!("has {actual} bytes, not {}", p.size));
                    for b in &p.blobs {
                        if b.offset as u64 + b.stored_len as u64 > actual {
                            damage.add(
                                b.id,
                                p.id,
                                format!("lies past the end of pack {} ({actual} bytes)", p.id),
                            );
                        }
                    }
                }
                Some(_) => {}
            }
            if selected.contains(&p.id) && read.insert(p.id) {
                batch.push((p.id, listed_packs[&p.id], Some(p)));
                if batch.len() >= BATCH_PACKS {
                    run_batch(repo, &mut batch, &mut rep, &mut damage, progress)?;
                }
            }
        }
    }
    let mut unreferenced: Vec<PackId> = listed_packs
        .keys()
        .filter(|p| !listings.contains_key(p))
        .copied()
        .collect();
    unreferenced.sort();
    rep.stats.unreferenced_packs = unreferenced.len() as u64;
    for p in &unreferenced {
        rep.unreferenced_packs.push(p.to_hex());
        rep.warnings.push(problem(
            "pack",
            p,
            "not in the index (left by an interrupted backup? `repair index` adopts it)",
        ));
        if selected.contains(p) && read.insert(*p) {
            batch.push((*p, listed_packs[p], None));
            if batch.len() >= BATCH_PACKS {
                run_batch(repo, &mut batch, &mut rep, &mut damage, progress)?;
            }
        }
    }
    run_batch(repo, &mut batch, &mut rep, &mut damage, progress)?;
    let mut packs_read: Vec<String> = read.iter().map(|p| p.to_hex()).collect();
    packs_read.sort();
    rep.packs_read = packs_read;

    // 3. Snapshots and the trees they reach (R10, R13–R16), reported by path.
    let mut snap_ids: Vec<SnapshotId> = repo
        .backend()
        .list(FileType::Snapshot)
        .map_err(repo.berr())?
        .into_iter()
        .filter(|(n, _)| valid_id(n))
        .filter_map(|(n, _)| SnapshotId::from_hex(&n).ok())
        .collect();
    snap_ids.sort();
    rep.stats.snapshots = snap_ids.len() as u64;
    let mut snaps = Vec::new();
    for id in snap_ids {
        match repo.load_snapshot(id) {
            Ok(s) => snaps.push((id, s)),
            Err(e) => rep
                .errors
                .push(problem("snapshot", id, strip_prefix(&e, &id))),
        }
    }
    snaps.sort_by_key(|(id, s)| (s.timestamp(), *id));
    let mut walker = Walker {
        repo,
        damage: &damage,
        memo: HashMap::new(),
    };
    for (id, snap) in &snaps {
        crate::cancel::check()?;
        let damaged = walker.snapshot_damage(&snap.tree)?;
        if !damaged.is_empty() {
            let lost = damaged.iter().filter(|e| e.lost).count();
            rep.errors.push(problem(
                "snapshot",
                id,
                format!(
                    "{lost} entries lost, {} at risk; first {}: {}",
                    damaged.len() - lost,
                    damaged[0].path,
                    damaged[0].problem
                ),
            ));
            rep.damaged_snapshots.push(DamagedSnapshot {
                id: id.to_hex(),
                time: snap.time.clone(),
                hostname: snap.hostname.clone(),
                paths: snap.paths.clone(),
                tags: snap.tags.clone(),
                damaged,
            });
        }
    }
    rep.stats.trees = walker.memo.len() as u64;
    rep.stats.duration_s = started.elapsed().as_secs_f64();
    rep.ok = rep.errors.is_empty();
    Ok((rep, damage))
}

fn select_packs(listed: &HashMap<PackId, u64>, rd: &ReadData) -> HashSet<PackId> {
    match rd {
        ReadData::None => HashSet::new(),
        ReadData::All => listed.keys().copied().collect(),
        ReadData::Slice { n, of } => listed
            .keys()
            .filter(|p| slice_of(p, *of) == n - 1)
            .copied()
            .collect(),
        ReadData::Percent(pct) => {
            let want = ((listed.len() as f64) * pct / 100.0).ceil() as usize;
            let mut keyed: Vec<(u64, PackId)> = listed
                .keys()
                .map(|p| (u64::from_le_bytes(crate::crypto::random_bytes()), *p))
                .collect();
            keyed.sort();
            keyed.into_iter().take(want).map(|(_, p)| p).collect()
        }
    }
}

fn run_batch(
    repo: &Repository,
    batch: &mut Vec<(PackId, u64, Option<PackIndex>)>,
    rep: &mut Report,
    damage: &mut Damage,
    progress: &dyn Progress,
) -> Result<()> {
    // Each thread holds a whole pack.
    let per_thread = repo.config().pack_size as u64;
    let results: Vec<(PackId, bool, PackResult)> = repo.with_read_threads(per_thread, || {
        batch
            .par_iter()
            .map(|(id, size, listing)| {
                if crate::cancel::is_interrupted() {
                    return (*id, listing.is_some(), PackResult::default());
                }
                let r = verify_pack(repo, *id, *size, listing.as_ref());
                progress.pack_done(*size);
                (*id, listing.is_some(), r)
            })
            .collect()
    });
    batch.clear();
    crate::cancel::check()?;
    for (id, indexed, r) in results {
        rep.stats.packs_read += 1;
        rep.stats.bytes_read += r.bytes;
        rep.stats.blobs_verified += r.verified;
        if indexed {
            if let Some(first) = r.errors.first() {
                damage.pack(id, format!("is damaged ({})", first.message));
            }
            rep.errors.extend(r.errors);
            for (b, why) in r.lost {
                damage.add(b, id, why);
            }
        } else {
            // Damaged packs nothing refers to are what a crash during a backup
            // leaves (format-spec/05 §5.4): they cost space, not data.
            rep.warnings.extend(r.errors.into_iter().map(|mut p| {
                p.message = format!("{} (unreferenced: no snapshot needs it)", p.message);
                p
            }));
        }
    }
    Ok(())
}

/// Walks snapshot trees once each, remembering per tree what below it is damaged.
struct Walker<'a> {
    repo: &'a Repository,
    damage: &'a Damage,
    /// Tree id -> damaged entries below it (paths relative to it), or why the tree
    /// itself cannot be read. Clean trees share one empty list.
    memo: HashMap<BlobId, TreeDamage>,
}

/// What is damaged below a tree (paths relative to it), or why it cannot be read.
type TreeDamage = std::result::Result<Arc<Vec<DamagedEntry>>, String>;

impl Walker<'_> {
    fn snapshot_damage(&mut self, tree: &str) -> Result<Vec<DamagedEntry>> {
        let lost = |problem: String| {
            vec![DamagedEntry {
                path: "/".into(),
                kind: "dir",
                lost: true,
                problem,
            }]
        };
        let root = match BlobId::from_hex(tree) {
            Ok(r) => r,
            Err(e) => return Ok(lost(e.to_string())),
        };
        Ok(match self.subtree(root, 0)? {
            Err(why) => lost(why),
            Ok(list) => list
                .iter()
                .map(|e| DamagedEntry {
                    path: format!("/{}", e.path),
                    ..e.clone()
                })
                .collect(),
        })
    }

    fn subtree(&mut self, id: BlobId, depth: usize) -> Result<TreeDamage> {
        if let Some(m) = self.memo.get(&id) {
            return Ok(m.clone());
        }
        let r = if depth > MAX_DEPTH {
            Err(format!("trees nested deeper than {MAX_DEPTH} levels"))
        } else {
            self.walk_tree(id, depth)?
        };
        self.memo.insert(id, r.clone());
        Ok(r)
    }

    fn walk_tree(&mut self, id: BlobId, depth: usize) -> Result<TreeDamage> {
        let mut out = Vec::new();
        match self.damage.blob_status(self.repo, &id, TYPE_TREE)? {
            BlobStatus::Lost(why) => return Ok(Err(format!("tree {why}"))),
            BlobStatus::AtRisk(_, why) => out.push(DamagedEntry {
                path: String::new(),
                kind: "dir",
                lost: false,
                problem: format!("its listing, tree {id}: {why}"),
            }),
            BlobStatus::Ok(_) => {}
        }
        let nodes = match self.repo.load_tree(&id) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e.to_string())),
        };
        for n in nodes {
            let name = String::from_utf8_lossy(&n.name).into_owned();
            match n.kind {
                Kind::File => {
                    if let Some((lost, problem)) = self.damage.file_status(self.repo, &n)? {
                        out.push(DamagedEntry {
                            path: name,
                            kind: "file",
                            lost,
                            problem,
                        });
                    }
                }
                Kind::Dir => {
                    let Some(sub) = n.subtree else { continue };
                    match self.subtree(sub, depth + 1)? {
                        Err(problem) => out.push(DamagedEntry {
                            path: name,
                            kind: "dir",
                            lost: true,
                            problem,
                        }),
                        Ok(list) => out.extend(list.iter().map(|e| e.under(&name))),
                    }
                }
                _ => {}
            }
        }
        Ok(Ok(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_partition_the_id_space() {
        for of in [1u32, 3, 4, 7] {
            let mut seen = vec![0u32; of as usize];
            for first in 0..=255u8 {
                let mut id = PackId([0; 32]);
                id.0[0] = first;
                id.0[1] = first.wrapping_mul(7);
                let s = slice_of(&id, of);
                assert!(s < of);
                seen[s as usize] += 1;
            }
            assert!(seen.iter().all(|&c| c > 0), "{of}: {seen:?}");
        }
        let lowest = PackId([0; 32]);
        let highest = PackId([0xff; 32]);
        assert_eq!(slice_of(&lowest, 4), 0);
        assert_eq!(slice_of(&highest, 4), 3);
    }

    #[test]
    fn subset_syntax() {
        assert_eq!(
            ReadData::parse_subset("2/4").unwrap(),
            ReadData::Slice { n: 2, of: 4 }
        );
        assert_eq!(
            ReadData::parse_subset("10%").unwrap(),
            ReadData::Percent(10.0)
        );
        for bad in ["0/4", "5/4", "x", "4", "0%", "101%", "/", "1/0"] {
            assert!(ReadData::parse_subset(bad).is_err(), "{bad} accepted");
        }
    }
}
