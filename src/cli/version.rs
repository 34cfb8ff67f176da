//! `cellar version`: what this binary is (version, git commit, build date,
//! target, compiler, features), for bug reports and fleet inventories.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::{GlobalArgs, exit};

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  cellar version
  cellar version --json | jq -r .commit")]
pub struct VersionArgs {}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("CELLAR_BUILD_COMMIT");
pub const DATE: &str = env!("CELLAR_BUILD_DATE");
pub const TARGET: &str = env!("CELLAR_BUILD_TARGET");
pub const RUSTC: &str = env!("CELLAR_BUILD_RUSTC");
pub const PROFILE: &str = env!("CELLAR_BUILD_PROFILE");

/// Optional capabilities and whether this build has them. S3 is always built
/// in; the others are Cargo features of the same name.
pub fn features() -> Vec<(&'static str, bool)> {
    let cargo: Vec<&str> = env!("CELLAR_BUILD_FEATURES")
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    vec![
        ("s3", true),
        ("mount", cargo.contains(&"mount")),
        ("keyring", cargo.contains(&"keyring")),
    ]
}

pub fn run(g: &GlobalArgs, _a: VersionArgs) -> Result<i32> {
    let feats = features();
    if g.json {
        let f: serde_json::Map<String, serde_json::Value> = feats
            .iter()
            .map(|(n, on)| (n.to_string(), json!(on)))
            .collect();
        let v = json!({
            "version": VERSION,
            "commit": COMMIT,
            "build_date": DATE,
            "target": TARGET,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "rustc": RUSTC,
            "profile": PROFILE,
            "features": f,
        });
        println!("{}", serde_json::to_string(&v)?);
        return Ok(exit::OK);
    }
    let shown: Vec<String> = feats
        .iter()
        .map(|(n, on)| format!("{}{n}", if *on { '+' } else { '-' }))
        .collect();
    println!("cellar {VERSION}");
    println!("commit:    {COMMIT}");
    println!("built:     {DATE} ({PROFILE})");
    println!(
        "target:    {TARGET} ({}/{})",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!("compiler:  {RUSTC}");
    println!("features:  {}", shown.join(" "));
    Ok(exit::OK)
}
