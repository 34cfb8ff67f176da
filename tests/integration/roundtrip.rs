//! Backup then restore must reproduce a tree exactly: contents, kinds, modes
//! (set-id and sticky bits too), owners, mtimes to the nanosecond, symlink
//! targets (dangling ones too), hard links, FIFOs and names that are not UTF-8.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Builds the awkward tree under `d/src` and returns its path.
fn build_tree(d: &Dir, with_big_file: bool) -> PathBuf {
    let src = d.mkdir("src");
    let s = |rel: &str| src.join(rel);

    // Nested directories, empty files, empty directories.
    d.write("src/a/b/c/d/e/f/deep.bin", &random_bytes(5000, 1));
    d.write("src/empty", b"");
    d.write("src/a/b/empty-too", b"");
    d.mkdir("src/empty-dir");
    d.mkdir("src/a/b/c/empty-dir");

    // Sizes around the edges of buffers and chunks, one spanning several large chunks.
    for (i, len) in [1usize, 100, 4095, 4096, 4097, 65536, 600_000, 3 << 20]
        .into_iter()
        .enumerate()
    {
        d.write(
            format!("src/files/f{i}.dat"),
            &random_bytes(len, 100 + i as u64),
        );
    }
    // A text dump: the small chunker, many chunks.
    let mut sql = String::new();
    for i in 0..6000 {
        sql.push_str(&format!(
            "INSERT INTO cells VALUES ({i}, 'row {i}', {});\n",
            i * 7919 % 1000
        ));
    }
    d.write("src/dump.sql", sql.as_bytes());
    // Zeros: the same chunk several times in one file.
    d.write("src/zeros.bin", &vec![0u8; 20 << 20]);
    if with_big_file {
        d.hard_link(big_file(), "src/big.bin");
    }

    // Symlinks: relative, absolute, dangling, pointing up.
    d.symlink("a/b/c", "src/link-rel");
    d.symlink("/etc/hostname", "src/link-abs");
    d.symlink("does/not/exist", "src/link-dangling");
    d.symlink("../../..", "src/a/b/link-up");

    // Hard links: a group of three across directories, and a pair.
    d.write("src/h1", &random_bytes(1234, 7));
    d.hard_link("src/h1", "src/a/h2");
    d.hard_link("src/h1", "src/a/b/h3");
    d.write("src/pair-1", b"paired");
    d.hard_link("src/pair-1", "src/pair-2");

    // Names that are not UTF-8, or merely odd.
    d.write(bpath(b"src/caf\xe9"), b"latin-1 name");
    d.mkdir(bpath(b"src/\xff\xfe-dir"));
    d.write(bpath(b"src/\xff\xfe-dir/\x80inner"), b"inner");
    d.write("src/line\nbreak", b"newline in name");
    d.write("src/-dash", b"leading dash");
    d.write("src/ space ", b"spaces");

    // A FIFO.
    let fifo = d.mkfifo("src/fifo");
    chmod(&fifo, 0o620);

    // Owners (root only: anyone else cannot give files away).
    if is_root() {
        let o = d.write("src/owned", b"owned by 1234:5678");
        chown(&o, 1234, 5678);
        let od = d.mkdir("src/owned-dir");
        chown(&od, 4321, 8765);
        let ol = d.symlink("owned", "src/owned-link");
        chown(&ol, 1111, 2222);
        chown(&fifo, 3333, 4444);
    }

    // Odd permissions (after chown, which clears set-id bits).
    let p = d.write("src/p751/inside", b"x");
    chmod(&p, 0o600);
    chmod(&s("p751"), 0o751);
    chmod(&d.write("src/p640", b"rw-r-----"), 0o640);
    chmod(&d.write("src/setuid", b"#!/bin/true\n"), 0o4755);
    chmod(&d.write("src/setgid", b"#!/bin/true\n"), 0o2750);
    if is_root() {
        // Anyone else could not read it back.
        chmod(&d.write("src/none", b"no permissions at all"), 0o000);
    }
    chmod(&d.mkdir("src/sticky"), 0o1777);
    chmod(&d.mkdir("src/setgid-dir"), 0o2755);
    chmod(&d.write("src/ro/file", b"read only"), 0o444);
    chmod(&s("ro"), 0o555);

    // An extended attribute, where the file system takes user.* attributes.
    let _ = xattr::set(s("p640"), "user.cellar.test", b"value\0with nul");

    // Explicit times, nanoseconds included: before 1970, far future, odd nanoseconds.
    set_mtime(&s("files/f0.dat"), 1_234_567_890, 123_456_789);
    set_mtime(&s("files/f1.dat"), -86_400 * 365, 1);
    set_mtime(&s("files/f2.dat"), 4_102_444_800, 999_999_999);
    set_mtime(&s("link-rel"), 1_500_000_000, 42);
    set_mtime(&fifo, 1_600_000_000, 500);
    // Directories last (adding entries changes their mtime), deepest first.
    set_mtime(&s("a/b/c"), 1_000_000_000, 7);
    set_mtime(&s("a/b"), 1_000_000_001, 8);
    set_mtime(&s("ro"), 1_000_000_002, 9);
    set_mtime(&src, 1_111_111_111, 111_111_111);
    src
}

