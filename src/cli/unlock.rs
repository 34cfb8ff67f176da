//! `cellar unlock`: list the repository's locks and remove stale ones.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::common::open_repo;
use super::output::{local_time, table};
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, live ones too (only when you know no cellar runs)
    #[arg(long)]
    pub remove_all: bool,
}

pub fn run(g: &GlobalArgs, a: UnlockArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let locks = cellar::lock::list(&repo)?;
    let mut removed = Vec::new();
    let mut rows = Vec::new();
    let mut arr = Vec::new();
    for l in &locks {
        let remove = a.remove_all || l.stale.is_some();
        if remove {
            cellar::lock::remove(&repo, &l.name)?;
            removed.push(l.name.clone());
        }
        let (kind, host, pid, user, time) = match &l.lock {
            Some(k) => (
                if k.exclusive { "exclusive" } else { "shared" },
                k.hostname.clone(),
                k.pid.to_string(),
                k.username.clone(),
                k.time.clone(),
            ),
            None => (
                "?",
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        let state = match &l.stale {
            Some(s) => format!("stale: {s}"),
            None => "live".to_string(),
        };
        arr.push(
            json!({"id": l.name, "kind": kind, "hostname": host, "pid": pid,
                        "username": user, "time": time, "state": state, "removed": remove}),
        );
        rows.push(vec![
            l.name[..8].to_string(),
            kind.to_string(),
            host,
            pid,
            user,
            local_time(&time),
            state,
            if remove { "removed" } else { "kept" }.to_string(),
        ]);
    }
    if g.json {
        println!(
            "{}",
            serde_json::to_string(&json!({"locks": arr, "removed": removed.len()}))?
        );
    } else if !g.quiet {
        let mut out = std::io::stdout().lock();
        table(
            &mut out,
            &[
                "ID", "Kind", "Host", "PID", "User", "Time", "State", "Action",
            ],
            &rows,
        )?;
        writeln!(out, "removed {} lock(s)", removed.len())?;
    }
    Ok(exit::OK)
}
