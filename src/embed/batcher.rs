//! The inference thread: owns the backend, forms batches from a queue by token budget.
//!
//! Callers tokenize on their own threads and send whole requests; the thread splits them into
//! texts, sorts a window of waiting texts by length (padding costs linearly), cuts it into
//! batches of at most `max_batch_size` texts and `max_batch_tokens` padded tokens, and answers
//! each request once all of its texts are done. Abandoned requests are skipped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::onnx::Backend;
use super::EmbedError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most padded tokens (texts × longest text) in one model call.
    pub max_batch_tokens: usize,
    /// Most texts in one model call.
    pub max_batch_size: usize,
}

impl Default for BatchConfig {
    /// Measured on a 2-vCPU AVX2 box with MiniLM (benches/embed.rs): model calls of about 1,024
    /// padded tokens were 15-20 % faster per text than one call for a whole 32-text request
    /// (cache-resident activations); 32 texts × 16 tokens of the 0.6B graph still fit in one call.
    fn default() -> Self {
        BatchConfig { max_batch_tokens: 1024, max_batch_size: 32 }
    }
}

pub type BatchResult = Result<Vec<Vec<f32>>, Arc<EmbedError>>;

struct Request {
    texts: Vec<Vec<u32>>,
    reply: oneshot::Sender<BatchResult>,
}

/// Statistics of the last batches, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct BatcherStats {
    /// Texts waiting in the queue or in the current window.
    pub queued_texts: AtomicUsize,
    pub batches: AtomicUsize,
    pub batched_texts: AtomicUsize,
    pub padded_tokens: AtomicUsize,
}

/// Handle to the inference thread. Dropping every handle lets the thread drain and exit.
pub struct Batcher {
    sender: mpsc::Sender<Request>,
    stats: Arc<BatcherStats>,
    _thread: JoinHandle<()>,
}

impl Batcher {
    pub fn spawn(backend: Box<dyn Backend>, config: BatchConfig) -> Result<Self, EmbedError> {
        let (sender, receiver) = mpsc::channel();
        let stats = Arc::new(BatcherStats::default());
        let worker = Worker { backend, config, stats: stats.clone(), waiting: VecDeque::new(), open: HashMap::new(), next_id: 0 };
        let thread = std::thread::Builder::new()
            .name("akidb-inference".into())
            .spawn(move || worker.run(receiver))
            .map_err(|e| EmbedError::Runtime { action: "start the inference thread", message: e.to_string() })?;
        Ok(Batcher { sender, stats, _thread: thread })
    }

    /// Queues tokenized texts; the receiver yields one pooled vector per text, in order.
    pub fn submit(&self, texts: Vec<Vec<u32>>) -> oneshot::Receiver<BatchResult> {
        let (reply, receiver) = oneshot::channel();
        self.stats.queued_texts.fetch_add(texts.len(), Ordering::Relaxed);
        let count = texts.len();
        if let Err(mpsc::SendError(request)) = self.sender.send(Request { texts, reply }) {
            self.stats.queued_texts.fetch_sub(count, Ordering::Relaxed);
            let _ = request.reply.send(Err(Arc::new(EmbedError::WorkerGone)));
        }
        receiver
    }

    pub fn stats(&self) -> &BatcherStats {
        &self.stats
    }
}

struct OpenRequest {
    results: Vec<Option<Vec<f32>>>,
    remaining: usize,
    reply: oneshot::Sender<BatchResult>,
}

struct Item {
    request: u64,
    slot: usize,
    ids: Vec<u32>,
}

struct Worker {
    backend: Box<dyn Backend>,
    config: BatchConfig,
    stats: Arc<BatcherStats>,
    waiting: VecDeque<Item>,
    open: HashMap<u64, OpenRequest>,
    next_id: u64,
}

impl Worker {
    fn run(mut self, receiver: mpsc::Receiver<Request>) {
        loop {
            if self.waiting.is_empty() {
                match receiver.recv() {
                    Ok(request) => self.accept(request),
                    Err(mpsc::RecvError) => return,
                }
            }
            while let Ok(request) = receiver.try_recv() {
                self.accept(request);
            }
            self.process_window();
        }
    }

    fn accept(&mut self, request: Request) {
        let id = self.next_id;
        self.next_id += 1;
        let count = request.texts.len();
        if count == 0 {
            let _ = request.reply.send(Ok(Vec::new()));
            return;
        }
        self.waiting.extend(request.texts.into_iter().enumerate().map(|(slot, ids)| Item { request: id, slot, ids }));
        self.open.insert(id, OpenRequest { results: vec![None; count], remaining: count, reply: request.reply });
    }

    /// Takes a window from the front of the queue (FIFO across windows, so no request starves),
    /// sorts it by length and runs it as token-budgeted batches.
    fn process_window(&mut self) {
        let window_texts = self.config.max_batch_size * 4;
        let mut window: Vec<Item> = Vec::with_capacity(window_texts.min(self.waiting.len()));
        while window.len() < window_texts {
            let Some(item) = self.waiting.pop_front() else { break };
            self.stats.queued_texts.fetch_sub(1, Ordering::Relaxed);
            // Skip texts of requests that failed or whose caller went away.
            match self.open.get(&item.request) {
                Some(open) if !open.reply.is_closed() => window.push(item),
                Some(_) => {
                    self.open.remove(&item.request);
                }
                None => {}
            }
        }
        window.sort_by_key(|item| item.ids.len());
        let mut start = 0;
        while start < window.len() {
            let end = self.batch_end(&window, start);
            self.run_batch(&window[start..end]);
            start = end;
        }
    }

