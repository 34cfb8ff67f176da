//! Browsing and point-in-time restore: `find`, `history`, `@TIME` selectors,
//! `diff`, `ls`, `dump` and the incremental `restore` options.
//!
//! The `find`/`history` fixture is one repository with 50 snapshots of a
//! 5,000-file tree that changes in known ways between snapshots; it is built
//! once and shared.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::*;

const SNAPSHOTS: usize = 50;
const DIRS: usize = 50;
const FILES_PER_DIR: usize = 100;
/// Snapshot k is taken at 03:00:00 local time on 2026-10-01 + k days.
fn snap_time(k: usize) -> String {
    let d = jiff::civil::date(2026, 10, 1)
        .checked_add(jiff::Span::new().days(k as i64))
        .unwrap();
    format!("{d} 03:00:00")
}

/// Content and mtime of `d07/report.docx` in snapshot k: changed at 10, 20, 30.
fn report_version(k: usize) -> usize {
    match k {
        0..=9 => 0,
        10..=19 => 1,
        20..=29 => 2,
        _ => 3,
    }
}

struct History {
    t: TestRepo,
    src: PathBuf,
    /// Snapshot ids, oldest first.
    ids: Vec<String>,
}

fn write_at(p: &Path, data: &[u8], mtime: i64) {
    fs::write(p, data).unwrap();
    set_mtime(p, mtime, 0);
}

fn history_fixture() -> &'static History {
    static H: OnceLock<History> = OnceLock::new();
    H.get_or_init(|| {
        let t = TestRepo::new("browse-history");
        let src = t.dir.mkdir("src");
        let base = 1_780_000_000;
        for d in 0..DIRS {
            let dir = src.join(format!("d{d:02}"));
            fs::create_dir(&dir).unwrap();
            for f in 0..FILES_PER_DIR {
                write_at(
                    &dir.join(format!("f{f:03}.txt")),
                    format!("{d}/{f}").as_bytes(),
                    base,
                );
            }
            write_at(&dir.join("report.docx"), b"report v0", base);
        }
        let report = src.join("d07/report.docx");
        let extra = src.join("d12/new.docx");
        for k in 0..SNAPSHOTS {
            if k > 0 {
                // One ordinary file changes in every snapshot.
                write_at(
                    &src.join(format!("d{:02}/f{:03}.txt", k % DIRS, k % FILES_PER_DIR)),
                    format!("changed in {k}").as_bytes(),
                    base + k as i64,
                );
            }
            if k > 0 && report_version(k) != report_version(k - 1) {
                write_at(
                    &report,
                    format!("report v{}", report_version(k)).as_bytes(),
                    base + 1000 * report_version(k) as i64,
                );
            }
            if k == 25 {
                write_at(&extra, b"new", base + 25);
            }
            if k == 35 {
                fs::remove_file(&extra).unwrap();
            }
            t.cellar()
                .args(["-q", "backup", "--time", &snap_time(k)])
                .arg(&src)
                .ok();
        }
        let ids = t.snapshot_ids();
        assert_eq!(ids.len(), SNAPSHOTS);
        History { t, src, ids }
    })
}

fn json_lines(r: &Run) -> Vec<serde_json::Value> {
    r.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", r.report()))
        })
        .collect()
}

