//! `cellar snapshots`: list snapshots as a table or JSON.

use std::io::Write;

use anyhow::Result;
use cellar::selector::Filter;
use clap::Args;
use serde_json::json;

use super::common::open_repo;
use super::output::{human_bytes, local_time, table};
use super::{GlobalArgs, exit};

/// The `--host/--tag/--path` filters every command that picks snapshots takes.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots with this tag (repeatable: all of them)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots that backed up this path (repeatable: all of them)
    #[arg(long = "path")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            host: self.host.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the newest N snapshots (after filtering)
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
}

pub fn run(g: &GlobalArgs, a: SnapshotsArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let mut snaps = a.filter.filter().apply(&repo)?;
    if let Some(n) = a.latest {
        snaps.drain(..snaps.len().saturating_sub(n));
    }
    if g.json {
        let arr: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": id.to_hex(),
                    "short_id": id.short(),
                    "time": s.time,
                    "host": s.hostname,
                    "hostname": s.hostname,
                    "username": s.username,
                    "uid": s.uid,
                    "gid": s.gid,
                    "tags": s.tags,
                    "paths": s.paths,
                    "tree": s.tree,
                    "parent": s.parent,
                    "program_version": s.program,
                    "summary": s.summary,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&arr)?);
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            vec![
                id.short(),
                local_time(&s.time),
                s.hostname.clone(),
                s.tags.join(","),
                s.paths.join(" "),
                s.summary
                    .as_ref()
                    .map(|x| human_bytes(x.total_bytes))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    table(
        &mut out,
        &["ID", "Time", "Host", "Tags", "Paths", "Size"],
        &rows,
    )?;
    if !g.quiet {
        writeln!(out, "{} snapshot(s)", rows.len())?;
    }
    Ok(exit::OK)
}
