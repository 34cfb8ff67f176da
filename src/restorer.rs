//! Restore: resolve a snapshot path, create the directory skeleton, write files
//! in parallel (preallocated), then apply metadata deepest-first so directory
//! mtimes survive. Nothing is ever written outside the target: every name was
//! checked when its tree was decoded, and existing symlinks in the target are
//! replaced, never followed.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::id::BlobId;
use crate::repository::Repository;
use crate::tree::{Kind, Node};

pub trait Progress: Send + Sync {
    fn bytes_done(&self, _n: u64) {}
    fn warn(&self, _msg: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

pub struct RestoreOptions {
    pub target: PathBuf,
    /// Path inside the snapshot ("/" for all).
    pub subpath: String,
}

#[derive(Debug, Default)]
pub struct RestoreResult {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// One line per entry that failed (its path and why, with object ids).
    pub errors: Vec<String>,
}

struct Item {
    rel: PathBuf,
    node: Node,
}

/// Finds the node at `subpath` below the root tree (the root itself for "/").
pub fn resolve(repo: &Repository, root: BlobId, subpath: &str) -> Result<Node> {
    let mut node = Node::new(Vec::new(), Kind::Dir);
    node.subtree = Some(root);
    node.mode = 0o755;
    for comp in subpath.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let Some(tree) = node.subtree.filter(|_| node.kind == Kind::Dir) else {
            return Err(Error::NotFound(format!(
                "{subpath}: not a directory in the snapshot"
            )));
        };
        let children = repo.load_tree(&tree)?;
        node = children
            .into_iter()
            .find(|n| n.name == comp.as_bytes())
            .ok_or_else(|| Error::NotFound(format!("{subpath}: no such path in the snapshot")))?;
    }
    Ok(node)
}

/// Lists everything below a directory node, parents before children.
fn collect(
    repo: &Repository,
    dir: &Node,
    rel: &Path,
    out: &mut Vec<Item>,
    errors: &mut Vec<String>,
) {
    let Some(tree) = dir.subtree else { return };
    let children = match repo.load_tree(&tree) {
        Ok(c) => c,
        Err(e) => {
            errors.push(format!("{}: {e}", display_rel(rel)));
            return;
        }
    };
    for child in children {
        let crel = rel.join(child.name_os());
        let is_dir = child.kind == Kind::Dir;
        out.push(Item {
            rel: crel.clone(),
            node: child,
        });
        if is_dir {
            let idx = out.len() - 1;
            let node = out[idx].node.clone();
            collect(repo, &node, &crel, out, errors);
        }
    }
}

fn display_rel(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        "/".into()
    } else {
        format!("/{}", rel.display())
    }
}

