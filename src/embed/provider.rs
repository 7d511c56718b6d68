//! The embedding provider: what the engine and the API call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::sync::oneshot;

use super::batcher::{BatchConfig, BatchResult, Batcher};
use super::onnx::{OnnxBackend, OnnxOptions};
use super::pooling;
use super::runtime::ExecutionProvider;
use super::tokenize::TextEncoder;
use super::EmbedError;
use crate::model::{Manifest, ModelDir, Pooling};

/// Whether a text is a query (gets the model's instruction, if any) or a document (never does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    Document,
    Query,
}

#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub texts: Vec<String>,
    pub kind: TextKind,
    /// Matryoshka output width; `None` is the model's full width.
    pub dims: Option<usize>,
    /// Overrides the manifest's default task in the query instruction.
    pub task: Option<String>,
}

impl EmbedRequest {
    pub fn documents(texts: Vec<String>) -> Self {
        EmbedRequest { texts, kind: TextKind::Document, dims: None, task: None }
    }

    pub fn queries(texts: Vec<String>) -> Self {
        EmbedRequest { texts, kind: TextKind::Query, dims: None, task: None }
    }

    pub fn with_dims(mut self, dims: Option<usize>) -> Self {
        self.dims = dims;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding {
    pub embedding: Vec<f32>,
    /// Tokens fed to the model (after truncation, special tokens included).
    pub tokens: usize,
    /// The text exceeded the model's `max_tokens` and only its beginning was embedded.
    pub truncated: bool,
}

/// What a client may want to know about the model behind a provider.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub family: String,
    pub dims: usize,
    pub max_tokens: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub matryoshka_dims: Vec<usize>,
    pub query_instruction: Option<String>,
    pub default_task: Option<String>,
    pub execution_provider: ExecutionProvider,
}

/// Embeds texts. Implementations queue the work and return at once; the result is awaited
/// (async callers) or waited for (`PendingEmbeddings::wait`, for threads and the CLI).
pub trait EmbeddingProvider: Send + Sync {
    fn info(&self) -> &ModelInfo;
    fn embed(&self, request: EmbedRequest) -> PendingEmbeddings;

    fn embed_documents(&self, texts: Vec<String>) -> PendingEmbeddings {
        self.embed(EmbedRequest::documents(texts))
    }

    fn embed_queries(&self, texts: Vec<String>) -> PendingEmbeddings {
        self.embed(EmbedRequest::queries(texts))
    }
}

/// Embeddings on their way back from the inference thread.
pub struct PendingEmbeddings(PendingState);

enum PendingState {
    Done(Option<Result<Vec<Embedding>, Arc<EmbedError>>>),
    Waiting { receiver: oneshot::Receiver<BatchResult>, finish: Finish },
}

/// Post-processing applied on the caller's side once the pooled vectors arrive.
struct Finish {
    encoded: Vec<(usize, bool)>,
    dims: usize,
    normalize: bool,
}

impl Finish {
    fn apply(self, result: Result<BatchResult, oneshot::error::RecvError>) -> Result<Vec<Embedding>, Arc<EmbedError>> {
        let vectors = result.map_err(|_| Arc::new(EmbedError::WorkerGone))??;
        Ok(vectors
            .into_iter()
            .zip(self.encoded)
            .map(|(vector, (tokens, truncated))| Embedding { embedding: pooling::finish(vector, self.dims, self.normalize), tokens, truncated })
            .collect())
    }
}

impl PendingEmbeddings {
    pub fn failed(err: EmbedError) -> Self {
        PendingEmbeddings(PendingState::Done(Some(Err(Arc::new(err)))))
    }

    /// Blocks the current thread until the result is ready. Not for async contexts.
    pub fn wait(self) -> Result<Vec<Embedding>, Arc<EmbedError>> {
        match self.0 {
            PendingState::Done(result) => result.unwrap_or_else(|| Err(Arc::new(EmbedError::WorkerGone))),
            PendingState::Waiting { receiver, finish } => finish.apply(receiver.blocking_recv()),
        }
    }
}

impl Future for PendingEmbeddings {
    type Output = Result<Vec<Embedding>, Arc<EmbedError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.0 {
            PendingState::Done(result) => Poll::Ready(result.take().unwrap_or_else(|| Err(Arc::new(EmbedError::WorkerGone)))),
            PendingState::Waiting { receiver, .. } => {
                let received = std::task::ready!(Pin::new(receiver).poll(cx));
                let state = std::mem::replace(&mut this.0, PendingState::Done(None));
                match state {
                    PendingState::Waiting { finish, .. } => Poll::Ready(finish.apply(received)),
                    PendingState::Done(_) => Poll::Ready(Err(Arc::new(EmbedError::WorkerGone))),
                }
            }
        }
    }
}

/// ONNX Runtime provider: tokenizer on the caller's thread, model on the inference thread.
pub struct OnnxProvider {
    manifest: Manifest,
    encoder: TextEncoder,
    batcher: Batcher,
    info: ModelInfo,
}

impl OnnxProvider {
    pub fn load(model: &ModelDir, options: &OnnxOptions, batching: BatchConfig) -> Result<Self, EmbedError> {
        if batching.max_batch_size == 0 || batching.max_batch_tokens == 0 {
            return Err(EmbedError::InvalidInput("batch size and batch token budget must be positive".into()));
        }
        let manifest = model.manifest.clone();
        let encoder = TextEncoder::from_file(&model.tokenizer_path(), &manifest)?;
        let backend = OnnxBackend::load(model, options, encoder.pad_id())?;
        let info = ModelInfo {
            name: manifest.name.clone(),
            family: manifest.family.clone(),
            dims: manifest.dims,
            max_tokens: manifest.max_tokens,
            pooling: manifest.pooling,
            normalize: manifest.normalize,
            matryoshka_dims: manifest.matryoshka_dims.clone(),
            query_instruction: manifest.query_instruction.clone(),
            default_task: manifest.default_task.clone(),
            execution_provider: super::onnx::Backend::execution_provider(&backend),
        };
        let batcher = Batcher::spawn(Box::new(backend), batching)?;
        Ok(OnnxProvider { manifest, encoder, batcher, info })
    }

    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    fn prepare(&self, request: &EmbedRequest) -> Result<(Vec<Vec<u32>>, Finish), EmbedError> {
        let dims = self.manifest.check_dims(request.dims)?;
        let mut ids = Vec::with_capacity(request.texts.len());
        let mut encoded = Vec::with_capacity(request.texts.len());
        for text in &request.texts {
            let encoding = match request.kind {
                TextKind::Document => self.encoder.encode(text)?,
                TextKind::Query => self.encoder.encode(&self.manifest.format_query(text, request.task.as_deref()))?,
            };
            encoded.push((encoding.ids.len(), encoding.truncated));
            ids.push(encoding.ids);
        }
        Ok((ids, Finish { encoded, dims, normalize: self.manifest.normalize }))
    }
}

impl EmbeddingProvider for OnnxProvider {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&self, request: EmbedRequest) -> PendingEmbeddings {
        match self.prepare(&request) {
            Ok((ids, finish)) => PendingEmbeddings(PendingState::Waiting { receiver: self.batcher.submit(ids), finish }),
            Err(err) => PendingEmbeddings::failed(err),
        }
    }
}
