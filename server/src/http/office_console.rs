//! The office console (`/console`): the web pages of every office role,
//! compiled into the binary like the dashboard's. The pages log in, read
//! the JSON API and act through it; the server decides every permission.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

use super::static_files::{Asset, bundle_etag, serve};
use super::{ApiError, ApiPath};

const PAGE: Asset = Asset {
    name: "",
    body: include_bytes!("../../assets/console/index.html"),
    content_type: "text/html; charset=utf-8",
};

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The files under `/console/`, by name.
const FILES: &[Asset] = &[
    Asset {
        name: "main.js",
        body: include_bytes!("../../assets/console/main.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "screens.js",
        body: include_bytes!("../../assets/console/screens.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "ticket.js",
        body: include_bytes!("../../assets/console/ticket.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "api.js",
        body: include_bytes!("../../assets/console/api.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "dom.js",
        body: include_bytes!("../../assets/console/dom.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "i18n.js",
        body: include_bytes!("../../assets/console/i18n.js"),
        content_type: JAVASCRIPT,
    },
    Asset {
        name: "style.css",
        body: include_bytes!("../../assets/console/style.css"),
        content_type: "text/css; charset=utf-8",
    },
];

/// Only the console's own files and API; images also as `blob:` URLs (a
/// signature or photo is read with the token, then shown).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub async fn page(request_headers: HeaderMap) -> Response {
    respond(&request_headers, &PAGE)
}

pub async fn file(
    request_headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let asset = FILES
        .iter()
        .find(|asset| asset.name == name)
        .ok_or_else(|| ApiError::not_found("not_found", "no such file of the console"))?;
    Ok(respond(&request_headers, asset))
}

fn respond(request_headers: &HeaderMap, asset: &Asset) -> Response {
    serve(
        request_headers,
        etag(),
        CONTENT_SECURITY_POLICY,
        asset.body,
        asset.content_type,
        &[],
    )
}

/// One tag for all the console's files: they change only with the binary.
fn etag() -> &'static HeaderValue {
    static ETAG: OnceLock<HeaderValue> = OnceLock::new();
    ETAG.get_or_init(|| {
        bundle_etag(std::iter::once(PAGE.file()).chain(FILES.iter().map(Asset::file)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::static_files::tests::{
        assert_every_import_is_served, assert_loads_only_its_own_files,
    };

    #[test]
    fn the_console_loads_only_its_own_files() {
        assert_loads_only_its_own_files(
            std::iter::once(PAGE.file()).chain(FILES.iter().map(Asset::file)),
        );
    }

    /// Every error code the API documents has words in both of the
    /// console's languages: a refusal is never shown as a bare code, nor in
    /// English inside the Chinese page.
    #[test]
    fn the_console_words_every_documented_error_code_in_both_languages() {
        let protocol = include_str!("../../../docs/protocol.md");
        let section = protocol
            .split("## 9. Error codes")
            .nth(1)
            .and_then(|rest| rest.split("\n## 10.").next())
            .expect("docs/protocol.md has its error code section");
        let codes: Vec<&str> = section
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim);
                let status = cells.nth(1)?;
                let code = cells.next()?;
                (status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| code.trim_matches('`'))
            })
            .collect();
        assert!(codes.len() > 40, "{codes:?}");
        let i18n = FILES.iter().find(|asset| asset.name == "i18n.js").unwrap();
        let text = std::str::from_utf8(i18n.body).unwrap();
        let errors = text.split("const ERRORS").nth(1).unwrap();
        let (chinese, english) = errors.split_once("\n  en: {").unwrap();
        let english = english.split("\n};").next().unwrap();
        for code in codes {
            let entry = format!("\n    {code}: ");
            assert!(chinese.contains(&entry), "{code} has no Chinese words");
            assert!(english.contains(&entry), "{code} has no English words");
        }
    }

    #[test]
    fn every_module_the_console_imports_is_served() {
        assert_every_import_is_served(FILES);
    }
}
