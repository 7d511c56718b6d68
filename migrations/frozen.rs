//! Every schema version's records, frozen as they were while that version was current.
//!
//! A migration step decodes the types of the version it starts from and encodes the types of the
//! version it ends at, never today's structs: `CollectionConfig` may change again, and a step
//! written against it would silently start producing the next version's bytes under an older
//! version number. Test fixtures for old versions are written with these types too.

use serde::{Deserialize, Serialize};

/// Schema v1: JSON everywhere. `collections`: name → JSON `CollectionConfig`;
/// `docs/<name>`: id → JSON `Document`. No point ids, no counters.
pub mod v1 {
    use super::*;

    /// v1 wrote the same config fields as v2, as JSON.
    pub use super::v2::{CollectionConfig, HnswParams, Metric, ModelBinding, Pooling};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Document {
        pub text: String,
        pub metadata: serde_json::Map<String, serde_json::Value>,
        pub vector: Vec<f32>,
    }
}

/// Schema v2: bincode 2 (standard config). `collections`: name → `CollectionConfig`;
/// `counters`: name → next point id (u64 BE); `docs/<name>`: id → `DocRecord`;
/// `points/<name>`: point id (u64 BE) → document id.
pub mod v2 {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Pooling {
        Mean,
        LastToken,
        Cls,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Metric {
        Cosine,
        Dot,
        L2,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HnswParams {
        pub m: usize,
        pub ef_construction: usize,
        pub ef_search: usize,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ModelBinding {
        pub name: String,
        pub dims: usize,
        pub pooling: Pooling,
        pub query_instruction: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct CollectionConfig {
        pub name: String,
        pub model: ModelBinding,
        pub metric: Metric,
        pub hnsw: HnswParams,
        pub created_at_ms: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct DocRecord {
        pub point: u64,
        pub text: String,
        /// The metadata object as JSON text.
        pub metadata: String,
        /// Little-endian f32s.
        pub vector: Vec<u8>,
    }

    pub fn docs_tree(name: &str) -> String {
        format!("docs/{name}")
    }

    pub fn points_tree(name: &str) -> String {
        format!("points/{name}")
    }
}

/// Schema v3: as v2, but a collection's trees, counter and index directory are keyed by an
/// immutable id. `collections`: name → `CollectionConfig`; `counters`: id → next point id;
/// `c/<id>/docs`: id → `v2::DocRecord`; `c/<id>/points`: point id → document id.
pub mod v3 {
    use super::*;

    pub use super::v2::{DocRecord, HnswParams, Metric, ModelBinding, Pooling};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct CollectionConfig {
        pub id: String,
        pub name: String,
        pub model: ModelBinding,
        pub metric: Metric,
        pub hnsw: HnswParams,
        pub created_at_ms: u64,
    }

    pub fn docs_tree(id: &str) -> String {
        format!("c/{id}/docs")
    }

    pub fn points_tree(id: &str) -> String {
        format!("c/{id}/points")
    }
}

/// Schema v4: documents are split into passages. `collections`: name → `CollectionConfig` (v3's
/// fields plus `chunking`); `c/<id>/documents`: document id → `DocRecord`; `c/<id>/passages`:
/// point id (u64 BE) → `PassageRecord`.
pub mod v4 {
    use super::*;

    pub use super::v2::{HnswParams, Metric, ModelBinding, Pooling};

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Chunking {
        pub max_tokens: usize,
        pub overlap_tokens: usize,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct CollectionConfig {
        pub id: String,
        pub name: String,
        pub model: ModelBinding,
        pub metric: Metric,
        pub hnsw: HnswParams,
        pub created_at_ms: u64,
        pub chunking: Option<Chunking>,
    }

    /// Character offsets, end exclusive.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Span {
        pub start: usize,
        pub end: usize,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct DocRecord {
        pub text: String,
        /// The metadata object as JSON text.
        pub metadata: String,
        /// (point, span) of each passage, in text order.
        pub passages: Vec<(u64, Span)>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct PassageRecord {
        pub document: String,
        pub index: u32,
        pub span: Span,
        /// Little-endian f32s.
        pub vector: Vec<u8>,
    }

    pub fn docs_tree(id: &str) -> String {
        format!("c/{id}/documents")
    }

    pub fn points_tree(id: &str) -> String {
        format!("c/{id}/passages")
    }
}

/// Schema v5: collections may have no model (vectors from clients) and name their ANN backend.
/// Documents and passages are the v4 records.
pub mod v5 {
    use super::*;

    pub use super::v4::{docs_tree, points_tree, Chunking, DocRecord, HnswParams, Metric, ModelBinding, PassageRecord, Pooling, Span};

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum IndexBackend {
        Usearch,
        UsearchF16,
        UsearchI8,
        HnswRs,
        /// Added after v5 was frozen, at the end: every record written before decodes as it did
        /// (bincode numbers variants in order), so no migration step is needed.
        Hnsw,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct CollectionConfig {
        pub id: String,
        pub name: String,
        pub model: Option<ModelBinding>,
        pub dims: usize,
        pub metric: Metric,
        pub hnsw: HnswParams,
        pub backend: IndexBackend,
        pub created_at_ms: u64,
        pub chunking: Option<Chunking>,
    }
}

/// bincode 2, standard config: the encoding of v2, v3, v4 and v5 records.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(value, _)| value).map_err(|e| e.to_string())
}
