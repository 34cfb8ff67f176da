//! Backup: walk -> read/chunk/hash (parallel) -> dedup claim -> compress/encrypt
//! (parallel) -> pack -> write. Directories are processed with rayon so both cores
//! work on different files; a large file's chunks are sealed in parallel batches.
//! A file whose size, mtime, ctime and inode match the parent snapshot is not read.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::chunker::{self, ChunkClass};
use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::id::{BlobId, SnapshotId};
use crate::pack::{SealedBlob, TYPE_DATA, TYPE_TREE};
use crate::packer::Packer;
use crate::repofile::{self, ChunkerParams, Snapshot, SnapshotChunker, Summary};
use crate::repository::Repository;
use crate::tree::{self, Kind, Node};

/// Engine-side progress events; the CLI draws them. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// Called once the parent is known: the bytes a full pass will cover, if known.
    fn start(&self, _expected_bytes: Option<u64>) {}
    fn bytes_done(&self, _n: u64) {}
    fn file_done(&self, _path: &Path) {}
    /// A file whose content was read and stored: `new` when the parent
    /// snapshot did not have it (what `backup -v` lists).
    fn file_saved(&self, _path: &Path, _new: bool) {}
    fn warn(&self, _msg: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

pub mod exclude;

pub use exclude::{ExcludeOptions, Excluder};

/// Called after a stream is read to the end: fails when the producer failed
/// (a dump command that exited non-zero), and then no snapshot is saved.
pub type StreamFinish = Box<dyn FnOnce() -> Result<()> + Send>;

/// A named stream stored as a file at `/NAME` in the snapshot.
pub struct StreamSource {
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    pub finish: Option<StreamFinish>,
}

#[derive(Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub streams: Vec<StreamSource>,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time: Option<jiff::Zoned>,
    pub parent: Option<SnapshotId>,
    /// Re-read every file even when the parent has it unchanged.
    pub force: bool,
    pub exclude: ExcludeOptions,
    /// Read and hash everything, write nothing.
    pub dry_run: bool,
}

pub struct BackupResult {
    /// None for a dry run.
    pub snapshot: Option<SnapshotId>,
    pub parent: Option<SnapshotId>,
    pub summary: Summary,
    /// Source files that could not be read (the snapshot holds everything else).
    pub unreadable: Vec<String>,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs: AtomicU64,
    bytes_read: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
}

struct Ctx<'a, 'r> {
    packer: &'a Packer<'r>,
    params: [ChunkerParams; 2],
    level: i32,
    force: bool,
    counters: &'a Counters,
    progress: &'a dyn Progress,
    unreadable: Mutex<Vec<String>>,
    excluder: &'a Excluder,
    big_files: Semaphore,
}

/// A counting semaphore (std has none).
struct Semaphore {
    free: Mutex<usize>,
    cv: std::sync::Condvar,
}

struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    fn new(n: usize) -> Semaphore {
        Semaphore {
            free: Mutex::new(n),
            cv: std::sync::Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.cv.wait(free).unwrap();
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap() += 1;
        self.0.cv.notify_one();
    }
}

/// The parts of the file system a snapshot covers: the given paths at their
/// absolute place, with the directories above them.
#[derive(Default)]
struct VirtualDir {
    children: BTreeMap<Vec<u8>, VEntry>,
}

enum VEntry {
    Real(PathBuf),
    Virtual(PathBuf, VirtualDir),
}

fn build_virtual_root(paths: &[PathBuf]) -> Result<VirtualDir> {
    let mut root = VirtualDir::default();
    for p in paths {
        let abs = std::path::absolute(p).at(p)?;
        let comps: Vec<OsString> = abs
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.to_os_string()),
                _ => None,
            })
            .collect();
        if comps.is_empty() {
            return Err(Error::InvalidArgument(
                "backing up / itself: name the directories below it instead".into(),
            ));
        }
        let mut dir = &mut root;
        let mut cur = PathBuf::from("/");
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let key = c.as_bytes().to_vec();
            if i + 1 == comps.len() {
                dir.children.insert(key, VEntry::Real(cur.clone()));
                break;
            }
            let e = dir
                .children
                .entry(key)
                .or_insert_with(|| VEntry::Virtual(cur.clone(), VirtualDir::default()));
            match e {
                VEntry::Virtual(_, d) => dir = d,
                // A parent of this path is already backed up whole.
                VEntry::Real(_) => break,
            }
        }
    }
    Ok(root)
}

