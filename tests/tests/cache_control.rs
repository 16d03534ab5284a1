//! Answers that carry residents' data (names, phones, addresses, signatures)
//! or a token say `Cache-Control: no-store`, so no browser, proxy or
//! handheld HTTP cache keeps a copy; the OpenAPI document and the
//! dashboard's files, which hold none, may be cached.

mod common;

use common::{Handheld, TestServer, note, paid_result};
use reqwest::StatusCode;
use reqwest::header::CACHE_CONTROL;
use sync_protocol::Cursor;

fn cache_control(response: &reqwest::header::HeaderMap) -> Option<&str> {
    response
        .get(CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carrying_residents_data_are_never_stored_by_a_cache() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let supervisor = server.login("zhuguan").await;
    let manager = server.login("kefu-jingli").await;
    let lis_tickets = server.tickets_of("li").await;
    let ticket = &lis_tickets[0];
    let mut handheld = Handheld::new("hh-li-cache");
    // A signed ticket, so that its signature image may be read.
    let signed = server
        .finish_on_site("li", &mut handheld, &lis_tickets[1], paid_result(), None)
        .await;
    let blob = &signed
        .signatures
        .values()
        .next()
        .expect("a signature")
        .body
        .blob;

    let login = server
        .post_json(
            "/api/v1/auth/login",
            None,
            &serde_json::json!({ "username": "li", "password": common::DEMO_PASSWORD }),
        )
        .await;
    let pulled = server
        .pull_raw(
            &li,
            &sync_protocol::PullRequest {
                protocol_version: sync_protocol::PROTOCOL_VERSION,
                device: common::device_report(&handheld.id),
                cursor: Cursor(0),
                limit: None,
            },
        )
        .await;
    let mutation = handheld.record(ticket, note("pump room 泵房"));
    let pushed = server
        .push_raw(&li, &common::push_request(&handheld.id, vec![mutation]))
        .await;
    let uploaded = server.upload_blob(&li, b"a photo of the pump").await;
    let mut answers = vec![
        ("login", login),
        ("pull", pulled),
        ("push", pushed),
        ("blob upload", uploaded),
    ];
    let reads = [
        (&dispatcher, "/api/v1/tickets".to_owned()),
        (&dispatcher, format!("/api/v1/tickets/{}", ticket.id)),
        (&dispatcher, format!("/api/v1/blobs/{blob}")),
        (&dispatcher, "/api/v1/dispatch-queue".to_owned()),
        (
            &dispatcher,
            format!("/api/v1/tickets/{}/suggestions", ticket.id),
        ),
        (&dispatcher, "/api/v1/due".to_owned()),
        (&supervisor, "/api/v1/supervision".to_owned()),
        (&supervisor, "/api/v1/devices".to_owned()),
        (&manager, "/api/v1/reports/daily-unclosed".to_owned()),
        (&manager, "/api/v1/reports/monthly?format=csv".to_owned()),
        (
            &manager,
            "/api/v1/reports/monthly-archive?format=xlsx".to_owned(),
        ),
    ];
    for (token, path) in reads {
        let response = server.get(&path, Some(token)).await;
        assert!(response.status.is_success(), "{path}: {response:?}");
        answers.push(("read", response));
    }
    // A refusal says no-store too: it may name a ticket.
    let refusal = server
        .get("/api/v1/tickets/tk99999999", Some(&dispatcher))
        .await;
    refusal.error(StatusCode::NOT_FOUND, "ticket_not_found");
    answers.push(("refusal", refusal));
    for (what, response) in &answers {
        assert_eq!(
            cache_control(&response.headers),
            Some("no-store"),
            "{what}: {response:?}"
        );
    }

    // The live feed: the headers come before the first event.
    let live = server
        .client()
        .get(server.url("/api/v1/live"))
        .bearer_auth(&supervisor)
        .send()
        .await
        .expect("the live feed answers");
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(cache_control(live.headers()), Some("no-store"));
    drop(live);

    // What holds nothing of the residents' may be cached.
    for path in ["/api/v1/openapi.json", "/dashboard/app.js"] {
        let response = server.get(path, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_ne!(cache_control(&response.headers), Some("no-store"), "{path}");
    }
}
