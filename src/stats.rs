//! Repository statistics: what the snapshots would restore to, what is stored
//! once after deduplication and compression, and what prune would reclaim.

use serde::Serialize;

use crate::error::Result;
use crate::id::SnapshotId;
use crate::repository::Repository;

#[derive(Clone, Debug, Serialize)]
pub struct SnapshotStats {
    pub id: String,
    pub time: String,
    pub hostname: String,
    /// Bytes of the files in the snapshot (from its summary).
    pub restore_size: u64,
    /// Stored bytes this snapshot added when it was taken (`data_added_packed`).
    pub new_bytes_stored: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub snapshots: u64,
    /// Sum of the snapshots' file bytes: what restoring every one would write.
    pub restore_size: u64,
    /// Blobs the snapshots reference, one copy each.
    pub blobs: u64,
    /// Their uncompressed and stored (compressed, encrypted) bytes.
    pub unique_raw_size: u64,
    pub unique_stored_size: u64,
    /// unique_raw_size / unique_stored_size.
    pub compression_ratio: f64,
    /// restore_size / unique_raw_size.
    pub dedup_ratio: f64,
    pub packs: u64,
    pub pack_bytes: u64,
    /// Bytes a full prune (after its grace period) would free: pack bytes not
    /// holding a referenced blob.
    pub reclaimable_bytes: u64,
    pub per_snapshot: Vec<SnapshotStats>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Statistics of the whole repository, or of one snapshot (then the unique
/// sizes are those of the blobs it references).
pub fn stats(repo: &Repository, only: Option<SnapshotId>) -> Result<Stats> {
    let a = crate::prune::analyze_roots(repo, only)?;
    let (blobs, stored) = a.used()?;
    let raw = a.used_raw()?;
    let (packs, pack_bytes) = a.pack_totals()?;
    let reclaimable = if only.is_none() {
        a.reclaimable()?
    } else {
        crate::prune::analyze(repo)?.reclaimable()?
    };
    let mut per = Vec::new();
    for (id, s) in repo.snapshots()? {
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let sum = s.summary.clone().unwrap_or_default();
        per.push(SnapshotStats {
            id: id.to_hex(),
            time: s.time.clone(),
            hostname: s.hostname.clone(),
            restore_size: sum.total_bytes,
            new_bytes_stored: sum.data_added_packed,
        });
    }
    let restore: u64 = per.iter().map(|p| p.restore_size).sum();
    Ok(Stats {
        snapshots: per.len() as u64,
        restore_size: restore,
        blobs,
        unique_raw_size: raw,
        unique_stored_size: stored,
        compression_ratio: ratio(raw, stored),
        dedup_ratio: ratio(restore, raw),
        packs,
        pack_bytes,
        reclaimable_bytes: reclaimable,
        per_snapshot: per,
    })
}
