//! `cellar backup`: paths, stdin and command streams into one snapshot.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use cellar::archiver::{self, BackupOptions, ExcludeOptions, StreamSource};
use clap::Args;
use serde_json::json;

use super::common::{open_repo, parse_time};
use super::output::human_bytes;
use super::progress::Bar;
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up
    pub paths: Vec<PathBuf>,
    /// Read a stream from standard input
    #[arg(long)]
    pub stdin: bool,
    /// File name of the standard-input stream in the snapshot
    #[arg(long, default_value = "stdin", requires = "stdin")]
    pub stdin_filename: String,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's)
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot to compare against for unchanged files (default: latest with the same host and paths)
    #[arg(long)]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the parent
    #[arg(long)]
    pub force: bool,
    /// Record this time instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local)
    #[arg(long)]
    pub time: Option<String>,
    /// Store what COMMAND prints as the file /NAME (repeatable); a failing command means no snapshot
    #[arg(long = "stdin-from-command", value_name = "NAME=COMMAND")]
    pub commands: Vec<String>,
    /// Leave out paths matching this gitignore-style pattern (repeatable)
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Read exclude patterns from a file, one per line (# comments)
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Leave out directories that contain a file with this name (repeatable)
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Leave out directories tagged with a CACHEDIR.TAG
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out files larger than SIZE (e.g. 2G, 500M)
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Stay on the file system of each given path (mount points are left out)
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Read and hash everything but write nothing; report what would be stored
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Starts `sh -c COMMAND` and returns its stdout as a stream. Its stderr is
/// collected (the last 64 KiB) and shown after it ends; a non-zero exit, a
/// signal or a failure to start fails the backup.
fn command_stream(spec: &str, quiet: bool) -> Result<StreamSource> {
    let (name, cmd) = spec
        .split_once('=')
        .filter(|(n, c)| !n.is_empty() && !c.trim().is_empty())
        .ok_or_else(|| anyhow!("--stdin-from-command {spec:?}: expected NAME=COMMAND"))?;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting command for /{name}: {cmd}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match std::io::Read::read(&mut stderr, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 64 << 10 {
                        tail.drain(..tail.len() - (64 << 10));
                    }
                }
            }
        }
        tail
    });
    let name_s = name.to_string();
    let cmd_s = cmd.to_string();
    let finish = Box::new(move || -> cellar::Result<()> {
        let status = child.wait();
        let tail = err_thread.join().unwrap_or_default();
        let failed = !matches!(&status, Ok(s) if s.success());
        if !tail.is_empty() && (failed || !quiet) {
            for line in String::from_utf8_lossy(&tail).lines() {
                eprintln!("cellar: /{name_s}: {line}");
            }
        }
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(cellar::Error::Other(match (s.code(), s.signal()) {
                (Some(c), _) => format!(
                    "command for /{name_s} exited with status {c}: {cmd_s} (no snapshot saved)"
                ),
                (_, Some(sig)) => format!(
                    "command for /{name_s} was killed by signal {sig}: {cmd_s} (no snapshot saved)"
                ),
                _ => format!("command for /{name_s} failed: {cmd_s} (no snapshot saved)"),
            })),
            Err(e) => Err(cellar::Error::Other(format!("command for /{name_s}: {e}"))),
        }
    });
    Ok(StreamSource {
        name: name.to_string(),
        reader: Box::new(stdout),
        finish: Some(finish),
    })
}

fn exclude_options(a: &BackupArgs) -> Result<ExcludeOptions> {
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading exclude file {}", f.display()))?;
        patterns.extend(
            text.lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(ExcludeOptions {
        patterns,
        ipatterns: a.iexcludes.clone(),
        if_present: a.exclude_if_present.clone(),
        caches: a.exclude_caches,
        larger_than: a
            .exclude_larger_than
            .as_deref()
            .map(cellar::archiver::exclude::parse_size)
            .transpose()
            .context("--exclude-larger-than")?,
        one_file_system: a.one_file_system,
    })
}

pub fn run(g: &GlobalArgs, a: BackupArgs) -> Result<i32> {
    let exclude = exclude_options(&a)?;
    let repo = open_repo(g)?;
    let _lock = if a.dry_run {
        None
    } else {
        Some(cellar::lock::lock(&repo, false)?)
    };
    let mut streams = Vec::new();
    if a.stdin {
        streams.push(StreamSource {
            name: a.stdin_filename.clone(),
            reader: Box::new(std::io::stdin()),
            finish: None,
        });
    }
    for spec in &a.commands {
        streams.push(command_stream(spec, g.quiet)?);
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p)?.0),
        None => None,
    };
    let opts = BackupOptions {
        paths: a.paths.clone(),
        streams,
        tags: a.tags.clone(),
        host: a.host.clone(),
        time: a.time.as_deref().map(parse_time).transpose()?,
        parent,
        force: a.force,
        exclude,
        dry_run: a.dry_run,
    };
    let bar = Bar::new(!g.quiet && !g.json, g.quiet, "backed up");
    let res = archiver::backup(&repo, opts, &bar);
    drop(bar);
    let res = res?;
    let s = &res.summary;
    if g.json {
        let mut v = serde_json::to_value(s)?;
        let o = v.as_object_mut().unwrap();
        o.insert("message_type".into(), json!("summary"));
        o.insert(
            "snapshot_id".into(),
            json!(res.snapshot.map(|p| p.to_hex())),
        );
        o.insert("parent".into(), json!(res.parent.map(|p| p.to_hex())));
        o.insert("dry_run".into(), json!(a.dry_run));
        o.insert("unreadable".into(), json!(res.unreadable));
        // Requests the backend had to repeat (S3 5xx, SlowDown, timeouts).
        o.insert("retries".into(), json!(cellar::backend::retry::count()));
        println!("{v}");
    } else if !g.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "files: {} new, {} changed, {} unmodified; {} dirs",
            s.files_new, s.files_changed, s.files_unmodified, s.dirs
        )?;
        writeln!(
            out,
            "{}: {} ({} stored)",
            if a.dry_run {
                "would add"
            } else {
                "added to the repository"
            },
            human_bytes(s.data_added),
            human_bytes(s.data_added_packed)
        )?;
        writeln!(
            out,
            "processed {} files, {} in {:.2}s (read {})",
            s.total_files,
            human_bytes(s.total_bytes),
            s.duration_s,
            human_bytes(s.bytes_read)
        )?;
        match res.snapshot {
            Some(id) => writeln!(out, "snapshot {} saved", id.short())?,
            None => writeln!(out, "dry run: nothing written")?,
        }
    }
    if !res.unreadable.is_empty() {
        eprintln!(
            "cellar: warning: {} source file(s) could not be read; the snapshot holds everything else",
            res.unreadable.len()
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}
