//! Browsing snapshots through the catalog: listing a directory (`ls`) and
//! comparing two snapshots (`diff`). Both read trees lazily, so only the
//! directories they visit are ever loaded, and `diff` never descends into a
//! subtree whose id is the same on both sides.

use crate::catalog::{Catalog, Entry};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::repository::Repository;
use crate::tree::Kind;

/// Joins a parent path and a name ("/" + "a" = "/a").
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Normalises a user-given path inside a snapshot to "/a/b" form.
pub fn normalize(path: &str) -> String {
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", comps.join("/"))
}

/// Calls `f(path, entry)` for the entry at `path` if it is not a directory,
/// else for each of its children (recursively with `recursive`), parents
/// before their children, in name order.
pub fn list(
    cat: &Catalog,
    repo: &Repository,
    root: BlobId,
    path: &str,
    recursive: bool,
    f: &mut dyn FnMut(&[u8], &Entry) -> Result<()>,
) -> Result<()> {
    let path = normalize(path);
    let top = cat
        .lookup(repo, root, &path)?
        .ok_or_else(|| Error::NotFound(format!("{path}: no such path in the snapshot")))?;
    match (top.kind, top.subtree) {
        (Kind::Dir, Some(t)) => walk(cat, repo, t, path.as_bytes(), recursive, f),
        _ => f(path.as_bytes(), &top),
    }
}

fn walk(
    cat: &Catalog,
    repo: &Repository,
    tree: BlobId,
    prefix: &[u8],
    recursive: bool,
    f: &mut dyn FnMut(&[u8], &Entry) -> Result<()>,
) -> Result<()> {
    for e in cat.tree(repo, &tree)? {
        crate::cancel::check()?;
        let p = join(prefix, &e.name);
        f(&p, &e)?;
        if recursive {
            if let (Kind::Dir, Some(t)) = (e.kind, e.subtree) {
                walk(cat, repo, t, &p, recursive, f)?;
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    /// Content differs (files: their data; symlinks: their target; devices: rdev size).
    Modified,
    /// Same content, other mode, owner or mtime.
    Metadata,
    /// Another kind of entry at the same path (a file became a directory).
    TypeChanged,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::Metadata => "metadata",
            ChangeKind::TypeChanged => "type",
        }
    }

    /// One-letter code for text output.
    pub fn code(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::Metadata => 'U',
            ChangeKind::TypeChanged => 'T',
        }
    }
}

#[derive(Clone, Debug)]
pub struct Change {
    pub path: Vec<u8>,
    pub kind: ChangeKind,
    pub old: Option<Entry>,
    pub new: Option<Entry>,
}

impl Change {
    /// Size after minus size before (files and symlinks; 0 for directories).
    pub fn size_delta(&self) -> i64 {
        let s = |e: &Option<Entry>| {
            e.as_ref()
                .filter(|e| e.kind != Kind::Dir)
                .map_or(0, |e| e.size as i64)
        };
        s(&self.new) - s(&self.old)
    }
}

fn same_content(a: &Entry, b: &Entry) -> bool {
    a.size == b.size && a.content == b.content && a.link_target == b.link_target
}

/// Directory mtimes change whenever an entry is added or removed, which the
/// diff already shows, so they alone do not make a directory "changed".
fn same_meta(a: &Entry, b: &Entry) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.user == b.user
        && a.group == b.group
        && (a.kind == Kind::Dir || a.mtime == b.mtime)
}

/// What changed from `a` to `b` below `path` (the same path in both).
pub fn diff(
    cat: &Catalog,
    repo: &Repository,
    a: BlobId,
    b: BlobId,
    path: &str,
) -> Result<Vec<Change>> {
    let path = normalize(path);
    let ea = cat.lookup(repo, a, &path)?;
    let eb = cat.lookup(repo, b, &path)?;
    let mut out = Vec::new();
    match (ea, eb) {
        (None, None) => {
            return Err(Error::NotFound(format!("{path}: in neither snapshot")));
        }
        (ea, eb) => {
            let is_root = path == "/";
            compare(cat, repo, path.as_bytes(), ea, eb, is_root, &mut out)?;
        }
    }
    Ok(out)
}

