//! Prune: reclaims the space of packs no snapshot needs, in two phases so that
//! backups can run meanwhile. A run marks newly unneeded packs (and repacks
//! mostly-unused ones, marking the originals) and deletes packs that an
//! earlier run marked, once the grace period has passed, no other operation
//! that may predate the mark is running, and they are still unneeded. The
//! write order and the safety argument are in format-spec/05, §5.7.
//!
//! The bookkeeping lives in a scratch SQLite file next to the cache, so memory
//! stays flat however many blobs the repository holds.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::index::{PackIndex, Segment};
use crate::pack::{BlobEntry, PackBuilder, SealedBlob, TYPE_TREE};
use crate::repository::Repository;
use crate::tree::Kind;

/// How much unused space a pack may keep before it is repacked.
#[derive(Clone, Copy, Debug)]
pub enum MaxUnused {
    /// Repack packs whose unused share is above this percentage.
    Percent(f64),
    /// Repack the most wasteful packs until at most this many unused bytes remain.
    Bytes(u64),
}

impl MaxUnused {
    /// "5%", "0%", "100M", "2G", "4096".
    pub fn parse(s: &str) -> Result<MaxUnused> {
        let bad = || {
            Error::InvalidArgument(format!(
                "--max-unused {s:?}: expected a percentage (5%) or a size (100M)"
            ))
        };
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&v) {
                return Err(bad());
            }
            return Ok(MaxUnused::Percent(v));
        }
        let (num, mult) = match s.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m: u64 = match c.to_ascii_uppercase() {
                    'K' => 1 << 10,
                    'M' => 1 << 20,
                    'G' => 1 << 30,
                    'T' => 1 << 40,
                    'B' => 1,
                    _ => return Err(bad()),
                };
                (&s[..i], m)
            }
            _ => (s, 1),
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        n.checked_mul(mult).map(MaxUnused::Bytes).ok_or_else(bad)
    }
}

#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub max_unused: MaxUnused,
    pub grace: Duration,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            grace: Duration::from_secs(3600),
            dry_run: false,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    pub blobs_used: u64,
    pub used_bytes: u64,
    /// Stored bytes of indexed blobs no snapshot needs (or duplicates).
    pub unused_bytes: u64,
    /// Packs deleted by this run (marked by an earlier one).
    pub deleted_packs: Vec<String>,
    pub deleted_bytes: u64,
    /// Packs marked by this run; a later prune deletes them.
    pub marked_packs: Vec<String>,
    pub marked_bytes: u64,
    /// Marked earlier and kept marked (grace period, or operations running).
    pub waiting_packs: u64,
    pub waiting_bytes: u64,
    /// Marked earlier but needed again (a concurrent backup used them): unmarked.
    pub unmarked_packs: Vec<String>,
    /// Packs whose used blobs were copied into new packs (and which are now marked).
    pub repacked_packs: Vec<String>,
    pub repacked_blobs: u64,
    pub repacked_bytes: u64,
    pub new_packs: u64,
    pub segments_written: u64,
    pub segments_deleted: u64,
    /// Why deletion was put off this run, if it was.
    pub deferred: Vec<String>,
}

// Pack fates, stored in the scratch database.
const KEEP: i64 = 0;
const MARK: i64 = 1;
const WAIT: i64 = 2;
const DELETE: i64 = 3;
const UNMARK: i64 = 4;
/// Listed in the index but absent from data/.
const GONE: i64 = 5;

