//! An arrival recorded offline is judged by the device's time corrected by
//! the clock offset the server measures on each push (docs/protocol.md §4.8),
//! and by the time the server received it when the device clock is off by
//! more than ten minutes.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{Handheld, TestServer, push_request};
use sync_protocol::time_rules::ClockJudgement;
use sync_protocol::{DeviceOp, Outcome, PushResponse, Ticket};

/// Push an arrival that happened at `arrived_at` from a handheld whose clock
/// is `skew` ahead of the server's; the stored ticket.
async fn arrive_with_skewed_clock(
    server: &TestServer,
    ticket: &Ticket,
    device: &str,
    skew: Duration,
    arrived_at: DateTime<Utc>,
) -> Ticket {
    let token = server.login("li").await;
    let mut handheld = Handheld::new(device);
    let mutation = handheld.record_at(
        ticket,
        DeviceOp::RecordArrival { position: None },
        arrived_at + skew,
    );
    let mut request = push_request(&handheld.id, vec![mutation]);
    request.device.device_time = Utc::now() + skew;
    let pushed: PushResponse = server.push_raw(&token, &request).await.ok();
    assert!(
        matches!(pushed.outcomes[0].outcome, Outcome::Applied(_)),
        "{pushed:?}"
    );
    server.ticket(&token, &ticket.id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_an_offline_arrival_is_judged_by_the_device_time_corrected_by_its_measured_offset() {
    let server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);
    // The technician arrived a minute ago; the handheld's clock runs 7 minutes fast.
    let arrived_at = Utc::now() - Duration::minutes(1);
    let stored = arrive_with_skewed_clock(
        &server,
        &ticket,
        "hh-li-fast",
        Duration::minutes(7),
        arrived_at,
    )
    .await;

    let arrival = stored
        .arrivals
        .values()
        .next()
        .expect("the arrival is kept");
    assert_eq!(arrival.recorded_at, arrived_at + Duration::minutes(7));
    let event_time = arrival.event_time.expect("the judged time is stored");
    assert!(event_time.trusted, "{event_time:?}");
    assert_eq!(event_time.reason, ClockJudgement::CorrectedDeviceClock);
    let error = (event_time.at - arrived_at).num_milliseconds().abs();
    assert!(
        error < 5_000,
        "corrected to within the request's latency: {error} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_an_arrival_from_a_clock_off_by_more_than_ten_minutes_is_judged_by_its_receipt() {
    let server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);
    // The clock was set back by hand by 45 minutes; its time cannot be trusted.
    let before_push = Utc::now();
    let stored = arrive_with_skewed_clock(
        &server,
        &ticket,
        "hh-li-wrong",
        Duration::minutes(-45),
        before_push - Duration::minutes(1),
    )
    .await;

    let arrival = stored
        .arrivals
        .values()
        .next()
        .expect("the fact is kept all the same");
    let event_time = arrival.event_time.expect("the judged time is stored");
    assert!(!event_time.trusted, "{event_time:?}");
    assert_eq!(event_time.reason, ClockJudgement::OffsetBeyondBound);
    assert_eq!(event_time.at, arrival.received_at);
    assert!(event_time.at >= before_push);
}
