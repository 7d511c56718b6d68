//! The embedding provider: what the engine and the API call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::sync::oneshot;

use super::batcher::{BackendFactory, BatchConfig, BatchResult, Batcher, Priority};
use super::onnx::{Backend, ModelSource, OnnxBackend, OnnxOptions};
use super::pooling;
use super::runtime::ExecutionProvider;
use super::tokenize::{EncodedText, TextEncoder};
use super::tokenize_pool::{TokenizerPool, CHUNK};
use super::EmbedError;
use crate::model::{Manifest, ModelDir, Pooling, Probe, ProbeKind};

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
    /// Which queue the texts join; `None`: queries are interactive, documents bulk.
    pub priority: Option<Priority>,
}

impl EmbedRequest {
    pub fn documents(texts: Vec<String>) -> Self {
        EmbedRequest { texts, kind: TextKind::Document, dims: None, task: None, priority: None }
    }

    pub fn queries(texts: Vec<String>) -> Self {
        EmbedRequest { texts, kind: TextKind::Query, dims: None, task: None, priority: None }
    }

    pub fn with_dims(mut self, dims: Option<usize>) -> Self {
        self.dims = dims;
        self
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    pub fn priority(&self) -> Priority {
        self.priority.unwrap_or(match self.kind {
            TextKind::Query => Priority::Interactive,
            TextKind::Document => Priority::Bulk,
        })
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
    /// Other names it answers to (hub ids).
    pub aliases: Vec<String>,
    pub family: String,
    pub dims: usize,
    pub max_tokens: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub matryoshka_dims: Vec<usize>,
    pub query_instruction: Option<String>,
    pub default_task: Option<String>,
    pub execution_provider: ExecutionProvider,
    /// Hybrid fusion when a request sets none (the manifest's; None: akidb's RRF k 60, 1:1).
    pub hybrid: Option<crate::model::HybridDefaults>,
    /// NaN scrubs removed from the graph at load (0 when the rewrite was not proven exact for
    /// this model, found nothing, or `--keep-graph` was given).
    pub graph_rewrites: usize,
}

impl ModelInfo {
    /// Whether `name` names this model: its name or an alias, in any case.
    pub fn answers_to(&self, name: &str) -> bool {
        crate::model::answers_to(&self.name, &self.aliases, name)
    }
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

type EmbedResult = Result<Vec<Embedding>, Arc<EmbedError>>;

/// Embeddings on their way: tokenized on the tokenizer workers, run on an inference lane,
/// finished (Matryoshka width, normalization) on the way back.
pub struct PendingEmbeddings(PendingState);

enum PendingState {
    Done(Option<EmbedResult>),
    Running(Pin<Box<dyn Future<Output = EmbedResult> + Send>>),
}

/// Post-processing applied on the caller's side once the pooled vectors arrive.
struct Finish {
    encoded: Vec<(usize, bool)>,
    dims: usize,
    normalize: bool,
}

impl Finish {
    fn apply(self, result: Result<BatchResult, oneshot::error::RecvError>) -> EmbedResult {
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

    /// Blocks the current thread until the result is ready. Not for async contexts (it drives
    /// the work on a small runtime of its own).
    pub fn wait(self) -> EmbedResult {
        match self.0 {
            PendingState::Done(result) => result.unwrap_or_else(|| Err(Arc::new(EmbedError::WorkerGone))),
            PendingState::Running(future) => tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| Arc::new(EmbedError::Runtime { action: "start a runtime to wait on", message: e.to_string() }))?
                .block_on(future),
        }
    }
}

impl Future for PendingEmbeddings {
    type Output = EmbedResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            PendingState::Done(result) => Poll::Ready(result.take().unwrap_or_else(|| Err(Arc::new(EmbedError::WorkerGone)))),
            PendingState::Running(future) => future.as_mut().poll(cx),
        }
    }
}

/// ONNX Runtime provider: tokenizer workers, then the model on an inference lane.
pub struct OnnxProvider {
    manifest: Arc<Manifest>,
    encoder: Arc<TextEncoder>,
    tokenizers: Arc<TokenizerPool>,
    batcher: Arc<Batcher>,
    info: ModelInfo,
    /// What the self-test at load found (None: the manifest has no probes).
    self_test: Option<SelfTestReport>,
}

/// Texts that may wait for or be in tokenization at once, per model.
const TOKENIZE_QUEUE_TEXTS: usize = 8192;

/// Probe texts of different lengths, so the probe batch is padded.
const PROBE_TEXTS: [&str; 3] = [
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "akidb checks at load time that its graph rewrite changes no output bit, on a padded batch of texts of different lengths.",
];

impl OnnxProvider {
    pub fn load(model: &ModelDir, options: &OnnxOptions, batching: BatchConfig) -> Result<Self, EmbedError> {
        if batching.max_batch_size == 0 || batching.max_batch_tokens == 0 {
            return Err(EmbedError::InvalidInput("batch size and batch token budget must be positive".into()));
        }
        let manifest = model.manifest.clone();
        let batching = BatchConfig { max_batch_size: batching.max_batch_size.min(manifest.max_batch_size.unwrap_or(usize::MAX)), ..batching };
        let encoder = TextEncoder::from_file(&model.tokenizer_path(), &manifest)?;
        let pad_id = encoder.pad_id();
        let mut options = options.clone();
        // Read (and rewrite) the model once for the probe and both lanes' first sessions.
        let mut source = ModelSource::prepare(model.model_path(), options.keep_graph, &manifest.name)?;
        let mut graph_rewrites = 0;
        if let ModelSource::Rewritten { nan_scrubs_removed, .. } = source {
            if rewrite_is_exact(model, &source, &options, &encoder)? {
                graph_rewrites = nan_scrubs_removed;
            } else {
                source = ModelSource::File(model.model_path());
            }
        }
        // Backends reloaded after a panic rewrite only what was proven here.
        options.keep_graph = graph_rewrites == 0;
        let factory = |options: OnnxOptions| -> BackendFactory {
            let model = model.clone();
            Arc::new(move || OnnxBackend::load(&model, &options, pad_id).map(|b| Box::new(b) as Box<dyn Backend>))
        };
        // With an interactive session beside it, the bulk session does not spin: its spinning
        // worker takes the core a query needs. Measured (benches/peers/serving.py, 512 SciFact docs
        // by 2 clients, text queries at c=1): query p50 under ingest 16.1 ms without spinning vs
        // 20.1 ms with, ingest with the query client 9.0 vs 8.2 docs/s.
        let bulk_spins = options.spinning && options.interactive_threads == 0;
        let bulk_options = OnnxOptions { spinning: bulk_spins, ..options.clone() };
        let interactive_options = OnnxOptions { intra_threads: Some(options.interactive_threads.max(1)), ..options.clone() };
        let bulk: Box<dyn Backend> = Box::new(OnnxBackend::load_from(model, &source, &bulk_options, pad_id)?);
        let execution_provider = bulk.execution_provider();
        let interactive: Option<Box<dyn Backend>> = if options.interactive_threads > 0 {
            Some(Box::new(OnnxBackend::load_from(model, &source, &interactive_options, pad_id)?))
        } else {
            None
        };
        drop(source);
        let info = ModelInfo {
            name: manifest.name.clone(),
            aliases: manifest.aliases.clone(),
            family: manifest.family.clone(),
            dims: manifest.dims,
            max_tokens: manifest.max_tokens,
            pooling: manifest.pooling,
            normalize: manifest.normalize,
            matryoshka_dims: manifest.matryoshka_dims.clone(),
            query_instruction: manifest.query_instruction.clone(),
            default_task: manifest.default_task.clone(),
            execution_provider,
            hybrid: manifest.hybrid.clone(),
            graph_rewrites,
        };
        let batcher = Batcher::spawn_lanes(bulk, interactive, factory(bulk_options), factory(interactive_options), batching, &manifest.name)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let tokenizers = TokenizerPool::new(workers, TOKENIZE_QUEUE_TEXTS, &manifest.name)
            .map_err(|e| EmbedError::Runtime { action: "start the tokenizer workers", message: e.to_string() })?;
        let mut provider = OnnxProvider { manifest: Arc::new(manifest), encoder: Arc::new(encoder), tokenizers: Arc::new(tokenizers), batcher: Arc::new(batcher), info, self_test: None };
        // Never serve a model that does not reproduce its reference vectors here.
        provider.self_test = provider.self_test()?;
        Ok(provider)
    }

