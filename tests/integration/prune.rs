//! Retention and space: forget policies through the CLI, prune's two phases
//! (mark, then delete in a later run), crash safety at every prune step
//! (`CELLAR_FAULT=prune:K`), a backup running while prune runs, locks, stats.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Exit code of a simulated crash (src/fault.rs).
const CRASH: i32 = 86;

fn backup_at(t: &TestRepo, src: &Path, time: &str) -> String {
    let v = t
        .cellar()
        .args(["--json", "backup", "--time", time])
        .arg(src)
        .ok()
        .json();
    v["snapshot_id"].as_str().unwrap().to_string()
}

fn prune(t: &TestRepo, extra: &[&str]) -> serde_json::Value {
    t.cellar()
        .args(["--json", "prune", "--grace", "0s"])
        .args(extra)
        .ok()
        .json()
}

fn forget(t: &TestRepo, id: &str) {
    t.cellar().args(["forget", id]).ok();
}

/// Restores every snapshot's source directory and compares its files, by
/// content, with the frozen copy taken at backup time.
fn assert_restores(t: &TestRepo, expect: &[(String, PathBuf)], src: &Path, tag: &str) {
    for (i, (id, copy)) in expect.iter().enumerate() {
        let target = t.dir.join(format!("restore-{tag}-{i}"));
        let r = t.restore(&format!("{id}:{}", src.display()), &target);
        assert_eq!(r.code, 0, "{tag}: restoring {id}\n{}", r.report());
        let mut want: Vec<_> = fs::read_dir(copy)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut got: Vec<_> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{tag}: files of {id}");
        for n in want {
            assert_same_file(&copy.join(&n), &target.join(&n));
        }
        fs::remove_dir_all(&target).unwrap();
    }
    // And the repository as a whole is sound: every pack read, every blob verified.
    let c = t.cellar().args(["check", "--read-data"]).run();
    assert_eq!(c.code, 0, "{tag}: check --read-data\n{}", c.report());
}

/// `cellar` with an environment variable set (the test hooks).
fn cellar_env(t: &TestRepo, var: &str, val: &str, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cellar"));
    for v in [
        "CELLAR_REPOSITORY",
        "CELLAR_PASSWORD_FILE",
        "CELLAR_PASSWORD_COMMAND",
        "CELLAR_CACHE_DIR",
    ] {
        c.env_remove(v);
    }
    c.env(var, val)
        .arg("-r")
        .arg(&t.repo)
        .arg("--password-file")
        .arg(&t.password_file)
        .arg("--cache-dir")
        .arg(&t.cache)
        .args(args)
        .stdin(std::process::Stdio::null());
    c
}

fn run_env(t: &TestRepo, var: &str, val: &str, args: &[&str]) -> Run {
    let out = cellar_env(t, var, val, args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        cmdline: format!("{var}={val} cellar {}", args.join(" ")),
    }
}

