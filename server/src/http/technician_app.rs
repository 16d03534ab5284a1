//! The technicians' offline web app (`/app`): its files compiled into the
//! binary like the dashboard's. The service worker is the one file that is
//! not served as written: it is told the bundle's version and the files to
//! keep, from this table, so that a new binary replaces the phone's copy
//! and the list can never miss a file.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

use super::static_files::{Asset, bundle_etag, serve};
use super::{ApiError, ApiPath};

/// The page itself, at `/app`.
const PAGE: Asset = Asset {
    name: "",
    body: include_bytes!("../../assets/app/index.html"),
    content_type: "text/html; charset=utf-8",
};

const SERVICE_WORKER: &str = "sw.js";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const SERVICE_WORKER_TEMPLATE: &str = include_str!("../../assets/app/sw.js");

/// The files under `/app/`, by name.
const FILES: &[Asset] = &[
    Asset {
        name: "main.js",
        body: include_bytes!("../../assets/app/main.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "db.js",
        body: include_bytes!("../../assets/app/db.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "sync.js",
        body: include_bytes!("../../assets/app/sync.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "i18n.js",
        body: include_bytes!("../../assets/app/i18n.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "record-hash.js",
        body: include_bytes!("../../assets/app/record-hash.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "idb.js",
        body: include_bytes!("../../assets/app/vendor/idb.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "signature_pad.js",
        body: include_bytes!("../../assets/app/vendor/signature_pad.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "style.css",
        body: include_bytes!("../../assets/app/style.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        name: "manifest.webmanifest",
        body: include_bytes!("../../assets/app/manifest.webmanifest"),
        content_type: "application/manifest+json",
    },
    Asset {
        name: "icon-192.png",
        body: include_bytes!("../../assets/app/icon-192.png"),
        content_type: "image/png",
    },
    Asset {
        name: "icon-512.png",
        body: include_bytes!("../../assets/app/icon-512.png"),
        content_type: "image/png",
    },
];

/// Only the app's own files and API; images also from the phone's own
/// store (`blob:` URLs of photos not yet uploaded).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub async fn page(request_headers: HeaderMap) -> Response {
    respond(&request_headers, PAGE.body, PAGE.content_type, &[])
}

pub async fn file(
    request_headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    if name == SERVICE_WORKER {
        // Registered for `/app` itself, which lies outside `/app/`.
        let scope = (
            HeaderName::from_static("service-worker-allowed"),
            HeaderValue::from_static("/app"),
        );
        let body = service_worker().as_bytes();
        return Ok(respond(&request_headers, body, JAVASCRIPT, &[scope]));
    }
    let asset = FILES
        .iter()
        .find(|asset| asset.name == name)
        .ok_or_else(|| ApiError::not_found("not_found", "no such file of the app"))?;
    Ok(respond(
        &request_headers,
        asset.body,
        asset.content_type,
        &[],
    ))
}

fn respond(
    request_headers: &HeaderMap,
    body: &'static [u8],
    content_type: &'static str,
    extra: &[(HeaderName, HeaderValue)],
) -> Response {
    serve(
        request_headers,
        etag(),
        CONTENT_SECURITY_POLICY,
        body,
        content_type,
        extra,
    )
}

/// One tag for all the app's files, the service worker's template with
/// them: they change only with the binary.
fn etag() -> &'static HeaderValue {
    static ETAG: OnceLock<HeaderValue> = OnceLock::new();
    ETAG.get_or_init(|| {
        let worker = (SERVICE_WORKER, SERVICE_WORKER_TEMPLATE.as_bytes());
        bundle_etag(
            std::iter::once(PAGE.file())
                .chain(FILES.iter().map(Asset::file))
                .chain([worker]),
        )
    })
}

/// The service worker with the bundle's version and the list of files to
/// keep for offline use.
fn service_worker() -> &'static str {
    static WORKER: OnceLock<String> = OnceLock::new();
    WORKER.get_or_init(|| {
        let version = etag().to_str().unwrap_or_default().trim_matches('"');
        let shell: Vec<String> = std::iter::once("/app".to_owned())
            .chain(FILES.iter().map(|asset| format!("/app/{}", asset.name)))
            .collect();
        let shell = serde_json::to_string(&shell).expect("a list of strings serializes");
        SERVICE_WORKER_TEMPLATE
            .replace("\"__BUNDLE_VERSION__\"", &format!("\"{version}\""))
            .replace("[\"__SHELL_FILES__\"]", &shell)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::static_files::tests::{
        assert_every_import_is_served, assert_loads_only_its_own_files,
    };

    #[test]
    fn the_app_loads_only_its_own_files() {
        assert_loads_only_its_own_files(
            std::iter::once(PAGE.file())
                .chain(FILES.iter().map(Asset::file))
                .chain([(SERVICE_WORKER, service_worker().as_bytes())]),
        );
    }

    #[test]
    fn the_service_worker_keeps_every_file_of_the_app_under_this_version() {
        let worker = service_worker();
        assert!(!worker.contains("__BUNDLE_VERSION__"));
        assert!(!worker.contains("__SHELL_FILES__"));
        assert!(worker.contains(etag().to_str().unwrap().trim_matches('"')));
        for asset in FILES {
            assert!(
                worker.contains(&format!("\"/app/{}\"", asset.name)),
                "{}",
                asset.name
            );
        }
    }

    #[test]
    fn every_module_the_app_imports_is_served() {
        assert_every_import_is_served(FILES);
    }
}
