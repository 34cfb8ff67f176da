//! `cellar diff SNAP1 SNAP2 [PATH]`: what was added, removed, modified
//! (content) or changed in metadata only, with size deltas. Identical subtrees
//! are skipped by tree id.

use std::io::Write;

use anyhow::Result;
use cellar::browse::{self, ChangeKind};
use cellar::catalog::Catalog;
use cellar::id::BlobId;
use cellar::selector;
use clap::Args;
use serde_json::json;

use super::common::open_repo;
use super::ls::entry_json;
use super::output::human_bytes;
use super::snapshots::FilterArgs;
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot: "latest", an id prefix or @TIME
    pub snap1: String,
    /// The newer snapshot
    pub snap2: String,
    /// Compare only below this path
    pub path: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

fn signed_bytes(d: i64) -> String {
    let s = human_bytes(d.unsigned_abs());
    if d < 0 {
        format!("-{s}")
    } else {
        format!("+{s}")
    }
}

pub fn run(g: &GlobalArgs, a: DiffArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let filter = a.filter.filter();
    let (id1, s1) = selector::resolve(&repo, &a.snap1, &filter)?;
    let (id2, s2) = selector::resolve(&repo, &a.snap2, &filter)?;
    let cat = Catalog::open(&repo)?;
    let changes = browse::diff(
        &cat,
        &repo,
        BlobId::from_hex(&s1.tree)?,
        BlobId::from_hex(&s2.tree)?,
        a.path.as_deref().unwrap_or("/"),
    )?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut counts = [0u64; 5];
    let mut delta = 0i64;
    for c in &changes {
        counts[c.kind as usize] += 1;
        delta += c.size_delta();
        if g.json {
            let mut o = json!({
                "message_type": "change",
                "path": String::from_utf8_lossy(&c.path),
                "modifier": c.kind.name(),
                "size_delta": c.size_delta(),
            });
            if let Some(e) = &c.old {
                o["before"] = entry_json(&c.path, e);
            }
            if let Some(e) = &c.new {
                o["after"] = entry_json(&c.path, e);
            }
            writeln!(out, "{o}")?;
        } else {
            let d = c.size_delta();
            let ds = if d == 0 {
                String::new()
            } else {
                signed_bytes(d)
            };
            writeln!(
                out,
                "{}  {:>12}  {}",
                c.kind.code(),
                ds,
                String::from_utf8_lossy(&c.path)
            )?;
        }
    }
    let n = |k: ChangeKind| counts[k as usize];
    if g.json {
        writeln!(
            out,
            "{}",
            json!({
                "message_type": "summary",
                "source_snapshot": id1.to_hex(),
                "target_snapshot": id2.to_hex(),
                "added": n(ChangeKind::Added),
                "removed": n(ChangeKind::Removed),
                "modified": n(ChangeKind::Modified),
                "metadata": n(ChangeKind::Metadata),
                "type_changed": n(ChangeKind::TypeChanged),
                "size_delta": delta,
            })
        )?;
    } else if !g.quiet {
        writeln!(
            out,
            "{} -> {}: {} added, {} removed, {} modified, {} metadata only, {} type changed; size {}",
            id1.short(),
            id2.short(),
            n(ChangeKind::Added),
            n(ChangeKind::Removed),
            n(ChangeKind::Modified),
            n(ChangeKind::Metadata),
            n(ChangeKind::TypeChanged),
            signed_bytes(delta)
        )?;
    }
    out.flush()?;
    Ok(exit::OK)
}
