//! R-S2 bookings (预约服务登记) and R-P2 over real HTTP: a home-service or
//! private-garden job booked for a later date through the intake, its work
//! order issued at local midnight the day before the service date, refused
//! for dispatch and left out of the dispatch queue until then, moved when the
//! owner asks, and its arrival due at the time agreed with the owner.
//!
//! The server's clock is set to the coming local noon of the demo estate
//! (Asia/Shanghai) with `--clock-shift-minutes`, so that the local dates
//! these tests name cannot turn over while they run; time then passes with
//! [`TestServer::let_time_pass`], never with sleeps.

mod common;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::{Options, TestServer, intake};
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::time_rules::{Duty, RuleId};
use sync_protocol::{
    AgreedTime, BookingRequest, Category, Charge, DispatchQueue, DispatchSuggestions, DueList,
    DueState, HistoryEvent, Intake, OfficeOp, Status, Ticket, TicketKind, UserId, WorkingCalendar,
};

const CLOCK_SHIFT: &str = "ESTATE_SYNC_CLOCK_SHIFT_MINUTES";

/// The demo estate counts in Shanghai time, as every estate does by default.
fn calendar() -> WorkingCalendar {
    WorkingCalendar::asia_shanghai()
}

/// A demo server whose clock reads the coming local noon (or up to a minute
/// after it), and that noon.
fn start_at_noon() -> (TestServer, DateTime<Utc>) {
    let calendar = calendar();
    let now = Utc::now();
    let noon_of = |date: NaiveDate| calendar.start_of_local_date(date) + Duration::hours(12);
    let today = calendar.local_date(now);
    let noon = match noon_of(today) {
        noon if noon > now => noon,
        _ => noon_of(today + Duration::days(1)),
    };
    let shift_minutes = (noon - now).num_minutes() + 1;
    let options = Options {
        demo: true,
        env: vec![(CLOCK_SHIFT, shift_minutes.to_string())],
        ..Default::default()
    };
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    (TestServer::start_with(data_dir, options), noon)
}

fn local(date: NaiveDate, hour: i64) -> DateTime<Utc> {
    calendar().start_of_local_date(date) + Duration::hours(hour)
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).expect("a valid user id")
}

/// 09:00-11:00 on `service_date` with li, for 120 yuan.
fn booking_for(service_date: NaiveDate) -> BookingRequest {
    BookingRequest {
        service_date,
        agreed_time: AgreedTime::Window {
            from: local(service_date, 9),
            until: local(service_date, 11),
        },
        fee: Charge::Paid { fee_fen: 12_000 },
        staff: Some(user("li")),
    }
}

/// A deep clean of 9-3-801 recorded at `received_at`, with `booking`.
fn home_service(received_at: DateTime<Utc>, booking: Option<BookingRequest>) -> Intake {
    Intake {
        category: Category::HomeService,
        description: "深度保洁 deep cleaning of the flat".to_owned(),
        received_at,
        booking,
        ..intake()
    }
}

/// The agent books a deep clean on `service_date` (see [`booking_for`]) at `now`.
async fn book(server: &TestServer, now: DateTime<Utc>, service_date: NaiveDate) -> Ticket {
    let agent = server.login("kefu").await;
    let intake = home_service(now, Some(booking_for(service_date)));
    server.create_ticket(&agent, &intake).await
}

