//! The service layer: what every interface calls (the REST handlers, the examples, the CLI).
//!
//! Ingest = validate → split into passages → embed (bulk lane) → store + index. Search = embed
//! the query (interactive lane) → dense | lexical → fuse → group by document → fetch. Handlers
//! only parse, call and map `ServiceError` to HTTP; nothing here knows about HTTP.

pub mod aliases;
pub mod browse;
pub mod ingest;
pub mod passages;
pub mod points;
pub mod reembed;
pub mod search;
pub mod snapshots;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Chunking, CollectionConfig, HnswParams, IndexBackend, Metric, ModelBinding};
use crate::embed::{EmbedError, EmbeddingProvider, OnnxProvider};
use crate::engine::{Collection, Engine, EngineError};

pub use browse::Page;
pub use ingest::{DocumentInput, Ingested, PreparedIngest};
pub use passages::{default_chunking, Splitter};
pub use search::{Fusion, FusionChoice, Mode, SearchHit, SearchQuery};

#[derive(Debug, Clone)]
pub struct Limits {
    /// Most documents in one add request.
    pub max_batch_documents: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Requests served at once; more get 503 with Retry-After.
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// Largest metadata object per document, serialized.
    pub max_metadata_bytes: usize,
    pub max_k: usize,
    /// Most searches in one batch request, and most inputs in one embeddings request.
    pub max_batch_queries: usize,
    /// Largest snapshot upload (streamed to disk, never held in memory).
    pub max_snapshot_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_documents: 1024,
            max_body_bytes: 32 * 1024 * 1024,
            max_in_flight: 512,
            request_timeout: Duration::from_secs(120),
            max_metadata_bytes: 64 * 1024,
            max_k: 1000,
            max_batch_queries: 2048,
            max_snapshot_bytes: 64 << 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong; `code` is a stable machine-readable name.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("model '{name}' is not loaded by this server; loaded: {loaded:?}")]
    ModelNotFound { name: String, loaded: Vec<String> },
    #[error("document '{0}' not found")]
    DocumentNotFound(String),
    #[error("{0}")]
    SnapshotNotFound(String),
    /// A collection whose vectors akidb cannot make again (brought by its clients).
    #[error("{0}")]
    NotReembeddable(String),
    #[error("job '{0}' not found")]
    JobNotFound(String),
    /// The request conflicts with what is under way (a second re-embed of one collection).
    #[error("{0}")]
    Conflict(String),
    #[error("alias '{0}' not found")]
    AliasNotFound(String),
    #[error("'{0}' is the name of a collection; an alias needs a name of its own")]
    AliasIsCollection(String),
    #[error("collection '{collection}' is bound to model '{model}', which this server has not loaded")]
    ModelNotLoaded { collection: String, model: String },
    #[error("collection '{0}' was built with a different model than the one loaded under its name: {1}")]
    ModelMismatch(String, String),
    #[error("no model is loaded")]
    NoModel,
    #[error("collection '{0}' has no model: {1}")]
    NoModelBound(String, &'static str),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Embed(#[from] Arc<EmbedError>),
    #[error("worker task failed: {0}")]
    Worker(String),
}

impl ServiceError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ServiceError::Invalid { code: "invalid_request", message: message.into() }
    }
}

impl From<tokio::task::JoinError> for ServiceError {
    fn from(err: tokio::task::JoinError) -> Self {
        ServiceError::Worker(err.to_string())
    }
}

/// Runs blocking engine work (sled, fsync, graph, tantivy) off the async workers.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work).await?
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How a new collection splits documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkingChoice {
    /// The model's window with a 1/8 overlap.
    #[default]
    Default,
    /// One passage per document (truncated at the window).
    Off,
    Custom(Chunking),
}