impl Ctx<'_, '_> {
    fn warn_unreadable(&self, path: &Path, e: &dyn std::fmt::Display) {
        let msg = format!("{}: {e}", path.display());
        self.progress.warn(&msg);
        self.unreadable.lock().unwrap().push(msg);
    }

    fn save_tree(&self, nodes: &mut [Node]) -> Result<BlobId> {
        let bytes = tree::encode(nodes);
        let keys = self.packer.repo().keys();
        let id = keys.blob_id(&bytes);
        if self.packer.claim(&id)? {
            self.packer
                .add(SealedBlob::seal(keys, TYPE_TREE, id, &bytes, self.level))?;
        }
        Ok(id)
    }

    fn save_virtual(
        &self,
        dir: &VirtualDir,
        parent: Option<&HashMap<Vec<u8>, Node>>,
    ) -> Result<BlobId> {
        let mut nodes = self.virtual_nodes(dir, parent)?;
        self.save_tree(&mut nodes)
    }

    fn virtual_nodes(
        &self,
        dir: &VirtualDir,
        parent: Option<&HashMap<Vec<u8>, Node>>,
    ) -> Result<Vec<Node>> {
        let results: Vec<Result<Option<Node>>> = dir
            .children
            .par_iter()
            .map(|(name, e)| {
                let prev = parent.and_then(|p| p.get(name));
                match e {
                    VEntry::Real(path) => {
                        let dev = std::fs::symlink_metadata(path).map(|m| {
                            use std::os::unix::fs::MetadataExt;
                            m.dev()
                        });
                        self.save_path(path, name.clone(), prev, dev.ok())
                    }
                    VEntry::Virtual(path, sub) => {
                        // Followed: a parent reached through a symlink is stored
                        // as the directory it leads to.
                        let m = std::fs::metadata(path).at(path)?;
                        let mut node = fsmeta::node_from_metadata(name.clone(), &m);
                        node.kind = Kind::Dir;
                        let prev_children = self.load_parent_children(prev)?;
                        node.subtree = Some(self.save_virtual(sub, prev_children.as_ref())?);
                        Ok(Some(node))
                    }
                }
            })
            .collect();
        let mut nodes = Vec::with_capacity(results.len());
        for r in results {
            if let Some(n) = r? {
                nodes.push(n);
            }
        }
        Ok(nodes)
    }

    fn load_parent_children(&self, prev: Option<&Node>) -> Result<Option<HashMap<Vec<u8>, Node>>> {
        let Some(id) = prev.filter(|n| n.kind == Kind::Dir).and_then(|n| n.subtree) else {
            return Ok(None);
        };
        match self.packer.repo().load_tree(&id) {
            Ok(nodes) => Ok(Some(
                nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
            )),
            Err(e) => {
                // A damaged parent only costs speed: the directory is read in full.
                self.progress.warn(&format!(
                    "parent tree {id} unreadable ({e}); reading the directory in full"
                ));
                Ok(None)
            }
        }
    }

