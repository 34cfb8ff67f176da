//! Blob locations: the repository's index segments (the truth) and the local
//! SQLite cache built from them (fast lookups with memory that does not grow with
//! the repository).

pub mod cache;
pub mod segment;

pub use cache::Cache;
pub use segment::{PackIndex, Segment};
