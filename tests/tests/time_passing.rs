//! Time rules as time passes, over real HTTP: the server is stopped and
//! started again with its clock moved ahead (`--clock-shift-minutes`), so a
//! deadline falls due without the test sleeping through it, and the
//! scheduler meets it the way it would after a real night with the server
//! down.

mod common;

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use common::TestServer;
use sync_protocol::time_rules::{Duty, RuleId};
use sync_protocol::{DueList, DueState, HistoryEvent, OfficeOp, Ticket, TicketId};

/// How long the scheduler may take to record a deadline that has passed:
/// its target is one second; this leaves room for a loaded CI machine.
const SCHEDULER_GRACE: StdDuration = StdDuration::from_secs(10);

async fn arrival_item(server: &TestServer, caller: &str, ticket: &TicketId) -> Option<DueState> {
    let token = server.login(caller).await;
    let list: DueList = server
        .get("/api/v1/due?window_minutes=60", Some(&token))
        .await
        .ok();
    list.items
        .into_iter()
        .find(|item| &item.ticket_id == ticket && item.rule == RuleId::P1)
        .map(|item| {
            assert_eq!(item.duty, Duty::Arrival);
            item.state
        })
}

/// The ticket once its history holds a missed R-P1 deadline, which the
/// scheduler records on its own task shortly after the server starts.
async fn once_the_miss_is_recorded(server: &TestServer, ticket: &TicketId) -> Ticket {
    let token = server.login("diaodu").await;
    let give_up_at = std::time::Instant::now() + SCHEDULER_GRACE;
    loop {
        let current = server.ticket(&token, ticket).await;
        let recorded = current.history.iter().any(|entry| {
            matches!(
                entry.event,
                HistoryEvent::DeadlineMissed {
                    rule: RuleId::P1,
                    ..
                }
            )
        });
        if recorded {
            return current;
        }
        assert!(
            std::time::Instant::now() < give_up_at,
            "no missed R-P1 deadline in the history: {:?}",
            current.history
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_a_missed_arrival_is_kept_in_the_history_put_to_customer_service_and_the_appointment_becomes_the_deadline()
 {
    let mut server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);
    let dispatched_at = ticket.dispatched_at.expect("the demo dispatched it");
    assert_eq!(
        arrival_item(&server, "li", &ticket.id).await,
        Some(DueState::DueSoon)
    );
    assert_eq!(
        arrival_item(&server, "kefu", &ticket.id).await,
        None,
        "customer service has nothing to do while the technician can still make it"
    );

    // Twenty minutes later nobody has arrived: R-P1's 15 minutes are over.
    server.let_time_pass(20);
    let flagged = once_the_miss_is_recorded(&server, &ticket.id).await;
    let missed = flagged
        .history
        .iter()
        .find_map(|entry| match entry.event {
            HistoryEvent::DeadlineMissed {
                rule: RuleId::P1,
                due_at,
            } => Some(due_at),
            _ => None,
        })
        .unwrap();
    assert_eq!(missed, dispatched_at + Duration::minutes(15));
    assert_eq!(
        arrival_item(&server, "li", &ticket.id).await,
        Some(DueState::Overdue)
    );
    assert_eq!(
        arrival_item(&server, "kefu", &ticket.id).await,
        Some(DueState::Overdue),
        "customer service is asked to book an appointment with the owner"
    );

    // The agent books the owner for half an hour from the server's now.
    let agent = server.login("kefu").await;
    let appointment_at = Utc::now() + Duration::minutes(20 + 30);
    let booked = server
        .act(
            &agent,
            &ticket.id,
            OfficeOp::SetAppointment {
                at: appointment_at,
                note: "业主约定半小时后 the owner is home in half an hour".to_owned(),
            },
        )
        .await;
    assert_eq!(booked.appointment.as_ref().unwrap().at, appointment_at);
    assert_eq!(
        arrival_item(&server, "li", &ticket.id).await,
        Some(DueState::DueSoon)
    );
    assert_eq!(arrival_item(&server, "kefu", &ticket.id).await, None);
    // The miss stays on the record.
    let history_after = server.ticket(&agent, &ticket.id).await.history;
    assert!(history_after.iter().any(|entry| matches!(
        entry.event,
        HistoryEvent::DeadlineMissed {
            rule: RuleId::P1,
            ..
        }
    )));
}
