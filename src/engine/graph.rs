//! The graph in force with its dump state: the ANN graph, the side list of points written while
//! a dump has the graph frozen, and the tombstones of points deleted but still in the graph.
//!
//! One lock (`state`) guards all of it, so every decision about where a point goes is made
//! atomically with the phase it depends on:
//!
//! ```text
//!            freeze (under the collection's writer)       thaw              end of thaw
//!   Open ───────────────────────────────────────▶ Frozen ─────▶ Moving ──────────────▶ Open
//!   adds:    graph                                  side          graph
//!   removes: native, else tombstone                 tombstone,    native, or tombstone when the
//!                                                   or out of     point is in the side list (its
//!                                                   the side list add may be in flight)
//! ```
//!
//! In `Moving` the dump thread inserts the side points into the graph without the lock; the side
//! list keeps them (searches dedup) until the end of `thaw`, which takes them out and removes the
//! tombstones natively: a delete made during the move wins over the move's insert.
//!
//! Searches hold the read lock for their walk. Adds and native removes are decided under the lock
//! and run after it is released (only a freeze, which needs the collection's writer, could change
//! the decision, and the caller holds that writer). Phase changes, side-list and tombstone updates
//! and a compaction's swap take the lock exclusively, and each of those is short.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockUpgradableReadGuard};

use crate::index::{Hit, VectorIndex};
use crate::store::{Metric, PointId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Frozen,
    Moving,
}

struct State {
    graph: Arc<dyn VectorIndex>,
    phase: Phase,
    /// Points written while frozen, until the end of `thaw` takes them out (ascending point ids).
    side: BTreeMap<PointId, Vec<f32>>,
    /// Points deleted but still in the graph (or, while moving, maybe about to be).
    tombstones: HashSet<PointId>,
}

pub(super) struct LiveGraph {
    state: RwLock<State>,
    metric: Metric,
    /// f16 / i8 graphs: their distances are approximate, so side hits are not merged by distance.
    quantized: std::sync::atomic::AtomicBool,
}

/// What the graph holds, for stats and the recovery checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GraphCounts {
    /// Points in the graph plus points only in the side list.
    pub points: usize,
    pub tombstones: usize,
}

impl LiveGraph {
    pub fn new(graph: Arc<dyn VectorIndex>, tombstones: HashSet<PointId>, metric: Metric, quantized: bool) -> Self {
        LiveGraph { state: RwLock::new(State { graph, phase: Phase::Open, side: BTreeMap::new(), tombstones }), metric, quantized: quantized.into() }
    }

    /// The graph in force (exact scans read vectors from it; dumps write it).
    pub fn graph(&self) -> Arc<dyn VectorIndex> {
        self.state.read().graph.clone()
    }

    pub fn counts(&self) -> GraphCounts {
        let state = self.state.read();
        let points = match state.phase {
            // The move inserts without the lock: a backend's size and its key list need not agree
            // mid-insert, so points are counted as one set (rare: only while a move runs).
            Phase::Moving => {
                let mut all = state.graph.point_set();
                all.extend(state.side.keys().copied());
                all.len() as usize
            }
            _ => state.graph.len() + state.side.len(),
        };
        GraphCounts { points, tombstones: state.tombstones.len() }
    }

    /// Adds points: to the graph, or to the side list while frozen. Under the collection's writer.
    pub fn insert(&self, points: Vec<(PointId, Vec<f32>)>) {
        if points.is_empty() {
            return;
        }
        let state = self.state.upgradable_read();
        if state.phase == Phase::Frozen {
            RwLockUpgradableReadGuard::upgrade(state).side.extend(points);
            return;
        }
        let graph = state.graph.clone();
        drop(state);
        // Outside the lock: only a freeze, which needs the writer we hold, could send these
        // points elsewhere now.
        graph.insert(&points);
    }

    /// Takes deleted points out: natively where the backend can and the phase allows, else as
    /// tombstones. Under the collection's writer.
    pub fn retire(&self, points: &[PointId]) {
        if points.is_empty() {
            return;
        }
        let state = self.state.upgradable_read();
        if state.phase == Phase::Open && state.graph.can_remove() {
            let graph = state.graph.clone();
            drop(state);
            // Outside the lock, as in `insert`: open, every point the graph will hold is in it.
            let removed = graph.remove(points);
            if removed.len() < points.len() {
                self.tombstone_unremoved(&*graph, points, &removed);
            }
            return;
        }
        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        let state = &mut *state;
        match state.phase {
            Phase::Frozen => {
                for &point in points {
                    // Never in the graph: it dies in the side list.
                    if state.side.remove(&point).is_none() {
                        state.tombstones.insert(point);
                    }
                }
            }
            Phase::Moving if state.graph.can_remove() => {
                let (pending, settled): (Vec<PointId>, Vec<PointId>) = points.iter().partition(|p| state.side.contains_key(p));
                // Its add may be running now: the end of `thaw` removes it once every add is done.
                state.tombstones.extend(pending);
                let removed: HashSet<PointId> = state.graph.remove(&settled).into_iter().collect();
                let graph = state.graph.clone();
                // A point the backend failed to remove is filtered as a tombstone instead.
                state.tombstones.extend(settled.into_iter().filter(|p| !removed.contains(p) && graph.contains(*p)));
            }
            _ => state.tombstones.extend(points.iter().copied()),
        }
    }

