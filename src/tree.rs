//! Trees: one directory's entries, encoded as a tree blob. The encoding is binary
//! and sorted by name so that an unchanged directory always yields the same blob id.
//! Layout and bounds: format-spec/03-objects.md.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::wire::{Reader, Writer};

pub const TREE_MAGIC: &[u8; 4] = b"CTR1";
pub const MAX_NAME: usize = 4096;
pub const MAX_LINK: usize = 64 << 10;
pub const MAX_XATTR_NAME: usize = 1 << 10;
pub const MAX_XATTR_VALUE: usize = 64 << 10;
/// Smallest possible encoded node, used to bound counts read from disk.
const MIN_NODE: usize = 2 + 1 + 1 + 12 + 2 + 24 + 36 + 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDev = 6,
    BlockDev = 7,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::File,
            2 => Kind::Dir,
            3 => Kind::Symlink,
            4 => Kind::Fifo,
            5 => Kind::Socket,
            6 => Kind::CharDev,
            7 => Kind::BlockDev,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDev => "chardev",
            Kind::BlockDev => "blockdev",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub dev: u64,
    pub inode: u64,
    pub nlink: u32,
    pub size: u64,
    pub rdev: u64,
    /// Data blobs of a file, in order.
    pub content: Vec<BlobId>,
    /// Tree blob of a directory.
    pub subtree: Option<BlobId>,
    pub link_target: Vec<u8>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Node {
    pub fn new(name: Vec<u8>, kind: Kind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: (0, 0),
            ctime: (0, 0),
            dev: 0,
            inode: 0,
            nlink: 1,
            size: 0,
            rdev: 0,
            content: Vec::new(),
            subtree: None,
            link_target: Vec::new(),
            xattrs: Vec::new(),
        }
    }

    pub fn name_os(&self) -> &OsStr {
        OsStr::from_bytes(&self.name)
    }
}

/// A name that is safe to join to a directory: not empty, ".", "..", and without '/' or NUL.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

