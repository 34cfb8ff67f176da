//! The browse catalog: a local SQLite copy of tree contents, so that `find`,
//! `history`, `ls` and `diff` answer with SQL instead of loading and decrypting
//! every tree of every snapshot. Trees are content-addressed and shared across
//! snapshots, so each is stored once (tree -> entries) and a snapshot is just
//! its root tree. It lives in its own file next to the blob index
//! (`<cache>/<repo-id>/catalog.sqlite`), is filled lazily, and is only a cache:
//! deleting it loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::repository::Repository;
use crate::tree::{Kind, Node};

/// Bumped whenever the schema changes; a catalog with another version is rebuilt.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- loaded: its entries are in `entries`; complete: so are those of every tree below it.
CREATE TABLE IF NOT EXISTS trees (
    tid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    loaded INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    tid INTEGER NOT NULL,
    name BLOB NOT NULL,
    kind INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    user TEXT NOT NULL,
    grp TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_s INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    -- Files: BLAKE3 of the concatenated blob ids (equal ids = equal content).
    content BLOB,
    -- Directories: tid of the subtree.
    sub INTEGER,
    link BLOB,
    PRIMARY KEY (tid, name)
) WITHOUT ROWID;
-- Walking up from an entry to the paths that reach it.
CREATE INDEX IF NOT EXISTS entries_sub ON entries (sub) WHERE sub IS NOT NULL;
-- Snapshots whose whole tree is in the catalog.
CREATE TABLE IF NOT EXISTS snapshots (id BLOB PRIMARY KEY, root INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_root ON snapshots (root);
";

/// Trees loaded from the repository per transaction.
const BATCH: usize = 256;

/// One directory entry as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub size: u64,
    pub mtime: (i64, u32),
    /// Files only: equal when the content is equal.
    pub content: Option<[u8; 32]>,
    pub subtree: Option<BlobId>,
    pub link_target: Vec<u8>,
}

impl Entry {
    /// The root directory of a snapshot, as an entry.
    pub fn root(tree: BlobId) -> Entry {
        Entry {
            name: Vec::new(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            size: 0,
            mtime: (0, 0),
            content: None,
            subtree: Some(tree),
            link_target: Vec::new(),
        }
    }
}

/// A content id for a file: its blob ids hashed together.
pub fn content_id(blobs: &[BlobId]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for b in blobs {
        h.update(b.as_bytes());
    }
    *h.finalize().as_bytes()
}

fn kind_from(v: i64) -> Kind {
    match v {
        1 => Kind::File,
        2 => Kind::Dir,
        3 => Kind::Symlink,
        4 => Kind::Fifo,
        5 => Kind::Socket,
        6 => Kind::CharDev,
        _ => Kind::BlockDev,
    }
}

/// Bytes of a TEXT or BLOB column (paths built with `||` come back as TEXT).
fn bytes_of(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// Columns of `ENTRY_COLS` from `first` on.
fn entry_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Entry> {
    let content: Option<Vec<u8>> = r.get(first + 10)?;
    let sub: Option<Vec<u8>> = r.get(first + 11)?;
    Ok(Entry {
        name: bytes_of(r.get_ref(first)?),
        kind: kind_from(r.get(first + 1)?),
        mode: r.get(first + 2)?,
        uid: r.get(first + 3)?,
        gid: r.get(first + 4)?,
        user: r.get(first + 5)?,
        group: r.get(first + 6)?,
        size: r.get::<_, i64>(first + 7)? as u64,
        mtime: (r.get(first + 8)?, r.get(first + 9)?),
        content: content.and_then(|c| c.try_into().ok()),
        subtree: sub.and_then(|s| BlobId::from_bytes(&s).ok()),
        link_target: r.get::<_, Option<Vec<u8>>>(first + 12)?.unwrap_or_default(),
    })
}

/// Entry columns, for a query that aliases entries as `e` and LEFT JOINs the
/// subtree as `st`.
const ENTRY_COLS: &str = "e.name, e.kind, e.mode, e.uid, e.gid, e.user, e.grp, e.size, \
                          e.mtime_s, e.mtime_ns, e.content, st.id, e.link";

/// A path that matched a `find` and the snapshots in which it is this entry.
/// Equal versions of a path can come in several groups (when the directory
/// holding the entry changed around it).
#[derive(Clone, Debug)]
pub struct Group {
    /// Absolute path inside the snapshots.
    pub path: Vec<u8>,
    pub entry: Entry,
    /// In the order they were given to `find`, never empty.
    pub snapshots: Vec<SnapshotId>,
}

/// What `find` looks for.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// SQLite GLOB (case-sensitive; `*` also matches `/`). Without a `/` it is
    /// matched against names, with one against whole paths.
    pub pattern: String,
    /// Only entries modified at or after / before these Unix seconds.
    pub newer: Option<i64>,
    pub older: Option<i64>,
}

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Other(format!("catalog {}: {e}", path.display()))
}