    /// Points a native remove left in the graph (the backend reported a failure) become
    /// tombstones, so searches never return them.
    fn tombstone_unremoved(&self, graph: &dyn VectorIndex, points: &[PointId], removed: &[PointId]) {
        let removed: HashSet<PointId> = removed.iter().copied().collect();
        let left: Vec<PointId> = points.iter().copied().filter(|p| !removed.contains(p) && graph.contains(*p)).collect();
        if !left.is_empty() {
            self.state.write().tombstones.extend(left);
        }
    }

    /// Freezes the graph for a dump: until `thaw`, adds go to the side list and removes become
    /// tombstones, so the graph returned holds exactly what it held now. Under the collection's
    /// writer (so that "now" is a store watermark).
    pub fn freeze(&self) -> Arc<dyn VectorIndex> {
        let mut state = self.state.write();
        debug_assert_eq!(state.phase, Phase::Open, "dumps and compactions are serialized by `maintenance`");
        state.phase = Phase::Frozen;
        state.graph.clone()
    }

    /// Ends a freeze and moves the side points into the graph, then removes the tombstones the
    /// backend can remove. Runs on the dump thread, without the collection's writer: writes go on
    /// straight to the graph meanwhile.
    pub fn thaw(&self) {
        let (graph, moving) = {
            let mut state = self.state.write();
            state.phase = Phase::Moving;
            (state.graph.clone(), state.side.iter().map(|(p, v)| (*p, v.clone())).collect::<Vec<_>>())
        };
        fail::fail_point!("graph.thaw.moving");
        // Without the lock: searches and writers go on, a compaction cannot swap the graph (it
        // waits for `maintenance`), and a delete of a moving point only tombstones it.
        graph.insert(&moving);
        let mut state = self.state.write();
        let state = &mut *state;
        for (point, _) in &moving {
            state.side.remove(point);
        }
        if state.graph.can_remove() && !state.tombstones.is_empty() {
            let dead: Vec<PointId> = state.tombstones.iter().copied().collect();
            state.graph.remove(&dead);
            // What the graph does not hold now is gone for good: nothing else will insert it.
            let graph = state.graph.clone();
            state.tombstones.retain(|p| graph.contains(*p));
        }
        state.phase = Phase::Open;
    }

    /// Replaces the graph (a compaction or a rebuild). Under the collection's writer, outside a dump.
    pub fn swap(&self, graph: Arc<dyn VectorIndex>, tombstones: HashSet<PointId>, quantized: bool) -> usize {
        let mut state = self.state.write();
        debug_assert_eq!(state.phase, Phase::Open);
        let before = state.graph.len();
        state.graph = graph;
        state.tombstones = tombstones;
        self.quantized.store(quantized, std::sync::atomic::Ordering::Release);
        before
    }

    /// Live points the graph does not hold: `live` less the graph's points and the side list.
    pub fn missing(&self, live: &roaring::RoaringTreemap) -> Vec<PointId> {
        let state = self.state.read();
        let mut missing = live.clone();
        missing -= state.graph.point_set();
        missing.iter().filter(|p| !state.side.contains_key(p)).collect()
    }

    /// Graph points that are neither live nor tombstoned (they would be returned by searches
    /// that pass no filter).
    pub fn stray(&self, live: &roaring::RoaringTreemap) -> Vec<PointId> {
        let state = self.state.read();
        let mut stray = state.graph.point_set();
        stray -= live;
        stray.iter().filter(|p| !state.tombstones.contains(p)).collect()
    }

    /// The `k` nearest points `filter` accepts, tombstones skipped, side-list points scanned
    /// exactly. For quantized graphs every candidate is kept (they are rescored by the caller).
    pub fn search(&self, vector: &[f32], k: usize, ef: usize, filter: Option<&(dyn Fn(PointId) -> bool + Sync)>) -> Vec<Hit> {
        let state = self.state.read();
        let tombstones = &state.tombstones;
        let mut hits = if tombstones.is_empty() {
            state.graph.search(vector, k, ef, filter)
        } else {
            let live = |p: PointId| !tombstones.contains(&p) && filter.is_none_or(|f| f(p));
            state.graph.search(vector, k, ef, Some(&live))
        };
        fail::fail_point!("graph.search.walked");
        if state.side.is_empty() {
            return hits;
        }
        let mut written: Vec<Hit> = state
            .side
            .iter()
            .filter(|(p, _)| !tombstones.contains(p) && filter.is_none_or(|f| f(**p)))
            .map(|(point, v)| Hit { point: *point, distance: distance(self.metric, vector, v) })
            .collect();
        written.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.point.cmp(&b.point)));
        written.truncate(k);
        let seen: HashSet<PointId> = hits.iter().map(|h| h.point).collect();
        // A point being moved may be in both: the graph's copy is dropped for the side's (exact).
        let written: Vec<Hit> = written.into_iter().filter(|h| !seen.contains(&h.point)).collect();
        hits.extend(written);
        if self.quantized.load(std::sync::atomic::Ordering::Acquire) {
            // Not on one scale: the caller rescores every candidate with the stored f32 vectors.
            return hits;
        }
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.point.cmp(&b.point)));
        hits.truncate(k);
        hits
    }
}

/// Same distances as the index uses, for exact search.
pub(super) fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
        Metric::Dot => crate::index::distance_from_dot(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()),
        Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt(),
    }
}
