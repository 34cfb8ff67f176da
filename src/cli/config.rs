//! `cellar config show PROFILE` (the effective profile, defaults filled in,
//! secrets hidden) and `cellar config check` (every profile is usable).

use anyhow::Result;
use cellar::profile::{DEFAULT_HOOK_TIMEOUT, Hook, Parsed, Profile, redact};
use clap::{Args, Subcommand};

use super::run::{ConfigArg, effective};
use super::{GlobalArgs, exit};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print a profile as `cellar run` would use it (passwords hidden)
    Show(ShowArgs),
    /// Check the configuration file: syntax, types, and that each profile is complete
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    pub profile: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Check only this profile (default: all)
    pub profile: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

fn hide_hooks(hooks: &mut [Hook]) {
    for h in hooks {
        h.command = redact(&h.command);
    }
}

/// Defaults made explicit, secrets hidden.
fn shown(mut p: Profile) -> Profile {
    if p.password.is_some() {
        p.password = Some("<hidden>".into());
    }
    p.password_command = p.password_command.as_deref().map(redact);
    for c in p.backup.streams.values_mut() {
        *c = redact(c);
    }
    let h = &mut p.hooks;
    if h.timeout.is_none() {
        h.timeout = Some(Parsed {
            text: format!("{}m", DEFAULT_HOOK_TIMEOUT.as_secs() / 60),
            value: DEFAULT_HOOK_TIMEOUT,
        });
    }
    for list in [
        &mut h.before,
        &mut h.after_backup,
        &mut h.after,
        &mut h.on_failure,
        &mut h.finally,
    ] {
        hide_hooks(&mut list.0);
    }
    if let Some(f) = &mut p.forget {
        if f.group_by.is_none() {
            f.group_by = Some(Parsed {
                text: "host,paths".into(),
                value: f.group_by(),
            });
        }
        if f.prune {
            let o = f.prune_options();
            f.grace.get_or_insert(Parsed {
                text: "1h".into(),
                value: o.grace,
            });
            f.max_unused.get_or_insert(Parsed {
                text: "5%".into(),
                value: o.max_unused,
            });
        }
    }
    p
}

pub fn run(g: &GlobalArgs, c: ConfigCommand) -> Result<i32> {
    match c {
        ConfigCommand::Show(a) => {
            let cfg = a.config.load()?;
            let p = shown(effective(g, cfg.profile(&a.profile)?));
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": cfg.path,
                        "profile": a.profile,
                        "config": p,
                    })
                );
            } else {
                let mut t = toml::Table::new();
                let mut inner = toml::Table::new();
                inner.insert(a.profile.clone(), toml::Value::try_from(&p)?);
                t.insert("profiles".into(), toml::Value::Table(inner));
                println!(
                    "# profile {} from {} (defaults filled in, command-line overrides applied)",
                    a.profile,
                    cfg.location(&a.profile)
                );
                print!("{}", toml::to_string(&t)?);
            }
            Ok(exit::OK)
        }
        ConfigCommand::Check(a) => {
            let cfg = a.config.load()?;
            let repo_given = g.repo.as_deref().is_some_and(|r| !r.is_empty());
            let names: Vec<String> = match &a.profile {
                Some(n) => vec![n.clone()],
                None => cfg.names().map(String::from).collect(),
            };
            if names.is_empty() {
                anyhow::bail!("{}: no [profiles.NAME] table", cfg.path.display());
            }
            let mut bad = 0;
            for n in &names {
                match cfg.validate(n, repo_given) {
                    Ok(()) => {
                        if !g.quiet {
                            println!("{n}: ok");
                        }
                    }
                    Err(e) => {
                        eprintln!("cellar: error: {e}");
                        bad += 1;
                    }
                }
            }
            Ok(if bad == 0 { exit::OK } else { exit::ERROR })
        }
    }
}
