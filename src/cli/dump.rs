//! `cellar dump SNAPSHOT:PATH`: a file's bytes to standard output (e.g.
//! `cellar dump latest:/cells.sql | mysql cells`), or a directory as a tar
//! stream with `--archive tar`.

use std::io::Write;

use anyhow::{Result, bail};
use cellar::id::BlobId;
use cellar::tree::Kind;
use cellar::{browse, dump, restorer, selector};
use clap::{Args, ValueEnum};

use super::common::open_repo;
use super::snapshots::FilterArgs;
use super::{GlobalArgs, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Archive {
    Tar,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// SNAPSHOT:PATH: "latest", an id prefix or @TIME, and a path inside it
    pub spec: String,
    /// Write a directory (or a file) as this kind of archive
    #[arg(long, value_enum)]
    pub archive: Option<Archive>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &GlobalArgs, a: DumpArgs) -> Result<i32> {
    let (sel, path) = selector::split_spec(&a.spec);
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        bail!("dump {:?}: expected SNAPSHOT:PATH", a.spec);
    };
    let repo = open_repo(g)?;
    let (_, snap) = selector::resolve(&repo, sel, &a.filter.filter())?;
    let path = browse::normalize(path);
    let mut node = restorer::resolve(&repo, BlobId::from_hex(&snap.tree)?, &path)?;
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("root");
    if node.name.is_empty() {
        node.name = name.as_bytes().to_vec();
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match a.archive {
        Some(Archive::Tar) => dump::tar(&repo, &node, name, &mut out)?,
        None if node.kind == Kind::File => {
            dump::file(&repo, &node, &mut out)?;
        }
        None => bail!(
            "{path}: is a {} in the snapshot: use --archive tar to dump it",
            node.kind.name()
        ),
    }
    out.flush()?;
    Ok(exit::OK)
}
