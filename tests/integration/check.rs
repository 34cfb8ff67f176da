//! `check`, `repair index` and `repair snapshots` on deliberately damaged
//! repositories. Each test copies one small shared repository (two snapshots,
//! several 1 MiB packs), damages the copy in one way, and asserts that:
//!
//! - `check` exits 1 and names the damaged snapshots and exactly the files the
//!   damage reaches (by path, computed here from the trees and the index);
//! - after `repair index` and `repair snapshots --forget`, `check --read-data`
//!   passes and every file that was not lost restores byte-identical.
//!
//! tests/fixtures/README.md describes each damage and the expected report.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cellar::id::{BlobId, IndexId, PackId};
use cellar::index::Segment;
use cellar::pack::{BlobEntry, SealedBlob, TYPE_DATA, TYPE_TREE};
use cellar::packer::Packer;
use cellar::tree::{self, Kind, Node};

use crate::util::*;

/// The shared, undamaged repository.
struct Base {
    t: TestRepo,
    src: PathBuf,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        // 1 MiB packs: the 1.5 MiB files (one or two chunks each) spread over
        // several data packs, so losing one pack loses some files, not all.
        let t = TestRepo::with_init_args("check-base", &["--pack-size-mib", "1"]);
        let src = t.dir.mkdir("src");
        for (name, seed) in [("a.bin", 1), ("b.bin", 2), ("c.bin", 3), ("sub/d.bin", 4)] {
            let p = src.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            write_random(&p, 3 * MIB / 2, seed);
        }
        fs::write(src.join("small.txt"), b"small and whole\n").unwrap();
        fs::write(src.join("sub/e.txt"), b"another small file\n").unwrap();
        t.backup(&[&src]);
        // The second snapshot shares everything with the first, plus one file.
        write_random(&src.join("sub/f.bin"), 3 * MIB / 2, 5);
        t.backup(&[&src]);
        Base { t, src }
    })
}

/// A private copy of the base repository (its own cache).
fn copy_of(name: &str) -> TestRepo {
    let b = base();
    let t = TestRepo::uninitialized(name);
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&b.t.repo)
        .arg(&t.repo)
        .status()
        .unwrap();
    assert!(st.success());
    t
}

/// Where one file's content lives.
#[derive(Clone, Debug)]
struct Chunk {
    pack: PackId,
    entry: BlobEntry,
}

/// Every file of a snapshot (absolute path in the snapshot) with its chunks.
fn files_of(repo: &cellar::Repository, snapshot: &str) -> BTreeMap<String, Vec<Chunk>> {
    let (_, snap) = repo.find_snapshot(snapshot).unwrap();
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), BlobId::from_hex(&snap.tree).unwrap())];
    while let Some((prefix, id)) = stack.pop() {
        for n in repo.load_tree(&id).unwrap() {
            let path = format!("{prefix}/{}", String::from_utf8_lossy(&n.name));
            match n.kind {
                Kind::Dir => stack.push((path, n.subtree.unwrap())),
                Kind::File => {
                    let chunks = n
                        .content
                        .iter()
                        .map(|b| {
                            let loc = repo.cache().lookup(b).unwrap().unwrap();
                            Chunk {
                                pack: loc.pack,
                                entry: loc.entry,
                            }
                        })
                        .collect();
                    out.insert(path, chunks);
                }
                _ => {}
            }
        }
    }
    out
}

/// Snapshot id -> its files, for every snapshot.
fn all_files(t: &TestRepo) -> BTreeMap<String, BTreeMap<String, Vec<Chunk>>> {
    let repo = t.open();
    t.snapshot_ids()
        .into_iter()
        .map(|id| {
            let f = files_of(&repo, &id);
            (id, f)
        })
        .collect()
}

fn pack_path(t: &TestRepo, p: &PackId) -> PathBuf {
    let h = p.to_hex();
    t.repo.join("data").join(&h[..2]).join(&h)
}

/// The pack holding the first chunk of a.bin (in both snapshots).
fn victim(files: &BTreeMap<String, BTreeMap<String, Vec<Chunk>>>) -> (String, Chunk) {
    let b = base();
    let a = format!("{}/a.bin", b.src.display());
    let first = files.values().next().unwrap();
    (a.clone(), first[&a][0].clone())
}

/// Per snapshot, the files with a chunk for which `hit` is true.
fn affected(
    files: &BTreeMap<String, BTreeMap<String, Vec<Chunk>>>,
    hit: impl Fn(&Chunk) -> bool,
) -> BTreeMap<String, BTreeSet<String>> {
    files
        .iter()
        .map(|(s, f)| {
            let set = f
                .iter()
                .filter(|(_, c)| c.iter().any(&hit))
                .map(|(p, _)| p.clone())
                .collect();
            (s.clone(), set)
        })
        .filter(|(_, set): &(String, BTreeSet<String>)| !set.is_empty())
        .collect()
}

