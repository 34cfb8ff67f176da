//! Repository locks. A backup holds a shared lock, a prune an exclusive one.
//! Only exclusive locks conflict with each other: prune deletes in two phases
//! (format-spec/05, §5.7) and needs backups only to announce themselves, so it
//! can put off deleting while one that may predate its marks is running.
//! A lock is refreshed while held; one that is not refreshed for STALE_AFTER, or
//! whose process is gone (same host), is stale: ignored when taking a lock,
//! listed and removable with `cellar unlock`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend::{FileType, WriteBackend};
use crate::crypto::{self, Keys};
use crate::error::{Error, Result};
use crate::id::LockId;
use crate::repofile::{self, Lock};
use crate::repository::Repository;

pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

pub struct LockGuard {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    current: Arc<std::sync::Mutex<LockId>>,
    backend: Arc<dyn WriteBackend>,
}

fn write_lock(backend: &dyn WriteBackend, keys: &Keys, exclusive: bool) -> Result<LockId> {
    let lock = Lock {
        version: repofile::FORMAT_VERSION,
        time: repofile::now_rfc3339(),
        hostname: repofile::hostname(),
        username: repofile::username(),
        pid: std::process::id(),
        exclusive,
    };
    let body = crate::compress::frame_meta(&serde_json::to_vec(&lock).unwrap());
    let bytes = keys.seal(crypto::aad::LOCK, &body);
    let id = LockId(crate::id::storage_hash(&bytes));
    backend
        .create_new(FileType::Lock, &id.to_hex(), &bytes)
        .map_err(|e| Error::Backend {
            location: backend.location(),
            source: e,
        })?;
    Ok(id)
}

pub fn read_lock(repo: &Repository, name: &str) -> Result<Lock> {
    let bytes = repo
        .backend()
        .read(FileType::Lock, name)
        .map_err(repo.berr())?;
    let framed = repo
        .keys()
        .open(crypto::aad::LOCK, &bytes)
        .map_err(|e| Error::corrupt("lock", name, e.to_string()))?;
    let body = crate::compress::unframe_meta("lock", &framed, repofile::MAX_LOCK)?;
    serde_json::from_slice(&body).map_err(|e| Error::corrupt("lock", name, e.to_string()))
}

/// Why a lock no longer counts, or None if it is live.
pub fn staleness(lock: &Lock) -> Option<String> {
    let age = lock
        .time
        .parse::<jiff::Timestamp>()
        .map(|t| jiff::Timestamp::now().duration_since(t))
        .unwrap_or_default();
    if age.as_secs() > STALE_AFTER.as_secs() as i64 {
        return Some(format!("not refreshed for {} min", age.as_secs() / 60));
    }
    if lock.hostname == repofile::hostname() && !process_alive(lock.pid) {
        return Some(format!("process {} on this host is gone", lock.pid));
    }
    None
}

