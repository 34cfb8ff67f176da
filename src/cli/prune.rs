//! `cellar prune`: reclaim the space of data no snapshot needs (two-phase:
//! mark now, delete in a later run after the grace period).

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, anyhow};
use cellar::prune::{MaxUnused, PruneOptions, PruneReport};
use clap::Args;

use super::common::open_repo;
use super::output::human_bytes;
use super::{GlobalArgs, exit};

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub opts: PruneOpts,
    /// Show what would be deleted, marked and repacked; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// The options `forget --prune` shares.
#[derive(Args, Debug, Clone)]
pub struct PruneOpts {
    /// Repack packs whose unused share is above this (5%), or repack until at
    /// most this many unused bytes remain (100M)
    #[arg(long, default_value = "5%", value_name = "PERCENT|SIZE")]
    pub max_unused: String,
    /// Delete packs only once they have been marked this long (e.g. 30m, 1h, 0s)
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub grace: String,
    /// Wait up to this long for another prune's lock (e.g. 10m); default: fail at once
    #[arg(long, value_name = "DURATION")]
    pub retry_lock: Option<String>,
}

/// "90s", "30m", "1h", "2d", "0" (seconds when no unit).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| t.split_at(i))
        .unwrap_or((t, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("duration {s:?}: expected e.g. 0s, 90s, 30m, 1h or 2d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(anyhow!(
                "duration {s:?}: expected e.g. 0s, 90s, 30m, 1h or 2d"
            ));
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

pub fn options(a: &PruneOpts, dry_run: bool) -> Result<PruneOptions> {
    Ok(PruneOptions {
        max_unused: MaxUnused::parse(&a.max_unused)?,
        grace: parse_duration(&a.grace).map_err(|e| anyhow!("--grace: {e}"))?,
        dry_run,
    })
}

/// Takes the exclusive lock and prunes an open repository.
pub fn prune_repo(
    g: &GlobalArgs,
    repo: &cellar::Repository,
    a: &PruneOpts,
    dry_run: bool,
) -> Result<PruneReport> {
    let opts = options(a, dry_run)?;
    let retry = match &a.retry_lock {
        Some(d) => parse_duration(d).map_err(|e| anyhow!("--retry-lock: {e}"))?,
        None => Duration::ZERO,
    };
    let guard = cellar::lock::lock_retry(repo, true, retry)?;
    let rep = cellar::prune::prune(repo, &opts, &guard.name())?;
    drop(guard);
    if !g.json {
        print_report(g, &rep, &a.grace)?;
    }
    Ok(rep)
}

fn print_report(g: &GlobalArgs, r: &PruneReport, grace: &str) -> Result<()> {
    if g.quiet {
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    let would = if r.dry_run { " (dry run)" } else { "" };
    writeln!(
        o,
        "{} snapshot(s); {} pack(s), {}; used {} in {} blob(s), unused {}",
        r.snapshots,
        r.packs,
        human_bytes(r.pack_bytes),
        human_bytes(r.used_bytes),
        r.blobs_used,
        human_bytes(r.unused_bytes)
    )?;
    writeln!(
        o,
        "deleted{would}: {} pack(s), {} freed",
        r.deleted_packs.len(),
        human_bytes(r.deleted_bytes)
    )?;
    if !r.repacked_packs.is_empty() {
        writeln!(
            o,
            "repacked{would}: {} pack(s), {} of used blobs copied",
            r.repacked_packs.len(),
            human_bytes(r.repacked_bytes)
        )?;
    }
    writeln!(
        o,
        "marked for deletion{would}: {} pack(s), {} (a prune after the grace period of {grace} deletes them)",
        r.marked_packs.len(),
        human_bytes(r.marked_bytes)
    )?;
    if r.waiting_packs > 0 {
        writeln!(
            o,
            "still marked: {} pack(s), {}",
            r.waiting_packs,
            human_bytes(r.waiting_bytes)
        )?;
    }
    if !r.unmarked_packs.is_empty() {
        writeln!(
            o,
            "unmarked (needed again): {} pack(s)",
            r.unmarked_packs.len()
        )?;
    }
    for d in &r.deferred {
        writeln!(o, "{d}")?;
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: PruneArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let rep = prune_repo(g, &repo, &a.opts, a.dry_run)?;
    if g.json {
        println!("{}", serde_json::to_string(&rep)?);
    }
    Ok(exit::OK)
}
