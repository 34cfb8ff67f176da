//! The shell commands of a profile: hooks (`sh -c`, in their own process
//! group, killed as a group at their timeout so a `systemctl` that hangs or a
//! script's background children cannot outlive it) and dump commands whose
//! output becomes a stream of the snapshot.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::archiver::StreamSource;
use crate::error::{Error, Result};

/// After SIGTERM, how long a timed-out hook's group gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    }
}

fn kill_group(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let until = Instant::now() + TERM_GRACE;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            // The shell is gone; its children may not be.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(POLL);
    }
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Runs one hook: `sh -c command` with `env` added, standard input empty and
/// standard output sent to standard error (stdout belongs to `--json`).
/// `cancellable`: a Ctrl-C stops it (not for hooks that clean up, such as
/// `finally`, which must run even then).
pub fn run_hook(
    what: &str,
    command: &str,
    timeout: Duration,
    env: &[(&str, String)],
    cancellable: bool,
) -> Result<()> {
    let fail = |m: String| Error::Other(format!("{what} hook `{command}` {m}"));
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("could not start: {e}")))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(fail(describe(st))),
            Ok(None) => {}
            Err(e) => return Err(fail(format!("could not be waited for: {e}"))),
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            return Err(fail(format!(
                "timed out after {}s and was killed",
                timeout.as_secs()
            )));
        }
        if cancellable && crate::cancel::is_interrupted() {
            kill_group(&mut child);
            return Err(Error::Interrupted);
        }
        std::thread::sleep(POLL);
    }
}

/// Starts `sh -c command` and returns its standard output as the stream
/// `/name`. Its standard error is kept (the last 64 KiB) and shown through
/// `warn` when it fails, or always unless `quiet`; a non-zero exit, a signal or
/// a failure to start fails the backup, so no snapshot is saved.
pub fn command_stream(
    name: &str,
    command: &str,
    quiet: bool,
    warn: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
) -> Result<StreamSource> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Other(format!("starting the command for /{name}: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
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
    let shown = crate::profile::redact(command);
    let finish = Box::new(move || -> Result<()> {
        let status = child.wait();
        let tail = err_thread.join().unwrap_or_default();
        let failed = !matches!(&status, Ok(s) if s.success());
        if !tail.is_empty() && (failed || !quiet) {
            for line in String::from_utf8_lossy(&tail).lines() {
                warn(&format!("/{name_s}: {line}"));
            }
        }
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(Error::Other(format!(
                "command for /{name_s} {}: {shown} (no snapshot saved)",
                describe(s)
            ))),
            Err(e) => Err(Error::Other(format!("command for /{name_s}: {e}"))),
        }
    });
    Ok(StreamSource {
        name: name.to_string(),
        reader: Box::new(stdout),
        finish: Some(finish),
    })
}
