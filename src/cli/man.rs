//! `cellar man --dir DIR`: man pages generated from the clap definitions, one
//! for `cellar` and one per subcommand (`cellar-restore.1`, `cellar-key-add.1`),
//! so the pages never disagree with `--help`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  cellar man --dir /usr/local/share/man/man1 && mandb -q
  cellar man --dir /tmp/man && man /tmp/man/cellar-restore.1")]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes the page of `cmd` (named `name`) and those of its visible subcommands.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    // clap keeps command names as &'static str; a handful of pages per run.
    let static_name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let cmd = cmd.clone().name(static_name);
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .with_context(|| format!("rendering the man page of {name}"))?;
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let mut cmd = super::examples::cli();
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, "cellar", &a.dir, &mut written)?;
    if !g.quiet {
        println!("{} man page(s) in {}", written.len(), a.dir.display());
    }
    Ok(exit::OK)
}
