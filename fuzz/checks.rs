//! The properties the fuzz targets assert, as plain functions of `&[u8]`.
//!
//! This file is compiled twice:
//! - by each libFuzzer target in `fuzz/fuzz_targets/` (`cargo fuzz run NAME`,
//!   sanitizers, nightly features through `RUSTC_BOOTSTRAP=1`);
//! - by `tests/fuzz_corpus.rs` in the root crate, which replays the committed
//!   seeds and regressions on stable Rust as part of `cargo test`.
//!
//! It may use only crates that both build graphs have: `cellar`, `serde`,
//! `serde_json` and `hex`. A check returns normally when the property holds and panics
//! (assert!) when it does not; an `Err` from a decoder is a correct answer.

use std::sync::OnceLock;

use cellar::chunker::chunk_stream;
use cellar::compress;
use cellar::crypto::{self, Keys};
use cellar::id::{BlobId, IndexId, PackId};
use cellar::index::segment::Segment;
use cellar::pack::{self, BlobEntry, SealedBlob};
use cellar::repofile::{self, ChunkerParams, Config, KeyFile, KeyMeta, Lock, Snapshot};
use cellar::tree;

/// A property: returns when it holds for the input, panics when it does not.
pub type Check = fn(&[u8]);

/// Name and check of every fuzz target. `tests/fuzz_corpus.rs` replays
/// `fuzz/seeds/NAME/` and `fuzz/regressions/NAME/` through these, and checks that
/// `fuzz/fuzz_targets/NAME.rs` exists for each.
pub const TARGETS: &[(&str, Check)] = &[
    ("tree_decode", tree_decode),
    ("index_segment", index_segment),
    ("pack_header", pack_header),
    ("decrypt", decrypt),
    ("chunker", chunker),
    ("compress_meta", compress_meta),
    ("repofile_json", repofile_json),
];

/// The master secret of the fixed fuzzing key. Seeds that are sealed boxes were
/// sealed with `fixed_keys()`, so the fuzzer starts from boxes that open.
pub const FIXED_MASTER: [u8; 32] = *b"cellar fuzz fixed master key 32b";
/// A fixed key-encryption key for the key-file checks (no Argon2id in a fuzz loop).
pub const FIXED_KEK: [u8; 32] = *b"cellar fuzz fixed key-encrypt-ky";

pub fn fixed_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::from_master(FIXED_MASTER))
}

/// Every associated-data label a sealed box can carry (blob AADs are built per blob).
pub const AADS: &[&[u8]] = &[
    crypto::aad::PACK_HEADER,
    crypto::aad::INDEX,
    crypto::aad::SNAPSHOT,
    crypto::aad::CONFIG,
    crypto::aad::LOCK,
    crypto::aad::KEY,
    crypto::aad::KEY_META,
];

/// A cheap deterministic position derived from the input, for "flip one byte" checks.
fn pick(data: &[u8], len: usize) -> usize {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (h % len as u64) as usize
}

/// `tree::decode` never panics; a tree it accepts re-encodes to bytes that decode to
/// the same nodes, and encoding is a fixed point from then on.
pub fn tree_decode(data: &[u8]) {
    let Ok(nodes) = tree::decode(data) else {
        return;
    };
    for pair in nodes.windows(2) {
        assert!(
            pair[0].name < pair[1].name,
            "decoded entries not strictly sorted"
        );
    }
    for n in &nodes {
        assert!(
            tree::valid_name(&n.name),
            "decoded a refused name {:?}",
            n.name
        );
        assert_eq!(n.mode & !0o7777, 0, "mode keeps only permission bits");
    }
    let enc = tree::encode(&mut nodes.clone());
    let again = tree::decode(&enc).expect("a re-encoded tree must decode");
    assert_eq!(again, nodes, "decode(encode(decode(x))) != decode(x)");
    assert_eq!(
        tree::encode(&mut again.clone()),
        enc,
        "tree encoding is not canonical"
    );
}

