//! `cellar forget`: remove snapshots by id or by a retention policy, optionally
//! followed by a prune.

use std::io::Write;

use anyhow::{Result, bail};
use cellar::forget::{Candidate, GroupBy, Policy, apply, group, parse_span};
use cellar::id::SnapshotId;
use clap::Args;
use serde_json::json;

use super::common::open_repo;
use super::output::{local_time, table};
use super::prune::{PruneOpts, prune_repo};
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove (id prefixes); with none, the --keep policy decides
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken within DURATION (e.g. 7d, 2w, 1y6m) of the group's newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Within DURATION of the newest, keep one snapshot per hour
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<String>,
    /// Within DURATION of the newest, keep one snapshot per day
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<String>,
    /// Within DURATION of the newest, keep one snapshot per week
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<String>,
    /// Within DURATION of the newest, keep one snapshot per month
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<String>,
    /// Within DURATION of the newest, keep one snapshot per year
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<String>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
    /// Apply the policy separately to each group of snapshots sharing these
    #[arg(long, default_value = "host,paths", value_name = "host,paths,tags")]
    pub group_by: String,
    /// Only consider snapshots of this host
    #[arg(long)]
    pub host: Option<String>,
    /// Show what would be kept and removed, and why; remove nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Run prune afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_opts: PruneOpts,
}

fn span(opt: &Option<String>) -> Result<Option<jiff::Span>> {
    Ok(opt.as_deref().map(parse_span).transpose()?)
}

fn policy(a: &ForgetArgs) -> Result<Policy> {
    Ok(Policy {
        last: a.keep_last,
        periods: [
            a.keep_hourly,
            a.keep_daily,
            a.keep_weekly,
            a.keep_monthly,
            a.keep_yearly,
        ],
        within: span(&a.keep_within)?,
        within_periods: [
            span(&a.keep_within_hourly)?,
            span(&a.keep_within_daily)?,
            span(&a.keep_within_weekly)?,
            span(&a.keep_within_monthly)?,
            span(&a.keep_within_yearly)?,
        ],
        tags: a.keep_tag.clone(),
    })
}

pub fn run(g: &GlobalArgs, a: ForgetArgs) -> Result<i32> {
    let pol = policy(&a)?;
    if pol.is_empty() && a.snapshots.is_empty() {
        bail!("nothing to forget: give snapshot ids or at least one --keep-* option");
    }
    if !pol.is_empty() && !a.snapshots.is_empty() {
        bail!("give either snapshot ids or --keep-* options, not both");
    }
    let by = GroupBy::parse(&a.group_by)?;
    let repo = open_repo(g)?;
    let lock = if a.dry_run {
        None
    } else {
        Some(cellar::lock::lock(&repo, false)?)
    };
    let mut snaps = repo.snapshots()?;
    if let Some(h) = &a.host {
        snaps.retain(|(_, s)| &s.hostname == h);
    }
    // (group, id, time, keep, reasons)
    let mut rows: Vec<(String, SnapshotId, String, bool, Vec<String>)> = Vec::new();
    if !a.snapshots.is_empty() {
        let mut remove = Vec::new();
        for sel in &a.snapshots {
            remove.push(repo.find_snapshot(sel)?.0);
        }
        for (id, s) in &snaps {
            if remove.contains(id) {
                rows.push((String::new(), *id, s.time.clone(), false, vec![]));
            }
        }
    } else {
        let keys: Vec<String> = snaps
            .iter()
            .map(|(_, s)| by.key(&s.hostname, &s.paths, &s.tags))
            .collect();
        for (key, idx) in group(keys.iter().map(String::as_str)) {
            let cands = idx
                .iter()
                .map(|&i| Candidate::parse(&snaps[i].1.time, &snaps[i].1.tags))
                .collect::<cellar::Result<Vec<_>>>()?;
            let decisions = apply(&pol, &cands);
            for (&i, d) in idx.iter().zip(decisions) {
                let (id, s) = &snaps[i];
                rows.push((key.clone(), *id, s.time.clone(), d.keep, d.reasons));
            }
        }
    }
    let mut removed = 0usize;
    if !a.dry_run {
        for (_, id, _, keep, _) in &rows {
            if !keep {
                repo.remove_snapshot(*id)?;
                removed += 1;
            }
        }
        repo.backend()
            .flush()
            .map_err(|e| anyhow::anyhow!("{}: {e}", repo.backend().location()))?;
        if removed > 0 {
            // The catalog is a cache: a failure here is not the forget's.
            let live = repo.snapshots()?.into_iter().map(|(id, _)| id).collect();
            if let Err(e) =
                cellar::catalog::Catalog::open(&repo).and_then(|c| c.retain_snapshots(&live))
            {
                repo.notify(&format!("warning: cleaning the catalog: {e}"));
            }
        }
    }
    drop(lock);
    let run_prune = || -> Result<Option<cellar::prune::PruneReport>> {
        if !a.prune || a.dry_run {
            return Ok(None);
        }
        Ok(Some(prune_repo(g, &repo, &a.prune_opts, false)?))
    };
    if g.json {
        let prune_report = run_prune()?;
        let mut groups: Vec<serde_json::Value> = Vec::new();
        let mut cur: Option<String> = None;
        for (key, id, time, keep, reasons) in &rows {
            if cur.as_ref() != Some(key) {
                groups.push(json!({"group": key, "keep": [], "remove": []}));
                cur = Some(key.clone());
            }
            let gobj = groups.last_mut().unwrap();
            let entry = json!({"id": id.to_hex(), "short_id": id.short(), "time": time, "reasons": reasons});
            gobj[if *keep { "keep" } else { "remove" }]
                .as_array_mut()
                .unwrap()
                .push(entry);
        }
        println!(
            "{}",
            serde_json::to_string(&json!({
                "dry_run": a.dry_run,
                "groups": groups,
                "removed": removed,
                "prune": prune_report,
            }))?
        );
        return Ok(exit::OK);
    }
    if !g.quiet {
        let mut out = std::io::stdout().lock();
        let mut cur: Option<&String> = None;
        let mut table_rows = Vec::new();
        let flush =
            |out: &mut dyn Write, key: Option<&String>, t: &mut Vec<Vec<String>>| -> Result<()> {
                if t.is_empty() {
                    return Ok(());
                }
                if let Some(k) = key.filter(|k| !k.is_empty()) {
                    writeln!(out, "group: {k}")?;
                }
                table(out, &["ID", "Time", "Action", "Kept by"], t)?;
                writeln!(out)?;
                t.clear();
                Ok(())
            };
        for (key, id, time, keep, reasons) in &rows {
            if cur != Some(key) {
                flush(&mut out, cur, &mut table_rows)?;
                cur = Some(key);
            }
            table_rows.push(vec![
                id.short(),
                local_time(time),
                if *keep { "keep" } else { "remove" }.to_string(),
                reasons.join(", "),
            ]);
        }
        flush(&mut out, cur, &mut table_rows)?;
        let n_remove = rows.iter().filter(|r| !r.3).count();
        if a.dry_run {
            writeln!(out, "would remove {n_remove} snapshot(s) (dry run)")?;
        } else {
            writeln!(out, "removed {removed} snapshot(s)")?;
        }
    }
    run_prune()?;
    Ok(exit::OK)
}
