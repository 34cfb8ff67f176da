//! Retries around any backend, after restic's internal/backend/retry: a
//! transient failure (a 5xx or 503 SlowDown answer, a timeout, a dropped or
//! refused connection) is tried again with exponential backoff and jitter; a
//! permanent one (403, a 404 on a write, a bad request) is returned at once.
//!
//! Backends say which of their errors are transient by wrapping them in
//! [`Transient`] (see [`transient`]); connection-level `io::ErrorKind`s count as
//! transient too. Every retry is counted process-wide ([`count`]) so that
//! `backup --json` can report how rough the ride was.
//!
//! `CELLAR_RETRY_BASE_MS` (hidden, for tests) replaces the first delay; the
//! fault tests set it low so that a dead server fails a backup in a second.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{FileType, Properties, ReadBackend, WriteBackend};

static RETRIES: AtomicU64 = AtomicU64::new(0);

/// Retries made by every [`RetryBackend`] of this process so far.
pub fn count() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

/// Marks an error as worth retrying.
#[derive(Debug)]
pub struct Transient(pub String);

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transient {}

/// An error of `kind` that [`RetryBackend`] will retry.
pub fn transient(kind: io::ErrorKind, msg: impl Into<String>) -> io::Error {
    io::Error::new(kind, Transient(msg.into()))
}

pub fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        TimedOut | ConnectionReset | ConnectionAborted | ConnectionRefused | NotConnected
    ) || e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<Transient>().is_some())
}

#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Delay before the first retry; it doubles each time.
    pub base: Duration,
    pub max_delay: Duration,
}

impl Default for Policy {
    /// About 40 s in all before giving up: long enough to ride out a
    /// SlowDown burst or a load balancer restart, short enough that a dead
    /// endpoint fails a nightly backup rather than hanging it.
    fn default() -> Self {
        let base_ms = std::env::var("CELLAR_RETRY_BASE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        Policy {
            max_retries: 8,
            base: Duration::from_millis(base_ms),
            max_delay: Duration::from_secs(15),
        }
    }
}

impl Policy {
    /// "Equal jitter": half the exponential delay, plus up to as much again at
    /// random, so that writers that failed together do not retry together.
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let half = exp / 2;
        let r = u64::from_le_bytes(crate::crypto::random_bytes::<8>());
        let jitter_ns = (half.as_nanos() as u64).checked_add(1).map_or(0, |m| r % m);
        half + Duration::from_nanos(jitter_ns)
    }
}

pub struct RetryBackend<B> {
    inner: B,
    policy: Policy,
    /// Set when an operation gave up on a transient error, cleared by any
    /// success: while the endpoint looks dead, the writers still draining
    /// their queue try once more each instead of backing off for 40 s each.
    gave_up: std::sync::atomic::AtomicBool,
}

impl<B: WriteBackend> RetryBackend<B> {
    pub fn new(inner: B, policy: Policy) -> Self {
        RetryBackend {
            inner,
            policy,
            gave_up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn run<T>(&self, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        let mut attempt = 0;
        let max = if self.gave_up.load(Ordering::Relaxed) {
            1
        } else {
            self.policy.max_retries
        };
        loop {
            let r = op();
            match &r {
                Ok(_) => self.gave_up.store(false, Ordering::Relaxed),
                Err(e) if is_transient(e) && attempt >= max => {
                    self.gave_up.store(true, Ordering::Relaxed)
                }
                _ => {}
            }
            match r {
                Err(e) if is_transient(&e) && attempt < max => {
                    // An interrupted command stops retrying; the caller reports the error.
                    if crate::cancel::is_interrupted() {
                        return Err(e);
                    }
                    std::thread::sleep(self.policy.delay(attempt));
                    attempt += 1;
                    RETRIES.fetch_add(1, Ordering::Relaxed);
                }
                r => return r,
            }
        }
    }
}

impl<B: WriteBackend> ReadBackend for RetryBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn properties(&self) -> Properties {
        self.inner.properties()
    }

    fn read(&self, t: FileType, name: &str) -> io::Result<Vec<u8>> {
        self.run(|| self.inner.read(t, name))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        self.run(|| self.inner.read_range(t, name, offset, len))
    }

    fn list(&self, t: FileType) -> io::Result<Vec<(String, u64)>> {
        self.run(|| self.inner.list(t))
    }

    fn size(&self, t: FileType, name: &str) -> io::Result<u64> {
        self.run(|| self.inner.size(t, name))
    }

    fn is_empty(&self) -> io::Result<bool> {
        self.run(|| self.inner.is_empty())
    }
}

impl<B: WriteBackend> WriteBackend for RetryBackend<B> {
    fn create(&self) -> io::Result<()> {
        self.run(|| self.inner.create())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<()> {
        // Writes are idempotent (same name, same bytes), so a PUT whose answer
        // was lost can simply be sent again.
        self.run(|| self.inner.write(t, name, data))
    }

    fn create_new(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<bool> {
        let mut failed_before = false;
        self.run(|| {
            let r = self.inner.create_new(t, name, data);
            match r {
                // An earlier attempt may have succeeded with its answer lost:
                // then the file that "already exists" is ours.
                Ok(false) if failed_before => Ok(self.inner.read(t, name)? == data),
                Err(e) => {
                    failed_before = true;
                    Err(e)
                }
                r => r,
            }
        })
    }

    fn remove(&self, t: FileType, name: &str) -> io::Result<()> {
        self.run(|| self.inner.remove(t, name))
    }

    fn flush(&self) -> io::Result<()> {
        self.run(|| self.inner.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let p = Policy {
            max_retries: 8,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for a in 0..20 {
            let d = p.delay(a);
            let exp = Duration::from_millis(100)
                .saturating_mul(1 << a.min(16))
                .min(Duration::from_secs(1));
            assert!(d >= exp / 2 && d <= exp, "attempt {a}: {d:?}");
        }
    }

    #[test]
    fn transient_kinds() {
        assert!(is_transient(&io::Error::from(io::ErrorKind::TimedOut)));
        assert!(is_transient(&transient(
            io::ErrorKind::Other,
            "503 SlowDown"
        )));
        assert!(!is_transient(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(!is_transient(&io::Error::other("403 AccessDenied")));
    }
}
