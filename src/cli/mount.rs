//! `cellar mount DIR`: every snapshot as a read-only directory tree (FUSE), in
//! the foreground until Ctrl-C, SIGTERM or `umount DIR`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;

#[derive(Args, Debug)]
#[cfg_attr(not(all(feature = "fuse", target_os = "linux")), allow(dead_code))]
pub struct MountArgs {
    /// An existing, empty directory to mount the repository on
    pub mountpoint: PathBuf,
    /// Let other users in; the snapshot's own permissions then apply to them
    #[arg(long)]
    pub allow_other: bool,
    /// Re-read the snapshot list at most this often (seconds)
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub refresh: u64,
}

#[cfg(all(feature = "fuse", target_os = "linux"))]
pub fn run(g: &GlobalArgs, a: MountArgs) -> Result<i32> {
    use std::sync::Arc;
    use std::time::Duration;

    use anyhow::Context;
    use cellar::mount::{MountOptions, Unmounted, mount, unavailable};

    use super::common::open_repo;

    // Say why before asking for a password.
    if let Some(why) = unavailable() {
        anyhow::bail!("mount: FUSE is not available here: {why}");
    }
    let meta = std::fs::metadata(&a.mountpoint)
        .with_context(|| format!("mount point {}", a.mountpoint.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("mount point {}: not a directory", a.mountpoint.display());
    }
    let repo = Arc::new(open_repo(g)?);
    // A shared lock: prune then keeps the packs this mount may read.
    let lock = cellar::lock::lock(&repo, false)?;
    let opts = MountOptions {
        allow_other: a.allow_other,
        refresh: Duration::from_secs(a.refresh),
        ..MountOptions::default()
    };
    let mounted = mount(repo, &a.mountpoint, &opts)?;
    if !g.quiet {
        eprintln!(
            "mounted at {}: snapshots/, ids/, hosts/; Ctrl-C or `umount {}` to stop",
            a.mountpoint.display(),
            a.mountpoint.display()
        );
    }
    while !cellar::cancel::is_interrupted() && !mounted.finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Unmounted::Detached(m) = mounted.unmount()? {
        if !g.quiet {
            eprintln!(
                "{} is busy: detached it; open files stay readable until closed \
                 (Ctrl-C again to stop at once)",
                a.mountpoint.display()
            );
        }
        while !m.finished() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    drop(lock);
    if !g.quiet {
        eprintln!("unmounted {}", a.mountpoint.display());
    }
    Ok(super::exit::OK)
}

#[cfg(not(all(feature = "fuse", target_os = "linux")))]
pub fn run(_g: &GlobalArgs, _a: MountArgs) -> Result<i32> {
    anyhow::bail!(
        "mount: this cellar was built without FUSE support (cargo feature `fuse`, Linux only)"
    )
}
