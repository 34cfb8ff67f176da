//! Helpers shared by every integration test: temporary directories ([`Dir`]),
//! a command builder for the `cellar` binary ([`Cellar`]) and its result
//! ([`Run`]), an initialised repository with its password and its own cache
//! ([`TestRepo`]), pseudo-random content, and a file-system scanner that
//! compares two trees entry by entry ([`assert_same_tree`]).
//!
//! Everything lives under Cargo's per-target temporary directory
//! (`CARGO_TARGET_TMPDIR`), so fixtures can be hard-linked into source trees
//! (same file system) and nothing is left in /tmp.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const MIB: u64 = 1 << 20;

/// The password of every [`TestRepo`] (its file has a trailing newline, which cellar strips).
pub const PASSWORD: &str = "correct horse battery staple";

/// Argon2id at its cheapest: key derivation would otherwise dominate the suite.
pub const CHEAP_KDF: [&str; 4] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];

/// Documented exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const PARTIAL: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const LOCKED: i32 = 11;
    pub const WRONG_PASSWORD: i32 = 12;
}

/// The unprivileged user of tests that run as root.
pub const NOBODY: u32 = 65534;

/// Whether users other than the owner can reach `p` (every directory above it searchable).
pub fn reachable_by_others(p: &Path) -> bool {
    p.ancestors()
        .skip(1)
        .all(|a| fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A path from raw bytes (for names that are not UTF-8).
pub fn bpath(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

// ---------------------------------------------------------------------------
// Temporary directories

/// A temporary directory, removed when dropped.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new(name: &str) -> Dir {
        Dir::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), name)
    }

    /// A temporary directory below `base`.
    pub fn new_in(base: &Path, name: &str) -> Dir {
        fs::create_dir_all(base).unwrap();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("cellar-it-{name}-"))
            .tempdir_in(base)
            .expect("creating a temporary directory");
        Dir { tmp }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path().join(rel)
    }

    /// Creates a directory (and its parents); returns its path.
    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// Writes a file (creating its parent directories); returns its path.
    pub fn write(&self, rel: impl AsRef<Path>, data: &[u8]) -> PathBuf {
        let p = self.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    pub fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.join(rel);
        std::os::unix::fs::symlink(target, &p)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
        p
    }

    /// Hard-links `existing` (absolute, or relative to this directory) at `rel`.
    pub fn hard_link(&self, existing: impl AsRef<Path>, rel: impl AsRef<Path>) -> PathBuf {
        let src = self.join(existing);
        let p = self.join(rel);
        fs::hard_link(&src, &p)
            .unwrap_or_else(|e| panic!("link {} -> {}: {e}", p.display(), src.display()));
        p
    }

    pub fn mkfifo(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.join(rel);
        let c = cpath(&p);
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
            0,
            "mkfifo {}",
            p.display()
        );
        p
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// lchown; chown(2) clears set-id bits, so call it before [`chmod`].
pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
}

/// Sets atime and mtime without following symlinks.
pub fn set_mtime(p: &Path, sec: i64, nsec: u32) {
    let ts = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    let c = cpath(p);
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [ts, ts].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// Recursively chowns (used to hand a directory to an unprivileged user).
pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    chown(p, uid, gid);
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

// ---------------------------------------------------------------------------
// Pseudo-random content

/// xorshift64: fast, deterministic, incompressible enough for zstd and FastCDC.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    XorShift::new(seed).fill(&mut v);
    v
}

/// Writes `len` pseudo-random bytes in 1 MiB buffers.
pub fn write_random(path: &Path, len: u64, seed: u64) {
    let mut rng = XorShift::new(seed);
    let mut f = std::io::BufWriter::with_capacity(MIB as usize, fs::File::create(path).unwrap());
    let mut buf = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.into_inner().unwrap().sync_data().ok();
}

pub const BIG_LEN: u64 = 200 * MIB;