/// `check --json` (plus `extra`): the report, asserting the exit code.
fn check(t: &TestRepo, extra: &[&str], code: i32) -> (Run, serde_json::Value) {
    let r = t
        .cellar()
        .args(["--json", "check"])
        .args(extra)
        .expect(code);
    let v = r.json();
    assert_eq!(v["ok"].as_bool(), Some(code == 0), "{}", r.report());
    (r, v)
}

/// Damaged paths per snapshot in a report: (lost, at risk).
fn reported(v: &serde_json::Value) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for s in v["damaged_snapshots"].as_array().unwrap() {
        let mut lost = BTreeSet::new();
        let mut risk = BTreeSet::new();
        for e in s["damaged"].as_array().unwrap() {
            let p = e["path"].as_str().unwrap().to_string();
            if e["lost"].as_bool().unwrap() {
                lost.insert(p);
            } else {
                risk.insert(p);
            }
        }
        out.insert(s["id"].as_str().unwrap().to_string(), (lost, risk));
    }
    out
}

/// The text report names every damaged snapshot (short id) and path.
fn assert_text_names(t: &TestRepo, extra: &[&str], want: &BTreeMap<String, BTreeSet<String>>) {
    let r = t.cellar().arg("check").args(extra).expect(exit::ERROR);
    for (snap, paths) in want {
        assert!(
            r.stdout.contains(&snap[..8]),
            "snapshot {snap} not named\n{}",
            r.report()
        );
        for p in paths {
            assert!(
                r.stdout.contains(p.as_str()),
                "{p} not named\n{}",
                r.report()
            );
        }
    }
}