#[test]
fn restore_reproduces_contents_and_metadata() {
    let t = TestRepo::new("roundtrip");
    let src = build_tree(&t.dir, true);
    let summary = t.backup(&[&src]);
    assert_eq!(summary["unreadable"], serde_json::json!([]), "{summary}");
    assert!(field(&summary, "total_bytes") > BIG_LEN, "{summary}");

    let target = t.dir.join("restored");
    let spec = format!("latest:{}", src.display());
    let r = t.restore(&spec, &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_tree(&src, &target);

    // Spelled out, although assert_same_tree checks them too.
    let ino = |p: &str| fs::symlink_metadata(target.join(p)).unwrap().ino();
    assert_eq!(ino("h1"), ino("a/h2"));
    assert_eq!(ino("h1"), ino("a/b/h3"));
    assert_eq!(ino("pair-1"), ino("pair-2"));
    assert_ne!(ino("h1"), ino("pair-1"));
    assert_eq!(
        fs::read_link(target.join("link-dangling")).unwrap(),
        Path::new("does/not/exist")
    );
    assert_eq!(
        fs::symlink_metadata(target.join("setuid")).unwrap().mode() & 0o7777,
        0o4755
    );
}

#[test]
fn restoring_the_whole_snapshot_puts_paths_at_their_absolute_place() {
    let t = TestRepo::new("abs-place");
    let src = build_tree(&t.dir, false);
    t.backup(&[&src]);
    let target = t.dir.join("all");
    let r = t.restore("latest", &target);
    assert_eq!(r.code, 0, "{}", r.report());
    let placed = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &placed);
}

#[test]
fn single_file_and_stdin_stream_restore() {
    let t = TestRepo::new("single");
    let src = build_tree(&t.dir, false);
    let stream = t.dir.write("stream-source", &random_bytes(300_000, 99));
    t.backup(&[&src]);
    t.cellar()
        .args(["--json", "backup", "--stdin", "--stdin-filename", "db.sql"])
        .stdin_file(&stream)
        .ok();

    let first = &t.snapshot_ids()[0];
    let one = t.dir.join("one");
    let r = t.restore(&format!("{first}:{}/files/f7.dat", src.display()), &one);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_eq!(all_paths(&one), vec![PathBuf::from("f7.dat")]);
    assert_same_file(&src.join("files/f7.dat"), &one.join("f7.dat"));

    let db = t.dir.join("db");
    let r = t.restore("latest:/db.sql", &db);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_file(&stream, &db.join("db.sql"));
}

#[test]
fn unchanged_files_are_not_read_again_and_still_restore() {
    let t = TestRepo::new("parent");
    let src = build_tree(&t.dir, false);
    let first = t.backup(&[&src]);
    assert!(field(&first, "bytes_read") > 0);
    let second = t.backup(&[&src]);
    assert_eq!(field(&second, "bytes_read"), 0, "{second}");
    assert_eq!(field(&second, "data_blobs_added"), 0, "{second}");
    assert_eq!(
        field(&second, "files_unmodified"),
        field(&first, "total_files"),
        "{second}"
    );

    // A changed file is read again and the new content is what restores.
    let f = src.join("files/f3.dat");
    fs::write(&f, b"changed content").unwrap();
    let third = t.backup(&[&src]);
    assert_eq!(field(&third, "files_changed"), 1, "{third}");
    let target = t.dir.join("restored");
    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_tree(&src, &target);
}