fn process_alive(pid: u32) -> bool {
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Takes a lock, or fails with `Error::Locked` naming who holds the conflicting one.
pub fn lock(repo: &Repository, exclusive: bool) -> Result<LockGuard> {
    let backend = repo.backend().clone();
    let id = write_lock(&*backend, repo.keys(), exclusive)?;
    let conflict = (|| -> Result<Option<String>> {
        for (name, _) in backend.list(FileType::Lock).map_err(repo.berr())? {
            if name == id.to_hex() {
                continue;
            }
            if !exclusive {
                break;
            }
            let other = match read_lock(repo, &name) {
                Ok(l) => l,
                // Unreadable: assume exclusive (format-spec/05, §5.8).
                Err(e) => {
                    return Ok(Some(format!(
                        "lock {name} cannot be read ({e}); remove it with `cellar unlock --remove-all` if no prune runs"
                    )));
                }
            };
            if !other.exclusive {
                continue;
            }
            if let Some(why) = staleness(&other) {
                repo.notify(&format!("ignoring stale lock {} ({why})", &name[..8]));
                continue;
            }
            return Ok(Some(format!(
                "{} lock held by pid {} on {} (user {}) since {}",
                if other.exclusive { "an exclusive" } else { "a" },
                other.pid,
                other.hostname,
                other.username,
                other.time
            )));
        }
        Ok(None)
    })();
    match conflict {
        Ok(None) => {}
        Ok(Some(msg)) => {
            let _ = backend.remove(FileType::Lock, &id.to_hex());
            return Err(Error::Locked(msg));
        }
        Err(e) => {
            let _ = backend.remove(FileType::Lock, &id.to_hex());
            return Err(e);
        }
    }
    if !exclusive {
        // The lock is durable now: a prune that starts later sees it. Refresh
        // the view of the index and marks taken before it (at open), so that
        // every blob this operation deduplicates against was checked after
        // its lock existed (the argument in format-spec/05, §5.7).
        let synced = repo.sync_index().and_then(|_| crate::marks::sync(repo));
        if let Err(e) = synced {
            let _ = backend.remove(FileType::Lock, &id.to_hex());
            return Err(e);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let current = Arc::new(std::sync::Mutex::new(id));
    let thread = {
        let stop = stop.clone();
        let current = current.clone();
        let backend = backend.clone();
        let keys = repo.keys().clone();
        std::thread::spawn(move || {
            let step = Duration::from_millis(200);
            let mut waited = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                waited += step;
                if waited >= REFRESH_EVERY {
                    waited = Duration::ZERO;
                    if let Ok(new) = write_lock(&*backend, &keys, exclusive) {
                        let old = std::mem::replace(&mut *current.lock().unwrap(), new);
                        let _ = backend.remove(FileType::Lock, &old.to_hex());
                    }
                }
            }
        })
    };
    Ok(LockGuard {
        stop,
        thread: Some(thread),
        current,
        backend,
    })
}

/// Takes a lock, retrying every few seconds for up to `retry` while it is held
/// by someone else.
pub fn lock_retry(repo: &Repository, exclusive: bool, retry: Duration) -> Result<LockGuard> {
    let until = std::time::Instant::now() + retry;
    let mut told = false;
    loop {
        match lock(repo, exclusive) {
            Err(Error::Locked(msg)) if std::time::Instant::now() < until => {
                if !told {
                    repo.notify(&format!("repository is locked ({msg}); waiting"));
                    told = true;
                }
                crate::cancel::check()?;
                let left = until.saturating_duration_since(std::time::Instant::now());
                std::thread::sleep(left.min(Duration::from_secs(2)));
            }
            r => return r,
        }
    }
}

/// One lock file as `cellar unlock` shows it.
pub struct LockInfo {
    pub name: String,
    pub lock: Option<Lock>,
    /// Why it is stale, or why it could not be read; None when live.
    pub stale: Option<String>,
}

pub fn list(repo: &Repository) -> Result<Vec<LockInfo>> {
    let mut out = Vec::new();
    for (name, _) in repo.backend().list(FileType::Lock).map_err(repo.berr())? {
        if LockId::from_hex(&name).is_err() {
            continue;
        }
        match read_lock(repo, &name) {
            Ok(l) => out.push(LockInfo {
                stale: staleness(&l),
                name,
                lock: Some(l),
            }),
            Err(e) => out.push(LockInfo {
                name,
                lock: None,
                stale: Some(format!("unreadable: {e}")),
            }),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether the process holding a lock is known to be gone: only a lock of this
/// host whose pid does not run can be judged so with certainty.
pub fn holder_gone(lock: &Lock) -> bool {
    lock.hostname == repofile::hostname() && !process_alive(lock.pid)
}

pub fn remove(repo: &Repository, name: &str) -> Result<()> {
    repo.backend()
        .remove(FileType::Lock, name)
        .map_err(repo.berr())?;
    repo.backend().flush().map_err(repo.berr())
}

impl LockGuard {
    /// The lock file currently held (it changes when refreshed).
    pub fn name(&self) -> String {
        self.current.lock().unwrap().to_hex()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let id = *self.current.lock().unwrap();
        let _ = self.backend.remove(FileType::Lock, &id.to_hex());
    }
}
