//! Request and response bodies of the REST API (kept apart from the handlers).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::embed::ExecutionProvider;

// ---------- system ----------

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    pub version: &'static str,
    /// Whether models and indexes are loaded (same as `GET /ready`).
    pub ready: bool,
    pub models: Vec<ModelStatus>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelStatus {
    pub name: String,
    pub dims: usize,
    #[schema(value_type = String, example = "CPUExecutionProvider")]
    pub execution_provider: ExecutionProvider,
    pub default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
}

// ---------- OpenAI-compatible embeddings ----------

#[derive(Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// A string or an array of strings. Token arrays are not supported.
    #[schema(value_type = Object)]
    pub input: Value,
    /// A model loaded by this server (see `GET /health`).
    pub model: String,
    /// `float` (default) or `base64` (little-endian float32, as the OpenAI API).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Matryoshka width, for models that allow it.
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub dimensions: Option<usize>,
    /// Accepted and ignored, as OpenAI clients send it.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    pub object: &'static str,
    pub data: Vec<EmbeddingObject>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingObject {
    pub object: &'static str,
    pub index: usize,
    /// An array of floats, or a base64 string when `encoding_format` is `base64`.
    #[schema(value_type = Object)]
    pub embedding: Value,
}

/// `GET /v1/models`, as OpenAI's API lists models.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelObject {
    /// The name to pass as `model`.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds when the server loaded it.
    pub created: u64,
    pub owned_by: &'static str,
    /// Other names it answers to (hub ids).
    pub aliases: Vec<String>,
    pub dims: usize,
    /// Longest input in tokens (longer texts are split into passages on ingest).
    pub max_tokens: usize,
    /// What the load-time self-test found; absent when the manifest has no probes.
    pub self_test: Option<SelfTestObject>,
}

/// A passed self-test (a model that fails it is never served).
#[derive(Serialize, ToSchema)]
pub struct SelfTestObject {
    pub probes: usize,
    /// Largest cosine distance between a probe's vector and its reference.
    pub worst_cosine_distance: f64,
    pub milliseconds: f64,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

// ---------- collections ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricName {
    Cosine,
    Dot,
    L2,
}

