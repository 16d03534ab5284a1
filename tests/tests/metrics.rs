//! `GET /metrics` over real HTTP: the Prometheus text, without a token, and
//! its counters moving with the pushes and pulls they count.

mod common;

use common::{Handheld, TestServer, note};
use reqwest::StatusCode;
use sync_protocol::{Cursor, OfficeOp, UserId};

/// The value of the sample `name` (with its labels, exactly as written).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse()
        .unwrap()
}

async fn metrics(server: &TestServer) -> String {
    let response = server.get("/metrics", None).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let content_type = response.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    String::from_utf8(response.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_and_mutation_counters_move_after_a_push() {
    let server = TestServer::start();
    let before = metrics(&server).await;
    let pushes = r#"estate_sync_sync_requests_total{kind="push",status="200"}"#;
    let pulls = r#"estate_sync_sync_requests_total{kind="pull",status="200"}"#;
    let applied = r#"estate_sync_mutations_total{outcome="applied"}"#;
    let late = r#"estate_sync_mutations_total{outcome="late"}"#;
    let duplicate = r#"estate_sync_mutations_total{outcome="duplicate"}"#;
    let timed = "estate_sync_push_duration_seconds_count";
    for name in [pushes, pulls, applied, late, duplicate, timed] {
        assert_eq!(sample(&before, name), 0.0, "{name}");
    }

    let li = server.login("li").await;
    let tickets = server.tickets_of("li").await;
    let mut handheld = Handheld::new("hh-li-metrics");
    let first = handheld.record(&tickets[0], note("first"));
    server.push(&li, &handheld.id, vec![first.clone()]).await;
    // A replay of the same push: a duplicate.
    server.push(&li, &handheld.id, vec![first]).await;
    server.pull(&li, &handheld.id, Cursor(0)).await;
    // A note on a ticket moved to Zhang meanwhile: kept, late.
    let dispatcher = server.login("diaodu").await;
    let moved = handheld.record(&tickets[1], note("late"));
    let reassign = OfficeOp::Reassign {
        technician: UserId::parse("zhang").unwrap(),
        reason: "rebalanced".to_owned(),
    };
    server.act(&dispatcher, &tickets[1].id, reassign).await;
    server.push(&li, &handheld.id, vec![moved]).await;

    let after = metrics(&server).await;
    assert_eq!(sample(&after, pushes), 3.0);
    assert_eq!(sample(&after, pulls), 1.0);
    assert_eq!(sample(&after, applied), 1.0);
    assert_eq!(sample(&after, duplicate), 1.0);
    assert_eq!(sample(&after, late), 1.0);
    assert_eq!(sample(&after, timed), 3.0);
    assert_eq!(
        sample(
            &after,
            r#"estate_sync_push_duration_seconds_bucket{le="+Inf"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(&after, r#"estate_sync_devices_stale{minutes="30"}"#),
        0.0
    );
    assert!(sample(&after, "estate_sync_live_events_total") >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_is_counted_under_its_status() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let body = serde_json::json!({"protocol_version": 1});
    server
        .post_json("/api/v1/sync/push", Some(&li), &body)
        .await;
    let text = metrics(&server).await;
    assert_eq!(
        sample(
            &text,
            r#"estate_sync_sync_requests_total{kind="push",status="400"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_dashboards_are_counted() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let client = reqwest::Client::new();
    let stream = client
        .get(server.url("/api/v1/live"))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        sample(&metrics(&server).await, "estate_sync_live_subscribers"),
        1.0
    );
}
