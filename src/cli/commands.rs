//! Each subcommand: turn arguments into engine options, call the engine, print.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, anyhow, bail};
use cellar::archiver::{self, BackupOptions, StreamSource};
use cellar::crypto::KdfParams;
use cellar::repository::{self, InitOptions, Notify, Repository};
use cellar::restorer::{self, RestoreOptions};
use serde_json::json;

use super::output::{human_bytes, local_time, table};
use super::password::PasswordSource;
use super::{Cli, Command, GlobalArgs, KdfArgs, KeyCommand, exit};

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init(g, a),
        Command::Backup(a) => backup(g, a),
        Command::Snapshots(_) => snapshots(g),
        Command::Restore(a) => restore(g, a),
        Command::Key(k) => key(g, k),
    }
}

fn password_source(g: &GlobalArgs) -> PasswordSource {
    PasswordSource {
        file: g.password_file.clone(),
        command: g.password_command.clone(),
    }
}

fn repo_location(g: &GlobalArgs) -> Result<String> {
    g.repo
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("no repository given: use -r/--repo or set CELLAR_REPOSITORY"))
}

fn notifier(g: &GlobalArgs) -> Notify {
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

fn kdf_params(a: &KdfArgs) -> KdfParams {
    let mut p = KdfParams::DEFAULT;
    if let Some(m) = a.kdf_memory_kib {
        p.memory_kib = m;
    }
    if let Some(t) = a.kdf_iterations {
        p.iterations = t;
    }
    p
}

fn init(g: &GlobalArgs, a: super::InitArgs) -> Result<i32> {
    let loc = repo_location(g)?;
    let backend = cellar::backend::open(&loc)?;
    if !backend.is_empty().map_err(|e| cellar::Error::Backend {
        location: loc.clone(),
        source: e,
    })? {
        return Err(cellar::Error::NotEmpty(loc).into());
    }
    if !(1..=512).contains(&a.pack_size_mib) {
        bail!("--pack-size-mib {}: must be between 1 and 512", a.pack_size_mib);
    }
    let pw = password_source(g).get("enter a password for the new repository: ", true)?;
    let opts = InitOptions {
        kdf: kdf_params(&a.kdf),
        compression_level: a.compression_level,
        pack_size: a.pack_size_mib << 20,
        ..Default::default()
    };
    let id = repository::init(&*backend, &pw, &opts)?;
    if g.json {
        println!("{}", json!({"message_type": "initialized", "id": id.to_hex(), "repository": loc}));
    } else if !g.quiet {
        println!("created cellar repository {} at {loc}", id.short());
        println!("Keep the password safe: without it the data cannot be read.");
    }
    Ok(exit::OK)
}

struct BackupPrinter {
    quiet: bool,
}

impl archiver::Progress for BackupPrinter {
    fn warn(&self, msg: &str) {
        if !self.quiet || msg.contains(':') {
            eprintln!("cellar: warning: {msg}");
        }
    }
}

fn parse_time(s: &str) -> Result<jiff::Zoned> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.to_zoned(jiff::tz::TimeZone::system()));
    }
    let dt: jiff::civil::DateTime = s
        .parse()
        .with_context(|| format!("--time {s:?}: expected RFC 3339 or YYYY-MM-DD HH:MM:SS"))?;
    Ok(dt.to_zoned(jiff::tz::TimeZone::system())?)
}

