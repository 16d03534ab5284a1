//! HTTP over turmoil's simulated TCP: the listener the server is served on
//! and the client the handhelds and the office call it with (hyper's
//! HTTP/1.1 client, one connection per request, as a phone on a flaky
//! network would do).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use sync_protocol::PROTOCOL_HEADER;

/// The server's host name in the simulated network.
pub const SERVER_HOST: &str = "server";
pub const SERVER_PORT: u16 = 8080;

/// turmoil's listener as axum serves it.
pub struct SimListener(turmoil::net::TcpListener);

impl SimListener {
    pub async fn bind() -> std::io::Result<Self> {
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", SERVER_PORT)).await?;
        Ok(Self(listener))
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // A client that gave up between its SYN and the accept: wait
            // for the next one, as axum does for a real listener.
            if let Ok(accepted) = self.0.accept().await {
                return accepted;
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// An answer as it came back.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// The `x-sync-protocol` header, which every answer of the server carries.
    pub protocol: Option<String>,
    pub body: Vec<u8>,
}

/// A client that gives up on a request after `timeout` of simulated time.
#[derive(Clone, Copy, Debug)]
pub struct HttpClient {
    timeout: Duration,
}

impl HttpClient {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// One request to the server; `Err` says why there was no answer (the
    /// server may or may not have processed it).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVER_HOST)
            .header("connection", "close");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| error.to_string())?;
        match tokio::time::timeout(self.timeout, exchange(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }
}

async fn exchange(request: Request<Full<Bytes>>) -> Result<Answer, String> {
    let stream = turmoil::net::TcpStream::connect((SERVER_HOST, SERVER_PORT))
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let answer = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("request: {error}"))?;
        let status = response.status().as_u16();
        let protocol = response
            .headers()
            .get(PROTOCOL_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // A body cut off midway is no answer: the request may have been processed.
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("body: {error}"))?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status,
            protocol,
            body,
        })
    };
    // The connection is driven here rather than on a task of its own, so
    // that giving up on the request (the timeout) closes the socket too.
    let mut answer = std::pin::pin!(answer);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        biased;
        answer = &mut answer => answer,
        closed = &mut connection => match closed {
            // Closed after the answer was read off the wire: it is in hand.
            Ok(()) => answer.await,
            Err(error) => Err(format!("connection: {error}")),
        },
    }
}
