//! Where the server does its work: on threads of its own (production), or
//! all of it on the task that asks (a deterministic simulation).
//!
//! A simulation (the `simulation` package, under turmoil) runs every host on
//! one thread with simulated time. Work handed to another thread there (the
//! writer's group-commit thread, a store read or a password check on tokio's
//! blocking pool) finishes after a wall-clock delay, at whichever simulated
//! instant that happens to be, and two runs of one seed diverge. Inline,
//! each command is applied and flushed on the task that submitted it, as a
//! group of one, and blocking work runs where it is called: the order of
//! events is the order of the tasks, which the simulation decides.

/// How the server runs its writer, its scheduler's store reads and its
/// password checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Execution {
    /// The single writer on its own thread with group commit; store scans
    /// on tokio's blocking pool; password checks on their own bounded pool
    /// (`auth::passwords`).
    #[default]
    Threads,
    /// Everything on the calling task; one command per commit. For the
    /// in-memory store inside a single-threaded simulation only: a sled
    /// flush here would stall every request behind it.
    Inline,
}

/// The blocking work panicked (or its thread was cancelled).
#[derive(Debug, thiserror::Error)]
#[error("blocking work failed: {0}")]
pub struct BlockingError(String);

impl Execution {
    /// Run `work`, which may block, without holding up the async workers
    /// (`Threads`), or right here (`Inline`).
    pub async fn run_blocking<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, BlockingError> {
        match self {
            Execution::Threads => tokio::task::spawn_blocking(work)
                .await
                .map_err(|join_error| BlockingError(join_error.to_string())),
            Execution::Inline => Ok(work()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inline_work_runs_on_the_calling_thread_and_threaded_work_elsewhere() {
        let caller = std::thread::current().id();
        let inline = Execution::Inline
            .run_blocking(|| std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(inline, caller);
        let threaded = Execution::Threads
            .run_blocking(|| std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(threaded, caller);
    }

    #[tokio::test]
    async fn a_panic_on_the_blocking_pool_is_an_error_not_a_crash() {
        let failed = Execution::Threads
            .run_blocking(|| -> u8 { panic!("broken") })
            .await;
        assert!(failed.is_err());
    }
}