/// What a new collection is made of; `None` fields take the defaults.
#[derive(Debug, Clone, Default)]
pub struct NewCollection {
    pub name: String,
    pub model: Option<String>,
    /// Vector width. Without `model`: a collection of vectors brought by clients, bound to no model.
    pub dims: Option<usize>,
    /// `None`: the default backend.
    pub backend: Option<IndexBackend>,
    pub metric: Option<Metric>,
    pub m: Option<usize>,
    pub ef_construction: Option<usize>,
    pub ef_search: Option<usize>,
    pub chunking: ChunkingChoice,
    /// An interface's own record of the collection (the Qdrant listener's `View`), stored in
    /// the same transaction as the collection.
    pub annex: Option<Vec<u8>>,
}

impl NewCollection {
    /// The graph parameters asked for, defaults for the rest.
    fn hnsw_params(&self) -> HnswParams {
        let defaults = HnswParams::default();
        HnswParams {
            m: self.m.unwrap_or(defaults.m),
            ef_construction: self.ef_construction.unwrap_or(defaults.ef_construction),
            ef_search: self.ef_search.unwrap_or(defaults.ef_search),
        }
    }
}

/// The engine and the models, once loaded. Cloning is cheap (shared parts): background work
/// (restores, re-embeds) takes a clone.
#[derive(Clone)]
pub struct Service {
    pub engine: Arc<Engine>,
    /// Loaded models; the first is the default.
    pub models: Vec<Arc<OnnxProvider>>,
    pub limits: Limits,
    /// Serializes alias changes (each reads the table, then writes it), collection drops
    /// (which drop their aliases) and the switches of restores and re-embeds. Taken before the
    /// engine's own locks (a collection's writer, the engine's ddl), never under them.
    aliases_lock: Arc<parking_lot::Mutex<()>>,
    /// Re-embed jobs (`reembed.rs`).
    jobs: Arc<reembed::Jobs>,
}

/// The chunking a collection of `model` gets for a request's choice (checked against the model).
pub(crate) fn resolve_chunking(model: &OnnxProvider, choice: ChunkingChoice) -> Result<Option<Chunking>, ServiceError> {
    Ok(match choice {
        ChunkingChoice::Default => Some(default_chunking(model.encoder())),
        ChunkingChoice::Off => None,
        ChunkingChoice::Custom(mut c) => {
            let window = model.encoder().window();
            if c.overlap_tokens > window {
                return Err(ServiceError::Invalid { code: "invalid_chunking", message: format!("chunking.overlap_tokens must be at most {window} (the model's window), got {}", c.overlap_tokens) });
            }
            // An overlap as large as the passage is capped (the answer shows what applies):
            // the schema cannot relate two fields, and a capped overlap is still an overlap.
            c.overlap_tokens = c.overlap_tokens.min(c.max_tokens.saturating_sub(1));
            passages::validate_chunking(&c, model.encoder()).map_err(|message| ServiceError::Invalid { code: "invalid_chunking", message })?;
            Some(c)
        }
    })
}

/// Refuses a set of models in which two answer to one name (a name or an alias, any case):
/// a request naming it would reach whichever loaded first.
pub fn check_model_names(models: &[Arc<OnnxProvider>]) -> Result<(), String> {
    for (i, a) in models.iter().enumerate() {
        for b in &models[i + 1..] {
            let (a, b) = (a.info(), b.info());
            if let Some(name) = std::iter::once(&b.name).chain(&b.aliases).find(|n| a.answers_to(n)) {
                return Err(format!("models '{}' and '{}' both answer to '{name}'; load only one of them", a.name, b.name));
            }
        }
    }
    Ok(())
}

impl Service {
    pub fn new(engine: Arc<Engine>, models: Vec<Arc<OnnxProvider>>, limits: Limits) -> Self {
        Service { engine, models, limits, aliases_lock: Arc::default(), jobs: Arc::default() }
    }

    /// A loaded model by its name, else by a name it answers to (its hub id, any case; the
    /// server refuses to load two models answering to one name, see `check_model_names`).
    pub fn model(&self, name: &str) -> Result<&Arc<OnnxProvider>, ServiceError> {
        self.model_named(name).or_else(|| self.models.iter().find(|m| m.info().answers_to(name))).ok_or_else(|| ServiceError::ModelNotFound {
            name: name.to_owned(),
            loaded: self.models.iter().map(|m| m.info().name.clone()).collect(),
        })
    }

