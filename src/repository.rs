//! An open repository: its backend, keys, config and local cache. Everything that
//! reads or writes repository files goes through here.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::backend::{FileType, WriteBackend};
use crate::crypto::{self, KdfParams, Keys};
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, KeyId, PackId, RepoId, SnapshotId};
use crate::index::{Cache, Segment};
use crate::pack::{BlobEntry, TYPE_TREE};
use crate::repofile::{self, Config, KeyFile, KeyMeta, Snapshot};
use crate::tree::{self, Node};
use crate::treepacks::{self, TreeRuns};

/// Something the engine wants to tell the user about (rebuilding a cache, a
/// stale lock). The CLI decides how to show it.
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// Trees loaded per batch by [`Repository::load_trees`].
const TREE_BATCH: usize = 4096;
/// Tree blobs of a pack closer than this are fetched in one read.
const TREE_MERGE_GAP: u64 = 64 << 10;
const TREE_MAX_READ: u64 = 16 << 20;

/// One read of a pack for `load_trees`: pack, start, end, and the blobs in
/// that range with the position of their id in the request.
type TreeRun = (PackId, u64, u64, Vec<(usize, BlobEntry)>);

pub fn silent() -> Notify {
    Arc::new(|_| {})
}

/// Bytes of pack data that the threads reading packs in parallel may hold
/// together when [`Repository::read_threads`] gives them more threads than cores.
pub const READ_BUDGET: u64 = 256 << 20;

pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: repofile::ChunkerConfig,
    pub compression_level: i32,
    pub pack_size: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            chunker: Default::default(),
            compression_level: 3,
            // 16 MiB: one PUT on S3 (under the multipart threshold of most tools), and
            // 1 TB stays ~65,000 files on a disk.
            pack_size: 16 << 20,
        }
    }
}

pub struct Repository {
    pub(crate) backend: Arc<dyn WriteBackend>,
    pub(crate) keys: Keys,
    pub(crate) config: Config,
    pub(crate) cache: Cache,
    key_id: KeyId,
    notify: Notify,
    /// Tree blobs read a pack run at a time: only where requests are costly
    /// (`cheap_ranged_reads` false), since on a disk a single read is cheaper.
    tree_runs: Option<TreeRuns>,
}

fn backend_err(b: &dyn WriteBackend) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Backend {
        location: b.location(),
        source: e,
    }
}

/// Default cache root: $XDG_CACHE_HOME/cellar, else ~/.cache/cellar.
pub fn default_cache_root() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(x).join("cellar");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(h).join(".cache").join("cellar");
    }
    std::env::temp_dir().join("cellar-cache")
}

fn make_key_file(keys: &Keys, password: &[u8], kdf: KdfParams) -> Result<(KeyId, Vec<u8>)> {
    let salt: [u8; 32] = crypto::random_bytes();
    let kek = crypto::derive_kek(password, &salt, kdf)?;
    let meta = KeyMeta {
        created: repofile::now_rfc3339(),
        hostname: repofile::hostname(),
        username: repofile::username(),
    };
    let meta_json = serde_json::to_vec(&meta).expect("key metadata serializes");
    let kf = KeyFile {
        version: repofile::FORMAT_VERSION,
        kdf: repofile::KdfJson {
            algorithm: "argon2id".into(),
            version: 19,
            memory_kib: kdf.memory_kib,
            iterations: kdf.iterations,
            parallelism: kdf.parallelism,
            salt: hex::encode(salt),
        },
        master_key: hex::encode(crypto::wrap_master(&kek, keys.master())),
        meta: hex::encode(keys.seal(crypto::aad::KEY_META, &meta_json)),
    };
    let bytes = serde_json::to_vec_pretty(&kf).expect("key file serializes");
    Ok((KeyId(crate::id::storage_hash(&bytes)), bytes))
}

fn parse_key_file(id: &str, bytes: &[u8]) -> Result<(KeyFile, KdfParams, Vec<u8>)> {
    if bytes.len() > repofile::MAX_KEYFILE {
        return Err(Error::corrupt("key", id, "key file larger than 64 KiB"));
    }
    let kf: KeyFile = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt("key", id, format!("not a key file: {e}")))?;
    if kf.version != repofile::FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "key file",
            version: kf.version as u64,
        });
    }
    if kf.kdf.algorithm != "argon2id" || kf.kdf.version != 19 {
        return Err(Error::corrupt(
            "key",
            id,
            format!("unsupported KDF {} v{}", kf.kdf.algorithm, kf.kdf.version),
        ));
    }
    let p = KdfParams {
        memory_kib: kf.kdf.memory_kib,
        iterations: kf.kdf.iterations,
        parallelism: kf.kdf.parallelism,
    };
    p.validate()?;
    let salt = hex::decode(&kf.kdf.salt)
        .ok()
        .filter(|s| (16..=64).contains(&s.len()))
        .ok_or_else(|| Error::corrupt("key", id, "bad salt"))?;
    Ok((kf, p, salt))
}