impl Catalog {
    /// Opens (or creates, or rebuilds) the catalog of an open repository.
    pub fn open(repo: &Repository) -> Result<Catalog> {
        let dir = repo
            .cache()
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::open_at(&dir.join("catalog.sqlite"))
    }

    pub fn open_at(path: &Path) -> Result<Catalog> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn =
            crate::sqlite::open_cache_db(path, SCHEMA, SCHEMA_VERSION).map_err(sql_err(path))?;
        Ok(Catalog {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        sql_err(&self.path)
    }

    /// (tid, loaded, complete) of a known tree.
    fn tree_row(&self, id: &BlobId) -> Result<Option<(i64, bool, bool)>> {
        self.conn
            .prepare_cached("SELECT tid, loaded, complete FROM trees WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(self.err())
    }

    fn tid_for(&self, id: &BlobId) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO trees (id) VALUES (?1)")?
            .execute([id.as_bytes()])?;
        self.conn
            .prepare_cached("SELECT tid FROM trees WHERE id = ?1")?
            .query_row([id.as_bytes()], |r| r.get(0))
    }

    /// Stores decoded trees in one transaction.
    fn insert(&self, trees: &[(BlobId, Vec<Node>)]) -> Result<()> {
        let tx = self.write_tx()?;
        self.insert_in_tx(trees)?;
        tx.commit().map_err(self.err())
    }

    /// Stores decoded trees; the caller holds the transaction.
    fn insert_in_tx(&self, trees: &[(BlobId, Vec<Node>)]) -> Result<()> {
        (|| -> rusqlite::Result<()> {
            let mut ins = self.conn.prepare_cached(
                "INSERT OR REPLACE INTO entries (tid, name, kind, mode, uid, gid, user, grp, \
                 size, mtime_s, mtime_ns, content, sub, link) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let mut mark = self
                .conn
                .prepare_cached("UPDATE trees SET loaded = 1 WHERE tid = ?1")?;
            for (id, nodes) in trees {
                let tid = self.tid_for(id)?;
                for n in nodes {
                    let sub = match (n.kind, n.subtree) {
                        (Kind::Dir, Some(s)) => Some(self.tid_for(&s)?),
                        _ => None,
                    };
                    let content = (n.kind == Kind::File).then(|| content_id(&n.content).to_vec());
                    let link = (n.kind == Kind::Symlink).then_some(&n.link_target);
                    ins.execute(params![
                        tid,
                        n.name,
                        n.kind as u8,
                        n.mode,
                        n.uid,
                        n.gid,
                        n.user,
                        n.group,
                        n.size as i64,
                        n.mtime.0,
                        n.mtime.1,
                        content,
                        sub,
                        link,
                    ])?;
                }
                mark.execute([tid])?;
            }
            Ok(())
        })()
        .map_err(self.err())
    }

    fn entries_of(&self, tid: i64) -> Result<Vec<Entry>> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM entries e LEFT JOIN trees st ON st.tid = e.sub \
             WHERE e.tid = ?1 ORDER BY e.name"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_map([tid], |r| entry_from_row(r, 0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err())
    }

    /// One tree's entries, sorted by name; read from the repository (and kept)
    /// the first time it is asked for.
    pub fn tree(&self, repo: &Repository, id: &BlobId) -> Result<Vec<Entry>> {
        if let Some((tid, true, _)) = self.tree_row(id)? {
            return self.entries_of(tid);
        }
        let nodes = repo.load_tree(id)?;
        self.insert(&[(*id, nodes)])?;
        let (tid, _, _) = self
            .tree_row(id)?
            .ok_or_else(|| Error::Other(format!("catalog: tree {id} vanished")))?;
        self.entries_of(tid)
    }

    /// The entry at `path` ("/" or "" is the root) below a root tree.
    pub fn lookup(&self, repo: &Repository, root: BlobId, path: &str) -> Result<Option<Entry>> {
        let mut e = Entry::root(root);
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            let Some(sub) = e.subtree.filter(|_| e.kind == Kind::Dir) else {
                return Ok(None);
            };
            match self
                .tree(repo, &sub)?
                .into_iter()
                .find(|c| c.name == comp.as_bytes())
            {
                Some(c) => e = c,
                None => return Ok(None),
            }
        }
        Ok(Some(e))
    }

