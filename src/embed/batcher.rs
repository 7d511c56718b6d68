//! The inference lanes: each owns a backend on its own thread and forms batches by token budget.
//!
//! Two classes of work: *interactive* (search queries, small `/v1/embeddings` requests) and
//! *bulk* (document ingest). With an interactive lane (the default), each class has its own
//! backend session on its own thread, so a query never waits for an ingest batch to finish; the
//! OS shares the cores between them. Without one, both classes share the bulk lane, interactive
//! first, with a bulk batch let through after every `FAIRNESS` interactive batches so neither
//! class starves. Either way a lane runs one batch at a time and looks at its queue between
//! batches, so new interactive work overtakes waiting bulk work at once.
//!
//! A lane sorts a window of waiting texts by length (padding costs linearly) and cuts batches of
//! at most `max_batch_size` texts and `max_batch_tokens` padded tokens. Abandoned requests are
//! skipped. A panic inside the backend fails only the batch that caused it; the lane then drops
//! the backend, loads a fresh one (retrying with backoff) and reports not-healthy until it has.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

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

/// Which queue a request joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Someone is waiting on the answer: search queries, small embedding requests.
    Interactive,
    /// Throughput matters, latency does not: document ingest, large embedding requests.
    Bulk,
}

/// With interactive and bulk work sharing a lane, one bulk batch runs after this many
/// interactive batches in a row while bulk work waits.
pub const FAIRNESS: usize = 4;

pub type BatchResult = Result<Vec<Vec<f32>>, Arc<EmbedError>>;

/// Loads a fresh backend: at start and after a backend panicked.
pub type BackendFactory = Arc<dyn Fn() -> Result<Box<dyn Backend>, EmbedError> + Send + Sync>;

struct Request {
    texts: Vec<Vec<u32>>,
    priority: Priority,
    reply: oneshot::Sender<BatchResult>,
    _ticket: Ticket,
}

