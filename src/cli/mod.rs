//! Command-line parsing, dispatch and error reporting. The engine never sees clap:
//! arguments become plain option structs here.

mod backup;
mod check;
mod common;
mod completion;
mod config;
mod diff;
mod dump;
mod examples;
mod find;
mod forget;
mod history;
mod init;
mod key;
mod ls;
mod man;
mod mount;
mod output;
mod password;
mod progress;
mod prune;
mod repair;
mod repo;
mod repos;
mod restore;
mod run;
mod snapshots;
mod stats;
mod unlock;
mod version;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes, compatible with restic's so existing scripts keep working.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const PARTIAL: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const LOCKED: i32 = 11;
    pub const WRONG_PASSWORD: i32 = 12;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Parser, Debug)]
#[command(
    name = "cellar",
    version,
    about = "Encrypted, deduplicating snapshots of server folders and database dumps",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Repository location: a directory (or local:DIR), or s3://BUCKET/PREFIX
    #[arg(short = 'r', long = "repo", env = "CELLAR_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Read the password from this file (all of it, less one trailing newline)
    #[arg(long, env = "CELLAR_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use what it prints as the password
    #[arg(long, env = "CELLAR_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Local cache directory (default: $XDG_CACHE_HOME/cellar)
    #[arg(long, env = "CELLAR_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail: backup lists each file it stores as new or modified
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No colour in help and errors (also when NO_COLOR is set or output is not a terminal)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// S3: address buckets as ENDPOINT/BUCKET/KEY (always so with AWS_ENDPOINT_URL)
    #[arg(long, env = "CELLAR_S3_PATH_STYLE", global = true)]
    pub s3_path_style: bool,
    /// S3: storage class of new data packs (e.g. STANDARD_IA, INTELLIGENT_TIERING)
    #[arg(
        long,
        env = "CELLAR_S3_STORAGE_CLASS",
        global = true,
        value_name = "CLASS"
    )]
    pub s3_storage_class: Option<String>,
    /// S3: pack uploads in flight (default 8; a local disk uses one writer)
    #[arg(long, global = true, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: Option<u16>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository
    Init(init::InitArgs),
    /// Back up paths and streams into a new snapshot
    Backup(Box<backup::BackupArgs>),
    /// List snapshots
    Snapshots(snapshots::SnapshotsArgs),
    /// Restore a snapshot (or a path inside it) into a directory
    Restore(restore::RestoreArgs),
    /// List a directory of a snapshot (SNAPSHOT[:PATH])
    Ls(ls::LsArgs),
    /// Find paths matching a glob in all (or the selected) snapshots
    Find(find::FindArgs),
    /// Every version of one path across snapshots
    History(history::HistoryArgs),
    /// What changed between two snapshots
    Diff(diff::DiffArgs),
    /// Write a file (or, as tar, a directory) of a snapshot to standard output
    Dump(dump::DumpArgs),
    /// Browse every snapshot as a read-only file system (FUSE) until Ctrl-C
    Mount(mount::MountArgs),
    /// Manage the passwords (keys) that open the repository
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Remove snapshots by id or by a retention policy
    Forget(Box<forget::ForgetArgs>),
    /// Reclaim the space of data no snapshot needs
    Prune(prune::PruneArgs),
    /// Sizes, deduplication and compression, and what prune would reclaim
    Stats(stats::StatsArgs),
    /// List locks and remove stale ones
    Unlock(unlock::UnlockArgs),
    /// Verify the repository (with --read-data, every byte) and report damage by snapshot and path
    Check(check::CheckArgs),
    /// Rebuild the index from the packs, or snapshots without lost data
    #[command(subcommand)]
    Repair(repair::RepairCommand),
    /// Run a profile of the configuration file: hooks, backup, forget, prune, check
    Run(run::RunArgs),
    /// Show or check the configuration file's profiles
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print the version, git commit, build date, target, compiler and features
    Version(version::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish)
    Completion(completion::CompletionArgs),
    /// Answer a completion script's question about the command line (reads only the local cache)
    #[command(name = "__complete", hide = true)]
    Complete(completion::CompleteArgs),
    /// Write man pages (one per subcommand) into a directory
    Man(man::ManArgs),
    /// Save repositories under names (-r NAME) and pick the default
    #[command(subcommand)]
    Repo(repo::RepoCommand),
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let g = &cli.global;
    cellar::backend::configure(cellar::backend::Options {
        s3_path_style: g.s3_path_style,
        s3_storage_class: g.s3_storage_class.clone(),
        connections: g.connections.map(usize::from),
    });
    match cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Backup(a) => backup::run(g, *a),
        Command::Snapshots(a) => snapshots::run(g, a),
        Command::Restore(a) => restore::run(g, a),
        Command::Ls(a) => ls::run(g, a),
        Command::Find(a) => find::run(g, a),
        Command::History(a) => history::run(g, a),
        Command::Diff(a) => diff::run(g, a),
        Command::Dump(a) => dump::run(g, a),
        Command::Mount(a) => mount::run(g, a),
        Command::Key(k) => key::run(g, k),
        Command::Forget(a) => forget::run(g, *a),
        Command::Prune(a) => prune::run(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Unlock(a) => unlock::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Repair(c) => repair::run(g, c),
        Command::Run(a) => run::run(g, a),
        Command::Config(c) => config::run(g, c),
        Command::Version(a) => version::run(g, a),
        Command::Completion(a) => completion::run_script(g, a),
        Command::Complete(a) => completion::run_complete(g, a),
        Command::Man(a) => man::run(g, a),
        Command::Repo(c) => repo::run(g, c),
    }
}

