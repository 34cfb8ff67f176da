//! `mount`: the repository as a read-only FUSE file system, so that ordinary
//! tools (ls, cp, grep, diff) can browse every snapshot without a restore.
//!
//! Layout below the mount point:
//!
//! ```text
//! snapshots/<local time>/...      one directory per snapshot (its root tree)
//! snapshots/latest -> <time>      the newest snapshot
//! ids/<short id> -> ../snapshots/<time>
//! hosts/<host>/<time> -> ../../snapshots/<time>, and hosts/<host>/latest
//! ```
//!
//! Directory names are the snapshot times in the local zone
//! (`2026-11-20T03:00:00`), so a name is also a valid `@TIME` selector; two
//! snapshots of the same second get their short id appended.
//!
//! Trees are loaded when a directory is first looked at, and inode numbers are
//! handed out then: memory grows with what is browsed, not with the
//! repository. File content is read blob by blob through a small shared cache
//! (the kernel asks for 128 KiB at a time and blobs are larger), and the
//! kernel may keep pages cached across opens because snapshots never change.
//! The snapshot list is re-read at most every `refresh` interval, when the
//! top-level directories are looked at.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyXattr, Request, SessionACL,
};

use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::repofile::Snapshot;
use crate::repository::Repository;
use crate::tree::{Kind, Node};

/// Snapshot contents never change: the kernel may cache them for long.
const TTL_SNAPSHOT: Duration = Duration::from_secs(3600);
/// The top-level directories change when snapshots are added or forgotten.
const TTL_TOP: Duration = Duration::from_secs(1);
/// Decrypted blobs kept for reads in progress: enough for several large
/// files read at once, small next to a backup's memory.
const BLOB_CACHE_BYTES: usize = 64 << 20;
/// Preferred I/O size reported to tools such as cp.
const BLKSIZE: u32 = 128 << 10;

#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Let other users in (FUSE `allow_other`); the kernel then enforces the
    /// snapshot's own permissions (`default_permissions`).
    pub allow_other: bool,
    /// How old the snapshot list may get before it is re-read.
    pub refresh: Duration,
    /// Request threads.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            allow_other: false,
            refresh: Duration::from_secs(30),
            threads: 4,
        }
    }
}

/// Why FUSE cannot be used here, or None when it can. /dev/fuse must open
/// for us even when not root: fuser then falls back to the fusermount helper
/// for the mount itself, but only after opening the device.
pub fn unavailable() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(
            "/dev/fuse does not exist (load the fuse kernel module, or in a container \
             pass the device in)"
                .into(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "/dev/fuse: {e} (as a user other than root it must be readable and writable \
             by you, mode 0666 as most distributions set it, with fusermount3 installed)"
        )),
        Err(e) => Some(format!("/dev/fuse: {e}")),
    }
}

/// A mounted repository; dropping it (or [`Mounted::unmount`]) unmounts.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    mountpoint: std::path::PathBuf,
}

/// What [`Mounted::unmount`] could do.
pub enum Unmounted {
    Done,
    /// Files were still open: the mount point was detached (it is gone for new
    /// lookups), and the open files are served until closed; wait for
    /// [`Mounted::finished`].
    Detached(Mounted),
}

impl Mounted {
    /// Whether the file system went away (`umount`, `fusermount -u`, or the
    /// last open file of a detached mount closed).
    pub fn finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    pub fn unmount(mut self) -> Result<Unmounted> {
        let Some(s) = self.session.take() else {
            return Ok(Unmounted::Done);
        };
        let err =
            |e: std::io::Error| Error::Other(format!("unmount {}: {e}", self.mountpoint.display()));
        if s.guard.is_finished() {
            s.join().map_err(err)?;
            return Ok(Unmounted::Done);
        }
        let path = std::ffi::CString::new(self.mountpoint.as_os_str().as_bytes())
            .map_err(|e| Error::Other(e.to_string()))?;
        // SAFETY: a valid C string; umount2 has no other preconditions.
        if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
            s.join().map_err(err)?;
            return Ok(Unmounted::Done);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBUSY) {
            // A plain unmount would fail until every file is closed; detaching
            // hides the mount now and lets readers finish.
            // SAFETY: as above.
            if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
                self.session = Some(s);
                return Ok(Unmounted::Detached(self));
            }
        }
        // Not allowed to unmount directly (not root): fuser goes through fusermount.
        s.umount_and_join().map_err(err)?;
        Ok(Unmounted::Done)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

