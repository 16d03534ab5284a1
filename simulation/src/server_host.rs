//! The server as a simulated host: the real `Application`, with its writer,
//! scheduler and password checks inline (`Execution::Inline`), over an
//! in-memory store that outlives the host. A crash drops the application
//! at an await point; the writer never holds a write unflushed across one,
//! so what the store has then is exactly what was committed, and the next
//! start builds the application over it again, as a restarted process
//! would over its disk.

use std::sync::Arc;

use server::app::Application;
use server::config::Config;
use server::execution::Execution;
use server::store::Store;

use crate::clock::SimClock;
use crate::estate;
use crate::http::SimListener;
use crate::observe::Journal;
use crate::scenario::Scenario;

/// How long the server lets one request take (simulated time).
const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// The server's software: start (seeding the estate the first time), then
/// serve until the simulation crashes the host.
pub async fn serve(
    store: Store,
    clock: SimClock,
    scenario: Scenario,
    journal: Arc<Journal>,
) -> turmoil::Result {
    let listener = SimListener::bind().await?;
    let app = Application::build_on(
        config(),
        store.clone(),
        Arc::new(clock),
        listener,
        Execution::Inline,
    )
    .await?;
    estate::seed(&store, app.writer(), &scenario, clock.now()).await?;
    journal.note(
        "server",
        format_args!("starts; feed at {}", app.writer().durable_cursor().0),
    );
    app.run_until_stopped(std::future::pending()).await?;
    Ok(())
}

fn config() -> Config {
    let mut config = Config::default();
    config.auth.jwt_secret = "simulation-jwt-secret-0123456789abcdef".to_owned();
    config.limits.request_timeout_ms = REQUEST_TIMEOUT_MS;
    config
}
