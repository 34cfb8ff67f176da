//! The local SQLite cache: blob -> pack location, known index segments, and
//! snapshots. Everything here can be rebuilt from the repository; deleting the
//! file loses nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::index::segment::Segment;
use crate::pack::BlobEntry;

/// Bumped whenever the schema changes; a cache with another version is rebuilt.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (id BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS packs (
    pid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    segment BLOB NOT NULL
);
-- WITHOUT ROWID: the 32-byte id is the key, stored once, ~60 bytes a blob on disk.
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB PRIMARY KEY,
    pid INTEGER NOT NULL,
    type INTEGER NOT NULL,
    compression INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL
) WITHOUT ROWID;
-- Packs a prune marked for deletion (marks/ in the repository): backups must not
-- deduplicate against blobs stored only there.
-- The tree blobs of a pack, for readers that fetch a pack's trees in one request
-- (`Repository::load_tree` on object stores). Partial: trees are a small share
-- of the blobs, so the index stays small; an older cache gains it on open.
CREATE INDEX IF NOT EXISTS blobs_trees ON blobs (pid, offset) WHERE type = 1;
CREATE TABLE IF NOT EXISTS marked (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    id BLOB PRIMARY KEY,
    time INTEGER NOT NULL,
    json TEXT NOT NULL
);
";

/// A blob a backup can deduplicate against: indexed, in a pack not marked for deletion.
const DEDUP_LOOKUP: &str = "SELECT 1 FROM blobs b JOIN packs p ON p.pid = b.pid
     WHERE b.id = ?1 AND NOT EXISTS (SELECT 1 FROM marked m WHERE m.id = p.id)";

/// Where a blob is: its pack and its entry in that pack.
const LOOKUP: &str = "SELECT p.id, b.type, b.compression, b.offset, b.stored_len, b.raw_len
     FROM blobs b JOIN packs p ON p.pid = b.pid WHERE b.id = ?1";

/// A row of `LOOKUP`.
#[derive(Clone)]
struct LocationRow {
    pack: Vec<u8>,
    blob_type: u8,
    compression: u8,
    offset: u32,
    stored_len: u32,
    raw_len: u32,
}

fn location_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LocationRow> {
    Ok(LocationRow {
        pack: r.get(0)?,
        blob_type: r.get(1)?,
        compression: r.get(2)?,
        offset: r.get(3)?,
        stored_len: r.get(4)?,
        raw_len: r.get(5)?,
    })
}

impl LocationRow {
    fn into_location(self, id: BlobId) -> Result<Location> {
        Ok(Location {
            pack: PackId::from_bytes(&self.pack)?,
            entry: BlobEntry {
                id,
                blob_type: self.blob_type,
                compression: self.compression,
                offset: self.offset,
                stored_len: self.stored_len,
                raw_len: self.raw_len,
            },
        })
    }
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Other(format!("cache {}: {e}", path.display()))
}

pub struct Cache {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// A blob's location as the cache knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub entry: BlobEntry,
}

