//! S3 repositories end to end, against a real S3 server ([`crate::s3util`]):
//! backup, restore and `check --read-data` round trip; `init` stays inside its
//! prefix; wrong credentials; the server killed in the middle of a backup; and
//! a fault-injecting proxy (503 SlowDown, delays) that the retries ride out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::s3util::*;
use crate::util::*;

/// A few small files and a 5 MiB one (several chunks, ranged reads).
fn small_tree(dir: &Dir, name: &str) -> PathBuf {
    let src = dir.mkdir(name);
    for i in 0..20u64 {
        dir.write(
            format!("{name}/d{}/f{i}.txt", i % 3),
            format!("file {i}\n").repeat(100 + i as usize).as_bytes(),
        );
    }
    write_random(&src.join("big.bin"), 5 * MIB, 42);
    dir.symlink("d0/f0.txt", format!("{name}/link"));
    src
}

#[test]
fn backup_restore_check_round_trip() {
    let Some(r) = S3Repo::new("roundtrip") else {
        return;
    };
    let src = small_tree(&r.dir, "src");
    let s = r.backup(&[&src]);
    assert_eq!(s["retries"], 0, "{s}");
    assert!(field(&s, "data_added") > 5 * MIB, "{s}");

    let target = r.restore_latest(&src);
    assert_same_tree(&src, &target);

    let c = r.cellar().args(["check", "--read-data"]).ok();
    assert!(c.stdout.contains("no errors"), "{}", c.report());

    // A second backup of the same tree adds no file data.
    let s = r.backup(&[&src]);
    assert_eq!(field(&s, "data_blobs_added"), 0, "{s}");
    assert_eq!(
        r.cellar()
            .args(["--json", "snapshots"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn init_stays_inside_its_prefix_and_refuses_a_used_one() {
    let Some(r) = S3Repo::uninitialized("init", "backups/srv1") else {
        return;
    };
    let bucket = r.server.bucket_dir();
    // Neighbours: a sibling whose name starts like the prefix, and a file beside it.
    std::fs::create_dir_all(bucket.join("backups/srv10")).unwrap();
    std::fs::write(bucket.join("backups/srv10/keep"), b"other").unwrap();
    std::fs::write(bucket.join("backups/README"), b"mine").unwrap();
    let before = r.server.keys();

    r.cellar().arg("init").args(CHEAP_KDF).ok();
    let after = r.server.keys();
    let new: Vec<&String> = after.iter().filter(|k| !before.contains(k)).collect();
    assert!(!new.is_empty());
    assert!(
        new.iter().all(|k| k.starts_with("backups/srv1/")),
        "init wrote outside its prefix: {new:?}"
    );
    assert!(
        after.contains(&"backups/srv1/config".to_string()),
        "{after:?}"
    );
    assert_eq!(
        std::fs::read(bucket.join("backups/README")).unwrap(),
        b"mine"
    );

    // Twice: refused.
    let e = r.cellar().arg("init").args(CHEAP_KDF).expect(exit::ERROR);
    assert!(e.stderr.contains("not empty"), "{}", e.report());
    // A prefix that holds anything at all: refused, and left alone.
    let e = s3_cellar(&r.endpoint)
        .args([
            "-r",
            &format!("s3://{BUCKET}/backups/srv10"),
            "--password-file",
        ])
        .arg(&r.password_file)
        .arg("init")
        .args(CHEAP_KDF)
        .expect(exit::ERROR);
    assert!(e.stderr.contains("not empty"), "{}", e.report());
    assert_eq!(r.server.keys(), after);
}

#[test]
fn wrong_credentials_fail_on_one_line_naming_endpoint_and_code() {
    let Some(r) = S3Repo::new("creds") else {
        return;
    };
    let endpoint = r.server.endpoint();
    for (var, value, code) in [
        (
            "AWS_SECRET_ACCESS_KEY",
            "not-the-secret",
            "SignatureDoesNotMatch",
        ),
        ("AWS_ACCESS_KEY_ID", "nobody", "403"),
    ] {
        for cmd in [&["snapshots"][..], &["init"][..]] {
            let e = r.cellar().env(var, value).args(cmd).expect(exit::ERROR);
            let err = e.stderr.trim();
            assert_eq!(err.lines().count(), 1, "{}", e.report());
            assert!(err.contains(&endpoint), "{}", e.report());
            assert!(err.contains(code), "{}", e.report());
        }
    }
    // An endpoint nobody listens on: a one-line connection error, after retries.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let e = s3_cellar(&dead)
        .args(["-r", &r.url, "--password-file"])
        .arg(&r.password_file)
        .arg("snapshots")
        .expect(exit::ERROR);
    assert_eq!(e.stderr.trim().lines().count(), 1, "{}", e.report());
    assert!(e.stderr.contains(&dead), "{}", e.report());
}

/// Pack objects (data/XX/ID) of a repository at `backups/srv1`.
fn pack_keys(server: &S3Server) -> Vec<String> {
    server
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("backups/srv1/data/"))
        .collect()
}

#[test]
fn server_killed_in_the_middle_of_a_backup() {
    let Some(mut r) = S3Repo::uninitialized("killed", "backups/srv1") else {
        return;
    };
    r.cellar()
        .args(["init", "--pack-size-mib", "1"])
        .args(CHEAP_KDF)
        .ok();
    let first = small_tree(&r.dir, "first");
    let s1 = r.backup(&[&first]);
    let packs_before = pack_keys(&r.server).len();

    // 48 packs: enough that the kill lands in the middle.
    const LEN: u64 = 48 * MIB;
    let src = r.dir.mkdir("src");
    write_random(&src.join("big.bin"), LEN, 4848);
    let mut running = r
        .cellar()
        .args(["--json", "backup"])
        .arg(&first)
        .arg(&src)
        .spawn();
    // Kill the server once the backup has uploaded a few packs of its own.
    loop {
        if pack_keys(&r.server).len() >= packs_before + 5 {
            break;
        }
        assert!(
            !running.exited(),
            "the backup ended before the server could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    r.server.kill();
    let out = running.wait();
    let stderr = &out.stderr;
    assert_eq!(out.code, exit::ERROR, "{stderr}");
    assert!(stderr.contains(&r.server.endpoint()), "{stderr}");
    assert!(
        stderr
            .trim()
            .lines()
            .last()
            .unwrap()
            .starts_with("cellar: error: "),
        "{stderr}"
    );
    let uploaded = pack_keys(&r.server);

    r.server.restart();
    let s = r.backup(&[&first, &src]);
    // The first snapshot's data is reused, and so are the packs the killed run
    // uploaded: the next backup indexes them before it starts (format-spec 05).
    assert!(field(&s1, "data_added") > 5 * MIB, "{s1}");
    let added = field(&s, "data_added");
    let adopted = (uploaded.len() - packs_before) as u64;
    assert!(adopted >= 5, "{uploaded:?}");
    assert!(
        added + adopted * MIB / 2 <= LEN + MIB,
        "added {added} although {adopted} uploaded packs could be reused: {s}"
    );
    let c = r.cellar().args(["check", "--read-data"]).ok();
    assert!(c.stdout.contains("no errors"), "{}", c.report());
    let target = r.restore_latest(&src);
    assert_same_file(&src.join("big.bin"), &target.join("big.bin"));
    // What the killed run uploaded is still there (unindexed; prune reclaims it).
    let now = pack_keys(&r.server);
    assert!(uploaded.iter().all(|k| now.contains(k)));
}

// ---------------------------------------------------------------------------
// A fault-injecting proxy

const SLOWDOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>cellar-test</RequestId></Error>";

/// Reads one HTTP/1.1 request (head and Content-Length body); None at EOF.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut req = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
        req.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    req.extend_from_slice(&body);
    Some(req)
}

/// Relays connections to `upstream`. Of the connections it accepts, every
/// third has its first request answered with 503 SlowDown (then closed), and
/// every third waits before it is relayed. Returns the port and the count of
/// 503 answers.
fn fault_proxy(upstream: u16) -> (u16, Arc<AtomicU64>) {
    proxy(move |n, client, f| {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let Some(first) = read_request(&mut reader) else {
            return;
        };
        let mut client = client;
        match n % 3 {
            0 => {
                f.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    client,
                    "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SLOWDOWN}",
                    SLOWDOWN.len()
                );
                return;
            }
            1 => std::thread::sleep(Duration::from_millis(300)),
            _ => {}
        }
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        if up.write_all(&first).is_err() {
            return;
        }
        // Whatever the client sends next, as it is (keep-alive).
        let mut up2 = up.try_clone().unwrap();
        let buffered = reader.buffer().to_vec();
        let mut rest = reader.into_inner();
        std::thread::spawn(move || {
            if up2.write_all(&buffered).is_ok() {
                let _ = std::io::copy(&mut rest, &mut up2);
            }
            let _ = up2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut up, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Both);
    })
}

/// Listens on a free local port and serves each connection on a thread of its
/// own with `handle(connection number, client, counter)`; returns the port and
/// the counter.
fn proxy(
    handle: impl Fn(usize, TcpStream, &AtomicU64) + Send + Sync + 'static,
) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(client) = conn else { return };
            let (c, handle) = (c.clone(), handle.clone());
            std::thread::spawn(move || handle(n, client, &c));
        }
    });
    (port, count)
}