/// Mounts the repository at `mountpoint` and serves it from background threads.
pub fn mount(repo: Arc<Repository>, mountpoint: &Path, opts: &MountOptions) -> Result<Mounted> {
    let meta = std::fs::metadata(mountpoint).map_err(|e| Error::io(mountpoint, e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: not a directory",
            mountpoint.display()
        )));
    }
    if let Some(why) = unavailable() {
        return Err(Error::Other(format!("FUSE is not available: {why}")));
    }
    let fs = Fs::new(repo, opts.refresh)?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
        MountOption::FSName("cellar".into()),
        MountOption::Subtype("cellar".into()),
    ];
    if opts.allow_other {
        config.acl = SessionACL::All;
        config.mount_options.push(MountOption::DefaultPermissions);
    }
    config.n_threads = Some(opts.threads.max(1));
    let session = fuser::spawn_mount(fs, mountpoint, &config)
        .map_err(|e| Error::Other(format!("mounting {}: {e}", mountpoint.display())))?;
    Ok(Mounted {
        session: Some(session),
        mountpoint: mountpoint
            .canonicalize()
            .map_err(|e| Error::io(mountpoint, e))?,
    })
}

/// What an inode is.
enum What {
    /// A directory of fixed entries (the root, snapshots/, ids/, hosts/...).
    Top,
    /// A snapshot's root directory.
    Snapshot { tree: BlobId, time: SystemTime },
    /// An entry inside a snapshot.
    Node(Arc<Node>),
    /// A symbolic link made up by the mount (latest, ids/...).
    Link(Vec<u8>),
}

/// A directory's entries (name, inode), sorted by name.
type Entries = Arc<Vec<(Vec<u8>, u64)>>;
/// Made-up links by name, with their targets.
type Links = Vec<(Vec<u8>, Vec<u8>)>;

struct Inode {
    parent: u64,
    name: Vec<u8>,
    what: What,
    /// Directory entries sorted by name, filled on first use.
    children: RwLock<Option<Entries>>,
}

/// Inode table; numbers are indexes + 1 (1 is the root).
struct Table {
    inodes: Vec<Arc<Inode>>,
    /// Snapshot directories and made-up links keep their numbers across refreshes.
    snapshot_dirs: HashMap<SnapshotId, u64>,
    links: HashMap<(u64, Vec<u8>, Vec<u8>), u64>,
    tops: HashMap<Vec<u8>, u64>,
}

impl Table {
    fn add(&mut self, parent: u64, name: Vec<u8>, what: What) -> u64 {
        self.inodes.push(Arc::new(Inode {
            parent,
            name,
            what,
            children: RwLock::new(None),
        }));
        self.inodes.len() as u64
    }

    /// A top-level directory at `path` ("" is the root), made once.
    fn top(&mut self, parent: u64, path: &[u8], name: &[u8]) -> u64 {
        if let Some(&ino) = self.tops.get(path) {
            return ino;
        }
        let ino = self.add(parent, name.to_vec(), What::Top);
        self.tops.insert(path.to_vec(), ino);
        ino
    }

    fn link(&mut self, parent: u64, name: &[u8], target: Vec<u8>) -> u64 {
        let key = (parent, name.to_vec(), target.clone());
        if let Some(&ino) = self.links.get(&key) {
            return ino;
        }
        let ino = self.add(parent, name.to_vec(), What::Link(target));
        self.links.insert(key, ino);
        ino
    }

    fn set_children(&self, ino: u64, mut entries: Vec<(Vec<u8>, u64)>) {
        entries.sort();
        entries.dedup_by(|a, b| a.0 == b.0);
        *self.inodes[ino as usize - 1].children.write().unwrap() = Some(Arc::new(entries));
    }
}

/// An open file: its blobs and where each ends in the file.
struct OpenFile {
    node: Arc<Node>,
    ends: Vec<u64>,
}

/// Decrypted blobs, evicted oldest first once over the byte budget.
#[derive(Default)]
struct BlobCache {
    map: HashMap<BlobId, Arc<Vec<u8>>>,
    order: VecDeque<BlobId>,
    bytes: usize,
}

impl BlobCache {
    fn get(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.map.get(id).cloned()
    }

