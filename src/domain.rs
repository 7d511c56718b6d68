//! Domain types shared by the store, the engine, the service layer and the API: collections and
//! their configuration, documents and the passages they are split into.
//!
//! A *document* is the unit of the API (ids, metadata, upsert, delete, counts). A *passage* is a
//! span of a document's text with its own vector: the unit of the indexes. Every passage is a
//! point (`PointId`), and a document's passages are written and removed together.

use serde::{Deserialize, Serialize};

use crate::model::Pooling;

/// Point ids are assigned per collection, increasing, never reused: an index's watermark is a point id.
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

/// The ANN library behind a collection's graph, chosen when it is created and kept for its life.
/// Measured in benches/results/search.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IndexBackend {
    /// usearch with f32 vectors.
    Usearch,
    /// usearch with f16 vectors (cosine only): half the vector bytes.
    UsearchF16,
    /// usearch with i8 vectors (cosine only): a quarter of the vector bytes, lower recall.
    UsearchI8,
    /// hnsw_rs: the backend of collections created before schema v5.
    HnswRs,
    /// akidb's own HNSW (src/index/native): the default, faster than usearch and hnswlib here
    /// (benches/results/search.md).
    #[default]
    Hnsw,
}

impl IndexBackend {
    pub const ALL: [IndexBackend; 5] = [IndexBackend::Usearch, IndexBackend::UsearchF16, IndexBackend::UsearchI8, IndexBackend::HnswRs, IndexBackend::Hnsw];

    /// The name the API and the config use.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexBackend::Usearch => "usearch",
            IndexBackend::UsearchF16 => "usearch_f16",
            IndexBackend::UsearchI8 => "usearch_i8",
            IndexBackend::HnswRs => "hnsw_rs",
            IndexBackend::Hnsw => "hnsw",
        }
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

/// How a collection splits documents into passages, counted in tokens of its model's tokenizer
/// (special tokens not counted: the model adds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunking {
    pub max_tokens: usize,
    pub overlap_tokens: usize,
}

/// A collection's on-disk layout is keyed by `id`, never by `name`: a collection dropped and
/// re-created under the same name is a different collection with fresh trees, counter and index
/// directory, and a write still in flight for the old one cannot land in the new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Immutable identity (a UUID), assigned when the collection is created.
    pub id: String,
    pub name: String,
    /// `None`: the collection takes vectors from its clients only (no text queries).
    pub model: Option<ModelBinding>,
    /// Vector width (the model's, when bound to one).
    pub dims: usize,
    pub metric: Metric,
    pub hnsw: HnswParams,
    pub backend: IndexBackend,
    /// Unix time, milliseconds.
    pub created_at_ms: u64,
    /// `None`: one passage (one vector) per document, truncated at the model's window.
    pub chunking: Option<Chunking>,
}

/// Where a passage lies in its document's text, in characters (Unicode scalar values),
/// `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// The span's text within `text`; empty if the span does not fit.
    pub fn slice<'a>(&self, text: &'a str) -> &'a str {
        slices(text, std::slice::from_ref(self))[0]
    }
}

/// The texts of many spans of one text, in one pass over it (slicing span by span would walk the
/// text from its start each time: quadratic for a long document of many passages).
pub fn slices<'a>(text: &'a str, spans: &[Span]) -> Vec<&'a str> {
    let mut wanted: Vec<usize> = spans.iter().flat_map(|s| [s.start, s.end]).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut bytes = std::collections::HashMap::with_capacity(wanted.len());
    let mut next = wanted.iter().peekable();
    for (char_index, (byte, _)) in text.char_indices().chain(std::iter::once((text.len(), ' '))).enumerate() {
        while next.peek().is_some_and(|&&w| w == char_index) {
            bytes.insert(char_index, byte);
            next.next();
        }
        if next.peek().is_none() {
            break;
        }
    }
    spans
        .iter()
        .map(|s| match (bytes.get(&s.start), bytes.get(&s.end)) {
            (Some(&a), Some(&b)) if b > a => &text[a..b],
            _ => "",
        })
        .collect()
}

/// A stored passage: its point and its span in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passage {
    pub point: PointId,
    pub span: Span,
}

/// A document as stored. Vectors live with its passages (`DocumentStore::vectors_of`).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub text: String,
    /// A JSON object.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// In text order; never empty.
    pub passages: Vec<Passage>,
}

/// Which document a point belongs to, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassageOf {
    pub document: String,
    /// Position among the document's passages.
    pub index: usize,
    pub span: Span,
}

/// A passage to write: the store assigns its point.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPassage {
    pub span: Span,
    /// Normalized when the collection's metric is cosine (the engine does it).
    pub vector: Vec<f32>,
}

/// A document to write with its passages (at least one).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub id: String,
    pub text: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub passages: Vec<NewPassage>,
}

impl NewDocument {
    /// A document that is one passage: its whole text with one vector.
    pub fn single(id: String, text: String, metadata: serde_json::Map<String, serde_json::Value>, vector: Vec<f32>) -> Self {
        let span = Span { start: 0, end: text.chars().count() };
        NewDocument { id, text, metadata, passages: vec![NewPassage { span, vector }] }
    }
}

/// What an upsert did to one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The points of its passages, in order.
    pub points: Vec<PointId>,
    /// The points of the passages it had before, now dead (tombstones in the index).
    pub replaced: Vec<PointId>,
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn spans_slice_by_characters() {
        let text = "héllo wörld";
        assert_eq!(Span { start: 0, end: 5 }.slice(text), "héllo");
        assert_eq!(Span { start: 6, end: 11 }.slice(text), "wörld");
        assert_eq!(Span { start: 10, end: 11 }.slice(text), "d");
        assert_eq!(Span { start: 3, end: 3 }.slice(text), "");
        assert_eq!(Span { start: 6, end: 12 }.slice(text), "");
        assert_eq!(Span { start: 0, end: 11 }.slice(text), text);
        let spans = [Span { start: 6, end: 11 }, Span { start: 0, end: 5 }, Span { start: 3, end: 8 }, Span { start: 6, end: 12 }, Span { start: 4, end: 4 }];
        let one_pass = super::slices(text, &spans);
        assert_eq!(one_pass, ["wörld", "héllo", "lo wö", "", ""]);
    }
}
