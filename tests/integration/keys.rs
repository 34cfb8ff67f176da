//! Passwords and keys: a wrong password is reported on one line with exit code
//! 12 and changes nothing; several keys open one repository; a changed
//! password stops the old one; the key in use cannot be removed.

use crate::util::*;

fn keys(t: &TestRepo, pw: &std::path::Path) -> Vec<serde_json::Value> {
    let r = t.cellar_with(pw).args(["--json", "key", "list"]).ok();
    r.json().as_array().unwrap().clone()
}

#[test]
fn wrong_password_exits_12_on_one_line_and_writes_nothing() {
    let t = TestRepo::new("wrong-pw");
    let src = t.dir.write("src/file", b"some data");
    t.backup(&[&src]);
    let wrong = t.password("wrong", "not the password");
    let new = t.password("new", "another one");
    let target = t.dir.join("target");
    let before = t.listing();
    let cache_before = all_paths(&t.cache);

    let commands: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["snapshots".into()],
        vec!["--json".into(), "snapshots".into()],
        vec!["backup".into(), src.clone().into()],
        vec![
            "restore".into(),
            "latest".into(),
            "--target".into(),
            target.clone().into(),
        ],
        vec!["key".into(), "list".into()],
        vec![
            "key".into(),
            "add".into(),
            "--new-password-file".into(),
            new.clone().into(),
        ],
        vec![
            "key".into(),
            "passwd".into(),
            "--new-password-file".into(),
            new.clone().into(),
        ],
    ];
    for args in commands {
        let r = t
            .cellar_with(&wrong)
            .args(&args)
            .expect(exit::WRONG_PASSWORD);
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "not one line of error\n{}",
            r.report()
        );
        assert!(r.stderr.starts_with("cellar: error:"), "{}", r.report());
        assert!(r.stderr.contains("password"), "{}", r.report());
        assert!(r.stdout.is_empty(), "{}", r.report());
    }
    assert_eq!(t.listing(), before, "the repository changed");
    assert_eq!(all_paths(&t.cache), cache_before, "the cache changed");
    assert!(!target.exists(), "restore created its target");
    // And the right password still works.
    assert_eq!(t.snapshot_ids().len(), 1);
}

#[test]
fn two_keys_open_the_same_repository() {
    let t = TestRepo::new("two-keys");
    let second = t.password("second", "the second password");
    t.cellar()
        .args(["key", "add", "--new-password-file"])
        .arg(&second)
        .args(CHEAP_KDF)
        .ok();
    let listed = keys(&t, &t.password_file);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        listed.iter().filter(|k| k["current"] == true).count(),
        1,
        "{listed:?}"
    );

    let src = t.dir.write("src/file", b"written with key 1");
    let s = t.backup(&[&src]);
    let seen = snapshot_ids(&t.cellar_with(&second).args(["--json", "snapshots"]).ok());
    assert_eq!(seen, vec![s["snapshot_id"].as_str().unwrap().to_string()]);

    // Key 2 restores what key 1 wrote.
    let target = t.dir.join("target");
    let r = t
        .cellar_with(&second)
        .args(["restore", &format!("latest:{}", src.display()), "--target"])
        .arg(&target)
        .ok();
    assert!(r.stderr.is_empty(), "{}", r.report());
    assert_eq!(
        std::fs::read(target.join("file")).unwrap(),
        b"written with key 1"
    );

    // Key 1 removes key 2, which then opens nothing.
    let k2 = keys(&t, &second)
        .into_iter()
        .find(|k| k["current"] == true)
        .unwrap();
    let k2 = k2["id"].as_str().unwrap();
    t.cellar().args(["key", "remove", &k2[..12]]).ok();
    assert_eq!(keys(&t, &t.password_file).len(), 1);
    t.cellar_with(&second)
        .arg("snapshots")
        .expect(exit::WRONG_PASSWORD);
}

#[test]
fn changed_password_replaces_the_old_one() {
    let t = TestRepo::new("passwd");
    let src = t.dir.write("src/file", b"data");
    t.backup(&[&src]);
    let new = t.password("new", "brand new password");
    t.cellar()
        .args(["key", "passwd", "--new-password-file"])
        .arg(&new)
        .args(CHEAP_KDF)
        .ok();
    let r = t.cellar().arg("snapshots").expect(exit::WRONG_PASSWORD);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.report());
    let ids = snapshot_ids(&t.cellar_with(&new).args(["--json", "snapshots"]).ok());
    assert_eq!(ids.len(), 1);
    assert_eq!(keys(&t, &new).len(), 1, "the old key file is still there");
}

#[test]
fn the_key_in_use_cannot_be_removed() {
    let t = TestRepo::new("remove-current");
    let second = t.password("second", "the second password");
    t.cellar()
        .args(["key", "add", "--new-password-file"])
        .arg(&second)
        .args(CHEAP_KDF)
        .ok();
    let current = keys(&t, &t.password_file)
        .into_iter()
        .find(|k| k["current"] == true)
        .unwrap();
    let id = current["id"].as_str().unwrap();
    let before = t.listing();
    let r = t.cellar().args(["key", "remove", id]).expect(exit::ERROR);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.report());
    assert_eq!(t.listing(), before, "the repository changed");
    // Still opens with the first password.
    assert_eq!(keys(&t, &t.password_file).len(), 2);
}

#[test]
fn a_malformed_key_file_does_not_block_the_good_keys() {
    let t = TestRepo::new("junk-key");
    let second = t.password("second", "the second password");
    t.cellar()
        .args(["key", "add", "--new-password-file"])
        .arg(&second)
        .args(CHEAP_KDF)
        .ok();
    let junk = "ab".repeat(32);
    t.dir.write(format!("repo/keys/{junk}"), b"not a key file");

    let r = t.cellar().args(["--json", "key", "list"]).ok();
    assert_eq!(r.json().as_array().unwrap().len(), 2, "{}", r.report());
    assert!(
        r.stderr.contains(&junk),
        "the malformed key file is not named\n{}",
        r.report()
    );

    // The second key can still be removed, and the repository still opens.
    let k2 = keys(&t, &second)
        .into_iter()
        .find(|k| k["current"] == true)
        .unwrap();
    t.cellar()
        .args(["key", "remove", k2["id"].as_str().unwrap()])
        .ok();
    t.cellar_with(&second)
        .arg("snapshots")
        .expect(exit::WRONG_PASSWORD);
    t.cellar().arg("snapshots").ok();
}
