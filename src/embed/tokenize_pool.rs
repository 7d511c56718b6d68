//! Tokenizer workers: tokenization runs here, off the async runtime, behind a bounded queue.
//!
//! Tokenizing a 1,024-document request takes long enough to stall a tokio worker (and with it
//! `/health` and every search scheduled there), so callers hand texts to these threads instead,
//! as TEI does. Work is cut into chunks of `CHUNK` texts and interactive chunks are taken before
//! bulk ones, so a query waits for at most one chunk of someone's bulk ingest. The queue is
//! bounded in texts (`capacity`): past it, async callers wait for room instead of piling up
//! memory.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use tokio::sync::Semaphore;

use super::batcher::Priority;

/// Texts per unit of work.
pub const CHUNK: usize = 32;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queues {
    interactive: VecDeque<Job>,
    bulk: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

pub struct TokenizerPool {
    shared: Arc<Shared>,
    /// Permits = texts that may be queued or in work at once.
    room: Arc<Semaphore>,
    capacity: usize,
}

impl TokenizerPool {
    pub fn new(workers: usize, capacity: usize, name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { queues: Mutex::new(Queues::default()), ready: Condvar::new() });
        for i in 0..workers.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new().name(format!("akidb-tokenize-{name}-{i}")).spawn(move || work(&shared))?;
        }
        Ok(TokenizerPool { shared, room: Arc::new(Semaphore::new(capacity.max(1))), capacity: capacity.max(1) })
    }

    /// The semaphore that bounds the queue, and how many permits `texts` texts take.
    pub fn room(&self, texts: usize) -> (Arc<Semaphore>, u32) {
        (self.room.clone(), texts.clamp(1, self.capacity) as u32)
    }

    /// Queues jobs (call after taking room).
    pub fn run(&self, priority: Priority, jobs: Vec<Job>) {
        let mut queues = self.shared.queues.lock();
        match priority {
            Priority::Interactive => queues.interactive.extend(jobs),
            Priority::Bulk => queues.bulk.extend(jobs),
        }
        drop(queues);
        self.shared.ready.notify_all();
    }
}

impl Drop for TokenizerPool {
    fn drop(&mut self) {
        self.shared.queues.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queues = shared.queues.lock();
            loop {
                if let Some(job) = queues.interactive.pop_front().or_else(|| queues.bulk.pop_front()) {
                    break job;
                }
                if queues.closed {
                    return;
                }
                shared.ready.wait(&mut queues);
            }
        };
        job();
    }
}
