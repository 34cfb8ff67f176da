//! Terminal progress for backup and restore: one status line on stderr, redrawn
//! a few times a second, only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::output::human_bytes;

#[derive(Default)]
struct State {
    bytes: AtomicU64,
    files: AtomicU64,
    expected: AtomicU64,
    stop: AtomicBool,
}

pub struct Bar {
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
    quiet: bool,
    /// `-v`: list each file a backup stored, on stdout.
    verbose: bool,
    out: std::sync::Mutex<()>,
}

impl Bar {
    /// A bar that draws only when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, quiet: bool, verb: &'static str) -> Bar {
        let state = Arc::new(State::default());
        let thread = (enabled && std::io::stderr().is_terminal()).then(|| {
            let st = state.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut drawn = false;
                while !st.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let b = st.bytes.load(Ordering::Relaxed);
                    let f = st.files.load(Ordering::Relaxed);
                    let secs = start.elapsed().as_secs_f64().max(0.001);
                    let rate = b as f64 / secs;
                    let exp = st.expected.load(Ordering::Relaxed);
                    let eta = if exp > b && rate > 0.0 {
                        let left = ((exp - b) as f64 / rate) as u64;
                        format!(", ETA {}:{:02}", left / 60, left % 60)
                    } else {
                        String::new()
                    };
                    let el = secs as u64;
                    let _ = write!(
                        std::io::stderr(),
                        "\r\x1b[K[{}:{:02}] {verb} {f} files, {} ({}/s){eta}",
                        el / 60,
                        el % 60,
                        human_bytes(b),
                        human_bytes(rate as u64),
                    );
                    drawn = true;
                }
                if drawn {
                    let _ = write!(std::io::stderr(), "\r\x1b[K");
                }
            })
        });
        Bar {
            state,
            thread,
            quiet,
            verbose: false,
            out: std::sync::Mutex::new(()),
        }
    }

    /// Lists the files a backup stores ("new" or "modified") on stdout.
    pub fn listing_files(mut self, verbose: bool) -> Bar {
        self.verbose = verbose;
        self
    }

    fn clear_line(&self) {
        if self.thread.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl cellar::archiver::Progress for Bar {
    fn start(&self, expected: Option<u64>) {
        self.state
            .expected
            .store(expected.unwrap_or(0), Ordering::Relaxed);
    }
    fn bytes_done(&self, n: u64) {
        self.state.bytes.fetch_add(n, Ordering::Relaxed);
    }
    fn file_done(&self, _path: &Path) {
        self.state.files.fetch_add(1, Ordering::Relaxed);
    }
    fn file_saved(&self, path: &Path, new: bool) {
        if self.verbose {
            let _one_at_a_time = self.out.lock();
            self.clear_line();
            let what = if new { "new" } else { "modified" };
            let _ = writeln!(std::io::stdout(), "{what:<9}{}", path.display());
        }
    }
    fn warn(&self, msg: &str) {
        let _ = self.quiet;
        self.clear_line();
        eprintln!("cellar: warning: {msg}");
    }
}

impl cellar::restorer::Progress for Bar {
    fn bytes_done(&self, n: u64) {
        self.state.bytes.fetch_add(n, Ordering::Relaxed);
    }
    fn warn(&self, msg: &str) {
        self.clear_line();
        eprintln!("cellar: warning: {msg}");
    }
}
