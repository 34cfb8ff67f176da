//! cellar: a content-addressed, deduplicating, encrypted snapshot repository.
//!
//! The modules follow the backup pipeline: [`archiver`] walks and reads,
//! [`chunker`] cuts, [`crypto`] hashes and seals, [`packer`] and [`pack`] group
//! blobs into pack files, [`index`] records where they went, and a [`backend`]
//! stores the files. [`restorer`] reads them back. The on-disk format is
//! specified in format-spec/.

pub mod archiver;
pub mod backend;
pub mod browse;
pub mod cancel;
pub mod catalog;
pub mod check;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod dump;
pub mod error;
pub mod fault;
pub mod forget;
pub mod fsmeta;
pub mod hooks;
pub mod id;
pub mod index;
pub mod lock;
pub mod marks;
#[cfg(all(feature = "fuse", target_os = "linux"))]
pub mod mount;
pub mod pack;
pub mod packer;
pub mod profile;
pub mod prune;
pub mod repair;
pub mod repofile;
pub mod repository;
pub mod restorer;
pub mod runner;
pub mod selector;
pub mod sqlite;
pub mod stats;
pub mod tree;
pub mod treepacks;
pub mod wire;

pub use error::{Error, Result};
pub use repository::Repository;