/// Counts a lane's requests from submission until they are answered, failed or dropped.
struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Ticket(count.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Statistics of the batches run, for metrics and benchmarks (all lanes together).
#[derive(Debug, Default)]
pub struct BatcherStats {
    /// Texts waiting in the queues.
    pub queued_texts: AtomicUsize,
    pub batches: AtomicUsize,
    pub batched_texts: AtomicUsize,
    pub padded_tokens: AtomicUsize,
    /// Backends replaced after a panic.
    pub restarts: AtomicUsize,
}

/// One lane's view of its backend, read by readiness checks.
#[derive(Debug)]
struct LaneHealth {
    running: AtomicBool,
}

struct Lane {
    sender: mpsc::Sender<Request>,
    health: Arc<LaneHealth>,
    /// Requests submitted to this lane and not yet answered.
    requests: Arc<AtomicUsize>,
    _thread: JoinHandle<()>,
}

/// Handle to the inference lanes. Dropping it lets the lanes drain and exit.
pub struct Batcher {
    bulk: Lane,
    interactive: Option<Lane>,
    stats: Arc<BatcherStats>,
}

impl Batcher {
    /// A bulk lane and, when `interactive` is given, an interactive lane; each reloads its
    /// backend from its factory after a panic.
    pub fn spawn_lanes(
        bulk: Box<dyn Backend>,
        interactive: Option<Box<dyn Backend>>,
        bulk_factory: BackendFactory,
        interactive_factory: BackendFactory,
        config: BatchConfig,
        model: &str,
    ) -> Result<Self, EmbedError> {
        let stats = Arc::new(BatcherStats::default());
        let bulk = Lane::spawn(bulk, bulk_factory, config, stats.clone(), model, "bulk")?;
        let interactive = interactive.map(|b| Lane::spawn(b, interactive_factory, config, stats.clone(), model, "interactive")).transpose()?;
        Ok(Batcher { bulk, interactive, stats })
    }

    /// Queues tokenized texts; the receiver yields one pooled vector per text, in order.
    ///
    /// Interactive work goes to the bulk lane too while that lane has nothing to do: its session
    /// has more threads, so an idle server answers a query faster there. Once bulk work is
    /// queued or running, interactive work goes to the interactive lane.
    pub fn submit(&self, texts: Vec<Vec<u32>>, priority: Priority) -> oneshot::Receiver<BatchResult> {
        let (reply, receiver) = oneshot::channel();
        let lane = match (priority, &self.interactive) {
            (Priority::Interactive, Some(lane)) if self.bulk.requests.load(Ordering::Acquire) > 0 => lane,
            _ => &self.bulk,
        };
        let count = texts.len();
        self.stats.queued_texts.fetch_add(count, Ordering::Relaxed);
        let ticket = Ticket::new(&lane.requests);
        if let Err(mpsc::SendError(request)) = lane.sender.send(Request { texts, priority, reply, _ticket: ticket }) {
            self.stats.queued_texts.fetch_sub(count, Ordering::Relaxed);
            let _ = request.reply.send(Err(Arc::new(EmbedError::WorkerGone)));
        }
        receiver
    }

    pub fn stats(&self) -> &BatcherStats {
        &self.stats
    }

    /// Every lane has a backend loaded (false while one is being replaced after a panic).
    pub fn healthy(&self) -> bool {
        self.bulk.health.running.load(Ordering::Acquire) && self.interactive.as_ref().is_none_or(|l| l.health.running.load(Ordering::Acquire))
    }
}

impl Lane {
    fn spawn(backend: Box<dyn Backend>, factory: BackendFactory, config: BatchConfig, stats: Arc<BatcherStats>, model: &str, lane: &'static str) -> Result<Self, EmbedError> {
        let (sender, receiver) = mpsc::channel();
        let health = Arc::new(LaneHealth { running: AtomicBool::new(true) });
        let requests = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            backend: Some(backend),
            factory,
            config,
            stats,
            health: health.clone(),
            model: model.to_owned(),
            lane,
            queues: [VecDeque::new(), VecDeque::new()],
            interactive_streak: 0,
            open: HashMap::new(),
            next_id: 0,
        };
        let thread = std::thread::Builder::new()
            .name(format!("akidb-inference-{lane}"))
            .spawn(move || worker.run(receiver))
            .map_err(|e| EmbedError::Runtime { action: "start the inference thread", message: e.to_string() })?;
        Ok(Lane { sender, health, requests, _thread: thread })
    }
}

struct OpenRequest {
    results: Vec<Option<Vec<f32>>>,
    remaining: usize,
    reply: oneshot::Sender<BatchResult>,
    _ticket: Ticket,
}

struct Item {
    request: u64,
    slot: usize,
    ids: Vec<u32>,
}

const INTERACTIVE: usize = 0;
const BULK: usize = 1;

struct Worker {
    /// `None` only while a replacement is being loaded.
    backend: Option<Box<dyn Backend>>,
    factory: BackendFactory,
    config: BatchConfig,
    stats: Arc<BatcherStats>,
    health: Arc<LaneHealth>,
    model: String,
    lane: &'static str,
    /// Waiting texts, `[INTERACTIVE]` and `[BULK]`.
    queues: [VecDeque<Item>; 2],
    interactive_streak: usize,
    open: HashMap<u64, OpenRequest>,
    next_id: u64,
}

