//! The default search breadth, calibrated on the collection's own points.
//!
//! A fixed ef that reaches recall 0.95 at 100k points does not at 400k (GloVe-50: 0.96 → 0.79 at
//! ef 64), and how fast recall falls with size depends on the data. So the breadth is measured:
//! up to `SAMPLE` live points, spread over the collection, are searched for by their own vectors
//! (the point itself left out: its 10 nearest others are the truth, found by an exact scan), at
//! growing ef until recall@10 reaches `TARGET`. Run in the background after a dump when the
//! collection has grown or shrunk by half since the last calibration, and kept beside the dumps
//! (`calibration.json`) so a restart starts with it.

use std::path::Path;

use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};

use super::graph::LiveGraph;
use crate::index::native::DistanceKernel;
use crate::index::VectorIndex;
use crate::store::{Metric, PointId};

/// Recall@10 the default breadth must reach on the sample. Above the 0.95 promised: queries from
/// outside the collection are a little harder than its own points.
pub const TARGET: f64 = 0.97;
/// Below this many live points the configured ef is kept (ef 64 is near-exact there).
pub const MIN_POINTS: u64 = 5_000;
/// Queries per calibration: recall measured to about ±0.01.
const SAMPLE: usize = 200;
/// The widest default breadth calibration may choose.
pub const MAX_EF: usize = 1_024;
const FILE: &str = "calibration.json";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Live points when measured.
    pub points: u64,
    /// The smallest breadth tried that reached `TARGET` (or `MAX_EF`).
    pub ef: usize,
    /// Recall@10 measured at `ef`.
    pub recall: f64,
    /// How much wider than `ef * sqrt(1 / share)` a post-filtered walk goes (`Collection::dense`):
    /// the smallest factor tried that kept recall@10 at `TARGET` with filters passing 10 % and
    /// 50 % of the points (absent in files written before it: 1).
    #[serde(default = "one")]
    pub filter_boost: f64,
    /// The lower of the two filtered recalls at `filter_boost`.
    #[serde(default)]
    pub filtered_recall: f64,
}

/// Whether `now` is more than 1.5 times `then`, or less than two thirds of it.
pub fn moved_by_half(then: u64, now: u64) -> bool {
    now * 2 > then * 3 || now * 3 < then * 2
}

fn one() -> f64 {
    1.0
}

/// The filters calibration tries: points passing one in `n` of a hash of their id.
const SHARES: [u64; 2] = [10, 2];
const BOOSTS: [f64; 5] = [1.0, 1.5, 2.0, 3.0, 4.0];

/// A fixed pseudo-random pick of points, independent of how ids were assigned.
fn passes(point: PointId, one_in: u64) -> bool {
    point.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % one_in == 0
}

/// The breadth of a post-filtered walk: `ef` widened by the square root of 1 / share and by the
/// calibrated boost, within `cap * boost`. Shared by `Collection::dense` and the calibration.
pub fn post_filter_breadth(ef: usize, share: f64, boost: f64, cap: usize) -> usize {
    let widened = (ef as f64 * boost * (1.0 / share.max(1e-9)).sqrt()).ceil() as usize;
    widened.min((cap as f64 * boost) as usize)
}

impl Calibration {
    /// Whether the collection changed enough since this calibration to measure again.
    pub fn stale(&self, live: u64) -> bool {
        live >= MIN_POINTS && moved_by_half(self.points, live)
    }

    /// The saved calibration, its values held to what `measure` can choose (a damaged or edited
    /// file must not set a breadth a search cannot afford).
    pub fn load(index_dir: &Path) -> Option<Calibration> {
        let bytes = std::fs::read(index_dir.join(FILE)).ok()?;
        let c: Calibration = serde_json::from_slice(&bytes).ok()?;
        Some(Calibration { ef: c.ef.clamp(1, MAX_EF), filter_boost: c.filter_boost.clamp(BOOSTS[0], BOOSTS[BOOSTS.len() - 1]), ..c })
    }

    /// Forgets the saved calibration (the graph was rebuilt on another backend).
    pub fn remove(index_dir: &Path) {
        let _ = std::fs::remove_file(index_dir.join(FILE));
    }