    /// End of the batch starting at `start` in a length-sorted window: the longest text is last,
    /// so the padded size is `count × len(last)`.
    fn batch_end(&self, window: &[Item], start: usize) -> usize {
        let mut end = start + 1;
        while end < window.len()
            && end - start < self.config.max_batch_size
            && (end - start + 1) * window[end].ids.len() <= self.config.max_batch_tokens
        {
            end += 1;
        }
        end
    }

    fn run_batch(&mut self, batch: &[Item]) {
        let live: Vec<&Item> = batch.iter().filter(|item| self.open.contains_key(&item.request)).collect();
        if live.is_empty() {
            return;
        }
        let ids: Vec<&[u32]> = live.iter().map(|item| item.ids.as_slice()).collect();
        let longest = ids.iter().map(|t| t.len()).max().unwrap_or(0);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.batched_texts.fetch_add(ids.len(), Ordering::Relaxed);
        self.stats.padded_tokens.fetch_add(ids.len() * longest, Ordering::Relaxed);
        metrics::histogram!("akidb_embed_batch_texts").record(ids.len() as f64);
        metrics::histogram!("akidb_embed_batch_padded_tokens").record((ids.len() * longest) as f64);
        match self.backend.embed(&ids) {
            Ok(vectors) if vectors.len() == live.len() => {
                for (item, vector) in live.iter().zip(vectors) {
                    self.deliver(item, vector);
                }
            }
            Ok(vectors) => self.fail(&live, EmbedError::Runtime {
                action: "run the model",
                message: format!("{} vectors for {} texts", vectors.len(), live.len()),
            }),
            Err(err) => self.fail(&live, err),
        }
    }

    fn deliver(&mut self, item: &Item, vector: Vec<f32>) {
        let Some(open) = self.open.get_mut(&item.request) else { return };
        open.results[item.slot] = Some(vector);
        open.remaining -= 1;
        if open.remaining == 0 {
            if let Some(done) = self.open.remove(&item.request) {
                let vectors = done.results.into_iter().flatten().collect();
                let _ = done.reply.send(Ok(vectors));
            }
        }
    }

    fn fail(&mut self, items: &[&Item], err: EmbedError) {
        tracing::error!(%err, texts = items.len(), "embedding batch failed");
        let err = Arc::new(err);
        for item in items {
            if let Some(open) = self.open.remove(&item.request) {
                let _ = open.reply.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::embed::runtime::ExecutionProvider;

    /// Records batch shapes; the "embedding" of a text is its first id and its length.
    struct Recorder(Arc<Mutex<Vec<Vec<usize>>>>);

    impl Backend for Recorder {
        fn embed(&mut self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.0.lock().unwrap().push(batch.iter().map(|t| t.len()).collect());
            if batch.iter().any(|t| t.first() == Some(&666)) {
                return Err(EmbedError::InvalidInput("poisoned".into()));
            }
            Ok(batch.iter().map(|t| vec![t[0] as f32, t.len() as f32]).collect())
        }
        fn execution_provider(&self) -> ExecutionProvider {
            ExecutionProvider::Cpu
        }
    }

    fn batcher(config: BatchConfig) -> (Batcher, Arc<Mutex<Vec<Vec<usize>>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (Batcher::spawn(Box::new(Recorder(log.clone())), config).unwrap(), log)
    }

    fn text(first: u32, len: usize) -> Vec<u32> {
        let mut t = vec![first; len];
        t[0] = first;
        t
    }

    #[test]
    fn results_come_back_in_request_order_and_batches_respect_the_budget() {
        let (b, log) = batcher(BatchConfig { max_batch_tokens: 20, max_batch_size: 3 });
        let texts: Vec<Vec<u32>> = [9, 1, 5, 2, 8, 3, 7].iter().enumerate().map(|(i, &len)| text(i as u32, len)).collect();
        let out = b.submit(texts.clone()).blocking_recv().unwrap().unwrap();
        for (i, (v, t)) in out.iter().zip(&texts).enumerate() {
            assert_eq!(v, &vec![i as f32, t.len() as f32]);
        }
        for batch in log.lock().unwrap().iter() {
            assert!(batch.len() <= 3, "{batch:?}");
            assert!(batch.len() * batch.iter().max().unwrap() <= 20 || batch.len() == 1, "{batch:?}");
            assert!(batch.windows(2).all(|w| w[0] <= w[1]), "sorted by length: {batch:?}");
        }
    }

    #[test]
    fn a_text_over_the_budget_runs_alone() {
        let (b, log) = batcher(BatchConfig { max_batch_tokens: 4, max_batch_size: 8 });
        let out = b.submit(vec![text(1, 10), text(2, 1)]).blocking_recv().unwrap().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(log.lock().unwrap().iter().map(|b| b.len()).sum::<usize>(), 2);
    }

    #[test]
    fn a_failing_batch_fails_only_its_requests() {
        let (b, _) = batcher(BatchConfig { max_batch_tokens: 1000, max_batch_size: 1 });
        let bad = b.submit(vec![text(666, 2)]);
        let good = b.submit(vec![text(1, 2)]);
        assert!(bad.blocking_recv().unwrap().is_err());
        assert_eq!(good.blocking_recv().unwrap().unwrap(), vec![vec![1.0, 2.0]]);
        assert_eq!(b.stats().queued_texts.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn empty_requests_answer_at_once() {
        let (b, log) = batcher(BatchConfig::default());
        assert!(b.submit(vec![]).blocking_recv().unwrap().unwrap().is_empty());
        assert!(log.lock().unwrap().is_empty());
    }
}
