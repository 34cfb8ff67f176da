//! Shared by the subcommands: where the repository and password come from, and opening it.

use anyhow::{Context, Result, anyhow};
use cellar::crypto::KdfParams;
use cellar::repository::{Notify, Repository};
use clap::Args;

use super::GlobalArgs;
use super::password::PasswordSource;

#[derive(Args, Debug)]
pub struct KdfArgs {
    /// Argon2id memory in KiB for the new key (default 65536)
    #[arg(long, hide = true)]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id passes for the new key (default 3)
    #[arg(long, hide = true)]
    pub kdf_iterations: Option<u32>,
}

pub fn password_source(g: &GlobalArgs) -> PasswordSource {
    // A saved repository's password source, unless the command line gives one.
    if g.password_file.is_none() && g.password_command.is_none() {
        if let Ok(Some((_, s))) = super::repos::lookup(g.repo.as_deref().filter(|r| !r.is_empty()))
        {
            return PasswordSource {
                file: s.password_file,
                command: s.password_command,
            };
        }
    }
    PasswordSource {
        file: g.password_file.clone(),
        command: g.password_command.clone(),
    }
}

/// `-r`/CELLAR_REPOSITORY as a location or the name of a saved repository,
/// else the saved default.
pub fn repo_location(g: &GlobalArgs) -> Result<String> {
    super::repos::resolve_location(g.repo.as_deref())?.ok_or_else(|| {
        anyhow!("no repository given: use -r/--repo, set CELLAR_REPOSITORY or save one with `cellar repo add`")
    })
}

/// The cache root: --cache-dir/CELLAR_CACHE_DIR, else a saved repository's.
pub fn cache_root(g: &GlobalArgs) -> Option<std::path::PathBuf> {
    g.cache_dir.clone().or_else(|| {
        super::repos::lookup(g.repo.as_deref().filter(|r| !r.is_empty()))
            .ok()
            .flatten()
            .and_then(|(_, s)| s.cache_dir)
    })
}

pub fn notifier(g: &GlobalArgs) -> Notify {
    let quiet = g.quiet;
    std::sync::Arc::new(move |m: &str| {
        if !quiet || m.starts_with("warning") {
            eprintln!("cellar: {m}");
        }
    })
}

pub fn open_repo(g: &GlobalArgs) -> Result<Repository> {
    let loc = repo_location(g)?;
    let backend = cellar::backend::open(&loc)?;
    // Without a config there is nothing to unlock: say so before asking for a password.
    match backend.read(cellar::backend::FileType::Config, "config") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(cellar::Error::NoRepository(loc).into());
        }
        _ => {}
    }
    let pw = password_source(g).get("enter the repository password: ", false)?;
    let root = cache_root(g);
    let repo = Repository::open(backend, &pw, root.as_deref(), notifier(g))?;
    // So shell completion finds this repository's cache without the password.
    super::completion::remember_location(
        &root.unwrap_or_else(cellar::repository::default_cache_root),
        &loc,
        &repo.config().id,
    );
    Ok(repo)
}

pub fn kdf_params(a: &KdfArgs) -> KdfParams {
    let mut p = KdfParams::DEFAULT;
    if let Some(m) = a.kdf_memory_kib {
        p.memory_kib = m;
    }
    if let Some(t) = a.kdf_iterations {
        p.iterations = t;
    }
    p
}

pub fn parse_time(s: &str) -> Result<jiff::Zoned> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.to_zoned(jiff::tz::TimeZone::system()));
    }
    let dt: jiff::civil::DateTime = s
        .parse()
        .with_context(|| format!("--time {s:?}: expected RFC 3339 or YYYY-MM-DD HH:MM:SS"))?;
    Ok(dt.to_zoned(jiff::tz::TimeZone::system())?)
}
