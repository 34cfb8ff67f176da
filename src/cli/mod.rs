//! Command-line parsing, dispatch and error reporting. The engine never sees clap:
//! arguments become plain option structs here.

mod commands;
mod output;
mod password;
mod progress;

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
    /// Repository location: a directory (or local:DIR)
    #[arg(short = 'r', long = "repo", env = "CELLAR_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Read the password from this file (first line)
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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Back up paths and streams into a new snapshot
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// Restore a snapshot (or a path inside it) into a directory
    Restore(RestoreArgs),
    /// Manage the passwords (keys) that open the repository
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Args, Debug)]
pub struct KdfArgs {
    /// Argon2id memory in KiB for the new key (default 65536)
    #[arg(long, hide = true)]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id passes for the new key (default 3)
    #[arg(long, hide = true)]
    pub kdf_iterations: Option<u32>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Target pack size in MiB (1-512)
    #[arg(long, default_value_t = 16)]
    pub pack_size_mib: u32,
    /// zstd level for compressible data (0 = store uncompressed)
    #[arg(long, default_value_t = 3)]
    pub compression_level: i32,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up
    pub paths: Vec<PathBuf>,
    /// Read a stream from standard input
    #[arg(long)]
    pub stdin: bool,
    /// File name of the standard-input stream in the snapshot
    #[arg(long, default_value = "stdin", requires = "stdin")]
    pub stdin_filename: String,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's)
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot to compare against for unchanged files (default: latest with the same host and paths)
    #[arg(long)]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the parent
    #[arg(long)]
    pub force: bool,
    /// Record this time instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local)
    #[arg(long)]
    pub time: Option<String>,
    /// Store what COMMAND prints as the file /NAME (repeatable); a failing command means no snapshot
    #[arg(long = "stdin-from-command", value_name = "NAME=COMMAND")]
    pub commands: Vec<String>,
    /// Leave out paths matching this gitignore-style pattern (repeatable)
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Read exclude patterns from a file, one per line (# comments)
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Leave out directories that contain a file with this name (repeatable)
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Leave out directories tagged with a CACHEDIR.TAG
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out files larger than SIZE (e.g. 2G, 500M)
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Stay on the file system of each given path (mount points are left out)
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Read and hash everything but write nothing; report what would be stored
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAPSHOT[:PATH]: an id prefix or "latest", optionally with a path inside it
    pub snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't')]
    pub target: PathBuf,
}

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
    let cli = match Cli::try_parse() {
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
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return exit::OK;
                }
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