    fn put(&mut self, id: BlobId, data: Arc<Vec<u8>>) {
        if self.map.contains_key(&id) {
            return;
        }
        self.bytes += data.len();
        self.map.insert(id, data);
        self.order.push_back(id);
        while self.bytes > BLOB_CACHE_BYTES && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front()
                && let Some(d) = self.map.remove(&old)
            {
                self.bytes -= d.len();
            }
        }
    }
}

struct Fs {
    repo: Arc<Repository>,
    table: RwLock<Table>,
    /// Serialises refreshes; holds when the snapshot list was last read.
    refreshed: Mutex<Instant>,
    refresh: Duration,
    mounted_at: SystemTime,
    uid: u32,
    gid: u32,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    blobs: Mutex<BlobCache>,
}

impl Fs {
    fn new(repo: Arc<Repository>, refresh: Duration) -> Result<Fs> {
        let mut table = Table {
            inodes: Vec::new(),
            snapshot_dirs: HashMap::new(),
            links: HashMap::new(),
            tops: HashMap::new(),
        };
        let root = table.top(1, b"", b"");
        debug_assert_eq!(root, 1);
        let fs = Fs {
            repo,
            table: RwLock::new(table),
            refreshed: Mutex::new(Instant::now()),
            refresh,
            mounted_at: SystemTime::now(),
            // SAFETY: plain getters without failure modes.
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            blobs: Mutex::new(BlobCache::default()),
        };
        let snaps = fs.repo.snapshots()?;
        fs.rebuild_top(&snaps);
        Ok(fs)
    }

    fn inode(&self, ino: INodeNo) -> Option<Arc<Inode>> {
        let i = u64::from(ino);
        let t = self.table.read().unwrap();
        i.checked_sub(1)
            .and_then(|i| t.inodes.get(i as usize))
            .cloned()
    }

    /// Re-reads the snapshot list when it is older than the refresh interval.
    fn maybe_refresh(&self) {
        let mut last = self.refreshed.lock().unwrap();
        if last.elapsed() < self.refresh {
            return;
        }
        *last = Instant::now();
        let r = self
            .repo
            .sync_snapshots()
            .and_then(|()| self.repo.sync_index())
            .and_then(|()| self.repo.snapshots());
        match r {
            Ok(snaps) => self.rebuild_top(&snaps),
            Err(e) => eprintln!("cellar mount: refreshing the snapshot list: {e}"),
        }
    }

    /// (Re)builds root, snapshots/, ids/ and hosts/ from the snapshot list.
    fn rebuild_top(&self, snaps: &[(SnapshotId, Snapshot)]) {
        let times: Vec<_> = snaps.iter().map(|(id, s)| (*id, s.timestamp())).collect();
        let names = dir_names(&times);
        let mut t = self.table.write().unwrap();
        let snapshots = t.top(1, b"snapshots", b"snapshots");
        let ids = t.top(1, b"ids", b"ids");
        let hosts = t.top(1, b"hosts", b"hosts");
        t.set_children(
            1,
            vec![
                (b"snapshots".to_vec(), snapshots),
                (b"ids".to_vec(), ids),
                (b"hosts".to_vec(), hosts),
            ],
        );

        let mut snap_entries = Vec::new();
        let mut id_entries = Vec::new();
        let mut by_host: HashMap<&str, Links> = HashMap::new();
        for ((id, snap), name) in snaps.iter().zip(&names) {
            let Ok(tree) = BlobId::from_hex(&snap.tree) else {
                continue;
            };
            let ino = match t.snapshot_dirs.get(id) {
                Some(&ino) => ino,
                None => {
                    let time = to_system_time(snap.timestamp().as_second(), 0);
                    let ino = t.add(
                        snapshots,
                        name.as_bytes().to_vec(),
                        What::Snapshot { tree, time },
                    );
                    t.snapshot_dirs.insert(*id, ino);
                    ino
                }
            };
            snap_entries.push((name.as_bytes().to_vec(), ino));
            let target = format!("../snapshots/{name}").into_bytes();
            id_entries.push((id.short().into_bytes(), target));
            by_host.entry(snap.hostname.as_str()).or_default().push((
                name.as_bytes().to_vec(),
                format!("../../snapshots/{name}").into_bytes(),
            ));
        }
        if let Some(latest) = names.last() {
            let ino = t.link(snapshots, b"latest", latest.as_bytes().to_vec());
            snap_entries.push((b"latest".to_vec(), ino));
        }
        t.set_children(snapshots, snap_entries);

        let id_entries = id_entries
            .into_iter()
            .map(|(name, target)| {
                let ino = t.link(ids, &name, target);
                (name, ino)
            })
            .collect();
        t.set_children(ids, id_entries);

        let mut host_entries = Vec::new();
        for (host, mut links) in by_host {
            let host = if host.is_empty() || host.contains('/') || host == "." || host == ".." {
                "unknown-host"
            } else {
                host
            };
            let mut path = b"hosts/".to_vec();
            path.extend_from_slice(host.as_bytes());
            let dir = t.top(hosts, &path, host.as_bytes());
            // Snapshots come oldest first: latest points at the last sibling.
            if let Some((newest, _)) = links.last() {
                let newest = newest.clone();
                links.push((b"latest".to_vec(), newest));
            }
            let entries = links
                .into_iter()
                .map(|(name, target)| {
                    let ino = t.link(dir, &name, target);
                    (name, ino)
                })
                .collect();
            t.set_children(dir, entries);
            host_entries.push((host.as_bytes().to_vec(), dir));
        }
        t.set_children(hosts, host_entries);
    }

