//! The supervisors' web dashboard: three static files compiled into the
//! binary, so that the server is the whole deployment and the page works on
//! an estate intranet without internet (no CDN, no web fonts, no build step).
//! The page itself logs in and reads the JSON API and the live feed.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

use super::static_files::{Asset, bundle_etag, serve};

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        body: include_bytes!("../../assets/dashboard/index.html"),
        content_type: "text/html; charset=utf-8",
    },
    Asset {
        name: "app.js",
        body: include_bytes!("../../assets/dashboard/app.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "style.css",
        body: include_bytes!("../../assets/dashboard/style.css"),
        content_type: "text/css; charset=utf-8",
    },
];

/// Only the page's own files and API: no inline script, no third party.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub async fn index(request_headers: HeaderMap) -> Response {
    file(&request_headers, 0)
}

pub async fn script(request_headers: HeaderMap) -> Response {
    file(&request_headers, 1)
}

pub async fn style(request_headers: HeaderMap) -> Response {
    file(&request_headers, 2)
}

fn file(request_headers: &HeaderMap, index: usize) -> Response {
    let asset = &ASSETS[index];
    serve(
        request_headers,
        etag(),
        CONTENT_SECURITY_POLICY,
        asset.body,
        asset.content_type,
        &[],
    )
}

fn etag() -> &'static HeaderValue {
    static ETAG: OnceLock<HeaderValue> = OnceLock::new();
    ETAG.get_or_init(|| bundle_etag(ASSETS.iter().map(Asset::file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::static_files::tests::assert_loads_only_its_own_files;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert_loads_only_its_own_files(ASSETS.iter().map(Asset::file));
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(index.contains("src=\"/dashboard/app.js\""));
        assert!(index.contains("href=\"/dashboard/style.css\""));
    }
}
