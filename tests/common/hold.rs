//! Holding a thread at a failpoint, and bounding how long a thread may take: how the fault tests
//! force an interleaving (never with sleeps).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Blocks the thread that reaches a failpoint (once) until `release` is called; `reached`
/// fires when it gets there.
pub struct Hold {
    reached: Mutex<mpsc::Receiver<()>>,
    release: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl Hold {
    pub fn at(failpoint: &str) -> Hold {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let armed = AtomicBool::new(true);
        let release = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let gate = release.clone();
        fail::cfg_callback(failpoint, move || {
            if !armed.swap(false, Ordering::SeqCst) {
                return;
            }
            let _ = tx.lock().unwrap().send(());
            let (open, cv) = &*gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        })
        .unwrap();
        Hold { reached: Mutex::new(rx), release }
    }

    pub fn wait_reached(&self) {
        self.reached.lock().unwrap().recv_timeout(Duration::from_secs(30)).expect("the failpoint was never reached");
    }

    pub fn release(&self) {
        *self.release.0.lock().unwrap() = true;
        self.release.1.notify_all();
    }
}

/// Runs `work` on a thread and fails the test if it has not finished within `limit` (a generous
/// bound that only a thread stuck behind a held lock can miss).
pub fn finishes_within<T: Send + 'static>(limit: Duration, what: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}: it is blocked"))
}