/// Removes whatever is at `p` unless it is a real directory (never follows a symlink).
fn clear_for_dir(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn clear_for_file(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn restore(
    repo: &Repository,
    root: BlobId,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreResult> {
    let top = resolve(repo, root, &opts.subpath)?;
    let mut items = Vec::new();
    let mut result = RestoreResult::default();
    let target = &opts.target;
    match fs::symlink_metadata(target) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::InvalidArgument(format!(
                "target {} exists and is not a directory",
                target.display()
            )));
        }
        Ok(_) => {}
        Err(_) => fs::create_dir_all(target).at(target)?,
    }
    let root_rel = PathBuf::new();
    if top.kind == Kind::Dir {
        collect(repo, &top, &root_rel, &mut items, &mut result.errors);
    } else {
        items.push(Item {
            rel: PathBuf::from(top.name_os()),
            node: top.clone(),
        });
    }

    // 1. Directories, parents first.
    for it in items.iter().filter(|i| i.node.kind == Kind::Dir) {
        let p = target.join(&it.rel);
        let r = clear_for_dir(&p).and_then(|_| match fs::create_dir(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        });
        if let Err(e) = r {
            result.errors.push(format!("{}: {e}", p.display()));
        }
        result.dirs += 1;
    }

    // 2. Files in parallel; hard links (same dev/inode, nlink > 1) are linked to the first.
    let mut link_first: HashMap<(u64, u64), usize> = HashMap::new();
    let mut links: Vec<(usize, usize)> = Vec::new();
    let mut files: Vec<usize> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if it.node.kind != Kind::File {
            continue;
        }
        if it.node.nlink > 1 && it.node.inode != 0 {
            match link_first.entry((it.node.dev, it.node.inode)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    links.push((*e.get(), i));
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        files.push(i);
    }
    let errors = Mutex::new(Vec::new());
    let bytes = AtomicU64::new(0);
    let failed: Vec<bool> = {
        let mut f = vec![false; items.len()];
        let res: Vec<(usize, bool)> = files
            .par_iter()
            .map(|&i| {
                let it = &items[i];
                let p = target.join(&it.rel);
                match restore_file(repo, &p, &it.node, progress) {
                    Ok(n) => {
                        bytes.fetch_add(n, Ordering::Relaxed);
                        (i, false)
                    }
                    Err(e) => {
                        let _ = fs::remove_file(&p);
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("{}: {e}", display_rel(&it.rel)));
                        (i, true)
                    }
                }
            })
            .collect();
        for (i, bad) in res {
            f[i] = bad;
        }
        f
    };
    result.errors.extend(errors.into_inner().unwrap());
    result.files = files.len() as u64 - failed.iter().filter(|b| **b).count() as u64;
    result.bytes = bytes.load(Ordering::Relaxed);
    for (first, other) in links {
        let a = target.join(&items[first].rel);
        let b = target.join(&items[other].rel);
        if failed[first] {
            continue;
        }
        if let Err(e) = clear_for_file(&b).and_then(|_| fs::hard_link(&a, &b)) {
            result.errors.push(format!("{}: {e}", b.display()));
        } else {
            result.files += 1;
        }
    }

    // 3. Symlinks and special files.
    for it in &items {
        let p = target.join(&it.rel);
        let r = match it.node.kind {
            Kind::Symlink => clear_for_file(&p).and_then(|_| {
                std::os::unix::fs::symlink(
                    std::ffi::OsStr::from_bytes_ext(&it.node.link_target),
                    &p,
                )
            }),
            Kind::Fifo | Kind::CharDev | Kind::BlockDev | Kind::Socket => clear_for_file(&p)
                .and_then(|_| fsmeta::mknod(&p, it.node.kind, it.node.mode, it.node.rdev)),
            _ => continue,
        };
        if let Err(e) = r {
            progress.warn(&format!("{}: {e}", p.display()));
            result.errors.push(format!("{}: {e}", p.display()));
        }
    }

    // 4. Metadata, deepest first so a directory's mtime is set after its children.
    let as_root = fsmeta::is_root();
    for (i, it) in items.iter().enumerate().rev() {
        if failed[i] {
            continue;
        }
        let p = target.join(&it.rel);
        if let Err(e) = apply_metadata(&p, &it.node, as_root) {
            result
                .errors
                .push(format!("{}: metadata: {e}", p.display()));
        }
    }
    if top.kind == Kind::Dir && !opts.subpath.trim_matches('/').is_empty() {
        let _ = apply_metadata(target, &top, as_root);
    }
    Ok(result)
}

trait FromBytesExt {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytesExt for std::ffi::OsStr {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn restore_file(repo: &Repository, p: &Path, node: &Node, progress: &dyn Progress) -> Result<u64> {
    crate::cancel::check()?;
    clear_for_file(p).at(p)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(p)
        .at(p)?;
    if node.size > 0 {
        // Preallocation: one extent instead of growing the file blob by blob.
        f.set_len(node.size).at(p)?;
    }
    let mut written = 0u64;
    for id in &node.content {
        let data = repo.read_blob(id)?;
        f.write_all(&data).at(p)?;
        written += data.len() as u64;
        progress.bytes_done(data.len() as u64);
    }
    if written != node.size {
        return Err(Error::corrupt(
            "file",
            p.display(),
            format!("content is {written} bytes but the tree says {}", node.size),
        ));
    }
    Ok(written)
}

fn apply_metadata(p: &Path, node: &Node, as_root: bool) -> std::io::Result<()> {
    if as_root {
        let uid = fsmeta::uid_for(&node.user).unwrap_or(node.uid);
        let gid = fsmeta::gid_for(&node.group).unwrap_or(node.gid);
        fsmeta::lchown(p, uid, gid)?;
    }
    for (k, v) in &node.xattrs {
        let name = <std::ffi::OsStr as FromBytesExt>::from_bytes_ext(k);
        // Not every target file system takes every namespace: best effort.
        let _ = xattr::set(p, name, v);
    }
    if node.kind != Kind::Symlink {
        fs::set_permissions(p, fs::Permissions::from_mode(node.mode & 0o7777))?;
    }
    fsmeta::set_times(p, node.mtime)
}
