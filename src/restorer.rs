//! Restore: resolve a snapshot path, create the directory skeleton, write files
//! in parallel (preallocated), then apply metadata deepest-first so directory
//! mtimes survive. Nothing is ever written outside the target: every name was
//! checked when its tree was decoded, and existing symlinks in the target are
//! replaced, never followed.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::id::BlobId;
use crate::pack::BlobEntry;
use crate::repository::{READ_BUDGET, Repository};
use crate::tree::{Kind, Node};

pub trait Progress: Send + Sync {
    fn bytes_done(&self, _n: u64) {}
    fn warn(&self, _msg: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// What to do with a file that already exists in the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Always write it again.
    Always,
    /// Leave it when it is a regular file whose size and mtime (to the
    /// nanosecond) match the snapshot's: a second restore into the same
    /// target then reads no pack at all. Use `verify` for byte-level certainty.
    #[default]
    IfChanged,
    /// Never replace anything that exists.
    Never,
}

#[derive(Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Path inside the snapshot ("/" for all).
    pub subpath: String,
    /// gitignore-style patterns matched against absolute paths in the snapshot.
    /// With includes, only what they match (and the directories above it) is restored.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub overwrite: Overwrite,
    /// Remove what the target holds and the snapshot does not (within the
    /// include/exclude scope: an excluded path is never deleted).
    pub delete: bool,
    /// Decide everything, write nothing.
    pub dry_run: bool,
    /// Re-read every selected file afterwards and check it blob by blob.
    pub verify: bool,
}

#[derive(Debug, Default)]
pub struct RestoreResult {
    /// Files written (for a dry run: that would be written).
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Files left as they were because the target already had them.
    pub skipped: u64,
    /// Target entries removed by `delete` (a removed directory counts once).
    pub deleted: u64,
    /// Files re-read and found equal to the snapshot by `verify`.
    pub verified: u64,
    /// One line per entry that failed (its path and why, with object ids).
    pub errors: Vec<String>,
}

/// A path to restore. Nodes are borrowed from the loaded trees: a copy of
/// every node would be tens of MiB for a large snapshot.
struct Item<'a> {
    rel: PathBuf,
    node: &'a Node,
    /// The directory item this one is in (None: directly in the target).
    parent: Option<usize>,
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

/// Every tree below `top`, loaded a directory level at a time (see
/// [`Repository::load_trees`]); a tree that cannot be loaded maps to its error.
fn load_all_trees(repo: &Repository, top: &Node) -> Result<HashMap<BlobId, Result<Vec<Node>>>> {
    let mut trees: HashMap<BlobId, Result<Vec<Node>>> = HashMap::new();
    let mut level: Vec<BlobId> = top.subtree.into_iter().collect();
    while !level.is_empty() {
        level.sort_unstable();
        level.dedup();
        // Identical directories share a tree: each is loaded once.
        level.retain(|id| !trees.contains_key(id));
        let loaded = repo.load_trees(&level)?;
        let mut next = Vec::new();
        for (id, r) in level.into_iter().zip(loaded) {
            if let Ok(nodes) = &r {
                next.extend(
                    nodes
                        .iter()
                        .filter(|n| n.kind == Kind::Dir)
                        .filter_map(|n| n.subtree),
                );
            }
            trees.insert(id, r);
        }
        level = next;
    }
    Ok(trees)
}