    pub fn save(&self, index_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::index::dump::write_atomically(&index_dir.join(FILE), &json).map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// Measures the breadth for `graph` over the `live` points, starting at `floor` (the configured
/// ef). `None` when the graph is too small or cannot give its vectors back.
pub(super) fn measure(graph: &LiveGraph, live: &RoaringTreemap, metric: Metric, dims: usize, floor: usize) -> Option<Calibration> {
    let n = live.len();
    if n < MIN_POINTS {
        return None;
    }
    let index = graph.graph();
    let step = (n / SAMPLE as u64).max(1);
    let mut queries: Vec<(PointId, Vec<f32>)> = Vec::with_capacity(SAMPLE);
    for point in live.iter().step_by(step as usize).take(SAMPLE) {
        let mut v = vec![0f32; dims];
        // A point not in the graph yet (written a moment ago, or in a dump's side list) is
        // skipped; a backend that keeps no vectors (hnsw_rs) gives none, and is not measured.
        if index.vector_into(point, &mut v) {
            queries.push((point, v));
        }
    }
    if queries.len() < SAMPLE / 2 {
        return None;
    }
    // Writes may go on meanwhile: results are judged among the points live when it began.
    let truth = exact_neighbours(&*index, live, &queries, metric, dims, |_| true)?;
    let mut ef = floor.max(16);
    let recall = loop {
        let recall = recall_at(graph, &queries, &truth, ef, ef, |p| live.contains(p));
        if recall >= TARGET || ef >= MAX_EF {
            break recall;
        }
        ef = (ef + ef / 2).min(MAX_EF);
    };
    let mut filtered = Vec::new();
    for one_in in SHARES {
        filtered.push((one_in, exact_neighbours(&*index, live, &queries, metric, dims, |p| passes(p, one_in))?));
    }
    let mut chosen = (BOOSTS[BOOSTS.len() - 1], 0.0);
    for boost in BOOSTS {
        let worst = filtered
            .iter()
            .map(|(one_in, truth)| {
                let breadth = post_filter_breadth(ef, 1.0 / *one_in as f64, boost, super::collection::POSTFILTER_MAX_EF).max(ef);
                recall_at(graph, &queries, truth, breadth, breadth, |p| passes(p, *one_in) && live.contains(p))
            })
            .fold(1.0f64, f64::min);
        chosen = (boost, worst);
        if worst >= TARGET {
            break;
        }
    }
    Some(Calibration { points: n, ef, recall, filter_boost: chosen.0, filtered_recall: chosen.1 })
}

/// For each query, its 10 nearest live points other than itself (one pass over the vectors).
fn exact_neighbours(index: &dyn VectorIndex, live: &RoaringTreemap, queries: &[(PointId, Vec<f32>)], metric: Metric, dims: usize, accept: impl Fn(PointId) -> bool) -> Option<Vec<Vec<PointId>>> {
    let kernel = DistanceKernel::pick(metric);
    let mut best: Vec<Vec<(f32, PointId)>> = vec![Vec::with_capacity(11); queries.len()];
    let mut v = vec![0f32; dims];
    for point in live.iter().filter(|p| accept(*p)) {
        // Written after the graph insert began: judged as absent (searches skip it too, see
        // `recall_at`'s filter by the same `live`), which costs a little recall, never a crash.
        if !index.vector_into(point, &mut v) {
            continue;
        }
        for ((q_point, q), top) in queries.iter().zip(best.iter_mut()) {
            if point == *q_point {
                continue;
            }
            let d = kernel.distance(q, &v);
            if top.len() < 10 || d < top[top.len() - 1].0 {
                let at = top.partition_point(|(e, _)| *e <= d);
                top.insert(at, (d, point));
                top.truncate(10);
            }
        }
    }
    Some(best.into_iter().map(|top| top.into_iter().map(|(_, p)| p).collect()).collect())
}

/// Recall@10 of walks over `count` candidates at breadth `ef`, filtered after by `accept` (the
/// post-filtered path; unfiltered when it takes everything), the query's own point left out.
fn recall_at(graph: &LiveGraph, queries: &[(PointId, Vec<f32>)], truth: &[Vec<PointId>], count: usize, ef: usize, accept: impl Fn(PointId) -> bool) -> f64 {
    let mut found = 0usize;
    let mut wanted = 0usize;
    for ((point, q), truth) in queries.iter().zip(truth) {
        let hits = graph.search(q, count.max(11), ef.max(11), None);
        let others: Vec<PointId> = hits.iter().map(|h| h.point).filter(|p| p != point && accept(*p)).take(10).collect();
        found += truth.iter().filter(|p| others.contains(p)).count();
        wanted += truth.len();
    }
    found as f64 / wanted.max(1) as f64
}