/// A source directory that changes between backups: each version keeps one
/// shared file and gets a fresh unique one, so every snapshot has data only it
/// references. Returns (snapshot id, frozen copy of the source) per version.
fn history(t: &TestRepo, versions: usize) -> Vec<(String, PathBuf)> {
    let src = t.dir.mkdir("src");
    write_random(&src.join("shared.bin"), 300_000, 7);
    let mut out = Vec::new();
    for v in 0..versions {
        let _ = fs::remove_file(src.join(format!("v{}.bin", v.wrapping_sub(1))));
        write_random(&src.join(format!("v{v}.bin")), 1_500_000, 100 + v as u64);
        let id = backup_at(t, &src, &format!("2026-11-{:02}T10:00:00+01:00", v + 1));
        let copy = t.dir.join(format!("copy-{v}"));
        copy_tree(&src, &copy);
        out.push((id, copy));
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn pack_names(t: &TestRepo) -> Vec<String> {
    t.packs()
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn pack_bytes(t: &TestRepo) -> u64 {
    t.packs().iter().map(|(_, s)| s).sum()
}

#[test]
fn forget_policy_dry_run_names_rules_and_removes_nothing() {
    let t = TestRepo::new("forget-policy");
    let src = t.dir.mkdir("src");
    write_random(&src.join("f"), 1000, 1);
    let times = [
        "2026-12-27T23:30:00+01:00",
        "2026-12-31T08:00:00+01:00",
        "2026-12-31T20:00:00+01:00",
        "2027-01-01T08:00:00+01:00",
        "2027-01-04T08:00:00+01:00",
    ];
    let ids: Vec<String> = times.iter().map(|tm| backup_at(&t, &src, tm)).collect();
    let r = t
        .cellar()
        .args([
            "--json",
            "forget",
            "--dry-run",
            "--keep-daily",
            "2",
            "--keep-monthly",
            "2",
        ])
        .ok()
        .json();
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{r}");
    let keep: Vec<&str> = groups[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    // daily: Jan 4, Jan 1; monthly: Jan (Jan 4), Dec (Dec 31 20:00, the newest of the day).
    let mut want = vec![ids[2].as_str(), ids[3].as_str(), ids[4].as_str()];
    let mut got = keep.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{r}");
    let k4 = &groups[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == ids[4].as_str())
        .unwrap()["reasons"];
    assert_eq!(k4, &serde_json::json!(["daily", "monthly"]), "{r}");
    assert_eq!(t.snapshot_ids().len(), 5, "a dry run removed snapshots");

    // Text dry run shows the action and rule per snapshot.
    let txt = t
        .cellar()
        .args(["forget", "-n", "--keep-last", "1"])
        .ok()
        .stdout;
    assert!(
        txt.contains("keep") && txt.contains("remove") && txt.contains("last"),
        "{txt}"
    );

    // For real: the two others go.
    t.cellar()
        .args(["forget", "--keep-daily", "2", "--keep-monthly", "2"])
        .ok();
    let mut left = t.snapshot_ids();
    left.sort();
    assert_eq!(left, want);
    // No policy and no ids is a usage error, not "forget everything".
    let r = t.cellar().arg("forget").run();
    assert_ne!(r.code, 0, "{}", r.report());
    assert_eq!(t.snapshot_ids().len(), 3);
}

#[test]
fn forget_and_two_prunes_reclaim_the_space_and_keep_the_rest_restorable() {
    let t = TestRepo::with_init_args("prune-space", &["--pack-size-mib", "1"]);
    let hist = history(&t, 4);
    let before = pack_bytes(&t);
    // Forget the first two versions: their unique files (1.5 MB each) go.
    forget(&t, &hist[0].0);
    forget(&t, &hist[1].0);
    let dry = t
        .cellar()
        .args(["--json", "prune", "--dry-run", "--grace", "0s"])
        .ok()
        .json();
    assert_eq!(pack_bytes(&t), before, "a dry run changed the repository");
    let first = prune(&t, &[]);
    assert_eq!(first["marked_packs"], dry["marked_packs"], "{first}\n{dry}");
    assert!(
        first["deleted_packs"].as_array().unwrap().is_empty(),
        "phase one deleted packs: {first}"
    );
    assert_restores(&t, &hist[2..], &t.dir.join("src"), "after-mark");
    let second = prune(&t, &[]);
    let after = pack_bytes(&t);
    let freed = before - after;
    // Deleted minus what repacking wrote anew.
    assert!(field(&second, "deleted_bytes") >= freed, "{second}");
    // Two unique 1.5 MB files were freed (random data does not compress); the
    // repacked remainder may keep a little of their neighbours' packs' headers.
    assert!(
        (2_900_000..3_300_000).contains(&freed),
        "freed {freed} bytes\n{first}\n{second}"
    );
    assert_restores(&t, &hist[2..], &t.dir.join("src"), "after-delete");
    // Nothing left to do.
    let third = prune(&t, &[]);
    assert!(
        third["marked_packs"].as_array().unwrap().is_empty(),
        "{third}"
    );
    assert!(
        third["deleted_packs"].as_array().unwrap().is_empty(),
        "{third}"
    );
    // stats agrees that nothing is reclaimable, and counts the snapshots.
    let s = t.cellar().args(["--json", "stats"]).ok().json();
    assert_eq!(field(&s, "snapshots"), 2, "{s}");
    assert!(field(&s, "reclaimable_bytes") < 100_000, "{s}");
    assert!(s["dedup_ratio"].as_f64().unwrap() > 1.0, "{s}");
}

#[test]
fn grace_period_keeps_marked_packs() {
    let t = TestRepo::with_init_args("prune-grace", &["--pack-size-mib", "1"]);
    let hist = history(&t, 2);
    forget(&t, &hist[0].0);
    prune(&t, &[]);
    let packs = pack_names(&t);
    let r = t
        .cellar()
        .args(["--json", "prune", "--grace", "1h"])
        .ok()
        .json();
    assert!(r["deleted_packs"].as_array().unwrap().is_empty(), "{r}");
    assert!(field(&r, "waiting_packs") > 0, "{r}");
    assert_eq!(pack_names(&t), packs);
}

/// Crash at every write/delete step of a prune that both deletes (phase two)
/// and marks and repacks (phase one). After each crash every kept snapshot
/// restores, and two more prunes finish the job with the same end state.
#[test]
fn a_crash_at_every_prune_step_loses_nothing() {
    let base = TestRepo::with_init_args("prune-crash", &["--pack-size-mib", "1"]);
    let hist = history(&base, 4);
    forget(&base, &hist[0].0);
    prune(&base, &[]); // marks v0's data
    forget(&base, &hist[1].0);
    let kept = &hist[2..];

    // The reference: the same run without a crash.
    let reference = clone_repo(&base, "ref");
    prune(&reference, &["--max-unused", "0%"]);
    prune(&reference, &["--max-unused", "0%"]);
    let want = pack_bytes(&reference);

    let mut k = 1;
    loop {
        let t = clone_repo(&base, &format!("k{k}"));
        let r = run_env(
            &t,
            "CELLAR_FAULT",
            &format!("prune:{k}"),
            &["prune", "--grace", "0s", "--max-unused", "0%"],
        );
        if r.code == 0 {
            break;
        }
        assert_eq!(r.code, CRASH, "step {k}\n{}", r.report());
        assert_restores(&t, kept, &base.dir.join("src"), &format!("k{k}"));
        prune(&t, &["--max-unused", "0%"]);
        prune(&t, &["--max-unused", "0%"]);
        assert_restores(&t, kept, &base.dir.join("src"), &format!("k{k}-done"));
        let got = pack_bytes(&t);
        assert!(
            got <= want + want / 50,
            "after a crash at step {k} and two prunes: {got} bytes, without a crash {want}"
        );
        k += 1;
        assert!(k < 100, "prune never finished");
    }
    assert!(k > 5, "the prune took only {} steps", k - 1);
}

/// A copy of a test repository (repository and cache) under a new directory.
fn clone_repo(base: &TestRepo, name: &str) -> TestRepo {
    let t = TestRepo::uninitialized(&format!("prune-clone-{name}"));
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&base.repo)
        .arg(&t.repo)
        .status()
        .unwrap();
    assert!(st.success());
    t
}

/// A backup that deduplicated against data a prune then marks must not lose
/// it: the prune that could delete it waits while the backup's lock is live,
/// and once the backup's snapshot exists the pack is needed again.
#[test]
fn a_backup_running_during_prune_never_loses_data() {
    let t = TestRepo::with_init_args("prune-concurrent", &["--pack-size-mib", "1"]);
    let src = t.dir.mkdir("src");
    write_random(&src.join("old.bin"), 1_500_000, 42);
    let old = backup_at(&t, &src, "2026-11-01T10:00:00+01:00");
    // The new backup (another path, so no parent) reads old.bin again and
    // deduplicates against the old snapshot's blobs, then pauses before its
    // snapshot is written.
    let src2 = t.dir.mkdir("src2");
    fs::copy(src.join("old.bin"), src2.join("old.bin")).unwrap();
    let running = cellar_env(
        &t,
        "CELLAR_FAULT",
        "backup-pause-before-snapshot:4000",
        &["--json", "backup", src2.to_str().unwrap()],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the backup holds its lock (it is paused well after).
    wait_for(|| !all_paths(&t.repo.join("locks")).is_empty());
    forget(&t, &old);
    let p1 = prune(&t, &[]); // marks the old data: no snapshot references it
    assert!(!p1["marked_packs"].as_array().unwrap().is_empty(), "{p1}");
    let p2 = prune(&t, &[]); // would delete it, but the backup is running
    assert!(p2["deleted_packs"].as_array().unwrap().is_empty(), "{p2}");
    assert!(!p2["deferred"].as_array().unwrap().is_empty(), "{p2}");
    let out = running.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        field(&v, "data_blobs_added"),
        0,
        "the backup did not deduplicate: {v}"
    );
    let id = v["snapshot_id"].as_str().unwrap().to_string();
    // Now the data packs are needed again: unmarked, not deleted (the old
    // snapshot's own tree pack may go).
    let p3 = prune(&t, &[]);
    assert!(!p3["unmarked_packs"].as_array().unwrap().is_empty(), "{p3}");
    assert!(field(&p3, "deleted_bytes") < 100_000, "{p3}");
    let target = t.dir.join("restore");
    t.restore(&format!("{id}:{}", src2.display()), &target)
        .ok_or_report();
    assert_same_file(&src.join("old.bin"), &target.join("old.bin"));

    // A backup that starts after the mark stores the data again instead.
    forget(&t, &id);
    let p4 = prune(&t, &[]);
    assert!(!p4["marked_packs"].as_array().unwrap().is_empty(), "{p4}");
    let src3 = t.dir.mkdir("src3");
    fs::copy(src.join("old.bin"), src3.join("old.bin")).unwrap();
    let v = t.backup(&[&src3]);
    assert!(
        field(&v, "data_blobs_added") > 0,
        "deduplicated against a marked pack: {v}"
    );
    let id3 = v["snapshot_id"].as_str().unwrap().to_string();
    let p5 = prune(&t, &[]);
    assert!(!p5["deleted_packs"].as_array().unwrap().is_empty(), "{p5}");
    let target = t.dir.join("restore3");
    t.restore(&format!("{id3}:{}", src3.display()), &target)
        .ok_or_report();
    assert_same_file(&src.join("old.bin"), &target.join("old.bin"));
}

trait OkOrReport {
    fn ok_or_report(self);
}
impl OkOrReport for Run {
    fn ok_or_report(self) {
        assert_eq!(self.code, 0, "{}", self.report());
    }
}

/// Polls a condition that another process makes true (no time assertion: it
/// only bounds a hang).
fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("condition never became true");
}

#[test]
fn locks_two_prunes_exclude_each_other_and_stale_locks_are_ignored() {
    let t = TestRepo::new("prune-locks");
    let src = t.dir.mkdir("src");
    write_random(&src.join("f"), 10_000, 3);
    t.backup(&[&src]);
    {
        let repo = t.open();
        let _guard = cellar::lock::lock(&repo, true).unwrap();
        let r = t.cellar().args(["prune"]).expect(exit::LOCKED);
        assert!(r.stderr.contains("exclusive"), "{}", r.report());
        let r = t
            .cellar()
            .args(["prune", "--retry-lock", "1s"])
            .expect(exit::LOCKED);
        assert!(r.stderr.contains("waiting"), "{}", r.report());
        // A backup does not conflict with a prune's lock. (New content, so that
        // forgetting the first snapshot below leaves a prune something to do.)
        write_random(&src.join("f"), 10_000, 4);
        t.backup(&[&src]);
    }
    // A crashed prune leaves its lock; its process is gone, so it is ignored.
    forget(&t, &t.snapshot_ids()[0]);
    let r = run_env(&t, "CELLAR_FAULT", "prune:1", &["prune", "--grace", "0s"]);
    assert_eq!(r.code, CRASH, "{}", r.report());
    assert_eq!(all_paths(&t.repo.join("locks")).len(), 1);
    let r = t.cellar().args(["prune", "--grace", "0s"]).ok();
    assert!(r.stderr.contains("stale lock"), "{}", r.report());
    let u = t.cellar().args(["--json", "unlock"]).ok().json();
    assert_eq!(field(&u, "removed"), 1, "{u}");
    assert!(all_paths(&t.repo.join("locks")).is_empty());
}

#[test]
fn stats_of_one_snapshot_and_new_bytes() {
    let t = TestRepo::new("prune-stats");
    let src = t.dir.mkdir("src");
    write_random(&src.join("a"), 200_000, 5);
    let s1 = t.backup(&[&src]);
    write_random(&src.join("b"), 100_000, 6);
    t.backup(&[&src]);
    let all = t.cellar().args(["--json", "stats"]).ok().json();
    assert_eq!(field(&all, "snapshots"), 2, "{all}");
    assert_eq!(field(&all, "restore_size"), 200_000 + 300_000, "{all}");
    let per = all["per_snapshot"].as_array().unwrap();
    assert_eq!(per[0]["new_bytes_stored"], s1["data_added_packed"], "{all}");
    assert!(field(&all, "unique_raw_size") >= 300_000, "{all}");
    let one = t
        .cellar()
        .args(["--json", "stats"])
        .arg(&s1["snapshot_id"].as_str().unwrap()[..8])
        .ok()
        .json();
    assert_eq!(field(&one, "snapshots"), 1, "{one}");
    let raw = field(&one, "unique_raw_size");
    assert!((200_000..250_000).contains(&raw), "{one}");
    let txt = t.cellar().arg("stats").ok().stdout;
    assert!(txt.contains("prune would reclaim"), "{txt}");
}