fn ids_of(v: &serde_json::Value) -> Vec<String> {
    v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn find_and_history_give_the_exact_versions() {
    let h = history_fixture();
    let started = std::time::Instant::now();
    let r = h.t.cellar().args(["--json", "find", "*.docx"]).ok();
    eprintln!(
        "find '*.docx' over {SNAPSHOTS} snapshots of {} files: {:?} (catalog cold)",
        DIRS * (FILES_PER_DIR + 1),
        started.elapsed()
    );
    let lines = json_lines(&r);
    let mut by_path: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for l in lines {
        by_path
            .entry(l["path"].as_str().unwrap().to_string())
            .or_default()
            .push(l);
    }
    let src = h.src.to_str().unwrap();
    // 50 report.docx plus the one that lived from snapshot 25 to 34.
    assert_eq!(by_path.len(), DIRS + 1, "{:?}", by_path.keys());
    for d in (0..DIRS).filter(|&d| d != 7) {
        let v = &by_path[&format!("{src}/d{d:02}/report.docx")];
        assert_eq!(v.len(), 1, "d{d:02}/report.docx has one version");
        assert_eq!(ids_of(&v[0]), h.ids, "held by every snapshot");
    }
    let report = &by_path[&format!("{src}/d07/report.docx")];
    assert_eq!(report.len(), 4);
    for (ver, v) in report.iter().enumerate() {
        let expected: Vec<String> = (0..SNAPSHOTS)
            .filter(|&k| report_version(k) == ver)
            .map(|k| h.ids[k].clone())
            .collect();
        assert_eq!(ids_of(v), expected, "version {ver} of d07/report.docx");
        assert_eq!(v["size"], 9);
    }
    let new = &by_path[&format!("{src}/d12/new.docx")];
    assert_eq!(new.len(), 1);
    assert_eq!(ids_of(&new[0]), h.ids[25..35].to_vec());

    // A second run answers from the warm catalog.
    let started = std::time::Instant::now();
    let again = h.t.cellar().args(["--json", "find", "*.docx"]).ok();
    eprintln!(
        "find '*.docx' again (catalog warm): {:?}",
        started.elapsed()
    );
    assert_eq!(again.stdout.lines().count(), r.stdout.lines().count());

    // A path pattern, and an mtime filter that keeps only the last two versions.
    let r =
        h.t.cellar()
            .args(["--json", "find", &format!("{src}/d0*/report.docx")])
            .ok();
    assert_eq!(
        json_lines(&r)
            .iter()
            .map(|l| l["path"].as_str().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        10
    );
    let r =
        h.t.cellar()
            .args(["--json", "find", "report.docx", "--newer"])
            .arg(
                jiff::Timestamp::from_second(1_780_000_000 + 2000)
                    .unwrap()
                    .to_string(),
            )
            .ok();
    let l = json_lines(&r);
    assert_eq!(l.len(), 2, "{}", r.report());
    assert!(
        l.iter()
            .all(|v| v["path"] == format!("{src}/d07/report.docx"))
    );

    // history: the same four versions, by walking one path.
    let path = format!("{src}/d07/report.docx");
    for args in [
        vec!["--json", "history", path.as_str()],
        vec!["--json", "find", "--exact", path.as_str()],
    ] {
        let r = h.t.cellar().args(&args).ok();
        let l = json_lines(&r);
        assert_eq!(l.len(), 4, "{}", r.report());
        let counts: Vec<usize> = l.iter().map(|v| ids_of(v).len()).collect();
        assert_eq!(counts, vec![10, 10, 10, 20]);
        assert_eq!(ids_of(&l[3])[0], h.ids[30]);
    }
    let r =
        h.t.cellar()
            .args(["history", &format!("{src}/d12/new.docx")])
            .ok();
    assert!(
        r.stdout.contains("1 version(s) in 10 of 50 snapshot(s)"),
        "{}",
        r.report()
    );
    h.t.cellar()
        .args(["history", &format!("{src}/nowhere")])
        .expect(exit::ERROR);
}

#[test]
fn time_selectors_pick_the_right_snapshot_at_boundaries() {
    let h = history_fixture();
    // The snapshot a selector picks, by id: diff's summary names it.
    let source = |sel: &str| -> String {
        let r =
            h.t.cellar()
                .args(["--json", "diff", sel, "latest", "/"])
                .ok();
        let last = json_lines(&r).pop().unwrap();
        last["source_snapshot"].as_str().unwrap().to_string()
    };
    // Snapshot 4 is at 2026-10-05 03:00:00.
    assert_eq!(
        source("@2026-10-05T03:00"),
        h.ids[4],
        "the minute covers 03:00:00"
    );
    assert_eq!(source("@2026-10-05T03:00:00"), h.ids[4]);
    assert_eq!(source("@2026-10-05T02:59"), h.ids[3]);
    assert_eq!(source("@2026-10-05T02:59:59"), h.ids[3]);
    assert_eq!(source("@2026-10-05 02:59:59"), h.ids[3]);
    assert_eq!(
        source("@2026-10-05"),
        h.ids[4],
        "a date covers its whole day"
    );
    assert_eq!(source("@2026-10-04"), h.ids[3]);
    assert_eq!(source("@2099-01-01"), h.ids[SNAPSHOTS - 1]);
    assert_eq!(source("latest"), h.ids[SNAPSHOTS - 1]);
    assert_eq!(source(&h.ids[7][..8]), h.ids[7]);
    let r =
        h.t.cellar()
            .args(["diff", "@2026-09-30", "latest"])
            .expect(exit::ERROR);
    assert!(
        r.stderr.contains("no snapshot at or before"),
        "{}",
        r.report()
    );
    let r =
        h.t.cellar()
            .args(["diff", "@someday", "latest"])
            .expect(exit::ERROR);
    assert!(r.stderr.contains("someday"), "{}", r.report());

    // SNAPSHOT:PATH with a time that has colons of its own.
    let r =
        h.t.cellar()
            .args(["ls"])
            .arg(format!("@2026-10-05T03:00:{}/d07", h.src.display()))
            .ok();
    assert_eq!(
        r.stdout.lines().count(),
        FILES_PER_DIR + 1,
        "{}",
        r.report()
    );

    // snapshots --latest N keeps the newest N.
    let r =
        h.t.cellar()
            .args(["--json", "snapshots", "--latest", "3"])
            .ok();
    assert_eq!(snapshot_ids(&r), h.ids[SNAPSHOTS - 3..].to_vec());
    let r =
        h.t.cellar()
            .args(["--json", "snapshots", "--path"])
            .arg(&h.src)
            .args(["--host", "no-such-host"])
            .ok();
    assert!(snapshot_ids(&r).is_empty());
}

/// The change recorded for each path by `diff --json`.
fn diff_map(t: &TestRepo, a: &str, b: &str) -> BTreeMap<String, (String, i64)> {
    let r = t.cellar().args(["--json", "diff", a, b]).ok();
    json_lines(&r)
        .into_iter()
        .filter(|l| l["message_type"] == "change")
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                (
                    l["modifier"].as_str().unwrap().to_string(),
                    l["size_delta"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn diff_classifies_each_kind_of_change() {
    let t = TestRepo::new("browse-diff");
    let src = t.dir.mkdir("src");
    let w = |rel: &str, data: &[u8]| {
        let p = src.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_at(&p, data, 1_780_000_000);
        p
    };
    w("same.txt", b"same");
    w("content.txt", b"before");
    let mode = w("mode.txt", b"mode");
    let mtime = w("mtime.txt", b"mtime");
    w("removed.txt", b"gone soon");
    let replaced = w("replaced", b"a file for now");
    w("sub/deep/untouched.txt", b"x");
    t.cellar().args(["-q", "backup"]).arg(&src).ok();

    w("content.txt", b"after, longer");
    chmod(&mode, 0o600);
    set_mtime(&mtime, 1_780_000_500, 0);
    fs::remove_file(src.join("removed.txt")).unwrap();
    w("added.txt", b"new");
    fs::remove_file(&replaced).unwrap();
    w("replaced/inner.txt", b"inner");
    t.cellar().args(["-q", "backup"]).arg(&src).ok();

    let ids = t.snapshot_ids();
    let m = diff_map(&t, &ids[0], &ids[1]);
    let s = src.to_str().unwrap();
    let get = |rel: &str| {
        m.get(&format!("{s}/{rel}"))
            .cloned()
            .unwrap_or_else(|| panic!("{rel} missing from diff: {m:?}"))
    };
    assert_eq!(get("content.txt"), ("modified".into(), 7));
    assert_eq!(get("mode.txt"), ("metadata".into(), 0));
    assert_eq!(get("mtime.txt"), ("metadata".into(), 0));
    assert_eq!(get("removed.txt"), ("removed".into(), -9));
    assert_eq!(get("added.txt"), ("added".into(), 3));
    assert_eq!(get("replaced"), ("type".into(), -14));
    assert_eq!(get("replaced/inner.txt"), ("added".into(), 5));
    for unchanged in ["same.txt", "sub", "sub/deep", "sub/deep/untouched.txt"] {
        assert!(
            !m.contains_key(&format!("{s}/{unchanged}")),
            "{unchanged} reported: {m:?}"
        );
    }
    // The source directory itself changed only in mtime and is not reported.
    assert_eq!(m.len(), 7, "{m:?}");

    // Restricted to a path, and the other way round.
    let r = t
        .cellar()
        .args(["diff", &ids[1], &ids[0]])
        .arg(src.join("replaced"))
        .ok();
    assert!(r.stdout.contains("1 removed"), "{}", r.report());
    assert!(r.stdout.contains("1 type changed"), "{}", r.report());

    // ls: one directory, long and recursive.
    let r = t.cellar().args(["ls", "-l", &format!("latest:{s}")]).ok();
    let mode_line = r.stdout.lines().find(|l| l.ends_with("/mode.txt")).unwrap();
    assert!(mode_line.starts_with("-rw------- "), "{mode_line}");
    assert_eq!(r.stdout.lines().count(), 7, "{}", r.report());
    let r = t
        .cellar()
        .args(["--json", "ls", "-R", &format!("latest:{s}/sub")])
        .ok();
    let paths: Vec<String> = json_lines(&r)
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        vec![
            format!("{s}/sub/deep"),
            format!("{s}/sub/deep/untouched.txt")
        ]
    );
}

fn inodes(root: &Path) -> BTreeMap<PathBuf, u64> {
    all_paths(root)
        .into_iter()
        .map(|p| {
            let ino = fs::symlink_metadata(root.join(&p)).unwrap().ino();
            (p, ino)
        })
        .collect()
}

fn restore_json(t: &TestRepo, spec: &str, target: &Path, extra: &[&str]) -> serde_json::Value {
    t.cellar()
        .args(["--json", "restore", spec, "--target"])
        .arg(target)
        .args(extra)
        .ok()
        .json()
}

#[test]
fn restore_into_an_older_restore_rewrites_only_what_differs() {
    let t = TestRepo::new("browse-restore");
    let src = t.dir.mkdir("src");
    let folder = src.join("personal/alice");
    for i in 0..20 {
        let p = folder.join(format!("doc{i:02}.docx"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_at(&p, format!("doc {i} monday").as_bytes(), 1_780_000_000);
    }
    write_at(&folder.join("cache.tmp"), b"tmp", 1_780_000_000);
    write_at(&src.join("personal/bob.txt"), b"not alice", 1_780_000_000);
    t.cellar()
        .args(["-q", "backup", "--time", "2026-11-16 03:00:00"])
        .arg(&src)
        .ok();
    for i in [3, 7] {
        write_at(
            &folder.join(format!("doc{i:02}.docx")),
            format!("doc {i} tuesday!").as_bytes(),
            1_780_090_000,
        );
    }
    fs::remove_file(folder.join("doc11.docx")).unwrap();
    t.cellar()
        .args(["-q", "backup", "--time", "2026-11-17 03:00:00"])
        .arg(&src)
        .ok();

    let personal = format!("{}/personal", src.display());
    let target = t.dir.join("restored");
    let filters = ["--include", "/**/alice", "--exclude", "*.tmp"];
    let tue = format!("@2026-11-17:{personal}");
    let mon = format!("@2026-11-16T03:00:{personal}");
    let s = restore_json(&t, &tue, &target, &filters);
    assert_eq!(field(&s, "files_restored"), 19, "{s}");
    assert!(target.join("alice/doc03.docx").exists());
    assert!(!target.join("alice/cache.tmp").exists(), "excluded");
    assert!(!target.join("bob.txt").exists(), "not included");

    // Back to Monday: only the two changed files and the deleted one are written.
    // Extra links keep the old inodes alive, so a rewritten file cannot get its number back.
    let held = t.dir.mkdir("held");
    for n in ["doc03.docx", "doc07.docx"] {
        fs::hard_link(target.join("alice").join(n), held.join(n)).unwrap();
    }
    let before = inodes(&target);
    let dry = restore_json(&t, &mon, &target, &[&filters[..], &["--dry-run"]].concat());
    assert_eq!(field(&dry, "files_restored"), 3, "{dry}");
    assert_eq!(inodes(&target), before, "a dry run writes nothing");
    let s = restore_json(&t, &mon, &target, &[&filters[..], &["--verify"]].concat());
    assert_eq!(field(&s, "files_restored"), 3, "{s}");
    assert_eq!(field(&s, "files_skipped"), 17, "{s}");
    assert_eq!(field(&s, "files_verified"), 20, "{s}");
    let after = inodes(&target);
    for (p, ino) in &before {
        let name = p.file_name().unwrap().to_str().unwrap();
        if name == "doc03.docx" || name == "doc07.docx" {
            assert_ne!(after[p], *ino, "{} was rewritten", p.display());
        } else {
            assert_eq!(after[p], *ino, "{} was left alone", p.display());
        }
    }
    assert_eq!(
        fs::read(target.join("alice/doc03.docx")).unwrap(),
        b"doc 3 monday"
    );
    assert!(target.join("alice/doc11.docx").exists());

    // --delete removes what Monday did not have, but not what the filters leave out.
    write_at(&target.join("alice/stray.docx"), b"stray", 1);
    write_at(&target.join("alice/keep.tmp"), b"excluded", 1);
    fs::create_dir_all(target.join("alice/strays/deeper")).unwrap();
    let s = restore_json(&t, &mon, &target, &[&filters[..], &["--delete"]].concat());
    assert_eq!(field(&s, "files_deleted"), 2, "{s}");
    assert_eq!(field(&s, "files_restored"), 0, "{s}");
    assert!(!target.join("alice/stray.docx").exists());
    assert!(!target.join("alice/strays").exists());
    assert!(target.join("alice/keep.tmp").exists());

    // The whole folder then matches the snapshot (a restore with no filters into a fresh dir).
    fs::remove_file(target.join("alice/keep.tmp")).unwrap();
    // Another pass writes nothing and puts the directory's mtime back.
    let s = restore_json(&t, &mon, &target, &filters);
    assert_eq!(field(&s, "files_restored"), 0, "{s}");
    let fresh = t.dir.join("fresh");
    restore_json(&t, &format!("{mon}/alice"), &fresh, &["--exclude", "*.tmp"]);
    assert_same_tree(&fresh, &target.join("alice"));

    // --verify notices a file changed behind restore's back (same size and mtime).
    let p = target.join("alice/doc05.docx");
    let m = fs::metadata(&p).unwrap();
    fs::write(&p, b"doc 5 MONDAY").unwrap();
    set_mtime(&p, m.mtime(), m.mtime_nsec() as u32);
    let r = t
        .cellar()
        .args(["--json", "restore", &mon, "--target"])
        .arg(&target)
        .args(filters)
        .arg("--verify")
        .expect(exit::ERROR);
    assert!(r.stderr.contains("doc05.docx: verify"), "{}", r.report());
    let s = restore_json(
        &t,
        &mon,
        &target,
        &[&filters[..], &["--overwrite", "always"]].concat(),
    );
    assert_eq!(field(&s, "files_restored"), 20, "{s}");
    assert_eq!(fs::read(&p).unwrap(), b"doc 5 monday");

    // --delete never reaches through a symlink in the target.
    let victim = t.dir.mkdir("victim");
    write_at(&victim.join("precious"), b"keep me", 1);
    fs::remove_dir_all(target.join("alice")).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("alice")).unwrap();
    restore_json(&t, &mon, &target, &[&filters[..], &["--delete"]].concat());
    assert_eq!(fs::read(victim.join("precious")).unwrap(), b"keep me");
    assert!(fs::symlink_metadata(target.join("alice")).unwrap().is_dir());
    assert_eq!(
        all_paths(&victim).len(),
        1,
        "nothing written through the link"
    );
}

/// Runs cellar with raw (binary) stdout.
fn raw_stdout(t: &TestRepo, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .arg("-r")
        .arg(&t.repo)
        .arg("--password-file")
        .arg(&t.password_file)
        .arg("--cache-dir")
        .arg(&t.cache)
        .args(args)
        .env_remove("CELLAR_REPOSITORY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cellar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn dump_writes_files_and_directories_as_they_were() {
    let t = TestRepo::new("browse-dump");
    let sql = t.dir.join("cells.sql");
    let mut dump = Vec::new();
    for i in 0..40_000 {
        dump.extend_from_slice(
            format!(
                "INSERT INTO idx_tree VALUES ({i}, 'node-{i}', 'etag-{}');\n",
                i * 7919
            )
            .as_bytes(),
        );
    }
    fs::write(&sql, &dump).unwrap();
    let src = t.dir.mkdir("src");
    fs::write(src.join("a.bin"), random_bytes(300_000, 5)).unwrap();
    fs::create_dir_all(src.join("sub/empty")).unwrap();
    fs::write(src.join("sub/b.txt"), b"bee").unwrap();
    chmod(&src.join("sub/b.txt"), 0o640);
    std::os::unix::fs::symlink("../a.bin", src.join("sub/link")).unwrap();
    t.cellar()
        .args(["-q", "backup", "--stdin-from-command"])
        .arg(format!("cells.sql=cat {}", sql.display()))
        .arg(&src)
        .ok();

    assert_eq!(raw_stdout(&t, &["dump", "latest:/cells.sql"]), dump);

    let tar = raw_stdout(
        &t,
        &[
            "dump",
            &format!("latest:{}", src.display()),
            "--archive",
            "tar",
        ],
    );
    let out = t.dir.mkdir("untarred");
    let tarfile = t.dir.join("src.tar");
    fs::write(&tarfile, &tar).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tarfile)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    // tar keeps whole-second mtimes: compare everything else.
    let strip = |m: BTreeMap<Vec<u8>, Entry>| -> BTreeMap<Vec<u8>, Entry> {
        m.into_iter()
            .map(|(k, mut e)| {
                e.mtime = (0, 0);
                (k, e)
            })
            .collect()
    };
    assert_eq!(strip(scan(&out.join("src"))), strip(scan(&src)));

    // A directory without --archive is refused; so is a missing path.
    let r = t
        .cellar()
        .args(["dump", &format!("latest:{}", src.display())])
        .expect(exit::ERROR);
    assert!(r.stderr.contains("--archive tar"), "{}", r.report());
    t.cellar()
        .args(["dump", "latest:/no/such/file"])
        .expect(exit::ERROR);
}