/// `restore --json SPEC --target TARGET`, asserting success; the summary.
fn restore_json(t: &TestRepo, spec: &str, target: &Path) -> serde_json::Value {
    t.cellar()
        .args(["--json", "restore", spec, "--target"])
        .arg(target)
        .ok()
        .json()
}

/// A repository holding one backup of the standard tree, restored once into
/// `target`; returns the repository, the source, the target and the restore spec.
fn restored_once(name: &str) -> (TestRepo, PathBuf, PathBuf, String) {
    let t = TestRepo::new(name);
    let src = build_tree(&t.dir, false);
    t.backup(&[&src]);
    let target = t.dir.join("target");
    let spec = format!("latest:{}", src.display());
    assert_eq!(t.restore(&spec, &target).code, 0);
    (t, src, target, spec)
}

#[test]
fn restoring_again_over_a_damaged_restore_repairs_it() {
    let (t, src, target, spec) = restored_once("again");

    // Damage the restored tree in every way a restore must undo.
    fs::write(target.join("files/f5.dat"), b"overwritten").unwrap();
    fs::remove_file(target.join("a/b/c/d/e/f/deep.bin")).unwrap();
    fs::remove_file(target.join("a/h2")).unwrap();
    fs::write(target.join("a/h2"), b"no longer a hard link").unwrap();
    fs::remove_file(target.join("link-dangling")).unwrap();
    std::os::unix::fs::symlink("elsewhere", target.join("link-dangling")).unwrap();
    fs::remove_dir_all(target.join("empty-dir")).unwrap();
    fs::write(target.join("empty-dir"), b"a file where a directory was").unwrap();
    fs::remove_file(target.join("dump.sql")).unwrap();
    fs::create_dir(target.join("dump.sql")).unwrap();
    fs::remove_file(target.join("fifo")).unwrap();
    chmod(&target.join("p640"), 0o777);
    set_mtime(&target.join("a/b"), 5, 5);
    // Only the mode of a directory differs: its mtime matches.
    chmod(&target.join("a/b/c"), 0o700);

    let r = t.restore(&spec, &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_tree(&src, &target);
}

/// Change times of everything below `root`: a restore that leaves an entry
/// alone must not even chmod or utimes it.
fn ctimes(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    all_paths(root)
        .into_iter()
        .map(|p| {
            let m = fs::symlink_metadata(root.join(&p)).unwrap();
            (p, (m.ctime(), m.ctime_nsec()))
        })
        .collect()
}

#[test]
fn restoring_again_into_an_up_to_date_target_changes_nothing() {
    let (t, src, target, spec) = restored_once("uptodate");
    // The FIFO is made again by every restore (only symlinks and regular
    // files are compared), and that changes the top directory.
    let settled = |m: BTreeMap<PathBuf, (i64, i64)>| {
        m.into_iter()
            .filter(|(p, _)| p != Path::new("fifo"))
            .collect::<BTreeMap<_, _>>()
    };
    let before = settled(ctimes(&target));
    // Past the file system's timestamp granularity (a jiffy on ext4).
    std::thread::sleep(std::time::Duration::from_millis(50));
    let s = restore_json(&t, &spec, &target);
    assert_eq!(field(&s, "files_restored"), 0, "{s}");
    assert!(field(&s, "files_skipped") > 20, "{s}");
    assert_eq!(settled(ctimes(&target)), before, "an entry was changed");
    assert_same_tree(&src, &target);
}

/// A directory of the target replaced by a symlink to a look-alike elsewhere
/// (same names, sizes and mtimes): restore must neither take what is behind
/// the link for the target's content nor change anything there.
#[test]
fn a_look_alike_behind_a_symlinked_directory_is_neither_kept_nor_touched() {
    let (t, src, target, spec) = restored_once("lookalike");
    let elsewhere = t.dir.join("elsewhere");
    fs::rename(target.join("a"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("a")).unwrap();
    // A mode that a kept file would get corrected, through the link.
    chmod(&elsewhere.join("b/c/d/e/f/deep.bin"), 0o600);
    chmod(&elsewhere.join("b/c"), 0o700);
    let before = scan(&elsewhere);
    let times = ctimes(&elsewhere);
    std::thread::sleep(std::time::Duration::from_millis(50));

    let s = restore_json(&t, &spec, &target);
    // a/b/empty-too, a/b/c/d/e/f/deep.bin, and the hard-link group whose first
    // path is a/b/h3: written there, then linked again at a/h2 and h1.
    assert_eq!(field(&s, "files_restored"), 5, "{s}");
    assert!(fs::symlink_metadata(target.join("a")).unwrap().is_dir());
    assert_same_tree(&src, &target);
    assert_eq!(scan(&elsewhere), before, "changed through the link");
    // h2 and b/h3 share their inode with the target's h1, which was linked
    // again: their link count, so their ctime, changed.
    let others = |m: BTreeMap<PathBuf, (i64, i64)>| {
        m.into_iter()
            .filter(|(p, _)| p != Path::new("h2") && p != Path::new("b/h3"))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        others(ctimes(&elsewhere)),
        others(times),
        "changed through the link"
    );
}

/// An unprivileged user restores over an earlier restore that holds
/// read-only directories: they must take the new entries all the same.
#[test]
fn restoring_again_into_read_only_directories_as_a_user() {
    let Some(t) = TestRepo::unprivileged("again-user") else {
        eprintln!("skipped: no directory an unprivileged user can reach");
        return;
    };
    let src = t.dir.mkdir("src");
    t.dir.write("src/ro/file", b"in a read-only directory");
    t.dir.write("src/ro/deeper/file", b"deeper");
    t.dir.write("src/top", b"directly in the target");
    chmod(&src.join("ro/deeper"), 0o500);
    chmod(&src.join("ro"), 0o555);
    chmod(&src, 0o555);
    if let Some((uid, gid)) = t.user {
        chown_tree(&src, uid, gid);
    }
    t.backup(&[&src]);
    let target = t.dir.join("target");
    let spec = format!("latest:{}", src.display());
    for round in ["first", "second"] {
        let r = t.restore(&spec, &target);
        assert_eq!(r.code, 0, "{round} restore\n{}", r.report());
        assert_same_tree(&src, &target);
    }
    // So that the temporary directory can be removed by a user who is not root.
    for p in [&target, &src] {
        chmod(p, 0o755);
        chmod(&p.join("ro"), 0o755);
    }
}

/// Many files whose chunks are spread over two backups' packs: restore writes
/// pack by pack, so hundreds of files are partly written at once (more than the
/// restorer keeps open: it closes and reopens them).
#[test]
fn files_spread_over_packs_restore() {
    let t = TestRepo::new("spread");
    let heads = t.dir.mkdir("heads");
    let full = t.dir.mkdir("full");
    for i in 0..1000u64 {
        // .sql: the small chunker (8-64 KiB chunks, 16 KiB on average).
        let head = random_bytes(24_000 + (i as usize * 97) % 8_000, 1000 + i);
        t.dir.write(format!("heads/h{i}.sql"), &head);
        let mut whole = head;
        whole.extend(random_bytes(16_000, 5000 + i));
        t.dir.write(format!("full/f{i}.sql"), &whole);
    }
    t.backup(&[&heads]);
    let s = t.backup(&[&full]);
    assert!(field(&s, "data_blobs_added") >= 1000, "{s}");

    let target = t.dir.join("restored");
    let r = t.restore(&format!("latest:{}", full.display()), &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_same_tree(&full, &target);
}

/// A backed-up path below a symlinked directory: the directories above the
/// path are recorded with the metadata of what they are (a directory), not of
/// the symlink that leads there (mode 0777).
#[test]
fn parents_reached_through_a_symlink_keep_directory_metadata() {
    let t = TestRepo::new("symlinked-parent");
    let real = t.dir.mkdir("real");
    t.dir.write("real/sub/f", b"x");
    chmod(&real, 0o750);
    set_mtime(&real, 1_300_000_000, 5);
    let link = t.dir.symlink("real", "link");
    t.backup(&[&link.join("sub")]);
    let target = t.dir.join("all");
    let r = t.restore("latest", &target);
    assert_eq!(r.code, 0, "{}", r.report());
    let restored = target.join(link.strip_prefix("/").unwrap());
    let m = fs::symlink_metadata(&restored).unwrap();
    assert!(m.is_dir());
    assert_eq!(
        m.mode() & 0o7777,
        0o750,
        "{} has mode {:o}",
        restored.display(),
        m.mode() & 0o7777
    );
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_300_000_000, 5));
}