/// `Segment::decode_body` never panics; an accepted body is exactly what
/// `encode_body` writes for the decoded segment, and sealing then opening the
/// segment with the fixed key gives it back.
pub fn index_segment(data: &[u8]) {
    let keys = fixed_keys();
    // The sealed path on arbitrary bytes: a wrong name, then the right name but no valid box.
    let _ = Segment::open(keys, IndexId([0; 32]), data);
    let _ = Segment::open(keys, IndexId(cellar::id::storage_hash(data)), data);
    let Ok(seg) = Segment::decode_body(data) else {
        return;
    };
    assert!(seg.blob_count() <= cellar::index::segment::MAX_BLOBS);
    for p in &seg.packs {
        for b in &p.blobs {
            assert!(
                b.offset as u64 + b.stored_len as u64 + 4 <= p.size as u64,
                "accepted a blob outside its pack"
            );
            assert!(b.stored_len as usize >= crypto::OVERHEAD);
        }
    }
    assert_eq!(seg.encode_body(), data, "segment encoding is not canonical");
    let (id, sealed) = seg.seal(keys);
    let opened = Segment::open(keys, id, &sealed).expect("a sealed segment must open");
    assert_eq!(opened, seg);
}

/// Input: `header_offset` (u64 LE, missing bytes read as 0) || header plaintext.
/// The plaintext is sealed with the fixed key so `pack::parse_header` gets past
/// authentication and its parser is what is fuzzed. The raw input is also fed as
/// a (never authentic) sealed header, and as a trailer to `header_range`.
pub fn pack_header(data: &[u8]) {
    let keys = fixed_keys();
    let pack = PackId([7; 32]);
    let mut off = [0u8; 8];
    let n = data.len().min(8);
    off[..n].copy_from_slice(&data[..n]);
    let header_offset = u64::from_le_bytes(off);
    let plain = &data[n..];

    // header_range: the trailer is the last 4 bytes, the file size the offset field.
    if data.len() >= 4 {
        let trailer: [u8; 4] = data[data.len() - 4..].try_into().unwrap();
        if let Ok((start, len)) = pack::header_range(pack, header_offset, trailer) {
            assert!(len as usize <= pack::MAX_HEADER);
            assert_eq!(
                start + len + 4,
                header_offset,
                "header range does not end the file"
            );
        }
    }
    // The raw input as the sealed header: it never authenticates, and must not panic.
    let _ = pack::parse_header(keys, pack, data, header_offset);

    let sealed = keys.seal(crypto::aad::PACK_HEADER, plain);
    let Ok(entries) = pack::parse_header(keys, pack, &sealed, header_offset) else {
        return;
    };
    // Accepted: offsets are contiguous from 0, bounds hold, the blobs fill exactly
    // the bytes before the header, and the plaintext is the canonical encoding.
    let mut expect_off = 0u64;
    let mut canon = Vec::with_capacity(plain.len());
    canon.extend_from_slice(pack::HEADER_MAGIC);
    canon.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in &entries {
        assert_eq!(
            e.offset as u64, expect_off,
            "blob offsets are not contiguous"
        );
        assert!(e.blob_type <= pack::TYPE_TREE && e.compression <= compress::ZSTD);
        assert!(e.stored_len as usize >= crypto::OVERHEAD && e.stored_len <= pack::MAX_BLOB_STORED);
        assert!(e.raw_len <= pack::MAX_BLOB_RAW);
        expect_off += e.stored_len as u64;
        canon.push(e.blob_type);
        canon.push(e.compression);
        canon.extend_from_slice(&e.stored_len.to_le_bytes());
        canon.extend_from_slice(&e.raw_len.to_le_bytes());
        canon.extend_from_slice(e.id.as_bytes());
    }
    assert_eq!(expect_off, header_offset, "blobs do not fill the pack");
    assert_eq!(canon, plain, "pack header encoding is not canonical");
}

