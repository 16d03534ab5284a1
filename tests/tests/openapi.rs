//! The served OpenAPI document and the real routes agree.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sync_protocol::Sha256Hex;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The served document.
async fn document(server: &TestServer) -> Value {
    let response = server.get("/api/v1/openapi.json", None).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let document: Value = response.json();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "an OpenAPI 3 document: {document}"
    );
    document
}

/// Every (method, path) the document describes, with its `servers` prefix.
fn operations(document: &Value) -> Vec<(String, String)> {
    let prefix = document["servers"][0]["url"]
        .as_str()
        .filter(|url| url.starts_with('/'))
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned();
    let paths = document["paths"]
        .as_object()
        .expect("the document has a paths object");
    let mut operations = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for method in item.keys().filter(|key| METHODS.contains(&key.as_str())) {
            operations.push((method.clone(), format!("{prefix}{path}")));
        }
    }
    operations
}

/// `/a/{x}/b` → `/a/{}/b`: parameter names may differ, the shape may not.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_the_openapi_document_describes_is_served() {
    let server = TestServer::start();
    let document = document(&server).await;
    let dispatcher = server.login("diaodu").await;
    let li = server.login("li").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let image = b"a blob for the openapi check".to_vec();
    server.upload_blob(&li, &image).await;
    let blob = Sha256Hex::of(&image);

    for (method, path) in operations(&document) {
        // Plausible values for the path parameters.
        let concrete: String = path
            .split('/')
            .map(|segment| match segment {
                "{id}" | "{ticket_id}" => ticket.id.to_string(),
                "{sha256}" | "{hash}" => blob.to_string(),
                other if other.starts_with('{') => "x".to_owned(),
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let token = if path.contains("/sync/") || method == "put" {
            &li
        } else {
            &dispatcher
        };
        let mut request = server
            .client()
            .request(http_method, server.url(&concrete))
            .bearer_auth(token);
        if ["post", "put", "patch"].contains(&method.as_str()) {
            request = request.json(&serde_json::json!({}));
        }
        let response = server.send(request).await;
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented: {response:?}"
        );
        if response.status == StatusCode::NOT_FOUND {
            let body: Value = response.json();
            assert_ne!(
                body["code"], "route_not_found",
                "{method} {path} is documented: {response:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint_a_client_uses() {
    let server = TestServer::start();
    let documented: BTreeSet<(String, String)> = operations(&document(&server).await)
        .into_iter()
        .map(|(method, path)| (method, shape(&path)))
        .collect();
    // The endpoints these black-box tests (and so a handheld or the office
    // front end) rely on.
    let used = [
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/sync/pull"),
        ("post", "/api/v1/sync/push"),
        ("put", "/api/v1/blobs/{}"),
        ("get", "/api/v1/blobs/{}"),
        ("get", "/api/v1/tickets"),
        ("post", "/api/v1/tickets"),
        ("get", "/api/v1/tickets/{}"),
        ("post", "/api/v1/tickets/{}/actions"),
        ("get", "/api/v1/devices"),
        ("get", "/api/v1/openapi.json"),
    ];
    let missing: Vec<_> = used
        .iter()
        .filter(|(method, path)| !documented.contains(&(method.to_string(), path.to_string())))
        .collect();
    assert!(
        missing.is_empty(),
        "the served OpenAPI document (docs/openapi.json) does not describe {missing:?}"
    );
}