#[test]
fn retries_ride_out_slowdown_and_delays() {
    let Some(mut r) = S3Repo::new("proxy") else {
        return;
    };
    let (port, failed) = fault_proxy(r.server.port);
    r.endpoint = format!("http://127.0.0.1:{port}");
    let src = small_tree(&r.dir, "src");
    let s = r.backup(&[&src]);
    let injected = failed.load(Ordering::SeqCst);
    assert!(injected > 0, "the proxy failed no request");
    assert!(field(&s, "retries") >= injected, "{s} (503s: {injected})");

    let target = r.restore_latest(&src);
    assert_same_tree(&src, &target);
    let c = r.cellar().args(["check", "--read-data"]).ok();
    assert!(c.stdout.contains("no errors"), "{}", c.report());
}

// ---------------------------------------------------------------------------
// Requests for pack data

/// Relays every connection to `upstream`, request by request, and counts the
/// GETs of pack objects (`…/data/XX/ID`). Returns the port and the count.
fn counting_proxy(upstream: u16) -> (u16, Arc<AtomicU64>) {
    proxy(move |_, client, g| {
        let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        let mut up_w = up.try_clone().unwrap();
        let mut client_w = client.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut up = up;
            let _ = std::io::copy(&mut up, &mut client_w);
            let _ = client_w.shutdown(std::net::Shutdown::Both);
        });
        let mut reader = BufReader::new(client);
        while let Some(req) = read_request(&mut reader) {
            let line = String::from_utf8_lossy(&req[..req.len().min(300)]).into_owned();
            if line.starts_with("GET ") && line.contains("/backups/srv1/data/") {
                g.fetch_add(1, Ordering::SeqCst);
            }
            if up_w.write_all(&req).is_err() {
                break;
            }
        }
        let _ = up_w.shutdown(std::net::Shutdown::Write);
    })
}