/// Creates a repository at an empty location. Returns its id.
pub fn init(backend: &dyn WriteBackend, password: &[u8], opts: &InitOptions) -> Result<RepoId> {
    let berr = backend_err(backend);
    if !backend.is_empty().map_err(&berr)? {
        return Err(Error::NotEmpty(backend.location()));
    }
    let keys = Keys::generate();
    let repo_id = RepoId(crypto::random_bytes());
    let config = Config {
        version: repofile::FORMAT_VERSION,
        id: repo_id.to_hex(),
        created: repofile::now_rfc3339(),
        chunker: opts.chunker,
        compression: repofile::CompressionConfig {
            algorithm: "zstd".into(),
            level: opts.compression_level,
        },
        pack_size: opts.pack_size,
    };
    config.validate()?;
    backend.create().map_err(&berr)?;
    let (kid, kbytes) = make_key_file(&keys, password, opts.kdf)?;
    backend
        .create_new(FileType::Key, &kid.to_hex(), &kbytes)
        .map_err(&berr)?;
    let cbytes = seal_meta(
        &keys,
        crypto::aad::CONFIG,
        &serde_json::to_vec(&config).unwrap(),
    );
    // The config is written last: a location holds a repository once it exists.
    if !backend
        .create_new(FileType::Config, "config", &cbytes)
        .map_err(&berr)?
    {
        return Err(Error::NotEmpty(backend.location()));
    }
    backend.flush().map_err(&berr)?;
    Ok(repo_id)
}

fn seal_meta(keys: &Keys, aad: &[u8], body: &[u8]) -> Vec<u8> {
    keys.seal(aad, &crate::compress::frame_meta(body))
}

fn open_meta(
    keys: &Keys,
    aad: &[u8],
    what: &'static str,
    id: &str,
    bytes: &[u8],
    max: usize,
) -> Result<Vec<u8>> {
    let framed = keys
        .open(aad, bytes)
        .map_err(|e| Error::corrupt(what, id, e.to_string()))?;
    crate::compress::unframe_meta(what, &framed, max)
        .map_err(|e| Error::corrupt(what, id, e.to_string()))
}

pub struct KeyInfo {
    pub id: KeyId,
    pub current: bool,
    pub meta: Option<KeyMeta>,
    pub kdf: KdfParams,
}