/// Lists everything below a directory node, parents before children.
fn collect<'a>(
    trees: &'a HashMap<BlobId, Result<Vec<Node>>>,
    dir: &Node,
    rel: &Path,
    parent: Option<usize>,
    out: &mut Vec<Item<'a>>,
    errors: &mut Vec<String>,
) {
    let Some(tree) = dir.subtree else { return };
    let children = match trees.get(&tree) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            errors.push(format!("{}: {e}", display_rel(rel)));
            return;
        }
        None => {
            errors.push(format!("{}: tree {tree} was not loaded", display_rel(rel)));
            return;
        }
    };
    for child in children {
        let crel = rel.join(child.name_os());
        out.push(Item {
            rel: crel,
            node: child,
            parent,
        });
        if child.kind == Kind::Dir {
            let idx = out.len() - 1;
            let crel = out[idx].rel.clone();
            collect(trees, child, &crel, Some(idx), out, errors);
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
    let scope = Scope::new(&opts.include, &opts.exclude)?;
    // Before `items`, which borrows from it.
    let trees;
    let mut items = Vec::new();
    let mut result = RestoreResult::default();
    let target = &opts.target;
    let dry = opts.dry_run;
    // Into an empty target nothing needs to be checked or replaced first.
    let fresh = match fs::symlink_metadata(target) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::InvalidArgument(format!(
                "target {} exists and is not a directory",
                target.display()
            )));
        }
        Ok(_) => fs::read_dir(target).at(target)?.next().is_none(),
        Err(_) => {
            if !dry {
                fs::create_dir_all(target).at(target)?;
            }
            true
        }
    };
    let target_mode = if fresh || dry {
        None
    } else {
        make_writable(target)
    };
    let root_rel = PathBuf::new();
    let sub = normalize_subpath(&opts.subpath);
    // Where item paths sit in the snapshot, for the include/exclude patterns.
    let base = if top.kind == Kind::Dir {
        sub.clone()
    } else {
        sub.parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
    };
    if top.kind == Kind::Dir {
        trees = load_all_trees(repo, &top)?;
        collect(
            &trees,
            &top,
            &root_rel,
            None,
            &mut items,
            &mut result.errors,
        );
    } else {
        items.push(Item {
            rel: PathBuf::from(top.name_os()),
            node: &top,
            parent: None,
        });
    }
    let selected = scope.select(&items, &base);

    // 0. Extras in the target, before anything is written so that directory
    //    mtimes set in step 4 stay.
    if opts.delete && top.kind == Kind::Dir && !fresh {
        result.deleted = delete_extras(
            target,
            &items,
            &selected,
            &scope,
            &base,
            dry,
            &mut result.errors,
        );
    }

    // What the target holds at each path. Below a directory that step 1
    // creates or replaces there is nothing yet, whatever a stat through the
    // old entry (a symlink to elsewhere, say) showed.
    let as_root = fsmeta::is_root();
    let mut existing = if fresh {
        vec![None; items.len()]
    } else {
        probe(target, &items, &selected)
    };
    let mut new_dir = vec![false; items.len()];
    for i in 0..items.len() {
        if items[i].parent.is_some_and(|p| new_dir[p]) {
            existing[i] = None;
        }
        new_dir[i] = selected[i]
            && items[i].node.kind == Kind::Dir
            && !existing[i].is_some_and(|e| e.ft.is_dir());
    }
    // Directories whose entries (so their mtime) or mode this restore changes:
    // step 4 applies their metadata even when the probe found it right.
    let mut touched = vec![false; items.len()];
    let touch_parent = |touched: &mut [bool], i: usize| {
        if let Some(p) = items[i].parent {
            touched[p] = true;
        }
    };

    // 1. Directories, parents first.
    for (i, it) in items.iter().enumerate() {
        if it.node.kind != Kind::Dir || !selected[i] {
            continue;
        }
        result.dirs += 1;
        if dry {
            continue;
        }
        let p = target.join(&it.rel);
        if !new_dir[i] {
            // Already a directory. Its mode is applied again in step 4.
            if !as_root && existing[i].is_some_and(|e| e.mode & 0o300 != 0o300) {
                touched[i] |= make_writable(&p).is_some();
            }
            continue;
        }
        touch_parent(&mut touched, i);
        let in_new_dir = it.parent.is_some_and(|p| new_dir[p]);
        let cleared = if fresh || in_new_dir {
            Ok(())
        } else {
            clear_for_dir(&p)
        };
        let r = cleared.and_then(|_| match fs::create_dir(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                make_writable(&p);
                Ok(())
            }
            r => r,
        });
        if let Err(e) = r {
            result.errors.push(format!("{}: {e}", p.display()));
        }
    }

    // 2. File contents, pack by pack; hard links (same dev/inode, nlink > 1) are
    //    linked to the first path afterwards. Files the target already has are
    //    left out here, so no pack is read for them.
    let mut link_first: HashMap<(u64, u64), usize> = HashMap::new();
    let mut links: Vec<(usize, usize)> = Vec::new();
    let mut files: Vec<usize> = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if it.node.kind != Kind::File || !selected[i] {
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
        if let Some(m) = keep_existing(existing[i], it.node, opts.overwrite) {
            if opts.overwrite == Overwrite::IfChanged && !dry && !meta_matches(&m, it.node, as_root)
            {
                let p = target.join(&it.rel);
                if let Err(e) = apply_metadata(&p, it.node, as_root) {
                    result
                        .errors
                        .push(format!("{}: metadata: {e}", p.display()));
                }
            }
            result.skipped += 1;
            kept.push(i);
            continue;
        }
        files.push(i);
    }
    if dry {
        result.files = (files.len() + links.len()) as u64;
        result.bytes = files.iter().map(|&i| items[i].node.size).sum();
        return Ok(result);
    }
    for &i in &files {
        touch_parent(&mut touched, i);
    }
    let writer = FileWriter::new(repo, target, &items, &files, fresh, progress)?;
    writer.run();
    let (failed, file_errors, written, bytes) = writer.finish();
    result.errors.extend(file_errors);
    result.files = written;
    result.bytes = bytes;
    for (first, other) in links {
        let a = target.join(&items[first].rel);
        let b = target.join(&items[other].rel);
        if failed[first] {
            continue;
        }
        if !fresh && already_linked(&a, &b, opts.overwrite) {
            result.skipped += 1;
            continue;
        }
        touch_parent(&mut touched, other);
        if let Err(e) = clear_for_file(&b).and_then(|_| fs::hard_link(&a, &b)) {
            result.errors.push(format!("{}: {e}", b.display()));
        } else {
            result.files += 1;
        }
    }

    // 3. Symlinks and special files.
    let mut left = vec![false; items.len()];
    for (i, it) in items.iter().enumerate() {
        if !selected[i] || matches!(it.node.kind, Kind::File | Kind::Dir) {
            continue;
        }
        let p = target.join(&it.rel);
        let keep = match (opts.overwrite, existing[i]) {
            (Overwrite::Never, Some(_)) => true,
            (Overwrite::IfChanged, Some(e)) if it.node.kind == Kind::Symlink => {
                e.ft.is_symlink()
                    && fs::read_link(&p).is_ok_and(|t| {
                        std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str())
                            == it.node.link_target.as_slice()
                    })
            }
            _ => false,
        };
        if keep {
            left[i] = true;
            continue;
        }
        touch_parent(&mut touched, i);
        let r = match it.node.kind {
            Kind::Symlink => clear_for_file(&p).and_then(|_| {
                std::os::unix::fs::symlink(
                    std::ffi::OsStr::from_bytes_ext(&it.node.link_target),
                    &p,
                )
            }),
            _ => clear_for_file(&p)
                .and_then(|_| fsmeta::mknod(&p, it.node.kind, it.node.mode, it.node.rdev)),
        };
        if let Err(e) = r {
            progress.warn(&format!("{}: {e}", p.display()));
            result.errors.push(format!("{}: {e}", p.display()));
        }
    }

    // 4. Metadata, deepest first so a directory's mtime is set after its children.
    for (i, it) in items.iter().enumerate().rev() {
        // Regular files got their metadata when their last byte was written.
        if it.node.kind == Kind::File || !selected[i] {
            continue;
        }
        if opts.overwrite == Overwrite::Never && it.node.kind != Kind::Dir && !fresh {
            continue;
        }
        // Left in place and already as the snapshot has it: a chmod and a
        // utimes would only dirty the inode (and cost a journal write each).
        let in_place = if it.node.kind == Kind::Dir {
            !new_dir[i]
        } else {
            left[i]
        };
        let same = existing[i].is_some_and(|e| meta_same(&e, it.node, as_root));
        if in_place && !touched[i] && same {
            continue;
        }
        let p = target.join(&it.rel);
        if let Err(e) = apply_metadata(&p, it.node, as_root) {
            result
                .errors
                .push(format!("{}: metadata: {e}", p.display()));
        }
    }
    if top.kind == Kind::Dir && !opts.subpath.trim_matches('/').is_empty() {
        let _ = apply_metadata(target, &top, as_root);
    } else if let Some(mode) = target_mode {
        let _ = fs::set_permissions(target, fs::Permissions::from_mode(mode));
    }

    // 5. Verification: what is in the target now, read back and hashed.
    if opts.verify {
        let check: Vec<usize> = files
            .iter()
            .copied()
            .filter(|&i| !failed[i])
            .chain(kept.iter().copied())
            .collect();
        let errs: Vec<String> = check
            .par_iter()
            .filter_map(|&i| {
                let p = target.join(&items[i].rel);
                verify_file(repo, &p, items[i].node)
                    .err()
                    .map(|e| format!("{}: verify: {e}", display_rel(&items[i].rel)))
            })
            .collect();
        result.verified = (check.len() - errs.len()) as u64;
        result.errors.extend(errs);
    }
    Ok(result)
}