/// A user or group name as stored: at most 255 bytes, cut at a character
/// boundary so that what is written is still UTF-8.
fn trunc(s: &str) -> &str {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Encodes nodes (sorted here, so callers need not).
pub fn encode(nodes: &mut [Node]) -> Vec<u8> {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut w = Writer::with_capacity(8 + nodes.len() * 128);
    w.bytes(TREE_MAGIC);
    w.u32(nodes.len() as u32);
    for n in nodes.iter() {
        w.u16(n.name.len() as u16);
        w.bytes(&n.name);
        w.u8(n.kind as u8);
        w.u32(n.mode);
        w.u32(n.uid);
        w.u32(n.gid);
        let u = trunc(&n.user);
        w.u8(u.len() as u8);
        w.bytes(u.as_bytes());
        let g = trunc(&n.group);
        w.u8(g.len() as u8);
        w.bytes(g.as_bytes());
        w.i64(n.mtime.0);
        w.u32(n.mtime.1);
        w.i64(n.ctime.0);
        w.u32(n.ctime.1);
        w.u64(n.dev);
        w.u64(n.inode);
        w.u32(n.nlink);
        w.u64(n.size);
        w.u64(n.rdev);
        match n.kind {
            Kind::File => {
                w.u32(n.content.len() as u32);
                for id in &n.content {
                    w.bytes(id.as_bytes());
                }
            }
            Kind::Dir => w.bytes(n.subtree.unwrap_or_default().as_bytes()),
            Kind::Symlink => {
                w.u32(n.link_target.len() as u32);
                w.bytes(&n.link_target);
            }
            _ => {}
        }
        w.u16(n.xattrs.len() as u16);
        for (k, v) in &n.xattrs {
            w.u16(k.len() as u16);
            w.bytes(k);
            w.u32(v.len() as u32);
            w.bytes(v);
        }
    }
    w.into_inner()
}

/// Names need not be UTF-8: invalid bytes become U+FFFD, which can make the
/// string longer than 255 bytes, so it is cut the way `encode` would cut it and
/// a decoded tree re-encodes to the same nodes.
fn string(r: &mut Reader<'_>) -> Result<String> {
    let n = r.u8()? as usize;
    let s = String::from_utf8_lossy(r.bytes(n)?);
    Ok(trunc(&s).to_owned())
}

/// Decodes a tree blob, enforcing every bound of format-spec/06-reader-rules.md.
pub fn decode(buf: &[u8]) -> Result<Vec<Node>> {
    let mut r = Reader::new(buf, "tree");
    r.expect_magic(TREE_MAGIC)?;
    let raw = r.u32()?;
    let count = r.count(raw, MIN_NODE, usize::MAX)?;
    let mut out: Vec<Node> = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = r.u16()? as usize;
        let name = r.bytes(name_len)?.to_vec();
        if !valid_name(&name) {
            return Err(Error::format(
                "tree",
                format!("refusing entry name {:?}", String::from_utf8_lossy(&name)),
            ));
        }
        if let Some(prev) = out.last() {
            if prev.name >= name {
                return Err(Error::format("tree", "entries not sorted or not unique"));
            }
        }
        let kind_byte = r.u8()?;
        let kind = Kind::from_u8(kind_byte)
            .ok_or_else(|| Error::format("tree", format!("unknown node kind {kind_byte}")))?;
        let mut n = Node::new(name, kind);
        n.mode = r.u32()? & 0o7777;
        n.uid = r.u32()?;
        n.gid = r.u32()?;
        n.user = string(&mut r)?;
        n.group = string(&mut r)?;
        n.mtime = (r.i64()?, r.u32()?);
        n.ctime = (r.i64()?, r.u32()?);
        if n.mtime.1 >= 1_000_000_000 || n.ctime.1 >= 1_000_000_000 {
            return Err(Error::format("tree", "nanoseconds out of range"));
        }
        n.dev = r.u64()?;
        n.inode = r.u64()?;
        n.nlink = r.u32()?;
        n.size = r.u64()?;
        n.rdev = r.u64()?;
        match kind {
            Kind::File => {
                let raw = r.u32()?;
                let c = r.count(raw, 32, usize::MAX)?;
                n.content = (0..c)
                    .map(|_| r.array().map(BlobId))
                    .collect::<Result<_>>()?;
            }
            Kind::Dir => n.subtree = Some(BlobId(r.array()?)),
            Kind::Symlink => {
                let len = r.u32()? as usize;
                if len > MAX_LINK {
                    return Err(Error::format("tree", "symlink target too long"));
                }
                n.link_target = r.bytes(len)?.to_vec();
            }
            _ => {}
        }
        let raw = r.u16()? as u32;
        let xc = r.count(raw, 6, usize::MAX)?;
        for _ in 0..xc {
            let kl = r.u16()? as usize;
            if kl > MAX_XATTR_NAME {
                return Err(Error::format("tree", "xattr name too long"));
            }
            let k = r.bytes(kl)?.to_vec();
            let vl = r.u32()? as usize;
            if vl > MAX_XATTR_VALUE {
                return Err(Error::format("tree", "xattr value too long"));
            }
            let v = r.bytes(vl)?.to_vec();
            n.xattrs.push((k, v));
        }
        out.push(n);
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Node> {
        let mut f = Node::new(b"b.txt".to_vec(), Kind::File);
        f.content = vec![BlobId([1; 32]), BlobId([2; 32])];
        f.size = 12;
        f.user = "pydio".into();
        f.xattrs = vec![(b"user.x".to_vec(), b"v".to_vec())];
        let mut d = Node::new(b"a".to_vec(), Kind::Dir);
        d.subtree = Some(BlobId([3; 32]));
        let mut l = Node::new(vec![0xff, b'z'], Kind::Symlink);
        l.link_target = b"../nowhere".to_vec();
        vec![f, d, l, Node::new(b"fifo".to_vec(), Kind::Fifo)]
    }

    #[test]
    fn round_trip_sorted() {
        let mut nodes = sample();
        let enc = encode(&mut nodes);
        let dec = decode(&enc).unwrap();
        assert_eq!(dec, nodes);
        assert_eq!(dec[0].name, b"a");
    }

    #[test]
    fn hostile_names_refused() {
        for bad in [&b".."[..], b".", b"a/b", b"", b"x\0y"] {
            let mut nodes = vec![Node::new(bad.to_vec(), Kind::File)];
            let enc = encode(&mut nodes);
            assert!(decode(&enc).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn long_and_non_utf8_names_round_trip() {
        let mut n = Node::new(b"x".to_vec(), Kind::Fifo);
        n.user = "é".repeat(200);
        let dec = decode(&encode(&mut [n])).unwrap();
        assert_eq!(dec[0].user, "é".repeat(127));
        // 86 invalid bytes decode to 86 U+FFFD (258 bytes), cut to 85.
        let mut enc = encode(&mut [Node::new(b"x".to_vec(), Kind::Fifo)]);
        let at = 4 + 4 + 2 + 1 + 1 + 12;
        enc.splice(at..at + 1, std::iter::once(86).chain([0xff; 86]));
        let first = decode(&enc).unwrap();
        assert_eq!(first[0].user, "\u{fffd}".repeat(85));
        assert_eq!(decode(&encode(&mut first.clone())).unwrap(), first);
    }

    #[test]
    fn truncations_never_panic() {
        let enc = encode(&mut sample());
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err());
        }
    }
}