fn backup(g: &GlobalArgs, a: super::BackupArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let _lock = cellar::lock::lock(&repo, false)?;
    let mut streams = Vec::new();
    if a.stdin {
        streams.push(StreamSource {
            name: a.stdin_filename.clone(),
            reader: Box::new(std::io::stdin()),
        });
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p)?.0),
        None => None,
    };
    let opts = BackupOptions {
        paths: a.paths.clone(),
        streams,
        tags: a.tags.clone(),
        host: a.host.clone(),
        time: a.time.as_deref().map(parse_time).transpose()?,
        parent,
        force: a.force,
    };
    let printer = BackupPrinter { quiet: g.quiet };
    let res = archiver::backup(&repo, opts, &printer)?;
    let s = &res.summary;
    if g.json {
        let mut v = serde_json::to_value(s)?;
        let o = v.as_object_mut().unwrap();
        o.insert("message_type".into(), json!("summary"));
        o.insert("snapshot_id".into(), json!(res.snapshot.to_hex()));
        o.insert("parent".into(), json!(res.parent.map(|p| p.to_hex())));
        o.insert("unreadable".into(), json!(res.unreadable));
        println!("{v}");
    } else if !g.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "files: {} new, {} changed, {} unmodified; {} dirs",
            s.files_new, s.files_changed, s.files_unmodified, s.dirs
        )?;
        writeln!(
            out,
            "added to the repository: {} ({} stored)",
            human_bytes(s.data_added),
            human_bytes(s.data_added_packed)
        )?;
        writeln!(
            out,
            "processed {} files, {} in {:.2}s",
            s.total_files,
            human_bytes(s.total_bytes),
            s.duration_s
        )?;
        writeln!(out, "snapshot {} saved", res.snapshot.short())?;
    }
    if !res.unreadable.is_empty() {
        eprintln!(
            "cellar: warning: {} source file(s) could not be read; the snapshot holds everything else",
            res.unreadable.len()
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}

fn snapshots(g: &GlobalArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let snaps = repo.snapshots()?;
    if g.json {
        let arr: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": id.to_hex(),
                    "short_id": id.short(),
                    "time": s.time,
                    "host": s.hostname,
                    "hostname": s.hostname,
                    "username": s.username,
                    "uid": s.uid,
                    "gid": s.gid,
                    "tags": s.tags,
                    "paths": s.paths,
                    "tree": s.tree,
                    "parent": s.parent,
                    "program_version": s.program,
                    "summary": s.summary,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&arr)?);
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            vec![
                id.short(),
                local_time(&s.time),
                s.hostname.clone(),
                s.tags.join(","),
                s.paths.join(" "),
                s.summary
                    .as_ref()
                    .map(|x| human_bytes(x.total_bytes))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    table(&mut out, &["ID", "Time", "Host", "Tags", "Paths", "Size"], &rows)?;
    if !g.quiet {
        writeln!(out, "{} snapshot(s)", rows.len())?;
    }
    Ok(exit::OK)
}

fn restore(g: &GlobalArgs, a: super::RestoreArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let (sel, sub) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s.to_string(), p.to_string()),
        None => (a.snapshot.clone(), "/".to_string()),
    };
    let (id, snap) = repo.find_snapshot(&sel)?;
    let root = cellar::id::BlobId::from_hex(&snap.tree)?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        subpath: sub,
    };
    let started = std::time::Instant::now();
    let res = restorer::restore(&repo, root, &opts, &restorer::NoProgress)?;
    for e in &res.errors {
        eprintln!("cellar: error: {e}");
    }
    if g.json {
        println!(
            "{}",
            json!({
                "message_type": "summary",
                "snapshot_id": id.to_hex(),
                "files_restored": res.files,
                "dirs_restored": res.dirs,
                "bytes_restored": res.bytes,
                "errors": res.errors,
                "duration_s": started.elapsed().as_secs_f64(),
            })
        );
    } else if !g.quiet {
        println!(
            "restored {} files, {} dirs, {} from snapshot {} to {} in {:.2}s",
            res.files,
            res.dirs,
            human_bytes(res.bytes),
            id.short(),
            a.target.display(),
            started.elapsed().as_secs_f64()
        );
    }
    if !res.errors.is_empty() {
        eprintln!(
            "cellar: error: {} item(s) could not be restored",
            res.errors.len()
        );
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}

fn new_password(file: &Option<std::path::PathBuf>) -> Result<Vec<u8>> {
    let src = PasswordSource {
        file: file.clone(),
        command: None,
    };
    if file.is_none() && !std::io::stdin().is_terminal() {
        bail!("no new password given: use --new-password-file (standard input is not a terminal)");
    }
    src.get("enter the new password: ", true)
}

fn key(g: &GlobalArgs, k: KeyCommand) -> Result<i32> {
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
                            k.meta.as_ref().map(|m| m.username.clone()).unwrap_or_default(),
                            k.meta.as_ref().map(|m| m.hostname.clone()).unwrap_or_default(),
                            k.meta
                                .as_ref()
                                .map(|m| local_time(&m.created))
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&mut std::io::stdout().lock(), &[" ID", "User", "Host", "Created"], &rows)?;
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
