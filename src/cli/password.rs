//! Where the password comes from: --password-file, CELLAR_PASSWORD_FILE,
//! --password-command / CELLAR_PASSWORD_COMMAND, CELLAR_PASSWORD, or a prompt.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

#[derive(Clone, Debug, Default)]
pub struct PasswordSource {
    pub file: Option<PathBuf>,
    pub command: Option<String>,
}

fn trim_newline(mut s: Vec<u8>) -> Vec<u8> {
    if s.last() == Some(&b'\n') {
        s.pop();
        if s.last() == Some(&b'\r') {
            s.pop();
        }
    }
    s
}

impl PasswordSource {
    /// Reads the password. `confirm` asks twice on a terminal (init, key add).
    pub fn get(&self, prompt: &str, confirm: bool) -> Result<Vec<u8>> {
        if let Some(f) = &self.file {
            let s = std::fs::read(f)
                .with_context(|| format!("reading password file {}", f.display()))?;
            return Ok(trim_newline(s));
        }
        if let Some(cmd) = &self.command {
            let out = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .with_context(|| format!("running password command {cmd:?}"))?;
            if !out.status.success() {
                bail!("password command {cmd:?} failed ({})", out.status);
            }
            return Ok(trim_newline(out.stdout));
        }
        if let Some(p) = std::env::var_os("CELLAR_PASSWORD") {
            return Ok(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec());
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "no password given: use --password-file, --password-command, CELLAR_PASSWORD_FILE or CELLAR_PASSWORD_COMMAND (standard input is not a terminal)"
            );
        }
        let p = rpassword::prompt_password(prompt).context("reading the password")?;
        if confirm {
            let again = rpassword::prompt_password("enter the password again: ")
                .context("reading the password")?;
            if again != p {
                bail!("the passwords do not match");
            }
        }
        if p.is_empty() {
            bail!("empty password refused");
        }
        Ok(p.into_bytes())
    }
}
