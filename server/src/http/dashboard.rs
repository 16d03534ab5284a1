//! The supervisors' web dashboard: three static files compiled into the
//! binary, so that the server is the whole deployment and the page works on
//! an estate intranet without internet (no CDN, no web fonts, no build step).
//! The page itself logs in and reads the JSON API and the live feed.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const STYLE_CSS: &str = include_str!("../../assets/dashboard/style.css");

/// Only the page's own files and API: no inline script, no third party.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub async fn index(request_headers: HeaderMap) -> Response {
    serve(&request_headers, INDEX_HTML, "text/html; charset=utf-8")
}

pub async fn script(request_headers: HeaderMap) -> Response {
    serve(&request_headers, APP_JS, "text/javascript; charset=utf-8")
}

pub async fn style(request_headers: HeaderMap) -> Response {
    serve(&request_headers, STYLE_CSS, "text/css; charset=utf-8")
}

/// The file with a validator instead of a lifetime: the names carry no
/// fingerprint, so a browser must ask again after an upgrade, and the
/// `ETag` makes that question cost a 304.
fn serve(request_headers: &HeaderMap, body: &'static str, content_type: &'static str) -> Response {
    let etag = bundle_etag();
    let cache_headers = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
    ];
    if request_headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return (StatusCode::NOT_MODIFIED, cache_headers).into_response();
    }
    (
        cache_headers,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// One tag for the three files: they only change together, with the binary.
fn bundle_etag() -> HeaderValue {
    static ETAG: OnceLock<HeaderValue> = OnceLock::new();
    ETAG.get_or_init(|| {
        let mut hasher = DefaultHasher::new();
        (INDEX_HTML, APP_JS, STYLE_CSS).hash(&mut hasher);
        HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
            .expect("a quoted hex string is a valid header value")
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        for asset in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!asset.contains("http://"), "no absolute URL");
            assert!(!asset.contains("https://"), "no absolute URL");
        }
        assert!(INDEX_HTML.contains("src=\"/dashboard/app.js\""));
        assert!(INDEX_HTML.contains("href=\"/dashboard/style.css\""));
    }

    #[test]
    fn a_browser_holding_the_current_files_gets_a_not_modified() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, bundle_etag());
        let response = serve(&headers, APP_JS, "text/javascript; charset=utf-8");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

        let response = serve(&HeaderMap::new(), APP_JS, "text/javascript; charset=utf-8");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::ETAG], bundle_etag());
    }
}
