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
    PasswordSource {
        file: g.password_file.clone(),
        command: g.password_command.clone(),
    }
}

pub fn repo_location(g: &GlobalArgs) -> Result<String> {
    g.repo
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("no repository given: use -r/--repo or set CELLAR_REPOSITORY"))
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
    Ok(Repository::open(
        backend,
        &pw,
        g.cache_dir.as_deref(),
        notifier(g),
    )?)
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