impl Cache {
    pub fn open(path: &Path) -> Result<Cache> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            // The cache holds plaintext names and sizes: keep it to its owner
            // (format-spec 07). Best effort on file systems without modes.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let conn =
            crate::sqlite::open_cache_db(path, SCHEMA, SCHEMA_VERSION).map_err(sql_err(path))?;
        Ok(Cache {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(sql_err(&self.path))
    }

    pub fn segments(&self) -> Result<HashSet<IndexId>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id FROM segments")?;
            let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            let mut out = HashSet::new();
            for r in rows {
                if let Ok(id) = IndexId::from_bytes(&r?) {
                    out.insert(id);
                }
            }
            Ok(out)
        })
    }

    /// Records a segment's packs and blobs in one transaction. A blob already known
    /// (stored twice by concurrent backups) keeps its first location.
    pub fn add_segment(&self, id: IndexId, seg: &Segment) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut ins_pack = tx.prepare_cached(
                    "INSERT OR IGNORE INTO packs (id, size, segment) VALUES (?1, ?2, ?3)",
                )?;
                let mut get_pid = tx.prepare_cached("SELECT pid FROM packs WHERE id = ?1")?;
                // A copy in a marked pack gives way to a new one, so a backup that
                // re-stored a marked blob deduplicates against its own copy.
                let mut ins_blob = tx.prepare_cached(
                    "INSERT INTO blobs (id, pid, type, compression, offset, stored_len, raw_len)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, type = excluded.type,
                        compression = excluded.compression, offset = excluded.offset,
                        stored_len = excluded.stored_len, raw_len = excluded.raw_len
                     WHERE EXISTS (SELECT 1 FROM packs p JOIN marked m ON m.id = p.id
                                   WHERE p.pid = blobs.pid)",
                )?;
                let mut rows = Vec::with_capacity(seg.blob_count());
                for p in &seg.packs {
                    ins_pack.execute(params![&p.id.0[..], p.size, &id.0[..]])?;
                    let pid: i64 = get_pid.query_row([&p.id.0[..]], |r| r.get(0))?;
                    rows.extend(p.blobs.iter().map(|b| (b, pid)));
                }
                // In key order: random ids into a B-tree far larger than the page
                // cache would rewrite most leaf pages in every transaction.
                rows.sort_unstable_by_key(|r| r.0.id);
                for (b, pid) in rows {
                    ins_blob.execute(params![
                        &b.id.0[..],
                        pid,
                        b.blob_type,
                        b.compression,
                        b.offset,
                        b.stored_len,
                        b.raw_len
                    ])?;
                }
                tx.execute(
                    "INSERT OR IGNORE INTO segments (id) VALUES (?1)",
                    [&id.0[..]],
                )?;
            }
            tx.commit()
        })
    }

    /// Forgets every segment, pack and blob (before a rebuild).
    pub fn clear_index(&self) -> Result<()> {
        self.with(|c| {
            c.execute_batch("DELETE FROM blobs; DELETE FROM packs; DELETE FROM segments;")
        })
    }

    pub fn lookup(&self, id: &BlobId) -> Result<Option<Location>> {
        self.with(|c| {
            c.prepare_cached(LOOKUP)?
                .query_row([&id.0[..]], location_row)
                .optional()
        })?
        .map(|row| row.into_location(*id))
        .transpose()
    }

    /// The tree blobs the cache locates in `pack`, by offset.
    pub fn tree_blobs_in(&self, pack: &PackId) -> Result<Vec<BlobEntry>> {
        let rows = self.with(|c| {
            // `b.type = 1` literally, so that SQLite picks the partial index.
            let mut st = c.prepare_cached(
                "SELECT b.id, b.compression, b.offset, b.stored_len, b.raw_len
                 FROM blobs b JOIN packs p ON p.pid = b.pid
                 WHERE p.id = ?1 AND b.type = 1 ORDER BY b.offset",
            )?;
            st.query_map([&pack.0[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(id, compression, offset, stored_len, raw_len)| {
                Ok(BlobEntry {
                    id: BlobId::from_bytes(&id)?,
                    blob_type: crate::pack::TYPE_TREE,
                    compression,
                    offset,
                    stored_len,
                    raw_len,
                })
            })
            .collect()
    }

    /// Locations of many blobs under one lock and one prepared statement,
    /// looked up in key order so that neighbouring ids share B-tree pages;
    /// results come back in the order of `ids`.
    pub fn lookup_many(&self, ids: &[BlobId]) -> Result<Vec<Option<Location>>> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_unstable_by_key(|&i| ids[i]);
        let rows = self.with(|c| {
            // One read transaction: outside one, every statement takes and
            // drops SQLite's shared lock (two fcntl calls and a WAL check).
            let tx = c.transaction()?;
            let mut rows = vec![None; ids.len()];
            {
                let mut st = tx.prepare_cached(LOOKUP)?;
                for &i in &order {
                    rows[i] = st.query_row([&ids[i].0[..]], location_row).optional()?;
                }
            }
            tx.finish()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .zip(ids)
            .map(|(row, id)| row.map(|r| r.into_location(*id)).transpose())
            .collect()
    }

    /// Whether a backup may skip storing this blob: it is indexed, and not only
    /// in a pack marked for deletion.
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        self.with(|c| {
            let mut st = c.prepare_cached(DEDUP_LOOKUP)?;
            st.exists([&id.0[..]])
        })
    }

    /// Of the given ids, those the cache does not know: one lock and one
    /// prepared statement for a whole batch.
    pub fn missing(&self, ids: &[BlobId]) -> Result<Vec<bool>> {
        self.with(|c| {
            let mut st = c.prepare_cached(DEDUP_LOOKUP)?;
            ids.iter()
                .map(|id| st.exists([&id.0[..]]).map(|e| !e))
                .collect()
        })
    }

    pub fn counts(&self) -> Result<(u64, u64)> {
        self.with(|c| {
            let b: i64 = c.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))?;
            let p: i64 = c.query_row("SELECT count(*) FROM packs", [], |r| r.get(0))?;
            Ok((b as u64, p as u64))
        })
    }

    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, size FROM packs")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for r in rows {
                let (id, size) = r?;
                if let Ok(id) = PackId::from_bytes(&id) {
                    out.push((id, size as u64));
                }
            }
            Ok(out)
        })
    }

    /// The mark files the `marked` table was filled from (names joined by ",").
    pub fn mark_files(&self) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT value FROM meta WHERE key = 'mark_files'", [], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    /// Replaces the set of marked packs, recording which mark files it came from.
    pub fn set_marked(&self, files: &str, packs: &[PackId]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM marked", [])?;
            {
                let mut ins = tx.prepare_cached("INSERT OR IGNORE INTO marked (id) VALUES (?1)")?;
                for p in packs {
                    ins.execute([&p.0[..]])?;
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('mark_files', ?1)",
                [files],
            )?;
            tx.commit()
        })
    }

    pub fn is_marked(&self, pack: &PackId) -> Result<bool> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT 1 FROM marked WHERE id = ?1")?;
            st.exists([&pack.0[..]])
        })
    }

    pub fn snapshot_ids(&self) -> Result<HashSet<SnapshotId>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id FROM snapshots")?;
            let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            let mut out = HashSet::new();
            for r in rows {
                if let Ok(id) = SnapshotId::from_bytes(&r?) {
                    out.insert(id);
                }
            }
            Ok(out)
        })
    }

    pub fn put_snapshot(&self, id: SnapshotId, time: i64, json: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO snapshots (id, time, json) VALUES (?1, ?2, ?3)",
                params![&id.0[..], time, json],
            )
            .map(|_| ())
        })
    }

    pub fn remove_snapshot(&self, id: SnapshotId) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM snapshots WHERE id = ?1", [&id.0[..]])
                .map(|_| ())
        })
    }

    /// All snapshots, oldest first, as (id, JSON).
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, String)>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, json FROM snapshots ORDER BY time, id")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for r in rows {
                let (id, json) = r?;
                if let Ok(id) = SnapshotId::from_bytes(&id) {
                    out.push((id, json));
                }
            }
            Ok(out)
        })
    }
}