    /// Drops the rows of snapshots that are no longer in the repository, then
    /// every tree no remaining snapshot reaches: without it the catalog keeps
    /// every night that `forget` has since removed. Cheap when nothing was
    /// forgotten (one small query). Returns how many snapshots were dropped.
    pub fn retain_snapshots(&self, live: &HashSet<SnapshotId>) -> Result<usize> {
        let known: Vec<Vec<u8>> = {
            let mut st = self
                .conn
                .prepare_cached("SELECT id FROM snapshots")
                .map_err(self.err())?;
            st.query_map([], |r| r.get(0))
                .map_err(self.err())?
                .collect::<rusqlite::Result<_>>()
                .map_err(self.err())?
        };
        let gone: Vec<Vec<u8>> = known
            .into_iter()
            .filter(|id| SnapshotId::from_bytes(id).is_ok_and(|s| !live.contains(&s)))
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        let tx = self.write_tx()?;
        for id in &gone {
            tx.execute("DELETE FROM snapshots WHERE id = ?1", [id])
                .map_err(self.err())?;
        }
        tx.execute_batch(
            "CREATE TEMP TABLE keep (tid INTEGER PRIMARY KEY);
             WITH RECURSIVE r(tid) AS (
                 SELECT root FROM snapshots
                 UNION SELECT e.sub FROM entries e JOIN r ON e.tid = r.tid
                 WHERE e.sub IS NOT NULL
             )
             INSERT INTO keep SELECT tid FROM r;
             DELETE FROM entries WHERE tid NOT IN (SELECT tid FROM keep);
             DELETE FROM trees WHERE tid NOT IN (SELECT tid FROM keep);
             DROP TABLE keep;",
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(gone.len())
    }

    /// A write transaction that takes SQLite's write lock at once. A deferred
    /// one starts as a reader, and if another process (a concurrent `ls`,
    /// `diff` or `find`) commits before it first writes, the upgrade fails
    /// at once with SQLITE_BUSY instead of waiting out the busy timeout.
    fn write_tx(&self) -> Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())
    }

    fn has_snapshot(&self, id: SnapshotId) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM snapshots WHERE id = ?1")
            .and_then(|mut st| st.exists([id.as_bytes()]))
            .map_err(self.err())
    }

    /// Brings these snapshots' whole trees into the catalog (only trees it does
    /// not hold yet are read, in batches). A snapshot whose trees cannot be
    /// read is reported through the repository's notifier and left out.
    /// Returns the snapshots that are in the catalog.
    pub fn ensure(
        &self,
        repo: &Repository,
        snaps: &[(SnapshotId, BlobId)],
    ) -> Result<Vec<SnapshotId>> {
        let mut ok = Vec::with_capacity(snaps.len());
        for (sid, root) in snaps {
            crate::cancel::check()?;
            if self.has_snapshot(*sid)? {
                ok.push(*sid);
                continue;
            }
            // One transaction per snapshot: committing every few hundred
            // trees cost more than the inserts. A snapshot that fails is
            // rolled back whole (the catalog is only a cache).
            let tx = self.write_tx()?;
            match self.ensure_tree(repo, *root) {
                Ok(root_tid) => {
                    self.conn
                        .execute(
                            "INSERT OR REPLACE INTO snapshots (id, root) VALUES (?1, ?2)",
                            params![sid.as_bytes(), root_tid],
                        )
                        .map_err(self.err())?;
                    tx.commit().map_err(self.err())?;
                    ok.push(*sid);
                }
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) => {
                    drop(tx);
                    repo.notify(&format!("warning: snapshot {} left out: {e}", sid.short()))
                }
            }
        }
        Ok(ok)
    }

    /// Loads every tree below `root` that the catalog lacks; returns root's tid.
    /// The caller holds the transaction.
    fn ensure_tree(&self, repo: &Repository, root: BlobId) -> Result<i64> {
        // Only trees not yet complete are walked; they are marked complete
        // when the whole walk succeeded.
        let mut walked: Vec<i64> = Vec::new();
        let mut seen: HashSet<BlobId> = HashSet::new();
        let mut frontier = vec![root];
        seen.insert(root);
        while !frontier.is_empty() {
            crate::cancel::check()?;
            let mut next = Vec::new();
            let mut push = |id: BlobId, next: &mut Vec<BlobId>| {
                if seen.insert(id) {
                    next.push(id);
                }
            };
            let mut to_load = Vec::new();
            for id in &frontier {
                match self.tree_row(id)? {
                    Some((_, _, true)) => {}
                    Some((tid, true, false)) => {
                        // Loaded earlier but not complete below: its children
                        // come from the catalog.
                        walked.push(tid);
                        for c in self.incomplete_children(tid)? {
                            push(c, &mut next);
                        }
                    }
                    _ => to_load.push(*id),
                }
            }
            // load_trees looks the ids up in batches and merges reads of
            // neighbouring blobs, which one load_tree per tree did not.
            for chunk in to_load.chunks(BATCH) {
                let loaded: Vec<(BlobId, Vec<Node>)> = chunk
                    .iter()
                    .copied()
                    .zip(repo.load_trees(chunk)?)
                    .map(|(id, r)| Ok((id, r?)))
                    .collect::<Result<_>>()?;
                self.insert_in_tx(&loaded)?;
                for (id, nodes) in &loaded {
                    if let Some((tid, _, _)) = self.tree_row(id)? {
                        walked.push(tid);
                    }
                    // Children straight from the decoded trees; those already
                    // complete are skipped at the next level.
                    for n in nodes {
                        if let (Kind::Dir, Some(s)) = (n.kind, n.subtree) {
                            push(s, &mut next);
                        }
                    }
                }
            }
            frontier = next;
        }
        let mut st = self
            .conn
            .prepare_cached("UPDATE trees SET complete = 1 WHERE tid = ?1")
            .map_err(self.err())?;
        for tid in &walked {
            st.execute([tid]).map_err(self.err())?;
        }
        let (tid, _, _) = self
            .tree_row(&root)?
            .ok_or_else(|| Error::Other(format!("catalog: tree {root} vanished")))?;
        Ok(tid)
    }

    /// Subtrees of a loaded tree that are not complete yet.
    fn incomplete_children(&self, tid: i64) -> Result<Vec<BlobId>> {
        let ids: Vec<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT t.id FROM entries e JOIN trees t ON t.tid = e.sub \
                 WHERE e.tid = ?1 AND t.complete = 0",
            )
            .and_then(|mut st| {
                st.query_map([tid], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err())?;
        ids.iter().map(|c| BlobId::from_bytes(c)).collect()
    }

    /// Every path matching `q` in the given snapshots (which must have been
    /// [`ensure`](Self::ensure)d), grouped: one [`Group`] per path and catalog
    /// entry, with the snapshots holding it (in the order of `snapshots`).
    /// Groups come sorted by path, then by their first snapshot.
    ///
    /// The cost follows the matching entries and the trees above them, not
    /// matches × snapshots: the matches come from one query, and the paths
    /// each tree is reached at (with the snapshots reaching it there, as a
    /// bitset) are computed once per tree walking up, so a directory shared by
    /// many snapshots is handled once for all of them.
    pub fn find(&self, q: &Query, snapshots: &[SnapshotId]) -> Result<Vec<Group>> {
        let (name_glob, path_glob) = if q.pattern.contains('/') {
            let last = q.pattern.rsplit('/').next().unwrap_or("");
            let name = if last.is_empty() || last.contains("**") {
                "*".to_string()
            } else {
                last.to_string()
            };
            (name, Some(q.pattern.clone()))
        } else {
            (q.pattern.clone(), None)
        };
        let index: HashMap<SnapshotId, usize> =
            snapshots.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        let mut up = WalkUp::new(snapshots.len());
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT id, root FROM snapshots")
                .map_err(self.err())?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(self.err())?;
            for row in rows {
                let (sid, root) = row.map_err(self.err())?;
                if let Some(&i) = index.get(&SnapshotId::from_bytes(&sid)?) {
                    up.add_root(root, i);
                }
            }
        }
        let sql = format!(
            "SELECT e.tid, {ENTRY_COLS} FROM entries e LEFT JOIN trees st ON st.tid = e.sub \
             WHERE e.name GLOB ?1 AND (?2 IS NULL OR e.mtime_s >= ?2) \
             AND (?3 IS NULL OR e.mtime_s < ?3)"
        );
        let matches: Vec<(i64, Entry)> = self
            .conn
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map(params![name_glob, q.newer, q.older], |r| {
                    Ok((r.get(0)?, entry_from_row(r, 1)?))
                })?
                .collect()
            })
            .map_err(self.err())?;

        // Parents of every tree on the way up, one level at a time, in batches.
        let mut frontier: Vec<i64> = matches.iter().map(|(t, _)| *t).collect();
        frontier.sort_unstable();
        frontier.dedup();
        while !frontier.is_empty() {
            crate::cancel::check()?;
            let mut next = Vec::new();
            for chunk in frontier.chunks(PARENT_BATCH) {
                let sql = format!(
                    "SELECT sub, tid, name FROM entries WHERE sub IN ({})",
                    vec!["?"; chunk.len()].join(",")
                );
                let mut st = self.conn.prepare_cached(&sql).map_err(self.err())?;
                let rows = st
                    .query_map(rusqlite::params_from_iter(chunk), |r| {
                        Ok((r.get(0)?, r.get(1)?, bytes_of(r.get_ref(2)?)))
                    })
                    .map_err(self.err())?;
                for row in rows {
                    let (sub, tid, name) = row.map_err(self.err())?;
                    if up.add_parent(sub, tid, name) {
                        next.push(tid);
                    }
                }
            }
            up.mark_fetched(&frontier);
            next.retain(|t| !up.fetched(*t));
            next.sort_unstable();
            next.dedup();
            frontier = next;
        }

        let mut glob = match &path_glob {
            Some(_) => Some(
                self.conn
                    .prepare("SELECT CAST(?1 AS TEXT) GLOB ?2")
                    .map_err(self.err())?,
            ),
            None => None,
        };
        let mut out = Vec::new();
        for (tid, entry) in matches {
            for (dir, bits) in up.paths(tid)?.iter() {
                let mut path = Vec::with_capacity(dir.len() + 1 + entry.name.len());
                path.extend_from_slice(dir);
                path.push(b'/');
                path.extend_from_slice(&entry.name);
                if let (Some(st), Some(g)) = (glob.as_mut(), &path_glob) {
                    let hit: bool = st
                        .query_row(params![path, g], |r| r.get(0))
                        .map_err(self.err())?;
                    if !hit {
                        continue;
                    }
                }
                out.push(Group {
                    path,
                    entry: entry.clone(),
                    snapshots: bits.iter().map(|i| snapshots[i]).collect(),
                });
            }
        }
        // The index positions keep the order of `snapshots`.
        let first = |g: &Group| g.snapshots.first().and_then(|s| index.get(s)).copied();
        out.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| first(a).cmp(&first(b))));
        Ok(out)
    }
}