/// "/a/b" form of a path inside the snapshot.
fn normalize_subpath(s: &str) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in s.split('/').filter(|c| !c.is_empty() && *c != ".") {
        p.push(c);
    }
    p
}

/// The include/exclude patterns of a restore, rooted at the snapshot's "/".
struct Scope {
    include: Gitignore,
    exclude: Gitignore,
}

fn patterns(list: &[String], what: &str) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new("/");
    for p in list {
        b.add_line(None, p)
            .map_err(|e| Error::InvalidArgument(format!("--{what} {p:?}: {e}")))?;
    }
    b.build()
        .map_err(|e| Error::InvalidArgument(format!("--{what}: {e}")))
}

impl Scope {
    fn new(include: &[String], exclude: &[String]) -> Result<Scope> {
        Ok(Scope {
            include: patterns(include, "include")?,
            exclude: patterns(exclude, "exclude")?,
        })
    }

    /// Whether restore may touch this snapshot path (write it, or delete it as an extra).
    fn allows(&self, abs: &Path, is_dir: bool) -> bool {
        if abs == Path::new("/") {
            return true;
        }
        !self
            .exclude
            .matched_path_or_any_parents(abs, is_dir)
            .is_ignore()
            && (self.include.is_empty()
                || self
                    .include
                    .matched_path_or_any_parents(abs, is_dir)
                    .is_ignore())
    }