/// A 200 MiB pseudo-random file, generated once per test run and shared.
/// Tests hard-link it into their source trees and must not modify it.
pub fn big_file() -> &'static Path {
    static BIG: OnceLock<PathBuf> = OnceLock::new();
    BIG.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cellar-fixtures");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("random-200MiB.bin");
        // Written under a private name and renamed: a concurrent run of the suite
        // (same content, deterministic seed) never sees half a file.
        let tmp = dir.join(format!(".random-200MiB.{}", std::process::id()));
        write_random(&tmp, BIG_LEN, 0xB16_F11E);
        fs::rename(&tmp, &path).unwrap();
        path
    })
}

/// BLAKE3 of a file's content, hex.
pub fn hash_file(p: &Path) -> String {
    let mut h = blake3::Hasher::new();
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().to_hex().to_string()
}

pub fn assert_same_file(expected: &Path, actual: &Path) {
    let (e, a) = (fs::metadata(expected).unwrap(), fs::metadata(actual));
    let a = a.unwrap_or_else(|err| panic!("{}: {err}", actual.display()));
    assert_eq!(
        e.len(),
        a.len(),
        "size of {} vs {}",
        actual.display(),
        expected.display()
    );
    assert!(
        hash_file(expected) == hash_file(actual),
        "{} differs from {}",
        actual.display(),
        expected.display()
    );
}

// ---------------------------------------------------------------------------
// Running the binary

/// One finished run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e})\n{}", self.report()))
    }

    pub fn report(&self) -> String {
        format!(
            "command: {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }
}

/// A command line for the cellar binary, with an environment that cannot leak
/// the developer's repository, password or cache into the test.
pub struct Cellar {
    cmd: Command,
    shown: Vec<String>,
}

impl Cellar {
    pub fn new() -> Cellar {
        Cellar::with_binary(Path::new(env!("CARGO_BIN_EXE_cellar")))
    }

    /// Runs another copy of the binary.
    pub fn with_binary(bin: &Path) -> Cellar {
        let mut cmd = Command::new(bin);
        for v in [
            "CELLAR_REPOSITORY",
            "CELLAR_PASSWORD",
            "CELLAR_PASSWORD_FILE",
            "CELLAR_PASSWORD_COMMAND",
            "CELLAR_CACHE_DIR",
            "CELLAR_CONFIG",
        ] {
            cmd.env_remove(v);
        }
        // Nor may the developer's own cellar.toml (saved repositories, a
        // default `-r`) change what a test sees; tests of it set their own.
        cmd.env(
            "XDG_CONFIG_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-config"),
        );
        // Should a command ever ignore --cache-dir, it must not touch ~/.cache.
        cmd.env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache"),
        );
        cmd.stdin(Stdio::null());
        Cellar {
            cmd,
            shown: vec!["cellar".into()],
        }
    }

    /// Sets an environment variable (shown before the command line).
    pub fn env(&mut self, k: &str, v: impl AsRef<OsStr>) -> &mut Cellar {
        self.shown
            .insert(0, format!("{k}={}", v.as_ref().to_string_lossy()));
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(&mut self, k: &str) -> &mut Cellar {
        self.cmd.env_remove(k);
        self
    }

    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Cellar {
        self.shown.push(a.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Cellar
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    pub fn stdin_file(&mut self, p: &Path) -> &mut Cellar {
        self.shown.push(format!("< {}", p.display()));
        self.cmd.stdin(fs::File::open(p).unwrap());
        self
    }

    /// Runs as another user (the test must be root).
    pub fn as_user(&mut self, uid: u32, gid: u32) -> &mut Cellar {
        use std::os::unix::process::CommandExt;
        self.shown.insert(0, format!("[uid {uid}]"));
        self.cmd.uid(uid).gid(gid);
        self
    }

    pub fn run(&mut self) -> Run {
        let out = self.cmd.output().expect("running the cellar binary");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmdline: self.shown.join(" "),
        }
    }

    /// Starts the command; [`Running::wait`] collects it.
    pub fn spawn(&mut self) -> Running {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Running {
            child: self.cmd.spawn().expect("starting the cellar binary"),
            cmdline: self.shown.join(" "),
        }
    }

    /// Runs and asserts the exit code.
    pub fn expect(&mut self, code: i32) -> Run {
        let r = self.run();
        assert!(r.code == code, "expected exit code {code}\n{}", r.report());
        r
    }

    /// Runs and asserts success.
    pub fn ok(&mut self) -> Run {
        self.expect(exit::OK)
    }
}

/// A command started with [`Cellar::spawn`].
pub struct Running {
    child: std::process::Child,
    cmdline: String,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether it has exited (without collecting its output).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("polling cellar").is_some()
    }

    pub fn wait(self) -> Run {
        let out = self.child.wait_with_output().expect("waiting for cellar");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmdline: self.cmdline,
        }
    }
}