/// For backups only: glibc's allocator, left alone, keeps peak memory well
/// above what is live. It raises its mmap threshold each time a large buffer
/// is freed, so later 1–16 MiB read and pack buffers come from the heap and
/// fragment it, and each of the many reader threads gets an arena that keeps
/// what it freed. A fixed threshold hands large buffers back when freed, and a
/// few arenas suffice for threads that mostly wait on the disk: the bench's
/// first backup peaks at 142 MiB instead of 166 (restic: 152). It costs system
/// time (each large buffer is faulted in afresh), which restore and check,
/// already well under restic's memory, are spared. MALLOC_* set in the
/// environment still win.
pub fn tune_malloc_for_backup() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters, under the allocator's
        // own lock.
        unsafe {
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, 8);
            }
            if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        }
    }
}

extern "C" fn on_signal(_sig: libc::c_int) {
    if cellar::cancel::is_interrupted() {
        // A second signal: the user means it.
        unsafe { libc::_exit(exit::INTERRUPTED) };
    }
    cellar::cancel::interrupt();
}

fn install_signal_handlers() {
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Maps an error to the documented exit code.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(err) = cause.downcast_ref::<cellar::Error>() {
            return match err {
                cellar::Error::NoRepository(_) => exit::NO_REPOSITORY,
                cellar::Error::Locked(_) => exit::LOCKED,
                cellar::Error::WrongPassword => exit::WRONG_PASSWORD,
                cellar::Error::Interrupted => exit::INTERRUPTED,
                _ => exit::ERROR,
            };
        }
    }
    exit::ERROR
}

pub fn main() -> i32 {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || std::env::args_os().any(|a| a == "--no-color");
    let mut cmd = examples::cli();
    if no_color {
        cmd = cmd.color(clap::ColorChoice::Never);
    }
    let parsed = cmd
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    install_signal_handlers();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`cellar ls | head`) is not an error.
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || matches!(
                        c.downcast_ref::<cellar::Error>(),
                        Some(cellar::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe
                    )
            });
            if broken_pipe {
                return exit::OK;
            }
            // One line: the chain joined, outermost first.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let mut line = String::new();
            for m in msg {
                if !line.contains(&m) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&m);
                }
            }
            eprintln!("cellar: error: {line}");
            exit_code(&e)
        }
    }
}
