//! Build facts for `cellar version`: git commit, build date, target triple,
//! compiler and enabled features, handed to the binary as `CELLAR_BUILD_*`
//! environment variables. Every fact has a fallback ("unknown"): a source
//! tarball without git or a missing `rustc` must still build.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Civil date (UTC) of a Unix time, without a date crate in the build.
fn ymd(secs: u64) -> String {
    // Howard Hinnant's days-to-civil.
    let z = (secs / 86400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let commit = run("git", &["rev-parse", "--short=12", "HEAD"]);
    // Release builds follow the checked-out commit. Dev builds keep the commit
    // of their first build: re-running on every commit would recompile the
    // whole package for everyone sharing the target directory.
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        if let Some(git_dir) = run("git", &["rev-parse", "--git-dir"]) {
            let git_dir = PathBuf::from(git_dir);
            println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
            if let Some(r) = run("git", &["symbolic-ref", "-q", "HEAD"]) {
                println!("cargo:rerun-if-changed={}", git_dir.join(r).display());
            }
        }
    }
    println!(
        "cargo:rustc-env=CELLAR_BUILD_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );

    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=CELLAR_BUILD_DATE={}", ymd(now));

    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=CELLAR_BUILD_TARGET={target}");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CELLAR_BUILD_RUSTC={version}");

    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=CELLAR_BUILD_PROFILE={profile}");

    // Cargo features of this build (CARGO_FEATURE_<NAME>), lower-case, sorted.
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_string))
        .map(|f| f.to_lowercase().replace('_', "-"))
        .collect();
    features.sort();
    fuse_probe();
    println!(
        "cargo:rustc-env=CELLAR_BUILD_FEATURES={}",
        features.join(",")
    );
}

/// Whether this machine can mount FUSE file systems, for the tests only:
/// `cfg(cellar_fuse_usable)` lets the mount test run, and without it the test
/// is reported as ignored rather than passed. Usable means /dev/fuse opens for
/// reading and writing, and either we may mount(2) ourselves (CAP_SYS_ADMIN)
/// or a fusermount helper is on PATH.
fn fuse_probe() {
    println!("cargo::rustc-check-cfg=cfg(cellar_fuse_usable)");
    println!("cargo:rerun-if-changed=/dev/fuse");
    if std::env::var_os("CARGO_FEATURE_FUSE").is_none()
        || std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    if let Err(e) = device {
        println!(
            "cargo:warning=FUSE is not usable here (/dev/fuse: {e}): the mount test will be reported as ignored"
        );
        return;
    }
    const CAP_SYS_ADMIN: u32 = 21;
    let may_mount = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0);
    let helper = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|d| d.join("fusermount3").exists() || d.join("fusermount").exists())
    });
    if may_mount || helper {
        println!("cargo:rustc-cfg=cellar_fuse_usable");
    } else {
        println!(
            "cargo:warning=FUSE is not usable here (no CAP_SYS_ADMIN and no fusermount): the mount test will be reported as ignored"
        );
    }
}
