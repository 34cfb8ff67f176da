//! Index segments: the repository's own record of which blob lives where. The
//! SQLite cache is rebuilt from these; they are the truth.

use crate::crypto::{self, Keys};
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::pack::{BlobEntry, MAX_BLOB_RAW, MAX_BLOB_STORED, TYPE_TREE};
use crate::wire::{Reader, Writer};

pub const MAGIC: &[u8; 4] = b"CIX1";
pub const MAX_PACKS: usize = 65536;
pub const MAX_BLOBS: usize = 4_000_000;
pub const MAX_SEGMENT: usize = 256 << 20;
const BLOB_LEN: usize = 46;
const PACK_LEN: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackIndex {
    pub id: PackId,
    pub size: u32,
    pub blobs: Vec<BlobEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub superseded: Vec<IndexId>,
    pub packs: Vec<PackIndex>,
}

impl Segment {
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }

    /// Plain body (before framing and sealing).
    pub fn encode_body(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(12 + self.packs.len() * PACK_LEN + self.blob_count() * BLOB_LEN);
        w.bytes(MAGIC);
        w.u32(self.packs.len() as u32);
        w.u32(self.superseded.len() as u32);
        for s in &self.superseded {
            w.bytes(s.as_bytes());
        }
        for p in &self.packs {
            w.bytes(p.id.as_bytes());
            w.u32(p.size);
            w.u32(p.blobs.len() as u32);
            for b in &p.blobs {
                w.u8(b.blob_type);
                w.u8(b.compression);
                w.u32(b.offset);
                w.u32(b.stored_len);
                w.u32(b.raw_len);
                w.bytes(b.id.as_bytes());
            }
        }
        w.into_inner()
    }

    /// The bytes of the file as stored, and its storage id.
    pub fn seal(&self, keys: &Keys) -> (IndexId, Vec<u8>) {
        let framed = crate::compress::frame_meta(&self.encode_body());
        let sealed = keys.seal(crypto::aad::INDEX, &framed);
        (IndexId(crate::id::storage_hash(&sealed)), sealed)
    }

    pub fn open(keys: &Keys, id: IndexId, stored: &[u8]) -> Result<Segment> {
        if crate::id::storage_hash(stored) != id.0 {
            return Err(Error::corrupt(
                "index segment",
                id,
                "content does not match its name",
            ));
        }
        let framed = keys
            .open(crypto::aad::INDEX, stored)
            .map_err(|e| Error::corrupt("index segment", id, e.to_string()))?;
        let body = crate::compress::unframe_meta("index segment", &framed, MAX_SEGMENT)?;
        Self::decode_body(&body).map_err(|e| Error::corrupt("index segment", id, e.to_string()))
    }

    pub fn decode_body(body: &[u8]) -> Result<Segment> {
        let mut r = Reader::new(body, "index segment");
        r.expect_magic(MAGIC)?;
        let raw_packs = r.u32()?;
        let raw_sup = r.u32()?;
        let nsup = r.count(raw_sup, 32, MAX_PACKS)?;
        let superseded = (0..nsup)
            .map(|_| r.array().map(IndexId))
            .collect::<Result<Vec<_>>>()?;
        let npacks = r.count(raw_packs, PACK_LEN, MAX_PACKS)?;
        let mut packs = Vec::with_capacity(npacks);
        let mut total = 0usize;
        for _ in 0..npacks {
            let id = PackId(r.array()?);
            let size = r.u32()?;
            let raw = r.u32()?;
            let n = r.count(raw, BLOB_LEN, MAX_BLOBS - total)?;
            total += n;
            let mut blobs = Vec::with_capacity(n);
            for _ in 0..n {
                let e = BlobEntry {
                    blob_type: r.u8()?,
                    compression: r.u8()?,
                    offset: r.u32()?,
                    stored_len: r.u32()?,
                    raw_len: r.u32()?,
                    id: BlobId(r.array()?),
                };
                let end = e.offset as u64 + e.stored_len as u64;
                if e.blob_type > TYPE_TREE
                    || e.compression > crate::compress::ZSTD
                    || e.stored_len < crypto::OVERHEAD as u32
                    || e.stored_len > MAX_BLOB_STORED
                    || e.raw_len > MAX_BLOB_RAW
                    || end + 4 > size as u64
                {
                    return Err(Error::format(
                        "index segment",
                        format!("entry for blob {} in pack {id} is out of bounds", e.id),
                    ));
                }
                blobs.push(e);
            }
            packs.push(PackIndex { id, size, blobs });
        }
        r.finish()?;
        Ok(Segment { superseded, packs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let keys = Keys::generate();
        let seg = Segment {
            superseded: vec![IndexId([5; 32])],
            packs: vec![PackIndex {
                id: PackId([1; 32]),
                size: 1000,
                blobs: vec![BlobEntry {
                    id: BlobId([2; 32]),
                    blob_type: 0,
                    compression: 1,
                    offset: 0,
                    stored_len: 100,
                    raw_len: 300,
                }],
            }],
        };
        let (id, bytes) = seg.seal(&keys);
        assert_eq!(Segment::open(&keys, id, &bytes).unwrap(), seg);
        let body = seg.encode_body();
        for cut in 0..body.len() {
            assert!(Segment::decode_body(&body[..cut]).is_err());
        }
        let mut wrong = bytes.clone();
        wrong[0] ^= 1;
        assert!(Segment::open(&keys, id, &wrong).is_err());
    }
}
