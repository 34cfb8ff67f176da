//! Each subcommand: turn arguments into engine options, call the engine, print.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, anyhow, bail};
use cellar::archiver::{self, BackupOptions, ExcludeOptions, StreamSource};
use cellar::crypto::KdfParams;
use cellar::repository::{self, InitOptions, Notify, Repository};
use cellar::restorer::{self, RestoreOptions};
use serde_json::json;

use super::output::{human_bytes, local_time, table};
use super::password::PasswordSource;
use super::progress::Bar;
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
        bail!(
            "--pack-size-mib {}: must be between 1 and 512",
            a.pack_size_mib
        );
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
        println!(
            "{}",
            json!({"message_type": "initialized", "id": id.to_hex(), "repository": loc})
        );
    } else if !g.quiet {
        println!("created cellar repository {} at {loc}", id.short());
        println!("Keep the password safe: without it the data cannot be read.");
    }
    Ok(exit::OK)
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

/// Starts `sh -c COMMAND` and returns its stdout as a stream. Its stderr is
/// collected (the last 64 KiB) and shown after it ends; a non-zero exit, a
/// signal or a failure to start fails the backup.
fn command_stream(spec: &str, quiet: bool) -> Result<StreamSource> {
    let (name, cmd) = spec
        .split_once('=')
        .filter(|(n, c)| !n.is_empty() && !c.trim().is_empty())
        .ok_or_else(|| anyhow!("--stdin-from-command {spec:?}: expected NAME=COMMAND"))?;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting command for /{name}: {cmd}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match std::io::Read::read(&mut stderr, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 64 << 10 {
                        tail.drain(..tail.len() - (64 << 10));
                    }
                }
            }
        }
        tail
    });
    let name_s = name.to_string();
    let cmd_s = cmd.to_string();
    let finish = Box::new(move || -> cellar::Result<()> {
        let status = child.wait();
        let tail = err_thread.join().unwrap_or_default();
        let failed = !matches!(&status, Ok(s) if s.success());
        if !tail.is_empty() && (failed || !quiet) {
            for line in String::from_utf8_lossy(&tail).lines() {
                eprintln!("cellar: /{name_s}: {line}");
            }
        }
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(cellar::Error::Other(match (s.code(), s.signal()) {
                (Some(c), _) => format!(
                    "command for /{name_s} exited with status {c}: {cmd_s} (no snapshot saved)"
                ),
                (_, Some(sig)) => format!(
                    "command for /{name_s} was killed by signal {sig}: {cmd_s} (no snapshot saved)"
                ),
                _ => format!("command for /{name_s} failed: {cmd_s} (no snapshot saved)"),
            })),
            Err(e) => Err(cellar::Error::Other(format!("command for /{name_s}: {e}"))),
        }
    });
    Ok(StreamSource {
        name: name.to_string(),
        reader: Box::new(stdout),
        finish: Some(finish),
    })
}

fn exclude_options(a: &super::BackupArgs) -> Result<ExcludeOptions> {
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading exclude file {}", f.display()))?;
        patterns.extend(
            text.lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(ExcludeOptions {
        patterns,
        ipatterns: a.iexcludes.clone(),
        if_present: a.exclude_if_present.clone(),
        caches: a.exclude_caches,
        larger_than: a
            .exclude_larger_than
            .as_deref()
            .map(cellar::archiver::exclude::parse_size)
            .transpose()
            .context("--exclude-larger-than")?,
        one_file_system: a.one_file_system,
    })
}

fn backup(g: &GlobalArgs, a: super::BackupArgs) -> Result<i32> {
    let exclude = exclude_options(&a)?;
    let repo = open_repo(g)?;
    let _lock = if a.dry_run {
        None
    } else {
        Some(cellar::lock::lock(&repo, false)?)
    };
    let mut streams = Vec::new();
    if a.stdin {
        streams.push(StreamSource {
            name: a.stdin_filename.clone(),
            reader: Box::new(std::io::stdin()),
            finish: None,
        });
    }
    for spec in &a.commands {
        streams.push(command_stream(spec, g.quiet)?);
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
        exclude,
        dry_run: a.dry_run,
    };
    let bar = Bar::new(!g.quiet && !g.json, g.quiet, "backed up");
    let res = archiver::backup(&repo, opts, &bar);
    drop(bar);
    let res = res?;
    let s = &res.summary;
    if g.json {
        let mut v = serde_json::to_value(s)?;
        let o = v.as_object_mut().unwrap();
        o.insert("message_type".into(), json!("summary"));
        o.insert(
            "snapshot_id".into(),
            json!(res.snapshot.map(|p| p.to_hex())),
        );
        o.insert("parent".into(), json!(res.parent.map(|p| p.to_hex())));
        o.insert("dry_run".into(), json!(a.dry_run));
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
            "{}: {} ({} stored)",
            if a.dry_run {
                "would add"
            } else {
                "added to the repository"
            },
            human_bytes(s.data_added),
            human_bytes(s.data_added_packed)
        )?;
        writeln!(
            out,
            "processed {} files, {} in {:.2}s (read {})",
            s.total_files,
            human_bytes(s.total_bytes),
            s.duration_s,
            human_bytes(s.bytes_read)
        )?;
        match res.snapshot {
            Some(id) => writeln!(out, "snapshot {} saved", id.short())?,
            None => writeln!(out, "dry run: nothing written")?,
        }
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
    table(
        &mut out,
        &["ID", "Time", "Host", "Tags", "Paths", "Size"],
        &rows,
    )?;
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
    let bar = Bar::new(!g.quiet && !g.json, g.quiet, "restored");
    let res = restorer::restore(&repo, root, &opts, &bar);
    drop(bar);
    let res = res?;
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
