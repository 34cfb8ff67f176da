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
            Ok(mut it) => Ok(it.next().is_none()),
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
