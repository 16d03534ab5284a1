//! Everything the server refuses: each refusal has its status, its stable
//! `code`, the one error body, and changes nothing. The harness checks the
//! `x-sync-protocol: 1` header on every response and the error body's shape
//! (`code`, `message`, optional `details`, nothing else) on every error.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    Handheld, JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET, TestServer, device_id, device_report, intake,
    note, push_request,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use sync_protocol::{
    Cursor, DeviceMutation, DeviceOp, DeviceSeq, LoginRequest, MAX_BLOB_BYTES,
    MAX_MUTATIONS_PER_PUSH, MAX_PAGE_SIZE, OfficeOp, Outcome, PROTOCOL_HEADER, PROTOCOL_VERSION,
    PullRequest, RejectCode, Sha256Hex, Ticket, UserId,
};

const TICKETS: &str = "/api/v1/tickets";

/// The claims the server issues (server/src/auth.rs), to forge tokens with.
#[derive(Clone, Serialize)]
struct Claims {
    sub: String,
    generation: u64,
    iss: String,
    aud: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl Claims {
    /// What the server would issue to li right now.
    fn li() -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub: "li".to_owned(),
            generation: 0,
            iss: JWT_ISSUER.to_owned(),
            aud: JWT_AUDIENCE.to_owned(),
            iat: now,
            nbf: now,
            exp: now + 3600,
        }
    }

    fn signed(&self, algorithm: Algorithm, secret: &str) -> String {
        let key = EncodingKey::from_secret(secret.as_bytes());
        jsonwebtoken::encode(&Header::new(algorithm), self, &key).unwrap()
    }

    /// An "unsecured JWT": header `{"alg":"none"}` and an empty signature.
    fn unsigned(&self) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap());
        format!("{header}.{claims}.")
    }
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

async fn first_ticket_of(server: &TestServer, technician: &str) -> Ticket {
    server.tickets_of(technician).await.remove(0)
}

