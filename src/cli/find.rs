//! `cellar find PATTERN`: paths matching a glob in every (selected) snapshot,
//! answered from the catalog with SQL, grouped by path and by version, with the
//! snapshots that hold each version.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use anyhow::Result;
use cellar::catalog::{Catalog, Entry, Query};
use cellar::id::{BlobId, SnapshotId};
use cellar::repofile::Snapshot;
use cellar::tree::Kind;
use clap::Args;
use serde_json::json;

use super::common::{open_repo, parse_time};
use super::ls::{entry_json, mtime_string};
use super::output::{human_bytes, local_time};
use super::snapshots::FilterArgs;
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Glob (case-sensitive; `*` also matches `/`): without a `/` it matches
    /// names, with one whole paths (e.g. '/data/*/alice/*.docx')
    pub pattern: String,
    /// PATTERN is one exact path: show its history (same as `cellar history`)
    #[arg(long)]
    pub exact: bool,
    /// Only entries modified at or after this time (RFC 3339 or local "YYYY-MM-DD[ HH:MM:SS]")
    #[arg(long, value_name = "TIME")]
    pub newer: Option<String>,
    /// Only entries modified before this time
    #[arg(long, value_name = "TIME")]
    pub older: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// One distinct version of a path and the snapshots (oldest first) holding it.
pub struct Version {
    pub entry: Entry,
    pub snapshots: Vec<SnapshotId>,
}

type VersionKey = (u8, Option<[u8; 32]>, Vec<u8>, u64, (i64, u32));

fn key(e: &Entry) -> VersionKey {
    (
        e.kind as u8,
        e.content,
        e.link_target.clone(),
        e.size,
        e.mtime,
    )
}

/// Groups entries, each with the snapshots holding it, by version; versions
/// ordered by their first snapshot, `order` giving each snapshot's position in
/// time. Among equal versions the entry seen first is shown.
pub fn versions(
    groups: impl IntoIterator<Item = (Entry, Vec<SnapshotId>)>,
    order: &HashMap<SnapshotId, usize>,
) -> Vec<Version> {
    let mut by_key: HashMap<VersionKey, Version> = HashMap::new();
    for (e, sids) in groups {
        by_key
            .entry(key(&e))
            .or_insert_with(|| Version {
                entry: e,
                snapshots: Vec::new(),
            })
            .snapshots
            .extend(sids);
    }
    let pos = |s: &SnapshotId| order.get(s).copied().unwrap_or(usize::MAX);
    let mut out: Vec<Version> = by_key.into_values().collect();
    for v in &mut out {
        v.snapshots.sort_by_key(pos);
        v.snapshots.dedup();
    }
    out.retain(|v| !v.snapshots.is_empty());
    out.sort_by_key(|v| pos(&v.snapshots[0]));
    out
}

/// Text and JSON output of the versions of one path.
pub fn print_versions(
    out: &mut dyn Write,
    json: bool,
    path: &[u8],
    versions: &[Version],
    snaps: &HashMap<SnapshotId, &Snapshot>,
) -> std::io::Result<()> {
    let when = |s: &SnapshotId| {
        snaps
            .get(s)
            .map(|x| local_time(&x.time))
            .unwrap_or_default()
    };
    if json {
        for v in versions {
            let mut o = entry_json(path, &v.entry);
            o["snapshots"] = json!(v.snapshots.iter().map(|s| s.to_hex()).collect::<Vec<_>>());
            o["first_snapshot_time"] = json!(snaps.get(&v.snapshots[0]).map(|x| &x.time));
            o["last_snapshot_time"] =
                json!(snaps.get(v.snapshots.last().unwrap()).map(|x| &x.time));
            writeln!(out, "{o}")?;
        }
        return Ok(());
    }
    writeln!(out, "{}", String::from_utf8_lossy(path))?;
    for v in versions {
        let e = &v.entry;
        let what = match e.kind {
            Kind::File => human_bytes(e.size),
            Kind::Symlink => format!("-> {}", String::from_utf8_lossy(&e.link_target)),
            k => k.name().to_string(),
        };
        let first = v.snapshots[0];
        let last = *v.snapshots.last().unwrap();
        let span = if first == last {
            format!("{} ({})", when(&first), first.short())
        } else {
            format!(
                "{} ({}) .. {} ({})",
                when(&first),
                first.short(),
                when(&last),
                last.short()
            )
        };
        writeln!(
            out,
            "  {what:>10}  mtime {}  in {:>3} snapshot(s)  {span}",
            mtime_string(e.mtime),
            v.snapshots.len()
        )?;
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: FindArgs) -> Result<i32> {
    if a.exact {
        return super::history::run(
            g,
            super::history::HistoryArgs {
                path: a.pattern,
                filter: a.filter,
            },
        );
    }
    let newer = a
        .newer
        .as_deref()
        .map(parse_time)
        .transpose()?
        .map(|t| t.timestamp().as_second());
    let older = a
        .older
        .as_deref()
        .map(parse_time)
        .transpose()?
        .map(|t| t.timestamp().as_second());
    let repo = open_repo(g)?;
    let snaps = a.filter.filter().apply(&repo)?;
    let cat = Catalog::open(&repo)?;
    // Snapshots forgotten since (here or on another machine) leave the catalog.
    let live = repo.snapshots()?.into_iter().map(|(id, _)| id).collect();
    cat.retain_snapshots(&live)?;
    let roots: Vec<(SnapshotId, BlobId)> = snaps
        .iter()
        .filter_map(|(id, s)| BlobId::from_hex(&s.tree).ok().map(|t| (*id, t)))
        .collect();
    let present = cat.ensure(&repo, &roots)?;
    let groups = cat.find(
        &Query {
            pattern: a.pattern.clone(),
            newer,
            older,
        },
        &present,
    )?;
    let order: HashMap<SnapshotId, usize> = snaps
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let by_id: HashMap<SnapshotId, &Snapshot> = snaps.iter().map(|(id, s)| (*id, s)).collect();
    let mut by_path: BTreeMap<Vec<u8>, Vec<(Entry, Vec<SnapshotId>)>> = BTreeMap::new();
    for grp in groups {
        by_path
            .entry(grp.path)
            .or_default()
            .push((grp.entry, grp.snapshots));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let paths = by_path.len();
    for (path, groups) in by_path {
        let vs = versions(groups, &order);
        print_versions(&mut out, g.json, &path, &vs, &by_id)?;
    }
    if !g.json && !g.quiet {
        writeln!(
            out,
            "{paths} path(s) in {} snapshot(s) match {:?}",
            present.len(),
            a.pattern
        )?;
    }
    out.flush()?;
    Ok(exit::OK)
}