/// The ANN library behind the graph (benches/results/search.md compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendName {
    /// usearch, f32 vectors.
    Usearch,
    /// usearch, f16 vectors (cosine only).
    UsearchF16,
    /// usearch, i8 vectors (cosine only).
    UsearchI8,
    /// hnsw_rs (collections made before backends were selectable).
    HnswRs,
    /// akidb's own HNSW: f32 vectors, SIMD kernels picked at run time (default).
    Hnsw,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Default: `hnsw`.
    pub backend: Option<BackendName>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct HnswConfig {
    /// Links per node, 2..=256 (default 16).
    #[schema(minimum = 2, maximum = 256)]
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub m: Option<usize>,
    /// Build breadth, 1..=10000 (default 200).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub ef_construction: Option<usize>,
    /// Default search breadth, 1..=10000 (default 64).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub ef_search: Option<usize>,
}

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Longest passage, in the model's tokens (special tokens not counted); at most the model's
    /// window less its special tokens.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "super::serde_strict::count")]
    pub max_tokens: usize,
    /// Tokens shared by consecutive passages; capped at `max_tokens - 1`.
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "super::serde_strict::count")]
    pub overlap_tokens: usize,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionRequest {
    /// `[A-Za-z0-9_-]{1,64}`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// A model loaded by this server; default: the server's default model, unless `dims` is
    /// given without a model.
    pub model: Option<String>,
    /// Vector width. Given without `model`: the collection takes vectors from its clients
    /// (documents carry `vector`) and is bound to no model. Given with one: must be its width.
    #[schema(minimum = 1, maximum = 16384)]
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub dims: Option<usize>,
    /// `cosine` (default), `dot` or `l2`.
    pub metric: Option<MetricName>,
    #[serde(default, deserialize_with = "super::serde_strict::object")]
    pub hnsw: Option<HnswConfig>,
    #[serde(default, deserialize_with = "super::serde_strict::object")]
    pub index: Option<IndexConfig>,
    /// How documents are split into passages. Absent: the model's window (e.g. 254 tokens for
    /// MiniLM) with a 1/8 overlap. `null`: one passage per document, truncated at the window.
    #[serde(default, deserialize_with = "super::serde_strict::absent_or_null_object")]
    #[schema(value_type = Option<ChunkingConfig>)]
    pub chunking: Option<Option<ChunkingConfig>>,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionInfo {
    pub name: String,
    /// `null`: the collection takes vectors from its clients.
    pub model: Option<String>,
    pub dims: usize,
    pub metric: MetricName,
    pub hnsw: HnswInfo,
    /// `null`: one passage per document.
    pub chunking: Option<ChunkingConfig>,
    pub created_at_ms: u64,
    pub documents: usize,
    /// Passages (points) of all documents.
    pub passages: usize,
    pub index: IndexInfo,
}

#[derive(Serialize, ToSchema)]
pub struct HnswInfo {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

#[derive(Serialize, ToSchema)]
pub struct IndexInfo {
    pub backend: BackendName,
    /// Passages in the lexical (BM25) index.
    pub lexical_passages: u64,
    /// Points in the graph, tombstones included.
    pub graph_points: usize,
    /// Deleted or replaced points still in the graph (compacted past 20 %).
    pub tombstones: usize,
    pub compacting: bool,
    /// The breadth (ef) a search that names none uses: the configured `ef_search`, or above it the
    /// breadth measured to keep recall@10 at 0.97 on the collection's own points.
    pub search_ef: usize,
    /// Recall@10 measured at `search_ef` on a sample of the collection's points, and the
    /// collection's size then; absent until measured (collections of 5,000 points or more, after
    /// a periodic dump).
    pub calibrated_recall: Option<f64>,
    pub calibrated_points: Option<u64>,
    /// Bytes held in memory by the graph's vectors, the graph's structure (links, ids; 0 where
    /// the backend does not tell) and the payload index.
    pub memory: IndexMemory,
}

#[derive(Serialize, ToSchema)]
pub struct IndexMemory {
    pub vectors: usize,
    pub graph: usize,
    pub payload_index: usize,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<CollectionInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    /// How many things were deleted.
    pub deleted: usize,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    /// The backend to rebuild the graph on (default: usearch, the default backend).
    pub backend: Option<BackendName>,
}

#[derive(Serialize, ToSchema)]
pub struct RebuildStarted {
    pub name: String,
    /// The backend the graph is being rebuilt on.
    pub backend: BackendName,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasRequest {
    /// The collection the alias names (by its own name).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub collection: String,
}

#[derive(Serialize, ToSchema)]
pub struct AliasInfo {
    pub alias: String,
    pub collection: String,
}

#[derive(Serialize, ToSchema)]
pub struct AliasList {
    /// By alias.
    pub aliases: Vec<AliasInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct AliasDeleted {
    /// Aliases deleted: 1.
    pub deleted: usize,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionDeleted {
    /// Collections deleted: 1.
    pub deleted: usize,
    /// Documents the collection held.
    pub documents: usize,
}

// ---------- documents ----------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentInput {
    /// 1 to 256 characters; a UUIDv7 is generated when absent. An existing id is replaced.
    #[schema(min_length = 1, max_length = 256)]
    pub id: Option<String>,
    /// Not empty or only whitespace, unless `vector` is given (then it may be absent).
    // Rust's `char::is_whitespace` set, spelled out: `\S` means different sets in different regex engines.
    #[schema(pattern = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]")]
    pub text: Option<String>,
    /// A JSON object (at most 64 KiB serialized); filters read its fields.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// The document's vector, brought by the client (the collection's width; finite; non-zero
    /// for cosine): stored as its one passage, not embedded. Required in a collection without a model.
    pub vector: Option<Vec<f64>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocumentsRequest {
    /// Upserts in order: an id given twice ends with its last document.
    #[schema(min_items = 1)]
    pub documents: Vec<DocumentInput>,
}

#[derive(Serialize, ToSchema)]
pub struct AddDocumentsResponse {
    pub ids: Vec<String>,
    /// Per document: whether its text was cut at the model's token limit (only in a collection
    /// without chunking).
    pub truncated: Vec<bool>,
    /// Per document: tokens embedded, over all its passages.
    pub tokens: Vec<usize>,
    /// Per document: passages it was split into.
    pub passages: Vec<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct PassageInfo {
    /// Character offsets in the document's text, end exclusive.
    pub start: usize,
    pub end: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

#[derive(Serialize, ToSchema)]
pub struct DocumentResponse {
    pub id: String,
    pub text: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// The passages the text was split into, in order.
    pub passages: Vec<PassageInfo>,
    /// The vector, for a document of one passage (see `passages` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetDocumentQuery {
    /// Include the stored vectors.
    #[serde(default)]
    pub include_vector: bool,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDocumentsQuery {
    /// Documents per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page; absent for the first page.
    #[param(pattern = "^([0-9a-fA-F]{2})+$")]
    pub cursor: Option<String>,
    /// A metadata filter as JSON (same syntax as search), e.g. `{"lang":"en"}`.
    #[serde(rename = "where")]
    #[param(rename = "where")]
    pub filter: Option<String>,
    /// Comma-separated fields to return besides the id: `text`, `metadata` (default both).
    #[param(pattern = "^(text|metadata)(,(text|metadata))*$")]
    pub include: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ListedDocument {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Passages the text was split into.
    pub passages: usize,
}

#[derive(Serialize, ToSchema)]
pub struct DocumentPage {
    /// Documents in id order (byte order of the ids).
    pub documents: Vec<ListedDocument>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// A metadata filter (same syntax as search); absent: every document.
    #[serde(rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct CountResponse {
    /// Documents (not passages) that match.
    pub count: usize,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteDocumentsRequest {
    pub ids: Option<Vec<String>>,
    /// A metadata filter (same syntax as search).
    #[serde(rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

// ---------- search ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    Text,
    Metadata,
    Vector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Nearest passages by the collection's embedding model.
    Dense,
    /// BM25 over the passages' words (identifiers kept whole and in parts, English stemming).
    Lexical,
    /// Both, fused by Reciprocal Rank Fusion.
    Hybrid,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct FusionWeights {
    /// Weight of the dense ranking in hybrid mode (default: the model's tuned weight, 3 for
    /// bge-small-en-v1.5; else 1).
    #[schema(minimum = 0, maximum = 1e6)]
    pub dense: Option<f32>,
    /// Weight of the lexical ranking in hybrid mode (default: the model's, else 1).
    #[schema(minimum = 0, maximum = 1e6)]
    pub lexical: Option<f32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Text to embed with the collection's model (as a query). Give this or `vector`. At most
    /// 16,384 characters, and 1,024 distinct words in lexical and hybrid mode.
    // Rust's `char::is_whitespace` set, spelled out: `\S` means different sets in different regex engines.
    #[schema(max_length = 16384, pattern = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]")]
    pub query: Option<String>,
    /// A query vector of the collection's width. Give this or `query`.
    pub vector: Option<Vec<f64>>,
    /// Results to return, 1..=1000 (default 10).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub k: Option<usize>,
    /// Metadata filter: `{"field": value}`, `$eq $ne $gt $gte $lt $lte $in $nin $and $or`; or
    /// Qdrant's filter language (`must`, `should`, `must_not`, `min_should` with nested keys,
    /// arrays, `nested`, `is_empty`, `is_null`, `values_count`, text, datetime ranges, `has_id`
    /// of document ids).
    #[serde(rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Search breadth, 1..=10000 (default: the collection's `ef_search`).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub ef: Option<usize>,
    /// Fields to return with each hit (default: text and metadata).
    pub include: Option<Vec<Include>>,
    /// `dense`, `lexical` or `hybrid` (default for text queries: hybrid; vector queries are dense).
    pub mode: Option<SearchMode>,
    /// Return the k best passages rather than the k best documents (default false).
    pub passages: Option<bool>,
    /// Hybrid mode: RRF constant k (default: the model's tuned value, 30 for bge-small-en-v1.5;
    /// else 60).
    #[schema(minimum = 0, maximum = 1e6)]
    pub rrf_k: Option<f32>,
    /// Hybrid mode: weights of the two rankings.
    #[serde(default, deserialize_with = "super::serde_strict::object")]
    pub weights: Option<FusionWeights>,
    /// Candidate passages each side brings before grouping and fusion, 1..=10000 (default
    /// max(4k, 200) in hybrid mode, else max(4k, 50); grown when grouping leaves fewer than k
    /// documents).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "super::serde_strict::opt_count")]
    pub candidates: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSearchRequest {
    #[schema(min_items = 1)]
    pub searches: Vec<SearchRequest>,
}

#[derive(Serialize, ToSchema)]
pub struct PassageRef {
    /// Position among the document's passages.
    pub index: usize,
    /// Character offsets in the document's text, end exclusive.
    pub start: usize,
    pub end: usize,
}

#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    /// The document's id.
    pub id: String,
    /// Dense mode: cosine similarity or inner product (higher is better), or l2 distance (lower
    /// is better); lexical: BM25; hybrid: the RRF score. Hits are always best first.
    pub score: f32,
    /// The passage that matched (a document's best).
    pub passage: PassageRef,
    /// The passage's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    pub results: Vec<SearchHit>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchSearchResponse {
    pub results: Vec<Vec<SearchHit>>,
}

/// A kept snapshot of a collection (akidb's own format: see `/collections/{name}/snapshots`).
#[derive(Serialize, ToSchema)]
pub struct SnapshotDescription {
    /// The file's name: download it with `GET /collections/{name}/snapshots/{snapshot}`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// RFC 3339, UTC: the snapshot's moment (a listing gives the file's time).
    pub created_at: String,
    pub created_at_ms: u64,
    /// Documents and passages it holds (known when it is made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passages: Option<u64>,
    /// CRC-32 over the file's body, as its trailer holds it (known when it is made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotList {
    /// Newest first.
    pub snapshots: Vec<SnapshotDescription>,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotDeleted {
    /// Snapshots deleted: 1.
    pub deleted: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RestoreParams {
    /// Replace the collection of that name if there is one (else 409).
    pub replace: Option<bool>,
}

/// What a restore made.
#[derive(Serialize, ToSchema)]
pub struct RestoreResponse {
    pub collection: String,
    pub documents: u64,
    pub passages: u64,
    /// The snapshot's size.
    pub bytes: u64,
    pub seconds: f64,
    /// A collection of that name existed and was replaced.
    pub replaced: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReembedRequest {
    /// The model to embed with (a loaded model's name or hub id); it may be the collection's own
    /// (to change only the chunking).
    pub model: String,
    /// How documents are split for the new model. Absent: its window with a 1/8 overlap.
    /// `null`: one passage per document.
    #[serde(default, deserialize_with = "super::serde_strict::absent_or_null_object")]
    #[schema(value_type = Option<ChunkingConfig>)]
    pub chunking: Option<Option<ChunkingConfig>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStateName {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// A re-embed job and its progress.
#[derive(Serialize, ToSchema)]
pub struct JobInfo {
    pub id: String,
    /// The collection being re-embedded (the name the new collection takes at the switch).
    pub collection: String,
    pub model: String,
    pub chunking: Option<ChunkingConfig>,
    pub state: JobStateName,
    /// Documents read (and embedded when new or changed) so far, of `documents_total` (the
    /// count when it began; writes made meanwhile are caught up before the switch).
    pub documents_done: u64,
    pub documents_total: u64,
    /// Documents per second since this server (re)started the job.
    pub rate_per_second: Option<f64>,
    pub eta_seconds: Option<f64>,
    /// The name the old collection keeps after the switch, until it is deleted.
    pub kept_as: String,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobInfo>,
}