    /// Items to restore: those allowed, and the directories above them.
    fn select(&self, items: &[Item<'_>], base: &Path) -> Vec<bool> {
        let mut sel: Vec<bool> = items
            .iter()
            .map(|it| self.allows(&base.join(&it.rel), it.node.kind == Kind::Dir))
            .collect();
        if self.include.is_empty() {
            return sel;
        }
        let dirs: HashMap<&Path, usize> = items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.node.kind == Kind::Dir)
            .map(|(i, it)| (it.rel.as_path(), i))
            .collect();
        // Parents come before their children, so an ancestor found selected
        // already had its own ancestors marked.
        for i in 0..items.len() {
            if !sel[i] {
                continue;
            }
            let mut p = items[i].rel.parent();
            while let Some(pp) = p.filter(|pp| !pp.as_os_str().is_empty()) {
                match dirs.get(pp) {
                    Some(&j) if !sel[j] => sel[j] = true,
                    _ => break,
                }
                p = pp.parent();
            }
        }
        sel
    }
}

/// Removes (or, dry, counts) what the selected target directories hold and
/// the snapshot does not. Never follows symlinks.
fn delete_extras(
    target: &Path,
    items: &[Item<'_>],
    selected: &[bool],
    scope: &Scope,
    base: &Path,
    dry: bool,
    errors: &mut Vec<String>,
) -> u64 {
    let known: HashSet<&Path> = items.iter().map(|i| i.rel.as_path()).collect();
    let dirs: Vec<&Path> = std::iter::once(Path::new(""))
        .chain(
            items
                .iter()
                .zip(selected)
                .filter(|(it, s)| **s && it.node.kind == Kind::Dir)
                .map(|(it, _)| it.rel.as_path()),
        )
        .collect();
    // Listed in parallel (cold, each listing waits for the disk); what to
    // delete is then decided in order, parents first.
    let listings = io_parallel(dirs.len(), |k| {
        let p = target.join(dirs[k]);
        if !dirs[k].as_os_str().is_empty() && !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return Listing::NotADir;
        }
        match fs::read_dir(&p) {
            Ok(rd) => Listing::Entries(
                rd.flatten()
                    .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
                    .collect(),
            ),
            Err(_) => Listing::Unreadable,
        }
    });
    let mut n = 0;
    // A directory of the target that is a symlink (or lies below one) would
    // lead outside it: nothing is deleted there (step 1 replaces it).
    let mut outside: HashSet<&Path> = HashSet::new();
    for (d, listing) in dirs.into_iter().zip(listings) {
        if matches!(listing, Listing::NotADir) || d.parent().is_some_and(|p| outside.contains(p)) {
            outside.insert(d);
            continue;
        }
        let Listing::Entries(entries) = listing else {
            continue;
        };
        for (name, is_dir) in entries {
            let rel = d.join(name);
            if known.contains(rel.as_path()) {
                continue;
            }
            if !scope.allows(&base.join(&rel), is_dir) {
                continue;
            }
            n += 1;
            if dry {
                continue;
            }
            let p = target.join(&rel);
            let r = if is_dir {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if let Err(err) = r {
                errors.push(format!("{}: deleting: {err}", p.display()));
            }
        }
    }
    n
}

/// What `delete_extras` found at a directory of the snapshot in the target.
enum Listing {
    /// Not a directory (a symlink, say): nothing below it is deleted.
    NotADir,
    Unreadable,
    /// Names, and whether each is a directory.
    Entries(Vec<(std::ffi::OsString, bool)>),
}

/// What a stat of an item's path showed before restore wrote anything.
#[derive(Clone, Copy)]
struct Existing {
    ft: fs::FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
}

impl From<&fs::Metadata> for Existing {
    fn from(m: &fs::Metadata) -> Existing {
        use std::os::unix::fs::MetadataExt;
        Existing {
            ft: m.file_type(),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// Stats every selected item's path in the target.
fn probe(target: &Path, items: &[Item<'_>], selected: &[bool]) -> Vec<Option<Existing>> {
    io_parallel(items.len(), |i| {
        if !selected[i] {
            return None;
        }
        fs::symlink_metadata(target.join(&items[i].rel))
            .ok()
            .map(|m| Existing::from(&m))
    })
}

/// `f` of 0..n, run by many threads, in order. Meant for file-system calls
/// on a cold cache: each waits for the disk (a directory block, an inode
/// block) and costs no CPU, so many in flight help whatever the number of
/// cores. Threads take chunks of neighbours: one directory's entries share
/// directory and inode blocks.
fn io_parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let threads = IO_THREADS.min(n.div_ceil(IO_CHUNK)).max(1);
    let parts: Vec<Vec<(usize, T)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let start = next.fetch_add(IO_CHUNK, Ordering::Relaxed);
                        if start >= n {
                            return out;
                        }
                        for i in start..(start + IO_CHUNK).min(n) {
                            out.push((i, f(i)));
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, v) in parts.into_iter().flatten() {
        out[i] = Some(v);
    }
    out.into_iter()
        .map(|v| v.expect("every index is taken by one thread"))
        .collect()
}

/// What was found at an item's path, when the overwrite policy keeps it.
fn keep_existing(e: Option<Existing>, node: &Node, mode: Overwrite) -> Option<Existing> {
    let e = e?;
    match mode {
        Overwrite::Always => None,
        Overwrite::Never => Some(e),
        Overwrite::IfChanged => (e.ft.is_file()
            && e.size == node.size
            && e.mtime == (node.mtime.0, node.mtime.1 as i64))
            .then_some(e),
    }
}

/// Mode and (as root, the only one who can change it) owner.
fn meta_matches(e: &Existing, node: &Node, as_root: bool) -> bool {
    (node.kind == Kind::Symlink || e.mode == node.mode)
        && (!as_root
            || (e.uid == fsmeta::uid_for(&node.user).unwrap_or(node.uid)
                && e.gid == fsmeta::gid_for(&node.group).unwrap_or(node.gid)))
}

/// Everything `apply_metadata` would set is already so. Extended attributes
/// are not read back: a node that has any gets them applied again.
fn meta_same(e: &Existing, node: &Node, as_root: bool) -> bool {
    node.xattrs.is_empty()
        && e.mtime == (node.mtime.0, node.mtime.1 as i64)
        && meta_matches(e, node, as_root)
}

/// Whether `b` may stay as it is: already a hard link of `a` (or anything, with `Never`).
fn already_linked(a: &Path, b: &Path, mode: Overwrite) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (mode, fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Overwrite::Never, _, Ok(_)) => true,
        (Overwrite::IfChanged, Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Reads a restored file back and checks it blob by blob against the snapshot.
fn verify_file(repo: &Repository, p: &Path, node: &Node) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len != node.size {
        return Err(format!("{len} bytes, the snapshot has {}", node.size));
    }
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for id in &node.content {
        let loc = repo
            .cache()
            .lookup(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("blob {id}: not found in the index"))?;
        buf.resize(loc.entry.raw_len as usize, 0);
        f.read_exact(&mut buf).map_err(|e| e.to_string())?;
        if repo.keys().blob_id(&buf) != *id {
            return Err(format!("bytes at offset {offset} differ from blob {id}"));
        }
        offset += buf.len() as u64;
    }
    Ok(())
}

/// Lets this process add entries to an existing directory that an earlier
/// restore left read-only (root needs no such help). Returns the mode it had
/// when it was changed.
fn make_writable(p: &Path) -> Option<u32> {
    if fsmeta::is_root() {
        return None;
    }
    let mode = fs::symlink_metadata(p).ok()?.permissions().mode() & 0o7777;
    if mode & 0o300 == 0o300 {
        return None;
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode | 0o700)).ok()?;
    Some(mode)
}

trait FromBytesExt {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytesExt for std::ffi::OsStr {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn apply_metadata(p: &Path, node: &Node, as_root: bool) -> std::io::Result<()> {
    if as_root {
        let uid = fsmeta::uid_for(&node.user).unwrap_or(node.uid);
        let gid = fsmeta::gid_for(&node.group).unwrap_or(node.gid);
        // Files are created by root: skip the syscall when nothing changes.
        if uid != 0 || gid != 0 || node.kind == Kind::Symlink {
            fsmeta::lchown(p, uid, gid)?;
        }
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

/// A pack and, for each blob needed from it (by offset), where its bytes go.
type PackPlan = (crate::id::PackId, Vec<(BlobEntry, Vec<Target>)>);

/// Where one blob's bytes go: a file (index into `FileWriter::files`) and an offset.
#[derive(Clone, Copy)]
struct Target {
    file: usize,
    offset: u64,
}

struct FileState {
    handle: Option<fs::File>,
    created: bool,
    remaining: usize,
    error: Option<String>,
}

/// Writes file contents by reading each pack once, in parallel over packs,
/// instead of each file's blobs one by one.
struct FileWriter<'a> {
    repo: &'a Repository,
    target: &'a Path,
    items: &'a [Item<'a>],
    /// Item index of each file.
    files: Vec<usize>,
    states: Vec<Mutex<FileState>>,
    packs: Vec<PackPlan>,
    fresh: bool,
    as_root: bool,
    open_handles: AtomicU64,
    bytes: AtomicU64,
    progress: &'a dyn Progress,
}

/// Threads of `io_parallel`, and indices each takes at a time.
const IO_THREADS: usize = 32;
const IO_CHUNK: usize = 64;

/// Handles kept open between blobs of one file; past this, a file is closed
/// after each write and reopened for the next.
const MAX_OPEN: u64 = 256;
/// Blob locations looked up at once when planning the file writes.
const LOOKUP_BATCH: usize = 8192;
/// Blobs of a pack closer than this are fetched in one read.
const MERGE_GAP: u64 = 1 << 20;
/// Largest single read. With more reading threads than cores (object stores,
/// `Repository::read_threads`), reads shrink towards `MIN_READ` so that the
/// threads together stay within `READ_BUDGET`.
const MAX_READ: u64 = 64 << 20;
const MIN_READ: u64 = 8 << 20;

impl<'a> FileWriter<'a> {
    fn new(
        repo: &'a Repository,
        target: &'a Path,
        items: &'a [Item<'a>],
        files: &[usize],
        fresh: bool,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let mut by_pack: HashMap<crate::id::PackId, HashMap<BlobId, (BlobEntry, Vec<Target>)>> =
            HashMap::new();
        let mut states = Vec::with_capacity(files.len());
        // Blob locations are looked up a batch of files at a time (one index
        // lock and read transaction per batch, not per blob).
        let mut fi = 0;
        while fi < files.len() {
            let mut end = fi;
            let mut ids: Vec<BlobId> = Vec::new();
            while end < files.len() && (end == fi || ids.len() < LOOKUP_BATCH) {
                ids.extend_from_slice(&items[files[end]].node.content);
                end += 1;
            }
            let mut locs = repo.cache().lookup_many(&ids)?.into_iter();
            for f in fi..end {
                let node = &items[files[f]].node;
                let mut offset = 0u64;
                let mut error = None;
                for (id, loc) in node
                    .content
                    .iter()
                    .zip(locs.by_ref().take(node.content.len()))
                {
                    if error.is_some() {
                        continue;
                    }
                    match loc {
                        Some(loc) => {
                            by_pack
                                .entry(loc.pack)
                                .or_default()
                                .entry(*id)
                                .or_insert_with(|| (loc.entry, Vec::new()))
                                .1
                                .push(Target { file: f, offset });
                            offset += loc.entry.raw_len as u64;
                        }
                        None => error = Some(format!("blob {id}: not found in the index")),
                    }
                }
                if error.is_none() && offset != node.size {
                    error = Some(format!(
                        "content is {offset} bytes but the tree says {}",
                        node.size
                    ));
                }
                let remaining = if error.is_some() {
                    0
                } else {
                    node.content.len()
                };
                states.push(Mutex::new(FileState {
                    handle: None,
                    created: false,
                    remaining,
                    error,
                }));
            }
            fi = end;
        }
        let mut packs: Vec<_> = by_pack
            .into_iter()
            .map(|(p, blobs)| {
                let mut v: Vec<_> = blobs.into_values().collect();
                v.sort_by_key(|(e, _)| e.offset);
                (p, v)
            })
            .collect();
        // Big packs first: the tail of the run is then small work items.
        packs.sort_by_key(|(_, v)| {
            std::cmp::Reverse(v.iter().map(|(e, _)| e.stored_len as u64).sum::<u64>())
        });
        Ok(FileWriter {
            repo,
            target,
            items,
            files: files.to_vec(),
            states,
            packs,
            fresh,
            as_root: fsmeta::is_root(),
            open_handles: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            progress,
        })
    }

    fn run(&self) {
        // Empty files and files whose plan already failed.
        (0..self.files.len()).into_par_iter().for_each(|fi| {
            let mut st = self.states[fi].lock().unwrap();
            if st.error.is_none() && st.remaining == 0 {
                if let Err(e) = self.open(fi, &mut st) {
                    st.error = Some(e.to_string());
                } else {
                    self.complete(fi, &mut st);
                }
            }
        });
        self.repo.with_read_threads(MIN_READ, || {
            self.packs.par_iter().for_each(|(pack, blobs)| {
                if crate::cancel::is_interrupted() {
                    return;
                }
                self.restore_pack(*pack, blobs);
            })
        });
    }

    fn restore_pack(&self, pack: crate::id::PackId, blobs: &[(BlobEntry, Vec<Target>)]) {
        let threads = self.repo.read_threads(MIN_READ).max(1) as u64;
        let max_read = (READ_BUDGET / threads).clamp(MIN_READ, MAX_READ);
        let mut i = 0;
        while i < blobs.len() {
            // One read for a run of blobs with small gaps between them.
            let start = blobs[i].0.offset as u64;
            let mut j = i + 1;
            let mut end = start + blobs[i].0.stored_len as u64;
            while j < blobs.len() {
                let e = &blobs[j].0;
                let (o, l) = (e.offset as u64, e.stored_len as u64);
                if o > end + MERGE_GAP || o + l - start > max_read {
                    break;
                }
                end = end.max(o + l);
                j += 1;
            }
            let data = self.repo.backend().read_range(
                crate::backend::FileType::Pack,
                &pack.to_hex(),
                start,
                end - start,
            );
            for (entry, targets) in &blobs[i..j] {
                let res = match &data {
                    Ok(buf) => {
                        let o = (entry.offset as u64 - start) as usize;
                        crate::pack::open_blob(
                            self.repo.keys(),
                            entry,
                            &buf[o..o + entry.stored_len as usize],
                        )
                    }
                    Err(e) => Err(Error::corrupt(
                        "blob",
                        entry.id,
                        format!("reading pack {pack}: {e}"),
                    )),
                };
                for t in targets {
                    self.write(*t, res.as_ref().map(|v| v.as_slice()));
                }
            }
            i = j;
        }
    }

    fn open(&self, fi: usize, st: &mut FileState) -> std::io::Result<()> {
        let item = &self.items[self.files[fi]];
        let p = self.target.join(&item.rel);
        let mut oo = OpenOptions::new();
        oo.write(true).custom_flags(libc::O_NOFOLLOW);
        if st.created {
            st.handle = Some(oo.open(&p)?);
        } else {
            if !self.fresh {
                clear_for_file(&p)?;
            }
            let f = oo.create_new(true).mode(0o600).open(&p)?;
            if item.node.size > 0 {
                // Preallocation: one extent instead of growing the file blob by blob,
                // and holes where all-zero blobs are skipped (sparse files stay sparse).
                f.set_len(item.node.size)?;
            }
            st.handle = Some(f);
            st.created = true;
        }
        self.open_handles.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn close(&self, st: &mut FileState) {
        if st.handle.take().is_some() {
            self.open_handles.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn write(&self, t: Target, data: std::result::Result<&[u8], &Error>) {
        let mut st = self.states[t.file].lock().unwrap();
        if st.error.is_some() {
            return;
        }
        let data = match data {
            Ok(d) => d,
            Err(e) => {
                st.error = Some(e.to_string());
                self.close(&mut st);
                return;
            }
        };
        let r = (|| -> std::io::Result<()> {
            if st.handle.is_none() {
                self.open(t.file, &mut st)?;
            }
            // A freshly created file is already all zeros: leave holes.
            if !is_zero(data) {
                st.handle.as_ref().unwrap().write_all_at(data, t.offset)?;
            }
            Ok(())
        })();
        match r {
            Err(e) => {
                st.error = Some(e.to_string());
                self.close(&mut st);
            }
            Ok(()) => {
                self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                self.progress.bytes_done(data.len() as u64);
                st.remaining -= 1;
                if st.remaining == 0 {
                    self.complete(t.file, &mut st);
                } else if self.open_handles.load(Ordering::Relaxed) > MAX_OPEN {
                    self.close(&mut st);
                }
            }
        }
    }

    fn complete(&self, fi: usize, st: &mut FileState) {
        self.close(st);
        let item = &self.items[self.files[fi]];
        let p = self.target.join(&item.rel);
        if let Err(e) = apply_metadata(&p, item.node, self.as_root) {
            st.error = Some(format!("metadata: {e}"));
        }
    }

    /// (failed per item, error lines, files written, bytes written)
    fn finish(self) -> (Vec<bool>, Vec<String>, u64, u64) {
        let mut failed = vec![false; self.items.len()];
        let mut errors = Vec::new();
        let mut written = 0;
        for (fi, st) in self.states.into_iter().enumerate() {
            let st = st.into_inner().unwrap();
            let item = &self.items[self.files[fi]];
            let err = st.error.or_else(|| {
                (st.remaining > 0).then(|| {
                    if crate::cancel::is_interrupted() {
                        "interrupted".to_string()
                    } else {
                        "not all of its content was written".to_string()
                    }
                })
            });
            match err {
                Some(e) => {
                    failed[self.files[fi]] = true;
                    // A damaged file is never left looking restored.
                    let _ = fs::remove_file(self.target.join(&item.rel));
                    errors.push(format!("{}: {e}", display_rel(&item.rel)));
                }
                None => written += 1,
            }
        }
        errors.sort();
        (failed, errors, written, self.bytes.load(Ordering::Relaxed))
    }
}

fn is_zero(d: &[u8]) -> bool {
    let (pre, mid, post) = unsafe { d.align_to::<u128>() };
    pre.iter().all(|&b| b == 0) && mid.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}