impl Repository {
    /// Unlocks a repository and brings its cache up to date.
    pub fn open(
        backend: Box<dyn WriteBackend>,
        password: &[u8],
        cache_root: Option<&Path>,
        notify: Notify,
    ) -> Result<Repository> {
        let backend: Arc<dyn WriteBackend> = Arc::from(backend);
        let loc = backend.location();
        let berr = |e: std::io::Error| Error::Backend {
            location: loc.clone(),
            source: e,
        };
        let config_bytes = match backend.read(FileType::Config, "config") {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoRepository(backend.location()));
            }
            Err(e) => return Err(berr(e)),
        };
        let key_names = backend.list(FileType::Key).map_err(&berr)?;
        let mut unlocked = None;
        for (name, size) in &key_names {
            if *size as usize > repofile::MAX_KEYFILE {
                continue;
            }
            let bytes = backend.read(FileType::Key, name).map_err(&berr)?;
            let Ok((kf, p, salt)) = parse_key_file(name, &bytes) else {
                notify(&format!("warning: key file {name} is malformed, skipped"));
                continue;
            };
            let Ok(sealed) = hex::decode(&kf.master_key) else {
                continue;
            };
            let kek = crypto::derive_kek(password, &salt, p)?;
            if let Some(master) = crypto::unwrap_master(&kek, &sealed) {
                unlocked = Some((KeyId::from_hex(name)?, Keys::from_master(master)));
                break;
            }
        }
        let Some((key_id, keys)) = unlocked else {
            return Err(Error::WrongPassword);
        };
        let body = open_meta(
            &keys,
            crypto::aad::CONFIG,
            "config",
            "config",
            &config_bytes,
            repofile::MAX_CONFIG,
        )?;
        let config: Config = serde_json::from_slice(&body)
            .map_err(|e| Error::corrupt("config", "config", e.to_string()))?;
        config.validate()?;
        let root = cache_root
            .map(Path::to_path_buf)
            .unwrap_or_else(default_cache_root);
        let cache = Cache::open(&root.join(&config.id).join("index.sqlite"))?;
        let tree_runs = (!backend.properties().cheap_ranged_reads).then(TreeRuns::default);
        let repo = Repository {
            backend,
            keys,
            config,
            cache,
            key_id,
            notify,
            tree_runs,
        };
        repo.sync_index()?;
        crate::marks::sync(&repo)?;
        repo.sync_snapshots()?;
        Ok(repo)
    }

    pub fn id(&self) -> RepoId {
        RepoId::from_hex(&self.config.id).expect("validated at open")
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn backend(&self) -> &Arc<dyn WriteBackend> {
        &self.backend
    }

    pub fn notify(&self, msg: &str) {
        (self.notify)(msg)
    }

    pub fn berr(&self) -> impl Fn(std::io::Error) -> Error + '_ {
        backend_err(&*self.backend)
    }

    /// Reads the index segments the cache has not seen. Only a vanished or
    /// superseded segment (after a prune) forces a full rebuild.
    pub fn sync_index(&self) -> Result<()> {
        let listed: HashSet<IndexId> = self
            .backend
            .list(FileType::Index)
            .map_err(self.berr())?
            .into_iter()
            .filter_map(|(n, _)| IndexId::from_hex(&n).ok())
            .collect();
        let known = self.cache.segments()?;
        let mut new: Vec<IndexId> = listed.difference(&known).copied().collect();
        let gone = known.difference(&listed).next().is_some();
        if new.is_empty() && !gone {
            return Ok(());
        }
        let mut rebuild = gone;
        if rebuild || known.is_empty() {
            new = listed.iter().copied().collect();
        }
        if new.len() > 8 || rebuild {
            self.notify(&format!(
                "updating the local cache from {} index segment(s)",
                new.len()
            ));
        }
        // Segments are read a batch at a time and added as they come, so memory
        // does not grow with the size of the index being synced.
        if !rebuild {
            let mut superseding = false;
            self.for_each_segment(&new, |id, seg| {
                if !seg.superseded.is_empty() {
                    superseding = true;
                } else if !superseding {
                    self.cache.add_segment(id, &seg)?;
                }
                Ok(())
            })?;
            if !superseding {
                return Ok(());
            }
            rebuild = true;
        }
        debug_assert!(rebuild);
        // A rebuild: first which segments are superseded (only those lists are
        // kept), then every other segment, again a batch at a time.
        let all: Vec<IndexId> = listed.iter().copied().collect();
        let mut superseded: HashSet<IndexId> = HashSet::new();
        self.for_each_segment(&all, |_, seg| {
            superseded.extend(seg.superseded.iter().copied());
            Ok(())
        })?;
        self.cache.clear_index()?;
        let live: Vec<IndexId> = all
            .into_iter()
            .filter(|id| !superseded.contains(id))
            .collect();
        self.for_each_segment(&live, |id, seg| self.cache.add_segment(id, &seg))?;
        Ok(())
    }

    fn for_each_segment(
        &self,
        ids: &[IndexId],
        mut f: impl FnMut(IndexId, Segment) -> Result<()>,
    ) -> Result<()> {
        for chunk in ids.chunks(16) {
            for (id, seg) in self.read_segments(chunk)? {
                f(id, seg)?;
            }
        }
        Ok(())
    }

    /// Reads index segments. A damaged segment is skipped with a warning
    /// (format-spec 05 §5.6): the repository stays usable, `check` reports the
    /// blobs only it listed, and `repair index` rebuilds it from the packs.
    /// A backend failure (not a damaged file) still fails the whole read.
    fn read_segments(&self, ids: &[IndexId]) -> Result<Vec<(IndexId, Segment)>> {
        let read: Vec<Result<Option<(IndexId, Segment)>>> = ids
            .par_iter()
            .map(|id| {
                let bytes = self
                    .backend
                    .read(FileType::Index, &id.to_hex())
                    .map_err(self.berr())?;
                match Segment::open(&self.keys, *id, &bytes) {
                    Ok(seg) => Ok(Some((*id, seg))),
                    Err(e) => {
                        self.notify(&format!(
                            "warning: skipping damaged index segment {id}: {e} (run `cellar repair index`)"
                        ));
                        Ok(None)
                    }
                }
            })
            .collect();
        let mut out = Vec::with_capacity(read.len());
        for r in read {
            if let Some(s) = r? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Brings the cache's snapshot list in line with the repository.
    pub fn sync_snapshots(&self) -> Result<()> {
        let listed: HashSet<SnapshotId> = self
            .backend
            .list(FileType::Snapshot)
            .map_err(self.berr())?
            .into_iter()
            .filter_map(|(n, _)| SnapshotId::from_hex(&n).ok())
            .collect();
        let known = self.cache.snapshot_ids()?;
        for gone in known.difference(&listed) {
            self.cache.remove_snapshot(*gone)?;
        }
        let new: Vec<SnapshotId> = listed.difference(&known).copied().collect();
        let loaded: Vec<Result<(SnapshotId, Snapshot)>> = new
            .par_iter()
            .map(|id| Ok((*id, self.load_snapshot(*id)?)))
            .collect();
        for r in loaded {
            match r {
                Ok((id, snap)) => {
                    let json = serde_json::to_string(&snap).expect("snapshot serializes");
                    self.cache
                        .put_snapshot(id, snap.timestamp().as_second(), &json)?;
                }
                Err(e) => self.notify(&format!("warning: {e}")),
            }
        }
        Ok(())
    }

    pub fn load_snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        let bytes = self
            .backend
            .read(FileType::Snapshot, &id.to_hex())
            .map_err(self.berr())?;
        if crate::id::storage_hash(&bytes) != id.0 {
            return Err(Error::corrupt(
                "snapshot",
                id,
                "content does not match its name",
            ));
        }
        let body = open_meta(
            &self.keys,
            crypto::aad::SNAPSHOT,
            "snapshot",
            &id.to_hex(),
            &bytes,
            repofile::MAX_SNAPSHOT,
        )?;
        let snap: Snapshot = serde_json::from_slice(&body)
            .map_err(|e| Error::corrupt("snapshot", id, e.to_string()))?;
        snap.validate()
            .map_err(|e| Error::corrupt("snapshot", id, e.to_string()))?;
        Ok(snap)
    }

    /// Writes a snapshot: the last step of a backup, after its packs and index.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        let json = serde_json::to_vec(snap).expect("snapshot serializes");
        let bytes = seal_meta(&self.keys, crypto::aad::SNAPSHOT, &json);
        let id = SnapshotId(crate::id::storage_hash(&bytes));
        self.backend
            .write(FileType::Snapshot, &id.to_hex(), &bytes)
            .map_err(self.berr())?;
        self.backend.flush().map_err(self.berr())?;
        self.cache.put_snapshot(
            id,
            snap.timestamp().as_second(),
            &String::from_utf8(json).expect("JSON is UTF-8"),
        )?;
        Ok(id)
    }

    pub fn remove_snapshot(&self, id: SnapshotId) -> Result<()> {
        self.backend
            .remove(FileType::Snapshot, &id.to_hex())
            .map_err(self.berr())?;
        self.cache.remove_snapshot(id)
    }

    /// All snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut out = Vec::new();
        for (id, json) in self.cache.snapshots()? {
            match serde_json::from_str::<Snapshot>(&json) {
                Ok(s) => out.push((id, s)),
                Err(e) => self.notify(&format!("warning: cached snapshot {id}: {e}")),
            }
        }
        out.sort_by_key(|(id, s)| (s.timestamp(), *id));
        Ok(out)
    }

    /// Resolves "latest", "@TIME" or an id prefix among all snapshots
    /// (see [`crate::selector`] for filtered selection).
    pub fn find_snapshot(&self, selector: &str) -> Result<(SnapshotId, Snapshot)> {
        crate::selector::resolve_in(self.snapshots()?, selector, &crate::selector::now())
    }

    /// Reads one blob: locate it in the cache, read its byte range, open and verify it.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self
            .cache
            .lookup(id)?
            .ok_or_else(|| Error::corrupt("blob", id, "not found in the index"))?;
        self.read_blob_at(loc.pack, &loc.entry)
    }

    /// Reads, opens and verifies the blob `e` of `pack`.
    pub fn read_blob_at(&self, pack: PackId, e: &BlobEntry) -> Result<Vec<u8>> {
        let stored = self
            .backend
            .read_range(
                FileType::Pack,
                &pack.to_hex(),
                e.offset as u64,
                e.stored_len as u64,
            )
            .map_err(|err| Error::corrupt("blob", e.id, format!("reading pack {pack}: {err}")))?;
        crate::pack::open_blob(&self.keys, e, &stored)
    }

    pub fn load_tree(&self, id: &BlobId) -> Result<Vec<Node>> {
        let loc = self
            .cache
            .lookup(id)?
            .ok_or_else(|| Error::corrupt("blob", id, "not found in the index"))?;
        let bytes =
            self.read_tree_at(loc.pack, &loc.entry, || self.cache.tree_blobs_in(&loc.pack))?;
        tree::decode(&bytes).map_err(|e| Error::corrupt("tree", id, e.to_string()))
    }

    /// Reads the tree blob `e` of `pack`. Where requests are costly, the run of
    /// tree blobs around it is fetched and kept (see [`crate::treepacks`]);
    /// `siblings` lists the pack's tree blobs, asked for once per pack.
    pub fn read_tree_at(
        &self,
        pack: PackId,
        e: &BlobEntry,
        siblings: impl FnOnce() -> Result<Vec<BlobEntry>>,
    ) -> Result<Vec<u8>> {
        let Some(runs) = self.tree_runs.as_ref().filter(|_| e.blob_type == TYPE_TREE) else {
            return self.read_blob_at(pack, e);
        };
        let layout = runs.layout(pack, || {
            Ok::<_, Error>(treepacks::plan_runs(
                &siblings()?,
                treepacks::MAX_GAP,
                treepacks::MAX_RUN,
            ))
        })?;
        let Some(run) = treepacks::find_run(&layout, e) else {
            return self.read_blob_at(pack, e);
        };
        let bytes = runs.get(pack, run, || {
            self.backend
                .read_range(FileType::Pack, &pack.to_hex(), run.start, run.len())
        });
        match bytes {
            Some(b) => {
                let o = (e.offset as u64 - run.start) as usize;
                crate::pack::open_blob(&self.keys, e, &b[o..o + e.stored_len as usize])
            }
            None => self.read_blob_at(pack, e),
        }
    }

    /// Threads worth reading packs with at once, each holding up to
    /// `per_thread` bytes of them. Where requests are costly, one per connection
    /// (a thread waiting for a response uses no core) as long as they hold at
    /// most [`READ_BUDGET`] together; never fewer than one per core, as the
    /// global pool has.
    pub fn read_threads(&self, per_thread: u64) -> usize {
        let p = self.backend.properties();
        let cores = rayon::current_num_threads();
        if p.cheap_ranged_reads {
            return cores;
        }
        let fit = (READ_BUDGET / per_thread.max(1)).min(p.connections as u64) as usize;
        cores.max(fit)
    }

    /// Runs `f`, whose parallel iterators read packs, on
    /// [`Self::read_threads`]`(per_thread)` threads.
    pub fn with_read_threads<R: Send>(&self, per_thread: u64, f: impl FnOnce() -> R + Send) -> R {
        let n = self.read_threads(per_thread);
        if n <= rayon::current_num_threads() {
            return f();
        }
        match rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("cellar-read-{i}"))
            .build()
        {
            Ok(pool) => pool.install(f),
            // No threads to be had: the global pool still does the work.
            Err(_) => f(),
        }
    }

    /// Runs of tree packs fetched so far (None where trees are read one by one).
    pub fn tree_run_fetches(&self) -> Option<u64> {
        self.tree_runs.as_ref().map(TreeRuns::fetches)
    }

    /// Loads many trees at once, each result in the order of `ids`. Loading a
    /// whole snapshot's trees one `load_tree` at a time costs an index lookup,
    /// a pack open and a small read each, one after the other; here there is
    /// one index lock for all the lookups, one read per run of neighbouring
    /// tree blobs in a pack (a backup packs trees together), and decryption
    /// and decoding spread over the thread pool.
    pub fn load_trees(&self, ids: &[BlobId]) -> Result<Vec<Result<Vec<Node>>>> {
        let mut out: Vec<Result<Vec<Node>>> = Vec::with_capacity(ids.len());
        // Batches bound how much sealed tree data is held at once.
        for batch in ids.chunks(TREE_BATCH) {
            out.extend(self.load_tree_batch(batch)?);
        }
        Ok(out)
    }

    fn load_tree_batch(&self, ids: &[BlobId]) -> Result<Vec<Result<Vec<Node>>>> {
        let locs = self.cache.lookup_many(ids)?;
        if self.tree_runs.is_some() {
            // Where requests are costly the run cache already reads each run
            // of tree blobs once for the whole walk, across batches and levels.
            return Ok(locs
                .par_iter()
                .zip(ids)
                .map(|(loc, id)| {
                    let loc = loc
                        .as_ref()
                        .ok_or_else(|| Error::corrupt("blob", id, "not found in the index"))?;
                    let plain = self.read_tree_at(loc.pack, &loc.entry, || {
                        self.cache.tree_blobs_in(&loc.pack)
                    })?;
                    tree::decode(&plain).map_err(|e| Error::corrupt("tree", id, e.to_string()))
                })
                .collect());
        }
        let mut by_pack: HashMap<PackId, Vec<(usize, BlobEntry)>> = HashMap::new();
        for (i, loc) in locs.iter().enumerate() {
            if let Some(l) = loc {
                by_pack.entry(l.pack).or_default().push((i, l.entry));
            }
        }
        let mut runs: Vec<TreeRun> = Vec::new();
        for (pack, mut blobs) in by_pack {
            blobs.sort_by_key(|(_, e)| e.offset);
            for (i, e) in blobs {
                let (o, l) = (e.offset as u64, e.stored_len as u64);
                match runs.last_mut() {
                    Some((p, start, end, members))
                        if *p == pack
                            && o <= *end + TREE_MERGE_GAP
                            && o + l - *start <= TREE_MAX_READ =>
                    {
                        *end = (*end).max(o + l);
                        members.push((i, e));
                    }
                    _ => runs.push((pack, o, o + l, vec![(i, e)])),
                }
            }
        }
        let data: Vec<std::io::Result<Vec<u8>>> = runs
            .par_iter()
            .map(|(pack, start, end, _)| {
                self.backend
                    .read_range(FileType::Pack, &pack.to_hex(), *start, end - start)
            })
            .collect();
        let read: Vec<(usize, Result<Vec<Node>>)> = runs
            .par_iter()
            .zip(&data)
            .flat_map(|((pack, start, _, members), data)| {
                members.par_iter().map(move |(i, e)| {
                    let nodes = match data {
                        Ok(buf) => {
                            let o = (e.offset as u64 - start) as usize;
                            // A short read (a truncated pack) must not panic.
                            buf.get(o..o + e.stored_len as usize)
                                .ok_or_else(|| {
                                    Error::corrupt(
                                        "blob",
                                        e.id,
                                        format!("pack {pack} is shorter than its index says"),
                                    )
                                })
                                .and_then(|sealed| crate::pack::open_blob(&self.keys, e, sealed))
                                .and_then(|b| {
                                    tree::decode(&b).map_err(|err| {
                                        Error::corrupt("tree", e.id, err.to_string())
                                    })
                                })
                        }
                        Err(err) => Err(Error::corrupt(
                            "blob",
                            e.id,
                            format!("reading pack {pack}: {err}"),
                        )),
                    };
                    (*i, nodes)
                })
            })
            .collect();
        let mut out: Vec<Option<Result<Vec<Node>>>> = (0..ids.len()).map(|_| None).collect();
        for (i, r) in read {
            out[i] = Some(r);
        }
        Ok(out
            .into_iter()
            .zip(ids)
            .map(|(r, id)| {
                r.unwrap_or_else(|| Err(Error::corrupt("blob", id, "not found in the index")))
            })
            .collect())
    }

    /// Writes a sealed index segment and records it in the cache.
    pub(crate) fn write_segment(&self, seg: &Segment) -> Result<IndexId> {
        let (id, bytes) = seg.seal(&self.keys);
        self.backend
            .write(FileType::Index, &id.to_hex(), &bytes)
            .map_err(self.berr())?;
        self.cache.add_segment(id, seg)?;
        Ok(id)
    }

    // ---- keys ----

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list(FileType::Key).map_err(self.berr())? {
            let Ok(id) = KeyId::from_hex(&name) else {
                continue;
            };
            let bytes = self
                .backend
                .read(FileType::Key, &name)
                .map_err(self.berr())?;
            // Like `open`, skip a malformed key file: it must not block listing
            // and removing the good keys.
            let (kf, kdf, _) = match parse_key_file(&name, &bytes) {
                Ok(k) => k,
                Err(e) => {
                    self.notify(&format!("warning: key file {name} skipped: {e}"));
                    continue;
                }
            };
            let meta = hex::decode(&kf.meta)
                .ok()
                .and_then(|m| self.keys.open(crypto::aad::KEY_META, &m).ok())
                .and_then(|j| serde_json::from_slice::<KeyMeta>(&j).ok());
            out.push(KeyInfo {
                id,
                current: id == self.key_id,
                meta,
                kdf,
            });
        }
        out.sort_by(|a, b| {
            let ta = a.meta.as_ref().map(|m| m.created.clone());
            let tb = b.meta.as_ref().map(|m| m.created.clone());
            ta.cmp(&tb).then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        let (id, bytes) = make_key_file(&self.keys, password, kdf)?;
        self.backend
            .create_new(FileType::Key, &id.to_hex(), &bytes)
            .map_err(self.berr())?;
        self.backend.flush().map_err(self.berr())?;
        Ok(id)
    }

    pub fn current_key(&self) -> KeyId {
        self.key_id
    }

    /// Removes a key; the key in use cannot be removed (that would lock the user out mid-session).
    pub fn remove_key(&self, id: KeyId) -> Result<()> {
        if id == self.key_id {
            return Err(Error::InvalidArgument(format!(
                "key {} is the one in use: open the repository with another password to remove it",
                id.short()
            )));
        }
        let keys = self.list_keys()?;
        if !keys.iter().any(|k| k.id == id) {
            return Err(Error::NotFound(format!("no key {id}")));
        }
        self.backend
            .remove(FileType::Key, &id.to_hex())
            .map_err(self.berr())?;
        self.backend.flush().map_err(self.berr())
    }

    /// Changes the password of the key in use: a new key file, then the old one goes.
    pub fn change_password(&mut self, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        let new = self.add_key(password, kdf)?;
        let old = self.key_id;
        self.key_id = new;
        self.backend
            .remove(FileType::Key, &old.to_hex())
            .map_err(self.berr())?;
        self.backend.flush().map_err(self.berr())?;
        Ok(new)
    }

    /// Resolves a key id prefix.
    pub fn find_key(&self, prefix: &str) -> Result<KeyId> {
        let hits: Vec<KeyId> = self
            .list_keys()?
            .into_iter()
            .map(|k| k.id)
            .filter(|id| id.to_hex().starts_with(&prefix.to_ascii_lowercase()))
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!("no key matches {prefix:?}"))),
            _ => Err(Error::InvalidArgument(format!(
                "key prefix {prefix:?} is ambiguous"
            ))),
        }
    }
}