    /// A loaded model by its own name exactly, as a collection's binding holds it (no alias).
    pub fn model_named(&self, name: &str) -> Option<&Arc<OnnxProvider>> {
        self.models.iter().find(|m| m.info().name == name)
    }

    pub fn default_model(&self) -> Result<&Arc<OnnxProvider>, ServiceError> {
        self.models.first().ok_or(ServiceError::NoModel)
    }

    /// A collection by its name or an alias.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>, ServiceError> {
        // The engine's own collections (a restore in progress, a re-embed's shadow) are not
        // for clients to read or write.
        if crate::engine::is_internal(name) {
            return Err(EngineError::CollectionNotFound(name.to_owned()).into());
        }
        match self.engine.collection(name) {
            Err(EngineError::CollectionNotFound(_)) => match self.resolve_name(name)? {
                target if target != name => Ok(self.engine.collection(&target)?),
                _ => Err(EngineError::CollectionNotFound(name.to_owned()).into()),
            },
            found => Ok(found?),
        }
    }

    /// Every collection, by name.
    pub fn collections(&self) -> Vec<Arc<Collection>> {
        self.engine.collections()
    }

    /// The loaded model a collection is bound to. Refused when the server has not loaded it, or
    /// when a model of that name now differs from the one the collection's vectors were made with.
    pub fn bound_model(&self, collection: &Collection, needed_for: &'static str) -> Result<&Arc<OnnxProvider>, ServiceError> {
        let binding = collection.config.model.as_ref().ok_or_else(|| ServiceError::NoModelBound(collection.name().to_string(), needed_for))?;
        // A binding holds the model's own name: matched exactly, never through an alias.
        let provider = self.model_named(&binding.name).ok_or_else(|| ServiceError::ModelNotLoaded { collection: collection.name().to_string(), model: binding.name.clone() })?;
        let info = provider.info();
        if info.dims != binding.dims || info.pooling != binding.pooling || info.query_instruction != binding.query_instruction {
            return Err(ServiceError::ModelMismatch(
                collection.name().to_string(),
                format!("built with {} dims, {:?} pooling; loaded: {} dims, {:?} pooling", binding.dims, binding.pooling, info.dims, info.pooling),
            ));
        }
        Ok(provider)
    }

    /// Creates a collection bound to a loaded model, or, given `dims` and no model, one that
    /// takes vectors from its clients.
    pub async fn create_collection(&self, request: NewCollection) -> Result<Arc<Collection>, ServiceError> {
        if self.aliases()?.iter().any(|(alias, _)| *alias == request.name) {
            return Err(ServiceError::Invalid { code: "name_is_alias", message: format!("'{}' is an alias; delete it first or pick another name", request.name) });
        }
        let model = match (&request.model, request.dims) {
            (Some(name), _) => self.model(name)?,
            (None, Some(dims)) => return self.create_vector_collection(request, dims).await,
            (None, None) => self.default_model()?,
        };
        if let Some(dims) = request.dims.filter(|&d| d != model.info().dims) {
            return Err(ServiceError::Invalid { code: "dimension_mismatch", message: format!("dims is {dims}, but model '{}' makes {} dimensions", model.info().name, model.info().dims) });
        }
        let chunking = resolve_chunking(model, request.chunking)?;
        let info = model.info();
        let hnsw = request.hnsw_params();
        let config = CollectionConfig {
            id: String::new(),
            name: request.name,
            model: Some(ModelBinding { name: info.name.clone(), dims: info.dims, pooling: info.pooling, query_instruction: info.query_instruction.clone() }),
            dims: info.dims,
            metric: request.metric.unwrap_or_default(),
            hnsw,
            backend: request.backend.unwrap_or_default(),
            created_at_ms: now_ms(),
            chunking,
        };
        let engine = self.engine.clone();
        blocking(move || Ok(engine.create_collection_with(config, request.annex)?)).await
    }

    async fn create_vector_collection(&self, request: NewCollection, dims: usize) -> Result<Arc<Collection>, ServiceError> {
        if let ChunkingChoice::Custom(_) = request.chunking {
            return Err(ServiceError::Invalid { code: "invalid_chunking", message: "chunking needs a model: a collection without one stores each document's vector as given".into() });
        }
        let hnsw = request.hnsw_params();
        let config = CollectionConfig {
            id: String::new(),
            name: request.name,
            model: None,
            dims,
            metric: request.metric.unwrap_or_default(),
            hnsw,
            backend: request.backend.unwrap_or_default(),
            created_at_ms: now_ms(),
            chunking: None,
        };
        let engine = self.engine.clone();
        blocking(move || Ok(engine.create_collection_with(config, request.annex)?)).await
    }

    /// Drops a collection; returns how many documents it held.
    pub async fn drop_collection(&self, name: &str) -> Result<usize, ServiceError> {
        if crate::engine::is_internal(name) {
            return Err(EngineError::CollectionNotFound(name.to_owned()).into());
        }
        let engine = self.engine.clone();
        let name = name.to_owned();
        let aliases = self.aliases_lock.clone();
        blocking(move || {
            // Its aliases go with it (in the store's drop); no alias change may slip between.
            let _aliases = aliases.lock();
            let documents = engine.collection(&name)?.stats().documents;
            engine.drop_collection(&name)?;
            Ok(documents)
        })
        .await
    }

    /// Rebuilds a collection's graph from the store on `backend` (default: the default backend)
    /// in the background: searches use the old graph until the swap. `Ok(false)`: one is running.
    pub fn rebuild_collection(&self, name: &str, backend: Option<crate::domain::IndexBackend>) -> Result<(crate::domain::IndexBackend, bool), ServiceError> {
        let backend = backend.unwrap_or_default();
        let started = self.collection(name)?.start_rebuild(backend).map_err(|e| match e {
            EngineError::Index(crate::index::IndexError::InvalidParams(message)) => ServiceError::Invalid { code: "invalid_backend", message },
            other => other.into(),
        })?;
        Ok((backend, started))
    }

    /// A document, with its passages' vectors when asked.
    pub async fn get_document_with(&self, collection: &str, id: &str, vectors: bool) -> Result<(crate::domain::Document, Option<Vec<Vec<f32>>>), ServiceError> {
        let collection = self.collection(collection)?;
        let id = id.to_owned();
        blocking(move || {
            let document = collection.get(&id)?.ok_or(ServiceError::DocumentNotFound(id))?;
            let vectors = if vectors {
                let points: Vec<u64> = document.passages.iter().map(|p| p.point).collect();
                Some(collection.vectors_of(&points)?.into_iter().map(|(_, v)| v).collect())
            } else {
                None
            };
            Ok((document, vectors))
        })
        .await
    }

    /// Deletes documents (all their passages) by id and/or by filter; returns how many were deleted.
    pub async fn delete_documents(&self, collection: &str, ids: Option<Vec<String>>, filter: Option<crate::engine::Filter>) -> Result<usize, ServiceError> {
        let name = collection.to_owned();
        let collection = self.collection(collection)?;
        if ids.is_none() && filter.is_none() {
            return Err(ServiceError::invalid("give ids, where, or both"));
        }
        if filter.as_ref().is_some_and(crate::engine::Filter::matches_everything) {
            return Err(ServiceError::Invalid {
                code: "invalid_filter",
                message: "where: {} matches every document; to delete them all, delete the collection".into(),
            });
        }
        let mut collection = collection;
        for _ in 0..3 {
            let (ids, filter, target) = (ids.clone(), filter.clone(), collection.addressed());
            let result = blocking(move || {
                let mut deleted = 0;
                if let Some(ids) = ids {
                    deleted += target.delete(&ids)?;
                }
                if let Some(filter) = filter {
                    deleted += target.delete_where(&filter)?;
                }
                Ok(deleted)
            })
            .await;
            match result {
                // Switched for another collection meanwhile (a restore, a re-embed): deleting
                // again by name there is the same request (deletes are idempotent).
                Err(ServiceError::Engine(EngineError::Moved(_))) => collection = self.collection(&name)?,
                other => return other,
            }
        }
        Err(EngineError::Moved(name).into())
    }
}
