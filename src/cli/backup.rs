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

/// `NAME=COMMAND` from the command line, run by the library's
/// [`cellar::hooks::command_stream`].
fn command_stream(spec: &str, quiet: bool) -> Result<StreamSource> {
    let (name, cmd) = spec
        .split_once('=')
        .filter(|(n, c)| !n.is_empty() && !c.trim().is_empty())
        .ok_or_else(|| anyhow!("--stdin-from-command {spec:?}: expected NAME=COMMAND"))?;
    let warn = std::sync::Arc::new(|m: &str| eprintln!("cellar: {m}"));
    Ok(cellar::hooks::command_stream(name, cmd, quiet, warn)?)
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
    super::tune_malloc_for_backup();
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
    let bar = Bar::new(!g.quiet && !g.json, g.quiet, "backed up")
        .listing_files(g.verbose > 0 && !g.quiet && !g.json);
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