/// `Keys::open` and `unwrap_master` never panic on arbitrary bytes; a box that
/// opens has exactly 28 bytes of overhead. Sealing the input under each AAD opens
/// to the input, and not under another AAD, truncated, or with one byte flipped.
/// A sealed blob of the input opens through `pack::open_blob`.
pub fn decrypt(data: &[u8]) {
    let keys = fixed_keys();
    for aad in AADS {
        match keys.open(aad, data) {
            Ok(p) => assert_eq!(p.len() + crypto::OVERHEAD, data.len()),
            Err(e) => {
                assert_eq!(
                    e == crypto::OpenError::TooShort,
                    data.len() < crypto::OVERHEAD
                );
            }
        }
    }
    if let Some(m) = crypto::unwrap_master(&FIXED_KEK, data) {
        assert_eq!(data.len(), crypto::MASTER_LEN + crypto::OVERHEAD);
        let _ = Keys::from_master(m);
    }

    let aad = AADS[data.first().copied().unwrap_or(0) as usize % AADS.len()];
    let other = AADS[(data.first().copied().unwrap_or(0) as usize + 1) % AADS.len()];
    let sealed = keys.seal(aad, data);
    assert_eq!(sealed.len(), data.len() + crypto::OVERHEAD);
    assert_eq!(keys.open(aad, &sealed).as_deref(), Ok(data));
    assert!(
        keys.open(other, &sealed).is_err(),
        "opened under the wrong AAD"
    );
    assert!(
        keys.open(aad, &sealed[..sealed.len() - 1]).is_err(),
        "opened truncated"
    );
    let mut flipped = sealed.clone();
    let at = pick(data, flipped.len());
    flipped[at] ^= 1 << (at % 8);
    assert!(
        keys.open(aad, &flipped).is_err(),
        "opened with byte {at} flipped"
    );
    let wrapped_by_kek = crypto::wrap_master(&FIXED_KEK, &FIXED_MASTER);
    assert_eq!(
        crypto::unwrap_master(&FIXED_KEK, &wrapped_by_kek),
        Some(FIXED_MASTER)
    );

    // A blob: compressed (or not), sealed with its type and id as AAD, opened and
    // verified against its id.
    let blob_type = data.len() as u8 & 1;
    let id = keys.blob_id(data);
    let b = SealedBlob::seal(keys, blob_type, id, data, 1);
    let e = BlobEntry {
        id,
        blob_type,
        compression: b.compression,
        offset: 0,
        stored_len: b.data.len() as u32,
        raw_len: b.raw_len,
    };
    assert_eq!(
        pack::open_blob(keys, &e, &b.data).expect("sealed blob opens"),
        data
    );
    let swapped = BlobEntry {
        blob_type: blob_type ^ 1,
        ..e
    };
    assert!(
        pack::open_blob(keys, &swapped, &b.data).is_err(),
        "blob type not bound"
    );
    // The raw input as a stored blob under an entry that names it: never panics.
    let _ = pack::open_blob(keys, &e, data);
}

/// Small FastCDC parameter sets (the v2020 minimums and a little above).
const CHUNKER_PARAMS: [ChunkerParams; 3] = [
    ChunkerParams {
        min: 64,
        avg: 256,
        max: 1024,
    },
    ChunkerParams {
        min: 256,
        avg: 1024,
        max: 4096,
    },
    ChunkerParams {
        min: 1024,
        avg: 2048,
        max: 8192,
    },
];

struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    calls: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        // Vary short reads (1..=step) and report an interruption now and then.
        if self.calls % 5 == 0 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let want = 1 + (self.calls * 7919) % self.step;
        let n = self.data.len().min(out.len()).min(want);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn cut(
    reader: &mut dyn std::io::Read,
    p: ChunkerParams,
    seed: u64,
    hint: Option<u64>,
) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let total = chunk_stream(reader, p, seed, hint, |batch| {
        chunks.extend(batch.iter().map(|c| c.to_vec()));
        Ok(())
    })
    .expect("reading from memory does not fail")
    .expect("the batch callback does not fail");
    assert_eq!(total as usize, chunks.iter().map(Vec::len).sum::<usize>());
    chunks
}

/// Input: selector byte (parameter set and seed) || content. The chunks
/// concatenate to the content, each is at most `max`, all but the last are at
/// least `min`, none is empty, and the cut points do not depend on how the
/// reader delivers the bytes or on the size hint.
pub fn chunker(data: &[u8]) {
    let Some((&sel, content)) = data.split_first() else {
        return;
    };
    let p = CHUNKER_PARAMS[sel as usize % CHUNKER_PARAMS.len()];
    p.validate().expect("fuzz chunker parameters are valid");
    let seed = (sel as u64 >> 2).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let chunks = cut(&mut &content[..], p, seed, Some(content.len() as u64));
    assert_eq!(
        chunks.concat(),
        content,
        "chunks do not concatenate to the input"
    );
    assert!(chunks.iter().all(|c| !c.is_empty()), "empty chunk");
    assert!(
        chunks.iter().all(|c| c.len() <= p.max as usize),
        "chunk over max"
    );
    if let Some((_, init)) = chunks.split_last() {
        assert!(
            init.iter().all(|c| c.len() >= p.min as usize),
            "chunk under min"
        );
    }
    // A stat size that is too small (the file grew) and a reader that trickles.
    let grown = cut(&mut &content[..], p, seed, Some(0));
    assert_eq!(grown, chunks, "cut points depend on the size hint");
    let mut t = Trickle {
        data: content,
        step: 1 + sel as usize % 97,
        calls: 0,
    };
    let trickled = cut(&mut t, p, seed, Some(content.len() as u64 / 2));
    assert_eq!(trickled, chunks, "cut points depend on read sizes");
}

