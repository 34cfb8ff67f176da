//! Damaged repository files: the damage is found, the damaged object is named
//! by its id, and everything the damage does not touch is still restored.

use std::fs;
use std::path::{Path, PathBuf};

use cellar::id::{BlobId, PackId};

use crate::util::*;

/// The blob of `pack` whose stored bytes include `offset` (its header is at the end, intact).
fn blob_at(repo: &cellar::Repository, pack: &Path, offset: u64) -> cellar::pack::BlobEntry {
    let bytes = fs::read(pack).unwrap();
    let id = PackId::from_hex(pack.file_name().unwrap().to_str().unwrap()).unwrap();
    let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().unwrap();
    let (hoff, hlen) = cellar::pack::header_range(id, bytes.len() as u64, trailer).unwrap();
    let entries = cellar::pack::parse_header(
        repo.keys(),
        id,
        &bytes[hoff as usize..(hoff + hlen) as usize],
        hoff,
    )
    .unwrap();
    *entries
        .iter()
        .find(|e| e.offset as u64 <= offset && offset < (e.offset + e.stored_len) as u64)
        .expect("no blob covers the offset")
}

/// The content blob ids of a file in the latest snapshot.
fn content_of(repo: &cellar::Repository, path: &Path) -> Vec<BlobId> {
    let (_, snap) = repo.find_snapshot("latest").unwrap();
    let root = BlobId::from_hex(&snap.tree).unwrap();
    let node = cellar::restorer::resolve(repo, root, path.to_str().unwrap()).unwrap();
    assert!(
        node.content.len() > 1,
        "{} is a single chunk",
        path.display()
    );
    node.content
}

#[test]
fn a_flipped_byte_in_a_pack_fails_only_the_file_it_belongs_to() {
    let t = TestRepo::new("flip");
    let src = t.dir.mkdir("src");
    let a = src.join("a.bin");
    let b = src.join("b.bin");
    // Each several large chunks (0.5 to 8 MiB, 1 MiB on average).
    write_random(&a, 5 * MIB, 11);
    write_random(&b, 5 * MIB, 22);
    t.backup(&[&src]);

    // The data pack is the large one; the trees have a small pack of their own.
    let packs = t.packs();
    let (pack, size) = packs.iter().max_by_key(|p| p.1).unwrap().clone();
    assert!(size > 9 * MIB, "expected one data pack, got {packs:?}");
    let (damaged, in_a, in_b) = {
        let repo = t.open();
        let e = blob_at(&repo, &pack, 100);
        assert_eq!(e.blob_type, cellar::pack::TYPE_DATA);
        (
            e.id,
            content_of(&repo, &a).contains(&e.id),
            content_of(&repo, &b).contains(&e.id),
        )
    };
    assert!(in_a ^ in_b, "blob {damaged} belongs to exactly one file");
    let (bad, good): (&PathBuf, &PathBuf) = if in_a { (&a, &b) } else { (&b, &a) };
    cellar::backend::local::flip_byte(&pack, 100).unwrap();

    let target = t.dir.join("target");
    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_eq!(r.code, exit::ERROR, "{}", r.report());
    let id = damaged.to_hex();
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("stderr does not name blob {id}\n{}", r.report()));
    let bad_name = bad.file_name().unwrap().to_str().unwrap();
    assert!(
        line.contains(bad_name),
        "the error does not name {bad_name}: {line}"
    );
    assert_same_file(good, &target.join(good.file_name().unwrap()));
    assert!(
        !target.join(bad_name).exists(),
        "the damaged file was left in the target"
    );

    // The good file alone restores cleanly.
    let alone = t.dir.join("alone");
    let spec = format!("latest:{}", good.display());
    let r = t.restore(&spec, &alone);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_file(good, &alone.join(good.file_name().unwrap()));
}

/// Restore loads a snapshot's trees in batches: a damaged one fails only the
/// directory it describes, is named, and every other directory still restores.
#[test]
fn a_damaged_tree_fails_only_its_directory() {
    let t = TestRepo::new("bad-tree");
    let src = t.dir.mkdir("src");
    for d in ["a", "b", "c"] {
        t.dir.write(format!("src/{d}/inner/f"), d.as_bytes());
        t.dir.write(format!("src/{d}/g"), b"top");
    }
    t.backup(&[&src]);
    let (tree, pack, offset) = {
        let repo = t.open();
        let (_, snap) = repo.find_snapshot("latest").unwrap();
        let root = BlobId::from_hex(&snap.tree).unwrap();
        let b = cellar::restorer::resolve(&repo, root, &format!("{}/b", src.display())).unwrap();
        let tree = b.subtree.unwrap();
        let loc = repo.cache().lookup(&tree).unwrap().unwrap();
        (tree, loc.pack, loc.entry.offset as u64)
    };
    let pack_path = t
        .packs()
        .into_iter()
        .map(|p| p.0)
        .find(|p| p.file_name().unwrap().to_str() == Some(pack.to_hex().as_str()))
        .unwrap();
    cellar::backend::local::flip_byte(&pack_path, offset + 20).unwrap();

    let target = t.dir.join("target");
    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_eq!(r.code, exit::ERROR, "{}", r.report());
    let id = tree.to_hex();
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("stderr does not name tree {id}\n{}", r.report()));
    assert!(line.contains("/b"), "the error does not name /b: {line}");
    for d in ["a", "c"] {
        assert_same_tree(&src.join(d), &target.join(d));
    }
    assert!(!target.join("b/g").exists(), "{}", r.report());
}

#[test]
fn a_damaged_snapshot_file_is_named_and_the_others_still_list() {
    let t = TestRepo::new("bad-snapshot");
    let src = t.dir.write("src/f", b"x");
    let first = t.backup(&[&src]);
    fs::write(&src, b"y").unwrap();
    let second = t.backup(&[&src]);
    let first_id = first["snapshot_id"].as_str().unwrap();
    let second_id = second["snapshot_id"].as_str().unwrap();
    cellar::backend::local::flip_byte(&t.repo.join("snapshots").join(first_id), 40).unwrap();

    // A fresh cache must read the snapshot files.
    fs::remove_dir_all(&t.cache).unwrap();
    let r = t.cellar().args(["--json", "snapshots"]).ok();
    assert_eq!(
        snapshot_ids(&r),
        vec![second_id.to_string()],
        "{}",
        r.report()
    );
    assert!(
        r.stderr.contains(first_id),
        "the damaged snapshot is not named\n{}",
        r.report()
    );
}

#[test]
fn a_damaged_index_segment_is_named() {
    let t = TestRepo::new("bad-index");
    let src = t.dir.write("src/f", b"x");
    t.backup(&[&src]);
    let segs: Vec<_> = fs::read_dir(t.repo.join("index")).unwrap().collect();
    assert_eq!(segs.len(), 1);
    let seg = segs[0].as_ref().unwrap().path();
    cellar::backend::local::flip_byte(&seg, 50).unwrap();
    fs::remove_dir_all(&t.cache).unwrap();

    let target = t.dir.join("target");
    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_ne!(r.code, 0, "{}", r.report());
    let id = seg.file_name().unwrap().to_str().unwrap();
    assert!(
        r.stderr.contains(id),
        "the damaged segment is not named\n{}",
        r.report()
    );
    assert!(!target.join("f").exists());
}