// ---------------------------------------------------------------------------
// Repositories

/// A temporary directory holding a repository (`repo/`), its password file
/// and a private cache directory, plus room for sources and restore targets.
pub struct TestRepo {
    pub dir: Dir,
    /// The cellar binary to run.
    pub bin: PathBuf,
    /// Run commands as this uid:gid (set by [`TestRepo::unprivileged`]).
    pub user: Option<(u32, u32)>,
    pub repo: PathBuf,
    pub password_file: PathBuf,
    pub cache: PathBuf,
}

impl TestRepo {
    /// An initialised repository.
    pub fn new(name: &str) -> TestRepo {
        TestRepo::with_init_args(name, &[])
    }

    /// An initialised repository, with extra `init` options.
    pub fn with_init_args(name: &str, args: &[&str]) -> TestRepo {
        let t = TestRepo::uninitialized(name);
        t.cellar().arg("init").args(CHEAP_KDF).args(args).ok();
        t
    }

    /// Everything but the repository itself.
    pub fn uninitialized(name: &str) -> TestRepo {
        TestRepo::in_dir(Dir::new(name))
    }

    /// Everything but the repository itself, in a given directory.
    pub fn in_dir(dir: Dir) -> TestRepo {
        let password_file = dir.write("password", format!("{PASSWORD}\n").as_bytes());
        TestRepo {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_cellar")),
            user: None,
            repo: dir.join("repo"),
            cache: dir.join("cache"),
            password_file,
            dir,
        }
    }

    /// `cellar -r REPO --password-file PW --cache-dir CACHE`.
    pub fn cellar(&self) -> Cellar {
        self.cellar_with(&self.password_file)
    }

    /// Same, with another password file.
    pub fn cellar_with(&self, password_file: &Path) -> Cellar {
        let mut c = Cellar::with_binary(&self.bin);
        c.arg("-r")
            .arg(&self.repo)
            .arg("--password-file")
            .arg(password_file)
            .arg("--cache-dir")
            .arg(&self.cache);
        if let Some((uid, gid)) = self.user {
            c.as_user(uid, gid);
        }
        c
    }

    /// An initialised repository whose commands run as an unprivileged user:
    /// as root, nobody (who owns the temporary directory, so files the test
    /// creates there need a [`chown_tree`] to be theirs); otherwise the current
    /// user. None when nobody could not reach such a directory.
    pub fn unprivileged(name: &str) -> Option<TestRepo> {
        if !is_root() {
            return Some(TestRepo::new(name));
        }
        let bin = Path::new(env!("CARGO_BIN_EXE_cellar"));
        let here = Path::new(env!("CARGO_TARGET_TMPDIR")).join("x");
        let mut t = if reachable_by_others(&here) && reachable_by_others(bin) {
            TestRepo::uninitialized(name)
        } else {
            // A checkout nobody cannot reach (say under /root): work in the
            // system temporary directory, with a copy of the binary.
            let mut t = TestRepo::in_dir(Dir::new_in(&std::env::temp_dir(), name));
            let copy = t.dir.join("cellar");
            fs::copy(bin, &copy).unwrap();
            t.bin = copy;
            t
        };
        if !reachable_by_others(&t.dir.join("x")) {
            eprintln!("{}: other users cannot reach it", t.dir.path().display());
            return None;
        }
        chmod(t.dir.path(), 0o755);
        chown_tree(t.dir.path(), NOBODY, NOBODY);
        t.user = Some((NOBODY, NOBODY));
        t.cellar().arg("init").args(CHEAP_KDF).ok();
        Some(t)
    }

