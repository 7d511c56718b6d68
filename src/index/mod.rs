//! The vector index: derived data, rebuildable from the store at any time.
//!
//! `VectorIndex` is the seam ANN backends plug into: `UsearchIndex` wraps usearch (the default,
//! chosen by measurement: benches/results/search.md), `HnswIndex` wraps hnsw_rs. usearch removes
//! deleted points natively; for hnsw_rs, which cannot, the caller keeps tombstones. Dumps are
//! written atomically with a checksum and the store watermark they cover (`dump.rs`).

mod distance;
pub mod dump;
mod hnsw;
pub mod native;
pub mod usearch;

use std::path::Path;

pub use distance::distance_from_dot;
pub use hnsw::{background_pool, HnswIndex, MAX_M};
pub use native::NativeIndex;
pub use usearch::{Quantization, UsearchIndex};

use crate::domain::IndexBackend;
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
    fn point_set(&self) -> roaring::RoaringTreemap;
    fn contains(&self, point: PointId) -> bool;
    /// Whether `remove` takes points out of the graph (else callers keep tombstones).
    fn can_remove(&self) -> bool {
        false
    }
    /// Removes points from the graph where the backend can; returns the points it removed (a
    /// point it did not hold is not among them). Callers keep tombstones for the rest until a
    /// compaction rebuilds the graph.
    fn remove(&self, _points: &[PointId]) -> Vec<PointId> {
        Vec::new()
    }
    /// Checks that the backend's own structures agree (its key list and the graph); the reason
    /// when they do not. A dump that fails it is not loaded.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// Copies a point's vector as the graph holds it into `out` (the index's width), when the
    /// backend keeps vectors readable: exact search then reads memory instead of the store.
    fn vector_into(&self, _point: PointId, _out: &mut [f32]) -> bool {
        false
    }
    /// Bytes held in memory: (vectors, graph structure), where the backend can tell.
    fn memory(&self) -> (usize, usize) {
        (0, 0)
    }
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

/// What an index is built for: the collection's metric, width, graph parameters and backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub metric: Metric,
    pub dims: usize,
    pub params: HnswParams,
    pub backend: IndexBackend,
}

impl IndexSpec {
    pub fn of(config: &crate::domain::CollectionConfig) -> Self {
        IndexSpec { metric: config.metric, dims: config.dims, params: config.hnsw, backend: config.backend }
    }
}

/// Checks a spec without building anything (collection creation refuses a bad one up front).
pub fn validate_spec(spec: &IndexSpec) -> Result<(), IndexError> {
    validate_params(&spec.params)?;
    if spec.dims == 0 || spec.dims > MAX_DIMS {
        return Err(IndexError::InvalidParams(format!("dims must be in 1..={MAX_DIMS}, got {}", spec.dims)));
    }
    if matches!(spec.backend, IndexBackend::UsearchF16 | IndexBackend::UsearchI8) && spec.metric != Metric::Cosine {
        return Err(IndexError::InvalidParams(format!("backend {} stores unit vectors and needs the cosine metric", spec.backend.as_str())));
    }
    Ok(())
}

/// Widest vector accepted (OpenAI's largest embeddings have 3072 dimensions).
pub const MAX_DIMS: usize = 16_384;

/// A fresh, empty index for a collection.
pub fn new_index(spec: &IndexSpec, expected_points: usize) -> Result<Box<dyn VectorIndex>, IndexError> {
    validate_spec(spec)?;
    let params = &spec.params;
    let quantization = match spec.backend {
        IndexBackend::HnswRs => {
            return Ok(match spec.metric {
                Metric::Cosine => Box::new(HnswIndex::new(params, expected_points, hnsw_rs::prelude::DistDot)),
                Metric::Dot => Box::new(HnswIndex::new(params, expected_points, distance::DistNegDot)),
                Metric::L2 => Box::new(HnswIndex::new(params, expected_points, hnsw_rs::prelude::DistL2)),
            })
        }
        IndexBackend::Hnsw => return Ok(Box::new(NativeIndex::new(spec.metric, spec.dims, params, expected_points))),
        IndexBackend::Usearch => Quantization::F32,
        IndexBackend::UsearchF16 => Quantization::F16,
        IndexBackend::UsearchI8 => Quantization::I8,
    };
    Ok(Box::new(UsearchIndex::new(spec.metric, spec.dims, params, quantization, expected_points)?))
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
