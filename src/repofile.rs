//! The small JSON objects of a repository: config, key files, snapshots, locks.
//! Their layouts are specified in format-spec/03-objects.md.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const FORMAT_VERSION: u32 = 1;

pub const MAX_CONFIG: usize = 1 << 20;
pub const MAX_KEYFILE: usize = 64 << 10;
pub const MAX_SNAPSHOT: usize = 64 << 20;
pub const MAX_LOCK: usize = 64 << 10;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&(self.min as usize))
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&(self.avg as usize))
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&(self.max as usize))
            && self.min < self.avg
            && self.avg < self.max
            && self.min % 2 == 0
            && self.avg % 2 == 0
            && self.max % 2 == 0;
        if !ok {
            return Err(Error::format(
                "config",
                format!("chunker parameters out of bounds: {self:?}"),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChunkerConfig {
    /// For media and other large binary files: few blobs, a small index.
    pub large: ChunkerParams,
    /// For SQL dumps and text: a changed row touches one small chunk.
    pub small: ChunkerParams,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        ChunkerConfig {
            large: ChunkerParams {
                min: 512 << 10,
                avg: 1 << 20,
                max: 8 << 20,
            },
            small: ChunkerParams {
                min: 4 << 10,
                avg: 8 << 10,
                max: 32 << 10,
            },
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub id: String,
    pub created: String,
    pub chunker: ChunkerConfig,
    pub compression: CompressionConfig,
    pub pack_size: u32,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "repository",
                version: self.version as u64,
            });
        }
        crate::id::RepoId::from_hex(&self.id)?;
        self.chunker.large.validate()?;
        self.chunker.small.validate()?;
        if self.compression.algorithm != "zstd" || !(0..=22).contains(&self.compression.level) {
            return Err(Error::format(
                "config",
                format!("unsupported compression {:?}", self.compression),
            ));
        }
        if !(1 << 20..=512 << 20).contains(&self.pack_size) {
            return Err(Error::format(
                "config",
                format!("pack size {} out of bounds", self.pack_size),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfJson {
    pub algorithm: String,
    pub version: u32,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    pub kdf: KdfJson,
    pub master_key: String,
    pub meta: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMeta {
    pub created: String,
    pub hostname: String,
    pub username: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    pub data_blobs_added: u64,
    pub tree_blobs_added: u64,
    pub data_added: u64,
    pub data_added_packed: u64,
    pub total_files: u64,
    pub total_bytes: u64,
    pub duration_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotChunker {
    pub large: ChunkerParams,
    pub small: ChunkerParams,
    pub rule: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub time: String,
    pub tree: String,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parent: Option<String>,
    pub program: String,
    pub chunker: SnapshotChunker,
    #[serde(default)]
    pub summary: Option<Summary>,
}

impl Snapshot {
    pub fn validate(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "snapshot",
                version: self.version as u64,
            });
        }
        crate::id::BlobId::from_hex(&self.tree)?;
        self.time
            .parse::<jiff::Timestamp>()
            .map_err(|e| Error::format("snapshot", format!("time {:?}: {e}", self.time)))?;
        Ok(())
    }

    pub fn timestamp(&self) -> jiff::Timestamp {
        self.time.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    pub time: String,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    pub exclusive: bool,
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub fn username() -> String {
    std::env::var("USER")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let uid = unsafe { libc::getuid() };
            crate::fsmeta::user_name(uid).unwrap_or_else(|| uid.to_string())
        })
}

pub fn now_rfc3339() -> String {
    jiff::Zoned::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.9f%:z")
        .to_string()
}