/// Parent lookups per query (well under SQLite's bound parameter limit).
const PARENT_BATCH: usize = 500;

/// A set of snapshots, as bit positions in the `snapshots` given to `find`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn or(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |b| word >> b & 1 == 1)
                .map(move |b| w * 64 + b)
        })
    }
}

/// A tree's paths ("" for a root, "/a/b" below it) with the snapshots reaching
/// it there, sorted by path.
type TreePaths = Rc<Vec<(Vec<u8>, Bits)>>;

/// The paths at which trees are reached from snapshot roots. The parent links
/// (tree -> (parent tree, name in it)) are gathered first, then each tree's
/// paths are computed once from its parents' and kept, so shared trees are not
/// walked again per match or per snapshot.
struct WalkUp {
    nsnaps: usize,
    /// Roots: the snapshots (bits) whose root tree this is.
    roots: HashMap<i64, Bits>,
    parents: HashMap<i64, Vec<(i64, Vec<u8>)>>,
    /// Trees whose parents have been asked for.
    done: HashSet<i64>,
    /// Each tree's paths; those reached by no selected snapshot are left out.
    memo: HashMap<i64, TreePaths>,
}

impl WalkUp {
    fn new(nsnaps: usize) -> WalkUp {
        WalkUp {
            nsnaps,
            roots: HashMap::new(),
            parents: HashMap::new(),
            done: HashSet::new(),
            memo: HashMap::new(),
        }
    }

