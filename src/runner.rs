//! `cellar run PROFILE`: one nightly job as a sequence of steps, calling the
//! engine directly. Order: open the repository, `before` hooks, backup,
//! `after-backup` hooks, forget, prune, check slice, `after` hooks; on a
//! failure the remaining steps are skipped, `on-failure` hooks run with the
//! error, and `finally` hooks always run last. The repository is opened first
//! so a wrong password never stops a service it cannot back up.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::archiver::{self, BackupOptions, ExcludeOptions, Progress};
use crate::error::{Error, Result};
use crate::profile::{Hook, Profile, redact};
use crate::repository::Repository;

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Backup saved, but some source files could not be read.
    Partial,
    Failed,
    Skipped,
}

#[derive(Serialize, Debug)]
pub struct StepReport {
    /// open, before, backup, after-backup, forget, prune, check, after, on-failure, finally.
    pub step: &'static str,
    pub outcome: Outcome,
    /// The hook's command (passwords hidden).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Step-specific numbers (snapshot id, removed snapshots, packs read...).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

#[derive(Serialize, Debug)]
pub struct RunReport {
    pub profile: String,
    /// Every step succeeded (a partial backup is not success).
    pub ok: bool,
    pub snapshot_id: Option<String>,
    /// The first failure.
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
    /// The first failure, typed (for the exit code).
    #[serde(skip)]
    pub failure: Option<Error>,
    #[serde(skip)]
    pub partial: bool,
}

/// What the caller supplies besides the profile.
pub struct RunContext<'a> {
    pub name: &'a str,
    /// The date that picks an `auto/M` check slice.
    pub today: jiff::civil::Date,
    pub quiet: bool,
    pub progress: &'a dyn Progress,
    /// Warnings and a dump command's error output.
    pub warn: Arc<dyn Fn(&str) + Send + Sync>,
    /// Called as each step ends (text output).
    pub on_step: &'a mut dyn FnMut(&StepReport),
}

/// A step's outcome and its details for the summary.
type StepResult = Result<(Outcome, Map<String, Value>)>;

struct Runner<'a, 'b> {
    ctx: &'b mut RunContext<'a>,
    profile: &'b Profile,
    report: RunReport,
}

impl Runner<'_, '_> {
    fn failed(&self) -> bool {
        self.report.failure.is_some()
    }

    fn record(
        &mut self,
        step: &'static str,
        command: Option<&str>,
        started: Instant,
        r: StepResult,
    ) {
        let (outcome, details, error) = match r {
            Ok((o, d)) => (o, d, None),
            Err(e) => {
                let msg = e.to_string();
                if self.report.failure.is_none() {
                    self.report.error = Some(msg.clone());
                    self.report.failure = Some(e);
                }
                (Outcome::Failed, Map::new(), Some(msg))
            }
        };
        let s = StepReport {
            step,
            outcome,
            command: command.map(redact),
            duration_s: started.elapsed().as_secs_f64(),
            error,
            details,
        };
        (self.ctx.on_step)(&s);
        self.report.steps.push(s);
    }

