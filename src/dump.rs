//! `dump`: one file of a snapshot as a byte stream, or a directory as a tar
//! stream, written to any `Write` (standard output in the CLI). Content is read
//! blob by blob, so memory stays at one blob whatever the file size.

use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::repository::Repository;
use crate::tree::{Kind, Node};

/// Reads a file's content by fetching its blobs one at a time.
pub struct ContentReader<'a> {
    repo: &'a Repository,
    blobs: &'a [BlobId],
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a> ContentReader<'a> {
    pub fn new(repo: &'a Repository, node: &'a Node) -> Self {
        ContentReader {
            repo,
            blobs: &node.content,
            next: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.blobs.len() {
                return Ok(0);
            }
            if crate::cancel::is_interrupted() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    Error::Interrupted,
                ));
            }
            self.buf = self
                .repo
                .read_blob(&self.blobs[self.next])
                .map_err(std::io::Error::other)?;
            self.next += 1;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The library error inside an io::Error made by [`ContentReader`], or the io error itself.
fn unwrap_io(e: std::io::Error, what: &str) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        match e.into_inner().map(|i| i.downcast::<Error>()) {
            Some(Ok(inner)) => return *inner,
            _ => return Error::Other(format!("{what}: read failed")),
        }
    }
    Error::Other(format!("{what}: {e}"))
}

/// Writes a file node's content. Returns the bytes written.
pub fn file(repo: &Repository, node: &Node, out: &mut dyn Write) -> Result<u64> {
    if node.kind != Kind::File {
        return Err(Error::InvalidArgument(format!(
            "{}: is a {}, not a file (use --archive tar for a directory)",
            String::from_utf8_lossy(&node.name),
            node.kind.name()
        )));
    }
    let mut r = ContentReader::new(repo, node);
    std::io::copy(&mut r, out).map_err(|e| unwrap_io(e, "dump"))
}

/// Writes a directory (or a single node) as a tar stream whose paths are
/// relative, starting with `top_name`.
pub fn tar(repo: &Repository, node: &Node, top_name: &str, out: &mut dyn Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    add(repo, &mut b, node, top_name)?;
    b.into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| Error::Other(format!("dump: {e}")))
}

/// A short content would corrupt the archive (the header has promised its size).
fn check_len(repo: &Repository, node: &Node, path: &str) -> Result<()> {
    let mut total = 0u64;
    for id in &node.content {
        let loc = repo
            .cache()
            .lookup(id)?
            .ok_or_else(|| Error::corrupt("blob", id, format!("{path}: not found in the index")))?;
        total += loc.entry.raw_len as u64;
    }
    if total != node.size {
        return Err(Error::Other(format!(
            "{path}: content is {total} bytes but the tree says {}",
            node.size
        )));
    }
    Ok(())
}

fn header(node: &Node, ty: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(node.mode & 0o7777);
    h.set_uid(node.uid as u64);
    h.set_gid(node.gid as u64);
    let _ = h.set_username(&node.user);
    let _ = h.set_groupname(&node.group);
    h.set_mtime(node.mtime.0.max(0) as u64);
    h.set_size(size);
    h
}

fn add(
    repo: &Repository,
    b: &mut tar::Builder<&mut dyn Write>,
    node: &Node,
    path: &str,
) -> Result<()> {
    crate::cancel::check()?;
    let werr = |e: std::io::Error| unwrap_io(e, path);
    match node.kind {
        Kind::Dir => {
            let mut h = header(node, tar::EntryType::Directory, 0);
            b.append_data(&mut h, format!("{path}/"), std::io::empty())
                .map_err(werr)?;
            if let Some(t) = node.subtree {
                for child in repo.load_tree(&t)? {
                    let name = String::from_utf8_lossy(&child.name).into_owned();
                    add(repo, b, &child, &format!("{path}/{name}"))?;
                }
            }
        }
        Kind::File => {
            check_len(repo, node, path)?;
            let mut h = header(node, tar::EntryType::Regular, node.size);
            let r = ContentReader::new(repo, node);
            // A reader shorter than the header's size would corrupt the archive.
            let mut r = r.take(node.size);
            b.append_data(&mut h, path, &mut r).map_err(werr)?;
        }
        Kind::Symlink => {
            let mut h = header(node, tar::EntryType::Symlink, 0);
            let target = String::from_utf8_lossy(&node.link_target).into_owned();
            b.append_link(&mut h, path, target).map_err(werr)?;
        }
        Kind::Fifo => {
            let mut h = header(node, tar::EntryType::Fifo, 0);
            b.append_data(&mut h, path, std::io::empty())
                .map_err(werr)?;
        }
        Kind::CharDev | Kind::BlockDev => {
            let ty = if node.kind == Kind::CharDev {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header(node, ty, 0);
            let _ = h.set_device_major(libc::major(node.rdev as libc::dev_t));
            let _ = h.set_device_minor(libc::minor(node.rdev as libc::dev_t));
            b.append_data(&mut h, path, std::io::empty())
                .map_err(werr)?;
        }
        // tar has no socket type; like GNU tar, leave sockets out.
        Kind::Socket => {}
    }
    Ok(())
}
