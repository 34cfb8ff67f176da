//! Replays the fuzz seeds and regressions on stable Rust, so that `cargo test`
//! checks every input the fuzzers were ever given a reason to keep.
//!
//! The properties live in fuzz/checks.rs, shared with the libFuzzer targets in
//! fuzz/fuzz_targets/ (see fuzz/README.md). For each target NAME, every file in
//! fuzz/seeds/NAME/ and fuzz/regressions/NAME/ goes through `checks::NAME`, plus
//! cheap deterministic mutations of the seeds (truncations, bit flips).
//!
//! The seeds are written by the ignored test `write_seeds`:
//!     cargo test --test fuzz_corpus -- --ignored write_seeds

#[path = "../fuzz/checks.rs"]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Regular files directly in `dir`, sorted; none if it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .map(|e| e.expect("reading a corpus directory").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    out.sort();
    out
}

/// Runs `check` on `input`; a panic becomes an error line naming `what`.
fn run(check: fn(&[u8]), input: &[u8], what: &str, failures: &mut Vec<String>) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| check(input))) {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        failures.push(format!("{what}: {msg}"));
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} input(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn seeds_and_regressions_replay() {
    let mut failures = Vec::new();
    for (name, check) in checks::TARGETS {
        let seeds = files_in(&fuzz_dir().join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{name}/ is missing or empty");
        let regressions = files_in(&fuzz_dir().join("regressions").join(name));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            run(*check, &data, &path.display().to_string(), &mut failures);
        }
    }
    report(failures);
}

#[test]
fn seed_mutations_hold() {
    let mut failures = Vec::new();
    for (name, check) in checks::TARGETS {
        for path in files_in(&fuzz_dir().join("seeds").join(name)) {
            let data = std::fs::read(&path).unwrap();
            let what = path.display().to_string();
            // Up to 48 truncation points and 48 single-bit flips per seed.
            let step = (data.len() / 48).max(1);
            for cut in (0..data.len()).step_by(step) {
                run(
                    *check,
                    &data[..cut],
                    &format!("{what} cut at {cut}"),
                    &mut failures,
                );
            }
            for at in (0..data.len()).step_by(step) {
                let mut m = data.clone();
                m[at] ^= 1 << (at % 8);
                run(
                    *check,
                    &m,
                    &format!("{what} bit flipped at {at}"),
                    &mut failures,
                );
            }
        }
    }
    report(failures);
}

#[test]
fn every_target_is_wired_up() {
    let cargo_toml = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in checks::TARGETS {
        let src = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        assert!(
            text.contains(&format!("checks::{name}(data)")),
            "{} does not call checks::{name}",
            src.display()
        );
        assert!(
            cargo_toml.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
    // A corpus directory for a target that does not exist would silently not replay.
    for sub in ["seeds", "regressions", "fuzz_targets"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(sub)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                stem.starts_with('.') || checks::TARGETS.iter().any(|(n, _)| *n == stem),
                "{} does not belong to any target in fuzz/checks.rs",
                p.display()
            );
        }
    }
}

/// Writes fuzz/seeds/: valid objects made with the real encoders and the fixed
/// fuzz key, plus a few hand-made invalid ones. Sealed seeds differ on every run
/// (random nonces); commit the result only when the seeds need to change.
#[test]
#[ignore]
fn write_seeds() {
    seeds::write_all(&fuzz_dir().join("seeds"));
    // What was written must pass.
    seeds_and_regressions_replay();
}

mod seeds {
    use std::path::Path;

    use cellar::compress;
    use cellar::crypto;
    use cellar::id::{BlobId, IndexId, PackId};
    use cellar::index::segment::{PackIndex, Segment};
    use cellar::pack::{self, BlobEntry, PackBuilder, SealedBlob};
    use cellar::repofile::{self, ChunkerConfig, Config, KeyFile, KeyMeta, Lock, Snapshot};
    use cellar::tree::{self, Kind, Node};

    use super::checks::{FIXED_KEK, FIXED_MASTER, fixed_keys};

    fn put(root: &Path, target: &str, name: &str, bytes: &[u8]) {
        assert!(super::checks::TARGETS.iter().any(|(n, _)| *n == target));
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    /// Deterministic filler (xorshift), so seeds without nonces are reproducible.
    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn sql(n: usize) -> Vec<u8> {
        let mut s =
            String::from("-- MariaDB dump\nCREATE TABLE `idm_user` (`uuid` varchar(128));\n");
        let mut i = 0;
        while s.len() < n {
            s.push_str(&format!(
                "INSERT INTO `idm_user` VALUES ('u-{i:06}','user{i}','2026-11-{:02} 03:00:00');\n",
                1 + i % 28
            ));
            i += 1;
        }
        s.truncate(n);
        s.into_bytes()
    }

    pub fn write_all(root: &Path) {
        trees(root);
        segments(root);
        pack_headers(root);
        sealed(root);
        chunker(root);
        compression(root);
        json(root);
    }

    fn sample_nodes() -> Vec<Node> {
        let mut f = Node::new(b"cells.sql".to_vec(), Kind::File);
        f.mode = 0o640;
        f.uid = 1000;
        f.gid = 1000;
        f.user = "pydio".into();
        f.group = "pydio".into();
        f.mtime = (1_795_000_000, 123_456_789);
        f.ctime = (1_795_000_001, 0);
        f.inode = 42;
        f.size = 3 << 20;
        f.content = vec![BlobId([1; 32]), BlobId([2; 32])];
        f.xattrs = vec![(b"user.comment".to_vec(), b"nightly".to_vec())];
        let mut d = Node::new(b"data".to_vec(), Kind::Dir);
        d.mode = 0o755;
        d.subtree = Some(BlobId([3; 32]));
        d.nlink = 4;
        let mut l = Node::new(vec![b'l', 0xff, b'n'], Kind::Symlink);
        l.mode = 0o777;
        l.link_target = b"../pydio.json".to_vec();
        let mut c = Node::new(b"null".to_vec(), Kind::CharDev);
        c.rdev = 0x103;
        let mut b = Node::new(b"sda".to_vec(), Kind::BlockDev);
        b.rdev = 0x800;
        vec![
            f,
            d,
            l,
            c,
            b,
            Node::new(b"fifo".to_vec(), Kind::Fifo),
            Node::new(b"sock".to_vec(), Kind::Socket),
        ]
    }

    fn trees(root: &Path) {
        let t = "tree_decode";
        let mut nodes = sample_nodes();
        let enc = tree::encode(&mut nodes);
        assert_eq!(tree::decode(&enc).unwrap(), nodes);
        put(root, t, "valid-all-kinds", &enc);
        put(root, t, "valid-empty", &tree::encode(&mut []));
        // The user name "pydio" patched to bytes that are not UTF-8.
        let mut lossy = enc.clone();
        let at = lossy.windows(5).position(|w| w == b"pydio").unwrap();
        lossy[at..at + 5].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0x80]);
        assert_eq!(tree::decode(&lossy).unwrap().len(), nodes.len());
        put(root, t, "valid-user-not-utf8", &lossy);
        // Two entries "a" and "b" with their names swapped: unsorted.
        let mut two = vec![
            Node::new(b"a".to_vec(), Kind::Fifo),
            Node::new(b"b".to_vec(), Kind::Fifo),
        ];
        let mut unsorted = tree::encode(&mut two);
        let first = 8 + 2;
        let second = first + 80 - 2 + 2;
        unsorted.swap(first, second);
        put(root, t, "invalid-unsorted", &unsorted);
        let mut dotdot = vec![Node::new(b"..".to_vec(), Kind::Dir)];
        put(root, t, "invalid-dotdot-name", &tree::encode(&mut dotdot));
        let mut hostile = tree::TREE_MAGIC.to_vec();
        hostile.extend_from_slice(&u32::MAX.to_le_bytes());
        hostile.extend_from_slice(&[0x41; 64]);
        put(root, t, "invalid-hostile-count", &hostile);
    }

    fn segments(root: &Path) {
        let t = "index_segment";
        let blob = |n: u8, offset: u32, stored_len: u32| BlobEntry {
            id: BlobId([n; 32]),
            blob_type: n & 1,
            compression: (n >> 1) & 1,
            offset,
            stored_len,
            raw_len: stored_len * 3,
        };
        let seg = Segment {
            superseded: vec![IndexId([0xaa; 32]), IndexId([0xbb; 32])],
            packs: vec![
                PackIndex {
                    id: PackId([0x10; 32]),
                    size: 1000,
                    blobs: vec![blob(1, 0, 100), blob(2, 100, 500)],
                },
                PackIndex {
                    id: PackId([0x20; 32]),
                    size: 16 << 20,
                    blobs: vec![blob(3, 0, 28)],
                },
            ],
        };
        let body = seg.encode_body();
        put(root, t, "valid-two-packs", &body);
        put(root, t, "valid-empty", &Segment::default().encode_body());
        let mut outside = seg.clone();
        outside.superseded.clear();
        outside.packs[0].blobs[1].stored_len = 900;
        put(root, t, "invalid-blob-outside-pack", &outside.encode_body());
        assert_eq!(Segment::decode_body(&body).unwrap(), seg);
        assert!(Segment::decode_body(&outside.encode_body()).is_err());
    }

    fn pack_headers(root: &Path) {
        let t = "pack_header";
        let keys = fixed_keys();
        let mut b = PackBuilder::new(4096);
        for (i, plain) in [&b"alpha"[..], &sql(2000), b""].iter().enumerate() {
            b.add(SealedBlob::seal(
                keys,
                (i % 2) as u8,
                keys.blob_id(plain),
                plain,
                3,
            ));
        }
        let (id, bytes, _) = b.finish(keys);
        let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().unwrap();
        let (off, len) = pack::header_range(id, bytes.len() as u64, trailer).unwrap();
        let header = keys
            .open(
                crypto::aad::PACK_HEADER,
                &bytes[off as usize..(off + len) as usize],
            )
            .unwrap();
        let with_offset = |o: u64, h: &[u8]| [&o.to_le_bytes()[..], h].concat();
        assert_eq!(
            pack::parse_header(keys, id, &keys.seal(crypto::aad::PACK_HEADER, &header), off)
                .unwrap()
                .len(),
            3
        );
        put(root, t, "valid-three-blobs", &with_offset(off, &header));
        put(root, t, "valid-empty", &with_offset(0, b"CPH1\0\0\0\0"));
        put(
            root,
            t,
            "invalid-wrong-offset",
            &with_offset(off + 1, &header),
        );
        let mut short = header.clone();
        short[8 + 2..8 + 6].copy_from_slice(&27u32.to_le_bytes());
        put(
            root,
            t,
            "invalid-stored-len-under-overhead",
            &with_offset(off, &short),
        );
    }

    fn sealed(root: &Path) {
        let t = "decrypt";
        let keys = fixed_keys();
        put(
            root,
            t,
            "valid-config-box",
            &keys.seal(
                crypto::aad::CONFIG,
                &compress::frame_meta(b"{\"version\":1}"),
            ),
        );
        put(
            root,
            t,
            "valid-index-box",
            &keys.seal(crypto::aad::INDEX, &sql(600)),
        );
        put(
            root,
            t,
            "valid-wrapped-master",
            &crypto::wrap_master(&FIXED_KEK, &FIXED_MASTER),
        );
        let plain = sql(1500);
        let blob = SealedBlob::seal(keys, pack::TYPE_DATA, keys.blob_id(&plain), &plain, 3);
        put(root, t, "valid-blob-zstd", &blob.data);
        put(root, t, "invalid-too-short", &noise(20, 5));
    }

    fn chunker(root: &Path) {
        let t = "chunker";
        put(
            root,
            t,
            "text-small-params",
            &[&[0u8][..], &sql(3000)].concat(),
        );
        put(
            root,
            t,
            "noise-mid-params",
            &[&[1u8][..], &noise(4000, 11)].concat(),
        );
        put(
            root,
            t,
            "zeros-large-params",
            &[&[2u8][..], &[0u8; 3000][..]].concat(),
        );
        put(root, t, "empty", &[7u8]);
    }

    fn compression(root: &Path) {
        let t = "compress_meta";
        put(root, t, "framed-zstd", &compress::frame_meta(&sql(3000)));
        put(
            root,
            t,
            "framed-raw",
            &compress::frame_meta(b"{\"version\":1}"),
        );
        // A 1 MiB run of zeros: a few dozen bytes that expand past most bounds.
        put(
            root,
            t,
            "framed-zstd-bomb",
            &compress::frame_meta(&vec![0u8; 1 << 20]),
        );
        put(root, t, "invalid-tag", &[9, 1, 2, 3]);
    }

    fn json(root: &Path) {
        let t = "repofile_json";
        let keys = fixed_keys();
        let config = Config {
            version: repofile::FORMAT_VERSION,
            id: hex::encode([0x5c; 32]),
            created: "2026-11-25T03:00:00.000000000+01:00".into(),
            chunker: ChunkerConfig::default(),
            compression: repofile::CompressionConfig {
                algorithm: "zstd".into(),
                level: 3,
            },
            pack_size: 16 << 20,
        };
        put(
            root,
            t,
            "config",
            &serde_json::to_vec_pretty(&config).unwrap(),
        );
        let snap = Snapshot {
            version: repofile::FORMAT_VERSION,
            time: "2026-11-25T03:00:00.123456789+01:00".into(),
            tree: hex::encode([0x77; 32]),
            paths: vec!["/srv/cells".into(), "/cells.sql".into()],
            hostname: "cells1".into(),
            username: "root".into(),
            uid: 0,
            gid: 0,
            tags: vec!["nightly".into()],
            parent: Some(hex::encode([0x66; 32])),
            program: "cellar 0.1.0".into(),
            chunker: repofile::SnapshotChunker {
                large: config.chunker.large,
                small: config.chunker.small,
                rule: "v1".into(),
            },
            summary: Some(repofile::Summary {
                files_new: 12,
                total_bytes: 1 << 30,
                duration_s: 61.25,
                ..Default::default()
            }),
        };
        put(root, t, "snapshot", &serde_json::to_vec(&snap).unwrap());
        let meta = KeyMeta {
            created: "2026-11-25T03:00:00+01:00".into(),
            hostname: "cells1".into(),
            username: "root".into(),
        };
        let kf = KeyFile {
            version: repofile::FORMAT_VERSION,
            kdf: repofile::KdfJson {
                algorithm: "argon2id".into(),
                version: 19,
                memory_kib: 65536,
                iterations: 3,
                parallelism: 1,
                salt: hex::encode([0x33; 32]),
            },
            master_key: hex::encode(crypto::wrap_master(&FIXED_KEK, &FIXED_MASTER)),
            meta: hex::encode(
                keys.seal(crypto::aad::KEY_META, &serde_json::to_vec(&meta).unwrap()),
            ),
        };
        put(root, t, "keyfile", &serde_json::to_vec_pretty(&kf).unwrap());
        let lock = Lock {
            version: repofile::FORMAT_VERSION,
            time: "2026-11-25T03:00:00+01:00".into(),
            hostname: "cells1".into(),
            username: "root".into(),
            pid: 4242,
            exclusive: false,
        };
        put(root, t, "lock", &serde_json::to_vec(&lock).unwrap());
        put(
            root,
            t,
            "invalid-snapshot-time",
            br#"{"version":1,"time":"yesterday","tree":"00","paths":[],"hostname":"h","username":"u","uid":0,"gid":0,"program":"p","chunker":{"large":{"min":1,"avg":2,"max":3},"small":{"min":1,"avg":2,"max":3},"rule":"v1"},"summary":{"duration_s":1e999}}"#,
        );
    }
}
