//! The accept loop: HTTP/1.1 connections with limits, so that no client can
//! take the server down by holding sockets open.
//! - A connection has `header_read_timeout` to send a request's headers, and
//!   an idle keep-alive connection is closed after the same time: hyper
//!   starts that clock whenever it waits for the next request.
//! - At most `max_connections` are open at once, and at most
//!   `max_connections_per_address` from one client (unless a trusted
//!   reverse proxy is every client); one more is answered `429
//!   too_many_connections` and closed.
//! - At shutdown the listener closes, idle connections end at once, and
//!   requests in flight get `grace` to finish.
//! - With TLS, the handshake happens on the connection's own task, within
//!   the same header-read time.
//!
//! Every request carries its connection's [`PeerAddress`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sync_protocol::{ErrorBody, PROTOCOL_HEADER, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::PeerAddress;
use crate::auth::throttle::client_key;

/// How the accept loop limits connections.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// `None` behind a trusted reverse proxy, whose one address is every client's.
    pub max_connections_per_address: Option<usize>,
    pub header_read_timeout: Duration,
    /// How long requests in flight may take to finish at shutdown.
    pub grace: Duration,
}

/// How long a refused connection is given to take its answer.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serve `router` on `listener` until `shutdown` completes: HTTPS when
/// given a TLS acceptor, plain HTTP otherwise.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener<Addr = SocketAddr>,
    L::Io: Unpin + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = AddressCounts::default();
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let address = peer.ip();
        let admitted = admit(&open, &per_address, &limits, address);
        let (tls, handshake_within) = (tls.clone(), limits.header_read_timeout);
        let Some((permit, address_slot)) = admitted else {
            tokio::spawn(async move {
                if let Some(stream) = secure(tls, io, handshake_within, address).await {
                    refuse(stream).await;
                }
            });
            continue;
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(PeerAddress(address));
                    request
                });
        let service = TowerToHyperService::new(service);
        let (http, watcher) = (http.clone(), graceful.watcher());
        tokio::spawn(async move {
            if let Some(stream) = secure(tls, io, handshake_within, address).await {
                let connection = http.serve_connection(TokioIo::new(stream), service);
                if let Err(error) = watcher.watch(connection).await {
                    tracing::debug!(%error, %address, "connection ended with an error");
                }
            }
            drop((permit, address_slot));
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.grace) => {
            tracing::warn!("requests still in flight at the end of the shutdown grace; dropped");
        }
    }
}

/// A connection's byte stream, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The connection as it is spoken on: as accepted without TLS, else after a
/// handshake within `within` (`None` when that fails or takes longer).
async fn secure<Io>(
    tls: Option<TlsAcceptor>,
    io: Io,
    within: Duration,
    address: IpAddr,
) -> Option<Box<dyn Stream>>
where
    Io: Stream + 'static,
{
    let Some(acceptor) = tls else {
        return Some(Box::new(io));
    };
    match tokio::time::timeout(within, acceptor.accept(io)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(error)) => {
            tracing::debug!(%error, %address, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// A slot under both limits, or `None`.
fn admit(
    open: &Arc<Semaphore>,
    per_address: &AddressCounts,
    limits: &ConnectionLimits,
    address: IpAddr,
) -> Option<(OwnedSemaphorePermit, Option<AddressSlot>)> {
    let permit = open.clone().try_acquire_owned().ok()?;
    let address_slot = match limits.max_connections_per_address {
        Some(limit) => Some(per_address.take(client_key(address), limit)?),
        None => None,
    };
    Some((permit, address_slot))
}

/// Answer `429 too_many_connections` without reading the request, and close.
async fn refuse<Io: tokio::io::AsyncWrite + Unpin>(mut io: Io) {
    let body = serde_json::to_string(&ErrorBody {
        code: "too_many_connections".to_owned(),
        message: "the server has too many open connections; retry shortly".to_owned(),
        details: None,
    })
    .expect("an error body serializes");
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\n{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let written = async {
        io.write_all(answer.as_bytes()).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, written).await;
}

/// Open connections per client.
#[derive(Clone, Default)]
struct AddressCounts {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressCounts {
    fn take(&self, address: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(address).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.counts.clone(),
            address,
        })
    }
}

/// One open connection of a client; counted down when dropped.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_of_connections_and_gets_them_back() {
        let counts = AddressCounts::default();
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let first = counts.take(one, 2).unwrap();
        let _second = counts.take(one, 2).unwrap();
        assert!(counts.take(one, 2).is_none());
        assert!(counts.take(other, 2).is_some());
        drop(first);
        assert!(counts.take(one, 2).is_some());
    }
}