impl Worker {
    fn run(mut self, receiver: mpsc::Receiver<Request>) {
        loop {
            if self.queues.iter().all(VecDeque::is_empty) {
                match receiver.recv() {
                    Ok(request) => self.accept(request),
                    Err(mpsc::RecvError) => return,
                }
            }
            while let Ok(request) = receiver.try_recv() {
                self.accept(request);
            }
            let class = self.next_class();
            self.run_next_batch(class);
            if self.backend.is_none() {
                self.restart(&receiver);
            }
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
        let queue = if request.priority == Priority::Interactive { INTERACTIVE } else { BULK };
        self.queues[queue].extend(request.texts.into_iter().enumerate().map(|(slot, ids)| Item { request: id, slot, ids }));
        self.open.insert(id, OpenRequest { results: vec![None; count], remaining: count, reply: request.reply, _ticket: request._ticket });
    }

    /// Interactive first; a bulk batch after `FAIRNESS` interactive ones while bulk work waits.
    fn next_class(&mut self) -> usize {
        let (interactive, bulk) = (!self.queues[INTERACTIVE].is_empty(), !self.queues[BULK].is_empty());
        if interactive && !(bulk && self.interactive_streak >= FAIRNESS) {
            self.interactive_streak += 1;
            INTERACTIVE
        } else {
            self.interactive_streak = 0;
            BULK
        }
    }

    /// Takes a window from the front of a queue (FIFO across windows, so no request starves),
    /// sorts it by length, runs its first batch and puts the rest back at the front.
    fn run_next_batch(&mut self, class: usize) {
        let window_texts = self.config.max_batch_size * 4;
        let mut window: Vec<Item> = Vec::with_capacity(window_texts.min(self.queues[class].len()));
        while window.len() < window_texts {
            let Some(item) = self.queues[class].pop_front() else { break };
            // Skip texts of requests that failed or whose caller went away.
            match self.open.get(&item.request) {
                Some(open) if !open.reply.is_closed() => window.push(item),
                Some(_) => {
                    self.stats.queued_texts.fetch_sub(1, Ordering::Relaxed);
                    self.open.remove(&item.request);
                }
                None => {
                    self.stats.queued_texts.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        if window.is_empty() {
            return;
        }
        window.sort_by_key(|item| item.ids.len());
        let end = self.batch_end(&window, 0);
        let rest = window.split_off(end);
        for item in rest.into_iter().rev() {
            self.queues[class].push_front(item);
        }
        self.stats.queued_texts.fetch_sub(window.len(), Ordering::Relaxed);
        self.run_batch(&window);
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
        let Some(backend) = self.backend.as_mut() else {
            self.fail(&live, EmbedError::BackendDown);
            return;
        };
        let ids: Vec<&[u32]> = live.iter().map(|item| item.ids.as_slice()).collect();
        let longest = ids.iter().map(|t| t.len()).max().unwrap_or(0);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.batched_texts.fetch_add(ids.len(), Ordering::Relaxed);
        self.stats.padded_tokens.fetch_add(ids.len() * longest, Ordering::Relaxed);
        metrics::histogram!("akidb_embed_batch_texts", "model" => self.model.clone(), "lane" => self.lane).record(ids.len() as f64);
        metrics::histogram!("akidb_embed_batch_padded_tokens", "model" => self.model.clone(), "lane" => self.lane).record((ids.len() * longest) as f64);
        // A panic in the backend (ONNX Runtime glue, pooling, a bug) must not take the lane down.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            fail::fail_point!("embed.backend.panic");
            backend.embed(&ids)
        }));
        match outcome {
            Ok(Ok(vectors)) if vectors.len() == live.len() => {
                for (item, vector) in live.iter().zip(vectors) {
                    self.deliver(item, vector);
                }
            }
            Ok(Ok(vectors)) => self.fail(&live, EmbedError::Runtime {
                action: "run the model",
                message: format!("{} vectors for {} texts", vectors.len(), live.len()),
            }),
            Ok(Err(err)) => self.fail(&live, err),
            Err(panic) => {
                let detail = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned())).unwrap_or_default();
                tracing::error!(model = %self.model, lane = self.lane, %detail, "the embedding backend panicked; failing its batch and loading a fresh backend");
                self.health.running.store(false, Ordering::Release);
                self.backend = None;
                self.fail(&live, EmbedError::BackendPanicked(detail));
            }
        }
    }

    /// Loads a fresh backend on a helper thread, retrying with backoff. Requests arriving
    /// meanwhile fail at once (503) rather than wait on a backend that may not come back.
    fn restart(&mut self, receiver: &mpsc::Receiver<Request>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let (done, loaded) = mpsc::channel();
            let factory = self.factory.clone();
            let spawned = std::thread::Builder::new().name(format!("akidb-reload-{}", self.lane)).spawn(move || {
                fail::fail_point!("embed.backend.reload");
                let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(|| factory())));
            });
            let outcome = match spawned {
                Ok(_) => loop {
                    match loaded.recv_timeout(Duration::from_millis(10)) {
                        Ok(outcome) => break Some(outcome),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                    }
                    if !self.fail_arrivals(receiver) {
                        return;
                    }
                },
                Err(_) => None,
            };
            match outcome {
                Some(Ok(Ok(backend))) => {
                    self.backend = Some(backend);
                    self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("akidb_embed_backend_restarts_total", "model" => self.model.clone(), "lane" => self.lane).increment(1);
                    self.health.running.store(true, Ordering::Release);
                    tracing::warn!(model = %self.model, lane = self.lane, "embedding backend restarted");
                    return;
                }
                Some(Ok(Err(err))) => tracing::error!(model = %self.model, lane = self.lane, %err, ?backoff, "cannot load a fresh embedding backend; retrying"),
                _ => tracing::error!(model = %self.model, lane = self.lane, ?backoff, "loading a fresh embedding backend failed; retrying"),
            }
            let deadline = std::time::Instant::now() + backoff;
            while std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                if !self.fail_arrivals(receiver) {
                    return;
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Fails every waiting and newly arrived request with `BackendDown`; false once every
    /// handle to the lane is gone.
    fn fail_arrivals(&mut self, receiver: &mpsc::Receiver<Request>) -> bool {
        let connected = loop {
            match receiver.try_recv() {
                Ok(request) => self.accept(request),
                Err(mpsc::TryRecvError::Empty) => break true,
                Err(mpsc::TryRecvError::Disconnected) => break false,
            }
        };
        self.fail_waiting();
        connected
    }

    fn fail_waiting(&mut self) {
        let err = Arc::new(EmbedError::BackendDown);
        for queue in &mut self.queues {
            self.stats.queued_texts.fetch_sub(queue.len(), Ordering::Relaxed);
            queue.clear();
        }
        for (_, open) in self.open.drain() {
            let _ = open.reply.send(Err(err.clone()));
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

    /// Records batch shapes; the "embedding" of a text is its first id and its length. A text
    /// starting with 666 fails its batch, 667 panics, and 1000+ blocks until `gate` is opened.
    struct Recorder {
        log: Arc<Mutex<Vec<Vec<u32>>>>,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        /// Appended to every vector, to tell which lane's backend answered.
        tag: Option<f32>,
    }

    impl Backend for Recorder {
        fn embed(&mut self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.log.lock().unwrap().push(batch.iter().map(|t| t[0]).collect());
            if batch.iter().any(|t| t.first() == Some(&666)) {
                return Err(EmbedError::InvalidInput("poisoned".into()));
            }
            if batch.iter().any(|t| t.first() == Some(&667)) {
                panic!("backend bug");
            }
            if batch.iter().any(|t| t[0] >= 1000) {
                let (open, cv) = &*self.gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
            }
            Ok(batch.iter().map(|t| [t[0] as f32, t.len() as f32].into_iter().chain(self.tag).collect()).collect())
        }
        fn execution_provider(&self) -> ExecutionProvider {
            ExecutionProvider::Cpu
        }
    }

    struct Harness {
        log: Arc<Mutex<Vec<Vec<u32>>>>,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    impl Harness {
        fn new() -> Self {
            Harness { log: Arc::default(), gate: Arc::new((Mutex::new(false), std::sync::Condvar::new())) }
        }
        fn backend(&self) -> Box<dyn Backend> {
            Box::new(Recorder { log: self.log.clone(), gate: self.gate.clone(), tag: None })
        }
        fn tagged_backend(&self) -> Box<dyn Backend> {
            Box::new(Recorder { log: self.log.clone(), gate: self.gate.clone(), tag: Some(-1.0) })
        }
        fn factory(&self) -> BackendFactory {
            let (log, gate) = (self.log.clone(), self.gate.clone());
            Arc::new(move || Ok(Box::new(Recorder { log: log.clone(), gate: gate.clone(), tag: None }) as Box<dyn Backend>))
        }
        fn open_gate(&self) {
            *self.gate.0.lock().unwrap() = true;
            self.gate.1.notify_all();
        }
        fn single_lane(&self, config: BatchConfig) -> Batcher {
            Batcher::spawn_lanes(self.backend(), None, self.factory(), self.factory(), config, "test").unwrap()
        }
    }

    fn text(first: u32, len: usize) -> Vec<u32> {
        let mut t = vec![first; len];
        t[0] = first;
        t
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn results_come_back_in_request_order_and_batches_respect_the_budget() {
        let h = Harness::new();
        let b = h.single_lane(BatchConfig { max_batch_tokens: 20, max_batch_size: 3 });
        let texts: Vec<Vec<u32>> = [9, 1, 5, 2, 8, 3, 7].iter().enumerate().map(|(i, &len)| text(i as u32, len)).collect();
        let out = b.submit(texts.clone(), Priority::Bulk).blocking_recv().unwrap().unwrap();
        for (i, (v, t)) in out.iter().zip(&texts).enumerate() {
            assert_eq!(v, &vec![i as f32, t.len() as f32]);
        }
        let lens: Vec<Vec<usize>> = h.log.lock().unwrap().iter().map(|b| b.iter().map(|&first| texts[first as usize].len()).collect()).collect();
        for batch in &lens {
            assert!(batch.len() <= 3, "{batch:?}");
            assert!(batch.len() * batch.iter().max().unwrap() <= 20 || batch.len() == 1, "{batch:?}");
            assert!(batch.windows(2).all(|w| w[0] <= w[1]), "sorted by length: {batch:?}");
        }
    }

    #[test]
    fn a_text_over_the_budget_runs_alone() {
        let h = Harness::new();
        let b = h.single_lane(BatchConfig { max_batch_tokens: 4, max_batch_size: 8 });
        let out = b.submit(vec![text(1, 10), text(2, 1)], Priority::Bulk).blocking_recv().unwrap().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(h.log.lock().unwrap().iter().map(|b| b.len()).sum::<usize>(), 2);
    }

    #[test]
    fn a_failing_batch_fails_only_its_requests() {
        let h = Harness::new();
        let b = h.single_lane(BatchConfig { max_batch_tokens: 1000, max_batch_size: 1 });
        let bad = b.submit(vec![text(666, 2)], Priority::Bulk);
        let good = b.submit(vec![text(1, 2)], Priority::Bulk);
        assert!(bad.blocking_recv().unwrap().is_err());
        assert_eq!(good.blocking_recv().unwrap().unwrap(), vec![vec![1.0, 2.0]]);
        assert_eq!(b.stats().queued_texts.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn empty_requests_answer_at_once() {
        let h = Harness::new();
        let b = h.single_lane(BatchConfig::default());
        assert!(b.submit(vec![], Priority::Interactive).blocking_recv().unwrap().unwrap().is_empty());
        assert!(h.log.lock().unwrap().is_empty());
    }

    /// Item 4: queued interactive work overtakes queued bulk work in a shared lane, and bulk
    /// work still gets one batch in every FAIRNESS + 1.
    #[test]
    fn interactive_work_goes_first_and_bulk_is_not_starved() {
        let h = Harness::new();
        let b = h.single_lane(BatchConfig { max_batch_tokens: 1000, max_batch_size: 1 });
        // Occupy the lane so everything below queues up behind the blocked batch.
        let blocker = b.submit(vec![text(1000, 1)], Priority::Bulk);
        wait_until("the blocker to start", || h.log.lock().unwrap().len() == 1);
        let bulk = b.submit((100..110).map(|i| text(i, 2)).collect(), Priority::Bulk);
        let queries: Vec<_> = (0..6).map(|i| b.submit(vec![text(i, 2)], Priority::Interactive)).collect();
        wait_until("everything queued", || b.stats().queued_texts.load(Ordering::Relaxed) == 16);
        h.open_gate();
        blocker.blocking_recv().unwrap().unwrap();
        for q in queries {
            q.blocking_recv().unwrap().unwrap();
        }
        bulk.blocking_recv().unwrap().unwrap();
        let order: Vec<u32> = h.log.lock().unwrap().iter().skip(1).map(|b| b[0]).collect();
        // FAIRNESS interactive, one bulk, the last interactive ones, then the rest of the bulk.
        assert_eq!(&order[..FAIRNESS], &[0, 1, 2, 3], "{order:?}");
        assert!(order[FAIRNESS] >= 100, "a bulk batch after {FAIRNESS} interactive ones: {order:?}");
        assert_eq!(&order[FAIRNESS + 1..FAIRNESS + 3], &[4, 5], "{order:?}");
        assert!(order[FAIRNESS + 3..].iter().all(|&i| i >= 100), "{order:?}");
    }

    /// Item 4: with an interactive lane, a query is answered while a bulk batch is still running;
    /// on an idle server it runs on the bulk lane's (larger) session.
    #[test]
    fn an_interactive_lane_answers_while_bulk_is_busy() {
        let h = Harness::new();
        let b = Batcher::spawn_lanes(h.backend(), Some(h.tagged_backend()), h.factory(), h.factory(), BatchConfig::default(), "test").unwrap();
        assert_eq!(b.submit(vec![text(7, 2)], Priority::Interactive).blocking_recv().unwrap().unwrap(), vec![vec![7.0, 2.0]], "idle: the bulk lane's session");
        let bulk = b.submit(vec![text(1000, 3)], Priority::Bulk);
        wait_until("the bulk batch to start", || h.log.lock().unwrap().len() == 2);
        let query = b.submit(vec![text(7, 2)], Priority::Interactive);
        assert_eq!(query.blocking_recv().unwrap().unwrap(), vec![vec![7.0, 2.0, -1.0]], "busy: the interactive lane's session");
        h.open_gate();
        assert_eq!(bulk.blocking_recv().unwrap().unwrap(), vec![vec![1000.0, 3.0]]);
        wait_until("the bulk lane to drain", || b.bulk.requests.load(Ordering::Acquire) == 0);
    }

    /// Item 5: a panicking backend fails its batch only; the lane loads a fresh backend and
    /// reports unhealthy until it has one.
    #[test]
    fn a_backend_panic_fails_its_batch_and_the_lane_restarts_the_backend() {
        let h = Harness::new();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Mutex::new(hold);
        let inner = h.factory();
        let factory: BackendFactory = Arc::new(move || {
            // The reload waits for the test, so "not healthy while reloading" is observable.
            let _ = hold.lock().unwrap().recv();
            inner()
        });
        let b = Batcher::spawn_lanes(h.backend(), None, factory.clone(), factory, BatchConfig { max_batch_tokens: 100, max_batch_size: 1 }, "test").unwrap();
        assert!(b.healthy());
        let panicking = b.submit(vec![text(667, 2)], Priority::Bulk);
        match panicking.blocking_recv().unwrap() {
            Err(err) => assert!(matches!(*err, EmbedError::BackendPanicked(_)), "{err}"),
            Ok(v) => panic!("a panicking batch returned {v:?}"),
        }
        wait_until("the lane to report unhealthy", || !b.healthy());
        // While no backend runs, requests fail fast instead of hanging.
        let during = b.submit(vec![text(3, 2)], Priority::Bulk);
        match during.blocking_recv().unwrap() {
            Err(err) => assert!(matches!(*err, EmbedError::BackendDown), "{err}"),
            Ok(v) => panic!("answered without a backend: {v:?}"),
        }
        release.send(()).unwrap();
        wait_until("the lane to recover", || b.healthy());
        assert_eq!(b.stats().restarts.load(Ordering::Relaxed), 1);
        assert_eq!(b.submit(vec![text(5, 2)], Priority::Bulk).blocking_recv().unwrap().unwrap(), vec![vec![5.0, 2.0]]);
    }
}
