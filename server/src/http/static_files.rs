//! Pages compiled into the binary (the dashboard, the technicians' app):
//! each file is served with a validator instead of a lifetime, and with a
//! policy that lets it load only the server's own files.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One file of a page.
pub struct Asset {
    /// Its name under the page's path.
    pub name: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
}

impl Asset {
    /// Its name and body, as [`bundle_etag`] takes them.
    pub fn file(&self) -> (&'static str, &'static [u8]) {
        (self.name, self.body)
    }
}

/// A tag for a set of files (name and body) that only change together,
/// with the binary.
pub fn bundle_etag<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> HeaderValue {
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
    }
    HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
        .expect("a quoted hex string is a valid header value")
}

/// The file with a validator instead of a lifetime: the names carry no
/// fingerprint, so a browser must ask again after an upgrade, and the
/// `ETag` makes that question cost a 304.
pub fn serve(
    request_headers: &HeaderMap,
    etag: &HeaderValue,
    policy: &'static str,
    body: impl Into<axum::body::Body>,
    content_type: &'static str,
    extra: &[(HeaderName, HeaderValue)],
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, etag.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    if request_headers.get(header::IF_NONE_MATCH) == Some(etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, body.into()).into_response()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A page's files load only the server's own: no absolute URL where a
    /// file, a script or a connection is named (the policy refuses them too).
    pub(crate) fn assert_loads_only_its_own_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) {
        const LOADS: &[&str] = &[
            "src=\"",
            "href=\"",
            "url(",
            "from \"",
            "import(\"",
            "fetch(\"",
            "register(\"",
        ];
        for (name, body) in files {
            let Ok(text) = std::str::from_utf8(body) else {
                continue;
            };
            for load in LOADS {
                for scheme in ["http:", "https:", "//"] {
                    let absolute = format!("{load}{scheme}");
                    assert!(!text.contains(&absolute), "{name}: {absolute}…");
                }
            }
        }
    }

    /// Every module a page's scripts import (`… from "./x.js"`, on one
    /// line or at the end of several) is one of its served files.
    pub(crate) fn assert_every_import_is_served(files: &[Asset]) {
        for asset in files.iter().filter(|asset| asset.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for rest in text.split("from \"./").skip(1) {
                let name = rest.split('"').next().unwrap();
                assert!(
                    files.iter().any(|served| served.name == name),
                    "{} imports {name}, which is not served",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn a_browser_holding_the_current_files_gets_a_not_modified() {
        let etag = bundle_etag([("a.js", &b"1"[..])]);
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag.clone());
        let response = serve(
            &headers,
            &etag,
            "default-src 'self'",
            "1",
            "text/javascript",
            &[],
        );
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

        let response = serve(
            &HeaderMap::new(),
            &etag,
            "default-src 'self'",
            "1",
            "text/javascript",
            &[],
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::ETAG], etag);
    }
}
