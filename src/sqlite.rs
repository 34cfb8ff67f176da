//! Opening the local SQLite files (blob index, browse catalog): owner-only,
//! WAL, a bounded page cache, and a schema-version row. A file of another
//! version, or one SQLite calls damaged, is deleted and created afresh: these
//! files are caches of what the repository holds, never the only copy.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

/// Opens (creating or replacing as needed) the cache database at `path`.
/// `schema` is run on every open and must be idempotent (`IF NOT EXISTS`);
/// it must create a `meta (key TEXT PRIMARY KEY, value TEXT)` table.
pub fn open_cache_db(path: &Path, schema: &str, version: i64) -> rusqlite::Result<Connection> {
    // Two processes creating the same cache at once (concurrent backups on a
    // new machine) race for the locks that switching to WAL and creating the
    // schema take, and SQLite reports some of those races as SQLITE_BUSY at
    // once rather than through the busy timeout. Opening is cheap: try again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match open_once(path, schema, version) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn open_once(path: &Path, schema: &str, version: i64) -> rusqlite::Result<Connection> {
    let remove_files = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    };
    let opened = connect(path, schema).and_then(|conn| {
        let v: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok((conn, v))
    });
    let conn = match opened {
        Ok((conn, Some(v))) if v != version.to_string() => {
            // Another version's file: start over.
            drop(conn);
            remove_files();
            connect(path, schema)?
        }
        Ok((conn, _)) => conn,
        // A damaged file (a crash, a full disk, garbage).
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ) =>
        {
            remove_files();
            connect(path, schema)?
        }
        Err(e) => return Err(e),
    };
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
        [version.to_string()],
    )?;
    Ok(conn)
}

fn connect(path: &Path, schema: &str) -> rusqlite::Result<Connection> {
    // Created 0600 before SQLite opens it: it holds plaintext names and sizes
    // (format-spec 07), and SQLite gives the -wal and -shm files the same mode.
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    let conn = Connection::open(path)?;
    // First: two processes opening a new cache at once (concurrent backups)
    // contend for the lock that switching to WAL takes, and without a busy
    // timeout the loser fails at once with "database is locked".
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch(
        // WAL: readers (a browse in another terminal) never block a backup writing.
        "PRAGMA journal_mode = WAL;
         -- NORMAL is safe with WAL; a lost tail is re-read from the repository.
         PRAGMA synchronous = NORMAL;
         -- Bounded page cache (32 MiB) whatever the repository size.
         PRAGMA cache_size = -32768;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.execute_batch(schema)?;
    Ok(conn)
}