    /// Embeds the manifest's probes with this runtime and device, on the lanes that serve
    /// (`document` probes as one request on the bulk lane, `query` probes on the interactive
    /// one, both embedded as written: a probe's text already holds any instruction, so the test
    /// checks the model and the lanes whatever the manifest's query template), and fails when a
    /// vector is farther from its reference than the manifest allows. `None`: the manifest has
    /// no probes. Blocks; safe to call from any thread, async runtimes included.
    pub fn self_test(&self) -> Result<Option<SelfTestReport>, EmbedError> {
        let Some(test) = &self.manifest.self_test else {
            tracing::warn!(model = %self.info.name, "the manifest has no self-test probes: this model's output is not checked at load");
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let mut worst: f64 = 0.0;
        for kind in [ProbeKind::Document, ProbeKind::Query] {
            let probes: Vec<(usize, &Probe)> = test.probes.iter().enumerate().filter(|(_, p)| p.kind == kind).collect();
            if probes.is_empty() {
                continue;
            }
            let texts = probes.iter().map(|(_, p)| p.text.clone()).collect();
            let lane = match kind {
                ProbeKind::Document => Priority::Bulk,
                ProbeKind::Query => Priority::Interactive,
            };
            let request = EmbedRequest::documents(texts).with_priority(lane);
            // `wait` drives the work on a runtime of its own, which tokio forbids on a thread
            // that is inside one (a library user loading from async code): a scoped thread has none.
            let vectors = std::thread::scope(|scope| scope.spawn(|| self.embed(request).wait()).join())
                .map_err(|_| EmbedError::Runtime { action: "run the self-test", message: "the self-test thread panicked".into() })?
                .map_err(|e| EmbedError::Runtime { action: "run the self-test", message: e.to_string() })?;
            for ((i, probe), got) in probes.iter().zip(vectors) {
                let distance = cosine_distance(&got.embedding, &probe.vector);
                worst = worst.max(distance);
                // Written so that a NaN distance (a zero or non-finite vector) fails too.
                if !(distance <= test.max_cosine_distance) {
                    let mut text: String = probe.text.chars().take(40).collect();
                    if text.len() < probe.text.len() {
                        text.push('…');
                    }
                    return Err(EmbedError::SelfTest { model: self.info.name.clone(), probe: *i, text, distance, tolerance: test.max_cosine_distance });
                }
            }
        }
        let report = SelfTestReport { probes: test.probes.len(), worst_distance: worst, elapsed: started.elapsed() };
        tracing::info!(model = %self.info.name, probes = report.probes, worst_distance = report.worst_distance, ms = report.elapsed.as_secs_f64() * 1e3, "self-test passed");
        Ok(Some(report))
    }

    /// The self-test run at load.
    pub fn self_test_report(&self) -> Option<SelfTestReport> {
        self.self_test
    }

    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// The model's tokenizer, for counting tokens (passage splitting).
    pub fn encoder(&self) -> &Arc<TextEncoder> {
        &self.encoder
    }

    /// Every inference lane has a backend (false while one is reloaded after a panic).
    pub fn healthy(&self) -> bool {
        self.batcher.healthy()
    }
}

/// A passed self-test: how many probes, the largest cosine distance to a reference, its cost.
#[derive(Debug, Clone, Copy)]
pub struct SelfTestReport {
    pub probes: usize,
    pub worst_distance: f64,
    pub elapsed: std::time::Duration,
}

/// 1 - cosine, in f64; NaN when either vector is zero or not finite (which fails a check).
fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    1.0 - dot / (na.sqrt() * nb.sqrt())
}

/// The graph rewrite is kept only where it is proven exact for this model: the rewritten and
/// the as-shipped graph must give bit-identical vectors for a padded probe batch (on the
/// model's own padding side).
fn rewrite_is_exact(model: &ModelDir, rewritten: &ModelSource, options: &OnnxOptions, encoder: &TextEncoder) -> Result<bool, EmbedError> {
    let probe: Vec<Vec<u32>> = PROBE_TEXTS.iter().map(|t| encoder.encode(t).map(|e| e.ids)).collect::<Result<_, _>>()?;
    let batch: Vec<&[u32]> = probe.iter().map(Vec::as_slice).collect();
    let one_thread = OnnxOptions { intra_threads: Some(1), ..options.clone() };
    let as_rewritten = OnnxBackend::load_from(model, rewritten, &one_thread, encoder.pad_id())?.embed(&batch)?;
    let as_shipped = OnnxBackend::load_from(model, &ModelSource::File(model.model_path()), &one_thread, encoder.pad_id())?.embed(&batch)?;
    let bits = |vectors: &[Vec<f32>]| -> Vec<u32> { vectors.iter().flatten().map(|v| v.to_bits()).collect() };
    // Tests force a disagreement to check that akidb then runs the graph as shipped.
    let forced_disagreement = || -> bool {
        fail::fail_point!("embed.rewrite_probe.disagree", |_| true);
        false
    };
    if bits(&as_rewritten) != bits(&as_shipped) || forced_disagreement() {
        tracing::warn!(model = %model.manifest.name, "the graph rewrite changed this model's output on the probe batch; running the graph as shipped");
        return Ok(false);
    }
    tracing::info!(model = %model.manifest.name, "graph rewrite proven bit-exact on a padded probe batch");
    Ok(true)
}

/// Tokenizes `texts` on the tokenizer workers, `CHUNK` texts per job, in order.
async fn tokenize(pool: &TokenizerPool, encoder: &Arc<TextEncoder>, manifest: &Arc<Manifest>, request: EmbedRequest, priority: Priority) -> Result<Vec<EncodedText>, EmbedError> {
    let (kind, task) = (request.kind, request.task);
    let mut receivers = Vec::new();
    let mut jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let mut texts = request.texts.into_iter().peekable();
    while texts.peek().is_some() {
        let chunk: Vec<String> = texts.by_ref().take(CHUNK).collect();
        let (reply, receiver) = oneshot::channel();
        let (encoder, manifest, task) = (encoder.clone(), manifest.clone(), task.clone());
        jobs.push(Box::new(move || {
            if reply.is_closed() {
                return;
            }
            let encoded = chunk
                .iter()
                .map(|text| match kind {
                    TextKind::Document => encoder.encode(text),
                    TextKind::Query => encoder.encode(&manifest.format_query(text, task.as_deref())),
                })
                .collect::<Result<Vec<_>, _>>();
            let _ = reply.send(encoded);
        }));
        receivers.push(receiver);
    }
    pool.run(priority, jobs);
    let mut encoded = Vec::new();
    for receiver in receivers {
        encoded.extend(receiver.await.map_err(|_| EmbedError::WorkerGone)??);
    }
    Ok(encoded)
}

impl EmbeddingProvider for OnnxProvider {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&self, request: EmbedRequest) -> PendingEmbeddings {
        let dims = match self.manifest.check_dims(request.dims) {
            Ok(dims) => dims,
            Err(err) => return PendingEmbeddings::failed(err.into()),
        };
        let priority = request.priority();
        let (room, permits) = self.tokenizers.room(request.texts.len());
        let (pool, encoder, manifest, batcher) = (self.tokenizers.clone(), self.encoder.clone(), self.manifest.clone(), self.batcher.clone());
        let normalize = self.manifest.normalize;
        PendingEmbeddings(PendingState::Running(Box::pin(async move {
            let permit = room.acquire_many_owned(permits).await.map_err(|_| Arc::new(EmbedError::WorkerGone))?;
            let encoded = tokenize(&pool, &encoder, &manifest, request, priority).await?;
            drop(permit);
            let finish = Finish { encoded: encoded.iter().map(|e| (e.ids.len(), e.truncated)).collect(), dims, normalize };
            let receiver = batcher.submit(encoded.into_iter().map(|e| e.ids).collect(), priority);
            finish.apply(receiver.await)
        })))
    }
}
