//! Pack files: many sealed blobs followed by a sealed header and its length.
//! Layout and bounds: format-spec/03-objects.md.

use crate::crypto::{self, Keys};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::wire::{Reader, Writer};

pub const HEADER_MAGIC: &[u8; 4] = b"CPH1";
pub const ENTRY_LEN: usize = 42;
pub const MAX_HEADER: usize = 16 << 20;
/// Largest blob plaintext (trees of huge directories are the largest blobs).
pub const MAX_BLOB_RAW: u32 = 64 << 20;
/// Largest stored blob: a zstd frame of MAX_BLOB_RAW bytes is never kept when larger
/// than the raw bytes, so raw + sealing overhead bounds it.
pub const MAX_BLOB_STORED: u32 = MAX_BLOB_RAW + crypto::OVERHEAD as u32;

pub const TYPE_DATA: u8 = 0;
pub const TYPE_TREE: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: BlobId,
    pub blob_type: u8,
    pub compression: u8,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// A blob already compressed and sealed, ready to be appended to a pack.
pub struct SealedBlob {
    pub id: BlobId,
    pub blob_type: u8,
    pub compression: u8,
    pub raw_len: u32,
    pub data: Vec<u8>,
}

impl SealedBlob {
    pub fn seal(keys: &Keys, blob_type: u8, id: BlobId, plain: &[u8], level: i32) -> Self {
        let (compression, payload) = crate::compress::compress_blob(plain, level);
        let payload = payload.as_deref().unwrap_or(plain);
        let data = keys.seal(&crypto::blob_aad(blob_type, &id), payload);
        SealedBlob {
            id,
            blob_type,
            compression,
            raw_len: plain.len() as u32,
            data,
        }
    }
}

/// Opens one stored blob and checks that its content hashes to its id.
pub fn open_blob(keys: &Keys, e: &BlobEntry, stored: &[u8]) -> Result<Vec<u8>> {
    let payload = keys
        .open(&crypto::blob_aad(e.blob_type, &e.id), stored)
        .map_err(|err| Error::corrupt("blob", e.id, err.to_string()))?;
    let plain = crate::compress::decompress_blob(e.compression, payload, e.raw_len as usize)
        .map_err(|err| Error::corrupt("blob", e.id, err.to_string()))?;
    if plain.len() != e.raw_len as usize {
        return Err(Error::corrupt(
            "blob",
            e.id,
            format!("length {} but index says {}", plain.len(), e.raw_len),
        ));
    }
    if keys.blob_id(&plain) != e.id {
        return Err(Error::corrupt(
            "blob",
            e.id,
            "content does not match its id",
        ));
    }
    Ok(plain)
}

/// Accumulates sealed blobs into one pack.
#[derive(Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

impl PackBuilder {
    pub fn new(capacity: usize) -> Self {
        PackBuilder {
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Starts a pack in a recycled buffer (its contents are discarded).
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        PackBuilder {
            buf,
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, b: SealedBlob) {
        self.entries.push(BlobEntry {
            id: b.id,
            blob_type: b.blob_type,
            compression: b.compression,
            offset: self.buf.len() as u32,
            stored_len: b.data.len() as u32,
            raw_len: b.raw_len,
        });
        self.buf.extend_from_slice(&b.data);
    }

    /// Appends the sealed header; returns the file bytes, its id and its entries.
    pub fn finish(mut self, keys: &Keys) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
        let mut w = Writer::with_capacity(8 + self.entries.len() * ENTRY_LEN);
        w.bytes(HEADER_MAGIC);
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            w.u8(e.blob_type);
            w.u8(e.compression);
            w.u32(e.stored_len);
            w.u32(e.raw_len);
            w.bytes(e.id.as_bytes());
        }
        let header = keys.seal(crypto::aad::PACK_HEADER, &w.buf);
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        let id = PackId(crate::id::storage_hash(&self.buf));
        (id, self.buf, self.entries)
    }
}

/// Where the sealed header sits, from the last 4 bytes and the file size.
pub fn header_range(pack: PackId, file_size: u64, trailer: [u8; 4]) -> Result<(u64, u64)> {
    let hlen = u32::from_le_bytes(trailer) as u64;
    if file_size < 4 || hlen > file_size - 4 || hlen as usize > MAX_HEADER {
        return Err(Error::corrupt(
            "pack",
            pack,
            format!("header length {hlen} does not fit a {file_size}-byte pack"),
        ));
    }
    Ok((file_size - 4 - hlen, hlen))
}

