//! The due list over real HTTP (`GET /api/v1/due`): each role sees the
//! deadlines it acts on, a deadline done drops off, and the window is checked.
//!
//! The demo estate's four tickets were dispatched seconds ago, so their R-P1
//! arrivals (15 minutes after dispatch) are due within an hour. Their R-K2
//! finish deadlines (the end of the local day) are only due within the hour
//! late in the evening, so the checks below look at the R-P1 items and only
//! ask of the others that they belong to the caller.

mod common;

use std::collections::BTreeSet;

use common::{Handheld, TestServer};
use reqwest::StatusCode;
use sync_protocol::time_rules::{Duty, RuleId};
use sync_protocol::{DeviceOp, DueList, DueState, Outcome, Responsible, Ticket, TicketId, UserId};

async fn due_list(server: &TestServer, user: &str, query: &str) -> DueList {
    let token = server.login(user).await;
    server
        .get(&format!("/api/v1/due{query}"), Some(&token))
        .await
        .ok()
}

/// The tickets whose R-P1 arrival is on the list, insisting each is due soon.
fn arrivals(list: &DueList) -> BTreeSet<TicketId> {
    list.items
        .iter()
        .filter(|item| item.rule == RuleId::P1)
        .map(|item| {
            assert_eq!(item.duty, Duty::Arrival, "{item:?}");
            assert_eq!(item.state, DueState::DueSoon, "{item:?}");
            item.ticket_id.clone()
        })
        .collect()
}

fn ids(tickets: &[Ticket]) -> BTreeSet<TicketId> {
    tickets.iter().map(|ticket| ticket.id.clone()).collect()
}

fn held_by(list: &DueList, technician: &str) -> bool {
    let technician = UserId::parse(technician).unwrap();
    list.items.iter().all(|item| {
        item.responsible
            == Responsible::Technician {
                user: technician.clone(),
            }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_each_role_sees_the_arrivals_it_acts_on_and_a_technician_only_his_own() {
    let server = TestServer::start();
    let of_li = server.tickets_of("li").await;
    let of_zhang = server.tickets_of("zhang").await;
    let dispatched: Vec<Ticket> = server
        .estate_snapshot()
        .await
        .into_iter()
        .filter(|ticket| ticket.assigned_technician.is_some())
        .collect();
    assert_eq!((of_li.len(), of_zhang.len(), dispatched.len()), (2, 1, 4));

    let li = due_list(&server, "li", "?window_minutes=60").await;
    assert_eq!(arrivals(&li), ids(&of_li), "{li:?}");
    assert!(held_by(&li, "li"), "{li:?}");

    let zhang = due_list(&server, "zhang", "?window_minutes=60").await;
    assert_eq!(arrivals(&zhang), ids(&of_zhang), "{zhang:?}");
    assert!(held_by(&zhang, "zhang"), "{zhang:?}");

    let supervisor = due_list(&server, "zhuguan", "?window_minutes=60").await;
    assert_eq!(arrivals(&supervisor), ids(&dispatched), "{supervisor:?}");

    let dispatcher = due_list(&server, "diaodu", "?window_minutes=60").await;
    assert_eq!(arrivals(&dispatcher), ids(&dispatched), "{dispatcher:?}");

    // Earliest first, as every caller gets it.
    assert!(
        supervisor
            .items
            .windows(2)
            .all(|pair| pair[0].due_at <= pair[1].due_at),
        "{supervisor:?}"
    );
    // The default window is the hour asked for above.
    assert_eq!(due_list(&server, "li", "").await, li);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_an_arrival_pushed_by_the_technician_takes_its_item_off_the_list() {
    let server = TestServer::start();
    let of_li = server.tickets_of("li").await;
    let arrived = &of_li[0];
    let token = server.login("li").await;
    let mut handheld = Handheld::new("hh-li-due");
    let mutation = handheld.record(arrived, DeviceOp::RecordArrival {});
    let pushed = server.push(&token, &handheld.id, vec![mutation]).await;
    assert!(
        matches!(pushed.outcomes[0].outcome, Outcome::Applied(_)),
        "{pushed:?}"
    );

    let li = due_list(&server, "li", "?window_minutes=60").await;
    let still_due: BTreeSet<TicketId> = ids(&of_li[1..]);
    assert_eq!(arrivals(&li), still_due, "{li:?}");
    let supervisor = due_list(&server, "zhuguan", "?window_minutes=60").await;
    assert!(
        !arrivals(&supervisor).contains(&arrived.id),
        "{supervisor:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_zero_or_above_a_week_or_an_unknown_parameter_is_refused() {
    let server = TestServer::start();
    let token = server.login("li").await;
    for query in ["0", "-1", "10081", "soon"] {
        let path = format!("/api/v1/due?window_minutes={query}");
        server
            .get(&path, Some(&token))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_window");
    }
    server
        .get("/api/v1/due?window_minutes=10080", Some(&token))
        .await
        .ok::<DueList>();
    server
        .get("/api/v1/due?days=1", Some(&token))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_query");
    server
        .get("/api/v1/due", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
}
