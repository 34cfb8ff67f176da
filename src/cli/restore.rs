//! `cellar restore`: a snapshot or a path inside it into a directory.

use std::path::PathBuf;

use anyhow::Result;
use cellar::restorer::{self, RestoreOptions};
use clap::Args;
use serde_json::json;

use super::common::open_repo;
use super::output::human_bytes;
use super::progress::Bar;
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAPSHOT[:PATH]: an id prefix or "latest", optionally with a path inside it
    pub snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't')]
    pub target: PathBuf,
}

pub fn run(g: &GlobalArgs, a: RestoreArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let (sel, sub) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s.to_string(), p.to_string()),
        None => (a.snapshot.clone(), "/".to_string()),
    };
    let (id, snap) = repo.find_snapshot(&sel)?;
    let root = cellar::id::BlobId::from_hex(&snap.tree)?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        subpath: sub,
    };
    let started = std::time::Instant::now();
    let bar = Bar::new(!g.quiet && !g.json, g.quiet, "restored");
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
                "files_restored": res.files,
                "dirs_restored": res.dirs,
                "bytes_restored": res.bytes,
                "errors": res.errors,
                "duration_s": started.elapsed().as_secs_f64(),
            })
        );
    } else if !g.quiet {
        println!(
            "restored {} files, {} dirs, {} from snapshot {} to {} in {:.2}s",
            res.files,
            res.dirs,
            human_bytes(res.bytes),
            id.short(),
            a.target.display(),
            started.elapsed().as_secs_f64()
        );
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