/// Groups blob ids by the pack they live in (restore and check read pack by pack).
pub fn group_by_pack(
    repo: &Repository,
    ids: impl IntoIterator<Item = BlobId>,
) -> Result<HashMap<crate::id::PackId, Vec<crate::pack::BlobEntry>>> {
    let mut out: HashMap<_, Vec<_>> = HashMap::new();
    for id in ids {
        let loc = repo
            .cache
            .lookup(&id)?
            .ok_or_else(|| Error::corrupt("blob", id, "not found in the index"))?;
        out.entry(loc.pack).or_default().push(loc.entry);
    }
    Ok(out)
}

impl Repository {
    /// Key files that cannot be used: content not matching the name (R7) or
    /// malformed (format-spec/03 §3.4). For `check`; `open` skips such files.
    pub fn key_file_problems(&self) -> Result<Vec<Error>> {
        let mut out = Vec::new();
        for (name, size) in self.backend.list(FileType::Key).map_err(self.berr())? {
            let Ok(id) = KeyId::from_hex(&name) else {
                continue;
            };
            if size as usize > repofile::MAX_KEYFILE {
                out.push(Error::corrupt("key", id, "key file larger than 64 KiB"));
                continue;
            }
            let bytes = match self.backend.read(FileType::Key, &name) {
                Ok(b) => b,
                Err(e) => {
                    out.push(Error::corrupt("key", id, e.to_string()));
                    continue;
                }
            };
            if crate::id::storage_hash(&bytes) != id.0 {
                out.push(Error::corrupt("key", id, "content does not match its name"));
            } else if let Err(e) = parse_key_file(&name, &bytes) {
                out.push(e);
            }
        }
        Ok(out)
    }
}
