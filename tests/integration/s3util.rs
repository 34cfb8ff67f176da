//! A real S3-compatible server for the tests: `s3s-fs` (SigV4 enforced) on a
//! free port of 127.0.0.1 with a temporary data directory, one per test, and
//! [`S3Repo`], a repository under a prefix of its bucket with a command
//! builder that passes the credentials in the environment.
//!
//! Where `s3s-fs` is not installed the S3 tests print "SKIPPED: s3s-fs not
//! installed" and pass, except under CI (`CI` set), where they fail.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

pub const ACCESS_KEY: &str = "cellar-test-ak";
pub const SECRET_KEY: &str = "cellar-test-secret-key-0123456789";
pub const BUCKET: &str = "cellar-test";

/// Whether `s3s-fs` can run; without it, panics under CI and says SKIPPED otherwise.
pub fn available() -> bool {
    let ok = Command::new("s3s-fs")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "s3s-fs is not installed, and CI needs the S3 tests: cargo install s3s-fs --version 0.14.1 --features binary --locked"
        );
        eprintln!("SKIPPED: s3s-fs not installed");
    }
    ok
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port` (the server is up).
pub fn wait_listening(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An `s3s-fs` process, killed when dropped.
pub struct S3Server {
    pub dir: Dir,
    pub port: u16,
    child: Option<Child>,
}

impl S3Server {
    /// A server with one empty bucket, [`BUCKET`]; None when s3s-fs is missing.
    pub fn start(name: &str) -> Option<S3Server> {
        if !available() {
            return None;
        }
        let dir = Dir::new(&format!("s3-{name}"));
        // s3s-fs keeps a bucket as a folder of its root.
        dir.mkdir(format!("data/{BUCKET}"));
        let mut s = S3Server {
            dir,
            port: free_port(),
            child: None,
        };
        s.restart();
        Some(s)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the objects of the bucket are on disk: `bucket_dir().join(key)`.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.join("data").join(BUCKET)
    }

    /// Starts the server (again) on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let mut cmd = Command::new("s3s-fs");
        cmd.args(["--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // Should the test process die, so does the server (the spawning
        // thread is the test's, which outlives the server otherwise).
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("starting s3s-fs"));
        wait_listening(self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every object key of the bucket (s3s-fs's own sidecar files are outside it).
    pub fn keys(&self) -> Vec<String> {
        let root = self.bucket_dir();
        let mut out: Vec<String> = all_paths(&root)
            .into_iter()
            .filter(|p| root.join(p).is_file())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A repository at `s3://BUCKET/PREFIX` of a server, with its password file and cache.
pub struct S3Repo {
    pub server: S3Server,
    pub dir: Dir,
    pub url: String,
    pub password_file: PathBuf,
    pub cache: PathBuf,
    /// The endpoint the commands use (the server's, or a proxy in front of it).
    pub endpoint: String,
}

impl S3Repo {
    /// A server and an uninitialised repository at `s3://cellar-test/PREFIX`.
    pub fn uninitialized(name: &str, prefix: &str) -> Option<S3Repo> {
        let server = S3Server::start(name)?;
        let dir = Dir::new(&format!("s3repo-{name}"));
        let password_file = dir.write("password", format!("{PASSWORD}\n").as_bytes());
        Some(S3Repo {
            endpoint: server.endpoint(),
            url: format!("s3://{BUCKET}/{prefix}"),
            cache: dir.join("cache"),
            password_file,
            dir,
            server,
        })
    }

    /// Same, initialised.
    pub fn new(name: &str) -> Option<S3Repo> {
        let r = S3Repo::uninitialized(name, "backups/srv1")?;
        r.cellar().arg("init").args(CHEAP_KDF).ok();
        Some(r)
    }

    /// `cellar -r s3://… --password-file … --cache-dir …` with the credentials.
    pub fn cellar(&self) -> Cellar {
        let mut c = s3_cellar(&self.endpoint);
        c.arg("-r")
            .arg(&self.url)
            .arg("--password-file")
            .arg(&self.password_file)
            .arg("--cache-dir")
            .arg(&self.cache);
        c
    }

    /// Restores `latest:SRC` into a fresh `restored` folder, asserting success.
    pub fn restore_latest(&self, src: &Path) -> PathBuf {
        let target = self.dir.join("restored");
        self.cellar()
            .args(["restore", &format!("latest:{}", src.display()), "--target"])
            .arg(&target)
            .ok();
        target
    }

    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        self.cellar()
            .arg("--json")
            .arg("backup")
            .args(paths)
            .ok()
            .json()
    }
}

/// A [`Cellar`] for S3: the environment holds the server's credentials and
/// nothing of the developer's AWS setup.
pub fn s3_cellar(endpoint: &str) -> Cellar {
    let mut c = Cellar::new();
    for v in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
    ] {
        c.env_remove(v);
    }
    c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        // A dead server fails a command in about a second, not forty.
        .env("CELLAR_RETRY_BASE_MS", "10")
        .env("AWS_ENDPOINT_URL", endpoint);
    c
}
