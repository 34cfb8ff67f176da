//! A repository is untrusted input to restore. Trees whose entry names would
//! escape or confuse the target are refused, and what already exists in the
//! target (symlinks planted there) is replaced, never followed.
//!
//! Honest backups cannot produce such trees, so they are built here through the
//! library: `tree::encode` writes whatever names it is given.

use std::fs;
use std::path::Path;

use cellar::id::BlobId;
use cellar::pack::{SealedBlob, TYPE_DATA, TYPE_TREE};
use cellar::packer::Packer;
use cellar::repofile::{Snapshot, SnapshotChunker};
use cellar::tree::{self, Kind, Node};

use crate::util::*;

const GOOD: &[u8] = b"harmless content\n";
const EVIL: &[u8] = b"evil content\n";

fn file_node(name: &[u8], content: BlobId, size: usize) -> Node {
    let mut n = Node::new(name.to_vec(), Kind::File);
    n.mode = 0o644;
    n.mtime = (1_700_000_000, 0);
    n.content = vec![content];
    n.size = size as u64;
    n
}

/// Writes a snapshot whose root tree holds a file "good" and a directory "sub";
/// `bad_name` names a file in the root tree (`nested` false) or in "sub" (true).
/// Returns the id of the tree that holds the bad name.
fn plant(t: &TestRepo, bad_name: &[u8], nested: bool) -> BlobId {
    let repo = t.open();
    let keys = repo.keys().clone();
    let seal = |ty, data: &[u8]| {
        let id = keys.blob_id(data);
        (id, SealedBlob::seal(&keys, ty, id, data, 3))
    };
    let ((root, hostile_tree), _) = Packer::run(&repo, 1, false, |p: &Packer| {
        let (good, blob) = seal(TYPE_DATA, GOOD);
        p.add(blob)?;
        let (evil, blob) = seal(TYPE_DATA, EVIL);
        p.add(blob)?;
        let bad = file_node(bad_name, evil, EVIL.len());
        let mut sub_nodes = vec![file_node(b"inner", good, GOOD.len())];
        let mut root_nodes = vec![file_node(b"good", good, GOOD.len())];
        if nested {
            sub_nodes.push(bad);
        } else {
            root_nodes.push(bad);
        }
        let (sub, blob) = seal(TYPE_TREE, &tree::encode(&mut sub_nodes));
        p.add(blob)?;
        let mut dir = Node::new(b"sub".to_vec(), Kind::Dir);
        dir.mode = 0o755;
        dir.subtree = Some(sub);
        root_nodes.push(dir);
        let (root, blob) = seal(TYPE_TREE, &tree::encode(&mut root_nodes));
        p.add(blob)?;
        Ok((root, if nested { sub } else { root }))
    })
    .unwrap();
    let cfg = repo.config().chunker;
    repo.save_snapshot(&Snapshot {
        version: 1,
        time: cellar::repofile::now_rfc3339(),
        tree: root.to_hex(),
        paths: vec!["/planted".into()],
        hostname: "attacker".into(),
        username: "mallory".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        program: "hostile test".into(),
        chunker: SnapshotChunker {
            large: cfg.large,
            small: cfg.small,
            rule: "v1".into(),
        },
        summary: None,
    })
    .unwrap();
    hostile_tree
}

fn assert_refused(bad_name: &[u8], nested: bool) {
    let t = TestRepo::new("hostile");
    let tree = plant(&t, bad_name, nested);
    // The target is two levels down so that "../" has somewhere to go.
    let work = t.dir.mkdir("work");
    let target = work.join("in").join("target");
    let r = t.restore("latest", &target);
    let shown = String::from_utf8_lossy(bad_name);
    assert_eq!(
        r.code,
        exit::ERROR,
        "entry {shown:?} was not refused\n{}",
        r.report()
    );
    assert!(
        r.stderr.contains(&tree.to_hex()) && r.stderr.contains("refus"),
        "the error does not name tree {tree} and the refused entry {shown:?}\n{}",
        r.report()
    );
    // Nothing anywhere but the target and what is inside it.
    for p in all_paths(&work) {
        assert!(
            p.starts_with("in/target") || p == Path::new("in"),
            "{} was written outside the target",
            p.display()
        );
    }
    let inside = all_paths(&target);
    for p in &inside {
        let written = fs::read(target.join(p)).unwrap_or_default();
        assert_ne!(
            written,
            EVIL,
            "{} holds the hostile entry's content",
            p.display()
        );
    }
    if nested {
        // The rest of the snapshot is restored.
        assert_eq!(fs::read(target.join("good")).unwrap(), GOOD, "{inside:?}");
    }
}

#[test]
fn dot_dot_slash_name_is_refused() {
    assert_refused(b"../evil", false);
    assert_refused(b"../../evil", true);
}

#[test]
fn dot_dot_name_is_refused() {
    assert_refused(b"..", false);
    assert_refused(b".", true);
}

#[test]
fn slash_in_name_is_refused() {
    // "sub" exists, so an accepted "sub/x" would land inside it.
    assert_refused(b"sub/x", false);
    assert_refused(b"/abs-evil", true);
}

#[test]
fn nul_in_name_is_refused() {
    assert_refused(b"good\0evil", false);
    assert_refused(b"x\0", true);
}

#[test]
fn empty_name_is_refused() {
    assert_refused(b"", true);
}

#[test]
fn planted_symlinks_in_the_target_are_replaced_not_followed() {
    let t = TestRepo::new("planted");
    let src = t.dir.mkdir("src");
    t.dir.write("src/dir/file", b"real file in a real dir");
    t.dir.write("src/plain", b"plain file");
    t.dir
        .write("src/linked", b"a file where a hard link is planted");
    t.backup(&[&src]);

    let outside = t.dir.mkdir("outside");
    let victim = t.dir.write("outside/victim", b"must not change");
    let linked_victim = t
        .dir
        .write("outside/linked-victim", b"must not change either");
    let target = t.dir.mkdir("target");
    fs::hard_link(&linked_victim, target.join("linked")).unwrap();
    // Where the restore will create a directory and a file, symlinks point out.
    std::os::unix::fs::symlink(&outside, target.join("dir")).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("plain")).unwrap();

    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_eq!(
        all_paths(&outside),
        vec![
            Path::new("linked-victim").to_path_buf(),
            Path::new("victim").to_path_buf()
        ]
    );
    assert_eq!(fs::read(&victim).unwrap(), b"must not change");
    assert_eq!(fs::read(&linked_victim).unwrap(), b"must not change either");
    assert!(fs::symlink_metadata(target.join("dir")).unwrap().is_dir());
    assert!(
        fs::symlink_metadata(target.join("plain"))
            .unwrap()
            .is_file()
    );
    assert_same_tree(&src, &target);
}

#[test]
fn subpaths_cannot_climb_out_of_the_snapshot() {
    let t = TestRepo::new("climb");
    let src = t.dir.write("src/f", b"x");
    t.backup(&[&src]);
    for spec in ["latest:/..", "latest:../..", "latest:/../etc"] {
        let target = t.dir.join("target");
        let r = t.restore(spec, &target);
        assert_ne!(r.code, 0, "{}", r.report());
        assert!(
            !target.exists() || all_paths(&target).is_empty(),
            "{}",
            r.report()
        );
    }
}
