//! Test hooks for crash and race tests, driven by the `CELLAR_FAULT`
//! environment variable (comma-separated entries):
//!
//! - `prune:K` — prune exits abruptly (no cleanup, its lock is left behind)
//!   just before its K-th repository write or delete, as a crash would.
//! - `backup-pause-before-snapshot:MS` — backup sleeps MS milliseconds after its
//!   packs and index are written and before its snapshot is.
//!
//! Unset in normal use; every hook is then a no-op.

use std::sync::atomic::{AtomicU64, Ordering};

/// Exit code of a simulated crash, distinct from every documented code.
pub const CRASH_EXIT: i32 = 86;

static STEPS: AtomicU64 = AtomicU64::new(0);

fn setting(name: &str) -> Option<u64> {
    let v = std::env::var("CELLAR_FAULT").ok()?;
    v.split(',')
        .filter_map(|e| e.trim().split_once(':'))
        .find(|(k, _)| *k == name)
        .and_then(|(_, n)| n.parse().ok())
}

/// Counts one write or delete step of `op`; exits the process when it is the
/// step `CELLAR_FAULT=op:K` names.
pub fn step(op: &str) {
    let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    if setting(op) == Some(n) {
        eprintln!("cellar: CELLAR_FAULT: simulated crash before {op} step {n}");
        std::process::exit(CRASH_EXIT);
    }
}

/// Sleeps as long as `CELLAR_FAULT=point:MS` says.
pub fn pause(point: &str) {
    if let Some(ms) = setting(point) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
