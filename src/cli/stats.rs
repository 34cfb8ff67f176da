//! `cellar stats`: sizes before and after deduplication and compression, what
//! each snapshot added, and what prune would reclaim.

use std::io::Write;

use anyhow::Result;
use clap::Args;

use super::common::open_repo;
use super::output::{human_bytes, local_time, table};
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Only this snapshot (id prefix or "latest"); default: the whole repository
    pub snapshot: Option<String>,
}

pub fn run(g: &GlobalArgs, a: StatsArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let only = match &a.snapshot {
        Some(s) => Some(repo.find_snapshot(s)?.0),
        None => None,
    };
    let s = cellar::stats::stats(&repo, only)?;
    if g.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(exit::OK);
    }
    let mut o = std::io::stdout().lock();
    writeln!(o, "snapshots:            {}", s.snapshots)?;
    writeln!(o, "restore size:         {}", human_bytes(s.restore_size))?;
    writeln!(
        o,
        "unique data:          {} in {} blobs",
        human_bytes(s.unique_raw_size),
        s.blobs
    )?;
    writeln!(
        o,
        "stored (compressed):  {}",
        human_bytes(s.unique_stored_size)
    )?;
    writeln!(o, "compression ratio:    {:.2}x", s.compression_ratio)?;
    writeln!(o, "deduplication ratio:  {:.2}x", s.dedup_ratio)?;
    writeln!(
        o,
        "packs:                {} ({})",
        s.packs,
        human_bytes(s.pack_bytes)
    )?;
    writeln!(
        o,
        "prune would reclaim:  {}",
        human_bytes(s.reclaimable_bytes)
    )?;
    if !g.quiet && !s.per_snapshot.is_empty() {
        writeln!(o)?;
        let rows: Vec<Vec<String>> = s
            .per_snapshot
            .iter()
            .map(|p| {
                vec![
                    p.id[..8].to_string(),
                    local_time(&p.time),
                    p.hostname.clone(),
                    human_bytes(p.restore_size),
                    human_bytes(p.new_bytes_stored),
                ]
            })
            .collect();
        table(
            &mut o,
            &["ID", "Time", "Host", "Size", "New bytes stored"],
            &rows,
        )?;
    }
    Ok(exit::OK)
}
