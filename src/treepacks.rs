//! Tree blobs fetched a run of a pack at a time, for backends where each request
//! has a latency of its own ([`Properties::cheap_ranged_reads`] false: S3).
//!
//! A walk over a snapshot (restore, check, dump, diff, ls/find, prune) loads
//! every tree once. With one ranged GET per tree, the walk costs a round trip
//! per directory, and on S3 that round trip, not the bytes, is the time: 2,000
//! directories took 30 s to walk where a local disk takes a fraction of a
//! second. The packer writes trees into packs of their own, so the tree blobs of
//! a pack sit side by side: one GET for the run they form serves all of them.
//!
//! Memory: fetched runs are kept sealed (compressed and encrypted, as stored)
//! in a least-recently-used cache of at most [`CACHE_BYTES`]; each blob is
//! opened and verified when it is asked for, as a single read would. A run is
//! at most [`MAX_RUN`] long, so a few runs fit and a walk that moves between
//! tree packs does not refetch the one it just left; a blob larger than that is
//! a run of its own (no larger than a single read of it would be). A run
//! evicted while still being fetched lives on until its waiters are done, so
//! at worst the cache holds its cap plus one run per walking thread.
//!
//! [`Properties::cheap_ranged_reads`]: crate::backend::Properties::cheap_ranged_reads

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::id::PackId;
use crate::pack::BlobEntry;

/// Longest run fetched in one request: a default-size tree pack (16 MiB) is one
/// run, a larger one a few.
pub const MAX_RUN: u64 = 16 << 20;
/// Bytes between two tree blobs (data blobs, in a pack that holds both, e.g.
/// one written by an older version) still read rather than split into two
/// requests: about what a request's latency costs in transfer time.
pub const MAX_GAP: u64 = 256 << 10;
/// Sealed run bytes kept: four full runs.
pub const CACHE_BYTES: u64 = 4 * MAX_RUN;
/// Packs whose run layout is remembered; past this the layouts are forgotten
/// (and recomputed from the index cache on demand) so memory stays bounded.
const MAX_LAYOUTS: usize = 1 << 16;

/// The byte range `start..end` of a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64,
}

impl Run {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    fn holds(&self, e: &BlobEntry) -> bool {
        let (o, end) = span(e);
        o >= self.start && end <= self.end
    }
}

fn span(e: &BlobEntry) -> (u64, u64) {
    let o = e.offset as u64;
    (o, o + e.stored_len as u64)
}

/// Cuts the blobs of a pack into runs, by offset: a blob joins the run before
/// it when the gap between them is at most `max_gap` and the run stays within
/// `max_len`. Entries come from the index and may overlap or be unsorted in a
/// damaged repository; the runs are sorted and disjoint whatever they are.
pub fn plan_runs(entries: &[BlobEntry], max_gap: u64, max_len: u64) -> Vec<Run> {
    let mut spans: Vec<(u64, u64)> = entries.iter().map(span).collect();
    spans.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    for (o, end) in spans {
        match runs.last_mut() {
            Some(r)
                if o <= r.end.saturating_add(max_gap) && end.max(r.end) - r.start <= max_len =>
            {
                r.end = r.end.max(end);
            }
            // Overlapping a run that is full: start after it so runs stay disjoint
            // (the blob then falls outside every run and is read on its own).
            Some(r) if o < r.end => {}
            _ => runs.push(Run { start: o, end }),
        }
    }
    runs
}

/// The run that holds all of `e`, if any.
pub fn find_run(runs: &[Run], e: &BlobEntry) -> Option<Run> {
    let (o, _) = span(e);
    let i = runs.partition_point(|r| r.start <= o);
    let r = *runs.get(i.checked_sub(1)?)?;
    r.holds(e).then_some(r)
}

struct Slot {
    len: u64,
    last_used: u64,
    /// Filled once by the thread that fetches; others asking meanwhile wait
    /// for it rather than fetching the same run again. None: the fetch failed.
    bytes: Arc<OnceLock<Option<Arc<Vec<u8>>>>>,
}

#[derive(Default)]
struct State {
    runs: HashMap<(PackId, u64), Slot>,
    used: u64,
    tick: u64,
    layouts: HashMap<PackId, Arc<Vec<Run>>>,
}

/// Fetched runs of tree packs (see the module documentation).
pub struct TreeRuns {
    cap: u64,
    state: Mutex<State>,
    fetches: AtomicU64,
}

impl Default for TreeRuns {
    fn default() -> Self {
        TreeRuns::new(CACHE_BYTES)
    }
}