/// Walking a snapshot's trees on S3 reads tree packs, not tree blobs one by
/// one: restore, check and find each send about one GET per pack, however many
/// directories the snapshot has.
#[test]
fn tree_walks_read_tree_packs_whole() {
    let Some(mut r) = S3Repo::new("treepacks") else {
        return;
    };
    let src = r.dir.mkdir("src");
    let dirs = 120;
    for i in 0..dirs {
        r.dir.write(
            format!("src/d{}/e{i}/f.txt", i % 7),
            format!("file {i}\n").repeat(50).as_bytes(),
        );
    }
    r.backup(&[&src]);
    let packs = pack_keys(&r.server).len() as u64;
    assert!(packs < 10, "{packs} packs");

    let (port, gets) = counting_proxy(r.server.port);
    r.endpoint = format!("http://127.0.0.1:{port}");
    let target = r.restore_latest(&src);
    assert_same_tree(&src, &target);
    let n = gets.swap(0, Ordering::SeqCst);
    // Every pack at most once (trees of more than 120 directories, one data pack).
    assert!(n >= 1 && n <= packs, "restore: {n} GETs of {packs} packs");

    let c = r.cellar().arg("check").ok();
    assert!(c.stdout.contains("no errors"), "{}", c.report());
    let n = gets.swap(0, Ordering::SeqCst);
    assert!(n >= 1 && n <= packs, "check: {n} GETs of {packs} packs");

    let f = r.cellar().args(["find", "f.txt"]).ok();
    let found = f.stdout.lines().filter(|l| l.ends_with("/f.txt")).count();
    assert_eq!(found, dirs, "{}", f.report());
    let n = gets.swap(0, Ordering::SeqCst);
    assert!(n >= 1 && n <= packs, "find: {n} GETs of {packs} packs");
}
