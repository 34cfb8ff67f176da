//! Reading and applying file metadata: ownership names, times, modes, xattrs.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use crate::tree::{Kind, Node};

static USERS: Mutex<Option<HashMap<u32, Option<String>>>> = Mutex::new(None);
static GROUPS: Mutex<Option<HashMap<u32, Option<String>>>> = Mutex::new(None);

pub fn user_name(uid: u32) -> Option<String> {
    let mut g = USERS.lock().unwrap();
    g.get_or_insert_with(HashMap::new)
        .entry(uid)
        .or_insert_with(|| lookup_user(uid))
        .clone()
}

pub fn group_name(gid: u32) -> Option<String> {
    let mut g = GROUPS.lock().unwrap();
    g.get_or_insert_with(HashMap::new)
        .entry(gid)
        .or_insert_with(|| lookup_group(gid))
        .clone()
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn lookup_group(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(
        unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The uid of a user name. Cached, hits and misses alike: restore asks once per
/// file and directory, and each uncached lookup goes through NSS (nscd socket,
/// nsswitch.conf, /etc/passwd), a dozen syscalls.
pub fn uid_for(name: &str) -> Option<u32> {
    static CACHE: Mutex<Option<HashMap<String, Option<u32>>>> = Mutex::new(None);
    let mut g = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(v) = map.get(name) {
        return *v;
    }
    let v = lookup_uid(name);
    map.insert(name.to_owned(), v);
    v
}

/// The gid of a group name, cached like [`uid_for`].
pub fn gid_for(name: &str) -> Option<u32> {
    static CACHE: Mutex<Option<HashMap<String, Option<u32>>>> = Mutex::new(None);
    let mut g = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(v) = map.get(name) {
        return *v;
    }
    let v = lookup_gid(name);
    map.insert(name.to_owned(), v);
    v
}

fn lookup_uid(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

fn lookup_gid(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

pub fn kind_of(ft: std::fs::FileType) -> Kind {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::CharDev
    } else if ft.is_block_device() {
        Kind::BlockDev
    } else {
        Kind::File
    }
}

/// A node with the metadata of `m` (content and subtree are filled in later).
pub fn node_from_metadata(name: Vec<u8>, m: &std::fs::Metadata) -> Node {
    let kind = kind_of(m.file_type());
    let mut n = Node::new(name, kind);
    n.mode = m.mode() & 0o7777;
    n.uid = m.uid();
    n.gid = m.gid();
    n.user = user_name(n.uid).unwrap_or_default();
    n.group = group_name(n.gid).unwrap_or_default();
    n.mtime = (m.mtime(), m.mtime_nsec() as u32);
    n.ctime = (m.ctime(), m.ctime_nsec() as u32);
    n.dev = m.dev();
    n.inode = m.ino();
    n.nlink = m.nlink() as u32;
    n.size = if kind == Kind::File { m.len() } else { 0 };
    n.rdev = if matches!(kind, Kind::CharDev | Kind::BlockDev) {
        m.rdev()
    } else {
        0
    };
    n
}

/// Extended attributes of a path (not following symlinks). Unsupported file
/// systems simply have none.
pub fn read_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names {
        if let Ok(Some(v)) = xattr::get(path, &name) {
            if name.len() <= crate::tree::MAX_XATTR_NAME && v.len() <= crate::tree::MAX_XATTR_VALUE
            {
                out.push((name.as_bytes().to_vec(), v));
            }
        }
    }
    out.sort();
    out
}

fn cpath(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Sets mtime (and atime to the same) without following symlinks.
pub fn set_times(path: &Path, mtime: (i64, u32)) -> std::io::Result<()> {
    let c = cpath(path)?;
    let ts = libc::timespec {
        tv_sec: mtime.0 as libc::time_t,
        tv_nsec: mtime.1 as libc::c_long,
    };
    let times = [ts, ts];
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn lchown(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let c = cpath(path)?;
    if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn mknod(path: &Path, kind: Kind, mode: u32, rdev: u64) -> std::io::Result<()> {
    let c = cpath(path)?;
    let fmt = match kind {
        Kind::Fifo => libc::S_IFIFO,
        Kind::CharDev => libc::S_IFCHR,
        Kind::BlockDev => libc::S_IFBLK,
        Kind::Socket => libc::S_IFSOCK,
        _ => return Err(std::io::Error::other("not a special file")),
    };
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            fmt | (mode & 0o7777) as libc::mode_t,
            rdev as libc::dev_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
