//! akidb's own HNSW (`hnsw` backend): flat arrays, vectors contiguous, distance kernels picked
//! at run time (AVX-512F, AVX2 + FMA, scalar), software prefetch, generation-stamped visited sets
//! reused per thread, and no lock taken by a search beyond one uncontended read lock.
//!
//! Chosen by measurement over usearch (benches/results/search.md): usearch's adds had to be
//! serialized (concurrent adds stranded points), and its per-call path cost more than the walk
//! at small ef.
//!
//! The algorithm is HNSW as in hnswlib: levels drawn with mult 1/ln(M), greedy descent through
//! the upper levels, SEARCH-LAYER at level 0 with breadth ef, neighbours chosen by the diversity
//! heuristic, back links pruned by the same heuristic. Deleted points are not removed
//! (`can_remove` is false): the engine keeps tombstones and compacts.
//!
//! Lock order: `slots` → `entry_lock` → `graph` → a node's lock. `graph` is read-locked by
//! searches and by each node's insert, write-locked only to grow the arrays.

mod file;
mod graph;
mod kernels;
mod search;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use roaring::RoaringTreemap;

use self::graph::Graph;
use self::kernels::Kernel;
use self::search::{greedy, search_layer, with_scratch, Near, Walk};
use super::{distance_from_dot, Hit, IndexError, VectorIndex};
use crate::domain::{HnswParams, Metric, PointId};

pub use file::GRAPH_FILE;
pub use kernels::Kernel as DistanceKernel;

/// The highest level a node can get (the chance of reaching it with M 16 is 16^-15).
const MAX_LEVEL: usize = 15;
/// No entry point yet (empty graph).
const EMPTY: u64 = u64::MAX;
/// Below this many points an insert runs on the caller's thread: a pool hop costs more.
const PARALLEL_INSERT_MIN: usize = 64;

struct Slots {
    /// Point → slot for every point inserted (slots are dense: the map's size is the next).
    of: HashMap<PointId, u32>,
    /// Entries of the upper arena handed out.
    upper_used: usize,
}

pub struct NativeIndex {
    metric: Metric,
    kernel: Kernel,
    ef_construction: usize,
    level_mult: f64,
    graph: RwLock<Graph>,
    slots: Mutex<Slots>,
    /// Serializes inserts of nodes that rise above the top level (hnswlib's global lock).
    entry_lock: Mutex<()>,
    /// `level << 32 | slot` of the entry point, or `EMPTY`.
    entry: AtomicU64,
}

fn pack(slot: u32, level: usize) -> u64 {
    (level as u64) << 32 | slot as u64
}

fn unpack(entry: u64) -> (u32, usize) {
    (entry as u32, (entry >> 32) as usize)
}

