//! One conformance suite for every backend (the contracts of
//! src/backend/mod.rs): whole and ranged reads, listing past one S3 page
//! (1,000 keys), not-found errors, removal, `create_new` semantics, flush.
//! It runs on a local directory and on the S3 server of [`crate::s3util`].

use std::io::ErrorKind;

use cellar::backend::{self, FileType, WriteBackend};

use crate::s3util::{self, S3Server};
use crate::util::*;

fn hexname(i: u64) -> String {
    hex::encode(blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn conformance(b: &dyn WriteBackend) {
    assert!(
        b.is_empty().unwrap(),
        "{}: fresh location not empty",
        b.location()
    );
    b.create().unwrap();
    b.flush().unwrap();

    // Whole files of every kind, each in its own namespace.
    for (i, t) in FileType::ALL.into_iter().enumerate() {
        let name = if t == FileType::Config {
            "config".to_string()
        } else {
            hexname(i as u64)
        };
        let data = random_bytes(1000 + i, i as u64);
        b.write(t, &name, &data).unwrap();
        assert_eq!(b.read(t, &name).unwrap(), data, "{t:?}");
        assert_eq!(b.size(t, &name).unwrap(), data.len() as u64, "{t:?}");
        let listed = b.list(t).unwrap();
        assert_eq!(listed, vec![(name.clone(), data.len() as u64)], "{t:?}");
    }
    assert!(!b.is_empty().unwrap());

    // Writing the same name and bytes again succeeds (retries do that).
    let pack = hexname(100);
    let data = random_bytes(3 << 20, 7);
    b.write(FileType::Pack, &pack, &data).unwrap();
    b.write(FileType::Pack, &pack, &data).unwrap();

    // Ranged reads: start, middle, end, and past the end.
    assert_eq!(
        b.read_range(FileType::Pack, &pack, 0, 10).unwrap(),
        &data[..10]
    );
    assert_eq!(
        b.read_range(FileType::Pack, &pack, 1 << 20, 4096).unwrap(),
        &data[1 << 20..(1 << 20) + 4096]
    );
    let n = data.len() as u64;
    assert_eq!(
        b.read_range(FileType::Pack, &pack, n - 5, 5).unwrap(),
        &data[data.len() - 5..]
    );
    let e = b.read_range(FileType::Pack, &pack, n - 5, 10).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{e}");

    // Not found is NotFound everywhere; removing a missing file is fine.
    let missing = hexname(999_999);
    for e in [
        b.read(FileType::Snapshot, &missing).unwrap_err(),
        b.read_range(FileType::Pack, &missing, 0, 1).unwrap_err(),
        b.size(FileType::Index, &missing).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    b.remove(FileType::Snapshot, &missing).unwrap();

    // create_new: once, and never over an existing file.
    let lock = hexname(200);
    assert!(b.create_new(FileType::Lock, &lock, b"first").unwrap());
    assert!(!b.create_new(FileType::Lock, &lock, b"second").unwrap());
    assert_eq!(b.read(FileType::Lock, &lock).unwrap(), b"first");
    b.remove(FileType::Lock, &lock).unwrap();
    assert_eq!(
        b.read(FileType::Lock, &lock).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(b.create_new(FileType::Lock, &lock, b"third").unwrap());

    // Listing beyond one page of S3 (1,000 keys), across the data/XX folders.
    let names: Vec<String> = (0..1100).map(|i| hexname(10_000 + i)).collect();
    std::thread::scope(|s| {
        for part in names.chunks(names.len().div_ceil(8)) {
            s.spawn(move || {
                for n in part {
                    b.write(FileType::Pack, n, n.as_bytes()).unwrap();
                }
            });
        }
    });
    b.flush().unwrap();
    let mut listed: Vec<String> = b
        .list(FileType::Pack)
        .unwrap()
        .into_iter()
        .map(|(n, size)| {
            assert!(size == 64 || n == pack || n == hexname(2), "{n}: {size}");
            n
        })
        .collect();
    listed.sort();
    let mut want = names.clone();
    want.push(pack.clone());
    want.push(hexname(2)); // the pack of the first loop (FileType::ALL[2])
    want.sort();
    assert_eq!(listed.len(), want.len());
    assert_eq!(listed, want);
    // Other kinds are not in the pack listing, nor packs in theirs.
    assert_eq!(b.list(FileType::Index).unwrap().len(), 1);

    b.remove(FileType::Pack, &pack).unwrap();
    assert_eq!(b.list(FileType::Pack).unwrap().len(), 1101);
}

#[test]
fn local_backend_conformance() {
    let d = Dir::new("backend-local");
    let b = backend::open(d.join("repo").to_str().unwrap()).unwrap();
    conformance(&*b);
}

/// The backend `open` builds for an s3:// URL (with retries), pointed at `server`.
pub fn s3_backend(server: &S3Server, prefix: &str) -> Box<dyn WriteBackend> {
    let settings = backend::s3::S3Settings {
        credentials: Some((s3util::ACCESS_KEY.into(), s3util::SECRET_KEY.into())),
        session_token: None,
        region: "us-east-1".into(),
        endpoint: Some(server.endpoint()),
        from_env: false,
    };
    let url = format!("s3://{}/{prefix}", s3util::BUCKET);
    let b = backend::s3::S3Backend::with_settings(&url, &Default::default(), &settings).unwrap();
    Box::new(backend::retry::RetryBackend::new(
        b,
        backend::retry::Policy::default(),
    ))
}

#[test]
fn s3_backend_conformance() {
    let Some(server) = S3Server::start("conformance") else {
        return;
    };
    // Something beside the prefix must neither count as inside it nor be touched.
    std::fs::write(server.bucket_dir().join("repo-other"), b"x").unwrap();
    let b = s3_backend(&server, "repo");
    assert!(b.properties().connections > 1);
    assert!(!b.properties().cheap_ranged_reads);
    conformance(&*b);
    assert!(
        b.properties().conditional_create,
        "s3s-fs has If-None-Match"
    );
    assert!(server.bucket_dir().join("repo-other").is_file());
    assert!(
        server
            .keys()
            .iter()
            .all(|k| k.starts_with("repo/") || k == "repo-other"),
        "keys outside the prefix"
    );
}