    fn skip(&mut self, step: &'static str) {
        let s = StepReport {
            step,
            outcome: Outcome::Skipped,
            command: None,
            duration_s: 0.0,
            error: None,
            details: Map::new(),
        };
        (self.ctx.on_step)(&s);
        self.report.steps.push(s);
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CELLAR_PROFILE", self.ctx.name.to_string()),
            (
                "CELLAR_STATUS",
                if self.failed() { "failed" } else { "ok" }.to_string(),
            ),
        ];
        if let Some(id) = &self.report.snapshot_id {
            env.push(("CELLAR_SNAPSHOT_ID", id.clone()));
        }
        if let Some(e) = &self.report.error {
            env.push(("CELLAR_ERROR", e.clone()));
        }
        env
    }

    /// Runs hooks in order, stopping at the first that fails.
    /// `always`: also after an earlier failure, and not stopped by Ctrl-C.
    fn hooks(&mut self, step: &'static str, hooks: &[Hook], always: bool) {
        for h in hooks {
            if self.failed() && !always {
                return;
            }
            let started = Instant::now();
            let timeout = self.profile.hooks.timeout_of(h);
            let env = self.env();
            let r = crate::hooks::run_hook(step, &h.command, timeout, &env, !always)
                .map(|()| (Outcome::Ok, Map::new()));
            // A failed hook stops the ones after it, except cleanup hooks
            // (`always`), which each get their chance.
            self.record(step, Some(&h.command), started, r);
        }
    }

    fn backup(&mut self, repo: &Repository) -> StepResult {
        let b = &self.profile.backup;
        let mut patterns = b.exclude.clone();
        for f in &b.exclude_file {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            patterns.extend(
                text.lines()
                    .map(str::trim_end)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        let exclude = ExcludeOptions {
            patterns,
            ipatterns: b.iexclude.clone(),
            if_present: b.exclude_if_present.clone(),
            caches: b.exclude_caches,
            larger_than: b.exclude_larger_than.as_ref().map(|s| s.value.0),
            one_file_system: b.one_file_system,
        };
        let _lock = crate::lock::lock(repo, false)?;
        let mut streams = Vec::new();
        for (name, cmd) in &b.streams {
            streams.push(crate::hooks::command_stream(
                name,
                cmd,
                self.ctx.quiet,
                self.ctx.warn.clone(),
            )?);
        }
        let opts = BackupOptions {
            paths: b.paths.clone(),
            streams,
            tags: b.tag.clone(),
            host: b.host.clone(),
            force: b.force,
            exclude,
            ..Default::default()
        };
        let res = archiver::backup(repo, opts, self.ctx.progress)?;
        let id = res.snapshot.map(|s| s.to_hex());
        self.report.snapshot_id = id.clone();
        let mut d = Map::new();
        d.insert("snapshot_id".into(), json!(id));
        d.insert("parent".into(), json!(res.parent.map(|p| p.to_hex())));
        d.insert(
            "summary".into(),
            serde_json::to_value(&res.summary).map_err(|e| Error::Other(e.to_string()))?,
        );
        d.insert("unreadable".into(), json!(res.unreadable));
        if res.unreadable.is_empty() {
            Ok((Outcome::Ok, d))
        } else {
            self.report.partial = true;
            Ok((Outcome::Partial, d))
        }
    }

    fn forget(&mut self, repo: &Repository) -> StepResult {
        use crate::forget::{Candidate, apply, group};
        let f = self.profile.forget.as_ref().expect("forget configured");
        let pol = f.policy();
        let by = f.group_by();
        let host = self
            .profile
            .backup
            .host
            .clone()
            .unwrap_or_else(crate::repofile::hostname);
        let lock = crate::lock::lock(repo, false)?;
        // Only this host's snapshots: another machine's retention is its own.
        let snaps: Vec<_> = repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| s.hostname == host)
            .collect();
        let keys: Vec<String> = snaps
            .iter()
            .map(|(_, s)| by.key(&s.hostname, &s.paths, &s.tags))
            .collect();
        let mut remove = Vec::new();
        let mut kept = 0u64;
        for (_, idx) in group(keys.iter().map(String::as_str)) {
            let cands = idx
                .iter()
                .map(|&i| Candidate::parse(&snaps[i].1.time, &snaps[i].1.tags))
                .collect::<Result<Vec<_>>>()?;
            for (&i, d) in idx.iter().zip(apply(&pol, &cands)) {
                if d.keep {
                    kept += 1;
                } else {
                    remove.push(snaps[i].0);
                }
            }
        }
        for id in &remove {
            repo.remove_snapshot(*id)?;
        }
        repo.backend().flush().map_err(repo.berr())?;
        drop(lock);
        let mut d = Map::new();
        d.insert("kept".into(), json!(kept));
        d.insert(
            "removed".into(),
            json!(remove.iter().map(|i| i.to_hex()).collect::<Vec<_>>()),
        );
        Ok((Outcome::Ok, d))
    }

    fn prune(&mut self, repo: &Repository) -> StepResult {
        let f = self.profile.forget.as_ref().expect("forget configured");
        let retry = f.retry_lock.as_ref().map(|r| r.value).unwrap_or_default();
        let guard = crate::lock::lock_retry(repo, true, retry)?;
        let rep = crate::prune::prune(repo, &f.prune_options(), &guard.name())?;
        drop(guard);
        let mut d = Map::new();
        d.insert("deleted_packs".into(), json!(rep.deleted_packs.len()));
        d.insert("deleted_bytes".into(), json!(rep.deleted_bytes));
        d.insert("marked_packs".into(), json!(rep.marked_packs.len()));
        d.insert("marked_bytes".into(), json!(rep.marked_bytes));
        d.insert("repacked_packs".into(), json!(rep.repacked_packs.len()));
        d.insert("deferred".into(), json!(rep.deferred));
        Ok((Outcome::Ok, d))
    }

    fn check(&mut self, repo: &Repository) -> StepResult {
        use crate::check::ReadData;
        let c = self.profile.check.as_ref().expect("check configured");
        let read = c.read_data(self.ctx.today);
        let _lock = match crate::lock::lock(repo, false) {
            Ok(l) => Some(l),
            // A read-only repository is checked without a lock (format-spec/05 §5.8).
            Err(e @ Error::Backend { .. }) => {
                (self.ctx.warn)(&format!("warning: checking without a lock: {e}"));
                None
            }
            Err(e) => return Err(e),
        };
        let (rep, _) = crate::check::check(repo, &read, &crate::check::NoProgress)?;
        let mut d = Map::new();
        d.insert(
            "read_data".into(),
            json!(match &read {
                ReadData::None => "none".to_string(),
                ReadData::All => "all".to_string(),
                ReadData::Slice { n, of } => format!("{n}/{of}"),
                ReadData::Percent(p) => format!("{p}%"),
            }),
        );
        d.insert("packs_read".into(), json!(rep.stats.packs_read));
        d.insert("bytes_read".into(), json!(rep.stats.bytes_read));
        d.insert("errors".into(), json!(rep.errors.len()));
        d.insert("warnings".into(), json!(rep.warnings.len()));
        if rep.ok {
            return Ok((Outcome::Ok, d));
        }
        let first = rep
            .errors
            .first()
            .map(|p| p.to_string())
            .unwrap_or_default();
        Err(Error::Other(format!(
            "check found {} problem(s) (run `cellar check` for the report); first: {first}",
            rep.errors.len()
        )))
    }

    fn step(
        &mut self,
        name: &'static str,
        repo: &Repository,
        f: fn(&mut Self, &Repository) -> StepResult,
    ) {
        if self.failed() {
            self.skip(name);
            return;
        }
        let started = Instant::now();
        let r = crate::cancel::check().and_then(|()| f(self, repo));
        self.record(name, None, started, r);
    }
}

