//! Cooperative cancellation: the CLI's signal handler sets the flag, long loops
//! check it and stop with `Error::Interrupted` after cleaning up.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

pub fn check() -> crate::Result<()> {
    if is_interrupted() {
        Err(crate::Error::Interrupted)
    } else {
        Ok(())
    }
}
