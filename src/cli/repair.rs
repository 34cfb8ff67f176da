//! `cellar repair index` and `cellar repair snapshots`: rebuild the index from
//! the pack headers; write snapshots that leave out what is lost.

use std::io::Write;

use anyhow::Result;
use cellar::check::{self, ReadData};
use cellar::repair;
use clap::{Args, Subcommand};
use serde_json::json;

use super::common::open_repo;
use super::progress::Bar;
use super::{GlobalArgs, exit};

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the pack headers (supersedes every old index segment)
    Index(RepairIndexArgs),
    /// Write new snapshots without the files and directories whose data is lost
    Snapshots(RepairSnapshotsArgs),
}

#[derive(Args, Debug)]
pub struct RepairIndexArgs {}

#[derive(Args, Debug)]
pub struct RepairSnapshotsArgs {
    /// Snapshots to repair (id prefixes or "latest"; default: all)
    pub snapshots: Vec<String>,
    /// Remove each original once its repaired snapshot is written
    #[arg(long)]
    pub forget: bool,
    /// Also read every pack to find damaged blobs (otherwise only what the index lacks is left out)
    #[arg(long)]
    pub read_data: bool,
}

struct Warn<'a>(&'a Bar);
impl repair::Progress for Warn<'_> {
    fn pack_done(&self, bytes: u64) {
        cellar::restorer::Progress::bytes_done(self.0, bytes);
    }
    fn warn(&self, msg: &str) {
        cellar::restorer::Progress::warn(self.0, msg);
    }
}

struct CheckBar<'a>(&'a Bar);
impl check::Progress for CheckBar<'_> {
    fn start(&self, _packs: u64, bytes: u64) {
        cellar::archiver::Progress::start(self.0, Some(bytes));
    }
    fn pack_done(&self, bytes: u64) {
        cellar::restorer::Progress::bytes_done(self.0, bytes);
    }
}

pub fn run(g: &GlobalArgs, c: RepairCommand) -> Result<i32> {
    match c {
        RepairCommand::Index(_) => index(g),
        RepairCommand::Snapshots(a) => snapshots(g, a),
    }
}

fn index(g: &GlobalArgs) -> Result<i32> {
    let repo = super::check::open_with_hint(g)?;
    // It supersedes and deletes index segments: nothing may run alongside.
    let _lock = cellar::lock::lock(&repo, true)?;
    let bar = Bar::new(!g.quiet && !g.json, g.quiet, "read headers,");
    let r = repair::repair_index(&repo, &Warn(&bar));
    drop(bar);
    let r = r?;
    if g.json {
        println!("{}", serde_json::to_string(&r)?);
    } else if !g.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "indexed {} blob(s) in {} pack(s); wrote {} index segment(s), removed {} old one(s)",
            r.blobs_indexed,
            r.packs_indexed,
            r.segments_written.len(),
            r.segments_removed.len()
        )?;
        for (p, why) in &r.damaged_packs {
            writeln!(out, "damaged pack {p}: {why}")?;
        }
        if !r.damaged_packs.is_empty() {
            writeln!(
                out,
                "salvaged {} blob(s) of damaged packs into new packs; {} blob(s) are lost",
                r.blobs_salvaged, r.blobs_lost
            )?;
        }
    }
    if r.blobs_lost > 0 {
        // The index is repaired; what it cannot describe any more is the
        // snapshots' business (and `check` keeps reporting it until then).
        eprintln!(
            "cellar: warning: {} blob(s) are lost: run `cellar repair snapshots` to keep the rest restorable",
            r.blobs_lost
        );
    }
    Ok(exit::OK)
}

fn snapshots(g: &GlobalArgs, a: RepairSnapshotsArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let _lock = cellar::lock::lock(&repo, a.forget)?;
    let selected = if a.snapshots.is_empty() {
        repo.snapshots()?
    } else {
        a.snapshots
            .iter()
            .map(|s| repo.find_snapshot(s))
            .collect::<cellar::Result<Vec<_>>>()?
    };
    let rd = if a.read_data {
        ReadData::All
    } else {
        ReadData::None
    };
    let bar = Bar::new(!g.quiet && !g.json && a.read_data, g.quiet, "checked");
    let checked = check::check(&repo, &rd, &CheckBar(&bar));
    drop(bar);
    let (_, damage) = checked?;
    let results = repair::repair_snapshots(&repo, &damage, &selected, a.forget)?;
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if g.json {
        println!("{}", json!({ "snapshots": results }));
    } else {
        let mut out = std::io::stdout().lock();
        for r in &results {
            let short = &r.original[..8];
            if let Some(e) = &r.error {
                writeln!(out, "snapshot {short}: cannot be repaired: {e}")?;
                continue;
            }
            let Some(new) = &r.repaired else {
                if !g.quiet {
                    writeln!(out, "snapshot {short}: intact")?;
                }
                continue;
            };
            writeln!(
                out,
                "snapshot {short}: repaired as {}{}, leaving out:",
                &new[..8],
                if r.forgotten {
                    " (original removed)"
                } else {
                    ""
                }
            )?;
            for e in &r.removed {
                writeln!(out, "  {}  ({})", e.path, e.problem)?;
            }
        }
    }
    if failed > 0 {
        eprintln!("cellar: error: {failed} snapshot(s) could not be repaired");
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}