/// Runs the profile. Never returns early: the report says what happened;
/// `open` is called once, after nothing has been changed yet.
pub fn run(
    profile: &Profile,
    open: &mut dyn FnMut() -> Result<Repository>,
    mut ctx: RunContext<'_>,
) -> RunReport {
    let report = RunReport {
        profile: ctx.name.to_string(),
        ok: false,
        snapshot_id: None,
        error: None,
        steps: Vec::new(),
        failure: None,
        partial: false,
    };
    let mut r = Runner {
        ctx: &mut ctx,
        profile,
        report,
    };
    let h = &profile.hooks;
    let started = Instant::now();
    let repo = match open() {
        Ok(repo) => {
            r.record("open", None, started, Ok((Outcome::Ok, Map::new())));
            Some(repo)
        }
        Err(e) => {
            r.record("open", None, started, Err(e));
            None
        }
    };
    if let Some(repo) = &repo {
        r.hooks("before", &h.before.0, false);
        r.step("backup", repo, Runner::backup);
        // What `before` stopped comes back now, not after prune and check.
        r.hooks("after-backup", &h.after_backup.0, true);
        if profile.forget.is_some() {
            r.step("forget", repo, Runner::forget);
            if profile.forget.as_ref().is_some_and(|f| f.prune) {
                r.step("prune", repo, Runner::prune);
            }
        }
        if profile.check.is_some() {
            r.step("check", repo, Runner::check);
        }
        r.hooks("after", &h.after.0, false);
    }
    if r.failed() {
        r.hooks("on-failure", &h.on_failure.0, true);
    }
    r.hooks("finally", &h.finally.0, true);
    let mut report = r.report;
    report.ok = report.failure.is_none() && !report.partial;
    report
}
