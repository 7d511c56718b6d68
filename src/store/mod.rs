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

pub use codec::{vector_from_bytes, vector_to_bytes};
pub use sled_store::{SledStore, DEFAULT_CACHE_BYTES};

// The domain types, re-exported where the store's callers have always found them.
pub use crate::domain::{Chunking, CollectionConfig, Document, HnswParams, IndexBackend, Metric, ModelBinding, NewDocument, NewPassage, Passage, PassageOf, PointId, Span, Written};

/// Current on-disk schema version. Older stores are migrated on open; newer ones are refused.
pub const SCHEMA_VERSION: u32 = 5;

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
    /// Creates a collection, with its annex (see `annex`) in the same transaction.
    fn create_collection(&self, config: &CollectionConfig, annex: Option<&[u8]>) -> Result<(), StoreError>;
    fn collection(&self, name: &str) -> Result<Option<CollectionConfig>, StoreError>;
    fn collections(&self) -> Result<Vec<CollectionConfig>, StoreError>;
    /// Removes a collection and all its documents atomically (its config and counter go in one
    /// transaction; its trees are dropped after, and collected at open if a crash came between);
    /// false if it did not exist.
    fn drop_collection(&self, name: &str) -> Result<bool, StoreError>;
    /// Renames collections and drops one, in one transaction, durable on return: the atomic
    /// switch of a restore (`drop` = the collection replaced, then `.restore-…` → its name) and of
    /// a re-embed (old → its kept name, shadow → the old name). Each `from` must exist and each
    /// `to` must be free once the drop and the renames before it are applied. Aliases are left
    /// as they are: they name collections by name, so an alias of the switched name follows it.
    /// Returns the dropped collection's config.
    fn switch(&self, renames: &[(String, String)], drop: Option<&str>) -> Result<Option<CollectionConfig>, StoreError>;
    /// Small durable records of background jobs (a re-embed's progress), by job id. `put_job`
    /// with `None` removes one; durable on return.
    fn jobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    fn put_job(&self, id: &str, record: Option<&[u8]>) -> Result<(), StoreError>;
    /// Records the graph backend a collection (by id) is now indexed with; durable on return.
    fn set_backend(&self, collection: &str, backend: IndexBackend) -> Result<(), StoreError>;

    /// Inserts or replaces documents atomically, all of them or none: a replaced document's old
    /// passages go in the same transaction as its new ones are written.
    fn upsert(&self, collection: &str, documents: &[NewDocument]) -> Result<Vec<Written>, StoreError>;
    /// Deletes documents atomically, passages and all; returns, per document that existed, the
    /// points of its passages.
    fn delete(&self, collection: &str, ids: &[String]) -> Result<Vec<Vec<PointId>>, StoreError>;
    /// Replaces the metadata of existing documents atomically, all or none, keeping their text,
    /// passages and points; returns, per document, its points (None: it does not exist and
    /// nothing was written for it).
    fn set_metadata(&self, collection: &str, changes: &[(String, serde_json::Map<String, serde_json::Value>)]) -> Result<Vec<Option<Vec<PointId>>>, StoreError>;
    fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError>;
    /// `get` without the text (left empty, never decoded).
    fn get_head(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError>;
    /// The document and place of a live point.
    fn passage_of(&self, collection: &str, point: PointId) -> Result<Option<PassageOf>, StoreError>;
    /// Documents (not passages).
    fn count(&self, collection: &str) -> Result<usize, StoreError>;
    /// Live documents in id (byte) order, from the first id above `after`: a stable order for
    /// paging. Without `with_text` their `text` is left empty and never decoded (listing,
    /// counting and building the payload index read metadata only).
    fn documents(&self, collection: &str, after: Option<&[u8]>, with_text: bool) -> Result<Box<dyn Iterator<Item = Result<Document, StoreError>> + '_>, StoreError>;
    /// Ids of live documents in id (byte) order, read from the keys alone (nothing decoded).
    fn document_ids(&self, collection: &str) -> Result<Box<dyn Iterator<Item = Result<String, StoreError>> + '_>, StoreError>;
    /// Live points above `after` with their vectors, in point order: what an index dump misses.
    fn vectors_after(&self, collection: &str, after: Option<PointId>) -> Result<Vec<(PointId, Vec<f32>)>, StoreError>;
    /// Up to `limit` live points above `after` with their passage text, in point order: what the
    /// lexical index misses (read in batches, so a rebuild does not hold every text at once).
    fn texts_after(&self, collection: &str, after: Option<PointId>, limit: usize) -> Result<Vec<(PointId, String)>, StoreError>;
    /// Vectors of the given points that are live, without decoding text or metadata (exact search).
    fn vectors_of(&self, collection: &str, points: &[PointId]) -> Result<Vec<(PointId, Vec<f32>)>, StoreError>;
    /// Points of all live passages, ascending.
    fn live_points(&self, collection: &str) -> Result<Vec<PointId>, StoreError>;
    /// The next point id to be assigned (every point below it was assigned once).
    fn next_point(&self, collection: &str) -> Result<PointId, StoreError>;
    /// How many writes so far changed or removed points that existed before them (deletes,
    /// replacements, metadata updates); new points do not count. Derived state persisted with
    /// this number and a watermark is still exact when the number has not moved: only points
    /// at or above the watermark are new.
    fn changes(&self, collection: &str) -> Result<u64, StoreError>;
    /// Points at or above `from` grouped by document, in point order, with each document's
    /// metadata (JSON): what derived state persisted at watermark `from` lacks.
    fn metadata_from(&self, collection: &str, from: PointId) -> Result<Vec<(Vec<PointId>, serde_json::Map<String, serde_json::Value>)>, StoreError>;

    /// Problems with how documents and their passages refer to each other (empty when
    /// consistent): orphan passages, documents listing missing passages.
    fn check_passages(&self, collection: &str) -> Result<Vec<String>, StoreError>;

    /// A small record kept beside a collection (by id) for an interface's own view of it (the
    /// Qdrant listener's vector names): written with the collection, dropped with it.
    fn annex(&self, collection: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Aliases: another name for a collection (by name), for both APIs. Each call is atomic.
    fn aliases(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Applies alias changes at once: `(alias, Some(collection))` sets, `(alias, None)` removes.
    fn change_aliases(&self, changes: &[(String, Option<String>)]) -> Result<(), StoreError>;

    /// Makes every write that returned before this call durable. Concurrent callers share flushes.
    fn flush(&self) -> Result<(), StoreError>;
}