    /// One file system object. `Ok(None)` when it vanished or could not be read
    /// (reported as a warning, the backup goes on).
    fn save_path(
        &self,
        path: &Path,
        name: Vec<u8>,
        prev: Option<&Node>,
        top_dev: Option<u64>,
    ) -> Result<Option<Node>> {
        crate::cancel::check()?;
        let m = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn_unreadable(path, &e);
                return Ok(None);
            }
        };
        let mut node = fsmeta::node_from_metadata(name, &m);
        let ex = &self.excluder.opts;
        match node.kind {
            Kind::File if ex.larger_than.is_some_and(|l| node.size > l) => return Ok(None),
            Kind::Dir if ex.one_file_system && top_dev.is_some_and(|d| d != node.dev) => {
                return Ok(None);
            }
            Kind::Dir if self.excluder.excludes_dir_contents(path) => return Ok(None),
            _ => {}
        }
        node.xattrs = fsmeta::read_xattrs(path);
        match node.kind {
            Kind::Dir => {
                self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                let entries = match std::fs::read_dir(path) {
                    Ok(rd) => rd,
                    Err(e) => {
                        self.warn_unreadable(path, &e);
                        return Ok(None);
                    }
                };
                let mut children: Vec<(OsString, PathBuf)> = Vec::new();
                for e in entries {
                    match e {
                        Ok(e) => {
                            let child = path.join(e.file_name());
                            // d_type from the listing: no stat() for excluded entries.
                            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                            if !self.excluder.excludes_path(&child, is_dir) {
                                children.push((e.file_name(), child));
                            }
                        }
                        Err(e) => self.warn_unreadable(path, &e),
                    }
                }
                let prev_children = self.load_parent_children(prev)?;
                let results: Vec<Result<Option<Node>>> = children
                    .into_par_iter()
                    .map(|(n, child)| {
                        let key = n.into_vec();
                        let p = prev_children.as_ref().and_then(|m| m.get(&key));
                        self.save_path(&child, key, p, top_dev)
                    })
                    .collect();
                let mut nodes = Vec::with_capacity(results.len());
                for r in results {
                    if let Some(n) = r? {
                        nodes.push(n);
                    }
                }
                node.subtree = Some(self.save_tree(&mut nodes)?);
            }
            Kind::File => {
                self.counters.total_files.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .total_bytes
                    .fetch_add(node.size, Ordering::Relaxed);
                if let Some(p) = prev.filter(|p| !self.force && unchanged(p, &node)) {
                    node.content = p.content.clone();
                    self.counters
                        .files_unmodified
                        .fetch_add(1, Ordering::Relaxed);
                    self.progress.bytes_done(node.size);
                } else {
                    match self.save_file_content(path, &mut node) {
                        Ok(()) => {
                            let c = if prev.is_some() {
                                &self.counters.files_changed
                            } else {
                                &self.counters.files_new
                            };
                            c.fetch_add(1, Ordering::Relaxed);
                            self.progress.file_saved(path, prev.is_none());
                        }
                        Err(Error::Io { path, source }) => {
                            self.warn_unreadable(&path, &source);
                            return Ok(None);
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.progress.file_done(path);
            }
            Kind::Symlink => match std::fs::read_link(path) {
                Ok(t) => node.link_target = t.into_os_string().into_vec(),
                Err(e) => {
                    self.warn_unreadable(path, &e);
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some(node))
    }

    fn save_file_content(&self, path: &Path, node: &mut Node) -> Result<()> {
        // Many threads keep many small reads in flight (a cold disk answers
        // them in parallel); large files take one of a few slots, so their
        // 16 MiB buffers stay few.
        let slot = (node.size > chunker::SMALL_BUFFER as u64).then(|| self.big_files.acquire());
        let mut f = File::open(path).at(path)?;
        let class = chunker::classify(&node.name);
        let (content, read) = self
            .save_stream(&mut f, class, Some(node.size), slot.is_some())
            .map_err(|e| match e {
                Error::Io { source, .. } => Error::io(path, source),
                other => other,
            })?;
        if read != node.size {
            self.progress.warn(&format!(
                "{}: changed while being read ({} bytes expected, {read} read); stored as read",
                path.display(),
                node.size
            ));
            node.size = read;
        } else if let Ok(m) = f.metadata() {
            use std::os::unix::fs::MetadataExt;
            if (m.mtime(), m.mtime_nsec() as u32) != node.mtime {
                self.progress.warn(&format!(
                    "{}: modified while being read; stored as read",
                    path.display()
                ));
            }
        }
        node.content = content;
        Ok(())
    }

    /// Hashes, claims and seals one batch of chunks in parallel; returns their ids.
    fn seal_batch(&self, batch: &[&[u8]], scoped: bool) -> Result<Vec<BlobId>> {
        let keys = self.packer.repo().keys();
        let slots: Vec<std::sync::OnceLock<BlobId>> = (0..batch.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        par_for(batch.len(), scoped, |i| {
            let _ = slots[i].set(keys.blob_id(batch[i]));
            Ok(())
        })?;
        let ids: Vec<BlobId> = slots
            .into_iter()
            .map(|s| s.into_inner().expect("every chunk hashed"))
            .collect();
        let claimed = self.packer.claim_many(&ids)?;
        let todo: Vec<usize> = (0..batch.len()).filter(|&i| claimed[i]).collect();
        par_for(todo.len(), scoped, |k| {
            let i = todo[k];
            self.packer.add(SealedBlob::seal(
                keys, TYPE_DATA, ids[i], batch[i], self.level,
            ))
        })?;
        Ok(ids)
    }

    /// Chunks a reader and stores its new chunks; returns the chunk ids and the byte count.
    fn save_stream(
        &self,
        r: &mut (dyn Read + Send),
        class: ChunkClass,
        size_hint: Option<u64>,
        exclusive: bool,
    ) -> Result<(Vec<BlobId>, u64)> {
        let params = match class {
            ChunkClass::Large => self.params[0],
            ChunkClass::Small => self.params[1],
        };
        let keys = self.packer.repo().keys();
        let mut ids = Vec::new();
        let res = chunker::chunk_stream(r, params, keys.chunker_seed(), size_hint, |batch| {
            crate::cancel::check()?;
            let bytes: u64 = batch.iter().map(|c| c.len() as u64).sum();
            self.counters.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            if batch.len() == 1 {
                let id = keys.blob_id(batch[0]);
                if self.packer.claim(&id)? {
                    self.packer
                        .add(SealedBlob::seal(keys, TYPE_DATA, id, batch[0], self.level))?;
                }
                ids.push(id);
            } else {
                ids.extend(self.seal_batch(batch, exclusive)?);
            }
            self.progress.bytes_done(bytes);
            Ok(())
        });
        match res {
            Ok(Ok(n)) => Ok((ids, n)),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::io(PathBuf::new(), e)),
        }
    }
}

/// Runs `f` for 0..n in parallel, on rayon or, when `scoped`, on plain scoped
/// threads. A thread holding a big-file slot must not wait the rayon way:
/// while waiting, rayon lets it steal queued work, which may be another big
/// file whose slot it then waits for on top of its own stack, and with every
/// slot held like that the backup hangs.
fn par_for(n: usize, scoped: bool, f: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    if !scoped {
        return (0..n).into_par_iter().try_for_each(&f);
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .clamp(1, n.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return Ok(());
            }
            f(i)?;
        }
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut r = work();
        for h in others {
            let joined = h
                .join()
                .unwrap_or_else(|_| Err(Error::Other("a sealing thread panicked".into())));
            if r.is_ok() {
                r = joined;
            }
        }
        r
    })
}

/// The parent's content may be reused only if nothing that changes with the
/// content has changed.
fn unchanged(prev: &Node, cur: &Node) -> bool {
    prev.kind == Kind::File
        && prev.size == cur.size
        && prev.mtime == cur.mtime
        && prev.ctime == cur.ctime
        && prev.inode == cur.inode
        && (prev.size == 0 || !prev.content.is_empty())
}

/// Indexes packs that an interrupted backup wrote but never got to index (a
/// killed process, a lost connection, a power cut), so that their blobs are
/// reused rather than stored again (format-spec 05: an interrupted backup
/// leaves only unreferenced data, which the next run reuses). Only pack headers
/// are read. A pack that cannot be parsed is left for `check` and `prune`.
fn adopt_unindexed_packs(repo: &Repository, progress: &dyn Progress) -> Result<usize> {
    use crate::backend::FileType;
    let known: std::collections::HashSet<crate::id::PackId> = repo
        .cache()
        .packs()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let listed = repo.backend().list(FileType::Pack).map_err(repo.berr())?;
    let orphans: Vec<(crate::id::PackId, u64)> = listed
        .into_iter()
        .filter_map(|(name, size)| crate::id::PackId::from_hex(&name).ok().map(|id| (id, size)))
        .filter(|(id, _)| !known.contains(id))
        .collect();
    if orphans.is_empty() {
        return Ok(0);
    }
    let packs: Vec<crate::index::PackIndex> = orphans
        .par_iter()
        .filter_map(
            |(id, size)| match crate::repair::read_pack_header(repo, *id, *size) {
                Ok(blobs) => Some(crate::index::PackIndex {
                    id: *id,
                    size: *size as u32,
                    blobs,
                }),
                Err(e) => {
                    progress.warn(&format!("unindexed pack {id} left alone: {e}"));
                    None
                }
            },
        )
        .collect();
    let n = packs.len();
    for chunk in packs.chunks(crate::index::segment::MAX_PACKS / 2) {
        repo.write_segment(&crate::index::Segment {
            superseded: Vec::new(),
            packs: chunk.to_vec(),
        })?;
    }
    repo.backend().flush().map_err(repo.berr())?;
    Ok(n)
}

/// Picks the parent: explicit, else the newest snapshot of the same host and paths.
fn find_parent(
    repo: &Repository,
    host: &str,
    paths: &[String],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    let mut sorted = paths.to_vec();
    sorted.sort();
    Ok(repo.snapshots()?.into_iter().rev().find(|(_, s)| {
        let mut p = s.paths.clone();
        p.sort();
        s.hostname == host && p == sorted
    }))
}

pub fn backup(
    repo: &Repository,
    opts: BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupResult> {
    let started = Instant::now();
    // The snapshot is dated when the backup starts (what it holds is at least that old).
    let time = opts.time.clone().unwrap_or_else(jiff::Zoned::now);
    let host = opts.host.clone().unwrap_or_else(repofile::hostname);
    let mut paths: Vec<String> = Vec::new();
    for p in &opts.paths {
        let abs = std::path::absolute(p).at(p)?;
        std::fs::symlink_metadata(&abs).at(&abs)?;
        paths.push(abs.to_string_lossy().into_owned());
    }
    for s in &opts.streams {
        if !tree::valid_name(s.name.as_bytes()) {
            return Err(Error::InvalidArgument(format!(
                "stream name {:?}: must be a plain file name",
                s.name
            )));
        }
        paths.push(format!("/{}", s.name));
    }
    if paths.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to back up: give paths or streams".into(),
        ));
    }
    if !opts.dry_run {
        let adopted = adopt_unindexed_packs(repo, progress)?;
        if adopted > 0 {
            repo.notify(&format!(
                "indexed {adopted} pack(s) left by an interrupted backup; their data is reused"
            ));
        }
    }
    let parent = match opts.parent {
        Some(id) => Some((id, repo.load_snapshot(id)?)),
        None if opts.force => None,
        None => find_parent(repo, &host, &paths)?,
    };
    let parent_root: Option<HashMap<Vec<u8>, Node>> = match &parent {
        Some((_, s)) => match repo.load_tree(&BlobId::from_hex(&s.tree)?) {
            Ok(n) => Some(n.into_iter().map(|n| (n.name.clone(), n)).collect()),
            Err(e) => {
                progress.warn(&format!(
                    "parent snapshot unreadable ({e}); reading all files"
                ));
                None
            }
        },
        None => None,
    };
    progress.start(
        parent
            .as_ref()
            .and_then(|(_, s)| s.summary.as_ref())
            .map(|s| s.total_bytes),
    );
    let excluder = Excluder::new(opts.exclude.clone())?;
    let mut kept_paths = Vec::new();
    for p in &opts.paths {
        let abs = std::path::absolute(p).at(p)?;
        let is_dir = std::fs::symlink_metadata(&abs)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !excluder.excludes_path(&abs, is_dir) {
            kept_paths.push(abs);
        }
    }
    let vroot = build_virtual_root(&kept_paths)?;
    let cfg = repo.config().clone();
    let counters = Counters::default();
    let mut streams = opts.streams;
    let writers = repo.backend().properties().connections;
    let dry_run = opts.dry_run;
    // Reading is I/O-bound on a cold disk: three threads a core keep enough
    // reads in flight; compression and sealing still run on every core.
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            (3 * std::thread::available_parallelism().map_or(2, |n| n.get())).max(4)
        });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Other(format!("starting {threads} threads: {e}")))?;
    let ((root_tree, unreadable), stats) = pool.install(|| {
        Packer::run(repo, writers, dry_run, |packer| {
            let ctx = Ctx {
                packer,
                params: [cfg.chunker.large, cfg.chunker.small],
                level: cfg.compression.level,
                force: opts.force,
                counters: &counters,
                progress,
                unreadable: Mutex::new(Vec::new()),
                excluder: &excluder,
                big_files: Semaphore::new(rayon::current_num_threads().clamp(1, 2)),
            };
            // Streams first, one at a time: each is a single sequential reader whose
            // chunks are sealed in parallel batches.
            let mut stream_nodes = Vec::new();
            for s in streams.iter_mut() {
                // Up to 16 MiB read ahead of the chunker.
                let inner = std::mem::replace(&mut s.reader, Box::new(std::io::empty()));
                s.reader = Box::new(chunker::Prefetch::new(inner, 4 << 20, 4));
                let (content, n) = ctx
                    .save_stream(&mut s.reader, ChunkClass::Small, None, false)
                    .map_err(|e| match e {
                        Error::Io { source, .. } => {
                            Error::Other(format!("reading stream {}: {source}", s.name))
                        }
                        other => other,
                    })?;
                if let Some(finish) = s.finish.take() {
                    finish()?;
                }
                let mut node = Node::new(s.name.as_bytes().to_vec(), Kind::File);
                let now = jiff::Timestamp::now();
                node.mode = 0o600;
                node.uid = unsafe { libc::getuid() };
                node.gid = unsafe { libc::getgid() };
                node.user = fsmeta::user_name(node.uid).unwrap_or_default();
                node.group = fsmeta::group_name(node.gid).unwrap_or_default();
                node.mtime = (now.as_second(), now.subsec_nanosecond() as u32);
                node.ctime = node.mtime;
                node.size = n;
                node.content = content;
                counters.files_new.fetch_add(1, Ordering::Relaxed);
                counters.total_files.fetch_add(1, Ordering::Relaxed);
                counters.total_bytes.fetch_add(n, Ordering::Relaxed);
                stream_nodes.push(node);
            }
            // The root tree holds the real paths' top entries and the streams.
            let mut nodes = ctx.virtual_nodes(&vroot, parent_root.as_ref())?;
            for s in stream_nodes {
                if nodes.iter().any(|n| n.name == s.name) {
                    return Err(Error::InvalidArgument(format!(
                        "stream name {:?} collides with a backed-up path",
                        String::from_utf8_lossy(&s.name)
                    )));
                }
                nodes.push(s);
            }
            let root = ctx.save_tree(&mut nodes)?;
            Ok((root, ctx.unreadable.into_inner().unwrap()))
        })
    })?;
    let summary = Summary {
        files_new: counters.files_new.load(Ordering::Relaxed),
        files_changed: counters.files_changed.load(Ordering::Relaxed),
        files_unmodified: counters.files_unmodified.load(Ordering::Relaxed),
        dirs: counters.dirs.load(Ordering::Relaxed),
        bytes_read: counters.bytes_read.load(Ordering::Relaxed),
        data_blobs_added: stats.data_blobs,
        tree_blobs_added: stats.tree_blobs,
        data_added: stats.raw_bytes,
        data_added_packed: stats.stored_bytes,
        total_files: counters.total_files.load(Ordering::Relaxed),
        total_bytes: counters.total_bytes.load(Ordering::Relaxed),
        duration_s: started.elapsed().as_secs_f64(),
    };
    let mut tags = opts.tags;
    tags.sort();
    tags.dedup();
    let snap = Snapshot {
        version: repofile::FORMAT_VERSION,
        time: time.strftime("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string(),
        tree: root_tree.to_hex(),
        paths,
        hostname: host,
        username: repofile::username(),
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
        tags,
        parent: parent.as_ref().map(|(id, _)| id.to_hex()),
        program: format!("cellar {}", env!("CARGO_PKG_VERSION")),
        chunker: SnapshotChunker {
            large: cfg.chunker.large,
            small: cfg.chunker.small,
            rule: "v1".into(),
        },
        summary: Some(summary.clone()),
    };
    let id = if dry_run {
        None
    } else {
        crate::fault::pause("backup-pause-before-snapshot");
        Some(repo.save_snapshot(&snap)?)
    };
    Ok(BackupResult {
        snapshot: id,
        parent: parent.map(|(id, _)| id),
        summary,
        unreadable,
    })
}
