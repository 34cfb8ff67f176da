//! Where repository files live. The rest of cellar talks to these traits only and
//! never knows whether the bytes are on a local disk or in an object store.
//!
//! Contracts every backend keeps (the conformance suite in tests/ checks them):
//! - `write` is atomic: after it returns Ok the whole file is visible under its
//!   name; after a crash either the whole file or nothing is there. It may be
//!   called again with the same name and bytes (retries) and must then succeed.
//! - `create_new` writes only when no file of that name exists; it reports
//!   `Ok(false)` otherwise. Backends without a native conditional create
//!   say so in [`Properties::conditional_create`].
//! - `flush` makes everything written so far durable: callers flush after data
//!   packs and before the index that references them, and so on up (format-spec/05).
//! - A missing file is reported as `std::io::ErrorKind::NotFound`.

pub mod local;
pub mod retry;
pub mod s3;

use std::io;

/// The kinds of file a repository holds, each in its own namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    /// Deletion marks written by prune (format-spec/05, §5.7).
    Mark,
}

impl FileType {
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Mark => "marks",
        }
    }

    pub const ALL: [FileType; 7] = [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Lock,
        FileType::Mark,
    ];
}

/// What differs between backends.
#[derive(Clone, Copy, Debug)]
pub struct Properties {
    /// `create_new` is atomic against concurrent writers.
    pub conditional_create: bool,
    /// Reading a byte range costs about as much as its length (no per-request latency to amortise).
    pub cheap_ranged_reads: bool,
    /// Pack uploads worth running at once (a local disk needs one writer; an
    /// object store hides its latency behind several).
    pub connections: usize,
}

pub trait ReadBackend: Send + Sync {
    /// Human-readable location, used in error messages.
    fn location(&self) -> String;
    fn properties(&self) -> Properties;
    /// Reads a whole file.
    fn read(&self, t: FileType, name: &str) -> io::Result<Vec<u8>>;
    /// Reads `len` bytes at `offset`; a short file is an `UnexpectedEof` error.
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>>;
    /// Lists the files of a kind with their sizes. Order is unspecified.
    fn list(&self, t: FileType) -> io::Result<Vec<(String, u64)>>;
    /// Size of one file.
    fn size(&self, t: FileType, name: &str) -> io::Result<u64>;
    /// Whether anything at all is stored at this location.
    fn is_empty(&self) -> io::Result<bool>;
}

pub trait WriteBackend: ReadBackend {
    /// Creates the layout; called once by `init` on an empty location.
    fn create(&self) -> io::Result<()>;
    /// Writes a whole file atomically (see the module contracts).
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<()>;
    /// Writes only if absent; `Ok(false)` when a file of that name exists.
    fn create_new(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<bool>;
    /// Removes a file; removing a missing file is not an error.
    fn remove(&self, t: FileType, name: &str) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> io::Result<()>;
}

/// How to reach a repository beyond its location (the CLI's global options).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Address S3 buckets as `endpoint/bucket` rather than `bucket.endpoint`
    /// (always so with a custom endpoint).
    pub s3_path_style: bool,
    /// Storage class of new packs on S3 (e.g. STANDARD_IA).
    pub s3_storage_class: Option<String>,
    /// Pack uploads in flight; None for the backend's default.
    pub connections: Option<usize>,
}

static OPTIONS: std::sync::RwLock<Option<Options>> = std::sync::RwLock::new(None);

/// Sets the options [`open`] uses for the rest of the process.
pub fn configure(opts: Options) {
    *OPTIONS.write().unwrap() = Some(opts);
}

/// Opens the backend a repository location names, with the options given to [`configure`].
pub fn open(location: &str) -> crate::Result<Box<dyn WriteBackend>> {
    let opts = OPTIONS.read().unwrap().clone().unwrap_or_default();
    open_with(location, &opts)
}

/// Opens `s3://BUCKET/PREFIX`, `local:DIR` or a plain directory.
pub fn open_with(location: &str, opts: &Options) -> crate::Result<Box<dyn WriteBackend>> {
    if location.starts_with("s3://") {
        let b = s3::S3Backend::new(location, opts)?;
        return Ok(Box::new(retry::RetryBackend::new(
            b,
            retry::Policy::default(),
        )));
    }
    let path = location.strip_prefix("local:").unwrap_or(location);
    Ok(Box::new(local::LocalBackend::new(path)))
}
