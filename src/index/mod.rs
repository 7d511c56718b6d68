//! The vector index: derived data, rebuildable from the store at any time.
//!
//! `VectorIndex` is the seam another ANN backend would plug into; `HnswIndex` wraps hnsw_rs.
//! Deletes are tombstones kept by the caller (hnsw_rs cannot delete), and dumps are written
//! atomically with a checksum and the store watermark they cover (`dump.rs`).

mod distance;
pub mod dump;
mod hnsw;

use std::path::Path;

pub use distance::distance_from_dot;
pub use hnsw::{HnswIndex, MAX_M};

use crate::store::{HnswParams, Metric, PointId};

/// One search result: a point and its distance (smaller is closer, for every metric).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub point: PointId,
    pub distance: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("invalid index parameters: {0}")]
    InvalidParams(String),
    #[error("index dump i/o at {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("index dump at {path} is unusable: {reason}")]
    BadDump { path: std::path::PathBuf, reason: String },
}

/// An approximate nearest-neighbour index over `(point, vector)` pairs.
pub trait VectorIndex: Send + Sync {
    /// Adds points; large batches are inserted in parallel on the index's own thread pool.
    fn insert(&self, points: &[(PointId, Vec<f32>)]);
    /// The `k` nearest points accepted by `filter`, closest first. `ef` is the search breadth.
    fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<&(dyn Fn(PointId) -> bool + Sync)>) -> Vec<Hit>;
    /// Points in the graph, tombstoned ones included.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every point in the graph.
    fn points(&self) -> Vec<PointId>;
    /// Writes the graph into `dir` (which exists and is empty); returns the files written.
    fn dump_into(&self, dir: &Path) -> Result<Vec<String>, IndexError>;
}

/// Checks parameters before they reach hnsw_rs, which calls `process::exit` on some of them.
pub fn validate_params(params: &HnswParams) -> Result<(), IndexError> {
    if params.m < 2 || params.m > MAX_M {
        return Err(IndexError::InvalidParams(format!("m must be in 2..={MAX_M}, got {}", params.m)));
    }
    if params.ef_construction < 1 || params.ef_construction > 10_000 {
        return Err(IndexError::InvalidParams(format!("ef_construction must be in 1..=10000, got {}", params.ef_construction)));
    }
    if params.ef_search < 1 || params.ef_search > 10_000 {
        return Err(IndexError::InvalidParams(format!("ef_search must be in 1..=10000, got {}", params.ef_search)));
    }
    Ok(())
}

/// A fresh, empty index for a collection.
pub fn new_index(metric: Metric, params: &HnswParams, expected_points: usize) -> Result<Box<dyn VectorIndex>, IndexError> {
    validate_params(params)?;
    Ok(match metric {
        Metric::Cosine => Box::new(HnswIndex::new(params, expected_points, hnsw_rs::prelude::DistDot)),
        Metric::Dot => Box::new(HnswIndex::new(params, expected_points, distance::DistNegDot)),
        Metric::L2 => Box::new(HnswIndex::new(params, expected_points, hnsw_rs::prelude::DistL2)),
    })
}

/// Converts an index distance into the score a client sees (see README: cosine and dot are
/// similarities, higher is better; l2 is the Euclidean distance, lower is better).
pub fn score(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - distance,
        Metric::Dot => distance::dot_from_distance(distance),
        Metric::L2 => distance,
    }
}
