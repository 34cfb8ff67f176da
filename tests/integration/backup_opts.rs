//! What a nightly backup needs beyond the basics: excludes that never touch the
//! excluded folders, incrementals that read nothing unchanged, dry runs, and a
//! clean stop on Ctrl-C.

use std::path::Path;
use std::process::Command;

use crate::util::{Dir, MIB, TestRepo, exit, random_bytes, write_random};

/// Paths (as they appear in an strace log) that cellar touched.
fn traced_paths(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split('"').nth(1).map(String::from))
        .collect()
}

fn has_strace() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn listing(snapshot_target: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(rel);
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            }
        }
    }
    walk(snapshot_target, snapshot_target, &mut out);
    out.sort();
    out
}

#[test]
fn every_exclude_option() {
    let t = TestRepo::new("excludes");
    let d = &t.dir;
    let src = d.mkdir("cells");
    d.write("cells/pydio.json", b"{}");
    d.write("cells/logs/a.log", b"log");
    d.write("cells/data/keep.txt", b"keep");
    d.write("cells/data/Thumbs.DB", b"x");
    d.write("cells/data/big.bin", &random_bytes(200_000, 1));
    d.write("cells/tmp/.nobackup", b"");
    d.write("cells/tmp/scratch.txt", b"s");
    d.write(
        "cells/cache/CACHEDIR.TAG",
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache",
    );
    d.write("cells/cache/blob", b"c");
    d.write("cells/fakecache/CACHEDIR.TAG", b"not a signature");
    d.write("cells/fakecache/kept", b"k");
    d.write("cells/secret/one", b"1");
    let exfile = d.write("excludes.txt", b"# comment\n/**/secret\n");
    let target = d.join("out");
    let run = t
        .cellar()
        .args(["--json", "backup"])
        .arg(&src)
        .args(["--exclude", "*.log", "--iexclude", "thumbs.db"])
        .arg("--exclude-file")
        .arg(&exfile)
        .args(["--exclude-if-present", ".nobackup", "--exclude-caches"])
        .args(["--exclude-larger-than", "100K"])
        .ok();
    assert!(run.json()["snapshot_id"].is_string());
    let spec = format!("latest:{}", src.display());
    let r = t.restore(&spec, &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_eq!(
        listing(&target),
        vec![
            "data",
            "data/keep.txt",
            "fakecache",
            "fakecache/CACHEDIR.TAG",
            "fakecache/kept",
            "logs",
            "pydio.json",
        ]
    );
}

#[test]
fn excluded_folders_are_never_opened_or_stated() {
    if !has_strace() {
        eprintln!("SKIPPED: strace is not installed");
        return;
    }
    let t = TestRepo::new("exclude-strace");
    let d = &t.dir;
    let src = d.mkdir("cells");
    d.write("cells/kept/a", b"a");
    for i in 0..20 {
        d.write(format!("cells/thumbs/deep/t{i}.jpg"), b"jpg");
    }
    let log = d.join("strace.log");
    let bin = t.bin.clone();
    // Re-run the same command line under strace.
    let mut st = Command::new("strace");
    st.args(["-f", "-qq", "-e", "trace=%file,getdents64", "-o"])
        .arg(&log)
        .arg(&bin)
        .arg("-r")
        .arg(&t.repo)
        .arg("--password-file")
        .arg(&t.password_file)
        .arg("--cache-dir")
        .arg(&t.cache)
        .arg("backup")
        .arg(&src)
        .args(["--exclude", "thumbs"]);
    let out = st.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paths = traced_paths(&std::fs::read_to_string(&log).unwrap());
    let thumbs = src.join("thumbs");
    let touched: Vec<_> = paths
        .iter()
        .filter(|p| p.starts_with(thumbs.to_str().unwrap()))
        .collect();
    assert!(
        touched.is_empty(),
        "excluded paths were touched: {touched:?}"
    );
    // And the kept file was really looked at (the trace works).
    assert!(
        paths.iter().any(|p| p.ends_with("kept/a")),
        "no trace of kept/a"
    );
}

#[test]
fn unchanged_tree_is_not_read_again() {
    let t = TestRepo::new("incremental");
    let src = t.dir.mkdir("tree");
    for i in 0..5000 {
        t.dir.write(
            format!("tree/d{}/f{i}.json", i % 50),
            format!("{{\"n\":{i}}}").as_bytes(),
        );
    }
    let first = t.backup(&[&src]);
    assert_eq!(first["files_new"], 5000);
    let second = t.backup(&[&src]);
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["files_unmodified"], 5000, "{second}");
    // Only tree blobs may be new (the directories above the source, whose
    // mtimes moved when the repository and cache were written next to it).
    assert_eq!(second["data_blobs_added"], 0, "{second}");
    // One change is read, the rest is not.
    t.dir.write("tree/d7/f7.json", b"{\"n\":\"changed\"}");
    let third = t.backup(&[&src]);
    assert_eq!(third["files_changed"], 1, "{third}");
    assert_eq!(third["bytes_read"], 15, "{third}");
    // --force reads everything again but stores nothing new.
    let forced = t
        .cellar()
        .args(["--json", "backup", "--force"])
        .arg(&src)
        .ok()
        .json();
    assert_eq!(forced["bytes_read"], forced["total_bytes"], "{forced}");
    assert_eq!(forced["data_blobs_added"], 0, "{forced}");
}

