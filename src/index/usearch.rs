//! `VectorIndex` over usearch 2.26 (C++ HNSW, SIMD kernels from NumKong picked at run time).
//!
//! usearch's pitfalls, each handled here:
//! - capacity must be reserved before adds, and `reserve` needs exclusive access: `shape` is
//!   read-locked by adds and searches and write-locked by a reserve (which doubles capacity);
//! - every add and search needs one of a fixed number of thread slots, or fails: `slots` is a
//!   counting gate sized to the slots reserved, so callers wait instead of failing;
//! - capacity checks race: two inserts that each fit alone overflow together, and usearch then
//!   refuses adds; `pending` counts the slots promised to inserts under way, under one mutex;
//! - the search breadth (`expansion_search`) is index-wide and changing it needs exclusive
//!   access: it stays at the collection's ef, and a search wanting more asks for `max(k, ef)`
//!   results (usearch's breadth is at least the count asked for) and keeps the first `k`;
//! - concurrent adds strand points: after a build from two threads, a point or a few in 1,500
//!   (1 in 20,000) had no inbound link and could not be found even by its own vector at ef 400,
//!   where adds one at a time left none stranded (tests/graph_reach.rs; the cause of the crash
//!   stress's "not at rank 1 by its own vector"): adds and removes take `mutating`, one at a time;
//! - `remove` of a key it does not hold reports 0 and changes nothing, and an add after it
//!   brings the key in: the key list is written only after an add succeeded, `remove` reports
//!   what it removed, and callers never remove a key whose add may be in flight (engine);
//! - NaN is accepted silently: vectors are validated before they get here (`prepare_vector`);
//! - a panic inside a filter predicate aborts the process: predicates are panic-free (engine).

use std::path::Path;

use parking_lot::{Condvar, Mutex, RwLock};
use roaring::RoaringTreemap;
use ::usearch::ffi::{IndexOptions, MetricKind, ScalarKind};
use ::usearch::Index;

use super::{distance_from_dot, Hit, IndexError, VectorIndex};
use crate::domain::{HnswParams, Metric, PointId};

/// The graph file in a dump; `POINTS_FILE` lists its keys (usearch cannot enumerate them).
pub const GRAPH_FILE: &str = "graph.usearch";
pub const POINTS_FILE: &str = "points.roaring";

/// Scalar kind of the stored vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    F32,
    F16,
    I8,
}

impl Quantization {
    fn kind(self) -> ScalarKind {
        match self {
            Quantization::F32 => ScalarKind::F32,
            Quantization::F16 => ScalarKind::F16,
            Quantization::I8 => ScalarKind::I8,
        }
    }
}

pub struct UsearchIndex {
    index: Index,
    metric: Metric,
    /// Read: adds and searches. Write: `reserve`.
    shape: RwLock<()>,
    /// The index-wide `expansion_search`, set once (searches wanting more ask for more results).
    ef_search: usize,
    slots: Slots,
    /// Keys usearch holds (an add lands here after it succeeded).
    points: Mutex<RoaringTreemap>,
    /// Slots promised to inserts under way (see `reserve`).
    pending: Mutex<usize>,
    /// Held by every add and remove: usearch's concurrent adds strand points (module docs).
    mutating: Mutex<()>,
}

/// A counting gate over usearch's thread slots.
struct Slots {
    free: Mutex<usize>,
    released: Condvar,
}

impl Slots {
    fn take(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.released.wait(&mut free);
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.released.notify_one();
    }
}

/// Thread slots reserved in usearch: every core for builds, plus room for concurrent searches.
fn slot_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 4).max(16)
}

fn err<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> IndexError + '_ {
    move |e| IndexError::InvalidParams(format!("usearch {context}: {e}"))
}