    fn add_root(&mut self, tid: i64, snap: usize) {
        self.roots
            .entry(tid)
            .or_insert_with(|| Bits::new(self.nsnaps))
            .set(snap);
    }

    /// Records that `parent` holds `child` as `name`; true when `parent`'s own
    /// parents still have to be asked for.
    fn add_parent(&mut self, child: i64, parent: i64, name: Vec<u8>) -> bool {
        self.parents.entry(child).or_default().push((parent, name));
        !self.done.contains(&parent)
    }

    fn mark_fetched(&mut self, tids: &[i64]) {
        self.done.extend(tids);
    }

    fn fetched(&self, tid: i64) -> bool {
        self.done.contains(&tid)
    }

    /// The paths of `tid`, computed (iteratively: trees can be deep) from
    /// those of its parents, which must all have been added.
    fn paths(&mut self, tid: i64) -> Result<TreePaths> {
        let mut on_stack: HashSet<i64> = HashSet::new();
        let mut stack = vec![(tid, false)];
        while let Some((t, expanded)) = stack.pop() {
            if self.memo.contains_key(&t) {
                continue;
            }
            if !expanded {
                // Trees are content-addressed so a cycle cannot come from a
                // sound repository; a damaged catalog must not loop forever.
                if !on_stack.insert(t) {
                    return Err(Error::corrupt("catalog tree", t, "is its own ancestor"));
                }
                stack.push((t, true));
                for (p, _) in self.parents.get(&t).into_iter().flatten() {
                    if !self.memo.contains_key(p) {
                        stack.push((*p, false));
                    }
                }
                continue;
            }
            on_stack.remove(&t);
            // Two parents (or two snapshots' versions of one directory) can
            // give the same path: their snapshot sets are merged.
            let mut at: BTreeMap<Vec<u8>, Bits> = BTreeMap::new();
            if let Some(b) = self.roots.get(&t) {
                at.insert(Vec::new(), b.clone());
            }
            for (p, name) in self.parents.get(&t).into_iter().flatten() {
                for (dir, b) in self.memo[p].iter() {
                    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
                    path.extend_from_slice(dir);
                    path.push(b'/');
                    path.extend_from_slice(name);
                    at.entry(path)
                        .or_insert_with(|| Bits::new(self.nsnaps))
                        .or(b);
                }
            }
            let v = at.into_iter().filter(|(_, b)| !b.is_empty()).collect();
            self.memo.insert(t, Rc::new(v));
        }
        Ok(self.memo[&tid].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId::from_bytes(&[n; 32]).unwrap()
    }

    fn sid(n: u8) -> SnapshotId {
        SnapshotId::from_bytes(&[n; 32]).unwrap()
    }

    fn dir(name: &str, sub: BlobId) -> Node {
        let mut n = Node::new(name.into(), Kind::Dir);
        n.subtree = Some(sub);
        n
    }

    fn file(name: &str, mtime: i64) -> Node {
        let mut n = Node::new(name.into(), Kind::File);
        n.mtime = (mtime, 0);
        n
    }

    fn add_snapshot(cat: &Catalog, s: SnapshotId, root: BlobId) {
        let (tid, _, _) = cat.tree_row(&root).unwrap().unwrap();
        cat.conn
            .execute(
                "INSERT INTO snapshots (id, root) VALUES (?1, ?2)",
                params![s.as_bytes(), tid],
            )
            .unwrap();
    }

    fn found(
        cat: &Catalog,
        pattern: &str,
        newer: Option<i64>,
        snaps: &[SnapshotId],
    ) -> Vec<(String, Vec<SnapshotId>)> {
        let q = Query {
            pattern: pattern.into(),
            newer,
            older: None,
        };
        cat.find(&q, snaps)
            .unwrap()
            .into_iter()
            .map(|g| (String::from_utf8(g.path).unwrap(), g.snapshots))
            .collect()
    }

    fn tree_count(cat: &Catalog) -> i64 {
        cat.conn
            .query_row("SELECT COUNT(*) FROM trees", [], |r| r.get(0))
            .unwrap()
    }

    /// Forgetting a snapshot drops its row and the trees only it reached;
    /// trees a live snapshot still shares stay, and find still answers.
    #[test]
    fn retain_drops_what_only_forgotten_snapshots_reach() {
        let dir_ = tempfile::tempdir().unwrap();
        let cat = Catalog::open_at(&dir_.path().join("catalog.sqlite")).unwrap();
        let (shared, old_only, r_old, r_new) = (id(1), id(2), id(3), id(4));
        cat.insert(&[
            (shared, vec![file("a.docx", 100)]),
            (old_only, vec![file("gone.docx", 100)]),
            (r_old, vec![dir("s", shared), dir("o", old_only)]),
            (r_new, vec![dir("s", shared)]),
        ])
        .unwrap();
        add_snapshot(&cat, sid(1), r_old);
        add_snapshot(&cat, sid(2), r_new);
        assert_eq!(tree_count(&cat), 4);

        let all: HashSet<SnapshotId> = [sid(1), sid(2)].into();
        assert_eq!(cat.retain_snapshots(&all).unwrap(), 0);
        assert_eq!(tree_count(&cat), 4, "nothing forgotten, nothing dropped");

        let live: HashSet<SnapshotId> = [sid(2)].into();
        assert_eq!(cat.retain_snapshots(&live).unwrap(), 1);
        assert_eq!(tree_count(&cat), 2, "r_old and old_only dropped");
        assert!(!cat.has_snapshot(sid(1)).unwrap());
        assert_eq!(
            found(&cat, "*.docx", None, &[sid(2)]),
            [("/s/a.docx".to_string(), vec![sid(2)])]
        );
    }

    /// S (holding a.docx) is shared: by two names of P1, by P2 at the same
    /// path as in P1, and two levels down in P2 through Q. Snapshots 1 and 3
    /// share root R1; snapshot 4 (root R2, like 2) is not selected.
    #[test]
    fn find_walks_up_shared_trees_once_and_merges_paths() {
        let dir_ = tempfile::tempdir().unwrap();
        let cat = Catalog::open_at(&dir_.path().join("catalog.sqlite")).unwrap();
        let (s, q, p1, p2, r1, r2) = (id(1), id(2), id(3), id(4), id(5), id(6));
        cat.insert(&[
            (s, vec![file("a.docx", 100), file("b.txt", 100)]),
            (q, vec![dir("w", s)]),
            (p1, vec![dir("x", s), dir("y", s)]),
            (p2, vec![dir("x", s), dir("z", q)]),
            (r1, vec![dir("p", p1)]),
            (r2, vec![dir("p", p2), file("top.docx", 300)]),
        ])
        .unwrap();
        add_snapshot(&cat, sid(1), r1);
        add_snapshot(&cat, sid(2), r2);
        add_snapshot(&cat, sid(3), r1);
        add_snapshot(&cat, sid(4), r2);
        let sel = [sid(1), sid(2), sid(3)];

        assert_eq!(
            found(&cat, "*.docx", None, &sel),
            vec![
                ("/p/x/a.docx".into(), vec![sid(1), sid(2), sid(3)]),
                ("/p/y/a.docx".into(), vec![sid(1), sid(3)]),
                ("/p/z/w/a.docx".into(), vec![sid(2)]),
                ("/top.docx".into(), vec![sid(2)]),
            ]
        );
        // Snapshot order is the caller's; unselected snapshots never show.
        assert_eq!(
            found(&cat, "a.docx", None, &[sid(4), sid(3)]),
            vec![
                ("/p/x/a.docx".into(), vec![sid(4), sid(3)]),
                ("/p/y/a.docx".into(), vec![sid(3)]),
                ("/p/z/w/a.docx".into(), vec![sid(4)]),
            ]
        );
        // With a '/', the pattern matches whole paths (and `*` matches '/').
        assert_eq!(
            found(&cat, "/p/?/a.docx", None, &sel),
            vec![
                ("/p/x/a.docx".into(), vec![sid(1), sid(2), sid(3)]),
                ("/p/y/a.docx".into(), vec![sid(1), sid(3)]),
            ]
        );
        assert_eq!(
            found(&cat, "/p/*", None, &[sid(2)]),
            vec![
                ("/p/x".into(), vec![sid(2)]),
                ("/p/x/a.docx".into(), vec![sid(2)]),
                ("/p/x/b.txt".into(), vec![sid(2)]),
                ("/p/z".into(), vec![sid(2)]),
                ("/p/z/w".into(), vec![sid(2)]),
                ("/p/z/w/a.docx".into(), vec![sid(2)]),
                ("/p/z/w/b.txt".into(), vec![sid(2)]),
            ]
        );
        assert_eq!(
            found(&cat, "*.docx", Some(200), &sel),
            vec![("/top.docx".into(), vec![sid(2)])]
        );
        assert!(found(&cat, "*.docx", None, &[]).is_empty());
    }

    #[test]
    fn bits_hold_more_than_one_word() {
        let mut b = Bits::new(130);
        assert!(b.is_empty());
        b.set(0);
        b.set(64);
        let mut c = Bits::new(130);
        c.set(129);
        b.or(&c);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 64, 129]);
    }
}
