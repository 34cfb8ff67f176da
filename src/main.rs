//! The `cellar` binary: parse, run, print each error once, exit with the documented code.

mod cli;

fn main() {
    tune_malloc();
    std::process::exit(cli::main());
}

/// glibc's allocator, left alone, keeps peak memory well above what is live:
/// it raises its mmap threshold each time a large buffer is freed, so later
/// 1–16 MiB pack and read buffers come from the heap and fragment it, and each
/// of the many reader threads gets an arena of its own that keeps what it
/// freed. A fixed threshold returns large buffers to the system when freed,
/// and a few arenas are enough for threads that mostly wait on the disk
/// (first backup of the bench corpus: 180 → 150 MiB peak RSS). MALLOC_* set in
/// the environment still win.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; it is called before
        // any other thread exists.
        unsafe {
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, 8);
            }
            if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        }
    }
}
