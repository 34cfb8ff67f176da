//! `cellar repo add|list|use|remove`: saved repositories, so an admin types
//! `-r offsite` (or nothing, for the default) instead of a URL and a password
//! option on every command. The file model is in `repos`.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::table;
use super::repos::{self, Saved};
use super::{GlobalArgs, exit};

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// Save a repository under a name (with -r/--repo and the password source given)
    #[command(after_help = "Examples:
  cellar repo add offsite -r s3://backups/cells --password-command 'pass show cellar/offsite'
  cellar repo add local -r /srv/cellar --password-file /root/.cellar-pw --default")]
    Add(AddArgs),
    /// List saved repositories (the default is marked with '*')
    #[command(after_help = "Examples:
  cellar repo list
  cellar repo list --json")]
    List(ListArgs),
    /// Make a saved repository the default (used when no -r/--repo is given)
    #[command(after_help = "Examples:
  cellar repo use offsite
  cellar snapshots            # now lists offsite's snapshots")]
    Use(NameArgs),
    /// Forget a saved repository (the repository itself is not touched)
    #[command(after_help = "Examples:
  cellar repo remove offsite")]
    Remove(NameArgs),
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Name to use with -r (letters, digits, '-', '_', '.')
    pub name: String,
    /// Also make it the default repository
    #[arg(long)]
    pub default: bool,
    /// Replace a saved repository of the same name
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Name of the saved repository
    pub name: String,
}

pub fn run(g: &GlobalArgs, c: RepoCommand) -> Result<i32> {
    let path = repos::config_path()?;
    let mut doc = repos::load_document(&path)?;
    let (all, default) = repos::saved(&doc, &path)?;
    match c {
        RepoCommand::Add(a) => {
            if !repos::valid_name(&a.name) {
                bail!(
                    "repository name {:?}: use letters, digits, '-', '_' and '.' (no '/' or ':')",
                    a.name
                );
            }
            if all.contains_key(&a.name) && !a.force {
                bail!(
                    "{}: a repository named {:?} is already saved (--force replaces it)",
                    path.display(),
                    a.name
                );
            }
            let Some(location) = g.repo.clone().filter(|s| !s.is_empty()) else {
                bail!("repo add {}: give the repository with -r/--repo", a.name);
            };
            if g.password_file.is_some() && g.password_command.is_some() {
                bail!("give --password-file or --password-command, not both");
            }
            // Local paths are saved absolute: the name must work from any directory.
            let location = if location.contains("://") {
                location
            } else {
                let p = location.strip_prefix("local:").unwrap_or(&location);
                std::path::absolute(p)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or(location.clone())
            };
            let saved = Saved {
                repository: location,
                password_file: g
                    .password_file
                    .as_ref()
                    .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())),
                password_command: g.password_command.clone(),
                cache_dir: g.cache_dir.clone(),
            };
            repos::set_saved(&mut doc, &a.name, &saved);
            let make_default = a.default || default.is_none();
            if make_default {
                repos::set_default(&mut doc, &a.name);
            }
            repos::save_document(&path, &doc)?;
            if !g.quiet {
                println!(
                    "saved repository {} ({}){} in {}",
                    a.name,
                    saved.repository,
                    if make_default { ", the default" } else { "" },
                    path.display()
                );
            }
        }
        RepoCommand::List(_) => {
            if g.json {
                let arr: Vec<_> = all
                    .iter()
                    .map(|(n, s)| {
                        json!({
                            "name": n,
                            "repository": s.repository,
                            "password_file": s.password_file,
                            "password_command": s.password_command.as_ref().map(|c| cellar_redact(c)),
                            "default": default.as_deref() == Some(n.as_str()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&arr)?);
                return Ok(exit::OK);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|(n, s)| {
                    let pw = match (&s.password_file, &s.password_command) {
                        (Some(f), _) => format!("file {}", f.display()),
                        (None, Some(c)) => format!("command {}", cellar_redact(c)),
                        (None, None) => "prompt".into(),
                    };
                    vec![
                        if default.as_deref() == Some(n.as_str()) {
                            "*".into()
                        } else {
                            String::new()
                        },
                        n.clone(),
                        s.repository.clone(),
                        pw,
                    ]
                })
                .collect();
            let mut out = std::io::stdout().lock();
            table(&mut out, &["", "Name", "Repository", "Password"], &rows)?;
        }
        RepoCommand::Use(a) => {
            if !all.contains_key(&a.name) {
                bail!(
                    "{}: no saved repository {:?} (saved: {})",
                    path.display(),
                    a.name,
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                );
            }
            repos::set_default(&mut doc, &a.name);
            repos::save_document(&path, &doc)?;
            if !g.quiet {
                println!("default repository: {}", a.name);
            }
        }
        RepoCommand::Remove(a) => {
            if !repos::remove_saved(&mut doc, &a.name) {
                bail!("{}: no saved repository {:?}", path.display(), a.name);
            }
            repos::save_document(&path, &doc)?;
            if !g.quiet {
                println!("removed saved repository {}", a.name);
            }
        }
    }
    Ok(exit::OK)
}

/// A password command as shown: its first word only, in case the user put a
/// secret in its arguments.
fn cellar_redact(cmd: &str) -> String {
    match cmd.split_whitespace().next() {
        Some(first) if first.len() < cmd.trim().len() => format!("{first} ..."),
        Some(first) => first.to_string(),
        None => String::new(),
    }
}
