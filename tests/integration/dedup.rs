//! Deduplication: content already in the repository is never stored again,
//! wherever it appears, and an edit re-stores only the chunks around it.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use crate::util::*;

#[test]
fn the_same_data_backed_up_again_elsewhere_adds_almost_nothing() {
    let t = TestRepo::new("dedup-again");
    let one = t.dir.mkdir("one");
    t.dir.hard_link(big_file(), "one/big.bin");
    let first = t.backup(&[&one]);
    assert_eq!(field(&first, "bytes_read"), BIG_LEN, "{first}");
    let size1 = t.disk_size();
    assert!(
        size1 >= BIG_LEN,
        "repository holds {size1} bytes after a {BIG_LEN}-byte backup"
    );

    // Another directory: no parent snapshot, so the file is read in full again.
    let two = t.dir.mkdir("two");
    fs::copy(big_file(), two.join("copy.bin")).unwrap();
    let second = t.backup(&[&two]);
    assert_eq!(field(&second, "bytes_read"), BIG_LEN, "{second}");
    assert_eq!(field(&second, "data_blobs_added"), 0, "{second}");

    // And --force on the first path: read again, nothing added.
    let third = t
        .cellar()
        .args(["--json", "backup", "--force"])
        .arg(&one)
        .ok()
        .json();
    assert_eq!(field(&third, "bytes_read"), BIG_LEN, "{third}");
    assert_eq!(field(&third, "data_blobs_added"), 0, "{third}");

    let grown = t.disk_size() - size1;
    assert!(
        grown < size1 / 100,
        "two more backups of the same {BIG_LEN} bytes grew the repository by {grown} bytes"
    );
}

#[test]
fn two_copies_in_one_tree_are_stored_once() {
    let t = TestRepo::new("dedup-copies");
    let src = t.dir.mkdir("src");
    t.dir.hard_link(big_file(), "src/a.bin");
    t.dir.mkdir("src/sub");
    fs::copy(big_file(), src.join("sub/b.bin")).unwrap();
    let s = t.backup(&[&src]);
    assert_eq!(field(&s, "bytes_read"), 2 * BIG_LEN, "{s}");
    assert!(field(&s, "data_added") < BIG_LEN + MIB, "{s}");
    let size = t.disk_size();
    assert!(
        size < BIG_LEN + BIG_LEN / 100,
        "two copies of {BIG_LEN} bytes take {size} bytes in the repository"
    );
}

/// Copies `len` bytes of `from` (from its start) into `to`, inserting `insert` at `at`.
fn copy_with_insert(from: &Path, to: &Path, len: u64, at: u64, insert: &[u8]) {
    let mut r = fs::File::open(from).unwrap().take(len);
    let mut w = std::io::BufWriter::new(fs::File::create(to).unwrap());
    std::io::copy(&mut (&mut r).take(at), &mut w).unwrap();
    w.write_all(insert).unwrap();
    std::io::copy(&mut r, &mut w).unwrap();
    w.flush().unwrap();
}

#[test]
fn ten_bytes_inserted_in_the_middle_restore_only_a_few_chunks() {
    let t = TestRepo::new("dedup-insert");
    let src = t.dir.mkdir("src");
    let file = src.join("data.bin");
    let len = 100 * MIB;
    copy_with_insert(big_file(), &file, len, 0, b"");
    let first = t.backup(&[&src]);
    assert_eq!(field(&first, "bytes_read"), len, "{first}");
    let size1 = t.disk_size();

    copy_with_insert(big_file(), &file, len, len / 2, b"0123456789");
    let second = t.backup(&[&src]);
    assert_eq!(field(&second, "files_changed"), 1, "{second}");
    assert_eq!(field(&second, "bytes_read"), len + 10, "{second}");
    // Large chunks are at most 8 MiB; an insertion touches one, at worst three.
    let blobs = field(&second, "data_blobs_added");
    assert!(
        (1..=3).contains(&blobs),
        "{blobs} data blobs added: {second}"
    );
    let added = field(&second, "data_added");
    assert!(added < 25 * MIB, "{added} bytes added: {second}");
    let grown = t.disk_size() - size1;
    assert!(grown < 25 * MIB, "repository grew by {grown} bytes");

    let target = t.dir.join("restored");
    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_file(&file, &target.join("data.bin"));
}

#[test]
fn concurrent_backups_of_overlapping_data_both_restore() {
    let t = TestRepo::new("concurrent");
    let shared = random_bytes(12 << 20, 77);
    let one = t.dir.mkdir("one");
    let two = t.dir.mkdir("two");
    t.dir.write("one/shared.bin", &shared);
    t.dir.write("two/shared.bin", &shared);
    t.dir.write("one/own.bin", &random_bytes(5 << 20, 78));
    t.dir.write("two/own.bin", &random_bytes(5 << 20, 79));

    let a = t.cellar().args(["--json", "backup"]).arg(&one).spawn();
    let b = t.cellar().args(["--json", "backup"]).arg(&two).spawn();
    let (a, b) = (a.wait(), b.wait());
    assert_eq!(a.code, 0, "{}", a.report());
    assert_eq!(b.code, 0, "{}", b.report());
    assert_eq!(t.snapshot_ids().len(), 2);

    // Both snapshots restore, whichever process stored the shared chunks.
    for (src, run) in [(&one, &a), (&two, &b)] {
        let id = run.json()["snapshot_id"].as_str().unwrap().to_string();
        let target = t.dir.join(format!("restored-{}", &id[..8]));
        let r = t.restore(&format!("{id}:{}", src.display()), &target);
        assert_eq!(r.code, 0, "{}", r.report());
        assert_same_tree(src, &target);
    }
    // And a third backup after both finds everything already stored.
    let c = t
        .cellar()
        .args(["--json", "backup", "--force"])
        .arg(&one)
        .arg(&two)
        .ok()
        .json();
    assert_eq!(field(&c, "data_blobs_added"), 0, "{c}");
}