const SCHEMA: &str = "
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -32768;
CREATE TABLE packs (
    pid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL DEFAULT 0,
    present INTEGER NOT NULL DEFAULT 0,
    marked INTEGER NOT NULL DEFAULT 0,
    marked_at INTEGER NOT NULL DEFAULT 0,
    fate INTEGER NOT NULL DEFAULT 0,
    new INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE loc (
    bid BLOB NOT NULL, pid INTEGER NOT NULL, seg INTEGER NOT NULL,
    type INTEGER NOT NULL, compression INTEGER NOT NULL, offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL
);
CREATE TABLE reach (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE prim (bid BLOB PRIMARY KEY, pid INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE listing (bid BLOB PRIMARY KEY, pid INTEGER NOT NULL) WITHOUT ROWID;
";

/// The scratch database: removed when dropped.
struct Scratch {
    conn: Connection,
    path: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn sq(e: rusqlite::Error) -> Error {
    Error::Other(format!("prune scratch database: {e}"))
}

/// What the repository holds and needs, computed from the repository itself.
pub struct Analysis {
    db: Scratch,
    pub snapshots: u64,
    /// Every segment read (effective and already superseded): the new index supersedes them all.
    segments: Vec<IndexId>,
    mark_files: Vec<String>,
    marks: BTreeMap<PackId, jiff::Timestamp>,
}

impl Analysis {
    fn c(&self) -> &Connection {
        &self.db.conn
    }

    fn scalar(&self, sql: &str) -> Result<u64> {
        self.c()
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(sq)
    }

    /// Total size of pack files, and count.
    pub fn pack_totals(&self) -> Result<(u64, u64)> {
        Ok((
            self.scalar("SELECT count(*) FROM packs WHERE present = 1")?,
            self.scalar("SELECT sum(size) FROM packs WHERE present = 1")?,
        ))
    }

    /// Blobs snapshots need (one copy each) and their stored bytes.
    pub fn used(&self) -> Result<(u64, u64)> {
        Ok((
            self.scalar("SELECT count(*) FROM prim")?,
            self.scalar(
                "SELECT sum(l.stored_len) FROM prim p JOIN loc l ON l.bid = p.bid AND l.pid = p.pid",
            )?,
        ))
    }

    /// Bytes a full prune would eventually reclaim: pack bytes minus the used blobs.
    pub fn reclaimable(&self) -> Result<u64> {
        let (_, total) = self.pack_totals()?;
        let (_, used) = self.used()?;
        Ok(total.saturating_sub(used))
    }

    /// Raw (uncompressed) bytes of the used blobs.
    pub fn used_raw(&self) -> Result<u64> {
        self.scalar(
            "SELECT sum(l.raw_len) FROM prim p JOIN loc l ON l.bid = p.bid AND l.pid = p.pid",
        )
    }
}

fn read_segment(repo: &Repository, id: IndexId) -> Result<Segment> {
    let bytes = repo
        .backend()
        .read(FileType::Index, &id.to_hex())
        .map_err(repo.berr())?;
    Segment::open(repo.keys(), id, &bytes)
}

fn pack_pid(c: &Connection, id: &PackId) -> rusqlite::Result<i64> {
    c.execute("INSERT OR IGNORE INTO packs (id) VALUES (?1)", [&id.0[..]])?;
    c.query_row("SELECT pid FROM packs WHERE id = ?1", [&id.0[..]], |r| {
        r.get(0)
    })
}

/// Reads snapshots, index, packs and marks, and works out which blobs the
/// snapshots need and where their preferred copy is. Fails, without side
/// effects on the repository, if any snapshot, tree, index segment or mark
/// cannot be read.
pub fn analyze(repo: &Repository) -> Result<Analysis> {
    analyze_roots(repo, None)
}

/// Like [`analyze`], counting as needed only what `only` references (when given).
pub fn analyze_roots(repo: &Repository, only: Option<SnapshotId>) -> Result<Analysis> {
    let dir = repo
        .cache()
        .path()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("prune-scratch-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let conn = Connection::open(&path).map_err(sq)?;
    conn.execute_batch(SCHEMA).map_err(sq)?;
    let db = Scratch { conn, path };
    let c = &db.conn;

    // Snapshots before the index: a snapshot is written after its segments,
    // so every snapshot seen here has its blobs in a segment listed below.
    let mut snaps: Vec<(SnapshotId, BlobId)> = Vec::new();
    for (name, _) in repo
        .backend()
        .list(FileType::Snapshot)
        .map_err(repo.berr())?
    {
        let Ok(id) = SnapshotId::from_hex(&name) else {
            continue;
        };
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let s = repo.load_snapshot(id)?;
        snaps.push((id, BlobId::from_hex(&s.tree)?));
    }

    // The index: every segment, then drop what is superseded (format-spec/05, §5.6).
    let mut segments = Vec::new();
    for (name, _) in repo.backend().list(FileType::Index).map_err(repo.berr())? {
        if let Ok(id) = IndexId::from_hex(&name) {
            segments.push(id);
        }
    }
    segments.sort();
    let mut superseded: HashSet<IndexId> = HashSet::new();
    {
        let tx = c.unchecked_transaction().map_err(sq)?;
        for (n, id) in segments.iter().enumerate() {
            let seg = read_segment(repo, *id)?;
            superseded.extend(seg.superseded.iter().copied());
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO loc (bid, pid, seg, type, compression, offset, stored_len, raw_len)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sq)?;
            for p in &seg.packs {
                let pid = pack_pid(&tx, &p.id).map_err(sq)?;
                for b in &p.blobs {
                    ins.execute(params![
                        &b.id.0[..],
                        pid,
                        n as i64,
                        b.blob_type,
                        b.compression,
                        b.offset,
                        b.stored_len,
                        b.raw_len
                    ])
                    .map_err(sq)?;
                }
            }
        }
        for (n, id) in segments.iter().enumerate() {
            if superseded.contains(id) {
                tx.execute("DELETE FROM loc WHERE seg = ?1", [n as i64])
                    .map_err(sq)?;
            }
        }
        tx.execute_batch("CREATE INDEX loc_bid ON loc (bid); CREATE INDEX loc_pid ON loc (pid);")
            .map_err(sq)?;
        // Two segments may list the same blob of the same pack (a repaired index).
        tx.execute_batch(
            "DELETE FROM loc WHERE rowid NOT IN (SELECT min(rowid) FROM loc GROUP BY bid, pid);",
        )
        .map_err(sq)?;
        for (name, size) in repo.backend().list(FileType::Pack).map_err(repo.berr())? {
            let Ok(id) = PackId::from_hex(&name) else {
                continue;
            };
            let pid = pack_pid(&tx, &id).map_err(sq)?;
            tx.execute(
                "UPDATE packs SET present = 1, size = ?2 WHERE pid = ?1",
                params![pid, size as i64],
            )
            .map_err(sq)?;
        }
        tx.commit().map_err(sq)?;
    }

    let marks = crate::marks::read_all(repo)?;
    if let Some((name, why)) = marks.unreadable.first() {
        return Err(Error::corrupt(
            "mark",
            name,
            format!(
                "{why}; prune cannot tell which packs are marked (remove the file to start marking afresh)"
            ),
        ));
    }
    for (id, t) in &marks.packs {
        c.execute(
            "UPDATE packs SET marked = 1, marked_at = ?2 WHERE id = ?1",
            params![&id.0[..], t.as_second()],
        )
        .map_err(sq)?;
    }

    // Reachability: every tree once, every data blob of every file.
    {
        let tx = c.unchecked_transaction().map_err(sq)?;
        let mut stack: Vec<BlobId> = snaps.iter().map(|(_, t)| *t).collect();
        while let Some(tree) = stack.pop() {
            crate::cancel::check()?;
            if tx
                .execute(
                    "INSERT OR IGNORE INTO reach (id) VALUES (?1)",
                    [&tree.0[..]],
                )
                .map_err(sq)?
                == 0
            {
                continue;
            }
            let nodes = load_tree(repo, &tx, &tree)?;
            let mut ins = tx
                .prepare_cached("INSERT OR IGNORE INTO reach (id) VALUES (?1)")
                .map_err(sq)?;
            for n in nodes {
                match n.kind {
                    Kind::Dir => stack.extend(n.subtree),
                    Kind::File => {
                        for b in &n.content {
                            ins.execute([&b.0[..]]).map_err(sq)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        tx.commit().map_err(sq)?;
    }

    // One preferred copy of each needed blob: in a present pack, unmarked first.
    c.execute_batch(
        "INSERT INTO prim (bid, pid)
           SELECT r.id, (SELECT l.pid FROM loc l JOIN packs p ON p.pid = l.pid
                          WHERE l.bid = r.id AND p.present = 1
                          ORDER BY p.marked, l.pid LIMIT 1)
           FROM reach r;",
    )
    .map_err(sq)?;
    let missing: Option<Vec<u8>> = c
        .query_row("SELECT bid FROM prim WHERE pid IS NULL LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sq)?;
    if let Some(b) = missing {
        return Err(Error::corrupt(
            "blob",
            BlobId::from_bytes(&b)?,
            "needed by a snapshot but in no pack of the index; run `cellar check`",
        ));
    }
    Ok(Analysis {
        db,
        snapshots: snaps.len() as u64,
        segments,
        mark_files: marks.files,
        marks: marks.packs,
    })
}

fn entry_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<(Vec<u8>, BlobEntry)> {
    let bid: Vec<u8> = r.get(first)?;
    let id = BlobId::from_bytes(&bid).unwrap_or(BlobId([0; 32]));
    Ok((
        bid,
        BlobEntry {
            id,
            blob_type: r.get(first + 1)?,
            compression: r.get(first + 2)?,
            offset: r.get(first + 3)?,
            stored_len: r.get(first + 4)?,
            raw_len: r.get(first + 5)?,
        },
    ))
}

/// Reads a tree from the location the repository's own index gives (not the
/// cache, which may predate the segments just read).
fn load_tree(repo: &Repository, c: &Connection, id: &BlobId) -> Result<Vec<crate::tree::Node>> {
    let loc = c
        .query_row(
            "SELECT p.id, l.bid, l.type, l.compression, l.offset, l.stored_len, l.raw_len
             FROM loc l JOIN packs p ON p.pid = l.pid
             WHERE l.bid = ?1 AND p.present = 1 ORDER BY p.marked, l.pid LIMIT 1",
            [&id.0[..]],
            |r| Ok((r.get::<_, Vec<u8>>(0)?, entry_from_row(r, 1)?.1)),
        )
        .optional()
        .map_err(sq)?
        .ok_or_else(|| Error::corrupt("tree", id, "needed by a snapshot but not in the index"))?;
    let pack = PackId::from_bytes(&loc.0)?;
    // The pack's other trees as this index lists them: where requests are
    // costly, the repository fetches them with this one (crate::treepacks).
    let siblings = || -> Result<Vec<BlobEntry>> {
        c.prepare_cached(
            "SELECT l.bid, l.type, l.compression, l.offset, l.stored_len, l.raw_len
             FROM loc l JOIN packs p ON p.pid = l.pid
             WHERE p.id = ?1 AND l.type = ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![&loc.0, TYPE_TREE], |r| Ok(entry_from_row(r, 0)?.1))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sq)
    };
    let plain = repo.read_tree_at(pack, &loc.1, siblings)?;
    crate::tree::decode(&plain).map_err(|e| Error::corrupt("tree", id, e.to_string()))
}

struct PackRow {
    pid: i64,
    id: PackId,
    size: u64,
    marked: bool,
    marked_at: i64,
    listed: u64,
    used: u64,
}

fn pack_rows(c: &Connection) -> Result<Vec<PackRow>> {
    let mut st = c
        .prepare(
            "SELECT p.pid, p.id, p.size, p.marked, p.marked_at,
                    (SELECT coalesce(sum(stored_len), 0) FROM loc l WHERE l.pid = p.pid),
                    (SELECT coalesce(sum(l.stored_len), 0) FROM prim m
                       JOIN loc l ON l.bid = m.bid AND l.pid = m.pid WHERE m.pid = p.pid)
             FROM packs p WHERE p.present = 1 ORDER BY p.pid",
        )
        .map_err(sq)?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .map_err(sq)?;
    let mut out = Vec::new();
    for r in rows {
        let (pid, id, size, marked, marked_at, listed, used) = r.map_err(sq)?;
        out.push(PackRow {
            pid,
            id: PackId::from_bytes(&id)?,
            size: size as u64,
            marked: marked != 0,
            marked_at,
            listed: listed as u64,
            used: used as u64,
        });
    }
    Ok(out)
}

/// Other locks that may belong to an operation older than this run's marks:
/// every lock but ours and those whose process is known to be gone.
fn blocking_locks(repo: &Repository, own: &str) -> Result<Vec<String>> {
    let me = (crate::repofile::hostname(), std::process::id());
    let mut out = Vec::new();
    for l in crate::lock::list(repo)? {
        if l.name == own {
            continue;
        }
        match &l.lock {
            Some(k) if (k.hostname.clone(), k.pid) == me => {}
            Some(k) if crate::lock::holder_gone(k) => {}
            Some(k) => out.push(format!(
                "{} lock {} of pid {} on {} since {}{}",
                if k.exclusive { "exclusive" } else { "shared" },
                &l.name[..8],
                k.pid,
                k.hostname,
                k.time,
                l.stale
                    .as_ref()
                    .map(|s| format!(" (stale: {s}; `cellar unlock` removes it)"))
                    .unwrap_or_default()
            )),
            None => out.push(format!(
                "unreadable lock {} (`cellar unlock --remove-all` removes it)",
                &l.name[..8]
            )),
        }
    }
    Ok(out)
}

fn step<T>(r: std::io::Result<T>, repo: &Repository) -> Result<T> {
    r.map_err(repo.berr())
}

/// Runs a prune. The caller holds the exclusive lock `own_lock` (its file name).
pub fn prune(repo: &Repository, opts: &PruneOptions, own_lock: &str) -> Result<PruneReport> {
    // Locks first: an operation not listed here either started after this
    // point (and so sees every mark written by earlier runs) or has finished,
    // and then its snapshot is in the listing `analyze` makes next.
    let blockers = blocking_locks(repo, own_lock)?;
    let a = analyze(repo)?;
    let c = a.c();
    let now = jiff::Timestamp::now();
    let grace = opts.grace.as_secs() as i64;
    let mut rep = PruneReport {
        dry_run: opts.dry_run,
        snapshots: a.snapshots,
        ..Default::default()
    };
    (rep.packs, rep.pack_bytes) = a.pack_totals()?;
    (rep.blobs_used, rep.used_bytes) = a.used()?;
    let rows = pack_rows(c)?;
    rep.unused_bytes = rows.iter().map(|p| p.listed - p.used.min(p.listed)).sum();

    let set_fate = |pid: i64, fate: i64| -> Result<()> {
        c.execute(
            "UPDATE packs SET fate = ?2 WHERE pid = ?1",
            params![pid, fate],
        )
        .map(|_| ())
        .map_err(sq)
    };
    let mut waiting_for_locks = false;
    let mut repack: Vec<&PackRow> = Vec::new();
    for p in &rows {
        if p.marked {
            if p.used > 0 {
                set_fate(p.pid, UNMARK)?;
                rep.unmarked_packs.push(p.id.to_hex());
            } else if now.as_second() - p.marked_at < grace {
                set_fate(p.pid, WAIT)?;
            } else if !blockers.is_empty() {
                waiting_for_locks = true;
                set_fate(p.pid, WAIT)?;
            } else {
                set_fate(p.pid, DELETE)?;
                rep.deleted_packs.push(p.id.to_hex());
                rep.deleted_bytes += p.size;
            }
        } else if p.used == 0 {
            set_fate(p.pid, MARK)?;
            rep.marked_packs.push(p.id.to_hex());
            rep.marked_bytes += p.size;
        } else if p.listed > p.used {
            repack.push(p);
        }
    }
    // Which partly used packs to repack.
    let mut chosen: Vec<&PackRow> = match opts.max_unused {
        MaxUnused::Percent(pct) => repack
            .into_iter()
            .filter(|p| (p.listed - p.used) as f64 * 100.0 > pct * p.listed as f64)
            .collect(),
        MaxUnused::Bytes(limit) => {
            repack.sort_by_key(|p| std::cmp::Reverse(p.listed - p.used));
            let mut left: u64 = repack.iter().map(|p| p.listed - p.used).sum();
            repack
                .into_iter()
                .take_while(|p| {
                    let go = left > limit;
                    left -= p.listed - p.used;
                    go
                })
                .collect()
        }
    };
    chosen.sort_by_key(|p| p.pid);
    for p in &chosen {
        set_fate(p.pid, MARK)?;
        rep.repacked_packs.push(p.id.to_hex());
        rep.marked_packs.push(p.id.to_hex());
        rep.marked_bytes += p.size;
        rep.repacked_bytes += p.used;
    }
    c.execute("UPDATE packs SET fate = ?1 WHERE present = 0", [GONE])
        .map_err(sq)?;
    rep.waiting_packs = a.scalar(&format!("SELECT count(*) FROM packs WHERE fate = {WAIT}"))?;
    rep.waiting_bytes = a.scalar(&format!("SELECT sum(size) FROM packs WHERE fate = {WAIT}"))?;
    if waiting_for_locks {
        for b in &blockers {
            rep.deferred.push(format!("deletion put off: {b}"));
        }
    }
    let deletes_indexed: bool = c
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM packs p JOIN loc l ON l.pid = p.pid WHERE p.fate = ?1)",
            [DELETE],
            |r| r.get(0),
        )
        .map_err(sq)?;
    let gone_indexed: bool = c
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM packs p JOIN loc l ON l.pid = p.pid WHERE p.fate = ?1)",
            [GONE],
            |r| r.get(0),
        )
        .map_err(sq)?;
    let rewrite_index = deletes_indexed || !chosen.is_empty() || gone_indexed;
    if opts.dry_run {
        return Ok(rep);
    }

    // 1. Repack: copy the preferred copies of used blobs, sealed boxes byte
    //    for byte, into new packs; make them durable.
    if !chosen.is_empty() {
        let (blobs, packs) = repack_packs(repo, c, &chosen)?;
        rep.repacked_blobs = blobs;
        rep.new_packs = packs;
        step(repo.backend().flush(), repo)?;
    }

    // 2. The new index: every blob of every pack that stays, listed once; the
    //    superseded list goes in the last segment, after the others are durable.
    if rewrite_index {
        rep.segments_written = write_index(repo, c, &a.segments)?;
    }

    // 3. The marks: still waiting (with their original time) plus new ones.
    let mut new_marks: BTreeMap<PackId, jiff::Timestamp> = BTreeMap::new();
    {
        let mut st = c
            .prepare("SELECT id, fate FROM packs WHERE fate IN (?1, ?2)")
            .map_err(sq)?;
        let rows = st
            .query_map([MARK, WAIT], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(sq)?;
        for r in rows {
            let (id, fate) = r.map_err(sq)?;
            let id = PackId::from_bytes(&id)?;
            let t = if fate == WAIT {
                a.marks.get(&id).copied().unwrap_or(now)
            } else {
                now
            };
            new_marks.insert(id, t);
        }
    }
    let marks_changed = new_marks != a.marks || a.mark_files.len() > 1;
    let mut keep_mark_file = None;
    if marks_changed && !new_marks.is_empty() {
        crate::fault::step("prune");
        keep_mark_file = Some(crate::marks::write(repo, &new_marks)?);
        step(repo.backend().flush(), repo)?;
    }

    // 4. Deletions: old marks, superseded segments, then the packs.
    if marks_changed {
        for f in &a.mark_files {
            if Some(f) != keep_mark_file.as_ref() {
                crate::fault::step("prune");
                step(repo.backend().remove(FileType::Mark, f), repo)?;
            }
        }
    }
    if rewrite_index {
        for s in &a.segments {
            crate::fault::step("prune");
            step(repo.backend().remove(FileType::Index, &s.to_hex()), repo)?;
            rep.segments_deleted += 1;
        }
    }
    for p in &rep.deleted_packs {
        crate::fault::step("prune");
        step(repo.backend().remove(FileType::Pack, p), repo)?;
    }
    step(repo.backend().flush(), repo)?;
    repo.sync_index()?;
    crate::marks::sync(repo)?;
    Ok(rep)
}

/// Copies the used blobs of `packs` into new packs (data and trees apart).
/// Returns (blobs copied, packs written).
fn repack_packs(repo: &Repository, c: &Connection, packs: &[&PackRow]) -> Result<(u64, u64)> {
    let target = repo.config().pack_size as usize;
    let mut builders = [PackBuilder::default(), PackBuilder::default()];
    let mut blobs = 0u64;
    let mut written = 0u64;
    let mut put = |b: PackBuilder, c: &Connection| -> Result<()> {
        let (id, bytes, entries) = b.finish(repo.keys());
        crate::fault::step("prune");
        step(
            repo.backend().write(FileType::Pack, &id.to_hex(), &bytes),
            repo,
        )?;
        written += 1;
        // The new pack becomes the preferred copy of what it holds.
        let pid = pack_pid(c, &id).map_err(sq)?;
        c.execute(
            "UPDATE packs SET present = 1, size = ?2, new = 1, fate = ?3 WHERE pid = ?1",
            params![pid, bytes.len() as i64, KEEP],
        )
        .map_err(sq)?;
        for e in entries {
            c.execute(
                "INSERT INTO loc (bid, pid, seg, type, compression, offset, stored_len, raw_len)
                 VALUES (?1, ?2, -1, ?3, ?4, ?5, ?6, ?7)",
                params![
                    &e.id.0[..],
                    pid,
                    e.blob_type,
                    e.compression,
                    e.offset,
                    e.stored_len,
                    e.raw_len
                ],
            )
            .map_err(sq)?;
            c.execute(
                "UPDATE prim SET pid = ?2 WHERE bid = ?1",
                params![&e.id.0[..], pid],
            )
            .map_err(sq)?;
        }
        Ok(())
    };
    for p in packs {
        crate::cancel::check()?;
        let bytes = step(repo.backend().read(FileType::Pack, &p.id.to_hex()), repo)?;
        let entries: Vec<BlobEntry> = {
            let mut st = c
                .prepare_cached(
                    "SELECT l.bid, l.type, l.compression, l.offset, l.stored_len, l.raw_len
                     FROM prim m JOIN loc l ON l.bid = m.bid AND l.pid = m.pid
                     WHERE m.pid = ?1 ORDER BY l.offset",
                )
                .map_err(sq)?;
            st.query_map([p.pid], |r| entry_from_row(r, 0).map(|x| x.1))
                .map_err(sq)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sq)?
        };
        for e in entries {
            let end = e.offset as usize + e.stored_len as usize;
            let sealed = bytes.get(e.offset as usize..end).ok_or_else(|| {
                Error::corrupt(
                    "pack",
                    p.id,
                    format!("blob {} lies past the end of the pack", e.id),
                )
            })?;
            // Verify before copying: a damaged blob must not be given a new home
            // and its old one deleted.
            crate::pack::open_blob(repo.keys(), &e, sealed)?;
            let k = usize::from(e.blob_type == TYPE_TREE);
            builders[k].add(SealedBlob {
                id: e.id,
                blob_type: e.blob_type,
                compression: e.compression,
                raw_len: e.raw_len,
                data: sealed.to_vec(),
            });
            blobs += 1;
            if builders[k].len() >= target {
                put(std::mem::take(&mut builders[k]), c)?;
            }
        }
    }
    for b in builders {
        if !b.is_empty() {
            put(b, c)?;
        }
    }
    Ok((blobs, written))
}

/// Writes the new index for every pack that stays; returns the segment count.
fn write_index(repo: &Repository, c: &Connection, old: &[IndexId]) -> Result<u64> {
    // Each blob listed once: its preferred copy if needed, else any copy in a
    // pack that stays, unmarked first.
    c.execute_batch("DELETE FROM listing;").map_err(sq)?;
    c.execute(
        "INSERT INTO listing (bid, pid) SELECT m.bid, m.pid FROM prim m
           JOIN packs p ON p.pid = m.pid WHERE p.fate NOT IN (?1, ?2)",
        [DELETE, GONE],
    )
    .map_err(sq)?;
    c.execute(
        "INSERT OR IGNORE INTO listing (bid, pid)
           SELECT l.bid, l.pid FROM loc l JOIN packs p ON p.pid = l.pid
           WHERE p.present = 1 AND p.fate NOT IN (?1, ?2)
           ORDER BY p.fate = ?3 OR p.fate = ?4, l.pid",
        params![DELETE, GONE, MARK, WAIT],
    )
    .map_err(sq)?;
    let pids: Vec<(i64, Vec<u8>, i64)> = {
        let mut st = c
            .prepare(
                "SELECT p.pid, p.id, p.size FROM packs p
                 WHERE EXISTS (SELECT 1 FROM listing s WHERE s.pid = p.pid) ORDER BY p.pid",
            )
            .map_err(sq)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sq)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sq)?
    };
    // Segments well inside the format's limits (65,536 packs, 4,000,000 blobs).
    const SEG_PACKS: usize = 10_000;
    const SEG_BLOBS: usize = 500_000;
    let mut segs: Vec<Segment> = Vec::new();
    let mut cur = Segment::default();
    let mut st = c
        .prepare(
            "SELECT l.bid, l.type, l.compression, l.offset, l.stored_len, l.raw_len
             FROM listing s JOIN loc l ON l.bid = s.bid AND l.pid = s.pid
             WHERE s.pid = ?1 ORDER BY l.offset",
        )
        .map_err(sq)?;
    let mut written = 0u64;
    let mut flush_seg = |seg: Segment, last: bool| -> Result<()> {
        let mut seg = seg;
        if last {
            seg.superseded = old.to_vec();
        }
        crate::fault::step("prune");
        let (id, bytes) = seg.seal(repo.keys());
        step(
            repo.backend().write(FileType::Index, &id.to_hex(), &bytes),
            repo,
        )?;
        step(repo.backend().flush(), repo)?;
        written += 1;
        Ok(())
    };
    for (pid, id, size) in pids {
        let blobs: Vec<BlobEntry> = st
            .query_map([pid], |r| entry_from_row(r, 0).map(|x| x.1))
            .map_err(sq)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sq)?;
        if cur.packs.len() >= SEG_PACKS || cur.blob_count() + blobs.len() > SEG_BLOBS {
            segs.push(std::mem::take(&mut cur));
        }
        cur.packs.push(PackIndex {
            id: PackId::from_bytes(&id)?,
            size: size as u32,
            blobs,
        });
        // Memory stays at about two segments: write all but the newest.
        while segs.len() > 1 {
            flush_seg(segs.remove(0), false)?;
        }
    }
    segs.push(cur);
    let last = segs.pop().unwrap_or_default();
    for s in segs {
        flush_seg(s, false)?;
    }
    flush_seg(last, true)?;
    Ok(written)
}