/// A push with one note on `ticket` from a fresh device, as raw JSON to tamper with.
fn push_json(device: &str, ticket: &Ticket) -> Value {
    let mutation = Handheld::new(device).record(ticket, note("a note"));
    serde_json::to_value(push_request(&device_id(device), vec![mutation])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_can_neither_record_facts_on_nor_read_another_technicians_ticket() {
    let server = TestServer::start();
    let zhang = server.login("zhang").await;
    let lis_ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    let mut handheld = Handheld::new("hh-zhang-r1");
    let batch = vec![
        handheld.record(&lis_ticket, DeviceOp::RecordArrival { position: None }),
        handheld.record(&lis_ticket, note("not my job")),
    ];
    let pushed = server.push(&zhang, &handheld.id, batch).await;
    for outcome in &pushed.outcomes {
        let Outcome::Rejected(rejection) = &outcome.outcome else {
            panic!("expected not_your_ticket, got {outcome:?}");
        };
        assert_eq!(rejection.code, RejectCode::NotYourTicket);
        assert!(!rejection.reason.is_empty());
    }
    let shown = server
        .get(&format!("{TICKETS}/{}", lis_ticket.id), Some(&zhang))
        .await;
    shown.error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_may_not_use_the_office_endpoints() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let own_ticket = first_ticket_of(&server, "li").await;
    let image = b"an image li uploads".to_vec();
    assert_eq!(server.upload_blob(&li, &image).await.status, StatusCode::OK);
    let before = server.estate_snapshot().await;

    let created = server.post_json(TICKETS, Some(&li), &intake()).await;
    created.error(StatusCode::FORBIDDEN, "forbidden");
    let actions = [
        OfficeOp::AddNote {
            text: "written by a technician".to_owned(),
        },
        OfficeOp::Cancel {
            reason: "I do not feel like it".to_owned(),
        },
        OfficeOp::Reassign {
            technician: user("zhang"),
            reason: "swap".to_owned(),
        },
        OfficeOp::SetAppointment {
            at: chrono::Utc::now() + chrono::Duration::hours(1),
            note: String::new(),
        },
    ];
    for op in actions {
        let acted = server.act_raw(&li, &own_ticket.id, op).await;
        acted.error(StatusCode::FORBIDDEN, "forbidden");
    }
    let devices = server.get("/api/v1/devices", Some(&li)).await;
    devices.error(StatusCode::FORBIDDEN, "forbidden");
    // An image no ticket refers to is nobody's to read.
    let blob = format!("/api/v1/blobs/{}", Sha256Hex::of(&image));
    server
        .get(&blob, Some(&li))
        .await
        .error(StatusCode::NOT_FOUND, "blob_not_found");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_roles_may_not_sync_a_handheld() {
    let server = TestServer::start();
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;
    for office_user in ["diaodu", "kefu", "zhuguan"] {
        let token = server.login(office_user).await;
        let device = format!("hh-{office_user}");
        let push = push_json(&device, &ticket);
        let pushed = server
            .post_json("/api/v1/sync/push", Some(&token), &push)
            .await;
        pushed.error(StatusCode::FORBIDDEN, "forbidden");
        let pull = PullRequest {
            protocol_version: PROTOCOL_VERSION,
            device: device_report(&device_id(&device)),
            cursor: Cursor(0),
            limit: None,
        };
        let pulled = server.pull_raw(&token, &pull).await;
        pulled.error(StatusCode::FORBIDDEN, "forbidden");
        let uploaded = server.upload_blob(&token, b"office upload").await;
        uploaded.error(StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_bearer_token_is_refused_with_missing_token() {
    let server = TestServer::start();
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    server
        .get(TICKETS, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
    server
        .get(&format!("{TICKETS}/{}", ticket.id), None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
    server
        .post_json("/api/v1/sync/push", None, &push_json("hh-anon", &ticket))
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
    server
        .post_json(TICKETS, None, &intake())
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
    let basic = server.client().get(server.url(TICKETS)).header(
        reqwest::header::AUTHORIZATION,
        "Basic bGk6ZGVtby1wYXNzd29yZA==",
    );
    server
        .send(basic)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_foreign_and_unsigned_tokens_are_refused_with_invalid_token() {
    let server = TestServer::start();
    let ticket = first_ticket_of(&server, "li").await;

    // The control: a token made like the server's own is accepted, so the
    // refusals below are for the one thing each changes.
    let genuine = Claims::li().signed(Algorithm::HS256, JWT_SECRET);
    let listed = server.get(TICKETS, Some(&genuine)).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");

    let before = server.estate_snapshot().await;
    let hour = 3600;
    let expired = Claims {
        iat: Claims::li().iat - 2 * hour,
        nbf: Claims::li().nbf - 2 * hour,
        exp: Claims::li().exp - 2 * hour,
        ..Claims::li()
    };
    let other_audience = Claims {
        aud: "someone-elses-api".to_owned(),
        ..Claims::li()
    };
    let other_issuer = Claims {
        iss: "evil-issuer".to_owned(),
        ..Claims::li()
    };
    let not_yet_valid = Claims {
        nbf: Claims::li().nbf + hour,
        ..Claims::li()
    };
    let refused_tokens = [
        ("expired", expired.signed(Algorithm::HS256, JWT_SECRET)),
        (
            "wrong secret",
            Claims::li().signed(Algorithm::HS256, "another-secret-of-at-least-32-bytes!!"),
        ),
        (
            "wrong audience",
            other_audience.signed(Algorithm::HS256, JWT_SECRET),
        ),
        (
            "wrong issuer",
            other_issuer.signed(Algorithm::HS256, JWT_SECRET),
        ),
        (
            "not yet valid",
            not_yet_valid.signed(Algorithm::HS256, JWT_SECRET),
        ),
        ("alg none", Claims::li().unsigned()),
        (
            "another algorithm",
            Claims::li().signed(Algorithm::HS512, JWT_SECRET),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in &refused_tokens {
        let listed = server.get(TICKETS, Some(token)).await;
        let error = listed.error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(!error.message.is_empty(), "{what}");
        let pushed = server
            .post_json(
                "/api/v1/sync/push",
                Some(token),
                &push_json("hh-li-forged", &ticket),
            )
            .await;
        pushed.error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    // Signed right, but for a generation of li's record that is not the
    // current one (his role, estate or password changed since).
    let stale = Claims {
        generation: 1,
        ..Claims::li()
    };
    let listed = server
        .get(TICKETS, Some(&stale.signed(Algorithm::HS256, JWT_SECRET)))
        .await;
    listed.error(StatusCode::UNAUTHORIZED, "token_revoked");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_over_two_mebibytes_is_refused_with_payload_too_large() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    let huge_note = "漏".repeat(800 * 1024); // 2.4 MB of UTF-8
    let mutation = Handheld::new("hh-li-huge").record(&ticket, note(&huge_note));
    let request = push_request(&device_id("hh-li-huge"), vec![mutation]);
    assert!(serde_json::to_vec(&request).unwrap().len() > 2 * 1024 * 1024);
    let pushed = server.push_raw(&li, &request).await;
    pushed.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_over_one_mebibyte_is_refused_with_payload_too_large() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;

    let largest = vec![7u8; MAX_BLOB_BYTES];
    let accepted = server.upload_blob(&li, &largest).await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");

    let too_large = vec![7u8; MAX_BLOB_BYTES + 1];
    let refused = server.upload_blob(&li, &too_large).await;
    refused.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let stored = server
        .get(
            &format!("/api/v1/blobs/{}", Sha256Hex::of(&too_large)),
            Some(&dispatcher),
        )
        .await;
    stored.error(StatusCode::NOT_FOUND, "blob_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_whose_bytes_do_not_match_the_hash_in_its_path_is_refused() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let claimed = Sha256Hex::of(b"what the device meant to send");
    let sent = b"what actually arrived".to_vec();

    let refused = server
        .upload_blob_as(&li, claimed.as_str(), sent.clone())
        .await;
    let error = refused.error(StatusCode::BAD_REQUEST, "blob_hash_mismatch");
    assert_eq!(
        error.details,
        Some(json!({ "expected": claimed, "actual": Sha256Hex::of(&sent) }))
    );
    for hash in [&claimed, &Sha256Hex::of(&sent)] {
        server
            .get(&format!("/api/v1/blobs/{hash}"), Some(&dispatcher))
            .await
            .error(StatusCode::NOT_FOUND, "blob_not_found");
    }
    let uppercase = claimed.as_str().to_uppercase();
    server
        .upload_blob_as(&li, &uppercase, sent)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_skips_sequence_numbers_is_refused_with_sequence_gap() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = first_ticket_of(&server, "li").await;
    let mut handheld = Handheld::new("hh-li-gap");
    let before = server.estate_snapshot().await;

    // A fresh device must start at 1.
    let second = DeviceMutation {
        seq: DeviceSeq(2),
        ..handheld.record(&ticket, note("seq 2 first"))
    };
    let refused = server
        .push_raw(&li, &push_request(&handheld.id, vec![second]))
        .await;
    let error = refused.error(StatusCode::CONFLICT, "sequence_gap");
    assert_eq!(error.details, Some(json!({ "expected_seq": 1 })));
    assert_eq!(server.estate_snapshot().await, before);

    // After 1 and 2, 4 is a gap: the server names 3.
    let mut handheld = Handheld::new("hh-li-gap");
    let first_two = vec![
        handheld.record(&ticket, note("one")),
        handheld.record(&ticket, note("two")),
    ];
    server.push(&li, &handheld.id, first_two).await;
    let before = server.estate_snapshot().await;
    handheld.record(&ticket, note("three, lost on the device"));
    let fourth = handheld.record(&ticket, note("four"));
    let refused = server
        .push_raw(&li, &push_request(&handheld.id, vec![fourth]))
        .await;
    let error = refused.error(StatusCode::CONFLICT, "sequence_gap");
    assert_eq!(error.details, Some(json!({ "expected_seq": 3 })));
    assert_eq!(server.estate_snapshot().await, before);
    let pull = server.pull(&li, &handheld.id, Cursor(0)).await;
    assert_eq!(pull.last_seq, DeviceSeq(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_in_a_push_a_mutation_or_an_intake_are_refused_with_invalid_body() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let agent = server.login("kefu").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    let mut in_body = push_json("hh-li-unknown", &ticket);
    in_body["priority"] = json!("urgent");
    let mut in_mutation = push_json("hh-li-unknown", &ticket);
    in_mutation["mutations"][0]["colour"] = json!("red");
    let mut in_op = push_json("hh-li-unknown", &ticket);
    in_op["mutations"][0]["op"]["mood"] = json!("cheerful");
    let mut in_device = push_json("hh-li-unknown", &ticket);
    in_device["device"]["battery"] = json!(12);
    for (what, body) in [
        ("push body", in_body),
        ("mutation", in_mutation),
        ("operation", in_op),
        ("device report", in_device),
    ] {
        let pushed = server
            .post_json("/api/v1/sync/push", Some(&li), &body)
            .await;
        let error = pushed.error(StatusCode::BAD_REQUEST, "invalid_body");
        assert!(!error.message.is_empty(), "{what}");
    }

    let mut intake_json = serde_json::to_value(intake()).unwrap();
    intake_json["priority"] = json!("high");
    server
        .post_json(TICKETS, Some(&agent), &intake_json)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    let mut action = json!({ "op": { "type": "add_note", "text": "hi", "urgent": true } });
    server
        .post_json(
            &format!("{TICKETS}/{}/actions", ticket.id),
            Some(&agent),
            &action,
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    action = json!({ "op": { "type": "add_note", "text": "hi" }, "force": true });
    server
        .post_json(
            &format!("{TICKETS}/{}/actions", ticket.id),
            Some(&agent),
            &action,
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    server
        .post_raw_json(
            "/api/v1/sync/push",
            Some(&li),
            b"{\"protocol_version\": 1,".to_vec(),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    assert_eq!(server.estate_snapshot().await, before);
    let pull = server
        .pull(&li, &device_id("hh-li-unknown"), Cursor(0))
        .await;
    assert_eq!(pull.last_seq, DeviceSeq(0), "no refused push counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_where_the_document_allows_none_is_refused_with_invalid_body() {
    // docs/openapi.json types these members as integers, never null; an
    // optional member is left out. A null is a client mistake, not "absent".
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    let mut pull = serde_json::to_value(PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: device_report(&device_id("hh-li-null")),
        cursor: Cursor(0),
        limit: None,
    })
    .unwrap();
    pull["limit"] = Value::Null;
    let error = server
        .post_json("/api/v1/sync/pull", Some(&li), &pull)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    assert!(error.message.contains("limit"), "{error:?}");

    let mut push = push_json("hh-li-null", &ticket);
    push["device"]["oldest_pending_age_ms"] = Value::Null;
    let error = server
        .post_json("/api/v1/sync/push", Some(&li), &push)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    assert!(
        error.message.contains("device.oldest_pending_age_ms"),
        "{error:?}"
    );

    let action = json!({ "expected_version": null, "op": { "type": "add_note", "text": "hi" } });
    let error = server
        .post_json(
            &format!("{TICKETS}/{}/actions", ticket.id),
            Some(&dispatcher),
            &action,
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    assert!(error.message.contains("expected_version"), "{error:?}");

    // The word inside a text is no null: the same note with "null" in it applies.
    let mut push = push_json("hh-li-null", &ticket);
    push["mutations"][0]["op"]["text"] = json!("null reading on the meter");
    let pushed = server
        .post_json("/api/v1/sync/push", Some(&li), &push)
        .await;
    assert_eq!(pushed.status, StatusCode::OK, "{pushed:?}");

    let after = server.estate_snapshot().await;
    let changed: Vec<_> = after
        .iter()
        .filter(|ticket| !before.contains(ticket))
        .map(|ticket| &ticket.id)
        .collect();
    assert_eq!(
        changed,
        [&ticket.id],
        "only the last, valid push changed anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_body_of_another_protocol_version_is_refused_with_unsupported_protocol() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    for version in [0, PROTOCOL_VERSION + 1] {
        let mut push = push_json("hh-li-proto", &ticket);
        push["protocol_version"] = json!(version);
        let pushed = server
            .post_json("/api/v1/sync/push", Some(&li), &push)
            .await;
        let error = pushed.error(StatusCode::BAD_REQUEST, "unsupported_protocol");
        assert_eq!(
            error.details,
            Some(json!({ "supported": [PROTOCOL_VERSION] }))
        );
        let pull = PullRequest {
            protocol_version: version,
            device: device_report(&device_id("hh-li-proto")),
            cursor: Cursor(0),
            limit: None,
        };
        server
            .pull_raw(&li, &pull)
            .await
            .error(StatusCode::BAD_REQUEST, "unsupported_protocol");
    }
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_protocol_header_states_another_version_is_refused() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    let stated = |request: reqwest::RequestBuilder, version: &str| {
        request.bearer_auth(&li).header(PROTOCOL_HEADER, version)
    };
    let current = PROTOCOL_VERSION.to_string();
    let listed = server
        .send(stated(server.client().get(server.url(TICKETS)), &current))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "the current version is fine");

    for version in ["2", "0", "one"] {
        let listed = server
            .send(stated(server.client().get(server.url(TICKETS)), version))
            .await;
        let error = listed.error(StatusCode::BAD_REQUEST, "unsupported_protocol");
        assert_eq!(
            error.details,
            Some(json!({ "supported": [PROTOCOL_VERSION] }))
        );
        let push = stated(
            server.client().post(server.url("/api/v1/sync/push")),
            version,
        )
        .json(&push_json("hh-li-header", &ticket));
        server
            .send(push)
            .await
            .error(StatusCode::BAD_REQUEST, "unsupported_protocol");
    }
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_i2_an_incomplete_report_is_refused_with_every_problem_and_uses_no_serial_number() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let before = server.estate_snapshot().await;

    let mut incomplete = intake();
    incomplete.reporter.name = "  ".to_owned();
    incomplete.reporter.phone = None; // a phone report needs the caller's number
    incomplete.location = String::new();
    incomplete.description = "x".to_owned();
    incomplete.received_at = chrono::Utc::now() + chrono::Duration::hours(2);
    let refused = server.post_json(TICKETS, Some(&agent), &incomplete).await;
    let error = refused.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(
        problem_fields(&error),
        [
            "reporter.name",
            "reporter.phone",
            "location",
            "description",
            "received_at"
        ]
    );
    assert_eq!(server.estate_snapshot().await, before);
    the_next_report_follows_on(&server, &agent, &before).await;
}

/// The fields an `invalid_record` refusal names, in order; each says what is wrong.
fn problem_fields(error: &sync_protocol::ErrorBody) -> Vec<String> {
    let details = error.details.as_ref().expect("the problems are listed");
    details["problems"]
        .as_array()
        .expect("a list of problems")
        .iter()
        .map(|problem| {
            assert!(
                problem["problem"].as_str().is_some_and(|p| !p.is_empty()),
                "each problem says what is wrong: {problem}"
            );
            problem["field"]
                .as_str()
                .expect("each problem names its field")
                .to_owned()
        })
        .collect()
}

/// R-A1: refusals used up no ticket id and no serial number: the next
/// report recorded after `before` follows on from it.
async fn the_next_report_follows_on(server: &TestServer, agent: &str, before: &[Ticket]) {
    let created = server.create_ticket(agent, &intake()).await;
    let number = |id: &sync_protocol::TicketId| -> u64 {
        id.as_str().trim_start_matches("tk").parse().unwrap()
    };
    let highest = before
        .iter()
        .map(|ticket| number(&ticket.id))
        .max()
        .unwrap();
    assert_eq!(number(&created.id), highest + 1);
    let serial = |ticket: &Ticket| ticket.serial_number.as_ref().map(|n| n.sequence());
    let last_serial = before.iter().filter_map(serial).max().unwrap();
    assert_eq!(serial(&created), Some(last_serial + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_i2_a_report_missing_fields_is_refused_with_a_problem_per_field_and_uses_no_number() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let before = server.estate_snapshot().await;

    // Missing, not blank: the same answer, every problem at once.
    let mut incomplete = serde_json::to_value(intake()).unwrap();
    let body = incomplete.as_object_mut().unwrap();
    for field in ["area", "location", "received_at"] {
        body.remove(field);
    }
    body["reporter"].as_object_mut().unwrap().remove("name");
    body["description"] = json!("  ");
    let refused = server.post_json(TICKETS, Some(&agent), &incomplete).await;
    let error = refused.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(
        problem_fields(&error),
        [
            "area",
            "reporter.name",
            "location",
            "description",
            "received_at"
        ]
    );
    let empty = server.post_json(TICKETS, Some(&agent), &json!({})).await;
    let error = empty.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(problem_fields(&error).len(), 9, "{error:?}");

    // A wrong type, null included, is a malformed body, as before.
    for (field, value) in [("received_at", json!(5)), ("location", Value::Null)] {
        let mut malformed = serde_json::to_value(intake()).unwrap();
        malformed[field] = value;
        server
            .post_json(TICKETS, Some(&agent), &malformed)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_body");
    }
    assert_eq!(server.estate_snapshot().await, before);
    the_next_report_follows_on(&server, &agent, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handheld_registered_to_one_technician_is_refused_to_another() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let zhang = server.login("zhang").await;
    let zhangs_ticket = first_ticket_of(&server, "zhang").await;
    let shared = device_id("hh-shared");
    server.pull(&li, &shared, Cursor(0)).await;
    let before = server.estate_snapshot().await;

    let pull = PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: device_report(&shared),
        cursor: Cursor(0),
        limit: None,
    };
    server
        .pull_raw(&zhang, &pull)
        .await
        .error(StatusCode::CONFLICT, "device_of_another_user");
    let mutation = Handheld::new("hh-shared")
        .record(&zhangs_ticket, DeviceOp::RecordArrival { position: None });
    server
        .push_raw(&zhang, &push_request(&shared, vec![mutation]))
        .await
        .error(StatusCode::CONFLICT, "device_of_another_user");
    assert_eq!(server.estate_snapshot().await, before);
    // li still syncs with it.
    assert_eq!(
        server.pull(&li, &shared, Cursor(0)).await.last_seq,
        DeviceSeq(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_more_than_500_mutations_is_refused_with_too_many_mutations() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;
    let mut handheld = Handheld::new("hh-li-many");
    let batch: Vec<DeviceMutation> = (0..=MAX_MUTATIONS_PER_PUSH)
        .map(|n| handheld.record(&ticket, note(&format!("note {n}"))))
        .collect();
    assert_eq!(batch.len(), 501);
    let refused = server
        .push_raw(&li, &push_request(&handheld.id, batch))
        .await;
    let error = refused.error(StatusCode::BAD_REQUEST, "too_many_mutations");
    assert_eq!(
        error.details,
        Some(json!({ "limit": MAX_MUTATIONS_PER_PUSH }))
    );
    assert_eq!(server.estate_snapshot().await, before);
    let pull = server.pull(&li, &handheld.id, Cursor(0)).await;
    assert_eq!(pull.last_seq, DeviceSeq(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_page_of_zero_or_more_than_500_changes_is_refused_with_invalid_page_size() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let device = device_id("hh-li-page");
    for limit in [0, MAX_PAGE_SIZE + 1] {
        let pull = PullRequest {
            protocol_version: PROTOCOL_VERSION,
            device: device_report(&device),
            cursor: Cursor(0),
            limit: Some(limit),
        };
        server
            .pull_raw(&li, &pull)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_page_size");
    }
    for limit in [1, MAX_PAGE_SIZE] {
        let page = server.pull_page(&li, &device, Cursor(0), Some(limit)).await;
        assert!(page.changes.len() <= limit as usize);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_an_unknown_user_is_refused_with_invalid_credentials() {
    let server = TestServer::start();
    let attempts = [
        ("li", "wrong-password"),
        ("li", ""),
        ("nobody", "demo-password"),
        ("not a valid id!", "demo-password"),
    ];
    let mut messages = Vec::new();
    for (username, password) in attempts {
        let request = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_id: None,
        };
        let refused = server.post_json("/api/v1/auth/login", None, &request).await;
        let error = refused.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        messages.push(error.message);
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "no hint which users exist: {messages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_is_refused_with_route_not_found_and_a_wrong_method_with_405() {
    let server = TestServer::start();
    let li = server.login("li").await;
    for path in [
        "/api/v1/nothing-here",
        "/api/v2/tickets",
        "/",
        "/api/v1/sync",
    ] {
        server
            .get(path, Some(&li))
            .await
            .error(StatusCode::NOT_FOUND, "route_not_found");
        server
            .get(path, None)
            .await
            .error(StatusCode::NOT_FOUND, "route_not_found");
    }
    let deleted = server
        .send(server.client().delete(server.url(TICKETS)).bearer_auth(&li))
        .await;
    deleted.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let pushed_with_get = server.get("/api/v1/sync/push", Some(&li)).await;
    pushed_with_get.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_is_answered_503_timeout_with_the_protocol_header() {
    // A 1 ms budget: password hashing alone takes longer.
    let options = common::Options {
        env: vec![("ESTATE_SYNC_REQUEST_TIMEOUT_MS", "1".to_owned())],
        ..common::Options::default()
    };
    let server = TestServer::start_with(tempfile::tempdir().unwrap(), options);
    let request = LoginRequest {
        username: "li".to_owned(),
        password: common::DEMO_PASSWORD.to_owned(),
        device_id: None,
    };
    // `send` insists on the x-sync-protocol header, as for every response.
    let answered = server.post_json("/api/v1/auth/login", None, &request).await;
    answered.error(StatusCode::SERVICE_UNAVAILABLE, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_from_a_cursor_the_server_never_handed_out_is_refused_with_cursor_ahead() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let device = device_id("hh-li-ahead");
    let first = server.pull(&li, &device, Cursor(0)).await;
    let pull = PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: device_report(&device),
        cursor: Cursor(first.next_cursor.0 + 1_000),
        limit: None,
    };
    let refused = server.pull_raw(&li, &pull).await;
    let error = refused.error(StatusCode::CONFLICT, "cursor_ahead");
    assert_eq!(
        error.details,
        Some(json!({ "server_cursor": first.next_cursor }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_action_on_a_stale_version_or_in_another_estate_is_refused() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;

    let stale = sync_protocol::OfficeActionRequest {
        expected_version: Some(sync_protocol::Version(ticket.version.0 - 1)),
        op: OfficeOp::AddNote {
            text: "written against an old copy".to_owned(),
        },
    };
    let refused = server
        .post_json(
            &format!("{TICKETS}/{}/actions", ticket.id),
            Some(&agent),
            &stale,
        )
        .await;
    let error = refused.error(StatusCode::CONFLICT, "version_conflict");
    assert_eq!(
        error.details,
        Some(json!({ "current_version": ticket.version }))
    );

    let mut elsewhere = intake();
    elsewhere.estate = sync_protocol::EstateId::parse("E99").unwrap();
    server
        .post_json(TICKETS, Some(&agent), &elsewhere)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    server
        .get(&format!("{TICKETS}/tk99999999"), Some(&agent))
        .await
        .error(StatusCode::NOT_FOUND, "ticket_not_found");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_batch_is_refused_whole() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = first_ticket_of(&server, "li").await;
    let before = server.estate_snapshot().await;
    let device = device_id("hh-li-shape");

    let empty = server
        .push_raw(&li, &push_request(&device, Vec::new()))
        .await;
    empty.error(StatusCode::BAD_REQUEST, "empty_batch");

    let zero = DeviceMutation {
        seq: DeviceSeq(0),
        ..Handheld::new("hh-li-shape").record(&ticket, note("seq zero"))
    };
    server
        .push_raw(&li, &push_request(&device, vec![zero]))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_sequence");

    let mut handheld = Handheld::new("hh-li-shape");
    let one = handheld.record(&ticket, note("one"));
    handheld.record(&ticket, note("two, left out"));
    let three = handheld.record(&ticket, note("three"));
    server
        .push_raw(&li, &push_request(&device, vec![one.clone(), three]))
        .await
        .error(StatusCode::BAD_REQUEST, "batch_not_consecutive");
    let reversed = vec![
        one.clone(),
        DeviceMutation {
            seq: DeviceSeq(0),
            ..one
        },
    ];
    server
        .push_raw(&li, &push_request(&device, reversed))
        .await
        .error(StatusCode::BAD_REQUEST, "batch_not_consecutive");

    assert_eq!(server.estate_snapshot().await, before);
    assert_eq!(
        server.pull(&li, &device, Cursor(0)).await.last_seq,
        DeviceSeq(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_on_a_ticket_that_does_not_exist_is_rejected_alone() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let ticket = first_ticket_of(&server, "li").await;
    let mut ghost = ticket.clone();
    ghost.id = sync_protocol::TicketId::parse("tk99999999").unwrap();

    let mut handheld = Handheld::new("hh-li-ghost");
    let batch = vec![
        handheld.record(&ghost, note("on a ticket nobody made")),
        handheld.record(&ticket, note("on a real ticket")),
    ];
    let pushed = server.push(&li, &handheld.id, batch).await;
    let Outcome::Rejected(rejection) = &pushed.outcomes[0].outcome else {
        panic!("expected ticket_not_found: {:?}", pushed.outcomes[0]);
    };
    assert_eq!(rejection.code, RejectCode::TicketNotFound);
    assert!(matches!(pushed.outcomes[1].outcome, Outcome::Applied(_)));
    assert_eq!(pushed.last_seq, DeviceSeq(2));
    let stored = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(stored.version, ticket.version.next());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_actions_the_workflow_or_the_roles_do_not_allow_are_refused() {
    let server = TestServer::start();
    let dispatcher = server.login("diaodu").await;
    let agent = server.login("kefu").await;
    let supervisor = server.login("zhuguan").await;
    let ticket = first_ticket_of(&server, "li").await;
    let reassign_to = |name: &str| OfficeOp::Reassign {
        technician: user(name),
        reason: "plan changed".to_owned(),
    };

    // The workflow (R-D1, states).
    let cases = [
        (
            OfficeOp::Dispatch {
                technician: user("zhang"),
            },
            StatusCode::CONFLICT,
            "already_assigned",
        ),
        (reassign_to("li"), StatusCode::CONFLICT, "already_assigned"),
        (
            reassign_to("nobody"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_technician",
        ),
        (
            reassign_to("kefu"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_technician",
        ),
        (
            OfficeOp::SetAppointment {
                at: chrono::Utc::now() - chrono::Duration::days(1),
                note: String::new(),
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_record",
        ),
        (
            OfficeOp::Cancel {
                reason: "   ".to_owned(),
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_record",
        ),
    ];
    let before = server.estate_snapshot().await;
    for (op, status, code) in cases {
        server
            .act_raw(&dispatcher, &ticket.id, op)
            .await
            .error(status, code);
    }
    // The roles: only the dispatcher assigns engineering work (R-D1);
    // supervisors watch.
    server
        .act_raw(&agent, &ticket.id, reassign_to("zhang"))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let supervisor_note = OfficeOp::AddNote {
        text: "just watching".to_owned(),
    };
    server
        .act_raw(&supervisor, &ticket.id, supervisor_note)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.estate_snapshot().await, before);

    // A cancelled ticket takes no more workflow steps.
    let cancel = OfficeOp::Cancel {
        reason: "duplicate report 重复报事".to_owned(),
    };
    server.act(&agent, &ticket.id, cancel.clone()).await;
    let cancelled = server.estate_snapshot().await;
    for op in [cancel, reassign_to("zhang")] {
        server
            .act_raw(&dispatcher, &ticket.id, op)
            .await
            .error(StatusCode::CONFLICT, "transition_not_allowed");
    }
    assert_eq!(server.estate_snapshot().await, cancelled);
}