#[test]
fn dry_run_writes_nothing() {
    let t = TestRepo::new("dry-run");
    let src = t.dir.mkdir("src");
    t.dir.write("src/a", &random_bytes(100_000, 3));
    let before = t.listing();
    let run = t
        .cellar()
        .args(["--json", "backup", "--dry-run"])
        .arg(&src)
        .ok()
        .json();
    assert!(run["snapshot_id"].is_null(), "{run}");
    assert!(run["data_added"].as_u64().unwrap() >= 100_000, "{run}");
    let after = t.listing();
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p)
        .collect();
    assert!(changed.is_empty(), "dry run wrote {changed:?}");
}

/// A repository and a 384 MiB source of six random files, with a backup of it
/// started in the background and left running until `min_packed` bytes of
/// packs are on disk. Returns (repo, source, total size, still-running child).
fn big_backup_in_flight(
    name: &str,
    seed: u64,
    min_packed: u64,
) -> (TestRepo, std::path::PathBuf, u64, std::process::Child) {
    let t = TestRepo::new(name);
    let src = t.dir.mkdir("big");
    for i in 0..6 {
        write_random(&t.dir.join(format!("big/f{i}.bin")), 64 * MIB, seed + i);
    }
    let mut child = Command::new(&t.bin)
        .arg("-r")
        .arg(&t.repo)
        .arg("--password-file")
        .arg(&t.password_file)
        .arg("--cache-dir")
        .arg(&t.cache)
        .args(["-q", "backup"])
        .arg(&src)
        .spawn()
        .unwrap();
    let data = t.repo.join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while walk_size(&data) < min_packed && std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (t, src, 6 * 64 * MIB, child)
}

#[test]
fn interrupted_backup_keeps_its_packs_and_next_run_reuses_them() {
    // Wait until some packs are written, then press Ctrl-C.
    let (t, src, total, mut child) = big_backup_in_flight("interrupt", 100, 40 * MIB);
    let data = t.repo.join("data");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    if status.code() == Some(0) {
        eprintln!("SKIPPED: the backup finished before it could be interrupted");
        return;
    }
    assert_eq!(status.code(), Some(130), "exit code after SIGINT");
    assert!(
        t.snapshot_ids().is_empty(),
        "no snapshot after an interrupt"
    );
    assert_eq!(
        std::fs::read_dir(t.repo.join("locks")).unwrap().count(),
        0,
        "the lock is released"
    );
    let stored_before = walk_size(&data);
    assert!(stored_before > 0);
    let idx = std::fs::read_dir(t.repo.join("index")).unwrap().count();
    assert!(idx > 0, "the packs written so far are indexed");
    let next = t.backup(&[&src]);
    let added = next["data_added"].as_u64().unwrap();
    // What the first run stored is not stored again (allow a few chunks of slack).
    assert!(
        added + stored_before <= total + 16 * MIB,
        "second run added {added} after {stored_before} of {total} were stored"
    );
    let target = t.dir.join("out");
    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_eq!(r.code, 0, "{}", r.report());
    for i in 0..6 {
        crate::util::assert_same_file(
            &src.join(format!("f{i}.bin")),
            &target.join(format!("f{i}.bin")),
        );
    }
}

