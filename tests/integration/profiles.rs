//! `cellar run PROFILE` and `cellar config`: hooks run in order and `finally`
//! always runs; a failing hook or dump command leaves no snapshot; a hanging
//! hook is killed with its process group at its timeout; configuration errors
//! are one line naming the file and line.

use std::path::{Path, PathBuf};

use crate::util::{Cellar, Run, TestRepo, exit};

/// A `[profiles.NAME]` header with the test repository, its password file and cache.
pub fn profile_head(t: &TestRepo, name: &str) -> String {
    format!(
        "[profiles.{name}]\nrepository = {:?}\npassword-file = {:?}\ncache-dir = {:?}\n",
        t.repo, t.password_file, t.cache
    )
}

/// Writes `text` as the configuration file and returns its path.
pub fn write_config(t: &TestRepo, text: &str) -> PathBuf {
    t.dir.write("cellar.toml", text.as_bytes())
}

pub fn run_profile(config: &Path, name: &str) -> Run {
    Cellar::new()
        .arg("--json")
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg(name)
        .run()
}

fn step_outcomes(r: &Run) -> Vec<(String, String)> {
    r.json()["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps\n{}", r.report()))
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A profile whose hooks append their name (and the error, if any) to a log.
fn hooked(t: &TestRepo, before: &str, stream: Option<&str>) -> (PathBuf, PathBuf) {
    let src = t.dir.mkdir("src");
    t.dir.write("src/a.txt", b"hello");
    let log = t.dir.join("hooks.log");
    let mut c = profile_head(t, "nightly");
    c += &format!("[profiles.nightly.backup]\npaths = [{src:?}]\n");
    if let Some(cmd) = stream {
        c += &format!("streams = {{ \"db.sql\" = {cmd:?} }}\n");
    }
    let l = log.display();
    c += &format!(
        "[profiles.nightly.hooks]\nbefore = [{before:?}, \"echo before-2 >> {l}\"]\n\
         after-backup = \"echo after-backup >> {l}\"\n\
         after = \"echo after >> {l}\"\n\
         on-failure = 'echo \"on-failure: $CELLAR_ERROR\" >> {l}'\n\
         finally = 'echo \"finally $CELLAR_STATUS\" >> {l}'\n"
    );
    (write_config(t, &c), log)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn hooks_run_in_order_around_a_backup() {
    let t = TestRepo::new("run-ok");
    let log = t.dir.join("hooks.log");
    let (cfg, _) = hooked(&t, &format!("echo before >> {}", log.display()), None);
    let r = run_profile(&cfg, "nightly");
    assert_eq!(r.code, exit::OK, "{}", r.report());
    assert_eq!(
        read(&log),
        "before\nbefore-2\nafter-backup\nafter\nfinally ok\n"
    );
    let v = r.json();
    assert_eq!(v["ok"], true);
    let ids = t.snapshot_ids();
    assert_eq!(ids.len(), 1);
    assert_eq!(v["snapshot_id"], ids[0].as_str());
}

#[test]
fn failing_before_hook_means_no_backup_and_finally_still_runs() {
    let t = TestRepo::new("run-before-fails");
    let log = t.dir.join("hooks.log");
    let (cfg, _) = hooked(&t, "echo stopping; exit 7", None);
    let r = run_profile(&cfg, "nightly");
    assert_eq!(r.code, exit::ERROR, "{}", r.report());
    assert!(t.snapshot_ids().is_empty(), "a snapshot was saved");
    let log = read(&log);
    // The second before hook, the backup and `after` did not run; the
    // cleanup hooks did, with the error.
    assert!(
        !log.contains("before-2") && !log.contains("\nafter\n"),
        "{log}"
    );
    assert!(
        log.contains("on-failure: before hook `echo stopping; exit 7` exited with status 7"),
        "{log}"
    );
    assert!(log.ends_with("finally failed\n"), "{log}");
    let steps = step_outcomes(&r);
    assert!(
        steps.contains(&("backup".into(), "skipped".into())),
        "{steps:?}"
    );
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("cellar: error: profile nightly: before hook")),
        "{}",
        r.report()
    );
}

#[test]
fn failing_dump_command_means_no_snapshot() {
    let t = TestRepo::new("run-dump-fails");
    let log = t.dir.join("hooks.log");
    let (cfg, _) = hooked(
        &t,
        &format!("echo before >> {}", log.display()),
        Some("echo partial dump; echo 'mysqldump: Got error: 1045' >&2; exit 2"),
    );
    let r = run_profile(&cfg, "nightly");
    assert_eq!(r.code, exit::ERROR, "{}", r.report());
    assert!(t.snapshot_ids().is_empty(), "a snapshot was saved");
    let log = read(&log);
    // The service comes back right after the failed backup, then the cleanup hooks.
    assert!(log.contains("after-backup\n"), "{log}");
    assert!(!log.contains("\nafter\n"), "{log}");
    assert!(
        log.contains("on-failure: command for /db.sql exited with status 2"),
        "{log}"
    );
    assert!(log.ends_with("finally failed\n"), "{log}");
    assert!(r.stderr.contains("Got error: 1045"), "{}", r.report());
}

