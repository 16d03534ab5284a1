//! A bound on the group commit's flush.
//!
//! sled 0.34 can wait for ever inside a flush: when writing a large value
//! to a file of its own fails (a full disk), it keeps its claim on the log
//! buffer the value was reserved in, so that buffer is never written and
//! every later flush waits for it. A writer waiting with it would answer
//! nothing, refuse nothing and never stop. So the flush runs on a thread of
//! its own and the writer waits for it at most a bound: a flush that has
//! not returned by then has failed. That thread stays where it is stuck
//! until the process ends.

use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::time::Duration;

use crate::store::{Store, StoreError};

/// Why a group could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the flush did not return within {} ms", .0.as_millis())]
    TimedOut(Duration),
    #[error("the flush panicked")]
    Panicked,
}

/// Runs `store`'s flush on its own thread, waiting for each at most `bound`.
pub struct FlushWatchdog {
    requests: mpsc::SyncSender<()>,
    results: mpsc::Receiver<Result<(), StoreError>>,
    bound: Duration,
}

impl FlushWatchdog {
    /// Start the flush thread; it ends when the watchdog is dropped (unless
    /// it is stuck in a flush).
    pub fn start(store: Store, bound: Duration) -> Self {
        let (requests, requested) = mpsc::sync_channel::<()>(1);
        let (done, results) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("flush".to_owned())
            .spawn(move || {
                for () in requested {
                    if done.send(store.flush()).is_err() {
                        return;
                    }
                }
            })
            .expect("the flush thread starts");
        Self {
            requests,
            results,
            bound,
        }
    }

    /// Flush, and wait for it at most the bound.
    pub fn flush(&self) -> Result<(), FlushError> {
        match self.requests.try_send(()) {
            Ok(()) => {}
            // The flush before this one is still stuck.
            Err(TrySendError::Full(())) => return Err(FlushError::TimedOut(self.bound)),
            Err(TrySendError::Disconnected(())) => return Err(FlushError::Panicked),
        }
        match self.results.recv_timeout(self.bound) {
            Ok(flushed) => Ok(flushed?),
            Err(RecvTimeoutError::Timeout) => Err(FlushError::TimedOut(self.bound)),
            Err(RecvTimeoutError::Disconnected) => Err(FlushError::Panicked),
        }
    }
}