/// A node's level, drawn from its slot (splitmix64): deterministic, so two builds of the same
/// points in the same order make the same graph.
fn level_of(slot: u32, mult: f64) -> usize {
    let mut z = (slot as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // Uniform in (0, 1].
    let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    ((-u.ln() * mult) as usize).min(MAX_LEVEL)
}

impl NativeIndex {
    pub fn new(metric: Metric, dims: usize, params: &HnswParams, expected_points: usize) -> NativeIndex {
        let mut graph = Graph::new(dims, params.m);
        let slots = expected_points.max(64);
        graph.grow(slots, slots / params.m.max(2) * (1 + params.m) * 2);
        Self::wrap(metric, params, graph, HashMap::with_capacity(expected_points), 0, EMPTY)
    }

    fn wrap(metric: Metric, params: &HnswParams, graph: Graph, of: HashMap<PointId, u32>, upper_used: usize, entry: u64) -> NativeIndex {
        NativeIndex {
            metric,
            kernel: Kernel::pick(metric),
            ef_construction: params.ef_construction,
            level_mult: 1.0 / (params.m.max(2) as f64).ln(),
            graph: RwLock::new(graph),
            slots: Mutex::new(Slots { of, upper_used }),
            entry_lock: Mutex::new(()),
            entry: AtomicU64::new(entry),
        }
    }

    /// The instruction set the distance kernels use.
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name
    }


    /// Our distance convention (see `index::score`) from the internal one.
    fn distance(&self, internal: f32) -> f32 {
        match self.metric {
            Metric::Cosine => 1.0 + internal,
            Metric::Dot => distance_from_dot(-internal),
            Metric::L2 => internal.max(0.0).sqrt(),
        }
    }

    /// Hands out slots to the points not yet held and writes their vectors; returns the slots
    /// with their levels, in order. Nothing links to them yet.
    fn allocate(&self, points: &[(PointId, Vec<f32>)]) -> Vec<(u32, usize)> {
        let mut slots = self.slots.lock();
        let dims = self.graph.read().dims;
        let mut fresh = Vec::with_capacity(points.len());
        let mut seen = std::collections::HashSet::new();
        for (i, (point, vector)) in points.iter().enumerate() {
            // Callers check widths; a wrong one here would corrupt the arrays.
            if vector.len() != dims || slots.of.contains_key(point) || !seen.insert(*point) {
                continue;
            }
            fresh.push(i);
        }
        if fresh.is_empty() {
            return Vec::new();
        }
        let first = slots.of.len();
        let upper_per_level = self.graph.read().upper_len(1);
        let levels: Vec<usize> = (0..fresh.len()).map(|i| level_of((first + i) as u32, self.level_mult)).collect();
        let upper_needed: usize = levels.iter().map(|l| l * upper_per_level).sum();
        {
            let graph = self.graph.upgradable_read();
            let (need_slots, need_upper) = (first + fresh.len(), slots.upper_used + upper_needed);
            if need_slots > graph.capacity() || need_upper > graph.upper_capacity() {
                let mut graph = parking_lot::RwLockUpgradableReadGuard::upgrade(graph);
                let slots_cap = need_slots.max(graph.capacity() * 2);
                let upper_cap = need_upper.max(graph.upper_capacity() * 2);
                graph.grow(slots_cap, upper_cap);
            }
        }
        let graph = self.graph.read();
        let mut out = Vec::with_capacity(fresh.len());
        for (n, (&i, &level)) in fresh.iter().zip(&levels).enumerate() {
            let slot = (first + n) as u32;
            let upper_at = slots.upper_used;
            slots.upper_used += level * upper_per_level;
            let (point, vector) = &points[i];
            graph.write_node(slot, *point, level, upper_at as u32, vector);
            // Level lists of a fresh slot start empty (a grown arena is zeroed, and slots and
            // arena entries are never reused).
            slots.of.insert(*point, slot);
            out.push((slot, level));
        }
        graph.set_allocated(slots.of.len());
        out
    }

    /// Links one allocated node into the graph (HNSW's INSERT).
    fn link(&self, slot: u32, level: usize) {
        let mut entry = self.entry.load(Ordering::Acquire);
        let _rising = if entry == EMPTY || level > unpack(entry).1 {
            let guard = self.entry_lock.lock();
            entry = self.entry.load(Ordering::Acquire);
            Some(guard)
        } else {
            None
        };
        let graph = self.graph.read();
        if entry == EMPTY {
            graph.set_done(slot);
            self.entry.store(pack(slot, level), Ordering::Release);
            return;
        }
        let (entry_slot, top) = unpack(entry);
        let query = graph.vector(slot);
        let mut at = Near { d: self.kernel.distance(query, graph.vector(entry_slot)), slot: entry_slot };
        for l in (level + 1..=top).rev() {
            at = greedy(&graph, &self.kernel, query, at, l);
        }
        for l in (0..=level.min(top)).rev() {
            let found = with_scratch(|scratch| {
                search_layer(Walk { graph: &graph, kernel: &self.kernel, query }, at, l, self.ef_construction, None, scratch);
                let mut found: Vec<Near> = scratch.results.drain().filter(|n| n.slot != slot).collect();
                found.sort_unstable();
                found
            });
            if found.is_empty() {
                continue;
            }
            let width = if l == 0 { graph.m0 } else { graph.m };
            // The new node's own list holds M at every level (hnswlib: M, not M0, on insert).
            let chosen = self.select(&graph, &found, graph.m);
            self.set_own_links(&graph, slot, l, chosen.clone(), width);
            for n in &chosen {
                self.link_back(&graph, n.slot, slot, n.d, l, width);
            }
            // The next level down is entered from the closest node already linked everywhere.
            at = found.iter().find(|n| graph.is_done(n.slot)).copied().unwrap_or(at);
        }
        graph.set_done(slot);
        if level > top {
            self.entry.store(pack(slot, level), Ordering::Release);
        }
    }

    /// Writes a new node's list at `level`. A concurrent insert may already have linked itself
    /// here: it reached the node through a level above, found this list empty and chose the node
    /// as its neighbour. Overwriting would drop that link and could leave the other node with no
    /// inbound link at all, so the links found here are kept beside the chosen ones.
    fn set_own_links(&self, graph: &Graph, slot: u32, level: usize, mut chosen: Vec<Near>, width: usize) {
        let _own = graph.locks[slot as usize].lock();
        let list = graph.links(slot, level);
        let base = graph.vector(slot);
        let mut merged = false;
        for n in Graph::neighbours(list) {
            if !chosen.iter().any(|c| c.slot == n) {
                chosen.push(Near { d: self.kernel.distance(base, graph.vector(n)), slot: n });
                merged = true;
            }
        }
        if merged {
            chosen.sort_unstable();
            chosen = self.select(graph, &chosen, width);
        }
        Graph::set_links(list, chosen.iter().map(|n| n.slot));
    }

    /// Adds `new` to `node`'s list at `level`, pruning by the heuristic when it is full.
    fn link_back(&self, graph: &Graph, node: u32, new: u32, d: f32, level: usize, width: usize) {
        let _lock = graph.locks[node as usize].lock();
        let list = graph.links(node, level);
        let current: Vec<u32> = Graph::neighbours(list).collect();
        if current.contains(&new) {
            return;
        }
        if current.len() < width {
            list[1 + current.len()].store(new, Ordering::Release);
            list[0].store(current.len() as u32 + 1, Ordering::Release);
            return;
        }
        let base = graph.vector(node);
        let mut candidates: Vec<Near> = current.iter().map(|&n| Near { d: self.kernel.distance(base, graph.vector(n)), slot: n }).collect();
        candidates.push(Near { d, slot: new });
        candidates.sort_unstable();
        let kept = self.select(graph, &candidates, width);
        Graph::set_links(list, kept.iter().map(|n| n.slot));
    }

    /// HNSW's neighbour heuristic: from candidates sorted by distance to the base, keeps one
    /// only if it is closer to the base than to every one kept before it (diverse directions).
    fn select(&self, graph: &Graph, sorted: &[Near], width: usize) -> Vec<Near> {
        if sorted.len() <= width {
            return sorted.to_vec();
        }
        let mut kept: Vec<Near> = Vec::with_capacity(width);
        for c in sorted {
            if kept.len() >= width {
                break;
            }
            let vc = graph.vector(c.slot);
            if kept.iter().all(|k| self.kernel.distance(vc, graph.vector(k.slot)) >= c.d) {
                kept.push(*c);
            }
        }
        kept
    }

    /// Loads a dump written by `dump_into` from its bytes (already checked against the manifest).
    pub fn load(bytes: &[u8], metric: Metric, params: &HnswParams, dims: usize) -> Result<Self, String> {
        let parts = file::decode(bytes, metric, dims)?;
        let params = HnswParams { m: parts.m, ..*params };
        let (upper_used, entry) = (parts.upper_used, parts.entry);
        let graph = Graph::from_parts(dims, parts);
        let mut of = HashMap::with_capacity(graph.capacity());
        for (slot, key) in graph.keys.iter().enumerate() {
            if of.insert(key.load(Ordering::Relaxed), slot as u32).is_some() {
                return Err(format!("point {} is held twice", key.load(Ordering::Relaxed)));
            }
        }
        let index = Self::wrap(metric, &params, graph, of, upper_used, entry);
        index.check()?;
        Ok(index)
    }
}

