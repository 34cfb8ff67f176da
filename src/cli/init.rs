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
    /// Chunk sizes MIN,AVG,MAX in bytes for dumps and text files (default 8192,16384,65536)
    #[arg(long, hide = true, value_name = "MIN,AVG,MAX")]
    pub chunker_small: Option<String>,
    /// Chunk sizes MIN,AVG,MAX in bytes for everything else (default 524288,1048576,8388608)
    #[arg(long, hide = true, value_name = "MIN,AVG,MAX")]
    pub chunker_large: Option<String>,
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
    let mut chunker = cellar::repofile::ChunkerConfig::default();
    for (arg, slot) in [
        (&a.chunker_small, &mut chunker.small),
        (&a.chunker_large, &mut chunker.large),
    ] {
        if let Some(spec) = arg {
            let v: Vec<u32> = spec
                .split(',')
                .map(|x| x.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|_| anyhow::anyhow!("chunker sizes {spec:?}: expected MIN,AVG,MAX"))?;
            let [min, avg, max] = v[..] else {
                bail!("chunker sizes {spec:?}: expected MIN,AVG,MAX");
            };
            *slot = cellar::repofile::ChunkerParams { min, avg, max };
            slot.validate()?;
        }
    }
    let opts = InitOptions {
        chunker,
        kdf: kdf_params(&a.kdf),
        compression_level: a.compression_level,
        pack_size: a.pack_size_mib << 20,
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
