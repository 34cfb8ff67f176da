//! Integration tests of the cellar binary (and, where a test needs a repository
//! no honest backup would produce, of the library). One test binary, so the
//! 200 MiB fixture is generated once per run and shared.
//!
//! - `util`       helpers: temp dirs, the `Cellar` command builder, `TestRepo`,
//!   pseudo-random data, tree scanning and comparison.
//! - `roundtrip`  backup then restore reproduces contents and metadata exactly.
//! - `dedup`      identical data is stored once; an insertion re-stores few chunks.
//! - `keys`       passwords: wrong password, several keys, changing, removing.
//! - `corruption` a damaged pack fails the restore of exactly what it holds.
//! - `hostile`    malicious trees and targets cannot write outside the target.
//! - `cache`      the local cache is disposable.
//! - `check`      damaged repositories: check names snapshots and paths; repairs.
//! - `cli`        version, shell completion from the cache, saved repositories,
//!   man pages, help examples, output shapes.
//! - `prune`      forget policies, two-phase prune, crash and concurrency safety.
//! - `errors`     exit codes for missing repositories, locks, unreadable sources.
//! - `backup_opts` excludes, incrementals, dry runs, Ctrl-C.
//! - `browse`     find/history over 50 snapshots, @TIME selectors, diff, ls, dump, incremental restore.
//! - `mount`      FUSE: every snapshot read by ordinary tools (ignored without /dev/fuse).
//! - `sqldump`    command streams and night-to-night dedup of SQL dumps.
//! - `backend`    one conformance suite for the local and the S3 backend.
//! - `s3`         S3 round trip, init inside its prefix, credentials, a killed
//!   server, a fault-injecting proxy (helpers and the s3s-fs server in `s3util`).
//! - `profiles`   `cellar run`: hook order, failing and hanging hooks, failing
//!   dumps, config errors with file and line, the shipped examples.
//! - `mariadb`    a real MariaDB: profile with a dump stream, restore into a
//!   fresh database, same CHECKSUM TABLE (skipped without MariaDB unless CI).

mod backend;
mod backup_opts;
mod browse;
mod cache;
mod check;
mod cli;
mod corruption;
mod dedup;
mod errors;
mod hostile;
mod keys;
mod mariadb;
mod mount;
mod profiles;
mod prune;
mod roundtrip;
mod s3;
mod s3util;
mod sqldump;
mod util;
