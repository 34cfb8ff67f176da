//! `cellar ls SNAPSHOT[:PATH]`: one directory of a snapshot (or all below it
//! with -R), from the catalog.

use std::io::Write;

use anyhow::Result;
use cellar::browse;
use cellar::catalog::{Catalog, Entry};
use cellar::id::BlobId;
use cellar::selector;
use cellar::tree::Kind;
use clap::Args;
use serde_json::json;

use super::common::open_repo;
use super::snapshots::FilterArgs;
use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
pub struct LsArgs {
    /// SNAPSHOT[:PATH]: "latest", an id prefix or @TIME, optionally with a path inside it
    pub snapshot: String,
    /// List everything below the directory
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Long format: mode, owner, size, mtime
    #[arg(short = 'l', long)]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `drwxr-xr-x`-style mode string.
pub fn mode_string(kind: Kind, mode: u32) -> String {
    let t = match kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
        Kind::CharDev => 'c',
        Kind::BlockDev => 'b',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: u32, sp: u32, lower: char, upper: char| match (mode & x != 0, mode & sp != 0)
    {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

/// An mtime in local time, to the second.
pub fn mtime_string(mtime: (i64, u32)) -> String {
    match jiff::Timestamp::new(mtime.0, mtime.1 as i32) {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => mtime.0.to_string(),
    }
}

/// RFC 3339 with nanoseconds, for JSON.
pub fn mtime_rfc3339(mtime: (i64, u32)) -> String {
    match jiff::Timestamp::new(mtime.0, mtime.1 as i32) {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%.9f%:z")
            .to_string(),
        Err(_) => mtime.0.to_string(),
    }
}

pub fn entry_json(path: &[u8], e: &Entry) -> serde_json::Value {
    let mut v = json!({
        "path": String::from_utf8_lossy(path),
        "name": String::from_utf8_lossy(&e.name),
        "type": e.kind.name(),
        "mode": e.mode,
        "uid": e.uid,
        "gid": e.gid,
        "user": e.user,
        "group": e.group,
        "size": e.size,
        "mtime": mtime_rfc3339(e.mtime),
    });
    if e.kind == Kind::Symlink {
        v["link_target"] = json!(String::from_utf8_lossy(&e.link_target));
    }
    if let Some(c) = e.content {
        v["content_id"] = json!(hex::encode(c));
    }
    v
}

pub fn run(g: &GlobalArgs, a: LsArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let (sel, path) = selector::split_spec(&a.snapshot);
    let (_, snap) = selector::resolve(&repo, sel, &a.filter.filter())?;
    let root = BlobId::from_hex(&snap.tree)?;
    let cat = Catalog::open(&repo)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let long = a.long;
    let json = g.json;
    // A closed pipe (`ls | head`) is kept as the io error main() knows.
    let mut werr: Option<std::io::Error> = None;
    let listed = browse::list(
        &cat,
        &repo,
        root,
        path.unwrap_or("/"),
        a.recursive,
        &mut |p, e| {
            let r = if json {
                writeln!(out, "{}", entry_json(p, e))
            } else if long {
                let mut line = format!(
                    "{} {:>8} {:>8} {:>12} {} {}",
                    mode_string(e.kind, e.mode),
                    if e.user.is_empty() {
                        e.uid.to_string()
                    } else {
                        e.user.clone()
                    },
                    if e.group.is_empty() {
                        e.gid.to_string()
                    } else {
                        e.group.clone()
                    },
                    e.size,
                    mtime_string(e.mtime),
                    String::from_utf8_lossy(p)
                );
                if e.kind == Kind::Symlink {
                    line.push_str(&format!(" -> {}", String::from_utf8_lossy(&e.link_target)));
                }
                writeln!(out, "{line}")
            } else {
                writeln!(out, "{}", String::from_utf8_lossy(p))
            };
            r.map_err(|e| {
                let msg = format!("stdout: {e}");
                werr = Some(e);
                cellar::Error::Other(msg)
            })
        },
    );
    if let Some(e) = werr {
        return Err(e.into());
    }
    listed?;
    out.flush()?;
    Ok(exit::OK)
}