    /// The entries of a directory inode, loading its tree on first use.
    fn children(&self, inode: &Inode, ino: u64) -> std::result::Result<Entries, Errno> {
        if matches!(inode.what, What::Top) && (ino == 1 || inode.parent == 1) {
            self.maybe_refresh();
        }
        if let Some(c) = inode.children.read().unwrap().as_ref() {
            return Ok(c.clone());
        }
        let tree = match &inode.what {
            What::Snapshot { tree, .. } => *tree,
            What::Node(n) if n.kind == Kind::Dir => match n.subtree {
                Some(t) => t,
                None => {
                    let empty = Arc::new(Vec::new());
                    *inode.children.write().unwrap() = Some(empty.clone());
                    return Ok(empty);
                }
            },
            What::Top => return Ok(Arc::new(Vec::new())),
            _ => return Err(Errno::ENOTDIR),
        };
        let nodes = self.repo.load_tree(&tree).map_err(|e| {
            eprintln!("cellar mount: {}: {e}", self.path_of(ino));
            Errno::EIO
        })?;
        let mut slot = inode.children.write().unwrap();
        // Another thread may have loaded it meanwhile: keep its inode numbers.
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let mut t = self.table.write().unwrap();
        let entries: Vec<(Vec<u8>, u64)> = nodes
            .into_iter()
            .map(|n| {
                let name = n.name.clone();
                let child = t.add(ino, name.clone(), What::Node(Arc::new(n)));
                (name, child)
            })
            .collect();
        drop(t);
        let entries = Arc::new(entries); // trees are sorted by name (checked when decoded)
        *slot = Some(entries.clone());
        Ok(entries)
    }

    /// The path of an inode below the mount point, for messages.
    fn path_of(&self, ino: u64) -> String {
        let t = self.table.read().unwrap();
        let mut parts = Vec::new();
        let mut i = ino;
        while i > 1 {
            let Some(n) = t.inodes.get(i as usize - 1) else {
                break;
            };
            parts.push(String::from_utf8_lossy(&n.name).into_owned());
            i = n.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn attr(&self, ino: u64, inode: &Inode) -> (FileAttr, Duration) {
        let dir = |time: SystemTime, perm: u16| FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind: FileType::Directory,
            perm,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: BLKSIZE,
        };
        match &inode.what {
            What::Top => (dir(self.mounted_at, 0o555), TTL_TOP),
            What::Snapshot { time, .. } => (dir(*time, 0o555), TTL_SNAPSHOT),
            What::Link(target) => {
                let mut a = dir(self.mounted_at, 0o777);
                a.kind = FileType::Symlink;
                a.nlink = 1;
                a.size = target.len() as u64;
                (a, TTL_TOP)
            }
            What::Node(n) => (node_attr(ino, n), TTL_SNAPSHOT),
        }
    }

    fn lookup_child(
        &self,
        parent: INodeNo,
        name: &OsStr,
    ) -> std::result::Result<(FileAttr, Duration), Errno> {
        let inode = self.inode(parent).ok_or(Errno::ENOENT)?;
        let children = self.children(&inode, parent.into())?;
        let name = name.as_bytes();
        let i = children
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .map_err(|_| Errno::ENOENT)?;
        let ino = children[i].1;
        let child = self.inode(INodeNo(ino)).ok_or(Errno::ENOENT)?;
        Ok(self.attr(ino, &child))
    }

    fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(b) = self.blobs.lock().unwrap().get(id) {
            return Ok(b);
        }
        let data = Arc::new(self.repo.read_blob(id)?);
        self.blobs.lock().unwrap().put(*id, data.clone());
        Ok(data)
    }

