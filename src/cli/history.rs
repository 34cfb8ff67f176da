//! `cellar history PATH`: every distinct version of one path across the
//! (selected) snapshots, with the snapshots holding each. Only the trees along
//! the path are read, through the catalog.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use cellar::browse;
use cellar::catalog::Catalog;
use cellar::id::{BlobId, SnapshotId};
use cellar::repofile::Snapshot;
use clap::Args;

use super::common::open_repo;
use super::find::{print_versions, versions};
use super::snapshots::FilterArgs;
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Absolute path inside the snapshots, e.g. /data/personal/alice/report.docx
    pub path: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &GlobalArgs, a: HistoryArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let snaps = a.filter.filter().apply(&repo)?;
    let cat = Catalog::open(&repo)?;
    let path = browse::normalize(&a.path);
    let mut pairs = Vec::new();
    for (id, s) in &snaps {
        cellar::cancel::check()?;
        let root = BlobId::from_hex(&s.tree)?;
        match cat.lookup(&repo, root, &path) {
            Ok(Some(e)) => pairs.push((e, vec![*id])),
            Ok(None) => {}
            Err(cellar::Error::Interrupted) => return Err(cellar::Error::Interrupted.into()),
            Err(e) => repo.notify(&format!("warning: snapshot {} left out: {e}", id.short())),
        }
    }
    let order: HashMap<SnapshotId, usize> = snaps
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let by_id: HashMap<SnapshotId, &Snapshot> = snaps.iter().map(|(id, s)| (*id, s)).collect();
    let held = pairs.len();
    let vs = versions(pairs, &order);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if vs.is_empty() {
        out.flush()?;
        return Err(cellar::Error::NotFound(format!(
            "{path}: in none of {} snapshot(s)",
            snaps.len()
        ))
        .into());
    }
    print_versions(&mut out, g.json, path.as_bytes(), &vs, &by_id)?;
    if !g.json && !g.quiet {
        writeln!(
            out,
            "{} version(s) in {held} of {} snapshot(s)",
            vs.len(),
            snaps.len()
        )?;
    }
    out.flush()?;
    Ok(exit::OK)
}
