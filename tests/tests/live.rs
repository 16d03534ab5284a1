//! The supervisors' side over real HTTP: the snapshot (`GET
//! /api/v1/supervision`), the live feed (`GET /api/v1/live`, Server-Sent
//! Events with `Last-Event-ID`), the review of a flagged fact, and a
//! graceful stop with streams still open.

mod common;

use std::time::Duration;

use common::{Handheld, TestServer, note};
use reqwest::StatusCode;
use sync_protocol::{
    HistoryEvent, LiveEvent, LiveEventBody, OfficeOp, ReviewDecision, ReviewReason,
    SupervisionSnapshot, Ticket, UserId,
};

/// How long a test waits for an event that must come.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open SSE stream, read frame by frame.
struct LiveStream {
    response: reqwest::Response,
    pending: String,
}

impl LiveStream {
    async fn open(server: &TestServer, token: &str, last_event_id: Option<u64>) -> Self {
        let client = reqwest::Client::new();
        let mut request = client.get(server.url("/api/v1/live")).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("the live feed answers");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            pending: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped): its SSE id, name and
    /// data; `None` when the stream ended.
    async fn next(&mut self) -> Option<(Option<u64>, String, LiveEvent)> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let frame: String = self.pending.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (None, String::new(), String::new());
                for line in frame.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        id = Some(value.parse().unwrap());
                    } else if let Some(value) = line.strip_prefix("event: ") {
                        name = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let event: LiveEvent = serde_json::from_str(&data).unwrap();
                return Some((id, name, event));
            }
            let chunk = tokio::time::timeout(EVENT_TIMEOUT, self.response.chunk())
                .await
                .expect("an event within the timeout")
                .expect("the stream reads")?;
            self.pending.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn next_event(&mut self) -> LiveEvent {
        let (id, name, event) = self.next().await.expect("an event, not the end");
        assert_eq!(id, Some(event.id), "the SSE id is the event's id");
        assert_eq!(
            name,
            event.body.name(),
            "the SSE event name is the body's type"
        );
        event
    }
}

async fn snapshot(server: &TestServer, token: &str) -> SupervisionSnapshot {
    server.get("/api/v1/supervision", Some(token)).await.ok()
}

/// Li's device pushes a note on his first ticket.
async fn li_pushes_a_note(server: &TestServer, handheld: &mut Handheld, text: &str) {
    let li = server.login("li").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let mutation = handheld.record(&ticket, note(text));
    server.push(&li, &handheld.id, vec![mutation]).await;
}

