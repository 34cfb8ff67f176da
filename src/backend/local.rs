//! A repository in a directory on a local or mounted disk.
//!
//! Writes go to a temporary file in the target folder and are renamed into place,
//! so a reader never sees half a file. Durability is batched: `flush` calls
//! syncfs(2) once instead of an fsync per pack.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{FileType, Properties, ReadBackend, WriteBackend};

pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, t: FileType, name: &str) -> PathBuf {
        match t {
            FileType::Config => self.root.join("config"),
            FileType::Pack => {
                let sub = name.get(..2).unwrap_or("00");
                self.root.join("data").join(sub).join(name)
            }
            _ => self.root.join(t.dir()).join(name),
        }
    }

    fn write_tmp_then(&self, path: &Path, data: &[u8], exclusive: bool) -> io::Result<bool> {
        let dir = path.parent().expect("repository paths have a parent");
        let tmp = dir.join(format!(
            ".tmp-{}",
            hex::encode(crate::crypto::random_bytes::<8>())
        ));
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let res = f.write_all(data).and_then(|_| {
            if exclusive {
                // Exclusive creates (locks, keys) are rare and must not be lost.
                f.sync_all()
            } else {
                Ok(())
            }
        });
        drop(f);
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if exclusive {
            // link(2) fails if the name exists: an atomic create-if-absent.
            let r = fs::hard_link(&tmp, path);
            let _ = fs::remove_file(&tmp);
            match r {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        } else {
            fs::rename(&tmp, path).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
            Ok(true)
        }
    }
}

impl ReadBackend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn properties(&self) -> Properties {
        Properties {
            conditional_create: true,
            cheap_ranged_reads: true,
            // O_DIRECT writes run at device speed from one thread; a second
            // writer would only hold another 16 MiB pack in memory.
            connections: 1,
        }
    }

    fn read(&self, t: FileType, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(t, name))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let f = File::open(self.path(t, name))?;
        let len = usize::try_from(len).map_err(|_| io::Error::other("range too large"))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn list(&self, t: FileType) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match t {
            FileType::Config => {
                if let Ok(m) = fs::metadata(self.path(t, "config")) {
                    out.push(("config".to_string(), m.len()));
                }
            }
            FileType::Pack => {
                let data = self.root.join("data");
                for sub in read_dir_or_empty(&data)? {
                    let sub = sub?;
                    if !sub.file_type()?.is_dir() {
                        continue;
                    }
                    list_files(&sub.path(), &mut out)?;
                }
            }
            _ => list_files(&self.root.join(t.dir()), &mut out)?,
        }
        Ok(out)
    }

    fn size(&self, t: FileType, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(t, name))?.len())
    }

    fn is_empty(&self) -> io::Result<bool> {
        match fs::read_dir(&self.root) {
            // A fresh mount point holds only an empty lost+found.
            Ok(it) => Ok(it.filter_map(|e| e.ok()).all(|e| {
                e.file_name() == "lost+found"
                    && fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_none())
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }
}

fn read_dir_or_empty(p: &Path) -> io::Result<Box<dyn Iterator<Item = io::Result<fs::DirEntry>>>> {
    match fs::read_dir(p) {
        Ok(it) => Ok(Box::new(it)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

fn list_files(dir: &Path, out: &mut Vec<(String, u64)>) -> io::Result<()> {
    for e in read_dir_or_empty(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue; // temporary files of unfinished writes
        }
        let m = e.metadata()?;
        if m.is_file() {
            out.push((name.to_string(), m.len()));
        }
    }
    Ok(())
}

impl WriteBackend for LocalBackend {
    fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        for t in FileType::ALL {
            if t != FileType::Config {
                fs::create_dir_all(self.root.join(t.dir()))?;
            }
        }
        // All 256 pack folders up front: no mkdir on the hot path, and a
        // listing can tell a complete layout at a glance.
        for i in 0..=255u8 {
            fs::create_dir_all(self.root.join("data").join(hex::encode([i])))?;
        }
        Ok(())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<()> {
        let p = self.path(t, name);
        if t == FileType::Pack && data.len() >= DIRECT_MIN {
            match write_direct(&p, data) {
                Ok(()) => return Ok(()),
                // File systems without O_DIRECT (tmpfs, some FUSE and network
                // mounts) take the buffered path.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        match self.write_tmp_then(&p, data, false) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(p.parent().unwrap())?;
                self.write_tmp_then(&p, data, false).map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    fn create_new(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<bool> {
        let p = self.path(t, name);
        self.write_tmp_then(&p, data, true)
    }

    fn remove(&self, t: FileType, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(t, name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn flush(&self) -> io::Result<()> {
        let f = File::open(&self.root)?;
        // syncfs flushes the whole file system the repository lives on in one call:
        // every pack written so far, their directory entries, and the renames.
        let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Packs at least this large bypass the page cache.
const DIRECT_MIN: usize = 1 << 20;
const ALIGN: usize = 4096;

/// A page-aligned buffer for O_DIRECT writes, reused per writer thread.
struct AlignedBuf {
    ptr: *mut u8,
    cap: usize,
}

impl AlignedBuf {
    fn with_capacity(cap: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(cap, ALIGN).expect("valid layout");
        // SAFETY: the layout has a non-zero size (callers pass at least DIRECT_MIN).
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, cap }
    }

    fn slice(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.cap);
        // SAFETY: ptr is valid for cap bytes, owned by self, and u8 has no invalid values
        // once written; callers fill the whole slice before reading it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.cap, ALIGN).expect("valid layout");
        // SAFETY: allocated in with_capacity with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

thread_local! {
    static DIRECT_BUF: std::cell::RefCell<Option<AlignedBuf>> = const { std::cell::RefCell::new(None) };
}

/// Writes a pack with O_DIRECT: the data goes from one aligned copy straight to the
/// device instead of through the page cache, whose copy-in costs more CPU than
/// compressing and encrypting the pack. The padded tail is truncated away, then
/// the file is renamed into place like every other write.
fn write_direct(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("repository paths have a parent");
    let tmp = dir.join(format!(
        ".tmp-{}",
        hex::encode(crate::crypto::random_bytes::<8>())
    ));
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(&tmp);
    let f = match f {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_DIRECT)
                .open(&tmp)?
        }
        r => r?,
    };
    let padded = data.len().div_ceil(ALIGN) * ALIGN;
    let res = DIRECT_BUF.with(|cell| -> io::Result<()> {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|b| b.cap < padded) {
            *cell = Some(AlignedBuf::with_capacity(padded.max(32 << 20)));
        }
        let buf = cell.as_mut().unwrap().slice(padded);
        buf[..data.len()].copy_from_slice(data);
        buf[data.len()..].fill(0);
        f.write_all_at(buf, 0)?;
        f.set_len(data.len() as u64)
    });
    drop(f);
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

// Used by tests that damage repositories on purpose.
#[doc(hidden)]
pub fn flip_byte(path: &Path, offset: u64) -> io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&[b[0] ^ 0x55])?;
    Ok(())
}