fn walk_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                n += walk_size(&e.path());
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                n += m.len();
            }
        }
    }
    n
}

#[test]
fn packs_of_a_killed_backup_are_adopted_by_the_next_run() {
    let (t, src, total, mut child) = big_backup_in_flight("killed", 200, 60 * MIB);
    let data = t.repo.join("data");
    // SIGKILL: no chance to index anything.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    if status.success() {
        eprintln!("SKIPPED: the backup finished before it could be killed");
        return;
    }
    assert!(t.snapshot_ids().is_empty());
    let stored_before = walk_size(&data);
    assert!(
        stored_before >= 16 * MIB,
        "some packs were written: {stored_before}"
    );
    // The killed run's lock is stale (its process is gone) and does not block.
    let next = t.cellar().args(["--json", "backup"]).arg(&src).ok();
    assert!(
        next.stderr.contains("left by an interrupted backup"),
        "{}",
        next.report()
    );
    let added = next.json()["data_added"].as_u64().unwrap();
    assert!(
        added + stored_before <= total + 16 * MIB,
        "second run added {added} after {stored_before} of {total} were stored"
    );
    let c = t.cellar().args(["check", "--read-data"]).run();
    assert_eq!(c.code, 0, "{}", c.report());
}

/// Many large, small-chunked files at once: a thread holding one of the
/// big-file slots used to wait for its batch the rayon way, steal another big
/// file and wait for a slot on top of its own; with both slots held like that
/// the backup hung for good (seen about once in eight runs of this shape).
/// Rare by nature, so the shape runs several times under a watchdog.
#[test]
fn many_large_files_at_once_never_hang() {
    let src = Dir::new("many-large");
    for d in 0..6 {
        src.mkdir(format!("d{d}"));
    }
    for i in 0..48u64 {
        write_random(
            &src.join(format!("d{}/f{i}.log", i % 6)),
            5 * MIB / 2 + i * 4096,
            0x5107 + i,
        );
    }
    for round in 0..6 {
        let t = TestRepo::new("many-large-repo");
        let mut running = t.cellar().args(["backup", "-q"]).arg(src.path()).spawn();
        let start = std::time::Instant::now();
        while !running.exited() {
            if start.elapsed() > std::time::Duration::from_secs(180) {
                unsafe { libc::kill(running.pid(), libc::SIGKILL) };
                panic!(
                    "round {round}: the backup hung:\n{}",
                    running.wait().report()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let r = running.wait();
        assert_eq!(r.code, exit::OK, "round {round}: {}", r.report());
    }
}

/// `backup -v` lists what it stores, new or modified; unchanged files are not read
/// and not listed.
#[test]
fn verbose_backup_lists_new_and_modified_files() {
    let t = TestRepo::new("verbose");
    let src = t.dir.mkdir("src");
    t.dir.write("src/same.txt", b"same");
    t.dir.write("src/changes.txt", b"v1");
    t.cellar().args(["backup", "-q"]).arg(&src).ok();
    std::fs::write(src.join("changes.txt"), b"version two").unwrap();
    t.dir.write("src/added.txt", b"new");
    let r = t.cellar().args(["backup", "-v"]).arg(&src).ok();
    let mut listed: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("new ") || l.starts_with("modified "))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            format!("modified {}", src.join("changes.txt").display()),
            format!("new      {}", src.join("added.txt").display()),
        ],
        "{}",
        r.report()
    );
    assert!(!r.stdout.contains("same.txt"), "{}", r.report());
    // Without -v nothing is listed.
    t.dir.write("src/more.txt", b"more");
    let r = t.cellar().args(["backup"]).arg(&src).ok();
    assert!(!r.stdout.contains("more.txt"), "{}", r.report());
}
