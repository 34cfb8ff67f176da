//! `cellar run PROFILE`: the nightly job of a configuration profile (hooks,
//! backup, forget, prune, check slice) with one summary, text or JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use cellar::profile::{Config, Parsed, Profile, Subset};
use cellar::repository::Repository;
use cellar::runner::{self, Outcome, RunContext, StepReport};
use clap::Args;

use super::common::{notifier, open_repo};
use super::output::human_bytes;
use super::{GlobalArgs, exit};

/// Where the configuration file comes from (shared with `cellar config`).
#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file (default: $XDG_CONFIG_HOME/cellar/cellar.toml or
    /// ~/.config/cellar/cellar.toml, then /etc/cellar/cellar.toml)
    #[arg(long, env = "CELLAR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    pub fn load(&self) -> Result<Config> {
        Ok(Config::find_and_load(self.config.as_deref())?)
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The profile to run ([profiles.NAME] in the configuration file)
    pub profile: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Check this slice instead of the profile's (N/M, P% or auto/M)
    #[arg(long, value_name = "N/M|P%|auto/M")]
    pub read_data_subset: Option<String>,
    /// Skip the forget and prune steps
    #[arg(long)]
    pub no_forget: bool,
    /// Skip the check step
    #[arg(long)]
    pub no_check: bool,
    /// Add a tag to the snapshot (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

/// The profile with the command line's repository, password source and cache
/// directory (options or CELLAR_* variables) in place of its own.
pub fn effective(g: &GlobalArgs, p: &Profile) -> Profile {
    let mut p = p.clone();
    if let Some(r) = g.repo.clone().filter(|r| !r.is_empty()) {
        p.repository = Some(r);
    }
    if g.password_file.is_some() || g.password_command.is_some() {
        p.password_file = g.password_file.clone();
        p.password_command = g.password_command.clone();
        p.password = None;
    }
    if let Some(c) = &g.cache_dir {
        p.cache_dir = Some(c.clone());
    }
    p
}

fn open(g: &GlobalArgs, p: &Profile) -> Result<Repository> {
    let mut g2 = g.clone();
    g2.repo = p.repository.clone();
    g2.password_file = p.password_file.clone();
    g2.password_command = p.password_command.clone();
    g2.cache_dir = p.cache_dir.clone();
    let Some(pw) = &p.password else {
        return open_repo(&g2);
    };
    let loc = p.repository.clone().unwrap_or_default();
    let backend = cellar::backend::open(&loc)?;
    if let Err(e) = backend.read(cellar::backend::FileType::Config, "config") {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Err(cellar::Error::NoRepository(loc).into());
        }
    }
    Ok(Repository::open(
        backend,
        pw.as_bytes(),
        p.cache_dir.as_deref(),
        notifier(g),
    )?)
}

/// Warnings only: a nightly job has no terminal to draw a progress bar on.
struct Warnings;

impl cellar::archiver::Progress for Warnings {
    fn warn(&self, msg: &str) {
        eprintln!("cellar: warning: {msg}");
    }
}

fn step_line(s: &StepReport) -> String {
    let outcome = match s.outcome {
        Outcome::Ok => "ok",
        Outcome::Partial => "partial",
        Outcome::Failed => "FAILED",
        Outcome::Skipped => "skipped",
    };
    let mut what = String::new();
    if let Some(c) = &s.command {
        what = c.clone();
    }
    let d = &s.details;
    match s.step {
        "backup" if s.outcome != Outcome::Failed && s.outcome != Outcome::Skipped => {
            let sum = &d["summary"];
            what = format!(
                "snapshot {}: {} files, {} added ({} stored)",
                d["snapshot_id"].as_str().map(|x| &x[..8]).unwrap_or("-"),
                sum["total_files"],
                human_bytes(sum["data_added"].as_u64().unwrap_or(0)),
                human_bytes(sum["data_added_packed"].as_u64().unwrap_or(0))
            );
        }
        "forget" if s.outcome == Outcome::Ok => {
            what = format!(
                "kept {}, removed {}",
                d["kept"],
                d["removed"].as_array().map(Vec::len).unwrap_or(0)
            );
        }
        "prune" if s.outcome == Outcome::Ok => {
            what = format!(
                "deleted {} pack(s) ({}), marked {}",
                d["deleted_packs"],
                human_bytes(d["deleted_bytes"].as_u64().unwrap_or(0)),
                d["marked_packs"]
            );
        }
        "check" if s.outcome == Outcome::Ok => {
            what = format!(
                "read-data {}: {} pack(s), {} read",
                d["read_data"].as_str().unwrap_or("none"),
                d["packs_read"],
                human_bytes(d["bytes_read"].as_u64().unwrap_or(0))
            );
        }
        _ => {}
    }
    if let Some(e) = &s.error {
        if what.is_empty() {
            what = e.clone();
        } else {
            what = format!("{what}: {e}");
        }
    }
    format!(
        "{:<13} {:<8} {:>7.2}s  {what}",
        s.step, outcome, s.duration_s
    )
    .trim_end()
    .to_string()
}

pub fn run(g: &GlobalArgs, a: RunArgs) -> Result<i32> {
    super::tune_malloc_for_backup();
    let cfg = a.config.load()?;
    let repo_given = g.repo.as_deref().is_some_and(|r| !r.is_empty());
    cfg.validate(&a.profile, repo_given)?;
    let mut p = effective(g, cfg.profile(&a.profile)?);
    if let Some(s) = &a.read_data_subset {
        let value: Subset = cellar::profile::ConfigValue::parse(s).context("--read-data-subset")?;
        p.check
            .get_or_insert_with(Default::default)
            .read_data_subset = Some(Parsed {
            text: s.clone(),
            value,
        });
    }
    if a.no_forget {
        p.forget = None;
    }
    if a.no_check {
        p.check = None;
    }
    p.backup.tag.extend(a.tags.iter().cloned());
    let text = !g.json && !g.quiet;
    let mut on_step = |s: &StepReport| {
        if text {
            let _ = writeln!(std::io::stdout().lock(), "{}", step_line(s));
        }
    };
    let warn_quiet = g.quiet;
    let ctx = RunContext {
        name: &a.profile,
        today: jiff::Zoned::now().date(),
        quiet: warn_quiet,
        progress: &Warnings,
        warn: std::sync::Arc::new(|m: &str| eprintln!("cellar: {m}")),
        on_step: &mut on_step,
    };
    let pc = p.clone();
    let mut opener = || -> cellar::Result<Repository> {
        open(g, &pc).map_err(|e| match e.downcast::<cellar::Error>() {
            Ok(ce) => ce,
            Err(other) => {
                let msg: Vec<String> = other.chain().map(|c| c.to_string()).collect();
                cellar::Error::Other(msg.join(": "))
            }
        })
    };
    let mut report = runner::run(&p, &mut opener, ctx);
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    if let Some(e) = report.failure.take() {
        let code = super::exit_code(&anyhow::Error::from(e));
        eprintln!(
            "cellar: error: profile {}: {}",
            a.profile,
            report.error.as_deref().unwrap_or("failed")
        );
        return Ok(code);
    }
    if report.partial {
        eprintln!(
            "cellar: warning: profile {}: some source files could not be read; the snapshot holds everything else",
            a.profile
        );
        return Ok(exit::PARTIAL);
    }
    if text {
        println!("profile {}: ok", a.profile);
    }
    Ok(exit::OK)
}