    /// Writes a password file next to the repository.
    pub fn password(&self, name: &str, password: &str) -> PathBuf {
        self.dir.write(name, format!("{password}\n").as_bytes())
    }

    /// `backup --json PATHS...`, asserting success; returns the summary.
    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        self.cellar()
            .args(["--json", "backup"])
            .args(paths)
            .ok()
            .json()
    }

    /// Snapshot ids, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        snapshot_ids(&self.cellar().args(["--json", "snapshots"]).ok())
    }

    /// `restore SPEC --target TARGET`, exit code unchecked.
    pub fn restore(&self, spec: &str, target: &Path) -> Run {
        self.cellar()
            .args(["restore", spec, "--target"])
            .arg(target)
            .run()
    }

    /// Every file and directory of the repository with its size and mtime.
    pub fn listing(&self) -> BTreeMap<PathBuf, (u64, i64, i64)> {
        let mut out = BTreeMap::new();
        fn walk(root: &Path, p: &Path, out: &mut BTreeMap<PathBuf, (u64, i64, i64)>) {
            let m = fs::symlink_metadata(p).unwrap();
            let size = if m.is_dir() { 0 } else { m.len() };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (size, m.mtime(), m.mtime_nsec()),
            );
            if m.is_dir() {
                for e in fs::read_dir(p).unwrap() {
                    walk(root, &e.unwrap().path(), out);
                }
            }
        }
        if self.repo.exists() {
            walk(&self.repo, &self.repo, &mut out);
        }
        out
    }

    /// Bytes in all repository files.
    pub fn disk_size(&self) -> u64 {
        self.listing().values().map(|v| v.0).sum()
    }

    /// The pack files, with their sizes.
    pub fn packs(&self) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        for sub in fs::read_dir(self.repo.join("data")).unwrap() {
            for f in fs::read_dir(sub.unwrap().path()).unwrap() {
                let f = f.unwrap();
                out.push((f.path(), f.metadata().unwrap().len()));
            }
        }
        out.sort();
        out
    }

    /// Opens the repository through the library (sharing the CLI's cache).
    pub fn open(&self) -> cellar::Repository {
        cellar::Repository::open(
            Box::new(cellar::backend::local::LocalBackend::new(&self.repo)),
            PASSWORD.as_bytes(),
            Some(&self.cache),
            cellar::repository::silent(),
        )
        .expect("opening the repository through the library")
    }
}