impl UsearchIndex {
    pub fn new(metric: Metric, dims: usize, params: &HnswParams, quantization: Quantization, expected_points: usize) -> Result<Self, IndexError> {
        if quantization != Quantization::F32 && metric != Metric::Cosine {
            // i8 maps [-1, 1] to [-127, 127] and f16 overflows above 65504: only unit vectors fit.
            return Err(IndexError::InvalidParams("f16 and i8 vectors need the cosine metric (unit vectors)".into()));
        }
        let options = IndexOptions {
            dimensions: dims,
            // Cosine vectors arrive normalized: the inner product is the cosine, without norms.
            metric: match metric {
                Metric::Cosine | Metric::Dot => MetricKind::IP,
                Metric::L2 => MetricKind::L2sq,
            },
            quantization: quantization.kind(),
            connectivity: params.m,
            expansion_add: params.ef_construction,
            expansion_search: params.ef_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(err("create"))?;
        let slots = slot_count();
        index.reserve_capacity_and_threads(expected_points.max(64), slots).map_err(err("reserve"))?;
        Ok(Self::wrap(index, metric, params.ef_search, slots, RoaringTreemap::new()))
    }

    fn wrap(index: Index, metric: Metric, ef: usize, slots: usize, points: RoaringTreemap) -> Self {
        UsearchIndex {
            index,
            metric,
            shape: RwLock::new(()),
            ef_search: ef,
            slots: Slots { free: Mutex::new(slots), released: Condvar::new() },
            points: Mutex::new(points),
            pending: Mutex::new(0),
            mutating: Mutex::new(()),
        }
    }

    /// Loads a dump written by `dump_into` (files already checked against the manifest).
    pub fn load(dir: &Path, metric: Metric, ef_search: usize) -> Result<Self, IndexError> {
        let bad = |reason: String| IndexError::BadDump { path: dir.to_owned(), reason };
        let graph = dir.join(GRAPH_FILE);
        let graph = graph.to_str().ok_or_else(|| bad("path is not UTF-8".into()))?;
        let index = Index::restore(graph).map_err(|e| bad(format!("usearch: {e}")))?;
        let bytes = std::fs::read(dir.join(POINTS_FILE)).map_err(|e| bad(format!("{POINTS_FILE}: {e}")))?;
        let points = RoaringTreemap::deserialize_from(&bytes[..]).map_err(|e| bad(format!("{POINTS_FILE}: {e}")))?;
        let slots = slot_count();
        index.reserve_capacity_and_threads(index.size().max(64), slots).map_err(|e| bad(format!("usearch reserve: {e}")))?;
        index.change_expansion_search(ef_search);
        let loaded = Self::wrap(index, metric, ef_search, slots, points);
        loaded.check().map_err(bad)?;
        Ok(loaded)
    }

    /// Makes room for `more` points, doubling the capacity so reserves stay rare, and promises
    /// them to the caller until `release`. Checked and promised under one mutex: two inserts that
    /// each fit alone could overflow together, and usearch refuses adds past its capacity.
    fn reserve(&self, more: usize) -> Result<(), IndexError> {
        let mut pending = self.pending.lock();
        let needed = self.index.size() + *pending + more;
        let capacity = self.index.capacity();
        if needed > capacity {
            let _exclusive = self.shape.write();
            self.index.reserve_capacity_and_threads(needed.max(capacity * 2), slot_count()).map_err(err("reserve"))?;
        }
        *pending += more;
        Ok(())
    }

    fn release(&self, promised: usize) {
        *self.pending.lock() -= promised;
    }

    fn add(&self, point: PointId, vector: &[f32]) -> bool {
        let _shape = self.shape.read();
        let _slot = self.slots.take();
        // Fails only on a duplicate key or a wrong width, both excluded by the callers.
        match self.index.add(point, vector) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(point, %e, "usearch refused a point");
                false
            }
        }
    }

    /// Our distance convention (see `index::score`) from usearch's.
    fn distance(&self, raw: f32) -> f32 {
        match self.metric {
            Metric::Cosine => raw,
            // usearch's IP distance is 1 - dot.
            Metric::Dot => distance_from_dot(1.0 - raw),
            Metric::L2 => raw.max(0.0).sqrt(),
        }
    }

    /// Bytes held by the graph and the vectors (for benchmarks and stats).
    pub fn memory_usage(&self) -> usize {
        self.index.memory_usage()
    }
}