impl VectorIndex for NativeIndex {
    fn insert(&self, points: &[(PointId, Vec<f32>)]) {
        let fresh = self.allocate(points);
        let link = |&(slot, level): &(u32, usize)| self.link(slot, level);
        match super::hnsw::build_pool() {
            // Already on a pool (`background_pool().install`): build on that one.
            _ if fresh.len() >= PARALLEL_INSERT_MIN && rayon::current_thread_index().is_some() => fresh.par_iter().for_each(link),
            Some(pool) if fresh.len() >= PARALLEL_INSERT_MIN => pool.install(|| fresh.par_iter().for_each(link)),
            _ => fresh.iter().for_each(link),
        }
    }

    fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<&(dyn Fn(PointId) -> bool + Sync)>) -> Vec<Hit> {
        let entry = self.entry.load(Ordering::Acquire);
        if k == 0 || entry == EMPTY {
            return Vec::new();
        }
        let graph = self.graph.read();
        if query.len() != graph.dims {
            return Vec::new();
        }
        let (entry_slot, top) = unpack(entry);
        let mut at = Near { d: self.kernel.distance(query, graph.vector(entry_slot)), slot: entry_slot };
        for l in (1..=top).rev() {
            at = greedy(&graph, &self.kernel, query, at, l);
        }
        let keys = &graph.keys;
        let accept = filter.map(|f| move |slot: u32| f(keys[slot as usize].load(Ordering::Relaxed)));
        with_scratch(|scratch| {
            search_layer(Walk { graph: &graph, kernel: &self.kernel, query }, at, 0, ef.max(k), accept.as_ref().map(|a| a as &dyn Fn(u32) -> bool), scratch);
            while scratch.results.len() > k {
                scratch.results.pop();
            }
            let mut hits = Vec::with_capacity(scratch.results.len());
            while let Some(n) = scratch.results.pop() {
                hits.push(Hit { point: keys[n.slot as usize].load(Ordering::Relaxed), distance: self.distance(n.d) });
            }
            hits.reverse();
            hits
        })
    }

    fn len(&self) -> usize {
        self.slots.lock().of.len()
    }

    fn point_set(&self) -> RoaringTreemap {
        let mut points: Vec<PointId> = self.slots.lock().of.keys().copied().collect();
        points.sort_unstable();
        RoaringTreemap::from_sorted_iter(points).unwrap_or_default()
    }

    fn contains(&self, point: PointId) -> bool {
        self.slots.lock().of.contains_key(&point)
    }

    fn check(&self) -> Result<(), String> {
        let slots = self.slots.lock();
        let graph = self.graph.read();
        file::check(&graph, slots.of.len(), slots.upper_used, self.entry.load(Ordering::Acquire))
    }

    fn vector_into(&self, point: PointId, out: &mut [f32]) -> bool {
        let Some(&slot) = self.slots.lock().of.get(&point) else { return false };
        let graph = self.graph.read();
        if out.len() != graph.dims {
            return false;
        }
        out.copy_from_slice(graph.vector(slot));
        true
    }

    /// Bytes in use (grown capacity past the used part is never touched: see `Graph::grow`).
    fn memory(&self) -> (usize, usize) {
        let slots = self.slots.lock();
        let used = slots.of.len();
        let graph = self.graph.read();
        let vectors = used * graph.dims * 4;
        let per_node = 8 + 1 + 1 + 4 + 1 + (1 + graph.m0) * 4;
        let map = slots.of.capacity() * (std::mem::size_of::<(PointId, u32)>() + 1);
        (vectors, used * per_node + slots.upper_used * 4 + map)
    }

    fn dump_into(&self, dir: &Path) -> Result<Vec<String>, IndexError> {
        // Callers freeze the graph (no adds) while it is dumped; searches may go on.
        let slots = self.slots.lock();
        let graph = self.graph.read();
        let path = dir.join(GRAPH_FILE);
        file::write(&path, &graph, self.metric, slots.of.len(), slots.upper_used, self.entry.load(Ordering::Acquire)).map_err(|source| IndexError::Io { path, source })?;
        Ok(vec![GRAPH_FILE.to_owned()])
    }
}

#[cfg(test)]
mod tests;