fn device_contact_of(event: &LiveEvent) -> &sync_protocol::DeviceStatus {
    match &event.body {
        LiveEventBody::DeviceContact { device, .. } => device,
        other => panic!("expected a device contact, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_push_shows_up_as_an_event_on_an_open_stream() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let mut stream = LiveStream::open(&server, &supervisor, None).await;
    let mut handheld = Handheld::new("hh-li-live");
    li_pushes_a_note(&server, &mut handheld, "pump room, valve replaced").await;

    let event = stream.next_event().await;
    let LiveEventBody::DeviceContact { contact, device } = &event.body else {
        panic!("expected a device contact, got {event:?}");
    };
    assert_eq!(*contact, sync_protocol::ContactKind::Push);
    assert_eq!(device.device_id, handheld.id);
    assert_eq!(device.user, UserId::parse("li").unwrap());
    assert!(device.last_push_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_and_delivers_nothing_more_once_the_supervisors_account_changed() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let mut stream = LiveStream::open(&server, &supervisor, None).await;
    let mut handheld = Handheld::new("hh-li-live-demoted");
    li_pushes_a_note(&server, &mut handheld, "before").await;
    stream.next_event().await;

    let changed = server
        .change_user("zhuguan", &serde_json::json!({ "role": "dispatcher" }))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    li_pushes_a_note(&server, &mut handheld, "after").await;
    assert!(stream.next().await.is_none(), "the stream ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_last_event_id_gets_exactly_the_events_it_missed() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let mut handheld = Handheld::new("hh-li-resume");
    let mut stream = LiveStream::open(&server, &supervisor, None).await;
    li_pushes_a_note(&server, &mut handheld, "first").await;
    let seen = stream.next_event().await;
    drop(stream);

    // Three contacts while the dashboard is away.
    for text in ["second", "third", "fourth"] {
        li_pushes_a_note(&server, &mut handheld, text).await;
    }
    let mut resumed = LiveStream::open(&server, &supervisor, Some(seen.id)).await;
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(resumed.next_event().await);
    }
    let ids: Vec<u64> = missed.iter().map(|event| event.id).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    assert!(ids[0] > seen.id);
    let last_seqs: Vec<u64> = missed
        .iter()
        .map(|event| device_contact_of(event).last_seq.0)
        .collect();
    assert_eq!(last_seqs, [2, 3, 4], "every missed push, in order, no gap");

    // And then it is live again: the next push comes right after them.
    li_pushes_a_note(&server, &mut handheld, "fifth").await;
    let next = resumed.next_event().await;
    assert!(next.id > ids[2]);
    assert_eq!(device_contact_of(&next).last_seq.0, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_event_id_older_than_the_buffer_gets_a_reset_first() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let mut stream = LiveStream::open(&server, &supervisor, Some(1)).await;
    let (id, name, event) = stream.next().await.expect("a reset");
    assert_eq!(name, "reset");
    assert_eq!(
        id, None,
        "a reset leaves the client's Last-Event-ID as it was"
    );
    assert_eq!(event.body, LiveEventBody::Reset {});

    // After the reset the stream carries on live.
    let mut handheld = Handheld::new("hh-li-reset");
    li_pushes_a_note(&server, &mut handheld, "after the reset").await;
    let next = stream.next_event().await;
    assert_eq!(device_contact_of(&next).device_id, handheld.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn technicians_are_refused_the_snapshot_the_live_feed_and_reviews() {
    let server = TestServer::start();
    let li = server.login("li").await;
    server
        .get("/api/v1/supervision", Some(&li))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    server
        .get("/api/v1/live", Some(&li))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let ticket = server.tickets_of("li").await.remove(0);
    let body = serde_json::json!({"mutation_id": "hh-li-1#1", "decision": "accept"});
    server
        .post_json(
            &format!("/api/v1/tickets/{}/reviews", ticket.id),
            Some(&li),
            &body,
        )
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    server
        .get("/api/v1/live", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
    let supervisor = server.login("zhuguan").await;
    let response = server
        .send(
            server
                .client()
                .get(server.url("/api/v1/live"))
                .bearer_auth(&supervisor)
                .header("Last-Event-ID", "yesterday"),
        )
        .await;
    response.error(StatusCode::BAD_REQUEST, "invalid_last_event_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_shows_each_device_with_its_reported_outbox_and_held_tickets() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let mut handheld = Handheld::new("hh-li-crew");
    li_pushes_a_note(&server, &mut handheld, "checked the meter").await;

    let snapshot = snapshot(&server, &supervisor).await;
    let row = snapshot
        .crew
        .iter()
        .find(|row| row.device_id == handheld.id)
        .expect("li's device is in the crew table");
    assert!(row.online, "it synced a moment ago");
    assert_eq!(row.outbox_depth, 0);
    assert_eq!(row.app_version, "blackbox-tests/1");
    let held = server.tickets_of("li").await.len() as u32;
    assert_eq!(row.tickets_held, held);
    assert!(row.last_push_at.is_some());
    // The demo tickets were dispatched moments ago: their R-P1 arrivals are due soon.
    assert!(!snapshot.at_risk.is_empty());
    assert!(
        snapshot
            .at_risk
            .iter()
            .all(|item| !item.at_risk_while_offline || item.technician.as_ref() != Some(&row.user))
    );
}

/// The dispatcher moves Li's ticket to Zhang; Li's device, offline, still
/// records a note on it: kept, flagged late.
async fn a_late_note(server: &TestServer) -> (Ticket, Handheld) {
    let dispatcher = server.login("diaodu").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let mut handheld = Handheld::new("hh-li-late");
    let mutation = handheld.record(&ticket, note("arrived, the owner was out"));
    server
        .act(
            &dispatcher,
            &ticket.id,
            OfficeOp::Reassign {
                technician: UserId::parse("zhang").unwrap(),
                reason: "Li is stuck in the basement".to_owned(),
            },
        )
        .await;
    let li = server.login("li").await;
    server.push(&li, &handheld.id, vec![mutation]).await;
    (ticket, handheld)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_annotates_a_late_fact_once_and_it_leaves_the_review_queue() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let (ticket, handheld) = a_late_note(&server).await;

    let before = snapshot(&server, &supervisor).await;
    let item = before
        .review_queue
        .iter()
        .find(|item| item.ticket_id == ticket.id)
        .expect("the late note awaits review")
        .clone();
    assert_eq!(item.reasons, [ReviewReason::Late]);
    assert_eq!(item.device, handheld.id);
    let row = before
        .crew
        .iter()
        .find(|row| row.device_id == handheld.id)
        .unwrap();
    assert_eq!(row.awaiting_review, 1);

    let mut stream = LiveStream::open(&server, &supervisor, Some(before.last_event_id)).await;
    let path = format!("/api/v1/tickets/{}/reviews", ticket.id);
    let body = serde_json::json!({
        "mutation_id": item.mutation_id,
        "decision": "annotate",
        "note": "He was there; the reassignment crossed his visit.",
    });
    let reviewed: Ticket = server.post_json(&path, Some(&supervisor), &body).await.ok();
    let last = reviewed.history.last().unwrap();
    assert_eq!(
        last.event,
        HistoryEvent::FactReviewed {
            mutation: item.mutation_id.clone(),
            decision: ReviewDecision::Annotate,
            note: "He was there; the reassignment crossed his visit.".to_owned(),
        }
    );
    let fact_before = server.ticket(&supervisor, &ticket.id).await.notes[&item.mutation_id].clone();
    assert_eq!(
        reviewed.notes[&item.mutation_id], fact_before,
        "the fact itself is unchanged"
    );

    // A retry changes nothing; another decision is refused.
    let again: Ticket = server.post_json(&path, Some(&supervisor), &body).await.ok();
    assert_eq!(again.version, reviewed.version);
    let other = serde_json::json!({"mutation_id": item.mutation_id, "decision": "accept"});
    server
        .post_json(&path, Some(&supervisor), &other)
        .await
        .error(StatusCode::CONFLICT, "already_reviewed");

    let after = snapshot(&server, &supervisor).await;
    assert!(
        after
            .review_queue
            .iter()
            .all(|queued| queued.mutation_id != item.mutation_id)
    );

    // The stream from the snapshot's id saw the late push's aftermath and the review.
    loop {
        let event = stream.next_event().await;
        if let LiveEventBody::FactReviewed {
            mutation_id,
            decision,
            ..
        } = &event.body
        {
            assert_eq!(*mutation_id, item.mutation_id);
            assert_eq!(*decision, ReviewDecision::Annotate);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_needs_a_flagged_fact_and_a_note_to_annotate() {
    let server = TestServer::start();
    let supervisor = server.login("zhuguan").await;
    let (ticket, _) = a_late_note(&server).await;
    let item = snapshot(&server, &supervisor).await.review_queue.remove(0);
    let path = format!("/api/v1/tickets/{}/reviews", ticket.id);
    let without_note = serde_json::json!({"mutation_id": item.mutation_id, "decision": "annotate"});
    server
        .post_json(&path, Some(&supervisor), &without_note)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "note_required");
    let unknown = serde_json::json!({"mutation_id": "hh-nobody#9", "decision": "accept"});
    server
        .post_json(&path, Some(&supervisor), &unknown)
        .await
        .error(StatusCode::NOT_FOUND, "fact_not_found");

    // A fact recorded in time has nothing to review.
    let li = server.login("li").await;
    let held = server.tickets_of("li").await.remove(0);
    let mut handheld = Handheld::new("hh-li-in-time");
    let in_time = handheld.record(&held, note("all fine"));
    server.push(&li, &handheld.id, vec![in_time]).await;
    let held = server.ticket(&supervisor, &held.id).await;
    let mutation_id = held.notes.keys().next().unwrap().clone();
    let body = serde_json::json!({"mutation_id": mutation_id, "decision": "accept"});
    server
        .post_json(
            &format!("/api/v1/tickets/{}/reviews", held.id),
            Some(&supervisor),
            &body,
        )
        .await
        .error(StatusCode::CONFLICT, "fact_not_flagged");
}

#[test]
fn a_graceful_stop_ends_open_live_streams_promptly() {
    let mut server = TestServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let streams = runtime.block_on(async {
        let supervisor = server.login("zhuguan").await;
        let mut streams = Vec::new();
        for _ in 0..3 {
            streams.push(LiveStream::open(&server, &supervisor, None).await);
        }
        streams
    });
    let started = std::time::Instant::now();
    assert!(server.stop_gracefully(), "SIGTERM stops the server cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "open streams do not hold the stop up: {:?}",
        started.elapsed()
    );
    runtime.block_on(async {
        for mut stream in streams {
            assert!(stream.next().await.is_none(), "the stream ended");
        }
    });
}
