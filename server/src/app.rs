//! Building and running the server: open the store, start the writer, bind,
//! start the time-rule scheduler, serve until told to stop, then stop the
//! scheduler, flush and stop the writer. After a storage fault the run ends
//! in an error, so that the process exits with a failure status.
//!
//! A simulation builds the same application on a listener of its own (any
//! `axum::serve::Listener`, e.g. over simulated TCP) with everything inline
//! ([`Application::build_on`], [`Execution::Inline`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::serve::Listener;
use tokio::net::TcpListener;

use crate::auth::throttle::LoginThrottle;
use crate::auth::{Authority, PasswordChecker};
use crate::clock::Clock;
use crate::config::Config;
use crate::execution::Execution;
use crate::http::{AppState, ConnectionLimits, router, serve};
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::scheduler::{Scheduler, SchedulerError, SchedulerHandle};
use crate::store::{Store, StoreError};
use crate::users::UserDirectory;
use crate::writer::{AfterCommit, StorageFault, Writer, WriterSettings};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("scheduler: {0}")]
    Scheduler(#[from] SchedulerError),
    #[error(
        "writes stopped after a storage fault (see the log): free space or repair the disk, then start the server again"
    )]
    StorageFault,
}

pub struct Application<L = TcpListener> {
    listener: L,
    state: Arc<AppState>,
    /// `None` when the writer runs inline.
    writer_thread: Option<JoinHandle<()>>,
    storage_fault: StorageFault,
    scheduler: SchedulerHandle,
    /// Serve HTTPS with this configuration; plain HTTP without.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Application {
    /// Open the sled store in the configured directory and bind the listener.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        let store = Store::open(&config.data_dir)?;
        Self::build_with_store(config, store, clock).await
    }

    pub async fn build_with_store(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AppError> {
        let listener = TcpListener::bind(config.listen).await?;
        Application::build_on(config, store, clock, listener, Execution::Threads).await
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl<L: Listener<Addr = SocketAddr>> Application<L> {
    /// Build the application over `store`, serving on `listener`, with the
    /// writer, the scheduler's reads and the password checks run as
    /// `execution` says.
    pub async fn build_on(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
        listener: L,
        execution: Execution,
    ) -> Result<Self, AppError> {
        let live = LiveHub::new(clock.now());
        let scheduler = Scheduler::with_execution(execution).publishing_to(live.clone());
        let users = UserDirectory::new(store.clone());
        let notices = AfterCommit {
            tickets: Some(scheduler.notices()),
            users: Some(users.clone()),
        };
        let settings = WriterSettings {
            calendars: config.calendars.clone(),
            max_devices_per_user: config.limits.max_devices_per_user,
            flush_timeout: config.limits.flush_timeout(),
        };
        let (writer, writer_thread) = match execution {
            Execution::Threads => {
                let (writer, thread) = Writer::start_with_notices(
                    store.clone(),
                    clock.clone(),
                    config.limits.write_queue,
                    settings,
                    notices,
                )?;
                (writer, Some(thread))
            }
            Execution::Inline => {
                let writer = Writer::start_inline(store.clone(), clock.clone(), settings, notices)?;
                (writer, None)
            }
        };
        // The scheduler runs on the writer's clock, so that a deadline it
        // sees pass has passed for the writer too.
        let scheduler = scheduler
            .start(
                store.clone(),
                writer.clone(),
                clock.clone(),
                config.calendars.clone(),
            )
            .await?;
        let storage_fault = writer.storage_fault();
        let state = Arc::new(AppState {
            store,
            writer,
            authority: Authority::new(&config.auth),
            users,
            passwords: PasswordChecker::start(
                execution,
                config.limits.password_workers,
                config.limits.password_queue,
            ),
            throttle: LoginThrottle::new(
                config.limits.login_attempts_per_minute,
                config.limits.login_free_failures,
            ),
            refresh_ttl: chrono::Duration::days(config.auth.refresh_ttl_days),
            clock,
            limits: config.limits.clone(),
            calendars: config.calendars,
            execution,
            live,
            metrics: Arc::new(Metrics::default()),
            supervision: config.supervision,
        });
        Ok(Self {
            listener,
            state,
            writer_thread,
            storage_fault,
            scheduler,
            tls: None,
        })
    }

    /// Serve HTTPS with `tls` instead of plain HTTP.
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn writer(&self) -> &Writer {
        &self.state.writer
    }

    /// Serve until `shutdown` completes; then finish in-flight requests, let
    /// the writer flush, and return: an error if the writer stopped after a
    /// storage fault.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        // Open live-feed streams would hold the graceful shutdown up for
        // ever: closing the hub ends them as soon as the stop is asked.
        let live = self.state.live.clone();
        let shutdown = async move {
            shutdown.await;
            live.close();
        };
        let limits = &self.state.limits;
        let connections = ConnectionLimits {
            max_connections: limits.max_connections,
            max_connections_per_address: (!limits.trust_forwarded_for)
                .then_some(limits.max_connections_per_address),
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
            grace: Duration::from_millis(limits.request_timeout_ms),
        };
        let app = router(self.state);
        let tls = self.tls.map(tokio_rustls::TlsAcceptor::from);
        serve(self.listener, app, connections, tls, shutdown).await;
        // The scheduler holds a writer handle: stop it first.
        self.scheduler.stop().await;
        // The router (and with it the last writer handle) is gone: the writer
        // drains its queue, flushes and stops. An inline writer flushed each
        // command as it went.
        if let Some(writer_thread) = self.writer_thread {
            tokio::task::spawn_blocking(move || writer_thread.join())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .map_err(|_| std::io::Error::other("the writer thread panicked"))?;
        }
        if self.storage_fault.occurred() {
            return Err(AppError::StorageFault);
        }
        tracing::info!("stopped; store flushed");
        Ok(())
    }
}
