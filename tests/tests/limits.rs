//! Bounded resources: no single client can take the server down. Login
//! attempts are throttled and password checks bounded; idle connections
//! are closed and connections capped; a technician's devices are capped;
//! a ticket is bounded; fees are bounded and totals exact.

mod common;

use std::time::Duration;

use common::{DEMO_PASSWORD, Handheld, Options, TestServer, intake, note, paid_result};
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::reports::MonthlyStatistics;
use sync_protocol::{
    Charge, CompletionRecord, DeviceOp, LoginRequest, MAX_FEE_FEN, MAX_MUTATIONS_PER_PUSH, Outcome,
    PROTOCOL_VERSION, PullRequest, RejectCode, ReportMonth, SupervisionSnapshot,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn server_with(settings: &[(&'static str, &str)]) -> TestServer {
    let options = Options {
        env: settings
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect(),
        ..Options::default()
    };
    TestServer::start_with(tempfile::tempdir().unwrap(), options)
}

fn login_request(username: &str, password: &str) -> LoginRequest {
    LoginRequest {
        username: username.to_owned(),
        password: password.to_owned(),
        device_id: None,
    }
}

fn retry_after(response: &common::Response) -> u64 {
    response
        .headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a 429 says when to retry: {response:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_beyond_an_addresss_allowance_are_answered_429_with_retry_after() {
    let server = server_with(&[("ESTATE_SYNC_LOGIN_ATTEMPTS_PER_MINUTE", "5")]);
    for attempt in 0..5 {
        let request = login_request(&format!("guess{attempt}"), "wrong password");
        let refused = server.post_json("/api/v1/auth/login", None, &request).await;
        refused.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // Even the right password waits: the allowance is the address's.
    let request = login_request("li", DEMO_PASSWORD);
    let throttled = server.post_json("/api/v1/auth/login", None, &request).await;
    throttled.error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!((1..=60).contains(&retry_after(&throttled)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_that_keeps_failing_waits_whether_or_not_it_exists() {
    let server = server_with(&[("ESTATE_SYNC_LOGIN_FREE_FAILURES", "3")]);
    for username in ["li", "nobody-at-all"] {
        for _ in 0..4 {
            let request = login_request(username, "wrong password");
            let refused = server.post_json("/api/v1/auth/login", None, &request).await;
            refused.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
        let request = login_request(username, DEMO_PASSWORD);
        let waiting = server.post_json("/api/v1/auth/login", None, &request).await;
        let body = waiting.error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
        assert_eq!(retry_after(&waiting), 1);
        assert_eq!(body.details.unwrap()["retry_after_seconds"], json!(1));
    }
    // Another user is not held up.
    server.login_as("zhang", DEMO_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_logins_is_refused_429_beyond_the_password_queue_and_never_fails_500() {
    let server = server_with(&[
        ("ESTATE_SYNC_PASSWORD_WORKERS", "1"),
        ("ESTATE_SYNC_PASSWORD_QUEUE", "2"),
    ]);
    let mut logins = tokio::task::JoinSet::new();
    for attempt in 0..32 {
        let client = server.client().clone();
        let url = server.url("/api/v1/auth/login");
        let request = login_request(&format!("flood{attempt}"), "wrong password");
        logins.spawn(async move { client.post(url).json(&request).send().await });
    }
    let mut busy = 0;
    let mut refused = 0;
    for answer in logins.join_all().await {
        let answer = answer.expect("every login is answered");
        match answer.status() {
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(answer.headers().contains_key(reqwest::header::RETRY_AFTER));
                busy += 1;
            }
            StatusCode::UNAUTHORIZED => refused += 1,
            other => panic!("a login flood answered {other}"),
        }
    }
    assert!(
        busy > 0,
        "the queue is bounded: {busy} busy, {refused} checked"
    );
    assert!(refused >= 1);
    // Once the flood is over, logins work again.
    server.login_as("li", DEMO_PASSWORD).await;
}

/// Read what the server sends until it closes the connection (bounded).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server closed the connection in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_connections_beyond_the_cap_are_refused_429() {
    let server = server_with(&[
        ("ESTATE_SYNC_MAX_CONNECTIONS", "4"),
        ("ESTATE_SYNC_HEADER_READ_TIMEOUT_MS", "400"),
    ]);
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.address()).await.unwrap());
    }
    // Make sure the four are accepted before the fifth arrives.
    let mut first = TcpStream::connect(server.address()).await.unwrap();
    let refusal = read_until_closed(&mut first).await;
    assert!(refusal.starts_with("HTTP/1.1 429"), "{refusal}");
    assert!(refusal.contains("too_many_connections"), "{refusal}");
    assert!(refusal.contains("x-sync-protocol: 1"), "{refusal}");

    // Connections that never send a request are closed by the server...
    for stream in &mut idle {
        read_until_closed(stream).await;
    }
    // ...which makes room again.
    let mut fresh = TcpStream::connect(server.address()).await.unwrap();
    fresh
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut fresh).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A keep-alive connection left idle after its answer is closed too.
    let mut kept = TcpStream::connect(server.address()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut kept).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

fn pull_from(device: &str, outbox_depth: u32) -> PullRequest {
    let mut report = common::device_report(&common::device_id(device));
    report.outbox_depth = outbox_depth;
    PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: report,
        cursor: sync_protocol::Cursor(0),
        limit: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_keeps_a_bounded_number_of_devices_and_one_with_work_to_upload_is_never_retired()
 {
    let server = server_with(&[("ESTATE_SYNC_MAX_DEVICES_PER_USER", "2")]);
    let li = server.login("li").await;
    let supervisor = server.login("zhuguan").await;
    let crew = || async {
        let snapshot: SupervisionSnapshot = server
            .get("/api/v1/supervision", Some(&supervisor))
            .await
            .ok();
        snapshot
            .crew
            .iter()
            .filter(|row| row.user.as_str() == "li")
            .map(|row| row.device_id.to_string())
            .collect::<Vec<_>>()
    };
    // The first handheld uploads a note, then sits idle.
    let ticket = server.tickets_of("li").await.remove(0);
    let mut old = Handheld::new("hh-li-old");
    let written = vec![old.record(&ticket, note("written before retirement"))];
    let before_retirement = common::push_request(&old.id, written);
    let first: sync_protocol::PushResponse = server.push_raw(&li, &before_retirement).await.ok();
    assert!(matches!(first.outcomes[0].outcome, Outcome::Applied(_)));
    server
        .pull_raw(&li, &pull_from("hh-li-busy", 3))
        .await
        .ok::<serde_json::Value>();
    // A third device retires the longest idle one with nothing to upload.
    server
        .pull_raw(&li, &pull_from("hh-li-new", 0))
        .await
        .ok::<serde_json::Value>();
    // What needs the supervisor (3 waiting) comes first.
    assert_eq!(crew().await, ["hh-li-busy", "hh-li-new"]);

    // Both remaining devices have work waiting: a fourth is refused.
    server
        .pull_raw(&li, &pull_from("hh-li-new", 1))
        .await
        .ok::<serde_json::Value>();
    let refused = server.pull_raw(&li, &pull_from("hh-li-fourth", 0)).await;
    refused.error(StatusCode::CONFLICT, "too_many_devices");
    assert_eq!(crew().await.len(), 2);

    // The retired handheld comes back (taking the place of the idle one) and
    // keeps its numbering: its note again is a duplicate with its first
    // answer, and its next note is its second.
    server
        .pull_raw(&li, &pull_from("hh-li-new", 0))
        .await
        .ok::<serde_json::Value>();
    let again: sync_protocol::PushResponse = server.push_raw(&li, &before_retirement).await.ok();
    assert!(
        matches!(again.outcomes[0].outcome, Outcome::Duplicate { .. }),
        "{again:?}"
    );
    let after = vec![old.record(&ticket, note("after"))];
    let next = server.push(&li, &old.id, after).await;
    assert_eq!(next.last_seq, sync_protocol::DeviceSeq(2));
    let kept = server.ticket(&li, &ticket.id).await;
    assert_eq!(kept.notes.len(), 2, "each note once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ticket_refuses_more_content_with_ticket_full_keeps_what_it_took_and_can_still_be_cancelled()
 {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let mut handheld = Handheld::new("hh-li-full");
    let long_note = "漏水".repeat(100);
    let mut applied = 0;
    let mut full = 0;
    for _ in 0..2 {
        let batch: Vec<_> = (0..MAX_MUTATIONS_PER_PUSH)
            .map(|_| handheld.record(&ticket, note(&long_note)))
            .collect();
        let pushed = server.push(&li, &handheld.id, batch).await;
        for outcome in &pushed.outcomes {
            match &outcome.outcome {
                Outcome::Applied(_) => applied += 1,
                Outcome::Rejected(rejection) => {
                    assert_eq!(rejection.code, RejectCode::TicketFull, "{rejection:?}");
                    full += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(applied > 0 && full > 0, "{applied} applied, {full} refused");
    let dispatcher = server.login("diaodu").await;
    let kept = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(kept.notes.len(), applied, "everything accepted is kept");

    let refused = server
        .act_raw(
            &dispatcher,
            &ticket.id,
            sync_protocol::OfficeOp::AddNote {
                text: long_note.clone(),
            },
        )
        .await;
    refused.error(StatusCode::CONFLICT, "ticket_full");
    let agent = server.login("kefu").await;
    let cancelled = server
        .act(
            &agent,
            &ticket.id,
            sync_protocol::OfficeOp::Cancel {
                reason: "reported twice 重复报事".into(),
            },
        )
        .await;
    assert_eq!(cancelled.status, sync_protocol::Status::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c5_fees_are_bounded_where_they_come_in_and_the_monthly_total_is_exact() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let manager = server.login("kefu-jingli").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-fees");
    let tickets = server.tickets_of("li").await;
    // The demo estate counts in Shanghai time (+08:00, no daylight saving).
    let shanghai = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let local = chrono::Utc::now().with_timezone(&shanghai);
    let month = ReportMonth::parse(&local.format("%Y-%m").to_string()).unwrap();
    let path = format!("/api/v1/reports/monthly?month={month}");
    let before: MonthlyStatistics = server.get(&path, Some(&manager)).await.ok();

    let too_much = CompletionRecord {
        charge: Charge::Paid {
            fee_fen: u64::MAX / 2 + 1,
        },
        ..paid_result()
    };
    let batch = vec![handheld.record(&tickets[0], DeviceOp::Complete { result: too_much })];
    let pushed = server.push(&li, &handheld.id, batch).await;
    let Outcome::Rejected(rejection) = &pushed.outcomes[0].outcome else {
        panic!("{pushed:?}");
    };
    assert_eq!(rejection.code, RejectCode::InvalidContent);

    // Two jobs at the largest fee, closed: the total is their sum, exactly.
    for ticket in &tickets[..2] {
        let result = CompletionRecord {
            charge: Charge::Paid {
                fee_fen: MAX_FEE_FEN,
            },
            ..paid_result()
        };
        server
            .finish_on_site("li", &mut handheld, ticket, result, None)
            .await;
        server
            .act(&dispatcher, &ticket.id, sync_protocol::OfficeOp::Close {})
            .await;
    }
    let after: MonthlyStatistics = server.get(&path, Some(&manager)).await.ok();
    assert_eq!(
        after.charges.paid_fee_fen,
        before.charges.paid_fee_fen + 2 * MAX_FEE_FEN
    );

    let mut booking = intake();
    booking.category = sync_protocol::Category::HomeService;
    booking.booking = Some(sync_protocol::BookingRequest {
        service_date: local.date_naive() + chrono::Duration::days(3),
        agreed_time: sync_protocol::AgreedTime::At {
            at: chrono::Utc::now() + chrono::Duration::days(3),
        },
        fee: Charge::Paid { fee_fen: 1 << 63 },
        staff: None,
    });
    let agent = server.login("kefu").await;
    let refused = server
        .post_json("/api/v1/tickets", Some(&agent), &booking)
        .await;
    let body = refused.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert!(body.details.unwrap().to_string().contains("booking.fee"));
}
