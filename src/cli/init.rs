//! `cellar init`: create a repository at an empty location.

use anyhow::{Result, bail};
use cellar::repository::{self, InitOptions};
use clap::Args;
use serde_json::json;

use super::common::{KdfArgs, kdf_params, password_source, repo_location};
use super::{GlobalArgs, exit};

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

pub fn run(g: &GlobalArgs, a: InitArgs) -> Result<i32> {
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
