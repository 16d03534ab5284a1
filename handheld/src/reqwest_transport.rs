//! [`Transport`] over real HTTP with `reqwest`.

use std::time::Duration;

use sync_protocol::{
    BlobReceipt, LoginRequest, LoginResponse, PROTOCOL_HEADER, PullRequest, PullResponse,
    PushRequest, PushResponse, RefreshRequest, Sha256Hex,
};

use crate::error::HandheldError;
use crate::transport::{
    HttpCall, HttpMethod, Transport, TransportError, TransportFuture, TransportResult, read_answer,
};

/// How long a connection may take to open; a basement with no signal
/// should fail fast, not hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ReqwestTransport {
    base_url: String,
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport to `base_url` (e.g. `http://10.0.0.5:8080`) whose every
    /// request gives up after `request_timeout`.
    pub fn new(base_url: &str, request_timeout: Duration) -> Result<Self, HandheldError> {
        let base_url = base_url.trim_end_matches('/');
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(HandheldError::invalid_input(
                "server_url",
                format!("the server URL must start with http:// or https://, not {base_url:?}"),
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(request_timeout)
            .build()
            .map_err(|error| HandheldError::invalid_input("server_url", error.to_string()))?;
        Ok(Self {
            base_url: base_url.to_owned(),
            client,
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, call: HttpCall) -> TransportResult<T> {
        let url = format!("{}{}", self.base_url, call.path);
        let mut request = match call.method {
            HttpMethod::Post => self.client.post(url),
            HttpMethod::Put => self.client.put(url),
        };
        for (name, value) in call.headers {
            request = request.header(name, value);
        }
        let response = request
            .body(call.body)
            .send()
            .await
            .map_err(|error| TransportError::NoAnswer(error_chain(&error)))?;
        let status = response.status().as_u16();
        let protocol = response
            .headers()
            .get(PROTOCOL_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // A body cut off midway is no answer: the request may have been processed.
        let body = response
            .bytes()
            .await
            .map_err(|error| TransportError::NoAnswer(error_chain(&error)))?;
        read_answer(status, protocol.as_deref(), &body)
    }
}

/// reqwest's own message is just "error sending request"; the cause is below it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl Transport for ReqwestTransport {
    fn login<'a>(&'a self, request: &'a LoginRequest) -> TransportFuture<'a, LoginResponse> {
        Box::pin(self.call(HttpCall::login(request)))
    }

    fn refresh<'a>(&'a self, request: &'a RefreshRequest) -> TransportFuture<'a, LoginResponse> {
        Box::pin(self.call(HttpCall::refresh(request)))
    }

    fn pull<'a>(
        &'a self,
        token: &'a str,
        request: &'a PullRequest,
    ) -> TransportFuture<'a, PullResponse> {
        Box::pin(self.call(HttpCall::pull(token, request)))
    }

    fn push<'a>(
        &'a self,
        token: &'a str,
        request: &'a PushRequest,
    ) -> TransportFuture<'a, PushResponse> {
        Box::pin(self.call(HttpCall::push(token, request)))
    }

    fn put_blob<'a>(
        &'a self,
        token: &'a str,
        hash: &'a Sha256Hex,
        bytes: &'a [u8],
    ) -> TransportFuture<'a, BlobReceipt> {
        Box::pin(self.call(HttpCall::put_blob(token, hash, bytes)))
    }
}