impl TreeRuns {
    pub fn new(cap: u64) -> Self {
        TreeRuns {
            cap,
            state: Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// Runs fetched so far (for tests and statistics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run layout of `pack`, computed by `plan` the first time.
    pub fn layout<E>(
        &self,
        pack: PackId,
        plan: impl FnOnce() -> Result<Vec<Run>, E>,
    ) -> Result<Arc<Vec<Run>>, E> {
        if let Some(l) = self.lock().layouts.get(&pack) {
            return Ok(l.clone());
        }
        let l = Arc::new(plan()?);
        let mut st = self.lock();
        if st.layouts.len() >= MAX_LAYOUTS {
            st.layouts.clear();
        }
        st.layouts.insert(pack, l.clone());
        Ok(l)
    }

    /// The bytes of `run` of `pack`, fetched with `fetch` unless cached. None
    /// when the fetch failed: the caller reads the blob it wanted on its own,
    /// which reports the error as a single read would (or succeeds, when what
    /// failed was another blob of the run, e.g. one past the end of a short pack).
    pub fn get<E>(
        &self,
        pack: PackId,
        run: Run,
        fetch: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Option<Arc<Vec<u8>>> {
        let len = run.len();
        let fetch = || {
            self.fetches.fetch_add(1, Ordering::Relaxed);
            fetch().ok().filter(|b| b.len() as u64 == len).map(Arc::new)
        };
        if len > self.cap {
            return fetch();
        }
        let key = (pack, run.start);
        let cell = {
            let mut st = self.lock();
            st.tick += 1;
            let tick = st.tick;
            match st.runs.get_mut(&key) {
                Some(s) if s.len == len => {
                    s.last_used = tick;
                    s.bytes.clone()
                }
                _ => {
                    if let Some(old) = st.runs.remove(&key) {
                        st.used -= old.len;
                    }
                    while st.used + len > self.cap {
                        let Some(oldest) = st
                            .runs
                            .iter()
                            .min_by_key(|(_, s)| s.last_used)
                            .map(|(k, _)| *k)
                        else {
                            break;
                        };
                        // A run still being fetched stays alive for whoever waits on it.
                        let s = st.runs.remove(&oldest).expect("just found");
                        st.used -= s.len;
                    }
                    let cell = Arc::new(OnceLock::new());
                    st.runs.insert(
                        key,
                        Slot {
                            len,
                            last_used: tick,
                            bytes: cell.clone(),
                        },
                    );
                    st.used += len;
                    cell
                }
            }
        };
        let bytes = cell.get_or_init(fetch).clone();
        if bytes.is_none() {
            // Not kept: the next ask tries again.
            let mut st = self.lock();
            if st
                .runs
                .get(&key)
                .is_some_and(|s| Arc::ptr_eq(&s.bytes, &cell))
            {
                let s = st.runs.remove(&key).expect("just found");
                st.used -= s.len;
            }
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;

    fn e(offset: u32, stored_len: u32) -> BlobEntry {
        BlobEntry {
            id: BlobId([offset as u8; 32]),
            blob_type: crate::pack::TYPE_TREE,
            compression: 0,
            offset,
            stored_len,
            raw_len: 0,
        }
    }

    #[test]
    fn adjacent_blobs_make_one_run() {
        let blobs: Vec<_> = (0..100).map(|i| e(i * 100, 100)).collect();
        let runs = plan_runs(&blobs, MAX_GAP, MAX_RUN);
        assert_eq!(
            runs,
            vec![Run {
                start: 0,
                end: 10_000
            }]
        );
        for b in &blobs {
            assert_eq!(find_run(&runs, b), Some(runs[0]));
        }
    }

    #[test]
    fn gaps_and_length_split_runs() {
        // 0..100, gap of 50, 150..250, gap of 1000, 1250..1350, then a blob that
        // would make the run longer than 300.
        let blobs = vec![e(150, 100), e(0, 100), e(1250, 100), e(1350, 250)];
        let runs = plan_runs(&blobs, 100, 300);
        assert_eq!(
            runs,
            vec![
                Run { start: 0, end: 250 },
                Run {
                    start: 1250,
                    end: 1350
                },
                Run {
                    start: 1350,
                    end: 1600
                },
            ]
        );
        assert_eq!(find_run(&runs, &e(150, 100)), Some(runs[0]));
        assert_eq!(find_run(&runs, &e(1350, 250)), Some(runs[2]));
        // Not a planned blob, or only partly inside a run.
        assert_eq!(find_run(&runs, &e(900, 10)), None);
        assert_eq!(find_run(&runs, &e(200, 100)), None);
    }

    #[test]
    fn a_blob_larger_than_a_run_is_its_own_run() {
        let runs = plan_runs(&[e(0, 10), e(10, 1000), e(1010, 10)], 0, 100);
        assert_eq!(runs.len(), 3);
        assert_eq!(
            find_run(&runs, &e(10, 1000)),
            Some(Run {
                start: 10,
                end: 1010
            })
        );
    }

    #[test]
    fn overlapping_entries_give_disjoint_runs() {
        let blobs = vec![e(0, 100), e(50, 100), e(60, 1000), e(2000, 10)];
        let runs = plan_runs(&blobs, 0, 200);
        for w in runs.windows(2) {
            assert!(w[0].end <= w[1].start, "{runs:?}");
        }
        assert_eq!(find_run(&runs, &e(60, 1000)), None);
    }

    #[test]
    fn cache_fetches_once_and_stays_within_its_cap() {
        let c = TreeRuns::new(250);
        let p = PackId([1; 32]);
        let r = |s: u64| Run {
            start: s,
            end: s + 100,
        };
        let fetch = || Ok::<_, ()>(vec![7u8; 100]);
        assert!(c.get(p, r(0), fetch).is_some());
        assert!(c.get(p, r(0), fetch).is_some());
        assert_eq!(c.fetches(), 1);
        c.get(p, r(100), fetch);
        c.get(p, r(0), fetch);
        // A third run evicts the least recently used one (100), not 0.
        c.get(p, r(200), fetch);
        assert_eq!(c.fetches(), 3);
        assert!(c.lock().used <= 250);
        c.get(p, r(0), fetch);
        assert_eq!(c.fetches(), 3);
        c.get(p, r(100), fetch);
        assert_eq!(c.fetches(), 4);
        // A failed or short fetch is not kept.
        assert!(c.get(p, r(500), || Err::<Vec<u8>, _>(())).is_none());
        assert!(c.get(p, r(600), || Ok::<_, ()>(vec![0; 3])).is_none());
        assert!(c.get(p, r(500), fetch).is_some());
        // Larger than the whole cache: fetched, not kept.
        let big = Run {
            start: 0,
            end: 1000,
        };
        assert!(c.get(p, big, || Ok::<_, ()>(vec![0; 1000])).is_some());
        assert!(c.lock().used <= 250);
    }
}