    fn read_range(&self, f: &OpenFile, offset: u64, size: usize) -> Result<Vec<u8>> {
        let end = f.ends.last().copied().unwrap_or(0);
        let stop = end.min(offset.saturating_add(size as u64));
        let mut out = Vec::with_capacity(stop.saturating_sub(offset) as usize);
        let mut pos = offset;
        // The first blob that ends after `pos`.
        let mut i = f.ends.partition_point(|&e| e <= pos);
        while pos < stop && i < f.node.content.len() {
            let start = if i == 0 { 0 } else { f.ends[i - 1] };
            let data = self.blob(&f.node.content[i])?;
            let from = (pos - start) as usize;
            let to = ((stop - start) as usize).min(data.len());
            if from >= to {
                break;
            }
            out.extend_from_slice(&data[from..to]);
            pos += (to - from) as u64;
            i += 1;
        }
        Ok(out)
    }
}

/// Directory names for snapshots sorted oldest first: local time to the
/// second, with the short id appended when two share a second.
fn dir_names(snaps: &[(SnapshotId, jiff::Timestamp)]) -> Vec<String> {
    let tz = jiff::tz::TimeZone::system();
    let base: Vec<String> = snaps
        .iter()
        .map(|(_, t)| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for b in &base {
        *count.entry(b).or_default() += 1;
    }
    base.iter()
        .zip(snaps)
        .map(|(b, (id, _))| {
            if count[b.as_str()] > 1 {
                format!("{b}-{}", id.short())
            } else {
                b.clone()
            }
        })
        .collect()
}

fn to_system_time(secs: i64, nanos: u32) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(nanos.min(999_999_999)));
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

fn node_attr(ino: u64, n: &Node) -> FileAttr {
    let kind = match n.kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
    };
    let size = match n.kind {
        Kind::File => n.size,
        Kind::Symlink => n.link_target.len() as u64,
        _ => 0,
    };
    let mtime = to_system_time(n.mtime.0, n.mtime.1);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: to_system_time(n.ctime.0, n.ctime.1),
        crtime: mtime,
        kind,
        perm: (n.mode & 0o7777) as u16,
        nlink: if n.kind == Kind::Dir { 2 } else { 1 },
        uid: n.uid,
        gid: n.gid,
        rdev: n.rdev as u32,
        flags: 0,
        blksize: BLKSIZE,
    }
}