/// Repairs, then checks everything and restores every snapshot: files not in
/// `lost` (per original snapshot) restore byte-identical, lost ones are absent.
fn repair_and_verify(
    t: &TestRepo,
    before: &BTreeMap<String, BTreeMap<String, Vec<Chunk>>>,
    lost: &BTreeMap<String, BTreeSet<String>>,
) {
    t.cellar().args(["repair", "index"]).ok();
    let r = t
        .cellar()
        .args(["--json", "repair", "snapshots", "--forget"])
        .ok();
    let v = r.json();
    let mut now_of: BTreeMap<String, String> = BTreeMap::new();
    for s in v["snapshots"].as_array().unwrap() {
        let orig = s["original"].as_str().unwrap().to_string();
        let removed: BTreeSet<String> = s["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect();
        let want = lost.get(&orig).cloned().unwrap_or_default();
        assert_eq!(
            removed,
            want,
            "what the repair of {orig} leaves out\n{}",
            r.report()
        );
        let now = s["repaired"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(orig.clone());
        now_of.insert(orig, now);
    }
    let (_, report) = check(t, &["--read-data"], exit::OK);
    assert!(report["damaged_snapshots"].as_array().unwrap().is_empty());
    let ids: BTreeSet<String> = t.snapshot_ids().into_iter().collect();
    assert_eq!(
        ids,
        now_of.values().cloned().collect(),
        "snapshots after the repair"
    );
    for (orig, files) in before {
        let now = &now_of[orig];
        let target = t.dir.join(format!("restore-{}", &now[..8]));
        let r = t.restore(now, &target);
        assert_eq!(r.code, 0, "{}", r.report());
        let gone = lost.get(orig).cloned().unwrap_or_default();
        for path in files.keys() {
            let restored = target.join(path.trim_start_matches('/'));
            if gone.contains(path) {
                assert!(!restored.exists(), "{path} is lost but was restored");
            } else {
                assert_same_file(Path::new(path), &restored);
            }
        }
    }
}

#[test]
fn a_clean_repository_passes_and_subsets_read_every_pack_once() {
    let t = copy_of("check-clean");
    let (_, v) = check(&t, &[], exit::OK);
    assert!(v["packs_read"].as_array().unwrap().is_empty());
    let all: BTreeSet<String> = t
        .packs()
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(all.len() >= 4, "expected several packs, got {all:?}");
    let (_, v) = check(&t, &["--read-data"], exit::OK);
    let read = |v: &serde_json::Value| -> Vec<String> {
        v["packs_read"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(read(&v).into_iter().collect::<BTreeSet<_>>(), all);
    let mut seen: Vec<String> = Vec::new();
    for n in 1..=4 {
        let (_, v) = check(&t, &["--read-data-subset", &format!("{n}/4")], exit::OK);
        seen.extend(read(&v));
    }
    seen.sort();
    let expect: Vec<String> = all.iter().cloned().collect();
    assert_eq!(
        seen, expect,
        "slices 1/4..4/4 together read every pack exactly once"
    );
    let (_, v) = check(&t, &["--read-data-subset", "50%"], exit::OK);
    assert_eq!(read(&v).len(), all.len().div_ceil(2));
    t.cellar()
        .args(["check", "--read-data-subset", "5/4"])
        .expect(exit::USAGE);
}

#[test]
fn a_missing_pack_names_the_files_it_held() {
    let t = copy_of("check-missing");
    let files = all_files(&t);
    let (_, victim) = victim(&files);
    let want = affected(&files, |c| c.pack == victim.pack);
    fs::remove_file(pack_path(&t, &victim.pack)).unwrap();

    let (r, v) = check(&t, &[], exit::ERROR);
    let got = reported(&v);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        want.keys().cloned().collect(),
        "damaged snapshots\n{}",
        r.report()
    );
    for (s, paths) in &want {
        assert_eq!(&got[s].0, paths, "lost files of {s}\n{}", r.report());
    }
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == victim.pack.to_hex()
                && e["message"].as_str().unwrap().contains("missing")),
        "{}",
        r.report()
    );
    assert_text_names(&t, &[], &want);
    repair_and_verify(&t, &files, &want);
}

#[test]
fn a_truncated_pack_loses_only_what_lay_past_the_cut() {
    let t = copy_of("check-truncated");
    let files = all_files(&t);
    let (_, victim) = victim(&files);
    let path = pack_path(&t, &victim.pack);
    let size = fs::metadata(&path).unwrap().len();
    let cut = size / 2;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let past = |c: &Chunk| {
        c.pack == victim.pack && c.entry.offset as u64 + c.entry.stored_len as u64 > cut
    };
    let lost = affected(&files, past);
    let risk = affected(&files, |c| c.pack == victim.pack && !past(c));
    assert!(!lost.is_empty());

    let (r, v) = check(&t, &[], exit::ERROR);
    let got = reported(&v);
    for (s, paths) in &lost {
        assert_eq!(&got[s].0, paths, "lost files of {s}\n{}", r.report());
    }
    for (s, paths) in &risk {
        // At risk: restorable today, but in a damaged pack.
        let not_lost: BTreeSet<String> = paths.difference(&got[s].0).cloned().collect();
        assert!(not_lost.is_subset(&got[s].1), "{}", r.report());
    }
    assert_text_names(&t, &[], &lost);
    // repair index salvages the blobs before the cut into a new pack.
    repair_and_verify(&t, &files, &lost);
}

#[test]
fn a_flipped_bit_in_a_pack_header_is_found_by_read_data_and_salvaged() {
    let t = copy_of("check-header");
    let files = all_files(&t);
    let (_, victim) = victim(&files);
    let path = pack_path(&t, &victim.pack);
    let bytes = fs::read(&path).unwrap();
    let hlen = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as u64;
    let size = bytes.len() as u64;
    cellar::backend::local::flip_byte(&path, size - 4 - hlen / 2).unwrap();
    let at_risk = affected(&files, |c| c.pack == victim.pack);

    // The structure is intact: only reading the pack finds the damage.
    check(&t, &[], exit::OK);
    let (r, v) = check(&t, &["--read-data"], exit::ERROR);
    let got = reported(&v);
    for (s, paths) in &at_risk {
        assert!(got[s].0.is_empty(), "nothing is lost\n{}", r.report());
        assert_eq!(&got[s].1, paths, "files at risk in {s}\n{}", r.report());
    }
    assert!(r.stdout.contains("header"), "{}", r.report());
    assert_text_names(&t, &["--read-data"], &at_risk);
    // Every blob still verifies: repair index copies them all, nothing is lost.
    repair_and_verify(&t, &files, &BTreeMap::new());
}

#[test]
fn an_index_pointing_past_a_packs_end_is_rebuilt_from_the_headers() {
    let t = copy_of("check-past-end");
    let files = all_files(&t);
    let (_, victim) = victim(&files);
    {
        let repo = t.open();
        let mut old = Vec::new();
        let mut packs = Vec::new();
        for e in fs::read_dir(t.repo.join("index")).unwrap() {
            let p = e.unwrap().path();
            let id = IndexId::from_hex(p.file_name().unwrap().to_str().unwrap()).unwrap();
            let seg = Segment::open(repo.keys(), id, &fs::read(&p).unwrap()).unwrap();
            old.push(id);
            packs.extend(seg.packs);
        }
        let p = packs.iter_mut().find(|p| p.id == victim.pack).unwrap();
        let real = p.size;
        let e = p
            .blobs
            .iter_mut()
            .find(|b| b.id == victim.entry.id)
            .unwrap();
        e.offset = real + 50;
        p.size = real + e.stored_len + 100;
        let seg = Segment {
            superseded: old,
            packs,
        };
        let (id, bytes) = seg.seal(repo.keys());
        fs::write(t.repo.join("index").join(id.to_hex()), bytes).unwrap();
    }
    let want = affected(&files, |c| c.entry.id == victim.entry.id);

    let (r, v) = check(&t, &[], exit::ERROR);
    let got = reported(&v);
    for (s, paths) in &want {
        assert_eq!(&got[s].0, paths, "lost files of {s}\n{}", r.report());
    }
    assert_text_names(&t, &[], &want);
    // The pack itself is whole: the rebuilt index finds everything again.
    repair_and_verify(&t, &files, &BTreeMap::new());
}

#[test]
fn a_tree_referencing_missing_blobs_names_the_paths() {
    let t = copy_of("check-tree");
    let good: &[u8] = b"the good file\n";
    let planted = {
        let repo = t.open();
        let keys = repo.keys().clone();
        let (root, _) = Packer::run(&repo, 1, false, |p: &Packer| {
            let gid = keys.blob_id(good);
            p.add(SealedBlob::seal(&keys, TYPE_DATA, gid, good, 3))?;
            let file = |name: &[u8], content: BlobId, size: u64| {
                let mut n = Node::new(name.to_vec(), Kind::File);
                n.mode = 0o644;
                n.content = vec![content];
                n.size = size;
                n
            };
            let mut dir = Node::new(b"sub".to_vec(), Kind::Dir);
            dir.mode = 0o755;
            dir.subtree = Some(BlobId([8; 32]));
            let mut nodes = vec![
                file(b"good", gid, good.len() as u64),
                file(b"missing.bin", BlobId([7; 32]), 10),
                dir,
            ];
            let plain = tree::encode(&mut nodes);
            let root = keys.blob_id(&plain);
            p.add(SealedBlob::seal(&keys, TYPE_TREE, root, &plain, 3))?;
            Ok(root)
        })
        .unwrap();
        let (_, mut snap) = repo.find_snapshot("latest").unwrap();
        snap.tree = root.to_hex();
        snap.time = cellar::repofile::now_rfc3339();
        snap.paths = vec!["/planted".into()];
        snap.parent = None;
        snap.summary = None;
        repo.save_snapshot(&snap).unwrap().to_hex()
    };
    let want: BTreeMap<String, BTreeSet<String>> = [(
        planted.clone(),
        ["/missing.bin".to_string(), "/sub".to_string()].into(),
    )]
    .into();

    let (r, v) = check(&t, &[], exit::ERROR);
    let got = reported(&v);
    assert_eq!(
        got.len(),
        1,
        "only the planted snapshot is damaged\n{}",
        r.report()
    );
    assert_eq!(got[&planted].0, want[&planted], "{}", r.report());
    assert_text_names(&t, &[], &want);

    t.cellar().args(["repair", "index"]).ok();
    let r = t
        .cellar()
        .args(["--json", "repair", "snapshots", "--forget"])
        .ok();
    let v = r.json();
    let rep = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["original"] == planted.as_str())
        .unwrap();
    let new = rep["repaired"].as_str().unwrap().to_string();
    check(&t, &["--read-data"], exit::OK);
    let snaps = t.cellar().args(["--json", "snapshots"]).ok().json();
    let s = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == new.as_str())
        .unwrap();
    let tags: Vec<&str> = s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"repaired"), "{tags:?}");
    assert!(
        tags.contains(&format!("repaired-from:{planted}").as_str()),
        "{tags:?}"
    );
    let target = t.dir.join("restored");
    t.restore(&new, &target);
    assert_eq!(fs::read(target.join("good")).unwrap(), good);
    assert!(!target.join("missing.bin").exists());
    assert!(!target.join("sub").exists());
    // The backups themselves were never damaged.
    let b = base();
    let target = t.dir.join("restored-latest-backup");
    let ids = t.snapshot_ids();
    assert_eq!(
        ids.len(),
        3,
        "two backups and the repaired planted snapshot"
    );
    let r = t.restore(&ids[1], &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_tree(&b.src, &target.join(b.src.strip_prefix("/").unwrap()));
}
