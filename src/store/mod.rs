//! The source of truth: collections and documents in sled, behind our own trait.
//!
//! Every acknowledged write is durable: writers call `DocumentStore::flush` before answering,
//! and concurrent writers share one flush (group commit). The vector index is derived data and
//! can always be rebuilt from here without re-embedding.

mod codec;
mod group_commit;
mod sled_store;
pub mod migrations;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use codec::{vector_from_bytes, vector_to_bytes};
pub use sled_store::SledStore;

use crate::model::Pooling;

/// Current on-disk schema version. Older stores are migrated on open; newer ones are refused.
pub const SCHEMA_VERSION: u32 = 3;

/// Point ids are assigned per collection, increasing, never reused: the index's watermark is a point id.
pub type PointId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity; vectors are L2-normalized on the way in.
    #[default]
    Cosine,
    /// Inner product on the vectors as given.
    Dot,
    /// Euclidean distance.
    L2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node (hnsw_rs calls it max_nb_connection); at most 256.
    pub m: usize,
    pub ef_construction: usize,
    /// Search breadth used when a search does not give one.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construction: 200, ef_search: 64 }
    }
}

/// The model a collection is bound to: a search or insert with another model is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelBinding {
    pub name: String,
    pub dims: usize,
    pub pooling: Pooling,
    pub query_instruction: Option<String>,
}

/// A collection's on-disk layout is keyed by `id`, never by `name`: a collection dropped and
/// re-created under the same name is a different collection with fresh trees, counter and index
/// directory, and a write still in flight for the old one cannot land in the new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Immutable identity (a UUID), assigned when the collection is created.
    pub id: String,
    pub name: String,
    pub model: ModelBinding,
    pub metric: Metric,
    pub hnsw: HnswParams,
    /// Unix time, milliseconds.
    pub created_at_ms: u64,
}

/// A document as stored. `vector` is normalized when the collection's metric is cosine.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub point: PointId,
    pub text: String,
    /// A JSON object.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub vector: Vec<f32>,
}

/// A document to write: the store assigns its point id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub id: String,
    pub text: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub vector: Vec<f32>,
}

/// What an upsert did to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub point: PointId,
    /// The point the document had before, now dead (a tombstone in the index).
    pub replaced: Option<PointId>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in {tree}: {message}")]
    Corrupt { tree: String, message: String },
    #[error("collection '{0}' already exists")]
    CollectionExists(String),
    #[error("collection '{0}' not found")]
    CollectionNotFound(String),
    #[error("the store at {path} has schema version {found}, newer than this akidb supports ({supported}): upgrade akidb")]
    TooNew { path: PathBuf, found: u32, supported: u32 },
    #[error("migration from schema v{from} failed: {message}")]
    Migration { from: u32, message: String },
}

/// Storage for collections and documents. Implementations must make `flush` cover every write
/// that returned before it was called.
///
/// Collections are looked up by name (`collection`, `drop_collection`); everything about their
/// contents takes the collection's immutable id (`CollectionConfig::id`), so a write addressed to
/// a dropped collection fails with `CollectionNotFound` even if the name was reused.
pub trait DocumentStore: Send + Sync {
    fn create_collection(&self, config: &CollectionConfig) -> Result<(), StoreError>;
    fn collection(&self, name: &str) -> Result<Option<CollectionConfig>, StoreError>;
    fn collections(&self) -> Result<Vec<CollectionConfig>, StoreError>;
    /// Removes a collection and all its documents atomically (its config and counter go in one
    /// transaction; its trees are dropped after, and collected at open if a crash came between);
    /// false if it did not exist.
    fn drop_collection(&self, name: &str) -> Result<bool, StoreError>;

    /// Inserts or replaces documents atomically: all of them or none.
    fn upsert(&self, collection: &str, documents: &[NewDocument]) -> Result<Vec<Written>, StoreError>;
    /// Deletes documents atomically; returns the points of those that existed.
    fn delete(&self, collection: &str, ids: &[String]) -> Result<Vec<PointId>, StoreError>;
    fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError>;
    fn get_by_point(&self, collection: &str, point: PointId) -> Result<Option<Document>, StoreError>;
    fn count(&self, collection: &str) -> Result<usize, StoreError>;
    /// Every live document, in point order (oldest first).
    fn documents(&self, collection: &str) -> Result<Box<dyn Iterator<Item = Result<Document, StoreError>> + '_>, StoreError>;
    /// Live points above `after` with their vectors, in point order: what an index dump misses.
    fn vectors_after(&self, collection: &str, after: Option<PointId>) -> Result<Vec<(PointId, Vec<f32>)>, StoreError>;
    /// Vectors of the given points that are live, without decoding text or metadata (exact search).
    fn vectors_of(&self, collection: &str, points: &[PointId]) -> Result<Vec<(PointId, Vec<f32>)>, StoreError>;
    /// Points of all live documents, ascending.
    fn live_points(&self, collection: &str) -> Result<Vec<PointId>, StoreError>;
    /// The next point id to be assigned (every point below it was assigned once).
    fn next_point(&self, collection: &str) -> Result<PointId, StoreError>;

    /// Makes every write that returned before this call durable. Concurrent callers share flushes.
    fn flush(&self) -> Result<(), StoreError>;
}