/// `unframe_meta` and `decompress_blob` never panic and never return more than
/// their bound; `frame_meta` -> `unframe_meta` and `compress_blob` ->
/// `decompress_blob` give the input back.
pub fn compress_meta(data: &[u8]) {
    for max in [
        0usize,
        1,
        64,
        4096,
        repofile::MAX_LOCK,
        repofile::MAX_CONFIG,
    ] {
        if let Ok(out) = compress::unframe_meta("fuzz", data, max) {
            assert!(out.len() <= max, "unframe_meta exceeded its bound");
        }
        for c in [compress::NONE, compress::ZSTD, 2] {
            match compress::decompress_blob(c, data.to_vec(), max) {
                Ok(out) if c == compress::ZSTD => assert!(out.len() <= max),
                Ok(out) => assert_eq!(c, compress::NONE, "unknown compression accepted: {out:?}"),
                Err(_) => assert_ne!(c, compress::NONE, "raw payload refused"),
            }
        }
    }
    let framed = compress::frame_meta(data);
    assert!(
        framed.len() <= data.len() + 1,
        "framing grew the body by more than the tag"
    );
    assert_eq!(
        compress::unframe_meta("fuzz", &framed, data.len()).unwrap(),
        data
    );
    if !data.is_empty() {
        assert!(compress::unframe_meta("fuzz", &framed, data.len() - 1).is_err());
    }
    for level in [1, 3] {
        let (c, payload) = compress::compress_blob(data, level);
        let payload = match (c, payload) {
            (compress::NONE, None) => data.to_vec(),
            (compress::ZSTD, Some(p)) => {
                assert!(
                    p.len() + data.len() / 32 < data.len(),
                    "kept a zstd frame that saves too little"
                );
                p
            }
            (c, p) => panic!("compress_blob returned ({c}, {:?})", p.map(|p| p.len())),
        };
        assert_eq!(
            compress::decompress_blob(c, payload, data.len()).unwrap(),
            data
        );
    }
}

fn json_round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T) {
    let a = serde_json::to_vec(v).expect("serializes");
    let back: T = serde_json::from_slice(&a).expect("what we write we read");
    assert_eq!(
        serde_json::to_vec(&back).unwrap(),
        a,
        "JSON round trip is not stable"
    );
}

/// The input parsed as each JSON repository file (config, snapshot, key file,
/// lock): parsing and the reader-side validation never panic, and what parses
/// serializes and parses back to the same thing.
pub fn repofile_json(data: &[u8]) {
    let keys = fixed_keys();
    if let Ok(c) = serde_json::from_slice::<Config>(data) {
        if c.validate().is_ok() {
            cellar::id::RepoId::from_hex(&c.id).expect("validated config id");
        }
        json_round_trip(&c);
    }
    if let Ok(s) = serde_json::from_slice::<Snapshot>(data) {
        if s.validate().is_ok() {
            BlobId::from_hex(&s.tree).expect("validated snapshot tree");
            let _ = s.timestamp();
        }
        let _ = s.parent.as_deref().map(BlobId::from_hex);
        json_round_trip(&s);
    }
    if let Ok(k) = serde_json::from_slice::<KeyFile>(data) {
        // What Repository::open checks before running Argon2id.
        let p = crypto::KdfParams {
            memory_kib: k.kdf.memory_kib,
            iterations: k.kdf.iterations,
            parallelism: k.kdf.parallelism,
        };
        let _ = p.validate();
        let _ = hex::decode(&k.kdf.salt).map(|s| (16..=64).contains(&s.len()));
        if let Ok(sealed) = hex::decode(&k.master_key) {
            let _ = crypto::unwrap_master(&FIXED_KEK, &sealed);
        }
        if let Ok(sealed) = hex::decode(&k.meta) {
            if let Ok(meta) = keys.open(crypto::aad::KEY_META, &sealed) {
                let _ = serde_json::from_slice::<KeyMeta>(&meta);
            }
        }
        json_round_trip(&k);
    }
    if let Ok(l) = serde_json::from_slice::<Lock>(data) {
        let _ = cellar::lock::staleness(&l);
        json_round_trip(&l);
    }
}