pub fn snapshot_ids(r: &Run) -> Vec<String> {
    r.json()
        .as_array()
        .unwrap_or_else(|| panic!("snapshots --json is not an array\n{}", r.report()))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// A field of a backup summary as a number.
pub fn field(v: &serde_json::Value, name: &str) -> u64 {
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no numeric {name:?}: {v}"))
}

/// Every path below `root` (relative), for "nothing was written there" checks.
pub fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(root: &Path, p: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            out.push(e.path().strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// Comparing trees

/// What a restore must reproduce of one file-system entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    /// Regular files only.
    pub size: u64,
    /// BLAKE3 of a regular file's content.
    pub content: Option<String>,
    pub link_target: Option<String>,
    /// The first path (within the tree) sharing this entry's inode.
    pub hard_link_group: Option<String>,
    /// `user.*` attributes only (other namespaces depend on the system).
    pub xattrs: Vec<(String, String)>,
}

impl Entry {
    /// One line per field that differs.
    fn diff(&self, actual: &Entry) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, e: String, a: String| {
            if e != a {
                out.push(format!("{name}: expected {e}, got {a}"));
            }
        };
        cmp("kind", self.kind.into(), actual.kind.into());
        cmp(
            "mode",
            format!("{:o}", self.mode),
            format!("{:o}", actual.mode),
        );
        cmp(
            "uid:gid",
            format!("{}:{}", self.uid, self.gid),
            format!("{}:{}", actual.uid, actual.gid),
        );
        cmp(
            "mtime",
            format!("{:?}", self.mtime),
            format!("{:?}", actual.mtime),
        );
        cmp("size", self.size.to_string(), actual.size.to_string());
        cmp(
            "content",
            format!("{:?}", self.content),
            format!("{:?}", actual.content),
        );
        cmp(
            "symlink target",
            format!("{:?}", self.link_target),
            format!("{:?}", actual.link_target),
        );
        cmp(
            "hard link of",
            format!("{:?}", self.hard_link_group),
            format!("{:?}", actual.hard_link_group),
        );
        cmp(
            "xattrs",
            format!("{:?}", self.xattrs),
            format!("{:?}", actual.xattrs),
        );
        out
    }
}

/// Unambiguous printable form of a name that may not be UTF-8.
fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Every entry below and including `root`, keyed by relative path bytes ("" is the root).
pub fn scan(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut raw: Vec<(Vec<u8>, PathBuf, fs::Metadata)> = Vec::new();
    fn walk(root: &Path, p: &Path, raw: &mut Vec<(Vec<u8>, PathBuf, fs::Metadata)>) {
        let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let is_dir = m.is_dir();
        raw.push((rel, p.to_path_buf(), m));
        if is_dir {
            for e in fs::read_dir(p).unwrap() {
                walk(root, &e.unwrap().path(), raw);
            }
        }
    }
    walk(root, root, &mut raw);
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    let mut first_link: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    for (rel, _, m) in &raw {
        if m.is_file() {
            first_link
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone());
        }
    }
    let mut out = BTreeMap::new();
    for (rel, p, m) in raw {
        use std::os::unix::fs::FileTypeExt;
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_char_device() {
            "chardev"
        } else if ft.is_block_device() {
            "blockdev"
        } else {
            "file"
        };
        let mut xattrs = Vec::new();
        if kind != "symlink" {
            for name in xattr::list(&p).into_iter().flatten() {
                if name.as_bytes().starts_with(b"user.") {
                    if let Ok(Some(v)) = xattr::get(&p, &name) {
                        xattrs.push((show(name.as_bytes()), show(&v)));
                    }
                }
            }
            xattrs.sort();
        }
        let e = Entry {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: (m.mtime(), m.mtime_nsec()),
            size: if kind == "file" { m.len() } else { 0 },
            content: (kind == "file").then(|| hash_file(&p)),
            link_target: (kind == "symlink")
                .then(|| show(fs::read_link(&p).unwrap().as_os_str().as_bytes())),
            hard_link_group: (kind == "file").then(|| show(&first_link[&(m.dev(), m.ino())])),
            xattrs,
        };
        out.insert(rel, e);
    }
    out
}

/// Asserts that `actual` reproduces `expected` entry by entry: kinds, contents,
/// modes, owners, mtimes to the nanosecond, symlink targets, hard links and
/// user xattrs.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let e = scan(expected);
    let a = scan(actual);
    let mut diff: Vec<String> = Vec::new();
    for (k, ev) in &e {
        match a.get(k) {
            None => diff.push(format!("/{}: missing ({})", show(k), ev.kind)),
            Some(av) => {
                for d in ev.diff(av) {
                    diff.push(format!("/{}: {d}", show(k)));
                }
            }
        }
    }
    for (k, av) in a.iter().filter(|(k, _)| !e.contains_key(*k)) {
        diff.push(format!("/{}: unexpected ({})", show(k), av.kind));
    }
    const SHOWN: usize = 40;
    let more = diff.len().saturating_sub(SHOWN);
    assert!(
        diff.is_empty(),
        "{} does not reproduce {} ({} entries compared, {} differences):\n{}{}",
        actual.display(),
        expected.display(),
        e.len(),
        diff.len(),
        diff[..diff.len().min(SHOWN)].join("\n"),
        if more > 0 {
            format!("\n... and {more} more")
        } else {
            String::new()
        }
    );
}
