//! `cellar check`: verify the repository's structure, optionally its data, and
//! print a damage report by snapshot and path (or one JSON document).

use std::io::Write;

use anyhow::Result;
use cellar::check::{self, ReadData, Report};
use clap::Args;

use super::common::open_repo;
use super::output::{human_bytes, local_time};
use super::progress::Bar;
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also read every pack: storage id, header, and every blob decrypted and verified
    #[arg(long)]
    pub read_data: bool,
    /// Read only part of the packs: N/M (the N-th of M fixed slices; slices 1..M
    /// together cover every pack once) or P% (a random share)
    #[arg(long, value_name = "N/M|P%", conflicts_with = "read_data", value_parser = subset)]
    pub read_data_subset: Option<ReadData>,
}

/// Opens the repository; when an index segment is damaged (opening reads them
/// all), says how to get past it: the index can be rebuilt without it.
pub(super) fn open_with_hint(g: &GlobalArgs) -> Result<cellar::Repository> {
    open_repo(g).map_err(|e| {
        let seg = e
            .chain()
            .find_map(|c| match c.downcast_ref::<cellar::Error>() {
                Some(cellar::Error::Corrupt {
                    kind: "index segment",
                    id,
                    ..
                }) => Some(id.clone()),
                _ => None,
            });
        match seg {
            Some(id) => e.context(format!(
                "move index/{id} out of the repository, then run `cellar repair index` \
                 (it rebuilds the index from the packs)"
            )),
            None => e,
        }
    })
}

fn subset(s: &str) -> Result<ReadData, String> {
    ReadData::parse_subset(s).map_err(|e| e.to_string())
}

/// Feeds the shared progress line: bytes of packs read.
struct CheckProgress<'a>(&'a Bar);

impl check::Progress for CheckProgress<'_> {
    fn start(&self, _packs: u64, bytes: u64) {
        cellar::archiver::Progress::start(self.0, Some(bytes));
    }
    fn pack_done(&self, bytes: u64) {
        cellar::restorer::Progress::bytes_done(self.0, bytes);
    }
}

pub fn run(g: &GlobalArgs, a: CheckArgs) -> Result<i32> {
    let read_data = match (a.read_data_subset, a.read_data) {
        (Some(s), _) => s,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let repo = open_with_hint(g)?;
    // A reader without write access cannot take a lock; it may read anyway
    // (format-spec/05 §5.8): a concurrent prune can then only make it fail.
    let _lock = match cellar::lock::lock(&repo, false) {
        Ok(l) => Some(l),
        Err(e @ cellar::Error::Backend { .. }) => {
            eprintln!("cellar: warning: checking without a lock: {e}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let bar = Bar::new(
        !g.quiet && !g.json && read_data != ReadData::None,
        g.quiet,
        "checked",
    );
    let result = check::check(&repo, &read_data, &CheckProgress(&bar));
    drop(bar);
    let (report, _) = result?;
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report, g.quiet)?;
    }
    if report.ok {
        Ok(exit::OK)
    } else {
        eprintln!(
            "cellar: error: the repository has {} problem(s){}",
            report.errors.len(),
            if report.damaged_snapshots.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} snapshot(s) reach damaged data",
                    report.damaged_snapshots.len()
                )
            }
        );
        Ok(exit::ERROR)
    }
}

fn print_report(r: &Report, quiet: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let s = &r.stats;
    if !quiet {
        writeln!(
            out,
            "checked {} snapshot(s), {} tree(s), {} index segment(s), {} pack(s)",
            s.snapshots, s.trees, s.index_segments, s.packs
        )?;
        if s.packs_read > 0 {
            writeln!(
                out,
                "read {} pack(s), {}, {} blob(s) verified in {:.2}s ({}/s)",
                s.packs_read,
                human_bytes(s.bytes_read),
                s.blobs_verified,
                s.duration_s,
                human_bytes((s.bytes_read as f64 / s.duration_s.max(0.001)) as u64)
            )?;
        }
        for w in &r.warnings {
            writeln!(out, "warning: {w}")?;
        }
    }
    for e in &r.errors {
        writeln!(out, "error: {e}")?;
    }
    for d in &r.damaged_snapshots {
        writeln!(out)?;
        writeln!(
            out,
            "snapshot {} ({}, host {}, {}) reaches damaged data:",
            &d.id[..8],
            local_time(&d.time),
            d.hostname,
            d.paths.join(" ")
        )?;
        for e in &d.damaged {
            let what = match (e.kind, e.lost) {
                ("dir", true) => "directory lost",
                (_, true) => "file lost",
                (_, false) => "at risk, still restorable",
            };
            writeln!(out, "  {}  ({what}: {})", e.path, e.problem)?;
        }
    }
    if r.ok {
        if !quiet {
            writeln!(out, "no errors found")?;
        }
    } else {
        writeln!(out)?;
        writeln!(
            out,
            "To repair: `cellar repair index` (rebuilds the index from the packs), then \
             `cellar repair snapshots` (new snapshots without what is lost; add --forget to \
             remove the originals)."
        )?;
    }
    Ok(())
}
