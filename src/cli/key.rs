//! `cellar key`: the passwords (key files) that open a repository.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::common::{KdfArgs, kdf_params, open_repo};
use super::output::{local_time, table};
use super::password::PasswordSource;
use super::{GlobalArgs, exit};

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List the keys
    List,
    /// Add a key (asks for the new password; --new-password-file for scripts)
    Add {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a key by id prefix (not the one in use)
    Remove { id: String },
    /// Change the password of the key in use
    Passwd {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
}

fn new_password(file: &Option<PathBuf>) -> Result<Vec<u8>> {
    let src = PasswordSource {
        file: file.clone(),
        command: None,
    };
    if file.is_none() && !std::io::stdin().is_terminal() {
        bail!("no new password given: use --new-password-file (standard input is not a terminal)");
    }
    src.get("enter the new password: ", true)
}

pub fn run(g: &GlobalArgs, k: KeyCommand) -> Result<i32> {
    let mut repo = open_repo(g)?;
    match k {
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if g.json {
                let arr: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "id": k.id.to_hex(),
                            "current": k.current,
                            "created": k.meta.as_ref().map(|m| m.created.clone()),
                            "hostname": k.meta.as_ref().map(|m| m.hostname.clone()),
                            "username": k.meta.as_ref().map(|m| m.username.clone()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&arr)?);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            format!("{}{}", if k.current { "*" } else { " " }, k.id.short()),
                            k.meta
                                .as_ref()
                                .map(|m| m.username.clone())
                                .unwrap_or_default(),
                            k.meta
                                .as_ref()
                                .map(|m| m.hostname.clone())
                                .unwrap_or_default(),
                            k.meta
                                .as_ref()
                                .map(|m| local_time(&m.created))
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &mut std::io::stdout().lock(),
                    &[" ID", "User", "Host", "Created"],
                    &rows,
                )?;
            }
        }
        KeyCommand::Add {
            new_password_file,
            kdf,
        } => {
            let pw = new_password(&new_password_file)?;
            let id = repo.add_key(&pw, kdf_params(&kdf))?;
            if !g.quiet {
                println!("added key {}", id.short());
            }
        }
        KeyCommand::Remove { id } => {
            let id = repo.find_key(&id)?;
            repo.remove_key(id)?;
            if !g.quiet {
                println!("removed key {}", id.short());
            }
        }
        KeyCommand::Passwd {
            new_password_file,
            kdf,
        } => {
            let pw = new_password(&new_password_file)?;
            let id = repo.change_password(&pw, kdf_params(&kdf))?;
            if !g.quiet {
                println!("password changed (new key {})", id.short());
            }
        }
    }
    Ok(exit::OK)
}