fn compare(
    cat: &Catalog,
    repo: &Repository,
    path: &[u8],
    a: Option<Entry>,
    b: Option<Entry>,
    quiet_self: bool,
    out: &mut Vec<Change>,
) -> Result<()> {
    crate::cancel::check()?;
    let push = |out: &mut Vec<Change>, kind, old: Option<Entry>, new: Option<Entry>| {
        out.push(Change {
            path: path.to_vec(),
            kind,
            old,
            new,
        })
    };
    match (a, b) {
        (None, None) => {}
        (None, Some(n)) => {
            let sub = n.subtree.filter(|_| n.kind == Kind::Dir);
            push(out, ChangeKind::Added, None, Some(n));
            if let Some(t) = sub {
                one_side(cat, repo, path, t, ChangeKind::Added, out)?;
            }
        }
        (Some(o), None) => {
            let sub = o.subtree.filter(|_| o.kind == Kind::Dir);
            push(out, ChangeKind::Removed, Some(o), None);
            if let Some(t) = sub {
                one_side(cat, repo, path, t, ChangeKind::Removed, out)?;
            }
        }
        (Some(o), Some(n)) if o.kind != n.kind => {
            let (os, ns) = (
                o.subtree.filter(|_| o.kind == Kind::Dir),
                n.subtree.filter(|_| n.kind == Kind::Dir),
            );
            push(out, ChangeKind::TypeChanged, Some(o), Some(n));
            if let Some(t) = os {
                one_side(cat, repo, path, t, ChangeKind::Removed, out)?;
            }
            if let Some(t) = ns {
                one_side(cat, repo, path, t, ChangeKind::Added, out)?;
            }
        }
        (Some(o), Some(n)) if o.kind == Kind::Dir => {
            if !quiet_self && !same_meta(&o, &n) {
                push(out, ChangeKind::Metadata, Some(o.clone()), Some(n.clone()));
            }
            if o.subtree == n.subtree {
                return Ok(());
            }
            let ca = match o.subtree {
                Some(t) => cat.tree(repo, &t)?,
                None => Vec::new(),
            };
            let cb = match n.subtree {
                Some(t) => cat.tree(repo, &t)?,
                None => Vec::new(),
            };
            // Both sorted by name: a merge.
            let (mut ia, mut ib) = (ca.into_iter().peekable(), cb.into_iter().peekable());
            loop {
                let ord = match (ia.peek(), ib.peek()) {
                    (None, None) => break,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => x.name.cmp(&y.name),
                };
                let (x, y) = match ord {
                    std::cmp::Ordering::Less => (ia.next(), None),
                    std::cmp::Ordering::Greater => (None, ib.next()),
                    std::cmp::Ordering::Equal => (ia.next(), ib.next()),
                };
                let name = x.as_ref().or(y.as_ref()).unwrap().name.clone();
                compare(cat, repo, &join(path, &name), x, y, false, out)?;
            }
        }
        (Some(o), Some(n)) => {
            if !same_content(&o, &n) {
                push(out, ChangeKind::Modified, Some(o), Some(n));
            } else if !same_meta(&o, &n) {
                push(out, ChangeKind::Metadata, Some(o), Some(n));
            }
        }
    }
    Ok(())
}

/// Everything below a directory that exists on one side only.
fn one_side(
    cat: &Catalog,
    repo: &Repository,
    path: &[u8],
    tree: BlobId,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    walk(cat, repo, tree, path, true, &mut |p, e| {
        let (old, new) = match kind {
            ChangeKind::Removed => (Some(e.clone()), None),
            _ => (None, Some(e.clone())),
        };
        out.push(Change {
            path: p.to_vec(),
            kind,
            old,
            new,
        });
        Ok(())
    })
}
