//! Group commit: concurrent writers share fsyncs.
//!
//! A writer takes a ticket after its write and waits until a flush that *started* after the
//! ticket has finished. One waiter at a time becomes the leader and flushes for everyone who
//! holds a ticket up to the moment it starts; the others wait on a condition variable.

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Tickets handed out so far.
    issued: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    flushing: bool,
    /// The error of the last failed flush, for the waiters it covered.
    last_error: Option<(u64, String)>,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    flushed: Condvar,
}

impl GroupCommit {
    /// Waits until everything written before this call is durable, running `flush` as the
    /// leader when no flush covering this caller is under way.
    pub fn commit<E>(&self, flush: impl Fn() -> Result<(), E>) -> Result<(), String>
    where
        E: std::fmt::Display,
    {
        let mut state = self.state.lock();
        state.issued += 1;
        let ticket = state.issued;
        loop {
            if state.durable >= ticket {
                return match &state.last_error {
                    Some((covered, message)) if *covered >= ticket => Err(message.clone()),
                    _ => Ok(()),
                };
            }
            if state.flushing {
                self.flushed.wait(&mut state);
                continue;
            }
            state.flushing = true;
            let covers = state.issued;
            drop(state);
            let result = flush().map_err(|e| e.to_string());
            state = self.state.lock();
            state.flushing = false;
            state.durable = covers;
            if let Err(message) = result {
                state.last_error = Some((covers, message));
            }
            self.flushed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn concurrent_writers_share_flushes() {
        let group = Arc::new(GroupCommit::default());
        let flushes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (group, flushes) = (group.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        group
                            .commit(|| {
                                flushes.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(2));
                                Ok::<(), String>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let flushes = flushes.load(Ordering::SeqCst);
        assert!(flushes >= 1 && flushes < 320, "320 commits took {flushes} flushes");
    }

    #[test]
    fn a_failed_flush_is_reported_to_the_writers_it_covered() {
        let group = GroupCommit::default();
        assert_eq!(group.commit(|| Err("disk full")), Err("disk full".to_owned()));
        assert_eq!(group.commit(|| Ok::<(), String>(())), Ok(()));
    }
}
