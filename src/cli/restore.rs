//! `cellar restore`: a snapshot or a path inside it into a directory, with
//! include/exclude patterns, an overwrite policy, deletion of extras, a dry run
//! and verification.

use std::path::PathBuf;

use anyhow::Result;
use cellar::restorer::{self, Overwrite, RestoreOptions};
use cellar::selector;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::common::open_repo;
use super::output::human_bytes;
use super::progress::Bar;
use super::snapshots::FilterArgs;
use super::{GlobalArgs, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OverwriteArg {
    /// Always write every file again
    Always,
    /// Leave files whose size and mtime already match the snapshot
    IfChanged,
    /// Never replace an existing file
    Never,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAPSHOT[:PATH]: "latest", an id prefix or @TIME, optionally with a path inside it
    pub snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't')]
    pub target: PathBuf,
    /// Restore only paths matching this gitignore-style pattern, matched against
    /// absolute paths in the snapshot (repeatable)
    #[arg(long, short = 'i', value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out paths matching this pattern (repeatable)
    #[arg(long, short = 'e', value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// What to do with files the target already has
    #[arg(long, value_enum, default_value = "if-changed")]
    pub overwrite: OverwriteArg,
    /// Remove what the target holds and the snapshot does not (excluded paths are kept)
    #[arg(long)]
    pub delete: bool,
    /// Show what would be restored, skipped and deleted; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Read every restored (and skipped) file back and check it against the snapshot
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &GlobalArgs, a: RestoreArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let (sel, sub) = selector::split_spec(&a.snapshot);
    let (id, snap) = selector::resolve(&repo, sel, &a.filter.filter())?;
    let root = cellar::id::BlobId::from_hex(&snap.tree)?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        subpath: sub.filter(|s| !s.is_empty()).unwrap_or("/").to_string(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        delete: a.delete,
        dry_run: a.dry_run,
        verify: a.verify,
    };
    let started = std::time::Instant::now();
    let bar = Bar::new(!g.quiet && !g.json && !a.dry_run, g.quiet, "restored");
    let res = restorer::restore(&repo, root, &opts, &bar);
    drop(bar);
    let res = res?;
    for e in &res.errors {
        eprintln!("cellar: error: {e}");
    }
    if g.json {
        println!(
            "{}",
            json!({
                "message_type": "summary",
                "snapshot_id": id.to_hex(),
                "dry_run": a.dry_run,
                "files_restored": res.files,
                "files_skipped": res.skipped,
                "files_deleted": res.deleted,
                "files_verified": res.verified,
                "dirs_restored": res.dirs,
                "bytes_restored": res.bytes,
                "errors": res.errors,
                "duration_s": started.elapsed().as_secs_f64(),
            })
        );
    } else if !g.quiet {
        let verb = if a.dry_run {
            "would restore"
        } else {
            "restored"
        };
        let mut line = format!(
            "{verb} {} files, {} dirs, {} from snapshot {} to {}",
            res.files,
            res.dirs,
            human_bytes(res.bytes),
            id.short(),
            a.target.display(),
        );
        if res.skipped > 0 {
            line.push_str(&format!("; {} unchanged files left alone", res.skipped));
        }
        if a.delete {
            let v = if a.dry_run { "would delete" } else { "deleted" };
            line.push_str(&format!("; {v} {}", res.deleted));
        }
        if a.verify {
            line.push_str(&format!("; {} files verified", res.verified));
        }
        println!("{line} in {:.2}s", started.elapsed().as_secs_f64());
    }
    if !res.errors.is_empty() {
        eprintln!(
            "cellar: error: {} item(s) could not be restored",
            res.errors.len()
        );
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}