impl VectorIndex for UsearchIndex {
    fn insert(&self, points: &[(PointId, Vec<f32>)]) {
        let fresh: Vec<&(PointId, Vec<f32>)> = {
            let known = self.points.lock();
            points.iter().filter(|(p, _)| !known.contains(*p)).collect()
        };
        if fresh.is_empty() {
            return;
        }
        if let Err(e) = self.reserve(fresh.len()) {
            tracing::error!(%e, "usearch could not reserve capacity");
            return;
        }
        for (point, vector) in &fresh {
            // Per point, so removes interleave with a long build; the key list changes with the
            // graph under the same lock, so a remove sees exactly what was added.
            let _mutating = self.mutating.lock();
            if self.add(*point, vector) {
                self.points.lock().insert(*point);
            }
        }
        self.release(fresh.len());
    }

    fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<&(dyn Fn(PointId) -> bool + Sync)>) -> Vec<Hit> {
        // usearch searches at breadth max(expansion_search, count): asking for ef results is a
        // walk at breadth ef, without touching the index-wide setting.
        let count = if ef > self.ef_search { ef.max(k) } else { k };
        let found = {
            let _shape = self.shape.read();
            let _slot = self.slots.take();
            match filter {
                None => self.index.search(query, count),
                Some(accept) => self.index.filtered_search(query, count, |key| accept(key)),
            }
        };
        match found {
            Ok(matches) => matches.keys.into_iter().zip(matches.distances).take(k).map(|(point, d)| Hit { point, distance: self.distance(d) }).collect(),
            Err(e) => {
                tracing::error!(%e, "usearch search failed");
                Vec::new()
            }
        }
    }

    fn len(&self) -> usize {
        self.index.size()
    }

    fn point_set(&self) -> RoaringTreemap {
        self.points.lock().clone()
    }

    fn contains(&self, point: PointId) -> bool {
        self.points.lock().contains(point)
    }

    fn can_remove(&self) -> bool {
        true
    }

    fn remove(&self, points: &[PointId]) -> Vec<PointId> {
        let _mutating = self.mutating.lock();
        let _shape = self.shape.read();
        let mut known = self.points.lock();
        let mut removed = Vec::with_capacity(points.len());
        for &point in points {
            if !known.contains(point) {
                continue;
            }
            match self.index.remove(point) {
                Ok(n) if n > 0 => {
                    known.remove(point);
                    removed.push(point);
                }
                Ok(_) => tracing::error!(point, "usearch did not hold a point its key list names"),
                Err(e) => tracing::error!(point, %e, "usearch could not remove a point"),
            }
        }
        removed
    }

    fn check(&self) -> Result<(), String> {
        let known = self.points.lock();
        if known.len() != self.index.size() as u64 {
            return Err(format!("{POINTS_FILE} lists {} points, the graph holds {}", known.len(), self.index.size()));
        }
        if let Some(point) = known.iter().find(|&p| !self.index.contains(p)) {
            return Err(format!("{POINTS_FILE} lists point {point}, which the graph does not hold"));
        }
        Ok(())
    }

    fn vector_into(&self, point: PointId, out: &mut [f32]) -> bool {
        out.len() == self.index.dimensions() && matches!(self.index.get(point, out), Ok(1))
    }

    fn memory(&self) -> (usize, usize) {
        (0, self.index.memory_usage())
    }

    fn dump_into(&self, dir: &Path) -> Result<Vec<String>, IndexError> {
        let graph = dir.join(GRAPH_FILE);
        let path = graph.to_str().ok_or_else(|| IndexError::BadDump { path: dir.to_owned(), reason: "path is not UTF-8".into() })?;
        // Callers freeze the graph (no adds or removes) while it is dumped; searches may go on.
        self.index.save(path).map_err(|e| IndexError::BadDump { path: dir.to_owned(), reason: format!("usearch save: {e}") })?;
        let mut bytes = Vec::new();
        self.points.lock().serialize_into(&mut bytes).map_err(|source| IndexError::Io { path: dir.join(POINTS_FILE), source })?;
        std::fs::write(dir.join(POINTS_FILE), bytes).map_err(|source| IndexError::Io { path: dir.join(POINTS_FILE), source })?;
        Ok(vec![GRAPH_FILE.to_owned(), POINTS_FILE.to_owned()])
    }
}