/// Replies to a getxattr/listxattr call: the size when asked for it, the
/// value when it fits, ERANGE otherwise.
fn reply_xattr(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() <= size as usize {
        reply.data(data);
    } else {
        reply.error(Errno::ERANGE);
    }
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_child(parent, name) {
            Ok((attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Some(inode) => {
                let (attr, ttl) = self.attr(ino.into(), &inode);
                reply.attr(&ttl, &attr);
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino).as_deref().map(|i| &i.what) {
            Some(What::Link(t)) => reply.data(t),
            Some(What::Node(n)) if n.kind == Kind::Symlink => reply.data(&n.link_target),
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let node = match self.inode(ino).as_deref().map(|i| &i.what) {
            Some(What::Node(n)) if n.kind == Kind::File => n.clone(),
            Some(_) => return reply.error(Errno::EINVAL),
            None => return reply.error(Errno::ENOENT),
        };
        // Blob lengths come from the index: a file's layout is known before
        // any content is read, so reads at any offset go straight to the blob.
        let locs = match self.repo.cache().lookup_many(&node.content) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cellar mount: {}: {e}", self.path_of(ino.into()));
                return reply.error(Errno::EIO);
            }
        };
        let mut ends = Vec::with_capacity(locs.len());
        let mut end = 0u64;
        for (id, loc) in node.content.iter().zip(locs) {
            let Some(loc) = loc else {
                eprintln!(
                    "cellar mount: {}: blob {id} is not in the index",
                    self.path_of(ino.into())
                );
                return reply.error(Errno::EIO);
            };
            end += u64::from(loc.entry.raw_len);
            ends.push(end);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles
            .lock()
            .unwrap()
            .insert(fh, Arc::new(OpenFile { node, ends }));
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(f) = self.handles.lock().unwrap().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        match self.read_range(&f, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => {
                eprintln!("cellar mount: {}: {e}", self.path_of(ino.into()));
                reply.error(Errno::EIO);
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.handles.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inode(ino) {
            Some(i) if matches!(i.what, What::Snapshot { .. }) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_CACHE_DIR)
            }
            Some(i) if matches!(&i.what, What::Node(n) if n.kind == Kind::Dir) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_CACHE_DIR)
            }
            Some(i) if matches!(i.what, What::Top) => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(inode) = self.inode(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let children = match self.children(&inode, ino.into()) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let t = self.table.read().unwrap();
        let kind_of = |child: u64| match t.inodes.get(child as usize - 1).map(|i| &i.what) {
            Some(What::Node(n)) => node_attr(child, n).kind,
            Some(What::Link(_)) => FileType::Symlink,
            _ => FileType::Directory,
        };
        let dots = [
            (b".".to_vec(), u64::from(ino)),
            (b"..".to_vec(), inode.parent),
        ];
        let all = dots.iter().chain(children.iter());
        for (i, (name, child)) in all.enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(*child),
                (i + 1) as u64,
                kind_of(*child),
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.table.read().unwrap().inodes.len() as u64;
        reply.statfs(0, 0, 0, files, 0, BLKSIZE, 255, BLKSIZE);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.inode(ino).as_deref().map(|i| &i.what) {
            Some(What::Node(n)) => match n.xattrs.iter().find(|(k, _)| k == name.as_bytes()) {
                Some((_, v)) => reply_xattr(reply, size, v),
                None => reply.error(Errno::ENODATA),
            },
            Some(_) => reply.error(Errno::ENODATA),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut list = Vec::new();
        match self.inode(ino).as_deref().map(|i| &i.what) {
            Some(What::Node(n)) => {
                for (k, _) in &n.xattrs {
                    list.extend_from_slice(k);
                    list.push(0);
                }
            }
            Some(_) => {}
            None => return reply.error(Errno::ENOENT),
        }
        reply_xattr(reply, size, &list);
    }

    fn access(
        &self,
        _req: &Request,
        ino: INodeNo,
        mask: fuser::AccessFlags,
        reply: fuser::ReplyEmpty,
    ) {
        if self.inode(ino).is_none() {
            return reply.error(Errno::ENOENT);
        }
        if mask.bits() & libc::W_OK != 0 {
            return reply.error(Errno::EROFS);
        }
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u8, time: &str) -> (SnapshotId, jiff::Timestamp) {
        (SnapshotId([id; 32]), time.parse().unwrap())
    }

    #[test]
    fn names_disambiguate_same_second() {
        let names = dir_names(&[
            at(1, "2026-11-20T03:00:00.1Z"),
            at(2, "2026-11-20T03:00:00.7Z"),
            at(3, "2026-11-21T03:00:00Z"),
        ]);
        assert!(names[0].ends_with("-01010101"), "{names:?}");
        assert!(names[1].ends_with("-02020202"), "{names:?}");
        // A unique second keeps the bare time, which is also an @TIME selector.
        assert_eq!(names[2].len(), "2026-11-21T03:00:00".len(), "{names:?}");
        assert_eq!(names[0][..19], names[1][..19]);
    }

    #[test]
    fn blob_cache_stays_within_budget() {
        let mut c = BlobCache::default();
        for i in 0..100u8 {
            c.put(BlobId([i; 32]), Arc::new(vec![0; 4 << 20]));
        }
        assert!(c.bytes <= BLOB_CACHE_BYTES, "{}", c.bytes);
        assert!(c.get(&BlobId([99; 32])).is_some());
        assert!(c.get(&BlobId([0; 32])).is_none());
    }

    #[test]
    fn negative_times_convert() {
        let t = to_system_time(-1, 500_000_000);
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::from_millis(500)
        );
    }
}