#[test]
fn hanging_hook_is_killed_with_its_children_at_its_timeout() {
    let t = TestRepo::new("run-hang");
    let src = t.dir.mkdir("src");
    let pidfile = t.dir.join("sleeper.pid");
    let log = t.dir.join("hooks.log");
    let c = profile_head(&t, "nightly")
        + &format!(
            "[profiles.nightly.backup]\npaths = [{src:?}]\n\
             [profiles.nightly.hooks]\n\
             before = {{ command = 'sleep 1000 & echo $! > {}; wait', timeout = \"1s\" }}\n\
             finally = \"echo finally >> {}\"\n",
            pidfile.display(),
            log.display()
        );
    let cfg = write_config(&t, &c);
    let r = run_profile(&cfg, "nightly");
    assert_eq!(r.code, exit::ERROR, "{}", r.report());
    assert!(r.stderr.contains("timed out after 1s"), "{}", r.report());
    assert!(t.snapshot_ids().is_empty());
    assert_eq!(read(&log), "finally\n");
    // The background sleep was in the hook's process group: it is gone (or
    // at most a zombie waiting for init to reap it).
    let pid: i32 = read(&pidfile).trim().parse().expect("pid written");
    let mut alive = true;
    for _ in 0..100 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()));
        if matches!(state, None | Some(Some('Z'))) {
            alive = false;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if alive {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the hook's background child {pid} survived the timeout");
    }
}

#[test]
fn wrong_password_stops_nothing() {
    let t = TestRepo::new("run-wrong-pw");
    let log = t.dir.join("hooks.log");
    let (cfg, _) = hooked(&t, &format!("echo before >> {}", log.display()), None);
    let wrong = t.dir.write("wrong", b"nope\n");
    let r = Cellar::new()
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--password-file")
        .arg(&wrong)
        .arg("nightly")
        .run();
    assert_eq!(r.code, exit::WRONG_PASSWORD, "{}", r.report());
    let log = read(&log);
    assert!(!log.contains("before"), "{log}");
    assert!(log.ends_with("finally failed\n"), "{log}");
}

fn config_error(t: &TestRepo, text: &str) -> String {
    let cfg = write_config(t, text);
    let r = Cellar::new()
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .run();
    assert_eq!(r.code, exit::ERROR, "{}", r.report());
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line:\n{}", r.report());
    // `run` reports the same error the same way.
    let r2 = run_profile(&cfg, "nightly");
    assert_eq!(r2.code, exit::ERROR, "{}", r2.report());
    assert_eq!(r2.stderr.trim(), lines[0], "{}", r2.report());
    lines[0].to_string()
}

#[test]
fn config_errors_name_file_and_line() {
    let t = TestRepo::uninitialized("config-errors");
    let file = t.dir.join("cellar.toml").display().to_string();
    let head = profile_head(&t, "nightly");

    let e = config_error(
        &t,
        &format!(
            "{head}[profiles.nightly.backup]\npaths = [\"/srv\"]\nexclude-caches = true\nexclud = [\"*.tmp\"]\n"
        ),
    );
    assert!(
        e.starts_with(&format!("cellar: error: {file}:8: unknown field `exclud`")),
        "{e}"
    );

    let e = config_error(
        &t,
        &format!("{head}[profiles.nightly.backup]\npaths = \"/srv\"\n"),
    );
    assert!(
        e.starts_with(&format!("cellar: error: {file}:6: invalid type")),
        "{e}"
    );

    let e = config_error(
        &t,
        "# nightly job\n[profiles.nightly]\ncache-dir = \"/tmp/x\"\n[profiles.nightly.backup]\npaths = [\"/srv\"]\n",
    );
    assert!(
        e.starts_with(&format!(
            "cellar: error: {file}:2: profile nightly: no repository"
        )),
        "{e}"
    );

    let e = config_error(
        &t,
        &format!(
            "{head}[profiles.nightly.backup]\npaths = [\"/srv\"]\n[profiles.nightly.forget]\nkeep-daily = 7\ngrace = \"an hour\"\n"
        ),
    );
    assert!(
        e.starts_with(&format!("cellar: error: {file}:9: duration")),
        "{e}"
    );
}

#[test]
fn config_show_hides_the_password_and_applies_overrides() {
    let t = TestRepo::uninitialized("config-show");
    let text = "[profiles.nightly]\nrepository = \"/srv/cellar\"\npassword = \"hunter2\"\n\
                [profiles.nightly.backup]\npaths = [\"/srv\"]\n\
                streams = { \"cells.sql\" = \"mysqldump -psecret cells\" }\n";
    let cfg = write_config(&t, text);
    let r = Cellar::new()
        .args(["config", "show", "--config"])
        .arg(&cfg)
        .args(["nightly", "-r", "/mnt/other"])
        .ok();
    assert!(!r.stdout.contains("hunter2"), "{}", r.report());
    assert!(!r.stdout.contains("secret"), "{}", r.report());
    assert!(
        r.stdout.contains("repository = \"/mnt/other\""),
        "{}",
        r.report()
    );
    assert!(r.stdout.contains("timeout = \"10m\""), "{}", r.report());
}

#[test]
fn shipped_examples_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for f in ["pydio-cells.toml", "pryv-io.toml"] {
        let r = Cellar::new()
            .args(["config", "check", "--config"])
            .arg(dir.join(f))
            .run();
        assert_eq!(r.code, exit::OK, "{f}\n{}", r.report());
    }
}
