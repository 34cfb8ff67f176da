//! `cellar mount`: snapshots browsed with ordinary file-system calls and tools
//! through FUSE. The test needs a usable /dev/fuse; build.rs probes for it,
//! and where it is missing the test is reported as ignored, not passed.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// Unmounts and stops `cellar mount` if the test fails half way, so that no
/// dead mount is left in the target directory.
struct MountGuard {
    mountpoint: PathBuf,
    pid: i32,
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.mountpoint) {
            let c = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()).unwrap();
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
    }
}

fn is_mounted(p: &Path) -> bool {
    let p = fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(p.to_str().unwrap()))
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
#[cfg_attr(
    not(cellar_fuse_usable),
    ignore = "FUSE is not usable here (no /dev/fuse, no right to mount, or built without the `fuse` feature; see build.rs): mount test skipped"
)]
fn mount_serves_every_snapshot_to_ordinary_tools() {
    let t = TestRepo::new("mount");
    let src = t.dir.mkdir("src");
    // A file of several blobs (the large chunker averages 1 MiB), small ones,
    // an empty one, a subdirectory, a symlink, odd modes and a user xattr.
    write_random(&src.join("video.mp4"), 5 * MIB + 12_345, 7);
    t.dir
        .write("src/cells.json", b"{\"needle\": \"f00dface\"}\n");
    t.dir.write("src/empty", b"");
    t.dir
        .write("src/data/personal/alice/report.docx", b"monday's report\n");
    chmod(&src.join("data/personal/alice/report.docx"), 0o640);
    t.dir.symlink("data/personal/alice", "src/alice");
    xattr::set(src.join("cells.json"), "user.origin", b"pydio").unwrap();
    set_mtime(&src.join("cells.json"), 1_700_000_000, 123_456_789);

    t.cellar()
        .args(["backup", "-q", "--time", "2026-11-23 03:00:00"])
        .arg(&src)
        .ok();
    let monday = src.join("data/personal/alice/report.docx");
    let monday_bytes = fs::read(&monday).unwrap();
    fs::write(&monday, b"tuesday's report, longer\n").unwrap();
    t.cellar()
        .args(["backup", "-q", "--time", "2026-11-24 03:00:00"])
        .arg(&src)
        .ok();
    let ids = t.snapshot_ids();

    let mnt = t.dir.mkdir("mnt");
    let mut running = t
        .cellar()
        .args(["mount", "--refresh", "0"])
        .arg(&mnt)
        .spawn();
    let guard = MountGuard {
        mountpoint: mnt.clone(),
        pid: running.pid(),
    };
    let start = Instant::now();
    while !mnt.join("snapshots").exists() {
        if running.exited() {
            panic!("cellar mount exited early:\n{}", running.wait().report());
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "mount did not appear"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Layout: one directory per snapshot named by its local time, latest, ids, hosts.
    let snaps = mnt.join("snapshots");
    assert_eq!(
        names(&snaps),
        ["2026-11-23T03:00:00", "2026-11-24T03:00:00", "latest"]
    );
    assert_eq!(
        fs::read_link(snaps.join("latest")).unwrap(),
        Path::new("2026-11-24T03:00:00")
    );
    let short: Vec<String> = ids.iter().map(|i| i[..8].to_string()).collect();
    let mut sorted = short.clone();
    sorted.sort();
    assert_eq!(names(&mnt.join("ids")), sorted);
    assert_eq!(
        fs::canonicalize(mnt.join("ids").join(&short[0])).unwrap(),
        fs::canonicalize(snaps.join("2026-11-23T03:00:00")).unwrap()
    );
    let hosts = names(&mnt.join("hosts"));
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(
        names(&mnt.join("hosts").join(&hosts[0])),
        ["2026-11-23T03:00:00", "2026-11-24T03:00:00", "latest"]
    );

    // The newest snapshot reproduces the source: contents, modes, owners,
    // mtimes to the nanosecond, symlinks and user xattrs.
    let inside = |snap: &str| snaps.join(snap).join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &inside("latest"));
    // The older one holds Monday's report.
    assert_eq!(
        fs::read(inside("2026-11-23T03:00:00").join("data/personal/alice/report.docx")).unwrap(),
        monday_bytes
    );

    // Reads at any offset, across blob boundaries, match the source.
    let expected = fs::read(src.join("video.mp4")).unwrap();
    let mut f = fs::File::open(inside("latest").join("video.mp4")).unwrap();
    for &off in &[
        0u64,
        1,
        1 << 20,
        3 * MIB - 7,
        5 * MIB,
        expected.len() as u64 - 10,
    ] {
        let mut buf = vec![0u8; 300_000];
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut n = 0;
        loop {
            let k = f.read(&mut buf[n..]).unwrap();
            if k == 0 {
                break;
            }
            n += k;
        }
        let want = &expected[off as usize..(off as usize + buf.len()).min(expected.len())];
        assert_eq!(n, want.len(), "read length at offset {off}");
        assert!(buf[..n] == *want, "content at offset {off}");
    }

    // Ordinary tools: grep finds content, cp copies out.
    let out = Command::new("grep")
        .args(["-rl", "f00dface"])
        .arg(snaps.join("latest/"))
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        found.trim_end().ends_with("cells.json"),
        "grep found: {found:?}"
    );
    let copy = t.dir.join("copy.mp4");
    let st = Command::new("cp")
        .arg(inside("latest").join("video.mp4"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    assert_same_file(&src.join("video.mp4"), &copy);

    // Read-only.
    let err = fs::write(inside("latest").join("new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    // A snapshot taken while mounted appears (refresh 0: at the next look).
    t.cellar()
        .args(["backup", "-q", "--time", "2026-11-25 03:00:00"])
        .arg(&src)
        .ok();
    wait_until("the new snapshot", 10, || {
        names(&snaps).contains(&"2026-11-25T03:00:00".to_string())
    });
    assert_eq!(
        fs::read(inside("2026-11-25T03:00:00").join("data/personal/alice/report.docx")).unwrap(),
        b"tuesday's report, longer\n"
    );

    // Ctrl-C while a file is open: the mount point is detached at once, the
    // open file stays readable, and cellar exits 0 once it is closed.
    f.seek(SeekFrom::Start(0)).unwrap();
    unsafe {
        libc::kill(running.pid(), libc::SIGINT);
    }
    wait_until("the mount point to be detached", 20, || !is_mounted(&mnt));
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).unwrap();
    assert!(head == expected[..4096], "open file after detach");
    assert!(!running.exited(), "exited while a file was still open");
    drop(f);
    wait_until("cellar mount to exit", 20, || running.exited());
    let r = running.wait();
    assert_eq!(r.code, exit::OK, "{}", r.report());
    assert!(!is_mounted(&mnt), "still mounted after Ctrl-C");
    drop(guard);
}

#[test]
fn mount_names_a_bad_mount_point() {
    let t = TestRepo::new("mount-bad");
    let missing = t.dir.join("no-such-dir");
    let r = t.cellar().arg("mount").arg(&missing).expect(exit::ERROR);
    let first = r.stderr.lines().next().unwrap_or_default().to_string();
    assert!(
        first.contains("no-such-dir") || first.contains("FUSE"),
        "error should name the mount point (or why FUSE is missing): {}",
        r.report()
    );
    let file = t.dir.write("plain-file", b"x");
    let r = t.cellar().arg("mount").arg(&file).expect(exit::ERROR);
    assert!(
        r.stderr.contains("plain-file") || r.stderr.contains("FUSE"),
        "{}",
        r.report()
    );
}
