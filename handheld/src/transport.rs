//! How the handheld reaches the server: the [`Transport`] trait, one method
//! per call of the protocol, and the HTTP form of each call as plain data
//! ([`HttpCall`], [`read_answer`]), so that any HTTP client can carry it.
//!
//! [`crate::ReqwestTransport`] is the implementation over real sockets. A
//! simulation plugs in its own client (over simulated TCP, say) by
//! implementing [`Transport`] with the same two functions around its
//! requests: build with `HttpCall::…`, send, and parse with [`read_answer`].

use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use sync_protocol::{
    BlobReceipt, ErrorBody, LoginRequest, LoginResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
    PullRequest, PullResponse, PushRequest, PushResponse, RefreshRequest, Sha256Hex,
};

/// Why a call got no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No answer at all (refused, reset, timed out): the server may or may
    /// not have processed the request.
    #[error("no answer: {0}")]
    NoAnswer(String),
    /// The server answered with an error status and the protocol's error body.
    #[error("{status} {}: {}", body.code, body.message)]
    Refused { status: u16, body: ErrorBody },
    /// The server speaks another protocol version (its header says so).
    #[error("the server speaks protocol {0}")]
    ProtocolMismatch(String),
    /// An answer that is not the protocol's: a missing header, a body that
    /// does not parse. Nothing is taken from it.
    #[error("{0}")]
    BadAnswer(String),
}

pub type TransportResult<T> = Result<T, TransportError>;

/// A call in flight. Boxed so that [`Transport`] can be used as a trait
/// object (`Arc<dyn Transport>`), which keeps the app-facing API free of
/// generics.
pub type TransportFuture<'a, T> = Pin<Box<dyn Future<Output = TransportResult<T>> + Send + 'a>>;

/// The five calls a handheld makes. Each returns the typed answer of a
/// success, or why there is none.
pub trait Transport: Send + Sync {
    fn login<'a>(&'a self, request: &'a LoginRequest) -> TransportFuture<'a, LoginResponse>;
    fn refresh<'a>(&'a self, request: &'a RefreshRequest) -> TransportFuture<'a, LoginResponse>;
    fn pull<'a>(
        &'a self,
        token: &'a str,
        request: &'a PullRequest,
    ) -> TransportFuture<'a, PullResponse>;
    fn push<'a>(
        &'a self,
        token: &'a str,
        request: &'a PushRequest,
    ) -> TransportFuture<'a, PushResponse>;
    fn put_blob<'a>(
        &'a self,
        token: &'a str,
        hash: &'a Sha256Hex,
        bytes: &'a [u8],
    ) -> TransportFuture<'a, BlobReceipt>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Put,
}

/// One call as HTTP: method, path under the server's base URL, headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    pub method: HttpMethod,
    /// Starts with `/api/v1/`.
    pub path: String,
    /// `(name, value)`, the protocol header among them.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl HttpCall {
    pub fn login(request: &LoginRequest) -> Self {
        Self::json("/api/v1/auth/login".to_owned(), None, request)
    }

    pub fn refresh(request: &RefreshRequest) -> Self {
        Self::json("/api/v1/auth/refresh".to_owned(), None, request)
    }

    pub fn pull(token: &str, request: &PullRequest) -> Self {
        Self::json("/api/v1/sync/pull".to_owned(), Some(token), request)
    }

    pub fn push(token: &str, request: &PushRequest) -> Self {
        Self::json("/api/v1/sync/push".to_owned(), Some(token), request)
    }

    pub fn put_blob(token: &str, hash: &Sha256Hex, bytes: &[u8]) -> Self {
        Self {
            method: HttpMethod::Put,
            path: format!("/api/v1/blobs/{hash}"),
            headers: Self::headers("application/octet-stream", Some(token)),
            body: bytes.to_vec(),
        }
    }

    fn json(path: String, token: Option<&str>, body: &impl serde::Serialize) -> Self {
        Self {
            method: HttpMethod::Post,
            path,
            headers: Self::headers("application/json", token),
            body: serde_json::to_vec(body).expect("wire types always serialize"),
        }
    }

    fn headers(content_type: &str, token: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", content_type.to_owned()),
            (PROTOCOL_HEADER, PROTOCOL_VERSION.to_string()),
        ];
        if let Some(token) = token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        headers
    }
}

/// Read an HTTP answer: a success body as `T`, an error status as
/// [`TransportError::Refused`] with its error body. Every answer of the
/// server carries `x-sync-protocol: 1`; one without it did not come from a
/// server of this protocol (a proxy's error page, say) and is a bad answer.
pub fn read_answer<T: DeserializeOwned>(
    status: u16,
    protocol_header: Option<&str>,
    body: &[u8],
) -> TransportResult<T> {
    match protocol_header {
        Some(version) if version == PROTOCOL_VERSION.to_string() => {}
        Some(other) => return Err(TransportError::ProtocolMismatch(other.to_owned())),
        None => {
            return Err(TransportError::BadAnswer(format!(
                "an answer with status {status} and no {PROTOCOL_HEADER} header"
            )));
        }
    }
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|error| {
            TransportError::BadAnswer(format!("a {status} answer that does not parse: {error}"))
        });
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => Err(TransportError::Refused { status, body }),
        Err(error) => Err(TransportError::BadAnswer(format!(
            "a {status} answer without the error body: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_carries_the_protocol_header_and_the_token() {
        let hash = Sha256Hex::of(b"image");
        let call = HttpCall::put_blob("t0k", &hash, b"image");
        assert_eq!(call.method, HttpMethod::Put);
        assert_eq!(call.path, format!("/api/v1/blobs/{hash}"));
        assert!(call.headers.contains(&(PROTOCOL_HEADER, "1".to_owned())));
        assert!(
            call.headers
                .contains(&("authorization", "Bearer t0k".to_owned()))
        );
        let login = HttpCall::login(&LoginRequest {
            username: "li".to_owned(),
            password: "secret".to_owned(),
            device_id: None,
        });
        assert!(
            login
                .headers
                .iter()
                .all(|(name, _)| *name != "authorization")
        );
    }

    #[test]
    fn an_error_answer_becomes_a_refusal_with_its_code() {
        let body = br#"{"code":"sequence_gap","message":"gap","details":{"expected_seq":4}}"#;
        let answer = read_answer::<PushResponse>(409, Some("1"), body);
        let Err(TransportError::Refused { status, body }) = answer else {
            panic!("{answer:?}");
        };
        assert_eq!((status, body.code.as_str()), (409, "sequence_gap"));
    }

    #[test]
    fn an_answer_without_the_protocol_header_is_not_trusted() {
        let answer = read_answer::<BlobReceipt>(502, None, b"<html>bad gateway</html>");
        assert!(matches!(answer, Err(TransportError::BadAnswer(_))));
        let answer = read_answer::<BlobReceipt>(200, Some("2"), b"{}");
        assert_eq!(
            answer,
            Err(TransportError::ProtocolMismatch("2".to_owned()))
        );
    }
}
