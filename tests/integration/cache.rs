//! The local cache only speeds things up: deleting it loses nothing, and
//! repositories sharing a cache directory do not see each other's data.

use std::fs;

use crate::util::*;

#[test]
fn deleting_the_cache_loses_nothing() {
    let t = TestRepo::new("cache-gone");
    let src = t.dir.mkdir("src");
    let mut ids = Vec::new();
    for i in 0..3u64 {
        t.dir.write(format!("src/f{i}"), &random_bytes(700_000, i));
        ids.push(
            t.backup(&[&src])["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(t.snapshot_ids(), ids);
    assert!(t.cache.is_dir());

    fs::remove_dir_all(&t.cache).unwrap();
    assert_eq!(t.snapshot_ids(), ids, "snapshots lost with the cache");
    assert!(t.cache.is_dir(), "the cache was not rebuilt");
    assert!(!all_paths(&t.cache).is_empty());

    fs::remove_dir_all(&t.cache).unwrap();
    let target = t.dir.join("target");
    let r = t.restore(&format!("{}:{}", ids[1], src.display()), &target);
    assert_eq!(r.code, 0, "{}", r.report());
    for i in 0..2 {
        assert_eq!(
            fs::read(target.join(format!("f{i}"))).unwrap(),
            random_bytes(700_000, i)
        );
    }
    assert!(!target.join("f2").exists());

    // A backup after losing the cache still deduplicates against the repository.
    fs::remove_dir_all(&t.cache).unwrap();
    let again = t
        .cellar()
        .args(["--json", "backup", "--force"])
        .arg(&src)
        .ok()
        .json();
    assert_eq!(field(&again, "data_blobs_added"), 0, "{again}");
}

#[test]
fn a_damaged_cache_is_rebuilt() {
    for (what, garbage) in [
        ("emptied", Vec::new()),
        ("garbage", random_bytes(20_000, 5)),
    ] {
        let t = TestRepo::new(&format!("cache-{what}"));
        let src = t.dir.write("src/f", b"data");
        let id = t.backup(&[&src])["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut n = 0;
        for p in all_paths(&t.cache) {
            let p = t.cache.join(p);
            if p.is_file() {
                fs::write(&p, &garbage).unwrap();
                n += 1;
            }
        }
        assert!(n > 0);
        let r = t.cellar().args(["--json", "snapshots"]).ok();
        assert_eq!(snapshot_ids(&r), vec![id], "{what} cache");
        let target = t.dir.join("target");
        let r = t.restore(&format!("latest:{}", src.display()), &target);
        assert_eq!(r.code, 0, "{what} cache\n{}", r.report());
        assert_eq!(fs::read(target.join("f")).unwrap(), b"data");
    }
}

#[test]
fn repositories_sharing_a_cache_directory_stay_apart() {
    let a = TestRepo::new("cache-a");
    let mut b = TestRepo::new("cache-b");
    b.cache = a.cache.clone();
    let sa = a.dir.write("src/f", b"in a");
    let sb = b.dir.write("src/f", b"in b");
    let ia = a.backup(&[&sa])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ib = b.backup(&[&sb])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.snapshot_ids(), vec![ia]);
    assert_eq!(b.snapshot_ids(), vec![ib]);
}