/// Decrypts and parses a pack header, checking it covers the pack exactly.
pub fn parse_header(
    keys: &Keys,
    pack: PackId,
    sealed: &[u8],
    header_offset: u64,
) -> Result<Vec<BlobEntry>> {
    // Blob offsets are u32 (as in the index): a pack whose blobs reach past 4 GiB
    // would wrap them. cellar writes packs of at most 512 MiB.
    if header_offset > u32::MAX as u64 {
        return Err(Error::corrupt(
            "pack",
            pack,
            format!("{header_offset} bytes of blobs: larger than a pack can be"),
        ));
    }
    let plain = keys
        .open(crypto::aad::PACK_HEADER, sealed)
        .map_err(|e| Error::corrupt("pack", pack, format!("header: {e}")))?;
    let mut r = Reader::new(&plain, "pack header");
    r.expect_magic(HEADER_MAGIC)?;
    let raw = r.u32()?;
    let n = r.count(raw, ENTRY_LEN, usize::MAX)?;
    let mut out = Vec::with_capacity(n);
    let mut offset: u64 = 0;
    for _ in 0..n {
        let blob_type = r.u8()?;
        let compression = r.u8()?;
        let stored_len = r.u32()?;
        let raw_len = r.u32()?;
        let id = BlobId(r.array()?);
        if blob_type > TYPE_TREE
            || compression > crate::compress::ZSTD
            || stored_len < crypto::OVERHEAD as u32
            || stored_len > MAX_BLOB_STORED
            || raw_len > MAX_BLOB_RAW
        {
            return Err(Error::corrupt(
                "pack",
                pack,
                format!("header entry for blob {id} is out of bounds"),
            ));
        }
        out.push(BlobEntry {
            id,
            blob_type,
            compression,
            offset: offset as u32,
            stored_len,
            raw_len,
        });
        offset += stored_len as u64;
    }
    r.finish()?;
    if offset != header_offset {
        return Err(Error::corrupt(
            "pack",
            pack,
            format!("header lists {offset} bytes of blobs but they take {header_offset}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip() {
        let keys = Keys::generate();
        let mut b = PackBuilder::new(1024);
        let blobs: Vec<Vec<u8>> = vec![b"alpha".to_vec(), vec![b'x'; 5000], b"".to_vec()];
        for (i, p) in blobs.iter().enumerate() {
            let id = keys.blob_id(p);
            b.add(SealedBlob::seal(&keys, (i % 2) as u8, id, p, 3));
        }
        let (id, bytes, entries) = b.finish(&keys);
        assert_eq!(id.0, crate::id::storage_hash(&bytes));
        let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().unwrap();
        let (off, len) = header_range(id, bytes.len() as u64, trailer).unwrap();
        let parsed =
            parse_header(&keys, id, &bytes[off as usize..(off + len) as usize], off).unwrap();
        assert_eq!(parsed, entries);
        for (e, p) in parsed.iter().zip(&blobs) {
            let s = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            assert_eq!(&open_blob(&keys, e, s).unwrap(), p);
        }
        // A flipped byte in a blob is caught and names the blob.
        let e = parsed[1];
        let mut s = bytes[e.offset as usize..(e.offset + e.stored_len) as usize].to_vec();
        s[20] ^= 1;
        let err = open_blob(&keys, &e, &s).unwrap_err().to_string();
        assert!(err.contains(&e.id.to_hex()), "{err}");
    }

    #[test]
    fn blobs_past_4_gib_refused() {
        let keys = Keys::generate();
        let n = 65u32;
        let stored = MAX_BLOB_STORED;
        let mut w = Writer::default();
        w.bytes(HEADER_MAGIC);
        w.u32(n);
        for i in 0..n {
            w.bytes(&[TYPE_DATA, 0]);
            w.u32(stored);
            w.u32(1);
            w.bytes(&[i as u8; 32]);
        }
        let sealed = keys.seal(crypto::aad::PACK_HEADER, &w.buf);
        let total = n as u64 * stored as u64;
        assert!(parse_header(&keys, PackId([0; 32]), &sealed, total).is_err());
    }

    #[test]
    fn hostile_header_length_refused() {
        let id = PackId([0; 32]);
        assert!(header_range(id, 10, 100u32.to_le_bytes()).is_err());
        assert!(header_range(id, 3, 0u32.to_le_bytes()).is_err());
    }
}
