//! Exit codes and refusals: no repository (10), a lock (11), usage errors (2),
//! unreadable source files (3, with a snapshot of everything else), and `init`
//! refusing a location that is not empty.

use std::fs;
use std::path::Path;

use crate::util::*;

#[test]
fn no_repository_exits_10() {
    let t = TestRepo::uninitialized("no-repo");
    let target = t.dir.join("target");
    let missing = t.dir.join("nonexistent");
    let commands: Vec<Vec<&std::ffi::OsStr>> = vec![
        vec!["snapshots".as_ref()],
        vec!["backup".as_ref(), t.password_file.as_os_str()],
        vec![
            "restore".as_ref(),
            "latest".as_ref(),
            "--target".as_ref(),
            target.as_os_str(),
        ],
        vec!["key".as_ref(), "list".as_ref()],
    ];
    for repo in [Path::new("/nonexistent"), missing.as_path(), t.dir.path()] {
        for args in &commands {
            let r = Cellar::new()
                .arg("-r")
                .arg(repo)
                .arg("--password-file")
                .arg(&t.password_file)
                .arg("--cache-dir")
                .arg(&t.cache)
                .args(args)
                .expect(exit::NO_REPOSITORY);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.report());
        }
    }
    assert!(
        !missing.exists(),
        "a command created the missing repository directory"
    );
    assert!(!target.exists());
}

#[test]
fn init_refuses_a_directory_that_is_not_empty() {
    let t = TestRepo::uninitialized("init-non-empty");
    fs::create_dir(&t.repo).unwrap();
    t.dir.write("repo/precious.txt", b"do not touch");
    let before = t.listing();
    let r = t.cellar().arg("init").args(CHEAP_KDF).expect(exit::ERROR);
    assert!(r.stderr.contains("not empty"), "{}", r.report());
    assert_eq!(t.listing(), before);

    // Nor can a repository be initialised twice.
    fs::remove_file(t.repo.join("precious.txt")).unwrap();
    t.cellar().arg("init").args(CHEAP_KDF).ok();
    let before = t.listing();
    t.cellar().arg("init").args(CHEAP_KDF).expect(exit::ERROR);
    assert_eq!(t.listing(), before);
    assert!(t.snapshot_ids().is_empty());
}

#[test]
fn usage_errors_exit_2() {
    Cellar::new().arg("--no-such-flag").expect(exit::USAGE);
    Cellar::new().arg("frobnicate").expect(exit::USAGE);
    Cellar::new()
        .args(["restore", "latest"])
        .expect(exit::USAGE);
}

#[test]
fn a_missing_source_path_fails_the_backup_and_writes_no_snapshot() {
    let t = TestRepo::new("missing-source");
    let real = t.dir.write("src/f", b"x");
    let missing = t.dir.join("src/no-such-file");
    let r = t
        .cellar()
        .arg("backup")
        .arg(&real)
        .arg(&missing)
        .expect(exit::ERROR);
    assert!(r.stderr.contains("no-such-file"), "{}", r.report());
    assert!(t.snapshot_ids().is_empty());
    assert!(
        all_paths(&t.repo.join("locks")).is_empty(),
        "a lock was left behind"
    );
}

#[test]
fn unreadable_source_files_exit_3_and_the_rest_is_saved() {
    // Root reads anything: as root, cellar runs as nobody here.
    let Some(t) = TestRepo::unprivileged("unreadable") else {
        eprintln!("skipped: no directory an unprivileged user can reach");
        return;
    };
    let src = t.dir.mkdir("src");
    let ok = t.dir.write("src/ok", b"readable");
    let secret = t.dir.write("src/secret", b"unreadable");
    t.dir
        .write("src/closed/inside", b"in an unreadable directory");
    chmod(&secret, 0o000);
    chmod(&src.join("closed"), 0o000);

    let r = t
        .cellar()
        .args(["--json", "backup"])
        .arg(&src)
        .expect(exit::PARTIAL);
    let summary = r.json();
    let unreadable: Vec<&str> = summary["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(unreadable.len(), 2, "{}", r.report());
    assert!(
        unreadable.iter().any(|u| u.contains("secret")),
        "{}",
        r.report()
    );
    assert!(
        unreadable.iter().any(|u| u.contains("closed")),
        "{}",
        r.report()
    );
    assert!(r.stderr.contains("secret"), "{}", r.report());

    let target = t.dir.join("target");
    let r = t.restore(&format!("latest:{}", src.display()), &target);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_eq!(fs::read(target.join("ok")).unwrap(), fs::read(&ok).unwrap());
    assert!(!target.join("secret").exists());
    assert!(!target.join("closed").exists());
    // So that the temporary directory can be removed by a user who is not root.
    chmod(&src.join("closed"), 0o755);
}

#[test]
fn a_held_exclusive_lock_makes_prune_exit_11() {
    // Only exclusive locks conflict (prune deletes in two phases, format-spec/05
    // §5.7): a backup runs alongside, a second prune does not.
    let t = TestRepo::new("locked");
    let src = t.dir.write("src/f", b"x");
    {
        let repo = t.open();
        let _guard = cellar::lock::lock(&repo, true).unwrap();
        let r = t.cellar().arg("prune").expect(exit::LOCKED);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.report());
        // Reading needs no lock, and a backup does not conflict.
        t.cellar().arg("snapshots").ok();
        t.backup(&[&src]);
    }
    assert!(
        all_paths(&t.repo.join("locks")).is_empty(),
        "a lock was left behind"
    );
    assert_eq!(t.snapshot_ids().len(), 1);
}