/// The fields of an `invalid_record` refusal, in order.
fn refused_fields(response: &common::Response) -> Vec<String> {
    let body = response.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    let problems = body.details.expect("a refusal lists its problems")["problems"].clone();
    problems
        .as_array()
        .expect("problems is a list")
        .iter()
        .map(|problem| problem["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn dispatch_queue(server: &TestServer) -> DispatchQueue {
    let token = server.login("diaodu").await;
    server
        .get("/api/v1/dispatch-queue", Some(&token))
        .await
        .ok()
}

fn queued(queue: &DispatchQueue, ticket: &Ticket) -> bool {
    queue
        .tickets
        .iter()
        .any(|queued| queued.ticket_id == ticket.id)
}

fn dispatch_to_li() -> OfficeOp {
    OfficeOp::Dispatch {
        technician: user("li"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_s2_a_booking_is_recorded_with_its_work_order_issued_at_midnight_before_the_service_date()
{
    let (server, noon) = start_at_noon();
    let today = calendar().local_date(noon);
    let service_date = today + Duration::days(2);
    let agent = server.login("kefu").await;
    let booking = booking_for(service_date);
    let ticket = server
        .create_ticket(&agent, &home_service(noon, Some(booking.clone())))
        .await;

    assert_eq!(ticket.kind, TicketKind::WorkOrder);
    assert_eq!(ticket.status, Status::Received);
    let kept = ticket
        .booking
        .clone()
        .expect("the ticket keeps its booking");
    assert_eq!(kept.service_date, service_date);
    assert_eq!(kept.agreed_time, booking.agreed_time);
    assert_eq!(kept.fee, Charge::Paid { fee_fen: 12_000 });
    assert_eq!(kept.staff, Some(user("li")));
    assert_eq!(kept.issued_at, local(today + Duration::days(1), 0));
    assert_eq!(kept.issue_date(), today + Duration::days(1));
    let serial = ticket
        .serial_number
        .as_ref()
        .expect("R-A1: numbered at intake");
    assert!(serial.to_string().contains("-WO-"), "{serial}");
    assert_eq!(server.ticket(&agent, &ticket.id).await, ticket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_s2_a_booking_is_dispatched_and_queued_only_from_its_issue_day() {
    let (mut server, noon) = start_at_noon();
    let today = calendar().local_date(noon);
    let service_date = today + Duration::days(2);
    let ticket = book(&server, noon, service_date).await;

    assert!(!queued(&dispatch_queue(&server).await, &ticket));
    let dispatcher = server.login("diaodu").await;
    let refused = server
        .act_raw(&dispatcher, &ticket.id, dispatch_to_li())
        .await;
    let body = refused.error(StatusCode::CONFLICT, "booking_not_issued");
    let issue_date = today + Duration::days(1);
    assert_eq!(
        body.details,
        Some(json!({
            "service_date": service_date,
            "issue_date": issue_date,
            "issued_at": local(issue_date, 0),
        }))
    );
    let suggestions = format!("/api/v1/tickets/{}/suggestions", ticket.id);
    server
        .get(&suggestions, Some(&dispatcher))
        .await
        .error(StatusCode::CONFLICT, "booking_not_issued");
    assert_eq!(server.ticket(&dispatcher, &ticket.id).await, ticket);

    // Midnight: the work order is issued.
    server.let_time_pass(12 * 60);
    let queue = dispatch_queue(&server).await;
    let entry = queue
        .tickets
        .iter()
        .find(|queued| queued.ticket_id == ticket.id)
        .expect("issued, it waits for dispatch");
    assert_eq!(entry.booking, ticket.booking);
    let dispatcher = server.login("diaodu").await;
    let ranked: DispatchSuggestions = server.get(&suggestions, Some(&dispatcher)).await.ok();
    assert_eq!(ranked.suggestions[0].technician, user("li"));
    assert!(
        ranked.suggestions[0]
            .reason
            .en
            .starts_with("agreed with the owner"),
        "{ranked:?}"
    );
    let dispatched = server.act(&dispatcher, &ticket.id, dispatch_to_li()).await;
    assert_eq!(dispatched.status, Status::Dispatched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_s2_misplaced_and_same_day_bookings_are_refused_and_a_same_day_request_is_a_verbal_dispatch()
 {
    let (server, noon) = start_at_noon();
    let today = calendar().local_date(noon);
    let agent = server.login("kefu").await;
    let before = server.estate_snapshot().await;

    let on_a_repair = Intake {
        kind: TicketKind::CoordinationTicket,
        booking: Some(booking_for(today + Duration::days(2))),
        received_at: noon,
        ..intake()
    };
    let response = server
        .post_json("/api/v1/tickets", Some(&agent), &on_a_repair)
        .await;
    assert_eq!(refused_fields(&response), ["booking", "booking"]);

    let same_day = BookingRequest {
        agreed_time: AgreedTime::At {
            at: local(today, 15),
        },
        ..booking_for(today)
    };
    let response = server
        .post_json(
            "/api/v1/tickets",
            Some(&agent),
            &home_service(noon, Some(same_day)),
        )
        .await;
    assert_eq!(refused_fields(&response), ["booking.service_date"]);
    let body = response.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert!(body.message.contains("verbal dispatch"), "{body:?}");

    let unbooked = home_service(noon, None);
    let response = server
        .post_json("/api/v1/tickets", Some(&agent), &unbooked)
        .await;
    assert_eq!(refused_fields(&response), ["booking"]);

    for staff in ["nobody", "kefu"] {
        let booking = BookingRequest {
            staff: Some(user(staff)),
            ..booking_for(today + Duration::days(2))
        };
        server
            .post_json(
                "/api/v1/tickets",
                Some(&agent),
                &home_service(noon, Some(booking)),
            )
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY, "unknown_technician");
    }
    assert_eq!(
        server.estate_snapshot().await,
        before,
        "nothing was recorded"
    );

    let verbal = Intake {
        kind: TicketKind::VerbalDispatch,
        ..unbooked
    };
    let recorded = server.create_ticket(&agent, &verbal).await;
    assert_eq!(recorded.kind, TicketKind::VerbalDispatch);
    assert_eq!(recorded.booking, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_s2_the_owner_moves_a_booking_and_its_issue_day_moves_along() {
    let (server, noon) = start_at_noon();
    let today = calendar().local_date(noon);
    let agent = server.login("kefu").await;
    // Booked for tomorrow: issued today, so it waits for dispatch at once.
    let ticket = book(&server, noon, today + Duration::days(1)).await;
    assert!(queued(&dispatch_queue(&server).await, &ticket));

    let later = today + Duration::days(3);
    let move_to = |service_date: NaiveDate| OfficeOp::RescheduleBooking {
        service_date,
        agreed_time: AgreedTime::At {
            at: local(service_date, 14),
        },
        note: "业主临时出差 the owner is away on business".to_owned(),
    };
    for role in ["li", "banzhang"] {
        let token = server.login(role).await;
        server
            .act_raw(&token, &ticket.id, move_to(later))
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
    }
    let moved = server.act(&agent, &ticket.id, move_to(later)).await;
    let booking = moved.booking.clone().unwrap();
    assert_eq!(booking.service_date, later);
    assert_eq!(booking.issued_at, local(later - Duration::days(1), 0));
    assert_eq!(booking.fee, Charge::Paid { fee_fen: 12_000 });
    assert_eq!(moved.status, Status::Received);
    assert_eq!(
        moved.history.last().unwrap().event,
        HistoryEvent::BookingRescheduled {
            from: today + Duration::days(1),
            to: later,
            note: "业主临时出差 the owner is away on business".to_owned(),
        }
    );
    assert!(!queued(&dispatch_queue(&server).await, &moved));
    let dispatcher = server.login("diaodu").await;
    server
        .act_raw(&dispatcher, &ticket.id, dispatch_to_li())
        .await
        .error(StatusCode::CONFLICT, "booking_not_issued");

    let yesterday = today - Duration::days(1);
    let response = server.act_raw(&agent, &ticket.id, move_to(yesterday)).await;
    assert_eq!(refused_fields(&response), ["service_date", "agreed_time"]);
    let appointment = OfficeOp::SetAppointment {
        at: local(later, 16),
        note: String::new(),
    };
    let response = server.act_raw(&agent, &ticket.id, appointment).await;
    assert_eq!(refused_fields(&response), ["booking"]);
    let ordinary = server
        .create_ticket(
            &agent,
            &Intake {
                received_at: noon,
                ..intake()
            },
        )
        .await;
    let response = server.act_raw(&agent, &ordinary.id, move_to(later)).await;
    assert_eq!(refused_fields(&response), ["booking"]);
    assert_eq!(server.ticket(&agent, &ticket.id).await, moved);
}

/// `ticket`'s arrival item on `caller`'s due list (a week ahead), if any;
/// insists it is R-P2's and never R-P1's.
async fn booked_arrival(
    server: &TestServer,
    caller: &str,
    ticket: &Ticket,
) -> Option<(DateTime<Utc>, DueState)> {
    let token = server.login(caller).await;
    let list: DueList = server
        .get("/api/v1/due?window_minutes=10080", Some(&token))
        .await
        .ok();
    let mut arrivals = list
        .items
        .into_iter()
        .filter(|item| item.ticket_id == ticket.id && item.duty == Duty::Arrival);
    let arrival = arrivals.next();
    assert!(arrivals.next().is_none(), "one arrival deadline per ticket");
    arrival.map(|item| {
        assert_eq!(item.rule, RuleId::P2, "{item:?}");
        (item.due_at, item.state)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p2_a_booked_arrival_is_due_at_the_agreed_time_not_15_minutes_after_dispatch() {
    let (mut server, noon) = start_at_noon();
    let service_date = calendar().local_date(noon) + Duration::days(1);
    let ticket = book(&server, noon, service_date).await;
    let dispatcher = server.login("diaodu").await;
    let ticket = server.act(&dispatcher, &ticket.id, dispatch_to_li()).await;

    let agreed_until = local(service_date, 11);
    assert_eq!(
        booked_arrival(&server, "li", &ticket).await,
        Some((agreed_until, DueState::DueSoon))
    );
    assert_eq!(
        booked_arrival(&server, "kefu", &ticket).await,
        None,
        "customer service has nothing to do while the agreed time is ahead"
    );

    // 11:05 on the service day, and li has not arrived.
    server.let_time_pass(23 * 60 + 5);
    assert_eq!(
        booked_arrival(&server, "li", &ticket).await,
        Some((agreed_until, DueState::Overdue))
    );
    assert_eq!(
        booked_arrival(&server, "kefu", &ticket).await,
        Some((agreed_until, DueState::Overdue)),
        "customer service calls the owner about the missed time"
    );
}
